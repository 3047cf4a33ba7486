// The journal relay (src/service/journal_relay.ts, docs/control-plane.md "The journal relay") against
// in-process devices in relayed mode, on real management sockets and an SQLite metadata store: a
// change made through one HSM is appended and delivered to both; a third HSM restored from the
// first backup is caught up; the relay's key-less link check refuses entries that do not follow the
// stored journal; and a journal whose stored entry was edited is refused by the HSM that catches up
// on it — nothing applied, its fault named with the position.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Cluster } from '../../src/client/cluster.js';
import { isCofferError } from '../../src/errors.js';
import type { JournalFaultReport } from '../../src/formats/management.js';
import type { FleetDevice } from '../../src/service/fleet/fleet_port.js';
import { JournalRelay, compactionFloor, journalLinkRefusal, type RelayTarget } from '../../src/service/journal_relay.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import type { JournalEntry } from '../../src/storage/metadata_port.js';
import { InProcessFleet } from './fleet/in_process_fleet.js';
import { fleetEnvironment, type FleetEnvironment } from './fleet/fleet_support.js';

const CLUSTER_ID = 'cluster-relayunit2345';
const PRECO = 'preco-password-relay';
const ADMIN_PW = 'admin-password-relay';
/** Generous bound on a wait that ends on an event. */
const WAIT_MS = 120_000;

let env: FleetEnvironment;
let fleet: InProcessFleet;
const stores: SqliteMetadataStore[] = [];
const relays: JournalRelay[] = [];

before(async () => {
  env = await fleetEnvironment('journal-relay');
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials, journal: 'relayed' });
});
after(async () => {
  for (const r of relays) await r.stop();
  await fleet.close({ stopDevices: true });
  for (const s of stores) await s.close();
  rmSync(env.dir, { recursive: true, force: true });
});

function openStore(): SqliteMetadataStore {
  const s = SqliteMetadataStore.open({ path: ':memory:' });
  stores.push(s);
  return s;
}

function relayOver(store: SqliteMetadataStore, faults: JournalFaultReport[] = [], pollIntervalMs = 200): JournalRelay {
  const r = new JournalRelay({ store, fleet, log: pino({ level: 'silent' }), onFault: (_t, f) => faults.push(f), pollIntervalMs });
  relays.push(r);
  return r;
}

async function provision(hsmId: string): Promise<FleetDevice> {
  return fleet.provision({ clusterId: CLUSTER_ID, hsmId, dataPlanePort: 0 });
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let backupPath: string;
let entries: JournalEntry[];

test('relay: an activation and a user made through one HSM reach the other, in order; a restored HSM is caught up', { timeout: 300_000 }, async () => {
  const [d0, d1] = [await provision('hsm-relayunitaaa'), await provision('hsm-relayunitbbb')];
  const [m0, m1] = [fleet.management(d0), fleet.management(d1)];
  const csrPem = await m0.clusterCsr(CLUSTER_ID);
  await m0.initialiseCluster({ certificatePem: await env.customerCa.signClusterCsr(csrPem), trustAnchorPem: env.customerCa.certificatePem, preCoPassword: PRECO, applianceCredential: 'appliance-credential-relay-0123' });
  backupPath = join(env.dir, 'initialised.bin');
  await m0.backupToFile(backupPath);
  await m1.restoreFromFile(backupPath);
  const store = openStore();
  // What the relay reads back from the journal it appends to (the link check, deliveries).
  let readBack = 0;
  const readJournal = store.readJournal.bind(store);
  store.readJournal = (...args) => {
    readBack++;
    return readJournal(...args);
  };
  // How often the relay reads the store's head. With no poll due (the interval outlasts the test),
  // its delivery loops read it once each at start, the link check once for the first entry (there
  // is no tail yet), and every later entry is delivered on the head the relay appended: 3 reads (one
  // more if a loop had to retry a call). Reading it for each delivery made 19 for these 4 entries.
  let headReads = 0;
  const storeHead = store.journalHead.bind(store);
  store.journalHead = (...args) => {
    headReads++;
    return storeHead(...args);
  };
  const relay = relayOver(store, [], WAIT_MS * 10);
  const targets: RelayTarget[] = [{ clusterId: CLUSTER_ID, hsmId: 'hsm-relayunitaaa', device: d0 }, { clusterId: CLUSTER_ID, hsmId: 'hsm-relayunitbbb', device: d1 }];
  relay.sync(targets);
  await Cluster.activate({ endpoints: [{ host: d0.host, port: d0.port }], ca: env.customerCa.certificatePem, preCoPassword: PRECO, newAdminPassword: ADMIN_PW });
  const admin = await Cluster.connect({ endpoints: [{ host: d1.host, port: d1.port }], ca: env.customerCa.certificatePem, credentials: { username: 'admin', password: ADMIN_PW, role: 'admin' } });
  await admin.users.create('carol', 'carol-password', 'crypto-user');
  await admin.close();
  const head = BigInt(await storeHead(CLUSTER_ID));
  assert.ok(head >= 2n, 'activation and the new user are entries');
  await until('both HSMs at the journal head', async () => (await m0.health({ digest: true })).journalPosition === head && (await m1.health({ digest: true })).journalPosition === head);
  assert.equal(readBack, 0, 'each entry was checked against, and delivered from, what the relay appended before it: nothing read back');
  assert.ok(headReads <= 4, `the store's head was read at start and for the first entry only, not for each delivery: ${headReads} reads for ${head} entries`);
  const [h0, h1] = [await m0.health({ digest: true }), await m1.health({ digest: true })];
  assert.equal(h0.journalHeadHash, h1.journalHeadHash);
  assert.equal(h0.stateDigest, h1.stateDigest);
  const carol = await Cluster.connect({ endpoints: [{ host: d0.host, port: d0.port }], ca: env.customerCa.certificatePem, credentials: { username: 'carol', password: 'carol-password' } });
  await carol.close();

  // A third HSM restored from the backup taken before the first entry is caught up to the head.
  const d2 = await provision('hsm-relayunitccc');
  const m2 = fleet.management(d2);
  await m2.restoreFromFile(backupPath);
  assert.equal((await m2.health({ digest: true })).journalPosition, 0n);
  const reached = await relay.catchUp(CLUSTER_ID, d2);
  assert.ok(reached >= head);
  await until('the first HSM at the same position', async () => (await m0.health({ digest: true })).journalPosition === reached);
  assert.equal((await m2.health({ digest: true })).journalHeadHash, (await m0.health({ digest: true })).journalHeadHash, 'the same head');
  await relay.stop();
  entries = await store.readJournal(CLUSTER_ID, 1, 1000);
  assert.equal(BigInt(entries.length), BigInt(await store.journalHead(CLUSTER_ID)));
});

test('relay: the key-less link check appends only the entry that follows the stored journal', async () => {
  assert.ok(entries.length >= 2, 'entries from the first test');
  const [e1, e2] = entries as [JournalEntry, JournalEntry];
  const store = openStore();
  const frame = (e: JournalEntry, seq = e.seq): { seq: bigint; entry: Uint8Array } => ({ seq: BigInt(seq), entry: e.entry });
  assert.equal(await journalLinkRefusal(store, CLUSTER_ID, frame(e1)), undefined, 'entry 1 follows genesis');
  assert.equal(await journalLinkRefusal(store, CLUSTER_ID, frame(e2)), 'skips-positions');
  assert.equal(await journalLinkRefusal(store, CLUSTER_ID, frame(e2, 1)), 'seq-differs-from-offer');
  assert.equal(await journalLinkRefusal(store, CLUSTER_ID, { seq: 1n, entry: e1.entry.subarray(0, 20) }), 'header: COFFER_JOURNAL_TAMPERED');
  const altered = e1.entry.slice();
  altered[altered.length - 1]! ^= 1;
  await store.appendJournal(CLUSTER_ID, 1, altered);
  assert.equal(await journalLinkRefusal(store, CLUSTER_ID, frame(e1)), 'lost', 'position 1 is taken');
  assert.equal(await journalLinkRefusal(store, CLUSTER_ID, frame(e2)), 'predecessor-mismatch', 'entry 2 does not follow the stored (altered) entry 1');
  const honest = openStore();
  await honest.appendJournal(CLUSTER_ID, 1, e1.entry);
  assert.equal(await journalLinkRefusal(honest, CLUSTER_ID, frame(e2)), undefined);
});

test('relay: an HSM catching up on an edited stored entry refuses it — nothing applied, the fault names the position', { timeout: 300_000 }, async () => {
  const edited = openStore();
  const at = entries.length; // the last entry is the one edited
  for (const e of entries) {
    const entry = e.seq === at ? e.entry.slice() : e.entry;
    if (e.seq === at) entry[entry.length - 1]! ^= 0x01;
    await edited.appendJournal(CLUSTER_ID, e.seq, entry);
  }
  const d3 = await provision('hsm-relayunitddd');
  const m3 = fleet.management(d3);
  await m3.restoreFromFile(backupPath);
  const faults: JournalFaultReport[] = [];
  const relay = relayOver(edited, faults);
  await assert.rejects(relay.catchUp(CLUSTER_ID, d3), (e) => isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') && e.detail['seq'] === String(at) && e.detail['fault'] === 'COFFER_JOURNAL_TAMPERED');
  const h = await m3.health({ digest: true });
  assert.equal(h.journalPosition, BigInt(at - 1), 'every entry before the edited one applied, not the edited one');
  assert.equal(h.journalFault?.code, 'COFFER_JOURNAL_TAMPERED');
  assert.equal(h.journalFault?.seq, BigInt(at));
  // The delivery loop reports the same fault to the orchestrator.
  relay.sync([{ clusterId: CLUSTER_ID, hsmId: 'hsm-relayunitddd', device: d3 }]);
  await relay.stop();
  assert.equal(faults.length, 0, 'a device already halted is not delivered to again');
});

test('compaction keeps what every HSM and every restorable backup needs, and the entry at the floor', () => {
  const ready = (p: number): { state: 'READY'; journalPosition: string } => ({ state: 'READY', journalPosition: String(p) });
  assert.equal(compactionFloor([40n, 38n], [ready(30), ready(35)]), 30n, 'the oldest restorable backup sets the floor');
  assert.equal(compactionFloor([12n, 40n], [ready(30)]), 12n, 'an HSM behind every backup still needs its entries');
  assert.equal(compactionFloor([40n], [ready(30), { state: 'PENDING_DELETION', journalPosition: '5' }]), 5n, 'a backup pending deletion can be restored');
  assert.equal(compactionFloor([40n], [ready(30), { state: 'DELETED', journalPosition: '5' }]), 30n, 'a purged backup needs nothing');
  assert.equal(compactionFloor([40n], [ready(30), { state: 'READY' }]), undefined, 'a backup of unknown position may need everything');
  assert.equal(compactionFloor([1n, 40n], []), undefined, 'nothing below 1');
  assert.equal(compactionFloor([], []), undefined);
});

test('relay: an HSM that needs entries compaction dropped is not caught up — it must be restored from a newer backup', { timeout: 300_000 }, async () => {
  const store = openStore();
  for (const e of entries) await store.appendJournal(CLUSTER_ID, e.seq, e.entry);
  await store.compactJournal(CLUSTER_ID, 2); // entry 1 dropped: a backup at position 0 may no longer be restored from
  const d4 = await provision('hsm-relayuniteee');
  const m4 = fleet.management(d4);
  await m4.restoreFromFile(backupPath);
  await assert.rejects(relayOver(store).catchUp(CLUSTER_ID, d4), (e) => isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') && e.detail['reason'] === 'compacted');
  const h = await m4.health({ digest: true });
  assert.equal(h.journalPosition, 0n, 'nothing delivered');
  assert.equal(h.journalFault, null, 'not a fault of the HSM');
});

test('relay: a store that lacks an entry between others is named damaged, not compacted, by the catch-up', { timeout: 300_000 }, async () => {
  assert.ok(entries.length >= 3, 'an entry before and after the one the store loses');
  const path = join(env.dir, 'gap.sqlite');
  const store = SqliteMetadataStore.open({ path });
  stores.push(store);
  for (const e of entries) await store.appendJournal(CLUSTER_ID, e.seq, e.entry);
  const db = new Database(path);
  assert.equal(db.prepare('DELETE FROM journal WHERE cluster_id = ? AND seq = 2').run(CLUSTER_ID).changes, 1);
  db.close();
  const d5 = await provision('hsm-relayunitfff');
  const m5 = fleet.management(d5);
  await m5.restoreFromFile(backupPath);
  await assert.rejects(relayOver(store).catchUp(CLUSTER_ID, d5), (e) => isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') && e.detail['reason'] === 'missing-in-store' && e.detail['seq'] === '2');
  const h = await m5.health({ digest: true });
  assert.equal(h.journalPosition, 1n, 'the entry before the gap applied, nothing after it');
  assert.equal(h.journalFault, null, 'not a fault of the HSM');
});
