// One `coffer hsm serve` child process of a development cluster: spawned on a data directory with
// shared development authorities, any free data-plane and management port, and read until its one
// `{"event":"ready",…}` line. Its stderr goes to `<dataDir>/node.log` (the node logs nothing secret),
// so a full pipe can never stall it.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fail } from '../errors.js';

/** A node process starts in about a second; on a loaded machine much more. */
export const NODE_READY_TIMEOUT_MS = 60_000;
/** After SIGTERM a node closes its servers and store at once; past this it is killed. */
export const NODE_STOP_TIMEOUT_MS = 10_000;
/** Log bytes quoted when a node fails to start or exits unexpectedly. */
export const LOG_TAIL_CHARS = 2000;
/** The node's stderr, in its data directory. */
export const NODE_LOG_FILE = 'node.log';

export interface DevNode {
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
  readonly mainJs: string;
  readonly dataDir: string;
  readonly authoritiesDir: string;
  readonly host: string;
}

/** Starts a node process and resolves once it is ready (or rejects with its log's tail). */
export async function spawnNode(options: SpawnNodeOptions): Promise<DevNode> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const logPath = join(options.dataDir, NODE_LOG_FILE);
  const log = openSync(logPath, 'a', 0o600);
  const args = [options.mainJs, 'hsm', 'serve', '--data', options.dataDir, '--development', '--authorities', options.authoritiesDir, '--host', options.host, '--port', '0', '--management-port', '0'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', log] });
  closeSync(log); // the child holds its own descriptor
  try {
    const ready = await readyLine(child);
    child.stdout?.resume(); // nothing more is expected; never let the pipe fill
    const { port, managementPort, serial, pid } = ready;
    if (ready.event !== 'ready' || typeof port !== 'number' || typeof managementPort !== 'number' || typeof serial !== 'string' || typeof pid !== 'number') {
      return fail('COFFER_CLI_INPUT', { reason: 'bad-ready-line' });
    }
    return { host: options.host, port, managementPort, pid, serial, dataDir: options.dataDir, process: child };
  } catch (e) {
    child.kill('SIGKILL');
    const tail = readFileSync(logPath, 'utf8').slice(-LOG_TAIL_CHARS);
    throw new Error(`node in ${options.dataDir} did not start: ${e instanceof Error ? e.message : String(e)}\n${tail}`, { cause: e });
  }
}

function readyLine(child: ChildProcess): Promise<ReadyLine> {
  return new Promise<ReadyLine>((resolve, reject) => {
    const stdout = child.stdout ?? fail('COFFER_CLI_INPUT', { reason: 'no-stdout' });
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
export function isRunning(node: DevNode): boolean {
  return node.process.exitCode === null && node.process.signalCode === null;
}

/** Sends `signal` and waits for the exit; after `timeoutMs` escalates to SIGKILL. */
export async function stopNode(node: DevNode, signal: NodeJS.Signals, timeoutMs = NODE_STOP_TIMEOUT_MS): Promise<void> {
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
