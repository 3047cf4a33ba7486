// Opening the configured metadata store (src/storage/metadata_open.ts): the location picks the adapter,
// and the form for logs never shows a password. The PostgreSQL case uses the real server
// (COFFER_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test) and fails if it is down.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { isCofferError } from '../../src/errors.js';
import { metadataLocationForLog, openMetadataStore } from '../../src/storage/metadata_open.js';
import { PostgresMetadataStore } from '../../src/storage/metadata_postgres.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { POSTGRES_URL } from './postgres_support.js';

const URL_TEXT = POSTGRES_URL;
const dir = mkdtempSync(join(tmpdir(), 'coffer-metadata-open-'));
after(() => rmSync(dir, { recursive: true, force: true }));

void test('a path opens an SQLite file, :memory: an in-memory store', async () => {
  const path = join(dir, 'service.sqlite');
  const file = await openMetadataStore(path);
  assert.ok(file instanceof SqliteMetadataStore);
  await file.commit([{ collection: 'service', id: 'settings', parent: null, expectedVersion: 0, body: '{}' }]);
  await file.close();
  const again = await openMetadataStore(path);
  assert.equal((await again.get('service', 'settings'))?.version, 1);
  await again.close();
  const memory = await openMetadataStore(':memory:');
  assert.ok(memory instanceof SqliteMetadataStore);
  assert.deepEqual(memory.settings().synchronous, 2);
  await memory.close();
  await assert.rejects(openMetadataStore(path, { schema: 'coffer' }), (e: unknown) => isCofferError(e, 'COFFER_METADATA_INVALID'));
  await assert.rejects(openMetadataStore(''), (e: unknown) => isCofferError(e, 'COFFER_METADATA_INVALID'));
});

void test('a postgres:// URL opens PostgreSQL in the schema given', async () => {
  const schema = `coffer_open_test_${process.pid}`;
  const admin = new pg.Pool({ connectionString: URL_TEXT, max: 1 });
  try {
    const store = await openMetadataStore(URL_TEXT, { schema }).catch((e: unknown) => {
      throw new Error(`PostgreSQL is not reachable (${String(e)}): run .ci/start-postgres, or set COFFER_TEST_POSTGRES_URL`);
    });
    assert.ok(store instanceof PostgresMetadataStore);
    assert.equal(store.schema, schema);
    await store.close();
    const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1', [schema]);
    assert.equal(rows[0]?.n, 5);
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await admin.end();
  }
});

void test('the location for logs never shows a password', () => {
  assert.equal(metadataLocationForLog('/var/lib/coffer/metadata.sqlite'), '/var/lib/coffer/metadata.sqlite');
  assert.equal(metadataLocationForLog('postgres://coffer@db.internal:5432/coffer'), 'postgres://coffer@db.internal:5432/coffer');
  const shown = metadataLocationForLog('postgresql://coffer:Hunter2-secret@db.internal:5432/coffer?password=Other-secret&sslmode=require');
  assert.equal(shown, 'postgresql://coffer:redacted@db.internal:5432/coffer');
  assert.equal(metadataLocationForLog('postgres://coffer:Hunter2-secret@[bad'), 'postgres://(malformed URL)');
});
