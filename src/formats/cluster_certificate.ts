// What a cluster certificate and its trust anchor must be (docs/cluster-identity.md "What
// initialise checks"): one rule, used by the device when it is initialised and by the control plane
// when InitializeCluster is called, so the API refuses at once what the HSM would refuse later.

import { fail } from '../errors.js';
import { sameSpki, spkiOf, x509 } from './x509.js';

/** The trust anchor must be a CA able to sign the cluster certificate, itself a CA (RFC 5280
 * §4.2.1.9: a pathLenConstraint of 0 would forbid it), and valid now. */
export function checkTrustAnchor(anchor: x509.X509Certificate, nowMs: number): void {
  const bc = anchor.getExtension(x509.BasicConstraintsExtension);
  if (bc === null || !bc.ca) fail('COFFER_CERT_INVALID', { reason: 'trust-anchor-not-ca' });
  if (bc.pathLength !== undefined && bc.pathLength < 1) fail('COFFER_CERT_INVALID', { reason: 'trust-anchor-path-length' });
  const ku = anchor.getExtension(x509.KeyUsagesExtension);
  if (ku !== null && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) fail('COFFER_CERT_INVALID', { reason: 'trust-anchor-cannot-sign-certificates' });
  if (!validAt(anchor, nowMs)) fail('COFFER_CERT_INVALID', { reason: 'trust-anchor-validity' });
}

/** The cluster certificate: for the cluster key, issued and signed by the anchor, valid now, and a
 * CA that may sign the TLS leaves (basicConstraints cA, keyCertSign if keyUsage is present). */
export async function checkClusterCertificate(cert: x509.X509Certificate, anchor: x509.X509Certificate, clusterSpki: Uint8Array, nowMs: number): Promise<void> {
  if (!sameSpki(spkiOf(cert), clusterSpki)) fail('COFFER_CLUSTER_CERT_MISMATCH', { reason: 'not-the-cluster-key' });
  if (cert.issuer !== anchor.subject) fail('COFFER_CLUSTER_CERT_MISMATCH', { reason: 'issuer-mismatch' });
  if (!(await signedBy(cert, anchor))) fail('COFFER_CLUSTER_CERT_MISMATCH', { reason: 'signature' });
  if (!validAt(cert, nowMs)) fail('COFFER_CLUSTER_CERT_MISMATCH', { reason: 'validity' });
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (bc === null || !bc.ca) fail('COFFER_CERT_INVALID', { reason: 'cluster-certificate-not-ca' });
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku !== null && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) fail('COFFER_CERT_INVALID', { reason: 'cluster-certificate-cannot-sign-certificates' });
}

async function signedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false; // an algorithm or encoding the provider cannot even parse
  }
}

function validAt(cert: x509.X509Certificate, nowMs: number): boolean {
  return cert.notBefore.getTime() <= nowMs && nowMs <= cert.notAfter.getTime();
}
