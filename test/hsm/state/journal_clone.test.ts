// A cluster created from a backup gets a journal of its own (docs/journal-format.md "A cluster created
// from a backup"): the first HSM of the clone restores the source's backup and starts the clone's
// journal — a fresh sync key bound to the clone's cluster id, the head back to (0, genesis). Entries
// sealed for the source are refused by the clone and the clone's by the source, each with the
// fault that names a foreign key; the call is refused, changing nothing, on a device that is not
// freshly restored or already follows that cluster; and the clone's journal relays state changes to
// an HSM cloned from it.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import { bufferSource } from '../../../src/formats/backup.js';
import { journalGenesis } from '../../../src/formats/journal_entry.js';
import type { Hsm } from '../../../src/hsm/device.js';
import { rejectsCode } from '../../helpers.js';
import { CLUSTER, backupOf, commissionedDevice, hex } from '../backup/backup_support.js';
import { initialisedDevice } from '../identity/cluster_support.js';
import { JOURNAL_TEST_TIMEOUT_MS, TestRelay, activateCluster, clonedCluster, loggedIn } from './journal_support.js';

const CLONE = 'cluster-clonedbackup2';
const RELAYED = { mode: 'relayed', decideTimeoutMs: JOURNAL_TEST_TIMEOUT_MS } as const;

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
});

/** A fresh device restored from `blob`, relaying its journal. */
async function restored(blob: Uint8Array): Promise<Hsm> {
  const hsm = await commissionedDevice(authorities, { journal: RELAYED });
  await hsm.restoreBackup(bufferSource(blob));
  return hsm;
}

/** Makes crypto user `name` through `hsm`'s journal (relayed by `relay`). */
async function createUser(hsm: Hsm, name: string): Promise<void> {
  const admin = await loggedIn(hsm, 'admin');
  try {
    await admin.createUser(name, `${name}-password`, 'crypto-user');
  } finally {
    admin.close();
  }
}

/** An activated source cluster of one HSM with a few journal entries (activation, logins, users),
 * and a backup of it taken at `position`. */
async function sourceCluster(): Promise<{ source: Hsm; relay: TestRelay; blob: Uint8Array; position: bigint }> {
  const { devices } = await clonedCluster(authorities, ca, 1);
  const source = devices[0] as Hsm;
  const relay = TestRelay.open([source]);
  relay.start();
  await activateCluster(source);
  const position = source.journal.head().seq;
  assert.ok(position > 0n);
  return { source, relay, blob: backupOf(source), position };
}

test('the clone starts its own journal: a fresh sync key bound to its id, the head at its genesis; the source keeps its own', async () => {
  const { source, relay, blob, position } = await sourceCluster();
  try {
    const clone = await restored(blob);
    assert.equal(clone.journal.head().seq, position, 'restored at the source position');
    await clone.cluster.startCloneJournal(CLONE);
    assert.equal(clone.cluster.clusterId(), CLONE, 'the device now belongs to the clone');
    assert.equal(clone.cluster.certificateClusterId(), CLUSTER, 'the cluster certificate is the source\'s, unchanged');
    assert.equal(clone.journal.head().seq, 0n);
    assert.equal(hex(clone.journal.head().hash), hex(journalGenesis(CLONE)), 'genesis of the clone\'s id');
    assert.notEqual(hex(clone.cluster.syncKeyId() as Uint8Array), hex(source.cluster.syncKeyId() as Uint8Array), 'a fresh sync key');
    assert.equal(source.cluster.clusterId(), CLUSTER);
    clone.close();
  } finally {
    await relay.close();
    source.close();
  }
});

test('entries sealed for the source are refused by the clone, and the clone\'s by the source: WRONG_KEY, nothing applied', async () => {
  const { source, relay: sourceRelay, blob, position } = await sourceCluster();
  const clone = await restored(blob);
  await clone.cluster.startCloneJournal(CLONE);
  const cloneRelay = TestRelay.open([clone]);
  cloneRelay.start();
  const atGenesis = await restored(blob); // another HSM of the clone, its journal not yet followed
  await atGenesis.cluster.startCloneJournal(CLONE);
  const sourcePeer = await restored(blob); // another HSM of the source, at the backup's position
  try {
    for (let i = 0; clone.journal.head().seq <= position; i++) await createUser(clone, `clone-user-${i}`);
    await createUser(source, 'gina');

    // The source's journal delivered to a clone HSM from its head (genesis).
    const cloneDigest = hex(atGenesis.stateDigest());
    const intoClone = await atGenesis.journal.deliver(await sourceRelay.entries(1n));
    assert.equal(intoClone.applied, 0);
    assert.equal(intoClone.fault?.code, 'COFFER_JOURNAL_WRONG_KEY');
    assert.equal(intoClone.fault?.seq, 1n);
    assert.equal(hex(atGenesis.stateDigest()), cloneDigest, 'nothing applied');

    // The clone's journal delivered to a source HSM from its head (the backup's position).
    const peerDigest = hex(sourcePeer.stateDigest());
    const intoSource = await sourcePeer.journal.deliver(await cloneRelay.entries(position + 1n));
    assert.equal(intoSource.applied, 0);
    assert.equal(intoSource.fault?.code, 'COFFER_JOURNAL_WRONG_KEY');
    assert.equal(intoSource.fault?.seq, position + 1n);
    assert.equal(hex(sourcePeer.stateDigest()), peerDigest, 'nothing applied');
    // The source's own next entries still apply on a healthy source HSM.
    const healthy = await restored(blob);
    assert.ok((await healthy.journal.deliver(await sourceRelay.entries(position + 1n))).applied > 0);
    assert.equal(hex(healthy.stateDigest()), hex(source.stateDigest()));
    healthy.close();
  } finally {
    await cloneRelay.close();
    await sourceRelay.close();
    for (const d of [source, clone, atGenesis, sourcePeer]) d.close();
  }
});

test('refused, nothing changed: a device not freshly restored, one that follows the cluster already, one with no cluster', async () => {
  const { source, relay, blob, position } = await sourceCluster();
  const initialised = await initialisedDevice(authorities, ca);
  const blank = await commissionedDevice(authorities);
  const clone = await restored(blob);
  const changed = await restored(blob);
  try {
    const before = hex(source.stateDigest());
    await rejectsCode(() => source.cluster.startCloneJournal(CLONE), 'COFFER_JOURNAL_GENESIS_REFUSED', 'never restored');
    assert.equal(hex(source.stateDigest()), before);
    assert.equal(source.journal.head().seq, position);
    await rejectsCode(() => initialised.cluster.startCloneJournal(CLONE), 'COFFER_JOURNAL_GENESIS_REFUSED', 'initialised in place');
    await rejectsCode(() => blank.cluster.startCloneJournal(CLONE), 'COFFER_JOURNAL_NO_SYNC_KEY', 'no cluster');
    await rejectsCode(() => clone.cluster.startCloneJournal('not a cluster id'), 'COFFER_DATA_INVALID');

    await clone.cluster.startCloneJournal(CLONE);
    const cloneDigest = hex(clone.stateDigest());
    await rejectsCode(() => clone.cluster.startCloneJournal(CLONE), 'COFFER_JOURNAL_GENESIS_REFUSED', 'the same cluster again');
    await rejectsCode(() => clone.cluster.startCloneJournal('cluster-anotherclone2'), 'COFFER_JOURNAL_GENESIS_REFUSED', 'its journal started: not fresh');
    assert.equal(hex(clone.stateDigest()), cloneDigest);

    // A restored HSM that applied an entry of its cluster is no longer fresh.
    await createUser(source, 'gina');
    assert.ok((await changed.journal.deliver(await relay.entries(position + 1n))).applied > 0);
    await rejectsCode(() => changed.cluster.startCloneJournal(CLONE), 'COFFER_JOURNAL_GENESIS_REFUSED', 'changed since its restore');
    // Restored again, it is fresh again.
    await changed.restoreBackup(bufferSource(blob));
    await changed.cluster.startCloneJournal(CLONE);
    assert.equal(changed.journal.head().seq, 0n);
  } finally {
    await relay.close();
    for (const d of [source, initialised, blank, clone, changed]) d.close();
  }
});

test('the clone relays state changes: an HSM cloned from it follows its journal to one head and one digest', async () => {
  const { source, relay: sourceRelay, blob, position } = await sourceCluster();
  const first = await restored(blob);
  await first.cluster.startCloneJournal(CLONE);
  const second = await restored(backupOf(first, { clusterId: CLONE }));
  assert.equal(second.cluster.clusterId(), CLONE, 'the clone\'s binding travels in its backups');
  const relay = TestRelay.open([first, second]);
  relay.start();
  try {
    await createUser(first, 'carol');
    await createUser(second, 'dave');
    const alice = await loggedIn(second, 'alice');
    const handle = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'clone-key' });
    alice.close();
    await relay.deliverAll();
    assert.ok(first.journal.head().seq >= 5n, 'two users (a login and a creation each) and a login');
    assert.equal(first.journal.head().seq, second.journal.head().seq);
    assert.equal(hex(first.journal.head().hash), hex(second.journal.head().hash));
    assert.equal(hex(first.stateDigest()), hex(second.stateDigest()));
    const onFirst = await loggedIn(first, 'alice');
    assert.deepEqual(onFirst.find({ label: 'clone-key' }).map((o) => o.handle), [handle], 'the same key under the same handle');
    onFirst.close();
    (await loggedIn(first, 'dave')).close();
    assert.equal(source.journal.head().seq, position, 'the source saw none of it');
  } finally {
    await relay.close();
    await sourceRelay.close();
    for (const d of [source, first, second]) d.close();
  }
});
