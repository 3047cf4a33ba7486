// A control plane that serves an HSM an old backup (docs/journal-format.md "Test coverage"): the
// journal relay (src/service/journal_relay.ts) over an SQLite store and in-process devices in relayed
// mode on real management sockets, the test choosing which backup each HSM restores. A replacement
// given a backup older than the newest, and an HSM rolled back to a backup from before entries it
// applied — entries it sealed itself among them — replay the journal from the backup's position
// and end at the same head with the same state digest as their peers; a backup of another cluster is
// refused at the first entry delivered (another sync key), and a backup of a forked branch at the
// first entry of the journal after its position (FORK): nothing applied, the HSM not caught up.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Cluster } from '../../src/client/cluster.js';
import { isCofferError } from '../../src/errors.js';
import type { ManagementClient, NodeHealth } from '../../src/management/client.js';
import type { FleetDevice } from '../../src/service/fleet/fleet_port.js';
import { JournalRelay } from '../../src/service/journal_relay.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { InProcessFleet } from './fleet/in_process_fleet.js';
import { fleetEnvironment, type FleetEnvironment } from './fleet/fleet_support.js';

const CLUSTER_ID = 'cluster-oldbackupaa23';
const OTHER_CLUSTER_ID = 'cluster-oldbackupbb45';
const PRECO = 'preco-password-old-backup';
const ADMIN_PW = 'admin-password-old-backup';
/** Generous bound on a wait that ends on an event. */
const WAIT_MS = 120_000;
const LONG = { timeout: 300_000 };

let env: FleetEnvironment;
let fleet: InProcessFleet;
let store: SqliteMetadataStore;
const relays: JournalRelay[] = [];

before(async () => {
  env = await fleetEnvironment('journal-old-backup');
  fleet = await InProcessFleet.open({ dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials, journal: 'relayed' });
  store = SqliteMetadataStore.open({ path: ':memory:' });
});
after(async () => {
  for (const r of relays) await r.stop();
  await fleet.close({ stopDevices: true });
  await store.close();
  rmSync(env.dir, { recursive: true, force: true });
});

function relay(): JournalRelay {
  const r = new JournalRelay({ store, fleet, log: pino({ level: 'silent' }), onFault: () => undefined, pollIntervalMs: 200 });
  relays.push(r);
  return r;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A device of `clusterId`, its cluster initialised (not activated); its backup at position 0 in `path`. */
async function initialised(clusterId: string, hsmId: string, path: string): Promise<{ device: FleetDevice; mgmt: ManagementClient }> {
  const device = await fleet.provision({ clusterId, hsmId, dataPlanePort: 0 });
  const mgmt = fleet.management(device);
  const csrPem = await mgmt.clusterCsr(clusterId);
  await mgmt.initialiseCluster({ certificatePem: await env.customerCa.signClusterCsr(csrPem), trustAnchorPem: env.customerCa.certificatePem, preCoPassword: PRECO, applianceCredential: 'appliance-credential-old-backup' });
  await mgmt.backupToFile(path);
  return { device, mgmt };
}

async function admin(device: FleetDevice): Promise<Cluster> {
  return Cluster.connect({ endpoints: [{ host: device.host, port: device.port }], ca: env.customerCa.certificatePem, credentials: { username: 'admin', password: ADMIN_PW, role: 'admin' } });
}

/** `h` holds the journal and the state `peer` holds, and no fault. */
function identical(h: NodeHealth, peer: NodeHealth, what: string): void {
  assert.equal(h.journalFault, null, `${what}: no fault`);
  assert.equal(h.journalPosition, peer.journalPosition, `${what}: the same position`);
  assert.equal(h.journalHeadHash, peer.journalHeadHash, `${what}: the same head`);
  assert.equal(h.stateDigest, peer.stateDigest, `${what}: the same state digest`);
}

let firstBackup: string;
/** The HSMs the first test leaves relayed, at the journal head. */
let relayed: FleetDevice[] = [];

test('an older backup than the newest, or a roll-back to before entries the HSM applied and sealed itself, replays the journal from its position and ends identical', LONG, async () => {
  firstBackup = join(env.dir, 'position-0.bin');
  const { device: d0, mgmt: m0 } = await initialised(CLUSTER_ID, 'hsm-oldbackupaaaa', firstBackup);
  const d1 = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupbbbb', dataPlanePort: 0 });
  const m1 = fleet.management(d1);
  await m1.restoreFromFile(firstBackup);
  const live = relay();
  live.sync([{ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupaaaa', device: d0 }, { clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupbbbb', device: d1 }]);
  await Cluster.activate({ endpoints: [{ host: d0.host, port: d0.port }], ca: env.customerCa.certificatePem, preCoPassword: PRECO, newAdminPassword: ADMIN_PW });
  const via1 = await admin(d1);
  await via1.users.create('early', 'early-password', 'crypto-user');
  await via1.close();
  await until('both HSMs at the journal head', async () => (await m0.health({ digest: true })).journalPosition === BigInt(await store.journalHead(CLUSTER_ID)) && (await m1.health({ digest: true })).journalPosition === BigInt(await store.journalHead(CLUSTER_ID)));
  const middle = join(env.dir, 'middle.bin');
  await m1.backupToFile(middle);
  const middlePosition = (await m1.health({ digest: true })).journalPosition;
  // Entries after the middle backup, sealed by HSM 0 (the originator) — and a newer backup.
  const via0 = await admin(d0);
  for (const name of ['late0', 'late1']) await via0.users.create(name, `${name}-password`, 'crypto-user');
  await via0.close();
  const head = BigInt(await store.journalHead(CLUSTER_ID));
  assert.ok(head > middlePosition && middlePosition > 0n);
  await until('both HSMs at the journal head', async () => (await m0.health({ digest: true })).journalPosition === head && (await m1.health({ digest: true })).journalPosition === head);
  await m1.backupToFile(join(env.dir, 'newest.bin'));
  await live.stop();
  const reference = await m1.health({ digest: true });
  assert.equal(reference.journalPosition, head);

  // A replacement given the middle backup, not the newest: caught up from its position.
  const d2 = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupcccc', dataPlanePort: 0 });
  const m2 = fleet.management(d2);
  await m2.restoreFromFile(middle);
  assert.equal((await m2.health({ digest: true })).journalPosition, middlePosition);
  assert.equal(await relay().catchUp(CLUSTER_ID, d2), head);
  identical(await m2.health({ digest: true }), reference, 'restored from an older backup');

  // HSM 0 rolled back to the first backup: before every entry, its own among them.
  await m0.restoreFromFile(firstBackup);
  const rolledBack = await m0.health({ digest: true });
  assert.equal(rolledBack.journalPosition, 0n);
  assert.notEqual(rolledBack.stateDigest, reference.stateDigest, 'the roll-back lost the changes');
  assert.equal(await relay().catchUp(CLUSTER_ID, d0), head);
  identical(await m0.health({ digest: true }), reference, 'rolled back, then caught up (its own entries are not forgeries)');
  // A login is a journaled change: the relay serves the three HSMs again.
  const ids = ['hsm-oldbackupaaaa', 'hsm-oldbackupbbbb', 'hsm-oldbackupcccc'];
  relayed = [d0, d1, d2];
  relay().sync(relayed.map((device, i) => ({ clusterId: CLUSTER_ID, hsmId: ids[i] as string, device })));
  const late = await Cluster.connect({ endpoints: [{ host: d0.host, port: d0.port }], ca: env.customerCa.certificatePem, credentials: { username: 'late1', password: 'late1-password' } });
  assert.equal((await late.random(8)).length, 8, 'a user made after the backup it was rolled back to');
  await late.close();
});

test('a backup of another cluster is refused at the first entry delivered: another sync key, nothing applied, not caught up', LONG, async () => {
  assert.ok(BigInt(await store.journalHead(CLUSTER_ID)) >= 1n, 'entries from the first test');
  const { mgmt: other } = await initialised(OTHER_CLUSTER_ID, 'hsm-oldbackupdddd', join(env.dir, 'other-0.bin'));
  const wrong = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupeeee', dataPlanePort: 0 });
  const mw = fleet.management(wrong);
  await mw.restoreFromFile(join(env.dir, 'other-0.bin'));
  const before = await mw.health({ digest: true });
  assert.equal(before.stateDigest, (await other.health({ digest: true })).stateDigest, 'it holds the other cluster');
  await assert.rejects(relay().catchUp(CLUSTER_ID, wrong), (e) => isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') && e.detail['fault'] === 'COFFER_JOURNAL_WRONG_KEY' && e.detail['seq'] === '1');
  const afterwards = await mw.health({ digest: true });
  assert.equal(afterwards.journalFault?.code, 'COFFER_JOURNAL_WRONG_KEY');
  assert.equal(afterwards.journalPosition, 0n, 'nothing applied');
  assert.equal(afterwards.stateDigest, before.stateDigest, 'records unchanged');
  assert.notEqual(afterwards.clusterId, CLUSTER_ID, 'its health names the other cluster (the orchestrator probe refuses that)');
});

/** Lets `mgmt`'s device apply its own entries alone — a hostile relay that appends them nowhere —
 * until `done` settles: its journal leaves the cluster's. */
async function applyAlone<T>(mgmt: ManagementClient, done: Promise<T>): Promise<T> {
  let settled = false;
  const watched = done.finally(() => (settled = true));
  watched.catch(() => undefined); // awaited below
  while (!settled) {
    const offer = await mgmt.takeJournalOffer(200);
    if (offer !== undefined) assert.equal((await mgmt.deliverJournal([offer])).applied, 1);
  }
  return watched;
}

test('a backup of a forked branch is refused at the first entry of the journal that follows its position: FORK, nothing applied', LONG, async () => {
  assert.equal(relayed.length, 3, 'the HSMs of the first test');
  const peerDevice = relayed[1] as FleetDevice;
  const peer = fleet.management(peerDevice);
  const head = BigInt(await store.journalHead(CLUSTER_ID));
  await until('the peer at the journal head', async () => (await peer.health({ digest: true })).journalPosition === head);
  const current = join(env.dir, 'current.bin');
  await peer.backupToFile(current);
  // A branch: an HSM restored from the current backup applies changes of its own that the journal
  // never holds (a login is two), and a backup of it is taken.
  const db = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupffff', dataPlanePort: 0 });
  const mb = fleet.management(db);
  await mb.restoreFromFile(current);
  const login = await applyAlone(mb, admin(db));
  await login.close();
  const forked = join(env.dir, 'forked.bin');
  await mb.backupToFile(forked);
  const branch = (await mb.health({ digest: true })).journalPosition;
  assert.ok(branch > head);
  // The journal goes on past the branch's position with other entries.
  const via = await admin(peerDevice);
  await via.users.create('afterbranch', 'afterbranch-password', 'crypto-user');
  await via.close();
  assert.ok(BigInt(await store.journalHead(CLUSTER_ID)) > branch);
  // A replacement given the forked backup.
  const dr = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupgggg', dataPlanePort: 0 });
  const mr = fleet.management(dr);
  await mr.restoreFromFile(forked);
  const before = await mr.health({ digest: true });
  await assert.rejects(relay().catchUp(CLUSTER_ID, dr), (e) => isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') && e.detail['fault'] === 'COFFER_JOURNAL_FORK' && e.detail['seq'] === String(branch + 1n));
  const afterwards = await mr.health({ digest: true });
  assert.equal(afterwards.journalFault?.code, 'COFFER_JOURNAL_FORK');
  assert.equal(afterwards.journalPosition, branch, 'nothing applied');
  assert.equal(afterwards.stateDigest, before.stateDigest, 'records unchanged');
});

test('a backup of a forked branch at the journal head itself: caught up by position but not by hash, refused (other-head), never reported caught up', LONG, async () => {
  const peerDevice = relayed[1] as FleetDevice;
  const peer = fleet.management(peerDevice);
  const head = BigInt(await store.journalHead(CLUSTER_ID));
  await until('the peer at the journal head', async () => (await peer.health({ digest: true })).journalPosition === head);
  const current = join(env.dir, 'current-2.bin');
  await peer.backupToFile(current);
  // A branch of two entries of its own (a login), backed up.
  const db = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackuphhhh', dataPlanePort: 0 });
  const mb = fleet.management(db);
  await mb.restoreFromFile(current);
  await (await applyAlone(mb, admin(db))).close();
  const forked = join(env.dir, 'forked-at-head.bin');
  await mb.backupToFile(forked);
  const branch = (await mb.health({ digest: true })).journalPosition;
  assert.equal(branch, head + 2n);
  // The journal gets two other entries (a login through the peer): the same position, other entries.
  await (await admin(peerDevice)).close();
  assert.equal(BigInt(await store.journalHead(CLUSTER_ID)), branch, 'the journal head is the branch position');
  const dr = await fleet.provision({ clusterId: CLUSTER_ID, hsmId: 'hsm-oldbackupiiii', dataPlanePort: 0 });
  const mr = fleet.management(dr);
  await mr.restoreFromFile(forked);
  await assert.rejects(relay().catchUp(CLUSTER_ID, dr), (e) => isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') && e.detail['reason'] === 'other-head' && e.detail['seq'] === String(branch));
  // The peer itself, at the same position with the journal's entry, is caught up.
  await until('the peer at the journal head', async () => (await peer.health({ digest: true })).journalPosition === branch);
  assert.equal(await relay().catchUp(CLUSTER_ID, peerDevice), branch);
});
