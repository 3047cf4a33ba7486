// Firmware digest v1 and manifest v1 (src/hsm/identity/firmware.ts). The digest known answers were computed
// with an independent Python implementation of the encoding in the module header (hashlib, struct).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError } from '../../../src/errors.js';
import {
  computeFirmwareDigest, defaultFirmwareRoot, encodeFirmwareManifest, parseFirmwareManifest, signFirmwareManifest, verifyFirmware,
  type FirmwareManifest,
} from '../../../src/hsm/identity/firmware.js';

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-fw-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

const SAMPLE = { 'a.js': 'console.log(1);\n', 'lib/b.js': 'export {};\n', 'Z.js': 'z', 'é.js': 'é', 'lib/c.d.ts': 'ignored', 'lib/b.js.map': 'ignored', 'README.md': 'ignored' };
const SAMPLE_DIGEST = '704e6bad01b3594d392a4b6d43934e358663a7a1ed59ebd01aff36d4e19a2d0e';
const EMPTY_DIGEST = '9e127a82c0da35f6931104cf7bbf690756c7a8b95020497e0ca78a5897dd5941';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

void test('digest v1 known answers: .js files only, sorted by UTF-8 path, length-prefixed', (t) => {
  const dir = tree(SAMPLE);
  const empty = tree({ 'only.d.ts': 'x' });
  t.after(() => { rmSync(dir, { recursive: true }); rmSync(empty, { recursive: true }); });
  assert.equal(hex(computeFirmwareDigest(dir)), SAMPLE_DIGEST);
  assert.equal(hex(computeFirmwareDigest(empty)), EMPTY_DIGEST);
});

void test('digest changes with any content, path or file set change, and not with non-code files', (t) => {
  const variants: Array<Record<string, string>> = [
    { ...SAMPLE, 'a.js': 'console.log(2);\n' },
    { ...SAMPLE, 'lib/b.js': 'export {}; ' },
    { ...SAMPLE, 'new.js': '' },
    // Moving bytes between a path and its content must not collide (length prefixes).
    { ...Object.fromEntries(Object.entries(SAMPLE).filter(([k]) => k !== 'Z.js')), 'Zz.js': '' },
  ];
  const dirs = variants.map(tree);
  const same = tree({ ...SAMPLE, 'lib/other.d.ts': 'x', 'x.json': '{}' });
  t.after(() => { for (const d of [...dirs, same]) rmSync(d, { recursive: true }); });
  for (const d of dirs) assert.notEqual(hex(computeFirmwareDigest(d)), SAMPLE_DIGEST);
  assert.equal(hex(computeFirmwareDigest(same)), SAMPLE_DIGEST);
});

void test('a symbolic link in the code tree is refused', (t) => {
  const dir = tree(SAMPLE);
  t.after(() => rmSync(dir, { recursive: true }));
  symlinkSync(join(dir, 'a.js'), join(dir, 'link.js'));
  assert.throws(() => computeFirmwareDigest(dir), (e) => isCofferError(e, 'COFFER_FIRMWARE_UNVERIFIED'));
});

void test('the default root is the built dist/src tree and hashes', () => {
  assert.match(defaultFirmwareRoot(), /dist[\\/]src$/);
  assert.equal(computeFirmwareDigest().length, 32);
});

const key = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const spki = new Uint8Array(key.publicKey.export({ format: 'der', type: 'spki' }));
const digest = new Uint8Array(Buffer.from(SAMPLE_DIGEST, 'hex'));
const manifest = signFirmwareManifest(key.privateKey, { product: 'coffer', version: '1.2.3', digest });

void test('a signed manifest verifies and round-trips through JSON', () => {
  assert.deepEqual(verifyFirmware(manifest, spki, digest), { verified: true });
  const again = parseFirmwareManifest(encodeFirmwareManifest(manifest));
  assert.deepEqual(again, manifest);
  assert.equal(Buffer.from(manifest.signature, 'base64').length, 96);
});

void test('a manifest that does not match the code, the key or itself is not verified, with a reason', () => {
  const other = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const otherSpki = new Uint8Array(other.publicKey.export({ format: 'der', type: 'spki' }));
  const flipped = digest.slice();
  flipped[0] = (flipped[0] ?? 0) ^ 1;
  const sig = Buffer.from(manifest.signature, 'base64');
  sig[10] = (sig[10] ?? 0) ^ 1;
  const cases: Array<[FirmwareManifest, Uint8Array, Uint8Array, string]> = [
    [manifest, spki, flipped, 'DIGEST_MISMATCH'],
    [manifest, otherSpki, digest, 'BAD_SIGNATURE'],
    [{ ...manifest, version: '1.2.4' }, spki, digest, 'BAD_SIGNATURE'],
    [{ ...manifest, product: 'coffee' }, spki, digest, 'BAD_SIGNATURE'],
    [{ ...manifest, digest: hex(flipped) }, spki, flipped, 'BAD_SIGNATURE'],
    [{ ...manifest, digest: manifest.digest.toUpperCase() }, spki, digest, 'BAD_SIGNATURE'],
    [{ ...manifest, signature: sig.toString('base64') }, spki, digest, 'BAD_SIGNATURE'],
    [{ ...manifest, signature: '' }, spki, digest, 'BAD_SIGNATURE'],
    [{ ...manifest, algorithm: 'ECDSA-P256-SHA256' }, spki, digest, 'UNKNOWN_ALGORITHM'],
    [{ ...manifest, formatVersion: 2 }, spki, digest, 'UNKNOWN_FORMAT_VERSION'],
  ];
  for (const [m, k, d, reason] of cases) assert.deepEqual(verifyFirmware(m, k, d), { verified: false, reason });
});

void test('manifest parsing refuses malformed JSON, unknown versions and oversize input', () => {
  const code = (text: string): string | undefined => {
    try {
      parseFirmwareManifest(text);
      return undefined;
    } catch (e) {
      return isCofferError(e) ? e.code : 'other';
    }
  };
  assert.equal(code('{'), 'COFFER_FORMAT_MALFORMED');
  assert.equal(code('null'), 'COFFER_FORMAT_MALFORMED');
  assert.equal(code(JSON.stringify({ ...manifest, formatVersion: 2 })), 'COFFER_FORMAT_UNKNOWN_VERSION');
  assert.equal(code(JSON.stringify({ ...manifest, digest: 5 })), 'COFFER_FORMAT_MALFORMED');
  assert.equal(code(' '.repeat(70_000)), 'COFFER_FORMAT_LIMIT');
});

void test('signing refuses a digest of the wrong length and empty names', () => {
  assert.throws(() => signFirmwareManifest(key.privateKey, { product: 'coffer', version: '1', digest: new Uint8Array(31) }), (e) => isCofferError(e, 'COFFER_CRYPTO_INPUT_LENGTH'));
  assert.throws(() => signFirmwareManifest(key.privateKey, { product: '', version: '1', digest }), (e) => isCofferError(e, 'COFFER_FORMAT_MALFORMED'));
});
