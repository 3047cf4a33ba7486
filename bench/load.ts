// Closed-loop load for the benches that talk to node processes (bench/node_bench.ts,
// bench/sdk_bench.ts): `inFlight` workers each keep one call outstanding for a round; every call's
// latency is recorded, and the CPU time of this process (process.cpuUsage: every thread, so
// libuv's pool too) and of the given node processes (/proc) is sampled around the round.
// Several subjects are measured in interleaved rounds, so that load from elsewhere on a shared
// machine falls on all of them alike; each figure is the median over rounds, CPU is the total over
// rounds divided by the total operations (a clock tick is 10 ms: per-round CPU would be too coarse).

import { performance } from 'node:perf_hooks';
import { median } from './harness.js';
import { treeCpuSeconds } from './proc_cpu.js';

export interface Subject {
  readonly name: string;
  readonly call: () => Promise<unknown>;
  readonly inFlight: number;
  /** Node processes whose CPU counts as this subject's "node side". */
  readonly nodePids?: readonly number[];
}

export interface LoadFigures {
  readonly opsPerSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** CPU µs per operation of this (client) process. */
  readonly clientCpuUs: number;
  /** CPU µs per operation of the node processes, summed; NaN when there are none. */
  readonly nodeCpuUs: number;
  readonly ops: number;
}

interface Round {
  readonly ops: number;
  readonly seconds: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly clientCpuS: number;
  readonly nodeCpuS: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** One round of `roundMs` with `inFlight` calls outstanding. */
export async function loadRound(subject: Subject, roundMs: number): Promise<Round> {
  const latencies: number[] = [];
  const pids = subject.nodePids ?? [];
  const nodeStart = pids.length > 0 ? treeCpuSeconds(pids) : 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (performance.now() - start < roundMs) {
      const t = performance.now();
      await subject.call();
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: subject.inFlight }, worker));
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const nodeCpuS = pids.length > 0 ? treeCpuSeconds(pids) - nodeStart : 0;
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops: latencies.length, seconds,
    p50Us: percentile(sorted, 0.5) * 1000, p99Us: percentile(sorted, 0.99) * 1000,
    clientCpuS: (cpu.user + cpu.system) / 1e6, nodeCpuS,
  };
}

/** Warm-up load per subject before the measured rounds, by default: JIT, TLS buffers, thread pool. */
const WARM_UP_MS_DEFAULT = 300;

/** Every subject for `rounds` rounds, interleaved (the order reversed every other round), after
 * `warmUpMs` of the same load on each (not measured). */
export async function measureInterleaved(subjects: readonly Subject[], rounds: number, roundMs: number, warmUpMs = Math.min(WARM_UP_MS_DEFAULT, roundMs)): Promise<Map<string, LoadFigures>> {
  for (const s of subjects) await loadRound(s, warmUpMs);
  const results = new Map<string, Round[]>(subjects.map((s) => [s.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) results.get(s.name)?.push(await loadRound(s, roundMs));
  }
  const out = new Map<string, LoadFigures>();
  for (const s of subjects) {
    const rs = results.get(s.name) ?? [];
    const ops = rs.reduce((a, x) => a + x.ops, 0);
    out.set(s.name, {
      ops,
      opsPerSecond: median(rs.map((x) => x.ops / x.seconds)),
      p50Us: median(rs.map((x) => x.p50Us)),
      p99Us: median(rs.map((x) => x.p99Us)),
      clientCpuUs: (rs.reduce((a, x) => a + x.clientCpuS, 0) * 1e6) / ops,
      nodeCpuUs: (s.nodePids ?? []).length > 0 ? (rs.reduce((a, x) => a + x.nodeCpuS, 0) * 1e6) / ops : NaN,
    });
  }
  return out;
}

/** The figures of `name`, which must have been measured. */
export function figuresOf(results: ReadonlyMap<string, LoadFigures>, name: string): LoadFigures {
  const f = results.get(name);
  if (f === undefined) throw new Error(`bench: ${name} was not measured`);
  return f;
}
