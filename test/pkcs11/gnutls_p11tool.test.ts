// GnuTLS on the cluster through the bridge (docs/pkcs11.md "Tested with"): GnuTLS's p11tool and
// certtool (Debian's gnutls-bin), each given p11-kit-client.so with --provider, find the cluster's
// token, make an EC P-256 and an RSA-2048 key pair on it (`p11tool --generate-privkey`) and a
// self-signed certificate with each (`certtool --generate-self-signed --load-privkey pkcs11:…`,
// signed through C_Sign). OpenSSL checks each certificate's self-signature, and its public key is the
// one the SDK exports for the pair. Skipped, with the reason, where GnuTLS's tools,
// p11-kit-client.so or OpenSSL are missing — except under COFFER_REQUIRE_PKCS11=1, where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { P11_KIT_CLIENT, clientsMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';

const TOKEN = 'gnutls';
const missing = clientsMissing(['/usr/bin/p11tool', '/usr/bin/certtool', '/usr/bin/openssl'], 'gnutls-bin and openssl');
if (missing !== undefined) console.log(`GnuTLS p11tool tests skipped: ${missing}`);

let bridge: Bridge | undefined;
let env: NodeJS.ProcessEnv = {};
const f = (name: string): string => join(bridge?.dir ?? '', name);
const tokenUri = `pkcs11:token=${TOKEN}`;

/** A GnuTLS tool with the bridge as its one provider; must succeed. */
async function gnutls(tool: 'p11tool' | 'certtool', args: readonly string[]): Promise<string> {
  const r = await run(`/usr/bin/${tool}`, ['--provider', P11_KIT_CLIENT, ...args], env);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

before(async () => {
  if (missing !== undefined) return;
  bridge = await startBridge(TOKEN);
  // GNUTLS_PIN answers the tools' PIN prompt.
  env = { P11_KIT_SERVER_ADDRESS: bridge.address, GNUTLS_PIN: bridge.pin };
  writeFileSync(f('template'), 'cn = coffer-gnutls\nserial = 7\nexpiration_days = 2\n');
});
after(async () => {
  await bridge?.close();
});

test('GnuTLS: p11tool lists the cluster\'s token, a hardware token with a random generator that needs a login', { skip: missing }, async () => {
  const out = await gnutls('p11tool', ['--list-tokens']);
  assert.match(out, new RegExp(`Label: ${TOKEN}\\n`));
  assert.match(out, /Flags: RNG, Requires login/);
});

for (const [kind, args, keyType] of [
  ['ec', ['ECDSA', '--curve', 'secp256r1'], 'EC'],
  ['rsa', ['RSA', '--bits', '2048'], 'RSA'],
] as const) {
  test(`GnuTLS: p11tool makes a ${keyType} key pair on the cluster and certtool a self-signed certificate with it; OpenSSL checks it; its public key is the cluster's`, { skip: missing, timeout: 300_000 }, async () => {
    assert.ok(bridge !== undefined);
    const label = `gnutls-${kind}`;
    await gnutls('p11tool', ['--login', '--generate-privkey', ...args, '--label', label, tokenUri]);
    const listed = await gnutls('p11tool', ['--login', '--list-privkeys', tokenUri]);
    assert.match(listed, new RegExp(`Label: ${label}\\n`));
    const pem = f(`${label}.pem`);
    await gnutls('certtool', ['--generate-self-signed', '--load-privkey', `${tokenUri};object=${label};type=private`, '--template', f('template'), '--outfile', pem]);
    const check = await run('openssl', ['verify', '-check_ss_sig', '-CAfile', pem, pem]);
    assert.equal(check.code, 0, `openssl verify: ${check.stdout}${check.stderr}`);
    const cert = new X509Certificate((await run('openssl', ['x509', '-in', pem])).stdout);
    const [publicKey] = await bridge.sdk.findKeys({ class: 'PUBLIC_KEY', label });
    assert.ok(publicKey !== undefined, 'the SDK finds the public key p11tool made');
    const spki = createPublicKey(await publicKey.exportPublicPem()).export({ format: 'der', type: 'spki' });
    assert.ok(cert.publicKey.export({ format: 'der', type: 'spki' }).equals(spki));
    assert.equal((await publicKey.attributes()).keyType, keyType);
  });
}
