// Routes one decoded data-plane request to the device and encodes its reply (docs/wire-protocol.md
// §5, docs/node.md "Operations"). The device's Session enforces every rule (roles, ownership, quorum,
// FIPS); these modules only map connection-local session numbers to sessions and wire shapes to
// calls: here the connection and session operations, in dispatch_users.ts user and quorum
// management, in dispatch_keys.ts key management and single crypto calls, in dispatch_batch.ts the
// batches. One handler per operation of OPS: the compiler refuses a table that misses one.
// Secrets that arrive (passwords, private keys) or leave (exported keys) are zeroised once used.

import { fail } from '../errors.js';
import { WIRE_SESSIONS_PER_CONNECTION_MAX } from '../formats/limits.js';
import { encodeResponse, negotiateVersion, type AnyRequest, type OpName, type WireRequest, type WireResponse } from '../formats/wire.js';
import type { Hsm, Session } from '../hsm/device.js';
import { SESSION_HANDLE_BASE } from '../hsm/objects/objects.js';
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
 * One connection's sessions, numbered from 1 (u32, connection-local: docs/wire-protocol.md §2.3),
 * and the session objects they made. Session objects (handles from SESSION_HANDLE_BASE) are
 * visible to this connection only, as PKCS#11 session objects are to one application: the device
 * scopes them to their owner, and this table hides another connection's ones of the same user.
 */
export class SessionTable {
  readonly #sessions = new Map<number, Session>();
  /** Session-object handle → the wire session that made it. */
  readonly #objects = new Map<number, number>();
  #next = 1;

  constructor(private readonly hsm: Hsm) {}

  get size(): number {
    return this.#sessions.size;
  }

  open(): number {
    if (this.#sessions.size >= WIRE_SESSIONS_PER_CONNECTION_MAX) fail('COFFER_SESSION_LIMIT', { max: WIRE_SESSIONS_PER_CONNECTION_MAX });
    const n = this.#next;
    this.#next = n >= 0xffff_ffff ? 1 : n + 1;
    this.#sessions.set(n, this.hsm.openSession());
    return n;
  }

  get(n: number): Session {
    return this.#sessions.get(n) ?? fail('COFFER_SESSION_CLOSED');
  }

  /** Session `n`, once every handle named is visible to this connection. */
  on(n: number, ...handles: number[]): Session {
    const session = this.get(n);
    for (const h of handles) if (!this.visible(h)) fail('COFFER_OBJECT_NOT_FOUND');
    return session;
  }

  /** A token object, or a session object of this connection whose session is still logged in (a
   * restore closes every device session, and a fresh table may reuse the numbers). */
  visible(handle: number): boolean {
    if (handle < SESSION_HANDLE_BASE) return true;
    const owner = this.#objects.get(handle);
    return owner !== undefined && this.#sessions.get(owner)?.user !== undefined;
  }

  /** Records a handle session `n` just created (token objects need no record). */
  made(n: number, handle: number): number {
    if (handle >= SESSION_HANDLE_BASE) this.#objects.set(handle, n);
    return handle;
  }

  destroyed(handle: number): void {
    this.#objects.delete(handle);
  }

  /** The device dropped session `n`'s session objects (logout or close). */
  dropObjectsOf(n: number): void {
    for (const [h, owner] of this.#objects) if (owner === n) this.#objects.delete(h);
  }

  close(n: number): void {
    this.get(n).close();
    this.#sessions.delete(n);
    this.dropObjectsOf(n);
  }

  /** Closes every session (their session objects go with them): the connection ended. */
  closeAll(): void {
    for (const s of this.#sessions.values()) s.close();
    this.#sessions.clear();
    this.#objects.clear();
  }
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
  LOGOUT: (ctx, r) => {
    ctx.sessions.get(r.session).logout();
    ctx.sessions.dropObjectsOf(r.session);
    return {};
  },
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
