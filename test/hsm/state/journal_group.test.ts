// A delivery of several entries is committed in groups (docs/device.md "The journal", groups): a
// catching-up HSM pays one store transaction for a run of entries, not one per entry, and ends
// exactly as an HSM that applied them one delivery at a time; a bad entry inside a run stops the
// run there with the entries before it applied; a typed failure of the group's commit is narrowed
// down by applying the entries one by one, so the journal halts at the entry that fails.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { bufferSource } from '../../../src/formats/backup.js';
import { STATE_NAMESPACE, STATE_POSITION_ID, decodeChangeSet, type RecordOp } from '../../../src/formats/change_set.js';
import { journalEntryHash, sealJournalEntry } from '../../../src/formats/journal_entry.js';
import { OBJECT_NAMESPACE } from '../../../src/formats/object_record.js';
import { fail, type ErrorCode } from '../../../src/errors.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import type { Hsm } from '../../../src/hsm/device.js';
import type { DeliverResult, JournalItem } from '../../../src/hsm/state/journal.js';
import { MemoryRecordStore, type RecordTx } from '../../../src/hsm/store/store_port.js';
import { CLUSTER, backupOf, commissionedDevice, hex } from '../backup/backup_support.js';
import { JOURNAL_TEST_TIMEOUT_MS, pausedCluster, syncKeyOf } from './journal_support.js';

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;
const LONG = { timeout: 300_000 };
const ENTRIES = 12;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
});

/** A store that counts its transactions and can be told to refuse one record (a typed error, as a
 * store's own checks raise), so that a commit holding it fails and nothing of it is written. */
class CountingStore extends MemoryRecordStore {
  transactions = 0;
  refuse: { readonly ns: string; readonly id: string } | undefined;

  override transaction<T>(fn: (tx: RecordTx) => T): T {
    this.transactions++;
    const refuse = this.refuse;
    if (refuse === undefined) return super.transaction(fn);
    return super.transaction((tx) => fn({
      ...tx,
      put: (ns, id, value) => {
        if (ns === refuse.ns && id === refuse.id) fail('COFFER_FORMAT_LIMIT', { field: 'record' });
        tx.put(ns, id, value);
      },
    }));
  }
}

interface Journal {
  /** An HSM that applied every entry, one delivery each (as they were made). */
  readonly maker: Hsm;
  /** The backup the entries follow. */
  readonly backup: Uint8Array;
  readonly entries: JournalItem[];
  /** The record id of the key each entry made. */
  readonly keyIds: string[];
}

/** ENTRIES AES key generations by alice, each its own entry, applied on the HSM that made them. */
async function journal(): Promise<Journal> {
  const { d0: maker, d1: other, relay, alice } = await pausedCluster(authorities, ca);
  await relay.close();
  const backup = backupOf(maker);
  other.close();
  const keyIds: string[] = [];
  const unobserve = maker.observeChanges((encoded) => {
    const cs = decodeChangeSet(encoded);
    const op = cs.ops.find((o) => o.ns === OBJECT_NAMESPACE);
    assert.ok(op !== undefined, 'each entry makes a key');
    keyIds.push(op.id);
  });
  const entries: JournalItem[] = [];
  for (let i = 0; i < ENTRIES; i++) {
    const made = alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `k${i}` });
    const offer = await maker.journal.takeOffer(JOURNAL_TEST_TIMEOUT_MS);
    assert.ok(offer !== undefined);
    entries.push(offer);
    assert.equal((await maker.journal.deliver([offer])).applied, 1);
    await made;
  }
  unobserve();
  return { maker, backup, entries, keyIds };
}

/** A fresh HSM of the cluster on a counting store, restored from the backup the entries follow. */
async function catchingUp(j: Journal): Promise<{ hsm: Hsm; store: CountingStore }> {
  const store = new CountingStore();
  const hsm = await commissionedDevice(authorities, { store, journal: { mode: 'relayed', decideTimeoutMs: JOURNAL_TEST_TIMEOUT_MS } });
  await hsm.restoreBackup(bufferSource(j.backup));
  store.transactions = 0;
  return { hsm, store };
}

/** The head the entries follow. */
function baseOf(j: Journal): bigint {
  return at(j.entries, 0).seq - 1n;
}

function at<T>(items: readonly T[], i: number): T {
  const item = items[i];
  assert.ok(item !== undefined);
  return item;
}

/** `hsm` applied the first `applied` entries of the delivery and halted with `code` at the next
 * position: its head is there, and its state is exactly an HSM's that got only those entries. */
async function assertHaltedAfter(j: Journal, hsm: Hsm, result: DeliverResult, applied: number, code: ErrorCode): Promise<void> {
  const base = baseOf(j);
  assert.equal(result.applied, applied);
  assert.deepEqual([result.fault?.code, result.fault?.seq], [code, base + BigInt(applied) + 1n]);
  assert.equal(hsm.journal.head().seq, base + BigInt(applied));
  const prefix = await catchingUp(j);
  assert.equal((await prefix.hsm.journal.deliver(j.entries.slice(0, applied))).applied, applied);
  assert.equal(hex(hsm.stateDigest()), hex(prefix.hsm.stateDigest()), 'exactly the entries before it');
  prefix.hsm.close();
}

let shared: Journal | undefined;
const theJournal = async (): Promise<Journal> => (shared ??= await journal());

test('a delivery of many entries is committed in one store transaction and ends as one delivery per entry does', LONG, async () => {
  const j = await theJournal();
  const base = baseOf(j);
  const grouped = await catchingUp(j);
  const result = await grouped.hsm.journal.deliver(j.entries);
  assert.deepEqual([result.applied, result.fault, result.head.seq], [ENTRIES, undefined, base + BigInt(ENTRIES)]);
  assert.equal(grouped.store.transactions, 1, 'one commit for the whole delivery');
  assert.equal(hex(grouped.hsm.stateDigest()), hex(j.maker.stateDigest()));
  assert.equal(hex(grouped.hsm.journal.head().hash), hex(j.maker.journal.head().hash));

  const single = await catchingUp(j);
  for (const item of j.entries) assert.equal((await single.hsm.journal.deliver([item])).applied, 1);
  assert.equal(single.store.transactions, ENTRIES);
  assert.equal(hex(single.hsm.stateDigest()), hex(grouped.hsm.stateDigest()));

  // The object index heard of every entry's key.
  assert.equal(grouped.hsm.status().tokenObjects, j.maker.status().tokenObjects);
  // Delivered again, the whole run is recognised as applied.
  const again = await grouped.hsm.journal.deliver(j.entries);
  assert.deepEqual([again.applied, again.ignored, again.fault], [0, ENTRIES, undefined]);
  grouped.hsm.close();
  single.hsm.close();
});

test('an altered entry inside a delivery: the entries before it are applied (one commit), it and those after are not, and the journal halts at it', LONG, async () => {
  const j = await theJournal();
  const bad = 5;
  const entries = j.entries.map((item, i) => {
    if (i !== bad) return item;
    const entry = item.entry.slice();
    entry[entry.length - 1] = (entry[entry.length - 1] as number) ^ 0x01;
    return { seq: item.seq, entry };
  });
  const { hsm, store } = await catchingUp(j);
  await assertHaltedAfter(j, hsm, await hsm.journal.deliver(entries), bad, 'COFFER_JOURNAL_TAMPERED');
  assert.equal(store.transactions, 1);
  hsm.close();
});

test('an authentic entry whose change set writes a local namespace or the state position, inside a delivery: refused as malformed at its position, the entries before it applied, nothing of it written', LONG, async () => {
  const j = await theJournal();
  const good = 6;
  const last = at(j.entries, good - 1);
  const malformed: readonly (() => RecordOp)[] = [
    () => ({ op: 'put', ns: 'device', id: 'injected', value: new Uint8Array(8).fill(1) }),
    () => ({ op: 'put', ns: STATE_NAMESPACE, id: STATE_POSITION_ID, value: new Uint8Array(8).fill(2) }),
  ];
  for (const make of malformed) {
    const { hsm, store } = await catchingUp(j);
    // Sealed with the cluster's own sync key in another HSM's name: it opens, and is refused only for what it writes.
    const forged = sealJournalEntry({
      syncKey: syncKeyOf(store), clusterId: CLUSTER, originator: j.maker.status().serial ?? '', seq: last.seq + 1n,
      predecessor: journalEntryHash(last.entry), salt: new Uint8Array(32).fill(5),
      changeSet: { scope: 'cluster', kind: 'quorum.value', ops: [make()] },
    });
    const result = await hsm.journal.deliver([...j.entries.slice(0, good), { seq: last.seq + 1n, entry: forged.entry }, ...j.entries.slice(good + 1)]);
    await assertHaltedAfter(j, hsm, result, good, 'COFFER_FORMAT_MALFORMED');
    assert.equal(store.get('device', 'injected'), undefined, 'nothing of it written');
    hsm.close();
  }
});

test('a typed failure of a group\'s commit leaves nothing of it; the entries are applied one by one and the journal halts at the one that fails', LONG, async () => {
  const j = await theJournal();
  const failing = 7;
  const { hsm, store } = await catchingUp(j);
  store.refuse = { ns: OBJECT_NAMESPACE, id: at(j.keyIds, failing) };
  await assertHaltedAfter(j, hsm, await hsm.journal.deliver(j.entries), failing, 'COFFER_FORMAT_LIMIT');
  // The group (refused whole), then each entry alone up to the one that fails, which halts.
  assert.equal(store.transactions, 1 + failing + 1);
  hsm.close();
  j.maker.close();
});
