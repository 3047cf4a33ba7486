// Small helpers shared by the test files: typed-error assertions, a seeded PRNG, a bit flip.

import assert from 'node:assert/strict';
import { isCofferError, type ErrorCode } from '../src/errors.js';

/** Asserts that `fn` throws a CofferError with `code`. */
export function throwsCode(fn: () => unknown, code: ErrorCode, what = `expected ${code}`): void {
  assert.throws(fn, (e: unknown) => isCofferError(e, code), what);
}

/** mulberry32: a small seeded PRNG, enough to make randomised tests varied and reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `b` with the low bit of byte `i` flipped (a copy: Buffer#slice would share memory). */
export function flip(b: Uint8Array, i: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[i] = (c[i] ?? 0) ^ 0x01;
  return c;
}

/** Runs `total` calls of `fn` with `concurrency` in flight (a closed-loop load); results in order. */
export async function load<T>(total: number, concurrency: number, fn: (i: number) => Promise<T>, onProgress?: (done: number) => void): Promise<T[]> {
  const out: T[] = new Array<T>(total);
  let next = 0;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      out[i] = await fn(i);
      onProgress?.(++done);
    }
  }));
  return out;
}

/** Asserts that `fn` fails with a CofferError with `code`, whether it throws or returns a promise
 * that rejects (state-changing device calls wait their turn in the writer queue). */
export async function rejectsCode(fn: () => unknown, code: ErrorCode, what = `expected ${code}`): Promise<void> {
  await assert.rejects(async () => {
    await fn();
  }, (e: unknown) => isCofferError(e, code), what);
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
