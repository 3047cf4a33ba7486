// The service's Prometheus metrics (docs/metrics.md "Service"), scraped over HTTP from the metrics
// port of a service started as the control-plane tests start it (SQLite, a directory archive,
// in-process nodes on real sockets, a manual orchestrator clock ticked by the test), driven through
// the real AWS SDK. The text is read by an independent parser of the exposition format and each
// figure must follow the work: API calls by operation and outcome, clusters and HSMs by state,
// the backup made on activation and its age as the clock moves, backups as DescribeBackups lists
// them, the journal head and each HSM's lag (journals relayed), the restore that clones a second HSM, the replacement of a killed one. The API port does not serve metrics, and the text holds
// neither the access key id, its secret, nor the account id.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  CloudHSMV2Client, CreateClusterCommand, type CreateClusterCommandInput, CreateHsmCommand, DescribeBackupsCommand, DescribeClustersCommand, InitializeClusterCommand, type Cluster as ApiCluster,
} from '@aws-sdk/client-cloudhsm-v2';
import { Cluster } from '../../src/client/cluster.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import type { Archive } from '../../src/storage/archive_port.js';
import type { MetadataStore } from '../../src/storage/metadata_port.js';
import { InProcessFleet, killInProcess } from './fleet/in_process_fleet.js';
import { fleetEnvironment, freePort, type FleetEnvironment } from './fleet/fleet_support.js';
import { signedRequest } from './api/api_support.js';
import { parsePrometheusText, sampleSum, samplesOf, type Family } from '../prometheus_text.js';

const REGION = 'us-east-1';
const KEY = { accessKeyId: 'AKIDMETRICSTEST00001', secretAccessKey: randomBytes(30).toString('base64'), accountId: '444455556666', actions: ['*'] };
const OTHER = { ...KEY, accessKeyId: 'AKIDMETRICSTEST00002', accountId: '777788889999' };
const ADMIN_PASSWORD = `admin-${randomBytes(9).toString('hex')}`;
const HOUR_MS = 3600_000;

let env: FleetEnvironment;
let metadata: MetadataStore;
let archive: Archive;
let fleet: InProcessFleet;
let service: RunningService;
let api: CloudHSMV2Client;
const clock = new ManualClock(Date.now());

before(async () => {
  env = await fleetEnvironment('metrics');
  metadata = SqliteMetadataStore.open({ path: join(env.dir, 'metadata.sqlite') });
  archive = await openFsArchive({ directory: join(env.dir, 'archive') });
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials, journal: 'relayed' });
  service = await startService({
    region: REGION, host: '127.0.0.1', port: 0, metricsPort: 0, metadata, archive, fleet, accessKeys: [KEY, OTHER], workDir: env.dir, logger: pino({ level: 'silent' }),
    clock, orchestrate: false, relayJournal: true, dataPlanePort: await freePort(['127.0.0.2', '127.0.0.3']),
    roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
  });
  api = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey } });
});

after(async () => {
  api?.destroy();
  await service?.close();
  await metadata?.close();
  await fleet?.close({ stopDevices: true });
  await archive?.close();
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
});

async function scrapeText(): Promise<string> {
  const port = service.metricsPort ?? assert.fail('metrics port served');
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return r.text();
}

async function scrape(): Promise<Map<string, Family>> {
  return parsePrometheusText(await scrapeText());
}

async function step(): Promise<void> {
  assert.equal(await service.orchestrator.tick(), true);
  await service.orchestrator.settled();
}

async function describe(clusterId: string): Promise<ApiCluster> {
  const out = await api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
  return out.Clusters?.[0] ?? assert.fail(`cluster ${clusterId} not listed`);
}

const calls = (f: Map<string, Family>, operation: string, outcome = 'ok'): number => sampleSum(f, 'coffer_service_api_calls_total', { operation, outcome });

test('API calls are counted by operation and outcome, with their latency; only GET /metrics is served there', async () => {
  const before = await scrape();
  for (let i = 0; i < 5; i++) await api.send(new DescribeClustersCommand({}));
  const wrong = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: 'not-the-secret' } });
  await assert.rejects(wrong.send(new DescribeClustersCommand({})));
  wrong.destroy();
  const after = await scrape();
  assert.equal(calls(after, 'DescribeClusters') - calls(before, 'DescribeClusters'), 5);
  const latency = (f: Map<string, Family>): number => sampleSum(f, 'coffer_service_api_call_duration_seconds_count', { operation: 'DescribeClusters' });
  assert.equal(latency(after) - latency(before), 5);
  // A call whose signature fails is refused before its operation is known: operation "none".
  const refused = samplesOf(after, 'coffer_service_api_calls_total').filter((s) => s.labels['outcome'] !== 'ok');
  assert.ok(refused.some((s) => s.labels['operation'] === 'none' && s.value >= 1), 'the refused call is counted with its error type');
  const port = service.metricsPort as number;
  assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 404);
  // The API port does not answer GET /metrics with metrics.
  const onApi = await fetch(`${service.endpoint}/metrics`);
  assert.notEqual(onApi.status, 200);
});

test('clusters, HSMs, backups, their ages, restores and replacements follow the work', { timeout: 600_000 }, async () => {
  const input = { HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'], Mode: 'NON_FIPS' };
  const clusterId = (await api.send(new CreateClusterCommand(input as CreateClusterCommandInput))).Cluster?.ClusterId as string;
  await step();
  let f = await scrape();
  assert.equal(sampleSum(f, 'coffer_service_clusters', { state: 'UNINITIALIZED' }), 1);
  assert.equal(sampleSum(f, 'coffer_service_hsms', { cluster_id: clusterId }), 0);

  await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' }));
  f = await scrape();
  assert.equal(sampleSum(f, 'coffer_service_hsms', { cluster_id: clusterId, state: 'CREATE_IN_PROGRESS' }), 1);
  await step();
  const uninitialised = await describe(clusterId);
  const signed = await env.customerCa.signClusterCsr(uninitialised.Certificates?.ClusterCsr as string);
  await api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: signed, TrustAnchor: env.customerCa.certificatePem }));
  await step();
  const initialised = await describe(clusterId);
  const endpoints = [{ host: initialised.Hsms?.[0]?.EniIp as string, port: service.config.dataPlanePort }];
  f = await scrape();
  assert.equal(sampleSum(f, 'coffer_service_backups', { cluster_id: clusterId }), 0);
  assert.equal(samplesOf(f, 'coffer_service_newest_backup_age_seconds').length, 0, 'no backup: no age');

  // Activation: the service backs the cluster up.
  // With journals relayed, activation is a journal entry: the orchestrator's ticks keep the relay
  // going while the call waits for it.
  let activated = false;
  const activation = Cluster.activate({ endpoints, ca: env.customerCa.certificatePem, preCoPassword: initialised.PreCoPassword as string, newAdminPassword: ADMIN_PASSWORD })
    .finally(() => (activated = true));
  while (!activated) {
    await step();
    await new Promise((r) => setTimeout(r, 50));
  }
  await activation;
  await step();
  f = await scrape();
  assert.equal(sampleSum(f, 'coffer_service_clusters', { state: 'ACTIVE' }), 1);
  assert.equal(sampleSum(f, 'coffer_service_hsms', { cluster_id: clusterId, state: 'ACTIVE' }), 1);
  assert.equal(sampleSum(f, 'coffer_service_backups', { cluster_id: clusterId, state: 'READY' }), 1);
  clock.advance(2 * HOUR_MS);
  f = await scrape();
  const age = sampleSum(f, 'coffer_service_newest_backup_age_seconds', { cluster_id: clusterId });
  assert.ok(age >= 2 * 3600 && age < 2 * 3600 + 600, `age ${age} s follows the service clock`);

  // A second HSM is restored from a fresh backup of the first: one restore, one more backup.
  const restoresBefore = sampleSum(f, 'coffer_service_restore_duration_seconds_count', { outcome: 'ok' });
  await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1b' }));
  await step();
  f = await scrape();
  assert.equal(sampleSum(f, 'coffer_service_hsms', { cluster_id: clusterId, state: 'ACTIVE' }), 2);
  assert.equal(sampleSum(f, 'coffer_service_restore_duration_seconds_count', { outcome: 'ok' }) - restoresBefore, 1);
  const listed = (await api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups ?? [];
  assert.ok(listed.length >= 2, 'the activation backup and the clone\'s');
  assert.equal(sampleSum(f, 'coffer_service_backups', { cluster_id: clusterId }), listed.length, 'as many as DescribeBackups lists');
  assert.equal(sampleSum(f, 'coffer_service_backups', { cluster_id: clusterId, state: 'READY' }), listed.filter((b) => b.BackupState === 'READY').length);
  assert.ok(sampleSum(f, 'coffer_service_newest_backup_age_seconds', { cluster_id: clusterId }) < 600, 'the newest backup is the fresh one');

  // The journal: the store's head as the metadata store holds it; each HSM's lag against the head it
  // reported at its last probe, which its management interface confirms.
  await step();
  f = await scrape();
  const storeHead = await metadata.journalHead(clusterId);
  assert.ok(storeHead >= 1, 'activation is a journal entry');
  assert.equal(sampleSum(f, 'coffer_service_journal_head_seq', { cluster_id: clusterId }), storeHead);
  const lags = samplesOf(f, 'coffer_service_hsm_journal_lag').filter((x) => x.labels['cluster_id'] === clusterId);
  assert.equal(lags.length, 2, 'one lag per probed HSM');
  for (const lag of lags) {
    const device = (await service.repository.hsm(lag.labels['hsm_id'] ?? ''))?.doc.device ?? assert.fail('device recorded');
    const hsmHead = Number((await fleet.management(device).health()).journalPosition);
    assert.equal(lag.value, storeHead - hsmHead);
  }

  // The console's live figures (CofferMonitoringService.DescribeHsmFigures, src/service/figures.ts):
  // between two probes 2 s apart on the service clock, N calls through the SDK show as a rate of at
  // least N / 2 s summed over the HSMs (the SDK's own STATUS calls add to it), with a p99.
  const admin = await Cluster.connect({ endpoints: (await describe(clusterId)).Hsms?.map((h) => ({ host: h.EniIp as string, port: service.config.dataPlanePort })) ?? [], ca: env.customerCa.certificatePem, credentials: { username: 'admin', password: ADMIN_PASSWORD, role: 'admin' } });
  try {
    await step();
    const n = 40;
    for (let i = 0; i < n; i++) await admin.random(16);
    clock.advance(2000);
    await step();
  } finally {
    await admin.close();
  }
  const figures = await signedRequest(service.endpoint, { target: 'CofferMonitoringService.DescribeHsmFigures', key: KEY, region: REGION, body: JSON.stringify({ ClusterId: clusterId }) });
  assert.equal(figures.status, 200);
  const hsmFigures = (figures.json?.['Hsms'] ?? []) as { HsmId: string; JournalLag: number | null; Samples: { OpsPerSecond: number | null; P99LatencyMs: number | null; LoadPermille: number }[] }[];
  assert.equal(hsmFigures.length, 2);
  const lastRates = hsmFigures.map((h) => h.Samples[h.Samples.length - 1]?.OpsPerSecond ?? 0);
  assert.ok(lastRates.reduce((a, x) => a + x, 0) * 2 >= 40, `rates ${lastRates.join(', ')} ops/s after 40 calls in 2 s`);
  assert.ok(hsmFigures.some((h) => (h.Samples[h.Samples.length - 1]?.P99LatencyMs ?? 0) > 0), 'a p99 where calls were answered');
  assert.ok(hsmFigures.every((h) => h.JournalLag !== null), 'every probed HSM has a journal lag');
  assert.equal(figures.json?.['JournalHead'], String(await metadata.journalHead(clusterId)));
  const foreign = await signedRequest(service.endpoint, { target: 'CofferMonitoringService.DescribeHsmFigures', key: OTHER, region: REGION, body: JSON.stringify({ ClusterId: clusterId }) });
  assert.deepEqual([foreign.status, foreign.json?.['__type']], [400, 'CloudHsmResourceNotFoundException'], "another account's cluster is not found");

  // A killed HSM is replaced: one replacement timed.
  const described = await describe(clusterId);
  const victim = (await service.repository.hsm(described.Hsms?.[0]?.HsmId as string))?.doc.device ?? assert.fail('device recorded');
  await killInProcess(fleet.dataDir(victim.deviceId));
  for (let i = 0; i < 3; i++) await step();
  f = await scrape();
  assert.equal(sampleSum(f, 'coffer_service_hsm_replacement_duration_seconds_count'), 1);
  assert.equal(sampleSum(f, 'coffer_service_hsms', { cluster_id: clusterId, state: 'ACTIVE' }), 2);

  const text = await scrapeText();
  for (const secret of [KEY.accessKeyId, KEY.secretAccessKey, KEY.accountId, ADMIN_PASSWORD]) assert.ok(!text.includes(secret), 'nothing about the caller or a credential');
});
