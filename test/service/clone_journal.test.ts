// A cluster created from a backup gets a journal of its own (docs/journal-format.md "A cluster
// created from a backup", docs/control-plane.md "The journal relay"), end to end through the real
// AWS SDK and the data-plane SDK: a relayed source cluster is activated and backed up; a cluster
// created from that backup (SourceBackupId) gets two HSMs — the first restored from the source's
// backup starting the clone's journal, the second cloned from it — and a state change made through
// one clone HSM reaches the other through the clone's own journal, whose entries name the clone.
// Then an entry sealed for the source, written into the clone's journal behind the service's back,
// is refused by the clone's HSMs (a foreign sync key), nothing applied, and the clone is DEGRADED
// with a message naming the refusal and the position. Nodes are in-process on real sockets; the
// orchestrator is ticked by the test, the relay runs on its own.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CloudHSMV2Client, CreateClusterCommand, type CreateClusterCommandInput, CreateHsmCommand, DescribeBackupsCommand, DescribeClustersCommand, InitializeClusterCommand, type Cluster as ApiCluster } from '@aws-sdk/client-cloudhsm-v2';
import { Cluster } from '../../src/client/cluster.js';
import { decodeJournalEntryHeader } from '../../src/formats/journal_entry.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import type { Archive } from '../../src/storage/archive_port.js';
import { InProcessFleet } from './fleet/in_process_fleet.js';
import { fleetEnvironment, freePort, type FleetEnvironment } from './fleet/fleet_support.js';

const REGION = 'us-east-1';
const KEY = { accessKeyId: 'AKIDCLONEJOURNALTEST', secretAccessKey: randomBytes(30).toString('base64'), accountId: '111122223333', actions: ['*'] };
const ADMIN_PASSWORD = `admin-${randomBytes(9).toString('hex')}`;
/** Generous bound on a wait that ends on an event (the relay runs on its own timers). */
const WAIT_MS = 300_000;

let env: FleetEnvironment;
let metadata: SqliteMetadataStore;
let archive: Archive;
let fleet: InProcessFleet;
let service: RunningService;
let api: CloudHSMV2Client;
const clock = new ManualClock(Date.now());
const clients: Cluster[] = [];

before(async () => {
  env = await fleetEnvironment('clone-journal');
  metadata = SqliteMetadataStore.open({ path: join(env.dir, 'metadata.sqlite') });
  archive = await openFsArchive({ directory: join(env.dir, 'archive') });
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials, journal: 'relayed' });
  service = await startService({
    region: REGION, host: '127.0.0.1', port: 0, metadata, archive, fleet, accessKeys: [KEY], workDir: env.dir, logger: pino({ level: 'silent' }),
    clock, orchestrate: false, relayJournal: true, dataPlanePort: await freePort(['127.0.0.2', '127.0.0.3', '127.0.0.4']),
    roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
  });
  api = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey } });
});

after(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  api?.destroy();
  await service?.close();
  await metadata?.close();
  await fleet?.close({ stopDevices: true });
  await archive?.close();
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
});

async function step(): Promise<void> {
  assert.equal(await service.orchestrator.tick(), true, 'this service holds the orchestrator lease');
  await service.orchestrator.settled();
}

async function describe(clusterId: string): Promise<ApiCluster> {
  const out = await api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
  return out.Clusters?.[0] ?? assert.fail(`cluster ${clusterId} not listed`);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function admin(cluster: ApiCluster, index: number): Promise<Cluster> {
  const hsm = cluster.Hsms?.[index] ?? assert.fail(`HSM ${index}`);
  const c = await Cluster.connect({ endpoints: [{ host: hsm.EniIp as string, port: service.config.dataPlanePort }], ca: env.customerCa.certificatePem, credentials: { username: 'admin', password: ADMIN_PASSWORD, role: 'admin' } });
  clients.push(c);
  return c;
}

/** Every HSM's health (journal position, head hash, state digest, cluster id), by the order of `cluster.Hsms`. */
async function healths(cluster: ApiCluster): Promise<{ clusterId: string | null; journalPosition: bigint; journalHeadHash: string | null; stateDigest: string | null }[]> {
  const out = [];
  for (const h of cluster.Hsms ?? []) {
    const device = (await service.repository.hsm(h.HsmId as string))?.doc.device ?? assert.fail('device recorded');
    const health = await fleet.management(device).health();
    out.push({ clusterId: health.clusterId, journalPosition: health.journalPosition, journalHeadHash: health.journalHeadHash, stateDigest: health.stateDigest });
  }
  return out;
}

/** An activated, relayed source cluster of one HSM, and the backup taken on its activation. */
async function sourceCluster(): Promise<{ clusterId: string; backupId: string }> {
  const created = await api.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], Mode: 'NON_FIPS' } as CreateClusterCommandInput));
  const clusterId = created.Cluster?.ClusterId as string;
  await step();
  await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' }));
  await step();
  const csr = (await describe(clusterId)).Certificates?.ClusterCsr as string;
  await api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: await env.customerCa.signClusterCsr(csr), TrustAnchor: env.customerCa.certificatePem }));
  await step();
  const initialised = await describe(clusterId);
  await step(); // the relay now serves the initialised cluster: activation is a journal entry
  const endpoints = [{ host: initialised.Hsms?.[0]?.EniIp as string, port: service.config.dataPlanePort }];
  await Cluster.activate({ endpoints, ca: env.customerCa.certificatePem, preCoPassword: initialised.PreCoPassword as string, newAdminPassword: ADMIN_PASSWORD });
  await step();
  assert.equal((await describe(clusterId)).State, 'ACTIVE');
  const backups = (await api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups ?? [];
  const backupId = backups.find((b) => b.BackupState === 'READY')?.BackupId ?? assert.fail('a backup on activation');
  return { clusterId, backupId };
}

test('a cluster created from a backup relays its changes through a journal of its own; the source\'s entries are refused there', { timeout: 900_000 }, async () => {
  const source = await sourceCluster();
  const sourceHead = await metadata.journalHead(source.clusterId);
  assert.ok(sourceHead >= 1, 'the activation is an entry of the source');

  const created = await api.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], SourceBackupId: source.backupId }));
  const cloneId = created.Cluster?.ClusterId as string;
  await step();
  await api.send(new CreateHsmCommand({ ClusterId: cloneId, AvailabilityZone: 'us-east-1a' }));
  await step();
  assert.equal((await describe(cloneId)).State, 'ACTIVE', 'activated in the source, so active at once');
  const [first] = await healths(await describe(cloneId));
  assert.equal(first?.clusterId, cloneId, 'the first HSM follows the clone\'s journal');
  assert.equal(first?.journalPosition, 0n, 'from the clone\'s genesis, not the source\'s position');
  await api.send(new CreateHsmCommand({ ClusterId: cloneId, AvailabilityZone: 'us-east-1a' }));
  await step();
  await step(); // the relay serves the second HSM once it is ACTIVE
  const clone = await describe(cloneId);
  assert.deepEqual(clone.Hsms?.map((h) => h.State), ['ACTIVE', 'ACTIVE']);

  // A user made through the clone's first HSM logs in on its second: the clone's journal carried it.
  const a0 = await admin(clone, 0);
  await a0.users.create('cloneuser', 'cloneuser-password', 'crypto-user');
  const head = await metadata.journalHead(cloneId);
  assert.ok(head >= 1);
  await until('both clone HSMs at the clone journal head', async () => (await healths(clone)).every((h) => h.journalPosition === BigInt(head)));
  const [h0, h1] = await healths(clone);
  assert.equal(h0?.journalHeadHash, h1?.journalHeadHash);
  assert.equal(h0?.stateDigest, h1?.stateDigest);
  const user = await Cluster.connect({ endpoints: [{ host: clone.Hsms?.[1]?.EniIp as string, port: service.config.dataPlanePort }], ca: env.customerCa.certificatePem, credentials: { username: 'cloneuser', password: 'cloneuser-password' } });
  clients.push(user);
  assert.equal((await user.random(8)).length, 8);
  const [entry1] = await metadata.readJournal(cloneId, 1, 1);
  assert.equal(decodeJournalEntryHeader(entry1?.entry ?? new Uint8Array()).clusterId, cloneId, 'the clone\'s entries name the clone');
  assert.equal(await metadata.journalHead(source.clusterId), sourceHead, 'nothing reached the source\'s journal');

  // An entry of the source, written as the clone's next entry behind the service's back.
  const before = await metadata.journalHead(cloneId);
  const [foreign] = await metadata.readJournal(source.clusterId, 1, 1);
  await metadata.appendJournal(cloneId, before + 1, foreign?.entry ?? assert.fail('a source entry'));
  let degraded = await describe(cloneId);
  await until('the clone DEGRADED, naming the refusal', async () => {
    await step();
    degraded = await describe(cloneId);
    return degraded.State === 'DEGRADED' && (degraded.StateMessage ?? '').includes('COFFER_JOURNAL_WRONG_KEY');
  });
  assert.ok((degraded.StateMessage ?? '').includes(`entry ${before + 1}`), degraded.StateMessage);
  for (const h of await healths(clone)) assert.equal(h.journalPosition, BigInt(before), 'nothing of the source\'s entry applied');
  assert.equal((await describe(source.clusterId)).State, 'ACTIVE', 'the source is untouched');
});
