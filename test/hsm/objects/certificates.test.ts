// Certificate objects in the object table (docs/device.md "Certificates"): stored through the one
// state-change door as version 2 object records, public to every crypto user, managed by their owner,
// never usable as a key; the DER is checked and a template's subject, issuer and serial number must be
// the certificate's own (compared with what OpenSSL reports and an independent ASN.1 parser reads).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { x509 } from '../../../src/formats/x509.js';
import { certificateFields } from '../../../src/formats/certificate_fields.js';
import { OBJECT_NAMESPACE, readObjectRecordLayout } from '../../../src/formats/object_record.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { ObjectTable } from '../../../src/hsm/objects/objects.js';
import type { Actor } from '../../../src/hsm/types.js';
import { rejectsCode, throwsCode } from '../../helpers.js';
import { derInteger, selfSigned } from '../../certificate_support.js';

const alice: Actor = { userId: 'alice', role: 'crypto-user' };
const bob: Actor = { userId: 'bob', role: 'crypto-user' };
const admin: Actor = { userId: 'admin', role: 'admin' };
const appliance: Actor = { userId: 'app_user', role: 'appliance' };
const EC = selfSigned('ec', 'ec leaf');
const RSA = selfSigned('rsa', 'rsa leaf');

function table(store = new MemoryRecordStore()): ObjectTable {
  return new ObjectTable({ state: new DeviceState(store), mode: 'NON_FIPS', isCryptoUser: (u) => u === 'alice' || u === 'bob' });
}

void test('certificate fields are the DER the certificate carries (OpenSSL serial, @peculiar/x509 names)', () => {
  for (const c of [EC, RSA]) {
    const f = certificateFields(c.der);
    const parsed = new x509.X509Certificate(c.der);
    assert.deepEqual(Buffer.from(f.subject), Buffer.from(parsed.subjectName.toArrayBuffer()));
    assert.deepEqual(Buffer.from(f.issuer), Buffer.from(parsed.issuerName.toArrayBuffer()));
    assert.deepEqual(Buffer.from(f.serialNumber), Buffer.from(derInteger(c.serialHex)));
  }
  assert.equal(certificateFields(EC.der).publicKey.asymmetricKeyType, 'ec');
  assert.equal(certificateFields(RSA.der).publicKey.asymmetricKeyType, 'rsa');
});

void test('a certificate is stored as a version 2 record, read back by anyone who may see it, and survives a reload', async () => {
  const store = new MemoryRecordStore();
  const t = table(store);
  const handle = await t.importCertificate(alice, EC.der, { label: 'ec cert', id: Uint8Array.of(1, 2), category: 1 });
  const info = t.getAttributes(alice, handle);
  assert.equal(info.class, 'CERTIFICATE');
  assert.equal(info.keyType, 'EC');
  assert.equal(info.curve, 'P-256');
  assert.equal(info.bits, 256);
  assert.equal(info.label, 'ec cert');
  assert.deepEqual(info.id, Uint8Array.of(1, 2));
  assert.deepEqual(info.kcv, new Uint8Array(0));
  assert.equal(info.attributes.token, true);
  for (const fn of ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive', 'trusted', 'sensitive', 'extractable'] as const) assert.equal(info.attributes[fn], false, fn);
  assert.deepEqual(Buffer.from(t.certificate(alice, handle).der), Buffer.from(EC.der));
  assert.equal(t.certificate(alice, handle).category, 1);
  // Public: another crypto user and an admin see and read it.
  assert.deepEqual(Buffer.from(t.certificate(bob, handle).der), Buffer.from(EC.der));
  assert.deepEqual(t.find(bob, { class: 'CERTIFICATE' }).map((o) => o.handle), [handle]);
  assert.equal(t.certificate(admin, handle).category, 1);
  throwsCode(() => t.certificate(appliance, handle), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.importCertificate(appliance, EC.der), 'COFFER_PERMISSION_DENIED');
  // The record in the store is the version 2 certificate record.
  const stored = [...new DeviceState(store).list(OBJECT_NAMESPACE)].map(([, bytes]) => readObjectRecordLayout(bytes));
  assert.deepEqual(stored.map((l) => [l.class, l.category]), [['CERTIFICATE', 1]]);
  const reloaded = table(store);
  assert.deepEqual(Buffer.from(reloaded.certificate(bob, handle).der), Buffer.from(EC.der));
  assert.deepEqual(reloaded.stateDigest(), t.stateDigest());
});

void test('the template must agree with the certificate; bad DER is refused; nothing changes on a refusal', async () => {
  const t = table();
  const f = certificateFields(RSA.der);
  const handle = await t.importCertificate(alice, RSA.der, { subject: f.subject, issuer: f.issuer, serialNumber: f.serialNumber });
  assert.equal(t.getAttributes(alice, handle).keyType, 'RSA');
  assert.equal(t.getAttributes(alice, handle).bits, 2048);
  const digest = t.stateDigest();
  const other = certificateFields(EC.der);
  await rejectsCode(() => t.importCertificate(alice, RSA.der, { subject: other.subject }), 'COFFER_CERT_TEMPLATE_MISMATCH');
  await rejectsCode(() => t.importCertificate(alice, RSA.der, { issuer: other.issuer }), 'COFFER_CERT_TEMPLATE_MISMATCH');
  await rejectsCode(() => t.importCertificate(alice, RSA.der, { serialNumber: derInteger('01') }), 'COFFER_CERT_TEMPLATE_MISMATCH');
  await rejectsCode(() => t.importCertificate(alice, RSA.der.subarray(0, RSA.der.length - 1)), 'COFFER_CERT_VALUE_INVALID');
  await rejectsCode(() => t.importCertificate(alice, Uint8Array.of(...RSA.der, 0)), 'COFFER_CERT_VALUE_INVALID');
  await rejectsCode(() => t.importCertificate(alice, new TextEncoder().encode('not a certificate')), 'COFFER_CERT_VALUE_INVALID');
  await rejectsCode(() => t.importCertificate(alice, new Uint8Array(0)), 'COFFER_CERT_VALUE_INVALID');
  await rejectsCode(() => t.importCertificate(alice, RSA.der, { category: 4 }), 'COFFER_ATTRIBUTE_INVALID');
  await rejectsCode(() => t.importCertificate(alice, RSA.der, { sign: true } as never), 'COFFER_ATTRIBUTE_INVALID');
  assert.deepEqual(t.stateDigest(), digest);
});

void test('a certificate is no key: it signs nothing, exports no key, takes no key function; its owner renames and destroys it', async () => {
  const t = table();
  const handle = await t.importCertificate(alice, EC.der, { label: 'c' });
  throwsCode(() => t.sign(alice, handle, { mechanism: 'CKM_ECDSA_SHA256' }, new Uint8Array(4)), 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  throwsCode(() => t.exportPublic(alice, handle), 'COFFER_KEY_TYPE_INCONSISTENT');
  await rejectsCode(() => t.setAttribute(alice, handle, 'verify', true), 'COFFER_TEMPLATE_INCONSISTENT');
  await rejectsCode(() => t.setAttribute(bob, handle, 'label', 'mine'), 'COFFER_PERMISSION_DENIED');
  await rejectsCode(() => t.destroy(bob, handle), 'COFFER_PERMISSION_DENIED');
  await t.setAttribute(alice, handle, 'label', 'renamed');
  assert.equal(t.getAttributes(bob, handle).label, 'renamed');
  assert.equal(t.certificate(bob, handle).category, 0);
  await t.destroy(alice, handle);
  throwsCode(() => t.certificate(alice, handle), 'COFFER_OBJECT_NOT_FOUND');
  const key = await t.generateKey(alice, { keyType: 'AES', bits: 128 });
  throwsCode(() => t.certificate(alice, key), 'COFFER_KEY_TYPE_INCONSISTENT');
});
