// Health while the node is busy (docs/node.md "Management interface", "health"): the management
// interface answers health while a restore is being received and while it is being applied, and
// while a backup waits behind it, and says so (`restoring`, `backingUp`), so a control plane never
// takes a long restore for a dead node. The test holds the restore open itself — its upload
// half-sent, then its last step (refreshTls, inside the node's queue) — and synchronises on events.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { ManagementClient } from '../../src/management/client.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { pemOf } from '../../src/formats/x509.js';
import { decodeRestoreSummary, MANAGEMENT_ROUTES, type NodeHealth } from '../../src/formats/management.js';
import { issueClientCredential, startTestNode, type ClientCredential, type TestNode } from './management_support.js';

const CLUSTER_ID = 'cluster-healthabcdef2';
/** How long a test waits for an event before it fails: generous, never a measured duration. */
const EVENT_WAIT_MS = 60_000;
let authorities: DevelopmentAuthorities;
let credential: ClientCredential;
let source: TestNode;
let target: TestNode;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  credential = await issueClientCredential(authorities.operator);
  [source, target] = await Promise.all([startTestNode(authorities), startTestNode(authorities)]);
});
after(async () => {
  for (const n of [source, target]) {
    await n.close();
    rmSync(n.dataDir, { recursive: true, force: true });
  }
});

function client(node: TestNode): ManagementClient {
  return new ManagementClient({
    host: '127.0.0.1', port: node.management.port, ...credential,
    manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
  });
}

/** Asks for health until `until` holds (each answer is a real one), within EVENT_WAIT_MS. */
async function healthUntil(c: ManagementClient, until: (h: NodeHealth) => boolean): Promise<NodeHealth> {
  const deadline = Date.now() + EVENT_WAIT_MS;
  for (;;) {
    const h = await c.health({ digest: true });
    if (until(h)) return h;
    assert.ok(Date.now() < deadline, `health never reached the expected state: ${JSON.stringify({ restoring: h.restoring, backingUp: h.backingUp })}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A PUT /v1/restore whose body the test sends in parts; resolves the node's answer. */
function heldRestore(port: number, length: number): { send(bytes: Uint8Array): void; end(bytes: Uint8Array): void; answer: Promise<{ status: number; body: string }> } {
  let req: ReturnType<typeof request> | undefined;
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = request({
      host: '127.0.0.1', port, method: MANAGEMENT_ROUTES.restore.method, path: MANAGEMENT_ROUTES.restore.path, rejectUnauthorized: false, agent: false,
      minVersion: 'TLSv1.3', cert: credential.certificatePem, key: credential.keyPem, headers: { 'content-length': length },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.once('error', reject);
  });
  const r = req ?? assert.fail('request made');
  return { send: (b) => r.write(b), end: (b) => r.end(b), answer };
}

test('health answers during a restore (upload and apply) and a queued backup, and reports both', async () => {
  const cs = client(source);
  const ca = await createDevelopmentCustomerCa();
  await cs.initialiseCluster({
    certificatePem: await ca.signClusterCsr(await cs.clusterCsr(CLUSTER_ID)), trustAnchorPem: ca.certificatePem,
    preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789',
  });
  const file = join(source.dataDir, 'source.backup');
  await cs.backupToFile(file);
  // The backup's last byte reaches the client just as the node finishes with it: wait for the event.
  const sourceHealth = await healthUntil(cs, (h) => h.backingUp === false);
  assert.equal(sourceHealth.restoring, false);
  assert.deepEqual([sourceHealth.dataPlaneHost, sourceHealth.dataPlanePort], ['127.0.0.1', source.dataPlane.port]);
  const blob = readFileSync(file);
  const ct = client(target);

  // 1. The upload is half-sent: the node is receiving a restore.
  const upload = heldRestore(target.management.port, blob.length);
  upload.send(blob.subarray(0, blob.length >> 1));
  const receiving = await healthUntil(ct, (h) => h.restoring === true);
  assert.equal(receiving.backingUp, false);
  assert.equal(receiving.cluster, 'UNINITIALISED', 'nothing is restored before the whole blob is there');

  // 2. The rest arrives; the node restores and its last step is held (inside the node's queue).
  let held!: () => void;
  const heldNow = new Promise<void>((resolve) => (held = resolve));
  let release!: () => void;
  target.refreshes.gate = new Promise<void>((resolve) => (release = resolve));
  target.refreshes.onHeld = held;
  upload.end(blob.subarray(blob.length >> 1));
  await heldNow;
  const applying = await ct.health({ digest: true }); // answered although the restore holds the node's queue
  assert.equal(applying.restoring, true);
  assert.equal(applying.cluster, 'INITIALISED', 'the state was replaced in one step before the held one');
  assert.equal(applying.stateDigest, sourceHealth.stateDigest);

  // 3. A backup asked for now waits behind the restore; health says so too.
  const backupFile = join(target.dataDir, 'target.backup');
  const backup = ct.backupToFile(backupFile);
  const both = await healthUntil(ct, (h) => h.backingUp === true);
  assert.equal(both.restoring, true);

  // 4. Released: both finish, and the node is idle again.
  release();
  target.refreshes.gate = undefined;
  const answer = await upload.answer;
  assert.equal(answer.status, 200, answer.body);
  assert.equal(decodeRestoreSummary(JSON.parse(answer.body)).bytes, blob.length);
  await backup;
  const idle = await healthUntil(ct, (h) => h.backingUp === false && h.restoring === false);
  assert.equal(idle.stateDigest, sourceHealth.stateDigest);
  cs.close();
  ct.close();
});

test('a restore that fails still ends as not restoring', async () => {
  const ct = client(target);
  const upload = heldRestore(target.management.port, 64);
  upload.end(new Uint8Array(64).fill(1));
  const answer = await upload.answer;
  assert.notEqual(answer.status, 200);
  const h = await ct.health({ digest: true });
  assert.deepEqual([h.restoring, h.backingUp], [false, false]);
  ct.close();
});

test('the state digest is answered when asked for, and only then', async () => {
  const ct = client(target);
  const plain = await ct.health();
  assert.equal(plain.stateDigest, null, 'a probe gets no digest: it would scan the whole state after a write');
  const asked = await ct.health({ digest: true });
  assert.match(asked.stateDigest ?? '', /^[0-9a-f]{64}$/);
  assert.equal(asked.stateDigest, Buffer.from(target.hsm.stateDigest()).toString('hex'));
  ct.close();
});
