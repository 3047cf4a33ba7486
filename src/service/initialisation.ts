// InitializeCluster's checks, made at the API so that a wrong SignedCert or TrustAnchor is refused at
// once (CloudHsmInvalidRequestException) instead of failing later inside the HSM: the same rule the
// device applies (src/formats/cluster_certificate.ts), run against the cluster's CSR.

import { isCofferError } from '../errors.js';
import { checkClusterCertificate, checkTrustAnchor } from '../formats/cluster_certificate.js';
import { parseCertificate, parseCsr, spkiOf } from '../formats/x509.js';
import { apiFail } from './api/operations.js';

/** What each refusal of the rule means to the caller. */
const REASONS: Readonly<Record<string, string>> = {
  'trust-anchor-not-ca': 'TrustAnchor is not a CA certificate.',
  'trust-anchor-path-length': 'TrustAnchor\'s path length does not allow it to sign a CA certificate.',
  'trust-anchor-cannot-sign-certificates': 'TrustAnchor\'s key usage does not allow certificate signing.',
  'trust-anchor-validity': 'TrustAnchor is not valid now.',
  'not-the-cluster-key': 'SignedCert does not carry the public key of the cluster CSR.',
  'issuer-mismatch': 'SignedCert was not issued by TrustAnchor.',
  signature: 'SignedCert\'s signature does not verify with TrustAnchor\'s key.',
  validity: 'SignedCert is not valid now.',
  'cluster-certificate-not-ca': 'SignedCert must be a CA certificate (basicConstraints cA): the cluster issues its HSMs\' TLS certificates.',
  'cluster-certificate-cannot-sign-certificates': 'SignedCert\'s key usage does not allow certificate signing.',
  'unparsable-certificate': 'SignedCert or TrustAnchor is not a PEM certificate.',
};

export async function checkInitialisation(csrPem: string, signedCertPem: string, trustAnchorPem: string, nowMs: number): Promise<void> {
  try {
    const anchor = parseCertificate(trustAnchorPem);
    const cert = parseCertificate(signedCertPem);
    checkTrustAnchor(anchor, nowMs);
    await checkClusterCertificate(cert, anchor, spkiOf(parseCsr(csrPem)), nowMs);
  } catch (e) {
    if (!isCofferError(e)) throw e;
    const reason = String(e.detail['reason'] ?? '');
    apiFail('CloudHsmInvalidRequestException', REASONS[reason] ?? 'SignedCert or TrustAnchor is not valid.');
  }
}
