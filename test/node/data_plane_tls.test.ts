// The data plane's TLS identities and client certificates over real sockets (docs/node.md "TLS
// identities", "Client certificates"): a node whose cluster is INITIALISED presents a leaf issued
// by the cluster key that a client trusting only the customer CA verifies (host name included);
// refreshTls() switches a running node; with clientTrustAnchors a client needs a certificate that
// chains to one of them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { Hsm } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { parseCertificate, pemOf, randomSerialHex, x509 } from '../../src/formats/x509.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import { verifyTlsAttestation } from '../../src/node/tls_identity.js';
import { Connection } from '../../src/client/connection.js';
import { isCofferError } from '../../src/errors.js';
import type { ScryptParams } from '../../src/hsm/users/password.js';

const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 }; // tests only
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
let authorities: DevelopmentAuthorities;
const planes: DataPlane[] = [];

before(async () => {
  authorities = await createDevelopmentAuthorities();
});
after(async () => {
  for (const p of planes) await p.close();
});

async function commissioned(): Promise<Hsm> {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  return hsm;
}

/** InitializeCluster in-process: CSR, signed by a fresh customer CA, installed with the users. */
async function initialiseCluster(hsm: Hsm): Promise<string> {
  const customerCa = await createDevelopmentCustomerCa();
  const csrPem = await hsm.cluster.createCsr('cluster-abc234def56');
  const certificatePem = await customerCa.signClusterCsr(csrPem);
  await hsm.cluster.initialise({ certificatePem, trustAnchorPem: customerCa.certificatePem, preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789' });
  return customerCa.certificatePem;
}

async function plane(options: Omit<Parameters<typeof startDataPlane>[0], 'hsm'> & { hsm: Hsm }): Promise<DataPlane> {
  const p = await startDataPlane(options);
  planes.push(p);
  return p;
}

async function keyPemOf(key: webcrypto.CryptoKey): Promise<string> {
  const der = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A test CA that issues client certificates (not a customer CA: any client PKI will do). */
async function testCa(name: string): Promise<{ readonly certificatePem: string; issueClient(cn: string): Promise<{ cert: string; key: string }> }> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(), name: `CN=${name}`, notBefore: new Date(now - DAY_MS), notAfter: new Date(now + DAY_MS), keys, signingAlgorithm: SIGNING,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  return {
    certificatePem: pemOf(ca),
    issueClient: async (cn) => {
      const leafKeys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerialHex(), subject: `CN=${cn}`, issuer: ca.subject, notBefore: new Date(now - DAY_MS), notAfter: new Date(now + DAY_MS),
        publicKey: leafKeys.publicKey, signingKey: keys.privateKey, signingAlgorithm: SIGNING,
        extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
      });
      return { cert: pemOf(leaf), key: await keyPemOf(leafKeys.privateKey) };
    },
  };
}

/** OpenSSL's verdicts on a server chain that does not lead to the client's CA. */
function untrusted(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'].includes(code) || (console.log('tls error', code), false);
}

/** The node's alert (TLS 1.3 sends it after the client finished its side) or the close after it. */
function refusedByNode(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return /^ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED$|^ERR_SSL_TLSV1_ALERT_UNKNOWN_CA$|^ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE$|^COFFER_CONNECTION_LOST$/.test(code) || (console.log('refusal', code), false);
}

function connect(p: DataPlane, options: Partial<Parameters<typeof Connection.connect>[0]> = {}): Promise<Connection> {
  return Connection.connect({ host: '127.0.0.1', port: p.port, ca: p.tls.certificatePem, connectTimeoutMs: 5_000, ...options });
}

test('an INITIALISED device serves a cluster-issued leaf that a client trusting only the customer CA verifies', async () => {
  const hsm = await commissioned();
  const customerCaPem = await initialiseCluster(hsm);
  const p = await plane({ hsm });
  assert.equal(p.tls.kind, 'cluster');
  assert.equal(p.tls.chainPem.length, 2);
  assert.ok(verifyTlsAttestation(p.tls.deviceCertificatePem, p.tls.certificatePem, p.tls.attestation), 'the cluster leaf is device-attested too');
  const c = await connect(p, { ca: customerCaPem });
  const st = await c.status();
  assert.equal(st.cluster, 'INITIALISED');
  assert.equal(st.clusterId, 'cluster-abc234def56');
  c.close();
  const byName = await connect(p, { ca: customerCaPem, host: 'localhost' }); // the SAN has the name too
  byName.close();
  await assert.rejects(connect(p, { ca: customerCaPem, servername: 'other.example' }), (e) => (e as { code?: string }).code === 'ERR_TLS_CERT_ALTNAME_INVALID');
  const otherCa = await createDevelopmentCustomerCa();
  await assert.rejects(connect(p, { ca: otherCa.certificatePem }), (e) => untrusted(e), 'a client trusting another CA refuses the node');
});

test('refreshTls switches a running node from its device identity to the cluster one; open connections stay', async () => {
  const hsm = await commissioned();
  const p = await plane({ hsm });
  assert.equal(p.tls.kind, 'device');
  const pinned = await connect(p);
  const customerCaPem = await initialiseCluster(hsm);
  await assert.rejects(connect(p, { ca: customerCaPem }), (e) => untrusted(e), 'still the device identity until refreshed');
  const deviceLeaf = p.tls.certificatePem;
  await p.refreshTls();
  assert.equal(p.tls.kind, 'cluster');
  assert.notEqual(p.tls.certificatePem, deviceLeaf);
  assert.equal(parseCertificate(p.tls.chainPem[1] ?? '').subject.includes('cluster-abc234def56'), true);
  const c = await connect(p, { ca: customerCaPem });
  assert.equal((await c.status()).cluster, 'INITIALISED');
  assert.equal((await pinned.status()).cluster, 'INITIALISED', 'a connection made before the switch goes on');
  await assert.rejects(connect(p, { ca: deviceLeaf }), (e) => untrusted(e), 'new connections no longer get the old leaf');
  c.close();
  pinned.close();
});

test('client certificates: none or from an unregistered CA refused; either of two anchors served; three refused at start', async () => {
  const hsm = await commissioned();
  const [a, b, other] = await Promise.all([testCa('client CA A'), testCa('client CA B'), testCa('unregistered CA')]);
  const p = await plane({ hsm, clientTrustAnchors: [a.certificatePem, b.certificatePem] });
  await assert.rejects(connect(p), (e) => refusedByNode(e), 'no client certificate');
  await assert.rejects(connect(p, await other.issueClient('intruder')), (e) => refusedByNode(e), 'a certificate from another CA');
  assert.equal(p.load().connections, 0, 'no refused client got a connection');
  for (const ca of [a, b]) {
    const c = await connect(p, await ca.issueClient('app'));
    assert.equal((await c.status()).provisioning, 'COMMISSIONED');
    c.close();
  }
  await p.refreshTls(); // the anchors survive a switch of identity
  const again = await connect(p, await a.issueClient('app'));
  again.close();
  await assert.rejects(connect(p, await other.issueClient('intruder')), (e) => refusedByNode(e));
  await assert.rejects(startDataPlane({ hsm, clientTrustAnchors: [a.certificatePem, b.certificatePem, other.certificatePem] }), (e) => isCofferError(e, 'COFFER_FORMAT_LIMIT'));
  await assert.rejects(startDataPlane({ hsm, clientTrustAnchors: ['not a certificate'] }), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
});
