// Object record codec: a golden vector written out field by field from the layout in
// src/formats/object_record.ts, round trips, and mutation (flip every byte, truncate at every
// length, extend) — every malformed input must fail with a typed error, never a crash.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { isCofferError } from '../../src/errors.js';
import {
  BOOLEAN_ATTRIBUTE_NAMES,
  attributeBits,
  decodeObjectRecord,
  encodeObjectRecord,
  readObjectRecordLayout,
  type BooleanAttributeName,
  type ObjectRecord,
} from '../../src/formats/object_record.js';
import { KEY_MATERIAL_BYTES_MAX, LABEL_BYTES_MAX } from '../../src/formats/limits.js';
import { throwsCode } from '../helpers.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function attrs(on: readonly BooleanAttributeName[]): Record<BooleanAttributeName, boolean> {
  return Object.fromEntries(BOOLEAN_ATTRIBUTE_NAMES.map((n) => [n, on.includes(n)])) as Record<BooleanAttributeName, boolean>;
}

const MATERIAL = Uint8Array.from({ length: 32 }, (_, i) => i);

function goldenRecord(): ObjectRecord {
  return {
    handle: 42,
    class: 'SECRET_KEY',
    keyType: 'AES',
    bits: 256,
    attributes: attrs(['token', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'local', 'alwaysSensitive', 'modifiable', 'destroyable']),
    manageKeyQuorum: 0,
    useKeyQuorum: 2,
    owner: 'alice',
    sharees: ['bob'],
    label: 'k1',
    id: Uint8Array.of(1, 2),
    kcv: Uint8Array.of(0xaa, 0xbb, 0xcc),
    material: SecretBytes.copyOf(MATERIAL),
  };
}

// Version 1, written from the layout table, not from the encoder.
const GOLDEN_V1 = hex(`
  434f424a                 # magic COBJ
  0001                     # version 1
  000000000000002a         # handle 42
  00000004                 # CKO_SECRET_KEY
  0000001f                 # CKK_AES
  00                       # no curve
  00000100                 # 256 bits
  0001d01f                 # token sensitive extractable encrypt decrypt | local alwaysSensitive modifiable destroyable
  00 02                    # quorum: manage 0, use 2
  05 616c696365            # owner alice
  01 03 626f62             # one sharee: bob
  0002 6b31                # label k1
  0002 0102                # id
  03 aabbcc                # kcv
  00000020 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
`.replace(/#[^\n]*/g, ''));

function plain(r: ObjectRecord): object {
  return { ...r, material: r.material.use((m) => toHex(m)), id: toHex(r.id), kcv: toHex(r.kcv) };
}

void test('golden vector v1: encoder output is byte-exact and decodes back', () => {
  assert.equal(toHex(encodeObjectRecord(goldenRecord())), toHex(GOLDEN_V1));
  assert.deepEqual(plain(decodeObjectRecord(GOLDEN_V1)), plain(goldenRecord()));
});

void test('round trip: an EC public key with a curve, a UTF-8 label, empty id and kcv, full sharees', () => {
  const r: ObjectRecord = {
    handle: 2 ** 40 - 1,
    class: 'PUBLIC_KEY',
    keyType: 'EC',
    curve: 'P-384',
    bits: 384,
    attributes: attrs(BOOLEAN_ATTRIBUTE_NAMES.filter((_, i) => i % 2 === 0)),
    manageKeyQuorum: 8,
    useKeyQuorum: 0,
    owner: 'o',
    sharees: ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
    label: '\ufeffclé ✓ 🔑',
    id: new Uint8Array(0),
    kcv: new Uint8Array(0),
    material: SecretBytes.copyOf(new Uint8Array(91).fill(7)),
  };
  const bytes = encodeObjectRecord(r);
  const back = decodeObjectRecord(bytes);
  assert.deepEqual(plain(back), plain(r));
  assert.equal(toHex(encodeObjectRecord(back)), toHex(bytes));
});

void test('unknown version is refused with what was found and what is supported', () => {
  const v3 = GOLDEN_V1.slice();
  v3[5] = 3;
  assert.throws(
    () => decodeObjectRecord(v3),
    (e: unknown) => isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') && e.detail.version === 3 && e.detail.supported === '1,2',
  );
});

/** The call fails COFFER_FORMAT_MALFORMED naming `field`. */
function refusedAt(fn: () => unknown, field: string): void {
  assert.throws(fn, (e: unknown) => isCofferError(e, 'COFFER_FORMAT_MALFORMED') && e.detail.field === field, field);
}

// ── version 2: certificates ──────────────────────────────────────────────────────────────────

const CERT_DER = Uint8Array.from({ length: 20 }, (_, i) => 0x30 + i); // the codec stores the bytes, it does not parse them

function certificateRecord(): ObjectRecord {
  return {
    handle: 7, class: 'CERTIFICATE', keyType: 'EC', curve: 'P-256', bits: 256,
    attributes: attrs(['token', 'modifiable', 'destroyable']), manageKeyQuorum: 0, useKeyQuorum: 0,
    owner: 'alice', sharees: [], label: 'c', id: Uint8Array.of(0xc1), kcv: new Uint8Array(0), material: SecretBytes.copyOf(CERT_DER), category: 2,
  };
}

// Version 2, written from the layout table, not from the encoder.
const GOLDEN_V2 = hex(`
  434f424a                 # magic COBJ
  0002                     # version 2
  0000000000000007         # handle 7
  00000001                 # CKO_CERTIFICATE
  00000003                 # subject key CKK_EC
  01                       # P-256
  00000100                 # 256 bits
  00018001                 # token | modifiable destroyable
  00 00                    # no quorum
  05 616c696365            # owner alice
  00                       # no sharees
  0001 63                  # label c
  0001 c1                  # id
  00                       # no kcv
  00000014 303132333435363738393a3b3c3d3e3f40414243
  02                       # category: authority
`.replace(/#[^\n]*/g, ''));

void test('golden vector v2: a certificate record is byte-exact, decodes back with its category, and keys stay version 1', () => {
  assert.equal(toHex(encodeObjectRecord(certificateRecord())), toHex(GOLDEN_V2));
  const back = decodeObjectRecord(GOLDEN_V2);
  assert.deepEqual(plain(back), plain(certificateRecord()));
  assert.equal(back.category, 2);
  assert.equal(readObjectRecordLayout(GOLDEN_V2).category, 2);
  assert.equal(readObjectRecordLayout(GOLDEN_V1).category, undefined);
  assert.equal(encodeObjectRecord(goldenRecord())[5], 1);
});

void test('v2 refusals: a certificate as v1, a key as v2, a category over 3 or missing, a category on a key', () => {
  const asV1 = GOLDEN_V2.slice(0, -1);
  asV1[5] = 1;
  refusedAt(() => decodeObjectRecord(asV1), 'class');
  const keyAsV2 = Uint8Array.of(...GOLDEN_V1, 0);
  keyAsV2[5] = 2;
  refusedAt(() => decodeObjectRecord(keyAsV2), 'class');
  const category4 = GOLDEN_V2.slice();
  category4[category4.length - 1] = 4;
  refusedAt(() => decodeObjectRecord(category4), 'category');
  refusedAt(() => encodeObjectRecord({ ...certificateRecord(), category: 4 }), 'category');
  const { category: _, ...noCategory } = certificateRecord();
  refusedAt(() => encodeObjectRecord(noCategory), 'category');
  refusedAt(() => encodeObjectRecord({ ...goldenRecord(), category: 0 }), 'category');
});

void test('v2: every truncation fails as TRUNCATED, an extension as MALFORMED, every flip is refused or re-encodes exactly', () => {
  for (let n = 0; n < GOLDEN_V2.length; n++) throwsCode(() => decodeObjectRecord(GOLDEN_V2.subarray(0, n)), 'COFFER_FORMAT_TRUNCATED');
  throwsCode(() => decodeObjectRecord(Uint8Array.of(...GOLDEN_V2, 0)), 'COFFER_FORMAT_MALFORMED');
  for (let i = 0; i < GOLDEN_V2.length; i++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const m = GOLDEN_V2.slice();
      m[i] = (m[i] ?? 0) ^ mask;
      let r: ObjectRecord;
      try {
        r = decodeObjectRecord(m);
      } catch (e) {
        assert.ok(isCofferError(e) && e.code.startsWith('COFFER_FORMAT_'), `offset ${i} mask ${mask}: ${String(e)}`);
        continue;
      }
      assert.equal(toHex(encodeObjectRecord(r)), toHex(m), `offset ${i} mask ${mask}`);
    }
  }
});

void test('bad magic is refused before anything else is read', () => {
  const bad = GOLDEN_V1.slice();
  bad[0] = 0x63; // 'c' for 'C'
  throwsCode(() => decodeObjectRecord(bad), 'COFFER_FORMAT_BAD_MAGIC');
});

void test('every truncation fails as TRUNCATED; any extension fails as MALFORMED', () => {
  for (let n = 0; n < GOLDEN_V1.length; n++) throwsCode(() => decodeObjectRecord(GOLDEN_V1.subarray(0, n)), 'COFFER_FORMAT_TRUNCATED');
  throwsCode(() => decodeObjectRecord(Uint8Array.of(...GOLDEN_V1, 0)), 'COFFER_FORMAT_MALFORMED');
});

void test('every single-byte flip either fails with a typed error or decodes to a record that re-encodes to exactly those bytes', () => {
  let refused = 0;
  for (let i = 0; i < GOLDEN_V1.length; i++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const m = GOLDEN_V1.slice();
      m[i] = (m[i] ?? 0) ^ mask;
      let r: ObjectRecord;
      try {
        r = decodeObjectRecord(m);
      } catch (e) {
        assert.ok(isCofferError(e) && e.code.startsWith('COFFER_FORMAT_'), `offset ${i} mask ${mask}: ${String(e)}`);
        refused++;
        continue;
      }
      assert.equal(toHex(encodeObjectRecord(r)), toHex(m), `offset ${i} mask ${mask}`);
    }
  }
  assert.ok(refused > GOLDEN_V1.length, `most mutations of structure must be refused (${refused})`);
});

void test('lengths are checked against their limits before the bytes are read', () => {
  // label length field at offset 33 + 1 + 5 + 1 + 1 + 3 = 44: claim 0xffff with nothing after it
  const m = GOLDEN_V1.slice(0, 46);
  m[44] = 0xff;
  m[45] = 0xff;
  throwsCode(() => decodeObjectRecord(m), 'COFFER_FORMAT_LIMIT');
  const materialAt = GOLDEN_V1.length - 32 - 4;
  const big = GOLDEN_V1.slice(0, materialAt + 4);
  new DataView(big.buffer).setUint32(materialAt, KEY_MATERIAL_BYTES_MAX + 1);
  throwsCode(() => decodeObjectRecord(big), 'COFFER_FORMAT_LIMIT');
});

void test('semantic checks: quorum values, unknown attribute bits, codes, duplicate sharees, bad UTF-8', () => {
  const at = (i: number, v: number): Uint8Array => {
    const m = GOLDEN_V1.slice();
    m[i] = v;
    return m;
  };
  throwsCode(() => decodeObjectRecord(at(32, 1)), 'COFFER_FORMAT_MALFORMED'); // use quorum 1
  throwsCode(() => decodeObjectRecord(at(32, 9)), 'COFFER_FORMAT_MALFORMED'); // use quorum 9
  throwsCode(() => decodeObjectRecord(at(28, 0x03)), 'COFFER_FORMAT_MALFORMED'); // attribute bit 17
  throwsCode(() => decodeObjectRecord(at(17, 5)), 'COFFER_FORMAT_MALFORMED'); // class 5
  throwsCode(() => decodeObjectRecord(at(22, 6)), 'COFFER_FORMAT_MALFORMED'); // curve 6
  // the owner listed again as a sharee
  throwsCode(() => decodeObjectRecord(hex(toHex(GOLDEN_V1).replace('0103626f62', '0105616c696365'))), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeObjectRecord(at(46, 0xff)), 'COFFER_FORMAT_MALFORMED'); // label byte 0xff is not UTF-8
});

void test('encoder refuses what the decoder would refuse', () => {
  const g = goldenRecord();
  throwsCode(() => encodeObjectRecord({ ...g, label: 'x'.repeat(LABEL_BYTES_MAX + 1) }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeObjectRecord({ ...g, sharees: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeObjectRecord({ ...g, sharees: ['alice'] }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeObjectRecord({ ...g, owner: '' }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeObjectRecord({ ...g, useKeyQuorum: 1 }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeObjectRecord({ ...g, handle: 2 ** 53 }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeObjectRecord({ ...g, material: SecretBytes.copyOf(new Uint8Array(0)) }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeObjectRecord({ ...g, material: SecretBytes.copyOf(new Uint8Array(KEY_MATERIAL_BYTES_MAX + 1)) }), 'COFFER_FORMAT_LIMIT');
});

void test('decoded material is a copy: wiping the input leaves the record intact', () => {
  const input = GOLDEN_V1.slice();
  const r = decodeObjectRecord(input);
  input.fill(0);
  assert.equal(r.material.use((m) => toHex(m)), toHex(MATERIAL));
});

// ── the in-place reader the object index loads with ─────────────────────────────────────────

void test('readObjectRecordLayout: the golden vector\'s fields, and offsets that point at its label, id, KCV and material', () => {
  const l = readObjectRecordLayout(GOLDEN_V1);
  const g = goldenRecord();
  assert.deepEqual(
    { handle: l.handle, class: l.class, keyType: l.keyType, curve: l.curve, bits: l.bits, attributeBits: l.attributeBits, quorum: [l.manageKeyQuorum, l.useKeyQuorum], owner: l.owner, sharees: l.sharees, label: l.label },
    { handle: 42, class: 'SECRET_KEY', keyType: 'AES', curve: undefined, bits: 256, attributeBits: attributeBits(g.attributes), quorum: [0, 2], owner: 'alice', sharees: ['bob'], label: 'k1' },
  );
  const at = (from: number, length: number): string => toHex(GOLDEN_V1.subarray(from, from + length));
  assert.equal(at(l.labelAt, l.labelBytes), '6b31');
  assert.equal(at(l.idAt, l.idBytes), '0102');
  assert.equal(at(l.kcvAt, l.kcvBytes), 'aabbcc');
  assert.equal(at(l.materialAt, l.materialBytes), toHex(MATERIAL));
});

void test('readObjectRecordLayout refuses exactly what decodeObjectRecord refuses, with the same code', () => {
  const outcome = (read: () => unknown): string => {
    try {
      read();
      return 'ok';
    } catch (e) {
      assert.ok(isCofferError(e), String(e));
      return e.code;
    }
  };
  const inputs: Uint8Array[] = [Uint8Array.of(...GOLDEN_V1, 0)];
  for (let n = 0; n < GOLDEN_V1.length; n++) inputs.push(GOLDEN_V1.subarray(0, n));
  for (let i = 0; i < GOLDEN_V1.length; i++) {
    for (const mask of [0x01, 0x20, 0x80, 0xff]) {
      const m = GOLDEN_V1.slice();
      m[i] = (m[i] ?? 0) ^ mask;
      inputs.push(m);
    }
  }
  const tooBig = GOLDEN_V1.slice();
  new DataView(tooBig.buffer).setUint32(6, 0x200000); // handle 2^53: not a safe integer
  inputs.push(tooBig);
  let refused = 0;
  for (const input of inputs) {
    const expected = outcome(() => decodeObjectRecord(input));
    assert.equal(outcome(() => readObjectRecordLayout(input)), expected, toHex(input));
    if (expected !== 'ok') refused++;
  }
  assert.equal(outcome(() => readObjectRecordLayout(tooBig)), 'COFFER_FORMAT_MALFORMED');
  assert.ok(refused > GOLDEN_V1.length * 2, `the mutations must exercise refusals (${refused})`);
});

void test('decoding from a Buffer: id, KCV and material are copies, not views of the input', () => {
  const input = Buffer.from(GOLDEN_V1); // a Buffer's slice() would be a view
  const r = decodeObjectRecord(input);
  input.fill(0);
  assert.deepEqual([toHex(r.id), toHex(r.kcv), r.material.use((m) => toHex(m))], ['0102', 'aabbcc', toHex(MATERIAL)]);
});
