// DeviceState (src/hsm/state/device_state.ts), the one door for every change of device state: the
// writer queue runs decisions one at a time in the order submitted; a decision that throws changes
// nothing and does not stop the queue; a bounded queue; views hear every op only after it
// committed, and nothing when the store refuses; cluster-wide change sets advance the position,
// local ones do not; volatile namespaces never reach the store; scopes are kept apart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCofferError } from '../../../src/errors.js';
import { STATE_QUEUE_MAX } from '../../../src/formats/limits.js';
import type { ChangeSet, RecordOp } from '../../../src/formats/change_set.js';
import { AssertionFailure } from '../../../src/assert.js';
import { DeviceState, SESSION_OBJECT_NAMESPACE } from '../../../src/hsm/state/device_state.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { FailingStore } from '../store/failing_store.js';

const put = (ns: string, id: string, v: number): RecordOp => ({ op: 'put', ns, id, value: Uint8Array.of(v) });
const cluster = (...ops: RecordOp[]): ChangeSet => ({ scope: 'cluster', kind: 'user.create', ops });

test('decisions run one at a time, in the order submitted, each against the state the earlier ones left', async () => {
  const state = new DeviceState(new MemoryRecordStore());
  const seen: number[] = [];
  const runs = Array.from({ length: 20 }, (_, i) => state.submit(() => {
    seen.push(state.count('user'));
    return { changes: [cluster(put('user', `u${String(i).padStart(2, '0')}`, i))], result: i };
  }));
  assert.deepEqual(await Promise.all(runs), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i), 'each decision saw every earlier one applied');
  assert.equal(state.position().position, 20n);
});

test('a decision that throws changes nothing and the queue goes on; the queue is bounded', async () => {
  const state = new DeviceState(new MemoryRecordStore());
  await assert.rejects(state.submit(() => {
    throw new Error('refused');
  }), /refused/);
  assert.equal(state.count('user'), 0);
  assert.equal(state.position().position, 0n);
  assert.equal(await state.submit(() => ({ changes: [cluster(put('user', 'a', 1))], result: 'ok' })), 'ok');
  // Submitted in one go, the writes wait their turn together: the one past the bound is refused.
  const waiting = Array.from({ length: STATE_QUEUE_MAX }, () => state.submit(() => ({ changes: [], result: undefined })));
  await assert.rejects(state.submit(() => ({ changes: [], result: undefined })), (e: unknown) => isCofferError(e, 'COFFER_DEVICE_BUSY'));
  await Promise.all(waiting);
  await state.submit(() => ({ changes: [], result: undefined })); // room again
});

test('views hear each op after it committed, in order, and nothing when the store refuses the transaction', async () => {
  const store = new FailingStore();
  const state = new DeviceState(store);
  const heard: string[] = [];
  const stop = state.watch({ namespaces: ['user'], applied: (op) => void heard.push(`${op.op} ${op.id} ${String(store.get('user', op.id)?.[0])}`) });
  await state.submit(() => ({ changes: [cluster(put('user', 'a', 1), put('quorum', 'user', 1), { op: 'delete', ns: 'user', id: 'b' })], result: undefined }));
  assert.deepEqual(heard, ['put a 1', 'delete b undefined'], 'views of other namespaces are not told; the store already holds the value');
  store.failNext = true;
  await assert.rejects(state.submit(() => ({ changes: [cluster(put('user', 'c', 3))], result: undefined })), /simulated store failure/);
  assert.deepEqual(heard, ['put a 1', 'delete b undefined']);
  assert.equal(state.position().position, 1n, 'a refused change set does not advance the position');
  stop();
  await state.submit(() => ({ changes: [cluster(put('user', 'd', 4))], result: undefined }));
  assert.equal(heard.length, 2, 'an unwatched view hears nothing');
});

test('local change sets leave the position; volatile namespaces stay in memory; scopes are not mixed', async () => {
  const store = new MemoryRecordStore();
  const state = new DeviceState(store);
  await state.submit(() => ({ changes: [{ scope: 'local', kind: 'session.objects', ops: [put(SESSION_OBJECT_NAMESPACE, '1', 1)] }], result: undefined }));
  await state.submit(() => ({ changes: [{ scope: 'local', kind: 'device.identity', ops: [put('device', 'x', 2)] }], result: undefined }));
  assert.equal(state.position().position, 0n);
  assert.equal(state.count(SESSION_OBJECT_NAMESPACE), 1);
  assert.equal(store.count(SESSION_OBJECT_NAMESPACE), 0, 'session objects never reach the store');
  assert.equal(store.count('device'), 1);
  assert.throws(() => state.apply(cluster(put('device', 'y', 3))), AssertionFailure, 'a cluster-wide change set may not touch the device namespace');
  assert.throws(() => state.apply({ scope: 'local', kind: 'user.create', ops: [put('user', 'z', 1)] }), AssertionFailure);
  assert.throws(() => state.apply(cluster(put('state', 'position', 1))), AssertionFailure, 'only apply writes the position');
  // replace runs in the queue, clears the volatile namespaces and reads the position again.
  await state.submit(() => ({ changes: [cluster(put('user', 'a', 1))], result: undefined }));
  let after = 0;
  await state.replace((tx) => tx.clear('user'), () => void after++);
  assert.equal(after, 1);
  assert.equal(state.count(SESSION_OBJECT_NAMESPACE), 0);
  assert.equal(state.position().position, 1n, 'the position record is the state\'s: a replacement that keeps it keeps it');
});

test('observers hear the encoding of each cluster-wide change set, local ones never', async () => {
  const state = new DeviceState(new MemoryRecordStore());
  const heard: number[] = [];
  state.observe((encoded) => heard.push(encoded.length));
  await state.submit(() => ({ changes: [cluster(put('user', 'a', 1))], result: undefined }));
  await state.submit(() => ({ changes: [{ scope: 'local', kind: 'session.objects', ops: [put(SESSION_OBJECT_NAMESPACE, '1', 1)] }], result: undefined }));
  assert.equal(heard.length, 1);
  assert.ok((heard[0] ?? 0) > 13);
});
