// Password rules and verifiers (src/hsm/users/password.ts): scrypt against RFC 7914 §12, a golden
// verifier of format version 1, the 8..32 character rule at its edges, and the decoder's refusals.

import { test } from 'node:test';
import crypto, { type BinaryLike, type ScryptOptions } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import {
  checkPassword,
  checkScryptParams,
  decodeVerifier,
  DEFAULT_SCRYPT_PARAMS,
  dummyVerifier,
  makeVerifier,
  passwordBytes,
  scryptKey,
  verifierNeedsUpgrade,
  verifyPassword,
  VERIFIER_BYTES,
  type ScryptParams,
} from '../../../src/hsm/users/password.js';
import { systemRandom, type Random } from '../../../src/hsm/ports.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

interface Rfc7914Vector {
  password: string;
  salt: string;
  N: number;
  r: number;
  p: number;
  dkLen: number;
  dk: string;
}
const VECTORS = (JSON.parse(readFileSync(resolve(ROOT, 'test/vectors/scrypt-rfc7914/vectors.json'), 'utf8')) as { vectors: Rfc7914Vector[] }).vectors;

const fails = (code: ErrorCode) => (e: unknown) => isCofferError(e, code);
const params = (v: Rfc7914Vector): ScryptParams => ({ log2N: Math.log2(v.N), r: v.r, p: v.p });
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A Random that returns 0, 1, 2, … so a verifier's salt is known. */
const countingRandom: Random = { bytes: (n) => Uint8Array.from({ length: n }, (_, i) => i) };

void test('scrypt matches RFC 7914 §12 (vectors 1-3)', async () => {
  assert.equal(VECTORS.length, 4);
  for (const v of VECTORS.slice(0, 3)) {
    const key = await scryptKey(SecretBytes.copyOf(bytes(v.password)), bytes(v.salt), params(v), v.dkLen);
    assert.equal(hex(key), v.dk, `N=${v.N} r=${v.r} p=${v.p}`);
    // A one-byte change of the password must change the key.
    const other = await scryptKey(SecretBytes.copyOf(bytes(v.password + 'x')), bytes(v.salt), params(v), v.dkLen);
    assert.notEqual(hex(other), v.dk);
  }
});

void test('RFC 7914 vector 4 (N = 2^20, 1 GiB) exceeds the memory limit and is refused', async () => {
  const v = VECTORS[3];
  assert.ok(v !== undefined);
  assert.throws(() => checkScryptParams(params(v)), fails('COFFER_FORMAT_LIMIT'));
  await assert.rejects(scryptKey(SecretBytes.copyOf(bytes(v.password)), bytes(v.salt), params(v)), fails('COFFER_FORMAT_LIMIT'));
});

void test('golden verifier, format version 1 (key from an independent scrypt: Python hashlib)', async () => {
  const v = await makeVerifier('correct horse 1', countingRandom);
  assert.equal(
    hex(v),
    '01010e0008000110000102030405060708090a0b0c0d0e0f20004dc1671d468055ccaaea889c08fb5fc9c28f912aadb59b80cb5b239949a928',
  );
  assert.equal(v.length, VERIFIER_BYTES);
  assert.deepEqual(decodeVerifier(v).params, DEFAULT_SCRYPT_PARAMS);
});

void test('verify: right password true, wrong false, salts differ per verifier', async () => {
  const a = await makeVerifier('Tr0ub4dor&3', systemRandom);
  const b = await makeVerifier('Tr0ub4dor&3', systemRandom);
  assert.notEqual(hex(a), hex(b));
  assert.equal(await verifyPassword(a, 'Tr0ub4dor&3'), true);
  assert.equal(await verifyPassword(b, bytes('Tr0ub4dor&3')), true);
  assert.equal(await verifyPassword(a, 'Tr0ub4dor&4'), false);
  assert.equal(await verifyPassword(a, 'tr0ub4dor&3'), false);
  assert.equal(await verifyPassword(dummyVerifier(systemRandom), 'Tr0ub4dor&3'), false);
});

void test('a verifier never contains the password or any 4-byte piece of it', async () => {
  const password = 'hunter2hunter2hunter2';
  const v = await makeVerifier(password, systemRandom);
  const text = Buffer.from(v);
  for (let i = 0; i + 4 <= password.length; i++) assert.equal(text.indexOf(password.slice(i, i + 4)), -1);
  assert.equal(text.indexOf(Buffer.from(password, 'utf16le')), -1);
});

void test('password length: 7 and 33 refused, 8 and 32 accepted, counted in characters', () => {
  assert.throws(() => checkPassword('a'.repeat(7)), fails('COFFER_PASSWORD_INVALID'));
  assert.throws(() => checkPassword('a'.repeat(33)), fails('COFFER_PASSWORD_INVALID'));
  assert.throws(() => checkPassword(''), fails('COFFER_PASSWORD_INVALID'));
  checkPassword('a'.repeat(8));
  checkPassword('a'.repeat(32));
  // Characters, not bytes: 32 two-byte characters pass, 33 do not; an emoji is one character.
  checkPassword('é'.repeat(32));
  assert.throws(() => checkPassword('é'.repeat(33)), fails('COFFER_PASSWORD_INVALID'));
  checkPassword('😀'.repeat(8));
  assert.throws(() => checkPassword('😀'.repeat(7)), fails('COFFER_PASSWORD_INVALID'));
  // Bytes that are not UTF-8 are refused, and the error never carries the input.
  const e = (() => {
    try {
      checkPassword(Uint8Array.of(0xff, 0xfe, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41));
    } catch (err) {
      return err;
    }
    return undefined;
  })();
  assert.ok(isCofferError(e, 'COFFER_PASSWORD_INVALID'));
  assert.deepEqual(e.detail, {});
});

void test('passwords are NFKC-normalised: composed and decomposed forms are the same password', async () => {
  const composed = 'caf\u00e9-caf\u00e9';
  const decomposed = 'cafe\u0301-cafe\u0301';
  const v = await makeVerifier(composed, systemRandom);
  assert.equal(await verifyPassword(v, decomposed), true);
  const owned = passwordBytes(decomposed);
  assert.equal(owned.use((b) => Buffer.from(b).toString('utf8')), composed);
  owned.destroy();
  assert.ok(owned.destroyed);
});

void test('decoder refuses unknown versions, other KDFs, bad lengths and unbounded parameters', async () => {
  const good = await makeVerifier('correct horse 1', countingRandom);
  const mutate = (at: number, value: number): Uint8Array => {
    const m = good.slice();
    m[at] = value;
    return m;
  };
  assert.throws(() => decodeVerifier(mutate(0, 2)), fails('COFFER_FORMAT_UNKNOWN_VERSION'));
  assert.throws(() => decodeVerifier(mutate(1, 2)), fails('COFFER_FORMAT_MALFORMED'));
  assert.throws(() => decodeVerifier(mutate(2, 25)), fails('COFFER_FORMAT_LIMIT')); // N = 2^25: 4 GiB
  assert.throws(() => decodeVerifier(mutate(2, 0)), fails('COFFER_FORMAT_LIMIT'));
  assert.throws(() => decodeVerifier(mutate(6, 17)), fails('COFFER_FORMAT_LIMIT')); // p = 17
  assert.throws(() => decodeVerifier(mutate(7, 15)), fails('COFFER_FORMAT_MALFORMED')); // salt length
  assert.throws(() => decodeVerifier(good.subarray(0, VERIFIER_BYTES - 1)), fails('COFFER_FORMAT_MALFORMED'));
  assert.throws(() => decodeVerifier(new Uint8Array(0)), fails('COFFER_FORMAT_TRUNCATED'));
  // A flipped bit in the stored key makes the right password fail.
  assert.equal(await verifyPassword(mutate(VERIFIER_BYTES - 1, (good[VERIFIER_BYTES - 1] ?? 0) ^ 1), 'correct horse 1'), false);
});

void test('parameters travel in the verifier: other parameters still verify and are flagged for upgrade', async () => {
  const light: ScryptParams = { log2N: 10, r: 8, p: 1 };
  const v = await makeVerifier('correct horse 1', systemRandom, light);
  assert.deepEqual(decodeVerifier(v).params, light);
  assert.equal(await verifyPassword(v, 'correct horse 1'), true);
  assert.equal(verifierNeedsUpgrade(v), true);
  assert.equal(verifierNeedsUpgrade(v, light), false);
});

void test('one verification with the default parameters is one scrypt derivation at N=2^14, r=8, p=1 (its time is the bench\'s)', async () => {
  const v = await makeVerifier('correct horse 1', systemRandom);
  const seen: string[] = [];
  const original = crypto.scrypt;
  crypto.scrypt = ((password: unknown, salt: unknown, keylen: number, options: ScryptOptions, callback: (e: Error | null, k: Buffer) => void) => {
    seen.push(`N=${options.N ?? options.cost ?? 0} r=${options.r ?? options.blockSize ?? 0} p=${options.p ?? options.parallelization ?? 0}`);
    return original(password as BinaryLike, salt as BinaryLike, keylen, options, callback);
  }) as typeof crypto.scrypt;
  syncBuiltinESMExports();
  try {
    assert.equal(await verifyPassword(v, 'correct horse 1'), true);
  } finally {
    crypto.scrypt = original;
    syncBuiltinESMExports();
  }
  assert.deepEqual(seen, [`N=${2 ** 14} r=8 p=1`]);
});
