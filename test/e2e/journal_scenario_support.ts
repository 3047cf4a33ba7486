// Test support for the seeded cluster-journal scenario (not a test file): a `coffer up --cluster 3`
// region that a test can disrupt — one HSM process SIGKILLed (the orchestrator replaces it), the
// `coffer up` process SIGKILLed and started again on the same data directory (its HSM processes,
// detached, keep running and are reattached) — and read without side effects: the cluster through
// the CloudHSMv2 API, every HSM's journal head, fault and state digest through its management
// interface (health: no login, so reading it is not itself a journaled change).
// Also the scenario's bookkeeping: the seed, and what a failed state change's error code says of
// its outcome (docs/sdk.md "Acknowledgements", docs/journal-format.md).

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CloudHSMV2Client, DescribeClustersCommand, type Cluster as ApiCluster } from '@aws-sdk/client-cloudhsm-v2';
import { isCofferError } from '../../src/errors.js';
import { ManagementClient, type NodeHealth } from '../../src/management/client.js';
import { mulberry32 } from '../helpers.js';
import { devicePids } from './service_support.js';
import { UP_WAIT_MS, startUp, type UpReady } from './up_support.js';

export const SEED_VARIABLE = 'COFFER_SCENARIO_SEED';
const REGION = 'us-east-1';
const POLL_MS = 500;

/** The scenario's seed: COFFER_SCENARIO_SEED, or a fresh one; printed either way so a run replays. */
export function scenarioSeed(): { seed: number; rand: () => number } {
  const given = process.env[SEED_VARIABLE];
  const seed = given === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(given);
  assert.ok(Number.isSafeInteger(seed) && seed >= 0, `${SEED_VARIABLE} must be a non-negative integer`);
  console.log(`seed=${seed} (${SEED_VARIABLE}=${seed} replays the random draws; the processes' timing does not replay)`);
  return { seed, rand: mulberry32(seed) };
}

/** What a state change's failure says of it. */
export type Outcome =
  /** Applied and acknowledged by k HSMs (the call returned). */
  | 'done'
  /** In the journal all the same (COFFER_ACKS_NOT_MET): present on every HSM at the end. */
  | 'in-journal'
  /** Certainly not in the journal: withdrawn (COFFER_JOURNAL_NOT_APPENDED) or refused before it was decided. */
  | 'absent'
  /** Wholly present or wholly absent (COFFER_JOURNAL_OUTCOME_UNKNOWN, a lost connection …). */
  | 'unknown';

const IN_JOURNAL = new Set(['COFFER_ACKS_NOT_MET']);
/** Refused before or while deciding: nothing of it in the journal (docs/errors.md). A user change
 * refused COFFER_USER_NOT_FOUND is a primary that took over and has not applied the user's creation
 * yet (acknowledged by k = 2 others): user changes are not routed by journal position as keys are
 * (docs/sdk.md "Which HSM serves a key"); the end checks that the user is there all the same. */
const ABSENT = new Set([
  'COFFER_JOURNAL_NOT_APPENDED', 'COFFER_NODE_BUSY', 'COFFER_KEY_UNAVAILABLE', 'COFFER_QUORUM_TOKEN_INVALID', 'COFFER_QUORUM_REQUIRED', 'COFFER_USER_NOT_FOUND',
]);
/** The call may have reached an HSM and its answer was lost or late. */
const UNKNOWN = new Set(['COFFER_JOURNAL_OUTCOME_UNKNOWN', 'COFFER_CONNECTION_LOST', 'COFFER_REQUEST_TIMEOUT', 'COFFER_CLUSTER_UNAVAILABLE']);

/**
 * The outcome a failed state change's error names, and whether the error is one an honest cluster
 * under these disruptions can give at all (a fork, a halted journal, a typed refusal of a change the
 * model says is valid: not expected, reported by the test).
 */
export function outcomeOf(e: unknown): { outcome: Outcome; code: string; expected: boolean } {
  if (!isCofferError(e)) return { outcome: 'unknown', code: String(e), expected: false };
  if (IN_JOURNAL.has(e.code)) return { outcome: 'in-journal', code: e.code, expected: true };
  if (ABSENT.has(e.code)) return { outcome: 'absent', code: e.code, expected: true };
  return { outcome: 'unknown', code: e.code, expected: UNKNOWN.has(e.code) };
}

interface ServiceFile {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

interface FleetRecord {
  readonly state: string;
  readonly serial: string;
  readonly host: string;
  readonly managementPort: number;
  readonly clusterId: string;
}

/** An HSM's health, with the address it serves the data plane on. */
export type HsmHealth = NodeHealth & { readonly host: string };

/** A `coffer up --cluster n` region on `dir` that the test starts, disrupts and restarts. */
export class ScenarioRegion {
  readonly dir: string;
  readonly #args: readonly string[];
  readonly #track: (proc: ChildProcess) => void;
  #proc: ChildProcess | undefined;
  #ready: UpReady | undefined;

  /** `track` hears every `coffer up` process started, so the test's teardown can stop the last one. */
  constructor(dir: string, args: readonly string[], track: (proc: ChildProcess) => void) {
    this.dir = dir;
    this.#args = ['--data-dir', dir, ...args];
    this.#track = track;
  }

  async start(): Promise<UpReady> {
    this.#ready = await startUp(this.#args, (proc) => {
      this.#proc = proc;
      this.#track(proc);
    });
    return this.#ready;
  }

  /** SIGKILLs `coffer up`; its HSM processes run on (`start` again reattaches them). */
  async killService(): Promise<void> {
    const proc = this.#proc;
    assert.ok(proc !== undefined && proc.exitCode === null && proc.signalCode === null, 'coffer up is running');
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  /** The pid of the HSM process serving the data plane on `host`. */
  hsmPid(host: string): number {
    const found = [...devicePids(join(this.dir, 'regions'))].filter(([, cmd]) => cmd.split('\0').includes(host));
    assert.equal(found.length, 1, `one HSM process at ${host}`);
    return (found[0] as [number, string])[0];
  }

  async describe(): Promise<ApiCluster> {
    const endpoint = this.#ready?.regions[0]?.endpoint ?? assert.fail('coffer up is ready');
    const key = JSON.parse(readFileSync(join(this.dir, 'service.json'), 'utf8')) as ServiceFile;
    const api = new CloudHSMV2Client({ endpoint, region: REGION, credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey } });
    try {
      const out = await api.send(new DescribeClustersCommand({}));
      return out.Clusters?.[0] ?? assert.fail('one cluster listed');
    } finally {
      api.destroy();
    }
  }

  /** Every HSM of the cluster the fleet has ready, by its health (a fresh verified client each). */
  async healths(): Promise<HsmHealth[]> {
    const roots = {
      certificatePem: readFileSync(join(this.dir, 'management-client.pem'), 'utf8'),
      keyPem: readFileSync(join(this.dir, 'management-client.key'), 'utf8'),
      manufacturerRootPem: readFileSync(join(this.dir, 'manufacturer-root.pem'), 'utf8'),
      operatorRootPem: readFileSync(join(this.dir, 'operator-root.pem'), 'utf8'),
    };
    const fleet = JSON.parse(readFileSync(join(this.dir, 'regions', REGION, 'fleet', 'fleet.json'), 'utf8')) as { devices: FleetRecord[] };
    const ready = fleet.devices.filter((d) => d.state === 'ready').sort((a, b) => a.host.localeCompare(b.host));
    return Promise.all(ready.map(async (d) => {
      const client = new ManagementClient({ host: d.host, port: d.managementPort, ...roots, expectedSerial: d.serial });
      return { ...(await client.health({ digest: true })), host: d.host };
    }));
  }

  /** The files under the region directories (metadata store, archive, logs, the HSMs' data) that
   * hold one of `secrets` as UTF-8, each named with the secret's index. */
  filesHolding(secrets: readonly string[]): string[] {
    const found: string[] = [];
    for (const entry of readdirSync(join(this.dir, 'regions'), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch (e) {
        if ((e as { code?: unknown }).code === 'ENOENT') continue; // a spool file gone meanwhile
        throw e;
      }
      secrets.forEach((secret, i) => {
        if (bytes.includes(secret)) found.push(`${path}: secret ${i}`);
      });
    }
    return found;
  }

  /** Polls `check` until it holds; `what` names it if the generous bound passes first. */
  async until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + UP_WAIT_MS;
    let last = '';
    for (;;) {
      try {
        const value = await check();
        if (value !== undefined) return value;
      } catch (e) {
        last = String(e); // a process starting or restarting: asked again
      }
      if (Date.now() > deadline) assert.fail(`${what}: not in time ${last}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Waits until the cluster and its `hsms` HSMs are ACTIVE and every HSM holds one head, without a
   * fault; returns their healths. */
  async settled(hsms: number): Promise<HsmHealth[]> {
    return this.until('one head on every ACTIVE HSM', async () => {
      const c = await this.describe();
      if (c.State !== 'ACTIVE' || c.Hsms?.length !== hsms || !c.Hsms.every((h) => h.State === 'ACTIVE')) return undefined;
      const all = await this.healths();
      if (all.length !== hsms || all.some((h) => h.journalFault !== null)) return undefined;
      const first = all[0] as HsmHealth;
      const one = all.every((h) => h.journalPosition === first.journalPosition && h.journalHeadHash === first.journalHeadHash);
      return one ? all : undefined;
    });
  }
}

/** A number that only grows, and promises that resolve when it reaches a value: the scenario's
 * phases and step counts are waited on as events, not polled. */
export class Milestones {
  #value = 0;
  readonly #waiters: { readonly at: number; readonly resolve: () => void }[] = [];

  get value(): number {
    return this.#value;
  }

  /** Moves to `value` (never back), waking whoever waits for it or less. */
  set(value: number): void {
    this.#value = Math.max(this.#value, value);
    for (const w of this.#waiters.filter((x) => x.at <= this.#value)) {
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve();
    }
  }

  reached(at: number): Promise<void> {
    if (this.#value >= at) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ at, resolve }));
  }
}
