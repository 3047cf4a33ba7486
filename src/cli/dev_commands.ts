// `coffer dev cluster`: starts a development cluster of real node processes (dev_cluster.ts,
// docs/development-cluster.md) and keeps it running in the foreground until SIGINT or SIGTERM.
// Prints one JSON line with the path of cluster.json (which holds the development passwords: the
// line itself carries none).

import type { Command } from 'commander';
import { fail } from '../errors.js';
import { CLUSTER_FILE, startDevelopmentCluster } from './dev_cluster.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The nodes one command may start: a development cluster on one machine, not a fleet. */
const DEV_CLUSTER_NODES_MAX = 16;

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('development tools (development keys only)');
  dev
    .command('cluster')
    .description('start an initialised, activated cluster of N node processes; runs until SIGINT/SIGTERM')
    .option('--dir <dir>', 'a new directory for authorities, node data, certificates and cluster.json (default: a fresh one under the system temp directory)')
    .option('--nodes <n>', `number of nodes (1-${DEV_CLUSTER_NODES_MAX})`, '1')
    .option('--host <host>', 'address the nodes listen on', '127.0.0.1')
    .action(async (opts: { dir?: string; nodes: string; host: string }) => {
      const nodes = Number(opts.nodes);
      if (!/^\d+$/.test(opts.nodes) || nodes < 1 || nodes > DEV_CLUSTER_NODES_MAX) fail('COFFER_CLI_USAGE', { reason: `--nodes must be 1-${DEV_CLUSTER_NODES_MAX}` });
      const stopping = new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'coffer-dev-'));
      const cluster = await startDevelopmentCluster({ dir, nodes, host: opts.host });
      const ready = {
        event: 'ready', clusterId: cluster.clusterId, clusterFile: join(cluster.dir, CLUSTER_FILE),
        nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port, managementPort: n.managementPort, serial: n.serial, pid: n.pid })),
      };
      process.stdout.write(JSON.stringify(ready) + '\n');
      await stopping;
      await cluster.stop();
    });
}
