// The SQLite metadata store (src/storage/metadata_sqlite.ts): the conformance suite on a file and in
// memory, then what only this adapter has — the file's pragmas and schema marker, refusal of a newer
// schema and of another application's file, and several processes sharing one file.

import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isCofferError } from '../../src/errors.js';
import { METADATA_SCHEMA_VERSION } from '../../src/storage/metadata_checks.js';
import type { MetadataStore } from '../../src/storage/metadata_port.js';
import { METADATA_SQLITE_APPLICATION_ID, SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { metadataConformance } from './metadata_conformance.js';
import { raceProcesses, StoreProcess } from './metadata_process.js';

const dir = mkdtempSync(join(tmpdir(), 'coffer-metadata-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = (): string => join(dir, `metadata-${++files}.sqlite`);

const paths = new WeakMap<MetadataStore, string>();
metadataConformance('SQLite file', {
  open: () => {
    const path = freshPath();
    const store = SqliteMetadataStore.open({ path });
    paths.set(store, path);
    return Promise.resolve(store);
  },
  reopen: async (store) => {
    const path = paths.get(store)!;
    await store.close();
    const again = SqliteMetadataStore.open({ path });
    paths.set(again, path);
    return again;
  },
});

metadataConformance('SQLite :memory:', { open: () => Promise.resolve(SqliteMetadataStore.open({ path: ':memory:' })) });

const refusedOpen = (path: string, code: string, what: string): void =>
  assert.throws(() => SqliteMetadataStore.open({ path }), (e: unknown) => isCofferError(e) && e.code === code, what);

void describe('SQLite metadata file', () => {
  void test('is created 0600, in WAL mode, marked with its application id and schema version', async () => {
    const path = freshPath();
    const store = SqliteMetadataStore.open({ path });
    await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '{}' }]);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(store.settings(), { journalMode: 'wal', synchronous: 2 }, 'WAL, synchronous=FULL on the connection that writes');
    const raw = new Database(path, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(raw.pragma('application_id', { simple: true }), METADATA_SQLITE_APPLICATION_ID);
      assert.equal(raw.pragma('user_version', { simple: true }), METADATA_SCHEMA_VERSION);
      // The commit is visible to another connection: it is in the file (WAL), not in a cache.
      assert.deepEqual(raw.prepare('SELECT collection, id, version, body FROM documents').all(), [{ collection: 'clusters', id: 'cluster-a', version: 1, body: '{}' }]);
    } finally {
      raw.close();
    }
    await store.close();
  });

  void test('a newer schema version is refused with COFFER_METADATA_SCHEMA_UNSUPPORTED and left alone', async () => {
    const path = freshPath();
    await SqliteMetadataStore.open({ path }).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${METADATA_SCHEMA_VERSION + 1}`);
    raw.close();
    const before = readFileSync(path);
    assert.throws(
      () => SqliteMetadataStore.open({ path }),
      (e: unknown) => isCofferError(e, 'COFFER_METADATA_SCHEMA_UNSUPPORTED') && e.detail['version'] === METADATA_SCHEMA_VERSION + 1 && e.detail['supported'] === METADATA_SCHEMA_VERSION,
    );
    assert.ok(readFileSync(path).equals(before), 'the newer file is not touched');
  });

  void test('another application\'s file is COFFER_FORMAT_BAD_MAGIC and left alone', () => {
    const text = join(dir, 'not-sqlite.txt');
    writeFileSync(text, 'this is not a database, it is a text file that is long enough to have a header'.repeat(4));
    refusedOpen(text, 'COFFER_FORMAT_BAD_MAGIC', 'a text file');

    const other = freshPath();
    const raw = new Database(other);
    raw.exec("CREATE TABLE documents (x TEXT); INSERT INTO documents VALUES ('theirs')");
    raw.close();
    refusedOpen(other, 'COFFER_FORMAT_BAD_MAGIC', 'an SQLite file with tables of its own');
    const marked = freshPath();
    const raw2 = new Database(marked);
    raw2.pragma('application_id = 1234');
    raw2.close();
    refusedOpen(marked, 'COFFER_FORMAT_BAD_MAGIC', 'an SQLite file with another application id');
    const check = new Database(other, { readonly: true });
    assert.deepEqual(check.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all(), ['documents']);
    assert.deepEqual(check.prepare('SELECT x FROM documents').pluck().all(), ['theirs']);
    check.close();
  });

  void test('a file that cannot be created is COFFER_METADATA_UNAVAILABLE', () => {
    refusedOpen(join(dir, 'no-such-directory', 'metadata.sqlite'), 'COFFER_METADATA_UNAVAILABLE', 'missing directory');
  });

  void test('a write lock held past the busy wait is COFFER_METADATA_UNAVAILABLE, nothing applied; reads go on', async () => {
    const path = freshPath();
    const store = SqliteMetadataStore.open({ path, busyTimeoutMs: 50 });
    await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '"one"' }]);
    const other = new Database(path);
    try {
      other.exec('BEGIN IMMEDIATE');
      await assert.rejects(store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 1, body: '"two"' }]), (e: unknown) =>
        isCofferError(e, 'COFFER_METADATA_UNAVAILABLE') && String(e.detail['reason']).startsWith('SQLITE_BUSY'),
      );
      await assert.rejects(store.appendJournal('cluster-a', 1, Uint8Array.of(1)), (e: unknown) => isCofferError(e, 'COFFER_METADATA_UNAVAILABLE'));
      assert.equal((await store.get('clusters', 'cluster-a'))?.body, '"one"', 'WAL readers are not blocked by the writer');
      other.exec('ROLLBACK');
      assert.deepEqual(await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 1, body: '"two"' }]), [2]);
      assert.equal(await store.journalHead('cluster-a'), 0);
    } finally {
      other.close();
      await store.close();
    }
  });

  void test('two connections on one file see each other\'s commits and cannot both win a compare-and-set', async () => {
    const path = freshPath();
    const a = SqliteMetadataStore.open({ path });
    const b = SqliteMetadataStore.open({ path });
    try {
      await a.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '"a"' }]);
      assert.equal((await b.get('clusters', 'cluster-a'))?.body, '"a"');
      await b.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 1, body: '"b"' }]);
      await assert.rejects(a.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 1, body: '"late"' }]), (e: unknown) => isCofferError(e, 'COFFER_METADATA_CONFLICT'));
      assert.equal((await a.get('clusters', 'cluster-a'))?.body, '"b"');
      await b.appendJournal('cluster-a', 1, Uint8Array.of(1));
      await assert.rejects(a.appendJournal('cluster-a', 1, Uint8Array.of(2)), (e: unknown) => isCofferError(e, 'COFFER_JOURNAL_CONFLICT'));
      assert.equal(await a.journalHead('cluster-a'), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  void test('processes on one file: each sees the others\' commits, and every race has exactly one winner', async (t) => {
    const path = freshPath();
    const parent = SqliteMetadataStore.open({ path });
    const children = await Promise.all([0, 1, 2].map(() => StoreProcess.start({ adapter: 'sqlite', path })));
    try {
      // Visibility: a commit in one process is read by another, and the next write there builds on it.
      await parent.commit([{ collection: 'clusters', id: 'seen', parent: null, expectedVersion: 0, body: '"parent"' }]);
      assert.deepEqual(await children[0]!.call({ op: 'get', collection: 'clusters', id: 'seen' }), {
        ok: true,
        value: { collection: 'clusters', id: 'seen', parent: null, version: 1, body: '"parent"' },
      });
      assert.deepEqual(await children[1]!.call({ op: 'commit', writes: [{ collection: 'clusters', id: 'seen', parent: null, expectedVersion: 1, body: '"child 1"' }] }), { ok: true, value: [2] });
      assert.equal((await children[2]!.call({ op: 'get', collection: 'clusters', id: 'seen' })).ok, true);
      assert.deepEqual(await children[2]!.call({ op: 'commit', writes: [{ collection: 'clusters', id: 'seen', parent: null, expectedVersion: 1, body: '"stale"' }] }), { ok: false, code: 'COFFER_METADATA_CONFLICT' });
      assert.equal((await parent.get('clusters', 'seen'))?.body, '"child 1"');
      const wins = await raceProcesses(parent, children, 12);
      assert.equal(wins.reduce((x, y) => x + y, 0), 12);
      t.diagnostic(`journal races won per process: ${wins.join(', ')}`);
    } finally {
      await Promise.all(children.map((c) => c.stop()));
      await parent.close();
    }
  });
});
