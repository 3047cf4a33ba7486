// Signing through the SDK (src/client/cluster.ts) to node processes of a development cluster
// (src/cli/dev_cluster.ts), client and nodes sharing this machine: ECDSA P-256 and RSA-2048 to one
// node and to two, each beside raw asynchronous node:crypto (crypto.sign with a callback, the same
// 64 calls in flight, in this process) measured in the same interleaved rounds, and beside SoftHSM2
// through p11-kit (bench/softhsm_anchor.ts) where it is installed. CPU µs per operation on each
// side: this process (process.cpuUsage) and the node processes (/proc/<pid>/stat).
//
// Targets: ECDSA ≥ 20,000/s and ≥ 0.5 × raw; RSA-2048 ≥ 0.8 × raw. Verdicts are printed as
// measured. State changes are not replicated between nodes yet, so the keys are generated on a
// one-node cluster, which is then cloned (addNode: sealed backup → restore) and the SDK reconnected
// to both nodes, where the keys exist under the same handles.

import { generateKeyPairSync, randomBytes, sign as nodeSign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Cluster } from '../src/client/cluster.js';
import { startDevelopmentCluster, type DevelopmentCluster } from '../src/cli/dev_cluster.js';
import { renderMarkdown, type Row, type Section } from './harness.js';
import { figuresOf, measureInterleaved, type LoadFigures, type Subject } from './load.js';
import { treeCpuSeconds } from './proc_cpu.js';
import { measureSoftHsm, type SoftHsmAnchor, type SoftHsmFigure } from './softhsm_anchor.js';

const ROUNDS = 5;
const ROUND_MS = 1000;
const IN_FLIGHT = 64;
const DATA_64 = randomBytes(64);
const ECDSA_RATE_MIN = 20_000;
const ECDSA_RAW_RATIO_MIN = 0.5;
const RSA_RAW_RATIO_MIN = 0.8;

type Kind = 'ecdsa' | 'rsa';
const KINDS: readonly Kind[] = ['ecdsa', 'rsa'];
const LABEL: Record<Kind, string> = { ecdsa: 'ECDSA P-256 sign (SHA-256, 64 B)', rsa: 'RSA-2048 sign (PKCS#1 v1.5, SHA-256, 64 B)' };
const MECHANISM = { ecdsa: 'CKM_ECDSA_SHA256', rsa: 'CKM_SHA256_RSA_PKCS' } as const;

/** The raw anchor: node:crypto's asynchronous sign (libuv thread pool) with keys of its own. */
function rawSigners(): Record<Kind, () => Promise<Buffer>> {
  const ec = { key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, dsaEncoding: 'ieee-p1363' as const };
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const signer = (key: Parameters<typeof nodeSign>[2]) => () => new Promise<Buffer>((resolve, reject) => nodeSign('sha256', DATA_64, key, (e, sig) => (e ? reject(e) : resolve(sig))));
  return { ecdsa: signer(ec), rsa: signer(rsa) };
}

interface Phase {
  readonly nodes: number;
  readonly results: ReadonlyMap<string, LoadFigures>;
  /** CPU seconds of each node process over the whole phase, to show the load was shared. */
  readonly perNodeCpuS: readonly number[];
}

async function connect(cluster: DevelopmentCluster, nodes: number): Promise<Cluster> {
  return Cluster.connect({
    endpoints: cluster.nodes.slice(0, nodes).map((n) => ({ host: n.host, port: n.port })),
    ca: cluster.customerCaPem,
    credentials: { username: cluster.cryptoUser.name, password: cluster.cryptoUser.password },
  });
}

async function measurePhase(sdk: Cluster, handles: Record<Kind, number>, pids: readonly number[], raw: Record<Kind, () => Promise<Buffer>>): Promise<Phase> {
  const subjects: Subject[] = KINDS.flatMap((k) => {
    const key = sdk.key(handles[k]);
    return [
      { name: `sdk-${k}`, inFlight: IN_FLIGHT, nodePids: pids, call: () => key.sign(DATA_64, { mechanism: MECHANISM[k] }) },
      { name: `raw-${k}`, inFlight: IN_FLIGHT, call: raw[k] },
    ];
  });
  const before = pids.map((p) => treeCpuSeconds([p]));
  const results = await measureInterleaved(subjects, ROUNDS, ROUND_MS);
  return { nodes: pids.length, results, perNodeCpuS: pids.map((p, i) => treeCpuSeconds([p]) - (before[i] ?? 0)) };
}

async function measureCoffer(raw: Record<Kind, () => Promise<Buffer>>): Promise<Phase[]> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-sdk-bench-'));
  const cluster = await startDevelopmentCluster({ dir, nodes: 1 });
  try {
    let sdk = await connect(cluster, 1);
    const handles = {
      ecdsa: (await sdk.generateKeyPair({ curve: 'P-256', label: 'bench-ec' })).privateKey.handle,
      rsa: (await sdk.generateKeyPair({ keyType: 'RSA', bits: 2048, label: 'bench-rsa' })).privateKey.handle,
    };
    const phases: Phase[] = [];
    try {
      phases.push(await measurePhase(sdk, handles, cluster.nodes.slice(0, 1).map((n) => n.pid), raw));
    } finally {
      await sdk.close();
    }
    await cluster.addNode(); // a clone of node 1, keys included
    sdk = await connect(cluster, 2);
    try {
      phases.push(await measurePhase(sdk, handles, cluster.nodes.slice(0, 2).map((n) => n.pid), raw));
    } finally {
      await sdk.close();
    }
    return phases;
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Section> {
  const raw = rawSigners();
  const softhsm = await measureSoftHsm();
  const phases = await measureCoffer(raw);
  return section(phases, softhsm);
}

function verdict(kind: Kind, ours: number, raw: number): string {
  if (kind === 'rsa') return `≥ ${RSA_RAW_RATIO_MIN} × raw: ${ours >= RSA_RAW_RATIO_MIN * raw ? 'met' : 'not met'}`;
  const met = ours >= ECDSA_RATE_MIN && ours >= ECDSA_RAW_RATIO_MIN * raw;
  return `≥ ${ECDSA_RATE_MIN.toLocaleString('en-US')}/s and ≥ ${ECDSA_RAW_RATIO_MIN} × raw: ${met ? 'met' : 'not met'}`;
}

function phaseRows(p: Phase): { rates: Row[]; cpu: Row[] } {
  const where = p.nodes === 1 ? '1 node' : `${p.nodes} nodes`;
  const rates: Row[] = [];
  const cpu: Row[] = [];
  for (const k of KINDS) {
    const sdk = figuresOf(p.results, `sdk-${k}`);
    const raw = figuresOf(p.results, `raw-${k}`);
    const anchor = { anchorName: 'raw async node:crypto, 64 in flight', anchorValue: raw.opsPerSecond };
    rates.push({ name: `${LABEL[k]} via SDK, ${where}, ${IN_FLIGHT} in flight`, value: sdk.opsPerSecond, unit: 'ops/s', ...anchor, target: verdict(k, sdk.opsPerSecond, raw.opsPerSecond) });
    const cpuAnchor = { anchorName: 'raw node:crypto CPU per op', anchorValue: raw.clientCpuUs };
    cpu.push(
      { name: `${LABEL[k]}, SDK ${where}: client process CPU per op`, value: sdk.clientCpuUs, unit: 'µs', ...cpuAnchor },
      { name: `${LABEL[k]}, SDK ${where}: node process${p.nodes === 1 ? '' : 'es'} CPU per op`, value: sdk.nodeCpuUs, unit: 'µs', ...cpuAnchor },
    );
  }
  return { rates, cpu };
}

function softHsmRows(anchor: SoftHsmAnchor, raw: ReadonlyMap<string, LoadFigures>): { rates: Row[]; cpu: Row[] } {
  const rates: Row[] = [];
  const cpu: Row[] = [];
  for (const k of KINDS) {
    const f: SoftHsmFigure | undefined = anchor[k];
    if (f === undefined) continue;
    const r = figuresOf(raw, `raw-${k}`);
    const what = `SoftHSM2 through p11-kit, ${k === 'ecdsa' ? 'ECDSA P-256 (CKM_ECDSA, 32-byte digest)' : 'RSA-2048 (CKM_SHA256_RSA_PKCS, 64 B)'}`;
    rates.push({ name: `${what}, ${f.threads} client threads`, value: f.opsPerSecond, unit: 'ops/s', anchorName: 'raw async node:crypto, 64 in flight', anchorValue: r.opsPerSecond });
    const cpuAnchor = { anchorName: 'raw node:crypto CPU per op', anchorValue: r.clientCpuUs };
    cpu.push(
      { name: `${what}: client process CPU per op`, value: f.clientCpuUsPerOp, unit: 'µs', ...cpuAnchor },
      { name: `${what}: p11-kit server + SoftHSM2 CPU per op`, value: f.serverCpuUsPerOp, unit: 'µs', ...cpuAnchor },
    );
  }
  return { rates, cpu };
}

function section(phases: readonly Phase[], softhsm: SoftHsmAnchor): Section {
  const coffer = phases.map(phaseRows);
  const first = phases[0];
  const soft = first === undefined ? { rates: [], cpu: [] } : softHsmRows(softhsm, first.results);
  const shares = phases
    .filter((p) => p.nodes > 1)
    .map((p) => `With ${p.nodes} nodes the node processes used ${p.perNodeCpuS.map((s) => `${s.toFixed(1)} s`).join(' and ')} of CPU over the phase: the SDK spread the calls over both.`);
  return {
    title: 'Signing through the SDK to node processes',
    rows: [...coffer.flatMap((c) => c.rates), ...soft.rates, ...coffer.flatMap((c) => c.cpu), ...soft.cpu],
    notes: [
      `Client: this bench process, \`Cluster\` (one connection per node, default settings), ${IN_FLIGHT} sign calls in flight, explicit mechanism (${MECHANISM.ecdsa}, ${MECHANISM.rsa}); node processes of a development cluster on the same machine, so client, nodes and the raw anchor share its cores. ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s per figure, medians; each phase (1 node, then 2) has its own raw figures, and each ratio uses its own phase's.`,
      'Raw anchor: crypto.sign(\'sha256\', 64 bytes, key, callback) in this process, 64 in flight, with its own P-256 (P1363 output) and RSA-2048 keys.',
      'The 2-node phase: keys generated on 1 node, the node cloned by sealed backup → restore (addNode), the SDK reconnected to both; state changes are not replicated between nodes yet.',
      'CPU per op: client = process.cpuUsage() of this process (all its threads) over the rounds / operations; nodes = user + system time of the node processes from /proc/<pid>/stat (clock ticks) over the same rounds / operations. The raw anchor’s CPU is this process’s over its own rounds.',
      ...shares,
      'SoftHSM2 is measured in its own window just before the Coffer phases (not interleaved with them); its rows take the 1-node phase’s raw figures as anchor.',
      ...softhsm.notes,
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const s = await run();
  console.log(renderMarkdown([s], `# SDK bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
