// Cluster key objects as PKCS#11 objects (docs/pkcs11.md "The token"): the attributes an object
// shows (C_GetAttributeValue, and C_FindObjects on attributes the node cannot filter by), and the
// templates of C_GenerateKey, C_GenerateKeyPair and C_FindObjectsInit read into the SDK's terms.
//
// Choices the specification leaves to the token (PKCS#11 v2.40 §4):
// - Every object is CKA_PRIVATE true: a cluster shows objects only to a logged-in user who owns or
//   shares them, so there are no public objects. A template's CKA_PRIVATE false is accepted (tools
//   such as pkcs11-tool send it for every public key) and changes nothing.
// - CKA_VALUE of a secret key is read from the node only when the key is extractable and not
//   sensitive; of a private key, and every private-key component, it is CKR_ATTRIBUTE_SENSITIVE
//   (§4.9: "sensitive" attributes of a private key). Public keys show their components (RSA
//   CKA_MODULUS, CKA_PUBLIC_EXPONENT; EC CKA_EC_PARAMS, CKA_EC_POINT), read from the node's public
//   key export, and so do private keys (common practice, so that an application can match pairs).
// - Template attributes the token does not keep (CKA_SUBJECT, CKA_START_DATE, CKA_END_DATE) are
//   refused with CKR_ATTRIBUTE_TYPE_INVALID rather than silently dropped.
// - The cluster has no signature with recovery: a private key's CKA_SIGN_RECOVER and a public key's
//   CKA_VERIFY_RECOVER read false, and a template may say false (NSS's do, for every key pair) but
//   not true (CKR_ATTRIBUTE_VALUE_INVALID).

import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { Curve, FindFilter, KeyInfo, KeyType, ObjectClass, SettableAttribute, Template } from '../client/index.js';
import { CKA, CKR } from './constants.js';
import type { Attribute, AttributeValue } from './rpc_codec.js';

/** CKO_* (PKCS#11 v2.40 §4.1) and CKK_* (§4.8). */
export const CKO = { DATA: 0n, CERTIFICATE: 1n, PUBLIC_KEY: 2n, PRIVATE_KEY: 3n, SECRET_KEY: 4n } as const;
export const CKK = { RSA: 0n, EC: 3n, GENERIC_SECRET: 0x10n, AES: 0x1fn, EC_EDWARDS: 0x40n } as const;

const CLASS_OF: Record<ObjectClass, bigint> = { PUBLIC_KEY: CKO.PUBLIC_KEY, PRIVATE_KEY: CKO.PRIVATE_KEY, SECRET_KEY: CKO.SECRET_KEY, CERTIFICATE: CKO.CERTIFICATE };
const KEY_TYPE_OF: Record<KeyType, bigint> = { RSA: CKK.RSA, EC: CKK.EC, GENERIC_SECRET: CKK.GENERIC_SECRET, AES: CKK.AES, EC_EDWARDS: CKK.EC_EDWARDS };

/** The SDK's key type for a CKK_* value, if the cluster has it. */
export function keyTypeOfCkk(value: bigint): KeyType | undefined {
  return (Object.keys(KEY_TYPE_OF) as KeyType[]).find((k) => KEY_TYPE_OF[k] === value);
}

/** DER of the named curves' OIDs, the form CKA_EC_PARAMS takes (PKCS#11 v2.40 §2.3.3, RFC 5480 §2.1.1.1). */
const CURVE_OIDS: readonly (readonly [Curve, string])[] = [
  ['P-256', '06082a8648ce3d030107'],
  ['P-384', '06052b81040022'],
  ['P-521', '06052b81040023'],
  ['secp256k1', '06052b8104000a'],
];

export function curveOfParams(der: Uint8Array): Curve | undefined {
  const hex = Buffer.from(der).toString('hex');
  return CURVE_OIDS.find(([, oid]) => oid === hex)?.[0];
}
function paramsOfCurve(curve: Curve): Uint8Array | undefined {
  const oid = CURVE_OIDS.find(([c]) => c === curve)?.[1];
  return oid === undefined ? undefined : Uint8Array.from(Buffer.from(oid, 'hex'));
}

/** The boolean attributes the node keeps, by CKA type, with their SDK names. */
const BOOLEANS: readonly (readonly [number, keyof KeyInfo['attributes']])[] = [
  [CKA.TOKEN, 'token'], [CKA.SENSITIVE, 'sensitive'], [CKA.EXTRACTABLE, 'extractable'], [CKA.ENCRYPT, 'encrypt'], [CKA.DECRYPT, 'decrypt'],
  [CKA.SIGN, 'sign'], [CKA.VERIFY, 'verify'], [CKA.WRAP, 'wrap'], [CKA.UNWRAP, 'unwrap'], [CKA.DERIVE, 'derive'], [CKA.TRUSTED, 'trusted'],
  [CKA.WRAP_WITH_TRUSTED, 'wrapWithTrusted'], [CKA.LOCAL, 'local'], [CKA.NEVER_EXTRACTABLE, 'neverExtractable'],
  [CKA.ALWAYS_SENSITIVE, 'alwaysSensitive'], [CKA.MODIFIABLE, 'modifiable'],
];
/** The booleans a template may set (the node decides local, never-extractable, always-sensitive). */
const SETTABLE = new Set<number>([CKA.TOKEN, CKA.SENSITIVE, CKA.EXTRACTABLE, CKA.ENCRYPT, CKA.DECRYPT, CKA.SIGN, CKA.VERIFY, CKA.WRAP, CKA.UNWRAP, CKA.DERIVE, CKA.TRUSTED, CKA.WRAP_WITH_TRUSTED, CKA.MODIFIABLE]);

/** CKA_DESTROYABLE (PKCS#11 v2.40 §4.4): p11-kit 0.24 carries it as a byte array of one byte. */
export const CKA_DESTROYABLE = 0x172;
/** The recovery capabilities (§4.8, §4.9): false on every key that has them (header). */
const RECOVERY = new Set<number>([CKA.SIGN_RECOVER, CKA.VERIFY_RECOVER]);

/** A template's recovery capability: false is what every key is, true is refused (header). */
function recoveryOff(v: AttributeValue): true | TemplateRefusal {
  const b = asBool(v);
  if (b instanceof TemplateRefusal) return b;
  return b ? new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID) : true;
}

/** Private-key components (§2.1.3, §2.3.4) and CKA_VALUE: sensitive on a private key. */
const PRIVATE_COMPONENTS = new Set<number>([CKA.VALUE, 0x123, 0x124, 0x125, 0x126, 0x127, 0x128]);

const byte = (b: boolean): AttributeValue => ({ kind: 'byte', value: b ? 1 : 0 });
const ulong = (n: bigint): AttributeValue => ({ kind: 'ulong', value: n });
const bytes = (v: Uint8Array): AttributeValue => ({ kind: 'bytes', value: v });

/** What an attribute of an object is: a value, sensitive, or not an attribute of this object. */
export type Lookup = AttributeValue | 'sensitive' | 'invalid';

/** The public components of a key, read once per object from its public key export. */
export interface PublicParts {
  readonly modulus?: Uint8Array;
  readonly publicExponent?: Uint8Array;
  readonly ecPoint?: Uint8Array;
}

/** The public parts of a key from its SPKI PEM (RSA: n and e; EC: the uncompressed point as a DER OCTET STRING, §2.3.3). */
export function publicParts(pem: string): PublicParts {
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  const b64 = (s: string | undefined): Uint8Array => Uint8Array.from(Buffer.from(s ?? '', 'base64url'));
  if (jwk.kty === 'RSA') return { modulus: b64(jwk.n), publicExponent: b64(jwk.e) };
  if (jwk.kty === 'EC') {
    const point = Buffer.concat([Uint8Array.of(4), b64(jwk.x), b64(jwk.y)]);
    const len = point.length < 0x80 ? Uint8Array.of(point.length) : Uint8Array.of(0x81, point.length);
    return { ecPoint: Uint8Array.from(Buffer.concat([Uint8Array.of(0x04), len, point])) };
  }
  return {};
}

/** Whether reading `type` needs the key's public parts (a call to the node). */
export function needsPublicParts(type: number): boolean {
  return type === CKA.MODULUS || type === CKA.PUBLIC_EXPONENT || type === CKA.EC_POINT;
}

/** The attribute `type` of the object `info` describes (PKCS#11 v2.40 §4.2–§4.9). */
export function lookup(info: KeyInfo, type: number, parts: PublicParts = {}): Lookup {
  const bool = BOOLEANS.find(([t]) => t === type);
  if (bool !== undefined) return byte(info.attributes[bool[1]]);
  switch (type) {
    case CKA.CLASS: return ulong(CLASS_OF[info.class]);
    case CKA.KEY_TYPE: return ulong(KEY_TYPE_OF[info.keyType]);
    case CKA.PRIVATE: return byte(true);
    case CKA.LABEL: return bytes(new TextEncoder().encode(info.label));
    case CKA.ID: return bytes(info.id);
    case CKA_DESTROYABLE: return bytes(Uint8Array.of(info.attributes.destroyable ? 1 : 0));
    case CKA.ALWAYS_AUTHENTICATE: return info.class === 'PRIVATE_KEY' ? byte(false) : 'invalid';
    case CKA.SIGN_RECOVER: return info.class === 'PRIVATE_KEY' ? byte(false) : 'invalid';
    case CKA.VERIFY_RECOVER: return info.class === 'PUBLIC_KEY' ? byte(false) : 'invalid';
    default: break;
  }
  if (info.class === 'SECRET_KEY') {
    if (type === CKA.VALUE_LEN) return ulong(BigInt(info.bits / 8));
    if (type === CKA.VALUE) return info.attributes.sensitive || !info.attributes.extractable ? 'sensitive' : 'invalid';
    return 'invalid';
  }
  if (info.class === 'PRIVATE_KEY' && PRIVATE_COMPONENTS.has(type)) return 'sensitive';
  if (info.keyType === 'RSA') {
    if (type === CKA.MODULUS_BITS) return ulong(BigInt(info.bits));
    if (type === CKA.MODULUS && parts.modulus !== undefined) return bytes(parts.modulus);
    if (type === CKA.PUBLIC_EXPONENT && parts.publicExponent !== undefined) return bytes(parts.publicExponent);
  }
  if (info.keyType === 'EC' && info.curve !== undefined) {
    const params = paramsOfCurve(info.curve);
    if (type === CKA.EC_PARAMS && params !== undefined) return bytes(params);
    if (type === CKA.EC_POINT && parts.ecPoint !== undefined) return bytes(parts.ecPoint);
  }
  return 'invalid';
}

/** Whether an object's attribute equals a template attribute's value (C_FindObjects, §5.7). */
export function matches(found: Lookup, wanted: Attribute): boolean {
  if (typeof found === 'string' || !('value' in wanted)) return false;
  const w = wanted.value;
  if (found.kind === 'byte' && w.kind === 'byte') return (found.value !== 0) === (w.value !== 0);
  if (found.kind === 'ulong' && w.kind === 'ulong') return found.value === w.value;
  if (found.kind === 'bytes' && w.kind === 'bytes') return Buffer.from(found.value).equals(w.value);
  return false;
}

/** A refusal of a template with its CK_RV (PKCS#11 v2.40 §4.1.1–§4.1.3). */
export class TemplateRefusal {
  constructor(readonly rv: number, readonly attribute?: number) {}
}

/** A template's attributes by type; an attribute given twice with different values is inconsistent. */
function byType(template: readonly Attribute[]): Map<number, AttributeValue> | TemplateRefusal {
  const out = new Map<number, AttributeValue>();
  for (const a of template) {
    if (!('value' in a)) return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID, a.type);
    out.set(a.type, a.value);
  }
  return out;
}

function asBool(v: AttributeValue): boolean | TemplateRefusal {
  if (v.kind === 'byte') return v.value !== 0;
  if (v.kind === 'bytes' && v.value.length === 1) return v.value[0] !== 0;
  return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID);
}
function asUlong(v: AttributeValue): bigint | TemplateRefusal {
  return v.kind === 'ulong' ? v.value : new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID);
}
function asBytes(v: AttributeValue): Uint8Array | TemplateRefusal {
  return v.kind === 'bytes' ? v.value : new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID);
}

/** What a key template asks for: the SDK template, and the attributes the caller reads out of it. */
export interface ReadTemplate {
  readonly template: Template;
  readonly cls?: bigint;
  readonly keyType?: bigint;
  readonly modulusBits?: bigint;
  readonly publicExponent?: Uint8Array;
  readonly ecParams?: Uint8Array;
  readonly valueLen?: bigint;
  readonly modulus?: Uint8Array;
  readonly ecPoint?: Uint8Array;
}

/** Attributes a generation template may hold beyond the settable booleans, by object class. */
const EXTRA: Readonly<Record<TemplateKind, ReadonlySet<number>>> = {
  public: new Set([CKA.MODULUS_BITS, CKA.PUBLIC_EXPONENT, CKA.EC_PARAMS]),
  import: new Set([CKA.MODULUS, CKA.PUBLIC_EXPONENT, CKA.EC_PARAMS, CKA.EC_POINT]),
  private: new Set([]),
  secret: new Set([CKA.VALUE_LEN]),
  // C_UnwrapKey: a secret key's length (checked against what was unwrapped), an EC private key's curve.
  unwrap: new Set([CKA.VALUE_LEN, CKA.EC_PARAMS]),
  derive: new Set([CKA.VALUE_LEN]),
};

/** Which call a template is read for. */
export type TemplateKind = 'public' | 'private' | 'secret' | 'import' | 'unwrap' | 'derive';

/** Reads a C_GenerateKey / C_GenerateKeyPair template for an object of `kind` (§4.1.1, §5.14). */
export function readTemplate(template: readonly Attribute[], kind: TemplateKind): ReadTemplate | TemplateRefusal {
  const attrs = byType(template);
  if (attrs instanceof TemplateRefusal) return attrs;
  const t: Record<string, unknown> = {};
  const out: { -readonly [K in keyof ReadTemplate]: ReadTemplate[K] } = { template: t };
  for (const [type, v] of attrs) {
    const settable = SETTABLE.has(type) ? BOOLEANS.find(([b]) => b === type) : undefined;
    let r: unknown;
    if (settable !== undefined) r = t[settable[1]] = asBool(v);
    else if (type === CKA_DESTROYABLE) r = t['destroyable'] = asBool(v);
    else if (type === CKA.LABEL) r = v.kind === 'bytes' ? (t['label'] = new TextDecoder('utf-8', { fatal: false }).decode(v.value)) : new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID);
    else if (type === CKA.ID) r = t['id'] = asBytes(v);
    else if (type === CKA.CLASS) r = out.cls = asUlong(v) as bigint;
    else if (type === CKA.KEY_TYPE) r = out.keyType = asUlong(v) as bigint;
    // Every cluster object needs a login to be seen (header): CKA_PRIVATE is read, and has no effect.
    else if (type === CKA.PRIVATE) r = asBool(v);
    else if (RECOVERY.has(type) && kind !== 'secret' && kind !== 'derive') r = recoveryOff(v);
    else if (EXTRA[kind].has(type)) {
      if (type === CKA.MODULUS_BITS) r = out.modulusBits = asUlong(v) as bigint;
      else if (type === CKA.PUBLIC_EXPONENT) r = out.publicExponent = asBytes(v) as Uint8Array;
      else if (type === CKA.EC_PARAMS) r = out.ecParams = asBytes(v) as Uint8Array;
      else if (type === CKA.MODULUS) r = out.modulus = asBytes(v) as Uint8Array;
      else if (type === CKA.EC_POINT) r = out.ecPoint = asBytes(v) as Uint8Array;
      else r = out.valueLen = asUlong(v) as bigint;
    } else r = new TemplateRefusal(CKR.ATTRIBUTE_TYPE_INVALID, type);
    if (r instanceof TemplateRefusal) return new TemplateRefusal(r.rv, type);
  }
  return out;
}

/** The part of a find template the node filters by, and whether attributes remain to compare here. */
export function findFilterOf(template: readonly Attribute[]): { readonly filter: FindFilter; readonly rest: readonly Attribute[]; readonly none: boolean } {
  const filter: Record<string, unknown> = {};
  const rest: Attribute[] = [];
  let none = false;
  for (const a of template) {
    if (!('value' in a)) {
      none = true; // a template attribute without a value matches nothing
      continue;
    }
    const v = a.value;
    const bool = BOOLEANS.find(([t]) => t === a.type);
    if (bool !== undefined && v.kind === 'byte') filter[bool[1]] = v.value !== 0;
    else if (a.type === CKA.LABEL && v.kind === 'bytes') filter['label'] = new TextDecoder().decode(v.value);
    else if (a.type === CKA.ID && v.kind === 'bytes') filter['id'] = v.value;
    else if (a.type === CKA.CLASS && v.kind === 'ulong') {
      const cls = (Object.keys(CLASS_OF) as ObjectClass[]).find((c) => CLASS_OF[c] === v.value);
      if (cls === undefined) none = true; // data objects: the cluster holds none
      else filter['class'] = cls;
    } else if (a.type === CKA.KEY_TYPE && v.kind === 'ulong') {
      const kt = (Object.keys(KEY_TYPE_OF) as KeyType[]).find((k) => KEY_TYPE_OF[k] === v.value);
      if (kt === undefined) none = true;
      else filter['keyType'] = kt;
    } else rest.push(a);
  }
  return { filter: filter, rest, none };
}

/** Attributes an application may read but not change (PKCS#11 v2.40 §4.2–§4.9, and the key's public parts). */
const READ_ONLY = new Set<number>([
  CKA.CLASS, CKA.KEY_TYPE, CKA.TOKEN, CKA.PRIVATE, CKA.LOCAL, CKA.NEVER_EXTRACTABLE, CKA.ALWAYS_SENSITIVE, CKA.KEY_GEN_MECHANISM,
  CKA.MODULUS, CKA.MODULUS_BITS, CKA.PUBLIC_EXPONENT, CKA.EC_PARAMS, CKA.EC_POINT, CKA.VALUE, CKA.VALUE_LEN, CKA.ALWAYS_AUTHENTICATE,
]);

export interface Change {
  readonly name: SettableAttribute;
  readonly value: boolean | string | Uint8Array;
}

/**
 * C_SetAttributeValue's template as the HSM's attribute changes, checked whole before any is made:
 * read-only attributes are CKR_ATTRIBUTE_READ_ONLY, unknown ones CKR_ATTRIBUTE_TYPE_INVALID, and the
 * one-way rules of §4.9 are kept here too (CKA_SENSITIVE only to true, CKA_EXTRACTABLE only to
 * false: CKR_ATTRIBUTE_READ_ONLY), so that the HSM's refusals cannot stop a template half-applied.
 */
export function readChanges(info: KeyInfo, template: readonly Attribute[]): readonly Change[] | TemplateRefusal {
  const attrs = byType(template);
  if (attrs instanceof TemplateRefusal) return attrs;
  const out: Change[] = [];
  for (const [type, v] of attrs) {
    const bool = SETTABLE.has(type) && type !== CKA.TOKEN ? BOOLEANS.find(([b]) => b === type) : undefined;
    let value: boolean | string | Uint8Array | TemplateRefusal;
    let name: SettableAttribute;
    if (bool !== undefined) [name, value] = [bool[1] as SettableAttribute, asBool(v)];
    else if (type === CKA_DESTROYABLE) [name, value] = ['destroyable', asBool(v)];
    else if (type === CKA.LABEL) [name, value] = ['label', v.kind === 'bytes' ? new TextDecoder().decode(v.value) : new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID)];
    else if (type === CKA.ID) [name, value] = ['id', asBytes(v)];
    else if (RECOVERY.has(type) && lookup(info, type) !== 'invalid') {
      const off = recoveryOff(v);
      if (off instanceof TemplateRefusal) return new TemplateRefusal(off.rv, type);
      continue; // false, as it already is
    } else return new TemplateRefusal(READ_ONLY.has(type) ? CKR.ATTRIBUTE_READ_ONLY : CKR.ATTRIBUTE_TYPE_INVALID, type);
    if (value instanceof TemplateRefusal) return new TemplateRefusal(value.rv, type);
    if (name === 'sensitive' && info.attributes.sensitive && value === false) return new TemplateRefusal(CKR.ATTRIBUTE_READ_ONLY, type);
    if (name === 'extractable' && !info.attributes.extractable && value === true) return new TemplateRefusal(CKR.ATTRIBUTE_READ_ONLY, type);
    out.push({ name, value });
  }
  return out;
}

/** What C_CopyObject's copy of a public key or certificate keeps and its template may change. */
export interface CopyTemplate {
  label: string;
  id: Uint8Array;
  token: boolean;
  modifiable: boolean;
  destroyable: boolean;
  encrypt?: boolean;
  verify?: boolean;
  wrap?: boolean;
}

/**
 * C_CopyObject's template (§5.7) over the object's own attributes: label, id, token, modifiable,
 * destroyable and (public keys) the usage flags may change; CKA_PRIVATE, class and (keys) key type may
 * be repeated unchanged; a change of those, a key's other attributes and a certificate's `fields` are
 * CKR_ATTRIBUTE_READ_ONLY, as is any other attribute the object has (a key's usage flags are its
 * source's), anything else CKR_ATTRIBUTE_TYPE_INVALID. CKA_TRUSTED is not copied (only the SO sets it).
 */
export function copyTemplate(info: KeyInfo, template: readonly Attribute[], fields: ReadonlySet<number> = new Set()): CopyTemplate | TemplateRefusal {
  const attrs = byType(template);
  if (attrs instanceof TemplateRefusal) return attrs;
  const a = info.attributes;
  const out: CopyTemplate = { label: info.label, id: info.id, token: a.token, modifiable: a.modifiable, destroyable: a.destroyable };
  const usage = info.class === 'PUBLIC_KEY' ? new Map<number, 'encrypt' | 'verify' | 'wrap'>([[CKA.ENCRYPT, 'encrypt'], [CKA.VERIFY, 'verify'], [CKA.WRAP, 'wrap']]) : new Map<number, never>();
  for (const [type, v] of attrs) {
    const flag = type === CKA.TOKEN ? 'token' : type === CKA.MODIFIABLE ? 'modifiable' : type === CKA_DESTROYABLE ? 'destroyable' : usage.get(type);
    let r: unknown;
    if (flag !== undefined) r = out[flag] = asBool(v) as boolean;
    else if (type === CKA.LABEL) r = v.kind === 'bytes' ? (out.label = new TextDecoder().decode(v.value)) : new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID);
    else if (type === CKA.ID) r = out.id = asBytes(v) as Uint8Array;
    else if (type === CKA.PRIVATE || type === CKA.CLASS) r = matches(lookup(info, type), { type, value: v }) ? undefined : new TemplateRefusal(CKR.ATTRIBUTE_READ_ONLY);
    else if (info.class === 'CERTIFICATE') r = new TemplateRefusal(fields.has(type) ? CKR.ATTRIBUTE_READ_ONLY : CKR.ATTRIBUTE_TYPE_INVALID);
    else if (type === CKA.KEY_TYPE) r = matches(lookup(info, type), { type, value: v }) ? undefined : new TemplateRefusal(CKR.ATTRIBUTE_READ_ONLY);
    else r = new TemplateRefusal(READ_ONLY.has(type) || type === CKA.TRUSTED || lookup(info, type) !== 'invalid' ? CKR.ATTRIBUTE_READ_ONLY : CKR.ATTRIBUTE_TYPE_INVALID);
    if (r instanceof TemplateRefusal) return new TemplateRefusal(r.rv, type);
  }
  return out;
}

/** The JWK curve names of the curves CKA_EC_PARAMS may name. */
const JWK_CURVES: Partial<Record<Curve, string>> = { 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521', secp256k1: 'secp256k1' };

/**
 * The SPKI PEM of a public key given by its PKCS#11 components (C_CreateObject): RSA CKA_MODULUS and
 * CKA_PUBLIC_EXPONENT, or EC CKA_EC_PARAMS and CKA_EC_POINT (a DER OCTET STRING of the uncompressed
 * point, §2.3.3; the bare point is taken too, as several libraries send it). A missing component is
 * CKR_TEMPLATE_INCOMPLETE; components that are no valid key, CKR_ATTRIBUTE_VALUE_INVALID.
 */
export function publicKeyPem(t: ReadTemplate, keyType: bigint): string | TemplateRefusal {
  let jwk: JsonWebKey;
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
  if (keyType === CKK.RSA) {
    if (t.modulus === undefined || t.publicExponent === undefined) return new TemplateRefusal(CKR.TEMPLATE_INCOMPLETE);
    jwk = { kty: 'RSA', n: b64(t.modulus), e: b64(t.publicExponent) };
  } else if (keyType === CKK.EC) {
    if (t.ecParams === undefined || t.ecPoint === undefined) return new TemplateRefusal(CKR.TEMPLATE_INCOMPLETE);
    const curve = curveOfParams(t.ecParams);
    const crv = curve === undefined ? undefined : JWK_CURVES[curve];
    if (crv === undefined) return new TemplateRefusal(CKR.CURVE_NOT_SUPPORTED, CKA.EC_PARAMS);
    let point = t.ecPoint;
    if (point[0] === 0x04 && point.length >= 2 && point[1] === point.length - 2) point = point.subarray(2);
    else if (point[0] === 0x04 && point[1] === 0x81 && point[2] === point.length - 3) point = point.subarray(3);
    const size = (point.length - 1) / 2;
    if (point[0] !== 0x04 || !Number.isInteger(size)) return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID, CKA.EC_POINT);
    jwk = { kty: 'EC', crv, x: b64(point.subarray(1, 1 + size)), y: b64(point.subarray(1 + size)) };
  } else return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.KEY_TYPE);
  try {
    return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString();
  } catch {
    return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID);
  }
}
