// What the orchestrator's health probe finds in the HSMs' journal heads (docs/control-plane.md "Heads
// and gaps"), in a relayed 2-HSM region whose devices report a missing entry at once (their wait
// shortened to 0, so nothing here waits on a clock):
//
// - an HSM rolled back behind the relay's back and then delivered a later entry by hand reports the
//   entry after its head missing: it and its cluster are DEGRADED naming the position; once the
//   entry reaches it the probe finds it whole again and both are ACTIVE;
// - a store that lacks an entry between an HSM's head and its own head: DEGRADED, naming the
//   position and the damaged store;
// - a stored entry that is not the one the HSMs applied at their head (a fork the HSMs cannot see,
//   having applied no entry since): DEGRADED, naming the fork and the position.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RelayedRegion } from './relayed_region.js';

let region: RelayedRegion;

before(async () => {
  region = await RelayedRegion.open('journal-heads', 2, undefined, { missingEntryWaitMs: 0 });
});

after(async () => {
  await region?.close();
});

/** Runs `sql` on the region's metadata store behind the service's back (a hostile or broken store). */
function behindTheBack(sql: string, ...params: unknown[]): void {
  const db = new Database(join(region.env.dir, 'metadata.sqlite'));
  try {
    const changed = db.prepare(sql).run(...params).changes;
    assert.equal(changed, 1, sql);
  } finally {
    db.close();
  }
}

test('a missing entry, a store that lacks one and a head that is not the stored entry are found by the probe and named with their position; a missing entry that comes clears', { timeout: 900_000 }, async () => {
  const { metadata, fleet } = region;
  const { clusterId } = await region.activeCluster(2);
  const cluster = await region.describe(clusterId);
  const [keeperId, victimId] = (cluster.Hsms ?? []).map((h) => h.HsmId as string) as [string, string];
  const victim = fleet.management(await region.device(victimId));
  const admin0 = await region.admin(cluster, 0);
  const victimSerial = (await region.device(victimId)).serial;
  await region.until('both HSMs at the journal head', async () => {
    const storeHead = BigInt(await metadata.journalHead(clusterId));
    return (await region.healths(cluster)).every((h) => h.journalPosition === storeHead);
  });
  const early = join(region.env.dir, 'victim-early.bin');
  await victim.backupToFile(early, clusterId);
  const earlyPosition = (await victim.health()).journalPosition;
  for (const name of ['heads0', 'heads1']) await admin0.users.create(name, `${name}-password`, 'crypto-user');
  const head = BigInt(await metadata.journalHead(clusterId));
  assert.ok(head >= earlyPosition + 2n, `entries after the early backup (${earlyPosition} → ${head})`);
  await region.until('the victim at the journal head', async () => (await victim.health()).journalPosition === head);

  // Rolled back behind the relay's back (its loop still thinks the HSM is at the head), then handed
  // the entry at the head by hand: the entries between are missing.
  await victim.restoreFromFile(early);
  const [atStoreHead] = await metadata.readJournal(clusterId, Number(head), 1);
  const ahead = await victim.deliverJournal([{ seq: head, entry: atStoreHead?.entry ?? assert.fail('the entry at the head') }]);
  assert.deepEqual([ahead.applied, ahead.waitingFor, ahead.missing?.seq, ahead.fault], [0, earlyPosition + 1n, earlyPosition + 1n, null]);
  assert.equal((await victim.health()).journalMissing?.seq, earlyPosition + 1n);
  await region.step();
  let c = await region.describe(clusterId);
  assert.equal(c.State, 'DEGRADED');
  assert.equal(c.Hsms?.[1]?.State, 'DEGRADED');
  assert.equal(c.Hsms?.[0]?.State, 'ACTIVE');
  const missing = `The HSM is missing cluster journal entry ${earlyPosition + 1n}: later entries reached the HSM, this one has not; the metadata store holds it, but deliveries to the HSM do not bring it.`;
  assert.equal(c.Hsms?.[1]?.StateMessage, missing);
  assert.equal(c.StateMessage, `${victimId}: ${missing}`);

  // The next entry wakes the relay, which learns the HSM's real head and delivers what it misses.
  await admin0.users.create('heads2', 'heads2-password', 'crypto-user');
  const later = BigInt(await metadata.journalHead(clusterId));
  await region.until('the victim caught up', async () => (await victim.health()).journalPosition === later);
  assert.equal((await victim.health()).journalMissing, null);
  await region.step();
  c = await region.describe(clusterId);
  assert.deepEqual(c.Hsms?.map((h) => h.State), ['ACTIVE', 'ACTIVE'], 'the report cleared with the entry');
  assert.equal(c.State, 'ACTIVE');
  assert.equal(c.StateMessage, undefined);
  assert.equal((await region.device(victimId)).serial, victimSerial, 'not replaced: nothing was applied out of order');

  // A store that lost an entry between the victim's head and its own: the relay cannot deliver past
  // it and the HSM is never handed a later entry; the probe finds the gap in the store.
  await victim.restoreFromFile(early);
  behindTheBack('DELETE FROM journal WHERE cluster_id = ? AND seq = ?', clusterId, Number(earlyPosition + 1n));
  await region.step();
  c = await region.describe(clusterId);
  assert.equal(c.Hsms?.[1]?.State, 'DEGRADED');
  assert.equal(c.Hsms?.[1]?.StateMessage, `The HSM is missing cluster journal entry ${earlyPosition + 1n}: the journal goes on past it; the metadata store holds entries before and after it but not this one: the store is damaged.`);
  assert.equal(c.State, 'DEGRADED');

  // The stored entry at the head is not the one the HSMs applied there: the keeper, at the head, is
  // DEGRADED naming the fork and the position.
  behindTheBack('UPDATE journal SET entry = ? WHERE cluster_id = ? AND seq = ?', Buffer.concat([(await metadata.readJournal(clusterId, Number(later), 1))[0]?.entry ?? assert.fail('the head'), Buffer.from([0])]), clusterId, Number(later));
  await region.step();
  c = await region.describe(clusterId);
  assert.equal(c.Hsms?.[0]?.State, 'DEGRADED');
  assert.equal(c.Hsms?.[0]?.StateMessage, `The HSM's cluster journal forked at entry ${later}: its head there is not the cluster journal's entry (COFFER_JOURNAL_FORK). Replace the HSM, or check the metadata store if every HSM reports it.`);
  assert.match(c.StateMessage ?? '', new RegExp(`^(${keeperId}|${victimId}): `));
  assert.equal((await region.health(keeperId)).journalFault, null, 'the HSM itself saw nothing');
});
