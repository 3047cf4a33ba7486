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

/** SEQUENCE { id-ecPublicKey, curve OID }, the AlgorithmIdentifier of PKCS#8 and SPKI. */
function algorithmIdentifier(der: Uint8Array, curveOid: Tlv): Uint8Array {
  const oid = der.subarray(curveOid.at, curveOid.end);
  const inner = 2 + EC_PUBLIC_KEY_OID.length + oid.length;
  return Uint8Array.from([...header(0x30, inner), 0x06, EC_PUBLIC_KEY_OID.length, ...EC_PUBLIC_KEY_OID, ...oid]);
}

/**
 * PKCS#8 DER of an EC private KeyObject, equal to `key.export({ format: 'der', type: 'pkcs8' })`,
 * at a fraction of its cost (module header). Any other key: OpenSSL's export. The caller wipes it.
 */
export function ecPrivateKeyPkcs8(key: KeyObject): Uint8Array {
  const built = withSec1(key, (der, p) => {
    const algorithm = algorithmIdentifier(der, p.curveOid);
    const version = der.subarray(p.version.at, p.version.end);
    const privateKey = der.subarray(p.privateKey.at, p.privateKey.end);
    const publicKey = der.subarray(p.publicKeyField.at, p.publicKeyField.end);
    const ecLength = version.length + privateKey.length + publicKey.length;
    const ecHeader = header(0x30, ecLength);
    const octetsHeader = header(0x04, ecHeader.length + ecLength);
    const innerLength = 3 + algorithm.length + octetsHeader.length + ecHeader.length + ecLength;
    const outerHeader = header(0x30, innerLength);
    const out = new Uint8Array(outerHeader.length + innerLength);
    let at = 0;
    for (const part of [outerHeader, [0x02, 0x01, 0x00], algorithm, octetsHeader, ecHeader, version, privateKey, publicKey]) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  });
  return built ?? new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
}

/**
 * SPKI DER of the public half of an EC private KeyObject, equal to OpenSSL's SPKI export of its
 * public key; undefined when the key is not EC or its SEC 1 form holds no public key.
 */
export function ecPublicSpkiOfPrivate(key: KeyObject): Uint8Array | undefined {
  return withSec1(key, (der, p) => {
    const algorithm = algorithmIdentifier(der, p.curveOid);
    const point = der.subarray(p.point.at, p.point.end);
    const outerHeader = header(0x30, algorithm.length + point.length);
    const out = new Uint8Array(outerHeader.length + algorithm.length + point.length);
    out.set(outerHeader, 0);
    out.set(algorithm, outerHeader.length);
    out.set(point, outerHeader.length + algorithm.length);
    return out;
  });
}
