// `coffer pkcs11 --socket PATH` (docs/pkcs11.md "Running the bridge"): serves the cluster as a
// PKCS#11 token over p11-kit's RPC protocol on a Unix socket, until SIGINT or SIGTERM, then removes
// the socket. The cluster is found as every user-CLI command finds it (user_cli/config.ts:
// --cluster-config FILE, COFFER_CLUSTER_CONFIG, --cluster-id with the control plane, or --endpoint
// with --ca); several --cluster-config files serve several clusters, one slot each. Nobody logs in
// until an application calls C_Login with `username:password`.
//
// stdout carries one JSON line once the socket listens, with the value to export as
// P11_KIT_SERVER_ADDRESS; logs (pino JSON, never a PIN) go to stderr.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { Cluster } from '../client/index.js';
import { fail } from '../errors.js';
import { clusterBackend, tokenSerial } from '../pkcs11/cluster_backend.js';
import { startPkcs11Server } from '../pkcs11/server.js';
import { slotsBackend } from '../pkcs11/slots_backend.js';
import { resolveTarget, type ConnectionOptions } from './user_cli/config.js';

/** sun_path holds 108 bytes on Linux, the last a NUL (unix(7)). */
const SOCKET_PATH_BYTES_MAX = 107;

interface Pkcs11Options extends Omit<ConnectionOptions, 'clusterConfig'> {
  socket?: string;
  logLevel: string;
  /** Repeatable: one slot per cluster, in the order given. */
  clusterConfig?: string[];
}

export function registerPkcs11Command(program: Command): void {
  program
    .command('pkcs11')
    .description('serve the cluster as a PKCS#11 token to p11-kit-client.so on a Unix socket, until SIGINT/SIGTERM')
    .option('--socket <path>', 'the Unix socket to create (must not exist)')
    .option('--cluster-config <file>', 'cluster config file (default: $COFFER_CLUSTER_CONFIG); repeat it to serve several clusters, one slot each', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--cluster-id <id>', 'ask the control plane for this cluster\'s HSMs (with --ca)')
    .option('--endpoint <host:port>', 'an HSM of the cluster (repeatable, with --ca)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--ca <file>', 'the customer CA certificate')
    .option('--log-level <level>', 'log level of the JSON log on stderr (info, warn, error, silent)', 'info')
    .action(async (o: Pkcs11Options) => {
      const socketPath = checkSocket(o.socket);
      if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(o.logLevel)) fail('COFFER_CLI_USAGE', { reason: '--log-level must be info, warn, error or silent' });
      const configs = o.clusterConfig ?? [undefined];
      if (configs.length > 1 && (o.clusterId !== undefined || o.endpoint !== undefined)) fail('COFFER_CLI_USAGE', { reason: 'several --cluster-config files take no --cluster-id or --endpoint' });
      const targets = [];
      const { clusterConfig: _all, ...connection } = o;
      for (const clusterConfig of configs) targets.push(await resolveTarget({ ...connection, ...(clusterConfig === undefined ? {} : { clusterConfig }) }, process.env));
      const logger = pino({ level: o.logLevel }, pino.destination({ dest: 2, sync: true }));
      // Slot n is the n-th cluster (docs/pkcs11.md "The token").
      // A cluster found without its id is labelled 'coffer', or 'coffer-N' beside other clusters.
      const backend = slotsBackend(targets.map((target, n) => clusterBackend({
        connect: (credentials) => Cluster.connect({ endpoints: target.endpoints, ca: target.ca, credentials }),
        label: target.service?.clusterId ?? (targets.length === 1 ? 'coffer' : `coffer-${n + 1}`),
        serial: tokenSerial(target.service?.clusterId),
      })));
      const stopping = new Promise<void>((done) => {
        process.once('SIGINT', () => done());
        process.once('SIGTERM', () => done());
      });
      const server = await startPkcs11Server({ socketPath, backend, logger });
      process.stdout.write(JSON.stringify({ event: 'ready', socket: socketPath, P11_KIT_SERVER_ADDRESS: `unix:path=${socketPath}` }) + '\n');
      await stopping;
      await server.close();
    });
}

function checkSocket(path: string | undefined): string {
  if (path === undefined || path === '') return fail('COFFER_CLI_USAGE', { reason: '--socket PATH is required' });
  const absolute = resolve(path);
  if (Buffer.byteLength(absolute) > SOCKET_PATH_BYTES_MAX) fail('COFFER_CLI_USAGE', { reason: `--socket path is longer than ${SOCKET_PATH_BYTES_MAX} bytes` });
  // Whitespace and quotes would need quoting wherever the address is exported.
  if (/[\s"'\\]/.test(absolute)) fail('COFFER_CLI_USAGE', { reason: '--socket path must not contain spaces, quotes or backslashes' });
  if (existsSync(absolute)) fail('COFFER_CLI_USAGE', { reason: '--socket path exists: remove a stale socket first' });
  return absolute;
}
