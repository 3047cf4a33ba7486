// The endpoints of the management interface (docs/node.md "Management interface"). Each handler
// returns the JSON to answer 200 with, or undefined when it answered itself (the backup stream).
// Requests are decoded and answers encoded with the shared shapes of src/formats/management.ts, the
// same the clients parse. Everything that changes the device's state, and backups, run under
// ctx.exclusive; identity and health never wait for it (health reports ctx.activity instead).

import { createReadStream, rmSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { fail } from '../errors.js';
import { encodeAuditBundle } from '../formats/audit_record.js';
import { AUDIT_BUNDLE_RECORDS_MAX } from '../formats/limits.js';
import { decodeJournalFrames } from '../formats/journal_frames.js';
import { MANAGEMENT_JOURNAL_BODY_BYTES_MAX, MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX } from '../formats/limits.js';
import {
  AUDIT_FROM_PARAM, AUDIT_MAX_PARAM, HEALTH_DIGEST_PARAM, decodeAuditFrom, decodeAuditMax, BACKUP_CLUSTER_ID_PARAM, BACKUP_ID_HEADER, JOURNAL_OFFER_WAIT_PARAM, RESTORE_CLONE_CLUSTER_ID_PARAM, JOURNAL_SEQ_HEADER, MANAGEMENT_ROUTES, checkClusterId, decodeClusterCsrRequest,
  decodeClusterInitialisation, decodeOfferWaitMs, encodeJournalDelivery, encodeNodeHealth, encodeNodeIdentity, type ClusterCsrResponse, type JournalDeliveryJson,
  type JournalFaultReport, type NodeFigures, type NodeHealthJson, type NodeIdentityJson, type RestoreSummary,
} from '../formats/management.js';
import { fileSink } from '../hsm/backup/backup.js';
import { fileSource } from '../hsm/backup/file_source.js';
import type { Hsm } from '../hsm/device.js';
import type { ManagementDataPlane } from './management.js';
import { readBinaryBody, readJsonBody, spoolBody } from './management_http.js';
import type { TlsIdentity } from './tls_identity.js';

export interface ManagementContext {
  readonly hsm: Hsm;
  readonly dataPlane: ManagementDataPlane;
  /** The address the data plane is bound to (health reports it). */
  readonly dataPlaneHost: string;
  /** The management server's own attested leaf (what GET /v1/identity vouches for). */
  readonly tls: TlsIdentity;
  /** The data plane's running totals (absent: the node runs with metrics off). */
  readonly figures?: () => NodeFigures;
  /** Backup and restore requests in progress, from their first byte to their last (health reports them). */
  readonly activity: { backups: number; restores: number };
  readonly jsonBodyBytesMax: number;
  readonly restoreBytesMax: number;
  readonly onBug: (e: unknown) => void;
  /** A fresh path for a spool file of `kind`. */
  spoolPath(kind: 'backup' | 'restore'): string;
  /** Runs `fn` after every state operation queued before it has finished. */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T>;
}

type Handler = (ctx: ManagementContext, req: IncomingMessage, res: ServerResponse, url: URL) => Promise<unknown>;

function identity(ctx: ManagementContext): Promise<NodeIdentityJson> {
  const chain = ctx.hsm.provisioning.chain();
  return Promise.resolve(encodeNodeIdentity({
    deviceCertificatePem: chain.deviceCertificate.pem,
    manufacturerRootPem: chain.manufacturerRoot.pem,
    operatorCertificatePem: chain.operatorCertificate?.pem ?? null,
    operatorRootPem: chain.operatorRoot?.pem ?? null,
    attestation: ctx.tls.attestation,
  }));
}

/**
 * Health, answered at once: not queued behind a backup or a restore, whose progress it reports.
 * What it reads — the device's in-memory status and the state digest — is only ever replaced in
 * one synchronous step (DeviceState.replaceStaged), so it sees the state before or after a restore,
 * never a part of it. While the device itself computes (sealing a backup, checking or staging a
 * restore) the event loop is busy and the answer waits for that step (seconds at 100k objects,
 * docs/bench.md); the long parts — receiving the upload, streaming the backup out — do not block it.
 */
function health(ctx: ManagementContext, _req: IncomingMessage, _res: ServerResponse, url: URL): Promise<NodeHealthJson> {
  const status = ctx.hsm.status();
  const load = ctx.dataPlane.load();
  return Promise.resolve(encodeNodeHealth({
    provisioning: status.provisioning,
    serial: status.serial,
    mode: status.mode,
    cluster: status.cluster,
    clusterId: status.clusterId,
    usersInitialised: status.usersInitialised,
    activated: status.activated,
    tokenObjects: status.tokenObjects,
    sessions: status.sessions,
    inFlight: load.inFlight,
    inFlightMax: load.inFlightMax,
    connections: load.connections,
    capacityOpsPerSecond: load.capacityOpsPerSecond,
    loadPermille: load.inFlightMax === 0 ? 0 : Math.round((load.inFlight * 1000) / load.inFlightMax),
    journalPosition: status.journalPosition,
    // Asked for only: after a write it is a scan of the whole state, and probes need none of it.
    stateDigest: url.searchParams.get(HEALTH_DIGEST_PARAM) === '1' ? Buffer.from(ctx.hsm.stateDigest()).toString('hex') : null,
    restoring: ctx.activity.restores > 0,
    backingUp: ctx.activity.backups > 0,
    dataPlaneHost: ctx.dataPlaneHost,
    dataPlanePort: ctx.dataPlane.port,
    journalHeadHash: hexOf(ctx.hsm.journal.head().hash),
    journalFault: faultOf(ctx.hsm.journal.fault()),
    journalMissing: ctx.hsm.journal.missing() ?? null,
    journalMode: ctx.hsm.journal.mode(),
    figures: ctx.figures?.() ?? null,
  }));
}

const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const faultOf = (f: { readonly code: string; readonly seq: bigint; readonly reason: string } | undefined): JournalFaultReport | null =>
  f === undefined ? null : { code: f.code, seq: f.seq, reason: f.reason };

/**
 * The outbox offer, long-polled: the sealed entry waiting in the device's outbox (taken: each is
 * offered once), or 204 after `waitMs` (≤ MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX). It never joins the
 * state queue, so health and delivery are answered while it waits. The bytes are sealed; nothing
 * logs them.
 */
async function journalOffer(ctx: ManagementContext, _req: IncomingMessage, res: ServerResponse, url: URL): Promise<undefined> {
  const waitMs = decodeOfferWaitMs(url.searchParams.get(JOURNAL_OFFER_WAIT_PARAM), MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX);
  const item = await ctx.hsm.journal.takeOffer(waitMs);
  if (item === undefined) {
    res.writeHead(204, { 'cache-control': 'no-store' }).end();
    return undefined;
  }
  // A caller that hung up while waiting loses the entry it took: the device then withdraws or times
  // it out (COFFER_JOURNAL_OUTCOME_UNKNOWN) as for any lost relay; nothing is applied half.
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': item.entry.length, [JOURNAL_SEQ_HEADER]: item.seq.toString(10), 'cache-control': 'no-store' });
  res.end(item.entry);
  return undefined;
}

/** Delivers entries (a journal-frames body) into the device's journal; answers what it did. Not
 * queued behind backups: the device's delivery never waits for its writer queue (journal.ts). */
async function journalEntries(ctx: ManagementContext, req: IncomingMessage): Promise<JournalDeliveryJson> {
  const frames = decodeJournalFrames(await readBinaryBody(req, MANAGEMENT_JOURNAL_BODY_BYTES_MAX));
  const r = await ctx.hsm.journal.deliver(frames);
  return encodeJournalDelivery({
    headSeq: r.head.seq, headHash: hexOf(r.head.hash), applied: r.applied, ignored: r.ignored, waitingFor: r.waitingFor ?? null, fault: faultOf(r.fault),
    missing: r.missing ?? null,
  });
}

/** Runs `fn` counted as a backup or restore in progress (health reports it), however it ends. */
async function counted<T>(ctx: ManagementContext, kind: 'backups' | 'restores', fn: () => Promise<T>): Promise<T> {
  ctx.activity[kind]++;
  try {
    return await fn();
  } finally {
    ctx.activity[kind]--;
  }
}

/** Seals a backup into a spool file, then streams the file; the file is removed however it ends. */
function backup(ctx: ManagementContext, _req: IncomingMessage, res: ServerResponse, url: URL): Promise<unknown> {
  return counted(ctx, 'backups', () => sealAndStream(ctx, res, url));
}

async function sealAndStream(ctx: ManagementContext, res: ServerResponse, url: URL): Promise<undefined> {
  const requested = url.searchParams.get(BACKUP_CLUSTER_ID_PARAM);
  const path = ctx.spoolPath('backup');
  try {
    const summary = await ctx.exclusive(() => {
      const own = ctx.hsm.cluster.clusterId();
      const clusterId = checkClusterId(requested ?? own);
      if (own !== null && own !== clusterId) fail('COFFER_MANAGEMENT_REQUEST', { reason: 'cluster-id-mismatch' });
      const sink = fileSink(path);
      try {
        return ctx.hsm.createBackup(sink, { clusterId });
      } finally {
        sink.close();
      }
    });
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': statSync(path).size,
      [BACKUP_ID_HEADER]: summary.backupId,
      'cache-control': 'no-store',
    });
    await pipeline(createReadStream(path), res);
    return undefined;
  } finally {
    rmSync(path, { force: true });
  }
}

/** Spools the uploaded backup, restores it, and re-issues the data-plane TLS identity. With
 * `cloneClusterId`, the restored HSM then starts that cluster's own journal (checked before a byte
 * is spooled; a refusal after the restore leaves the restored state, which a retry restores again). */
function restore(ctx: ManagementContext, req: IncomingMessage, _res: ServerResponse, url: URL): Promise<RestoreSummary> {
  const clone = url.searchParams.get(RESTORE_CLONE_CLUSTER_ID_PARAM);
  const cloneClusterId = clone === null ? undefined : checkClusterId(clone);
  return counted(ctx, 'restores', () => receiveAndRestore(ctx, req, cloneClusterId));
}

async function receiveAndRestore(ctx: ManagementContext, req: IncomingMessage, cloneClusterId: string | undefined): Promise<RestoreSummary> {
  const path = ctx.spoolPath('restore');
  try {
    await spoolBody(req, path, ctx.restoreBytesMax);
    return await ctx.exclusive(async () => {
      const source = fileSource(path);
      let summary;
      try {
        summary = await ctx.hsm.restoreBackup(source);
      } finally {
        source.close();
      }
      if (cloneClusterId !== undefined) await ctx.hsm.cluster.startCloneJournal(cloneClusterId);
      await ctx.dataPlane.refreshTls();
      return summary;
    });
  } finally {
    rmSync(path, { force: true });
  }
}

async function clusterCsr(ctx: ManagementContext, req: IncomingMessage): Promise<ClusterCsrResponse> {
  const { clusterId } = decodeClusterCsrRequest(await readJsonBody(req, ctx.jsonBodyBytesMax));
  return ctx.exclusive(async () => ({ csrPem: await ctx.hsm.cluster.createCsr(clusterId) }));
}

/**
 * Cluster initialisation. The PreCo password and appliance credential arrive as JSON strings: a
 * one-time, pre-activation credential (the admin sets its own password at activation) and the
 * service's health credential. They are handed to the device as bytes that are zeroised afterwards;
 * the JSON strings themselves cannot be.
 */
async function clusterInitialise(ctx: ManagementContext, req: IncomingMessage): Promise<Record<string, never>> {
  const body = decodeClusterInitialisation(await readJsonBody(req, ctx.jsonBodyBytesMax));
  const { certificatePem, trustAnchorPem } = body;
  const preCoPassword = new TextEncoder().encode(body.preCoPassword);
  const applianceCredential = new TextEncoder().encode(body.applianceCredential);
  try {
    return await ctx.exclusive(async () => {
      await ctx.hsm.cluster.initialise({ certificatePem, trustAnchorPem, preCoPassword, applianceCredential });
      await ctx.dataPlane.refreshTls();
      return {};
    });
  } finally {
    preCoPassword.fill(0);
    applianceCredential.fill(0);
  }
}

async function zeroise(ctx: ManagementContext): Promise<Record<string, never>> {
  return ctx.exclusive(async () => {
    await ctx.hsm.zeroise();
    await ctx.dataPlane.refreshTls();
    return {};
  });
}

/**
 * A page of the audit log (docs/audit.md "Collection"): the device first closes its log with a
 * signed checkpoint, so the page ends on one; asking from `from` marks what lies before it as
 * collected (droppable when the log is full). The page travels as an audit bundle with the device's
 * certificates, so it verifies on its own. Records hold no secret.
 */
function audit(ctx: ManagementContext, _req: IncomingMessage, res: ServerResponse, url: URL): Promise<undefined> {
  const log = ctx.hsm.audit ?? fail('COFFER_MANAGEMENT_REQUEST', { reason: 'audit-off' });
  const from = decodeAuditFrom(url.searchParams.get(AUDIT_FROM_PARAM));
  const max = decodeAuditMax(url.searchParams.get(AUDIT_MAX_PARAM), AUDIT_BUNDLE_RECORDS_MAX);
  const chain = ctx.hsm.provisioning.chain();
  const records = log.collect(from, max);
  const body = encodeAuditBundle({ deviceCertificateDer: chain.deviceCertificate.der, operatorCertificateDer: chain.operatorCertificate?.der ?? new Uint8Array(0), records });
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(body);
  return Promise.resolve(undefined);
}

const HANDLERS: Readonly<Record<keyof typeof MANAGEMENT_ROUTES, Handler>> = {
  identity, health, backup, restore, clusterCsr, clusterInitialise, zeroise, journalOffer, journalEntries, audit,
};

/** Path → method → handler. A Map, so that no request path can reach an object's prototype. */
export const ROUTES: ReadonlyMap<string, ReadonlyMap<string, Handler>> = new Map(
  (Object.keys(HANDLERS) as Array<keyof typeof MANAGEMENT_ROUTES>).map((name) => {
    const { method, path } = MANAGEMENT_ROUTES[name];
    return [path, new Map<string, Handler>([[method, HANDLERS[name]]])];
  }),
);
