// Backup and restore between whole devices (src/hsm/backup/backup.ts, Hsm.createBackup/restoreBackup):
// round trips from an empty device and from a device with users, quorum and ~1k keys of every
// kind; the restored device answers exactly like the source; a restore replaces the target's state
// entirely and persists in the sealed store; the header says what the device is; sinks, sources,
// segment sizes and progress. Refusals are in backup_refusals.test.ts, 100k objects in
// backup_scale.test.ts.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { BACKUP_TRAILER_BYTES, bodyBytesFor, bufferSource, decodeBackupHeader, peekBackupHeaderLength, verifyBackup } from '../../../src/formats/backup.js';
import { pemOf } from '../../../src/formats/x509.js';
import { bufferSink, fileSink } from '../../../src/hsm/backup/backup.js';
import { fileSource } from '../../../src/hsm/backup/file_source.js';
import { Hsm, type Session } from '../../../src/hsm/device.js';
import { verifyIdentitySignature } from '../../../src/hsm/identity/identity.js';
import { createDevelopmentAuthorities, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { SealedStore, deriveStorageKey } from '../../../src/hsm/store/sealed_store.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import type { Handle, MechanismParams } from '../../../src/hsm/types.js';
import { ADMIN_PW, APPLIANCE_PW, CLUSTER, FAST_KDF, activeDevice, backupOf, commissionedDevice, hex, rejects, rejectsAsync } from './backup_support.js';
import { rejectsCode } from '../../helpers.js';

const DIR = mkdtempSync(join(tmpdir(), 'coffer-backup-test-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
let files = 0;
const newPath = (): string => join(DIR, `f-${files++}`);

let authorities: DevelopmentAuthorities;
before(async () => {
  authorities = await createDevelopmentAuthorities();
});

const DATA = new TextEncoder().encode('the same answer from every HSM of the cluster');
const spki = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }));

test('an empty device backs up to the smallest blob; it verifies, and restores to the same empty state', async () => {
  const clock = new ManualClock(Date.now() + 12_345);
  const source = await commissionedDevice(authorities, { clock });
  const blob = backupOf(source, { backupId: 'backup-emptyemptyem', journalPosition: 42n });
  const header = decodeBackupHeader(blob.subarray(0, peekBackupHeaderLength(blob.subarray(0, 12))));
  assert.equal(blob.length, header.headerBytes + 16 + BACKUP_TRAILER_BYTES, 'one empty final segment, then the trailer');
  assert.deepEqual(
    { records: header.recordCount, users: header.userCount, objects: header.objectCount, body: header.bodyBytes },
    { records: 0, users: 0, objects: 0, body: 16n },
  );
  // The header says what made it.
  const p = source.provisioning;
  assert.equal(header.mode, 'NON_FIPS');
  assert.equal(header.createdMs, clock.nowMs());
  assert.equal(header.journalPosition, 42n);
  assert.equal(header.backupId, 'backup-emptyemptyem');
  assert.equal(header.clusterId, CLUSTER);
  assert.equal(header.sourceHsmId, p.identity().serial);
  assert.equal(header.firmwareVersion, '');
  assert.equal(hex(header.mkbkId), hex(p.mkbkId()));
  assert.equal(hex(header.akbkId), hex(p.akbkId()));
  assert.equal(hex(header.certificates.device), hex(p.chain().deviceCertificate.der));
  assert.equal(header.segmentBytes, 65536);

  const verdict = await verifyBackup(bufferSource(blob), { manufacturerRoot: pemOf(authorities.manufacturer.rootCertificate), operatorRoot: pemOf(authorities.operator.rootCertificate) });
  assert.deepEqual([verdict.verified, verdict.problems], [true, []]);

  const target = await commissionedDevice(authorities);
  const summary = await target.restoreBackup(bufferSource(blob));
  assert.deepEqual(summary, { backupId: 'backup-emptyemptyem', bytes: blob.length, records: 0, users: 0, objects: 0 });
  assert.equal(hex(target.stateDigest()), hex(source.stateDigest()));
  assert.equal(target.status().usersInitialised, false);
});

test('backup ids are CloudHSM-shaped and fresh; createBackup refuses before commissioning', async () => {
  const hsm = await commissionedDevice(authorities);
  const ids = new Set(Array.from({ length: 5 }, () => decodeBackupHeader(headerOf(backupOf(hsm))).backupId));
  assert.equal(ids.size, 5);
  for (const id of ids) assert.match(id, /^backup-[2-7a-zA-Z]{11}$/);
  const fresh = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  rejects(() => fresh.createBackup(bufferSink(), { clusterId: CLUSTER }), 'COFFER_DEVICE_NOT_COMMISSIONED');
});

function headerOf(blob: Uint8Array): Uint8Array {
  return blob.subarray(0, peekBackupHeaderLength(blob.subarray(0, 12)));
}

// ── the full round trip ───────────────────────────────────────────────────────────────────────

interface Fixture {
  readonly handles: {
    aes: Handle; hmac: Handle; ecPub: Handle; ecPriv: Handle; edPub: Handle; edPriv: Handle;
    rsaPub: Handle; rsaPriv: Handle; sharedAes: Handle; quorumKey: Handle; sessionKey: Handle;
  };
  readonly adminKeys: readonly KeyObject[];
}

/** Users (one locked), quorum, and ~1k keys of every kind, some shared, some under key quorum. */
async function populate(hsm: Hsm, admin: Session, alice: Session): Promise<Fixture> {
  await admin.createUser('bob', 'bob-password', 'crypto-user');
  await admin.createUser('carol', 'carol-password', 'crypto-user');
  await admin.createUser('admin2', 'admin2-password', 'admin');
  const adminKeys = [generateKeyPairSync('ec', { namedCurve: 'P-256' }), generateKeyPairSync('ec', { namedCurve: 'P-384' })];
  const admin2 = hsm.openSession();
  await admin2.login('admin2', 'admin2-password');
  await admin.registerQuorumKey(spki(adminKeys[0]!.publicKey));
  await admin2.registerQuorumKey(spki(adminKeys[1]!.publicKey));
  await admin.setQuorumValue('quorum', 2);
  const intruder = hsm.openSession();
  for (let i = 0; i < 5; i++) await rejectsAsync(intruder.login('carol', 'wrong-password'), 'COFFER_AUTH_FAILED');
  await rejectsAsync(intruder.login('bob', 'wrong-password'), 'COFFER_AUTH_FAILED'); // one failure counted, not locked

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaPem = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  for (let i = 0; i < 600; i++) await alice.generateKey({ keyType: 'AES', bits: [128, 192, 256][i % 3]! }, { label: `aes-${i}`, id: Uint8Array.of(i & 0xff, i >> 8) });
  for (let i = 0; i < 100; i++) await alice.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { label: `hmac-${i}` });
  for (let i = 0; i < 100; i++) await alice.generateKeyPair({ keyType: 'EC', curve: i % 2 === 0 ? 'P-256' : 'P-384' }, { label: `ec-${i}` }, { label: `ec-${i}` });
  for (let i = 0; i < 50; i++) await alice.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' }, { label: `ed-${i}` }, { label: `ed-${i}` });
  for (let i = 0; i < 20; i++) await alice.importPrivateKey(rsaPem, { label: `rsa-${i}`, decrypt: true });
  const rsaPub = await alice.importPublicKey(rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString(), { label: 'rsa-pub', encrypt: true });
  const [aes] = alice.find({ label: 'aes-2' }).map((o) => o.handle);
  const [hmac] = alice.find({ label: 'hmac-7' }).map((o) => o.handle);
  const ec = alice.find({ label: 'ec-1' });
  const ed = alice.find({ label: 'ed-3' });
  const [rsaPriv] = alice.find({ label: 'rsa-5' }).map((o) => o.handle);
  const sharedAes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'shared' });
  await alice.share(sharedAes, 'bob');
  await alice.share(sharedAes, 'carol');
  const quorumKey = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'guarded', manageKeyQuorum: 2, useKeyQuorum: 2 });
  const sessionKey = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'session only', token: false });
  const pick = (list: readonly { handle: Handle; class: string }[], cls: string): Handle => list.find((o) => o.class === cls)?.handle ?? assert.fail(cls);
  assert.ok(aes !== undefined && hmac !== undefined && rsaPriv !== undefined);
  admin2.close();
  intruder.close();
  return {
    handles: {
      aes, hmac, ecPub: pick(ec, 'PUBLIC_KEY'), ecPriv: pick(ec, 'PRIVATE_KEY'), edPub: pick(ed, 'PUBLIC_KEY'), edPriv: pick(ed, 'PRIVATE_KEY'),
      rsaPub, rsaPriv, sharedAes, quorumKey, sessionKey,
    },
    adminKeys: adminKeys.map((k) => k.privateKey),
  };
}

async function login(hsm: Hsm, name: string, password: string): Promise<Session> {
  const s = hsm.openSession();
  await s.login(name, password);
  return s;
}

test('a device with users, quorum and ~1k keys of every kind restores into a sealed-store device that answers exactly like it', async () => {
  const src = await activeDevice(authorities);
  const fx = await populate(src.hsm, src.admin, src.alice);
  const h = fx.handles;
  const blob = backupOf(src.hsm);
  const header = decodeBackupHeader(headerOf(blob));
  assert.equal(header.objectCount, src.hsm.status().tokenObjects);
  assert.ok(header.objectCount > 1000, `${header.objectCount} objects`);
  assert.equal(header.userCount, 6); // admin, app_user, alice, bob, carol, admin2
  assert.ok(header.recordCount > header.objectCount + header.userCount, 'quorum and config records travel too');

  // The target has a state of its own, and sessions open on it.
  const path = newPath();
  const storageKey = deriveStorageKey(SecretBytes.random(32));
  const dst = await activeDevice(authorities, { store: SealedStore.create({ path, storageKey }) });
  await dst.admin.createUser('zed', 'zed-password', 'crypto-user');
  const targetOnly = await dst.alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'target only' });
  const before = dst.hsm.stateDigest();

  const summary = await dst.hsm.restoreBackup(bufferSource(blob));
  assert.deepEqual(summary, { backupId: header.backupId, bytes: blob.length, records: header.recordCount, users: 6, objects: header.objectCount });
  assert.notEqual(hex(dst.hsm.stateDigest()), hex(before));
  assert.equal(hex(dst.hsm.stateDigest()), hex(src.hsm.stateDigest()));
  // Sessions open at the restore are closed; the target's own users and keys are gone.
  rejects(() => dst.alice.find(), 'COFFER_SESSION_CLOSED');
  rejects(() => dst.admin.listUsers(), 'COFFER_SESSION_CLOSED');
  await rejectsAsync(dst.hsm.openSession().login('zed', 'zed-password'), 'COFFER_AUTH_FAILED');

  // Reopen the target from its file: the restore is durable, and the device answers like the source.
  dst.hsm.close();
  const target = Hsm.open({ store: SealedStore.open({ path, storageKey }), kdfParams: FAST_KDF });
  assert.equal(hex(target.stateDigest()), hex(src.hsm.stateDigest()));
  const admin = await login(target, 'admin', ADMIN_PW);
  const srcUsers = src.admin.listUsers();
  assert.deepEqual(admin.listUsers(), srcUsers, 'same users, lock states, failure counts and quorum keys');
  assert.deepEqual(srcUsers.find((u) => u.name === 'bob')?.failedLogins, 1);
  const [alice, bob] = [await login(target, 'alice', 'alice-password'), await login(target, 'bob', 'bob-password')];
  await login(target, 'admin2', 'admin2-password');
  await target.openSession().login('app_user', APPLIANCE_PW, 'appliance');
  assert.deepEqual(alice.find({ label: 'target only' }), []);
  assert.ok(!alice.find().some((o) => o.handle === targetOnly && o.label === 'target only'));
  assert.deepEqual(alice.find(), src.alice.find().filter((o) => o.handle !== h.sessionKey), 'same handles and attributes; the session object stayed behind');
  rejects(() => alice.getAttributes(h.sessionKey), 'COFFER_OBJECT_NOT_FOUND');
  assert.deepEqual(admin.quorumValues(), { user: 1, quorum: 2 });
  await rejectsAsync(target.openSession().login('carol', 'carol-password'), 'COFFER_USER_LOCKED');

  // Keys: what one device makes, the other takes.
  const gcm: MechanismParams = { mechanism: 'CKM_AES_GCM' };
  assert.equal(hex(alice.decrypt(h.aes, gcm, src.alice.encrypt(h.aes, gcm, DATA))), hex(DATA));
  assert.equal(hex(src.alice.decrypt(h.aes, gcm, alice.encrypt(h.aes, gcm, DATA))), hex(DATA));
  assert.equal(hex(bob.decrypt(h.sharedAes, gcm, src.alice.encrypt(h.sharedAes, gcm, DATA))), hex(DATA), 'sharing travels');
  const hmac: MechanismParams = { mechanism: 'CKM_SHA256_HMAC' };
  assert.equal(hex(alice.sign(h.hmac, hmac, DATA)), hex(src.alice.sign(h.hmac, hmac, DATA)));
  for (const [pub, priv, params] of [
    [h.ecPub, h.ecPriv, { mechanism: 'CKM_ECDSA_SHA384' }],
    [h.edPub, h.edPriv, { mechanism: 'CKM_EDDSA' }],
    [h.rsaPub, h.rsaPriv, { mechanism: 'CKM_SHA256_RSA_PKCS' }],
  ] as const) {
    assert.ok(alice.verify(pub, params, DATA, src.alice.sign(priv, params, DATA)), `${params.mechanism}: source signs, target verifies`);
    assert.ok(src.alice.verify(pub, params, DATA, alice.sign(priv, params, DATA)), `${params.mechanism}: target signs, source verifies`);
  }
  const oaep: MechanismParams = { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' };
  assert.equal(hex(alice.decrypt(h.rsaPriv, oaep, src.alice.encrypt(h.rsaPub, oaep, DATA))), hex(DATA));
  const edPub = createPublicKey(alice.exportPublic(h.edPub));
  assert.ok(nodeVerify(null, DATA, edPub, src.alice.sign(h.edPriv, { mechanism: 'CKM_EDDSA' }, DATA)));
  // Key quorum values travel: using the guarded key still needs approvals.
  for (const s of [alice, src.alice]) rejects(() => s.encrypt(h.quorumKey, gcm, DATA), 'COFFER_QUORUM_TOKEN_INVALID');
  // The admin quorum travels: changing a quorum value needs two admins' approvals on the target too.
  await rejectsCode(() => admin.setQuorumValue('quorum', 1), 'COFFER_QUORUM_TOKEN_INVALID');
  const token = admin.generateQuorumToken('quorum');
  admin.approveQuorumToken(token.bytes, 'admin', nodeSign('sha256', token.bytes, fx.adminKeys[0]!));
  admin.approveQuorumToken(token.bytes, 'admin2', nodeSign('sha384', token.bytes, fx.adminKeys[1]!));
  await admin.setQuorumValue('quorum', 1);
  // The handle counter travels: both devices give the next key the same handle.
  assert.equal(await alice.generateKey({ keyType: 'AES', bits: 256 }), await src.alice.generateKey({ keyType: 'AES', bits: 256 }));
  target.close();
});

test('a restore replaces a populated state with an empty one, and a device restores its own backup', async () => {
  const empty = await commissionedDevice(authorities);
  const emptyBlob = backupOf(empty);
  const { hsm, alice } = await activeDevice(authorities);
  const key = await alice.generateKey({ keyType: 'AES', bits: 256 });
  const own = backupOf(hsm);
  const ownDigest = hsm.stateDigest();
  await hsm.restoreBackup(bufferSource(emptyBlob));
  assert.equal(hex(hsm.stateDigest()), hex(empty.stateDigest()));
  assert.deepEqual([hsm.status().usersInitialised, hsm.status().tokenObjects, hsm.status().sessions], [false, 0, 0]);
  await hsm.restoreBackup(bufferSource(own));
  assert.equal(hex(hsm.stateDigest()), hex(ownDigest));
  const again = await login(hsm, 'alice', 'alice-password');
  assert.equal(again.getAttributes(key).handle, key);
});

// ── sinks, sources, segments, progress ──────────────────────────────────────────────────────

test('file sink and file source: the same bytes as in memory; the sink refuses to overwrite', async () => {
  const { hsm, alice } = await activeDevice(authorities);
  for (let i = 0; i < 50; i++) await alice.generateKey({ keyType: 'AES', bits: 256 });
  const path = newPath();
  const sink = fileSink(path);
  let summary;
  try {
    summary = hsm.createBackup(sink, { clusterId: CLUSTER });
  } finally {
    sink.close();
  }
  assert.equal(readFileSync(path).length, summary.bytes);
  assert.throws(() => fileSink(path), (e) => (e as NodeJS.ErrnoException).code === 'EEXIST');
  const target = await commissionedDevice(authorities);
  const source = fileSource(path);
  try {
    assert.equal((await target.restoreBackup(source)).objects, 50);
  } finally {
    source.close();
  }
  assert.equal(hex(target.stateDigest()), hex(hsm.stateDigest()));
  assert.ok(existsSync(path));
});

test('any segment size from 16 B works; the body length is the spec formula; chunks stay one segment; progress reaches the total', async () => {
  const { hsm, alice } = await activeDevice(authorities);
  for (let i = 0; i < 30; i++) await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
  // The plaintext length, to also cut it into segments that are all exactly full.
  const probe = decodeBackupHeader(headerOf(backupOf(hsm, { segmentBytes: 1 << 20 })));
  const plainBytes = Number(probe.bodyBytes) - 16;
  assert.ok(plainBytes % 4 === 0 || plainBytes % 2 === 0 || plainBytes % 3 === 0 || plainBytes > 0);
  const divisor = [2, 3, 4, 5, 6, 7].find((d) => plainBytes % d === 0 && plainBytes / d >= 16) ?? 1;
  for (const segmentBytes of [16, 17, 1000, 4096, 1 << 20, plainBytes, plainBytes / divisor]) {
    const chunks: number[] = [];
    const progress: [number, number][] = [];
    const inner = bufferSink();
    const summary = hsm.createBackup({ write: (c) => (chunks.push(c.length), inner.write(c)) }, { clusterId: CLUSTER, segmentBytes, onProgress: (d, t) => progress.push([d, t]) });
    const blob = inner.bytes();
    const header = decodeBackupHeader(headerOf(blob));
    const plaintext = Number(header.bodyBytes) - 16 * Math.max(1, Math.ceil(Number(header.bodyBytes) / (segmentBytes + 16)));
    assert.equal(header.bodyBytes, bodyBytesFor(plaintext, segmentBytes));
    assert.equal(summary.bytes, blob.length);
    // header, every sealed segment, trailer: each a chunk of its own
    assert.deepEqual(chunks.slice(1, -1).every((n) => n <= segmentBytes + 16), true);
    assert.equal(chunks.length, 2 + Math.max(1, Math.ceil(plaintext / segmentBytes)));
    assert.deepEqual(progress.at(-1), [blob.length, blob.length]);
    assert.ok(progress.every(([d], i) => i === 0 || d > (progress[i - 1]?.[0] ?? 0)), 'progress only grows');
    const target = await commissionedDevice(authorities);
    const restoreProgress: [number, number][] = [];
    await target.restoreBackup(bufferSource(blob), { onProgress: (d, t) => restoreProgress.push([d, t]) });
    assert.deepEqual(restoreProgress.at(-1), [2 * Number(header.bodyBytes), 2 * Number(header.bodyBytes)]);
    assert.equal(hex(target.stateDigest()), hex(hsm.stateDigest()));
  }
});

test('the state digest covers every record outside the device namespace, and only those', async () => {
  const { hsm, alice } = await activeDevice(authorities);
  const d0 = hex(hsm.stateDigest());
  assert.equal(hex(hsm.stateDigest()), d0, 'stable');
  const key = await alice.generateKey({ keyType: 'AES', bits: 256 });
  const d1 = hex(hsm.stateDigest());
  assert.notEqual(d1, d0);
  await alice.setAttribute(key, 'label', 'renamed');
  assert.notEqual(hex(hsm.stateDigest()), d1);
  await alice.generateKey({ keyType: 'AES', bits: 256 }, { token: false });
  const d2 = hex(hsm.stateDigest());
  alice.close(); // session objects are not state
  assert.equal(hex(hsm.stateDigest()), d2);
  const other = await activeDevice(authorities);
  assert.notEqual(hex(other.hsm.stateDigest()), hex(hsm.stateDigest()), 'salts and verifiers differ between devices');
});

test("the identity's stream signer signs exactly what sign() signs, fed in any pieces", async () => {
  const hsm = await commissionedDevice(authorities);
  const identity = hsm.provisioning.identity();
  const message = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
  const signer = identity.streamSigner();
  for (let at = 0; at < message.length; at += 7777) signer.update(message.subarray(at, at + 7777));
  const signature = signer.sign();
  assert.equal(signature.length, 96);
  assert.ok(verifyIdentitySignature(identity.publicKeySpki(), message, signature));
  assert.ok(!verifyIdentitySignature(identity.publicKeySpki(), message.subarray(1), signature));
  assert.throws(() => signer.sign(), /signs once/);
});

test('ids and namespaces whose UTF-8 order differs from the store order (U+FFFF against astral) travel in the format order', async () => {
  const store = new MemoryRecordStore();
  const hsm = await commissionedDevice(authorities, { store });
  const value = (s: string): Uint8Array => new TextEncoder().encode(s);
  store.transaction((tx) => {
    for (const ns of ['x\uFFFF', 'x😀', 'x']) for (const id of ['\uFFFF', '😀', 'a', '\uE000']) tx.put(ns, id, value(`${ns}/${id}`));
  });
  assert.deepEqual([...store.list('x')].map(([id]) => id), ['a', '😀', '\uE000', '\uFFFF'], 'the store orders by UTF-16 code units');
  const blob = backupOf(hsm, { segmentBytes: 16 });
  const target = await commissionedDevice(authorities);
  assert.equal((await target.restoreBackup(bufferSource(blob))).records, 12); // the reader refuses records out of UTF-8 order
  assert.equal(hex(target.stateDigest()), hex(hsm.stateDigest()));
});
