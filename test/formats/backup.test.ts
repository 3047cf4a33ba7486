// Backup format v1 codec (src/formats/backup.ts against docs/backup-format.md): header layout and
// round trip, every header byte mutated, truncation, limits checked before reads, unknown versions
// and suites, the record framing at every chunk boundary, count and order checks, the trailer and
// the signature input, and verifyBackup on blobs assembled from the pieces. (The PBK derivation is
// the device's: test/hsm/backup/pbk.test.ts; the chain rule's refusals: test/formats/device_chain.test.ts.)

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createVerify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { sealedStreamLength } from '../../src/crypto/index.js';
import { DeviceIdentity } from '../../src/hsm/identity/identity.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { DeviceState } from '../../src/hsm/state/device_state.js';
import { createManufacturer, createOperator, issueDeviceCertificate, issueOperatorCertificate } from '../../src/factory/ceremony.js';
import { derOf, p384PublicKey, pemOf } from '../../src/formats/x509.js';
import {
  BACKUP_HEADER_BYTES_MAX, BACKUP_READ_CHUNK_BYTES, BACKUP_SIGNATURE_CONTEXT, BACKUP_TRAILER_BYTES, BackupRecordReader, BackupSignatureVerifier,
  backupRecordBytes, beginSignedMessage, bodyBytesFor, bufferSource, decodeBackupHeader, decodeBackupTrailer, encodeBackupHeader, encodeBackupRecord,
  encodeBackupTrailer, peekBackupHeaderLength, signedMessagePrefix, verifyBackup, verifyBackupSignature, type BackupHeaderFields, type BackupRecord,
  type BackupSource,
} from '../../src/formats/backup.js';
import { fileSource } from '../../src/hsm/backup/file_source.js';
import { SAMPLE_RECORDS, assembleBackup, concat, createFixture, openBlob, type BackupFixture } from './backup_fixture.js';

let fx: BackupFixture;
let fields: BackupHeaderFields;
before(async () => {
  fx = await createFixture();
  fields = assembleBackup(fx).fields;
});

function throwsCode(fn: () => unknown, code: ErrorCode, detail?: Record<string, unknown>): void {
  assert.throws(fn, (e) => {
    assert.ok(isCofferError(e, code), `expected ${code}, got ${String(e)}`);
    for (const [k, v] of Object.entries(detail ?? {})) assert.equal(e.detail[k], v, k);
    return true;
  });
}

const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at);
function patched(b: Uint8Array, at: number, write: (v: DataView) => void): Uint8Array {
  const c = b.slice();
  write(new DataView(c.buffer, at));
  return c;
}
/** Offset of the first header string (backup id), after the 40-byte wrapped BEK. */
const STRINGS_AT = 77 + 40;

// ── header ──────────────────────────────────────────────────────────────────────────────────

test('header: the fixed fields sit at the offsets of the spec', () => {
  const h = encodeBackupHeader(fields);
  const v = new DataView(h.buffer);
  assert.deepEqual([...h.subarray(0, 4)], [0x43, 0x46, 0x42, 0x4b]);
  assert.equal(v.getUint16(4), 1);
  assert.equal(v.getUint16(6), 1);
  assert.equal(v.getUint32(8), h.length);
  assert.equal(h[12], 0x02);
  assert.equal(v.getBigUint64(13), 1_750_000_000_123n);
  assert.equal(v.getBigUint64(21), 42n);
  assert.deepEqual(h.subarray(29, 37), fields.mkbkId);
  assert.deepEqual(h.subarray(37, 45), fields.akbkId);
  assert.deepEqual([v.getUint32(45), v.getUint32(49), v.getUint32(53)], [6, 2, 2]);
  assert.equal(v.getBigUint64(57), fields.bodyBytes);
  assert.equal(v.getUint32(65), 64);
  assert.deepEqual([...h.subarray(69, 76)], [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(h[76], 40);
  assert.deepEqual(h.subarray(77, 117), fields.wrappedBek);
  let at = STRINGS_AT;
  for (const s of [fields.backupId, fields.clusterId, fields.sourceHsmId, fields.firmwareVersion]) {
    assert.equal(v.getUint16(at), s.length);
    assert.equal(Buffer.from(h.subarray(at + 2, at + 2 + s.length)).toString('utf8'), s);
    at += 2 + s.length;
  }
  assert.equal(h[at++], 4);
  for (const der of [fx.deviceCert, derOf(fx.manufacturer.rootCertificate), fx.operatorCert, derOf(fx.operator.rootCertificate)]) {
    assert.equal(v.getUint32(at), der.length);
    assert.deepEqual(h.subarray(at + 4, at + 4 + der.length), der);
    at += 4 + der.length;
  }
  assert.equal(at, h.length);
});

test('header: decode(encode(x)) = x and re-encoding gives the same bytes', () => {
  const variants: BackupHeaderFields[] = [
    fields,
    { ...fields, mode: 'FIPS', firmwareVersion: '', journalPosition: 0n, createdMs: 0 },
    { ...fields, journalPosition: (1n << 64n) - 1n, createdMs: 8.64e15, clusterId: 'cluster-ünïcødé-😀', backupId: 'b'.repeat(256) },
    { ...fields, recordCount: 0, userCount: 0, objectCount: 0, bodyBytes: 16n, segmentBytes: 16 },
    { ...fields, bodyBytes: bodyBytesFor(10 * 65536, 65536), segmentBytes: 65536 },
    { ...fields, backupId: '\ufeffbom-first' }, // a leading BOM is data, not stripped
  ];
  for (const f of variants) {
    const bytes = encodeBackupHeader(f);
    const h = decodeBackupHeader(bytes);
    assert.deepEqual(h, { ...f, version: 1, suite: 1, headerBytes: bytes.length });
    assert.deepEqual(encodeBackupHeader(h), bytes);
    assert.equal(peekBackupHeaderLength(bytes.subarray(0, 12)), bytes.length);
  }
});

test('header: every byte flipped → refused with a typed error, or a different header that encodes to those bytes', () => {
  const bytes = encodeBackupHeader(fields);
  const original = decodeBackupHeader(bytes);
  let refused = 0;
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0x01, 0x80]) {
      const m = bytes.slice();
      m[i] = (m[i] ?? 0) ^ mask;
      let h;
      try {
        h = decodeBackupHeader(m);
      } catch (e) {
        assert.ok(isCofferError(e), `byte ${i}: ${String(e)}`);
        refused++;
        continue;
      }
      assert.notDeepEqual(h, original, `byte ${i}`);
      assert.deepEqual(encodeBackupHeader(h), m, `byte ${i}: the decoding is canonical`);
    }
  }
  assert.ok(refused > 0);
});

test('header: the structural fields refuse their wrong values', () => {
  const bytes = encodeBackupHeader(fields);
  const at = (i: number, w: (v: DataView) => void): Uint8Array => patched(bytes, i, w);
  throwsCode(() => decodeBackupHeader(at(12, (v) => v.setUint8(0, 0))), 'COFFER_FORMAT_MALFORMED', { field: 'mode' });
  throwsCode(() => decodeBackupHeader(at(12, (v) => v.setUint8(0, 3))), 'COFFER_FORMAT_MALFORMED', { field: 'mode' });
  throwsCode(() => decodeBackupHeader(at(13, (v) => v.setBigUint64(0, 8_640_000_000_000_001n))), 'COFFER_FORMAT_MALFORMED', { field: 'createdMs' });
  throwsCode(() => decodeBackupHeader(at(49, (v) => v.setUint32(0, 5))), 'COFFER_FORMAT_MALFORMED', { field: 'count' }); // users + objects > records
  // With 64-byte segments (80 sealed), no plaintext seals to 15 bytes, to 2 full segments and an
  // empty final one (176), or to a final segment shorter than its tag (85).
  for (const b of [15n, 176n, 85n]) {
    throwsCode(() => decodeBackupHeader(at(57, (v) => v.setBigUint64(0, b))), 'COFFER_FORMAT_MALFORMED', { field: 'bodyBytes' });
  }
  throwsCode(() => decodeBackupHeader(at(76, (v) => v.setUint8(0, 32))), 'COFFER_FORMAT_MALFORMED', { field: 'wrappedBekBytes' });
  const certCountAt = STRINGS_AT + [fields.backupId, fields.clusterId, fields.sourceHsmId, fields.firmwareVersion].reduce((n, s) => n + 2 + s.length, 0);
  throwsCode(() => decodeBackupHeader(at(certCountAt, (v) => v.setUint8(0, 3))), 'COFFER_FORMAT_MALFORMED', { field: 'certificateCount' });
  throwsCode(() => decodeBackupHeader(at(STRINGS_AT + 2, (v) => v.setUint8(0, 0xff))), 'COFFER_FORMAT_MALFORMED', { field: 'string' }); // invalid UTF-8
  throwsCode(() => decodeBackupHeader(at(certCountAt + 1, (v) => v.setUint32(0, 0))), 'COFFER_FORMAT_MALFORMED', { field: 'certificate' });
});

test('header: truncated at every length, or followed by anything, is refused', () => {
  const bytes = encodeBackupHeader(fields);
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeBackupHeader(bytes.subarray(0, n)), (e) => isCofferError(e, n < 4 ? 'COFFER_FORMAT_BAD_MAGIC' : 'COFFER_FORMAT_TRUNCATED'), `length ${n}`);
  }
  throwsCode(() => decodeBackupHeader(concat(bytes, new Uint8Array(1))), 'COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
  // H says one byte less or more than the fields take: the fields do not end at H.
  throwsCode(() => decodeBackupHeader(patched(bytes, 8, (v) => v.setUint32(0, bytes.length - 1)).subarray(0, bytes.length - 1)), 'COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
  throwsCode(() => decodeBackupHeader(concat(patched(bytes, 8, (v) => v.setUint32(0, bytes.length + 1)), new Uint8Array(1))), 'COFFER_FORMAT_MALFORMED', { field: 'headerBytes' });
});

test('header: lengths are checked against their limits before anything is read', () => {
  const bytes = encodeBackupHeader(fields);
  // H = 4 GiB − 1 with only the 12-byte preamble present: a limit error, not a truncation.
  throwsCode(() => peekBackupHeaderLength(patched(bytes.subarray(0, 12), 8, (v) => v.setUint32(0, 0xffffffff))), 'COFFER_FORMAT_LIMIT', { field: 'headerBytes' });
  throwsCode(() => peekBackupHeaderLength(patched(bytes.subarray(0, 12), 8, (v) => v.setUint32(0, BACKUP_HEADER_BYTES_MAX + 1))), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => peekBackupHeaderLength(patched(bytes.subarray(0, 12), 8, (v) => v.setUint32(0, 12))), 'COFFER_FORMAT_MALFORMED');
  // A string or certificate length far past the header's end is a limit error, not a bounds error.
  throwsCode(() => decodeBackupHeader(patched(bytes, STRINGS_AT, (v) => v.setUint16(0, 0xffff))), 'COFFER_FORMAT_LIMIT', { field: 'string' });
  throwsCode(() => decodeBackupHeader(patched(bytes, STRINGS_AT, (v) => v.setUint16(0, 257))), 'COFFER_FORMAT_LIMIT', { field: 'string' });
  const certAt = STRINGS_AT + [fields.backupId, fields.clusterId, fields.sourceHsmId, fields.firmwareVersion].reduce((n, s) => n + 2 + s.length, 0) + 1;
  throwsCode(() => decodeBackupHeader(patched(bytes, certAt, (v) => v.setUint32(0, 0xffffffff))), 'COFFER_FORMAT_LIMIT', { field: 'certificate' });
  throwsCode(() => decodeBackupHeader(patched(bytes, 57, (v) => v.setBigUint64(0, 1n << 63n))), 'COFFER_FORMAT_LIMIT', { field: 'bodyBytes' });
  throwsCode(() => decodeBackupHeader(patched(bytes, 57, (v) => v.setBigUint64(0, (1n << 38n) + 16n))), 'COFFER_FORMAT_LIMIT', { field: 'bodyBytes' });
  throwsCode(() => decodeBackupHeader(patched(bytes, 45, (v) => v.setUint32(0, 0xffffffff))), 'COFFER_FORMAT_LIMIT', { field: 'recordCount' });
  throwsCode(() => decodeBackupHeader(patched(bytes, 45, (v) => v.setUint32(0, 2 ** 20 + 1))), 'COFFER_FORMAT_LIMIT', { field: 'recordCount' });
  for (const s of [0, 15, 16 * 1024 * 1024 + 1, 0x80000000]) {
    throwsCode(() => decodeBackupHeader(patched(bytes, 65, (v) => v.setUint32(0, s))), 'COFFER_FORMAT_LIMIT', { field: 'segmentBytes' });
  }
  // 2^38 bytes in 16-byte segments would need 2^33 segments: more than a 32-bit index counts.
  throwsCode(() => encodeBackupHeader({ ...fields, segmentBytes: 16, bodyBytes: bodyBytesFor(2n ** 37n, 16) }), 'COFFER_FORMAT_LIMIT', { field: 'segments' });
});

test('header: magic, version and suite come first, and a future version is named', () => {
  const bytes = encodeBackupHeader(fields);
  throwsCode(() => peekBackupHeaderLength(new Uint8Array(0)), 'COFFER_FORMAT_BAD_MAGIC');
  throwsCode(() => peekBackupHeaderLength(new TextEncoder().encode('hello, world')), 'COFFER_FORMAT_BAD_MAGIC');
  throwsCode(() => peekBackupHeaderLength(new TextEncoder().encode('CFB')), 'COFFER_FORMAT_BAD_MAGIC');
  throwsCode(() => decodeBackupHeader(patched(bytes, 3, (v) => v.setUint8(0, 0x4c))), 'COFFER_FORMAT_BAD_MAGIC');
  throwsCode(() => peekBackupHeaderLength(bytes.subarray(0, 11)), 'COFFER_FORMAT_TRUNCATED');
  throwsCode(() => decodeBackupHeader(patched(bytes, 4, (v) => v.setUint16(0, 2))), 'COFFER_FORMAT_UNKNOWN_VERSION', { version: 2, supported: 1 });
  throwsCode(() => decodeBackupHeader(patched(bytes, 4, (v) => v.setUint16(0, 0))), 'COFFER_FORMAT_UNKNOWN_VERSION', { version: 0 });
  // A future version is refused from its first six bytes, whatever follows.
  throwsCode(() => peekBackupHeaderLength(patched(bytes.subarray(0, 6), 4, (v) => v.setUint16(0, 7))), 'COFFER_FORMAT_UNKNOWN_VERSION', { version: 7 });
  throwsCode(() => decodeBackupHeader(patched(bytes, 6, (v) => v.setUint16(0, 2))), 'COFFER_FORMAT_UNKNOWN_VERSION', { version: 1, suite: 2 });
});

test('header: the encoder refuses what the decoder would refuse', () => {
  throwsCode(() => encodeBackupHeader({ ...fields, clusterId: 'x'.repeat(257) }), 'COFFER_FORMAT_LIMIT', { field: 'string' });
  throwsCode(() => encodeBackupHeader({ ...fields, clusterId: 'é'.repeat(129) }), 'COFFER_FORMAT_LIMIT', { field: 'string' }); // 258 bytes
  throwsCode(() => encodeBackupHeader({ ...fields, backupId: 'lone \ud800 surrogate' }), 'COFFER_FORMAT_MALFORMED', { field: 'string' });
  throwsCode(() => encodeBackupHeader({ ...fields, createdMs: -1 }), 'COFFER_FORMAT_MALFORMED', { field: 'createdMs' });
  throwsCode(() => encodeBackupHeader({ ...fields, createdMs: 1.5 }), 'COFFER_FORMAT_MALFORMED', { field: 'createdMs' });
  throwsCode(() => encodeBackupHeader({ ...fields, journalPosition: 1n << 64n }), 'COFFER_FORMAT_MALFORMED', { field: 'journalPosition' });
  throwsCode(() => encodeBackupHeader({ ...fields, userCount: 5 }), 'COFFER_FORMAT_MALFORMED', { field: 'count' });
  throwsCode(() => encodeBackupHeader({ ...fields, bodyBytes: 176n }), 'COFFER_FORMAT_MALFORMED', { field: 'bodyBytes' });
  throwsCode(() => encodeBackupHeader({ ...fields, certificates: { ...fields.certificates, operator: new Uint8Array(0) } }), 'COFFER_FORMAT_MALFORMED', { field: 'certificate' });
  throwsCode(() => encodeBackupHeader({ ...fields, certificates: { ...fields.certificates, operator: new Uint8Array(16 * 1024 + 1) } }), 'COFFER_FORMAT_LIMIT', { field: 'certificate' });
  const big = new Uint8Array(16 * 1024);
  throwsCode(() => encodeBackupHeader({ ...fields, certificates: { device: big, manufacturerRoot: big, operator: big, operatorRoot: big } }), 'COFFER_FORMAT_LIMIT', { field: 'headerBytes' });
});

test('bodyBytesFor: plaintext + 16 per segment, one segment for an empty body; the AEAD stream agrees', () => {
  assert.equal(bodyBytesFor(0, 64), 16n);
  assert.equal(bodyBytesFor(1, 64), 17n);
  assert.equal(bodyBytesFor(64, 64), 80n);
  assert.equal(bodyBytesFor(65, 64), 97n);
  assert.equal(bodyBytesFor(2n ** 38n - 2n ** 22n, 65536), 2n ** 38n - 2n ** 22n + 16n * 2n ** 22n - 16n * 64n);
  for (let p = 0; p < 300; p++) for (const s of [16, 17, 64]) assert.equal(bodyBytesFor(p, s), BigInt(sealedStreamLength(p, s)), `${p}/${s}`);
});

// ── records ─────────────────────────────────────────────────────────────────────────────────

test('records: 1 ‖ ns ‖ 2 ‖ id ‖ 4 ‖ value, and the encoder refuses bad keys', () => {
  const r = encodeBackupRecord({ ns: 'user', id: 'ann', value: new Uint8Array([9, 8]) });
  assert.deepEqual([...r], [4, 0x75, 0x73, 0x65, 0x72, 0, 3, 0x61, 0x6e, 0x6e, 0, 0, 0, 2, 9, 8]);
  assert.equal(backupRecordBytes('user', 'ann', 2), r.length);
  assert.equal(backupRecordBytes('ns', 'ïd', 10), encodeBackupRecord({ ns: 'ns', id: 'ïd', value: new Uint8Array(10) }).length);
  throwsCode(() => encodeBackupRecord({ ns: '', id: 'a', value: new Uint8Array(0) }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeBackupRecord({ ns: 'a', id: '', value: new Uint8Array(0) }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeBackupRecord({ ns: 'n'.repeat(65), id: 'a', value: new Uint8Array(0) }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeBackupRecord({ ns: 'a', id: 'i'.repeat(513), value: new Uint8Array(0) }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeBackupRecord({ ns: 'a', id: 'a', value: new Uint8Array(1024 * 1024 + 1) }), 'COFFER_FORMAT_LIMIT');
});

const bodyOf = (records: readonly BackupRecord[]): Uint8Array => concat(...records.map(encodeBackupRecord));
const COUNTS = { records: 6, users: 2, objects: 2 };

test('records: the reader gives the same records whatever the chunk boundaries', () => {
  const body = bodyOf(SAMPLE_RECORDS);
  const readAll = (cuts: number[]): BackupRecord[] => {
    const reader = new BackupRecordReader(COUNTS);
    const out: BackupRecord[] = [];
    let prev = 0;
    for (const c of [...cuts, body.length]) {
      out.push(...reader.push(body.subarray(prev, c)));
      prev = c;
    }
    reader.finish();
    assert.equal(reader.count, 6);
    return out;
  };
  assert.deepEqual(readAll([]), SAMPLE_RECORDS);
  for (let i = 0; i <= body.length; i++) {
    for (let j = i; j <= body.length; j++) assert.deepEqual(readAll([i, j]), SAMPLE_RECORDS, `cuts ${i}, ${j}`);
  }
  assert.deepEqual(readAll(Array.from({ length: body.length }, (_, i) => i)), SAMPLE_RECORDS); // a byte at a time
  const empty = new BackupRecordReader({ records: 0, users: 0, objects: 0 });
  assert.deepEqual(empty.push(new Uint8Array(0)), []);
  empty.finish();
});

test('records: a 1 MiB value crosses many chunks', () => {
  const value = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff);
  const records = [{ ns: 'object', id: 'big', value }, { ns: 'object', id: 'small', value: new Uint8Array([1]) }];
  const body = bodyOf(records);
  const reader = new BackupRecordReader({ records: 2, users: 0, objects: 2 });
  const out: BackupRecord[] = [];
  for (let at = 0; at < body.length; at += 65536) out.push(...reader.push(body.subarray(at, at + 65536)));
  reader.finish();
  assert.deepEqual(out, records);
});

function readerRefuses(body: Uint8Array, counts?: typeof COUNTS): void {
  const reader = new BackupRecordReader(counts);
  throwsCode(() => {
    reader.push(body);
    reader.finish();
  }, 'COFFER_BACKUP_TAMPERED');
  throwsCode(() => reader.push(new Uint8Array(1)), 'COFFER_BACKUP_TAMPERED'); // refuses after a failure
}

test('records: counts other than the header\'s, cut records and bad framing are tampering', () => {
  const body = bodyOf(SAMPLE_RECORDS);
  readerRefuses(body, { ...COUNTS, records: 5 });
  readerRefuses(body, { ...COUNTS, records: 7 });
  readerRefuses(body, { ...COUNTS, users: 1 });
  readerRefuses(body, { ...COUNTS, objects: 3 });
  // Cut inside a record: finish refuses. Cut on a record boundary: fine without expected counts,
  // refused with them.
  const boundaries = SAMPLE_RECORDS.map((_, i) => bodyOf(SAMPLE_RECORDS.slice(0, i + 1)).length);
  for (let n = 1; n < body.length; n++) {
    const reader = new BackupRecordReader();
    reader.push(body.subarray(0, n));
    if (boundaries.includes(n)) reader.finish();
    else throwsCode(() => reader.finish(), 'COFFER_BACKUP_TAMPERED');
    const counted = new BackupRecordReader(COUNTS);
    counted.push(body.subarray(0, n));
    throwsCode(() => counted.finish(), 'COFFER_BACKUP_TAMPERED');
  }
  const one = (ns: string, id: string): Uint8Array => encodeBackupRecord({ ns, id, value: new Uint8Array([1]) });
  readerRefuses(concat(one('user', 'b'), one('user', 'a'))); // out of order
  readerRefuses(concat(one('user', 'a'), one('user', 'a'))); // repeated
  readerRefuses(concat(one('user', 'a'), one('object', 'z'))); // namespaces out of order
  readerRefuses(one('device', 'identity.key')); // never travels
  readerRefuses(new Uint8Array([0, 0, 1, 0x61, 0, 0, 0, 0])); // empty namespace
  readerRefuses(new Uint8Array([65, ...new Uint8Array(65).fill(0x61), 0, 1, 0x61, 0, 0, 0, 0])); // namespace too long
  readerRefuses(new Uint8Array([1, 0x61, 0, 0, 0, 0, 0, 0])); // empty id
  readerRefuses(new Uint8Array([1, 0x61, 0x02, 0x01, ...new Uint8Array(513).fill(0x61), 0, 0, 0, 0])); // id too long
  readerRefuses(new Uint8Array([1, 0x61, 0, 1, 0x61, 0x00, 0x10, 0x00, 0x01])); // value over 1 MiB
  readerRefuses(new Uint8Array([1, 0xff, 0, 1, 0x61, 0, 0, 0, 0])); // namespace not UTF-8
  readerRefuses(new Uint8Array([1, 0x61, 0, 1, 0xc3, 0, 0, 0, 0])); // id not UTF-8
  // Ordering is by UTF-8 bytes: U+E000 (EE 80 80) sorts before U+10000 (F0 90 80 80), unlike UTF-16.
  const ordered = new BackupRecordReader();
  assert.equal(ordered.push(concat(one('x', '\ue000'), one('x', '\u{10000}'))).length, 2);
});

// ── trailer ─────────────────────────────────────────────────────────────────────────────────

test('trailer: u16 96 ‖ signature; anything else is malformed', () => {
  const sig = new Uint8Array(96).fill(5);
  const t = encodeBackupTrailer(sig);
  assert.equal(t.length, BACKUP_TRAILER_BYTES);
  assert.deepEqual([...t.subarray(0, 2)], [0, 96]);
  assert.deepEqual(decodeBackupTrailer(t), sig);
  throwsCode(() => decodeBackupTrailer(patched(t, 0, (v) => v.setUint16(0, 95))), 'COFFER_FORMAT_MALFORMED', { field: 'trailer' });
  throwsCode(() => decodeBackupTrailer(t.subarray(0, 97)), 'COFFER_FORMAT_MALFORMED');
  assert.deepEqual(signedMessagePrefix(), BACKUP_SIGNATURE_CONTEXT);
  assert.equal(Buffer.from(BACKUP_SIGNATURE_CONTEXT).toString('latin1'), 'coffer backup v1 signature\0');
});

test('signature input: the signer and every verifier build context ‖ header ‖ body from one definition', () => {
  const { header, body } = assembleBackup(fx);
  const key = p384PublicKey(fx.identity.publicKeySpki());
  // The device's stream signer, fed as createBackup feeds it; the body in two pieces.
  const signer = fx.identity.streamSigner();
  beginSignedMessage(signer, header);
  signer.update(body.subarray(0, 7));
  signer.update(body.subarray(7));
  const signature = signer.sign();
  const verifier = new BackupSignatureVerifier(header);
  verifier.update(body);
  assert.equal(verifier.holds(key, signature), true);
  assert.throws(() => verifier.holds(key, signature), /a verifier checks once/);
  // The streamed scan over a whole blob agrees, and so does a one-shot signature over the concatenation.
  assert.equal(verifyBackupSignature(bufferSource(concat(header, body, encodeBackupTrailer(signature))), decodeBackupHeader(header)), true);
  assert.ok(createVerify('sha384').update(concat(BACKUP_SIGNATURE_CONTEXT, header, body)).verify({ key, dsaEncoding: 'ieee-p1363' }, signature));
  // A signature over the same bytes without the context, or with one byte of the context changed, does not hold.
  const without = new BackupSignatureVerifier(header);
  without.update(body);
  assert.equal(without.holds(key, fx.identity.sign(concat(header, body))), false);
  const otherContext = new BackupSignatureVerifier(header);
  otherContext.update(body);
  assert.equal(otherContext.holds(key, fx.identity.sign(concat(new TextEncoder().encode('coffer backup v2 signature\0'), header, body))), false);
  // A signature OpenSSL cannot parse is false, not a throw.
  const junk = new BackupSignatureVerifier(header);
  junk.update(body);
  assert.equal(junk.holds(key, new Uint8Array(96)), false);
});

// ── whole blobs ─────────────────────────────────────────────────────────────────────────────

test('blob: assembled from the pieces, it opens with the keys to the records it was made of', () => {
  for (const segmentBytes of [16, 64, 65536]) {
    const { blob } = assembleBackup(fx, SAMPLE_RECORDS, { segmentBytes, mode: 'FIPS' });
    const { header, records } = openBlob(fx, blob);
    assert.equal(header.mode, 'FIPS');
    assert.deepEqual(records, SAMPLE_RECORDS);
  }
});

test('verifyBackup: a genuine blob verifies against the right roots, streamed in bounded reads', async () => {
  const { blob, body } = assembleBackup(fx);
  const v = await verifyBackup(bufferSource(blob), fx.roots);
  assert.deepEqual(v.problems, []);
  assert.equal(v.verified, true);
  assert.equal(v.deviceSerial, fx.identity.serial);
  assert.equal(v.bodySha256, createHash('sha256').update(body).digest('hex'));
  assert.equal(v.header.clusterId, 'cluster-234567abcde');
  assert.equal(verifyBackupSignature(bufferSource(blob), v.header), true);

  // A body over 1 MiB is read in chunks of at most BACKUP_READ_CHUNK_BYTES.
  const big = assembleBackup(fx, [0, 1, 2].map((i) => ({ ns: 'object', id: `k${i}`, value: new Uint8Array(900_000).fill(i) })), { segmentBytes: 65536 });
  let largest = 0;
  let reads = 0;
  const inner = bufferSource(big.blob);
  const counting: BackupSource = { length: inner.length, read: (o, n) => ((largest = Math.max(largest, n)), reads++, inner.read(o, n)) };
  assert.equal((await verifyBackup(counting, fx.roots)).verified, true);
  assert.ok(largest <= BACKUP_READ_CHUNK_BYTES && reads >= 3, `largest read ${largest}, ${reads} reads`);

  const dir = mkdtempSync(join(tmpdir(), 'coffer-backup-'));
  try {
    writeFileSync(join(dir, 'b.cfbk'), blob);
    const src = fileSource(join(dir, 'b.cfbk'));
    try {
      assert.equal((await verifyBackup(src, fx.roots)).verified, true);
    } finally {
      src.close();
      src.close();
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('verifyBackup: other roots, another device or a changed byte → not verified, with the reason', async () => {
  const { blob, header } = assembleBackup(fx);
  const otherM = await createManufacturer({ development: true });
  const otherO = await createOperator({ development: true });
  const problemsWith = async (b: Uint8Array, roots = fx.roots): Promise<readonly string[]> => {
    const v = await verifyBackup(bufferSource(b), roots);
    assert.equal(v.verified, false);
    return v.problems;
  };
  assert.match((await problemsWith(blob, { ...fx.roots, manufacturerRoot: derOf(otherM.rootCertificate) })).join(';'), /device certificate does not chain to the manufacturer root/);
  assert.match((await problemsWith(blob, { ...fx.roots, operatorRoot: pemOf(otherO.rootCertificate) })).join(';'), /operator certificate does not chain to the operator root/);
  // Expired: validity is judged at atMs.
  const later = await verifyBackup(bufferSource(blob), fx.roots, Date.now() + 30 * 365 * 86_400_000);
  assert.equal(later.verified, false);

  const flip = (at: number): Uint8Array => patched(blob, at, (v) => v.setUint8(0, v.getUint8(0) ^ 0x01));
  for (const at of [blob.length - 1, blob.length - 60, header.length, header.length + 40, blob.length - BACKUP_TRAILER_BYTES - 1, 20]) {
    const b = flip(at);
    assert.match((await problemsWith(b)).join(';'), /signature does not verify/, `byte ${at}`);
    assert.equal(verifyBackupSignature(bufferSource(b), decodeBackupHeader(b.subarray(0, header.length))), false);
  }

  // A blob signed by another, uncertified device key; and one whose source HSM id is not the signer's.
  const stranger = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  assert.match((await problemsWith(assembleBackup(fx, SAMPLE_RECORDS, { signer: stranger }).blob)).join(';'), /signature does not verify/);
  assert.match((await problemsWith(assembleBackup(fx, SAMPLE_RECORDS, { overrides: { sourceHsmId: 'CFR-0000000000000000' } }).blob)).join(';'), /source HSM id/);

  // Device and operator certificates for two different keys: both chain, but they do not name one device.
  const otherDevice = await issueDeviceCertificate(fx.manufacturer, stranger.csrPem());
  const otherOp = await issueOperatorCertificate(fx.operator, pemOf(otherDevice));
  const mixed = assembleBackup(fx, SAMPLE_RECORDS, { overrides: { certificates: { ...fields.certificates, operator: derOf(otherOp) } } }).blob;
  assert.match((await problemsWith(mixed)).join(';'), /operator certificate certifies another key/);
});

test('verifyBackup: a blob cut short, extended, or with a malformed trailer is a format error', async () => {
  const { blob } = assembleBackup(fx);
  const refuses = async (b: Uint8Array, code: ErrorCode): Promise<void> => {
    await assert.rejects(verifyBackup(bufferSource(b), fx.roots), (e) => isCofferError(e, code), code);
  };
  await refuses(blob.subarray(0, blob.length - 1), 'COFFER_FORMAT_TRUNCATED');
  await refuses(blob.subarray(0, 100), 'COFFER_FORMAT_TRUNCATED');
  await refuses(concat(blob, new Uint8Array(1)), 'COFFER_FORMAT_MALFORMED');
  await refuses(patched(blob, blob.length - BACKUP_TRAILER_BYTES, (v) => v.setUint16(0, 72)), 'COFFER_FORMAT_MALFORMED');
  await refuses(new TextEncoder().encode('not a backup at all'), 'COFFER_FORMAT_BAD_MAGIC');
  const h = decodeBackupHeader(blob.subarray(0, u32(blob, 8)));
  assert.equal(verifyBackupSignature(bufferSource(blob.subarray(0, blob.length - 1)), h), false);
  assert.equal(verifyBackupSignature(bufferSource(concat(blob, new Uint8Array(1))), h), false);
});
