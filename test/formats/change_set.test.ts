// Change set format v1 (src/formats/change_set.ts): a golden vector written out field by field from
// the layout, round trips, mutation (every byte flipped, every truncation, an extension), limits
// checked before the bytes behind them are read, and the state position record with its lineages
// recomputed from their definition.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import {
  CHANGE_KINDS, INITIAL_STATE_POSITION, decodeChangeSet, decodeStatePosition, encodeChangeSet, encodeStatePosition, nextStatePosition, wipeChangeSet,
  type ChangeSet,
} from '../../src/formats/change_set.js';
import { CHANGE_SET_OPS_MAX, SEALED_NAMESPACE_BYTES_MAX, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX } from '../../src/formats/limits.js';
import { throwsCode } from '../helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex'));

const GOLDEN: ChangeSet = {
  scope: 'cluster',
  kind: 'key.share',
  ops: [
    { op: 'put', ns: 'user', id: 'bob', value: Uint8Array.of(1, 2) },
    { op: 'delete', ns: 'object', id: '0000000000000001' },
  ],
};

// Version 1, written from the layout table in the module header, not from the encoder.
const GOLDEN_V1 = unhex(`
  43464353                       # magic CFCS
  0001                           # version 1
  01                             # scope: cluster-wide
  0008                           # kind: key.share
  00000002                       # two ops
  01 04 75736572 0003 626f62 00000002 0102            # put user/bob = 01 02
  02 06 6f626a656374 0010 30303030303030303030303030303031  # delete object/0000000000000001
`);

const plain = (cs: ChangeSet): unknown => ({ ...cs, ops: cs.ops.map((op) => (op.op === 'put' ? { ...op, value: hex(op.value) } : op)) });

test('golden vector v1: the encoder writes the layout byte for byte, and it decodes back', () => {
  assert.equal(hex(encodeChangeSet(GOLDEN)), hex(GOLDEN_V1));
  assert.deepEqual(plain(decodeChangeSet(GOLDEN_V1)), plain(GOLDEN));
});

test('round trip: every kind, both scopes, empty and large values, UTF-8 ids', () => {
  for (const kind of Object.keys(CHANGE_KINDS) as (keyof typeof CHANGE_KINDS)[]) {
    const cs: ChangeSet = {
      scope: kind.startsWith('device.') || kind === 'session.objects' ? 'local' : 'cluster',
      kind,
      ops: [
        { op: 'put', ns: 'n', id: 'clé ✓ 🔑', value: new Uint8Array(0) },
        { op: 'put', ns: 'x'.repeat(SEALED_NAMESPACE_BYTES_MAX), id: 'y'.repeat(SEALED_RECORD_ID_BYTES_MAX), value: new Uint8Array(70_000).fill(7) },
        { op: 'delete', ns: 'n', id: '\ufeffid' },
      ],
    };
    const bytes = encodeChangeSet(cs);
    const back = decodeChangeSet(bytes);
    assert.deepEqual(plain(back), plain(cs), kind);
    assert.equal(hex(encodeChangeSet(back)), hex(bytes), kind);
  }
});

test('decoded values are copies: wiping the encoding or the decoded set leaves the other intact', () => {
  const bytes = encodeChangeSet(GOLDEN);
  const cs = decodeChangeSet(bytes);
  bytes.fill(0);
  assert.deepEqual(plain(cs), plain(GOLDEN));
  wipeChangeSet(cs);
  const first = cs.ops[0];
  assert.ok(first?.op === 'put' && first.value.every((b) => b === 0), 'wipeChangeSet zeroises every value');
  assert.deepEqual(plain(decodeChangeSet(GOLDEN_V1)), plain(GOLDEN));
});

test('magic and version come first; a future version is named; other garbage is a typed error', () => {
  throwsCode(() => decodeChangeSet(new Uint8Array(0)), 'COFFER_FORMAT_BAD_MAGIC');
  throwsCode(() => decodeChangeSet(new TextEncoder().encode('COBJ')), 'COFFER_FORMAT_BAD_MAGIC');
  const v2 = GOLDEN_V1.slice();
  v2[5] = 2;
  assert.throws(() => decodeChangeSet(v2), (e: unknown) => isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') && e.detail.version === 2 && e.detail.supported === 1);
  const scope = GOLDEN_V1.slice();
  scope[6] = 3;
  throwsCode(() => decodeChangeSet(scope), 'COFFER_FORMAT_MALFORMED');
  const kind = GOLDEN_V1.slice();
  kind.set([0x7f, 0xff], 7);
  throwsCode(() => decodeChangeSet(kind), 'COFFER_FORMAT_MALFORMED');
  const op = GOLDEN_V1.slice();
  op[13] = 3;
  throwsCode(() => decodeChangeSet(op), 'COFFER_FORMAT_MALFORMED');
});

test('every truncation is refused as truncated; any extension as malformed', () => {
  for (let n = 4; n < GOLDEN_V1.length; n++) throwsCode(() => decodeChangeSet(GOLDEN_V1.subarray(0, n)), 'COFFER_FORMAT_TRUNCATED', `cut at ${n}`);
  throwsCode(() => decodeChangeSet(Uint8Array.of(...GOLDEN_V1, 0)), 'COFFER_FORMAT_MALFORMED');
});

test('every single-byte flip is refused with a typed error, or decodes to a set that re-encodes to exactly those bytes', () => {
  let refused = 0;
  for (let i = 0; i < GOLDEN_V1.length; i++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const m = GOLDEN_V1.slice();
      m[i] = (m[i] ?? 0) ^ mask;
      let cs: ChangeSet;
      try {
        cs = decodeChangeSet(m);
      } catch (e) {
        assert.ok(isCofferError(e) && e.code.startsWith('COFFER_FORMAT_'), `offset ${i} mask ${mask}: ${String(e)}`);
        refused++;
        continue;
      }
      assert.equal(hex(encodeChangeSet(cs)), hex(m), `offset ${i} mask ${mask}`);
    }
  }
  assert.ok(refused > GOLDEN_V1.length, `most structural mutations are refused (${refused})`);
});

test('lengths are checked against their limits before the bytes behind them are read', () => {
  const count = GOLDEN_V1.slice(0, 13);
  new DataView(count.buffer).setUint32(9, CHANGE_SET_OPS_MAX + 1);
  throwsCode(() => decodeChangeSet(count), 'COFFER_FORMAT_LIMIT'); // no op bytes follow: the count alone is refused
  new DataView(count.buffer).setUint32(9, 0);
  throwsCode(() => decodeChangeSet(count), 'COFFER_FORMAT_LIMIT');
  const ns = Uint8Array.of(...GOLDEN_V1.subarray(0, 13), 1, SEALED_NAMESPACE_BYTES_MAX + 1);
  throwsCode(() => decodeChangeSet(ns), 'COFFER_FORMAT_LIMIT');
  const id = Uint8Array.of(...GOLDEN_V1.subarray(0, 13), 1, 1, 0x6e, 0xff, 0xff);
  throwsCode(() => decodeChangeSet(id), 'COFFER_FORMAT_LIMIT');
  const value = Uint8Array.of(...GOLDEN_V1.subarray(0, 13), 1, 1, 0x6e, 0, 1, 0x69, 0xff, 0xff, 0xff, 0xff);
  throwsCode(() => decodeChangeSet(value), 'COFFER_FORMAT_LIMIT');
  const badUtf8 = Uint8Array.of(...GOLDEN_V1.subarray(0, 13), 2, 1, 0xff, 0, 1, 0x69);
  throwsCode(() => decodeChangeSet(badUtf8), 'COFFER_FORMAT_MALFORMED');
});

test('the encoder refuses what the decoder would refuse', () => {
  throwsCode(() => encodeChangeSet({ scope: 'cluster', kind: 'key.share', ops: [] }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeChangeSet({ scope: 'cluster', kind: 'key.share', ops: [{ op: 'delete', ns: '', id: 'x' }] }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeChangeSet({ scope: 'cluster', kind: 'key.share', ops: [{ op: 'delete', ns: 'n', id: 'y'.repeat(SEALED_RECORD_ID_BYTES_MAX + 1) }] }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeChangeSet({ scope: 'cluster', kind: 'key.share', ops: [{ op: 'delete', ns: 'n', id: '\ud800' }] }), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeChangeSet({ scope: 'cluster', kind: 'key.share', ops: [{ op: 'put', ns: 'n', id: 'i', value: new Uint8Array(SEALED_RECORD_BYTES_MAX + 1) }] }), 'COFFER_FORMAT_LIMIT');
  const nine = Array.from({ length: 9 }, (_, i) => ({ op: 'put' as const, ns: 'n', id: `i${i}`, value: new Uint8Array(SEALED_RECORD_BYTES_MAX) }));
  throwsCode(() => encodeChangeSet({ scope: 'cluster', kind: 'key.share', ops: nine }), 'COFFER_FORMAT_LIMIT');
});

test('state position: u16 version ‖ u64 ‖ lineage ‖ object lineage ‖ journal head (v2; v1 still read); each lineage recomputed from its definition', () => {
  const encoded = encodeChangeSet(GOLDEN);
  const sha = (...parts: (string | Uint8Array)[]): Uint8Array => {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
  const entry = sha(encoded);
  const p1 = nextStatePosition(INITIAL_STATE_POSITION, encoded, true);
  assert.equal(p1.position, 1n);
  assert.equal(hex(p1.lineage), hex(sha('coffer state lineage v1\0', new Uint8Array(32), entry)));
  assert.equal(hex(p1.objectLineage), hex(sha('coffer object lineage v1\0', new Uint8Array(32), entry)));
  const p2 = nextStatePosition(p1, encoded, false);
  assert.equal(p2.position, 2n);
  assert.equal(hex(p2.lineage), hex(sha('coffer state lineage v1\0', p1.lineage, entry)));
  assert.equal(hex(p2.objectLineage), hex(p1.objectLineage), 'a change set that touches no object leaves the object lineage');
  assert.equal(p2.journal.seq, 0n, 'a change set applied outside the journal leaves the journal head');
  // Version 1 (stores and backups written before the journal head): still read, head at seq 0.
  const v1 = Buffer.from('0001' + '0000000000000002' + hex(p2.lineage) + hex(p2.objectLineage), 'hex');
  const back = decodeStatePosition(new Uint8Array(v1));
  assert.equal(back.position, 2n);
  assert.equal(hex(back.lineage), hex(p2.lineage));
  assert.equal(hex(back.objectLineage), hex(p2.objectLineage));
  assert.equal(back.journal.seq, 0n);
  assert.equal(hex(back.journal.hash), '00'.repeat(32));
  throwsCode(() => decodeStatePosition(new Uint8Array(v1.subarray(0, v1.length - 1))), 'COFFER_FORMAT_MALFORMED');
  // Version 2: the journal head after the lineages.
  const entryHash = sha('an entry');
  const p3 = nextStatePosition(p2, encoded, true, { seq: 1n, hash: entryHash });
  assert.equal(p3.position, 3n);
  assert.equal(p3.journal.seq, 1n);
  const bytes = encodeStatePosition(p3);
  assert.equal(hex(bytes), '0002' + '0000000000000003' + hex(p3.lineage) + hex(p3.objectLineage) + '0000000000000001' + hex(entryHash));
  const back3 = decodeStatePosition(bytes);
  assert.equal(back3.journal.seq, 1n);
  assert.equal(hex(back3.journal.hash), hex(entryHash));
  assert.equal(hex(back3.objectLineage), hex(p3.objectLineage));
  throwsCode(() => decodeStatePosition(bytes.subarray(0, bytes.length - 1)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeStatePosition(bytes.subarray(0, 74)), 'COFFER_FORMAT_MALFORMED');
  const zeroHead = encodeStatePosition(p2).slice();
  zeroHead[100] = 1; // seq 0 with a hash: not a head any encoder writes
  throwsCode(() => decodeStatePosition(zeroHead), 'COFFER_FORMAT_MALFORMED');
  const v3 = bytes.slice();
  v3[1] = 3;
  throwsCode(() => decodeStatePosition(v3), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => nextStatePosition({ ...p2, position: 2n ** 64n - 1n }, encoded, true), 'COFFER_FORMAT_LIMIT');
  assert.throws(() => nextStatePosition(p3, encoded, true, { seq: 3n, hash: entryHash }), /one entry at a time/);
});
