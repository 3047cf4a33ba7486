// A faulted HSM is replaced like a failed one (docs/control-plane.md "The journal relay"): a hostile
// delivery — an edited copy of a journal entry, handed to one HSM of a relayed 2-HSM cluster behind
// the relay's back — halts that HSM's journal. The HSM and its cluster are DEGRADED with a message
// naming the refusal and the position, and the HSM is not replaced while no healthy peer has applied
// the journal that far (the journal itself might be the bad one). Once its peer applies the real
// entry at that position, the orchestrator replaces the HSM: a new device restored from a fresh
// backup of the peer, caught up, ACTIVE only then; the cluster is ACTIVE again and both HSMs agree.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayedRegion } from './relayed_region.js';

let region: RelayedRegion;

before(async () => {
  region = await RelayedRegion.open('journal-fault', 2);
});

after(async () => {
  await region?.close();
});

test('an HSM that refuses a hostile delivery is DEGRADED naming the fault, then replaced once its peer passed the position, and ACTIVE caught up', { timeout: 900_000 }, async () => {
  const { metadata, fleet } = region;
  const { clusterId } = await region.activeCluster(2);
  const cluster = await region.describe(clusterId);
  const admin0 = await region.admin(cluster, 0);
  await admin0.users.create('faultuser', 'faultuser-password', 'crypto-user');
  const head = BigInt(await metadata.journalHead(clusterId));
  await region.until('both HSMs at the journal head', async () => (await region.healths(cluster)).every((h) => h.journalPosition === head));

  // The hostile delivery: the stored entry at the head, one byte of its sealed body flipped, handed
  // to HSM 1 as the next entry.
  const victimId = cluster.Hsms?.[1]?.HsmId as string;
  const victim = await region.device(victimId);
  const [last] = await metadata.readJournal(clusterId, Number(head), 1);
  const edited = (last?.entry ?? assert.fail('the entry at the head')).slice();
  edited[edited.length - 1]! ^= 0x01;
  const refused = await fleet.management(victim).deliverJournal([{ seq: head + 1n, entry: edited }]);
  assert.equal(refused.applied, 0);
  assert.equal(refused.fault?.code, 'COFFER_JOURNAL_TAMPERED');
  assert.equal(refused.fault?.seq, head + 1n);

  // No peer has applied entry head + 1 yet: DEGRADED, naming the fault and the position; not replaced.
  await region.step();
  await region.step();
  const degraded = await region.describe(clusterId);
  assert.equal(degraded.State, 'DEGRADED');
  assert.match(degraded.StateMessage ?? '', new RegExp(`${victimId}: .*entry ${head + 1n}: COFFER_JOURNAL_TAMPERED`));
  assert.equal(degraded.Hsms?.[1]?.State, 'DEGRADED');
  assert.equal((await region.device(victimId)).serial, victim.serial, 'not replaced while no peer passed the position');

  // The peer applies the real entry at that position; the next tick replaces the faulted HSM.
  await admin0.users.create('afterfault', 'afterfault-password', 'crypto-user');
  assert.ok((await region.health(cluster.Hsms?.[0]?.HsmId as string)).journalPosition >= head + 1n);
  await region.step();
  const healed = await region.describe(clusterId);
  assert.deepEqual(healed.Hsms?.map((h) => h.State), ['ACTIVE', 'ACTIVE']);
  assert.equal(healed.State, 'ACTIVE');
  assert.equal(healed.StateMessage, undefined);
  const fresh = await region.device(victimId);
  assert.notEqual(fresh.serial, victim.serial, 'a new device');
  const [h0, h1] = await region.healths(healed);
  assert.equal(h1?.journalFault, null);
  assert.ok((h1?.journalPosition ?? 0n) >= head + 1n, 'caught up past the refused position');
  await region.until('both HSMs at one head', async () => {
    const [a, b] = await region.healths(healed);
    return a?.journalPosition === BigInt(await metadata.journalHead(clusterId)) && a.journalHeadHash === b?.journalHeadHash;
  });
  assert.equal(h0?.clusterId, h1?.clusterId);
  await region.step(); // the relay serves the replacement from the tick after it is ACTIVE (a login is a journaled change)
  const onReplacement = await region.connect(healed, 1, { username: 'afterfault', password: 'afterfault-password' });
  assert.equal((await onReplacement.random(8)).length, 8, 'the user made after the fault is on the replacement');
});
