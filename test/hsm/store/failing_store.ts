// A RecordStore wrapper for tests that simulates a failing disk: either the next transaction fails
// after its writes were staged (`failNext`), or every transaction — and every staging — fails at its
// n-th put (`failAtPut`, a disk filling up half-way through).

import { assert } from '../../../src/assert.js';
import type { NamespaceSummary, RecordStaging, RecordStore, RecordTx } from '../../../src/hsm/store/store_port.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';

export class FailingStore implements RecordStore {
  failNext = false;
  failAtPut = 0;
  /** Each staging handed out, with the inner store's staging it wraps. */
  readonly #stagings = new WeakMap<RecordStaging, RecordStaging>();
  constructor(readonly inner: MemoryRecordStore = new MemoryRecordStore()) {}
  get(ns: string, id: string): Uint8Array | undefined {
    return this.inner.get(ns, id);
  }
  list(ns: string): IterableIterator<[string, Uint8Array]> {
    return this.inner.list(ns);
  }
  count(ns: string): number {
    return this.inner.count(ns);
  }
  namespaces(): string[] {
    return this.inner.namespaces();
  }
  sizes(ns: string): IterableIterator<[string, number]> {
    return this.inner.sizes(ns);
  }
  summary(ns: string): NamespaceSummary {
    return this.inner.summary(ns);
  }
  transaction<T>(fn: (tx: RecordTx) => T): T {
    const failAfter = this.failNext;
    this.failNext = false;
    return this.inner.transaction((tx) => {
      let puts = 0;
      const result = fn({
        get: (ns, id) => tx.get(ns, id),
        delete: (ns, id) => tx.delete(ns, id),
        clear: (ns) => tx.clear(ns),
        put: (ns, id, value) => {
          if (this.failAtPut > 0 && ++puts === this.failAtPut) throw new Error('simulated disk full');
          tx.put(ns, id, value);
        },
        adopt: (staging) => {
          const inner = this.#stagings.get(staging);
          assert(inner !== undefined, 'a staging of this store');
          tx.adopt(inner);
        },
      });
      if (failAfter) throw new Error('simulated store failure');
      return result;
    });
  }
  stage(): RecordStaging {
    const inner = this.inner.stage();
    let puts = 0;
    const staging: RecordStaging = {
      put: (ns, id, value) => {
        if (this.failAtPut > 0 && ++puts === this.failAtPut) {
          inner.discard(); // as a staging does when a write fails
          throw new Error('simulated disk full');
        }
        inner.put(ns, id, value);
      },
      discard: () => inner.discard(),
    };
    this.#stagings.set(staging, inner);
    return staging;
  }
  close(): void {
    this.inner.close();
  }
}
