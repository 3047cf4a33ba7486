// The MetadataStore conformance suite (CONTRIBUTING.md rule 6; Vault's sdk/physical/testing.go is the
// model): what every adapter of src/storage/metadata_port.ts must do, run unchanged by
// metadata_sqlite.test.ts and metadata_postgres.test.ts. Not a test file itself: it only registers
// tests when called.
//
// Expected values are computed here, independently of the adapters: orders by JavaScript's sort
// (ids are ASCII, so that is byte order), sizes by TextEncoder, times by the test's own numbers.
// Every refusal is also checked for what it must not do: nothing of a refused commit, append or
// lease is visible afterwards.

import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import {
  COMMIT_WRITES_MAX,
  DOCUMENT_BYTES_MAX,
  DOCUMENT_ID_CHARS_MAX,
  JOURNAL_ENTRY_BYTES_MAX,
  JOURNAL_READ_LIMIT_MAX,
  LEASE_TTL_MS_MAX,
  LIST_LIMIT_MAX,
  type Collection,
  type DocumentWrite,
  type MetadataStore,
  type StoredDocument,
} from '../../src/storage/metadata_port.js';

export interface MetadataHarness {
  /** A fresh, empty store. */
  open(): Promise<MetadataStore>;
  /** Closes `store` and opens the same store again; absent for adapters that do not persist. */
  readonly reopen?: (store: MetadataStore) => Promise<MetadataStore>;
}

const utf8Bytes = (s: string): number => new TextEncoder().encode(s).length;

/** Runs `fn` on a fresh store and closes it afterwards (fn may hand back a reopened one). */
async function withStore(h: MetadataHarness, fn: (s: MetadataStore) => Promise<MetadataStore | void>): Promise<void> {
  let store = await h.open();
  try {
    store = (await fn(store)) ?? store;
  } finally {
    await store.close();
  }
}

/** Asserts the call returns a promise (a port method never throws synchronously) that rejects with `code`. */
async function refused(call: () => Promise<unknown>, code: ErrorCode, what = `expected ${code}`): Promise<void> {
  let pending: Promise<unknown> | undefined;
  assert.doesNotThrow(() => {
    pending = call();
  }, `${what}: the port reports failures as rejections`);
  await assert.rejects(pending!, (e: unknown) => isCofferError(e, code), what);
}

const create = (collection: Collection, id: string, body: string, parent: string | null = null): DocumentWrite => ({ collection, id, parent, expectedVersion: 0, body });
const update = (collection: Collection, id: string, expectedVersion: number, body: string, parent: string | null = null): DocumentWrite => ({ collection, id, parent, expectedVersion, body });
const remove = (collection: Collection, id: string, expectedVersion: number): DocumentWrite => ({ collection, id, parent: null, expectedVersion, body: null });

/** Everything in a collection, read page by page. */
async function all(s: MetadataStore, collection: Collection, parent?: string): Promise<StoredDocument[]> {
  const out: StoredDocument[] = [];
  for (;;) {
    const last = out.at(-1);
    const page = await s.list(collection, { limit: 7, ...(parent === undefined ? {} : { parent }), ...(last === undefined ? {} : { afterId: last.id }) });
    out.push(...page);
    if (page.length < 7) return out;
  }
}

export function metadataConformance(name: string, h: MetadataHarness): void {
  void describe(`MetadataStore conformance: ${name}`, () => {
    documents(h);
    listing(h);
    atomicity(h);
    limits(h);
    journalAndLeaseLimits(h);
    invalid(h);
    unicode(h);
    journal(h);
    compaction(h);
    leases(h);
    concurrency(h);
    lifecycle(h);
  });
}

function documents(h: MetadataHarness): void {
  void test('create with 0, read, update with the version read, delete', () =>
    withStore(h, async (s) => {
      assert.equal(await s.get('clusters', 'cluster-a'), undefined);
      assert.deepEqual(await s.commit([create('clusters', 'cluster-a', '{"state":"UNINITIALIZED"}')]), [1]);
      assert.deepEqual(await s.get('clusters', 'cluster-a'), { collection: 'clusters', id: 'cluster-a', parent: null, version: 1, body: '{"state":"UNINITIALIZED"}' });
      assert.deepEqual(await s.commit([update('clusters', 'cluster-a', 1, '{"state":"INITIALIZED"}')]), [2]);
      assert.deepEqual(await s.commit([update('clusters', 'cluster-a', 2, '{"state":"ACTIVE"}')]), [3]);
      const doc = await s.get('clusters', 'cluster-a');
      assert.equal(doc?.version, 3);
      assert.equal(doc?.body, '{"state":"ACTIVE"}');
      assert.deepEqual(await s.commit([remove('clusters', 'cluster-a', 3)]), [0]);
      assert.equal(await s.get('clusters', 'cluster-a'), undefined);
      assert.deepEqual(await s.list('clusters', { limit: 10 }), []);
      // Gone means creatable again, from 1.
      assert.deepEqual(await s.commit([create('clusters', 'cluster-a', '{}')]), [1]);
    }));

  void test('a stale, missing or premature version is COFFER_METADATA_CONFLICT and changes nothing', () =>
    withStore(h, async (s) => {
      await s.commit([create('hsms', 'hsm-a', '"one"', 'cluster-a')]);
      await s.commit([update('hsms', 'hsm-a', 1, '"two"', 'cluster-a')]);
      const before = await s.get('hsms', 'hsm-a');
      await refused(() => s.commit([create('hsms', 'hsm-a', '"again"')]), 'COFFER_METADATA_CONFLICT', 'create over an existing document');
      await refused(() => s.commit([update('hsms', 'hsm-a', 1, '"stale"')]), 'COFFER_METADATA_CONFLICT', 'update with a stale version');
      await refused(() => s.commit([update('hsms', 'hsm-a', 3, '"ahead"')]), 'COFFER_METADATA_CONFLICT', 'update with a version not yet written');
      await refused(() => s.commit([remove('hsms', 'hsm-a', 1)]), 'COFFER_METADATA_CONFLICT', 'delete with a stale version');
      assert.deepEqual(await s.get('hsms', 'hsm-a'), before);
      await refused(() => s.commit([update('hsms', 'hsm-none', 1, '"x"')]), 'COFFER_METADATA_CONFLICT', 'update of a missing document');
      await refused(() => s.commit([remove('hsms', 'hsm-none', 1)]), 'COFFER_METADATA_CONFLICT', 'delete of a missing document');
      assert.equal(await s.get('hsms', 'hsm-none'), undefined);
    }));

  void test('collections are separate; an update may move a document to another parent', () =>
    withStore(h, async (s) => {
      await s.commit([create('clusters', 'x-1', '"cluster"'), create('backups', 'x-1', '"backup"', 'cluster-a')]);
      assert.equal((await s.get('clusters', 'x-1'))?.body, '"cluster"');
      assert.equal((await s.get('backups', 'x-1'))?.body, '"backup"');
      assert.equal(await s.get('hsms', 'x-1'), undefined);
      await s.commit([update('backups', 'x-1', 1, '"moved"', 'cluster-b')]);
      assert.deepEqual(await s.list('backups', { parent: 'cluster-a', limit: 10 }), []);
      assert.deepEqual((await s.list('backups', { parent: 'cluster-b', limit: 10 })).map((d) => [d.id, d.version, d.body]), [['x-1', 2, '"moved"']]);
      assert.equal((await s.get('clusters', 'x-1'))?.version, 1);
    }));
}

function listing(h: MetadataHarness): void {
  // Ids whose order differs between byte order and a linguistic collation (case, punctuation).
  const ids = ['b', 'a-b', 'aB', 'a_b', 'A', 'a.b', '~x', 'a', 'Z9', '0', 'a/b', 'ab', 'cluster-2', 'cluster-10', 'a-c', 'aa'];
  const sorted = [...ids].sort();

  void test('list is ascending by id in byte order, and afterId pages through it', () =>
    withStore(h, async (s) => {
      await s.commit(ids.map((id, i) => create('clusters', id, `{"i":${i}}`)));
      const page = await s.list('clusters', { limit: LIST_LIMIT_MAX });
      assert.deepEqual(page.map((d) => d.id), sorted);
      assert.deepEqual(page.map((d) => d.body), sorted.map((id) => `{"i":${ids.indexOf(id)}}`));
      for (const limit of [1, 2, 3, 5, ids.length, ids.length + 1]) {
        const got: string[] = [];
        let afterId: string | undefined;
        for (;;) {
          const p = await s.list('clusters', { limit, ...(afterId === undefined ? {} : { afterId }) });
          assert.ok(p.length <= limit);
          got.push(...p.map((d) => d.id));
          if (p.length < limit) break;
          afterId = p.at(-1)!.id;
        }
        assert.deepEqual(got, sorted, `pages of ${limit}`);
      }
      // afterId need not be an id that exists.
      assert.deepEqual((await s.list('clusters', { afterId: 'a0', limit: 3 })).map((d) => d.id), sorted.filter((id) => id > 'a0').slice(0, 3));
      assert.deepEqual(await s.list('clusters', { afterId: '~x', limit: 3 }), []);
    }));

  void test('list by parent selects only that parent, in order, with paging', () =>
    withStore(h, async (s) => {
      const writes: DocumentWrite[] = [];
      for (let i = 0; i < 20; i++) writes.push(create('hsms', `hsm-${String(i).padStart(2, '0')}`, `${i}`, i % 3 === 0 ? 'cluster-a' : i % 3 === 1 ? 'cluster-b' : null));
      await s.commit(writes);
      const expectA = writes.filter((w) => w.parent === 'cluster-a').map((w) => w.id).sort();
      assert.deepEqual((await all(s, 'hsms', 'cluster-a')).map((d) => d.id), expectA);
      assert.ok((await all(s, 'hsms', 'cluster-a')).every((d) => d.parent === 'cluster-a'));
      assert.deepEqual((await s.list('hsms', { parent: 'cluster-a', afterId: expectA[2]!, limit: 2 })).map((d) => d.id), expectA.slice(3, 5));
      assert.deepEqual(await s.list('hsms', { parent: 'cluster-c', limit: 5 }), []);
      assert.equal((await all(s, 'hsms')).length, 20);
      assert.deepEqual(await s.list('backups', { limit: 5 }), []);
    }));

  void test('list limit: 1 … LIST_LIMIT_MAX; a full page holds exactly LIST_LIMIT_MAX', () =>
    withStore(h, async (s) => {
      const total = LIST_LIMIT_MAX + 1;
      for (let from = 0; from < total; from += COMMIT_WRITES_MAX) {
        const writes: DocumentWrite[] = [];
        for (let i = from; i < Math.min(total, from + COMMIT_WRITES_MAX); i++) writes.push(create('devices', `dev-${String(i).padStart(5, '0')}`, '{}'));
        await s.commit(writes);
      }
      const page = await s.list('devices', { limit: LIST_LIMIT_MAX });
      assert.equal(page.length, LIST_LIMIT_MAX);
      assert.equal(page.at(-1)?.id, `dev-${String(LIST_LIMIT_MAX - 1).padStart(5, '0')}`);
      assert.deepEqual((await s.list('devices', { limit: 1 })).map((d) => d.id), ['dev-00000']);
      assert.deepEqual((await s.list('devices', { afterId: page.at(-1)!.id, limit: LIST_LIMIT_MAX })).map((d) => d.id), [`dev-${String(LIST_LIMIT_MAX).padStart(5, '0')}`]);
      await refused(() => s.list('devices', { limit: 0 }), 'COFFER_METADATA_LIMIT', 'limit 0');
      await refused(() => s.list('devices', { limit: LIST_LIMIT_MAX + 1 }), 'COFFER_METADATA_LIMIT', 'limit over the maximum');
      await refused(() => s.list('devices', { limit: -1 }), 'COFFER_METADATA_LIMIT', 'negative limit');
      await refused(() => s.list('devices', { limit: 1.5 }), 'COFFER_METADATA_INVALID', 'fractional limit');
    }));
}

function atomicity(h: MetadataHarness): void {
  void test('a commit returns each write\'s new version in order and applies all of them', () =>
    withStore(h, async (s) => {
      await s.commit([create('clusters', 'cluster-a', '"c"'), create('hsms', 'hsm-a', '"h"', 'cluster-a')]);
      await s.commit([update('hsms', 'hsm-a', 1, '"h2"', 'cluster-a')]);
      const versions = await s.commit([
        update('hsms', 'hsm-a', 2, '"h3"', 'cluster-a'),
        create('backups', 'backup-a', '"b"', 'cluster-a'),
        update('clusters', 'cluster-a', 1, '"c2"'),
      ]);
      assert.deepEqual(versions, [3, 1, 2]);
      assert.deepEqual(await s.commit([remove('hsms', 'hsm-a', 3), update('clusters', 'cluster-a', 2, '"c3"')]), [0, 3]);
      assert.equal(await s.get('hsms', 'hsm-a'), undefined);
      assert.equal((await s.get('clusters', 'cluster-a'))?.body, '"c3"');
      assert.deepEqual(await s.commit([]), []);
    }));

  void test('one stale write anywhere in a commit: COFFER_METADATA_CONFLICT and nothing of it applied', () =>
    withStore(h, async (s) => {
      await s.commit([create('clusters', 'cluster-a', '"c1"'), create('hsms', 'hsm-a', '"h1"', 'cluster-a'), create('hsms', 'hsm-b', '"b1"', 'cluster-a')]);
      const snapshot = async (): Promise<unknown> => [await all(s, 'clusters'), await all(s, 'hsms'), await all(s, 'backups')];
      const before = await snapshot();
      const good = [
        update('clusters', 'cluster-a', 1, '"c2"'),
        create('backups', 'backup-a', '"new"', 'cluster-a'),
        remove('hsms', 'hsm-b', 1),
        update('hsms', 'hsm-a', 1, '"h2"', 'cluster-a'),
      ];
      const stale = [update('hsms', 'hsm-a', 7, '"x"', 'cluster-a'), create('clusters', 'cluster-a', '"x"'), remove('hsms', 'hsm-b', 2), update('hsms', 'hsm-zz', 1, '"x"')];
      for (const bad of stale) {
        for (const at of [0, 2, 4]) {
          const writes = good.filter((g) => g.id !== bad.id || g.collection !== bad.collection);
          writes.splice(Math.min(at, writes.length), 0, bad);
          await refused(() => s.commit(writes), 'COFFER_METADATA_CONFLICT', `stale write at ${at}`);
          assert.deepEqual(await snapshot(), before, 'nothing of a refused commit is visible');
        }
      }
      assert.deepEqual(await s.commit(good), [2, 1, 0, 2]);
    }));
}

function limits(h: MetadataHarness): void {
  void test('bodies: exactly DOCUMENT_BYTES_MAX UTF-8 bytes accepted, one more refused with nothing written', () =>
    withStore(h, async (s) => {
      // 'é' is 2 UTF-8 bytes, '€' 3, '😀' 4 (one UTF-16 pair): the bound is on UTF-8 bytes, not characters.
      const fill = (unit: string): string => unit.repeat(Math.floor(DOCUMENT_BYTES_MAX / utf8Bytes(unit))) + 'x'.repeat(DOCUMENT_BYTES_MAX % utf8Bytes(unit));
      for (const unit of ['a', 'é', '€', '😀']) {
        const body = fill(unit);
        assert.equal(utf8Bytes(body), DOCUMENT_BYTES_MAX);
        assert.ok(body.length <= DOCUMENT_BYTES_MAX);
        const id = `max-${unit.codePointAt(0)}`;
        await s.commit([create('clusters', id, body)]);
        assert.equal((await s.get('clusters', id))?.body, body, `${unit} at the bound round-trips`);
        await refused(() => s.commit([create('clusters', `${id}-over`, `${body}x`), create('clusters', `${id}-other`, '{}')]), 'COFFER_METADATA_LIMIT', `${unit}: one byte over`);
        await refused(() => s.commit([update('clusters', id, 1, `${body}${unit}`)]), 'COFFER_METADATA_LIMIT', `${unit}: update over`);
        assert.equal(await s.get('clusters', `${id}-over`), undefined);
        assert.equal(await s.get('clusters', `${id}-other`), undefined);
        assert.equal((await s.get('clusters', id))?.version, 1);
      }
      // Short in UTF-16 code units, over in UTF-8 bytes.
      const astral = '😀'.repeat(DOCUMENT_BYTES_MAX / 4) + 'x';
      assert.ok(astral.length < DOCUMENT_BYTES_MAX);
      await refused(() => s.commit([create('clusters', 'astral', astral)]), 'COFFER_METADATA_LIMIT', 'counted in UTF-8 bytes');
      assert.equal(await s.get('clusters', 'astral'), undefined);
    }));

  void test('ids and parents: DOCUMENT_ID_CHARS_MAX characters accepted, one more refused', () =>
    withStore(h, async (s) => {
      const id = 'i'.repeat(DOCUMENT_ID_CHARS_MAX);
      await s.commit([create('hsms', id, '{}', 'p'.repeat(DOCUMENT_ID_CHARS_MAX))]);
      assert.equal((await s.get('hsms', id))?.parent, 'p'.repeat(DOCUMENT_ID_CHARS_MAX));
      assert.equal((await s.list('hsms', { parent: 'p'.repeat(DOCUMENT_ID_CHARS_MAX), limit: 1 }))[0]?.id, id);
      const long = 'i'.repeat(DOCUMENT_ID_CHARS_MAX + 1);
      await refused(() => s.commit([create('hsms', 'fine', '{}'), create('hsms', long, '{}')]), 'COFFER_METADATA_LIMIT', 'id over');
      await refused(() => s.commit([create('hsms', 'fine', '{}', long)]), 'COFFER_METADATA_LIMIT', 'parent over');
      await refused(() => s.get('hsms', long), 'COFFER_METADATA_LIMIT', 'get by an id over');
      await refused(() => s.list('hsms', { parent: long, limit: 1 }), 'COFFER_METADATA_LIMIT', 'list by a parent over');
      await refused(() => s.list('hsms', { afterId: long, limit: 1 }), 'COFFER_METADATA_LIMIT', 'afterId over');
      assert.equal(await s.get('hsms', 'fine'), undefined);
      assert.equal((await all(s, 'hsms')).length, 1);
    }));

  void test('commits: COMMIT_WRITES_MAX writes accepted, one more refused with nothing written', () =>
    withStore(h, async (s) => {
      const writes = (n: number, prefix: string): DocumentWrite[] => Array.from({ length: n }, (_, i) => create('backups', `${prefix}-${i}`, `${i}`, 'cluster-a'));
      assert.deepEqual(await s.commit(writes(COMMIT_WRITES_MAX, 'ok')), new Array<number>(COMMIT_WRITES_MAX).fill(1));
      await refused(() => s.commit(writes(COMMIT_WRITES_MAX + 1, 'over')), 'COFFER_METADATA_LIMIT', 'one write over');
      assert.equal((await all(s, 'backups', 'cluster-a')).length, COMMIT_WRITES_MAX);
      assert.equal(await s.get('backups', 'over-0'), undefined);
    }));

}

function journalAndLeaseLimits(h: MetadataHarness): void {
  void test('journal entries: 1 … JOURNAL_ENTRY_BYTES_MAX bytes; readJournal limit 1 … JOURNAL_READ_LIMIT_MAX', () =>
    withStore(h, async (s) => {
      const max = new Uint8Array(JOURNAL_ENTRY_BYTES_MAX);
      max[0] = 1;
      max[max.length - 1] = 0xfe;
      await refused(() => s.appendJournal('cluster-a', 1, new Uint8Array(JOURNAL_ENTRY_BYTES_MAX + 1)), 'COFFER_METADATA_LIMIT', 'entry one byte over');
      await refused(() => s.appendJournal('cluster-a', 1, new Uint8Array(0)), 'COFFER_METADATA_LIMIT', 'empty entry');
      assert.equal(await s.journalHead('cluster-a'), 0);
      await s.appendJournal('cluster-a', 1, max);
      const [got] = await s.readJournal('cluster-a', 1, 1);
      assert.equal(got?.entry.length, JOURNAL_ENTRY_BYTES_MAX);
      assert.ok(Buffer.from(got.entry).equals(max), 'the largest entry comes back byte for byte');
      await s.appendJournal('cluster-a', 2, Uint8Array.of(2));
      assert.equal((await s.readJournal('cluster-a', 2, JOURNAL_READ_LIMIT_MAX)).length, 1);
      await refused(() => s.readJournal('cluster-a', 1, 0), 'COFFER_METADATA_LIMIT', 'read limit 0');
      await refused(() => s.readJournal('cluster-a', 1, JOURNAL_READ_LIMIT_MAX + 1), 'COFFER_METADATA_LIMIT', 'read limit over');
    }));

  void test('leases: ttlMs 1 … LEASE_TTL_MS_MAX', () =>
    withStore(h, async (s) => {
      await refused(() => s.acquireLease('orchestrator', 'p1', 0, 1000), 'COFFER_METADATA_LIMIT', 'ttl 0');
      await refused(() => s.acquireLease('orchestrator', 'p1', LEASE_TTL_MS_MAX + 1, 1000), 'COFFER_METADATA_LIMIT', 'ttl over');
      assert.equal((await s.acquireLease('orchestrator', 'p2', 1, 1000)).holder, 'p2', 'nothing was taken by the refused calls');
      assert.deepEqual(await s.acquireLease('longest', 'p1', LEASE_TTL_MS_MAX, 1000), { name: 'longest', holder: 'p1', expiresMs: 1000 + LEASE_TTL_MS_MAX });
    }));
}

function invalid(h: MetadataHarness): void {
  void test('malformed arguments are COFFER_METADATA_INVALID with nothing written', () =>
    withStore(h, async (s) => {
      for (const id of ['', 'has space', 'tab\t', 'é', 'new\nline', '\u0000', 'x\u007f']) {
        await refused(() => s.commit([create('clusters', 'fine', '{}'), create('clusters', id, '{}')]), 'COFFER_METADATA_INVALID', `id ${JSON.stringify(id)}`);
        await refused(() => s.get('clusters', id), 'COFFER_METADATA_INVALID', `get ${JSON.stringify(id)}`);
        await refused(() => s.appendJournal(id, 1, Uint8Array.of(1)), 'COFFER_METADATA_INVALID', `journal ${JSON.stringify(id)}`);
        await refused(() => s.acquireLease(id, 'p1', 10, 0), 'COFFER_METADATA_INVALID', `lease name ${JSON.stringify(id)}`);
        await refused(() => s.acquireLease('lease', id, 10, 0), 'COFFER_METADATA_INVALID', `lease holder ${JSON.stringify(id)}`);
      }
      await refused(() => s.commit([create('tables' as Collection, 'x', '{}')]), 'COFFER_METADATA_INVALID', 'unknown collection');
      await refused(() => s.list('tables' as Collection, { limit: 1 }), 'COFFER_METADATA_INVALID', 'list of an unknown collection');
      for (const body of ['{"a":"\uD800"}', '\uDC00', 'x\uDBFF', 'nul\u0000inside']) {
        await refused(() => s.commit([create('clusters', 'fine', '{}'), create('clusters', 'bad', body)]), 'COFFER_METADATA_INVALID', `body ${JSON.stringify(body)}`);
      }
      await refused(() => s.commit([create('clusters', 'twice', '1'), update('clusters', 'twice', 1, '2')]), 'COFFER_METADATA_INVALID', 'one document twice in a commit');
      await refused(() => s.commit([remove('clusters', 'fine', 0)]), 'COFFER_METADATA_INVALID', 'delete with version 0');
      for (const v of [-1, 1.5, Number.NaN, 2 ** 53]) {
        await refused(() => s.commit([update('clusters', 'fine', v, '{}')]), 'COFFER_METADATA_INVALID', `expectedVersion ${v}`);
      }
      await refused(() => s.appendJournal('cluster-a', -1, Uint8Array.of(1)), 'COFFER_METADATA_INVALID', 'negative seq');
      await refused(() => s.appendJournal('cluster-a', 1.5, Uint8Array.of(1)), 'COFFER_METADATA_INVALID', 'fractional seq');
      await refused(() => s.readJournal('cluster-a', -1, 1), 'COFFER_METADATA_INVALID', 'negative fromSeq');
      await refused(() => s.compactJournal('cluster-a', 0.5), 'COFFER_METADATA_INVALID', 'fractional beforeSeq');
      await refused(() => s.acquireLease('lease', 'p1', 10, -5), 'COFFER_METADATA_INVALID', 'negative now');
      await refused(() => s.acquireLease('lease', 'p1', 10, Number.MAX_SAFE_INTEGER), 'COFFER_METADATA_INVALID', 'expiry past 2^53');
      assert.deepEqual(await s.list('clusters', { limit: 10 }), []);
      assert.equal(await s.journalHead('cluster-a'), 0);
      assert.equal((await s.acquireLease('lease', 'p9', 10, 0)).holder, 'p9');
    }));
}

function unicode(h: MetadataHarness): void {
  const bodies = [
    '{"name":"Grüße aus Köln","tags":["ß","İ","ǅ"]}',
    '{"cjk":"暗号鍵のバックアップ","ko":"백업"}',
    '{"rtl":"مفتاح التشفير","he":"מפתח"}',
    '{"emoji":"🔐🗝️👩🏽‍💻","flag":"🇪🇺"}',
    '{"combining":"e\u0301 vs \u00e9","zwj":"a\u200db","bom":"\ufeff"}',
    '{"astral":"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 \u{10FFFF}"}',
    '{"escapes":"\\u0000 \\n \\t \\" \\\\","controls":"\u0001\u001f\u007f"}',
    '{"private":"\uE000\uF8FF","nonchar":"\uFFFE\uFFFF"}',
    '',
  ];

  void test('unicode bodies come back exactly, from get and from list', () =>
    withStore(h, async (s) => {
      await s.commit(bodies.map((b, i) => create('clusters', `u-${i}`, b, 'owner')));
      for (const [i, b] of bodies.entries()) {
        const got = await s.get('clusters', `u-${i}`);
        assert.equal(got?.body, b, `body ${i}`);
        assert.equal(utf8Bytes(got.body), utf8Bytes(b));
      }
      assert.deepEqual((await all(s, 'clusters', 'owner')).map((d) => d.body), bodies);
      await s.commit([update('clusters', 'u-0', 1, bodies[3]!, 'owner')]);
      assert.equal((await s.get('clusters', 'u-0'))?.body, bodies[3]);
    }));
}

function journal(h: MetadataHarness): void {
  void test('appends start at 1 and go up by one; duplicates, gaps and seq 0 are COFFER_JOURNAL_CONFLICT', () =>
    withStore(h, async (s) => {
      assert.equal(await s.journalHead('cluster-a'), 0);
      await refused(() => s.appendJournal('cluster-a', 0, Uint8Array.of(0)), 'COFFER_JOURNAL_CONFLICT', 'seq 0');
      await refused(() => s.appendJournal('cluster-a', 2, Uint8Array.of(2)), 'COFFER_JOURNAL_CONFLICT', 'first seq 2');
      assert.equal(await s.journalHead('cluster-a'), 0);
      await s.appendJournal('cluster-a', 1, Uint8Array.of(1));
      await refused(() => s.appendJournal('cluster-a', 1, Uint8Array.of(9)), 'COFFER_JOURNAL_CONFLICT', 'duplicate seq');
      await refused(() => s.appendJournal('cluster-a', 3, Uint8Array.of(3)), 'COFFER_JOURNAL_CONFLICT', 'gap');
      await s.appendJournal('cluster-a', 2, Uint8Array.of(2));
      assert.equal(await s.journalHead('cluster-a'), 2);
      assert.deepEqual((await s.readJournal('cluster-a', 0, 10)).map((e) => [e.clusterId, e.seq, [...e.entry]]), [['cluster-a', 1, [1]], ['cluster-a', 2, [2]]]);
      // Clusters have separate journals, and a cluster id that prefixes another is another cluster.
      assert.equal(await s.journalHead('cluster-ab'), 0);
      await s.appendJournal('cluster-ab', 1, Uint8Array.of(7));
      assert.equal(await s.journalHead('cluster-a'), 2);
      assert.deepEqual((await s.readJournal('cluster-ab', 1, 10)).map((e) => e.seq), [1]);
    }));

  void test('entries are byte-exact plain Uint8Arrays; readJournal pages from fromSeq', () =>
    withStore(h, async (s) => {
      const entries = [
        Uint8Array.from({ length: 256 }, (_, i) => i),
        Uint8Array.of(0),
        Uint8Array.of(0xff),
        new Uint8Array(randomBytes(1 << 20)),
        new Uint8Array(1000),
        ...Array.from({ length: 20 }, (_, i) => new Uint8Array(randomBytes(1 + i * 37))),
      ];
      // An entry that is a view into a larger buffer: only its own bytes are stored.
      const backing = new Uint8Array(randomBytes(64));
      entries.push(backing.subarray(10, 20));
      for (const [i, e] of entries.entries()) await s.appendJournal('cluster-a', i + 1, e);
      assert.equal(await s.journalHead('cluster-a'), entries.length);
      const read: Uint8Array[] = [];
      for (let from = 1; ; ) {
        const page = await s.readJournal('cluster-a', from, 4);
        assert.deepEqual(page.map((p) => p.seq), Array.from({ length: page.length }, (_, k) => from + k));
        read.push(...page.map((p) => p.entry));
        if (page.length < 4) break;
        from += 4;
      }
      assert.equal(read.length, entries.length);
      for (const [i, e] of read.entries()) {
        assert.equal(Object.getPrototypeOf(e), Uint8Array.prototype, 'a plain Uint8Array');
        assert.deepEqual(e, Uint8Array.from(entries[i]!), `entry ${i + 1}`);
      }
      assert.deepEqual(await s.readJournal('cluster-a', entries.length + 1, 5), []);
      assert.deepEqual((await s.readJournal('cluster-a', entries.length, 5)).map((p) => p.seq), [entries.length]);
      assert.deepEqual(await s.readJournal('cluster-none', 1, 5), []);
    }));

}

function compaction(h: MetadataHarness): void {
  void test('compaction removes entries before beforeSeq, keeps later ones and the head', () =>
    withStore(h, async (s) => {
      for (let i = 1; i <= 10; i++) await s.appendJournal('cluster-a', i, Uint8Array.of(i));
      await s.appendJournal('cluster-b', 1, Uint8Array.of(100));
      await s.compactJournal('cluster-a', 4);
      assert.deepEqual((await s.readJournal('cluster-a', 1, 100)).map((e) => [e.seq, [...e.entry]]), [4, 5, 6, 7, 8, 9, 10].map((n) => [n, [n]]));
      assert.equal(await s.journalHead('cluster-a'), 10);
      await s.compactJournal('cluster-a', 2); // already gone: nothing more happens
      assert.equal((await s.readJournal('cluster-a', 1, 100)).length, 7);
      await s.compactJournal('cluster-a', 11); // everything
      assert.deepEqual(await s.readJournal('cluster-a', 1, 100), []);
      assert.equal(await s.journalHead('cluster-a'), 10, 'the head outlives its entries');
      await refused(() => s.appendJournal('cluster-a', 1, Uint8Array.of(1)), 'COFFER_JOURNAL_CONFLICT', 'seq 1 after compaction');
      await refused(() => s.appendJournal('cluster-a', 10, Uint8Array.of(1)), 'COFFER_JOURNAL_CONFLICT', 'the compacted head again');
      await s.appendJournal('cluster-a', 11, Uint8Array.of(11));
      assert.deepEqual((await s.readJournal('cluster-a', 1, 100)).map((e) => e.seq), [11]);
      assert.deepEqual((await s.readJournal('cluster-b', 1, 100)).map((e) => [...e.entry]), [[100]], 'other clusters untouched');
    }));
}

function leases(h: MetadataHarness): void {
  void test('acquire, renew by the holder, refused while held, taken over at expiry, released only by the holder', () =>
    withStore(h, async (s) => {
      const t0 = 1_700_000_000_000;
      assert.deepEqual(await s.acquireLease('orchestrator', 'p1', 30_000, t0), { name: 'orchestrator', holder: 'p1', expiresMs: t0 + 30_000 });
      assert.deepEqual(await s.acquireLease('orchestrator', 'p2', 30_000, t0 + 1), { name: 'orchestrator', holder: 'p1', expiresMs: t0 + 30_000 }, 'held: p2 is told who holds it');
      assert.deepEqual(await s.acquireLease('orchestrator', 'p1', 30_000, t0 + 10_000), { name: 'orchestrator', holder: 'p1', expiresMs: t0 + 40_000 }, 'renewed');
      assert.equal((await s.acquireLease('orchestrator', 'p2', 30_000, t0 + 39_999)).holder, 'p1', 'one millisecond before expiry');
      assert.deepEqual(await s.acquireLease('orchestrator', 'p2', 5_000, t0 + 40_000), { name: 'orchestrator', holder: 'p2', expiresMs: t0 + 45_000 }, 'at expiry it is free');
      assert.equal((await s.acquireLease('orchestrator', 'p1', 30_000, t0 + 40_001)).holder, 'p2', 'the old holder cannot renew');
      await s.releaseLease('orchestrator', 'p1');
      assert.equal((await s.acquireLease('orchestrator', 'p3', 1_000, t0 + 40_002)).holder, 'p2', 'release by another does nothing');
      await s.releaseLease('orchestrator', 'p2');
      assert.deepEqual(await s.acquireLease('orchestrator', 'p3', 1_000, t0 + 40_003), { name: 'orchestrator', holder: 'p3', expiresMs: t0 + 41_003 }, 'released: free before expiry');
      await s.releaseLease('never-held', 'p1');
      // Leases are separate by name.
      assert.equal((await s.acquireLease('scheduler', 'p1', 1_000, t0 + 40_004)).holder, 'p1');
      assert.equal((await s.acquireLease('orchestrator', 'p1', 1_000, t0 + 40_004)).holder, 'p3');
    }));
}

function concurrency(h: MetadataHarness): void {
  void test('concurrent commits on one version: exactly one wins, the rest conflict', () =>
    withStore(h, async (s) => {
      await s.commit([create('clusters', 'cluster-a', '"v1"')]);
      const n = 16;
      const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => s.commit([update('clusters', 'cluster-a', 1, `"w${i}"`)])));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, 'exactly one winner');
      assert.deepEqual((results[won[0]!] as PromiseFulfilledResult<number[]>).value, [2]);
      for (const r of results) if (r.status === 'rejected') assert.ok(isCofferError(r.reason, 'COFFER_METADATA_CONFLICT'), String(r.reason));
      assert.deepEqual(await s.get('clusters', 'cluster-a'), { collection: 'clusters', id: 'cluster-a', parent: null, version: 2, body: `"w${won[0]}"` });
      const creates = await Promise.allSettled(Array.from({ length: n }, (_, i) => s.commit([create('clusters', 'cluster-new', `"c${i}"`)])));
      assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one create');
    }));

  void test('concurrent read-modify-write: one success per version, no update lost', () =>
    withStore(h, async (s) => {
      await s.commit([create('service', 'counter', '0')]);
      const workers = 6;
      const each = 5;
      const won: number[] = [];
      await Promise.all(Array.from({ length: workers }, async () => {
        for (let done = 0, tries = 0; done < each; tries++) {
          assert.ok(tries < 10_000, 'a worker kept losing');
          const doc = (await s.get('service', 'counter'))!;
          try {
            const [v] = await s.commit([update('service', 'counter', doc.version, String(Number(doc.body) + 1))]);
            won.push(v!);
            done++;
          } catch (e) {
            if (!isCofferError(e, 'COFFER_METADATA_CONFLICT')) throw e;
          }
        }
      }));
      assert.deepEqual(won.sort((a, b) => a - b), Array.from({ length: workers * each }, (_, i) => i + 2));
      assert.deepEqual(await s.get('service', 'counter'), { collection: 'service', id: 'counter', parent: null, version: workers * each + 1, body: String(workers * each) });
    }));

  void test('concurrent appends of one seq and concurrent lease takers: exactly one winner each', () =>
    withStore(h, async (s) => {
      const n = 12;
      const appends = await Promise.allSettled(Array.from({ length: n }, (_, i) => s.appendJournal('cluster-a', 1, Uint8Array.of(i))));
      const won = appends.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1);
      for (const r of appends) if (r.status === 'rejected') assert.ok(isCofferError(r.reason, 'COFFER_JOURNAL_CONFLICT'), String(r.reason));
      assert.deepEqual((await s.readJournal('cluster-a', 1, 10)).map((e) => [...e.entry]), [[won[0]]]);
      const leasesTaken = await Promise.all(Array.from({ length: n }, (_, i) => s.acquireLease('orchestrator', `p${i}`, 60_000, 5_000)));
      const holders = new Set(leasesTaken.map((l) => l.holder));
      assert.equal(holders.size, 1, 'every caller is told the same holder');
      const winner = [...holders][0]!;
      assert.equal(leasesTaken.filter((l, i) => l.holder === `p${i}`).length, 1, 'exactly one caller holds it');
      assert.ok(leasesTaken.every((l) => l.expiresMs === 65_000));
      assert.equal((await s.acquireLease('orchestrator', 'late', 1, 6_000)).holder, winner);
    }));
}

function lifecycle(h: MetadataHarness): void {
  const reopen = h.reopen;
  if (reopen !== undefined) {
    void test('everything persists across close and reopen', () =>
      withStore(h, async (first) => {
        await first.commit([create('clusters', 'cluster-a', '{"name":"Köln 🔐"}'), create('hsms', 'hsm-a', '{}', 'cluster-a')]);
        await first.commit([update('clusters', 'cluster-a', 1, '{"name":"Köln 🔐","state":"ACTIVE"}')]);
        const entry = new Uint8Array(randomBytes(5000));
        await first.appendJournal('cluster-a', 1, Uint8Array.of(1));
        await first.appendJournal('cluster-a', 2, entry);
        await first.compactJournal('cluster-a', 2);
        await first.acquireLease('orchestrator', 'p1', 60_000, 1_000);
        const s = await reopen(first);
        assert.deepEqual(await s.get('clusters', 'cluster-a'), { collection: 'clusters', id: 'cluster-a', parent: null, version: 2, body: '{"name":"Köln 🔐","state":"ACTIVE"}' });
        assert.deepEqual((await s.list('hsms', { parent: 'cluster-a', limit: 5 })).map((d) => d.id), ['hsm-a']);
        assert.equal(await s.journalHead('cluster-a'), 2);
        const read = await s.readJournal('cluster-a', 1, 5);
        assert.deepEqual(read.map((e) => e.seq), [2]);
        assert.deepEqual(read[0]?.entry, entry);
        assert.equal((await s.acquireLease('orchestrator', 'p2', 60_000, 2_000)).holder, 'p1', 'the lease survives');
        await refused(() => s.commit([update('clusters', 'cluster-a', 1, '{}')]), 'COFFER_METADATA_CONFLICT', 'versions survive');
        assert.deepEqual(await s.commit([update('clusters', 'cluster-a', 2, '{}')]), [3]);
        await s.appendJournal('cluster-a', 3, Uint8Array.of(3));
        return s;
      }));
  }

  void test('a closed store refuses every call with COFFER_METADATA_UNAVAILABLE; close is idempotent', async () => {
    const s = await h.open();
    await s.commit([create('clusters', 'cluster-a', '{}')]);
    await s.close();
    await refused(() => s.get('clusters', 'cluster-a'), 'COFFER_METADATA_UNAVAILABLE', 'get');
    await refused(() => s.list('clusters', { limit: 1 }), 'COFFER_METADATA_UNAVAILABLE', 'list');
    await refused(() => s.commit([create('clusters', 'cluster-b', '{}')]), 'COFFER_METADATA_UNAVAILABLE', 'commit');
    await refused(() => s.appendJournal('cluster-a', 1, Uint8Array.of(1)), 'COFFER_METADATA_UNAVAILABLE', 'appendJournal');
    await refused(() => s.readJournal('cluster-a', 1, 1), 'COFFER_METADATA_UNAVAILABLE', 'readJournal');
    await refused(() => s.journalHead('cluster-a'), 'COFFER_METADATA_UNAVAILABLE', 'journalHead');
    await refused(() => s.compactJournal('cluster-a', 1), 'COFFER_METADATA_UNAVAILABLE', 'compactJournal');
    await refused(() => s.acquireLease('orchestrator', 'p1', 1, 1), 'COFFER_METADATA_UNAVAILABLE', 'acquireLease');
    await refused(() => s.releaseLease('orchestrator', 'p1'), 'COFFER_METADATA_UNAVAILABLE', 'releaseLease');
    await s.close();
  });
}
