// The audit record and the audit bundle (docs/audit.md "Format"): what an HSM writes to its audit
// log, and how a page of that log travels (management route, archive chunk, `coffer audit verify`).
//
// A record, version 1, big-endian (CONTRIBUTING.md rule 4):
//
//   0  magic "CAUD" (4)     4  version u8 (1)     5  suite u8 (1: SHA-256 chain, ECDSA P-384 checkpoints)
//   6  type u8 (1 event, 2 checkpoint)            7  reserved u8 (0)
//   8  seq u64              16 time u64 (ms since the Unix epoch, the device's clock)
//  24  previous chain hash (32)                   56 body length u16 (≤ AUDIT_RECORD_BYTES_MAX - 58)
//  58  body
//
// Event body: kind u8, outcome u8 (1 ok, 2 failed), handle count u8 (≤ AUDIT_HANDLES_MAX), then
// four texts (user, session, code, detail: u8 length + ASCII, ≤ AUDIT_TEXT_BYTES_MAX each), then
// the handles (u64 each). Checkpoint body: serial (u8 length + ASCII), signature (u8 length + bytes).
//
// The chain: a record's chain hash is SHA-256("coffer audit chain v1\0" ‖ record); the next record
// carries it as its previous hash. The first record of a device (seq 0) carries the genesis hash,
// SHA-256("coffer audit genesis v1\0" ‖ serial), so a record of another device never chains in. A
// checkpoint is signed by the device identity key (ECDSA P-384, identity.ts) over
// "coffer audit checkpoint v1\0" ‖ serial ‖ seq ‖ time ‖ previous hash: the signature covers every
// record before it through the chain. Records hold names, handles, codes and outcomes: never a secret.
//
// A bundle, version 1: magic "CAUB", version u8 (1), suite u8 (1), reserved u16 (0), device
// certificate (u16 length + DER), operator certificate (u16 length + DER; 0 when the device is not
// commissioned), record count u32 (≤ AUDIT_BUNDLE_RECORDS_MAX), then each record as u16 length + bytes.

import { createHash } from 'node:crypto';
import { fail } from '../errors.js';
import { ByteReader } from './byte_reader.js';
import { AUDIT_BUNDLE_RECORDS_MAX, AUDIT_HANDLES_MAX, AUDIT_RECORD_BYTES_MAX, AUDIT_TEXT_BYTES_MAX, CERTIFICATE_BYTES_MAX } from './limits.js';

export const AUDIT_RECORD_MAGIC = Uint8Array.from([0x43, 0x41, 0x55, 0x44]); // "CAUD"
export const AUDIT_BUNDLE_MAGIC = Uint8Array.from([0x43, 0x41, 0x55, 0x42]); // "CAUB"
export const AUDIT_RECORD_VERSION = 1;
export const AUDIT_BUNDLE_VERSION = 1;
export const AUDIT_SUITE = 1;
const HEADER_BYTES = 58;
const HASH_BYTES = 32;
const CHAIN_CONTEXT = new TextEncoder().encode('coffer audit chain v1\0');
const GENESIS_CONTEXT = new TextEncoder().encode('coffer audit genesis v1\0');
const CHECKPOINT_CONTEXT = new TextEncoder().encode('coffer audit checkpoint v1\0');

/** Every kind of event, with its stable code in the record (codes are never reused). */
export const AUDIT_KINDS = {
  'login': 1, 'logout': 2, 'lockout': 3,
  'user.create': 4, 'user.delete': 5, 'user.password': 6, 'user.unlock': 7,
  'quorum.register-key': 8, 'quorum.value': 9, 'quorum.approve': 10,
  'key.generate': 11, 'key.import': 12, 'key.export': 13, 'key.wrap': 14, 'key.unwrap': 15,
  'key.derive': 16, 'key.share': 17, 'key.unshare': 18, 'key.attribute': 19, 'key.destroy': 20,
  'backup': 21, 'restore': 22, 'zeroise': 23,
  'cluster.initialise-users': 24, 'cluster.activate': 25, 'device.change': 26, 'key.copy': 27,
} as const;
export type AuditKind = keyof typeof AUDIT_KINDS;
const KIND_OF_CODE = new Map<number, AuditKind>(Object.entries(AUDIT_KINDS).map(([k, c]) => [c, k as AuditKind]));

export type AuditOutcome = 'ok' | 'failed';

/** What happened: the fields a security officer asks about. Texts are ASCII (names, ids, codes). */
export interface AuditEvent {
  readonly kind: AuditKind;
  readonly outcome: AuditOutcome;
  /** The acting user (lower case), '' when none (the management interface, an anonymous session). */
  readonly user: string;
  /** The session the call came from, '' when none. */
  readonly session: string;
  /** The error code of a failed call, '' when it succeeded. */
  readonly code: string;
  /** A short non-secret word: the user a call was about, an attribute name, a backup id. */
  readonly detail: string;
  readonly handles: readonly number[];
}

export type AuditRecord =
  | { readonly type: 'event'; readonly seq: bigint; readonly timeMs: number; readonly prevHash: Uint8Array; readonly event: AuditEvent }
  | { readonly type: 'checkpoint'; readonly seq: bigint; readonly timeMs: number; readonly prevHash: Uint8Array; readonly serial: string; readonly signature: Uint8Array };

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** The hash the next record carries: SHA-256 over the domain string and the record's bytes. */
export function auditChainHash(recordBytes: Uint8Array): Uint8Array {
  return sha256(CHAIN_CONTEXT, recordBytes);
}

/** The previous hash of a device's record 0. */
export function auditGenesisHash(serial: string): Uint8Array {
  return sha256(GENESIS_CONTEXT, ascii(serial, 'serial'));
}

/** The exact bytes a checkpoint's signature covers (identity.ts: a context string first). */
export function auditCheckpointMessage(serial: string, seq: bigint, timeMs: number, prevHash: Uint8Array): Uint8Array {
  const s = ascii(serial, 'serial');
  const out = new Uint8Array(CHECKPOINT_CONTEXT.length + 1 + s.length + 16 + HASH_BYTES);
  out.set(CHECKPOINT_CONTEXT, 0);
  let at = CHECKPOINT_CONTEXT.length;
  out[at++] = s.length;
  out.set(s, at);
  at += s.length;
  const view = new DataView(out.buffer);
  view.setBigUint64(at, seq);
  view.setBigUint64(at + 8, BigInt(timeMs));
  out.set(prevHash, at + 16);
  return out;
}

// ── records ───────────────────────────────────────────────────────────────────────────────────

export function encodeAuditRecord(r: AuditRecord): Uint8Array {
  const body = r.type === 'event' ? eventBody(r.event) : checkpointBody(r.serial, r.signature);
  if (HEADER_BYTES + body.length > AUDIT_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'auditRecord', bytesMax: AUDIT_RECORD_BYTES_MAX });
  if (r.prevHash.length !== HASH_BYTES || r.seq < 0n || !Number.isSafeInteger(r.timeMs) || r.timeMs < 0) fail('COFFER_FORMAT_MALFORMED', { field: 'auditRecord' });
  const out = new Uint8Array(HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  out.set(AUDIT_RECORD_MAGIC, 0);
  out[4] = AUDIT_RECORD_VERSION;
  out[5] = AUDIT_SUITE;
  out[6] = r.type === 'event' ? 1 : 2;
  view.setBigUint64(8, r.seq);
  view.setBigUint64(16, BigInt(r.timeMs));
  out.set(r.prevHash, 24);
  view.setUint16(56, body.length);
  out.set(body, HEADER_BYTES);
  return out;
}

export function decodeAuditRecord(bytes: Uint8Array): AuditRecord {
  if (bytes.length > AUDIT_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'auditRecord', bytesMax: AUDIT_RECORD_BYTES_MAX });
  const r = new ByteReader(bytes);
  checkMagic(r.view(4), AUDIT_RECORD_MAGIC, 'audit-record');
  const version = r.u8();
  if (version !== AUDIT_RECORD_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'audit-record', found: version, supported: AUDIT_RECORD_VERSION });
  if (r.u8() !== AUDIT_SUITE) fail('COFFER_FORMAT_MALFORMED', { field: 'suite' });
  const type = r.u8();
  if (r.u8() !== 0) fail('COFFER_FORMAT_MALFORMED', { field: 'reserved' });
  const seq = r.u64();
  const time = r.u64();
  if (time > BigInt(Number.MAX_SAFE_INTEGER)) fail('COFFER_FORMAT_MALFORMED', { field: 'time' });
  const prevHash = new Uint8Array(r.view(HASH_BYTES));
  const bodyLength = r.u16();
  if (HEADER_BYTES + bodyLength !== bytes.length) fail(HEADER_BYTES + bodyLength > bytes.length ? 'COFFER_FORMAT_TRUNCATED' : 'COFFER_FORMAT_MALFORMED', { field: 'body' });
  const timeMs = Number(time);
  if (type === 1) return { type: 'event', seq, timeMs, prevHash, event: readEvent(r) };
  if (type === 2) {
    const serial = readText(r, 'serial');
    const signature = new Uint8Array(r.view(checkedLength(r.u8(), 'signature')));
    return { type: 'checkpoint', seq, timeMs, prevHash, serial, signature };
  }
  return fail('COFFER_FORMAT_MALFORMED', { field: 'type' });
}

function eventBody(e: AuditEvent): Uint8Array {
  const code = AUDIT_KINDS[e.kind];
  if (code === undefined) fail('COFFER_FORMAT_MALFORMED', { field: 'kind' });
  if (e.handles.length > AUDIT_HANDLES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'handles', max: AUDIT_HANDLES_MAX });
  const texts = [e.user, e.session, e.code, e.detail].map((t, i) => ascii(t, ['user', 'session', 'code', 'detail'][i] ?? 'text'));
  const out = new Uint8Array(3 + texts.reduce((n, t) => n + 1 + t.length, 0) + 8 * e.handles.length);
  const view = new DataView(out.buffer);
  out[0] = code;
  out[1] = e.outcome === 'ok' ? 1 : 2;
  out[2] = e.handles.length;
  let at = 3;
  for (const t of texts) {
    out[at++] = t.length;
    out.set(t, at);
    at += t.length;
  }
  for (const h of e.handles) {
    if (!Number.isSafeInteger(h) || h < 0) fail('COFFER_FORMAT_MALFORMED', { field: 'handles' });
    view.setBigUint64(at, BigInt(h));
    at += 8;
  }
  return out;
}

function readEvent(r: ByteReader): AuditEvent {
  const kind = KIND_OF_CODE.get(r.u8()) ?? fail('COFFER_FORMAT_MALFORMED', { field: 'kind' });
  const outcomeCode = r.u8();
  if (outcomeCode !== 1 && outcomeCode !== 2) fail('COFFER_FORMAT_MALFORMED', { field: 'outcome' });
  const handleCount = r.u8();
  if (handleCount > AUDIT_HANDLES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'handles', max: AUDIT_HANDLES_MAX });
  const user = readText(r, 'user');
  const session = readText(r, 'session');
  const code = readText(r, 'code');
  const detail = readText(r, 'detail');
  const handles: number[] = [];
  for (let i = 0; i < handleCount; i++) {
    const h = r.u64();
    if (h > BigInt(Number.MAX_SAFE_INTEGER)) fail('COFFER_FORMAT_MALFORMED', { field: 'handles' });
    handles.push(Number(h));
  }
  if (r.at !== r.bytes.length) fail('COFFER_FORMAT_MALFORMED', { field: 'body' });
  return { kind, outcome: outcomeCode === 1 ? 'ok' : 'failed', user, session, code, detail, handles };
}

function checkpointBody(serial: string, signature: Uint8Array): Uint8Array {
  const s = ascii(serial, 'serial');
  checkedLength(signature.length, 'signature');
  const out = new Uint8Array(2 + s.length + signature.length);
  out[0] = s.length;
  out.set(s, 1);
  out[1 + s.length] = signature.length;
  out.set(signature, 2 + s.length);
  return out;
}

function checkedLength(n: number, field: string): number {
  if (n > AUDIT_TEXT_BYTES_MAX * 2) fail('COFFER_FORMAT_LIMIT', { field, bytesMax: AUDIT_TEXT_BYTES_MAX * 2 });
  return n;
}

/** Printable ASCII only (names, ids, codes): a record can hold no arbitrary bytes, so no secret
 * slips into one by accident of encoding. */
function ascii(text: string, field: string): Uint8Array {
  if (text.length > AUDIT_TEXT_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field, bytesMax: AUDIT_TEXT_BYTES_MAX });
  if (!/^[\x20-\x7e]*$/.test(text)) fail('COFFER_FORMAT_MALFORMED', { field });
  return new TextEncoder().encode(text);
}

function readText(r: ByteReader, field: string): string {
  const n = r.u8();
  if (n > AUDIT_TEXT_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field, bytesMax: AUDIT_TEXT_BYTES_MAX });
  const bytes = r.view(n);
  for (const b of bytes) if (b < 0x20 || b > 0x7e) fail('COFFER_FORMAT_MALFORMED', { field });
  return new TextDecoder().decode(bytes);
}

function checkMagic(found: Uint8Array, magic: Uint8Array, format: string): void {
  if (found.length !== magic.length || found.some((b, i) => b !== magic[i])) fail('COFFER_FORMAT_BAD_MAGIC', { format });
}

// ── bundles ───────────────────────────────────────────────────────────────────────────────────

/** A page of a device's log with the certificates that verify it. */
export interface AuditBundle {
  readonly deviceCertificateDer: Uint8Array;
  /** Empty when the device was not commissioned when the page was taken. */
  readonly operatorCertificateDer: Uint8Array;
  /** Encoded records, in log order. */
  readonly records: readonly Uint8Array[];
}

export function encodeAuditBundle(b: AuditBundle): Uint8Array {
  if (b.records.length > AUDIT_BUNDLE_RECORDS_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'records', max: AUDIT_BUNDLE_RECORDS_MAX });
  for (const der of [b.deviceCertificateDer, b.operatorCertificateDer]) if (der.length > CERTIFICATE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'certificate', bytesMax: CERTIFICATE_BYTES_MAX });
  for (const rec of b.records) if (rec.length > AUDIT_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'auditRecord', bytesMax: AUDIT_RECORD_BYTES_MAX });
  const total = 8 + 2 + b.deviceCertificateDer.length + 2 + b.operatorCertificateDer.length + 4 + b.records.reduce((n, r) => n + 2 + r.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(AUDIT_BUNDLE_MAGIC, 0);
  out[4] = AUDIT_BUNDLE_VERSION;
  out[5] = AUDIT_SUITE;
  let at = 8;
  for (const der of [b.deviceCertificateDer, b.operatorCertificateDer]) {
    view.setUint16(at, der.length);
    out.set(der, at + 2);
    at += 2 + der.length;
  }
  view.setUint32(at, b.records.length);
  at += 4;
  for (const rec of b.records) {
    view.setUint16(at, rec.length);
    out.set(rec, at + 2);
    at += 2 + rec.length;
  }
  return out;
}

/** Decodes a bundle's framing (each record is decoded by the verifier, which names the bad one). */
export function decodeAuditBundle(bytes: Uint8Array): AuditBundle {
  const r = new ByteReader(bytes);
  checkMagic(r.view(4), AUDIT_BUNDLE_MAGIC, 'audit-bundle');
  const version = r.u8();
  if (version !== AUDIT_BUNDLE_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'audit-bundle', found: version, supported: AUDIT_BUNDLE_VERSION });
  if (r.u8() !== AUDIT_SUITE) fail('COFFER_FORMAT_MALFORMED', { field: 'suite' });
  if (r.u16() !== 0) fail('COFFER_FORMAT_MALFORMED', { field: 'reserved' });
  const certificate = (): Uint8Array => {
    const n = r.u16();
    if (n > CERTIFICATE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'certificate', bytesMax: CERTIFICATE_BYTES_MAX });
    return new Uint8Array(r.view(n));
  };
  const deviceCertificateDer = certificate();
  const operatorCertificateDer = certificate();
  const count = r.u32();
  if (count > AUDIT_BUNDLE_RECORDS_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'records', max: AUDIT_BUNDLE_RECORDS_MAX });
  const records: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const n = r.u16();
    if (n > AUDIT_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'auditRecord', bytesMax: AUDIT_RECORD_BYTES_MAX });
    records.push(new Uint8Array(r.view(n)));
  }
  if (r.at !== bytes.length) fail('COFFER_FORMAT_MALFORMED', { field: 'trailing' });
  return { deviceCertificateDer, operatorCertificateDer, records };
}
