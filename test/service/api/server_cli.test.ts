// The AWS CLI (Debian's awscli, /usr/bin/aws, whose model is the older 15-operation one) against
// the API server: calls succeed with its own signing and output, filters reach the operation, and
// errors come back as the CLI reports AWS errors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN, CANNED, READER, REGION, startTestApi, type TestApi } from './api_support.js';
import type { AccessKey } from '../../../src/service/api/sigv4.js';

const AWS = '/usr/bin/aws';
let api: TestApi;
let home: string;
before(async () => {
  api = await startTestApi();
  home = mkdtempSync(join(tmpdir(), 'coffer-api-cli-'));
  // The CLI paginates on its own: answer single pages.
  api.ops.behaviour.set('DescribeClusters', () => Promise.resolve({ Clusters: (CANNED.DescribeClusters.Clusters as unknown[]) }));
  api.ops.behaviour.set('DescribeBackups', () => Promise.resolve({ Backups: (CANNED.DescribeBackups.Backups as unknown[]) }));
});
after(async () => {
  await api.server.close();
  rmSync(home, { recursive: true, force: true });
});

function aws(args: string[], key: AccessKey = ADMIN): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
    AWS_CONFIG_FILE: join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'), AWS_PAGER: '', AWS_MAX_ATTEMPTS: '1', AWS_EC2_METADATA_DISABLED: 'true',
  };
  return new Promise((resolve) => {
    execFile(AWS, ['cloudhsmv2', ...args, '--endpoint-url', api.server.url, '--region', REGION, '--output', 'json'], { env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

test('describe-clusters and describe-backups with filters', async () => {
  api.ops.calls.length = 0;
  const clusters = await aws(['describe-clusters', '--filters', 'states=ACTIVE,INITIALIZED']);
  assert.equal(clusters.code, 0, clusters.stderr);
  const out = JSON.parse(clusters.stdout) as { Clusters: { ClusterId: string; CreateTimestamp: string; Hsms: { EniIp: string }[] }[] };
  assert.equal(out.Clusters[0]?.ClusterId, 'cluster-abcdefgh2345');
  assert.equal(out.Clusters[0]?.Hsms[0]?.EniIp, '127.0.0.2');
  // The CLI parsed the epoch seconds back into the instant the operation returned.
  assert.equal(new Date(out.Clusters[0]?.CreateTimestamp ?? '').getTime(), Date.UTC(2026, 0, 2, 3, 4, 5, 250));
  const backups = await aws(['describe-backups', '--filters', '{"clusterIds":["cluster-abcdefgh2345"],"neverExpires":["false"]}', '--sort-ascending']);
  assert.equal(backups.code, 0, backups.stderr);
  assert.equal((JSON.parse(backups.stdout) as { Backups: { BackupId: string }[] }).Backups[0]?.BackupId, 'backup-abcdefgh2345');
  assert.deepEqual(api.ops.calls.map((c) => [c.operation, c.input]), [
    ['DescribeClusters', { Filters: { states: ['ACTIVE', 'INITIALIZED'] } }],
    ['DescribeBackups', { Filters: { clusterIds: ['cluster-abcdefgh2345'], neverExpires: ['false'] }, SortAscending: true }],
  ]);
});

test('errors: a bad id and a refused action, as the CLI reports AWS errors', async () => {
  api.ops.calls.length = 0;
  const bad = await aws(['delete-cluster', '--cluster-id', 'cluster-0000']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /An error occurred \(ValidationException\) when calling the DeleteCluster operation(?: \(reached max retries: \d+\))?: 1 validation error detected: Value at 'ClusterId' failed to satisfy constraint/);
  const denied = await aws(['delete-cluster', '--cluster-id', 'cluster-abcdefgh2345'], READER);
  assert.match(denied.stderr, /An error occurred \(AccessDeniedException\) when calling the DeleteCluster operation(?: \(reached max retries: \d+\))?: The access key is not authorized to perform: cloudhsm:DeleteCluster/);
  assert.deepEqual(api.ops.calls, []);
});
