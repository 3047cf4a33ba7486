// `coffer up`: a whole region on one machine (docs/getting-started.md): the control plane on SQLite
// and a filesystem archive under one data directory, a local fleet of `coffer hsm serve` processes,
// and the development ceremonies done (development authorities, marked as such in every
// certificate). Starting it again on the same directory brings everything back: the metadata, the
// archive, the fleet's devices (still running, or restarted from their data) and the access key.
//
// Files under the data directory:
//   authorities/                 development manufacturer and operator authorities (secret)
//   management-client.{pem,key}  the service's management client certificate (operator-issued)
//   manufacturer-root.pem, operator-root.pem   the roots a customer checks an HSM's certificates with
//   service.json (0600)          the account id and access key the API accepts (secret)
//   credentials (0600), config   AWS shared-credentials and config files, profile `coffer`
//   regions/<region>/            metadata.sqlite, archive/, fleet/, work/, service.log
//   metadata.json                where the metadata lives when it is not the SQLite files above: a
//                                PostgreSQL database (`--metadata`; the URL's password is not kept)
//                                and the prefix of this directory's schemas there, one per region

import { randomBytes, randomInt } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { createDevelopmentAuthorities, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../factory/development.js';
import { pemOf } from '../formats/x509.js';
import type { AccessKey } from '../service/api/sigv4.js';
import { peerCopy, type RegionPeer } from '../service/copy.js';
import type { CopyToRegion } from '../service/control_plane.js';
import { LocalFleet } from '../service/fleet/local_fleet.js';
import { startService, type RunningService } from '../service/service.js';
import { openFsArchive } from '../storage/archive_fs.js';
import type { Archive } from '../storage/archive_port.js';
import { fail } from '../errors.js';
import type { MetadataStore } from '../storage/metadata_port.js';
import { isPostgresLocation, metadataLocationForLog, openMetadataStore } from '../storage/metadata_open.js';
import { SqliteMetadataStore } from '../storage/metadata_sqlite.js';

export const SERVICE_FILE = 'service.json';
export const METADATA_FILE = 'metadata.json';
/** The schema of a region's metadata on a PostgreSQL store: the data directory's prefix (coffer_ and
 * 8 random hex digits, so that two data directories never share a schema) and the region, `_` for `-`. */
export const upSchemaOf = (prefix: string, region: string): string => `${prefix}_${region.replaceAll('-', '_')}`;
export const CREDENTIALS_FILE = 'credentials';
export const CONFIG_FILE = 'config';
export const PROFILE = 'coffer';
/** The API's port when none is given: beside CloudHSM's client port 2223, free on most machines. */
export const API_PORT_DEFAULT = 8223;

export interface UpOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly regions: readonly string[];
  readonly dataPlanePort: number;
  /** 'relayed' (default): the service relays every cluster's journal; 'solo': each HSM orders its own. */
  readonly journal?: 'relayed' | 'solo';
  readonly logLevel: string;
  /** Default: the main.js beside this file. */
  readonly mainJs?: string;
  /** Default: every region's service log goes to regions/<region>/service.log. */
  readonly logger?: Logger;
  /** Each region's Prometheus metrics on this port + its index (0: any free port); absent: not served. */
  readonly metricsPort?: number;
  /** A postgres:// URL: every region's metadata in that database, one schema each (upSchemaOf). Absent:
   * an SQLite file per region under the data directory. */
  readonly metadata?: string;
}

export interface RunningRegion {
  readonly region: string;
  readonly service: RunningService;
  readonly fleet: LocalFleet;
  readonly archive: Archive;
  readonly metadata: MetadataStore;
}

export interface Up {
  readonly dataDir: string;
  readonly accessKey: AccessKey;
  readonly regions: readonly RunningRegion[];
  readonly managementClient: { readonly certificatePem: string; readonly keyPem: string; readonly manufacturerRootPem: string; readonly operatorRootPem: string };
  /** Stops the services; with `stopDevices`, the HSM processes too (Ctrl-C stops them: they are the region's). */
  stop(options?: { readonly stopDevices?: boolean }): Promise<void>;
}

interface ServiceFile {
  readonly accountId: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export async function up(options: UpOptions): Promise<Up> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const schemaPrefix = metadataChoice(dataDir, options.metadata);
  const managementClient = await ceremonies(dataDir);
  const accessKey = serviceKey(dataDir);
  writeAwsFiles(dataDir, accessKey, options.regions[0] ?? 'us-east-1');
  const regions: RunningRegion[] = [];
  const peers = new Map<string, RegionPeer>();
  try {
    for (const [i, region] of options.regions.entries()) {
      const running = await startRegion(dataDir, region, options.port === 0 ? 0 : options.port + i, { ...options, regionIndex: i, schemaPrefix }, managementClient, accessKey, peers);
      regions.push(running);
      peers.set(region, {
        region, archive: running.archive, repository: running.service.repository, backups: running.service.backups,
        clock: running.service.config.clock, workDir: join(dataDir, 'regions', region, 'work'),
      });
    }
  } catch (e) {
    await stopAll(regions, false);
    throw e;
  }
  return { dataDir, accessKey, regions, managementClient, stop: (o) => stopAll(regions, o?.stopDevices ?? false) };
}

async function startRegion(
  dataDir: string, region: string, port: number, options: UpOptions & { readonly regionIndex: number; readonly schemaPrefix: string | undefined }, management: Up['managementClient'], accessKey: AccessKey, peers: ReadonlyMap<string, RegionPeer>,
): Promise<RunningRegion> {
  const dir = join(dataDir, 'regions', region);
  const workDir = join(dir, 'work');
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const logger = options.logger ?? pino({ level: options.logLevel, base: { region } }, createWriteStream(join(dir, 'service.log'), { flags: 'a', mode: 0o600 }));
  // What opened is closed again, newest first, if a later step fails: a second `coffer up` on the
  // same directory must not find the SQLite file still held.
  const opened: (() => Promise<void>)[] = [];
  try {
    const metadata: MetadataStore = options.metadata === undefined || options.schemaPrefix === undefined
      ? SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') })
      : await openMetadataStore(options.metadata, { schema: upSchemaOf(options.schemaPrefix, region) });
    opened.push(() => metadata.close());
    const archive = await openFsArchive({ directory: join(dir, 'archive') });
    opened.push(() => archive.close());
    const fleet = await LocalFleet.open({
      dir: join(dir, 'fleet'), authoritiesDir: join(dataDir, 'authorities'), mainJs: options.mainJs ?? join(dirname(fileURLToPath(import.meta.url)), 'main.js'), ...management,
      journal: options.journal ?? 'relayed', nodeLogLevel: options.logLevel,
    });
    opened.push(() => fleet.close());
    // Peers, this region among them, are looked up at call time: a region started later is a peer too.
    const copyTo: CopyToRegion = (target, backup, tags) => peerCopy(peers.get(region) as RegionPeer, peers)(target, backup, tags);
    const service = await startService({
      region, host: '127.0.0.1', port, metadata, archive, fleet, accessKeys: [accessKey], workDir, logger, dataPlanePort: options.dataPlanePort, copyTo,
      relayJournal: (options.journal ?? 'relayed') === 'relayed',
      ...(options.metricsPort === undefined ? {} : { metricsPort: options.metricsPort === 0 ? 0 : options.metricsPort + options.regionIndex }),
      roots: { manufacturerRoot: management.manufacturerRootPem, operatorRoot: management.operatorRootPem },
    });
    return { region, service, fleet, archive, metadata };
  } catch (e) {
    for (const close of opened.reverse()) await close();
    throw e;
  }
}

async function stopAll(regions: readonly RunningRegion[], stopDevices: boolean): Promise<void> {
  for (const r of regions) {
    await r.service.close();
    await r.fleet.close({ stopDevices });
    await r.archive.close();
    await r.metadata.close();
  }
}

/**
 * A data directory keeps its metadata where it was first put: its fleet's devices and archive belong
 * to the clusters that metadata holds, so starting it on another store would orphan them. The first
 * start with `--metadata` records the database (the URL without its password) and a fresh schema
 * prefix in metadata.json; a later start with another choice is refused (COFFER_CLI_USAGE), and so is
 * `--metadata` for a directory that already has SQLite regions. Returns the schema prefix, or
 * undefined for SQLite.
 */
function metadataChoice(dataDir: string, metadata: string | undefined): string | undefined {
  if (metadata !== undefined && !isPostgresLocation(metadata)) fail('COFFER_CLI_USAGE', { reason: '--metadata must be a postgres:// URL (without it, each region keeps its metadata in an SQLite file)' });
  const path = join(dataDir, METADATA_FILE);
  const wanted = metadata === undefined ? undefined : withoutPassword(metadata);
  if (existsSync(path)) {
    const recorded = JSON.parse(readFileSync(path, 'utf8')) as { readonly postgres?: unknown; readonly schemaPrefix?: unknown };
    if (recorded.postgres !== wanted) fail('COFFER_CLI_USAGE', { reason: `this data directory keeps its metadata in ${String(recorded.postgres)}: start it with --metadata naming that database` });
    if (typeof recorded.schemaPrefix !== 'string' || !/^coffer_[0-9a-f]{8}$/.test(recorded.schemaPrefix)) fail('COFFER_CLI_USAGE', { reason: `${METADATA_FILE} is damaged: no schema prefix` });
    return recorded.schemaPrefix;
  }
  if (wanted === undefined) return undefined;
  if (existsSync(join(dataDir, 'regions'))) fail('COFFER_CLI_USAGE', { reason: 'this data directory keeps its metadata in SQLite files: --metadata applies to a new data directory only' });
  const schemaPrefix = `coffer_${randomBytes(4).toString('hex')}`;
  writeFileSync(path, JSON.stringify({ postgres: wanted, schemaPrefix }, null, 2) + '\n', { mode: 0o600 });
  return schemaPrefix;
}

/** A database URL as a data directory records it: without its password (which may change between
 * starts) and its query; the rest names the database. */
function withoutPassword(url: string): string {
  const clean = metadataLocationForLog(url);
  try {
    const u = new URL(clean);
    u.password = '';
    return u.toString();
  } catch {
    return clean;
  }
}

/** The development ceremonies, once per data directory: authorities, the management client, the roots. */
async function ceremonies(dataDir: string): Promise<Up['managementClient']> {
  const authoritiesDir = join(dataDir, 'authorities');
  const certPath = join(dataDir, 'management-client.pem');
  const keyPath = join(dataDir, 'management-client.key');
  if (!existsSync(certPath)) {
    const authorities = await createDevelopmentAuthorities();
    try {
      rmSync(authoritiesDir, { recursive: true, force: true });
      saveDevelopmentAuthorities(authorities, authoritiesDir);
      const client = await issueManagementClientCertificate(authorities.operator, 'coffer control plane');
      writeFileSync(join(dataDir, 'manufacturer-root.pem'), pemOf(authorities.manufacturer.rootCertificate), { mode: 0o644 });
      writeFileSync(join(dataDir, 'operator-root.pem'), pemOf(authorities.operator.rootCertificate), { mode: 0o644 });
      writeFileSync(keyPath, client.keyPem, { mode: 0o600 });
      writeAtomically(certPath, client.certificatePem, 0o644); // last: its presence says the rest is there
    } finally {
      authorities.akbk?.destroy();
    }
  }
  return {
    certificatePem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8'),
    manufacturerRootPem: readFileSync(join(dataDir, 'manufacturer-root.pem'), 'utf8'), operatorRootPem: readFileSync(join(dataDir, 'operator-root.pem'), 'utf8'),
  };
}

/** The one access key of a development service (all actions), made once. */
function serviceKey(dataDir: string): AccessKey {
  const path = join(dataDir, SERVICE_FILE);
  if (!existsSync(path)) {
    const file: ServiceFile = {
      accountId: String(randomInt(100_000, 999_999)) + String(randomInt(100_000, 999_999)),
      accessKeyId: `AKIA${randomBytes(12).toString('hex').toUpperCase().slice(0, 16)}`,
      secretAccessKey: randomBytes(30).toString('base64').slice(0, 40),
    };
    writeAtomically(path, JSON.stringify(file, null, 2) + '\n', 0o600);
  }
  const file = JSON.parse(readFileSync(path, 'utf8')) as ServiceFile;
  return { accessKeyId: file.accessKeyId, secretAccessKey: file.secretAccessKey, accountId: file.accountId, actions: ['*'] };
}

/** AWS shared credentials and config, profile `coffer`: what the AWS CLI and SDKs read. */
function writeAwsFiles(dataDir: string, key: AccessKey, region: string): void {
  writeAtomically(join(dataDir, CREDENTIALS_FILE), `[${PROFILE}]\naws_access_key_id = ${key.accessKeyId}\naws_secret_access_key = ${key.secretAccessKey}\n`, 0o600);
  writeAtomically(join(dataDir, CONFIG_FILE), `[profile ${PROFILE}]\nregion = ${region}\noutput = json\n`, 0o644);
}

/** `text` to `path` with `mode`, through a fresh temporary file renamed over it: readers see the old
 * file or the new one, never a part. */
export function writeAtomically(path: string, text: string, mode: number): void {
  const temporary = `${path}.${process.pid}.tmp`;
  rmSync(temporary, { force: true });
  writeFileSync(temporary, text, { mode, flag: 'wx' });
  renameSync(temporary, path);
}
