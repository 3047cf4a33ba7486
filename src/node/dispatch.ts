// Routes one decoded data-plane request to the device and encodes its reply (docs/wire-protocol.md
// §5, docs/node.md "Operations"). The device's Session enforces every rule (roles, ownership, quorum,
// FIPS); this module only maps connection-local session numbers to sessions and wire shapes to calls.
// Asymmetric sign and verify use the device's async calls so a node's crypto spreads over its cores.
// Operations not listed here answer COFFER_OPERATION_UNSUPPORTED (the connection stays up).

import { fail } from '../errors.js';
import { WIRE_FIND_RESULTS_MAX, WIRE_SESSIONS_PER_CONNECTION_MAX } from '../formats/limits.js';
import { encodeResponse, negotiateVersion, type AnyRequest, type WireRequest, type WireResponse } from '../formats/wire.js';
import type { Hsm, Session } from '../hsm/device.js';

/** The node-wide figures STATUS reports (DESIGN.md §7: what clients balance on). */
export interface NodeLoad {
  readonly inFlight: number;
  readonly inFlightMax: number;
  readonly connections: number;
  readonly capacityOpsPerSecond: number;
}

/** One connection's sessions, numbered from 1 (u32, connection-local: docs/wire-protocol.md §2.3). */
export class SessionTable {
  readonly #sessions = new Map<number, Session>();
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

export interface DispatchContext {
  readonly hsm: Hsm;
  readonly sessions: SessionTable;
  readonly load: () => NodeLoad;
  /** This connection's in-flight limit, advertised in HELLO. */
  readonly inFlightMax: number;
}

/** Runs `req` and returns its encoded RESPONSE frame; typed failures are thrown as CofferError. */
export async function dispatch(ctx: DispatchContext, requestId: number, req: AnyRequest): Promise<Uint8Array> {
  const s = ctx.sessions;
  switch (req.name) {
    case 'HELLO': return encodeResponse(requestId, 'HELLO', { ...negotiateVersion(req.request), inFlightMax: ctx.inFlightMax });
    case 'STATUS': return encodeResponse(requestId, 'STATUS', status(ctx));
    case 'OPEN_SESSION': return encodeResponse(requestId, 'OPEN_SESSION', { session: s.open() });
    case 'CLOSE_SESSION': s.close(req.request.session); return encodeResponse(requestId, 'CLOSE_SESSION', {});
    case 'LOGIN': return encodeResponse(requestId, 'LOGIN', await login(s, req.request));
    case 'LOGOUT': s.get(req.request.session).logout(); return encodeResponse(requestId, 'LOGOUT', {});
    case 'RANDOM': return encodeResponse(requestId, 'RANDOM', { bytes: s.get(req.request.session).random(req.request.length) });
    case 'GENERATE_KEY': {
      const r = req.request;
      return encodeResponse(requestId, 'GENERATE_KEY', { handle: s.get(r.session).generateKey(r.spec, tokenOnly(r.template)) });
    }
    case 'GENERATE_KEY_PAIR': {
      const r = req.request;
      return encodeResponse(requestId, 'GENERATE_KEY_PAIR', s.get(r.session).generateKeyPair(r.spec, tokenOnly(r.publicTemplate), tokenOnly(r.privateTemplate)));
    }
    case 'SIGN': {
      const r = req.request;
      return encodeResponse(requestId, 'SIGN', { signature: await s.get(r.session).signAsync(r.handle, r.params, r.data) });
    }
    case 'VERIFY': {
      const r = req.request;
      return encodeResponse(requestId, 'VERIFY', { valid: await s.get(r.session).verifyAsync(r.handle, r.params, r.data, r.signature) });
    }
    case 'ENCRYPT': {
      const r = req.request;
      return encodeResponse(requestId, 'ENCRYPT', { data: s.get(r.session).encrypt(r.handle, r.params, r.data) });
    }
    case 'DECRYPT': {
      const r = req.request;
      return encodeResponse(requestId, 'DECRYPT', { data: s.get(r.session).decrypt(r.handle, r.params, r.data) });
    }
    case 'FIND': return encodeResponse(requestId, 'FIND', find(s, req.request));
    case 'GET_ATTRIBUTES': return encodeResponse(requestId, 'GET_ATTRIBUTES', s.get(req.request.session).getAttributes(req.request.handle));
    case 'EXPORT_PUBLIC': return encodeResponse(requestId, 'EXPORT_PUBLIC', { pem: s.get(req.request.session).exportPublic(req.request.handle) });
    case 'DESTROY': s.get(req.request.session).destroy(req.request.handle); return encodeResponse(requestId, 'DESTROY', {});
    default: return fail('COFFER_OPERATION_UNSUPPORTED', { op: req.name });
  }
}

/**
 * Session objects (token = false) are refused before anything is created: the device numbers them
 * from 2^40 (objects.ts) and the wire's handles are u32 (wire-protocol.md §5), so their handles
 * cannot travel yet (docs/node.md "Not yet").
 */
function tokenOnly<T extends { readonly token?: boolean }>(template: T): T {
  if (template.token === false) fail('COFFER_OPERATION_UNSUPPORTED', { reason: 'session objects' });
  return template;
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

/** FIND pages in handle order after `afterHandle` (docs/wire-protocol.md §5 notes). */
function find(s: SessionTable, r: WireRequest<'FIND'>): WireResponse<'FIND'> {
  const all = s.get(r.session).find(r.filter).sort((a, b) => a.handle - b.handle);
  const after = r.afterHandle;
  const rest = after === undefined ? all : all.filter((o) => o.handle > after);
  const limit = Math.min(r.limit, WIRE_FIND_RESULTS_MAX);
  return { objects: rest.slice(0, limit), more: rest.length > limit };
}
