// Raw ECDSA over a digest, checked by independent implementations: node:crypto's hashed verify
// (sign d = H(m) raw, node verifies m), the OpenSSL CLI on raw digests (both directions),
// @noble/curves for cross-checks, and RFC 6979 §A.2.5 as a known answer with a fixed nonce.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { createHash, createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import {
  ECDSA_CURVES,
  curveParameters,
  ecPrivateScalarFromPkcs8,
  invertModPrime,
  ECDSA_BATCH_SIGNATURES_MAX,
  signDigest,
  signDigestBatched,
  signDigestWithNonceForTest,
  verifyDigest,
  type DsaEncoding,
  type EcdsaCurve,
} from '../../src/crypto/ecdsa_raw.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError } from '../../src/errors.js';
import { throwsCode } from '../helpers.js';

const NOBLE = { 'P-256': p256, 'P-384': p384, 'P-521': p521, secp256k1 } as const;
const HASH: Readonly<Record<EcdsaCurve, string>> = { 'P-256': 'sha256', 'P-384': 'sha384', 'P-521': 'sha512', secp256k1: 'sha256' };
const ORDER_BYTES: Readonly<Record<EcdsaCurve, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66, secp256k1: 32 };
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const digestOf = (hash: string, m: Uint8Array): Uint8Array => new Uint8Array(createHash(hash).update(m).digest());

/** A scalar as signDigest takes it: owned by a SecretBytes (plain bytes are refused). */
const owned = (d: Uint8Array): SecretBytes => SecretBytes.copyOf(d);

/**
 * A fresh key pair and its scalar d. d is read from the SEC 1 DER (SEQUENCE { 1, OCTET STRING d,
 * ... }), not from a JWK: node 20 can deadlock exporting a JWK of a generateKeyPairSync key.
 */
function keyPair(curve: EcdsaCurve): { privateKey: KeyObject; publicKey: KeyObject; d: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const der = privateKey.export({ format: 'der', type: 'sec1' });
  const at = der[1] === 0x81 ? 3 : 2; // past the SEQUENCE header (long form for P-521)
  assert.deepEqual([...der.subarray(at, at + 4)], [0x02, 0x01, 0x01, 0x04], 'version 1, then the OCTET STRING');
  const d = new Uint8Array(der.subarray(at + 5, at + 5 + (der[at + 4] ?? 0)));
  assert.equal(d.length, ORDER_BYTES[curve]);
  return { privateKey, publicKey, d };
}

/** Flips one bit of a copy. */
function flipped(b: Uint8Array, bit: number): Uint8Array {
  const t = Uint8Array.from(b);
  t[bit >> 3] = (t[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return t;
}

void test('curve parameters agree with @noble/curves', () => {
  for (const curve of ECDSA_CURVES) {
    const theirs = NOBLE[curve].Point.CURVE();
    const ours = curveParameters(curve);
    assert.equal(ours.p, theirs.p, `${curve} p`);
    assert.equal(ours.n, theirs.n, `${curve} n`);
    assert.equal(ours.a, theirs.a, `${curve} a`);
  }
  throwsCode(() => curveParameters('P-224' as EcdsaCurve), 'COFFER_CRYPTO_UNSUPPORTED_CURVE');
});

void test('RFC 6979 §A.2.5 (P-256, SHA-256, "sample") with its k: exact r and s, s left high', () => {
  // RFC 6979 Appendix A.2.5: private key x, and the k it derives for SHA-256 over "sample".
  const x = hex('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721');
  const k = 0xa6e3c57dd01abe90086538398355dd4c3b17aa873382b0f24d6129493d8aad60n;
  const r = 'efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716';
  const s = 'f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8';
  const digest = digestOf('sha256', new TextEncoder().encode('sample'));
  assert.equal(toHex(signDigestWithNonceForTest('P-256', owned(x), digest, k, { dsaEncoding: 'ieee-p1363' })), r + s);
  // DER: both integers have the top bit set, so each gets a 0x00 prefix.
  assert.equal(toHex(signDigestWithNonceForTest('P-256', owned(x), digest, k)), `3046022100${r}022100${s}`);
  // s > n/2: a low-s normaliser would have changed it; we do not (documented in ecdsa_raw.ts).
  assert.ok(BigInt(`0x${s}`) > curveParameters('P-256').n / 2n);
  // Its public key U = x·G (RFC 6979 §A.2.5, Ux and Uy).
  const b64 = (h: string): string => Buffer.from(h, 'hex').toString('base64url');
  const pub = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: b64('60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6'), y: b64('7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299') },
    format: 'jwk',
  });
  assert.ok(verify('sha256', new TextEncoder().encode('sample'), pub, hex(`3046022100${r}022100${s}`)));
  assert.ok(verifyDigest('P-256', pub, digest, hex(r + s), { dsaEncoding: 'ieee-p1363' }));
  // A different k gives a different (still valid) signature: the KAT pins the arithmetic.
  const other = signDigestWithNonceForTest('P-256', owned(x), digest, k + 1n, { dsaEncoding: 'ieee-p1363' });
  assert.notEqual(toHex(other), r + s);
  assert.ok(verifyDigest('P-256', pub, digest, other, { dsaEncoding: 'ieee-p1363' }));
});

void test('node:crypto verifies raw signatures over H(m), every curve, both encodings and nonce sources', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey } = keyPair(curve);
    for (let i = 0; i < 25; i++) {
      const m = randomBytes(1 + i);
      const digest = digestOf(HASH[curve], m);
      for (const nonceSource of ['openssl-keygen', 'rejection-sampling'] as const) {
        const der = signDigest(curve, privateKey, digest, { nonceSource });
        assert.ok(verify(HASH[curve], m, publicKey, der), `${curve} DER ${nonceSource}`);
        const p1363 = signDigest(curve, privateKey, digest, { nonceSource, dsaEncoding: 'ieee-p1363' });
        assert.equal(p1363.length, 2 * ORDER_BYTES[curve]);
        assert.ok(verify(HASH[curve], m, { key: publicKey, dsaEncoding: 'ieee-p1363' }, p1363), `${curve} P1363 ${nonceSource}`);
        assert.ok(!verify(HASH[curve], randomBytes(8), publicKey, der), 'node refuses it for another message');
      }
    }
  }
});

void test('digest lengths: truncation to the order (P-256 with SHA-512) and shorter digests (P-521 with SHA-256, P-256 with SHA-1)', () => {
  for (const [curve, hash] of [
    ['P-256', 'sha512'],
    ['P-384', 'sha512'],
    ['P-521', 'sha256'],
    ['P-521', 'sha384'],
    ['P-256', 'sha1'],
    ['secp256k1', 'sha384'],
  ] as const) {
    const { privateKey, publicKey } = keyPair(curve);
    for (let i = 0; i < 10; i++) {
      const m = randomBytes(32);
      const sig = signDigest(curve, privateKey, digestOf(hash, m));
      assert.ok(verify(hash, m, publicKey, sig), `${curve} with ${hash}`);
      assert.ok(verifyDigest(curve, publicKey, digestOf(hash, m), sig));
    }
  }
  // Truncation keeps the leftmost bits: a 64-byte digest signs as its first 32 bytes on P-256.
  const { privateKey, publicKey } = keyPair('P-256');
  const long = randomBytes(64);
  assert.ok(verifyDigest('P-256', publicKey, long.subarray(0, 32), signDigest('P-256', privateKey, long)));
  const { d } = keyPair('P-256');
  for (const n of [0, 65, 100]) throwsCode(() => signDigest('P-256', owned(d), new Uint8Array(n)), 'COFFER_CRYPTO_DIGEST_LENGTH');
  throwsCode(() => verifyDigest('P-256', publicKey, new Uint8Array(0), new Uint8Array(8)), 'COFFER_CRYPTO_DIGEST_LENGTH');
  // A one-byte "digest" is accepted (documented) and checked by noble independently.
  const q = NOBLE['P-256'].getPublicKey(d, false);
  const sig1 = signDigest('P-256', owned(d), new Uint8Array([7]));
  assert.ok(NOBLE['P-256'].verify(sig1, new Uint8Array([7]), q, { prehash: false, lowS: false, format: 'der' }));
});

void test('verifyDigest accepts node-made signatures and agrees with @noble/curves on good and bad ones', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey, d } = keyPair(curve);
    const q = NOBLE[curve].getPublicKey(d, false);
    for (let i = 0; i < 20; i++) {
      const m = randomBytes(16);
      const digest = digestOf(HASH[curve], m);
      const nodeSig = new Uint8Array(sign(HASH[curve], m, privateKey));
      assert.ok(verifyDigest(curve, publicKey, digest, nodeSig), `${curve} node signature`);
      const bad = flipped(nodeSig, 8 * (nodeSig.length - 1) + (i % 8));
      const nobleSays = NOBLE[curve].verify(bad, digest, q, { prehash: false, lowS: false, format: 'der' });
      assert.equal(verifyDigest(curve, publicKey, digest, bad), nobleSays, `${curve} flipped signature`);
      assert.equal(nobleSays, false);
      const ours = signDigest(curve, owned(d), digest, { dsaEncoding: 'ieee-p1363' });
      assert.ok(NOBLE[curve].verify(ours, digest, q, { prehash: false, lowS: false, format: 'compact' }), `${curve} noble verifies ours`);
    }
  }
});

void test('negative cases: altered digest, altered signature, wrong key, out-of-range r or s, malformed DER', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey } = keyPair(curve);
    const other = keyPair(curve).publicKey;
    const digest = digestOf(HASH[curve], randomBytes(10));
    const sig = signDigest(curve, privateKey, digest);
    assert.ok(verifyDigest(curve, publicKey, digest, sig));
    // One bit in every byte (a different bit position each time) of the digest and the signature.
    for (let i = 0; i < digest.length; i++) assert.ok(!verifyDigest(curve, publicKey, flipped(digest, 8 * i + (i % 8)), sig), `${curve} digest byte ${i}`);
    for (let i = 0; i < sig.length; i++) assert.ok(!verifyDigest(curve, publicKey, digest, flipped(sig, 8 * i + ((i * 3) % 8))), `${curve} signature byte ${i}`);
    assert.ok(!verifyDigest(curve, other, digest, sig), `${curve} wrong key`);
    const raw = signDigest(curve, privateKey, digest, { dsaEncoding: 'ieee-p1363' });
    assert.ok(!verifyDigest(curve, publicKey, digest, raw), 'P1363 bytes are not DER');
    assert.ok(!verifyDigest(curve, publicKey, digest, sig, { dsaEncoding: 'ieee-p1363' }), 'DER bytes are not P1363');
    const len = ORDER_BYTES[curve];
    const n = curveParameters(curve).n;
    const r = raw.subarray(0, len);
    const fixed = (x: bigint): Uint8Array => hex(x.toString(16).padStart(2 * len, '0'));
    for (const [what, bytes] of [
      ['r = 0', [fixed(0n), raw.subarray(len)]],
      ['s = 0', [r, fixed(0n)]],
      ['s = n', [r, fixed(n)]],
      ['s + n', [r, fixed(BigInt(`0x${toHex(raw.subarray(len))}`) + n)]],
    ] as const) {
      assert.ok(!verifyDigest(curve, publicKey, digest, Buffer.concat(bytes), { dsaEncoding: 'ieee-p1363' }), `${curve} ${what}`);
    }
    assert.ok(!verifyDigest(curve, publicKey, digest, Buffer.concat([sig, Buffer.of(0)])), 'trailing byte');
    assert.ok(!verifyDigest(curve, publicKey, digest, sig.subarray(0, sig.length - 1)), 'truncated');
  }
  // Non-minimal DER (BER) forms of a valid signature are refused, as OpenSSL refuses them.
  const { privateKey, publicKey } = keyPair('P-256');
  const digest = randomBytes(32);
  const p1363 = signDigest('P-256', privateKey, digest, { dsaEncoding: 'ieee-p1363' });
  /** DER INTEGER of an unsigned big-endian value: minimal, or with `extraZeros` needless 0x00s. */
  const int = (b: Uint8Array, extraZeros: number): Buffer => {
    let v = Buffer.from(b);
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.of(0), v]);
    const body = Buffer.concat([Buffer.alloc(extraZeros), v]);
    return Buffer.concat([Buffer.of(2, body.length), body]);
  };
  const seq = (content: Buffer, longForm: boolean): Buffer => Buffer.concat([Buffer.of(0x30), longForm ? Buffer.of(0x81, content.length) : Buffer.of(content.length), content]);
  const rr = p1363.subarray(0, 32);
  const ss = p1363.subarray(32);
  assert.ok(verifyDigest('P-256', publicKey, digest, seq(Buffer.concat([int(rr, 0), int(ss, 0)]), false)), 'hand-made minimal DER verifies');
  assert.ok(!verifyDigest('P-256', publicKey, digest, seq(Buffer.concat([int(rr, 1), int(ss, 0)]), false)), 'padded integer');
  assert.ok(!verifyDigest('P-256', publicKey, digest, seq(Buffer.concat([int(rr, 0), int(ss, 2)]), false)), 'padded integer');
  assert.ok(!verifyDigest('P-256', publicKey, digest, seq(Buffer.concat([int(rr, 0), int(ss, 0)]), true)), 'long-form length');
  const negative = seq(Buffer.concat([int(rr, 0), int(ss, 0)]), false);
  negative[3] = (negative[3] ?? 0) + 1; // claim one more byte for r, breaking every length after it
  assert.ok(!verifyDigest('P-256', publicKey, digest, negative), 'inconsistent lengths');
});

void test('edge points: t·G = Q takes the doubling path; t·G = −Q (R at infinity) is refused', () => {
  const curve: EcdsaCurve = 'P-256';
  const { n } = curveParameters(curve);
  const d = 0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdefn;
  const dBytes = hex(d.toString(16).padStart(64, '0'));
  const q = p256.getPublicKey(dBytes, false);
  const k = 0x7777777777777777777777777777777777777777777777777777777777777777n;
  const r = p256.Point.BASE.multiply(k).toAffine().x % n;
  // e = d·r makes t = e·r⁻¹ = d, so Q + t·G = 2Q.
  const e = (d * r) % n;
  const digest = hex(e.toString(16).padStart(64, '0'));
  const sig = signDigestWithNonceForTest(curve, owned(dBytes), digest, k);
  assert.ok(p256.verify(sig, digest, q, { prehash: false, lowS: false, format: 'der' }));
  assert.ok(verifyDigest(curve, q, digest, sig));
  // e = −d·r makes Q + t·G the point at infinity: no s makes that verify.
  const e2 = (n - ((d * r) % n)) % n;
  const digest2 = hex(e2.toString(16).padStart(64, '0'));
  throwsCode(() => signDigestWithNonceForTest(curve, owned(dBytes), digest2, k), 'COFFER_CRYPTO_INPUT_LENGTH'); // s would be 0
  const forged = hex(r.toString(16).padStart(64, '0') + '01'.padStart(64, '0'));
  assert.ok(!verifyDigest(curve, q, digest2, forged, { dsaEncoding: 'ieee-p1363' }));
  // e ≡ 0 (an all-zero digest) skips the addition: u1 = 0.
  const zero = new Uint8Array(32);
  const sig0 = signDigest(curve, owned(dBytes), zero);
  assert.ok(verifyDigest(curve, q, zero, sig0));
  assert.ok(p256.verify(sig0, zero, q, { prehash: false, lowS: false, format: 'der' }));
});

void test('private key forms: KeyObject, SecretBytes (plain bytes refused); bad keys refused without showing the scalar', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey, d } = keyPair(curve);
    const digest = randomBytes(32);
    for (const form of [privateKey, SecretBytes.copyOf(d)]) assert.ok(verifyDigest(curve, publicKey, digest, signDigest(curve, form, digest)));
    // @ts-expect-error -- a plain Uint8Array scalar has no owner to zeroise it (the build fails if it ever type-checks)
    assert.throws(() => signDigest(curve, d, digest), AssertionFailure);
  }
  const { privateKey, publicKey, d } = keyPair('P-256');
  const n = curveParameters('P-256').n;
  const digest = randomBytes(32);
  const bad: Array<KeyObject | SecretBytes> = [
    owned(d.subarray(1)), // 31 bytes
    owned(Buffer.concat([Buffer.of(0), d])), // 33 bytes
    owned(new Uint8Array(32)), // d = 0
    owned(hex(n.toString(16))), // d = n
    publicKey, // not a private key
    keyPair('P-384').privateKey, // another curve
    generateKeyPairSync('ed25519').privateKey,
    generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey,
    createSecretKey(d),
  ];
  for (const key of bad) throwsCode(() => signDigest('P-256', key, digest), 'COFFER_CRYPTO_KEY_INVALID');
  throwsCode(() => signDigest('P-384', privateKey, digest), 'COFFER_CRYPTO_KEY_INVALID'); // a key used on P-256, now asked for P-384
  throwsCode(() => signDigest('P-999' as EcdsaCurve, privateKey, digest), 'COFFER_CRYPTO_UNSUPPORTED_CURVE');
  // Nothing about the scalar in the error: not as hex, base64url or decimal, not in detail or cause.
  const secretForms = [toHex(d), Buffer.from(d).toString('base64url'), BigInt(`0x${toHex(d)}`).toString()];
  for (const key of [owned(d.subarray(1)), owned(Buffer.concat([d, Buffer.of(1)]))]) {
    try {
      signDigest('P-256', key, digest);
      assert.fail('must throw');
    } catch (e) {
      assert.ok(isCofferError(e, 'COFFER_CRYPTO_KEY_INVALID'));
      const text = [e.message, JSON.stringify(e), inspect(e, { depth: 5 }), String(e.stack), String(e.cause)].join('\n');
      for (const f of secretForms) assert.ok(!text.includes(f.slice(0, 16)), 'scalar leaked into an error');
      assert.equal(e.cause, undefined);
      assert.deepEqual(e.detail, {});
    }
  }
});

void test('public key forms: KeyObject (public or private), SPKI DER, SEC1 uncompressed and compressed; bad points refused', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey, d } = keyPair(curve);
    const digest = randomBytes(32);
    const sig = signDigest(curve, owned(d), digest);
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    for (const form of [publicKey, privateKey, new Uint8Array(spki), NOBLE[curve].getPublicKey(d, false), NOBLE[curve].getPublicKey(d, true)]) {
      assert.ok(verifyDigest(curve, form, digest, sig), curve);
    }
    const offCurve = NOBLE[curve].getPublicKey(d, false);
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 1;
    throwsCode(() => verifyDigest(curve, offCurve, digest, sig), 'COFFER_CRYPTO_KEY_INVALID');
    throwsCode(() => verifyDigest(curve, new Uint8Array([0]), digest, sig), 'COFFER_CRYPTO_KEY_INVALID');
    throwsCode(() => verifyDigest(curve, new Uint8Array([0x30, 0x00]), digest, sig), 'COFFER_CRYPTO_KEY_INVALID');
  }
  const p384spki = new Uint8Array(keyPair('P-384').publicKey.export({ format: 'der', type: 'spki' }));
  throwsCode(() => verifyDigest('P-256', p384spki, randomBytes(32), new Uint8Array(8)), 'COFFER_CRYPTO_KEY_INVALID');
  throwsCode(() => verifyDigest('P-256', generateKeyPairSync('ed25519').publicKey, randomBytes(32), new Uint8Array(8)), 'COFFER_CRYPTO_KEY_INVALID');
  throwsCode(() => verifyDigest('P-256', keyPair('P-384').publicKey, randomBytes(32), new Uint8Array(8)), 'COFFER_CRYPTO_KEY_INVALID');
  throwsCode(() => verifyDigest('P-256', createSecretKey(randomBytes(32)), randomBytes(32), new Uint8Array(8)), 'COFFER_CRYPTO_KEY_INVALID');
});

void test('a public KeyObject imported from a compressed point (OpenSSL exports it compressed) verifies', () => {
  for (const curve of ECDSA_CURVES) {
    const { publicKey, d } = keyPair(curve);
    const digest = randomBytes(32);
    const sig = signDigest(curve, owned(d), digest);
    // SPKI with the compressed point: the uncompressed SPKI's AlgorithmIdentifier, then BIT STRING 00 || 02/03 || x.
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const at = spki[1] === 0x81 ? 3 : 2;
    const algorithm = spki.subarray(at, at + 2 + (spki[at + 1] ?? 0));
    const point = NOBLE[curve].getPublicKey(d, true);
    const body = Buffer.concat([algorithm, Buffer.of(0x03, point.length + 1, 0x00), point]);
    assert.ok(body.length < 0x80);
    const compressed = createPublicKey({ key: Buffer.concat([Buffer.of(0x30, body.length), body]), format: 'der', type: 'spki' });
    assert.equal(compressed.export({ format: 'der', type: 'spki' }).length, body.length + 2, 'OpenSSL keeps the compressed form');
    assert.ok(verifyDigest(curve, compressed, digest, sig), curve);
    assert.ok(!verifyDigest(curve, compressed, flipped(digest, 3), sig), curve);
  }
});

/**
 * Signs and verifies with `count` fresh generateKeyPairSync keys in a child node whose young
 * generation is small (so collections are frequent), and waits for it to finish. Node 20 deadlocks
 * when a collection frees a key's generation job while that key's mutex is held by a call that
 * allocates JS objects under it (a JWK export, the first asymmetricKeyDetails read). ecdsa_raw.ts
 * reads keys as DER only; a build that read them the other way hung here within a few thousand keys.
 */
function signWithFreshKeysInChild(count: number, boundMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; timedOut: boolean }> {
  const module = new URL('../../src/crypto/ecdsa_raw.js', import.meta.url).href;
  const script = `
    import { generateKeyPairSync, randomBytes } from 'node:crypto';
    const { signDigest, verifyDigest } = await import(${JSON.stringify(module)});
    const digest = randomBytes(32);
    const empty = new Uint8Array(0);
    for (let i = 0; i < ${count}; i++) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const sig = signDigest('P-256', privateKey, digest);
      // verifyDigest reads the key before it parses the signature: an empty one reads it cheaply.
      if (verifyDigest('P-256', publicKey, digest, empty) || verifyDigest('P-256', privateKey, digest, empty)) throw new Error('empty signature verified');
      if (i % 500 === 0 && !verifyDigest('P-256', publicKey, digest, sig)) throw new Error('bad signature');
    }
    process.stdout.write('done');`;
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, ['--max-semi-space-size=1', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, boundMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, out, timedOut });
    });
  });
}

void test('raw ECDSA with freshly generated KeyObjects never hangs the process (node 20 key-mutex deadlock)', async () => {
  // 12,000 keys take seconds; the bound only tells a deadlock (which never ends) from a slow machine.
  const r = await signWithFreshKeysInChild(12_000, 10 * 60_000);
  assert.equal(r.timedOut, false, 'the child did not finish: deadlocked');
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out, 'done');
});

/** The inverse of x mod m by the plain extended Euclid: the reference invertModPrime is checked against. */
function euclid(x: bigint, m: bigint): bigint {
  let [r0, r1, t0, t1] = [m, ((x % m) + m) % m, 0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, t0, t1] = [r1, r0 - q * r1, t1, t0 - q * t1];
  }
  return ((t0 % m) + m) % m;
}

void test('invertModPrime against the plain extended Euclid, edges included', () => {
  for (const curve of ECDSA_CURVES) {
    const { p, n } = curveParameters(curve);
    for (const m of [p, n]) {
      const bytes = Math.ceil(m.toString(16).length / 2);
      const xs = [1n, 2n, 3n, m - 1n, m - 2n, m + 5n, -7n, (m >> 1n) + 1n];
      for (let i = 0; i < 200; i++) xs.push(BigInt(`0x${randomBytes(bytes).toString('hex')}`) % m || 1n);
      for (const x of xs) assert.equal(invertModPrime(x, m), euclid(x, m), `${curve} ${x}`);
    }
  }
  assert.throws(() => invertModPrime(0n, curveParameters('P-256').n), /inverse/);
});

void test('invertModPrime near powers of two and on small and Mersenne primes (the leading-digit paths)', () => {
  // Values whose double rounds up to the next power of two (2^k − 1 for k > 53), exact powers of
  // two, and moduli below the 48-bit leading digit (no shift: the double steps run on whole values).
  const primes = [3n, 7n, 65_537n, 2n ** 31n - 1n, 2n ** 61n - 1n, 2n ** 89n - 1n, 2n ** 127n - 1n, ...ECDSA_CURVES.map((c) => curveParameters(c).p)];
  for (const m of primes) {
    const xs: bigint[] = [1n, m - 1n];
    for (let k = 1n; 2n ** k < m; k++) xs.push(2n ** k, 2n ** k - 1n, 2n ** k + 1n);
    for (const x of xs) {
      if (x % m === 0n) continue;
      const inverse = invertModPrime(x, m);
      assert.equal(inverse, euclid(x, m), `${m} ${x}`);
      assert.equal((inverse * x) % m, 1n);
    }
  }
});

/** Runs the OpenSSL CLI in `dir`; null when it is not installed. */
function openssl(dir: string, args: readonly string[]): { status: number | null; out: string } | null {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.error !== undefined) return null;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

void test('signDigestBatched: the signatures of one turn, every curve and key form, both encodings, each verified by node and @noble/curves', async () => {
  const pairs = ECDSA_CURVES.flatMap((curve) => [keyPair(curve), keyPair(curve)].map((k) => ({ curve, ...k })));
  const asked: Array<{ curve: EcdsaCurve; publicKey: KeyObject; d: Uint8Array; m: Uint8Array; digest: Uint8Array; encoding: DsaEncoding; signature: Promise<Uint8Array> }> = [];
  for (let i = 0; i < 40; i++) {
    const { curve, privateKey, publicKey, d } = pairs[i % pairs.length] as (typeof pairs)[number];
    const m = randomBytes(1 + i);
    const digest = digestOf(HASH[curve], m);
    const encoding: DsaEncoding = i % 3 === 0 ? 'der' : 'ieee-p1363';
    // A SecretBytes is read when the call is made: destroyed at once, it still signs.
    const scalar = owned(d);
    const signature = signDigestBatched(curve, i % 2 === 0 ? privateKey : scalar, digest, { dsaEncoding: encoding });
    scalar.destroy();
    asked.push({ curve, publicKey, d, m, digest, encoding, signature });
  }
  const signatures = await Promise.all(asked.map((a) => a.signature));
  const rs = new Set<string>();
  asked.forEach((a, i) => {
    const signature = signatures[i] as Uint8Array;
    assert.ok(verify(HASH[a.curve], a.m, { key: a.publicKey, dsaEncoding: a.encoding }, signature), `node ${a.curve} #${i}`);
    assert.ok(!verify(HASH[a.curve], randomBytes(8), { key: a.publicKey, dsaEncoding: a.encoding }, signature), 'node refuses it for another message');
    assert.ok(NOBLE[a.curve].verify(signature, a.digest, NOBLE[a.curve].getPublicKey(a.d, false), { prehash: false, lowS: false, format: a.encoding === 'der' ? 'der' : 'compact' }), `noble ${a.curve} #${i}`);
    rs.add(toHex(signature.subarray(0, 8)));
  });
  assert.equal(rs.size, asked.length, 'every signature has its own nonce');
});

void test('signDigestBatched: a refused item fails alone; more than a batch in one turn all sign', async () => {
  const { privateKey, publicKey } = keyPair('P-256');
  const other = keyPair('P-384');
  const digest = digestOf('sha256', Uint8Array.of(1, 2, 3));
  const results = await Promise.allSettled([
    signDigestBatched('P-256', privateKey, digest),
    signDigestBatched('P-256', privateKey, new Uint8Array(0)),
    signDigestBatched('P-256', privateKey, new Uint8Array(65)),
    signDigestBatched('P-256', other.privateKey, digest), // a P-384 key named as P-256
    signDigestBatched('P-256', publicKey, digest),
    signDigestBatched('P-256', privateKey, digest),
  ]);
  const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : isCofferError(r.reason) ? r.reason.code : 'untyped'));
  assert.deepEqual(codes, ['ok', 'COFFER_CRYPTO_DIGEST_LENGTH', 'COFFER_CRYPTO_DIGEST_LENGTH', 'COFFER_CRYPTO_KEY_INVALID', 'COFFER_CRYPTO_KEY_INVALID', 'ok']);
  for (const r of [results[0], results[5]]) {
    assert.ok(r?.status === 'fulfilled' && verifyDigest('P-256', publicKey, digest, r.value));
  }
  await assert.rejects(signDigestBatched('P-256', new Uint8Array(32) as unknown as SecretBytes, digest), AssertionFailure); // plain bytes
  const many = 2 * ECDSA_BATCH_SIGNATURES_MAX + 7;
  const signatures = await Promise.all(Array.from({ length: many }, () => signDigestBatched('P-256', privateKey, digest, { dsaEncoding: 'ieee-p1363' })));
  for (const signature of signatures) assert.ok(verifyDigest('P-256', publicKey, digest, signature, { dsaEncoding: 'ieee-p1363' }));
  assert.equal(new Set(signatures.map(toHex)).size, many);
});

void test('the OpenSSL CLI verifies our raw signatures (pkeyutl -verify over the digest) and we verify its', async (t) => {
  if (spawnSync('openssl', ['version']).error !== undefined) {
    t.skip('openssl CLI not installed: cross-check with OpenSSL skipped');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'coffer-ecdsa-'));
  try {
    const cases: Array<[EcdsaCurve, string]> = [
      ['P-256', 'sha256'],
      ['P-384', 'sha384'],
      ['P-521', 'sha512'],
      ['secp256k1', 'sha256'],
      ['P-256', 'sha512'], // OpenSSL truncates the long digest the same way
    ];
    for (const [curve, hash] of cases) {
      const { privateKey, publicKey } = keyPair(curve);
      writeFileSync(join(dir, 'pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }));
      writeFileSync(join(dir, 'key.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
      const digest = digestOf(hash, randomBytes(40));
      writeFileSync(join(dir, 'digest.bin'), digest);
      const check = (sig: Uint8Array): { status: number | null; out: string } => {
        writeFileSync(join(dir, 'sig.der'), sig);
        const r = openssl(dir, ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-in', 'digest.bin', '-sigfile', 'sig.der']);
        assert.ok(r !== null);
        return r;
      };
      const ours = signDigest(curve, privateKey, digest);
      const good = check(ours);
      assert.equal(good.status, 0, `${curve}/${hash}: ${good.out}`);
      assert.match(good.out, /Signature Verified Successfully/);
      assert.notEqual(check(flipped(ours, ours.length * 8 - 3)).status, 0, `${curve}/${hash}: OpenSSL must refuse a flipped signature`);
      // Signatures made together in one turn (one shared inversion) verify there too.
      const together = await Promise.all([0, 1, 2].map(() => signDigestBatched(curve, privateKey, digest)));
      for (const sig of together) assert.equal(check(sig).status, 0, `${curve}/${hash}: a batched signature`);
      // And the other way: OpenSSL signs the raw digest, we verify.
      const signed = openssl(dir, ['pkeyutl', '-sign', '-inkey', 'key.pem', '-in', 'digest.bin', '-out', 'theirs.der']);
      assert.equal(signed?.status, 0, signed?.out);
      const theirs = new Uint8Array(readFileSync(join(dir, 'theirs.der')));
      assert.ok(verifyDigest(curve, publicKey, digest, theirs), `${curve}/${hash}: OpenSSL's signature`);
      assert.ok(!verifyDigest(curve, publicKey, flipped(digest, 0), theirs));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('both encodings round-trip for every curve (sign with one source, verify ours)', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey } = keyPair(curve);
    for (const dsaEncoding of ['der', 'ieee-p1363'] as DsaEncoding[]) {
      for (let i = 0; i < 10; i++) {
        const digest = randomBytes(ORDER_BYTES[curve] > 48 ? 64 : 32);
        assert.ok(verifyDigest(curve, publicKey, digest, signDigest(curve, privateKey, digest, { dsaEncoding }), { dsaEncoding }));
      }
    }
  }
  // The private key object from PKCS#8 works the same as the generated one.
  const { privateKey } = keyPair('P-256');
  const reparsed = createPrivateKey({ key: privateKey.export({ format: 'der', type: 'pkcs8' }), format: 'der', type: 'pkcs8' });
  const digest = randomBytes(32);
  assert.ok(verifyDigest('P-256', privateKey, digest, signDigest('P-256', reparsed, digest)));
});

test('ecPrivateScalarFromPkcs8 reads d from an EC key\'s PKCS#8 on every curve; its signatures verify under the key', () => {
  for (const curve of ECDSA_CURVES) {
    const { privateKey, publicKey, d } = keyPair(curve);
    const pkcs8 = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }));
    const scalar = ecPrivateScalarFromPkcs8(curve, pkcs8);
    assert.equal(scalar.use(toHex), toHex(d), curve);
    const digest = digestOf(HASH[curve], new TextEncoder().encode(`pkcs8 ${curve}`));
    const signature = signDigest(curve, scalar, digest, { dsaEncoding: 'ieee-p1363' });
    assert.ok(verifyDigest(curve, publicKey, digest, signature, { dsaEncoding: 'ieee-p1363' }), curve);
    assert.ok(NOBLE[curve].verify(signature, digest, NOBLE[curve].getPublicKey(d, false), { prehash: false, lowS: false, format: 'compact' }), `${curve}: another implementation accepts it`);
    pkcs8.fill(0xff); // the scalar is a copy
    assert.equal(scalar.use(toHex), toHex(d));
    scalar.destroy();
  }
});

test('ecPrivateScalarFromPkcs8 refuses another curve\'s key, a non-EC key and truncated DER with COFFER_CRYPTO_KEY_INVALID', () => {
  const p256 = new Uint8Array(keyPair('P-256').privateKey.export({ format: 'der', type: 'pkcs8' }));
  throwsCode(() => ecPrivateScalarFromPkcs8('P-384', p256), 'COFFER_CRYPTO_KEY_INVALID');
  throwsCode(() => ecPrivateScalarFromPkcs8('secp256k1', p256), 'COFFER_CRYPTO_KEY_INVALID');
  const ed = new Uint8Array(generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }));
  throwsCode(() => ecPrivateScalarFromPkcs8('P-256', ed), 'COFFER_CRYPTO_KEY_INVALID');
  for (const cut of [0, 1, 10, 30, p256.length - 40, p256.length - 60]) {
    throwsCode(() => ecPrivateScalarFromPkcs8('P-256', p256.subarray(0, cut)), 'COFFER_CRYPTO_KEY_INVALID');
  }
  const sec1 = new Uint8Array(keyPair('P-256').privateKey.export({ format: 'der', type: 'sec1' }));
  throwsCode(() => ecPrivateScalarFromPkcs8('P-256', sec1), 'COFFER_CRYPTO_KEY_INVALID');
});
