// Batches (src/hsm/state/device_state.ts, docs/device.md "The journal"): the decisions queued while
// an entry is in flight are decided one after another — each against the state the earlier ones
// leave — and ordered by ONE entry. Relayed by hand over a real metadata store (SQLite): several
// callers in one entry, each with its own handle and its own entry position; a decision that throws
// fails only its caller; later decisions see the earlier ones; a batch that loses its position is
// undone and decided again whole; decisions that cannot join a batch (a login, a session object)
// wait for the next entry and take effect once; every HSM ends with one state.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { verify as nodeVerify } from 'node:crypto';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import type { Hsm } from '../../../src/hsm/device.js';
import { withOwnEntries, type JournalItem } from '../../../src/hsm/state/journal.js';
import { decodeChangeSet, wipeChangeSet, type ChangeSet } from '../../../src/formats/change_set.js';
import { OBJECT_CONFIG_NAMESPACE, OBJECT_NAMESPACE } from '../../../src/formats/object_record.js';
import { rejectsCode, throwsCode } from '../../helpers.js';
import { hex } from '../backup/backup_support.js';
import { JOURNAL_TEST_TIMEOUT_MS, loggedIn, pausedCluster as pausedClusterOf } from './journal_support.js';

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;
const LONG = { timeout: 300_000 };

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
});

/** Two HSMs of one activated cluster, the relay stopped (the test relays by hand), alice on the first. */
const pausedCluster = (): ReturnType<typeof pausedClusterOf> => pausedClusterOf(authorities, ca);

/** The entry `hsm` offers next (waits for it). */
async function offered(hsm: Hsm): Promise<JournalItem> {
  const offer = await hsm.journal.takeOffer(JOURNAL_TEST_TIMEOUT_MS);
  assert.ok(offer !== undefined, 'an entry was offered');
  return offer;
}

/** Lets queued calls reach the writer queue (they submit synchronously; this is a margin). */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}


const AES = { keyType: 'AES', bits: 256 } as const;

test('the calls queued behind an entry in flight are ordered by ONE entry; each caller gets its own handle and that entry as its own; every HSM applies it alike', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  const base = d0.journal.head().seq;
  const appended = relay.appended;
  const first = withOwnEntries(() => alice.generateKey(AES, { label: 'first' }));
  const e1 = await offered(d0); // `first` alone is in flight
  const labels = ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'];
  const batch = labels.map((label) => withOwnEntries(() => alice.generateKey(AES, { label })));
  await turns();
  assert.equal(await d0.journal.takeOffer(0), undefined, 'one entry in flight at a time');
  assert.ok(await relay.append(e1));
  await relay.deliverAll();
  const e2 = await offered(d0);
  assert.equal(e2.seq, base + 2n);
  assert.equal(await d0.journal.takeOffer(0), undefined, 'the six queued calls are in that one entry');
  // While the batch's entry is in flight nothing of it shows on the HSM that made it.
  assert.deepEqual(alice.find({}).map((o) => o.label).filter((l) => labels.includes(l ?? '')), [], 'no key of the batch is listed before its entry is applied');
  assert.equal(d0.status().tokenObjects, d1.status().tokenObjects, 'nor counted');
  assert.ok(await relay.append(e2));
  await relay.deliverAll();
  assert.equal(relay.appended, appended + 2, 'two entries for seven calls');
  assert.equal(d1.journal.head().seq, base + 2n);

  const one = await first;
  assert.deepEqual(one.entries.map((e) => e.seq), [base + 1n]);
  const results = await Promise.all(batch);
  const handles = results.map((r) => r.value);
  assert.equal(new Set([one.value, ...handles]).size, 7, 'every caller its own handle');
  for (const [i, r] of results.entries()) {
    assert.deepEqual(r.entries.map((e) => e.seq), [base + 2n], 'each caller names the batch entry as its own');
    assert.equal(hex(r.entries[0]?.hash ?? new Uint8Array()), hex(d0.journal.appliedHash(base + 2n) ?? new Uint8Array(1)));
    // The handle a caller got names the key it asked for, on both HSMs.
    assert.equal(alice.getAttributes(r.value).label, labels[i]);
  }
  relay.start(); // a login is a journaled change
  const alice1 = await loggedIn(d1, 'alice');
  for (const [i, h] of handles.entries()) assert.equal(alice1.getAttributes(h).label, labels[i]);
  await relay.stop();
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()), 'one state on both HSMs');
  await relay.close();
});

test('a batch\'s entry writes each record once: six key generations carry six keys and the handle counter once, at its last value', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  const heard: ChangeSet[] = [];
  const stop = d1.observeChanges((encoded) => {
    heard.push(decodeChangeSet(encoded));
    encoded.fill(0);
  });
  const first = alice.generateKey(AES, { label: 'first' });
  const e1 = await offered(d0);
  const batch = ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'].map((label) => alice.generateKey(AES, { label }));
  await turns();
  assert.ok(await relay.append(e1));
  await relay.deliverAll();
  await first;
  const e2 = await offered(d0);
  assert.ok(await relay.append(e2));
  await relay.deliverAll();
  const handles = await Promise.all(batch);
  stop();
  const entry = heard.at(-1);
  assert.ok(entry !== undefined);
  const where = entry.ops.map((op) => `${op.op} ${op.ns}`);
  assert.deepEqual(where.filter((w) => w === `put ${OBJECT_NAMESPACE}`).length, 6, 'one record per key');
  const counters = entry.ops.filter((op) => op.ns === OBJECT_CONFIG_NAMESPACE);
  assert.equal(counters.length, 1, 'the handle counter once, not once per key');
  const counter = counters[0];
  assert.ok(counter?.op === 'put');
  assert.equal(new DataView(counter.value.buffer, counter.value.byteOffset).getBigUint64(0), BigInt(Math.max(...handles) + 1), 'at the value the last key left it');
  assert.equal(entry.ops.length, 7);
  for (const wipe of heard) wipeChangeSet(wipe);
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()), 'one state on both HSMs');
  // The next key takes the next handle on either HSM.
  relay.start();
  const next = await alice.generateKey(AES, { label: 'next' });
  assert.equal(next, Math.max(...handles) + 1);
  await relay.stop();
  await relay.close();
});

test('EC and Ed25519 pairs asked for together (the node\'s generateKeyPairAsync, as one socket read dispatches them) are ordered by ONE entry', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  const base = d0.journal.head().seq;
  const specs = [{ keyType: 'EC', curve: 'P-256' }, { keyType: 'EC', curve: 'P-384' }, { keyType: 'EC_EDWARDS', curve: 'Ed25519' }, { keyType: 'EC', curve: 'P-256' }] as const;
  const pairs = specs.map((spec, i) => withOwnEntries(() => alice.generateKeyPairAsync(spec, {}, { label: `pair-${i}` })));
  const entry = await offered(d0);
  await turns();
  assert.equal(await d0.journal.takeOffer(0), undefined, 'the four pairs are in the first entry: none was generated apart and proposed alone');
  assert.ok(await relay.append(entry));
  await relay.deliverAll();
  const made = await Promise.all(pairs);
  assert.deepEqual(made.map((m) => m.entries.map((e) => e.seq)), specs.map(() => [base + 1n]));
  assert.deepEqual(made.map((m) => alice.getAttributes(m.value.privateHandle).label), specs.map((_, i) => `pair-${i}`));
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));
  await relay.close();
});

test('in a batch, a decision that throws fails only its caller; later decisions see the earlier ones (a key renamed, then destroyed, then not found)', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  relay.start();
  const victim = await alice.generateKey(AES, { label: 'victim' });
  const other = await alice.generateKey(AES, { label: 'other' });
  await relay.stop();
  const base = d0.journal.head().seq;

  const head = alice.generateKey(AES, { label: 'head' });
  const e1 = await offered(d0);
  const calls = {
    made: alice.generateKey(AES, { label: 'made' }),
    missing: alice.destroy(999_999), // no such object: refused at decision time
    renamed: alice.setAttribute(victim, 'label', 'renamed'),
    destroyed: alice.destroy(victim),
    afterDestroy: alice.setAttribute(victim, 'label', 'too-late'), // decided after the destroy in the same batch
    otherRenamed: alice.setAttribute(other, 'label', 'other-renamed'),
  };
  await turns();
  assert.ok(await relay.append(e1));
  await relay.deliverAll();
  await head;
  const e2 = await offered(d0);
  assert.equal(await d0.journal.takeOffer(0), undefined, 'one entry for the batch');
  assert.ok(await relay.append(e2));
  await relay.deliverAll();

  const made = await calls.made;
  await rejectsCode(() => calls.missing, 'COFFER_OBJECT_NOT_FOUND');
  await calls.renamed;
  await calls.destroyed;
  await rejectsCode(() => calls.afterDestroy, 'COFFER_OBJECT_NOT_FOUND');
  await calls.otherRenamed;
  assert.equal(d0.journal.head().seq, base + 2n);
  assert.equal(alice.getAttributes(made).label, 'made');
  assert.equal(alice.getAttributes(other).label, 'other-renamed');
  assert.equal(alice.find({ label: 'renamed' }).length, 0, 'renamed, then destroyed');
  throwsCode(() => alice.getAttributes(victim), 'COFFER_OBJECT_NOT_FOUND');
  relay.start();
  const a1 = await loggedIn(d1, 'alice');
  await relay.stop();
  throwsCode(() => a1.getAttributes(victim), 'COFFER_OBJECT_NOT_FOUND');
  assert.equal(a1.getAttributes(made).label, 'made');
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));
  await relay.close();
});

test('a batch whose entry loses its position is undone and decided again whole on the newer state: a member may now fail, no key is left behind or made twice', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  relay.start();
  const alice1 = await loggedIn(d1, 'alice');
  const x = await alice.generateKey(AES, { label: 'x' });
  await relay.stop();
  await relay.deliverAll();
  const base = d0.journal.head().seq;
  assert.equal(d1.journal.head().seq, base);

  const head = alice.generateKey(AES, { label: 'head' });
  const e1 = await offered(d0);
  const labels = ['p0', 'p1', 'p2', 'p3'];
  const batch = labels.slice(0, 2).map((label) => alice.generateKey(AES, { label }));
  const destroyX = alice.destroy(x); // in the middle: the keys after it are decided on top of it
  batch.push(...labels.slice(2).map((label) => alice.generateKey(AES, { label })));
  await turns();
  assert.ok(await relay.append(e1));
  await relay.deliverAll();
  await head;
  const lost = await offered(d0); // the batch, at base + 2
  assert.equal(lost.seq, base + 2n);
  // While it is in flight, nothing of it is read on d0 (docs/device.md "The journal"): its keys are
  // not listed and x is still there.
  for (const label of labels) assert.equal(alice.find({ label }).length, 0, `${label} not listed before its entry is applied`);
  assert.equal(alice.find({ label: 'x' }).length, 1);

  // d1 takes that position first: x destroyed there. No handle taken, so only an undone
  // speculation puts the batch's keys back where they were.
  const winner = alice1.destroy(x);
  const won = await offered(d1);
  assert.equal(won.seq, base + 2n);
  assert.ok(await relay.append(won));
  assert.equal(await relay.append(lost), false, 'compare-and-append: the position is taken');
  await relay.deliverAll();
  await winner;
  const again = await offered(d0);
  assert.equal(again.seq, base + 3n, 'decided again at the next position, as one entry');
  assert.equal(await d0.journal.takeOffer(0), undefined);
  assert.ok(await relay.append(again));
  await relay.deliverAll();

  const handles = await Promise.all(batch);
  await rejectsCode(() => destroyX, 'COFFER_OBJECT_NOT_FOUND', 'decided again after x was destroyed by the winner');
  assert.equal(new Set(handles).size, handles.length, 'every key its own handle');
  for (const [i, h] of handles.entries()) assert.equal(alice.getAttributes(h).label, labels[i]);
  for (const session of [alice, alice1]) for (const label of labels) assert.equal(session.find({ label }).length, 1, `${label} made once`);
  assert.equal(d0.journal.head().seq, base + 3n);
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()), 'one state: what was speculated left nothing behind');
  await relay.close();
});

test('decisions that cannot join a batch (a login, a session object) wait for an entry of their own and take effect once; the queue order holds', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  const base = d0.journal.head().seq;
  const head = alice.generateKey(AES, { label: 'head' });
  const e1 = await offered(d0);
  const s = d0.openSession();
  const calls: Promise<unknown>[] = [
    alice.generateKey(AES, { label: 'k0' }),
    s.login('bob', 'wrong-password'), // a user record write: ordered alone
    alice.generateKey(AES, { label: 'k1' }),
    alice.generateKey(AES, { label: 'session', token: false }), // a session object: ordered alone
    alice.generateKey(AES, { label: 'k2' }),
  ];
  await turns();
  assert.ok(await relay.append(e1));
  await relay.deliverAll();
  await head;
  // Relay by hand until every call settled.
  const settled = Promise.allSettled(calls);
  let done = false;
  void settled.then(() => (done = true));
  let entries = 1;
  while (!done) {
    const offer = await d0.journal.takeOffer(200);
    if (offer === undefined) continue;
    assert.ok(await relay.append(offer));
    await relay.deliverAll();
    entries++;
  }
  const results = await settled;
  assert.equal(results[0]?.status, 'fulfilled');
  assert.equal(results[1]?.status, 'rejected');
  assert.equal(results[2]?.status, 'fulfilled');
  assert.equal(results[3]?.status, 'fulfilled');
  assert.equal(results[4]?.status, 'fulfilled');
  // head; k0; the login; k1 (a session object is local: no entry); k2 — the queue order, and a
  // batch never spans a decision that cannot join it.
  assert.equal(d0.journal.head().seq, base + BigInt(entries));
  assert.ok(entries >= 4 && entries <= 5, `entries: ${entries}`);
  const handles = [results[0], results[2], results[4]].map((r) => (r?.status === 'fulfilled' ? r.value : -1));
  assert.equal(new Set(handles).size, 3);
  assert.ok((handles[0] ?? 0) < (handles[1] ?? 0) && (handles[1] ?? 0) < (handles[2] ?? 0), 'handles follow the queue order');
  assert.equal(alice.find({ label: 'session' }).length, 1, 'the session object was made once');
  relay.start();
  const admin = await loggedIn(d1, 'admin');
  assert.equal(admin.listUsers().find((u) => u.name === 'bob')?.failedLogins, 1, 'the failed login counted once, though it was decided on top of a batch and put back');
  await relay.close();
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));
});

test('a batch nobody takes is withdrawn whole: every caller gets NOT_APPENDED, nothing it speculated is left, and the next change is ordered as usual', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedClusterOf(authorities, ca, { decideTimeoutMs: 2_000 });
  const before = { head: d0.journal.head().seq, digest: hex(d0.stateDigest()) };

  const head = alice.generateKey(AES, { label: 'head' });
  const e1 = await offered(d0); // taken, never delivered: unknown outcome
  const labels = ['w0', 'w1', 'w2'];
  const batch = labels.map((label) => alice.generateKey(AES, { label }));
  await rejectsCode(() => head, 'COFFER_JOURNAL_OUTCOME_UNKNOWN');
  for (const call of batch) await rejectsCode(() => call, 'COFFER_JOURNAL_NOT_APPENDED');
  assert.equal(await d0.journal.takeOffer(0), undefined, 'withdrawn from the outbox');
  for (const label of [...labels, 'head']) assert.equal(alice.find({ label }).length, 0, `${label}: nothing left`);
  assert.deepEqual({ head: d0.journal.head().seq, digest: hex(d0.stateDigest()) }, before);

  // The entry of unknown outcome comes after all: applied wholly; the journal goes on.
  assert.ok(await relay.append(e1));
  await relay.deliverAll();
  assert.equal(alice.find({ label: 'head' }).length, 1);
  relay.start();
  const after = await alice.generateKey(AES, { label: 'after' });
  assert.equal(alice.getAttributes(after).label, 'after');
  await relay.close();
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));
});

test('a session key copied into a token object (key.copy) is a journal entry: every HSM holds the copy under one handle, and it signs there', LONG, async () => {
  const { d0, d1, relay, alice } = await pausedCluster();
  relay.start();
  const alice1 = await loggedIn(d1, 'alice');
  const pair = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { token: false }, { token: false, label: 'session' });
  const base = d0.journal.head().seq;
  await relay.stop();
  await relay.deliverAll();
  assert.equal(d0.journal.head().seq, base, 'session objects make no entry');
  relay.start();
  const kept = await withOwnEntries(() => alice.copyObject(pair.privateHandle, { token: true, label: 'kept' }));
  assert.deepEqual(kept.entries.map((e) => e.seq), [base + 1n], 'the copy is one entry');
  await relay.stop();
  await relay.deliverAll();
  assert.equal(alice1.getAttributes(kept.value).label, 'kept');
  const data = new TextEncoder().encode('signed on the other HSM');
  const signature = alice1.sign(kept.value, { mechanism: 'CKM_ECDSA_SHA256' }, data);
  assert.ok(nodeVerify('sha256', data, { key: alice.exportPublic(pair.publicHandle), dsaEncoding: 'ieee-p1363' }, signature));
  assert.equal(hex(d1.stateDigest()), hex(d0.stateDigest()));
  await relay.close();
});
