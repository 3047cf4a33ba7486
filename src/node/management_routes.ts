// The endpoints of the management interface (docs/node.md "Management interface"). Each handler
// returns the JSON to answer 200 with, or undefined when it answered itself (the backup stream).
// Everything that reads or changes the device's state runs under ctx.exclusive.

import { createReadStream, rmSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { fail } from '../errors.js';
import { CERTIFICATE_BYTES_MAX, PASSWORD_CHARS_MAX } from '../formats/limits.js';
import { fileSink } from '../hsm/backup/backup.js';
import { fileSource } from '../hsm/backup/file_source.js';
import type { Hsm } from '../hsm/device.js';
import type { ManagementDataPlane } from './management.js';
import { readJsonBody, spoolBody, stringField } from './management_http.js';
import type { TlsIdentity } from './tls_identity.js';

export interface ManagementContext {
  readonly hsm: Hsm;
  readonly dataPlane: ManagementDataPlane;
  /** The management server's own attested leaf (what GET /v1/identity vouches for). */
  readonly tls: TlsIdentity;
  readonly jsonBodyBytesMax: number;
  readonly restoreBytesMax: number;
  readonly onBug: (e: unknown) => void;
  /** A fresh path for a spool file of `kind`. */
  spoolPath(kind: 'backup' | 'restore'): string;
  /** Runs `fn` after every state operation queued before it has finished. */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T>;
}

type Handler = (ctx: ManagementContext, req: IncomingMessage, res: ServerResponse, url: URL) => Promise<unknown>;

/** CloudHSM's cluster id shape (docs/architecture.md §6). */
const CLUSTER_ID = /^cluster-[2-7a-zA-Z]{11,16}$/;
/** PEM text of a certificate: base64 (4/3 of the DER) plus armour and line breaks. */
const PEM_CHARS_MAX = 2 * CERTIFICATE_BYTES_MAX;

function clusterIdOf(value: string | null): string {
  if (value === null || !CLUSTER_ID.test(value)) fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-cluster-id' });
  return value;
}

function identity(ctx: ManagementContext): Promise<unknown> {
  const chain = ctx.hsm.provisioning.chain();
  return Promise.resolve({
    deviceCertificatePem: chain.deviceCertificate.pem,
    manufacturerRootPem: chain.manufacturerRoot.pem,
    operatorCertificatePem: chain.operatorCertificate?.pem ?? null,
    operatorRootPem: chain.operatorRoot?.pem ?? null,
    attestation: Buffer.from(ctx.tls.attestation).toString('base64'),
  });
}

async function health(ctx: ManagementContext): Promise<unknown> {
  return ctx.exclusive(() => {
    const status = ctx.hsm.status();
    const load = ctx.dataPlane.load();
    return {
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
      journalPosition: 0, // no cluster journal yet (docs/architecture.md §5): every node reports 0
      stateDigest: Buffer.from(ctx.hsm.stateDigest()).toString('hex'),
    };
  });
}

/** Seals a backup into a spool file, then streams the file; the file is removed however it ends. */
async function backup(ctx: ManagementContext, _req: IncomingMessage, res: ServerResponse, url: URL): Promise<unknown> {
  const requested = url.searchParams.get('clusterId');
  const path = ctx.spoolPath('backup');
  try {
    const summary = await ctx.exclusive(() => {
      const own = ctx.hsm.cluster.clusterId();
      const clusterId = clusterIdOf(requested ?? own);
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
      'x-coffer-backup-id': summary.backupId,
      'cache-control': 'no-store',
    });
    await pipeline(createReadStream(path), res);
    return undefined;
  } finally {
    rmSync(path, { force: true });
  }
}

/** Spools the uploaded backup, restores it, and re-issues the data-plane TLS identity. */
async function restore(ctx: ManagementContext, req: IncomingMessage): Promise<unknown> {
  const path = ctx.spoolPath('restore');
  try {
    await spoolBody(req, path, ctx.restoreBytesMax);
    return await ctx.exclusive(async () => {
      const source = fileSource(path);
      let summary;
      try {
        summary = ctx.hsm.restoreBackup(source);
      } finally {
        source.close();
      }
      await ctx.dataPlane.refreshTls();
      return summary;
    });
  } finally {
    rmSync(path, { force: true });
  }
}

async function clusterCsr(ctx: ManagementContext, req: IncomingMessage): Promise<unknown> {
  const body = await readJsonBody(req, ctx.jsonBodyBytesMax);
  const clusterId = clusterIdOf(stringField(body, 'clusterId', 64));
  return ctx.exclusive(async () => ({ csrPem: await ctx.hsm.cluster.createCsr(clusterId) }));
}

/**
 * Cluster initialisation. The PreCo password and appliance credential arrive as JSON strings: a
 * one-time, pre-activation credential (the admin sets its own password at activation) and the
 * service's health credential. They are handed to the device as bytes that are zeroised afterwards;
 * the JSON strings themselves cannot be.
 */
async function clusterInitialise(ctx: ManagementContext, req: IncomingMessage): Promise<unknown> {
  const body = await readJsonBody(req, ctx.jsonBodyBytesMax);
  const certificatePem = stringField(body, 'certificatePem', PEM_CHARS_MAX);
  const trustAnchorPem = stringField(body, 'trustAnchorPem', PEM_CHARS_MAX);
  const preCoPassword = new TextEncoder().encode(stringField(body, 'preCoPassword', PASSWORD_CHARS_MAX));
  const applianceCredential = new TextEncoder().encode(stringField(body, 'applianceCredential', PASSWORD_CHARS_MAX));
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

async function zeroise(ctx: ManagementContext): Promise<unknown> {
  return ctx.exclusive(async () => {
    ctx.hsm.zeroise();
    await ctx.dataPlane.refreshTls();
    return {};
  });
}

/** Path → method → handler. A Map, so that no request path can reach an object's prototype. */
export const ROUTES: ReadonlyMap<string, ReadonlyMap<string, Handler>> = new Map([
  ['/v1/identity', new Map<string, Handler>([['GET', identity]])],
  ['/v1/health', new Map<string, Handler>([['GET', health]])],
  ['/v1/backup', new Map<string, Handler>([['GET', backup]])],
  ['/v1/restore', new Map<string, Handler>([['PUT', restore]])],
  ['/v1/cluster/csr', new Map<string, Handler>([['POST', clusterCsr]])],
  ['/v1/cluster/initialise', new Map<string, Handler>([['POST', clusterInitialise]])],
  ['/v1/zeroise', new Map<string, Handler>([['POST', zeroise]])],
]);
