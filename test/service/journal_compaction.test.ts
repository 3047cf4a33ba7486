// Compaction of the cluster journal in the orchestrator (docs/control-plane.md "Compaction"): the
// store keeps every entry a restorable backup (READY or PENDING_DELETION, within retention) or an
// HSM still needs, and drops the rest after each backup. A one-HSM relayed cluster with two archived
// backups and entries after each: the HSM is killed and the newest archived backup is found altered,
// so the replacement is restored from the OLDER backup and caught up from its position through the
// entries kept for it — ACTIVE at the journal head, with every user made after that backup. Then the
// old backups pass their retention and are purged: the next backups' compaction drops the entries
// only they needed (the rows are counted before and after), and what is kept still runs contiguously
// from the lowest position anything restorable needs to the head.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeBackupsCommand, ModifyClusterCommand } from '@aws-sdk/client-cloudhsm-v2';
import { JOURNAL_READ_LIMIT_MAX } from '../../src/storage/metadata_port.js';
import { killInProcess } from './fleet/in_process_fleet.js';
import { RelayedRegion } from './relayed_region.js';

const DAY_MS = 24 * 3600_000;
let region: RelayedRegion;

before(async () => {
  region = await RelayedRegion.open('journal-compaction', 1);
});

after(async () => {
  await region?.close();
});

/** Every stored entry's position, in order (this test's journal fits one read). */
async function storedSeqs(clusterId: string): Promise<number[]> {
  const seqs = (await region.metadata.readJournal(clusterId, 1, JOURNAL_READ_LIMIT_MAX)).map((e) => e.seq);
  assert.ok(seqs.length < JOURNAL_READ_LIMIT_MAX);
  return seqs;
}

/** Flips one byte inside the archived backup `backupId` (the directory adapter's file name for a key: docs/archive.md). */
function tamper(clusterId: string, backupId: string): void {
  const dir = join(region.env.dir, 'archive');
  const name = `${clusterId}~${backupId}`;
  const file = join(dir, readdirSync(dir).find((f) => f === name) ?? assert.fail(`archived ${name}`));
  const blob = readFileSync(file);
  blob[blob.length - 200] = (blob[blob.length - 200] as number) ^ 1;
  writeFileSync(file, blob);
}

async function createUsers(clusterId: string, names: readonly string[]): Promise<void> {
  const admin = await region.admin(await region.describe(clusterId), 0);
  for (const name of names) await admin.users.create(name, `${name}-password`, 'crypto-user');
  await admin.close();
}

test('a replacement restored from an older retained backup catches up from the entries kept for it; purged backups let compaction drop entries', { timeout: 900_000 }, async () => {
  const { api, metadata, service } = region;
  const { clusterId, backupId: older } = await region.activeCluster(1);
  await createUsers(clusterId, ['early0', 'early1', 'early2']);
  region.clock.advance(DAY_MS + 1);
  await region.step(); // the scheduled backup
  const backups = (await api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups ?? [];
  const newer = backups.find((b) => b.BackupId !== older && b.BackupState === 'READY')?.BackupId ?? assert.fail('a second backup');
  await createUsers(clusterId, ['late0', 'late1', 'late2']);
  const head = await metadata.journalHead(clusterId);
  const olderPosition = BigInt((await service.repository.backup(older))?.doc.journalPosition ?? assert.fail('position recorded'));
  assert.ok(olderPosition < BigInt(head), 'entries were made after the older backup');
  assert.equal((await storedSeqs(clusterId))[0], 1, 'nothing dropped that the older backup needs');

  // The HSM dies; the newest archived backup fails its provenance check; the older one is restored.
  const hsmId = (await region.describe(clusterId)).Hsms?.[0]?.HsmId as string;
  const dead = await region.device(hsmId);
  tamper(clusterId, newer);
  await killInProcess(region.fleet.dataDir(dead.deviceId));
  for (let i = 0; i < 3; i++) await region.step();
  const healed = await region.describe(clusterId);
  assert.deepEqual([healed.State, healed.Hsms?.[0]?.State], ['ACTIVE', 'ACTIVE']);
  assert.notEqual((await region.device(hsmId)).serial, dead.serial, 'a new device');
  const health = await region.health(hsmId);
  assert.equal(health.journalPosition, BigInt(await metadata.journalHead(clusterId)), 'caught up to the journal head');
  assert.ok(health.journalPosition >= BigInt(head));
  await region.step(); // the relay serves the replacement from the tick after it is ACTIVE (a login is a journaled change)
  const late = await region.connect(healed, 0, { username: 'late2', password: 'late2-password' });
  assert.equal((await late.random(8)).length, 8, 'a user made after the newer backup is on the replacement');
  await late.close();

  // Retention: the old backups expire (PENDING_DELETION, still restorable), then are purged; each
  // day's backup compacts the journal.
  await api.send(new ModifyClusterCommand({ ClusterId: clusterId, BackupRetentionPolicy: { Type: 'DAYS', Value: '7' } }));
  const before = await storedSeqs(clusterId);
  for (let i = 0; i < 3; i++) {
    region.clock.advance(8 * DAY_MS);
    await region.step();
  }
  const purged = (await service.repository.backupsOf(clusterId)).map((b) => b.doc);
  assert.equal(purged.find((b) => b.backupId === older)?.state, 'DELETED', 'the older backup was purged');
  const after = await storedSeqs(clusterId);
  assert.ok(after.length < before.length, `compaction dropped entries: ${before.length} → ${after.length} rows`);
  const journalHead = await metadata.journalHead(clusterId);
  assert.equal(after.at(-1), journalHead, 'the head is kept');
  assert.deepEqual(after, Array.from({ length: after.length }, (_, i) => (after[0] as number) + i), 'what is kept is contiguous');
  const needed = purged.filter((b) => b.state === 'READY' || b.state === 'PENDING_DELETION').map((b) => Number(b.journalPosition));
  const lowestNeeded = Math.min(...needed, Number((await region.health(hsmId)).journalPosition));
  assert.ok((after[0] as number) <= Math.max(lowestNeeded, 1), `every restorable backup can still be caught up (kept from ${after[0]}, needed from ${lowestNeeded})`);
});
