// Where the cluster is and who logs in (docs/cli-users.md "Connecting").
//
// The cluster: `--cluster-config FILE` (JSON `{ "endpoints": [{ "host", "port" }], "ca": "path" }`,
// `ca` relative to the file; the development cluster's cluster.json is one), else the environment's
// COFFER_CLUSTER_CONFIG, else `--endpoint host:port` (repeatable) with `--ca FILE`. Files are read
// by the SDK's loader (client/discovery.ts), so the CLI and the SDK accept the same ones.
// The user: `--login-username` (+ `--login-role`) with the password from a prompt or stdin, else
// COFFER_PIN=user:password and COFFER_ROLE (as CloudHSM CLI's CLOUDHSM_PIN / CLOUDHSM_ROLE).
// The password is passed on to the SDK and is never printed nor put in an error.

import { DATA_PLANE_PORT_DEFAULT, loadClusterConfig, readCaFile, type ClusterConfig, type ConfiguredService } from '../../client/discovery.js';
import { clusterEndpoints } from '../../client/control_plane.js';
import type { Endpoint } from '../../client/node_link.js';
import { fail } from '../../errors.js';

export type { Endpoint };

/** Where the CLI connects: the SDK's own config shape, so one loader serves both. */
export type ClusterTarget = ClusterConfig;

export type LoginRole = 'crypto-user' | 'admin';

export interface ConnectionOptions {
  clusterConfig?: string;
  endpoint?: string[];
  ca?: string;
  clusterId?: string;
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

/** The cluster to talk to, from the options and the environment (precedence in the header); its
 * HSMs asked of the control plane when it names one. */
export async function resolveTarget(o: ConnectionOptions, env: NodeJS.ProcessEnv): Promise<ClusterTarget> {
  const target = configuredTarget(o, env);
  return { ...target, endpoints: await clusterEndpoints(target, env) };
}

function configuredTarget(o: ConnectionOptions, env: NodeJS.ProcessEnv): ClusterTarget {
  const clusterId = o.clusterId ?? (o.endpoint === undefined && o.clusterConfig === undefined ? nonEmpty(env['COFFER_CLUSTER_ID']) : undefined);
  if (clusterId !== undefined) {
    if (o.endpoint !== undefined || o.clusterConfig !== undefined) usage('give one of --cluster-id, --cluster-config or --endpoint');
    return { endpoints: [], ca: readCaFile(o.ca ?? usage('--cluster-id needs --ca FILE (the customer CA certificate)')), service: serviceFromEnv(clusterId, env) };
  }
  const configPath = o.clusterConfig ?? (o.endpoint === undefined ? env['COFFER_CLUSTER_CONFIG'] : undefined);
  if (configPath !== undefined && configPath !== '') {
    if (o.endpoint !== undefined) usage('give either --cluster-config or --endpoint, not both');
    return loadClusterConfig(configPath); // the SDK's loader (client/discovery.ts): one for both
  }
  if (o.endpoint === undefined || o.endpoint.length === 0) usage('no cluster: give --cluster-config FILE, set COFFER_CLUSTER_CONFIG, give --cluster-id with --ca, or give --endpoint host:port with --ca FILE');
  if (o.ca === undefined) usage('--endpoint needs --ca FILE (the customer CA certificate)');
  return { endpoints: o.endpoint.map(parseEndpoint), ca: readCaFile(o.ca) };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** The control plane as the AWS CLI finds it: AWS_ENDPOINT_URL_CLOUDHSMV2 or AWS_ENDPOINT_URL, and
 * AWS_REGION or AWS_DEFAULT_REGION; the data-plane port from COFFER_DATA_PLANE_PORT (default 2223). */
function serviceFromEnv(clusterId: string, env: NodeJS.ProcessEnv): ConfiguredService {
  if (!/^cluster-[2-7a-zA-Z]{11,16}$/.test(clusterId)) usage('--cluster-id must be a cluster id (cluster-…)');
  const endpoint = nonEmpty(env['AWS_ENDPOINT_URL_CLOUDHSMV2']) ?? nonEmpty(env['AWS_ENDPOINT_URL']) ?? usage('--cluster-id needs the control plane: set AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_CLOUDHSMV2)');
  const region = nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']) ?? usage('--cluster-id needs a region: set AWS_REGION');
  const portText = nonEmpty(env['COFFER_DATA_PLANE_PORT']);
  const port = portText === undefined ? DATA_PLANE_PORT_DEFAULT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage('COFFER_DATA_PLANE_PORT must be a TCP port');
  return { endpoint, region, clusterId, port };
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
