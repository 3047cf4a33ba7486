// Tamper proof of sealed restore (docs/architecture.md §3, §9; docs/backup-format.md "Restore rules"): every
// region of a real backup blob — each fixed header field, each string and certificate with its
// length, the wrapped BEK, each body segment's ciphertext and its tag, the trailer's length and
// signature — is flipped (first, middle and last byte), cut at its start and has bytes inserted
// inside it; the blob is extended at its end, and segments, certificates and strings are reordered.
// Every variant must be refused by restoreBackup with a typed error of the code the spec gives for
// it, the target's state digest must stay byte-identical, and the target must still work (a login
// and a signature). Positive controls: the untouched blob, and a backup made by another device of
// the same cluster, both restore.
//
// Which code: not a backup → COFFER_FORMAT_BAD_MAGIC; version or suite → _UNKNOWN_VERSION; the key
// ids, the source HSM id, the device and operator certificates and the signature → the backup no
// longer proves where it comes from: COFFER_BACKUP_UNTRUSTED (a key-id mismatch is claimed only for
// a backup whose signature holds); anything else altered, missing, reordered, truncated or appended
// → COFFER_BACKUP_TAMPERED.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { BACKUP_TRAILER_BYTES, bufferSource, decodeBackupHeader, peekBackupHeaderLength, type BackupHeader } from '../../../src/formats/backup.js';
import { bufferSink } from '../../../src/hsm/backup/backup.js';
import { Hsm, type Session } from '../../../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import type { ScryptParams } from '../../../src/hsm/users/password.js';

const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 }; // tests only: logins in microseconds
const PRECO = 'preco-password';
const APPLIANCE_PW = 'appliance-credential-0123456789';
const CLUSTER = 'cluster-tamper2345ab';
const SEGMENT_BYTES = 256; // small: the body has many segments
const MESSAGE = new TextEncoder().encode('still works');
const TAMPERED: ErrorCode = 'COFFER_BACKUP_TAMPERED';
const UNTRUSTED: ErrorCode = 'COFFER_BACKUP_UNTRUSTED';

interface Device {
  readonly hsm: Hsm;
  /** A crypto user, its password and an EC P-256 key pair it owns. */
  readonly user: string;
  readonly password: string;
  readonly privateLabel: string;
  readonly publicPem: string;
}

/** A commissioned, activated device with an admin and one crypto user owning an EC key pair. */
async function device(authorities: DevelopmentAuthorities, user: string, adminPassword: string): Promise<Device & { admin: Session; session: Session }> {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  await hsm.initialiseUsers(PRECO, APPLIANCE_PW);
  await hsm.activate(PRECO, adminPassword);
  const admin = hsm.openSession();
  await admin.login('admin', adminPassword);
  const password = `${user}-password`;
  await admin.createUser(user, password, 'crypto-user');
  const session = hsm.openSession();
  await session.login(user, password);
  const pair = await session.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: `${user}-ec-pub` }, { label: `${user}-ec-priv` });
  return { hsm, admin, session, user, password, privateLabel: `${user}-ec-priv`, publicPem: session.exportPublic(pair.publicHandle) };
}

/** Logs in as the device's crypto user, signs with its key, checks the signature. */
async function stillWorks(d: Device): Promise<void> {
  const s = d.hsm.openSession();
  try {
    await s.login(d.user, d.password);
    const [key] = s.find({ label: d.privateLabel });
    assert.ok(key !== undefined, 'the key is still there');
    const signature = s.sign(key.handle, { mechanism: 'CKM_ECDSA_SHA256' }, MESSAGE);
    assert.ok(nodeVerify('sha256', MESSAGE, { key: createPublicKey(d.publicPem), dsaEncoding: 'ieee-p1363' }, signature));
  } finally {
    s.close();
  }
}

let authorities: DevelopmentAuthorities;
let source: Device;
let target: Device;
let blob: Uint8Array;
let header: BackupHeader;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  const src = await device(authorities, 'alice', 'admin-password-1');
  // Mixed state: users of each role, secret and private keys of several kinds, a shared key, a quorum value.
  await src.admin.createUser('admin2', 'admin2-password', 'admin');
  await src.admin.createUser('carol', 'carol-password', 'crypto-user');
  const s = src.session;
  await s.generateKey({ keyType: 'AES', bits: 256 }, { label: 'aes-256' });
  await s.generateKey({ keyType: 'AES', bits: 128 }, { label: 'aes-128', extractable: false });
  await s.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { label: 'hmac' });
  const shared = await s.generateKey({ keyType: 'AES', bits: 192 }, { label: 'shared' });
  await s.share(shared, 'carol');
  await s.generateKeyPair({ keyType: 'EC', curve: 'P-384' }, { label: 'p384-pub' }, { label: 'p384-priv' });
  await s.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' }, { label: 'ed-pub' }, { label: 'ed-priv' });
  await s.generateKeyPair({ keyType: 'RSA', bits: 2048 }, { label: 'rsa-pub' }, { label: 'rsa-priv' });
  source = src;
  const sink = bufferSink();
  src.hsm.createBackup(sink, { clusterId: CLUSTER, segmentBytes: SEGMENT_BYTES, journalPosition: 12n });
  blob = sink.bytes();
  header = decodeBackupHeader(blob.subarray(0, peekBackupHeaderLength(blob.subarray(0, 12))));
  // The target: same manufacturer and operator, its own different state (user bob and his key).
  target = await device(authorities, 'bob', 'target-admin-password');
});

// ── regions ─────────────────────────────────────────────────────────────────────────────────

interface Region {
  readonly name: string;
  readonly start: number;
  readonly length: number;
  /** The code for a flipped byte inside the region. */
  readonly flip: ErrorCode;
}

/** Every region of the blob, from the decoded header, in order; they tile the blob exactly. */
function regionsOf(h: BackupHeader, total: number): Region[] {
  const out: Region[] = [];
  let at = 0;
  const add = (name: string, length: number, flip: ErrorCode = TAMPERED): void => {
    if (length > 0) out.push({ name, start: at, length, flip });
    at += length;
  };
  add('magic', 4, 'COFFER_FORMAT_BAD_MAGIC');
  add('version', 2, 'COFFER_FORMAT_UNKNOWN_VERSION');
  add('suite', 2, 'COFFER_FORMAT_UNKNOWN_VERSION');
  add('header length', 4);
  add('mode', 1);
  add('creation time', 8);
  add('journal position', 8);
  add('MKBK key id', 8, UNTRUSTED);
  add('AKBK key id', 8, UNTRUSTED);
  add('record count', 4);
  add('user count', 4);
  add('object count', 4);
  add('body length', 8);
  add('segment size', 4);
  add('nonce prefix', 7);
  add('wrapped BEK length', 1);
  add('wrapped BEK', h.wrappedBek.length);
  const strings = [['backup id', h.backupId, TAMPERED], ['cluster id', h.clusterId, TAMPERED], ['source HSM id', h.sourceHsmId, UNTRUSTED], ['firmware version', h.firmwareVersion, TAMPERED]] as const;
  for (const [name, value, code] of strings) {
    add(`${name} length`, 2);
    add(name, Buffer.byteLength(value, 'utf8'), code);
  }
  add('certificate count', 1);
  const c = h.certificates;
  const certs = [['device certificate', c.device, UNTRUSTED], ['manufacturer root', c.manufacturerRoot, TAMPERED], ['operator certificate', c.operator, UNTRUSTED], ['operator root', c.operatorRoot, TAMPERED]] as const;
  for (const [name, der, code] of certs) {
    add(`${name} length`, 4);
    add(name, der.length, code);
  }
  assert.equal(at, h.headerBytes, 'the header regions end at H');
  const bodyEnd = h.headerBytes + Number(h.bodyBytes);
  for (let i = 0; at < bodyEnd; i++) {
    add(`segment ${i} ciphertext`, Math.min(h.segmentBytes, bodyEnd - at - 16));
    add(`segment ${i} tag`, 16);
  }
  add('signature length', 2);
  add('signature', BACKUP_TRAILER_BYTES - 2, UNTRUSTED);
  assert.equal(at, total, 'the regions tile the blob');
  return out;
}

/** The segments of the body as [start, end) offsets in the blob. */
function segmentsOf(h: BackupHeader): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const end = h.headerBytes + Number(h.bodyBytes);
  for (let at = h.headerBytes; at < end; at += h.segmentBytes + 16) out.push([at, Math.min(at + h.segmentBytes + 16, end)]);
  return out;
}

function concat(...parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function flipped(at: number): Uint8Array {
  const b = blob.slice();
  b[at] = (b[at] ?? 0) ^ 0x01;
  return b;
}

function swapped(a: readonly [number, number], b: readonly [number, number]): Uint8Array {
  assert.ok(a[1] <= b[0], 'a comes before b');
  return concat(blob.subarray(0, a[0]), blob.subarray(b[0], b[1]), blob.subarray(a[1], b[0]), blob.subarray(a[0], a[1]), blob.subarray(b[1]));
}

// ── the check ───────────────────────────────────────────────────────────────────────────────

let refusals = 0;

/** restoreBackup must refuse `bad` with `code`, and the target's state must not change. */
async function refused(what: string, bad: Uint8Array, code: ErrorCode): Promise<void> {
  const before = target.hsm.stateDigest();
  let error: unknown;
  try {
    await target.hsm.restoreBackup(bufferSource(bad));
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `${what}: restore accepted it`);
  assert.ok(isCofferError(error), `${what}: not a typed error: ${error instanceof Error ? error.message : typeof error}`);
  assert.equal(error.code, code, `${what}: code`);
  assert.deepEqual(target.hsm.stateDigest(), before, `${what}: state changed`);
  refusals++;
}

test('the regions of the blob are what the header says, and the body has several segments', () => {
  const regions = regionsOf(header, blob.length);
  assert.ok(segmentsOf(header).length >= 4, `segments: ${segmentsOf(header).length}`);
  assert.deepEqual(regions.map((r) => r.name).slice(0, 4), ['magic', 'version', 'suite', 'header length']);
  assert.equal(header.objectCount, source.hsm.status().tokenObjects);
  assert.equal(header.userCount, 5, 'admin, admin2, alice, carol and the appliance user');
});

test('a flipped byte anywhere (first, middle, last of every region) is refused, state unchanged', async () => {
  for (const r of regionsOf(header, blob.length)) {
    for (const at of new Set([r.start, r.start + (r.length >> 1), r.start + r.length - 1])) await refused(`${r.name} @${at - r.start}`, flipped(at), r.flip);
    await stillWorks(target);
  }
  // Not a flip but a meaningful edit: the mode byte says FIPS. The signature no longer holds, so the
  // device does not claim a mode mismatch for a backup it cannot attribute.
  const fips = blob.slice();
  fips[12] = 0x01;
  await refused('mode byte set to FIPS', fips, UNTRUSTED);
});

test('the blob cut at the start of any region, or cut by one byte, is refused, state unchanged', async () => {
  for (const r of regionsOf(header, blob.length)) {
    // An empty input is not a backup at all; any longer prefix is a backup cut short.
    await refused(`cut at ${r.name}`, blob.subarray(0, r.start), r.start === 0 ? 'COFFER_FORMAT_BAD_MAGIC' : TAMPERED);
  }
  await refused('last byte missing', blob.subarray(0, blob.length - 1), TAMPERED);
  await refused('trailer missing', blob.subarray(0, blob.length - BACKUP_TRAILER_BYTES), TAMPERED);
  await stillWorks(target);
});

test('bytes inserted inside any region, or appended to the blob, are refused, state unchanged', async () => {
  const extra = Uint8Array.of(0xa5, 0x5a);
  for (const r of regionsOf(header, blob.length)) {
    const at = r.start + (r.length >> 1);
    // Inside magic, version or suite the preamble itself changes; anywhere else the blob no longer
    // has the length its header gives, or its fields no longer end at H.
    const code = r.flip === 'COFFER_FORMAT_BAD_MAGIC' || r.flip === 'COFFER_FORMAT_UNKNOWN_VERSION' ? r.flip : TAMPERED;
    await refused(`insert in ${r.name}`, concat(blob.subarray(0, at), extra, blob.subarray(at)), code);
  }
  const segments = segmentsOf(header);
  const last = segments[segments.length - 1];
  const first = segments[0];
  assert.ok(last !== undefined && first !== undefined);
  await refused('one byte appended', concat(blob, Uint8Array.of(0)), TAMPERED);
  await refused('a second trailer appended', concat(blob, blob.subarray(blob.length - BACKUP_TRAILER_BYTES)), TAMPERED);
  await refused('a copy of the final segment after it', concat(blob.subarray(0, last[1]), blob.subarray(last[0], last[1]), blob.subarray(last[1])), TAMPERED);
  await refused('a segment duplicated in place of the next', concat(blob.subarray(0, first[1]), blob.subarray(first[0], first[1]), blob.subarray(first[1] + (first[1] - first[0]))), TAMPERED);
  await stillWorks(target);
});

test('reordered segments, certificates and strings are refused, state unchanged', async () => {
  const segments = segmentsOf(header);
  const [s0, s1, s2] = segments;
  const last = segments[segments.length - 1];
  assert.ok(s0 !== undefined && s1 !== undefined && s2 !== undefined && last !== undefined);
  await refused('segments 0 and 1 swapped', swapped(s0, s1), TAMPERED);
  await refused('segments 0 and 2 swapped', swapped(s0, s2), TAMPERED);
  await refused('a middle segment dropped', concat(blob.subarray(0, s1[0]), blob.subarray(s1[1])), TAMPERED);
  await refused('the final segment swapped with the one before', swapped(segments[segments.length - 2] ?? s0, last), TAMPERED);

  // Certificates with their length fields, as they lie in the header.
  const r = regionsOf(header, blob.length);
  const span = (name: string): [number, number] => {
    const len = r.find((x) => x.name === `${name} length`);
    const body = r.find((x) => x.name === name);
    assert.ok(len !== undefined && body !== undefined, name);
    return [len.start, body.start + body.length];
  };
  await refused('device certificate ⇄ manufacturer root', swapped(span('device certificate'), span('manufacturer root')), UNTRUSTED);
  await refused('operator certificate ⇄ operator root', swapped(span('operator certificate'), span('operator root')), UNTRUSTED);
  await refused('device certificate ⇄ operator certificate', swapped(span('device certificate'), span('operator certificate')), UNTRUSTED);
  // The roots in a header are informative (never trusted): swapping them is caught by the body's AAD.
  await refused('manufacturer root ⇄ operator root', swapped(span('manufacturer root'), span('operator root')), TAMPERED);
  await refused('backup id ⇄ cluster id', swapped(span('backup id'), span('cluster id')), TAMPERED);
  await stillWorks(target);
});

test('a backup from another device of the same cluster restores, and so does the untouched blob', async () => {
  assert.ok(refusals > 300, `refusals checked: ${refusals}`);
  // A peer of the same cluster: restores the source's backup, then makes its own.
  const peer = await device(authorities, 'dave', 'peer-admin-password');
  await peer.hsm.restoreBackup(bufferSource(blob));
  const sink = bufferSink();
  const summary = peer.hsm.createBackup(sink, { clusterId: CLUSTER, segmentBytes: SEGMENT_BYTES });
  const peerBlob = sink.bytes();
  assert.notEqual(decodeBackupHeader(peerBlob.subarray(0, peekBackupHeaderLength(peerBlob))).sourceHsmId, header.sourceHsmId, 'made by another device');
  assert.equal(summary.records, header.recordCount);

  const restored = await target.hsm.restoreBackup(bufferSource(peerBlob));
  assert.equal(restored.records, header.recordCount);
  assert.deepEqual(target.hsm.stateDigest(), source.hsm.stateDigest(), 'the target now holds the source state');
  await stillWorks({ ...source, hsm: target.hsm }); // the source's user and key, on the target
  await assert.rejects(target.hsm.openSession().login(target.user, target.password), (e) => isCofferError(e, 'COFFER_AUTH_FAILED'), 'the old state is gone');

  // The untouched original restores too (over the same state: idempotent).
  await target.hsm.restoreBackup(bufferSource(blob));
  assert.deepEqual(target.hsm.stateDigest(), source.hsm.stateDigest());
  await stillWorks({ ...source, hsm: target.hsm });
});
