// `coffer service` (docs/control-plane.md "Running `coffer service`"): one region's control plane
// on the adapters the operator names — the metadata store (an SQLite file, or a PostgreSQL URL that
// several service processes share), the archive (a directory, or `s3://bucket/prefix`), the fleet
// (`--fleet local`, the default: node processes this service starts in `--fleet-dir` with
// `--authorities`; `--fleet remote`: nodes operators run elsewhere and register, kept in the
// metadata store, docs/fleet.md) and the access-keys file. This module checks the options (a bad one is
// COFFER_CLI_USAGE naming the option, never its value: a URL may carry a password), opens the
// adapters and starts the service; `stop()` undoes it in reverse. The HSM processes are left
// running at stop: they belong to the fleet, and other service processes may be using them.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { fail, isCofferError } from '../errors.js';
import { readAccessKeysFile } from '../service/api/access_keys.js';
import type { AccessKey } from '../service/api/sigv4.js';
import { DATA_PLANE_PORT_DEFAULT, PROBE_INTERVAL_MS_DEFAULT } from '../service/config.js';
import type { Fleet } from '../service/fleet/fleet_port.js';
import { LocalFleet } from '../service/fleet/local_fleet.js';
import { readPeersFile, type PeerEndpoint } from '../service/peer_config.js';
import { RemoteFleet } from '../service/fleet/remote_fleet.js';
import { startService, type RunningService } from '../service/service.js';
import { openFsArchive } from '../storage/archive_fs.js';
import type { Archive } from '../storage/archive_port.js';
import { openS3Archive } from '../storage/archive_s3.js';
import { isPostgresLocation, metadataLocationForLog, openMetadataStore } from '../storage/metadata_open.js';
import type { MetadataStore } from '../storage/metadata_port.js';
import { POSTGRES_SCHEMA_PATTERN } from '../storage/metadata_postgres.js';

export const SERVICE_REGION = /^[a-z]{2}(-gov)?-(east|west|north|south|central){1,2}-\d$/;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** Probing faster than this would spend the machine on health checks. */
export const PROBE_INTERVAL_MS_MIN = 50;
/** A probe interval over an hour leaves a dead HSM unnoticed for hours (3 failed probes). */
export const PROBE_INTERVAL_MS_MAX = 3_600_000;
const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/([A-Za-z0-9._/-]*))?$/;
const TCP_PORT_MAX = 65535;

/** The options as commander hands them over (strings). */
export interface ServiceCommandOptions {
  readonly region?: string;
  readonly host: string;
  readonly port: string;
  readonly metadata?: string;
  readonly schema?: string;
  readonly archive?: string;
  readonly s3Endpoint?: string;
  readonly s3Region?: string;
  readonly fleet: string;
  readonly fleetDir?: string;
  readonly authorities?: string;
  readonly managementCert?: string;
  readonly managementKey?: string;
  readonly manufacturerRoot?: string;
  readonly operatorRoot?: string;
  readonly accessKeys?: string;
  readonly peers?: string;
  readonly metricsPort?: string;
  readonly workDir?: string;
  readonly dataPlanePort: string;
  readonly probeIntervalMs: string;
  readonly journal: string;
  readonly logLevel: string;
}

export type ArchiveLocation =
  | { readonly kind: 'fs'; readonly directory: string }
  | { readonly kind: 's3'; readonly bucket: string; readonly keyPrefix: string; readonly endpoint?: string; readonly region: string };

/** The local fleet starts node processes in its directory with the development authorities; the
 * remote fleet keeps registered nodes in the metadata store and starts nothing. */
export type FleetChoice =
  | { readonly kind: 'local'; readonly fleetDir: string; readonly authoritiesDir: string }
  | { readonly kind: 'remote' };

/** The checked configuration. Secrets (the key PEM, the access keys) are read only at start. */
export interface ServiceCommandConfig {
  readonly region: string;
  readonly host: string;
  readonly port: number;
  readonly metadata: string;
  readonly schema?: string;
  readonly archive: ArchiveLocation;
  readonly fleet: FleetChoice;
  readonly managementCert: string;
  readonly managementKey: string;
  readonly manufacturerRoot: string;
  readonly operatorRoot: string;
  readonly accessKeys: string;
  readonly peers?: string;
  readonly workDir?: string;
  readonly dataPlanePort: number;
  readonly probeIntervalMs: number;
  /** Relay every cluster's journal (--journal relayed), or let each HSM order its own (solo). */
  readonly journal: 'relayed' | 'solo';
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** Prometheus metrics on this port of --host (docs/metrics.md); absent: not served. */
  readonly metricsPort?: number;
}

function usage(reason: string): never {
  return fail('COFFER_CLI_USAGE', { reason });
}

function required(value: string | undefined, name: string): string {
  if (value === undefined || value.length === 0) usage(`${name} is required`);
  return value;
}

function tcpPort(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n > TCP_PORT_MAX) usage(`${name} must be a TCP port (0-${TCP_PORT_MAX})`);
  return n;
}

function archiveLocation(text: string, s3Endpoint: string | undefined, s3Region: string | undefined, region: string): ArchiveLocation {
  if (text.startsWith('s3://')) {
    const m = S3_URL.exec(text);
    if (m === null) usage('--archive must be a directory or s3://bucket[/prefix] (bucket: 3-63 of [a-z0-9.-])');
    const prefix = (m[2] ?? '').replace(/\/+$/, '');
    if (s3Endpoint !== undefined && !/^https?:\/\/[^\s/]+(\/.*)?$/.test(s3Endpoint)) usage('--s3-endpoint must be an http(s) URL');
    if (s3Region !== undefined && !SERVICE_REGION.test(s3Region)) usage('--s3-region must be an AWS-style region, e.g. us-east-1');
    return {
      kind: 's3', bucket: m[1] as string, keyPrefix: prefix === '' ? '' : `${prefix}/`, region: s3Region ?? region,
      ...(s3Endpoint === undefined ? {} : { endpoint: s3Endpoint }),
    };
  }
  if (s3Endpoint !== undefined || s3Region !== undefined) usage('--s3-endpoint and --s3-region apply to an s3:// archive only');
  return { kind: 'fs', directory: resolve(text) };
}

function fleetChoice(o: ServiceCommandOptions): FleetChoice {
  if (o.fleet === 'remote') {
    if (o.fleetDir !== undefined || o.authorities !== undefined) usage('--fleet-dir and --authorities apply to --fleet local only (a remote fleet starts no node)');
    return { kind: 'remote' };
  }
  if (o.fleet !== 'local') usage('--fleet must be local or remote');
  return { kind: 'local', fleetDir: resolve(required(o.fleetDir, '--fleet-dir')), authoritiesDir: resolve(required(o.authorities, '--authorities')) };
}

/** Checks the command line; every failure is COFFER_CLI_USAGE naming the option. */
export function serviceConfig(o: ServiceCommandOptions): ServiceCommandConfig {
  const region = required(o.region, '--region');
  if (!SERVICE_REGION.test(region)) usage('--region must be an AWS-style region, e.g. us-east-1');
  const metadata = required(o.metadata, '--metadata');
  if (o.schema !== undefined) {
    if (!isPostgresLocation(metadata)) usage('--schema applies to a postgres:// metadata store only');
    if (!POSTGRES_SCHEMA_PATTERN.test(o.schema)) usage('--schema must be a lower-case PostgreSQL identifier ([a-z_][a-z0-9_]*, at most 63)');
  }
  const probeIntervalMs = Number(o.probeIntervalMs);
  if (!/^\d{1,7}$/.test(o.probeIntervalMs) || probeIntervalMs < PROBE_INTERVAL_MS_MIN || probeIntervalMs > PROBE_INTERVAL_MS_MAX) {
    usage(`--probe-interval-ms must be ${PROBE_INTERVAL_MS_MIN}-${PROBE_INTERVAL_MS_MAX}`);
  }
  const logLevel = LOG_LEVELS.find((l) => l === o.logLevel);
  if (logLevel === undefined) usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  if (o.journal !== 'relayed' && o.journal !== 'solo') usage('--journal must be relayed or solo');
  if (o.host !== '127.0.0.1' && o.host !== '0.0.0.0' && o.host !== '::' && o.host !== '::1' && o.host !== 'localhost') usage('--host must be 127.0.0.1, ::1, localhost, 0.0.0.0 or ::');
  return {
    region, host: o.host, port: tcpPort(o.port, '--port'), metadata, ...(o.schema === undefined ? {} : { schema: o.schema }),
    archive: archiveLocation(required(o.archive, '--archive'), o.s3Endpoint, o.s3Region, region),
    fleet: fleetChoice(o),
    managementCert: resolve(required(o.managementCert, '--management-cert')), managementKey: resolve(required(o.managementKey, '--management-key')),
    manufacturerRoot: resolve(required(o.manufacturerRoot, '--manufacturer-root')), operatorRoot: resolve(required(o.operatorRoot, '--operator-root')),
    accessKeys: resolve(required(o.accessKeys, '--access-keys')), ...(o.workDir === undefined ? {} : { workDir: resolve(o.workDir) }),
    ...(o.peers === undefined ? {} : { peers: resolve(required(o.peers, '--peers')) }),
    ...(o.metricsPort === undefined ? {} : { metricsPort: tcpPort(o.metricsPort, '--metrics-port') }),
    dataPlanePort: tcpPort(o.dataPlanePort, '--data-plane-port'), probeIntervalMs, journal: o.journal, logLevel,
  };
}

export const SERVICE_DEFAULTS = { dataPlanePort: DATA_PLANE_PORT_DEFAULT, probeIntervalMs: PROBE_INTERVAL_MS_DEFAULT, journal: 'relayed' } as const;

function readPem(path: string, option: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return usage(`${option} cannot be read`);
  }
  if (!text.includes('-----BEGIN ')) usage(`${option} is not a PEM file`);
  return text;
}

/** The --peers file; its detail (entry index, field) is safe to show, its content never is. */
function peersOf(path: string, region: string): PeerEndpoint[] {
  try {
    return readPeersFile(path, region);
  } catch (e) {
    if (!isCofferError(e, 'COFFER_PEER_CONFIG_INVALID')) throw e;
    const where = [e.detail['field'], e.detail['reason']].filter((x) => x !== undefined).map(String).join(' ');
    return usage(`--peers: ${where}${e.detail['index'] === undefined ? '' : ` (entry ${String(e.detail['index'])})`}`);
  }
}

export interface ServiceProcess {
  readonly service: RunningService;
  readonly fleet: Fleet;
  /** Stops the API and the orchestrator (its lease released), then closes the fleet (its devices run on), archive and store. */
  stop(): Promise<void>;
}

/** Opens the adapters the configuration names and starts the service on them (which reattaches its devices). */
export async function startServiceProcess(config: ServiceCommandConfig, logger: Logger): Promise<ServiceProcess> {
  let accessKeys: AccessKey[];
  try {
    accessKeys = readAccessKeysFile(config.accessKeys);
  } catch (e) {
    // The file's detail (entry index, field) is safe to show; its content never is.
    if (isCofferError(e, 'COFFER_API_CONFIG_INVALID')) usage(`--access-keys: ${String(e.detail['reason'] ?? e.detail['field'] ?? 'invalid')}${e.detail['index'] === undefined ? '' : ` (entry ${String(e.detail['index'])})`}`);
    throw e;
  }
  const peers = config.peers === undefined ? undefined : peersOf(config.peers, config.region);
  const management = {
    certificatePem: readPem(config.managementCert, '--management-cert'), keyPem: readPem(config.managementKey, '--management-key'),
    manufacturerRootPem: readPem(config.manufacturerRoot, '--manufacturer-root'), operatorRootPem: readPem(config.operatorRoot, '--operator-root'),
  };
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await close();
    closers.length = 0;
  };
  try {
    const workDir = config.workDir ?? mkdtempSync(join(tmpdir(), 'coffer-service-'));
    if (config.workDir === undefined) closers.push(() => Promise.resolve(rmSync(workDir, { recursive: true, force: true })));
    else mkdirSync(workDir, { recursive: true, mode: 0o700 });
    const metadata: MetadataStore = await openMetadataStore(config.metadata, config.schema === undefined ? {} : { schema: config.schema });
    closers.push(() => metadata.close());
    const archive: Archive = config.archive.kind === 'fs'
      ? await openFsArchive({ directory: config.archive.directory })
      : await openS3Archive({
        bucket: config.archive.bucket, keyPrefix: config.archive.keyPrefix, region: config.archive.region,
        ...(config.archive.endpoint === undefined ? {} : { endpoint: config.archive.endpoint, forcePathStyle: true }),
      });
    closers.push(() => archive.close());
    const fleet: Fleet = config.fleet.kind === 'remote'
      ? await RemoteFleet.open({ metadata, ...management, journal: config.journal })
      : await LocalFleet.open({
        dir: config.fleet.fleetDir, authoritiesDir: config.fleet.authoritiesDir, mainJs: join(dirname(fileURLToPath(import.meta.url)), 'main.js'), ...management,
        journal: config.journal, nodeLogLevel: config.logLevel,
      });
    closers.push(() => fleet.close({ stopDevices: false }));
    const service = await startService({
      region: config.region, host: config.host, port: config.port, metadata, archive, fleet, accessKeys, workDir, logger, ...(peers === undefined ? {} : { peers }),
      dataPlanePort: config.dataPlanePort, probeIntervalMs: config.probeIntervalMs, relayJournal: config.journal === 'relayed',
      ...(config.metricsPort === undefined ? {} : { metricsPort: config.metricsPort }),
      roots: { manufacturerRoot: management.manufacturerRootPem, operatorRoot: management.operatorRootPem },
    });
    closers.push(() => service.close());
    logger.info({
      event: 'service.adapters', metadata: metadataLocationForLog(config.metadata), schema: config.schema ?? null,
      archive: config.archive.kind === 'fs' ? config.archive.directory : `s3://${config.archive.bucket}/${config.archive.keyPrefix}`,
      fleet: config.fleet.kind, fleetDir: config.fleet.kind === 'local' ? config.fleet.fleetDir : null,
      accessKeys: accessKeys.length, peers: peers?.map((p) => ({ region: p.region, endpoint: p.endpoint })) ?? [],
    }, 'control plane adapters open');
    return { service, fleet, stop: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
