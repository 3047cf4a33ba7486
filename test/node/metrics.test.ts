// The node's Prometheus metrics (docs/metrics.md "Node"): GET /metrics on the management interface,
// scraped over mutual TLS like every management request, after real work over real TLS sockets.
// The text is read by an independent parser of the exposition format (test/prometheus_text.ts) and
// each figure must move by exactly the work done: N signatures, a failed login, a lockout, a BUSY
// answer, a backup, open sessions and connections. Without an operator client certificate the
// scrape is refused; with metrics off there is no /metrics.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hsm } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities, issueManagementClientCertificate, provisionDevelopmentDevice, saveDevelopmentAuthorities, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import { startManagement, type ManagementServer } from '../../src/node/management.js';
import { LATENCY_BUCKETS_S, NodeMetrics } from '../../src/node/metrics.js';
import { decodeNodeHealth, type NodeFigures } from '../../src/formats/management.js';
import { serveNode } from '../../src/node/serve.js';
import { createLogger } from '../../src/node/log.js';
import { Connection } from '../../src/client/connection.js';
import { isCofferError } from '../../src/errors.js';
import { ManagementClient } from '../../src/management/client.js';
import { pemOf } from '../../src/formats/x509.js';
import { FAST_KDF, codeOf, foreignCa, issueClientCredential, raw, type ClientCredential } from './management_support.js';
import { parsePrometheusText, sampleSum, samplesOf, type Family } from '../prometheus_text.js';

const ECDSA_SHA256 = { mechanism: 'CKM_ECDSA_SHA256' } as const;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

let authorities: DevelopmentAuthorities;
let credential: ClientCredential;
let hsm: Hsm;
let plane: DataPlane;
let management: ManagementServer;
let dataDir: string;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  credential = await issueManagementClientCertificate(authorities.operator, 'metrics test');
  const metrics = new NodeMetrics();
  hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF, onEvent: (e) => metrics.onHsmEvent(e) });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  await hsm.initialiseUsers('preco-password', 'appliance-credential-0123456789');
  await hsm.activate('preco-password', 'admin-password-1');
  const admin = hsm.openSession();
  await admin.login('admin', 'admin-password-1');
  await admin.createUser('alice', 'alice-password', 'crypto-user');
  await admin.createUser('mallory', 'mallory-password', 'crypto-user');
  admin.close();
  // One request in flight per connection: a second one sent at once is answered BUSY.
  plane = await startDataPlane({ hsm, metrics, inFlightMax: 1 });
  metrics.attach({ hsm, dataPlane: plane });
  dataDir = mkdtempSync(join(tmpdir(), 'coffer-metrics-'));
  management = await startManagement({ hsm, dataPlane: plane, dataDir, metrics });
});
after(async () => {
  await management.close();
  await plane.close();
  hsm.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function healthFigures(): Promise<NodeFigures> {
  const r = await raw(management.port, credential, 'GET', '/v1/health');
  assert.equal(r.status, 200);
  const figures = decodeNodeHealth(JSON.parse(r.body.toString('utf8'))).figures;
  assert.ok(figures !== null, 'a node with metrics on reports its figures in health');
  return figures;
}

async function scrape(): Promise<Map<string, Family>> {
  const r = await raw(management.port, credential, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(r.body.toString('utf8'));
}

const signs = (f: Map<string, Family>, outcome = 'ok'): number => sampleSum(f, 'coffer_node_operations_total', { op: 'SIGN', mechanism: 'CKM_ECDSA_SHA256', outcome });

test('every family is typed and parses; the node figures are there from the start', async () => {
  const f = await scrape();
  for (const name of ['coffer_node_operations_total', 'coffer_node_request_duration_seconds', 'coffer_node_busy_total', 'coffer_node_logins_total', 'coffer_node_lockouts_total',
    'coffer_node_sessions_open', 'coffer_node_connections_open', 'coffer_node_token_objects', 'coffer_node_users', 'coffer_node_journal_head_seq', 'coffer_node_journal_mode', 'coffer_node_info']) {
    assert.ok(f.has(name), name);
  }
  assert.equal(f.get('coffer_node_operations_total')?.type, 'counter');
  assert.equal(f.get('coffer_node_request_duration_seconds')?.type, 'histogram');
  const admin = hsm.openSession();
  await admin.login('admin', 'admin-password-1');
  assert.equal(sampleSum(f, 'coffer_node_users'), admin.listUsers().length, 'admin, alice, mallory and the appliance user');
  admin.close();
  assert.equal(sampleSum(f, 'coffer_node_journal_mode', { mode: 'solo' }), 1);
  assert.equal(sampleSum(f, 'coffer_node_info', { serial: hsm.status().serial ?? '' }), 1);
  assert.equal(samplesOf(f, 'coffer_node_last_backup_age_seconds').length, 0, 'no backup since start: no age');
});

test('N signatures move the SIGN counter of their mechanism by N, and its histogram count by N', async () => {
  const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
  try {
    const s = await c.openSession();
    await c.login(s, 'alice', 'alice-password', 'crypto-user');
    const { privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' });
    const figuresBefore = await healthFigures();
    const before = await scrape();
    assert.equal(sampleSum(before, 'coffer_node_sessions_open'), 1);
    assert.equal(sampleSum(before, 'coffer_node_connections_open'), 1);
    assert.equal(sampleSum(before, 'coffer_node_token_objects'), hsm.status().tokenObjects);
    const n = 37;
    for (let i = 0; i < n; i++) await c.sign(s, privateHandle, ECDSA_SHA256, enc(`message ${i}`));
    await assert.rejects(c.sign(s, 999_999, ECDSA_SHA256, enc('no such key')), (e) => isCofferError(e));
    const batch = await c.call('SIGN_BATCH', { session: s, items: [1, 2, 3].map((i) => ({ handle: privateHandle, params: ECDSA_SHA256, data: enc(`b${i}`) })) });
    assert.equal(batch.results.length, 3);
    const after = await scrape();
    assert.equal(signs(after) - signs(before), n);
    const hist = (f: Map<string, Family>): number => sampleSum(f, 'coffer_node_request_duration_seconds_count', { op: 'SIGN', mechanism: 'CKM_ECDSA_SHA256', outcome: 'ok' });
    assert.equal(hist(after) - hist(before), n);
    const refused = samplesOf(after, 'coffer_node_operations_total').filter((x) => x.labels['op'] === 'SIGN' && x.labels['outcome'] !== 'ok');
    assert.equal(refused.reduce((a, x) => a + x.value, 0) - samplesOf(before, 'coffer_node_operations_total').filter((x) => x.labels['op'] === 'SIGN' && x.labels['outcome'] !== 'ok').reduce((a, x) => a + x.value, 0), 1);
    assert.ok(refused.every((x) => x.labels['outcome']?.startsWith('COFFER_')), 'a refusal is labelled with its error code');
    const batched = (f: Map<string, Family>): number => sampleSum(f, 'coffer_node_operations_total', { op: 'SIGN_BATCH', mechanism: 'CKM_ECDSA_SHA256', outcome: 'ok' });
    assert.equal(batched(after) - batched(before), 3, 'a batch counts its items');
    // Health carries the same running totals for the control plane: the operations answered in
    // between (n signatures, the refused one, the batch's 3 items, plus the scrape-free calls: none)
    // and one latency count per request.
    const figuresAfter = await healthFigures();
    assert.equal(figuresAfter.operations - figuresBefore.operations, n + 1 + 3);
    const requestsOf = (f: NodeFigures): number => f.latencyCounts.reduce((a, x) => a + x, 0);
    assert.equal(requestsOf(figuresAfter) - requestsOf(figuresBefore), n + 1 + 1);
    assert.deepEqual(figuresAfter.latencyBoundsS, LATENCY_BUCKETS_S);
    assert.equal(figuresAfter.latencyCounts.length, LATENCY_BUCKETS_S.length + 1);
  } finally {
    c.close();
  }
  // The connection and its session are gone once the node has seen the close.
  for (let i = 0; i < 200; i++) {
    const f = await scrape();
    if (sampleSum(f, 'coffer_node_connections_open') === 0 && sampleSum(f, 'coffer_node_sessions_open') === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('connection and session still counted open after the client closed');
});

test('a failed login counts as failed; five lock the user: the lockout counter moves by one', async () => {
  const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
  try {
    const before = await scrape();
    const s = await c.openSession();
    for (let i = 0; i < 5; i++) await assert.rejects(c.login(s, 'mallory', 'wrong-password', 'crypto-user'), (e) => isCofferError(e));
    await c.login(s, 'alice', 'alice-password', 'crypto-user');
    const after = await scrape();
    assert.equal(sampleSum(after, 'coffer_node_logins_total', { outcome: 'failed' }) - sampleSum(before, 'coffer_node_logins_total', { outcome: 'failed' }), 5);
    assert.equal(sampleSum(after, 'coffer_node_logins_total', { outcome: 'ok' }) - sampleSum(before, 'coffer_node_logins_total', { outcome: 'ok' }), 1);
    assert.equal(sampleSum(after, 'coffer_node_lockouts_total') - sampleSum(before, 'coffer_node_lockouts_total'), 1);
    assert.ok(!after.get('coffer_node_logins_total')?.samples.some((x) => Object.values(x.labels).includes('mallory')), 'no user name in a label');
  } finally {
    c.close();
  }
});

test('a request over the connection in-flight limit is answered BUSY and counted', async () => {
  const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
  try {
    const before = await scrape();
    const s = await c.openSession();
    // Two RANDOM calls at once on a connection that allows one: the node answers one of them BUSY
    // (the client may retry it; what matters is the node's count).
    await Promise.allSettled([c.random(s, 16), c.random(s, 16), c.random(s, 16)]);
    const after = await scrape();
    const busy = sampleSum(after, 'coffer_node_busy_total', { op: 'RANDOM' }) - sampleSum(before, 'coffer_node_busy_total', { op: 'RANDOM' });
    assert.ok(busy >= 1);
    assert.equal((await healthFigures()).busy, sampleSum(after, 'coffer_node_busy_total'), 'health counts every BUSY answer, as /metrics does');
  } finally {
    c.close();
  }
});

test('a backup sets the last-backup age and counts; the journal head is reported', async () => {
  const client = new ManagementClient({
    host: '127.0.0.1', port: management.port, ...credential,
    manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
  });
  try {
    const before = await scrape();
    const path = join(dataDir, 'backup.bin');
    const { backupId } = await client.backupToFile(path, 'cluster-metricsTest234');
    const after = await scrape();
    assert.equal(sampleSum(after, 'coffer_node_backups_total') - sampleSum(before, 'coffer_node_backups_total'), 1);
    const age = samplesOf(after, 'coffer_node_last_backup_age_seconds');
    assert.equal(age.length, 1);
    assert.equal(age[0]?.labels['backup_id'], backupId);
    assert.ok((age[0]?.value ?? -1) >= 0 && (age[0]?.value ?? Infinity) < 3600);
    assert.equal(sampleSum(after, 'coffer_node_journal_head_seq'), Number(hsm.journal.head().seq));
  } finally {
    client.close();
  }
});

test('the scrape takes the management interface\'s rule: no or a foreign client certificate is refused', async () => {
  await assert.rejects(raw(management.port, undefined, 'GET', '/metrics'));
  const foreign = await issueClientCredential(await foreignCa());
  await assert.rejects(raw(management.port, foreign, 'GET', '/metrics'));
  const post = await raw(management.port, credential, 'POST', '/metrics', '');
  assert.equal(post.status, 400);
  assert.equal(codeOf(post), 'COFFER_MANAGEMENT_REQUEST');
});

test('serveNode: metrics on by default; with metrics off there is no /metrics', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-metrics-serve-'));
  const log = createLogger({ level: 'silent' });
  try {
    saveDevelopmentAuthorities(authorities, join(dir, 'authorities'));
    for (const metrics of ['on', 'off'] as const) {
      const node = await serveNode({ dataDir: join(dir, metrics), development: true, log, authoritiesDir: join(dir, 'authorities'), managementPort: 0, ...(metrics === 'on' ? {} : { metrics }) });
      try {
        assert.ok(node.management !== undefined);
        assert.equal(node.metrics !== undefined, metrics === 'on');
        const r = await raw(node.management.port, credential, 'GET', '/metrics');
        if (metrics === 'on') {
          assert.equal(r.status, 200);
          const f = parsePrometheusText(r.body.toString('utf8'));
          assert.equal(sampleSum(f, 'coffer_node_info', { serial: node.hsm.status().serial ?? '' }), 1);
          assert.ok(f.has('process_cpu_seconds_total'), 'the process figures of prom-client are served too');
          const h = await raw(node.management.port, credential, 'GET', '/v1/health');
          assert.equal(decodeNodeHealth(JSON.parse(h.body.toString('utf8'))).figures?.operations, 0, 'with metrics on, health carries the figures');
        } else {
          assert.equal(r.status, 400);
          assert.equal(codeOf(r), 'COFFER_MANAGEMENT_REQUEST');
          const h = await raw(node.management.port, credential, 'GET', '/v1/health');
          assert.equal(decodeNodeHealth(JSON.parse(h.body.toString('utf8'))).figures, null, 'with metrics off, health carries no figures');
        }
      } finally {
        await node.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
