// `coffer up --metadata postgres://…` (docs/getting-started.md "Metadata in PostgreSQL"): a region
// whose control plane keeps its metadata and its cluster journal in a real PostgreSQL server, in a
// schema of its own; the journal relayed through it, a key acknowledged by both HSMs; the data
// directory remembers the database (never the URL's password), and a start that names another
// store, or none, is refused before anything runs.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { Cluster } from '../../src/client/cluster.js';
import { METADATA_FILE, upSchemaOf } from '../../src/cli/up.js';
import { MAIN_JS, freePort } from '../service/fleet/fleet_support.js';
import { POSTGRES_URL, requirePostgres } from '../storage/postgres_support.js';
import { sameHead, startUp, stopUp } from './up_support.js';

const run = promisify(execFile);
const ADDRESSES = ['127.0.0.2', '127.0.0.3'];
const dir = mkdtempSync(join(tmpdir(), 'coffer-up-pg-'));
const clients: Cluster[] = [];
let child: ChildProcess | undefined;
const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
/** The URL with a password in it: trust authentication ignores it, and no file may keep it. */
const PASSWORD = 'not-kept-anywhere-7f3a';
const withPassword = (() => {
  const u = new URL(POSTGRES_URL);
  u.password = PASSWORD;
  return u.toString();
})();
let schema: string | undefined;

after(async () => {
  await stopUp(child, clients, dir);
  if (schema !== undefined) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
});

interface ClusterFile {
  readonly customerCa: string;
  readonly cryptoUser: { readonly name: string; readonly password: string };
}

async function refused(args: readonly string[]): Promise<string> {
  const r = await run(process.execPath, [MAIN_JS, 'up', '--data-dir', dir, '--port', '0', ...args]).then(
    () => assert.fail('coffer up started on another metadata store'),
    (e: { readonly code?: number; readonly stderr?: string }) => e,
  );
  assert.notEqual(r.code, 0);
  return r.stderr ?? '';
}

test('coffer up --metadata postgres://: the region on PostgreSQL, a key acknowledged by both HSMs, and the store remembered', { timeout: 900_000 }, async () => {
  await requirePostgres(admin, 'This test needs');
  const port = await freePort(ADDRESSES);
  const args = ['--data-dir', dir, '--port', '0', '--data-plane-port', String(port), '--cluster', '2'];
  const ready = await startUp([...args, '--metadata', withPassword], (proc) => (child = proc));

  const recorded = JSON.parse(readFileSync(join(dir, METADATA_FILE), 'utf8')) as { postgres: string; schemaPrefix: string };
  schema = upSchemaOf(recorded.schemaPrefix, 'us-east-1');
  assert.ok(!existsSync(join(dir, 'regions', 'us-east-1', 'metadata.sqlite')), 'no SQLite file: the metadata is in PostgreSQL');
  const tables = await admin.query<{ n: string }>('SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1', [schema]);
  assert.ok(Number(tables.rows[0]?.n) > 0, `the region's tables are in schema ${schema}`);

  const file = JSON.parse(readFileSync(ready.clusterFile, 'utf8')) as ClusterFile;
  const ca = readFileSync(file.customerCa, 'utf8');
  const credentials = { username: file.cryptoUser.name, password: file.cryptoUser.password };
  const c = await Cluster.connect({ endpoints: ADDRESSES.map((host) => ({ host, port })), ca, credentials });
  clients.push(c);
  const key = await c.generateKey({ type: 'AES', bits: 256, label: 'on-postgres' });
  assert.equal(key.acknowledgement?.nodes.length, 2, 'acknowledged by both HSMs: the journal went through PostgreSQL');
  const seq = key.acknowledgement?.position?.seq;
  assert.ok(seq !== undefined);
  const stored = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.journal WHERE seq = $1`, [String(seq)]);
  assert.equal(Number(stored.rows[0]?.n), 1, 'the entry that made the key is in the PostgreSQL journal');
  // One client per HSM: both hold the key at one head.
  const perHsm = await Promise.all(ADDRESSES.map(async (host) => {
    const one = await Cluster.connect({ endpoints: [{ host, port }], ca, credentials });
    clients.push(one);
    return one;
  }));
  await sameHead(perHsm);
  for (const one of perHsm) assert.equal((await one.findKeys({ label: 'on-postgres' })).length, 1);

  // No file of the data directory holds the URL's password.
  const { stdout } = await run('grep', ['-rl', PASSWORD, dir]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  assert.equal(stdout.trim(), '', `no file keeps the password: ${stdout}`);

  for (const cl of clients.splice(0)) await cl.close();
  const running = child as ChildProcess;
  const exited = new Promise((resolve) => running.once('exit', resolve));
  running.kill('SIGINT');
  await exited;
  child = undefined;

  // The directory remembers its store: none, or another database, is refused.
  assert.match(await refused(['--data-plane-port', String(port)]), /keeps its metadata in postgres:\/\//);
  const other = new URL(POSTGRES_URL);
  other.pathname = '/another';
  assert.match(await refused(['--data-plane-port', String(port), '--metadata', other.toString()]), /keeps its metadata in postgres:\/\//);
  assert.match(await refused(['--data-plane-port', String(port), '--metadata', '/tmp/metadata.sqlite']), /must be a postgres:\/\/ URL/);

  // Started again on it, the cluster and its key come back.
  const again = await startUp([...args, '--metadata', POSTGRES_URL], (proc) => (child = proc));
  const f2 = JSON.parse(readFileSync(again.clusterFile, 'utf8')) as ClusterFile;
  const c2 = await Cluster.connect({ endpoints: ADDRESSES.map((host) => ({ host, port })), ca: readFileSync(f2.customerCa, 'utf8'), credentials });
  clients.push(c2);
  assert.equal((await c2.findKeys({ label: 'on-postgres' })).length, 1, 'the key is back');
});
