// Key material for the device's mechanisms (docs/architecture.md §4): one shape, KeyMaterial, that pairs a
// node:crypto KeyObject (so no call re-imports a key: the hot path stays lean and the bytes stay in
// OpenSSL's memory) with the PKCS#11 facts the policy checks need (class, key type, size, curve).
// This module generates keys, converts stored bytes (raw secret / PKCS#8 DER / SPKI DER) to and from
// material, and checks key sizes and curves, including what FIPS mode refuses:
//   - AES: 128, 192, 256 bits only.
//   - Generic secret (HMAC, KDF base): 8 to 8192 bits in whole bytes; FIPS mode needs ≥ 112 bits
//     (SP 800-131A r2 §10, SP 800-107 r1 §5.3.4).
//   - RSA: generated 2048–4096 bits in steps of 256 (as CloudHSM); imported or unwrapped keys may be
//     1024–4096 outside FIPS mode (legacy use), ≥ 2048 in FIPS mode (SP 800-131A r2 §2). Public
//     exponent odd and ≥ 3, default 65537; FIPS mode needs e ≥ 65537 (FIPS 186-5 §A.1.1).
//   - EC: P-256, P-384, P-521 and secp256k1; secp256k1 is not an approved curve (SP 800-186) and is
//     refused in FIPS mode.
//   - Ed25519: allowed in FIPS mode, since FIPS 186-5 (2023) approves EdDSA (§7).

import {
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPair as nodeGenerateKeyPair,
  generateKeyPairSync,
  generateKeySync,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { curveEncoding, ecKeyPairDer, generateEcPair, ecPrivateKeyPkcs8, ecPublicSpkiOfPrivate, ecSec1OfPkcs8 } from '../../crypto/index.js';
import { fail } from '../../errors.js';
import {
  GENERIC_SECRET_BITS_MAX,
  GENERIC_SECRET_BITS_MIN,
  KEY_MATERIAL_BYTES_MAX,
  RSA_KEY_BITS_MAX,
  RSA_KEY_BITS_MIN_LEGACY,
  RSA_KEYGEN_BITS_MAX,
  RSA_KEYGEN_BITS_MIN,
  RSA_KEYGEN_BITS_STEP,
} from '../../formats/limits.js';
import type { Curve, KeyType, Mode, ObjectClass } from '../types.js';

/** A usable key: the KeyObject plus the facts policy needs. Never holds raw bytes. */
export interface KeyMaterial {
  readonly class: Exclude<ObjectClass, 'CERTIFICATE'>;
  readonly keyType: KeyType;
  readonly key: KeyObject;
  /** AES/generic: key length in bits; RSA: modulus bits; EC: order bits of the curve; Ed25519: 256. */
  readonly bits: number;
  readonly curve?: Curve;
  /** SPKI DER of the key's public half when it is already at hand (a pair just generated: exported
   * once for both keys), so that its KCV and a public key's bytes need no export again. Not secret. */
  readonly spki?: Uint8Array;
}

export interface SecretKeySpec {
  keyType: 'AES' | 'GENERIC_SECRET';
  bits: number;
}

export type KeyPairSpec =
  | { keyType: 'RSA'; bits: number; publicExponent?: number }
  | { keyType: 'EC'; curve: Exclude<Curve, 'Ed25519'> }
  | { keyType: 'EC_EDWARDS'; curve: 'Ed25519' };

/** The smallest symmetric strength FIPS mode accepts (SP 800-131A r2: 112-bit security). */
export const FIPS_SECRET_BITS_MIN = 112;
/** RSA modulus floor in FIPS mode (SP 800-131A r2 §2: 2048 bits for 112-bit security). */
export const FIPS_RSA_BITS_MIN = 2048;
/** FIPS 186-5 §A.1.1: 2^16 < e < 2^256. Node takes the exponent as a 32-bit number. */
export const FIPS_RSA_EXPONENT_MIN = 65537;
const RSA_EXPONENT_DEFAULT = 65537;

/** Weierstrass curves and their OpenSSL names (node's asymmetricKeyDetails.namedCurve). */
export const EC_CURVES = {
  'P-256': { openssl: 'prime256v1', bits: 256, fieldBytes: 32 },
  'P-384': { openssl: 'secp384r1', bits: 384, fieldBytes: 48 },
  'P-521': { openssl: 'secp521r1', bits: 521, fieldBytes: 66 },
  secp256k1: { openssl: 'secp256k1', bits: 256, fieldBytes: 32 },
} as const satisfies Record<Exclude<Curve, 'Ed25519'>, { openssl: string; bits: number; fieldBytes: number }>;
export type EcCurve = keyof typeof EC_CURVES;

const ED25519_BITS = 256;
const AES_BITS: readonly number[] = [128, 192, 256];

function isEcCurve(c: unknown): c is EcCurve {
  return typeof c === 'string' && Object.hasOwn(EC_CURVES, c);
}

function curveFromOpenssl(name: string | undefined): EcCurve | undefined {
  for (const [curve, info] of Object.entries(EC_CURVES)) if (info.openssl === name) return curve as EcCurve;
  return undefined;
}

/** Checks a generation spec against sizes, curves and exponents, and against FIPS policy. */
export function checkKeyGen(mode: Mode, spec: SecretKeySpec | KeyPairSpec): void {
  switch (spec.keyType) {
    case 'AES':
      if (!AES_BITS.includes(spec.bits)) fail('COFFER_KEY_SIZE_RANGE', { keyType: 'AES', bits: spec.bits });
      return;
    case 'GENERIC_SECRET':
      checkGenericBits(mode, spec.bits);
      return;
    case 'RSA': {
      const { bits } = spec;
      if (!Number.isInteger(bits) || bits < RSA_KEYGEN_BITS_MIN || bits > RSA_KEYGEN_BITS_MAX || bits % RSA_KEYGEN_BITS_STEP !== 0) {
        fail('COFFER_KEY_SIZE_RANGE', { keyType: 'RSA', bits });
      }
      const e = spec.publicExponent ?? RSA_EXPONENT_DEFAULT;
      if (!Number.isInteger(e) || e < 3 || e % 2 === 0 || e > 0xffffffff) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'publicExponent' });
      if (mode === 'FIPS' && e < FIPS_RSA_EXPONENT_MIN) fail('COFFER_FIPS_REFUSED', { keyType: 'RSA', publicExponent: e });
      return;
    }
    case 'EC':
      if (!isEcCurve(spec.curve)) fail('COFFER_CRYPTO_UNSUPPORTED_CURVE');
      if (mode === 'FIPS' && spec.curve === 'secp256k1') fail('COFFER_FIPS_REFUSED', { curve: spec.curve });
      return;
    case 'EC_EDWARDS':
      if (spec.curve !== 'Ed25519') fail('COFFER_CRYPTO_UNSUPPORTED_CURVE');
      return;
    default:
      fail('COFFER_TEMPLATE_INCONSISTENT', { attribute: 'keyType' });
  }
}

function checkGenericBits(mode: Mode, bits: number): void {
  if (!Number.isInteger(bits) || bits % 8 !== 0 || bits < GENERIC_SECRET_BITS_MIN || bits > GENERIC_SECRET_BITS_MAX) {
    fail('COFFER_KEY_SIZE_RANGE', { keyType: 'GENERIC_SECRET', bits });
  }
  if (mode === 'FIPS' && bits < FIPS_SECRET_BITS_MIN) fail('COFFER_FIPS_REFUSED', { keyType: 'GENERIC_SECRET', bits });
}

/**
 * FIPS policy for a key that already exists (imported, unwrapped, derived, or restored): the sizes and
 * curves FIPS mode refuses. Material is already range-checked when it is made, so NON_FIPS passes.
 */
export function checkKeyMaterial(mode: Mode, key: KeyMaterial): void {
  if (mode !== 'FIPS') return;
  if (key.keyType === 'RSA' && key.bits < FIPS_RSA_BITS_MIN) fail('COFFER_FIPS_REFUSED', { keyType: 'RSA', bits: key.bits });
  if (key.keyType === 'GENERIC_SECRET' && key.bits < FIPS_SECRET_BITS_MIN) fail('COFFER_FIPS_REFUSED', { keyType: 'GENERIC_SECRET', bits: key.bits });
  if (key.curve === 'secp256k1') fail('COFFER_FIPS_REFUSED', { curve: 'secp256k1' });
}

export function generateSecretKey(spec: SecretKeySpec): KeyMaterial {
  checkKeyGen('NON_FIPS', spec);
  const key = generateKeySync(spec.keyType === 'AES' ? 'aes' : 'hmac', { length: spec.bits });
  return { class: 'SECRET_KEY', keyType: spec.keyType, key, bits: spec.bits };
}

export function generateKeyPair(spec: KeyPairSpec): { publicKey: KeyMaterial; privateKey: KeyMaterial } {
  checkKeyGen('NON_FIPS', spec);
  switch (spec.keyType) {
    case 'RSA': {
      const pair = generateKeyPairSync('rsa', { modulusLength: spec.bits, publicExponent: spec.publicExponent ?? RSA_EXPONENT_DEFAULT });
      return pairOf('RSA', pair, spec.bits);
    }
    case 'EC':
      return pairOf('EC', generateKeyPairSync('ec', { namedCurve: EC_CURVES[spec.curve].openssl }), EC_CURVES[spec.curve].bits, spec.curve);
    case 'EC_EDWARDS':
      return pairOf('EC_EDWARDS', generateKeyPairSync('ed25519'), ED25519_BITS, 'Ed25519');
  }
}

/** A key as the bytes its record stores (PKCS#8 DER for a private key, SPKI DER for a public one),
 * with the facts a record needs; no KeyObject (one is built from the bytes when the key is used). */
export interface EncodedKey {
  readonly class: 'PUBLIC_KEY' | 'PRIVATE_KEY';
  readonly keyType: 'EC';
  readonly bits: number;
  readonly curve: EcCurve;
  /** PKCS#8 or SPKI DER: the caller owns these bytes and wipes them. */
  readonly encoded: Uint8Array;
  /** SPKI DER of the pair's public key (its KCV). Not secret. */
  readonly spki: Uint8Array;
}

/**
 * Generates an EC key pair with OpenSSL's EC key generation (node's ECDH, which hands over the
 * scalar and the point) and writes it as OpenSSL would export it (crypto/ec_key_der.ts). What a
 * generated pair needs is its bytes: a KeyObject pair costs about 40 µs more to generate and 50 µs
 * more to export (P-256, docs/device.md "Batches"), and its KeyObjects would not be kept. The
 * private scalar as node returns it is wiped here; the PKCS#8 is the caller's to wipe.
 */
export function generateEcKeyPairEncoded(curve: EcCurve): { publicKey: EncodedKey; privateKey: EncodedKey } {
  if (!isEcCurve(curve)) fail('COFFER_CRYPTO_UNSUPPORTED_CURVE');
  const { bits } = EC_CURVES[curve];
  const { oid, orderBytes } = curveEncoding(curve);
  const { d, point } = generateEcPair(curve); // one generating object per curve (crypto/ecdsa_raw.ts)
  let der: { pkcs8: Uint8Array; spki: Uint8Array };
  try {
    der = ecKeyPairDer(oid, orderBytes, d, point);
  } finally {
    d.fill(0);
  }
  const facts = { keyType: 'EC', bits, curve, spki: der.spki } as const;
  return { publicKey: { class: 'PUBLIC_KEY', ...facts, encoded: der.spki.slice() }, privateKey: { class: 'PRIVATE_KEY', ...facts, encoded: der.pkcs8 } };
}

const generateKeyPairAsyncRaw = promisify(nodeGenerateKeyPair);

/** As generateKeyPair, on libuv's thread pool: RSA-4096 generation takes seconds and must not stall the loop. */
export async function generateKeyPairAsync(spec: KeyPairSpec): Promise<{ publicKey: KeyMaterial; privateKey: KeyMaterial }> {
  checkKeyGen('NON_FIPS', spec);
  switch (spec.keyType) {
    case 'RSA': {
      const pair = await generateKeyPairAsyncRaw('rsa', { modulusLength: spec.bits, publicExponent: spec.publicExponent ?? RSA_EXPONENT_DEFAULT });
      return pairOf('RSA', pair, spec.bits);
    }
    case 'EC': {
      const pair = await generateKeyPairAsyncRaw('ec', { namedCurve: EC_CURVES[spec.curve].openssl });
      return pairOf('EC', pair, EC_CURVES[spec.curve].bits, spec.curve);
    }
    case 'EC_EDWARDS':
      return pairOf('EC_EDWARDS', await generateKeyPairAsyncRaw('ed25519', undefined), ED25519_BITS, 'Ed25519');
  }
}

function pairOf(keyType: KeyType, pair: { publicKey: KeyObject; privateKey: KeyObject }, bits: number, curve?: Curve): { publicKey: KeyMaterial; privateKey: KeyMaterial } {
  // One SPKI serves the public key's bytes and both keys' KCV. An EC pair's is written from the
  // private key's SEC 1 form (crypto/ec_key_der.ts): OpenSSL's SPKI export costs about 100 µs.
  const spki = (keyType === 'EC' ? ecPublicSpkiOfPrivate(pair.privateKey) : undefined) ?? new Uint8Array(pair.publicKey.export({ format: 'der', type: 'spki' }));
  const extra = curve === undefined ? { spki } : { curve, spki };
  return {
    publicKey: { class: 'PUBLIC_KEY', keyType, key: pair.publicKey, bits, ...extra },
    privateKey: { class: 'PRIVATE_KEY', keyType, key: pair.privateKey, bits, ...extra },
  };
}

/**
 * Material from stored bytes: SECRET_KEY raw bytes, PRIVATE_KEY PKCS#8 DER, PUBLIC_KEY SPKI DER.
 * Node copies the bytes into its own key; the caller still owns (and zeroises) `bytes`.
 * Unparseable bytes are COFFER_ATTRIBUTE_INVALID; a key of another type or curve than claimed is
 * COFFER_KEY_TYPE_INCONSISTENT; a size outside the supported range is COFFER_KEY_SIZE_RANGE.
 */
export function materialFromBytes(cls: ObjectClass, keyType: KeyType, bytes: Uint8Array, curve?: Curve): KeyMaterial {
  if (bytes.length === 0 || bytes.length > KEY_MATERIAL_BYTES_MAX) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'value' });
  if (cls === 'SECRET_KEY') {
    if (keyType !== 'AES' && keyType !== 'GENERIC_SECRET') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: cls, keyType });
    const bits = bytes.length * 8;
    if (keyType === 'AES' && !AES_BITS.includes(bits)) fail('COFFER_KEY_SIZE_RANGE', { keyType, bits });
    if (keyType === 'GENERIC_SECRET') checkGenericBits('NON_FIPS', bits);
    return { class: cls, keyType, key: createSecretKey(bytes), bits };
  }
  // A certificate object holds no key the mechanisms use (formats/object_record.ts version 2).
  if (cls === 'CERTIFICATE') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: cls });
  const der = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let key: KeyObject;
  try {
    key = cls === 'PRIVATE_KEY' ? privateKeyOf(keyType, der) : createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'value' });
  }
  return materialFromKeyObject(cls, keyType, key, curve);
}

/** A private KeyObject from PKCS#8: an EC key through its SEC 1 form, which OpenSSL parses about four
 * times faster (crypto/ec_key_der.ts ecSec1OfPkcs8); the same key either way. */
function privateKeyOf(keyType: KeyType, pkcs8: Buffer): KeyObject {
  const sec1 = keyType === 'EC' ? ecSec1OfPkcs8(pkcs8) : undefined;
  if (sec1 === undefined) return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  try {
    return createPrivateKey({ key: Buffer.from(sec1.buffer, sec1.byteOffset, sec1.byteLength), format: 'der', type: 'sec1' });
  } finally {
    sec1.fill(0);
  }
}

/** Describes an asymmetric KeyObject, checking it is what the caller says it is. */
export function materialFromKeyObject(cls: 'PRIVATE_KEY' | 'PUBLIC_KEY', keyType: KeyType, key: KeyObject, curve?: Curve): KeyMaterial {
  const kind = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (keyType === 'RSA' && kind === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_KEY_BITS_MIN_LEGACY || bits > RSA_KEY_BITS_MAX) fail('COFFER_KEY_SIZE_RANGE', { keyType, bits });
    if (curve !== undefined) fail('COFFER_KEY_TYPE_INCONSISTENT', { keyType });
    return { class: cls, keyType, key, bits };
  }
  if (keyType === 'EC' && kind === 'ec') {
    const found = curveFromOpenssl(details.namedCurve);
    if (found === undefined) fail('COFFER_CRYPTO_UNSUPPORTED_CURVE');
    if (curve !== undefined && curve !== found) fail('COFFER_KEY_TYPE_INCONSISTENT', { keyType, curve });
    return { class: cls, keyType, key, bits: EC_CURVES[found].bits, curve: found };
  }
  if (keyType === 'EC_EDWARDS' && kind === 'ed25519') {
    if (curve !== undefined && curve !== 'Ed25519') fail('COFFER_KEY_TYPE_INCONSISTENT', { keyType, curve });
    return { class: cls, keyType, key, bits: ED25519_BITS, curve: 'Ed25519' };
  }
  return fail('COFFER_KEY_TYPE_INCONSISTENT', { class: cls, keyType });
}

/** Stored bytes of a key (raw / PKCS#8 DER / SPKI DER). The caller zeroises the result. */
export function materialToBytes(key: KeyMaterial): Uint8Array {
  switch (key.class) {
    case 'SECRET_KEY':
      return key.key.export();
    case 'PRIVATE_KEY':
      // EC: the same bytes as OpenSSL's PKCS#8 export, without its encoder lookup (ec_key_der.ts).
      return key.keyType === 'EC' ? ecPrivateKeyPkcs8(key.key) : key.key.export({ format: 'der', type: 'pkcs8' });
    case 'PUBLIC_KEY':
      return key.spki === undefined ? key.key.export({ format: 'der', type: 'spki' }) : Buffer.from(key.spki);
  }
}

export function publicFromPrivate(key: KeyMaterial): KeyMaterial {
  if (key.class !== 'PRIVATE_KEY') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: key.class });
  const extra = key.curve === undefined ? {} : { curve: key.curve };
  return { class: 'PUBLIC_KEY', keyType: key.keyType, key: createPublicKey(key.key), bits: key.bits, ...extra };
}
