// Object table role boundaries (docs/architecture.md §4, §9): the appliance user never uses a key, admins
// manage users not keys (they may read metadata and set `trusted`), a crypto user uses only keys it
// owns or that are shared with it, and only the owner manages a key.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { isCofferError } from '../../../src/errors.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { ObjectTable } from '../../../src/hsm/objects/objects.js';
import type { Actor, MechanismParams } from '../../../src/hsm/types.js';
import { rejectsCode, throwsCode } from '../../helpers.js';

const cu = (userId: string): Actor => ({ userId, role: 'crypto-user' });
const alice = cu('alice');
const bob = cu('bob');
const mallory = cu('mallory');
const admin: Actor = { userId: 'admin', role: 'admin' };
const appliance: Actor = { userId: 'app_user', role: 'appliance' };
const unactivated: Actor = { userId: 'admin', role: 'unactivated-admin' };
const CRYPTO_USERS = new Set(['alice', 'bob', 'mallory', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8']);
const ECDSA: MechanismParams = { mechanism: 'CKM_ECDSA_SHA256' };
const DATA = new TextEncoder().encode('message');

function setup(): { t: ObjectTable; store: MemoryRecordStore } {
  const store = new MemoryRecordStore();
  return { store, t: new ObjectTable({ state: new DeviceState(store), mode: 'NON_FIPS', isCryptoUser: (u) => CRYPTO_USERS.has(u) }) };
}

async function ecPair(t: ObjectTable, owner: Actor = alice): Promise<{ publicHandle: number; privateHandle: number }> {
  return await t.generateKeyPair(owner, { keyType: 'EC', curve: 'P-256' }, { label: 'pub' }, { label: 'priv' });
}

void test('the appliance user can never create, use, list or manage a key', async () => {
  const { t } = setup();
  const { publicHandle, privateHandle } = await ecPair(t);
  const digest = t.stateDigest();
  await rejectsCode(() => t.generateKey(appliance, { keyType: 'AES', bits: 256 }), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => ecPair(t, appliance), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.sign(appliance, privateHandle, ECDSA, DATA), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.verify(appliance, publicHandle, ECDSA, DATA, new Uint8Array(64)), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.use(appliance, privateHandle, 'sign', ECDSA), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.find(appliance), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.getAttributes(appliance, privateHandle), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.exportPublic(appliance, publicHandle), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.setAttribute(appliance, privateHandle, 'label', 'x'), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.destroy(appliance, privateHandle), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.share(appliance, privateHandle, 'bob'), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.find(unactivated), 'COFFER_PERMISSION_DENIED');
  assert.deepEqual(t.stateDigest(), digest);
});

void test('admins cannot create or use keys, may list every token object, and may change only trusted', async () => {
  const { t } = setup();
  const a = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { wrap: true });
  const b = await ecPair(t, bob);
  await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's1' });
  await rejectsCode(() => t.generateKey(admin, { keyType: 'AES', bits: 256 }), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.sign(admin, b.privateHandle, ECDSA, DATA), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.encrypt(admin, a, { mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12) }, DATA), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.exportPublic(admin, b.publicHandle), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.destroy(admin, a), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.share(admin, a, 'bob'), 'COFFER_PERMISSION_DENIED');
  assert.deepEqual(t.find(admin).map((i) => i.handle), [a, b.publicHandle, b.privateHandle], 'token objects only');
  assert.equal(t.getAttributes(admin, a).owner, 'alice');
  await rejectsCode(() => t.setAttribute(admin, a, 'label', 'mine'), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.setAttribute(admin, a, 'extractable', false), 'COFFER_PERMISSION_DENIED');
  await t.setAttribute(admin, a, 'trusted', true);
  assert.equal(t.getAttributes(alice, a).attributes.trusted, true);
  await rejectsCode(() => t.setAttribute(alice, a, 'trusted', false), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.setAttribute(admin, 99, 'trusted', true), 'COFFER_OBJECT_NOT_FOUND');
});

void test('a crypto user who neither owns nor shares a key cannot tell it from a handle that does not exist', async () => {
  const { t } = setup();
  const { privateHandle } = await ecPair(t);
  const missing = 12345;
  const sameAsMissing = async (fn: (h: number) => unknown): Promise<void> => {
    const errors = await Promise.all([privateHandle, missing].map(async (h) => {
      try {
        await fn(h);
      } catch (e) {
        return isCofferError(e) ? JSON.stringify(e) : String(e);
      }
      return 'no error';
    }));
    assert.equal(errors[0], errors[1]);
    assert.match(errors[0] ?? '', /COFFER_OBJECT_NOT_FOUND/);
  };
  await sameAsMissing((h) => t.sign(mallory, h, ECDSA, DATA));
  await sameAsMissing((h) => t.use(mallory, h, 'sign', ECDSA));
  await sameAsMissing((h) => t.getAttributes(mallory, h));
  await sameAsMissing((h) => t.destroy(mallory, h));
  await sameAsMissing((h) => t.share(mallory, h, 'bob'));
  await sameAsMissing((h) => t.setAttribute(mallory, h, 'label', 'x'));
  await sameAsMissing((h) => t.exportPublic(mallory, h));
  await sameAsMissing((h) => t.wrapKey(mallory, h, h, { mechanism: 'CKM_AES_KEY_WRAP_PAD' }));
  // mallory sees alice's public key (every crypto user sees every token public key), nothing else.
  assert.deepEqual(t.find(mallory).map((i) => i.class), ['PUBLIC_KEY']);
  assert.deepEqual(t.find(mallory, { handle: privateHandle }), []);
});

void test('a sharee can use the key but not destroy, share, unshare, set attributes, wrap or export it', async () => {
  const { t } = setup();
  const { publicHandle, privateHandle } = await ecPair(t);
  const aes = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { wrap: true, sensitive: false });
  await t.share(alice, privateHandle, 'bob');
  await t.share(alice, aes, 'BOB'); // user names are case-insensitive
  const sig = t.sign(bob, privateHandle, ECDSA, DATA);
  assert.equal(t.verify(alice, publicHandle, ECDSA, DATA, sig), true);
  // Every crypto user sees every token public key (CloudHSM's key list); bob sees alice's too.
  assert.deepEqual(t.find(bob).map((i) => i.handle), [publicHandle, privateHandle, aes]);
  assert.deepEqual(t.getAttributes(bob, privateHandle).sharees, ['bob']);
  await rejectsCode(() => t.destroy(bob, privateHandle), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.share(bob, privateHandle, 'mallory'), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.unshare(bob, privateHandle, 'bob'), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.setAttribute(bob, privateHandle, 'label', 'x'), 'COFFER_PERMISSION_DENIED');
  throwsCode(() => t.exportPlaintext(bob, aes), 'COFFER_PERMISSION_DENIED');
  // bob may wrap with the shared AES key, but only keys bob owns
  const bobs = await t.generateKey(bob, { keyType: 'AES', bits: 128 });
  assert.ok(t.wrapKey(bob, aes, bobs, { mechanism: 'CKM_AES_KEY_WRAP_PAD' }).length > 16);
  throwsCode(() => t.wrapKey(bob, aes, aes, { mechanism: 'CKM_AES_KEY_WRAP_PAD' }), 'COFFER_PERMISSION_DENIED');
  // The public half was not shared, yet every crypto user may read and verify with a public key
  // (CloudHSM); managing it stays the owner's.
  assert.equal(t.verify(bob, publicHandle, ECDSA, DATA, sig), true);
  await rejectsCode(() => t.destroy(bob, publicHandle), 'COFFER_PERMISSION_DENIED');
  await t.unshare(alice, privateHandle, 'bob');
  throwsCode(() => t.sign(bob, privateHandle, ECDSA, DATA), 'COFFER_OBJECT_NOT_FOUND');
  assert.equal(t.countSharedWith('bob'), 1);
});

void test('sharing: up to 7 crypto users, never the owner, never a non-crypto-user; idempotent', async () => {
  const { t } = setup();
  const k = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  for (const u of ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7']) await t.share(alice, k, u);
  await t.share(alice, k, 'u7'); // already shared: no change, no error
  assert.equal(t.getAttributes(alice, k).sharees.length, 7);
  const digest = t.stateDigest();
  await rejectsCode(() => t.share(alice, k, 'u8'), 'COFFER_SHARE_LIMIT');
  await t.unshare(alice, k, 'u1');
  await t.share(alice, k, 'u8');
  assert.deepEqual(t.getAttributes(alice, k).sharees, ['u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8']);
  const k2 = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  const before = t.stateDigest();
  await rejectsCode(() => t.share(alice, k2, 'alice'), 'COFFER_ATTRIBUTE_INVALID');
  await rejectsCode(() => t.share(alice, k2, 'admin'), 'COFFER_USER_NOT_FOUND');
  await rejectsCode(() => t.share(alice, k2, 'nobody'), 'COFFER_USER_NOT_FOUND');
  assert.deepEqual(t.stateDigest(), before);
  assert.notDeepEqual(before, digest);
  const s = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { token: false, sessionId: 's' });
  await rejectsCode(() => t.share(alice, s, 'bob'), 'COFFER_SESSION_OBJECT_NOT_SHAREABLE');
});

void test('only the owner destroys; a destroyed handle is gone for everyone', async () => {
  const { t } = setup();
  const k = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  await t.share(alice, k, 'bob');
  await rejectsCode(() => t.destroy(bob, k), 'COFFER_PERMISSION_DENIED');
  assert.equal(t.countOwnedBy('alice'), 1);
  await t.destroy(alice, k);
  assert.equal(t.countOwnedBy('alice'), 0);
  throwsCode(() => t.getAttributes(alice, k), 'COFFER_OBJECT_NOT_FOUND');
  throwsCode(() => t.getAttributes(admin, k), 'COFFER_OBJECT_NOT_FOUND');
  throwsCode(() => t.encrypt(bob, k, { mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12) }, DATA), 'COFFER_OBJECT_NOT_FOUND');
});

void test('identityOf answers what getAttributes(…).identity answers, under the same rules, for whoever may read the object', async () => {
  const { t } = setup();
  const { publicHandle, privateHandle } = await ecPair(t);
  const secret = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  let refused = 0;
  for (const actor of [alice, bob, mallory, admin, appliance, unactivated]) {
    for (const handle of [privateHandle, publicHandle, secret, 999_999]) {
      let info: { identity: Uint8Array } | string;
      try {
        info = t.getAttributes(actor, handle);
      } catch (e) {
        info = isCofferError(e) ? e.code : 'untyped';
      }
      if (typeof info === 'string') {
        refused++;
        throwsCode(() => t.identityOf(actor, handle), info as Parameters<typeof throwsCode>[1]);
      } else {
        assert.deepEqual(t.identityOf(actor, handle), info.identity, `${actor.userId} ${handle}`);
      }
    }
  }
  assert.ok(refused >= 10, 'the refusals were exercised too');
  assert.notDeepEqual(t.identityOf(alice, privateHandle), t.identityOf(alice, publicHandle), 'each object its own');
  // Named by handle and identity: the identity must be this object's.
  const identity = t.identityOf(alice, privateHandle);
  assert.deepEqual(t.identityOf(alice, { handle: privateHandle, identity }), identity);
  throwsCode(() => t.identityOf(alice, { handle: privateHandle, identity: t.identityOf(alice, publicHandle) }), 'COFFER_OBJECT_MISMATCH');
  // The copy is the caller's: changing it changes nothing in the table.
  identity.fill(0);
  assert.notDeepEqual(t.identityOf(alice, privateHandle), identity);
});
