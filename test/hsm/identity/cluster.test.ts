// The cluster identity inside a device (src/hsm/identity/cluster.ts, docs/cluster-identity.md): the cluster
// CSR, initialisation and every refusal of it (with no state change), TLS leaves checked by
// OpenSSL through node:crypto and a real TLS handshake, backup/restore of the identity, and
// zeroisation.

import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { } from '../../../src/hsm/identity/cluster.js';
import { checkClusterRecord } from '../../../src/formats/cluster_record.js';
import { createDevelopmentAuthorities, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import { Hsm } from '../../../src/hsm/device.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { SealedStore, deriveStorageKey } from '../../../src/hsm/store/sealed_store.js';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseCsr, subjectField } from '../../../src/formats/x509.js';
import { FailingStore } from '../store/failing_store.js';
import { ADMIN_PW, APPLIANCE_PW, CLUSTER, PRECO, activateWithAlice, backupOf, commissionedDevice, hex, rejects, rejectsAsync } from '../backup/backup_support.js';
import { DAY_MS, createDevelopmentCustomerCa, initialisedDevice, signWith, testCa, tlsKeyPair } from './cluster_support.js';

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;
let otherCa: DevelopmentCustomerCa;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
  otherCa = await createDevelopmentCustomerCa();
});

const init = (certificatePem: string, trustAnchorPem = ca.certificatePem) => ({ certificatePem, trustAnchorPem, preCoPassword: PRECO, applianceCredential: APPLIANCE_PW });

describe('cluster CSR', () => {
  test('is a verified P-384 request with CN = cluster id; the state and status follow', async () => {
    const hsm = await commissionedDevice(authorities);
    assert.equal(hsm.cluster.state(), 'UNINITIALISED');
    assert.equal(hsm.cluster.csrPem(), null);
    const pem = await hsm.cluster.createCsr(CLUSTER);
    const csr = parseCsr(pem);
    assert.equal(await csr.verify(), true);
    assert.equal(subjectField(csr, 'CN'), CLUSTER);
    const key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.equal(hsm.cluster.state(), 'CSR_ISSUED');
    assert.equal(hsm.cluster.csrPem(), pem);
    const status = hsm.status();
    assert.equal(status.cluster, 'CSR_ISSUED');
    assert.equal(status.clusterId, CLUSTER);
    assert.equal(status.usersInitialised, false);
  });

  test('a repeated (or concurrent) call returns the same key; another cluster id is refused', async () => {
    const hsm = await commissionedDevice(authorities);
    const [a, b] = await Promise.all([hsm.cluster.createCsr(CLUSTER), hsm.cluster.createCsr(CLUSTER)]);
    assert.equal(a, b);
    assert.equal(await hsm.cluster.createCsr(CLUSTER), a);
    const digest = hex(hsm.stateDigest());
    await rejectsAsync(hsm.cluster.createCsr('cluster-otherotherot'), 'COFFER_CLUSTER_ALREADY_INITIALISED');
    assert.equal(hex(hsm.stateDigest()), digest);
    assert.equal(hsm.cluster.clusterId(), CLUSTER);
  });

  test('a malformed cluster id and an uncommissioned device are refused', async () => {
    const hsm = await commissionedDevice(authorities);
    for (const bad of ['', 'a b', 'x'.repeat(65), '-leading', 'cluster/1']) await rejectsAsync(hsm.cluster.createCsr(bad), 'COFFER_DATA_INVALID');
    assert.equal(hsm.cluster.state(), 'UNINITIALISED');
    const fresh = Hsm.open({ store: new MemoryRecordStore() });
    await rejectsAsync(fresh.cluster.createCsr(CLUSTER), 'COFFER_DEVICE_NOT_COMMISSIONED');
    assert.equal(fresh.status().cluster, 'UNINITIALISED');
  });
});

describe('cluster initialise', () => {
  let hsm: Hsm;
  let csr: string;
  before(async () => {
    hsm = await commissionedDevice(authorities);
    csr = await hsm.cluster.createCsr(CLUSTER);
  });

  /** Every refusal leaves the device exactly as it was: CSR_ISSUED, no users, same records. */
  async function refusedWithoutChange(p: () => Promise<unknown>, code: Parameters<typeof rejectsAsync>[1]): Promise<void> {
    const digest = hex(hsm.stateDigest());
    await rejectsAsync(p(), code);
    assert.equal(hsm.cluster.state(), 'CSR_ISSUED');
    assert.equal(hsm.cluster.certificatePem(), null);
    assert.equal(hsm.cluster.trustAnchorPem(), null);
    assert.equal(hsm.status().usersInitialised, false);
    assert.equal(hex(hsm.stateDigest()), digest);
  }

  test('a certificate for another key is COFFER_CLUSTER_CERT_MISMATCH', async () => {
    const other = await commissionedDevice(authorities);
    const foreign = await ca.signClusterCsr(await other.cluster.createCsr(CLUSTER));
    await refusedWithoutChange(() => hsm.cluster.initialise(init(foreign)), 'COFFER_CLUSTER_CERT_MISMATCH');
  });

  test('a certificate signed by a different CA, or an expired one, is COFFER_CLUSTER_CERT_MISMATCH', async () => {
    await refusedWithoutChange(async () => hsm.cluster.initialise(init(await otherCa.signClusterCsr(csr))), 'COFFER_CLUSTER_CERT_MISMATCH');
    // Same issuer name, another key: only the signature tells them apart.
    const [twinA, twinB] = await Promise.all([testCa('twin', { ca: true }), testCa('twin', { ca: true })]);
    await refusedWithoutChange(async () => hsm.cluster.initialise(init(await signWith(twinA, csr, true), twinB.pem)), 'COFFER_CLUSTER_CERT_MISMATCH');
    const past = { nowMs: () => Date.now() - 30 * DAY_MS };
    const expired = await ca.signClusterCsr(csr, { clock: past, validityMs: DAY_MS });
    await refusedWithoutChange(() => hsm.cluster.initialise(init(expired)), 'COFFER_CLUSTER_CERT_MISMATCH');
  });

  test('an anchor that is not a CA (or cannot have a CA below it) is COFFER_CERT_INVALID', async () => {
    const notCa = await testCa('not a CA', { ca: false });
    await refusedWithoutChange(async () => hsm.cluster.initialise(init(await signWith(notCa, csr, true), notCa.pem)), 'COFFER_CERT_INVALID');
    const pathZero = await testCa('path length 0', { ca: true, pathLength: 0 });
    await refusedWithoutChange(async () => hsm.cluster.initialise(init(await signWith(pathZero, csr, true), pathZero.pem)), 'COFFER_CERT_INVALID');
  });

  test('a cluster certificate that is not a CA (it could not issue TLS leaves) is COFFER_CERT_INVALID', async () => {
    const anchor = await testCa('customer', { ca: true });
    await refusedWithoutChange(async () => hsm.cluster.initialise(init(await signWith(anchor, csr, false), anchor.pem)), 'COFFER_CERT_INVALID');
    // The same anchor with a CA cluster certificate is accepted, on another device with the same key profile.
    const other = await commissionedDevice(authorities);
    await other.cluster.initialise(init(await signWith(anchor, await other.cluster.createCsr(CLUSTER), true), anchor.pem));
    assert.equal(other.cluster.state(), 'INITIALISED');
  });

  test('garbage PEM is COFFER_CERT_INVALID', async () => {
    await refusedWithoutChange(() => hsm.cluster.initialise(init('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')), 'COFFER_CERT_INVALID');
    await refusedWithoutChange(() => hsm.cluster.initialise(init(csr)), 'COFFER_CERT_INVALID');
  });

  test('a bad password refuses before anything is written', async () => {
    await refusedWithoutChange(async () => hsm.cluster.initialise({ ...init(await ca.signClusterCsr(csr)), preCoPassword: 'short' }), 'COFFER_PASSWORD_INVALID');
  });

  test('before a CSR: COFFER_CLUSTER_NO_CSR, nothing written', async () => {
    const fresh = await commissionedDevice(authorities);
    const digest = hex(fresh.stateDigest());
    await rejectsAsync(fresh.cluster.initialise(init(await ca.signClusterCsr(csr))), 'COFFER_CLUSTER_NO_CSR');
    assert.equal(fresh.cluster.state(), 'UNINITIALISED');
    assert.equal(hex(fresh.stateDigest()), digest);
  });

  test('a store failure at commit leaves neither certificates nor users', async () => {
    const store = new FailingStore();
    const failing = await commissionedDevice(authorities, { store });
    const pem = await ca.signClusterCsr(await failing.cluster.createCsr(CLUSTER));
    const digest = hex(failing.stateDigest());
    store.failNext = true;
    await assert.rejects(failing.cluster.initialise(init(pem)), /simulated store failure/);
    assert.equal(failing.cluster.state(), 'CSR_ISSUED');
    assert.equal(failing.status().usersInitialised, false);
    assert.equal(hex(failing.stateDigest()), digest);
    await failing.cluster.initialise(init(pem)); // and the same request then succeeds
    assert.equal(failing.cluster.state(), 'INITIALISED');
  });

  test('a good certificate initialises; the admin activates; a second initialise is refused', async () => {
    const certificatePem = await ca.signClusterCsr(csr);
    await hsm.cluster.initialise(init(certificatePem));
    assert.equal(hsm.cluster.state(), 'INITIALISED');
    assert.equal(hsm.cluster.certificatePem(), certificatePem);
    assert.equal(hsm.cluster.trustAnchorPem(), ca.certificatePem);
    assert.equal(hsm.cluster.csrPem(), csr);
    assert.deepEqual([hsm.status().cluster, hsm.status().usersInitialised, hsm.status().activated], ['INITIALISED', true, false]);
    const digest = hex(hsm.stateDigest());
    await rejectsAsync(hsm.cluster.initialise(init(certificatePem)), 'COFFER_CLUSTER_ALREADY_INITIALISED');
    await rejectsAsync(hsm.cluster.createCsr(CLUSTER), 'COFFER_CLUSTER_ALREADY_INITIALISED');
    assert.equal(hex(hsm.stateDigest()), digest);
    await hsm.activate(PRECO, ADMIN_PW);
    const s = hsm.openSession();
    await s.login('admin', ADMIN_PW);
    assert.equal(hsm.status().activated, true);
    s.close();
  });

  test('a device whose users were initialised directly refuses, keeping CSR_ISSUED', async () => {
    const legacy = await commissionedDevice(authorities);
    await legacy.initialiseUsers(PRECO, APPLIANCE_PW);
    const pem = await ca.signClusterCsr(await legacy.cluster.createCsr(CLUSTER));
    await rejectsAsync(legacy.cluster.initialise(init(pem)), 'COFFER_USER_EXISTS');
    assert.equal(legacy.cluster.state(), 'CSR_ISSUED');
  });
});

describe('TLS leaves', () => {
  let hsm: Hsm;
  let servers: Server[] = [];
  before(async () => {
    hsm = await initialisedDevice(authorities, ca);
  });
  after(() => {
    for (const s of servers) s.close();
    servers = [];
  });

  test('before INITIALISED: COFFER_CLUSTER_NOT_INITIALISED', async () => {
    const fresh = await commissionedDevice(authorities);
    await rejectsAsync(fresh.cluster.issueTlsCertificate(tlsKeyPair().spki, { hosts: ['localhost'] }), 'COFFER_CLUSTER_NOT_INITIALISED');
    await fresh.cluster.createCsr(CLUSTER);
    await rejectsAsync(fresh.cluster.issueTlsCertificate(tlsKeyPair().spki, { hosts: ['localhost'] }), 'COFFER_CLUSTER_NOT_INITIALISED');
  });

  test('the leaf chains to the customer CA (OpenSSL via node:crypto) with the documented profile', async () => {
    const { spki } = tlsKeyPair();
    const before = Date.now();
    const { leafPem, chainPem } = await hsm.cluster.issueTlsCertificate(spki, { hosts: ['127.0.0.1', 'Node-1.Example.internal', '::1'] });
    assert.deepEqual(chainPem, [leafPem, hsm.cluster.certificatePem()]);
    const leaf = new X509Certificate(leafPem);
    const cluster = new X509Certificate(chainPem[1] ?? '');
    const root = new X509Certificate(ca.certificatePem);
    assert.equal(leaf.checkIssued(cluster), true);
    assert.equal(leaf.verify(cluster.publicKey), true);
    assert.equal(cluster.checkIssued(root), true);
    assert.equal(cluster.verify(root.publicKey), true);
    assert.equal(leaf.ca, false);
    assert.equal(cluster.ca, true);
    assert.equal(leaf.subject, `CN=${CLUSTER}`);
    assert.equal(leaf.issuer, cluster.subject);
    assert.equal(leaf.subjectAltName, 'IP Address:127.0.0.1, DNS:node-1.example.internal, IP Address:0:0:0:0:0:0:0:1');
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(Buffer.compare(leaf.publicKey.export({ format: 'der', type: 'spki' }), spki), 0);
    const validMs = Date.parse(leaf.validTo) - before;
    assert.ok(validMs > 7 * DAY_MS - 60_000 && validMs <= 7 * DAY_MS + 60_000, `7 days of validity, got ${validMs}`);
    const shortLeaf = new X509Certificate((await hsm.cluster.issueTlsCertificate(spki, { hosts: ['localhost'], validityMs: 3_600_000 })).leafPem);
    assert.ok(Date.parse(shortLeaf.validTo) - before <= 3_600_000 + 60_000);
  });

  test('bad requests are refused with typed errors', async () => {
    const { spki } = tlsKeyPair();
    for (const hosts of [[], ['bad host'], ['-x.example'], ['a'.repeat(64) + '.example'], ['*.example.com'], Array.from({ length: 33 }, (_, i) => `h${i}`)]) {
      await rejectsAsync(hsm.cluster.issueTlsCertificate(spki, { hosts }), 'COFFER_DATA_INVALID');
    }
    for (const validityMs of [0, 1000, 91 * DAY_MS, 1.5 * DAY_MS + 0.5]) {
      await rejectsAsync(hsm.cluster.issueTlsCertificate(spki, { hosts: ['localhost'], validityMs }), 'COFFER_DATA_INVALID');
    }
    await rejectsAsync(hsm.cluster.issueTlsCertificate(new Uint8Array([1, 2, 3]), { hosts: ['localhost'] }), 'COFFER_CRYPTO_KEY_INVALID');
    await rejectsAsync(hsm.cluster.issueTlsCertificate(tlsKeyPair('secp256k1').spki, { hosts: ['localhost'] }), 'COFFER_CRYPTO_KEY_INVALID');
  });

  /** Connects to `port` and resolves with whether the server's chain was accepted (or the error). */
  async function handshake(port: number, caPem: string, servername?: string): Promise<{ authorized: boolean; error?: string }> {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ca: caPem, minVersion: 'TLSv1.3', ...(servername === undefined ? {} : { servername }) });
    try {
      await once(socket, 'secureConnect');
      return { authorized: socket.authorized };
    } catch (e) {
      return { authorized: false, error: (e as NodeJS.ErrnoException).code ?? String(e) };
    } finally {
      socket.destroy();
    }
  }

  test('a real TLS 1.3 handshake: trusted with the customer CA only, and only for the leaf\'s hosts', async () => {
    const { spki, keyPem } = tlsKeyPair('P-384');
    const { chainPem } = await hsm.cluster.issueTlsCertificate(spki, { hosts: ['127.0.0.1', 'localhost'] });
    const server = createServer({ key: keyPem, cert: chainPem.join(''), minVersion: 'TLSv1.3' }, (s) => s.end());
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    assert.deepEqual(await handshake(port, ca.certificatePem), { authorized: true });
    assert.deepEqual(await handshake(port, ca.certificatePem, 'localhost'), { authorized: true });
    const wrongCa = await handshake(port, otherCa.certificatePem);
    assert.equal(wrongCa.authorized, false);
    assert.match(wrongCa.error ?? '', /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY|CERT_SIGNATURE_FAILURE/);
    const wrongHost = await handshake(port, ca.certificatePem, 'other.example');
    assert.equal(wrongHost.error, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

describe('backup and restore carry the cluster identity', () => {
  test('a restored device has the same id, CSR, certificate and anchor, and issues leaves under them', async () => {
    const source = await initialisedDevice(authorities, ca);
    const blob = backupOf(source);
    const target = await commissionedDevice(authorities);
    const session = target.openSession();
    await target.restoreBackup({ length: blob.length, read: (offset, length) => blob.slice(offset, offset + length) });
    assert.equal(target.cluster.state(), 'INITIALISED');
    assert.equal(target.status().clusterId, CLUSTER);
    assert.equal(target.cluster.csrPem(), source.cluster.csrPem());
    assert.equal(target.cluster.certificatePem(), source.cluster.certificatePem());
    assert.equal(target.cluster.trustAnchorPem(), ca.certificatePem);
    assert.equal(hex(target.stateDigest()), hex(source.stateDigest()));
    rejects(() => session.listUsers(), 'COFFER_SESSION_CLOSED');
    const { leafPem } = await target.cluster.issueTlsCertificate(tlsKeyPair().spki, { hosts: ['localhost'] });
    assert.equal(new X509Certificate(leafPem).verify(new X509Certificate(source.cluster.certificatePem() ?? '').publicKey), true);
    await target.activate(PRECO, ADMIN_PW);
  });

  test('a clone made at CSR_ISSUED holds the same key: a certificate for the source\'s CSR initialises it', async () => {
    const source = await commissionedDevice(authorities);
    const csr = await source.cluster.createCsr(CLUSTER);
    const blob = backupOf(source);
    const target = await commissionedDevice(authorities);
    await target.restoreBackup({ length: blob.length, read: (offset, length) => blob.slice(offset, offset + length) });
    assert.equal(target.cluster.csrPem(), csr);
    await target.cluster.initialise(init(await ca.signClusterCsr(csr)));
    assert.equal(target.cluster.state(), 'INITIALISED');
  });

  test('the backup record check knows each cluster record and refuses garbage', () => {
    rejects(() => checkClusterRecord('key', new Uint8Array([0x30, 0x03, 1, 2, 3])), 'COFFER_FORMAT_MALFORMED');
    rejects(() => checkClusterRecord('certificate', new Uint8Array([1, 2, 3])), 'COFFER_CERT_INVALID');
    rejects(() => checkClusterRecord('csr', new Uint8Array([1, 2, 3])), 'COFFER_CERT_INVALID');
    rejects(() => checkClusterRecord('newer-record', new Uint8Array([1])), 'COFFER_FORMAT_UNKNOWN_VERSION');
  });
});

describe('zeroise', () => {
  test('erases users, objects, quorum, config and the cluster; keeps the commissioned identity', async () => {
    const hsm = await initialisedDevice(authorities, ca);
    const { admin, alice } = await activateWithAlice(hsm);
    await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'k' });
    const before = hsm.status();
    assert.equal(before.tokenObjects, 1);
    await hsm.zeroise();
    const s = hsm.status();
    assert.deepEqual(
      { provisioning: s.provisioning, serial: s.serial, mode: s.mode, users: s.usersInitialised, activated: s.activated, objects: s.tokenObjects, sessions: s.sessions, cluster: s.cluster, clusterId: s.clusterId },
      { provisioning: 'COMMISSIONED', serial: before.serial, mode: before.mode, users: false, activated: false, objects: 0, sessions: 0, cluster: 'UNINITIALISED', clusterId: null },
    );
    rejects(() => admin.listUsers(), 'COFFER_SESSION_CLOSED');
    rejects(() => alice.find(), 'COFFER_SESSION_CLOSED');
    assert.equal(hsm.cluster.certificatePem(), null);
    const login = hsm.openSession();
    await rejectsAsync(login.login('admin', ADMIN_PW), 'COFFER_AUTH_FAILED');
    login.close();
    // A new cluster can be made on the same device.
    const csr = await hsm.cluster.createCsr('cluster-newnewnewnew');
    await hsm.cluster.initialise(init(await otherCa.signClusterCsr(csr), otherCa.certificatePem));
    await hsm.activate(PRECO, 'another-admin-pw');
    assert.equal(hsm.status().clusterId, 'cluster-newnewnewnew');
  });

  test('the store keeps only the device namespace; a backup still restores afterwards', async () => {
    const store = new MemoryRecordStore();
    const hsm = await initialisedDevice(authorities, ca, { store });
    const blob = backupOf(hsm);
    assert.ok(store.namespaces().includes('cluster') && store.namespaces().includes('user'));
    const deviceRecords = store.count('device');
    await hsm.zeroise();
    assert.deepEqual(store.namespaces(), ['device']);
    assert.equal(store.count('device'), deviceRecords);
    // Reopening the store finds the same, zeroised, commissioned device.
    const reopened = Hsm.open({ store });
    assert.deepEqual([reopened.status().provisioning, reopened.status().cluster, reopened.status().usersInitialised], ['COMMISSIONED', 'UNINITIALISED', false]);
    await hsm.restoreBackup({ length: blob.length, read: (offset, length) => blob.slice(offset, offset + length) });
    assert.equal(hsm.cluster.state(), 'INITIALISED');
  });

  test('on the sealed SQLite store, the erased records leave no trace in its files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-zeroise-'));
    try {
      const path = join(dir, 'store.sqlite');
      const secret = SecretBytes.random(32);
      const open = (): Hsm => Hsm.open({ store: existsSync(path) ? SealedStore.open({ path, storageKey: deriveStorageKey(secret) }) : SealedStore.create({ path, storageKey: deriveStorageKey(secret) }) });
      (await initialisedDevice(authorities, ca, { store: SealedStore.create({ path, storageKey: deriveStorageKey(secret) }) })).close();
      // The sealed bytes of every customer record, as they sit on disk (random nonces: unique).
      const raw = new Database(path, { readonly: true });
      const sealed = raw.prepare("SELECT v FROM records WHERE ns <> 'device'").all().map((r) => Buffer.from((r as { v: Buffer }).v).subarray(0, 32));
      raw.close();
      assert.ok(sealed.length >= 4, 'cluster and user records exist');
      const onDisk = (): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
      assert.ok(sealed.every((b) => onDisk().includes(b)), 'the records are found before zeroise (the check below can fail)');
      const hsm = open();
      await hsm.zeroise();
      const files = onDisk();
      assert.deepEqual(sealed.filter((b) => files.includes(b)).length, 0, 'no erased record survives in the store files, WAL included');
      hsm.close();
      assert.equal(onDisk().length > 0 && sealed.some((b) => onDisk().includes(b)), false);
      assert.equal(open().status().provisioning, 'COMMISSIONED');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an initialise still checking when zeroise runs stores nothing', async () => {
    const hsm = await commissionedDevice(authorities);
    const pem = await ca.signClusterCsr(await hsm.cluster.createCsr(CLUSTER));
    const pending = hsm.cluster.initialise(init(pem)); // suspended in its asynchronous checks
    await hsm.zeroise();
    await rejectsAsync(pending, 'COFFER_CLUSTER_NO_CSR');
    assert.deepEqual([hsm.cluster.state(), hsm.status().usersInitialised], ['UNINITIALISED', false]);
  });

  test('is atomic: a failing store changes nothing', async () => {
    const store = new FailingStore();
    const hsm = await initialisedDevice(authorities, ca, { store });
    const digest = hex(hsm.stateDigest());
    store.failNext = true;
    await assert.rejects(async () => { await hsm.zeroise(); }, /simulated store failure/);
    assert.equal(hex(hsm.stateDigest()), digest);
    assert.equal(hsm.cluster.state(), 'INITIALISED');
  });
});
