// The RecordStore conformance suite (CONTRIBUTING.md rule 6; Vault's sdk/physical/testing.go is the
// model): one set of behaviours every adapter of src/hsm/store/store_port.ts must show. store.test.ts
// runs it against MemoryRecordStore and SealedStore. Not a test file itself: it only registers
// tests when called.

import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { isCofferError } from '../../../src/errors.js';
import { SEALED_LIST_PAGE_RECORDS, SEALED_RECORD_BYTES_MAX } from '../../../src/formats/limits.js';
import type { RecordStore } from '../../../src/hsm/store/store_port.js';

export interface StoreHarness {
  /** A fresh, empty store. */
  open(): RecordStore;
  /** Closes `store` and opens the same store again; absent for adapters that do not persist. */
  readonly reopen?: (store: RecordStore) => RecordStore;
  /** Set when the adapter does not (yet) refuse values over SEALED_RECORD_BYTES_MAX: the
   * refusal test then runs as a todo carrying this reason, so the gap stays visible. */
  readonly recordLimitTodo?: string;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

function put(store: RecordStore, ns: string, id: string, value: string): void {
  store.transaction((tx) => tx.put(ns, id, bytes(value)));
}

function contents(store: RecordStore, ns: string): [string, string | undefined][] {
  return [...store.list(ns)].map(([id, v]) => [id, text(v)]);
}

/** Runs `fn` on a fresh store and closes it afterwards (reopen may hand back another one). */
function withStore(h: StoreHarness, fn: (s: RecordStore) => RecordStore | void): void {
  let store = h.open();
  try {
    store = fn(store) ?? store;
  } finally {
    store.close();
  }
}

export function storeConformance(name: string, h: StoreHarness): void {
  void describe(`RecordStore conformance: ${name}`, () => {
    basics(h);
    transactions(h);
    copies(h);
    listing(h);
    namespacesAndClear(h);
    limitsAndPersistence(h);
  });
}

function basics(h: StoreHarness): void {
  void test('put, get, delete; missing records read as undefined', () =>
    withStore(h, (s) => {
      assert.equal(s.get('objects', 'a'), undefined);
      put(s, 'objects', 'a', 'one');
      assert.equal(text(s.get('objects', 'a')), 'one');
      s.transaction((tx) => tx.delete('objects', 'a'));
      assert.equal(s.get('objects', 'a'), undefined);
      s.transaction((tx) => tx.delete('objects', 'never-there'));
      assert.equal(s.count('objects'), 0);
    }));

  void test('overwrite replaces the value and keeps the count', () =>
    withStore(h, (s) => {
      put(s, 'objects', 'a', 'one');
      put(s, 'objects', 'a', 'two');
      assert.equal(text(s.get('objects', 'a')), 'two');
      assert.equal(s.count('objects'), 1);
    }));

  void test('namespaces are isolated, including prefixes of one another', () =>
    withStore(h, (s) => {
      put(s, 'a', 'x', 'in a');
      put(s, 'ab', 'x', 'in ab');
      put(s, 'ab', 'y', 'in ab too');
      assert.equal(text(s.get('a', 'x')), 'in a');
      assert.deepEqual(contents(s, 'a'), [['x', 'in a']]);
      assert.equal(s.count('a'), 1);
      assert.equal(s.count('ab'), 2);
      s.transaction((tx) => tx.delete('ab', 'x'));
      assert.equal(text(s.get('a', 'x')), 'in a');
      assert.equal(s.count('nothing'), 0);
      assert.deepEqual(contents(s, 'nothing'), []);
    }));
}

function transactions(h: StoreHarness): void {
  void test('a transaction that throws lands nothing, and its error reaches the caller', () =>
    withStore(h, (s) => {
      put(s, 'objects', 'kept', 'before');
      put(s, 'objects', 'doomed', 'before');
      const boom = new Error('boom');
      assert.throws(
        () =>
          s.transaction((tx) => {
            tx.put('objects', 'kept', bytes('after'));
            tx.put('objects', 'new', bytes('new'));
            tx.delete('objects', 'doomed');
            tx.put('users', 'u', bytes('user'));
            throw boom;
          }),
        (e) => e === boom,
      );
      assert.deepEqual(contents(s, 'objects'), [['doomed', 'before'], ['kept', 'before']]);
      assert.equal(s.count('users'), 0);
    }));

  void test('an async transaction function is refused and lands nothing', () =>
    withStore(h, (s) => {
      // eslint-disable-next-line @typescript-eslint/require-await
      assert.throws(() => s.transaction(async (tx) => tx.put('objects', 'a', bytes('x'))));
      assert.equal(s.get('objects', 'a'), undefined);
    }));

  void test("reads inside a transaction see the transaction's own writes; the result passes through", () =>
    withStore(h, (s) => {
      put(s, 'objects', 'gone', 'x');
      const seen = s.transaction((tx) => {
        tx.put('objects', 'a', bytes('one'));
        const first = text(tx.get('objects', 'a'));
        tx.put('objects', 'a', bytes('two'));
        tx.delete('objects', 'gone');
        return [first, text(tx.get('objects', 'a')), tx.get('objects', 'gone')];
      });
      assert.deepEqual(seen, ['one', 'two', undefined]);
      assert.deepEqual(contents(s, 'objects'), [['a', 'two']]);
    }));

  void test('several records across namespaces commit together', () =>
    withStore(h, (s) => {
      s.transaction((tx) => {
        for (let i = 0; i < 10; i++) tx.put(i % 2 === 0 ? 'even' : 'odd', `r${i}`, bytes(String(i)));
      });
      assert.equal(s.count('even'), 5);
      assert.equal(s.count('odd'), 5);
    }));
}

function copies(h: StoreHarness): void {
  void test('values are copies: mutating a given or returned buffer changes nothing stored', () =>
    withStore(h, (s) => {
      const given = bytes('original');
      s.transaction((tx) => {
        tx.put('objects', 'a', given);
        given.fill(0x58);
        const inTx = tx.get('objects', 'a');
        assert.equal(text(inTx), 'original');
        inTx?.fill(0x59);
      });
      s.get('objects', 'a')?.fill(0x5a);
      for (const [, v] of s.list('objects')) v.fill(0x5b);
      assert.equal(text(s.get('objects', 'a')), 'original');
    }));
}

function listing(h: StoreHarness): void {
  void test('list yields ascending id order (JavaScript string order), any insertion order', () =>
    withStore(h, (s) => {
      const ids = ['b', 'a', 'c', 'aa', 'A', '10', '9', '', 'é', '😀', '\uFFFF', 'z', 'a b', 'Z'];
      s.transaction((tx) => {
        for (const id of ids) tx.put('objects', id, bytes(`v:${id}`));
      });
      const expected = [...ids].sort();
      assert.deepEqual(
        contents(s, 'objects'),
        expected.map((id) => [id, `v:${id}`]),
      );
      // '\uFFFF' sorts after '😀' (a surrogate pair, 0xD83D…) in JavaScript: the order is by UTF-16 code unit.
      assert.ok(expected.indexOf('😀') < expected.indexOf('\uFFFF'));
    }));

  void test('list of many records (several pages) is complete and ordered; writes while listing work', () =>
    withStore(h, (s) => {
      const n = SEALED_LIST_PAGE_RECORDS * 2 + 7;
      const ids = Array.from({ length: n }, (_, i) => `obj-${String((i * 7919) % n).padStart(4, '0')}`);
      s.transaction((tx) => {
        for (const id of ids) tx.put('objects', id, bytes(id));
      });
      const seen: string[] = [];
      for (const [id, v] of s.list('objects')) {
        assert.equal(text(v), id);
        seen.push(id);
        s.transaction((tx) => tx.put('objects', id, bytes(`${id}!`)));
      }
      assert.deepEqual(seen, [...ids].sort());
      assert.equal(s.count('objects'), n);
      assert.equal(text(s.get('objects', ids[0] ?? '')), `${ids[0]}!`);
    }));
}

function namespacesAndClear(h: StoreHarness): void {
  void test('sizes gives every id with its value length, in list order, over several pages', () =>
    withStore(h, (s) => {
      const n = SEALED_LIST_PAGE_RECORDS + 5;
      s.transaction((tx) => {
        for (let i = 0; i < n; i++) tx.put('objects', `r${String(i).padStart(4, '0')}`, new Uint8Array(i % 7 === 0 ? 0 : (i * 13) % 300));
        tx.put('objects', '😀', bytes('astral'));
        tx.put('objects', '\uFFFF', bytes('last BMP'));
        tx.put('other', 'x', bytes('elsewhere'));
      });
      assert.deepEqual([...s.sizes('objects')], [...s.list('objects')].map(([id, v]) => [id, v.length]));
      assert.equal([...s.sizes('objects')].length, n + 2);
      assert.deepEqual([...s.sizes('nothing')], []);
      assert.deepEqual([...s.sizes('other')], [['x', 9]]);
    }));

  void test('namespaces lists the non-empty namespaces in ascending order', () =>
    withStore(h, (s) => {
      assert.deepEqual(s.namespaces(), []);
      s.transaction((tx) => {
        for (const ns of ['user', 'object', 'a', 'ab', 'Z', 'é', '😀', '\uFFFF']) tx.put(ns, 'x', bytes(ns));
        tx.put('object', 'y', bytes('y'));
      });
      assert.deepEqual(s.namespaces(), ['Z', 'a', 'ab', 'object', 'user', 'é', '😀', '\uFFFF']);
      s.transaction((tx) => tx.delete('ab', 'x')); // emptied namespaces disappear
      assert.deepEqual(s.namespaces(), ['Z', 'a', 'object', 'user', 'é', '😀', '\uFFFF']);
    }));

  void test('clear empties one namespace only; reads and writes after it in the transaction see the cleared state', () =>
    withStore(h, (s) => {
      s.transaction((tx) => {
        for (let i = 0; i < 5; i++) tx.put('object', `o${i}`, bytes(`old ${i}`));
        tx.put('objects', 'o1', bytes('prefix neighbour'));
        tx.put('user', 'alice', bytes('alice'));
      });
      const seen = s.transaction((tx) => {
        tx.put('object', 'early', bytes('written before the clear'));
        tx.clear('object');
        const afterClear = [tx.get('object', 'o1'), tx.get('object', 'early')];
        tx.put('object', 'o3', bytes('new 3'));
        tx.put('object', 'fresh', bytes('fresh'));
        return [...afterClear, text(tx.get('object', 'o3')), text(tx.get('objects', 'o1'))];
      });
      assert.deepEqual(seen, [undefined, undefined, 'new 3', 'prefix neighbour']);
      assert.deepEqual(contents(s, 'object'), [['fresh', 'fresh'], ['o3', 'new 3']]);
      assert.equal(s.count('object'), 2);
      assert.deepEqual(contents(s, 'objects'), [['o1', 'prefix neighbour']]);
      assert.equal(text(s.get('user', 'alice')), 'alice');
      s.transaction((tx) => tx.clear('never-there'));
      assert.deepEqual(s.namespaces(), ['object', 'objects', 'user']);
    }));

  void test('a transaction that clears and then throws lands nothing', () =>
    withStore(h, (s) => {
      s.transaction((tx) => {
        for (let i = 0; i < 3; i++) tx.put('object', `o${i}`, bytes(`v${i}`));
      });
      assert.throws(() =>
        s.transaction((tx) => {
          tx.clear('object');
          tx.clear('user');
          tx.put('object', 'intruder', bytes('x'));
          throw new Error('restore failed half-way');
        }),
      );
      assert.deepEqual(contents(s, 'object'), [['o0', 'v0'], ['o1', 'v1'], ['o2', 'v2']]);
      assert.deepEqual(s.namespaces(), ['object']);
    }));
}

function limitsAndPersistence(h: StoreHarness): void {
  void test('values up to SEALED_RECORD_BYTES_MAX are kept; larger ones are refused and land nothing', { todo: h.recordLimitTodo ?? false }, () =>
    withStore(h, (s) => {
      const big = new Uint8Array(SEALED_RECORD_BYTES_MAX).fill(0xab);
      big[0] = 1;
      s.transaction((tx) => tx.put('objects', 'big', big));
      assert.deepEqual(s.get('objects', 'big'), big);
      assert.throws(
        () =>
          s.transaction((tx) => {
            tx.put('objects', 'small', bytes('x'));
            tx.put('objects', 'huge', new Uint8Array(SEALED_RECORD_BYTES_MAX + 1));
          }),
        (e) => isCofferError(e, 'COFFER_FORMAT_LIMIT'),
      );
      assert.equal(s.count('objects'), 1);
    }));

  const reopen = h.reopen;
  if (reopen === undefined) return;
  void test('records, deletions and counts persist across close and reopen', () =>
    withStore(h, (s) => {
      s.transaction((tx) => {
        for (let i = 0; i < 20; i++) tx.put('objects', `r${String(i).padStart(2, '0')}`, bytes(`value ${i}`));
        tx.put('users', 'alice', bytes('verifier'));
      });
      s.transaction((tx) => tx.delete('objects', 'r07'));
      const before = contents(s, 'objects');
      const again = reopen(s);
      assert.deepEqual(contents(again, 'objects'), before);
      assert.equal(again.count('objects'), 19);
      assert.equal(text(again.get('users', 'alice')), 'verifier');
      return again;
    }));

  void test('a cleared and refilled namespace persists across close and reopen', () =>
    withStore(h, (s) => {
      s.transaction((tx) => {
        for (let i = 0; i < 10; i++) tx.put('objects', `r${i}`, bytes(`old ${i}`));
        tx.put('users', 'alice', bytes('verifier'));
      });
      s.transaction((tx) => {
        tx.clear('objects');
        tx.put('objects', 'r5', bytes('new 5'));
      });
      const again = reopen(s);
      assert.deepEqual(contents(again, 'objects'), [['r5', 'new 5']]);
      assert.deepEqual(again.namespaces(), ['objects', 'users']);
      return again;
    }));
}
