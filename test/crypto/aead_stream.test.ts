// The segmented AEAD stream: its framing rebuilt independently from node's AES-256-GCM, round
// trips at the edges, and every kind of tampering (bit flips, truncation, dropped, duplicated,
// swapped or appended segments, extra bytes, other AAD, prefix, segment size or key) refused.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AEAD_SEGMENT_BYTES_DEFAULT,
  AEAD_SEGMENT_BYTES_MAX,
  AEAD_SEGMENT_BYTES_MIN,
  StreamOpener,
  StreamSealer,
  createOpenTransform,
  createSealTransform,
  openStream,
  randomStreamPrefix,
  sealStream,
  sealedStreamLength,
} from '../../src/crypto/aead_stream.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';

const KEY_BYTES = new Uint8Array(randomBytes(32));
/** The stream key as the crypto layer takes it; KEY_BYTES only feeds the independent GCM build. */
const KEY = SecretBytes.copyOf(KEY_BYTES);
const PREFIX = new Uint8Array([1, 2, 3, 4, 5, 6, 7]);
const AAD = new TextEncoder().encode('backup header digest');
const SEG = AEAD_SEGMENT_BYTES_MIN; // 16-byte segments keep exhaustive mutation tests small
const SEALED_SEG = SEG + 16;

function throwsCode(fn: () => unknown, code: ErrorCode = 'COFFER_CRYPTO_AEAD_TAMPERED', what = ''): void {
  assert.throws(fn, (e: unknown) => isCofferError(e, code), `expected ${code} ${what}`);
}
const refused = (sealed: Uint8Array, what: string, seg = SEG): void => throwsCode(() => openStream(KEY, PREFIX, AAD, sealed, seg), 'COFFER_CRYPTO_AEAD_TAMPERED', what);
const segmentsOf = (sealed: Uint8Array): Uint8Array[] => {
  const out: Uint8Array[] = [];
  for (let at = 0; at < sealed.length; at += SEALED_SEG) out.push(sealed.subarray(at, Math.min(at + SEALED_SEG, sealed.length)));
  return out;
};
const concat = (parts: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

void test('framing matches an independent build from AES-256-GCM: P || [i]_32 || last, AAD on every segment', () => {
  const data = randomBytes(SEG * 3 + 5);
  const expected: Buffer[] = [];
  const count = 4;
  for (let i = 0; i < count; i++) {
    const nonce = Buffer.concat([Buffer.from(PREFIX), Buffer.from([i >>> 24, i >>> 16, i >>> 8, i].map((x) => x & 0xff)), Buffer.of(i === count - 1 ? 1 : 0)]);
    const c = createCipheriv('aes-256-gcm', KEY_BYTES, nonce);
    c.setAAD(AAD);
    expected.push(c.update(data.subarray(i * SEG, (i + 1) * SEG)), c.final(), c.getAuthTag());
  }
  const sealed = sealStream(KEY, PREFIX, AAD, data, SEG);
  assert.equal(Buffer.from(sealed).toString('hex'), Buffer.concat(expected).toString('hex'));
  assert.equal(sealed.length, sealedStreamLength(data.length, SEG));
  // An empty stream is one final, empty segment: just a tag.
  const empty = sealStream(KEY, PREFIX, AAD, new Uint8Array(0), SEG);
  const c = createCipheriv('aes-256-gcm', KEY_BYTES, Buffer.concat([Buffer.from(PREFIX), Buffer.alloc(4), Buffer.of(1)]));
  c.setAAD(AAD);
  c.final();
  assert.equal(Buffer.from(empty).toString('hex'), c.getAuthTag().toString('hex'));
});

void test('round trips at 0, 1, seg−1, seg, seg+1 and many segments, small and default segment sizes', () => {
  for (const seg of [SEG, 100, AEAD_SEGMENT_BYTES_DEFAULT]) {
    for (const n of [0, 1, seg - 1, seg, seg + 1, 2 * seg, 7 * seg + 3]) {
      const data = new Uint8Array(randomBytes(n));
      const sealed = sealStream(KEY, PREFIX, AAD, data, seg);
      assert.equal(sealed.length, sealedStreamLength(n, seg), `n=${n} seg=${seg}`);
      assert.deepEqual(openStream(KEY, PREFIX, AAD, sealed, seg), data, `n=${n} seg=${seg}`);
    }
  }
  const big = new Uint8Array(randomBytes(3 * 1024 * 1024 + 7));
  assert.deepEqual(openStream(KEY, PREFIX, AAD, sealStream(KEY, PREFIX, AAD, big)), big);
});

void test('key forms agree: SecretBytes, KeyObject; plain bytes are refused', () => {
  const data = randomBytes(50);
  const sealed = sealStream(KEY, PREFIX, AAD, data, SEG);
  assert.deepEqual(sealStream(SecretBytes.copyOf(KEY_BYTES), PREFIX, AAD, data, SEG), sealed);
  assert.deepEqual(openStream(createSecretKey(KEY_BYTES), PREFIX, AAD, sealed, SEG), new Uint8Array(data));
  // @ts-expect-error -- a plain Uint8Array is not a SecretKeyInput (the build fails if it ever is)
  assert.throws(() => sealStream(KEY_BYTES, PREFIX, AAD, data, SEG), AssertionFailure);
  // @ts-expect-error -- nor for the streaming opener
  assert.throws(() => new StreamOpener(KEY_BYTES, PREFIX, AAD, SEG), AssertionFailure);
});

void test('every bit flip anywhere in a 3-segment stream is refused', () => {
  const sealed = sealStream(KEY, PREFIX, AAD, randomBytes(2 * SEG + 8), SEG);
  assert.equal(sealed.length, 3 * 16 + 40);
  for (let bit = 0; bit < sealed.length * 8; bit++) {
    const t = Uint8Array.from(sealed);
    t[bit >> 3] = (t[bit >> 3] ?? 0) ^ (1 << (bit & 7));
    refused(t, `bit ${bit}`);
  }
});

void test('truncation at every length (segment boundaries and inside) is refused', () => {
  const sealed = sealStream(KEY, PREFIX, AAD, randomBytes(3 * SEG + 5), SEG);
  for (let len = 0; len < sealed.length; len++) refused(sealed.subarray(0, len), `truncated to ${len}`);
  // Cutting a stream whose plaintext fills its last segment exactly, at each boundary.
  const full = sealStream(KEY, PREFIX, AAD, randomBytes(3 * SEG), SEG);
  for (const len of [SEALED_SEG, 2 * SEALED_SEG]) refused(full.subarray(0, len), `cut at boundary ${len}`);
});

void test('dropped, duplicated, swapped and appended segments, and appended bytes, are refused', () => {
  const sealed = sealStream(KEY, PREFIX, AAD, randomBytes(4 * SEG + 9), SEG);
  const segs = segmentsOf(sealed);
  assert.equal(segs.length, 5);
  for (let i = 0; i < segs.length; i++) {
    refused(concat(segs.filter((_, j) => j !== i)), `drop ${i}`);
    refused(concat([...segs.slice(0, i + 1), segs[i] ?? new Uint8Array(0), ...segs.slice(i + 1)]), `duplicate ${i}`);
    for (let j = i + 1; j < segs.length; j++) {
      const swapped = [...segs];
      [swapped[i], swapped[j]] = [segs[j] ?? new Uint8Array(0), segs[i] ?? new Uint8Array(0)];
      refused(concat(swapped), `swap ${i} ${j}`);
    }
    refused(concat([...segs, segs[i] ?? new Uint8Array(0)]), `append copy of ${i}`);
  }
  for (let extra = 1; extra <= SEALED_SEG + 1; extra++) refused(concat([sealed, new Uint8Array(extra)]), `append ${extra} bytes`);
  // A final segment of another stream under the same key and prefix (which Coffer never reuses)
  // still carries its own index: grafted onto this one it fails.
  const other = segmentsOf(sealStream(KEY, PREFIX, AAD, randomBytes(SEG + 3), SEG));
  refused(concat([...segs.slice(0, 4), other[1] ?? new Uint8Array(0)]), 'graft final segment of a shorter stream');
});

void test('other AAD, prefix, segment size or key is refused', () => {
  const data = randomBytes(2 * SEG + 1);
  const sealed = sealStream(KEY, PREFIX, AAD, data, SEG);
  const aad = Uint8Array.from(AAD);
  aad[0] = (aad[0] ?? 0) ^ 1;
  throwsCode(() => openStream(KEY, PREFIX, aad, sealed, SEG));
  throwsCode(() => openStream(KEY, PREFIX, new Uint8Array(0), sealed, SEG));
  for (let bit = 0; bit < 56; bit++) {
    const prefix = Uint8Array.from(PREFIX);
    prefix[bit >> 3] = (prefix[bit >> 3] ?? 0) ^ (1 << (bit & 7));
    throwsCode(() => openStream(KEY, prefix, AAD, sealed, SEG), 'COFFER_CRYPTO_AEAD_TAMPERED', `prefix bit ${bit}`);
  }
  for (const seg of [17, 32, 2 * SEG + 1]) refused(sealed, `segment size ${seg}`, seg);
  throwsCode(() => openStream(SecretBytes.random(32), PREFIX, AAD, sealed, SEG));
});

void test('low level: in-order opening, no segment after the final one, no finish without it', () => {
  const sealer = new StreamSealer(KEY, PREFIX, AAD, SEG);
  const parts = [randomBytes(SEG), randomBytes(SEG), randomBytes(3)];
  const sealed = parts.map((p, i) => sealer.seal(p, i === parts.length - 1));
  assert.ok(sealer.finished);
  assert.throws(() => sealer.seal(new Uint8Array(0), true), /final/); // sealing after the end is a bug
  const [s0, s1, s2] = sealed as [Uint8Array, Uint8Array, Uint8Array];

  const opener = new StreamOpener(KEY, PREFIX, AAD, SEG);
  assert.deepEqual(opener.open(s0, false), new Uint8Array(parts[0] ?? []));
  const cut = new StreamOpener(KEY, PREFIX, AAD, SEG);
  cut.open(s0, false);
  throwsCode(() => cut.finish()); // the stream ended before its final segment
  throwsCode(() => cut.open(s1, false)); // and the opener stays refused
  assert.deepEqual(opener.open(s1, false), new Uint8Array(parts[1] ?? []));
  assert.deepEqual(opener.open(s2, true), new Uint8Array(parts[2] ?? []));
  opener.finish();
  throwsCode(() => opener.open(s2, true)); // duplicate of the final segment
  throwsCode(() => opener.open(s0, false)); // anything after the final one

  const reorder = new StreamOpener(KEY, PREFIX, AAD, SEG);
  throwsCode(() => reorder.open(s1, false));
  throwsCode(() => reorder.open(s0, false)); // poisoned after a failure, even for a good segment
  throwsCode(() => new StreamOpener(KEY, PREFIX, AAD, SEG).open(s0, true)); // non-final marked final
  throwsCode(() => new StreamOpener(KEY, PREFIX, AAD, SEG).finish());
});

void test('the sealer refuses wrong segment sizes, prefixes, keys and segment-size parameters', () => {
  const sealer = new StreamSealer(KEY, PREFIX, AAD, SEG);
  throwsCode(() => sealer.seal(new Uint8Array(SEG - 1), false), 'COFFER_CRYPTO_INPUT_LENGTH');
  throwsCode(() => sealer.seal(new Uint8Array(SEG + 1), true), 'COFFER_CRYPTO_INPUT_LENGTH');
  throwsCode(() => new StreamSealer(KEY, new Uint8Array(8), AAD), 'COFFER_CRYPTO_INPUT_LENGTH');
  throwsCode(() => new StreamSealer(SecretBytes.random(16), PREFIX, AAD), 'COFFER_CRYPTO_KEY_SIZE');
  for (const seg of [0, AEAD_SEGMENT_BYTES_MIN - 1, AEAD_SEGMENT_BYTES_MAX + 1, 100.5]) {
    throwsCode(() => new StreamOpener(KEY, PREFIX, AAD, seg), 'COFFER_CRYPTO_INPUT_LENGTH');
  }
  assert.equal(randomStreamPrefix().length, 7);
  assert.notDeepEqual(randomStreamPrefix(), randomStreamPrefix());
});

async function collect(source: Iterable<Uint8Array>, transform: NodeJS.ReadWriteStream): Promise<Uint8Array> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(source, { objectMode: false }), transform, async (chunks: AsyncIterable<string | Buffer>) => {
    for await (const c of chunks) {
      assert.ok(Buffer.isBuffer(c));
      out.push(c);
    }
  });
  return new Uint8Array(Buffer.concat(out));
}

/** Cuts bytes into chunks of pseudo-random sizes 1..3·seg (deterministic per seed). */
function chunked(data: Uint8Array, seed: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let x = seed;
  for (let at = 0; at < data.length; ) {
    x = (x * 1103515245 + 12345) >>> 0;
    const n = 1 + (x % (3 * SEG));
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

void test('Transform adapters: same bytes as sealStream, round trip in odd-sized chunks', async () => {
  for (const n of [0, 1, SEG, SEG + 1, 10 * SEG, 10 * SEG + 7]) {
    const data = new Uint8Array(randomBytes(n));
    const sealed = await collect(chunked(data, n + 1), createSealTransform(KEY, PREFIX, AAD, SEG));
    assert.deepEqual(sealed, sealStream(KEY, PREFIX, AAD, data, SEG), `seal n=${n}`);
    const opened = await collect(chunked(sealed, n + 2), createOpenTransform(KEY, PREFIX, AAD, SEG));
    assert.deepEqual(opened, data, `open n=${n}`);
  }
});

void test('Transform opener fails the stream on tampering, truncation and extension', async () => {
  const sealed = sealStream(KEY, PREFIX, AAD, randomBytes(5 * SEG + 3), SEG);
  const tampered = Uint8Array.from(sealed);
  tampered[3 * SEALED_SEG + 2] = (tampered[3 * SEALED_SEG + 2] ?? 0) ^ 4;
  for (const [what, bytes] of [
    ['flipped byte', tampered],
    ['cut at a boundary', sealed.subarray(0, 3 * SEALED_SEG)],
    ['cut inside', sealed.subarray(0, sealed.length - 1)],
    ['extended', concat([sealed, new Uint8Array(1)])],
    ['empty input', new Uint8Array(0)],
  ] as const) {
    await assert.rejects(collect(chunked(bytes, 7), createOpenTransform(KEY, PREFIX, AAD, SEG)), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_AEAD_TAMPERED'), what);
  }
});
