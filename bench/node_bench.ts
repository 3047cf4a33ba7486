// Data-plane round trips (docs/node.md, docs/wire-protocol.md): this process as the client, over one
// TLS 1.3 connection (Connection, trusting the customer CA) to a node PROCESS of a development
// cluster (src/cli/dev_cluster.ts) on the same machine. Round trips/s and p50/p99 latency at 1 and
// 64 calls in flight, for a small op (RANDOM, 16 bytes) and ECDSA P-256 SIGN (CKM_ECDSA_SHA256 over
// 64 bytes), in the same interleaved rounds as their anchors: for RANDOM, a 32-byte TLS 1.3 echo to
// a server process (bench/tls_echo.ts: the transport's floor); for SIGN, raw asynchronous
// node:crypto (crypto.sign with a callback, same number in flight, in this process).

import { generateKeyPairSync, sign as nodeSign, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Connection } from '../src/client/connection.js';
import { startDevelopmentCluster } from '../src/cli/dev_cluster.js';
import { renderMarkdown, fmt, type Row, type Section } from './harness.js';
import { figuresOf, measureInterleaved, type LoadFigures, type Subject } from './load.js';
import { ECHO_MESSAGE_BYTES, EchoClient, startEchoServer } from './tls_echo.js';

const ROUNDS = 5;
const ROUND_MS = 1000;
const IN_FLIGHT = [1, 64] as const;
const DATA_64 = randomBytes(64);

/** crypto.sign with a callback: node:crypto's own asynchronous path (libuv thread pool). */
export function rawAsyncSign(key: Parameters<typeof nodeSign>[2], algorithm: string | null = 'sha256'): () => Promise<Buffer> {
  return () => new Promise<Buffer>((resolve, reject) => nodeSign(algorithm, DATA_64, key, (e, sig) => (e ? reject(e) : resolve(sig))));
}

function cpuNote(name: string, f: LoadFigures): string {
  const node = Number.isNaN(f.nodeCpuUs) ? '' : `, node process ${fmt(f.nodeCpuUs)} µs`;
  return `${name}: CPU per op — client process ${fmt(f.clientCpuUs)} µs${node} (${f.ops.toLocaleString('en-US')} ops over ${ROUNDS} rounds).`;
}

export async function run(): Promise<Section> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-node-bench-'));
  const cluster = await startDevelopmentCluster({ dir, nodes: 1 });
  const echoServer = await startEchoServer();
  const echo = await EchoClient.connect(echoServer);
  try {
    const node = cluster.nodes[0] ?? fail();
    const conn = await Connection.connect({ host: node.host, port: node.port, ca: cluster.customerCaPem });
    try {
      const session = await conn.openSession();
      await conn.login(session, cluster.cryptoUser.name, cluster.cryptoUser.password);
      const { privateHandle } = await conn.generateKeyPair(session, { keyType: 'EC', curve: 'P-256' }, {}, { label: 'bench-node' });
      const rawKey = { key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, dsaEncoding: 'ieee-p1363' as const };
      const nodePids = [node.pid];
      const subjects: Subject[] = IN_FLIGHT.flatMap((inFlight) => [
        { name: `random-${inFlight}`, inFlight, nodePids, call: () => conn.random(session, 16) },
        { name: `sign-${inFlight}`, inFlight, nodePids, call: () => conn.sign(session, privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, DATA_64) },
        { name: `raw-${inFlight}`, inFlight, call: rawAsyncSign(rawKey) },
        { name: `echo-${inFlight}`, inFlight, nodePids: [echoServer.pid], call: () => echo.call() },
      ]);
      const results = await measureInterleaved(subjects, ROUNDS, ROUND_MS);
      return section(results);
    } finally {
      conn.close();
    }
  } finally {
    echo.close();
    await echoServer.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function section(results: ReadonlyMap<string, LoadFigures>): Section {
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const inFlight of IN_FLIGHT) {
    const random = figuresOf(results, `random-${inFlight}`);
    const sign = figuresOf(results, `sign-${inFlight}`);
    const raw = figuresOf(results, `raw-${inFlight}`);
    const echo = figuresOf(results, `echo-${inFlight}`);
    const echoName = `${ECHO_MESSAGE_BYTES} B TLS echo`;
    const label = `${inFlight} in flight`;
    rows.push(
      { name: `RANDOM 16 B, ${label}`, value: random.opsPerSecond, unit: 'round trips/s', anchorName: `${echoName}, ${label}`, anchorValue: echo.opsPerSecond },
      { name: `RANDOM 16 B, ${label}, p50 latency`, value: random.p50Us, unit: 'µs', anchorName: `${echoName} p50`, anchorValue: echo.p50Us },
      { name: `RANDOM 16 B, ${label}, p99 latency`, value: random.p99Us, unit: 'µs', anchorName: `${echoName} p99`, anchorValue: echo.p99Us },
      { name: `ECDSA P-256 SIGN, ${label}`, value: sign.opsPerSecond, unit: 'ops/s', anchorName: `raw async node:crypto sign, ${label}`, anchorValue: raw.opsPerSecond },
      { name: `ECDSA P-256 SIGN, ${label}, p50 latency`, value: sign.p50Us, unit: 'µs', anchorName: 'raw async sign p50', anchorValue: raw.p50Us },
      { name: `ECDSA P-256 SIGN, ${label}, p99 latency`, value: sign.p99Us, unit: 'µs', anchorName: 'raw async sign p99', anchorValue: raw.p99Us },
    );
    notes.push(cpuNote(`RANDOM, ${label}`, random), cpuNote(`TLS echo, ${label}`, echo), cpuNote(`SIGN, ${label}`, sign), cpuNote(`raw sign, ${label}`, raw));
  }
  return {
    title: 'HSM node process over TLS (one connection)',
    rows,
    notes: [
      `Client: this bench process, one TLS 1.3 connection (Connection) to one node process of a development cluster on the same 2-core machine; closed loop, ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s per figure, medians. Latency is per call as the client sees it (request written → reply resolved), including queueing in the client at 64 in flight.`,
      `RANDOM's anchor: ${ECHO_MESSAGE_BYTES} bytes each way over TLS 1.3 to an echo server process (node:tls, one write per chunk read), client writes coalesced per tick as Connection's are; a RANDOM of 16 bytes is a 19-byte request frame and a 31-byte reply. The ratio is what framing, dispatch and the device cost above the bare transport; at 64 in flight the echo server sends back a whole tick's batch in one write and the client settles it in one read, so that anchor is what batching alone gives.`,
      'SIGN is CKM_ECDSA_SHA256 over 64 bytes on a token key; the raw anchor signs the same 64 bytes (SHA-256, P1363) with a key of its own in this process.',
      'Node CPU is user + system time of the node (or echo server) process from /proc/<pid>/stat (clock ticks); client CPU is process.cpuUsage() of this process, which includes libuv’s thread pool.',
      ...notes,
    ],
  };
}

function fail(): never {
  throw new Error('bench: the development cluster has no node');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const s = await run();
  console.log(renderMarkdown([s], `# Node bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
