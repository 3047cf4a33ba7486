// Users, login and lockout (src/hsm/users/users.ts; docs/architecture.md §4 and §9 "lockout, role boundaries"):
// name rules, activation, one generic login failure after equal work, lockout at exactly
// LOGIN_FAILURES_MAX that survives reopening the store, admin unlock, and who may manage users.

import { test } from 'node:test';
import crypto, { type BinaryLike, type ScryptOptions } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import * as assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { CofferError, isCofferError, type ErrorCode } from '../../../src/errors.js';
import { LOGIN_FAILURES_MAX, USERS_MAX } from '../../../src/formats/limits.js';
import { decodeVerifier, DEFAULT_SCRYPT_PARAMS, type ScryptParams } from '../../../src/hsm/users/password.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import type { Actor } from '../../../src/hsm/types.js';
import { decodeUserRecord, encodeUserRecord } from '../../../src/formats/user_record.js';
import {
  generateApplianceCredential,
  normaliseUserName,
  Users,
  type UsersOptions,
} from '../../../src/hsm/users/users.js';

const PRECO = 'preco-password-1';
const APP = generateApplianceCredential();
const ADMIN_PW = 'admin-password-1';
const fails = (code: ErrorCode) => (e: unknown) => isCofferError(e, code);

async function device(options: UsersOptions = {}): Promise<{ store: MemoryRecordStore; users: Users; admin: Actor }> {
  const store = new MemoryRecordStore();
  const users = new Users(new DeviceState(store), options);
  await users.initialise(PRECO, APP);
  const admin = await users.activate(PRECO, ADMIN_PW);
  return { store, users, admin };
}

/** The error a promise rejects with (and it must reject). */
async function errorOf(p: Promise<unknown>): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    return e;
  }
  return assert.fail('expected a rejection');
}

void test('names: 1..31 of letters, digits, _ and -; 32 refused; case-insensitive', async () => {
  assert.equal(normaliseUserName('a'.repeat(31)), 'a'.repeat(31));
  assert.equal(normaliseUserName('Alice_Ops-2'), 'alice_ops-2');
  for (const bad of ['', 'a'.repeat(32), 'al ice', 'alice@corp', 'ålice', 'a.b', 'a/b']) {
    assert.throws(() => normaliseUserName(bad), fails('COFFER_USER_NAME_INVALID'), JSON.stringify(bad));
  }
  const { users, admin } = await device();
  await users.createUser(admin, 'A'.repeat(31), 'password-31', 'crypto-user');
  await assert.rejects(users.createUser(admin, 'b'.repeat(32), 'password-32', 'crypto-user'), fails('COFFER_USER_NAME_INVALID'));
  await users.createUser(admin, 'Alice', 'alice-password', 'crypto-user');
  await assert.rejects(users.createUser(admin, 'alice', 'other-password', 'crypto-user'), fails('COFFER_USER_EXISTS'));
  await assert.rejects(users.createUser(admin, 'ADMIN', 'other-password', 'admin'), fails('COFFER_USER_EXISTS'));
  const actor = await users.login('ALICE', 'alice-password', 'crypto-user');
  assert.deepEqual(actor, { userId: 'alice', role: 'crypto-user' });
  assert.deepEqual(users.listUsers(admin).map((u) => u.name).sort(), ['a'.repeat(31), 'admin', 'alice', 'app_user']);
});

void test('passwords at creation: 7 and 33 refused, 8 and 32 accepted', async () => {
  const { users, admin } = await device();
  await assert.rejects(users.createUser(admin, 'u7', 'x'.repeat(7), 'crypto-user'), fails('COFFER_PASSWORD_INVALID'));
  await assert.rejects(users.createUser(admin, 'u33', 'x'.repeat(33), 'crypto-user'), fails('COFFER_PASSWORD_INVALID'));
  await users.createUser(admin, 'u8', 'x'.repeat(8), 'crypto-user');
  await users.createUser(admin, 'u32', 'y'.repeat(32), 'crypto-user');
  assert.equal((await users.login('u8', 'x'.repeat(8))).userId, 'u8');
  assert.equal((await users.login('u32', 'y'.repeat(32))).userId, 'u32');
  assert.equal(users.roleOf('u7'), undefined);
});

void test('initialise once; unactivated admin can only activate; wrong PreCo and re-activation fail', async () => {
  const store = new MemoryRecordStore();
  const users = new Users(new DeviceState(store));
  assert.equal(users.initialised, false);
  await users.initialise(PRECO, APP);
  assert.equal(users.initialised, true);
  assert.equal(users.activated, false);
  await assert.rejects(users.initialise(PRECO, APP), fails('COFFER_USER_EXISTS'));
  const pre = await users.login('admin', PRECO);
  assert.deepEqual(pre, { userId: 'admin', role: 'unactivated-admin' });
  await assert.rejects(users.createUser(pre, 'bob', 'bob-password', 'crypto-user'), fails('COFFER_PERMISSION_DENIED'));
  assert.throws(() => users.listUsers(pre), fails('COFFER_PERMISSION_DENIED'));
  await assert.rejects(async () => { await users.unlock(pre, 'admin'); }, fails('COFFER_PERMISSION_DENIED'));
  await assert.rejects(users.changeOwnPassword(pre, PRECO, 'new-password-1'), fails('COFFER_PERMISSION_DENIED'));
  await assert.rejects(users.activate('wrong-preco-1', ADMIN_PW), fails('COFFER_AUTH_FAILED'));
  const admin = await users.activate(PRECO, ADMIN_PW);
  assert.deepEqual(admin, { userId: 'admin', role: 'admin' });
  assert.equal(users.activated, true);
  await assert.rejects(users.activate(PRECO, 'another-password'), fails('COFFER_AUTH_FAILED'));
  await assert.rejects(users.login('admin', PRECO), fails('COFFER_AUTH_FAILED'));
  // The old unactivated session is no longer valid.
  assert.throws(() => users.listUsers(pre), fails('COFFER_NOT_LOGGED_IN'));
  assert.equal((await users.login('admin', ADMIN_PW, 'admin')).role, 'admin');
});

void test('login: wrong password, unknown user and wrong role fail identically, after the same work', async () => {
  const { users, admin } = await device();
  await users.createUser(admin, 'carol', 'carol-password', 'crypto-user');
  const ok = await users.login('carol', 'carol-password');
  assert.deepEqual(ok, { userId: 'carol', role: 'crypto-user' });
  const wrongPassword = await errorOf(users.login('carol', 'carol-passwore'));
  const unknownUser = await errorOf(users.login('nobody', 'carol-password'));
  const wrongRole = await errorOf(users.login('carol', 'carol-password', 'admin'));
  const badName = await errorOf(users.login('no body', 'carol-password'));
  const badPassword = await errorOf(users.login('carol', 'short'));
  for (const e of [wrongPassword, unknownUser, wrongRole, badName, badPassword]) {
    assert.equal(e.code, 'COFFER_AUTH_FAILED');
    assert.deepEqual(e.toJSON(), { code: 'COFFER_AUTH_FAILED', message: 'Login failed', detail: {} });
    assert.equal(e.cause, undefined);
  }
  // Equal work: an unknown name costs a full derivation, like a wrong password — counted, not timed
  // (a test never depends on the machine's speed): every scrypt call and its cost parameters.
  await users.unlock(admin, 'carol');
  const derivations = async (attempt: () => Promise<unknown>): Promise<string[]> => {
    const seen: string[] = [];
    const original = crypto.scrypt;
    crypto.scrypt = ((password: unknown, salt: unknown, keylen: number, options: ScryptOptions, callback: (e: Error | null, k: Buffer) => void) => {
      seen.push(`N=${options.N ?? options.cost ?? 0} r=${options.r ?? options.blockSize ?? 0} p=${options.p ?? options.parallelization ?? 0} len=${keylen}`);
      return original(password as BinaryLike, salt as BinaryLike, keylen, options, callback);
    }) as typeof crypto.scrypt;
    syncBuiltinESMExports();
    try {
      await attempt().catch(() => undefined);
    } finally {
      crypto.scrypt = original;
      syncBuiltinESMExports();
    }
    return seen;
  };
  const known = await derivations(() => users.login('carol', 'not-the-password'));
  const unknown = await derivations(() => users.login('ghost', 'not-the-password'));
  assert.equal(known.length, 1, 'a wrong password derives once');
  assert.deepEqual(unknown, known, 'an unknown name derives once, with the same parameters');
});

void test('lockout at exactly 5 failures; success before that resets; state survives reopening', async () => {
  const { store, users, admin } = await device();
  await users.createUser(admin, 'dave', 'dave-password', 'crypto-user');
  for (let i = 0; i < LOGIN_FAILURES_MAX - 1; i++) await assert.rejects(users.login('dave', 'wrong-password'), fails('COFFER_AUTH_FAILED'));
  await users.login('dave', 'dave-password'); // 4 failures: still open, and the count resets
  assert.equal(users.listUsers(admin).find((u) => u.name === 'dave')?.failedLogins, 0);
  for (let i = 0; i < LOGIN_FAILURES_MAX; i++) await assert.rejects(users.login('dave', 'wrong-password'), fails('COFFER_AUTH_FAILED'));
  // The 6th attempt fails even with the right password; the message stays generic.
  const locked = await errorOf(users.login('dave', 'dave-password'));
  assert.equal(locked.code, 'COFFER_USER_LOCKED');
  assert.equal(locked.message, 'Login failed');
  assert.deepEqual(users.listUsers(admin).find((u) => u.name === 'dave'), {
    name: 'dave', role: 'crypto-user', locked: true, failedLogins: LOGIN_FAILURES_MAX, quorumKeyRegistered: false,
  });
  // A restart (a new Users over the same store) does not unlock.
  const reopened = new Users(new DeviceState(store));
  await assert.rejects(reopened.login('dave', 'dave-password'), fails('COFFER_USER_LOCKED'));
  const admin2 = await reopened.login('admin', ADMIN_PW);
  await reopened.unlock(admin2, 'DAVE');
  assert.equal((await reopened.login('dave', 'dave-password')).userId, 'dave');
});

void test('parallel attempts cannot exceed the limit: each is counted before the password is checked', async () => {
  const { users, admin } = await device();
  await users.createUser(admin, 'erin', 'erin-password', 'crypto-user');
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => users.login('erin', 'erin-password')));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 8); // successes never lock
  const wrong = await Promise.allSettled(Array.from({ length: 8 }, () => users.login('erin', 'wrong-password')));
  const codes = wrong.map((r) => (r.status === 'rejected' && isCofferError(r.reason) ? r.reason.code : 'ok'));
  assert.deepEqual(codes.filter((c) => c === 'COFFER_AUTH_FAILED').length, LOGIN_FAILURES_MAX);
  assert.deepEqual(codes.filter((c) => c === 'COFFER_USER_LOCKED').length, 8 - LOGIN_FAILURES_MAX);
});

void test('an unknown name locks like a real one, so the lock does not reveal that a user exists', async () => {
  const { users } = await device();
  for (let i = 0; i < LOGIN_FAILURES_MAX; i++) await assert.rejects(users.login('phantom', 'some-password'), fails('COFFER_AUTH_FAILED'));
  await assert.rejects(users.login('phantom', 'some-password'), fails('COFFER_USER_LOCKED'));
});

void test('an admin setting a password unlocks; own change needs the current password', async () => {
  const { users, admin } = await device();
  await users.createUser(admin, 'frank', 'frank-password', 'crypto-user');
  for (let i = 0; i < LOGIN_FAILURES_MAX; i++) await assert.rejects(users.login('frank', 'wrong-password'));
  await assert.rejects(users.login('frank', 'frank-password'), fails('COFFER_USER_LOCKED'));
  await users.changePassword(admin, 'frank', 'frank-password-2');
  const frank = await users.login('frank', 'frank-password-2');
  await assert.rejects(users.login('frank', 'frank-password'), fails('COFFER_AUTH_FAILED'));
  await assert.rejects(users.changeOwnPassword(frank, 'not-my-password', 'frank-password-3'), fails('COFFER_AUTH_FAILED'));
  await users.changeOwnPassword(frank, 'frank-password-2', 'frank-password-3');
  await users.login('frank', 'frank-password-3');
  await assert.rejects(users.changePassword(frank, 'admin', 'takeover-pass'), fails('COFFER_PERMISSION_DENIED'));
  await assert.rejects(users.changePassword(admin, 'app_user', 'takeover-pass'), fails('COFFER_PERMISSION_DENIED'));
  await assert.rejects(users.changePassword(admin, 'nobody', 'whatever-pass'), fails('COFFER_USER_NOT_FOUND'));
});

void test('app_user logs in with its credential, never locks, and can change only its own credential', async () => {
  const { users, admin } = await device();
  assert.equal(APP.length, 32);
  const app = await users.login('app_user', APP, 'appliance');
  assert.deepEqual(app, { userId: 'app_user', role: 'appliance' });
  for (let i = 0; i < LOGIN_FAILURES_MAX + 2; i++) await assert.rejects(users.login('app_user', 'wrong-password'), fails('COFFER_AUTH_FAILED'));
  await users.login('app_user', APP);
  const next = generateApplianceCredential();
  await users.changeOwnPassword(app, APP, next);
  await users.login('app_user', next, 'appliance');
  await assert.rejects(async () => { await users.deleteUser(admin, 'app_user'); }, fails('COFFER_PERMISSION_DENIED'));
});

void test('role boundaries: only admins manage users; crypto users and admins list', async () => {
  const { users, admin } = await device();
  await users.createUser(admin, 'gina', 'gina-password', 'crypto-user');
  const gina = await users.login('gina', 'gina-password');
  const app = await users.login('app_user', APP);
  for (const actor of [gina, app]) {
    await assert.rejects(users.createUser(actor, 'x1', 'x1-password', 'crypto-user'), fails('COFFER_PERMISSION_DENIED'));
    await assert.rejects(async () => { await users.deleteUser(actor, 'admin'); }, fails('COFFER_PERMISSION_DENIED'));
    await assert.rejects(async () => { await users.unlock(actor, 'gina'); }, fails('COFFER_PERMISSION_DENIED'));
    await assert.rejects(users.changePassword(actor, 'admin', 'x1-password'), fails('COFFER_PERMISSION_DENIED'));
  }
  assert.throws(() => users.listUsers(app), fails('COFFER_PERMISSION_DENIED'));
  assert.equal(users.listUsers(gina).length, 3);
  // Admins create only admins and crypto users.
  await assert.rejects(users.createUser(admin, 'x2', 'x2-password', 'appliance' as 'admin'), fails('COFFER_PERMISSION_DENIED'));
  // A forged actor (no such user, or a role the user does not have) is refused.
  await assert.rejects(users.createUser({ userId: 'gina', role: 'admin' }, 'x3', 'x3-password', 'admin'), fails('COFFER_NOT_LOGGED_IN'));
  await assert.rejects(users.createUser({ userId: 'ghost', role: 'admin' }, 'x3', 'x3-password', 'admin'), fails('COFFER_NOT_LOGGED_IN'));
});

void test('delete: never the last admin, never yourself, never a user that owns objects; sessions die with the user', async () => {
  const owners = new Set<string>(['holder']);
  const { users, admin } = await device({ ownsObjects: (id) => owners.has(id) });
  await assert.rejects(async () => { await users.deleteUser(admin, 'admin'); }, fails('COFFER_USER_IN_USE')); // the only admin
  await users.createUser(admin, 'admin2', 'admin2-password', 'admin');
  await assert.rejects(async () => { await users.deleteUser(admin, 'admin'); }, fails('COFFER_PERMISSION_DENIED')); // yourself
  await users.createUser(admin, 'holder', 'holder-password', 'crypto-user');
  await assert.rejects(async () => { await users.deleteUser(admin, 'holder'); }, fails('COFFER_USER_IN_USE'));
  owners.delete('holder');
  const holder = await users.login('holder', 'holder-password');
  await users.deleteUser(admin, 'Holder');
  assert.throws(() => users.listUsers(holder), fails('COFFER_NOT_LOGGED_IN'));
  await assert.rejects(users.login('holder', 'holder-password'), fails('COFFER_AUTH_FAILED'));
  await assert.rejects(async () => { await users.deleteUser(admin, 'holder'); }, fails('COFFER_USER_NOT_FOUND'));
  const admin2 = await users.login('admin2', 'admin2-password');
  await users.deleteUser(admin2, 'admin'); // the built-in admin is an ordinary admin once activated
  await assert.rejects(async () => { await users.deleteUser(admin2, 'admin2'); }, fails('COFFER_USER_IN_USE'));
});

void test('USERS_MAX bounds the table (light KDF parameters so the test stays quick)', async () => {
  const light: ScryptParams = { log2N: 1, r: 1, p: 1 };
  const { users, admin } = await device({ kdfParams: light });
  for (let i = users.listUsers(admin).length; i < USERS_MAX; i++) await users.createUser(admin, `u${i}`, 'user-password', 'crypto-user');
  assert.equal(users.listUsers(admin).length, USERS_MAX);
  await assert.rejects(users.createUser(admin, 'one-more', 'user-password', 'crypto-user'), fails('COFFER_USER_LIMIT'));
  await users.deleteUser(admin, 'u10');
  await users.createUser(admin, 'one-more', 'user-password', 'crypto-user');
});

void test('the store holds verifiers only: no password, and listUsers shows no verifier or key', async () => {
  const { store, users, admin } = await device();
  const secrets = [PRECO, APP, ADMIN_PW, 'henry-secret-pw'];
  await users.createUser(admin, 'henry', 'henry-secret-pw', 'crypto-user');
  const henry = await users.login('henry', 'henry-secret-pw');
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await users.registerQuorumKey(henry, publicKey.export({ type: 'spki', format: 'der' }));
  let records = 0;
  for (const [id, value] of store.list('user')) {
    records++;
    const text = Buffer.from(value);
    for (const s of secrets) assert.equal(text.indexOf(s), -1, `${s} found in record ${id}`);
  }
  assert.equal(records, 3);
  const listed = users.listUsers(admin);
  for (const u of listed) assert.deepEqual(Object.keys(u).sort(), ['failedLogins', 'locked', 'name', 'quorumKeyRegistered', 'role']);
  assert.equal(listed.find((u) => u.name === 'henry')?.quorumKeyRegistered, true);
  const json = JSON.stringify(listed);
  for (const s of secrets) assert.equal(json.includes(s), false);
});

void test('a login with the right password upgrades a verifier made with older parameters', async () => {
  const light: ScryptParams = { log2N: 10, r: 8, p: 1 };
  const { store, users, admin } = await device({ kdfParams: light });
  await users.createUser(admin, 'ivan', 'ivan-password', 'crypto-user');
  const paramsOf = (): ScryptParams => {
    const bytes = store.get('user', 'ivan');
    assert.ok(bytes !== undefined);
    return decodeVerifier(decodeUserRecord(bytes).verifier).params;
  };
  assert.deepEqual(paramsOf(), light);
  const current = new Users(new DeviceState(store));
  await assert.rejects(current.login('ivan', 'wrong-password'));
  assert.deepEqual(paramsOf(), light); // a failure changes nothing but the count
  await current.login('ivan', 'ivan-password');
  assert.deepEqual(paramsOf(), DEFAULT_SCRYPT_PARAMS);
  await current.login('ivan', 'ivan-password');
});

void test('quorum keys: RSA 2048 and EC P-256/P-384 accepted; weak or other keys refused', async () => {
  const { users, admin } = await device();
  const spki = (k: ReturnType<typeof generateKeyPairSync>['publicKey']): Uint8Array => k.export({ type: 'spki', format: 'der' });
  await users.registerQuorumKey(admin, spki(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey));
  assert.equal(users.quorumKeyOf('admin')?.asymmetricKeyType, 'rsa');
  await users.registerQuorumKey(admin, spki(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey));
  await users.registerQuorumKey(admin, spki(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
  assert.equal(users.quorumKeyOf('admin')?.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const refused = [
    spki(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
    spki(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey),
    spki(generateKeyPairSync('ed25519').publicKey),
    new Uint8Array(0),
    new Uint8Array(3000),
    Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01),
  ];
  for (const k of refused) await assert.rejects(async () => { await users.registerQuorumKey(admin, k); }, fails('COFFER_QUORUM_KEY_INVALID'));
  const app = await users.login('app_user', APP);
  await assert.rejects(async () => { await users.registerQuorumKey(app, refused[1] ?? new Uint8Array(0)); }, fails('COFFER_PERMISSION_DENIED'));
  assert.deepEqual(users.quorumApprovers('admin'), ['admin']);
});

void test('user record codec: round trip; bad magic, unknown version, truncation and trailing bytes refused', async () => {
  const { store } = await device();
  const bytes = store.get('user', 'admin');
  assert.ok(bytes !== undefined);
  const record = decodeUserRecord(bytes);
  assert.equal(record.role, 'admin');
  assert.deepEqual(encodeUserRecord(record), bytes);
  const at = (i: number, v: number): Uint8Array => {
    const m = bytes.slice();
    m[i] = v;
    return m;
  };
  assert.throws(() => decodeUserRecord(at(0, 0)), fails('COFFER_FORMAT_BAD_MAGIC'));
  assert.throws(() => decodeUserRecord(at(5, 2)), fails('COFFER_FORMAT_UNKNOWN_VERSION'));
  assert.throws(() => decodeUserRecord(at(6, 40)), fails('COFFER_FORMAT_LIMIT'));
  assert.throws(() => decodeUserRecord(at(12, 9)), fails('COFFER_FORMAT_MALFORMED')); // role code
  assert.throws(() => decodeUserRecord(at(13, LOGIN_FAILURES_MAX + 1)), fails('COFFER_FORMAT_MALFORMED'));
  assert.throws(() => decodeUserRecord(at(7, 0x41)), fails('COFFER_FORMAT_MALFORMED')); // 'Admin': not normalised
  for (let n = 0; n < bytes.length; n++) assert.throws(() => decodeUserRecord(bytes.subarray(0, n)), fails('COFFER_FORMAT_TRUNCATED'));
  assert.throws(() => decodeUserRecord(Uint8Array.of(...bytes, 0)), fails('COFFER_FORMAT_MALFORMED'));
});
