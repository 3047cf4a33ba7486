// Certificate objects through the SDK (docs/sdk.md "Certificates") against in-process nodes over TLS:
// a certificate stored on the first node travels to the second in a sealed backup, is found by class,
// label and id and read back byte for byte on either; import refusals carry their codes; destroy.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from '../../src/client/cluster.js';
import { certificateFields } from '../../src/formats/certificate_fields.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { ALICE, startTestCluster, type TestCluster } from './support.js';
import { selfSigned } from '../certificate_support.js';

const EC = selfSigned('ec', 'sdk ec');
const RSA = selfSigned('rsa', 'sdk rsa');

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}

let tc: TestCluster<number>;
let cluster: Cluster;
before(async () => {
  // Stored on the source device before the second node is cloned from its backup.
  tc = await startTestCluster({ nodes: 2, setup: (alice) => alice.importCertificate(EC.der, { label: 'in backup', id: Uint8Array.of(7), category: 3 }) });
  cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE });
});
after(async () => {
  await cluster.close();
  await tc.close();
});

test('a certificate stored before a backup is on every node restored from it', async () => {
  for (const node of tc.nodes) {
    const s = node.hsm.openSession();
    await s.login(ALICE.username, ALICE.password, 'crypto-user');
    const found = s.find({ class: 'CERTIFICATE', label: 'in backup' });
    assert.deepEqual(found.map((o) => o.handle), [tc.made]);
    assert.deepEqual(Buffer.from(s.certificate(tc.made).der), Buffer.from(EC.der));
    assert.equal(s.certificate(tc.made).category, 3);
    s.close();
  }
  const [cert] = await cluster.findCertificates({ id: Uint8Array.of(7) });
  assert.ok(cert !== undefined);
  assert.equal(cert.class, 'CERTIFICATE');
  const value = await cert.certificate();
  assert.deepEqual(Buffer.from(value.certificate), Buffer.from(EC.der));
  assert.equal(value.category, 3);
});

test('import, find by label and key type, read, refuse, destroy', async () => {
  const f = certificateFields(RSA.der);
  const cert = await cluster.importCertificate(RSA.der, { label: 'sdk rsa', id: Uint8Array.of(1), subject: f.subject, serialNumber: f.serialNumber });
  const info = await cert.attributes();
  assert.equal(info.class, 'CERTIFICATE');
  assert.equal(info.keyType, 'RSA');
  assert.equal(info.bits, 2048);
  const byLabel = await cluster.findCertificates({ label: 'sdk rsa' });
  assert.deepEqual(byLabel.map((k) => k.handle), [cert.handle]);
  assert.deepEqual((await cluster.findCertificates({ keyType: 'RSA' })).map((k) => k.handle), [cert.handle]);
  assert.deepEqual(Buffer.from((await cert.certificate()).certificate), Buffer.from(RSA.der));
  await rejectsWith(cluster.importCertificate(RSA.der, { issuer: certificateFields(EC.der).issuer }), 'COFFER_CERT_TEMPLATE_MISMATCH');
  await rejectsWith(cluster.importCertificate(RSA.der.subarray(10)), 'COFFER_CERT_VALUE_INVALID');
  await rejectsWith(cert.exportPublicPem(), 'COFFER_KEY_TYPE_INCONSISTENT');
  const keys = await cluster.generateKeyPair({ curve: 'P-256', label: 'not a cert' });
  await rejectsWith(keys.publicKey.certificate(), 'COFFER_KEY_TYPE_INCONSISTENT');
  await cert.destroy();
  assert.deepEqual(await cluster.findCertificates({ label: 'sdk rsa' }), []);
});
