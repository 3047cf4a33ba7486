// State changes and signing on one logical HSM (docs/journal-format.md, docs/sdk.md
// "Acknowledgements"), measured the way a user runs Coffer: two `coffer up` regions side by side,
// each a service with its metadata store (SQLite) and its journal relay, one with a cluster of 3
// HSM processes and one with a cluster of 1. Through the SDK, 16 calls in flight:
//   - AES-256 and EC P-256 key generation acknowledged on k = 2 of the 3 HSMs, beside the same
//     call on the 1-HSM cluster with k = 1 (target ≥ 0.5 ×), and beside the metadata store's own
//     durable append rate (a bare INSERT of an entry-sized row by one writer, target ≥ 0.5 ×);
//   - ECDSA P-256 signing (64 in flight) on the 3 HSMs with a key made through the journal, beside
//     signing on the 1 HSM: the journal must not cost signing anything.
// The subjects are measured in interleaved rounds, so a slow moment of the machine hits all. The
// CPU each operation costs the region's processes (service and HSMs) and the client is reported
// beside its throughput: on a machine whose cores all of them share, it bounds the throughput.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Cluster } from '../src/client/cluster.js';
import { loadClusterConfig } from '../src/client/discovery.js';
import { freePort } from './control_plane_region.js';
import pg from 'pg';
import { METADATA_FILE, upSchemaOf } from '../src/cli/up.js';
import { POSTGRES_URL, postgresBareInsertRate, sqliteBareInsertRate } from './journal_bench.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';
import { figuresOf, measureInterleaved, type Subject } from './load.js';

const MAIN_JS = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ROUNDS = 3;
const ROUND_MS = 2000;
const CHANGES_IN_FLIGHT = 16;
const SIGN_IN_FLIGHT = 64;
/** Load each subject runs before the measured rounds. The regions' processes start fresh, and their
 * state-change paths reach a steady rate only after seconds of load (the JIT): AES k = 2 of 3 in
 * consecutive 3-s rounds from a 1-s warm-up went 3,567 → 4,116 → 4,602 → 4,866/s, then stayed
 * within 5 % of 4,950/s (a scratch run; every process's CPU per key fell alike). */
const WARM_UP_MS = 10_000;
/** A region and its cluster start in seconds; a loaded machine may take minutes. */
const START_TIMEOUT_MS = 10 * 60_000;
/** The median sealed entry of an AES-256 key generation (bench/journal_bench.ts measures it). */
const ENTRY_BYTES = 320;
const BARE_INSERTS = 1500;
const DATA_64 = randomBytes(64);

interface Region {
  readonly child: ChildProcess;
  readonly clusterFile: string;
  stop(): Promise<void>;
}

async function up(dir: string, hsms: number, hosts: readonly string[], metadata?: string): Promise<Region> {
  const port = await freePort(hosts);
  const args = [MAIN_JS, 'up', '--data-dir', dir, '--port', '0', '--data-plane-port', String(port), '--cluster', String(hsms), '--log-level', 'warn', ...(metadata === undefined ? [] : ['--metadata', metadata])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
  };
  const stdout = child.stdout;
  if (stdout === null) throw new Error('coffer up has no stdout');
  const clusterFile = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), START_TIMEOUT_MS);
    child.once('exit', () => resolve(undefined));
    createInterface({ input: stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { clusterFile?: string }).clusterFile);
    });
  });
  if (clusterFile === undefined) {
    await stop();
    throw new Error(`coffer up --cluster ${hsms} did not become ready: ${stderr.trim().slice(-2000)}`);
  }
  return { child, clusterFile, stop };
}

/** This machine's cores, as the CPU ceiling in the notes counts them. */
const CORES = availableParallelism();

/** The region's `coffer up` process: the CPU sampled for a subject is its tree (service and HSMs). */
function pidsOf(region: Region): number[] {
  const pid = region.child.pid;
  if (pid === undefined) throw new Error('coffer up has no pid');
  return [pid];
}

/** An SDK client of the region's cluster; `firstOnly`: connected to its first HSM alone. */
async function connect(region: Region, acks: number, firstOnly = false): Promise<Cluster> {
  const config = loadClusterConfig(region.clusterFile);
  const file = JSON.parse(readFileSync(region.clusterFile, 'utf8')) as { cryptoUser: { name: string; password: string } };
  const sdk = await Cluster.connect({ endpoints: firstOnly ? config.endpoints.slice(0, 1) : config.endpoints, ca: config.ca, credentials: { username: file.cryptoUser.name, password: file.cryptoUser.password }, acks });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!sdk.nodes.every((n) => n.state === 'up')) {
    if (Date.now() > deadline) throw new Error('not every HSM came up for the SDK');
    await new Promise((r) => setTimeout(r, 100));
  }
  return sdk;
}

export async function run(): Promise<Section> {
  const title = 'State changes through the cluster journal';
  const dir = mkdtempSync(join(tmpdir(), 'coffer-journal-cluster-bench-'));
  const regions: Region[] = [];
  const clients: Cluster[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  try {
    const three = await up(join(dir, 'three'), 3, ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    regions.push(three);
    const one = await up(join(dir, 'one'), 1, ['127.0.0.5']);
    regions.push(one);
    const sdk3 = await connect(three, 2);
    clients.push(sdk3);
    const sdk1 = await connect(one, 1);
    clients.push(sdk1);
    // One HSM of the 3-HSM cluster served alone: beside the 1-HSM cluster, this separates what
    // belonging to a relayed 3-HSM cluster costs a signing HSM (nothing is expected: signing writes
    // no entry) from what spreading the calls over 3 processes on this machine's cores costs.
    const sdk3one = await connect(three, 1, true);
    clients.push(sdk3one);
    // The same 3-HSM cluster with its metadata and journal in PostgreSQL (`coffer up --metadata`).
    const pgError = await admin.connect().then(() => undefined, (e: unknown) => (e instanceof Error ? e.message : String(e)));
    let sdkPg: Cluster | undefined;
    if (pgError === undefined) {
      const onPg = await up(join(dir, 'three-pg'), 3, ['127.0.0.6', '127.0.0.7', '127.0.0.8'], POSTGRES_URL);
      regions.push(onPg);
      const prefix = (JSON.parse(readFileSync(join(dir, 'three-pg', METADATA_FILE), 'utf8')) as { schemaPrefix: string }).schemaPrefix;
      cleanups.push(async () => {
        await admin.query(`DROP SCHEMA IF EXISTS "${upSchemaOf(prefix, 'us-east-1')}" CASCADE`);
      });
      sdkPg = await connect(onPg, 2);
      clients.push(sdkPg);
    }

    const signer3 = (await sdk3.generateKeyPair({ curve: 'P-256', label: 'bench-sign' })).privateKey;
    const signer1 = (await sdk1.generateKeyPair({ curve: 'P-256', label: 'bench-sign' })).privateKey;
    const signer3one = (await sdk3one.generateKeyPair({ curve: 'P-256', label: 'bench-sign-one' })).privateKey;
    // The CPU of a region: its `coffer up` process and every process it started (service and HSMs).
    const pids3 = pidsOf(three);
    const pids1 = pidsOf(one);
    const subjects: Subject[] = [
      { name: 'aes-3', inFlight: CHANGES_IN_FLIGHT, nodePids: pids3, call: () => sdk3.generateKey({ type: 'AES', bits: 256 }) },
      { name: 'aes-1', inFlight: CHANGES_IN_FLIGHT, nodePids: pids1, call: () => sdk1.generateKey({ type: 'AES', bits: 256 }) },
      { name: 'ec-3', inFlight: CHANGES_IN_FLIGHT, nodePids: pids3, call: () => sdk3.generateKeyPair({ curve: 'P-256' }) },
      { name: 'ec-1', inFlight: CHANGES_IN_FLIGHT, nodePids: pids1, call: () => sdk1.generateKeyPair({ curve: 'P-256' }) },
      ...(sdkPg === undefined ? [] : [
        { name: 'aes-3pg', inFlight: CHANGES_IN_FLIGHT, call: () => sdkPg.generateKey({ type: 'AES', bits: 256 }) },
        { name: 'ec-3pg', inFlight: CHANGES_IN_FLIGHT, call: () => sdkPg.generateKeyPair({ curve: 'P-256' }) },
      ]),
      { name: 'sign-3', inFlight: SIGN_IN_FLIGHT, nodePids: pids3, call: () => signer3.sign(DATA_64, { mechanism: 'CKM_ECDSA_SHA256' }) },
      { name: 'sign-1', inFlight: SIGN_IN_FLIGHT, nodePids: pids1, call: () => signer1.sign(DATA_64, { mechanism: 'CKM_ECDSA_SHA256' }) },
      { name: 'sign-3one', inFlight: SIGN_IN_FLIGHT, call: () => signer3one.sign(DATA_64, { mechanism: 'CKM_ECDSA_SHA256' }) },
    ];
    const results = await measureInterleaved(subjects, ROUNDS, ROUND_MS, WARM_UP_MS);
    const bare = median(Array.from({ length: ROUNDS }, (_, r) => sqliteBareInsertRate(join(dir, `bare-${r}.db`), ENTRY_BYTES, BARE_INSERTS)));
    const barePg: number[] = [];
    if (sdkPg !== undefined) {
      for (let r = 0; r < ROUNDS; r++) {
        const schema = `bench_bare_${process.pid}_${r}`;
        cleanups.push(async () => {
          await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        });
        barePg.push(await postgresBareInsertRate(admin, schema, ENTRY_BYTES, BARE_INSERTS));
      }
    }
    const rows: Row[] = [];
    const ceilings: string[] = [];
    for (const [kind, label] of [['aes', 'AES-256 key generation'], ['ec', 'EC P-256 key pair generation']] as const) {
      const k2 = figuresOf(results, `${kind}-3`);
      const k1 = figuresOf(results, `${kind}-1`);
      rows.push(
        { name: `${label}, k = 2 of 3 HSMs, ${CHANGES_IN_FLIGHT} in flight`, value: k2.opsPerSecond, unit: 'ops/s', anchorName: 'the same on 1 HSM, k = 1', anchorValue: k1.opsPerSecond, target: `≥ 0.5 × k = 1: ${k2.opsPerSecond >= 0.5 * k1.opsPerSecond ? 'met' : 'not met'}` },
        { name: `${label}, k = 2 of 3 HSMs, beside the store's bare append`, value: k2.opsPerSecond, unit: 'ops/s', anchorName: `bare INSERT of a ${ENTRY_BYTES}-byte row, 1 writer (SQLite)`, anchorValue: bare, target: `≥ 0.5 × bare: ${k2.opsPerSecond >= 0.5 * bare ? 'met' : 'not met'}` },
        { name: `${label}, k = 2 of 3: p50 latency`, value: k2.p50Us, unit: 'µs', anchorName: 'k = 1 on 1 HSM', anchorValue: k1.p50Us },
        { name: `${label}, k = 2 of 3: p99 latency`, value: k2.p99Us, unit: 'µs', anchorName: 'k = 1 on 1 HSM', anchorValue: k1.p99Us },
        { name: `${label}, k = 2 of 3: CPU per operation, service and HSM processes`, value: k2.nodeCpuUs, unit: 'µs', anchorName: 'k = 1 on 1 HSM', anchorValue: k1.nodeCpuUs },
        { name: `${label}, k = 2 of 3: CPU per operation, SDK client (this process)`, value: k2.clientCpuUs, unit: 'µs', anchorName: 'k = 1 on 1 HSM', anchorValue: k1.clientCpuUs },
      );
      ceilings.push(`${label}: ${Math.round(k2.nodeCpuUs + k2.clientCpuUs)} µs of CPU per operation with k = 2 of 3 (${Math.round(k1.nodeCpuUs + k1.clientCpuUs)} µs with k = 1 on 1 HSM), so at most ${Math.round((CORES * 1e6) / (k2.nodeCpuUs + k2.clientCpuUs)).toLocaleString('en-US')} operations/s on ${CORES} cores fully busy, against ${Math.round(0.5 * bare).toLocaleString('en-US')}/s for 0.5 × the SQLite bare append; at the measured ${Math.round(k2.opsPerSecond).toLocaleString('en-US')}/s they kept ${((k2.opsPerSecond * (k2.nodeCpuUs + k2.clientCpuUs)) / 1e6).toFixed(2)} of the ${CORES} cores busy`);
    }
    if (sdkPg !== undefined) {
      const bp = median(barePg);
      for (const [kind, label] of [['aes', 'AES-256 key generation'], ['ec', 'EC P-256 key pair generation']] as const) {
        const k2 = figuresOf(results, `${kind}-3pg`);
        rows.push(
          { name: `${label}, k = 2 of 3 HSMs, PostgreSQL metadata, beside its bare append`, value: k2.opsPerSecond, unit: 'ops/s', anchorName: `bare INSERT of a ${ENTRY_BYTES}-byte row, 1 writer (PostgreSQL)`, anchorValue: bp, target: `≥ 0.5 × bare: ${k2.opsPerSecond >= 0.5 * bp ? 'met' : 'not met'}` },
          { name: `${label}, k = 2 of 3 HSMs, PostgreSQL metadata, beside the same on SQLite`, value: k2.opsPerSecond, unit: 'ops/s', anchorName: 'k = 2 of 3, SQLite metadata', anchorValue: figuresOf(results, `${kind}-3`).opsPerSecond },
          { name: `${label}, k = 2 of 3, PostgreSQL metadata: p50 latency`, value: k2.p50Us, unit: 'µs', anchorName: 'SQLite metadata', anchorValue: figuresOf(results, `${kind}-3`).p50Us },
        );
      }
    }
    const s3 = figuresOf(results, 'sign-3');
    const s1 = figuresOf(results, 'sign-1');
    const s3one = figuresOf(results, 'sign-3one');
    rows.push(
      { name: `ECDSA P-256 sign, key made through the journal, 3 HSMs, ${SIGN_IN_FLIGHT} in flight`, value: s3.opsPerSecond, unit: 'ops/s', anchorName: 'the same on 1 HSM', anchorValue: s1.opsPerSecond, target: `≥ 1.0 × 1 HSM: ${s3.opsPerSecond >= s1.opsPerSecond ? 'met' : 'not met'}` },
      { name: `ECDSA P-256 sign on one HSM of the 3-HSM cluster (journal relayed), ${SIGN_IN_FLIGHT} in flight`, value: s3one.opsPerSecond, unit: 'ops/s', anchorName: 'the 1-HSM cluster', anchorValue: s1.opsPerSecond },
      { name: `ECDSA P-256 sign, key made through the journal, 3 HSMs: CPU per signature, service and HSM processes`, value: s3.nodeCpuUs, unit: 'µs', anchorName: 'the same on 1 HSM', anchorValue: s1.nodeCpuUs },
    );
    return {
      title,
      rows,
      notes: [
        `Two regions started as a user starts one (\`coffer up --cluster 3\` and \`coffer up --cluster 1\`, journal relayed by default, SQLite metadata store with WAL and synchronous FULL), all on this machine: 4 HSM processes, 2 service processes and this bench share its cores (7 and 3 with the PostgreSQL region below). SDK clients with acks 2 (3 HSMs) and 1 (1 HSM); each subject first runs ${WARM_UP_MS / 1000} s of its load unmeasured (fresh processes reach a steady rate only after seconds of it), then ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s per subject, medians; latencies are per call, as the client sees them.`,
        'A key generation returns when its entry is appended by the service, applied by the HSM that made it and reported applied by another (JOURNAL_WAIT); the 1-HSM cluster relays its journal the same way, with k = 1. State changes go to one HSM (the SDK\'s primary), which orders the calls queued behind its entry in flight as one entry (docs/device.md "The journal", batches).',
        'Signing on one HSM of the 3-HSM cluster: an SDK client given only that HSM\'s endpoint, with a key it made through the journal. Both clusters relay their journals, and signing writes no entry; beside the 1-HSM cluster this row shows what belonging to a 3-HSM cluster (its relay, probes and idle peers) costs a signing HSM, and the row above it adds what spreading the calls over 3 HSM processes costs on this machine\'s 2 cores (fewer requests per socket read, more process wake-ups: more CPU per signature).',
        `The bare INSERT is measured in this process after the rounds: ${BARE_INSERTS} rows of ${ENTRY_BYTES} bytes per round, one per commit.`,
        `CPU per operation: user + system time (/proc) of the region's \`coffer up\` process and every process it started — its service and its HSMs — and, in its own row, of this process (the SDK client), over the rounds, divided by the operations. It bounds what the machine can do whatever the journal's design: ${ceilings.join('; ')}.`,
        pgError === undefined
          ? 'PostgreSQL rows: a third region, `coffer up --cluster 3 --metadata postgres://…` (the server at 127.0.0.1, default fsync; the region\'s metadata and journal in a schema of its own), measured in the same interleaved rounds with acks 2; its bare INSERT anchor is one autocommit INSERT per row over one connection (node-postgres), in this process, after the rounds.'
          : `PostgreSQL rows skipped: ${pgError}.`,
      ],
    };
  } catch (e) {
    return { title, rows: [], notes: [`Failed: ${e instanceof Error ? e.message : String(e)}`] };
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const r of regions) await r.stop();
    for (const c of cleanups) await c().catch(() => undefined);
    await admin.end().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  const s = await run();
  console.log(renderMarkdown([s], `# Journal cluster bench (${((performance.now() - start) / 1000).toFixed(1)} s)`));
}
