// The p11-kit stream decoder (rpc_transport.ts): the version byte, then frames whatever the chunking,
// sizes checked at the header before anything is buffered, and a dead stream after a framing error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamDecoder, encodeFrame, negotiateVersion, type Incoming } from '../../src/pkcs11/rpc_transport.js';
import { P11_FRAME_BODY_BYTES_MAX, P11_FRAME_OPTIONS_BYTES_MAX } from '../../src/pkcs11/limits.js';
import { throwsCode } from '../helpers.js';

function drain(d: StreamDecoder): Incoming[] {
  const out: Incoming[] = [];
  for (let i = d.next(); i !== undefined; i = d.next()) out.push(i);
  return out;
}

test('version byte then frames, split at every point', () => {
  const stream = Uint8Array.from([2, ...encodeFrame(0x10, Uint8Array.of(1, 2, 3), Uint8Array.of(9)), ...encodeFrame(0x11, new Uint8Array(0))]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new StreamDecoder();
    d.push(stream.subarray(0, cut));
    const items = drain(d);
    d.push(stream.subarray(cut));
    items.push(...drain(d));
    assert.deepEqual(items, [
      { kind: 'version', offered: 2 },
      { kind: 'frame', frame: { code: 0x10, options: Uint8Array.of(9), body: Uint8Array.of(1, 2, 3) } },
      { kind: 'frame', frame: { code: 0x11, options: new Uint8Array(0), body: new Uint8Array(0) } },
    ]);
    assert.equal(d.bufferedBytes, 0);
    assert.equal(d.midFrame, false);
  }
});

test('frames whole in one chunk, several in a chunk, and one byte at a time decode alike', () => {
  const frames = [encodeFrame(0x10, Uint8Array.of(1, 2, 3), Uint8Array.of(9)), encodeFrame(0x11, new Uint8Array(0)), encodeFrame(0x12, new Uint8Array(300).fill(5), Uint8Array.of(7, 7))];
  const expected = [
    { kind: 'version', offered: 1 },
    { kind: 'frame', frame: { code: 0x10, options: Uint8Array.of(9), body: Uint8Array.of(1, 2, 3) } },
    { kind: 'frame', frame: { code: 0x11, options: new Uint8Array(0), body: new Uint8Array(0) } },
    { kind: 'frame', frame: { code: 0x12, options: Uint8Array.of(7, 7), body: new Uint8Array(300).fill(5) } },
  ];
  const stream = Uint8Array.from([1, ...frames.flatMap((f) => [...f])]);
  const whole = new StreamDecoder();
  whole.push(stream);
  assert.deepEqual(drain(whole), expected);
  const bytes = new StreamDecoder();
  const items: Incoming[] = [];
  for (const b of stream) {
    bytes.push(Uint8Array.of(b));
    items.push(...drain(bytes));
  }
  assert.deepEqual(items, expected);
  assert.equal(bytes.bufferedBytes, 0);
  // A view of a Buffer chunk is still a plain Uint8Array (Buffer's slice() would not copy).
  const fromBuffer = new StreamDecoder();
  fromBuffer.push(Buffer.from(stream));
  assert.deepEqual(drain(fromBuffer), expected);
});

test('oversize lengths and code 0 are refused at the header, and the stream stays dead', () => {
  const header = (code: number, opt: number, body: number) => {
    const h = new Uint8Array(12);
    const v = new DataView(h.buffer);
    v.setUint32(0, code);
    v.setUint32(4, opt);
    v.setUint32(8, body);
    return h;
  };
  for (const h of [header(0x10, 0, P11_FRAME_BODY_BYTES_MAX + 1), header(0x10, P11_FRAME_OPTIONS_BYTES_MAX + 1, 0), header(0, 0, 0), header(0x10, 0, 0xffff_ffff)]) {
    const d = new StreamDecoder(true);
    d.push(h);
    throwsCode(() => d.next(), 'COFFER_P11_FRAME_INVALID');
    assert.ok(d.bufferedBytes <= 12, 'nothing of the claimed body was allocated or buffered');
    throwsCode(() => d.next(), 'COFFER_P11_FRAME_INVALID');
  }
  const d = new StreamDecoder(true);
  d.push(header(0x10, 0, P11_FRAME_BODY_BYTES_MAX));
  assert.equal(d.next(), undefined, 'a body at the limit is accepted and awaited');
  assert.equal(d.midFrame, true);
});

test('negotiation: the smaller of the offer and version 2', () => {
  assert.deepEqual([0, 1, 2, 3, 255].map(negotiateVersion), [0, 1, 2, 2, 2]);
});
