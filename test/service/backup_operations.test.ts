// Tags, resource policies and shared backups, and copies to another region (docs/control-plane.md
// "Backups"): the control plane's operations over a real SQLite metadata store. Tags go through the
// real AWS SDK; the resource-policy operations, which the SDK of this version predates, are called
// on the operations the API serves. Backups here are documents (no HSM is needed to share one);
// the copy test archives a real sealed backup from an in-process node.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CloudHSMV2Client, ListTagsCommand, TagResourceCommand, UntagResourceCommand } from '@aws-sdk/client-cloudhsm-v2';
import { ApiError, type Caller } from '../../src/service/api/operations.js';
import { backupWrite, type BackupDoc } from '../../src/service/records.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import type { Archive } from '../../src/storage/archive_port.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { InProcessFleet } from './fleet/in_process_fleet.js';
import { fleetEnvironment, type FleetEnvironment } from './fleet/fleet_support.js';

const REGION = 'us-east-1';
const OWNER = '111122223333';
const OTHER = '444455556666';
const KEY = { accessKeyId: 'AKIDBACKUPOPSTEST00', secretAccessKey: randomBytes(30).toString('base64'), accountId: OWNER, actions: ['*'] };
const caller = (accountId: string): Caller => ({ accountId, accessKeyId: KEY.accessKeyId, region: REGION, requestId: 'test' });

let env: FleetEnvironment;
let metadata: SqliteMetadataStore;
let archive: Archive;
let fleet: InProcessFleet;
let service: RunningService;
let api: CloudHSMV2Client;

before(async () => {
  env = await fleetEnvironment('backup-ops');
  metadata = SqliteMetadataStore.open({ path: ':memory:' });
  archive = await openFsArchive({ directory: join(env.dir, 'archive') });
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials });
  service = await startService({
    region: REGION, host: '127.0.0.1', port: 0, metadata, archive, fleet, accessKeys: [KEY], workDir: env.dir, logger: pino({ level: 'silent' }),
    orchestrate: false, roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
  });
  api = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey } });
});

after(async () => {
  api?.destroy();
  await service?.close();
  await fleet?.close({ stopDevices: true });
  await archive?.close();
  await metadata?.close();
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
});

async function refused(p: Promise<unknown>, type: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof ApiError && e.type === type);
}

/** A READY backup document of `accountId`'s cluster (its blob is not needed to share it). */
async function backupOf(accountId: string, clusterId: string): Promise<BackupDoc> {
  const doc: BackupDoc = {
    v: 1, backupId: `backup-${randomBytes(8).toString('hex').replace(/[^a-z2-7]/g, 'a').slice(0, 11)}`, clusterId, accountId, state: 'READY', hsmType: 'hsm2m.medium',
    mode: 'NON_FIPS', createdMs: Date.now(), copyMs: null, neverExpires: false, sourceRegion: null, sourceBackup: null, sourceCluster: null, deleteMs: null,
    archiveKey: null, bytes: 0, bodySha256: null, sourceSerial: null, resourcePolicy: null, tags: [],
  };
  await service.repository.commit([backupWrite(doc, 0)]);
  return doc;
}

test('tags on a cluster through the AWS SDK: add, overwrite, list in pages, remove; 50 at most; another account sees no such resource', async () => {
  const created = await service.operations.CreateCluster({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], TagList: [{ Key: 'team', Value: 'a' }] }, caller(OWNER));
  const clusterId = (created['Cluster'] as { ClusterId: string }).ClusterId;
  await api.send(new TagResourceCommand({ ResourceId: clusterId, TagList: [{ Key: 'team', Value: 'b' }, { Key: 'env', Value: 'dev' }] }));
  const page1 = await api.send(new ListTagsCommand({ ResourceId: clusterId, MaxResults: 1 }));
  assert.deepEqual(page1.TagList, [{ Key: 'env', Value: 'dev' }]);
  const page2 = await api.send(new ListTagsCommand({ ResourceId: clusterId, NextToken: page1.NextToken as string }));
  assert.deepEqual(page2.TagList, [{ Key: 'team', Value: 'b' }], 'overwritten, and the second page');
  await api.send(new UntagResourceCommand({ ResourceId: clusterId, TagKeyList: ['env'] }));
  assert.deepEqual((await api.send(new ListTagsCommand({ ResourceId: clusterId }))).TagList, [{ Key: 'team', Value: 'b' }]);
  const many = Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
  await assert.rejects(api.send(new TagResourceCommand({ ResourceId: clusterId, TagList: many })), (e: Error) => e.name === 'CloudHsmTagException');
  await refused(service.operations.ListTags({ ResourceId: clusterId }, caller(OTHER)), 'CloudHsmResourceNotFoundException');
});

test('a backup shared by resource policy: only its owner sets the policy; the other account sees it with Shared and can seed a cluster from its ARN', async () => {
  const backup = await backupOf(OWNER, 'cluster-abcdefghijk');
  const arn = `arn:aws:cloudhsm:${REGION}:${OWNER}:backup/${backup.backupId}`;
  const shared = (account: string): Promise<unknown[]> => service.operations.DescribeBackups({ Shared: true }, caller(account)).then((o) => o['Backups'] as unknown[]);
  assert.equal((await shared(OTHER)).length, 0);
  await refused(service.operations.PutResourcePolicy({ ResourceArn: arn, Policy: '{"Statement":[{"Effect":"Deny"}]}' }, caller(OWNER)), 'CloudHsmInvalidRequestException');
  await refused(service.operations.PutResourcePolicy({ ResourceArn: arn, Policy: 'not json' }, caller(OWNER)), 'CloudHsmInvalidRequestException');
  const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: [`arn:aws:iam::${OTHER}:root`] }, Action: ['cloudhsm:CreateCluster', 'cloudhsm:DescribeBackups'], Resource: arn }] });
  await refused(service.operations.PutResourcePolicy({ ResourceArn: arn, Policy: policy }, caller(OTHER)), 'CloudHsmResourceNotFoundException');
  assert.deepEqual(await service.operations.PutResourcePolicy({ ResourceArn: arn, Policy: policy }, caller(OWNER)), { ResourceArn: arn, Policy: policy });
  assert.deepEqual(await service.operations.GetResourcePolicy({ ResourceArn: arn }, caller(OWNER)), { Policy: policy });
  assert.deepEqual((await shared(OTHER)).map((b) => (b as { BackupId: string }).BackupId), [backup.backupId]);
  assert.equal((await shared(OWNER)).length, 0, 'Shared lists other accounts\' backups only');
  // The other account names the shared backup by its full ARN (an id alone is only for one's own).
  await refused(service.operations.CreateCluster({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], SourceBackupId: backup.backupId }, caller(OTHER)), 'CloudHsmResourceNotFoundException');
  const seeded = await service.operations.CreateCluster({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], SourceBackupId: arn }, caller(OTHER));
  assert.equal((seeded['Cluster'] as { SourceBackupId: string; Mode: string }).SourceBackupId, backup.backupId);
  assert.equal((seeded['Cluster'] as { Mode: string }).Mode, 'NON_FIPS', 'the backup\'s mode');
  await refused(service.operations.CreateCluster({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], SourceBackupId: arn, Mode: 'FIPS' }, caller(OTHER)), 'CloudHsmInvalidRequestException');
  await service.operations.DeleteResourcePolicy({ ResourceArn: arn }, caller(OWNER));
  assert.equal((await shared(OTHER)).length, 0, 'unshared');
});

test('CopyBackupToRegion without a peer region is refused, nothing copied', async () => {
  const backup = await backupOf(OWNER, 'cluster-abcdefghijm');
  await refused(service.operations.CopyBackupToRegion({ DestinationRegion: 'eu-west-1', BackupId: backup.backupId }, caller(OWNER)), 'CloudHsmInvalidRequestException');
  await refused(service.operations.CopyBackupToRegion({ DestinationRegion: REGION, BackupId: backup.backupId }, caller(OWNER)), 'CloudHsmInvalidRequestException');
});

test('CreateHsm IpAddress: a free address of the subnet is taken; another or a used one is refused, nothing recorded', async () => {
  const clusterIds: string[] = [];
  for (const subnet of ['subnet-0a1b2c3d4e5f60009', 'subnet-0a1b2c3d4e5f6000a']) {
    const created = await service.operations.CreateCluster({ HsmType: 'hsm2m.medium', SubnetIds: [subnet] }, caller(OWNER));
    clusterIds.push((created['Cluster'] as { ClusterId: string }).ClusterId);
  }
  // CREATE_IN_PROGRESS → UNINITIALIZED; no tick after the HSM below, so no device is provisioned.
  await service.orchestrator.tick();
  const [clusterId, otherId] = clusterIds as [string, string];
  for (const bad of ['10.0.0.5', '127.0.0.1', '127.0.0.255', '127.0.0.07']) {
    await refused(service.operations.CreateHsm({ ClusterId: clusterId, AvailabilityZone: `${REGION}a`, IpAddress: bad }, caller(OWNER)), 'CloudHsmInvalidRequestException');
  }
  assert.equal((await service.repository.hsmsOf(clusterId)).length, 0, 'nothing recorded');
  const hsm = await service.operations.CreateHsm({ ClusterId: clusterId, AvailabilityZone: `${REGION}a`, IpAddress: '127.0.0.77' }, caller(OWNER));
  assert.equal((hsm['Hsm'] as { EniIp: string }).EniIp, '127.0.0.77');
  await refused(service.operations.CreateHsm({ ClusterId: otherId, AvailabilityZone: `${REGION}a`, IpAddress: '127.0.0.77' }, caller(OWNER)), 'CloudHsmInvalidRequestException');
  assert.equal((await service.repository.hsmsOf(otherId)).length, 0, 'nothing recorded for the refused one');
});
