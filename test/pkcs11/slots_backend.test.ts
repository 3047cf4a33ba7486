// Several clusters, one slot each (src/pkcs11/slots_backend.ts), over two minimal tokens that each
// know themselves as slot 1: slot ids and session handles are routed to the right token and back,
// handles never collide, closing all sessions of one slot leaves the other's, and a connection's
// release reaches every token. The real-client side is test/cli/pkcs11_command.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pkcs11Backend, Pkcs11Connection } from '../../src/pkcs11/backend.js';
import { CKR } from '../../src/pkcs11/constants.js';
import { slotsBackend } from '../../src/pkcs11/slots_backend.js';
import { CKF_SERIAL_SESSION, minimalBackend } from './minimal_backend.js';

async function call(b: Pkcs11Backend, name: string, request: Record<string, unknown>, c: Pkcs11Connection): Promise<{ rv: number; out?: Record<string, unknown> }> {
  const h = (b as Record<string, unknown>)[name] as ((r: unknown, c: Pkcs11Connection) => unknown) | undefined;
  assert.ok(h !== undefined, `${name} is routed`);
  return (await h(request, c)) as { rv: number; out?: Record<string, unknown> };
}

test('one token is served as it is', () => {
  const only = minimalBackend();
  assert.equal(slotsBackend([only]), only);
});

test('two tokens: slots 1 and 2, sessions routed by handle, unique handles, close-all per slot, release to both', async () => {
  const [one, two] = [minimalBackend(), minimalBackend()];
  const b = slotsBackend([one, two]);
  const c: Pkcs11Connection = { id: 'app', version: 0 };
  assert.deepEqual((await call(b, 'C_GetSlotList', { tokenPresent: 1, slotList: { present: true, length: 4 } }, c)).out, { slotList: [1n, 2n] });
  assert.deepEqual((await call(b, 'C_GetSlotList', { tokenPresent: 0, slotList: { present: false, length: 0 } }, c)).out, { slotList: { lengthOnly: 2 } });
  assert.equal((await call(b, 'C_GetSlotList', { tokenPresent: 0, slotList: { present: true, length: 1 } }, c)).rv, CKR.BUFFER_TOO_SMALL);
  for (const slotId of [0n, 3n]) {
    assert.equal((await call(b, 'C_GetTokenInfo', { slotId }, c)).rv, CKR.SLOT_ID_INVALID);
    assert.equal((await call(b, 'C_OpenSession', { slotId, flags: CKF_SERIAL_SESSION }, c)).rv, CKR.SLOT_ID_INVALID);
  }
  assert.equal((await call(b, 'C_GetTokenInfo', { slotId: 2n }, c)).rv, CKR.OK);

  // Each token numbers its sessions from 1; the handles this backend gives are unique.
  const open = async (slotId: bigint): Promise<bigint> => (await call(b, 'C_OpenSession', { slotId, flags: CKF_SERIAL_SESSION }, c)).out?.['session'] as bigint;
  const s1 = await open(1n);
  const s2 = await open(2n);
  const s3 = await open(2n);
  assert.equal(new Set([s1, s2, s3]).size, 3);
  assert.deepEqual([one.sessionsOpen(), two.sessionsOpen()], [1, 2]);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s1 }, c)).out?.['slotId'], 1n);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s3 }, c)).out?.['slotId'], 2n, 'the slot of the token, not the token\'s own slot 1');
  assert.equal((await call(b, 'C_GenerateRandom', { session: s2, randomData: { present: true, length: 8 } }, c)).rv, CKR.OK);
  assert.equal((await call(b, 'C_GenerateRandom', { session: 99n, randomData: { present: true, length: 8 } }, c)).rv, CKR.SESSION_HANDLE_INVALID);
  // Another application cannot use this one's handles.
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s1 }, { id: 'other', version: 0 })).rv, CKR.SESSION_HANDLE_INVALID);

  assert.equal((await call(b, 'C_CloseSession', { session: s2 }, c)).rv, CKR.OK);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s2 }, c)).rv, CKR.SESSION_HANDLE_INVALID);
  assert.equal((await call(b, 'C_CloseAllSessions', { slotId: 2n }, c)).rv, CKR.OK);
  assert.deepEqual([one.sessionsOpen(), two.sessionsOpen()], [1, 0]);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s3 }, c)).rv, CKR.SESSION_HANDLE_INVALID);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s1 }, c)).rv, CKR.OK, 'slot 1 keeps its session');

  await b.release?.(c);
  assert.deepEqual([one.released(), two.released(), one.sessionsOpen()], [1, 1, 0]);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: s1 }, c)).rv, CKR.SESSION_HANDLE_INVALID);
});
