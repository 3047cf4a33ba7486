// A replacement that cannot catch up from the backup it restored is restored once more from a fresh
// backup of a healthy peer (docs/control-plane.md "The journal relay", replacement): a relayed 2-HSM
// cluster whose stored journal is compacted past every archived backup behind the orchestrator's
// back, and an archive that refuses the next write, so that when HSM 1 dies the fresh backup of its
// peer cannot be archived and the replacement restores the newest archived one — older than the
// compaction point. Its catch-up is refused (`compacted`); the orchestrator then backs the peer up
// again, restores that into the replacement, and it is caught up and ACTIVE, identical to its peer.
// (Without a healthy peer the refusal stands: test/service/journal_compacted_backup.test.ts.)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pino } from 'pino';
import { CofferError } from '../../src/errors.js';
import type { Archive } from '../../src/storage/archive_port.js';
import { RELAY_TAIL_ENTRIES } from '../../src/service/journal_relay.js';
import { killInProcess } from './fleet/in_process_fleet.js';
import { RelayedRegion } from './relayed_region.js';

/** Orchestrator ticks the test allows for a replacement (probes failing, then the replacement). */
const TICKS_MAX = 12;
let region: RelayedRegion;
const logLines: string[] = [];
/** Archive writes still to refuse. */
let refusePuts = 0;
let refused = 0;

/** `inner`, but a write is refused while `refusePuts` says so (an archive briefly unreachable). */
function flakyArchive(inner: Archive): Archive {
  return {
    put: async (key, body) => {
      if (refusePuts === 0) return inner.put(key, body);
      refusePuts--;
      refused++;
      if (body instanceof Readable) body.on('error', () => undefined).destroy(); // its file is removed by the caller
      throw new CofferError('COFFER_ARCHIVE_UNAVAILABLE', { reason: 'test' });
    },
    get: (key) => inner.get(key),
    head: (key) => inner.head(key),
    delete: (key) => inner.delete(key),
    list: (prefix) => inner.list(prefix),
    close: () => inner.close(),
  };
}

before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done): void {
      logLines.push(chunk.toString());
      done();
    },
  });
  region = await RelayedRegion.open('journal-replace-retry', 2, pino({ level: 'info' }, sink), { archive: flakyArchive });
});

after(async () => {
  await region?.close();
});

test('a replacement restored from a backup older than the compaction point is restored again from a fresh backup of a healthy peer, caught up and ACTIVE', { timeout: 900_000 }, async () => {
  const { metadata, service } = region;
  const { clusterId } = await region.activeCluster(2);
  const cluster = await region.describe(clusterId);
  const [keeperId, victimId] = (cluster.Hsms ?? []).map((h) => h.HsmId as string) as [string, string];
  const admin0 = await region.admin(cluster, 0);
  // More entries after the archived backups than the relay keeps in its tail (which would serve a
  // catch-up without the store): the replacement's first catch-up needs entries only the store had.
  const names = Array.from({ length: RELAY_TAIL_ENTRIES + 2 }, (_, i) => `retry${i}`);
  for (const name of names) await admin0.users.create(name, `${name}-password`, 'crypto-user');
  const head = BigInt(await metadata.journalHead(clusterId));
  await region.until('both HSMs at the journal head', async () => (await region.healths(cluster)).every((h) => h.journalPosition === head));
  const archived = (await service.repository.backupsOf(clusterId)).filter((b) => b.doc.state === 'READY').map((b) => BigInt(b.doc.journalPosition ?? assert.fail('position recorded')));
  const newestArchived = archived.reduce((a, b) => (b > a ? b : a));
  assert.ok(head > newestArchived + 1n, `entries after the newest archived backup (${newestArchived} → ${head})`);

  // The hostile control plane: the journal compacted past every archived backup; the archive refuses the next write.
  await metadata.compactJournal(clusterId, Number(head));
  refusePuts = 1;
  const dead = await region.device(victimId);
  await killInProcess(region.fleet.dataDir(dead.deviceId));
  const active = async (): Promise<boolean> => (await region.describe(clusterId)).Hsms?.[1]?.State === 'ACTIVE' && (await region.device(victimId)).serial !== dead.serial;
  for (let i = 0; i < TICKS_MAX && !(await active()); i++) await region.step();

  assert.equal(refused, 1, 'the first fresh backup of the peer could not be archived');
  assert.ok(logLines.some((l) => l.includes('hsm.replace.catch-up.failed') && l.includes('(compacted)')), `the first catch-up was refused:\n${logLines.join('')}`);
  assert.ok(logLines.some((l) => l.includes('hsm.replace.caught-up')), 'the second, from a fresh backup, succeeded');
  const c = await region.describe(clusterId);
  assert.deepEqual(c.Hsms?.map((h) => h.State), ['ACTIVE', 'ACTIVE']);
  assert.equal(c.State, 'ACTIVE');
  assert.equal(c.Hsms?.[1]?.StateMessage, undefined);
  const [keeper, replacement] = [await region.health(keeperId), await region.health(victimId)];
  assert.equal(replacement.journalFault, null);
  assert.equal(replacement.journalPosition, keeper.journalPosition, 'caught up');
  assert.equal(replacement.journalHeadHash, keeper.journalHeadHash);
  assert.equal(replacement.stateDigest, keeper.stateDigest, 'identical to its peer');
  await region.step(); // the relay serves the replacement from the tick after it is ACTIVE
  const last = names.at(-1) as string;
  const onReplacement = await region.connect(c, 1, { username: last, password: `${last}-password` });
  assert.equal((await onReplacement.random(8)).length, 8, 'a user made after the archived backups is on the replacement');
});
