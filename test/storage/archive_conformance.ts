// The Archive conformance suite (CONTRIBUTING.md rule 6): the behaviours every adapter of
// src/storage/archive_port.ts must show. archive_fs.test.ts runs it on the filesystem adapter,
// archive_s3.test.ts on the S3 adapter against a real server. Not a test file itself: it only
// registers tests when called.

import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { ARCHIVE_KEY_CHARS_MAX } from '../../src/storage/archive_port.js';
import type { Archive } from '../../src/storage/archive_port.js';

/** The bounds every archive opened by a harness applies, small so the suite can reach them. */
export const CONFORMANCE_OBJECT_BYTES_MAX = 1024 * 1024;
export const CONFORMANCE_LIST_KEYS_MAX = 6;
/** Streamed bodies of several MiB need an archive opened with this larger bound. */
export const CONFORMANCE_LARGE_OBJECT_BYTES_MAX = 16 * 1024 * 1024;

export interface ArchiveHarness {
  /** A fresh, empty archive with these bounds (a new directory, or a new key prefix in a bucket). */
  open(bounds: { readonly objectBytesMax: number; readonly listKeysMax: number }): Promise<Archive>;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** A stream of `body` in chunks of uneven sizes, its length unknown to the reader. */
function chunked(body: Uint8Array, chunkBytes = 65_521): Readable {
  return Readable.from((function* () {
    for (let at = 0; at < body.byteLength; at += chunkBytes) yield body.subarray(at, Math.min(at + chunkBytes, body.byteLength));
  })(), { objectMode: false });
}

/** A stream that yields `before` bytes, then fails with `error`. */
function failing(before: number, error: Error): Readable {
  return Readable.from((async function* () {
    yield randomBytes(before);
    await Promise.resolve();
    throw error;
  })(), { objectMode: false });
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, what = ''): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)} ${what}`), `expected ${code} ${what}`);
}

const BOUNDS = { objectBytesMax: CONFORMANCE_OBJECT_BYTES_MAX, listKeysMax: CONFORMANCE_LIST_KEYS_MAX };

async function withArchive(h: ArchiveHarness, fn: (a: Archive) => Promise<void>, bounds = BOUNDS): Promise<void> {
  const archive = await h.open(bounds);
  try {
    await fn(archive);
  } finally {
    await archive.close();
  }
}

export function archiveConformance(name: string, h: ArchiveHarness): void {
  void describe(`Archive conformance: ${name}`, () => {
    roundTrips(h);
    writeOnce(h);
    failuresLeaveNothing(h);
    keys(h);
    headListDelete(h);
  });
}

function roundTrips(h: ArchiveHarness): void {
  void test('put and get are byte-exact: empty, small, bytes and streams', () =>
    withArchive(h, async (a) => {
      const small = randomBytes(1000);
      assert.deepEqual(await a.put('c/empty-bytes', new Uint8Array(0)), { key: 'c/empty-bytes', bytes: 0 });
      assert.deepEqual(await a.put('c/empty-stream', chunked(new Uint8Array(0))), { key: 'c/empty-stream', bytes: 0 });
      assert.deepEqual(await a.put('c/small', small), { key: 'c/small', bytes: 1000 });
      assert.deepEqual(await a.put('c/small-stream', chunked(small, 7)), { key: 'c/small-stream', bytes: 1000 });
      assert.equal((await readAll(await a.get('c/empty-bytes'))).byteLength, 0);
      assert.equal((await readAll(await a.get('c/empty-stream'))).byteLength, 0);
      assert.deepEqual(await readAll(await a.get('c/small')), small);
      assert.deepEqual(await readAll(await a.get('c/small-stream')), small);
    }));

  void test('several MiB from a stream of unknown length come back exactly', () =>
    withArchive(h, async (a) => {
      const body = randomBytes(5 * 1024 * 1024 + 12_345);
      assert.deepEqual(await a.put('cluster-a/backup-big', chunked(body)), { key: 'cluster-a/backup-big', bytes: body.byteLength });
      const back = await readAll(await a.get('cluster-a/backup-big'));
      assert.equal(back.byteLength, body.byteLength);
      assert.equal(sha256(back), sha256(body));
      assert.deepEqual(await a.head('cluster-a/backup-big'), { key: 'cluster-a/backup-big', bytes: body.byteLength });
    }, { objectBytesMax: CONFORMANCE_LARGE_OBJECT_BYTES_MAX, listKeysMax: CONFORMANCE_LIST_KEYS_MAX }));
}

function writeOnce(h: ArchiveHarness): void {
  void test('a second put on a key is refused and the first object stays intact', () =>
    withArchive(h, async (a) => {
      const first = randomBytes(4096);
      await a.put('c/b', first);
      await rejectsWith(a.put('c/b', text('second')), 'COFFER_ARCHIVE_EXISTS');
      await rejectsWith(a.put('c/b', chunked(randomBytes(10_000))), 'COFFER_ARCHIVE_EXISTS');
      await rejectsWith(a.put('c/b', new Uint8Array(0)), 'COFFER_ARCHIVE_EXISTS');
      assert.deepEqual(await readAll(await a.get('c/b')), first);
      assert.deepEqual(await a.list(''), [{ key: 'c/b', bytes: 4096 }]);
    }));

  void test('of concurrent puts on one key exactly one wins, and its bytes are stored', () =>
    withArchive(h, async (a) => {
      const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(64 * 1024 + i));
      const results = await Promise.allSettled(bodies.map((b, i) => a.put('c/race', i % 2 === 0 ? b : chunked(b))));
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(winners.length, 1, `exactly one winner, got ${winners.length}`);
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(isCofferError(r.reason, 'COFFER_ARCHIVE_EXISTS'), `loser refused as existing: ${String(r.reason)}`);
      }
      const winner = bodies[winners[0] ?? -1];
      assert.ok(winner !== undefined);
      assert.deepEqual(await readAll(await a.get('c/race')), winner);
    }));
}

function failuresLeaveNothing(h: ArchiveHarness): void {
  void test('a stream that fails midway fails the put with its error and leaves nothing', () =>
    withArchive(h, async (a) => {
      const broken = new Error('source failed');
      await assert.rejects(a.put('c/broken', failing(300_000, broken)), (e) => e === broken);
      assert.equal(await a.head('c/broken'), undefined);
      assert.deepEqual(await a.list(''), []);
      await rejectsWith(a.get('c/broken'), 'COFFER_ARCHIVE_NOT_FOUND');
      const good = randomBytes(100);
      await a.put('c/broken', good); // nothing holds the key
      assert.deepEqual(await readAll(await a.get('c/broken')), good);
    }));

  void test('a body over the object bound is refused and nothing is stored; the bound itself fits', () =>
    withArchive(h, async (a) => {
      const over = randomBytes(CONFORMANCE_OBJECT_BYTES_MAX + 1);
      await rejectsWith(a.put('c/over-bytes', over), 'COFFER_ARCHIVE_LIMIT');
      const source = chunked(over);
      await rejectsWith(a.put('c/over-stream', source), 'COFFER_ARCHIVE_LIMIT');
      assert.ok(source.destroyed, 'the refused source is not read on');
      assert.equal(await a.head('c/over-bytes'), undefined);
      assert.equal(await a.head('c/over-stream'), undefined);
      assert.deepEqual(await a.list(''), []);
      const exact = over.subarray(0, CONFORMANCE_OBJECT_BYTES_MAX);
      assert.equal((await a.put('c/exact', chunked(exact))).bytes, CONFORMANCE_OBJECT_BYTES_MAX);
      assert.equal(sha256(await readAll(await a.get('c/exact'))), sha256(exact));
    }));
}

const BAD_KEYS = [
  '', '/abs', '../up', 'a/../b', 'a/./b', '..', 'a//b', 'a/', '.hidden', 'a/.hidden', '-dash', 'a b', 'a\\b', 'a~b', 'a\0b',
  'caf\u00e9', 'a/b/c/d/e', 'x'.repeat(ARCHIVE_KEY_CHARS_MAX + 1), 'a\nb',
];

function keys(h: ArchiveHarness): void {
  void test('bad keys are refused by every operation, and nothing is stored', () =>
    withArchive(h, async (a) => {
      for (const key of BAD_KEYS) {
        const what = `for key ${JSON.stringify(key)}`;
        await rejectsWith(a.put(key, text('x')), 'COFFER_ARCHIVE_LIMIT', what);
        await rejectsWith(a.get(key), 'COFFER_ARCHIVE_LIMIT', what);
        await rejectsWith(a.head(key), 'COFFER_ARCHIVE_LIMIT', what);
        await rejectsWith(a.delete(key), 'COFFER_ARCHIVE_LIMIT', what);
      }
      for (const prefix of ['../', '/', '-', 'a//', 'a b', 'a~', 'caf\u00e9', 'x'.repeat(ARCHIVE_KEY_CHARS_MAX + 1)]) {
        await rejectsWith(a.list(prefix), 'COFFER_ARCHIVE_LIMIT', `for prefix ${JSON.stringify(prefix)}`);
      }
      for (const prefix of ['', 'a', 'a/', 'a.', 'a/b-', 'a/b/c/d', 'x'.repeat(ARCHIVE_KEY_CHARS_MAX)]) assert.deepEqual(await a.list(prefix), []);
      assert.deepEqual(await a.list(''), []);
    }));

  void test('the longest key and keys of four segments with dots, dashes and underscores work', () =>
    withArchive(h, async (a) => {
      const longest = 'k'.repeat(ARCHIVE_KEY_CHARS_MAX);
      const deep = 'cluster-2abc/backup-7xyz/v1.2/part_0';
      await a.put(longest, text('long'));
      await a.put(deep, text('deep'));
      assert.equal((await readAll(await a.get(longest))).toString(), 'long');
      assert.equal((await readAll(await a.get(deep))).toString(), 'deep');
      assert.deepEqual(await a.list(''), [{ key: deep, bytes: 4 }, { key: longest, bytes: 4 }]);
    }));
}

function headListDelete(h: ArchiveHarness): void {
  void test('head tells the size of an object and undefined for a missing one', () =>
    withArchive(h, async (a) => {
      await a.put('c/h', randomBytes(321));
      assert.deepEqual(await a.head('c/h'), { key: 'c/h', bytes: 321 });
      assert.equal(await a.head('c/missing'), undefined);
      assert.equal(await a.head('c'), undefined);
    }));

  void test('list returns the keys under a prefix in ascending order with their sizes', () =>
    withArchive(h, async (a) => {
      // '-' < '.' < '/' < '0' in ASCII: a store that sorts by anything but the key's bytes fails.
      const keysInOrder = ['c1', 'c1/a', 'c1/b-2', 'c1/b.1', 'c1/b/x', 'c10/a'];
      const shuffled = [3, 0, 5, 2, 4, 1].map((i) => keysInOrder[i] ?? '');
      for (const [i, key] of shuffled.entries()) await a.put(key, randomBytes(i + 1));
      const size = (key: string): number => shuffled.indexOf(key) + 1;
      assert.deepEqual(await a.list(''), keysInOrder.map((key) => ({ key, bytes: size(key) })));
      assert.deepEqual((await a.list('c1/')).map((o) => o.key), ['c1/a', 'c1/b-2', 'c1/b.1', 'c1/b/x']);
      assert.deepEqual((await a.list('c1/b')).map((o) => o.key), ['c1/b-2', 'c1/b.1', 'c1/b/x']);
      assert.deepEqual((await a.list('c1')).map((o) => o.key), keysInOrder);
      assert.deepEqual((await a.list('c10/')).map((o) => o.key), ['c10/a']);
      assert.deepEqual(await a.list('c2'), []);
    }));

  void test('a list longer than its bound is refused', () =>
    withArchive(h, async (a) => {
      for (let i = 0; i <= CONFORMANCE_LIST_KEYS_MAX; i++) await a.put(`many/k${i}`, text(String(i)));
      await a.put('other/k', text('o'));
      await rejectsWith(a.list('many/'), 'COFFER_ARCHIVE_LIMIT');
      await rejectsWith(a.list(''), 'COFFER_ARCHIVE_LIMIT');
      assert.deepEqual((await a.list('many/k1')).map((o) => o.key), ['many/k1']);
      assert.deepEqual((await a.list('other/')).map((o) => o.key), ['other/k']);
    }));

  void test('delete removes one object; missing keys are not found; a deleted key can be put again', () =>
    withArchive(h, async (a) => {
      await a.put('c/d1', text('one'));
      await a.put('c/d2', text('two'));
      await a.delete('c/d1');
      assert.equal(await a.head('c/d1'), undefined);
      await rejectsWith(a.get('c/d1'), 'COFFER_ARCHIVE_NOT_FOUND');
      await rejectsWith(a.delete('c/d1'), 'COFFER_ARCHIVE_NOT_FOUND');
      await rejectsWith(a.delete('c/never'), 'COFFER_ARCHIVE_NOT_FOUND');
      await rejectsWith(a.get('c/never'), 'COFFER_ARCHIVE_NOT_FOUND');
      assert.deepEqual(await a.list('c/'), [{ key: 'c/d2', bytes: 3 }]);
      await a.put('c/d1', text('again'));
      assert.equal((await readAll(await a.get('c/d1'))).toString(), 'again');
    }));

  void test('an object being read survives its deletion until the reader is done, or is refused whole', () =>
    withArchive(h, async (a) => {
      const body = randomBytes(200_000);
      await a.put('c/r', body);
      const reader = await a.get('c/r');
      await a.delete('c/r');
      const back = await readAll(reader).catch((e: unknown) => e);
      if (Buffer.isBuffer(back)) assert.equal(sha256(back), sha256(body), 'never a mix or a truncation');
      else assert.ok(back instanceof Error);
    }));

  void test('a closed archive refuses every operation as unavailable', async () => {
    const a = await h.open(BOUNDS);
    await a.put('c/x', text('x'));
    await a.close();
    await rejectsWith(a.put('c/y', text('y')), 'COFFER_ARCHIVE_UNAVAILABLE');
    await rejectsWith(a.get('c/x'), 'COFFER_ARCHIVE_UNAVAILABLE');
    await rejectsWith(a.head('c/x'), 'COFFER_ARCHIVE_UNAVAILABLE');
    await rejectsWith(a.delete('c/x'), 'COFFER_ARCHIVE_UNAVAILABLE');
    await rejectsWith(a.list(''), 'COFFER_ARCHIVE_UNAVAILABLE');
  });
}
