// The sealed store (src/hsm/store/sealed_store.ts): the shared conformance suite on both adapters, then what
// only the sealed one promises: storage-key derivation, wrong device, tamper and move detection,
// versions (and the upgrade of version 1), locking, file modes, no plaintext on disk, O(record) writes,
// and namespace summaries that are checked when read.

import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AssertionFailure } from '../../../src/assert.js';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { deriveStorageKey, SEALED_STORE_SCHEMA_VERSION, SealedStore, STORAGE_KEY_INFO } from '../../../src/hsm/store/sealed_store.js';
import { MemoryRecordStore, type RecordStore } from '../../../src/hsm/store/store_port.js';
import { storeConformance } from './store_conformance.js';

const DIR = mkdtempSync(join(tmpdir(), 'coffer-store-test-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

const seq = (n: number, start: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const KEY = SecretBytes.copyOf(seq(32, 0x10));
const OTHER_KEY = SecretBytes.copyOf(seq(32, 0x11));

let files = 0;
const newPath = (): string => join(DIR, `store-${files++}.db`);
const paths = new WeakMap<RecordStore, string>();

function createAt(path: string, storageKey = KEY): SealedStore {
  const s = SealedStore.create({ path, storageKey });
  paths.set(s, path);
  return s;
}

function openAt(path: string, storageKey = KEY): SealedStore {
  const s = SealedStore.open({ path, storageKey });
  paths.set(s, path);
  return s;
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}

/** Edits the SQLite file behind a closed store directly, as an attacker with the disk would. */
function raw(path: string, fn: (db: Database.Database) => void): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    fn(db);
  } finally {
    db.close();
  }
}

const idKey = (id: string): Buffer => Buffer.from(id, 'utf16le').swap16();

storeConformance('MemoryRecordStore', {
  open: () => new MemoryRecordStore(),
});

storeConformance('SealedStore', {
  open: () => createAt(newPath()),
  reopen: (s) => {
    const path = paths.get(s);
    assert.ok(path !== undefined);
    s.close();
    return openAt(path);
  },
});

void describe('storage key derivation', () => {
  /** HKDF-SHA-256 written out from RFC 5869 §2.2-2.3, independent of node's hkdfSync. */
  function hkdfReference(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
    const prk = createHmac('sha256', salt).update(ikm).digest();
    const blocks: Buffer[] = [];
    let t = Buffer.alloc(0);
    for (let i = 1; blocks.length * 32 < length; i++) {
      t = createHmac('sha256', prk).update(Buffer.concat([t, info, Buffer.from([i])])).digest();
      blocks.push(t);
    }
    return Buffer.concat(blocks).subarray(0, length);
  }

  void test('the reference HKDF reproduces RFC 5869 A.1 and A.3 (empty salt and info)', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    assert.equal(
      hkdfReference(ikm, Buffer.from('000102030405060708090a0b0c', 'hex'), Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex'), 42).toString('hex'),
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
    assert.equal(
      hkdfReference(ikm, Buffer.alloc(0), Buffer.alloc(0), 42).toString('hex'),
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
  });

  void test('deriveStorageKey is HKDF-SHA-256(secret, empty salt, STORAGE_KEY_INFO), golden value', () => {
    const secret = SecretBytes.copyOf(seq(32, 0x40));
    const key = deriveStorageKey(secret);
    const hex = key.use((k) => Buffer.from(k).toString('hex'));
    // Cross-checked when committed with Python's hmac module.
    assert.equal(hex, '8c5b31c02aabecb3506d6ec50ed95c9d4c8f28f220e2cacbd313a7aec9cfb025');
    assert.equal(hex, hkdfReference(seq(32, 0x40), new Uint8Array(0), bytes(STORAGE_KEY_INFO), 32).toString('hex'));
    assert.equal(key.equals(deriveStorageKey(SecretBytes.copyOf(seq(32, 0x41)))), false);
    assert.equal(secret.destroyed, false, 'the caller keeps its device secret');
  });

  void test('a device secret of the wrong length is refused', () => {
    throwsCode(() => deriveStorageKey(SecretBytes.copyOf(seq(31, 0))), 'COFFER_CRYPTO_KEY_SIZE');
    throwsCode(() => createAt(newPath(), SecretBytes.copyOf(seq(16, 0))), 'COFFER_CRYPTO_KEY_SIZE');
  });
});

void describe('SealedStore: opening', () => {
  void test('a wrong storage key is detected at open, not later', () => {
    const path = newPath();
    const s = createAt(path);
    s.transaction((tx) => tx.put('objects', 'a', bytes('x')));
    s.close();
    throwsCode(() => openAt(path, OTHER_KEY), 'COFFER_STORE_WRONG_DEVICE');
    openAt(path).close();
  });

  void test('create refuses an existing path; open refuses a missing one; a crashed create leaves nothing', () => {
    const path = newPath();
    throwsCode(() => openAt(path), 'COFFER_STORE_NOT_FOUND');
    writeFileSync(`${path}.creating`, 'half-made store from a crashed create');
    createAt(path).close();
    assert.equal(existsSync(`${path}.creating`), false);
    throwsCode(() => createAt(path), 'COFFER_STORE_EXISTS');
  });

  void test('one owner at a time: a second open while the store is open is refused', () => {
    const path = newPath();
    const s = createAt(path);
    throwsCode(() => openAt(path), 'COFFER_STORE_IN_USE');
    s.close();
    openAt(path).close();
  });

  void test('files are created mode 0600', () => {
    const path = newPath();
    const s = createAt(path);
    s.transaction((tx) => tx.put('objects', 'a', bytes('x')));
    for (const f of [path, `${path}-wal`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    s.close();
  });

  void test('a newer schema version is refused with the version found; a non-store file is refused', () => {
    const path = newPath();
    createAt(path).close();
    const newer = SEALED_STORE_SCHEMA_VERSION + 1;
    raw(path, (db) => db.pragma(`user_version = ${newer}`));
    assert.throws(
      () => openAt(path),
      (e) => isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') && e.detail['version'] === newer,
    );
    const junk = newPath();
    writeFileSync(junk, Buffer.alloc(8192, 0x41));
    chmodSync(junk, 0o600);
    throwsCode(() => openAt(junk), 'COFFER_FORMAT_BAD_MAGIC');
    const empty = newPath();
    const other = new Database(empty);
    other.exec('CREATE TABLE t (x)');
    other.close();
    throwsCode(() => openAt(empty), 'COFFER_FORMAT_BAD_MAGIC');
  });

  void test('a closed store refuses every call; close is idempotent', () => {
    const s = createAt(newPath());
    s.close();
    s.close();
    throwsCode(() => s.get('objects', 'a'), 'COFFER_STORE_CLOSED');
    throwsCode(() => [...s.list('objects')], 'COFFER_STORE_CLOSED');
    throwsCode(() => s.count('objects'), 'COFFER_STORE_CLOSED');
    throwsCode(() => s.transaction(() => 1), 'COFFER_STORE_CLOSED');
  });

  void test('transaction handles do not outlive their transaction; transactions do not nest', () => {
    const s = createAt(newPath());
    let leaked: Parameters<Parameters<SealedStore['transaction']>[0]>[0] | undefined;
    s.transaction((tx) => (leaked = tx));
    assert.throws(() => leaked?.put('objects', 'a', bytes('x')), AssertionFailure);
    assert.throws(() => s.transaction(() => s.transaction(() => 1)), AssertionFailure);
    assert.equal(s.get('objects', 'a'), undefined);
    s.close();
  });
});

/** SQLite temporary files this process holds open (they are unlinked: "(deleted)"). */
function openTemporaryFiles(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return ''; // the directory's own descriptor, gone by now
      }
    })
    .filter((target) => /etilqs_/.test(target));
}

void describe('SealedStore: schema version 1, summaries and staging', () => {
  /** A store as version 1 wrote it: the same tables but `stats`, user_version 1. */
  function versionOne(path: string): void {
    const s = createAt(path);
    s.transaction((tx) => {
      for (let i = 0; i < 150; i++) tx.put('object', `o${String(i).padStart(3, '0')}`, new Uint8Array(i));
      tx.put('object', '😀', bytes('astral'));
      tx.put('user', 'alice', bytes('verifier'));
    });
    s.close();
    raw(path, (db) => {
      db.exec('DROP TABLE stats');
      db.pragma('user_version = 1');
    });
  }

  void test('a version 1 store is upgraded when opened: summaries built from its records, nothing else changed', () => {
    const path = newPath();
    versionOne(path);
    const s = openAt(path);
    assert.deepEqual(s.summary('object'), { records: 151, idBytes: 150 * 4 + 4, valueBytes: (149 * 150) / 2 + 6, astralIds: 1 });
    assert.deepEqual(s.summary('user'), { records: 1, idBytes: 5, valueBytes: 8, astralIds: 0 });
    assert.equal(new TextDecoder().decode(s.get('object', '😀')), 'astral');
    s.close();
    raw(path, (db) => assert.equal(db.pragma('user_version', { simple: true }), SEALED_STORE_SCHEMA_VERSION));
  });

  void test('a summary row that cannot be one is COFFER_STORE_TAMPERED when read', () => {
    const path = newPath();
    const s = createAt(path);
    s.transaction((tx) => tx.put('object', 'a', bytes('x')));
    s.close();
    const edits = [
      'UPDATE stats SET records = -1',
      'UPDATE stats SET astral_ids = 5',
      "UPDATE stats SET value_bytes = 'many'",
      'UPDATE stats SET records = 0',
      'UPDATE stats SET value_bytes = 1 << 40', // more than one record can hold
      'UPDATE stats SET id_bytes = 513',
    ];
    for (const edit of edits) {
      raw(path, (db) => {
        db.exec("DELETE FROM stats; INSERT INTO stats VALUES ('object', 1, 1, 1, 0)");
        db.exec(edit);
      });
      const again = openAt(path);
      throwsCode(() => again.summary('object'), 'COFFER_STORE_TAMPERED');
      assert.equal(new TextDecoder().decode(again.get('object', 'a')), 'x', 'the records themselves are fine');
      again.close();
    }
  });

  void test('staging writes only the temporary database: the store file and its WAL stay as they were until the adopting commit', () => {
    const path = newPath();
    const s = createAt(path);
    s.transaction((tx) => tx.put('object', 'a', bytes('x')));
    const wal = statSync(`${path}-wal`).size;
    const file = statSync(path).size;
    const st = s.stage();
    for (let i = 0; i < 2000; i++) st.put('object', `s${i}`, new Uint8Array(200).fill(i));
    s.transaction((tx) => tx.put('user', 'u', bytes('a live write between staged ones')));
    const afterLive = statSync(`${path}-wal`).size;
    assert.ok(afterLive - wal <= 4 * (4096 + 24), `the live write alone reached the WAL (${afterLive - wal} bytes)`);
    for (let i = 2000; i < 4000; i++) st.put('object', `s${i}`, new Uint8Array(200).fill(i));
    assert.equal(statSync(`${path}-wal`).size, afterLive);
    assert.equal(statSync(path).size, file);
    // The staged rows are in the temporary database's file, unlinked since it was made (Linux shows it).
    assert.equal(openTemporaryFiles().length, 1, 'one temporary file, open and unlinked');
    s.transaction((tx) => tx.adopt(st));
    st.discard();
    assert.deepEqual(openTemporaryFiles(), [], 'dropping the staging closed its file: the space is freed');
    assert.ok(statSync(`${path}-wal`).size > afterLive + 4000 * 200, 'the adopting commit wrote the records');
    assert.equal(s.count('object'), 4000);
    s.close();
  });
});

void describe('SealedStore: records on disk', () => {
  /** A closed store with two records, and its path. */
  function twoRecords(): string {
    const path = newPath();
    const s = createAt(path);
    s.transaction((tx) => {
      tx.put('objects', 'a', bytes('record a'));
      tx.put('objects', 'b', bytes('record b'));
    });
    s.close();
    return path;
  }

  void test('a flipped ciphertext byte is COFFER_STORE_TAMPERED on get and list; other records still read', () => {
    const path = twoRecords();
    raw(path, (db) => {
      const v = db.prepare<[Buffer], Buffer>("SELECT v FROM records WHERE ns = 'objects' AND id = ?").pluck().get(idKey('a'));
      assert.ok(v !== undefined);
      v[30] = (v[30] ?? 0) ^ 0x01;
      db.prepare("UPDATE records SET v = ? WHERE ns = 'objects' AND id = ?").run(v, idKey('a'));
    });
    const s = openAt(path);
    throwsCode(() => s.get('objects', 'a'), 'COFFER_STORE_TAMPERED');
    throwsCode(() => [...s.list('objects')], 'COFFER_STORE_TAMPERED');
    assert.equal(new TextDecoder().decode(s.get('objects', 'b')), 'record b');
    s.close();
  });

  void test('a record moved to another id or namespace is refused', () => {
    const path = twoRecords();
    raw(path, (db) => {
      db.prepare("UPDATE records SET id = ? WHERE ns = 'objects' AND id = ?").run(idKey('c'), idKey('a'));
      db.prepare("UPDATE records SET ns = 'users' WHERE ns = 'objects' AND id = ?").run(idKey('b'));
    });
    const s = openAt(path);
    throwsCode(() => s.get('objects', 'c'), 'COFFER_STORE_TAMPERED');
    throwsCode(() => s.get('users', 'b'), 'COFFER_STORE_TAMPERED');
    s.close();
  });

  void test("a record copied from another store under the same key is refused (the store id is in the AAD)", () => {
    const source = twoRecords();
    const target = twoRecords();
    const v = (() => {
      let out: Buffer | undefined;
      raw(source, (db) => (out = db.prepare<[Buffer], Buffer>("SELECT v FROM records WHERE ns = 'objects' AND id = ?").pluck().get(idKey('a'))));
      return out;
    })();
    raw(target, (db) => db.prepare("UPDATE records SET v = ? WHERE ns = 'objects' AND id = ?").run(v, idKey('a')));
    const s = openAt(target);
    throwsCode(() => s.get('objects', 'a'), 'COFFER_STORE_TAMPERED');
    s.close();
    // Taking the other store's whole identity (store id and key check) only moves the problem:
    // every record of this store then fails.
    raw(source, (db) => {
      const meta = db.prepare<[], { k: string; v: Buffer }>('SELECT k, v FROM meta').all();
      raw(target, (t) => {
        for (const m of meta) t.prepare('UPDATE meta SET v = ? WHERE k = ?').run(m.v, m.k);
      });
    });
    const s2 = openAt(target);
    throwsCode(() => s2.get('objects', 'b'), 'COFFER_STORE_TAMPERED');
    s2.close();
  });

  void test("a swapped store id or key check is detected at open", () => {
    const path = twoRecords();
    raw(path, (db) => db.prepare("UPDATE meta SET v = ? WHERE k = 'store_id'").run(Buffer.alloc(16, 7)));
    throwsCode(() => openAt(path), 'COFFER_STORE_WRONG_DEVICE');
    raw(path, (db) => db.prepare("DELETE FROM meta WHERE k = 'key_check'").run());
    throwsCode(() => openAt(path), 'COFFER_STORE_TAMPERED');
  });

  void test('a record in a newer envelope version says so instead of "tampered"', () => {
    const path = twoRecords();
    raw(path, (db) => {
      const v = db.prepare<[Buffer], Buffer>("SELECT v FROM records WHERE ns = 'objects' AND id = ?").pluck().get(idKey('a'));
      assert.ok(v !== undefined);
      v[4] = 2;
      db.prepare("UPDATE records SET v = ? WHERE ns = 'objects' AND id = ?").run(v, idKey('a'));
    });
    const s = openAt(path);
    assert.throws(
      () => s.get('objects', 'a'),
      (e) => isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') && e.detail['version'] === 2,
    );
    s.close();
  });

  void test('no plaintext and no key reaches disk (database and WAL, while open and after close)', () => {
    const path = newPath();
    const marker = bytes('COFFER-PLAINTEXT-MARKER-7f3a9c');
    const big = new Uint8Array(20_000);
    for (let i = 0; i < big.length; i += marker.length) big.set(marker.subarray(0, Math.min(marker.length, big.length - i)), i);
    const s = createAt(path);
    s.transaction((tx) => {
      tx.put('objects', 'small', marker);
      tx.put('objects', 'big', big);
    });
    const needles = [marker, seq(32, 0x10)]; // the record marker and the storage key itself
    const scan = (): void => {
      const found = readdirSync(DIR).filter((f) => f.startsWith(path.slice(DIR.length + 1)));
      assert.ok(found.length >= 1);
      for (const f of found) {
        const data = readFileSync(join(DIR, f));
        for (const n of needles) assert.equal(data.indexOf(n), -1, `${f} holds a secret in clear`);
      }
    };
    assert.ok(statSync(`${path}-wal`).size > 0, 'the commit is in the WAL');
    scan();
    s.close();
    scan();
    assert.deepEqual(openAt(path).get('objects', 'small'), marker);
  });

  void test('a write costs O(record): one put adds a few WAL pages, whatever the store size', () => {
    const path = newPath();
    const s = createAt(path);
    const value = new Uint8Array(300).fill(1);
    s.transaction((tx) => {
      for (let i = 0; i < 5000; i++) tx.put('objects', `obj-${String(i).padStart(6, '0')}`, value);
    });
    s.close();
    const pageBytes = 4096;
    assert.ok(statSync(path).size > 300 * pageBytes, 'the store spans hundreds of pages');
    const again = openAt(path);
    again.transaction((tx) => tx.put('objects', 'obj-002500x', value));
    const frames = (statSync(`${path}-wal`).size - 32) / (24 + pageBytes);
    assert.ok(frames >= 1 && frames <= 4, `one put wrote ${frames} pages`);
    again.close();
  });
});
