// A region on registered remote nodes, end to end with real processes (docs/fleet.md "Registering
// nodes"): an operator's `coffer hsm serve` node, two `coffer service --fleet remote` processes on
// one PostgreSQL schema, and the `coffer fleet` CLI. The node is registered through the process that
// does NOT orchestrate, and the orchestrating one provisions it: the registry is the shared store's,
// not a process's. A node made by another manufacturer is refused at registration; a key without
// `coffer:RegisterNode` is refused; a cluster and an HSM made with @aws-sdk/client-cloudhsm-v2 land
// on the node (EniIp = its data-plane address); the node cannot be deregistered while it serves the
// HSM, and can once the HSM is deleted.
//
// The server: COFFER_TEST_POSTGRES_URL (test/storage/postgres_support.ts). If it cannot be reached
// this test fails, saying so; it never skips.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { CloudHSMV2Client, CreateClusterCommand, type CreateClusterCommandInput, CreateHsmCommand, DeleteHsmCommand, DescribeClustersCommand, type Cluster } from '@aws-sdk/client-cloudhsm-v2';
import { createDevelopmentAuthorities, saveDevelopmentAuthorities } from '../../src/factory/development.js';
import type { AccessKey } from '../../src/service/api/sigv4.js';
import { defaultZones } from '../../src/service/config.js';
import { spawnNode, stopNode, type NodeProcess } from '../../src/service/fleet/node_process.js';
import { POSTGRES_URL, requirePostgres } from '../storage/postgres_support.js';
import { EVENT_WAIT_MS, MAIN_JS, fleetEnvironment, freePort, type FleetEnvironment } from '../service/fleet/fleet_support.js';
import { spawnServiceProcess, writeServiceCredentials, type ServiceProc } from './service_support.js';

const REGION = 'us-east-1';
/** Creating an HSM on a loaded machine may take minutes; never a measured duration. */
const STATE_WAIT_MS = 10 * 60_000;
const POLL_MS = 250;
const KEY: AccessKey = { accessKeyId: 'AKIAREMOTEFLEETTEST1', secretAccessKey: `remote/${randomBytes(24).toString('base64url')}`, accountId: '777788889999', actions: ['*'] };
/** May list nodes and describe clusters, nothing else. */
const READER: AccessKey = {
  accessKeyId: 'AKIAREMOTEFLEETREAD1', secretAccessKey: `reader/${randomBytes(24).toString('base64url')}`, accountId: '777788889999',
  actions: ['coffer:ListNodes', 'cloudhsm:DescribeClusters'],
};
/** Loopback addresses of their own (the fleet conformance tests use 127.0.0.100 and up). */
const NODE_HOST = '127.0.0.231';
const FOREIGN_HOST = '127.0.0.232';
const SPARE_HOST = '127.0.0.233';

const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2, connectionTimeoutMillis: 10_000 });
admin.on('error', () => undefined);
const schema = `coffer_remote_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
let env: FleetEnvironment;
const nodes: NodeProcess[] = [];
const services: ServiceProc[] = [];

before(async () => {
  await requirePostgres(admin, 'This test needs');
  env = await fleetEnvironment('e2e-remote-fleet');
  writeServiceCredentials(env);
  writeFileSync(join(env.dir, 'access-keys.json'), JSON.stringify({ accessKeys: [KEY, READER] }), { mode: 0o600 });
});

after(async () => {
  for (const s of services) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  await Promise.all(services.map((s) => s.exited));
  await Promise.all(nodes.map((n) => stopNode(n, 'SIGKILL')));
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
  await admin.end();
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
});

/** `coffer service --fleet remote …` read until its ready line; killed by the after hook whatever happens. */
async function startService(name: string, dataPlanePort: number): Promise<ServiceProc> {
  const args = [
    '--fleet', 'remote', '--region', REGION, '--port', '0', '--metadata', POSTGRES_URL, '--schema', schema,
    '--archive', join(env.dir, 'archive'), '--work-dir', join(env.dir, `work-${name}`),
    '--management-cert', join(env.dir, 'management-client.pem'), '--management-key', join(env.dir, 'management-client.key'),
    '--manufacturer-root', join(env.dir, 'manufacturer-root.pem'), '--operator-root', join(env.dir, 'operator-root.pem'),
    '--access-keys', join(env.dir, 'access-keys.json'), '--data-plane-port', String(dataPlanePort), '--probe-interval-ms', '300', '--log-level', 'debug',
  ];
  return (await spawnServiceProcess(services, name, args)).p;
}

/** `coffer ARGS` run to its exit with `key`'s AWS credentials in the environment. */
async function coffer(args: readonly string[], key: AccessKey = KEY): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [MAIN_JS, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey, AWS_REGION: REGION },
  });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  assert.ok(!stdout.includes(key.secretAccessKey) && !stderr.includes(key.secretAccessKey), 'the secret is never printed');
  return { code, stdout, stderr };
}

interface NodeOut { DeviceId: string; Serial: string; State: string; DataPlaneHost: string; DataPlanePort: number; ManagementHost: string; ManagementPort: number; HsmId?: string }

async function list(s: ServiceProc): Promise<NodeOut[]> {
  const out = await coffer(['fleet', 'list', '--endpoint-url', s.endpoint]);
  assert.equal(out.code, 0, out.stderr);
  return (JSON.parse(out.stdout) as { Nodes: NodeOut[] }).Nodes;
}

async function orchestratorPid(): Promise<number> {
  const deadline = Date.now() + EVENT_WAIT_MS;
  for (;;) {
    const { rows } = await admin.query<{ holder: string }>(`SELECT holder FROM "${schema}".leases WHERE name = 'orchestrator'`).catch(() => ({ rows: [] as { holder: string }[] }));
    const holder = rows[0]?.holder;
    if (holder !== undefined) return Number(holder.split(':')[1]);
    if (Date.now() > deadline) assert.fail('nobody holds the orchestrator lease');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function waitFor(api: CloudHSMV2Client, clusterId: string, what: string, done: (c: Cluster) => boolean): Promise<Cluster> {
  const deadline = Date.now() + STATE_WAIT_MS;
  for (;;) {
    const c = (await api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }))).Clusters?.[0];
    assert.ok(c !== undefined, `cluster ${clusterId}`);
    if (done(c)) return c;
    if (Date.now() > deadline) assert.fail(`${what}: not reached; last seen ${JSON.stringify({ State: c.State, Hsms: c.Hsms })}\n${services.map((s) => `${s.name}:\n${s.stderr().slice(-4000)}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

test('coffer service --fleet remote: nodes registered with coffer fleet from any service process; an HSM lands on the node', async () => {
  const dataPlanePort = await freePort([NODE_HOST, FOREIGN_HOST, SPARE_HOST]);
  const node = await spawnNode({ mainJs: MAIN_JS, dataDir: join(env.dir, 'node'), authoritiesDir: env.authoritiesDir, host: NODE_HOST, port: dataPlanePort, journal: 'relayed' });
  nodes.push(node);
  // Made by another manufacturer, commissioned by this operator (so it accepts the service's client certificate).
  const other = await createDevelopmentAuthorities();
  saveDevelopmentAuthorities({ ...env.authorities, manufacturer: other.manufacturer }, join(env.dir, 'foreign-authorities'));
  const foreign = await spawnNode({ mainJs: MAIN_JS, dataDir: join(env.dir, 'foreign'), authoritiesDir: join(env.dir, 'foreign-authorities'), host: FOREIGN_HOST, port: dataPlanePort, journal: 'relayed' });
  nodes.push(foreign);

  const first = await startService('first', dataPlanePort);
  const second = await startService('second', dataPlanePort);
  const orchestrating = (await orchestratorPid()) === first.pid ? first : second;
  const registrar = orchestrating === first ? second : first;

  const refused = await coffer(['fleet', 'register', '--endpoint-url', registrar.endpoint, '--management', `${FOREIGN_HOST}:${foreign.managementPort}`]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /COFFER_FLEET_UNTRUSTED/);
  const denied = await coffer(['fleet', 'register', '--endpoint-url', registrar.endpoint, '--management', `${NODE_HOST}:${node.managementPort}`], READER);
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stderr, /COFFER_SERVICE_REFUSED.*AccessDeniedException.*coffer:RegisterNode/);
  const usage = await coffer(['fleet', 'register', '--endpoint-url', registrar.endpoint, '--management', NODE_HOST]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /COFFER_CLI_USAGE.*--management must be HOST:PORT/);

  const registered = await coffer(['fleet', 'register', '--endpoint-url', registrar.endpoint, '--management', `${NODE_HOST}:${node.managementPort}`]);
  assert.equal(registered.code, 0, registered.stderr);
  const record = (JSON.parse(registered.stdout) as { Node: NodeOut }).Node;
  assert.deepEqual(
    [record.Serial, record.State, record.DataPlaneHost, record.DataPlanePort, record.ManagementPort],
    [node.serial, 'free', NODE_HOST, dataPlanePort, node.managementPort],
  );
  // Listed by the other process too, and by a key that may only list.
  assert.deepEqual(await list(orchestrating), [record]);
  const readerList = await coffer(['fleet', 'list', '--endpoint-url', orchestrating.endpoint], READER);
  assert.equal(readerList.code, 0, readerList.stderr);

  // A cluster and its first HSM through the AWS SDK: the HSM is the registered node (a development
  // node is commissioned NON_FIPS, so the cluster is too).
  const api = new CloudHSMV2Client({ endpoint: registrar.endpoint, region: REGION, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey } });
  const zones = defaultZones(REGION);
  // The SDK of this version predates `Mode`; its JSON serialiser sends the member as given.
  const input = { HsmType: 'hsm2m.medium', Mode: 'NON_FIPS', SubnetIds: [`subnet-${randomBytes(9).toString('hex').slice(0, 17)}`] };
  const created = await api.send(new CreateClusterCommand(input as CreateClusterCommandInput));
  const clusterId = created.Cluster?.ClusterId ?? assert.fail('a cluster id');
  await waitFor(api, clusterId, 'cluster UNINITIALIZED', (c) => c.State === 'UNINITIALIZED');
  const hsm = (await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: zones[0] }))).Hsm;
  const hsmId = hsm?.HsmId ?? assert.fail('an HSM id');
  assert.equal(hsm?.EniIp, NODE_HOST, 'the address is the registered node\'s');
  const active = await waitFor(api, clusterId, 'the HSM ACTIVE with the cluster CSR', (c) => c.Hsms?.[0]?.State === 'ACTIVE' && typeof c.Certificates?.ClusterCsr === 'string');
  assert.deepEqual(active.Hsms?.map((h) => [h.HsmId, h.EniIp]), [[hsmId, NODE_HOST]]);
  const assigned = await list(registrar);
  assert.deepEqual(assigned.map((n) => [n.Serial, n.State, n.HsmId]), [[node.serial, 'assigned', hsmId]]);

  // In use: not deregistered.
  const inUse = await coffer(['fleet', 'deregister', '--endpoint-url', registrar.endpoint, '--management', `${NODE_HOST}:${node.managementPort}`]);
  assert.equal(inUse.code, 1, inUse.stderr);
  assert.match(inUse.stderr, /COFFER_FLEET_NODE_NOT_BLANK.*handed-out/);

  // The node dies: the HSM is replaced on a spare registered node (same HSM id), and its EniIp
  // follows the node, since on a remote fleet an address is a node's. The dead node is owed a zeroise.
  const spare = await spawnNode({ mainJs: MAIN_JS, dataDir: join(env.dir, 'spare'), authoritiesDir: env.authoritiesDir, host: SPARE_HOST, port: dataPlanePort, journal: 'relayed' });
  nodes.push(spare);
  const spareRegistered = await coffer(['fleet', 'register', '--endpoint-url', registrar.endpoint, '--management', `${SPARE_HOST}:${spare.managementPort}`]);
  assert.equal(spareRegistered.code, 0, spareRegistered.stderr);
  await stopNode(node, 'SIGKILL');
  const healed = await waitFor(api, clusterId, 'the HSM replaced on the spare node', (c) => c.Hsms?.[0]?.State === 'ACTIVE' && c.Hsms[0].EniIp === SPARE_HOST);
  assert.deepEqual(healed.Hsms?.map((h) => h.HsmId), [hsmId], 'the same HSM');
  const afterReplace = await list(orchestrating);
  assert.deepEqual(afterReplace.map((n) => [n.Serial, n.State, n.HsmId]), [[node.serial, 'zeroise-owed', undefined], [spare.serial, 'assigned', hsmId]]);

  // Once the HSM is deleted its node is zeroised, free, and can go; so can the dead one.
  await api.send(new DeleteHsmCommand({ ClusterId: clusterId, HsmId: hsmId }));
  await waitFor(api, clusterId, 'the HSM deleted', (c) => (c.Hsms ?? []).length === 0);
  assert.deepEqual((await list(orchestrating)).map((n) => n.State), ['zeroise-owed', 'free']);
  for (const id of (await list(orchestrating)).map((n) => n.DeviceId)) {
    const gone = await coffer(['fleet', 'deregister', '--endpoint-url', registrar.endpoint, '--device-id', id]);
    assert.equal(gone.code, 0, gone.stderr);
  }
  assert.deepEqual(await list(orchestrating), []);
  api.destroy();

  for (const s of services) {
    s.proc.kill('SIGTERM');
    assert.equal((await s.exited).code, 0, s.stderr().slice(-4000));
    assert.ok(!s.stderr().includes(KEY.secretAccessKey) && !s.stderr().includes('PRIVATE KEY'), `${s.name}: no secret in the log`);
  }
});

test('coffer service --fleet remote: --fleet-dir and --authorities are refused with it; --fleet takes local or remote', async () => {
  const base = ['service', '--region', REGION, '--metadata', join(env.dir, 'usage.sqlite'), '--archive', join(env.dir, 'usage-archive')];
  const withDir = await coffer([...base, '--fleet', 'remote', '--fleet-dir', join(env.dir, 'x')]);
  assert.equal(withDir.code, 2);
  assert.match(withDir.stderr, /COFFER_CLI_USAGE.*--fleet-dir and --authorities apply to --fleet local only/);
  const bad = await coffer([...base, '--fleet', 'cloud']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /COFFER_CLI_USAGE.*--fleet must be local or remote/);
  const local = await coffer([...base]);
  assert.equal(local.code, 2);
  assert.match(local.stderr, /COFFER_CLI_USAGE.*--fleet-dir is required/);
});
