// Device identity key (src/hsm/identity/identity.ts): generated inside the device, persisted in the 'device'
// namespace, certified through a PKCS#10 request, used to sign.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash, createPrivateKey } from 'node:crypto';
import { inspect } from 'node:util';
import { isCofferError } from '../../../src/errors.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { DEVICE_NS, DeviceIdentity, deviceSerialOf, verifyIdentitySignature } from '../../../src/hsm/identity/identity.js';
import { parseCsr, spkiOf, subjectField } from '../../../src/formats/x509.js';

void test('generate: P-384 key, valid CSR naming the serial derived from the key', async () => {
  const store = new MemoryRecordStore();
  const id = await DeviceIdentity.generate(new DeviceState(store));
  const csr = parseCsr(id.csrPem());
  assert.equal(await csr.verify(), true);
  assert.deepEqual(spkiOf(csr), id.publicKeySpki());
  assert.equal(subjectField(csr, 'CN'), id.serial);
  const h = createHash('sha256').update(id.publicKeySpki()).digest('hex').slice(0, 16).toUpperCase();
  assert.equal(id.serial, `CFR-${h}`);
  assert.equal(deviceSerialOf(id.publicKeySpki()), id.serial);
  const pkcs8 = store.get(DEVICE_NS, 'identity.key');
  assert.ok(pkcs8 !== undefined);
  assert.equal(createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).asymmetricKeyDetails?.namedCurve, 'secp384r1');
});

void test('signatures verify with the public key and fail for any other message, key or signature', async () => {
  const store = new MemoryRecordStore();
  const id = await DeviceIdentity.generate(new DeviceState(store));
  const other = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const msg = new TextEncoder().encode('coffer test v1\0hello');
  const sig = id.sign(msg);
  assert.equal(sig.length, 96);
  assert.equal(verifyIdentitySignature(id.publicKeySpki(), msg, sig), true);
  assert.equal(verifyIdentitySignature(other.publicKeySpki(), msg, sig), false);
  assert.equal(verifyIdentitySignature(id.publicKeySpki(), msg.subarray(1), sig), false);
  const bad = sig.slice();
  bad[95] = (bad[95] ?? 0) ^ 1;
  assert.equal(verifyIdentitySignature(id.publicKeySpki(), msg, bad), false);
  assert.equal(verifyIdentitySignature(id.publicKeySpki(), msg, sig.subarray(0, 95)), false);
});

void test('load returns the same identity; a second generate is refused', async () => {
  const store = new MemoryRecordStore();
  assert.equal(DeviceIdentity.load(store), undefined);
  const id = await DeviceIdentity.generate(new DeviceState(store));
  const again = DeviceIdentity.load(store);
  assert.ok(again !== undefined);
  assert.equal(again.serial, id.serial);
  assert.equal(verifyIdentitySignature(id.publicKeySpki(), new Uint8Array([1]), again.sign(new Uint8Array([1]))), true);
  await assert.rejects(DeviceIdentity.generate(new DeviceState(store)), (e) => isCofferError(e, 'COFFER_DEVICE_IDENTITY_EXISTS'));
});

void test('the identity never prints its private key', async () => {
  const store = new MemoryRecordStore();
  const id = await DeviceIdentity.generate(new DeviceState(store));
  const pkcs8 = store.get(DEVICE_NS, 'identity.key');
  assert.ok(pkcs8 !== undefined);
  const d = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({ format: 'jwk' }).d ?? '';
  const scalar = Buffer.from(d, 'base64url');
  assert.equal(scalar.length, 48);
  for (const text of [JSON.stringify(id), inspect(id), String(id), inspect(id, { showHidden: true, depth: 5 })]) {
    assert.ok(!text.includes(scalar.toString('hex')));
    assert.ok(!text.includes(scalar.toString('base64').slice(0, 40)));
    assert.ok(!text.includes(d.slice(0, 40)));
  }
  assert.equal(JSON.stringify(id), JSON.stringify({ serial: id.serial }));
});
