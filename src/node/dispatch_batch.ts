// The batch operations (docs/wire-protocol.md §5, codes 0x006x): up to WIRE_BATCH_ITEMS_MAX sign,
// verify, encrypt or decrypt calls in one frame, on one session. Items run concurrently (asymmetric
// sign and verify on the thread pool through the device's async calls) and each gets its own result:
// a failing item (typed error) does not fail the batch, and the results come back in request order.
// A bad session fails the whole batch, since no item could run. An untyped exception is a bug and
// propagates (the node closes the connection). The node counts a batch of n items as n requests
// toward its node-wide capacity (data_plane.ts).

import { isCofferError } from '../errors.js';
import { toWireError, type WireError } from '../formats/wire.js';
import type { Session } from '../hsm/device.js';
import type { KeyRef } from '../hsm/types.js';
import { keyRef, type Handlers, type SessionTable } from './dispatch.js';

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

/** Runs `fn` on every item with the batch's session and the key the item names (its handle, and its
 * identity when it carries one); each item is checked by the device like a single call. */
async function each<I extends { readonly handle: number; readonly identity?: Uint8Array }, T>(
  sessions: SessionTable, n: number, items: readonly I[], fn: (session: Session, key: KeyRef, item: I) => T | Promise<T>,
): Promise<{ readonly results: readonly Result<T>[] }> {
  const session = sessions.get(n);
  const results = await Promise.all(items.map((item) => settle(() => fn(session, keyRef(item.handle, item.identity), item))));
  return { results };
}

export const BATCH_HANDLERS: Handlers<'SIGN_BATCH' | 'VERIFY_BATCH' | 'ENCRYPT_BATCH' | 'DECRYPT_BATCH'> = {
  SIGN_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, k, i) => s.signAsync(k, i.params, i.data)),
  VERIFY_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, k, i) => s.verifyAsync(k, i.params, i.data, i.signature)),
  ENCRYPT_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, k, i) => s.encrypt(k, i.params, i.data)),
  DECRYPT_BATCH: (ctx, r) => each(ctx.sessions, r.session, r.items, (s, k, i) => s.decrypt(k, i.params, i.data)),
};
