// Sealed record envelope (src/formats/sealed_record.ts): golden vector, round trips, and every
// way of damaging an envelope: each byte flipped, every truncation, extension, wrong binding,
// wrong key, unknown version, lengths over their limits (checked before anything is read).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { SEALED_NAMESPACE_BYTES_MAX, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX } from '../../src/formats/limits.js';
import {
  decodeHeader,
  openRecord,
  RecordKind,
  sealRecord,
  SEALED_RECORD_HEADER_BYTES,
  SEALED_RECORD_OVERHEAD_BYTES,
  type RecordBinding,
} from '../../src/formats/sealed_record.js';

const seq = (n: number, start: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const KEY = createSecretKey(seq(32, 0x00));
const OTHER_KEY = createSecretKey(seq(32, 0x01));
const BINDING: RecordBinding = { kind: RecordKind.record, storeId: seq(16, 0xa0), ns: 'objects', id: '0000000000000001' };
const NONCE = seq(12, 0xc0);
const PLAINTEXT = utf8('coffer sealed record golden vector');

// Key 00..1f, store id a0..af, nonce c0..cb, ns "objects", id "0000000000000001", plaintext above.
// Cross-checked when committed with an independent implementation (pyca/cryptography AESGCM, the
// header and AAD assembled by hand from the layout in the module header).
const GOLDEN_V1 =
  '43465352' + '01' + '01' + '01' + 'c0c1c2c3c4c5c6c7c8c9cacb' + '00000022' +
  '63274101120ab62dfdb891c7568c9a332f1c915b1c8570d64ea6252a41181cc2d3e4' + 'c365e39b7998fe3d57be861e24666db0';

function refusedWith(fn: () => unknown, codes: readonly ErrorCode[]): ErrorCode {
  try {
    fn();
  } catch (e) {
    assert.ok(isCofferError(e), `expected a CofferError, got ${String(e)}`);
    assert.ok(codes.includes(e.code), `unexpected ${e.code}`);
    return e.code;
  }
  assert.fail('accepted a damaged envelope');
}

void test('golden vector v1: fixed key, nonce, binding and plaintext give these exact bytes', () => {
  const sealed = sealRecord(KEY, BINDING, PLAINTEXT, NONCE);
  assert.equal(hex(sealed), GOLDEN_V1);
  assert.deepEqual(openRecord(KEY, BINDING, Buffer.from(GOLDEN_V1, 'hex')), PLAINTEXT);
});

void test('golden vector v1 agrees with the documented layout, computed independently', () => {
  const header = Buffer.concat([Buffer.from('CFSR'), Buffer.from([1, 1, 1]), NONCE, Buffer.from([0, 0, 0, PLAINTEXT.length])]);
  const aad = Buffer.concat([header, BINDING.storeId, Buffer.from([0, 7]), Buffer.from('objects'), Buffer.from([0, 16]), Buffer.from('0000000000000001')]);
  const c = createCipheriv('aes-256-gcm', KEY, NONCE, { authTagLength: 16 });
  c.setAAD(aad);
  const body = Buffer.concat([c.update(PLAINTEXT), c.final(), c.getAuthTag()]);
  assert.equal(Buffer.concat([header, body]).toString('hex'), GOLDEN_V1);
});

void test('round trip at several sizes, up to SEALED_RECORD_BYTES_MAX', () => {
  for (const n of [0, 1, 15, 16, 17, 300, 4096, SEALED_RECORD_BYTES_MAX]) {
    const pt = randomBytes(n);
    const sealed = sealRecord(KEY, BINDING, pt, randomBytes(12));
    assert.equal(sealed.length, SEALED_RECORD_OVERHEAD_BYTES + n);
    assert.deepEqual(Buffer.from(openRecord(KEY, BINDING, sealed)), pt);
    assert.equal(decodeHeader(sealed).ciphertextBytes, n);
  }
});

void test('round trip with unicode and empty namespaces and ids', () => {
  for (const [ns, id] of [['', ''], ['ns', 'é'], ['名前', '😀 key'], ['a'.repeat(SEALED_NAMESPACE_BYTES_MAX), 'b'.repeat(SEALED_RECORD_ID_BYTES_MAX)]] as const) {
    const b: RecordBinding = { ...BINDING, ns, id };
    assert.deepEqual(openRecord(KEY, b, sealRecord(KEY, b, PLAINTEXT, randomBytes(12))), PLAINTEXT);
  }
});

void test('every byte flipped (xor 0x01 and xor 0xff) is refused', () => {
  const sealed = sealRecord(KEY, BINDING, PLAINTEXT, NONCE);
  const seen = new Set<ErrorCode>();
  for (let i = 0; i < sealed.length; i++) {
    for (const mask of [0x01, 0xff]) {
      const bad = sealed.slice();
      bad[i] = (bad[i] ?? 0) ^ mask;
      seen.add(
        refusedWith(
          () => openRecord(KEY, BINDING, bad),
          ['COFFER_FORMAT_BAD_MAGIC', 'COFFER_FORMAT_UNKNOWN_VERSION', 'COFFER_FORMAT_MALFORMED', 'COFFER_FORMAT_LIMIT', 'COFFER_FORMAT_TRUNCATED', 'COFFER_CRYPTO_DECRYPT_FAILED'],
        ),
      );
    }
  }
  // Each region is caught by its own check: magic, version, suite/kind, length, and the tag.
  for (const code of ['COFFER_FORMAT_BAD_MAGIC', 'COFFER_FORMAT_UNKNOWN_VERSION', 'COFFER_FORMAT_MALFORMED', 'COFFER_FORMAT_LIMIT', 'COFFER_FORMAT_TRUNCATED', 'COFFER_CRYPTO_DECRYPT_FAILED'] as const) {
    assert.ok(seen.has(code), code);
  }
});

void test('every truncation and any extension is refused', () => {
  const sealed = sealRecord(KEY, BINDING, PLAINTEXT, NONCE);
  for (let n = 0; n < sealed.length; n++) {
    refusedWith(() => openRecord(KEY, BINDING, sealed.subarray(0, n)), ['COFFER_FORMAT_TRUNCATED']);
  }
  for (const extra of [[0], [1, 2, 3]]) {
    const longer = Uint8Array.from([...sealed, ...extra]);
    refusedWith(() => openRecord(KEY, BINDING, longer), ['COFFER_FORMAT_MALFORMED']);
  }
});

void test('another binding, kind or key is refused: a record cannot move', () => {
  const sealed = sealRecord(KEY, BINDING, PLAINTEXT, NONCE);
  const others: RecordBinding[] = [
    { ...BINDING, ns: 'users' },
    { ...BINDING, id: '0000000000000002' },
    { ...BINDING, storeId: seq(16, 0xa1) },
    { ...BINDING, ns: 'objects0', id: '000000000000001' }, // same concatenation, other split
  ];
  for (const b of others) refusedWith(() => openRecord(KEY, b, sealed), ['COFFER_CRYPTO_DECRYPT_FAILED']);
  refusedWith(() => openRecord(KEY, { ...BINDING, kind: RecordKind.keyCheck }, sealed), ['COFFER_FORMAT_MALFORMED']);
  refusedWith(() => openRecord(OTHER_KEY, BINDING, sealed), ['COFFER_CRYPTO_DECRYPT_FAILED']);
});

void test('an unknown version is refused with the version found and the one supported', () => {
  const sealed = sealRecord(KEY, BINDING, PLAINTEXT, NONCE);
  sealed[4] = 2;
  try {
    openRecord(KEY, BINDING, sealed);
    assert.fail('accepted version 2');
  } catch (e) {
    assert.ok(isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION'));
    assert.equal(e.detail['version'], 2);
    assert.equal(e.detail['supported'], '1');
  }
});

void test('the ciphertext length is checked against its limit before the body is read', () => {
  const header = sealRecord(KEY, BINDING, PLAINTEXT, NONCE).slice(0, SEALED_RECORD_HEADER_BYTES);
  new DataView(header.buffer).setUint32(19, SEALED_RECORD_BYTES_MAX + 1);
  refusedWith(() => decodeHeader(header), ['COFFER_FORMAT_LIMIT']);
  new DataView(header.buffer).setUint32(19, 0xffffffff);
  refusedWith(() => openRecord(KEY, BINDING, header), ['COFFER_FORMAT_LIMIT']);
});

void test('sealing refuses oversized plaintext, namespaces and ids, and ill-formed Unicode', () => {
  const nonce = randomBytes(12);
  refusedWith(() => sealRecord(KEY, BINDING, new Uint8Array(SEALED_RECORD_BYTES_MAX + 1), nonce), ['COFFER_FORMAT_LIMIT']);
  refusedWith(() => sealRecord(KEY, { ...BINDING, ns: 'n'.repeat(SEALED_NAMESPACE_BYTES_MAX + 1) }, PLAINTEXT, nonce), ['COFFER_FORMAT_LIMIT']);
  refusedWith(() => sealRecord(KEY, { ...BINDING, id: 'é'.repeat(SEALED_RECORD_ID_BYTES_MAX / 2 + 1) }, PLAINTEXT, nonce), ['COFFER_FORMAT_LIMIT']);
  refusedWith(() => sealRecord(KEY, { ...BINDING, id: 'a\uD800b' }, PLAINTEXT, nonce), ['COFFER_FORMAT_MALFORMED']);
});

void test('fresh nonces give unrelated envelopes for the same record', () => {
  const a = sealRecord(KEY, BINDING, PLAINTEXT, randomBytes(12));
  const b = sealRecord(KEY, BINDING, PLAINTEXT, randomBytes(12));
  assert.notEqual(hex(a.subarray(SEALED_RECORD_HEADER_BYTES)), hex(b.subarray(SEALED_RECORD_HEADER_BYTES)));
});
