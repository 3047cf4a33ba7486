// The cluster journal on the device (src/hsm/state/journal.ts, docs/device.md "The journal"):
// HSMs cloned from one backup, a relay that appends with compare-and-append on a real metadata store
// (SQLite) and delivers; the head, the outbox, bounded waits, deciding again after a lost append
// (without counting a failed login twice or spending a quorum token for nothing), and a relay that
// drops, duplicates, reorders, edits, forks, replays, brings another cluster's entries or an entry
// forged by a holder of the sync key — each refused as the right fault, nothing of it applied.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { bufferSource, decodeBackupHeader, peekBackupHeaderLength } from '../../../src/formats/backup.js';
import { sealJournalEntry } from '../../../src/formats/journal_entry.js';
import { encodeQuorumValue } from '../../../src/formats/quorum_record.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import type { Hsm, Session } from '../../../src/hsm/device.js';
import type { DeliverResult, JournalItem } from '../../../src/hsm/state/journal.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { JOURNAL_MISSING_ENTRY_WAIT_MS } from '../../../src/formats/limits.js';
import { STATE_NAMESPACE, STATE_POSITION_ID } from '../../../src/formats/change_set.js';
import { rejectsCode } from '../../helpers.js';
import { ADMIN_PW, CLUSTER, activeDevice, backupOf, hex } from '../backup/backup_support.js';
import { JOURNAL_TEST_TIMEOUT_MS, TestRelay, activateCluster, clonedCluster, loggedIn, syncKeyOf } from './journal_support.js';

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;
const LONG = { timeout: 300_000 };

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
});

/** Starts `action` on `hsm` and takes the entry it offers (the relay's part, by hand). */
async function offerOf<T>(hsm: Hsm, action: () => Promise<T>): Promise<{ offer: JournalItem; done: Promise<T> }> {
  const done = action();
  done.catch(() => undefined); // awaited by the caller
  const offer = await hsm.journal.takeOffer(JOURNAL_TEST_TIMEOUT_MS);
  assert.ok(offer !== undefined, 'the change was offered');
  return { offer, done };
}

/** `hsm`'s journal is halted by `code`, at `seq`; its head and records are as they were. */
function assertHalted(result: DeliverResult, hsm: Hsm, code: ErrorCode, seq: bigint, before: { head: bigint; digest: string }): void {
  assert.equal(result.fault?.code, code);
  assert.equal(result.fault?.seq, seq);
  assert.equal(hsm.journal.fault()?.code, code);
  assert.equal(hsm.journal.head().seq, before.head, 'nothing applied');
  assert.equal(hex(hsm.stateDigest()), before.digest, 'records unchanged');
}

function snapshot(hsm: Hsm): { head: bigint; digest: string } {
  return { head: hsm.journal.head().seq, digest: hex(hsm.stateDigest()) };
}

test('the journal begins after initialisation at (0, genesis); every clone applies the same entries; status and backups carry the head', LONG, async () => {
  const { devices } = await clonedCluster(authorities, ca, 3);
  const [d0, d1, d2] = devices as [Hsm, Hsm, Hsm];
  for (const d of devices) {
    assert.equal(d.journal.journaled(), true);
    assert.equal(d.journal.head().seq, 0n, 'the CSR and initialisation are not journal entries');
  }
  const genesis = hex(d0.journal.head().hash);
  assert.equal(hex(d1.journal.head().hash), genesis);
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  const alice = await loggedIn(d1, 'alice');
  const handle = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'made-on-d1' });
  await relay.stop();
  await relay.deliverAll();
  const head = d1.journal.head();
  assert.ok(head.seq >= 6n, 'activation, two users, logins and a key: each an entry');
  for (const d of devices) {
    assert.equal(d.journal.head().seq, head.seq);
    assert.equal(hex(d.journal.head().hash), hex(head.hash));
    assert.equal(hex(d.stateDigest()), hex(d1.stateDigest()));
    assert.equal(d.status().journalPosition, head.seq);
    assert.equal(d.journal.fault(), undefined);
  }
  assert.equal(await relay.store.journalHead(CLUSTER), Number(head.seq));
  const blob = backupOf(d2);
  assert.equal(decodeBackupHeader(blob.subarray(0, peekBackupHeaderLength(blob.subarray(0, 12)))).journalPosition, head.seq, 'the backup header names the head');
  // A replacement restored from the backup continues from its head, on the same handles.
  const replacement = devices[0] as Hsm;
  await replacement.restoreBackup(bufferSource(blob));
  assert.equal(replacement.journal.head().seq, head.seq);
  assert.equal(hex(replacement.journal.head().hash), hex(head.hash));
  const again = TestRelay.open(devices, relay.store);
  again.start();
  const onD2 = await loggedIn(d2, 'alice');
  await onD2.setAttribute(handle, 'label', 'renamed-on-d2');
  const admins: Session[] = [];
  for (const d of devices) admins.push(await loggedIn(d, 'admin', ADMIN_PW)); // admins read every token object's metadata
  await again.stop();
  await again.deliverAll();
  await again.close();
  for (const admin of admins) assert.equal(admin.getAttributes(handle).label, 'renamed-on-d2', 'one handle names one key on every HSM');
  for (const d of devices) assert.equal(hex(d.stateDigest()), hex(d2.stateDigest()));
});

test('without a sync key (no cluster initialised, or an older cluster) changes apply directly and delivery is refused', async () => {
  const { hsm, admin } = await activeDevice(authorities, { journal: { mode: 'relayed', decideTimeoutMs: 1 } });
  await admin.createUser('carol', 'carol-password', 'crypto-user'); // would time out at once if journaled
  assert.equal(hsm.journal.journaled(), false);
  assert.equal(hsm.journal.head().seq, 0n);
  assert.equal(await hsm.journal.takeOffer(0), undefined);
  await rejectsCode(() => hsm.journal.deliver([]), 'COFFER_JOURNAL_NO_SYNC_KEY');
});

test('bounded waits: an entry nobody took is withdrawn (not in the journal); one taken but not delivered is of unknown outcome, and applied wholly when it comes; crypto never waits', LONG, async () => {
  const { devices } = await clonedCluster(authorities, ca, 2, { decideTimeoutMs: 2_000 });
  const [d0, d1] = devices as [Hsm, Hsm];
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  const alice = await loggedIn(d0, 'alice');
  const signer = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
  await relay.close(); // the control plane is gone
  const before = snapshot(d0);

  // Nobody takes the entry: withdrawn.
  const message = new TextEncoder().encode('signed while a change waits');
  const pending = alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'never' });
  const signature = alice.sign(signer.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message); // while the change waits
  assert.equal(alice.verify(signer.publicHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message, signature), true);
  await rejectsCode(() => pending, 'COFFER_JOURNAL_NOT_APPENDED');
  assert.equal(await d0.journal.takeOffer(0), undefined, 'withdrawn from the outbox');
  assert.deepEqual(snapshot(d0), before);
  assert.equal(alice.find({ label: 'never' }).length, 0);

  // Taken, never delivered: the outcome is unknown; delivered later, it is applied wholly.
  const { offer, done } = await offerOf(d0, () => alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'late' }));
  await rejectsCode(() => done, 'COFFER_JOURNAL_OUTCOME_UNKNOWN');
  assert.deepEqual(snapshot(d0), before);
  for (const d of devices) {
    const result = await d.journal.deliver([offer]);
    assert.equal(result.applied, 1);
    assert.equal(result.fault, undefined, 'its own entry, sealed before the timeout: not a forgery');
  }
  assert.equal(alice.find({ label: 'late' }).length, 1);
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));
});

test('a lost append is decided again on the newer state: a failed login is counted once, and the tally of running attempts does not leak', LONG, async () => {
  const { devices } = await clonedCluster(authorities, ca, 2);
  const [d0, d1] = devices as [Hsm, Hsm];
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  await relay.stop();
  const base = d0.journal.head().seq;

  // Both HSMs count a failed login of bob at the same position; d1's is appended first.
  const s0 = d0.openSession();
  const s1 = d1.openSession();
  const first = await offerOf(d0, () => s0.login('bob', 'wrong-password-0'));
  const second = await offerOf(d1, () => s1.login('bob', 'wrong-password-1'));
  assert.equal(first.offer.seq, base + 1n);
  assert.equal(second.offer.seq, base + 1n);
  assert.equal(await relay.append(second.offer), true);
  assert.equal(await relay.append(first.offer), false, 'compare-and-append: the position is taken');
  await relay.deliverAll(); // d0 learns it lost, and decides again on top of d1's count
  const retry = await d0.journal.takeOffer(JOURNAL_TEST_TIMEOUT_MS);
  assert.equal(retry?.seq, base + 2n, 'decided again at the next position');
  assert.ok(retry !== undefined && (await relay.append(retry)));
  await relay.deliverAll();
  await rejectsCode(() => first.done, 'COFFER_AUTH_FAILED');
  await rejectsCode(() => second.done, 'COFFER_AUTH_FAILED');
  relay.start();
  const admin = await loggedIn(d1, 'admin');
  assert.equal(admin.listUsers().find((u) => u.name === 'bob')?.failedLogins, 2, 'two attempts, two counts: the lost one not counted twice');
  // Three more failures lock bob; the next attempt is told so at once (a leaked tally of running
  // attempts would make it wait for an attempt that never ends).
  for (let i = 0; i < 3; i++) await rejectsCode(() => s0.login('bob', 'wrong-password'), 'COFFER_AUTH_FAILED');
  await rejectsCode(() => s0.login('bob', 'bob-password'), 'COFFER_USER_LOCKED');
  await rejectsCode(() => s1.login('bob', 'bob-password'), 'COFFER_USER_LOCKED');
  await relay.close();
  assert.equal(hex(d0.stateDigest()), hex(d1.stateDigest()));
});

test('a quorum token held by a decision that lost its append is spent once, by the decision made again', LONG, async () => {
  const { devices } = await clonedCluster(authorities, ca, 2);
  const [d0, d1] = devices as [Hsm, Hsm];
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  const admin = await loggedIn(d0, 'admin');
  await admin.createUser('admin2', 'admin2-password', 'admin');
  const admin2 = await loggedIn(d0, 'admin2');
  const keys: KeyObject[] = [];
  for (const s of [admin, admin2]) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    keys.push(pair.privateKey);
    await s.registerQuorumKey(new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' })));
  }
  await admin.setQuorumValue('quorum', 2);
  const other = await loggedIn(d1, 'admin');
  await relay.stop();

  const token = admin.generateQuorumToken('quorum');
  for (const [name, key] of [['admin', keys[0]], ['admin2', keys[1]]] as const) {
    admin.approveQuorumToken(token.bytes, name, new Uint8Array(nodeSign('sha256', token.bytes, key as KeyObject)));
  }
  // d0's guarded change and a change on d1 race for one position; d1's wins.
  const guarded = await offerOf(d0, () => admin.setQuorumValue('user', 2));
  const rival = await offerOf(d1, () => other.createUser('dave', 'dave-password', 'crypto-user'));
  assert.ok(await relay.append(rival.offer));
  await relay.deliverAll();
  await rival.done;
  const retry = await d0.journal.takeOffer(JOURNAL_TEST_TIMEOUT_MS);
  assert.ok(retry !== undefined && (await relay.append(retry)), 'decided again: the token was still usable');
  await relay.deliverAll();
  await guarded.done;
  assert.equal(admin.quorumValues().user, 2);
  relay.start();
  await rejectsCode(() => admin.setQuorumValue('user', 1), 'COFFER_QUORUM_TOKEN_INVALID'); // spent once
  await relay.close();
  assert.equal(hex(d0.stateDigest()), hex(d1.stateDigest()));
});

test('a relay that drops, duplicates, reorders, edits, forks, replays or brings foreign or forged entries is refused as the right fault; nothing bad is applied', LONG, async () => {
  const { devices, stores } = await clonedCluster(authorities, ca, 3);
  const [d0, d1, d2] = devices as [Hsm, Hsm, Hsm];
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  const alice = await loggedIn(d0, 'alice');
  const aliceOn1 = await loggedIn(d1, 'alice');
  await relay.close();
  const base = backupOf(d1);
  const h = d1.journal.head().seq;
  const fresh = async (victim: Hsm): Promise<void> => {
    await victim.restoreBackup(bufferSource(base)); // a restore clears a halted journal
    assert.equal(victim.journal.fault(), undefined);
    assert.equal(victim.journal.head().seq, h);
  };

  // Two genuine entries from d0, at h+1 and h+2 (d0 applies each as it goes); d1 has neither yet.
  const e1 = await offerOf(d0, () => alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'one' }));
  await d0.journal.deliver([e1.offer]);
  await e1.done;
  const e2 = await offerOf(d0, () => alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'two' }));
  await d0.journal.deliver([e2.offer]);
  await e2.done;
  const [one, two] = [e1.offer, e2.offer];

  // Dropped or reordered: waits for the missing entry, no fault, nothing applied.
  for (const batch of [[two], [two, one]]) {
    const before = snapshot(d1);
    const r = await d1.journal.deliver(batch);
    assert.deepEqual([r.applied, r.waitingFor, r.fault], [0, h + 1n, undefined]);
    assert.deepEqual(snapshot(d1), before);
  }
  // Duplicated: each applied once.
  let r = await d1.journal.deliver([one, one, two, two, one]);
  assert.deepEqual([r.applied, r.ignored, r.fault], [2, 3, undefined]);
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));

  // Replayed at another position: already applied.
  let before = snapshot(d1);
  r = await d1.journal.deliver([{ seq: h + 3n, entry: one.entry }]);
  assertHalted(r, d1, 'COFFER_JOURNAL_OUT_OF_ORDER', h + 3n, before);
  assert.equal(r.fault?.reason, 'already-applied');
  // Halted: nothing more is applied, and journaled changes are refused, until a restore.
  await rejectsCode(() => d1.openSession().login('bob', 'wrong-password'), 'COFFER_JOURNAL_HALTED');
  assert.equal(aliceOn1.find().length, 2, 'crypto and reads go on');
  r = await d1.journal.deliver([]);
  assert.equal(r.fault?.code, 'COFFER_JOURNAL_OUT_OF_ORDER');
  await fresh(d1);

  // Edited: any byte changed fails authentication.
  for (const at of [20, 60, one.entry.length - 1]) {
    const edited = one.entry.slice();
    edited[at] = (edited[at] as number) ^ 0x01;
    before = snapshot(d1);
    r = await d1.journal.deliver([{ seq: h + 1n, entry: edited }]);
    assert.ok(r.fault !== undefined && ['COFFER_JOURNAL_TAMPERED', 'COFFER_JOURNAL_WRONG_KEY'].includes(r.fault.code), `byte ${at}: ${r.fault?.code}`);
    assert.deepEqual(snapshot(d1), before);
    await fresh(d1);
  }
  // An edited copy of an applied entry at its own position is not ignored: it is refused as altered.
  await d2.journal.deliver([one]);
  before = snapshot(d2);
  const altered = one.entry.slice();
  altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 0x80;
  assertHalted(await d2.journal.deliver([{ seq: h + 1n, entry: altered }]), d2, 'COFFER_JOURNAL_TAMPERED', h + 1n, before);
  await fresh(d2);

  // Forked: d1 prepares its own entry at h+1; d2 is shown d1's, while d0 went on with its own.
  const forked = await offerOf(d1, () => d1.openSession().login('bob', 'wrong-password'));
  await d2.journal.deliver([forked.offer]); // d2 follows the other branch
  before = snapshot(d2);
  assertHalted(await d2.journal.deliver([one]), d2, 'COFFER_JOURNAL_FORK', h + 1n, before); // two entries at one position
  await fresh(d2);
  await d2.journal.deliver([forked.offer]);
  before = snapshot(d2);
  assertHalted(await d2.journal.deliver([two]), d2, 'COFFER_JOURNAL_FORK', h + 2n, before); // the branches cross
  await d1.journal.deliver([forked.offer]);
  await rejectsCode(() => forked.done, 'COFFER_AUTH_FAILED');
  await fresh(d1);
  await fresh(d2);

  // Another cluster's entry: another sync key.
  const foreign = await clonedCluster(authorities, ca, 1);
  const stranger = foreign.devices[0] as Hsm;
  const foreignOffer = await offerOf(stranger, () => activateCluster(stranger));
  before = snapshot(d1);
  assertHalted(await d1.journal.deliver([{ seq: h + 1n, entry: foreignOffer.offer.entry }]), d1, 'COFFER_JOURNAL_WRONG_KEY', h + 1n, before);
  await fresh(d1);

  // Forged by a holder of the sync key in d0's name, after d0's two entries: d0 did not prepare it,
  // so d0 reports it; d1 cannot tell it from a genuine entry of d0's and applies it
  // (docs/journal-format.md "The originator recognises its own entry").
  assert.equal((await d1.journal.deliver([one, two])).applied, 2);
  const forged = sealJournalEntry({
    syncKey: syncKeyOf(stores[1] as MemoryRecordStore), clusterId: CLUSTER, originator: d0.status().serial ?? '', seq: h + 3n,
    predecessor: d0.journal.head().hash, salt: new Uint8Array(32).fill(7),
    changeSet: { scope: 'cluster', kind: 'quorum.value', ops: [{ op: 'put', ns: 'quorum', id: 'user', value: encodeQuorumValue(1) }] },
  });
  before = snapshot(d0);
  assertHalted(await d0.journal.deliver([{ seq: h + 3n, entry: forged.entry }]), d0, 'COFFER_JOURNAL_FORGED', h + 3n, before);
  r = await d1.journal.deliver([{ seq: h + 3n, entry: forged.entry }]);
  assert.deepEqual([r.applied, r.fault], [1, undefined]);
  // Sealed under this cluster's key for another cluster id (two clusters created from one backup).
  const elsewhere = sealJournalEntry({
    syncKey: syncKeyOf(stores[1] as MemoryRecordStore), clusterId: 'cluster-otherclusterx', originator: d1.status().serial ?? '', seq: h + 1n,
    predecessor: d2.journal.head().hash, salt: new Uint8Array(32).fill(9),
    changeSet: { scope: 'cluster', kind: 'quorum.value', ops: [{ op: 'put', ns: 'quorum', id: 'user', value: encodeQuorumValue(1) }] },
  });
  before = snapshot(d2);
  assertHalted(await d2.journal.deliver([{ seq: h + 1n, entry: elsewhere.entry }]), d2, 'COFFER_JOURNAL_WRONG_CLUSTER', h + 1n, before);
  for (const d of [stranger, ...devices]) d.close();
});

test('a backup whose state position predates the journal head (version 1) restores at head 0 with its count and lineages', async () => {
  const store = new MemoryRecordStore();
  const { hsm: old } = await activeDevice(authorities, { store });
  const position = old.statePosition();
  assert.ok(position.position > 0n);
  const v2 = store.get(STATE_NAMESPACE, STATE_POSITION_ID);
  assert.ok(v2 !== undefined && v2.length === 114 && v2[1] === 2);
  const v1 = v2.slice(0, 74);
  v1[1] = 1; // as a build before the journal head wrote it
  store.transaction((tx) => tx.put(STATE_NAMESPACE, STATE_POSITION_ID, v1));
  const { devices } = await clonedCluster(authorities, ca, 1);
  const restored = devices[0] as Hsm;
  await restored.restoreBackup(bufferSource(backupOf(old)));
  const back = restored.statePosition();
  assert.equal(back.position, position.position);
  assert.equal(hex(back.lineage), hex(position.lineage));
  assert.equal(hex(back.objectLineage), hex(position.objectLineage));
  assert.equal(restored.journal.head().seq, 0n);
  assert.equal(restored.journal.journaled(), false, 'that cluster has no sync key: it works as before');
  await (await loggedIn(restored, 'alice')).generateKey({ keyType: 'AES', bits: 128 });
  assert.equal(restored.statePosition().position, position.position + 3n, 'a login (counted, then reset) and a key, applied directly');
});

test('deliver and takeOffer refuse what is out of bounds', async () => {
  const { devices } = await clonedCluster(authorities, ca, 1);
  const d = devices[0] as Hsm;
  await assert.rejects(d.journal.takeOffer(-1), (e: unknown) => isCofferError(e, 'COFFER_FORMAT_LIMIT'));
  await assert.rejects(d.journal.waitForHead(1n, 1.5), (e: unknown) => isCofferError(e, 'COFFER_FORMAT_LIMIT'));
  const many = Array.from({ length: 1001 }, (_, i) => ({ seq: BigInt(i + 1), entry: new Uint8Array(1) }));
  await rejectsCode(() => d.journal.deliver(many), 'COFFER_FORMAT_LIMIT');
  assert.equal(await d.journal.waitForHead(0n, 0), true);
  assert.equal(await d.journal.waitForHead(1n, 0), false);
  d.close();
});

test('an entry withheld while later ones come is reported missing after the bounded wait (the device clock), never applied out of order, and the report clears when it comes', LONG, async () => {
  const clock = new ManualClock();
  const { devices } = await clonedCluster(authorities, ca, 3, { clock });
  const [d0, d1, d2] = devices as [Hsm, Hsm, Hsm];
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  const alice = await loggedIn(d0, 'alice');
  await relay.close();
  const h = d1.journal.head().seq;
  // Three genuine entries from d0 at h+1 … h+3 (d0 applies each as it goes); d1 has none of them.
  const made: JournalItem[] = [];
  for (const label of ['one', 'two', 'three']) {
    const e = await offerOf(d0, () => alice.generateKey({ keyType: 'AES', bits: 256 }, { label }));
    await d0.journal.deliver([e.offer]);
    await e.done;
    made.push(e.offer);
  }
  const [one, two, three] = made as [JournalItem, JournalItem, JournalItem];

  // Entry h+1 withheld, h+3 delivered: d1 waits, without a report while its clock has not run the bound.
  const before = snapshot(d1);
  let r = await d1.journal.deliver([three]);
  assert.deepEqual([r.applied, r.waitingFor, r.missing, r.fault], [0, h + 1n, undefined, undefined]);
  clock.advance(JOURNAL_MISSING_ENTRY_WAIT_MS - 1);
  assert.equal(d1.journal.missing(), undefined, 'not reported before the bound');
  r = await d1.journal.deliver([three]);
  assert.equal(r.missing, undefined);
  clock.advance(1);
  assert.deepEqual(d1.journal.missing(), { seq: h + 1n, waitedMs: JOURNAL_MISSING_ENTRY_WAIT_MS });
  r = await d1.journal.deliver([two, three]);
  assert.deepEqual([r.applied, r.waitingFor, r.missing?.seq, r.fault], [0, h + 1n, h + 1n, undefined], 'the delivery answer carries it; not a fault');
  assert.deepEqual(snapshot(d1), before, 'nothing out of order applied');
  assert.equal(d1.journal.fault(), undefined);

  // h+1 comes: applied, and the wait starts afresh for h+2 (h+3 is known to exist).
  r = await d1.journal.deliver([one]);
  assert.deepEqual([r.applied, r.missing], [1, undefined]);
  assert.equal(d1.journal.missing(), undefined, 'the report cleared');
  clock.advance(JOURNAL_MISSING_ENTRY_WAIT_MS);
  assert.equal(d1.journal.missing()?.seq, h + 2n, 'h+2 still missing below h+3');
  r = await d1.journal.deliver([two, three]);
  assert.deepEqual([r.applied, r.missing, r.waitingFor], [2, undefined, undefined]);
  clock.advance(JOURNAL_MISSING_ENTRY_WAIT_MS);
  assert.equal(d1.journal.missing(), undefined, 'nothing known beyond the head: nothing missing');
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));

  // A restore forgets a gap, as it forgets everything the journal knew.
  await d2.journal.deliver([three]);
  clock.advance(JOURNAL_MISSING_ENTRY_WAIT_MS);
  assert.equal(d2.journal.missing()?.seq, h + 1n);
  await d2.restoreBackup(bufferSource(backupOf(d1)));
  assert.equal(d2.journal.missing(), undefined);
  // A halted journal reports its fault, not a missing entry.
  await d1.journal.deliver([{ seq: h + 5n, entry: three.entry }]);
  clock.advance(JOURNAL_MISSING_ENTRY_WAIT_MS);
  assert.equal(d1.journal.missing()?.seq, h + 4n);
  r = await d1.journal.deliver([{ seq: h + 4n, entry: one.entry }]);
  assert.equal(r.fault?.code, 'COFFER_JOURNAL_OUT_OF_ORDER');
  assert.equal(r.missing, undefined);
  assert.equal(d1.journal.missing(), undefined);
  for (const d of devices) d.close();
});
