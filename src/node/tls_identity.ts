// The TLS identity a node presents on its data plane (docs/node.md "TLS identities").
//
// Each identity has a fresh ECDSA P-256 key, made in memory when the identity is made: the device
// identity key (P-384, hsm/identity/identity.ts) and the cluster key (hsm/identity/cluster.ts) never leave the device
// objects (both expose signing, not their KeyObject), while node:tls needs the private key itself.
//
// - kind 'device', before the device's cluster is INITIALISED: a self-signed leaf. Clients pin it,
//   after checking the device identity's attestation of its key against the device certificate.
// - kind 'cluster', once the cluster is INITIALISED: a leaf issued by the cluster key, presented as
//   the chain [leaf, cluster certificate], so a client that trusts only the customer CA verifies it
//   with ordinary TLS verification, host name included (docs/architecture.md §7).
//
// Both are attested by the device identity key, so a client can also tie either to one device
// (the message and its check: src/formats/attestation.ts, shared with the management client).

import { createPrivateKey, webcrypto } from 'node:crypto';
import type { Hsm } from '../hsm/device.js';
import { tlsAttestationHolds, tlsAttestationMessage } from '../formats/attestation.js';
import { p384PublicKey, parseCertificate, pemOf, randomSerialHex, spkiOf, x509 } from '../formats/x509.js';

/** Validity of the self-signed leaf: a node restarts (and so renews) well within a week. */
export const TLS_LEAF_VALIDITY_MS = 7 * 24 * 3600 * 1000;
/** Back-dating of notBefore, for clocks a little behind the node's. */
const BACKDATE_MS = 5 * 60 * 1000;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface TlsIdentity {
  /** 'device': self-signed, attested leaf (no cluster yet); 'cluster': issued by the cluster key. */
  readonly kind: 'device' | 'cluster';
  /** PEM private key for node:tls (made with the identity, in memory only). */
  readonly keyPem: string;
  /** The leaf, PEM. For kind 'device' it is what clients pin (`ca`). */
  readonly certificatePem: string;
  /** What the server presents: [leaf] or [leaf, cluster certificate]. */
  readonly chainPem: readonly string[];
  /** The leaf's notAfter, ms since the Unix epoch (the node renews a cluster leaf before it). */
  readonly notAfterMs: number;
  /** The device identity's signature over the context and the leaf's SPKI (P1363, 96 bytes). */
  readonly attestation: Uint8Array;
  /** The device certificate, PEM (manufacturer-issued), to check `attestation` with. */
  readonly deviceCertificatePem: string;
}

/** A fresh P-256 key pair and its private key as PEM (the PKCS#8 bytes are wiped; the PEM is a JS
 * string node:tls needs, which cannot be). */
async function freshKey(): Promise<{ readonly keys: webcrypto.CryptoKeyPair; readonly keyPem: string; readonly spki: Uint8Array }> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  try {
    const keyPem = createPrivateKey({ key: Buffer.from(pkcs8.buffer, pkcs8.byteOffset, pkcs8.byteLength), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
    const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    return { keys, keyPem, spki };
  } finally {
    pkcs8.fill(0);
  }
}

/** A self-signed, device-attested identity for `hsm`, whose device must be at least manufactured. */
export async function createTlsIdentity(hsm: Hsm, hosts: readonly string[], nowMs = Date.now()): Promise<TlsIdentity> {
  const deviceCertificatePem = hsm.provisioning.deviceCertificate();
  const { keys, keyPem, spki } = await freshKey();
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
  const certificatePem = pemOf(leaf);
  const attestation = hsm.provisioning.identity().sign(tlsAttestationMessage(spki));
  return { kind: 'device', keyPem, certificatePem, chainPem: [certificatePem], notAfterMs: leaf.notAfter.getTime(), attestation, deviceCertificatePem };
}

/** An identity issued by the device's cluster key (COFFER_CLUSTER_NOT_INITIALISED before). */
export async function createClusterTlsIdentity(hsm: Hsm, hosts: readonly string[], validityMs?: number): Promise<TlsIdentity> {
  const deviceCertificatePem = hsm.provisioning.deviceCertificate();
  const { keyPem, spki } = await freshKey();
  const issued = await hsm.cluster.issueTlsCertificate(spki, { hosts, ...(validityMs === undefined ? {} : { validityMs }) });
  const notAfterMs = parseCertificate(issued.leafPem).notAfter.getTime();
  const attestation = hsm.provisioning.identity().sign(tlsAttestationMessage(spki));
  return { kind: 'cluster', keyPem, certificatePem: issued.leafPem, chainPem: [...issued.chainPem], notAfterMs, attestation, deviceCertificatePem };
}

/** The identity the device's current cluster state calls for: cluster-issued once INITIALISED. */
export function currentTlsIdentity(hsm: Hsm, hosts: readonly string[], clusterLeafValidityMs?: number): Promise<TlsIdentity> {
  return hsm.cluster.state() === 'INITIALISED' ? createClusterTlsIdentity(hsm, hosts, clusterLeafValidityMs) : createTlsIdentity(hsm, hosts);
}

/** True when `attestation` is the device key's signature over the leaf's public key. The caller
 * still checks the device certificate's chain to the manufacturer root (formats/device_chain.ts). */
export function verifyTlsAttestation(deviceCertificatePem: string, certificatePem: string, attestation: Uint8Array): boolean {
  const deviceKey = p384PublicKey(spkiOf(parseCertificate(deviceCertificatePem)));
  return tlsAttestationHolds(deviceKey, spkiOf(parseCertificate(certificatePem)), attestation);
}
