// How backup and restore use the device's sealed store (src/hsm/backup/backup.ts, src/hsm/store/): a
// backup reads each sealed record exactly once (its body is sized from the namespace summaries, not
// from a first pass over the records); summaries that disagree with the records give
// COFFER_STORE_TAMPERED, never a blob its header misdescribes; a restore stages the new state aside,
// so one refused while writing leaves the live store file untouched.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { bufferSource, peekBackupHeaderLength, type BackupSource } from '../../../src/formats/backup.js';
import { bufferSink } from '../../../src/hsm/backup/backup.js';
import { Hsm } from '../../../src/hsm/device.js';
import { createDevelopmentAuthorities, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import { SealedStore, deriveStorageKey } from '../../../src/hsm/store/sealed_store.js';
import type { NamespaceSummary, RecordStaging, RecordStore, RecordTx } from '../../../src/hsm/store/store_port.js';
import { CLUSTER, FAST_KDF, activateWithAlice, activeDevice, backupOf, commissionedDevice, hex, rejects, rejectsAsync } from './backup_support.js';

const DIR = mkdtempSync(join(tmpdir(), 'coffer-backup-store-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
let files = 0;
const newPath = (): string => join(DIR, `store-${files++}.db`);
const SECRET = SecretBytes.random(32);
const openStore = (path: string): SealedStore => SealedStore.open({ path, storageKey: deriveStorageKey(SECRET), sync: 'normal' });

let authorities: DevelopmentAuthorities;
before(async () => {
  authorities = await createDevelopmentAuthorities();
});

/** A sealed store that counts what is read of it: records handed out per namespace and id, and calls. */
class CountingStore implements RecordStore {
  readonly reads = new Map<string, number>();
  readonly calls = { list: 0, sizes: 0, get: 0, summary: 0 };
  constructor(readonly inner: SealedStore) {}
  reset(): void {
    this.reads.clear();
    for (const k of Object.keys(this.calls) as (keyof CountingStore['calls'])[]) this.calls[k] = 0;
  }
  #read(ns: string, id: string): void {
    this.reads.set(`${ns}/${id}`, (this.reads.get(`${ns}/${id}`) ?? 0) + 1);
  }
  get(ns: string, id: string): Uint8Array | undefined {
    this.calls.get++;
    const v = this.inner.get(ns, id);
    if (v !== undefined) this.#read(ns, id);
    return v;
  }
  *list(ns: string): IterableIterator<[string, Uint8Array]> {
    this.calls.list++;
    for (const [id, v] of this.inner.list(ns)) {
      this.#read(ns, id);
      yield [id, v];
    }
  }
  sizes(ns: string): IterableIterator<[string, number]> {
    this.calls.sizes++;
    return this.inner.sizes(ns);
  }
  summary(ns: string): NamespaceSummary {
    this.calls.summary++;
    return this.inner.summary(ns);
  }
  count(ns: string): number {
    return this.inner.count(ns);
  }
  namespaces(): string[] {
    return this.inner.namespaces();
  }
  transaction<T>(fn: (tx: RecordTx) => T): T {
    return this.inner.transaction(fn);
  }
  stage(): RecordStaging {
    return this.inner.stage();
  }
  close(): void {
    this.inner.close();
  }
}

test('createBackup reads each sealed record once: one list per namespace, no sizing pass', async () => {
  const store = new CountingStore(SealedStore.create({ path: newPath(), storageKey: deriveStorageKey(SECRET), sync: 'normal' }));
  const hsm = await commissionedDevice(authorities, { store });
  await hsm.initialiseUsers('preco-password', 'appliance-credential-0123456789');
  const { alice } = await activateWithAlice(hsm);
  for (let i = 0; i < 150; i++) await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `k${i}` });
  const travelling = store.namespaces().filter((ns) => ns !== 'device');
  const records = travelling.reduce((n, ns) => n + store.count(ns), 0);
  store.reset();
  const summary = hsm.createBackup(bufferSink(), { clusterId: CLUSTER });
  assert.equal(summary.records, records);
  assert.equal(store.calls.sizes, 0, 'no pass over the records to size the body');
  assert.equal(store.calls.list, travelling.length, 'one list per namespace');
  // (The device's own records — its keys, for the PBK — are read too; they never travel.)
  const body = (): number[] => [...store.reads].filter(([key]) => !key.startsWith('device/')).map(([, n]) => n);
  assert.equal(body().length, records, 'every record that travels was read');
  assert.deepEqual([...new Set(body())], [1], 'and each exactly once');
  // A namespace whose ids mix astral characters with U+E000–U+FFFF is sorted by id first: still one read per record.
  store.transaction((tx) => {
    for (const id of ['\uFFFF', '😀', 'a', '\uE000']) tx.put('x', id, new TextEncoder().encode(id));
  });
  store.reset();
  hsm.createBackup(bufferSink(), { clusterId: CLUSTER });
  assert.equal(store.calls.sizes, 1, 'the ids of the one unordered namespace');
  assert.deepEqual([...new Set(body())], [1]);
  assert.equal(body().length, records + 4);
  hsm.close();
});

/** A closed device's store file with its stats table edited as an attacker with the disk would. */
function editStats(path: string, sql: string): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

test('summaries that disagree with the records: COFFER_STORE_TAMPERED, and what was written is refused by every restore', async () => {
  const path = newPath();
  const device = await activeDevice(authorities, { store: SealedStore.create({ path, storageKey: deriveStorageKey(SECRET), sync: 'normal' }) });
  for (let i = 0; i < 30; i++) await device.alice.generateKey({ keyType: 'AES', bits: 128 }, { label: `k${i}` });
  const good = backupOf(device.hsm);
  device.hsm.close();
  const target = await commissionedDevice(authorities);
  for (const sql of [
    "UPDATE stats SET records = records + 1 WHERE ns = 'object'", // one record more than there is
    "UPDATE stats SET records = records - 1, value_bytes = value_bytes - 10 WHERE ns = 'object'", // one fewer
    "UPDATE stats SET value_bytes = value_bytes + 1 WHERE ns = 'object'", // a byte more
    "UPDATE stats SET records = records + 1 WHERE ns = 'user'; UPDATE stats SET records = records - 1 WHERE ns = 'object'", // the same total, moved
  ]) {
    editStats(path, 'DROP TABLE stats; PRAGMA user_version = 1;');
    openStore(path).close(); // the upgrade from version 1 rebuilds true summaries
    editStats(path, sql);
    const hsm = Hsm.open({ store: openStore(path), kdfParams: FAST_KDF });
    const sink = bufferSink();
    rejects(() => hsm.createBackup(sink, { clusterId: CLUSTER }), 'COFFER_STORE_TAMPERED', sql);
    const partial = sink.bytes();
    if (partial.length > 0) await rejectsAsync(target.restoreBackup(bufferSource(partial)), 'COFFER_BACKUP_TAMPERED');
    hsm.close();
  }
  // Put right, the same store backs up to the same state again.
  editStats(path, 'DROP TABLE stats; PRAGMA user_version = 1;');
  const hsm = Hsm.open({ store: openStore(path), kdfParams: FAST_KDF });
  const again = backupOf(hsm);
  await target.restoreBackup(bufferSource(again));
  assert.equal(hex(target.stateDigest()), hex(hsm.stateDigest()));
  const other = await commissionedDevice(authorities);
  await other.restoreBackup(bufferSource(good));
  assert.equal(hex(other.stateDigest()), hex(hsm.stateDigest()));
  hsm.close();
});

test('a record id the format cannot hold (the empty id) is refused before anything is written', async () => {
  const store = SealedStore.create({ path: newPath(), storageKey: deriveStorageKey(SECRET), sync: 'normal' });
  const hsm = await commissionedDevice(authorities, { store });
  store.transaction((tx) => tx.put('policy', '', new TextEncoder().encode('nameless')));
  const written: number[] = [];
  rejects(() => hsm.createBackup({ write: (c) => void written.push(c.length) }, { clusterId: CLUSTER }), 'COFFER_FORMAT_MALFORMED');
  assert.deepEqual(written, []);
  hsm.close();
});

test('a restore refused while it writes (a source altered in pass 2) leaves the live store file untouched', async () => {
  const source = await activeDevice(authorities);
  for (let i = 0; i < 40; i++) await source.alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `k${i}` });
  const blob = backupOf(source.hsm, { segmentBytes: 512 });
  const path = newPath();
  const target = await activeDevice(authorities, { store: SealedStore.create({ path, storageKey: deriveStorageKey(SECRET), sync: 'normal' }) });
  await target.alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'target only' });
  const digest = hex(target.hsm.stateDigest());
  const wal = statSync(`${path}-wal`).size;
  const h = peekBackupHeaderLength(blob.subarray(0, 12));
  const last = h + 4 * (512 + 16); // the fifth segment: read once by each pass
  const reads = new Map<number, number>();
  const sneaky: BackupSource = {
    length: blob.length,
    read(at, n) {
      const out = blob.slice(at, at + n);
      const times = (reads.get(at) ?? 0) + 1;
      reads.set(at, times);
      if (at === last && times === 2) out[3] = (out[3] ?? 0) ^ 1; // honest in pass 1, altered in pass 2
      return out;
    },
  };
  await rejectsAsync(target.hsm.restoreBackup(sneaky), 'COFFER_BACKUP_TAMPERED');
  assert.equal(reads.get(last), 2, 'refused in pass 2, after records were staged');
  assert.equal(statSync(`${path}-wal`).size, wal, 'nothing reached the live file');
  assert.equal(hex(target.hsm.stateDigest()), digest, 'state unchanged');
  assert.equal(target.alice.find({ label: 'target only' }).length, 1, 'sessions still work');
  // The staging was dropped: the next restore stages and lands.
  await target.hsm.restoreBackup(bufferSource(blob));
  assert.equal(hex(target.hsm.stateDigest()), hex(source.hsm.stateDigest()));
  target.hsm.close();
});
