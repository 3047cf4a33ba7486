// The node's management interface (docs/architecture.md §2, docs/node.md "Management interface"): HTTPS on its
// own port, TLS 1.3 only, mutual TLS against the device's operator root. It serves the control plane
// (and `coffer dev cluster`): identity, health, sealed backup, restore, cluster CSR and
// initialisation, zeroisation. Never key use, key listing or user management: no endpoint takes a
// session, a handle or a user name.
//
// The server presents the node's attested per-start TLS leaf (tls_identity.ts); a management client
// cannot know that leaf in advance, so it checks the device certificate and the attestation that
// GET /v1/identity returns against the leaf of that very connection (src/management/client.ts).
// Requests that change the device's state, and backups, run one at a time (createBackup and
// restoreBackup are synchronous; a restore must never interleave with a backup or an initialise).
// Identity and health never wait for that queue: health reads the device's in-memory status, which
// a restore replaces in one synchronous step, and says whether a restore or a backup is in progress,
// so a control plane never takes a long restore for a dead node.

import type { X509Certificate } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { CofferError, fail } from '../errors.js';
import {
  MANAGEMENT_HEADERS_TIMEOUT_MS, MANAGEMENT_JSON_BODY_BYTES_MAX, MANAGEMENT_REQUEST_TIMEOUT_MS, MANAGEMENT_REQUESTS_MAX, MANAGEMENT_RESTORE_BYTES_MAX,
} from '../formats/limits.js';
import type { Hsm } from '../hsm/device.js';
import type { NodeLoad } from './dispatch.js';
import { METRICS_PATH, serveMetrics, type NodeMetrics } from './metrics.js';
import { ROUTES, type ManagementContext } from './management_routes.js';
import { sendError, sendJson } from './management_http.js';
import { trackSockets } from './server_sockets.js';
import { createTlsIdentity, type TlsIdentity } from './tls_identity.js';

/** RFC 5280 §4.2.1.12 id-kp-clientAuth. */
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** Spool files live here, inside the data directory (0700); left-overs of a crash are removed at start. */
export const MANAGEMENT_TMP_DIR = 'management-tmp';
/** Retry hint of a busy answer, in seconds (HTTP Retry-After). */
const BUSY_RETRY_AFTER_S = 1;

/** What the management interface needs of the data plane. */
export interface ManagementDataPlane {
  /** The data plane's TCP port (health reports it). */
  readonly port: number;
  load(): NodeLoad;
  /** Re-issues the data-plane TLS identity from the device's cluster state (after restore,
   * initialisation, zeroisation). */
  refreshTls(): Promise<void>;
}

export interface ManagementOptions {
  readonly hsm: Hsm;
  readonly dataPlane: ManagementDataPlane;
  /** The node's data directory: spool files go to `<dataDir>/management-tmp`. */
  readonly dataDir: string;
  readonly host?: string;
  /** The address the data plane is bound to, as health reports it; default: `host`. */
  readonly dataPlaneHost?: string;
  /** 0 (default): any free port. */
  readonly port?: number;
  /** Default: a fresh attested identity (tls_identity.ts). */
  readonly tls?: TlsIdentity;
  readonly jsonBodyBytesMax?: number;
  readonly restoreBytesMax?: number;
  readonly requestsMax?: number;
  /** Called with an untyped exception (a bug) before the request is answered 500. */
  readonly onBug?: (error: unknown) => void;
  /** Served at GET /metrics (metrics.ts); absent: no such path. */
  readonly metrics?: NodeMetrics;
}

export interface ManagementServer {
  readonly port: number;
  readonly tls: TlsIdentity;
  close(): Promise<void>;
}

/** Starts the management server; resolves once it listens. */
export async function startManagement(options: ManagementOptions): Promise<ManagementServer> {
  const { hsm } = options;
  const operatorRoot = hsm.provisioning.chain().operatorRoot ?? fail('COFFER_DEVICE_NOT_COMMISSIONED');
  const host = options.host ?? '127.0.0.1';
  const tls = options.tls ?? (await createTlsIdentity(hsm, [host, 'localhost']));
  const tmpDir = join(options.dataDir, MANAGEMENT_TMP_DIR);
  rmSync(tmpDir, { recursive: true, force: true }); // spool files of a previous run hold no state anyone waits for
  mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  const ctx = newContext(options, tls, tmpDir, options.dataPlaneHost ?? host);
  const server: Server = createServer({
    key: tls.keyPem, cert: tls.certificatePem, minVersion: 'TLSv1.3',
    ca: operatorRoot.pem, requestCert: true, rejectUnauthorized: true,
    handshakeTimeout: MANAGEMENT_HEADERS_TIMEOUT_MS, headersTimeout: MANAGEMENT_HEADERS_TIMEOUT_MS, requestTimeout: MANAGEMENT_REQUEST_TIMEOUT_MS,
  });
  // OpenSSL already verifies a client certificate for the "ssl_client" purpose (EKU clientAuth when
  // an EKU is present); this repeats the check in our own code, so the rule does not rest on a
  // library default alone.
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!hasClientAuthUsage(socket)) socket.destroy();
  });
  server.on('tlsClientError', () => undefined); // refused handshakes (no or foreign client certificate) just end
  const sockets = trackSockets(server);
  const requestsMax = options.requestsMax ?? MANAGEMENT_REQUESTS_MAX;
  let active = 0;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (active >= requestsMax) {
      res.setHeader('retry-after', String(BUSY_RETRY_AFTER_S));
      sendError(req, res, new CofferError('COFFER_NODE_BUSY', { retryAfterMs: BUSY_RETRY_AFTER_S * 1000 }), ctx.onBug);
      return;
    }
    active++;
    res.once('close', () => active--);
    handle(ctx, req, res, options.metrics).catch((e: unknown) => sendError(req, res, e, ctx.onBug));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    tls,
    close: () => sockets.close(),
  };
}

function newContext(options: ManagementOptions, tls: TlsIdentity, tmpDir: string, dataPlaneHost: string): ManagementContext {
  let queue: Promise<unknown> = Promise.resolve();
  let spoolCounter = 0;
  return {
    hsm: options.hsm,
    dataPlane: options.dataPlane,
    dataPlaneHost,
    tls,
    activity: { backups: 0, restores: 0 },
    ...(options.metrics === undefined ? {} : { figures: options.metrics.figures.bind(options.metrics) }),
    jsonBodyBytesMax: options.jsonBodyBytesMax ?? MANAGEMENT_JSON_BODY_BYTES_MAX,
    restoreBytesMax: options.restoreBytesMax ?? MANAGEMENT_RESTORE_BYTES_MAX,
    onBug: options.onBug ?? (() => undefined),
    spoolPath: (kind) => join(tmpDir, `${kind}-${process.pid}-${++spoolCounter}.tmp`),
    exclusive: <T>(fn: () => Promise<T> | T): Promise<T> => {
      const run = queue.then(fn, fn);
      queue = run.catch(() => undefined);
      return run;
    },
  };
}

/** EKU, when the certificate has one, must allow TLS client authentication (RFC 5280 §4.2.1.12). */
function hasClientAuthUsage(socket: TLSSocket): boolean {
  const peer: X509Certificate | undefined = socket.getPeerX509Certificate();
  if (peer === undefined) return false;
  const usages = peer.keyUsage as string[] | undefined; // node:crypto names the EKU list keyUsage
  return usages === undefined || usages.includes(EKU_CLIENT_AUTH);
}

async function handle(ctx: ManagementContext, req: IncomingMessage, res: ServerResponse, metrics: NodeMetrics | undefined): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://node');
  if (metrics !== undefined && url.pathname === METRICS_PATH && req.method === 'GET') return serveMetrics(metrics, res, req);
  const route = ROUTES.get(url.pathname) ?? fail('COFFER_MANAGEMENT_REQUEST', { reason: 'unknown-path' });
  const method = req.method ?? '';
  const handler = route.get(method) ?? fail('COFFER_MANAGEMENT_REQUEST', { reason: 'method-not-allowed', method: method.slice(0, 16) });
  const result = await handler(ctx, req, res, url);
  if (result !== undefined) sendJson(res, 200, result);
}

/** Spool files present now (tests check none are left behind). */
export function spoolFiles(dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, MANAGEMENT_TMP_DIR));
  } catch {
    return [];
  }
}
