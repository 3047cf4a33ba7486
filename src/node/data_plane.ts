// The node's data-plane server: TLS 1.3 over node:tls, the wire protocol of docs/wire-protocol.md
// around one device (DESIGN.md §2). Per connection: a FrameDecoder on 'data', HELLO first, requests
// dispatched concurrently (replies in any order), replies coalesced and written once per tick.
//
// Bounds (docs/node.md "Limits"): a per-connection in-flight limit and a node-wide one, over which a
// request is answered BUSY with a retry hint (never queued); the bytes a connection holds (partial
// frame + requests being served + unsent replies) are capped: over the cap the node stops reading
// that socket until its replies drain; a framing error or an untyped exception closes the connection;
// the TLS handshake and the HELLO after it must finish within a timeout.

import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { assert } from '../assert.js';
import { isCofferError } from '../errors.js';
import { NODE_BUSY_RETRY_AFTER_MS, NODE_CONNECTION_BYTES_MAX, NODE_HANDSHAKE_TIMEOUT_MS, NODE_IN_FLIGHT_MAX, WIRE_FRAME_BYTES_MAX, WIRE_IN_FLIGHT_MAX, WIRE_RETRY_AFTER_MS_MAX } from '../formats/limits.js';
import { FrameDecoder, TickWriter, OPS, decodeRequest, encodeBusy, encodeError, type Frame } from '../formats/wire.js';
import type { Hsm } from '../hsm/device.js';
import { SessionTable, dispatch, type DispatchContext, type NodeLoad } from './dispatch.js';
import { createTlsIdentity, type TlsIdentity } from './tls_identity.js';

export interface DataPlaneOptions {
  readonly hsm: Hsm;
  readonly host?: string;
  /** 0 (default): any free port. */
  readonly port?: number;
  /** Key and certificate to present; default: a fresh attested identity (tls_identity.ts). */
  readonly tls?: TlsIdentity;
  /** Requests in flight per connection before BUSY (default WIRE_IN_FLIGHT_MAX). */
  readonly inFlightMax?: number;
  /** Requests in flight on the whole node before BUSY (default NODE_IN_FLIGHT_MAX). */
  readonly capacityMax?: number;
  readonly connectionBytesMax?: number;
  readonly handshakeTimeoutMs?: number;
  readonly retryAfterMs?: number;
  /** Reported in STATUS; 0 = not measured. */
  readonly capacityOpsPerSecond?: number;
  /** Called with an untyped exception before its connection is closed (a bug: the node never
   * describes it on the wire). Default: ignored. */
  readonly onBug?: (error: unknown) => void;
}

export interface DataPlane {
  readonly port: number;
  readonly tls: TlsIdentity;
  load(): NodeLoad;
  close(): Promise<void>;
}

interface Limits {
  readonly inFlightMax: number;
  readonly capacityMax: number;
  readonly bytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly retryAfterMs: number;
}

/** Node-wide counters shared by every connection. */
class NodeState {
  inFlight = 0;
  readonly connections = new Set<Connection>();
  constructor(readonly hsm: Hsm, readonly limits: Limits, readonly capacityOpsPerSecond: number, readonly onBug: (e: unknown) => void) {}
  load(): NodeLoad {
    return { inFlight: this.inFlight, inFlightMax: this.limits.capacityMax, connections: this.connections.size, capacityOpsPerSecond: this.capacityOpsPerSecond };
  }
}

/** Starts the data plane; resolves once it listens. */
export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const host = options.host ?? '127.0.0.1';
  const tls = options.tls ?? (await createTlsIdentity(options.hsm, [host, 'localhost']));
  const limits: Limits = {
    inFlightMax: options.inFlightMax ?? WIRE_IN_FLIGHT_MAX,
    capacityMax: options.capacityMax ?? NODE_IN_FLIGHT_MAX,
    bytesMax: options.connectionBytesMax ?? NODE_CONNECTION_BYTES_MAX,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? NODE_HANDSHAKE_TIMEOUT_MS,
    retryAfterMs: options.retryAfterMs ?? NODE_BUSY_RETRY_AFTER_MS,
  };
  // A budget below one maximal frame could pause a socket mid-frame for ever.
  assert(limits.bytesMax >= WIRE_FRAME_BYTES_MAX, 'connectionBytesMax must hold one maximal frame');
  assert(limits.retryAfterMs >= 0 && limits.retryAfterMs <= WIRE_RETRY_AFTER_MS_MAX, 'retryAfterMs within the wire limit');
  const node = new NodeState(options.hsm, limits, options.capacityOpsPerSecond ?? 0, options.onBug ?? (() => undefined));
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certificatePem, minVersion: 'TLSv1.3', handshakeTimeout: limits.handshakeTimeoutMs });
  // node:tls's handshakeTimeout does not fire for a peer that never sends a ClientHello, so each TCP
  // connection gets its own timer, cancelled once TLS is up (a live TCP peer is unique by address
  // and port); the HELLO timer of Connection then takes over.
  const handshaking = new Map<string, NodeJS.Timeout>();
  server.on('connection', (raw: Socket) => {
    const key = `${raw.remoteAddress ?? ''}|${raw.remotePort ?? 0}`;
    handshaking.set(key, setTimeout(() => raw.destroy(), limits.handshakeTimeoutMs));
    raw.once('close', () => {
      clearTimeout(handshaking.get(key));
      handshaking.delete(key);
    });
  });
  server.on('secureConnection', (socket) => {
    const key = `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
    clearTimeout(handshaking.get(key));
    handshaking.delete(key);
    node.connections.add(new Connection(node, socket));
  });
  server.on('tlsClientError', () => undefined); // refused handshakes (old TLS, timeouts) just end
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    tls,
    load: () => node.load(),
    close: () => new Promise<void>((resolve) => {
      for (const c of node.connections) c.destroy();
      server.close(() => resolve());
    }),
  };
}

/** One client connection: decoder, sessions, in-flight accounting, the write coalescer. */
class Connection {
  readonly #node: NodeState;
  readonly #socket: TLSSocket;
  readonly #decoder = new FrameDecoder();
  readonly #out = new TickWriter((bytes) => {
    if (!this.#closed) this.#socket.write(bytes);
    this.#checkReading();
  });
  readonly #ctx: DispatchContext;
  readonly #sessions: SessionTable;
  #inFlight = 0;
  /** Bytes of request frames being served. */
  #requestBytes = 0;
  #helloDone = false;
  #closed = false;
  readonly #helloTimer: NodeJS.Timeout;

  constructor(node: NodeState, socket: TLSSocket) {
    this.#node = node;
    this.#socket = socket;
    this.#sessions = new SessionTable(node.hsm);
    this.#ctx = { hsm: node.hsm, sessions: this.#sessions, load: () => node.load(), inFlightMax: node.limits.inFlightMax };
    this.#helloTimer = setTimeout(() => this.destroy(), node.limits.handshakeTimeoutMs);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#checkReading());
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.#cleanUp());
  }

  /** Ends the connection now; its sessions close with it. */
  destroy(): void {
    this.#socket.destroy();
    this.#cleanUp();
  }

  #cleanUp(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#helloTimer);
    this.#sessions.closeAll();
    this.#node.connections.delete(this);
  }

  #onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch {
      this.destroy(); // framing error: no trustworthy frame boundary remains (wire-protocol.md §1)
      return;
    }
    for (const f of frames) {
      if (this.#closed) return;
      this.#onFrame(f);
    }
    this.#checkReading();
  }

  #onFrame(frame: Frame): void {
    if (!this.#helloDone) {
      this.#hello(frame);
      return;
    }
    const node = this.#node;
    if (this.#inFlight >= node.limits.inFlightMax || node.inFlight >= node.limits.capacityMax) {
      this.#push(encodeBusy(frame.requestId, frame.op, node.limits.retryAfterMs));
      return;
    }
    this.#inFlight++;
    node.inFlight++;
    this.#requestBytes += frame.payload.length;
    this.#serve(frame).finally(() => {
      this.#inFlight--;
      node.inFlight--;
      this.#requestBytes -= frame.payload.length;
      this.#checkReading();
    }).catch((e: unknown) => this.#bug(e));
  }

  /** The first frame must be HELLO; a version mismatch is answered, then the connection ends. */
  #hello(frame: Frame): void {
    if (frame.op !== OPS.HELLO.code) {
      this.destroy();
      return;
    }
    clearTimeout(this.#helloTimer);
    this.#helloDone = true;
    this.#serve(frame).then(
      () => undefined,
      (e: unknown) => this.#bug(e),
    );
  }

  async #serve(frame: Frame): Promise<void> {
    let reply: Uint8Array;
    let end = false;
    try {
      reply = await dispatch(this.#ctx, frame.requestId, decodeRequest(frame));
    } catch (e) {
      if (!isCofferError(e)) throw e;
      reply = encodeError(frame.requestId, frame.op, e);
      end = e.code === 'COFFER_FORMAT_UNKNOWN_VERSION';
    }
    if (this.#closed) return;
    this.#push(reply);
    if (end) setImmediate(() => this.#socket.end()); // after the flush scheduled by #push

  }

  #bug(e: unknown): void {
    this.#node.onBug(e);
    this.destroy();
  }

  #push(frame: Uint8Array): void {
    this.#out.push(frame);
  }

  /** Backpressure: stop reading while the connection holds more than its byte budget. */
  #checkReading(): void {
    if (this.#closed) return;
    const held = this.#decoder.bufferedBytes + this.#requestBytes + this.#out.pendingBytes + this.#socket.writableLength;
    if (held > this.#node.limits.bytesMax) this.#socket.pause();
    else if (this.#socket.isPaused()) this.#socket.resume();
  }
}
