// A RecordStore wrapper for tests that simulates a failing disk: either the next transaction fails
// after its writes were staged (`failNext`), or every transaction fails at its n-th put
// (`failAtPut`, a disk filling up half-way through).

import type { RecordStore, RecordTx } from '../../../src/hsm/store/store_port.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';

export class FailingStore implements RecordStore {
  failNext = false;
  failAtPut = 0;
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
      });
      if (failAfter) throw new Error('simulated store failure');
      return result;
    });
  }
  close(): void {
    this.inner.close();
  }
}
