// `coffer hsm serve` as a library call (docs/architecture.md §2): opens the node's sealed store in a data
// directory, creating it and its device secret on first start, provisions a development device when
// the store is new (with shared development authorities when given, so that nodes restore each
// other's backups), and starts the data plane and, when asked, the management interface
// (management.ts). A bug in either stops the process unless the caller passes its own onBug
// (a fatal log line, then exit: an HSM must not run on in an unknown state). Everything it does is
// logged as JSON lines (log.ts). docs/node.md "Serving".
//
// Files in dataDir: device.secret (32 random bytes, mode 0600, created exclusively: the host's file
// permissions are the boundary, docs/threat-model.md) and store.sqlite (the sealed store, store.ts).

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { SecretBytes } from '../crypto/secret_bytes.js';
import { Hsm } from '../hsm/device.js';
import { AuditLog } from '../hsm/audit/audit_log.js';
import { FileAuditStore } from '../hsm/audit/audit_store.js';
import { systemClock } from '../hsm/ports.js';
import { createDevelopmentAuthorities, loadDevelopmentAuthorities, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../factory/development.js';
import { signFirmware } from '../factory/ceremony.js';
import { computeFirmwareDigest, defaultFirmwareRoot, encodeFirmwareManifest, parseFirmwareManifest } from '../hsm/identity/firmware.js';
import type { FirmwareEvidence } from '../hsm/identity/provisioning.js';
import { DEVICE_SECRET_BYTES, SealedStore, deriveStorageKey } from '../hsm/store/sealed_store.js';
import { opName } from '../formats/wire.js';
import { describeBug, startDataPlane, NODE_BUG_EXIT_CODE, type DataPlane, type DataPlaneOptions } from './data_plane.js';
import { createLogger, logHsmEvent, type Logger } from './log.js';
import { startManagement, type ManagementServer } from './management.js';
import { NodeMetrics } from './metrics.js';

export const DEVICE_SECRET_FILE = 'device.secret';
export const STORE_FILE = 'store.sqlite';
export const AUDIT_FILE = 'audit.log';

export interface ServeOptions extends Omit<DataPlaneOptions, 'hsm' | 'metrics'> {
  readonly dataDir: string;
  /** Provision a NEW device with throw-away development authorities (marked as such). Required:
   * production provisioning runs the factory and operator ceremonies instead. */
  readonly development: true;
  /** Development authorities saved by saveDevelopmentAuthorities: a NEW device is provisioned with
   * them instead of throw-away ones. Nodes that must restore each other's backups share them. */
  readonly authoritiesDir?: string;
  /** The mode a NEW device is commissioned in (docs/device.md "Modes"); default NON_FIPS. An existing
   * device keeps the mode it was commissioned in. */
  readonly mode?: 'FIPS' | 'NON_FIPS';
  /** How the device orders its cluster journal (docs/node.md "Journal endpoints"): 'relayed' when a
   * control plane relays it (nodes a fleet starts), 'solo' (default) when the node is on its own. */
  readonly journal?: 'relayed' | 'solo';
  /** How long the device waits for a missing journal entry before it reports it (docs/device.md
   * "The journal"); default JOURNAL_MISSING_ENTRY_WAIT_MS. Tests shorten it. */
  readonly journalMissingEntryWaitMs?: number;
  /** Serve the management interface on this port (0: any free port); absent: no management server. */
  readonly managementPort?: number;
  /** The node's structured log (docs/node.md "Logs"); default: JSON lines on stderr at `info`. */
  readonly log?: Logger;
  /** Prometheus metrics at GET /metrics on the management interface (docs/metrics.md); default 'on'.
   * 'off' measures nothing on the request path and serves no /metrics. */
  readonly metrics?: 'on' | 'off';
  /** The device's audit log in dataDir/audit.log (docs/audit.md); default 'on'. 'off' keeps none
   * (the bench compares the two). */
  readonly audit?: 'on' | 'off';
}

export interface ServedNode {
  readonly hsm: Hsm;
  readonly dataPlane: DataPlane;
  /** Present when `managementPort` was given. */
  readonly management: ManagementServer | undefined;
  /** Present unless the node runs with metrics 'off'. */
  readonly metrics: NodeMetrics | undefined;
  close(): Promise<void>;
}

/** Reads the device secret, or creates it (0600, exclusive) when absent. */
function deviceSecret(path: string): SecretBytes {
  if (!existsSync(path)) {
    const fresh = SecretBytes.random(DEVICE_SECRET_BYTES);
    const fd = openSync(path, 'wx', 0o600);
    try {
      fresh.use((b) => writeSync(fd, b));
    } finally {
      closeSync(fd);
    }
    return fresh;
  }
  const raw = new Uint8Array(readFileSync(path));
  if (raw.length !== DEVICE_SECRET_BYTES) {
    raw.fill(0);
    fail('COFFER_CRYPTO_KEY_SIZE', { expectedBytes: DEVICE_SECRET_BYTES });
  }
  return SecretBytes.adopt(raw);
}

function openStore(dataDir: string): SealedStore {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = deviceSecret(join(dataDir, DEVICE_SECRET_FILE));
  const storageKey = deriveStorageKey(secret);
  try {
    const path = join(dataDir, STORE_FILE);
    return existsSync(path) ? SealedStore.open({ path, storageKey }) : SealedStore.create({ path, storageKey });
  } finally {
    storageKey.destroy();
    secret.destroy();
  }
}

/** Error codes of a socket or stream whose peer went away (node:net, node:stream). */
const PEER_GONE_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * The management interface reports to onBug every untyped exception of a request, and a client
 * that hangs up in the middle of an upload surfaces there as ECONNRESET "aborted": the peer left,
 * nothing in the node went wrong, so it must not stop the node (any authenticated client or a
 * network blip could). Everything else is passed on.
 */
function managementOnBug(onBug: (error: unknown) => void): (error: unknown) => void {
  return (error) => {
    const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
    if (typeof code === 'string' && PEER_GONE_CODES.has(code)) return;
    onBug(error);
  };
}

/** The file beside the store holding the signed manifest of the code a FIPS-mode device runs. */
export const FIRMWARE_MANIFEST_FILE = 'firmware-manifest.json';

function developmentAuthorities(dir: string | undefined): Promise<DevelopmentAuthorities> {
  return dir === undefined ? createDevelopmentAuthorities() : loadDevelopmentAuthorities(dir);
}

/**
 * The firmware evidence a FIPS-mode device opens with (docs/device.md "Modes"): the manifest saved
 * in its data directory and the digest of the code running now. A new FIPS device gets its manifest
 * signed by the development manufacturer over the code this process runs; a NON_FIPS device needs
 * none. A device whose code changed since its manifest was signed refuses to open, as FIPS asks.
 */
function firmwareEvidence(dataDir: string, mode: 'FIPS' | 'NON_FIPS', authorities: DevelopmentAuthorities | undefined): FirmwareEvidence | undefined {
  const path = join(dataDir, FIRMWARE_MANIFEST_FILE);
  if (!existsSync(path)) {
    if (mode !== 'FIPS' || authorities === undefined) return undefined;
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(path, encodeFirmwareManifest(signFirmware(authorities.manufacturer, defaultFirmwareRoot(), { product: 'coffer', version: 'development' })), { mode: 0o644 });
  }
  return { manifest: parseFirmwareManifest(readFileSync(path, 'utf8')), actualDigest: computeFirmwareDigest() };
}

/** Opens (or creates and provisions) the node in `dataDir` and serves its data plane. */
export async function serveNode(options: ServeOptions): Promise<ServedNode> {
  const { dataDir, development: _development, authoritiesDir, managementPort, mode = 'NON_FIPS', journal = 'solo', journalMissingEntryWaitMs, log = createLogger(), onBug = loggedCrash(log), metrics: metricsSwitch = 'on', audit: auditSwitch = 'on', ...planeOptions } = options;
  const metrics = metricsSwitch === 'on' ? new NodeMetrics() : undefined;
  const isNew = !existsSync(join(dataDir, STORE_FILE));
  const authorities = isNew ? (authoritiesDir === undefined ? await createDevelopmentAuthorities() : await loadDevelopmentAuthorities(authoritiesDir)) : undefined;
  const firmware = firmwareEvidence(dataDir, mode, authorities);
  const store = openStore(dataDir);
  const audit = auditSwitch === 'on' ? openAuditLog(dataDir, () => hsm, metrics) : undefined;
  const hsm: Hsm = Hsm.open({ store, onEvent: (event) => {
    logHsmEvent(log, event);
    metrics?.onHsmEvent(event);
  }, journal: { mode: journal, ...(journalMissingEntryWaitMs === undefined ? {} : { missingEntryWaitMs: journalMissingEntryWaitMs }) }, ...(firmware === undefined ? {} : { firmware }), ...(audit === undefined ? {} : { audit }) });
  let dataPlane: DataPlane | undefined;
  try {
    if (hsm.status().provisioning === 'NEW') {
      await provisionDevelopmentDevice(hsm, authorities ?? (await developmentAuthorities(authoritiesDir)), { mode, ...(firmware === undefined ? {} : { firmware }) });
    }
    dataPlane = await startDataPlane({
      ...planeOptions, hsm, onBug, onRefused: (op, code) => log.info({ event: 'refused', op: opLabel(op), code }, 'request refused'), ...(metrics === undefined ? {} : { metrics }),
    });
    metrics?.attach({ hsm, dataPlane });
    const management = managementPort === undefined ? undefined : await startManagement({
      hsm, dataPlane, dataDir, port: managementPort, onBug: managementOnBug(onBug), ...(metrics === undefined ? {} : { metrics }),
      ...(planeOptions.host === undefined ? {} : { host: planeOptions.host }),
    });
    const plane = dataPlane;
    const status = hsm.status();
    const host = planeOptions.host ?? '127.0.0.1';
    log.info({
      event: 'started', serial: status.serial, mode: status.mode, cluster: status.cluster, clusterId: status.clusterId,
      dataPlane: `${host}:${plane.port}`, management: management === undefined ? null : `${host}:${management.port}`,
      threadPool: threadPoolSize(process.env),
    }, 'listening');
    return {
      hsm,
      dataPlane: plane,
      management,
      metrics,
      close: async () => {
        await management?.close();
        await plane.close();
        hsm.close();
        log.info({ event: 'stopped' }, 'stopped');
      },
    };
  } catch (e) {
    await dataPlane?.close();
    hsm.close();
    throw e;
  }
}

/** The audit log in dataDir (docs/audit.md "On the node"), signed by the device identity once it has one. */
function openAuditLog(dataDir: string, hsm: () => Hsm, metrics: NodeMetrics | undefined): AuditLog {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new AuditLog({
    store: new FileAuditStore(join(dataDir, AUDIT_FILE)),
    clock: systemClock,
    signer: () => hsm().provisioning.identityIfAny(),
    ...(metrics === undefined ? {} : { onRecord: () => metrics.auditRecord() }),
  });
}

/** A bug stops the node (an HSM must not run on in an unknown state): one fatal log line that names
 * it (describeBug: never a library's message, which may quote its input), then exit. */
function loggedCrash(log: Logger): (error: unknown) => never {
  return (error) => {
    const { what, frames } = describeBug(error);
    log.fatal({ event: 'bug', error: what, frames }, 'bug: the node stops (an HSM must not run on in an unknown state)');
    process.exit(NODE_BUG_EXIT_CODE);
  };
}

/** libuv's default thread pool size, used when UV_THREADPOOL_SIZE is not set. */
const LIBUV_THREAD_POOL_DEFAULT = 4;
/** libuv's ceiling on UV_THREADPOOL_SIZE. */
const LIBUV_THREAD_POOL_MAX = 1024;

/**
 * The threads in this process's libuv pool, which signs and verifies (docs/node.md "Thread pool"),
 * as libuv reads UV_THREADPOOL_SIZE: unset → 4; else its leading integer (atoi: none is 0), 0 → 1,
 * and anything above 1024 — a negative number too, which libuv reads as unsigned — → 1024. The log
 * states it, since libuv fixes it before the node's code runs.
 */
export function threadPoolSize(env: NodeJS.ProcessEnv): number {
  const set = env['UV_THREADPOOL_SIZE'];
  if (set === undefined) return LIBUV_THREAD_POOL_DEFAULT;
  const parsed = Number.parseInt(set, 10);
  const n = Number.isNaN(parsed) ? 0 : parsed;
  if (n === 0) return 1;
  return n < 0 || n > LIBUV_THREAD_POOL_MAX ? LIBUV_THREAD_POOL_MAX : n;
}

/** An operation's name for the log, or its number when it has none. */
function opLabel(op: number): string {
  try {
    return opName(op);
  } catch {
    return `0x${op.toString(16).padStart(4, '0')}`;
  }
}
