// The S3 archive (src/storage/archive_s3.ts) against a real S3 server: Ceph's RADOS Gateway as
// `.ci/start-rgw` starts it (docs/archive.md). The conformance suite runs on it unchanged, each
// archive under its own key prefix of this run. Then what only S3 shows: the server's own handling
// of `If-None-Match: *` (on PutObject, and on CompleteMultipartUpload, which the adapter avoids),
// a put whose answer is lost and is retried, prefixes that keep archives apart, and a server that
// is not there.
//
// COFFER_TEST_S3_ENDPOINT (default http://127.0.0.1:7480), COFFER_TEST_S3_ACCESS_KEY,
// COFFER_TEST_S3_SECRET_KEY, COFFER_TEST_S3_BUCKET and COFFER_TEST_S3_REGION name the server; the
// defaults are .ci/start-rgw's. If it does not answer, the tests are skipped with a message, unless
// COFFER_REQUIRE_S3=1, when that is a failure.

import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import {
  CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { openS3Archive, type S3ArchiveOptions } from '../../src/storage/archive_s3.js';
import { archiveConformance } from './archive_conformance.js';

const ENDPOINT = process.env.COFFER_TEST_S3_ENDPOINT ?? 'http://127.0.0.1:7480';
const BUCKET = process.env.COFFER_TEST_S3_BUCKET ?? 'coffer-archive-test';
const REGION = process.env.COFFER_TEST_S3_REGION ?? 'us-east-1';
const CREDENTIALS = {
  accessKeyId: process.env.COFFER_TEST_S3_ACCESS_KEY ?? 'COFFERTESTACCESSKEY0',
  secretAccessKey: process.env.COFFER_TEST_S3_SECRET_KEY ?? 'coffer-test-secret-key-0000000000000000',
};
/** Every object of this run lives under this prefix, so runs never collide. */
const RUN_PREFIX = `coffer-test/${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
/** Rounds of RACE_PUTS simultaneous puts on one fresh key each. */
const RACE_ROUNDS = 20;
const RACE_PUTS = 8;
/** How long the endpoint may take to answer the reachability probe. */
const PROBE_TIMEOUT_MS = 5_000;

let archives = 0;
const options = (extra: Partial<S3ArchiveOptions> = {}): S3ArchiveOptions => ({
  endpoint: ENDPOINT, region: REGION, bucket: BUCKET, credentials: CREDENTIALS, forcePathStyle: true,
  keyPrefix: `${RUN_PREFIX}/${++archives}/`, ...extra,
});
const rawClient = (): S3Client => new S3Client({
  endpoint: ENDPOINT, region: REGION, credentials: CREDENTIALS, forcePathStyle: true, maxAttempts: 1,
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
});

async function reachable(): Promise<boolean> {
  try {
    await fetch(ENDPOINT, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return true;
  } catch {
    return false;
  }
}

const up = await reachable();
const required = process.env.COFFER_REQUIRE_S3 === '1';
const skip = up ? false : `no S3 server answers at ${ENDPOINT} (start one with: sudo .ci/start-rgw)`;
if (!up) {
  if (required) {
    test('an S3 server answers (COFFER_REQUIRE_S3=1)', () => assert.fail(`${String(skip)}; COFFER_REQUIRE_S3=1 makes this a failure`));
  } else {
    test('the S3 archive conformance suite', { skip }, () => undefined);
  }
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}

async function text(client: S3Client, key: string): Promise<string> {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return (await out.Body?.transformToString()) ?? '';
}

if (up) archiveConformance('S3 (RADOS Gateway)', { open: (bounds) => openS3Archive(options(bounds)) });

void describe('S3 server behaviour the adapter relies on', { skip }, () => {
  void test('an unconditional PutObject replaces: write-once is the condition\'s doing', async () => {
    const s3 = rawClient();
    const key = `${RUN_PREFIX}/raw/plain`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'first' }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'second' }));
    assert.equal(await text(s3, key), 'second');
    s3.destroy();
  });

  void test('PutObject with If-None-Match: * on an existing key is refused with 412 and changes nothing', async () => {
    const s3 = rawClient();
    const key = `${RUN_PREFIX}/raw/conditional`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'first', IfNoneMatch: '*' }));
    await assert.rejects(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'second', IfNoneMatch: '*' })),
      (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412);
    assert.equal(await text(s3, key), 'first');
    s3.destroy();
  });

  void test('CompleteMultipartUpload with If-None-Match: * (why the adapter never uses multipart)', async (t) => {
    const s3 = rawClient();
    const key = `${RUN_PREFIX}/raw/multipart`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'first', IfNoneMatch: '*' }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const part = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: 'by multipart' }));
    const outcome = await s3.send(new CompleteMultipartUploadCommand({
      Bucket: BUCKET, Key: key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ ETag: part.ETag, PartNumber: 1 }] },
    })).then(() => 'accepted', (e: unknown) => `refused ${String((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode)}`);
    const held = await text(s3, key);
    // RGW 16 (Pacific) accepts and replaces the object; AWS S3 and newer servers refuse with 412.
    t.diagnostic(`CompleteMultipartUpload with If-None-Match: * on an existing key: ${outcome}; the key now holds ${JSON.stringify(held)}`);
    assert.ok((outcome === 'accepted' && held === 'by multipart') || (outcome === 'refused 412' && held === 'first'),
      'the server either honours the condition or ignores it; nothing else');
    s3.destroy();
  });
});

/**
 * A TCP proxy in front of the server that, when armed, lets one request through to the server and
 * then cuts the connection before its answer reaches the client: a lost answer, as a network fault
 * would make it. Counts the PUT requests it forwards.
 */
async function lossyProxy(): Promise<{ endpoint: string; armed: boolean; puts: number; close: () => Promise<void> }> {
  const target = new URL(ENDPOINT);
  const sockets = new Set<Socket>();
  const state = { endpoint: '', armed: false, puts: 0, close: async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    server.close();
    await once(server, 'close');
  } };
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 80), target.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (d: Buffer) => {
      if (d.subarray(0, 4).toString('latin1') === 'PUT ') state.puts++;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (state.armed) {
        state.armed = false;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    const end = (): void => { client.destroy(); upstream.destroy(); };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

void describe('S3 archive: what only S3 shows', { skip }, () => {
  void test('a put whose answer is lost is retried and succeeds on its own object; another body is still refused', async () => {
    const proxy = await lossyProxy();
    const a = await openS3Archive(options({ endpoint: proxy.endpoint }));
    try {
      const body = randomBytes(100_000);
      proxy.armed = true;
      const putsBefore = proxy.puts;
      assert.deepEqual(await a.put('c/lost-answer', body), { key: 'c/lost-answer', bytes: body.byteLength });
      assert.equal(proxy.puts - putsBefore, 2, 'the first PUT reached the server, its answer was cut, the second was refused with 412');
      assert.equal(proxy.armed, false);
      const back = await a.get('c/lost-answer');
      const chunks: Buffer[] = [];
      for await (const c of back) chunks.push(Buffer.from(c as Uint8Array));
      assert.deepEqual(Buffer.concat(chunks), body);

      proxy.armed = true;
      await rejectsWith(a.put('c/lost-answer', randomBytes(100_000)), 'COFFER_ARCHIVE_EXISTS');
      assert.equal(proxy.armed, false, 'the refusal of the first attempt was the answer lost');
    } finally {
      await a.close();
      await proxy.close();
    }
  });

  void test('open proves the server refuses a second conditional put, and leaves no probe object behind', async () => {
    const opts = options();
    const a = await openS3Archive(opts);
    await a.close();
    const s3 = rawClient();
    const left = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: opts.keyPrefix }));
    assert.deepEqual(left.Contents ?? [], []);
    s3.destroy();
  });

  void test('a server that ignores If-None-Match is refused at open', async () => {
    // No real server here ignores the condition on PutObject, so this one stands in: it accepts
    // every request, as such a server would, and keeps nothing.
    const requests: string[] = [];
    const server = createHttpServer((req, res) => {
      requests.push(`${req.method ?? ''} ${req.headers['if-none-match'] ?? ''}`);
      req.resume();
      req.on('end', () => res.writeHead(req.method === 'DELETE' ? 204 : 200, { etag: '"0"' }).end());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const e = await openS3Archive(options({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })).catch((x: unknown) => x);
      assert.ok(isCofferError(e, 'COFFER_ARCHIVE_UNAVAILABLE'), String(e));
      assert.equal(e.detail.reason, 'the server ignores If-None-Match on PutObject');
      assert.deepEqual(requests, ['HEAD ', 'PUT *', 'PUT *', 'DELETE ']);
    } finally {
      server.close();
    }
  });

  void test('concurrent puts on one key, round after round: exactly one wins each time and its bytes are stored', async () => {
    const a = await openS3Archive(options());
    try {
      for (let round = 0; round < RACE_ROUNDS; round++) {
        const bodies = Array.from({ length: RACE_PUTS }, () => randomBytes(1 + (round % 3) * 300_000));
        const results = await Promise.allSettled(bodies.map((b) => a.put(`race/${round}`, b)));
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(winners.length, 1, `round ${round}: one winner`);
        for (const r of results) if (r.status === 'rejected') assert.ok(isCofferError(r.reason, 'COFFER_ARCHIVE_EXISTS'), String(r.reason));
        const chunks: Buffer[] = [];
        for await (const c of await a.get(`race/${round}`)) chunks.push(Buffer.from(c as Uint8Array));
        assert.deepEqual(Buffer.concat(chunks), bodies[winners[0] ?? -1], `round ${round}: the winner's bytes`);
      }
    } finally {
      await a.close();
    }
  });

  void test('key prefixes keep archives in one bucket apart', async () => {
    const one = await openS3Archive(options());
    const two = await openS3Archive(options());
    try {
      await one.put('c/k', new TextEncoder().encode('one'));
      await two.put('c/k', new TextEncoder().encode('two'));
      assert.deepEqual(await one.list(''), [{ key: 'c/k', bytes: 3 }]);
      assert.deepEqual(await two.list(''), [{ key: 'c/k', bytes: 3 }]);
      await one.delete('c/k');
      assert.deepEqual(await two.head('c/k'), { key: 'c/k', bytes: 3 });
    } finally {
      await one.close();
      await two.close();
    }
  });

  void test('a bucket that does not exist, wrong keys or a closed port make the archive unavailable', async () => {
    await rejectsWith(openS3Archive(options({ bucket: `coffer-missing-${randomBytes(4).toString('hex')}` })), 'COFFER_ARCHIVE_UNAVAILABLE');
    await rejectsWith(openS3Archive(options({ credentials: { ...CREDENTIALS, secretAccessKey: 'wrong-secret-key-000000000000000000000000' } })), 'COFFER_ARCHIVE_UNAVAILABLE');
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    await rejectsWith(openS3Archive(options({ endpoint: `http://127.0.0.1:${port}` })), 'COFFER_ARCHIVE_UNAVAILABLE');
  });

  void test('the error of an unreachable archive does not carry the secret key', async () => {
    const secret = 'secret-that-must-not-leak-0000000000000000';
    const e = await openS3Archive(options({ credentials: { ...CREDENTIALS, secretAccessKey: secret } })).catch((x: unknown) => x);
    assert.ok(isCofferError(e, 'COFFER_ARCHIVE_UNAVAILABLE'));
    assert.ok(!JSON.stringify(e).includes(secret) && !e.message.includes(secret));
  });
});
