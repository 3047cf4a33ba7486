// Generator of the backup format v1 known-answer vector (docs/backup-format.md, "Versions"). It was
// run ONCE to write vector-1.*, the certificates and the development factory/operator directories
// beside this file; they are committed and never regenerated or removed (a new vector gets a new
// number). It is kept so that a reader can see exactly how the bytes were made:
//
//   npx tsc -p tsconfig.json && node dist/test/vectors/backup-v1/make_vector.js --write test/vectors/backup-v1
//
// Without `--write DIR` it does nothing (node --test runs every compiled file under dist/test/).
// It refuses to overwrite an existing file.
//
// The state is real: a development device (NON_FIPS) with an admin, a second admin, a crypto user,
// an AES-256 key, a generic secret (HMAC), an EC P-256 key pair and a quorum value; its records
// (every namespace but `device`) are frozen into vector-1.json, and so is its `device` namespace
// (identity key, certificates, MKBK, AKBK) so that a test can reopen the very same device. The blob
// is assembled from the codec's pieces exactly as the spec says, with a fixed BEK, nonce prefix,
// ids and time, and an ECDSA signature made with a fixed nonce k (signDigestWithNonceForTest): a
// fixed k is for vectors only, since a repeated k reveals the signing key. The device's own
// createBackup, given the same Random, Clock and signer, must write the same bytes (checked here).

import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signDigestWithNonceForTest } from '../../../src/crypto/ecdsa_raw.js';
import { SecretBytes, kwWrap, sealStream, deriveKeyCounterHmacSha256 } from '../../../src/crypto/index.js';
import {
  backupHeaderDigest, bodyBytesFor, bufferSource, compareBackupRecordKeys, encodeBackupHeader, encodeBackupRecord, encodeBackupTrailer,
  signedMessagePrefix, verifyBackup, type BackupHeaderFields, type BackupRecord,
} from '../../../src/formats/backup.js';
import { derivePbk } from '../../../src/hsm/backup/pbk.js';
import { generateAkbkComponents, saveManufacturer, saveOperator } from '../../../src/factory/ceremony.js';
import { keyId, xorComponents } from '../../../src/crypto/backup_keys.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice } from '../../../src/factory/development.js';
import { Hsm } from '../../../src/hsm/device.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { bufferSink, type BackupSigner } from '../../../src/hsm/backup/backup.js';

const FAST_KDF = { log2N: 4, r: 1, p: 1 }; // verifiers cheap to check in tests
const CERT_TIME_MS = Date.UTC(2026, 10, 1); // certificates issued "now" on this clock
const CREATED_MS = Date.UTC(2026, 10, 1, 12, 0, 0, 123);
const SEGMENT_BYTES = 256; // small, so that the body has several segments
const P384_N = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Fixed 'random' inputs: SHA-256 of a label, cut to size (reproducible, visibly not secret). */
function fixedBytes(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = createHash('sha256').update(`coffer backup-v1 vector ${label} ${block}`).digest();
    out.set(h.subarray(0, Math.min(32, n - i)), i);
    i += 32;
  }
  return out;
}

const PASSWORDS = { preCo: 'preco-password', appliance: 'appliance-credential-0123456789', admin: 'admin-password-1', admin2: 'admin2-password', alice: 'alice-password' };
const MESSAGE = utf8('coffer backup vector message');

async function buildSource(dir: string): Promise<{ hsm: Hsm; store: MemoryRecordStore; facts: Record<string, string> }> {
  const clock = new ManualClock(CERT_TIME_MS);
  const authorities = await createDevelopmentAuthorities(clock);
  const comps = generateAkbkComponents(2);
  const akbk = xorComponents(comps.components);
  saveManufacturer(authorities.manufacturer, join(dir, 'factory'));
  saveOperator(authorities.operator, comps, join(dir, 'operator'));
  const store = new MemoryRecordStore();
  const hsm = Hsm.open({ store, clock, kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, { ...authorities, akbk }, { mode: 'NON_FIPS', clock });
  await hsm.initialiseUsers(PASSWORDS.preCo, PASSWORDS.appliance);
  await hsm.activate(PASSWORDS.preCo, PASSWORDS.admin);
  const admin = hsm.openSession();
  await admin.login('admin', PASSWORDS.admin);
  await admin.createUser('admin2', PASSWORDS.admin2, 'admin');
  await admin.createUser('alice', PASSWORDS.alice, 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('alice', PASSWORDS.alice);
  const aes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'vector-aes', extractable: false, sign: true, verify: true });
  const hmac = await alice.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { label: 'vector-hmac' });
  const ec = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: 'vector-ec-pub' }, { label: 'vector-ec-priv' });
  const admin2 = hsm.openSession();
  await admin2.login('admin2', PASSWORDS.admin2);
  for (const s of [admin, admin2]) await s.registerQuorumKey(new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' })));
  await admin.setQuorumValue('quorum', 2);
  const facts = {
    aesCmacOfMessage: hex(alice.sign(aes, { mechanism: 'CKM_AES_CMAC' }, MESSAGE)),
    hmacSha256OfMessage: hex(alice.sign(hmac, { mechanism: 'CKM_SHA256_HMAC' }, MESSAGE)),
    ecPublicKeyPem: alice.exportPublic(ec.publicHandle),
  };
  return { hsm, store, facts };
}

/** The records of `store`: the state (every namespace but 'device'), or the 'device' namespace. */
function records(store: MemoryRecordStore, which: 'state' | 'device'): BackupRecord[] {
  const out: BackupRecord[] = [];
  for (const ns of store.namespaces()) {
    if ((ns === 'device') !== (which === 'device')) continue;
    for (const [id, value] of store.list(ns)) out.push({ ns, id, value });
  }
  return out.sort(compareBackupRecordKeys);
}

/** A signer that hashes what streams past and signs with the fixed nonce k. */
function fixedNonceSigner(key: KeyObject, k: bigint): BackupSigner {
  const h = createHash('sha384');
  return { update: (chunk) => void h.update(chunk), sign: () => signDigestWithNonceForTest('P-384', key, h.digest(), k, { dsaEncoding: 'ieee-p1363' }) };
}

/** The device's own createBackup over the same store, with the fixed BEK, prefix, time and signer. */
function deviceBlob(store: MemoryRecordStore, bek: Uint8Array, prefix: Uint8Array, signer: BackupSigner, options: { clusterId: string; backupId: string; journalPosition: bigint; segmentBytes: number }): Uint8Array {
  const fixed = new Map<number, Uint8Array>([[32, bek], [7, prefix]]);
  const random = { bytes: (n: number): Uint8Array => fixed.get(n)?.slice() ?? new Uint8Array(randomBytes(n)) };
  const hsm = Hsm.open({ store, clock: new ManualClock(CREATED_MS), random, kdfParams: FAST_KDF });
  const sink = bufferSink();
  hsm.createBackup(sink, { ...options, signer });
  return sink.bytes();
}

function concat(...parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

async function main(dir: string): Promise<void> {
  for (const f of ['vector-1.bin', 'vector-1.json', 'factory', 'operator']) if (existsSync(join(dir, f))) throw new Error(`${f} exists: vectors are never regenerated`);
  mkdirSync(dir, { recursive: true });
  const { hsm, store, facts } = await buildSource(dir);
  const state = records(store, 'state');
  const identityPkcs8 = store.get('device', 'identity.key');
  if (identityPkcs8 === undefined) throw new Error('no identity key');
  const chain = hsm.provisioning.chain();
  if (chain.operatorCertificate === undefined || chain.operatorRoot === undefined) throw new Error('not commissioned');
  const certificates = { device: chain.deviceCertificate.der, manufacturerRoot: chain.manufacturerRoot.der, operator: chain.operatorCertificate.der, operatorRoot: chain.operatorRoot.der };
  const mkbk = hsm.provisioning.mkbk();
  const akbk = hsm.provisioning.akbk();
  const bek = SecretBytes.copyOf(fixedBytes('bek', 32));
  const noncePrefix = fixedBytes('nonce prefix', 7);
  const k = (BigInt('0x' + hex(fixedBytes('signature nonce', 48))) % (P384_N - 1n)) + 1n;
  const mkbkId = mkbk.use(keyId);
  const akbkId = akbk.use(keyId);
  const pbk = derivePbk(mkbk, akbk, 'NON_FIPS', mkbkId, akbkId);
  const plaintext = concat(...state.map(encodeBackupRecord));
  const fields: BackupHeaderFields = {
    mode: 'NON_FIPS', createdMs: CREATED_MS, journalPosition: 7n, mkbkId, akbkId,
    recordCount: state.length, userCount: state.filter((r) => r.ns === 'user').length, objectCount: state.filter((r) => r.ns === 'object').length,
    bodyBytes: bodyBytesFor(plaintext.length, SEGMENT_BYTES), segmentBytes: SEGMENT_BYTES, noncePrefix,
    wrappedBek: bek.use((b) => kwWrap(pbk, b)),
    backupId: 'backup-vector1abcdef', clusterId: 'cluster-vector1abcde', sourceHsmId: hsm.provisioning.identity().serial, firmwareVersion: '',
    certificates,
  };
  const header = encodeBackupHeader(fields);
  const body = sealStream(bek, noncePrefix, backupHeaderDigest(header), plaintext, SEGMENT_BYTES);
  const digest = createHash('sha384').update(signedMessagePrefix()).update(header).update(body).digest();
  const identityKey = createPrivateKey({ key: Buffer.from(identityPkcs8), format: 'der', type: 'pkcs8' });
  const signature = signDigestWithNonceForTest('P-384', identityKey, digest, k, { dsaEncoding: 'ieee-p1363' });
  const blob = concat(header, body, encodeBackupTrailer(signature));
  const byDevice = deviceBlob(store, bek.use((b) => b.slice()), noncePrefix, fixedNonceSigner(identityKey, k), {
    clusterId: fields.clusterId, backupId: fields.backupId, journalPosition: fields.journalPosition, segmentBytes: SEGMENT_BYTES,
  });
  if (Buffer.compare(byDevice, blob) !== 0) throw new Error('the device writes other bytes than the codec assembly');
  const verdict = await verifyBackup(bufferSource(blob), { manufacturerRoot: certificates.manufacturerRoot, operatorRoot: certificates.operatorRoot }, CREATED_MS);
  if (!verdict.verified) throw new Error(`vector does not verify: ${verdict.problems.join('; ')}`);
  // The PBK through the general KDF too, as an intermediate value a reimplementation can check.
  const pbkAgain = deriveKeyCounterHmacSha256(SecretBytes.concat([mkbk, akbk]), utf8('coffer backup v1 pbk'), concat(Uint8Array.of(2), mkbkId, akbkId), 32);
  if (!pbkAgain.equals(pbk)) throw new Error('PBK mismatch');
  const certFiles = { device: 'device-cert.der', manufacturerRoot: 'manufacturer-root.der', operator: 'operator-cert.der', operatorRoot: 'operator-root.der' } as const;
  for (const [name, file] of Object.entries(certFiles)) writeFileSync(join(dir, file), certificates[name as keyof typeof certFiles], { flag: 'wx' });
  const json = {
    description: 'Coffer backup format v1, known-answer vector 1 (docs/backup-format.md). Made once by make_vector.ts; never regenerate or remove.',
    inputs: {
      mode: 'NON_FIPS', createdMs: CREATED_MS, journalPosition: '7', segmentBytes: SEGMENT_BYTES,
      backupId: fields.backupId, clusterId: fields.clusterId, sourceHsmId: fields.sourceHsmId, firmwareVersion: fields.firmwareVersion,
      mkbk: mkbk.use(hex), akbk: akbk.use(hex), bek: bek.use(hex), noncePrefix: hex(noncePrefix),
      signatureNonceK: k.toString(16).padStart(96, '0'),
      identityPkcs8: hex(identityPkcs8),
      certificates: certFiles,
      records: state.map((r) => ({ ns: r.ns, id: r.id, value: hex(r.value) })),
      deviceRecords: records(store, 'device').map((r) => ({ ns: r.ns, id: r.id, value: hex(r.value) })),
    },
    expected: {
      mkbkId: hex(mkbkId), akbkId: hex(akbkId), pbk: pbk.use(hex), wrappedBek: hex(fields.wrappedBek),
      headerBytes: header.length, headerSha256: hex(backupHeaderDigest(header)), bodyBytes: body.length, plaintextBytes: plaintext.length,
      segments: Math.ceil(plaintext.length / SEGMENT_BYTES), recordCount: fields.recordCount, userCount: fields.userCount, objectCount: fields.objectCount,
      signature: hex(signature), blobBytes: blob.length, blobSha256: createHash('sha256').update(blob).digest('hex'),
    },
    device: {
      note: 'What the restored state must still do (NON_FIPS device; users and keys as in the records).',
      passwords: PASSWORDS, message: hex(MESSAGE), ...facts,
    },
  };
  writeFileSync(join(dir, 'vector-1.json'), JSON.stringify(json, null, 2) + '\n', { flag: 'wx' });
  writeFileSync(join(dir, 'vector-1.bin'), blob, { flag: 'wx' });
  process.stdout.write(`wrote vector-1 (${blob.length} bytes, ${state.length} records, ${json.expected.segments} segments) to ${dir}\n`);
  hsm.close();
}

const at = process.argv.indexOf('--write');
const out = at === -1 ? undefined : process.argv[at + 1];
if (out !== undefined) await main(out);
