// The cluster token's return values, function by function as PKCS#11 v2.40 §5 states them, called
// without the transport against a development cluster of real node processes (the rules of the
// calls the real-client test in test/cli/pkcs11_command.test.ts does not reach). Signatures made
// through the token are checked with node:crypto against the public key the token shows.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCipheriv, createHash, createHmac, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { Cluster } from '../../src/client/cluster.js';
import { isCofferError } from '../../src/errors.js';
import { RANDOM_BYTES_MAX } from '../../src/formats/limits.js';
import { startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { clusterBackend, type ClusterBackend } from '../../src/pkcs11/cluster_backend.js';
import type { Pkcs11Connection } from '../../src/pkcs11/backend.js';
import { CKA, CKM, CKR } from '../../src/pkcs11/constants.js';
import type { Attribute, Mechanism, OutBuffer } from '../../src/pkcs11/rpc_codec.js';

// PKCS#11 v2.40 values written from the specification (§4.1, §4.8, §5.1), not from the code under test.
const CKF_RW_SERIAL = 0x6n;
const CKF_SERIAL = 0x4n;
const CKU_SO = 0n;
const CKU_USER = 1n;
const CKO_PUBLIC_KEY = 2n;
const CKO_PRIVATE_KEY = 3n;
const CKO_SECRET_KEY = 4n;
const P256_PARAMS = Uint8Array.from(Buffer.from('06082a8648ce3d030107', 'hex'));

const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-token-'));
let dev: DevelopmentCluster;
let pin: Uint8Array;
before(async () => {
  dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1 });
  pin = new TextEncoder().encode(`${dev.cryptoUser.name}:${dev.cryptoUser.password}`);
});
after(async () => {
  await dev.stop();
  rmSync(dir, { recursive: true, force: true });
});

let connections = 0;
function token(): { backend: ClusterBackend; c: Pkcs11Connection } {
  const backend = clusterBackend({
    connect: (credentials) => Cluster.connect({ endpoints: dev.nodes.map((n) => ({ host: n.host, port: n.port })), ca: dev.customerCaPem, credentials }),
    label: 'test', serial: '1',
  });
  return { backend, c: { id: `c${++connections}`, version: 0 } };
}

const buf = (length: number): OutBuffer => ({ present: true, length });
const none: OutBuffer = { present: false, length: 0 };
const mech = (type: number, parameter: Mechanism['parameter'] = { kind: 'none' }): Mechanism => ({ type, parameter });
const bool = (type: number, value: boolean): Attribute => ({ type, value: { kind: 'byte', value: value ? 1 : 0 } });
const ulong = (type: number, value: bigint): Attribute => ({ type, value: { kind: 'ulong', value } });
const bytes = (type: number, value: Uint8Array): Attribute => ({ type, value: { kind: 'bytes', value } });

/** Calls a handler the backend must have. */
async function call<K extends keyof ClusterBackend>(b: ClusterBackend, name: K, req: Parameters<NonNullable<ClusterBackend[K]>>[0], c: Pkcs11Connection) {
  const h = b[name] as ((r: typeof req, c: Pkcs11Connection) => unknown) | undefined;
  assert.ok(h !== undefined, `${String(name)} is implemented`);
  return (await h(req, c)) as { rv: number; out?: Record<string, unknown> };
}

async function session(b: ClusterBackend, c: Pkcs11Connection, flags = CKF_RW_SERIAL): Promise<bigint> {
  const r = await call(b, 'C_OpenSession', { slotId: 1n, flags }, c);
  assert.equal(r.rv, CKR.OK);
  return r.out?.['session'] as bigint;
}

async function loggedIn(): Promise<{ b: ClusterBackend; c: Pkcs11Connection; s: bigint }> {
  const { backend: b, c } = token();
  const s = await session(b, c);
  assert.equal((await call(b, 'C_Login', { session: s, userType: CKU_USER, pin: pin.slice() }, c)).rv, CKR.OK);
  return { b, c, s };
}

async function ecPair(b: ClusterBackend, c: Pkcs11Connection, s: bigint, label: string): Promise<{ pub: bigint; priv: bigint }> {
  const r = await call(b, 'C_GenerateKeyPair', {
    session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN),
    publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS), bool(CKA.VERIFY, true), bool(CKA.TOKEN, true), bytes(CKA.LABEL, new TextEncoder().encode(label))],
    privateKeyTemplate: [bool(CKA.SIGN, true), bool(CKA.TOKEN, true), bytes(CKA.LABEL, new TextEncoder().encode(label))],
  }, c);
  assert.equal(r.rv, CKR.OK);
  return { pub: r.out?.['publicKey'] as bigint, priv: r.out?.['privateKey'] as bigint };
}

test('sessions and login: handle, user type, already logged in, wrong PIN, read-only session rules', async () => {
  const { backend: b, c } = token();
  assert.equal((await call(b, 'C_OpenSession', { slotId: 1n, flags: 0n }, c)).rv, CKR.SESSION_PARALLEL_NOT_SUPPORTED);
  assert.equal((await call(b, 'C_OpenSession', { slotId: 9n, flags: CKF_SERIAL }, c)).rv, CKR.SLOT_ID_INVALID);
  const ro = await session(b, c, CKF_SERIAL);
  assert.equal((await call(b, 'C_CloseSession', { session: 999n }, c)).rv, CKR.SESSION_HANDLE_INVALID);
  assert.equal((await call(b, 'C_Login', { session: 999n, userType: CKU_USER, pin: pin.slice() }, c)).rv, CKR.SESSION_HANDLE_INVALID);
  assert.equal((await call(b, 'C_Login', { session: ro, userType: 7n, pin: pin.slice() }, c)).rv, CKR.USER_TYPE_INVALID);
  assert.equal((await call(b, 'C_Login', { session: ro, userType: CKU_SO, pin: pin.slice() }, c)).rv, CKR.SESSION_READ_ONLY_EXISTS);
  assert.equal((await call(b, 'C_Logout', { session: ro }, c)).rv, CKR.USER_NOT_LOGGED_IN);
  assert.equal((await call(b, 'C_Login', { session: ro, userType: CKU_USER, pin: new TextEncoder().encode('no-colon-here') }, c)).rv, CKR.PIN_INCORRECT);
  // A wrong password is the registry's COFFER_AUTH_FAILED, whose CK_RV is CKR_PIN_INCORRECT (the server maps it).
  await assert.rejects(call(b, 'C_Login', { session: ro, userType: CKU_USER, pin: new TextEncoder().encode(`${dev.cryptoUser.name}:wrong-password`) }, c), { code: 'COFFER_AUTH_FAILED', ckr: 'CKR_PIN_INCORRECT' });
  // Objects are private: nothing is found before login; key generation needs it.
  assert.equal((await call(b, 'C_FindObjectsInit', { session: ro, template: [] }, c)).rv, CKR.OK);
  assert.deepEqual((await call(b, 'C_FindObjects', { session: ro, objects: buf(10) }, c)).out, { objects: [] });
  assert.equal((await call(b, 'C_FindObjectsInit', { session: ro, template: [] }, c)).rv, CKR.OPERATION_ACTIVE);
  assert.equal((await call(b, 'C_FindObjectsFinal', { session: ro }, c)).rv, CKR.OK);
  assert.equal((await call(b, 'C_FindObjectsFinal', { session: ro }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
  assert.equal((await call(b, 'C_GenerateKey', { session: ro, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 32n)] }, c)).rv, CKR.USER_NOT_LOGGED_IN);
  assert.equal((await call(b, 'C_GenerateRandom', { session: ro, randomData: buf(16) }, c)).rv, CKR.USER_NOT_LOGGED_IN);
  assert.equal((await call(b, 'C_SignInit', { session: ro, mechanism: mech(CKM.ECDSA), key: 1n }, c)).rv, CKR.USER_NOT_LOGGED_IN);
  assert.equal((await call(b, 'C_GetAttributeValue', { session: ro, object: 1n, template: [{ type: CKA.CLASS, length: 8 }] }, c)).rv, CKR.OBJECT_HANDLE_INVALID);

  const passed = pin.slice();
  assert.equal((await call(b, 'C_Login', { session: ro, userType: CKU_USER, pin: passed }, c)).rv, CKR.OK);
  assert.ok(passed.every((x) => x === 0), 'the PIN bytes are zeroised after login');
  assert.equal((await call(b, 'C_Login', { session: ro, userType: CKU_USER, pin: pin.slice() }, c)).rv, CKR.USER_ALREADY_LOGGED_IN);
  assert.equal((await call(b, 'C_Login', { session: ro, userType: CKU_SO, pin: pin.slice() }, c)).rv, CKR.USER_ANOTHER_ALREADY_LOGGED_IN);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: ro }, c)).out?.['state'], 1n); // CKS_RO_USER_FUNCTIONS
  // A token object cannot be made in a read-only session (§5.6).
  assert.equal((await call(b, 'C_GenerateKey', { session: ro, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 32n), bool(CKA.TOKEN, true)] }, c)).rv, CKR.SESSION_READ_ONLY);
  const r = await call(b, 'C_GenerateRandom', { session: ro, randomData: buf(40) }, c);
  assert.equal((r.out?.['randomData'] as Uint8Array).length, 40);
  // Closing the last session logs the application out (§5.6).
  assert.equal((await call(b, 'C_CloseSession', { session: ro }, c)).rv, CKR.OK);
  const again = await session(b, c);
  assert.equal((await call(b, 'C_GetSessionInfo', { session: again }, c)).out?.['state'], 2n); // CKS_RW_PUBLIC_SESSION
  await b.release?.(c);
  assert.equal(b.applications(), 0);
});

test('what pkcs11test checks of the token: a wrong PIN shows in the token flags until a good login, the mechanism list is what the client can carry, random into no buffer, a template without a class', async () => {
  const CKF_USER_PIN_COUNT_LOW = 0x10000n;
  const CKF_SO_PIN_COUNT_LOW = 0x100000n;
  const { backend: b, c } = token();
  const flags = async (conn: Pkcs11Connection): Promise<bigint> => (await call(b, 'C_GetTokenInfo', { slotId: 1n }, conn)).out?.['flags'] as bigint;
  const s = await session(b, c);
  assert.equal((await flags(c)) & (CKF_USER_PIN_COUNT_LOW | CKF_SO_PIN_COUNT_LOW), 0n);
  await assert.rejects(call(b, 'C_Login', { session: s, userType: CKU_USER, pin: new TextEncoder().encode(`${dev.cryptoUser.name}:wrong-password`) }, c), { ckr: 'CKR_PIN_INCORRECT' });
  // The token's flag, so another application of this bridge sees it too; the SO's is its own.
  const other: Pkcs11Connection = { id: `c${++connections}`, version: 2 };
  assert.equal((await flags(other)) & (CKF_USER_PIN_COUNT_LOW | CKF_SO_PIN_COUNT_LOW), CKF_USER_PIN_COUNT_LOW);
  assert.equal((await call(b, 'C_Login', { session: s, userType: CKU_SO, pin: new TextEncoder().encode('no-colon-here') }, c)).rv, CKR.PIN_INCORRECT);
  assert.equal((await flags(c)) & (CKF_USER_PIN_COUNT_LOW | CKF_SO_PIN_COUNT_LOW), CKF_USER_PIN_COUNT_LOW | CKF_SO_PIN_COUNT_LOW);
  assert.equal((await call(b, 'C_Login', { session: s, userType: CKU_USER, pin: pin.slice() }, c)).rv, CKR.OK);
  assert.equal((await flags(c)) & (CKF_USER_PIN_COUNT_LOW | CKF_SO_PIN_COUNT_LOW), CKF_SO_PIN_COUNT_LOW);

  // C_GetMechanismList: the length query and the list agree, and hold only what the client's p11-kit
  // can send; C_GetMechanismInfo still answers the others.
  const list = async (conn: Pkcs11Connection): Promise<bigint[]> => {
    const count = (await call(b, 'C_GetMechanismList', { slotId: 1n, mechanismList: none }, conn)).out?.['mechanismList'] as { lengthOnly: number };
    const full = (await call(b, 'C_GetMechanismList', { slotId: 1n, mechanismList: buf(count.lengthOnly + 3) }, conn)).out?.['mechanismList'] as bigint[];
    assert.equal(full.length, count.lengthOnly);
    return full;
  };
  const v0 = await list(c);
  const v2 = await list(other);
  for (const m of [CKM.ECDSA, CKM.RSA_PKCS_PSS, CKM.RSA_PKCS_OAEP, CKM.SHA256_RSA_PKCS, CKM.EC_KEY_PAIR_GEN, CKM.SHA256]) assert.ok(v0.includes(BigInt(m)), `0.24 carries 0x${m.toString(16)}`);
  for (const m of [CKM.ECDSA_SHA256, CKM.AES_GCM, CKM.AES_CBC_PAD, CKM.ECDH1_DERIVE, CKM.SHA224]) {
    assert.ok(!v0.includes(BigInt(m)), `0.24 cannot carry 0x${m.toString(16)}`);
    assert.ok(v2.includes(BigInt(m)), `0.25.6 carries 0x${m.toString(16)}`);
  }
  // No p11-kit release carries the key wrap mechanisms: listed to none, served to a client that sends them.
  for (const list of [v0, v2]) assert.ok(!list.includes(BigInt(CKM.AES_KEY_WRAP)) && !list.includes(BigInt(CKM.AES_KEY_WRAP_PAD)));
  assert.equal((await call(b, 'C_GetMechanismInfo', { slotId: 1n, type: BigInt(CKM.AES_KEY_WRAP) }, c)).rv, CKR.OK);

  // C_GenerateRandom into a NULL buffer: from protocol 1 the client says so, and it is CKR_ARGUMENTS_BAD
  // (§5.15); p11-kit 0.24 sends a NULL and an empty buffer alike, so protocol 0 gets the empty answer.
  const s2 = await session(b, other);
  assert.equal((await call(b, 'C_Login', { session: s2, userType: CKU_USER, pin: pin.slice() }, other)).rv, CKR.OK);
  assert.equal((await call(b, 'C_GenerateRandom', { session: s2, randomData: none }, other)).rv, CKR.ARGUMENTS_BAD);
  assert.equal(((await call(b, 'C_GenerateRandom', { session: s2, randomData: buf(0) }, other)).out?.['randomData'] as Uint8Array).length, 0);
  assert.equal(((await call(b, 'C_GenerateRandom', { session: s, randomData: none }, c)).out?.['randomData'] as Uint8Array).length, 0);

  // A template without CKA_CLASS is incomplete, before any other attribute is judged; its values are wiped.
  const value = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
  assert.equal((await call(b, 'C_CreateObject', { session: s, template: [bytes(CKA.VALUE, value)] }, c)).rv, CKR.TEMPLATE_INCOMPLETE);
  assert.deepEqual([...value], [0, 0, 0, 0]);
  assert.equal((await call(b, 'C_CreateObject', { session: s, template: [] }, c)).rv, CKR.TEMPLATE_INCOMPLETE);
  await b.release?.(c);
  await b.release?.(other);
});

test('an application that goes while its login is under way leaves no cluster connection behind', async () => {
  const made: Cluster[] = [];
  const b = clusterBackend({
    connect: async (credentials) => {
      const cluster = await Cluster.connect({ endpoints: dev.nodes.map((n) => ({ host: n.host, port: n.port })), ca: dev.customerCaPem, credentials });
      made.push(cluster);
      return cluster;
    },
    label: 'test', serial: '1',
  });
  const c: Pkcs11Connection = { id: 'gone', version: 0 };
  const s = await session(b, c);
  const login = call(b, 'C_Login', { session: s, userType: CKU_USER, pin: pin.slice() }, c);
  await b.release?.(c);
  assert.equal((await login).rv, CKR.CRYPTOKI_NOT_INITIALIZED);
  assert.equal(made.length, 1);
  assert.ok(made[0]!.nodes.every((n) => n.state === 'down'), 'the cluster made for it is closed');
  assert.equal(b.applications(), 0);
});

test('C_GenerateRandom calls that arrive together share one HSM call, each with its own bytes; a group holds at most RANDOM_BYTES_MAX; a failed call fails its whole group', async () => {
  // The real cluster, watched: every RANDOM the backend asks of it is recorded with its length.
  const asked: number[] = [];
  let cluster: Cluster | undefined;
  const b = clusterBackend({
    connect: async (credentials) => {
      const real = await Cluster.connect({ endpoints: dev.nodes.map((n) => ({ host: n.host, port: n.port })), ca: dev.customerCaPem, credentials });
      cluster = real;
      return new Proxy(real, {
        get(target, prop) {
          if (prop === 'random') return async (length: number) => (asked.push(length), target.random(length));
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
    label: 'test', serial: '1',
  });
  const c: Pkcs11Connection = { id: `c${++connections}`, version: 0 };
  const s = await session(b, c);
  assert.equal((await call(b, 'C_Login', { session: s, userType: CKU_USER, pin: pin.slice() }, c)).rv, CKR.OK);
  const together = async (lengths: readonly number[]): Promise<Uint8Array[]> => {
    // Started in one synchronous loop, as the frames of one socket read are served.
    const answers = await Promise.all(lengths.map((n) => call(b, 'C_GenerateRandom', { session: s, randomData: buf(n) }, c)));
    return answers.map((r, i) => {
      assert.equal(r.rv, CKR.OK);
      const bytes = r.out?.['randomData'] as Uint8Array;
      assert.equal(bytes.length, lengths[i]);
      return bytes;
    });
  };

  asked.length = 0;
  const four = await together([32, 1, 100, 32]);
  assert.deepEqual(asked, [165]);
  const hex = four.map((x) => Buffer.from(x).toString('hex'));
  assert.equal(new Set(hex).size, 4, 'no two calls get the same bytes');

  // Calls of separate turns are not held back for one another.
  asked.length = 0;
  for (const n of [16, 16]) await together([n]);
  assert.deepEqual(asked, [16, 16]);

  // A call that would take a group past one RANDOM's most starts the next group; a call longer than
  // that is served in pieces, the later ones in later turns.
  asked.length = 0;
  await together([RANDOM_BYTES_MAX, 16, RANDOM_BYTES_MAX - 10, 3]);
  assert.deepEqual(asked, [RANDOM_BYTES_MAX, 16, RANDOM_BYTES_MAX - 10 + 3]);
  asked.length = 0;
  await together([RANDOM_BYTES_MAX + 5]);
  assert.deepEqual(asked, [RANDOM_BYTES_MAX, 5]);

  // The HSM call fails (its cluster closed under it): every call of the group fails with its error,
  // which the server answers as that error's CK_RV.
  assert.ok(cluster !== undefined);
  await cluster.close();
  asked.length = 0;
  const failed = await Promise.allSettled([8, 8, 8].map((n) => call(b, 'C_GenerateRandom', { session: s, randomData: buf(n) }, c)));
  assert.deepEqual(asked, [24]);
  for (const r of failed) assert.ok(r.status === 'rejected' && isCofferError(r.reason) && r.reason.code === 'COFFER_CLUSTER_UNAVAILABLE', String(r.status === 'rejected' ? r.reason : r.value.rv));
  await b.release?.(c);
});

test('key generation templates: incomplete, inconsistent, invalid type, size and curve', async () => {
  const { b, c, s } = await loggedIn();
  try {
    const gen = (mechanism: Mechanism, pub: Attribute[], priv: Attribute[] = []) => call(b, 'C_GenerateKeyPair', { session: s, mechanism, publicKeyTemplate: pub, privateKeyTemplate: priv }, c);
    assert.equal((await gen(mech(CKM.RSA_PKCS_KEY_PAIR_GEN), [])).rv, CKR.TEMPLATE_INCOMPLETE);
    assert.equal((await gen(mech(CKM.RSA_PKCS_KEY_PAIR_GEN), [ulong(CKA.MODULUS_BITS, 1024n)])).rv, CKR.KEY_SIZE_RANGE);
    assert.equal((await gen(mech(CKM.EC_KEY_PAIR_GEN), [])).rv, CKR.TEMPLATE_INCOMPLETE);
    assert.equal((await gen(mech(CKM.EC_KEY_PAIR_GEN), [bytes(CKA.EC_PARAMS, Uint8Array.of(6, 3, 1, 2, 3))])).rv, CKR.CURVE_NOT_SUPPORTED);
    assert.equal((await gen(mech(CKM.EC_KEY_PAIR_GEN), [bytes(CKA.EC_PARAMS, P256_PARAMS), ulong(CKA.CLASS, CKO_PRIVATE_KEY)])).rv, CKR.TEMPLATE_INCONSISTENT);
    assert.equal((await gen(mech(CKM.EC_KEY_PAIR_GEN), [bytes(CKA.EC_PARAMS, P256_PARAMS)], [ulong(CKA.KEY_TYPE, 0n)])).rv, CKR.TEMPLATE_INCONSISTENT);
    assert.equal((await gen(mech(CKM.EC_KEY_PAIR_GEN), [bytes(CKA.EC_PARAMS, P256_PARAMS)], [bytes(0x101, Uint8Array.of(1))])).rv, CKR.ATTRIBUTE_TYPE_INVALID); // CKA_SUBJECT
    assert.equal((await gen(mech(CKM.AES_KEY_GEN), [])).rv, CKR.MECHANISM_INVALID);
    const key = (template: Attribute[]) => call(b, 'C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template }, c);
    assert.equal((await key([])).rv, CKR.TEMPLATE_INCOMPLETE);
    assert.equal((await key([ulong(CKA.VALUE_LEN, 20n)])).rv, CKR.KEY_SIZE_RANGE);
    assert.equal((await key([ulong(CKA.VALUE_LEN, 32n), ulong(CKA.CLASS, CKO_PUBLIC_KEY)])).rv, CKR.TEMPLATE_INCONSISTENT);

    // C_CreateObject takes public keys only, whole.
    const create = (template: Attribute[]) => call(b, 'C_CreateObject', { session: s, template }, c);
    const rsaPub = [ulong(CKA.CLASS, CKO_PUBLIC_KEY), ulong(CKA.KEY_TYPE, 0n)];
    assert.equal((await create([ulong(CKA.KEY_TYPE, 0n)])).rv, CKR.TEMPLATE_INCOMPLETE);
    assert.equal((await create(rsaPub)).rv, CKR.TEMPLATE_INCOMPLETE);
    assert.equal((await create([ulong(CKA.CLASS, CKO_PRIVATE_KEY), ulong(CKA.KEY_TYPE, 0n)])).rv, CKR.TEMPLATE_INCONSISTENT);
    // A secret key with its value, as pkcs11-tool --write-object --type secrkey sends it: refused by
    // its class (not CKR_ATTRIBUTE_TYPE_INVALID for CKA_VALUE), and the value it carried is wiped.
    const value = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    const secret = [ulong(CKA.CLASS, 4n), ulong(CKA.KEY_TYPE, 0x1fn), bytes(CKA.VALUE, value), bytes(CKA.LABEL, Buffer.from('plain')), bytes(CKA.ID, Uint8Array.of(0x29))];
    assert.equal((await create(secret)).rv, CKR.TEMPLATE_INCONSISTENT);
    assert.deepEqual(value, new Uint8Array(32), 'the plaintext value is zeroed');
    assert.equal((await create([ulong(CKA.CLASS, 0n), bytes(CKA.VALUE, Uint8Array.of(1))])).rv, CKR.TEMPLATE_INCONSISTENT, 'a data object');
    assert.equal((await create([ulong(CKA.CLASS, CKO_PUBLIC_KEY), ulong(CKA.KEY_TYPE, 3n), bytes(CKA.EC_PARAMS, Uint8Array.of(6, 3, 1, 2, 3)), bytes(CKA.EC_POINT, Uint8Array.of(4, 1, 4))])).rv, CKR.CURVE_NOT_SUPPORTED);
    assert.equal((await create([ulong(CKA.CLASS, CKO_PUBLIC_KEY), ulong(CKA.KEY_TYPE, 3n), bytes(CKA.EC_PARAMS, P256_PARAMS), bytes(CKA.EC_POINT, Uint8Array.of(4, 3, 4, 1, 2))])).rv, CKR.ATTRIBUTE_VALUE_INVALID);
    // A modulus too small is the HSM's refusal, answered with its registry CK_RV by the server.
    await assert.rejects(create([...rsaPub, bytes(CKA.MODULUS, Uint8Array.of(0xc5)), bytes(CKA.PUBLIC_EXPONENT, Uint8Array.of(1, 0, 1))]), { ckr: 'CKR_KEY_SIZE_RANGE' });
  } finally {
    await b.release?.(c);
  }
});

test('attributes: sensitive and invalid ones unavailable, the two-call length rule, find by template', async () => {
  const { b, c, s } = await loggedIn();
  try {
    const { pub, priv } = await ecPair(b, c, s, 'attr-test');
    const get = (object: bigint, template: { type: number; length: number }[]) => call(b, 'C_GetAttributeValue', { session: s, object, template }, c);
    const sens = await get(priv, [{ type: CKA.VALUE, length: 100 }, { type: CKA.CLASS, length: 8 }]);
    assert.equal(sens.rv, CKR.ATTRIBUTE_SENSITIVE);
    assert.deepEqual(sens.out?.['template'], [{ type: CKA.VALUE, unavailable: true }, { type: CKA.CLASS, value: { kind: 'ulong', value: CKO_PRIVATE_KEY } }]);
    const invalid = await get(pub, [{ type: CKA.MODULUS, length: 256 }]);
    assert.equal(invalid.rv, CKR.ATTRIBUTE_TYPE_INVALID);
    // Length query, then a buffer too small, then one that fits.
    const q = await get(pub, [{ type: CKA.EC_POINT, length: 0 }]);
    assert.deepEqual(q, { rv: CKR.OK, out: { template: [{ type: CKA.EC_POINT, lengthOnly: 67 }] } });
    assert.equal((await get(pub, [{ type: CKA.EC_POINT, length: 66 }])).rv, CKR.BUFFER_TOO_SMALL);
    const point = (await get(pub, [{ type: CKA.EC_POINT, length: 67 }])).out?.['template'] as { value: { value: Uint8Array } }[];
    const raw = point[0]!.value.value;
    assert.deepEqual([...raw.subarray(0, 3)], [0x04, 65, 0x04], 'a DER OCTET STRING of the uncompressed point');
    assert.equal((await get(987654321n, [{ type: CKA.CLASS, length: 8 }])).rv, CKR.OBJECT_HANDLE_INVALID);

    // Attribute changes: read-only and one-way attributes refused whole; label, id and usage changed.
    const set = (template: Attribute[]) => call(b, 'C_SetAttributeValue', { session: s, object: priv, template }, c);
    assert.equal((await set([bytes(CKA.LABEL, new TextEncoder().encode('renamed')), ulong(CKA.CLASS, CKO_SECRET_KEY)])).rv, CKR.ATTRIBUTE_READ_ONLY);
    assert.equal((await set([bool(CKA.SENSITIVE, false)])).rv, CKR.ATTRIBUTE_READ_ONLY);
    assert.equal((await set([bool(CKA.EXTRACTABLE, true)])).rv, CKR.ATTRIBUTE_READ_ONLY);
    assert.equal((await set([bytes(0x101, Uint8Array.of(1))])).rv, CKR.ATTRIBUTE_TYPE_INVALID);
    const kept = (await get(priv, [{ type: CKA.LABEL, length: 64 }])).out?.['template'] as { value: { value: Uint8Array } }[];
    assert.equal(new TextDecoder().decode(kept[0]!.value.value), 'attr-test', 'nothing of a refused template was applied');
    assert.equal((await set([bytes(CKA.LABEL, new TextEncoder().encode('renamed')), bytes(CKA.ID, Uint8Array.of(9, 9)), bool(CKA.SIGN, false)])).rv, CKR.OK);
    const after = (await get(priv, [{ type: CKA.LABEL, length: 64 }, { type: CKA.ID, length: 8 }, { type: CKA.SIGN, length: 1 }])).out?.['template'] as { value: { value: unknown } }[];
    assert.equal(new TextDecoder().decode(after[0]!.value.value as Uint8Array), 'renamed');
    assert.deepEqual([...(after[1]!.value.value as Uint8Array)], [9, 9]);
    assert.equal(after[2]!.value.value, 0);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key: priv }, c)).rv, CKR.KEY_FUNCTION_NOT_PERMITTED, 'CKA_SIGN false');
    assert.equal((await set([bytes(CKA.LABEL, new TextEncoder().encode('attr-test')), bool(CKA.SIGN, true)])).rv, CKR.OK);
    assert.deepEqual(await call(b, 'C_GetObjectSize', { session: s, object: priv }, c), { rv: CKR.OK, out: { size: 0xffff_ffff_ffff_ffffn } });

    // Find by a label the node filters, narrowed here by CKA_EC_POINT (which both halves of the pair
    // show): the pair, one handle per C_FindObjects of one slot; another point matches nothing.
    const label = bytes(CKA.LABEL, new TextEncoder().encode('attr-test'));
    assert.equal((await call(b, 'C_FindObjectsInit', { session: s, template: [label, bytes(CKA.EC_POINT, raw)] }, c)).rv, CKR.OK);
    const first = (await call(b, 'C_FindObjects', { session: s, objects: buf(1) }, c)).out?.['objects'] as bigint[];
    const second = (await call(b, 'C_FindObjects', { session: s, objects: buf(1) }, c)).out?.['objects'] as bigint[];
    assert.deepEqual([...first, ...second].sort(), [pub, priv].sort());
    assert.deepEqual((await call(b, 'C_FindObjects', { session: s, objects: buf(1) }, c)).out, { objects: [] });
    assert.equal((await call(b, 'C_FindObjectsFinal', { session: s }, c)).rv, CKR.OK);
    const other = Uint8Array.from(raw);
    other[40] = other[40]! ^ 1;
    assert.equal((await call(b, 'C_FindObjectsInit', { session: s, template: [label, bytes(CKA.EC_POINT, other)] }, c)).rv, CKR.OK);
    assert.deepEqual((await call(b, 'C_FindObjects', { session: s, objects: buf(5) }, c)).out, { objects: [] });
    assert.equal((await call(b, 'C_FindObjectsFinal', { session: s }, c)).rv, CKR.OK);
    // Certificates: the cluster holds none.
    assert.equal((await call(b, 'C_FindObjectsInit', { session: s, template: [ulong(CKA.CLASS, 1n)] }, c)).rv, CKR.OK);
    assert.deepEqual((await call(b, 'C_FindObjects', { session: s, objects: buf(5) }, c)).out, { objects: [] });
  } finally {
    await b.release?.(c);
  }
});

test('signature with recovery: templates may say false (as NSS\'s do) and not true; the pair reads false; setting false changes nothing, true is refused', async () => {
  const { b, c, s } = await loggedIn();
  try {
    const gen = (pub: Attribute[], priv: Attribute[]) => call(b, 'C_GenerateKeyPair', {
      session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN), publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS), bool(CKA.TOKEN, true), ...pub], privateKeyTemplate: [bool(CKA.TOKEN, true), ...priv],
    }, c);
    // NSS's certutil templates for an EC pair (PKCS#11 spy log), recovery false on both halves.
    const made = await gen(
      [bool(CKA.DERIVE, false), bool(CKA.WRAP, false), bool(CKA.VERIFY, true), bool(CKA.VERIFY_RECOVER, false), bool(CKA.ENCRYPT, false)],
      [bool(CKA.PRIVATE, true), bool(CKA.SENSITIVE, true), bool(CKA.DERIVE, false), bool(CKA.UNWRAP, false), bool(CKA.SIGN, true), bool(CKA.SIGN_RECOVER, false), bool(CKA.DECRYPT, false)],
    );
    assert.equal(made.rv, CKR.OK);
    assert.equal((await gen([bool(CKA.VERIFY_RECOVER, true)], [])).rv, CKR.ATTRIBUTE_VALUE_INVALID);
    assert.equal((await gen([], [bool(CKA.SIGN_RECOVER, true)])).rv, CKR.ATTRIBUTE_VALUE_INVALID);
    const keygen = await call(b, 'C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 32n), bool(CKA.SIGN_RECOVER, false)] }, c);
    assert.equal(keygen.rv, CKR.ATTRIBUTE_TYPE_INVALID, 'a secret key has no recovery attribute');
    const pub = made.out?.['publicKey'] as bigint;
    const priv = made.out?.['privateKey'] as bigint;
    const get = (object: bigint, type: number) => call(b, 'C_GetAttributeValue', { session: s, object, template: [{ type, length: 1 }] }, c);
    assert.deepEqual((await get(priv, CKA.SIGN_RECOVER)).out?.['template'], [{ type: CKA.SIGN_RECOVER, value: { kind: 'byte', value: 0 } }]);
    assert.deepEqual((await get(pub, CKA.VERIFY_RECOVER)).out?.['template'], [{ type: CKA.VERIFY_RECOVER, value: { kind: 'byte', value: 0 } }]);
    assert.equal((await get(pub, CKA.SIGN_RECOVER)).rv, CKR.ATTRIBUTE_TYPE_INVALID, 'a public key has no CKA_SIGN_RECOVER');
    const set = (object: bigint, template: Attribute[]) => call(b, 'C_SetAttributeValue', { session: s, object, template }, c);
    assert.equal((await set(priv, [bool(CKA.SIGN_RECOVER, false)])).rv, CKR.OK);
    assert.equal((await set(priv, [bool(CKA.SIGN_RECOVER, true)])).rv, CKR.ATTRIBUTE_VALUE_INVALID);
    assert.equal((await set(priv, [bool(CKA.VERIFY_RECOVER, false)])).rv, CKR.ATTRIBUTE_TYPE_INVALID);
  } finally {
    await b.release?.(c);
  }
});

test('sign and verify: init rules, the two-call rule keeps the operation, multi-part, signatures verified by node:crypto', async () => {
  const { b, c, s } = await loggedIn();
  try {
    const { pub, priv } = await ecPair(b, c, s, 'sign-test');
    const point = ((await call(b, 'C_GetAttributeValue', { session: s, object: pub, template: [{ type: CKA.EC_POINT, length: 67 }] }, c)).out?.['template'] as { value: { value: Uint8Array } }[])[0]!.value.value;
    const spki = Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), point.subarray(2)]);
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });

    assert.equal((await call(b, 'C_Sign', { session: s, data: Uint8Array.of(1), signature: buf(64) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.SHA256_RSA_PKCS), key: priv }, c)).rv, CKR.KEY_TYPE_INCONSISTENT);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.MD5), key: priv }, c)).rv, CKR.MECHANISM_INVALID);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key: pub }, c)).rv, CKR.KEY_TYPE_INCONSISTENT);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key: 424242n }, c)).rv, CKR.KEY_HANDLE_INVALID);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key: priv }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key: priv }, c)).rv, CKR.OPERATION_ACTIVE);
    // CKM_ECDSA is single-part (§2.3.6): an update ends the operation.
    assert.equal((await call(b, 'C_SignUpdate', { session: s, part: Uint8Array.of(1) }, c)).rv, CKR.FUNCTION_NOT_SUPPORTED);
    assert.equal((await call(b, 'C_Sign', { session: s, data: Uint8Array.of(1), signature: buf(64) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);

    const digest = createHash('sha256').update('two-call').digest();
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key: priv }, c)).rv, CKR.OK);
    assert.deepEqual(await call(b, 'C_Sign', { session: s, data: digest, signature: none }, c), { rv: CKR.OK, out: { signature: { lengthOnly: 64 } } });
    assert.deepEqual(await call(b, 'C_Sign', { session: s, data: digest, signature: buf(10) }, c), { rv: CKR.BUFFER_TOO_SMALL, out: { signature: { lengthOnly: 64 } } });
    const sig = (await call(b, 'C_Sign', { session: s, data: digest, signature: buf(64) }, c)).out?.['signature'] as Uint8Array;
    assert.ok(nodeVerify('sha256', Buffer.from('two-call'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig));
    assert.equal((await call(b, 'C_Sign', { session: s, data: digest, signature: buf(64) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED, 'a successful C_Sign ends the operation');

    // Single-part and multi-part do not mix, and the call that tries ends the operation (§5.9: every
    // C_Sign, C_SignUpdate and C_SignFinal does but a length query and CKR_BUFFER_TOO_SMALL). Once
    // C_Sign's output waits (a length query), an update or a final is refused...
    for (const mixed of ['C_SignUpdate', 'C_SignFinal'] as const) {
      assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA_SHA256), key: priv }, c)).rv, CKR.OK);
      assert.deepEqual(await call(b, 'C_Sign', { session: s, data: Buffer.from('one-shot'), signature: none }, c), { rv: CKR.OK, out: { signature: { lengthOnly: 64 } } });
      const r = mixed === 'C_SignUpdate' ? await call(b, mixed, { session: s, part: Buffer.from('more') }, c) : await call(b, mixed, { session: s, signature: buf(64) }, c);
      assert.equal(r.rv, CKR.OPERATION_ACTIVE, mixed);
      assert.equal((await call(b, 'C_Sign', { session: s, data: Buffer.from('one-shot'), signature: buf(64) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED, `${mixed} ended it`);
    }
    // ...and after an update, C_Sign is.
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA_SHA256), key: priv }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_SignUpdate', { session: s, part: Buffer.from('multi-') }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_Sign', { session: s, data: Uint8Array.of(1), signature: buf(64) }, c)).rv, CKR.OPERATION_ACTIVE);
    assert.equal((await call(b, 'C_SignFinal', { session: s, signature: buf(64) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);

    // Multi-part ECDSA-SHA256.
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA_SHA256), key: priv }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_SignUpdate', { session: s, part: Buffer.from('multi-') }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_SignUpdate', { session: s, part: Buffer.from('part') }, c)).rv, CKR.OK);
    const multi = (await call(b, 'C_SignFinal', { session: s, signature: buf(64) }, c)).out?.['signature'] as Uint8Array;
    assert.ok(nodeVerify('sha256', Buffer.from('multi-part'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, multi));

    // Verify: valid, then tampered (CKR_SIGNATURE_INVALID), both ending the operation.
    assert.equal((await call(b, 'C_VerifyInit', { session: s, mechanism: mech(CKM.ECDSA_SHA256), key: pub }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_Verify', { session: s, data: Buffer.from('multi-part'), signature: multi }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_VerifyInit', { session: s, mechanism: mech(CKM.ECDSA_SHA256), key: pub }, c)).rv, CKR.OK);
    const bad = Uint8Array.from(multi);
    bad[10] = bad[10]! ^ 1;
    assert.equal((await call(b, 'C_Verify', { session: s, data: Buffer.from('multi-part'), signature: bad }, c)).rv, CKR.SIGNATURE_INVALID);
    assert.equal((await call(b, 'C_Verify', { session: s, data: Buffer.from('multi-part'), signature: multi }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
  } finally {
    await b.release?.(c);
  }
});

test('an Init checked against a remembered description never lets a key sign after another application revoked CKA_SIGN; a change here is seen at once', async () => {
  const one = await loggedIn();
  const two = await loggedIn();
  try {
    const digest = createHash('sha256').update('revoked').digest();
    const signs = async (priv: bigint): Promise<boolean> => {
      const init = await call(one.b, 'C_SignInit', { session: one.s, mechanism: mech(CKM.ECDSA), key: priv }, one.c);
      if (init.rv !== CKR.OK) {
        assert.equal(init.rv, CKR.KEY_FUNCTION_NOT_PERMITTED);
        return false;
      }
      // Init passed on the remembered description: the HSM itself must refuse the signature.
      const signed = await call(one.b, 'C_Sign', { session: one.s, data: digest, signature: buf(64) }, one.c).catch((e: unknown) => e);
      if (isCofferError(signed)) {
        assert.equal(signed.code, 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
        return false;
      }
      return (signed as { rv: number }).rv === CKR.OK;
    };
    const first = await ecPair(one.b, one.c, one.s, 'revoked-elsewhere');
    assert.equal(await signs(first.priv), true, 'the key signs, and its description is remembered');
    assert.equal((await call(two.b, 'C_SetAttributeValue', { session: two.s, object: first.priv, template: [bool(CKA.SIGN, false)] }, two.c)).rv, CKR.OK);
    assert.equal(await signs(first.priv), false, 'revoked by another application: no signature, whatever Init saw');

    const second = await ecPair(one.b, one.c, one.s, 'revoked-here');
    assert.equal(await signs(second.priv), true);
    assert.equal((await call(one.b, 'C_SetAttributeValue', { session: one.s, object: second.priv, template: [bool(CKA.SIGN, false)] }, one.c)).rv, CKR.OK);
    assert.equal((await call(one.b, 'C_SignInit', { session: one.s, mechanism: mech(CKM.ECDSA), key: second.priv }, one.c)).rv, CKR.KEY_FUNCTION_NOT_PERMITTED, 'a change through this application drops its description at once');
  } finally {
    await one.b.release?.(one.c);
    await two.b.release?.(two.c);
  }
});

test('HMAC: a generic secret made by CKM_GENERIC_SECRET_KEY_GEN signs and verifies SHA-2 HMACs equal to node:crypto\'s under its value, single and multi-part', async () => {
  const { b, c, s } = await loggedIn();
  try {
    const CKK_GENERIC_SECRET = 0x10n;
    const gen = (template: Attribute[], type: number = CKM.GENERIC_SECRET_KEY_GEN) => call(b, 'C_GenerateKey', { session: s, mechanism: mech(type), template }, c);
    assert.equal((await gen([bool(CKA.SIGN, true)])).rv, CKR.TEMPLATE_INCOMPLETE, 'no CKA_VALUE_LEN');
    assert.equal((await gen([ulong(CKA.VALUE_LEN, 0n)])).rv, CKR.KEY_SIZE_RANGE);
    assert.equal((await gen([ulong(CKA.VALUE_LEN, 1025n)])).rv, CKR.KEY_SIZE_RANGE);
    assert.equal((await gen([ulong(CKA.VALUE_LEN, 32n), ulong(CKA.KEY_TYPE, 0x1fn)])).rv, CKR.TEMPLATE_INCONSISTENT, 'an AES key type from the generic generator');
    assert.equal((await gen([ulong(CKA.VALUE_LEN, 32n), ulong(CKA.KEY_TYPE, CKK_GENERIC_SECRET)], CKM.AES_KEY_GEN)).rv, CKR.TEMPLATE_INCONSISTENT);
    const made = await gen([ulong(CKA.VALUE_LEN, 48n), bool(CKA.SIGN, true), bool(CKA.VERIFY, true), bool(CKA.SENSITIVE, false), bool(CKA.EXTRACTABLE, true)]);
    assert.equal(made.rv, CKR.OK);
    const key = made.out?.['key'] as bigint;
    const shown = (await call(b, 'C_GetAttributeValue', { session: s, object: key, template: [{ type: CKA.KEY_TYPE, length: 8 }, { type: CKA.VALUE_LEN, length: 8 }, { type: CKA.VALUE, length: 48 }] }, c)).out?.['template'] as { value: { value: unknown } }[];
    assert.equal(shown[0]!.value.value, CKK_GENERIC_SECRET);
    assert.equal(shown[1]!.value.value, 48n);
    const value = shown[2]!.value.value as Uint8Array;
    assert.equal(value.length, 48);

    const info = (await call(b, 'C_GetMechanismInfo', { slotId: 1n, type: BigInt(CKM.SHA256_HMAC) }, c)).out as { minKeySize: bigint; maxKeySize: bigint; flags: bigint };
    assert.deepEqual([info.minKeySize, info.maxKeySize, info.flags & 0x2800n], [8n, 8192n, 0x2800n], 'sizes in bits, sign and verify');
    const data = Buffer.from('what the HMAC covers');
    for (const [type, hash, length] of [[CKM.SHA224_HMAC, 'sha224', 28], [CKM.SHA256_HMAC, 'sha256', 32], [CKM.SHA384_HMAC, 'sha384', 48], [CKM.SHA512_HMAC, 'sha512', 64]] as const) {
      const expected = createHmac(hash, value).update(data).digest();
      assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(type), key }, c)).rv, CKR.OK);
      assert.deepEqual(await call(b, 'C_Sign', { session: s, data, signature: none }, c), { rv: CKR.OK, out: { signature: { lengthOnly: length } } });
      const mac = (await call(b, 'C_Sign', { session: s, data, signature: buf(length) }, c)).out?.['signature'] as Uint8Array;
      assert.deepEqual(Buffer.from(mac), expected, hash);
      assert.equal((await call(b, 'C_VerifyInit', { session: s, mechanism: mech(type), key }, c)).rv, CKR.OK);
      assert.equal((await call(b, 'C_Verify', { session: s, data, signature: mac }, c)).rv, CKR.OK);
      const wrong = Uint8Array.from(mac);
      wrong[0] = wrong[0]! ^ 1;
      assert.equal((await call(b, 'C_VerifyInit', { session: s, mechanism: mech(type), key }, c)).rv, CKR.OK);
      assert.equal((await call(b, 'C_Verify', { session: s, data, signature: wrong }, c)).rv, CKR.SIGNATURE_INVALID);
    }
    // Multi-part: the parts are one message.
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.SHA512_HMAC), key }, c)).rv, CKR.OK);
    for (const part of ['what the ', 'HMAC ', 'covers']) assert.equal((await call(b, 'C_SignUpdate', { session: s, part: Buffer.from(part) }, c)).rv, CKR.OK);
    const multi = (await call(b, 'C_SignFinal', { session: s, signature: buf(64) }, c)).out?.['signature'] as Uint8Array;
    assert.deepEqual(Buffer.from(multi), createHmac('sha512', value).update(data).digest());

    // An HMAC needs a generic secret; a generic secret neither encrypts nor signs ECDSA.
    const aes = (await call(b, 'C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 32n)] }, c)).out?.['key'] as bigint;
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.SHA256_HMAC), key: aes }, c)).rv, CKR.KEY_TYPE_INCONSISTENT);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.ECDSA), key }, c)).rv, CKR.KEY_TYPE_INCONSISTENT);
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.SHA256_HMAC, { kind: 'bytes', bytes: Uint8Array.of(1) }), key }, c)).rv, CKR.MECHANISM_PARAM_INVALID);
    // A key made without CKA_SIGN cannot sign.
    const noSign = (await gen([ulong(CKA.VALUE_LEN, 32n), bool(CKA.SIGN, false)])).out?.['key'] as bigint;
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.SHA256_HMAC), key: noSign }, c)).rv, CKR.KEY_FUNCTION_NOT_PERMITTED);
  } finally {
    await b.release?.(c);
  }
});

test('digest: no login needed, two-call rule, multi-part, refusals', async () => {
  const { backend: b, c } = token();
  const s = await session(b, c, CKF_SERIAL);
  try {
    const sha384 = (d: string): Uint8Array => Uint8Array.from(createHash('sha384').update(d).digest());
    assert.equal((await call(b, 'C_Digest', { session: s, data: Uint8Array.of(1), digest: buf(48) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
    assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.MD5) }, c)).rv, CKR.MECHANISM_INVALID);
    assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.SHA384) }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.SHA384) }, c)).rv, CKR.OPERATION_ACTIVE);
    assert.deepEqual(await call(b, 'C_Digest', { session: s, data: Buffer.from('abc'), digest: none }, c), { rv: CKR.OK, out: { digest: { lengthOnly: 48 } } });
    assert.deepEqual(await call(b, 'C_Digest', { session: s, data: Buffer.from('abc'), digest: buf(47) }, c), { rv: CKR.BUFFER_TOO_SMALL, out: { digest: { lengthOnly: 48 } } });
    assert.deepEqual(await call(b, 'C_Digest', { session: s, data: Buffer.from('abc'), digest: buf(48) }, c), { rv: CKR.OK, out: { digest: sha384('abc') } });
    // Single-part and multi-part do not mix; the call that tries ends the digest (§5.12).
    for (const mixed of ['C_DigestUpdate', 'C_DigestFinal'] as const) {
      assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.SHA384) }, c)).rv, CKR.OK);
      assert.equal((await call(b, 'C_Digest', { session: s, data: Buffer.from('abc'), digest: none }, c)).rv, CKR.OK);
      const r = mixed === 'C_DigestUpdate' ? await call(b, mixed, { session: s, part: Buffer.from('d') }, c) : await call(b, mixed, { session: s, digest: buf(48) }, c);
      assert.equal(r.rv, CKR.OPERATION_ACTIVE, mixed);
      assert.equal((await call(b, 'C_Digest', { session: s, data: Buffer.from('abc'), digest: buf(48) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED, `${mixed} ended it`);
    }
    // A final length query with no update at all is still a final: C_DigestFinal follows it.
    assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.SHA384) }, c)).rv, CKR.OK);
    assert.deepEqual(await call(b, 'C_DigestFinal', { session: s, digest: none }, c), { rv: CKR.OK, out: { digest: { lengthOnly: 48 } } });
    assert.deepEqual(await call(b, 'C_DigestFinal', { session: s, digest: buf(48) }, c), { rv: CKR.OK, out: { digest: sha384('') } });
    assert.equal((await call(b, 'C_DigestUpdate', { session: s, part: Uint8Array.of(1) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
    assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.SHA384) }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_DigestUpdate', { session: s, part: Buffer.from('multi-') }, c)).rv, CKR.OK);
    assert.deepEqual(await call(b, 'C_DigestFinal', { session: s, digest: none }, c), { rv: CKR.OK, out: { digest: { lengthOnly: 48 } } });
    assert.equal((await call(b, 'C_DigestUpdate', { session: s, part: Buffer.from('part') }, c)).rv, CKR.OK);
    assert.deepEqual(await call(b, 'C_DigestFinal', { session: s, digest: buf(48) }, c), { rv: CKR.OK, out: { digest: sha384('multi-part') } });
    assert.equal((await call(b, 'C_DigestInit', { session: s, mechanism: mech(CKM.SHA384) }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_DigestUpdate', { session: s, part: Buffer.from('multi-') }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_Digest', { session: s, data: Uint8Array.of(1), digest: buf(48) }, c)).rv, CKR.OPERATION_ACTIVE);
    assert.equal((await call(b, 'C_DigestFinal', { session: s, digest: buf(48) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
  } finally {
    await b.release?.(c);
  }
});

test('AES-GCM, CBC-PAD, CBC, ECB and CTR through the token agree with node:crypto, CMAC with OpenSSL; destroy', async () => {
  const { b, c, s } = await loggedIn();
  try {
    const made = await call(b, 'C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 32n), bool(CKA.EXTRACTABLE, true), bool(CKA.SENSITIVE, false)] }, c);
    assert.equal(made.rv, CKR.OK);
    const key = made.out?.['key'] as bigint;
    const value = (await call(b, 'C_GetAttributeValue', { session: s, object: key, template: [{ type: CKA.VALUE, length: 32 }, { type: CKA.CLASS, length: 8 }] }, c)).out?.['template'] as { value: { value: unknown } }[];
    const raw = value[0]!.value.value as Uint8Array;
    assert.equal(value[1]!.value.value, CKO_SECRET_KEY);
    const iv = Uint8Array.from(Buffer.alloc(12, 7));
    const gcm = mech(CKM.AES_GCM, { kind: 'gcm', iv, ivBits: 96n, aad: Buffer.from('aad'), tagBits: 128n });
    const plain = Buffer.from('through the token');
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: gcm, key }, c)).rv, CKR.OK);
    const ct = (await call(b, 'C_Encrypt', { session: s, data: plain, encryptedData: buf(1024) }, c)).out?.['encryptedData'] as Uint8Array;
    const cipher = createCipheriv('aes-256-gcm', raw, iv);
    cipher.setAAD(Buffer.from('aad'));
    const expected = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    assert.deepEqual(Buffer.from(ct), expected, 'ciphertext ‖ tag as node:crypto computes it (PKCS#11 v2.40 §2.12.3)');
    assert.equal((await call(b, 'C_DecryptInit', { session: s, mechanism: gcm, key }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_DecryptUpdate', { session: s, encryptedPart: ct.subarray(0, 5), part: buf(100) }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_DecryptUpdate', { session: s, encryptedPart: ct.subarray(5), part: buf(100) }, c)).rv, CKR.OK);
    assert.deepEqual(Buffer.from((await call(b, 'C_DecryptFinal', { session: s, lastPart: buf(100) }, c)).out?.['lastPart'] as Uint8Array), plain);
    // ulIvBits left 0, as PyKCS11 sends it through p11-kit 0.26: the IV's length is ulIvLen's (§2.12.3).
    const gcmNoBits = mech(CKM.AES_GCM, { kind: 'gcm', iv, ivBits: 0n, aad: Buffer.from('aad'), tagBits: 128n });
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: gcmNoBits, key }, c)).rv, CKR.OK);
    assert.deepEqual(Buffer.from((await call(b, 'C_Encrypt', { session: s, data: plain, encryptedData: buf(1024) }, c)).out?.['encryptedData'] as Uint8Array), expected);
    const badTag = mech(CKM.AES_GCM, { kind: 'gcm', iv, ivBits: 96n, aad: null, tagBits: 100n });
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: badTag, key }, c)).rv, CKR.MECHANISM_PARAM_INVALID, 'a tag length that is not whole bytes');

    const cbcIv = Uint8Array.from(Buffer.alloc(16, 3));
    const cbc = mech(CKM.AES_CBC_PAD, { kind: 'bytes', bytes: cbcIv });
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: mech(CKM.AES_CBC_PAD, { kind: 'bytes', bytes: Uint8Array.of(1) }), key }, c)).rv, CKR.MECHANISM_PARAM_INVALID);
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: cbc, key }, c)).rv, CKR.OK);
    const cbcCt = (await call(b, 'C_Encrypt', { session: s, data: plain, encryptedData: buf(1024) }, c)).out?.['encryptedData'] as Uint8Array;
    const ref = createCipheriv('aes-256-cbc', raw, cbcIv);
    assert.deepEqual(Buffer.from(cbcCt), Buffer.concat([ref.update(plain), ref.final()]));

    // AES-ECB and AES-CBC without padding: whole blocks, as node:crypto with padding off; other
    // lengths refused by the HSM with the PKCS#11 return values of §2.8.
    const blocks = Buffer.alloc(48, 0x3c);
    for (const [m, name, ivOf] of [[mech(CKM.AES_ECB), 'aes-256-ecb', null], [mech(CKM.AES_CBC, { kind: 'iv', iv: cbcIv }), 'aes-256-cbc', cbcIv]] as const) {
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      const out = (await call(b, 'C_Encrypt', { session: s, data: blocks, encryptedData: buf(48) }, c)).out?.['encryptedData'] as Uint8Array;
      const reference = createCipheriv(name, raw, ivOf).setAutoPadding(false);
      assert.deepEqual(Buffer.from(out), Buffer.concat([reference.update(blocks), reference.final()]), name);
      // Multi-part streams: each update answers the whole blocks it completes (a CBC goes on from
      // the last ciphertext block), a length query or a short buffer consumes nothing, and Final
      // answers the rest, which must be nothing.
      assert.equal((await call(b, 'C_DecryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      assert.deepEqual(await call(b, 'C_DecryptUpdate', { session: s, encryptedPart: out.subarray(0, 20), part: none }, c), { rv: CKR.OK, out: { part: { lengthOnly: 16 } } });
      assert.deepEqual(await call(b, 'C_DecryptUpdate', { session: s, encryptedPart: out.subarray(0, 20), part: buf(15) }, c), { rv: CKR.BUFFER_TOO_SMALL, out: { part: { lengthOnly: 16 } } });
      const first = (await call(b, 'C_DecryptUpdate', { session: s, encryptedPart: out.subarray(0, 20), part: buf(48) }, c)).out?.['part'] as Uint8Array;
      assert.equal(first.length, 16);
      const rest = (await call(b, 'C_DecryptUpdate', { session: s, encryptedPart: out.subarray(20), part: buf(48) }, c)).out?.['part'] as Uint8Array;
      const last = (await call(b, 'C_DecryptFinal', { session: s, lastPart: buf(48) }, c)).out?.['lastPart'] as Uint8Array;
      assert.equal(last.length, 0);
      assert.deepEqual(Buffer.concat([first, rest]), blocks);
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      const streamed: Uint8Array[] = [];
      for (const [from, to] of [[0, 5], [5, 21], [21, 40], [40, 48]] as const) {
        streamed.push((await call(b, 'C_EncryptUpdate', { session: s, part: blocks.subarray(from, to), encryptedPart: buf(48) }, c)).out?.['encryptedPart'] as Uint8Array);
      }
      assert.deepEqual(streamed.map((p) => p.length), [0, 16, 16, 16]);
      assert.equal(((await call(b, 'C_EncryptFinal', { session: s, lastEncryptedPart: buf(16) }, c)).out?.['lastEncryptedPart'] as Uint8Array).length, 0);
      assert.deepEqual(Buffer.concat(streamed), Buffer.from(out), `${name} streamed equals one-shot`);
      // Java's doFinal after the updates took every block: C_EncryptFinal into an empty buffer, which
      // p11-kit 0.24 (protocol 0) sends as "no buffer". Answered with the empty output, and ended.
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      assert.equal((await call(b, 'C_EncryptUpdate', { session: s, part: blocks, encryptedPart: buf(48) }, c)).rv, CKR.OK);
      const empty = await call(b, 'C_EncryptFinal', { session: s, lastEncryptedPart: none }, c);
      assert.equal(empty.rv, CKR.OK);
      assert.ok(empty.out?.['lastEncryptedPart'] instanceof Uint8Array && empty.out['lastEncryptedPart'].length === 0, 'the empty output, not a length');
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK, 'the Final ended the operation');
      assert.equal((await call(b, 'C_EncryptFinal', { session: s, lastEncryptedPart: buf(16) }, c)).rv, CKR.OK);
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      assert.equal((await call(b, 'C_EncryptUpdate', { session: s, part: blocks.subarray(0, 24), encryptedPart: buf(48) }, c)).rv, CKR.OK);
      await assert.rejects(call(b, 'C_EncryptFinal', { session: s, lastEncryptedPart: buf(16) }, c), { ckr: 'CKR_DATA_LEN_RANGE' }, 'an incomplete last block');
      assert.equal((await call(b, 'C_EncryptFinal', { session: s, lastEncryptedPart: buf(16) }, c)).rv, CKR.OPERATION_NOT_INITIALIZED);
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      await assert.rejects(call(b, 'C_Encrypt', { session: s, data: blocks.subarray(1), encryptedData: buf(48) }, c), { ckr: 'CKR_DATA_LEN_RANGE' });
      assert.equal((await call(b, 'C_DecryptInit', { session: s, mechanism: m, key }, c)).rv, CKR.OK);
      await assert.rejects(call(b, 'C_Decrypt', { session: s, encryptedData: out.subarray(1), data: buf(48) }, c), { ckr: 'CKR_ENCRYPTED_DATA_LEN_RANGE' });
    }
    // From protocol 1 the client tells "no buffer" from an empty one: a Final's length query stays one.
    const v2: Pkcs11Connection = { id: `c${++connections}`, version: 2 };
    const s2 = await session(b, v2);
    assert.equal((await call(b, 'C_Login', { session: s2, userType: CKU_USER, pin: pin.slice() }, v2)).rv, CKR.OK);
    const key2 = (await call(b, 'C_GenerateKey', { session: s2, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 16n)] }, v2)).out?.['key'] as bigint;
    assert.equal((await call(b, 'C_EncryptInit', { session: s2, mechanism: mech(CKM.AES_ECB), key: key2 }, v2)).rv, CKR.OK);
    assert.equal((await call(b, 'C_EncryptUpdate', { session: s2, part: blocks, encryptedPart: buf(48) }, v2)).rv, CKR.OK);
    assert.deepEqual(await call(b, 'C_EncryptFinal', { session: s2, lastEncryptedPart: none }, v2), { rv: CKR.OK, out: { lastEncryptedPart: { lengthOnly: 0 } } });
    assert.equal(((await call(b, 'C_EncryptFinal', { session: s2, lastEncryptedPart: buf(0) }, v2)).out?.['lastEncryptedPart'] as Uint8Array).length, 0);
    assert.equal((await call(b, 'C_EncryptFinal', { session: s2, lastEncryptedPart: buf(0) }, v2)).rv, CKR.OPERATION_NOT_INITIALIZED);
    await b.release?.(v2);
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: mech(CKM.AES_CBC, { kind: 'iv', iv: cbcIv.subarray(0, 8) }), key }, c)).rv, CKR.MECHANISM_PARAM_INVALID);
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: mech(CKM.AES_ECB, { kind: 'bytes', bytes: cbcIv }), key }, c)).rv, CKR.MECHANISM_PARAM_INVALID);

    // AES-CTR (CK_AES_CTR_PARAMS: counter bits and the 16-byte counter block), multi-part, as
    // node:crypto's aes-256-ctr with the block as its IV; a counter that would wrap is refused.
    const cb = Uint8Array.from(Buffer.from('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff', 'hex'));
    const ctr = mech(CKM.AES_CTR, { kind: 'aesCtr', counterBits: 128n, cb });
    const long = Buffer.alloc(100, 0x5a);
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: ctr, key }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_EncryptUpdate', { session: s, part: long.subarray(0, 33), encryptedPart: buf(100) }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_EncryptUpdate', { session: s, part: long.subarray(33), encryptedPart: buf(100) }, c)).rv, CKR.OK);
    const ctrCt = (await call(b, 'C_EncryptFinal', { session: s, lastEncryptedPart: buf(100) }, c)).out?.['lastEncryptedPart'] as Uint8Array;
    const ctrRef = createCipheriv('aes-256-ctr', raw, cb);
    assert.deepEqual(Buffer.from(ctrCt), Buffer.concat([ctrRef.update(long), ctrRef.final()]));
    assert.equal((await call(b, 'C_DecryptInit', { session: s, mechanism: ctr, key }, c)).rv, CKR.OK);
    assert.deepEqual(Buffer.from((await call(b, 'C_Decrypt', { session: s, encryptedData: ctrCt, data: buf(100) }, c)).out?.['data'] as Uint8Array), long);
    for (const counterBits of [0n, 129n]) {
      assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: mech(CKM.AES_CTR, { kind: 'aesCtr', counterBits, cb }), key }, c)).rv, CKR.MECHANISM_PARAM_INVALID);
    }
    // 4 counter bits at 0xf: one block left before they wrap.
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: mech(CKM.AES_CTR, { kind: 'aesCtr', counterBits: 4n, cb }), key }, c)).rv, CKR.OK);
    await assert.rejects(call(b, 'C_Encrypt', { session: s, data: Buffer.alloc(17), encryptedData: buf(100) }, c), { ckr: 'CKR_DATA_LEN_RANGE' });
    assert.equal((await call(b, 'C_EncryptInit', { session: s, mechanism: mech(CKM.AES_CTR, { kind: 'aesCtr', counterBits: 4n, cb }), key }, c)).rv, CKR.OK);
    assert.equal(((await call(b, 'C_Encrypt', { session: s, data: Buffer.alloc(16), encryptedData: buf(100) }, c)).out?.['encryptedData'] as Uint8Array).length, 16);

    // AES-CMAC (SP 800-38B) signs and verifies with the key, as OpenSSL's CMAC computes it.
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.AES_CMAC), key }, c)).rv, CKR.KEY_FUNCTION_NOT_PERMITTED, 'made without CKA_SIGN');
    const signer = (await call(b, 'C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 16n), bool(CKA.SIGN, true), bool(CKA.VERIFY, true), bool(CKA.EXTRACTABLE, true), bool(CKA.SENSITIVE, false)] }, c)).out?.['key'] as bigint;
    const signerValue = ((await call(b, 'C_GetAttributeValue', { session: s, object: signer, template: [{ type: CKA.VALUE, length: 16 }] }, c)).out?.['template'] as { value: { value: Uint8Array } }[])[0]!.value.value;
    assert.equal((await call(b, 'C_SignInit', { session: s, mechanism: mech(CKM.AES_CMAC), key: signer }, c)).rv, CKR.OK);
    const cmac = (await call(b, 'C_Sign', { session: s, data: plain, signature: buf(16) }, c)).out?.['signature'] as Uint8Array;
    const macFile = join(dir, 'cmac-input');
    writeFileSync(macFile, plain);
    const openssl = execFileSync('openssl', ['mac', '-cipher', 'AES-128-CBC', '-macopt', `hexkey:${Buffer.from(signerValue).toString('hex')}`, '-in', macFile, 'CMAC'], { encoding: 'utf8' }).trim();
    assert.equal(Buffer.from(cmac).toString('hex').toUpperCase(), openssl.toUpperCase());
    assert.equal((await call(b, 'C_VerifyInit', { session: s, mechanism: mech(CKM.AES_CMAC), key: signer }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_Verify', { session: s, data: plain, signature: cmac }, c)).rv, CKR.OK);
    const forged = Uint8Array.from(cmac);
    forged[15] = forged[15]! ^ 1;
    assert.equal((await call(b, 'C_VerifyInit', { session: s, mechanism: mech(CKM.AES_CMAC), key: signer }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_Verify', { session: s, data: plain, signature: forged }, c)).rv, CKR.SIGNATURE_INVALID);

    assert.equal((await call(b, 'C_DestroyObject', { session: s, object: key }, c)).rv, CKR.OK);
    assert.equal((await call(b, 'C_GetAttributeValue', { session: s, object: key, template: [{ type: CKA.CLASS, length: 8 }] }, c)).rv, CKR.OBJECT_HANDLE_INVALID);
  } finally {
    await b.release?.(c);
  }
});
