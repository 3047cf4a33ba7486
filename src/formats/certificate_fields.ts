// The fields of an X.509 certificate that PKCS#11 names as attributes of a certificate object
// (PKCS#11 v2.40 §4.6.3, CKC_X_509): CKA_SUBJECT, CKA_ISSUER and CKA_SERIAL_NUMBER are the DER
// encodings of the certificate's subject Name, issuer Name and serialNumber INTEGER, byte for byte
// as they sit in the certificate (RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate
// SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, signature AlgorithmIdentifier, issuer Name,
// validity Validity, subject Name, subjectPublicKeyInfo … }, … }).
//
// The certificate is first parsed whole (@peculiar/x509 for the structure, node:crypto for the
// subject public key); the few TLVs are then walked here so that the bytes returned are the
// certificate's own, not a re-encoding. Anything that is not one DER certificate with nothing after
// it is COFFER_CERT_VALUE_INVALID with a `reason`; a certificate over CERTIFICATE_OBJECT_BYTES_MAX is
// COFFER_FORMAT_LIMIT. Used by the device (which checks a template against the certificate) and by
// the PKCS#11 bridge (which shows the attributes).

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeCertificate, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import { KEY_MATERIAL_BYTES_MAX } from './limits.js';

/** The largest certificate a certificate object holds: it is stored as an object record's material
 * (KEY_MATERIAL_BYTES_MAX, 8 KiB), room for an RSA-4096 certificate with a long chain of extensions. */
export const CERTIFICATE_OBJECT_BYTES_MAX = KEY_MATERIAL_BYTES_MAX;

export interface CertificateFields {
  /** DER of the subject Name. */
  readonly subject: Uint8Array;
  /** DER of the issuer Name. */
  readonly issuer: Uint8Array;
  /** DER of the serialNumber INTEGER (tag, length and content). */
  readonly serialNumber: Uint8Array;
  /** The subject public key. */
  readonly publicKey: KeyObject;
}

interface Tlv {
  readonly tag: number;
  /** Where the TLV starts, where its content starts, where it ends. */
  readonly start: number;
  readonly contentAt: number;
  readonly end: number;
}

function invalid(reason: string, cause?: unknown): never {
  return fail('COFFER_CERT_VALUE_INVALID', { reason }, cause);
}

/** One DER TLV at `at` within `[at, limit)`: single-byte tags, definite lengths of at most 4 bytes. */
function tlv(der: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) invalid('truncated');
  const tag = der[at] ?? 0;
  if ((tag & 0x1f) === 0x1f) invalid('multi-byte tag');
  let length = der[at + 1] ?? 0;
  let contentAt = at + 2;
  if (length >= 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || contentAt + n > limit) invalid('bad length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[contentAt + i] ?? 0);
    contentAt += n;
  }
  const end = contentAt + length;
  if (end > limit) invalid('truncated');
  return { tag, start: at, contentAt, end };
}

/** The subject, issuer and serial number of a DER certificate, and its subject public key. */
export function certificateFields(der: Uint8Array): CertificateFields {
  if (der.length > CERTIFICATE_OBJECT_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'certificate', max: CERTIFICATE_OBJECT_BYTES_MAX });
  if (der.length === 0) invalid('empty');
  try {
    new x509.X509Certificate(der); // the whole structure, as RFC 5280 §4.1 defines it
  } catch (e) {
    invalid('unparsable-certificate', e);
  }
  let publicKey: KeyObject;
  try {
    publicKey = new NodeCertificate(Buffer.from(der)).publicKey;
  } catch (e) {
    return invalid('unsupported-public-key', e);
  }
  const cert = tlv(der, 0, der.length);
  if (cert.tag !== 0x30 || cert.end !== der.length) invalid('not one certificate');
  const tbs = tlv(der, cert.contentAt, cert.end);
  if (tbs.tag !== 0x30) invalid('no tbsCertificate');
  let field = tlv(der, tbs.contentAt, tbs.end);
  if (field.tag === 0xa0) field = tlv(der, field.end, tbs.end); // [0] EXPLICIT version
  const serial = field;
  if (serial.tag !== 0x02) invalid('no serialNumber');
  const signature = tlv(der, serial.end, tbs.end);
  const issuer = tlv(der, signature.end, tbs.end);
  const validity = tlv(der, issuer.end, tbs.end);
  const subject = tlv(der, validity.end, tbs.end);
  if (issuer.tag !== 0x30 || subject.tag !== 0x30) invalid('no names');
  const copy = (t: Tlv): Uint8Array => der.slice(t.start, t.end);
  return { subject: copy(subject), issuer: copy(issuer), serialNumber: copy(serial), publicKey };
}
