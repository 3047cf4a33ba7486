// The control plane's Prometheus metrics (docs/metrics.md "Service"): a prom-client Registry of the
// service's own, served as Prometheus text at GET /metrics on a port of its own (`--metrics-port`),
// never on the API port: the API answers only SigV4-signed CloudHSMv2 calls, and Prometheus does
// not sign. The metrics port takes no credential, so it carries only what an operator may show on
// a dashboard: resource ids (cluster-, hsm-, backup-), states, counts, ages, journal positions and
// API operation names, outcomes and latencies. Never an access key id, an account id, a caller,
// a certificate, an address or anything sealed. Bind it to an address only the monitoring system
// reaches (docs/metrics.md "Scraping the service").
//
// Figures of state (clusters, HSMs, backups, the journal) are read from the metadata store when
// Prometheus scrapes; HSM journal heads come from the orchestrator's health probes; API calls,
// restores and replacements are counted as they happen.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { MetadataStore } from '../storage/metadata_port.js';
import type { Clock } from './clock.js';
import type { Repository } from './repository.js';

/** The path Prometheus scrapes by default. */
export const SERVICE_METRICS_PATH = '/metrics';
/** API latency buckets (seconds): a Describe call takes ~1 ms, CreateBackup streams a backup. */
export const API_LATENCY_BUCKETS_S: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Restore and replacement buckets (seconds): a small HSM restores in well under a second; a
 * replacement starts a node process and restores it; 100k objects take tens of seconds. */
export const SLOW_BUCKETS_S: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** HSMs whose probed journal head is remembered: bounded by the HSMs a region may hold. */
const PROBED_HEADS_MAX = 10_000;

export interface ServiceMetricsSources {
  readonly repository: Repository;
  readonly store: MetadataStore;
  readonly clock: Clock;
  /** Whether the service relays cluster journals (then the journal figures are reported). */
  readonly relayJournal: boolean;
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #apiCalls: Counter<'operation' | 'outcome'>;
  readonly #apiLatency: Histogram<'operation'>;
  readonly #restores: Histogram<'outcome'>;
  readonly #replacements: Histogram;
  /** The journal head each HSM reported at its last health probe. */
  readonly #heads = new Map<string, bigint>();
  #sources: ServiceMetricsSources | undefined;
  #snapshot: Snapshot | undefined;

  constructor(options: { readonly processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.#apiCalls = new Counter({ name: 'coffer_service_api_calls_total', help: 'API calls answered, by operation and outcome (ok or the error type)', labelNames: ['operation', 'outcome'], registers });
    this.#apiLatency = new Histogram({ name: 'coffer_service_api_call_duration_seconds', help: 'Time from a call received to its answer sent, by operation', labelNames: ['operation'], buckets: [...API_LATENCY_BUCKETS_S], registers });
    this.#restores = new Histogram({ name: 'coffer_service_restore_duration_seconds', help: 'Restores of a backup into an HSM (fetch from the archive, provenance check, upload, restore), by outcome', labelNames: ['outcome'], buckets: [...SLOW_BUCKETS_S], registers });
    this.#replacements = new Histogram({ name: 'coffer_service_hsm_replacement_duration_seconds', help: 'Replacements of a failed HSM that completed, from releasing the failed device to the HSM ACTIVE again', buckets: [...SLOW_BUCKETS_S], registers });
    this.#stateGauges(registers);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  attach(sources: ServiceMetricsSources): void {
    this.#sources = sources;
  }

  apiCall(operation: string, outcome: string, seconds: number): void {
    this.#apiCalls.labels(operation, outcome).inc();
    this.#apiLatency.labels(operation).observe(seconds);
  }

  restoreDone(outcome: 'ok' | 'failed', seconds: number): void {
    this.#restores.labels(outcome).observe(seconds);
  }

  replacementDone(seconds: number): void {
    this.#replacements.observe(seconds);
  }

  /** The journal head an HSM reported at its health probe. */
  hsmHead(hsmId: string, seq: bigint): void {
    if (!this.#heads.has(hsmId) && this.#heads.size >= PROBED_HEADS_MAX) return;
    this.#heads.set(hsmId, seq);
  }

  /** Times `fn` into restoreDone, however it ends. */
  async timed<T>(_kind: 'restore', fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome: 'ok' | 'failed' = 'failed';
    try {
      const r = await fn();
      outcome = 'ok';
      return r;
    } finally {
      this.restoreDone(outcome, (performance.now() - started) / 1000);
    }
  }

  /** Reads the metadata store once, then renders every metric from what it read. */
  async exposition(): Promise<{ readonly contentType: string; readonly text: string }> {
    this.#snapshot = this.#sources === undefined ? undefined : await this.#read(this.#sources);
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /** Gauges filled, at scrape time, from the snapshot exposition() has just read. */
  #stateGauges(registers: Registry[]): void {
    const snap = (): Snapshot | undefined => this.#snapshot;
    const gauge = (name: string, help: string, labelNames: readonly string[], rows: (s: Snapshot) => readonly Row[]): void => {
      new Gauge({ name, help, labelNames, registers, collect() {
        this.reset();
        const s = snap();
        if (s !== undefined) for (const r of rows(s)) this.set(r.labels, r.value);
      } });
    };
    gauge('coffer_service_clusters', 'Clusters, by state', ['state'], (s) => s.clusters);
    gauge('coffer_service_hsms', 'HSMs, by cluster and state', ['cluster_id', 'state'], (s) => s.hsms);
    gauge('coffer_service_backups', 'Backups, by cluster and state (a deleted cluster\'s backups stay)', ['cluster_id', 'state'], (s) => s.backups);
    gauge('coffer_service_newest_backup_age_seconds', 'Seconds since the newest READY backup of each cluster was made', ['cluster_id'], (s) => s.newestBackupAge);
    gauge('coffer_service_journal_head_seq', 'The journal store\'s head (last appended seq) of each relayed cluster', ['cluster_id'], (s) => s.journalHead);
    gauge('coffer_service_hsm_journal_lag', 'Journal store head minus the head the HSM reported at its last health probe (relayed clusters)', ['cluster_id', 'hsm_id'], (s) => s.lag);
  }

  async #read(s: ServiceMetricsSources): Promise<Snapshot> {
    const out: Snapshot = { clusters: [], hsms: [], backups: [], newestBackupAge: [], journalHead: [], lag: [] };
    const index = new Map<string, Row>();
    const count = (rows: Row[], labels: Record<string, string>): void => {
      const key = `${rows === out.clusters ? 'c' : rows === out.hsms ? 'h' : 'b'}${JSON.stringify(labels)}`;
      const row = index.get(key);
      if (row !== undefined) {
        row.value++;
        return;
      }
      const fresh = { labels, value: 1 };
      index.set(key, fresh);
      rows.push(fresh);
    };
    const liveHsms = new Set<string>();
    for (const c of await s.repository.clusters()) {
      const clusterId = c.doc.clusterId;
      count(out.clusters, { state: c.doc.state });
      const hsmDocs = await s.repository.hsmsOf(clusterId);
      for (const h of hsmDocs) {
        count(out.hsms, { cluster_id: clusterId, state: h.doc.state });
        liveHsms.add(h.doc.hsmId);
      }
      if (!s.relayJournal) continue;
      const head = await s.store.journalHead(clusterId);
      out.journalHead.push({ labels: { cluster_id: clusterId }, value: head });
      for (const h of hsmDocs) {
        const hsmHead = this.#heads.get(h.doc.hsmId);
        if (hsmHead !== undefined) out.lag.push({ labels: { cluster_id: clusterId, hsm_id: h.doc.hsmId }, value: Math.max(0, head - Number(hsmHead)) });
      }
    }
    for (const id of [...this.#heads.keys()]) if (!liveHsms.has(id)) this.#heads.delete(id); // deleted HSMs
    const newestMs = new Map<string, number>();
    for (const b of await s.repository.backups()) {
      count(out.backups, { cluster_id: b.doc.clusterId, state: b.doc.state });
      if (b.doc.state === 'READY') newestMs.set(b.doc.clusterId, Math.max(newestMs.get(b.doc.clusterId) ?? 0, b.doc.createdMs));
    }
    const nowMs = s.clock.nowMs();
    for (const [clusterId, ms] of newestMs) out.newestBackupAge.push({ labels: { cluster_id: clusterId }, value: Math.max(0, (nowMs - ms) / 1000) });
    return out;
  }
}

interface Row {
  readonly labels: Record<string, string>;
  value: number;
}

/** What one scrape read from the metadata store. */
interface Snapshot {
  readonly clusters: Row[];
  readonly hsms: Row[];
  readonly backups: Row[];
  readonly newestBackupAge: Row[];
  readonly journalHead: Row[];
  readonly lag: Row[];
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on its own port; anything else is 404, a failed read of the store 503. */
export async function startMetricsServer(metrics: ServiceMetrics, host: string, port: number, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== SERVICE_METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: GET /metrics only\n');
      return;
    }
    metrics.exposition().then(({ contentType, text }) => {
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(text);
    }, (e: unknown) => {
      logger.warn({ event: 'metrics.collect.failed', err: e instanceof Error ? e.name : typeof e }, 'metrics scrape failed');
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('Metrics unavailable: the metadata store did not answer\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
