// The management interface over real sockets (docs/node.md "Management interface"): mutual TLS
// against the operator root, the client's channel-binding check of the node, every endpoint, bad
// input, and backup out of one node into another made by the same development authorities.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, type webcrypto } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { ManagementClient, type ManagementClientOptions } from '../../src/management/client.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { ECDSA_SHA384, pemOf, randomSerialHex, x509 } from '../../src/formats/x509.js';
import { issueDeviceCertificate, issueOperatorCertificate } from '../../src/factory/ceremony.js';
import { DeviceIdentity } from '../../src/hsm/identity/identity.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { DeviceState } from '../../src/hsm/state/device_state.js';
import { spoolFiles, startManagement } from '../../src/node/management.js';
import { createTlsIdentity } from '../../src/node/tls_identity.js';
import { TLS_ATTESTATION_CONTEXT } from '../../src/formats/attestation.js';
import {
  BACKUP_ID_HEADER, MANAGEMENT_ROUTES, decodeClusterCsrResponse, decodeEmptyAnswer, decodeErrorAnswer, decodeNodeHealth, decodeNodeIdentity, decodeRestoreSummary,
} from '../../src/formats/management.js';
import { CLUSTER_NS } from '../../src/formats/cluster_record.js';
import { SYNC_KEY_ID, decodeSyncKeyRecord } from '../../src/formats/sync_key_record.js';
import { flip } from '../helpers.js';
import { codeOf, foreignCa, issueClientCredential, raw, startIdentityServer, startTestNode, type ClientCredential, type TestNode } from './management_support.js';

const CLUSTER_ID = 'cluster-abcdefgh234';
let authorities: DevelopmentAuthorities;
let credential: ClientCredential;
let a: TestNode;
let b: TestNode;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  credential = await issueClientCredential(authorities.operator);
  [a, b] = await Promise.all([startTestNode(authorities), startTestNode(authorities)]);
});
after(async () => {
  for (const n of [a, b]) {
    await n.close();
    rmSync(n.dataDir, { recursive: true, force: true });
  }
});

function clientOptions(node: TestNode, overrides: Partial<ManagementClientOptions> = {}): ManagementClientOptions {
  return {
    host: '127.0.0.1', port: node.management.port, ...credential,
    manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate), ...overrides,
  };
}
function client(node: TestNode, overrides: Partial<ManagementClientOptions> = {}): ManagementClient {
  return new ManagementClient(clientOptions(node, overrides));
}
async function rejectsWith(p: Promise<unknown>, code: ErrorCode, detail: Record<string, unknown> = {}): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(isCofferError(e, code), `expected ${code}, got ${String(e)}`);
    for (const [k, v] of Object.entries(detail)) assert.equal(e.detail[k], v, k);
    return true;
  });
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Initialises the cluster on `node` over the management interface, then activates it and makes a
 * crypto user with a key in-process (the data plane's part is tested elsewhere). */
async function initialiseWithKey(node: TestNode): Promise<void> {
  const c = client(node);
  const ca = await createDevelopmentCustomerCa();
  const csrPem = await c.clusterCsr(CLUSTER_ID);
  await c.initialiseCluster({ certificatePem: await ca.signClusterCsr(csrPem), trustAnchorPem: ca.certificatePem, preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789' });
  c.close();
  await node.hsm.activate('preco-password', 'admin-password-1');
  const admin = node.hsm.openSession();
  await admin.login('admin', 'admin-password-1');
  await admin.createUser('alice', 'alice-password', 'crypto-user');
  admin.close();
  const alice = node.hsm.openSession();
  await alice.login('alice', 'alice-password');
  await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: 'k' }, { label: 'k' });
  alice.close();
}

test('the client verifies the node by its attested leaf, pins it, and reads health', async () => {
  assert.equal(TLS_ATTESTATION_CONTEXT, 'coffer node tls key v1\0'); // node and client share it (formats/attestation.ts); the value is on the wire
  const c = client(a);
  const node = await c.identity();
  assert.equal(node.serial, a.hsm.status().serial);
  assert.equal(node.leafFingerprint256, new X509Certificate(a.management.tls.certificatePem).fingerprint256);
  const h = await c.health({ digest: true });
  assert.equal(h.provisioning, 'COMMISSIONED');
  assert.equal(h.serial, a.hsm.status().serial);
  assert.equal(h.mode, 'NON_FIPS');
  assert.equal(h.cluster, 'UNINITIALISED');
  assert.equal(h.clusterId, null);
  assert.equal(h.usersInitialised, false);
  assert.equal(h.journalPosition, 0n);
  assert.equal(h.stateDigest, hex(a.hsm.stateDigest()));
  assert.equal(h.inFlightMax, a.dataPlane.load().inFlightMax);
  assert.equal(typeof h.loadPermille, 'number');
  assert.equal(typeof h.connections, 'number');
  c.close();
});

test('every answer of the node parses with the shared definitions (src/formats/management.ts)', async () => {
  const node = await startTestNode(authorities);
  const port = node.management.port;
  const call = async (route: { readonly method: string; readonly path: string }, body?: unknown, query = ''): Promise<unknown> => {
    const r = await raw(port, credential, route.method, route.path + query, body === undefined ? undefined : JSON.stringify(body));
    assert.equal(r.status, 200, `${route.method} ${route.path}: ${r.body.toString('utf8')}`);
    return JSON.parse(r.body.toString('utf8')) as unknown;
  };
  try {
    const identity = decodeNodeIdentity(await call(MANAGEMENT_ROUTES.identity));
    assert.equal(identity.deviceCertificatePem, node.hsm.provisioning.chain().deviceCertificate.pem);
    assert.deepEqual(identity.attestation, node.management.tls.attestation);
    const healthJson = (await call(MANAGEMENT_ROUTES.health)) as Record<string, unknown>;
    assert.equal(healthJson['journalPosition'], '0', 'a u64 travels as a decimal string');
    const health = decodeNodeHealth(healthJson);
    assert.equal(health.journalPosition, node.hsm.status().journalPosition);
    assert.equal(health.serial, node.hsm.status().serial);
    const ca = await createDevelopmentCustomerCa();
    const { csrPem } = decodeClusterCsrResponse(await call(MANAGEMENT_ROUTES.clusterCsr, { clusterId: CLUSTER_ID }));
    decodeEmptyAnswer(await call(MANAGEMENT_ROUTES.clusterInitialise, {
      certificatePem: await ca.signClusterCsr(csrPem), trustAnchorPem: ca.certificatePem, preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789',
    }));
    const backup = await raw(port, credential, MANAGEMENT_ROUTES.backup.method, MANAGEMENT_ROUTES.backup.path);
    assert.equal(backup.status, 200);
    const backupId = backup.headers[BACKUP_ID_HEADER];
    const summary = decodeRestoreSummary(JSON.parse((await raw(port, credential, MANAGEMENT_ROUTES.restore.method, MANAGEMENT_ROUTES.restore.path, backup.body)).body.toString('utf8')));
    assert.deepEqual([summary.backupId, summary.bytes], [backupId, backup.body.length]);
    decodeEmptyAnswer(await call(MANAGEMENT_ROUTES.zeroise));
    const refused = await raw(port, credential, MANAGEMENT_ROUTES.clusterCsr.method, MANAGEMENT_ROUTES.clusterCsr.path, '{}');
    assert.deepEqual(decodeErrorAnswer(JSON.parse(refused.body.toString('utf8'))), {
      code: 'COFFER_MANAGEMENT_REQUEST', message: 'Management request is not valid', detail: { reason: 'missing-field', field: 'clusterId' },
    });
  } finally {
    await node.close();
    rmSync(node.dataDir, { recursive: true, force: true });
  }
});

test('mutual TLS: no client certificate, a foreign CA, or a certificate without clientAuth is refused', async () => {
  const foreign = await issueClientCredential(await foreignCa());
  const serverAuthOnly = await issueClientCredential(authorities.operator, 'serverAuth');
  for (const [what, cred] of [['none', undefined], ['foreign', foreign], ['serverAuth', serverAuthOnly]] as const) {
    await assert.rejects(raw(a.management.port, cred, 'GET', '/v1/health'), (e: NodeJS.ErrnoException) => !isCofferError(e), `${what} must be refused`);
  }
  await rejectsWith(client(a, foreign).health({ digest: true }), 'COFFER_CONNECTION_LOST');
  assert.equal((await raw(a.management.port, credential, 'GET', '/v1/health')).status, 200); // the right one works
});

test('a client configured with other roots, or a leaf the attestation does not cover, refuses the node', async () => {
  const other = await createDevelopmentAuthorities();
  await rejectsWith(client(a, { manufacturerRootPem: pemOf(other.manufacturer.rootCertificate) }).identity(), 'COFFER_NODE_UNTRUSTED');
  await rejectsWith(client(a, { operatorRootPem: pemOf(other.operator.rootCertificate) }).identity(), 'COFFER_NODE_UNTRUSTED');
  // An impostor that relays the real device's identity but terminates TLS with its own leaf: the
  // attestation it forwards covers another key, so the channel binding fails.
  const real = await createTlsIdentity(a.hsm, ['127.0.0.1']);
  const impostorLeaf = await createTlsIdentity(b.hsm, ['127.0.0.1']);
  const impostor = await startTestNode(authorities, { tls: { ...real, keyPem: impostorLeaf.keyPem, certificatePem: impostorLeaf.certificatePem } });
  try {
    await rejectsWith(client(impostor).health({ digest: true }), 'COFFER_NODE_UNTRUSTED');
  } finally {
    await impostor.close();
    rmSync(impostor.dataDir, { recursive: true, force: true });
  }
});

test('the serial is the one the device key gives: certificates that name another device are refused', async () => {
  // A device key certified by the genuine manufacturer and operator, but under node a's serial.
  const identity = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const claimed = a.hsm.status().serial ?? '';
  const namedAs = async (issuer: { readonly rootCertificate: x509.X509Certificate; readonly rootPrivateKey: webcrypto.CryptoKey }): Promise<string> => pemOf(await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(), subject: [{ CN: [claimed] }], issuer: issuer.rootCertificate.subject,
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000),
    publicKey: new x509.PublicKey(identity.publicKeySpki()), signingKey: issuer.rootPrivateKey, signingAlgorithm: ECDSA_SHA384,
  }));
  const forged = await startIdentityServer(identity, { devicePem: await namedAs(authorities.manufacturer), operatorPem: await namedAs(authorities.operator) });
  // The same key with certificates that name its own serial: the impostor server itself is accepted.
  const deviceCert = await issueDeviceCertificate(authorities.manufacturer, identity.csrPem());
  const honest = await startIdentityServer(identity, { devicePem: pemOf(deviceCert), operatorPem: pemOf(await issueOperatorCertificate(authorities.operator, pemOf(deviceCert))) });
  try {
    await rejectsWith(client(a, { port: forged.port }).identity(), 'COFFER_NODE_UNTRUSTED', { reason: 'serial-mismatch', certificate: 'device' });
    assert.equal((await client(a, { port: honest.port }).identity()).serial, identity.serial);
  } finally {
    await forged.close();
    await honest.close();
  }
});

test('a client that names the serial it expects refuses any other genuine node', async () => {
  const serialA = a.hsm.status().serial ?? '';
  const serialB = b.hsm.status().serial ?? '';
  await rejectsWith(client(a, { expectedSerial: serialB }).identity(), 'COFFER_NODE_UNTRUSTED', { reason: 'unexpected-serial' });
  const c = client(a, { expectedSerial: serialA });
  assert.equal((await c.identity()).serial, serialA);
  c.close();
});

test('50 requests on one client reuse a socket without piling listeners on it, and warn nothing', async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  // Every request this process makes, seen as it gets its answer: its socket's listener counts then.
  const seen = new Map<Socket, Array<{ secureConnect: number; total: number }>>();
  const onRequest = (message: unknown): void => {
    const req = (message as { request: ClientRequest }).request;
    req.once('response', () => {
      const socket = req.socket;
      if (socket === null) return;
      const total = socket.eventNames().reduce((n, name) => n + socket.listenerCount(name), 0);
      seen.set(socket, [...(seen.get(socket) ?? []), { secureConnect: socket.listenerCount('secureConnect'), total }]);
    });
  };
  process.on('warning', onWarning);
  subscribe('http.client.request.start', onRequest);
  const c = client(a);
  try {
    for (let i = 0; i < 50; i++) assert.equal((await c.health({ digest: true })).serial, a.hsm.status().serial);
  } finally {
    c.close();
    unsubscribe('http.client.request.start', onRequest);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.map((w) => w.name), []);
  const reused = [...seen.values()].filter((counts) => counts.length > 11);
  assert.equal(reused.length, 1, 'the pinned requests share one keep-alive socket (else this test proves nothing)');
  for (const counts of seen.values()) {
    assert.ok(counts.every((c) => c.secureConnect <= 1), `secureConnect listeners: ${counts.map((c) => c.secureConnect).join(',')}`);
    const later = counts.slice(1).map((c) => c.total);
    assert.ok(later.every((n) => n === later[0]), `listeners per request on one socket stay the same: ${later.join(',')}`);
  }
});

test('bad paths, methods, JSON, sizes and cluster ids get clear 4xx errors', async () => {
  const port = a.management.port;
  const cases: Array<[string, string, string | undefined, number, string]> = [
    ['GET', '/v1/nothing', undefined, 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['DELETE', '/v1/health', undefined, 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['POST', '/v1/cluster/csr', '{not json', 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['POST', '/v1/cluster/csr', '[1,2]', 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['POST', '/v1/cluster/csr', '{"clusterId":"nope"}', 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['POST', '/v1/cluster/csr', '{}', 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['POST', '/v1/cluster/initialise', '{"certificatePem":"x"}', 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['POST', '/v1/cluster/csr', JSON.stringify({ clusterId: 'x'.repeat(70_000) }), 413, 'COFFER_FORMAT_LIMIT'],
    ['GET', '/v1/backup?clusterId=bad', undefined, 400, 'COFFER_MANAGEMENT_REQUEST'],
    ['GET', '/v1/backup', undefined, 400, 'COFFER_MANAGEMENT_REQUEST'], // no cluster yet, none given
    ['PUT', '/v1/restore', 'not a backup', 400, 'COFFER_FORMAT_BAD_MAGIC'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await raw(port, credential, method, path, body);
    assert.equal(r.status, status, `${method} ${path}`);
    assert.equal(codeOf(r), code, `${method} ${path}`);
  }
  assert.equal(a.hsm.status().cluster, 'UNINITIALISED'); // nothing above changed the device
  assert.deepEqual(spoolFiles(a.dataDir), []);
});

test('a restore over the size limit is refused with 413 before the device sees it', async () => {
  const small = await startTestNode(authorities, { restoreBytesMax: 1000 });
  try {
    const before = hex(small.hsm.stateDigest());
    const r = await raw(small.management.port, credential, 'PUT', '/v1/restore', new Uint8Array(5000));
    assert.equal(r.status, 413);
    assert.equal(codeOf(r), 'COFFER_FORMAT_LIMIT');
    assert.equal(hex(small.hsm.stateDigest()), before);
    assert.deepEqual(spoolFiles(small.dataDir), []);
  } finally {
    await small.close();
    rmSync(small.dataDir, { recursive: true, force: true });
  }
});

test('over the concurrent-request limit the node answers busy', async () => {
  const busy = await startTestNode(authorities, { requestsMax: 0 });
  try {
    const r = await raw(busy.management.port, credential, 'GET', '/v1/health');
    assert.equal(r.status, 503);
    assert.equal(codeOf(r), 'COFFER_NODE_BUSY');
    assert.equal(r.headers['retry-after'], '1');
  } finally {
    await busy.close();
    rmSync(busy.dataDir, { recursive: true, force: true });
  }
});

test('cluster CSR and initialise, backup out of one node, restore into another: same state; tampered: refused', async () => {
  await initialiseWithKey(a);
  assert.ok(a.refreshes.count >= 1, 'initialise re-issues the data-plane TLS identity');
  const ca = client(a);
  const health = await ca.health({ digest: true });
  assert.equal(health.cluster, 'INITIALISED');
  assert.equal(health.clusterId, CLUSTER_ID);
  assert.equal(health.activated, true);
  assert.equal(health.tokenObjects, 2);
  await rejectsWith(ca.clusterCsr(CLUSTER_ID), 'COFFER_CLUSTER_ALREADY_INITIALISED');

  const file = join(b.dataDir, 'a.backup');
  const got = await ca.backupToFile(file);
  assert.match(got.backupId, /^backup-[2-7a-zA-Z]{11}$/);
  await rejectsWith(ca.backupToFile(join(b.dataDir, 'x.backup'), 'cluster-zzzzzzzzzzz'), 'COFFER_MANAGEMENT_REQUEST'); // another cluster's id
  assert.deepEqual(spoolFiles(a.dataDir), []);

  const cb = client(b);
  const bBefore = hex(b.hsm.stateDigest());
  const bytes = readFileSync(file);
  const tampered = join(b.dataDir, 'tampered.backup');
  writeFileSync(tampered, flip(bytes, bytes.length - 200)); // a byte of the last body segment
  await rejectsWith(cb.restoreFromFile(tampered), 'COFFER_BACKUP_TAMPERED');
  assert.equal(hex(b.hsm.stateDigest()), bBefore, 'a refused restore changes nothing');
  assert.equal(b.refreshes.count, 0);

  const summary = await cb.restoreFromFile(file);
  assert.equal(summary.backupId, got.backupId);
  assert.equal(summary.objects, 2);
  assert.equal(hex(b.hsm.stateDigest()), hex(a.hsm.stateDigest()));
  assert.equal(b.refreshes.count, 1);
  const hb = await cb.health({ digest: true });
  assert.equal(hb.cluster, 'INITIALISED');
  assert.equal(hb.clusterId, CLUSTER_ID);
  assert.equal(hb.stateDigest, health.stateDigest);
  assert.deepEqual(spoolFiles(b.dataDir), []);
  ca.close();
  cb.close();
});

test('the cluster sync key made by initialise is in no answer of the management interface', async () => {
  const store = new MemoryRecordStore();
  const node = await startTestNode(authorities, {}, store);
  const port = node.management.port;
  const answers: Buffer[] = [];
  const call = async (route: { readonly method: string; readonly path: string }, body?: string | Uint8Array): Promise<Buffer> => {
    const r = await raw(port, credential, route.method, route.path, body);
    answers.push(r.body, Buffer.from(JSON.stringify(r.headers)));
    return r.body;
  };
  try {
    const ca = await createDevelopmentCustomerCa();
    const { csrPem } = decodeClusterCsrResponse(JSON.parse((await call(MANAGEMENT_ROUTES.clusterCsr, JSON.stringify({ clusterId: CLUSTER_ID }))).toString('utf8')));
    await call(MANAGEMENT_ROUTES.clusterInitialise, JSON.stringify({
      certificatePem: await ca.signClusterCsr(csrPem), trustAnchorPem: ca.certificatePem, preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789',
    }));
    await call(MANAGEMENT_ROUTES.clusterInitialise, '{"certificatePem":"x"}'); // a refusal, for its error answer
    await call(MANAGEMENT_ROUTES.clusterCsr, JSON.stringify({ clusterId: CLUSTER_ID }));
    for (const route of [MANAGEMENT_ROUTES.health, MANAGEMENT_ROUTES.identity]) await call(route);
    const blob = await call(MANAGEMENT_ROUTES.backup);
    assert.equal(blob.subarray(0, 4).toString('latin1'), 'CFBK', 'a backup came out');
    assert.equal(decodeRestoreSummary(JSON.parse((await call(MANAGEMENT_ROUTES.restore, blob)).toString('utf8'))).bytes, blob.length);
    const record = store.get(CLUSTER_NS, SYNC_KEY_ID);
    assert.ok(record !== undefined, 'initialise made the sync key');
    const key = decodeSyncKeyRecord(record).use((k) => Buffer.from(k));
    assert.ok(node.hsm.cluster.syncKeyId() !== null, 'and the restore kept it');
    const all = Buffer.concat(answers);
    for (const form of [key.subarray(0, 12), Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64').slice(0, 16))]) assert.equal(all.indexOf(form), -1);
  } finally {
    await node.close();
    rmSync(node.dataDir, { recursive: true, force: true });
  }
});

test('a client that aborts a backup download leaves no spool file', async () => {
  await new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port: a.management.port, path: `/v1/backup?clusterId=${CLUSTER_ID}`, rejectUnauthorized: false, agent: false, ...credential }, (res) => {
      res.destroy(); // hang up as soon as the stream starts
      resolve();
    });
    req.once('error', () => resolve());
    req.end();
  });
  for (let i = 0; i < 250 && spoolFiles(a.dataDir).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(spoolFiles(a.dataDir), []);
});

test('the client re-verifies when the node presents a new leaf (a restart on the same port)', async () => {
  const node = await startTestNode(authorities);
  const c = client(node);
  const first = await c.identity();
  const port = node.management.port;
  await node.management.close();
  const again = await startManagement({ hsm: node.hsm, dataPlane: node.dataPlane, dataDir: node.dataDir, port });
  try {
    assert.equal((await c.health({ digest: true })).serial, node.hsm.status().serial); // the pin fails, the client verifies afresh
    const second = await c.identity();
    assert.notEqual(second.leafFingerprint256, first.leafFingerprint256);
    assert.equal(second.leafFingerprint256, new X509Certificate(again.tls.certificatePem).fingerprint256);
  } finally {
    c.close();
    await again.close();
    await node.dataPlane.close();
    node.hsm.close();
    rmSync(node.dataDir, { recursive: true, force: true });
  }
});

test('zeroise erases the cluster, users and keys; the device stays commissioned', async () => {
  const c = client(b);
  const serial = b.hsm.status().serial;
  const before = b.refreshes.count;
  await c.zeroise();
  assert.equal(b.refreshes.count, before + 1);
  const h = await c.health({ digest: true });
  assert.equal(h.provisioning, 'COMMISSIONED');
  assert.equal(h.serial, serial);
  assert.equal(h.cluster, 'UNINITIALISED');
  assert.equal(h.usersInitialised, false);
  assert.equal(h.tokenObjects, 0);
  assert.notEqual(h.stateDigest, hex(a.hsm.stateDigest()));
  c.close();
});
