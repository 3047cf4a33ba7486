// Journal entry format v1 (src/formats/journal_entry.ts, docs/journal-format.md): the committed
// known-answer vectors rebuilt byte for byte both by the codec and by an independent reading of the
// spec on raw node:crypto (test/formats/journal_fixture.ts); round trips of seeded random change
// sets; every byte flipped, every truncation and extensions refused with the code of the region
// hit; another key, cluster, sequence number or predecessor refused; limits.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AssertionFailure } from '../../src/assert.js';
import { keyId } from '../../src/crypto/backup_keys.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { sealedStreamLength } from '../../src/crypto/aead_stream.js';
import { type ErrorCode } from '../../src/errors.js';
import { CHANGE_KINDS, encodeChangeSet, type ChangeKind, type ChangeSet, type RecordOp } from '../../src/formats/change_set.js';
import {
  JOURNAL_BODY_BYTES_MAX, JOURNAL_ENTRY_SEALED_BYTES_MAX, JOURNAL_HEADER_BYTES_MAX, JOURNAL_SEGMENT_BYTES, CHANGE_SET_BYTES_MAX, SEALED_RECORD_BYTES_MAX,
} from '../../src/formats/limits.js';
import {
  decodeJournalEntryHeader, journalEntryHash, journalGenesis, openJournalEntry, sealJournalEntry, syncKeyIdOf, type JournalExpectation,
} from '../../src/formats/journal_entry.js';
import { JOURNAL_ENTRY_BYTES_MAX as METADATA_JOURNAL_ENTRY_BYTES_MAX } from '../../src/storage/metadata_port.js';
import { flip, mulberry32, throwsCode } from '../helpers.js';
import { changeSetOf, readVector, specEntry, specGenesis, type Vector } from './journal_fixture.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const CLUSTER = 'cluster-abcdefghijk';
const ORIGINATOR = 'CFR-0123456789ABCDEF';
const KEY = SecretBytes.copyOf(randomBytes(32));
const OTHER_KEY = SecretBytes.copyOf(randomBytes(32));

function sampleChangeSet(valueBytes = 40): ChangeSet {
  return {
    scope: 'cluster', kind: 'key.generate', ops: [
      { op: 'put', ns: 'config', id: 'objects.next-handle', value: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 2) },
      { op: 'put', ns: 'object', id: '0000000000000001', value: new Uint8Array(randomBytes(valueBytes)) },
    ],
  };
}

function seal(o: { key?: SecretBytes; cluster?: string; seq?: bigint; predecessor?: Uint8Array; cs?: ChangeSet; salt?: Uint8Array } = {}): { entry: Uint8Array; hash: Uint8Array } {
  return sealJournalEntry({
    syncKey: o.key ?? KEY, clusterId: o.cluster ?? CLUSTER, originator: ORIGINATOR, seq: o.seq ?? 1n,
    predecessor: o.predecessor ?? journalGenesis(CLUSTER), salt: o.salt ?? new Uint8Array(randomBytes(32)), changeSet: o.cs ?? sampleChangeSet(),
  });
}

const first: JournalExpectation = { syncKey: KEY, clusterId: CLUSTER, seq: 1n, predecessor: journalGenesis(CLUSTER) };

function vectorExpectation(v: Vector, key: SecretBytes): JournalExpectation {
  return { syncKey: key, clusterId: v.inputs.clusterId, seq: BigInt(v.inputs.seq), predecessor: Buffer.from(v.inputs.predecessor, 'hex') };
}

// ── known answers ───────────────────────────────────────────────────────────────────────────────

test('the raw AES-256-GCM the independent build uses matches McGrew–Viega test case 16 (the GCM spec, adopted by SP 800-38D)', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const gcm = JSON.parse(readFileSync(resolve(here, '../../../test/vectors/mechanisms/aes_gcm.json'), 'utf8')) as { cases: { tc: number; key: string; iv: string; aad: string; pt: string; ct: string; tag: string }[] };
  const tc = gcm.cases.find((c) => c.tc === 16);
  assert.ok(tc !== undefined);
  const c = createCipheriv('aes-256-gcm', Buffer.from(tc.key, 'hex'), Buffer.from(tc.iv, 'hex'));
  c.setAAD(Buffer.from(tc.aad, 'hex'));
  const ct = Buffer.concat([c.update(Buffer.from(tc.pt, 'hex')), c.final()]);
  assert.equal(ct.toString('hex'), tc.ct);
  assert.equal(c.getAuthTag().toString('hex'), tc.tag);
});

for (const n of [1, 2]) {
  test(`vector ${n}: the committed bytes are what the spec and the codec both make, and they open to the change set`, () => {
    const { vector: v, entry } = readVector(n);
    const cs = changeSetOf(v.inputs);
    const plaintext = encodeChangeSet(cs);
    assert.equal(plaintext.length, v.expected.plaintextBytes);
    assert.equal(createHash('sha256').update(plaintext).digest('hex'), v.expected.plaintextSha256);
    // The spec, read independently.
    const spec = specEntry(v.inputs, plaintext);
    assert.equal(hex(spec.entry), hex(entry));
    assert.equal(hex(spec.header), v.expected.header);
    assert.equal(hex(spec.entryKey), v.expected.entryKey);
    assert.equal(hex(spec.syncKeyId), v.expected.syncKeyId);
    assert.equal(spec.segments, v.expected.segments);
    assert.equal(entry.length, v.expected.entryBytes);
    assert.equal(createHash('sha256').update(entry).digest('hex'), v.expected.entrySha256);
    // The codec.
    const key = SecretBytes.copyOf(Buffer.from(v.inputs.syncKey, 'hex'));
    const sealed = sealJournalEntry({
      syncKey: key, clusterId: v.inputs.clusterId, originator: v.inputs.originator, seq: BigInt(v.inputs.seq),
      predecessor: Buffer.from(v.inputs.predecessor, 'hex'), salt: Buffer.from(v.inputs.salt, 'hex'), changeSet: cs,
    });
    assert.equal(hex(sealed.entry), hex(entry));
    assert.equal(hex(sealed.hash), v.expected.chainHash);
    assert.equal(hex(journalEntryHash(entry)), v.expected.chainHash);
    assert.equal(hex(syncKeyIdOf(key)), v.expected.syncKeyId);
    assert.equal(hex(keyId(Buffer.from(v.inputs.syncKey, 'hex'))), v.expected.syncKeyId, 'the key id of crypto/backup_keys.ts');
    const header = decodeJournalEntryHeader(entry);
    assert.deepEqual(
      [header.seq, header.clusterId, header.originator, header.bodyBytes, hex(header.salt), hex(header.predecessor)],
      [BigInt(v.inputs.seq), v.inputs.clusterId, v.inputs.originator, v.expected.bodyBytes, v.inputs.salt, v.inputs.predecessor],
    );
    const opened = openJournalEntry(entry, vectorExpectation(v, key));
    assert.deepEqual(opened.changeSet, cs);
    assert.equal(hex(opened.hash), v.expected.chainHash);
  });
}

test('the vectors chain: vector 1 follows the genesis of its cluster, vector 2 follows vector 1', () => {
  const one = readVector(1);
  const two = readVector(2);
  assert.equal(one.vector.inputs.predecessor, hex(journalGenesis(CLUSTER)));
  assert.equal(hex(journalGenesis(CLUSTER)), hex(specGenesis(CLUSTER)));
  assert.equal(two.vector.inputs.predecessor, one.vector.expected.chainHash);
  const key = SecretBytes.copyOf(Buffer.from(one.vector.inputs.syncKey, 'hex'));
  const head = openJournalEntry(one.entry, vectorExpectation(one.vector, key));
  openJournalEntry(two.entry, { syncKey: key, clusterId: CLUSTER, seq: 2n, predecessor: head.hash });
  // Out of order: vector 2 where entry 1 is expected, vector 1 again where entry 2 is expected.
  throwsCode(() => openJournalEntry(two.entry, vectorExpectation(one.vector, key)), 'COFFER_JOURNAL_OUT_OF_ORDER');
  throwsCode(() => openJournalEntry(one.entry, { syncKey: key, clusterId: CLUSTER, seq: 2n, predecessor: head.hash }), 'COFFER_JOURNAL_OUT_OF_ORDER');
});

// ── round trips ─────────────────────────────────────────────────────────────────────────────────

test('seeded random change sets round-trip; the entry shows none of their values', () => {
  const seed = Number(process.env['JOURNAL_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`JOURNAL_SEED=${seed}`);
  const rand = mulberry32(seed);
  const kinds = (Object.keys(CHANGE_KINDS) as ChangeKind[]).filter((k) => !k.startsWith('device.') && k !== 'session.objects');
  let predecessor = journalGenesis(CLUSTER);
  for (let seq = 1n; seq <= 40n; seq++) {
    const ops: RecordOp[] = [];
    const count = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < count; i++) {
      const id = `${Math.floor(rand() * 1e9)}`;
      // Values up to 150,000 bytes: entries of one, two and three segments.
      const size = rand() < 0.2 ? Math.floor(rand() * 150_000) : 16 + Math.floor(rand() * 200);
      ops.push(rand() < 0.2 ? { op: 'delete', ns: 'user', id } : { op: 'put', ns: 'object', id, value: new Uint8Array(randomBytes(size)) });
    }
    const cs: ChangeSet = { scope: 'cluster', kind: kinds[Math.floor(rand() * kinds.length)] ?? 'key.generate', ops };
    const sealed = seal({ seq, predecessor, cs });
    const entry = Buffer.from(sealed.entry);
    for (const op of ops) if (op.op === 'put' && op.value.length >= 16) assert.equal(entry.indexOf(Buffer.from(op.value.subarray(0, 16))), -1, 'no value in clear');
    const opened = openJournalEntry(sealed.entry, { syncKey: KEY, clusterId: CLUSTER, seq, predecessor });
    assert.deepEqual(opened.changeSet, cs);
    assert.equal(hex(opened.hash), hex(sealed.hash));
    predecessor = sealed.hash;
  }
});

test('one change set sealed twice gives two different entries (fresh salt), both valid at the same place', () => {
  const cs = sampleChangeSet();
  const a = seal({ cs });
  const b = seal({ cs });
  assert.notEqual(hex(a.entry), hex(b.entry));
  assert.notEqual(hex(a.hash), hex(b.hash), 'a fork at one position shows as two hashes');
  assert.deepEqual(openJournalEntry(a.entry, first).changeSet, cs);
  assert.deepEqual(openJournalEntry(b.entry, first).changeSet, cs);
});

// ── tampering ───────────────────────────────────────────────────────────────────────────────────

/** The code a flip of byte `i` of an entry must give (docs/journal-format.md "Opening"). */
function codeForFlipAt(i: number): ErrorCode {
  if (i < 4) return 'COFFER_FORMAT_BAD_MAGIC';
  if (i < 8) return 'COFFER_FORMAT_UNKNOWN_VERSION'; // version, suite
  if (i >= 50 && i < 58) return 'COFFER_JOURNAL_WRONG_KEY'; // the key id names another key
  return 'COFFER_JOURNAL_TAMPERED'; // header length, seq, predecessor, salt, body length, strings, body
}

test('every byte of an entry flipped is refused with the code of its region', () => {
  const { vector: v, entry } = readVector(1);
  const key = SecretBytes.copyOf(Buffer.from(v.inputs.syncKey, 'hex'));
  for (let i = 0; i < entry.length; i++) throwsCode(() => openJournalEntry(flip(entry, i), vectorExpectation(v, key)), codeForFlipAt(i), `byte ${i}`);
});

test('a two-segment entry: its header, both tags, the segment boundary and a sample of its body flipped are refused', () => {
  const { vector: v, entry } = readVector(2);
  const key = SecretBytes.copyOf(Buffer.from(v.inputs.syncKey, 'hex'));
  const headerBytes = v.expected.headerBytes;
  const sealedSegment = JOURNAL_SEGMENT_BYTES + 16;
  const at = new Set<number>();
  for (let i = 0; i < headerBytes; i++) at.add(i);
  for (const edge of [headerBytes, headerBytes + sealedSegment - 17, headerBytes + sealedSegment - 1, headerBytes + sealedSegment, entry.length - 17, entry.length - 1]) {
    for (let d = -2; d <= 2; d++) if (edge + d >= 0 && edge + d < entry.length) at.add(edge + d);
  }
  for (let i = headerBytes; i < entry.length; i += 997) at.add(i);
  for (const i of at) throwsCode(() => openJournalEntry(flip(entry, i), vectorExpectation(v, key)), codeForFlipAt(i), `byte ${i}`);
});

test('every truncation, extensions and reordered segments are refused', () => {
  const one = readVector(1);
  const key = SecretBytes.copyOf(Buffer.from(one.vector.inputs.syncKey, 'hex'));
  const expect = vectorExpectation(one.vector, key);
  for (let n = 0; n < one.entry.length; n++) throwsCode(() => openJournalEntry(one.entry.subarray(0, n), expect), n < 4 ? 'COFFER_FORMAT_BAD_MAGIC' : 'COFFER_JOURNAL_TAMPERED', `cut at ${n}`);
  for (const extra of [Uint8Array.of(0), new Uint8Array(16), new Uint8Array(randomBytes(100))]) {
    throwsCode(() => openJournalEntry(Buffer.concat([one.entry, extra]), expect), 'COFFER_JOURNAL_TAMPERED', `${extra.length} bytes appended`);
  }
  // Two segments swapped, or the final one dropped with the body length fixed up to match.
  const two = readVector(2);
  const h = two.vector.expected.headerBytes;
  const seg = JOURNAL_SEGMENT_BYTES + 16;
  const header = two.entry.subarray(0, h);
  const s0 = two.entry.subarray(h, h + seg);
  const s1 = two.entry.subarray(h + seg);
  const expect2 = vectorExpectation(two.vector, key);
  const withBodyLength = (n: number): Buffer => { const c = Buffer.from(header); c.writeUInt32BE(n, 90); return c; };
  throwsCode(() => openJournalEntry(Buffer.concat([withBodyLength(s1.length + s0.length), s1, s0]), expect2), 'COFFER_JOURNAL_TAMPERED', 'segments swapped');
  throwsCode(() => openJournalEntry(Buffer.concat([withBodyLength(s0.length), s0]), expect2), 'COFFER_JOURNAL_TAMPERED', 'final segment dropped');
  throwsCode(() => openJournalEntry(Buffer.concat([withBodyLength(s0.length * 2 + s1.length), s0, s0, s1]), expect2), 'COFFER_JOURNAL_TAMPERED', 'segment repeated');
  // A body moved under another entry's header (same key, same cluster).
  const other = seal({ key, seq: 2n, predecessor: Buffer.from(two.vector.inputs.predecessor, 'hex'), cs: changeSetOf(two.vector.inputs) });
  const otherHeaderLength = decodeJournalEntryHeader(other.entry).bodyBytes;
  assert.equal(otherHeaderLength, two.vector.expected.bodyBytes);
  throwsCode(() => openJournalEntry(Buffer.concat([other.entry.subarray(0, other.entry.length - otherHeaderLength), two.entry.subarray(h)]), expect2), 'COFFER_JOURNAL_TAMPERED', 'body under another header');
});

// ── another key, cluster, position ─────────────────────────────────────────────────────────────

test('refused: another sync key, a forged key id, another cluster, another sequence number, another predecessor', () => {
  const sealed = seal();
  throwsCode(() => openJournalEntry(sealed.entry, { ...first, syncKey: OTHER_KEY }), 'COFFER_JOURNAL_WRONG_KEY');
  // Sealed under another key with this key's id written in: the id is only informative.
  const forged = Buffer.from(seal({ key: OTHER_KEY }).entry);
  Buffer.from(syncKeyIdOf(KEY)).copy(forged, 50);
  throwsCode(() => openJournalEntry(forged, first), 'COFFER_JOURNAL_TAMPERED');
  // One sync key, two cluster ids (HSMs of another cluster cloned from the same backup would share it).
  const elsewhere = seal({ cluster: 'cluster-other000000' });
  throwsCode(() => openJournalEntry(elsewhere.entry, first), 'COFFER_JOURNAL_WRONG_CLUSTER');
  // The entry is 1: expected 2 (replayed), expected 1 after seq 0 never (seq 0 is not a position).
  assert.throws(() => openJournalEntry(sealed.entry, { ...first, seq: 2n, predecessor: sealed.hash }), (e: unknown) => {
    const err = e as { code?: string; detail?: Record<string, unknown> };
    return err.code === 'COFFER_JOURNAL_OUT_OF_ORDER' && err.detail?.['reason'] === 'already-applied' && err.detail['expected'] === '2' && err.detail['found'] === '1';
  });
  const third = seal({ seq: 3n, predecessor: new Uint8Array(32) });
  assert.throws(() => openJournalEntry(third.entry, first), (e: unknown) => (e as { detail?: Record<string, unknown> }).detail?.['reason'] === 'skips-entries');
  // The right position after another history: a fork.
  throwsCode(() => openJournalEntry(sealed.entry, { ...first, predecessor: journalGenesis('cluster-other000000') }), 'COFFER_JOURNAL_FORK');
  const forkA = seal({ seq: 2n, predecessor: sealed.hash });
  throwsCode(() => openJournalEntry(forkA.entry, { ...first, seq: 2n, predecessor: seal().hash }), 'COFFER_JOURNAL_FORK');
});

test('authenticated contents that are not a cluster-wide change set are refused, a newer change-set version named', () => {
  const inputs = readVector(1).vector.inputs;
  const key = SecretBytes.copyOf(Buffer.from(inputs.syncKey, 'hex'));
  const expect: JournalExpectation = { syncKey: key, clusterId: CLUSTER, seq: 1n, predecessor: journalGenesis(CLUSTER) };
  const local = encodeChangeSet({ scope: 'local', kind: 'session.objects', ops: [{ op: 'delete', ns: 'session-object', id: '1' }] });
  throwsCode(() => openJournalEntry(specEntry(inputs, local).entry, expect), 'COFFER_FORMAT_MALFORMED', 'a local change set');
  throwsCode(() => openJournalEntry(specEntry(inputs, new TextEncoder().encode('not a change set')).entry, expect), 'COFFER_FORMAT_MALFORMED', 'not a change set');
  const garbled = encodeChangeSet(sampleChangeSet());
  garbled[12] = 0; // op count 0
  throwsCode(() => openJournalEntry(specEntry(inputs, garbled).entry, expect), 'COFFER_FORMAT_MALFORMED', 'a change set that does not decode');
  const newer = encodeChangeSet(sampleChangeSet());
  newer[5] = 2; // change set version 2
  throwsCode(() => openJournalEntry(specEntry(inputs, newer).entry, expect), 'COFFER_FORMAT_UNKNOWN_VERSION', 'a newer change set');
});

// ── limits ──────────────────────────────────────────────────────────────────────────────────────

test('limits: the largest change set fits an entry, an entry fits the metadata store, bad fields are refused before use', () => {
  assert.equal(sealedStreamLength(CHANGE_SET_BYTES_MAX, JOURNAL_SEGMENT_BYTES), JOURNAL_BODY_BYTES_MAX);
  assert.ok(JOURNAL_ENTRY_SEALED_BYTES_MAX <= METADATA_JOURNAL_ENTRY_BYTES_MAX);
  // A change set near the limit: eight maximal records.
  const big: ChangeSet = { scope: 'cluster', kind: 'key.import', ops: Array.from({ length: 8 }, (_, i): RecordOp => ({ op: 'put', ns: 'object', id: `${i}`, value: new Uint8Array(SEALED_RECORD_BYTES_MAX) })) };
  const sealed = seal({ cs: big });
  assert.ok(sealed.entry.length <= JOURNAL_ENTRY_SEALED_BYTES_MAX);
  assert.equal(openJournalEntry(sealed.entry, first).changeSet.ops.length, 8);
  // Header fields out of range, each with the AEAD never reached.
  const entry = readVector(1).entry;
  const withU16 = (at: number, n: number): Buffer => { const c = Buffer.from(entry); c.writeUInt16BE(n, at); return c; };
  const withU32 = (at: number, n: number): Buffer => { const c = Buffer.from(entry); c.writeUInt32BE(n, at); return c; };
  throwsCode(() => decodeJournalEntryHeader(withU16(8, JOURNAL_HEADER_BYTES_MAX + 1)), 'COFFER_JOURNAL_TAMPERED', 'header length over its limit');
  throwsCode(() => decodeJournalEntryHeader(withU16(8, 95)), 'COFFER_JOURNAL_TAMPERED', 'header length under the fixed fields');
  throwsCode(() => decodeJournalEntryHeader(withU32(90, JOURNAL_BODY_BYTES_MAX + 1)), 'COFFER_JOURNAL_TAMPERED', 'body length over its limit');
  throwsCode(() => decodeJournalEntryHeader(withU32(90, 15)), 'COFFER_JOURNAL_TAMPERED', 'body shorter than a tag');
  const zeroCluster = Buffer.from(entry);
  zeroCluster[94] = 0;
  throwsCode(() => decodeJournalEntryHeader(zeroCluster), 'COFFER_JOURNAL_TAMPERED', 'empty cluster id');
  const controlChar = Buffer.from(entry);
  controlChar[95] = 0x0a;
  throwsCode(() => decodeJournalEntryHeader(controlChar), 'COFFER_JOURNAL_TAMPERED', 'a cluster id that is not printable ASCII');
  throwsCode(() => decodeJournalEntryHeader(withU16(4, 2)), 'COFFER_FORMAT_UNKNOWN_VERSION');
  // What sealing refuses.
  throwsCode(() => seal({ cluster: 'c'.repeat(65) }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => seal({ cluster: 'cluster é' }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => seal({ seq: 0n }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => seal({ seq: 1n << 64n }), 'COFFER_FORMAT_LIMIT');
  seal({ seq: (1n << 64n) - 1n });
  throwsCode(() => journalGenesis(''), 'COFFER_FORMAT_LIMIT');
  assert.throws(() => seal({ cs: { scope: 'local', kind: 'session.objects', ops: [{ op: 'delete', ns: 'session-object', id: '1' }] } }), AssertionFailure);
});
