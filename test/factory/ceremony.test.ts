// Offline ceremony library (src/factory/ceremony.ts): key ids, AKBK components, the manufacturer
// and operator roots, device and operator certificates, ceremony directories.
//
// Known answers: the key id vectors were computed independently with
// `openssl dgst -sha256 -mac HMAC -macopt hexkey:<key>` over "coffer key id v1". (KCVs are
// src/crypto/kcv.ts's, with their own vectors in test/crypto/kcv.test.ts.)

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError } from '../../src/errors.js';
import { kcvAes } from '../../src/crypto/kcv.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { DeviceState } from '../../src/hsm/state/device_state.js';
import { DeviceIdentity } from '../../src/hsm/identity/identity.js';
import { FACTORY_FILES, OPERATOR_FILES, createManufacturer, createOperator, generateAkbkComponents, issueDeviceCertificate, issueOperatorCertificate, loadManufacturer, loadOperator, saveManufacturer, saveOperator } from '../../src/factory/ceremony.js';
import { DEVELOPMENT_MARK } from '../../src/formats/x509.js';
import { keyId, xorComponents } from '../../src/crypto/backup_keys.js';
import { EC_P384_SHA384, parseCertificate, pemOf, spkiOf, subjectField, x509 } from '../../src/formats/x509.js';
import { checkIssuedBy, checkRootCa } from '../../src/formats/device_chain.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const clock = new ManualClock();

void test('key id: HMAC-SHA-256(key, "coffer key id v1")[0..8] — openssl-computed vectors', () => {
  assert.equal(hex(keyId(new Uint8Array(32))), '6c8989d57e008083');
  const k = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.equal(hex(keyId(k)), '7db5cd88b984a2ff');
  assert.throws(() => keyId(new Uint8Array(16)), (e) => isCofferError(e, 'COFFER_CRYPTO_KEY_SIZE'));
});

void test('AKBK components: N random parts whose XOR has the printed KCV and key id', () => {
  for (const n of [2, 3, 16]) {
    const a = generateAkbkComponents(n);
    assert.equal(a.components.length, n);
    a.components.forEach((c, i) => assert.deepEqual(kcvAes(c), a.componentKcvs[i]));
    const akbk = xorComponents(a.components);
    assert.deepEqual(kcvAes(akbk), a.akbkKcv);
    assert.deepEqual(akbk.use(keyId), a.akbkKeyId);
    // No single component is the AKBK.
    for (const c of a.components) assert.equal(c.equals(akbk), false);
    akbk.destroy();
  }
  for (const n of [0, 1, 17, 2.5]) assert.throws(() => generateAkbkComponents(n), (e) => isCofferError(e, 'COFFER_AKBK_COMPONENTS'));
});

void test('development roots are marked, self-signed P-384 CAs; production names may not carry the mark', async () => {
  const m = await createManufacturer({ development: true, clock });
  const o = await createOperator({ development: true, clock });
  for (const root of [m.rootCertificate, o.rootCertificate]) {
    assert.ok(root.subject.includes(DEVELOPMENT_MARK), root.subject);
    checkRootCa(root, clock.nowMs());
    assert.deepEqual(JSON.parse(JSON.stringify(root.signatureAlgorithm)), { name: 'ECDSA', hash: { name: 'SHA-384' } });
  }
  assert.equal(m.mkbk.length, 32);
  const prod = await createManufacturer({ development: false, name: 'Example Devices Ltd', clock });
  assert.equal(subjectField(prod.rootCertificate, 'O'), 'Example Devices Ltd');
  assert.ok(!prod.rootCertificate.subject.includes(DEVELOPMENT_MARK));
  await assert.rejects(createManufacturer({ development: false, name: `Sneaky ${DEVELOPMENT_MARK}` }), (e) => isCofferError(e, 'COFFER_CLI_INPUT'));
  await assert.rejects(createOperator({ development: false, name: 'bad\nname' }), (e) => isCofferError(e, 'COFFER_CLI_INPUT'));
});

void test('device certificate: issued for the CSR key and serial, chains to the root; bad CSRs refused', async () => {
  const m = await createManufacturer({ development: true, clock });
  const other = await createManufacturer({ development: true, clock });
  const id = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const cert = await issueDeviceCertificate(m, id.csrPem(), clock);
  assert.deepEqual(spkiOf(cert), id.publicKeySpki());
  assert.equal(subjectField(cert, 'CN'), id.serial);
  assert.ok(cert.subject.includes(DEVELOPMENT_MARK));
  checkIssuedBy(cert, m.rootCertificate, clock.nowMs());
  assert.throws(() => checkIssuedBy(cert, other.rootCertificate, clock.nowMs()), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
  // Outside its validity period it does not verify.
  assert.throws(() => checkIssuedBy(cert, m.rootCertificate, clock.nowMs() + 21 * 365 * 86_400_000), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));

  // A CSR whose subject names another serial, or whose signature is broken, is refused.
  const keys = await crypto.subtle.generateKey(EC_P384_SHA384, true, ['sign', 'verify']);
  const wrongName = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=CFR-0000000000000000', keys, signingAlgorithm: EC_P384_SHA384 });
  await assert.rejects(issueDeviceCertificate(m, pemOf(wrongName), clock), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
  const der = Buffer.from(id.csrPem().replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 1;
  await assert.rejects(issueDeviceCertificate(m, der, clock), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
  await assert.rejects(issueDeviceCertificate(m, 'not a csr', clock), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
});

void test('operator certificate: same key as the device certificate; foreign device certificates refused', async () => {
  const m = await createManufacturer({ development: true, clock });
  const other = await createManufacturer({ development: true, clock });
  const o = await createOperator({ development: true, clock });
  const id = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const deviceCert = await issueDeviceCertificate(m, id.csrPem(), clock);
  const opCert = await issueOperatorCertificate(o, pemOf(deviceCert), { manufacturerRoot: pemOf(m.rootCertificate), clock });
  assert.deepEqual(spkiOf(opCert), id.publicKeySpki());
  assert.ok(opCert.subject.includes(DEVELOPMENT_MARK));
  checkIssuedBy(opCert, o.rootCertificate, clock.nowMs());
  await assert.rejects(
    issueOperatorCertificate(o, pemOf(deviceCert), { manufacturerRoot: pemOf(other.rootCertificate), clock }),
    (e) => isCofferError(e, 'COFFER_CERT_INVALID'),
  );
  // A root CA is not a device certificate.
  await assert.rejects(issueOperatorCertificate(o, pemOf(m.rootCertificate), { manufacturerRoot: pemOf(m.rootCertificate), clock }), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
});

void test('ceremony directories: key files 0600, nothing overwritten, loaded keys still work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-ceremony-'));
  t.after(() => rmSync(dir, { recursive: true }));
  const m = await createManufacturer({ development: true, clock });
  const info = saveManufacturer(m, join(dir, 'factory'));
  for (const f of [FACTORY_FILES.rootKey, FACTORY_FILES.firmwareKey, FACTORY_FILES.mkbk]) assert.equal(statSync(join(dir, 'factory', f)).mode & 0o777, 0o600, f);
  assert.equal(info.mkbkKcv, hex(kcvAes(m.mkbk)));
  assert.throws(() => saveManufacturer(m, join(dir, 'factory')), (e) => isCofferError(e, 'COFFER_CLI_INPUT'));
  const loaded = await loadManufacturer(join(dir, 'factory'));
  assert.ok(loaded.mkbk.equals(m.mkbk));
  assert.deepEqual(loaded.firmwareSigningPublicKeySpki, m.firmwareSigningPublicKeySpki);
  const id = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  checkIssuedBy(await issueDeviceCertificate(loaded, id.csrPem(), clock), m.rootCertificate, clock.nowMs());

  const o = await createOperator({ development: false, clock });
  const akbk = generateAkbkComponents(3);
  const oinfo = saveOperator(o, akbk, join(dir, 'operator'));
  assert.equal(oinfo.components.length, 3);
  const parts = oinfo.components.map((c) => {
    const p = join(dir, 'operator', c.file);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    const bytes = readFileSync(p);
    const part = SecretBytes.copyOf(bytes);
    assert.equal(hex(kcvAes(part)), c.kcv);
    return part;
  });
  assert.equal(hex(kcvAes(xorComponents(parts))), oinfo.akbkKcv);
  assert.equal(existsSync(join(dir, 'operator', 'akbk.bin')), false);
  assert.equal(existsSync(join(dir, 'operator', OPERATOR_FILES.component(4))), false);
  const lo = await loadOperator(join(dir, 'operator'));
  checkIssuedBy(await issueOperatorCertificate(lo, pemOf(await issueDeviceCertificate(m, id.csrPem(), clock)), { clock }), o.rootCertificate, clock.nowMs());
  await assert.rejects(loadOperator(join(dir, 'missing')), (e) => isCofferError(e, 'COFFER_CLI_INPUT') && !JSON.stringify(e).includes(dir));
  assert.equal(parseCertificate(readFileSync(join(dir, 'operator', OPERATOR_FILES.rootCertificate), 'utf8')).subject, o.rootCertificate.subject);
});
