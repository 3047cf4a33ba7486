// Quorum token-sign, M of N (src/hsm/users/quorum.ts; docs/architecture.md §4 and §9 "quorum"): value range,
// the 10-minute expiry at its boundary, approvals that must verify, duplicates counted once,
// M-1 insufficient and M sufficient, single use, and binding to requester, service and handle.
//
// Users here use lighter scrypt parameters (N = 2^10) than production: these tests exercise the
// quorum logic, not the password KDF (users.test.ts and password.test.ts cover that).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { QUORUM_TOKEN_TTL_MS, QUORUM_TOKENS_MAX } from '../../../src/formats/limits.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { Quorum, type QuorumToken } from '../../../src/hsm/users/quorum.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import type { Actor } from '../../../src/hsm/types.js';
import { generateApplianceCredential, Users } from '../../../src/hsm/users/users.js';

const fails = (code: ErrorCode) => (e: unknown) => isCofferError(e, code);
const PW = 'password-1234';

type KeyKind = 'p256' | 'p384' | 'rsa';

/** An approver's key pair held outside the HSM, and how it signs a token. */
class ApproverKey {
  readonly spki: Uint8Array;
  readonly #privateKey: KeyObject;
  readonly #hash: string;
  constructor(kind: KeyKind) {
    const pair =
      kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: kind === 'p256' ? 'P-256' : 'P-384' });
    this.spki = pair.publicKey.export({ type: 'spki', format: 'der' });
    this.#privateKey = pair.privateKey;
    this.#hash = kind === 'p384' ? 'sha384' : 'sha256';
  }
  /** RSA PKCS#1 v1.5 / ECDSA (DER), as the HSM expects. */
  sign(bytes: Uint8Array, hash = this.#hash): Uint8Array {
    return sign(hash, bytes, this.#privateKey);
  }
  signPss(bytes: Uint8Array): Uint8Array {
    return sign('sha256', bytes, { key: this.#privateKey, padding: constants.RSA_PKCS1_PSS_PADDING });
  }
}

const KEY_CACHE = new Map<string, ApproverKey>();

interface Fixture {
  clock: ManualClock;
  users: Users;
  quorum: Quorum;
  actors: Record<string, Actor>;
  keys: Record<string, ApproverKey>;
}

/** Admins admin, a2, a3 (a3 with RSA-2048, a2 with P-384) and crypto users c1, c2, c3, each with a
 * registered quorum key; mallory is a crypto user without one. */
async function fixture(): Promise<Fixture> {
  const store = new MemoryRecordStore();
  const clock = new ManualClock();
  const state = new DeviceState(store);
  const users = new Users(state, { kdfParams: { log2N: 10, r: 8, p: 1 } });
  const quorum = new Quorum(state, users, { clock });
  await users.initialise('preco-password', generateApplianceCredential());
  const admin = await users.activate('preco-password', PW);
  const actors: Record<string, Actor> = { admin };
  for (const [name, role] of [['a2', 'admin'], ['a3', 'admin'], ['c1', 'crypto-user'], ['c2', 'crypto-user'], ['c3', 'crypto-user'], ['mallory', 'crypto-user']] as const) {
    await users.createUser(admin, name, PW, role);
    actors[name] = await users.login(name, PW);
  }
  const kinds: Record<string, KeyKind> = { admin: 'p256', a2: 'p384', a3: 'rsa', c1: 'p256', c2: 'p256', c3: 'rsa' };
  const keys: Record<string, ApproverKey> = {};
  for (const [name, kind] of Object.entries(kinds)) {
    // Key pairs are made once per file (RSA generation dominates otherwise); stores are fresh.
    const k = KEY_CACHE.get(name) ?? new ApproverKey(kind);
    KEY_CACHE.set(name, k);
    keys[name] = k;
    await users.registerQuorumKey(actor(actors, name), k.spki);
  }
  return { clock, users, quorum, actors, keys };
}

function actor(actors: Record<string, Actor>, name: string): Actor {
  const a = actors[name];
  assert.ok(a !== undefined, name);
  return a;
}

function key(f: Fixture, name: string): ApproverKey {
  const k = f.keys[name];
  assert.ok(k !== undefined, name);
  return k;
}

/** Each named approver signs the token and the signature is submitted. */
function approveBy(f: Fixture, token: QuorumToken, ...names: string[]): number {
  let count = 0;
  for (const name of names) count = f.quorum.approve(token.bytes, name, key(f, name).sign(token.bytes));
  return count;
}

void test('quorum values: 1 (off) or 2..8, at most the registered admins, user ≤ quorum; admins only', async () => {
  const f = await fixture();
  const admin = actor(f.actors, 'admin');
  assert.deepEqual(f.quorum.listQuorumValues(admin), { user: 1, quorum: 1 });
  for (const m of [0, 9, -1, 2.5, Number.NaN]) {
    await assert.rejects(async () => { await f.quorum.setQuorumValue(admin, 'quorum', m); }, fails('COFFER_QUORUM_VALUE_INVALID'), String(m));
  }
  await assert.rejects(async () => { await f.quorum.setQuorumValue(admin, 'quorum', 4); }, fails('COFFER_QUORUM_VALUE_INVALID')); // 3 admins registered
  await assert.rejects(async () => { await f.quorum.setQuorumValue(admin, 'user', 2); }, fails('COFFER_QUORUM_VALUE_INVALID')); // user above quorum
  await assert.rejects(async () => { await f.quorum.setQuorumValue(actor(f.actors, 'c1'), 'quorum', 2); }, fails('COFFER_PERMISSION_DENIED'));
  await f.quorum.setQuorumValue(admin, 'quorum', 3);
  assert.deepEqual(f.quorum.listQuorumValues(actor(f.actors, 'c1')), { user: 1, quorum: 3 });
  // Now changing any value needs the 'quorum' service's own approval (3 of the 3 admins).
  await assert.rejects(async () => { await f.quorum.setQuorumValue(admin, 'user', 2); }, fails('COFFER_QUORUM_TOKEN_INVALID'));
  const token = f.quorum.generateToken(admin, 'quorum');
  approveBy(f, token, 'admin', 'a2');
  await assert.rejects(async () => { await f.quorum.setQuorumValue(admin, 'user', 2); }, fails('COFFER_QUORUM_REQUIRED'));
  approveBy(f, token, 'a3');
  await f.quorum.setQuorumValue(admin, 'user', 2);
  assert.deepEqual(f.quorum.listQuorumValues(admin), { user: 2, quorum: 3 });
  // Lowering 'quorum' below 'user' is refused before any token is consumed.
  await assert.rejects(async () => { await f.quorum.setQuorumValue(admin, 'quorum', 1); }, fails('COFFER_QUORUM_VALUE_INVALID'));
});

void test('tokens expire exactly QUORUM_TOKEN_TTL_MS (10 min) after issue: 9:59.999 valid, 10:00 expired', async () => {
  assert.equal(QUORUM_TOKEN_TTL_MS, 600_000);
  const f = await fixture();
  const c1 = actor(f.actors, 'c1');
  const approvers = new Set(['c1', 'c2', 'c3']);
  const t0 = f.clock.nowMs();
  const early = f.quorum.generateToken(c1, 'key-usage', 7);
  const late = f.quorum.generateToken(c1, 'key-usage', 8);
  assert.equal(early.expiresAtMs, t0 + 600_000);
  f.clock.advance(599_000); // 9:59
  assert.equal(approveBy(f, early, 'c1', 'c2'), 2);
  assert.equal(approveBy(f, late, 'c1', 'c2'), 2);
  f.clock.advance(999); // 9:59.999
  f.quorum.requireApproval(c1, 'key-usage', 2, 7, approvers);
  f.clock.advance(1); // 10:00
  assert.deepEqual(f.quorum.listTokens(c1), []);
  assert.throws(() => f.quorum.requireApproval(c1, 'key-usage', 2, 8, approvers), fails('COFFER_QUORUM_TOKEN_INVALID'));
  assert.throws(() => approveBy(f, late, 'c3'), fails('COFFER_QUORUM_TOKEN_INVALID'));
});

void test('approvals must verify against the approver\'s registered key and role', async () => {
  const f = await fixture();
  const token = f.quorum.generateToken(actor(f.actors, 'admin'), 'user');
  const outsider = new ApproverKey('p256');
  const cases: Array<[string, Uint8Array]> = [
    ['a2', outsider.sign(token.bytes, 'sha384')], // a key a2 never registered
    ['a2', key(f, 'admin').sign(token.bytes, 'sha384')], // another admin's key
    ['a2', key(f, 'a2').sign(token.bytes, 'sha256')], // P-384 must sign with SHA-384
    ['a3', key(f, 'a3').signPss(token.bytes)], // RSA must be PKCS#1 v1.5
    ['a3', key(f, 'a3').sign(Uint8Array.of(...token.bytes, 0))], // other bytes
    ['c1', key(f, 'c1').sign(token.bytes)], // a crypto user cannot approve an admin service
    ['mallory', outsider.sign(token.bytes)], // no registered key
    ['nobody', outsider.sign(token.bytes)],
    ['bad name!', outsider.sign(token.bytes)],
    ['a3', new Uint8Array(0)],
    ['a3', new Uint8Array(1025)],
  ];
  for (const [name, signature] of cases) {
    assert.throws(() => f.quorum.approve(token.bytes, name, signature), fails('COFFER_QUORUM_APPROVAL_INVALID'), name);
  }
  assert.equal(f.quorum.listTokens(actor(f.actors, 'admin'))[0]?.approvals, 0);
  // The right keys verify (ECDSA P-384/SHA-384, RSA-2048 PKCS#1 v1.5/SHA-256, ECDSA P-256/SHA-256).
  assert.equal(approveBy(f, token, 'a2', 'a3', 'admin'), 3);
  // Altered token bytes are not a token.
  const altered = token.bytes.slice();
  altered[10] = (altered[10] ?? 0) ^ 1;
  assert.throws(() => f.quorum.approve(altered, 'a2', key(f, 'a2').sign(altered)), fails('COFFER_QUORUM_TOKEN_INVALID'));
  assert.throws(() => f.quorum.approve(new Uint8Array(3), 'a2', key(f, 'a2').sign(token.bytes)), fails('COFFER_QUORUM_TOKEN_INVALID'));
});

void test('M-1 approvals are not enough, M are; duplicates count once; the requester may approve; single use', async () => {
  const f = await fixture();
  const c1 = actor(f.actors, 'c1');
  const approvers = new Set(['c1', 'c2', 'c3']);
  const token = f.quorum.generateToken(c1, 'key-management', 42);
  assert.equal(approveBy(f, token, 'c2'), 1);
  assert.equal(approveBy(f, token, 'c2'), 1); // the same approver again
  assert.throws(() => f.quorum.requireApproval(c1, 'key-management', 2, 42, approvers), (e: unknown) => {
    return isCofferError(e, 'COFFER_QUORUM_REQUIRED') && e.detail.approvals === 1 && e.detail.required === 2;
  });
  assert.equal(approveBy(f, token, 'c1'), 2); // the requester's own approval counts (as in CloudHSM)
  assert.throws(() => f.quorum.requireApproval(c1, 'key-management', 3, 42, approvers), fails('COFFER_QUORUM_REQUIRED'));
  f.quorum.requireApproval(c1, 'key-management', 2, 42, approvers);
  assert.throws(() => f.quorum.requireApproval(c1, 'key-management', 2, 42, approvers), fails('COFFER_QUORUM_TOKEN_INVALID'));
  assert.throws(() => approveBy(f, token, 'c3'), fails('COFFER_QUORUM_TOKEN_INVALID'));
  // Quorum off (M below 2) checks nothing and consumes nothing.
  f.quorum.requireApproval(c1, 'key-management', 0, 42, approvers);
  f.quorum.requireApproval(c1, 'key-management', 1, 42, approvers);
});

void test('a token serves only its requester, service, handle and the approvers the caller allows', async () => {
  const f = await fixture();
  const [c1, c2, admin] = [actor(f.actors, 'c1'), actor(f.actors, 'c2'), actor(f.actors, 'admin')];
  const all = new Set(['c1', 'c2', 'c3']);
  const token = f.quorum.generateToken(c1, 'key-usage', 7);
  approveBy(f, token, 'c1', 'c2', 'c3');
  assert.throws(() => f.quorum.requireApproval(c1, 'key-usage', 2, 8, all), fails('COFFER_QUORUM_TOKEN_INVALID'));
  assert.throws(() => f.quorum.requireApproval(c1, 'key-management', 2, 7, all), fails('COFFER_QUORUM_TOKEN_INVALID'));
  assert.throws(() => f.quorum.requireApproval(c2, 'key-usage', 2, 7, all), fails('COFFER_QUORUM_TOKEN_INVALID'));
  // Only approvals from the key's owner and sharees count.
  assert.throws(() => f.quorum.requireApproval(c1, 'key-usage', 2, 7, new Set(['c3', 'c9'])), fails('COFFER_QUORUM_REQUIRED'));
  f.quorum.requireApproval(c1, 'key-usage', 3, 7, all);
  // Admin-service tokens: not for another admin service; key services need a handle, admin ones none.
  const userToken = f.quorum.generateToken(admin, 'user');
  approveBy(f, userToken, 'admin', 'a2', 'a3');
  assert.throws(() => f.quorum.requireApproval(admin, 'quorum', 2), fails('COFFER_QUORUM_TOKEN_INVALID'));
  f.quorum.requireApproval(admin, 'user', 3);
  assert.throws(() => f.quorum.generateToken(c1, 'key-usage'), fails('COFFER_DATA_INVALID'));
  assert.throws(() => f.quorum.generateToken(admin, 'user', 7), fails('COFFER_DATA_INVALID'));
  assert.throws(() => f.quorum.generateToken(c1, 'key-usage', -1), fails('COFFER_OBJECT_NOT_FOUND'));
  // Who may request which service.
  assert.throws(() => f.quorum.generateToken(c1, 'user'), fails('COFFER_PERMISSION_DENIED'));
  assert.throws(() => f.quorum.generateToken(admin, 'key-usage', 7), fails('COFFER_PERMISSION_DENIED'));
});

void test('a new admin-service token replaces the previous one; a re-registered key voids old approvals', async () => {
  const f = await fixture();
  const admin = actor(f.actors, 'admin');
  const first = f.quorum.generateToken(admin, 'user');
  approveBy(f, first, 'admin', 'a2');
  const second = f.quorum.generateToken(admin, 'user');
  assert.equal(f.quorum.listTokens(admin).length, 1);
  assert.throws(() => approveBy(f, first, 'a3'), fails('COFFER_QUORUM_TOKEN_INVALID'));
  approveBy(f, second, 'admin', 'a2');
  await f.users.registerQuorumKey(actor(f.actors, 'a2'), new ApproverKey('p256').spki);
  assert.throws(() => f.quorum.requireApproval(admin, 'user', 2), fails('COFFER_QUORUM_REQUIRED'));
  approveBy(f, second, 'a3');
  f.quorum.requireApproval(admin, 'user', 2);
});

void test('user management obeys the user-service quorum; a failed operation does not consume the token', async () => {
  const f = await fixture();
  const admin = actor(f.actors, 'admin');
  await f.quorum.setQuorumValue(admin, 'quorum', 2);
  const q = f.quorum.generateToken(admin, 'quorum');
  approveBy(f, q, 'a2', 'a3');
  await f.quorum.setQuorumValue(admin, 'user', 2);
  await assert.rejects(f.users.createUser(admin, 'newbie', PW, 'crypto-user'), fails('COFFER_QUORUM_TOKEN_INVALID'));
  const token = f.quorum.generateToken(admin, 'user');
  approveBy(f, token, 'a2');
  await assert.rejects(f.users.createUser(admin, 'newbie', PW, 'crypto-user'), fails('COFFER_QUORUM_REQUIRED'));
  approveBy(f, token, 'admin');
  await assert.rejects(f.users.createUser(admin, 'c1', PW, 'crypto-user'), fails('COFFER_USER_EXISTS'));
  await f.users.createUser(admin, 'newbie', PW, 'crypto-user');
  await assert.rejects(async () => { await f.users.unlock(admin, 'newbie'); }, fails('COFFER_QUORUM_TOKEN_INVALID'));
  // Deleting an admin whose key the quorum values need is refused (3 registered, M = 2: one may go).
  const del = f.quorum.generateToken(admin, 'user');
  approveBy(f, del, 'admin', 'a3');
  await f.users.deleteUser(admin, 'a2');
  await assert.rejects(async () => { await f.users.deleteUser(admin, 'a3'); }, fails('COFFER_QUORUM_VALUE_INVALID'));
});

void test('tokens are bounded by QUORUM_TOKENS_MAX; expired ones are pruned to make room', async () => {
  const f = await fixture();
  const c1 = actor(f.actors, 'c1');
  for (let h = 1; h <= QUORUM_TOKENS_MAX; h++) f.quorum.generateToken(c1, 'key-usage', h);
  assert.throws(() => f.quorum.generateToken(c1, 'key-usage', QUORUM_TOKENS_MAX + 1), fails('COFFER_QUORUM_TOKEN_LIMIT'));
  f.clock.advance(QUORUM_TOKEN_TTL_MS);
  f.quorum.generateToken(c1, 'key-usage', QUORUM_TOKENS_MAX + 1);
  assert.equal(f.quorum.listTokens(c1).length, 1);
});

void test('listing shows service, requester, handle, expiry and approval count, never signatures', async () => {
  const f = await fixture();
  const c1 = actor(f.actors, 'c1');
  const token = f.quorum.generateToken(c1, 'key-usage', 9);
  const signature = key(f, 'c2').sign(token.bytes);
  f.quorum.approve(token.bytes, 'c2', signature);
  const listed = f.quorum.listTokens(actor(f.actors, 'admin'));
  assert.deepEqual(listed, [{ id: token.id, service: 'key-usage', requester: 'c1', handle: 9, expiresAtMs: token.expiresAtMs, approvals: 1 }]);
  const json = JSON.stringify(listed);
  assert.equal(json.includes(Buffer.from(signature).toString('hex')), false);
  assert.equal(json.includes(Buffer.from(signature).toString('base64')), false);
  assert.throws(() => f.quorum.listTokens({ userId: 'app_user', role: 'appliance' }), fails('COFFER_PERMISSION_DENIED'));
});
