// Handle → slot for the object index (object_index.ts): an open-addressing hash table in one
// Int32Array, since a Map spends about 40 bytes of heap per entry and the index is kept compact
// (docs/device.md "Objects"). It stores slot numbers only; a slot's handle is read from the index's
// handle column (which the index hands over again when it grows), so an entry costs 4 bytes at
// most twice over (the table is kept at most half full).
//
// Linear probing, Fibonacci hashing of the handle's two 32-bit halves (token handles are dense and
// ascending; the multiply spreads them), and deletion by backward shift, so no tombstones pile up
// on a device whose objects come and go.

import { assert } from '../../assert.js';
import type { Handle } from '../types.js';

const EMPTY = 0; // cells hold slot + 1
const INITIAL_BITS = 6;
const GOLDEN = 0x9e3779b9; // 2^32 / φ

export class HandleMap {
  /** The index's handle column: slot → handle (replaced by the index when it grows). */
  #handles: Float64Array;
  #cells = new Int32Array(1 << INITIAL_BITS);
  #bits = INITIAL_BITS;
  #size = 0;

  constructor(handles: Float64Array) {
    this.#handles = handles;
  }

  /** The index's new handle column, holding the same handles for the same slots. */
  useHandles(handles: Float64Array): void {
    this.#handles = handles;
  }

  get size(): number {
    return this.#size;
  }

  /** Bytes of the table itself. */
  get heldBytes(): number {
    return this.#cells.byteLength;
  }

  /** The slot of `handle`, or -1. */
  get(handle: Handle): number {
    const mask = this.#cells.length - 1;
    for (let i = this.#home(handle); ; i = (i + 1) & mask) {
      const cell = this.#cells[i] ?? EMPTY;
      if (cell === EMPTY) return -1;
      if (this.#handleOfSlot(cell - 1) === handle) return cell - 1;
    }
  }

  /** Maps `handle` (not mapped yet; its slot's handle column already says it) to `slot`. */
  set(handle: Handle, slot: number): void {
    assert(slot >= 0 && slot < 0x7fffffff && this.#handleOfSlot(slot) === handle, 'a slot holding its handle');
    this.reserve(this.#size + 1);
    const mask = this.#cells.length - 1;
    let i = this.#home(handle);
    while ((this.#cells[i] ?? EMPTY) !== EMPTY) i = (i + 1) & mask;
    this.#cells[i] = slot + 1;
    this.#size++;
  }

  /** Unmaps `handle` (while its slot still holds it). */
  delete(handle: Handle): void {
    const mask = this.#cells.length - 1;
    let i = this.#home(handle);
    for (; ; i = (i + 1) & mask) {
      const cell = this.#cells[i] ?? EMPTY;
      if (cell === EMPTY) return;
      if (this.#handleOfSlot(cell - 1) === handle) break;
    }
    this.#size--;
    // Backward shift: move later cells of the run into the gap when their home allows it.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const cell = this.#cells[j] ?? EMPTY;
      if (cell === EMPTY) break;
      const home = this.#home(this.#handleOfSlot(cell - 1));
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      this.#cells[i] = cell;
      i = j;
    }
    this.#cells[i] = EMPTY;
  }

  /** Room for `entries` entries at most half full. */
  reserve(entries: number): void {
    if (2 * entries <= this.#cells.length) return;
    let bits = this.#bits;
    while (1 << bits < 2 * entries) bits++;
    const old = this.#cells;
    this.#cells = new Int32Array(1 << bits);
    this.#bits = bits;
    const mask = this.#cells.length - 1;
    for (const cell of old) {
      if (cell === EMPTY) continue;
      let i = this.#home(this.#handleOfSlot(cell - 1));
      while ((this.#cells[i] ?? EMPTY) !== EMPTY) i = (i + 1) & mask;
      this.#cells[i] = cell;
    }
  }

  clear(): void {
    this.#cells = new Int32Array(1 << INITIAL_BITS);
    this.#bits = INITIAL_BITS;
    this.#size = 0;
  }

  #handleOfSlot(slot: number): Handle {
    return this.#handles[slot] ?? -1;
  }

  #home(handle: Handle): number {
    const high = handle > 0xffffffff ? Math.floor(handle / 0x100000000) : 0; // token handles: 0, no division
    return Math.imul((handle >>> 0) ^ Math.imul(high, GOLDEN), GOLDEN) >>> (32 - this.#bits);
  }
}
