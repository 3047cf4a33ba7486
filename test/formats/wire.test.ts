// Data-plane wire protocol v1 (docs/wire-protocol.md): round trips of every operation and mechanism,
// a golden frame, the streaming decoder at every split, limits, garbage and version negotiation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CofferError } from '../../src/errors.js';
import {
  BOOLEAN_ATTRIBUTES, FRAME_HEADER_BYTES, FrameCoalescer, FrameDecoder, FrameKind, MECHANISM_CODES, OPS, decodeReply, decodeRequest, encodeBusy, encodeError,
  encodeFrame, encodeRequest, encodeResponse, negotiateVersion, type Frame, type OpName,
} from '../../src/formats/wire.js';
import { WIRE_FRAME_BYTES_MAX, WIRE_RETRY_AFTER_MS_MAX } from '../../src/formats/limits.js';
import { MECHANISM_SAMPLES, OP_SAMPLES } from './wire_samples.js';
import { throwsCode } from '../helpers.js';

const names = Object.keys(OPS) as OpName[];

function one(bytes: Uint8Array): Frame {
  const frames = new FrameDecoder().push(bytes);
  assert.equal(frames.length, 1);
  return frames[0] as Frame;
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('every operation: request and response round-trip through frames, bytes re-encode identically', () => {
  for (const name of names) {
    const { request, response } = OP_SAMPLES[name];
    const reqBytes = encodeRequest(7, name, request as never);
    const req = decodeRequest(one(reqBytes));
    assert.equal(req.name, name);
    assert.deepEqual(req.request, request, name);
    assert.equal(hex(encodeRequest(7, name, req.request as never)), hex(reqBytes));
    const resBytes = encodeResponse(0xffff_ffff, name, response as never);
    const frame = one(resBytes);
    assert.equal(frame.requestId, 0xffff_ffff);
    const reply = decodeReply(name, frame);
    assert.equal(reply.kind, 'response');
    assert.deepEqual(reply.kind === 'response' && reply.response, response, name);
  }
});

test('op codes are unique u16 values and every op has a sample', () => {
  const codes = names.map((n) => OPS[n].code);
  assert.equal(new Set(codes).size, codes.length);
  for (const c of codes) assert.ok(c > 0 && c <= 0xffff);
});

test('every mechanism parameter variant round-trips inside a SIGN request', () => {
  assert.equal(Object.keys(MECHANISM_SAMPLES).length, MECHANISM_CODES.size);
  for (const params of Object.values(MECHANISM_SAMPLES)) {
    const request = { session: 3, handle: 9, params, data: new Uint8Array([1, 2]) };
    const decoded = decodeRequest(one(encodeRequest(1, 'SIGN', request)));
    assert.deepEqual(decoded.request, request, params.mechanism);
  }
  // absent optional fields stay absent (exactOptionalPropertyTypes)
  const gcm = decodeRequest(one(encodeRequest(1, 'ENCRYPT', { session: 1, handle: 1, params: { mechanism: 'CKM_AES_GCM' }, data: new Uint8Array(0) })));
  assert.deepEqual(gcm.name === 'ENCRYPT' && Object.keys(gcm.request.params), ['mechanism']);
});

test('golden frame: SIGN with CKM_ECDSA_SHA256 (the layout of docs/wire-protocol.md)', () => {
  const bytes = encodeRequest(0x01020304, 'SIGN', { session: 5, handle: 0x42, params: { mechanism: 'CKM_ECDSA_SHA256' }, data: new Uint8Array([0xaa, 0xbb]) });
  // length 7+20 ‖ kind 1 ‖ request id ‖ op 0x0050 ‖ session ‖ handle ‖ mechanism 0x0303 ‖ data len 2 ‖ data
  assert.equal(hex(bytes), '0000001b' + '01' + '01020304' + '0050' + '00000005' + '0000000000000042' + '0303' + '00000002' + 'aabb');
  const busy = encodeBusy(9, OPS.SIGN.code, 250);
  assert.equal(hex(busy), '0000000b' + '04' + '00000009' + '0050' + '000000fa');
});

test('error replies carry the stable code and detail; unknown codes are refused', () => {
  const err = new CofferError('COFFER_OBJECT_NOT_FOUND', { handle: 12, retry: false, where: 'x' });
  const reply = decodeReply('GET_ATTRIBUTES', one(encodeError(3, OPS.GET_ATTRIBUTES.code, err)));
  assert.ok(reply.kind === 'error');
  assert.equal(reply.error.code, 'COFFER_OBJECT_NOT_FOUND');
  assert.deepEqual(reply.error.detail, { handle: 12, retry: false, where: 'x' });
  assert.equal(reply.error.message, err.message);
  const forged = encodeFrame(FrameKind.ERROR, 3, OPS.SIGN.code, new Uint8Array([0, 10, ...Buffer.from('NOT_A_CODE'), 0, 0]));
  throwsCode(() => decodeReply('SIGN', one(forged)), 'COFFER_FORMAT_MALFORMED');
});

test('busy replies carry the retry hint, bounded by WIRE_RETRY_AFTER_MS_MAX', () => {
  const reply = decodeReply('SIGN', one(encodeBusy(1, OPS.SIGN.code, 1500)));
  assert.deepEqual(reply, { kind: 'busy', retryAfterMs: 1500 });
  throwsCode(() => decodeReply('SIGN', one(encodeBusy(1, OPS.SIGN.code, WIRE_RETRY_AFTER_MS_MAX + 1))), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => decodeReply('VERIFY', one(encodeBusy(1, OPS.SIGN.code, 1))), 'COFFER_FORMAT_MALFORMED'); // op mismatch
  throwsCode(() => decodeReply('SIGN', one(encodeRequest(1, 'SIGN', OP_SAMPLES.SIGN.request))), 'COFFER_FORMAT_MALFORMED');
});

test('version negotiation: HELLO picks the highest common version or refuses', () => {
  assert.equal(negotiateVersion({ versionMin: 1, versionMax: 1 }).version, 1);
  assert.equal(negotiateVersion({ versionMin: 1, versionMax: 9 }).version, 1);
  assert.equal(negotiateVersion({ versionMin: 1, versionMax: 1 }).frameBytesMax, WIRE_FRAME_BYTES_MAX);
  throwsCode(() => negotiateVersion({ versionMin: 2, versionMax: 3 }), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => negotiateVersion({ versionMin: 0, versionMax: 0 }), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => negotiateVersion({ versionMin: 1, versionMax: 0 }), 'COFFER_FORMAT_UNKNOWN_VERSION');
});

test('unknown op codes, unknown mechanisms, bad enumerations and trailing bytes are typed errors', () => {
  throwsCode(() => decodeRequest(one(encodeFrame(FrameKind.REQUEST, 1, 0x7fff, new Uint8Array(0)))), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeRequest(one(encodeFrame(FrameKind.RESPONSE, 1, OPS.STATUS.code, new Uint8Array(0)))), 'COFFER_FORMAT_MALFORMED');
  const sign = encodeRequest(1, 'SIGN', { session: 1, handle: 1, params: { mechanism: 'CKM_ECDSA' }, data: new Uint8Array(1) });
  const badMech = sign.slice();
  badMech.set([0x09, 0x99], FRAME_HEADER_BYTES + 12); // after session u32 and handle u64
  throwsCode(() => decodeRequest(one(badMech)), 'COFFER_MECHANISM_INVALID');
  const trailing = encodeFrame(FrameKind.REQUEST, 1, OPS.SIGN.code, new Uint8Array([...sign.subarray(FRAME_HEADER_BYTES), 0]));
  throwsCode(() => decodeRequest(one(trailing)), 'COFFER_FORMAT_MALFORMED');
  const truncated = encodeFrame(FrameKind.REQUEST, 1, OPS.SIGN.code, sign.subarray(FRAME_HEADER_BYTES, sign.length - 1));
  throwsCode(() => decodeRequest(one(truncated)), 'COFFER_FORMAT_TRUNCATED');
  const badRole = encodeFrame(FrameKind.REQUEST, 1, OPS.CREATE_USER.code, new Uint8Array([0, 0, 0, 1, 0, 1, 0x61, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 2]));
  throwsCode(() => decodeRequest(one(badRole)), 'COFFER_FORMAT_MALFORMED');
  const badBool = encodeFrame(FrameKind.REQUEST, 1, OPS.LOGIN.code, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2]));
  throwsCode(() => decodeRequest(one(badBool)), 'COFFER_FORMAT_MALFORMED');
  const badUtf8 = encodeFrame(FrameKind.REQUEST, 1, OPS.DELETE_USER.code, new Uint8Array([0, 0, 0, 1, 0, 2, 0xc3, 0x28]));
  throwsCode(() => decodeRequest(one(badUtf8)), 'COFFER_FORMAT_MALFORMED');
  const longName = encodeFrame(FrameKind.REQUEST, 1, OPS.DELETE_USER.code, new Uint8Array([0, 0, 0, 1, 0xff, 0xff]));
  throwsCode(() => decodeRequest(one(longName)), 'COFFER_FORMAT_LIMIT');
  const attrBits = encodeResponse(1, 'GET_ATTRIBUTES', OP_SAMPLES.GET_ATTRIBUTES.response).slice();
  // after the mask: kcv (4+3), owner (2+5), sharees (2 + 2+3 + 2+5), two quorum values (1+1)
  const maskAt = attrBits.length - (7 + 7 + 14 + 2) - 4;
  const attrs = OP_SAMPLES.GET_ATTRIBUTES.response.attributes;
  const mask = BOOLEAN_ATTRIBUTES.reduce((m, n, i) => (attrs[n] ? m + 2 ** i : m), 0);
  assert.equal(Buffer.from(attrBits).readUInt32BE(maskAt), mask); // the offset really is the mask
  attrBits[maskAt] = 0x80; // a bit above the 17 defined attributes
  throwsCode(() => decodeReply('GET_ATTRIBUTES', one(attrBits)), 'COFFER_FORMAT_MALFORMED');
});

test('encoders refuse values beyond their limits and stay usable afterwards', () => {
  throwsCode(() => encodeRequest(1, 'DELETE_USER', { session: 1, name: 'x'.repeat(200) }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeRequest(1, 'SIGN_BATCH', { session: 1, items: new Array(1025).fill(OP_SAMPLES.SIGN.request) }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeRequest(1, 'SIGN', { session: 1, handle: 1, params: { mechanism: 'CKM_NOPE' } as never, data: new Uint8Array(0) }), 'COFFER_MECHANISM_INVALID');
  // Integers outside their field are refused, never wrapped into another value (a 2^53 handle
  // must not become a neighbour; a 2^40 session number must not become session 0).
  throwsCode(() => encodeRequest(1, 'DESTROY', { session: 1, handle: 2 ** 53 }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeRequest(1, 'DESTROY', { session: 2 ** 40, handle: 1 }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeRequest(1, 'DESTROY', { session: -1, handle: 5 }), 'COFFER_FORMAT_LIMIT');
  throwsCode(() => encodeRequest(1, 'DESTROY', { session: 1, handle: 1.5 }), 'COFFER_FORMAT_LIMIT');
  const again = decodeRequest(one(encodeRequest(2, 'LOGOUT', { session: 4 })));
  assert.deepEqual(again, { name: 'LOGOUT', request: { session: 4 } });
});

test('secret fields decode into their own buffers; other bytes are views into the frame', () => {
  const bytes = encodeRequest(1, 'LOGIN', OP_SAMPLES.LOGIN.request);
  const frame = one(bytes);
  const login = decodeRequest(frame);
  assert.ok(login.name === 'LOGIN');
  assert.notEqual(login.request.password.buffer, bytes.buffer);
  const sign = decodeRequest(one(encodeRequest(1, 'SIGN', OP_SAMPLES.SIGN.request)));
  assert.ok(sign.name === 'SIGN');
  assert.equal(sign.request.data.byteLength, 32);
});

function stream(): { bytes: Uint8Array; count: number } {
  const parts = [
    encodeRequest(1, 'HELLO', { versionMin: 1, versionMax: 1 }),
    encodeRequest(2, 'SIGN', OP_SAMPLES.SIGN.request),
    encodeResponse(3, 'STATUS', OP_SAMPLES.STATUS.response),
    encodeFrame(FrameKind.REQUEST, 4, OPS.STATUS.code, new Uint8Array(0)),
    encodeBusy(5, OPS.SIGN.code, 10),
  ];
  return { bytes: Buffer.concat(parts), count: parts.length };
}

function collect(decoder: FrameDecoder, pieces: Uint8Array[]): string[] {
  return pieces.flatMap((p) => decoder.push(p)).map((f) => `${f.kind}/${f.requestId}/${f.op}/${hex(f.payload)}`);
}

test('decoder: the same frames at every split position (two and three pieces, and byte by byte)', () => {
  const { bytes, count } = stream();
  const whole = collect(new FrameDecoder(), [bytes]);
  assert.equal(whole.length, count);
  for (const f of new FrameDecoder().push(bytes)) assert.equal(f.payload.buffer, bytes.buffer); // views, no copy
  for (let i = 0; i <= bytes.length; i++) {
    assert.deepEqual(collect(new FrameDecoder(), [bytes.subarray(0, i), bytes.subarray(i)]), whole, `split ${i}`);
  }
  for (let i = 0; i <= bytes.length; i += 3) {
    for (let j = i; j <= bytes.length; j += 2) {
      assert.deepEqual(collect(new FrameDecoder(), [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]), whole, `split ${i},${j}`);
    }
  }
  const d = new FrameDecoder();
  assert.deepEqual(collect(d, Array.from(bytes, (b) => new Uint8Array([b]))), whole);
  assert.equal(d.bufferedBytes, 0);
});

test('decoder: a truncated frame waits, buffering only what arrived', () => {
  const bytes = encodeRequest(9, 'SIGN', OP_SAMPLES.SIGN.request);
  const d = new FrameDecoder();
  assert.deepEqual(d.push(bytes.subarray(0, 2)), []);
  assert.equal(d.bufferedBytes, 2);
  assert.deepEqual(d.push(bytes.subarray(2, 20)), []);
  assert.equal(d.bufferedBytes, 20);
  const frames = d.push(bytes.subarray(20));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]?.requestId, 9);
});

/** The 4-byte length prefix of a frame whose length field says `length`. */
const prefix = (length: number): number[] => [length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff];

test('decoder: a declared maximal frame holds only the bytes that came, however they are cut, and decodes whole', () => {
  const data = new Uint8Array(WIRE_FRAME_BYTES_MAX - 1024 * 1024).map((_, i) => i * 7);
  const bytes = encodeRequest(5, 'ENCRYPT', { session: 1, handle: 2, params: { mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16) }, data });
  assert.ok(bytes.length > 16 * 1024 * 1024, 'a frame near the limit');
  const d = new FrameDecoder();
  assert.deepEqual(d.push(bytes.slice(0, 10)), []);
  assert.equal(d.bufferedBytes, 10, 'ten bytes sent, ten bytes held');
  // What is allocated, not only what is reported: eight more decoders in the same state.
  const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
  const stalled = Array.from({ length: 8 }, () => new FrameDecoder());
  for (const x of stalled) x.push(bytes.slice(0, 10));
  const grewBytes = process.memoryUsage().arrayBuffers - arrayBuffersBefore;
  assert.ok(grewBytes < 1024 * 1024, `8 peers that declared ${bytes.length} bytes and sent 10 made the decoders allocate ${grewBytes} bytes`);
  assert.equal(stalled.reduce((n, x) => n + x.bufferedBytes, 0), 80);
  let off = 10;
  // socket-like chunks (each its own buffer) of varied sizes, some tiny, some large
  for (let i = 0; off < bytes.length - 1; i++) {
    const size = Math.min(bytes.length - 1 - off, [1, 3, 700, 16 * 1024, 65_536, 5000][i % 6] as number);
    assert.deepEqual(d.push(bytes.slice(off, off + size)), []);
    off += size;
    assert.ok(d.bufferedBytes <= 2 * off, `held ${d.bufferedBytes} for ${off} bytes received`);
    assert.ok(d.bufferedBytes >= off, 'every byte received is accounted for');
  }
  const frames = d.push(bytes.slice(off));
  assert.equal(frames.length, 1);
  assert.equal(d.bufferedBytes, 0);
  const req = decodeRequest(frames[0] as Frame);
  assert.equal(req.name, 'ENCRYPT');
  assert.equal(hex((req.request as { data: Uint8Array }).data.subarray(-64)), hex(data.subarray(-64)));
  assert.ok(Buffer.compare((req.request as { data: Uint8Array }).data, data) === 0, 'the frame was assembled in order');
});

test('decoder: a small piece of a large buffer is copied, not kept as a view that pins the buffer', () => {
  const frame = encodeRequest(1, 'RANDOM', { session: 1, length: 16 });
  const big = new Uint8Array(1024 * 1024);
  big.set(frame.subarray(0, 8), big.length - 8); // the frame starts at the very end of a 1 MiB read
  const d = new FrameDecoder();
  assert.deepEqual(d.push(big.subarray(big.length - 8)), []);
  assert.equal(d.bufferedBytes, 8);
  big.fill(0); // the caller's buffer is not referenced any more
  const frames = d.push(frame.slice(8));
  assert.equal(frames.length, 1);
  assert.equal(hex((frames[0] as Frame).payload), hex(frame.subarray(FRAME_HEADER_BYTES)));
});

test('decoder: an unknown kind is refused as soon as its byte arrives, also when the length came alone', () => {
  const d = new FrameDecoder();
  assert.deepEqual(d.push(new Uint8Array(prefix(WIRE_FRAME_BYTES_MAX - 4))), []);
  throwsCode(() => d.push(new Uint8Array([0x77])), 'COFFER_FORMAT_MALFORMED');
  assert.equal(d.bufferedBytes, 0, 'nothing of the refused frame is kept');
  const split = new FrameDecoder();
  assert.deepEqual(split.push(new Uint8Array(prefix(100).slice(0, 2))), []);
  throwsCode(() => split.push(new Uint8Array([...prefix(100).slice(2), 0])), 'COFFER_FORMAT_MALFORMED'); // kind 0
});

test('decoder: an oversize length is refused from its 4 bytes, before anything is buffered', () => {
  const over = WIRE_FRAME_BYTES_MAX - 4 + 1;
  const d = new FrameDecoder();
  throwsCode(() => d.push(new Uint8Array([over >>> 24, (over >>> 16) & 0xff, (over >>> 8) & 0xff, over & 0xff])), 'COFFER_FORMAT_LIMIT');
  assert.equal(d.bufferedBytes, 0);
  const split = new FrameDecoder();
  assert.deepEqual(split.push(new Uint8Array([0xff, 0xff])), []);
  throwsCode(() => split.push(new Uint8Array([0xff, 0xff])), 'COFFER_FORMAT_LIMIT');
  // exactly the limit is accepted (and waits for its body)
  const at = WIRE_FRAME_BYTES_MAX - 4;
  const ok = new FrameDecoder();
  assert.deepEqual(ok.push(new Uint8Array([at >>> 24, (at >>> 16) & 0xff, (at >>> 8) & 0xff, at & 0xff, 1])), []);
});

test('decoder: garbage is refused and the decoder stays dead', () => {
  const d = new FrameDecoder();
  throwsCode(() => d.push(new Uint8Array([0, 0, 0, 7, 9, 0, 0, 0, 0, 0, 0])), 'COFFER_FORMAT_MALFORMED'); // kind 9
  throwsCode(() => d.push(encodeRequest(1, 'LOGOUT', { session: 1 })), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => new FrameDecoder().push(new Uint8Array([0, 0, 0, 6, 1, 0, 0, 0, 0, 0])), 'COFFER_FORMAT_MALFORMED'); // shorter than header
  throwsCode(() => new FrameDecoder().push(new Uint8Array([0, 0, 1, 0, 0])), 'COFFER_FORMAT_MALFORMED'); // kind 0, partial frame
  // a good frame before the garbage in the same chunk is not returned: the connection is closing
  const good = encodeRequest(1, 'LOGOUT', { session: 1 });
  throwsCode(() => new FrameDecoder().push(Buffer.concat([good, new Uint8Array([0, 0, 0, 0])])), 'COFFER_FORMAT_MALFORMED');
});

test('coalescer: one buffer per flush holding every pushed frame in order', () => {
  const { bytes } = stream();
  const frames = new FrameDecoder().push(bytes);
  const c = new FrameCoalescer();
  assert.equal(c.flush().length, 0);
  const encoded = [encodeRequest(1, 'LOGOUT', { session: 1 }), encodeBusy(2, 3, 4), encodeResponse(5, 'RANDOM', OP_SAMPLES.RANDOM.response)];
  for (const e of encoded) c.push(e);
  assert.equal(c.pendingFrames, 3);
  const out = c.flush();
  assert.equal(hex(out), hex(Buffer.concat(encoded)));
  assert.equal(c.pendingBytes, 0);
  assert.equal(new FrameDecoder().push(out).length, 3);
  c.push(encoded[0] as Uint8Array);
  assert.equal(hex(c.flush()), hex(encoded[0] as Uint8Array));
  assert.ok(frames.length > 0);
});

test('docs/wire-protocol.md lists every operation and mechanism with its code', () => {
  const doc = readFileSync(new URL('../../../docs/wire-protocol.md', import.meta.url), 'utf8');
  const code = (c: number): string => `\`0x${c.toString(16).padStart(4, '0')}\``;
  for (const name of names) assert.ok(doc.includes(`| ${code(OPS[name].code)} | \`${name}\` |`), name);
  for (const [mechanism, c] of MECHANISM_CODES) assert.ok(doc.includes(`| ${code(c)} | \`${mechanism}\` |`), mechanism);
});

test('a large frame (2 MiB of data) crosses many chunks and the encoder stays usable', () => {
  const data = new Uint8Array(2 * 1024 * 1024).map((_, i) => i * 7);
  const bytes = encodeRequest(11, 'ENCRYPT', { session: 1, handle: 2, params: { mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16) }, data });
  const d = new FrameDecoder();
  const frames: Frame[] = [];
  for (let off = 0; off < bytes.length; off += 65_536 + 3) frames.push(...d.push(bytes.subarray(off, off + 65_536 + 3)));
  assert.equal(frames.length, 1);
  const req = decodeRequest(frames[0] as Frame);
  assert.ok(req.name === 'ENCRYPT');
  assert.equal(hex(req.request.data.subarray(-64)), hex(data.subarray(-64)));
  assert.equal(req.request.data.length, data.length);
  assert.deepEqual(decodeRequest(one(encodeRequest(12, 'LOGOUT', { session: 2 }))), { name: 'LOGOUT', request: { session: 2 } });
});

test('handles are u64: session-object handles (2^40 and up) travel; above 2^53 - 1 is refused on decode', () => {
  const big = 2 ** 40 + 7;
  const req = decodeRequest(one(encodeRequest(1, 'DESTROY', { session: 1, handle: big })));
  assert.deepEqual(req.request, { session: 1, handle: big });
  const max = decodeRequest(one(encodeRequest(1, 'DESTROY', { session: 1, handle: Number.MAX_SAFE_INTEGER })));
  assert.deepEqual(max.request, { session: 1, handle: Number.MAX_SAFE_INTEGER });
  // session 1 ‖ handle high half 0x00200000 (2^53), low half 0: JS could not hold it exactly
  const payload = new Uint8Array([0, 0, 0, 1, 0x00, 0x20, 0, 0, 0, 0, 0, 0]);
  throwsCode(() => decodeRequest(one(encodeFrame(FrameKind.REQUEST, 1, OPS.DESTROY.code, payload))), 'COFFER_FORMAT_MALFORMED');
});
