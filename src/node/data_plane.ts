// The node's data-plane server: TLS 1.3 over node:tls, the wire protocol of docs/wire-protocol.md
// around one device (docs/architecture.md §2). Per connection: a FrameDecoder on 'data', HELLO first, requests
// dispatched concurrently (replies in any order), replies coalesced and written once per tick.
//
// Bounds (docs/node.md "Limits"): a per-connection in-flight limit and a node-wide one, over which a
// request is answered BUSY with a retry hint (never queued); the bytes a connection holds (partial
// frame + requests being served + unsent replies) are capped: over the cap the node stops reading
// that socket until its replies drain; a framing error closes the connection; the TLS handshake and
// the HELLO after it must finish within a timeout, a frame begun must be whole within another, and a
// connection with nothing in flight that sends nothing is closed when idle; connections are capped
// in total (at accept, before TLS) and per remote address. A second HELLO is answered
// COFFER_HELLO_REPEATED. An untyped exception is a bug: by default the process stops (crashOnBug).
//
// TLS (docs/node.md "TLS identities"): the node presents the identity its device's cluster state
// calls for (tls_identity.ts) and switches to a fresh one on refreshTls() — new connections get it,
// open ones keep theirs — and before a cluster leaf expires. With clientTrustAnchors set, a client
// must present a certificate that chains to one of them, or the handshake fails.

import { randomUUID } from 'node:crypto';
import { createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { AssertionFailure, assert } from '../assert.js';
import { CofferError, fail, isCofferError, type ErrorCode } from '../errors.js';
import {
  NODE_BUSY_RETRY_AFTER_MS, NODE_CLIENT_TRUST_ANCHORS_MAX, NODE_CONNECTION_BYTES_MAX, NODE_CONNECTIONS_MAX, NODE_CONNECTIONS_PER_ADDRESS_MAX, NODE_HANDSHAKE_TIMEOUT_MS,
  NODE_IDLE_TIMEOUT_MS, NODE_IN_FLIGHT_MAX, NODE_PARTIAL_FRAME_TIMEOUT_MS, WIRE_BATCH_ITEMS_MAX, WIRE_FRAME_BYTES_MAX, WIRE_IN_FLIGHT_MAX, WIRE_RETRY_AFTER_MS_MAX,
} from '../formats/limits.js';
import { FrameDecoder, TickWriter, OPS, decodeRequest, encodeBusy, encodeError, type AnyRequest, type Frame } from '../formats/wire.js';
import type { Hsm } from '../hsm/device.js';
import { parseCertificate, pemOf } from '../formats/x509.js';
import { SessionTable, dispatch, type DispatchContext, type NodeLoad } from './dispatch.js';
import { OUTCOME_OK, type DataPlaneMetrics } from './metrics.js';
import { trackSockets } from './server_sockets.js';
import { currentTlsIdentity, type TlsIdentity } from './tls_identity.js';

export interface DataPlaneOptions {
  readonly hsm: Hsm;
  readonly host?: string;
  /** 0 (default): any free port. */
  readonly port?: number;
  /** Identity to present at start; default: the one the device's cluster state calls for
   * (tls_identity.ts currentTlsIdentity). refreshTls() always recomputes it from the device. */
  readonly tls?: TlsIdentity;
  /** Names and addresses the TLS leaf is for (SAN); default [host, 'localhost']. */
  readonly tlsHosts?: readonly string[];
  /** Validity asked for a cluster-issued leaf (the device may shorten it); default the device's. */
  readonly clusterLeafValidityMs?: number;
  /** PEM CA certificates (at most NODE_CLIENT_TRUST_ANCHORS_MAX): when given, every client must
   * present a certificate that chains to one of them. */
  readonly clientTrustAnchors?: readonly string[];
  /** Requests in flight per connection before BUSY (default WIRE_IN_FLIGHT_MAX). */
  readonly inFlightMax?: number;
  /** Requests in flight on the whole node before BUSY (default NODE_IN_FLIGHT_MAX). */
  readonly capacityMax?: number;
  readonly connectionBytesMax?: number;
  /** The TLS handshake, then the HELLO, each within this (default NODE_HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number;
  /** A frame begun must be whole within this (default NODE_PARTIAL_FRAME_TIMEOUT_MS). */
  readonly partialFrameTimeoutMs?: number;
  /** Nothing in flight and nothing received for this long closes the connection (default NODE_IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number;
  /** TCP connections at once, handshakes included (default NODE_CONNECTIONS_MAX). */
  readonly connectionsMax?: number;
  /** TCP connections at once from one remote address (default NODE_CONNECTIONS_PER_ADDRESS_MAX). */
  readonly connectionsPerAddressMax?: number;
  readonly retryAfterMs?: number;
  /** Reported in STATUS; 0 = not measured. */
  readonly capacityOpsPerSecond?: number;
  /** Called with an untyped exception (a bug: the node never describes it on the wire); the
   * connection is closed afterwards if the process goes on. Default: crashOnBug, which stops the
   * process. Tests that provoke failures on purpose pass their own. */
  readonly onBug?: (error: unknown) => void;
  /** Told of every request answered with a typed error (the operation's code and the error code):
   * the node's log of refusals. */
  readonly onRefused?: (op: number, code: ErrorCode) => void;
  /** Counts every request and BUSY answer (metrics.ts); absent: nothing is measured. */
  readonly metrics?: DataPlaneMetrics;
}

/** Connections the node refused or closed on its own, since it started (docs/node.md "Limits"). */
export interface DataPlaneStats {
  /** TCP connections open now, TLS handshakes included. */
  readonly connectionsOpen: number;
  /** Closed at accept: the node held connectionsMax connections. */
  readonly refusedConnectionsMax: number;
  /** Closed at accept: the peer's address held connectionsPerAddressMax connections. */
  readonly refusedPerAddressMax: number;
  /** Closed because the TLS handshake or the HELLO after it did not finish in time. */
  readonly closedHandshakeTimeout: number;
  /** Closed because a frame begun was not whole in time. */
  readonly closedPartialFrameTimeout: number;
  /** Closed because nothing was in flight and nothing came in time. */
  readonly closedIdleTimeout: number;
}

export interface DataPlane {
  readonly port: number;
  /** The identity new connections get (changes on refreshTls and renewal). */
  readonly tls: TlsIdentity;
  load(): NodeLoad;
  /** Bytes the node holds for its connections (partial frames, requests being served, unsent
   * replies): what the per-connection budget bounds (docs/node.md "Connection behaviour"). */
  bytesHeld(): number;
  /** Recomputes the identity from the device's cluster state (a fresh key; a cluster leaf once
   * INITIALISED, else the attested self-signed one) and serves it to new connections. */
  refreshTls(): Promise<void>;
  stats(): DataPlaneStats;
  close(): Promise<void>;
}

/** Exit status of a node stopped by a bug: EX_SOFTWARE ("internal software error", sysexits.h). */
export const NODE_BUG_EXIT_CODE = 70;

/**
 * The default onBug: a bug means the node's state is unknown, and an HSM must not run on in an
 * unknown state (CONTRIBUTING.md rule 2). One line on stderr that names it a bug, the stack frames
 * after it (code locations only), then exit NODE_BUG_EXIT_CODE at once; the sealed store keeps its
 * last committed state. stderr is written synchronously for files and pipes, so nothing is lost.
 */
export function crashOnBug(error: unknown): never {
  const { what, frames } = describeBug(error);
  process.stderr.write(`coffer: bug, the node stops (an HSM must not run on in an unknown state): ${what}\n${frames.map((l) => `${l}\n`).join('')}`);
  process.exit(NODE_BUG_EXIT_CODE);
}

/**
 * What may be said of a bug: an assertion's own fixed text, otherwise the error's name and code, and
 * the stack's code locations. Never another error's message: a library's message may quote its
 * input (JSON.parse quotes what it failed to parse), and that input may be a decrypted record.
 */
export function describeBug(error: unknown): { what: string; frames: string[] } {
  if (!(error instanceof Error)) return { what: typeof error, frames: [] };
  const code = (error as { code?: unknown }).code;
  const what = error instanceof AssertionFailure ? `${error.name}: ${error.message}` : `${error.name}${typeof code === 'string' ? ` (${code})` : ''}`;
  const frames = (error.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).map((l) => l.trim());
  return { what: what.replace(/\s+/g, ' '), frames };
}

interface Limits {
  readonly inFlightMax: number;
  readonly capacityMax: number;
  readonly bytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly partialFrameTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly connectionsMax: number;
  readonly connectionsPerAddressMax: number;
  readonly retryAfterMs: number;
}

type Counters = { -readonly [K in Exclude<keyof DataPlaneStats, 'connectionsOpen'>]: number };

/** Node-wide counters shared by every connection. */
class NodeState {
  inFlight = 0;
  /** JOURNAL_WAITs parked on the device's head (at most NODE_JOURNAL_WAITS_MAX). */
  readonly journalWaits = { parked: 0 };
  readonly connections = new Set<Connection>();
  /** TCP connections open per remote address (handshakes included). */
  readonly perAddress = new Map<string, number>();
  readonly counters: Counters = { refusedConnectionsMax: 0, refusedPerAddressMax: 0, closedHandshakeTimeout: 0, closedPartialFrameTimeout: 0, closedIdleTimeout: 0 };
  constructor(
    readonly hsm: Hsm, readonly limits: Limits, readonly capacityOpsPerSecond: number, readonly onBug: (e: unknown) => void,
    readonly onRefused: ((op: number, code: ErrorCode) => void) | undefined,
    readonly metrics: DataPlaneMetrics | undefined,
  ) {}
  load(): NodeLoad {
    return { inFlight: this.inFlight, inFlightMax: this.limits.capacityMax, connections: this.connections.size, capacityOpsPerSecond: this.capacityOpsPerSecond };
  }
}

/** Renewal of a cluster leaf at this fraction of its remaining life (so at ~half its validity). */
const RENEW_AT_FRACTION = 0.5;
/** A failed renewal (device busy restoring, say) is tried again after this. */
const RENEW_RETRY_MS = 60_000;
/** setTimeout's largest delay (2^31 − 1 ms, ~24.8 days); a longer wait is re-armed. */
const TIMER_MS_MAX = 2 ** 31 - 1;

/**
 * The identity the server presents, switched with server.setSecureContext: new connections get
 * the new one, established ones keep theirs. Refreshes run one after the other, so the last one
 * asked for is the one that stays. A cluster leaf is renewed at about half its validity.
 */
class TlsSwitch {
  #identity: TlsIdentity;
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #server: Server | undefined;
  #closed = false;

  constructor(
    private readonly hsm: Hsm,
    private readonly hosts: readonly string[],
    private readonly clientAnchors: readonly string[] | undefined,
    private readonly leafValidityMs: number | undefined,
    private readonly onBug: (e: unknown) => void,
    first: TlsIdentity,
  ) {
    this.#identity = first;
  }

  get identity(): TlsIdentity {
    return this.#identity;
  }

  /** Options for createServer and setSecureContext (minVersion is a context option: kept in both). */
  contextOptions(): SecureContextOptions {
    const anchors = this.clientAnchors;
    return { key: this.#identity.keyPem, cert: this.#identity.chainPem.join(''), minVersion: 'TLSv1.3', ...(anchors === undefined ? {} : { ca: [...anchors] }) };
  }

  start(server: Server): void {
    this.#server = server;
    this.#arm();
  }

  refresh(): Promise<void> {
    const next = this.#chain.then(async () => {
      if (this.#closed) return;
      this.#identity = await currentTlsIdentity(this.hsm, this.hosts, this.leafValidityMs);
      this.#server?.setSecureContext(this.contextOptions());
      this.#arm();
    });
    this.#chain = next.catch(() => undefined); // a failed refresh must not block the next one
    return next;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  /** Schedules renewal of a cluster leaf; a device leaf lasts as long as the process needs it. */
  #arm(): void {
    clearTimeout(this.#timer);
    if (this.#closed || this.#identity.kind !== 'cluster') return;
    const leftMs = this.#identity.notAfterMs - Date.now();
    const waitMs = Math.min(TIMER_MS_MAX, Math.max(0, Math.floor(leftMs * RENEW_AT_FRACTION)));
    this.#timer = setTimeout(() => this.#renew(), waitMs);
    this.#timer.unref();
  }

  #renew(): void {
    this.refresh().catch((e: unknown) => {
      if (!isCofferError(e)) this.onBug(e);
      if (this.#closed) return;
      this.#timer = setTimeout(() => this.#renew(), RENEW_RETRY_MS);
      this.#timer.unref();
    });
  }
}

/** Client trust anchors, checked at start: at most NODE_CLIENT_TRUST_ANCHORS_MAX, each a certificate. */
function checkClientAnchors(anchors: readonly string[] | undefined): readonly string[] | undefined {
  if (anchors === undefined) return undefined;
  if (anchors.length === 0 || anchors.length > NODE_CLIENT_TRUST_ANCHORS_MAX) {
    fail('COFFER_FORMAT_LIMIT', { field: 'clientTrustAnchors', length: anchors.length, max: NODE_CLIENT_TRUST_ANCHORS_MAX });
  }
  return anchors.map((pem) => pemOf(parseCertificate(pem)));
}

function limitsOf(options: DataPlaneOptions): Limits {
  const limits: Limits = {
    inFlightMax: options.inFlightMax ?? WIRE_IN_FLIGHT_MAX,
    capacityMax: options.capacityMax ?? NODE_IN_FLIGHT_MAX,
    bytesMax: options.connectionBytesMax ?? NODE_CONNECTION_BYTES_MAX,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? NODE_HANDSHAKE_TIMEOUT_MS,
    partialFrameTimeoutMs: options.partialFrameTimeoutMs ?? NODE_PARTIAL_FRAME_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? NODE_IDLE_TIMEOUT_MS,
    connectionsMax: options.connectionsMax ?? NODE_CONNECTIONS_MAX,
    connectionsPerAddressMax: options.connectionsPerAddressMax ?? NODE_CONNECTIONS_PER_ADDRESS_MAX,
    retryAfterMs: options.retryAfterMs ?? NODE_BUSY_RETRY_AFTER_MS,
  };
  // A budget below one maximal frame could pause a socket mid-frame for ever.
  assert(limits.bytesMax >= WIRE_FRAME_BYTES_MAX, 'connectionBytesMax must hold one maximal frame');
  assert(limits.retryAfterMs >= 0 && limits.retryAfterMs <= WIRE_RETRY_AFTER_MS_MAX, 'retryAfterMs within the wire limit');
  for (const name of ['handshakeTimeoutMs', 'partialFrameTimeoutMs', 'idleTimeoutMs', 'connectionsMax', 'connectionsPerAddressMax'] as const) {
    assert(Number.isInteger(limits[name]) && limits[name] >= 1, `${name} is a positive integer`);
  }
  return limits;
}

/** Starts the data plane; resolves once it listens. */
export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const host = options.host ?? '127.0.0.1';
  const hosts = options.tlsHosts ?? [host, 'localhost'];
  const anchors = checkClientAnchors(options.clientTrustAnchors);
  const limits = limitsOf(options);
  const onBug = options.onBug ?? crashOnBug;
  const node = new NodeState(options.hsm, limits, options.capacityOpsPerSecond ?? 0, onBug, options.onRefused, options.metrics);
  const first = options.tls ?? (await currentTlsIdentity(options.hsm, hosts, options.clusterLeafValidityMs));
  const tls = new TlsSwitch(options.hsm, hosts, anchors, options.clusterLeafValidityMs, onBug, first);
  const server: Server = createServer({
    ...tls.contextOptions(), handshakeTimeout: limits.handshakeTimeoutMs,
    ...(anchors === undefined ? {} : { requestCert: true, rejectUnauthorized: true }),
  });
  watchConnections(server, node);
  const sockets = trackSockets(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  tls.start(server);
  return {
    port: (server.address() as AddressInfo).port,
    get tls() {
      return tls.identity;
    },
    load: () => node.load(),
    bytesHeld: () => [...node.connections].reduce((sum, c) => sum + c.bytesHeld, 0),
    refreshTls: () => tls.refresh(),
    stats: () => ({ ...node.counters, connectionsOpen: [...node.perAddress.values()].reduce((a, b) => a + b, 0) }),
    close: async () => {
      tls.close();
      for (const c of node.connections) c.destroy();
      await sockets.close();
    },
  };
}

/**
 * Admission and the handshake timer. The total cap is net.Server's maxConnections: a connection
 * over it is closed at accept, before any TLS object exists ('drop' counts it). The per-address cap
 * runs first among the 'connection' listeners, so a refused socket is closed before the TLS layer
 * reads a byte of it. node:tls's handshakeTimeout does not fire for a peer that never sends a
 * ClientHello, so each TCP connection gets its own timer, cancelled once TLS is up (a live TCP peer
 * is unique by address and port); the HELLO timer of Connection then takes over.
 */
function watchConnections(server: Server, node: NodeState): void {
  server.maxConnections = node.limits.connectionsMax;
  server.on('drop', () => void node.counters.refusedConnectionsMax++);
  const handshaking = new Map<string, NodeJS.Timeout>();
  server.prependListener('connection', (raw: Socket) => {
    const address = raw.remoteAddress ?? '';
    const open = node.perAddress.get(address) ?? 0;
    if (open >= node.limits.connectionsPerAddressMax) {
      node.counters.refusedPerAddressMax++;
      raw.destroy();
      return;
    }
    node.perAddress.set(address, open + 1);
    const key = `${address}|${raw.remotePort ?? 0}`;
    handshaking.set(key, setTimeout(() => {
      node.counters.closedHandshakeTimeout++;
      raw.destroy();
    }, node.limits.handshakeTimeoutMs));
    raw.once('close', () => {
      clearTimeout(handshaking.get(key));
      handshaking.delete(key);
      const left = (node.perAddress.get(address) ?? 1) - 1;
      if (left === 0) node.perAddress.delete(address);
      else node.perAddress.set(address, left);
    });
  });
  server.on('secureConnection', (socket) => {
    const key = `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
    clearTimeout(handshaking.get(key));
    handshaking.delete(key);
    node.connections.add(new Connection(node, socket));
  });
  server.on('tlsClientError', () => undefined); // refused handshakes (old TLS, no or bad client certificate, timeouts) just end
}

const BATCH_OPS: ReadonlySet<number> = new Set([OPS.SIGN_BATCH.code, OPS.VERIFY_BATCH.code, OPS.ENCRYPT_BATCH.code, OPS.DECRYPT_BATCH.code]);

/**
 * How much of the node's capacity a request takes: 1, or a batch's item count (its payload starts
 * with session u32 ‖ item count u16), read before decoding so that BUSY costs nothing. A JOURNAL_WAIT
 * takes none: it only waits, and counts toward its connection's in-flight limit alone. A count
 * above WIRE_BATCH_ITEMS_MAX is refused by the decoder later; here it weighs no more than the limit.
 */
function requestWeight(frame: Frame): number {
  if (frame.op === OPS.JOURNAL_WAIT.code) return 0; // parked on the journal's head, it uses no capacity (dispatch.ts)
  if (!BATCH_OPS.has(frame.op) || frame.payload.length < 6) return 1;
  return Math.min(WIRE_BATCH_ITEMS_MAX, Math.max(1, ((frame.payload[4] ?? 0) << 8) | (frame.payload[5] ?? 0)));
}

/** Why a connection's deadline would close it (docs/node.md "Limits"). */
type Deadline = { readonly atMs: number; readonly counter: 'closedHandshakeTimeout' | 'closedPartialFrameTimeout' | 'closedIdleTimeout' };

/**
 * One client connection: decoder, sessions, in-flight accounting, the write coalescer, and one
 * timer for its deadline: the HELLO until it came; then a frame begun until it is whole; else, with
 * nothing in flight, the idle limit from the last thing received or answered. The timer is lazy:
 * traffic only moves timestamps (one clock read per chunk), and a timer that fires early re-arms
 * for what is left.
 */
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
  readonly #openedMs = performance.now();
  /** When the partly received frame began, and when the connection last received or answered. */
  #frameStartMs = 0;
  #activeMs = this.#openedMs;
  #timer: NodeJS.Timeout | undefined;
  #timerAtMs = Infinity;

  constructor(node: NodeState, socket: TLSSocket) {
    this.#node = node;
    this.#socket = socket;
    this.#sessions = new SessionTable(node.hsm, `connection-${randomUUID()}`);
    this.#ctx = { hsm: node.hsm, sessions: this.#sessions, load: () => node.load(), inFlightMax: node.limits.inFlightMax, journalWaits: node.journalWaits };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#checkReading());
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.#cleanUp());
    this.#schedule();
  }

  /** Ends the connection now; its sessions close with it. */
  destroy(): void {
    this.#socket.destroy();
    this.#cleanUp();
  }

  #cleanUp(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#sessions.closeAll();
    this.#node.connections.delete(this);
  }

  #deadline(): Deadline | undefined {
    const limits = this.#node.limits;
    if (!this.#helloDone) return { atMs: this.#openedMs + limits.handshakeTimeoutMs, counter: 'closedHandshakeTimeout' };
    if (this.#decoder.bufferedBytes > 0) return { atMs: this.#frameStartMs + limits.partialFrameTimeoutMs, counter: 'closedPartialFrameTimeout' };
    if (this.#inFlight === 0) return { atMs: this.#activeMs + limits.idleTimeoutMs, counter: 'closedIdleTimeout' };
    return undefined; // a request in flight, however slow, is not the client's fault
  }

  /** Arms the timer for the current deadline unless it already fires no later. */
  #schedule(): void {
    const d = this.#deadline();
    if (d === undefined || this.#closed || this.#timerAtMs <= d.atMs) return;
    clearTimeout(this.#timer);
    this.#timerAtMs = d.atMs;
    // A wait past setTimeout's range fires early and re-arms (#onTimer checks the deadline).
    this.#timer = setTimeout(() => this.#onTimer(), Math.min(TIMER_MS_MAX, Math.max(0, Math.ceil(d.atMs - performance.now()))));
    this.#timer.unref();
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAtMs = Infinity;
    const d = this.#deadline();
    if (d === undefined || this.#closed) return;
    if (performance.now() < d.atMs) {
      this.#schedule();
      return;
    }
    this.#node.counters[d.counter]++;
    this.destroy();
  }

  #onData(chunk: Buffer): void {
    const nowMs = performance.now();
    const partBefore = this.#decoder.bufferedBytes > 0;
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch {
      this.destroy(); // framing error: no trustworthy frame boundary remains (wire-protocol.md §1)
      return;
    }
    this.#activeMs = nowMs;
    // A frame began in this chunk: none was pending, or the pending one was completed by it.
    if (this.#decoder.bufferedBytes > 0 && (!partBefore || frames.length > 0)) this.#frameStartMs = nowMs;
    for (const f of frames) {
      if (this.#closed) return;
      this.#onFrame(f);
    }
    this.#checkReading();
    this.#schedule();
  }

  #onFrame(frame: Frame): void {
    if (!this.#helloDone) {
      this.#hello(frame);
      return;
    }
    if (frame.op === OPS.HELLO.code) { // the version is negotiated once per connection
      this.#push(encodeError(frame.requestId, frame.op, new CofferError('COFFER_HELLO_REPEATED')));
      return;
    }
    const node = this.#node;
    const weight = requestWeight(frame);
    // A batch bigger than the whole capacity still runs on an idle node, or it never could.
    const full = node.inFlight > 0 && node.inFlight + weight > node.limits.capacityMax;
    if (this.#inFlight >= node.limits.inFlightMax || full) {
      this.#push(encodeBusy(frame.requestId, frame.op, node.limits.retryAfterMs));
      node.metrics?.busy(frame.op);
      return;
    }
    this.#inFlight++;
    node.inFlight += weight;
    this.#requestBytes += frame.payload.length;
    this.#serve(frame).finally(() => {
      this.#inFlight--;
      node.inFlight -= weight;
      this.#requestBytes -= frame.payload.length;
      this.#activeMs = performance.now();
      this.#checkReading();
      this.#schedule();
    }).catch((e: unknown) => this.#bug(e));
  }

  /** The first frame must be HELLO; a version mismatch is answered, then the connection ends. */
  #hello(frame: Frame): void {
    if (frame.op !== OPS.HELLO.code) {
      this.destroy();
      return;
    }
    this.#helloDone = true;
    this.#serve(frame).then(
      () => undefined,
      (e: unknown) => this.#bug(e),
    );
  }

  async #serve(frame: Frame): Promise<void> {
    let reply: Uint8Array;
    let end = false;
    const metrics = this.#node.metrics;
    const startedMs = metrics === undefined ? 0 : performance.now();
    let request: AnyRequest | undefined;
    let outcome: string = OUTCOME_OK;
    try {
      request = decodeRequest(frame);
      reply = await dispatch(this.#ctx, frame.requestId, request);
    } catch (e) {
      if (!isCofferError(e)) throw e;
      reply = encodeError(frame.requestId, frame.op, e);
      end = e.code === 'COFFER_FORMAT_UNKNOWN_VERSION';
      outcome = e.code;
      this.#node.onRefused?.(frame.op, e.code);
    }
    metrics?.requestDone(frame.op, request, outcome, startedMs);
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

  get bytesHeld(): number {
    return this.#decoder.bufferedBytes + this.#requestBytes + this.#out.pendingBytes + this.#socket.writableLength;
  }

  /** Backpressure: stop reading while the connection holds more than its byte budget. */
  #checkReading(): void {
    if (this.#closed) return;
    if (this.bytesHeld > this.#node.limits.bytesMax) this.#socket.pause();
    else if (this.#socket.isPaused()) this.#socket.resume();
  }
}
