// PyKCS11 (Debian's python3-pykcs11) on the cluster through the bridge, as a Python application
// reaches a PKCS#11 token (docs/pkcs11.md "Tested with"): test/pkcs11/python/pykcs11_use.py, run by
// Debian's python3 with p11-kit-client.so, makes an EC P-256 pair and an AES-256 key as token
// objects, signs a SHA-256 digest with CKM_ECDSA and verifies it (and refuses another digest),
// round-trips two blocks through CKM_AES_ECB, finds the pair by label, reads the private key's
// standard attributes as one list, draws random bytes and destroys the AES key. The signature is
// checked here by node:crypto against the public key the SDK exports, whose point is the one Python
// read. Skipped, with the reason, where python3-pykcs11 or p11-kit-client.so is missing — except
// under COFFER_REQUIRE_PKCS11=1, where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { P11_KIT_CLIENT, clientsMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';

/** Debian's python3, where python3-pykcs11 installs (another python3 on PATH may not have it). */
const PYTHON = '/usr/bin/python3';
const PYKCS11 = '/usr/lib/python3/dist-packages/PyKCS11/__init__.py';
const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/pkcs11/python/pykcs11_use.py');
const missing = clientsMissing([PYTHON, PYKCS11], 'python3 and python3-pykcs11');
if (missing !== undefined) console.log(`PyKCS11 tests skipped: ${missing}`);

let bridge: Bridge | undefined;

before(async () => {
  if (missing !== undefined) return;
  bridge = await startBridge('pykcs11');
});
after(async () => {
  await bridge?.close();
});

test('PyKCS11: key pair and AES key on the cluster, ECDSA sign and verify, AES-ECB, find, attributes, random, destroy; node:crypto checks the signature', { skip: missing, timeout: 300_000 }, async () => {
  const b = bridge as Bridge;
  const label = 'python-ec';
  const r = await run(PYTHON, [SCRIPT, P11_KIT_CLIENT, b.pin, label], { P11_KIT_SERVER_ADDRESS: b.address });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = new Map(r.stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)]));
  assert.equal(out.get('token'), 'pykcs11');
  assert.equal(out.get('verified'), 'True');
  assert.equal(out.get('forged'), 'False');
  assert.equal(out.get('ecb-roundtrip'), 'True');
  assert.equal(out.get('found'), '[2, 3]', 'the public and the private key, by label');
  assert.ok(Number(out.get('attributes')) >= 20, `attributes read: ${out.get('attributes')}`);
  assert.equal(out.get('random'), '32');
  assert.equal(out.get('destroyed'), '0', 'the AES key is gone');
  // The pair is the cluster's: its public key verifies Python's signature, and is the point Python read.
  const [publicKey] = await b.sdk.findKeys({ class: 'PUBLIC_KEY', label });
  assert.ok(publicKey !== undefined);
  const pem = await publicKey.exportPublicPem();
  assert.ok(nodeVerify('sha256', Buffer.from(label), { key: pem, dsaEncoding: 'ieee-p1363' }, Buffer.from(out.get('signature') ?? '', 'hex')));
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.of(4), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
  assert.equal(out.get('point'), Buffer.concat([Buffer.of(0x04, point.length), point]).toString('hex'));
  assert.equal((await b.sdk.findKeys({ label: `${label}-aes` })).length, 0);
});
