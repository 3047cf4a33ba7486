// One step of the backup benchmark (bench/backup_bench.ts), run in a child process of its own so
// that the peak resident memory it reports (process.resourceUsage().maxRSS at exit) belongs to that
// step alone: createBackup and restoreBackup are synchronous, so no timer can sample memory while
// they run. Prints one JSON line on stdout. Not a benchmark by itself; the parent runs it as:
//
//   populate <dir> <name> <objects>   a commissioned device in <dir>/<name>.db with a crypto user
//                                     and <objects> mixed token objects
//   backup   <dir> <name> <blobPath>  createBackup of that device to a new file
//   restore  <dir> <name> <blobPath>  restoreBackup of the file into that device; also reports the
//                                     peak RSS when the last body byte is staged (before the switch)
//   scan     <dir> <name> -           the anchor: opens the device's sealed store (no device) and
//                                     reads, decrypting, every record once
//   open     <dir> <name> -           opens the device (its object index loaded): what holding
//                                     that state costs in memory, and its index's buffers in bytes
//
// The development manufacturer and operator come from <dir>/factory and <dir>/operator (written by
// the parent with saveManufacturer/saveOperator), the device secret from <dir>/<name>.secret.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SecretBytes } from '../src/crypto/secret_bytes.js';
import { fileSink } from '../src/hsm/backup/backup.js';
import { fileSource } from '../src/hsm/backup/file_source.js';
import { loadManufacturer, loadOperator, readKeyFile } from '../src/factory/ceremony.js';
import { xorComponents } from '../src/crypto/backup_keys.js';
import { Hsm, type Session } from '../src/hsm/device.js';
import { provisionDevelopmentDevice, type DevelopmentAuthorities } from '../src/factory/development.js';
import { SealedStore, deriveStorageKey } from '../src/hsm/store/sealed_store.js';

const FAST_KDF = { log2N: 4, r: 1, p: 1 }; // logins are not what is measured
const PASSWORD = 'bench-password';
const CLUSTER = 'cluster-benchbackup2';

/** Per 10 objects: 6 AES-256 keys, 2 generic secrets (HMAC), 1 EC P-256 key pair (2 objects). */
async function populateObjects(s: Session, count: number): Promise<void> {
  let made = 0;
  while (made < count) {
    const slot = made % 10;
    if (slot === 8 && count - made >= 2) {
      await s.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: `ec-pub-${made}` }, { label: `ec-priv-${made}` });
      made += 2;
    } else {
      await s.generateKey(slot >= 6 && slot < 8 ? { keyType: 'GENERIC_SECRET', bits: 256 } : { keyType: 'AES', bits: 256 }, { label: `key-${made}` });
      made++;
    }
  }
}

async function authoritiesIn(dir: string): Promise<DevelopmentAuthorities> {
  const components = [1, 2].map((i) => readKeyFile(join(dir, 'operator', `akbk-component-${i}.bin`)));
  try {
    return { manufacturer: await loadManufacturer(join(dir, 'factory')), operator: await loadOperator(join(dir, 'operator')), akbk: xorComponents(components) };
  } finally {
    for (const c of components) c.destroy();
  }
}

/** Opens (or creates, with a fresh device secret) the device's sealed store. */
function openStore(dir: string, name: string, sync: 'full' | 'normal'): SealedStore {
  const secretPath = join(dir, `${name}.secret`);
  const path = join(dir, `${name}.db`);
  const create = !existsSync(secretPath);
  if (create) writeFileSync(secretPath, randomBytes(32), { mode: 0o600 });
  const secret = SecretBytes.copyOf(new Uint8Array(readFileSync(secretPath)));
  const storageKey = deriveStorageKey(secret);
  try {
    return create ? SealedStore.create({ path, storageKey, sync }) : SealedStore.open({ path, storageKey, sync });
  } finally {
    secret.destroy();
    storageKey.destroy();
  }
}

async function populate(dir: string, name: string, objects: number): Promise<Record<string, number>> {
  // Populating is set-up, not what is measured: sync=normal skips an fsync per generated key.
  const hsm = Hsm.open({ store: openStore(dir, name, 'normal'), kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, await authoritiesIn(dir), { mode: 'NON_FIPS' });
  await hsm.initialiseUsers('bench-preco', 'bench-appliance-credential');
  await hsm.activate('bench-preco', 'bench-admin-password');
  const admin = hsm.openSession();
  await admin.login('admin', 'bench-admin-password');
  await admin.createUser('bench', PASSWORD, 'crypto-user');
  const s = hsm.openSession();
  await s.login('bench', PASSWORD);
  const start = performance.now();
  await populateObjects(s, objects);
  const seconds = (performance.now() - start) / 1000;
  hsm.close();
  return { seconds, objects };
}

const maxRss = (): number => process.resourceUsage().maxRSS * 1024; // kilobytes

/** Measures `fn` from a settled baseline (after `setUp` and a GC); `fn` gets what `setUp` made. */
async function measuredFrom<S>(setUp: () => S, fn: (subject: S) => Record<string, number> | Promise<Record<string, number>>, tearDown: (subject: S) => void): Promise<Record<string, number>> {
  const subject = setUp();
  globalThis.gc?.();
  const baselineRss = process.memoryUsage().rss;
  const start = performance.now();
  const result = await fn(subject);
  const seconds = (performance.now() - start) / 1000;
  tearDown(subject);
  return { ...result, seconds, baselineRss, peakRss: maxRss() };
}

/** Opens the device at full durability (the production setting) and measures `fn` from a settled baseline. */
function measured(dir: string, name: string, fn: (hsm: Hsm) => Record<string, number> | Promise<Record<string, number>>): Promise<Record<string, number>> {
  return measuredFrom(() => Hsm.open({ store: openStore(dir, name, 'full'), kdfParams: FAST_KDF }), fn, (hsm) => hsm.close());
}

/** The anchor: every record of the store read (decrypted) once, namespace by namespace. */
function scan(store: SealedStore): Record<string, number> {
  let records = 0;
  let bytes = 0;
  for (const ns of store.namespaces()) {
    for (const [, value] of store.list(ns)) {
      records++;
      bytes += value.length;
      value.fill(0);
    }
  }
  return { records, plaintextBytes: bytes };
}

async function main(): Promise<void> {
  const [command, dir, name, arg] = process.argv.slice(2);
  if (dir === undefined || name === undefined || arg === undefined) throw new Error('usage: populate|backup|restore|scan|open <dir> <name> <objects|blobPath|->');
  let out: Record<string, number>;
  if (command === 'populate') {
    out = await populate(dir, name, Number(arg));
  } else if (command === 'backup') {
    out = await measured(dir, name, (hsm) => {
      const sink = fileSink(arg);
      try {
        const summary = hsm.createBackup(sink, { clusterId: CLUSTER });
        return { bytes: summary.bytes, records: summary.records, objects: summary.objects };
      } finally {
        sink.close();
      }
    });
  } else if (command === 'restore') {
    out = await measured(dir, name, async (hsm) => {
      const source = fileSource(arg);
      let stagedPeakRss = 0;
      const onProgress = (done: number, total: number): void => {
        if (done === total) stagedPeakRss = maxRss();
      };
      try {
        const summary = await hsm.restoreBackup(source, { onProgress });
        return { bytes: summary.bytes, records: summary.records, objects: summary.objects, tokenObjects: hsm.status().tokenObjects, stagedPeakRss };
      } finally {
        source.close();
      }
    });
  } else if (command === 'scan') {
    out = await measuredFrom(() => openStore(dir, name, 'full'), scan, (store) => store.close());
  } else if (command === 'open') {
    out = await measuredFrom(() => undefined, () => {
      const hsm = Hsm.open({ store: openStore(dir, name, 'full'), kdfParams: FAST_KDF });
      const tokenObjects = hsm.status().tokenObjects;
      const indexBytes = hsm.objects().indexBytes;
      hsm.close();
      return { tokenObjects, indexBytes };
    }, () => undefined);
  } else {
    throw new Error(`unknown step ${command ?? ''}`);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

await main();
