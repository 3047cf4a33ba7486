// Just enough X.509 (RFC 5280 §4.1) to check, in the tab, that one certificate is signed by
// another: a DER walker for the fields a signature check needs — the signed bytes
// (tbsCertificate), the signature algorithm and value, the issuer and subject names, validity and
// the subject public key — and WebCrypto to verify. ECDSA (P-256/384/521, RFC 5758 §3.2, the
// signature's DER SEQUENCE{r,s} turned into WebCrypto's r‖s) and RSASSA-PKCS1-v1_5 (RFC 8017
// §8.2) with SHA-256/384/512. Anything else is reported as not checkable, never as verified.
// Every length is checked against what is left of the input before it is used.

/** Largest certificate accepted: the API caps each at 20,000 characters of PEM. */
const CERTIFICATE_BYTES_MAX = 16_384;

export interface Certificate {
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly spki: Uint8Array;
  /** The public key's algorithm OID and, for EC, its curve OID. */
  readonly keyAlgorithm: string;
  readonly keyCurve: string | undefined;
  readonly der: Uint8Array;
}

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export class CertificateError extends Error {}

function tlv(der: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new CertificateError('truncated DER');
  const tag = der[at] as number;
  let length = der[at + 1] as number;
  let contentStart = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 3 || contentStart + count > limit) throw new CertificateError('bad DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[contentStart + i] as number);
    contentStart += count;
  }
  if (contentStart + length > limit) throw new CertificateError('DER length past the end');
  return { tag, start: at, contentStart, end: contentStart + length };
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end;) {
    const t = tlv(der, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

function oid(der: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.contentStart) throw new CertificateError('expected an OID');
  const first = der[t.contentStart] as number;
  const parts = [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40];
  let value = 0;
  for (let i = t.contentStart + 1; i < t.end; i++) {
    const b = der[i] as number;
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

function text(der: Uint8Array, t: Tlv): string {
  return new TextDecoder().decode(der.subarray(t.contentStart, t.end));
}

function at<T>(list: readonly T[], i: number, what: string): T {
  const v = list[i];
  if (v === undefined) throw new CertificateError(`missing ${what}`);
  return v;
}

export function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  if (m === null) throw new CertificateError('not a PEM certificate');
  const binary = atob((m[1] ?? '').replace(/\s+/g, ''));
  if (binary.length > CERTIFICATE_BYTES_MAX) throw new CertificateError('certificate too large');
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function parseCertificate(pem: string): Certificate {
  const der = pemToDer(pem);
  const outer = tlv(der, 0, der.length);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw new CertificateError('not one DER SEQUENCE');
  const [tbsT, algT, sigT] = children(der, outer);
  if (tbsT === undefined || algT === undefined || sigT === undefined || sigT.tag !== 0x03) throw new CertificateError('not a certificate');
  const tbs = children(der, tbsT);
  const offset = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const validity = children(der, at(tbs, offset + 3, 'validity'));
  const spkiT = at(tbs, offset + 5, 'subject public key');
  const [keyAlgT] = children(der, spkiT);
  const keyAlg = children(der, keyAlgT ?? spkiT);
  const curveT = keyAlg[1];
  return {
    tbs: der.subarray(tbsT.start, tbsT.end),
    signatureAlgorithm: oid(der, at(children(der, algT), 0, 'signature algorithm')),
    // A BIT STRING's first content byte counts unused bits (0 for signatures).
    signature: der.subarray(sigT.contentStart + 1, sigT.end),
    issuer: der.subarray(at(tbs, offset + 2, 'issuer').start, at(tbs, offset + 2, 'issuer').end),
    subject: der.subarray(at(tbs, offset + 4, 'subject').start, at(tbs, offset + 4, 'subject').end),
    notBefore: text(der, at(validity, 0, 'notBefore')),
    notAfter: text(der, at(validity, 1, 'notAfter')),
    spki: der.subarray(spkiT.start, spkiT.end),
    keyAlgorithm: oid(der, at(keyAlg, 0, 'key algorithm')),
    keyCurve: curveT?.tag === 0x06 ? oid(der, curveT) : undefined,
    der,
  };
}

const HASHES: Readonly<Record<string, { readonly hash: string; readonly kind: 'ECDSA' | 'RSA' }>> = {
  '1.2.840.10045.4.3.2': { hash: 'SHA-256', kind: 'ECDSA' },
  '1.2.840.10045.4.3.3': { hash: 'SHA-384', kind: 'ECDSA' },
  '1.2.840.10045.4.3.4': { hash: 'SHA-512', kind: 'ECDSA' },
  '1.2.840.113549.1.1.11': { hash: 'SHA-256', kind: 'RSA' },
  '1.2.840.113549.1.1.12': { hash: 'SHA-384', kind: 'RSA' },
  '1.2.840.113549.1.1.13': { hash: 'SHA-512', kind: 'RSA' },
};
const CURVES: Readonly<Record<string, { readonly name: string; readonly bytes: number }>> = {
  '1.2.840.10045.3.1.7': { name: 'P-256', bytes: 32 },
  '1.3.132.0.34': { name: 'P-384', bytes: 48 },
  '1.3.132.0.35': { name: 'P-521', bytes: 66 },
};

/** DER SEQUENCE { INTEGER r, INTEGER s } → r ‖ s, each left-padded to the curve's size. */
function ecdsaRaw(signature: Uint8Array, size: number): Uint8Array {
  const seq = tlv(signature, 0, signature.length);
  const [r, s] = children(signature, seq);
  if (r === undefined || s === undefined) throw new CertificateError('bad ECDSA signature');
  const out = new Uint8Array(2 * size);
  for (const [i, part] of [r, s].entries()) {
    let bytes = signature.subarray(part.contentStart, part.end);
    while (bytes.length > size && bytes[0] === 0) bytes = bytes.subarray(1);
    if (bytes.length > size) throw new CertificateError('bad ECDSA signature');
    out.set(bytes, (i + 1) * size - bytes.length);
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly why: string };

/** Whether `issuer` signed `cert`: names chain, the signature verifies with the issuer's key. */
export async function verifySignedBy(cert: Certificate, issuer: Certificate): Promise<Verdict> {
  if (!equal(cert.issuer, issuer.subject)) return { ok: false, why: "its issuer is not this certificate's subject" };
  const alg = HASHES[cert.signatureAlgorithm];
  if (alg === undefined) return { ok: false, why: `signature algorithm ${cert.signatureAlgorithm} cannot be checked here` };
  const subtle = globalThis.crypto?.subtle as SubtleCrypto | undefined;
  if (subtle === undefined) return { ok: false, why: 'WebCrypto needs a secure context (HTTPS, or the service on localhost)' };
  const spki = new Uint8Array(issuer.spki);
  let valid: boolean;
  if (alg.kind === 'ECDSA') {
    const curve = CURVES[issuer.keyCurve ?? ''];
    if (curve === undefined) return { ok: false, why: "the issuer's key is not on a supported curve" };
    const key = await subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: curve.name }, false, ['verify']);
    valid = await subtle.verify({ name: 'ECDSA', hash: alg.hash }, key, new Uint8Array(ecdsaRaw(cert.signature, curve.bytes)), new Uint8Array(cert.tbs));
  } else {
    const key = await subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash: alg.hash }, false, ['verify']);
    valid = await subtle.verify({ name: 'RSASSA-PKCS1-v1_5' }, key, new Uint8Array(cert.signature), new Uint8Array(cert.tbs));
  }
  return valid ? { ok: true } : { ok: false, why: 'the signature does not verify' };
}

/** Whether two certificates certify the same public key. */
export function sameKey(a: Certificate, b: Certificate): boolean {
  return equal(a.spki, b.spki);
}

/** SHA-256 of the DER, as colon-separated hex (what `openssl x509 -fingerprint -sha256` prints). */
export async function fingerprint(cert: Certificate): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(cert.der)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}
