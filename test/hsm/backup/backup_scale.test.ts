// Backup and restore at scale (docs/architecture.md §3: bounded memory whatever the size): 100,000 token
// objects made through a session on a memory-store device, backed up, and restored into a
// sealed-store device (staged, then switched in one transaction). Reads and writes never exceed one
// sealed segment (the memory bound, checked), and the target answers like the source. About 15–25 s
// on 2 cores; the timings are printed as diagnostics (figures to compare are in the bench).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { BACKUP_SEGMENT_BYTES, bufferSource, type BackupSource } from '../../../src/formats/backup.js';
import { bufferSink } from '../../../src/hsm/backup/backup.js';
import { createDevelopmentAuthorities } from '../../../src/factory/development.js';
import { SealedStore, deriveStorageKey } from '../../../src/hsm/store/sealed_store.js';
import { CLUSTER, activeDevice, commissionedDevice, hex } from './backup_support.js';

const OBJECTS = 100_000;
const DIR = mkdtempSync(join(tmpdir(), 'coffer-backup-scale-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

test(`${OBJECTS} objects: backup and restore into a sealed store, one sealed segment at a time`, async (t) => {
  const timed = <T>(what: string, fn: () => T): T => {
    const start = performance.now();
    const out = fn();
    t.diagnostic(`${what}: ${(performance.now() - start).toFixed(0)} ms`);
    return out;
  };
  const timedAsync = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    const out = await fn();
    t.diagnostic(`${what}: ${(performance.now() - start).toFixed(0)} ms`);
    return out;
  };
  const authorities = await createDevelopmentAuthorities();
  const src = await activeDevice(authorities);
  const handles = await timedAsync(`generate ${OBJECTS} AES keys`, async () => {
    const made: number[] = [];
    for (let i = 0; i < OBJECTS; i++) made.push(await src.alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `k${i}` }));
    return made;
  });

  const sealedMax = BACKUP_SEGMENT_BYTES + 16;
  let largestWrite = 0;
  let headerWrite = 0;
  const inner = bufferSink();
  const sink = {
    write: (c: Uint8Array): void => {
      if (headerWrite === 0) headerWrite = c.length; // the header is written whole (≤ 64 KiB)
      else largestWrite = Math.max(largestWrite, c.length);
      inner.write(c);
    },
  };
  const summary = timed('createBackup (memory store)', () => src.hsm.createBackup(sink, { clusterId: CLUSTER }));
  const blob = inner.bytes();
  t.diagnostic(`blob: ${blob.length} bytes, ${summary.records} records`);
  assert.equal(summary.objects, OBJECTS);
  assert.ok(largestWrite <= sealedMax, `largest write ${largestWrite}`);

  const store = SealedStore.create({ path: join(DIR, 'target.db'), storageKey: deriveStorageKey(SecretBytes.random(32)), sync: 'normal' });
  const target = await commissionedDevice(authorities, { store });
  let largestRead = 0;
  const plain = bufferSource(blob);
  const watched: BackupSource = {
    length: plain.length,
    read: (at, n) => {
      if (at > 0) largestRead = Math.max(largestRead, n); // the header is read whole (≤ 64 KiB)
      return plain.read(at, n);
    },
  };
  await timedAsync('restoreBackup (into the sealed store)', () => target.restoreBackup(watched));
  assert.ok(largestRead <= sealedMax, `largest read ${largestRead}`);
  const digest = timed('stateDigest (sealed store)', () => target.stateDigest());
  assert.equal(hex(digest), hex(src.hsm.stateDigest()));
  assert.equal(target.status().tokenObjects, OBJECTS);

  const alice = target.openSession();
  await alice.login('alice', 'alice-password');
  const last = handles.at(-1) ?? assert.fail('handles');
  const ct = src.alice.encrypt(last, { mechanism: 'CKM_AES_GCM' }, new Uint8Array(32));
  assert.equal(hex(alice.decrypt(last, { mechanism: 'CKM_AES_GCM' }, ct)), hex(new Uint8Array(32)));
  assert.equal(alice.getAttributes(last).label, `k${OBJECTS - 1}`);
  target.close();
});
