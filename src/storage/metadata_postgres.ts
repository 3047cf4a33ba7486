// The metadata store on PostgreSQL (src/storage/metadata_port.ts; docs/metadata-store.md): for several
// service processes, on one machine or many, sharing one database through `pg` (a Pool).
//
// Tables live in one schema (`coffer` unless configured), created when absent under a
// transaction-scoped advisory lock so that processes starting together create them once. A
// `coffer_schema` row holds METADATA_SCHEMA_VERSION; a newer one is refused
// (COFFER_METADATA_SCHEMA_UNSUPPORTED), a schema holding same-named tables without that row is
// another application's (COFFER_FORMAT_BAD_MAGIC).
//
// Races are settled by the database, never by this process (READ COMMITTED throughout):
//   - commit: one transaction; each write is a conditional statement — INSERT … ON CONFLICT DO
//     NOTHING for a create, UPDATE/DELETE … WHERE version = expected for the rest — whose row count
//     says whether it won. A writer blocked on another's row lock re-reads the row once that one
//     commits and finds the version moved, so two commits never both win. Writes lock rows in
//     (collection, id) order, so commits over the same documents queue instead of deadlocking.
//   - appendJournal: one statement, so one round trip: the head row moves from seq − 1 to seq by a
//     conditional UPDATE (or is inserted for seq 1) and the entry is inserted only if it moved, in
//     the statement's own transaction; (cluster_id, seq) is also the entry's primary key. Of
//     concurrent appends of one seq exactly one commits (the others' UPDATE waits on the row, then
//     finds it moved); the rest get COFFER_JOURNAL_CONFLICT.
//   - acquireLease: one INSERT … ON CONFLICT DO UPDATE … WHERE holder = me OR expires_ms ≤ now on the
//     lease's row, the comparison made on the row as it stands under its lock.
//
// Connection failures are COFFER_METADATA_UNAVAILABLE with a `reason` (an errno or SQLSTATE) and no
// cause attached: a driver's error may carry the host, the user or — for a malformed URL — the
// connection string itself, password included, and an error must never show it.

import pg from 'pg';
import { CofferError, fail } from '../errors.js';
import {
  checkAppend,
  checkCollection,
  checkCommit,
  checkId,
  checkLease,
  checkList,
  checkNatural,
  checkReadJournal,
  lockOrder,
  METADATA_SCHEMA_VERSION,
  ownBytes,
} from './metadata_checks.js';
import type { Collection, DocumentWrite, JournalEntry, Lease, ListQuery, MetadataStore, StoredDocument } from './metadata_port.js';

/** The schema the tables live in unless another is configured. */
export const POSTGRES_DEFAULT_SCHEMA = 'coffer';
/** Schema names this adapter accepts: a lower-case SQL identifier, so it never needs escaping rules
 * beyond double quotes and cannot collide with a quoted mixed-case name. 63 is PostgreSQL's NAMEDATALEN − 1. */
export const POSTGRES_SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
/** Connections per service process: commits are short, a handful in flight is plenty. */
export const POSTGRES_POOL_CONNECTIONS = 8;
/** How long to wait for a connection before reporting the database unreachable. */
export const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;
/** A statement that runs longer is cancelled (COFFER_METADATA_UNAVAILABLE): a lock held by a stuck
 * process must not stall every writer forever. A 16 MiB journal entry is far inside it. */
export const POSTGRES_STATEMENT_TIMEOUT_MS = 30_000;
/** A session left idle inside a transaction (a process frozen mid-commit) is ended by the server,
 * which rolls its transaction back and frees its row locks. */
export const POSTGRES_IDLE_IN_TRANSACTION_MS = 60_000;
/** The sessions' application_name unless another is configured. */
export const POSTGRES_APPLICATION_NAME = 'coffer-metadata';
/** Key of the advisory lock taken while creating tables: "CfMd". Held only by that transaction. */
const SCHEMA_LOCK_KEY = 0x43664d64;

const FORMAT = 'metadata schema';

export interface PostgresMetadataOptions {
  /** `postgres://user[:password]@host:port/database`; the password never appears in an error. */
  readonly url: string;
  /** The schema holding the tables (POSTGRES_SCHEMA_PATTERN); default POSTGRES_DEFAULT_SCHEMA. */
  readonly schema?: string;
  /** Connections in the pool; default POSTGRES_POOL_CONNECTIONS. */
  readonly connections?: number;
  /** How the sessions show in pg_stat_activity; default POSTGRES_APPLICATION_NAME. A service
   * process may name itself, so an operator can tell the replicas' sessions apart. */
  readonly applicationName?: string;
}

/** The tables, in schema `s` (already quoted). Text columns use the "C" collation: byte order, so
 * ascending ids are the same order as SQLite's and as JavaScript's sort of ASCII strings. */
function schemaSql(s: string): string {
  return `
    CREATE TABLE ${s}.documents (
      collection text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, parent text COLLATE "C",
      version bigint NOT NULL CHECK (version >= 1), body text NOT NULL,
      PRIMARY KEY (collection, id)
    );
    CREATE INDEX documents_parent ON ${s}.documents (collection, parent, id);
    CREATE TABLE ${s}.journal (
      cluster_id text COLLATE "C" NOT NULL, seq bigint NOT NULL CHECK (seq >= 1), entry bytea NOT NULL,
      PRIMARY KEY (cluster_id, seq)
    );
    -- Sealed entries do not compress: store them out of line without trying.
    ALTER TABLE ${s}.journal ALTER COLUMN entry SET STORAGE EXTERNAL;
    CREATE TABLE ${s}.journal_heads (cluster_id text COLLATE "C" PRIMARY KEY, seq bigint NOT NULL CHECK (seq >= 1));
    CREATE TABLE ${s}.leases (name text COLLATE "C" PRIMARY KEY, holder text COLLATE "C" NOT NULL, expires_ms bigint NOT NULL);
    INSERT INTO ${s}.coffer_schema (version) VALUES (${METADATA_SCHEMA_VERSION});
  `;
}

interface Sql {
  readonly get: string;
  readonly insert: string;
  readonly update: string;
  readonly delete: string;
  readonly head: string;
  readonly journalAppend: string;
  readonly journalRead: string;
  readonly journalCompact: string;
  readonly leaseTake: string;
  readonly lease: string;
  readonly leaseRelease: string;
}

function statements(s: string): Sql {
  return {
    get: `SELECT parent, version, body FROM ${s}.documents WHERE collection = $1 AND id = $2`,
    insert: `INSERT INTO ${s}.documents (collection, id, parent, version, body) VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING RETURNING version`,
    update: `UPDATE ${s}.documents SET parent = $3, body = $4, version = version + 1 WHERE collection = $1 AND id = $2 AND version = $5 RETURNING version`,
    delete: `DELETE FROM ${s}.documents WHERE collection = $1 AND id = $2 AND version = $3 RETURNING version`,
    head: `SELECT seq FROM ${s}.journal_heads WHERE cluster_id = $1`,
    journalAppend: `WITH moved AS (
        UPDATE ${s}.journal_heads SET seq = $2 WHERE cluster_id = $1 AND seq = $2::bigint - 1 RETURNING seq
      ), first AS (
        INSERT INTO ${s}.journal_heads (cluster_id, seq) SELECT $1, 1 WHERE $2::bigint = 1 ON CONFLICT DO NOTHING RETURNING seq
      )
      INSERT INTO ${s}.journal (cluster_id, seq, entry)
      SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM moved UNION ALL SELECT 1 FROM first)`,
    journalRead: `SELECT seq, entry FROM ${s}.journal WHERE cluster_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
    journalCompact: `DELETE FROM ${s}.journal WHERE cluster_id = $1 AND seq < $2`,
    leaseTake: `INSERT INTO ${s}.leases AS l (name, holder, expires_ms) VALUES ($1, $2, $3::bigint + $4::bigint)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
      WHERE l.holder = excluded.holder OR l.expires_ms <= $3::bigint
      RETURNING holder, expires_ms`,
    lease: `SELECT holder, expires_ms FROM ${s}.leases WHERE name = $1`,
    leaseRelease: `DELETE FROM ${s}.leases WHERE name = $1 AND holder = $2`,
  };
}

type Queryable = Pick<pg.PoolClient, 'query'>;

export class PostgresMetadataStore implements MetadataStore {
  readonly #pool: pg.Pool;
  readonly #sql: Sql;
  readonly #schema: string;
  #closed = false;

  private constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#sql = statements(quote(schema));
  }

  /** Connects, and creates the schema and its tables if absent (refusing a newer or foreign one). */
  static async open(options: PostgresMetadataOptions): Promise<PostgresMetadataStore> {
    const schema = options.schema ?? POSTGRES_DEFAULT_SCHEMA;
    if (!POSTGRES_SCHEMA_PATTERN.test(schema)) fail('COFFER_METADATA_INVALID', { field: 'schema' });
    const connections = options.connections ?? POSTGRES_POOL_CONNECTIONS;
    if (!Number.isSafeInteger(connections) || connections < 1) fail('COFFER_METADATA_INVALID', { field: 'connections' });
    const applicationName = options.applicationName ?? POSTGRES_APPLICATION_NAME;
    // PostgreSQL keeps 63 bytes of it; printable ASCII keeps it readable in pg_stat_activity.
    if (!/^[\x20-\x7e]{1,63}$/.test(applicationName)) fail('COFFER_METADATA_INVALID', { field: 'applicationName' });
    const pool = createPool(options.url, connections, applicationName);
    const store = new PostgresMetadataStore(pool, schema);
    try {
      await store.#transaction((c) => prepareSchema(c, schema));
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw e;
    }
    return store;
  }

  /** The schema this store's tables are in. */
  get schema(): string {
    return this.#schema;
  }

  async get(collection: Collection, id: string): Promise<StoredDocument | undefined> {
    checkCollection(collection);
    checkId(id, 'id');
    const { rows } = await this.#query(this.#sql.get, [collection, id]);
    const row = rows[0] as { parent: string | null; version: string; body: string } | undefined;
    return row === undefined ? undefined : { collection, id, parent: row.parent, version: int(row.version), body: row.body };
  }

  async list(collection: Collection, query: ListQuery): Promise<StoredDocument[]> {
    checkList(collection, query);
    const where = ['collection = $1'];
    const params: unknown[] = [collection];
    if (query.parent !== undefined) where.push(`parent = $${params.push(query.parent)}`);
    if (query.afterId !== undefined) where.push(`id > $${params.push(query.afterId)}`);
    const sql = `SELECT id, parent, version, body FROM ${quote(this.#schema)}.documents WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${params.push(query.limit)}`;
    const { rows } = await this.#query(sql, params);
    return (rows as { id: string; parent: string | null; version: string; body: string }[]).map((r) => ({
      collection,
      id: r.id,
      parent: r.parent,
      version: int(r.version),
      body: r.body,
    }));
  }

  async commit(writes: readonly DocumentWrite[]): Promise<number[]> {
    checkCommit(writes);
    if (writes.length === 0) return [];
    return this.#transaction(async (c) => {
      const versions = new Array<number>(writes.length).fill(0);
      for (const i of lockOrder(writes)) versions[i] = await this.#apply(c, writes[i]!, i);
      return versions;
    });
  }

  async appendJournal(clusterId: string, seq: number, entry: Uint8Array): Promise<void> {
    checkAppend(clusterId, seq, entry);
    let appended: pg.QueryResult;
    try {
      appended = await this.#query(this.#sql.journalAppend, [clusterId, seq, Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength)]);
    } catch (e) {
      // The primary key (cluster_id, seq) as the second guard: an entry of that seq is there.
      if (e instanceof pg.DatabaseError && e.code === '23505') fail('COFFER_JOURNAL_CONFLICT', { seq });
      throw e;
    }
    if (appended.rowCount !== 1) fail('COFFER_JOURNAL_CONFLICT', { seq, head: await this.journalHead(clusterId) });
  }

  async readJournal(clusterId: string, fromSeq: number, limit: number): Promise<JournalEntry[]> {
    checkReadJournal(clusterId, fromSeq, limit);
    const { rows } = await this.#query(this.#sql.journalRead, [clusterId, fromSeq, limit]);
    return (rows as { seq: string; entry: Buffer }[]).map((r) => ({ clusterId, seq: int(r.seq), entry: ownBytes(r.entry) }));
  }

  async journalHead(clusterId: string): Promise<number> {
    checkId(clusterId, 'clusterId');
    const { rows } = await this.#query(this.#sql.head, [clusterId]);
    const row = rows[0] as { seq: string } | undefined;
    return row === undefined ? 0 : int(row.seq);
  }

  async compactJournal(clusterId: string, beforeSeq: number): Promise<void> {
    checkId(clusterId, 'clusterId');
    checkNatural(beforeSeq, 'beforeSeq');
    await this.#query(this.#sql.journalCompact, [clusterId, beforeSeq]);
  }

  async acquireLease(name: string, holder: string, ttlMs: number, nowMs: number): Promise<Lease> {
    checkLease(name, holder, ttlMs, nowMs);
    return this.#transaction(async (c) => {
      const taken = await c.query(this.#sql.leaseTake, [name, holder, nowMs, ttlMs]);
      // Not taken: ON CONFLICT locked the row even though its WHERE was false, so reading it in
      // this transaction shows the lease that won, not one that changes before we answer.
      const { rows } = taken.rowCount === 1 ? taken : await c.query(this.#sql.lease, [name]);
      const row = rows[0] as { holder: string; expires_ms: string } | undefined;
      if (row === undefined) fail('COFFER_METADATA_UNAVAILABLE', { reason: 'lease row vanished' });
      return { name, holder: row.holder, expiresMs: int(row.expires_ms) };
    });
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    checkId(name, 'name');
    checkId(holder, 'holder');
    await this.#query(this.#sql.leaseRelease, [name, holder]);
  }

  /** Ends the pool. Idempotent; later calls fail COFFER_METADATA_UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  /** One write of a commit, in its transaction: its new version, or 0 for a delete. */
  async #apply(c: Queryable, w: DocumentWrite, index: number): Promise<number> {
    let result: pg.QueryResult;
    if (w.body === null) result = await c.query(this.#sql.delete, [w.collection, w.id, w.expectedVersion]);
    else if (w.expectedVersion === 0) result = await c.query(this.#sql.insert, [w.collection, w.id, w.parent, w.body]);
    else result = await c.query(this.#sql.update, [w.collection, w.id, w.parent, w.body, w.expectedVersion]);
    if (result.rowCount !== 1) fail('COFFER_METADATA_CONFLICT', { index, collection: w.collection, expectedVersion: w.expectedVersion });
    return w.body === null ? 0 : int((result.rows[0] as { version: string }).version);
  }

  async #query(sql: string, params: unknown[]): Promise<pg.QueryResult> {
    if (this.#closed) fail('COFFER_METADATA_UNAVAILABLE', { reason: 'closed' });
    try {
      return await this.#pool.query(sql, params);
    } catch (e) {
      throw pgError(e);
    }
  }

  /** Runs `fn` in one transaction on one connection: COMMIT if it returns, ROLLBACK if it throws.
   * A connection that failed is destroyed rather than returned to the pool. */
  async #transaction<T>(fn: (c: Queryable) => Promise<T>): Promise<T> {
    if (this.#closed) fail('COFFER_METADATA_UNAVAILABLE', { reason: 'closed' });
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw pgError(e);
    }
    let broken: Error | undefined;
    // A checked-out connection that fails between two of our queries reports it as an 'error'
    // event, which would end the process unheard; note it, and the next query fails typed.
    const onError = (e: Error): void => {
      broken = e;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch((r: unknown) => {
        broken = r instanceof Error ? r : new Error('rollback failed');
      });
      throw pgError(e);
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }
}

/** Creates the tables unless they exist, under an advisory lock held till this transaction ends. */
async function prepareSchema(c: Queryable, schema: string): Promise<void> {
  const s = quote(schema);
  await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [SCHEMA_LOCK_KEY, schema]);
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  const marker = await c.query('SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2', [schema, 'coffer_schema']);
  if (marker.rowCount === 0) {
    await c.query(`CREATE TABLE ${s}.coffer_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)`);
  }
  const { rows } = await c.query(`SELECT version FROM ${s}.coffer_schema`);
  const row = rows[0] as { version: number } | undefined;
  if (row === undefined) {
    try {
      await c.query(schemaSql(s));
    } catch (e) {
      // A table of ours already there without our marker: another application's schema.
      if (e instanceof pg.DatabaseError && e.code === '42P07') fail('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT, schema });
      throw e;
    }
  } else if (row.version > METADATA_SCHEMA_VERSION) {
    fail('COFFER_METADATA_SCHEMA_UNSUPPORTED', { format: FORMAT, schema, version: row.version, supported: METADATA_SCHEMA_VERSION });
  }
}

/** The pool; a malformed URL is refused here without its text (it may hold a password). */
function createPool(url: string, connections: number, applicationName: string): pg.Pool {
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({
      connectionString: url,
      max: connections,
      connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
      statement_timeout: POSTGRES_STATEMENT_TIMEOUT_MS,
      idle_in_transaction_session_timeout: POSTGRES_IDLE_IN_TRANSACTION_MS,
      application_name: applicationName,
    });
  } catch {
    fail('COFFER_METADATA_UNAVAILABLE', { reason: 'malformed connection URL' });
  }
  // An idle connection the server dropped is reported here; without a listener Node would end the
  // process. The next query opens a new connection, or fails with the mapped error.
  pool.on('error', () => undefined);
  return pool;
}

/** Quotes a schema name already checked against POSTGRES_SCHEMA_PATTERN. */
function quote(schema: string): string {
  return `"${schema}"`;
}

/** bigint columns come back as strings (pg does not guess at 64-bit integers). */
function int(text: string | number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) fail('COFFER_METADATA_UNAVAILABLE', { reason: 'integer out of range' });
  return n;
}

/** SQLSTATE classes that mean the database cannot serve us now (PostgreSQL manual, Appendix A):
 * 08 connection exception, 28 invalid authorisation, 3D invalid catalog (no such database),
 * 53 insufficient resources, 57 operator intervention (shutdown, statement timeout), 58 system error. */
const UNAVAILABLE_SQLSTATE_CLASSES = ['08', '28', '3D', '53', '57', '58'];

/** The driver's failures as the port's, with nothing of the original message or URL. */
function pgError(e: unknown): unknown {
  if (e instanceof CofferError) return e;
  if (e instanceof pg.DatabaseError) {
    const code = e.code ?? '';
    if (UNAVAILABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return new CofferError('COFFER_METADATA_UNAVAILABLE', { reason: `sqlstate ${code}` });
    return e;
  }
  if (!(e instanceof Error)) return e;
  const errno = (e as NodeJS.ErrnoException).code;
  if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) return new CofferError('COFFER_METADATA_UNAVAILABLE', { reason: errno });
  // pg's own connection failures carry no code, only these messages.
  if (/Connection terminated|timeout expired|Cannot use a pool after calling end|Client has encountered a connection error|not queryable/i.test(e.message)) {
    return new CofferError('COFFER_METADATA_UNAVAILABLE', { reason: 'connection lost' });
  }
  // SCRAM or MD5 asked for a password the URL does not give (or gives in a form pg refuses).
  if (/SASL|SCRAM|password/i.test(e.message)) return new CofferError('COFFER_METADATA_UNAVAILABLE', { reason: 'authentication' });
  return e;
}
