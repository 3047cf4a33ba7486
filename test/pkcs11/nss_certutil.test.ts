// Mozilla NSS on the cluster through the bridge (docs/pkcs11.md "Tested with"): NSS's certutil, with
// p11-kit-client.so added to a fresh NSS database by modutil, makes an EC P-256 and an RSA-2048 key
// pair on the cluster's token and a self-signed certificate with each (`certutil -S -x`: the key
// pair by C_GenerateKeyPair with NSS's own templates, the signature by C_Sign, the certificate stored
// by C_CreateObject). The OpenSSL CLI checks each certificate's self-signature, and the SDK finds the
// key pairs and the certificates as cluster objects, with the certificate's public key equal to the
// cluster's. NSS's templates say CKA_VERIFY_RECOVER and CKA_SIGN_RECOVER false, which the token once
// refused. Skipped, with the reason, where NSS's tools, p11-kit-client.so or OpenSSL are missing —
// except under COFFER_REQUIRE_PKCS11=1, where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { P11_KIT_CLIENT, clientsMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';

const NSS_TOOLS = ['/usr/bin/certutil', '/usr/bin/modutil'];
/** The token's label: startBridge labels the token with the name it is given. */
const TOKEN = 'nss';

const missing = clientsMissing([...NSS_TOOLS, '/usr/bin/openssl'], 'libnss3-tools and openssl');
if (missing !== undefined) console.log(`NSS certutil tests skipped: ${missing}`);

let bridge: Bridge | undefined;
let env: NodeJS.ProcessEnv = {};
let db = '';
const f = (name: string): string => join(bridge?.dir ?? '', name);

/** An NSS tool; must succeed. */
async function nss(tool: 'certutil' | 'modutil', args: readonly string[]): Promise<string> {
  const r = await run(`/usr/bin/${tool}`, args, env);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

before(async () => {
  if (missing !== undefined) return;
  bridge = await startBridge(TOKEN);
  env = { P11_KIT_SERVER_ADDRESS: bridge.address };
  db = `sql:${f('nssdb')}`;
  mkdirSync(f('nssdb'));
  writeFileSync(f('pin'), `${bridge.pin}\n`);
  writeFileSync(f('noise'), randomBytes(64));
  await nss('certutil', ['-N', '-d', db, '--empty-password']);
  await nss('modutil', ['-dbdir', db, '-add', 'coffer', '-libfile', P11_KIT_CLIENT, '-force']);
});
after(async () => {
  await bridge?.close();
});

test('NSS: modutil lists the cluster\'s token', { skip: missing }, async () => {
  const out = await nss('modutil', ['-dbdir', db, '-list', 'coffer']);
  assert.match(out, new RegExp(`Token Name: ${TOKEN}\\s`));
});

for (const [kind, args, algorithm] of [
  ['ec', ['-k', 'ec', '-q', 'nistp256'], 'id-ecPublicKey'],
  ['rsa', ['-k', 'rsa', '-g', '2048'], 'rsaEncryption'],
] as const) {
  test(`NSS: certutil makes a ${kind.toUpperCase()} key pair on the cluster and a self-signed certificate with it; OpenSSL checks the signature; the SDK sees the pair and the certificate`, { skip: missing, timeout: 300_000 }, async () => {
    assert.ok(bridge !== undefined);
    const token = TOKEN;
    const nickname = `nss-${kind}`;
    await nss('certutil', ['-S', '-d', db, '-h', token, '-f', f('pin'), '-z', f('noise'), '-n', nickname, '-s', `CN=${nickname}`, '-x', '-t', 'CT,,', ...args]);
    const listed = await nss('certutil', ['-K', '-d', db, '-h', token, '-f', f('pin')]);
    assert.match(listed, new RegExp(`${kind}\\s+[0-9a-f]{40}\\s+${token}:${nickname}`), 'certutil finds the private key on the token');
    const pem = await nss('certutil', ['-L', '-d', db, '-h', token, '-f', f('pin'), '-n', `${token}:${nickname}`, '-a']);
    writeFileSync(f(`${nickname}.pem`), pem);
    const check = await run('openssl', ['verify', '-check_ss_sig', '-CAfile', f(`${nickname}.pem`), f(`${nickname}.pem`)]);
    assert.equal(check.code, 0, `openssl verify: ${check.stdout}${check.stderr}`);
    const text = await run('openssl', ['x509', '-in', f(`${nickname}.pem`), '-noout', '-text']);
    assert.match(text.stdout, new RegExp(algorithm));
    // The pair and the certificate are cluster objects: the SDK finds them, and the certificate
    // carries the cluster's public key.
    const cert = new X509Certificate(pem.slice(pem.indexOf('-----BEGIN')));
    const spki = cert.publicKey.export({ format: 'der', type: 'spki' });
    const keyType = kind === 'ec' ? 'EC' : 'RSA';
    const publics = await bridge.sdk.findKeys({ class: 'PUBLIC_KEY', keyType });
    const ders = await Promise.all(publics.map(async (k) => createPublicKey(await k.exportPublicPem()).export({ format: 'der', type: 'spki' })));
    assert.equal(ders.filter((d) => d.equals(spki)).length, 1, 'one public key of the cluster is the certificate\'s');
    assert.ok((await bridge.sdk.findKeys({ class: 'PRIVATE_KEY', keyType })).length >= 1);
    const certs = await bridge.sdk.findCertificates();
    const values = await Promise.all(certs.map(async (c) => Buffer.from((await c.certificate()).certificate)));
    assert.ok(values.some((v) => v.equals(cert.raw)), 'the certificate is a cluster object');
  });
}
