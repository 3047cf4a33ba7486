// Elliptic-curve mechanisms of the device (docs/architecture.md §4): ECDSA with a hash (node:crypto), raw ECDSA
// over a caller's digest (CKM_ECDSA, crypto/ecdsa_raw.ts, since node always hashes), Ed25519
// (CKM_EDDSA, RFC 8032 pure Ed25519) and the ECDH shared secret for CKM_ECDH1_DERIVE.
// Decisions (copied into docs/):
//   - ECDSA signatures are r || s, each the order's byte length (PKCS#11 v2.40 §2.3.1 "ECDSA
//     signature"; IEEE P1363), never DER. Any hash may go with any curve (FIPS 186-5 §6.4.1 truncates
//     a longer digest); CKM_ECDSA takes digests of 1..64 bytes.
//   - ECDH: the peer's public key is the raw SEC 1 point (04 || x || y, or the compressed 02/03 || x)
//     — what pkcs11-tool, Java and OpenSSL's pkcs11 engine send — not a DER OCTET STRING around it.
//     The point is decoded by OpenSSL, which refuses points off the curve; every supported curve has
//     cofactor 1, so that is SP 800-56A r3 §5.6.2.3.3 full public-key validation.
//     The shared secret Z is the x coordinate, the field's byte length (SEC 1 §3.3.1).

import { createPublicKey, diffieHellman, ECDH, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { CofferError, fail, isCofferError } from '../../errors.js';
import type { SecretBytes } from '../../crypto/secret_bytes.js';
import { ecPrivateScalarFromPkcs8, signDigest, signDigestBatched, verifyDigest } from '../../crypto/index.js';
import { EC_CURVES, type EcCurve, type KeyMaterial } from './mech_keys.js';
import { NODE_HASH } from './mech_hash.js';
import type { HashName } from '../types.js';

const P1363 = 'ieee-p1363' as const;

/** JWK names of the curves (RFC 7518 §6.2.1.1; secp256k1: RFC 8812 §3.1). */
const JWK_CRV: Readonly<Record<EcCurve, string>> = { 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521', secp256k1: 'secp256k1' };

export function ecCurveOf(key: KeyMaterial): EcCurve {
  const c = key.curve;
  if (c === undefined || c === 'Ed25519') return fail('COFFER_KEY_TYPE_INCONSISTENT', { keyType: key.keyType });
  return c;
}

export function ecdsaSign(hash: HashName, key: KeyMaterial, data: Uint8Array): Uint8Array {
  return nodeSign(NODE_HASH[hash], data, { key: key.key, dsaEncoding: P1363 });
}

export function ecdsaVerify(hash: HashName, key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  return nodeVerify(NODE_HASH[hash], data, { key: key.key, dsaEncoding: P1363 }, signature);
}

/**
 * CKM_ECDSA: the data is the digest. A digest of a length the curve cannot take is
 * COFFER_DATA_LEN_RANGE. `stored` is the key's PKCS#8 as the device holds it, when the caller has
 * it: d is then read from those bytes into SecretBytes and destroyed after the signature, instead
 * of being exported from the KeyObject by OpenSSL (the slower path, docs/device.md "Objects").
 */
export function ecdsaSignDigest(key: KeyMaterial, digest: Uint8Array, stored?: Uint8Array): Uint8Array {
  const curve = ecCurveOf(key);
  const d = stored === undefined ? undefined : ecPrivateScalarFromPkcs8(curve, stored);
  try {
    return signDigest(curve, d ?? key.key, digest, { dsaEncoding: P1363 });
  } catch (e) {
    throw digestError(e);
  } finally {
    d?.destroy();
  }
}

/**
 * ecdsaSignDigest, settled at the end of this turn of the event loop with the other raw ECDSA
 * signatures asked for in it: they share one modular inversion (crypto/ecdsa_raw.ts
 * signDigestBatched). d is read from `stored` now and its SecretBytes destroyed before this returns.
 */
export function ecdsaSignDigestBatched(key: KeyMaterial, digest: Uint8Array, stored?: Uint8Array): Promise<Uint8Array> {
  let d: SecretBytes | undefined;
  try {
    const curve = ecCurveOf(key);
    d = stored === undefined ? undefined : ecPrivateScalarFromPkcs8(curve, stored);
    return signDigestBatched(curve, d ?? key.key, digest, { dsaEncoding: P1363 }).catch((e: unknown) => Promise.reject(digestError(e)));
  } catch (e) {
    return Promise.reject(digestError(e));
  } finally {
    d?.destroy();
  }
}

export function ecdsaVerifyDigest(key: KeyMaterial, digest: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verifyDigest(ecCurveOf(key), key.key, digest, signature, { dsaEncoding: P1363 });
  } catch (e) {
    throw digestError(e);
  }
}

/** The crypto layer's digest-length refusal, in the mechanism layer's terms (CKR_DATA_LEN_RANGE). */
function digestError(e: unknown): Error {
  if (isCofferError(e, 'COFFER_CRYPTO_DIGEST_LENGTH') || isCofferError(e, 'COFFER_CRYPTO_INPUT_LENGTH')) {
    return new CofferError('COFFER_DATA_LEN_RANGE', { reason: 'digest length' });
  }
  return e instanceof Error ? e : new Error(String(e)); // the crypto layer throws Errors only
}

export function eddsaSign(key: KeyMaterial, data: Uint8Array): Uint8Array {
  return nodeSign(null, data, key.key);
}

export function eddsaVerify(key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  return nodeVerify(null, data, key.key, signature);
}

/** Checks the shape of a peer point without decoding it (the cheap part of parameter checking). */
export function checkPeerPointShape(curve: EcCurve, point: Uint8Array): void {
  const fieldBytes = EC_CURVES[curve].fieldBytes;
  const uncompressed = point.length === 1 + 2 * fieldBytes && point[0] === 0x04;
  const compressed = point.length === 1 + fieldBytes && (point[0] === 0x02 || point[0] === 0x03);
  if (!uncompressed && !compressed) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'publicKey' });
}

/** The peer's point as a public KeyObject; off-curve or malformed points are COFFER_MECHANISM_PARAM_INVALID. */
export function peerPublicKey(curve: EcCurve, point: Uint8Array): KeyObject {
  checkPeerPointShape(curve, point);
  const { openssl, fieldBytes } = EC_CURVES[curve];
  try {
    const full = ECDH.convertKey(point, openssl, undefined, undefined, 'uncompressed') as Buffer;
    const x = full.subarray(1, 1 + fieldBytes).toString('base64url');
    const y = full.subarray(1 + fieldBytes).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv: JWK_CRV[curve], x, y }, format: 'jwk' });
  } catch {
    return fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'publicKey' });
  }
}

/** Z = x(d·Q), the field's byte length. The caller owns Z and zeroises it. */
export function ecdhSharedSecret(key: KeyMaterial, point: Uint8Array): Uint8Array {
  const peer = peerPublicKey(ecCurveOf(key), point);
  return diffieHellman({ privateKey: key.key, publicKey: peer });
}
