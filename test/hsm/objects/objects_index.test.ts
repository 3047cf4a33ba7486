// The object table over its compact index (docs/device.md "Objects"): a key dropped from the bounded
// KeyObject cache is rebuilt on use and gives the same results; close() zeroises every buffer the
// index holds.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { ObjectIndex } from '../../../src/hsm/objects/object_index.js';
import { ObjectTable } from '../../../src/hsm/objects/objects.js';
import type { Actor, Handle, MechanismParams } from '../../../src/hsm/types.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const alice: Actor = { userId: 'alice', role: 'crypto-user' };
const DATA = new TextEncoder().encode('the same answer, cached or rebuilt');
const HMAC: MechanismParams = { mechanism: 'CKM_SHA256_HMAC' };
const EDDSA: MechanismParams = { mechanism: 'CKM_EDDSA' };
const ECDSA: MechanismParams = { mechanism: 'CKM_ECDSA_SHA256' };
const GCM: MechanismParams = { mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12).fill(3) };

function table(options: { keyCacheMax?: number; index?: ObjectIndex } = {}): ObjectTable {
  return new ObjectTable({ state: new DeviceState(new MemoryRecordStore()), mode: 'NON_FIPS', isCryptoUser: (u) => u === 'alice', ...options });
}

void test('a key dropped from the bounded KeyObject cache is rebuilt on use and gives the same signatures', async () => {
  const t = table({ keyCacheMax: 2 });
  const hmac = await t.generateKey(alice, { keyType: 'GENERIC_SECRET', bits: 256 }, { sign: true, verify: true });
  const ed = await t.generateKeyPair(alice, { keyType: 'EC_EDWARDS', curve: 'Ed25519' });
  const aes = await t.generateKey(alice, { keyType: 'AES', bits: 256 });
  const ec = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-256' });
  const ecPublic = createPublicKey(t.exportPublic(alice, ec.publicHandle));
  const first = { hmac: hex(t.sign(alice, hmac, HMAC, DATA)), ed: hex(t.sign(alice, ed.privateHandle, EDDSA, DATA)), aes: hex(t.encrypt(alice, aes, GCM, DATA)) };
  for (let round = 0; round < 3; round++) {
    assert.ok(t.cachedKeyCount <= 2, `at most the bound (${t.cachedKeyCount})`);
    // Each key is used after the two others: it was dropped in between, so it is rebuilt here.
    assert.equal(hex(t.sign(alice, hmac, HMAC, DATA)), first.hmac);
    assert.equal(hex(t.sign(alice, ed.privateHandle, EDDSA, DATA)), first.ed);
    assert.equal(hex(t.encrypt(alice, aes, GCM, DATA)), first.aes);
    const signature = t.sign(alice, ec.privateHandle, ECDSA, DATA);
    assert.ok(nodeVerify('sha256', DATA, { key: ecPublic, dsaEncoding: 'ieee-p1363' }, signature), 'ECDSA by a rebuilt key verifies');
  }
  assert.equal(t.cachedKeyCount, 2);
  assert.ok(t.verify(alice, ed.publicHandle, EDDSA, DATA, Uint8Array.from(Buffer.from(first.ed, 'hex'))));
});

void test('close() zeroises every buffer the index holds key material or identities in', async () => {
  const index = new ObjectIndex();
  const t = table({ index });
  const handles: Handle[] = [];
  for (let i = 0; i < 40; i++) handles.push(await t.generateKey(alice, { keyType: 'AES', bits: 256 }, { label: `k${i}`, extractable: true, sensitive: false }));
  const session = await t.generateKey(alice, { keyType: 'AES', bits: 128 }, { token: false, sessionId: 's1', extractable: true, sensitive: false });
  const pair = await t.generateKeyPair(alice, { keyType: 'EC', curve: 'P-384' });
  for (const h of [...handles, session, pair.privateHandle]) t.getAttributes(alice, h); // computes each identity
  const keys = [...handles, session].map((h) => {
    const secret = t.exportPlaintext(alice, h);
    try {
      return secret.use((b) => Buffer.from(b));
    } finally {
      secret.destroy();
    }
  });
  const buffers = index.secretBuffersForTest();
  const held = Buffer.concat(buffers.map((b) => Buffer.from(b)));
  for (const key of keys) assert.ok(held.includes(key), 'the index holds each key');
  t.close();
  for (const b of buffers) assert.ok(b.every((x) => x === 0), 'every byte of every buffer is zero');
  assert.deepEqual([t.tokenObjectCount, t.sessionObjectCount, t.cachedKeyCount], [0, 0, 0]);
});
