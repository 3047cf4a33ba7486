// Key check values: 3 bytes that let people and devices confirm they hold the same key without
// showing it (AKBK components are printed with theirs, docs/architecture.md §3; every object carries one, §4).
// The definitions are CloudHSM's ("Check value in CloudHSM CLI", AWS CloudHSM user guide):
//   - AES (symmetric) keys: the first 3 bytes of the AES-ECB encryption of one zero block under the
//     key (also PKCS#11 v3.0's CKA_CHECK_VALUE for CKK_AES).
//   - asymmetric key pairs: the first 3 bytes of SHA-1 over the public key. "The public key" is
//     taken here as its DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), the encoding every tool can
//     produce (`openssl pkey -pubout -outform DER`), so a KCV can be recomputed outside the HSM.
//   - generic secrets (HMAC, KDF keys): CloudHSM computes none; Coffer follows PKCS#11 (v2.20
//     §12.7.2, "Generic secret key objects"): the first 3 bytes of SHA-1 over the key value.
// SHA-1 is used as a checksum here, not for collision resistance; 24 bits of it reveal nothing
// useful about a key of 128 bits or more.

import { createCipheriv, createHash, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import { SecretBytes, secretKeyLength, secretKeyObject, type SecretKeyInput } from './secret_bytes.js';

/** A KCV is 3 bytes, as CloudHSM shows it. */
export const KCV_BYTES = 3;

/** KCV of an AES-128/192/256 key: first 3 bytes of AES-ECB(key, 0^128). */
export function kcvAes(key: SecretKeyInput): Uint8Array {
  const bits = secretKeyLength(key) * 8;
  if (bits !== 128 && bits !== 192 && bits !== 256) fail('COFFER_CRYPTO_KEY_SIZE');
  const cipher = createCipheriv(`aes-${bits}-ecb`, secretKeyObject(key), null);
  cipher.setAutoPadding(false);
  const block = cipher.update(new Uint8Array(16));
  cipher.final();
  return Uint8Array.from(block.subarray(0, KCV_BYTES));
}

/** KCV of a public key (or of the public half of a private key): first 3 bytes of SHA-1(SPKI DER). */
export function kcvPublicKey(key: KeyObject | Uint8Array): Uint8Array {
  let spki: Buffer;
  try {
    const obj =
      key instanceof Uint8Array
        ? createPublicKey({ key: Buffer.from(key.buffer, key.byteOffset, key.length), format: 'der', type: 'spki' })
        : key.type === 'private'
          ? createPublicKey(key)
          : key;
    spki = obj.export({ format: 'der', type: 'spki' });
  } catch {
    return fail('COFFER_CRYPTO_KEY_INVALID');
  }
  return kcvOfSpki(spki);
}

/** KCV of a public key from SPKI DER that this code exported from a KeyObject itself (not parsed
 * again: kcvPublicKey checks bytes of other origin): first 3 bytes of SHA-1(SPKI DER). */
export function kcvOfSpki(spki: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha1').update(spki).digest().subarray(0, KCV_BYTES));
}

/** KCV of a generic secret (HMAC or KDF key): first 3 bytes of SHA-1 over the key value (PKCS#11). */
export function kcvSecret(key: SecretKeyInput): Uint8Array {
  const hash = createHash('sha1');
  if (key instanceof SecretBytes) key.use((b) => hash.update(b));
  else {
    const exported = secretKeyObject(key).export();
    hash.update(exported);
    exported.fill(0);
  }
  return Uint8Array.from(hash.digest().subarray(0, KCV_BYTES));
}

/** Refuses when `actual` differs from the expected KCV (COFFER_CRYPTO_KCV_MISMATCH). */
export function checkKcv(actual: Uint8Array, expected: Uint8Array): void {
  if (actual.length !== expected.length || actual.length === 0 || !timingSafeEqual(actual, expected)) fail('COFFER_CRYPTO_KCV_MISMATCH');
}
