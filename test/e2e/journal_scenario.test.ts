// Seeded randomised scenario of one logical HSM (docs/journal-format.md "Test coverage"): `coffer
// up --cluster 3` — a real service relaying the journal and three real HSM processes — and several
// concurrent SDK clients, each with a different HSM as its primary, making random state changes
// with k = 2: keys generated, renamed and destroyed; users created, deleted, given new passwords,
// locked by failed logins through one HSM and unlocked or left locked (each admin client ends by
// leaving one locked); the admin quorum value raised and, with a token two admins approved, lowered
// again. Meanwhile one HSM process is SIGKILLed (the orchestrator replaces it and
// catches it up) and then the `coffer up` process is SIGKILLed and started again on its directory
// (the HSM processes run on, reattached). At the end every HSM is ACTIVE at one journal head with
// one state digest, every change the SDK acknowledged is there through every HSM, a change that
// failed COFFER_ACKS_NOT_MET is there too (it is in the journal), one that failed
// COFFER_JOURNAL_NOT_APPENDED is nowhere, and one of unknown outcome is wholly there or wholly absent,
// the same on every HSM, and no password is in the clear in any file of the region.
// The seed is printed (`seed=<n>`); COFFER_SCENARIO_SEED=<n> replays the random draws (the HSM
// killed, each client's sequence of choices, names and passwords). How many steps a disruption
// spans and how each change ends depend on the processes' timing, which does not replay, so a replay
// follows the same path only as far as the timing agrees.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../src/client/cluster.js';
import { loadClusterConfig } from '../../src/client/discovery.js';
import type { Key } from '../../src/client/keys.js';
import type { Endpoint } from '../../src/client/node_link.js';
import { isCofferError } from '../../src/errors.js';
import { mulberry32 } from '../helpers.js';
import { freePort } from '../service/fleet/fleet_support.js';
import { Milestones, ScenarioRegion, outcomeOf, scenarioSeed, type HsmHealth, type Outcome } from './journal_scenario_support.js';
import { stopUp } from './up_support.js';

const ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
/** The scenario's phases: before the kill, until the killed HSM is replaced, until the restarted
 * service is back, after. */
const BEFORE = 0;
const REPLACING = 1;
const RESTARTING = 2;
const AFTER = 3;
/** Steps each worker makes in each phase, at most (a disruption phase ends when it is over). */
const STEPS_PER_PHASE = [3, 6, 6, 3];
/** While a disruption lasts, a worker waits up to this long between steps (less if it ends), so that
 * its steps spread over the disruption instead of all landing at its start. */
const DISRUPTED_PACE_MS = 1_000;
/** The password the lockout steps try: a secret like any other, never to be logged. */
const WRONG_PASSWORD = `wrong-${randomBytes(9).toString('hex')}`;
/** How long a lockout step waits for its HSM to apply the user's creation (a down HSM may never). */
const APPLIED_WAIT_MS = 60_000;
/** Failed logins that lock a user (docs/device.md "Users"). */
const LOCKOUT_FAILURES = 5;

const dir = mkdtempSync(join(tmpdir(), 'coffer-scenario-'));
let child: ChildProcess | undefined;
const clients: Cluster[] = [];
after(() => stopUp(child, clients, dir));

interface ClusterFile {
  readonly admin: { readonly name: string; readonly password: string };
  readonly cryptoUser: { readonly name: string; readonly password: string };
}

/** A key's possible end state: absent, or under `label` (and `handle`, when the client learned it). */
type KeyState = 'absent' | { readonly label: string; readonly handle?: number };

interface KeyModel {
  readonly labels: string[];
  allowed: KeyState[];
  /** Known exactly (its last change acknowledged or refused): the worker may change it again. */
  touchable: boolean;
  readonly key?: Key;
}

interface UserModel {
  readonly name: string;
  exists: boolean[];
  /** The passwords it may have (newest first), while it exists. */
  passwords: string[];
  locked: boolean[];
  touchable: boolean;
  /** The journal entry that created it, when the creation was acknowledged. */
  readonly createdAt?: bigint;
}

interface Scenario {
  readonly config: { readonly endpoints: readonly Endpoint[]; readonly ca: string };
  readonly file: ClusterFile;
  readonly keys: KeyModel[];
  readonly users: UserModel[];
  quorum: number[];
  quorumKeys: ReadonlyMap<string, KeyObject>;
  readonly steps: Milestones;
  readonly phase: Milestones;
  readonly outcomes: Map<string, number>;
  readonly unexpected: string[];
  /** Every password the scenario set or tried: none may be stored or logged in the clear. */
  readonly secrets: string[];
}

interface Worker {
  readonly name: string;
  readonly client: Cluster;
  readonly rand: () => number;
  readonly s: Scenario;
}

const pickOf = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
const union = <T>(a: readonly T[], b: readonly T[]): T[] => [...new Set([...a, ...b])];

/** Runs one state change and says what its result tells of it; counts it. */
async function attempt(s: Scenario, kind: string, fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
    s.outcomes.set(`${kind} done`, (s.outcomes.get(`${kind} done`) ?? 0) + 1);
    return 'done';
  } catch (e) {
    const o = outcomeOf(e);
    s.outcomes.set(`${kind} ${o.code}`, (s.outcomes.get(`${kind} ${o.code}`) ?? 0) + 1);
    if (!o.expected) s.unexpected.push(`${kind}: ${o.code} ${isCofferError(e) ? JSON.stringify(e.detail) : ''}`);
    return o.outcome;
  }
}

/** The new allowed states after a change from `before` to `after` whose outcome is `o`. */
function next<T>(o: Outcome, before: T[], after: T[]): { allowed: T[]; known: boolean } {
  if (o === 'done' || o === 'in-journal') return { allowed: after, known: true };
  if (o === 'absent') return { allowed: before, known: true };
  return { allowed: union(before, after), known: false };
}

// ── crypto-user workers: keys ──────────────────────────────────────────────────────────────────

async function keyStep(w: Worker, n: number): Promise<void> {
  const live = w.s.keys.filter((k) => k.touchable && k.key !== undefined && k.allowed.length === 1 && k.allowed[0] !== 'absent' && k.labels[0]?.startsWith(`${w.name}-`));
  const pick = w.rand();
  if (pick < 0.45 || live.length === 0) {
    const label = `${w.name}-${n}`;
    let made: Key | undefined;
    const o = await attempt(w.s, 'generate', async () => (made = await w.client.generateKey({ type: 'AES', bits: 256, label })));
    const state: KeyState = made === undefined ? { label } : { label, handle: made.handle };
    const { allowed } = next<KeyState>(o, ['absent'], [state]);
    w.s.keys.push({ labels: [label], allowed, touchable: o === 'done', ...(made === undefined ? {} : { key: made }) });
    return;
  }
  const k = pickOf(w.rand, live);
  const current = k.allowed[0] as { label: string; handle: number };
  if (pick < 0.75) {
    const label = `${k.labels[0] as string}.r${n}`;
    k.labels.push(label);
    const o = await attempt(w.s, 'rename', () => (k.key as Key).setAttribute('label', label));
    const r = next<KeyState>(o, [current], [{ label, handle: current.handle }]);
    [k.allowed, k.touchable] = [r.allowed, r.known];
  } else {
    const o = await attempt(w.s, 'destroy', () => (k.key as Key).destroy());
    const r = next<KeyState>(o, [current], ['absent']);
    [k.allowed, k.touchable] = [r.allowed, r.known && r.allowed[0] !== 'absent'];
  }
}

// ── admin workers: users, lockout, quorum ───────────────────────────────────────────────────────

async function userStep(w: Worker, n: number): Promise<void> {
  const live = w.s.users.filter((u) => u.touchable && u.name.startsWith(`${w.name}-`) && u.exists.length === 1 && u.exists[0] === true);
  const pick = w.rand();
  if (pick < 0.3 || live.length === 0) {
    const name = `${w.name}-${n}`;
    const password = `${name}-${randomPassword(w.rand)}`;
    w.s.secrets.push(password);
    let createdAt: bigint | undefined;
    const o = await attempt(w.s, 'create-user', async () => (createdAt = (await w.client.users.create(name, password, 'crypto-user')).position?.seq));
    const r = next(o, [false], [true]);
    w.s.users.push({ name, exists: r.allowed, passwords: [password], locked: [false], touchable: r.known, ...(createdAt === undefined ? {} : { createdAt }) });
    return;
  }
  const u = pickOf(w.rand, live);
  if (pick < 0.45) {
    const r = next(await attempt(w.s, 'delete-user', () => w.client.users.delete(u.name)), [true], [false]);
    [u.exists, u.touchable] = [r.allowed, r.known && r.allowed[0] === true];
  } else if (pick < 0.65) {
    const password = `${u.name}-${randomPassword(w.rand)}`;
    w.s.secrets.push(password);
    const o = await attempt(w.s, 'password', () => w.client.users.changePassword(u.name, password));
    const r = next(o, [u.passwords[0] as string], [password]);
    // An admin's password reset clears the failed-login count: it unlocks the user too.
    [u.passwords, u.locked, u.touchable] = [r.allowed.reverse(), next(o, u.locked, [false]).allowed, r.known];
  } else if (pick < 0.85 || w.name !== 'a0') {
    await lockThenUnlock(w, u, w.rand() >= 1 / 3);
  } else {
    await quorumStep(w);
  }
}

/** Passwords come from the worker's generator, so a seed replays them too. */
function randomPassword(rand: () => number): string {
  return Array.from({ length: 12 }, () => 'abcdefghijkmnpqrstuvwxyz23456789'[Math.floor(rand() * 32)]).join('');
}

/** Five failed logins through one HSM lock `u`; the admin then unlocks it through the primary, or
 * leaves it locked. */
async function lockThenUnlock(w: Worker, u: UserModel, unlock: boolean): Promise<void> {
  const through = pickOf(w.rand, w.s.config.endpoints);
  // k = 2: the HSM the logins go through may not have applied the creation yet, and a login of a
  // name it does not know is refused without a count. Wait for it, bounded; else the count is unsure.
  const known = await appliedOn(w, through, u.createdAt);
  let refused = 0;
  for (let i = 0; i < LOCKOUT_FAILURES; i++) {
    try {
      const c = await Cluster.connect({ endpoints: [through], ca: w.s.config.ca, credentials: { username: u.name, password: WRONG_PASSWORD } });
      await c.close();
      w.s.unexpected.push(`a wrong password logged ${u.name} in`);
    } catch (e) {
      if (isCofferError(e, 'COFFER_AUTH_FAILED') || isCofferError(e, 'COFFER_USER_LOCKED')) refused++;
    }
  }
  // Each refusal was counted in the journal before it was answered: five lock the user. A login
  // that failed otherwise (the journal or the HSM unreachable) may or may not have been counted.
  u.locked = known && refused === LOCKOUT_FAILURES ? [true] : [true, false];
  if (!unlock) return;
  const r = next(await attempt(w.s, 'unlock', () => w.client.users.unlock(u.name)), u.locked, [false]);
  [u.locked, u.touchable] = [r.allowed, r.known];
}

/** Whether the HSM at `endpoint` reports a journal head at or past `seq` (a known one) in time. */
async function appliedOn(w: Worker, endpoint: Endpoint, seq: bigint | undefined): Promise<boolean> {
  if (seq === undefined) return false;
  const deadline = Date.now() + APPLIED_WAIT_MS;
  while (Date.now() < deadline) {
    const node = (await w.client.status()).find((n) => n.endpoint.host === endpoint.host && n.endpoint.port === endpoint.port);
    if (node !== undefined && 'status' in node && node.status.journalPosition >= seq) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Raises the admin quorum value to 2, or lowers it to 1 with a token both quorum admins approved. */
async function quorumStep(w: Worker): Promise<void> {
  const value = w.s.quorum;
  if (value.length !== 1) return; // its last change is of unknown outcome: left alone
  if (value[0] === 1) {
    w.s.quorum = next(await attempt(w.s, 'quorum-up', () => w.client.quorum.setValue('quorum', 2)), [1], [2]).allowed;
    return;
  }
  const o = await attempt(w.s, 'quorum-down', async () => {
    const token = await w.client.quorum.generateToken('quorum');
    for (const [name, key] of w.s.quorumKeys) await w.client.quorum.approve(token.bytes, name, new Uint8Array(nodeSign('sha256', token.bytes, key)));
    return w.client.quorum.setValue('quorum', 1);
  });
  w.s.quorum = next(o, [2], [1]).allowed;
}

/** The worker's last step: one of its users locked and left so, for the end to find locked on every HSM. */
async function lockOneLeft(w: Worker): Promise<void> {
  const live = w.s.users.filter((u) => u.touchable && u.name.startsWith(`${w.name}-`) && u.exists.length === 1 && u.exists[0] === true);
  if (live.length > 0) await lockThenUnlock(w, pickOf(w.rand, live), false);
}

// ── the run ─────────────────────────────────────────────────────────────────────────────────────

/** The endpoints rotated so that HSM `first` is the primary (state changes go to the first up one). */
const rotated = (endpoints: readonly Endpoint[], first: number): Endpoint[] => endpoints.map((_, i) => endpoints[(first + i) % endpoints.length] as Endpoint);

async function connect(s: Scenario, who: { name: string; password: string }, endpoints: readonly Endpoint[], role: 'admin' | 'crypto-user'): Promise<Cluster> {
  const c = await Cluster.connect({ endpoints: [...endpoints], ca: s.config.ca, credentials: { username: who.name, password: who.password, role } });
  clients.push(c);
  return c;
}

async function runWorker(w: Worker, step: (w: Worker, n: number) => Promise<void>): Promise<void> {
  let n = 0;
  for (const [phase, steps] of STEPS_PER_PHASE.entries()) {
    await w.s.phase.reached(phase);
    const disrupted = phase === REPLACING || phase === RESTARTING;
    for (let i = 0; i < steps && !(disrupted && w.s.phase.value > phase); i++) {
      await step(w, n++);
      w.s.steps.set(w.s.steps.value + 1);
      if (disrupted) await Promise.race([w.s.phase.reached(phase + 1), new Promise((r) => setTimeout(r, DISRUPTED_PACE_MS))]);
    }
  }
}

/** Once every worker made its steps of the first phase, SIGKILL one HSM and wait for its
 * replacement; then SIGKILL `coffer up`, and start it again once the workers made as many steps
 * as there are workers while it was down. Workers go on meanwhile. */
async function disrupt(region: ScenarioRegion, s: Scenario, rand: () => number, workers: number): Promise<string> {
  await s.steps.reached(workers * (STEPS_PER_PHASE[BEFORE] as number));
  const victim = pickOf(rand, ADDRESSES);
  const pid = region.hsmPid(victim);
  process.kill(pid, 'SIGKILL');
  s.phase.set(REPLACING);
  console.log(`step ${s.steps.value}: HSM at ${victim} (pid ${pid}) killed`);
  await region.until(`the HSM at ${victim} replaced`, async () => {
    if (region.hsmPid(victim) === pid) return undefined;
    const c = await region.describe();
    return c.State === 'ACTIVE' && c.Hsms?.length === ADDRESSES.length && c.Hsms.every((h) => h.State === 'ACTIVE') ? true : undefined;
  });
  await region.killService();
  const down = s.steps.value;
  s.phase.set(RESTARTING);
  console.log(`step ${down}: replaced; coffer up killed`);
  await s.steps.reached(down + workers); // state changes tried while no service relays the journal
  console.log(`step ${s.steps.value}: coffer up started again`);
  await region.start();
  s.phase.set(AFTER);
  console.log(`step ${s.steps.value}: the service is back`);
  return victim;
}

/** Setup before any disruption: a second admin, and both admins' quorum keys. */
async function setup(s: Scenario): Promise<void> {
  const admin = await connect(s, s.file.admin, s.config.endpoints, 'admin');
  const qadmin = { name: 'qadmin', password: `qadmin-${randomBytes(9).toString('hex')}` };
  s.secrets.push(qadmin.password);
  await admin.users.create(qadmin.name, qadmin.password, 'admin', { acks: 3 });
  const keys = new Map<string, KeyObject>();
  for (const [who, c] of [[s.file.admin.name, admin], [qadmin.name, await connect(s, qadmin, s.config.endpoints, 'admin')]] as const) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await c.quorum.registerKey(new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' })), { acks: 3 });
    keys.set(who, pair.privateKey);
    await c.close();
  }
  s.quorumKeys = keys;
}

test('seeded scenario: concurrent clients through three relayed HSMs, one HSM killed and replaced, the service restarted; every HSM ends identical and holds every acknowledged change', { timeout: 1_800_000 }, async () => {
  const { seed, rand } = scenarioSeed();
  const port = await freePort(ADDRESSES);
  const region = new ScenarioRegion(dir, ['--port', '0', '--data-plane-port', String(port), '--cluster', '3'], (proc) => (child = proc));
  const ready = await region.start();
  const s: Scenario = {
    config: loadClusterConfig(ready.clusterFile), file: JSON.parse(readFileSync(ready.clusterFile, 'utf8')) as ClusterFile,
    keys: [], users: [], quorum: [1], quorumKeys: new Map(), steps: new Milestones(), phase: new Milestones(), outcomes: new Map(), unexpected: [], secrets: [WRONG_PASSWORD],
  };
  assert.equal(s.config.endpoints.length, 3);
  await setup(s);

  const workers: Promise<void>[] = [];
  for (let i = 0; i < 3; i++) {
    const client = await connect(s, s.file.cryptoUser, rotated(s.config.endpoints, i), 'crypto-user');
    workers.push(runWorker({ name: `k${i}`, client, rand: mulberry32(seed + 1 + i), s }, keyStep));
  }
  for (let i = 0; i < 2; i++) {
    const client = await connect(s, s.file.admin, rotated(s.config.endpoints, i + 1), 'admin');
    const w: Worker = { name: `a${i}`, client, rand: mulberry32(seed + 11 + i), s };
    workers.push(runWorker(w, userStep).then(() => lockOneLeft(w)));
  }
  const [victim] = await Promise.all([disrupt(region, s, rand, workers.length), ...workers]);
  for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  console.log(`steps ${s.steps.value}; outcomes ${JSON.stringify(Object.fromEntries([...s.outcomes].sort()))}`);

  const settled = await region.settled(3);
  assertIdentical(settled);
  console.log(`every HSM at entry ${settled[0]?.journalPosition}; HSM at ${victim} replaced`);
  const views = await Promise.all(s.config.endpoints.map((e) => viewThrough(s, e)));
  for (const [i, v] of views.entries()) {
    assert.deepEqual(v, views[0], `HSM ${i} shows what HSM 0 shows`);
    checkAgainstModel(s, v, i);
  }
  const view = views[0] as View;
  const locked = Object.values(view.users).filter((u) => u.locked).length;
  console.log(`checked through each HSM: ${s.keys.length} keys, ${s.users.length} users (${locked} locked), quorum value ${view.quorum}`);
  await checkPasswords(s);
  assertIdentical(await region.settled(3));
  const inTheClear = region.filesHolding(s.secrets);
  assert.deepEqual(inTheClear, [], 'no password in the service\'s store, archive or logs, nor in the HSMs\' files');
  assert.deepEqual(s.unexpected, [], `errors an honest cluster does not give (seed=${seed})`);
});

function assertIdentical(healths: readonly HsmHealth[]): void {
  const [first] = healths;
  assert.ok(first !== undefined);
  for (const h of healths) {
    assert.equal(h.journalHeadHash, first.journalHeadHash, `${h.host}: the same journal head`);
    assert.equal(h.stateDigest, first.stateDigest, `${h.host} at entry ${h.journalPosition}: the same state digest as ${first.host}`);
  }
}

/** What one HSM shows: every label the model knows with its handles, every user, the quorum value. */
interface View {
  readonly keys: Record<string, number[]>;
  readonly users: Record<string, { locked: boolean }>;
  readonly quorum: number;
}

async function viewThrough(s: Scenario, endpoint: Endpoint): Promise<View> {
  const user = await connect(s, s.file.cryptoUser, [endpoint], 'crypto-user');
  const admin = await connect(s, s.file.admin, [endpoint], 'admin');
  const keys: Record<string, number[]> = {};
  for (const label of s.keys.flatMap((k) => k.labels)) keys[label] = (await user.findKeys({ label })).map((k) => k.handle).sort((a, b) => a - b);
  const users: Record<string, { locked: boolean }> = {};
  for (const u of await admin.users.list()) users[u.name] = { locked: u.locked };
  const quorum = (await admin.quorum.values()).quorum;
  await user.close();
  await admin.close();
  return { keys, users, quorum };
}

function checkAgainstModel(s: Scenario, v: View, hsm: number): void {
  for (const k of s.keys) {
    const found = k.labels.flatMap((label) => (v.keys[label] ?? []).map((handle) => ({ label, handle })));
    const fits = k.allowed.some((a) => a === 'absent'
      ? found.length === 0
      : found.length === 1 && found[0]?.label === a.label && (a.handle === undefined || found[0].handle === a.handle));
    assert.ok(fits, `HSM ${hsm}, key ${k.labels[0]}: found ${JSON.stringify(found)}, allowed ${JSON.stringify(k.allowed)}`);
  }
  for (const u of s.users) {
    const listed = v.users[u.name];
    assert.ok(u.exists.includes(listed !== undefined), `HSM ${hsm}, user ${u.name}: ${listed === undefined ? 'absent' : 'present'}, allowed ${JSON.stringify(u.exists)}`);
    if (listed !== undefined) assert.ok(u.locked.includes(listed.locked), `HSM ${hsm}, user ${u.name}: locked ${listed.locked}, allowed ${JSON.stringify(u.locked)}`);
  }
  assert.ok(s.quorum.includes(v.quorum), `HSM ${hsm}: quorum value ${v.quorum}, allowed ${JSON.stringify(s.quorum)}`);
}

/** Every user known to exist unlocked logs in through every HSM with one password it may have. */
async function checkPasswords(s: Scenario): Promise<void> {
  for (const u of s.users.filter((x) => x.exists.length === 1 && x.exists[0] === true && x.locked.length === 1 && x.locked[0] === false)) {
    let works: string | undefined;
    for (const password of u.passwords) {
      try {
        await (await connect(s, { name: u.name, password }, [s.config.endpoints[0] as Endpoint], 'crypto-user')).close();
        works = password;
        break;
      } catch (e) {
        if (!isCofferError(e, 'COFFER_AUTH_FAILED')) throw e;
      }
    }
    assert.ok(works !== undefined, `${u.name} logs in with one of its ${u.passwords.length} possible passwords`);
    for (const endpoint of s.config.endpoints.slice(1)) await (await connect(s, { name: u.name, password: works }, [endpoint], 'crypto-user')).close();
  }
}
