// The control plane's whole lifecycle through the real AWS SDK (@aws-sdk/client-cloudhsm-v2) over
// HTTP and SigV4 (docs/control-plane.md): a cluster created, its first HSM making the CSR, the CSR
// signed by a customer CA and the cluster initialised, activated over the data plane, a key made, a
// second HSM cloned from a fresh backup, a failed HSM replaced, backups deleted, restored, expired
// and purged, a tampered archived backup refused at restore, HSMs and the cluster deleted — and then
// the metadata store, the archive and the service's log searched for every secret the scenario
// used. Nodes are served in-process on real sockets; the orchestrator's clock is a manual one and
// the test ticks it, so nothing waits on time. The scenario runs on each storage combination the
// test files name (control_plane.test.ts: SQLite and a directory; control_plane_pg_s3.test.ts:
// PostgreSQL and S3 on Ceph RGW), each with its own way to tamper with an archived backup and to
// read back everything its store and archive hold.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import {
  CloudHSMV2Client, CreateClusterCommand, type CreateClusterCommandInput, CreateHsmCommand, DeleteBackupCommand, DeleteClusterCommand, DeleteHsmCommand, DescribeBackupsCommand,
  DescribeClustersCommand, InitializeClusterCommand, ModifyBackupAttributesCommand, ModifyClusterCommand, RestoreBackupCommand, type Backup, type Cluster as ApiCluster,
} from '@aws-sdk/client-cloudhsm-v2';
import { Cluster } from '../../src/client/cluster.js';
import { createDevelopmentCustomerCa } from '../../src/factory/development.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { startService, type RunningService } from '../../src/service/service.js';
import type { Archive } from '../../src/storage/archive_port.js';
import type { MetadataStore } from '../../src/storage/metadata_port.js';
import { forms } from '../secret_forms.js';
import { InProcessFleet, killInProcess } from './fleet/in_process_fleet.js';
import { fleetEnvironment, freePort, type FleetEnvironment } from './fleet/fleet_support.js';

const REGION = 'us-east-1';
const DAY_MS = 24 * 3600_000;
const KEY = { accessKeyId: 'AKIDCONTROLPLANETEST', secretAccessKey: randomBytes(30).toString('base64'), accountId: '111122223333', actions: ['*'] };
const ADMIN_PASSWORD = `admin-${randomBytes(9).toString('hex')}`;
const CRYPTO_PASSWORD = `crypto-${randomBytes(9).toString('hex')}`;

/** A storage combination for the scenario. */
export interface LifecycleStorage {
  readonly name: string;
  openMetadata(dir: string): Promise<MetadataStore>;
  openArchive(dir: string): Promise<Archive>;
  /** Flips a byte of the archived object `key` (an operator's disk or bucket gone bad, or an attack). */
  tamper(archive: Archive, key: string, dir: string): Promise<void>;
  /** Everything the metadata store and the archive hold, as text, read after the service closed. */
  contents(archive: Archive, dir: string): Promise<string>;
  cleanup?(): Promise<void>;
}

let env: FleetEnvironment;
let metadata: MetadataStore;
let archive: Archive;
let fleet: InProcessFleet;
let service: RunningService;
let api: CloudHSMV2Client;
const clock = new ManualClock(Date.now());
const logLines: string[] = [];

export function lifecycle(storage: LifecycleStorage): void {
before(async () => {
  env = await fleetEnvironment('control-plane');
  metadata = await storage.openMetadata(env.dir);
  archive = await storage.openArchive(env.dir);
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials });
  const sink = new Writable({ write(chunk: Buffer, _e, done) { logLines.push(chunk.toString('utf8')); if (process.env['CP_DEBUG'] !== undefined) process.stderr.write(chunk); done(); } });
  service = await startService({
    region: REGION, host: '127.0.0.1', port: 0, metadata, archive, fleet, accessKeys: [KEY], workDir: env.dir, logger: pino({ level: 'debug' }, sink),
    clock, orchestrate: false, dataPlanePort: await freePort(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']),
    roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
  });
  api = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey } });
});

let closed = false;

after(async () => {
  api?.destroy();
  if (!closed) {
    await service?.close();
    await metadata?.close();
  }
  await fleet?.close({ stopDevices: true });
  await archive?.close();
  await storage.cleanup?.();
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
});

/** One orchestrator step, finished. */
async function step(): Promise<void> {
  assert.equal(await service.orchestrator.tick(), true, 'this service holds the orchestrator lease');
  await service.orchestrator.settled();
}

async function describe(clusterId: string): Promise<ApiCluster> {
  const out = await api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
  return out.Clusters?.[0] ?? assert.fail(`cluster ${clusterId} not listed`);
}

async function backupsOf(clusterId: string): Promise<Backup[]> {
  return (await api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] }, SortAscending: true }))).Backups ?? [];
}

async function rejectsWith(p: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.equal(e.name, name);
    return true;
  });
}

function connect(cluster: ApiCluster, ca: string, hsmIndexes?: readonly number[]): Promise<Cluster> {
  const hsms = (cluster.Hsms ?? []).filter((_, i) => hsmIndexes === undefined || hsmIndexes.includes(i));
  return Cluster.connect({ endpoints: hsms.map((h) => ({ host: h.EniIp as string, port: service.config.dataPlanePort })), ca, credentials: { username: 'alice', password: CRYPTO_PASSWORD } });
}

test(`${storage.name}: a cluster from creation to deletion, through the AWS SDK; no secret in the store, the archive or the log`, { timeout: 600_000 }, async () => {
  // NON_FIPS, so the test can import a key whose bytes it knows (a FIPS cluster refuses plaintext
  // import). The SDK of this version predates `Mode`; its JSON serialiser sends the member as given.
  const input = { HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'], Mode: 'NON_FIPS' };
  const created = await api.send(new CreateClusterCommand(input as CreateClusterCommandInput));
  const clusterId = created.Cluster?.ClusterId as string;
  assert.match(clusterId, /^cluster-[2-7a-z]{11}$/);
  assert.equal(created.Cluster?.State, 'CREATE_IN_PROGRESS');
  await step();
  assert.equal((await describe(clusterId)).State, 'UNINITIALIZED');
  assert.deepEqual((await describe(clusterId)).SubnetMapping, { 'us-east-1a': 'subnet-0a1b2c3d4e5f60001', 'us-east-1b': 'subnet-0a1b2c3d4e5f60002' });

  // The first HSM makes the cluster CSR; a second is refused until the cluster is initialised.
  const first = await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' }));
  assert.equal(first.Hsm?.State, 'CREATE_IN_PROGRESS');
  await rejectsWith(api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1b' })), 'CloudHsmInvalidRequestException');
  await step();
  const uninitialised = await describe(clusterId);
  assert.equal(uninitialised.Hsms?.[0]?.State, 'ACTIVE');
  const certs = uninitialised.Certificates ?? {};
  assert.match(certs.ClusterCsr ?? '', /BEGIN CERTIFICATE REQUEST/);
  // The HSM's certificates chain to the manufacturer and operator roots (checked by OpenSSL through node:crypto).
  assert.ok(new X509Certificate(certs.HsmCertificate as string).verify(new X509Certificate(env.credentials.manufacturerRootPem).publicKey));
  assert.ok(new X509Certificate(certs.AwsHardwareCertificate as string).verify(new X509Certificate(env.credentials.operatorRootPem).publicKey));

  // InitializeCluster: a certificate from another CA is refused at once; the right one initialises.
  const otherCa = await createDevelopmentCustomerCa();
  await rejectsWith(api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: await otherCa.signClusterCsr(certs.ClusterCsr as string), TrustAnchor: env.customerCa.certificatePem })), 'CloudHsmInvalidRequestException');
  const signed = await env.customerCa.signClusterCsr(certs.ClusterCsr as string);
  const init = await api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: signed, TrustAnchor: env.customerCa.certificatePem }));
  assert.equal(init.State, 'INITIALIZE_IN_PROGRESS');
  await step();
  const initialised = await describe(clusterId);
  assert.equal(initialised.State, 'INITIALIZED');
  const preCo = initialised.PreCoPassword as string;
  assert.ok(preCo.length >= 7 && preCo.length <= 32);

  // The customer activates over the data plane; the service sees it, forgets the PreCo password and backs up.
  const endpoints = [{ host: initialised.Hsms?.[0]?.EniIp as string, port: service.config.dataPlanePort }];
  await Cluster.activate({ endpoints, ca: env.customerCa.certificatePem, preCoPassword: preCo, newAdminPassword: ADMIN_PASSWORD });
  await step();
  const active = await describe(clusterId);
  assert.equal(active.State, 'ACTIVE');
  assert.equal(active.PreCoPassword, undefined);
  assert.equal((await backupsOf(clusterId)).filter((b) => b.BackupState === 'READY').length, 1, 'a backup on activation');

  const admin = await Cluster.connect({ endpoints, ca: env.customerCa.certificatePem, credentials: { username: 'admin', password: ADMIN_PASSWORD, role: 'admin' } });
  await admin.users.create('alice', CRYPTO_PASSWORD, 'crypto-user');
  await admin.close();
  const alice = await connect(active, env.customerCa.certificatePem);
  // A key whose bytes the test knows (a FIPS cluster never exports one in plaintext): imported.
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyBytes = new Uint8Array(pair.privateKey.export({ type: 'pkcs8', format: 'der' }));
  await alice.importPrivateKeyPem(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { label: 'cp-key' });
  await alice.close();

  // A second HSM: restored from a fresh backup of the first, so it holds the key.
  await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1b' }));
  await step();
  const two = await describe(clusterId);
  assert.deepEqual(two.Hsms?.map((h) => h.State), ['ACTIVE', 'ACTIVE']);
  assert.equal(new Set(two.Hsms?.map((h) => h.EniIp)).size, 2, 'each HSM on its own address');
  const onSecond = await connect(two, env.customerCa.certificatePem, [1]);
  assert.equal((await onSecond.findKeys({ label: 'cp-key' })).length, 1, 'the clone holds the key');
  await onSecond.close();

  // A failed HSM is replaced: same id and address, a new device restored from its healthy peer.
  const victim = (await service.repository.hsm(two.Hsms?.[0]?.HsmId as string))?.doc.device ?? assert.fail('device recorded');
  await killInProcess(fleet.dataDir(victim.deviceId));
  for (let i = 0; i < 3; i++) await step();
  const healed = await describe(clusterId);
  assert.deepEqual(healed.Hsms?.map((h) => [h.HsmId, h.EniIp, h.State]), two.Hsms?.map((h) => [h.HsmId, h.EniIp, 'ACTIVE']));
  assert.equal(healed.State, 'ACTIVE');
  const replaced = (await service.repository.hsm(two.Hsms?.[0]?.HsmId as string))?.doc.device;
  assert.notEqual(replaced?.serial, victim.serial, 'a new device');
  const onReplaced = await connect(healed, env.customerCa.certificatePem, [0]);
  assert.equal((await onReplaced.findKeys({ label: 'cp-key' })).length, 1, 'the replacement holds the key');
  await onReplaced.close();

  // DeleteBackup is soft for 7 days: RestoreBackup brings it back; afterwards it is purged.
  const [oldest] = await backupsOf(clusterId);
  const oldestId = oldest?.BackupId as string;
  const deleted = await api.send(new DeleteBackupCommand({ BackupId: oldestId }));
  assert.equal(deleted.Backup?.BackupState, 'PENDING_DELETION');
  assert.ok((deleted.Backup?.DeleteTimestamp?.getTime() ?? 0) > clock.nowMs());
  assert.equal((await api.send(new RestoreBackupCommand({ BackupId: oldestId }))).Backup?.BackupState, 'READY');
  await api.send(new DeleteBackupCommand({ BackupId: oldestId }));
  const archivedKey = `${clusterId}/${oldestId}`;
  assert.notEqual(await archive.head(archivedKey), undefined);
  clock.advance(7 * DAY_MS + 1);
  await step();
  assert.equal((await backupsOf(clusterId)).some((b) => b.BackupId === oldestId), false, 'purged backups are not listed');
  assert.equal(await archive.head(archivedKey), undefined, 'the purge removed the blob');

  // Retention: past 7 days every backup but the newest and the NeverExpires one is pending deletion.
  await api.send(new ModifyClusterCommand({ ClusterId: clusterId, BackupRetentionPolicy: { Type: 'DAYS', Value: '7' } }));
  const kept = (await backupsOf(clusterId)).find((b) => b.BackupState === 'READY')?.BackupId as string;
  await api.send(new ModifyBackupAttributesCommand({ BackupId: kept, NeverExpires: true }));
  clock.advance(8 * DAY_MS);
  await step(); // a scheduled backup (24 h passed) and the retention pass
  await step();
  const states = new Map((await backupsOf(clusterId)).map((b) => [b.BackupId, b.BackupState]));
  assert.equal(states.get(kept), 'READY', 'NeverExpires keeps a backup');
  const readyOthers = [...states].filter(([id, s]) => id !== kept && s === 'READY');
  assert.equal(readyOthers.length, 1, 'only the newest other backup stays READY');

  // A tampered archived backup is refused at restore: a cluster made from it gets no HSM.
  const newest = readyOthers[0]?.[0] as string;
  await storage.tamper(archive, `${clusterId}/${newest}`, env.dir);
  const fromTampered = await api.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60003'], SourceBackupId: newest }));
  const tamperedId = fromTampered.Cluster?.ClusterId as string;
  await step();
  await api.send(new CreateHsmCommand({ ClusterId: tamperedId, AvailabilityZone: 'us-east-1a' }));
  await step();
  assert.equal((await describe(tamperedId)).Hsms?.[0]?.State, 'CREATE_IN_PROGRESS', 'the restore was refused');
  assert.ok(logLines.some((l) => l.includes('backup failed its provenance check')), 'the refusal is logged');
  await api.send(new DeleteHsmCommand({ ClusterId: tamperedId, HsmId: (await describe(tamperedId)).Hsms?.[0]?.HsmId as string }));

  // HSMs go (a backup first), then the cluster.
  await rejectsWith(api.send(new DeleteClusterCommand({ ClusterId: clusterId })), 'CloudHsmInvalidRequestException');
  for (const h of healed.Hsms ?? []) await api.send(new DeleteHsmCommand({ ClusterId: clusterId, EniIp: h.EniIp as string }));
  await step();
  assert.deepEqual((await describe(clusterId)).Hsms, []);

  // With no HSM left to clone, a new one is restored from the cluster's newest archived backup.
  await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' }));
  await step();
  const reborn = await describe(clusterId);
  assert.deepEqual(reborn.Hsms?.map((h) => h.State), ['ACTIVE']);
  const onReborn = await connect(reborn, env.customerCa.certificatePem);
  assert.equal((await onReborn.findKeys({ label: 'cp-key' })).length, 1, 'restored from the archive, with the key');
  await onReborn.close();
  await api.send(new DeleteHsmCommand({ ClusterId: clusterId, HsmId: reborn.Hsms?.[0]?.HsmId as string }));
  await step();
  assert.equal((await api.send(new DeleteClusterCommand({ ClusterId: clusterId }))).Cluster?.State, 'DELETE_IN_PROGRESS');
  await step();
  assert.equal((await describe(clusterId)).State, 'DELETED');

  // Nothing secret where the control plane keeps things.
  closed = true;
  await service.close();
  await metadata.close();
  const haystack = [await storage.contents(archive, env.dir), logLines.join('')].join('\n');
  assert.ok(haystack.includes(clusterId) && haystack.includes('CFBK'), 'the search reads what the store holds and the archived backups (their magic)');
  assert.ok(haystack.includes('CAUB'), 'the orchestrator collected the HSMs\' audit logs into the archive (their magic), and the search reads them');
  for (const secret of [ADMIN_PASSWORD, CRYPTO_PASSWORD, preCo, keyBytes, KEY.secretAccessKey]) {
    for (const form of forms(secret)) assert.ok(!haystack.includes(form), `a secret is in the store, the archive or the log (${form.slice(0, 6)}…)`);
  }
});
}
