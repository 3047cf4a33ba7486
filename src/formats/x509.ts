// Certificate helpers over @peculiar/x509 for the device identity chain (docs/architecture.md §1, §3): the
// Manufacturer and Operator Root CAs, the device and operator certificates, and the device CSR:
// parsing, encoding, key extraction and issuing. Whether a chain is acceptable is one rule,
// src/formats/device_chain.ts. They live in formats/ (crypto ← formats ← hsm) because a backup
// verifier and the management client handle these certificates without a device.
// Every certificate here is ECDSA P-384 with SHA-384 (RFC 5480 §2.1.1.1, RFC 5758 §3.2).
//
// @peculiar/x509 resolves its ASN.1 serialisers through tsyringe, which needs the reflect-metadata
// polyfill loaded first; it signs through a WebCrypto provider, which we set to Node's own.
// Checks here return typed errors (COFFER_CERT_INVALID with a non-secret `reason`), never throw
// the library's own messages at a caller.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import { CERTIFICATE_BYTES_MAX } from './limits.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/** Key generation / import parameters of every CA and identity key (NIST P-384). */
export const EC_P384 = { name: 'ECDSA', namedCurve: 'P-384' } as const;
/** Signature parameters: ECDSA with SHA-384, the hash matched to the curve (SP 800-57 Pt 1 §5.6.1). */
export const ECDSA_SHA384 = { name: 'ECDSA', hash: 'SHA-384' } as const;
/** Generation parameters as @peculiar/x509 wants them: curve and hash together. */
export const EC_P384_SHA384 = { ...EC_P384, hash: 'SHA-384' } as const;

/** Marks every certificate subject made with development keys (in its organisation), so a development
 * chain can never be mistaken for a production one. */
export const DEVELOPMENT_MARK = '(DEVELOPMENT KEY)';
/** Certificates are back-dated by this much, so a device whose clock runs a little behind still accepts them. */
export const CERT_BACKDATE_MS = 5 * 60_000;

/** A relative distinguished name list, in the order it appears in the certificate. */
export type JsonName = Array<Record<string, string[]>>;

/** Parses a certificate given as PEM text or DER bytes; anything else is COFFER_CERT_INVALID. */
export function parseCertificate(input: string | Uint8Array): x509.X509Certificate {
  checkSize(input);
  try {
    return new x509.X509Certificate(typeof input === 'string' ? input.trim() : input);
  } catch (e) {
    return fail('COFFER_CERT_INVALID', { reason: 'unparsable-certificate' }, e);
  }
}

/** Parses a PKCS#10 request (RFC 2986) given as PEM text or DER bytes. */
export function parseCsr(input: string | Uint8Array): x509.Pkcs10CertificateRequest {
  checkSize(input);
  try {
    return new x509.Pkcs10CertificateRequest(typeof input === 'string' ? input.trim() : input);
  } catch (e) {
    return fail('COFFER_CERT_INVALID', { reason: 'unparsable-csr' }, e);
  }
}

function checkSize(input: string | Uint8Array): void {
  if (input.length > CERTIFICATE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'CERTIFICATE_BYTES_MAX' });
}

/** DER bytes of a certificate or CSR: a copy the caller owns (a change set's values are wiped once
 * applied, and must not be a view of the parsed object's own bytes). */
export function derOf(item: x509.X509Certificate | x509.Pkcs10CertificateRequest): Uint8Array {
  return new Uint8Array(item.rawData.slice(0));
}

/** PEM text of a certificate or CSR, with a trailing newline. */
export function pemOf(item: x509.X509Certificate | x509.Pkcs10CertificateRequest): string {
  return item.toString('pem') + '\n';
}

/** SubjectPublicKeyInfo DER of a certificate's or CSR's key (RFC 5280 §4.1.2.7). */
export function spkiOf(item: x509.X509Certificate | x509.Pkcs10CertificateRequest): Uint8Array {
  return new Uint8Array(item.publicKey.rawData);
}

/** SHA-256 over the certificate's DER, lower-case hex: the fingerprint transcripts record. */
export function fingerprintSha256(cert: x509.X509Certificate): string {
  return createHash('sha256').update(derOf(cert)).digest('hex');
}

/** A Node public KeyObject for an SPKI, refused unless it is an EC P-384 key. */
export function p384PublicKey(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    return fail('COFFER_CERT_INVALID', { reason: 'unparsable-public-key' }, e);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    fail('COFFER_CRYPTO_UNSUPPORTED_CURVE', { expected: 'P-384' });
  }
  return key;
}

/** A positive 127-bit certificate serial number in hex (RFC 5280 §4.1.2.2: ≤ 20 octets, positive). */
export function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x01;
  return b.toString('hex');
}

/** Value of the first attribute `type` (CN, O, OU…) of a certificate's subject, if any. */
export function subjectField(cert: x509.X509Certificate | x509.Pkcs10CertificateRequest, type: string): string | undefined {
  return cert.subjectName.getField(type)[0];
}

/** Constant-shape comparison of two SPKIs (public data: no timing concern). */
export function sameSpki(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** An end-entity certificate (not a CA, keyUsage digitalSignature) for `publicKey`, signed by
 * `root` with ECDSA SHA-384; `extensions` adds to the profile (EKU, SAN: the cluster's TLS leaves,
 * development management client certificates). */
export async function issueLeaf(
  root: x509.X509Certificate, rootKey: webcrypto.CryptoKey, publicKey: x509.PublicKey, subject: JsonName, validityMs: number, clock: { nowMs(): number },
  extensions: readonly x509.Extension[] = [],
): Promise<x509.X509Certificate> {
  const nowMs = clock.nowMs();
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject,
    issuer: root.subjectName,
    notBefore: new Date(nowMs - CERT_BACKDATE_MS),
    notAfter: new Date(nowMs + validityMs),
    publicKey,
    signingKey: rootKey,
    signingAlgorithm: ECDSA_SHA384,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await authorityKeyIdOf(root),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ...extensions,
    ],
  });
}

/** The issuer's own subjectKeyIdentifier when it has one (RFC 5280 §4.2.1.1: the AKI repeats it,
 * and OpenSSL refuses a chain whose AKI and SKI differ); else the SHA-1 key id our CAs use. */
async function authorityKeyIdOf(issuer: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski === null ? x509.AuthorityKeyIdentifierExtension.create(issuer, false) : new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
}
