// Journal frames (src/formats/journal_frames.ts): round trip, and every truncation, a flipped
// header byte, trailing bytes and over-limit counts refused with their typed errors.

import assert from 'node:assert/strict';
import test from 'node:test';
import { isCofferError } from '../../src/errors.js';
import { decodeJournalFrames, encodeJournalFrames } from '../../src/formats/journal_frames.js';
import { JOURNAL_DELIVER_ENTRIES_MAX } from '../../src/formats/limits.js';

const FRAMES = [
  { seq: 1n, entry: new Uint8Array([1, 2, 3]) },
  { seq: 2n, entry: new Uint8Array(300).fill(9) },
  { seq: (1n << 53n) + 1n, entry: new Uint8Array([7]) },
];

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isCofferError(e), String(e));
    return e.code;
  }
  assert.fail('expected a refusal');
}

test('journal frames: round trip, with the layout written in the module header', () => {
  const body = encodeJournalFrames(FRAMES);
  assert.deepEqual(Buffer.from(body.subarray(0, 10)).toString('hex'), '43464a46' + '0001' + '00000003');
  assert.equal(body.length, 10 + 3 * 12 + 3 + 300 + 1);
  assert.deepEqual(decodeJournalFrames(body), FRAMES);
});

test('journal frames: every truncation, trailing bytes, a bad magic or version are refused', () => {
  const body = encodeJournalFrames(FRAMES);
  for (let n = 0; n < body.length; n++) {
    const code = refused(() => decodeJournalFrames(body.subarray(0, n)));
    assert.ok(['COFFER_FORMAT_TRUNCATED', 'COFFER_FORMAT_MALFORMED'].includes(code), `${n}: ${code}`);
  }
  assert.equal(refused(() => decodeJournalFrames(new Uint8Array([...body, 0]))), 'COFFER_FORMAT_MALFORMED');
  for (let i = 0; i < 4; i++) {
    const bad = body.slice();
    bad[i]! ^= 1;
    assert.equal(refused(() => decodeJournalFrames(bad)), 'COFFER_FORMAT_BAD_MAGIC');
  }
  const version = body.slice();
  version[5] = 2;
  assert.equal(refused(() => decodeJournalFrames(version)), 'COFFER_FORMAT_UNKNOWN_VERSION');
  const zeroSeq = body.slice();
  zeroSeq.fill(0, 10, 18);
  assert.equal(refused(() => decodeJournalFrames(zeroSeq)), 'COFFER_FORMAT_MALFORMED');
});

test('journal frames: counts and lengths are bounded before anything is read', () => {
  const body = encodeJournalFrames(FRAMES);
  const count = body.slice();
  new DataView(count.buffer).setUint32(6, JOURNAL_DELIVER_ENTRIES_MAX + 1);
  assert.equal(refused(() => decodeJournalFrames(count)), 'COFFER_FORMAT_LIMIT');
  const zero = body.slice();
  new DataView(zero.buffer).setUint32(6, 0);
  assert.equal(refused(() => decodeJournalFrames(zero)), 'COFFER_FORMAT_LIMIT');
  const length = body.slice();
  new DataView(length.buffer).setUint32(18, 0xffffffff);
  assert.equal(refused(() => decodeJournalFrames(length)), 'COFFER_FORMAT_LIMIT');
  assert.equal(refused(() => encodeJournalFrames([])), 'COFFER_FORMAT_LIMIT');
});
