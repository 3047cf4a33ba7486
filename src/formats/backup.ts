// Backup format v1: the codec of a sealed backup blob, `header ‖ body ‖ trailer`, every byte as
// docs/backup-format.md specifies it (docs/architecture.md §3). This module holds everything that needs no
// device secret: the header encoder and decoder, the record framing of the body plaintext, the
// trailer, the PBK derivation (given the keys), byte sources, and `verifyBackup`, which checks a
// blob's format, certificate chain and signature for anyone (control plane, customer, CLI).
// Sealing and opening the body with the BEK is the device's job (src/hsm/backup/backup.ts).
//
// The header parser follows aws-encryption-sdk-javascript's deserialize_header_v2.ts: magic,
// version and suite first; every length checked against a named limit (src/formats/limits.ts)
// before anything is read; an unknown version refused with its number in the error detail.

import { createHash, createVerify, type Hash, type KeyObject } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { assert } from '../assert.js';
import { CofferError, fail, isCofferError } from '../errors.js';
import { AEAD_SEGMENTS_MAX, AEAD_SEGMENT_BYTES_MAX, AEAD_SEGMENT_BYTES_MIN, AEAD_STREAM_PREFIX_BYTES, AEAD_TAG_BYTES, deriveKeyCounterHmacSha256, SecretBytes } from '../crypto/index.js';
import {
  BACKUP_BODY_BYTES_MAX, BACKUP_HEADER_BYTES_MAX, BACKUP_READ_CHUNK_BYTES, BACKUP_RECORDS_MAX, BACKUP_SEGMENT_BYTES, BACKUP_STRING_BYTES_MAX,
  CERTIFICATE_BYTES_MAX, SEALED_NAMESPACE_BYTES_MAX, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX,
} from './limits.js';
import { checkIssuedBy, checkRootCa, deviceSerialOf, p384PublicKey, parseCertificate, sameSpki, spkiOf, subjectField, type x509 } from './x509.js';

export { BACKUP_BODY_BYTES_MAX, BACKUP_HEADER_BYTES_MAX, BACKUP_READ_CHUNK_BYTES, BACKUP_RECORDS_MAX, BACKUP_SEGMENT_BYTES, BACKUP_STRING_BYTES_MAX };

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** "CFBK" (header offset 0). */
export const BACKUP_MAGIC: Uint8Array = ascii('CFBK');
export const BACKUP_FORMAT_VERSION = 1;
/** Suite 1: PBK by SP 800-108 / HMAC-SHA-256, BEK wrap AES-256-KW, body AES-256-GCM stream, ECDSA P-384 / SHA-384. */
export const BACKUP_SUITE = 1;
/** Signature context ("Trailer"): ASCII `coffer backup v1 signature` ‖ 0x00, first input of the signature. */
export const BACKUP_SIGNATURE_CONTEXT: Uint8Array = ascii('coffer backup v1 signature\0');
/** PBK label ("Key hierarchy"): names the format version; 20 bytes. */
export const BACKUP_PBK_LABEL: Uint8Array = ascii('coffer backup v1 pbk');
export const BACKUP_KEY_ID_BYTES = 8;
export const BACKUP_WRAPPED_BEK_BYTES = 40;
export const BACKUP_SIGNATURE_BYTES = 96;
/** u16 signature length ‖ 96-byte P1363 signature. */
export const BACKUP_TRAILER_BYTES = 2 + BACKUP_SIGNATURE_BYTES;
/** Magic, version, suite and header length: what peekBackupHeaderLength needs. */
export const BACKUP_PREAMBLE_BYTES = 12;
/** The namespace that never travels in a backup (the device's own identity, MKBK, AKBK, certificates). */
export const BACKUP_EXCLUDED_NAMESPACE = 'device';
export const BACKUP_USER_NAMESPACE = 'user';
export const BACKUP_OBJECT_NAMESPACE = 'object';

/** Header offsets of the fixed fields ("Header" table). */
const OFF = {
  version: 4, suite: 6, headerBytes: 8, mode: 12, createdMs: 13, journalPosition: 21, mkbkId: 29, akbkId: 37,
  recordCount: 45, userCount: 49, objectCount: 53, bodyBytes: 57, segmentBytes: 65, noncePrefix: 69, wrappedBekBytes: 76, wrappedBek: 77,
} as const;
const CERTIFICATE_COUNT = 4;
/** The smallest header: fixed fields, the wrapped BEK, four empty strings, four empty certificates. */
const HEADER_BYTES_MIN = OFF.wrappedBek + BACKUP_WRAPPED_BEK_BYTES + 4 * 2 + 1 + CERTIFICATE_COUNT * 4;
/** The largest time a JavaScript Date holds (ECMA-262 §21.4.1.22): creation times are dates. */
const CREATED_MS_MAX = 8.64e15;
const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;

export type BackupMode = 'FIPS' | 'NON_FIPS';
const MODE_BYTES: Readonly<Record<BackupMode, number>> = { FIPS: 0x01, NON_FIPS: 0x02 };

/** The four certificates a backup carries, DER. The roots are informative only. */
export interface BackupCertificates {
  readonly device: Uint8Array;
  readonly manufacturerRoot: Uint8Array;
  readonly operator: Uint8Array;
  readonly operatorRoot: Uint8Array;
}

export interface BackupHeaderFields {
  readonly mode: BackupMode;
  readonly createdMs: number;
  readonly journalPosition: bigint;
  readonly mkbkId: Uint8Array;
  readonly akbkId: Uint8Array;
  readonly recordCount: number;
  readonly userCount: number;
  readonly objectCount: number;
  readonly bodyBytes: bigint;
  readonly segmentBytes: number;
  readonly noncePrefix: Uint8Array;
  readonly wrappedBek: Uint8Array;
  readonly backupId: string;
  readonly clusterId: string;
  readonly sourceHsmId: string;
  readonly firmwareVersion: string;
  readonly certificates: BackupCertificates;
}

export interface BackupHeader extends BackupHeaderFields {
  readonly version: number;
  readonly suite: number;
  readonly headerBytes: number;
}

// ── header ──────────────────────────────────────────────────────────────────────────────────

/** Encodes a v1 header. Refuses (typed) what the decoder would refuse, so every header it makes decodes. */
export function encodeBackupHeader(fields: BackupHeaderFields): Uint8Array {
  checkFixedFields(fields);
  const strings = [fields.backupId, fields.clusterId, fields.sourceHsmId, fields.firmwareVersion].map(encodeHeaderString);
  const c = fields.certificates;
  const certs = [c.device, c.manufacturerRoot, c.operator, c.operatorRoot];
  for (const cert of certs) checkCertificateBytes(cert.length);
  const size = OFF.wrappedBek + BACKUP_WRAPPED_BEK_BYTES + strings.reduce((n, s) => n + 2 + s.length, 0) + 1 + certs.reduce((n, d) => n + 4 + d.length, 0);
  if (size > BACKUP_HEADER_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'headerBytes', max: BACKUP_HEADER_BYTES_MAX });
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  out.set(BACKUP_MAGIC, 0);
  v.setUint16(OFF.version, BACKUP_FORMAT_VERSION);
  v.setUint16(OFF.suite, BACKUP_SUITE);
  v.setUint32(OFF.headerBytes, size);
  v.setUint8(OFF.mode, MODE_BYTES[fields.mode]);
  v.setBigUint64(OFF.createdMs, BigInt(fields.createdMs));
  v.setBigUint64(OFF.journalPosition, fields.journalPosition);
  out.set(fields.mkbkId, OFF.mkbkId);
  out.set(fields.akbkId, OFF.akbkId);
  v.setUint32(OFF.recordCount, fields.recordCount);
  v.setUint32(OFF.userCount, fields.userCount);
  v.setUint32(OFF.objectCount, fields.objectCount);
  v.setBigUint64(OFF.bodyBytes, fields.bodyBytes);
  v.setUint32(OFF.segmentBytes, fields.segmentBytes);
  out.set(fields.noncePrefix, OFF.noncePrefix);
  v.setUint8(OFF.wrappedBekBytes, BACKUP_WRAPPED_BEK_BYTES);
  out.set(fields.wrappedBek, OFF.wrappedBek);
  let at = OFF.wrappedBek + BACKUP_WRAPPED_BEK_BYTES;
  for (const s of strings) {
    v.setUint16(at, s.length);
    out.set(s, at + 2);
    at += 2 + s.length;
  }
  v.setUint8(at++, CERTIFICATE_COUNT);
  for (const d of certs) {
    v.setUint32(at, d.length);
    out.set(d, at + 4);
    at += 4 + d.length;
  }
  assert(at === size, 'header fields fill the header exactly');
  return out;
}

/** The checks the encoder and the decoder share, so the two accept exactly the same headers. */
function checkFixedFields(f: BackupHeaderFields): void {
  assert(f.mode in MODE_BYTES, 'mode is FIPS or NON_FIPS');
  assert(f.mkbkId.length === BACKUP_KEY_ID_BYTES && f.akbkId.length === BACKUP_KEY_ID_BYTES, 'key ids are 8 bytes');
  assert(f.noncePrefix.length === AEAD_STREAM_PREFIX_BYTES, 'nonce prefix is 7 bytes');
  assert(f.wrappedBek.length === BACKUP_WRAPPED_BEK_BYTES, 'a KW-wrapped 256-bit BEK is 40 bytes');
  if (!Number.isSafeInteger(f.createdMs) || f.createdMs < 0 || f.createdMs > CREATED_MS_MAX) fail('COFFER_FORMAT_MALFORMED', { field: 'createdMs' });
  if (f.journalPosition < 0n || f.journalPosition > U64_MAX) fail('COFFER_FORMAT_MALFORMED', { field: 'journalPosition' });
  checkCounts(f.recordCount, f.userCount, f.objectCount);
  checkBody(f.bodyBytes, f.segmentBytes);
}

function checkCounts(records: number, users: number, objects: number): void {
  for (const n of [records, users, objects]) if (!Number.isInteger(n) || n < 0 || n > U32_MAX) fail('COFFER_FORMAT_MALFORMED', { field: 'count' });
  if (records > BACKUP_RECORDS_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'recordCount', max: BACKUP_RECORDS_MAX });
  if (users + objects > records) fail('COFFER_FORMAT_MALFORMED', { field: 'count' });
}

/** The segment size is in range and the body length is one that sealing some plaintext gives. */
function checkBody(bodyBytes: bigint, segmentBytes: number): void {
  if (!Number.isInteger(segmentBytes) || segmentBytes < AEAD_SEGMENT_BYTES_MIN || segmentBytes > AEAD_SEGMENT_BYTES_MAX) {
    fail('COFFER_FORMAT_LIMIT', { field: 'segmentBytes', min: AEAD_SEGMENT_BYTES_MIN, max: AEAD_SEGMENT_BYTES_MAX });
  }
  if (bodyBytes < 0n || bodyBytes > BigInt(BACKUP_BODY_BYTES_MAX)) fail('COFFER_FORMAT_LIMIT', { field: 'bodyBytes', max: BACKUP_BODY_BYTES_MAX });
  const sealedSegment = BigInt(segmentBytes + AEAD_TAG_BYTES);
  const segments = bodyBytes <= sealedSegment ? 1n : (bodyBytes + sealedSegment - 1n) / sealedSegment;
  if (segments > BigInt(AEAD_SEGMENTS_MAX)) fail('COFFER_FORMAT_LIMIT', { field: 'segments', max: AEAD_SEGMENTS_MAX });
  const plaintext = bodyBytes - segments * BigInt(AEAD_TAG_BYTES);
  if (plaintext < 0n || bodyBytesFor(plaintext, segmentBytes) !== bodyBytes) fail('COFFER_FORMAT_MALFORMED', { field: 'bodyBytes' });
}

function checkCertificateBytes(n: number): void {
  if (n > CERTIFICATE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'certificate', max: CERTIFICATE_BYTES_MAX });
  if (n === 0) fail('COFFER_FORMAT_MALFORMED', { field: 'certificate' });
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function encodeHeaderString(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length > BACKUP_STRING_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'string', max: BACKUP_STRING_BYTES_MAX });
  // A lone surrogate would encode as U+FFFD and not round-trip: refuse it here, as the decoder would.
  if (utf8.decode(b) !== s) fail('COFFER_FORMAT_MALFORMED', { field: 'string' });
  return b;
}

/**
 * Reads magic, version, suite and header length from the first 12 bytes (fewer are accepted, for a
 * short file). Not a backup: COFFER_FORMAT_BAD_MAGIC; another version or suite:
 * COFFER_FORMAT_UNKNOWN_VERSION naming it; a length past the limit: COFFER_FORMAT_LIMIT.
 */
export function peekBackupHeaderLength(first12: Uint8Array): number {
  const b = first12.subarray(0, BACKUP_PREAMBLE_BYTES);
  if (b.length < BACKUP_MAGIC.length || BACKUP_MAGIC.some((m, i) => b[i] !== m)) fail('COFFER_FORMAT_BAD_MAGIC', { expected: 'coffer backup' });
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length >= OFF.suite) {
    const version = v.getUint16(OFF.version);
    if (version !== BACKUP_FORMAT_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'backup', version, supported: BACKUP_FORMAT_VERSION });
  }
  if (b.length >= OFF.headerBytes) {
    const suite = v.getUint16(OFF.suite);
    if (suite !== BACKUP_SUITE) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'backup', version: BACKUP_FORMAT_VERSION, suite, supportedSuite: BACKUP_SUITE });
  }
  if (b.length < BACKUP_PREAMBLE_BYTES) fail('COFFER_FORMAT_TRUNCATED', { field: 'header' });
  const headerBytes = v.getUint32(OFF.headerBytes);
  if (headerBytes > BACKUP_HEADER_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'headerBytes', max: BACKUP_HEADER_BYTES_MAX });
  if (headerBytes < HEADER_BYTES_MIN) fail('COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
  return headerBytes;
}

/** Bounds-checked big-endian reads inside a header of exactly H bytes: a field past H is malformed. */
class HeaderReader {
  readonly #b: Uint8Array;
  readonly #v: DataView;
  at: number;

  constructor(b: Uint8Array, at: number) {
    this.#b = b;
    this.#v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.at = at;
  }

  #take(n: number): number {
    if (this.at + n > this.#b.length) fail('COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
    const start = this.at;
    this.at += n;
    return start;
  }

  u8(): number { return this.#v.getUint8(this.#take(1)); }
  u16(): number { return this.#v.getUint16(this.#take(2)); }
  u32(): number { return this.#v.getUint32(this.#take(4)); }
  u64(): bigint { return this.#v.getBigUint64(this.#take(8)); }
  bytes(n: number): Uint8Array {
    const start = this.#take(n);
    return this.#b.slice(start, start + n);
  }

  /** u16 length ‖ UTF-8, the length checked against its limit before the bytes are read. */
  string(): string {
    const n = this.u16();
    if (n > BACKUP_STRING_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'string', max: BACKUP_STRING_BYTES_MAX });
    const b = this.bytes(n);
    try {
      return utf8.decode(b);
    } catch (e) {
      return fail('COFFER_FORMAT_MALFORMED', { field: 'string' }, e);
    }
  }

  /** u32 length ‖ DER, the length checked against CERTIFICATE_BYTES_MAX before the bytes are read. */
  certificate(): Uint8Array {
    const n = this.u32();
    checkCertificateBytes(n);
    return this.bytes(n);
  }
}

/** Decodes exactly one header of H bytes (H as its own length field says). */
export function decodeBackupHeader(headerBytes: Uint8Array): BackupHeader {
  const size = peekBackupHeaderLength(headerBytes);
  if (headerBytes.length < size) fail('COFFER_FORMAT_TRUNCATED', { field: 'header' });
  if (headerBytes.length > size) fail('COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
  const r = new HeaderReader(headerBytes, OFF.mode);
  const modeByte = r.u8();
  const mode = modeByte === MODE_BYTES.FIPS ? 'FIPS' : modeByte === MODE_BYTES.NON_FIPS ? 'NON_FIPS' : fail('COFFER_FORMAT_MALFORMED', { field: 'mode' });
  const createdMs = r.u64();
  if (createdMs > BigInt(CREATED_MS_MAX)) fail('COFFER_FORMAT_MALFORMED', { field: 'createdMs' });
  const journalPosition = r.u64();
  const mkbkId = r.bytes(BACKUP_KEY_ID_BYTES);
  const akbkId = r.bytes(BACKUP_KEY_ID_BYTES);
  const [recordCount, userCount, objectCount] = [r.u32(), r.u32(), r.u32()];
  checkCounts(recordCount, userCount, objectCount);
  const bodyBytes = r.u64();
  const segmentBytes = r.u32();
  checkBody(bodyBytes, segmentBytes);
  const noncePrefix = r.bytes(AEAD_STREAM_PREFIX_BYTES);
  if (r.u8() !== BACKUP_WRAPPED_BEK_BYTES) fail('COFFER_FORMAT_MALFORMED', { field: 'wrappedBekBytes' });
  const wrappedBek = r.bytes(BACKUP_WRAPPED_BEK_BYTES);
  const [backupId, clusterId, sourceHsmId, firmwareVersion] = [r.string(), r.string(), r.string(), r.string()];
  if (r.u8() !== CERTIFICATE_COUNT) fail('COFFER_FORMAT_MALFORMED', { field: 'certificateCount' });
  const certificates = { device: r.certificate(), manufacturerRoot: r.certificate(), operator: r.certificate(), operatorRoot: r.certificate() };
  if (r.at !== size) fail('COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
  return {
    version: BACKUP_FORMAT_VERSION, suite: BACKUP_SUITE, headerBytes: size,
    mode, createdMs: Number(createdMs), journalPosition, mkbkId, akbkId, recordCount, userCount, objectCount,
    bodyBytes, segmentBytes, noncePrefix, wrappedBek, backupId, clusterId, sourceHsmId, firmwareVersion, certificates,
  };
}

/** SHA-256 of the header bytes [0, H): the AAD of every body segment ("Body"). */
export function backupHeaderDigest(headerBytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(headerBytes).digest());
}

/** B for a plaintext of P bytes: P + 16 × max(1, ⌈P / S⌉) ("Body"). */
export function bodyBytesFor(plaintextBytes: number | bigint, segmentBytes: number): bigint {
  const p = BigInt(plaintextBytes);
  assert(p >= 0n && Number.isInteger(segmentBytes) && segmentBytes > 0, 'lengths are non-negative');
  const s = BigInt(segmentBytes);
  const segments = p === 0n ? 1n : (p + s - 1n) / s;
  return p + segments * BigInt(AEAD_TAG_BYTES);
}

/** Bytes of the whole blob the header describes: H + B + trailer. */
export function backupBlobBytes(header: BackupHeader): number {
  return header.headerBytes + Number(header.bodyBytes) + BACKUP_TRAILER_BYTES;
}

// ── keys ────────────────────────────────────────────────────────────────────────────────────

/**
 * PBK = SP 800-108r1 counter-mode KDF, PRF HMAC-SHA-256, K_IN = MKBK ‖ AKBK, Label "coffer backup
 * v1 pbk", Context = mode ‖ MKBK id ‖ AKBK id, L = 256 ("Key hierarchy"). The caller destroys it.
 */
export function derivePbk(mkbk: SecretBytes, akbk: SecretBytes, mode: BackupMode, mkbkId: Uint8Array, akbkId: Uint8Array): SecretBytes {
  if (mkbk.length !== 32 || akbk.length !== 32) fail('COFFER_CRYPTO_KEY_SIZE', { expected: 32 });
  assert(mkbkId.length === BACKUP_KEY_ID_BYTES && akbkId.length === BACKUP_KEY_ID_BYTES, 'key ids are 8 bytes');
  const context = new Uint8Array(1 + 2 * BACKUP_KEY_ID_BYTES);
  context[0] = MODE_BYTES[mode];
  context.set(mkbkId, 1);
  context.set(akbkId, 1 + BACKUP_KEY_ID_BYTES);
  const keyIn = SecretBytes.concat([mkbk, akbk]);
  try {
    return deriveKeyCounterHmacSha256(keyIn, BACKUP_PBK_LABEL, context, 32);
  } finally {
    keyIn.destroy();
  }
}

// ── records ─────────────────────────────────────────────────────────────────────────────────

/** One device record in the body plaintext. `value` is the record's plaintext: secret. */
export interface BackupRecord {
  readonly ns: string;
  readonly id: string;
  readonly value: Uint8Array;
}

/** Expected counts, from the header: the reader refuses a body that does not match them. */
export interface BackupCounts {
  readonly records: number;
  readonly users: number;
  readonly objects: number;
}

const RECORD_KEY_BYTES_MAX = 1 + SEALED_NAMESPACE_BYTES_MAX + 2 + SEALED_RECORD_ID_BYTES_MAX + 4;

function recordKeyBytes(s: string, max: number): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length === 0 || utf8.decode(b) !== s) fail('COFFER_FORMAT_MALFORMED', { field: 'record' });
  if (b.length > max) fail('COFFER_FORMAT_LIMIT', { field: 'record', max });
  return b;
}

/** 1 ‖ ns ‖ 2 ‖ id ‖ 4 ‖ value ("Body"). The output holds the value: the caller wipes it. */
export function encodeBackupRecord(r: BackupRecord): Uint8Array {
  const ns = recordKeyBytes(r.ns, SEALED_NAMESPACE_BYTES_MAX);
  const id = recordKeyBytes(r.id, SEALED_RECORD_ID_BYTES_MAX);
  if (r.value.length > SEALED_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'record', max: SEALED_RECORD_BYTES_MAX });
  const out = new Uint8Array(new ArrayBuffer(1 + ns.length + 2 + id.length + 4 + r.value.length));
  const v = new DataView(out.buffer);
  v.setUint8(0, ns.length);
  out.set(ns, 1);
  v.setUint16(1 + ns.length, id.length);
  out.set(id, 3 + ns.length);
  v.setUint32(3 + ns.length + id.length, r.value.length);
  out.set(r.value, 7 + ns.length + id.length);
  return out;
}

/** Encoded size of a record, for a writer that sizes the body before writing it. */
export function backupRecordBytes(ns: string, id: string, valueBytes: number): number {
  return 1 + Buffer.byteLength(ns, 'utf8') + 2 + Buffer.byteLength(id, 'utf8') + 4 + valueBytes;
}

/** Records come in strictly ascending (namespace, id) order, comparing UTF-8 bytes ("Body"). */
export function compareBackupRecordKeys(a: { readonly ns: string; readonly id: string }, b: { readonly ns: string; readonly id: string }): number {
  return Buffer.compare(Buffer.from(a.ns, 'utf8'), Buffer.from(b.ns, 'utf8')) || Buffer.compare(Buffer.from(a.id, 'utf8'), Buffer.from(b.id, 'utf8'));
}

/**
 * Incremental parser of the body plaintext: push chunks of any size, get whole records. The body is
 * authenticated before it gets here, so anything that does not parse — a bad length, invalid UTF-8,
 * records out of order or repeated, a `device` record, a record cut at the end, counts other than
 * the header's — is COFFER_BACKUP_TAMPERED. After one failure the reader refuses everything.
 * Memory: one record (≤ 1 MiB) at a time, wiped once handed out.
 */
export class BackupRecordReader {
  readonly #expected: BackupCounts | undefined;
  #buf = new Uint8Array(RECORD_KEY_BYTES_MAX);
  #have = 0;
  #need = 1;
  #stage: 'ns' | 'id' | 'value' | 'body' = 'ns';
  #lastKey: Uint8Array | undefined;
  #count = 0;
  #users = 0;
  #objects = 0;
  #failed = false;

  constructor(expected?: BackupCounts) {
    this.#expected = expected;
  }

  get count(): number { return this.#count; }
  get users(): number { return this.#users; }
  get objects(): number { return this.#objects; }

  push(chunk: Uint8Array): BackupRecord[] {
    if (this.#failed) this.#tampered();
    const out: BackupRecord[] = [];
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(this.#need - this.#have, chunk.length - at);
      this.#buf.set(chunk.subarray(at, at + n), this.#have);
      this.#have += n;
      at += n;
      while (this.#have === this.#need) {
        const record = this.#advance();
        if (record !== undefined) out.push(record);
      }
    }
    return out;
  }

  /** Confirms the body ended on a record boundary with the header's counts. */
  finish(): void {
    if (this.#failed || this.#have !== 0) this.#tampered();
    const e = this.#expected;
    if (e !== undefined && (e.records !== this.#count || e.users !== this.#users || e.objects !== this.#objects)) this.#tampered();
  }

  /** The buffer holds `need` bytes: learn the next length, or hand out the finished record. */
  #advance(): BackupRecord | undefined {
    const b = this.#buf;
    const v = new DataView(b.buffer, 0, this.#have);
    if (this.#stage === 'ns') {
      const n = v.getUint8(0);
      if (n === 0 || n > SEALED_NAMESPACE_BYTES_MAX) this.#tampered();
      this.#stage = 'id';
      this.#need = 1 + n + 2;
    } else if (this.#stage === 'id') {
      const i = v.getUint16(this.#have - 2);
      if (i === 0 || i > SEALED_RECORD_ID_BYTES_MAX) this.#tampered();
      this.#stage = 'value';
      this.#need = this.#have + i + 4;
    } else if (this.#stage === 'value') {
      const valueBytes = v.getUint32(this.#have - 4);
      if (valueBytes > SEALED_RECORD_BYTES_MAX) this.#tampered();
      this.#stage = 'body';
      this.#need = this.#have + valueBytes;
      if (this.#need > b.length) this.#grow(this.#need);
    } else {
      return this.#emit();
    }
    return undefined;
  }

  #grow(size: number): void {
    const bigger = new Uint8Array(new ArrayBuffer(size));
    bigger.set(this.#buf.subarray(0, this.#have));
    this.#buf.fill(0);
    this.#buf = bigger;
  }

  #emit(): BackupRecord {
    const b = this.#buf;
    const nsBytes = b[0] ?? 0;
    const idBytes = (b[1 + nsBytes] ?? 0) * 256 + (b[2 + nsBytes] ?? 0);
    const keyEnd = 3 + nsBytes + idBytes;
    const key = b.slice(0, keyEnd); // ns length ‖ ns ‖ id length ‖ id
    let ns: string, id: string;
    try {
      ns = utf8.decode(key.subarray(1, 1 + nsBytes));
      id = utf8.decode(key.subarray(3 + nsBytes));
    } catch {
      return this.#tampered();
    }
    const last = this.#lastKey;
    if (ns === BACKUP_EXCLUDED_NAMESPACE || (last !== undefined && !keyAfter(key, last))) this.#tampered();
    const value = b.slice(keyEnd + 4, this.#have);
    b.fill(0, 0, this.#have);
    this.#have = 0;
    this.#need = 1;
    this.#stage = 'ns';
    this.#lastKey = key;
    this.#count++;
    if (ns === BACKUP_USER_NAMESPACE) this.#users++;
    if (ns === BACKUP_OBJECT_NAMESPACE) this.#objects++;
    if (this.#expected !== undefined && this.#count > this.#expected.records) this.#tampered();
    return { ns, id, value };
  }

  #tampered(): never {
    this.#failed = true;
    this.#buf.fill(0);
    return fail('COFFER_BACKUP_TAMPERED');
  }
}

/** Whether the encoded key `key` (ns length ‖ ns ‖ id length ‖ id) sorts strictly after `last`. */
function keyAfter(key: Uint8Array, last: Uint8Array): boolean {
  const ns = (k: Uint8Array): Uint8Array => k.subarray(1, 1 + (k[0] ?? 0));
  const id = (k: Uint8Array): Uint8Array => k.subarray(3 + (k[0] ?? 0));
  const c = Buffer.compare(ns(key), ns(last));
  return c > 0 || (c === 0 && Buffer.compare(id(key), id(last)) > 0);
}

// ── trailer and signature ───────────────────────────────────────────────────────────────────

/** u16 length (96) ‖ the P-384 P1363 signature ("Trailer"). */
export function encodeBackupTrailer(signature: Uint8Array): Uint8Array {
  assert(signature.length === BACKUP_SIGNATURE_BYTES, 'an ECDSA P-384 P1363 signature is 96 bytes');
  const out = new Uint8Array(BACKUP_TRAILER_BYTES);
  new DataView(out.buffer).setUint16(0, BACKUP_SIGNATURE_BYTES);
  out.set(signature, 2);
  return out;
}

/** The signature in a trailer of exactly 98 bytes; anything else is COFFER_FORMAT_MALFORMED. */
export function decodeBackupTrailer(trailer: Uint8Array): Uint8Array {
  if (trailer.length !== BACKUP_TRAILER_BYTES || (trailer[0] ?? 0) * 256 + (trailer[1] ?? 0) !== BACKUP_SIGNATURE_BYTES) {
    fail('COFFER_FORMAT_MALFORMED', { field: 'trailer' });
  }
  return trailer.slice(2);
}

/** What the signature input starts with: the context. Input = prefix ‖ header ‖ body, SHA-384. */
export function signedMessagePrefix(): Uint8Array {
  return BACKUP_SIGNATURE_CONTEXT.slice();
}

// ── byte sources ────────────────────────────────────────────────────────────────────────────

/** A random-access, synchronous byte source (a file or a buffer): restore reads the blob twice. */
export interface BackupSource {
  readonly length: number;
  /** Exactly `length` bytes from `offset`, in an array the caller owns. */
  read(offset: number, length: number): Uint8Array;
}

function checkRange(offset: number, length: number, total: number): void {
  assert(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= total, 'reads stay inside the source');
}

/** A source over bytes in memory. Reads return copies: a consumer may wipe what it reads. */
export function bufferSource(bytes: Uint8Array): BackupSource {
  return {
    length: bytes.length,
    read(offset, length) {
      checkRange(offset, length, bytes.length);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** A source over a file, read with positioned reads. Close it when done (idempotent). */
export function fileSource(path: string): BackupSource & { close(): void } {
  let fd: number | undefined;
  let length: number;
  try {
    fd = openSync(path, 'r');
    const st = fstatSync(fd);
    if (!st.isFile()) fail('COFFER_CLI_INPUT', { reason: 'not-a-file', file: basename(path) });
    length = st.size;
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    if (isCofferError(e)) throw e;
    return fail('COFFER_CLI_INPUT', { reason: 'unreadable-file', file: basename(path) }, e);
  }
  return {
    length,
    read(offset, n) {
      assert(fd !== undefined, 'read before close');
      checkRange(offset, n, length);
      const out = new Uint8Array(n);
      for (let done = 0; done < n; ) {
        const got = readSync(fd, out, done, n - done, offset + done);
        if (got === 0) fail('COFFER_FORMAT_TRUNCATED', { field: 'file' }); // the file shrank
        done += got;
      }
      return out;
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** Reads and decodes the header of a blob (typed format errors for anything that is not one). */
export function readBackupHeader(source: BackupSource): BackupHeader {
  const size = peekBackupHeaderLength(source.read(0, Math.min(BACKUP_PREAMBLE_BYTES, source.length)));
  if (source.length < size) fail('COFFER_FORMAT_TRUNCATED', { field: 'header' });
  return decodeBackupHeader(source.read(0, size));
}

/** A blob is exactly header ‖ body ‖ trailer: shorter is truncated, longer is malformed. */
export function checkBackupLength(source: BackupSource, header: BackupHeader): void {
  const expected = backupBlobBytes(header);
  if (source.length < expected) fail('COFFER_FORMAT_TRUNCATED', { field: 'blob' });
  if (source.length > expected) fail('COFFER_FORMAT_MALFORMED', { field: 'blob' });
}

/**
 * Streams prefix ‖ blob[0, H+B) through SHA-384 in chunks of ≤ BACKUP_READ_CHUNK_BYTES and checks
 * the trailer's signature with `key` (none: only `bodyHash` is fed). `bodyHash` gets blob[H, H+B).
 */
function scanSigned(source: BackupSource, header: BackupHeader, key: KeyObject | undefined, bodyHash?: Hash): boolean {
  const signedBytes = header.headerBytes + Number(header.bodyBytes);
  if (source.length !== signedBytes + BACKUP_TRAILER_BYTES) return false;
  const trailer = source.read(signedBytes, BACKUP_TRAILER_BYTES);
  if ((trailer[0] ?? 0) * 256 + (trailer[1] ?? 0) !== BACKUP_SIGNATURE_BYTES) return false;
  const verifier = createVerify('sha384');
  verifier.update(BACKUP_SIGNATURE_CONTEXT);
  for (let at = 0; at < signedBytes; at += BACKUP_READ_CHUNK_BYTES) {
    const chunk = source.read(at, Math.min(BACKUP_READ_CHUNK_BYTES, signedBytes - at));
    verifier.update(chunk);
    if (bodyHash !== undefined && at + chunk.length > header.headerBytes) bodyHash.update(chunk.subarray(Math.max(0, header.headerBytes - at)));
  }
  if (key === undefined) return false;
  try {
    return verifier.verify({ key, dsaEncoding: 'ieee-p1363' }, trailer.subarray(2));
  } catch {
    return false;
  }
}

/** The device certificate's P-384 key, or undefined if the certificate or key is unusable. */
function deviceKey(der: Uint8Array): KeyObject | undefined {
  try {
    return p384PublicKey(spkiOf(parseCertificate(der)));
  } catch (e) {
    if (e instanceof CofferError) return undefined;
    throw e;
  }
}

/**
 * Streams the signature check only (the device, during restore): SHA-384 over prefix ‖ blob[0, H+B),
 * ECDSA P-384 verify with the device certificate's key. False for any failure, a wrong length included.
 */
export function verifyBackupSignature(source: BackupSource, header: BackupHeader): boolean {
  const key = deviceKey(header.certificates.device);
  return key !== undefined && scanSigned(source, header, key);
}

// ── verification for anyone ─────────────────────────────────────────────────────────────────

/** The roots a verifier trusts, DER or PEM. The ones inside a backup are never trusted on their own. */
export interface BackupRoots {
  readonly manufacturerRoot: Uint8Array | string;
  readonly operatorRoot: Uint8Array | string;
}

export interface BackupVerdict {
  readonly header: BackupHeader;
  /** True when the chain and the signature hold (problems is then empty). */
  readonly verified: boolean;
  /** What failed, in fixed words (never secret: a backup header holds none). */
  readonly problems: readonly string[];
  /** The serial derived from the device certificate's key ('' if it cannot be read). */
  readonly deviceSerial: string;
  /** SHA-256 of the body [H, H+B), lower-case hex: names the sealed contents without opening them. */
  readonly bodySha256: string;
}

/** Why a certificate check failed: the typed error's fixed reason, never library text. */
function reasonOf(e: unknown): string {
  if (!isCofferError(e)) throw e;
  const r = e.detail['reason'];
  return typeof r === 'string' ? r : e.code;
}

async function attempt(problems: string[], what: string, check: () => Promise<void> | void): Promise<boolean> {
  try {
    await check();
    return true;
  } catch (e) {
    problems.push(`${what} (${reasonOf(e)})`);
    return false;
  }
}

function parsed(problems: string[], what: string, der: Uint8Array): x509.X509Certificate | undefined {
  try {
    return parseCertificate(der);
  } catch (e) {
    problems.push(`${what} cannot be read (${reasonOf(e)})`);
    return undefined;
  }
}

/** Chain checks of "Trailer": device → manufacturer root, operator → operator root, one key, its serial. */
async function checkChain(header: BackupHeader, roots: BackupRoots, atMs: number, problems: string[]): Promise<{ key?: KeyObject; serial: string }> {
  const mRoot = parseCertificate(roots.manufacturerRoot);
  const oRoot = parseCertificate(roots.operatorRoot);
  const device = parsed(problems, 'device certificate', header.certificates.device);
  const operator = parsed(problems, 'operator certificate', header.certificates.operator);
  await attempt(problems, 'manufacturer root is not a valid root CA', () => checkRootCa(mRoot, atMs));
  await attempt(problems, 'operator root is not a valid root CA', () => checkRootCa(oRoot, atMs));
  if (device !== undefined) await attempt(problems, 'device certificate does not chain to the manufacturer root', () => checkIssuedBy(device, mRoot, atMs));
  if (operator !== undefined) await attempt(problems, 'operator certificate does not chain to the operator root', () => checkIssuedBy(operator, oRoot, atMs));
  if (device === undefined) return { serial: '' };
  const spki = spkiOf(device);
  const serial = deviceSerialOf(spki);
  if (operator !== undefined && !sameSpki(spki, spkiOf(operator))) problems.push('operator certificate certifies another key than the device certificate');
  if (subjectField(device, 'CN') !== serial) problems.push('device certificate names another serial than its key gives');
  if (header.sourceHsmId !== serial) problems.push('source HSM id differs from the device certificate serial');
  let key: KeyObject | undefined;
  await attempt(problems, 'device certificate key is not a P-384 key', () => void (key = p384PublicKey(spki)));
  return key === undefined ? { serial } : { key, serial };
}

/**
 * Everything without a secret: format, header, chain to the given roots, the signature over the
 * whole blob (streamed, bounded memory). Throws typed format errors for input that is not a
 * well-formed backup (and COFFER_CERT_INVALID for roots that cannot be parsed); returns
 * verified=false with problems for chain and signature failures. Validity is judged at `atMs`.
 */
export async function verifyBackup(source: BackupSource, roots: BackupRoots, atMs: number = Date.now()): Promise<BackupVerdict> {
  const header = readBackupHeader(source);
  checkBackupLength(source, header);
  decodeBackupTrailer(source.read(backupBlobBytes(header) - BACKUP_TRAILER_BYTES, BACKUP_TRAILER_BYTES));
  const problems: string[] = [];
  const { key, serial } = await checkChain(header, roots, atMs, problems);
  const bodyHash = createHash('sha256');
  const signed = scanSigned(source, header, key, bodyHash);
  if (key !== undefined && !signed) problems.push('signature does not verify under the device certificate key');
  if (key === undefined) problems.push('signature cannot be checked without a device key');
  return { header, verified: problems.length === 0 && signed, problems, deviceSerial: serial, bodySha256: bodyHash.digest('hex') };
}
