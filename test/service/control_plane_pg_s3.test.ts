// The control plane's lifecycle (control_plane_lifecycle.ts) on the replicated choices: PostgreSQL
// metadata (the real server, a schema of its own) and an S3 archive (Ceph's RADOS Gateway that
// .ci/start-rgw starts). The secret search reads every row of the schema's tables as text and every
// object under the archive's prefix. Without the S3 server the test is skipped, unless
// COFFER_REQUIRE_S3=1 (as in CI), when that is a failure; PostgreSQL must be up (.ci/start-postgres).

import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openS3Archive } from '../../src/storage/archive_s3.js';
import type { Archive } from '../../src/storage/archive_port.js';
import { PostgresMetadataStore } from '../../src/storage/metadata_postgres.js';
import { lifecycle } from './control_plane_lifecycle.js';
import { POSTGRES_URL } from '../storage/postgres_support.js';

const PG_URL = POSTGRES_URL;
const S3 = {
  endpoint: process.env['COFFER_TEST_S3_ENDPOINT'] ?? 'http://127.0.0.1:7480',
  bucket: process.env['COFFER_TEST_S3_BUCKET'] ?? 'coffer-archive-test',
  region: process.env['COFFER_TEST_S3_REGION'] ?? 'us-east-1',
  credentials: {
    accessKeyId: process.env['COFFER_TEST_S3_ACCESS_KEY'] ?? 'COFFERTESTACCESSKEY0',
    secretAccessKey: process.env['COFFER_TEST_S3_SECRET_KEY'] ?? 'coffer-test-secret-key-0000000000000000',
  },
};
const RUN = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
const SCHEMA = `coffer_cp_${RUN}`;
const PREFIX = `coffer-test/control-plane-${RUN}/`;

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}

async function s3Reachable(): Promise<boolean> {
  try {
    const res = await fetch(S3.endpoint, { signal: AbortSignal.timeout(5_000) });
    return res.status > 0;
  } catch {
    return false;
  }
}

if (!(await s3Reachable()) && process.env['COFFER_REQUIRE_S3'] !== '1') {
  test('PostgreSQL and S3: the control plane lifecycle', { skip: `no S3 server at ${S3.endpoint} (run .ci/start-rgw)` }, () => undefined);
} else {
  lifecycle({
    name: 'PostgreSQL and S3',
    openMetadata: () => PostgresMetadataStore.open({ url: PG_URL, schema: SCHEMA }),
    openArchive: () => openS3Archive({ ...S3, forcePathStyle: true, keyPrefix: PREFIX }),
    tamper: async (archive: Archive, key: string) => {
      // The archive never overwrites: whoever tampers removes the object and puts another.
      const blob = Buffer.from(await text(await archive.get(key)), 'latin1');
      blob[blob.length - 200] = (blob[blob.length - 200] as number) ^ 1;
      await archive.delete(key);
      await archive.put(key, new Uint8Array(blob));
    },
    contents: async (archive: Archive) => {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        const tables = await client.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [SCHEMA]);
        const rows: string[] = [];
        for (const { table_name: t } of tables.rows) {
          const r = await client.query<{ row: string }>(`SELECT t::text AS row FROM "${SCHEMA}"."${t}" t`);
          rows.push(...r.rows.map((x) => x.row));
        }
        const objects: string[] = [];
        for (const o of await archive.list('')) objects.push(await text(await archive.get(o.key)));
        return [...rows, ...objects].join('\n');
      } finally {
        await client.end();
      }
    },
    cleanup: async () => {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`).finally(() => client.end());
    },
  });
}
