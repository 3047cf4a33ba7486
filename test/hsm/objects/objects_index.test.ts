// The object table over its compact index (docs/device.md "Objects"): a key dropped from the bounded
// KeyObject cache is rebuilt on use and gives the same results; close() zeroises every buffer the
// index holds; a restore hands the device an index built from the records it staged — the same
// objects a read of the store gives, without that read — and a restore that does not commit leaves
// the old index in place.

import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { verifyDigest } from '../../../src/crypto/ecdsa_raw.js';
import { isCofferError } from '../../../src/errors.js';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { BOOLEAN_ATTRIBUTE_NAMES, encodeObjectRecord } from '../../../src/formats/object_record.js';
import { createDevelopmentAuthorities, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import { bufferSource } from '../../../src/formats/backup.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { ObjectIndex } from '../../../src/hsm/objects/object_index.js';
import { ObjectTable, StagedObjects, type ObjectInfo } from '../../../src/hsm/objects/objects.js';
import type { Actor, Handle, MechanismParams } from '../../../src/hsm/types.js';
import { FailingStore } from '../store/failing_store.js';
import { activeDevice, backupOf, hex } from '../backup/backup_support.js';

const alice: Actor = { userId: 'alice', role: 'crypto-user' };
const admin: Actor = { userId: 'admin', role: 'admin' };
const DATA = new TextEncoder().encode('the same answer, cached or rebuilt');
const HMAC: MechanismParams = { mechanism: 'CKM_SHA256_HMAC' };
const EDDSA: MechanismParams = { mechanism: 'CKM_EDDSA' };
const ECDSA: MechanismParams = { mechanism: 'CKM_ECDSA_SHA256' };
const GCM: MechanismParams = { mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12).fill(3) };

function table(options: { keyCacheMax?: number; index?: ObjectIndex } = {}): ObjectTable {
  return new ObjectTable({ state: new DeviceState(new MemoryRecordStore()), mode: 'NON_FIPS', isCryptoUser: (u) => u === 'alice', ...options });
}

let authorities: DevelopmentAuthorities;
before(async () => {
  authorities = await createDevelopmentAuthorities();
});

void test('a key dropped from the bounded KeyObject cache is rebuilt on use and gives the same signatures', async () => {
  const t = table({ keyCacheMax: 2 });
  const hmac = await t.generateKey(alice, { keyType: 'GENERIC_SECRET', bits: 256 }, { sign: true, verify: true });
  const ed = await t.generateKeyPair(alice, { keyType: 'EC_EDWARDS', curve: 'Ed25519' });
  const aes = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  const ec = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' });
  const ecPublic = createPublicKey(t.exportPublic(alice, ec.publicHandle));
  const first = { hmac: hex(t.sign(alice, hmac, HMAC, DATA)), ed: hex(t.sign(alice, ed.privateHandle, EDDSA, DATA)), aes: hex(t.encrypt(alice, aes, GCM, DATA)) };
  for (let round = 0; round < 3; round++) {
    assert.ok(t.cachedKeyCount <= 2, `at most the bound (${t.cachedKeyCount})`);
    // Each key is used after the two others: it was dropped in between, so it is rebuilt here.
    assert.equal(hex(t.sign(alice, hmac, HMAC, DATA)), first.hmac);
    assert.equal(hex(t.sign(alice, ed.privateHandle, EDDSA, DATA)), first.ed);
    assert.equal(hex(t.encrypt(alice, aes, GCM, DATA)), first.aes);
    const signature = t.sign(alice, ec.privateHandle, ECDSA, DATA);
    assert.ok(nodeVerify('sha256', DATA, { key: ecPublic, dsaEncoding: 'ieee-p1363' }, signature), 'ECDSA by a rebuilt key verifies');
  }
  assert.equal(t.cachedKeyCount, 2);
  assert.ok(t.verify(alice, ed.publicHandle, EDDSA, DATA, Uint8Array.from(Buffer.from(first.ed, 'hex'))));
});

void test('raw ECDSA (CKM_ECDSA) signs with d read from the stored key, token or session, kept or rebuilt, on every curve', async () => {
  const t = table({ keyCacheMax: 1 });
  const RAW: MechanismParams = { mechanism: 'CKM_ECDSA' };
  for (const curve of ['P-256', 'P-384', 'P-521', 'secp256k1'] as const) {
    for (const token of [true, false]) {
      const pair = await t.generateKeyPair(alice, { keyType: 'EC', curve }, { token, ...(token ? {} : { sessionId: 's1' }) }, { token, sign: true, ...(token ? {} : { sessionId: 's1' }) });
      const other = await t.generateKey(alice, { keyType: 'GENERIC_SECRET', bits: 256 }, { sign: true });
      const publicKey = createPublicKey(t.exportPublic(alice, pair.publicHandle));
      const digest = new Uint8Array(createHash('sha256').update(`${curve} ${token}`).digest());
      for (const evicted of [false, true]) {
        if (evicted) t.sign(alice, other, HMAC, DATA); // the cache of one now holds the other key
        const signature = t.sign(alice, pair.privateHandle, RAW, digest);
        assert.ok(verifyDigest(curve, publicKey, digest, signature, { dsaEncoding: 'ieee-p1363' }), `${curve} token=${token} evicted=${evicted}`);
        assert.ok(t.verify(alice, pair.publicHandle, RAW, digest, signature));
        // The data plane's path (signAsync) takes the same stored scalar.
        if (evicted) t.sign(alice, other, HMAC, DATA);
        const viaAsync = await t.signAsync(alice, pair.privateHandle, RAW, digest);
        assert.ok(verifyDigest(curve, publicKey, digest, viaAsync, { dsaEncoding: 'ieee-p1363' }), `signAsync ${curve} token=${token} evicted=${evicted}`);
      }
      assert.throws(() => t.sign(alice, pair.privateHandle, RAW, new Uint8Array(65)), (e) => isCofferError(e, 'COFFER_DATA_LEN_RANGE'));
      await assert.rejects(t.signAsync(alice, pair.privateHandle, RAW, new Uint8Array(65)), (e) => isCofferError(e, 'COFFER_DATA_LEN_RANGE'));
      // A public key cannot sign: both paths refuse it with the same code.
      let refused: unknown;
      assert.throws(() => t.sign(alice, pair.publicHandle, RAW, digest), (e) => ((refused = e), isCofferError(e)));
      await assert.rejects(t.signAsync(alice, pair.publicHandle, RAW, digest), (e) => isCofferError(e) && isCofferError(refused) && e.code === refused.code);
    }
  }
});

void test('raw ECDSA asked for in one turn (signed together, one shared inversion): each verifies; a refused one fails alone', async () => {
  const t = table();
  const RAW: MechanismParams = { mechanism: 'CKM_ECDSA' };
  const keys: Array<{ curve: 'P-256' | 'P-384' | 'secp256k1'; pair: { publicHandle: Handle; privateHandle: Handle }; publicKey: ReturnType<typeof createPublicKey> }> = [];
  for (const curve of ['P-256', 'P-256', 'P-384', 'secp256k1'] as const) {
    const pair = await t.generateKeyPair(alice, { keyType: 'EC', curve }, {}, { sign: true });
    keys.push({ curve, pair, publicKey: createPublicKey(t.exportPublic(alice, pair.publicHandle)) });
  }
  const asked = Array.from({ length: 12 }, (_, i) => {
    const k = keys[i % keys.length] as (typeof keys)[number];
    const digest = new Uint8Array(createHash('sha256').update(`digest ${i}`).digest());
    return { ...k, digest, signature: t.signAsync(alice, k.pair.privateHandle, RAW, digest) };
  });
  const refused = t.signAsync(alice, keys[0]?.pair.publicHandle ?? 0, RAW, new Uint8Array(32));
  const tooLong = t.signAsync(alice, keys[0]?.pair.privateHandle ?? 0, RAW, new Uint8Array(65));
  for (const a of asked) {
    const signature = await a.signature;
    assert.ok(verifyDigest(a.curve, a.publicKey, a.digest, signature, { dsaEncoding: 'ieee-p1363' }), a.curve);
    assert.ok(!verifyDigest(a.curve, a.publicKey, new Uint8Array(32), signature, { dsaEncoding: 'ieee-p1363' }));
  }
  await assert.rejects(refused, (e) => isCofferError(e, 'COFFER_KEY_FUNCTION_NOT_PERMITTED')); // a public key has no sign attribute
  await assert.rejects(tooLong, (e) => isCofferError(e, 'COFFER_DATA_LEN_RANGE'));
});

void test('close() zeroises every buffer the index holds key material or identities in', async () => {
  const index = new ObjectIndex();
  const t = table({ index });
  const handles: Handle[] = [];
  for (let i = 0; i < 40; i++) handles.push(await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { label: `k${i}`, extractable: true, sensitive: false }));
  const session = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's1', extractable: true, sensitive: false });
  const pair = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-384' });
  for (const h of [...handles, session, pair.privateHandle]) t.getAttributes(alice, h); // computes each identity
  const keys = [...handles, session].map((h) => {
    const secret = t.exportPlaintext(alice, h);
    try {
      return secret.use((b) => Buffer.from(b));
    } finally {
      secret.destroy();
    }
  });
  const buffers = index.secretBuffersForTest();
  const held = Buffer.concat(buffers.map((b) => Buffer.from(b)));
  for (const key of keys) assert.ok(held.includes(key), 'the index holds each key');
  t.close();
  for (const b of buffers) assert.ok(b.every((x) => x === 0), 'every byte of every buffer is zero');
  assert.deepEqual([t.tokenObjectCount, t.sessionObjectCount, t.cachedKeyCount], [0, 0, 0]);
});

/** What the admin and alice see, and the table's digest: equal on two tables over the same objects. */
function picture(t: ObjectTable): { admin: ObjectInfo[]; alice: ObjectInfo[]; digest: string } {
  return { admin: t.find(admin), alice: t.find(alice), digest: hex(t.stateDigest()) };
}

/** A store that counts full reads of the object namespace. */
class CountingStore extends MemoryRecordStore {
  objectLists = 0;
  override *list(ns: string): IterableIterator<[string, Uint8Array]> {
    if (ns === 'object') this.objectLists++;
    yield* super.list(ns);
  }
}

void test('a restore hands the device an index built from the staged records: the objects a read of the store gives, without that read', async () => {
  const source = await activeDevice(authorities);
  const made: Handle[] = [];
  for (let i = 0; i < 30; i++) made.push(await source.alice.generateKey(i % 2 === 0 ? { keyType: 'AES', bits: 256 } : { keyType: 'GENERIC_SECRET', bits: 256 }, { label: `key-${i}`, id: Uint8Array.of(i) }));
  const pair = await source.alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: 'ec pub' }, { label: 'ec priv ✓' });
  await source.alice.setAttribute(made[3] ?? 0, 'label', 'renamed');
  await source.alice.destroy(made[4] ?? 0);
  await source.alice.generateKey({ keyType: 'AES', bits: 128 }, { token: false }); // not state: never travels
  const blob = backupOf(source.hsm);

  const store = new CountingStore();
  const target = await activeDevice(authorities, { store });
  await target.alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'replaced by the restore' });
  const listsBefore = store.objectLists;
  await target.hsm.restoreBackup(bufferSource(blob));
  assert.equal(store.objectLists, listsBefore, 'the reload did not read the object records back');

  const restored = target.hsm.objects();
  const fresh = new ObjectTable({ state: new DeviceState(store), mode: 'NON_FIPS', isCryptoUser: (u) => u === 'alice' });
  assert.deepEqual(picture(restored), picture(fresh));
  assert.deepEqual(restored.find(admin), source.hsm.objects().find(admin));
  assert.equal(hex(restored.stateDigest()), hex(source.hsm.objects().stateDigest()));
  assert.equal(restored.tokenObjectCount, 31);
  const alice = target.hsm.openSession();
  await alice.login('alice', 'alice-password');
  assert.equal(hex(alice.sign(made[1] ?? 0, HMAC, DATA)), hex(source.alice.sign(made[1] ?? 0, HMAC, DATA)));
  assert.equal(await alice.generateKey({ keyType: 'AES', bits: 256 }), pair.privateHandle + 1, 'the handle counter came with the index');
  fresh.close();
});

void test('a restore that does not commit leaves the old index; the next one builds from its own records only', async () => {
  const other = await activeDevice(authorities);
  for (let i = 0; i < 5; i++) await other.alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `other-${i}` });
  const failing = backupOf(other.hsm);
  const source = await activeDevice(authorities);
  const kept = await source.alice.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { label: 'from the good backup', sign: true, verify: true });
  const good = backupOf(source.hsm);

  const store = new FailingStore();
  const target = await activeDevice(authorities, { store });
  const mine = await target.alice.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { label: 'mine', sign: true, verify: true });
  const before = { picture: picture(target.hsm.objects()), signature: hex(target.alice.sign(mine, HMAC, DATA)) };
  store.failNext = true; // the restore's one transaction: the switch, after every record was staged (and indexed)
  await assert.rejects(target.hsm.restoreBackup(bufferSource(failing)), /simulated store failure/);
  assert.deepEqual(picture(target.hsm.objects()), before.picture, 'the old index, untouched');
  assert.equal(hex(target.alice.sign(mine, HMAC, DATA)), before.signature, 'and its keys still work');

  await target.hsm.restoreBackup(bufferSource(good));
  const labels = target.hsm.objects().find(admin).map((o) => o.label);
  assert.deepEqual(labels, ['from the good backup'], 'nothing of the failed restore leaked into the index');
  const alice = target.hsm.openSession();
  await alice.login('alice', 'alice-password');
  assert.equal(hex(alice.sign(kept, HMAC, DATA)), hex(source.alice.sign(kept, HMAC, DATA)));
});

void test('staged objects: a record the load would refuse drops the staged index, and the table reads the store', () => {
  const attrs = Object.fromEntries(BOOLEAN_ATTRIBUTE_NAMES.map((n) => [n, n === 'token' || n === 'encrypt'])) as Record<(typeof BOOLEAN_ATTRIBUTE_NAMES)[number], boolean>;
  const bytes = encodeObjectRecord({
    handle: 7, class: 'SECRET_KEY', keyType: 'AES', bits: 128, attributes: attrs, manageKeyQuorum: 0, useKeyQuorum: 0, owner: 'alice', sharees: [],
    label: 'k', id: new Uint8Array(0), kcv: new Uint8Array(0), material: SecretBytes.copyOf(new Uint8Array(16).fill(1)),
  });
  const good = new StagedObjects(1);
  good.put('object', '0000000000000007', bytes);
  good.put('config', 'objects.next-handle', Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 8));
  const staged = good.take();
  assert.ok(staged !== undefined && staged.nextTokenHandle === 8 && staged.index.size === 1);
  staged.index.close();
  assert.equal(good.take(), undefined, 'taken once');

  const wrongId = new StagedObjects(1);
  wrongId.put('object', '0000000000000008', bytes); // a record under another handle's id
  assert.equal(wrongId.take(), undefined);
  const lowCounter = new StagedObjects(1);
  lowCounter.put('object', '0000000000000007', bytes);
  lowCounter.put('config', 'objects.next-handle', Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 7)); // not above every handle
  assert.equal(lowCounter.take(), undefined);
  const discarded = new StagedObjects(1);
  discarded.put('object', '0000000000000007', bytes);
  discarded.discard();
  assert.equal(discarded.take(), undefined);
  // A table given a dropped staging reads the store (here: empty).
  const t = new ObjectTable({ state: new DeviceState(new MemoryRecordStore()), mode: 'NON_FIPS', isCryptoUser: () => true, restored: discarded });
  assert.equal(t.tokenObjectCount, 0);
});
