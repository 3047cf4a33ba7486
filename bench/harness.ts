// Shared measuring tools for `npm run bench`. Timings on a shared 2-core machine are noisy, so
// every figure is the median of several rounds and is reported beside its anchor from the same run.

import { performance } from 'node:perf_hooks';

export interface Row {
  /** What was measured, e.g. "ECDSA P-256 sign". */
  readonly name: string;
  /** Coffer's figure and its unit, e.g. 27_000 and "ops/s". */
  readonly value: number;
  readonly unit: string;
  /** The anchor measured in the same run (raw node:crypto, ...), when there is one. */
  readonly anchorName?: string;
  readonly anchorValue?: number;
  /** The figure's target, as text, e.g. "≥ 0.9 × raw". */
  readonly target?: string;
  readonly note?: string;
}

export interface Section {
  readonly title: string;
  readonly rows: Row[];
  readonly notes: string[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** Runs `fn` repeatedly for about `roundMs`, `rounds` times; returns the median ops/s. */
export function opsPerSecond(fn: () => void, roundMs = 300, rounds = 5): number {
  for (let i = 0; i < 200; i++) fn(); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < roundMs) {
      for (let i = 0; i < 50; i++) fn();
      n += 50;
      now = performance.now();
    }
    rates.push((n * 1000) / (now - start));
  }
  return median(rates);
}

/** Like opsPerSecond for asynchronous work, keeping `inFlight` calls outstanding. */
export async function opsPerSecondAsync(fn: () => Promise<unknown>, inFlight = 16, roundMs = 300, rounds = 5): Promise<number> {
  const runFor = async (ms: number): Promise<number> => {
    let n = 0;
    const start = performance.now();
    const worker = async (): Promise<void> => {
      while (performance.now() - start < ms) {
        await fn();
        n++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    return (n * 1000) / (performance.now() - start);
  };
  await runFor(100); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) rates.push(await runFor(roundMs));
  return median(rates);
}

/** Coffer and its anchor measured in many short alternating batches (order swapped each pair),
 * medians of each side: load that comes and goes on a shared machine then hits both sides alike.
 * `roundMs` × `pairs` is the time given to each side in total. */
export function paired(ours: () => void, raw: () => void, roundMs = 150, pairs = 9): { ours: number; raw: number } {
  for (let i = 0; i < 200; i++) {
    ours();
    raw();
  }
  // Calibrate a batch to ~3 ms of the anchor, so that a pair of batches sees the same conditions.
  let n = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < n; i++) raw();
    if (performance.now() - start >= 3 || n >= 1 << 20) break;
    n *= 2;
  }
  const batches = Math.max(20, Math.round((roundMs * pairs) / 3));
  const o: number[] = [];
  const r: number[] = [];
  const time = (fn: () => void): number => {
    const start = performance.now();
    for (let i = 0; i < n; i++) fn();
    return (n * 1000) / (performance.now() - start);
  };
  for (let b = 0; b < batches; b++) {
    if (b % 2 === 0) {
      r.push(time(raw));
      o.push(time(ours));
    } else {
      o.push(time(ours));
      r.push(time(raw));
    }
  }
  return { ours: median(o), raw: median(r) };
}

/** paired() for asynchronous work with `inFlight` calls outstanding. */
export async function pairedAsync(ours: () => Promise<unknown>, raw: () => Promise<unknown>, inFlight = 16, roundMs = 150, pairs = 9): Promise<{ ours: number; raw: number }> {
  const o: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const first = i % 2 === 0 ? raw : ours;
    const second = i % 2 === 0 ? ours : raw;
    const a = await opsPerSecondAsync(first, inFlight, roundMs, 1);
    const b = await opsPerSecondAsync(second, inFlight, roundMs, 1);
    (i % 2 === 0 ? r : o).push(a);
    (i % 2 === 0 ? o : r).push(b);
  }
  return { ours: median(o), raw: median(r) };
}

/** Renders sections as the Markdown of docs/bench.md. */
export function renderMarkdown(sections: readonly Section[], header: string): string {
  const out = [header, ''];
  for (const s of sections) {
    out.push(`## ${s.title}`, '', '| figure | Coffer | anchor | anchor value | ratio | target |', '|---|---:|---|---:|---:|---|');
    for (const r of s.rows) {
      const ratio = r.anchorValue !== undefined && r.anchorValue !== 0 ? (r.value / r.anchorValue).toFixed(2) : '';
      out.push(
        `| ${r.name} | ${fmt(r.value)} ${r.unit} | ${r.anchorName ?? ''} | ${r.anchorValue === undefined ? '' : `${fmt(r.anchorValue)} ${r.unit}`} | ${ratio} | ${r.target ?? ''} |`,
      );
    }
    if (s.notes.length > 0) out.push('', ...s.notes.map((n) => `- ${n}`));
    out.push('');
  }
  return out.join('\n');
}

export function fmt(x: number): string {
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  if (x >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}
