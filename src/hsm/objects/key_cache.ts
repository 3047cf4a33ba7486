// The KeyObjects of the object index (docs/device.md "Objects"): built from an object's stored bytes
// the first time it is used, and kept for the OBJECT_KEY_CACHE_MAX keys used most recently. A built
// key holds a few KB of native memory, so keeping every key ever used would grow without bound on a
// device of 100k keys; keeping a bounded working set keeps the hot path one array read. Keys are the
// index's slot numbers (the table drops a slot's key whenever the slot's object changes or goes).
//
// Replacement is second chance (the CLOCK approximation of least-recently-used): a hit only sets a
// flag, so the hot path writes nothing else; when the cache is full, the oldest entries whose flag
// is set get it cleared and go to the back, and the first one without it is dropped. Dropping a
// KeyObject leaves its native memory to node's garbage collector, as the table always did: node
// offers no way to wipe a KeyObject.

import { assert } from '../../assert.js';
import type { KeyMaterial } from '../mechanisms/mechanisms.js';

interface Cached {
  readonly material: KeyMaterial;
  used: boolean;
}

export class KeyCache {
  readonly #max: number;
  /** Insertion order, for replacement. */
  readonly #keys = new Map<number, Cached>();
  /** The same entries by slot: what a hit reads (an array read, where a Map costs a hash). */
  readonly #bySlot: (Cached | undefined)[] = [];

  constructor(max: number) {
    assert(Number.isInteger(max) && max >= 1, 'a key cache holds at least one key');
    this.#max = max;
  }

  /** The built key of `slot`'s object, if kept. */
  get(slot: number): KeyMaterial | undefined {
    const cached = this.#bySlot[slot];
    if (cached === undefined) return undefined;
    cached.used = true;
    return cached.material;
  }

  /** Keeps `material` as `slot`'s key, dropping a key not used lately if the cache is full. */
  set(slot: number, material: KeyMaterial): void {
    this.delete(slot);
    while (this.#keys.size >= this.#max) this.#evictOne();
    const cached = { material, used: false };
    this.#keys.set(slot, cached);
    this.#bySlot[slot] = cached;
  }

  /** Forgets `slot`'s key (its object changed or went). */
  delete(slot: number): void {
    if (this.#keys.delete(slot)) this.#bySlot[slot] = undefined;
  }

  clear(): void {
    this.#keys.clear();
    this.#bySlot.length = 0;
  }

  get size(): number {
    return this.#keys.size;
  }

  /** Drops the oldest key not used since it last came round; used ones get a second chance. */
  #evictOne(): void {
    for (const [slot, cached] of this.#keys) {
      this.#keys.delete(slot);
      if (!cached.used) {
        this.#bySlot[slot] = undefined;
        return;
      }
      cached.used = false;
      this.#keys.set(slot, cached); // to the back: its second chance
    }
  }
}
