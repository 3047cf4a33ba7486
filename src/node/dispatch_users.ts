// User and quorum management over the wire (docs/wire-protocol.md §5, codes 0x002x and 0x003x):
// each handler maps one request to the device Session call of the same name. Roles, lockout and
// quorum are the device's rules (hsm/users/users.ts, hsm/users/quorum.ts); nothing is decided here. Passwords
// arrive in fresh buffers (wire_ops secretBytes) and are zeroised once the device has used them.

import type { WireRequest, WireResponse } from '../formats/wire.js';
import { keyRef, type Handlers, type SessionTable } from './dispatch.js';

/** Runs `fn`, then zeroises every password buffer of the request, whatever happened. */
async function withPasswords<T>(passwords: readonly Uint8Array[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    for (const p of passwords) p.fill(0);
  }
}

type UserOps =
  | 'CREATE_USER' | 'DELETE_USER' | 'LIST_USERS' | 'CHANGE_PASSWORD' | 'CHANGE_OWN_PASSWORD' | 'UNLOCK_USER'
  | 'REGISTER_QUORUM_KEY' | 'SET_QUORUM_VALUE' | 'QUORUM_VALUES' | 'GENERATE_QUORUM_TOKEN' | 'APPROVE_QUORUM_TOKEN' | 'LIST_QUORUM_TOKENS';

export const USER_HANDLERS: Handlers<UserOps> = {
  CREATE_USER: (ctx, r) => withPasswords([r.password], async () => {
    await ctx.sessions.get(r.session).createUser(r.name, r.password, r.role);
    return {};
  }),
  DELETE_USER: async (ctx, r) => (await ctx.sessions.get(r.session).deleteUser(r.name), {}),
  LIST_USERS: (ctx, r) => ({ users: ctx.sessions.get(r.session).listUsers() }),
  CHANGE_PASSWORD: (ctx, r) => withPasswords([r.newPassword], async () => {
    await ctx.sessions.get(r.session).changePassword(r.name, r.newPassword);
    return {};
  }),
  CHANGE_OWN_PASSWORD: (ctx, r) => withPasswords([r.currentPassword, r.newPassword], async () => {
    await ctx.sessions.get(r.session).changeOwnPassword(r.currentPassword, r.newPassword);
    return {};
  }),
  UNLOCK_USER: async (ctx, r) => (await ctx.sessions.get(r.session).unlockUser(r.name), {}),
  REGISTER_QUORUM_KEY: async (ctx, r) => (await ctx.sessions.get(r.session).registerQuorumKey(r.spkiDer), {}),
  SET_QUORUM_VALUE: async (ctx, r) => (await ctx.sessions.get(r.session).setQuorumValue(r.service, r.m), {}),
  QUORUM_VALUES: (ctx, r) => ctx.sessions.get(r.session).quorumValues(),
  GENERATE_QUORUM_TOKEN: (ctx, r) => generateQuorumToken(ctx.sessions, r),
  APPROVE_QUORUM_TOKEN: (ctx, r) => ({ approvals: ctx.sessions.get(r.session).approveQuorumToken(r.token, r.approverName, r.signature) }),
  LIST_QUORUM_TOKENS: (ctx, r) => ({ tokens: ctx.sessions.get(r.session).listQuorumTokens() }),
};

/** A key-service token names a handle, which must be one this connection may see (and, when the
 * request names an identity, the object it means). */
function generateQuorumToken(sessions: SessionTable, r: WireRequest<'GENERATE_QUORUM_TOKEN'>): WireResponse<'GENERATE_QUORUM_TOKEN'> {
  const session = sessions.get(r.session);
  if (r.handle !== undefined) session.getAttributes(keyRef(r.handle, r.identity));
  return session.generateQuorumToken(r.service, r.handle);
}
