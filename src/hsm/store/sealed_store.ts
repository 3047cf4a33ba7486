// The device's sealed store (docs/architecture.md §4): the RecordStore adapter that keeps an HSM's state in
// one SQLite file, every record sealed with AES-256-GCM under the device storage key
// (formats/sealed_record.ts). Modelled on Vault's barrier_aes_gcm.go: the physical layer (SQLite)
// sees only namespaces, record ids and ciphertext; a key-check record sealed at creation tells a
// wrong storage key apart from a damaged record.
//
// Durability: WAL journal with synchronous=FULL by default. A commit returns only after its WAL
// frames are fsync'd, so it survives a process crash and a power loss; an interrupted commit is
// rolled back on the next open (SQLite's WAL recovery). 'normal' skips that fsync: still
// crash-consistent for a process crash, but a power loss may drop the newest commits.
//
// Cost: a mutation writes only its own rows and its namespace's summary row (a B-tree update in one
// file), O(record), never O(store). No plaintext cache: get() reads and decrypts each time, and
// list() streams in pages; the device layer above keeps its own in-memory indexes.
//
// Staging (a restore): staged records are sealed under their final namespace and id into a TEMP
// table — SQLite's temporary database, a 0600 file in the host's temporary directory that is
// unlinked as soon as it is created, so it is gone on close or crash — in transactions of
// SEALED_STAGE_BATCH_RECORDS; adopting them is one `INSERT … SELECT` in the adopting transaction,
// no decryption. The live tables never hold a staged row before that transaction commits. Dropping
// a staging deletes the whole temporary database, which closes that file and frees its space.
//
// One owner: the file is opened with locking_mode=EXCLUSIVE, so a second process (or connection)
// cannot open a device's store while it is in use (COFFER_STORE_IN_USE).

import Database from 'better-sqlite3';
import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, openSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { assert } from '../../assert.js';
import { CofferError, fail, isCofferError } from '../../errors.js';
import { constantTimeEqual, SecretBytes } from '../../crypto/secret_bytes.js';
import { SEALED_LIST_PAGE_RECORDS, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX, SEALED_STAGE_BATCH_RECORDS } from '../../formats/limits.js';
import {
  openRecord,
  RecordKind,
  sealRecord,
  SEALED_RECORD_NONCE_BYTES,
  SEALED_RECORD_OVERHEAD_BYTES,
  STORAGE_KEY_BYTES,
  STORE_ID_BYTES,
  type RecordBinding,
} from '../../formats/sealed_record.js';
import { systemRandom, type Random } from '../ports.js';
import { EMPTY_SUMMARY, idFacts, type NamespaceSummary, type RecordStaging, type RecordStore, type RecordTx } from './store_port.js';

/** The device secret the storage key is derived from (docs/architecture.md §4; docs/threat-model.md). */
export const DEVICE_SECRET_BYTES = 32;
/** HKDF info (RFC 5869 §2.3): names the key's one purpose and the format version. */
export const STORAGE_KEY_INFO = 'coffer/v1/sealed-store/storage-key';
/** SQLite `user_version` of the schema this build writes and reads. Version 1 (no `stats` table) is
 * upgraded to 2 when opened. */
export const SEALED_STORE_SCHEMA_VERSION = 2;

const KEY_CHECK_PLAINTEXT = new TextEncoder().encode('coffer sealed store key check v1');
const KEY_CHECK_NS = 'meta';
const KEY_CHECK_ID = 'key_check';
const STORE_FORMAT = 'sealed store';
/** Nonces are drawn from the CSPRNG 256 at a time: one randomBytes call costs as much as a small
 * GCM encryption. Nonces are public; each pool byte is used once. */
const NONCE_POOL_BYTES = SEALED_RECORD_NONCE_BYTES * 256;
/** Page cache of the temporary database that holds a staging (KiB; SQLite's own default is 16 MiB
 * per database): staged rows are written once in key order and read once by the adopting
 * `INSERT … SELECT`, so a small cache costs nothing and keeps a restore's native memory down. */
const STAGING_CACHE_KIB = 2048;

/**
 * The device storage key: HKDF-SHA-256 (RFC 5869) of the 32-byte device secret, empty salt (the
 * secret is already uniformly random, §3.1), info STORAGE_KEY_INFO, 32 bytes out. The caller
 * keeps ownership of `deviceSecret`; the result is a new SecretBytes the caller must destroy.
 */
export function deriveStorageKey(deviceSecret: SecretBytes): SecretBytes {
  if (deviceSecret.length !== DEVICE_SECRET_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expectedBytes: DEVICE_SECRET_BYTES });
  const okm = deviceSecret.use((ikm) => hkdfSync('sha256', ikm, new Uint8Array(0), STORAGE_KEY_INFO, STORAGE_KEY_BYTES));
  return SecretBytes.adopt(new Uint8Array(okm));
}

export interface SealedStoreOptions {
  /** The store's SQLite file. SQLite adds `<path>-wal` beside it while open. */
  readonly path: string;
  /** 32-byte device storage key (see deriveStorageKey). Copied into a KeyObject; the caller keeps
   * ownership of its SecretBytes and may destroy it once open/create returns. */
  readonly storageKey: SecretBytes;
  /** 'full' (default): each commit is fsync'd. 'normal': see the module header. */
  readonly sync?: 'full' | 'normal';
  /** Source of nonces and of the store id (tests inject one). */
  readonly random?: Random;
}

interface Statements {
  get: Database.Statement<[string, Buffer], Buffer>;
  length: Database.Statement<[string, Buffer], number>;
  put: Database.Statement<[string, Buffer, Uint8Array]>;
  del: Database.Statement<[string, Buffer], number>;
  clear: Database.Statement<[string]>;
  namespaces: Database.Statement<[], string>;
  count: Database.Statement<[string], number>;
  pageFirst: Database.Statement<[string, number], [Buffer, Buffer]>;
  pageAfter: Database.Statement<[string, Buffer, number], [Buffer, Buffer]>;
  sizesFirst: Database.Statement<[string, number], [Buffer, number]>;
  sizesAfter: Database.Statement<[string, Buffer, number], [Buffer, number]>;
  summary: Database.Statement<[string], [number, number, number, number]>;
  summaryAdd: Database.Statement<[string, number, number, number, number]>;
  summaryDrop: Database.Statement<[string]>;
  summaryPrune: Database.Statement<[string]>;
}

/** Per-namespace changes to the summaries made by one transaction, written when it commits. */
type SummaryDelta = Map<string, { records: number; idBytes: number; valueBytes: number; astralIds: number }>;

const STATS_SCHEMA = `
  CREATE TABLE stats (
    ns TEXT PRIMARY KEY, records INTEGER NOT NULL, id_bytes INTEGER NOT NULL, value_bytes INTEGER NOT NULL, astral_ids INTEGER NOT NULL
  ) WITHOUT ROWID;
`;

const SCHEMA = `
  CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
  CREATE TABLE records (ns TEXT NOT NULL, id BLOB NOT NULL, v BLOB NOT NULL, PRIMARY KEY (ns, id)) WITHOUT ROWID;
  ${STATS_SCHEMA}
  PRAGMA user_version = ${SEALED_STORE_SCHEMA_VERSION};
`;

/** The staging table: sealed rows under their final (ns, id), with the id facts the summary needs. */
const STAGING_SCHEMA = `
  CREATE TEMP TABLE staging (
    ns TEXT NOT NULL, id BLOB NOT NULL, v BLOB NOT NULL, id_bytes INTEGER NOT NULL, astral INTEGER NOT NULL, PRIMARY KEY (ns, id)
  ) WITHOUT ROWID;
`;

/** Distinct namespaces by skip-scan: one index seek per namespace, not a pass over every record. */
const NAMESPACES_SQL = `
  WITH RECURSIVE n(ns) AS (
    SELECT min(ns) FROM records
    UNION ALL SELECT (SELECT min(ns) FROM records WHERE ns > n.ns) FROM n WHERE n.ns IS NOT NULL
  ) SELECT ns FROM n WHERE ns IS NOT NULL
`;

export class SealedStore implements RecordStore {
  readonly #db: Database.Database;
  readonly #key: KeyObject;
  readonly #storeId: Uint8Array;
  readonly #random: Random;
  readonly #stmts: Statements;
  readonly #runTx: Database.Transaction<(fn: (tx: RecordTx) => unknown, tx: RecordTx) => unknown>;
  #inTx = false;
  /** The open transaction's summary changes (set while one runs). */
  #delta: SummaryDelta | undefined;
  #staging: SealedStaging | undefined;
  #closed = false;
  #noncePool: Uint8Array = new Uint8Array(0);
  #nonceAt = 0;

  private constructor(db: Database.Database, key: KeyObject, storeId: Uint8Array, random: Random) {
    this.#db = db;
    this.#key = key;
    this.#storeId = storeId;
    this.#random = random;
    this.#stmts = {
      get: db.prepare<[string, Buffer], Buffer>('SELECT v FROM records WHERE ns = ? AND id = ?').pluck(),
      length: db.prepare<[string, Buffer], number>('SELECT length(v) FROM records WHERE ns = ? AND id = ?').pluck(),
      put: db.prepare<[string, Buffer, Uint8Array]>('INSERT OR REPLACE INTO records (ns, id, v) VALUES (?, ?, ?)'),
      del: db.prepare<[string, Buffer], number>('DELETE FROM records WHERE ns = ? AND id = ? RETURNING length(v)').pluck(),
      clear: db.prepare<[string]>('DELETE FROM records WHERE ns = ?'),
      namespaces: db.prepare<[], string>(NAMESPACES_SQL).pluck(),
      count: db.prepare<[string], number>('SELECT count(*) FROM records WHERE ns = ?').pluck(),
      // Rows as arrays, not objects: list() is the device's full scan at start and a backup's one pass.
      pageFirst: db.prepare<[string, number], [Buffer, Buffer]>('SELECT id, v FROM records WHERE ns = ? ORDER BY id LIMIT ?').raw(),
      pageAfter: db.prepare<[string, Buffer, number], [Buffer, Buffer]>('SELECT id, v FROM records WHERE ns = ? AND id > ? ORDER BY id LIMIT ?').raw(),
      sizesFirst: db.prepare<[string, number], [Buffer, number]>('SELECT id, length(v) FROM records WHERE ns = ? ORDER BY id LIMIT ?').raw(),
      sizesAfter: db.prepare<[string, Buffer, number], [Buffer, number]>('SELECT id, length(v) FROM records WHERE ns = ? AND id > ? ORDER BY id LIMIT ?').raw(),
      summary: db.prepare<[string], [number, number, number, number]>('SELECT records, id_bytes, value_bytes, astral_ids FROM stats WHERE ns = ?').raw(),
      summaryAdd: db.prepare<[string, number, number, number, number]>(`
        INSERT INTO stats (ns, records, id_bytes, value_bytes, astral_ids) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (ns) DO UPDATE SET records = records + excluded.records, id_bytes = id_bytes + excluded.id_bytes,
          value_bytes = value_bytes + excluded.value_bytes, astral_ids = astral_ids + excluded.astral_ids`),
      summaryDrop: db.prepare<[string]>('DELETE FROM stats WHERE ns = ?'),
      summaryPrune: db.prepare<[string]>('DELETE FROM stats WHERE ns = ? AND records = 0'),
    };
    this.#runTx = db.transaction((fn: (tx: RecordTx) => unknown, tx: RecordTx) => {
      const result = fn(tx);
      // Throwing here rolls the SQLite transaction back: nothing of an async fn lands.
      assert(!(result instanceof Promise), 'transactions are synchronous');
      this.#writeSummaries();
      return result;
    });
  }

  /**
   * Creates a new, empty store at `path` (which must not exist) and opens it. The file is built
   * beside its final name and linked into place only when complete, so a crash during creation
   * leaves no half-made store behind. File mode 0600: only the node's user may read it.
   */
  static create(options: SealedStoreOptions): SealedStore {
    checkStorageKey(options.storageKey);
    if (existsSync(options.path)) fail('COFFER_STORE_EXISTS', { path: options.path });
    const staging = `${options.path}.creating`;
    rmSync(staging, { force: true });
    rmSync(`${staging}-wal`, { force: true });
    closeSync(openSync(staging, 'wx', 0o600));
    const db = new Database(staging, { fileMustExist: true, timeout: 0 });
    try {
      db.pragma('journal_mode = WAL');
      const random = options.random ?? systemRandom;
      const storeId = random.bytes(STORE_ID_BYTES);
      const key = options.storageKey.use((k) => createSecretKey(k));
      const check = sealRecord(key, keyCheckBinding(storeId), KEY_CHECK_PLAINTEXT, random.bytes(SEALED_RECORD_NONCE_BYTES));
      db.transaction(() => {
        db.exec(SCHEMA);
        const put = db.prepare<[string, Uint8Array]>('INSERT INTO meta (k, v) VALUES (?, ?)');
        put.run('store_id', storeId);
        put.run(KEY_CHECK_ID, check);
      })();
    } finally {
      db.close(); // checkpoints the WAL into the file and removes it
    }
    fsyncPath(staging);
    try {
      linkSync(staging, options.path); // atomic, and refuses to replace a store created meanwhile
    } catch (e) {
      rmSync(staging, { force: true });
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') fail('COFFER_STORE_EXISTS', { path: options.path });
      throw e;
    }
    rmSync(staging);
    fsyncPath(dirname(options.path));
    return SealedStore.open(options);
  }

  /** Opens the existing store at `path`, takes its lock and checks the storage key against the
   * key-check record: a wrong key is COFFER_STORE_WRONG_DEVICE here, never garbage later. */
  static open(options: SealedStoreOptions): SealedStore {
    checkStorageKey(options.storageKey);
    if (!existsSync(options.path)) fail('COFFER_STORE_NOT_FOUND', { path: options.path });
    const db = new Database(options.path, { fileMustExist: true, timeout: 0 });
    try {
      configure(db, options.sync ?? 'full');
      const meta = db.prepare<[string], Buffer>('SELECT v FROM meta WHERE k = ?').pluck();
      const storeId = meta.get('store_id');
      const check = meta.get(KEY_CHECK_ID);
      if (storeId?.length !== STORE_ID_BYTES || check === undefined) fail('COFFER_STORE_TAMPERED', { part: 'meta' });
      const key = options.storageKey.use((k) => createSecretKey(k));
      verifyKeyCheck(key, new Uint8Array(storeId), check);
      return new SealedStore(db, key, new Uint8Array(storeId), options.random ?? systemRandom);
    } catch (e) {
      db.close();
      throw storeError(e);
    }
  }

  /** This store's random id (hex), bound into every record's AAD. Not secret. */
  get storeId(): string {
    return Buffer.from(this.#storeId).toString('hex');
  }

  get(ns: string, id: string): Uint8Array | undefined {
    this.#check();
    const sealed = this.#read(() => this.#stmts.get.get(ns, idKey(id)));
    return sealed === undefined ? undefined : this.#unseal(ns, id, sealed);
  }

  /** Streams a namespace in ascending id order (UTF-16 code-unit order, as the port and JS sort
   * define it), SEALED_LIST_PAGE_RECORDS rows per query; writes between steps are allowed. */
  *list(ns: string): IterableIterator<[string, Uint8Array]> {
    for (const rows of this.#pages(ns, this.#stmts.pageFirst, this.#stmts.pageAfter)) {
      for (const [key, sealed] of rows) {
        const id = idFromKey(key);
        yield [id, this.#unseal(ns, id, sealed)];
      }
    }
  }

  count(ns: string): number {
    this.#check();
    return this.#read(() => this.#stmts.count.get(ns)) ?? 0;
  }

  /**
   * Value lengths from the envelope lengths, nothing decrypted: a sealed record is its plaintext plus
   * SEALED_RECORD_OVERHEAD_BYTES (formats/sealed_record.ts). Not authenticated here: whoever reads
   * the values afterwards (get, list) authenticates them, and finds any record altered on disk.
   */
  *sizes(ns: string): IterableIterator<[string, number]> {
    for (const rows of this.#pages(ns, this.#stmts.sizesFirst, this.#stmts.sizesAfter)) {
      for (const [key, n] of rows) yield [idFromKey(key), Math.max(0, n - SEALED_RECORD_OVERHEAD_BYTES)];
    }
  }

  /**
   * The namespace's row of the `stats` table, kept in the same transactions as its records. Not
   * authenticated: a reader that relies on it (a backup sizing its body) counts what it then reads
   * and refuses a mismatch as COFFER_STORE_TAMPERED; a row that cannot be a summary is refused here.
   */
  summary(ns: string): NamespaceSummary {
    this.#check();
    const row = this.#read(() => this.#stmts.summary.get(ns));
    if (row === undefined) return EMPTY_SUMMARY;
    const [records, idBytes, valueBytes, astralIds] = row;
    const counts = [records, idBytes, valueBytes, astralIds].every((n) => Number.isSafeInteger(n) && n >= 0);
    const sane = counts && records > 0 && astralIds <= records && idBytes <= records * SEALED_RECORD_ID_BYTES_MAX && valueBytes <= records * SEALED_RECORD_BYTES_MAX;
    if (!sane) fail('COFFER_STORE_TAMPERED', { part: 'stats' });
    return { records, idBytes, valueBytes, astralIds };
  }

  /** Sorted here, not in SQL: SQLite orders TEXT by UTF-8 bytes, the port by UTF-16 code units. */
  namespaces(): string[] {
    this.#check();
    return this.#read(() => this.#stmts.namespaces.all()).sort();
  }

  /** Runs `fn` in one SQLite write transaction: every write lands, or (fn throws, the process
   * dies) none does. Reads through `tx` see the transaction's own writes. Not re-entrant. */
  transaction<T>(fn: (tx: RecordTx) => T): T {
    this.#check();
    assert(!this.#inTx, 'sealed store transactions do not nest');
    this.#staging?.commitBatch(); // a staging batch is the temp database's own; it must not span this one
    let live = true;
    const open = (): void => assert(live, 'transaction handle used after its transaction');
    const tx: RecordTx = {
      get: (ns, id) => {
        open();
        return this.get(ns, id);
      },
      put: (ns, id, value) => {
        open();
        this.#put(ns, id, value);
      },
      delete: (ns, id) => {
        open();
        this.#delete(ns, id);
      },
      clear: (ns) => {
        open();
        this.#clear(ns);
      },
      adopt: (staging) => {
        open();
        const own = this.#staging;
        assert(own !== undefined && staging === own, 'adopt takes the staging this store opened');
        this.#adopt(own);
      },
    };
    this.#inTx = true;
    this.#delta = new Map();
    try {
      return this.#runTx.immediate(fn, tx) as T;
    } catch (e) {
      throw storeError(e);
    } finally {
      live = false;
      this.#inTx = false;
      this.#delta = undefined;
    }
  }

  /** Opens the staging area: a TEMP table, created empty (module header). */
  stage(): RecordStaging {
    this.#check();
    assert(!this.#inTx, 'a staging is not opened inside a transaction');
    assert(this.#staging === undefined, 'one staging at a time');
    const staging = new SealedStaging(this.#db, {
      seal: (ns, id, value) => sealRecord(this.#key, this.#binding(ns, id), value, this.#nonce()),
      inTransaction: () => this.#inTx,
      release: () => {
        if (this.#staging === staging) this.#staging = undefined;
      },
    });
    this.#staging = staging;
    return staging;
  }

  /**
   * After a zeroise: deleted records are sealed, but SQLite leaves their bytes in freed pages and
   * in the WAL, readable with this device's storage key (which zeroise keeps). VACUUM rewrites the
   * file from the live records only, and a TRUNCATE checkpoint empties the WAL to 0 bytes. The
   * temporary database (a staging's) is deleted. What the file system keeps of old blocks is the
   * host's boundary (docs/threat-model.md).
   */
  scrub(): void {
    this.#check();
    assert(!this.#inTx, 'sealed store scrubbed inside its own transaction');
    this.#staging?.discard();
    try {
      resetTemporaryDatabase(this.#db); // a staging discarded inside a transaction stayed till now
      this.#db.exec('VACUUM');
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (e) {
      throw storeError(e);
    }
  }

  /** Closes the file (checkpointing the WAL) and drops a staging. Idempotent; later calls fail
   * COFFER_STORE_CLOSED. */
  close(): void {
    assert(!this.#inTx, 'sealed store closed inside its own transaction');
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#staging?.discard();
    } finally {
      this.#db.close(); // deletes the temporary database with whatever it still held
    }
  }

  /** Pages of a namespace's rows in key order, keyset-paginated (each query seeks past the last key). */
  *#pages<R extends [Buffer, unknown]>(
    ns: string,
    first: Database.Statement<[string, number], R>,
    after: Database.Statement<[string, Buffer, number], R>,
  ): Generator<R[]> {
    let last: Buffer | undefined;
    for (;;) {
      this.#check();
      const from = last;
      const rows = this.#read(() => (from === undefined ? first.all(ns, SEALED_LIST_PAGE_RECORDS) : after.all(ns, from, SEALED_LIST_PAGE_RECORDS)));
      // The last key is read before the page is handed out (idFromKey leaves keys as they are).
      last = rows[rows.length - 1]?.[0];
      yield rows;
      if (rows.length < SEALED_LIST_PAGE_RECORDS) return;
    }
  }

  #put(ns: string, id: string, value: Uint8Array): void {
    const key = idKey(id);
    const old = this.#stmts.length.get(ns, key);
    this.#stmts.put.run(ns, key, sealRecord(this.#key, this.#binding(ns, id), value, this.#nonce()));
    const facts = old === undefined ? idFacts(id) : undefined;
    this.#count(ns, facts === undefined ? 0 : 1, facts?.bytes ?? 0, value.length - (old === undefined ? 0 : old - SEALED_RECORD_OVERHEAD_BYTES), facts?.astral === true ? 1 : 0);
  }

  #delete(ns: string, id: string): void {
    const old = this.#stmts.del.get(ns, idKey(id));
    if (old === undefined) return;
    const facts = idFacts(id);
    this.#count(ns, -1, -facts.bytes, -(old - SEALED_RECORD_OVERHEAD_BYTES), facts.astral ? -1 : 0);
  }

  /** One statement for the records, one for the summary, whatever the namespace's size. */
  #clear(ns: string): void {
    this.#stmts.clear.run(ns);
    this.#stmts.summaryDrop.run(ns);
    this.#delta?.delete(ns);
  }

  /** Inside the adopting transaction: each staged namespace cleared, then filled by one INSERT … SELECT
   * of the sealed rows, and its summary taken from the staged rows' own columns. */
  #adopt(staging: SealedStaging): void {
    const tallies = staging.spend();
    for (const t of tallies) this.#clear(t.ns);
    this.#db.exec('INSERT INTO main.records (ns, id, v) SELECT ns, id, v FROM temp.staging');
    for (const t of tallies) this.#stmts.summaryAdd.run(t.ns, t.records, t.idBytes, t.sealedBytes - t.records * SEALED_RECORD_OVERHEAD_BYTES, t.astralIds);
  }

  #count(ns: string, records: number, idBytes: number, valueBytes: number, astralIds: number): void {
    const delta = this.#delta;
    assert(delta !== undefined, 'summaries change inside a transaction');
    const d = delta.get(ns);
    if (d === undefined) {
      delta.set(ns, { records, idBytes, valueBytes, astralIds });
      return;
    }
    d.records += records;
    d.idBytes += idBytes;
    d.valueBytes += valueBytes;
    d.astralIds += astralIds;
  }

  /** The transaction's summary changes, written as its last statements (inside it). */
  #writeSummaries(): void {
    for (const [ns, d] of this.#delta ?? []) {
      if (d.records === 0 && d.idBytes === 0 && d.valueBytes === 0 && d.astralIds === 0) continue;
      this.#stmts.summaryAdd.run(ns, d.records, d.idBytes, d.valueBytes, d.astralIds);
      this.#stmts.summaryPrune.run(ns);
    }
  }

  /** A fresh 96-bit random nonce (SP 800-38D §8.2.2). */
  #nonce(): Uint8Array {
    if (this.#nonceAt + SEALED_RECORD_NONCE_BYTES > this.#noncePool.length) {
      this.#noncePool = this.#random.bytes(NONCE_POOL_BYTES);
      assert(this.#noncePool.length === NONCE_POOL_BYTES, 'Random returned the bytes asked for');
      this.#nonceAt = 0;
    }
    const nonce = this.#noncePool.subarray(this.#nonceAt, this.#nonceAt + SEALED_RECORD_NONCE_BYTES);
    this.#nonceAt += SEALED_RECORD_NONCE_BYTES;
    return nonce;
  }

  #binding(ns: string, id: string): RecordBinding {
    return { kind: RecordKind.record, storeId: this.#storeId, ns, id };
  }

  /** Decrypts one record; any failure but "newer format" means the bytes on disk were altered. */
  #unseal(ns: string, id: string, sealed: Uint8Array): Uint8Array {
    try {
      return openRecord(this.#key, this.#binding(ns, id), sealed);
    } catch (e) {
      if (isCofferError(e) && e.code !== 'COFFER_FORMAT_UNKNOWN_VERSION') fail('COFFER_STORE_TAMPERED', { ns }, e);
      throw e;
    }
  }

  #read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw storeError(e);
    }
  }

  #check(): void {
    if (this.#closed) fail('COFFER_STORE_CLOSED');
  }
}

/** What adopting a staging adds to a namespace (from the staged rows' own columns). */
interface StagedTally {
  readonly ns: string;
  readonly records: number;
  readonly idBytes: number;
  readonly sealedBytes: number;
  readonly astralIds: number;
}

/**
 * SealedStore's staging: the TEMP table `staging`, filled in transactions of the temporary database
 * alone (the live file and its WAL are not written, nothing is fsync'd) of at most
 * SEALED_STAGE_BATCH_RECORDS rows each. Dropped with the whole temporary database.
 */
class SealedStaging implements RecordStaging {
  readonly #db: Database.Database;
  readonly #owner: StagingOwner;
  readonly #insert: Database.Statement<[string, Buffer, Uint8Array, number, number]>;
  /** Rows in the open batch (0: no batch transaction open). */
  #batch = 0;
  #state: 'open' | 'spent' | 'dropped' = 'open';

  constructor(db: Database.Database, owner: StagingOwner) {
    this.#db = db;
    this.#owner = owner;
    try {
      resetTemporaryDatabase(db); // nothing should be there: each staging deletes its own
      db.exec(STAGING_SCHEMA);
      this.#insert = db.prepare('INSERT OR REPLACE INTO temp.staging (ns, id, v, id_bytes, astral) VALUES (?, ?, ?, ?, ?)');
    } catch (e) {
      owner.release();
      throw storeError(e);
    }
  }

  put(ns: string, id: string, value: Uint8Array): void {
    assert(this.#state === 'open', 'staging used after adopt or discard');
    assert(!this.#owner.inTransaction(), "staging writes happen outside the store's transactions");
    try {
      const sealed = this.#owner.seal(ns, id, value);
      const facts = idFacts(id);
      if (this.#batch === 0) this.#db.exec('BEGIN');
      this.#batch++;
      this.#insert.run(ns, idKey(id), sealed, facts.bytes, facts.astral ? 1 : 0);
      if (this.#batch === SEALED_STAGE_BATCH_RECORDS) this.commitBatch();
    } catch (e) {
      this.discard();
      throw storeError(e);
    }
  }

  /** Commits the open batch, if any (before a transaction of the store begins). A failure drops the
   * staging and is rethrown. */
  commitBatch(): void {
    if (this.#batch === 0) return;
    try {
      this.#db.exec('COMMIT');
      this.#batch = 0;
    } catch (e) {
      this.discard();
      throw storeError(e);
    }
  }

  /** For the adopting transaction: what each staged namespace holds. The staging is then spent. */
  spend(): StagedTally[] {
    assert(this.#state === 'open' && this.#batch === 0, 'a staging is adopted once, with no batch open');
    this.#state = 'spent';
    const rows = this.#db
      .prepare<[], [string, number, number, number, number]>('SELECT ns, count(*), sum(id_bytes), sum(length(v)), sum(astral) FROM temp.staging GROUP BY ns')
      .raw()
      .all();
    return rows.map(([ns, records, idBytes, sealedBytes, astralIds]) => ({ ns, records, idBytes, sealedBytes, astralIds }));
  }

  discard(): void {
    if (this.#state === 'dropped') return;
    this.#state = 'dropped';
    try {
      if (this.#batch > 0 && this.#db.inTransaction) this.#db.exec('ROLLBACK');
      this.#batch = 0;
      if (this.#db.open && !this.#db.inTransaction) resetTemporaryDatabase(this.#db);
    } finally {
      this.#owner.release();
    }
  }
}

/** What a staging needs of its store. */
interface StagingOwner {
  seal(ns: string, id: string, value: Uint8Array): Uint8Array;
  inTransaction(): boolean;
  release(): void;
}

/** Pragmas for an existing store, then its schema version (upgrading version 1). The first read takes
 * the exclusive lock. */
function configure(db: Database.Database, sync: 'full' | 'normal'): void {
  // Before any file access: with WAL this also keeps the WAL index in heap memory (no -shm file).
  db.pragma('locking_mode = EXCLUSIVE');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === 0) fail('COFFER_FORMAT_BAD_MAGIC', { format: STORE_FORMAT });
  if (version !== SEALED_STORE_SCHEMA_VERSION && version !== 1) {
    fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: STORE_FORMAT, version, supported: `1, ${SEALED_STORE_SCHEMA_VERSION}` });
  }
  const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
  assert(mode === 'wal', 'sealed store runs in WAL mode');
  db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
  // A staging lives in the temporary database: on disk (never the JS heap, whatever the build's
  // default), with a small cache.
  db.pragma('temp_store = FILE');
  db.pragma(`temp.cache_size = -${STAGING_CACHE_KIB}`);
  if (version === 1) upgradeFromVersion1(db);
}

/**
 * Deletes the temporary database — the staging table, its pages and its file (unlinked since it
 * was created, so its space is freed now rather than when the store closes): SQLite drops the
 * temporary database whenever temp_store changes. Not inside a transaction.
 */
function resetTemporaryDatabase(db: Database.Database): void {
  assert(!db.inTransaction, 'the temporary database is reset between transactions');
  db.pragma('temp_store = MEMORY');
  db.pragma('temp_store = FILE');
  db.pragma(`temp.cache_size = -${STAGING_CACHE_KIB}`);
}

/**
 * Version 1 had no `stats` table: one transaction creates it from the records' ids and envelope
 * lengths (nothing decrypted; the same pass sizes() makes) and sets version 2. A crash before the
 * commit leaves version 1, upgraded at the next open.
 */
function upgradeFromVersion1(db: Database.Database): void {
  db.transaction(() => {
    db.exec(STATS_SCHEMA);
    const tallies = new Map<string, [number, number, number, number]>();
    for (const [ns, key, n] of db.prepare<[], [string, Buffer, number]>('SELECT ns, id, length(v) FROM records').raw().iterate()) {
      const facts = idFacts(idFromKey(key));
      const t = tallies.get(ns) ?? [0, 0, 0, 0];
      tallies.set(ns, [t[0] + 1, t[1] + facts.bytes, t[2] + n - SEALED_RECORD_OVERHEAD_BYTES, t[3] + (facts.astral ? 1 : 0)]);
    }
    const insert = db.prepare('INSERT INTO stats (ns, records, id_bytes, value_bytes, astral_ids) VALUES (?, ?, ?, ?, ?)');
    for (const [ns, t] of tallies) insert.run(ns, ...t);
    db.pragma(`user_version = ${SEALED_STORE_SCHEMA_VERSION}`);
  }).immediate();
}

function verifyKeyCheck(key: KeyObject, storeId: Uint8Array, check: Uint8Array): void {
  let plaintext: Uint8Array;
  try {
    plaintext = openRecord(key, keyCheckBinding(storeId), check);
  } catch (e) {
    if (isCofferError(e, 'COFFER_CRYPTO_DECRYPT_FAILED')) fail('COFFER_STORE_WRONG_DEVICE');
    if (isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION')) throw e;
    return fail('COFFER_STORE_TAMPERED', { part: 'key check' }, e);
  }
  // Only the right key can produce a valid tag, so this holds unless the sealing code is wrong.
  assert(constantTimeEqual(plaintext, KEY_CHECK_PLAINTEXT), 'key check plaintext');
}

function keyCheckBinding(storeId: Uint8Array): RecordBinding {
  return { kind: RecordKind.keyCheck, storeId, ns: KEY_CHECK_NS, id: KEY_CHECK_ID };
}

function checkStorageKey(key: SecretBytes): void {
  if (key.length !== STORAGE_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expectedBytes: STORAGE_KEY_BYTES });
}

/**
 * Record ids are stored as UTF-16BE blobs: SQLite compares blobs with memcmp, which on big-endian
 * 16-bit units is exactly JavaScript's string order, so list() agrees with the port (and with
 * MemoryRecordStore) for every id, astral characters included.
 */
function idKey(id: string): Buffer {
  return Buffer.from(id, 'utf16le').swap16();
}

/** The id a key holds. The key is a buffer of this store's own (a fresh row from SQLite): it is
 * swapped in place and back, which spares a copy per record on the device's full scans. */
function idFromKey(key: Buffer): string {
  if (key.length % 2 !== 0) fail('COFFER_STORE_TAMPERED', { part: 'record id' });
  key.swap16();
  const id = key.toString('utf16le');
  key.swap16();
  return id;
}

/** SQLite failures that have a meaning for the device become typed errors; others pass through. */
function storeError(e: unknown): unknown {
  if (!(e instanceof Database.SqliteError)) return e;
  if (e.code.startsWith('SQLITE_BUSY') || e.code.startsWith('SQLITE_LOCKED')) return new CofferError('COFFER_STORE_IN_USE', {}, { cause: e });
  if (e.code === 'SQLITE_NOTADB') return new CofferError('COFFER_FORMAT_BAD_MAGIC', { format: STORE_FORMAT }, { cause: e });
  if (e.code.startsWith('SQLITE_CORRUPT')) return new CofferError('COFFER_STORE_TAMPERED', { part: 'sqlite' }, { cause: e });
  return e;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
