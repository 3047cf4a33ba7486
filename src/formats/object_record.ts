// The stored form of one token object (docs/architecture.md §4): what the object table writes to the record
// store under namespace 'object', and what a backup carries for every key. Versioned binary,
// big-endian, every length checked against a named limit before it is read (CONTRIBUTING.md rule 4).
// The record holds key material in plaintext: the sealed store (and the backup) encrypt it, so the
// caller of encodeObjectRecord must zeroise the bytes it gets once they are written.
//
// Version 1 layout (offsets in bytes; all integers unsigned big-endian):
//
//   0   4  magic 'COBJ' (0x43 0x4f 0x42 0x4a)
//   4   2  version = 1
//   6   8  handle (≤ 2^53 - 1: handles are JavaScript numbers)
//  14   4  class, a PKCS#11 CKO_* value (v2.40 §2.2 table: 2 public, 3 private, 4 secret)
//  18   4  key type, a PKCS#11 CKK_* value (0 RSA, 3 EC, 0x10 GENERIC_SECRET, 0x1f AES, 0x40 EC_EDWARDS)
//  22   1  curve: 0 none, 1 P-256, 2 P-384, 3 P-521, 4 secp256k1, 5 Ed25519
//  23   4  key size in bits
//  27   4  boolean attributes, bit i = BOOLEAN_ATTRIBUTE_NAMES[i]; other bits must be 0
//  31   1  key-management quorum value (0, or QUORUM_MIN..QUORUM_MAX)
//  32   1  key-usage quorum value (same)
//  33   1  owner length (1..USER_NAME_CHARS_MAX), then the owner's user id (ASCII)
//  ..   1  sharee count (0..SHAREES_MAX), then per sharee: 1-byte length and user id
//  ..   2  label length (≤ LABEL_BYTES_MAX), then the label (UTF-8)
//  ..   2  id length (≤ OBJECT_ID_BYTES_MAX), then the id bytes
//  ..   1  KCV length (≤ KCV_BYTES_MAX), then the KCV
//  ..   4  key material length (1..KEY_MATERIAL_BYTES_MAX), then the material: the raw value of a
//          secret key, PKCS#8 DER of a private key, SPKI DER of a public key
//  end     nothing may follow (version 1)
//
// Version 2 (certificates, PKCS#11 v2.40 §4.6): the version 1 layout with class 1 (CKO_CERTIFICATE),
// then one more byte:
//  ..   1  certificate category (CKA_CERTIFICATE_CATEGORY, §4.6.1: 0 unspecified, 1 token user,
//          2 authority, 3 other entity)
//  end     nothing may follow
// A certificate record's key type, curve and size are those of the certificate's subject public key;
// its material is the X.509 certificate's DER (CKC_X_509, the only certificate type kept); its KCV is
// empty. Keys are still written as version 1, so every record an older build wrote reads unchanged,
// and a version 2 record holds a certificate and nothing else.
//
// Types are declared here rather than imported from hsm/types.ts because formats sits below hsm;
// they are the same string unions, so the hsm types assign to them structurally.

import { createHash } from 'node:crypto';
import { SecretBytes } from '../crypto/secret_bytes.js';
import { fail } from '../errors.js';
import { ByteReader } from './byte_reader.js';
import {
  KCV_BYTES_MAX,
  KEY_MATERIAL_BYTES_MAX,
  LABEL_BYTES_MAX,
  OBJECT_ID_BYTES_MAX,
  OBJECT_UID_BYTES,
  SESSION_SCOPE_CHARS_MAX,
  QUORUM_MAX,
  QUORUM_MIN,
  SHAREES_MAX,
  USER_NAME_CHARS_MAX,
} from './limits.js';

/** The record-store namespace of token objects, and the one of the object table's configuration
 * (its persisted handle counter). */
export const OBJECT_NAMESPACE = 'object';
export const OBJECT_CONFIG_NAMESPACE = 'config';

export const OBJECT_RECORD_MAGIC = Uint8Array.of(0x43, 0x4f, 0x42, 0x4a); // 'COBJ'
const MAGIC_U32 = new DataView(OBJECT_RECORD_MAGIC.buffer).getUint32(0);
export const OBJECT_RECORD_VERSION = 1;
/** The version of certificate records (header). */
export const OBJECT_RECORD_VERSION_CERTIFICATE = 2;
const SUPPORTED_VERSIONS: readonly number[] = [OBJECT_RECORD_VERSION, OBJECT_RECORD_VERSION_CERTIFICATE];
/** The largest CKA_CERTIFICATE_CATEGORY value (PKCS#11 v2.40 §4.6.1: 3, other entity). */
export const CERTIFICATE_CATEGORY_MAX = 3;

export type RecordClass = 'SECRET_KEY' | 'PRIVATE_KEY' | 'PUBLIC_KEY' | 'CERTIFICATE';
export type RecordKeyType = 'AES' | 'GENERIC_SECRET' | 'RSA' | 'EC' | 'EC_EDWARDS';
export type RecordCurve = 'P-256' | 'P-384' | 'P-521' | 'secp256k1' | 'Ed25519';

/** Bit order of the attribute field. Append only: a bit's meaning never changes within a version. */
export const BOOLEAN_ATTRIBUTE_NAMES = [
  'token', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive',
  'trusted', 'wrapWithTrusted', 'local', 'neverExtractable', 'alwaysSensitive', 'modifiable', 'destroyable',
] as const;
export type BooleanAttributeName = (typeof BOOLEAN_ATTRIBUTE_NAMES)[number];

export interface ObjectRecord {
  readonly handle: number;
  readonly class: RecordClass;
  readonly keyType: RecordKeyType;
  readonly curve?: RecordCurve;
  readonly bits: number;
  readonly attributes: Readonly<Record<BooleanAttributeName, boolean>>;
  readonly manageKeyQuorum: number;
  readonly useKeyQuorum: number;
  readonly owner: string;
  readonly sharees: readonly string[];
  readonly label: string;
  readonly id: Uint8Array;
  readonly kcv: Uint8Array;
  /** Owned by the record's holder: destroy it when the record is dropped. */
  readonly material: SecretBytes;
  /** CKA_CERTIFICATE_CATEGORY of a certificate (version 2 records); absent on keys. */
  readonly category?: number;
}

// PKCS#11 v2.40 CKO_* and CKK_* values (pkcs11t.h), so a record reads the same to a PKCS#11 tool.
const CLASS_CODES: Readonly<Record<RecordClass, number>> = { CERTIFICATE: 1, PUBLIC_KEY: 2, PRIVATE_KEY: 3, SECRET_KEY: 4 };
const KEY_TYPE_CODES: Readonly<Record<RecordKeyType, number>> = { RSA: 0, EC: 3, GENERIC_SECRET: 0x10, AES: 0x1f, EC_EDWARDS: 0x40 };
const CURVE_CODES: Readonly<Record<RecordCurve, number>> = { 'P-256': 1, 'P-384': 2, 'P-521': 3, secp256k1: 4, Ed25519: 5 };

const FIXED_BYTES = 33; // magic through the quorum values
const utf8 = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in a label, so that decode then encode gives the same bytes.
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function reverse<K extends string>(codes: Readonly<Record<K, number>>): ReadonlyMap<number, K> {
  return new Map(Object.entries(codes).map(([k, v]) => [v as number, k as K]));
}
const CLASS_BY_CODE = reverse(CLASS_CODES);
const KEY_TYPE_BY_CODE = reverse(KEY_TYPE_CODES);
const CURVE_BY_CODE = reverse(CURVE_CODES);

function checkQuorum(value: number, field: string): void {
  if (value !== 0 && !(Number.isInteger(value) && value >= QUORUM_MIN && value <= QUORUM_MAX)) {
    fail('COFFER_FORMAT_MALFORMED', { field });
  }
}

function checkLength(length: number, min: number, max: number, field: string): void {
  if (length > max) fail('COFFER_FORMAT_LIMIT', { field, max });
  if (length < min) fail('COFFER_FORMAT_MALFORMED', { field });
}

// ── encoder ──────────────────────────────────────────────────────────────────────────────────

/** Encodes `record`. The result contains the key material: zeroise it after use. */
export function encodeObjectRecord(record: ObjectRecord): Uint8Array {
  if (!Number.isSafeInteger(record.handle) || record.handle < 0) fail('COFFER_FORMAT_MALFORMED', { field: 'handle' });
  if (!Number.isInteger(record.bits) || record.bits < 0 || record.bits > 0xffffffff) fail('COFFER_FORMAT_MALFORMED', { field: 'bits' });
  checkQuorum(record.manageKeyQuorum, 'manageKeyQuorum');
  checkQuorum(record.useKeyQuorum, 'useKeyQuorum');
  const owner = utf8.encode(record.owner);
  checkLength(owner.length, 1, USER_NAME_CHARS_MAX, 'owner');
  checkLength(record.sharees.length, 0, SHAREES_MAX, 'sharees');
  const sharees = record.sharees.map((s) => utf8.encode(s));
  for (const s of sharees) checkLength(s.length, 1, USER_NAME_CHARS_MAX, 'sharee');
  if (new Set([record.owner, ...record.sharees]).size !== 1 + record.sharees.length) fail('COFFER_FORMAT_MALFORMED', { field: 'sharee' });
  const label = utf8.encode(record.label);
  checkLength(label.length, 0, LABEL_BYTES_MAX, 'label');
  checkLength(record.id.length, 0, OBJECT_ID_BYTES_MAX, 'id');
  checkLength(record.kcv.length, 0, KCV_BYTES_MAX, 'kcv');
  const materialBytes = record.material.length;
  checkLength(materialBytes, 1, KEY_MATERIAL_BYTES_MAX, 'material');
  const isCertificate = record.class === 'CERTIFICATE';
  if (isCertificate !== (record.category !== undefined)) fail('COFFER_FORMAT_MALFORMED', { field: 'category' });
  if (record.category !== undefined) checkCategory(record.category);

  const total = (isCertificate ? 1 : 0) + FIXED_BYTES + 1 + owner.length + 1 + sharees.reduce((n, s) => n + 1 + s.length, 0)
    + 2 + label.length + 2 + record.id.length + 1 + record.kcv.length + 4 + materialBytes;
  const out = new Uint8Array(new ArrayBuffer(total));
  const view = new DataView(out.buffer);
  out.set(OBJECT_RECORD_MAGIC, 0);
  view.setUint16(4, isCertificate ? OBJECT_RECORD_VERSION_CERTIFICATE : OBJECT_RECORD_VERSION);
  view.setBigUint64(6, BigInt(record.handle));
  view.setUint32(14, CLASS_CODES[record.class]);
  view.setUint32(18, KEY_TYPE_CODES[record.keyType]);
  view.setUint8(22, record.curve === undefined ? 0 : CURVE_CODES[record.curve]);
  view.setUint32(23, record.bits);
  view.setUint32(27, attributeBits(record.attributes));
  view.setUint8(31, record.manageKeyQuorum);
  view.setUint8(32, record.useKeyQuorum);
  let off = FIXED_BYTES;
  const put = (bytes: Uint8Array, lengthBytes: 1 | 2 | 4): void => {
    if (lengthBytes === 1) view.setUint8(off, bytes.length);
    else if (lengthBytes === 2) view.setUint16(off, bytes.length);
    else view.setUint32(off, bytes.length);
    out.set(bytes, off + lengthBytes);
    off += lengthBytes + bytes.length;
  };
  put(owner, 1);
  view.setUint8(off++, sharees.length);
  for (const s of sharees) put(s, 1);
  put(label, 2);
  put(record.id, 2);
  put(record.kcv, 1);
  record.material.use((m) => put(m, 4));
  if (record.category !== undefined) view.setUint8(off++, record.category);
  return out;
}

function checkCategory(category: number): void {
  if (!Number.isInteger(category) || category < 0 || category > CERTIFICATE_CATEGORY_MAX) fail('COFFER_FORMAT_MALFORMED', { field: 'category' });
}

/** The attribute field of a record: bit i = BOOLEAN_ATTRIBUTE_NAMES[i]. */
export function attributeBits(attributes: Readonly<Record<BooleanAttributeName, boolean>>): number {
  let bits = 0;
  BOOLEAN_ATTRIBUTE_NAMES.forEach((name, i) => {
    if (attributes[name]) bits |= 1 << i;
  });
  return bits >>> 0;
}

// ── decoder ──────────────────────────────────────────────────────────────────────────────────

function readString(r: ByteReader, length: number, field: string): string {
  try {
    return utf8Strict.decode(r.view(length));
  } catch (e) {
    if (e instanceof TypeError) fail('COFFER_FORMAT_MALFORMED', { field });
    throw e;
  }
}

function readUserId(r: ByteReader, field: string): string {
  const length = r.u8();
  checkLength(length, 1, USER_NAME_CHARS_MAX, field);
  return readString(r, length, field);
}

/** Reads magic and version; returns the version. */
function readHeader(r: ByteReader): number {
  if (r.u32() !== MAGIC_U32) fail('COFFER_FORMAT_BAD_MAGIC', { expected: 'COBJ' }); // one compare: every load reads every record
  const version = r.u16();
  if (!SUPPORTED_VERSIONS.includes(version)) {
    // Say what was found and what this build reads, so an operator knows which side to upgrade.
    fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'object record', version, supported: SUPPORTED_VERSIONS.join(',') });
  }
  return version;
}

function lookup<K>(map: ReadonlyMap<number, K>, code: number, field: string): K {
  return map.get(code) ?? fail('COFFER_FORMAT_MALFORMED', { field, code });
}

function readAttributeBits(r: ByteReader): number {
  const bits = r.u32();
  if (bits >>> BOOLEAN_ATTRIBUTE_NAMES.length !== 0) fail('COFFER_FORMAT_MALFORMED', { field: 'attributes' });
  return bits;
}

/** The attributes an attribute field (attributeBits) stands for. */
export function attributesFromBits(bits: number): Record<BooleanAttributeName, boolean> {
  const out = {} as Record<BooleanAttributeName, boolean>;
  BOOLEAN_ATTRIBUTE_NAMES.forEach((name, i) => {
    out[name] = (bits & (1 << i)) !== 0;
  });
  return out;
}

/**
 * A well-formed record read in place: its fixed fields and user ids decoded, and where its label,
 * id, KCV and key material sit in the bytes it was read from (offsets into those bytes; nothing
 * copied). What an in-memory index keeps (src/hsm/objects/object_index.ts) without building a
 * record object per key; decodeObjectRecord is this plus copies.
 */
export interface ObjectRecordLayout {
  readonly handle: number;
  readonly class: RecordClass;
  readonly keyType: RecordKeyType;
  readonly curve: RecordCurve | undefined;
  readonly bits: number;
  /** The attribute field (attributeBits): bit i = BOOLEAN_ATTRIBUTE_NAMES[i]. */
  readonly attributeBits: number;
  readonly manageKeyQuorum: number;
  readonly useKeyQuorum: number;
  readonly owner: string;
  readonly sharees: readonly string[];
  readonly label: string;
  readonly labelAt: number;
  readonly labelBytes: number;
  readonly idAt: number;
  readonly idBytes: number;
  readonly kcvAt: number;
  readonly kcvBytes: number;
  readonly materialAt: number;
  readonly materialBytes: number;
  /** CKA_CERTIFICATE_CATEGORY of a certificate; undefined for a key. */
  readonly category: number | undefined;
}

/**
 * Reads one record in place. Throws COFFER_FORMAT_* for anything but a well-formed record of a
 * supported version with nothing after it: the one validating reader, so the index and
 * decodeObjectRecord accept exactly the same records. The input is not modified or kept.
 */
export function readObjectRecordLayout(bytes: Uint8Array): ObjectRecordLayout {
  const r = new ByteReader(bytes);
  const version = readHeader(r);
  const handle = readHandle(r);
  const cls = lookup(CLASS_BY_CODE, r.u32(), 'class');
  // Version 2 is the certificate record, and a certificate is never written as version 1.
  if ((cls === 'CERTIFICATE') !== (version === OBJECT_RECORD_VERSION_CERTIFICATE)) fail('COFFER_FORMAT_MALFORMED', { field: 'class' });
  const keyType = lookup(KEY_TYPE_BY_CODE, r.u32(), 'keyType');
  const curveCode = r.u8();
  const curve = curveCode === 0 ? undefined : lookup(CURVE_BY_CODE, curveCode, 'curve');
  const bits = r.u32();
  const attributeBits = readAttributeBits(r);
  const manageKeyQuorum = r.u8();
  const useKeyQuorum = r.u8();
  checkQuorum(manageKeyQuorum, 'manageKeyQuorum');
  checkQuorum(useKeyQuorum, 'useKeyQuorum');
  const sharees: string[] = [];
  const owner = readUsers(r, sharees);
  const labelBytes = r.u16();
  checkLength(labelBytes, 0, LABEL_BYTES_MAX, 'label');
  const labelAt = r.at;
  const label = readString(r, labelBytes, 'label');
  const idBytes = r.u16();
  checkLength(idBytes, 0, OBJECT_ID_BYTES_MAX, 'id');
  const idAt = skip(r, idBytes);
  const kcvBytes = r.u8();
  checkLength(kcvBytes, 0, KCV_BYTES_MAX, 'kcv');
  const kcvAt = skip(r, kcvBytes);
  const materialBytes = r.u32();
  checkLength(materialBytes, 1, KEY_MATERIAL_BYTES_MAX, 'material');
  const materialAt = skip(r, materialBytes);
  let category: number | undefined;
  if (cls === 'CERTIFICATE') {
    category = r.u8();
    checkCategory(category);
  }
  if (r.at !== bytes.length) fail('COFFER_FORMAT_MALFORMED', { field: 'trailing', bytes: bytes.length - r.at });
  return {
    handle, class: cls, keyType, curve, bits, attributeBits, manageKeyQuorum, useKeyQuorum, owner, sharees,
    label, labelAt, labelBytes, idAt, idBytes, kcvAt, kcvBytes, materialAt, materialBytes, category,
  };
}

// A load reads every record of the device through readObjectRecordLayout, so it allocates nothing
// it can avoid: no BigInt for the handle, no view for a field it only steps over.

/** The handle: a u64 that must be a safe JavaScript integer (high word ≤ 2^21 − 1). */
function readHandle(r: ByteReader): number {
  const high = r.u32();
  const low = r.u32();
  if (high > 0x1fffff) fail('COFFER_FORMAT_MALFORMED', { field: 'handle' });
  return high * 0x100000000 + low;
}

/** Steps over `n` bytes; returns where they start. Past the end, the reader's own error. */
function skip(r: ByteReader, n: number): number {
  const at = r.at;
  if (at + n > r.bytes.length) r.view(n); // throws, as any read past the end
  r.at = at + n;
  return at;
}

/** The owner (returned) and the sharees (into `sharees`): distinct user ids, the owner not among the sharees. */
function readUsers(r: ByteReader, sharees: string[]): string {
  const owner = readUserId(r, 'owner');
  const shareeCount = r.u8();
  checkLength(shareeCount, 0, SHAREES_MAX, 'sharees');
  for (let i = 0; i < shareeCount; i++) {
    const sharee = readUserId(r, 'sharee');
    if (sharee === owner || sharees.includes(sharee)) fail('COFFER_FORMAT_MALFORMED', { field: 'sharee' });
    sharees.push(sharee);
  }
  return owner;
}

/**
 * Decodes one record (readObjectRecordLayout's checks). The returned material is a fresh copy the
 * caller owns; the input is not modified (the caller zeroises it).
 */
export function decodeObjectRecord(bytes: Uint8Array): ObjectRecord {
  const l = readObjectRecordLayout(bytes);
  const base = {
    handle: l.handle, class: l.class, keyType: l.keyType, bits: l.bits, attributes: attributesFromBits(l.attributeBits),
    manageKeyQuorum: l.manageKeyQuorum, useKeyQuorum: l.useKeyQuorum, owner: l.owner, sharees: [...l.sharees], label: l.label,
    id: copyOf(bytes, l.idAt, l.idBytes), kcv: copyOf(bytes, l.kcvAt, l.kcvBytes),
    material: SecretBytes.copyOf(bytes.subarray(l.materialAt, l.materialAt + l.materialBytes)),
  };
  const withCurve = l.curve === undefined ? base : { ...base, curve: l.curve };
  return l.category === undefined ? withCurve : { ...withCurve, category: l.category };
}

/** A copy with its own buffer (a Buffer's slice would be a view of the caller's bytes). */
function copyOf(bytes: Uint8Array, at: number, length: number): Uint8Array {
  return new Uint8Array(bytes.subarray(at, at + length));
}

// ── object identity ──────────────────────────────────────────────────────────────────────────

const IDENTITY_DOMAIN = 'coffer object identity v1\0';

/**
 * A per-object identity fixed at creation: the first OBJECT_UID_BYTES of SHA-256(domain ‖ class ‖
 * key type ‖ key material). It never changes (the material never does), needs no field of its own
 * (records of every version have it) and is the same on every HSM that holds the object, so a
 * request can name "this handle, holding this key" and an HSM whose object at that handle is
 * another one refuses (docs/device.md "Object identity"). Like a KCV it is a fingerprint of the key:
 * preimage resistance keeps the key out of reach; it tells no more than the KCV already does.
 */
export function objectIdentity(record: Pick<ObjectRecord, 'class' | 'keyType' | 'material'>): Uint8Array {
  return record.material.use((m) => objectIdentityOf(record.class, record.keyType, m));
}

/** objectIdentity from the key material's bytes (a view the caller keeps and wipes). */
export function objectIdentityOf(cls: RecordClass, keyType: RecordKeyType, material: Uint8Array): Uint8Array {
  const h = createHash('sha256').update(IDENTITY_DOMAIN).update(cls).update('\0').update(keyType).update('\0').update(material);
  return new Uint8Array(h.digest().subarray(0, OBJECT_UID_BYTES));
}

// ── session objects (volatile records) ───────────────────────────────────────────────────────
//
// A session object lives in memory only (namespace 'session-object', docs/device.md "State
// changes"), yet goes through the same apply as everything else. Its record is the object record
// behind the session that made it and the application scope that may see it:
//   0  1  version = 1
//   1  1  session id length (1..SESSION_SCOPE_CHARS_MAX), then the session id (UTF-8)
//   .. 1  scope length (0 = any session of the owner, ≤ SESSION_SCOPE_CHARS_MAX), then the scope
//   .. …  the object record (encodeObjectRecord)

const SESSION_OBJECT_VERSION = 1;

export interface SessionObjectRecord {
  readonly sessionId: string;
  readonly scope: string | undefined;
  readonly record: ObjectRecord;
}

export function encodeSessionObjectRecord(s: SessionObjectRecord): Uint8Array {
  const session = utf8.encode(s.sessionId);
  const scope = utf8.encode(s.scope ?? '');
  checkLength(session.length, 1, SESSION_SCOPE_CHARS_MAX, 'sessionId');
  checkLength(scope.length, 0, SESSION_SCOPE_CHARS_MAX, 'scope');
  const record = encodeObjectRecord(s.record);
  const out = new Uint8Array(new ArrayBuffer(3 + session.length + scope.length + record.length));
  out[0] = SESSION_OBJECT_VERSION;
  out[1] = session.length;
  out.set(session, 2);
  out[2 + session.length] = scope.length;
  out.set(scope, 3 + session.length);
  out.set(record, 3 + session.length + scope.length);
  record.fill(0);
  return out;
}

export function decodeSessionObjectRecord(bytes: Uint8Array): SessionObjectRecord {
  const { sessionId, scope, record } = readSessionObjectEnvelope(bytes);
  return { sessionId, scope, record: decodeObjectRecord(record) };
}

/** A session object record's session and scope, and a view (not a copy) of the object record it
 * wraps, still to be read (readObjectRecordLayout or decodeObjectRecord). */
export function readSessionObjectEnvelope(bytes: Uint8Array): { readonly sessionId: string; readonly scope: string | undefined; readonly record: Uint8Array } {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== SESSION_OBJECT_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'session object record', version, supported: String(SESSION_OBJECT_VERSION) });
  const sessionBytes = r.u8();
  checkLength(sessionBytes, 1, SESSION_SCOPE_CHARS_MAX, 'sessionId');
  const sessionId = readString(r, sessionBytes, 'sessionId');
  const scopeBytes = r.u8();
  checkLength(scopeBytes, 0, SESSION_SCOPE_CHARS_MAX, 'scope');
  const scope = readString(r, scopeBytes, 'scope');
  return { sessionId, scope: scope === '' ? undefined : scope, record: bytes.subarray(r.at) };
}
