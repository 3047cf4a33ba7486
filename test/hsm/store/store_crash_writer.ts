// Child process of store_crash.test.ts. In its default mode it opens the sealed store named by
// COFFER_CRASH_STORE and commits transaction after transaction (counter n+1, then n+2, …) until it is
// killed, printing "commit <n>" after each commit returns. Transaction n's writes are a pure function
// of n (opsFor, or stagedFor for every REPLACE_EVERY-th: a staged wholesale replacement of the bulk
// namespace), so the parent can rebuild the exact state after any committed transaction.
//
// COFFER_CRASH_MODE=hang-staging stages more than one batch and prints "staged"; COFFER_CRASH_MODE=
// hang-adopted also adopts inside a transaction and prints "adopted"; both then block (the parent
// kills them there, mid-staging or inside the switch).
//
// Run without COFFER_CRASH_STORE (as `node --test dist/test/` does with every file under test/),
// it does nothing and exits 0.

import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { SEALED_STAGE_BATCH_RECORDS } from '../../../src/formats/limits.js';
import { SealedStore } from '../../../src/hsm/store/sealed_store.js';
import type { RecordStaging, RecordTx } from '../../../src/hsm/store/store_port.js';
import { mulberry32 } from '../../helpers.js';
export { mulberry32 };

/** Fixed test key: this store holds nothing secret. */
export const CRASH_STORAGE_KEY = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i);
export const COUNTER_NS = 'meta';
export const COUNTER_ID = 'counter';
export const DATA_NS = 'data';
/** The namespace a staged replacement fills (wholesale). */
export const BULK_NS = 'bulk';
const DATA_IDS = 48;
/** Every REPLACE_EVERY-th transaction is a staged replacement of BULK_RECORDS records: small, so that a
 * writer killed within ~100 ms of its start still gets past one on a busy machine. The hang modes
 * stage more than one batch (BULK_RECORDS_HANG). */
export const REPLACE_EVERY = 6;
const BULK_RECORDS = 400;
const BULK_RECORDS_HANG = SEALED_STAGE_BATCH_RECORDS + 904;

export type Op = { readonly put: true; readonly ns: string; readonly id: string; readonly value: Uint8Array } | { readonly put: false; readonly ns: string; readonly id: string };

function valueFor(n: number, id: string, size: number): Uint8Array {
  const v = new Uint8Array(size);
  for (let i = 0; i < size; i++) v[i] = (n * 31 + i) & 0xff;
  v.set(new TextEncoder().encode(`${n}:${id}:`).subarray(0, size));
  return v;
}

export function encodeCounter(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

export function decodeCounter(b: Uint8Array | undefined): number {
  return b === undefined ? 0 : Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0));
}

export const isReplacement = (n: number): boolean => n % REPLACE_EVERY === 0;

/** The writes of an ordinary transaction n ≥ 1: 2-7 puts or deletes of data records (a few large
 * enough to span several pages) and the counter, all in one transaction. */
export function opsFor(n: number): Op[] {
  const rand = mulberry32(n * 0x9e3779b1);
  const ops: Op[] = [{ put: true, ns: COUNTER_NS, id: COUNTER_ID, value: encodeCounter(n) }];
  const writes = 2 + Math.floor(rand() * 6);
  for (let i = 0; i < writes; i++) {
    const id = `d${String(Math.floor(rand() * DATA_IDS)).padStart(2, '0')}`;
    if (rand() < 0.3) {
      ops.push({ put: false, ns: DATA_NS, id });
    } else {
      const size = rand() < 0.05 ? 48 * 1024 : Math.floor(rand() * 2048);
      ops.push({ put: true, ns: DATA_NS, id, value: valueFor(n, id, size) });
    }
  }
  return ops;
}

/** The records a replacement n stages: after it, BULK_NS holds exactly these and DATA_NS nothing. */
export function stagedFor(n: number, records = BULK_RECORDS): [string, Uint8Array][] {
  return Array.from({ length: records }, (_, i) => {
    const id = `b${String(i).padStart(5, '0')}`;
    return [id, valueFor(n, id, 16 + ((n + i) % 48))];
  });
}

export function applyOps(tx: RecordTx, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.put) tx.put(op.ns, op.id, op.value);
    else tx.delete(op.ns, op.id);
  }
}

function stageAll(store: SealedStore, n: number, records?: number): RecordStaging {
  const staging = store.stage();
  for (const [id, value] of stagedFor(n, records)) staging.put(BULK_NS, id, value);
  return staging;
}

/** The switch of replacement n: the data cleared, the staged bulk adopted, the counter. */
function switchTo(tx: RecordTx, staging: RecordStaging, n: number): void {
  tx.clear(DATA_NS);
  tx.adopt(staging);
  tx.put(COUNTER_NS, COUNTER_ID, encodeCounter(n));
}

function replace(store: SealedStore, n: number): void {
  const staging = stageAll(store, n);
  try {
    store.transaction((tx) => switchTo(tx, staging, n));
  } finally {
    staging.discard();
  }
}

/** Blocks this thread (no event loop turn) until killed; bounded so an orphan ends by itself. */
function hang(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
}

function main(path: string, mode: string | undefined): void {
  const store = SealedStore.open({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) });
  let n = decodeCounter(store.get(COUNTER_NS, COUNTER_ID));
  if (mode === 'hang-staging' || mode === 'hang-adopted') {
    const staging = stageAll(store, n + 1, BULK_RECORDS_HANG);
    process.stdout.write('staged\n');
    if (mode === 'hang-adopted') {
      store.transaction((tx) => {
        switchTo(tx, staging, n + 1);
        process.stdout.write('adopted\n');
        hang();
      });
    }
    hang();
    return;
  }
  process.stdout.write(`ready ${n}\n`);
  // Bounded so an orphaned writer (parent gone) stops by itself.
  for (let i = 0; i < 1_000_000; i++) {
    n++;
    if (isReplacement(n)) {
      replace(store, n);
    } else {
      const ops = opsFor(n);
      store.transaction((tx) => applyOps(tx, ops));
    }
    process.stdout.write(`commit ${n}\n`); // synchronous for pipes on Linux
  }
  store.close();
}

const storePath = process.env['COFFER_CRASH_STORE'];
if (storePath !== undefined && process.argv[1]?.endsWith('store_crash_writer.js') === true) main(storePath, process.env['COFFER_CRASH_MODE']);
