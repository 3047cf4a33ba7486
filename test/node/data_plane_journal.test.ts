// The journal over the data plane (docs/wire-protocol.md "Journal positions"): STATUS carries each
// HSM's journal mode and head, a state-changing answer names the entry that made the change, and
// JOURNAL_WAIT parks until an HSM's head reaches a position. Two relayed in-process HSMs behind real
// data planes and a relay over a real metadata store; hashes are checked against the chain hash of
// the sealed entries the relay stored, computed here from their bytes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../src/client/connection.js';
import { isCofferError } from '../../src/errors.js';
import { journalEntryHash } from '../../src/formats/journal_entry.js';
import { WIRE_JOURNAL_WAIT_MS_MAX } from '../../src/formats/limits.js';
import { startRelayedPlanes, type RelayedPlanes } from './relayed_plane_support.js';

/** Generous bound on a wait that ends on an event (the machine may be busy). */
const WAIT_MS = 60_000;
let cluster: RelayedPlanes;
const connections: Connection[] = [];

before(async () => {
  cluster = await startRelayedPlanes(2);
});
after(async () => {
  for (const c of connections) c.close();
  await cluster.close();
});

async function aliceOn(i: number): Promise<{ c: Connection; s: number }> {
  const endpoint = cluster.endpoints[i];
  assert.ok(endpoint !== undefined);
  const c = await Connection.connect({ host: endpoint.host, port: endpoint.port, ca: cluster.ca });
  connections.push(c);
  const s = await c.openSession();
  await c.login(s, 'alice', new TextEncoder().encode('alice-password'), 'crypto-user');
  return { c, s };
}

const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'));

/** The chain hash (hex) of the journal's entry at `seq`, from the bytes the relay stored. */
async function storedHash(seq: bigint): Promise<string | undefined> {
  const [item] = await cluster.relay.entries(seq);
  assert.ok(item !== undefined && item.seq === seq, `the journal holds an entry at ${seq}`);
  return hex(journalEntryHash(item.entry));
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('STATUS carries the journal mode and head; a state change names its entry', { timeout: 300_000 }, async () => {
  const [{ c: c0, s: s0 }, { c: c1 }] = [await aliceOn(0), await aliceOn(1)];
  const made = await c0.call('GENERATE_KEY', { session: s0, spec: { keyType: 'AES', bits: 256 }, template: { token: true, label: 'journaled' } });
  assert.ok(made.position !== undefined, 'a token object is made by a journal entry');
  assert.equal(hex(made.position.hash), await storedHash(made.position.seq), 'the position is the stored entry that made the key');

  const st0 = await c0.call('STATUS', {});
  assert.equal(st0.journal?.mode, 'relayed');
  assert.ok(st0.journal.head.seq >= made.position.seq);
  assert.equal(st0.journal.head.seq, st0.journalPosition, 'the head is the journal position STATUS already reported');
  assert.equal(hex(st0.journal.head.hash), await storedHash(st0.journal.head.seq));
  await until('node 1 applies the entry', async () => ((await c1.call('STATUS', {})).journal?.head.seq ?? 0n) >= made.position!.seq);

  const sessionObject = await c0.call('GENERATE_KEY', { session: s0, spec: { keyType: 'AES', bits: 128 }, template: { token: false } });
  assert.equal(sessionObject.position, undefined, 'a session object makes no entry');

  const shared = await c0.call('SHARE', { session: s0, handle: made.handle, userName: 'bob', identity: made.identity });
  assert.ok(shared.position !== undefined && shared.position.seq > made.position.seq);
  assert.equal(hex(shared.position.hash), await storedHash(shared.position.seq));
});

test('JOURNAL_WAIT parks until the head reaches the position and answers the hash held there', { timeout: 300_000 }, async () => {
  const [{ c: c0, s: s0 }, { c: c1 }] = [await aliceOn(0), await aliceOn(1)];
  cluster.relay.held.add(1);
  let position: { seq: bigint; hash: Uint8Array } | undefined;
  try {
    position = (await c0.call('GENERATE_KEY', { session: s0, spec: { keyType: 'AES', bits: 256 }, template: { token: true } })).position;
    assert.ok(position !== undefined);
    const early = await c1.call('JOURNAL_WAIT', { seq: position.seq, waitMs: 0 });
    assert.equal(early.reached, false, 'node 1 is held back');
    assert.ok(early.head.seq < position.seq);
    assert.equal(early.hashAtSeq, undefined, 'no hash for a position not reached');
    assert.equal(early.mode, 'relayed');
  } finally {
    // A parked wait ends as soon as the entry arrives: release while it waits.
    const parked = position === undefined ? undefined : c1.call('JOURNAL_WAIT', { seq: position.seq, waitMs: WIRE_JOURNAL_WAIT_MS_MAX });
    await cluster.relay.release(1);
    await parked;
  }
  let answer = await c1.call('JOURNAL_WAIT', { seq: position.seq, waitMs: WIRE_JOURNAL_WAIT_MS_MAX });
  const deadline = Date.now() + WAIT_MS;
  while (!answer.reached && Date.now() < deadline) answer = await c1.call('JOURNAL_WAIT', { seq: position.seq, waitMs: WIRE_JOURNAL_WAIT_MS_MAX });
  assert.equal(answer.reached, true);
  assert.equal(hex(answer.hashAtSeq), hex(position.hash), 'node 1 holds the entry node 0 made');
  const past = await c0.call('JOURNAL_WAIT', { seq: 1n, waitMs: 0 });
  assert.equal(hex(past.hashAtSeq), await storedHash(1n), 'a position well behind the head is still known');
});

test('JOURNAL_WAIT bounds: a wait above the limit is refused and the connection stays usable', { timeout: 120_000 }, async () => {
  const { c } = await aliceOn(0);
  await assert.rejects(c.call('JOURNAL_WAIT', { seq: 1n, waitMs: WIRE_JOURNAL_WAIT_MS_MAX + 1 }), (e) => isCofferError(e, 'COFFER_FORMAT_LIMIT'));
  const far = await c.call('JOURNAL_WAIT', { seq: 2n ** 63n, waitMs: 1 });
  assert.equal(far.reached, false);
  assert.equal(far.hashAtSeq, undefined);
  assert.equal((await c.call('STATUS', {})).journal?.mode, 'relayed');
});
