// Debian's pkcs11-tool (OpenSC 0.23) through p11-kit-client.so 0.24.1 on the cluster token, for what
// that client can drive of key wrapping and PINs (docs/pkcs11.md "Wrapping and derivation", "PINs"):
// `--wrap -m RSA-PKCS` of a cluster AES key under a public key OpenSSL made, unwrapped by the OpenSSL
// CLI with the private half; `--unwrap -m RSA-PKCS` refused (no PKCS#1 v1.5 decryption);
// `--change-pin` logged in and not; `--init-pin` by the SO; `--init-token` refused; `--derive` with ECDH,
// which the 0.24 client cannot carry. Each PIN change is
// checked by logging in through the SDK with the new password, and the old one refused.
// Skipped, with the reason, where pkcs11-tool, p11-kit-client.so or the OpenSSL CLI is missing —
// except under COFFER_REQUIRE_PKCS11=1, where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCofferError } from '../../src/errors.js';
import type { Cluster } from '../../src/client/index.js';
import { P11_KIT_CLIENT, PKCS11_TOOL, realClientMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';

const missing = realClientMissing();
if (missing !== undefined) console.log(`pkcs11-tool key tests skipped: ${missing}`);

let bridge: Bridge | undefined;
const f = (name: string): string => join(bridge?.dir ?? '', name);
const tool = (args: readonly string[]) => run(PKCS11_TOOL, ['--module', P11_KIT_CLIENT, ...args], { P11_KIT_SERVER_ADDRESS: bridge?.address ?? '' });

before(async () => {
  if (missing === undefined) bridge = await startBridge('p11-tool-keys');
});
after(async () => {
  await bridge?.close();
});

/** Logs in through the SDK as `name` with `password`, closing again; the CofferError code when refused. */
async function loginAs(name: string, password: string, role: 'crypto-user' | 'admin' = 'crypto-user'): Promise<string> {
  let cluster: Cluster | undefined;
  try {
    cluster = await (bridge as Bridge).connect({ username: name, password, role });
    return 'ok';
  } catch (e) {
    if (isCofferError(e)) return e.code;
    throw e;
  } finally {
    await cluster?.close();
  }
}

test('pkcs11-tool --wrap -m RSA-PKCS: the OpenSSL CLI unwraps the cluster key\'s value; --unwrap -m RSA-PKCS is CKR_MECHANISM_INVALID', { skip: missing }, async () => {
  const b = bridge as Bridge;
  assert.equal((await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f('rsa.pem')])).code, 0);
  assert.equal((await run('openssl', ['pkey', '-in', f('rsa.pem'), '-pubout', '-out', f('rsa.pub.pem')])).code, 0);
  await b.sdk.importPublicKeyPem(readFileSync(f('rsa.pub.pem'), 'utf8'), { id: Uint8Array.of(0x77), label: 'openssl-wrapper', attributes: { wrap: true } });
  const aes = await b.sdk.generateKey({ type: 'AES', bits: 256, id: Uint8Array.of(0x55), label: 'to-wrap', extractable: true, attributes: { sensitive: false } });
  const wrap = await tool(['--login', '--pin', b.pin, '--wrap', '-m', 'RSA-PKCS', '--id', '77', '--application-id', '55', '--output-file', f('wrapped.bin')]);
  assert.equal(wrap.code, 0, wrap.stderr);
  assert.match(wrap.stdout, /Key wrapped/);
  assert.equal(readFileSync(f('wrapped.bin')).length, 256);
  const unwrapped = await run('openssl', ['pkeyutl', '-decrypt', '-inkey', f('rsa.pem'), '-in', f('wrapped.bin'), '-out', f('unwrapped.bin')]);
  assert.equal(unwrapped.code, 0, unwrapped.stderr);
  assert.deepEqual(Uint8Array.from(readFileSync(f('unwrapped.bin'))), Uint8Array.from(await aes.exportPlaintext()));

  // pkcs11-tool 0.23 sends OAEP without its CK_RSA_PKCS_OAEP_PARAMS. p11-kit 0.24's client cannot encode
  // that (rpc-message.c p11_rpc_buffer_add_rsa_pkcs_oaep_mechanism_value fails) and answers
  // CKR_HOST_MEMORY without sending the call; from protocol 1 the client sends "no parameter", and
  // the bridge answers CKR_MECHANISM_PARAM_INVALID (OAEP needs its parameter, §2.1.8).
  const oaep = await tool(['--login', '--pin', b.pin, '--wrap', '-m', 'RSA-PKCS-OAEP', '--id', '77', '--application-id', '55', '--output-file', f('oaep.bin')]);
  assert.notEqual(oaep.code, 0);
  assert.match(oaep.stderr + oaep.stdout, b.lastVersion() === 0 ? /C_WrapKey.*CKR_HOST_MEMORY/ : /C_WrapKey.*CKR_MECHANISM_PARAM_INVALID/);
  // The cluster's own RSA pair may unwrap only with OAEP, which pkcs11-tool 0.23 sends without its parameter.
  await b.sdk.generateKeyPair({ keyType: 'RSA', bits: 2048, id: Uint8Array.of(0x78), label: 'cluster-unwrapper', privateAttributes: { unwrap: true }, publicAttributes: { wrap: true } });
  writeFileSync(f('junk.bin'), Buffer.alloc(256, 1));
  const refused = await tool(['--login', '--pin', b.pin, '--unwrap', '-m', 'RSA-PKCS', '--id', '78', '--key-type', 'AES:32', '--input-file', f('junk.bin')]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr + refused.stdout, /C_UnwrapKey.*CKR_MECHANISM_INVALID/);
});

test('pkcs11-tool --change-pin (not logged in, then logged in), --init-pin as the SO, --init-token refused', { skip: missing }, async () => {
  const b = bridge as Bridge;
  const [soName = '', soPassword = ''] = b.soPin.split(/:(.*)/s);
  const admin = await b.connect({ username: soName, password: soPassword, role: 'admin' });
  try {
    await admin.users.create('pin-user', 'first-password-1', 'crypto-user');
  } finally {
    await admin.close();
  }
  // Not logged in: the old PIN names the user (§5.6: the CKU_USER PIN of a session not logged in).
  // pkcs11-tool logs in whenever --pin is given; --so-pin gives --change-pin its old PIN without a login.
  const change = await tool(['--change-pin', '--so-pin', 'pin-user:first-password-1', '--new-pin', 'second-password-2']);
  assert.equal(change.code, 0, change.stderr);
  assert.match(change.stdout, /PIN successfully changed/);
  assert.equal(await loginAs('pin-user', 'first-password-1'), 'COFFER_AUTH_FAILED');
  assert.equal(await loginAs('pin-user', 'second-password-2'), 'ok');
  // Logged in: the logged-in user's own password. A wrong old password or a new one too short is refused.
  const loggedIn = await tool(['--login', '--pin', 'pin-user:second-password-2', '--change-pin', '--new-pin', 'third-password-3']);
  assert.equal(loggedIn.code, 0, loggedIn.stderr);
  assert.equal(await loginAs('pin-user', 'third-password-3'), 'ok');
  const wrongOld = await tool(['--change-pin', '--so-pin', 'pin-user:not-the-password', '--new-pin', 'fourth-password-4']);
  assert.match(wrongOld.stderr + wrongOld.stdout, /C_SetPIN.*CKR_PIN_INCORRECT/);
  const short = await tool(['--change-pin', '--so-pin', 'pin-user:third-password-3', '--new-pin', 'short']);
  assert.match(short.stderr + short.stdout, /C_SetPIN.*CKR_PIN_LEN_RANGE/);
  assert.equal(await loginAs('pin-user', 'third-password-3'), 'ok');

  // The SO sets a crypto user's password; the PIN is username:password.
  const init = await tool(['--login', '--login-type', 'so', '--so-pin', b.soPin, '--init-pin', '--new-pin', 'pin-user:set-by-the-so-5']);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /User PIN successfully initialized/);
  assert.equal(await loginAs('pin-user', 'set-by-the-so-5'), 'ok');
  assert.equal(await loginAs('pin-user', 'third-password-3'), 'COFFER_AUTH_FAILED');
  const notUser = await tool(['--login', '--login-type', 'so', '--so-pin', b.soPin, '--init-pin', '--new-pin', `${soName}:another-password-6`]);
  assert.match(notUser.stderr + notUser.stdout, /C_InitPIN.*CKR_PIN_INVALID/);
  assert.equal(await loginAs(soName, soPassword, 'admin'), 'ok');
  // A crypto user is not the SO.
  const asUser = await tool(['--login', '--pin', 'pin-user:set-by-the-so-5', '--login-type', 'user', '--init-pin', '--new-pin', 'pin-user:by-a-user-7']);
  assert.match(asUser.stderr + asUser.stdout, /C_InitPIN.*CKR_USER_NOT_LOGGED_IN/);

  const token = await tool(['--init-token', '--label', 'anything', '--so-pin', b.soPin]);
  assert.notEqual(token.code, 0);
  assert.match(token.stderr + token.stdout, /C_InitToken.*CKR_FUNCTION_NOT_SUPPORTED/);
  // No PIN reaches the bridge's output: the processes' outputs above never echo a password back.
  for (const r of [change, loggedIn, init, token]) assert.doesNotMatch(r.stdout + r.stderr, /password-|set-by-the-so/);
});

test('pkcs11-tool --derive -m ECDH1-DERIVE: p11-kit 0.24\'s client cannot carry the parameter and refuses it itself; later clients reach the token, which refuses pkcs11-tool\'s template', { skip: missing }, async () => {
  const b = bridge as Bridge;
  await b.sdk.generateKeyPair({ curve: 'P-256', id: Uint8Array.of(0x0e), label: 'ecdh', privateAttributes: { derive: true, sign: false } });
  assert.equal((await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('peer.pem')])).code, 0);
  assert.equal((await run('openssl', ['pkey', '-in', f('peer.pem'), '-pubout', '-outform', 'DER', '-out', f('peer.der')])).code, 0);
  const derive = await tool(['--login', '--pin', b.pin, '--derive', '-m', 'ECDH1-DERIVE', '--id', '0e', '--input-file', f('peer.der')]);
  assert.notEqual(derive.code, 0);
  // CK_ECDH1_DERIVE_PARAMS has no layout in 0.24 (docs/pkcs11.md section 4): protocol 1 and 2 clients
  // carry it, and then the token judges pkcs11-tool 0.23's template: a generic secret that encrypts,
  // decrypts, wraps and unwraps, which the HSM's generic secrets never do (CKR_TEMPLATE_INCONSISTENT).
  assert.match(derive.stderr + derive.stdout, b.lastVersion() === 0 ? /C_DeriveKey.*CKR_MECHANISM_INVALID/ : /C_DeriveKey.*CKR_TEMPLATE_INCONSISTENT/);
});
