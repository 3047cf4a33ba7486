// The cluster journal (docs/journal-format.md, src/hsm/state/journal.ts) and what it stands on:
//
// - Replay: a catching-up HSM applying the journal's entries (journal.deliver: open each entry
//   against its head, check the chain, apply a delivery's entries in grouped commits), beside the
//   device's own apply of the same change sets with no journal (DeviceState.apply of each decoded
//   change set, one commit each, onto an empty state); in memory, and on a sealed store in a file
//   with sync full, where each commit is an fsync.
// - The metadata store's journal: appendJournal (compare-and-append on the sequence number) by one
//   writer, and by 8 writers racing for the next position, beside a bare INSERT of an entry-sized
//   row by one writer in the same database, for SQLite (WAL, synchronous FULL) and PostgreSQL.
//
// The entries are real: AES-256 key generations by a crypto user on an HSM whose journal the bench
// relays in process (take its offer, deliver it back), as the control plane's relay does.

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { isCofferError } from '../src/errors.js';
import { bufferSource } from '../src/formats/backup.js';
import { bufferSink } from '../src/hsm/backup/backup.js';
import { decodeChangeSet } from '../src/formats/change_set.js';
import { JOURNAL_APPLY_GROUP_BYTES_MAX, JOURNAL_DELIVER_ENTRIES_MAX } from '../src/formats/limits.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../src/factory/development.js';
import { Hsm } from '../src/hsm/device.js';
import type { JournalItem } from '../src/hsm/state/journal.js';
import { DeviceState } from '../src/hsm/state/device_state.js';
import { MemoryRecordStore, type RecordStore } from '../src/hsm/store/store_port.js';
import { SealedStore } from '../src/hsm/store/sealed_store.js';
import { SecretBytes } from '../src/crypto/secret_bytes.js';
import { PostgresMetadataStore } from '../src/storage/metadata_postgres.js';
import { SqliteMetadataStore } from '../src/storage/metadata_sqlite.js';
import type { MetadataStore } from '../src/storage/metadata_port.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';

const CLUSTER = 'cluster-benchjournal';
const ENTRIES = 2000;
const ROUNDS = 5;
const APPENDS = 1500;
const RACERS = 8;
export const POSTGRES_URL = process.env['COFFER_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const KDF = { log2N: 4, r: 1, p: 1 };
const PRECO = 'bench-preco';
const ADMIN_PW = 'bench-admin-pw';

async function device(authorities: DevelopmentAuthorities, mode: 'relayed' | 'solo', store: RecordStore = new MemoryRecordStore()): Promise<Hsm> {
  const hsm = Hsm.open({ store, kdfParams: KDF, journal: { mode, decideTimeoutMs: 60_000 } });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  return hsm;
}

/** Where a replay or an apply writes: in memory, or a sealed store in a fresh file (sync full, as
 * an HSM keeps its state), removed afterwards. */
type StoreKind = 'memory' | 'sealed';

function freshStore(kind: StoreKind, dir: string, tag: string): RecordStore {
  if (kind === 'memory') return new MemoryRecordStore();
  const storageKey = SecretBytes.random(32);
  try {
    return SealedStore.create({ path: join(dir, `${tag}.db`), storageKey });
  } finally {
    storageKey.destroy();
  }
}

/** The relay the control plane runs, in process and for one HSM: take its offer, deliver it back. */
function relay(hsm: Hsm, collected: JournalItem[]): { stop: () => Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      const offer = await hsm.journal.takeOffer(50);
      if (offer === undefined) continue;
      collected.push(offer);
      await hsm.journal.deliver([offer]);
    }
  })();
  return { stop: async () => { running = false; await loop; } };
}

interface Journal {
  /** The backup the journal starts from (cluster initialised, activated, user made). */
  readonly backup: Uint8Array;
  /** The journal's entries after that backup: ENTRIES AES-256 key generations. */
  readonly entries: JournalItem[];
  /** The same changes as the device applied them (encoded change sets). */
  readonly changeSets: Uint8Array[];
  readonly authorities: DevelopmentAuthorities;
}

async function makeJournal(): Promise<Journal> {
  const authorities = await createDevelopmentAuthorities();
  const ca = await createDevelopmentCustomerCa();
  const first = await device(authorities, 'relayed');
  const csr = await first.cluster.createCsr(CLUSTER);
  await first.cluster.initialise({ certificatePem: await ca.signClusterCsr(csr), trustAnchorPem: ca.certificatePem, preCoPassword: PRECO, applianceCredential: 'bench-appliance-credential-0123' });
  const setup: JournalItem[] = [];
  const r1 = relay(first, setup);
  await first.activate(PRECO, ADMIN_PW);
  const admin = first.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('bench', 'bench-password', 'crypto-user');
  const user = first.openSession();
  await user.login('bench', 'bench-password');
  admin.close();
  await r1.stop();
  const sink = bufferSink();
  first.createBackup(sink, { clusterId: CLUSTER });
  const entries: JournalItem[] = [];
  const changeSets: Uint8Array[] = [];
  const unobserve = first.observeChanges((encoded) => changeSets.push(Uint8Array.from(encoded)));
  const r2 = relay(first, entries);
  for (let i = 0; i < ENTRIES; i++) await user.generateKey({ keyType: 'AES', bits: 256 }, { token: true });
  await r2.stop();
  unobserve();
  user.close();
  first.close();
  return { backup: sink.bytes(), entries, changeSets, authorities };
}

/** Entries per second a fresh HSM on a `kind` store, restored from the backup, applies while catching up. */
async function replayRate(j: Journal, kind: StoreKind, dir: string): Promise<number> {
  const hsm = await device(j.authorities, 'relayed', freshStore(kind, dir, `replay-${randomUUID()}`));
  try {
    await hsm.restoreBackup(bufferSource(j.backup));
    const start = performance.now();
    for (let i = 0; i < j.entries.length; i += JOURNAL_DELIVER_ENTRIES_MAX) {
      const result = await hsm.journal.deliver(j.entries.slice(i, i + JOURNAL_DELIVER_ENTRIES_MAX));
      if (result.fault !== undefined) throw new Error(`replay refused: ${result.fault.code} at ${result.fault.seq}`);
    }
    const seconds = (performance.now() - start) / 1000;
    if (hsm.journal.head().seq !== j.entries.at(-1)?.seq) throw new Error('replay did not reach the journal head');
    return j.entries.length / seconds;
  } finally {
    hsm.close();
  }
}

/** The same change sets applied with no journal, each as the device commits a change it makes
 * (its own transaction): decoded and applied onto an empty state on a `kind` store. */
function applyRate(j: Journal, kind: StoreKind, dir: string): number {
  const store = freshStore(kind, dir, `apply-${randomUUID()}`);
  try {
    const state = new DeviceState(store);
    const start = performance.now();
    for (const encoded of j.changeSets) state.apply(decodeChangeSet(encoded));
    return j.changeSets.length / ((performance.now() - start) / 1000);
  } finally {
    store.close();
  }
}

interface StoreSide {
  readonly name: string;
  readonly open: (tag: string) => Promise<MetadataStore>;
  /** A bare INSERT of one `bytes`-sized row per statement (autocommit), one writer: rows/s. */
  readonly bareInsert: (bytes: number) => Promise<number>;
  readonly close: () => Promise<void>;
}

async function appendRate(store: MetadataStore, cluster: string, entry: Uint8Array): Promise<number> {
  const start = performance.now();
  for (let seq = 1; seq <= APPENDS; seq++) await store.appendJournal(cluster, seq, entry);
  return APPENDS / ((performance.now() - start) / 1000);
}

/** RACERS writers each reading the head and appending after it; conflicts retried: net entries/s. */
async function racingRate(store: MetadataStore, cluster: string, entry: Uint8Array): Promise<{ rate: number; conflicts: number }> {
  let conflicts = 0;
  let appended = 0;
  const start = performance.now();
  const writer = async (): Promise<void> => {
    while (appended < APPENDS) {
      const head = await store.journalHead(cluster);
      try {
        await store.appendJournal(cluster, head + 1, entry);
        appended++;
      } catch (e) {
        if (!isCofferError(e, 'COFFER_JOURNAL_CONFLICT')) throw e;
        conflicts++;
      }
    }
  };
  await Promise.all(Array.from({ length: RACERS }, writer));
  return { rate: appended / ((performance.now() - start) / 1000), conflicts };
}

/** Rows/s of `rows` bare INSERTs of a `bytes`-sized row, one per commit, one writer, into a new SQLite
 * file at `path` with the metadata store's settings (WAL, synchronous FULL). */
export function sqliteBareInsertRate(path: string, bytes: number, rows: number): number {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    const value = randomBytes(bytes);
    const start = performance.now();
    for (let i = 1; i <= rows; i++) insert.run(i, value);
    return rows / ((performance.now() - start) / 1000);
  } finally {
    db.close();
  }
}

/** Rows/s of `rows` bare INSERTs of a `bytes`-sized row, one per commit (autocommit), one writer,
 * into a new table of a new schema `schema` (left for the caller to drop) on `admin`'s database. */
export async function postgresBareInsertRate(admin: pg.Client, schema: string, bytes: number, rows: number): Promise<number> {
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".t (k BIGINT PRIMARY KEY, v BYTEA NOT NULL)`);
  const value = randomBytes(bytes);
  const start = performance.now();
  for (let i = 1; i <= rows; i++) await admin.query(`INSERT INTO "${schema}".t (k, v) VALUES ($1, $2)`, [i, value]);
  return rows / ((performance.now() - start) / 1000);
}

function sqliteSide(dir: string): StoreSide {
  const stores: MetadataStore[] = [];
  let n = 0;
  return {
    name: 'SQLite (WAL, synchronous FULL)',
    open: (tag) => {
      const s = SqliteMetadataStore.open({ path: join(dir, `${tag}-${n++}.db`) });
      stores.push(s);
      return Promise.resolve(s);
    },
    bareInsert: (bytes) => Promise.resolve(sqliteBareInsertRate(join(dir, `bare-${n++}.db`), bytes, APPENDS)),
    close: async () => { for (const s of stores) await s.close(); },
  };
}

async function postgresSide(): Promise<StoreSide | string> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  try {
    await admin.connect();
  } catch (e) {
    return `PostgreSQL at ${POSTGRES_URL.replace(/:[^:@/]*@/, '@')} not reachable (${e instanceof Error ? e.message : String(e)})`;
  }
  const schemas: string[] = [];
  const stores: MetadataStore[] = [];
  const schemaName = (): string => `bench_journal_${process.pid}_${schemas.length}`;
  return {
    name: 'PostgreSQL (127.0.0.1, default fsync)',
    open: async () => {
      const schema = schemaName();
      schemas.push(schema);
      const s = await PostgresMetadataStore.open({ url: POSTGRES_URL, schema, connections: RACERS });
      stores.push(s);
      return s;
    },
    bareInsert: (bytes) => {
      const schema = schemaName();
      schemas.push(schema);
      return postgresBareInsertRate(admin, schema, bytes, APPENDS);
    },
    close: async () => {
      for (const s of stores) await s.close();
      for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => undefined);
      await admin.end();
    },
  };
}

async function storeRows(side: StoreSide, entryBytes: number): Promise<Row[]> {
  const entry = randomBytes(entryBytes);
  const bare: number[] = [];
  const single: number[] = [];
  const racing: number[] = [];
  let conflicts = 0;
  for (let r = 0; r < ROUNDS; r++) {
    bare.push(await side.bareInsert(entryBytes));
    single.push(await appendRate(await side.open('single'), CLUSTER, entry));
    const raced = await racingRate(await side.open('racing'), CLUSTER, entry);
    racing.push(raced.rate);
    conflicts += raced.conflicts;
  }
  const anchor = { anchorName: `bare INSERT of a ${entryBytes}-byte row, 1 writer`, anchorValue: median(bare) };
  return [
    { name: `${side.name}: appendJournal, 1 writer`, value: median(single), unit: 'entries/s', ...anchor },
    { name: `${side.name}: appendJournal, ${RACERS} writers racing for the next seq`, value: median(racing), unit: 'entries/s', ...anchor, note: `${Math.round(conflicts / ROUNDS)} conflicts per round` },
  ];
}

export async function run(): Promise<Section> {
  const title = 'Cluster journal';
  const rows: Row[] = [];
  const notes: string[] = [];
  const journal = await makeJournal();
  const sizes = journal.entries.map((e) => e.entry.length);
  const entryBytes = Math.round(median(sizes));
  const replayDir = mkdtempSync(join(tmpdir(), 'coffer-journal-replay-'));
  try {
    for (const kind of ['memory', 'sealed'] as const) {
      const replay: number[] = [];
      const apply: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        replay.push(await replayRate(journal, kind, replayDir));
        apply.push(applyRate(journal, kind, replayDir));
      }
      const where = kind === 'memory' ? 'in memory' : 'on a sealed store (sync full)';
      rows.push({ name: `Replay: ${ENTRIES} entries delivered to a catching-up HSM ${where} (batches of ${JOURNAL_DELIVER_ENTRIES_MAX})`, value: median(replay), unit: 'entries/s', anchorName: `the same change sets applied with no journal ${where} (DeviceState.apply, one commit each)`, anchorValue: median(apply) });
    }
  } finally {
    rmSync(replayDir, { recursive: true, force: true });
  }
  notes.push(
    `Replay: each of ${ROUNDS} rounds restores the backup taken before the entries into a fresh HSM and delivers all ${ENTRIES} (AES-256 token key generations by a crypto user, median sealed entry ${entryBytes} bytes); each entry is opened (HKDF + AES-GCM) against the head and its chain hash checked, and the entries of a delivery are committed in groups (one store transaction per ${JOURNAL_APPLY_GROUP_BYTES_MAX / 1024 / 1024} MiB of entries, with the head: docs/device.md "The journal"). The HSM is in memory, or on a sealed store in a file with sync full as an HSM keeps its state (an fsync per commit). The anchor decodes and applies the same change sets onto an empty state on the same kind of store, one commit per change set as the device commits the changes it makes with no journal: no opening, no chain.`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'coffer-journal-bench-'));
  try {
    const sides: StoreSide[] = [sqliteSide(dir)];
    const postgres = await postgresSide();
    if (typeof postgres === 'string') notes.push(`PostgreSQL rows skipped: ${postgres}.`);
    else sides.push(postgres);
    for (const side of sides) {
      try {
        rows.push(...(await storeRows(side, entryBytes)));
      } finally {
        await side.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push(
    `Store: per round, ${APPENDS} appends of one ${entryBytes}-byte entry (the median entry above) into a fresh journal, each its own transaction; "racing" has ${RACERS} writers on one store (PostgreSQL: a pool of ${RACERS} connections; SQLite: one connection, its calls synchronous) each reading the head and appending after it, a conflict (COFFER_JOURNAL_CONFLICT) retried. The bare INSERT writes rows of the same size into a table of (integer key, blob), one statement per commit, one writer, in the same database kind. ${ROUNDS} rounds, medians.`,
  );
  return { title, rows, notes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const s = await run();
  console.log(renderMarkdown([s], `# Journal bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
