// Batches in the writer queue (src/hsm/state/device_state.ts, docs/device.md "The journal"), with a
// sequencer the test drives by hand: the submits queued behind an entry in flight are decided one
// after another, each reading (get, list, count) the state the earlier ones leave, and proposed as
// ONE change set; the speculation is undone by whatever entry takes the position, so a batch that
// loses is decided again on the state that entry left; a decision that throws or cannot join does
// not disturb the others.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wipeChangeSet, type ChangeSet, type JournalHead, type RecordOp } from '../../../src/formats/change_set.js';
import { DeviceState, type Decision, type StateSequencer } from '../../../src/hsm/state/device_state.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';

const put = (id: string, v: number): RecordOp => ({ op: 'put', ns: 'user', id, value: Uint8Array.of(v) });
const del = (id: string): RecordOp => ({ op: 'delete', ns: 'user', id });
const copyOp = (op: RecordOp): RecordOp => (op.op === 'put' ? { ...op, value: op.value.slice() } : { ...op });

interface Proposal {
  readonly ops: readonly RecordOp[];
  readonly onOwn: (head: JournalHead) => void;
  readonly resolve: (outcome: 'own' | 'other') => void;
}

/** Orders entries as the test says: `own` applies the proposal as the next entry, `other` applies
 * another change set there first. */
class HandSequencer implements StateSequencer {
  readonly #state: DeviceState;
  readonly #proposals: Proposal[] = [];
  #waiter: (() => void) | undefined;
  #seq = 0n;

  constructor(state: DeviceState) {
    this.#state = state;
    state.attachSequencer(this);
  }

  journaled(): boolean {
    return true;
  }

  propose(cs: ChangeSet, onOwn: (head: JournalHead) => void): Promise<'own' | 'other'> {
    return new Promise((resolve) => {
      this.#proposals.push({ ops: cs.ops.map(copyOp), onOwn, resolve });
      this.#waiter?.();
    });
  }

  ownEntrySink(): undefined {
    return undefined;
  }

  replaced(): void {}

  /** The next proposal (waits for it). */
  async next(): Promise<Proposal> {
    while (this.#proposals.length === 0) await new Promise<void>((resolve) => (this.#waiter = resolve));
    return this.#proposals.shift() as Proposal;
  }

  own(p: Proposal): void {
    const head = this.#apply(p.ops);
    p.onOwn(head);
    p.resolve('own');
  }

  other(p: Proposal, ops: RecordOp[]): void {
    this.#apply(ops);
    p.resolve('other');
  }

  #apply(ops: readonly RecordOp[]): JournalHead {
    const head = { seq: ++this.#seq, hash: new Uint8Array(32).fill(Number(this.#seq)) };
    const cs: ChangeSet = { scope: 'cluster', kind: 'user.create', ops: ops.map(copyOp) };
    this.#state.applyJournalEntries([{ cs, head }]);
    wipeChangeSet(cs);
    return head;
  }
}

/** What a decision read: the ids listed, the count, and the value of one record. */
interface Seen {
  readonly ids: string[];
  readonly count: number;
  readonly value: number | undefined;
}

/** A decision that reads, then writes `ops` (made afresh each time it is decided: a decision's values
 * are wiped once they are applied or abandoned). */
function reading(state: DeviceState, probe: string, ops: () => RecordOp[], batchable = true): () => Decision<Seen> {
  return () => {
    const seen = { ids: [...state.list('user')].map(([id]) => id), count: state.count('user'), value: state.get('user', probe)?.[0] };
    return { changes: [{ scope: 'cluster', kind: 'user.create', ops: ops() }], result: seen, batchable };
  };
}

const records = (store: MemoryRecordStore): [string, number][] => [...store.list('user')].map(([id, v]) => [id, v[0] ?? -1]);

test('the submits queued behind an entry are ONE change set, each decided on the state the earlier ones leave (get, list, count)', async () => {
  const store = new MemoryRecordStore();
  const state = new DeviceState(store);
  const seq = new HandSequencer(state);
  const first = state.submit(reading(state, 'a', () => [put('a', 1)]));
  const p1 = await seq.next();
  assert.deepEqual(p1.ops.map((o) => o.id), ['a']);
  const calls = [
    state.submit(reading(state, 'a', () => [put('b', 2)])),
    state.submit(() => {
      throw new Error('refused');
    }),
    state.submit(reading(state, 'b', () => [del('a')])),
    state.submit(reading(state, 'a', () => [put('c', 3), put('b', 4)])),
  ];
  seq.own(p1);
  assert.deepEqual(await first, { ids: [], count: 0, value: undefined });
  const p2 = await seq.next();
  // b, written by the first and the last decision, is written once: at its first place, with its last value.
  assert.deepEqual(p2.ops.map((o) => `${o.op} ${o.id}`), ['put b', 'delete a', 'put c'], 'the three decisions in queue order, the refused one left out, each record once');
  assert.deepEqual(p2.ops.map((o) => (o.op === 'put' ? o.value[0] : null)), [4, null, 3]);
  assert.deepEqual(records(store), [['a', 1]], 'nothing of the batch is in the store while it is in flight');
  assert.deepEqual([[...state.list('user')].map(([id]) => id), state.count('user'), state.get('user', 'c')], [['a'], 1, undefined], 'nor read through the state');
  seq.own(p2);
  const [b, refused, delA, c] = await Promise.allSettled(calls);
  assert.deepEqual(b, { status: 'fulfilled', value: { ids: ['a'], count: 1, value: 1 } });
  assert.equal(refused?.status, 'rejected');
  assert.deepEqual(delA, { status: 'fulfilled', value: { ids: ['a', 'b'], count: 2, value: 2 } });
  assert.deepEqual(c, { status: 'fulfilled', value: { ids: ['b'], count: 1, value: undefined } });
  assert.deepEqual(records(store), [['b', 4], ['c', 3]]);
  assert.equal(state.position().journal.seq, 2n);
});

test('a batch another entry took the position of is undone and decided again on that entry; one that cannot join waits for its own turn', async () => {
  const store = new MemoryRecordStore();
  const state = new DeviceState(store);
  const seq = new HandSequencer(state);
  const head = state.submit(reading(state, 'x', () => [put('h', 0)]));
  const p1 = await seq.next();
  const e1 = state.submit(reading(state, 'z', () => [put('e', 1)]));
  const alone = state.submit(reading(state, 'e', () => [put('n', 9)], false)); // not batchable: ordered alone
  const e2 = state.submit(reading(state, 'z', () => [put('f', 2)]));
  seq.own(p1);
  await head;
  const lost = await seq.next();
  assert.deepEqual(lost.ops.map((o) => o.id), ['e'], 'the batch stops before a decision that cannot join it');
  assert.deepEqual([...state.list('user')].map(([id]) => id), ['h'], 'e is in flight: no read outside the batch\'s decisions sees it');
  assert.equal(state.get('user', 'e'), undefined);
  assert.equal(state.count('user'), 1);
  assert.deepEqual(records(store), [['h', 0]]);
  seq.other(lost, [put('z', 7)]);
  assert.deepEqual(records(store), [['h', 0], ['z', 7]]);
  assert.deepEqual([...state.list('user')].map(([id]) => id), ['h', 'z'], 'the speculation is gone');
  assert.equal(state.count('user'), 2);
  assert.equal(state.get('user', 'e'), undefined);
  const again = await seq.next();
  assert.deepEqual(again.ops.map((o) => o.id), ['e']);
  seq.own(again);
  assert.deepEqual(await e1, { ids: ['h', 'z'], count: 2, value: 7 }, 'decided again on the entry that won');
  const own = await seq.next();
  assert.deepEqual(own.ops.map((o) => o.id), ['n']);
  seq.own(own);
  assert.deepEqual(await alone, { ids: ['e', 'h', 'z'], count: 3, value: 1 });
  const last = await seq.next();
  seq.own(last);
  assert.deepEqual(await e2, { ids: ['e', 'h', 'n', 'z'], count: 4, value: 7 });
  assert.deepEqual(records(store), [['e', 1], ['f', 2], ['h', 0], ['n', 9], ['z', 7]]);
});
