// What the end-to-end tests of `coffer service` share: the credential files and arguments every
// service is given, starting a service process and reading its ready line, and finding the HSM
// processes a test's fleets started (they outlive the services, so the test stops them).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EVENT_WAIT_MS, MAIN_JS, type FleetEnvironment } from '../service/fleet/fleet_support.js';

export interface ServiceProc {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly endpoint: string;
  readonly pid: number;
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The ready line `coffer service` prints on stdout. */
export interface Ready {
  readonly event: string;
  readonly endpoint: string;
  readonly region: string;
  readonly pid: number;
}

/** The management client and the roots, as files in `env.dir` (what credentialArgs names). */
export function writeServiceCredentials(env: FleetEnvironment): void {
  writeFileSync(join(env.dir, 'management-client.pem'), env.credentials.certificatePem);
  writeFileSync(join(env.dir, 'management-client.key'), env.credentials.keyPem, { mode: 0o600 });
  writeFileSync(join(env.dir, 'manufacturer-root.pem'), env.credentials.manufacturerRootPem);
  writeFileSync(join(env.dir, 'operator-root.pem'), env.credentials.operatorRootPem);
}

/** The authorities, management client and roots every `coffer service` of a test is given. */
export function serviceCredentialArgs(env: FleetEnvironment): string[] {
  return [
    '--authorities', env.authoritiesDir,
    '--management-cert', join(env.dir, 'management-client.pem'), '--management-key', join(env.dir, 'management-client.key'),
    '--manufacturer-root', join(env.dir, 'manufacturer-root.pem'), '--operator-root', join(env.dir, 'operator-root.pem'),
  ];
}

/** `coffer service ARGS` started and read until its ready line; tracked in `procs` (which the
 * test's after hook stops) whatever happens next. */
export async function spawnServiceProcess(
  procs: ServiceProc[], name: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ readonly p: ServiceProc; readonly ready: Ready }> {
  const proc = spawn(process.execPath, [MAIN_JS, 'service', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...extraEnv } });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const tracked: ServiceProc = { name, proc, endpoint: '', pid: proc.pid ?? 0, stderr: () => stderr, exited };
  procs.push(tracked);
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no ready line in time:\n${stderr}`)), EVENT_WAIT_MS);
    void exited.then(({ code }) => reject(new Error(`${name} exited with ${String(code)}:\n${stderr}`)));
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as Ready);
    });
  });
  const p: ServiceProc = { ...tracked, endpoint: ready.endpoint, pid: ready.pid };
  procs[procs.indexOf(tracked)] = p;
  return { p, ready };
}

/** Every HSM process serving a data directory under `devicesDir`, found by its command line
 * (fleet.json might not list them all if the test fails). */
export function killDevices(devicesDir: string): void {
  for (const pid of devicePids(devicesDir).keys()) process.kill(pid, 'SIGKILL');
}

/** The processes serving a data directory under `devicesDir`: pid → command line. */
export function devicePids(devicesDir: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(devicesDir)) found.set(Number(entry), cmdline);
    } catch {
      // gone already
    }
  }
  return found;
}
