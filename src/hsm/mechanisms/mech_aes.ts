// AES mechanisms of the device (docs/architecture.md §4): GCM, CBC-PAD, CBC, ECB, CTR, CMAC, KW and KWP, on node:crypto
// with the key kept as a KeyObject. Decisions (copied into docs/ by the lead):
//   - GCM IV (SP 800-38D §8.2): with no `iv` parameter the device draws a random 12-byte IV and
//     encryption returns iv || ciphertext || tag; decryption then takes iv || ciphertext || tag.
//     A caller-supplied IV (1..128 bytes) gives ciphertext || tag and is refused for encryption in
//     FIPS mode (the device cannot vouch for its uniqueness; see mechanisms.ts), accepted outside it
//     and always for decryption. Tags are 12..16 bytes (SP 800-38D §5.2.1.2: 96..128 bits), default 16,
//     in both modes; shorter tags (32/64 bits, Appendix C) are refused.
//   - CBC-PAD: PKCS#7 padding (RFC 5652 §6.3). Every decryption failure — length not a positive
//     multiple of 16, or bad padding — is the same COFFER_ENCRYPTED_DATA_INVALID with no detail, and
//     the padding is checked without data-dependent branches, so the device is no padding oracle.
//   - CBC and ECB without padding (SP 800-38A §6.1, §6.2; PKCS#11's CKM_AES_CBC and CKM_AES_ECB):
//     whole blocks only, as PKCS#11 specifies: other plaintext lengths are COFFER_DATA_LEN_RANGE,
//     other ciphertext lengths COFFER_ENCRYPTED_DATA_LEN_RANGE (a length says nothing about a key or
//     a plaintext; there is no padding to check). ECB shows equal plaintext blocks as equal
//     ciphertext blocks: it is for what needs it (a single block, a key check value, a protocol that
//     asks for it), not for messages.
//   - CTR: `iv` is the whole 16-byte initial counter block; `counterBits` (1..128, default 128) is how
//     many low-order bits count (PKCS#11 CK_AES_CTR_PARAMS). A message that would wrap the counter is
//     refused (COFFER_DATA_LEN_RANGE) rather than reuse a counter block (SP 800-38A §B.2).
//   - KW (SP 800-38F §6.2, RFC 3394) and KWP (§6.3, RFC 5649) encrypt, decrypt, wrap and unwrap.

import { createCipheriv, createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { fail } from '../../errors.js';
import { CRYPTO_INPUT_BYTES_MAX, GCM_IV_BYTES_MAX } from '../../formats/limits.js';
import { aesCmac, aesCmacVerify } from '../../crypto/cmac.js';
import { kwpUnwrap, kwpWrap, kwUnwrap, kwWrap } from '../../crypto/index.js';
import type { KeyMaterial } from './mech_keys.js';
import { AES_BLOCK_BYTES } from '../../formats/mechanism_params.js';
import type { MechanismParams } from '../types.js';

type GcmParams = Extract<MechanismParams, { mechanism: 'CKM_AES_GCM' }>;
type CbcParams = Extract<MechanismParams, { mechanism: 'CKM_AES_CBC_PAD' }>;
type CtrParams = Extract<MechanismParams, { mechanism: 'CKM_AES_CTR' }>;
type BlocksParams = Extract<MechanismParams, { mechanism: 'CKM_AES_CBC' | 'CKM_AES_ECB' }>;

/** SP 800-38D §8.2.2: a random IV of 96 bits is the recommended construction. */
export const GCM_DEVICE_IV_BYTES = 12;
export const GCM_TAG_BYTES_MIN = 12;
export const GCM_TAG_BYTES_MAX = 16;
export const GCM_TAG_BYTES_DEFAULT = 16;
const CTR_COUNTER_BITS_MAX = 128;

const GCM_NAME: Readonly<Record<number, CipherGCMTypes>> = { 128: 'aes-128-gcm', 192: 'aes-192-gcm', 256: 'aes-256-gcm' };
const CBC_NAME: Readonly<Record<number, string>> = { 128: 'aes-128-cbc', 192: 'aes-192-cbc', 256: 'aes-256-cbc' };
const CTR_NAME: Readonly<Record<number, string>> = { 128: 'aes-128-ctr', 192: 'aes-192-ctr', 256: 'aes-256-ctr' };
const ECB_NAME: Readonly<Record<number, string>> = { 128: 'aes-128-ecb', 192: 'aes-192-ecb', 256: 'aes-256-ecb' };

function cipherName<T>(table: Readonly<Record<number, T>>, key: KeyMaterial): T {
  return table[key.bits] ?? fail('COFFER_KEY_SIZE_RANGE', { keyType: 'AES', bits: key.bits });
}

// ── GCM ─────────────────────────────────────────────────────────────────────────────────────

export function checkGcmParams(p: GcmParams): void {
  if (p.iv !== undefined && (p.iv.length < 1 || p.iv.length > GCM_IV_BYTES_MAX)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'iv' });
  const t = p.tagBytes;
  if (t !== undefined && !(Number.isInteger(t) && t >= GCM_TAG_BYTES_MIN && t <= GCM_TAG_BYTES_MAX)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'tagBytes' });
  if (p.aad !== undefined && p.aad.length > CRYPTO_INPUT_BYTES_MAX) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'aad' });
}

export function gcmEncrypt(p: GcmParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  checkGcmParams(p);
  const authTagLength = p.tagBytes ?? GCM_TAG_BYTES_DEFAULT;
  const iv = p.iv ?? randomBytes(GCM_DEVICE_IV_BYTES);
  const cipher = createCipheriv(cipherName(GCM_NAME, key), key.key, iv, { authTagLength });
  if (p.aad !== undefined) cipher.setAAD(p.aad);
  const body = cipher.update(data);
  cipher.final(); // GCM is a stream mode: final() emits nothing and computes the tag.
  const tag = cipher.getAuthTag();
  return p.iv === undefined ? Buffer.concat([iv, body, tag]) : Buffer.concat([body, tag]);
}

export function gcmDecrypt(p: GcmParams, key: KeyMaterial, input: Uint8Array): Uint8Array {
  checkGcmParams(p);
  const authTagLength = p.tagBytes ?? GCM_TAG_BYTES_DEFAULT;
  const ivBytes = p.iv === undefined ? GCM_DEVICE_IV_BYTES : 0;
  if (input.length < ivBytes + authTagLength) fail('COFFER_ENCRYPTED_DATA_INVALID');
  const iv = p.iv ?? input.subarray(0, GCM_DEVICE_IV_BYTES);
  const decipher = createDecipheriv(cipherName(GCM_NAME, key), key.key, iv, { authTagLength });
  decipher.setAuthTag(input.subarray(input.length - authTagLength));
  if (p.aad !== undefined) decipher.setAAD(p.aad);
  const plain = decipher.update(input.subarray(ivBytes, input.length - authTagLength));
  try {
    decipher.final();
  } catch {
    plain.fill(0); // unauthenticated plaintext never leaves the device
    fail('COFFER_ENCRYPTED_DATA_INVALID');
  }
  return plain;
}

// ── CBC-PAD ─────────────────────────────────────────────────────────────────────────────────

export function checkBlockIv(iv: Uint8Array): void {
  if (iv.length !== AES_BLOCK_BYTES) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'iv' });
}

export function cbcPadEncrypt(p: CbcParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  checkBlockIv(p.iv);
  const cipher = createCipheriv(cipherName(CBC_NAME, key), key.key, p.iv); // PKCS#7 padding is node's default
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

export function cbcPadDecrypt(p: CbcParams, key: KeyMaterial, input: Uint8Array): Uint8Array {
  checkBlockIv(p.iv);
  if (input.length === 0 || input.length % AES_BLOCK_BYTES !== 0) fail('COFFER_ENCRYPTED_DATA_INVALID');
  const decipher = createDecipheriv(cipherName(CBC_NAME, key), key.key, p.iv).setAutoPadding(false);
  const padded = decipher.update(input);
  decipher.final();
  const padBytes = pkcs7PadBytes(padded);
  if (padBytes === 0) {
    padded.fill(0);
    fail('COFFER_ENCRYPTED_DATA_INVALID');
  }
  const plain = Uint8Array.from(padded.subarray(0, padded.length - padBytes)); // a copy: Buffer#slice would share
  padded.fill(0);
  return plain;
}

/**
 * Length of valid PKCS#7 padding at the end of `block`s, or 0 when it is invalid. The loop always
 * reads the last 16 bytes and folds every check into one flag, so time does not depend on where the
 * padding went wrong (a padding oracle needs exactly that signal).
 */
export function pkcs7PadBytes(padded: Uint8Array): number {
  const n = padded.length;
  const pad = padded[n - 1] ?? 0;
  // bad = 1 when pad == 0 or pad > 16
  let bad = ((pad - 1) >>> 31) | ((AES_BLOCK_BYTES - pad) >>> 31);
  for (let i = 0; i < AES_BLOCK_BYTES; i++) {
    const inPad = (i - pad) >>> 31; // 1 while i < pad
    const diff = (padded[n - 1 - i] ?? 0) ^ pad;
    bad |= inPad & ((diff | -diff) >>> 31);
  }
  return pad & (bad - 1); // pad when bad == 0, else 0
}

// ── CBC and ECB without padding ─────────────────────────────────────────────────────────────

/** CKM_AES_CBC and CKM_AES_ECB, either way: whole blocks in, the same number of blocks out. */
export function blocksCrypt(direction: 'encrypt' | 'decrypt', p: BlocksParams, key: KeyMaterial, input: Uint8Array): Uint8Array {
  if (p.mechanism === 'CKM_AES_CBC') checkBlockIv(p.iv);
  if (input.length % AES_BLOCK_BYTES !== 0) fail(direction === 'encrypt' ? 'COFFER_DATA_LEN_RANGE' : 'COFFER_ENCRYPTED_DATA_LEN_RANGE', { blockBytes: AES_BLOCK_BYTES });
  const name = p.mechanism === 'CKM_AES_CBC' ? cipherName(CBC_NAME, key) : cipherName(ECB_NAME, key);
  const iv = p.mechanism === 'CKM_AES_CBC' ? p.iv : null;
  const cipher = (direction === 'encrypt' ? createCipheriv(name, key.key, iv) : createDecipheriv(name, key.key, iv)).setAutoPadding(false);
  return Buffer.concat([cipher.update(input), cipher.final()]);
}

// ── CTR ─────────────────────────────────────────────────────────────────────────────────────

export function checkCtrParams(p: CtrParams): void {
  checkBlockIv(p.iv);
  const bits = p.counterBits;
  if (bits !== undefined && !(Number.isInteger(bits) && bits >= 1 && bits <= CTR_COUNTER_BITS_MAX)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'counterBits' });
}

/** CTR encryption and decryption are the same operation. */
export function ctrCrypt(p: CtrParams, key: KeyMaterial, data: Uint8Array): Uint8Array {
  checkCtrParams(p);
  checkCounterRoom(p.iv, p.counterBits ?? CTR_COUNTER_BITS_MAX, data.length);
  const cipher = createCipheriv(cipherName(CTR_NAME, key), key.key, p.iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/**
 * OpenSSL increments the whole 128-bit block; that equals PKCS#11's `counterBits`-bit counter as long
 * as the counter never wraps, so a message is refused when its blocks would run past 2^counterBits.
 */
function checkCounterRoom(iv: Uint8Array, counterBits: number, dataBytes: number): void {
  const blocks = BigInt(Math.ceil(dataBytes / AES_BLOCK_BYTES));
  if (blocks === 0n) return;
  let counter = 0n;
  for (const b of iv) counter = (counter << 8n) | BigInt(b);
  const modulus = 1n << BigInt(counterBits);
  if ((counter % modulus) + blocks > modulus) fail('COFFER_DATA_LEN_RANGE', { reason: 'counter would wrap' });
}

// ── CMAC ────────────────────────────────────────────────────────────────────────────────────

export function cmacSign(key: KeyMaterial, data: Uint8Array): Uint8Array {
  return aesCmac(key.key, data);
}

export function cmacVerify(key: KeyMaterial, data: Uint8Array, mac: Uint8Array): boolean {
  return aesCmacVerify(key.key, data, mac);
}

// ── KW / KWP ────────────────────────────────────────────────────────────────────────────────

// The KW primitives take the KEK as a KeyObject: no export of the key bytes.

export function kwEncrypt(padded: boolean, key: KeyMaterial, data: Uint8Array): Uint8Array {
  return padded ? kwpWrap(key.key, data) : kwWrap(key.key, data);
}

/** Unwrapped bytes are owned by the caller (and are zeroised by it when they are key material). */
export function kwDecrypt(padded: boolean, key: KeyMaterial, data: Uint8Array): Uint8Array {
  return padded ? kwpUnwrap(key.key, data) : kwUnwrap(key.key, data);
}
