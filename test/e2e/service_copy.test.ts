// CopyBackupToRegion between two `coffer service` processes (docs/control-plane.md "Copies to other
// regions"): us-east-1 and eu-west-1, each on its own SQLite file, directory archive, fleet and work
// directory, peered by a --peers file. A backup made in us-east-1 the way CloudHSM makes one (an
// initialised cluster's HSM deleted) is copied through the AWS SDK; eu-west-1 lists it with its
// source and copy time, and its archive holds the same sealed bytes. Then the peer endpoint is
// called directly, signed by the AWS SDK's signer, with what a broken or hostile peer might send —
// a key without the action, bytes altered after signing, a wrong or missing hash, an oversize
// body, a blob that fails provenance, bad metadata, no signature — and each is refused with
// nothing stored. Last, us-east-1 restarted with a peer key eu-west-1 does not grant, an
// unreachable peer and no peer: each copy is refused with a CloudHsm* error and nothing arrives.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  CloudHSMV2Client, CopyBackupToRegionCommand, CreateClusterCommand, CreateHsmCommand, DeleteHsmCommand, DescribeBackupsCommand, DescribeClustersCommand,
  InitializeClusterCommand, type Backup, type Cluster,
} from '@aws-sdk/client-cloudhsm-v2';
import type { AccessKey } from '../../src/service/api/sigv4.js';
import { COPY_METADATA_HEADER, PEER_COPY_BYTES_MAX, PEER_COPY_PATH } from '../../src/service/copy_http.js';
import { NodeSha256, signedRequest, type RawResponse } from '../service/api/api_support.js';
import { MAIN_JS, fleetEnvironment, freePort, type FleetEnvironment } from '../service/fleet/fleet_support.js';
import { killDevices, serviceCredentialArgs, spawnServiceProcess, writeServiceCredentials, type ServiceProc } from './service_support.js';

const EAST = 'us-east-1';
const WEST = 'eu-west-1';
/** Creating and initialising a cluster on a loaded machine may take minutes; never a measured duration. */
const STATE_WAIT_MS = 10 * 60_000;
const POLL_MS = 250;
const ACCOUNT = '444455556666';
const USER: AccessKey = { accessKeyId: 'AKIACOPYUSEREXAMPLE1', secretAccessKey: `user/${randomBytes(24).toString('base64url')}`, accountId: ACCOUNT, actions: ['*'] };
/** What eu-west-1 grants us-east-1's service: receiving copies, and nothing else. */
const PEER: AccessKey = { accessKeyId: 'AKIACOPYPEEREXAMPLE1', secretAccessKey: `peer/${randomBytes(24).toString('base64url')}`, accountId: '999988887777', actions: ['coffer:ReceiveBackupCopy'] };
/** A key eu-west-1 knows that may not receive copies. */
const NO_ACTION: AccessKey = { accessKeyId: 'AKIACOPYNOACTIONKEY1', secretAccessKey: `none/${randomBytes(24).toString('base64url')}`, accountId: '999988887777', actions: ['cloudhsm:DescribeBackups'] };

let env: FleetEnvironment;
const procs: ServiceProc[] = [];
let west: ServiceProc;
let east: ServiceProc;
let dataPlanePort: number;
/** The backup made in us-east-1, and the copy test 1 made of it in eu-west-1. */
let source: { backupId: string; clusterId: string } | undefined;

const dir = (region: string, what: string): string => join(env.dir, region, what);

function serviceArgs(region: string, extra: readonly string[]): string[] {
  return [
    '--region', region, '--port', '0', '--metadata', dir(region, 'metadata.sqlite'), '--archive', dir(region, 'archive'),
    '--fleet-dir', dir(region, 'fleet'), '--work-dir', dir(region, 'work'), ...serviceCredentialArgs(env),
    '--access-keys', join(env.dir, `${region}-keys.json`), '--data-plane-port', String(dataPlanePort), '--probe-interval-ms', '300', '--log-level', 'debug', ...extra,
  ];
}

async function startEast(peers: readonly { region: string; endpoint: string; key: AccessKey }[], name: string): Promise<ServiceProc> {
  const file = join(env.dir, `${name}-peers.json`);
  writeFileSync(file, JSON.stringify({ peers: peers.map((p) => ({ region: p.region, endpoint: p.endpoint, accessKeyId: p.key.accessKeyId, secretAccessKey: p.key.secretAccessKey })) }), { mode: 0o600 });
  return (await spawnServiceProcess(procs, name, serviceArgs(EAST, ['--peers', file]))).p;
}

before(async () => {
  env = await fleetEnvironment('service-copy');
  writeServiceCredentials(env);
  for (const region of [EAST, WEST]) mkdirSync(join(env.dir, region), { recursive: true });
  writeFileSync(join(env.dir, `${EAST}-keys.json`), JSON.stringify({ accessKeys: [USER] }), { mode: 0o600 });
  writeFileSync(join(env.dir, `${WEST}-keys.json`), JSON.stringify({ accessKeys: [USER, PEER, NO_ACTION] }), { mode: 0o600 });
  dataPlanePort = await freePort(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  west = (await spawnServiceProcess(procs, 'west', serviceArgs(WEST, []))).p;
  east = await startEast([{ region: WEST, endpoint: west.endpoint, key: PEER }], 'east');
});

after(async () => {
  for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  if (env === undefined) return;
  // The HSM processes are the fleet's and outlive the services: the test started them, so it stops them.
  for (const region of [EAST, WEST]) killDevices(join(dir(region, 'fleet'), 'devices'));
  rmSync(env.dir, { recursive: true, force: true });
});

const client = (p: ServiceProc, region: string): CloudHSMV2Client =>
  new CloudHSMV2Client({ endpoint: p.endpoint, region, credentials: { accessKeyId: USER.accessKeyId, secretAccessKey: USER.secretAccessKey }, maxAttempts: 1 });

function logs(): string {
  return procs.map((x) => `${x.name}:\n${x.stderr().slice(-4000)}`).join('\n');
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + STATE_WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not reached\n${logs()}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** A READY backup in us-east-1, made as CloudHSM makes one: an initialised cluster's HSM deleted. */
async function backupInEast(api: CloudHSMV2Client): Promise<{ backupId: string; clusterId: string }> {
  const created = await api.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [`subnet-${randomBytes(9).toString('hex').slice(0, 17)}`] }));
  const clusterId = created.Cluster?.ClusterId as string;
  const cluster = async (): Promise<Cluster> => (await api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }))).Clusters?.[0] as Cluster;
  await waitFor('cluster UNINITIALIZED', async () => ((await cluster()).State === 'UNINITIALIZED' ? true : undefined));
  const hsm = await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: `${EAST}a` }));
  const withCsr = await waitFor('HSM ACTIVE with the cluster CSR', async () => {
    const c = await cluster();
    return c.Hsms?.[0]?.State === 'ACTIVE' && c.Certificates?.ClusterCsr !== undefined ? c : undefined;
  });
  const signedCert = await env.customerCa.signClusterCsr(withCsr.Certificates?.ClusterCsr as string);
  await api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: signedCert, TrustAnchor: env.customerCa.certificatePem }));
  await waitFor('cluster INITIALIZED', async () => ((await cluster()).State === 'INITIALIZED' ? true : undefined));
  // CloudHSM backs a cluster up before an HSM is removed.
  await api.send(new DeleteHsmCommand({ ClusterId: clusterId, HsmId: hsm.Hsm?.HsmId as string }));
  const backup = await waitFor('a READY backup', async () =>
    (await api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups?.find((b) => b.BackupState === 'READY'));
  return { backupId: backup.BackupId as string, clusterId };
}

/** The archive's objects (files not starting with `.`), name → bytes. */
function archiveObjects(region: string): Map<string, Buffer> {
  return new Map(readdirSync(dir(region, 'archive')).filter((f) => !f.startsWith('.')).map((f) => [f, readFileSync(join(dir(region, 'archive'), f))]));
}

async function westBackups(): Promise<Backup[]> {
  const api = client(west, WEST);
  try {
    return (await api.send(new DescribeBackupsCommand({}))).Backups ?? [];
  } finally {
    api.destroy();
  }
}

test('a backup copied between two coffer service processes: the same sealed bytes, listed in the destination with its source', async () => {
  const api = client(east, EAST);
  try {
    source = await backupInEast(api);
    const out = await api.send(new CopyBackupToRegionCommand({ BackupId: source.backupId, DestinationRegion: WEST, TagList: [{ Key: 'purpose', Value: 'disaster recovery' }] }));
    const d = out.DestinationBackup;
    assert.deepEqual([d?.SourceRegion, d?.SourceBackup, d?.SourceCluster], [EAST, source.backupId, source.clusterId]);
    assert.ok(d?.CreateTimestamp instanceof Date);
  } finally {
    api.destroy();
  }
  const listed = await westBackups();
  assert.equal(listed.length, 1, JSON.stringify(listed));
  const copy = listed[0] as Backup;
  assert.notEqual(copy.BackupId, source.backupId, 'the copy has an id of its own');
  assert.deepEqual(
    [copy.BackupState, copy.SourceRegion, copy.SourceBackup, copy.SourceCluster, copy.ClusterId],
    ['READY', EAST, source.backupId, source.clusterId, source.clusterId],
  );
  assert.ok(copy.CopyTimestamp instanceof Date && copy.CreateTimestamp instanceof Date);
  assert.deepEqual(copy.TagList, [{ Key: 'purpose', Value: 'disaster recovery' }]);

  const eastBlob = archiveObjects(EAST).get(`${source.clusterId}~${source.backupId}`);
  const westObjects = archiveObjects(WEST);
  assert.deepEqual([...westObjects.keys()], [`${source.clusterId}~${copy.BackupId as string}`]);
  assert.ok(eastBlob !== undefined && eastBlob.equals(westObjects.values().next().value as Buffer), 'the same sealed bytes');
  assert.deepEqual(readdirSync(dir(WEST, 'work')), [], 'nothing left in the work directory');
  assert.deepEqual(readdirSync(dir(EAST, 'work')), [], 'nothing left in the work directory');
});

// ── the peer endpoint, called directly ──────────────────────────────────────────────────────

function metadata(overrides: Record<string, unknown> = {}): string {
  assert.ok(source !== undefined, 'the first test made a backup');
  const m = { v: 1, accountId: ACCOUNT, hsmType: 'hsm2m.medium', sourceRegion: EAST, sourceBackup: source.backupId, sourceCluster: source.clusterId, bodySha256: null, tags: [], ...overrides };
  return Buffer.from(JSON.stringify(m), 'utf8').toString('base64url');
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A PUT to the peer endpoint signed by the AWS SDK's signer with `x-amz-content-sha256: hash`. */
function peerPut(key: AccessKey, body: Buffer, o: { hash?: string; meta?: string; tamper?: (body: Buffer) => Buffer; unsigned?: boolean } = {}): Promise<RawResponse> {
  const headers = { 'content-type': 'application/octet-stream', 'x-amz-content-sha256': o.hash ?? sha256(body), [COPY_METADATA_HEADER]: o.meta ?? metadata() };
  return signedRequest(west.endpoint, {
    method: 'PUT', path: PEER_COPY_PATH, key, region: WEST, body, headers,
    tamper: (h, b) => {
      const out = o.unsigned === true ? Object.fromEntries(Object.entries(h).filter(([n]) => n.toLowerCase() !== 'authorization')) : h;
      return { headers: out, body: o.tamper?.(b) ?? b };
    },
  });
}

/** Headers only, declaring a body of `bytes`: the answer must come before any body is sent. */
async function oversizePut(bytes: number): Promise<RawResponse> {
  const endpoint = new URL(west.endpoint);
  const signer = new SignatureV4({ credentials: { accessKeyId: PEER.accessKeyId, secretAccessKey: PEER.secretAccessKey }, region: WEST, service: 'cloudhsm', sha256: NodeSha256 });
  const signed = await signer.sign({
    method: 'PUT', protocol: 'http:', hostname: endpoint.hostname, port: Number(endpoint.port), path: PEER_COPY_PATH,
    headers: { host: endpoint.host, 'content-type': 'application/octet-stream', 'x-amz-content-sha256': 'a'.repeat(64), [COPY_METADATA_HEADER]: metadata() },
  });
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: endpoint.hostname, port: Number(endpoint.port), method: 'PUT', path: PEER_COPY_PATH, headers: { ...signed.headers, 'content-length': String(bytes) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: JSON.parse(text) as Record<string, unknown> });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

test('the peer endpoint refuses what a broken or hostile peer sends, and stores nothing', async () => {
  assert.ok(source !== undefined, 'the first test made a backup');
  const blob = archiveObjects(EAST).get(`${source.clusterId}~${source.backupId}`) as Buffer;
  const flipped = (b: Buffer): Buffer => {
    const out = Buffer.from(b);
    out[out.length - 300] = (out[out.length - 300] as number) ^ 1;
    return out;
  };
  const before = archiveObjects(WEST);
  // One at a time: the destination takes a few copies at once, and these must not meet that bound.
  const refusals: Array<[string, () => Promise<RawResponse>, number, string, RegExp?]> = [
    ['a key without coffer:ReceiveBackupCopy', () => peerPut(NO_ACTION, blob), 403, 'AccessDeniedException', /coffer:ReceiveBackupCopy/],
    ['no signature', () => peerPut(PEER, blob, { unsigned: true }), 403, 'MissingAuthenticationTokenException'],
    ['bytes altered after signing', () => peerPut(PEER, blob, { tamper: flipped }), 403, 'InvalidSignatureException', /x-amz-content-sha256/],
    ['a declared hash of other bytes', () => peerPut(PEER, blob, { hash: sha256(Buffer.from('other bytes')) }), 403, 'InvalidSignatureException', /x-amz-content-sha256/],
    ['an unsigned payload', () => peerPut(PEER, blob, { hash: 'UNSIGNED-PAYLOAD' }), 403, 'IncompleteSignatureException'],
    ['a signed blob that fails provenance', () => peerPut(PEER, flipped(blob)), 400, 'CloudHsmInvalidRequestException', /provenance/],
    ['a body digest other than the source recorded', () => peerPut(PEER, blob, { meta: metadata({ bodySha256: 'b'.repeat(64) }) }), 400, 'CloudHsmInvalidRequestException', /changed on its way/],
    ['metadata naming the destination as source', () => peerPut(PEER, blob, { meta: metadata({ sourceRegion: WEST }) }), 400, 'SerializationException', /sourceRegion/],
    ['metadata with a member too many', () => peerPut(PEER, blob, { meta: metadata({ owner: 'x' }) }), 400, 'SerializationException'],
    ['tags breaking the model', () => peerPut(PEER, blob, { meta: metadata({ tags: [{ Key: '', Value: 'x' }] }) }), 400, 'ValidationException'],
    ['an oversize body', () => oversizePut(PEER_COPY_BYTES_MAX + 1), 413, 'RequestEntityTooLargeException'],
  ];
  for (const [what, pending, status, type, message] of refusals) {
    const res = await pending();
    assert.equal(res.status, status, `${what}: ${res.text}`);
    assert.equal(res.json?.['__type'], type, what);
    if (message !== undefined) assert.match(String(res.json?.['Message']), message, what);
  }
  assert.deepEqual(archiveObjects(WEST), before, 'nothing archived');
  assert.equal((await westBackups()).length, 1, 'nothing recorded');
  assert.deepEqual(readdirSync(dir(WEST, 'work')), [], 'no upload left behind');

  // The same request, well formed, is taken: the refusals above were for what they changed.
  const ok = await peerPut(PEER, blob);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json?.['SourceBackup'], source.backupId);
  assert.equal((await westBackups()).length, 2);
});

test('refusals by the destination, an unreachable peer and a region that is no peer are CloudHsm* errors of CopyBackupToRegion; nothing arrives', async () => {
  assert.ok(source !== undefined, 'the first test made a backup');
  east.proc.kill('SIGTERM');
  assert.deepEqual(await east.exited, { code: 0, signal: null }, east.stderr().slice(-4000));
  const closedPort = await freePort(['127.0.0.1']);
  east = await startEast([
    { region: WEST, endpoint: west.endpoint, key: NO_ACTION },
    { region: 'ap-south-1', endpoint: `http://127.0.0.1:${closedPort}`, key: PEER },
  ], 'east-again');
  const before = archiveObjects(WEST);
  const count = (await westBackups()).length;
  const api = client(east, EAST);
  try {
    const copy = (region: string): Promise<unknown> => api.send(new CopyBackupToRegionCommand({ BackupId: source?.backupId, DestinationRegion: region }));
    await assert.rejects(copy(WEST), (e: Error) => e.name === 'CloudHsmAccessDeniedException' && /eu-west-1.*AccessDeniedException/.test(e.message));
    await assert.rejects(copy('ap-south-1'), (e: Error) => e.name === 'CloudHsmServiceException' && /ap-south-1 could not be reached/.test(e.message));
    await assert.rejects(copy('ca-central-1'), (e: Error) => e.name === 'CloudHsmInvalidRequestException' && /not a peer/.test(e.message));
  } finally {
    api.destroy();
  }
  assert.deepEqual(archiveObjects(WEST), before, 'nothing archived');
  assert.equal((await westBackups()).length, count, 'nothing recorded');
  assert.deepEqual(readdirSync(dir(EAST, 'work')), [], 'nothing left in the work directory');
  for (const p of procs) {
    for (const secret of [USER.secretAccessKey, PEER.secretAccessKey, NO_ACTION.secretAccessKey]) assert.ok(!p.stderr().includes(secret), `${p.name}: no secret in the log`);
  }
});

test('coffer service refuses a bad --peers file with COFFER_CLI_USAGE naming the entry and field, never printing the secret', async () => {
  const secret = `short${randomBytes(4).toString('hex')}`;
  const file = join(env.dir, 'bad-peers.json');
  writeFileSync(file, JSON.stringify({ peers: [{ region: WEST, endpoint: west.endpoint, accessKeyId: PEER.accessKeyId, secretAccessKey: secret }] }), { mode: 0o600 });
  const proc = spawn(process.execPath, [MAIN_JS, 'service', ...serviceArgs(EAST, ['--peers', file])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  assert.equal(code, 2, out);
  assert.match(out, /COFFER_CLI_USAGE.*--peers: secretAccessKey .*\(entry 0\)/);
  assert.ok(!out.includes(secret), 'the secret is not printed');
  assert.ok(!out.includes('"event":"ready"'), 'no ready line');
});
