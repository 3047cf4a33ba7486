// `coffer dev cluster`: starts a development cluster of real node processes (dev_cluster.ts,
// docs/development-cluster.md) and keeps it running in the foreground until SIGINT or SIGTERM.
//
// stdout carries JSON lines only, one per event, so it can be piped to jq: `{"event":"ready",…}`
// once the cluster runs (with the path of cluster.json, which holds the development passwords: the
// line itself carries none), then `{"event":"node-exited",…}` for each node process that exits
// without being asked to. stderr carries what a person reads: the two `export` lines that point the
// `coffer` CLI at the cluster from another shell, and a report of a node that died, with the end of
// its log. When no node is left running, the command ends with COFFER_CLUSTER_UNAVAILABLE (status 1).

import type { Command } from 'commander';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { CLUSTER_FILE, startDevelopmentCluster, type NodeExit } from './dev_cluster.js';
import { LOG_TAIL_CHARS } from './dev_node_process.js';

/** The nodes one command may start: a development cluster on one machine, not a fleet. */
const DEV_CLUSTER_NODES_MAX = 16;
/** Lines of a dead node's log quoted in its report: enough for a bug line and its first frames. */
const LOG_TAIL_LINES = 12;

/** `value` as one POSIX shell word, whatever it holds. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * The lines a user pastes into another shell to use the cluster with the `coffer` CLI. COFFER_PIN
 * reads the crypto user's password out of cluster.json when the line runs, so the password is never
 * printed (the terminal's scrollback is not a place for it).
 */
export function exportLines(clusterFile: string): string[] {
  const pin = `node -e 'const u = require(process.argv[1]).cryptoUser; process.stdout.write(u.name + ":" + u.password)' ${shellQuote(clusterFile)}`;
  return [`export COFFER_CLUSTER_CONFIG=${shellQuote(clusterFile)}`, `export COFFER_PIN="$(${pin})"`];
}

/** The end of a node's log, or nothing when it cannot be read. */
function logTail(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').slice(-LOG_TAIL_CHARS).trimEnd().split('\n').slice(-LOG_TAIL_LINES).filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

function reportExit(exit: NodeExit): void {
  process.stdout.write(JSON.stringify({ event: 'node-exited', ...exit }) + '\n');
  const how = exit.signal === null ? `exit status ${String(exit.code)}` : `signal ${exit.signal}`;
  const lines = [`coffer dev cluster: node ${exit.node} (${exit.serial}, pid ${exit.pid}) exited unexpectedly (${how}); ${exit.running} of ${exit.nodes} nodes still running; ${exit.clusterFile} updated`];
  const tail = logTail(exit.log);
  if (tail.length > 0) lines.push(`  end of ${exit.log}:`, ...tail.map((l) => `  | ${l}`));
  if (exit.running === 0) lines.push('coffer dev cluster: no node is running any more; exiting');
  process.stderr.write(lines.join('\n') + '\n');
}

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('development tools (development keys only)');
  dev
    .command('cluster')
    .description('start an initialised, activated cluster of N node processes; runs until SIGINT/SIGTERM or until every node has exited')
    .option('--dir <dir>', 'a new directory for authorities, node data, certificates and cluster.json (default: a fresh one under the system temp directory)')
    .option('--nodes <n>', `number of nodes (1-${DEV_CLUSTER_NODES_MAX})`, '1')
    .option('--host <host>', 'address the nodes listen on', '127.0.0.1')
    .action(async (opts: { dir?: string; nodes: string; host: string }) => {
      const nodes = Number(opts.nodes);
      if (!/^\d+$/.test(opts.nodes) || nodes < 1 || nodes > DEV_CLUSTER_NODES_MAX) fail('COFFER_CLI_USAGE', { reason: `--nodes must be 1-${DEV_CLUSTER_NODES_MAX}` });
      let allGone = false;
      let stop = (): void => undefined;
      const stopping = new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
        stop = resolve;
      });
      const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'coffer-dev-'));
      const cluster = await startDevelopmentCluster({
        dir, nodes, host: opts.host,
        onNodeExit: (exit) => {
          reportExit(exit);
          if (exit.running > 0) return;
          allGone = true;
          stop();
        },
      });
      const clusterFile = join(cluster.dir, CLUSTER_FILE);
      const ready = {
        event: 'ready', clusterId: cluster.clusterId, clusterFile,
        nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port, managementPort: n.managementPort, serial: n.serial, pid: n.pid })),
      };
      process.stdout.write(JSON.stringify(ready) + '\n');
      process.stderr.write([`# coffer dev cluster ${cluster.clusterId} is running (Ctrl-C stops it). To use it from another shell:`, ...exportLines(clusterFile)].join('\n') + '\n');
      await stopping;
      await cluster.stop();
      if (allGone) fail('COFFER_CLUSTER_UNAVAILABLE', { nodes: cluster.nodes.length, running: 0 });
    });
}
