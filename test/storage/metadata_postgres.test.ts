// The PostgreSQL metadata store (src/storage/metadata_postgres.ts) against a real server: the
// conformance suite, each test in a schema of its own (dropped afterwards), then what only this
// adapter has — schema creation and refusal, connection failures that never show the password, and
// several processes racing for the same lease, journal seq and document version.
//
// The server: COFFER_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test (start it with
// .ci/start-postgres). If it cannot be reached these tests fail, saying so; they never skip.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { inspect } from 'node:util';
import pg from 'pg';
import { isCofferError } from '../../src/errors.js';
import { METADATA_SCHEMA_VERSION } from '../../src/storage/metadata_checks.js';
import { PostgresMetadataStore } from '../../src/storage/metadata_postgres.js';
import type { MetadataStore } from '../../src/storage/metadata_port.js';
import { metadataConformance } from './metadata_conformance.js';
import { raceProcesses, StoreProcess } from './metadata_process.js';
import { POSTGRES_URL, requirePostgres } from './postgres_support.js';

const URL_TEXT = POSTGRES_URL;
const admin = new pg.Pool({ connectionString: URL_TEXT, max: 2, connectionTimeoutMillis: 10_000 });
admin.on('error', () => undefined);
const schemas: string[] = [];
/** A schema name no other run or test uses. */
const freshSchema = (): string => {
  const name = `coffer_test_${process.pid}_${schemas.length}_${Math.floor(Math.random() * 1e9)}`;
  schemas.push(name);
  return name;
};

before(async () => {
  await requirePostgres(admin, 'These tests need');
});

after(async () => {
  try {
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => undefined);
  } finally {
    await admin.end();
  }
});

const schemaOf = new WeakMap<MetadataStore, string>();
metadataConformance('PostgreSQL', {
  open: async () => {
    const schema = freshSchema();
    const store = await PostgresMetadataStore.open({ url: URL_TEXT, schema });
    schemaOf.set(store, schema);
    return store;
  },
  reopen: async (store) => {
    const schema = schemaOf.get(store)!;
    await store.close();
    const again = await PostgresMetadataStore.open({ url: URL_TEXT, schema });
    schemaOf.set(again, schema);
    return again;
  },
});

/** Where the URL `u` points, with `password` put in as its password. */
function withPassword(u: string, password: string, port?: number): string {
  const url = new URL(u);
  url.password = password;
  if (port !== undefined) url.port = String(port);
  return url.toString();
}

/** Everything an error could show: message, stack, JSON, detail and causes to any depth. */
const everything = (e: unknown): string => `${String(e)}\n${(e as Error).stack ?? ''}\n${JSON.stringify(e)}\n${inspect(e, { depth: Infinity, showHidden: true })}`;

void describe('PostgreSQL metadata schema', () => {
  void test('tables are created in the configured schema, marked with the schema version', async () => {
    const schema = freshSchema();
    const store = await PostgresMetadataStore.open({ url: URL_TEXT, schema });
    try {
      assert.equal(store.schema, schema);
      const { rows } = await admin.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename', [schema]);
      assert.deepEqual(rows.map((r) => r.tablename), ['coffer_schema', 'documents', 'journal', 'journal_heads', 'leases']);
      assert.deepEqual((await admin.query(`SELECT version FROM "${schema}".coffer_schema`)).rows, [{ version: METADATA_SCHEMA_VERSION }]);
      await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '{"a":1}' }]);
      assert.deepEqual((await admin.query(`SELECT collection, id, version, body FROM "${schema}".documents`)).rows, [{ collection: 'clusters', id: 'cluster-a', version: '1', body: '{"a":1}' }]);
    } finally {
      await store.close();
    }
  });

  void test('processes opening a new schema at once create it once, and all can use it', async () => {
    const schema = freshSchema();
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresMetadataStore.open({ url: URL_TEXT, schema, connections: 2 })));
    try {
      const results = await Promise.allSettled(stores.map((s, i) => s.commit([{ collection: 'service', id: 'first', parent: null, expectedVersion: 0, body: `${i}` }])));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.equal((await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".coffer_schema`)).rows[0]?.n, 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  void test('a newer schema version is refused with COFFER_METADATA_SCHEMA_UNSUPPORTED and left alone', async () => {
    const schema = freshSchema();
    const store = await PostgresMetadataStore.open({ url: URL_TEXT, schema });
    await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '{}' }]);
    await store.close();
    await admin.query(`UPDATE "${schema}".coffer_schema SET version = $1`, [METADATA_SCHEMA_VERSION + 1]);
    await assert.rejects(PostgresMetadataStore.open({ url: URL_TEXT, schema }), (e: unknown) =>
      isCofferError(e, 'COFFER_METADATA_SCHEMA_UNSUPPORTED') && e.detail['version'] === METADATA_SCHEMA_VERSION + 1 && e.detail['supported'] === METADATA_SCHEMA_VERSION,
    );
    assert.deepEqual((await admin.query(`SELECT version FROM "${schema}".coffer_schema`)).rows, [{ version: METADATA_SCHEMA_VERSION + 1 }]);
    assert.equal((await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".documents`)).rows[0]?.n, 1);
  });

  void test('a schema holding another application\'s tables of the same names is COFFER_FORMAT_BAD_MAGIC and left alone', async () => {
    const schema = freshSchema();
    await admin.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".documents (x text); INSERT INTO "${schema}".documents VALUES ('theirs')`);
    await assert.rejects(PostgresMetadataStore.open({ url: URL_TEXT, schema }), (e: unknown) => isCofferError(e, 'COFFER_FORMAT_BAD_MAGIC'));
    const { rows } = await admin.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE schemaname = $1', [schema]);
    assert.deepEqual(rows.map((r) => r.tablename), ['documents'], 'the failed creation was rolled back');
    assert.deepEqual((await admin.query(`SELECT x FROM "${schema}".documents`)).rows, [{ x: 'theirs' }]);
  });

  void test('sessions carry the configured application_name', async () => {
    const applicationName = `coffer-test-name-${process.pid}`;
    const store = await PostgresMetadataStore.open({ url: URL_TEXT, schema: freshSchema(), applicationName });
    try {
      await store.get('clusters', 'cluster-a');
      const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
      assert.ok((rows[0]?.n ?? 0) >= 1);
    } finally {
      await store.close();
    }
    await assert.rejects(PostgresMetadataStore.open({ url: URL_TEXT, schema: freshSchema(), applicationName: 'x'.repeat(64) }), (e: unknown) => isCofferError(e, 'COFFER_METADATA_INVALID'));
  });

  void test('a schema name that is not a plain lower-case identifier is COFFER_METADATA_INVALID', async () => {
    for (const schema of ['', 'Coffer', 'a b', 'x"; DROP SCHEMA public; --', '1abc', 'a'.repeat(64)]) {
      await assert.rejects(PostgresMetadataStore.open({ url: URL_TEXT, schema }), (e: unknown) => isCofferError(e, 'COFFER_METADATA_INVALID'), schema);
    }
  });
});

void describe('PostgreSQL connection failures', () => {
  const password = 'pw-Sentinel-7f3a9c';

  void test('nothing listening: COFFER_METADATA_UNAVAILABLE, and the password is nowhere in the error', async () => {
    // Port 1 on the loopback: nothing listens there, the connection is refused at once.
    const url = withPassword(URL_TEXT, password, 1);
    const e = await PostgresMetadataStore.open({ url, schema: freshSchema() }).then(
      () => assert.fail('opened a store on a closed port'),
      (err: unknown) => err,
    );
    assert.ok(isCofferError(e, 'COFFER_METADATA_UNAVAILABLE'), everything(e));
    assert.equal(e.detail['reason'], 'ECONNREFUSED');
    assert.ok(!everything(e).includes(password), 'the password does not appear');
  });

  void test('a database that does not exist, and a malformed URL: COFFER_METADATA_UNAVAILABLE without the password', async () => {
    const missing = new URL(withPassword(URL_TEXT, password));
    missing.pathname = '/coffer_no_such_database';
    const e1 = await PostgresMetadataStore.open({ url: missing.toString(), schema: freshSchema() }).then(() => assert.fail('opened'), (err: unknown) => err);
    assert.ok(isCofferError(e1, 'COFFER_METADATA_UNAVAILABLE'), everything(e1));
    assert.equal(e1.detail['reason'], 'sqlstate 3D000');
    assert.ok(!everything(e1).includes(password));
    const e2 = await PostgresMetadataStore.open({ url: `postgres://postgres:${password}@[not a host/test`, schema: freshSchema() }).then(() => assert.fail('opened'), (err: unknown) => err);
    assert.ok(isCofferError(e2, 'COFFER_METADATA_UNAVAILABLE'), everything(e2));
    assert.ok(!everything(e2).includes(password));
  });

  void test('a server that goes away under an open store: COFFER_METADATA_UNAVAILABLE, then service resumes', async () => {
    const schema = freshSchema();
    // A name of its own, so that only this store's sessions are ended, not those of other tests.
    const applicationName = `coffer-test-${schema}`;
    const store = await PostgresMetadataStore.open({ url: URL_TEXT, schema, connections: 2, applicationName });
    try {
      await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '{}' }]);
      // End every session of this store (the server restarting, a failover), found by its application_name.
      const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
      assert.ok((killed.rowCount ?? 0) >= 1);
      // The pool notices a dropped idle connection either as the query fails or before it is used;
      // either way a call fails typed or succeeds on a new connection, never with a raw driver error.
      for (let i = 0; i < 3; i++) {
        try {
          await store.get('clusters', 'cluster-a');
        } catch (e) {
          assert.ok(isCofferError(e, 'COFFER_METADATA_UNAVAILABLE'), everything(e));
        }
      }
      assert.equal((await store.get('clusters', 'cluster-a'))?.version, 1);
    } finally {
      await store.close();
    }
  });

  void test('a session ended inside a commit: COFFER_METADATA_UNAVAILABLE, nothing applied, the store carries on', async () => {
    const schema = freshSchema();
    const applicationName = `coffer-test-${schema}`;
    const store = await PostgresMetadataStore.open({ url: URL_TEXT, schema, connections: 2, applicationName });
    const locker = await admin.connect();
    try {
      await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 0, body: '"one"' }]);
      // Hold the row, so the store's commit is inside its transaction, waiting, when its session ends.
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM "${schema}".documents WHERE id = 'cluster-a' FOR UPDATE`);
      const pending = store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 1, body: '"two"' }, { collection: 'hsms', id: 'hsm-a', parent: 'cluster-a', expectedVersion: 0, body: '{}' }]);
      const outcome = pending.then(() => 'committed', (e: unknown) => e);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const waiting = await admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [applicationName]);
        if ((waiting.rowCount ?? 0) > 0) {
          await admin.query('SELECT pg_terminate_backend($1)', [(waiting.rows[0] as { pid: number }).pid]);
          break;
        }
        assert.ok(Date.now() < deadline, 'the commit never waited on the lock');
        await new Promise((r) => setTimeout(r, 20));
      }
      const e = await outcome;
      assert.ok(isCofferError(e, 'COFFER_METADATA_UNAVAILABLE'), everything(e));
      await locker.query('ROLLBACK');
      assert.deepEqual(await store.get('clusters', 'cluster-a'), { collection: 'clusters', id: 'cluster-a', parent: null, version: 1, body: '"one"' });
      assert.equal(await store.get('hsms', 'hsm-a'), undefined);
      assert.deepEqual(await store.commit([{ collection: 'clusters', id: 'cluster-a', parent: null, expectedVersion: 1, body: '"two"' }]), [2]);
    } finally {
      locker.release();
      await store.close();
    }
  });
});

void describe('PostgreSQL across processes', () => {
  void test('four processes race for the same lease, journal seq and version: exactly one winner each time', async (t) => {
    const schema = freshSchema();
    const parent = await PostgresMetadataStore.open({ url: URL_TEXT, schema });
    const children = await Promise.all([0, 1, 2, 3].map(() => StoreProcess.start({ adapter: 'postgres', url: URL_TEXT, schema })));
    try {
      const wins = await raceProcesses(parent, children, 20);
      assert.equal(wins.reduce((x, y) => x + y, 0), 20);
      t.diagnostic(`journal races won per process: ${wins.join(', ')}`);
    } finally {
      await Promise.all(children.map((c) => c.stop()));
      await parent.close();
    }
  });
});
