// startDevelopmentCluster with real node processes: a 1-node cluster a crypto user reaches with the
// customer CA as its only trust; a 3-node cluster whose clones (backup → restore over the
// management interface) serve a key made on node 1 before they existed; a hard kill of one node;
// a node that dies unasked is reported and cluster.json follows every exit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '../../src/client/connection.js';
import { CLUSTER_FILE, startDevelopmentCluster, type DevelopmentCluster, type DevNode, type NodeExit } from '../../src/cli/dev_cluster.js';
import { alive } from '../helpers.js';

const ECDSA_SHA256 = { mechanism: 'CKM_ECDSA_SHA256' } as const;

/** A crypto-user session on `node`, trusting the customer CA alone. */
async function cryptoUser(cluster: DevelopmentCluster, node: DevNode): Promise<{ conn: Connection; session: number }> {
  const conn = await Connection.connect({ host: node.host, port: node.port, ca: cluster.customerCaPem });
  const session = await conn.openSession();
  await conn.login(session, cluster.cryptoUser.name, cluster.cryptoUser.password);
  return { conn, session };
}

async function withCluster(nodes: number, fn: (cluster: DevelopmentCluster) => Promise<void>, options: { readonly detached?: boolean } = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-dev-cluster-'));
  let cluster: DevelopmentCluster | undefined;
  try {
    cluster = await startDevelopmentCluster({ dir, nodes, ...options });
    await fn(cluster);
  } finally {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a 1-node development cluster: initialised, activated, a crypto user logs in trusting only the customer CA', async () => {
  await withCluster(1, async (cluster) => {
    assert.match(cluster.clusterId, /^cluster-[2-7a-z]{11}$/);
    assert.equal(cluster.nodes.length, 1);
    const { conn, session } = await cryptoUser(cluster, cluster.nodes[0] as DevNode);
    const status = await conn.status();
    assert.equal(status.activated, true);
    assert.equal((await conn.random(session, 16)).length, 16);
    conn.close();
    // The admin's password is the one activation set; a wrong one fails.
    const admin = await Connection.connect({ host: '127.0.0.1', port: cluster.nodes[0]?.port ?? 0, ca: cluster.customerCaPem });
    const s = await admin.openSession();
    await admin.login(s, cluster.admin.name, cluster.admin.password);
    admin.close();

    const file = join(cluster.dir, CLUSTER_FILE);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { clusterId: string; cryptoUser: { password: string }; nodes: Array<{ port: number; managementPort: number }> };
    assert.equal(doc.clusterId, cluster.clusterId);
    assert.equal(doc.cryptoUser.password, cluster.cryptoUser.password);
    assert.equal(doc.nodes[0]?.port, cluster.nodes[0]?.port);
    assert.equal(doc.nodes[0]?.managementPort, cluster.nodes[0]?.managementPort);
    // The node's log holds no credential of the cluster.
    const log = readFileSync(join(cluster.nodes[0]?.dataDir ?? '', 'node.log'), 'utf8');
    for (const secret of [cluster.admin.password, cluster.cryptoUser.password]) assert.ok(!log.includes(secret));
  });
});

/** The session id of a process (proc(5): the field after the parenthesised command, state, ppid, pgrp). */
function sessionOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

test('detached: the node runs in a session of its own and stop() still stops it; by default it shares the caller\'s', { skip: process.platform !== 'linux' }, async () => {
  const ours = sessionOf(process.pid);
  let pid = 0;
  await withCluster(1, (cluster) => {
    pid = (cluster.nodes[0] as DevNode).pid;
    assert.equal(sessionOf(pid), pid, 'a detached node leads its own session');
    assert.notEqual(sessionOf(pid), ours);
    return Promise.resolve();
  }, { detached: true });
  assert.equal(alive(pid), false, 'stop() ended the detached node');
  await withCluster(1, (cluster) => {
    assert.equal(sessionOf((cluster.nodes[0] as DevNode).pid), ours);
    return Promise.resolve();
  });
});

test('3 nodes: a key made on node 1 before the clones signs on all three; a killed node leaves the others serving', async () => {
  await withCluster(1, async (cluster) => {
    const first = await cryptoUser(cluster, cluster.nodes[0] as DevNode);
    const { publicHandle, privateHandle } = await first.conn.generateKeyPair(first.session, { keyType: 'EC', curve: 'P-256' }, {}, { label: 'before-clones' });
    const publicKey = createPublicKey(await first.conn.exportPublic(first.session, publicHandle));
    first.conn.close();

    await cluster.addNode();
    await cluster.addNode();
    assert.equal(cluster.nodes.length, 3);
    assert.equal(new Set(cluster.nodes.map((n) => n.serial)).size, 3, 'three distinct devices');
    const data = new TextEncoder().encode('signed on every node');
    for (const node of cluster.nodes) {
      const { conn, session } = await cryptoUser(cluster, node); // the node's leaf verifies against the customer CA alone
      const signature = await conn.sign(session, privateHandle, ECDSA_SHA256, data);
      assert.ok(verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), `signature from ${node.serial}`);
      conn.close();
    }

    await cluster.kill(1);
    assert.notEqual(cluster.nodes[1]?.process.signalCode, null);
    for (const node of [cluster.nodes[0], cluster.nodes[2]] as DevNode[]) {
      const { conn, session } = await cryptoUser(cluster, node);
      assert.ok(verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, await conn.sign(session, privateHandle, ECDSA_SHA256, data)));
      conn.close();
    }
    await assert.rejects(Connection.connect({ host: '127.0.0.1', port: cluster.nodes[1]?.port ?? 0, ca: cluster.customerCaPem, connectTimeoutMs: 5000 }));
  });
});

test('a node that dies unasked is reported once; one stopped by kill() is not; cluster.json follows both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-dev-cluster-'));
  const exits: NodeExit[] = [];
  const cluster = await startDevelopmentCluster({ dir, nodes: 2, onNodeExit: (e) => exits.push(e) });
  const running = (): boolean[] => (JSON.parse(readFileSync(join(dir, CLUSTER_FILE), 'utf8')) as { nodes: Array<{ running: boolean }> }).nodes.map((n) => n.running);
  try {
    assert.deepEqual(running(), [true, true]);
    await cluster.kill(0); // asked for: cluster.json is rewritten before kill() resolves, nothing is reported
    assert.deepEqual(running(), [false, true]);
    assert.deepEqual(exits, []);
    const victim = cluster.nodes[1] as DevNode;
    const gone = new Promise<void>((resolve) => victim.process.once('exit', () => resolve()));
    process.kill(victim.pid, 'SIGKILL'); // not asked for
    await gone;
    assert.deepEqual(running(), [false, false]);
    assert.equal(exits.length, 1);
    assert.deepEqual(exits[0], {
      node: 2, serial: victim.serial, pid: victim.pid, code: null, signal: 'SIGKILL', log: join(victim.dataDir, 'node.log'), running: 0, nodes: 2, clusterFile: join(cluster.dir, CLUSTER_FILE),
    });
    assert.equal(statSync(join(dir, CLUSTER_FILE)).mode & 0o777, 0o600);
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
