// The end-to-end tests for the SDK, with real node processes (src/cli/dev_cluster.ts): the
// SDK against 1 node and against 3 (nodes 2 and 3 cloned from node 1 by sealed backup and restore),
// and one of 3 nodes killed (SIGKILL) under a sign load: no call fails, the survivors carry the load.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { Cluster } from '../../src/client/cluster.js';
import { startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { load } from '../helpers.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dir = mkdtempSync(join(tmpdir(), 'coffer-sdk-e2e-'));
let dev: DevelopmentCluster | undefined;
after(async () => {
  await dev?.stop();
  rmSync(dir, { recursive: true, force: true });
});


test('the SDK against 1 node, then 3 (cloned by backup and restore); then one of 3 killed under a sign load', { timeout: 240_000 }, async () => {
  dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1 });
  const credentials = { username: dev.cryptoUser.name, password: dev.cryptoUser.password };
  const endpoints = (): { host: string; port: number }[] => dev!.nodes.map((n) => ({ host: n.host, port: n.port }));

  // One node: make a key pair, sign, verify with node:crypto and through the SDK.
  const one = await Cluster.connect({ endpoints: endpoints(), ca: dev.customerCaPem, credentials });
  const kp = await one.generateKeyPair({ curve: 'P-256', label: 'e2e-signing' });
  const pub = createPublicKey(await kp.publicKey.exportPublicPem());
  const sig = await kp.privateKey.sign(enc('one node'));
  assert.ok(nodeVerify('sha256', enc('one node'), { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  assert.equal(await kp.publicKey.verify(enc('one node'), sig), true);
  await one.close();

  // Three nodes: the two new ones are clones of the first, so they hold the key too.
  await dev.addNode();
  await dev.addNode();
  const three = await Cluster.connect({ endpoints: endpoints(), ca: dev.customerCaPem, credentials });
  try {
    assert.deepEqual(three.nodes.map((n) => n.state), ['up', 'up', 'up']);
    const [found] = await three.findKeys({ label: 'e2e-signing', class: 'PRIVATE_KEY' });
    assert.ok(found !== undefined && found.handle === kp.privateKey.handle);
    const sigs = await load(600, 32, (i) => found.sign(enc(`m${i}`)));
    sigs.forEach((s, i) => assert.ok(nodeVerify('sha256', enc(`m${i}`), { key: pub, dsaEncoding: 'ieee-p1363' }, s), `signature ${i}`));
    const served = three.router.links.map((l) => l.completed);
    assert.ok(served.every((c) => c >= 50), `all three nodes served: ${served.join(',')}`);

    // Kill node 2 (index 1) under load: every call still succeeds; the survivors carry the rest.
    let killed: Promise<void> | undefined;
    let atKill: number[] = [];
    const total = 3000;
    const results = await load(total, 48, (i) => found.sign(enc(`k${i}`)), (done) => {
      if (done === 600) {
        atKill = three.router.links.map((l) => l.completed);
        killed = dev!.kill(1);
      }
    });
    await killed;
    assert.equal(results.length, total);
    results.forEach((s, i) => assert.ok(nodeVerify('sha256', enc(`k${i}`), { key: pub, dsaEncoding: 'ieee-p1363' }, s), `signature k${i}`));
    const after = three.router.links.map((l) => l.completed);
    const survivors = after[0]! - atKill[0]! + (after[2]! - atKill[2]!);
    assert.ok(survivors >= total - 600 - 100, `survivors carried the load: ${atKill.join(',')} → ${after.join(',')}`);
    assert.notEqual(three.nodes[1]?.state, 'up');
  } finally {
    await three.close();
  }
});
