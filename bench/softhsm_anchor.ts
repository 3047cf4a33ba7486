// The SoftHSM2 anchor of the SDK bench: another software HSM reached through a socket, as Coffer's
// nodes are. SoftHSM2 is served by `p11-kit server` on a Unix socket in a temporary directory and
// driven by bench/p11_sign.c (compiled here with the system's gcc, never committed) through
// p11-kit's client module, at 2 and 8 threads; the better of the two is kept. Skipped, with a note
// saying what is missing, where softhsm2, p11-kit, its headers or gcc are not installed.
//
// Measured per run of p11_sign (after its key generation, between its ready line and its result):
// signatures per second, its own CPU (getrusage), and the CPU of the p11-kit server process tree
// (/proc, bench/proc_cpu.ts), which includes the p11-kit-remote child serving the connection.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from './harness.js';
import { procAvailable, treeCpuSeconds } from './proc_cpu.js';

const SOFTHSM_MODULES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];
const CLIENT_MODULES = ['/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so', '/usr/lib/pkcs11/p11-kit-client.so', '/usr/local/lib/pkcs11/p11-kit-client.so'];
const INCLUDE_DIR = '/usr/include/p11-kit-1';
/** The C source lives beside the TypeScript sources, not in the build output. */
const SOURCE = fileURLToPath(new URL('../../bench/p11_sign.c', import.meta.url));
export const COMPILE_FLAGS = ['-O2', '-std=c11', '-D_POSIX_C_SOURCE=200809L', `-I${INCLUDE_DIR}`];
const LINK_FLAGS = ['-ldl', '-lpthread'];
export const SOFTHSM_PIN = '1234';
const THREAD_COUNTS = [2, 8] as const;
/** The socket appears within milliseconds; a loaded machine gets plenty more. */
const SERVER_START_TIMEOUT_MS = 15_000;

export interface SoftHsmFigure {
  readonly opsPerSecond: number;
  readonly threads: number;
  readonly clientCpuUsPerOp: number;
  readonly serverCpuUsPerOp: number;
}

export interface SoftHsmAnchor {
  readonly ecdsa?: SoftHsmFigure;
  readonly rsa?: SoftHsmFigure;
  readonly notes: string[];
}

export interface Tools {
  readonly softhsm: string;
  readonly client: string;
}

function firstExisting(paths: readonly string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}

function commandWorks(command: string, args: readonly string[]): boolean {
  const r = spawnSync(command, args, { stdio: 'ignore' });
  return r.error === undefined;
}

/** What is missing, or the module paths. */
export function findTools(): Tools | string {
  const softhsm = firstExisting(SOFTHSM_MODULES);
  const client = firstExisting(CLIENT_MODULES);
  if (softhsm === undefined) return 'libsofthsm2.so not found (package softhsm2)';
  if (client === undefined) return 'p11-kit-client.so not found (package p11-kit-modules)';
  if (!commandWorks('softhsm2-util', ['--version'])) return 'softhsm2-util not found (package softhsm2)';
  if (!commandWorks('p11-kit', ['list-modules'])) return 'p11-kit not found (package p11-kit)';
  if (!commandWorks('gcc', ['--version'])) return 'gcc not found';
  if (!existsSync(join(INCLUDE_DIR, 'p11-kit', 'pkcs11.h'))) return `${INCLUDE_DIR}/p11-kit/pkcs11.h not found (package libp11-kit-dev)`;
  if (!procAvailable()) return '/proc not readable (the server CPU cannot be measured)';
  return { softhsm, client };
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv): void {
  const r = spawnSync(command, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args[0] ?? ''} failed: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Temporary token directory, token "bench" (user PIN `SOFTHSM_PIN`), the compiled load generator. */
export function prepare(dir: string): { env: NodeJS.ProcessEnv; binary: string } {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  run('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--pin', SOFTHSM_PIN, '--so-pin', '5678'], env);
  const binary = join(dir, 'p11_sign');
  run('gcc', [...COMPILE_FLAGS, '-o', binary, SOURCE, ...LINK_FLAGS], env);
  return { env, binary };
}

export interface Server {
  readonly pid: number;
  readonly socket: string;
  stop(): Promise<void>;
}

/** SoftHSM2's token "bench" exported by `p11-kit server` on a socket in `dir`. */
/** `detached`: the server in a session of its own, as a service runs (bench/p11_bench.ts). */
export async function startServer(dir: string, tools: Tools, env: NodeJS.ProcessEnv, options: { readonly detached?: boolean } = {}): Promise<Server> {
  const socket = join(dir, 'p11-kit.sock');
  const child = spawn('p11-kit', ['server', '--provider', tools.softhsm, '-f', '-n', socket, 'pkcs11:token=bench'], { env, stdio: ['ignore', 'ignore', 'pipe'], detached: options.detached ?? false });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + SERVER_START_TIMEOUT_MS;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline || child.pid === undefined) {
      await stop();
      throw new Error(`p11-kit server did not start: ${stderr}`);
    }
    await sleep(20);
  }
  return { pid: child.pid ?? 0, socket, stop };
}

export interface RunResult {
  readonly ops: number;
  readonly seconds: number;
  readonly clientCpu: number;
  /** CPU seconds of each of `serverPids`' process trees over the measured window, in that order. */
  readonly serverCpus: readonly number[];
}

export interface LoadRun {
  readonly binary: string;
  /** p11-kit-client.so */
  readonly client: string;
  /** The server's socket (P11_KIT_SERVER_ADDRESS unix:path=…). */
  readonly socket: string;
  readonly pin: string;
  /** Processes whose CPU is sampled between p11_sign's ready line and its result line. */
  readonly serverPids: readonly number[];
  readonly env: NodeJS.ProcessEnv;
  readonly kind: 'ec' | 'rsa' | 'random';
  readonly threads: number;
  readonly seconds: number;
}

/** One run of p11_sign; the servers' CPU is sampled between its ready line and its result line. */
export async function loadRun(r: LoadRun): Promise<RunResult> {
  const { kind, threads } = r;
  const child = spawn(r.binary, [r.client, r.pin, kind, String(threads), String(r.seconds)], {
    env: { ...r.env, P11_KIT_SERVER_ADDRESS: `unix:path=${r.socket}` },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout });
  let serverStart: number[] = [];
  for await (const line of lines) {
    if (line.includes('"ready"')) {
      serverStart = r.serverPids.map((p) => treeCpuSeconds([p]));
      child.stdin.write('go\n');
    } else {
      const serverCpus = r.serverPids.map((p, i) => treeCpuSeconds([p]) - (serverStart[i] ?? 0));
      child.stdin.end('done\n');
      const result = JSON.parse(line) as { ops: number; seconds: number; cpu: number };
      lines.close();
      const code = await exited;
      if (code !== 0) break;
      return { ops: result.ops, seconds: result.seconds, clientCpu: result.cpu, serverCpus };
    }
  }
  const code = await exited;
  throw new Error(`p11_sign ${kind} ${threads} exited with ${String(code)}: ${stderr}`);
}

/** Rounds × thread counts, interleaved; the thread count with the better median rate is kept. */
async function measureKind(run1: (threads: number) => Promise<RunResult>, rounds: number): Promise<SoftHsmFigure> {
  const byThreads = new Map<number, RunResult[]>(THREAD_COUNTS.map((t) => [t, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? THREAD_COUNTS : [...THREAD_COUNTS].reverse();
    for (const t of order) byThreads.get(t)?.push(await run1(t));
  }
  let best: SoftHsmFigure | undefined;
  for (const [threads, runs] of byThreads) {
    const ops = runs.reduce((s, x) => s + x.ops, 0);
    const figure = {
      threads,
      opsPerSecond: median(runs.map((x) => x.ops / x.seconds)),
      clientCpuUsPerOp: (runs.reduce((s, x) => s + x.clientCpu, 0) * 1e6) / ops,
      serverCpuUsPerOp: (runs.reduce((s, x) => s + (x.serverCpus[0] ?? 0), 0) * 1e6) / ops,
    };
    if (best === undefined || figure.opsPerSecond > best.opsPerSecond) best = figure;
  }
  if (best === undefined) throw new Error('unreachable: no thread counts');
  return best;
}

/** ECDSA P-256 and RSA-2048 signatures/s of SoftHSM2 through p11-kit, or notes saying why not. */
export async function measureSoftHsm(options: { seconds?: number; rounds?: number } = {}): Promise<SoftHsmAnchor> {
  const tools = findTools();
  if (typeof tools === 'string') return { notes: [`SoftHSM2 anchor skipped: ${tools}.`] };
  if (!existsSync(SOURCE)) return { notes: [`SoftHSM2 anchor skipped: ${SOURCE} not found.`] };
  const seconds = options.seconds ?? 2;
  const rounds = options.rounds ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'coffer-softhsm-'));
  try {
    return await measureIn(dir, tools, seconds, rounds);
  } catch (e) {
    // The anchor is optional: a broken SoftHSM2 install must not cost the Coffer figures.
    return { notes: [`SoftHSM2 anchor failed: ${e instanceof Error ? e.message : String(e)}`] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measureIn(dir: string, tools: Tools, seconds: number, rounds: number): Promise<SoftHsmAnchor> {
  const { env, binary } = prepare(dir);
  const server = await startServer(dir, tools, env);
  try {
    const common = { binary, client: tools.client, socket: server.socket, pin: SOFTHSM_PIN, serverPids: [server.pid], env, seconds };
    const ecdsa = await measureKind((threads) => loadRun({ ...common, kind: 'ec', threads }), rounds);
    const rsa = await measureKind((threads) => loadRun({ ...common, kind: 'rsa', threads }), rounds);
    return { ecdsa, rsa, notes: anchorNotes(seconds, rounds) };
  } finally {
    await server.stop();
  }
}

function anchorNotes(seconds: number, rounds: number): string[] {
  const version = spawnSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).stdout.trim();
  return [
    `SoftHSM2 ${version} through p11-kit: \`p11-kit server --provider libsofthsm2.so -f -n <socket> "pkcs11:token=bench"\`, driven by bench/p11_sign.c (\`gcc ${COMPILE_FLAGS.join(' ')} p11_sign.c ${LINK_FLAGS.join(' ')}\`) loading p11-kit-client.so; one process, ${THREAD_COUNTS.join(' and ')} threads each with its own session looping C_SignInit + C_Sign for ${seconds} s, ${rounds} rounds each, the better thread count's median kept.`,
    'SoftHSM2 ECDSA is CKM_ECDSA over a 32-byte digest (SoftHSM 2.6 has no hashed ECDSA mechanism), so it does not hash; Coffer and raw node:crypto sign 64 bytes with SHA-256. RSA is CKM_SHA256_RSA_PKCS over 64 bytes on every side.',
    'p11-kit serves each client connection in one forked p11-kit-remote process that handles one call at a time, so SoftHSM2 here uses at most one core however many client threads there are. SoftHSM2 CPU = user + system time of the p11-kit server and its children (/proc/<pid>/stat) over the signing window; client CPU = getrusage of p11_sign over the same window.',
  ];
}
