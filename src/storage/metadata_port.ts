// The control plane's metadata store (docs/architecture.md §6): a port with two adapters, SQLite
// (the embedded default) and PostgreSQL (several service processes on one database), both held to
// one conformance suite (test/storage/metadata_conformance.ts).
//
// The store keeps documents, not a schema of the CloudHSMv2 model: each document is a JSON text
// that the service encodes and decodes (src/service/), filed under a collection, an id and an
// optional parent (the cluster an HSM or backup belongs to). Every write is compare-and-set on the
// document's version, and `commit` applies several writes atomically or none, so two service
// processes can never both win a race (a CreateHsm and a replacement, say). Nothing secret is ever
// stored here: the service writes only what DescribeClusters and DescribeBackups show, plus
// references to sealed blobs in the archive.
//
// Two more things live beside the documents because they need the same transactions:
//   - the cluster journal: sealed entries appended with compare-and-append on the sequence number
//     (docs/architecture.md §5); the store never reads an entry, it only orders them;
//   - leases: a named, expiring hold (the orchestrator's), so exactly one process orchestrates.

/** What the service stores. Adding one is a schema change in both adapters. */
export const COLLECTIONS = ['clusters', 'hsms', 'backups', 'devices', 'service'] as const;
export type Collection = (typeof COLLECTIONS)[number];

export interface StoredDocument {
  readonly collection: Collection;
  readonly id: string;
  /** The cluster (or other owner) the document belongs to, if any; `list` can select by it. */
  readonly parent: string | null;
  /** 1 for a new document, +1 for each write. */
  readonly version: number;
  /** JSON text, at most DOCUMENT_BYTES_MAX UTF-8 bytes, stored and returned exactly. It must be
   * well-formed Unicode (no lone surrogate, which UTF-8 cannot carry) without U+0000 (which a
   * PostgreSQL text cannot hold and a JSON text never contains unescaped). */
  readonly body: string;
}

/** A document body's bound: a cluster with its certificates and 50 tags is under 64 KiB. */
export const DOCUMENT_BYTES_MAX = 256 * 1024;
/** Ids and parents are CloudHSM ids or short service names. */
export const DOCUMENT_ID_CHARS_MAX = 128;
/**
 * What an id, a parent, a journal's cluster id, a lease name and a lease holder may contain:
 * printable ASCII without space, 1 … DOCUMENT_ID_CHARS_MAX characters. CloudHSM ids and service
 * names fit; ASCII makes "ascending by id" one order everywhere (UTF-8 bytes, UTF-16 code units
 * and PostgreSQL's "C" collation agree) and a character count one byte count.
 */
export const METADATA_ID_PATTERN = /^[\x21-\x7e]+$/;
/** One page of `list`. */
export const LIST_LIMIT_MAX = 1000;
/** One `commit`: a cluster, its HSMs and a backup are a few documents. */
export const COMMIT_WRITES_MAX = 64;
/** A sealed journal entry's bound (the journal format's own limit is checked by the device). */
export const JOURNAL_ENTRY_BYTES_MAX = 16 * 1024 * 1024;
/** One page of `readJournal`. */
export const JOURNAL_READ_LIMIT_MAX = 1000;
/** The longest lease: a holder that dies keeps others out at most this long. The orchestrator
 * renews a lease of seconds; a day bounds a caller's mistake (ms rather than s, say). */
export const LEASE_TTL_MS_MAX = 24 * 60 * 60 * 1000;

/**
 * One write of a `commit`. `expectedVersion` is 0 when the document must not exist yet, else the
 * version the writer read. `body: null` deletes the document.
 */
export interface DocumentWrite {
  readonly collection: Collection;
  readonly id: string;
  readonly parent: string | null;
  readonly expectedVersion: number;
  readonly body: string | null;
}

export interface ListQuery {
  /** Only documents with this parent. */
  readonly parent?: string;
  /** Only ids greater than this (ascending by id; the service builds NextToken on it). */
  readonly afterId?: string;
  /** At most this many (1 … LIST_LIMIT_MAX). */
  readonly limit: number;
}

export interface JournalEntry {
  readonly clusterId: string;
  /** 1, 2, 3, … with no gaps. */
  readonly seq: number;
  readonly entry: Uint8Array;
}

export interface Lease {
  readonly name: string;
  readonly holder: string;
  readonly expiresMs: number;
}

/**
 * The port. Failures the caller must handle are typed errors:
 *   COFFER_METADATA_CONFLICT    a write's expectedVersion did not match (nothing of the commit applied)
 *   COFFER_METADATA_LIMIT       an id, body, page or commit over its bound (nothing applied)
 *   COFFER_JOURNAL_CONFLICT     appendJournal's seq was not the last seq + 1 (nothing appended)
 *   COFFER_METADATA_INVALID     an argument no store could accept: an id outside METADATA_ID_PATTERN,
 *                               an unknown collection, a body that is not well-formed text, the same
 *                               document twice in one commit, a delete with expectedVersion 0, a
 *                               count, sequence number or time that is not a non-negative integer
 *                               (nothing applied)
 *   COFFER_METADATA_UNAVAILABLE the database cannot be reached, or the store was closed
 * Every argument is checked before anything is written.
 */
export interface MetadataStore {
  get(collection: Collection, id: string): Promise<StoredDocument | undefined>;
  /** Ascending by id. */
  list(collection: Collection, query: ListQuery): Promise<StoredDocument[]>;
  /** All writes or none; returns the new version of each write in order (0 for a delete). */
  commit(writes: readonly DocumentWrite[]): Promise<number[]>;

  /** Compare-and-append: succeeds only if `seq` is the cluster's last seq + 1 (1 for the first). */
  appendJournal(clusterId: string, seq: number, entry: Uint8Array): Promise<void>;
  /** Entries with seq ≥ fromSeq, ascending, at most `limit`. */
  readJournal(clusterId: string, fromSeq: number, limit: number): Promise<JournalEntry[]>;
  /** The last seq appended (0 if none); compaction does not lower it. */
  journalHead(clusterId: string): Promise<number>;
  /** Removes entries with seq < beforeSeq (compaction after every HSM's backup has passed them). */
  compactJournal(clusterId: string, beforeSeq: number): Promise<void>;

  /**
   * Takes or renews the lease `name` for `holder` until nowMs + ttlMs (1 ≤ ttlMs ≤ LEASE_TTL_MS_MAX),
   * if it is free, expired (expiresMs ≤ nowMs) or already held by `holder`; returns the lease as it
   * stands after the call (holder tells who won).
   * Time comes from the caller's clock, so tests drive expiry with a manual clock.
   */
  acquireLease(name: string, holder: string, ttlMs: number, nowMs: number): Promise<Lease>;
  /** Gives the lease up if `holder` holds it; otherwise does nothing. */
  releaseLease(name: string, holder: string): Promise<void>;

  close(): Promise<void>;
}
