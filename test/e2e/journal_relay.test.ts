// One logical HSM (docs/control-plane.md "The journal relay"): `coffer up --cluster 3` — a real
// service and three real `coffer hsm serve` processes in relayed mode. A key generated through the
// SDK on one HSM is used by the same handle on the others; a user an admin creates on one HSM logs
// in on another; every HSM reports the same journal head. Then one HSM process is SIGKILLed: the
// orchestrator replaces it, restores it and catches it up before it reports ACTIVE, and it holds the
// same head and the same keys. Last, an edited entry written into the metadata store behind the
// service's back is refused by every HSM and the cluster goes DEGRADED naming the position.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from '../../src/client/cluster.js';
import type { Endpoint } from '../../src/client/node_link.js';
import { freePort } from '../service/fleet/fleet_support.js';
import { isCofferError } from '../../src/errors.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { devicePids } from './service_support.js';
import { journalPosition, sameHead, startUp, stopUp } from './up_support.js';

const run = promisify(execFile);
/** Starting a region and a cluster of 3, or replacing an HSM, takes seconds; a loaded machine may need minutes. */
const WAIT_MS = 600_000;
const POLL_MS = 250;
const ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const dir = mkdtempSync(join(tmpdir(), 'coffer-relay-'));
let child: ChildProcess | undefined;
const clients: Cluster[] = [];

after(() => stopUp(child, clients, dir));

interface ClusterFile {
  readonly customerCa: string;
  readonly admin: { readonly name: string; readonly password: string };
  readonly cryptoUser: { readonly name: string; readonly password: string };
}

async function up(port: number): Promise<{ clusterFile: string; endpoint: string }> {
  const ready = await startUp(['--data-dir', dir, '--port', '0', '--data-plane-port', String(port), '--cluster', '3', '--journal', 'relayed'], (proc) => (child = proc));
  return { clusterFile: ready.clusterFile, endpoint: ready.regions[0]?.endpoint ?? '' };
}

/** A client of ONE HSM (the SDK balances over the endpoints it is given). */
async function on(host: string, port: number, file: ClusterFile, who: { name: string; password: string }, role: 'admin' | 'crypto-user' = 'crypto-user'): Promise<Cluster> {
  const endpoints: Endpoint[] = [{ host, port }];
  const c = await Cluster.connect({ endpoints, ca: readFileSync(file.customerCa, 'utf8'), credentials: { username: who.name, password: who.password, role } });
  clients.push(c);
  return c;
}

interface Described { State: string; StateMessage?: string; Hsms: { State: string; EniIp: string }[] }

async function describe(endpoint: string): Promise<Described> {
  const env = { ...process.env, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_PROFILE: 'coffer', AWS_PAGER: '' };
  const { stdout } = await run('/usr/bin/aws', ['cloudhsmv2', 'describe-clusters', '--endpoint-url', endpoint, '--output', 'json'], { env });
  return (JSON.parse(stdout) as { Clusters: Described[] }).Clusters[0] as Described;
}

test('a cluster of 3 relayed HSMs is one HSM: keys by handle, users and heads agree, and a killed HSM is replaced and caught up', { timeout: 1_800_000 }, async () => {
  const port = await freePort(ADDRESSES);
  const { clusterFile, endpoint } = await up(port);
  const file = JSON.parse(readFileSync(clusterFile, 'utf8')) as ClusterFile;
  const users = await Promise.all(ADDRESSES.map((a) => on(a, port, file, file.cryptoUser)));
  const [u0, u1, u2] = users as [Cluster, Cluster, Cluster];

  // A key made through HSM 0 is used by its handle through HSMs 1 and 2.
  const key = await u0.generateKey({ type: 'AES', bits: 256, label: 'relayed-key' });
  await sameHead(users);
  const sealed = await u1.key(key.handle, { class: 'SECRET_KEY', keyType: 'AES' }).encrypt(new TextEncoder().encode('one logical HSM'));
  const opened = await u2.key(key.handle, { class: 'SECRET_KEY', keyType: 'AES' }).decrypt(sealed);
  assert.equal(new TextDecoder().decode(opened), 'one logical HSM');

  // A user an admin creates through HSM 2 logs in through HSM 1.
  const admin2 = await on(ADDRESSES[2] as string, port, file, file.admin, 'admin');
  await admin2.users.create('relayuser', 'relayuser-password', 'crypto-user');
  await sameHead(users);
  const asNew = await on(ADDRESSES[1] as string, port, file, { name: 'relayuser', password: 'relayuser-password' });
  assert.ok((await asNew.random(16)).length === 16, 'logged in on another HSM');
  const head = await sameHead(users);
  assert.ok(head >= 2n, 'the key and the user are journal entries');

  // The clients of the HSM about to be killed are closed first: the SDK would log them in again on
  // its replacement, and each login is a journaled change racing the head comparisons below.
  await u2.close();
  await admin2.close();

  // SIGKILL the HSM at 127.0.0.4; the orchestrator replaces it on the same address and catches it up.
  const victim = [...devicePids(join(dir, 'regions'))].find(([, cmd]) => cmd.includes('127.0.0.4'));
  assert.ok(victim !== undefined, 'the HSM process at 127.0.0.4');
  process.kill(victim[0], 'SIGKILL');
  const deadline = Date.now() + WAIT_MS;
  let replaced = false;
  while (!replaced) {
    if (Date.now() > deadline) assert.fail('the HSM was not replaced in time');
    await new Promise((r) => setTimeout(r, POLL_MS));
    const now = devicePids(join(dir, 'regions'));
    const alive = [...now].some(([pid, cmd]) => pid !== victim[0] && cmd.includes('127.0.0.4'));
    const c = await describe(endpoint);
    replaced = alive && c.State === 'ACTIVE' && c.Hsms.every((h) => h.State === 'ACTIVE');
  }
  const fresh = await on(ADDRESSES[2] as string, port, file, file.cryptoUser);
  // Logging in is itself a journaled change (the failed-login count), so the head may have moved on:
  // the replacement is at the head every other HSM reports, and past the one before the kill.
  const caughtUp = await sameHead([u0, u1, fresh]);
  assert.ok(caughtUp >= head, 'the replacement holds every entry made before it was killed');
  const again = await fresh.key(key.handle, { class: 'SECRET_KEY', keyType: 'AES' }).decrypt(sealed);
  assert.equal(new TextDecoder().decode(again), 'one logical HSM', 'the same key by the same handle');
  const late = await on(ADDRESSES[2] as string, port, file, { name: 'relayuser', password: 'relayuser-password' });
  assert.equal((await late.random(8)).length, 8, 'the user exists on the replacement');

  // A hostile metadata store: the entry at the head, edited (one byte of its sealed body flipped),
  // written as the next entry behind the relay's back. Every HSM refuses it; none applies it; the
  // cluster goes DEGRADED with a message naming the refusal and the position.
  // The service may append entries of its own meanwhile (a login is one): settle first — the store's
  // head and every HSM's the same — and try again if the relay took the position in between.
  const store = SqliteMetadataStore.open({ path: join(dir, 'regions', 'us-east-1', 'metadata.sqlite') });
  const clusterId = (await describeId(endpoint));
  let before = 0n;
  try {
    for (let attempt = 1; ; attempt++) {
      before = await settled(store, clusterId, [u0, u1, fresh]);
      const [last] = await store.readJournal(clusterId, Number(before), 1);
      assert.ok(last !== undefined);
      const edited = last.entry.slice();
      edited[edited.length - 1]! ^= 0x01;
      try {
        await store.appendJournal(clusterId, Number(before) + 1, edited);
        break;
      } catch (e) {
        if (!isCofferError(e, 'COFFER_JOURNAL_CONFLICT') || attempt >= 20) throw e;
      }
    }
  } finally {
    await store.close();
  }
  const position = String(before + 1n);
  const degradedBy = Date.now() + WAIT_MS;
  let c = await describe(endpoint);
  while (!(c.State === 'DEGRADED' && (c.StateMessage ?? '').includes(`entry ${position}`))) {
    if (Date.now() > degradedBy) assert.fail(`the cluster did not report the refused entry: ${c.State} ${c.StateMessage ?? ''}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
    c = await describe(endpoint);
  }
  assert.match(c.StateMessage ?? '', /COFFER_JOURNAL_TAMPERED/);
  for (const u of [u0, u1, fresh]) assert.equal(await journalPosition(u), before, 'nothing of the edited entry applied');
});

/** Waits until the store holds exactly the entries every HSM applied (its head is theirs); returns it. */
async function settled(store: SqliteMetadataStore, clusterId: string, all: readonly Cluster[]): Promise<bigint> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const applied = await sameHead(all);
    const stored = BigInt(await store.journalHead(clusterId));
    if (stored === applied) return stored;
    if (Date.now() > deadline) assert.fail(`the store holds ${stored} entries, the HSMs applied ${applied}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function describeId(endpoint: string): Promise<string> {
  const env = { ...process.env, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_PROFILE: 'coffer', AWS_PAGER: '' };
  const { stdout } = await run('/usr/bin/aws', ['cloudhsmv2', 'describe-clusters', '--endpoint-url', endpoint, '--output', 'json'], { env });
  return (JSON.parse(stdout) as { Clusters: { ClusterId: string }[] }).Clusters[0]?.ClusterId ?? '';
}
