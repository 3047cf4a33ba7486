// EC PKCS#8 and SPKI written from a key's SEC 1 form (src/crypto/ec_key_der.ts): byte for byte what
// the OpenSSL CLI writes for the same key (known answers below, commands in the comments), and what
// node's own OpenSSL exports give for random keys of every curve; other keys fall back to OpenSSL.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createECDH, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { derElement, ecKeyPairDer, ecPrivateKeyPkcs8, ecPublicSpkiOfPrivate, ecSec1OfPkcs8 } from '../../src/crypto/ec_key_der.js';
import { isCofferError } from '../../src/errors.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sec1Key = (der: string): KeyObject => createPrivateKey({ key: hex(der), format: 'der', type: 'sec1' });

// The RFC 6979 §A.2.5 P-256 key (x and its public point U), as SEC 1 DER (RFC 5915 §3), and what
//   openssl pkcs8 -topk8 -nocrypt -inform DER -in p256.sec1.der -outform DER        (PKCS#8)
//   openssl ec -inform DER -in p256.sec1.der -pubout -outform DER                     (SPKI)
// write for it (OpenSSL 3.0.19).
const P256_SEC1 =
  '30770201010420c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721a00a06082a8648ce3d030107a1440342000460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299';
const P256_PKCS8 =
  '308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721a1440342000460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299';
const P256_SPKI =
  '3059301306072a8648ce3d020106082a8648ce3d0301070342000460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299';
// A P-521 key made with `openssl ecparam -name secp521r1 -genkey -noout -outform DER`, and the same two
// commands' output: long-form lengths (0x81) at every level.
const P521_SEC1 =
  '3081dc02010104420120b519063d8e8801b8acb6cf8ed3f345f2df9beaf2ef790b1714b64bc5f24acda3ec1aee214f12c2f77a2ba845fa82cb89b1246fb6d3bef460a228b5d2e548a083a00706052b81040023a18189038186000401e1a2626d91cc55a9fc811265fab4dcccd5a2ca18d6261a6cae257b730a22c6202401cb33936aebbe0e45787923af0d736bee6b1502dd34f171bb2ab2b10ab39a8d00dfb25b1441e77b3c8857647518fae64f4076f58b4e97b07e81c564d10a9d3e70828cded18d97c7795a84f0682bc4a651d451010e0a7200c18e83e6e2f7e98a4b83';
const P521_PKCS8 =
  '3081ee020100301006072a8648ce3d020106052b810400230481d63081d302010104420120b519063d8e8801b8acb6cf8ed3f345f2df9beaf2ef790b1714b64bc5f24acda3ec1aee214f12c2f77a2ba845fa82cb89b1246fb6d3bef460a228b5d2e548a083a18189038186000401e1a2626d91cc55a9fc811265fab4dcccd5a2ca18d6261a6cae257b730a22c6202401cb33936aebbe0e45787923af0d736bee6b1502dd34f171bb2ab2b10ab39a8d00dfb25b1441e77b3c8857647518fae64f4076f58b4e97b07e81c564d10a9d3e70828cded18d97c7795a84f0682bc4a651d451010e0a7200c18e83e6e2f7e98a4b83';
const P521_SPKI =
  '30819b301006072a8648ce3d020106052b81040023038186000401e1a2626d91cc55a9fc811265fab4dcccd5a2ca18d6261a6cae257b730a22c6202401cb33936aebbe0e45787923af0d736bee6b1502dd34f171bb2ab2b10ab39a8d00dfb25b1441e77b3c8857647518fae64f4076f58b4e97b07e81c564d10a9d3e70828cded18d97c7795a84f0682bc4a651d451010e0a7200c18e83e6e2f7e98a4b83';

void test('EC PKCS#8 and SPKI equal the OpenSSL CLI’s for known keys (P-256, P-521)', () => {
  for (const [sec1, pkcs8, spki] of [
    [P256_SEC1, P256_PKCS8, P256_SPKI],
    [P521_SEC1, P521_PKCS8, P521_SPKI],
  ] as const) {
    const key = sec1Key(sec1);
    assert.equal(toHex(ecPrivateKeyPkcs8(key)), pkcs8);
    assert.equal(toHex(ecPublicSpkiOfPrivate(key) ?? new Uint8Array()), spki);
  }
});

void test('EC PKCS#8 and SPKI equal node’s OpenSSL exports for random keys of every curve', () => {
  for (const namedCurve of ['prime256v1', 'secp384r1', 'secp521r1', 'secp256k1']) {
    for (let i = 0; i < 100; i++) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
      assert.deepEqual(Buffer.from(ecPrivateKeyPkcs8(privateKey)), privateKey.export({ format: 'der', type: 'pkcs8' }), `${namedCurve} PKCS#8`);
      assert.deepEqual(Buffer.from(ecPublicSpkiOfPrivate(privateKey) ?? new Uint8Array()), publicKey.export({ format: 'der', type: 'spki' }), `${namedCurve} SPKI`);
    }
  }
});

void test('a key imported from PKCS#8 without its public key: OpenSSL’s PKCS#8, no SPKI from SEC 1', () => {
  // The RFC 6979 P-256 key's PKCS#8 with the [1] publicKey left out: OpenSSL keeps it out of the
  // SEC 1 form too, so the PKCS#8 is OpenSSL's own export (the same bytes) and there is no point to copy.
  const bare = hex('3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721');
  const key = createPrivateKey({ key: bare, format: 'der', type: 'pkcs8' });
  assert.deepEqual(Buffer.from(ecPrivateKeyPkcs8(key)), bare);
  assert.equal(ecPublicSpkiOfPrivate(key), undefined);
});

void test('other keys: PKCS#8 from OpenSSL, no SPKI from SEC 1', () => {
  for (const pair of [generateKeyPairSync('ed25519'), generateKeyPairSync('rsa', { modulusLength: 1024 })]) {
    assert.deepEqual(Buffer.from(ecPrivateKeyPkcs8(pair.privateKey)), pair.privateKey.export({ format: 'der', type: 'pkcs8' }));
    assert.equal(ecPublicSpkiOfPrivate(pair.privateKey), undefined);
  }
  assert.equal(ecPublicSpkiOfPrivate(createPublicKey(sec1Key(P256_SEC1))), undefined);
});

void test('DER elements that are not what they claim are refused', () => {
  const der = hex(P256_SPKI);
  assert.deepEqual(derElement(der, 0, 0x30), { at: 0, start: 2, end: der.length });
  const refused = (d: Uint8Array, tag: number): void => assert.throws(() => derElement(d, 0, tag), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_KEY_INVALID'));
  refused(der, 0x04); // another tag
  refused(der.subarray(0, der.length - 1), 0x30); // contents past the end
  refused(hex('3083000001'), 0x30); // a 3-byte length: never in a key
  refused(hex('3080'), 0x30); // indefinite length
  refused(new Uint8Array(), 0x30);
});

// The curves' OIDs (RFC 5480 §2.1.1.1, SEC 2 v2 §A.2) and order lengths, as ecKeyPairDer takes them.
const CURVES = [
  { openssl: 'prime256v1', oid: hex('2a8648ce3d030107'), orderBytes: 32 },
  { openssl: 'secp384r1', oid: hex('2b81040022'), orderBytes: 48 },
  { openssl: 'secp521r1', oid: hex('2b81040023'), orderBytes: 66 },
  { openssl: 'secp256k1', oid: hex('2b8104000a'), orderBytes: 32 },
] as const;
const ecKeyInvalid = (e: unknown): boolean => isCofferError(e, 'COFFER_CRYPTO_KEY_INVALID');

void test('a pair written from its numbers (d, point) is the OpenSSL CLI’s PKCS#8 and SPKI for the known keys', () => {
  // d and the point as they sit in the known keys' SEC 1 forms above.
  const p256 = ecKeyPairDer(CURVES[0].oid, 32, hex(P256_SEC1.slice(14, 78)), hex(P256_SEC1.slice(-130)));
  assert.equal(toHex(p256.pkcs8), P256_PKCS8);
  assert.equal(toHex(p256.spki), P256_SPKI);
  const p521 = ecKeyPairDer(CURVES[2].oid, 66, hex(P521_SEC1.slice(16, 148)), hex(P521_SEC1.slice(-266)));
  assert.equal(toHex(p521.pkcs8), P521_PKCS8);
  assert.equal(toHex(p521.spki), P521_SPKI);
});

void test('a pair written from node’s ECDH numbers equals OpenSSL’s own exports of the same key, scalars shorter than the order included', () => {
  for (const { openssl, oid, orderBytes } of CURVES) {
    let short = 0;
    for (let i = 0; i < 300; i++) {
      const ecdh = createECDH(openssl);
      ecdh.generateKeys();
      const d = ecdh.getPrivateKey();
      if (d.length < orderBytes) short++;
      const { pkcs8, spki } = ecKeyPairDer(oid, orderBytes, d, ecdh.getPublicKey());
      const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
      assert.equal(toHex(pkcs8), key.export({ format: 'der', type: 'pkcs8' }).toString('hex'), `${openssl} PKCS#8`);
      assert.equal(toHex(spki), createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('hex'), `${openssl} SPKI`);
    }
    // P-521's scalar has 521 bits in 66 bytes: node drops the leading byte whenever it is zero (about 1 in 2).
    if (openssl === 'secp521r1') assert.ok(short > 0, 'some P-521 scalars came without their leading zero byte');
  }
  // d = 1 (its point is the generator G): 31 bytes of padding, as OpenSSL writes it.
  const g = hex('046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5');
  const one = ecKeyPairDer(CURVES[0].oid, 32, Uint8Array.of(1), g);
  const key = createPrivateKey({ key: Buffer.from(one.pkcs8), format: 'der', type: 'pkcs8' });
  assert.equal(toHex(one.pkcs8), key.export({ format: 'der', type: 'pkcs8' }).toString('hex'));
});

void test('numbers that are no key are refused: an empty or too long scalar, a point not uncompressed', () => {
  const point = hex(P256_SPKI.slice(-130));
  assert.throws(() => ecKeyPairDer(CURVES[0].oid, 32, new Uint8Array(), point), ecKeyInvalid);
  assert.throws(() => ecKeyPairDer(CURVES[0].oid, 32, new Uint8Array(33).fill(1), point), ecKeyInvalid);
  assert.throws(() => ecKeyPairDer(CURVES[0].oid, 32, Uint8Array.of(1), Uint8Array.of(0x02, ...point.subarray(1, 33))), ecKeyInvalid);
});

void test('the SEC 1 form of an EC PKCS#8 is the OpenSSL CLI’s SEC 1 for the known keys, and the same key for random ones', () => {
  assert.equal(toHex(ecSec1OfPkcs8(hex(P256_PKCS8)) ?? new Uint8Array()), P256_SEC1);
  assert.equal(toHex(ecSec1OfPkcs8(hex(P521_PKCS8)) ?? new Uint8Array()), P521_SEC1);
  for (const namedCurve of ['prime256v1', 'secp384r1', 'secp521r1', 'secp256k1']) {
    for (let i = 0; i < 50; i++) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve });
      const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
      const sec1 = ecSec1OfPkcs8(pkcs8);
      assert.ok(sec1 !== undefined, namedCurve);
      assert.deepEqual(sec1, new Uint8Array(privateKey.export({ format: 'der', type: 'sec1' })), `${namedCurve} SEC 1`);
    }
  }
});

void test('no SEC 1 form for any other PKCS#8: no public key in it, not EC, malformed', () => {
  const bare = hex('3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721');
  assert.equal(ecSec1OfPkcs8(bare), undefined);
  for (const pair of [generateKeyPairSync('ed25519'), generateKeyPairSync('rsa', { modulusLength: 1024 })]) {
    assert.equal(ecSec1OfPkcs8(pair.privateKey.export({ format: 'der', type: 'pkcs8' })), undefined);
  }
  const good = hex(P256_PKCS8);
  assert.equal(ecSec1OfPkcs8(good.subarray(0, good.length - 1)), undefined);
  assert.equal(ecSec1OfPkcs8(Buffer.concat([good, Buffer.of(0)])), undefined);
  assert.equal(ecSec1OfPkcs8(new Uint8Array()), undefined);
});
