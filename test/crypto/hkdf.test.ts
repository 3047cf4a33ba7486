// HKDF-SHA-256 against RFC 5869 Appendix A.1–A.3 (PRK and OKM), one-shot and step by step.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSecretKey } from 'node:crypto';
import { hkdfSha256, hkdfExtractSha256, hkdfExpandSha256, HKDF_SHA256_OUTPUT_BYTES_MAX } from '../../src/crypto/hkdf.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError } from '../../src/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface Case {
  readonly count: number;
  readonly f: ReadonlyMap<string, string>;
}

function parse(): Case[] {
  const out: Case[] = [];
  let cur: Map<string, string> | undefined;
  for (const raw of readFileSync(resolve(ROOT, 'test/vectors/hkdf-rfc5869/rfc-5869-HKDF-SHA256.txt'), 'utf8').split(/\r?\n/)) {
    const m = /^(\w+)\s*=\s*(\S*)$/.exec(raw.trim());
    if (m === null) continue;
    if (m[1] === 'COUNT') {
      cur = new Map();
      out.push({ count: Number(m[2]), f: cur });
    } else cur?.set(m[1] ?? '', m[2] ?? '');
  }
  return out;
}

function get(c: Case, k: string): string {
  const v = c.f.get(k);
  assert.ok(v !== undefined, `case ${c.count} has ${k}`);
  return v;
}

const cases = parse();

void test('RFC 5869 A.1–A.3: PRK by extract, OKM one-shot and by expand', () => {
  assert.equal(cases.length, 3);
  for (const c of cases) {
    assert.equal(get(c, 'Hash'), 'SHA-256');
    const ikm = SecretBytes.copyOf(hex(get(c, 'IKM')));
    const salt = hex(get(c, 'salt'));
    const info = hex(get(c, 'info'));
    const length = Number(get(c, 'L'));
    const prk = hkdfExtractSha256(salt, ikm);
    assert.equal(prk.use(toHex), get(c, 'PRK'), `A.${c.count} PRK`);
    assert.equal(hkdfSha256(ikm, salt, info, length).use(toHex), get(c, 'OKM'), `A.${c.count} OKM`);
    assert.equal(hkdfExpandSha256(prk, info, length).use(toHex), get(c, 'OKM'), `A.${c.count} OKM by expand`);
  }
});

void test('a corrupted input or expected value fails', () => {
  const c = cases[0];
  assert.ok(c !== undefined);
  const ikm = hex(get(c, 'IKM'));
  const okm = get(c, 'OKM');
  ikm[0] = (ikm[0] ?? 0) ^ 1;
  assert.notEqual(hkdfSha256(SecretBytes.copyOf(ikm), hex(get(c, 'salt')), hex(get(c, 'info')), 42).use(toHex), okm);
  const info = hex(get(c, 'info'));
  info[9] = (info[9] ?? 0) ^ 1;
  assert.notEqual(hkdfSha256(SecretBytes.copyOf(hex(get(c, 'IKM'))), hex(get(c, 'salt')), info, 42).use(toHex), okm);
});

void test('key forms agree, plain bytes are refused; lengths outside 1..255·32 are refused', () => {
  const c = cases[1];
  assert.ok(c !== undefined);
  const raw = hex(get(c, 'IKM'));
  const args = [hex(get(c, 'salt')), hex(get(c, 'info')), 82] as const;
  for (const form of [createSecretKey(raw), SecretBytes.copyOf(raw)]) {
    assert.equal(hkdfSha256(form, ...args).use(toHex), get(c, 'OKM'));
    assert.equal(hkdfExtractSha256(args[0], form).use(toHex), get(c, 'PRK'));
  }
  // @ts-expect-error -- a plain Uint8Array is not a SecretKeyInput (the build fails if it ever is)
  assert.throws(() => hkdfSha256(raw, ...args), AssertionFailure);
  // @ts-expect-error -- nor an IKM for extract
  assert.throws(() => hkdfExtractSha256(args[0], raw), AssertionFailure);
  const ikm = SecretBytes.copyOf(raw);
  assert.equal(hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), HKDF_SHA256_OUTPUT_BYTES_MAX).length, 8160);
  assert.equal(hkdfExpandSha256(ikm, new Uint8Array(0), HKDF_SHA256_OUTPUT_BYTES_MAX).length, 8160);
  for (const n of [0, -1, 8161, 2.5]) {
    assert.throws(() => hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), n), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_INPUT_LENGTH'));
    assert.throws(() => hkdfExpandSha256(ikm, new Uint8Array(0), n), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_INPUT_LENGTH'));
  }
});
