// The object index's arena (docs/device.md "Objects"): where every object's label, id, KCV and key
// material live while the device runs, packed into a few large buffers. One buffer (and three small
// ones) per object would cost about 400 bytes of heap each before any byte of content; packed, an
// object costs its content and an 8-byte header.
//
// The arena holds key material, so it is a secret owner like SecretBytes (CONTRIBUTING.md rule 3):
// its buffers are its own (new ArrayBuffer, never Node's shared pool); a freed region is zeroised at
// once; a buffer is zeroised before it is dropped; close() zeroises everything; it prints
// `[redacted]`. Views it hands out must not outlive the call they are given to.
//
// Layout: chunks of OBJECT_ARENA_CHUNK_BYTES. A region is an 8-byte header (u32 payload length, u32
// owner — the index's slot, or FREE) and its payload, appended at the tail chunk's end. A freed
// region keeps its length, so a chunk can still be walked, and everything else is zeroised. A chunk
// other than the tail whose freed bytes reach half its used bytes is evacuated: its live regions are
// copied to the tail (the owner hears where each went), then it is zeroised and dropped. So memory
// stays within about twice the live content, and no free ever moves more than half a chunk: no
// mutation costs O(index).

import { inspect } from 'node:util';
import { assert } from '../../assert.js';
import { OBJECT_ARENA_CHUNK_BYTES } from '../../formats/limits.js';

/** Where a region sits: chunk number × OBJECT_ARENA_CHUNK_BYTES + the offset of its header. */
export type ArenaRef = number;

const HEADER_BYTES = 8;
const FREE = 0xffffffff;
/** Where a region's payload starts in its chunk (SecretArena.chunkOf). */
export function payloadAt(ref: ArenaRef): number {
  return (ref % OBJECT_ARENA_CHUNK_BYTES) + HEADER_BYTES;
}

/** The largest payload: a chunk holds at least one region. */
export const ARENA_PAYLOAD_BYTES_MAX = OBJECT_ARENA_CHUNK_BYTES - HEADER_BYTES;

interface Chunk {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Bytes written from the start (headers included); regions are appended here. */
  used: number;
  /** Bytes of freed regions (headers included). */
  freed: number;
}

export class SecretArena {
  readonly #chunks: (Chunk | undefined)[] = [];
  /** Chunk numbers dropped and free for reuse, so refs stay small however long the device runs. */
  readonly #spare: number[] = [];
  readonly #onMove: (owner: number, ref: ArenaRef) => void;
  #tail = -1;
  #liveBytes = 0;

  /** `onMove` hears of every region an evacuation moves: its owner and its new place. */
  constructor(onMove: (owner: number, ref: ArenaRef) => void) {
    this.#onMove = onMove;
  }

  /** A zeroed region of `length` bytes owned by `owner` (a slot number, < 2^32 − 1). */
  alloc(length: number, owner: number): ArenaRef {
    assert(Number.isInteger(length) && length >= 0 && length <= ARENA_PAYLOAD_BYTES_MAX, 'an arena region fits a chunk');
    assert(Number.isInteger(owner) && owner >= 0 && owner < FREE, 'an arena owner is a slot number');
    const need = HEADER_BYTES + length;
    let tail = this.#chunks[this.#tail];
    if (tail === undefined || tail.used + need > OBJECT_ARENA_CHUNK_BYTES) tail = this.#newTail();
    const at = tail.used;
    tail.view.setUint32(at, length);
    tail.view.setUint32(at + 4, owner);
    tail.used += need;
    this.#liveBytes += need;
    return this.#tail * OBJECT_ARENA_CHUNK_BYTES + at;
  }

  /** A view of a region's payload. It must not escape the caller's call. */
  bytes(ref: ArenaRef): Uint8Array {
    const chunk = this.#live(ref);
    const at = ref % OBJECT_ARENA_CHUNK_BYTES;
    const length = chunk.view.getUint32(at);
    return chunk.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length);
  }

  /** The whole buffer a region sits in, for a writer that fills the payload field by field (from
   * payloadAt(ref)) without a view per field. Only the payload's bytes may be touched. */
  chunkOf(ref: ArenaRef): Uint8Array {
    return this.#live(ref).bytes;
  }

  /** Zeroises a region and gives its space back (evacuating or dropping its chunk when worth it). */
  free(ref: ArenaRef): void {
    const chunk = this.#live(ref);
    const at = ref % OBJECT_ARENA_CHUNK_BYTES;
    const length = chunk.view.getUint32(at);
    chunk.bytes.fill(0, at + 4, at + HEADER_BYTES + length);
    chunk.view.setUint32(at + 4, FREE);
    chunk.freed += HEADER_BYTES + length;
    this.#liveBytes -= HEADER_BYTES + length;
    const number = Math.floor(ref / OBJECT_ARENA_CHUNK_BYTES);
    if (chunk.freed === chunk.used) this.#drop(number);
    else if (number !== this.#tail && chunk.freed * 2 >= chunk.used) this.#evacuate(number);
  }

  /** Bytes held by live regions, headers included. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Bytes of the buffers the arena holds. */
  get heldBytes(): number {
    return this.#chunks.reduce((n, c) => n + (c === undefined ? 0 : c.bytes.length), 0);
  }

  /** Zeroises every buffer and forgets them. The arena can be used again afterwards (empty). */
  close(): void {
    for (let i = 0; i < this.#chunks.length; i++) if (this.#chunks[i] !== undefined) this.#zeroise(i);
    this.#chunks.length = 0;
    this.#spare.length = 0;
    this.#tail = -1;
    this.#liveBytes = 0;
  }

  /** @internal Tests: views of every buffer the arena holds now, to check close() zeroised them. */
  buffersForTest(): Uint8Array[] {
    return this.#chunks.flatMap((c) => (c === undefined ? [] : [c.bytes]));
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'SecretArena [redacted]';
  }

  /** The chunk of a live region (a ref to anything else is a bug). */
  #live(ref: ArenaRef): Chunk {
    const chunk = this.#chunks[Math.floor(ref / OBJECT_ARENA_CHUNK_BYTES)];
    const at = ref % OBJECT_ARENA_CHUNK_BYTES;
    assert(chunk !== undefined && at + HEADER_BYTES <= chunk.used && chunk.view.getUint32(at + 4) !== FREE, 'an arena ref names a live region');
    return chunk;
  }

  #newTail(): Chunk {
    const bytes = new Uint8Array(new ArrayBuffer(OBJECT_ARENA_CHUNK_BYTES)); // its own buffer, zeroed
    const chunk: Chunk = { bytes, view: new DataView(bytes.buffer), used: 0, freed: 0 };
    const number = this.#spare.pop() ?? this.#chunks.length;
    this.#chunks[number] = chunk;
    this.#tail = number;
    return chunk;
  }

  /** Moves a chunk's live regions to the tail, then drops it. */
  #evacuate(number: number): void {
    const chunk = this.#chunks[number];
    assert(chunk !== undefined && number !== this.#tail, 'only a full chunk is evacuated');
    for (let at = 0; at < chunk.used; ) {
      const length = chunk.view.getUint32(at);
      const owner = chunk.view.getUint32(at + 4);
      if (owner !== FREE) {
        const ref = this.alloc(length, owner);
        this.bytes(ref).set(chunk.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length));
        this.#liveBytes -= HEADER_BYTES + length; // counted again by alloc
        this.#onMove(owner, ref);
      }
      at += HEADER_BYTES + length;
    }
    this.#drop(number);
  }

  /** Zeroises a chunk and lets it go; an emptied tail is kept (zeroed) for the next regions. */
  #drop(number: number): void {
    const chunk = this.#chunks[number];
    assert(chunk !== undefined, 'a chunk to drop exists');
    this.#zeroise(number);
    if (number === this.#tail) {
      chunk.used = 0;
      chunk.freed = 0;
      return;
    }
    this.#chunks[number] = undefined;
    this.#spare.push(number);
  }

  #zeroise(number: number): void {
    const chunk = this.#chunks[number];
    if (chunk !== undefined) chunk.bytes.fill(0, 0, chunk.used);
  }
}
