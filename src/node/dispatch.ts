// Routes one decoded data-plane request to the device and encodes its reply (docs/wire-protocol.md
// §5, docs/node.md "Operations"). The device's Session enforces every rule (roles, ownership, quorum,
// FIPS, which connection sees a session object, an object's identity); these modules only map
// connection-local session numbers to sessions and wire shapes to calls: here the connection and session operations, in dispatch_users.ts user and quorum
// management, in dispatch_keys.ts key management and single crypto calls, in dispatch_batch.ts the
// batches. One handler per operation of OPS: the compiler refuses a table that misses one.
// Secrets that arrive (passwords, private keys) or leave (exported keys) are zeroised once used.

import { fail } from '../errors.js';
import { NODE_JOURNAL_WAITS_MAX, WIRE_SESSIONS_PER_CONNECTION_MAX } from '../formats/limits.js';
import { encodeResponse, negotiateVersion, type AnyRequest, type OpName, type WireRequest, type WireResponse } from '../formats/wire.js';
import type { Hsm, Session } from '../hsm/device.js';
import { withOwnEntries } from '../hsm/state/journal.js';
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
  /** The node-wide count of JOURNAL_WAITs parked on the device's head. */
  readonly journalWaits: { parked: number };
}

/** Runs one request of operation N and returns its response (typed failures thrown). */
export type Handler<N extends OpName> = (ctx: DispatchContext, request: WireRequest<N>) => WireResponse<N> | Promise<WireResponse<N>>;
export type Handlers<K extends OpName> = { readonly [N in K]: Handler<N> };

const CONNECTION_HANDLERS: Handlers<'HELLO' | 'STATUS' | 'JOURNAL_WAIT' | 'OPEN_SESSION' | 'CLOSE_SESSION' | 'LOGIN' | 'LOGOUT' | 'ACTIVATE' | 'RANDOM'> = {
  HELLO: (ctx, r) => ({ ...negotiateVersion(r), inFlightMax: ctx.inFlightMax }),
  STATUS: (ctx) => status(ctx),
  JOURNAL_WAIT: (ctx, r) => journalWait(ctx, r),
  OPEN_SESSION: (ctx) => ({ session: ctx.sessions.open() }),
  CLOSE_SESSION: (ctx, r) => (ctx.sessions.close(r.session), {}),
  LOGIN: (ctx, r) => login(ctx.sessions, r),
  LOGOUT: (ctx, r) => (ctx.sessions.get(r.session).logout(), {}),
  ACTIVATE: (ctx, r) => activate(ctx.hsm, r),
  RANDOM: (ctx, r) => ({ bytes: ctx.sessions.get(r.session).random(r.length) }),
};

const HANDLERS: Handlers<OpName> = { ...CONNECTION_HANDLERS, ...USER_HANDLERS, ...KEY_HANDLERS, ...BATCH_HANDLERS };

/** The operations whose answer names the journal entry that made their change (docs/wire-protocol.md
 * "Journal positions"). ACTIVATE is sent to every HSM on its own and LOGIN changes only counters. */
const STATE_CHANGING: ReadonlySet<OpName> = new Set<OpName>([
  'CREATE_USER', 'DELETE_USER', 'CHANGE_PASSWORD', 'CHANGE_OWN_PASSWORD', 'UNLOCK_USER', 'REGISTER_QUORUM_KEY', 'SET_QUORUM_VALUE',
  'GENERATE_KEY', 'GENERATE_KEY_PAIR', 'IMPORT_PUBLIC_KEY', 'IMPORT_PRIVATE_KEY', 'SET_ATTRIBUTE', 'SHARE', 'UNSHARE', 'DESTROY',
  'UNWRAP_KEY', 'DERIVE_KEY', 'COPY_OBJECT', 'IMPORT_CERTIFICATE',
]);

/** Runs one handler; a state-changing one is answered with the position of the last journal entry
 * this device applied as its own for it (none when the change made no entry: a session object). */
async function run(ctx: DispatchContext, name: OpName, request: never): Promise<object> {
  const handler = HANDLERS[name] as Handler<OpName>;
  if (!STATE_CHANGING.has(name)) return handler(ctx, request);
  const { value, entries } = await withOwnEntries(async () => handler(ctx, request));
  const last = entries[entries.length - 1];
  return last === undefined ? value : { ...value, position: last };
}

/** Runs `req` and returns its encoded RESPONSE frame; typed failures are thrown as CofferError. */
export async function dispatch(ctx: DispatchContext, requestId: number, req: AnyRequest): Promise<Uint8Array> {
  const { name, request } = req as { readonly name: OpName; readonly request: never };
  const response = await run(ctx, name, request);
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
    journal: { mode: journalMode(ctx.hsm), head: ctx.hsm.journal.head() },
    ...load,
    loadPermille: Math.min(1000, Math.round((1000 * load.inFlight) / Math.max(1, load.inFlightMax))),
  };
}

/** 'off' when the cluster has no journal (no sync key yet), else how its entries are ordered. */
function journalMode(hsm: Hsm): 'off' | 'solo' | 'relayed' {
  return hsm.journal.journaled() ? hsm.journal.mode() : 'off';
}

/**
 * Parks until the journal head reaches `seq` or `waitMs` passes (WIRE_JOURNAL_WAIT_MS_MAX, checked by
 * the codec), then answers the head and the hash this device holds at `seq` when it still knows it:
 * what a client's acknowledgements and fork check read (docs/wire-protocol.md "Journal positions").
 * Beyond NODE_JOURNAL_WAITS_MAX parked waits a wait answers at once.
 */
async function journalWait(ctx: DispatchContext, r: WireRequest<'JOURNAL_WAIT'>): Promise<WireResponse<'JOURNAL_WAIT'>> {
  const journal = ctx.hsm.journal;
  const mode = journalMode(ctx.hsm);
  if (journal.head().seq < r.seq && mode !== 'off' && r.waitMs > 0 && ctx.journalWaits.parked < NODE_JOURNAL_WAITS_MAX) {
    ctx.journalWaits.parked++;
    try {
      await journal.waitForHead(r.seq, r.waitMs);
    } finally {
      ctx.journalWaits.parked--;
    }
  }
  const head = journal.head();
  const hashAtSeq = journal.appliedHash(r.seq);
  return { mode, head, reached: head.seq >= r.seq, ...(hashAtSeq === undefined ? {} : { hashAtSeq }) };
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
