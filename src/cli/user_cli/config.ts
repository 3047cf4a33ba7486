// Where the cluster is and who logs in (docs/cli-users.md "Connecting").
//
// The cluster: `--cluster-config FILE` (JSON `{ "endpoints": [{ "host", "port" }], "ca": "path" }`,
// `ca` relative to the file; the development cluster's cluster.json is one), else the environment's
// COFFER_CLUSTER_CONFIG, else `--endpoint host:port` (repeatable) with `--ca FILE`.
// The user: `--login-username` (+ `--login-role`) with the password from a prompt or stdin, else
// COFFER_PIN=user:password and COFFER_ROLE (as CloudHSM CLI's CLOUDHSM_PIN / CLOUDHSM_ROLE).
// The password is passed on to the SDK and is never printed nor put in an error.

import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fail } from '../../errors.js';

/** A cluster config file larger than this is not a cluster config (it lists a handful of nodes). */
const CLUSTER_CONFIG_BYTES_MAX = 1024 * 1024;
/** A CA bundle of a few certificates; bounds what a wrong path makes us read. */
const CA_FILE_BYTES_MAX = 1024 * 1024;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface ClusterTarget {
  readonly endpoints: readonly Endpoint[];
  readonly caPem: string;
}

export type LoginRole = 'crypto-user' | 'admin';

export interface ConnectionOptions {
  clusterConfig?: string;
  endpoint?: string[];
  ca?: string;
}

function input(reason: string): never {
  fail('COFFER_CLI_INPUT', { reason });
}
function usage(reason: string): never {
  fail('COFFER_CLI_USAGE', { reason });
}

export function parseEndpoint(value: string): Endpoint {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):([0-9]{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (m === null || port < 1 || port > 65535) usage('--endpoint must be host:port (IPv6 as [addr]:port)');
  return { host: m[1] ?? m[2] ?? '', port };
}

function readSmallText(path: string, maxBytes: number, what: string): string {
  try {
    if (statSync(path).size > maxBytes) input(`${what} is larger than ${maxBytes} bytes`);
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('E')) input(`${what}: cannot read the file`);
    throw e;
  }
}

function endpointOf(v: unknown): Endpoint {
  const o = v as { host?: unknown; port?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.host !== 'string' || typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
    input('cluster config: each endpoint needs a host (string) and a port (1-65535)');
  }
  return { host: o.host, port: o.port };
}

/** Reads a cluster config file; relative paths inside it are relative to the file. */
export function loadClusterConfig(path: string): ClusterTarget {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readSmallText(path, CLUSTER_CONFIG_BYTES_MAX, 'cluster config'));
  } catch (e) {
    if (e instanceof SyntaxError) input('cluster config is not JSON');
    throw e;
  }
  // `endpoints` + `ca` is the documented shape; `nodes` + `customerCa` is the development cluster's
  // cluster.json (src/cli/dev_cluster.ts), accepted so that file works as it is.
  const o = parsed as { endpoints?: unknown; nodes?: unknown; ca?: unknown; customerCa?: unknown };
  if (typeof o !== 'object' || o === null) input('cluster config must be a JSON object');
  const endpoints = o.endpoints ?? o.nodes;
  if (!Array.isArray(endpoints) || endpoints.length === 0) input('cluster config needs a non-empty "endpoints" list');
  const caPath = [o.ca, o.customerCa].find((v): v is string => typeof v === 'string');
  if (caPath === undefined) input('cluster config needs "ca": the path of the customer CA certificate (PEM)');
  return {
    endpoints: endpoints.map(endpointOf),
    caPem: readSmallText(resolve(dirname(path), caPath), CA_FILE_BYTES_MAX, 'customer CA'),
  };
}

/** The cluster to talk to, from the options and the environment (precedence in the header). */
export function resolveTarget(o: ConnectionOptions, env: NodeJS.ProcessEnv): ClusterTarget {
  const configPath = o.clusterConfig ?? (o.endpoint === undefined ? env['COFFER_CLUSTER_CONFIG'] : undefined);
  if (configPath !== undefined && configPath !== '') {
    if (o.endpoint !== undefined) usage('give either --cluster-config or --endpoint, not both');
    return loadClusterConfig(configPath);
  }
  if (o.endpoint === undefined || o.endpoint.length === 0) usage('no cluster: give --cluster-config FILE, set COFFER_CLUSTER_CONFIG, or give --endpoint host:port with --ca FILE');
  if (o.ca === undefined) usage('--endpoint needs --ca FILE (the customer CA certificate)');
  return { endpoints: o.endpoint.map(parseEndpoint), caPem: readSmallText(o.ca, CA_FILE_BYTES_MAX, '--ca') };
}

export function parseRole(value: string): LoginRole {
  const v = value.toLowerCase();
  if (v === 'crypto-user' || v === 'crypto_user' || v === 'cu') return 'crypto-user';
  if (v === 'admin' || v === 'co') return 'admin';
  return usage('role must be admin or crypto-user');
}

/** COFFER_PIN=user:password (the first colon separates: a password may contain colons). */
export function parsePin(pin: string): { username: string; password: string } {
  const colon = pin.indexOf(':');
  if (colon <= 0 || colon === pin.length - 1) usage('COFFER_PIN must be username:password');
  return { username: pin.slice(0, colon), password: pin.slice(colon + 1) };
}
