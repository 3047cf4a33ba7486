// Attribute rules enforced through the object table: function attributes, sensitive and
// extractable, wrap-with-trusted, modifiable and destroyable, computed attributes of generated,
// unwrapped, imported and derived keys, per-key quorum, and FIPS refusals on every path.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { kcvAes, kcvPublicKey } from '../../../src/crypto/kcv.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { ObjectTable, type KeyQuorumGate } from '../../../src/hsm/objects/objects.js';
import type { Actor, MechanismParams, Mode } from '../../../src/hsm/types.js';
import { rejectsCode, throwsCode } from '../../helpers.js';

const alice: Actor = { userId: 'alice', role: 'crypto-user' };
const admin: Actor = { userId: 'admin', role: 'admin' };
const GCM = (): MechanismParams => ({ mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12).fill(1) });
const KWP: MechanismParams = { mechanism: 'CKM_AES_KEY_WRAP_PAD' };
const ECDSA: MechanismParams = { mechanism: 'CKM_ECDSA_SHA256' };
const DATA = new TextEncoder().encode('attack at dawn');

function setup(mode: Mode = 'NON_FIPS', quorumGate?: KeyQuorumGate): ObjectTable {
  const store = new MemoryRecordStore();
  const base = { state: new DeviceState(store), mode, isCryptoUser: (u: string) => u === 'alice' || u === 'bob' };
  return new ObjectTable(quorumGate === undefined ? base : { ...base, quorumGate });
}

void test('each key function needs its attribute, and switching it off takes effect at once', async () => {
  const t = setup();
  const k = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  const ct = t.encrypt(alice, k, GCM(), DATA);
  assert.deepEqual(new Uint8Array(t.decrypt(alice, k, GCM(), ct)), DATA);
  throwsCode(() => t.sign(alice, k, { mechanism: 'CKM_AES_CMAC' }, DATA), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  throwsCode(() => t.wrapKey(alice, k, k, KWP), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  await rejectsCode(() => t.deriveKey(alice, k, { mechanism: 'CKM_SP800_108_COUNTER_KDF', label: DATA, context: DATA }, { keyType: 'AES', bits: 128 }), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  await t.setAttribute(alice, k, 'encrypt', false);
  throwsCode(() => t.encrypt(alice, k, GCM(), DATA), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  await t.setAttribute(alice, k, 'sign', true);
  assert.equal(t.sign(alice, k, { mechanism: 'CKM_AES_CMAC' }, DATA).length, 16);
  const { publicHandle, privateHandle } = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' });
  throwsCode(() => t.sign(alice, publicHandle, ECDSA, DATA), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  throwsCode(() => t.verify(alice, privateHandle, ECDSA, DATA, new Uint8Array(64)), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  await rejectsCode(() => t.setAttribute(alice, privateHandle, 'verify', true), 'COFFER_TEMPLATE_INCONSISTENT');
  await rejectsCode(() => t.generateKey(alice, { keyType: 'GENERIC_SECRET', bits: 256 }, { encrypt: true }), 'COFFER_TEMPLATE_INCONSISTENT');
});

void test('wrap: non-extractable keys and public keys are refused; unwrapped keys are not local, sensitive history reset', async () => {
  const t = setup();
  const kek = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { wrap: true, unwrap: true });
  const target = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { label: 'data key' });
  const locked = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { extractable: false });
  const { publicHandle } = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' });
  throwsCode(() => t.wrapKey(alice, kek, locked, KWP), 'COFFER_KEY_UNEXTRACTABLE');
  throwsCode(() => t.wrapKey(alice, kek, publicHandle, KWP), 'COFFER_KEY_NOT_WRAPPABLE');
  assert.equal(t.getAttributes(alice, locked).attributes.neverExtractable, true);
  const wrapped = t.wrapKey(alice, kek, target, KWP);
  const copy = await t.unwrapKey(alice, kek, wrapped, KWP, { class: 'SECRET_KEY', keyType: 'AES', label: 'copy' });
  const info = t.getAttributes(alice, copy);
  assert.deepEqual([info.attributes.local, info.attributes.alwaysSensitive, info.attributes.neverExtractable], [false, false, false]);
  assert.deepEqual(info.kcv, t.getAttributes(alice, target).kcv);
  assert.equal(info.bits, 128);
  assert.equal(t.getAttributes(alice, target).attributes.local, true);
  const ct = t.encrypt(alice, target, GCM(), DATA);
  assert.deepEqual(new Uint8Array(t.decrypt(alice, copy, GCM(), ct)), DATA);
  // extractable may go true→false only; then wrapping stops
  await t.setAttribute(alice, target, 'extractable', false);
  await rejectsCode(() => t.setAttribute(alice, target, 'extractable', true), 'COFFER_ATTRIBUTE_READ_ONLY');
  throwsCode(() => t.wrapKey(alice, kek, target, KWP), 'COFFER_KEY_UNEXTRACTABLE');
  assert.equal(t.getAttributes(alice, target).attributes.neverExtractable, false, 'never-extractable keeps its history');
  await rejectsCode(() => t.unwrapKey(alice, kek, wrapped.map((b, i) => (i === 3 ? b ^ 1 : b)), KWP, { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_WRAPPED_KEY_INVALID');
});

void test('wrap-with-trusted: only a wrapping key an admin marked trusted may wrap such a key', async () => {
  const t = setup();
  const kek = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { wrap: true });
  const guarded = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { wrapWithTrusted: true });
  throwsCode(() => t.wrapKey(alice, kek, guarded, KWP), 'COFFER_KEY_NOT_WRAPPABLE');
  await rejectsCode(() => t.generateKey(alice, { keyType: 'AES', bits: 256 }, { trusted: true }), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.setAttribute(alice, kek, 'trusted', true), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.setAttribute(alice, guarded, 'wrapWithTrusted', false), 'COFFER_ATTRIBUTE_READ_ONLY');
  await t.setAttribute(admin, kek, 'trusted', true);
  assert.ok(t.wrapKey(alice, kek, guarded, KWP).length >= 40);
  const plain = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  await t.setAttribute(alice, plain, 'wrapWithTrusted', true);
  await t.setAttribute(admin, kek, 'trusted', false);
  throwsCode(() => t.wrapKey(alice, kek, plain, KWP), 'COFFER_KEY_NOT_WRAPPABLE');
});

void test('sensitive: a sensitive or non-extractable key never leaves in plaintext; plaintext export is refused in FIPS mode', async () => {
  const t = setup();
  const open = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { sensitive: false });
  const secret = t.exportPlaintext(alice, open);
  assert.equal(secret.length, 16);
  // the exported value is the key: its KCV, computed outside the table, is the object's
  const info = t.getAttributes(alice, open);
  assert.deepEqual(kcvAes(secret), info.kcv);
  assert.equal(JSON.stringify(info).includes(secret.use((b) => Buffer.from(b).toString('hex'))), false, 'metadata holds no key bytes');
  assert.equal(String(info.attributes.alwaysSensitive), 'false');
  secret.destroy();
  const sensitive = await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  throwsCode(() => t.exportPlaintext(alice, sensitive), 'COFFER_ATTRIBUTE_SENSITIVE');
  const locked = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { sensitive: false, extractable: false });
  throwsCode(() => t.exportPlaintext(alice, locked), 'COFFER_ATTRIBUTE_SENSITIVE');
  await t.setAttribute(alice, open, 'sensitive', true);
  throwsCode(() => t.exportPlaintext(alice, open), 'COFFER_ATTRIBUTE_SENSITIVE');
  await rejectsCode(() => t.setAttribute(alice, open, 'sensitive', false), 'COFFER_ATTRIBUTE_READ_ONLY');
  const fips = setup('FIPS');
  const f = await fips.generateKey(alice, { keyType: 'AES', bits: 128 }, { sensitive: false });
  throwsCode(() => fips.exportPlaintext(alice, f), 'COFFER_FIPS_REFUSED');
});

void test('modifiable=false freezes a key; destroyable=false keeps it', async () => {
  const t = setup();
  const k = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { modifiable: false, destroyable: false, label: 'fixed' });
  const digest = t.stateDigest();
  await rejectsCode(() => t.setAttribute(alice, k, 'label', 'changed'), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.setAttribute(alice, k, 'encrypt', false), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.setAttribute(admin, k, 'trusted', true), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.destroy(alice, k), 'COFFER_OBJECT_NOT_DESTROYABLE');
  assert.deepEqual(t.stateDigest(), digest);
  const d = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  await t.setAttribute(alice, d, 'destroyable', false);
  await rejectsCode(() => t.destroy(alice, d), 'COFFER_OBJECT_NOT_DESTROYABLE');
  await t.setAttribute(alice, d, 'destroyable', true);
  await t.destroy(alice, d);
  for (const name of ['local', 'neverExtractable', 'alwaysSensitive', 'token', 'class', 'keyType', 'owner', 'kcv']) {
    await rejectsCode(() => t.setAttribute(alice, k, name as 'label', 'x'), 'COFFER_ATTRIBUTE_READ_ONLY', name);
  }
  const m = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  await t.setAttribute(alice, m, 'label', 'renamed');
  await t.setAttribute(alice, m, 'id', Uint8Array.of(1, 2, 3));
  assert.equal(t.find(alice, { label: 'renamed', id: Uint8Array.of(1, 2, 3) })[0]?.handle, m);
  await rejectsCode(() => t.setAttribute(alice, m, 'label', 'x'.repeat(257)), 'COFFER_ATTRIBUTE_INVALID');
});

void test('derived keys: not local; always-sensitive and never-extractable inherit from the base (PKCS#11 C_DeriveKey)', async () => {
  const t = setup();
  const base = await t.generateKey(alice, { keyType: 'GENERIC_SECRET', bits: 256 }, { derive: true, extractable: false });
  const hkdf: MechanismParams = { mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-256', salt: Uint8Array.of(1), info: DATA };
  const d1 = await t.deriveKey(alice, base, hkdf, { keyType: 'AES', bits: 256, extractable: false });
  const d2 = await t.deriveKey(alice, base, hkdf, { keyType: 'AES', bits: 256, extractable: true });
  const a1 = t.getAttributes(alice, d1).attributes;
  const a2 = t.getAttributes(alice, d2).attributes;
  assert.deepEqual([a1.local, a1.alwaysSensitive, a1.neverExtractable], [false, true, true]);
  assert.equal(a2.neverExtractable, false);
  assert.deepEqual(t.getAttributes(alice, d1).kcv, t.getAttributes(alice, d2).kcv, 'same inputs, same key');
  await rejectsCode(() => t.deriveKey(alice, base, hkdf, { keyType: 'AES', bits: 256, trusted: true }), 'COFFER_ATTRIBUTE_READ_ONLY');
  await rejectsCode(() => t.deriveKey(alice, base, hkdf, { keyType: 'GENERIC_SECRET', bits: 256, encrypt: true }), 'COFFER_TEMPLATE_INCONSISTENT');
});

void test('imports: public keys from PEM or DER, private keys in plaintext outside FIPS mode only; not local', async () => {
  const t = setup();
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const der = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const h1 = await t.importPublicKey(alice, pem, { label: 'imported' });
  const h2 = await t.importPublicKey(alice, der);
  assert.equal(t.exportPublic(alice, h1), pem);
  assert.equal(t.getAttributes(alice, h2).attributes.local, false);
  assert.equal(t.getAttributes(alice, h2).curve, 'P-256');
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const hp = await t.importPrivateKey(alice, pkcs8);
  assert.equal(t.exportPublic(alice, hp), pem, 'public half of the imported private key');
  const sig = t.sign(alice, hp, ECDSA, DATA);
  assert.equal(t.verify(alice, h1, ECDSA, DATA, sig), true);
  assert.equal(t.verify(alice, h1, ECDSA, DATA, sig.map((b, i) => (i === 10 ? b ^ 1 : b))), false);
  await rejectsCode(() => t.importPublicKey(alice, pkcs8), 'COFFER_DATA_INVALID');
  await rejectsCode(() => t.importPublicKey(alice, Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00)), 'COFFER_DATA_INVALID');
  await rejectsCode(() => t.importPublicKey(alice, pem, { sensitive: true }), 'COFFER_TEMPLATE_INCONSISTENT');
  const fips = setup('FIPS');
  await rejectsCode(() => fips.importPrivateKey(alice, pkcs8), 'COFFER_FIPS_REFUSED');
  await fips.importPublicKey(alice, pem);
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await rejectsCode(() => fips.importPublicKey(alice, k1), 'COFFER_FIPS_REFUSED');
  assert.equal(t.getAttributes(alice, await t.importPublicKey(alice, k1)).curve, 'secp256k1');
});

void test('FIPS mode refusals reach every creation path and leave no trace', async () => {
  const t = setup('FIPS');
  const digest = t.stateDigest();
  await rejectsCode(() => t.generateKeyPair(alice, { keyType: 'EC', curve: 'secp256k1' }), 'COFFER_FIPS_REFUSED');
  assert.deepEqual(t.stateDigest(), digest);
  assert.equal(t.tokenObjectCount, 0);
  const nf = setup('NON_FIPS');
  const { privateHandle } = await nf.generateKeyPair(alice, { keyType: 'EC', curve: 'secp256k1' });
  assert.equal(nf.sign(alice, privateHandle, ECDSA, DATA).length, 64);
});

void test('per-key quorum: the gate is asked before use or management when the value is ≥ 2, and only then', async () => {
  const calls: string[] = [];
  let approve = false;
  const gate: KeyQuorumGate = (actor, service, m, handle) => {
    calls.push(`${actor.userId} ${service} ${m} ${handle}`);
    if (!approve) throw new Error('no approval');
  };
  const t = setup('NON_FIPS', gate);
  const k = await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { useKeyQuorum: 2, manageKeyQuorum: 3 });
  const free = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  t.encrypt(alice, free, GCM(), DATA);
  await t.destroy(alice, free);
  assert.deepEqual(calls, []);
  assert.throws(() => t.encrypt(alice, k, GCM(), DATA), /no approval/);
  throwsCode(() => t.sign(alice, k, { mechanism: 'CKM_AES_CMAC' }, DATA), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  await assert.rejects(async () => { await t.destroy(alice, k); }, /no approval/);
  assert.deepEqual(calls, [`alice key-usage 2 ${k}`, `alice key-management 3 ${k}`], 'a refused call does not reach the gate');
  assert.equal(t.getAttributes(alice, k).handle, k, 'still there');
  approve = true;
  t.encrypt(alice, k, GCM(), DATA);
  await t.destroy(alice, k);
  throwsCode(() => t.getAttributes(alice, k), 'COFFER_OBJECT_NOT_FOUND');
  await rejectsCode(() => t.generateKey(alice, { keyType: 'AES', bits: 256 }, { useKeyQuorum: 1 }), 'COFFER_QUORUM_VALUE_INVALID');
  const noGate = setup();
  const q = await noGate.generateKey(alice, { keyType: 'AES', bits: 256 }, { useKeyQuorum: 2 });
  throwsCode(() => noGate.encrypt(alice, q, GCM(), DATA), 'COFFER_QUORUM_REQUIRED');
});

test('a generated pair: both keys carry the KCV of the public key, and the public key its SPKI, exported once', async () => {
  const t = setup();
  for (const spec of [{ keyType: 'EC', curve: 'P-256' }, { keyType: 'EC', curve: 'P-384' }, { keyType: 'EC_EDWARDS', curve: 'Ed25519' }, { keyType: 'RSA', bits: 2048 }] as const) {
    for (const generate of [t.generateKeyPair.bind(t), t.generateKeyPairAsync.bind(t)]) {
      const { publicHandle, privateHandle } = await generate(alice, spec);
      const pem = t.exportPublic(alice, publicHandle);
      // Computed apart: the public key parsed from what the table exports, its SPKI exported again.
      const expected = kcvPublicKey(createPublicKey(pem));
      assert.deepEqual(t.getAttributes(alice, publicHandle).kcv, expected, `${spec.keyType}: the public key's KCV`);
      assert.deepEqual(t.getAttributes(alice, privateHandle).kcv, expected, `${spec.keyType}: the private key's KCV is its public half's`);
      assert.equal(t.exportPublic(alice, privateHandle), pem, `${spec.keyType}: the private key's public half is the public key`);
    }
  }
});
