// The device facade end to end, in process: development provisioning, cluster activation, users,
// role boundaries, quorum on user management, keys and crypto, persistence in the sealed store,
// and the FIPS start-up rule.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hsm, type Session } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { MemoryRecordStore, type RecordStore } from '../../src/hsm/store/store_port.js';
import { SealedStore, deriveStorageKey } from '../../src/hsm/store/sealed_store.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { verifyCeremonyTranscript } from '../../src/hsm/identity/provisioning.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import type { ScryptParams } from '../../src/hsm/users/password.js';
import { rejectsCode } from '../helpers.js';
import { stateDigestOf } from '../../src/hsm/backup/backup.js';

const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 }; // tests only: logins in microseconds
const PRECO = 'preco-password';
const ADMIN_PW = 'admin-password-1';

let authorities: DevelopmentAuthorities;
before(async () => {
  authorities = await createDevelopmentAuthorities();
});

function rejects(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e) => isCofferError(e, code), `expected ${code}`);
}
async function rejectsAsync(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code), `expected ${code}`);
}

/** A commissioned, activated device with one crypto user `alice` and an admin session. */
async function activeDevice(store: RecordStore = new MemoryRecordStore()): Promise<{ hsm: Hsm; admin: Session; alice: Session }> {
  const hsm = Hsm.open({ store, kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  await hsm.initialiseUsers(PRECO, 'appliance-credential-0123456789');
  await hsm.activate(PRECO, ADMIN_PW);
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('Alice', 'alice-password', 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('alice', 'alice-password', 'crypto-user');
  return { hsm, admin, alice };
}

test('a development device is provisioned, activated and signs with a generated key', async () => {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  assert.equal(hsm.status().provisioning, 'NEW');
  const transcript = await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS', custodians: ['ann', 'bob', 'cy'] });
  const checked = verifyCeremonyTranscript(transcript, hsm.provisioning.deviceCertificate());
  assert.deepEqual(checked.custodians.map((c) => c.name), ['ann', 'bob', 'cy']);
  assert.equal(hsm.status().provisioning, 'COMMISSIONED');
  assert.equal(hsm.status().mode, 'NON_FIPS');

  await hsm.initialiseUsers(PRECO, 'appliance-credential-0123456789');
  const early = hsm.openSession();
  await rejectsAsync(early.login('admin', PRECO, 'admin'), 'COFFER_AUTH_FAILED'); // not activated: role differs
  await hsm.activate(PRECO, ADMIN_PW);
  assert.equal(hsm.status().activated, true);

  const { alice } = await activeDevice();
  const { publicHandle, privateHandle } = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: 'pub' }, { label: 'priv' });
  const message = new TextEncoder().encode('hello coffer');
  const signature = alice.sign(privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message);
  const publicKey = createPublicKey(alice.exportPublic(publicHandle));
  assert.ok(nodeVerify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), 'node verifies the device signature (PKCS#11 r||s)');
  assert.ok(alice.verify(publicHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message, signature));
  const asyncSig = await alice.signAsync(privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message);
  assert.ok(await alice.verifyAsync(publicHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message, asyncSig));
  const digest = createHash('sha256').update(message).digest();
  assert.deepEqual(Buffer.from(alice.digest({ mechanism: 'CKM_SHA256' }, message)), digest);
});

test('role boundaries hold through the facade', async () => {
  const { hsm, admin, alice } = await activeDevice();
  const aes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'aes' });
  // admins manage users, not keys
  rejects(() => admin.encrypt(aes, { mechanism: 'CKM_AES_GCM' }, new Uint8Array(16)), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => admin.generateKey({ keyType: 'AES', bits: 256 }), 'COFFER_PERMISSION_DENIED');
  // crypto users do not manage users
  await rejectsAsync(alice.createUser('mallory', 'mallory-password', 'crypto-user'), 'COFFER_PERMISSION_DENIED');
  // another crypto user cannot see or use alice's key until it is shared
  await admin.createUser('bob', 'bob-password', 'crypto-user');
  const bob = hsm.openSession();
  await bob.login('bob', 'bob-password');
  rejects(() => bob.encrypt(aes, { mechanism: 'CKM_AES_GCM' }, new Uint8Array(16)), 'COFFER_OBJECT_NOT_FOUND');
  await alice.share(aes, 'BOB');
  const sealed = bob.encrypt(aes, { mechanism: 'CKM_AES_GCM' }, new Uint8Array(16));
  assert.deepEqual(Buffer.from(alice.decrypt(aes, { mechanism: 'CKM_AES_GCM' }, sealed)), Buffer.alloc(16));
  await rejectsCode(() => bob.destroy(aes), 'COFFER_PERMISSION_DENIED');
  // a user who owns or shares keys cannot be deleted
  await rejectsCode(() => admin.deleteUser('bob'), 'COFFER_USER_IN_USE');
  // sessions without login do nothing
  const anon = hsm.openSession();
  rejects(() => anon.random(16), 'COFFER_NOT_LOGGED_IN');
  anon.close();
  rejects(() => anon.random(16), 'COFFER_SESSION_CLOSED');
});

test('the appliance user can never use a key', async () => {
  const store = new MemoryRecordStore();
  const hsm = Hsm.open({ store, kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  const applianceCredential = 'appliance-credential-0123456789';
  await hsm.initialiseUsers(PRECO, applianceCredential);
  await hsm.activate(PRECO, ADMIN_PW);
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('alice', 'alice-password', 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('alice', 'alice-password');
  const key = await alice.generateKey({ keyType: 'AES', bits: 128 });
  const app = hsm.openSession();
  await app.login('app_user', applianceCredential, 'appliance');
  rejects(() => app.encrypt(key, { mechanism: 'CKM_AES_GCM' }, new Uint8Array(1)), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => app.generateKey({ keyType: 'AES', bits: 128 }), 'COFFER_PERMISSION_DENIED');
  rejects(() => app.find(), 'COFFER_PERMISSION_DENIED');
});

test('lockout after 5 failed logins survives a restart; an admin unlocks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-device-'));
  try {
    const path = join(dir, 'device.db');
    const secret = SecretBytes.random(32);
    const storageKey = deriveStorageKey(secret);
    const { hsm } = await activeDevice(SealedStore.create({ path, storageKey }));
    const s = hsm.openSession();
    for (let i = 0; i < 5; i++) await rejectsAsync(s.login('alice', 'wrong-password'), 'COFFER_AUTH_FAILED');
    await rejectsAsync(s.login('alice', 'alice-password'), 'COFFER_USER_LOCKED');
    hsm.close();

    const reopened = Hsm.open({ store: SealedStore.open({ path, storageKey }), kdfParams: FAST_KDF });
    const again = reopened.openSession();
    await rejectsAsync(again.login('alice', 'alice-password'), 'COFFER_USER_LOCKED');
    const admin = reopened.openSession();
    await admin.login('admin', ADMIN_PW);
    await admin.unlockUser('alice');
    await again.login('alice', 'alice-password');
    assert.equal(again.user?.userId, 'alice');
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keys persist in the sealed store with the same handles after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-device-'));
  try {
    const path = join(dir, 'device.db');
    const storageKey = deriveStorageKey(SecretBytes.random(32));
    const { hsm, alice } = await activeDevice(SealedStore.create({ path, storageKey }));
    const { publicHandle, privateHandle } = await alice.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' }, { label: 'ed' }, { label: 'ed' });
    const session = await alice.generateKey({ keyType: 'AES', bits: 256 }, { token: false });
    const data = new Uint8Array([1, 2, 3]);
    const sig = alice.sign(privateHandle, { mechanism: 'CKM_EDDSA' }, data);
    hsm.close();

    const reopened = Hsm.open({ store: SealedStore.open({ path, storageKey }), kdfParams: FAST_KDF });
    const s = reopened.openSession();
    await s.login('alice', 'alice-password');
    assert.ok(s.verify(publicHandle, { mechanism: 'CKM_EDDSA' }, data, sig));
    assert.deepEqual(s.find({ label: 'ed' }).map((o) => o.handle).sort(), [publicHandle, privateHandle].sort());
    rejects(() => s.getAttributes(session), 'COFFER_OBJECT_NOT_FOUND'); // session objects do not survive
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quorum on the user service: M approvals by registered keys, single use', async () => {
  const { hsm, admin } = await activeDevice();
  const keys = [generateKeyPairSync('rsa', { modulusLength: 2048 }), generateKeyPairSync('ec', { namedCurve: 'P-256' })];
  await admin.createUser('admin2', 'admin2-password', 'admin');
  const admin2 = hsm.openSession();
  await admin2.login('admin2', 'admin2-password');
  await admin.registerQuorumKey(new Uint8Array(keys[0]!.publicKey.export({ format: 'der', type: 'spki' })));
  await admin2.registerQuorumKey(new Uint8Array(keys[1]!.publicKey.export({ format: 'der', type: 'spki' })));
  await admin.setQuorumValue('quorum', 2);
  let token = admin.generateQuorumToken('quorum');
  admin.approveQuorumToken(token.bytes, 'admin', nodeSign('sha256', token.bytes, keys[0]!.privateKey));
  admin.approveQuorumToken(token.bytes, 'admin2', nodeSign('sha256', token.bytes, keys[1]!.privateKey));
  await admin.setQuorumValue('user', 2);

  // without a token, user management is refused
  await rejectsAsync(admin.createUser('carol', 'carol-password', 'crypto-user'), 'COFFER_QUORUM_TOKEN_INVALID');
  token = admin.generateQuorumToken('user');
  // one approval of two is not enough (an approver counts once)
  admin.approveQuorumToken(token.bytes, 'admin2', nodeSign('sha256', token.bytes, keys[1]!.privateKey));
  admin.approveQuorumToken(token.bytes, 'admin2', nodeSign('sha256', token.bytes, keys[1]!.privateKey));
  await rejectsAsync(admin.createUser('carol', 'carol-password', 'crypto-user'), 'COFFER_QUORUM_REQUIRED');
  // an approval signed with the wrong key is refused
  assert.throws(() => admin.approveQuorumToken(token.bytes, 'admin', nodeSign('sha256', token.bytes, keys[1]!.privateKey)), (e) => isCofferError(e, 'COFFER_QUORUM_APPROVAL_INVALID'));
  token = admin.generateQuorumToken('user');
  admin.approveQuorumToken(token.bytes, 'admin', nodeSign('sha256', token.bytes, keys[0]!.privateKey));
  admin.approveQuorumToken(token.bytes, 'admin2', nodeSign('sha256', token.bytes, keys[1]!.privateKey));
  await admin.createUser('carol', 'carol-password', 'crypto-user');
  assert.ok(admin.listUsers().some((u) => u.name === 'carol'));
  // the token was consumed
  await rejectsAsync(admin.createUser('dave', 'dave-password', 'crypto-user'), 'COFFER_QUORUM_TOKEN_INVALID');
});

test('key work is refused before commissioning', async () => {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  rejects(() => hsm.objects(), 'COFFER_DEVICE_NOT_COMMISSIONED');
  await rejectsAsync(hsm.initialiseUsers(PRECO, 'appliance-credential-0123456789'), 'COFFER_DEVICE_NOT_COMMISSIONED');
});

test('FIPS mode needs verified firmware at commissioning and at every start', async () => {
  await rejectsAsync(
    provisionDevelopmentDevice(Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF }), authorities, { mode: 'FIPS' }),
    'COFFER_FIRMWARE_UNVERIFIED',
  );
});

test('the state digest is kept until the next write: equal to a fresh scan, never a stale one', async () => {
  // A memory store that counts the namespace scans a digest is made of.
  let scans = 0;
  class ScanCountingStore extends MemoryRecordStore {
    override list(ns: string): IterableIterator<[string, Uint8Array]> {
      scans++;
      return super.list(ns);
    }
  }
  const store = new ScanCountingStore();
  const { hsm, alice } = await activeDevice(store);
  const fresh = (): string => Buffer.from(stateDigestOf(store)).toString('hex');
  const digest = (): string => Buffer.from(hsm.stateDigest()).toString('hex');
  const first = digest();
  assert.equal(first, fresh());
  const before = scans;
  assert.equal(digest(), first);
  assert.equal(scans, before, 'no write since: the digest is not made again');
  const handle = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'digest-key' });
  const second = digest();
  assert.notEqual(second, first, 'a new key changes the digest');
  assert.equal(second, fresh());
  await alice.destroy(handle);
  assert.equal(digest(), fresh(), 'and so does its destruction');
  await assert.rejects(alice.destroy(handle));
  assert.equal(digest(), fresh(), 'a refused write leaves it right');
});
