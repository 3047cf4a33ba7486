// Key check values against values computed outside Coffer with the OpenSSL 3.0 CLI (commands in
// the comments), so a wrong definition (other block, other hash, other key encoding) fails.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync } from 'node:crypto';
import { kcvAes, kcvPublicKey, kcvSecret, checkKcv, KCV_BYTES } from '../../src/crypto/kcv.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError } from '../../src/errors.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

void test('AES KCV = first 3 bytes of AES-ECB(key, zero block)', () => {
  // FIPS 197 / well known: AES-128 under the zero key encrypts the zero block to 66e94bd4ef8a2c3b884cfa59ca342b2e.
  assert.equal(toHex(kcvAes(SecretBytes.copyOf(new Uint8Array(16)))), '66e94b');
  // printf '00%.0s' {1..16} | xxd -r -p | openssl enc -aes-192-ecb -K 000102…17 -nopad | xxd -p
  //   → 916251821c73a522c396d62738019607
  assert.equal(toHex(kcvAes(SecretBytes.copyOf(hex('000102030405060708090a0b0c0d0e0f1011121314151617')))), '916251');
  // … openssl enc -aes-256-ecb -K 000102…1f -nopad → f29000b62a499fd0a9f39a6add2e7780
  const k256 = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  assert.equal(toHex(kcvAes(createSecretKey(k256))), 'f29000');
  assert.equal(toHex(kcvAes(SecretBytes.copyOf(k256))), 'f29000');
  // @ts-expect-error -- a plain Uint8Array is not a SecretKeyInput (the build fails if it ever is)
  assert.throws(() => kcvAes(k256), AssertionFailure);
  k256[0] = 1;
  assert.notEqual(toHex(kcvAes(SecretBytes.copyOf(k256))), 'f29000');
  for (const n of [0, 8, 15, 17, 33]) assert.throws(() => kcvAes(SecretBytes.copyOf(new Uint8Array(n))), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_KEY_SIZE'));
});

// The RFC 6979 §A.2.5 P-256 public key as SubjectPublicKeyInfo DER.
const P256_SPKI = hex(
  '3059301306072a8648ce3d020106082a8648ce3d03010703420004' +
    '60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6' +
    '7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299',
);
// The RFC 8032 §7.1 TEST 1 Ed25519 public key as SubjectPublicKeyInfo DER.
const ED25519_SPKI = hex('302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');

void test('public-key KCV = first 3 bytes of SHA-1 over the DER SubjectPublicKeyInfo', () => {
  // openssl dgst -sha1 p256.der → cad8a997d27511a79df843085a62049c78e38097
  assert.equal(toHex(kcvPublicKey(P256_SPKI)), 'cad8a9');
  assert.equal(toHex(kcvPublicKey(createPublicKey({ key: Buffer.from(P256_SPKI), format: 'der', type: 'spki' }))), 'cad8a9');
  // openssl dgst -sha1 ed25519.der → a566be19840173413a61048350eff23e8fe22266
  assert.equal(toHex(kcvPublicKey(ED25519_SPKI)), 'a566be');
  // A private key gives its public half's KCV.
  const ed = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex').toString('base64url'), x: Buffer.from(ED25519_SPKI.subarray(12)).toString('base64url') },
    format: 'jwk',
  });
  assert.equal(toHex(kcvPublicKey(ed)), 'a566be');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  assert.deepEqual(kcvPublicKey(privateKey), kcvPublicKey(publicKey));
  assert.equal(kcvPublicKey(publicKey).length, KCV_BYTES);
  assert.throws(() => kcvPublicKey(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_KEY_INVALID'));
});

void test('generic-secret KCV = first 3 bytes of SHA-1 over the key value (PKCS#11 generic secret)', () => {
  // printf '0b%.0s' {1..20} | xxd -r -p | openssl dgst -sha1 → 8ea4de230d22576b24c14f3b10feb405f1d8324b
  const key = new Uint8Array(20).fill(0x0b);
  assert.equal(toHex(kcvSecret(createSecretKey(key))), '8ea4de');
  assert.equal(toHex(kcvSecret(SecretBytes.copyOf(key))), '8ea4de');
  // @ts-expect-error -- a plain Uint8Array is not a SecretKeyInput (the build fails if it ever is)
  assert.throws(() => kcvSecret(key), AssertionFailure);
});

void test('checkKcv accepts equal values and refuses others', () => {
  const zero = SecretBytes.copyOf(new Uint8Array(16));
  checkKcv(hex('66e94b'), kcvAes(zero));
  for (const other of ['66e94c', '66e9', '66e94b00', '']) {
    assert.throws(() => checkKcv(hex(other), kcvAes(zero)), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_KCV_MISMATCH'));
  }
});
