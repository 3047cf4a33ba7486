// Every data-plane operation over real TLS sockets (docs/node.md "Operations"): users, ACTIVATE,
// quorum, key management, wrap/unwrap, derivation, digest, batches and session objects, each with
// a success and a typed failure. The device decides; these tests check the wire carries it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCipheriv, createHash, createPublicKey, generateKeyPairSync, hkdfSync, randomBytes, sign as nodeSign, verify as nodeVerify,
} from 'node:crypto';
import { Hsm } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import { Connection } from '../../src/client/connection.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import type { ScryptParams } from '../../src/hsm/users/password.js';

const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 }; // tests only
const ECDSA_SHA256 = { mechanism: 'CKM_ECDSA_SHA256' } as const;
const GCM = { mechanism: 'CKM_AES_GCM' } as const;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
let authorities: DevelopmentAuthorities;
const planes: DataPlane[] = [];
let dp: DataPlane;

/** A commissioned device; `activate` false leaves its admin unactivated (for ACTIVATE). */
function makeNode(activate = true): Promise<{ hsm: Hsm; plane: DataPlane }> {
  return makeNodeWith({}, activate);
}

async function makeNodeWith(options: Omit<Parameters<typeof startDataPlane>[0], 'hsm'>, activate = true): Promise<{ hsm: Hsm; plane: DataPlane }> {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
  await hsm.initialiseUsers('preco-password', 'appliance-credential-0123456789');
  if (activate) {
    await hsm.activate('preco-password', 'admin-password-1');
    const admin = hsm.openSession();
    await admin.login('admin', 'admin-password-1');
    await admin.createUser('alice', 'alice-password', 'crypto-user');
    await admin.createUser('bob', 'bob-password-1', 'crypto-user');
    admin.close();
  }
  const plane = await startDataPlane({ hsm, ...options });
  planes.push(plane);
  return { hsm, plane };
}

before(async () => {
  authorities = await createDevelopmentAuthorities();
  dp = (await makeNode()).plane;
});
after(async () => {
  for (const p of planes) await p.close();
});

function connect(plane: DataPlane = dp): Promise<Connection> {
  return Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
}
async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code), `expected ${code}`);
}
async function loggedIn(c: Connection, name: string, password: string, role: 'admin' | 'crypto-user' = 'crypto-user'): Promise<number> {
  const s = await c.openSession();
  await c.login(s, name, password, role);
  return s;
}

test('ACTIVATE sets the admin password of a new cluster; a wrong PreCO password is refused', async () => {
  const { hsm, plane } = await makeNode(false);
  const c = await connect(plane);
  assert.equal((await c.status()).activated, false);
  await rejectsWith(c.activate('wrong-preco', 'admin-password-2'), 'COFFER_AUTH_FAILED');
  await c.activate('preco-password', 'admin-password-2');
  assert.equal((await c.status()).activated, true);
  assert.equal(hsm.status().activated, true);
  const s = await loggedIn(c, 'admin', 'admin-password-2', 'admin');
  assert.equal((await c.listUsers(s)).some((u) => u.name === 'admin' && u.role === 'admin'), true);
  c.close();
});

test('user management: create, list, change passwords, lock and unlock, delete; a crypto user may not', async () => {
  const c = await connect();
  const admin = await loggedIn(c, 'admin', 'admin-password-1', 'admin');
  const alice = await loggedIn(c, 'alice', 'alice-password');
  await rejectsWith(c.createUser(alice, 'mallory', 'mallory-password', 'admin'), 'COFFER_PERMISSION_DENIED');
  await c.createUser(admin, 'carol', 'carol-password', 'crypto-user');
  await rejectsWith(c.createUser(admin, 'carol', 'carol-password', 'crypto-user'), 'COFFER_USER_EXISTS');
  const carol = (await c.listUsers(admin)).find((u) => u.name === 'carol');
  assert.deepEqual(carol, { name: 'carol', role: 'crypto-user', locked: false, failedLogins: 0, quorumKeyRegistered: false });
  await c.changePassword(admin, 'carol', 'carol-password-2');
  const cs = await loggedIn(c, 'carol', 'carol-password-2');
  await rejectsWith(c.changeOwnPassword(cs, 'not-the-password', 'carol-password-3'), 'COFFER_AUTH_FAILED');
  await c.changeOwnPassword(cs, 'carol-password-2', 'carol-password-3');
  await c.closeSession(cs);
  for (let i = 0; i < 5; i++) await rejectsWith(loggedIn(c, 'carol', 'wrong-password'), 'COFFER_AUTH_FAILED');
  await rejectsWith(loggedIn(c, 'carol', 'carol-password-3'), 'COFFER_USER_LOCKED');
  assert.equal((await c.listUsers(admin)).find((u) => u.name === 'carol')?.locked, true);
  await rejectsWith(c.unlockUser(alice, 'carol'), 'COFFER_PERMISSION_DENIED');
  await c.unlockUser(admin, 'carol');
  await c.closeSession(await loggedIn(c, 'carol', 'carol-password-3'));
  await c.deleteUser(admin, 'carol');
  await rejectsWith(c.deleteUser(admin, 'carol'), 'COFFER_USER_NOT_FOUND');
  c.close();
});

test('quorum: keys registered, a value set, then changing it takes a token approved by two admins', async () => {
  const { plane } = await makeNode();
  const c = await connect(plane);
  const admin = await loggedIn(c, 'admin', 'admin-password-1', 'admin');
  await c.createUser(admin, 'admin2', 'admin2-password', 'admin');
  const admin2 = await loggedIn(c, 'admin2', 'admin2-password', 'admin');
  const keys = [generateKeyPairSync('ec', { namedCurve: 'P-256' }), generateKeyPairSync('ec', { namedCurve: 'P-256' })];
  await c.call('REGISTER_QUORUM_KEY', { session: admin, spkiDer: keys[0]!.publicKey.export({ format: 'der', type: 'spki' }) });
  await c.call('REGISTER_QUORUM_KEY', { session: admin2, spkiDer: keys[1]!.publicKey.export({ format: 'der', type: 'spki' }) });
  await rejectsWith(c.call('REGISTER_QUORUM_KEY', { session: admin, spkiDer: new Uint8Array(40).fill(1) }), 'COFFER_QUORUM_KEY_INVALID');
  assert.deepEqual(await c.call('QUORUM_VALUES', { session: admin }), { user: 1, quorum: 1 });
  await c.call('SET_QUORUM_VALUE', { session: admin, service: 'quorum', m: 2 });
  assert.deepEqual(await c.call('QUORUM_VALUES', { session: admin }), { user: 1, quorum: 2 });
  const setOff = (): Promise<unknown> => c.call('SET_QUORUM_VALUE', { session: admin, service: 'quorum', m: 1 });
  await rejectsWith(setOff(), 'COFFER_QUORUM_TOKEN_INVALID'); // now the change itself needs the quorum
  const token = await c.call('GENERATE_QUORUM_TOKEN', { session: admin, service: 'quorum' });
  assert.equal(token.requester, 'admin');
  const other = await connect(plane); // approvals need an open session, no login
  const anon = await other.openSession();
  const approve = (name: string, key: number): Promise<{ approvals: number }> =>
    other.call('APPROVE_QUORUM_TOKEN', { session: anon, token: token.bytes, approverName: name, signature: nodeSign('sha256', token.bytes, keys[key]!.privateKey) });
  await rejectsWith(approve('admin2', 0), 'COFFER_QUORUM_APPROVAL_INVALID'); // admin's signature in admin2's name
  assert.equal((await approve('admin', 0)).approvals, 1);
  await rejectsWith(setOff(), 'COFFER_QUORUM_REQUIRED');
  assert.equal((await approve('admin2', 1)).approvals, 2);
  const listed = (await c.call('LIST_QUORUM_TOKENS', { session: admin })).tokens.find((t) => t.id === token.id);
  assert.deepEqual(listed && { service: listed.service, approvals: listed.approvals }, { service: 'quorum', approvals: 2 });
  await setOff();
  assert.deepEqual(await c.call('QUORUM_VALUES', { session: admin }), { user: 1, quorum: 1 });
  other.close();
  c.close();
});

test('import a PEM public key and verify with it; import a DER private key and sign with it', async () => {
  const c = await connect();
  const s = await loggedIn(c, 'alice', 'alice-password');
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = enc('imported keys over the wire');
  const pub = await c.importPublicKey(s, pair.publicKey.export({ format: 'pem', type: 'spki' }).toString(), { label: 'imported-pub' });
  const sig = nodeSign('sha256', data, { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
  assert.equal(await c.verify(s, pub, ECDSA_SHA256, data, sig), true);
  assert.equal(await c.verify(s, pub, ECDSA_SHA256, enc('other'), sig), false);
  await rejectsWith(c.importPublicKey(s, '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), 'COFFER_DATA_INVALID');
  const der = new Uint8Array(pair.privateKey.export({ format: 'der', type: 'pkcs8' }));
  const priv = await c.importPrivateKey(s, der, { label: 'imported-priv' });
  const mine = await c.sign(s, priv, ECDSA_SHA256, data);
  assert.ok(nodeVerify('sha256', data, { key: pair.publicKey, dsaEncoding: 'ieee-p1363' }, mine));
  c.close();
});

test('SET_ATTRIBUTE, SHARE and UNSHARE: bob uses a key only while it is shared with him', async () => {
  const c = await connect();
  const alice = await loggedIn(c, 'alice', 'alice-password');
  const bob = await loggedIn(c, 'bob', 'bob-password-1');
  const { privateHandle } = await c.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' });
  await c.setAttribute(alice, privateHandle, 'label', 'renamed');
  assert.equal((await c.getAttributes(alice, privateHandle)).label, 'renamed');
  await rejectsWith(c.setAttribute(alice, privateHandle, 'sensitive', false), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsWith(c.sign(bob, privateHandle, ECDSA_SHA256, enc('x')), 'COFFER_OBJECT_NOT_FOUND');
  await c.share(alice, privateHandle, 'bob');
  assert.deepEqual((await c.getAttributes(alice, privateHandle)).sharees, ['bob']);
  assert.equal((await c.sign(bob, privateHandle, ECDSA_SHA256, enc('x'))).length, 64);
  await rejectsWith(c.share(bob, privateHandle, 'alice'), 'COFFER_PERMISSION_DENIED');
  await c.unshare(alice, privateHandle, 'bob');
  await rejectsWith(c.sign(bob, privateHandle, ECDSA_SHA256, enc('x')), 'COFFER_OBJECT_NOT_FOUND');
  c.close();
});

test('EXPORT_PLAINTEXT gives the key bytes (checked with node:crypto); a sensitive key is refused', async () => {
  const c = await connect();
  const s = await loggedIn(c, 'alice', 'alice-password');
  const open = await c.generateKey(s, { keyType: 'AES', bits: 256 }, { sensitive: false, extractable: true });
  const key = await c.exportPlaintext(s, open);
  assert.equal(key.length, 32);
  const iv = randomBytes(16);
  const data = enc('exported key check');
  const mine = await c.encrypt(s, open, { mechanism: 'CKM_AES_CBC_PAD', iv }, data);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  assert.deepEqual(Buffer.from(mine), Buffer.concat([cipher.update(data), cipher.final()]));
  key.fill(0);
  const closed = await c.generateKey(s, { keyType: 'AES', bits: 256 });
  await rejectsWith(c.exportPlaintext(s, closed), 'COFFER_ATTRIBUTE_SENSITIVE');
  c.close();
});

test('WRAP_KEY and UNWRAP_KEY: an AES key wrapped (KW) and unwrapped decrypts what the original encrypted', async () => {
  const c = await connect();
  const s = await loggedIn(c, 'alice', 'alice-password');
  const kek = await c.generateKey(s, { keyType: 'AES', bits: 256 }, { wrap: true, unwrap: true });
  const target = await c.generateKey(s, { keyType: 'AES', bits: 128 }, { extractable: true });
  const wrapped = await c.wrapKey(s, kek, target, { mechanism: 'CKM_AES_KEY_WRAP' });
  assert.equal(wrapped.length, 24);
  const copy = await c.unwrapKey(s, kek, wrapped, { mechanism: 'CKM_AES_KEY_WRAP' }, { class: 'SECRET_KEY', keyType: 'AES', encrypt: true, decrypt: true });
  const ct = await c.encrypt(s, target, GCM, enc('wrapped and back'));
  assert.deepEqual(new Uint8Array(await c.decrypt(s, copy, GCM, ct)), enc('wrapped and back'));
  const tampered = wrapped.slice();
  tampered[3] = (tampered[3] ?? 0) ^ 1;
  await rejectsWith(c.unwrapKey(s, kek, tampered, { mechanism: 'CKM_AES_KEY_WRAP' }, { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_WRAPPED_KEY_INVALID');
  const unextractable = await c.generateKey(s, { keyType: 'AES', bits: 128 }, { extractable: false });
  await rejectsWith(c.wrapKey(s, kek, unextractable, { mechanism: 'CKM_AES_KEY_WRAP' }), 'COFFER_KEY_UNEXTRACTABLE');
  c.close();
});

test('DERIVE_KEY with HKDF matches node:crypto hkdfSync; DIGEST SHA-256 matches node:crypto', async () => {
  const c = await connect();
  const s = await loggedIn(c, 'alice', 'alice-password');
  const base = await c.generateKey(s, { keyType: 'GENERIC_SECRET', bits: 256 }, { derive: true, sensitive: false, extractable: true });
  const salt = enc('salt');
  const info = enc('coffer wire hkdf');
  const params = { mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-256', salt, info } as const;
  const derived = await c.deriveKey(s, base, params, { keyType: 'AES', bits: 256, sensitive: false, extractable: true });
  const ikm = await c.exportPlaintext(s, base);
  assert.deepEqual(Buffer.from(await c.exportPlaintext(s, derived)), Buffer.from(hkdfSync('sha256', ikm, salt, info, 32)));
  const noDerive = await c.generateKey(s, { keyType: 'GENERIC_SECRET', bits: 256 });
  await rejectsWith(c.deriveKey(s, noDerive, params, { keyType: 'AES', bits: 128 }), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  const data = enc('digest me');
  assert.deepEqual(Buffer.from(await c.digest(s, { mechanism: 'CKM_SHA256' }, data)), createHash('sha256').update(data).digest());
  await rejectsWith(c.digest(s, ECDSA_SHA256, data), 'COFFER_MECHANISM_INVALID');
  c.close();
});

test('batches: each item gets its own result, a bad item among good ones fails alone', async () => {
  const c = await connect();
  const s = await loggedIn(c, 'alice', 'alice-password');
  const { publicHandle, privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' });
  const pub = createPublicKey(await c.exportPublic(s, publicHandle));
  const msgs = [enc('one'), enc('two'), enc('three')];
  const signed = await c.call('SIGN_BATCH', { session: s, items: [
    ...msgs.map((data) => ({ handle: privateHandle, params: ECDSA_SHA256, data })), { handle: 999_999, params: ECDSA_SHA256, data: enc('x') },
  ] });
  assert.equal(signed.results.length, 4);
  const sigs = signed.results.slice(0, 3).map((r, i) => {
    assert.ok(r.ok, `item ${i}`);
    assert.ok(nodeVerify('sha256', msgs[i]!, { key: pub, dsaEncoding: 'ieee-p1363' }, r.value));
    return r.value;
  });
  assert.deepEqual(signed.results[3], { ok: false, error: { code: 'COFFER_OBJECT_NOT_FOUND', detail: [] } });
  const verified = await c.call('VERIFY_BATCH', { session: s, items: [
    { handle: publicHandle, params: ECDSA_SHA256, data: msgs[0]!, signature: sigs[0]! },
    { handle: publicHandle, params: ECDSA_SHA256, data: msgs[1]!, signature: sigs[0]! },
    { handle: privateHandle, params: ECDSA_SHA256, data: msgs[0]!, signature: sigs[0]! },
  ] });
  assert.deepEqual(verified.results.slice(0, 2), [{ ok: true, value: true }, { ok: true, value: false }]);
  assert.equal(verified.results[2]?.ok, false);
  const aes = await c.generateKey(s, { keyType: 'AES', bits: 256 });
  const encrypted = await c.call('ENCRYPT_BATCH', { session: s, items: [...msgs.map((data) => ({ handle: aes, params: GCM, data })), { handle: aes, params: ECDSA_SHA256, data: enc('x') }] });
  assert.equal(encrypted.results[3]?.ok, false);
  const cts = encrypted.results.slice(0, 3).map((r) => (r.ok ? r.value : assert.fail('encrypt item')));
  const decrypted = await c.call('DECRYPT_BATCH', { session: s, items: [...cts.map((data) => ({ handle: aes, params: GCM, data })), { handle: aes, params: GCM, data: new Uint8Array(40) }] });
  assert.deepEqual(decrypted.results.slice(0, 3).map((r) => (r.ok ? Buffer.from(r.value).toString() : '')), ['one', 'two', 'three']);
  assert.equal(decrypted.results[3]?.ok === false && decrypted.results[3].error.code, 'COFFER_ENCRYPTED_DATA_INVALID');
  await rejectsWith(c.call('SIGN_BATCH', { session: 4242, items: [] }), 'COFFER_SESSION_CLOSED');
  c.close();
});

test('session objects: made and used over the wire, invisible to another connection, gone after CLOSE_SESSION', async () => {
  const c = await connect();
  const s = await loggedIn(c, 'alice', 'alice-password');
  const s2 = await loggedIn(c, 'alice', 'alice-password');
  const { publicHandle, privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' }, { token: false }, { token: false, label: 'ephemeral' });
  assert.ok(privateHandle >= 2 ** 40 && publicHandle >= 2 ** 40, 'session handles are above 2^40');
  const data = enc('session object signs');
  const sig = await c.sign(s, privateHandle, ECDSA_SHA256, data);
  assert.ok(await c.verify(s2, publicHandle, ECDSA_SHA256, data, sig), 'another session of the same connection sees it');
  const other = await connect();
  const o = await loggedIn(other, 'alice', 'alice-password');
  await rejectsWith(other.getAttributes(o, privateHandle), 'COFFER_OBJECT_NOT_FOUND');
  await rejectsWith(other.sign(o, privateHandle, ECDSA_SHA256, data), 'COFFER_OBJECT_NOT_FOUND');
  assert.equal((await other.call('FIND', { session: o, filter: { label: 'ephemeral' }, limit: 10 })).objects.length, 0);
  assert.equal((await c.call('FIND', { session: s2, filter: { label: 'ephemeral' }, limit: 10 })).objects[0]?.handle, privateHandle);
  await c.closeSession(s);
  await rejectsWith(c.sign(s2, privateHandle, ECDSA_SHA256, data), 'COFFER_OBJECT_NOT_FOUND');
  await rejectsWith(c.getAttributes(s2, publicHandle), 'COFFER_OBJECT_NOT_FOUND');
  other.close();
  c.close();
});

test('STATUS reports the cluster state for balancing', async () => {
  const c = await connect();
  const st = await c.status();
  assert.equal(st.cluster, 'UNINITIALISED');
  assert.equal(st.clusterId, undefined);
  assert.ok(st.inFlight >= 1 && st.inFlightMax > 0 && st.loadPermille >= 0);
  c.close();
});

test('a batch of n items counts n toward the node-wide capacity', async () => {
  const { plane } = await makeNodeWith({ capacityMax: 4, retryAfterMs: 7 });
  const c = await connect(plane);
  const s = await loggedIn(c, 'alice', 'alice-password');
  const { privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' });
  const item = { handle: privateHandle, params: ECDSA_SHA256, data: enc('weighed') };
  // Both requests leave in one write: the batch holds 4 of the 4 slots when the single SIGN arrives.
  const [batch, single] = await Promise.allSettled([
    c.call('SIGN_BATCH', { session: s, items: [item, item, item, item] }),
    c.sign(s, privateHandle, ECDSA_SHA256, enc('one more')),
  ]);
  assert.equal(batch.status === 'fulfilled' && batch.value.results.filter((r) => r.ok).length, 4);
  assert.ok(single.status === 'rejected' && isCofferError(single.reason, 'COFFER_NODE_BUSY'), 'the single request found the node full');
  assert.equal((await c.sign(s, privateHandle, ECDSA_SHA256, enc('after'))).length, 64, 'served once the batch is done');
  c.close();
});
