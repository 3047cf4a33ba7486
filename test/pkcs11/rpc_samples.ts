// Sample values for every field code of the p11-kit RPC, so that every call's request and response
// can be encoded, decoded and damaged by the codec and fuzz tests.

import { CKA, CKM } from '../../src/pkcs11/constants.js';
import type { FieldSpec } from '../../src/pkcs11/rpc_calls.js';
import type { Attribute, ProtocolVersion } from '../../src/pkcs11/rpc_codec.js';

export const SAMPLE_ATTRIBUTES: readonly Attribute[] = [
  { type: CKA.CLASS, value: { kind: 'ulong', value: 3n } },
  { type: CKA.TOKEN, value: { kind: 'byte', value: 1 } },
  { type: CKA.LABEL, value: { kind: 'bytes', value: new TextEncoder().encode('key-1') } },
  { type: CKA.START_DATE, value: { kind: 'date', value: new TextEncoder().encode('20250102') } },
  { type: CKA.ALLOWED_MECHANISMS, value: { kind: 'mechanisms', value: [BigInt(CKM.ECDSA), BigInt(CKM.SHA256_RSA_PKCS)] } },
  { type: CKA.WRAP_TEMPLATE, value: { kind: 'attributes', value: [{ type: CKA.EXTRACTABLE, value: { kind: 'byte', value: 0 } }] } },
  { type: CKA.ID, lengthOnly: 20 },
  { type: CKA.VALUE, unavailable: true },
];

export function sampleField(spec: FieldSpec, version: ProtocolVersion): unknown {
  switch (spec[1]) {
    case 'y': return 1;
    case 'u': return 0x1_0000_0005n;
    case 'v': return { major: 2, minor: 40 };
    case 's': return 'coffer'.padEnd(spec[2] ?? 0, ' ');
    case 'z': return new TextEncoder().encode('label');
    case 'ay': return Uint8Array.of(1, 2, 3, 4);
    case 'au': return [1n, 0xffff_ffff_ffff_ffffn];
    case 'aA': return SAMPLE_ATTRIBUTES;
    case 'fy': return { present: true, length: 64 };
    case 'fu': return { present: true, length: 8 };
    case 'fA': return version === 2
      ? [{ type: CKA.LABEL, length: 32 }, { type: CKA.WRAP_TEMPLATE, length: 48, template: [{ type: CKA.CLASS, length: 8 }] }]
      : [{ type: CKA.LABEL, length: 32 }, { type: CKA.MODULUS, length: 0 }];
    case 'M': return { type: CKM.RSA_PKCS_PSS, parameter: { kind: 'rsaPss', hashAlg: BigInt(CKM.SHA256), mgf: 2n, sLen: 32n } };
    case 'P': return { mechanism: CKM.ECDH1_DERIVE, present: true };
  }
}

export function sampleFields(fields: readonly FieldSpec[], version: ProtocolVersion): Record<string, unknown> {
  return Object.fromEntries(fields.map((f) => [f[0], sampleField(f, version)]));
}
