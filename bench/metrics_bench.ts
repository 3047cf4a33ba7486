// The cost of metrics and the audit log on the signing path (docs/metrics.md "Cost", docs/audit.md):
// ECDSA P-256 signing through the SDK to a node process with its Prometheus metrics and its audit
// log on (the defaults) beside a node with `--metrics off --audit off`, in the same interleaved
// rounds, so load from elsewhere on this shared machine falls on both alike. Two one-node development clusters, each with its own key; only the one being
// measured is loaded at a time. Twice, with fresh clusters started in the other order: the cluster
// started first was measurably slower even when both ran alike. The on-node is scraped once a second during its rounds, as
// Prometheus would (more often than the usual 15 s), so the scrape's cost is in the figure too.
//
// Signing is not audited (docs/audit.md "What is recorded"): the audit log's part is the SDK's logins
// and nothing per operation, which this measures rather than assumes.
//
// Target: on ≥ 0.95 × off (ops/s medians).

import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Cluster } from '../src/client/cluster.js';
import { startDevelopmentCluster, type DevelopmentCluster } from '../src/cli/dev_cluster.js';
import { issueManagementClientCertificate, loadDevelopmentAuthorities } from '../src/factory/development.js';
import { renderMarkdown, type Section } from './harness.js';
import { figuresOf, measureInterleaved, type LoadFigures, type Subject } from './load.js';

const ROUNDS = 7;
const ROUND_MS = 1000;
const IN_FLIGHT = 64;
const DATA_64 = randomBytes(64);
const RATIO_MIN = 0.95;
const SCRAPE_INTERVAL_MS = 1000;

interface Setup {
  readonly cluster: DevelopmentCluster;
  readonly sdk: Cluster;
  readonly handle: number;
}

async function setUp(root: string, metrics: 'on' | 'off'): Promise<Setup> {
  const cluster = await startDevelopmentCluster({ dir: join(root, metrics), nodes: 1, nodeMetrics: metrics, nodeAudit: metrics });
  const sdk = await Cluster.connect({
    endpoints: cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
    ca: cluster.customerCaPem,
    credentials: { username: cluster.cryptoUser.name, password: cluster.cryptoUser.password },
  });
  const handle = (await sdk.generateKeyPair({ curve: 'P-256', label: `bench-metrics-${metrics}` })).privateKey.handle;
  return { cluster, sdk, handle };
}

/** GET /metrics over the management interface's mutual TLS; resolves with the body's length. */
function scrape(port: number, credential: { readonly certificatePem: string; readonly keyPem: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', method: 'GET', cert: credential.certificatePem, key: credential.keyPem, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.once('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`scrape answered ${res.statusCode ?? 0}`))));
    });
    req.once('error', reject);
    req.end();
  });
}

interface Phase {
  readonly on: LoadFigures;
  readonly off: LoadFigures;
  readonly scrapes: number;
  readonly scrapeBytes: number;
}

/** One phase: two fresh clusters started in `order`, measured in interleaved rounds. */
async function phase(order: readonly ('on' | 'off')[]): Promise<Phase> {
  const root = mkdtempSync(join(tmpdir(), 'coffer-metrics-bench-'));
  const setups = new Map<'on' | 'off', Setup>();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (const m of order) setups.set(m, await setUp(root, m));
    const on = setups.get('on') as Setup;
    const off = setups.get('off') as Setup;
    const node = on.cluster.nodes[0];
    if (node === undefined) throw new Error('no node');
    const credential = await issueManagementClientCertificate((await loadDevelopmentAuthorities(join(root, 'on', 'authorities'))).operator, 'metrics bench');
    let scrapes = 0;
    let scrapeBytes = 0;
    timer = setInterval(() => {
      scrape(node.managementPort, credential).then((b) => {
        scrapes++;
        scrapeBytes = b;
      }, () => undefined);
    }, SCRAPE_INTERVAL_MS);
    const subject = (name: string, s: Setup): Subject => {
      const key = s.sdk.key(s.handle);
      return { name, inFlight: IN_FLIGHT, nodePids: s.cluster.nodes.map((n) => n.pid), call: () => key.sign(DATA_64, { mechanism: 'CKM_ECDSA_SHA256' }) };
    };
    const results = await measureInterleaved([subject('on', on), subject('off', off)], ROUNDS, ROUND_MS);
    return { on: figuresOf(results, 'on'), off: figuresOf(results, 'off'), scrapes, scrapeBytes };
  } finally {
    clearInterval(timer);
    for (const s of setups.values()) {
      await s.sdk.close();
      await s.cluster.stop();
    }
    rmSync(root, { recursive: true, force: true });
  }
}

const geomean = (a: number, b: number): number => Math.sqrt(a * b);

export async function run(): Promise<Section> {
  // The cluster started first ran measurably slower than the second even with both nodes alike on
  // this machine, so each configuration is started first in one of two phases, and the figures
  // combine both (geometric means of the phases' medians).
  const phases = [await phase(['on', 'off']), await phase(['off', 'on'])] as const;
  const [a, b] = phases;
  const on = { ops: geomean(a.on.opsPerSecond, b.on.opsPerSecond), cpu: geomean(a.on.nodeCpuUs, b.on.nodeCpuUs), p50: geomean(a.on.p50Us, b.on.p50Us) };
  const off = { ops: geomean(a.off.opsPerSecond, b.off.opsPerSecond), cpu: geomean(a.off.nodeCpuUs, b.off.nodeCpuUs), p50: geomean(a.off.p50Us, b.off.p50Us) };
  const ratio = on.ops / off.ops;
  const phaseRatio = (p: Phase): string => (p.on.opsPerSecond / p.off.opsPerSecond).toFixed(2);
  return {
    title: 'Metrics and audit on the signing path',
    rows: [
      { name: `ECDSA P-256 sign via SDK, 1 node, ${IN_FLIGHT} in flight, metrics and audit on`, value: on.ops, unit: 'ops/s', anchorName: 'same, node with --metrics off --audit off', anchorValue: off.ops, target: `≥ ${RATIO_MIN} × off: ${ratio >= RATIO_MIN ? 'met' : 'not met'}` },
      { name: 'node process CPU per op, metrics and audit on', value: on.cpu, unit: 'µs', anchorName: 'both off', anchorValue: off.cpu },
      { name: 'p50 latency, metrics and audit on', value: on.p50, unit: 'µs', anchorName: 'both off', anchorValue: off.p50 },
    ],
    notes: [
      `Two one-node development clusters (\`coffer hsm serve --metrics on --audit on\` and \`--metrics off --audit off\`), each signing with its own P-256 key through its own SDK client, ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s, medians; twice, with fresh clusters, each configuration started first once (on/off ratio ${phaseRatio(a)} with "on" started first, ${phaseRatio(b)} with "off" started first); figures are the geometric means of the two.`,
      `The metrics-on node was scraped (GET /metrics over mutual TLS) every ${SCRAPE_INTERVAL_MS / 1000} s during the rounds: ${a.scrapes + b.scrapes} scrapes of about ${Math.round(geomean(a.scrapeBytes, b.scrapeBytes))} bytes.`,
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const s = await run();
  console.log(renderMarkdown([s], `# Metrics bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
