// The device's attestation of a node TLS key (docs/node.md "TLS identities"): the device identity
// key signs the context string followed by the SPKI of the TLS leaf's key, so a client can tie a TLS
// connection to one device whose certificate chains to the manufacturer root. The node makes the
// attestation (src/node/tls_identity.ts), the management client checks it (src/management/client.ts);
// the message is built here, once, so the two can never disagree.
//
//   signature = ECDSA-P384-SHA384_identity( "coffer node tls key v1\0" ‖ SPKI DER of the TLS key )   (P1363)

import { verify, type KeyObject } from 'node:crypto';

/** Distinct context string: every identity signature names its purpose first (src/hsm/identity/identity.ts). */
export const TLS_ATTESTATION_CONTEXT = 'coffer node tls key v1\0';
/** An ECDSA P-384 signature in IEEE P1363 form (r ‖ s). */
export const TLS_ATTESTATION_BYTES = 96;

/** The signed message: the context, then the TLS key's SPKI DER. */
export function tlsAttestationMessage(leafSpki: Uint8Array): Uint8Array {
  const context = new TextEncoder().encode(TLS_ATTESTATION_CONTEXT);
  const m = new Uint8Array(context.length + leafSpki.length);
  m.set(context, 0);
  m.set(leafSpki, context.length);
  return m;
}

/** True when `signature` is the device key's attestation of the TLS key `leafSpki`. The caller
 * establishes `deviceKey` first (src/formats/device_chain.ts). */
export function tlsAttestationHolds(deviceKey: KeyObject, leafSpki: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== TLS_ATTESTATION_BYTES) return false;
  try {
    return verify('sha384', tlsAttestationMessage(leafSpki), { key: deviceKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}
