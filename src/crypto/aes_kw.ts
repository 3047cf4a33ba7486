// AES key wrap, SP 800-38F §6.2 (KW, = RFC 3394) and §6.3 (KWP, = RFC 5649), with 128/192/256-bit
// KEKs. Coffer wraps each backup's BEK under the PBK with KW (docs/architecture.md §3), and offers both modes
// as PKCS#11 mechanisms (CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_KWP).
//
// Built on OpenSSL's `id-aesNNN-wrap` / `id-aesNNN-wrap-pad` ciphers, with the default ICVs given
// explicitly (§6.2: ICV1 = A6A6A6A6A6A6A6A6; §6.3: ICV2 = A65959A6). OpenSSL passes every record of
// the CAVP KW/KWP vectors, FAIL records included, but it is more lenient than the spec at the
// edges, so the length rules are checked here before OpenSSL runs:
//   - it "wraps" and "unwraps" an empty input to an empty output (§6.2/§6.3 need at least one
//     semiblock of plaintext for KW-AE, one octet for KWP-AE);
//   - each `update` call is wrapped independently, so the input must go in one call.
// Integrity failures and malformed lengths on unwrap are one error (COFFER_CRYPTO_UNWRAP_FAILED
// for a failed check, COFFER_CRYPTO_INPUT_LENGTH for an impossible length); OpenSSL's own message
// is dropped so nothing about the failing check leaks.

import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import { secretKeyLength, secretKeyObject, type SecretKeyInput } from './secret_bytes.js';

/** §6.2 default ICV1 for KW. */
const KW_ICV = new Uint8Array([0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6]);
/** §6.3 ICV2 for KWP; OpenSSL appends the 32-bit message length indicator itself. */
const KWP_ICV = new Uint8Array([0xa6, 0x59, 0x59, 0xa6]);
/** One semiblock (§4.1): KW works on 64-bit halves of an AES block. */
const SEMIBLOCK_BYTES = 8;
/**
 * Largest plaintext accepted. §5.3.1 allows up to 2^54 semiblocks; Coffer wraps keys (at most a few
 * KiB of PKCS#8) and OpenSSL's wrap processes the whole input in one call, so 1 MiB bounds memory
 * and time per call far above any key.
 */
export const KW_DATA_BYTES_MAX = 1024 * 1024;

type Mode = 'kw' | 'kwp';

function cipherName(kekBytes: number, mode: Mode): string {
  if (kekBytes !== 16 && kekBytes !== 24 && kekBytes !== 32) fail('COFFER_CRYPTO_KEY_SIZE');
  return `id-aes${kekBytes * 8}-wrap${mode === 'kwp' ? '-pad' : ''}`;
}

function kekObject(kek: SecretKeyInput, mode: Mode): { key: KeyObject; name: string } {
  const name = cipherName(secretKeyLength(kek), mode);
  return { key: secretKeyObject(kek), name };
}

/** Copies a Buffer that may hold key material into an owned array, then wipes the Buffer. */
function owned(parts: readonly Buffer[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(new ArrayBuffer(total));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
    p.fill(0);
  }
  return out;
}

function runWrap(kek: SecretKeyInput, mode: Mode, data: Uint8Array): Uint8Array {
  const { key, name } = kekObject(kek, mode);
  const cipher = createCipheriv(name, key, mode === 'kw' ? KW_ICV : KWP_ICV);
  // One update: OpenSSL wraps each update call as a message of its own.
  return owned([cipher.update(data), cipher.final()]);
}

function runUnwrap(kek: SecretKeyInput, mode: Mode, wrapped: Uint8Array): Uint8Array {
  const { key, name } = kekObject(kek, mode);
  const decipher = createDecipheriv(name, key, mode === 'kw' ? KW_ICV : KWP_ICV);
  let first: Buffer;
  try {
    first = decipher.update(wrapped);
  } catch {
    // OpenSSL reports a failed ICV or padding check here; its text says which.
    return fail('COFFER_CRYPTO_UNWRAP_FAILED');
  }
  try {
    return owned([first, decipher.final()]);
  } catch {
    first.fill(0);
    return fail('COFFER_CRYPTO_UNWRAP_FAILED');
  }
}

/** KW-AE (§6.2, RFC 3394 §2.2.1): data of ≥ 16 bytes, a multiple of 8. Output is 8 bytes longer. */
export function kwWrap(kek: SecretKeyInput, data: Uint8Array): Uint8Array {
  if (data.length < 2 * SEMIBLOCK_BYTES || data.length % SEMIBLOCK_BYTES !== 0 || data.length > KW_DATA_BYTES_MAX) {
    fail('COFFER_CRYPTO_INPUT_LENGTH');
  }
  return runWrap(kek, 'kw', data);
}

/** KW-AD (§6.2, RFC 3394 §2.2.2): wrapped input of ≥ 24 bytes, a multiple of 8. */
export function kwUnwrap(kek: SecretKeyInput, wrapped: Uint8Array): Uint8Array {
  if (wrapped.length < 3 * SEMIBLOCK_BYTES || wrapped.length % SEMIBLOCK_BYTES !== 0 || wrapped.length > KW_DATA_BYTES_MAX + SEMIBLOCK_BYTES) {
    fail('COFFER_CRYPTO_INPUT_LENGTH');
  }
  return runUnwrap(kek, 'kw', wrapped);
}

/** KWP-AE (§6.3, RFC 5649 §4.1): any data of 1 byte or more; output is padded to 8 and 8 longer. */
export function kwpWrap(kek: SecretKeyInput, data: Uint8Array): Uint8Array {
  if (data.length < 1 || data.length > KW_DATA_BYTES_MAX) fail('COFFER_CRYPTO_INPUT_LENGTH');
  return runWrap(kek, 'kwp', data);
}

/** KWP-AD (§6.3, RFC 5649 §4.2): wrapped input of ≥ 16 bytes, a multiple of 8. */
export function kwpUnwrap(kek: SecretKeyInput, wrapped: Uint8Array): Uint8Array {
  if (wrapped.length < 2 * SEMIBLOCK_BYTES || wrapped.length % SEMIBLOCK_BYTES !== 0 || wrapped.length > KW_DATA_BYTES_MAX + 2 * SEMIBLOCK_BYTES) {
    fail('COFFER_CRYPTO_INPUT_LENGTH');
  }
  return runUnwrap(kek, 'kwp', wrapped);
}
