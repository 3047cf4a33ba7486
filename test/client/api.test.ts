// The SDK's key, user and quorum calls end to end against one in-process node over TLS (docs/sdk.md):
// default mechanisms checked against node:crypto, batches with a failing item, attributes, find,
// wrap/unwrap, digest, users.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { Cluster } from '../../src/client/cluster.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { ALICE, startTestCluster, type TestCluster } from './support.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}
let tc: TestCluster<undefined>;
let cluster: Cluster;
before(async () => {
  tc = await startTestCluster({ nodes: 1 });
  cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
});
after(async () => {
  await cluster.close();
  await tc.close();
});

test('key pairs of every curve sign with their default mechanism; node:crypto and verify() agree', async () => {
  const cases = [
    { spec: { curve: 'P-256' }, hash: 'sha256' },
    { spec: { curve: 'P-384' }, hash: 'sha384' },
    { spec: { curve: 'P-521' }, hash: 'sha512' },
    { spec: { curve: 'secp256k1' }, hash: 'sha256' },
    { spec: { curve: 'Ed25519' }, hash: null },
    { spec: { keyType: 'RSA', bits: 2048 }, hash: 'sha256' },
  ] as const;
  for (const c of cases) {
    const kp = await cluster.generateKeyPair({ ...c.spec, label: `kp-${JSON.stringify(c.spec)}` });
    const data = enc('sign me');
    const sig = await kp.privateKey.sign(data);
    const pub = createPublicKey(await kp.publicKey.exportPublicPem());
    const ok = pub.asymmetricKeyType === 'rsa' ? nodeVerify(c.hash, data, pub, sig) : nodeVerify(c.hash, data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
    assert.ok(ok, `node:crypto verifies ${JSON.stringify(c.spec)}`);
    assert.equal(await kp.publicKey.verify(data, sig), true);
    assert.equal(await kp.publicKey.verify(enc('other'), sig), false);
  }
});

test('AES-256: default GCM with a device-chosen IV round-trips; batches report a failing item on its own', async () => {
  const aes = await cluster.generateKey({ type: 'AES', bits: 256, label: 'aes' });
  const ct = await aes.encrypt(enc('secret data'));
  assert.equal(ct.length, 12 + 11 + 16, 'iv ‖ ciphertext ‖ tag');
  assert.deepEqual(new Uint8Array(await aes.decrypt(ct)), enc('secret data'));
  const many = await aes.encryptMany([enc('a'), enc('bb'), enc('ccc')]);
  assert.ok(many.every((r) => r.ok));
  const cts = many.map((r) => (r.ok ? r.value : new Uint8Array()));
  const bad = Uint8Array.from(cts[1] as Uint8Array);
  bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
  const back = await aes.decryptMany([cts[0] as Uint8Array, bad, cts[2] as Uint8Array]);
  assert.equal(back[0]?.ok, true);
  assert.equal(back[1]?.ok, false);
  assert.ok(back[1] !== undefined && !back[1].ok && back[1].error.code === 'COFFER_ENCRYPTED_DATA_INVALID');
  assert.ok(back[2]?.ok && new TextDecoder().decode(back[2].value) === 'ccc');
});

test('signMany / verifyMany, HMAC default, digest and random', async () => {
  const kp = await cluster.generateKeyPair({ curve: 'P-256' });
  const items = Array.from({ length: 40 }, (_, i) => enc(`item ${i}`));
  const sigs = await kp.privateKey.signMany(items);
  assert.equal(sigs.length, 40);
  const values = sigs.map((r) => (r.ok ? r.value : assert.fail('every item signs')));
  // Item 0 carries item 1's signature: it alone must be false.
  const checks = await kp.publicKey.verifyMany(items.map((data, i) => ({ data, signature: values[i === 0 ? 1 : i] as Uint8Array })));
  assert.deepEqual(checks.map((c) => c.ok && c.value), [false, ...Array<boolean>(39).fill(true)]);
  const hmac = await cluster.generateKey({ type: 'GENERIC_SECRET', bits: 256 });
  const mac = await hmac.sign(enc('x'));
  assert.equal(mac.length, 32);
  assert.equal(await hmac.verify(enc('x'), mac), true);
  assert.deepEqual(Buffer.from(await cluster.digest('SHA-256', enc('abc'))), createHash('sha256').update('abc').digest());
  assert.equal((await cluster.random(33)).length, 33);
});

test('attributes, setAttribute, findKeys (all pages), import, wrap/unwrap, destroy', async () => {
  const k = await cluster.generateKey({ type: 'AES', bits: 128, label: 'findme', extractable: true });
  const info = await k.attributes();
  assert.equal(info.label, 'findme');
  assert.equal(info.keyType, 'AES');
  await k.setAttribute('label', 'renamed');
  assert.equal((await k.attributes()).label, 'renamed');
  const found = await cluster.findKeys({ label: 'renamed' });
  assert.deepEqual(found.map((f) => f.handle), [k.handle]);
  const kek = await cluster.generateKey({ type: 'AES', bits: 256, attributes: { wrap: true, unwrap: true } });
  const wrapped = await kek.wrap(k);
  const unwrapped = await cluster.unwrapKey(kek, wrapped, { class: 'SECRET_KEY', keyType: 'AES', label: 'unwrapped', token: true });
  assert.equal((await unwrapped.attributes()).kcv.length > 0, true);
  assert.deepEqual((await unwrapped.attributes()).kcv, info.kcv, 'same key material, same KCV');
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const imported = await cluster.importPublicKeyPem(pem, { label: 'imported' });
  assert.equal((await imported.attributes()).class, 'PUBLIC_KEY');
  await k.destroy();
  await rejectsWith(k.attributes(), 'COFFER_OBJECT_NOT_FOUND');
  await rejectsWith(cluster.key(987_654).sign(enc('x'), { mechanism: 'CKM_ECDSA_SHA256' }), 'COFFER_OBJECT_NOT_FOUND');
});

test('key(handle): a handle outside 1..2^53-1 is COFFER_HANDLE_OUT_OF_RANGE at once; a bigint in range is a handle', async () => {
  // These used to reach the wire encoder and fail COFFER_FORMAT_LIMIT ("A length exceeds its limit").
  for (const h of [0, -1, 1.5, 2 ** 53, Number.NaN, 0n, 2n ** 53n, -5n]) {
    assert.throws(() => cluster.key(h), (e) => isCofferError(e, 'COFFER_HANDLE_OUT_OF_RANGE') && e.message.includes('out of range'), String(h));
  }
  assert.throws(() => cluster.key('5' as unknown as number), (e) => isCofferError(e, 'COFFER_HANDLE_OUT_OF_RANGE'));
  const k = await cluster.generateKey({ type: 'AES', bits: 128, label: 'by-bigint' });
  assert.equal((await cluster.key(BigInt(k.handle)).attributes()).label, 'by-bigint');
  // In range but naming nothing: the node's answer, as for a number.
  await rejectsWith(cluster.key(999_999n).attributes(), 'COFFER_OBJECT_NOT_FOUND');
  await rejectsWith(cluster.key(2 ** 53 - 1).attributes(), 'COFFER_OBJECT_NOT_FOUND');
});

test('users: an admin creates, lists, changes and deletes a user; a crypto user may not', async () => {
  await rejectsWith(cluster.users.create('bob', 'bob-password', 'crypto-user'), 'COFFER_PERMISSION_DENIED');
  const admin = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: { username: 'admin', password: 'admin-password-1', role: 'admin' } });
  try {
    await admin.users.create('bob', 'bob-password', 'crypto-user');
    assert.ok((await admin.users.list()).some((u) => u.name === 'bob' && u.role === 'crypto-user'));
    await admin.users.changePassword('bob', 'bob-password-2');
    const bob = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: { username: 'bob', password: 'bob-password-2' } });
    await bob.users.changeOwnPassword('bob-password-2', 'bob-password-3');
    await bob.close();
    await admin.users.delete('bob');
    assert.ok(!(await admin.users.list()).some((u) => u.name === 'bob'));
    assert.deepEqual(await admin.quorum.values(), { user: 1, quorum: 1 });
  } finally {
    await admin.close();
  }
});
