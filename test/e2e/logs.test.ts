// The node's log holds no secret (docs/node.md "Logs"): a development cluster of real node
// processes goes through a whole scenario — activation, users created and their passwords changed,
// failed logins and a lockout, keys generated, imported in plaintext, exported, wrapped and
// unwrapped, a clone made by backup and restore — and every node's log (its stderr, node.log) is
// searched for every secret the scenario used, in every encoding it might take; the events the
// scenario should have produced are there.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { NODE_LOG_FILE } from '../../src/cli/dev_node_process.js';
import { Cluster } from '../../src/client/cluster.js';
import { forms } from '../secret_forms.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'coffer-logs-'));
let dev: DevelopmentCluster | undefined;
after(async () => {
  await dev?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a whole scenario on node processes: every event is logged, no secret is', { timeout: 240_000 }, async () => {
  dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1, mainJs: MAIN });
  const endpoints = (): { host: string; port: number }[] => dev!.nodes.map((n) => ({ host: n.host, port: n.port }));
  const secrets: (string | Uint8Array)[] = [dev.admin.password, dev.cryptoUser.password];
  const connect = (username: string, password: string, role?: 'admin'): Promise<Cluster> =>
    Cluster.connect({ endpoints: endpoints(), ca: dev!.customerCaPem, credentials: { username, password, ...(role === undefined ? {} : { role }) } });

  const admin = await connect(dev.admin.name, dev.admin.password, 'admin');
  const [BOB_PW, BOB_PW2, WRONG_PW] = ['bob-first-password-1', 'bob-second-password-2', 'not-bobs-password-3'];
  secrets.push(BOB_PW, BOB_PW2, WRONG_PW);
  await admin.users.create('bob', BOB_PW, 'crypto-user');
  await admin.users.changePassword('bob', BOB_PW2);
  for (let i = 0; i < 5; i++) await assert.rejects(connect('bob', WRONG_PW));
  await admin.users.unlock('bob');

  const bob = await connect('bob', BOB_PW2);
  const aes = await bob.generateKey({ type: 'AES', bits: 256, label: 'exportable', extractable: true, attributes: { sensitive: false, wrap: true, unwrap: true } });
  const exported = await bob.key(aes.handle).exportPlaintext();
  secrets.push(exported);
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = new Uint8Array(pair.privateKey.export({ type: 'pkcs8', format: 'der' }));
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  secrets.push(pkcs8, pem.split('\n').slice(1, -2).join(''));
  const imported = await bob.importPrivateKeyPem(pem, { label: 'imported', extractable: true });
  const hmac = await bob.generateKey({ type: 'GENERIC_SECRET', bits: 256, label: 'to-wrap', extractable: true, attributes: { sensitive: false } });
  const hmacBytes = await hmac.exportPlaintext();
  secrets.push(hmacBytes);
  const wrapped = await aes.wrap(hmac);
  secrets.push(wrapped);
  await bob.unwrapKey(aes, wrapped, { class: 'SECRET_KEY', keyType: 'GENERIC_SECRET', label: 'unwrapped', sign: true });
  await imported.setAttribute('label', 'renamed');
  await imported.destroy();
  await bob.close();
  await admin.close();
  await dev.addNode(); // a clone: a backup of node 1, restored into node 2

  const logs = dev.nodes.map((n) => readFileSync(join(n.dataDir, NODE_LOG_FILE), 'utf8'));
  const lines = logs.flatMap((l) => l.split('\n').filter((x) => x !== '').map((x) => JSON.parse(x) as Record<string, unknown>));
  const seen = (test: (l: Record<string, unknown>) => boolean, what: string): void => assert.ok(lines.some(test), `logged: ${what}`);
  seen((l) => l['event'] === 'login' && l['user'] === 'bob' && l['outcome'] === 'failed' && l['code'] === 'COFFER_AUTH_FAILED', 'a failed login, with its user and code');
  seen((l) => l['event'] === 'lockout' && l['user'] === 'bob', 'the lockout');
  seen((l) => l['event'] === 'state-change' && l['kind'] === 'user.unlock' && (l['users'] as string[]).includes('bob'), 'the unlock');
  seen((l) => l['event'] === 'state-change' && l['kind'] === 'key.import' && (l['handles'] as number[]).includes(imported.handle), 'the import, with its handle');
  seen((l) => l['event'] === 'state-change' && l['kind'] === 'key.destroy', 'the destroy');
  seen((l) => l['event'] === 'backup', 'the backup');
  seen((l) => l['event'] === 'restore', 'the restore on the clone');
  seen((l) => l['event'] === 'started' && l['message'] === 'listening', 'the start and its addresses');

  const text = logs.join('\n');
  for (const secret of secrets) for (const form of forms(secret)) assert.ok(!text.includes(form), `a secret is in a node's log (${form.slice(0, 6)}…)`);
});
