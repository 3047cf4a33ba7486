// The port every piece of device state goes through: a namespaced record store with atomic
// transactions. The sealed adapter (store.ts) encrypts every record under the device storage
// key and survives crashes; MemoryRecordStore is the in-process adapter for unit tests and for
// staging. Both pass test/hsm/store_conformance.ts.
//
// Synchronous by design: the device's state machine is deterministic and single-threaded; crypto
// that must use the thread pool happens outside the store.

import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import { SEALED_RECORD_BYTES_MAX } from '../../formats/limits.js';

/** One write inside a transaction. Values are plaintext here; the adapter seals them. */
export interface RecordTx {
  get(ns: string, id: string): Uint8Array | undefined;
  put(ns: string, id: string, value: Uint8Array): void;
  delete(ns: string, id: string): void;
  /** Deletes every record of a namespace (restore replaces a device's state wholesale). Writes
   * after it in the same transaction land; reads after it see only those. */
  clear(ns: string): void;
}

export interface RecordStore {
  get(ns: string, id: string): Uint8Array | undefined;
  /** Every record of a namespace, in ascending id order. */
  list(ns: string): IterableIterator<[string, Uint8Array]>;
  count(ns: string): number;
  /** Every record id of a namespace with the length of its value in bytes, in list() order, without
   * reading the values (a backup sizes its body with it before streaming it). */
  sizes(ns: string): IterableIterator<[string, number]>;
  /** The namespaces that hold at least one record, in ascending (JavaScript string) order. */
  namespaces(): string[];
  /** Runs `fn` atomically: either every write lands or none does (also across a crash). */
  transaction<T>(fn: (tx: RecordTx) => T): T;
  /** Makes records already deleted unrecoverable from the store's own files (zeroise): a store
   * that keeps freed space or old page images rewrites and empties them. Absent: nothing kept. */
  scrub?(): void;
  close(): void;
}

/** In-memory adapter: same semantics as the sealed store, no persistence. */
export class MemoryRecordStore implements RecordStore {
  readonly #data = new Map<string, Map<string, Uint8Array>>();
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

  namespaces(): string[] {
    this.#check();
    return [...this.#data].filter(([, m]) => m.size > 0).map(([ns]) => ns).sort();
  }

  transaction<T>(fn: (tx: RecordTx) => T): T {
    this.#check();
    const pending = new Map<string, Map<string, Uint8Array | null>>();
    /** Namespaces cleared in this transaction: the committed records there no longer show. */
    const cleared = new Set<string>();
    const tx: RecordTx = {
      get: (ns, id) => {
        const p = pending.get(ns)?.get(id);
        if (p === null) return undefined;
        if (p !== undefined) return copy(p);
        return cleared.has(ns) ? undefined : this.get(ns, id);
      },
      put: (ns, id, value) => {
        if (value.length > SEALED_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'record', max: SEALED_RECORD_BYTES_MAX });
        let m = pending.get(ns);
        if (m === undefined) pending.set(ns, (m = new Map<string, Uint8Array | null>()));
        m.set(id, copy(value));
      },
      delete: (ns, id) => {
        let m = pending.get(ns);
        if (m === undefined) pending.set(ns, (m = new Map<string, Uint8Array | null>()));
        m.set(id, null);
      },
      clear: (ns) => {
        cleared.add(ns);
        pending.set(ns, new Map<string, Uint8Array | null>()); // earlier writes to ns are void too
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

  close(): void {
    this.#open = false;
  }

  #check(): void {
    assert(this.#open, 'store used after close');
  }
}

/** A copy in a buffer of its own. (Buffer#slice would be a view: a Buffer given to put, perhaps in
 * Node's shared pool, must not stay aliased to the stored record, nor a record handed out by get.) */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}
