// Live per-HSM figures for the console (docs/console.md "Live figures"): what the orchestrator's
// health probes saw, turned into a short time series per HSM. A node with metrics on reports its
// data plane's running totals in health (formats/management.ts NodeFigures); two probes in a row
// give a rate of operations and of BUSY answers, and the difference of their latency buckets gives
// the p99 of the requests answered in between. Load, capacity and the journal position come with
// each probe as they are.
//
// The series live in this process's memory only, FIGURE_SAMPLES_MAX per HSM (at the default 2 s
// probe interval, the last four minutes): they are a view, not a record, and start empty when the
// service restarts or another service instance takes the orchestrator's lease. Nothing in them is
// secret: counts, rates, durations, positions.

import { CLUSTER_ID, type NodeFigures, type NodeHealth } from '../formats/management.js';
import { protocolFail } from './api/api_errors.js';
import { requestMembers, type MonitoringOperations } from './api/coffer_operations.js';
import { apiFail } from './api/operations.js';
import type { BackupDoc, HsmDoc } from './records.js';
import type { Repository } from './repository.js';

/** Samples kept per HSM. */
export const FIGURE_SAMPLES_MAX = 120;
/** HSMs whose series are kept: bounded by the HSMs a region may hold. */
const FIGURE_HSMS_MAX = 10_000;

/** One probe's figures. Rates and the p99 are over the interval since the probe before (null on the
 * first probe, after a node restart, or when the node reports no figures: metrics off). */
export interface FigureSample {
  readonly atMs: number;
  readonly opsPerSecond: number | null;
  readonly busyPerSecond: number | null;
  /** The p99 request latency in ms as the upper bound of its bucket; null when no request was
   * answered in the interval. `p99Above`: the p99 lies beyond the last bound (it is that bound). */
  readonly p99LatencyMs: number | null;
  readonly p99Above: boolean;
  readonly loadPermille: number;
  readonly capacityOpsPerSecond: number;
  readonly inFlight: number;
  readonly journalPosition: bigint;
}

interface Series {
  readonly clusterId: string;
  readonly samples: FigureSample[];
  last: { readonly atMs: number; readonly figures: NodeFigures } | undefined;
}

export class HsmFigures {
  readonly #series = new Map<string, Series>();

  /** Records what one health probe of `hsmId` reported at `atMs`. */
  observe(hsmId: string, clusterId: string, atMs: number, health: NodeHealth): void {
    let s = this.#series.get(hsmId);
    if (s === undefined || s.clusterId !== clusterId) {
      if (s === undefined && this.#series.size >= FIGURE_HSMS_MAX) this.#dropOldest();
      s = { clusterId, samples: [], last: undefined };
      this.#series.set(hsmId, s);
    }
    const figures = health.figures;
    const interval = figures === null || s.last === undefined ? undefined : intervalOf(s.last, { atMs, figures });
    s.samples.push({
      atMs,
      opsPerSecond: interval?.opsPerSecond ?? null,
      busyPerSecond: interval?.busyPerSecond ?? null,
      p99LatencyMs: interval?.p99LatencyMs ?? null,
      p99Above: interval?.p99Above ?? false,
      loadPermille: health.loadPermille,
      capacityOpsPerSecond: health.capacityOpsPerSecond,
      inFlight: health.inFlight,
      journalPosition: health.journalPosition,
    });
    if (s.samples.length > FIGURE_SAMPLES_MAX) s.samples.splice(0, s.samples.length - FIGURE_SAMPLES_MAX);
    s.last = figures === null ? undefined : { atMs, figures };
  }

  /** The samples of `hsmId`, oldest first (empty when none were taken). */
  samplesOf(hsmId: string): readonly FigureSample[] {
    return [...(this.#series.get(hsmId)?.samples ?? [])];
  }

  /** Forgets an HSM (deleted). */
  forget(hsmId: string): void {
    this.#series.delete(hsmId);
  }

  #dropOldest(): void {
    const first = this.#series.keys().next();
    if (first.done !== true) this.#series.delete(first.value);
  }
}

interface Interval {
  readonly opsPerSecond: number;
  readonly busyPerSecond: number;
  readonly p99LatencyMs: number | null;
  readonly p99Above: boolean;
}

/** The figures between two probes; undefined when they cannot be compared (the counters went back:
 * the node restarted, or another node answers for the HSM; the buckets differ). */
function intervalOf(a: { readonly atMs: number; readonly figures: NodeFigures }, b: { readonly atMs: number; readonly figures: NodeFigures }): Interval | undefined {
  const seconds = (b.atMs - a.atMs) / 1000;
  const fa = a.figures;
  const fb = b.figures;
  if (seconds <= 0 || fb.operations < fa.operations || fb.busy < fa.busy) return undefined;
  if (fa.latencyBoundsS.length !== fb.latencyBoundsS.length || fa.latencyBoundsS.some((x, i) => x !== fb.latencyBoundsS[i])) return undefined;
  const deltas = fb.latencyCounts.map((x, i) => x - (fa.latencyCounts[i] ?? 0));
  if (deltas.some((d) => d < 0)) return undefined;
  const requests = deltas.reduce((sum, d) => sum + d, 0);
  let p99LatencyMs: number | null = null;
  let p99Above = false;
  if (requests > 0) {
    // The smallest bucket whose cumulative count reaches 99 % of the requests.
    const target = Math.ceil(requests * 0.99);
    let cumulative = 0;
    let i = 0;
    for (; i < deltas.length; i++) {
      cumulative += deltas[i] as number;
      if (cumulative >= target) break;
    }
    const bounds = fb.latencyBoundsS;
    p99Above = i >= bounds.length;
    p99LatencyMs = (bounds[Math.min(i, bounds.length - 1)] ?? 0) * 1000;
  }
  return { opsPerSecond: (fb.operations - fa.operations) / seconds, busyPerSecond: (fb.busy - fa.busy) / seconds, p99LatencyMs, p99Above };
}

/** What the console's figures call answers for one cluster (docs/console.md "Live figures"). */
export interface ClusterFigures {
  readonly ClusterId: string;
  /** The journal store's head (null: the service does not relay journals). */
  readonly JournalHead: string | null;
  /** Seconds since the cluster's newest READY backup was made (null: none). */
  readonly NewestBackupAgeSeconds: number | null;
  readonly ProbeIntervalMs: number;
  readonly Hsms: readonly {
    readonly HsmId: string;
    readonly AvailabilityZone: string;
    readonly EniIp: string;
    readonly State: string;
    /** The journal store's head minus the HSM's position at its last probe (null: unknown). */
    readonly JournalLag: number | null;
    readonly Samples: readonly Record<string, number | boolean | string | null>[];
  }[];
}

/** The sources of a cluster's figures: its HSMs and backups, the journal head, the samples. */
export interface ClusterFigureSources {
  readonly hsms: readonly HsmDoc[];
  readonly backups: readonly BackupDoc[];
  readonly journalHead: number | null;
  readonly nowMs: number;
  readonly probeIntervalMs: number;
}

/** One cluster's figures as the API answers them (times in ms since the epoch). */
export function clusterFigures(clusterId: string, book: HsmFigures, src: ClusterFigureSources): ClusterFigures {
  const ready = src.backups.filter((b) => b.state === 'READY').map((b) => b.createdMs);
  const newest = ready.length === 0 ? null : Math.max(...ready);
  return {
    ClusterId: clusterId,
    JournalHead: src.journalHead === null ? null : String(src.journalHead),
    NewestBackupAgeSeconds: newest === null ? null : Math.max(0, Math.round((src.nowMs - newest) / 1000)),
    ProbeIntervalMs: src.probeIntervalMs,
    Hsms: src.hsms.map((h) => {
      const samples = book.samplesOf(h.hsmId);
      const last = samples[samples.length - 1];
      const lag = last === undefined || src.journalHead === null ? null : Math.max(0, src.journalHead - Number(last.journalPosition));
      return {
        HsmId: h.hsmId, AvailabilityZone: h.availabilityZone, EniIp: h.eniIp, State: h.state, JournalLag: lag,
        Samples: samples.map((x) => ({
          Time: x.atMs, OpsPerSecond: round(x.opsPerSecond), BusyPerSecond: round(x.busyPerSecond), P99LatencyMs: x.p99LatencyMs, P99Above: x.p99Above,
          LoadPermille: x.loadPermille, CapacityOpsPerSecond: x.capacityOpsPerSecond, InFlight: x.inFlight, JournalPosition: String(x.journalPosition),
        })),
      };
    }),
  };
}

const round = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);

/** Where DescribeHsmFigures reads: the repository, the journal store, the samples, the clock. */
export interface FigureOperationSources {
  readonly repo: Repository;
  readonly figures: HsmFigures;
  readonly nowMs: () => number;
  readonly probeIntervalMs: number;
  /** True when the service relays cluster journals (then the store's journal head is reported). */
  readonly relayJournal: boolean;
}


/** `CofferMonitoringService.DescribeHsmFigures { ClusterId }` → ClusterFigures; another account's
 * cluster is not found, as in the CloudHSMv2 operations. */
export function monitoringOperations(src: FigureOperationSources): MonitoringOperations {
  return {
    DescribeHsmFigures: async (input, caller) => {
      const clusterId = requestMembers(input, ['ClusterId'])['ClusterId'];
      if (typeof clusterId !== 'string' || !CLUSTER_ID.test(clusterId)) protocolFail('ValidationException', 'ClusterId must match cluster-[2-7a-zA-Z]{11,16}');
      const cluster = await src.repo.cluster(clusterId);
      if (cluster === undefined || cluster.doc.accountId !== caller.accountId) apiFail('CloudHsmResourceNotFoundException', `Cluster ${clusterId} was not found.`);
      const [hsms, backups] = await Promise.all([src.repo.hsmsOf(clusterId), src.repo.backupsOf(clusterId)]);
      const journalHead = src.relayJournal ? await src.repo.store.journalHead(clusterId) : null;
      const out = clusterFigures(clusterId, src.figures, {
        hsms: hsms.map((h) => h.doc), backups: backups.map((b) => b.doc), journalHead, nowMs: src.nowMs(), probeIntervalMs: src.probeIntervalMs,
      });
      return { ...out };
    },
  };
}
