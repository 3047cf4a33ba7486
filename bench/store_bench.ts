// Sealed store benchmark (docs/architecture.md §4, §8): a device with 100k key objects of ~300 bytes.
// Populate time; open time (open + key check) and the full decrypting scan a device does at start;
// a namespace summary (what sizes a backup) beside count(ns); a staged wholesale replacement of the
// 100k objects (what a restore writes: staged in batches, adopted in one transaction) beside
// populating them; and single-object insert and delete at 1k and at 100k objects, each the median
// of many one-object transactions. The 100k figures must stay within 2× of the 1k ones,
// which is what "a mutation costs O(record), not O(store)" means in practice.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SecretBytes } from '../src/crypto/secret_bytes.js';
import { SealedStore } from '../src/hsm/store/sealed_store.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';

const OBJECT_BYTES = 300;
const POPULATE_BATCH = 1000;
const SINGLE_OPS = 300;
const NS = 'objects';

const newId = (): string => randomBytes(8).toString('hex'); // a 64-bit handle, as hex
const timeMs = (fn: () => void): number => {
  const start = performance.now();
  fn();
  return performance.now() - start;
};

function populate(store: SealedStore, count: number): number {
  const value = randomBytes(OBJECT_BYTES);
  return timeMs(() => {
    for (let done = 0; done < count; done += POPULATE_BATCH) {
      store.transaction((tx) => {
        for (let i = 0; i < Math.min(POPULATE_BATCH, count - done); i++) tx.put(NS, newId(), value);
      });
    }
  });
}

/** Stages `count` objects, in id order as a restore does (a backup body is sorted), and adopts them
 * in one transaction in place of the namespace: ms. */
function stagedReplacement(store: SealedStore, count: number): number {
  const value = randomBytes(OBJECT_BYTES);
  const ids = Array.from({ length: count }, newId).sort();
  return timeMs(() => {
    const staging = store.stage();
    try {
      for (const id of ids) staging.put(NS, id, value);
      store.transaction((tx) => tx.adopt(staging));
    } finally {
      staging.discard();
    }
  });
}

/** Median µs of one-object insert transactions and of one-object delete transactions. */
function singleOps(store: SealedStore): { insertUs: number; deleteUs: number } {
  const value = randomBytes(OBJECT_BYTES);
  const inserts: number[] = [];
  const deletes: number[] = [];
  for (let i = 0; i < 50; i++) {
    const id = newId(); // warm-up: JIT, statement caches, WAL file growth
    store.transaction((tx) => tx.put(NS, id, value));
    store.transaction((tx) => tx.delete(NS, id));
  }
  for (let i = 0; i < SINGLE_OPS; i++) {
    const id = newId();
    inserts.push(timeMs(() => store.transaction((tx) => tx.put(NS, id, value))) * 1000);
    deletes.push(timeMs(() => store.transaction((tx) => tx.delete(NS, id))) * 1000);
  }
  return { insertUs: median(inserts), deleteUs: median(deletes) };
}

/** The same insert on the same schema and durability, without sealing: the cost SQLite alone sets. */
function rawInsertUs(path: string, count: number): number {
  const db = new Database(path);
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE records (ns TEXT NOT NULL, id BLOB NOT NULL, v BLOB NOT NULL, PRIMARY KEY (ns, id)) WITHOUT ROWID');
    const put = db.prepare('INSERT OR REPLACE INTO records (ns, id, v) VALUES (?, ?, ?)');
    const value = randomBytes(OBJECT_BYTES + 39);
    db.transaction(() => {
      for (let i = 0; i < count; i++) put.run(NS, Buffer.from(newId(), 'utf16le'), value);
    })();
    const times: number[] = [];
    for (let i = 0; i < SINGLE_OPS; i++) {
      const id = Buffer.from(newId(), 'utf16le');
      times.push(timeMs(() => put.run(NS, id, value)) * 1000);
    }
    return median(times);
  } finally {
    db.close();
  }
}

// The store is synchronous by design; run() is async only to fit the bench runner's interface.
// eslint-disable-next-line @typescript-eslint/require-await
export async function run(): Promise<Section> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-store-bench-'));
  const storageKey = SecretBytes.random(32);
  try {
    const rows: Row[] = [];
    const small = SealedStore.create({ path: join(dir, 'small.db'), storageKey });
    populate(small, 1_000);
    const at1k = singleOps(small);
    small.close();
    const rawUs = rawInsertUs(join(dir, 'raw.db'), 1_000);

    const path = join(dir, 'large.db');
    let large = SealedStore.create({ path, storageKey });
    const populateMs = populate(large, 100_000);
    const at100k = singleOps(large);
    const countMs = median([0, 1, 2].map(() => timeMs(() => large.count(NS))));
    const summaryMs = median([0, 1, 2].map(() => timeMs(() => large.summary(NS))));
    large.close();
    const openMs = median(
      [0, 1, 2, 3, 4].map(() => {
        let s: SealedStore | undefined;
        const ms = timeMs(() => (s = SealedStore.open({ path, storageKey })));
        s?.close();
        return ms;
      }),
    );
    large = SealedStore.open({ path, storageKey });
    let scanned = 0;
    const scanMs = median(
      [0, 1, 2].map(() =>
        timeMs(() => {
          scanned = 0;
          for (const [, v] of large.list(NS)) scanned += v.length > 0 ? 1 : 0;
        }),
      ),
    );
    large.close();
    const normal = SealedStore.open({ path, storageKey, sync: 'normal' });
    const normalAt100k = singleOps(normal);
    normal.close();
    // Last: it replaces the 100k objects with 100k others.
    const replacing = SealedStore.open({ path, storageKey });
    const replaceMs = stagedReplacement(replacing, 100_000);
    const replaced = replacing.count(NS);
    replacing.close();

    rows.push({ name: 'populate 100k objects (300 B, 1k per transaction)', value: populateMs / 1000, unit: 's', note: `${Math.round(100_000 / (populateMs / 1000)).toLocaleString('en-US')} objects/s` });
    rows.push({ name: 'open 100k-object store (open + key check)', value: openMs, unit: 'ms' });
    rows.push({ name: 'full decrypting scan of 100k objects', value: scanMs, unit: 'ms', note: `${scanned} records` });
    rows.push({ name: 'count(ns) at 100k objects', value: countMs, unit: 'ms' });
    rows.push({ name: 'summary(ns) at 100k objects (what sizes a backup)', value: summaryMs, unit: 'ms', anchorName: 'count(ns)', anchorValue: countMs });
    rows.push({
      name: 'staged replacement of 100k objects (staged in id order, adopted in one transaction, sync=full)', value: replaceMs / 1000, unit: 's',
      anchorName: 'populate 100k, 1k per transaction', anchorValue: populateMs / 1000, note: `${replaced} objects after`,
    });
    rows.push({ name: 'insert one object @1k (sync=full)', value: at1k.insertUs, unit: 'µs', anchorName: 'raw SQLite insert @1k, no sealing', anchorValue: rawUs });
    rows.push({ name: 'insert one object @100k (sync=full)', value: at100k.insertUs, unit: 'µs', anchorName: 'same @1k', anchorValue: at1k.insertUs, target: '≤ 2× the 1k figure' });
    rows.push({ name: 'delete one object @1k (sync=full)', value: at1k.deleteUs, unit: 'µs' });
    rows.push({ name: 'delete one object @100k (sync=full)', value: at100k.deleteUs, unit: 'µs', anchorName: 'same @1k', anchorValue: at1k.deleteUs, target: '≤ 2× the 1k figure' });
    rows.push({ name: 'insert one object @100k (sync=normal)', value: normalAt100k.insertUs, unit: 'µs', anchorName: 'sync=full @100k', anchorValue: at100k.insertUs });
    return {
      title: 'Sealed store',
      rows,
      notes: [
        'Single-object figures are medians of 300 one-object transactions (insert, then delete of the same id), random 64-bit hex ids.',
        'sync=full fsyncs the WAL at every commit (survives power loss); sync=normal only survives a process crash.',
      ],
    };
  } finally {
    storageKey.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const section = await run();
  console.log(renderMarkdown([section], `# Sealed store bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
