// Routes one decoded data-plane request to the device and encodes its reply (docs/wire-protocol.md
// §5, docs/node.md "Operations"). The device's Session enforces every rule (roles, ownership, quorum,
// FIPS, which connection sees a session object, an object's identity); these modules only map
// connection-local session numbers to sessions and wire shapes to calls: here the connection and session operations, in dispatch_users.ts user and quorum
// management, in dispatch_keys.ts key management and single crypto calls, in dispatch_batch.ts the
// batches. One handler per operation of OPS: the compiler refuses a table that misses one.
// Secrets that arrive (passwords, private keys) or leave (exported keys) are zeroised once used.

import { fail } from '../errors.js';
import { WIRE_SESSIONS_PER_CONNECTION_MAX } from '../formats/limits.js';
import { encodeResponse, negotiateVersion, type AnyRequest, type OpName, type WireRequest, type WireResponse } from '../formats/wire.js';
import type { Hsm, Session } from '../hsm/device.js';
import type { KeyRef } from '../hsm/types.js';
import { BATCH_HANDLERS } from './dispatch_batch.js';
import { KEY_HANDLERS } from './dispatch_keys.js';
import { USER_HANDLERS } from './dispatch_users.js';

/** The node-wide figures STATUS reports (docs/architecture.md §7: what clients balance on). */
export interface NodeLoad {
  readonly inFlight: number;
  readonly inFlightMax: number;
  readonly connections: number;
  readonly capacityOpsPerSecond: number;
}

/**
 * One connection's sessions, numbered from 1 (u32, connection-local: docs/wire-protocol.md §2.3).
 * Every session of a connection is opened in the connection's own scope, so the device shows a
 * session object only to the connection that made it, as PKCS#11 shows it to one application
 * (docs/device.md "Session objects"): the device decides, not this table.
 */
export class SessionTable {
  readonly #hsm: Hsm;
  readonly #scope: string;
  readonly #sessions = new Map<number, Session>();
  #next = 1;

  constructor(hsm: Hsm, scope: string) {
    this.#hsm = hsm;
    this.#scope = scope;
  }

  get size(): number {
    return this.#sessions.size;
  }

  open(): number {
    if (this.#sessions.size >= WIRE_SESSIONS_PER_CONNECTION_MAX) fail('COFFER_SESSION_LIMIT', { max: WIRE_SESSIONS_PER_CONNECTION_MAX });
    const n = this.#next;
    this.#next = n >= 0xffff_ffff ? 1 : n + 1;
    this.#sessions.set(n, this.#hsm.openSession({ scope: this.#scope }));
    return n;
  }

  get(n: number): Session {
    return this.#sessions.get(n) ?? fail('COFFER_SESSION_CLOSED');
  }

  close(n: number): void {
    this.get(n).close();
    this.#sessions.delete(n);
  }

  /** Closes every session (their session objects go with them): the connection ended. */
  closeAll(): void {
    for (const s of this.#sessions.values()) s.close();
    this.#sessions.clear();
  }
}

/** The key a request names: its handle, with the identity the caller means when it sent one. */
export function keyRef(handle: number, identity: Uint8Array | undefined): KeyRef {
  return identity === undefined ? handle : { handle, identity };
}

export interface DispatchContext {
  readonly hsm: Hsm;
  readonly sessions: SessionTable;
  readonly load: () => NodeLoad;
  /** This connection's in-flight limit, advertised in HELLO. */
  readonly inFlightMax: number;
}

/** Runs one request of operation N and returns its response (typed failures thrown). */
export type Handler<N extends OpName> = (ctx: DispatchContext, request: WireRequest<N>) => WireResponse<N> | Promise<WireResponse<N>>;
export type Handlers<K extends OpName> = { readonly [N in K]: Handler<N> };

const CONNECTION_HANDLERS: Handlers<'HELLO' | 'STATUS' | 'OPEN_SESSION' | 'CLOSE_SESSION' | 'LOGIN' | 'LOGOUT' | 'ACTIVATE' | 'RANDOM'> = {
  HELLO: (ctx, r) => ({ ...negotiateVersion(r), inFlightMax: ctx.inFlightMax }),
  STATUS: (ctx) => status(ctx),
  OPEN_SESSION: (ctx) => ({ session: ctx.sessions.open() }),
  CLOSE_SESSION: (ctx, r) => (ctx.sessions.close(r.session), {}),
  LOGIN: (ctx, r) => login(ctx.sessions, r),
  LOGOUT: (ctx, r) => (ctx.sessions.get(r.session).logout(), {}),
  ACTIVATE: (ctx, r) => activate(ctx.hsm, r),
  RANDOM: (ctx, r) => ({ bytes: ctx.sessions.get(r.session).random(r.length) }),
};

const HANDLERS: Handlers<OpName> = { ...CONNECTION_HANDLERS, ...USER_HANDLERS, ...KEY_HANDLERS, ...BATCH_HANDLERS };

/** Runs `req` and returns its encoded RESPONSE frame; typed failures are thrown as CofferError. */
export async function dispatch(ctx: DispatchContext, requestId: number, req: AnyRequest): Promise<Uint8Array> {
  const { name, request } = req as { readonly name: OpName; readonly request: never };
  const response = await (HANDLERS[name] as Handler<OpName>)(ctx, request);
  try {
    return encodeResponse(requestId, name, response as never);
  } finally {
    // An exported plaintext key: the frame now holds it; the response's own copy is wiped.
    if (name === 'EXPORT_PLAINTEXT') (response as WireResponse<'EXPORT_PLAINTEXT'>).key.fill(0);
  }
}

function status(ctx: DispatchContext): WireResponse<'STATUS'> {
  const st = ctx.hsm.status();
  const load = ctx.load();
  return {
    provisioning: st.provisioning,
    ...(st.serial === null ? {} : { serial: st.serial }),
    ...(st.mode === null ? {} : { mode: st.mode }),
    usersInitialised: st.usersInitialised,
    activated: st.activated,
    cluster: st.cluster,
    ...(st.clusterId === null ? {} : { clusterId: st.clusterId }),
    tokenObjects: st.tokenObjects,
    sessions: st.sessions,
    journalPosition: st.journalPosition,
    stateLineage: st.stateLineage,
    objectLineage: st.objectLineage,
    ...load,
    loadPermille: Math.min(1000, Math.round((1000 * load.inFlight) / Math.max(1, load.inFlightMax))),
  };
}

/** The password arrives in a fresh buffer (wire_ops secretBytes); it is zeroised once used. */
async function login(s: SessionTable, r: WireRequest<'LOGIN'>): Promise<WireResponse<'LOGIN'>> {
  try {
    const actor = await s.get(r.session).login(r.name, r.password, r.role);
    return { userId: actor.userId, role: actor.role };
  } finally {
    r.password.fill(0);
  }
}

/** CloudHSM's `cluster activate`: proven by the PreCO password itself, so no session or login. */
async function activate(hsm: Hsm, r: WireRequest<'ACTIVATE'>): Promise<WireResponse<'ACTIVATE'>> {
  try {
    await hsm.activate(r.preCoPassword, r.newPassword);
    return {};
  } finally {
    r.preCoPassword.fill(0);
    r.newPassword.fill(0);
  }
}
