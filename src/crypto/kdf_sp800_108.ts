// Key derivation in counter mode, NIST SP 800-108r1 §4.1, with PRF HMAC-SHA-256. Coffer derives the
// PBK from the MKBK and AKBK with it (docs/architecture.md §3) and offers it as a PKCS#11 mechanism.
//
// Two layers:
//   - `kdfCounterHmacSha256`, the general core: K(i) = PRF(K_I, before || [i]_r || after) for
//     i = 1..n, output the leftmost L bits of K(1) || … || K(n). `before`/`after` place the counter
//     anywhere in the fixed input: before it (before = empty), after it (after = empty) or in its
//     middle (both non-empty, as CAVP's MIDDLE_FIXED records split their fixed data). The counter
//     width r is 8, 16, 24 or 32 bits (§4.1 requires n ≤ 2^r − 1).
//   - `deriveKeyCounterHmacSha256`, the layout Coffer uses everywhere: fixed input
//     = Label || 0x00 || Context || [L]_32 (§5), counter 32 bits before it. In CAVP's KDFCTR file
//     this is the [PRF=HMAC_SHA256] [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS] group.
// The core is tested with all 480 HMAC-SHA-256 records of the CAVP file (test/crypto/kdf_sp800_108.test.ts).

import { createHmac } from 'node:crypto';
import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { SecretBytes, secretKeyObject, type SecretKeyInput } from './secret_bytes.js';

/** HMAC-SHA-256 output, h in §4.1. */
const PRF_BYTES = 32;
/**
 * Largest output of one derivation. Coffer derives single keys (32 bytes) or small key sets; the
 * bound keeps a caller-given length from allocating without end. Far below the §4.1 limit
 * (h·(2^32 − 1) bits for r = 32).
 */
export const KDF_OUTPUT_BYTES_MAX = 1024;

export type CounterBits = 8 | 16 | 24 | 32;

export interface CounterModeInput {
  /** Width r of the counter [i]_r, big-endian. */
  readonly counterBits: CounterBits;
  /** Fixed input placed before the counter (empty when the counter comes first). */
  readonly before: Uint8Array;
  /** Fixed input placed after the counter (empty when the counter comes last). */
  readonly after: Uint8Array;
  /** L, the output length in bits; a positive multiple of 8 here. */
  readonly lengthBits: number;
}

/** The PRF input of iteration `i` (1-based): before || [i]_r || after. Exposed for tests. */
export function counterModePrfInput(i: number, input: CounterModeInput): Uint8Array {
  const r = input.counterBits / 8;
  const out = new Uint8Array(input.before.length + r + input.after.length);
  out.set(input.before, 0);
  for (let b = 0; b < r; b++) out[input.before.length + b] = (i >>> (8 * (r - 1 - b))) & 0xff;
  out.set(input.after, input.before.length + r);
  return out;
}

/**
 * The general counter-mode core (§4.1). Returns an owned array of L/8 bytes; the caller owns the
 * derived bytes and should wipe them (or hand them to SecretBytes.adopt).
 */
export function kdfCounterHmacSha256(key: SecretKeyInput, input: CounterModeInput): Uint8Array {
  const { lengthBits, counterBits } = input;
  if (!Number.isInteger(lengthBits) || lengthBits <= 0 || lengthBits % 8 !== 0 || lengthBits / 8 > KDF_OUTPUT_BYTES_MAX) {
    fail('COFFER_CRYPTO_INPUT_LENGTH');
  }
  assert([8, 16, 24, 32].includes(counterBits), 'counter width is 8, 16, 24 or 32 bits');
  const outBytes = lengthBits / 8;
  const n = Math.ceil(outBytes / PRF_BYTES);
  // §4.1 step 2: n must not exceed 2^r − 1. Under KDF_OUTPUT_BYTES_MAX (n ≤ 32) this holds for
  // every r; the check keeps it so if the limit is ever raised.
  if (n > 2 ** counterBits - 1) fail('COFFER_CRYPTO_INPUT_LENGTH');
  const k = secretKeyObject(key);
  const out = new Uint8Array(new ArrayBuffer(outBytes));
  for (let i = 1; i <= n; i++) {
    const block = createHmac('sha256', k).update(counterModePrfInput(i, input)).digest();
    out.set(block.subarray(0, Math.min(PRF_BYTES, outBytes - (i - 1) * PRF_BYTES)), (i - 1) * PRF_BYTES);
    block.fill(0);
  }
  return out;
}

/**
 * Coffer's derivation: fixed input = Label || 0x00 || Context || [L]_32 (SP 800-108r1 §5), 32-bit
 * counter before it (§4.1). A label must not contain 0x00, so that the separator keeps Label and
 * Context apart (else "a\0" + "b" and "a" + "\0b" would derive the same key); labels can come
 * from a PKCS#11 caller, so this is a typed refusal, not an assert.
 */
export function deriveKeyCounterHmacSha256(key: SecretKeyInput, label: Uint8Array, context: Uint8Array, lengthBytes: number): SecretBytes {
  if (label.includes(0)) fail('COFFER_MECHANISM_PARAM_INVALID');
  if (!Number.isInteger(lengthBytes) || lengthBytes <= 0 || lengthBytes > KDF_OUTPUT_BYTES_MAX) fail('COFFER_CRYPTO_INPUT_LENGTH');
  const fixed = new Uint8Array(label.length + 1 + context.length + 4);
  fixed.set(label, 0);
  fixed.set(context, label.length + 1);
  new DataView(fixed.buffer).setUint32(fixed.length - 4, lengthBytes * 8, false);
  return SecretBytes.adopt(kdfCounterHmacSha256(key, { counterBits: 32, before: new Uint8Array(0), after: fixed, lengthBits: lengthBytes * 8 }));
}
