// The p11-kit RPC message codec (docs/pkcs11.md "Messages"): the body of one frame, encoded and
// decoded as p11-kit's p11-kit/rpc-message.c writes and reads it, for protocol versions 0, 1 and 2.
//
// A message is: call id (u32) ‖ signature (byte array: the call's field codes as text) ‖ the fields
// in signature order. Integers are big-endian; a CK_ULONG is always 8 bytes on the wire, whatever
// the peer's word size; a "byte array" is a u32 length then the bytes, the length 0xffffffff meaning
// a NULL pointer. Field encodings (rpc-message.c p11_rpc_message_write_*, rpc-server.c proto_read_*):
//
//   y  u8                     u   u64                  v  major u8 ‖ minor u8
//   s  byte array of exactly the field's fixed length, space-padded
//   z  byte array (a string without its NUL)
//   ay u8 1 ‖ byte array, or u8 0 ‖ u32 length (no data: a NULL buffer, or the length the caller needs)
//   au u8 1 ‖ u32 count ‖ count × u64, or u8 0 ‖ u32 count (length only)
//   fy fu  u32: the caller's buffer size; 0 = no buffer (a length query); fy 0xffffffff = a buffer of size 0
//   aA u32 count ‖ attributes: type u32 ‖ valid u8 ‖ (if valid) length u32 ‖ value by type (below)
//   fA u32 count ‖ (type u32 ‖ buffer length u32 [‖ nested fA for template attributes, version 2])
//   M  mechanism (below)       P  C_DeriveKey2's parameter update
//
// What depends on the protocol version (rpc_transport.ts negotiates it; docs/pkcs11.md "Versions"):
// the mechanism encoding (version 2 = p11-kit 0.25.6+ sends nothing after a parameterless
// mechanism's type and a has-parameter byte before any other parameter; versions 0 and 1 send a
// byte array or the structured parameter right after the type), which parameter layouts exist
// (0.24: RSA-PSS and RSA-OAEP only), whether CKA_DERIVE_TEMPLATE is a template (from 0.25.0), and
// whether fA nests a template attribute's buffer sizes (0.25.4+; version 1 covers 0.25.0–0.25.5,
// which differ there, so version 1 refuses template attributes in fA rather than guess).
//
// Every count and length is checked against src/pkcs11/limits.ts before the bytes it covers are
// read. A decoder facing a client raises only typed errors: COFFER_P11_MESSAGE_MALFORMED (bytes that
// do not follow the signature), COFFER_P11_LIMIT, COFFER_P11_MECHANISM_UNCARRIED and
// COFFER_P11_ATTRIBUTE_UNCARRIED (a vendor type whose layout p11-kit keeps in private tables).

import { assert, unreachable } from '../assert.js';
import { fail } from '../errors.js';
import { ByteReader } from '../formats/byte_reader.js';
import type { Writer } from '../formats/wire_codec.js';
import {
  CKA, CK_VENDOR_DEFINED, NO_PARAMETER_MECHANISMS_024, NO_PARAMETER_MECHANISMS_025, PARAMETER_LAYOUTS_024, PARAMETER_LAYOUTS_025, type ParameterLayout,
} from './constants.js';
import { P11_ATTRIBUTES_MAX, P11_TEMPLATE_DEPTH_MAX, P11_ULONG_ITEMS_MAX } from './limits.js';
import type { FieldCode, FieldSpec } from './rpc_calls.js';

/** The protocol versions this bridge speaks: the version byte of the handshake. */
export type ProtocolVersion = 0 | 1 | 2;
export const PROTOCOL_VERSION_MAX: ProtocolVersion = 2;

/** sizeof(CK_ULONG) and sizeof(CK_ATTRIBUTE) of the clients served: LP64 (Linux on 64-bit CPUs). The
 * attribute "length" field carries these native sizes; the values themselves travel as u64. */
export const CK_ULONG_BYTES = 8;
export const CK_ATTRIBUTE_BYTES = 24;

/** A NULL byte array in p11-kit's encoding (rpc-message.c p11_rpc_buffer_add_byte_array). */
const NULL_LENGTH = 0xffff_ffff;
/** p11-kit refuses byte arrays of this length or more (p11_rpc_buffer_get_byte_array). */
const BYTE_ARRAY_LENGTH_LIMIT = 0x7fff_ffff;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

export interface CkVersion {
  readonly major: number;
  readonly minor: number;
}

/** An output the caller gets only the length of: a length query, or CKR_BUFFER_TOO_SMALL. */
export interface LengthOnly {
  readonly lengthOnly: number;
}

export type ByteArray = Uint8Array | LengthOnly;
export type UlongArray = readonly bigint[] | LengthOnly;

/** The output buffer a caller offers (fy, fu): none (a length query), or one of `length` items. */
export interface OutBuffer {
  readonly present: boolean;
  readonly length: number;
}

export type AttributeValue =
  | { readonly kind: 'byte'; readonly value: number }
  | { readonly kind: 'ulong'; readonly value: bigint }
  | { readonly kind: 'bytes'; readonly value: Uint8Array }
  | { readonly kind: 'date'; readonly value: Uint8Array }
  | { readonly kind: 'attributes'; readonly value: readonly Attribute[] }
  | { readonly kind: 'mechanisms'; readonly value: readonly bigint[] };
export type ValueKind = AttributeValue['kind'];

/** One CK_ATTRIBUTE: with a value; valid but without one (length only); or unavailable (length −1). */
export type Attribute =
  | { readonly type: number; readonly value: AttributeValue }
  | { readonly type: number; readonly lengthOnly: number }
  | { readonly type: number; readonly unavailable: true };

/** One entry of C_GetAttributeValue's template: the type, the caller's buffer size, and for
 * template attributes under version 2, the nested template's buffer sizes. */
export interface AttributeRequest {
  readonly type: number;
  readonly length: number;
  readonly template?: readonly AttributeRequest[];
}

export type MechanismParameter =
  | { readonly kind: 'none' }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'rsaPss'; readonly hashAlg: bigint; readonly mgf: bigint; readonly sLen: bigint }
  | { readonly kind: 'rsaOaep'; readonly hashAlg: bigint; readonly mgf: bigint; readonly source: bigint; readonly sourceData: Uint8Array | null }
  | { readonly kind: 'ecdh1Derive'; readonly kdf: bigint; readonly sharedData: Uint8Array | null; readonly publicData: Uint8Array | null }
  | { readonly kind: 'iv'; readonly iv: Uint8Array }
  | { readonly kind: 'aesCtr'; readonly counterBits: bigint; readonly cb: Uint8Array }
  | { readonly kind: 'gcm'; readonly iv: Uint8Array | null; readonly ivBits: bigint; readonly aad: Uint8Array | null; readonly tagBits: bigint }
  | { readonly kind: 'macGeneral'; readonly length: bigint }
  | { readonly kind: 'dhPkcsDerive'; readonly publicValue: Uint8Array };

/** A CK_MECHANISM; `null` in a field is p11-kit's NULL mechanism (type 0xffffffff: cancel an operation). */
export interface Mechanism {
  readonly type: number;
  readonly parameter: MechanismParameter;
}

/** C_DeriveKey2's "P": whether the (updated) parameter is present, for the mechanism of the request. */
export interface ParameterUpdate {
  readonly mechanism: number;
  readonly present: boolean;
}

export interface FieldTypes {
  y: number;
  u: bigint;
  v: CkVersion;
  s: string;
  z: Uint8Array;
  ay: ByteArray;
  au: UlongArray;
  aA: readonly Attribute[];
  fy: OutBuffer;
  fu: OutBuffer;
  fA: readonly AttributeRequest[];
  M: Mechanism | null;
  P: ParameterUpdate;
}

/** Per-message decoding state: the version, and the attribute budget shared by nested templates. */
export interface CodecContext {
  readonly version: ProtocolVersion;
  attributesLeft: number;
}

export function codecContext(version: ProtocolVersion): CodecContext {
  return { version, attributesLeft: P11_ATTRIBUTES_MAX };
}

export function isLengthOnly(v: unknown): v is LengthOnly {
  return typeof v === 'object' && v !== null && 'lengthOnly' in v;
}

// ── primitives ───────────────────────────────────────────────────────────────────────────────

export function malformed(reason: string, detail: Record<string, string | number> = {}): never {
  return fail('COFFER_P11_MESSAGE_MALFORMED', { reason, ...detail });
}

export function reader(body: Uint8Array): ByteReader {
  return new ByteReader(body, 0, (at, needed) => malformed('message ends inside a field', { offset: at, needed }));
}

export function readU64(r: ByteReader): bigint {
  return r.u64();
}

export function writeU64(w: Writer, v: bigint): void {
  assert(v >= 0n && v <= U64_MAX, 'a CK_ULONG fits 64 bits');
  w.u32(Number(v >> 32n));
  w.u32(Number(v & 0xffff_ffffn));
}

/** A p11-kit byte array: null for the NULL marker; a copy the caller owns. */
export function readByteArray(r: ByteReader): Uint8Array | null {
  const n = r.u32();
  if (n === NULL_LENGTH) return null;
  if (n >= BYTE_ARRAY_LENGTH_LIMIT) malformed('byte array length', { length: n });
  return r.copy(n);
}

export function writeByteArray(w: Writer, b: Uint8Array | null): void {
  if (b === null) {
    w.u32(NULL_LENGTH);
    return;
  }
  assert(b.length < BYTE_ARRAY_LENGTH_LIMIT, 'byte array below p11-kit limit');
  w.u32(b.length);
  w.raw(b);
}

function readFlag(r: ByteReader): boolean {
  const b = r.u8();
  if (b > 1) malformed('presence byte not 0 or 1', { value: b });
  return b === 1;
}

function checkCount(n: number, max: number, field: string): void {
  if (n > max) fail('COFFER_P11_LIMIT', { field, count: n, max });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

function readSpaceString(r: ByteReader, length: number): string {
  const b = readByteArray(r);
  if (b === null || b.length !== length) malformed('space-padded string length', { expected: length, length: b?.length ?? -1 });
  try {
    return utf8.decode(b);
  } catch {
    return malformed('space-padded string is not UTF-8');
  }
}

/** UTF-8, padded with spaces to exactly `length` bytes (PKCS#11 v2.40 §3.2 fixed-length strings). */
export function spacePadded(text: string, length: number): Uint8Array {
  const b = utf8Encoder.encode(text);
  if (b.length > length) fail('COFFER_P11_LIMIT', { field: 'space-padded string', length: b.length, max: length });
  const out = new Uint8Array(length).fill(0x20);
  out.set(b);
  return out;
}

// ── attributes ───────────────────────────────────────────────────────────────────────────────

const BYTE_ATTRIBUTES: ReadonlySet<number> = new Set([
  CKA.TOKEN, CKA.PRIVATE, CKA.TRUSTED, CKA.SENSITIVE, CKA.ENCRYPT, CKA.DECRYPT, CKA.WRAP, CKA.UNWRAP, CKA.SIGN,
  CKA.SIGN_RECOVER, CKA.VERIFY, CKA.VERIFY_RECOVER, CKA.DERIVE, CKA.EXTRACTABLE, CKA.LOCAL, CKA.NEVER_EXTRACTABLE,
  CKA.ALWAYS_SENSITIVE, CKA.MODIFIABLE, CKA.COPYABLE, CKA.SECONDARY_AUTH, CKA.ALWAYS_AUTHENTICATE, CKA.WRAP_WITH_TRUSTED,
  CKA.RESET_ON_INIT, CKA.HAS_RESET, CKA.COLOR,
]);
const ULONG_ATTRIBUTES: ReadonlySet<number> = new Set([
  CKA.CLASS, CKA.CERTIFICATE_TYPE, CKA.CERTIFICATE_CATEGORY, CKA.JAVA_MIDP_SECURITY_DOMAIN, CKA.KEY_TYPE, CKA.MODULUS_BITS,
  CKA.PRIME_BITS, CKA.SUB_PRIME_BITS, CKA.VALUE_BITS, CKA.VALUE_LEN, CKA.KEY_GEN_MECHANISM, CKA.AUTH_PIN_FLAGS,
  CKA.HW_FEATURE_TYPE, CKA.PIXEL_X, CKA.PIXEL_Y, CKA.RESOLUTION, CKA.CHAR_ROWS, CKA.CHAR_COLUMNS, CKA.BITS_PER_PIXEL,
  CKA.MECHANISM_TYPE,
]);

/** The attributes whose buffer nests a template in fA (p11-kit common/attrs.h IS_ATTRIBUTE_ARRAY). */
function isTemplateAttribute(type: number): boolean {
  return type === CKA.WRAP_TEMPLATE || type === CKA.UNWRAP_TEMPLATE || type === CKA.DERIVE_TEMPLATE;
}

/**
 * How p11-kit encodes this attribute's value (rpc-message.c map_attribute_to_value_type): the
 * standard attributes by their PKCS#11 type, every other standard one as a byte array. Vendor
 * attributes are refused: p11-kit maps some of IBM's and NSS's to bytes or ulongs, differently per
 * release, so their bytes cannot be read without knowing the client's exact release.
 */
export function valueKindOf(type: number, version: ProtocolVersion): ValueKind {
  if (BYTE_ATTRIBUTES.has(type)) return 'byte';
  if (ULONG_ATTRIBUTES.has(type)) return 'ulong';
  if (type === CKA.WRAP_TEMPLATE || type === CKA.UNWRAP_TEMPLATE) return 'attributes';
  if (type === CKA.DERIVE_TEMPLATE) return version >= 1 ? 'attributes' : 'bytes'; // a template from 0.25.0
  if (type === CKA.ALLOWED_MECHANISMS) return 'mechanisms';
  if (type === CKA.START_DATE || type === CKA.END_DATE) return 'date';
  if (type >= CK_VENDOR_DEFINED) fail('COFFER_P11_ATTRIBUTE_UNCARRIED', { attribute: type, version });
  return 'bytes';
}

function takeAttributes(ctx: CodecContext, n: number): void {
  checkCount(n, ctx.attributesLeft, 'attributes');
  ctx.attributesLeft -= n;
}

export function readAttributes(r: ByteReader, ctx: CodecContext, depth = 0): Attribute[] {
  if (depth >= P11_TEMPLATE_DEPTH_MAX) fail('COFFER_P11_LIMIT', { field: 'template depth', max: P11_TEMPLATE_DEPTH_MAX });
  const n = r.u32();
  takeAttributes(ctx, n);
  const out: Attribute[] = [];
  for (let i = 0; i < n; i++) out.push(readAttribute(r, ctx, depth));
  return out;
}

function readAttribute(r: ByteReader, ctx: CodecContext, depth: number): Attribute {
  const type = r.u32();
  if (!readFlag(r)) return { type, unavailable: true };
  const length = r.u32();
  const kind = valueKindOf(type, ctx.version);
  const value = readValue(r, ctx, kind, depth);
  if (value === null) return { type, lengthOnly: length };
  // p11-kit refuses a value larger than the length its sender declared (get_attribute_recursive).
  if (length < declaredMin(value)) malformed('attribute value longer than its length', { attribute: type, length });
  return { type, value };
}

/** The smallest length a sender may declare for this value: a 32-bit client declares 4 for a ulong. */
function declaredMin(v: AttributeValue): number {
  return v.kind === 'ulong' ? 4 : naturalLength(v);
}

function readValue(r: ByteReader, ctx: CodecContext, kind: ValueKind, depth: number): AttributeValue | null {
  switch (kind) {
    case 'byte': return { kind, value: r.u8() };
    case 'ulong': return { kind, value: readU64(r) };
    case 'bytes': {
      const b = readByteArray(r);
      return b === null ? null : { kind, value: b };
    }
    case 'date': {
      const b = readByteArray(r);
      if (b !== null && b.length !== 0 && b.length !== 8) malformed('CK_DATE is 0 or 8 bytes', { length: b.length });
      return b === null ? null : { kind, value: b };
    }
    case 'attributes': return { kind, value: readAttributes(r, ctx, depth + 1) };
    case 'mechanisms': {
      const n = r.u32();
      checkCount(n, P11_ULONG_ITEMS_MAX, 'mechanism types');
      const value: bigint[] = [];
      for (let i = 0; i < n; i++) value.push(readU64(r));
      return { kind, value };
    }
    default: return unreachable(kind);
  }
}

/** The C length of a value: what p11-kit's client expects in the attribute's length field. */
export function naturalLength(v: AttributeValue): number {
  switch (v.kind) {
    case 'byte': return 1;
    case 'ulong': return CK_ULONG_BYTES;
    case 'bytes': case 'date': return v.value.length;
    case 'attributes': return v.value.length * CK_ATTRIBUTE_BYTES;
    case 'mechanisms': return v.value.length * CK_ULONG_BYTES;
    default: return unreachable(v);
  }
}

export function writeAttributes(w: Writer, version: ProtocolVersion, attrs: readonly Attribute[]): void {
  w.u32(attrs.length);
  for (const a of attrs) writeAttribute(w, version, a);
}

function writeAttribute(w: Writer, version: ProtocolVersion, a: Attribute): void {
  w.u32(a.type);
  if ('unavailable' in a) {
    w.u8(0);
    return;
  }
  w.u8(1);
  const kind = valueKindOf(a.type, version);
  if ('lengthOnly' in a) {
    w.u32(a.lengthOnly);
    writeNullValue(w, kind);
    return;
  }
  assert(a.value.kind === kind, 'attribute value has the kind p11-kit encodes its type with');
  w.u32(naturalLength(a.value));
  writeValue(w, version, a.value);
}

/** What p11-kit writes for a valid attribute with a NULL value (a length answer): a placeholder of
 * the type's shape; for arrays a count of 0, which every client release reads back safely. */
function writeNullValue(w: Writer, kind: ValueKind): void {
  if (kind === 'byte') w.u8(0);
  else if (kind === 'ulong') writeU64(w, 0n);
  else if (kind === 'bytes' || kind === 'date') w.u32(NULL_LENGTH);
  else w.u32(0);
}

function writeValue(w: Writer, version: ProtocolVersion, v: AttributeValue): void {
  switch (v.kind) {
    case 'byte': w.u8(v.value); return;
    case 'ulong': writeU64(w, v.value); return;
    case 'bytes': case 'date': writeByteArray(w, v.value); return;
    case 'attributes': writeAttributes(w, version, v.value); return;
    case 'mechanisms':
      w.u32(v.value.length);
      for (const m of v.value) writeU64(w, m);
      return;
    default: unreachable(v);
  }
}

/** fA: buffer sizes; under version 2 a template attribute with a buffer nests its template's sizes. */
export function readAttributeRequests(r: ByteReader, ctx: CodecContext, depth = 0): AttributeRequest[] {
  if (depth >= P11_TEMPLATE_DEPTH_MAX) fail('COFFER_P11_LIMIT', { field: 'template depth', max: P11_TEMPLATE_DEPTH_MAX });
  const n = r.u32();
  takeAttributes(ctx, n);
  const out: AttributeRequest[] = [];
  for (let i = 0; i < n; i++) {
    const type = r.u32();
    const length = r.u32();
    if (length === 0 || !isTemplateAttribute(type) || ctx.version === 0) {
      out.push({ type, length });
      continue;
    }
    // 0.25.0–0.25.3 send a flat size here, 0.25.4 and 0.25.5 a nested template: both say version 1.
    if (ctx.version === 1) fail('COFFER_P11_ATTRIBUTE_UNCARRIED', { attribute: type, version: 1, reason: 'template buffer layout differs within version 1' });
    out.push({ type, length, template: readAttributeRequests(r, ctx, depth + 1) });
  }
  return out;
}

export function writeAttributeRequests(w: Writer, version: ProtocolVersion, reqs: readonly AttributeRequest[]): void {
  w.u32(reqs.length);
  for (const q of reqs) {
    w.u32(q.type);
    w.u32(q.length);
    if (version === 2 && q.length > 0 && isTemplateAttribute(q.type)) writeAttributeRequests(w, version, q.template ?? []);
  }
}

// ── mechanisms ───────────────────────────────────────────────────────────────────────────────

/** p11-kit's NULL mechanism: C_*Init(NULL) cancels an operation (rpc-message.c p11_rpc_buffer_get_mechanism). */
const NULL_MECHANISM = 0xffff_ffff;

function layoutOf(type: number, version: ProtocolVersion): ParameterLayout | undefined {
  return (version === 0 ? PARAMETER_LAYOUTS_024 : PARAMETER_LAYOUTS_025).get(type);
}

/**
 * Whether p11-kit's client of this protocol version can send the mechanism at all: parameterless in
 * its list, or with a layout in its table (rpc-message.c p11_rpc_mechanism_is_supported). Its client
 * drops every other mechanism from C_GetMechanismList's answer (mechanism_list_purge) and refuses it
 * at every call, so the token lists only these (docs/pkcs11.md §4).
 */
export function mechanismCarried(type: number, version: ProtocolVersion): boolean {
  if (type >= CK_VENDOR_DEFINED) return false;
  return (version === 0 ? NO_PARAMETER_MECHANISMS_024 : NO_PARAMETER_MECHANISMS_025).has(type) || layoutOf(type, version) !== undefined;
}

/**
 * M. Version 2 (p11-kit 0.25.6+): type u32; nothing more for a parameterless mechanism; otherwise a
 * has-parameter byte, then the parameter in its layout (or a byte array). Versions 0 and 1: type u32,
 * then the parameter in its layout, or else a byte array (NULL for no parameter).
 */
export function readMechanism(r: ByteReader, version: ProtocolVersion): Mechanism | null {
  const type = r.u32();
  if (type === NULL_MECHANISM) return null;
  if (type >= CK_VENDOR_DEFINED) fail('COFFER_P11_MECHANISM_UNCARRIED', { mechanism: type, version });
  if (version === 2) {
    if (NO_PARAMETER_MECHANISMS_025.has(type) || !readFlag(r)) return { type, parameter: { kind: 'none' } };
  }
  const layout = layoutOf(type, version);
  if (layout !== undefined) return { type, parameter: readLayout(r, layout) };
  const bytes = readByteArray(r);
  return { type, parameter: bytes === null ? { kind: 'none' } : { kind: 'bytes', bytes } };
}

function readLayout(r: ByteReader, layout: ParameterLayout): MechanismParameter {
  switch (layout) {
    case 'rsaPss': return { kind: 'rsaPss', hashAlg: readU64(r), mgf: readU64(r), sLen: readU64(r) };
    case 'rsaOaep': return { kind: 'rsaOaep', hashAlg: readU64(r), mgf: readU64(r), source: readU64(r), sourceData: readByteArray(r) };
    case 'ecdh1Derive': return { kind: 'ecdh1Derive', kdf: readU64(r), sharedData: readByteArray(r), publicData: readByteArray(r) };
    case 'aesIv': return { kind: 'iv', iv: exactBytes(r, 16, 'AES IV') };
    case 'desIv': return { kind: 'iv', iv: exactBytes(r, 8, 'DES IV') };
    case 'aesCtr': {
      const counterBits = readU64(r);
      return { kind: 'aesCtr', counterBits, cb: exactBytes(r, 16, 'AES-CTR counter block') };
    }
    case 'gcm': {
      const iv = readByteArray(r);
      const ivBits = readU64(r);
      const aad = readByteArray(r);
      return { kind: 'gcm', iv, ivBits, aad, tagBits: readU64(r) };
    }
    case 'macGeneral': return { kind: 'macGeneral', length: readU64(r) };
    case 'dhPkcsDerive': {
      const publicValue = readByteArray(r);
      if (publicValue === null || publicValue.length === 0) malformed('DH public value is empty');
      return { kind: 'dhPkcsDerive', publicValue };
    }
    default: return unreachable(layout);
  }
}

function exactBytes(r: ByteReader, n: number, what: string): Uint8Array {
  const b = readByteArray(r);
  if (b === null || b.length !== n) malformed(`${what} is ${n} bytes`, { length: b?.length ?? -1 });
  return b;
}

export function writeMechanism(w: Writer, version: ProtocolVersion, m: Mechanism | null): void {
  if (m === null) {
    w.u32(NULL_MECHANISM);
    return;
  }
  w.u32(m.type);
  const p = m.parameter;
  if (version === 2) {
    if (NO_PARAMETER_MECHANISMS_025.has(m.type)) {
      assert(p.kind === 'none', 'a parameterless mechanism carries no parameter');
      return;
    }
    w.u8(p.kind === 'none' ? 0 : 1);
    if (p.kind === 'none') return;
  }
  const layout = layoutOf(m.type, version);
  if (layout === undefined) {
    assert(p.kind === 'none' || p.kind === 'bytes', 'a mechanism without a layout carries bytes');
    writeByteArray(w, p.kind === 'bytes' ? p.bytes : null);
    return;
  }
  writeLayout(w, layout, p);
}

function writeLayout(w: Writer, layout: ParameterLayout, p: MechanismParameter): void {
  const kind = layout === 'aesIv' || layout === 'desIv' ? 'iv' : layout;
  assert(p.kind === kind, 'mechanism parameter has its layout');
  switch (p.kind) {
    case 'rsaPss': writeU64(w, p.hashAlg); writeU64(w, p.mgf); writeU64(w, p.sLen); return;
    case 'rsaOaep': writeU64(w, p.hashAlg); writeU64(w, p.mgf); writeU64(w, p.source); writeByteArray(w, p.sourceData); return;
    case 'ecdh1Derive': writeU64(w, p.kdf); writeByteArray(w, p.sharedData); writeByteArray(w, p.publicData); return;
    case 'iv': writeByteArray(w, p.iv); return;
    case 'aesCtr': writeU64(w, p.counterBits); writeByteArray(w, p.cb); return;
    case 'gcm': writeByteArray(w, p.iv); writeU64(w, p.ivBits); writeByteArray(w, p.aad); writeU64(w, p.tagBits); return;
    case 'macGeneral': writeU64(w, p.length); return;
    case 'dhPkcsDerive': writeByteArray(w, p.publicValue); return;
    default: unreachable(p);
  }
}

/** P (C_DeriveKey2): nothing for a parameterless mechanism, else a has-parameter byte
 * (rpc-message.c p11_rpc_buffer_add_mech_param_update; the IBM-only updates are not carried). */
function writeParameterUpdate(w: Writer, u: ParameterUpdate): void {
  if (NO_PARAMETER_MECHANISMS_025.has(u.mechanism)) return;
  w.u8(u.present ? 1 : 0);
}

function readParameterUpdate(r: ByteReader, mechanism: number | undefined): ParameterUpdate {
  assert(mechanism !== undefined, 'decoding P needs the request mechanism');
  if (NO_PARAMETER_MECHANISMS_025.has(mechanism)) return { mechanism, present: false };
  return { mechanism, present: readFlag(r) };
}

// ── fields ───────────────────────────────────────────────────────────────────────────────────

/** Reads one field; `mechanism` is the request's mechanism type, which only P needs. */
export function readField(r: ByteReader, ctx: CodecContext, spec: FieldSpec, mechanism?: number): unknown {
  const code: FieldCode = spec[1];
  switch (code) {
    case 'y': return r.u8();
    case 'u': return readU64(r);
    case 'v': return { major: r.u8(), minor: r.u8() };
    case 's': return readSpaceString(r, spec[2] ?? 0);
    case 'z': return readByteArray(r) ?? new Uint8Array(0);
    case 'ay': {
      if (!readFlag(r)) return { lengthOnly: r.u32() };
      const b = readByteArray(r);
      if (b === null) malformed('byte array marked present is NULL');
      return b;
    }
    case 'au': return readUlongArray(r);
    case 'aA': return readAttributes(r, ctx);
    case 'fy': {
      const n = r.u32();
      if (n === NULL_LENGTH) return { present: true, length: 0 }; // a buffer of size 0 (rpc-client.c IN_BYTE_BUFFER)
      return { present: n !== 0, length: n };
    }
    case 'fu': {
      const n = r.u32();
      return { present: n !== 0, length: n };
    }
    case 'fA': return readAttributeRequests(r, ctx);
    case 'M': return readMechanism(r, ctx.version);
    case 'P': return readParameterUpdate(r, mechanism);
    default: return unreachable(code);
  }
}

function readUlongArray(r: ByteReader): UlongArray {
  const present = readFlag(r);
  const n = r.u32();
  if (!present) return { lengthOnly: n };
  checkCount(n, P11_ULONG_ITEMS_MAX, 'ulong array');
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(readU64(r));
  return out;
}

export function writeField(w: Writer, version: ProtocolVersion, spec: FieldSpec, value: unknown): void {
  const code: FieldCode = spec[1];
  switch (code) {
    case 'y': w.u8(value as number); return;
    case 'u': writeU64(w, value as bigint); return;
    case 'v': {
      const v = value as CkVersion;
      w.u8(v.major);
      w.u8(v.minor);
      return;
    }
    case 's': writeByteArray(w, spacePadded(value as string, spec[2] ?? 0)); return;
    case 'z': writeByteArray(w, value as Uint8Array); return;
    case 'ay': writeByteArrayField(w, value as ByteArray); return;
    case 'au': writeUlongArray(w, value as UlongArray); return;
    case 'aA': writeAttributes(w, version, value as readonly Attribute[]); return;
    case 'fy': {
      const b = value as OutBuffer;
      w.u32(b.present ? (b.length === 0 ? NULL_LENGTH : b.length) : 0);
      return;
    }
    case 'fu': {
      const b = value as OutBuffer;
      w.u32(b.present ? b.length : 0);
      return;
    }
    case 'fA': writeAttributeRequests(w, version, value as readonly AttributeRequest[]); return;
    case 'M': writeMechanism(w, version, value as Mechanism | null); return;
    case 'P': writeParameterUpdate(w, value as ParameterUpdate); return;
    default: unreachable(code);
  }
}

function writeByteArrayField(w: Writer, v: ByteArray): void {
  if (isLengthOnly(v)) {
    w.u8(0);
    w.u32(v.lengthOnly);
    return;
  }
  w.u8(1);
  writeByteArray(w, v);
}

function writeUlongArray(w: Writer, v: UlongArray): void {
  if (isLengthOnly(v)) {
    w.u8(0);
    w.u32(v.lengthOnly);
    return;
  }
  checkCount(v.length, P11_ULONG_ITEMS_MAX, 'ulong array');
  w.u8(1);
  w.u32(v.length);
  for (const x of v) writeU64(w, x);
}
