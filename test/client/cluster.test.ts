// The SDK against in-process nodes on real TLS sockets (docs/sdk.md): trust in the customer CA
// alone, login on every node, balancing, BUSY, failover and rejoin, and what is never retried.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { Cluster } from '../../src/client/cluster.js';
import { NodeBusyError } from '../../src/client/connection.js';
import { createDevelopmentCustomerCa } from '../../src/factory/development.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import type { Session } from '../../src/hsm/device.js';
import { FailingStore } from '../hsm/store/failing_store.js';
import { ALICE, startTestCluster, until } from './support.js';
import { load } from '../helpers.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}
const ecKey = { setup: (alice: Session) => alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { token: true }, { token: true, label: 'shared' }) };


test('3 cloned nodes: connect trusting only the customer CA, sign on all three, every signature verifies', async () => {
  const tc = await startTestCluster({ nodes: 3, ...ecKey });
  const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
  try {
    assert.deepEqual(cluster.nodes.map((n) => n.state), ['up', 'up', 'up']);
    const key = cluster.key(tc.made.privateHandle);
    const pub = createPublicKey(await cluster.key(tc.made.publicHandle).exportPublicPem());
    const sigs = await load(300, 24, (i) => key.sign(enc(`m${i}`)));
    sigs.forEach((s, i) => assert.ok(nodeVerify('sha256', enc(`m${i}`), { key: pub, dsaEncoding: 'ieee-p1363' }, s), `signature ${i}`));
    const per = cluster.router.links.map((l) => l.completed);
    assert.ok(per.every((c) => c >= 30), `every node served a share: ${per.join(',')}`);
    assert.equal(await cluster.key(tc.made.publicHandle).verify(enc('m0'), sigs[0] as Uint8Array), true);
    const st = await cluster.status();
    assert.equal(st.length, 3);
    assert.ok(st.every((s) => 'status' in s && s.status.activated));
  } finally {
    await cluster.close();
    await tc.close();
  }
});

test('sequential calls spread over idle nodes of equal weight, after their STATUS polls too', async () => {
  const tc = await startTestCluster({ nodes: 3 });
  const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
  try {
    // A few rounds of STATUS polls (CLIENT_STATUS_POLL_MS) while one node alone is used: the STATUS
    // each node counts in flight is the client's own, not load of others.
    const deadline = Date.now() + 3500;
    while (Date.now() < deadline) await cluster.random(8);
    const before = cluster.router.links.map((l) => l.completed);
    for (let i = 0; i < 90; i++) await cluster.random(8);
    const per = cluster.router.links.map((l, i) => l.completed - (before[i] ?? 0));
    assert.ok(per.every((c) => c >= 10), `every node served sequential calls: ${per.join(',')}`);
  } finally {
    await cluster.close();
    await tc.close();
  }
});

test('traffic follows reported capacity: a node reporting 3x the capacity gets roughly 3x the calls', async () => {
  const tc = await startTestCluster({ nodes: 2, plane: (i) => ({ capacityOpsPerSecond: i === 0 ? 1000 : 3000 }) });
  const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
  try {
    await load(1200, 32, () => cluster.random(16));
    const [a, b] = cluster.router.links.map((l) => l.completed) as [number, number];
    const ratio = b / a;
    assert.ok(ratio > 1.7 && ratio < 5.5, `calls 1000-node:3000-node = ${a}:${b}`);
  } finally {
    await cluster.close();
    await tc.close();
  }
});

test('a node of another CA, or under another name, is COFFER_NODE_UNTRUSTED', async () => {
  const tc = await startTestCluster({ nodes: 1 });
  try {
    const other = await createDevelopmentCustomerCa();
    await rejectsWith(Cluster.connect({ endpoints: tc.endpoints, ca: other.certificatePem, credentials: ALICE }), 'COFFER_NODE_UNTRUSTED');
    const named = [{ ...tc.endpoints[0]!, servername: 'not-this-node.example' }];
    await rejectsWith(Cluster.connect({ endpoints: named, ca: tc.ca, credentials: ALICE }), 'COFFER_NODE_UNTRUSTED');
    const c = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
    await c.close();
  } finally {
    await tc.close();
  }
});

test('a refused login fails connect at once, is tried on one node only, and is never repeated', async () => {
  const tc = await startTestCluster({ nodes: 2 });
  try {
    await rejectsWith(Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: { username: 'alice', password: 'wrong-password' } }), 'COFFER_AUTH_FAILED');
    await new Promise((r) => setTimeout(r, 400)); // long enough for any re-probe to have happened
    const failed = tc.nodes.map((n) => {
      const admin = n.hsm.openSession();
      return admin.login('admin', 'admin-password-1').then(() => {
        const u = admin.listUsers().find((x) => x.name === 'alice');
        admin.close();
        return u?.failedLogins ?? -1;
      });
    });
    assert.deepEqual(await Promise.all(failed), [1, 0]);
  } finally {
    await tc.close();
  }
});

test('BUSY: a node at capacity sends calls to the other; alone and without retries it is COFFER_NODE_BUSY', async () => {
  const tc = await startTestCluster({ nodes: 2, ...ecKey, plane: (i) => (i === 0 ? { capacityMax: 1, retryAfterMs: 5 } : {}) });
  const both = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
  const alone = await Cluster.connect({ endpoints: [tc.endpoints[0]!], ca: tc.ca, credentials: ALICE, retries: 0 });
  try {
    const key = both.key(tc.made.privateHandle);
    const sigs = await Promise.all(Array.from({ length: 64 }, (_, i) => key.sign(enc(`b${i}`))));
    assert.equal(sigs.length, 64);
    const results = await Promise.allSettled(Array.from({ length: 64 }, (_, i) => alone.key(tc.made.privateHandle).sign(enc(`a${i}`))));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(refused.length > 0, 'some calls were refused busy');
    for (const r of refused) assert.ok((r).reason instanceof NodeBusyError && ((r).reason).retryAfterMs === 5);
    assert.ok(results.some((r) => r.status === 'fulfilled'));
  } finally {
    await both.close();
    await alone.close();
    await tc.close();
  }
});

test('failover: one of 3 nodes stops under a sign load: no call fails, the others carry it; it rejoins when back', async () => {
  const tc = await startTestCluster({ nodes: 3, ...ecKey });
  const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
  try {
    const key = cluster.key(tc.made.privateHandle);
    let stopped: Promise<void> | undefined;
    let atStop: number[] = [];
    await load(900, 48, (i) => key.sign(enc(`f${i}`)), (done) => {
      if (done === 200) {
        atStop = cluster.router.links.map((l) => l.completed);
        stopped = tc.stop(1);
      }
    });
    await stopped;
    const after = cluster.router.links.map((l) => l.completed);
    assert.equal(cluster.nodes[1]?.state === 'up', false, 'the stopped node is not up');
    assert.ok((after[0]! - atStop[0]!) + (after[2]! - atStop[2]!) >= 650, `survivors carried the rest: ${atStop.join(',')} → ${after.join(',')}`);
    await tc.restart(1);
    await until(() => cluster.nodes[1]?.state === 'up', 'node 1 rejoins');
    const before = cluster.router.links[1]!.completed;
    await load(300, 24, (i) => key.sign(enc(`r${i}`)));
    assert.ok(cluster.router.links[1]!.completed > before, 'the rejoined node gets traffic again');
  } finally {
    await cluster.close();
    await tc.close();
  }
});

test('a state change is sent once: when its node fails mid-call the error is reported and no other node gets it', async () => {
  const store = new FailingStore();
  const bugs: unknown[] = []; // the failing store's untyped error is a bug to the node, which would stop its process
  const tc = await startTestCluster({ nodes: 2, store0: store, plane: () => ({ onBug: (e) => bugs.push(e) }) });
  const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
  try {
    const before = await cluster.status();
    store.failNext = true; // node 0 (the primary) fails inside the transaction: it drops the connection
    await rejectsWith(cluster.generateKey({ type: 'AES', bits: 256, label: 'once' }), 'COFFER_CONNECTION_LOST');
    assert.equal(bugs.length, 1, 'the node reported the failure as a bug');
    const node1 = (await cluster.status())[1];
    assert.ok(node1 !== undefined && 'status' in node1 && 'status' in before[1]!);
    assert.equal(node1.status.tokenObjects, before[1].status.tokenObjects, 'node 1 made nothing');
    // The idempotent path still works on node 1 while node 0 is re-probed.
    assert.equal((await cluster.random(8)).length, 8);
  } finally {
    await cluster.close();
    await tc.close();
  }
});

test('no node reachable: COFFER_CLUSTER_UNAVAILABLE; bad options: COFFER_CLIENT_CONFIG_INVALID', async () => {
  const tc = await startTestCluster({ nodes: 1 });
  const port = tc.endpoints[0]!.port;
  await tc.close();
  await rejectsWith(Cluster.connect({ endpoints: [{ host: '127.0.0.1', port }], ca: tc.ca, credentials: ALICE, connectTimeoutMs: 2000 }), 'COFFER_CLUSTER_UNAVAILABLE');
  await rejectsWith(Cluster.connect({ endpoints: [], ca: tc.ca, credentials: ALICE }), 'COFFER_CLIENT_CONFIG_INVALID');
  await rejectsWith(Cluster.connect({ endpoints: [{ host: '127.0.0.1', port }], ca: tc.ca, credentials: ALICE, retries: 99 }), 'COFFER_CLIENT_CONFIG_INVALID');
});

test('auto-batching: concurrent single signs travel as SIGN_BATCH; each call still gets its own result or error', async () => {
  const tc = await startTestCluster({ nodes: 1, ...ecKey });
  const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE, autoBatch: true });
  try {
    const pub = createPublicKey(await cluster.key(tc.made.publicHandle).exportPublicPem());
    const good = cluster.key(tc.made.privateHandle, { class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-256' });
    const missing = cluster.key(987_654, { class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-256' });
    const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => (i % 10 === 9 ? missing : good).sign(enc(`ab${i}`))));
    results.forEach((r, i) => {
      if (i % 10 === 9) assert.ok(r.status === 'rejected' && isCofferError(r.reason, 'COFFER_OBJECT_NOT_FOUND'), `item ${i} fails alone`);
      else assert.ok(r.status === 'fulfilled' && nodeVerify('sha256', enc(`ab${i}`), { key: pub, dsaEncoding: 'ieee-p1363' }, r.value), `item ${i} verifies`);
    });
    const link = cluster.router.links[0]!;
    assert.ok(link.autoBatches > 0 && link.autoBatches < 200, `calls were coalesced into ${link.autoBatches} batches`);
    assert.equal(link.inFlight, 0);
  } finally {
    await cluster.close();
    await tc.close();
  }
});
