// Helpers for the management-interface tests: client certificates (good, foreign, wrong usage),
// in-process nodes made by shared development authorities, raw HTTPS requests, and an impostor
// server that answers GET /v1/identity with whatever certificates it is given.

import type { JournalOptions } from '../../src/hsm/state/journal.js';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hsm } from '../../src/hsm/device.js';
import { provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../src/factory/development.js';
import type { ScryptParams } from '../../src/hsm/users/password.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { pemOf, randomSerialHex, x509, ECDSA_SHA384, EC_P384_SHA384 } from '../../src/formats/x509.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import { startManagement, type ManagementOptions, type ManagementServer } from '../../src/node/management.js';
import { tlsAttestationMessage } from '../../src/formats/attestation.js';
import { MANAGEMENT_ROUTES, encodeNodeIdentity } from '../../src/formats/management.js';
import type { DeviceIdentity } from '../../src/hsm/identity/identity.js';

export const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 }; // tests only
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

export interface ClientCredential {
  readonly certificatePem: string;
  readonly keyPem: string;
}

async function keyPemOf(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A client certificate signed by `issuer` (its certificate and key), with the given EKU. */
export async function issueClientCredential(
  issuer: { readonly rootCertificate: x509.X509Certificate; readonly rootPrivateKey: webcrypto.CryptoKey },
  usage: 'clientAuth' | 'serverAuth' = 'clientAuth',
): Promise<ClientCredential> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: 'CN=test management client',
    issuer: issuer.rootCertificate.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    publicKey: keys.publicKey,
    signingKey: issuer.rootPrivateKey,
    signingAlgorithm: ECDSA_SHA384,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.ExtendedKeyUsageExtension([usage === 'clientAuth' ? EKU_CLIENT_AUTH : EKU_SERVER_AUTH])],
  });
  return { certificatePem: pemOf(cert), keyPem: await keyPemOf(keys.privateKey) };
}

/** A self-signed CA that has nothing to do with the node (for "foreign" client certificates). */
export async function foreignCa(): Promise<{ rootCertificate: x509.X509Certificate; rootPrivateKey: webcrypto.CryptoKey }> {
  const keys = await webcrypto.subtle.generateKey(EC_P384_SHA384, true, ['sign', 'verify']);
  const rootCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: 'CN=foreign test CA',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    keys,
    signingAlgorithm: ECDSA_SHA384,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  return { rootCertificate, rootPrivateKey: keys.privateKey };
}

export interface TestNode {
  readonly hsm: Hsm;
  readonly dataPlane: DataPlane;
  readonly management: ManagementServer;
  readonly dataDir: string;
  /** refreshTls calls seen by the management server. A test that sets `gate` holds every later
   * refreshTls (the last step of a restore, inside the node's queue) until the gate resolves, and
   * hears `onHeld` when one is held. */
  readonly refreshes: { count: number; gate?: Promise<void> | undefined; onHeld?: (() => void) | undefined };
  close(): Promise<void>;
}

/** A commissioned development device (memory store, or the one given: a test may read its records)
 * with its data plane and management server. */
export async function startTestNode(
  authorities: DevelopmentAuthorities, options: Partial<ManagementOptions> = {}, store = new MemoryRecordStore(), journal: JournalOptions = {},
): Promise<TestNode> {
  const hsm = Hsm.open({ store, kdfParams: FAST_KDF, journal });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  const dataPlane = await startDataPlane({ hsm });
  const dataDir = mkdtempSync(join(tmpdir(), 'coffer-mgmt-'));
  const refreshes: TestNode['refreshes'] = { count: 0 };
  const observed = {
    port: dataPlane.port,
    load: () => dataPlane.load(),
    refreshTls: async () => {
      refreshes.count++;
      if (refreshes.gate !== undefined) {
        refreshes.onHeld?.();
        await refreshes.gate;
      }
      await dataPlane.refreshTls();
    },
  };
  const management = await startManagement({ hsm, dataPlane: observed, dataDir, ...options });
  return {
    hsm, dataPlane, management, dataDir, refreshes,
    close: async () => {
      await management.close();
      await dataPlane.close();
      hsm.close();
    },
  };
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

/** One HTTPS request with a client credential, no server verification (for hostile-input tests). */
export function raw(port: number, credential: ClientCredential | undefined, method: string, path: string, body?: Uint8Array | string, headers: Record<string, string | number> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method, path, rejectUnauthorized: false, agent: false, minVersion: 'TLSv1.3',
      ...(credential === undefined ? {} : { cert: credential.certificatePem, key: credential.keyPem }), headers,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

/** The `code` of a JSON error body. */
export function codeOf(r: RawResponse): unknown {
  return (JSON.parse(r.body.toString('utf8')) as { code?: unknown }).code;
}

/**
 * An HTTPS server that claims to be a node: a fresh self-signed TLS leaf, attested by `identity`
 * (so the channel binding holds), and GET /v1/identity answering the given certificates. Everything
 * else is 404. For tests of what the client accepts as a node's identity.
 */
export async function startIdentityServer(identity: DeviceIdentity, certificates: { readonly devicePem: string; readonly operatorPem: string }): Promise<{ port: number; close(): Promise<void> }> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(), name: 'CN=impostor', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000),
    keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const body = JSON.stringify(encodeNodeIdentity({
    deviceCertificatePem: certificates.devicePem, manufacturerRootPem: certificates.devicePem, operatorCertificatePem: certificates.operatorPem,
    operatorRootPem: certificates.operatorPem, attestation: identity.sign(tlsAttestationMessage(spki)),
  }));
  const server = createServer({ key: await keyPemOf(keys.privateKey), cert: pemOf(leaf), minVersion: 'TLSv1.3' }, (req, res) => {
    const ok = req.url === MANAGEMENT_ROUTES.identity.path;
    res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
    res.end(ok ? body : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
