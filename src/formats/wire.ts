// Data-plane wire protocol v1: frames, the streaming frame decoder, the write coalescer and the
// typed encode/decode entry points (docs/wire-protocol.md).
//
// A frame is  u32 length ‖ u8 kind ‖ u32 request id ‖ u16 op code ‖ payload  (big-endian; length
// counts the bytes after itself). Many requests are in flight per connection and replies come in
// any order, matched by request id. The decoder refuses a length above WIRE_FRAME_BYTES_MAX before
// buffering a byte of its frame, holds only the bytes of a frame that have arrived, and dies on the
// first error: the connection is then closed, because after garbage the stream has no trustworthy
// frame boundary (docs/wire-protocol.md §2).

import { CofferError, ERRORS, fail, isCofferError, type ErrorCode } from '../errors.js';
import { WIRE_BATCH_ITEMS_MAX, WIRE_ERROR_DETAIL_ENTRIES_MAX, WIRE_FRAME_BYTES_MAX, WIRE_IN_FLIGHT_MAX, WIRE_SESSIONS_PER_CONNECTION_MAX } from './limits.js';
import { Writer, decodeWith, type Codec } from './wire_codec.js';
import { OPS, busyPayload, errorPayload, opName, type OpName, type WireError, type WireRequest, type WireResponse } from './wire_ops.js';

export { OPS, MECHANISM_CODES, BOOLEAN_ATTRIBUTES, opName } from './wire_ops.js';
export type { OpName, WireRequest, WireResponse, WireError, WireMechanismParams, WireBooleanAttributes } from './wire_ops.js';

/** The protocol versions this build speaks (HELLO negotiates the highest both sides know). */
export const WIRE_VERSION_MIN = 1;
export const WIRE_VERSION_MAX = 1;
/** u32 length + u8 kind + u32 request id + u16 op code. */
export const FRAME_HEADER_BYTES = 11;
const LENGTH_MIN = FRAME_HEADER_BYTES - 4;

export const FrameKind = { REQUEST: 1, RESPONSE: 2, ERROR: 3, BUSY: 4 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** One decoded frame. `payload` is a view into the received bytes (copied only when the frame
 * spanned several chunks); it stays valid as long as the caller keeps the chunk. */
export interface Frame {
  readonly kind: FrameKind;
  readonly requestId: number;
  readonly op: number;
  readonly payload: Uint8Array;
}

const scratch = new Writer(64 * 1024);
/** An already encoded payload, copied in as is. */
const rawPayload: Codec<Uint8Array> = { write: (w, p) => w.raw(p), read: (r) => r.sub(r.buf.length - r.pos) };

/** Encodes a whole frame around an already encoded payload. */
export function encodeFrame(kind: FrameKind, requestId: number, op: number, payload: Uint8Array): Uint8Array {
  return encodeFrameWith(kind, requestId, op, rawPayload, payload);
}

/** Writes the header, then the payload straight after it in the scratch buffer (one copy out). */
function encodeFrameWith<T>(kind: FrameKind, requestId: number, op: number, codec: Codec<T>, value: T): Uint8Array {
  try {
    scratch.u32(0);
    scratch.u8(kind);
    scratch.u32(requestId);
    scratch.u16(op);
    codec.write(scratch, value);
    if (scratch.pos > WIRE_FRAME_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { length: scratch.pos, max: WIRE_FRAME_BYTES_MAX });
    scratch.view.setUint32(0, scratch.pos - 4);
    return scratch.take();
  } finally {
    scratch.buf.fill(0, 0, scratch.pos); // a refused value may have left part of a secret behind
    scratch.pos = 0;
  }
}

export function encodeRequest<N extends OpName>(requestId: number, name: N, request: WireRequest<N>): Uint8Array {
  const o = OPS[name];
  return encodeFrameWith(FrameKind.REQUEST, requestId, o.code, o.request as Codec<WireRequest<N>>, request);
}

export function encodeResponse<N extends OpName>(requestId: number, name: N, response: WireResponse<N>): Uint8Array {
  const o = OPS[name];
  return encodeFrameWith(FrameKind.RESPONSE, requestId, o.code, o.response as Codec<WireResponse<N>>, response);
}

/** An ERROR reply: the typed error's stable code and detail (never its message text, cause or
 * stack; detail is non-secret by the registry's rule). Untyped exceptions are server bugs: the node
 * closes the connection rather than describe them. */
export function encodeError(requestId: number, op: number, error: CofferError): Uint8Array {
  return encodeFrameWith(FrameKind.ERROR, requestId, op, errorPayload, toWireError(error));
}

/** A BUSY reply: the node is at capacity; the client retries after `retryAfterMs` (here or elsewhere). */
export function encodeBusy(requestId: number, op: number, retryAfterMs: number): Uint8Array {
  return encodeFrameWith(FrameKind.BUSY, requestId, op, busyPayload, { retryAfterMs });
}

/** A request, by operation, as the server decodes it. */
export type AnyRequest = { [N in OpName]: { readonly name: N; readonly request: WireRequest<N> } }[OpName];

/** Decodes a REQUEST frame: the op code must be known and the payload exactly its codec's. */
export function decodeRequest(frame: Frame): AnyRequest {
  if (frame.kind !== FrameKind.REQUEST) fail('COFFER_FORMAT_MALFORMED', { reason: 'not a request frame' });
  const name = opName(frame.op);
  const codec = OPS[name].request as Codec<unknown>;
  return { name, request: decodeWith(codec, frame.payload) } as AnyRequest;
}

/** What a client gets back for a request it sent as operation `name`. */
export type Reply<N extends OpName> =
  | { readonly kind: 'response'; readonly response: WireResponse<N> }
  | { readonly kind: 'error'; readonly error: CofferError }
  | { readonly kind: 'busy'; readonly retryAfterMs: number };

/** Decodes a reply frame to a request of operation `name` (the client matched it by request id). */
export function decodeReply<N extends OpName>(name: N, frame: Frame): Reply<N> {
  if (frame.op !== OPS[name].code) fail('COFFER_FORMAT_MALFORMED', { reason: 'reply op differs from request op' });
  switch (frame.kind) {
    case FrameKind.RESPONSE:
      return { kind: 'response', response: decodeWith(OPS[name].response as Codec<WireResponse<N>>, frame.payload) };
    case FrameKind.ERROR:
      return { kind: 'error', error: fromWireError(decodeWith(errorPayload, frame.payload)) };
    case FrameKind.BUSY:
      return { kind: 'busy', retryAfterMs: decodeWith(busyPayload, frame.payload).retryAfterMs };
    default:
      return fail('COFFER_FORMAT_MALFORMED', { reason: 'a request frame sent as a reply' });
  }
}

export function toWireError(error: CofferError): WireError {
  const detail = Object.entries(error.detail).slice(0, WIRE_ERROR_DETAIL_ENTRIES_MAX).map(([key, value]) => ({ key, value }));
  return { code: error.code, detail };
}

/** The client's view of an ERROR reply. A code this build does not know (a newer server) is
 * refused as malformed rather than guessed at; servers speak only codes of the negotiated version. */
export function fromWireError(e: WireError): CofferError {
  if (!Object.hasOwn(ERRORS, e.code)) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown error code' });
  const detail: Record<string, string | number | boolean> = {};
  for (const { key, value } of e.detail) detail[key] = value;
  return new CofferError(e.code as ErrorCode, detail);
}

/** The server's answer to HELLO: the highest version both speak, or COFFER_FORMAT_UNKNOWN_VERSION. */
export function negotiateVersion(hello: WireRequest<'HELLO'>): WireResponse<'HELLO'> {
  const version = Math.min(hello.versionMax, WIRE_VERSION_MAX);
  if (hello.versionMin > hello.versionMax || version < Math.max(hello.versionMin, WIRE_VERSION_MIN)) {
    fail('COFFER_FORMAT_UNKNOWN_VERSION', { supportedMin: WIRE_VERSION_MIN, supportedMax: WIRE_VERSION_MAX });
  }
  return { version, frameBytesMax: WIRE_FRAME_BYTES_MAX, inFlightMax: WIRE_IN_FLIGHT_MAX, batchItemsMax: WIRE_BATCH_ITEMS_MAX, sessionsMax: WIRE_SESSIONS_PER_CONNECTION_MAX };
}

function checkLength(length: number): void {
  if (length < LENGTH_MIN) fail('COFFER_FORMAT_MALFORMED', { reason: 'frame shorter than its header' });
  if (length > WIRE_FRAME_BYTES_MAX - 4) fail('COFFER_FORMAT_LIMIT', { length, max: WIRE_FRAME_BYTES_MAX - 4 });
}

function checkKind(kind: number): void {
  if (kind < FrameKind.REQUEST || kind > FrameKind.BUSY) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown frame kind' });
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) * 0x100_0000 + (((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0)));
}

/** `bytes` holds exactly one frame (length prefix included). */
function parseFrame(bytes: Uint8Array): Frame {
  const kind = bytes[4] ?? 0;
  if (kind < FrameKind.REQUEST || kind > FrameKind.BUSY) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown frame kind' });
  const op = ((bytes[9] ?? 0) << 8) | (bytes[10] ?? 0);
  return { kind: kind as FrameKind, requestId: readU32(bytes, 5), op, payload: bytes.subarray(FRAME_HEADER_BYTES) };
}

/** A piece of a frame at least this long, and at least half of the chunk it lies in, is kept as a
 * view of that chunk until the frame is whole (no copy: a socket hands over a fresh buffer per
 * read); a shorter piece is copied into a buffer of the decoder's own, so that many tiny pieces
 * cost one growing buffer, not an object each, and a small view never pins a large chunk. */
const VIEW_PIECE_BYTES_MIN = 4096;

/**
 * Splits a byte stream, in chunks as they come from a socket, into frames. Whole frames inside a
 * chunk are views (no copy). A frame cut across chunks is kept as the pieces that have arrived
 * (views of large pieces, a copy of small ones) and copied once into a buffer of exactly its size
 * when its last byte comes: a declared length alone allocates nothing, so a peer that declares a
 * maximal frame and sends ten bytes makes the decoder hold ten bytes. The length is checked against
 * WIRE_FRAME_BYTES_MAX, and the kind as soon as its byte is there, before anything of the frame is
 * kept. Chunks must not be changed after push (frames and pieces are views of them). After an error
 * every push throws it again.
 */
export class FrameDecoder {
  readonly #header = new Uint8Array(4);
  #headerFilled = 0;
  /** Declared size of the frame being assembled (length prefix included); 0 when none is. */
  #frameBytes = 0;
  /** Bytes of that frame received so far, in #pieces then #small. */
  #frameFilled = 0;
  readonly #pieces: Uint8Array[] = [];
  /** What #pieces pins: a view's whole chunk, a sealed copy's capacity. */
  #piecesHeldBytes = 0;
  /** Small pieces since the last view, copied (grows by doubling, never past the frame's size). */
  #small: Uint8Array | undefined;
  #smallFilled = 0;
  #error: CofferError | undefined;

  /** Bytes held for an incomplete frame (for the node's per-connection accounting): what its
   * pieces really occupy, not what its length field promises. */
  get bufferedBytes(): number {
    return this.#frameBytes === 0 ? this.#headerFilled : this.#piecesHeldBytes + (this.#small?.length ?? 0);
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.#error !== undefined) throw this.#error;
    try {
      const frames: Frame[] = [];
      const off = this.#finishPending(chunk, frames);
      this.#takeWhole(chunk, off, frames);
      return frames;
    } catch (e) {
      this.#drop();
      this.#error = isCofferError(e) ? e : new CofferError('COFFER_FORMAT_MALFORMED', { reason: 'decoder failure' }, { cause: e });
      throw this.#error;
    }
  }

  /** Continues a frame begun in earlier chunks; returns how much of `chunk` it used. */
  #finishPending(chunk: Uint8Array, frames: Frame[]): number {
    let off = 0;
    if (this.#frameBytes === 0) {
      if (this.#headerFilled === 0) return 0;
      off = Math.min(4 - this.#headerFilled, chunk.length);
      this.#header.set(chunk.subarray(0, off), this.#headerFilled);
      this.#headerFilled += off;
      if (this.#headerFilled < 4) return off;
      this.#startFrame(this.#header, 0, 4);
    }
    const n = Math.min(this.#frameBytes - this.#frameFilled, chunk.length - off);
    if (n === 0) return off;
    if (this.#frameFilled === 4) checkKind(chunk[off] ?? 0); // the kind byte is the first after the length
    if (this.#frameFilled + n < this.#frameBytes) {
      this.#keep(chunk.subarray(off, off + n));
      return off + n;
    }
    frames.push(parseFrame(this.#assemble(chunk.subarray(off, off + n))));
    return off + n;
  }

  /** Whole frames straight out of `chunk`, then the start of the next one kept for later. */
  #takeWhole(chunk: Uint8Array, from: number, frames: Frame[]): void {
    let off = from;
    while (chunk.length - off >= 4) {
      const length = readU32(chunk, off);
      checkLength(length);
      if (chunk.length - off < 4 + length) break;
      frames.push(parseFrame(chunk.subarray(off, off + 4 + length)));
      off += 4 + length;
    }
    const rest = chunk.length - off;
    if (rest === 0) return;
    if (rest < 4) {
      this.#header.set(chunk.subarray(off), 0);
      this.#headerFilled = rest;
      return;
    }
    this.#startFrame(chunk, off, rest);
  }

  /** Begins the frame whose first `n` (≥ 4, fewer than the whole frame) bytes are at `src[off..]`. */
  #startFrame(src: Uint8Array, off: number, n: number): void {
    const length = readU32(src, off);
    checkLength(length);
    if (n >= 5) checkKind(src[off + 4] ?? 0); // refuse garbage before keeping it
    this.#frameBytes = 4 + length;
    this.#headerFilled = 4;
    this.#keep(src.subarray(off, off + n)); // 4 header bytes are always copied: #header is reused
  }

  /** Keeps one piece of the frame: a view when it is large, else a copy in #small. */
  #keep(piece: Uint8Array): void {
    this.#frameFilled += piece.length;
    if (piece.length >= VIEW_PIECE_BYTES_MIN && piece.length * 2 >= piece.buffer.byteLength) {
      this.#sealSmall();
      this.#pieces.push(piece);
      this.#piecesHeldBytes += piece.buffer.byteLength;
      return;
    }
    let small = this.#small ?? new Uint8Array(piece.length);
    const need = this.#smallFilled + piece.length;
    if (need > small.length) {
      const grown = new Uint8Array(Math.min(this.#frameBytes, Math.max(need, small.length * 2)));
      grown.set(small.subarray(0, this.#smallFilled), 0);
      small = grown;
    }
    small.set(piece, this.#smallFilled);
    this.#small = small;
    this.#smallFilled = need;
  }

  #sealSmall(): void {
    const small = this.#small;
    if (small === undefined) return;
    this.#pieces.push(small.subarray(0, this.#smallFilled));
    this.#piecesHeldBytes += small.length;
    this.#small = undefined;
    this.#smallFilled = 0;
  }

  /** The whole frame: every kept piece, then `last`, copied once into a buffer of exactly its size. */
  #assemble(last: Uint8Array): Uint8Array {
    const frame = new Uint8Array(this.#frameBytes);
    let at = 0;
    for (const p of this.#pieces) {
      frame.set(p, at);
      at += p.length;
    }
    if (this.#small !== undefined) {
      frame.set(this.#smallFilled === this.#small.length ? this.#small : this.#small.subarray(0, this.#smallFilled), at);
      at += this.#smallFilled;
    }
    frame.set(last, at);
    this.#drop();
    return frame;
  }

  #drop(): void {
    if (this.#pieces.length !== 0) this.#pieces.length = 0;
    this.#piecesHeldBytes = 0;
    this.#small = undefined;
    this.#smallFilled = 0;
    this.#frameBytes = 0;
    this.#frameFilled = 0;
    this.#headerFilled = 0;
  }
}

/**
 * Batches the frames produced during one tick into one buffer, so the node calls socket.write once
 * per tick instead of once per reply (docs/wire-protocol.md §7). The buffer is zero-filled, never
 * from the shared pool: replies may carry exported key material.
 */
export class FrameCoalescer {
  #frames: Uint8Array[] = [];
  #bytes = 0;

  get pendingBytes(): number {
    return this.#bytes;
  }
  get pendingFrames(): number {
    return this.#frames.length;
  }

  push(frame: Uint8Array): void {
    this.#frames.push(frame);
    this.#bytes += frame.length;
  }

  /** Everything pushed since the last flush, in order, as one Buffer (empty when nothing was). */
  flush(): Buffer {
    const frames = this.#frames;
    const total = this.#bytes;
    this.#frames = [];
    this.#bytes = 0;
    const only = frames[0];
    if (frames.length === 1 && only !== undefined) return Buffer.from(only.buffer, only.byteOffset, only.byteLength);
    const out = Buffer.alloc(total);
    let off = 0;
    for (const f of frames) {
      out.set(f, off);
      off += f.length;
    }
    return out;
  }
}

/**
 * Writes every frame pushed during one turn of the event loop as a single buffer (setImmediate):
 * many small replies or requests cost one socket write. `write` receives each coalesced buffer.
 */
export class TickWriter {
  readonly #out = new FrameCoalescer();
  readonly #write: (bytes: Buffer) => void;
  #scheduled = false;

  constructor(write: (bytes: Buffer) => void) {
    this.#write = write;
  }

  /** Bytes queued for the next write. */
  get pendingBytes(): number {
    return this.#out.pendingBytes;
  }

  push(frame: Uint8Array): void {
    this.#out.push(frame);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#write(this.#out.flush());
    });
  }
}
