// Request-path counters and histograms kept in plain numbers and exposed to a prom-client Registry
// as metrics of its custom-collector shape (name, help, type, get()). prom-client's own children
// validate and hash their labels on every inc() and observe(), which measured ~6 µs of node CPU per
// signature (bench/metrics_bench.ts); here a request costs a few map lookups
// (no allocation once its series exists), a bucket search over LATENCY_BUCKETS_S and three
// additions, and the text is built only when Prometheus scrapes.

import type { Metric, Registry } from 'prom-client';

/** One (op, mechanism, outcome) series: items counted, requests timed, bucket counts (not cumulative). */
export class RequestSeries {
  items = 0;
  requests = 0;
  sumS = 0;
  readonly buckets: Float64Array;
  constructor(readonly labels: Readonly<Record<string, string>>, bucketCount: number) {
    this.buckets = new Float64Array(bucketCount + 1); // the last one is +Inf
  }
}

/** The node's request series: a counter of items and a histogram of request durations. */
export class RequestMetrics {
  readonly #bounds: readonly number[];
  /** op → mechanism → outcome → series. */
  readonly #series = new Map<number, Map<string, Map<string, RequestSeries>>>();
  readonly #all: RequestSeries[] = [];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
  }

  /** The series of (op, mechanism, outcome); `labels` makes its label values the first time. */
  series(op: number, mechanism: string, outcome: string, labels: () => Readonly<Record<string, string>>): RequestSeries {
    let byMechanism = this.#series.get(op);
    if (byMechanism === undefined) this.#series.set(op, (byMechanism = new Map<string, Map<string, RequestSeries>>()));
    let byOutcome = byMechanism.get(mechanism);
    if (byOutcome === undefined) byMechanism.set(mechanism, (byOutcome = new Map<string, RequestSeries>()));
    let s = byOutcome.get(outcome);
    if (s === undefined) {
      s = new RequestSeries(labels(), this.#bounds.length);
      byOutcome.set(outcome, s);
      this.#all.push(s);
    }
    return s;
  }

  record(s: RequestSeries, items: number, seconds: number): void {
    s.items += items;
    s.requests++;
    s.sumS += seconds;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    s.buckets[i] = (s.buckets[i] ?? 0) + 1;
  }

  /** Every series summed: items counted and the requests' latency bucket counts (not cumulative). */
  totals(): { readonly items: number; readonly buckets: number[] } {
    const buckets = new Array<number>(this.#bounds.length + 1).fill(0);
    let items = 0;
    for (const s of this.#all) {
      items += s.items;
      for (let i = 0; i < buckets.length; i++) buckets[i] = (buckets[i] as number) + (s.buckets[i] ?? 0);
    }
    return { items, buckets };
  }

  /** Registers the counter `counterName` and the histogram `histogramName` in `registry`. */
  register(registry: Registry, counterName: string, counterHelp: string, histogramName: string, histogramHelp: string): void {
    const all = this.#all;
    const bounds = this.#bounds;
    const counter = {
      name: counterName, help: counterHelp, type: 'counter', aggregator: 'sum',
      get: () => ({ name: counterName, help: counterHelp, type: 'counter', aggregator: 'sum', values: all.map((s) => ({ labels: s.labels, value: s.items })) }),
      reset: () => undefined,
    };
    const histogram = {
      name: histogramName, help: histogramHelp, type: 'histogram', aggregator: 'sum',
      get: () => ({ name: histogramName, help: histogramHelp, type: 'histogram', aggregator: 'sum', values: all.flatMap((s) => histogramValues(histogramName, s, bounds)) }),
      reset: () => undefined,
    };
    // prom-client's registry takes any object of this shape (its custom-collector contract); its
    // type names only its own classes.
    registry.registerMetric(counter as unknown as Metric);
    registry.registerMetric(histogram as unknown as Metric);
  }
}

/** A series as Prometheus histogram samples: cumulative _bucket{le}, +Inf, _sum, _count. */
function histogramValues(name: string, s: RequestSeries, bounds: readonly number[]): { metricName: string; labels: Record<string, string | number>; value: number }[] {
  const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += s.buckets[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: bounds[i] as number }, value: cumulative });
  }
  cumulative += s.buckets[bounds.length] ?? 0;
  out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: cumulative });
  out.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: s.sumS });
  out.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: s.requests });
  return out;
}
