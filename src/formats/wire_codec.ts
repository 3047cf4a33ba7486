// Typed primitives of the data-plane wire protocol (docs/wire-protocol.md "Payload primitives").
//
// Each operation's payload is a fixed sequence of these primitives, composed once at module load
// into a static codec (a struct is an array of [field, codec] pairs built at start-up, so encoding a
// message is a loop over closures and DataView calls, with no per-message reflection or schema
// walk). All integers are big-endian. Every length is checked against a named limit before any
// byte it covers is read or allocated; a decoder reports only typed errors (errors.ts), never a
// RangeError or TypeError, because it faces bytes from the network.

import { fail, isCofferError } from '../errors.js';

/** A scratch buffer that grew past this for one large message shrinks back after it. */
const SCRATCH_KEEP_BYTES = 1024 * 1024;

/** Appends primitives to a growable buffer. One scratch Writer is reused per thread of encoding. */
export class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(bytes = 1024) {
    this.buf = new Uint8Array(bytes);
    this.view = new DataView(this.buf.buffer);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf.fill(0); // the old buffer may hold a password or key being encoded
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    // Range-checked: DataView would silently wrap an out-of-range value into another one.
    if (!(v >= 0 && v <= 0xff && Number.isInteger(v))) fail('COFFER_FORMAT_LIMIT', { field: 'u8' });
    this.ensure(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }
  u16(v: number): void {
    // Range-checked: DataView would silently wrap an out-of-range value into another one.
    if (!(v >= 0 && v <= 0xffff && Number.isInteger(v))) fail('COFFER_FORMAT_LIMIT', { field: 'u16' });
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u32(v: number): void {
    // Range-checked: DataView would silently wrap an out-of-range value into another one.
    if (!(v >= 0 && v <= 0xffff_ffff && Number.isInteger(v))) fail('COFFER_FORMAT_LIMIT', { field: 'u32' });
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** The written bytes, copied out; the scratch area is zeroed (it may have held a secret). */
  take(): Uint8Array {
    const out = carve(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    this.buf.fill(0, 0, this.pos);
    this.pos = 0;
    if (this.buf.length > SCRATCH_KEEP_BYTES) this.#reset(); // one 16 MiB message need not pin 32 MiB
    return out;
  }
  #reset(): void {
    this.buf = new Uint8Array(SCRATCH_KEEP_BYTES);
    this.view = new DataView(this.buf.buffer);
  }
}

// Encoded messages are carved out of a slab rather than allocated one by one: V8 allocates a typed
// array above 64 bytes with its own backing store (~1 µs, measured: twice the cost of encoding a
// SIGN reply). Every carved view is written in full before it is handed out, a slab is never
// reused once exhausted (a fresh one replaces it), so no message can expose another's bytes.
const SLAB_BYTES = 256 * 1024;
const SLAB_MESSAGE_BYTES_MAX = 4 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

function carve(n: number): Uint8Array {
  if (n > SLAB_MESSAGE_BYTES_MAX) return new Uint8Array(n);
  if (slabUsed + n > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += (n + 7) & ~7; // keep views 8-byte aligned
  return out;
}

/** Reads primitives from one payload; every read is bounds-checked (COFFER_FORMAT_TRUNCATED). */
export class Reader {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) fail('COFFER_FORMAT_TRUNCATED');
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  /** A view into the payload (no copy). */
  sub(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  end(): void {
    if (this.pos !== this.buf.length) fail('COFFER_FORMAT_MALFORMED', { reason: 'trailing bytes' });
  }
}

export interface Codec<T> {
  write(w: Writer, v: T): void;
  read(r: Reader): T;
}
/** A struct field that may be absent (exactOptionalPropertyTypes: absent, never `undefined`). */
export interface OptCodec<T> extends Codec<T | undefined> {
  readonly optional: true;
}
export type Infer<C> = C extends OptCodec<infer T> ? T : C extends Codec<infer T> ? T : never;

export const u8: Codec<number> = { write: (w, v) => w.u8(v), read: (r) => r.u8() };
export const u16: Codec<number> = { write: (w, v) => w.u16(v), read: (r) => r.u16() };
export const u32: Codec<number> = { write: (w, v) => w.u32(v), read: (r) => r.u32() };

/** u64 as two u32 halves; values above 2^53 - 1 are refused (they would lose precision). */
export const u64: Codec<number> = {
  write: (w, v) => {
    if (!(Number.isSafeInteger(v) && v >= 0)) fail('COFFER_FORMAT_LIMIT', { field: 'u64' });
    w.u32(Math.floor(v / 2 ** 32));
    w.u32(v >>> 0);
  },
  read: (r) => {
    const hi = r.u32();
    const lo = r.u32();
    if (hi > 0x1f_ffff) fail('COFFER_FORMAT_MALFORMED', { reason: 'u64 above 2^53' });
    return hi * 2 ** 32 + lo;
  },
};

/** u64 as a bigint, the whole range (journal positions). */
export const u64big: Codec<bigint> = {
  write: (w, v) => {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) fail('COFFER_FORMAT_LIMIT', { field: 'u64' });
    w.u32(Number(v >> 32n));
    w.u32(Number(v & 0xffff_ffffn));
  },
  read: (r) => (BigInt(r.u32()) << 32n) | BigInt(r.u32()),
};

/** IEEE 754 double (error detail numbers only). */
export const f64: Codec<number> = {
  write: (w, v) => {
    w.ensure(8);
    w.view.setFloat64(w.pos, v);
    w.pos += 8;
  },
  read: (r) => {
    r.need(8);
    const v = r.view.getFloat64(r.pos);
    r.pos += 8;
    return v;
  },
};

export const bool: Codec<boolean> = {
  write: (w, v) => w.u8(v ? 1 : 0),
  read: (r) => {
    const b = r.u8();
    if (b > 1) fail('COFFER_FORMAT_MALFORMED', { reason: 'bool not 0 or 1' });
    return b === 1;
  },
};

function checkLimit(n: number, max: number): void {
  if (n > max) fail('COFFER_FORMAT_LIMIT', { length: n, max });
}

/** Bytes with a u32 length, at most `max`; decodes to a view into the payload (no copy). */
export function bytes(max: number): Codec<Uint8Array> {
  return {
    write: (w, v) => {
      checkLimit(v.length, max);
      w.u32(v.length);
      w.raw(v);
    },
    read: (r) => {
      const n = r.u32();
      checkLimit(n, max);
      return r.sub(n);
    },
  };
}

/** Like bytes, but decodes to a fresh copy the caller owns and can zeroise (passwords, keys). */
export function secretBytes(max: number): Codec<Uint8Array> {
  const inner = bytes(max);
  return { write: (w, v) => inner.write(w, v), read: (r) => inner.read(r).slice() };
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** UTF-8 text with a u16 byte length, at most `maxBytes` (≤ 65535); invalid UTF-8 is malformed. */
export function string(maxBytes: number): Codec<string> {
  return {
    write: (w, v) => {
      const b = utf8Encoder.encode(v);
      checkLimit(b.length, maxBytes);
      w.u16(b.length);
      w.raw(b);
    },
    read: (r) => {
      const n = r.u16();
      checkLimit(n, maxBytes);
      const b = r.sub(n);
      try {
        return utf8Decoder.decode(b);
      } catch {
        return fail('COFFER_FORMAT_MALFORMED', { reason: 'invalid UTF-8' });
      }
    },
  };
}

/** u8 presence flag (0 absent, 1 present) then the value. */
export function opt<T>(c: Codec<T>): OptCodec<T> {
  return {
    optional: true,
    write: (w, v) => {
      if (v === undefined) return w.u8(0);
      w.u8(1);
      c.write(w, v);
    },
    read: (r) => (bool.read(r) ? c.read(r) : undefined),
  };
}

/**
 * An optional field that may only end a payload: written only when present, read only when bytes
 * remain. It lets a request grow a field that older peers neither send nor expect (a trailing
 * extension) without changing the bytes of a request that leaves it out (docs/wire-protocol.md §4).
 */
export function trailing<T>(c: Codec<T>): OptCodec<T> {
  return {
    optional: true,
    write: (w, v) => {
      if (v !== undefined) c.write(w, v);
    },
    read: (r) => {
      if (r.pos === r.buf.length) return undefined;
      try {
        return c.read(r);
      } catch (e) {
        // Bytes after the last field that do not make a whole extension are trailing garbage.
        if (isCofferError(e, 'COFFER_FORMAT_TRUNCATED')) fail('COFFER_FORMAT_MALFORMED', { reason: 'trailing bytes' });
        throw e;
      }
    },
  };
}

/** Exactly `n` bytes, no length prefix; decodes to a copy. */
export function fixedBytes(n: number): Codec<Uint8Array> {
  return {
    write: (w, v) => {
      if (v.length !== n) fail('COFFER_FORMAT_MALFORMED', { reason: 'fixed-length field', length: v.length, expected: n });
      w.raw(v);
    },
    read: (r) => r.sub(n).slice(),
  };
}

/** u16 count, at most `max`, then the items. */
export function list<T>(c: Codec<T>, max: number): Codec<readonly T[]> {
  return {
    write: (w, v) => {
      checkLimit(v.length, max);
      w.u16(v.length);
      for (const item of v) c.write(w, item);
    },
    read: (r) => {
      const n = r.u16();
      checkLimit(n, max);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(c.read(r));
      return out;
    },
  };
}

/** A string enumeration as a u8 index into `names` (order is part of the protocol: append only). */
export function enumeration<const N extends readonly string[]>(names: N): Codec<N[number]> {
  const index = new Map<string, number>(names.map((n, i) => [n, i]));
  return {
    write: (w, v) => {
      const i = index.get(v);
      if (i === undefined) fail('COFFER_FORMAT_MALFORMED', { reason: 'value not in enumeration' });
      w.u8(i);
    },
    read: (r) => {
      const name = names[r.u8()];
      if (name === undefined) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown enumeration value' });
      return name;
    },
  };
}

type Fields = Record<string, Codec<unknown>>;
type Req<F> = { [K in keyof F as F[K] extends OptCodec<unknown> ? never : K]: Infer<F[K]> };
type Opt<F> = { [K in keyof F as F[K] extends OptCodec<unknown> ? K : never]?: Exclude<Infer<F[K]>, undefined> };
type Flat<T> = { readonly [K in keyof T]: T[K] };
export type StructOf<F> = Flat<Req<F> & Opt<F>>;

/** A struct codec can also read its fields into an object the caller started (a tag first). */
export interface StructCodec<T> extends Codec<T> {
  readInto(r: Reader, o: Record<string, unknown>): void;
}

/** Fields in declaration order (the order is the protocol). Absent optional fields stay absent. */
export function struct<F extends Fields>(fields: F): StructCodec<StructOf<F>> {
  const keys = Object.keys(fields);
  const codecs: Codec<unknown>[] = Object.values(fields);
  const n = keys.length;
  const readInto = (r: Reader, o: Record<string, unknown>): void => {
    for (let i = 0; i < n; i++) {
      const x = (codecs[i] as Codec<unknown>).read(r);
      if (x !== undefined) o[keys[i] as string] = x;
    }
  };
  return {
    write: (w, v) => {
      const o = v as Record<string, unknown>;
      for (let i = 0; i < n; i++) (codecs[i] as Codec<unknown>).write(w, o[keys[i] as string]);
    },
    read: (r) => {
      const o: Record<string, unknown> = {};
      readInto(r, o);
      return o as StructOf<F>;
    },
    readInto,
  };
}

/** A tagged union: u8 tag (index into `variants`), then that variant's codec. */
export function tagged<T>(variants: readonly { readonly is: (v: T) => boolean; readonly codec: Codec<T> }[]): Codec<T> {
  return {
    write: (w, v) => {
      const i = variants.findIndex((x) => x.is(v));
      const variant = variants[i];
      if (variant === undefined) fail('COFFER_FORMAT_MALFORMED', { reason: 'value matches no variant' });
      w.u8(i);
      variant.codec.write(w, v);
    },
    read: (r) => {
      const variant = variants[r.u8()];
      if (variant === undefined) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown variant tag' });
      return variant.codec.read(r);
    },
  };
}

/** Maps a codec's value (both directions are pure and total). */
export function mapped<A, B>(c: Codec<A>, to: (a: A) => B, from: (b: B) => A): Codec<B> {
  return { write: (w, v) => c.write(w, from(v)), read: (r) => to(c.read(r)) };
}

/** Decodes a whole payload with `c`; trailing bytes are malformed. */
export function decodeWith<T>(c: Codec<T>, payload: Uint8Array): T {
  const r = new Reader(payload);
  const v = c.read(r);
  r.end();
  return v;
}

/** Encodes into the scratch writer and returns a fresh copy; the scratch is cleared even when a
 * value is refused (an oversize field), so no half-written secret stays behind. */
export function encodeWith<T>(c: Codec<T>, v: T, w: Writer): Uint8Array {
  try {
    c.write(w, v);
    return w.take();
  } finally {
    w.buf.fill(0, 0, w.pos);
    w.pos = 0;
  }
}
