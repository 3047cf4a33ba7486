// OpenSSL's pkcs11 engine (libp11, Debian's libengine-pkcs11-openssl) on the cluster through the bridge
// (docs/pkcs11.md "Tested with"): an openssl.cnf made here loads the engine with MODULE_PATH =
// p11-kit-client.so, and P11_KIT_SERVER_ADDRESS points at the bridge. The OpenSSL CLI then signs with
// an EC and an RSA key of the cluster (`openssl dgst -sign`), decrypts with the RSA key (`openssl
// pkeyutl -decrypt`), makes a self-signed certificate with the EC key (`openssl req -x509`), and
// serves TLS 1.3 and 1.2 with both keys (`openssl s_server`, checked by `openssl s_client`). Every
// result is checked by the OpenSSL CLI without the engine, against the public keys the SDK exports.
// Skipped, with the reason, where the engine, p11-kit-client.so or the CLI is missing —
// except under COFFER_REQUIRE_PKCS11=1, where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Key } from '../../src/client/index.js';
import { P11_KIT_CLIENT, clientsMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';
import { freePort } from '../service/fleet/fleet_support.js';

export const PKCS11_ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';

const missing = clientsMissing([PKCS11_ENGINE, '/usr/bin/openssl'], 'libengine-pkcs11-openssl and openssl');
if (missing !== undefined) console.log(`OpenSSL pkcs11 engine tests skipped: ${missing}`);

let bridge: Bridge | undefined;
let env: NodeJS.ProcessEnv = {};
let ec: { privateKey: Key; publicPem: string };
let rsa: { privateKey: Key; publicPem: string };
const f = (name: string): string => join(bridge?.dir ?? '', name);

before(async () => {
  if (missing !== undefined) return;
  bridge = await startBridge('p11-engine');
  // The engine logs in with the PIN of its configuration; the keys are the cluster's, made by the SDK.
  writeFileSync(f('openssl.cnf'), [
    'openssl_conf = openssl_init',
    '[openssl_init]', 'engines = engine_section',
    '[engine_section]', 'pkcs11 = pkcs11_section',
    '[pkcs11_section]', 'engine_id = pkcs11', `dynamic_path = ${PKCS11_ENGINE}`, `MODULE_PATH = ${P11_KIT_CLIENT}`, `PIN = ${bridge.pin}`, 'init = 0',
    '[req]', 'distinguished_name = dn', '[dn]', '',
  ].join('\n'));
  env = { OPENSSL_CONF: f('openssl.cnf'), P11_KIT_SERVER_ADDRESS: bridge.address };
  const ecPair = await bridge.sdk.generateKeyPair({ curve: 'P-256', label: 'engine-ec', id: Uint8Array.of(0xe1) });
  const rsaPair = await bridge.sdk.generateKeyPair({ keyType: 'RSA', bits: 2048, label: 'engine-rsa', id: Uint8Array.of(0xa1) });
  ec = { privateKey: ecPair.privateKey, publicPem: await ecPair.publicKey.exportPublicPem() };
  rsa = { privateKey: rsaPair.privateKey, publicPem: await rsaPair.publicKey.exportPublicPem() };
  writeFileSync(f('ec.pub.pem'), ec.publicPem);
  writeFileSync(f('rsa.pub.pem'), rsa.publicPem);
  writeFileSync(f('data'), 'signed by the cluster through OpenSSL');
});
after(async () => {
  await bridge?.close();
});

/** The OpenSSL CLI with the engine configured; must succeed. */
async function openssl(args: readonly string[], withEngine = true): Promise<string> {
  const r = await run('openssl', args, withEngine ? env : {});
  assert.equal(r.code, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

const uri = (label: string): string => `pkcs11:object=${label};type=private`;

// PKCS#11 v2.40 mechanism values, from the specification (§2.1, §2.3).
const CKM_RSA_PKCS = 0x1;
const CKM_RSA_PKCS_OAEP = 0x9;
const CKM_RSA_PKCS_PSS = 0xd;
const CKM_ECDSA = 0x1041;
const CKM_SHA_1 = 0x220n;

/** The mechanisms the engine asked for since `from` (the bridge records C_SignInit and C_DecryptInit). */
function asked(from: number): string[] {
  return (bridge?.inits ?? []).slice(from).map((i) => `${i.call} ${i.mechanism?.type ?? 'none'}${i.mechanism?.parameter.kind === 'rsaOaep' ? ` hash ${i.mechanism.parameter.hashAlg}` : ''}`);
}

test('openssl dgst -sha256 -sign with the cluster\'s EC and RSA keys; openssl dgst -verify accepts, and refuses other data', { skip: missing, timeout: 300_000 }, async () => {
  for (const [label, pub, mechanism] of [['engine-ec', 'ec.pub.pem', CKM_ECDSA], ['engine-rsa', 'rsa.pub.pem', CKM_RSA_PKCS]] as const) {
    const sig = f(`${label}.sig`);
    const from = bridge?.inits.length ?? 0;
    await openssl(['dgst', '-sha256', '-engine', 'pkcs11', '-keyform', 'engine', '-sign', uri(label), '-out', sig, f('data')]);
    // The engine hashes, then signs through the token: raw ECDSA over the digest, PKCS#1 v1.5 over the DigestInfo.
    assert.deepEqual(asked(from), [`C_SignInit ${mechanism}`]);
    assert.match(await openssl(['dgst', '-sha256', '-verify', f(pub), '-signature', sig, f('data')], false), /Verified OK/);
    writeFileSync(f('other'), 'other data');
    const forged = await run('openssl', ['dgst', '-sha256', '-verify', f(pub), '-signature', sig, f('other')]);
    assert.notEqual(forged.code, 0);
    assert.match(forged.stdout, /Verification failure/);
  }
});

test('openssl pkeyutl -decrypt with the cluster\'s RSA key (OAEP) gives back what OpenSSL encrypted to its public key', { skip: missing, timeout: 300_000 }, async () => {
  writeFileSync(f('secret'), 'a data key, wrapped to the cluster');
  await openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', f('rsa.pub.pem'), '-pkeyopt', 'rsa_padding_mode:oaep', '-in', f('secret'), '-out', f('secret.enc')], false);
  const from = bridge?.inits.length ?? 0;
  await openssl(['pkeyutl', '-decrypt', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', uri('engine-rsa'), '-pkeyopt', 'rsa_padding_mode:oaep', '-in', f('secret.enc'), '-out', f('secret.dec')]);
  assert.equal(readFileSync(f('secret.dec'), 'utf8'), 'a data key, wrapped to the cluster');
  // libp11's RSA method passes OAEP with SHA-1 (it carries no hash choice).
  assert.deepEqual(asked(from), [`C_DecryptInit ${CKM_RSA_PKCS_OAEP} hash ${CKM_SHA_1}`]);
  // PKCS#1 v1.5 decryption is not offered by the token: the engine asks for CKM_RSA_PKCS and is refused.
  const fromV15 = bridge?.inits.length ?? 0;
  const v15 = await run('openssl', ['pkeyutl', '-decrypt', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', uri('engine-rsa'), '-in', f('secret.enc'), '-out', f('secret.v15')], env);
  assert.notEqual(v15.code, 0);
  const tries = asked(fromV15);
  assert.ok(tries.length >= 1 && tries.every((t) => t === `C_DecryptInit ${CKM_RSA_PKCS}`), tries.join(', ')); // libp11 tries again after a failure
});

test('openssl req -x509 with the cluster\'s EC key makes a self-signed certificate that openssl verify accepts', { skip: missing, timeout: 300_000 }, async () => {
  await openssl(['req', '-new', '-x509', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri('engine-ec'), '-subj', '/CN=cluster signed/O=Coffer test', '-days', '7', '-sha256', '-out', f('self.pem')]);
  assert.match(await openssl(['verify', '-CAfile', f('self.pem'), f('self.pem')], false), /self\.pem: OK/);
  // Its key is the cluster's key.
  const certKey = await openssl(['x509', '-in', f('self.pem'), '-noout', '-pubkey'], false);
  assert.equal(certKey.trim(), ec.publicPem.trim());
  assert.match(await openssl(['x509', '-in', f('self.pem'), '-noout', '-subject'], false), /CN\s*=\s*cluster signed/);
});

test('openssl s_server serves TLS 1.3 and 1.2 with the cluster\'s EC and RSA keys; openssl s_client verifies the handshake signatures (ECDSA, RSA-PSS) made on the cluster', { skip: missing, timeout: 300_000 }, async () => {
  const b = bridge as Bridge;
  for (const [kind, signature, mechanism] of [['ec', /Peer signature type: ECDSA/, CKM_ECDSA], ['rsa', /Peer signature type: RSA-PSS/, CKM_RSA_PKCS_PSS]] as const) {
    const cert = f(`tls-${kind}.pem`);
    await openssl(['req', '-new', '-x509', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri(`engine-${kind}`), '-subj', '/CN=localhost', '-days', '2', '-out', cert]);
    const port = await freePort(['127.0.0.1']);
    const server = spawn('openssl', ['s_server', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri(`engine-${kind}`), '-cert', cert, '-accept', `127.0.0.1:${port}`, '-www'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        server.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('ACCEPT')) resolve();
        });
        server.once('exit', (code) => reject(new Error(`s_server exited ${String(code)}: ${out}`)));
      });
      for (const version of ['-tls1_3', '-tls1_2']) {
        const from = b.inits.length;
        const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', cert, '-verify_return_error', version], {}, 'GET / HTTP/1.0\r\n\r\n');
        assert.equal(r.code, 0, `${kind} ${version}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout + r.stderr, /Verify return code: 0 \(ok\)/);
        assert.match(r.stdout + r.stderr, signature);
        assert.ok(b.inits.slice(from).some((i) => i.call === 'C_SignInit' && i.mechanism?.type === mechanism), `${kind} ${version}: the handshake was signed on the cluster`);
      }
    } finally {
      server.kill('SIGTERM');
    }
  }
});
