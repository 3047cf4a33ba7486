// AES-CMAC against RFC 4493 §4 (AES-128) and SP 800-38B Appendix D.3 (AES-256); altered, truncated
// and extended tags, other messages and wrong key sizes must fail.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSecretKey, generateKeyPairSync } from 'node:crypto';
import { aesCmac, aesCmacVerify, CMAC_BYTES } from '../../src/crypto/cmac.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError } from '../../src/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface CmacCase {
  readonly source: string;
  readonly key: string;
  readonly msg: string;
  readonly mac: string;
}
const CASES = (JSON.parse(readFileSync(resolve(ROOT, 'test/vectors/mechanisms/aes_cmac.json'), 'utf8')) as { cases: CmacCase[] }).cases;

void test('the vector file holds the 4 RFC 4493 and 4 SP 800-38B D.3 examples', () => {
  assert.equal(CASES.length, 8);
  assert.equal(CASES.filter((c) => c.key.length === 64).length, 4);
});

for (const c of CASES) {
  void test(`CMAC ${c.source}`, () => {
    assert.equal(toHex(aesCmac(SecretBytes.copyOf(hex(c.key)), hex(c.msg))), c.mac);
    // Same answer with the key as a KeyObject (how the device holds it).
    const key = createSecretKey(hex(c.key));
    assert.equal(toHex(aesCmac(key, hex(c.msg))), c.mac);
    assert.equal(aesCmacVerify(key, hex(c.msg), hex(c.mac)), true);
  });

  void test(`CMAC ${c.source}: altered, truncated or extended tags and other messages fail`, () => {
    const key = createSecretKey(hex(c.key));
    const mac = hex(c.mac);
    for (let i = 0; i < CMAC_BYTES; i++) {
      const bad = mac.slice();
      bad[i] = (bad[i] ?? 0) ^ 0x01;
      assert.equal(aesCmacVerify(key, hex(c.msg), bad), false, `flipped byte ${i}`);
    }
    assert.equal(aesCmacVerify(key, hex(c.msg), mac.subarray(0, 8)), false, 'truncated');
    assert.equal(aesCmacVerify(key, hex(c.msg), new Uint8Array([...mac, 0])), false, 'extended');
    assert.equal(aesCmacVerify(key, new Uint8Array([...hex(c.msg), 0]), mac), false, 'longer message');
  });
}

void test('CMAC of a message one byte short of a block, and of a block plus one, differ from the block', () => {
  // Exercises both subkeys: K1 for complete last blocks, K2 (with 10* padding) otherwise.
  const key = SecretBytes.copyOf(hex(CASES[0]?.key ?? ''));
  const block = hex('6bc1bee22e409f96e93d7e117393172a');
  const macs = new Set([block.subarray(0, 15), block, new Uint8Array([...block, 0x80])].map((m) => toHex(aesCmac(key, m))));
  assert.equal(macs.size, 3);
});

void test('CMAC refuses keys that are not AES-128/192/256, and plain bytes', () => {
  for (const len of [0, 8, 15, 17, 33]) {
    assert.throws(() => aesCmac(SecretBytes.copyOf(new Uint8Array(len)), new Uint8Array(1)), (e) => isCofferError(e, 'COFFER_CRYPTO_KEY_SIZE'));
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.throws(() => aesCmac(privateKey, new Uint8Array(1)), (e) => isCofferError(e, 'COFFER_CRYPTO_KEY_SIZE'));
  // @ts-expect-error -- a plain Uint8Array is not a SecretKeyInput (the build fails if it ever is)
  assert.throws(() => aesCmac(new Uint8Array(16), new Uint8Array(1)), AssertionFailure);
});
