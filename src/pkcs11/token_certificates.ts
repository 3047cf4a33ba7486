// Cluster certificate objects as PKCS#11 X.509 certificate objects (PKCS#11 v2.40 §4.6: CKO_CERTIFICATE,
// CKC_X_509; docs/pkcs11.md "The token"): the template of C_CreateObject read into the SDK's terms,
// and the attributes a certificate shows.
//
// Choices the specification leaves to the token:
// - CKA_VALUE (the DER) is required; CKA_CERTIFICATE_TYPE must be CKC_X_509 and is required (§4.6.2);
//   CKA_SUBJECT, which §4.6.3 also marks required, is taken from the certificate when a template
//   leaves it out. A given CKA_SUBJECT, CKA_ISSUER or CKA_SERIAL_NUMBER must equal the certificate's
//   own (the HSM checks: CKR_TEMPLATE_INCONSISTENT); a value that is no DER certificate is
//   CKR_ATTRIBUTE_VALUE_INVALID. CKA_SERIAL_NUMBER is the DER INTEGER (§4.6.3); Java's SunPKCS11
//   (keytool, KeyStore.setKeyEntry) sends the INTEGER's contents without its tag and length, which
//   is taken as that INTEGER when it is the certificate's serial number.
// - CKA_TRUSTED is false and only false (§4.6.2: only the SO sets it true, and the cluster's admins
//   use no keys): true is CKR_ATTRIBUTE_READ_ONLY. CKA_CERTIFICATE_CATEGORY 0–3 is kept.
// - CKA_START_DATE and CKA_END_DATE are accepted empty and shown empty (§4.6.2 allows it; the
//   certificate's own validity is in CKA_VALUE); CKA_JAVA_MIDP_SECURITY_DOMAIN is 0 (unspecified),
//   CKA_URL and the two key-hash attributes are empty (§4.6.4: "empty" is their default);
//   CKA_CHECK_VALUE is the first three bytes of SHA-1 of CKA_VALUE (§4.6.2).
// - Like every object of the token, a certificate is CKA_PRIVATE true (docs/pkcs11.md: nothing is
//   seen before login), although every crypto user of the cluster sees it.

import { createHash } from 'node:crypto';
import type { CertificateTemplate, CertificateValue, KeyInfo } from '../client/index.js';
import { derElement } from '../crypto/ec_key_der.js';
import { certificateFields } from '../formats/certificate_fields.js';
import { CKA, CKR } from './constants.js';
import type { Attribute, AttributeValue } from './rpc_codec.js';
import { CKA_DESTROYABLE, TemplateRefusal, type Lookup } from './token_objects.js';

/** Certificate attribute types that travel as byte arrays (so constants.ts's table does not list them). */
export const CKA_CERT = { SUBJECT: 0x101, ISSUER: 0x81, SERIAL_NUMBER: 0x82, CHECK_VALUE: 0x90, URL: 0x89, HASH_OF_SUBJECT_PUBLIC_KEY: 0x8a, HASH_OF_ISSUER_PUBLIC_KEY: 0x8b } as const;
/** CKO_CERTIFICATE and CKC_X_509 (pkcs11t.h). */
export const CKO_CERTIFICATE = 1n;
export const CKC_X_509 = 0n;

const byte = (b: boolean): AttributeValue => ({ kind: 'byte', value: b ? 1 : 0 });
const ulong = (n: bigint): AttributeValue => ({ kind: 'ulong', value: n });
const bytes = (v: Uint8Array): AttributeValue => ({ kind: 'bytes', value: v });

/** What C_CreateObject of a certificate asks for: the DER, and the SDK's template. */
export interface CertificateRequest {
  readonly der: Uint8Array;
  readonly template: CertificateTemplate;
}

function asBool(v: AttributeValue): boolean | undefined {
  if (v.kind === 'byte') return v.value !== 0;
  if (v.kind === 'bytes' && v.value.length === 1) return v.value[0] !== 0;
  return undefined;
}

/** Reads C_CreateObject's template for a certificate (§4.6.2–§4.6.3); CKA_TOKEN defaults to false (§4.4). */
export function readCertificateTemplate(template: readonly Attribute[]): CertificateRequest | TemplateRefusal {
  const t: { -readonly [K in keyof CertificateTemplate]: CertificateTemplate[K] } = { token: false };
  let der: Uint8Array | undefined;
  let type: bigint | undefined;
  for (const a of template) {
    if (!('value' in a)) return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID, a.type);
    const v = a.value;
    const refuse = (): TemplateRefusal => new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID, a.type);
    const b = v.kind === 'bytes' ? v.value : undefined;
    switch (a.type) {
      case CKA.CLASS:
        if (v.kind !== 'ulong' || v.value !== CKO_CERTIFICATE) return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, a.type);
        break;
      case CKA.CERTIFICATE_TYPE:
        if (v.kind !== 'ulong') return refuse();
        type = v.value;
        break;
      case CKA.VALUE:
        if (b === undefined) return refuse();
        der = b;
        break;
      case CKA.LABEL:
        if (b === undefined) return refuse();
        t.label = new TextDecoder('utf-8', { fatal: false }).decode(b);
        break;
      case CKA.ID:
        if (b === undefined) return refuse();
        t.id = b;
        break;
      case CKA_CERT.SUBJECT: case CKA_CERT.ISSUER: case CKA_CERT.SERIAL_NUMBER:
        if (b === undefined) return refuse();
        t[a.type === CKA_CERT.SUBJECT ? 'subject' : a.type === CKA_CERT.ISSUER ? 'issuer' : 'serialNumber'] = b;
        break;
      case CKA.CERTIFICATE_CATEGORY:
        if (v.kind !== 'ulong' || v.value > 3n) return refuse();
        t.category = Number(v.value);
        break;
      case CKA.TOKEN: case CKA.MODIFIABLE: case CKA_DESTROYABLE: case CKA.PRIVATE: case CKA.TRUSTED: {
        const flag = asBool(v);
        if (flag === undefined) return refuse();
        if (a.type === CKA.TOKEN) t.token = flag;
        else if (a.type === CKA.MODIFIABLE) t.modifiable = flag;
        else if (a.type === CKA_DESTROYABLE) t.destroyable = flag;
        else if (a.type === CKA.TRUSTED && flag) return new TemplateRefusal(CKR.ATTRIBUTE_READ_ONLY, a.type);
        break; // CKA_PRIVATE: every object needs a login to be seen (header)
      }
      case CKA.START_DATE: case CKA.END_DATE:
        if (v.kind !== 'date' || v.value.length !== 0) return new TemplateRefusal(CKR.ATTRIBUTE_TYPE_INVALID, a.type);
        break;
      default:
        return new TemplateRefusal(CKR.ATTRIBUTE_TYPE_INVALID, a.type);
    }
  }
  if (type === undefined || der === undefined) return new TemplateRefusal(CKR.TEMPLATE_INCOMPLETE);
  if (type !== CKC_X_509) return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID, CKA.CERTIFICATE_TYPE);
  if (t.serialNumber !== undefined) t.serialNumber = serialAsDer(t.serialNumber, der);
  return { der, template: t };
}

/** A template's CKA_SERIAL_NUMBER as the DER INTEGER: itself, or — when it is the contents of the
 * certificate's serial number INTEGER, as Java sends it (header) — that INTEGER. Anything else is
 * left for the HSM to refuse. */
function serialAsDer(given: Uint8Array, der: Uint8Array): Uint8Array {
  let serial: Uint8Array;
  try {
    serial = certificateFields(der).serialNumber;
  } catch {
    return given; // no certificate: the HSM says so
  }
  if (Buffer.from(serial).equals(given)) return given;
  const contents = derElement(serial, 0, 0x02);
  return Buffer.from(serial.subarray(contents.start, contents.end)).equals(given) ? serial : given;
}

/** The attribute `type` of a certificate object `info`, whose DER and category are `value` (§4.6). */
export function certificateLookup(info: KeyInfo, type: number, value: CertificateValue): Lookup {
  switch (type) {
    case CKA.CLASS: return ulong(CKO_CERTIFICATE);
    case CKA.CERTIFICATE_TYPE: return ulong(CKC_X_509);
    case CKA.TOKEN: return byte(info.attributes.token);
    case CKA.PRIVATE: return byte(true);
    case CKA.MODIFIABLE: return byte(info.attributes.modifiable);
    case CKA_DESTROYABLE: return bytes(Uint8Array.of(info.attributes.destroyable ? 1 : 0));
    case CKA.TRUSTED: return byte(false);
    case CKA.LABEL: return bytes(new TextEncoder().encode(info.label));
    case CKA.ID: return bytes(info.id);
    case CKA.CERTIFICATE_CATEGORY: return ulong(BigInt(value.category));
    case CKA.JAVA_MIDP_SECURITY_DOMAIN: return ulong(0n);
    case CKA.START_DATE: case CKA.END_DATE: return { kind: 'date', value: new Uint8Array(0) };
    case CKA.VALUE: return bytes(value.certificate);
    case CKA_CERT.CHECK_VALUE: return bytes(Uint8Array.from(createHash('sha1').update(value.certificate).digest().subarray(0, 3)));
    case CKA_CERT.URL: case CKA_CERT.HASH_OF_SUBJECT_PUBLIC_KEY: case CKA_CERT.HASH_OF_ISSUER_PUBLIC_KEY: return bytes(new Uint8Array(0));
    case CKA_CERT.SUBJECT: return bytes(certificateFields(value.certificate).subject);
    case CKA_CERT.ISSUER: return bytes(certificateFields(value.certificate).issuer);
    case CKA_CERT.SERIAL_NUMBER: return bytes(certificateFields(value.certificate).serialNumber);
    default: return 'invalid';
  }
}

/** Attributes of a certificate C_SetAttributeValue may not change (§4.6: the certificate's own fields). */
export const CERTIFICATE_READ_ONLY = new Set<number>([
  CKA.CLASS, CKA.CERTIFICATE_TYPE, CKA.TOKEN, CKA.PRIVATE, CKA.VALUE, CKA.TRUSTED, CKA.CERTIFICATE_CATEGORY, CKA_CERT.SUBJECT, CKA_CERT.ISSUER,
  CKA_CERT.SERIAL_NUMBER, CKA_CERT.CHECK_VALUE,
]);
