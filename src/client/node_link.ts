// One HSM node as the SDK sees it (docs/sdk.md "Nodes and failover"): its connection(s), each with
// one session logged in as the cluster's user; its state (up, down, probing); the client's own
// in-flight count and the node's reported capacity and load (STATUS, polled every
// CLIENT_STATUS_POLL_MS), which the balancer weighs.
//
// A connection the node closed while nothing was in flight on it (the node's idle timeout, docs/node.md
// "Limits") is opened again — TLS, HELLO, session, login — by the next call that picks it, so the
// caller never sees it; the STATUS poll goes to each connection in turn, which keeps every one of
// them from idling out in the first place. A link that loses a connection with requests on it, that
// cannot reopen one, or whose node answers nothing for requestTimeoutMs while requests are in flight,
// goes down: its pending calls fail (COFFER_CONNECTION_LOST / COFFER_REQUEST_TIMEOUT) and the
// cluster moves idempotent ones elsewhere. A down link is re-probed with doubling backoff
// and gets traffic again only after TLS, HELLO, session and login all succeed. A login refused on a
// re-probe stops the probing for good: repeating it would lock the user out.

import { CofferError, isCofferError } from '../errors.js';
import {
  CLIENT_AUTO_BATCH_IN_FLIGHT_MIN, CLIENT_MISSING_HANDLES_MAX, CLIENT_PROBE_BACKOFF_MAX_MS, CLIENT_PROBE_BACKOFF_MIN_MS, CLIENT_STATUS_POLL_MS,
} from '../formats/limits.js';
import { fromWireError, type OpName, type WireRequest, type WireResponse } from '../formats/wire.js';
import { Connection } from './connection.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** TLS server name to verify, when it differs from `host`. */
  readonly servername?: string;
}

export type LoginRole = NonNullable<WireRequest<'LOGIN'>['role']>;
export type JournalMode = NonNullable<WireResponse<'STATUS'>['journal']>['mode'];
export type JournalPosition = { readonly seq: bigint; readonly hash: Uint8Array };
export type NodeState = 'up' | 'down' | 'probing';

/** A read-only view of one node for callers (Cluster.nodes). */
export interface NodeSnapshot {
  readonly endpoint: Endpoint;
  readonly state: NodeState;
  readonly inFlight: number;
  /** The node's own estimate of small signatures per second (STATUS); 0 = not measured. */
  readonly capacity: number;
  readonly loadPermille: number;
  readonly lastError?: CofferError;
}

export interface LinkOptions {
  readonly endpoint: Endpoint;
  readonly ca: string | readonly string[];
  readonly cert?: string;
  readonly key?: string;
  readonly username: string;
  /** This link's own copy (zeroised on close). */
  readonly password: Uint8Array;
  readonly role: LoginRole;
  readonly connections: number;
  /** Coalesce concurrent single SIGNs into SIGN_BATCH (docs/sdk.md "Auto-batching"). */
  readonly autoBatch: boolean;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Called when the link (re)joins after a probe, so waiting calls can use it. */
  readonly onUp: () => void;
}

/** Operations whose request names a session: the link fills the session in. */
export type SessionOp = { [N in OpName]: WireRequest<N> extends { readonly session: number } ? N : never }[OpName];
/** A request without its session: the link that sends it fills it in (so a retry can go elsewhere). */
export type SessionBody<N extends SessionOp> = Omit<WireRequest<N>, 'session'> & { session?: number };

interface QueuedSign {
  readonly body: SessionBody<'SIGN'>;
  readonly resolve: (r: WireResponse<'SIGN'>) => void;
  readonly reject: (e: unknown) => void;
}

interface Channel {
  readonly connection: Connection;
  readonly session: number;
  inFlight: number;
  /** Nothing was answered on this channel since it last had nothing in flight: if its connection is
   * lost now, the node most likely closed it as idle just as requests went out (see #lost). */
  quiet: boolean;
  /** Set while a replacement for this channel's lost connection is being opened. */
  reopening?: Promise<Channel>;
}

/** The positions a link remembers a node holds: a few entries' worth of acknowledgements in flight. */
const CLIENT_HELD_POSITIONS_KEPT = 64;

/** node:tls verification failures: the node did not prove it belongs to the customer's cluster. */
const UNTRUSTED_TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'INVALID_CA', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_CHAIN_TOO_LONG', 'PATH_LENGTH_EXCEEDED',
]);

/** A failure to reach a node, as a typed error (the node's own typed errors pass through). */
export function connectError(e: unknown, endpoint: Endpoint): CofferError {
  if (e instanceof CofferError) return e;
  const code = typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : 'unknown';
  const where = { host: endpoint.host, port: endpoint.port, reason: code };
  return new CofferError(UNTRUSTED_TLS_CODES.has(code) ? 'COFFER_NODE_UNTRUSTED' : 'COFFER_CONNECTION_LOST', where, { cause: e });
}

/** Login refusals: never repeated automatically (each one counts toward the lockout). */
export function isLoginRefusal(e: unknown): boolean {
  return isCofferError(e, 'COFFER_AUTH_FAILED') || isCofferError(e, 'COFFER_USER_LOCKED');
}

export class NodeLink {
  readonly index: number;
  readonly endpoint: Endpoint;
  state: NodeState = 'down';
  /** Requests this client has in flight on the node (all connections). */
  inFlight = 0;
  /** What the node accepts in flight from this client: the sum of HELLO inFlightMax. */
  inFlightMax = 0;
  /** Items per batch request the node accepts (HELLO batchItemsMax). */
  batchItemsMax = 1;
  capacityOpsPerSecond = 0;
  loadPermille = 0;
  /** Share of the node's capacity other clients use (STATUS inFlight minus ours). */
  othersLoad = 0;
  /** Until when the node asked not to be sent more (BUSY retryAfterMs). */
  busyUntilMs = 0;
  /** Calls answered (any answer): progress, for the stuck-node check and for tests. */
  completed = 0;
  /** SIGN_BATCH frames auto-batching has sent (for tests and tuning). */
  autoBatches = 0;
  lastError: CofferError | undefined;
  /** Handles this node said it does not hold (docs/sdk.md "Which HSM serves a key"). */
  readonly missing = new Set<number>();
  /** How the node's journal is ordered (STATUS), 'unknown' until it said (or when it is too old to say). */
  journalMode: JournalMode | 'unknown' = 'unknown';
  /** The highest journal head seq the node has reported (STATUS, JOURNAL_WAIT, a state change's position). */
  headSeq = -1n;
  /** Told of every (seq, hash) the node reports, for the fork check (docs/sdk.md "Forks"). */
  onPosition: ((link: NodeLink, seq: bigint, hash: Uint8Array) => void) | undefined;
  /** The entries the node said it holds since it was last logged in to (seq → chain hash; its
   * relayed heads and JOURNAL_WAIT answers), the latest CLIENT_HELD_POSITIONS_KEPT. */
  readonly #held = new Map<bigint, Uint8Array>();
  /** Set when the client stopped using this node for good (it holds a forked journal). */
  retired: CofferError | undefined;
  readonly #o: LinkOptions;
  #channels: Channel[] = [];
  #signQueue: QueuedSign[] = [];
  #timer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #backoffMs = CLIENT_PROBE_BACKOFF_MIN_MS;
  #closed = false;
  #probing = true;
  #polling = false;
  /** JOURNAL_WAITs in flight, by seq: what each asks and when its wait ends on the node. */
  readonly #journalWaits = new Map<bigint, { readonly answer: Promise<WireResponse<'JOURNAL_WAIT'>>; readonly endsMs: number }>();
  #progressMark = -1;
  #stalledSinceMs = 0;
  /** The channel the next STATUS poll goes to (round robin: a keepalive for each). */
  #pollNext = 0;

  constructor(index: number, options: LinkOptions) {
    this.index = index;
    this.endpoint = options.endpoint;
    this.#o = options;
  }

  snapshot(): NodeSnapshot {
    return {
      endpoint: this.endpoint, state: this.state, inFlight: this.inFlight, capacity: this.capacityOpsPerSecond, loadPermille: this.loadPermille,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  /** TLS + HELLO + a session on each connection; no login yet. Typed errors only. */
  async connectTransport(): Promise<void> {
    this.#dropChannels();
    const opened = await Promise.allSettled(Array.from({ length: this.#o.connections }, () => this.#openChannel()));
    const channels = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failure = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure !== undefined) {
      for (const c of channels) c.connection.close();
      throw connectError(failure.reason, this.endpoint);
    }
    this.#channels = channels;
  }

  async #openChannel(): Promise<Channel> {
    const o = this.#o;
    const connection = await Connection.connect({
      host: o.endpoint.host, port: o.endpoint.port, ca: o.ca, connectTimeoutMs: o.connectTimeoutMs,
      ...(o.endpoint.servername === undefined ? {} : { servername: o.endpoint.servername }),
      ...(o.cert === undefined ? {} : { cert: o.cert }),
      ...(o.key === undefined ? {} : { key: o.key }),
    });
    try {
      return { connection, session: await connection.openSession(), inFlight: 0, quiet: true };
    } catch (e) {
      connection.close();
      throw e;
    }
  }

  /** Logs every channel in, then marks the link up. A refusal on the first channel stops there. */
  async login(): Promise<void> {
    const [first, ...rest] = this.#channels;
    if (first === undefined) throw new CofferError('COFFER_CONNECTION_LOST', { host: this.endpoint.host, port: this.endpoint.port });
    if (this.retired !== undefined) throw this.retired;
    const o = this.#o;
    await first.connection.login(first.session, o.username, o.password, o.role);
    await Promise.all(rest.map((c) => c.connection.login(c.session, o.username, o.password, o.role)));
    this.headSeq = -1n; // the node may have been restored since: learn its head again
    this.#held.clear(); // and what it holds
    await this.#pollStatus();
    this.inFlightMax = this.#channels.reduce((n, c) => n + c.connection.hello.inFlightMax, 0);
    this.batchItemsMax = Math.max(1, Math.min(...this.#channels.map((c) => c.connection.hello.batchItemsMax)));
    this.missing.clear(); // the node may have been restored since: ask it again
    this.lineage = '';
    this.busyUntilMs = 0;
    this.#backoffMs = CLIENT_PROBE_BACKOFF_MIN_MS;
    this.#probing = false;
    this.state = 'up';
    this.#startTimer();
  }

  /** Sends one session request on the least-loaded connection; the link counts it in flight. */
  async call<N extends SessionOp>(name: N, body: SessionBody<N>): Promise<WireResponse<N>> {
    if (name === 'SIGN' && this.#o.autoBatch && this.inFlight >= CLIENT_AUTO_BATCH_IN_FLIGHT_MIN) {
      return this.#queueSign(body as unknown as SessionBody<'SIGN'>) as Promise<WireResponse<N>>;
    }
    let ch = this.#channel();
    if (ch.connection.isLost) ch = await this.#reopen(ch);
    body.session = ch.session; // encoded synchronously by call(): a retry elsewhere sets its own
    if (ch.inFlight === 0) ch.quiet = true;
    ch.inFlight++;
    this.inFlight++;
    try {
      const response = await ch.connection.call(name, body as unknown as WireRequest<N>);
      ch.quiet = false;
      return response;
    } catch (e) {
      this.#failed(ch, e);
      throw e;
    } finally {
      ch.inFlight--;
      this.inFlight--;
      this.completed++;
    }
  }

  /** Auto-batching (docs/sdk.md): while many calls are in flight, the single SIGNs of one tick travel
   * as SIGN_BATCH frames; each still settles on its own (a failing item rejects with its own error). */
  #queueSign(body: SessionBody<'SIGN'>): Promise<WireResponse<'SIGN'>> {
    if (this.#channels.length === 0) return Promise.reject(this.lastError ?? new CofferError('COFFER_CONNECTION_LOST'));
    this.inFlight++;
    return new Promise((resolve, reject) => {
      this.#signQueue.push({ body, resolve, reject });
      if (this.#signQueue.length >= this.batchItemsMax) this.#flushSigns();
      else if (this.#signQueue.length === 1) setImmediate(this.#flush);
    });
  }

  readonly #flush = (): void => this.#flushSigns();

  #flushSigns(): void {
    const queued = this.#signQueue;
    if (queued.length === 0) return;
    this.#signQueue = [];
    const settle = (): void => {
      this.inFlight -= queued.length;
      this.completed += queued.length;
    };
    const fail = (e: unknown): void => {
      settle();
      for (const q of queued) q.reject(e);
    };
    let ch: Channel;
    try {
      ch = this.#channel();
    } catch (e) {
      fail(e);
      return;
    }
    if (ch.connection.isLost) this.#reopen(ch).then((fresh) => this.#sendSigns(fresh, queued, settle), fail);
    else this.#sendSigns(ch, queued, settle);
  }

  #sendSigns(ch: Channel, queued: readonly QueuedSign[], settle: () => void): void {
    const items = queued.map((q) => ({ handle: q.body.handle, params: q.body.params, data: q.body.data, ...(q.body.identity === undefined ? {} : { identity: q.body.identity }) }));
    if (ch.inFlight === 0) ch.quiet = true;
    ch.inFlight += queued.length;
    this.autoBatches++;
    ch.connection.call('SIGN_BATCH', { session: ch.session, items }).then((r) => {
      ch.inFlight -= queued.length;
      ch.quiet = false;
      settle();
      queued.forEach((q, i) => {
        const x = r.results[i];
        if (x === undefined) q.reject(new CofferError('COFFER_FORMAT_MALFORMED', { reason: 'batch reply is short' }));
        else if (x.ok) q.resolve({ signature: x.value });
        else q.reject(fromWireError(x.error));
      });
    }, (e: unknown) => {
      ch.inFlight -= queued.length;
      settle();
      this.#failed(ch, e);
      for (const q of queued) q.reject(e);
    });
  }

  /** A request that needs no session (STATUS). */
  async callPlain(name: 'STATUS'): Promise<WireResponse<'STATUS'>> {
    const st = await this.#plain(name, {}, this.#channel());
    this.#sawStatus(st);
    return st;
  }

  /**
   * JOURNAL_WAIT (docs/wire-protocol.md "Journal positions"): parks on the node until its head reaches
   * `seq` or `waitMs` (≤ WIRE_JOURNAL_WAIT_MS_MAX) passes. Not counted in flight: it only waits, and
   * the stuck-node check must not take a parked wait for a node that stopped answering.
   */
  waitJournal(seq: bigint, waitMs: number): Promise<WireResponse<'JOURNAL_WAIT'>> {
    // The state changes one journal entry made (a batch) all wait for the same seq: one wait asks
    // for them all. A caller joins a wait in flight only if it ends no later than its own would.
    const nowMs = Date.now();
    const joined = this.#journalWaits.get(seq);
    if (joined !== undefined && joined.endsMs <= nowMs + waitMs) return joined.answer;
    const answer = this.#askJournal(seq, waitMs);
    const wait = { answer, endsMs: nowMs + waitMs };
    this.#journalWaits.set(seq, wait);
    const done = (): void => {
      if (this.#journalWaits.get(seq) === wait) this.#journalWaits.delete(seq);
    };
    answer.then(done, done);
    return answer;
  }

  async #askJournal(seq: bigint, waitMs: number): Promise<WireResponse<'JOURNAL_WAIT'>> {
    const answer = await this.#plain('JOURNAL_WAIT', { seq, waitMs }, this.#channel());
    this.#sawHead(answer.mode, answer.head);
    if (answer.hashAtSeq !== undefined && answer.mode === 'relayed') {
      this.#hold(seq, answer.hashAtSeq);
      this.onPosition?.(this, seq, answer.hashAtSeq);
    }
    return answer;
  }

  /** The chain hash of the entry at `seq` when the node said it holds one there (relayed journal)
   * since it was last logged in to; undefined when it has not said. */
  heldHash(seq: bigint): Uint8Array | undefined {
    return this.#held.get(seq);
  }

  #hold(seq: bigint, hash: Uint8Array): void {
    this.#held.set(seq, hash.slice());
    if (this.#held.size > CLIENT_HELD_POSITIONS_KEPT) {
      const oldest = this.#held.keys().next();
      if (oldest.done !== true) this.#held.delete(oldest.value);
    }
  }

  /** Records a position this node answered as the entry that made a change (its own). */
  sawPosition(position: JournalPosition): void {
    if (position.seq > this.headSeq) this.headSeq = position.seq;
  }

  #sawStatus(st: WireResponse<'STATUS'>): void {
    this.sawLineage(st.objectLineage);
    if (st.journal === undefined) this.journalMode = 'unknown';
    else this.#sawHead(st.journal.mode, st.journal.head);
  }

  #sawHead(mode: JournalMode, head: JournalPosition): void {
    this.journalMode = mode;
    if (head.seq > this.headSeq) this.headSeq = head.seq;
    // Only a relayed journal is the cluster's: solo HSMs each order their own and differ by design.
    if (mode === 'relayed') {
      if (head.seq > 0n) this.#hold(head.seq, head.hash);
      this.onPosition?.(this, head.seq, head.hash);
    }
  }

  async #plain<N extends 'STATUS' | 'JOURNAL_WAIT'>(name: N, request: WireRequest<N>, picked: Channel): Promise<WireResponse<N>> {
    let ch = picked;
    if (ch.connection.isLost) ch = await this.#reopen(ch);
    if (ch.inFlight === 0) ch.quiet = true;
    try {
      const response = await ch.connection.call(name, request);
      ch.quiet = false;
      return response;
    } catch (e) {
      this.#failed(ch, e);
      throw e;
    }
  }

  /**
   * The client stops using this node for good: it holds a journal that forked from the one the
   * cluster acknowledged (docs/sdk.md "Forks"). It is closed, never probed again, and shows `error`
   * in Cluster.nodes.
   */
  retire(error: CofferError): void {
    if (this.retired !== undefined) return;
    this.retired = error;
    this.lastError = error;
    this.#probing = false;
    this.state = 'down';
    clearInterval(this.#timer);
    clearTimeout(this.#probeTimer);
    this.#dropChannels();
  }

  /** The node's object lineage as last seen (STATUS, FIND), hex; '' while unknown. Two nodes that
   * reported one object lineage applied the same key-object change sets from the same backup, so a
   * handle names the same object on both (docs/sdk.md "Which HSM serves a key"). */
  lineage = '';

  /** Records what a reply said of the node's state position. */
  sawLineage(lineage: Uint8Array): void {
    this.lineage = Buffer.from(lineage).toString('hex');
  }

  /**
   * A call on `ch` failed. A typed answer is an answer. A lost connection takes the link down —
   * unless the channel was quiet: the node then most likely closed it as idle while the requests
   * were on their way (it never read them), so the link stays up, the caller gets
   * COFFER_CONNECTION_LOST (an idempotent call is retried by the router, here or elsewhere), and the
   * next call on the channel reopens it; if the node is really gone, that reopen fails and takes
   * the link down.
   */
  #failed(ch: Channel, e: unknown): void {
    if (!ch.connection.isLost) {
      ch.quiet = false;
      return;
    }
    if (!ch.quiet) this.#down(e);
  }

  markMissing(handle: number): void {
    if (this.missing.size >= CLIENT_MISSING_HANDLES_MAX) this.missing.clear();
    this.missing.add(handle);
  }

  /** The cluster gave up on this node at connect time: probe it in the background. */
  startProbing(error: CofferError): void {
    this.lastError = error;
    this.state = 'down';
    this.#probing = true;
    this.#scheduleProbe(error);
  }

  /** The stored password for re-logins (after CHANGE_OWN_PASSWORD on this node). */
  replacePassword(password: Uint8Array): void {
    this.#o.password.fill(0);
    (this.#o as { password: Uint8Array }).password = password;
  }

  close(): void {
    this.#closed = true;
    this.state = 'down';
    clearInterval(this.#timer);
    clearTimeout(this.#probeTimer);
    this.#dropChannels();
    this.#o.password.fill(0);
  }

  #channel(): Channel {
    const chs = this.#channels;
    let best = chs[0];
    if (best === undefined) throw this.lastError ?? new CofferError('COFFER_CONNECTION_LOST', { host: this.endpoint.host, port: this.endpoint.port });
    for (let i = 1; i < chs.length; i++) {
      const c = chs[i] as Channel;
      if (c.inFlight < best.inFlight) best = c;
    }
    return best;
  }

  /**
   * Replaces a channel whose connection was lost while nothing was in flight on it (so no call saw
   * it go): a new connection, session and login, shared by every call that picked the old one. A
   * failure takes the link down (a refused login stops its probing, as on any re-probe).
   */
  async #reopen(lost: Channel): Promise<Channel> {
    lost.reopening ??= this.#openChannel().then(async (fresh) => {
      const o = this.#o;
      try {
        await fresh.connection.login(fresh.session, o.username, o.password, o.role);
      } catch (e) {
        fresh.connection.close();
        throw e;
      }
      const at = this.#channels.indexOf(lost);
      if (at < 0 || this.#closed) { // the link went down or closed meanwhile: the fresh channel is not ours
        fresh.connection.close();
        throw this.lastError ?? new CofferError('COFFER_CONNECTION_LOST', { host: this.endpoint.host, port: this.endpoint.port });
      }
      this.#channels[at] = fresh;
      return fresh;
    });
    try {
      return await lost.reopening;
    } catch (e) {
      const error = connectError(e, this.endpoint);
      this.#down(error, error);
      throw error;
    }
  }

  #dropChannels(): void {
    for (const c of this.#channels) c.connection.abort();
    this.#channels = [];
  }

  #down(e: unknown, error?: CofferError): void {
    if (this.state !== 'up') return;
    this.state = 'down';
    this.lastError = error ?? (e instanceof CofferError ? e : new CofferError('COFFER_CONNECTION_LOST'));
    clearInterval(this.#timer);
    for (const c of this.#channels) c.connection.abort(error);
    this.#channels = [];
    this.#probing = true;
    this.#scheduleProbe(this.lastError);
  }

  #scheduleProbe(error: CofferError): void {
    if (this.#closed) return;
    if (isLoginRefusal(error)) return; // never log in again by ourselves: it would lock the user
    // An untrusted answer is re-probed like a lost one: a replaced HSM listens on its address as a
    // blank device (its own certificate, not the cluster's) until the control plane has restored it
    // seconds later, and the client should be back as soon as it is (docs/sdk.md "Failover").
    const delayMs = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, CLIENT_PROBE_BACKOFF_MAX_MS);
    clearTimeout(this.#probeTimer);
    this.#probeTimer = setTimeout(() => void this.#probe(), delayMs);
    this.#probeTimer.unref();
  }

  async #probe(): Promise<void> {
    if (this.#closed || !this.#probing) return;
    this.state = 'probing';
    try {
      await this.connectTransport();
      await this.login();
    } catch (e) {
      this.#dropChannels();
      if (this.#closed) return;
      this.state = 'down';
      this.lastError = connectError(e, this.endpoint);
      this.#scheduleProbe(this.lastError);
      return;
    }
    if (this.#closed) {
      this.#dropChannels();
      return;
    }
    this.#o.onUp();
  }

  #startTimer(): void {
    clearInterval(this.#timer);
    this.#progressMark = -1;
    this.#timer = setInterval(() => this.#tick(), CLIENT_STATUS_POLL_MS);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.state !== 'up') return;
    const nowMs = Date.now();
    if (this.inFlight === 0 || this.completed !== this.#progressMark) {
      this.#progressMark = this.completed;
      this.#stalledSinceMs = nowMs;
    } else if (nowMs - this.#stalledSinceMs >= this.#o.requestTimeoutMs) {
      const timeout = new CofferError('COFFER_REQUEST_TIMEOUT', { host: this.endpoint.host, port: this.endpoint.port, timeoutMs: this.#o.requestTimeoutMs });
      this.#down(timeout, timeout);
      return;
    }
    if (!this.#polling) void this.#pollStatus().catch(() => undefined);
  }

  async #pollStatus(): Promise<void> {
    this.#polling = true;
    try {
      const next = this.#channels[this.#pollNext++ % Math.max(1, this.#channels.length)];
      const st = next === undefined ? await this.callPlain('STATUS') : await this.#plain('STATUS', {}, next);
      this.#sawStatus(st);
      this.capacityOpsPerSecond = st.capacityOpsPerSecond;
      this.loadPermille = st.loadPermille;
      // The node counts this STATUS among its in-flight requests; this client's count does not hold it.
      // Left in, every idle node would show a little load of "others" that a busy one sometimes does
      // not, and sequential callers would keep to the node they used last.
      const others = st.inFlightMax > 0 ? (st.inFlight - 1 - this.inFlight) / st.inFlightMax : 0;
      this.othersLoad = Math.min(0.9, Math.max(0, others));
    } finally {
      this.#polling = false;
    }
  }
}
