// Where the cluster is and who logs in (docs/cli-users.md "Connecting").
//
// The cluster: `--cluster-config FILE` (JSON `{ "endpoints": [{ "host", "port" }], "ca": "path" }`,
// `ca` relative to the file; the development cluster's cluster.json is one), else the environment's
// COFFER_CLUSTER_CONFIG, else `--endpoint host:port` (repeatable) with `--ca FILE`. Files are read
// by the SDK's loader (client/discovery.ts), so the CLI and the SDK accept the same ones.
// The user: `--login-username` (+ `--login-role`) with the password from a prompt or stdin, else
// COFFER_PIN=user:password and COFFER_ROLE (as CloudHSM CLI's CLOUDHSM_PIN / CLOUDHSM_ROLE).
// The password is passed on to the SDK and is never printed nor put in an error.

import { loadClusterConfig, readCaFile, type ClusterConfig } from '../../client/discovery.js';
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

/** The cluster to talk to, from the options and the environment (precedence in the header). */
export function resolveTarget(o: ConnectionOptions, env: NodeJS.ProcessEnv): ClusterTarget {
  const configPath = o.clusterConfig ?? (o.endpoint === undefined ? env['COFFER_CLUSTER_CONFIG'] : undefined);
  if (configPath !== undefined && configPath !== '') {
    if (o.endpoint !== undefined) usage('give either --cluster-config or --endpoint, not both');
    return loadClusterConfig(configPath); // the SDK's loader (client/discovery.ts): one for both
  }
  if (o.endpoint === undefined || o.endpoint.length === 0) usage('no cluster: give --cluster-config FILE, set COFFER_CLUSTER_CONFIG, or give --endpoint host:port with --ca FILE');
  if (o.ca === undefined) usage('--endpoint needs --ca FILE (the customer CA certificate)');
  return { endpoints: o.endpoint.map(parseEndpoint), ca: readCaFile(o.ca) };
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
