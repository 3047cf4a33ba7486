// Password rules and password verifiers (docs/architecture.md §4: "passwords 8–32 chars, stored as
// verifiers, never as text"). A verifier is scrypt (RFC 7914) of the password under a per-user
// random salt; the password itself is never stored, logged or kept after a call returns.
//
// Password rules: NFKC-normalised (SP 800-63B §5.1.1.2 recommends normalising so that the same
// password typed on different systems matches), then 8..32 Unicode code points, any characters.
//
// Verifier layout, version 1 (57 bytes, integers big-endian):
//
//   0   1  version = 1
//   1   1  kdf = 1 (scrypt)
//   2   1  log2 N   (cost; N = 2^log2N)
//   3   2  r        (block size)
//   5   2  p        (parallelism)
//   7   1  salt length = 16, then the salt
//  24   1  derived key length = 32, then the key
//
// The parameters travel in the verifier so that they can be raised later: a verifier made with
// other parameters than the current ones still verifies, and the login that proves the password
// re-derives it with the current ones (Users does that).
//
// Default parameters N = 2^14, r = 8, p = 1 (16 MiB; RFC 7914 §2 and Percival's paper give
// these for interactive logins). Measured on the 2-core development machine: 41–56 ms per
// derivation; N = 2^15 took 103–118 ms, outside the 20–50 ms budget of a login.

import { scrypt } from 'node:crypto';
import { fail } from '../../errors.js';
import { assert } from '../../assert.js';
import { constantTimeEqual, SecretBytes } from '../../crypto/secret_bytes.js';
import {
  PASSWORD_CHARS_MAX,
  PASSWORD_CHARS_MIN,
  PASSWORD_KDF_MEMORY_BYTES_MAX,
  PASSWORD_KDF_PARALLELISM_MAX,
} from '../../formats/limits.js';
import type { Random } from '../ports.js';

/** A password as a caller holds it. Strings cannot be wiped; bytes given here are copied, the copy
 * is wiped, and the caller wipes its own buffer. */
export type PasswordInput = string | Uint8Array;

export interface ScryptParams {
  readonly log2N: number;
  readonly r: number;
  readonly p: number;
}

export const VERIFIER_VERSION = 1;
const KDF_SCRYPT = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const HEADER_BYTES = 7;
export const VERIFIER_BYTES = HEADER_BYTES + 1 + SALT_BYTES + 1 + KEY_BYTES;

/** The parameters new verifiers are made with. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = Object.freeze({ log2N: 14, r: 8, p: 1 });

export interface DecodedVerifier {
  readonly params: ScryptParams;
  readonly salt: Uint8Array;
  readonly key: Uint8Array;
}

/** Refuses parameters outside the limits: a verifier restored from elsewhere cannot make a login
 * allocate or compute without bound. */
export function checkScryptParams(params: ScryptParams): void {
  const { log2N, r, p } = params;
  const ok =
    Number.isInteger(log2N) && log2N >= 1 && log2N <= 30 &&
    Number.isInteger(r) && r >= 1 && r <= 0xffff &&
    Number.isInteger(p) && p >= 1 && p <= PASSWORD_KDF_PARALLELISM_MAX &&
    scryptMemoryBytes(params) <= PASSWORD_KDF_MEMORY_BYTES_MAX;
  if (!ok) fail('COFFER_FORMAT_LIMIT', { field: 'scrypt parameters' });
}

/** Memory scrypt needs for these parameters (OpenSSL's EVP_PBE_scrypt: B and V arrays). */
export function scryptMemoryBytes(params: ScryptParams): number {
  return 128 * params.r * (2 ** params.log2N + params.p + 2);
}

/**
 * Applies the password rules and returns the normalised UTF-8 bytes in an owner the caller must
 * destroy. Throws COFFER_PASSWORD_INVALID (which says only the length rule, never the password).
 */
export function passwordBytes(password: PasswordInput): SecretBytes {
  let text: string;
  if (typeof password === 'string') {
    text = password;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(password);
    } catch {
      return fail('COFFER_PASSWORD_INVALID');
    }
  }
  const normalised = text.normalize('NFKC');
  let chars = 0;
  for (const _ of normalised) chars++;
  if (chars < PASSWORD_CHARS_MIN || chars > PASSWORD_CHARS_MAX) fail('COFFER_PASSWORD_INVALID');
  // TextEncoder returns a fresh buffer of its own (not Node's shared pool), which the owner wipes.
  return SecretBytes.adopt(new TextEncoder().encode(normalised));
}

/** Throws COFFER_PASSWORD_INVALID unless `password` satisfies the rules. */
export function checkPassword(password: PasswordInput): void {
  passwordBytes(password).destroy();
}

/** Makes a verifier for `password` with a fresh random salt. */
export async function makeVerifier(
  password: PasswordInput,
  random: Random,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<Uint8Array> {
  checkScryptParams(params);
  const secret = passwordBytes(password);
  try {
    return await makeVerifierBytes(secret, random, params);
  } finally {
    secret.destroy();
  }
}

/** `makeVerifier` for a password already through `passwordBytes` (the caller destroys it). */
export async function makeVerifierBytes(
  password: SecretBytes,
  random: Random,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<Uint8Array> {
  checkScryptParams(params);
  const salt = random.bytes(SALT_BYTES);
  assert(salt.length === SALT_BYTES, 'random source returned the wrong length');
  const key = await scryptKey(password, salt, params);
  try {
    return encodeVerifier({ params, salt, key });
  } finally {
    key.fill(0);
  }
}

/** A verifier no password matches (random salt and key): what an unknown user is checked against,
 * so that a login costs the same whether or not the user exists. */
export function dummyVerifier(random: Random, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Uint8Array {
  checkScryptParams(params);
  return encodeVerifier({ params, salt: random.bytes(SALT_BYTES), key: random.bytes(KEY_BYTES) });
}

/**
 * True when `password` (already normalised bytes) matches `verifier`. Runs the full derivation
 * whatever the outcome and compares in constant time.
 */
export async function verifyPasswordBytes(verifier: Uint8Array, password: SecretBytes): Promise<boolean> {
  const v = decodeVerifier(verifier);
  const key = await scryptKey(password, v.salt, v.params);
  try {
    return constantTimeEqual(key, v.key);
  } finally {
    key.fill(0);
  }
}

/** `verifyPasswordBytes` for a password as given; one that breaks the rules throws
 * COFFER_PASSWORD_INVALID (it could not have been set). */
export async function verifyPassword(verifier: Uint8Array, password: PasswordInput): Promise<boolean> {
  const secret = passwordBytes(password);
  try {
    return await verifyPasswordBytes(verifier, secret);
  } finally {
    secret.destroy();
  }
}

/** True when the verifier was made with other parameters than `params` (a successful login should
 * then replace it). */
export function verifierNeedsUpgrade(verifier: Uint8Array, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): boolean {
  const v = decodeVerifier(verifier).params;
  return v.log2N !== params.log2N || v.r !== params.r || v.p !== params.p;
}

export function encodeVerifier(v: DecodedVerifier): Uint8Array {
  assert(v.salt.length === SALT_BYTES && v.key.length === KEY_BYTES, 'verifier field lengths');
  const out = new Uint8Array(VERIFIER_BYTES);
  const view = new DataView(out.buffer);
  out[0] = VERIFIER_VERSION;
  out[1] = KDF_SCRYPT;
  out[2] = v.params.log2N;
  view.setUint16(3, v.params.r);
  view.setUint16(5, v.params.p);
  out[HEADER_BYTES] = SALT_BYTES;
  out.set(v.salt, HEADER_BYTES + 1);
  out[HEADER_BYTES + 1 + SALT_BYTES] = KEY_BYTES;
  out.set(v.key, HEADER_BYTES + 2 + SALT_BYTES);
  return out;
}

export function decodeVerifier(bytes: Uint8Array): DecodedVerifier {
  if (bytes.length < 1) fail('COFFER_FORMAT_TRUNCATED', { record: 'verifier' });
  if (bytes[0] !== VERIFIER_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { record: 'verifier', version: bytes[0] ?? 0, supported: String(VERIFIER_VERSION) });
  if (bytes.length !== VERIFIER_BYTES) fail('COFFER_FORMAT_MALFORMED', { record: 'verifier', lengthBytes: bytes.length });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[1] !== KDF_SCRYPT) fail('COFFER_FORMAT_MALFORMED', { record: 'verifier', field: 'kdf' });
  const params: ScryptParams = { log2N: bytes[2] ?? 0, r: view.getUint16(3), p: view.getUint16(5) };
  checkScryptParams(params);
  if (bytes[HEADER_BYTES] !== SALT_BYTES || bytes[HEADER_BYTES + 1 + SALT_BYTES] !== KEY_BYTES) {
    fail('COFFER_FORMAT_MALFORMED', { record: 'verifier', field: 'lengths' });
  }
  const salt = bytes.slice(HEADER_BYTES + 1, HEADER_BYTES + 1 + SALT_BYTES);
  const key = bytes.slice(HEADER_BYTES + 2 + SALT_BYTES);
  return { params, salt, key };
}

/**
 * scrypt (RFC 7914) on the thread pool, so a login does not stall the device's event loop for
 * ~50 ms. Exported for the RFC 7914 §12 known-answer tests. The caller wipes the returned key.
 */
export function scryptKey(password: SecretBytes, salt: Uint8Array, params: ScryptParams, keyBytes = KEY_BYTES): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    checkScryptParams(params); // a throw here rejects the promise
    // Copy out of the owner for the duration of the call: the thread pool reads it asynchronously,
    // after `use` has returned. The copy is wiped when the derivation ends.
    const input = password.use((b) => b.slice());
    const options = { N: 2 ** params.log2N, r: params.r, p: params.p, maxmem: PASSWORD_KDF_MEMORY_BYTES_MAX };
    scrypt(input, salt, keyBytes, options, (err, key) => {
      input.fill(0);
      if (err !== null) {
        reject(err);
        return;
      }
      const out = new Uint8Array(key);
      key.fill(0);
      resolve(out);
    });
  });
}
