// Journal frames: the binary body of POST /v1/journal/entries (docs/node.md "Journal endpoints"), a
// run of sealed journal entries, each with the position the control plane says it holds. The
// entries are opaque here: the node hands them to the device, which opens and checks every one
// (docs/journal-format.md "Opening"); this codec only bounds and splits the body.
//
// Layout (integers unsigned big-endian):
//
//   offset  bytes  field
//        0      4  magic `CFJF`
//        4      2  version = 1
//        6      4  count n, 1 ≤ n ≤ JOURNAL_DELIVER_ENTRIES_MAX
//       10         n frames: seq (8, ≥ 1) ‖ entry length L (4, 1 ≤ L ≤ JOURNAL_ENTRY_SEALED_BYTES_MAX) ‖ entry (L)
//
// Nothing may follow the last frame. Every length is checked before what it covers is read; the whole
// body is bounded by MANAGEMENT_JOURNAL_BODY_BYTES_MAX before it is buffered (the node's reader).

import { fail } from '../errors.js';
import { JOURNAL_DELIVER_ENTRIES_MAX, JOURNAL_ENTRY_SEALED_BYTES_MAX, MANAGEMENT_JOURNAL_BODY_BYTES_MAX } from './limits.js';

export const JOURNAL_FRAMES_MAGIC: readonly number[] = [0x43, 0x46, 0x4a, 0x46]; // 'CFJF'
export const JOURNAL_FRAMES_VERSION = 1;
const HEADER_BYTES = 10;
const FRAME_HEADER_BYTES = 12;
const U64_MAX = (1n << 64n) - 1n;

/** One entry and the position it is delivered at. */
export interface JournalFrame {
  readonly seq: bigint;
  readonly entry: Uint8Array;
}

/** The encoded size of `frames` (the relay fills a request up to MANAGEMENT_JOURNAL_BODY_BYTES_MAX). */
export function journalFramesBytes(frames: readonly JournalFrame[]): number {
  return frames.reduce((n, f) => n + FRAME_HEADER_BYTES + f.entry.length, HEADER_BYTES);
}

export function encodeJournalFrames(frames: readonly JournalFrame[]): Uint8Array {
  if (frames.length === 0 || frames.length > JOURNAL_DELIVER_ENTRIES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'entries', max: JOURNAL_DELIVER_ENTRIES_MAX });
  const total = journalFramesBytes(frames);
  if (total > MANAGEMENT_JOURNAL_BODY_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'journalFrames', bytesMax: MANAGEMENT_JOURNAL_BODY_BYTES_MAX });
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(JOURNAL_FRAMES_MAGIC, 0);
  view.setUint16(4, JOURNAL_FRAMES_VERSION);
  view.setUint32(6, frames.length);
  let at = HEADER_BYTES;
  for (const { seq, entry } of frames) {
    if (seq < 1n || seq > U64_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'seq' });
    if (entry.length === 0 || entry.length > JOURNAL_ENTRY_SEALED_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'entry', bytesMax: JOURNAL_ENTRY_SEALED_BYTES_MAX });
    view.setBigUint64(at, seq);
    view.setUint32(at + 8, entry.length);
    out.set(entry, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + entry.length;
  }
  return out;
}

/** Splits a body into frames (copies of the entries), or refuses it with a typed error. */
export function decodeJournalFrames(body: Uint8Array): JournalFrame[] {
  if (body.length > MANAGEMENT_JOURNAL_BODY_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'journalFrames', bytesMax: MANAGEMENT_JOURNAL_BODY_BYTES_MAX });
  if (body.length < HEADER_BYTES) fail('COFFER_FORMAT_TRUNCATED', { field: 'journalFrames' });
  if (JOURNAL_FRAMES_MAGIC.some((b, i) => body[i] !== b)) fail('COFFER_FORMAT_BAD_MAGIC', { format: 'journal-frames' });
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const version = view.getUint16(4);
  if (version !== JOURNAL_FRAMES_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'journal-frames', found: version, supported: JOURNAL_FRAMES_VERSION });
  const count = view.getUint32(6);
  if (count === 0 || count > JOURNAL_DELIVER_ENTRIES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'entries', max: JOURNAL_DELIVER_ENTRIES_MAX });
  const frames: JournalFrame[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (body.length - at < FRAME_HEADER_BYTES) fail('COFFER_FORMAT_TRUNCATED', { field: 'frame', index: i });
    const seq = view.getBigUint64(at);
    const length = view.getUint32(at + 8);
    if (seq < 1n) fail('COFFER_FORMAT_MALFORMED', { field: 'seq', index: i });
    if (length === 0 || length > JOURNAL_ENTRY_SEALED_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'entry', index: i, bytesMax: JOURNAL_ENTRY_SEALED_BYTES_MAX });
    if (body.length - at - FRAME_HEADER_BYTES < length) fail('COFFER_FORMAT_TRUNCATED', { field: 'entry', index: i });
    frames.push({ seq, entry: body.slice(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length) });
    at += FRAME_HEADER_BYTES + length;
  }
  if (at !== body.length) fail('COFFER_FORMAT_MALFORMED', { field: 'journalFrames', reason: 'trailing-bytes' });
  return frames;
}
