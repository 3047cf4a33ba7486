// Argument checks shared by both metadata adapters (src/storage/metadata_port.ts), so that SQLite and
// PostgreSQL refuse exactly the same inputs with the same codes, and refuse them before anything is
// written: a commit, an append or a lease is checked whole, then applied in one transaction.
//
// Limits are COFFER_METADATA_LIMIT (a bound the port names); anything else no store could accept is
// COFFER_METADATA_INVALID. Details carry only the field, the index of a write and the bound; never a
// body, an entry or an id (ids are not secret, but they are the caller's input).

import { fail } from '../errors.js';
import {
  COLLECTIONS,
  COMMIT_WRITES_MAX,
  DOCUMENT_BYTES_MAX,
  DOCUMENT_ID_CHARS_MAX,
  JOURNAL_ENTRY_BYTES_MAX,
  JOURNAL_READ_LIMIT_MAX,
  LEASE_TTL_MS_MAX,
  LIST_LIMIT_MAX,
  METADATA_ID_PATTERN,
  type Collection,
  type DocumentWrite,
  type ListQuery,
} from './metadata_port.js';

/** Schema version both adapters write: SQLite's `user_version`, PostgreSQL's `coffer_schema` row. A
 * database that says more was written by a newer build and is refused (its tables may mean something
 * this build would misread); one that says less would be upgraded here when a version 2 exists. */
export const METADATA_SCHEMA_VERSION = 1;

/** A lone surrogate: a JS string can hold one, UTF-8 cannot (it would come back as U+FFFD). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function checkCollection(collection: Collection): void {
  if (!(COLLECTIONS as readonly string[]).includes(collection)) fail('COFFER_METADATA_INVALID', { field: 'collection' });
}

/** Ids, parents, cluster ids, lease names and holders: METADATA_ID_PATTERN, at most DOCUMENT_ID_CHARS_MAX. */
export function checkId(id: string, field: string): void {
  if (typeof id !== 'string') fail('COFFER_METADATA_INVALID', { field });
  if (id.length > DOCUMENT_ID_CHARS_MAX) fail('COFFER_METADATA_LIMIT', { field, charsMax: DOCUMENT_ID_CHARS_MAX });
  if (!METADATA_ID_PATTERN.test(id)) fail('COFFER_METADATA_INVALID', { field });
}

/** A body: at most DOCUMENT_BYTES_MAX UTF-8 bytes, well-formed, no U+0000 (metadata_port.ts). */
export function checkBody(body: string, field: string): void {
  if (typeof body !== 'string') fail('COFFER_METADATA_INVALID', { field });
  // Every UTF-16 code unit is at least one UTF-8 byte: a longer string is over without counting.
  if (body.length > DOCUMENT_BYTES_MAX || Buffer.byteLength(body, 'utf8') > DOCUMENT_BYTES_MAX) {
    fail('COFFER_METADATA_LIMIT', { field, bytesMax: DOCUMENT_BYTES_MAX });
  }
  if (body.includes('\u0000') || LONE_SURROGATE.test(body)) fail('COFFER_METADATA_INVALID', { field });
}

/** A count, version, sequence number or time: a non-negative safe integer. */
export function checkNatural(n: number, field: string): void {
  if (!Number.isSafeInteger(n) || n < 0) fail('COFFER_METADATA_INVALID', { field });
}

/** A page size: 1 … max. */
export function checkLimit(limit: number, max: number, field: string): void {
  if (!Number.isSafeInteger(limit)) fail('COFFER_METADATA_INVALID', { field });
  if (limit < 1 || limit > max) fail('COFFER_METADATA_LIMIT', { field, min: 1, max });
}

export function checkList(collection: Collection, query: ListQuery): void {
  checkCollection(collection);
  if (query.parent !== undefined) checkId(query.parent, 'parent');
  if (query.afterId !== undefined) checkId(query.afterId, 'afterId');
  checkLimit(query.limit, LIST_LIMIT_MAX, 'limit');
}

/** A whole commit, before any of it is applied. */
export function checkCommit(writes: readonly DocumentWrite[]): void {
  if (writes.length > COMMIT_WRITES_MAX) fail('COFFER_METADATA_LIMIT', { field: 'writes', max: COMMIT_WRITES_MAX });
  const seen = new Set<string>();
  writes.forEach((w, index) => {
    const at = (field: string): string => `writes[${index}].${field}`;
    checkCollection(w.collection);
    checkId(w.id, at('id'));
    if (w.parent !== null) checkId(w.parent, at('parent'));
    checkNatural(w.expectedVersion, at('expectedVersion'));
    if (w.body === null) {
      // A delete names the version it read; "delete what must not exist" means nothing.
      if (w.expectedVersion === 0) fail('COFFER_METADATA_INVALID', { field: at('expectedVersion') });
    } else {
      checkBody(w.body, at('body'));
    }
    // Collections and ids are printable ASCII: a space cannot occur in either.
    const key = `${w.collection} ${w.id}`;
    if (seen.has(key)) fail('COFFER_METADATA_INVALID', { field: at('id'), reason: 'written twice in one commit' });
    seen.add(key);
  });
}

/** Writes in the order locks are taken: by collection, then id. Every commit locking in one order
 * means two commits over the same documents wait for each other instead of deadlocking. */
export function lockOrder(writes: readonly DocumentWrite[]): number[] {
  const order = writes.map((_, i) => i);
  const key = (i: number): string => `${writes[i]!.collection} ${writes[i]!.id}`;
  return order.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export function checkAppend(clusterId: string, seq: number, entry: Uint8Array): void {
  checkId(clusterId, 'clusterId');
  checkNatural(seq, 'seq');
  if (!(entry instanceof Uint8Array)) fail('COFFER_METADATA_INVALID', { field: 'entry' });
  if (entry.length < 1 || entry.length > JOURNAL_ENTRY_BYTES_MAX) fail('COFFER_METADATA_LIMIT', { field: 'entry', bytesMin: 1, bytesMax: JOURNAL_ENTRY_BYTES_MAX });
}

export function checkReadJournal(clusterId: string, fromSeq: number, limit: number): void {
  checkId(clusterId, 'clusterId');
  checkNatural(fromSeq, 'fromSeq');
  checkLimit(limit, JOURNAL_READ_LIMIT_MAX, 'limit');
}

export function checkLease(name: string, holder: string, ttlMs: number, nowMs: number): void {
  checkId(name, 'name');
  checkId(holder, 'holder');
  checkNatural(nowMs, 'nowMs');
  if (!Number.isSafeInteger(ttlMs)) fail('COFFER_METADATA_INVALID', { field: 'ttlMs' });
  if (ttlMs < 1 || ttlMs > LEASE_TTL_MS_MAX) fail('COFFER_METADATA_LIMIT', { field: 'ttlMs', min: 1, max: LEASE_TTL_MS_MAX });
  if (!Number.isSafeInteger(nowMs + ttlMs)) fail('COFFER_METADATA_INVALID', { field: 'nowMs' });
}

/** A copy that is a plain Uint8Array over its own buffer (drivers hand back Buffers, often pooled). */
export function ownBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}
