// The node's Prometheus metrics (docs/metrics.md "Node"): a prom-client Registry of the node's own
// (never prom-client's global one, so that two nodes in one process never mix), served as
// Prometheus text at GET /metrics on the management interface, under its mutual-TLS rule.
//
// What it counts is cheap to count: the data plane calls requestDone() once per request with one
// performance.now() taken when the request started, and busy() for a BUSY answer; each (operation,
// mechanism, outcome) series is found in nested maps and kept in plain numbers (metrics_series.ts),
// so the signing path allocates nothing once a series exists. Everything else — sessions, connections,
// objects, users, the journal head — is read from the device and the data plane when Prometheus
// scrapes, never on the request path. Device events (HsmEvent) count logins, lockouts, backups and
// restores. Labels hold operation names, mechanism names, error codes, the journal mode and the
// device serial: never a user name, a handle or anything a request carried.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { NodeFigures } from '../formats/management.js';
import { OPS, type AnyRequest } from '../formats/wire.js';
import type { Hsm, HsmEvent } from '../hsm/device.js';
import type { NodeLoad } from './dispatch.js';
import { RequestMetrics } from './metrics_series.js';

/** Where the management interface serves the metrics (Prometheus' default metrics_path). */
export const METRICS_PATH = '/metrics';

/**
 * Latency buckets in seconds: an ECDSA P-256 signature takes ~35 µs of CPU, a node's round trip a
 * few hundred µs, RSA-4096 key generation seconds; so from 50 µs to 10 s, about ×2.5 apart.
 */
export const LATENCY_BUCKETS_S: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The label of a request that names no mechanism, and of a batch whose items name several. */
export const MECHANISM_NONE = 'none';
export const MECHANISM_MIXED = 'mixed';
/** The outcome label of a request answered with its result (otherwise: the error code). */
export const OUTCOME_OK = 'ok';
/** The operation label of a frame whose operation code is not one of OPS. */
export const OP_UNKNOWN = 'unknown';

/** What the node's gauges read at scrape time. */
export interface NodeMetricsSources {
  readonly hsm: Hsm;
  readonly dataPlane: { load(): NodeLoad };
}

/** The hooks the data plane calls (data_plane.ts); absent when the node runs with metrics off. */
export interface DataPlaneMetrics {
  /** One request answered: its op code, the decoded request (undefined when it did not decode),
   * its outcome (OUTCOME_OK or the error code) and performance.now() at its start. */
  requestDone(op: number, request: AnyRequest | undefined, outcome: string, startedMs: number): void;
  /** One request answered BUSY (not run). */
  busy(op: number): void;
}


const OP_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(OPS).map(([name, o]) => [o.code, name]));
const opLabel = (op: number): string => OP_NAMES.get(op) ?? OP_UNKNOWN;

type MechanismField = { readonly mechanism: string };
type WithMechanisms = { readonly params?: MechanismField; readonly items?: readonly { readonly params: MechanismField }[] };

/** The mechanism a request names; a batch's when all its items name the same one. */
function mechanismOf(request: AnyRequest | undefined): string {
  if (request === undefined) return MECHANISM_NONE;
  const r = request.request as WithMechanisms;
  if (r.params !== undefined) return r.params.mechanism;
  const items = r.items;
  const first = items?.[0];
  if (items === undefined || first === undefined) return MECHANISM_NONE;
  const m = first.params.mechanism;
  for (const item of items) if (item.params.mechanism !== m) return MECHANISM_MIXED;
  return m;
}

/** How many operations a request carries: a batch's item count, else 1. */
function weightOf(request: AnyRequest | undefined): number {
  const items = (request?.request as WithMechanisms | undefined)?.items;
  return items === undefined ? 1 : items.length;
}

export class NodeMetrics implements DataPlaneMetrics {
  readonly registry = new Registry();
  readonly #requests = new RequestMetrics(LATENCY_BUCKETS_S);
  readonly #busy: Counter<'op'>;
  readonly #logins: Counter<'outcome'>;
  readonly #lockouts: Counter;
  readonly #backups: Counter;
  readonly #restores: Counter;
  readonly #auditRecords: Counter;
  readonly #busyChildren = new Map<number, Counter.Internal>();
  #busyTotal = 0;
  #sources: NodeMetricsSources | undefined;
  /** The last backup this node sealed since it started, and when (wall clock, ms). */
  #lastBackup: { readonly backupId: string; readonly atMs: number } | undefined;
  readonly #nowMs: () => number;

  constructor(options: { readonly nowMs?: () => number; readonly processMetrics?: boolean } = {}) {
    this.#nowMs = options.nowMs ?? Date.now;
    const registers = [this.registry];
    this.#requests.register(this.registry,
      'coffer_node_operations_total', 'Data-plane operations answered, by wire operation, mechanism and outcome (ok or the error code); a batch counts its items',
      'coffer_node_request_duration_seconds', 'Time from a data-plane request received to its reply queued, by wire operation, mechanism and outcome');
    this.#busy = new Counter({ name: 'coffer_node_busy_total', help: 'Data-plane requests answered BUSY (over the connection or node in-flight limit), by wire operation', labelNames: ['op'], registers });
    this.#logins = new Counter({ name: 'coffer_node_logins_total', help: 'Login attempts on the device, by outcome (ok, failed)', labelNames: ['outcome'], registers });
    this.#lockouts = new Counter({ name: 'coffer_node_lockouts_total', help: 'Users locked after too many failed logins', registers });
    this.#backups = new Counter({ name: 'coffer_node_backups_total', help: 'Sealed backups this node made since it started', registers });
    this.#restores = new Counter({ name: 'coffer_node_restores_total', help: 'Backups this node restored since it started', registers });
    this.#auditRecords = new Counter({ name: 'coffer_node_audit_records_total', help: 'Records written to the audit log since the node started, checkpoints included (docs/audit.md)', registers });
    for (const outcome of ['ok', 'failed']) this.#logins.labels(outcome).inc(0);
    this.#gauges(registers);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Tells the metrics what to read at scrape time (the node's device and data plane). */
  attach(sources: NodeMetricsSources): void {
    this.#sources = sources;
  }

  requestDone(op: number, request: AnyRequest | undefined, outcome: string, startedMs: number): void {
    const mechanism = mechanismOf(request);
    const series = this.#requests.series(op, mechanism, outcome, () => ({ op: opLabel(op), mechanism, outcome }));
    this.#requests.record(series, weightOf(request), (performance.now() - startedMs) / 1000);
  }

  busy(op: number): void {
    let c = this.#busyChildren.get(op);
    if (c === undefined) {
      c = this.#busy.labels(opLabel(op));
      this.#busyChildren.set(op, c);
    }
    c.inc();
    this.#busyTotal++;
  }

  /** The data plane's running totals, as health reports them (formats/management.ts NodeFigures). */
  figures(): NodeFigures {
    const totals = this.#requests.totals();
    return { operations: totals.items, busy: this.#busyTotal, latencyBoundsS: LATENCY_BUCKETS_S, latencyCounts: totals.buckets };
  }

  /** Counts what the device reports (logins, lockouts, backups, restores). */
  /** One record written to the audit log (AuditLog onRecord). */
  auditRecord(): void {
    this.#auditRecords.inc();
  }

  onHsmEvent(event: HsmEvent): void {
    switch (event.event) {
      case 'login':
        this.#logins.labels(event.outcome).inc();
        return;
      case 'lockout':
        this.#lockouts.inc();
        return;
      case 'backup':
        this.#backups.inc();
        this.#lastBackup = { backupId: event.backupId, atMs: this.#nowMs() };
        return;
      case 'restore':
        this.#restores.inc();
        return;
      case 'state-change':
      case 'zeroise':
        return;
    }
  }

  /** The exposition text (Prometheus text format 0.0.4) and its content type. */
  async exposition(): Promise<{ readonly contentType: string; readonly text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /** Gauges read from the device and the data plane when Prometheus scrapes. */
  #gauges(registers: Registry[]): void {
    const read = <T>(fn: (s: NodeMetricsSources) => T): T | undefined => (this.#sources === undefined ? undefined : fn(this.#sources));
    const simple = (name: string, help: string, value: (s: NodeMetricsSources) => number): void => {
      new Gauge({ name, help, registers, collect() {
        const v = read(value);
        if (v === undefined) this.reset();
        else this.set(v);
      } });
    };
    simple('coffer_node_sessions_open', 'Device sessions open now (data-plane and local)', (s) => s.hsm.status().sessions);
    simple('coffer_node_connections_open', 'Data-plane connections open now (past the TLS handshake)', (s) => s.dataPlane.load().connections);
    simple('coffer_node_requests_in_flight', 'Data-plane requests being served now (a batch weighs its items)', (s) => s.dataPlane.load().inFlight);
    simple('coffer_node_requests_in_flight_max', 'The node-wide in-flight limit above which requests are answered BUSY', (s) => s.dataPlane.load().inFlightMax);
    simple('coffer_node_token_objects', 'Token objects (keys, certificates) on the device', (s) => s.hsm.status().tokenObjects);
    simple('coffer_node_users', 'Users on the device, the appliance user included', (s) => s.hsm.userCount());
    simple('coffer_node_journal_head_seq', 'Sequence number of the last cluster journal entry the device applied (0: none)', (s) => Number(s.hsm.journal.head().seq));
    simple('coffer_node_journal_fault', '1 when the device refused a journal entry and stopped applying (docs/journal-format.md), else 0', (s) => (s.hsm.journal.fault() === undefined ? 0 : 1));
    const nowMs = this.#nowMs;
    const lastBackup = (): { readonly backupId: string; readonly atMs: number } | undefined => this.#lastBackup;
    new Gauge({ name: 'coffer_node_journal_mode', help: 'How the device orders its cluster journal: 1 for the mode in use (relayed or solo)', labelNames: ['mode'], registers, collect() {
      this.reset();
      const mode = read((s) => s.hsm.journal.mode());
      if (mode !== undefined) this.labels(mode).set(1);
    } });
    new Gauge({ name: 'coffer_node_info', help: 'Always 1: the device serial, mode and cluster state as labels', labelNames: ['serial', 'mode', 'cluster_state'], registers, collect() {
      this.reset();
      const st = read((s) => s.hsm.status());
      if (st !== undefined) this.labels(st.serial ?? '', st.mode ?? '', st.cluster).set(1);
    } });
    new Gauge({ name: 'coffer_node_last_backup_age_seconds', help: 'Seconds since this node last sealed a backup, labelled with its id (absent until it has made one since it started)', labelNames: ['backup_id'], registers, collect() {
      this.reset();
      const last = lastBackup();
      if (last !== undefined) this.labels(last.backupId).set(Math.max(0, (nowMs() - last.atMs) / 1000));
    } });
  }
}

/** Answers GET /metrics with the registry's text (the caller has applied the access rule). */
export async function serveMetrics(metrics: NodeMetrics, res: ServerResponse, _req: IncomingMessage): Promise<void> {
  const { contentType, text } = await metrics.exposition();
  const body = Buffer.from(text, 'utf8');
  res.writeHead(200, { 'content-type': contentType, 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(body);
}
