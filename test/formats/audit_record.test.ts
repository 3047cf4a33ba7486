// Audit record and bundle format v1 (src/formats/audit_record.ts, docs/audit.md "Format"): records
// built byte by byte from the layout written in the module header (an independent reading, on raw
// node:crypto for the hashes) equal the encoder's output and the committed vectors in
// test/vectors/audit-v1/; round trips; every byte flipped and every truncation refused or read as a
// different record; unknown versions, bad magic and every limit refused with their codes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isCofferError } from '../../src/errors.js';
import {
  auditChainHash, auditCheckpointMessage, auditGenesisHash, decodeAuditBundle, decodeAuditRecord, encodeAuditBundle, encodeAuditRecord,
  type AuditEvent, type AuditRecord,
} from '../../src/formats/audit_record.js';
import { AUDIT_BUNDLE_RECORDS_MAX, AUDIT_HANDLES_MAX, AUDIT_RECORD_BYTES_MAX, AUDIT_TEXT_BYTES_MAX } from '../../src/formats/limits.js';
import { flip, throwsCode } from '../helpers.js';

const VECTORS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/vectors/audit-v1');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const PREV = Uint8Array.from({ length: 32 }, (_, i) => i);
const EVENT: AuditEvent = { kind: 'key.generate', outcome: 'ok', user: 'alice', session: '0b6b4c1e-5f0a-4f53-9a43-3d0c8a1e2f10', code: '', detail: 'EC', handles: [7, 8] };
const FAILED: AuditEvent = { kind: 'login', outcome: 'failed', user: 'bob', session: 's', code: 'COFFER_AUTH_FAILED', detail: '', handles: [] };

/** The event record from the layout alone (module header), not from the encoder. */
function specEventRecord(seq: bigint, timeMs: number, prev: Uint8Array, e: AuditEvent, kindCode: number): Uint8Array {
  const texts = [e.user, e.session, e.code, e.detail].map((t) => Buffer.from(t, 'ascii'));
  const body = Buffer.concat([
    Buffer.from([kindCode, e.outcome === 'ok' ? 1 : 2, e.handles.length]),
    ...texts.flatMap((t) => [Buffer.from([t.length]), t]),
    ...e.handles.map((h) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(h));
      return b;
    }),
  ]);
  const header = Buffer.alloc(58);
  header.write('CAUD', 0, 'ascii');
  header[4] = 1;
  header[5] = 1;
  header[6] = 1;
  header.writeBigUInt64BE(seq, 8);
  header.writeBigUInt64BE(BigInt(timeMs), 16);
  Buffer.from(prev).copy(header, 24);
  header.writeUInt16BE(body.length, 56);
  return new Uint8Array(Buffer.concat([header, body]));
}

test('audit record: the encoder writes the layout of the spec, and the committed vectors', () => {
  const spec = specEventRecord(5n, 1_767_225_600_000, PREV, EVENT, 11);
  const record: AuditRecord = { type: 'event', seq: 5n, timeMs: 1_767_225_600_000, prevHash: PREV, event: EVENT };
  assert.equal(hex(encodeAuditRecord(record)), hex(spec));
  const vectors = JSON.parse(readFileSync(resolve(VECTORS, 'vectors.json'), 'utf8')) as { event: string; chainHash: string; genesis: { serial: string; hash: string }; checkpoint: string; checkpointMessage: string };
  assert.equal(hex(spec), vectors.event, 'the committed event record');
  assert.deepEqual(decodeAuditRecord(Buffer.from(vectors.event, 'hex')), record);
  assert.equal(hex(auditChainHash(spec)), createHash('sha256').update('coffer audit chain v1\0').update(spec).digest('hex'));
  assert.equal(hex(auditChainHash(spec)), vectors.chainHash);
  assert.equal(hex(auditGenesisHash(vectors.genesis.serial)), createHash('sha256').update('coffer audit genesis v1\0').update(vectors.genesis.serial).digest('hex'));
  assert.equal(hex(auditGenesisHash(vectors.genesis.serial)), vectors.genesis.hash);
  const cp = decodeAuditRecord(Buffer.from(vectors.checkpoint, 'hex'));
  assert.equal(cp.type, 'checkpoint');
  assert.equal(hex(encodeAuditRecord(cp)), vectors.checkpoint);
  if (cp.type === 'checkpoint') assert.equal(hex(auditCheckpointMessage(cp.serial, cp.seq, cp.timeMs, cp.prevHash)), vectors.checkpointMessage);
});

test('audit record: round trips of events and checkpoints', () => {
  const records: AuditRecord[] = [
    { type: 'event', seq: 0n, timeMs: 0, prevHash: PREV, event: FAILED },
    { type: 'event', seq: 2n ** 64n - 1n, timeMs: Number.MAX_SAFE_INTEGER, prevHash: PREV, event: { ...EVENT, handles: [0, 1, 2, Number.MAX_SAFE_INTEGER] } },
    { type: 'checkpoint', seq: 9n, timeMs: 12, prevHash: PREV, serial: 'CFR-0123456789ABCDEF', signature: new Uint8Array(96).fill(7) },
  ];
  for (const r of records) assert.deepEqual(decodeAuditRecord(encodeAuditRecord(r)), r);
});

test('audit record: every byte flipped is refused or reads as another record; every truncation and extension is refused', () => {
  const bytes = encodeAuditRecord({ type: 'event', seq: 3n, timeMs: 99, prevHash: PREV, event: EVENT });
  const original = decodeAuditRecord(bytes);
  for (let i = 0; i < bytes.length; i++) {
    let decoded: AuditRecord | undefined;
    try {
      decoded = decodeAuditRecord(flip(bytes, i));
    } catch (e) {
      assert.ok(isCofferError(e), `byte ${i}: a typed error`);
      continue;
    }
    assert.notDeepEqual(decoded, original, `byte ${i}: a flip is never read as the same record`);
    assert.notEqual(hex(auditChainHash(flip(bytes, i))), hex(auditChainHash(bytes)));
  }
  for (let n = 0; n < bytes.length; n++) assert.throws(() => decodeAuditRecord(bytes.subarray(0, n)), (e: unknown) => isCofferError(e, 'COFFER_FORMAT_TRUNCATED') || isCofferError(e, 'COFFER_FORMAT_BAD_MAGIC'), `cut at ${n}`);
  throwsCode(() => decodeAuditRecord(Uint8Array.from([...bytes, 0])), 'COFFER_FORMAT_MALFORMED');
});

test('audit record: unknown version, bad magic, unknown kind, type or outcome, non-ASCII text', () => {
  const bytes = encodeAuditRecord({ type: 'event', seq: 3n, timeMs: 99, prevHash: PREV, event: EVENT });
  const at = (i: number, v: number): Uint8Array => {
    const c = Uint8Array.from(bytes);
    c[i] = v;
    return c;
  };
  assert.throws(() => decodeAuditRecord(at(4, 2)), (e: unknown) => isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') && e.detail['found'] === 2 && e.detail['supported'] === 1 && e.detail['format'] === 'audit-record');
  throwsCode(() => decodeAuditRecord(at(0, 0x58)), 'COFFER_FORMAT_BAD_MAGIC');
  throwsCode(() => decodeAuditRecord(at(6, 3)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeAuditRecord(at(58, 200)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeAuditRecord(at(59, 3)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeAuditRecord(at(63, 0xc3)), 'COFFER_FORMAT_MALFORMED'); // inside the user name
  throwsCode(() => encodeAuditRecord({ type: 'event', seq: 1n, timeMs: 1, prevHash: PREV, event: { ...EVENT, user: 'ålice' } }), 'COFFER_FORMAT_MALFORMED');
});

test('audit record: limits on texts, handles and record length', () => {
  const rec = (e: Partial<AuditEvent>): AuditRecord => ({ type: 'event', seq: 1n, timeMs: 1, prevHash: PREV, event: { ...EVENT, ...e } });
  encodeAuditRecord(rec({ detail: 'd'.repeat(AUDIT_TEXT_BYTES_MAX) }));
  throwsCode(() => encodeAuditRecord(rec({ detail: 'd'.repeat(AUDIT_TEXT_BYTES_MAX + 1) })), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeAuditRecord(rec({ handles: Array.from({ length: AUDIT_HANDLES_MAX + 1 }, (_, i) => i) })), 'COFFER_FORMAT_LIMIT');
  const big = encodeAuditRecord(rec({}));
  const over = new Uint8Array(AUDIT_RECORD_BYTES_MAX + 1);
  over.set(big);
  throwsCode(() => decodeAuditRecord(over), 'COFFER_FORMAT_LIMIT');
  const longText = Uint8Array.from(big);
  longText[61] = AUDIT_TEXT_BYTES_MAX + 1; // the user name's length
  throwsCode(() => decodeAuditRecord(longText), 'COFFER_FORMAT_LIMIT');
});

test('audit bundle: round trip, refusals of its framing and limits', () => {
  const records = [0n, 1n].map((seq) => encodeAuditRecord({ type: 'event', seq, timeMs: 5, prevHash: PREV, event: EVENT }));
  const bundle = { deviceCertificateDer: Uint8Array.of(1, 2, 3), operatorCertificateDer: new Uint8Array(0), records };
  const bytes = encodeAuditBundle(bundle);
  assert.deepEqual(decodeAuditBundle(bytes), bundle);
  for (let n = 0; n < bytes.length; n++) assert.throws(() => decodeAuditBundle(bytes.subarray(0, n)), (e: unknown) => isCofferError(e), `cut at ${n}`);
  throwsCode(() => decodeAuditBundle(Uint8Array.from([...bytes, 0])), 'COFFER_FORMAT_MALFORMED');
  const v2 = Uint8Array.from(bytes);
  v2[4] = 2;
  throwsCode(() => decodeAuditBundle(v2), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => encodeAuditBundle({ ...bundle, records: new Array<Uint8Array>(AUDIT_BUNDLE_RECORDS_MAX + 1).fill(records[0] as Uint8Array) }), 'COFFER_FORMAT_LIMIT');
  const count = Uint8Array.from(bytes);
  new DataView(count.buffer).setUint32(8 + 2 + 3 + 2, AUDIT_BUNDLE_RECORDS_MAX + 1);
  throwsCode(() => decodeAuditBundle(count), 'COFFER_FORMAT_LIMIT');
});
