// "A crash at any instant leaves the last committed state" (docs/architecture.md §4), shown by killing a
// writer process (store_crash_writer.ts) with SIGKILL at seeded random moments, many times, and
// reopening the store after each kill. Each time the store must open, every record must decrypt,
// the namespace summaries must agree with the records, and the contents must be exactly the state
// after committed transaction N, where N is the last commit the writer reported or the one after it
// (its commit returned, its report did not get out). Every REPLACE_EVERY-th transaction is a staged
// wholesale replacement (a restore's shape), so kills also land while staging and inside the switch;
// two more tests kill a writer exactly there. After every kill nothing of a staging is left: no file
// beside the store and its WAL, none in the temporary directory, no table but the store's own. The
// next writer continues from that state. Seed: COFFER_CRASH_SEED, else random (printed).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { SealedStore } from '../../../src/hsm/store/sealed_store.js';
import {
  BULK_NS,
  COUNTER_ID,
  COUNTER_NS,
  CRASH_STORAGE_KEY,
  DATA_NS,
  decodeCounter,
  REPLACE_EVERY,
  applyOps,
  isReplacement,
  mulberry32,
  opsFor,
  stagedFor,
} from './store_crash_writer.js';

const WRITER = fileURLToPath(new URL('./store_crash_writer.js', import.meta.url));
const ROUNDS = 40;

interface Round {
  /** Last "commit n" line the writer printed, or undefined if none. */
  readonly reported: number | undefined;
  readonly ready: boolean;
}

/** Spawns the writer (temporary files in `tmp`) and SIGKILLs it `killMs` after spawn, or after it is
 * ready if `afterReady`, or as soon as it prints `killOn` (a hang mode). */
function runWriter(path: string, tmp: string, killMs: number, afterReady: boolean, mode?: { readonly name: string; readonly killOn: string }): Promise<Round> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, COFFER_CRASH_STORE: path, TMPDIR: tmp, SQLITE_TMPDIR: tmp };
    if (mode !== undefined) env['COFFER_CRASH_MODE'] = mode.name;
    delete env['NODE_TEST_CONTEXT']; // the writer is a plain process, not a test file
    const child = spawn(process.execPath, [WRITER], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let reported: number | undefined;
    let ready = false;
    let pending = '';
    let stderr = '';
    const kill = (): void => void setTimeout(() => child.kill('SIGKILL'), killMs);
    if (!afterReady && mode === undefined) kill();
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'commit') reported = Number(n);
        if (word === mode?.killOn) child.kill('SIGKILL');
        if (word === 'ready' && !ready) {
          ready = true;
          if (afterReady) kill();
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer ended by itself (code ${code}): ${stderr}`));
      else resolve({ reported, ready });
    });
  });
}

/** The expected contents after transaction `n`, advanced incrementally from the previous round. */
class Model {
  readonly records = new Map<string, string>();
  n = 0;
  advanceTo(target: number): void {
    for (; this.n < target; ) {
      this.n++;
      if (isReplacement(this.n)) this.#replace(this.n);
      else this.#apply(this.n);
    }
  }
  #apply(n: number): void {
    for (const op of opsFor(n)) {
      const key = `${op.ns}/${op.id}`;
      if (op.put) this.records.set(key, Buffer.from(op.value).toString('hex'));
      else this.records.delete(key);
    }
  }
  #replace(n: number): void {
    for (const key of [...this.records.keys()]) if (key.startsWith(`${DATA_NS}/`) || key.startsWith(`${BULK_NS}/`)) this.records.delete(key);
    for (const [id, value] of stagedFor(n)) this.records.set(`${BULK_NS}/${id}`, Buffer.from(value).toString('hex'));
    this.records.set(`${COUNTER_NS}/${COUNTER_ID}`, counterHex(n));
  }
  namespace(ns: string): [string, string][] {
    return [...this.records]
      .filter(([k]) => k.startsWith(`${ns}/`))
      .map(([k, v]): [string, string] => [k.slice(ns.length + 1), v])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

function counterHex(n: number): string {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b.toString('hex');
}

/** Nothing of a staging outlives its process: only the store and its WAL beside it, an empty
 * temporary directory, and no table but the store's own. */
function nothingBehind(path: string, tmp: string): void {
  const dir = join(path, '..');
  const name = path.slice(dir.length + 1);
  const extra = readdirSync(dir).filter((f) => f !== name && f !== `${name}-wal` && join(dir, f) !== tmp);
  assert.deepEqual(extra, [], 'no file beside the store');
  assert.deepEqual(readdirSync(tmp), [], 'no temporary file left');
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma('locking_mode = EXCLUSIVE'); // as the store opens it: no -shm file is made

    const tables = db.prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
    assert.deepEqual(tables, ['meta', 'records', 'stats']);
  } finally {
    db.close();
  }
}

/** Opens the store after a kill and checks it holds exactly the state after a committed transaction. */
function verify(path: string, model: Model, atLeast: number): number {
  const store = SealedStore.open({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) });
  try {
    const n = decodeCounter(store.get(COUNTER_NS, COUNTER_ID));
    assert.ok(n === atLeast || n === atLeast + 1, `store is at commit ${n}, expected ${atLeast} or ${atLeast + 1}`);
    model.advanceTo(n);
    for (const ns of [DATA_NS, BULK_NS, COUNTER_NS]) {
      const actual = [...store.list(ns)].map(([id, v]): [string, string] => [id, Buffer.from(v).toString('hex')]);
      assert.deepEqual(actual, model.namespace(ns), `namespace ${ns} after commit ${n}`);
      assert.equal(store.count(ns), actual.length);
      const summary = store.summary(ns);
      assert.equal(summary.records, actual.length, `summary of ${ns} after commit ${n}`);
      assert.equal(summary.valueBytes, actual.reduce((sum, [, v]) => sum + v.length / 2, 0), `summary bytes of ${ns}`);
    }
    return n;
  } finally {
    store.close();
  }
}

void test('SIGKILL at random instants, staged replacements included, always leaves the last committed state', { timeout: 180_000 }, async (t) => {
  const seed = Number(process.env['COFFER_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed ${seed} (rerun with COFFER_CRASH_SEED=${seed})`);
  const rand = mulberry32(seed);
  const dir = mkdtempSync(join(tmpdir(), 'coffer-store-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  const path = join(dir, 'device.db');
  SealedStore.create({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) }).close();

  const model = new Model();
  let committed = 0;
  let killedBeforeReady = 0;
  let unreported = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Half the kills land anywhere from process start (so also during open and WAL recovery),
    // half while the writer is committing (and staging).
    const afterReady = round % 2 === 1;
    const killMs = afterReady ? rand() * 120 : rand() * 250;
    const r = await runWriter(path, tmp, killMs, afterReady);
    if (!r.ready) killedBeforeReady++;
    nothingBehind(path, tmp);
    const last = Math.max(committed, r.reported ?? 0);
    const n = verify(path, model, last);
    if (n === last + 1) unreported++;
    committed = n;
  }
  // The SQLite file itself is sound too (not only what the store reads of it).
  const db = new Database(path, { fileMustExist: true });
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
  const replacements = Math.floor(committed / REPLACE_EVERY);
  t.diagnostic(`${ROUNDS} kills, ${committed} transactions committed (${replacements} staged replacements), ${killedBeforeReady} kills before the writer was ready, ${unreported} commits that landed unreported`);
  assert.ok(committed >= ROUNDS, `writers made progress (${committed} commits)`);
});

const walBytes = (path: string): number => {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0; // no WAL: nothing written since the last checkpoint
  }
};

for (const [mode, killOn, where] of [
  ['hang-staging', 'staged', 'while staging (one batch committed to the staging area, the next one open)'],
  ['hang-adopted', 'adopted', 'inside the switch (the staged records adopted, the transaction not committed)'],
] as const) {
  void test(`a writer killed ${where} leaves the state before the replacement, and nothing of the staging`, { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-store-crash-'));
    try {
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp);
      const path = join(dir, 'device.db');
      const store = SealedStore.create({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) });
      const model = new Model();
      for (let n = 1; n < REPLACE_EVERY; n++) store.transaction((tx) => applyOps(tx, opsFor(n)));
      model.advanceTo(REPLACE_EVERY - 1);
      store.close();
      const fileBytes = statSync(path).size;
      const wal = walBytes(path);
      await runWriter(path, tmp, 0, false, { name: mode, killOn });
      if (mode === 'hang-staging') {
        // Staging wrote only the temporary database: the store's file and WAL are as they were.
        assert.equal(walBytes(path), wal, 'the WAL did not grow while staging');
        assert.equal(statSync(path).size, fileBytes);
      }
      nothingBehind(path, tmp);
      assert.equal(verify(path, model, REPLACE_EVERY - 1), REPLACE_EVERY - 1, 'the replacement did not land');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
