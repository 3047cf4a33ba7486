// The console's live figures (src/service/figures.ts): rates, the p99 and the series bound, from the
// health answers of successive probes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeFigures, NodeHealth } from '../../src/formats/management.js';
import { FIGURE_SAMPLES_MAX, HsmFigures, clusterFigures, monitoringOperations } from '../../src/service/figures.js';
import { ProtocolError } from '../../src/service/api/api_errors.js';
import { ApiError } from '../../src/service/api/operations.js';
import { Repository } from '../../src/service/repository.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import type { BackupDoc, HsmDoc } from '../../src/service/records.js';

const BOUNDS = [0.001, 0.01, 0.1];

function health(figures: NodeFigures | null, journalPosition = 0n): NodeHealth {
  return {
    provisioning: 'COMMISSIONED', serial: 'CFR-0123456789ABCDEF', mode: 'NON_FIPS', cluster: 'ACTIVE', clusterId: 'cluster-abcdefgh234',
    usersInitialised: true, activated: true, tokenObjects: 0, sessions: 0, inFlight: 3, inFlightMax: 100, connections: 1,
    capacityOpsPerSecond: 5000, loadPermille: 30, journalPosition, stateDigest: 'ab'.repeat(32), restoring: false, backingUp: false,
    dataPlaneHost: '127.0.0.2', dataPlanePort: 2223, journalHeadHash: null, journalFault: null, journalMissing: null, journalMode: 'relayed', figures,
  };
}
const figures = (operations: number, busy: number, latencyCounts: number[]): NodeFigures => ({ operations, busy, latencyBoundsS: BOUNDS, latencyCounts });

test('two probes give the rate of operations and BUSY answers and the p99 of the requests in between', () => {
  const book = new HsmFigures();
  book.observe('hsm-a', 'cluster-1', 10_000, health(figures(100, 2, [50, 50, 0, 0])));
  // 2 s later: 1,000 more operations, 10 more BUSY answers; of the 200 requests in between, 197 took
  // ≤ 1 ms and 3 took ≤ 10 ms: the 198th of 200 (99 %) lies in the second bucket.
  book.observe('hsm-a', 'cluster-1', 12_000, health(figures(1100, 12, [247, 53, 0, 0]), 7n));
  const [first, second] = book.samplesOf('hsm-a');
  assert.equal(first?.opsPerSecond, null, 'the first probe has nothing to compare with');
  assert.equal(first?.p99LatencyMs, null);
  assert.equal(second?.opsPerSecond, 500);
  assert.equal(second?.busyPerSecond, 5);
  assert.equal(second?.p99LatencyMs, 10);
  assert.equal(second?.p99Above, false);
  assert.equal(second?.journalPosition, 7n);
  assert.equal(second?.loadPermille, 30);
});

test('a p99 beyond the last bound is flagged; an idle interval has no p99; a node restart has no rate', () => {
  const book = new HsmFigures();
  book.observe('hsm-a', 'cluster-1', 0, health(figures(0, 0, [0, 0, 0, 0])));
  book.observe('hsm-a', 'cluster-1', 1000, health(figures(10, 0, [0, 0, 0, 10])));
  book.observe('hsm-a', 'cluster-1', 2000, health(figures(10, 0, [0, 0, 0, 10])));
  book.observe('hsm-a', 'cluster-1', 3000, health(figures(4, 0, [4, 0, 0, 0]))); // counters went back: restarted
  book.observe('hsm-a', 'cluster-1', 4000, health(null)); // metrics off
  book.observe('hsm-a', 'cluster-1', 5000, health(figures(8, 0, [8, 0, 0, 0])));
  const s = book.samplesOf('hsm-a');
  assert.deepEqual([s[1]?.p99LatencyMs, s[1]?.p99Above], [100, true]);
  assert.deepEqual([s[2]?.opsPerSecond, s[2]?.p99LatencyMs], [0, null]);
  assert.equal(s[3]?.opsPerSecond, null);
  assert.equal(s[4]?.opsPerSecond, null);
  assert.equal(s[5]?.opsPerSecond, null, 'no rate across a probe without figures');
});

test('the series keeps the last FIGURE_SAMPLES_MAX samples; a deleted HSM is forgotten', () => {
  const book = new HsmFigures();
  for (let i = 0; i < FIGURE_SAMPLES_MAX + 5; i++) book.observe('hsm-a', 'cluster-1', i * 1000, health(figures(i * 10, 0, [i, 0, 0, 0])));
  const s = book.samplesOf('hsm-a');
  assert.equal(s.length, FIGURE_SAMPLES_MAX);
  assert.equal(s[0]?.atMs, 5000);
  assert.equal(s[s.length - 1]?.opsPerSecond, 10);
  book.forget('hsm-a');
  assert.deepEqual(book.samplesOf('hsm-a'), []);
});

test('clusterFigures: journal lag from the last probe, the newest READY backup age, samples as the API answers them', () => {
  const book = new HsmFigures();
  book.observe('hsm-a', 'cluster-1', 1000, health(figures(0, 0, [0, 0, 0, 0]), 40n));
  const hsm = { hsmId: 'hsm-a', availabilityZone: 'zone-a', eniIp: '127.0.0.2', state: 'ACTIVE' } as HsmDoc;
  const hsmB = { hsmId: 'hsm-b', availabilityZone: 'zone-b', eniIp: '127.0.0.3', state: 'CREATE_IN_PROGRESS' } as HsmDoc;
  const backups = [{ state: 'READY', createdMs: 10_000 }, { state: 'READY', createdMs: 50_000 }, { state: 'CREATE_IN_PROGRESS', createdMs: 90_000 }] as BackupDoc[];
  const out = clusterFigures('cluster-1', book, { hsms: [hsm, hsmB], backups, journalHead: 42, nowMs: 80_000, probeIntervalMs: 2000 });
  assert.equal(out.NewestBackupAgeSeconds, 30);
  assert.equal(out.JournalHead, '42');
  assert.equal(out.Hsms[0]?.JournalLag, 2);
  assert.equal(out.Hsms[0]?.Samples[0]?.['JournalPosition'], '40');
  assert.equal(out.Hsms[1]?.JournalLag, null, 'no probe yet: the lag is not known');
  assert.deepEqual(out.Hsms[1]?.Samples, []);
  assert.equal(clusterFigures('cluster-1', book, { hsms: [], backups: [], journalHead: null, nowMs: 0, probeIntervalMs: 2000 }).NewestBackupAgeSeconds, null);
});

test('DescribeHsmFigures refuses a malformed request and answers an unknown cluster as not found', async () => {
  const store = SqliteMetadataStore.open({ path: ':memory:' });
  try {
    const ops = monitoringOperations({ repo: new Repository(store), figures: new HsmFigures(), nowMs: () => 0, probeIntervalMs: 2000, relayJournal: true });
    const caller = { accountId: '111122223333', accessKeyId: 'AKIAEXAMPLE000000001', region: 'us-east-1', requestId: 'r' };
    for (const bad of [null, [], 'x', {}, { ClusterId: 7 }, { ClusterId: 'cluster-' }, { ClusterId: 'cluster-abcdefghijk', Extra: 1 }]) {
      await assert.rejects(ops.DescribeHsmFigures(bad, caller), (e) => e instanceof ProtocolError && e.type === 'ValidationException', JSON.stringify(bad));
    }
    await assert.rejects(ops.DescribeHsmFigures({ ClusterId: 'cluster-abcdefghijk' }, caller), (e) => e instanceof ApiError && e.type === 'CloudHsmResourceNotFoundException');
  } finally {
    await store.close();
  }
});
