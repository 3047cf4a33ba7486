// A metadata store in another node process, for the tests that race several processes on one
// database (metadata_sqlite.test.ts, metadata_postgres.test.ts). The parent side, `StoreProcess`,
// spawns this file and sends it one JSON command per line; the child opens the store named by
// COFFER_METADATA_CHILD and answers each command with one JSON line: the result, or the error code.
//
// Run without COFFER_METADATA_CHILD (as `node --test dist/test/` does with every file under test/),
// it does nothing and exits 0.

import * as assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isCofferError } from '../../src/errors.js';
import type { DocumentWrite, MetadataStore } from '../../src/storage/metadata_port.js';
import { PostgresMetadataStore } from '../../src/storage/metadata_postgres.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';

export type StoreConfig = { readonly adapter: 'sqlite'; readonly path: string } | { readonly adapter: 'postgres'; readonly url: string; readonly schema: string };

export type Command =
  | { readonly op: 'get'; readonly collection: 'clusters'; readonly id: string }
  | { readonly op: 'commit'; readonly writes: DocumentWrite[] }
  | { readonly op: 'append'; readonly clusterId: string; readonly seq: number; readonly entryHex: string }
  | { readonly op: 'lease'; readonly name: string; readonly holder: string; readonly ttlMs: number; readonly nowMs: number };

export type Reply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly code: string };

const CHILD = fileURLToPath(import.meta.url);
/** How long a child may take to answer one command: generous, a busy machine must not fail a test. */
const REPLY_TIMEOUT_MS = 120_000;

/** The parent's handle on one child process. */
export class StoreProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiting: ((line: string) => void)[] = [];
  #stderr = '';
  #exited: string | undefined;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      this.#stderr += d;
    });
    createInterface({ input: child.stdout }).on('line', (line) => this.#waiting.shift()?.(line));
    child.on('exit', (code, signal) => {
      this.#exited = `exited ${code ?? signal}: ${this.#stderr}`;
      for (const w of this.#waiting.splice(0)) w(JSON.stringify({ ok: false, code: this.#exited }));
    });
  }

  /** Spawns a child and waits until its store is open. */
  static async start(config: StoreConfig): Promise<StoreProcess> {
    const env: NodeJS.ProcessEnv = { ...process.env, COFFER_METADATA_CHILD: JSON.stringify(config) };
    delete env['NODE_TEST_CONTEXT']; // a plain process, not a test file
    const p = new StoreProcess(spawn(process.execPath, [CHILD], { env, stdio: ['pipe', 'pipe', 'pipe'] }));
    const ready = await p.#next();
    if (!ready.ok) throw new Error(`store process did not start: ${ready.code}`);
    return p;
  }

  /** Sends one command; resolves with the child's reply. */
  call(command: Command): Promise<Reply> {
    const reply = this.#next();
    this.#child.stdin.write(`${JSON.stringify(command)}\n`);
    return reply;
  }

  /** Closes the child's store and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.#exited !== undefined) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin.end();
    await exited;
  }

  #next(): Promise<Reply> {
    if (this.#exited !== undefined) return Promise.resolve({ ok: false, code: this.#exited });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`store process gave no answer in ${REPLY_TIMEOUT_MS} ms: ${this.#stderr}`)), REPLY_TIMEOUT_MS);
      this.#waiting.push((line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Reply);
      });
    });
  }
}

const hex = (text: string): string => Buffer.from(text, 'utf8').toString('hex');

/** The one reply of `replies` that succeeded (asserting there is exactly one), the others failing with `code`. */
function oneWinner(replies: Reply[], code: string, what: string): number {
  const won = replies.flatMap((r, i) => (r.ok ? [i] : []));
  assert.equal(won.length, 1, `${what}: exactly one process wins (${JSON.stringify(replies)})`);
  for (const r of replies) if (!r.ok) assert.equal(r.code, code, what);
  return won[0]!;
}

/**
 * `rounds` rounds in which every child races, at once, for the same lease, the same journal seq and
 * the same document version. Each time exactly one wins each race, every loser is told so with the
 * port's code, and `parent` (another connection) then reads exactly the winners' writes.
 * Returns how many times each child won a journal race.
 */
export async function raceProcesses(parent: MetadataStore, children: readonly StoreProcess[], rounds: number): Promise<number[]> {
  await parent.commit([{ collection: 'clusters', id: 'race', parent: null, expectedVersion: 0, body: '"start"' }]);
  const wins = children.map(() => 0);
  const entries: string[] = [];
  let body = '';
  for (let r = 1; r <= rounds; r++) {
    const leases = await Promise.all(children.map((c, i) => c.call({ op: 'lease', name: `lease-${r}`, holder: `proc-${i}`, ttlMs: 60_000, nowMs: 1_000 })));
    assert.ok(leases.every((l) => l.ok), JSON.stringify(leases));
    const holders = leases.map((l) => (l.ok ? (l.value as { holder: string }).holder : ''));
    assert.equal(new Set(holders).size, 1, `round ${r}: every process is told the same holder`);
    assert.equal(holders.filter((holder, i) => holder === `proc-${i}`).length, 1, `round ${r}: exactly one process holds the lease`);

    const appends = await Promise.all(children.map((c, i) => c.call({ op: 'append', clusterId: 'cluster-race', seq: r, entryHex: hex(`proc-${i} round ${r}`) })));
    const w = oneWinner(appends, 'COFFER_JOURNAL_CONFLICT', `round ${r} journal`);
    wins[w]!++;
    entries.push(`proc-${w} round ${r}`);

    const commits = await Promise.all(children.map((c, i) => c.call({ op: 'commit', writes: [{ collection: 'clusters', id: 'race', parent: null, expectedVersion: r, body: `"proc-${i} ${r}"` }] })));
    const cw = oneWinner(commits, 'COFFER_METADATA_CONFLICT', `round ${r} commit`);
    assert.deepEqual((commits[cw] as { value: unknown }).value, [r + 1]);
    body = `"proc-${cw} ${r}"`;
  }
  assert.equal(await parent.journalHead('cluster-race'), rounds);
  const read = await parent.readJournal('cluster-race', 1, rounds + 1);
  assert.deepEqual(read.map((e) => Buffer.from(e.entry).toString('utf8')), entries, 'the journal holds exactly the winners\' entries');
  assert.deepEqual(await parent.get('clusters', 'race'), { collection: 'clusters', id: 'race', parent: null, version: rounds + 1, body });
  for (let r = 1; r <= rounds; r++) {
    const lease = await parent.acquireLease(`lease-${r}`, 'parent', 1, 2_000);
    assert.match(lease.holder, /^proc-\d+$/, 'the parent sees the lease a child holds');
  }
  return wins;
}

async function run(store: MetadataStore, c: Command): Promise<unknown> {
  switch (c.op) {
    case 'get':
      return (await store.get(c.collection, c.id)) ?? null;
    case 'commit':
      return store.commit(c.writes);
    case 'append':
      await store.appendJournal(c.clusterId, c.seq, new Uint8Array(Buffer.from(c.entryHex, 'hex')));
      return null;
    case 'lease':
      return store.acquireLease(c.name, c.holder, c.ttlMs, c.nowMs);
  }
}

async function childMain(config: StoreConfig): Promise<void> {
  const store = config.adapter === 'sqlite' ? SqliteMetadataStore.open({ path: config.path }) : await PostgresMetadataStore.open({ url: config.url, schema: config.schema });
  const say = (reply: Reply): void => void process.stdout.write(`${JSON.stringify(reply)}\n`);
  say({ ok: true, value: 'ready' });
  // One command at a time, in order: the parent decides what runs concurrently (across processes).
  for await (const line of createInterface({ input: process.stdin })) {
    try {
      say({ ok: true, value: await run(store, JSON.parse(line) as Command) });
    } catch (e) {
      say({ ok: false, code: isCofferError(e) ? e.code : String(e) });
    }
  }
  await store.close();
}

const configText = process.env['COFFER_METADATA_CHILD'];
if (configText !== undefined && process.argv[1] === CHILD) {
  childMain(JSON.parse(configText) as StoreConfig).catch((e: unknown) => {
    process.stdout.write(`${JSON.stringify({ ok: false, code: isCofferError(e) ? e.code : String(e) })}\n`);
    process.exitCode = 1;
  });
}
