// Java's SunPKCS11 provider on the cluster through the bridge, as AWS CloudHSM's JCE users would reach
// a PKCS#11 token (docs/pkcs11.md "Tested with"): a SunPKCS11 config naming p11-kit-client.so, with
// P11_KIT_SERVER_ADDRESS in the environment. Each cluster key pair gets a self-signed certificate
// (made by OpenSSL's pkcs11 engine with the cluster key) stored on the token under the key's CKA_ID,
// so `keytool -list -storetype PKCS11` shows PrivateKeyEntries; then test/pkcs11/java/Sign.java
// signs through KeyStore.getInstance("PKCS11") with SHA256withECDSA and SHA256withRSA, and the OpenSSL
// CLI verifies each signature against the public key the SDK exports. `keytool -genkeypair` makes
// pairs on the cluster (C_GenerateKeyPair, C_Sign, C_CopyObject into a token object, C_CreateObject
// of the certificate), checked by OpenSSL and the SDK. Skipped, with the reason, where a JDK (java
// with its compiler, keytool), the engine or p11-kit-client.so is missing — except under
// COFFER_REQUIRE_PKCS11=1, where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate, createCipheriv, createHmac, createPublicKey } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { P11_KIT_CLIENT, clientsMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';
import type { Key } from '../../src/client/index.js';

const JAVA_HOME = '/usr/lib/jvm/java-17-openjdk-amd64';
const JAVA = join(JAVA_HOME, 'bin/java');
const KEYTOOL = join(JAVA_HOME, 'bin/keytool');
/** `java File.java` needs the JDK's compiler (package openjdk-17-jdk-headless), not only the JRE. */
const JAVAC = join(JAVA_HOME, 'bin/javac');
const ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';
const SIGN_JAVA = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/pkcs11/java/Sign.java');
const SECRET_JAVA = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/pkcs11/java/Secret.java');

const missing = clientsMissing([JAVA, KEYTOOL, JAVAC, ENGINE, '/usr/bin/openssl'], 'openjdk-17-jdk-headless, libengine-pkcs11-openssl, openssl');
if (missing !== undefined) console.log(`Java SunPKCS11 tests skipped: ${missing}`);

let bridge: Bridge | undefined;
let env: NodeJS.ProcessEnv = {};
const f = (name: string): string => join(bridge?.dir ?? '', name);
const KEYS = [
  // Mechanism values from PKCS#11 v2.40 §2.3 and §2.1: CKM_ECDSA, CKM_SHA256_RSA_PKCS.
  // SunPKCS11 takes CKM_ECDSA_SHA256 when the token lists it for signing; p11-kit's client before
  // protocol version 2 (0.25.6) cannot carry it and leaves it out of the list, so Java hashes itself
  // and signs with CKM_ECDSA.
  { alias: 'java-ec', id: 0x01, spec: { curve: 'P-256' } as const, algorithm: 'SHA256withECDSA', mechanism: (version: number) => (version >= 2 ? 0x1044 : 0x1041) },
  { alias: 'java-rsa', id: 0x02, spec: { keyType: 'RSA', bits: 2048 } as const, algorithm: 'SHA256withRSA', mechanism: () => 0x40 },
];

async function must(file: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = env): Promise<string> {
  const r = await run(file, args, extraEnv);
  assert.equal(r.code, 0, `${file} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

before(async () => {
  if (missing !== undefined) return;
  const b = (bridge = await startBridge('p11-java'));
  writeFileSync(f('sunpkcs11.cfg'), `name = Coffer\nlibrary = ${P11_KIT_CLIENT}\n`);
  writeFileSync(f('openssl.cnf'), [
    'openssl_conf = openssl_init', '[openssl_init]', 'engines = engine_section', '[engine_section]', 'pkcs11 = pkcs11_section',
    '[pkcs11_section]', 'engine_id = pkcs11', `dynamic_path = ${ENGINE}`, `MODULE_PATH = ${P11_KIT_CLIENT}`, `PIN = ${b.pin}`, 'init = 0',
    '[req]', 'distinguished_name = dn', '[dn]', '',
  ].join('\n'));
  env = { P11_KIT_SERVER_ADDRESS: b.address, OPENSSL_CONF: f('openssl.cnf') };
  writeFileSync(f('data'), 'signed by the cluster through Java');
  for (const k of KEYS) {
    const pair = await b.sdk.generateKeyPair({ ...k.spec, label: k.alias, id: Uint8Array.of(k.id) });
    writeFileSync(f(`${k.alias}.pub.pem`), await pair.publicKey.exportPublicPem());
    // The key's certificate, signed by the key itself on the cluster, stored under the same CKA_ID.
    await must('openssl', ['req', '-new', '-x509', '-engine', 'pkcs11', '-keyform', 'engine', '-key', `pkcs11:object=${k.alias};type=private`,
      '-subj', `/CN=${k.alias}/O=Coffer test`, '-days', '7', '-sha256', '-outform', 'DER', '-out', f(`${k.alias}.der`)]);
    await b.sdk.importCertificate(new Uint8Array(readFileSync(f(`${k.alias}.der`))), { label: k.alias, id: Uint8Array.of(k.id) });
  }
});
after(async () => {
  await bridge?.close();
});

test('keytool -list -storetype PKCS11 shows each cluster key with its certificate as a PrivateKeyEntry', { skip: missing, timeout: 300_000 }, async () => {
  const b = bridge as Bridge;
  const out = await must(KEYTOOL, ['-list', '-storetype', 'PKCS11', '-providerclass', 'sun.security.pkcs11.SunPKCS11', '-providerarg', f('sunpkcs11.cfg'), '-storepass', b.pin]);
  assert.match(out, /Your keystore contains 2 entries/);
  for (const k of KEYS) assert.match(out, new RegExp(`${k.alias}, PrivateKeyEntry`));
});

test('Sign.java signs through KeyStore.getInstance("PKCS11") with SHA256withECDSA and SHA256withRSA; OpenSSL verifies', { skip: missing, timeout: 300_000 }, async () => {
  const b = bridge as Bridge;
  for (const k of KEYS) {
    const sig = f(`${k.alias}.sig`);
    const from = b.inits.length;
    const out = await must(JAVA, [SIGN_JAVA, f('sunpkcs11.cfg'), b.pin, k.alias, k.algorithm, f('data'), sig]);
    assert.match(out, new RegExp(`signed with (EC|RSA) key ${k.alias} with certificate`));
    // SunPKCS11 hashes for ECDSA itself (CKM_ECDSA) where the client cannot carry CKM_ECDSA_SHA256, and
    // hands RSA the whole message (CKM_SHA256_RSA_PKCS).
    assert.deepEqual(b.inits.slice(from).map((i) => [i.call, i.mechanism?.type]), b.inits.slice(from).map((i) => ['C_SignInit', k.mechanism(i.version)]));
    assert.equal(b.inits.length - from, 1);
    assert.match(await must('openssl', ['dgst', '-sha256', '-verify', f(`${k.alias}.pub.pem`), '-signature', sig, f('data')], {}), /Verified OK/);
    writeFileSync(f('other'), 'not what was signed');
    const forged = await run('openssl', ['dgst', '-sha256', '-verify', f(`${k.alias}.pub.pem`), '-signature', sig, f('other')]);
    assert.notEqual(forged.code, 0);
  }
});

test('Secret.java: HmacSHA256 and AES/ECB/NoPadding with the cluster\'s secret keys through the PKCS11 KeyStore equal node:crypto under their values', { skip: missing, timeout: 300_000 }, async () => {
  const b = bridge as Bridge;
  const hmac = await b.sdk.generateKey({ type: 'GENERIC_SECRET', bits: 256, label: 'java-hmac', extractable: true, attributes: { sensitive: false, sign: true, verify: true } });
  const aes = await b.sdk.generateKey({ type: 'AES', bits: 256, label: 'java-aes', extractable: true, attributes: { sensitive: false, encrypt: true, decrypt: true } });
  const data = Buffer.from('32 bytes for two AES-ECB blocks!');
  writeFileSync(f('secret-data'), data);
  const out = await must(JAVA, [SECRET_JAVA, f('sunpkcs11.cfg'), b.pin, 'java-hmac', 'java-aes', f('secret-data')]);
  const hmacValue = await hmac.exportPlaintext();
  const aesValue = await aes.exportPlaintext();
  assert.match(out, new RegExp(`^hmac ${createHmac('sha256', hmacValue).update(data).digest('hex')}$`, 'm'));
  const ecb = createCipheriv('aes-256-ecb', aesValue, null).setAutoPadding(false);
  assert.match(out, new RegExp(`^ecb ${Buffer.concat([ecb.update(data), ecb.final()]).toString('hex')}$`, 'm'));
});

test('keytool -genkeypair makes an EC and an RSA key pair on the cluster with a self-signed certificate each: PrivateKeyEntries, token objects the SDK sees, certificates OpenSSL accepts', { skip: missing, timeout: 300_000 }, async () => {
  const b = bridge as Bridge;
  const store = ['-storetype', 'PKCS11', '-providerclass', 'sun.security.pkcs11.SunPKCS11', '-providerarg', f('sunpkcs11.cfg'), '-storepass', b.pin];
  // SunPKCS11 generates the pair as session objects (C_GenerateKeyPair), signs the certificate with
  // it (C_Sign), keeps the private key as a token object (C_CopyObject with CKA_TOKEN true) and stores
  // the certificate (C_CreateObject). keytool takes RSA pairs from the first provider that makes them
  // (Java's own, in software) unless told the PKCS#11 provider's name; the cluster takes no private
  // key from outside in plaintext, so RSA needs -providername.
  const made = [
    { alias: 'keytool-ec', args: ['-keyalg', 'EC', '-groupname', 'secp256r1', '-sigalg', 'SHA256withECDSA'], keyType: 'EC' },
    { alias: 'keytool-rsa', args: ['-keyalg', 'RSA', '-keysize', '2048', '-sigalg', 'SHA256withRSA', '-providername', 'SunPKCS11-Coffer'], keyType: 'RSA' },
  ] as const;
  for (const k of made) await must(KEYTOOL, ['-genkeypair', '-alias', k.alias, ...k.args, '-dname', `CN=${k.alias}`, ...store]);
  const listed = await must(KEYTOOL, ['-list', ...store]);
  for (const k of made) {
    assert.match(listed, new RegExp(`${k.alias}, PrivateKeyEntry`));
    const pem = f(`${k.alias}.crt.pem`);
    await must(KEYTOOL, ['-exportcert', '-rfc', '-alias', k.alias, '-file', pem, ...store]);
    const check = await run('openssl', ['verify', '-check_ss_sig', '-CAfile', pem, pem]);
    assert.equal(check.code, 0, `openssl verify: ${check.stdout}${check.stderr}`);
    // The private key is a token object of the cluster (Java names it by CKA_ID = the alias), and
    // the certificate carries its public key.
    const keys = await b.sdk.findKeys({ class: 'PRIVATE_KEY', id: new TextEncoder().encode(k.alias) });
    assert.equal(keys.length, 1, `one private key with the id ${k.alias}`);
    const [key] = keys as [Key];
    assert.equal((await key.attributes()).keyType, k.keyType);
    assert.equal((await key.attributes()).attributes.local, true, 'made on the cluster');
    const spki = (pemText: string): Buffer => createPublicKey(pemText).export({ format: 'der', type: 'spki' });
    assert.ok(spki(await key.exportPublicPem()).equals(new X509Certificate(readFileSync(pem)).publicKey.export({ format: 'der', type: 'spki' })));
  }
  // What a keystore user does next: a certificate request signed by the key, a new alias, deletion.
  await must(KEYTOOL, ['-certreq', '-alias', 'keytool-ec', '-file', f('keytool-ec.csr'), ...store]);
  assert.match(await must('openssl', ['req', '-in', f('keytool-ec.csr'), '-noout', '-verify', '-subject'], {}), /subject=CN ?= ?keytool-ec\n[\s\S]*verify OK/);
  await must(KEYTOOL, ['-changealias', '-alias', 'keytool-ec', '-destalias', 'keytool-ec-renamed', ...store]);
  assert.match(await must(KEYTOOL, ['-list', ...store]), /keytool-ec-renamed, PrivateKeyEntry/);
  const privateKeys = (await b.sdk.findKeys({ class: 'PRIVATE_KEY' })).length;
  await must(KEYTOOL, ['-delete', '-alias', 'keytool-ec-renamed', ...store]);
  assert.doesNotMatch(await must(KEYTOOL, ['-list', ...store]), /keytool-ec-renamed/);
  assert.equal((await b.sdk.findKeys({ class: 'PRIVATE_KEY' })).length, privateKeys - 1, 'the private key is gone from the cluster');
});
