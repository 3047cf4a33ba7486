// AES-CMAC (NIST SP 800-38B, RFC 4493) on node:crypto. OpenSSL has CMAC, but Node 20 does not
// expose EVP_MAC, so the MAC is built from the block cipher: the subkeys come from one AES-ECB
// block (§6.1), and the tag is the last block of a CBC encryption under a zero IV in which the
// final block was first masked with K1 or K2 (§6.2). That is one OpenSSL CBC pass over the data.
// Subkeys and intermediate buffers are secret-derived and are zeroised before returning.

import { createCipheriv, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import { constantTimeEqual, secretKeyLength, secretKeyObject, type SecretKeyInput } from './secret_bytes.js';

/** AES block size, and so the CMAC tag size (SP 800-38B §5.3: Tlen ≤ b = 128). */
export const CMAC_BYTES = 16;

const ZERO_BLOCK = new Uint8Array(CMAC_BYTES);

/** The full 16-byte AES-CMAC of `data` under an AES-128/192/256 key (a secret KeyObject or SecretBytes). */
export function aesCmac(keyIn: SecretKeyInput, data: Uint8Array): Uint8Array {
  const bits = aesBits(keyIn);
  const key = secretKeyObject(keyIn); // once: both cipher passes below use it
  const k1 = subkey1(key, bits);
  const k2 = double(k1);
  const complete = data.length > 0 && data.length % CMAC_BYTES === 0;
  // §6.2 steps 2-4: n blocks, the last one masked with K1 (complete) or padded 10* and masked with K2.
  const lastStart = complete ? data.length - CMAC_BYTES : data.length - (data.length % CMAC_BYTES);
  const last = new Uint8Array(CMAC_BYTES);
  last.set(data.subarray(lastStart));
  if (!complete) last[data.length - lastStart] = 0x80;
  const mask = complete ? k1 : k2;
  for (let i = 0; i < CMAC_BYTES; i++) last[i] = (last[i] ?? 0) ^ (mask[i] ?? 0);
  const cbc = createCipheriv(`aes-${bits}-cbc`, key, ZERO_BLOCK).setAutoPadding(false);
  const head = cbc.update(data.subarray(0, lastStart));
  const tail = cbc.update(last);
  cbc.final();
  const tag = new Uint8Array(CMAC_BYTES);
  tag.set(tail.subarray(tail.length - CMAC_BYTES));
  for (const b of [k1, k2, last, head, tail]) b.fill(0);
  return tag;
}

/** Constant-time check of a full-length tag; a truncated or altered tag is false. */
export function aesCmacVerify(key: SecretKeyInput, data: Uint8Array, tag: Uint8Array): boolean {
  const expected = aesCmac(key, data);
  try {
    return constantTimeEqual(expected, tag);
  } finally {
    expected.fill(0);
  }
}

function aesBits(key: SecretKeyInput): number {
  const bytes = secretKeyLength(key);
  if (bytes !== 16 && bytes !== 24 && bytes !== 32) fail('COFFER_CRYPTO_KEY_SIZE', { algorithm: 'AES-CMAC' });
  return bytes * 8;
}

/** §6.1: L = CIPH_K(0^128); K1 = L·x in GF(2^128). */
function subkey1(key: KeyObject, bits: number): Uint8Array {
  const ecb = createCipheriv(`aes-${bits}-ecb`, key, null).setAutoPadding(false);
  const l = ecb.update(ZERO_BLOCK);
  ecb.final();
  const k1 = double(l);
  l.fill(0);
  return k1;
}

/** Multiplication by x: shift left one bit, and if the top bit fell off, xor R_128 = 0x87 (§5.3). */
function double(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(CMAC_BYTES);
  let carry = 0;
  for (let i = CMAC_BYTES - 1; i >= 0; i--) {
    const b = block[i] ?? 0;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  // Constant time: the mask is 0x87 or 0 without a branch on the secret bit.
  out[CMAC_BYTES - 1] = (out[CMAC_BYTES - 1] ?? 0) ^ (0x87 & -carry);
  return out;
}
