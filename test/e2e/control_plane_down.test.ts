// While the control plane is unreachable (docs/control-plane.md "The journal relay"): `coffer up
// --cluster 2`, relayed by default, and the service process then stopped with SIGSTOP while its two
// HSM processes keep running. Signing goes on through the SDK at each HSM; a state change fails,
// within the device's bounded wait, with the journal's distinct error, and nothing of it is left on
// either HSM; after SIGCONT the relay resumes, a new change reaches both, and both report one head.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../src/client/cluster.js';
import { isCofferError } from '../../src/errors.js';
import { freePort } from '../service/fleet/fleet_support.js';
import { journalPosition, sameHead, startUp, stopUp } from './up_support.js';

const ADDRESSES = ['127.0.0.2', '127.0.0.3'];
const dir = mkdtempSync(join(tmpdir(), 'coffer-cp-down-'));
let child: ChildProcess | undefined;
const clients: Cluster[] = [];

after(() => stopUp(child, clients, dir));

interface ClusterFile {
  readonly customerCa: string;
  readonly cryptoUser: { readonly name: string; readonly password: string };
}

function up(port: number): Promise<string> {
  return startUp(['--data-dir', dir, '--port', '0', '--data-plane-port', String(port), '--cluster', '2'], (proc) => (child = proc)).then((r) => r.clusterFile);
}

test('the control plane stopped: signing goes on at every HSM, a state change fails with the journal\'s error, and after it resumes the HSMs converge', { timeout: 1_800_000 }, async () => {
  const port = await freePort(ADDRESSES);
  const file = JSON.parse(readFileSync(await up(port), 'utf8')) as ClusterFile;
  const ca = readFileSync(file.customerCa, 'utf8');
  const credentials = { username: file.cryptoUser.name, password: file.cryptoUser.password };
  // One client per HSM, logged in (a login is a journaled change) while the service runs.
  const users = await Promise.all(ADDRESSES.map(async (host) => {
    const c = await Cluster.connect({ endpoints: [{ host, port }], ca, credentials });
    clients.push(c);
    return c;
  }));
  const [u0, u1] = users as [Cluster, Cluster];
  const pair = await u0.generateKeyPair({ curve: 'P-256', label: 'cp-down-signing' });
  await sameHead(users);
  const onOther = (await u1.findKeys({ label: 'cp-down-signing' })).find((k) => k.handle === pair.privateKey.handle);
  assert.ok(onOther !== undefined, 'the key is on the other HSM under the same handle');
  const before = await sameHead(users);

  let refusal = '';
  process.kill(child?.pid as number, 'SIGSTOP');
  try {
    // Crypto operations go on at every HSM.
    for (const [i, k] of [pair.privateKey, onOther].entries()) {
      const signature = await k.sign(new TextEncoder().encode(`while the control plane is down ${i}`));
      assert.ok(signature.length > 0);
    }
    // A state change waits for the journal, bounded, and fails with its distinct error.
    // NOT_APPENDED: withdrawn, certainly not in the journal. OUTCOME_UNKNOWN only if the stopped
    // relay had taken the entry from the HSM's outbox just before it stopped: in the journal wholly
    // or not at all.
    await assert.rejects(u1.generateKey({ type: 'AES', bits: 256, label: 'cp-down-unordered' }), (e: unknown) => {
      assert.ok(isCofferError(e) && (e.code === 'COFFER_JOURNAL_NOT_APPENDED' || e.code === 'COFFER_JOURNAL_OUTCOME_UNKNOWN'), String(e));
      refusal = e.code;
      return true;
    });
    for (const u of users) assert.equal(await journalPosition(u), before, 'nothing applied while the journal is unreachable');
  } finally {
    process.kill(child?.pid as number, 'SIGCONT');
  }

  // The relay resumes: a new change reaches both HSMs, which agree; the refused change is nowhere.
  const after = await u1.generateKey({ type: 'AES', bits: 256, label: 'cp-down-after' });
  const head = await sameHead(users);
  assert.ok(head > before);
  const unordered: number[][] = [];
  for (const u of users) {
    assert.deepEqual((await u.findKeys({ label: 'cp-down-after' })).map((k) => k.handle), [after.handle]);
    unordered.push((await u.findKeys({ label: 'cp-down-unordered' })).map((k) => k.handle));
  }
  assert.deepEqual(unordered[0], unordered[1], 'never half: the refused change is on both HSMs or on neither');
  if (refusal === 'COFFER_JOURNAL_NOT_APPENDED') assert.deepEqual(unordered[0], [], 'withdrawn: on no HSM');
});
