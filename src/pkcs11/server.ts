// The p11-kit RPC server (docs/pkcs11.md): listens on a Unix socket, negotiates the protocol version
// (rpc_transport.ts), decodes each framed call (rpc_messages.ts), hands it to a Pkcs11Backend
// (backend.ts) and frames the answer with the request's code. PKCS#11 applications reach it through
// p11-kit's client module with P11_KIT_SERVER_ADDRESS=unix:path=<socket>.
//
// Per connection, calls are served concurrently, up to P11_CALLS_IN_FLIGHT_MAX, each answered with
// its own call code as it finishes (p11-kit's own server serves one at a time, but its client
// matches answers to calls by that code, so an application's threads need not wait for each other
// behind the one socket); the socket is not read at that limit or while more than
// P11_PENDING_OUTPUT_BYTES_MAX of answers wait to be written, so a connection holds at most that many
// frames and answers and one read chunk. Each answer is written as soon as it is made. Holding the
// answers of one event-loop turn for one write (as the node and the SDK do) was measured slower here:
// p11-kit's client reads one answer at a time and hands each to the thread waiting for it, so a
// write of several answers saves the bridge system calls but costs the application's threads more
// wake-ups (docs/pkcs11.md "CPU per signature"). Calls before C_Initialize answer
// CKR_CRYPTOKI_NOT_INITIALIZED; C_Initialize must carry p11-kit's handshake string.
//
// Refusals (each logged with its reason, never with call contents: PINs travel in calls):
// - a framing error (oversize or malformed header), an unknown call id or signature, a version byte
//   or a frame that does not arrive in time → the connection is closed; other connections go on;
// - arguments that do not decode (malformed, over a limit, a vendor mechanism or attribute) → an
//   ERROR answer with the error's CKR_* (CKR_DEVICE_ERROR for malformed bytes, as p11-kit answers
//   its parse errors); the connection stays up.
// Connections are capped (P11_CONNECTIONS_MAX); they are not closed when idle, because p11-kit's
// client keeps one socket for its process's whole life and has no way to reconnect mid-session.
// The socket file is created owner-only (0600) and removed on close.

import { randomUUID } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { assert } from '../assert.js';
import { CofferError, isCofferError, type ErrorCode } from '../errors.js';
import { hasSizedOutput, type Answer, type Pkcs11Backend, type Pkcs11Connection, type Pkcs11Handler } from './backend.js';
import { CKR, type CkrName } from './constants.js';
import { P11_CALLS_IN_FLIGHT_MAX, P11_CONNECTIONS_MAX, P11_HANDSHAKE_TIMEOUT_MS, P11_PARTIAL_FRAME_TIMEOUT_MS, P11_PENDING_OUTPUT_BYTES_MAX } from './limits.js';
import { callByName, type CallName } from './rpc_calls.js';
import type { ProtocolVersion } from './rpc_codec.js';
import { decodeRequest, encodeErrorFrame, encodeResponseFrame, type AnyRequest } from './rpc_messages.js';
import { P11_RPC_HANDSHAKE, StreamDecoder, negotiateVersion, type Frame } from './rpc_transport.js';

export interface Pkcs11ServerOptions {
  readonly socketPath: string;
  readonly backend: Pkcs11Backend;
  /** Structured log of connections and refusals (default: silent). */
  readonly logger?: Logger;
  readonly handshakeTimeoutMs?: number;
  readonly partialFrameTimeoutMs?: number;
  readonly connectionsMax?: number;
  /** Called with an untyped exception from the backend or the server (a bug); the connection is
   * closed. Default: log it and stop the process (an HSM bridge must not run on in an unknown state). */
  readonly onBug?: (error: unknown) => void;
}

export interface Pkcs11Server {
  readonly socketPath: string;
  /** Connections open now. */
  connections(): number;
  close(): Promise<void>;
}

/** EX_SOFTWARE (sysexits.h), as the node uses for a bug. */
const BUG_EXIT_CODE = 70;

/** The numeric CK_RV for a registry error (errors.ts keeps CKR names). */
export function ckrOf(e: CofferError): number {
  const name = e.ckr.replace(/^CKR_/, '') as CkrName;
  return CKR[name] ?? CKR.GENERAL_ERROR;
}

/** Codes after which the stream cannot be trusted: the connection is closed. */
const CLOSING: ReadonlySet<ErrorCode> = new Set(['COFFER_P11_FRAME_INVALID', 'COFFER_P11_CALL_UNKNOWN', 'COFFER_P11_TIMEOUT']);

/** C_GetAttributeValue's template travels with these (rpc-server.c proto_write_attribute_array). */
const ATTRIBUTE_ANSWER_RVS: ReadonlySet<number> = new Set([CKR.OK, CKR.ATTRIBUTE_SENSITIVE, CKR.ATTRIBUTE_TYPE_INVALID, CKR.BUFFER_TOO_SMALL]);

export async function startPkcs11Server(options: Pkcs11ServerOptions): Promise<Pkcs11Server> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const onBug = options.onBug ?? ((e: unknown) => {
    logger.fatal({ event: 'p11.bug', error: e instanceof Error ? e.name : typeof e }, 'bug in the PKCS#11 bridge: stopping');
    process.exit(BUG_EXIT_CODE);
  });
  const limits = {
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? P11_HANDSHAKE_TIMEOUT_MS,
    partialFrameTimeoutMs: options.partialFrameTimeoutMs ?? P11_PARTIAL_FRAME_TIMEOUT_MS,
  };
  const open = new Set<Connection>();
  const server: Server = createServer((socket) => {
    const connection: Connection = new Connection(socket, options.backend, logger, limits, onBug, () => open.delete(connection));
    open.add(connection);
  });
  server.maxConnections = options.connectionsMax ?? P11_CONNECTIONS_MAX;
  server.on('drop', () => logger.warn({ event: 'p11.connection.refused', reason: 'connections at their limit' }, 'connection refused'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => resolve());
  });
  await chmod(options.socketPath, 0o600);
  logger.info({ event: 'p11.listening', socket: options.socketPath }, 'PKCS#11 bridge listening');
  return {
    socketPath: options.socketPath,
    connections: () => open.size,
    close: async () => {
      for (const c of open) c.close('server closing');
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(options.socketPath, { force: true });
    },
  };
}

interface Limits {
  readonly handshakeTimeoutMs: number;
  readonly partialFrameTimeoutMs: number;
}

class Connection {
  readonly #decoder = new StreamDecoder();
  readonly #id = randomUUID();
  #version: ProtocolVersion | undefined;
  /** What every call is handed, made once when the version is negotiated. */
  #handedOut: Pkcs11Connection | undefined;
  #initialized = false;
  /** Calls being served (at most P11_CALLS_IN_FLIGHT_MAX). */
  #serving = 0;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly socket: Socket,
    private readonly backend: Pkcs11Backend,
    private readonly logger: Logger,
    private readonly limits: Limits,
    private readonly onBug: (e: unknown) => void,
    private readonly onGone: () => void,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk);
      this.#pump();
    });
    socket.on('drain', () => this.#pump());
    socket.on('error', () => this.close('socket error'));
    socket.on('close', () => this.#cleanUp());
    this.#arm(limits.handshakeTimeoutMs, 'no version byte in time');
  }

  get #connection(): Pkcs11Connection {
    assert(this.#handedOut !== undefined, 'version negotiated before any call');
    return this.#handedOut;
  }

  close(reason: string, detail: Record<string, unknown> = {}): void {
    if (this.#closed) return;
    this.logger.info({ event: 'p11.connection.closed', connection: this.#id, reason, ...detail }, 'connection closed');
    this.socket.destroy();
    this.#cleanUp();
  }

  #cleanUp(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.onGone();
    if (this.#version !== undefined) {
      Promise.resolve(this.backend.release?.(this.#connection)).catch((e: unknown) => this.onBug(e));
    }
  }

  #arm(ms: number, reason: string): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.close(reason, { code: 'COFFER_P11_TIMEOUT' }), ms);
    this.#timer.unref();
  }

  /** Serves what has arrived, up to P11_CALLS_IN_FLIGHT_MAX calls at once, each answered under its
   * own call code as it finishes; reading pauses at that limit or while answers pile up. */
  #pump(): void {
    while (!this.#closed && this.#serving < P11_CALLS_IN_FLIGHT_MAX) {
      if (this.#pendingOutputBytes > P11_PENDING_OUTPUT_BYTES_MAX) break;
      let item;
      try {
        item = this.#decoder.next();
      } catch (e) {
        if (!isCofferError(e)) throw e;
        this.close('framing error', { code: e.code, detail: e.detail });
        return;
      }
      if (item === undefined) break;
      if (item.kind === 'version') {
        this.#version = negotiateVersion(item.offered);
        this.#handedOut = Object.freeze({ id: this.#id, version: this.#version });
        this.socket.write(Uint8Array.of(this.#version));
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.logger.info({ event: 'p11.connection.opened', connection: this.#id, offered: item.offered, version: this.#version }, 'connection opened');
        continue;
      }
      this.#serving++;
      this.#serve(item.frame).then(
        () => {
          this.#serving--;
          this.#pump();
        },
        (e: unknown) => {
          this.onBug(e);
          this.close('bug');
        },
      );
    }
    if (this.#closed) return;
    const busy = this.#serving >= P11_CALLS_IN_FLIGHT_MAX || this.#pendingOutputBytes > P11_PENDING_OUTPUT_BYTES_MAX;
    if (busy) this.socket.pause();
    else this.socket.resume();
    // A frame begun must finish in time; a version byte is watched from the start.
    if (this.#version !== undefined) {
      if (this.#decoder.midFrame && this.#serving === 0) {
        if (this.#timer === undefined) this.#arm(this.limits.partialFrameTimeoutMs, 'frame not whole in time');
      } else {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    }
  }

  /** Answers not yet handed to the kernel: buffered by the socket. */
  get #pendingOutputBytes(): number {
    return this.socket.writableLength;
  }

  async #serve(frame: Frame): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let answer: Uint8Array;
    try {
      answer = await this.#answer(frame.code, decodeRequest(this.#connection.version, frame.body));
    } catch (e) {
      if (!isCofferError(e)) throw e;
      if (CLOSING.has(e.code)) {
        this.close('not a p11-kit call', { code: e.code, detail: e.detail });
        return;
      }
      this.logger.info({ event: 'p11.call.refused', connection: this.#id, code: e.code, detail: e.detail }, 'call refused');
      answer = encodeErrorFrame(frame.code, ckrOf(e));
    }
    // Written at once (see the header); #pump runs when this call settles.
    if (!this.#closed) this.socket.write(answer);
  }

  /** The answer to `call`, framed under the request's `code`. */
  async #answer(code: number, call: AnyRequest): Promise<Uint8Array> {
    if (call.name === 'C_Initialize') return this.#initialize(code, call.request);
    if (!this.#initialized) return encodeErrorFrame(code, CKR.CRYPTOKI_NOT_INITIALIZED);
    if (call.name === 'C_Finalize') {
      const rv = await this.#invoke(call);
      if (rv.rv === CKR.OK) {
        this.#initialized = false;
        await this.backend.release?.(this.#connection);
      }
      return this.#encode(code, call.name, rv);
    }
    return this.#encode(code, call.name, await this.#invoke(call));
  }

  async #initialize(code: number, request: Extract<AnyRequest, { name: 'C_Initialize' }>['request']): Promise<Uint8Array> {
    const h = request.handshake;
    if (!(h instanceof Uint8Array) || h.length !== P11_RPC_HANDSHAKE.length || !h.every((b, i) => b === P11_RPC_HANDSHAKE[i])) {
      this.logger.info({ event: 'p11.call.refused', connection: this.#id, code: 'COFFER_P11_HANDSHAKE_INVALID' }, 'call refused');
      return encodeErrorFrame(code, ckrOf(new CofferError('COFFER_P11_HANDSHAKE_INVALID')));
    }
    if (this.#initialized) return encodeErrorFrame(code, CKR.CRYPTOKI_ALREADY_INITIALIZED);
    const answer = await this.#invoke({ name: 'C_Initialize', request });
    if (answer.rv === CKR.OK) this.#initialized = true;
    return this.#encode(code, 'C_Initialize', answer);
  }

  /** Runs the backend's handler; a missing one is CKR_FUNCTION_NOT_SUPPORTED, a CofferError its CKR. */
  async #invoke(call: AnyRequest): Promise<Answer<CallName>> {
    const handler = this.backend[call.name] as Pkcs11Handler<CallName> | undefined;
    if (handler === undefined) {
      if (call.name === 'C_Initialize' || call.name === 'C_Finalize') return { rv: CKR.OK, out: {} as never };
      return { rv: CKR.FUNCTION_NOT_SUPPORTED };
    }
    try {
      return await handler(call.request as never, this.#connection);
    } catch (e) {
      if (!isCofferError(e)) throw e;
      this.logger.info({ event: 'p11.call.failed', connection: this.#id, call: call.name, code: e.code }, 'call failed');
      return { rv: ckrOf(e) };
    }
  }

  #encode(code: number, name: CallName, answer: Answer<CallName>): Uint8Array {
    const call = callByName(name);
    const withRv = call.response.some((f) => f[0] === 'rv');
    const carried = answer.rv === CKR.OK
      || (answer.rv === CKR.BUFFER_TOO_SMALL && (hasSizedOutput(call) || withRv))
      || (name === 'C_GetAttributeValue' && ATTRIBUTE_ANSWER_RVS.has(answer.rv));
    if (!carried) return encodeErrorFrame(code, answer.rv);
    assert(answer.out !== undefined, `the backend answered ${name} with its outputs`);
    const response = withRv ? { ...answer.out, rv: BigInt(answer.rv) } : answer.out;
    return encodeResponseFrame(code, this.#connection.version, name, response as never);
  }
}
