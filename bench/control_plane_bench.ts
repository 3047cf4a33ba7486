// The control plane (docs/control-plane.md), measured through its CloudHSMv2 API with the real AWS
// SDK (@aws-sdk/client-cloudhsm-v2, HTTP + SigV4) against a region assembled as `coffer up` does
// (bench/control_plane_region.ts: SQLite metadata, filesystem archive, local fleet of real
// `coffer hsm serve` processes):
//
//   1. DescribeClusters p50/p99 latency with 100 clusters (one call: a page of 25, CloudHSM's
//      maximum; and the 4 calls that list all 100), beside a bare node:http server answering the
//      byte-identical bodies, called through the same SDK client code.
//   2. CreateHsm → HSM ACTIVE for an activated cluster of 1 HSM holding 10,000 token objects
//      (target < 3 s), beside the clone done by hand through the management client alone (a sealed
//      backup of the healthy HSM to a file, restored into a blank device the fleet provisioned).
//   3. SIGKILL of one HSM's process of a 2-HSM cluster → its replacement ACTIVE, with 64 signing
//      calls in flight through the SDK throughout (target < 10 s + the probe interval, zero failed
//      client calls).

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CloudHSMV2Client, CreateHsmCommand, DeleteHsmCommand, DescribeClustersCommand } from '@aws-sdk/client-cloudhsm-v2';
import type { Cluster } from '../src/client/cluster.js';
import type { NodeSnapshot } from '../src/client/node_link.js';
import { CLIENT_PROBE_BACKOFF_MAX_MS } from '../src/formats/limits.js';
import { FAILED_PROBES_MAX } from '../src/service/config.js';
import type { FleetDevice } from '../src/service/fleet/fleet_port.js';
import { LOCAL_FLEET_FILE } from '../src/service/fleet/local_fleet.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';
import { figuresOf, measureInterleaved } from './load.js';
import {
  POLL_MS, REGION, activeCluster, connect, createCluster, describe, environment, fail, sleep, startRegion, waitFor, type ActiveCluster, type Environment, type Region,
} from './control_plane_region.js';

/** The probe interval the bench's service runs with (the default is PROBE_INTERVAL_MS_DEFAULT, 2 s). */
const PROBE_INTERVAL_MS = 500;
const CLUSTERS = 100;
const DESCRIBE_ROUNDS = 5;
const DESCRIBE_ROUND_MS = 1000;
/** Token objects on the cluster's HSM: a P-256 key pair (the signing key) and AES-256 keys. */
const OBJECTS = 10_000;
/** generateKey calls in flight while populating (set-up only). */
const POPULATE_IN_FLIGHT = 32;
const CREATE_ROUNDS = 3;
const CREATE_TARGET_S = 3;
const SIGN_IN_FLIGHT = 64;
/** Signing runs this long before the kill and after the replacement is ACTIVE. */
const SIGN_SETTLE_MS = 3000;
/** After the replacement is ACTIVE, how long the bench waits for the SDK to use its address again: the SDK's slowest re-probe and then some. */
const SDK_BACK_WAIT_MS = CLIENT_PROBE_BACKOFF_MAX_MS + 5000;
/** A worker whose call failed waits this long before its next call (no busy loop on a dead cluster). */
const FAILED_CALL_PAUSE_MS = 10;
const REPLACE_TARGET_S = 10 + PROBE_INTERVAL_MS / 1000;
const REPLACE_ROUNDS = 3;
const DATA_64 = randomBytes(64);

// ── 1. DescribeClusters ───────────────────────────────────────────────────────────────────────

interface Captured {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

interface RawHandler {
  handle(request: { body?: unknown }, options?: unknown): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: AsyncIterable<Uint8Array> } }>;
  destroy?(): void;
}

/** An SDK client whose responses are also kept byte for byte, by request body (the body is handed on unchanged). */
function capturingClient(endpoint: string, key: Region['accessKey']): { client: CloudHSMV2Client; captured: Map<string, Captured> } {
  const plain = new CloudHSMV2Client({ endpoint, region: REGION, credentials: key });
  const inner = plain.config.requestHandler as unknown as RawHandler;
  const captured = new Map<string, Captured>();
  const handler: RawHandler = {
    handle: async (request, options) => {
      const out = await inner.handle(request, options);
      const chunks: Uint8Array[] = [];
      for await (const c of out.response.body) chunks.push(c);
      const body = Buffer.concat(chunks);
      captured.set(String(request.body), { statusCode: out.response.statusCode, headers: { ...out.response.headers }, body });
      out.response.body = Readable.from([body]);
      return out;
    },
    destroy: () => plain.destroy(),
  };
  const client = new CloudHSMV2Client({ endpoint, region: REGION, credentials: key, requestHandler: handler });
  return { client, captured };
}

/** The anchor: node:http reading each request's body and answering with the response captured for that body (status, body, content type). */
async function bareServer(responses: ReadonlyMap<string, Captured>): Promise<{ server: Server; endpoint: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = responses.get(Buffer.concat(chunks).toString('utf8'));
      if (r === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(r.statusCode, { 'content-type': r.headers['content-type'] ?? 'application/x-amz-json-1.1', 'content-length': r.body.length, 'x-amzn-requestid': randomUUID() });
      res.end(r.body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** One DescribeClusters call: the first page (MaxResults default, 25). */
async function firstPage(client: CloudHSMV2Client): Promise<number> {
  return (await client.send(new DescribeClustersCommand({}))).Clusters?.length ?? 0;
}

/** Every cluster, following NextToken page by page, as a customer lists them. */
async function allPages(client: CloudHSMV2Client): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const out = await client.send(new DescribeClustersCommand(token === undefined ? {} : { NextToken: token }));
    n += out.Clusters?.length ?? 0;
    token = out.NextToken;
  } while (token !== undefined);
  if (n !== CLUSTERS) fail(`listed ${n} clusters, not ${CLUSTERS}`);
  return n;
}

interface DescribeResult {
  readonly rows: Row[];
  readonly notes: string[];
}

async function describeClusters(env: Environment): Promise<DescribeResult> {
  // No orchestrator running: the 100 clusters stay as they are, and nothing else runs in the service.
  const region = await startRegion(env, 'describe', { probeIntervalMs: PROBE_INTERVAL_MS, orchestrate: false });
  try {
    const createStart = performance.now();
    for (let i = 0; i < CLUSTERS; i++) await createCluster(region.api);
    const createS = (performance.now() - createStart) / 1000;
    await region.service.orchestrator.tick(); // CREATE_IN_PROGRESS → UNINITIALIZED
    await region.service.orchestrator.settled();
    const ours = capturingClient(region.service.endpoint, region.accessKey);
    await allPages(ours.client);
    const pages = new Map(ours.captured);
    const first = [...pages.values()][0] ?? fail('nothing captured');
    const bare = await bareServer(pages);
    const anchor = capturingClient(bare.endpoint, region.accessKey);
    try {
      const results = await measureInterleaved([
        { name: 'service-1', inFlight: 1, call: () => firstPage(ours.client) },
        { name: 'bare-1', inFlight: 1, call: () => firstPage(anchor.client) },
        { name: 'service-all', inFlight: 1, call: () => allPages(ours.client) },
        { name: 'bare-all', inFlight: 1, call: () => allPages(anchor.client) },
      ], DESCRIBE_ROUNDS, DESCRIBE_ROUND_MS);
      // The anchor's bodies are the service's, byte for byte, and the service's have not changed.
      for (const [request, r] of pages) {
        if (ours.captured.get(request)?.body.equals(r.body) !== true || anchor.captured.get(request)?.body.equals(r.body) !== true) fail('the bodies differ');
      }
      const anchorName = 'bare node:http, same bodies, same SDK client';
      const rows: Row[] = [];
      for (const [key, what] of [['1', `DescribeClusters, ${CLUSTERS} clusters, one call (first page: 25)`], ['all', `DescribeClusters, all ${CLUSTERS} clusters (${pages.size} calls, NextToken)`]] as const) {
        const s = figuresOf(results, `service-${key}`);
        const b = figuresOf(results, `bare-${key}`);
        rows.push(
          { name: `${what}, p50 latency`, value: s.p50Us / 1000, unit: 'ms', anchorName: `${anchorName}, p50`, anchorValue: b.p50Us / 1000 },
          { name: `${what}, p99 latency`, value: s.p99Us / 1000, unit: 'ms', anchorName: `${anchorName}, p99`, anchorValue: b.p99Us / 1000 },
        );
      }
      const sizes = [...pages.values()].map((p) => p.body.length.toLocaleString('en-US')).join(', ');
      return {
        rows,
        notes: [
          `DescribeClusters: ${CLUSTERS} clusters made by CreateCluster through the API (${createS.toFixed(1)} s in all), moved to UNINITIALIZED by one orchestrator tick, then the orchestrator left off. DescribeClusters returns at most 25 clusters a call (MaxResults ≤ 25, CloudHSM's bound, enforced by the service): "one call" is the first page of the 100, "all" is the ${pages.size} calls that list them following NextToken. Response bodies ${sizes} bytes (${first.headers['content-type'] ?? '?'}). ${DESCRIBE_ROUNDS} interleaved rounds of ${DESCRIBE_ROUND_MS / 1000} s per figure, 1 in flight, medians of each round's p50 / p99; the client, the service and the anchor server share this process.`,
          'Both sides: the same @aws-sdk/client-cloudhsm-v2 client code (request built, SigV4-signed, sent over keep-alive HTTP/1.1 by the SDK\'s node handler, whole body read, JSON parsed into the output shape). The service side adds: the service\'s node:http server, SigV4 verification, the operation (reads of the 100 cluster documents and their HSMs from SQLite, filters, paging and the NextToken, shaping), JSON serialisation, and one info-level log line per call to a file (as `coffer up` logs). The anchor: node:http reading the request body and writing the body the service gave for that request, with its content type, its length and a fresh x-amzn-requestid; no signature check. The bodies were checked byte-identical after the rounds.',
        ],
      };
    } finally {
      anchor.client.destroy();
      ours.client.destroy();
      await new Promise<void>((ok) => {
        bare.server.close(() => ok());
        bare.server.closeAllConnections();
      });
    }
  } finally {
    await region.close();
  }
}

// ── 2. CreateHsm → ACTIVE ─────────────────────────────────────────────────────────────────────

/** A P-256 signing key pair, then AES-256 keys until the HSM holds OBJECTS token objects. */
async function populate(sdk: Cluster): Promise<{ signHandle: number; seconds: number }> {
  const start = performance.now();
  const pair = await sdk.generateKeyPair({ curve: 'P-256', label: 'bench-sign' });
  let next = 0;
  const aes = OBJECTS - 2;
  const worker = async (): Promise<void> => {
    while (next < aes) {
      const i = next++;
      await sdk.generateKey({ type: 'AES', bits: 256, label: `bench-aes-${i}` });
    }
  };
  await Promise.all(Array.from({ length: POPULATE_IN_FLIGHT }, worker));
  return { signHandle: Number(pair.privateKey.handle), seconds: (performance.now() - start) / 1000 };
}

async function deviceOf(region: Region, hsmId: string): Promise<FleetDevice> {
  return (await region.service.repository.hsm(hsmId))?.doc.device ?? fail(`HSM ${hsmId} has no device`);
}

interface CreateResult {
  readonly createS: number[];
  readonly anchorS: number[];
  readonly provisionS: number[];
  readonly populateS: number;
  readonly blobBytes: number;
}

/** The clone through the management client alone: backup of the healthy HSM to a file, restored into a blank device. */
async function manualClone(env: Environment, cluster: ActiveCluster, healthy: FleetDevice, round: number): Promise<{ seconds: number; provisionS: number; bytes: number }> {
  const p0 = performance.now();
  const blank = await env.fleet.provision({ clusterId: cluster.clusterId, hsmId: `hsm-benchanchor${round}`, dataPlanePort: 0, mode: 'NON_FIPS' });
  const provisionS = (performance.now() - p0) / 1000;
  const path = join(env.dir, `anchor-${round}.backup`);
  try {
    const start = performance.now();
    const { bytes } = await env.fleet.management(healthy).backupToFile(path, cluster.clusterId);
    const restored = await env.fleet.management(blank).restoreFromFile(path);
    const seconds = (performance.now() - start) / 1000;
    const health = await env.fleet.management(blank).health();
    if (restored.objects < OBJECTS || health.tokenObjects !== OBJECTS) fail(`the manual clone holds ${health.tokenObjects} token objects`);
    return { seconds, provisionS, bytes };
  } finally {
    rmSync(path, { force: true });
    await env.fleet.release(blank);
  }
}

/** CreateHsm through the API, timed until DescribeClusters shows the new HSM ACTIVE; then it is deleted again. */
async function createHsmRound(e: Environment, region: Region, cluster: ActiveCluster): Promise<number> {
  const start = performance.now();
  const created = await region.api.send(new CreateHsmCommand({ ClusterId: cluster.clusterId, AvailabilityZone: `${REGION}b` }));
  const hsmId = created.Hsm?.HsmId ?? fail('CreateHsm returned no HSM');
  await waitFor(region, cluster.clusterId, (c) => c.Hsms?.some((h) => h.HsmId === hsmId && h.State === 'ACTIVE') === true);
  const seconds = (performance.now() - start) / 1000;
  await region.service.orchestrator.settled();
  const health = await e.fleet.management(await deviceOf(region, hsmId)).health();
  if (health.tokenObjects !== OBJECTS) fail(`the new HSM holds ${health.tokenObjects} token objects`);
  await region.api.send(new DeleteHsmCommand({ ClusterId: cluster.clusterId, HsmId: hsmId }));
  await waitFor(region, cluster.clusterId, (c) => c.Hsms?.every((h) => h.HsmId !== hsmId) === true);
  await region.service.orchestrator.settled();
  return seconds;
}

async function createHsm(e: Environment, region: Region, cluster: ActiveCluster): Promise<CreateResult & { signHandle: number }> {
  const one = await describe(region.api, cluster.clusterId);
  const sdk = await connect(region, cluster, one.Hsms);
  let populated: { signHandle: number; seconds: number };
  try {
    populated = await populate(sdk);
  } finally {
    await sdk.close();
  }
  const healthy = await deviceOf(region, cluster.hsmId);
  const health = await e.fleet.management(healthy).health();
  if (health.tokenObjects !== OBJECTS) fail(`the HSM holds ${health.tokenObjects} token objects, not ${OBJECTS}`);
  await region.service.orchestrator.settled();
  const result = { createS: [] as number[], anchorS: [] as number[], provisionS: [] as number[], populateS: populated.seconds, blobBytes: 0, signHandle: populated.signHandle };
  for (let r = 0; r < CREATE_ROUNDS; r++) {
    const anchorFirst = r % 2 === 0;
    if (anchorFirst) {
      const a = await manualClone(e, cluster, healthy, r);
      result.anchorS.push(a.seconds);
      result.provisionS.push(a.provisionS);
      result.blobBytes = a.bytes;
    }
    result.createS.push(await createHsmRound(e, region, cluster));
    if (!anchorFirst) {
      const a = await manualClone(e, cluster, healthy, r);
      result.anchorS.push(a.seconds);
      result.provisionS.push(a.provisionS);
      result.blobBytes = a.bytes;
    }
  }
  return result;
}

// ── 3. SIGKILL → replacement ACTIVE ───────────────────────────────────────────────────────────

interface ReplaceResult {
  readonly killToDegradedS: number;
  readonly killToActiveS: number;
  /** From the replacement ACTIVE until the SDK's link to its address is up again; undefined: not within the wait. */
  readonly activeToSdkUpS: number | undefined;
  readonly sdkDownAfterKillS: number | undefined;
  readonly sdkErrors: readonly string[];
  readonly ok: number;
  readonly okDuringOutage: number;
  readonly failed: number;
  readonly failures: ReadonlyMap<string, number>;
  readonly firstFailureS: number | undefined;
  readonly lastFailureS: number | undefined;
  readonly failedProbesAtKill: number;
  readonly probeFailuresBeforeKill: number;
  readonly nodesUpAfter: string;
}

/** The pid of a local fleet device, from the fleet's own file (docs/fleet.md "Persistence"). */
function pidOf(e: Environment, deviceId: string): number {
  const file = JSON.parse(readFileSync(join(e.dir, 'fleet', LOCAL_FLEET_FILE), 'utf8')) as { devices: { deviceId: string; pid: number }[] };
  const pid = file.devices.find((d) => d.deviceId === deviceId)?.pid;
  if (pid === undefined || pid <= 0) fail(`no pid for device ${deviceId}`);
  return pid;
}

/** `hsm.probe.failed` events of the service log (pino lines, `time` in ms) since `sinceMs` and before `untilMs`. */
function probeFailures(region: Region, sinceMs: number, untilMs: number): number {
  let n = 0;
  for (const line of readFileSync(region.logPath, 'utf8').split('\n')) {
    if (!line.includes('hsm.probe.failed')) continue;
    const t = (JSON.parse(line) as { time: number }).time;
    if (t >= sinceMs && t < untilMs) n++;
  }
  return n;
}

/** A second HSM (cloned after the signing key was made: both hold it under the same handle), then REPLACE_ROUNDS kills, alternating HSMs. */
async function replace(e: Environment, region: Region, cluster: ActiveCluster, signHandle: number): Promise<ReplaceResult[]> {
  await region.api.send(new CreateHsmCommand({ ClusterId: cluster.clusterId, AvailabilityZone: `${REGION}b` }));
  await waitFor(region, cluster.clusterId, (c) => c.State === 'ACTIVE' && c.Hsms?.length === 2 && c.Hsms.every((h) => h.State === 'ACTIVE'));
  const rounds: ReplaceResult[] = [];
  for (let r = 0; r < REPLACE_ROUNDS; r++) rounds.push(await replaceRound(e, region, cluster, signHandle, r % 2));
  return rounds;
}

/** One kill of the HSM at `victim` (index in DescribeClusters) under signing load, until the SDK is back on its replacement. */
async function replaceRound(e: Environment, region: Region, cluster: ActiveCluster, signHandle: number, victim: number): Promise<ReplaceResult> {
  const two = await waitFor(region, cluster.clusterId, (c) => c.State === 'ACTIVE' && c.Hsms?.length === 2 && c.Hsms.every((h) => h.State === 'ACTIVE'));
  await region.service.orchestrator.settled();
  const victimId = two.Hsms?.[victim]?.HsmId ?? fail('no HSM');
  const victimIp = two.Hsms?.[victim]?.EniIp ?? fail('no address');
  const sdk = await connect(region, cluster, two.Hsms);
  const key = sdk.key(signHandle);
  let stop = false;
  let ok = 0;
  let failed = 0;
  let killedAt = 0;
  const failureTimes: number[] = [];
  const failures = new Map<string, number>();
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        await key.sign(DATA_64, { mechanism: 'CKM_ECDSA_SHA256' });
        ok++;
      } catch (err) {
        failed++;
        failureTimes.push(performance.now());
        const code = (err as { code?: string }).code ?? (err as Error).name;
        failures.set(code, (failures.get(code) ?? 0) + 1);
        await sleep(FAILED_CALL_PAUSE_MS);
      }
    }
  };
  const victimLink = (): NodeSnapshot => sdk.nodes.find((n) => n.endpoint.host === victimIp) ?? fail('no SDK link to the victim');
  const loadStartMs = Date.now();
  const workers = Promise.all(Array.from({ length: SIGN_IN_FLIGHT }, worker));
  let degradedAt = 0;
  let activeAt = 0;
  let sdkDownAt = 0;
  let sdkUpAt = 0;
  let okAtKill = 0;
  let okAtActive = 0;
  let killedAtMs = 0;
  let failedProbesAtKill = 0;
  const sdkErrors = new Set<string>();
  try {
    await sleep(SIGN_SETTLE_MS);
    if (failed > 0) fail(`${failed} signing calls failed before the kill`);
    const before = (await region.service.repository.hsm(victimId))?.doc ?? fail('no HSM document');
    failedProbesAtKill = before.failedProbes;
    const pid = pidOf(e, (before.device ?? fail('no device')).deviceId);
    okAtKill = ok;
    killedAtMs = Date.now();
    killedAt = performance.now();
    process.kill(pid, 'SIGKILL');
    for (;;) {
      const doc = (await region.service.repository.hsm(victimId))?.doc ?? fail('the HSM document is gone');
      const link = victimLink();
      const now = performance.now();
      if (link.lastError !== undefined) sdkErrors.add(link.lastError.code);
      if (sdkDownAt === 0 && link.state !== 'up') sdkDownAt = now;
      if (degradedAt === 0 && doc.state === 'DEGRADED') degradedAt = now;
      if (activeAt === 0 && doc.state === 'ACTIVE' && doc.replacements > before.replacements) {
        activeAt = now;
        okAtActive = ok;
      }
      if (activeAt !== 0 && sdkDownAt !== 0 && link.state === 'up') sdkUpAt = now;
      if (sdkUpAt !== 0 || (activeAt !== 0 && now - activeAt > SDK_BACK_WAIT_MS)) break;
      if (now - killedAt > 10 * 60_000) fail('no replacement within 10 minutes');
      await sleep(POLL_MS);
    }
    await sleep(SIGN_SETTLE_MS);
  } finally {
    stop = true;
    await workers;
  }
  const status = await sdk.status();
  await sdk.close();
  const after = await describe(region.api, cluster.clusterId);
  if (after.Hsms?.find((h) => h.HsmId === victimId)?.EniIp !== victimIp) fail('the replacement is not at the same address');
  const since = (t: number | undefined): number | undefined => (t === undefined ? undefined : (t - killedAt) / 1000);
  return {
    killToDegradedS: (degradedAt - killedAt) / 1000, killToActiveS: (activeAt - killedAt) / 1000,
    activeToSdkUpS: sdkUpAt === 0 ? undefined : (sdkUpAt - activeAt) / 1000, sdkDownAfterKillS: sdkDownAt === 0 ? undefined : (sdkDownAt - killedAt) / 1000, sdkErrors: [...sdkErrors],
    ok, okDuringOutage: okAtActive - okAtKill, failed, failures,
    firstFailureS: since(failureTimes[0]), lastFailureS: since(failureTimes[failureTimes.length - 1]),
    failedProbesAtKill, probeFailuresBeforeKill: probeFailures(region, loadStartMs, killedAtMs),
    nodesUpAfter: status.map((s) => `${s.endpoint.host}: ${'status' in s ? 'up' : `down (${s.error.code})`}`).join(', '),
  };
}

// ── the section ───────────────────────────────────────────────────────────────────────────────

export async function run(): Promise<Section> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-control-bench-'));
  const e = await environment(dir);
  try {
    const described = await describeClusters(e);
    const region = await startRegion(e, 'clusters', { probeIntervalMs: PROBE_INTERVAL_MS, orchestrate: true });
    try {
      const cluster = await activeCluster(region);
      const created = await createHsm(e, region, cluster);
      const replaced = await replace(e, region, cluster, created.signHandle);
      return section(described, created, replaced);
    } finally {
      await region.close();
    }
  } finally {
    await e.fleet.close({ stopDevices: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

const verdict = (target: string, met: boolean): string => `${target}: ${met ? 'met' : 'not met'}`;
const list = (xs: readonly number[]): string => xs.map((x) => x.toFixed(2)).join(', ');

/** The rounds of figure 3 as one: medians of the times, sums of the calls. */
function replaceSummary(rs: readonly ReplaceResult[]): { killToActiveS: number; killToDegradedS: number; activeToSdkUpS: number | undefined; sdkNotBack: number; failed: number; ok: number; okDuringOutage: number } {
  const back = rs.map((r) => r.activeToSdkUpS).filter((x): x is number => x !== undefined);
  return {
    killToActiveS: median(rs.map((r) => r.killToActiveS)), killToDegradedS: median(rs.map((r) => r.killToDegradedS)),
    activeToSdkUpS: back.length === 0 ? undefined : median(back), sdkNotBack: rs.length - back.length,
    failed: rs.reduce((a, r) => a + r.failed, 0), ok: rs.reduce((a, r) => a + r.ok, 0), okDuringOutage: rs.reduce((a, r) => a + r.okDuringOutage, 0),
  };
}

function roundNote(r: ReplaceResult, i: number): string {
  const failures = [...r.failures].map(([code, n]) => `${code} × ${n}`).join(', ');
  const back = r.activeToSdkUpS === undefined ? `not back within ${SDK_BACK_WAIT_MS / 1000} s` : `back ${r.activeToSdkUpS.toFixed(2)} s after it`;
  return `Round ${i + 1}: DEGRADED ${r.killToDegradedS.toFixed(2)} s, replacement ACTIVE ${r.killToActiveS.toFixed(2)} s after the kill, SDK ${back}; `
    + `${r.ok.toLocaleString('en-US')} calls succeeded (${r.okDuringOutage.toLocaleString('en-US')} between the kill and ACTIVE), ${r.failed} failed${r.failed > 0 ? ` (${failures}; first ${r.firstFailureS?.toFixed(2) ?? '?'} s, last ${r.lastFailureS?.toFixed(2) ?? '?'} s after the kill)` : ''}; `
    + `the SDK's link left "up" ${r.sdkDownAfterKillS === undefined ? 'never' : `${r.sdkDownAfterKillS.toFixed(2)} s after the kill`}, errors it recorded: ${r.sdkErrors.length === 0 ? 'none' : r.sdkErrors.join(', ')}; `
    + `failed probes on record at the kill ${r.failedProbesAtKill}, logged in the ${SIGN_SETTLE_MS / 1000} s of signing before it ${r.probeFailuresBeforeKill}; SDK node status at the end: ${r.nodesUpAfter}.`;
}

function section(d: DescribeResult, c: CreateResult, rounds: readonly ReplaceResult[]): Section {
  const createS = median(c.createS);
  const r = replaceSummary(rounds);
  const untrusted = rounds.some((x) => x.sdkErrors.includes('COFFER_NODE_UNTRUSTED'));
  const of = `median of ${rounds.length} kills`;
  return {
    title: 'Control plane (CloudHSMv2 API, orchestrator, local fleet)',
    rows: [
      ...d.rows,
      {
        name: `CreateHsm → HSM ACTIVE, cluster of 1 HSM with ${OBJECTS.toLocaleString('en-US')} token objects`, value: createS, unit: 's',
        anchorName: 'backup → file → restore into a blank device, management client alone', anchorValue: median(c.anchorS), target: verdict(`< ${CREATE_TARGET_S} s`, createS < CREATE_TARGET_S),
      },
      { name: 'provisioning a blank device (local fleet: process start, attestation check)', value: median(c.provisionS), unit: 's' },
      {
        name: `SIGKILL of one HSM's process (2-HSM cluster) → replacement ACTIVE, ${SIGN_IN_FLIGHT} SDK sign calls in flight (${of})`, value: r.killToActiveS, unit: 's',
        anchorName: 'CreateHsm → ACTIVE (median above)', anchorValue: createS, target: verdict(`< ${REPLACE_TARGET_S} s (10 s + probe interval)`, r.killToActiveS < REPLACE_TARGET_S),
      },
      { name: `SIGKILL → HSM DEGRADED (failure detected, replacement starts; ${of})`, value: r.killToDegradedS, unit: 's', anchorName: `${FAILED_PROBES_MAX} probe intervals`, anchorValue: (FAILED_PROBES_MAX * PROBE_INTERVAL_MS) / 1000 },
      {
        name: `replacement ACTIVE → the SDK's link to its address up again (signing on it; median of the ${rounds.length - r.sdkNotBack} kills it came back within ${SDK_BACK_WAIT_MS / 1000} s${r.sdkNotBack > 0 ? `, ${r.sdkNotBack} did not` : ''})`,
        value: r.activeToSdkUpS ?? NaN, unit: 's', anchorName: 'the SDK\'s slowest re-probe (CLIENT_PROBE_BACKOFF_MAX_MS)', anchorValue: CLIENT_PROBE_BACKOFF_MAX_MS / 1000,
      },
      {
        name: `failed client signing calls over ${rounds.length} kills, each from ${SIGN_SETTLE_MS / 1000} s before the SIGKILL to ${SIGN_SETTLE_MS / 1000} s after the SDK is back on the replacement`,
        value: r.failed, unit: 'calls', target: verdict('0', r.failed === 0),
      },
    ],
    notes: [
      ...d.notes,
      `Region as \`coffer up\` assembles one: startService (SQLite metadata, filesystem archive, local fleet of \`coffer hsm serve\` processes on 127.0.0.N, development authorities), orchestrator running with probeIntervalMs = ${PROBE_INTERVAL_MS} ms (default 2,000 ms); FAILED_PROBES_MAX = ${FAILED_PROBES_MAX} (src/service/config.ts). The cluster was made through the API as a customer does (CreateCluster, CreateHsm, CSR signed by a development customer CA, InitializeCluster, Cluster.activate, a crypto user).`,
      `Population through the SDK: one P-256 key pair (the signing key, made first) and ${(OBJECTS - 2).toLocaleString('en-US')} AES-256 token keys, generateKey with ${POPULATE_IN_FLIGHT} in flight, in ${c.populateS.toFixed(1)} s; the HSM then reported ${OBJECTS.toLocaleString('en-US')} token objects. A sealed backup of it is ${(c.blobBytes / 1e6).toFixed(2)} MB.`,
      `CreateHsm → ACTIVE: from sending CreateHsm through the SDK until DescribeClusters (polled every ${POLL_MS} ms) shows the new HSM ACTIVE. It includes waiting for the next orchestrator tick (0–${PROBE_INTERVAL_MS} ms), provisioning a device (process start, attestation), a fresh backup of the healthy HSM, its provenance check and archiving, reading it back, its check again and the restore. Each new HSM was checked to hold ${OBJECTS.toLocaleString('en-US')} token objects, then deleted (DeleteHsm, which backs up first) before the next round. ${CREATE_ROUNDS} rounds, median; rounds: ${list(c.createS)} s.`,
      `Anchor: the healthy HSM's ManagementClient.backupToFile to a local file, then ManagementClient.restoreFromFile into a blank device the fleet provisioned just before (provisioning not timed: it is its own row), interleaved with the CreateHsm rounds; rounds: ${list(c.anchorS)} s. The difference is the control plane's: tick wait, provisioning, provenance checks, archive put/get, metadata writes, polling granularity; without provisioning (its median, the row below) it is ${(createS - median(c.anchorS) - median(c.provisionS)).toFixed(2)} s (difference of medians, not a measured figure).`,
      `SIGKILL → replacement ACTIVE: one HSM's process killed with SIGKILL (pid from the fleet's fleet.json; the first HSM, then the second, then the first again) while ${SIGN_IN_FLIGHT} workers sign (CKM_ECDSA_SHA256, 64 B) through one Cluster connected to both HSMs (default settings, a new Cluster per kill); timed until the HSM's document is ACTIVE with its replacement count raised (polled every ${POLL_MS} ms), which is what DescribeClusters shows. Detection needs ${FAILED_PROBES_MAX} failed probes, one per tick of ${PROBE_INTERVAL_MS} ms: up to about ${FAILED_PROBES_MAX} intervals after the kill, fewer when a tick already under way at the kill makes the first failed probe. The replacement (same HSM id and address) is then provisioned and restored from a fresh backup of the other HSM. Signing goes on until the SDK's link to the HSM's address is up again (or ${SDK_BACK_WAIT_MS / 1000} s after ACTIVE), then ${SIGN_SETTLE_MS / 1000} s more. A worker whose call fails waits ${FAILED_CALL_PAUSE_MS} ms before its next call.`,
      `Signing over the ${rounds.length} kills: ${r.ok.toLocaleString('en-US')} calls succeeded, ${r.okDuringOutage.toLocaleString('en-US')} of them between a kill and its replacement ACTIVE; ${r.failed} failed.`,
      ...rounds.map(roundNote),
      ...(untrusted
        ? ['COFFER_NODE_UNTRUSTED above: the replacement device listens on the HSM\'s address and data-plane port from its provisioning on, before the restore gives it the cluster\'s certificate; an SDK re-probe landing in that window sees a node the customer CA does not vouch for and tries again with its normal backoff (100 ms doubling), so it is back shortly after the restore.']
        : []),
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(renderMarkdown([await run()], '# Control plane bench (alone)'));
