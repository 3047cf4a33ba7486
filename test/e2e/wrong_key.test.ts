// A handle never names another key (docs/sdk.md "Which HSM serves a key"), with real node processes:
// a development cluster of 3 HSMs cloned from one backup; a key pair made through node 1 (n1k) and
// one made through node 2 (n2k) get the same handles, since each node counts from the same backup.
// Signing, exporting and verifying by label through the whole cluster must use the key named —
// through the `coffer` CLI (15 runs each, as a user would) and through the SDK — and with the only
// node that holds n1k down, a call on it is COFFER_KEY_UNAVAILABLE, never another key's answer.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_FILE, startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { Cluster } from '../../src/client/cluster.js';
import { isCofferError } from '../../src/errors.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const RUNS = 15;
const T = { timeout: 300_000 };

let dev: DevelopmentCluster;
let dir: string;
let pin: string;
/** cluster.json of the whole cluster, and one per node listing that node alone. */
const configs: { all: string; node: string[] } = { all: '', node: [] };

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function coffer(config: string, args: readonly string[]): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env['PATH'], COFFER_CLUSTER_CONFIG: config, COFFER_PIN: pin }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((ok) => child.once('close', (code) => ok({ code, stdout, stderr })));
}

function data<T>(r: Run): T {
  assert.equal(r.code, 0, `exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { data: T }).data;
}

type Pair = { public_key: { 'key-reference': string }; private_key: { 'key-reference': string } };

const verifies = (key: KeyObject, message: string, signature: Uint8Array): boolean => nodeVerify('sha256', Buffer.from(message), { key, dsaEncoding: 'ieee-p1363' }, signature);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-wrong-key-'));
  dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 3, mainJs: MAIN });
  pin = `${dev.cryptoUser.name}:${dev.cryptoUser.password}`;
  configs.all = join(dev.dir, CLUSTER_FILE);
  const doc = JSON.parse(readFileSync(configs.all, 'utf8')) as { nodes: unknown[] };
  configs.node = doc.nodes.map((node, i) => {
    const path = join(dir, `node-${i + 1}.json`);
    writeFileSync(path, JSON.stringify({ ...doc, nodes: [node] }), { mode: 0o600 });
    return path;
  });
});

after(async () => {
  await dev.stop();
  rmSync(dir, { recursive: true, force: true });
});

let n1Public: KeyObject;
let n2Public: KeyObject;

test('keys made through different nodes share a handle, and every CLI call by label uses the key it names', T, async () => {
  const n1 = data<Pair>(await coffer(configs.node[0] ?? '', ['key', 'generate-asymmetric-pair', 'ec', '--curve', 'secp256r1', '--public-label', 'n1p', '--private-label', 'n1k']));
  const n2 = data<Pair>(await coffer(configs.node[1] ?? '', ['key', 'generate-asymmetric-pair', 'ec', '--curve', 'secp256r1', '--public-label', 'n2p', '--private-label', 'n2k']));
  assert.equal(n1.private_key['key-reference'], n2.private_key['key-reference'], 'the hazard: one handle, two different keys on two nodes');
  n1Public = createPublicKey(data<{ pem: string }>(await coffer(configs.node[0] ?? '', ['key', 'generate-file', '--encoding', 'pem', '--filter', 'attr.label=n1p'])).pem);
  n2Public = createPublicKey(data<{ pem: string }>(await coffer(configs.node[1] ?? '', ['key', 'generate-file', '--encoding', 'pem', '--filter', 'attr.label=n2p'])).pem);

  for (let i = 0; i < RUNS; i++) {
    const message = `run ${i}`;
    const signed = await coffer(configs.all, ['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=n1k', '--hash-function', 'sha256', '--data', message]);
    const signature = Buffer.from(data<{ signature: string }>(signed).signature, 'base64');
    assert.equal(verifies(n1Public, message, signature), true, `run ${i}: signed with n1k`);
    assert.equal(verifies(n2Public, message, signature), false, `run ${i}: not with n2k`);
    const exported = data<{ pem: string }>(await coffer(configs.all, ['key', 'generate-file', '--encoding', 'pem', '--filter', 'attr.label=n1p']));
    assert.equal(exported.pem, n1Public.export({ type: 'spki', format: 'pem' }).toString(), `run ${i}: n1p's public key`);
  }
  // An n2k signature does not verify under n1p, whichever node is asked.
  const n2Signature = data<{ signature: string }>(await coffer(configs.node[1] ?? '', ['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=n2k', '--data', 'from n2k'])).signature;
  assert.equal(verifies(n2Public, 'from n2k', Buffer.from(n2Signature, 'base64')), true);
  for (let i = 0; i < RUNS; i++) {
    const r = await coffer(configs.all, ['crypto', 'verify', 'ecdsa', '--key-filter', 'attr.label=n1p', '--data', 'from n2k', '--signature', n2Signature]);
    assert.equal(r.code, 1, `run ${i}: verify must fail\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /COFFER_SIGNATURE_INVALID/);
  }
});

test('the SDK: a key found by label, or named by its handle, is used only where it lives; with that node down it is unavailable', T, async () => {
  const endpoints = dev.nodes.map((n) => ({ host: n.host, port: n.port }));
  const cluster = await Cluster.connect({ endpoints, ca: dev.customerCaPem, credentials: { username: dev.cryptoUser.name, password: dev.cryptoUser.password } });
  try {
    const [n1k] = await cluster.findKeys({ label: 'n1k' });
    assert.ok(n1k !== undefined);
    assert.deepEqual(n1k.nodes, [0], 'only node 1 is known to hold the objects n1k was found with');
    const byHandle = cluster.key(n1k.handle);
    for (let i = 0; i < RUNS; i++) {
      const message = `sdk ${i}`;
      assert.equal(verifies(n1Public, message, await n1k.sign(new TextEncoder().encode(message))), true, `found key, run ${i}`);
      assert.equal(verifies(n1Public, message, await byHandle.sign(new TextEncoder().encode(message))), true, `key by handle, run ${i}`);
    }
    // n1k's node goes down: the call on n1k is refused as unavailable rather than served by node 2,
    // whose object under that handle is n2k.
    await dev.kill(0);
    await assert.rejects(n1k.sign(new TextEncoder().encode('after the kill')), (e: unknown) => isCofferError(e, 'COFFER_KEY_UNAVAILABLE'));
    // A node asked with n1k's identity for its object under that handle refuses: it is another key.
    const onNode2 = await Cluster.connect({ endpoints: [endpoints[1] ?? { host: '', port: 0 }], ca: dev.customerCaPem, credentials: { username: dev.cryptoUser.name, password: dev.cryptoUser.password } });
    try {
      const identity = n1k.identity;
      assert.ok(identity !== undefined);
      const link = onNode2.router.links[0];
      assert.ok(link !== undefined);
      await assert.rejects(
        link.call('SIGN', { handle: n1k.handle, identity, params: { mechanism: 'CKM_ECDSA_SHA256' }, data: new TextEncoder().encode('x') }),
        (e: unknown) => isCofferError(e, 'COFFER_OBJECT_MISMATCH'),
      );
    } finally {
      await onNode2.close();
    }
  } finally {
    await cluster.close();
  }
});
