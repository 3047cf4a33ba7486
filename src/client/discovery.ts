// Where a cluster's HSMs are (docs/architecture.md §7, docs/sdk.md "Discovery"): from CloudHSMv2
// DescribeClusters output (the control plane's answer, or `aws cloudhsmv2 describe-clusters`), or
// from a small config file. The config loader here is the only one: the `coffer` CLI reads its
// `--cluster-config` through it too, so a file that works for one works for the other. Discovery
// finds addresses only: trust comes from the customer CA alone, so a wrong or hostile list can cost
// availability, never confidentiality.

import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CofferError } from '../errors.js';
import { CLIENT_ENDPOINTS_MAX } from '../formats/limits.js';
import type { Endpoint } from './node_link.js';

const invalid = (reason: string): CofferError => new CofferError('COFFER_CLIENT_CONFIG_INVALID', { reason });

function parseJson(json: unknown, what: string): unknown {
  if (typeof json !== 'string') return json;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    throw invalid(`${what} is not JSON`);
  }
}

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

/** Checks a list of endpoints (count, host text, port range). */
export function checkEndpoints(endpoints: readonly Endpoint[]): readonly Endpoint[] {
  if (endpoints.length === 0) throw invalid('no endpoints');
  if (endpoints.length > CLIENT_ENDPOINTS_MAX) throw invalid(`more than ${CLIENT_ENDPOINTS_MAX} endpoints`);
  for (const e of endpoints) {
    if (typeof e.host !== 'string' || e.host.length === 0 || e.host.length > 253) throw invalid('endpoint host must be a non-empty name or address');
    if (!isPort(e.port)) throw invalid('endpoint port must be an integer 1-65535');
  }
  return endpoints;
}

/** The endpoints of a CloudHSMv2 DescribeClusters answer: `Clusters[].Hsms[].EniIp` of HSMs in state
 * ACTIVE (others are being created, replaced or deleted), on `port`. `clusterId` picks one cluster. */
export function endpointsFromDescribeClusters(json: unknown, options: { readonly port: number; readonly clusterId?: string }): Endpoint[] {
  if (!isPort(options.port)) throw invalid('port must be an integer 1-65535');
  const doc = parseJson(json, 'DescribeClusters output');
  const clusters = (doc as { Clusters?: unknown } | null)?.Clusters;
  if (!Array.isArray(clusters)) throw invalid('DescribeClusters output has no Clusters list');
  const endpoints: Endpoint[] = [];
  for (const c of clusters as unknown[]) {
    if (typeof c !== 'object' || c === null) throw invalid('a Clusters entry is not an object');
    const { ClusterId: id, Hsms: hsms } = c as { ClusterId?: unknown; Hsms?: unknown };
    if (options.clusterId !== undefined && id !== options.clusterId) continue;
    if (hsms === undefined) continue;
    if (!Array.isArray(hsms)) throw invalid('Hsms is not a list');
    for (const h of hsms as unknown[]) {
      const { State: state, EniIp: ip } = (h ?? {}) as { State?: unknown; EniIp?: unknown };
      if (state !== 'ACTIVE') continue;
      if (typeof ip !== 'string' || ip.length === 0) throw invalid('an ACTIVE HSM has no EniIp');
      endpoints.push({ host: ip, port: options.port });
    }
  }
  if (endpoints.length === 0) throw invalid('no ACTIVE HSM in DescribeClusters output');
  return [...checkEndpoints(endpoints)];
}

export interface ClusterConfig {
  /** The HSMs listed in the file (empty when the control plane is to be asked). */
  readonly endpoints: readonly Endpoint[];
  /** The customer CA certificate (PEM text, read from the file the config names). */
  readonly ca: string;
  /** Where to ask for the cluster's HSMs (src/client/control_plane.ts); preferred to `endpoints`. */
  readonly service?: ConfiguredService;
}

/** A cluster config's control plane: where it is, which cluster, and whose AWS credentials to sign with. */
export interface ConfiguredService {
  readonly endpoint: string;
  readonly region: string;
  readonly clusterId: string;
  readonly port: number;
  /** A shared credentials file and profile; absent: the environment's (AWS_*, ~/.aws/credentials). */
  readonly credentialsFile?: { readonly path: string; readonly profile: string };
}

/** CloudHSM's client port, when a config names none. */
export const DATA_PLANE_PORT_DEFAULT = 2223;

/** A cluster config lists a handful of nodes: a larger file is a wrong path, not a config. */
export const CLUSTER_CONFIG_BYTES_MAX = 1024 * 1024;
/** A CA file holds a few certificates; the bound stops a wrong path from being read whole. */
export const CA_FILE_BYTES_MAX = 1024 * 1024;

/** Reads a small text file, or fails COFFER_CLIENT_CONFIG_UNREADABLE (naming which file, never its content). */
function readBounded(path: string, bytesMax: number, file: 'config' | 'ca'): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw unreadable(file, e);
  }
  if (size > bytesMax) throw invalid(`${file} file is larger than ${bytesMax} bytes`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw unreadable(file, e);
  }
}

function unreadable(file: 'config' | 'ca', e: unknown): CofferError {
  const errno = e instanceof Error && 'code' in e && typeof e.code === 'string' ? e.code : 'unknown';
  return new CofferError('COFFER_CLIENT_CONFIG_UNREADABLE', { file, errno });
}

/** The customer CA certificate file (PEM), as `--ca`-style options and config files name it. */
export function readCaFile(path: string): string {
  const ca = readBounded(path, CA_FILE_BYTES_MAX, 'ca');
  if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw invalid('ca file holds no PEM certificate');
  return ca;
}

/**
 * Reads a config file: `{ "endpoints": [{ "host", "port", "servername"? } | "host:port", …], "ca": "path" }`,
 * or the development cluster's cluster.json (`nodes` + `customerCa`, docs/development-cluster.md), so
 * that one file works for the SDK and the `coffer` CLI alike. A relative `ca` path is relative to
 * the config file.
 */
export function loadClusterConfig(path: string): ClusterConfig {
  return parseClusterConfig(readBounded(path, CLUSTER_CONFIG_BYTES_MAX, 'config'), dirname(resolve(path)));
}

/** Exactly one of two spellings of a field (a file with both is ambiguous, not merged). */
function oneOf(doc: Readonly<Record<string, unknown>>, names: readonly [string, string]): unknown {
  const [a, b] = names;
  if (doc[a] !== undefined && doc[b] !== undefined) throw invalid(`config has both ${a} and ${b}: give one`);
  return doc[a] ?? doc[b];
}

/** The config file's content; `baseDir` resolves a relative `ca` path. */
export function parseClusterConfig(json: unknown, baseDir: string): ClusterConfig {
  const doc = parseJson(json, 'config');
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('config is not an object');
  const fields = doc as Readonly<Record<string, unknown>>;
  const service = parseService(fields, baseDir);
  const list = oneOf(fields, ['endpoints', 'nodes']);
  if (!Array.isArray(list) && (list !== undefined || service === undefined)) throw invalid('config has no endpoints list');
  const endpoints = Array.isArray(list) ? (list as unknown[]).map(parseEndpoint) : [];
  const caPath = oneOf(fields, ['ca', 'customerCa']);
  if (typeof caPath !== 'string' || caPath.length === 0) throw invalid('config has no ca path');
  const checked = service !== undefined && endpoints.length === 0 ? [] : checkEndpoints(endpoints);
  return { endpoints: checked, ca: readCaFile(resolve(baseDir, caPath)), ...(service === undefined ? {} : { service }) };
}

/** `service` (URL), `region`, `clusterId`, and optionally `port`, `awsCredentials` (a file, relative
 * to the config) and `awsProfile`: the control plane to ask for the cluster's HSMs. */
function parseService(fields: Readonly<Record<string, unknown>>, baseDir: string): ConfiguredService | undefined {
  const { service: endpoint, region, clusterId, port, awsCredentials, awsProfile } = fields;
  if (endpoint === undefined) return undefined;
  if (typeof endpoint !== 'string' || !/^https?:\/\/./.test(endpoint)) throw invalid('service must be an http:// or https:// URL');
  if (typeof region !== 'string' || !/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(region)) throw invalid('a config with a service needs its region');
  if (typeof clusterId !== 'string' || !/^cluster-[2-7a-zA-Z]{11,16}$/.test(clusterId)) throw invalid('a config with a service needs its clusterId');
  if (port !== undefined && !isPort(port)) throw invalid('port must be an integer 1-65535');
  if (awsCredentials !== undefined && typeof awsCredentials !== 'string') throw invalid('awsCredentials must be a file path');
  if (awsProfile !== undefined && typeof awsProfile !== 'string') throw invalid('awsProfile must be a profile name');
  return {
    endpoint, region, clusterId, port: port ?? DATA_PLANE_PORT_DEFAULT,
    ...(awsCredentials === undefined ? {} : { credentialsFile: { path: resolve(baseDir, awsCredentials), profile: awsProfile ?? 'default' } }),
  };
}

function parseEndpoint(e: unknown): Endpoint {
  if (typeof e === 'string') {
    const m = /^(.+):(\d{1,5})$/.exec(e);
    if (m === null) throw invalid('endpoint string must be host:port');
    const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
    return { host, port: Number(m[2]) };
  }
  if (typeof e !== 'object' || e === null) throw invalid('endpoint must be an object or host:port');
  const { host, port, servername } = e as { host?: unknown; port?: unknown; servername?: unknown };
  if (typeof host !== 'string') throw invalid('endpoint host must be a string');
  if (!isPort(port)) throw invalid('endpoint port must be an integer 1-65535');
  if (servername !== undefined && typeof servername !== 'string') throw invalid('endpoint servername must be a string');
  return { host, port, ...(servername === undefined ? {} : { servername }) };
}
