// The port every piece of device state goes through: a namespaced record store with atomic
// transactions. The sealed adapter (sealed_store.ts) encrypts every record under the device storage
// key and survives crashes; MemoryRecordStore is the in-process adapter for unit tests and for
// volatile state. Both pass test/hsm/store/store_conformance.ts.
//
// A wholesale replacement (restore) does not build the new state inside one huge transaction: its
// records are first written aside into a staging area (`stage`), which no read sees and which a
// failure, a close or a crash drops, and one short transaction then adopts them (`RecordTx.adopt`).
// Each namespace keeps a summary (record count, id and value bytes), so a backup sizes its body
// without reading a record.
//
// Synchronous by design: the device's state machine is deterministic and single-threaded; crypto
// that must use the thread pool happens outside the store.

import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import { SEALED_NAMESPACE_BYTES_MAX, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX } from '../../formats/limits.js';

/** One write inside a transaction. Values are plaintext here; the adapter seals them. */
export interface RecordTx {
  get(ns: string, id: string): Uint8Array | undefined;
  put(ns: string, id: string, value: Uint8Array): void;
  delete(ns: string, id: string): void;
  /** Deletes every record of a namespace (restore replaces a device's state wholesale). Writes
   * after it in the same transaction land; reads after it see only those. */
  clear(ns: string): void;
  /**
   * Moves the records of `staging` (opened by this store) in: every namespace that holds a staged
   * record is cleared, then receives exactly its staged records. Part of this transaction: it lands
   * with the rest or not at all. The staging is spent (only `discard` remains).
   */
  adopt(staging: RecordStaging): void;
}

/**
 * Records set aside for a wholesale replacement. No read of the store sees them until a transaction
 * adopts them; `discard`, the store's `close` and a crash drop them and leave nothing behind. The
 * sealed store seals each staged record under its final namespace and id (so adopting copies rows,
 * nothing is decrypted) and keeps them in SQLite, not in the JS heap.
 */
export interface RecordStaging {
  /** Stages a record; staging the same namespace and id again replaces it. A failure drops the
   * whole staging (the live records are never touched) and is rethrown. */
  put(ns: string, id: string, value: Uint8Array): void;
  /** Drops what is staged and closes the staging. Idempotent; after `adopt`, only releases it. */
  discard(): void;
}

/** What a namespace holds, kept by the store as records change (a backup sizes its body from it). */
export interface NamespaceSummary {
  readonly records: number;
  /** The ids' lengths in UTF-8 bytes, summed. */
  readonly idBytes: number;
  /** The values' (plaintext) lengths in bytes, summed. */
  readonly valueBytes: number;
  /** Ids holding a character beyond U+FFFF: the only ones whose UTF-16 order (the store's) can
   * differ from UTF-8 byte order. */
  readonly astralIds: number;
}

export const EMPTY_SUMMARY: NamespaceSummary = { records: 0, idBytes: 0, valueBytes: 0, astralIds: 0 };

export interface RecordStore {
  get(ns: string, id: string): Uint8Array | undefined;
  /** Every record of a namespace, in ascending id order. */
  list(ns: string): IterableIterator<[string, Uint8Array]>;
  count(ns: string): number;
  /** Every record id of a namespace with the length of its value in bytes, in list() order, without
   * reading the values. */
  sizes(ns: string): IterableIterator<[string, number]>;
  /** The namespace's summary, without reading its records (EMPTY_SUMMARY when it holds none). */
  summary(ns: string): NamespaceSummary;
  /** The namespaces that hold at least one record, in ascending (JavaScript string) order. */
  namespaces(): string[];
  /** Runs `fn` atomically: either every write lands or none does (also across a crash). */
  transaction<T>(fn: (tx: RecordTx) => T): T;
  /** Opens the store's staging area (one at a time, never inside a transaction). */
  stage(): RecordStaging;
  /** Makes records already deleted unrecoverable from the store's own files (zeroise): a store
   * that keeps freed space or old page images rewrites and empties them. Absent: nothing kept. */
  scrub?(): void;
  /** Closes the store; an open staging is dropped. */
  close(): void;
}

/** UTF-8 bytes of an id, and whether it holds a character beyond U+FFFF (a surrogate pair). */
export function idFacts(id: string): { readonly bytes: number; readonly astral: boolean } {
  return { bytes: Buffer.byteLength(id, 'utf8'), astral: HIGH_SURROGATE.test(id) };
}

const HIGH_SURROGATE = /[\uD800-\uDBFF]/;
/** With the u flag a surrogate pair is one character, so this matches only unpaired surrogates. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** The names and sizes the sealed record format refuses (formats/sealed_record.ts), refused alike by
 * the memory adapter, so that both adapters hold the same set of records. */
function checkRecordName(ns: string, id: string): void {
  for (const [field, s, max] of [['namespace', ns, SEALED_NAMESPACE_BYTES_MAX], ['id', id, SEALED_RECORD_ID_BYTES_MAX]] as const) {
    if (LONE_SURROGATE.test(s)) fail('COFFER_FORMAT_MALFORMED', { format: 'record store', field });
    if (Buffer.byteLength(s, 'utf8') > max) fail('COFFER_FORMAT_LIMIT', { format: 'record store', field, max });
  }
}

function checkValue(value: Uint8Array): void {
  if (value.length > SEALED_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'record', max: SEALED_RECORD_BYTES_MAX });
}

/** In-memory adapter: same semantics as the sealed store, no persistence. */
export class MemoryRecordStore implements RecordStore {
  readonly #data = new Map<string, Map<string, Uint8Array>>();
  #staging: MemoryStaging | undefined;
  #open = true;

  get(ns: string, id: string): Uint8Array | undefined {
    this.#check();
    const v = this.#data.get(ns)?.get(id);
    return v === undefined ? undefined : copy(v);
  }

  *list(ns: string): IterableIterator<[string, Uint8Array]> {
    this.#check();
    const m = this.#data.get(ns);
    if (m === undefined) return;
    for (const id of [...m.keys()].sort()) {
      const v = m.get(id);
      if (v !== undefined) yield [id, copy(v)];
    }
  }

  count(ns: string): number {
    this.#check();
    return this.#data.get(ns)?.size ?? 0;
  }

  *sizes(ns: string): IterableIterator<[string, number]> {
    for (const [id, value] of this.list(ns)) yield [id, value.length];
  }

  /** Computed when asked: the records are in memory, nothing is read from a medium. */
  summary(ns: string): NamespaceSummary {
    this.#check();
    let records = 0, idBytes = 0, valueBytes = 0, astralIds = 0;
    for (const [id, value] of this.#data.get(ns) ?? []) {
      const facts = idFacts(id);
      records++;
      idBytes += facts.bytes;
      valueBytes += value.length;
      if (facts.astral) astralIds++;
    }
    return { records, idBytes, valueBytes, astralIds };
  }

  namespaces(): string[] {
    this.#check();
    return [...this.#data].filter(([, m]) => m.size > 0).map(([ns]) => ns).sort();
  }

  transaction<T>(fn: (tx: RecordTx) => T): T {
    this.#check();
    const pending = new Map<string, Map<string, Uint8Array | null>>();
    /** Namespaces cleared in this transaction: the committed records there no longer show. */
    const cleared = new Set<string>();
    const clear = (ns: string): void => {
      cleared.add(ns);
      pending.set(ns, new Map<string, Uint8Array | null>()); // earlier writes to ns are void too
    };
    const tx: RecordTx = {
      get: (ns, id) => {
        const p = pending.get(ns)?.get(id);
        if (p === null) return undefined;
        if (p !== undefined) return copy(p);
        return cleared.has(ns) ? undefined : this.get(ns, id);
      },
      put: (ns, id, value) => {
        checkRecordName(ns, id);
        checkValue(value);
        let m = pending.get(ns);
        if (m === undefined) pending.set(ns, (m = new Map<string, Uint8Array | null>()));
        m.set(id, copy(value));
      },
      delete: (ns, id) => {
        let m = pending.get(ns);
        if (m === undefined) pending.set(ns, (m = new Map<string, Uint8Array | null>()));
        m.set(id, null);
      },
      clear,
      adopt: (staging) => {
        const own = this.#staging;
        assert(own !== undefined && staging === own, 'adopt takes the staging this store opened');
        for (const [ns, records] of own.take()) {
          clear(ns);
          const m = pending.get(ns);
          assert(m !== undefined, 'a cleared namespace has its pending map');
          for (const [id, value] of records) m.set(id, value);
        }
      },
    };
    const result = fn(tx);
    assert(!(result instanceof Promise), 'transactions are synchronous');
    for (const ns of cleared) this.#data.delete(ns);
    for (const [ns, writes] of pending) {
      let m = this.#data.get(ns);
      if (m === undefined) this.#data.set(ns, (m = new Map<string, Uint8Array>()));
      for (const [id, v] of writes) {
        if (v === null) m.delete(id);
        else m.set(id, v);
      }
    }
    return result;
  }

  stage(): RecordStaging {
    this.#check();
    assert(this.#staging === undefined, 'one staging at a time');
    const staging = new MemoryStaging(() => {
      if (this.#staging === staging) this.#staging = undefined;
    });
    this.#staging = staging;
    return staging;
  }

  close(): void {
    this.#staging?.discard();
    this.#open = false;
  }

  #check(): void {
    assert(this.#open, 'store used after close');
  }
}

/** MemoryRecordStore's staging: copies of the staged values, wiped when dropped. */
class MemoryStaging implements RecordStaging {
  #records: Map<string, Map<string, Uint8Array>> | undefined = new Map();
  readonly #release: () => void;

  constructor(release: () => void) {
    this.#release = release;
  }

  put(ns: string, id: string, value: Uint8Array): void {
    const records = this.#records;
    assert(records !== undefined, 'staging used after adopt or discard');
    try {
      checkRecordName(ns, id);
      checkValue(value);
    } catch (e) {
      this.discard();
      throw e;
    }
    let m = records.get(ns);
    if (m === undefined) records.set(ns, (m = new Map<string, Uint8Array>()));
    m.get(id)?.fill(0);
    m.set(id, copy(value));
  }

  /** Hands the staged records over (to an adopting transaction): the staging is spent. */
  take(): Map<string, Map<string, Uint8Array>> {
    const records = this.#records;
    assert(records !== undefined, 'staging used after adopt or discard');
    this.#records = undefined;
    return records;
  }

  discard(): void {
    for (const m of this.#records?.values() ?? []) for (const v of m.values()) v.fill(0);
    this.#records = undefined;
    this.#release();
  }
}

/** A copy in a buffer of its own. (Buffer#slice would be a view: a Buffer given to put, perhaps in
 * Node's shared pool, must not stay aliased to the stored record, nor a record handed out by get.) */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/**
 * A store that counts its write transactions (`writes`), so that what is computed from every record
 * (the device's state digest) can be kept until the next write instead of read again. Every write
 * goes through `transaction` (a staging lands by `adopt`, inside one); a transaction that fails
 * counts too, which only costs one recomputation.
 */
export class CountingStore implements RecordStore {
  readonly #inner: RecordStore;
  #writes = 0;

  constructor(inner: RecordStore) {
    this.#inner = inner;
  }

  /** Write transactions begun on this store so far. */
  get writes(): number {
    return this.#writes;
  }

  get(ns: string, id: string): Uint8Array | undefined {
    return this.#inner.get(ns, id);
  }

  list(ns: string): IterableIterator<[string, Uint8Array]> {
    return this.#inner.list(ns);
  }

  count(ns: string): number {
    return this.#inner.count(ns);
  }

  sizes(ns: string): IterableIterator<[string, number]> {
    return this.#inner.sizes(ns);
  }

  summary(ns: string): NamespaceSummary {
    return this.#inner.summary(ns);
  }

  namespaces(): string[] {
    return this.#inner.namespaces();
  }

  transaction<T>(fn: (tx: RecordTx) => T): T {
    this.#writes++;
    try {
      return this.#inner.transaction(fn);
    } finally {
      this.#writes++; // also after: a read made while it ran must not be kept as the state after it
    }
  }

  stage(): RecordStaging {
    return this.#inner.stage();
  }

  scrub(): void {
    this.#inner.scrub?.();
  }

  close(): void {
    this.#inner.close();
  }
}
