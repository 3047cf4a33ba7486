// The cluster sync key inside the device (src/hsm/identity/cluster.ts, docs/journal-format.md "The
// cluster sync key"): made at initialisation and nowhere else, one key on every HSM cloned from one
// backup (an entry sealed on one opens on the others), absent from every event, status, error and
// sealed output in clear, erased by zeroise; a cluster initialised before sync keys keeps working
// and refuses journal work.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { keyId } from '../../../src/crypto/backup_keys.js';
import { bufferSource } from '../../../src/formats/backup.js';
import { decodeChangeSet, type ChangeSet } from '../../../src/formats/change_set.js';
import { CLUSTER_NS } from '../../../src/formats/cluster_record.js';
import { decodeJournalEntryHeader, journalGenesis } from '../../../src/formats/journal_entry.js';
import { SYNC_KEY_ID, decodeSyncKeyRecord } from '../../../src/formats/sync_key_record.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import { Hsm, type HsmEvent } from '../../../src/hsm/device.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { isCofferError } from '../../../src/errors.js';
import { rejectsCode, throwsCode } from '../../helpers.js';
import { ADMIN_PW, APPLIANCE_PW, CLUSTER, FAST_KDF, PRECO, activateWithAlice, backupOf, commissionedDevice, hex } from '../backup/backup_support.js';
import { initialisedDevice } from './cluster_support.js';

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
});

const CHANGE: ChangeSet = { scope: 'cluster', kind: 'key.generate', ops: [{ op: 'put', ns: 'object', id: '0000000000000001', value: Uint8Array.of(1, 2, 3) }] };
const FIRST = { seq: 1n, predecessor: journalGenesis(CLUSTER) };

/** The sync key's bytes as the store holds them (tests only: the device has no call that returns them). */
function syncKeyBytes(store: MemoryRecordStore): Uint8Array {
  const record = store.get(CLUSTER_NS, SYNC_KEY_ID);
  assert.ok(record !== undefined, 'the state holds a sync key');
  return decodeSyncKeyRecord(record).use((b) => b.slice());
}

test('the sync key is made at initialisation, in its change set; none before; zeroise erases it', async () => {
  const store = new MemoryRecordStore();
  const hsm = await commissionedDevice(authorities, { store });
  const changes: ChangeSet[] = [];
  hsm.observeChanges((encoded) => changes.push(decodeChangeSet(encoded)));
  assert.equal(hsm.cluster.syncKeyId(), null);
  throwsCode(() => hsm.cluster.sealJournalEntry(CHANGE, FIRST), 'COFFER_JOURNAL_NO_SYNC_KEY');
  const csr = await hsm.cluster.createCsr(CLUSTER);
  assert.equal(hsm.cluster.syncKeyId(), null, 'not with the cluster key: with the certificate');
  await hsm.cluster.initialise({ certificatePem: await ca.signClusterCsr(csr), trustAnchorPem: ca.certificatePem, preCoPassword: PRECO, applianceCredential: APPLIANCE_PW });
  const key = syncKeyBytes(store);
  assert.equal(key.length, 32);
  assert.equal(hex(hsm.cluster.syncKeyId() ?? new Uint8Array()), hex(keyId(key)));
  const initialise = changes.find((cs) => cs.kind === 'cluster.initialise');
  assert.ok(initialise?.ops.some((op) => op.ns === CLUSTER_NS && op.id === SYNC_KEY_ID && op.op === 'put'), 'written by the cluster.initialise change set');
  assert.ok(!changes.some((cs) => cs.kind !== 'cluster.initialise' && cs.ops.some((op) => op.id === SYNC_KEY_ID)));

  const other = await initialisedDevice(authorities, ca);
  assert.notEqual(hex(other.cluster.syncKeyId() ?? new Uint8Array()), hex(hsm.cluster.syncKeyId() ?? new Uint8Array()), 'each cluster its own key');

  await hsm.zeroise();
  assert.equal(hsm.cluster.syncKeyId(), null);
  assert.equal(store.get(CLUSTER_NS, SYNC_KEY_ID), undefined);
  throwsCode(() => hsm.cluster.sealJournalEntry(CHANGE, FIRST), 'COFFER_JOURNAL_NO_SYNC_KEY');
});

test('HSMs cloned from one backup hold one sync key: an entry sealed on one opens on the others', async () => {
  const a = await initialisedDevice(authorities, ca);
  await activateWithAlice(a);
  const blob = backupOf(a);
  const [b, c] = [await commissionedDevice(authorities), await commissionedDevice(authorities)];
  for (const clone of [b, c]) await clone.restoreBackup(bufferSource(blob));
  const id = hex(a.cluster.syncKeyId() ?? new Uint8Array());
  assert.equal(hex(b.cluster.syncKeyId() ?? new Uint8Array()), id);
  assert.equal(hex(c.cluster.syncKeyId() ?? new Uint8Array()), id);

  const sealed = b.cluster.sealJournalEntry(CHANGE, FIRST);
  const header = decodeJournalEntryHeader(sealed.entry);
  assert.equal(header.originator, b.status().serial, 'tagged with the HSM that sealed it');
  assert.equal(header.clusterId, CLUSTER);
  assert.equal(hex(header.syncKeyId), id);
  for (const hsm of [a, b, c]) {
    const opened = hsm.cluster.openJournalEntry(sealed.entry, FIRST);
    assert.deepEqual(opened.changeSet, CHANGE);
    assert.equal(hex(opened.hash), hex(sealed.hash));
  }
  // The next entry, from another clone, chains on; out of place it is refused.
  const next = c.cluster.sealJournalEntry(CHANGE, { seq: 2n, predecessor: sealed.hash });
  assert.deepEqual(a.cluster.openJournalEntry(next.entry, { seq: 2n, predecessor: sealed.hash }).changeSet, CHANGE);
  throwsCode(() => a.cluster.openJournalEntry(next.entry, FIRST), 'COFFER_JOURNAL_OUT_OF_ORDER');
  throwsCode(() => a.cluster.openJournalEntry(sealed.entry, { seq: 2n, predecessor: sealed.hash }), 'COFFER_JOURNAL_OUT_OF_ORDER');
  // Another cluster, initialised on its own under the same cluster id: another key.
  const stranger = await initialisedDevice(authorities, ca);
  throwsCode(() => stranger.cluster.openJournalEntry(sealed.entry, FIRST), 'COFFER_JOURNAL_WRONG_KEY');
  throwsCode(() => a.cluster.openJournalEntry(stranger.cluster.sealJournalEntry(CHANGE, FIRST).entry, FIRST), 'COFFER_JOURNAL_WRONG_KEY');
});

test('the sync key appears in no event, status, error, backup or entry', async () => {
  const events: HsmEvent[] = [];
  const onEvent = (e: HsmEvent): void => void events.push(e);
  const store = new MemoryRecordStore();
  const a = await initialisedDevice(authorities, ca, { store, onEvent });
  const { admin } = await activateWithAlice(a);
  const key = syncKeyBytes(store);
  const blob = backupOf(a);
  const b = await commissionedDevice(authorities, { onEvent });
  await b.restoreBackup(bufferSource(blob));
  const sealed = a.cluster.sealJournalEntry(CHANGE, FIRST);
  const errors: unknown[] = [];
  for (const attempt of [
    () => b.cluster.openJournalEntry(sealed.entry, { seq: 2n, predecessor: sealed.hash }),
    () => b.cluster.openJournalEntry(Uint8Array.from(sealed.entry, (x, i) => (i === sealed.entry.length - 1 ? x ^ 1 : x)), FIRST),
    () => b.cluster.openJournalEntry(sealed.entry, { seq: 1n, predecessor: new Uint8Array(32) }),
  ]) {
    try {
      attempt();
    } catch (e) {
      assert.ok(isCofferError(e));
      errors.push({ message: e.message, detail: e.detail, json: e.toJSON(), text: String(e), inspected: inspect(e) });
    }
  }
  await rejectsCode(() => admin.createUser('alice', 'alice-password', 'crypto-user'), 'COFFER_USER_EXISTS');
  assert.equal(errors.length, 3);
  assert.ok(events.length > 0);
  const said = JSON.stringify({ events, errors, status: [a.status(), b.status()], cluster: [a.cluster, b.cluster] }, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? hex(v) : v))
    + inspect(a.cluster) + inspect(b.cluster) + String(a.cluster);
  const k = Buffer.from(key);
  for (const form of [k.toString('hex'), k.toString('base64'), k.toString('base64url'), k.subarray(0, 12).toString('hex')]) assert.ok(!said.includes(form), 'the key in what the device says');
  for (const bytes of [blob, sealed.entry]) assert.equal(Buffer.from(bytes).indexOf(k.subarray(0, 12)), -1, 'the key in clear in sealed output');
});

test('a cluster initialised before sync keys keeps working, backs up and restores, and refuses journal work', async () => {
  const store = new MemoryRecordStore();
  const made = await initialisedDevice(authorities, ca, { store });
  await activateWithAlice(made);
  const entry = made.cluster.sealJournalEntry(CHANGE, FIRST).entry; // an entry of a cluster that has a key
  // What an earlier version left: the same records without 'sync-key' (written under the device, as
  // its store would hold them), opened by this version.
  store.transaction((tx) => tx.delete(CLUSTER_NS, SYNC_KEY_ID));
  const old = Hsm.open({ store, kdfParams: FAST_KDF });
  assert.equal(old.status().cluster, 'INITIALISED');
  assert.equal(old.cluster.syncKeyId(), null);
  throwsCode(() => old.cluster.sealJournalEntry(CHANGE, FIRST), 'COFFER_JOURNAL_NO_SYNC_KEY');
  throwsCode(() => old.cluster.openJournalEntry(entry, FIRST), 'COFFER_JOURNAL_NO_SYNC_KEY');
  const admin = old.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('bob', 'bob-password', 'crypto-user');
  const clone = await commissionedDevice(authorities);
  await clone.restoreBackup(bufferSource(backupOf(old)));
  assert.equal(hex(clone.stateDigest()), hex(old.stateDigest()));
  assert.equal(clone.cluster.syncKeyId(), null, 'no device makes one on its own');
  assert.equal(clone.status().cluster, 'INITIALISED');
});
