// The PKCS#11 bridge (`coffer pkcs11`, src/pkcs11) beside SoftHSM2 exported by `p11-kit server`,
// both reached the way an application reaches them: Debian's p11-kit-client.so, loaded by one
// harness (bench/p11_sign.c), in the same run, rounds interleaved. At 1 and 8 sessions (threads of
// one process, each with its own session):
//   - ECDSA P-256: CKM_ECDSA over a 32-byte digest;
//   - RSA-2048: CKM_SHA256_RSA_PKCS over 64 bytes;
//   - random: C_GenerateRandom of 32 bytes, one round trip per call.
// Targets at 8 sessions: ECDSA ≥ 1.0 ×, RSA-2048 ≥ 1.5 ×, random ≥ 0.7 × SoftHSM2. CPU per
// operation of the bridge process, of the node process behind it, and of p11-kit server with
// SoftHSM2, over the same windows.
//
// Coffer's side is a one-node development cluster (src/cli/dev_cluster.ts) and one bridge process,
// as `coffer pkcs11 --socket PATH` runs for a user; p11_sign logs in with the crypto user's
// `username:password` PIN and makes session keys, as it does on SoftHSM2.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLUSTER_FILE, startDevelopmentCluster } from '../src/cli/dev_cluster.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';
import { findTools, loadRun, prepare, SOFTHSM_PIN, startServer, type RunResult, type Tools } from './softhsm_anchor.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ROUNDS = 3;
const SECONDS = 2;
const SESSIONS = [1, 8] as const;
type Kind = 'ec' | 'rsa' | 'random';
const KINDS: readonly Kind[] = ['ec', 'rsa', 'random'];
const LABEL: Record<Kind, string> = {
  ec: 'ECDSA P-256 sign (CKM_ECDSA, 32-byte digest)',
  rsa: 'RSA-2048 sign (CKM_SHA256_RSA_PKCS, 64 B)',
  random: 'C_GenerateRandom, 32 bytes (round trip)',
};
/** Targets at 8 sessions, × SoftHSM2's figure. */
const TARGET: Record<Kind, number> = { ec: 1.0, rsa: 1.5, random: 0.7 };
/** The bridge prints its ready line within a second or two; a loaded machine gets plenty more. */
const BRIDGE_START_TIMEOUT_MS = 60_000;

interface Bridge {
  readonly pid: number;
  stop(): Promise<void>;
}

async function startBridge(socket: string, clusterFile: string): Promise<Bridge> {
  const child: ChildProcess = spawn(process.execPath, [MAIN, 'pkcs11', '--socket', socket, '--log-level', 'warn'], {
    env: { ...process.env, COFFER_CLUSTER_CONFIG: clusterFile },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const stdout = child.stdout ?? null;
  if (stdout === null || child.pid === undefined) throw new Error('coffer pkcs11 did not start');
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), BRIDGE_START_TIMEOUT_MS);
    createInterface({ input: stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line.includes('"ready"'));
    });
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    await stop();
    throw new Error(`coffer pkcs11 did not become ready: ${stderr.trim()}`);
  }
  return { pid: child.pid, stop };
}

interface Figure {
  readonly opsPerSecond: number;
  readonly clientCpuUs: number;
  /** Per server pid given to the runs, in order. */
  readonly serverCpuUs: readonly number[];
}

function figure(runs: readonly RunResult[]): Figure {
  const ops = runs.reduce((s, r) => s + r.ops, 0);
  const width = runs[0]?.serverCpus.length ?? 0;
  return {
    opsPerSecond: median(runs.map((r) => r.ops / r.seconds)),
    clientCpuUs: (runs.reduce((s, r) => s + r.clientCpu, 0) * 1e6) / ops,
    serverCpuUs: Array.from({ length: width }, (_, i) => (runs.reduce((s, r) => s + (r.serverCpus[i] ?? 0), 0) * 1e6) / ops),
  };
}

interface Measured {
  readonly coffer: ReadonlyMap<string, Figure>;
  readonly softhsm: ReadonlyMap<string, Figure>;
}

const keyOf = (kind: Kind, sessions: number): string => `${kind}/${sessions}`;

async function measureIn(dir: string, tools: Tools): Promise<Measured> {
  const { env, binary } = prepare(dir);
  // Every server in a session of its own, as each runs as a service (p11-kit server, coffer pkcs11)
  // or on a device of its own (the node); p11_sign, the application, stays in this one.
  const softhsm = await startServer(dir, tools, env, { detached: true });
  const dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1, detached: true });
  let bridge: Bridge | undefined;
  try {
    const socket = join(dir, 'coffer.sock');
    bridge = await startBridge(socket, join(dev.dir, CLUSTER_FILE));
    const node = dev.nodes[0];
    if (node === undefined) throw new Error('the development cluster has no node');
    const sides = {
      softhsm: { binary, client: tools.client, socket: softhsm.socket, pin: SOFTHSM_PIN, serverPids: [softhsm.pid], env },
      coffer: { binary, client: tools.client, socket, pin: `${dev.cryptoUser.name}:${dev.cryptoUser.password}`, serverPids: [bridge.pid, node.pid], env: process.env },
    };
    const runs = { softhsm: new Map<string, RunResult[]>(), coffer: new Map<string, RunResult[]>() };
    for (const kind of KINDS) {
      for (const sessions of SESSIONS) {
        for (let r = 0; r < ROUNDS; r++) {
          // Interleaved, the order alternating, so that a slow moment of the machine hits both.
          const order = r % 2 === 0 ? (['coffer', 'softhsm'] as const) : (['softhsm', 'coffer'] as const);
          for (const side of order) {
            const result = await loadRun({ ...sides[side], kind, threads: sessions, seconds: SECONDS });
            const list = runs[side].get(keyOf(kind, sessions)) ?? [];
            list.push(result);
            runs[side].set(keyOf(kind, sessions), list);
          }
        }
      }
    }
    const figures = (m: Map<string, RunResult[]>): Map<string, Figure> => new Map([...m].map(([k, v]) => [k, figure(v)]));
    return { coffer: figures(runs.coffer), softhsm: figures(runs.softhsm) };
  } finally {
    await bridge?.stop();
    await dev.stop();
    await softhsm.stop();
  }
}

function rows(m: Measured): { rates: Row[]; cpu: Row[] } {
  const rates: Row[] = [];
  const cpu: Row[] = [];
  for (const kind of KINDS) {
    for (const sessions of SESSIONS) {
      const ours = m.coffer.get(keyOf(kind, sessions));
      const theirs = m.softhsm.get(keyOf(kind, sessions));
      if (ours === undefined || theirs === undefined) continue;
      const where = `${sessions} session${sessions === 1 ? '' : 's'}`;
      const target = sessions === 8 ? `≥ ${TARGET[kind].toFixed(1)} × SoftHSM2: ${ours.opsPerSecond >= TARGET[kind] * theirs.opsPerSecond ? 'met' : 'not met'}` : undefined;
      rates.push({ name: `${LABEL[kind]}, bridge, ${where}`, value: ours.opsPerSecond, unit: 'ops/s', anchorName: 'SoftHSM2 via p11-kit server', anchorValue: theirs.opsPerSecond, ...(target === undefined ? {} : { target }) });
      if (sessions !== 8) continue;
      const anchor = { anchorName: 'p11-kit server + SoftHSM2 CPU per op', anchorValue: theirs.serverCpuUs[0] ?? 0 };
      cpu.push(
        { name: `${LABEL[kind]}, ${where}: bridge process CPU per op`, value: ours.serverCpuUs[0] ?? 0, unit: 'µs', ...anchor },
        { name: `${LABEL[kind]}, ${where}: node process CPU per op`, value: ours.serverCpuUs[1] ?? 0, unit: 'µs', ...anchor },
        { name: `${LABEL[kind]}, ${where}: p11_sign CPU per op, bridge`, value: ours.clientCpuUs, unit: 'µs', anchorName: 'p11_sign CPU per op, SoftHSM2', anchorValue: theirs.clientCpuUs },
      );
    }
  }
  return { rates, cpu };
}

function autogroup(): string {
  try {
    return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim();
  } catch {
    return 'unreadable';
  }
}

export async function run(): Promise<Section> {
  const title = 'PKCS#11 through p11-kit-client.so: the bridge vs SoftHSM2';
  const tools = findTools();
  if (typeof tools === 'string') return { title, rows: [], notes: [`Skipped: ${tools}.`] };
  const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-bench-'));
  try {
    const measured = await measureIn(dir, tools);
    const { rates, cpu } = rows(measured);
    return {
      title,
      rows: [...rates, ...cpu],
      notes: [
        `One harness for both: bench/p11_sign.c loads Debian's p11-kit-client.so (P11_KIT_SERVER_ADDRESS=unix:path=…), logs in, makes a session key pair (none for random) and runs its threads, each with its own session, for ${SECONDS} s; ${ROUNDS} rounds per figure, the two sides interleaved with alternating order; medians of ops/s.`,
        'Coffer: `coffer pkcs11 --socket PATH` (one Node process) on a one-node development cluster; the node is a separate process reached over TLS, as in a deployment. SoftHSM2: `p11-kit server --provider libsofthsm2.so`, which serves each client connection in one forked p11-kit-remote process, one call at a time.',
        `Sessions: p11-kit server, \`coffer pkcs11\` and the node each run in a session of their own (spawned detached, as a service or a device of its own runs), p11_sign in the bench's. Linux's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled: ${autogroup()}) shares the cores between sessions before threads, so where each process runs changes the figures: docs/pkcs11.md, "CPU per signature".`,
        'ECDSA is CKM_ECDSA over a 32-byte digest on both sides (SoftHSM2 2.6 has no hashed ECDSA mechanism).',
        'CPU per op over the measured windows: the bridge process and the node process (user + system, /proc/<pid>/stat, their process trees), p11-kit server with its p11-kit-remote children and SoftHSM2 in them, and p11_sign itself (getrusage). Client, bridge, node and SoftHSM2 share the machine\'s cores.',
      ],
    };
  } catch (e) {
    return { title, rows: [], notes: [`Failed: ${e instanceof Error ? e.message : String(e)}`] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const s = await run();
  console.log(renderMarkdown([s], `# PKCS#11 bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
