// The device's mechanisms (docs/architecture.md §4), named and parameterised as PKCS#11 CKM_* mechanisms:
// the table of what each supports (MECHANISMS), the policy check run before every use
// (checkMechanism: function, key type and size, parameters, FIPS mode), and the operations
// themselves, dispatched to mech_aes / mech_rsa / mech_ec / mech_derive on node:crypto.
//
// Hot path: a KeyMaterial carries a ready KeyObject, so sign/verify/encrypt/decrypt do a few table
// lookups and then exactly the node:crypto call a caller would make by hand (bench/mechanisms_bench.ts
// measures the ratio). The operations repeat only the cheap, mode-independent checks (mechanism
// supports the function, key type and class suit it, input within CRYPTO_INPUT_BYTES_MAX): they never
// do the wrong algorithm with the wrong key, but policy (FIPS, key attributes) is checkMechanism's job,
// which the object layer calls first.
//
// Decisions (copied into docs/ by the lead; details in each mech_* header):
//   - HMAC uses GENERIC_SECRET keys only (PKCS#11 v2.40 §2.21: general-length HMAC takes
//     CKK_GENERIC_SECRET); AES keys do CMAC. HMAC and CMAC verify need the full-length tag.
//   - FIPS mode refuses: secp256k1 (any use), RSA keys under 2048 bits, generic secrets (HMAC, KDF
//     base or derived) under 112 bits, SHA-1 in signatures (PSS hash), CKM_RSA_PKCS encryption and
//     wrapping (SP 800-131A r2 §6), a caller-supplied GCM IV for encryption or wrapping
//     (SP 800-38D §8.2: the device generates it), and an ECDH null-KDF result other than a
//     GENERIC_SECRET (SP 800-56A r3 §5.8: Z goes through a KDF). It allows Ed25519 (FIPS 186-5),
//     KW/KWP with any AES size (SP 800-38F), SHA-1 in OAEP and HKDF (non-signature uses,
//     SP 800-131A r2 §9), CKM_RSA_PKCS signatures.
//   - CKM_RSA_PKCS offers sign, verify, encrypt and wrap, not decrypt or unwrap (see mech_rsa.ts).
//   - Wrapping: KW, KWP and GCM wrap secret and private keys (secret: raw bytes; private: PKCS#8
//     DER, so KW, which needs a multiple of 8 bytes, usually cannot take a private key: use KWP);
//     RSA (OAEP, PKCS#1 v1.5) wraps secret keys only, as PKCS#11 specifies. Public keys are never
//     wrapped (COFFER_KEY_NOT_WRAPPABLE).
//   - CKM_AES_KEY_WRAP_PAD is RFC 5649 KWP (as SoftHSM2); PKCS#11 v3.0's CKM_AES_KEY_WRAP_KWP
//     (0x210B) names the same thing and is listed as an alias.
//   - Random: randomBytes(n) for 0 ≤ n ≤ RANDOM_BYTES_MAX from OpenSSL's DRBG.

import { createHash, createHmac, randomBytes as nodeRandomBytes, sign as nodeSign, verify as nodeVerify, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import { assert } from '../../assert.js';
import { CofferError, fail, isCofferError, type ErrorCode } from '../../errors.js';
import { SecretBytes, constantTimeEqual } from '../../crypto/secret_bytes.js';
import { CRYPTO_CIPHERTEXT_BYTES_MAX, CRYPTO_INPUT_BYTES_MAX, MECHANISM_PARAM_BYTES_MAX, RANDOM_BYTES_MAX, WRAPPED_KEY_BYTES_MAX } from '../../formats/limits.js';
import * as aes from './mech_aes.js';
import * as rsa from './mech_rsa.js';
import * as ec from './mech_ec.js';
import { checkDeriveParams, checkDeriveTemplate, derive, type DeriveTemplate } from './mech_derive.js';
import { HASH_BYTES, NODE_HASH, isHashName } from './mech_hash.js';
import { FIPS_SECRET_BITS_MIN, checkKeyMaterial, materialFromBytes, materialToBytes, type KeyMaterial } from './mech_keys.js';
import type { Curve, HashName, KeyFunction, KeyType, MechanismName, MechanismParams, Mode, ObjectClass } from '../types.js';

export {
  checkKeyGen,
  checkKeyMaterial,
  generateEcKeyPairEncoded,
  generateKeyPair,
  generateKeyPairAsync,
  generateSecretKey,
  materialFromBytes,
  materialFromKeyObject,
  materialToBytes,
  publicFromPrivate,
  type EncodedKey,
  type KeyMaterial,
  type KeyPairSpec,
  type SecretKeySpec,
} from './mech_keys.js';
export type { DeriveTemplate } from './mech_derive.js';

export interface MechanismInfo {
  /** The PKCS#11 CKM_* value, for the PKCS#11 bridge and C_GetMechanismList. */
  readonly ckm: number;
  /** Other CKM_* values that name the same mechanism. */
  readonly ckmAliases: readonly number[];
  readonly functions: readonly KeyFunction[] | readonly ('digest' | 'generate')[];
  readonly keyTypes: readonly KeyType[];
  /** Approved in FIPS mode (for the functions not listed in fipsRefusedFunctions, and subject to key and parameter policy). */
  readonly fipsApproved: boolean;
  readonly fipsRefusedFunctions: readonly KeyFunction[];
  /** CK_MECHANISM_INFO ulMinKeySize / ulMaxKeySize, in bits (0 for digests). */
  readonly minKeyBits: number;
  readonly maxKeyBits: number;
  /** The hash a hashed mechanism applies (CKM_SHA256_RSA_PKCS → SHA-256). */
  readonly hash?: HashName;
}

const SIGN_VERIFY = ['sign', 'verify'] as const satisfies readonly KeyFunction[];
const CIPHER = ['encrypt', 'decrypt'] as const satisfies readonly KeyFunction[];
const CIPHER_WRAP = ['encrypt', 'decrypt', 'wrap', 'unwrap'] as const satisfies readonly KeyFunction[];
const KEYS = {
  aes: { keyTypes: ['AES'], minKeyBits: 128, maxKeyBits: 256 },
  rsa: { keyTypes: ['RSA'], minKeyBits: 1024, maxKeyBits: 4096 },
  ec: { keyTypes: ['EC'], minKeyBits: 256, maxKeyBits: 521 },
  ed: { keyTypes: ['EC_EDWARDS'], minKeyBits: 256, maxKeyBits: 256 },
  secret: { keyTypes: ['GENERIC_SECRET'], minKeyBits: 8, maxKeyBits: 8192 },
  kdf: { keyTypes: ['GENERIC_SECRET', 'AES'], minKeyBits: 8, maxKeyBits: 8192 },
  none: { keyTypes: [], minKeyBits: 0, maxKeyBits: 0 },
} as const satisfies Record<string, { keyTypes: readonly KeyType[]; minKeyBits: number; maxKeyBits: number }>;

function m(ckm: number, functions: MechanismInfo['functions'], keys: (typeof KEYS)[keyof typeof KEYS], extra: Partial<MechanismInfo> = {}): MechanismInfo {
  return Object.freeze({ ckm, ckmAliases: [], functions, ...keys, fipsApproved: true, fipsRefusedFunctions: [], ...extra });
}

export const MECHANISMS: Readonly<Record<MechanismName, MechanismInfo>> = Object.freeze({
  CKM_AES_GCM: m(0x1087, CIPHER_WRAP, KEYS.aes),
  CKM_AES_CBC_PAD: m(0x1085, CIPHER, KEYS.aes),
  CKM_AES_CBC: m(0x1082, CIPHER, KEYS.aes),
  CKM_AES_ECB: m(0x1081, CIPHER, KEYS.aes),
  CKM_AES_CTR: m(0x1086, CIPHER, KEYS.aes),
  CKM_AES_CMAC: m(0x108a, SIGN_VERIFY, KEYS.aes),
  CKM_AES_KEY_WRAP: m(0x2109, CIPHER_WRAP, KEYS.aes),
  CKM_AES_KEY_WRAP_PAD: m(0x210a, CIPHER_WRAP, KEYS.aes, { ckmAliases: [0x210b] }),
  CKM_RSA_PKCS: m(0x0001, ['sign', 'verify', 'encrypt', 'wrap'], KEYS.rsa, { fipsRefusedFunctions: ['encrypt', 'wrap'] }),
  CKM_SHA224_RSA_PKCS: m(0x0046, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-224' }),
  CKM_SHA256_RSA_PKCS: m(0x0040, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-256' }),
  CKM_SHA384_RSA_PKCS: m(0x0041, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-384' }),
  CKM_SHA512_RSA_PKCS: m(0x0042, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-512' }),
  CKM_RSA_PKCS_PSS: m(0x000d, SIGN_VERIFY, KEYS.rsa),
  CKM_SHA224_RSA_PKCS_PSS: m(0x0047, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-224' }),
  CKM_SHA256_RSA_PKCS_PSS: m(0x0043, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-256' }),
  CKM_SHA384_RSA_PKCS_PSS: m(0x0044, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-384' }),
  CKM_SHA512_RSA_PKCS_PSS: m(0x0045, SIGN_VERIFY, KEYS.rsa, { hash: 'SHA-512' }),
  CKM_RSA_PKCS_OAEP: m(0x0009, CIPHER_WRAP, KEYS.rsa),
  CKM_ECDSA: m(0x1041, SIGN_VERIFY, KEYS.ec),
  CKM_ECDSA_SHA224: m(0x1043, SIGN_VERIFY, KEYS.ec, { hash: 'SHA-224' }),
  CKM_ECDSA_SHA256: m(0x1044, SIGN_VERIFY, KEYS.ec, { hash: 'SHA-256' }),
  CKM_ECDSA_SHA384: m(0x1045, SIGN_VERIFY, KEYS.ec, { hash: 'SHA-384' }),
  CKM_ECDSA_SHA512: m(0x1046, SIGN_VERIFY, KEYS.ec, { hash: 'SHA-512' }),
  CKM_EDDSA: m(0x1057, SIGN_VERIFY, KEYS.ed),
  CKM_SHA224_HMAC: m(0x0256, SIGN_VERIFY, KEYS.secret, { hash: 'SHA-224' }),
  CKM_SHA256_HMAC: m(0x0251, SIGN_VERIFY, KEYS.secret, { hash: 'SHA-256' }),
  CKM_SHA384_HMAC: m(0x0261, SIGN_VERIFY, KEYS.secret, { hash: 'SHA-384' }),
  CKM_SHA512_HMAC: m(0x0271, SIGN_VERIFY, KEYS.secret, { hash: 'SHA-512' }),
  CKM_SHA224: m(0x0255, ['digest'], KEYS.none, { hash: 'SHA-224' }),
  CKM_SHA256: m(0x0250, ['digest'], KEYS.none, { hash: 'SHA-256' }),
  CKM_SHA384: m(0x0260, ['digest'], KEYS.none, { hash: 'SHA-384' }),
  CKM_SHA512: m(0x0270, ['digest'], KEYS.none, { hash: 'SHA-512' }),
  CKM_ECDH1_DERIVE: m(0x1050, ['derive'], KEYS.ec),
  CKM_HKDF_DERIVE: m(0x402a, ['derive'], KEYS.kdf),
  CKM_SP800_108_COUNTER_KDF: m(0x03ac, ['derive'], KEYS.kdf),
});

// ── checks ──────────────────────────────────────────────────────────────────────────────────

/** The mechanism's entry; a name outside the table (from the network) is COFFER_MECHANISM_INVALID. */
function infoOf(name: MechanismName): MechanismInfo {
  return (Object.hasOwn(MECHANISMS, name) ? MECHANISMS[name] : undefined) ?? fail('COFFER_MECHANISM_INVALID');
}

function hashOf(info: MechanismInfo): HashName {
  assert(info.hash !== undefined, 'hashed mechanism has a hash');
  return info.hash;
}

/** Asymmetric keys: the private half signs, decrypts, unwraps and derives; the public half the rest. */
function classFor(keyType: KeyType, fn: KeyFunction): ObjectClass {
  if (keyType === 'AES' || keyType === 'GENERIC_SECRET') return 'SECRET_KEY';
  return fn === 'sign' || fn === 'decrypt' || fn === 'unwrap' || fn === 'derive' ? 'PRIVATE_KEY' : 'PUBLIC_KEY';
}

/** The cheap checks every operation repeats: function, key type and class, input size. */
function usable(name: MechanismName, fn: KeyFunction, key: KeyMaterial, dataBytes: number): MechanismInfo {
  const info = infoOf(name);
  if (!(info.functions as readonly string[]).includes(fn)) fail('COFFER_MECHANISM_INVALID', { mechanism: name, function: fn });
  if (!info.keyTypes.includes(key.keyType) || key.class !== classFor(key.keyType, fn)) {
    fail('COFFER_KEY_TYPE_INCONSISTENT', { mechanism: name, keyType: key.keyType, class: key.class });
  }
  // Decryption takes what encryption of the largest input gives back (IV and tag added).
  if (dataBytes > (fn === 'decrypt' ? CRYPTO_CIPHERTEXT_BYTES_MAX : CRYPTO_INPUT_BYTES_MAX)) fail('COFFER_DATA_LEN_RANGE');
  return info;
}

/**
 * Everything a mechanism demands before use, in `mode`: it exists and supports `fn`; the key's type,
 * class and size suit it; its parameters are valid; FIPS policy. For derivations, pass the template
 * to check the derived key's type and length too. Throws COFFER_MECHANISM_INVALID,
 * COFFER_KEY_TYPE_INCONSISTENT, COFFER_KEY_SIZE_RANGE, COFFER_MECHANISM_PARAM_INVALID,
 * COFFER_TEMPLATE_INCONSISTENT or COFFER_FIPS_REFUSED.
 */
export function checkMechanism(mode: Mode, params: MechanismParams, fn: KeyFunction, key: KeyMaterial, template?: DeriveTemplate): void {
  const info = usable(params.mechanism, fn, key, 0);
  if (key.bits < info.minKeyBits || key.bits > info.maxKeyBits) fail('COFFER_KEY_SIZE_RANGE', { keyType: key.keyType, bits: key.bits });
  checkParams(params, key);
  if (template !== undefined) {
    checkDeriveTemplate(template);
    if (params.mechanism === 'CKM_ECDH1_DERIVE' || params.mechanism === 'CKM_HKDF_DERIVE' || params.mechanism === 'CKM_SP800_108_COUNTER_KDF') {
      checkDeriveParams(params, key, template);
    }
  }
  if (mode === 'FIPS') checkFips(info, params, fn, key, template);
}

function checkParams(params: MechanismParams, key: KeyMaterial): void {
  switch (params.mechanism) {
    case 'CKM_AES_GCM':
      return aes.checkGcmParams(params);
    case 'CKM_AES_CBC_PAD':
    case 'CKM_AES_CBC':
      return aes.checkBlockIv(params.iv);
    case 'CKM_AES_CTR':
      return aes.checkCtrParams(params);
    case 'CKM_RSA_PKCS_PSS':
      if (!isHashName(params.hash)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'hash' });
      pssSalt(params.hash, params.saltBytes, key);
      return;
    case 'CKM_SHA224_RSA_PKCS_PSS':
    case 'CKM_SHA256_RSA_PKCS_PSS':
    case 'CKM_SHA384_RSA_PKCS_PSS':
    case 'CKM_SHA512_RSA_PKCS_PSS':
      pssSalt(hashOf(MECHANISMS[params.mechanism]), params.saltBytes, key);
      return;
    case 'CKM_RSA_PKCS_OAEP':
      return checkOaepParams(params.hash, params.label);
    case 'CKM_ECDH1_DERIVE':
    case 'CKM_HKDF_DERIVE':
    case 'CKM_SP800_108_COUNTER_KDF':
      return checkDeriveParams(params, key);
    default:
      return; // the other mechanisms take no parameters
  }
}

function pssSalt(hash: HashName, saltBytes: number | undefined, key: KeyMaterial): number {
  const salt = saltBytes ?? HASH_BYTES[hash];
  if (!rsa.pssSaltFits(key, hash, salt)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'saltBytes' });
  return salt;
}

function checkOaepParams(hash: HashName, label: Uint8Array | undefined): void {
  if (!isHashName(hash)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'hash' });
  if (label !== undefined && label.length > MECHANISM_PARAM_BYTES_MAX) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'label' });
}

/** FIPS mode's refusals (see the header); each is COFFER_FIPS_REFUSED. */
function checkFips(info: MechanismInfo, params: MechanismParams, fn: KeyFunction, key: KeyMaterial, template?: DeriveTemplate): void {
  const refuse = (reason: string): never => fail('COFFER_FIPS_REFUSED', { mechanism: params.mechanism, reason });
  if (!info.fipsApproved) refuse('mechanism');
  if (info.fipsRefusedFunctions.includes(fn)) refuse(`function ${fn}`);
  checkKeyMaterial('FIPS', key);
  if (params.mechanism === 'CKM_RSA_PKCS_PSS' && params.hash === 'SHA-1') refuse('SHA-1 signature');
  if (params.mechanism === 'CKM_AES_GCM' && params.iv !== undefined && (fn === 'encrypt' || fn === 'wrap')) refuse('caller-supplied GCM IV');
  if (template !== undefined && template.keyType === 'GENERIC_SECRET' && template.bits < FIPS_SECRET_BITS_MIN) refuse('derived key size');
  if (params.mechanism === 'CKM_ECDH1_DERIVE' && template !== undefined && template.keyType !== 'GENERIC_SECRET') refuse('ECDH null KDF');
}

// ── sign / verify ───────────────────────────────────────────────────────────────────────────

/** Signs (or MACs) `data`. `stored` is the key's bytes as the device stores them, when the caller
 * holds them: raw ECDSA reads its scalar there (mech_ec.ts ecdsaSignDigest); the rest ignore it. */
export function sign(params: MechanismParams, key: KeyMaterial, data: Uint8Array, stored?: Uint8Array): Uint8Array {
  const info = usable(params.mechanism, 'sign', key, data.length);
  switch (params.mechanism) {
    case 'CKM_ECDSA_SHA224':
    case 'CKM_ECDSA_SHA256':
    case 'CKM_ECDSA_SHA384':
    case 'CKM_ECDSA_SHA512':
      return ec.ecdsaSign(hashOf(info), key, data);
    case 'CKM_SHA224_RSA_PKCS':
    case 'CKM_SHA256_RSA_PKCS':
    case 'CKM_SHA384_RSA_PKCS':
    case 'CKM_SHA512_RSA_PKCS':
      return rsa.pkcs1Sign(hashOf(info), key, data);
    case 'CKM_SHA224_HMAC':
    case 'CKM_SHA256_HMAC':
    case 'CKM_SHA384_HMAC':
    case 'CKM_SHA512_HMAC':
      return createHmac(NODE_HASH[hashOf(info)], key.key).update(data).digest();
    case 'CKM_EDDSA':
      return ec.eddsaSign(key, data);
    case 'CKM_SHA224_RSA_PKCS_PSS':
    case 'CKM_SHA256_RSA_PKCS_PSS':
    case 'CKM_SHA384_RSA_PKCS_PSS':
    case 'CKM_SHA512_RSA_PKCS_PSS':
      return rsa.pssSign(hashOf(info), pssSalt(hashOf(info), params.saltBytes, key), key, data);
    case 'CKM_RSA_PKCS_PSS':
      return rsa.pssSignDigest(params.hash, pssSalt(params.hash, params.saltBytes, key), key, data);
    case 'CKM_RSA_PKCS':
      return rsa.pkcs1SignRaw(key, data);
    case 'CKM_ECDSA':
      return ec.ecdsaSignDigest(key, data, stored);
    case 'CKM_AES_CMAC':
      return aes.cmacSign(key, data);
    default:
      return fail('COFFER_MECHANISM_INVALID');
  }
}

/** True when the signature (or MAC) is valid; a malformed or wrong-length signature is false. */
export function verify(params: MechanismParams, key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  const info = usable(params.mechanism, 'verify', key, data.length);
  try {
    return verifyChecked(params, info, key, data, signature);
  } catch (e) {
    if (e instanceof CofferError) throw e;
    return false; // OpenSSL refusing to parse a signature is a failed verification
  }
}

function verifyChecked(params: MechanismParams, info: MechanismInfo, key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  switch (params.mechanism) {
    case 'CKM_ECDSA_SHA224':
    case 'CKM_ECDSA_SHA256':
    case 'CKM_ECDSA_SHA384':
    case 'CKM_ECDSA_SHA512':
      return ec.ecdsaVerify(hashOf(info), key, data, signature);
    case 'CKM_SHA224_RSA_PKCS':
    case 'CKM_SHA256_RSA_PKCS':
    case 'CKM_SHA384_RSA_PKCS':
    case 'CKM_SHA512_RSA_PKCS':
      return rsa.pkcs1Verify(hashOf(info), key, data, signature);
    case 'CKM_SHA224_HMAC':
    case 'CKM_SHA256_HMAC':
    case 'CKM_SHA384_HMAC':
    case 'CKM_SHA512_HMAC':
      return constantTimeEqual(createHmac(NODE_HASH[hashOf(info)], key.key).update(data).digest(), signature);
    case 'CKM_EDDSA':
      return ec.eddsaVerify(key, data, signature);
    case 'CKM_SHA224_RSA_PKCS_PSS':
    case 'CKM_SHA256_RSA_PKCS_PSS':
    case 'CKM_SHA384_RSA_PKCS_PSS':
    case 'CKM_SHA512_RSA_PKCS_PSS':
      return rsa.pssVerify(hashOf(info), pssSalt(hashOf(info), params.saltBytes, key), key, data, signature);
    case 'CKM_RSA_PKCS_PSS':
      return rsa.pssVerifyDigest(params.hash, pssSalt(params.hash, params.saltBytes, key), key, data, signature);
    case 'CKM_RSA_PKCS':
      return rsa.pkcs1VerifyRaw(key, data, signature);
    case 'CKM_ECDSA':
      return ec.ecdsaVerifyDigest(key, data, signature);
    case 'CKM_AES_CMAC':
      return aes.cmacVerify(key, data, signature);
    default:
      return fail('COFFER_MECHANISM_INVALID');
  }
}

/** Node's one-shot sign arguments for the mechanisms node can run on its thread pool. */
function nodeSignArgs(params: MechanismParams, info: MechanismInfo, key: KeyMaterial): [string | null, KeyObject | SignKeyObjectInput] | undefined {
  switch (params.mechanism) {
    case 'CKM_ECDSA_SHA224':
    case 'CKM_ECDSA_SHA256':
    case 'CKM_ECDSA_SHA384':
    case 'CKM_ECDSA_SHA512':
      return [NODE_HASH[hashOf(info)], { key: key.key, dsaEncoding: 'ieee-p1363' }];
    case 'CKM_SHA224_RSA_PKCS':
    case 'CKM_SHA256_RSA_PKCS':
    case 'CKM_SHA384_RSA_PKCS':
    case 'CKM_SHA512_RSA_PKCS':
      return [NODE_HASH[hashOf(info)], key.key];
    case 'CKM_SHA224_RSA_PKCS_PSS':
    case 'CKM_SHA256_RSA_PKCS_PSS':
    case 'CKM_SHA384_RSA_PKCS_PSS':
    case 'CKM_SHA512_RSA_PKCS_PSS': {
      const hash = hashOf(info);
      return [NODE_HASH[hash], { key: key.key, padding: rsa.PSS_PADDING, saltLength: pssSalt(hash, params.saltBytes, key) }];
    }
    case 'CKM_EDDSA':
      return [null, key.key];
    default:
      return undefined;
  }
}

/**
 * As sign, on libuv's thread pool where node offers it (hashed ECDSA and RSA, PSS, Ed25519), so
 * the event loop keeps serving while OpenSSL works. Raw ECDSA (CKM_ECDSA) is made at the end of
 * the current turn together with the other raw ECDSA signatures asked for in it, which share one
 * modular inversion (mech_ec.ts ecdsaSignDigestBatched; `stored` as for sign). The rest (HMAC,
 * CMAC, raw PKCS#1, raw PSS) run synchronously: they are short or node has no asynchronous form.
 */
export function signAsync(params: MechanismParams, key: KeyMaterial, data: Uint8Array, stored?: Uint8Array): Promise<Uint8Array> {
  let args: ReturnType<typeof nodeSignArgs>;
  try {
    const info = usable(params.mechanism, 'sign', key, data.length);
    if (params.mechanism === 'CKM_ECDSA') return ec.ecdsaSignDigestBatched(key, data, stored);
    args = nodeSignArgs(params, info, key);
    if (args === undefined) return Promise.resolve(sign(params, key, data));
  } catch (e) {
    return Promise.reject(asError(e));
  }
  const [alg, keyArg] = args;
  return new Promise((resolve, reject) => {
    nodeSign(alg, data, keyArg, (err, signature) => (err === null ? resolve(signature) : reject(err)));
  });
}

/** As verify, on libuv's thread pool where node offers it. */
export function verifyAsync(params: MechanismParams, key: KeyMaterial, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  let args: ReturnType<typeof nodeSignArgs>;
  try {
    args = nodeSignArgs(params, usable(params.mechanism, 'verify', key, data.length), key);
    if (args === undefined) return Promise.resolve(verify(params, key, data, signature));
  } catch (e) {
    return Promise.reject(asError(e));
  }
  const [alg, keyArg] = args;
  return new Promise((resolve) => {
    nodeVerify(alg, data, keyArg, signature, (err, ok) => resolve(err === null && ok));
  });
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

// ── encrypt / decrypt / digest / random ─────────────────────────────────────────────────────

export function encrypt(params: MechanismParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  usable(params.mechanism, 'encrypt', key, data.length);
  return encryptBytes(params, key, data);
}

/** The cipher dispatch shared by encrypt and wrapKey (callers have checked the function). */
function encryptBytes(params: MechanismParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  switch (params.mechanism) {
    case 'CKM_AES_GCM':
      return aes.gcmEncrypt(params, key, data);
    case 'CKM_AES_CBC_PAD':
      return aes.cbcPadEncrypt(params, key, data);
    case 'CKM_AES_CBC':
    case 'CKM_AES_ECB':
      return aes.blocksCrypt('encrypt', params, key, data);
    case 'CKM_AES_CTR':
      return aes.ctrCrypt(params, key, data);
    case 'CKM_AES_KEY_WRAP':
    case 'CKM_AES_KEY_WRAP_PAD':
      return translate(() => aes.kwEncrypt(params.mechanism === 'CKM_AES_KEY_WRAP_PAD', key, data), { COFFER_CRYPTO_INPUT_LENGTH: 'COFFER_DATA_LEN_RANGE' });
    case 'CKM_RSA_PKCS_OAEP':
      checkOaepParams(params.hash, params.label);
      return rsa.oaepEncrypt(params.hash, params.label, key, data);
    case 'CKM_RSA_PKCS':
      return rsa.pkcs1Encrypt(key, data);
    default:
      return fail('COFFER_MECHANISM_INVALID');
  }
}

export function decrypt(params: MechanismParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  usable(params.mechanism, 'decrypt', key, data.length);
  return decryptBytes(params, key, data);
}

/** The cipher dispatch shared by decrypt and unwrapKey (callers have checked the function). */
function decryptBytes(params: MechanismParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  switch (params.mechanism) {
    case 'CKM_AES_GCM':
      return aes.gcmDecrypt(params, key, data);
    case 'CKM_AES_CBC_PAD':
      return aes.cbcPadDecrypt(params, key, data);
    case 'CKM_AES_CBC':
    case 'CKM_AES_ECB':
      return aes.blocksCrypt('decrypt', params, key, data);
    case 'CKM_AES_CTR':
      return aes.ctrCrypt(params, key, data);
    case 'CKM_AES_KEY_WRAP':
    case 'CKM_AES_KEY_WRAP_PAD':
      return translate(() => aes.kwDecrypt(params.mechanism === 'CKM_AES_KEY_WRAP_PAD', key, data), {
        COFFER_CRYPTO_INPUT_LENGTH: 'COFFER_ENCRYPTED_DATA_INVALID',
        COFFER_CRYPTO_UNWRAP_FAILED: 'COFFER_ENCRYPTED_DATA_INVALID',
      });
    case 'CKM_RSA_PKCS_OAEP':
      checkOaepParams(params.hash, params.label);
      return rsa.oaepDecrypt(params.hash, params.label, key, data);
    default:
      return fail('COFFER_MECHANISM_INVALID');
  }
}

export function digest(params: MechanismParams, data: Uint8Array): Uint8Array {
  const info = infoOf(params.mechanism);
  if (!(info.functions as readonly string[]).includes('digest')) fail('COFFER_MECHANISM_INVALID', { mechanism: params.mechanism, function: 'digest' });
  if (data.length > CRYPTO_INPUT_BYTES_MAX) fail('COFFER_DATA_LEN_RANGE');
  return createHash(NODE_HASH[hashOf(info)]).update(data).digest();
}

/** C_GenerateRandom: `lengthBytes` bytes from OpenSSL's DRBG, 0 ≤ lengthBytes ≤ RANDOM_BYTES_MAX. */
export function randomBytes(lengthBytes: number): Uint8Array {
  if (!Number.isInteger(lengthBytes) || lengthBytes < 0 || lengthBytes > RANDOM_BYTES_MAX) fail('COFFER_DATA_LEN_RANGE', { max: RANDOM_BYTES_MAX });
  return nodeRandomBytes(lengthBytes);
}

/** Re-throws the crypto layer's codes as the mechanism layer's (`map`); other errors pass. */
function translate<T>(fn: () => T, map: Partial<Record<ErrorCode, ErrorCode>>): T {
  try {
    return fn();
  } catch (e) {
    const to = isCofferError(e) ? map[e.code] : undefined;
    if (to !== undefined) fail(to);
    throw e;
  }
}

// ── wrap / unwrap / derive ──────────────────────────────────────────────────────────────────

/** Serialises the target key (secret: raw bytes; private: PKCS#8 DER) and wraps it. */
export function wrapKey(params: MechanismParams, wrappingKey: KeyMaterial, target: KeyMaterial): Uint8Array {
  usable(params.mechanism, 'wrap', wrappingKey, 0);
  if (target.class === 'PUBLIC_KEY') fail('COFFER_KEY_NOT_WRAPPABLE', { class: target.class });
  const rsaWrap = params.mechanism === 'CKM_RSA_PKCS_OAEP' || params.mechanism === 'CKM_RSA_PKCS';
  if (rsaWrap && target.class !== 'SECRET_KEY') fail('COFFER_KEY_NOT_WRAPPABLE', { class: target.class });
  // The target's bytes are key material: owned by a SecretBytes for the one call that wraps them.
  const bytes = SecretBytes.adopt(materialToBytes(target));
  try {
    // Only wrap mechanisms get here (usable above), so the cipher dispatch is the encrypt one; its
    // length errors become 'not wrappable'.
    return translate(() => bytes.use((b) => encryptBytes(params, wrappingKey, b)), {
      COFFER_CRYPTO_INPUT_LENGTH: 'COFFER_KEY_NOT_WRAPPABLE',
      COFFER_DATA_LEN_RANGE: 'COFFER_KEY_NOT_WRAPPABLE',
    });
  } finally {
    bytes.destroy();
  }
}

/**
 * Unwraps `wrapped` into a key of the template's class, type (and curve). Any failure of the
 * unwrapping or of the key inside is COFFER_WRAPPED_KEY_INVALID; a key that is not of the template's
 * type is COFFER_TEMPLATE_INCONSISTENT; an unsupported size is COFFER_KEY_SIZE_RANGE.
 */
export function unwrapKey(params: MechanismParams, unwrappingKey: KeyMaterial, wrapped: Uint8Array, template: { class: ObjectClass; keyType: KeyType; curve?: Curve }): KeyMaterial {
  usable(params.mechanism, 'unwrap', unwrappingKey, 0);
  if (wrapped.length > WRAPPED_KEY_BYTES_MAX) fail('COFFER_WRAPPED_KEY_INVALID');
  if (template.class === 'PUBLIC_KEY') fail('COFFER_TEMPLATE_INCONSISTENT', { attribute: 'class' });
  if (params.mechanism === 'CKM_RSA_PKCS_OAEP' && template.class !== 'SECRET_KEY') fail('COFFER_TEMPLATE_INCONSISTENT', { attribute: 'class' });
  // The unwrapped bytes are key material from the moment they exist: a SecretBytes owns them.
  const bytes = SecretBytes.adopt(
    translate(() => decryptBytes(params, unwrappingKey, wrapped), {
      COFFER_CRYPTO_INPUT_LENGTH: 'COFFER_WRAPPED_KEY_INVALID',
      COFFER_CRYPTO_UNWRAP_FAILED: 'COFFER_WRAPPED_KEY_INVALID',
      COFFER_ENCRYPTED_DATA_INVALID: 'COFFER_WRAPPED_KEY_INVALID',
    }),
  );
  try {
    return translate(() => bytes.use((b) => materialFromBytes(template.class, template.keyType, b, template.curve)), {
      COFFER_ATTRIBUTE_INVALID: 'COFFER_WRAPPED_KEY_INVALID',
      COFFER_KEY_TYPE_INCONSISTENT: 'COFFER_TEMPLATE_INCONSISTENT',
    });
  } finally {
    bytes.destroy();
  }
}

/** Derives a secret key of the template's type and length (see mech_derive.ts). */
export function deriveKey(params: MechanismParams, baseKey: KeyMaterial, template: { keyType: KeyType; bits: number }): KeyMaterial {
  usable(params.mechanism, 'derive', baseKey, 0);
  switch (params.mechanism) {
    case 'CKM_ECDH1_DERIVE':
    case 'CKM_HKDF_DERIVE':
    case 'CKM_SP800_108_COUNTER_KDF':
      return derive(params, baseKey, template);
    default:
      return fail('COFFER_MECHANISM_INVALID');
  }
}
