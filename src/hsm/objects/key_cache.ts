// The KeyObjects of the object index (docs/device.md "Objects"): built from an object's stored bytes
// the first time it is used, and kept for the OBJECT_KEY_CACHE_MAX keys used most recently. A built
// key holds a few KB of native memory, so keeping every key ever used would grow without bound on a
// device of 100k keys; keeping a bounded working set keeps the hot path a map lookup.
//
// Replacement is second chance (the CLOCK approximation of least-recently-used): a hit only sets a
// flag, so the hot path writes nothing else; when the cache is full, the oldest entries whose flag
// is set get it cleared and go to the back, and the first one without it is dropped. Dropping a
// KeyObject leaves its native memory to node's garbage collector, as the table always did: node
// offers no way to wipe a KeyObject.

import { assert } from '../../assert.js';
import type { KeyMaterial } from '../mechanisms/mechanisms.js';
import type { Handle } from '../types.js';

interface Cached {
  readonly material: KeyMaterial;
  used: boolean;
}

export class KeyCache {
  readonly #max: number;
  readonly #keys = new Map<Handle, Cached>();

  constructor(max: number) {
    assert(Number.isInteger(max) && max >= 1, 'a key cache holds at least one key');
    this.#max = max;
  }

  /** The built key of `handle`, if kept. */
  get(handle: Handle): KeyMaterial | undefined {
    const cached = this.#keys.get(handle);
    if (cached === undefined) return undefined;
    cached.used = true;
    return cached.material;
  }

  /** Keeps `material` as `handle`'s key, dropping a key not used lately if the cache is full. */
  set(handle: Handle, material: KeyMaterial): void {
    this.#keys.delete(handle);
    while (this.#keys.size >= this.#max) this.#evictOne();
    this.#keys.set(handle, { material, used: false });
  }

  /** Forgets `handle`'s key (the object changed or went). */
  delete(handle: Handle): void {
    this.#keys.delete(handle);
  }

  clear(): void {
    this.#keys.clear();
  }

  get size(): number {
    return this.#keys.size;
  }

  /** Drops the oldest key not used since it last came round; used ones get a second chance. */
  #evictOne(): void {
    for (const [handle, cached] of this.#keys) {
      this.#keys.delete(handle);
      if (!cached.used) return;
      cached.used = false;
      this.#keys.set(handle, cached); // to the back: its second chance
    }
  }
}
