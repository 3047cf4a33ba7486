// The p11-kit RPC transport over a stream socket (docs/pkcs11.md "Transport"), as p11-kit's
// p11-kit/rpc-transport.c and rpc-server.c (p11_kit_remote_serve_module) speak it:
//
// 1. Handshake. The client writes one byte: the highest protocol version it speaks (p11-kit 0.24
//    sends 0, 0.25.0–0.25.5 send 1, 0.25.6 and later 2; rpc-client.c starts with
//    P11_RPC_PROTOCOL_VERSION_MAXIMUM). The server answers one byte: the version both will use, the
//    smaller of the client's and its own maximum (rpc-server.c clamps to its maximum; its minimum is
//    0). A client whose offer is refused (the connection closes) reconnects offering 0.
// 2. Frames, in both directions: code u32 ‖ options length u32 ‖ body length u32 ‖ options ‖ body.
//    The client numbers its requests (codes from 0x10 up, rpc-transport.c rpc_socket_new) and matches
//    each answer by code, so several threads may have requests in flight on one socket; code 0 is
//    invalid (rpc_socket_read refuses it). The client sends its module name as options; the server
//    ignores them and answers with none. The body is one RPC message (rpc_messages.ts).
//
// Every length is checked before the bytes it covers are buffered: options above
// P11_FRAME_OPTIONS_BYTES_MAX or a body above P11_FRAME_BODY_BYTES_MAX is refused at the header
// (COFFER_P11_FRAME_INVALID). After a framing error nothing on the stream can be trusted: the
// caller closes the connection.

import { fail } from '../errors.js';
import { P11_FRAME_BODY_BYTES_MAX, P11_FRAME_OPTIONS_BYTES_MAX } from './limits.js';
import { PROTOCOL_VERSION_MAX, type ProtocolVersion } from './rpc_codec.js';

export const FRAME_HEADER_BYTES = 12;

/** The string C_Initialize must carry (rpc-message.h P11_RPC_HANDSHAKE). */
export const P11_RPC_HANDSHAKE = new TextEncoder().encode('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1');

export interface Frame {
  readonly code: number;
  readonly options: Uint8Array;
  readonly body: Uint8Array;
}

export type Incoming = { readonly kind: 'version'; readonly offered: number } | { readonly kind: 'frame'; readonly frame: Frame };

/** The version the server answers to an offer: the highest both speak. */
export function negotiateVersion(offered: number): ProtocolVersion {
  return Math.min(offered, PROTOCOL_VERSION_MAX) as ProtocolVersion;
}

export function encodeFrame(code: number, body: Uint8Array, options: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + options.length + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, code);
  v.setUint32(4, options.length);
  v.setUint32(8, body.length);
  out.set(options, FRAME_HEADER_BYTES);
  out.set(body, FRAME_HEADER_BYTES + options.length);
  return out;
}

/**
 * Incremental decoder of what a client sends: the version byte, then frames, handed out one at a time
 * (next()) so the server can serve one request before it looks at the next. It holds the chunks it
 * was given and at most one frame being filled, whose size was checked at its header.
 */
export class StreamDecoder {
  readonly #chunks: Uint8Array[] = [];
  #queued = 0;
  #versionSeen: boolean;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #payload: Uint8Array | undefined;
  #payloadFill = 0;
  #code = 0;
  #optionsBytes = 0;
  #dead = false;

  /** `versionSeen` true: the stream starts with frames (a client-side decoder of answers, in tests). */
  constructor(versionSeen = false) {
    this.#versionSeen = versionSeen;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#queued += chunk.length;
  }

  /** Bytes held: queued chunks and the frame being filled. */
  get bufferedBytes(): number {
    return this.#queued + this.#headerFill + this.#payloadFill;
  }

  /** True while a frame has begun but is not whole (what the partial-frame timeout watches). */
  get midFrame(): boolean {
    return this.#headerFill > 0 || this.#payload !== undefined;
  }

  /** The next whole item, or undefined when more bytes are needed. Throws COFFER_P11_FRAME_INVALID. */
  next(): Incoming | undefined {
    if (this.#dead) fail('COFFER_P11_FRAME_INVALID', { reason: 'stream already failed' });
    if (!this.#versionSeen) {
      const b = this.#take(1);
      if (b === undefined) return undefined;
      this.#versionSeen = true;
      return { kind: 'version', offered: b[0] ?? 0 };
    }
    if (this.#payload === undefined) {
      this.#headerFill += this.#fill(this.#header, this.#headerFill);
      if (this.#headerFill < FRAME_HEADER_BYTES) return undefined;
      const bytes = this.#startPayload();
      // A payload wholly inside the chunk at hand is handed out as a view of it, not copied.
      const inPlace = this.#takeInPlace(bytes);
      if (inPlace !== undefined) return this.#frame(inPlace);
      this.#payload = new Uint8Array(bytes);
    }
    const payload = this.#payload;
    this.#payloadFill += this.#fill(payload, this.#payloadFill);
    if (this.#payloadFill < payload.length) return undefined;
    return this.#frame(payload);
  }

  #frame(payload: Uint8Array): Incoming {
    const frame: Frame = { code: this.#code, options: payload.subarray(0, this.#optionsBytes), body: payload.subarray(this.#optionsBytes) };
    this.#payload = undefined;
    this.#payloadFill = 0;
    this.#headerFill = 0;
    return { kind: 'frame', frame };
  }

  /** Checks the header just filled; returns the payload's length (options and body). */
  #startPayload(): number {
    const v = new DataView(this.#header.buffer);
    const code = v.getUint32(0);
    const options = v.getUint32(4);
    const body = v.getUint32(8);
    if (code === 0) this.#fail({ reason: 'frame code 0' });
    if (options > P11_FRAME_OPTIONS_BYTES_MAX) this.#fail({ reason: 'options too long', length: options, max: P11_FRAME_OPTIONS_BYTES_MAX });
    if (body > P11_FRAME_BODY_BYTES_MAX) this.#fail({ reason: 'body too long', length: body, max: P11_FRAME_BODY_BYTES_MAX });
    this.#code = code;
    this.#optionsBytes = options;
    return options + body;
  }

  /** The next `n` queued bytes as a view, when the first queued chunk holds them all. The view is a
   * plain Uint8Array even over a Buffer chunk, as a copy was: Buffer's slice() is a view, not a copy. */
  #takeInPlace(n: number): Uint8Array | undefined {
    const head = this.#chunks[0];
    if (head === undefined || head.length < n) return undefined;
    this.#queued -= n;
    if (n === head.length) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    return new Uint8Array(head.buffer, head.byteOffset, n);
  }

  #fail(detail: Record<string, string | number>): never {
    this.#dead = true;
    return fail('COFFER_P11_FRAME_INVALID', detail);
  }

  /** Copies queued bytes into `dst` from `at`; returns how many. */
  #fill(dst: Uint8Array, at: number): number {
    let copied = 0;
    while (at + copied < dst.length && this.#chunks.length > 0) {
      const head = this.#chunks[0] as Uint8Array;
      const n = Math.min(head.length, dst.length - at - copied);
      dst.set(head.subarray(0, n), at + copied);
      copied += n;
      this.#queued -= n;
      if (n === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(n);
    }
    return copied;
  }

  #take(n: number): Uint8Array | undefined {
    if (this.#queued < n) return undefined;
    const out = new Uint8Array(n);
    this.#fill(out, 0);
    return out;
  }
}
