// Two `coffer service` processes of one region (docs/control-plane.md "Running `coffer service`"),
// real node processes on one PostgreSQL schema, one fleet directory and one archive directory, each
// with its own API port. Both serve the API; one orchestrates (it holds the `orchestrator` lease).
// It is SIGKILLed after a cluster and its first HSM were made through it; through the survivor the
// cluster is initialised and activated and a second HSM is cloned, and in the end there are exactly
// the HSMs asked for, one fleet device each, and no backup recorded twice. The survivor then stops
// on SIGTERM, releasing the lease. A second pair is cut while the orchestrating process is starting
// an HSM's device: the survivor removes the half-started device and makes the HSM on one device.
// Then `coffer service`'s option checks, one process on SQLite and a directory archive, and one on
// the S3 archive (.ci/start-rgw; skipped with a message if absent unless COFFER_REQUIRE_S3=1).
//
// The server: COFFER_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test (start it with
// .ci/start-postgres). If it cannot be reached this test fails, saying so; it never skips.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Cluster } from '../../src/client/cluster.js';
import type { AccessKey } from '../../src/service/api/sigv4.js';
import { defaultZones } from '../../src/service/config.js';
import { signedRequest } from '../service/api/api_support.js';
import { POSTGRES_URL, requirePostgres } from '../storage/postgres_support.js';
import { EVENT_WAIT_MS, MAIN_JS, fleetEnvironment, freePort, type FleetEnvironment } from '../service/fleet/fleet_support.js';
import {
  devicePids, killDevices, serviceCredentialArgs, spawnServiceProcess, writeServiceCredentials, type Ready, type ServiceProc,
} from './service_support.js';

const URL_TEXT = POSTGRES_URL;
const REGION = 'us-east-1';
/** Creating and activating a cluster on a loaded machine may take minutes; never a measured duration. */
const STATE_WAIT_MS = 10 * 60_000;
const POLL_MS = 250;
const PROBE_INTERVAL_MS = 300;
const KEY: AccessKey = {
  accessKeyId: 'AKIATAKEOVEREXAMPLE1', secretAccessKey: `takeover/${randomBytes(24).toString('base64url')}`, accountId: '444455556666', actions: ['*'],
};
/** One region's shared state: a PostgreSQL schema, and a directory with the fleet and the archive. */
interface Site { readonly schema: string; readonly dir: string }
const sites: Site[] = [];
const admin = new pg.Pool({ connectionString: URL_TEXT, max: 2, connectionTimeoutMillis: 10_000 });
admin.on('error', () => undefined);

let env: FleetEnvironment;
const procs: ServiceProc[] = [];

before(async () => {
  await requirePostgres(admin, 'This test needs');
  env = await fleetEnvironment('service-takeover');
  writeServiceCredentials(env);
  writeFileSync(join(env.dir, 'access-keys.json'), JSON.stringify({ accessKeys: [KEY] }), { mode: 0o600 });
});

after(async () => {
  for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  // The HSM processes are the fleet's and outlive the services: the test started them, so it stops them.
  for (const site of sites) {
    killDevices(join(site.dir, 'fleet', 'devices'));
    await admin.query(`DROP SCHEMA IF EXISTS "${site.schema}" CASCADE`).catch(() => undefined);
  }
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
  await admin.end();
});

function newSite(name: string): Site {
  const site = { schema: `coffer_takeover_${process.pid}_${Math.floor(Math.random() * 1e9)}`, dir: join(env.dir, name) };
  mkdirSync(site.dir, { recursive: true });
  sites.push(site);
  return site;
}

interface FleetRecord { readonly deviceId: string; readonly state: string; readonly serial: string; readonly host: string; readonly pid: number; readonly hsmId: string }

function fleetDevices(site: Site): FleetRecord[] {
  const path = join(site.dir, 'fleet', 'fleet.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { devices: FleetRecord[] }).devices : [];
}

/** The authorities, management client and roots every `coffer service` here is given. */
const credentialArgs = (): string[] => serviceCredentialArgs(env);

/** `coffer service ARGS` started and read until its ready line; stopped by the after hook whatever happens next. */
const spawnService = (name: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ readonly p: ServiceProc; readonly ready: Ready }> =>
  spawnServiceProcess(procs, name, args, extraEnv);

async function startService(site: Site, name: string, dataPlanePort: number): Promise<ServiceProc> {
  const { p, ready } = await spawnService(name, [
    '--region', REGION, '--port', '0', '--metadata', URL_TEXT, '--schema', site.schema,
    '--archive', join(site.dir, 'archive'), '--fleet-dir', join(site.dir, 'fleet'), ...credentialArgs(),
    '--access-keys', join(env.dir, 'access-keys.json'), '--data-plane-port', String(dataPlanePort),
    '--probe-interval-ms', String(PROBE_INTERVAL_MS), '--log-level', 'debug', '--work-dir', join(site.dir, `work-${name}`),
  ]);
  assert.equal(ready.region, REGION);
  assert.equal(ready.pid, p.proc.pid);
  return p;
}

async function call(p: ServiceProc, operation: string, input: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await signedRequest(p.endpoint, { target: `BaldrApiService.${operation}`, body: JSON.stringify(input), key: KEY, region: REGION });
  assert.equal(res.status, 200, `${operation} through ${p.name}: ${res.text}`);
  return res.json as Record<string, unknown>;
}

type ClusterOut = Record<string, unknown> & { Hsms: Array<{ HsmId: string; EniIp: string; State: string }>; State: string };

async function describe(p: ServiceProc, clusterId: string): Promise<ClusterOut> {
  const out = await call(p, 'DescribeClusters', { Filters: { clusterIds: [clusterId] } });
  const c = (out['Clusters'] as ClusterOut[])[0];
  assert.ok(c !== undefined, `cluster ${clusterId} through ${p.name}`);
  return c;
}

/** DescribeClusters through `p` until `done` holds (the orchestrating process does the work). */
async function waitFor(p: ServiceProc, clusterId: string, what: string, done: (c: ClusterOut) => boolean): Promise<ClusterOut> {
  const deadline = Date.now() + STATE_WAIT_MS;
  for (;;) {
    const c = await describe(p, clusterId);
    if (done(c)) return c;
    if (Date.now() > deadline) assert.fail(`${what}: not reached; last seen ${JSON.stringify({ State: c.State, Hsms: c.Hsms })}\n${procs.map((x) => `${x.name}:\n${x.stderr().slice(-4000)}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function orchestratorPid(site: Site): Promise<number> {
  const deadline = Date.now() + EVENT_WAIT_MS;
  for (;;) {
    const { rows } = await admin.query<{ holder: string }>(`SELECT holder FROM "${site.schema}".leases WHERE name = 'orchestrator'`);
    const holder = rows[0]?.holder;
    if (holder !== undefined) return Number(holder.split(':')[1]);
    if (Date.now() > deadline) assert.fail('nobody holds the orchestrator lease');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

test('two coffer service processes on one PostgreSQL: both serve, the survivor of a SIGKILL takes over without duplicates', async () => {
  const zones = defaultZones(REGION);
  const site = newSite('takeover');
  const dataPlanePort = await freePort(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);
  const first = await startService(site, 'first', dataPlanePort);
  const second = await startService(site, 'second', dataPlanePort);
  assert.notEqual(first.endpoint, second.endpoint);

  const created = await call(first, 'CreateCluster', {
    HsmType: 'hsm2m.medium', SubnetIds: zones.map(() => `subnet-${randomBytes(9).toString('hex').slice(0, 17)}`),
  });
  const clusterId = (created['Cluster'] as { ClusterId: string }).ClusterId;
  await waitFor(first, clusterId, 'cluster UNINITIALIZED', (c) => c.State === 'UNINITIALIZED');
  // Either process answers with the same clusters: one store behind both.
  const listFirst = await call(first, 'DescribeClusters', {});
  const listSecond = await call(second, 'DescribeClusters', {});
  assert.deepEqual(listSecond['Clusters'], listFirst['Clusters']);
  assert.deepEqual((listFirst['Clusters'] as ClusterOut[]).map((c) => c['ClusterId']), [clusterId]);

  await call(first, 'CreateHsm', { ClusterId: clusterId, AvailabilityZone: zones[0] });
  const withCsr = await waitFor(first, clusterId, 'first HSM ACTIVE with the cluster CSR', (c) =>
    c.Hsms.length === 1 && c.Hsms[0]?.State === 'ACTIVE' && typeof (c['Certificates'] as Record<string, unknown>)['ClusterCsr'] === 'string');
  assert.deepEqual(await describe(second, clusterId), withCsr);

  // The orchestrating process, by the lease row; SIGKILL: no clean stop, the lease must expire.
  const pid = await orchestratorPid(site);
  const victim = procs.find((p) => p.pid === pid);
  assert.ok(victim !== undefined, `the lease holder (pid ${pid}) is one of the two service processes`);
  const survivor = victim === first ? second : first;
  victim.proc.kill('SIGKILL');
  assert.equal((await victim.exited).signal, 'SIGKILL');

  // Through the survivor: initialise, activate, and clone a second HSM.
  const signedCert = await env.customerCa.signClusterCsr((withCsr['Certificates'] as { ClusterCsr: string }).ClusterCsr);
  await call(survivor, 'InitializeCluster', { ClusterId: clusterId, SignedCert: signedCert, TrustAnchor: env.customerCa.certificatePem });
  const initialised = await waitFor(survivor, clusterId, 'cluster INITIALIZED', (c) => c.State === 'INITIALIZED');
  const eniIp = (initialised.Hsms[0] as { EniIp: string }).EniIp;
  await Cluster.activate({
    endpoints: [{ host: eniIp, port: dataPlanePort }], ca: env.customerCa.certificatePem,
    preCoPassword: initialised['PreCoPassword'] as string, newAdminPassword: randomBytes(18).toString('base64url'),
  });
  await waitFor(survivor, clusterId, 'cluster ACTIVE', (c) => c.State === 'ACTIVE');
  await call(survivor, 'CreateHsm', { ClusterId: clusterId, AvailabilityZone: zones[1 % zones.length] });
  const done = await waitFor(survivor, clusterId, 'two HSMs ACTIVE', (c) => c.State === 'ACTIVE' && c.Hsms.length === 2 && c.Hsms.every((h) => h.State === 'ACTIVE'));
  assert.equal(await orchestratorPid(site), survivor.pid, 'the survivor holds the lease now');

  // Exactly the HSMs asked for, each on a device of its own, no device provisioned twice.
  const hsmIds = done.Hsms.map((h) => h.HsmId).sort();
  assert.equal(new Set(hsmIds).size, 2);
  assert.equal(new Set(done.Hsms.map((h) => h.EniIp)).size, 2, 'each HSM has an address of its own');
  const devices = fleetDevices(site);
  assert.deepEqual(devices.map((d) => d.state), ['ready', 'ready'], `fleet.json: ${JSON.stringify(devices)}`);
  assert.deepEqual(devices.map((d) => d.hsmId).sort(), hsmIds);
  assert.equal(new Set(devices.map((d) => d.serial)).size, 2);
  assert.deepEqual(devices.map((d) => d.host).sort(), done.Hsms.map((h) => h.EniIp).sort());
  assert.deepEqual(readdirSync(join(site.dir, 'fleet', 'devices')).sort(), devices.map((d) => d.deviceId).sort(), 'no device data beyond the two');
  const backups = (await call(survivor, 'DescribeBackups', { Filters: { clusterIds: [clusterId] } }))['Backups'] as Array<{ BackupId: string; BackupState: string }>;
  assert.ok(backups.length >= 1, 'activation and the clone made backups');
  assert.equal(new Set(backups.map((b) => b.BackupId)).size, backups.length, 'no backup listed twice');

  // A clean stop: the API closes, the lease is released, the HSM processes run on.
  survivor.proc.kill('SIGTERM');
  assert.deepEqual(await survivor.exited, { code: 0, signal: null }, survivor.stderr().slice(-4000));
  const { rows } = await admin.query(`SELECT holder FROM "${site.schema}".leases WHERE name = 'orchestrator'`);
  assert.deepEqual(rows, [], 'the lease was released at stop');
  for (const d of devices) assert.ok(readFileSync(`/proc/${d.pid}/cmdline`, 'utf8').includes(d.deviceId), `device ${d.deviceId} still runs`);
  // Logs are JSON lines and never carry a secret.
  for (const p of procs) {
    assert.ok(!p.stderr().includes(KEY.secretAccessKey), `${p.name}: the access key secret is not logged`);
    assert.ok(!p.stderr().includes('PRIVATE KEY'), `${p.name}: the management key is not logged`);
  }
});

test('the orchestrating process SIGKILLed while it provisions an HSM: the survivor makes that HSM, on one device', async (t) => {
  const zones = defaultZones(REGION);
  const site = newSite('mid-provision');
  const dataPlanePort = await freePort(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  const first = await startService(site, 'mid-first', dataPlanePort);
  const second = await startService(site, 'mid-second', dataPlanePort);
  const created = await call(first, 'CreateCluster', { HsmType: 'hsm2m.medium', SubnetIds: [`subnet-${randomBytes(9).toString('hex').slice(0, 17)}`] });
  const clusterId = (created['Cluster'] as { ClusterId: string }).ClusterId;
  await waitFor(first, clusterId, 'cluster UNINITIALIZED', (c) => c.State === 'UNINITIALIZED');
  const hsm = (await call(first, 'CreateHsm', { ClusterId: clusterId, AvailabilityZone: zones[0] }))['Hsm'] as { HsmId: string };

  // The kill lands once the fleet has written the device down: most often while it is still
  // `starting`. Whatever step it cuts, the outcome below must be the same.
  const deadline = Date.now() + EVENT_WAIT_MS;
  let seen: FleetRecord | undefined;
  while ((seen = fleetDevices(site).find((d) => d.hsmId === hsm.HsmId)) === undefined) {
    if (Date.now() > deadline) assert.fail(`no device written down for ${hsm.HsmId}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const pid = await orchestratorPid(site);
  const victim = [first, second].find((p) => p.pid === pid);
  assert.ok(victim !== undefined, `the lease holder (pid ${pid}) is one of the two service processes`);
  victim.proc.kill('SIGKILL');
  await victim.exited;
  t.diagnostic(`killed ${victim.name} with the device ${seen.state} (pid ${seen.pid})`);
  const survivor = victim === first ? second : first;

  const done = await waitFor(survivor, clusterId, 'the HSM ACTIVE with the cluster CSR', (c) =>
    c.Hsms.length === 1 && c.Hsms[0]?.State === 'ACTIVE' && typeof (c['Certificates'] as Record<string, unknown>)['ClusterCsr'] === 'string');
  assert.deepEqual(done.Hsms.map((h) => h.HsmId), [hsm.HsmId], 'exactly the HSM asked for');
  const devices = fleetDevices(site);
  assert.deepEqual(devices.map((d) => ({ hsmId: d.hsmId, state: d.state, host: d.host })), [{ hsmId: hsm.HsmId, state: 'ready', host: done.Hsms[0]?.EniIp }], JSON.stringify(devices));
  const devicesDir = join(site.dir, 'fleet', 'devices');
  assert.deepEqual(readdirSync(devicesDir), devices.map((d) => d.deviceId), 'no other device data');
  const running = [...devicePids(devicesDir).values()];
  assert.equal(running.length, 1, `one HSM process: ${running.join('\n')}`);
  assert.ok(running[0]?.includes(devices[0]?.deviceId as string));
});

/** `coffer service` run to its exit: its exit code and stderr. */
async function runToExit(args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const proc = spawn(process.execPath, [MAIN_JS, 'service', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...extraEnv } });
  let stderr = '';
  let stdout = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  proc.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  return { code, stderr, stdout };
}

test('coffer service refuses bad options with COFFER_CLI_USAGE naming the option, never printing a secret', async () => {
  const files = [
    '--fleet-dir', join(env.dir, 'usage-fleet'), ...credentialArgs(),
  ];
  const missing = await runToExit(['--metadata', join(env.dir, 'm.sqlite')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /COFFER_CLI_USAGE.*--region is required/);

  const password = `pw${randomBytes(12).toString('hex')}`;
  const badSchema = await runToExit(['--region', REGION, '--metadata', `postgres://coffer:${password}@127.0.0.1:1/x`, '--schema', 'Not-A-Schema', '--archive', join(env.dir, 'a'), ...files]);
  assert.equal(badSchema.code, 2);
  assert.match(badSchema.stderr, /COFFER_CLI_USAGE.*--schema must be/);
  assert.ok(!badSchema.stderr.includes(password), 'the URL password is not printed');

  const s3 = await runToExit(['--region', REGION, '--metadata', join(env.dir, 'm.sqlite'), '--archive', 's3://Bad_Bucket', ...files]);
  assert.equal(s3.code, 2);
  assert.match(s3.stderr, /--archive must be a directory or s3:\/\/bucket/);

  const secret = `short${randomBytes(4).toString('hex')}`;
  writeFileSync(join(env.dir, 'bad-keys.json'), JSON.stringify({ accessKeys: [{ ...KEY, secretAccessKey: secret }] }), { mode: 0o600 });
  const badKeys = await runToExit(['--region', REGION, '--metadata', join(env.dir, 'm.sqlite'), '--archive', join(env.dir, 'a'), ...files, '--access-keys', join(env.dir, 'bad-keys.json')]);
  assert.equal(badKeys.code, 2);
  assert.match(badKeys.stderr, /COFFER_CLI_USAGE.*--access-keys: .*\(entry 0\)/);
  assert.ok(!badKeys.stderr.includes(secret), 'the access key secret is not printed');
  assert.equal(badKeys.stdout, '', 'no ready line');
});

test('coffer service on SQLite and a directory archive: ready, serves, stops on SIGINT', async () => {
  const dataPlanePort = await freePort(['127.0.0.1']);
  mkdirSync(join(env.dir, 'single'), { recursive: true });
  const { p, ready } = await spawnService('single', [
    '--region', REGION, '--port', '0', '--metadata', join(env.dir, 'single', 'metadata.sqlite'), '--archive', join(env.dir, 'single', 'archive'),
    '--fleet-dir', join(env.dir, 'single', 'fleet'), ...credentialArgs(), '--access-keys', join(env.dir, 'access-keys.json'), '--data-plane-port', String(dataPlanePort),
  ]);
  assert.deepEqual({ event: ready.event, region: ready.region, pid: ready.pid }, { event: 'ready', region: REGION, pid: p.proc.pid });
  assert.deepEqual((await call(p, 'DescribeClusters', {}))['Clusters'], []);
  p.proc.kill('SIGINT');
  assert.deepEqual(await p.exited, { code: 0, signal: null }, p.stderr());
  // Structured logs on stderr: every line JSON, the stop among them.
  const events = p.stderr().trim().split('\n').map((l) => (JSON.parse(l) as { event?: string }).event);
  assert.ok(events.includes('service.listening') && events.includes('service.stopped'), events.join(','));
});

const S3_ENDPOINT = process.env['COFFER_TEST_S3_ENDPOINT'] ?? 'http://127.0.0.1:7480';
const S3_BUCKET = process.env['COFFER_TEST_S3_BUCKET'] ?? 'coffer-archive-test';
const S3_ENV = {
  AWS_ACCESS_KEY_ID: process.env['COFFER_TEST_S3_ACCESS_KEY'] ?? 'COFFERTESTACCESSKEY0',
  AWS_SECRET_ACCESS_KEY: process.env['COFFER_TEST_S3_SECRET_KEY'] ?? 'coffer-test-secret-key-0000000000000000',
};

async function s3Answers(): Promise<boolean> {
  try {
    await fetch(S3_ENDPOINT, { signal: AbortSignal.timeout(5_000) });
    return true;
  } catch {
    return false;
  }
}

test('coffer service on an S3 archive: credentials from the AWS environment; refused ones stop the start without printing them', async (t) => {
  if (!(await s3Answers())) {
    if (process.env['COFFER_REQUIRE_S3'] === '1') assert.fail(`no S3 server at ${S3_ENDPOINT} (run .ci/start-rgw)`);
    t.skip(`no S3 server at ${S3_ENDPOINT} (run .ci/start-rgw, or set COFFER_TEST_S3_ENDPOINT)`);
    return;
  }
  const dir = join(env.dir, 's3');
  mkdirSync(dir, { recursive: true });
  const args = [
    '--region', REGION, '--port', '0', '--metadata', join(dir, 'metadata.sqlite'),
    '--archive', `s3://${S3_BUCKET}/coffer-test/service-${randomBytes(4).toString('hex')}`, '--s3-endpoint', S3_ENDPOINT,
    '--fleet-dir', join(dir, 'fleet'), ...credentialArgs(), '--access-keys', join(env.dir, 'access-keys.json'),
  ];
  const { p, ready } = await spawnService('s3', args, S3_ENV);
  assert.equal(ready.event, 'ready');
  assert.match(p.stderr(), /"event":"service.adapters".*"archive":"s3:\/\//);
  p.proc.kill('SIGTERM');
  assert.deepEqual(await p.exited, { code: 0, signal: null }, p.stderr());
  assert.ok(!p.stderr().includes(S3_ENV.AWS_SECRET_ACCESS_KEY));

  const wrong = `wrong${randomBytes(16).toString('hex')}`;
  const refused = await runToExit(args, { ...S3_ENV, AWS_SECRET_ACCESS_KEY: wrong });
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /COFFER_ARCHIVE_UNAVAILABLE/);
  assert.ok(!refused.stderr.includes(wrong), 'the secret is not printed');
});
