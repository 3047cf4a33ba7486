// One client connection to one HSM node's data plane (docs/wire-protocol.md, docs/node.md "Client").
//
// TLS 1.3 only; HELLO on connect; call() sends a request under a fresh request id and resolves with
// the reply matched by id, so many calls are in flight and replies come in any order. Requests made
// during one tick are written with one socket.write (TickWriter). Replies map to errors:
// ERROR → the CofferError of its stable code; BUSY → NodeBusyError (COFFER_NODE_BUSY) carrying the
// node's retryAfterMs (retrying is the caller's or a later balancer's policy); a lost connection
// rejects every pending call with COFFER_CONNECTION_LOST. Imports only crypto and formats.

import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { CofferError, fail } from '../errors.js';
import { WIRE_VERSION_MAX, WIRE_VERSION_MIN, FrameDecoder, TickWriter, decodeReply, encodeRequest, type Frame, type OpName, type WireRequest, type WireResponse, type WireMechanismParams } from '../formats/wire.js';

/** How long connect() waits for TCP + TLS + HELLO before giving up. */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  /** Trusted certificate(s), PEM: the customer CA, or before a cluster exists the node's pinned leaf. */
  readonly ca?: string | readonly string[];
  readonly servername?: string;
  readonly connectTimeoutMs?: number;
  /** Client certificate (PEM, optionally followed by its chain) and key, for a node that asks for one. */
  readonly cert?: string;
  readonly key?: string;
}

/** The node answered BUSY: nothing was done; retry after `retryAfterMs`, here or on another node. */
export class NodeBusyError extends CofferError {
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number) {
    super('COFFER_NODE_BUSY', { retryAfterMs });
    this.retryAfterMs = retryAfterMs;
  }
}

interface Pending {
  readonly name: OpName;
  readonly resolve: (frame: Frame) => void;
  readonly reject: (e: unknown) => void;
}

export type Hello = WireResponse<'HELLO'>;

export class Connection {
  readonly #socket: TLSSocket;
  readonly #decoder = new FrameDecoder();
  readonly #out = new TickWriter((bytes) => {
    if (this.#lost === undefined) this.#socket.write(bytes);
  });
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #lost: CofferError | undefined;
  #hello: Hello | undefined;

  private constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => this.#lose());
    socket.on('close', () => this.#lose());
  }

  /** Opens TLS 1.3 to the node and negotiates the protocol version (HELLO). */
  static async connect(options: ConnectOptions): Promise<Connection> {
    const socket = tlsConnect({
      host: options.host, port: options.port, minVersion: 'TLSv1.3',
      ...(options.ca === undefined ? {} : { ca: typeof options.ca === 'string' ? options.ca : [...options.ca] }),
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.cert === undefined ? {} : { cert: options.cert }),
      ...(options.key === undefined ? {} : { key: options.key }),
    });
    const timer = setTimeout(() => socket.destroy(), options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
        socket.once('close', () => reject(new CofferError('COFFER_CONNECTION_LOST', { phase: 'handshake' })));
      });
      const c = new Connection(socket);
      c.#hello = await c.call('HELLO', { versionMin: WIRE_VERSION_MIN, versionMax: WIRE_VERSION_MAX });
      return c;
    } catch (e) {
      socket.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** What the node said in HELLO: version and its limits. */
  get hello(): Hello {
    return this.#hello ?? fail('COFFER_CONNECTION_LOST', { phase: 'hello' });
  }
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Sends one request; resolves with its response, rejects with its typed error. */
  async call<N extends OpName>(name: N, request: WireRequest<N>): Promise<WireResponse<N>> {
    if (this.#lost !== undefined) throw this.#lost;
    const id = this.#takeId();
    const frame = encodeRequest(id, name, request);
    const reply = await new Promise<Frame>((resolve, reject) => {
      this.#pending.set(id, { name, resolve, reject });
      this.#push(frame);
    });
    const r = decodeReply(name, reply);
    if (r.kind === 'response') return r.response;
    if (r.kind === 'busy') throw new NodeBusyError(r.retryAfterMs);
    throw r.error;
  }

  close(): void {
    this.#socket.end();
  }

  #takeId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = id >= 0xffff_ffff ? 1 : id + 1;
      if (!this.#pending.has(id)) return id;
    }
  }

  #push(frame: Uint8Array): void {
    this.#out.push(frame);
  }

  #onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch {
      this.#socket.destroy(); // no trustworthy frame boundary: give the connection up
      return;
    }
    for (const f of frames) {
      const p = this.#pending.get(f.requestId);
      if (p === undefined) {
        this.#socket.destroy(); // a reply to nothing: the stream cannot be trusted
        return;
      }
      this.#pending.delete(f.requestId);
      p.resolve(f);
    }
  }

  /** Drops the connection now (a client that gave up on a stuck node): every pending and later
   * call rejects with `error` (default COFFER_CONNECTION_LOST). */
  abort(error?: CofferError): void {
    this.#lose(error);
  }
  /** True once the connection is lost, closed or aborted: every call now rejects. */
  get isLost(): boolean {
    return this.#lost !== undefined;
  }

  #lose(error?: CofferError): void {
    if (this.#lost !== undefined) return;
    this.#lost = error ?? new CofferError('COFFER_CONNECTION_LOST');
    for (const p of this.#pending.values()) p.reject(this.#lost);
    this.#pending.clear();
    this.#socket.destroy();
  }

  // ── typed helpers (docs/node.md lists which operations the node implements) ─────────────────

  status(): Promise<WireResponse<'STATUS'>> {
    return this.call('STATUS', {});
  }
  async openSession(): Promise<number> {
    return (await this.call('OPEN_SESSION', {})).session;
  }
  async closeSession(session: number): Promise<void> {
    await this.call('CLOSE_SESSION', { session });
  }
  /** The password is encoded to bytes for the wire and zeroised once its frame is encoded. */
  login(session: number, name: string, password: string | Uint8Array, role?: WireRequest<'LOGIN'>['role']): Promise<WireResponse<'LOGIN'>> {
    const bytes = typeof password === 'string' ? new TextEncoder().encode(password) : password;
    const p = this.call('LOGIN', { session, name, password: bytes, ...(role === undefined ? {} : { role }) });
    if (typeof password === 'string') bytes.fill(0); // call() encoded it synchronously
    return p;
  }
  async logout(session: number): Promise<void> {
    await this.call('LOGOUT', { session });
  }
  async random(session: number, length: number): Promise<Uint8Array> {
    return (await this.call('RANDOM', { session, length })).bytes;
  }
  async generateKey(session: number, spec: WireRequest<'GENERATE_KEY'>['spec'], template: WireRequest<'GENERATE_KEY'>['template'] = {}): Promise<number> {
    return (await this.call('GENERATE_KEY', { session, spec, template })).handle;
  }
  generateKeyPair(session: number, spec: WireRequest<'GENERATE_KEY_PAIR'>['spec'], publicTemplate: WireRequest<'GENERATE_KEY_PAIR'>['publicTemplate'] = {}, privateTemplate: WireRequest<'GENERATE_KEY_PAIR'>['privateTemplate'] = {}): Promise<WireResponse<'GENERATE_KEY_PAIR'>> {
    return this.call('GENERATE_KEY_PAIR', { session, spec, publicTemplate, privateTemplate });
  }
  async sign(session: number, handle: number, params: WireMechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return (await this.call('SIGN', { session, handle, params, data })).signature;
  }
  async verify(session: number, handle: number, params: WireMechanismParams, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return (await this.call('VERIFY', { session, handle, params, data, signature })).valid;
  }
  async encrypt(session: number, handle: number, params: WireMechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return (await this.call('ENCRYPT', { session, handle, params, data })).data;
  }
  async decrypt(session: number, handle: number, params: WireMechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return (await this.call('DECRYPT', { session, handle, params, data })).data;
  }
  getAttributes(session: number, handle: number): Promise<WireResponse<'GET_ATTRIBUTES'>> {
    return this.call('GET_ATTRIBUTES', { session, handle });
  }
  async exportPublic(session: number, handle: number): Promise<string> {
    return (await this.call('EXPORT_PUBLIC', { session, handle })).pem;
  }
  async destroy(session: number, handle: number): Promise<void> {
    await this.call('DESTROY', { session, handle });
  }

  // ── user, quorum and key-management helpers (each is one call of the same op) ──────────────

  /** CloudHSM's `cluster activate`; the passwords are zeroised once encoded when given as text. */
  async activate(preCoPassword: string | Uint8Array, newPassword: string | Uint8Array): Promise<void> {
    await this.#withPasswords([preCoPassword, newPassword], ([p, n]) => this.call('ACTIVATE', { preCoPassword: p, newPassword: n }));
  }
  async createUser(session: number, name: string, password: string | Uint8Array, role: WireRequest<'CREATE_USER'>['role']): Promise<void> {
    await this.#withPasswords([password], ([p]) => this.call('CREATE_USER', { session, name, password: p, role }));
  }
  async deleteUser(session: number, name: string): Promise<void> {
    await this.call('DELETE_USER', { session, name });
  }
  async listUsers(session: number): Promise<WireResponse<'LIST_USERS'>['users']> {
    return (await this.call('LIST_USERS', { session })).users;
  }
  async changePassword(session: number, name: string, newPassword: string | Uint8Array): Promise<void> {
    await this.#withPasswords([newPassword], ([n]) => this.call('CHANGE_PASSWORD', { session, name, newPassword: n }));
  }
  async changeOwnPassword(session: number, currentPassword: string | Uint8Array, newPassword: string | Uint8Array): Promise<void> {
    await this.#withPasswords([currentPassword, newPassword], ([c, n]) => this.call('CHANGE_OWN_PASSWORD', { session, currentPassword: c, newPassword: n }));
  }
  async unlockUser(session: number, name: string): Promise<void> {
    await this.call('UNLOCK_USER', { session, name });
  }
  async importPublicKey(session: number, key: Uint8Array | string, template: WireRequest<'IMPORT_PUBLIC_KEY'>['template'] = {}): Promise<number> {
    return (await this.call('IMPORT_PUBLIC_KEY', { session, key, template })).handle;
  }
  async importPrivateKey(session: number, key: Uint8Array | string, template: WireRequest<'IMPORT_PRIVATE_KEY'>['template'] = {}): Promise<number> {
    return (await this.call('IMPORT_PRIVATE_KEY', { session, key, template })).handle;
  }
  async setAttribute(session: number, handle: number, name: WireRequest<'SET_ATTRIBUTE'>['name'], value: WireRequest<'SET_ATTRIBUTE'>['value']): Promise<void> {
    await this.call('SET_ATTRIBUTE', { session, handle, name, value });
  }
  async share(session: number, handle: number, userName: string): Promise<void> {
    await this.call('SHARE', { session, handle, userName });
  }
  async unshare(session: number, handle: number, userName: string): Promise<void> {
    await this.call('UNSHARE', { session, handle, userName });
  }
  /** The key's bytes, in a buffer the caller owns and should zeroise. */
  async exportPlaintext(session: number, handle: number): Promise<Uint8Array> {
    return (await this.call('EXPORT_PLAINTEXT', { session, handle })).key;
  }
  async wrapKey(session: number, wrappingHandle: number, targetHandle: number, params: WireMechanismParams): Promise<Uint8Array> {
    return (await this.call('WRAP_KEY', { session, wrappingHandle, targetHandle, params })).wrapped;
  }
  async unwrapKey(session: number, unwrappingHandle: number, wrapped: Uint8Array, params: WireMechanismParams, template: WireRequest<'UNWRAP_KEY'>['template']): Promise<number> {
    return (await this.call('UNWRAP_KEY', { session, unwrappingHandle, wrapped, params, template })).handle;
  }
  async deriveKey(session: number, baseHandle: number, params: WireMechanismParams, template: WireRequest<'DERIVE_KEY'>['template']): Promise<number> {
    return (await this.call('DERIVE_KEY', { session, baseHandle, params, template })).handle;
  }
  async digest(session: number, params: WireMechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return (await this.call('DIGEST', { session, params, data })).digest;
  }

  /** Text passwords become bytes for the wire and are zeroised once call() has encoded them
   * (synchronously); bytes given by the caller stay the caller's. */
  #withPasswords<const P extends readonly (string | Uint8Array)[], T>(passwords: P, send: (bytes: { readonly [K in keyof P]: Uint8Array }) => Promise<T>): Promise<T> {
    const bytes = passwords.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : p));
    try {
      return send(bytes as unknown as { readonly [K in keyof P]: Uint8Array });
    } finally {
      bytes.forEach((b, i) => {
        if (typeof passwords[i] === 'string') b.fill(0);
      });
    }
  }
}
