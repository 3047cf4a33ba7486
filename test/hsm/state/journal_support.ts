// Test support for the cluster journal on devices (not a test file): HSMs cloned from one backup of
// an initialised, activated cluster, each relaying its journal; and an in-test relay that does what
// the control plane will — takes each HSM's offered entry, appends it with compare-and-append on the
// sequence number in a real metadata store (SQLite, in memory), and delivers the journal to every
// HSM from its head. The relay knows no key: it moves sealed bytes.

import assert from 'node:assert/strict';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { bufferSource } from '../../../src/formats/backup.js';
import { CLUSTER_NS } from '../../../src/formats/cluster_record.js';
import { SYNC_KEY_ID, decodeSyncKeyRecord } from '../../../src/formats/sync_key_record.js';
import { isCofferError } from '../../../src/errors.js';
import type { DevelopmentAuthorities, DevelopmentCustomerCa } from '../../../src/factory/development.js';
import type { Hsm, Session } from '../../../src/hsm/device.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import type { JournalItem, JournalOptions } from '../../../src/hsm/state/journal.js';
import { SqliteMetadataStore } from '../../../src/storage/metadata_sqlite.js';
import type { MetadataStore } from '../../../src/storage/metadata_port.js';
import { ADMIN_PW, CLUSTER, PRECO, backupOf, commissionedDevice } from '../backup/backup_support.js';
import { initialisedDevice } from '../identity/cluster_support.js';

/** A small seeded generator: scenarios replay from their seed. */
export { mulberry32 as prng } from '../../helpers.js';

/** The seed from `variable`, or a fresh one; printed so that a failure can be replayed. */
export function seedFrom(variable: string, label: string): number {
  const seed = Number(process.env[variable] ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`${label} seed ${seed} (${variable}=${seed} replays it)`);
  return seed;
}

/** How long a test waits for the journal: generous, since the machine may be busy. */
export const JOURNAL_TEST_TIMEOUT_MS = 60_000;

/** HSMs of one cluster and the stores under them (tests read a sync key from a store). */
export interface ClonedCluster {
  readonly devices: Hsm[];
  readonly stores: MemoryRecordStore[];
}

/**
 * `count` HSMs of one cluster, each relaying its journal: the first initialised (not activated:
 * its journal begins at (0, genesis)), all restored from one backup of it. `activateCluster` then
 * activates it through the journal.
 */
export async function clonedCluster(authorities: DevelopmentAuthorities, ca: DevelopmentCustomerCa, count: number, journal: JournalOptions = {}): Promise<ClonedCluster> {
  const first = await initialisedDevice(authorities, ca);
  const blob = backupOf(first);
  first.close();
  const options: JournalOptions = { mode: 'relayed', decideTimeoutMs: JOURNAL_TEST_TIMEOUT_MS, ...journal };
  const devices: Hsm[] = [];
  const stores: MemoryRecordStore[] = [];
  for (let i = 0; i < count; i++) {
    const store = new MemoryRecordStore();
    const hsm = await commissionedDevice(authorities, { store, journal: options });
    await hsm.restoreBackup(bufferSource(blob));
    devices.push(hsm);
    stores.push(store);
  }
  return { devices, stores };
}

/** The sync key, read from a store (tests only: the device has no call that returns it). */
export function syncKeyOf(store: MemoryRecordStore): KeyObject {
  const record = store.get(CLUSTER_NS, SYNC_KEY_ID);
  assert.ok(record !== undefined);
  return decodeSyncKeyRecord(record).use((b) => createSecretKey(b));
}

/** Activates the cluster through `hsm` (admin password ADMIN_PW) and makes the crypto users
 * `alice` and `bob` (passwords `<name>-password`). Its journal must be relayed meanwhile. */
export async function activateCluster(hsm: Hsm): Promise<void> {
  await hsm.activate(PRECO, ADMIN_PW);
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  for (const name of ['alice', 'bob']) await admin.createUser(name, `${name}-password`, 'crypto-user');
  admin.close();
}

/** Two HSMs of one activated cluster (`journal`: their journal options), the relay stopped (the
 * test relays by hand), alice logged in on the first. */
export async function pausedCluster(authorities: DevelopmentAuthorities, ca: DevelopmentCustomerCa, journal: JournalOptions = {}): Promise<{ d0: Hsm; d1: Hsm; relay: TestRelay; alice: Session }> {
  const { devices } = await clonedCluster(authorities, ca, 2, journal);
  const [d0, d1] = devices as [Hsm, Hsm];
  const relay = TestRelay.open(devices);
  relay.start();
  await activateCluster(d0);
  const alice = await loggedIn(d0, 'alice');
  await relay.stop();
  return { d0, d1, relay, alice };
}

/** A session of `name` on `hsm`, logged in (a journaled change: the journal must be relayed). */
export async function loggedIn(hsm: Hsm, name: string, password = name === 'admin' ? ADMIN_PW : `${name}-password`): Promise<Session> {
  const session = hsm.openSession();
  await session.login(name, password);
  return session;
}

/** A relay over a real metadata store, for `devices` (all of one cluster). */
export class TestRelay {
  readonly store: MetadataStore;
  readonly #devices: readonly Hsm[];
  #running = false;
  #pumps: Promise<void>[] = [];
  /** Appends won and lost (compare-and-append conflicts). */
  appended = 0;
  conflicts = 0;

  readonly #jitter: (() => number) | undefined;

  private constructor(store: MetadataStore, devices: readonly Hsm[], jitter: (() => number) | undefined) {
    this.store = store;
    this.#devices = devices;
    this.#jitter = jitter;
  }

  /** A relay for `devices` over `store` (a fresh in-memory SQLite store unless given). With
   * `jitter`, each append waits a random few turns of the event loop first, so that offers of
   * several HSMs overlap and race for one position (seeded: the choices replay, the timing not). */
  static open(devices: readonly Hsm[], store: MetadataStore = SqliteMetadataStore.open({ path: ':memory:' }), jitter?: () => number): TestRelay {
    return new TestRelay(store, devices, jitter);
  }

  /** Starts one pump per device: take its offer, append it, deliver the journal to everyone. */
  start(): void {
    this.#running = true;
    this.#pumps = this.#devices.map((d) => this.#pump(d));
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#pumps);
    this.#pumps = [];
  }

  async close(): Promise<void> {
    await this.stop();
    await this.store.close();
  }

  /** Appends one offered entry (false: another entry holds that position). */
  async append(offer: JournalItem): Promise<boolean> {
    try {
      await this.store.appendJournal(CLUSTER, Number(offer.seq), offer.entry);
      this.appended++;
      return true;
    } catch (e) {
      if (!isCofferError(e, 'COFFER_JOURNAL_CONFLICT')) throw e;
      this.conflicts++;
      return false;
    }
  }

  /** The journal's entries from `fromSeq`, as the relay would deliver them. */
  async entries(fromSeq: bigint): Promise<JournalItem[]> {
    const rows = await this.store.readJournal(CLUSTER, Number(fromSeq), 1000);
    return rows.map((r) => ({ seq: BigInt(r.seq), entry: r.entry }));
  }

  /** Delivers the journal to every device from its head. */
  async deliverAll(): Promise<void> {
    for (const d of this.#devices) {
      const items = await this.entries(d.journal.head().seq + 1n);
      if (items.length > 0) await d.journal.deliver(items);
    }
  }

  async #pump(device: Hsm): Promise<void> {
    while (this.#running) {
      const offer = await device.journal.takeOffer(100);
      if (offer === undefined) continue;
      const turns = this.#jitter === undefined ? 0 : Math.floor(this.#jitter() * 4);
      for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      await this.append(offer);
      await this.deliverAll();
    }
  }
}
