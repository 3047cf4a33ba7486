// Raw ECDSA over a caller-given digest (PKCS#11 CKM_ECDSA, docs/architecture.md §4) on P-256, P-384, P-521
// and secp256k1 (the last outside FIPS mode; refusing it there is the mechanism layer's job).
// node:crypto always hashes the message itself, so this module does the ECDSA arithmetic of
// FIPS 186-5 §6.4.1 (sign) and §6.4.2 (verify) around OpenSSL's scalar multiplication:
//
//   sign:    (k, k·G) from OpenSSL (`ECDH.generateKeys`: k uniform in [1, n−1] from OpenSSL's DRBG,
//            k·G by its constant-time multiplication), r = x(k·G) mod n, s = k⁻¹(e + r·d) mod n in
//            BigInt. The inversion is blinded (s = (b·k)⁻¹(b·e + b·d·r) with a random b per
//            signature), so its variable-time extended Euclid sees a value independent of k. s is
//            NOT normalised to low-s: signatures are what OpenSSL would produce; verifiers here
//            accept both halves. signDigestBatched settles at the end of the turn and makes every
//            signature asked for in it together, with one inversion of the product of their blinded
//            nonces (Montgomery's trick): the node serves a socket read's worth of SIGN requests in
//            one turn, and an inversion is about a third of a P-256 signature's instructions.
//   verify:  x(u1·G + u2·Q) = x(u2·(Q + t·G)) with t = e·r⁻¹, so OpenSSL does t·G (full point),
//            one affine addition is done in BigInt, and OpenSSL's ECDH gives x(u2·P). All inputs
//            are public, so variable-time BigInt is fine there. ECDH.setPrivateKey(u2) also
//            computes u2·G, unused: three multiplications against OpenSSL's one double-scalar one,
//            which is why verify runs at under half of node's hashed verify on P-256.
//
// The private scalar d of a KeyObject is read from the key's SEC 1 DER at every signature and
// kept nowhere: no cache outlives the call (what stays in memory: docs/threat-model.md). That
// export is most of the gap between the KeyObject and the SecretBytes figures below, which is why
// a caller that holds the key's PKCS#8 itself (the device) reads d with ecPrivateScalarFromPkcs8.
// Measured on the 2-core reference machine (bench/crypto_bench.ts, one run, Node 20.20 / OpenSSL
// 3.0.19): P-256 sign ≈ 24k/s from a KeyObject and ≈ 35k/s from a scalar in SecretBytes, against
// node's hashed sign at 41k/s and @noble/curves with prehash:false at 1.9k/s; P-256 verify ≈ 6.8k/s
// (node 15k/s, noble 0.47k/s). On P-384, P-521 and secp256k1, OpenSSL has no specialised code, the
// multiplications dominate, and sign runs at node's own speed. Keygen is the default nonce source
// because OpenSSL then samples k itself; rejection sampling + setPrivateKey stays selectable.
// Honest limits: BigInt arithmetic is not constant-time (the same posture as noble-curves), and
// BigInt intermediates (d among them) cannot be zeroised: a signature drops them when it returns
// (a batched one when its batch is signed, at the end of the turn it was asked in), and they stay
// in the heap until the garbage collector reuses that memory.
//
// Digests (SEC 1 §4.1.3 step 5, FIPS 186-5 §6.4.1 step 2): a digest longer than the order's bit
// length is truncated to its leftmost bits; a shorter one is used as it is. Any length from 1 to
// ECDSA_DIGEST_BYTES_MAX bytes is accepted, so SHA-1 (20) to SHA-512 (64) digests all work; which
// hashes are allowed with which curve in FIPS mode is the mechanism layer's decision.
//
// Signatures are DER (`SEQUENCE { r INTEGER, s INTEGER }`, node's default) or IEEE P1363 (r || s,
// each the order's byte length), chosen with `dsaEncoding` as in node's crypto.sign.

import { createECDH, createPublicKey, ECDH, KeyObject, randomFillSync } from 'node:crypto';
import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { EC_PUBLIC_KEY_OID, derElement as element, type Tlv } from './ec_key_der.js';
import { SecretBytes, constantTimeEqual } from './secret_bytes.js';

export type EcdsaCurve = 'P-256' | 'P-384' | 'P-521' | 'secp256k1';
export type DsaEncoding = 'der' | 'ieee-p1363';
/** Where k and k·G come from; both use OpenSSL for the multiplication (see the bench). */
export type NonceSource = 'openssl-keygen' | 'rejection-sampling';

export interface SignDigestOptions {
  readonly dsaEncoding?: DsaEncoding;
  readonly nonceSource?: NonceSource;
}
export interface VerifyDigestOptions {
  readonly dsaEncoding?: DsaEncoding;
}
/** signDigestBatched always takes its nonces from OpenSSL's key generation. */
export interface SignDigestBatchedOptions {
  readonly dsaEncoding?: DsaEncoding;
}

/** The longest digest accepted: SHA-512 / SHA3-512. Longer input is not a digest of an approved hash. */
export const ECDSA_DIGEST_BYTES_MAX = 64;
export const ECDSA_CURVES: readonly EcdsaCurve[] = ['P-256', 'P-384', 'P-521', 'secp256k1'];

interface CurveSpec {
  readonly opensslName: string;
  /** Contents of the curve's OBJECT IDENTIFIER (RFC 5480 §2.1.1.1; SEC 2 v2 §A.2), as in SPKI and SEC 1 DER. */
  readonly oid: Uint8Array;
  /** Field prime p, coefficient a, group order n (SEC 2 v2 §2.4.1, §2.4.2; FIPS 186-5 / SP 800-186 §3.2.1). */
  readonly p: bigint;
  readonly a: bigint;
  readonly n: bigint;
  readonly fieldBytes: number;
  readonly orderBits: number;
  readonly orderBytes: number;
}

const P521 = 2n ** 521n - 1n;
const CURVES: Readonly<Record<EcdsaCurve, CurveSpec>> = {
  'P-256': spec('prime256v1', '2a8648ce3d030107', 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn, -3n, 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n),
  'P-384': spec(
    'secp384r1',
    '2b81040022',
    0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    -3n,
    0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  ),
  'P-521': spec('secp521r1', '2b81040023', P521, -3n, 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n),
  secp256k1: spec('secp256k1', '2b8104000a', 2n ** 256n - 2n ** 32n - 977n, 0n, 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n),
};

function spec(opensslName: string, oidHex: string, p: bigint, a: bigint, n: bigint): CurveSpec {
  const orderBits = n.toString(2).length;
  return { opensslName, oid: new Uint8Array(Buffer.from(oidHex, 'hex')), p, a: mod(a, p), n, fieldBytes: Math.ceil(p.toString(2).length / 8), orderBits, orderBytes: Math.ceil(orderBits / 8) };
}

/** The curve parameters, for tests that cross-check them against another library. */
export function curveParameters(curve: EcdsaCurve): { p: bigint; a: bigint; n: bigint } {
  const c = curveSpec(curve);
  return { p: c.p, a: c.a, n: c.n };
}

/**
 * A new EC key pair as numbers, from OpenSSL's EC key generation: the private scalar `d` (big-endian
 * as node returns it, leading zeros left out; the caller wipes it) and the public point (SEC 1
 * uncompressed, as `generateKeys` returns it: asking `getPublicKey` would encode it again). A fresh
 * ECDH object per pair cost 9 µs beside the 12 µs of the generation (P-256).
 */
export function generateEcPair(curve: EcdsaCurve): { readonly d: Buffer; readonly point: Buffer } {
  const e = ecdhFor(generators, curveSpec(curve));
  const point = e.generateKeys();
  return { d: e.getPrivateKey(), point };
}

/** What a key's DER names the curve by and pads its scalar to: the OID's contents and the order's
 * length in bytes (crypto/ec_key_der.ts ecKeyPairDer). */
export function curveEncoding(curve: EcdsaCurve): { readonly oid: Uint8Array; readonly orderBytes: number } {
  const c = curveSpec(curve);
  return { oid: c.oid.slice(), orderBytes: c.orderBytes };
}

function curveSpec(curve: EcdsaCurve): CurveSpec {
  return (Object.hasOwn(CURVES, curve) ? CURVES[curve] : undefined) ?? fail('COFFER_CRYPTO_UNSUPPORTED_CURVE');
}

// ── arithmetic ──────────────────────────────────────────────────────────────────────────────

function mod(x: bigint, m: bigint): bigint {
  const r = x % m;
  return r < 0n ? r + m : r;
}

/** Bits of the leading "digit" in Lehmer's algorithm: cosequence values stay below 2^50, exact in doubles. */
const LEHMER_BITS = 48;

/** A double's bits, to read its exponent: the bit length of an integer without Math.log2. */
const lengthProbe = new DataView(new ArrayBuffer(8));

/**
 * The bit length of x ≥ 1 (x < 2^1023), or one more when Number(x) rounds up to the next power of
 * two; 0 or less for x = 0. Read from the exponent of Number(x) (IEEE 754 binary64: bits 52–62,
 * bias 1023): a few instructions, where Math.log2 was a visible share of an inversion.
 */
function approximateBitLength(x: bigint): number {
  lengthProbe.setFloat64(0, Number(x)); // big-endian: the sign and exponent lead
  return (lengthProbe.getUint16(0) >>> 4) - 1022;
}

/**
 * x⁻¹ mod m (m prime, x ≢ 0) by Lehmer's extended Euclid (Knuth, TAOCP vol. 2, §4.5.2,
 * Algorithm L): runs of quotients are found on the leading 48 bits in doubles, then applied to the
 * BigInts at once, which is 2× (P-256) to 4× (P-521) faster than the plain algorithm here.
 * Written without array destructuring and Math.log2: on P-256 that is about 18 % fewer
 * instructions per inversion (valgrind --tool=callgrind, 20,000 inversions) than the same
 * algorithm written with them. Variable time: called only on blinded or public values. The result
 * is checked before use.
 */
export function invertModPrime(x: bigint, m: bigint): bigint {
  const a = mod(x, m);
  let u = m; // invariant: x0·a ≡ u, x1·a ≡ v (mod m)
  let v = a;
  let x0 = 0n;
  let x1 = 1n;
  while (v !== 0n) {
    const bits = approximateBitLength(u); // u < 2^1023: m is at most 521 bits here
    const shift = BigInt(bits > LEHMER_BITS ? bits - LEHMER_BITS : 0);
    let uh = Number(u >> shift);
    let vh = Number(v >> shift);
    let A = 1;
    let B = 0;
    let C = 0;
    let D = 1;
    for (;;) {
      const vC = vh + C;
      const vD = vh + D;
      if (vC === 0 || vD === 0) break;
      const q = Math.floor((uh + A) / vC);
      if (q !== Math.floor((uh + B) / vD)) break; // the quotient is not yet certain
      const nextC = A - q * C;
      A = C;
      C = nextC;
      const nextD = B - q * D;
      B = D;
      D = nextD;
      const nextVh = uh - q * vh;
      uh = vh;
      vh = nextVh;
    }
    if (B === 0) {
      const q = u / v; // no certain quotient from the leading bits: one full-precision step
      const nextV = u - q * v;
      u = v;
      v = nextV;
      const nextX1 = x0 - q * x1;
      x0 = x1;
      x1 = nextX1;
    } else {
      const bA = BigInt(A);
      const bB = BigInt(B);
      const bC = BigInt(C);
      const bD = BigInt(D);
      const nextU = bA * u + bB * v;
      v = bC * u + bD * v;
      u = nextU;
      const nextX0 = bA * x0 + bB * x1;
      x1 = bC * x0 + bD * x1;
      x0 = nextX0;
    }
  }
  const inverse = mod(x0, m);
  assert(u === 1n && mod(inverse * a, m) === 1n, 'modular inverse of a nonzero value mod a prime');
  return inverse;
}

/** Big-endian bytes to an integer, 8 bytes at a time, without going through a string. */
function bytesToBigInt(bytes: Uint8Array): bigint {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const head = bytes.length % 8;
  let x = 0n;
  for (let i = 0; i < head; i++) x = (x << 8n) | BigInt(view.getUint8(i));
  for (let i = head; i < bytes.length; i += 8) x = (x << 64n) | view.getBigUint64(i, false);
  return x;
}

/** An integer as exactly `length` big-endian bytes (public values: signatures, verify scalars). */
function bigIntToBytes(x: bigint, length: number): Buffer {
  return Buffer.from(x.toString(16).padStart(length * 2, '0'), 'hex');
}

/** FIPS 186-5 §6.4.1 step 2 / SEC 1 §4.1.3 step 5: the leftmost orderBits bits of the digest. */
function digestToInt(c: CurveSpec, digest: Uint8Array): bigint {
  if (digest.length < 1 || digest.length > ECDSA_DIGEST_BYTES_MAX) fail('COFFER_CRYPTO_DIGEST_LENGTH');
  const e = bytesToBigInt(digest);
  const excess = digest.length * 8 - c.orderBits;
  return excess > 0 ? e >> BigInt(excess) : e;
}

/** A uniform scalar in [1, n−1] by rejection sampling over orderBits bits from `fill`. */
function randomScalar(c: CurveSpec, fill: (buf: Uint8Array) => void = randomFillSync): bigint {
  const buf = new Uint8Array(c.orderBytes);
  const topMask = 0xff >> (c.orderBytes * 8 - c.orderBits);
  try {
    for (;;) {
      fill(buf);
      buf[0] = (buf[0] ?? 0) & topMask;
      const x = bytesToBigInt(buf);
      if (x >= 1n && x < c.n) return x;
    }
  } finally {
    buf.fill(0);
  }
}

/**
 * CSPRNG bytes for blinding factors, drawn 2 KiB at a time: a randomFillSync call costs about as
 * much as a quarter of a P-256 signature's own arithmetic, and a pool makes it one call per ~60
 * signatures. Only blinding factors come from here, never a nonce: a pool holds its future output
 * in memory, and a blinding factor known in advance only weakens the timing protection of one
 * inversion, where a known nonce would give away the key. Bytes are wiped as they are taken.
 */
const BLINDING_POOL_BYTES = 2048;
const blindingPool = new Uint8Array(BLINDING_POOL_BYTES);
let blindingPoolAt = BLINDING_POOL_BYTES;

function fillFromBlindingPool(buf: Uint8Array): void {
  if (blindingPoolAt + buf.length > BLINDING_POOL_BYTES) {
    randomFillSync(blindingPool);
    blindingPoolAt = 0;
  }
  const taken = blindingPool.subarray(blindingPoolAt, blindingPoolAt + buf.length);
  buf.set(taken);
  taken.fill(0);
  blindingPoolAt += buf.length;
}

interface Point {
  readonly x: bigint;
  readonly y: bigint;
}

/** Affine P + Q on y² = x³ + ax + b over GF(p); null for the point at infinity. */
function addPoints(c: CurveSpec, P: Point, Q: Point): Point | null {
  const { p } = c;
  let lambda: bigint;
  if (P.x === Q.x) {
    if (mod(P.y + Q.y, p) === 0n) return null; // Q = −P
    lambda = mod((3n * P.x * P.x + c.a) * invertModPrime(2n * P.y, p), p); // doubling
  } else {
    lambda = mod((Q.y - P.y) * invertModPrime(Q.x - P.x, p), p);
  }
  const x = mod(lambda * lambda - P.x - Q.x, p);
  return { x, y: mod(lambda * (P.x - x) - P.y, p) };
}

// ── OpenSSL scalar multiplication ───────────────────────────────────────────────────────────

// One ECDH object per curve and purpose, reused: creating one costs as much as a multiplication.
// Single-threaded JS runs each call to completion, so sharing is safe. The signing object keeps the
// last nonce until the next signature, the generating object the last generated pair's scalar until
// the next generation (as any OpenSSL key object would until freed; OpenSSL overwrites it in place).
const signers = new Map<string, ECDH>();
const verifiers = new Map<string, ECDH>();
const generators = new Map<string, ECDH>();

function ecdhFor(pool: Map<string, ECDH>, c: CurveSpec): ECDH {
  let e = pool.get(c.opensslName);
  if (e === undefined) {
    e = createECDH(c.opensslName);
    pool.set(c.opensslName, e);
  }
  return e;
}

function decodePoint(c: CurveSpec, sec1: Uint8Array): Point {
  return { x: bytesToBigInt(sec1.subarray(1, 1 + c.fieldBytes)), y: bytesToBigInt(sec1.subarray(1 + c.fieldBytes)) };
}

function encodePoint(c: CurveSpec, P: Point): Buffer {
  return Buffer.concat([Buffer.of(4), bigIntToBytes(P.x, c.fieldBytes), bigIntToBytes(P.y, c.fieldBytes)]);
}

/** t·G for a public scalar t in [1, n−1]. */
function mulBase(c: CurveSpec, t: bigint): Point {
  const e = ecdhFor(verifiers, c);
  e.setPrivateKey(bigIntToBytes(t, c.orderBytes));
  return decodePoint(c, e.getPublicKey());
}

/** x(u·P) for a public scalar u in [1, n−1] and a point P on the curve. */
function mulX(c: CurveSpec, u: bigint, P: Point): bigint {
  const e = ecdhFor(verifiers, c);
  e.setPrivateKey(bigIntToBytes(u, c.orderBytes));
  return bytesToBigInt(e.computeSecret(encodePoint(c, P)));
}

interface Nonce {
  readonly k: bigint;
  /** x(k·G), not yet reduced mod n. */
  readonly x: bigint;
}

function nonceFromKeygen(c: CurveSpec): Nonce {
  const e = ecdhFor(signers, c);
  // generateKeys returns k·G already encoded: a second getPublicKey would encode it again.
  const kG = e.generateKeys();
  const kBytes = e.getPrivateKey();
  const k = bytesToBigInt(kBytes);
  kBytes.fill(0);
  return { k, x: bytesToBigInt(kG.subarray(1, 1 + c.fieldBytes)) };
}

function nonceFromScalar(c: CurveSpec, k: bigint): Nonce {
  const e = ecdhFor(signers, c);
  const kBytes = new Uint8Array(c.orderBytes);
  for (let i = c.orderBytes - 1, v = k; i >= 0; i--, v >>= 8n) kBytes[i] = Number(v & 0xffn);
  e.setPrivateKey(kBytes);
  kBytes.fill(0);
  return { k, x: bytesToBigInt(e.getPublicKey().subarray(1, 1 + c.fieldBytes)) };
}

// ── signatures ──────────────────────────────────────────────────────────────────────────────

interface Signature {
  readonly r: bigint;
  readonly s: bigint;
}

/** FIPS 186-5 §6.4.1 steps 7–11 for one nonce; undefined when r or s is 0 (retry with a new k). */
function signWithNonce(c: CurveSpec, d: bigint, e: bigint, nonce: Nonce): Signature | undefined {
  const { n } = c;
  const r = mod(nonce.x, n);
  if (r === 0n) return undefined;
  const b = randomScalar(c, fillFromBlindingPool); // blinding: the inversion sees b·k, independent of k
  const s = mod(invertModPrime(mod(b * nonce.k, n), n) * mod(b * e + mod(b * d, n) * r, n), n);
  return s === 0n ? undefined : { r, s };
}

function encodeSignature(c: CurveSpec, sig: Signature, encoding: DsaEncoding): Uint8Array {
  if (encoding === 'ieee-p1363') return new Uint8Array(Buffer.concat([bigIntToBytes(sig.r, c.orderBytes), bigIntToBytes(sig.s, c.orderBytes)]));
  const int = (x: bigint): Buffer => {
    const raw = bigIntToBytes(x, Math.ceil(x.toString(16).length / 2));
    const body = (raw[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.of(0), raw]) : raw;
    return Buffer.concat([Buffer.of(0x02, body.length), body]);
  };
  const content = Buffer.concat([int(sig.r), int(sig.s)]);
  const length = content.length < 0x80 ? Buffer.of(content.length) : Buffer.of(0x81, content.length);
  return new Uint8Array(Buffer.concat([Buffer.of(0x30), length, content]));
}

/** Strict DER (X.690 §10, minimal lengths and integers) or P1363; null when malformed. */
function decodeSignature(c: CurveSpec, sig: Uint8Array, encoding: DsaEncoding): Signature | null {
  if (encoding === 'ieee-p1363') {
    if (sig.length !== 2 * c.orderBytes) return null;
    return { r: bytesToBigInt(sig.subarray(0, c.orderBytes)), s: bytesToBigInt(sig.subarray(c.orderBytes)) };
  }
  let at = 0;
  const byte = (): number => (at < sig.length ? (sig[at++] ?? -1) : -1);
  const length = (): number => {
    const first = byte();
    if (first < 0x80) return first;
    if (first !== 0x81) return -1; // signatures here are < 256 bytes
    const long = byte();
    return long >= 0x80 ? long : -1; // the long form only when the short one cannot hold it
  };
  const integer = (): bigint | null => {
    if (byte() !== 0x02) return null;
    const len = length();
    if (len < 1 || at + len > sig.length || len > c.orderBytes + 1) return null;
    const body = sig.subarray(at, at + len);
    at += len;
    if (((body[0] ?? 0) & 0x80) !== 0) return null; // negative
    if (len > 1 && body[0] === 0 && ((body[1] ?? 0) & 0x80) === 0) return null; // not minimal
    return bytesToBigInt(body);
  };
  if (byte() !== 0x30 || length() !== sig.length - at) return null;
  const r = integer();
  const s = integer();
  return r === null || s === null || at !== sig.length ? null : { r, s };
}

// ── keys ────────────────────────────────────────────────────────────────────────────────────

// Keys are read from OpenSSL as DER only. Node 20 deadlocks when a garbage collection runs while a
// key's mutex is held and frees the generateKeyPairSync job that shares that mutex; a JWK export
// and the first asymmetricKeyDetails read allocate JS objects under the lock, so either can hang
// the process on a freshly generated key. DER exports allocate after the lock is released, and the
// curve is read from the DER's OID instead of asymmetricKeyDetails.

/** Public points are public: kept per KeyObject (weakly, so they go with the key) to skip the export. */
const publicPoints = new WeakMap<KeyObject, { readonly curve: string; readonly Q: Point }>();

function contentIs(der: Uint8Array, e: Tlv, expected: Uint8Array): boolean {
  return constantTimeEqual(der.subarray(e.start, e.end), expected);
}

/**
 * The private scalar d of an EC private KeyObject, as a BigInt for this one signature. It comes
 * from the key's SEC 1 DER (RFC 5915 §3: SEQUENCE { version, privateKey OCTET STRING,
 * [0] namedCurve OID, ... }), which is wiped at once. Nothing is kept: the BigInt is garbage once
 * the signature is made (docs/threat-model.md, "What stays in memory").
 */
function keyObjectScalar(c: CurveSpec, key: KeyObject): bigint {
  if (key.type !== 'private') fail('COFFER_CRYPTO_KEY_INVALID');
  let der: Buffer;
  try {
    der = key.export({ format: 'der', type: 'sec1' });
  } catch {
    return fail('COFFER_CRYPTO_KEY_INVALID'); // not an EC key (RSA, Ed25519, ...)
  }
  try {
    const seq = element(der, 0, 0x30);
    const version = element(der, seq.start, 0x02);
    const octets = element(der, version.end, 0x04);
    const parameters = element(der, octets.end, 0xa0);
    if (!contentIs(der, element(der, parameters.start, 0x06), c.oid)) fail('COFFER_CRYPTO_KEY_INVALID'); // another curve
    return bytesToBigInt(der.subarray(octets.start, octets.end));
  } finally {
    der.fill(0);
  }
}

/**
 * The private scalar d of an EC private key held as PKCS#8 DER (RFC 5208 §5: SEQUENCE { version,
 * AlgorithmIdentifier { id-ecPublicKey, curve OID }, privateKey OCTET STRING }, the octets being
 * RFC 5915's ECPrivateKey), copied into SecretBytes for the caller to destroy. For a caller that
 * already holds the key's bytes in memory it owns (the device's object index): reading d there
 * costs a few hundred nanoseconds where exporting it from a KeyObject costs OpenSSL's encoder. d must
 * be the order's byte length, as OpenSSL writes it; any other key or form is COFFER_CRYPTO_KEY_INVALID.
 */
export function ecPrivateScalarFromPkcs8(curve: EcdsaCurve, pkcs8: Uint8Array): SecretBytes {
  const c = curveSpec(curve);
  const info = element(pkcs8, 0, 0x30);
  const version = element(pkcs8, info.start, 0x02);
  const algorithm = element(pkcs8, version.end, 0x30);
  const algorithmOid = element(pkcs8, algorithm.start, 0x06);
  if (!contentIs(pkcs8, algorithmOid, EC_PUBLIC_KEY_OID) || !contentIs(pkcs8, element(pkcs8, algorithmOid.end, 0x06), c.oid)) fail('COFFER_CRYPTO_KEY_INVALID');
  const octets = element(pkcs8, algorithm.end, 0x04);
  const ecPrivateKey = element(pkcs8, octets.start, 0x30);
  const d = element(pkcs8, element(pkcs8, ecPrivateKey.start, 0x02).end, 0x04);
  if (d.end - d.start !== c.orderBytes) fail('COFFER_CRYPTO_KEY_INVALID');
  return SecretBytes.copyOf(pkcs8.subarray(d.start, d.end));
}

function privateScalar(c: CurveSpec, key: KeyObject | SecretBytes): bigint {
  assert(key instanceof SecretBytes || key instanceof KeyObject, 'a private key is a KeyObject or SecretBytes, never plain bytes');
  const d = key instanceof SecretBytes ? key.use((b) => (b.length === c.orderBytes ? bytesToBigInt(b) : 0n)) : keyObjectScalar(c, key);
  return d >= 1n && d < c.n ? d : fail('COFFER_CRYPTO_KEY_INVALID');
}

/** Q from an EC KeyObject's SPKI DER: SEQUENCE { SEQUENCE { id-ecPublicKey, curve OID }, BIT STRING point }. */
function keyObjectPoint(c: CurveSpec, key: KeyObject): Point {
  let der: Buffer;
  try {
    der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  } catch {
    return fail('COFFER_CRYPTO_KEY_INVALID'); // a secret key
  }
  const seq = element(der, 0, 0x30);
  const algorithm = element(der, seq.start, 0x30);
  const algorithmOid = element(der, algorithm.start, 0x06);
  const curveOid = element(der, algorithmOid.end, 0x06);
  const bits = element(der, algorithm.end, 0x03);
  if (!contentIs(der, algorithmOid, EC_PUBLIC_KEY_OID) || !contentIs(der, curveOid, c.oid) || der[bits.start] !== 0) fail('COFFER_CRYPTO_KEY_INVALID');
  return sec1Point(c, der.subarray(bits.start + 1, bits.end));
}

/** A SEC 1 point (uncompressed or compressed) on the curve; anything else is COFFER_CRYPTO_KEY_INVALID. */
function sec1Point(c: CurveSpec, sec1: Uint8Array): Point {
  let point: Buffer;
  try {
    // convertKey decodes (and decompresses) the SEC1 point and refuses one off the curve...
    point = ECDH.convertKey(sec1, c.opensslName, undefined, undefined, 'uncompressed') as Buffer;
  } catch {
    return fail('COFFER_CRYPTO_KEY_INVALID');
  }
  // ...but passes the point at infinity (the single byte 0x00) through: not a public key.
  if (point.length !== 1 + 2 * c.fieldBytes || point[0] !== 0x04) fail('COFFER_CRYPTO_KEY_INVALID');
  return decodePoint(c, point);
}

function publicPoint(c: CurveSpec, key: KeyObject | Uint8Array): Point {
  if (!(key instanceof KeyObject)) return key[0] === 0x30 ? publicPoint(c, parseSpki(key)) : sec1Point(c, key);
  const cached = publicPoints.get(key);
  if (cached !== undefined) return cached.curve === c.opensslName ? cached.Q : fail('COFFER_CRYPTO_KEY_INVALID');
  const Q = keyObjectPoint(c, key);
  publicPoints.set(key, { curve: c.opensslName, Q });
  return Q;
}

function parseSpki(der: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(der.buffer, der.byteOffset, der.length), format: 'der', type: 'spki' });
  } catch {
    return fail('COFFER_CRYPTO_KEY_INVALID');
  }
}

// ── public API ──────────────────────────────────────────────────────────────────────────────

/**
 * Signs a digest with raw ECDSA (FIPS 186-5 §6.4.1). `privateKey` is a node EC private KeyObject
 * on `curve`, or a SecretBytes holding the scalar d as exactly the order's byte length,
 * big-endian, 1 ≤ d < n (the caller destroys it).
 */
export function signDigest(curve: EcdsaCurve, privateKey: KeyObject | SecretBytes, digest: Uint8Array, options: SignDigestOptions = {}): Uint8Array {
  const c = curveSpec(curve);
  const e = digestToInt(c, digest);
  const d = privateScalar(c, privateKey);
  return encodeSignature(c, signScalars(c, d, e, options.nonceSource ?? 'openssl-keygen'), options.dsaEncoding ?? 'der');
}

/** FIPS 186-5 §6.4.1 steps 3–11 for one signature: new nonces until r and s are both nonzero. */
function signScalars(c: CurveSpec, d: bigint, e: bigint, source: NonceSource): Signature {
  for (;;) {
    const nonce = source === 'openssl-keygen' ? nonceFromKeygen(c) : nonceFromScalar(c, randomScalar(c));
    const sig = signWithNonce(c, d, e, nonce);
    if (sig !== undefined) return sig;
  }
}

// ── the signatures of one turn, together ────────────────────────────────────────────────────

/**
 * Signatures asked for with signDigestBatched in one turn of the event loop share their modular
 * inversion (Montgomery's trick, "Speeding the Pollard and elliptic curve methods of
 * factorization", 1987, §10.3.1): one inversion of the product of the blinded nonces, then three
 * multiplications per signature, where each signature would make an inversion of its own. At most
 * this many share one: past it the saving per signature no longer grows, and the queue (which holds
 * each d as a BigInt until its batch is signed) stays bounded.
 */
export const ECDSA_BATCH_SIGNATURES_MAX = 64;

interface Queued {
  readonly c: CurveSpec;
  readonly d: bigint;
  readonly e: bigint;
  readonly encoding: DsaEncoding;
  readonly resolve: (signature: Uint8Array) => void;
  readonly reject: (error: unknown) => void;
}

let queued: Queued[] = [];

/**
 * signDigest, settled at the end of the current turn (a microtask): every signature asked for
 * before then is computed in one batch, with one modular inversion per curve. The key and the
 * digest are read now, so the caller may destroy its SecretBytes as soon as this returns; what the
 * promise holds until the batch runs is d and e as BigInts, as signDigest holds them while it
 * runs. A refused key or digest rejects the promise with signDigest's error. Nonces always come
 * from OpenSSL's key generation. Each signature keeps its own random blinding factor, so the
 * inversion sees only a product of blinded nonces.
 */
export function signDigestBatched(curve: EcdsaCurve, privateKey: KeyObject | SecretBytes, digest: Uint8Array, options: SignDigestBatchedOptions = {}): Promise<Uint8Array> {
  let c: CurveSpec;
  let e: bigint;
  let d: bigint;
  try {
    c = curveSpec(curve);
    e = digestToInt(c, digest);
    d = privateScalar(c, privateKey);
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  const encoding = options.dsaEncoding ?? 'der';
  return new Promise((resolve, reject) => {
    if (queued.length === 0) queueMicrotask(signQueued);
    queued.push({ c, d, e, encoding, resolve, reject });
    if (queued.length >= ECDSA_BATCH_SIGNATURES_MAX) signQueued(); // a full batch goes at once
  });
}

function signQueued(): void {
  const items = queued;
  if (items.length === 0) return;
  queued = [];
  const byCurve = new Map<CurveSpec, Queued[]>();
  for (const item of items) {
    const group = byCurve.get(item.c);
    if (group === undefined) byCurve.set(item.c, [item]);
    else group.push(item);
  }
  for (const [c, group] of byCurve) {
    try {
      signTogether(c, group);
    } catch (error) {
      for (const item of group) item.reject(error); // a settled one ignores it
    }
  }
}

/** FIPS 186-5 §6.4.1 for every item, with one inversion of Π bᵢ·kᵢ for all of them. */
function signTogether(c: CurveSpec, items: readonly Queued[]): void {
  const { n } = c;
  const count = items.length;
  const r: bigint[] = [];
  const b: bigint[] = [];
  const blinded: bigint[] = []; // bᵢ·kᵢ mod n
  const prefix: bigint[] = []; // b₀k₀ ⋯ bᵢkᵢ mod n
  for (let i = 0; i < count; i++) {
    let nonce: Nonce;
    let ri: bigint;
    do {
      nonce = nonceFromKeygen(c);
      ri = mod(nonce.x, n);
    } while (ri === 0n);
    const bi = randomScalar(c, fillFromBlindingPool); // blinding: independent of k, as in signWithNonce
    const wi = mod(bi * nonce.k, n); // nonzero: n is prime and bᵢ, kᵢ are in [1, n−1]
    r.push(ri);
    b.push(bi);
    blinded.push(wi);
    prefix.push(i === 0 ? wi : mod((prefix[i - 1] ?? 1n) * wi, n));
  }
  let inverse = invertModPrime(prefix[count - 1] ?? 0n, n); // (b₀k₀ ⋯ bᵢkᵢ)⁻¹, i from the last down
  for (let i = count - 1; i >= 0; i--) {
    const item = items[i] as Queued;
    const ri = r[i] ?? 0n;
    const bi = b[i] ?? 0n;
    const wInverse = i === 0 ? inverse : mod(inverse * (prefix[i - 1] ?? 0n), n); // (bᵢkᵢ)⁻¹
    inverse = mod(inverse * (blinded[i] ?? 0n), n);
    const s = mod(wInverse * mod(bi * item.e + mod(bi * item.d, n) * ri, n), n);
    // s = 0 (probability about 1/n): this one signs again on its own with a new nonce.
    const sig = s === 0n ? signScalars(c, item.d, item.e, 'openssl-keygen') : { r: ri, s };
    item.resolve(encodeSignature(c, sig, item.encoding));
  }
}

/**
 * Signs with a caller-chosen nonce k. For known-answer tests only (RFC 6979 §A.2 gives k): a
 * repeated or guessable k reveals the private key. Not exported from the crypto index.
 */
export function signDigestWithNonceForTest(curve: EcdsaCurve, privateKey: KeyObject | SecretBytes, digest: Uint8Array, k: bigint, options: SignDigestOptions = {}): Uint8Array {
  const c = curveSpec(curve);
  if (k < 1n || k >= c.n) fail('COFFER_CRYPTO_INPUT_LENGTH');
  const sig = signWithNonce(c, privateScalar(c, privateKey), digestToInt(c, digest), nonceFromScalar(c, k));
  return sig === undefined ? fail('COFFER_CRYPTO_INPUT_LENGTH') : encodeSignature(c, sig, options.dsaEncoding ?? 'der');
}

/**
 * Verifies a raw ECDSA signature over a digest (FIPS 186-5 §6.4.2). `publicKey` is an EC
 * KeyObject (public, or private for its public half), SPKI DER, or a SEC1 point (compressed or
 * not). Returns false for a wrong or malformed signature; throws only for an unusable key or digest.
 */
export function verifyDigest(curve: EcdsaCurve, publicKey: KeyObject | Uint8Array, digest: Uint8Array, signature: Uint8Array, options: VerifyDigestOptions = {}): boolean {
  const c = curveSpec(curve);
  const e = digestToInt(c, digest);
  const Q = publicPoint(c, publicKey);
  const sig = decodeSignature(c, signature, options.dsaEncoding ?? 'der');
  if (sig === null) return false;
  const { r, s } = sig;
  const { n } = c;
  if (r < 1n || r >= n || s < 1n || s >= n) return false; // §6.4.2 step 1
  // One inversion serves both: (r·s)⁻¹·r = s⁻¹ and (r·s)⁻¹·s = r⁻¹.
  const rsInv = invertModPrime(mod(r * s, n), n);
  const u2 = mod(r * mod(r * rsInv, n), n); // r·s⁻¹
  const t = mod(mod(e, n) * mod(s * rsInv, n), n); // u1/u2 = e·r⁻¹
  // R = u1·G + u2·Q = u2·(Q + t·G).
  const P = t === 0n ? Q : addPoints(c, Q, mulBase(c, t));
  if (P === null) return false; // R is the point at infinity
  return mod(mulX(c, u2, P), n) === r;
}
