// Development helpers (src/factory/development.ts): authorities saved to a directory and read back by
// another process's code path (a device provisioned from the loaded copy restores the original's
// backups), file modes, refusals, the development customer CA and management client certificates.

import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pemOf } from '../../src/formats/x509.js';
import {
  createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, loadDevelopmentAuthorities, saveDevelopmentAuthorities,
  type DevelopmentAuthorities,
} from '../../src/factory/development.js';
import { createOperator } from '../../src/factory/ceremony.js';
import { ADMIN_PW, activeDevice, backupOf, commissionedDevice, hex, rejectsAsync } from '../hsm/backup/backup_support.js';
import { flip } from '../helpers.js';
import { isCofferError } from '../../src/errors.js';

let authorities: DevelopmentAuthorities;
let root: string;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  root = mkdtempSync(join(tmpdir(), 'coffer-dev-authorities-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f));
}

describe('saved development authorities', () => {
  test('round trip: a device provisioned from the loaded copy restores the original device\'s backup', async () => {
    const dir = join(root, 'shared');
    saveDevelopmentAuthorities(authorities, dir);
    const loaded = await loadDevelopmentAuthorities(dir);
    assert.equal(pemOf(loaded.manufacturer.rootCertificate), pemOf(authorities.manufacturer.rootCertificate));
    assert.equal(pemOf(loaded.operator.rootCertificate), pemOf(authorities.operator.rootCertificate));
    assert.equal(loaded.akbk?.use(hex), authorities.akbk?.use(hex));
    const source = await activeDevice(authorities);
    await source.alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'shared' });
    const blob = backupOf(source.hsm);
    const target = await commissionedDevice(loaded);
    await target.restoreBackup({ length: blob.length, read: (o, n) => blob.slice(o, o + n) });
    assert.equal(hex(target.stateDigest()), hex(source.hsm.stateDigest()));
    const admin = target.openSession();
    await admin.login('admin', ADMIN_PW);
    // And the other way: the loaded copy's devices make backups the originals' devices restore.
    const back = backupOf(target);
    const original = await commissionedDevice(authorities);
    await original.restoreBackup({ length: back.length, read: (o, n) => back.slice(o, o + n) });
    assert.equal(hex(original.stateDigest()), hex(source.hsm.stateDigest()));
  });

  test('every file is 0600 and every directory 0700; nothing is overwritten', () => {
    const dir = join(root, 'modes');
    saveDevelopmentAuthorities(authorities, dir);
    const entries = filesUnder(dir);
    assert.ok(entries.length >= 10, `files written: ${entries.length}`);
    for (const path of [dir, ...entries]) {
      const st = statSync(path);
      assert.equal(st.mode & 0o777, st.isDirectory() ? 0o700 : 0o600, path);
    }
    assert.throws(() => saveDevelopmentAuthorities(authorities, dir), (e) => isCofferError(e, 'COFFER_CLI_INPUT'));
  });

  test('a changed AKBK component is refused (COFFER_AKBK_KCV); a production directory is refused', async () => {
    const dir = join(root, 'tampered');
    saveDevelopmentAuthorities(authorities, dir);
    const component = join(dir, 'operator', 'akbk-component-1.bin');
    writeFileSync(component, flip(readFileSync(component), 5));
    await rejectsAsync(loadDevelopmentAuthorities(dir), 'COFFER_AKBK_KCV');
    const prod = join(root, 'production');
    saveDevelopmentAuthorities(authorities, prod);
    const info = join(prod, 'factory', 'factory.json');
    writeFileSync(info, readFileSync(info, 'utf8').replace('"development": true', '"development": false'));
    await rejectsAsync(loadDevelopmentAuthorities(prod), 'COFFER_CLI_INPUT');
    await rejectsAsync(loadDevelopmentAuthorities(join(root, 'missing')), 'COFFER_CLI_INPUT');
  });

  test('authorities without an AKBK, or with production keys, are not saved', async () => {
    assert.throws(() => saveDevelopmentAuthorities({ manufacturer: authorities.manufacturer, operator: authorities.operator }, join(root, 'no-akbk')), (e) => isCofferError(e, 'COFFER_CLI_INPUT'));
    const production = { ...authorities, operator: await createOperator({ development: false }) };
    assert.throws(() => saveDevelopmentAuthorities(production, join(root, 'prod-op')), (e) => isCofferError(e, 'COFFER_CLI_INPUT'));
  });
});

describe('management client certificate', () => {
  test('a P-256 clientAuth certificate that chains to the operator root, marked as development', async () => {
    const { certificatePem, keyPem } = await issueManagementClientCertificate(authorities.operator, 'control-plane');
    const cert = new X509Certificate(certificatePem);
    const operatorRoot = new X509Certificate(pemOf(authorities.operator.rootCertificate));
    assert.equal(cert.checkIssued(operatorRoot), true);
    assert.equal(cert.verify(operatorRoot.publicKey), true);
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.match(cert.subject, /^CN=control-plane\nO=.*\(DEVELOPMENT KEY\)$/);
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(Buffer.compare(cert.publicKey.export({ format: 'der', type: 'spki' }), createPublicKey(key).export({ format: 'der', type: 'spki' })), 0);
    // Not signed by the manufacturer root.
    assert.equal(cert.verify(new X509Certificate(pemOf(authorities.manufacturer.rootCertificate)).publicKey), false);
  });

  test('refuses bad names and production operators', async () => {
    for (const name of ['', 'x'.repeat(65), 'tab\there']) await rejectsAsync(issueManagementClientCertificate(authorities.operator, name), 'COFFER_CLI_INPUT');
    await rejectsAsync(issueManagementClientCertificate(await createOperator({ development: false }), 'cp'), 'COFFER_CLI_INPUT');
  });
});

describe('development customer CA', () => {
  test('is a self-signed P-384 CA without a path length limit; refuses a CSR with a bad signature', async () => {
    const ca = await createDevelopmentCustomerCa();
    const cert = new X509Certificate(ca.certificatePem);
    assert.equal(cert.ca, true);
    assert.equal(cert.checkIssued(cert), true);
    assert.equal(cert.verify(cert.publicKey), true);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.match(cert.subject, /DEVELOPMENT KEY/);
    const hsm = await commissionedDevice(authorities);
    const csr = await hsm.cluster.createCsr('cluster-devcadevcadev');
    const signed = new X509Certificate(await ca.signClusterCsr(csr));
    assert.equal(signed.ca, true);
    assert.equal(signed.checkIssued(cert), true);
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const badSig = flip(der, der.length - 3);
    const badPem = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(badSig).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await assert.rejects(ca.signClusterCsr(badPem), (e) => isCofferError(e, 'COFFER_CERT_INVALID'));
  });
});
