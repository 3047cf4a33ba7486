// The TLS identity a node presents before a cluster exists (docs/node.md "TLS identity").
//
// The device identity key (P-384, hsm/identity.ts) never leaves the device object: DeviceIdentity
// exposes sign(), not its KeyObject, and node:tls needs the private key itself. So each start of the
// node generates a fresh ECDSA P-256 TLS key pair, self-signs a short-lived leaf for it, and has the
// device identity key sign an attestation of the leaf's public key:
//
//   signature = ECDSA-P384-SHA384_identity( "coffer node tls key v1\0" ‖ SPKI DER of the TLS key )
//
// A client that knows the device certificate (manufacturer-issued, chained to the manufacturer root)
// checks the attestation, then pins the leaf. Once a cluster exists the leaf is to be issued by the
// cluster key instead (DESIGN.md §7); that is later work.

import { createPrivateKey, verify, webcrypto } from 'node:crypto';
import type { Hsm } from '../hsm/device.js';
import { p384PublicKey, parseCertificate, pemOf, randomSerialHex, spkiOf, x509 } from '../hsm/x509.js';

/** Distinct context string (hsm/identity.ts: every identity signature names its purpose first). */
export const TLS_ATTESTATION_CONTEXT = 'coffer node tls key v1\0';
/** Validity of the per-start leaf: a node restarts (and so renews) well within a week. */
export const TLS_LEAF_VALIDITY_MS = 7 * 24 * 3600 * 1000;
/** Back-dating of notBefore, for clocks a little behind the node's. */
const BACKDATE_MS = 5 * 60 * 1000;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface TlsIdentity {
  /** PEM private key for node:tls (per start, in memory only). */
  readonly keyPem: string;
  /** The self-signed leaf, PEM: what clients pin (`ca`). */
  readonly certificatePem: string;
  /** The device identity's signature over the context and the leaf's SPKI (P1363, 96 bytes). */
  readonly attestation: Uint8Array;
  /** The device certificate, PEM (manufacturer-issued), to check `attestation` with. */
  readonly deviceCertificatePem: string;
}

function message(spki: Uint8Array): Uint8Array {
  const context = new TextEncoder().encode(TLS_ATTESTATION_CONTEXT);
  const m = new Uint8Array(context.length + spki.length);
  m.set(context, 0);
  m.set(spki, context.length);
  return m;
}

/** A fresh TLS identity for `hsm`, whose device must be at least manufactured (it has a certificate). */
export async function createTlsIdentity(hsm: Hsm, hosts: readonly string[], nowMs = Date.now()): Promise<TlsIdentity> {
  const deviceCertificatePem = hsm.provisioning.deviceCertificate();
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const altNames = hosts.map((h) => (/^[\d.]+$/.test(h) || h.includes(':') ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
  const leaf = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [hsm.provisioning.identity().serial] }, { OU: ['Coffer HSM node TLS'] }],
    notBefore: new Date(nowMs - BACKDATE_MS),
    notAfter: new Date(nowMs + TLS_LEAF_VALIDITY_MS),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension(altNames), new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  try {
    const keyPem = createPrivateKey({ key: Buffer.from(pkcs8.buffer, pkcs8.byteOffset, pkcs8.byteLength), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
    const attestation = hsm.provisioning.identity().sign(message(spkiOf(leaf)));
    return { keyPem, certificatePem: pemOf(leaf), attestation, deviceCertificatePem };
  } finally {
    pkcs8.fill(0);
  }
}

/** True when `attestation` is the device key's signature over the leaf's public key. The caller
 * still checks the device certificate's chain to the manufacturer root (formats/x509.ts). */
export function verifyTlsAttestation(deviceCertificatePem: string, certificatePem: string, attestation: Uint8Array): boolean {
  const deviceKey = p384PublicKey(spkiOf(parseCertificate(deviceCertificatePem)));
  const m = message(spkiOf(parseCertificate(certificatePem)));
  return verify('sha384', m, { key: deviceKey, dsaEncoding: 'ieee-p1363' }, attestation);
}
