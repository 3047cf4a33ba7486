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
import { CreateClusterCommand, CreateHsmCommand } from '@aws-sdk/client-cloudhsm-v2';
import { decodeJournalEntryHeader } from '../../src/formats/journal_entry.js';
import { RelayedRegion } from './relayed_region.js';

let region: RelayedRegion;

before(async () => {
  region = await RelayedRegion.open('clone-journal', 3);
});

after(async () => {
  await region?.close();
});

test('a cluster created from a backup relays its changes through a journal of its own; the source\'s entries are refused there', { timeout: 900_000 }, async () => {
  const { api, metadata } = region;
  const source = await region.activeCluster(1);
  const sourceHead = await metadata.journalHead(source.clusterId);
  assert.ok(sourceHead >= 1, 'the activation is an entry of the source');

  const created = await api.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], SourceBackupId: source.backupId }));
  const cloneId = created.Cluster?.ClusterId as string;
  await region.step();
  await api.send(new CreateHsmCommand({ ClusterId: cloneId, AvailabilityZone: 'us-east-1a' }));
  await region.step();
  assert.equal((await region.describe(cloneId)).State, 'ACTIVE', 'activated in the source, so active at once');
  const [first] = await region.healths(await region.describe(cloneId));
  assert.equal(first?.clusterId, cloneId, 'the first HSM follows the clone\'s journal');
  assert.equal(first?.journalPosition, 0n, 'from the clone\'s genesis, not the source\'s position');
  await api.send(new CreateHsmCommand({ ClusterId: cloneId, AvailabilityZone: 'us-east-1a' }));
  await region.step();
  await region.step(); // the relay serves the second HSM once it is ACTIVE
  const clone = await region.describe(cloneId);
  assert.deepEqual(clone.Hsms?.map((h) => h.State), ['ACTIVE', 'ACTIVE']);

  // A user made through the clone's first HSM logs in on its second: the clone's journal carried it.
  const a0 = await region.admin(clone, 0);
  await a0.users.create('cloneuser', 'cloneuser-password', 'crypto-user');
  const head = await metadata.journalHead(cloneId);
  assert.ok(head >= 1);
  await region.until('both clone HSMs at the clone journal head', async () => (await region.healths(clone)).every((h) => h.journalPosition === BigInt(head)));
  const [h0, h1] = await region.healths(clone);
  assert.equal(h0?.journalHeadHash, h1?.journalHeadHash);
  assert.equal(h0?.stateDigest, h1?.stateDigest);
  const user = await region.connect(clone, 1, { username: 'cloneuser', password: 'cloneuser-password' });
  assert.equal((await user.random(8)).length, 8);
  const [entry1] = await metadata.readJournal(cloneId, 1, 1);
  assert.equal(decodeJournalEntryHeader(entry1?.entry ?? new Uint8Array()).clusterId, cloneId, 'the clone\'s entries name the clone');
  assert.equal(await metadata.journalHead(source.clusterId), sourceHead, 'nothing reached the source\'s journal');

  // An entry of the source, written as the clone's next entry behind the service's back.
  const before = await metadata.journalHead(cloneId);
  const [foreign] = await metadata.readJournal(source.clusterId, 1, 1);
  await metadata.appendJournal(cloneId, before + 1, foreign?.entry ?? assert.fail('a source entry'));
  let degraded = await region.describe(cloneId);
  await region.until('the clone DEGRADED, naming the refusal', async () => {
    await region.step();
    degraded = await region.describe(cloneId);
    return degraded.State === 'DEGRADED' && (degraded.StateMessage ?? '').includes('COFFER_JOURNAL_WRONG_KEY');
  });
  assert.ok((degraded.StateMessage ?? '').includes(`entry ${before + 1}`), degraded.StateMessage);
  for (const h of await region.healths(clone)) assert.equal(h.journalPosition, BigInt(before), 'nothing of the source\'s entry applied');
  assert.equal((await region.describe(source.clusterId)).State, 'ACTIVE', 'the source is untouched');
});
