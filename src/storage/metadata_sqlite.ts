// The metadata store on SQLite (src/storage/metadata_port.ts; docs/metadata-store.md): the control
// plane's embedded default, one file through better-sqlite3, as the device's sealed store does
// (src/hsm/store/sealed_store.ts).
//
// Durability: WAL journal with synchronous=FULL. A commit returns only after its WAL frames are
// fsync'd, so a created cluster survives a process crash and a power loss.
//
// Sharing: unlike the sealed store, the file is not locked to one connection. Several processes may
// open it (WAL lets readers run beside the one writer); every write runs in a BEGIN IMMEDIATE
// transaction, which takes SQLite's write lock before it reads what it compares, so two writers
// never both win a compare-and-set. A writer waits up to SQLITE_BUSY_TIMEOUT_MS for that lock (the
// wait blocks this process's event loop: better-sqlite3 is synchronous), then fails
// COFFER_METADATA_UNAVAILABLE. Several service processes on several machines use PostgreSQL.
//
// Schema: `PRAGMA application_id` marks the file as Coffer metadata, `PRAGMA user_version` holds
// METADATA_SCHEMA_VERSION. A file of another application is COFFER_FORMAT_BAD_MAGIC; a newer
// schema COFFER_METADATA_SCHEMA_UNSUPPORTED. Tables (docs/metadata-store.md "SQLite"):
//   documents (collection, id) → parent, version, body      index (collection, parent, id)
//   journal (cluster_id, seq) → entry                       journal_heads cluster_id → seq
//   leases name → holder, expires_ms
// Text compares with SQLite's BINARY collation, i.e. by UTF-8 bytes; ids are ASCII, so that is the
// port's ascending order.
//
// `:memory:` keeps everything in this connection's memory (tests of other parts); nothing persists.

import Database from 'better-sqlite3';
import { closeSync, existsSync, openSync } from 'node:fs';
import { CofferError, fail } from '../errors.js';
import {
  checkAppend,
  checkCommit,
  checkId,
  checkLease,
  checkList,
  checkNatural,
  checkReadJournal,
  checkCollection,
  lockOrder,
  METADATA_SCHEMA_VERSION,
  ownBytes,
} from './metadata_checks.js';
import type { Collection, DocumentWrite, JournalEntry, Lease, ListQuery, MetadataStore, StoredDocument } from './metadata_port.js';

/** `PRAGMA application_id` of a metadata file: "CfMd" in ASCII (sqlite.org/fileformat2.html §1.3.12). */
export const METADATA_SQLITE_APPLICATION_ID = 0x43664d64;
/** How long a writer waits for another process's write transaction before giving up. Commits are a
 * few rows; a journal append writes at most one 16 MiB entry, which an fsync'd disk takes well under
 * a second to write. */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

const FORMAT = 'metadata store';

const SCHEMA = `
  CREATE TABLE documents (
    collection TEXT NOT NULL, id TEXT NOT NULL, parent TEXT, version INTEGER NOT NULL CHECK (version >= 1), body TEXT NOT NULL,
    PRIMARY KEY (collection, id)
  ) WITHOUT ROWID;
  CREATE INDEX documents_parent ON documents (collection, parent, id);
  CREATE TABLE journal (
    cluster_id TEXT NOT NULL, seq INTEGER NOT NULL CHECK (seq >= 1), entry BLOB NOT NULL,
    PRIMARY KEY (cluster_id, seq)
  );
  CREATE TABLE journal_heads (cluster_id TEXT PRIMARY KEY, seq INTEGER NOT NULL CHECK (seq >= 1)) WITHOUT ROWID;
  CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
  PRAGMA application_id = ${METADATA_SQLITE_APPLICATION_ID};
  PRAGMA user_version = ${METADATA_SCHEMA_VERSION};
`;

export interface SqliteMetadataOptions {
  /** The database file, created (mode 0600) if absent; SQLite keeps `<path>-wal` and `<path>-shm`
   * beside it. `:memory:` for a private in-memory store. */
  readonly path: string;
  /** How long a write waits for another connection's write lock; default SQLITE_BUSY_TIMEOUT_MS. */
  readonly busyTimeoutMs?: number;
}

type DocRow = [parent: string | null, version: number, body: string];

interface Statements {
  get: Database.Statement<[string, string], DocRow>;
  insert: Database.Statement<[string, string, string | null, string]>;
  update: Database.Statement<[string | null, string, string, string, number], number>;
  delete: Database.Statement<[string, string, number]>;
  journalHead: Database.Statement<[string], number>;
  journalInsert: Database.Statement<[string, number, Uint8Array]>;
  journalSetHead: Database.Statement<[string, number]>;
  journalRead: Database.Statement<[string, number, number], [number, Buffer]>;
  journalCompact: Database.Statement<[string, number]>;
  lease: Database.Statement<[string], [string, number]>;
  leaseSet: Database.Statement<[string, string, number]>;
  leaseRelease: Database.Statement<[string, string]>;
}

export class SqliteMetadataStore implements MetadataStore {
  readonly #db: Database.Database;
  readonly #stmts: Statements;
  /** list() statements by shape (parent filter, afterId), prepared on first use. */
  readonly #listStmts = new Map<string, Database.Statement<unknown[], [string, string | null, number, string]>>();
  #closed = false;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#stmts = {
      get: db.prepare<[string, string], DocRow>('SELECT parent, version, body FROM documents WHERE collection = ? AND id = ?').raw(),
      insert: db.prepare('INSERT INTO documents (collection, id, parent, version, body) VALUES (?, ?, ?, 1, ?) ON CONFLICT DO NOTHING'),
      update: db
        .prepare<[string | null, string, string, string, number], number>(
          'UPDATE documents SET parent = ?, body = ?, version = version + 1 WHERE collection = ? AND id = ? AND version = ? RETURNING version',
        )
        .pluck(),
      delete: db.prepare('DELETE FROM documents WHERE collection = ? AND id = ? AND version = ?'),
      journalHead: db.prepare<[string], number>('SELECT seq FROM journal_heads WHERE cluster_id = ?').pluck(),
      journalInsert: db.prepare('INSERT INTO journal (cluster_id, seq, entry) VALUES (?, ?, ?)'),
      journalSetHead: db.prepare('INSERT INTO journal_heads (cluster_id, seq) VALUES (?, ?) ON CONFLICT (cluster_id) DO UPDATE SET seq = excluded.seq'),
      journalRead: db.prepare<[string, number, number], [number, Buffer]>('SELECT seq, entry FROM journal WHERE cluster_id = ? AND seq >= ? ORDER BY seq LIMIT ?').raw(),
      journalCompact: db.prepare('DELETE FROM journal WHERE cluster_id = ? AND seq < ?'),
      lease: db.prepare<[string], [string, number]>('SELECT holder, expires_ms FROM leases WHERE name = ?').raw(),
      leaseSet: db.prepare('INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms'),
      leaseRelease: db.prepare('DELETE FROM leases WHERE name = ? AND holder = ?'),
    };
  }

  /** Opens the store at `options.path`, creating the file and its schema if absent. */
  static open(options: SqliteMetadataOptions): SqliteMetadataStore {
    const memory = options.path === ':memory:';
    if (!memory && !existsSync(options.path)) createEmptyFile(options.path);
    let db: Database.Database;
    try {
      db = new Database(options.path, { fileMustExist: !memory, timeout: options.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS });
    } catch (e) {
      throw sqliteError(e);
    }
    try {
      prepareSchema(db, memory);
      return new SqliteMetadataStore(db);
    } catch (e) {
      db.close();
      throw sqliteError(e);
    }
  }

  get(collection: Collection, id: string): Promise<StoredDocument | undefined> {
    return settle(() => {
      checkCollection(collection);
      checkId(id, 'id');
      const row = this.#run(() => this.#stmts.get.get(collection, id));
      return row === undefined ? undefined : { collection, id, parent: row[0], version: row[1], body: row[2] };
    });
  }

  list(collection: Collection, query: ListQuery): Promise<StoredDocument[]> {
    return settle(() => {
      checkList(collection, query);
      const params: unknown[] = [collection];
      if (query.parent !== undefined) params.push(query.parent);
      if (query.afterId !== undefined) params.push(query.afterId);
      params.push(query.limit);
      const rows = this.#run(() => this.#listStatement(query.parent !== undefined, query.afterId !== undefined).all(...params));
      return rows.map(([id, parent, version, body]) => ({ collection, id, parent, version, body }));
    });
  }

  commit(writes: readonly DocumentWrite[]): Promise<number[]> {
    return settle(() => {
      checkCommit(writes);
      return this.#write(() => {
        const versions = new Array<number>(writes.length).fill(0);
        for (const i of lockOrder(writes)) versions[i] = this.#apply(writes[i]!, i);
        return versions;
      });
    });
  }

  appendJournal(clusterId: string, seq: number, entry: Uint8Array): Promise<void> {
    return settle(() => {
      checkAppend(clusterId, seq, entry);
      this.#write(() => {
        const head = this.#stmts.journalHead.get(clusterId) ?? 0;
        if (seq !== head + 1) fail('COFFER_JOURNAL_CONFLICT', { seq, head });
        this.#stmts.journalInsert.run(clusterId, seq, entry);
        this.#stmts.journalSetHead.run(clusterId, seq);
      });
    });
  }

  readJournal(clusterId: string, fromSeq: number, limit: number): Promise<JournalEntry[]> {
    return settle(() => {
      checkReadJournal(clusterId, fromSeq, limit);
      const rows = this.#run(() => this.#stmts.journalRead.all(clusterId, fromSeq, limit));
      return rows.map(([seq, entry]) => ({ clusterId, seq, entry: ownBytes(entry) }));
    });
  }

  journalHead(clusterId: string): Promise<number> {
    return settle(() => {
      checkId(clusterId, 'clusterId');
      return this.#run(() => this.#stmts.journalHead.get(clusterId)) ?? 0;
    });
  }

  compactJournal(clusterId: string, beforeSeq: number): Promise<void> {
    return settle(() => {
      checkId(clusterId, 'clusterId');
      checkNatural(beforeSeq, 'beforeSeq');
      this.#write(() => this.#stmts.journalCompact.run(clusterId, beforeSeq));
    });
  }

  acquireLease(name: string, holder: string, ttlMs: number, nowMs: number): Promise<Lease> {
    return settle(() => {
      checkLease(name, holder, ttlMs, nowMs);
      return this.#write((): Lease => {
        const row = this.#stmts.lease.get(name);
        if (row !== undefined && row[0] !== holder && row[1] > nowMs) return { name, holder: row[0], expiresMs: row[1] };
        this.#stmts.leaseSet.run(name, holder, nowMs + ttlMs);
        return { name, holder, expiresMs: nowMs + ttlMs };
      });
    });
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return settle(() => {
      checkId(name, 'name');
      checkId(holder, 'holder');
      this.#write(() => this.#stmts.leaseRelease.run(name, holder));
    });
  }

  /** The durability settings of this connection as SQLite reports them (for tests and diagnostics):
   * journal mode 'wal' ('memory' for :memory:) and synchronous 2 (FULL). */
  settings(): { readonly journalMode: string; readonly synchronous: number } {
    return this.#run(() => ({
      journalMode: this.#db.pragma('journal_mode', { simple: true }) as string,
      synchronous: this.#db.pragma('synchronous', { simple: true }) as number,
    }));
  }

  /** Closes the file (the last connection checkpoints the WAL). Idempotent; later calls fail
   * COFFER_METADATA_UNAVAILABLE. */
  close(): Promise<void> {
    return settle(() => {
      if (!this.#closed) {
        this.#closed = true;
        this.#db.close();
      }
    });
  }

  /** One write of a commit, inside its transaction: its new version, or 0 for a delete. */
  #apply(w: DocumentWrite, index: number): number {
    const s = this.#stmts;
    if (w.body === null) {
      if (s.delete.run(w.collection, w.id, w.expectedVersion).changes !== 1) conflict(w, index);
      return 0;
    }
    if (w.expectedVersion === 0) {
      if (s.insert.run(w.collection, w.id, w.parent, w.body).changes !== 1) conflict(w, index);
      return 1;
    }
    const version = s.update.get(w.parent, w.body, w.collection, w.id, w.expectedVersion);
    if (version === undefined) conflict(w, index);
    return version;
  }

  #listStatement(byParent: boolean, after: boolean): Database.Statement<unknown[], [string, string | null, number, string]> {
    const shape = `${byParent}/${after}`;
    let stmt = this.#listStmts.get(shape);
    if (stmt === undefined) {
      const where = ['collection = ?', ...(byParent ? ['parent = ?'] : []), ...(after ? ['id > ?'] : [])].join(' AND ');
      stmt = this.#db.prepare<unknown[], [string, string | null, number, string]>(`SELECT id, parent, version, body FROM documents WHERE ${where} ORDER BY id LIMIT ?`).raw();
      this.#listStmts.set(shape, stmt);
    }
    return stmt;
  }

  /** A read, with SQLite's failures mapped. */
  #run<T>(fn: () => T): T {
    if (this.#closed) fail('COFFER_METADATA_UNAVAILABLE', { reason: 'closed' });
    try {
      return fn();
    } catch (e) {
      throw sqliteError(e);
    }
  }

  /** A write transaction: BEGIN IMMEDIATE takes the write lock before anything is read, so what is
   * compared cannot change before it is written; a throw rolls everything back. */
  #write<T>(fn: () => T): T {
    return this.#run(() => this.#db.transaction(fn).immediate());
  }
}

/** The port is asynchronous, better-sqlite3 is not: runs `fn` now and hands its result or its
 * failure back as a promise, so a refused argument is a rejection like any other failure. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

function conflict(w: DocumentWrite, index: number): never {
  fail('COFFER_METADATA_CONFLICT', { index, collection: w.collection, expectedVersion: w.expectedVersion });
}

/** An empty file, 0600, so the database is created with the service's user as its only reader. */
function createEmptyFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return; // another process created it first
    fail('COFFER_METADATA_UNAVAILABLE', { reason: (e as NodeJS.ErrnoException).code ?? 'open' });
  }
}

/** Checks the file is ours (or empty) and not newer, switches to WAL and creates the schema. */
function prepareSchema(db: Database.Database, memory: boolean): void {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  const tables = db.prepare<[], number>("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get() ?? 0;
  if (applicationId !== METADATA_SQLITE_APPLICATION_ID && (applicationId !== 0 || tables > 0)) fail('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT });
  if (version > METADATA_SCHEMA_VERSION) fail('COFFER_METADATA_SCHEMA_UNSUPPORTED', { format: FORMAT, version, supported: METADATA_SCHEMA_VERSION });
  if (!memory) {
    const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
    if (mode !== 'wal') fail('COFFER_METADATA_UNAVAILABLE', { reason: `journal_mode ${mode}` });
  }
  db.pragma('synchronous = FULL');
  // Deleted and overwritten content is zeroed in the file, not left in free space (a PreCo password
  // lives in a cluster's document until activation: docs/threat-model.md).
  db.pragma('secure_delete = ON');
  db.pragma('foreign_keys = OFF');
  db.transaction(() => {
    // Read again under the write lock: another process may have created the schema meanwhile.
    const now = db.pragma('user_version', { simple: true }) as number;
    if (now === 0) db.exec(SCHEMA);
    else if (now > METADATA_SCHEMA_VERSION) fail('COFFER_METADATA_SCHEMA_UNSUPPORTED', { format: FORMAT, version: now, supported: METADATA_SCHEMA_VERSION });
  }).immediate();
}

/** SQLite's failures as the port's: a busy or unopenable database is unavailable, a file that is not
 * SQLite is not ours. Anything else is a bug and propagates. */
function sqliteError(e: unknown): unknown {
  if (e instanceof CofferError) return e;
  if (e instanceof Database.SqliteError) {
    if (e.code === 'SQLITE_NOTADB') return new CofferError('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT });
    const unavailable = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_PERM'];
    if (unavailable.some((c) => e.code.startsWith(c))) return new CofferError('COFFER_METADATA_UNAVAILABLE', { reason: e.code }, { cause: e });
  }
  if (e instanceof TypeError && /database connection is not open/.test(e.message)) return new CofferError('COFFER_METADATA_UNAVAILABLE', { reason: 'closed' });
  return e;
}
