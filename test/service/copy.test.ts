// CopyBackupToRegion between two peered regions (src/service/copy.ts, docs/control-plane.md): the
// destination receives the same sealed blob byte for byte, checks its provenance before archiving
// it, and lists it with CopyTimestamp and Source*; a blob altered in the source archive is refused
// and nothing is copied. Real sealed backups from an in-process node, real SQLite and directories.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ApiError, type Caller } from '../../src/service/api/operations.js';
import { peerCopy, type RegionPeer } from '../../src/service/copy.js';
import type { Repository } from '../../src/service/repository.js';
import { backupWrite, type BackupDoc } from '../../src/service/records.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import type { Archive } from '../../src/storage/archive_port.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { InProcessFleet } from './fleet/in_process_fleet.js';
import { fleetEnvironment, freePort, type FleetEnvironment } from './fleet/fleet_support.js';

const ACCOUNT = '111122223333';
const KEY = { accessKeyId: 'AKIDCOPYTESTKEY00000', secretAccessKey: randomBytes(30).toString('base64'), accountId: ACCOUNT, actions: ['*'] };

interface Region {
  readonly name: string;
  readonly service: RunningService;
  readonly archive: Archive;
  readonly metadata: SqliteMetadataStore;
  readonly peer: RegionPeer;
}

let env: FleetEnvironment;
let fleet: InProcessFleet;
const peers = new Map<string, RegionPeer>();
const regions: Region[] = [];

async function region(name: string): Promise<Region> {
  const dir = join(env.dir, name);
  const metadata = SqliteMetadataStore.open({ path: ':memory:' });
  const archive = await openFsArchive({ directory: join(dir, 'archive') });
  const service = await startService({
    region: name, host: '127.0.0.1', port: 0, metadata, archive, fleet, accessKeys: [KEY], workDir: env.dir, logger: pino({ level: 'silent' }), orchestrate: false,
    roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
    copyTo: (target, backup, tags) => peerCopy(peers.get(name) as RegionPeer, peers)(target, backup, tags),
  });
  const peer: RegionPeer = { region: name, archive, repository: service.repository, backups: service.backups, clock: service.config.clock, workDir: env.dir };
  peers.set(name, peer);
  const r = { name, service, archive, metadata, peer };
  regions.push(r);
  return r;
}

before(async () => {
  env = await fleetEnvironment('copy');
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials });
});

after(async () => {
  for (const r of regions) {
    await r.service.close();
    await r.archive.close();
    await r.metadata.close();
  }
  await fleet?.close({ stopDevices: true });
  if (env !== undefined) rmSync(env.dir, { recursive: true, force: true });
});

const caller = (r: Region): Caller => ({ accountId: ACCOUNT, accessKeyId: KEY.accessKeyId, region: r.name, requestId: 'test' });

/** A real sealed backup of a device, archived and recorded READY in `r`. */
async function archivedBackup(r: Region, clusterId: string): Promise<BackupDoc> {
  const device = await fleet.provision({ clusterId, hsmId: 'hsm-copytest2222', dataPlanePort: await freePort(['127.0.0.9']), eniIp: '127.0.0.9' });
  try {
    const taken = await r.service.backups.take(fleet.management(device), clusterId);
    const doc: BackupDoc = {
      v: 1, backupId: taken.backupId, clusterId, accountId: ACCOUNT, state: 'READY', hsmType: 'hsm2m.medium', mode: taken.mode, createdMs: taken.createdMs,
      copyMs: null, neverExpires: false, sourceRegion: null, sourceBackup: null, sourceCluster: null, deleteMs: null, archiveKey: taken.archiveKey,
      bytes: taken.bytes, bodySha256: taken.bodySha256, sourceSerial: taken.sourceSerial, resourcePolicy: null, tags: [],
    };
    await r.service.repository.commit([backupWrite(doc, 0)]);
    return doc;
  } finally {
    await fleet.release(device);
  }
}

test('a backup copied to a peer region: the same sealed bytes, checked on arrival, listed with its source', async () => {
  const east = await region('us-east-1');
  const west = await region('eu-west-1');
  const backup = await archivedBackup(east, 'cluster-copytest2222');
  const out = await east.service.operations.CopyBackupToRegion({ DestinationRegion: 'eu-west-1', BackupId: backup.backupId, TagList: [{ Key: 'copy', Value: 'yes' }] }, caller(east));
  const destination = out['DestinationBackup'] as { SourceRegion: string; SourceBackup: string; SourceCluster: string; CreateTimestamp: Date };
  assert.deepEqual([destination.SourceRegion, destination.SourceBackup, destination.SourceCluster], ['us-east-1', backup.backupId, 'cluster-copytest2222']);

  const listed = (await west.service.operations.DescribeBackups({}, caller(west)))['Backups'] as Array<Record<string, unknown>>;
  assert.equal(listed.length, 1);
  const copy = listed[0] as { BackupId: string; BackupState: string; SourceRegion: string; SourceBackup: string; CopyTimestamp: Date; TagList: unknown[] };
  assert.notEqual(copy.BackupId, backup.backupId, 'the copy has an id of its own');
  assert.deepEqual([copy.BackupState, copy.SourceRegion, copy.SourceBackup], ['READY', 'us-east-1', backup.backupId]);
  assert.ok(copy.CopyTimestamp instanceof Date);
  assert.deepEqual(copy.TagList, [{ Key: 'copy', Value: 'yes' }]);
  const bytes = (dir: string): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
  assert.ok(bytes(join(env.dir, 'eu-west-1', 'archive')).equals(bytes(join(env.dir, 'us-east-1', 'archive'))), 'the same sealed blob');
});

test('a blob altered in the source archive is refused by the destination; nothing is copied', async () => {
  const east = regions[0] as Region;
  const west = regions[1] as Region;
  const backup = await archivedBackup(east, 'cluster-copytest3333');
  const file = join(env.dir, 'us-east-1', 'archive', (backup.archiveKey as string).replace('/', '~'));
  const blob = readFileSync(file);
  blob[blob.length - 300] = (blob[blob.length - 300] as number) ^ 1;
  writeFileSync(file, blob);
  await assert.rejects(east.service.operations.CopyBackupToRegion({ DestinationRegion: 'eu-west-1', BackupId: backup.backupId }, caller(east)), (e: unknown) => e instanceof ApiError && e.type === 'CloudHsmInvalidRequestException' && /provenance/.test(e.message));
  const listed = (await west.service.operations.DescribeBackups({ Filters: { clusterIds: ['cluster-copytest3333'] } }, caller(west)))['Backups'] as unknown[];
  assert.equal(listed.length, 0, 'nothing arrived');
});

test('a copy whose record cannot be committed leaves no blob in the destination archive', async () => {
  const east = regions[0] as Region;
  const west = regions[1] as Region;
  const backup = await archivedBackup(east, 'cluster-copytest4444');
  const before = await west.archive.list('');
  // The destination's store refuses the write after the blob was archived.
  const broken: Repository = Object.create(west.service.repository) as Repository;
  broken.commit = () => Promise.reject(new Error('metadata store unavailable'));
  const copy = peerCopy(east.peer, new Map([['eu-west-1', { ...west.peer, repository: broken }]]));
  await assert.rejects(copy('eu-west-1', backup, []), /metadata store unavailable/);
  assert.deepEqual(await west.archive.list(''), before, 'the archived blob was taken back');
  assert.deepEqual(await west.archive.list('cluster-copytest4444/'), []);
});
