// A control plane that serves a replacement HSM a backup older than its journal's compaction point
// (docs/journal-format.md "Test coverage"): a one-HSM relayed cluster with two archived backups; the
// newer one is altered in the archive and the stored journal is compacted past the older one's
// position behind the orchestrator's back, so the entries after the older backup are gone. The HSM
// is killed: its replacement restores the older backup, is refused its catch-up (the entry after the
// backup's position is not stored), finds no healthy peer to take a fresh backup from, and never
// reports ACTIVE; nothing is delivered to it, it has no fault of its own, and the service log names
// the refusal.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { DescribeBackupsCommand } from '@aws-sdk/client-cloudhsm-v2';
import { killInProcess } from './fleet/in_process_fleet.js';
import { RelayedRegion } from './relayed_region.js';

const DAY_MS = 24 * 3600_000;
/** Orchestrator ticks the test allows for a replacement (probes failing, then the replacement). */
const TICKS_MAX = 12;
let region: RelayedRegion;
const logLines: string[] = [];

before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done): void {
      logLines.push(chunk.toString());
      done();
    },
  });
  region = await RelayedRegion.open('journal-compacted-backup', 1, pino({ level: 'warn' }, sink));
});

after(async () => {
  await region?.close();
});

async function createUsers(clusterId: string, names: readonly string[]): Promise<void> {
  const admin = await region.admin(await region.describe(clusterId), 0);
  for (const name of names) await admin.users.create(name, `${name}-password`, 'crypto-user');
  await admin.close();
}

/** Flips one byte inside the archived backup `backupId` (the directory adapter's file name for a key: docs/archive.md). */
function tamper(clusterId: string, backupId: string): void {
  const dir = join(region.env.dir, 'archive');
  const file = join(dir, readdirSync(dir).find((f) => f === `${clusterId}~${backupId}`) ?? assert.fail(`archived ${backupId}`));
  const blob = readFileSync(file);
  blob[blob.length - 200] = (blob[blob.length - 200] as number) ^ 1;
  writeFileSync(file, blob);
}

test('a replacement given a backup older than the compaction point is refused its catch-up and never reported ACTIVE', { timeout: 900_000 }, async () => {
  const { api, metadata, service } = region;
  const { clusterId, backupId: older } = await region.activeCluster(1);
  await createUsers(clusterId, ['between0', 'between1']);
  region.clock.advance(DAY_MS + 1);
  await region.step(); // the scheduled backup
  const backups = (await api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups ?? [];
  const newer = backups.find((b) => b.BackupId !== older && b.BackupState === 'READY')?.BackupId ?? assert.fail('a second backup');
  await createUsers(clusterId, ['after0']);
  const olderPosition = BigInt((await service.repository.backup(older))?.doc.journalPosition ?? assert.fail('position recorded'));
  const newerPosition = BigInt((await service.repository.backup(newer))?.doc.journalPosition ?? assert.fail('position recorded'));
  assert.ok(newerPosition > olderPosition + 1n, `entries between the backups (${olderPosition} → ${newerPosition})`);

  // The hostile control plane: the newer backup altered, the journal compacted past the older one.
  tamper(clusterId, newer);
  await metadata.compactJournal(clusterId, Number(newerPosition));
  const kept = await metadata.readJournal(clusterId, 1, 1);
  assert.equal(BigInt(kept[0]?.seq ?? 0), newerPosition, 'the entries after the older backup are gone');

  const hsmId = (await region.describe(clusterId)).Hsms?.[0]?.HsmId as string;
  const dead = await region.device(hsmId);
  await killInProcess(region.fleet.dataDir(dead.deviceId));
  const refused = (): boolean => logLines.some((l) => l.includes('COFFER_JOURNAL_NOT_CAUGHT_UP'));
  for (let i = 0; i < TICKS_MAX && !refused(); i++) await region.step();
  assert.ok(refused(), `the service log names the refused catch-up:\n${logLines.join('')}`);
  for (let i = 0; i < 3; i++) await region.step(); // later ticks do not make it ACTIVE either
  const c = await region.describe(clusterId);
  assert.notEqual(c.Hsms?.[0]?.State, 'ACTIVE', 'the replacement is not ACTIVE');
  assert.notEqual(c.State, 'ACTIVE', 'nor is its cluster');
  assert.match(c.Hsms?.[0]?.StateMessage ?? '', /could not catch up with the cluster journal \(compacted at entry \d+\)/, 'the API says why');
  assert.match(c.Hsms?.[0]?.StateMessage ?? '', /no healthy peer could give a fresh backup/, 'and that no peer could give a newer one');
  assert.ok(logLines.some((l) => l.includes('(compacted)')), 'and so does the log');
  const fresh = await region.device(hsmId);
  assert.notEqual(fresh.serial, dead.serial, 'a new device, restored from the older backup');
  const health = await region.health(hsmId);
  assert.equal(health.journalPosition, olderPosition, 'nothing delivered past the older backup');
  assert.equal(health.journalFault, null, 'not a fault of the HSM: the journal lacks the entries');
  assert.ok(logLines.every((l) => !l.includes('between0-password')), 'no password in the log');
});
