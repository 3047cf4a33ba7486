// Object table lifecycle: cluster-wide handles (persisted, never reused, identical on two tables
// that apply the same operations), reopen from the store, session objects, capacity limits, and
// "a failing operation changes nothing" (stateDigest and the index before = after).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { isCofferError } from '../../../src/errors.js';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { BOOLEAN_ATTRIBUTE_NAMES, encodeObjectRecord } from '../../../src/formats/object_record.js';
import { CRYPTO_INPUT_BYTES_MAX, OBJECTS_MAX, SESSION_OBJECTS_MAX } from '../../../src/formats/limits.js';
import { MemoryRecordStore, type RecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { ObjectTable, SESSION_HANDLE_BASE } from '../../../src/hsm/objects/objects.js';
import type { Actor, MechanismParams } from '../../../src/hsm/types.js';
import { FailingStore } from '../store/failing_store.js';
import { rejectsCode, throwsCode } from '../../helpers.js';

const alice: Actor = { userId: 'alice', role: 'crypto-user' };
const bob: Actor = { userId: 'bob', role: 'crypto-user' };
const admin: Actor = { userId: 'admin', role: 'admin' };
const ECDSA: MechanismParams = { mechanism: 'CKM_ECDSA_SHA256' };
const GCM = (): MechanismParams => ({ mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12).fill(9) });
const DATA = new TextEncoder().encode('ledger entry');
const isCryptoUser = (u: string): boolean => u === 'alice' || u === 'bob';


function open(store: RecordStore): ObjectTable {
  return new ObjectTable({ state: new DeviceState(store), mode: 'NON_FIPS', isCryptoUser });
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const PUBLIC_PEMS = Array.from({ length: 3 }, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString());

void test('handles persist: a table reopened over the same store has the same objects, handles, digest and keys', async () => {
  const store = new MemoryRecordStore();
  const t1 = open(store);
  const aes = await t1.generateKey(alice, { keyType: 'AES', bits: 256 }, { label: 'data', id: Uint8Array.of(7) });
  const pair = await t1.generateKeyPair(alice, { keyType: 'EC', curve: 'P-384' }, { label: 'pub' }, { label: 'priv' });
  const ed = await t1.generateKeyPair(alice, { keyType: 'EC_EDWARDS', curve: 'Ed25519' });
  await t1.share(alice, aes, 'bob');
  assert.deepEqual([aes, pair.publicHandle, pair.privateHandle, ed.publicHandle, ed.privateHandle], [1, 2, 3, 4, 5]);
  const ct = t1.encrypt(alice, aes, GCM(), DATA);
  const t2 = open(store);
  assert.deepEqual(t2.find(alice), t1.find(alice));
  assert.equal(hex(t2.stateDigest()), hex(t1.stateDigest()));
  assert.deepEqual(new Uint8Array(t2.decrypt(bob, aes, GCM(), ct)), DATA);
  const sig = t2.sign(alice, pair.privateHandle, { mechanism: 'CKM_ECDSA_SHA384' }, DATA);
  assert.equal(t1.verify(alice, pair.publicHandle, { mechanism: 'CKM_ECDSA_SHA384' }, DATA, sig), true);
  const edSig = t2.sign(alice, ed.privateHandle, { mechanism: 'CKM_EDDSA' }, DATA);
  assert.equal(edSig.length, 64);
  assert.equal(t2.exportPublic(alice, ed.privateHandle), t1.exportPublic(alice, ed.publicHandle));
});

void test('handles are never reused, across destroy and reopen', async () => {
  const store = new MemoryRecordStore();
  const t = open(store);
  const a = await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  const b = await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  await t.destroy(alice, b);
  const c = await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  assert.deepEqual([a, b, c], [1, 2, 3]);
  await t.destroy(alice, c);
  const reopened = open(store);
  assert.equal(await reopened.generateKey(alice, { keyType: 'AES', bits: 128 }), 4);
  assert.equal(reopened.tokenObjectCount, 2);
});

void test('cluster-wide handles: two tables applying the same operations agree on every handle and on the digest', async () => {
  const run = async (t: ObjectTable): Promise<number[]> => {
    const h: number[] = [];
    for (const [i, pem] of PUBLIC_PEMS.entries()) h.push(await t.importPublicKey(alice, pem, { label: `peer ${i}` }));
    await t.destroy(alice, h[1] ?? 0);
    await t.setAttribute(alice, h[0] ?? 0, 'label', 'renamed');
    await t.share(alice, h[2] ?? 0, 'bob');
    h.push(await t.importPublicKey(bob, PUBLIC_PEMS[0] ?? '', { verify: false, id: Uint8Array.of(1) }));
    return h;
  };
  const t1 = open(new MemoryRecordStore());
  const t2 = open(new MemoryRecordStore());
  assert.deepEqual(await run(t1), [1, 2, 3, 4]);
  assert.deepEqual(await run(t2), [1, 2, 3, 4]);
  assert.equal(hex(t1.stateDigest()), hex(t2.stateDigest()));
  await t2.setAttribute(alice, 3, 'label', 'diverged');
  assert.notEqual(hex(t1.stateDigest()), hex(t2.stateDigest()));
  // generated keys differ in value, never in handle
  assert.equal(await t1.generateKey(alice, { keyType: 'AES', bits: 256 }), await t2.generateKey(alice, { keyType: 'AES', bits: 256 }));
});

void test('session objects: memory only, disjoint handles, owner only, dropped with their session', async () => {
  const store = new MemoryRecordStore();
  const t = open(store);
  const tok = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  const digest = t.stateDigest();
  const s1 = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { token: false, sessionId: 's1' });
  const pair = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' }, { token: false, sessionId: 's1' }, {});
  const s2 = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { token: false, sessionId: 's2' });
  assert.ok(s1 >= SESSION_HANDLE_BASE && pair.publicHandle > s1 && s2 > pair.publicHandle);
  assert.ok(pair.privateHandle < SESSION_HANDLE_BASE, 'a token private key beside a session public key');
  assert.equal(store.count('object'), 2);
  assert.notEqual(hex(t.stateDigest()), hex(digest)); // the token private key
  const afterToken = t.stateDigest();
  assert.equal(t.getAttributes(alice, s1).attributes.token, false);
  throwsCode(() => t.getAttributes(bob, s1), 'COFFER_OBJECT_NOT_FOUND');
  assert.deepEqual(t.find(admin).map((i) => i.handle), [tok, pair.privateHandle]);
  const sig = t.sign(alice, pair.privateHandle, ECDSA, DATA);
  assert.equal(t.verify(alice, pair.publicHandle, ECDSA, DATA, sig), true);
  assert.equal(t.dropSessionObjects('s1'), 2);
  throwsCode(() => t.getAttributes(alice, s1), 'COFFER_OBJECT_NOT_FOUND');
  throwsCode(() => t.verify(alice, pair.publicHandle, ECDSA, DATA, sig), 'COFFER_OBJECT_NOT_FOUND');
  assert.equal(t.getAttributes(alice, s2).handle, s2);
  assert.equal(hex(t.stateDigest()), hex(afterToken), 'session objects are not part of the state');
  assert.deepEqual(open(store).find(alice).map((i) => i.handle), [tok, pair.privateHandle]);
  await t.destroy(alice, s2);
  assert.equal(t.sessionObjectCount, 0);
});

void test('a failing operation leaves the store and the index unchanged', async () => {
  const store = new FailingStore();
  const t = open(store);
  const k = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { wrap: true });
  const frozen = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { modifiable: false, destroyable: false });
  const before = { digest: hex(t.stateDigest()), list: t.find(alice), records: store.count('object') };
  const attempts: [string, () => unknown][] = [
    ['inconsistent template', () => t.generateKey(alice, { keyType: 'AES', bits: 256 }, { sign: true, token: false })],
    ['bad label', () => t.generateKey(alice, { keyType: 'AES', bits: 256 }, { label: 'x'.repeat(300) })],
    ['bad key size', () => t.generateKey(alice, { keyType: 'AES', bits: 100 })],
    ['read-only attribute', () => t.setAttribute(alice, frozen, 'label', 'y')],
    ['not destroyable', () => t.destroy(alice, frozen)],
    ['unknown user', () => t.share(alice, k, 'eve')],
    ['not the owner', () => t.destroy(bob, k)],
    ['bad wrapped key', () => t.unwrapKey(alice, k, new Uint8Array(40), { mechanism: 'CKM_AES_KEY_WRAP_PAD' }, { class: 'SECRET_KEY', keyType: 'AES' })],
    ['bad PEM', () => t.importPublicKey(alice, '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----')],
  ];
  for (const [what, attempt] of attempts) {
    await assert.rejects(async () => { await attempt(); }, (e: unknown) => isCofferError(e), what);
    assert.equal(hex(t.stateDigest()), before.digest, what);
  }
  const failing: [string, () => unknown][] = [
    ['generate', () => t.generateKey(alice, { keyType: 'AES', bits: 256 })],
    ['generate pair', () => t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' })],
    ['share', () => t.share(alice, k, 'bob')],
    ['set attribute', () => t.setAttribute(alice, k, 'label', 'z')],
    ['destroy', () => t.destroy(alice, k)],
    ['import', () => t.importPublicKey(alice, PUBLIC_PEMS[0] ?? '')],
  ];
  for (const [what, attempt] of failing) {
    store.failNext = true;
    await assert.rejects(async () => { await attempt(); }, /simulated store failure/, what);
    assert.equal(hex(t.stateDigest()), before.digest, what);
    assert.deepEqual(t.find(alice), before.list, what);
  }
  assert.equal(store.count('object'), before.records);
  assert.equal(hex(open(store).stateDigest()), before.digest);
  assert.equal(await t.generateKey(alice, { keyType: 'AES', bits: 256 }), 3, 'no handle was consumed by the failures');
});

void test('session object capacity: SESSION_OBJECTS_MAX, then STORE_FULL; token objects unaffected', async () => {
  const t = open(new MemoryRecordStore());
  for (let i = 0; i < SESSION_OBJECTS_MAX; i++) await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: `s${i % 4}` });
  await rejectsCode(() => t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's0' }), 'COFFER_STORE_FULL');
  await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  assert.equal(t.dropSessionObjects('s1'), SESSION_OBJECTS_MAX / 4);
  await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's0' });
});

void test('token object capacity: OBJECTS_MAX, then STORE_FULL with nothing written', async () => {
  const store = new MemoryRecordStore();
  const material = SecretBytes.copyOf(new Uint8Array(16).fill(3));
  const attributes = Object.fromEntries(BOOLEAN_ATTRIBUTE_NAMES.map((n) => [n, n === 'token' || n === 'encrypt' || n === 'destroyable'])) as Record<(typeof BOOLEAN_ATTRIBUTE_NAMES)[number], boolean>;
  store.transaction((tx) => {
    for (let h = 1; h <= OBJECTS_MAX; h++) {
      const r = { handle: h, class: 'SECRET_KEY', keyType: 'AES', bits: 128, attributes, manageKeyQuorum: 0, useKeyQuorum: 0, owner: 'alice', sharees: [], label: '', id: new Uint8Array(0), kcv: new Uint8Array(0), material } as const;
      tx.put('object', h.toString().padStart(16, '0'), encodeObjectRecord(r));
    }
    const counter = new Uint8Array(8);
    new DataView(counter.buffer).setBigUint64(0, BigInt(OBJECTS_MAX + 1));
    tx.put('config', 'objects.next-handle', counter);
  });
  const t = open(store);
  assert.equal(t.tokenObjectCount, OBJECTS_MAX);
  const counter = hex(store.get('config', 'objects.next-handle') ?? new Uint8Array(0));
  await rejectsCode(() => t.generateKey(alice, { keyType: 'AES', bits: 128 }), 'COFFER_STORE_FULL');
  await rejectsCode(() => t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' }, { token: false, sessionId: 's' }), 'COFFER_STORE_FULL');
  // (stateDigest over 250,000 records costs seconds; the store and counter stand in for it here)
  assert.equal(store.count('object'), OBJECTS_MAX);
  assert.equal(t.tokenObjectCount, OBJECTS_MAX);
  assert.equal(hex(store.get('config', 'objects.next-handle') ?? new Uint8Array(0)), counter);
  await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's' }); // session objects still fit
  await t.destroy(alice, 17);
  assert.equal(await t.generateKey(alice, { keyType: 'AES', bits: 128 }), OBJECTS_MAX + 1);
});

void test('a damaged store is refused when the table opens', async () => {
  const store = new MemoryRecordStore();
  await open(store).generateKey(alice, { keyType: 'AES', bits: 128 });
  const [[id, bytes]] = [...store.list('object')] as [[string, Uint8Array]];
  const damaged = bytes.slice(0, bytes.length - 1);
  store.transaction((tx) => tx.put('object', id, damaged));
  throwsCode(() => open(store), 'COFFER_FORMAT_TRUNCATED');
  store.transaction((tx) => {
    tx.put('object', id, bytes);
    tx.put('object', '0000000000000009', bytes); // a record filed under another handle
  });
  throwsCode(() => open(store), 'COFFER_FORMAT_MALFORMED');
  store.transaction((tx) => {
    tx.delete('object', '0000000000000009');
    tx.put('config', 'objects.next-handle', new Uint8Array(8)); // counter behind the objects
  });
  throwsCode(() => open(store), 'COFFER_FORMAT_MALFORMED');
});

void test('find filters by handle, label, id, class, key type and boolean attributes; unknown filters are refused', async () => {
  const t = open(new MemoryRecordStore());
  const a = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { label: 'a', id: Uint8Array.of(1) });
  const g = await t.generateKey(alice, { keyType: 'GENERIC_SECRET', bits: 256 }, { label: 'g' });
  const p = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' }, { label: 'p' }, { label: 'p' });
  const handles = (f: Parameters<ObjectTable['find']>[1]): number[] => t.find(alice, f).map((i) => i.handle);
  assert.deepEqual(handles({}), [a, g, p.publicHandle, p.privateHandle]);
  assert.deepEqual(handles({ label: 'p' }), [p.publicHandle, p.privateHandle]);
  assert.deepEqual(handles({ label: 'p', class: 'PRIVATE_KEY' }), [p.privateHandle]);
  assert.deepEqual(handles({ id: Uint8Array.of(1) }), [a]);
  assert.deepEqual(handles({ keyType: 'GENERIC_SECRET' }), [g]);
  assert.deepEqual(handles({ sign: true }), [g, p.privateHandle]);
  assert.deepEqual(handles({ sensitive: false }), [p.publicHandle]);
  assert.deepEqual(handles({ handle: g, sign: false }), []);
  throwsCode(() => t.find(alice, { colour: 'red' } as never), 'COFFER_ATTRIBUTE_INVALID');
  // async paths and input limits
  const q = await t.generateKeyPairAsync(alice, { keyType: 'EC', curve: 'P-256' }, { label: 'async' });
  assert.deepEqual([q.publicHandle, q.privateHandle], [p.privateHandle + 1, p.privateHandle + 2]);
  await assert.rejects(t.generateKeyPairAsync(alice, { keyType: 'EC', curve: 'P-256' }, { sign: true }), (e: unknown) => isCofferError(e, 'COFFER_TEMPLATE_INCONSISTENT'));
  const sig = await t.signAsync(alice, p.privateHandle, ECDSA, DATA);
  assert.equal(await t.verifyAsync(alice, p.publicHandle, ECDSA, DATA, sig), true);
  await assert.rejects(t.signAsync(bob, p.privateHandle, ECDSA, DATA), (e: unknown) => isCofferError(e, 'COFFER_OBJECT_NOT_FOUND'));
  throwsCode(() => t.encrypt(alice, a, GCM(), new Uint8Array(CRYPTO_INPUT_BYTES_MAX + 1)), 'COFFER_DATA_LEN_RANGE');
  assert.equal(t.countOwnedBy('alice'), 6);
  assert.equal(t.countOwnedBy('bob'), 0);
});

void test('copies (C_CopyObject): a session key kept as a token object — same key and attributes, the copy\'s own handle and label; token private and secret keys and certificates are not copied', async () => {
  const store = new MemoryRecordStore();
  const t = open(store);
  const pair = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' }, { token: false, sessionId: 's1' }, { token: false, sessionId: 's1', extractable: false, label: 'made' });
  const aes = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { token: false, sessionId: 's1', useKeyQuorum: 0 });
  const before = t.stateDigest();
  const kept = await t.copyObject(alice, pair.privateHandle, { token: true, label: 'kept', id: Uint8Array.of(4, 2) });
  assert.ok(kept < SESSION_HANDLE_BASE, 'a token handle');
  assert.notEqual(hex(t.stateDigest()), hex(before), 'the copy is state');
  const source = t.getAttributes(alice, pair.privateHandle);
  const copy = t.getAttributes(alice, kept);
  assert.deepEqual({ ...copy.attributes, token: false }, source.attributes, 'every attribute but token is the source\'s');
  assert.equal(copy.attributes.token, true);
  assert.equal(copy.attributes.local, true, 'made on the device: the copy never left it');
  assert.equal(copy.attributes.neverExtractable, true);
  assert.deepEqual([copy.label, hex(copy.id), copy.owner, copy.sharees], ['kept', '0402', 'alice', []]);
  // The same key: a signature by the copy verifies under the session pair's public key.
  const sig = t.sign(alice, kept, ECDSA, DATA);
  assert.equal(t.verify(alice, pair.publicHandle, ECDSA, DATA, sig), true);
  // The token copy outlives the session; its state survives a reopen.
  assert.equal(t.dropSessionObjects('s1'), 3);
  assert.equal(hex(t.sign(alice, kept, { mechanism: 'CKM_ECDSA' }, new Uint8Array(32))).length, 128, 'the copy signs after its source is gone');
  const reopened = open(store);
  assert.equal(reopened.getAttributes(alice, kept).label, 'kept');
  // Refusals: a token private or secret key, a certificate, another user's key, a wider template.
  await rejectsCode(() => t.copyObject(alice, kept, { label: 'twice' }), 'COFFER_OBJECT_NOT_COPYABLE');
  const tokenAes = await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  await rejectsCode(() => t.copyObject(alice, tokenAes, {}), 'COFFER_OBJECT_NOT_COPYABLE');
  const pub = await t.importPublicKey(alice, PUBLIC_PEMS[0] as string, { label: 'pub' });
  const pubCopy = await t.copyObject(alice, pub, { label: 'pub-copy', modifiable: false });
  assert.deepEqual([t.getAttributes(alice, pubCopy).label, t.getAttributes(alice, pubCopy).attributes.modifiable], ['pub-copy', false]);
  await rejectsCode(() => t.copyObject(alice, pubCopy, { modifiable: true }), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.copyObject(alice, pub, { sensitive: true } as never), 'COFFER_ATTRIBUTE_INVALID');
  await rejectsCode(() => t.copyObject(bob, pub, {}), 'COFFER_PERMISSION_DENIED');
  const s2 = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's2' });
  await rejectsCode(() => t.copyObject(bob, s2, { token: true }), 'COFFER_OBJECT_NOT_FOUND');
  await rejectsCode(() => t.copyObject(admin, s2, { token: true }), 'COFFER_PERMISSION_DENIED');
  const s2Copy = await t.copyObject(alice, s2, { token: false, sessionId: 's2' });
  assert.ok(s2Copy >= SESSION_HANDLE_BASE, 'a session copy of a session key');
  void aes;
});
