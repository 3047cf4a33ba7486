// Child process of store_crash.test.ts: opens the sealed store named by COFFER_CRASH_STORE and
// commits transaction after transaction (counter n+1, then n+2, …) until it is killed, printing
// "commit <n>" after each commit returns. Transaction n's writes are a pure function of n
// (opsFor), so the parent can rebuild the exact state after any committed transaction.
//
// Run without COFFER_CRASH_STORE (as `node --test dist/test/` does with every file under test/),
// it does nothing and exits 0.

import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { SealedStore } from '../../../src/hsm/store/sealed_store.js';
import type { RecordTx } from '../../../src/hsm/store/store_port.js';
import { mulberry32 } from '../../helpers.js';
export { mulberry32 };

/** Fixed test key: this store holds nothing secret. */
export const CRASH_STORAGE_KEY = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i);
export const COUNTER_NS = 'meta';
export const COUNTER_ID = 'counter';
export const DATA_NS = 'data';
const DATA_IDS = 48;

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

/** The writes of transaction n ≥ 1: 2-7 puts or deletes of data records (a few large enough to
 * span several pages) and the counter, all in one transaction. */
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

export function applyOps(tx: RecordTx, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.put) tx.put(op.ns, op.id, op.value);
    else tx.delete(op.ns, op.id);
  }
}

function main(path: string): void {
  const store = SealedStore.open({ path, storageKey: SecretBytes.copyOf(CRASH_STORAGE_KEY) });
  let n = decodeCounter(store.get(COUNTER_NS, COUNTER_ID));
  process.stdout.write(`ready ${n}\n`);
  // Bounded so an orphaned writer (parent gone) stops by itself.
  for (let i = 0; i < 1_000_000; i++) {
    n++;
    const ops = opsFor(n);
    store.transaction((tx) => applyOps(tx, ops));
    process.stdout.write(`commit ${n}\n`); // synchronous for pipes on Linux
  }
  store.close();
}

const storePath = process.env['COFFER_CRASH_STORE'];
if (storePath !== undefined && process.argv[1]?.endsWith('store_crash_writer.js') === true) main(storePath);
