// Attribute rules of the object model (docs/architecture.md §4): which key functions suit which key, the
// defaults a template falls back to, which attributes the device computes, and which changes
// C_SetAttributeValue-style calls may make. PKCS#11 v2.40 §4.4–4.10 (storage, key, public, private
// and secret key objects) is the reference; where it leaves a choice, CloudHSM's behaviour is.
// Pure functions over plain values: objects.ts applies them, and tests exercise each rule here.

import { fail } from '../../errors.js';
import { assert } from '../../assert.js';
import { LABEL_BYTES_MAX, OBJECT_ID_BYTES_MAX, QUORUM_MAX, QUORUM_MIN } from '../../formats/limits.js';
import type { BooleanAttributes, KeyFunction, KeyType, ObjectClass } from '../types.js';

/** What a caller may ask for when an object is created. Everything else is computed. */
export interface ObjectTemplate {
  readonly label?: string;
  readonly id?: Uint8Array;
  /** true (the default, as CloudHSM CLI): a token object, stored and cluster-wide. */
  readonly token?: boolean;
  /** The session that owns a session object (token=false); required then, refused otherwise. */
  readonly sessionId?: string;
  readonly sensitive?: boolean;
  readonly extractable?: boolean;
  readonly encrypt?: boolean;
  readonly decrypt?: boolean;
  readonly sign?: boolean;
  readonly verify?: boolean;
  readonly wrap?: boolean;
  readonly unwrap?: boolean;
  readonly derive?: boolean;
  /** Only an admin may make a key trusted (PKCS#11 v2.40 §4.8: only the SO sets CKA_TRUSTED). */
  readonly trusted?: boolean;
  readonly wrapWithTrusted?: boolean;
  readonly modifiable?: boolean;
  readonly destroyable?: boolean;
  /** CloudHSM's --manage-key-quorum-value / --use-key-quorum-value: 0 (none) or 2..8. */
  readonly manageKeyQuorum?: number;
  readonly useKeyQuorum?: number;
}

/** How the key came to be; decides local, always-sensitive and never-extractable (PKCS#11 §4.7). */
export type Origin =
  | { readonly kind: 'generated' }
  | { readonly kind: 'imported' }
  | { readonly kind: 'unwrapped' }
  | { readonly kind: 'derived'; readonly base: Readonly<BooleanAttributes> };

/** A template resolved against defaults and checked. */
export interface ResolvedTemplate {
  readonly attributes: Readonly<BooleanAttributes>;
  readonly label: string;
  readonly id: Uint8Array;
  readonly sessionId?: string;
  readonly manageKeyQuorum: number;
  readonly useKeyQuorum: number;
}

type KeyKind = `${ObjectClass}/${KeyType}`;

/**
 * The functions each kind of key can perform at all; a template asking for another is
 * inconsistent. AES: GCM/CBC/CTR, CMAC sign/verify, KW/KWP, SP 800-108 base key. Generic secret:
 * HMAC and derivation. RSA: PKCS#1/PSS/OAEP, wrapping with the public key. EC: ECDSA, ECDH derive.
 * Ed25519: EdDSA only. Missing kinds (e.g. SECRET_KEY/RSA) do not exist.
 */
export const PERMITTED_FUNCTIONS: Readonly<Partial<Record<KeyKind, readonly KeyFunction[]>>> = {
  'SECRET_KEY/AES': ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'],
  'SECRET_KEY/GENERIC_SECRET': ['sign', 'verify', 'derive'],
  'PRIVATE_KEY/RSA': ['decrypt', 'sign', 'unwrap'],
  'PUBLIC_KEY/RSA': ['encrypt', 'verify', 'wrap'],
  'PRIVATE_KEY/EC': ['sign', 'derive'],
  // CKA_DERIVE on an EC public key is accepted and kept, as other tokens do (pkcs11-tool sets it on
  // both halves of a key pair made for ECDH): no mechanism takes a public key as its base key, so
  // it allows nothing (ECDH refuses one with COFFER_KEY_TYPE_INCONSISTENT).
  'PUBLIC_KEY/EC': ['verify', 'derive'],
  'PRIVATE_KEY/EC_EDWARDS': ['sign'],
  'PUBLIC_KEY/EC_EDWARDS': ['verify'],
};

/**
 * Functions a template gets when it says nothing about them: the key's ordinary use. Wrap, unwrap
 * and derive are opt-in, because a key that can wrap or derive can move other keys' value.
 */
export const DEFAULT_FUNCTIONS: Readonly<Partial<Record<KeyKind, readonly KeyFunction[]>>> = {
  'SECRET_KEY/AES': ['encrypt', 'decrypt'],
  'SECRET_KEY/GENERIC_SECRET': ['sign', 'verify'],
  'PRIVATE_KEY/RSA': ['decrypt', 'sign'],
  'PUBLIC_KEY/RSA': ['encrypt', 'verify'],
  'PRIVATE_KEY/EC': ['sign'],
  'PUBLIC_KEY/EC': ['verify'],
  'PRIVATE_KEY/EC_EDWARDS': ['sign'],
  'PUBLIC_KEY/EC_EDWARDS': ['verify'],
};

export const KEY_FUNCTIONS: readonly KeyFunction[] = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'];
const TEMPLATE_BOOLEANS = [...KEY_FUNCTIONS, 'token', 'sensitive', 'extractable', 'trusted', 'wrapWithTrusted', 'modifiable', 'destroyable'] as const;
const TEMPLATE_KEYS = new Set<string>([...TEMPLATE_BOOLEANS, 'label', 'id', 'sessionId', 'manageKeyQuorum', 'useKeyQuorum']);
/** Set by the device alone (PKCS#11 §4.7: CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE). */
const COMPUTED = new Set<string>(['local', 'neverExtractable', 'alwaysSensitive']);
/** Never changeable after creation: identity, provenance and storage class of an object. */
const IMMUTABLE = new Set<string>([
  ...COMPUTED, 'token', 'class', 'keyType', 'bits', 'curve', 'owner', 'sharees', 'kcv', 'handle', 'sessionId', 'manageKeyQuorum', 'useKeyQuorum',
]);

export function permittedFunctions(cls: ObjectClass, keyType: KeyType): readonly KeyFunction[] {
  return PERMITTED_FUNCTIONS[`${cls}/${keyType}`] ?? fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls, keyType });
}

/** Refuses attribute sets that no key of this class and type may have (TEMPLATE_INCONSISTENT). */
export function checkConsistency(cls: ObjectClass, keyType: KeyType, a: Readonly<BooleanAttributes>): void {
  if (cls === 'CERTIFICATE') {
    // A certificate is no key (docs/device.md "Certificates"): none of these may become true.
    for (const name of [...KEY_FUNCTIONS, 'sensitive', 'extractable', 'trusted', 'wrapWithTrusted'] as const) {
      if (a[name]) fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls, attribute: name });
    }
    return;
  }
  const permitted = permittedFunctions(cls, keyType);
  for (const fn of KEY_FUNCTIONS) {
    if (a[fn] && !permitted.includes(fn)) fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls, keyType, attribute: fn });
  }
  // PKCS#11 §4.8/4.9: CKA_SENSITIVE and CKA_WRAP_WITH_TRUSTED belong to private and secret keys;
  // a public key's value is public. CKA_TRUSTED belongs to public and secret (wrapping) keys.
  if (cls === 'PUBLIC_KEY' && a.sensitive) fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls, attribute: 'sensitive' });
  if (cls === 'PUBLIC_KEY' && a.wrapWithTrusted) fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls, attribute: 'wrapWithTrusted' });
  if (cls === 'PRIVATE_KEY' && a.trusted) fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls, attribute: 'trusted' });
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A label: a well-formed string of at most LABEL_BYTES_MAX UTF-8 bytes. */
export function checkLabel(value: unknown): string {
  if (typeof value !== 'string') fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'label' });
  const bytes = utf8.encode(value);
  // A lone surrogate encodes as U+FFFD and would not survive a round trip through the record.
  if (bytes.length > LABEL_BYTES_MAX || utf8Strict.decode(bytes) !== value) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'label', maxBytes: LABEL_BYTES_MAX });
  return value;
}

/** An id (CKA_ID): at most OBJECT_ID_BYTES_MAX bytes. Returns a copy. */
export function checkId(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length > OBJECT_ID_BYTES_MAX) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'id', maxBytes: OBJECT_ID_BYTES_MAX });
  return value.slice();
}

/** A per-key quorum value: 0 (no quorum) or QUORUM_MIN..QUORUM_MAX. */
export function checkKeyQuorum(value: unknown): number {
  if (value === 0) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < QUORUM_MIN || value > QUORUM_MAX) fail('COFFER_QUORUM_VALUE_INVALID');
  return value;
}

/** A certificate's or a copy's template: each field a known one, the boolean ones booleans and the
 * byte-string ones byte strings (else COFFER_ATTRIBUTE_INVALID), in one pass over its fields. */
function checkFields(template: object, keys: ReadonlySet<string>, booleans: readonly string[], byteStrings: readonly string[] = []): void {
  for (const [key, value] of Object.entries(template)) {
    if (value === undefined) continue;
    if (!keys.has(key)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
    if (booleans.includes(key) && typeof value !== 'boolean') fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
    if (byteStrings.includes(key) && !(value instanceof Uint8Array)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
  }
}

/** Where a new object lives: `token` (default `fallback`); a session object, and only one, names its
 * session (else COFFER_TEMPLATE_INCONSISTENT). */
function tokenOf(template: { readonly token?: boolean; readonly sessionId?: string }, fallback: boolean): boolean {
  const token = template.token ?? fallback;
  if (token === (template.sessionId !== undefined)) fail('COFFER_TEMPLATE_INCONSISTENT', { attribute: 'sessionId' });
  return token;
}

function checkTemplateShape(template: ObjectTemplate): void {
  for (const [key, value] of Object.entries(template)) {
    if (value === undefined) continue;
    if (COMPUTED.has(key)) fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: key });
    if (!TEMPLATE_KEYS.has(key)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
    if ((TEMPLATE_BOOLEANS as readonly string[]).includes(key) && typeof value !== 'boolean') fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
  }
}

function computedAttributes(cls: ObjectClass, origin: Origin, sensitive: boolean, extractable: boolean): Pick<BooleanAttributes, 'local' | 'alwaysSensitive' | 'neverExtractable'> {
  const local = origin.kind === 'generated';
  if (cls === 'PUBLIC_KEY') return { local, alwaysSensitive: false, neverExtractable: false };
  switch (origin.kind) {
    case 'generated':
      return { local, alwaysSensitive: sensitive, neverExtractable: !extractable };
    case 'derived': // PKCS#11 v2.40 C_DeriveKey: inherited from the base key and the new key's own values
      return { local, alwaysSensitive: origin.base.alwaysSensitive && sensitive, neverExtractable: origin.base.neverExtractable && !extractable };
    case 'imported':
    case 'unwrapped': // PKCS#11 v2.40 C_UnwrapKey: both false, the value was once outside the device
      return { local, alwaysSensitive: false, neverExtractable: false };
  }
}

/**
 * Resolves `template` for a new object of `cls`/`keyType`: checks its shape and values, fills in
 * defaults (token, sensitive for private and secret keys, extractable as CloudHSM, the key type's
 * ordinary functions, modifiable, destroyable), computes local / always-sensitive /
 * never-extractable from `origin`, and refuses inconsistent sets.
 */
export function resolveTemplate(cls: ObjectClass, keyType: KeyType, template: ObjectTemplate, origin: Origin): ResolvedTemplate {
  checkTemplateShape(template);
  permittedFunctions(cls, keyType); // refuses a class/type pair that does not exist
  const defaults = DEFAULT_FUNCTIONS[`${cls}/${keyType}`] ?? [];
  if (template.trusted === true) fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: 'trusted' });
  const token = tokenOf(template, true);
  if (template.sessionId !== undefined) assert(typeof template.sessionId === 'string' && template.sessionId.length > 0, 'session ids come from the facade');
  const sensitive = template.sensitive ?? cls !== 'PUBLIC_KEY';
  const extractable = template.extractable ?? true;
  const fn = (f: KeyFunction): boolean => template[f] ?? defaults.includes(f);
  const attributes: BooleanAttributes = {
    token, sensitive, extractable,
    encrypt: fn('encrypt'), decrypt: fn('decrypt'), sign: fn('sign'), verify: fn('verify'),
    wrap: fn('wrap'), unwrap: fn('unwrap'), derive: fn('derive'),
    trusted: false,
    wrapWithTrusted: template.wrapWithTrusted ?? false,
    modifiable: template.modifiable ?? true,
    destroyable: template.destroyable ?? true,
    ...computedAttributes(cls, origin, sensitive, extractable),
  };
  checkConsistency(cls, keyType, attributes);
  const base = {
    attributes,
    label: checkLabel(template.label ?? ''),
    id: checkId(template.id ?? new Uint8Array(0)),
    manageKeyQuorum: checkKeyQuorum(template.manageKeyQuorum ?? 0),
    useKeyQuorum: checkKeyQuorum(template.useKeyQuorum ?? 0),
  };
  return template.sessionId === undefined ? base : { ...base, sessionId: template.sessionId };
}

/**
 * What a copy of an object may change (PKCS#11 v2.40 §5.7 C_CopyObject; docs/device.md "Copies"):
 * where it lives, its label and id, and CKA_MODIFIABLE / CKA_DESTROYABLE from true to false. All
 * else is the source's.
 */
export interface CopyTemplate {
  readonly token?: boolean;
  readonly sessionId?: string;
  readonly label?: string;
  readonly id?: Uint8Array;
  readonly modifiable?: boolean;
  readonly destroyable?: boolean;
}

const COPY_TEMPLATE_KEYS = new Set<string>(['token', 'sessionId', 'label', 'id', 'modifiable', 'destroyable']);
/** The booleans a certificate's or a copy's template may hold. */
const PLACEMENT_BOOLEANS = ['token', 'modifiable', 'destroyable'] as const;

/** What a copy keeps of its source. */
export interface CopySource {
  readonly attributes: Readonly<BooleanAttributes>;
  readonly label: string;
  readonly id: Uint8Array;
  readonly manageKeyQuorum: number;
  readonly useKeyQuorum: number;
}

/**
 * Resolves a copy's template over its source: the source's attributes and quorum values (local,
 * always-sensitive and never-extractable too: the key never left the device), not trusted (only the
 * SO sets that); token, label and id as the template says, else the source's; modifiable and
 * destroyable may go from true to false only (COFFER_ATTRIBUTE_READ_ONLY). Anything else in the
 * template is COFFER_ATTRIBUTE_INVALID.
 */
export function resolveCopyTemplate(source: CopySource, template: CopyTemplate): ResolvedTemplate {
  checkFields(template, COPY_TEMPLATE_KEYS, PLACEMENT_BOOLEANS);
  const token = tokenOf(template, source.attributes.token);
  for (const name of ['modifiable', 'destroyable'] as const) {
    if (template[name] === true && !source.attributes[name]) fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: name });
  }
  const attributes: BooleanAttributes = {
    ...source.attributes,
    token,
    trusted: false,
    modifiable: template.modifiable ?? source.attributes.modifiable,
    destroyable: template.destroyable ?? source.attributes.destroyable,
  };
  const base = {
    attributes,
    label: checkLabel(template.label ?? source.label),
    id: checkId(template.id ?? source.id),
    manageKeyQuorum: source.manageKeyQuorum,
    useKeyQuorum: source.useKeyQuorum,
  };
  return template.sessionId === undefined ? base : { ...base, sessionId: template.sessionId };
}

/**
 * What a caller may say when it stores a certificate (PKCS#11 v2.40 §4.6): where it lives, its label
 * and id, whether it may change or go, its category, and — optionally — the subject, issuer and
 * serial number it expects the certificate to carry (checked against the DER by the device).
 */
export interface CertificateTemplate {
  readonly label?: string;
  readonly id?: Uint8Array;
  readonly token?: boolean;
  readonly sessionId?: string;
  readonly modifiable?: boolean;
  readonly destroyable?: boolean;
  /** CKA_CERTIFICATE_CATEGORY (§4.6.1): 0 unspecified (default), 1 token user, 2 authority, 3 other entity. */
  readonly category?: number;
  readonly subject?: Uint8Array;
  readonly issuer?: Uint8Array;
  readonly serialNumber?: Uint8Array;
}

const CERTIFICATE_TEMPLATE_KEYS = new Set<string>(['label', 'id', 'token', 'sessionId', 'modifiable', 'destroyable', 'category', 'subject', 'issuer', 'serialNumber']);

/**
 * Resolves a certificate's template. A certificate is a public object that does nothing: every key
 * function, sensitive, extractable, trusted (§4.6.2: only the SO may set CKA_TRUSTED, and the token
 * has no SO who does) and the computed attributes are false; token, modifiable and destroyable
 * default to true. An unknown field is ATTRIBUTE_INVALID; a category outside 0..3 too.
 */
export function resolveCertificateTemplate(template: CertificateTemplate): ResolvedTemplate & { readonly category: number } {
  checkFields(template, CERTIFICATE_TEMPLATE_KEYS, PLACEMENT_BOOLEANS, ['subject', 'issuer', 'serialNumber']);
  const category = template.category ?? 0;
  if (!Number.isInteger(category) || category < 0 || category > 3) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'category' });
  const token = tokenOf(template, true);
  const attributes: BooleanAttributes = {
    token, sensitive: false, extractable: false, encrypt: false, decrypt: false, sign: false, verify: false, wrap: false, unwrap: false,
    derive: false, trusted: false, wrapWithTrusted: false, local: false, neverExtractable: false, alwaysSensitive: false,
    modifiable: template.modifiable ?? true, destroyable: template.destroyable ?? true,
  };
  const base = {
    attributes, label: checkLabel(template.label ?? ''), id: checkId(template.id ?? new Uint8Array(0)), manageKeyQuorum: 0, useKeyQuorum: 0, category,
  };
  return template.sessionId === undefined ? base : { ...base, sessionId: template.sessionId };
}

/** The part of an object setAttribute may change. */
export interface MutableState {
  readonly attributes: Readonly<BooleanAttributes>;
  readonly label: string;
  readonly id: Uint8Array;
}

/** Names setAttribute accepts. */
export type SettableAttribute = 'label' | 'id' | Exclude<keyof BooleanAttributes, 'token' | 'local' | 'neverExtractable' | 'alwaysSensitive'>;

/** Who asks: the owner, or an admin (who may change `trusted` only, as in CloudHSM). */
export type Changer = 'owner' | 'admin';

/** One-way attributes (PKCS#11 v2.40 §4.9, §4.10): the direction a change may go, if any. */
const ONE_WAY: Readonly<Partial<Record<keyof BooleanAttributes, boolean>>> = {
  sensitive: true, // may become true, never false again
  extractable: false, // may become false, never true again
  wrapWithTrusted: true,
  modifiable: false, // once false, nothing changes (checked first)
};

/**
 * Applies one attribute change to `obj` of `cls`/`keyType` and returns the new state, or throws:
 * ATTRIBUTE_INVALID (unknown name or bad value), ATTRIBUTE_READ_ONLY (immutable, computed, object
 * not modifiable, a one-way attribute moved back, or `trusted` by a non-admin), PERMISSION_DENIED
 * (an admin changing anything but `trusted`), TEMPLATE_INCONSISTENT (a result no such key may have).
 * Setting an attribute to the value it has is allowed where changing it would be.
 */
export function applyAttributeChange(cls: ObjectClass, keyType: KeyType, obj: MutableState, name: string, value: unknown, by: Changer): MutableState {
  if (IMMUTABLE.has(name)) fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: name });
  if (name !== 'label' && name !== 'id' && !Object.hasOwn(obj.attributes, name)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: name });
  if (by === 'admin' && name !== 'trusted') fail('COFFER_PERMISSION_DENIED');
  if (by !== 'admin' && name === 'trusted') fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: name });
  if (!obj.attributes.modifiable) fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: name, reason: 'not modifiable' });
  if (name === 'label') return { ...obj, label: checkLabel(value) };
  if (name === 'id') return { ...obj, id: checkId(value) };
  const key = name as keyof BooleanAttributes;
  if (typeof value !== 'boolean') fail('COFFER_ATTRIBUTE_INVALID', { attribute: name });
  const allowed = ONE_WAY[key];
  if (allowed !== undefined && value !== obj.attributes[key] && value !== allowed) fail('COFFER_ATTRIBUTE_READ_ONLY', { attribute: name });
  const attributes = { ...obj.attributes, [key]: value };
  checkConsistency(cls, keyType, attributes);
  return { ...obj, attributes };
}
