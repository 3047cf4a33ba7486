// The batch operations (docs/wire-protocol.md §5, codes 0x006x): up to WIRE_BATCH_ITEMS_MAX sign,
// verify, encrypt or decrypt calls in one frame, on one session. Items run concurrently (asymmetric
// sign and verify on the thread pool through the device's async calls) and each gets its own result:
// a failing item (typed error) does not fail the batch, and the results come back in request order.
// A bad session fails the whole batch, since no item could run. An untyped exception is a bug and
// propagates (the node closes the connection). The node counts a batch of n items as n requests
// toward its node-wide capacity (data_plane.ts).

import { fail, isCofferError } from '../errors.js';
import { toWireError, type WireError } from '../formats/wire.js';
import type { Session } from '../hsm/device.js';
import type { Handlers, SessionTable } from './dispatch.js';

type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: WireError };

/** One item's outcome: its value, or its typed error as the wire carries it. */
async function settle<T>(run: () => T | Promise<T>): Promise<Result<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (e) {
    if (!isCofferError(e)) throw e;
    return { ok: false, error: toWireError(e) };
  }
}

/** Runs `fn` on every item with the batch's session; an item naming another connection's session
 * object fails as not found, like a single call would. */
async function each<I extends { readonly handle: number }, T>(
  sessions: SessionTable, n: number, items: readonly I[], fn: (session: Session, item: I) => T | Promise<T>,
): Promise<{ readonly results: readonly Result<T>[] }> {
  const session = sessions.get(n);
  const results = await Promise.all(items.map((item) => settle(() => (sessions.visible(item.handle) ? fn(session, item) : fail('COFFER_OBJECT_NOT_FOUND')))));
  return { results };
}

export const BATCH_HANDLERS: Handlers<'SIGN_BATCH' | 'VERIFY_BATCH' | 'ENCRYPT_BATCH' | 'DECRYPT_BATCH'> = {
  SIGN_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, i) => s.signAsync(i.handle, i.params, i.data)),
  VERIFY_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, i) => s.verifyAsync(i.handle, i.params, i.data, i.signature)),
  ENCRYPT_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, i) => s.encrypt(i.handle, i.params, i.data)),
  DECRYPT_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, i) => s.decrypt(i.handle, i.params, i.data)),
};
