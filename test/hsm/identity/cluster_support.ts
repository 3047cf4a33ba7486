// Test support for the cluster identity (not a test file): certificate authorities with profiles
// the development customer CA refuses to make (a non-CA anchor, a pathLen-0 anchor, a cluster
// certificate that is not a CA), and a device taken to CSR_ISSUED / INITIALISED.

import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import type { Hsm } from '../../../src/hsm/device.js';
import { EC_P384, EC_P384_SHA384, ECDSA_SHA384, parseCsr, pemOf, randomSerialHex, x509 } from '../../../src/formats/x509.js';
import { APPLIANCE_PW, CLUSTER, PRECO, commissionedDevice, type DeviceOptions } from '../backup/backup_support.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** A self-signed certificate with the given basicConstraints, and its signing key. */
export interface TestCa {
  readonly certificate: x509.X509Certificate;
  readonly pem: string;
  readonly key: webcrypto.CryptoKey;
}

export async function testCa(name: string, bc: { readonly ca: boolean; readonly pathLength?: number }): Promise<TestCa> {
  const keys = await webcrypto.subtle.generateKey(EC_P384, true, ['sign', 'verify']);
  const nowMs = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [name] }],
    notBefore: new Date(nowMs - HOUR_MS),
    notAfter: new Date(nowMs + 365 * DAY_MS),
    keys,
    signingAlgorithm: EC_P384_SHA384,
    extensions: [new x509.BasicConstraintsExtension(bc.ca, bc.pathLength, true)],
  });
  return { certificate, pem: pemOf(certificate), key: keys.privateKey };
}

/** Signs a cluster CSR with a TestCa, as a CA certificate or not. */
export async function signWith(issuer: TestCa, csrPem: string, asCa: boolean): Promise<string> {
  const csr = parseCsr(csrPem);
  const nowMs = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: csr.subjectName,
    issuer: issuer.certificate.subjectName,
    notBefore: new Date(nowMs - HOUR_MS),
    notAfter: new Date(nowMs + 30 * DAY_MS),
    publicKey: csr.publicKey,
    signingKey: issuer.key,
    signingAlgorithm: ECDSA_SHA384,
    extensions: [new x509.BasicConstraintsExtension(asCa, asCa ? 0 : undefined, true)],
  });
  return pemOf(cert);
}

/** A commissioned device whose cluster is initialised (users: unactivated admin + appliance). */
export async function initialisedDevice(authorities: DevelopmentAuthorities, ca: DevelopmentCustomerCa, o: DeviceOptions = {}, clusterId = CLUSTER): Promise<Hsm> {
  const hsm = await commissionedDevice(authorities, o);
  const csr = await hsm.cluster.createCsr(clusterId);
  await hsm.cluster.initialise({ certificatePem: await ca.signClusterCsr(csr), trustAnchorPem: ca.certificatePem, preCoPassword: PRECO, applianceCredential: APPLIANCE_PW });
  return hsm;
}

/** A fresh TLS key pair for a leaf: SPKI DER and PKCS#8 PEM. */
export function tlsKeyPair(curve = 'P-256'): { spki: Uint8Array; keyPem: string } {
  const k = generateKeyPairSync('ec', { namedCurve: curve });
  return { spki: new Uint8Array(k.publicKey.export({ format: 'der', type: 'spki' })), keyPem: k.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string };
}

export { createDevelopmentCustomerCa };
