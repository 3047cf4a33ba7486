// Hash names as the mechanisms use them: PKCS#11 HashName → OpenSSL digest name and output size
// (FIPS 180-4). Shared by RSA (PKCS#1, PSS, OAEP), ECDSA, HMAC, HKDF and the SHA-2 digests.

import type { HashName } from '../types.js';

export const NODE_HASH: Readonly<Record<HashName, string>> = {
  'SHA-1': 'sha1',
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

export const HASH_BYTES: Readonly<Record<HashName, number>> = {
  'SHA-1': 20,
  'SHA-224': 28,
  'SHA-256': 32,
  'SHA-384': 48,
  'SHA-512': 64,
};

export function isHashName(h: unknown): h is HashName {
  return typeof h === 'string' && Object.hasOwn(NODE_HASH, h);
}
