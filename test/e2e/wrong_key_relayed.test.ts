// The wrong-key scenario on one logical HSM (docs/sdk.md "Which HSM serves a key", "Acknowledgements"):
// `coffer up --cluster 3 --journal relayed` — a real service and three real HSM processes. Keys are
// made through different HSMs, then used through the whole cluster: every signature verifies under
// the public key of the key named (node:crypto) and under no other, every HSM signs with it, and the
// calls are balanced over all three. A state change acknowledged on k = 2 reports two HSMs (SDK and
// `coffer --acks 2`); users and their lock state converge on every HSM.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from '../../src/client/cluster.js';
import { loadClusterConfig } from '../../src/client/discovery.js';
import type { Key } from '../../src/client/keys.js';
import { isCofferError } from '../../src/errors.js';
import { MAIN_JS, freePort } from '../service/fleet/fleet_support.js';
import { startUp, stopUp } from './up_support.js';

const run = promisify(execFile);
/** Starting a region and a cluster of 3 takes seconds; a loaded machine may need minutes. */
const WAIT_MS = 600_000;
const POLL_MS = 250;
const ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const dir = mkdtempSync(join(tmpdir(), 'coffer-wrongkey-relayed-'));
let child: ChildProcess | undefined;
const clients: Cluster[] = [];

after(() => stopUp(child, clients, dir));

interface ClusterFile {
  readonly admin: { readonly name: string; readonly password: string };
  readonly cryptoUser: { readonly name: string; readonly password: string };
}

function up(port: number): Promise<string> {
  return startUp(['--data-dir', dir, '--port', '0', '--data-plane-port', String(port), '--cluster', '3', '--journal', 'relayed'], (proc) => (child = proc)).then((r) => r.clusterFile);
}

async function connect(clusterFile: string, who: { name: string; password: string }, options: { only?: number; role?: 'admin' } = {}): Promise<Cluster> {
  const config = loadClusterConfig(clusterFile);
  const endpoints = options.only === undefined ? config.endpoints : [config.endpoints[options.only]!];
  const c = await Cluster.connect({ endpoints, ca: config.ca, credentials: { username: who.name, password: who.password, ...(options.role === undefined ? {} : { role: options.role }) } });
  clients.push(c);
  await until('every node up', async () => Promise.resolve(c.nodes.every((n) => n.state === 'up')));
  return c;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const verifies = (pem: string, data: Uint8Array, sig: Uint8Array): boolean => nodeVerify('sha256', data, { key: pem, dsaEncoding: 'ieee-p1363' }, sig);

test('relayed 3-HSM cluster: keys made through different HSMs are used exactly, on every HSM, balanced; k = 2 reports two HSMs; users converge', { timeout: 1_800_000 }, async () => {
  const port = await freePort(ADDRESSES);
  const clusterFile = await up(port);
  const file = JSON.parse(readFileSync(clusterFile, 'utf8')) as ClusterFile;

  // Keys made through HSM 0, HSM 1 and HSM 2, each by a client of that HSM alone.
  const labels = ['wk-0', 'wk-1', 'wk-2'];
  for (const [i, label] of labels.entries()) {
    const one = await connect(clusterFile, file.cryptoUser, { only: i });
    const made = await one.generateKeyPair({ curve: 'P-256', label });
    assert.deepEqual(made.privateKey.acknowledgement?.nodes, [0], 'a client of one HSM: k = 1, its HSM');
  }

  // The whole cluster: k = 2 by default.
  const all = await connect(clusterFile, file.cryptoUser);
  const viaAll = await all.generateKeyPair({ curve: 'P-256', label: 'wk-all' });
  const ack = viaAll.privateKey.acknowledgement;
  assert.ok(ack !== undefined && ack.position !== undefined);
  assert.equal(ack.required, 2);
  assert.ok(ack.nodes.length >= 2 && ack.nodes[0] === 0, `two HSMs acknowledged: ${ack.nodes.join(',')}`);

  const keys: { label: string; priv: Key; pem: string }[] = [];
  for (const label of [...labels, 'wk-all']) {
    const found = await all.findKeys({ label });
    const priv = found.find((k) => k.class === 'PRIVATE_KEY');
    const pub = found.find((k) => k.class === 'PUBLIC_KEY');
    assert.ok(priv !== undefined && pub !== undefined, `${label} found through the cluster`);
    keys.push({ label, priv, pem: await pub.exportPublicPem() });
  }
  assert.equal(new Set(keys.map((k) => k.priv.handle)).size, keys.length, 'cluster-wide handles: one key, one handle');

  // Every key on every HSM: balanced over all three, each signature by the key named and no other.
  for (const k of keys) await until(`${k.label} on every HSM`, async () => Promise.resolve((k.priv.nodes ?? []).length === 3));
  const before = all.router.links.map((l) => l.completed);
  for (const k of keys) {
    const data = Array.from({ length: 24 }, (_, i) => enc(`${k.label} message ${i}`));
    const sigs = await Promise.all(data.map((d) => k.priv.sign(d)));
    sigs.forEach((sig, i) => {
      assert.ok(verifies(k.pem, data[i]!, sig), `${k.label} signature ${i}`);
      for (const other of keys) if (other !== k) assert.ok(!verifies(other.pem, data[i]!, sig), `${k.label} signature ${i} is not by ${other.label}`);
    });
  }
  const share = all.router.links.map((l, i) => l.completed - (before[i] ?? 0));
  assert.ok(share.every((n) => n > 0), `every HSM served a share: ${share.join(',')}`);

  // Each HSM alone signs with each key by its handle.
  for (const i of [0, 1, 2]) {
    const one = await connect(clusterFile, file.cryptoUser, { only: i });
    for (const k of keys) {
      const d = enc(`${k.label} on HSM ${i}`);
      assert.ok(verifies(k.pem, d, await one.key(k.priv.handle).sign(d)), `${k.label} on HSM ${i}`);
    }
  }

  // The coffer CLI with --acks 2 prints the two HSMs.
  const env = { ...process.env, COFFER_CLUSTER_CONFIG: clusterFile, COFFER_PIN: `${file.cryptoUser.name}:${file.cryptoUser.password}` };
  const { stdout } = await run(process.execPath, [MAIN_JS, 'key', 'generate-symmetric', 'aes', '--label', 'wk-cli', '--key-length-bytes', '32', '--acks', '2'], { env });
  const printed = JSON.parse(stdout) as { data: { acknowledged_by?: string[]; acks_required?: number } };
  assert.equal(printed.data.acks_required, 2);
  assert.ok((printed.data.acknowledged_by ?? []).length >= 2, stdout);
  for (const hsm of printed.data.acknowledged_by ?? []) assert.match(hsm, /^127\.0\.0\.[234]:\d+$/);

  // Users and lock state converge: created with k = 3, locked by failed logins on one HSM, seen
  // locked on every HSM, unlocked through another, seen unlocked on every HSM.
  const admin = await connect(clusterFile, file.admin, { role: 'admin' });
  const created = await admin.users.create('wkuser', 'wkuser-password', 'crypto-user', { acks: 3 });
  assert.deepEqual([...created.nodes].sort(), [0, 1, 2]);
  const config = loadClusterConfig(clusterFile);
  for (let n = 0; n < 5; n++) {
    await assert.rejects(
      Cluster.connect({ endpoints: [config.endpoints[1]!], ca: config.ca, credentials: { username: 'wkuser', password: 'not-the-password' } }),
      (e) => isCofferError(e, 'COFFER_AUTH_FAILED') || isCofferError(e, 'COFFER_USER_LOCKED'),
    );
  }
  const admins = await Promise.all([0, 1, 2].map((i) => connect(clusterFile, file.admin, { only: i, role: 'admin' })));
  const lockedEverywhere = async (locked: boolean): Promise<boolean> => {
    const lists = await Promise.all(admins.map((a) => a.users.list()));
    return lists.every((l) => l.find((u) => u.name === 'wkuser')?.locked === locked);
  };
  await until('wkuser locked on every HSM', () => lockedEverywhere(true));
  const unlocked = await admins[2]!.users.unlock('wkuser');
  assert.deepEqual(unlocked.nodes, [0], 'a client of one HSM: k = 1');
  await until('wkuser unlocked on every HSM', () => lockedEverywhere(false));
  const back = await connect(clusterFile, { name: 'wkuser', password: 'wkuser-password' });
  assert.equal((await back.random(8)).length, 8, 'the unlocked user logs in through the cluster');
});
