// Acknowledgements, keys served by the whole relayed cluster, and the client's fork check
// (docs/sdk.md "Acknowledgements", "Which HSM serves a key", "Forks"): three relayed in-process HSMs
// behind real data planes, a relay over a real metadata store that the test holds back or forks
// (test/node/relayed_plane_support.ts), and the SDK's Cluster over TLS. Signatures are verified
// with node:crypto against the key's exported public key.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { verify as nodeVerify } from 'node:crypto';
import { Cluster } from '../../src/client/cluster.js';
import { Connection } from '../../src/client/connection.js';
import type { WireRequest } from '../../src/formats/wire.js';
import { isCofferError } from '../../src/errors.js';
import { ADMIN_PW } from '../hsm/backup/backup_support.js';
import { loggedIn } from '../hsm/state/journal_support.js';
import { startDataPlane } from '../../src/node/data_plane.js';
import { startRelayedPlanes, type RelayedPlanes } from '../node/relayed_plane_support.js';
import { ALICE, until } from './support.js';

/** Generous bound on a wait that ends on an event (the machine may be busy). */
const WAIT_MS = 60_000;
let planes: RelayedPlanes;
const clusters: Cluster[] = [];

before(async () => {
  planes = await startRelayedPlanes(3);
});
after(async () => {
  for (const c of clusters) await c.close();
  await planes.close();
});

async function connect(options: { acks?: number; ackTimeoutMs?: number; username?: string; password?: string; role?: 'admin' } = {}): Promise<Cluster> {
  const c = await Cluster.connect({
    endpoints: planes.endpoints, ca: planes.ca,
    credentials: { username: options.username ?? ALICE.username, password: options.password ?? ALICE.password, ...(options.role === undefined ? {} : { role: options.role }) },
    ...(options.acks === undefined ? {} : { acks: options.acks }), ...(options.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: options.ackTimeoutMs }),
  });
  clusters.push(c);
  await until(() => c.nodes.every((n) => n.state === 'up'), 'every node up', WAIT_MS);
  return c;
}

/** Runs `fn` while every request the SDK's connections send is shown to `seen` (with its answer). */
async function seeingCalls<T>(seen: (name: string, request: unknown, answer: Promise<unknown>) => void, fn: () => Promise<T>): Promise<T> {
  const proto = Connection.prototype;
  const original = Object.getOwnPropertyDescriptor(proto, 'call') as PropertyDescriptor;
  const call = original.value as (this: Connection, name: string, request: unknown) => Promise<unknown>;
  Object.defineProperty(proto, 'call', {
    ...original,
    value: function (this: Connection, name: string, request: unknown) {
      const answer = call.call(this, name, request);
      seen(name, request, answer);
      return answer;
    },
  });
  try {
    return await fn();
  } finally {
    Object.defineProperty(proto, 'call', original);
  }
}

/** Each node's count of answered calls (the SDK's own per-node counter). */
const completed = (c: Cluster): number[] => c.router.links.map((l) => l.completed);

test('a key acknowledged by two HSMs by default; it signs on every HSM, balanced, with the key named', { timeout: 300_000 }, async () => {
  const c = await connect();
  const pair = await c.generateKeyPair({ curve: 'P-256', label: 'acked' });
  const ack = pair.privateKey.acknowledgement;
  assert.ok(ack !== undefined && ack.position !== undefined, 'a relayed change reports its entry');
  assert.equal(ack.required, 2, 'default k = 2 on a cluster of three');
  assert.ok(ack.nodes.length >= 2 && ack.nodes[0] === 0, `the originator (node 0, the primary) and one more: ${ack.nodes.join(',')}`);
  assert.equal(new Set(ack.nodes).size, ack.nodes.length);

  // Every HSM gets the key: none is pinned to its maker.
  await until(() => (pair.privateKey.nodes ?? []).length === 3, 'every HSM known at or past the key', WAIT_MS);
  const pem = await pair.publicKey.exportPublicPem();
  const before = completed(c);
  const data = Array.from({ length: 60 }, (_, i) => new TextEncoder().encode(`message ${i}`));
  const signatures = await Promise.all(data.map((d) => pair.privateKey.sign(d)));
  const after = completed(c);
  for (const [i, sig] of signatures.entries()) {
    assert.ok(nodeVerify('sha256', data[i] as Uint8Array, { key: pem, dsaEncoding: 'ieee-p1363' }, sig), `signature ${i} is by the key named`);
  }
  const share = after.map((n, i) => n - (before[i] ?? 0));
  assert.ok(share.every((n) => n > 0), `every HSM signed some: ${share.join(',')}`);
});

test('k cannot be met: COFFER_ACKS_NOT_MET says who acknowledged, and the change is in the journal', { timeout: 300_000 }, async () => {
  const c = await connect({ ackTimeoutMs: 2_000 });
  planes.relay.held.add(2);
  try {
    const err = await c.generateKey({ type: 'AES', bits: 256, label: 'needs-three', acks: 3 }).then(
      () => assert.fail('three acknowledgements cannot be met while node 2 is held'),
      (e: unknown) => e,
    );
    assert.ok(isCofferError(err, 'COFFER_ACKS_NOT_MET'), String(err));
    assert.equal(err.detail['required'], 3);
    assert.equal(err.detail['acknowledged'], 2);
    assert.equal(err.detail['acknowledgedBy'], '0,1');
    assert.equal(err.detail['inJournal'], true);
    assert.match(err.message, /is in the cluster journal/);
    const one = await c.generateKey({ type: 'AES', bits: 128, acks: 1 });
    assert.deepEqual(one.acknowledgement?.nodes, [0], 'k = 1: the originator alone');
    await assert.rejects(c.generateKey({ type: 'AES', bits: 128, acks: 4 }), (e) => isCofferError(e, 'COFFER_CLIENT_CONFIG_INVALID'));
  } finally {
    await planes.relay.release(2);
  }
  // The change that missed its acknowledgement is whole: found, and usable on every HSM.
  const [found] = await c.findKeys({ label: 'needs-three' });
  assert.ok(found !== undefined);
  await until(() => (found.nodes ?? []).length === 3, 'node 2 caught up', WAIT_MS);
  for (let i = 0; i < 9; i++) await found.encrypt(new Uint8Array([i]));
});

test('the changes one journal entry made share their acknowledgement: one JOURNAL_WAIT per HSM and entry', { timeout: 300_000 }, async () => {
  const c = await connect();
  const asked: bigint[] = [];
  const keys = await seeingCalls((name, request) => {
    if (name === 'JOURNAL_WAIT') asked.push((request as WireRequest<'JOURNAL_WAIT'>).seq);
  }, () => Promise.all(Array.from({ length: 16 }, (_, i) => c.generateKey({ type: 'AES', bits: 256, label: `batched-${i}` }))));
  const seqs = keys.map((k) => k.acknowledgement?.position?.seq);
  assert.ok(seqs.every((s) => s !== undefined), 'every change names its entry');
  const entries = new Set(seqs);
  // Sent together to one HSM, the calls queue behind one another and share entries (batches).
  assert.ok(entries.size <= 8, `16 changes in at most 8 entries: ${entries.size}`);
  for (const k of keys) assert.ok((k.acknowledgement?.nodes.length ?? 0) >= 2, 'each change acknowledged by two HSMs');
  // Each of the two other HSMs is asked at most once per entry (a wait that ran out is asked again:
  // none does here, with the HSMs applying at once).
  assert.ok(asked.length <= 2 * entries.size, `${asked.length} JOURNAL_WAITs for ${entries.size} entries`);
  assert.ok(asked.every((s) => entries.has(s)), 'each asks for an entry the changes made');
});

test('the other HSMs are asked to wait for the next entry as the change leaves, so the acknowledgement is often known when the answer comes', { timeout: 300_000 }, async () => {
  const c = await connect();
  const events: string[] = [];
  const key = await seeingCalls((name, request, answer) => {
    if (name === 'JOURNAL_WAIT') events.push(`wait ${String((request as WireRequest<'JOURNAL_WAIT'>).seq)}`);
    if (name === 'GENERATE_KEY') void answer.then(() => events.push('answered'), () => undefined);
  }, () => c.generateKey({ type: 'AES', bits: 256, label: 'watched' }));
  const ack = key.acknowledgement;
  assert.ok(ack?.position !== undefined && ack.nodes.length >= 2, 'acknowledged by two HSMs');
  const seq = String(ack.position.seq);
  const answered = events.indexOf('answered');
  assert.ok(answered > 0, `the originator answered: ${events.join(', ')}`);
  // Both other HSMs were asked for the entry before the originator's answer, which it cannot give
  // before the entry is appended and applied.
  assert.deepEqual(events.slice(0, answered), [`wait ${seq}`, `wait ${seq}`], events.join(', '));
  assert.ok(events.length <= 4, `no more than one more wait per HSM: ${events.join(', ')}`);
});

test('users and their changes are acknowledged and reach every HSM', { timeout: 300_000 }, async () => {
  const admin = await connect({ username: 'admin', password: ADMIN_PW, role: 'admin', acks: 3 });
  const ack = await admin.users.create('carol', 'carol-password', 'crypto-user');
  assert.equal(ack.nodes.length, 3);
  assert.deepEqual([...ack.nodes].sort(), [0, 1, 2]);
  for (const d of planes.devices) {
    const s = await loggedIn(d, 'carol');
    s.close();
  }
});

test('a changed own password reaches every HSM: a node that reconnects later logs in with the new one', { timeout: 300_000 }, async () => {
  const c = await connect({ username: 'carol', password: 'carol-password', acks: 3 });
  const ack = await c.users.changeOwnPassword('carol-password', 'carol-password-2');
  assert.equal(ack.nodes.length, 3);
  // Node 1's data plane goes away and comes back on its port: the SDK logs in there again.
  const port = planes.planes[1]!.port;
  await planes.planes[1]!.close();
  await until(() => c.nodes[1]?.state !== 'up', 'node 1 seen down', WAIT_MS);
  planes.planes[1] = await startDataPlane({ hsm: planes.devices[1]!, port });
  await until(() => c.nodes[1]?.state === 'up', 'node 1 up again, logged in with the new password', WAIT_MS);
  assert.equal(await c.random(8).then((r) => r.length), 8);
  // 'up' comes only after the link logged in again (NodeLink.login): with the new password. The
  // old one no longer opens node 1.
  const direct = planes.devices[1]!.openSession();
  await assert.rejects(direct.login('carol', 'carol-password'), (e) => isCofferError(e, 'COFFER_AUTH_FAILED'));
  direct.close();
});

test('a forked HSM is found by the acknowledgement, named with the position, and never used again', { timeout: 300_000 }, async () => {
  const c = await connect({ acks: 3, ackTimeoutMs: WAIT_MS });
  // Node 2 applies an entry of its own that the journal never holds: it forks at the next position.
  planes.relay.forked.add(2);
  const bob = await loggedIn(planes.devices[2]!, 'bob');
  await bob.generateKey({ keyType: 'AES', bits: 256 }, { token: true, label: 'fork' });
  bob.close();
  const err = await c.generateKey({ type: 'AES', bits: 256, label: 'after-fork' }).then(
    () => assert.fail('the fork must be reported'),
    (e: unknown) => e,
  );
  assert.ok(isCofferError(err, 'COFFER_CLUSTER_FORKED'), String(err));
  assert.equal(err.detail['node'], 2);
  assert.equal(typeof err.detail['seq'], 'string');
  assert.equal(err.detail['inJournal'], true);
  const snapshot = c.nodes[2];
  assert.equal(snapshot?.state, 'down');
  assert.ok(isCofferError(snapshot.lastError, 'COFFER_CLUSTER_FORKED'));
  const [key] = await c.findKeys({ label: 'after-fork' });
  assert.ok(key !== undefined);
  const before = completed(c)[2];
  for (let i = 0; i < 12; i++) await key.encrypt(new Uint8Array([i]));
  assert.equal(completed(c)[2], before, 'the forked HSM gets no call');
});

test('a fork seen in STATUS heads: the HSM whose head disagrees with an acknowledged entry is retired, naming the position', { timeout: 300_000 }, async () => {
  // The earlier tests' clients go: a login of theirs (a reconnecting node) would be an entry of the
  // journal between this client's own, and the client must hold the entry at node 1's head.
  for (const other of clusters.splice(0)) await other.close();
  const c = await connect({ acks: 1 });
  // Node 1 now forks too: its own entries are applied by it alone.
  planes.relay.forked.add(1);
  const bob = await loggedIn(planes.devices[1]!, 'bob');
  await bob.generateKey({ keyType: 'AES', bits: 128 }, { token: true, label: 'fork-1' });
  bob.close();
  const forkedHead = planes.devices[1]!.journal.head().seq;
  // Changes through node 0 (k = 1: nothing asks node 1) until the client holds an acknowledged
  // entry at node 1's head; node 1's next STATUS shows another entry there.
  let seq = 0n;
  while (seq < forkedHead) {
    const k = await c.generateKey({ type: 'AES', bits: 128, acks: 1 });
    seq = k.acknowledgement?.position?.seq ?? assert.fail('a relayed change has a position');
  }
  await until(() => c.nodes[1]?.state === 'down', 'node 1 retired', WAIT_MS);
  const error = c.nodes[1]?.lastError;
  assert.ok(isCofferError(error, 'COFFER_CLUSTER_FORKED'), String(error));
  assert.equal(error.detail['seq'], String(forkedHead), 'the position of the fork');
  assert.equal(error.detail['node'], 1);
  assert.equal(c.nodes[0]?.state, 'up', 'the HSM that agrees is kept');
});
