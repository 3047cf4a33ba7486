// What the end-to-end tests of `coffer up` clusters share: starting `coffer up` and reading its
// ready line, and reading the HSMs' journal heads through clients of one HSM each.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Cluster } from '../../src/client/cluster.js';
import { MAIN_JS } from '../service/fleet/fleet_support.js';

/** Starting a region and a cluster takes seconds; a loaded machine may need minutes. */
export const UP_WAIT_MS = 600_000;
const POLL_MS = 250;

/** The ready line `coffer up` prints on stdout (the parts these tests read). */
export interface UpReady {
  readonly clusterFile: string;
  readonly regions: readonly { readonly endpoint: string }[];
}

/**
 * `coffer up` with `args` after `up` (data dir, ports, cluster size …). `started` hears the process
 * at once, so that a test's `after` can stop it even if the ready line never comes.
 */
export function startUp(args: readonly string[], started: (proc: ChildProcess) => void): Promise<UpReady> {
  const proc = spawn(process.execPath, [MAIN_JS, 'up', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in time:\n${stderr}`)), UP_WAIT_MS);
    proc.once('exit', (code) => {
      clearTimeout(timer); // a pending timer would hold the test process for the whole wait
      reject(new Error(`coffer up exited with ${String(code)}:\n${stderr}`));
    });
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as UpReady);
    });
  });
}

/** The journal position the first HSM of `c` reports in STATUS. */
export async function journalPosition(c: Cluster): Promise<bigint> {
  const [s] = await c.status();
  assert.ok(s !== undefined && 'status' in s, 'STATUS answered');
  return s.status.journalPosition;
}

/** Waits until every client's HSM reports the same journal position; returns it. */
export async function sameHead(all: readonly Cluster[]): Promise<bigint> {
  const deadline = Date.now() + UP_WAIT_MS;
  for (;;) {
    const heads = await Promise.all(all.map(journalPosition));
    if (heads.every((h) => h === heads[0])) return heads[0] as bigint;
    if (Date.now() > deadline) assert.fail(`heads differ: ${heads.join(', ')}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** A test's teardown: its clients closed, `coffer up` stopped (SIGINT, after SIGCONT if it was
 * stopped), any HSM process a failed start left behind killed, `dir` removed. */
export async function stopUp(child: ChildProcess | undefined, clients: readonly Cluster[], dir: string): Promise<void> {
  if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGCONT');
  for (const c of clients) await c.close().catch(() => undefined);
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    await exited;
  }
  // HSM processes outlive a failed `coffer up`.
  await new Promise<void>((resolve) => execFile('pkill', ['-KILL', '-f', dir], () => resolve()));
  rmSync(dir, { recursive: true, force: true });
}
