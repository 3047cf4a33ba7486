// A bounds-checked big-endian reader over one encoded record (CONTRIBUTING.md rule 4): every read
// first checks that its bytes are there. The formats that decode records field by field (change
// sets, object records, the backup header) share it; each says what running past the end means for
// it (truncated input, or a field past a header's own length).

import { fail } from '../errors.js';

export class ByteReader {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  readonly #overrun: (at: number, needed: number) => never;
  /** The offset of the next read. */
  at: number;

  /** `overrun` says what a read past the end is (default COFFER_FORMAT_TRUNCATED). */
  constructor(bytes: Uint8Array, at = 0, overrun: (at: number, needed: number) => never = truncated) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#overrun = overrun;
    this.at = at;
  }

  /** Reserves the next `n` bytes; returns where they start. */
  #take(n: number): number {
    if (this.at + n > this.bytes.length) this.#overrun(this.at, n);
    const start = this.at;
    this.at += n;
    return start;
  }

  u8(): number { return this.#view.getUint8(this.#take(1)); }
  u16(): number { return this.#view.getUint16(this.#take(2)); }
  u32(): number { return this.#view.getUint32(this.#take(4)); }
  u64(): bigint { return this.#view.getBigUint64(this.#take(8)); }

  /** A view (not a copy) of the next `n` bytes. */
  view(n: number): Uint8Array {
    const start = this.#take(n);
    return this.bytes.subarray(start, start + n);
  }

  /** A copy of the next `n` bytes, the caller's own. */
  copy(n: number): Uint8Array {
    return new Uint8Array(this.view(n)); // not .slice(): on a Buffer it would be a view
  }
}

function truncated(at: number, needed: number): never {
  return fail('COFFER_FORMAT_TRUNCATED', { offset: at, needed });
}
