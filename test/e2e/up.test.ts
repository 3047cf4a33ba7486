// `coffer up --cluster 2` as a newcomer runs it (docs/getting-started.md): real processes — the
// command itself and its HSM node processes — then the AWS CLI with nothing but the credentials and
// config files it wrote, then the `coffer` CLI with the cluster.json it wrote; killed (SIGKILL) and
// started again on the same directory, it brings back the cluster, its HSMs and its keys; Ctrl-C
// (SIGINT) stops it all. Its --log-level reaches the HSM processes it starts.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { NODE_LOG_FILE } from '../../src/service/fleet/node_process.js';
import { MAIN_JS, freePort } from '../service/fleet/fleet_support.js';

const run = promisify(execFile);
const AWS = '/usr/bin/aws';
/** Starting a region and a cluster of 2 takes seconds; a loaded machine may need minutes. */
const READY_TIMEOUT_MS = 300_000;
const dir = mkdtempSync(join(tmpdir(), 'coffer-up-'));
let child: ChildProcess | undefined;

after(async () => {
  if (child !== undefined && child.exitCode === null) await stop(child);
  // HSM processes outlive a killed `coffer up` (they are the fleet's): none may outlive the test.
  await run('pkill', ['-KILL', '-f', dir]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

interface Ready {
  readonly regions: readonly { readonly region: string; readonly endpoint: string }[];
  readonly clusterFile: string;
}

async function start(dataPlanePort: number, extra: readonly string[] = []): Promise<{ readonly proc: ChildProcess; readonly ready: Ready }> {
  const proc = spawn(process.execPath, [MAIN_JS, 'up', '--data-dir', dir, '--port', '0', '--data-plane-port', String(dataPlanePort), '--cluster', '2', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc; // stopped by the after hook whatever happens next
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in time:\n${stderr}`)), READY_TIMEOUT_MS);
    proc.once('exit', (code) => reject(new Error(`coffer up exited with ${String(code)}:\n${stderr}`)));
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as Ready);
    });
  });
  // The export lines follow the ready line, on stderr.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no export lines in time:\n${stderr}`)), READY_TIMEOUT_MS);
    const check = (): void => {
      if (!/export AWS_SHARED_CREDENTIALS_FILE=.*\n.*describe-clusters.*\nexport COFFER_CLUSTER_CONFIG=.*\nexport COFFER_PIN=/.test(stderr)) return;
      clearTimeout(timer);
      proc.stderr?.off('data', check);
      resolve();
    };
    proc.stderr?.on('data', check);
    check();
  });
  return { proc, ready };
}

async function stop(proc: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGINT');
  await exited;
}

async function aws(endpoint: string, ...args: string[]): Promise<unknown> {
  const env = { ...process.env, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_PROFILE: 'coffer', AWS_PAGER: '' };
  const { stdout } = await run(AWS, ['cloudhsmv2', ...args, '--endpoint-url', endpoint, '--output', 'json'], { env });
  return JSON.parse(stdout) as unknown;
}

async function coffer(clusterFile: string, ...args: string[]): Promise<Record<string, unknown>> {
  const user = (JSON.parse(readFileSync(clusterFile, 'utf8')) as { cryptoUser: { name: string; password: string } }).cryptoUser;
  const env = { ...process.env, COFFER_CLUSTER_CONFIG: clusterFile, COFFER_PIN: `${user.name}:${user.password}` };
  const { stdout } = await run(process.execPath, [MAIN_JS, ...args], { env });
  return JSON.parse(stdout) as Record<string, unknown>;
}

type Clusters = { readonly Clusters: readonly { readonly ClusterId: string; readonly State: string; readonly Hsms: readonly { readonly State: string; readonly EniIp: string }[] }[] };

test('coffer up --cluster 2: the AWS CLI sees an active cluster, the coffer CLI uses it, and a restart after SIGKILL brings it back', { timeout: 900_000 }, async () => {
  const dataPlanePort = await freePort(['127.0.0.2', '127.0.0.3']);
  // The HSM processes it starts log at its --log-level too.
  const first = await start(dataPlanePort, ['--log-level', 'warn']);
  const endpoint = first.ready.regions[0]?.endpoint as string;
  const described = (await aws(endpoint, 'describe-clusters')) as Clusters;
  const cluster = described.Clusters[0];
  assert.equal(cluster?.State, 'ACTIVE');
  assert.deepEqual(cluster.Hsms.map((h) => h.State), ['ACTIVE', 'ACTIVE']);
  assert.deepEqual(new Set(cluster.Hsms.map((h) => h.EniIp)), new Set(['127.0.0.2', '127.0.0.3']), 'each HSM on its own loopback address');
  const backups = (await aws(endpoint, 'describe-backups')) as { Backups: { BackupState: string }[] };
  assert.ok(backups.Backups.some((b) => b.BackupState === 'READY'), 'backups were taken and archived');

  await coffer(first.ready.clusterFile, 'key', 'generate-symmetric', 'aes', '--key-length-bytes', '32', '--label', 'up-key');
  const devices = join(dir, 'regions', 'us-east-1', 'fleet', 'devices');
  const nodeLogs = readdirSync(devices).map((d) => readFileSync(join(devices, d, NODE_LOG_FILE), 'utf8'));
  assert.equal(nodeLogs.length, 2);
  for (const log of nodeLogs) assert.doesNotMatch(log, /"level":"(info|debug|trace)"/, 'a node started with --log-level warn logs no state change, no start line at info');
  // A crash, not a clean stop: the HSM processes run on, and the next start reattaches them.
  const killed = new Promise((resolve) => first.proc.once('exit', resolve));
  first.proc.kill('SIGKILL');
  await killed;

  const second = await start(dataPlanePort);
  const again = (await aws(second.ready.regions[0]?.endpoint as string, 'describe-clusters')) as Clusters;
  assert.equal(again.Clusters[0]?.ClusterId, cluster.ClusterId, 'the same cluster');
  assert.deepEqual(again.Clusters[0]?.Hsms.map((h) => h.State), ['ACTIVE', 'ACTIVE']);
  const listed = await coffer(second.ready.clusterFile, 'key', 'list', '--filter', 'attr.label=up-key');
  assert.equal(((listed['data'] as { matched_keys: unknown[] }).matched_keys).length, 1, 'the key survived the restart');
  const file = JSON.parse(readFileSync(second.ready.clusterFile, 'utf8')) as { service: string; customerCa: string; cryptoUser: { name: string; password: string } };
  assert.equal(file.service, second.ready.regions[0]?.endpoint, 'cluster.json follows the service to its new port');

  // No config file: the cluster id, the customer CA and the AWS environment are enough (DescribeClusters finds the HSMs).
  const env = {
    ...process.env, COFFER_CLUSTER_CONFIG: '', AWS_ENDPOINT_URL: file.service, AWS_REGION: 'us-east-1', COFFER_DATA_PLANE_PORT: String(dataPlanePort),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_PROFILE: 'coffer', COFFER_PIN: `${file.cryptoUser.name}:${file.cryptoUser.password}`,
  };
  const { stdout } = await run(process.execPath, [MAIN_JS, 'key', 'list', '--cluster-id', cluster.ClusterId, '--ca', file.customerCa, '--filter', 'attr.label=up-key'], { env });
  assert.equal((JSON.parse(stdout) as { data: { matched_keys: unknown[] } }).data.matched_keys.length, 1, 'found through the control plane');
  await stop(second.proc);
});
