// "A crash at any instant leaves the last committed state" (docs/architecture.md §4), shown by killing a
// writer process (store_crash_writer.ts) with SIGKILL at seeded random moments, many times, and
// reopening the store after each kill. Each time the store must open, every record must decrypt,
// and the contents must be exactly the state after committed transaction N, where N is the last
// commit the writer reported or the one after it (its commit returned, its report did not get
// out). The next writer continues from that state. Seed: COFFER_CRASH_SEED, else random (printed).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { SealedStore } from '../../../src/hsm/store/sealed_store.js';
import {
  COUNTER_ID,
  COUNTER_NS,
  CRASH_STORAGE_KEY,
  DATA_NS,
  decodeCounter,
  mulberry32,
  opsFor,
} from './store_crash_writer.js';

const WRITER = fileURLToPath(new URL('./store_crash_writer.js', import.meta.url));
const ROUNDS = 40;

interface Round {
  /** Last "commit n" line the writer printed, or undefined if none. */
  readonly reported: number | undefined;
  readonly ready: boolean;
}

/** Spawns the writer and SIGKILLs it `killMs` after spawn, or after it is ready if `afterReady`. */
function runWriter(path: string, killMs: number, afterReady: boolean): Promise<Round> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, COFFER_CRASH_STORE: path };
    delete env['NODE_TEST_CONTEXT']; // the writer is a plain process, not a test file
    const child = spawn(process.execPath, [WRITER], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let reported: number | undefined;
    let ready = false;
    let pending = '';
    let stderr = '';
    const kill = (): void => void setTimeout(() => child.kill('SIGKILL'), killMs);
    if (!afterReady) kill();
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'commit') reported = Number(n);
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
      for (const op of opsFor(this.n)) {
        const key = `${op.ns}/${op.id}`;
        if (op.put) this.records.set(key, Buffer.from(op.value).toString('hex'));
        else this.records.delete(key);
      }
    }
  }
  namespace(ns: string): [string, string][] {
    return [...this.records]
      .filter(([k]) => k.startsWith(`${ns}/`))
      .map(([k, v]): [string, string] => [k.slice(ns.length + 1), v])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

/** Opens the store after a kill and checks it holds exactly the state after a committed transaction. */
function verify(path: string, model: Model, atLeast: number): number {
  const store = SealedStore.open({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) });
  try {
    const n = decodeCounter(store.get(COUNTER_NS, COUNTER_ID));
    assert.ok(n === atLeast || n === atLeast + 1, `store is at commit ${n}, expected ${atLeast} or ${atLeast + 1}`);
    model.advanceTo(n);
    for (const ns of [DATA_NS, COUNTER_NS]) {
      const actual = [...store.list(ns)].map(([id, v]): [string, string] => [id, Buffer.from(v).toString('hex')]);
      assert.deepEqual(actual, model.namespace(ns), `namespace ${ns} after commit ${n}`);
      assert.equal(store.count(ns), actual.length);
    }
    return n;
  } finally {
    store.close();
  }
}

void test('SIGKILL at random instants always leaves the last committed state', { timeout: 120_000 }, async (t) => {
  const seed = Number(process.env['COFFER_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed ${seed} (rerun with COFFER_CRASH_SEED=${seed})`);
  const rand = mulberry32(seed);
  const dir = mkdtempSync(join(tmpdir(), 'coffer-store-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'device.db');
  SealedStore.create({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) }).close();

  const model = new Model();
  let committed = 0;
  let killedBeforeReady = 0;
  let unreported = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Half the kills land anywhere from process start (so also during open and WAL recovery),
    // half while the writer is committing.
    const afterReady = round % 2 === 1;
    const killMs = afterReady ? rand() * 120 : rand() * 250;
    const r = await runWriter(path, killMs, afterReady);
    if (!r.ready) killedBeforeReady++;
    const last = Math.max(committed, r.reported ?? 0);
    const n = verify(path, model, last);
    if (n === last + 1) unreported++;
    committed = n;
  }
  // The SQLite file itself is sound too (not only what the store reads of it).
  const db = new Database(path, { fileMustExist: true });
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
  t.diagnostic(`${ROUNDS} kills, ${committed} transactions committed, ${killedBeforeReady} kills before the writer was ready, ${unreported} commits that landed unreported`);
  assert.ok(committed >= ROUNDS, `writers made progress (${committed} commits)`);
});
