// EC keys as DER without OpenSSL's encoder framework (docs/crypto.md "EC key encodings"). Node 20's
// PKCS#8 and SPKI exports of an EC KeyObject go through OpenSSL 3's OSSL_ENCODER, which looks its
// encoder up among the providers at every call: about 57 µs for PKCS#8 and 107 µs for SPKI on the
// 2-core reference machine, against about 4–18 µs for the SEC 1 export (`type: 'sec1'`, OpenSSL's
// i2d_ECPrivateKey), which holds everything both need (RFC 5915 §3):
//
//   ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING,
//                               parameters [0] namedCurve OID, publicKey [1] BIT STRING }
//
// From it this module writes, byte for byte as OpenSSL's own exports:
//   PKCS#8 (RFC 5208 §5, RFC 5915 §2): SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey, curve OID },
//          OCTET STRING { ECPrivateKey without [0] } } — OpenSSL leaves the parameters out of the
//          inner ECPrivateKey, since the AlgorithmIdentifier names the curve;
//   SPKI   (RFC 5480 §2): SEQUENCE { SEQUENCE { id-ecPublicKey, curve OID }, BIT STRING point }.
// A key whose SEC 1 form is anything else (explicit curve parameters, no public key) takes
// OpenSSL's export instead. The SEC 1 bytes are wiped before return; the PKCS#8 is the caller's
// to wipe. Only DER is read from a KeyObject (never JWK): see ecdsa_raw.ts "keys" for why.

import type { KeyObject } from 'node:crypto';
import { fail } from '../errors.js';

/** id-ecPublicKey (RFC 5480 §2.1.1), the algorithm of every EC SubjectPublicKeyInfo and PKCS#8. */
export const EC_PUBLIC_KEY_OID = new Uint8Array([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);

/** One DER element: where it begins (its tag), where its contents start and where it ends. */
export interface Tlv {
  readonly at: number;
  readonly start: number;
  readonly end: number;
}

/**
 * The element at `at`, which must carry `tag`: definite short or 1–2-byte long lengths, all within
 * `der`; else COFFER_CRYPTO_KEY_INVALID. OpenSSL's own exports always are.
 */
export function derElement(der: Uint8Array, at: number, tag: number): Tlv {
  const first = der[at + 1] ?? 0xff;
  if (der[at] !== tag || !(first < 0x80 || first === 0x81 || first === 0x82)) return fail('COFFER_CRYPTO_KEY_INVALID');
  const longBytes = first < 0x80 ? 0 : first - 0x80;
  let length = first < 0x80 ? first : 0;
  for (let i = 0; i < longBytes; i++) length = length * 256 + (der[at + 2 + i] ?? 0);
  const start = at + 2 + longBytes;
  return start + length <= der.length ? { at, start, end: start + length } : fail('COFFER_CRYPTO_KEY_INVALID');
}

/** The parts of a SEC 1 ECPrivateKey this module copies, as element positions in it. */
interface Sec1Parts {
  readonly version: Tlv;
  readonly privateKey: Tlv;
  readonly curveOid: Tlv;
  /** The whole [1] element (tag, length and the BIT STRING inside). */
  readonly publicKeyField: Tlv;
  readonly point: Tlv;
}

/** Reads OpenSSL's SEC 1 export; undefined for any other shape (the caller falls back to OpenSSL). */
function sec1Parts(der: Uint8Array): Sec1Parts | undefined {
  try {
    const seq = derElement(der, 0, 0x30);
    const version = derElement(der, seq.start, 0x02);
    const privateKey = derElement(der, version.end, 0x04);
    const parameters = derElement(der, privateKey.end, 0xa0);
    const curveOid = derElement(der, parameters.start, 0x06);
    const publicKeyField = derElement(der, parameters.end, 0xa1);
    const point = derElement(der, publicKeyField.start, 0x03);
    const wellFormed = seq.end === der.length && curveOid.end === parameters.end && publicKeyField.end === seq.end && point.end === publicKeyField.end;
    return wellFormed && der[point.start] === 0 ? { version, privateKey, curveOid, publicKeyField, point } : undefined;
  } catch {
    return undefined;
  }
}

/** The SEC 1 export of an EC private KeyObject (wiped by `use`'s caller), or undefined for another key. */
function withSec1<T>(key: KeyObject, use: (der: Buffer, parts: Sec1Parts) => T): T | undefined {
  if (key.type !== 'private') return undefined;
  let der: Buffer;
  try {
    der = key.export({ format: 'der', type: 'sec1' });
  } catch {
    return undefined; // not an EC key
  }
  try {
    const parts = sec1Parts(der);
    return parts === undefined ? undefined : use(der, parts);
  } finally {
    der.fill(0);
  }
}

/** A DER header (tag and definite length) for `length` bytes of contents. */
function header(tag: number, length: number): number[] {
  if (length < 0x80) return [tag, length];
  if (length < 0x100) return [tag, 0x81, length];
  return [tag, 0x82, length >> 8, length & 0xff];
}

/** SEQUENCE { id-ecPublicKey, curve OID }, the AlgorithmIdentifier of PKCS#8 and SPKI; `oid`: the
 * curve's whole OBJECT IDENTIFIER element (tag, length, contents). */
function algorithmIdentifier(oid: Uint8Array): Uint8Array {
  const inner = 2 + EC_PUBLIC_KEY_OID.length + oid.length;
  return Uint8Array.from([...header(0x30, inner), 0x06, EC_PUBLIC_KEY_OID.length, ...EC_PUBLIC_KEY_OID, ...oid]);
}

/** `parts` one after another in a new array. */
function joined(parts: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** PKCS#8 as OpenSSL writes it, from the elements of the inner ECPrivateKey (whole TLVs: version,
 * privateKey OCTET STRING, the [1] publicKey field) and the curve's OID element. */
function pkcs8Of(oid: Uint8Array, version: Uint8Array, privateKey: Uint8Array, publicKeyField: Uint8Array): Uint8Array {
  const algorithm = algorithmIdentifier(oid);
  const ecLength = version.length + privateKey.length + publicKeyField.length;
  const ecHeader = header(0x30, ecLength);
  const octetsHeader = header(0x04, ecHeader.length + ecLength);
  const innerLength = 3 + algorithm.length + octetsHeader.length + ecHeader.length + ecLength;
  return joined([header(0x30, innerLength), [0x02, 0x01, 0x00], algorithm, octetsHeader, ecHeader, version, privateKey, publicKeyField]);
}

/** SPKI from the curve's OID element and the public key's BIT STRING element. */
function spkiOf(oid: Uint8Array, point: Uint8Array): Uint8Array {
  const algorithm = algorithmIdentifier(oid);
  return joined([header(0x30, algorithm.length + point.length), algorithm, point]);
}

/**
 * PKCS#8 DER of an EC private KeyObject, equal to `key.export({ format: 'der', type: 'pkcs8' })`,
 * at a fraction of its cost (module header). Any other key: OpenSSL's export. The caller wipes it.
 */
export function ecPrivateKeyPkcs8(key: KeyObject): Uint8Array {
  const built = withSec1(key, (der, p) => pkcs8Of(
    der.subarray(p.curveOid.at, p.curveOid.end),
    der.subarray(p.version.at, p.version.end),
    der.subarray(p.privateKey.at, p.privateKey.end),
    der.subarray(p.publicKeyField.at, p.publicKeyField.end),
  ));
  return built ?? new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
}

/**
 * PKCS#8 and SPKI DER of an EC key pair given as numbers — the private scalar `d` (big-endian, at
 * most `orderBytes` long; leading zeros may be missing, as node's ECDH.getPrivateKey leaves them out)
 * and the public point (SEC 1 uncompressed: 04 ‖ x ‖ y) — byte for byte as OpenSSL exports the same
 * key: d padded to the order's length (RFC 5915 §3), the curve named in the AlgorithmIdentifier
 * only. `curveOid`: the OID's contents (RFC 5480 §2.1.1.1). The caller wipes the PKCS#8 and `d`.
 */
export function ecKeyPairDer(curveOid: Uint8Array, orderBytes: number, d: Uint8Array, point: Uint8Array): { pkcs8: Uint8Array; spki: Uint8Array } {
  if (d.length === 0 || d.length > orderBytes || point[0] !== 0x04) fail('COFFER_CRYPTO_KEY_INVALID');
  const oid = joined([header(0x06, curveOid.length), curveOid]);
  const privateKey = new Uint8Array(2 + orderBytes);
  privateKey.set(header(0x04, orderBytes), 0);
  privateKey.set(d, 2 + orderBytes - d.length);
  const bitString = joined([header(0x03, point.length + 1), [0], point]);
  const publicKeyField = joined([header(0xa1, bitString.length), bitString]);
  try {
    return { pkcs8: pkcs8Of(oid, Uint8Array.of(0x02, 0x01, 0x01), privateKey, publicKeyField), spki: spkiOf(oid, bitString) };
  } finally {
    privateKey.fill(0);
  }
}

/**
 * The SEC 1 ECPrivateKey of an EC PKCS#8 (the inner ECPrivateKey with the curve put back as its [0]
 * parameters), which OpenSSL parses several times faster than the PKCS#8 itself: node's PKCS#8
 * import looks its decoder up among the providers (about 400 µs for P-256 on the reference machine,
 * against about 110 µs for SEC 1). Undefined for anything but the shape `ecKeyPairDer` and OpenSSL
 * write; the caller then imports the PKCS#8. The caller wipes the result.
 */
export function ecSec1OfPkcs8(pkcs8: Uint8Array): Uint8Array | undefined {
  try {
    const outer = derElement(pkcs8, 0, 0x30);
    const version = derElement(pkcs8, outer.start, 0x02);
    const algorithm = derElement(pkcs8, version.end, 0x30);
    const algorithmOid = derElement(pkcs8, algorithm.start, 0x06);
    const curveOid = derElement(pkcs8, algorithmOid.end, 0x06);
    const octets = derElement(pkcs8, algorithm.end, 0x04);
    const ec = derElement(pkcs8, octets.start, 0x30);
    const ecVersion = derElement(pkcs8, ec.start, 0x02);
    const privateKey = derElement(pkcs8, ecVersion.end, 0x04);
    const publicKeyField = derElement(pkcs8, privateKey.end, 0xa1);
    const isEc = Buffer.compare(pkcs8.subarray(algorithmOid.start, algorithmOid.end), EC_PUBLIC_KEY_OID) === 0;
    const wellFormed = outer.end === pkcs8.length && curveOid.end === algorithm.end && octets.end === outer.end && ec.end === octets.end && publicKeyField.end === ec.end;
    if (!isEc || !wellFormed) return undefined;
    const oid = pkcs8.subarray(curveOid.at, curveOid.end);
    const parameters = joined([header(0xa0, oid.length), oid]);
    const body = [pkcs8.subarray(ecVersion.at, ecVersion.end), pkcs8.subarray(privateKey.at, privateKey.end), parameters, pkcs8.subarray(publicKeyField.at, publicKeyField.end)];
    return joined([header(0x30, body.reduce((n, p) => n + p.length, 0)), ...body]);
  } catch {
    return undefined;
  }
}

/**
 * SPKI DER of the public half of an EC private KeyObject, equal to OpenSSL's SPKI export of its
 * public key; undefined when the key is not EC or its SEC 1 form holds no public key.
 */
export function ecPublicSpkiOfPrivate(key: KeyObject): Uint8Array | undefined {
  return withSec1(key, (der, p) => spkiOf(der.subarray(p.curveOid.at, p.curveOid.end), der.subarray(p.point.at, p.point.end)));
}
