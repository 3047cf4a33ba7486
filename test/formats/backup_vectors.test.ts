// Known-answer vectors of backup format v1 (test/vectors/backup-v1/, docs/backup-format.md
// "Versions"): the committed blob is rebuilt byte for byte from its inputs, decoded field by field
// (through the codec and, independently, at the spec's offsets), re-encoded, decrypted with the PBK
// derived from the fixed keys, and its signature verified; corrupted copies fail. On the device:
// the source device, reopened over its frozen records with the fixed Random, Clock and signer,
// writes the same bytes; and the blob restores into a new device commissioned under the vector's
// development manufacturer and operator, whose users and keys then compute what they did.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, randomBytes, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signDigestWithNonceForTest } from '../../src/crypto/ecdsa_raw.js';
import { SecretBytes, kwUnwrap, kwWrap, openStream, sealStream } from '../../src/crypto/index.js';
import { isCofferError } from '../../src/errors.js';
import {
  BACKUP_TRAILER_BYTES, BackupRecordReader, backupHeaderDigest, bufferSource, decodeBackupHeader, encodeBackupHeader, encodeBackupRecord,
  encodeBackupTrailer, peekBackupHeaderLength, signedMessagePrefix, verifyBackup, verifyBackupSignature, type BackupHeaderFields, type BackupMode, type BackupRecord,
} from '../../src/formats/backup.js';
import { derivePbk } from '../../src/hsm/backup/pbk.js';
import { p384PublicKey, parseCertificate, spkiOf } from '../../src/formats/x509.js';
import { bufferSink, stateDigestOf, type BackupSigner } from '../../src/hsm/backup/backup.js';
import { loadManufacturer, loadOperator, readKeyFile } from '../../src/factory/ceremony.js';
import { keyId, xorComponents } from '../../src/crypto/backup_keys.js';
import { Hsm } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DIR = resolve(ROOT, 'test/vectors/backup-v1');

interface VectorJson {
  readonly inputs: {
    readonly mode: BackupMode; readonly createdMs: number; readonly journalPosition: string; readonly segmentBytes: number;
    readonly backupId: string; readonly clusterId: string; readonly sourceHsmId: string; readonly firmwareVersion: string;
    readonly mkbk: string; readonly akbk: string; readonly bek: string; readonly noncePrefix: string; readonly signatureNonceK: string; readonly identityPkcs8: string;
    readonly certificates: { readonly device: string; readonly manufacturerRoot: string; readonly operator: string; readonly operatorRoot: string };
    readonly records: ReadonlyArray<{ readonly ns: string; readonly id: string; readonly value: string }>;
    readonly deviceRecords: ReadonlyArray<{ readonly ns: string; readonly id: string; readonly value: string }>;
  };
  readonly expected: {
    readonly mkbkId: string; readonly akbkId: string; readonly pbk: string; readonly wrappedBek: string; readonly headerBytes: number; readonly headerSha256: string;
    readonly bodyBytes: number; readonly plaintextBytes: number; readonly segments: number; readonly recordCount: number; readonly userCount: number;
    readonly objectCount: number; readonly signature: string; readonly blobBytes: number; readonly blobSha256: string;
  };
  readonly device: {
    readonly passwords: Readonly<Record<'preCo' | 'appliance' | 'admin' | 'admin2' | 'alice', string>>;
    readonly message: string; readonly aesCmacOfMessage: string; readonly hmacSha256OfMessage: string; readonly ecPublicKeyPem: string;
  };
}

const V = JSON.parse(readFileSync(resolve(DIR, 'vector-1.json'), 'utf8')) as VectorJson;
const BLOB = new Uint8Array(readFileSync(resolve(DIR, 'vector-1.bin')));
const I = V.inputs;
const E = V.expected;
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const concat = (...parts: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const cert = (file: string): Uint8Array => new Uint8Array(readFileSync(resolve(DIR, file)));
const CERTS = { device: cert(I.certificates.device), manufacturerRoot: cert(I.certificates.manufacturerRoot), operator: cert(I.certificates.operator), operatorRoot: cert(I.certificates.operatorRoot) };
const RECORDS: readonly BackupRecord[] = I.records.map((r) => ({ ns: r.ns, id: r.id, value: unhex(r.value) }));
const ROOTS = { manufacturerRoot: CERTS.manufacturerRoot, operatorRoot: CERTS.operatorRoot };
const H = E.headerBytes;

/** The keys of the vector, fresh each time (tests destroy them). */
function keys(): { mkbk: SecretBytes; akbk: SecretBytes; bek: SecretBytes } {
  return { mkbk: SecretBytes.copyOf(unhex(I.mkbk)), akbk: SecretBytes.copyOf(unhex(I.akbk)), bek: SecretBytes.copyOf(unhex(I.bek)) };
}

test('the committed files are the ones described (length and SHA-256 of the blob)', () => {
  assert.equal(BLOB.length, E.blobBytes);
  assert.equal(createHash('sha256').update(BLOB).digest('hex'), E.blobSha256);
  assert.equal(H + E.bodyBytes + BACKUP_TRAILER_BYTES, BLOB.length);
});

test('the blob is rebuilt byte for byte from the inputs', () => {
  const { mkbk, akbk, bek } = keys();
  const mkbkId = mkbk.use(keyId);
  const akbkId = akbk.use(keyId);
  assert.equal(hex(mkbkId), E.mkbkId);
  assert.equal(hex(akbkId), E.akbkId);
  const pbk = derivePbk(mkbk, akbk, I.mode, mkbkId, akbkId);
  try {
    assert.equal(pbk.use(hex), E.pbk, 'PBK (SP 800-108 counter KDF, HMAC-SHA-256)');
    const wrappedBek = bek.use((b) => kwWrap(pbk, b));
    assert.equal(hex(wrappedBek), E.wrappedBek, 'AES-256-KW of the BEK under the PBK');
    const plaintext = concat(...RECORDS.map(encodeBackupRecord));
    assert.equal(plaintext.length, E.plaintextBytes);
    const fields: BackupHeaderFields = {
      mode: I.mode, createdMs: I.createdMs, journalPosition: BigInt(I.journalPosition), mkbkId, akbkId,
      recordCount: RECORDS.length, userCount: RECORDS.filter((r) => r.ns === 'user').length, objectCount: RECORDS.filter((r) => r.ns === 'object').length,
      bodyBytes: BigInt(E.bodyBytes), segmentBytes: I.segmentBytes, noncePrefix: unhex(I.noncePrefix), wrappedBek,
      backupId: I.backupId, clusterId: I.clusterId, sourceHsmId: I.sourceHsmId, firmwareVersion: I.firmwareVersion, certificates: CERTS,
    };
    const header = encodeBackupHeader(fields);
    assert.deepEqual(header, BLOB.subarray(0, H), 'header');
    assert.equal(hex(backupHeaderDigest(header)), E.headerSha256);
    const body = sealStream(bek, fields.noncePrefix, backupHeaderDigest(header), plaintext, I.segmentBytes);
    assert.deepEqual(body, BLOB.subarray(H, H + E.bodyBytes), 'body');
    const digest = createHash('sha384').update(signedMessagePrefix()).update(header).update(body).digest();
    const identity = createPrivateKey({ key: Buffer.from(unhex(I.identityPkcs8)), format: 'der', type: 'pkcs8' });
    const signature = signDigestWithNonceForTest('P-384', identity, digest, BigInt('0x' + I.signatureNonceK), { dsaEncoding: 'ieee-p1363' });
    assert.equal(hex(signature), E.signature, 'ECDSA P-384 with the fixed nonce');
    assert.deepEqual(concat(header, body, encodeBackupTrailer(signature)), BLOB, 'whole blob');
  } finally {
    for (const k of [mkbk, akbk, bek, pbk]) k.destroy();
  }
});

test('the header decodes to the inputs, at the offsets of the spec, and re-encodes to the same bytes', () => {
  assert.equal(peekBackupHeaderLength(BLOB.subarray(0, 12)), H);
  const h = decodeBackupHeader(BLOB.subarray(0, H));
  assert.equal(h.version, 1);
  assert.equal(h.suite, 1);
  assert.equal(h.headerBytes, H);
  assert.equal(h.mode, I.mode);
  assert.equal(h.createdMs, I.createdMs);
  assert.equal(h.journalPosition, BigInt(I.journalPosition));
  assert.equal(hex(h.mkbkId), E.mkbkId);
  assert.equal(hex(h.akbkId), E.akbkId);
  assert.deepEqual([h.recordCount, h.userCount, h.objectCount], [E.recordCount, E.userCount, E.objectCount]);
  assert.equal(h.bodyBytes, BigInt(E.bodyBytes));
  assert.equal(h.segmentBytes, I.segmentBytes);
  assert.equal(hex(h.noncePrefix), I.noncePrefix);
  assert.equal(hex(h.wrappedBek), E.wrappedBek);
  assert.deepEqual([h.backupId, h.clusterId, h.sourceHsmId, h.firmwareVersion], [I.backupId, I.clusterId, I.sourceHsmId, I.firmwareVersion]);
  assert.deepEqual(h.certificates, CERTS);
  assert.deepEqual(encodeBackupHeader(h), BLOB.subarray(0, H));

  // The same fields read straight from the bytes at docs/backup-format.md's offsets, without the codec.
  const v = new DataView(BLOB.buffer, BLOB.byteOffset, BLOB.byteLength);
  assert.equal(Buffer.from(BLOB.subarray(0, 4)).toString('latin1'), 'CFBK');
  assert.deepEqual([v.getUint16(4), v.getUint16(6), v.getUint32(8), v.getUint8(12)], [1, 1, H, 0x02]);
  assert.equal(v.getBigUint64(13), BigInt(I.createdMs));
  assert.equal(v.getBigUint64(21), BigInt(I.journalPosition));
  assert.equal(hex(BLOB.subarray(29, 37)), E.mkbkId);
  assert.equal(hex(BLOB.subarray(37, 45)), E.akbkId);
  assert.deepEqual([v.getUint32(45), v.getUint32(49), v.getUint32(53)], [E.recordCount, E.userCount, E.objectCount]);
  assert.equal(v.getBigUint64(57), BigInt(E.bodyBytes));
  assert.equal(v.getUint32(65), I.segmentBytes);
  assert.equal(hex(BLOB.subarray(69, 76)), I.noncePrefix);
  assert.equal(v.getUint8(76), 40);
  assert.equal(hex(BLOB.subarray(77, 117)), E.wrappedBek);
  let at = 117;
  for (const s of [I.backupId, I.clusterId, I.sourceHsmId, I.firmwareVersion]) {
    const n = v.getUint16(at);
    assert.equal(Buffer.from(BLOB.subarray(at + 2, at + 2 + n)).toString('utf8'), s);
    at += 2 + n;
  }
  assert.equal(v.getUint8(at++), 4);
  for (const der of [CERTS.device, CERTS.manufacturerRoot, CERTS.operator, CERTS.operatorRoot]) {
    assert.equal(v.getUint32(at), der.length);
    assert.deepEqual(BLOB.subarray(at + 4, at + 4 + der.length), der);
    at += 4 + der.length;
  }
  assert.equal(at, H, 'the header ends exactly at H');
  assert.equal(v.getUint16(H + E.bodyBytes), 96, 'trailer: signature length');
  assert.equal(hex(BLOB.subarray(H + E.bodyBytes + 2)), E.signature);
});

/** Opens the body of `blob` with the vector's keys and returns its records (throws on any failure). */
function openWithVectorKeys(blob: Uint8Array): BackupRecord[] {
  const { mkbk, akbk, bek } = keys();
  bek.destroy();
  const h = decodeBackupHeader(blob.subarray(0, H));
  const pbk = derivePbk(mkbk, akbk, h.mode, h.mkbkId, h.akbkId);
  const unwrapped = SecretBytes.adopt(kwUnwrap(pbk, h.wrappedBek));
  try {
    const plain = openStream(unwrapped, h.noncePrefix, backupHeaderDigest(blob.subarray(0, H)), blob.subarray(H, H + Number(h.bodyBytes)), h.segmentBytes);
    const reader = new BackupRecordReader({ records: h.recordCount, users: h.userCount, objects: h.objectCount });
    const records = reader.push(plain);
    reader.finish();
    return records;
  } finally {
    for (const k of [mkbk, akbk, pbk, unwrapped]) k.destroy();
  }
}

test('the body decrypts with the PBK of the fixed keys to the fixed records', () => {
  const { bek } = keys();
  const h = decodeBackupHeader(BLOB.subarray(0, H));
  const { mkbk, akbk } = keys();
  const pbk = derivePbk(mkbk, akbk, h.mode, h.mkbkId, h.akbkId);
  assert.deepEqual(kwUnwrap(pbk, h.wrappedBek), bek.use((b) => b.slice()), 'the wrapped BEK unwraps to the BEK');
  for (const k of [mkbk, akbk, pbk, bek]) k.destroy();
  const records = openWithVectorKeys(BLOB);
  assert.equal(records.length, E.recordCount);
  assert.deepEqual(records.map((r) => ({ ns: r.ns, id: r.id, value: hex(r.value) })), I.records);
});

test('the signature verifies, for the device and for anyone holding the roots', async () => {
  const h = decodeBackupHeader(BLOB.subarray(0, H));
  assert.equal(verifyBackupSignature(bufferSource(BLOB), h), true);
  const key = p384PublicKey(spkiOf(parseCertificate(CERTS.device)));
  assert.ok(nodeVerify('sha384', concat(signedMessagePrefix(), BLOB.subarray(0, H + E.bodyBytes)), { key, dsaEncoding: 'ieee-p1363' }, unhex(E.signature)), 'node:crypto agrees');
  const verdict = await verifyBackup(bufferSource(BLOB), ROOTS, I.createdMs);
  assert.deepEqual(verdict.problems, []);
  assert.equal(verdict.verified, true);
  assert.equal(verdict.deviceSerial, I.sourceHsmId);
  assert.equal(verdict.bodySha256, createHash('sha256').update(BLOB.subarray(H, H + E.bodyBytes)).digest('hex'));
  // Roots the blob does not chain to (each root in the other's place): not verified.
  const swapped = await verifyBackup(bufferSource(BLOB), { manufacturerRoot: CERTS.operatorRoot, operatorRoot: CERTS.manufacturerRoot }, I.createdMs);
  assert.equal(swapped.verified, false);
  assert.ok(swapped.problems.length >= 2, swapped.problems.join('; '));
});

test('corrupted copies of the vector fail: signature, decryption or decoding', async () => {
  const positions = [
    ['magic', 0], ['mode', 12], ['createdMs', 20], ['wrapped BEK', 100], ['backup id', 120], ['device certificate', 400],
    ['first body segment', H + 3], ['last body tag', H + E.bodyBytes - 1], ['signature', BLOB.length - 1],
  ] as const;
  for (const [what, at] of positions) {
    const bad = BLOB.slice();
    bad[at] = (bad[at] ?? 0) ^ 0x01;
    let header;
    try {
      header = decodeBackupHeader(bad.subarray(0, H));
    } catch (e) {
      assert.ok(isCofferError(e), `${what}: a typed error`);
      continue; // refused before anything else: fine
    }
    assert.equal(verifyBackupSignature(bufferSource(bad), header), false, `${what}: signature`);
    assert.equal((await verifyBackup(bufferSource(bad), ROOTS, I.createdMs)).verified, false, `${what}: verdict`);
    if (at < BLOB.length - BACKUP_TRAILER_BYTES) assert.throws(() => openWithVectorKeys(bad), (e) => isCofferError(e), `${what}: body does not open`);
  }
  // Cut short by one byte, or one byte longer: refused before any key is used.
  for (const bad of [BLOB.subarray(0, BLOB.length - 1), concat(BLOB, Uint8Array.of(0))]) {
    const h = decodeBackupHeader(bad.subarray(0, H));
    assert.equal(verifyBackupSignature(bufferSource(bad), h), false);
    await assert.rejects(verifyBackup(bufferSource(bad), ROOTS, I.createdMs), (e) => isCofferError(e));
  }
  // Another key in place of the MKBK: the PBK differs, so the BEK does not unwrap.
  const h = decodeBackupHeader(BLOB.subarray(0, H));
  const { mkbk, akbk, bek } = keys();
  const otherMkbk = SecretBytes.random(32);
  const wrong = derivePbk(otherMkbk, akbk, h.mode, h.mkbkId, h.akbkId);
  assert.throws(() => kwUnwrap(wrong, h.wrappedBek), (e) => isCofferError(e, 'COFFER_CRYPTO_UNWRAP_FAILED'));
  for (const k of [mkbk, akbk, bek, otherMkbk, wrong]) k.destroy();
});

// ── on the device ───────────────────────────────────────────────────────────────────────────

const FAST_KDF = { log2N: 4, r: 1, p: 1 }; // as when the vector's verifiers were made

/** A memory store holding `records`. */
function storeWith(...groups: ReadonlyArray<ReadonlyArray<{ readonly ns: string; readonly id: string; readonly value: string }>>): MemoryRecordStore {
  const store = new MemoryRecordStore();
  store.transaction((tx) => {
    for (const r of groups.flat()) tx.put(r.ns, r.id, unhex(r.value));
  });
  return store;
}

/** Hashes what streams past and signs it with the vector's fixed nonce (vectors only). */
function fixedNonceSigner(key: KeyObject): BackupSigner {
  const h = createHash('sha384');
  return { update: (chunk) => void h.update(chunk), sign: () => signDigestWithNonceForTest('P-384', key, h.digest(), BigInt('0x' + I.signatureNonceK), { dsaEncoding: 'ieee-p1363' }) };
}

test('the source device, reopened over its frozen records, writes the vector byte for byte', () => {
  const fixed = new Map<number, string>([[32, I.bek], [7, I.noncePrefix]]); // createBackup draws the BEK, then the nonce prefix
  const random = { bytes: (n: number): Uint8Array => { const f = fixed.get(n); return f === undefined ? new Uint8Array(randomBytes(n)) : unhex(f); } };
  const hsm = Hsm.open({ store: storeWith(I.deviceRecords, I.records), clock: new ManualClock(I.createdMs), random, kdfParams: FAST_KDF });
  assert.equal(hsm.status().serial, I.sourceHsmId);
  const identity = createPrivateKey({ key: Buffer.from(unhex(I.identityPkcs8)), format: 'der', type: 'pkcs8' });
  const sink = bufferSink();
  const summary = hsm.createBackup(sink, { clusterId: I.clusterId, backupId: I.backupId, journalPosition: BigInt(I.journalPosition), segmentBytes: I.segmentBytes, signer: fixedNonceSigner(identity) });
  assert.deepEqual(summary, { backupId: I.backupId, bytes: E.blobBytes, records: E.recordCount, users: E.userCount, objects: E.objectCount });
  assert.deepEqual(sink.bytes(), BLOB);
  hsm.close();
});

/** The vector's development manufacturer and operator (factory/, operator/), AKBK joined from its components. */
async function vectorAuthorities(): Promise<DevelopmentAuthorities> {
  const components = [1, 2].map((i) => readKeyFile(resolve(DIR, `operator/akbk-component-${i}.bin`)));
  try {
    return { manufacturer: await loadManufacturer(resolve(DIR, 'factory')), operator: await loadOperator(resolve(DIR, 'operator')), akbk: xorComponents(components) };
  } finally {
    for (const c of components) c.destroy();
  }
}

/** A new NON_FIPS device commissioned by `authorities`, its clock a day after the vector was made. */
async function newDevice(authorities: DevelopmentAuthorities): Promise<Hsm> {
  const clock = new ManualClock(I.createdMs + 86_400_000);
  const hsm = Hsm.open({ store: new MemoryRecordStore(), clock, kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS', clock });
  return hsm;
}

test('the vector restores into a new device of the same manufacturer and operator, whose keys still compute', async () => {
  const hsm = await newDevice(await vectorAuthorities());
  assert.notEqual(hsm.status().serial, I.sourceHsmId, 'another device than the source');
  const summary = await hsm.restoreBackup(bufferSource(BLOB));
  assert.deepEqual(summary, { backupId: I.backupId, bytes: E.blobBytes, records: E.recordCount, users: E.userCount, objects: E.objectCount });
  assert.deepEqual(hsm.stateDigest(), stateDigestOf(storeWith(I.records)), 'the state is exactly the vector\'s records');

  const d = V.device;
  const message = unhex(d.message);
  const alice = hsm.openSession();
  await alice.login('alice', d.passwords.alice);
  const [aes] = alice.find({ label: 'vector-aes' });
  const [hmac] = alice.find({ label: 'vector-hmac' });
  const [ec] = alice.find({ label: 'vector-ec-priv' });
  assert.ok(aes !== undefined && hmac !== undefined && ec !== undefined, 'alice still owns her three keys');
  assert.equal(hex(alice.sign(aes.handle, { mechanism: 'CKM_AES_CMAC' }, message)), d.aesCmacOfMessage);
  assert.equal(hex(alice.sign(hmac.handle, { mechanism: 'CKM_SHA256_HMAC' }, message)), d.hmacSha256OfMessage);
  const signature = alice.sign(ec.handle, { mechanism: 'CKM_ECDSA_SHA256' }, message);
  assert.ok(nodeVerify('sha256', message, { key: createPublicKey(d.ecPublicKeyPem), dsaEncoding: 'ieee-p1363' }, signature), 'the restored EC key is the original');
  const admin2 = hsm.openSession();
  await admin2.login('admin2', d.passwords.admin2);
  assert.equal(admin2.quorumValues().quorum, 2);
  hsm.close();
});

test('devices of another operator or another manufacturer refuse the vector, state unchanged', async () => {
  const own = await vectorAuthorities();
  const otherAkbk = await newDevice({ ...own, akbk: SecretBytes.random(32) }); // same roots, other AKBK
  const foreign = await newDevice(await createDevelopmentAuthorities(new ManualClock(I.createdMs))); // other roots
  for (const [hsm, code] of [[otherAkbk, 'COFFER_BACKUP_WRONG_KEYS'], [foreign, 'COFFER_BACKUP_UNTRUSTED']] as const) {
    const before = hsm.stateDigest();
    await assert.rejects(async () => { await hsm.restoreBackup(bufferSource(BLOB)); }, (e) => isCofferError(e, code), code);
    assert.deepEqual(hsm.stateDigest(), before);
    hsm.close();
  }
});
