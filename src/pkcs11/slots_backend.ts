// One slot per cluster (docs/pkcs11.md "The token"): `coffer pkcs11` given several clusters serves
// the n-th as slot n (1, 2, …), each through its own cluster token (cluster_backend.ts), which knows
// itself as slot 1. This backend routes each call by its slot id, or by its session handle, to that
// token. Session handles are unique across the slots: the tokens' own handles (each counts from 1)
// are mapped to handles of this backend's. Login is per token, as PKCS#11 v2.40 §5.6 has it: an
// application logs in to each slot it uses. A single cluster is served by its token directly.

import { assert } from '../assert.js';
import { fitUlongs, type Answer, type Pkcs11Backend, type Pkcs11Connection } from './backend.js';
import { SLOT_ID } from './cluster_backend.js';
import { CKR } from './constants.js';
import { CALLS, type CallName } from './rpc_calls.js';
import type { OutBuffer } from './rpc_codec.js';

/** A session of one of the tokens: its index and the token's own handle for it. */
interface Routed {
  readonly token: number;
  readonly inner: bigint;
}

type AnyHandler = (request: Record<string, unknown>, connection: Pkcs11Connection) => Answer<CallName> | Promise<Answer<CallName>>;

export function slotsBackend(tokens: readonly Pkcs11Backend[]): Pkcs11Backend {
  assert(tokens.length >= 1, 'at least one token');
  const [only] = tokens;
  if (tokens.length === 1 && only !== undefined) return only;
  /** Per connection: this backend's session handles → the token's. */
  const sessions = new Map<string, Map<bigint, Routed>>();
  let nextSession = 1n;
  const of = (c: Pkcs11Connection): Map<bigint, Routed> => {
    let m = sessions.get(c.id);
    if (m === undefined) {
      m = new Map<bigint, Routed>();
      sessions.set(c.id, m);
    }
    return m;
  };
  const tokenOf = (slotId: unknown): number | undefined => {
    const k = typeof slotId === 'bigint' ? Number(slotId) - 1 : -1;
    return k >= 0 && k < tokens.length ? k : undefined;
  };

  const route = (name: CallName): AnyHandler => async (request, c) => {
    if ('slotId' in request) {
      const k = tokenOf(request['slotId']);
      if (k === undefined) return { rv: CKR.SLOT_ID_INVALID };
      const handler = tokens[k]?.[name] as AnyHandler | undefined;
      if (handler === undefined) return { rv: CKR.FUNCTION_NOT_SUPPORTED };
      const answer = await handler({ ...request, slotId: SLOT_ID }, c);
      if (answer.rv !== CKR.OK) return answer;
      const mine = of(c);
      if (name === 'C_OpenSession') {
        const out = answer.out as { session: bigint };
        const outer = nextSession++;
        mine.set(outer, { token: k, inner: out.session });
        return { rv: CKR.OK, out: { ...out, session: outer } } as Answer<CallName>;
      }
      if (name === 'C_CloseAllSessions') for (const [outer, r] of mine) if (r.token === k) mine.delete(outer);
      return answer;
    }
    if ('session' in request) {
      const routed = sessions.get(c.id)?.get(request['session'] as bigint);
      if (routed === undefined) return { rv: CKR.SESSION_HANDLE_INVALID };
      const handler = tokens[routed.token]?.[name] as AnyHandler | undefined;
      if (handler === undefined) return { rv: CKR.FUNCTION_NOT_SUPPORTED };
      const answer = await handler({ ...request, session: routed.inner }, c);
      if (name === 'C_CloseSession' && answer.rv === CKR.OK) sessions.get(c.id)?.delete(request['session'] as bigint);
      if (name === 'C_GetSessionInfo' && answer.rv === CKR.OK) {
        return { rv: CKR.OK, out: { ...(answer.out as object), slotId: BigInt(routed.token + 1) } } as Answer<CallName>;
      }
      return answer;
    }
    // Calls of the library, not of a slot or session: the first token answers for all.
    const handler = tokens[0]?.[name] as AnyHandler | undefined;
    return handler === undefined ? { rv: CKR.FUNCTION_NOT_SUPPORTED } : handler(request, c);
  };

  const backend: Record<string, unknown> = {
    release: async (c: Pkcs11Connection) => {
      sessions.delete(c.id);
      for (const t of tokens) await t.release?.(c);
    },
    // Every slot holds its token (tokenPresent changes nothing).
    C_GetSlotList: (request: { slotList: OutBuffer }) => {
      const { rv, value } = fitUlongs(request.slotList, tokens.map((_, k) => BigInt(k + 1)));
      return { rv, out: { slotList: value } };
    },
  };
  for (const { name } of CALLS) {
    if (name === 'ERROR' || name === 'C_GetSlotList' || tokens[0]?.[name] === undefined) continue;
    backend[name] = route(name);
  }
  return backend;
}
