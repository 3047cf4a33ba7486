// Seeded fuzz of the data-plane decoder and codecs (docs/architecture.md §9: bad input on every network
// surface gives a clear error, no crash). Random bytes and mutated valid frames go through the
// frame decoder, then through every request and reply codec: each step either decodes or throws a
// CofferError — never another exception, never a hang. Set WIRE_FUZZ_SEED to replay a failure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCofferError } from '../../src/errors.js';
import { FrameDecoder, OPS, decodeReply, decodeRequest, encodeBusy, encodeError, encodeRequest, encodeResponse, type OpName } from '../../src/formats/wire.js';
import { CofferError } from '../../src/errors.js';
import { OP_SAMPLES } from './wire_samples.js';
import { mulberry32 as prng } from '../helpers.js';

const ITERATIONS = 20_000;


const names = Object.keys(OPS) as OpName[];
const valid: Uint8Array[] = names.flatMap((n) => [
  encodeRequest(1, n, OP_SAMPLES[n].request as never),
  encodeResponse(2, n, OP_SAMPLES[n].response as never),
]);
valid.push(encodeError(3, OPS.SIGN.code, new CofferError('COFFER_SIGNATURE_INVALID', { n: 1 })), encodeBusy(4, OPS.SIGN.code, 100));

function mutate(rand: () => number, src: Uint8Array): Uint8Array {
  const b = Uint8Array.from(src);
  const kind = Math.floor(rand() * 4);
  const at = Math.floor(rand() * b.length);
  if (kind === 0) {
    for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    return b;
  }
  if (kind === 1) return b.subarray(0, at); // truncated
  if (kind === 2) return Uint8Array.from([...b.subarray(0, at), Math.floor(rand() * 256), ...b.subarray(at)]); // inserted byte
  // a payload byte changed but the frame length kept consistent, so the codecs see the damage
  if (b.length > 11) {
    const i = 11 + Math.floor(rand() * (b.length - 11));
    b[i] = (b[i] ?? 0) ^ (1 << Math.floor(rand() * 8));
  }
  return b;
}

function randomBytes(rand: () => number): Uint8Array {
  const b = new Uint8Array(Math.floor(rand() * 64));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  if (b.length >= 5 && rand() < 0.5) b.set([0, 0, 0, b.length - 4, 1 + Math.floor(rand() * 4)]); // plausible header
  return b;
}

/** Runs `fn`; a CofferError is an accepted outcome, anything else fails the test with the seed. */
function typedOnly(seed: number, i: number, fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (!isCofferError(e)) assert.fail(`seed ${seed} iteration ${i}: untyped ${String(e)}`);
    return false;
  }
}

test('fuzz: decoder and codecs yield frames or CofferErrors only', () => {
  const seed = Number(process.env['WIRE_FUZZ_SEED'] ?? Date.now() % 2 ** 31);
  console.log(`wire fuzz seed ${seed} (WIRE_FUZZ_SEED=${seed} replays it)`);
  const rand = prng(seed);
  let decoded = 0;
  let refused = 0;
  let frames = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = rand() < 0.3 ? randomBytes(rand) : mutate(rand, valid[Math.floor(rand() * valid.length)] as Uint8Array);
    const cut = Math.floor(rand() * (input.length + 1));
    const decoder = new FrameDecoder();
    typedOnly(seed, i, () => {
      for (const f of [...decoder.push(input.subarray(0, cut)), ...decoder.push(input.subarray(cut))]) {
        frames++;
        const name = names[Math.floor(rand() * names.length)] as OpName;
        for (const ok of [typedOnly(seed, i, () => decodeRequest(f)), typedOnly(seed, i, () => decodeReply(name, { ...f, op: OPS[name].code }))]) {
          if (ok) decoded++;
          else refused++;
        }
      }
    });
  }
  console.log(`wire fuzz: ${frames} frames reached the codecs, ${decoded} decoded, ${refused} refused`);
  assert.ok(decoded > 0 && refused > 0, 'the fuzz reached both outcomes of the codecs');
});
