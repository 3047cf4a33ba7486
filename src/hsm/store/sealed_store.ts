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
// Cost: a mutation writes only its own rows (a B-tree update in one file), O(record), never
// O(store). No plaintext cache: get() reads and decrypts each time, and list() streams in pages;
// the device layer above keeps its own in-memory indexes.
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
import { SEALED_LIST_PAGE_RECORDS } from '../../formats/limits.js';
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
import type { RecordStore, RecordTx } from './store_port.js';

/** The device secret the storage key is derived from (docs/architecture.md §4; docs/threat-model.md). */
export const DEVICE_SECRET_BYTES = 32;
/** HKDF info (RFC 5869 §2.3): names the key's one purpose and the format version. */
export const STORAGE_KEY_INFO = 'coffer/v1/sealed-store/storage-key';
/** SQLite `user_version` of the schema this build writes and reads. */
export const SEALED_STORE_SCHEMA_VERSION = 1;

const KEY_CHECK_PLAINTEXT = new TextEncoder().encode('coffer sealed store key check v1');
const KEY_CHECK_NS = 'meta';
const KEY_CHECK_ID = 'key_check';
const STORE_FORMAT = 'sealed store';
/** Nonces are drawn from the CSPRNG 256 at a time: one randomBytes call costs as much as a small
 * GCM encryption. Nonces are public; each pool byte is used once. */
const NONCE_POOL_BYTES = SEALED_RECORD_NONCE_BYTES * 256;

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
  put: Database.Statement<[string, Buffer, Uint8Array]>;
  del: Database.Statement<[string, Buffer]>;
  clear: Database.Statement<[string]>;
  namespaces: Database.Statement<[], string>;
  count: Database.Statement<[string], number>;
  pageFirst: Database.Statement<[string, number], { id: Buffer; v: Buffer }>;
  pageAfter: Database.Statement<[string, Buffer, number], { id: Buffer; v: Buffer }>;
  sizesFirst: Database.Statement<[string, number], { id: Buffer; n: number }>;
  sizesAfter: Database.Statement<[string, Buffer, number], { id: Buffer; n: number }>;
}

const SCHEMA = `
  CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
  CREATE TABLE records (ns TEXT NOT NULL, id BLOB NOT NULL, v BLOB NOT NULL, PRIMARY KEY (ns, id)) WITHOUT ROWID;
  PRAGMA user_version = ${SEALED_STORE_SCHEMA_VERSION};
`;

export class SealedStore implements RecordStore {
  readonly #db: Database.Database;
  readonly #key: KeyObject;
  readonly #storeId: Uint8Array;
  readonly #random: Random;
  readonly #stmts: Statements;
  readonly #runTx: Database.Transaction<(fn: (tx: RecordTx) => unknown, tx: RecordTx) => unknown>;
  #inTx = false;
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
      put: db.prepare<[string, Buffer, Uint8Array]>('INSERT OR REPLACE INTO records (ns, id, v) VALUES (?, ?, ?)'),
      del: db.prepare<[string, Buffer]>('DELETE FROM records WHERE ns = ? AND id = ?'),
      clear: db.prepare<[string]>('DELETE FROM records WHERE ns = ?'),
      namespaces: db.prepare<[], string>('SELECT DISTINCT ns FROM records').pluck(),
      count: db.prepare<[string], number>('SELECT count(*) FROM records WHERE ns = ?').pluck(),
      pageFirst: db.prepare('SELECT id, v FROM records WHERE ns = ? ORDER BY id LIMIT ?'),
      pageAfter: db.prepare('SELECT id, v FROM records WHERE ns = ? AND id > ? ORDER BY id LIMIT ?'),
      sizesFirst: db.prepare('SELECT id, length(v) AS n FROM records WHERE ns = ? ORDER BY id LIMIT ?'),
      sizesAfter: db.prepare('SELECT id, length(v) AS n FROM records WHERE ns = ? AND id > ? ORDER BY id LIMIT ?'),
    };
    this.#runTx = db.transaction((fn: (tx: RecordTx) => unknown, tx: RecordTx) => {
      const result = fn(tx);
      // Throwing here rolls the SQLite transaction back: nothing of an async fn lands.
      assert(!(result instanceof Promise), 'transactions are synchronous');
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
    let after: Buffer | undefined;
    for (;;) {
      this.#check();
      const from = after;
      const rows = this.#read(() =>
        from === undefined ? this.#stmts.pageFirst.all(ns, SEALED_LIST_PAGE_RECORDS) : this.#stmts.pageAfter.all(ns, from, SEALED_LIST_PAGE_RECORDS),
      );
      for (const row of rows) {
        const id = idFromKey(row.id);
        yield [id, this.#unseal(ns, id, row.v)];
      }
      if (rows.length < SEALED_LIST_PAGE_RECORDS) return;
      after = rows[rows.length - 1]?.id;
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
    let after: Buffer | undefined;
    for (;;) {
      this.#check();
      const from = after;
      const rows = this.#read(() =>
        from === undefined ? this.#stmts.sizesFirst.all(ns, SEALED_LIST_PAGE_RECORDS) : this.#stmts.sizesAfter.all(ns, from, SEALED_LIST_PAGE_RECORDS),
      );
      for (const row of rows) yield [idFromKey(row.id), Math.max(0, row.n - SEALED_RECORD_OVERHEAD_BYTES)];
      if (rows.length < SEALED_LIST_PAGE_RECORDS) return;
      after = rows[rows.length - 1]?.id;
    }
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
    let live = true;
    const tx: RecordTx = {
      get: (ns, id) => {
        assert(live, 'transaction handle used after its transaction');
        return this.get(ns, id);
      },
      put: (ns, id, value) => {
        assert(live, 'transaction handle used after its transaction');
        this.#stmts.put.run(ns, idKey(id), sealRecord(this.#key, this.#binding(ns, id), value, this.#nonce()));
      },
      delete: (ns, id) => {
        assert(live, 'transaction handle used after its transaction');
        this.#stmts.del.run(ns, idKey(id));
      },
      clear: (ns) => {
        assert(live, 'transaction handle used after its transaction');
        this.#stmts.clear.run(ns); // one statement, whatever the namespace's size
      },
    };
    this.#inTx = true;
    try {
      return this.#runTx.immediate(fn, tx) as T;
    } catch (e) {
      throw storeError(e);
    } finally {
      live = false;
      this.#inTx = false;
    }
  }

  /**
   * After a zeroise: deleted records are sealed, but SQLite leaves their bytes in freed pages and
   * in the WAL, readable with this device's storage key (which zeroise keeps). VACUUM rewrites the
   * file from the live records only, and a TRUNCATE checkpoint empties the WAL to 0 bytes. What
   * the file system keeps of old blocks is the host's boundary (docs/threat-model.md).
   */
  scrub(): void {
    this.#check();
    assert(!this.#inTx, 'sealed store scrubbed inside its own transaction');
    try {
      this.#db.exec('VACUUM');
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (e) {
      throw storeError(e);
    }
  }

  /** Closes the file (checkpointing the WAL). Idempotent; later calls fail COFFER_STORE_CLOSED. */
  close(): void {
    assert(!this.#inTx, 'sealed store closed inside its own transaction');
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
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

/** Pragmas for an existing store, then its schema version. The first read takes the exclusive lock. */
function configure(db: Database.Database, sync: 'full' | 'normal'): void {
  // Before any file access: with WAL this also keeps the WAL index in heap memory (no -shm file).
  db.pragma('locking_mode = EXCLUSIVE');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === 0) fail('COFFER_FORMAT_BAD_MAGIC', { format: STORE_FORMAT });
  if (version !== SEALED_STORE_SCHEMA_VERSION) {
    fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: STORE_FORMAT, version, supported: String(SEALED_STORE_SCHEMA_VERSION) });
  }
  const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
  assert(mode === 'wal', 'sealed store runs in WAL mode');
  db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
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

function idFromKey(key: Buffer): string {
  return Buffer.from(key).swap16().toString('utf16le');
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
