// Sends each call to a node and decides what a failure means (docs/sdk.md "Retries").
//
// Idempotent calls (crypto, reads) go to the balancer's pick and, when a node fails them (connection
// lost, stuck, BUSY, or "no such object" / "another object" at the handle), move to another node,
// up to `retries` extra attempts; BUSY marks its node for retryAfterMs. State changes go to the
// primary (the first up node in endpoint order, or of the nodes a key may use) once: after a request
// may have reached a node it is never resent, since it may have taken effect; only BUSY (the node did
// nothing) is retried there. When every node is at its in-flight limit a call waits in a bounded FIFO
// for a free slot.
//
// A call on a key goes only to the nodes its route allows: those known to hold the key (docs/sdk.md
// "Which HSM serves a key"). A state change's acknowledgements are gathered by `change` (acks.ts). When none of them is up the call fails with
// COFFER_KEY_UNAVAILABLE: another node's object at that handle may be another key.

import { CofferError, isCofferError } from '../errors.js';
import { CLIENT_QUEUE_MAX } from '../formats/limits.js';
import type { WireResponse } from '../formats/wire.js';
import { ALL_NODES, PICK_IGNORE_MISSING, PICK_IGNORE_TRIED, PICK_STRICT, pickLink } from './balancer.js';
import { NodeBusyError } from './connection.js';
import { checkAcks, type Acknowledgement } from './acks.js';
import type { JournalPosition, NodeLink, SessionBody, SessionOp } from './node_link.js';

/** Where a call may go: any node (balanced), only the nodes of the `nodes` bit mask (a key's), or the
 * primary first (reads that should see this client's own state changes). */
export type Route = { readonly handle?: number; readonly nodes?: number; readonly primaryFirst?: boolean };

/** Gathers the acknowledgements of a state change (acks.ts; `k` undefined: the client's default). */
export type Acknowledge = (origin: NodeLink, position: JournalPosition | undefined, k: number | undefined) => Promise<Acknowledgement>;

/** Per-call options of a state change. */
export interface ChangeOptions {
  /** HSMs that must hold the change before the call returns (docs/sdk.md "Acknowledgements"). */
  readonly acks?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Router {
  readonly links: readonly NodeLink[];
  readonly #retries: number;
  readonly #waiters: Array<() => void> = [];
  #start = 0;
  /** Set by the cluster: how a state change is acknowledged. */
  acknowledge: Acknowledge = (origin) => Promise.resolve({ nodes: [origin.index], required: 1 });
  /** Set by the cluster: what a state change asks of the other HSMs as it leaves (acks.ts watchHeads). */
  watch: (origin: NodeLink, k: number | undefined) => void = () => undefined;

  constructor(links: readonly NodeLink[], retries: number) {
    this.links = links;
    this.#retries = retries;
  }

  /**
   * A state change (`primary`), then its acknowledgements: on a relayed cluster it returns once
   * `options.acks` HSMs (default: the client's) hold the journal entry that made it, else fails
   * COFFER_ACKS_NOT_MET (acks.ts).
   */
  async change<N extends SessionOp>(name: N, body: SessionBody<N>, route?: Route, options: ChangeOptions = {}): Promise<{ response: WireResponse<N>; node: number; acknowledgement: Acknowledgement }> {
    if (options.acks !== undefined) checkAcks(options.acks, this.links.length); // refused before anything is sent
    const origin = this.#firstUp(route?.nodes);
    if (origin !== undefined) this.watch(origin, options.acks); // none up: primary() says so
    const { response, node } = await this.primary(name, body, route);
    const position = (response as { readonly position?: JournalPosition }).position;
    const acknowledgement = await this.acknowledge(this.links[node] as NodeLink, position, options.acks);
    return { response, node, acknowledgement };
  }

  /** The up nodes whose journal head is known to be at or past `seq` (a bit mask): those that hold
   * every change up to that position (docs/sdk.md "Which HSM serves a key"). */
  nodesAtOrPast(seq: bigint): number {
    let mask = 0;
    for (const l of this.links) if (l.state === 'up' && l.journalMode === 'relayed' && l.headSeq >= seq) mask |= 1 << l.index;
    return mask;
  }

  /** An idempotent call: balanced, retried on another node when one fails it. */
  async idempotent<N extends SessionOp>(name: N, body: SessionBody<N>, route?: Route): Promise<WireResponse<N>> {
    let tried = 0;
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      const link = this.#pick(route, tried) ?? (await this.#await(route, tried, lastError));
      try {
        return await link.call(name, body);
      } catch (e) {
        lastError = e;
        tried |= 1 << link.index;
        if (!this.#retryable(e, link, route)) throw e;
      } finally {
        this.#released();
      }
    }
    throw this.#exhausted(lastError);
  }

  /** A state change: to the primary (of the route's nodes), once (BUSY excepted: the node did nothing). */
  async primary<N extends SessionOp>(name: N, body: SessionBody<N>, route?: Route): Promise<{ response: WireResponse<N>; node: number }> {
    for (let attempt = 0; ; attempt++) {
      const link = this.primaryLink(route?.nodes);
      try {
        return { response: await link.call(name, body), node: link.index };
      } catch (e) {
        if (!(e instanceof NodeBusyError) || attempt >= this.#retries) throw e;
        await sleep(e.retryAfterMs);
      } finally {
        this.#released();
      }
    }
  }

  /** The first up node in endpoint order, of the `nodes` mask when given. */
  primaryLink(nodes = ALL_NODES): NodeLink {
    const link = this.#firstUp(nodes);
    if (link === undefined) throw this.#unavailable(undefined, nodes);
    return link;
  }

  #firstUp(nodes = ALL_NODES): NodeLink | undefined {
    return this.links.find((l) => l.state === 'up' && (nodes & (1 << l.index)) !== 0);
  }

  /** A sequence of calls that must see one node (FIND pages): run on one node, all again elsewhere if it fails. */
  async onOneNode<T>(fn: (link: NodeLink) => Promise<T>): Promise<T> {
    let tried = 0;
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      const link = this.#pick({ primaryFirst: true }, tried) ?? (await this.#await({ primaryFirst: true }, tried, lastError));
      try {
        return await fn(link);
      } catch (e) {
        lastError = e;
        tried |= 1 << link.index;
        if (!this.#retryable(e, link, undefined)) throw e;
      }
    }
    throw this.#exhausted(lastError);
  }

  /** Wakes one call waiting for a slot (a node joined, or a call finished). */
  wake(): void {
    const w = this.#waiters.shift();
    if (w !== undefined) w();
  }

  #released(): void {
    if (this.#waiters.length !== 0) this.wake();
  }

  #pick(route: Route | undefined, tried: number): NodeLink | undefined {
    if (route?.primaryFirst === true) return this.#primaryFirst(tried);
    const nowMs = Date.now();
    const start = this.#start++ % this.links.length;
    const handle = route?.handle;
    const allowed = route?.nodes ?? ALL_NODES;
    return pickLink(this.links, handle, tried, nowMs, start, PICK_STRICT, allowed)
      ?? pickLink(this.links, handle, tried, nowMs, start, PICK_IGNORE_TRIED, allowed)
      ?? pickLink(this.links, handle, tried, nowMs, start, PICK_IGNORE_TRIED | PICK_IGNORE_MISSING, allowed);
  }

  #primaryFirst(tried: number): NodeLink | undefined {
    const nowMs = Date.now();
    let fallback: NodeLink | undefined;
    for (const l of this.links) {
      if (l.state !== 'up' || l.inFlight >= l.inFlightMax || l.busyUntilMs > nowMs) continue;
      if ((tried & (1 << l.index)) === 0) return l;
      fallback ??= l;
    }
    return fallback;
  }

  /** No node fits now: wait for a BUSY hint to pass or for a slot; none up → unavailable. */
  async #await(route: Route | undefined, tried: number, lastError: unknown): Promise<NodeLink> {
    for (;;) {
      const allowed = route?.nodes ?? ALL_NODES;
      const up = this.links.filter((l) => l.state === 'up' && (allowed & (1 << l.index)) !== 0);
      if (up.length === 0) throw this.#unavailable(lastError, allowed);
      const roomy = up.filter((l) => l.inFlight < l.inFlightMax);
      if (roomy.length !== 0) {
        await sleep(Math.max(1, Math.min(...roomy.map((l) => l.busyUntilMs)) - Date.now()));
      } else {
        if (this.#waiters.length >= CLIENT_QUEUE_MAX) throw new NodeBusyError(Math.max(1, ...up.map((l) => l.busyUntilMs - Date.now())));
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
      const link = this.#pick(route, tried);
      if (link !== undefined) return link;
    }
  }

  #retryable(e: unknown, link: NodeLink, route: Route | undefined): boolean {
    if (e instanceof NodeBusyError) {
      link.busyUntilMs = Date.now() + e.retryAfterMs;
      return true;
    }
    if (isCofferError(e, 'COFFER_CONNECTION_LOST') || isCofferError(e, 'COFFER_REQUEST_TIMEOUT')) return true;
    const handle = route?.handle;
    if (handle !== undefined && (isCofferError(e, 'COFFER_OBJECT_NOT_FOUND') || isCofferError(e, 'COFFER_OBJECT_MISMATCH'))) {
      // This node does not hold the key (or holds another object there): try another allowed one.
      link.markMissing(handle);
      const allowed = route?.nodes ?? ALL_NODES;
      return this.links.some((l) => l !== link && l.state === 'up' && (allowed & (1 << l.index)) !== 0 && !l.missing.has(handle));
    }
    return false;
  }

  #exhausted(lastError: unknown): unknown {
    if (lastError instanceof NodeBusyError) return lastError;
    if (isCofferError(lastError, 'COFFER_OBJECT_NOT_FOUND') || isCofferError(lastError, 'COFFER_OBJECT_MISMATCH')) return lastError;
    return this.#unavailable(lastError);
  }

  /** No node could serve: the whole cluster is down, or (a key's call) every node known to hold it. */
  #unavailable(cause: unknown, allowed = ALL_NODES): CofferError {
    const down = this.links.filter((l) => l.state !== 'up').length;
    const options = cause === undefined ? undefined : { cause };
    if (allowed !== ALL_NODES && this.links.some((l) => l.state === 'up')) {
      return new CofferError('COFFER_KEY_UNAVAILABLE', { nodes: this.links.length, down }, options);
    }
    return new CofferError('COFFER_CLUSTER_UNAVAILABLE', { nodes: this.links.length, down }, options);
  }
}
