// One `coffer hsm serve` child process (docs/fleet.md "Local fleet", docs/development-cluster.md):
// spawned on a data directory with shared development authorities, on a given address, data-plane
// port and management port (0: any free port), and read until its one `{"event":"ready",…}` line.
// A node started with `--development --authorities DIR` manufactures and commissions its device
// with those authorities on its first start, and reopens it from the same directory afterwards.
// Its stderr goes to `<dataDir>/node.log` (the node logs nothing secret), so a full pipe can never
// stall it. The local fleet and `coffer dev cluster` both start their nodes here.
//
// Each node gets a libuv thread pool sized to the machine (nodeThreadPoolSize): the node signs and
// verifies there, and libuv's own default of 4 threads oversubscribes a small machine.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CofferError, fail } from '../../errors.js';

/** A node process starts in about a second; on a loaded machine much more. */
export const NODE_READY_TIMEOUT_MS = 60_000;
/** After SIGTERM a node closes its servers and store at once; past this it is killed. */
export const NODE_STOP_TIMEOUT_MS = 10_000;
/** Log bytes quoted when a node fails to start or exits unexpectedly. */
export const LOG_TAIL_CHARS = 2000;
/** Characters of the log's last line a start failure quotes in its detail. */
const LOG_LAST_LINE_CHARS = 300;
/** The node's stderr, in its data directory. */
export const NODE_LOG_FILE = 'node.log';

/** The fewest threads a node's pool gets: a long job there (an RSA-4096 generation, a login's
 * scrypt) must leave a thread for the signatures asked for meanwhile. */
export const NODE_THREAD_POOL_MIN = 2;

/**
 * UV_THREADPOOL_SIZE for a node process: the operator's own setting when this process has one (it
 * passes through unchanged), else one thread per core the machine offers, at least
 * NODE_THREAD_POOL_MIN. libuv reads it once, before a node's code runs (an ES module entry point
 * has started the pool by then), so it is given in the child's environment. docs/node.md "Thread pool".
 */
export function nodeThreadPoolSize(env: NodeJS.ProcessEnv = process.env, cores = availableParallelism()): string {
  const set = env['UV_THREADPOOL_SIZE'];
  if (set !== undefined && set !== '') return set;
  return String(Math.max(NODE_THREAD_POOL_MIN, cores));
}

export interface NodeProcess {
  readonly host: string;
  readonly port: number;
  readonly managementPort: number;
  readonly pid: number;
  readonly serial: string;
  readonly dataDir: string;
  readonly process: ChildProcess;
}

interface ReadyLine {
  readonly event?: unknown;
  readonly port?: unknown;
  readonly managementPort?: unknown;
  readonly serial?: unknown;
  readonly pid?: unknown;
}

export interface SpawnNodeOptions {
  /** The coffer CLI's main.js. */
  readonly mainJs: string;
  readonly dataDir: string;
  readonly authoritiesDir: string;
  readonly host: string;
  /** Data-plane TCP port; default 0 (any free port). */
  readonly port?: number;
  /** Management TCP port; default 0 (any free port). */
  readonly managementPort?: number;
  /** Its own process group, so that it outlives its parent and a terminal's Ctrl-C to the parent
   * does not reach it (the local fleet's devices); default false (the development cluster's). */
  readonly detached?: boolean;
  /** The mode a new device is commissioned in; default NON_FIPS. */
  readonly mode?: 'FIPS' | 'NON_FIPS';
  /** How the node orders its cluster journal: 'relayed' for a fleet's devices (the service relays
   * it), 'solo' (default) for `coffer dev cluster`, whose nodes no control plane relays. */
  readonly journal?: 'relayed' | 'solo';
  /** Prometheus metrics on the management interface (`--metrics`); default 'on'. */
  readonly metrics?: 'on' | 'off';
  /** The device's audit log (`--audit`, docs/audit.md); default 'on'. */
  readonly audit?: 'on' | 'off';
  /** The node's log level (`--log-level`: what node.log keeps); default 'info'. */
  readonly logLevel?: string;
}

/** Starts a node process and resolves once it is ready; COFFER_FLEET_DEVICE_START (with its log's
 * path and last line) when it exits or stays silent first. */
export async function spawnNode(options: SpawnNodeOptions): Promise<NodeProcess> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const logPath = join(options.dataDir, NODE_LOG_FILE);
  const log = openSync(logPath, 'a', 0o600);
  const args = [
    options.mainJs, 'hsm', 'serve', '--data', options.dataDir, '--development', '--authorities', options.authoritiesDir,
    '--host', options.host, '--port', String(options.port ?? 0), '--management-port', String(options.managementPort ?? 0),
    '--mode', options.mode ?? 'NON_FIPS', '--journal', options.journal ?? 'solo', '--metrics', options.metrics ?? 'on', '--audit', options.audit ?? 'on',
    '--log-level', options.logLevel ?? 'info',
  ];
  const env = { ...process.env, UV_THREADPOOL_SIZE: nodeThreadPoolSize() };
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', log], detached: options.detached ?? false, env });
  closeSync(log); // the child holds its own descriptor
  try {
    const ready = await readyLine(child);
    child.stdout?.resume(); // nothing more is expected; never let the pipe fill
    const { port, managementPort, serial, pid } = ready;
    if (ready.event !== 'ready' || typeof port !== 'number' || typeof managementPort !== 'number' || typeof serial !== 'string' || typeof pid !== 'number') {
      return fail('COFFER_FLEET_DEVICE_START', { reason: 'bad-ready-line' });
    }
    return { host: options.host, port, managementPort, pid, serial, dataDir: options.dataDir, process: child };
  } catch (e) {
    child.kill('SIGKILL');
    const reason = e instanceof CofferError ? String(e.detail['reason']) : e instanceof Error ? e.message : String(e);
    throw new CofferError('COFFER_FLEET_DEVICE_START', { reason, log: logPath, lastLine: lastLine(logPath) }, { cause: e });
  }
}

/** The last non-empty line of a log, shortened (what a start failure quotes). */
function lastLine(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').slice(-LOG_TAIL_CHARS).trimEnd().split('\n');
    return (lines[lines.length - 1] ?? '').slice(0, LOG_LAST_LINE_CHARS);
  } catch {
    return '';
  }
}

function readyLine(child: ChildProcess): Promise<ReadyLine> {
  return new Promise<ReadyLine>((resolve, reject) => {
    const stdout = child.stdout ?? fail('COFFER_FLEET_DEVICE_START', { reason: 'no-stdout' });
    const lines = createInterface({ input: stdout });
    const timer = setTimeout(() => reject(new Error('no ready line in time')), NODE_READY_TIMEOUT_MS);
    const onExit = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      reject(new Error(`exited with ${String(code ?? signal)}`));
    };
    child.once('exit', onExit);
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      try {
        resolve(JSON.parse(line) as ReadyLine);
      } catch {
        reject(new Error('ready line is not JSON'));
      }
    });
  });
}

/** True while the process has neither exited nor been killed by a signal. */
export function isRunning(node: { readonly process: ChildProcess }): boolean {
  return node.process.exitCode === null && node.process.signalCode === null;
}

/** Sends `signal` and waits for the exit; after `timeoutMs` escalates to SIGKILL. */
export async function stopNode(node: { readonly process: ChildProcess }, signal: NodeJS.Signals, timeoutMs = NODE_STOP_TIMEOUT_MS): Promise<void> {
  if (!isRunning(node)) return;
  const exited = new Promise<void>((resolve) => node.process.once('exit', () => resolve()));
  node.process.kill(signal);
  const timer = setTimeout(() => node.process.kill('SIGKILL'), timeoutMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}
