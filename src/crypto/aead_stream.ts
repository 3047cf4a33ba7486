// A segmented AEAD stream over AES-256-GCM, for backup bodies and other large payloads that must
// be sealed and opened in bounded memory (docs/architecture.md §3). The construction is STREAM (Hoang,
// Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and its Nonce-Reuse
// Misuse-Resistance", CRYPTO 2015, §7): each segment is sealed on its own under a nonce that names
// its position and whether it is the last, so a reader detects truncation, reordering, duplication
// and extension, not only altered bytes.
//
// Segment i (0-based) of a stream under key K, prefix P and caller AAD A:
//   nonce_i   = P (7 bytes) || [i]_32 (big-endian) || last_i (1 byte: 0x01 final, 0x00 otherwise)
//   sealed_i  = AES-256-GCM-Encrypt(K, nonce_i, aad = A, segment_i) = ciphertext_i || tag_i (16 bytes)
// A is bound to every segment (a backup passes a digest of its header). P is not secret; the
// caller stores it (e.g. in the backup header). Under one key, P must never repeat: Coffer uses a
// fresh random BEK per backup and a random P, so neither repeats in practice.
//
// Framing of a sealed stream: the sealed segments concatenated, nothing else. Every segment but
// the last holds exactly `segmentBytes` of plaintext (so is segmentBytes + 16 bytes sealed); the
// last holds 0..segmentBytes. Sealing cuts plaintext of length N into max(1, ⌈N / segmentBytes⌉)
// segments, so the last holds 1..segmentBytes bytes, or 0 for an empty stream (one final empty
// segment, 16 bytes sealed). A reader who knows the total sealed length S finds the segment count
// as max(1, ⌈S / (segmentBytes + 16)⌉); a streaming reader holds back one full segment until it
// sees more bytes or the end. The segment size travels beside P (a parameter, checked against
// AEAD_SEGMENT_BYTES_MIN/MAX); a wrong size makes the tags fail.
//
// A streaming opener releases each segment's plaintext once its tag verifies, before it knows the
// stream is complete: a consumer must not commit what it read until `finish()` (or the end of the
// Transform) succeeds. Coffer restores into staging and commits only then (docs/architecture.md §3).

import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { secretKeyLength, secretKeyObject, type SecretKeyInput } from './secret_bytes.js';

/** Bytes of the caller's nonce prefix (STREAM's nonce minus the 5-byte position and flag). */
export const AEAD_STREAM_PREFIX_BYTES = 7;
/** GCM tag per segment: the full 128 bits (SP 800-38D §5.2.1.2). */
export const AEAD_TAG_BYTES = 16;
/** Default plaintext per segment: 64 KiB keeps the 16-byte tag overhead at 0.02 % and memory small. */
export const AEAD_SEGMENT_BYTES_DEFAULT = 64 * 1024;
/** Smallest segment: one AES block; below that the tag outweighs the payload. Tests use it. */
export const AEAD_SEGMENT_BYTES_MIN = 16;
/** Largest segment: a streaming reader buffers about two sealed segments, so this bounds its memory. */
export const AEAD_SEGMENT_BYTES_MAX = 16 * 1024 * 1024;
/** The segment index is 32 bits in the nonce: at most 2^32 segments (256 TiB at the default size). */
export const AEAD_SEGMENTS_MAX = 2 ** 32;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;

/** A fresh random 7-byte nonce prefix. */
export function randomStreamPrefix(): Uint8Array {
  return new Uint8Array(randomBytes(AEAD_STREAM_PREFIX_BYTES));
}

/** Sealed length of a stream of `plainBytes`, as `sealStream` frames it. */
export function sealedStreamLength(plainBytes: number, segmentBytes = AEAD_SEGMENT_BYTES_DEFAULT): number {
  checkSegmentBytes(segmentBytes);
  return plainBytes + AEAD_TAG_BYTES * Math.max(1, Math.ceil(plainBytes / segmentBytes));
}

function checkSegmentBytes(segmentBytes: number): void {
  if (!Number.isInteger(segmentBytes) || segmentBytes < AEAD_SEGMENT_BYTES_MIN || segmentBytes > AEAD_SEGMENT_BYTES_MAX) {
    fail('COFFER_CRYPTO_INPUT_LENGTH');
  }
}

interface StreamParams {
  readonly key: KeyObject;
  readonly prefix: Uint8Array;
  readonly aad: Uint8Array;
  readonly segmentBytes: number;
}

function streamParams(key: SecretKeyInput, prefix: Uint8Array, aad: Uint8Array, segmentBytes: number): StreamParams {
  if (secretKeyLength(key) !== KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE');
  if (prefix.length !== AEAD_STREAM_PREFIX_BYTES) fail('COFFER_CRYPTO_INPUT_LENGTH');
  checkSegmentBytes(segmentBytes);
  return { key: secretKeyObject(key), prefix: Uint8Array.from(prefix), aad: Uint8Array.from(aad), segmentBytes };
}

function segmentNonce(prefix: Uint8Array, index: number, last: boolean): Uint8Array {
  const nonce = new Uint8Array(NONCE_BYTES);
  nonce.set(prefix, 0);
  new DataView(nonce.buffer).setUint32(AEAD_STREAM_PREFIX_BYTES, index, false);
  nonce[NONCE_BYTES - 1] = last ? 1 : 0;
  return nonce;
}

/** Writes segment `index` sealed (ciphertext || tag) into `target` at `at`. */
function sealSegmentInto(p: StreamParams, index: number, last: boolean, plaintext: Uint8Array, target: Uint8Array, at: number): void {
  const cipher = createCipheriv('aes-256-gcm', p.key, segmentNonce(p.prefix, index, last), { authTagLength: AEAD_TAG_BYTES });
  cipher.setAAD(p.aad);
  const body = cipher.update(plaintext);
  target.set(body, at);
  target.set(cipher.final(), at + body.length); // empty for GCM; kept for form
  target.set(cipher.getAuthTag(), at + plaintext.length);
}

/** What a sealer and an opener share: the stream's parameters and the position in it. */
abstract class StreamCursor {
  protected readonly p: StreamParams;
  protected index = 0;
  #finished = false;

  constructor(key: SecretKeyInput, prefix: Uint8Array, aad: Uint8Array, segmentBytes = AEAD_SEGMENT_BYTES_DEFAULT) {
    this.p = streamParams(key, prefix, aad, segmentBytes);
  }

  get segmentBytes(): number {
    return this.p.segmentBytes;
  }

  /** True once the final segment has been sealed or opened. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * May a segment of `size` plaintext bytes stand at the current index? Every segment but the last
   * is exactly `segmentBytes`, and the index must not wrap: the segment at the largest index has to
   * be the final one.
   */
  protected fits(size: number, last: boolean): boolean {
    const sized = last ? size <= this.p.segmentBytes : size === this.p.segmentBytes;
    return sized && (last || this.index !== AEAD_SEGMENTS_MAX - 1);
  }

  protected advance(last: boolean): void {
    this.index++;
    this.#finished = last;
  }
}

/** Seals a stream segment by segment. Every segment but the last must be exactly `segmentBytes`. */
export class StreamSealer extends StreamCursor {
  /** Seals the next segment: ciphertext || tag. `last` marks the final segment. */
  seal(plaintext: Uint8Array, last: boolean): Uint8Array {
    assert(!this.finished, 'no segment may follow the final one');
    const size = plaintext.length;
    if (!this.fits(size, last)) fail('COFFER_CRYPTO_INPUT_LENGTH');
    const out = new Uint8Array(size + AEAD_TAG_BYTES);
    sealSegmentInto(this.p, this.index, last, plaintext, out, 0);
    this.advance(last);
    return out;
  }
}

/**
 * Opens a stream segment by segment, in order. Any failure (a bad tag, a wrong length, a segment
 * after the final one) poisons the opener: it refuses everything after it.
 */
export class StreamOpener extends StreamCursor {
  #poisoned = false;

  /** Opens the next sealed segment; `last` says whether the framing puts it at the end. */
  open(sealed: Uint8Array, last: boolean): Uint8Array {
    if (this.#poisoned || this.finished) return this.#tampered(); // extension after the final segment
    const size = sealed.length - AEAD_TAG_BYTES;
    if (size < 0 || !this.fits(size, last)) return this.#tampered();
    const decipher = createDecipheriv('aes-256-gcm', this.p.key, segmentNonce(this.p.prefix, this.index, last), { authTagLength: AEAD_TAG_BYTES });
    decipher.setAAD(this.p.aad);
    decipher.setAuthTag(sealed.subarray(size));
    const body = decipher.update(sealed.subarray(0, size));
    try {
      const tail = decipher.final();
      assert(tail.length === 0, 'GCM emits all plaintext from update');
    } catch {
      body.fill(0);
      return this.#tampered();
    }
    this.advance(last);
    return new Uint8Array(body.buffer, body.byteOffset, body.length); // node gives update() its own buffer
  }

  /** Confirms the stream ended with its final segment; refuses a stream cut short. */
  finish(): void {
    if (this.#poisoned || !this.finished) this.#tampered();
  }

  #tampered(): never {
    this.#poisoned = true;
    return fail('COFFER_CRYPTO_AEAD_TAMPERED');
  }
}

/** Seals `data` whole: the concatenated segments described in the header comment. */
export function sealStream(key: SecretKeyInput, prefix: Uint8Array, aad: Uint8Array, data: Uint8Array, segmentBytes = AEAD_SEGMENT_BYTES_DEFAULT): Uint8Array {
  const p = streamParams(key, prefix, aad, segmentBytes);
  const count = Math.max(1, Math.ceil(data.length / segmentBytes));
  if (count > AEAD_SEGMENTS_MAX) fail('COFFER_CRYPTO_INPUT_LENGTH');
  const out = new Uint8Array(data.length + count * AEAD_TAG_BYTES);
  // The same segments StreamSealer would make, written in place (one copy fewer per segment).
  for (let i = 0; i < count; i++) {
    const start = i * segmentBytes;
    sealSegmentInto(p, i, i === count - 1, data.subarray(start, Math.min(start + segmentBytes, data.length)), out, start + i * AEAD_TAG_BYTES);
  }
  return out;
}

/** Opens a whole sealed stream; any altered, missing, reordered or extra byte is refused. */
export function openStream(key: SecretKeyInput, prefix: Uint8Array, aad: Uint8Array, sealed: Uint8Array, segmentBytes = AEAD_SEGMENT_BYTES_DEFAULT): Uint8Array {
  const opener = new StreamOpener(key, prefix, aad, segmentBytes);
  const sealedSegment = segmentBytes + AEAD_TAG_BYTES;
  const count = Math.max(1, Math.ceil(sealed.length / sealedSegment));
  if (count > AEAD_SEGMENTS_MAX) fail('COFFER_CRYPTO_AEAD_TAMPERED');
  // The last segment is whatever follows the full ones; shorter than a tag, it cannot be one.
  if (sealed.length - (count - 1) * sealedSegment < AEAD_TAG_BYTES) fail('COFFER_CRYPTO_AEAD_TAMPERED');
  const plainBytes = sealed.length - count * AEAD_TAG_BYTES;
  const out = new Uint8Array(plainBytes);
  try {
    for (let i = 0; i < count; i++) {
      const start = i * sealedSegment;
      const plain = opener.open(sealed.subarray(start, Math.min(start + sealedSegment, sealed.length)), i === count - 1);
      out.set(plain, i * segmentBytes);
      plain.fill(0);
    }
    opener.finish();
  } catch (e) {
    out.fill(0);
    throw e;
  }
  return out;
}

/** A FIFO of byte chunks that hands out exact-length prefixes, for the Transform adapters. */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Removes and returns the first `n` bytes (n ≤ length), copied into one array. */
  take(n: number): Uint8Array {
    assert(n <= this.#length, 'take within the queued bytes');
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const head = this.#chunks[0];
      assert(head !== undefined, 'queued chunks cover the length');
      const used = Math.min(head.length, n - at);
      out.set(head.subarray(0, used), at);
      at += used;
      if (used === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(used);
    }
    this.#length -= n;
    return out;
  }
}

function chunkBytes(chunk: unknown): Uint8Array {
  assert(chunk instanceof Uint8Array, 'stream chunks are bytes (no object mode, no string encoding)');
  return chunk;
}

/** Seals a segment the queue copied out, then wipes that copy of the plaintext. */
function sealWiping(sealer: StreamSealer, plaintext: Uint8Array, last: boolean): Uint8Array {
  try {
    return sealer.seal(plaintext, last);
  } finally {
    plaintext.fill(0);
  }
}

/**
 * A Transform that seals what flows through it. Its output is byte for byte what `sealStream`
 * gives for the same input. Holds at most one segment of plaintext plus the chunk being read.
 */
export function createSealTransform(key: SecretKeyInput, prefix: Uint8Array, aad: Uint8Array, segmentBytes = AEAD_SEGMENT_BYTES_DEFAULT): Transform {
  const sealer = new StreamSealer(key, prefix, aad, segmentBytes);
  const queue = new ByteQueue();
  return new Transform({
    transform(chunk: unknown, _encoding: BufferEncoding, done: TransformCallback): void {
      try {
        queue.push(chunkBytes(chunk));
        // Strictly more than a segment: a full segment at the very end is the final one.
        while (queue.length > segmentBytes) this.push(sealWiping(sealer, queue.take(segmentBytes), false));
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback): void {
      try {
        this.push(sealWiping(sealer, queue.take(queue.length), true));
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}

/**
 * A Transform that opens a sealed stream. It emits each segment's plaintext as soon as its tag
 * verifies and fails the stream (COFFER_CRYPTO_AEAD_TAMPERED) on any tampering, including a stream
 * that ends without its final segment: treat output as provisional until the stream ends cleanly.
 */
export function createOpenTransform(key: SecretKeyInput, prefix: Uint8Array, aad: Uint8Array, segmentBytes = AEAD_SEGMENT_BYTES_DEFAULT): Transform {
  const opener = new StreamOpener(key, prefix, aad, segmentBytes);
  const sealedSegment = segmentBytes + AEAD_TAG_BYTES;
  const queue = new ByteQueue();
  return new Transform({
    transform(chunk: unknown, _encoding: BufferEncoding, done: TransformCallback): void {
      try {
        queue.push(chunkBytes(chunk));
        // A full sealed segment is known not to be the last only when more bytes follow it.
        while (queue.length > sealedSegment) this.push(opener.open(queue.take(sealedSegment), false));
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback): void {
      try {
        this.push(opener.open(queue.take(queue.length), true));
        opener.finish();
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}
