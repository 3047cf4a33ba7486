// The sealed record envelope: how one record of a device's sealed store (docs/architecture.md §4) is laid out
// on disk. AES-256-GCM under the device storage key with a fresh 96-bit nonce per write; the header
// and the record's binding (store id, namespace, record id) are the AAD, so a record cannot be
// altered, moved to another id or namespace, or copied into another store without failing
// authentication. Modelled on Vault's barrier_aes_gcm.go (header as AAD) and the AWS Encryption
// SDK's deserialize_header_v2.ts (magic, version and suite first; every length checked first).
//
// Version 1, all integers big-endian:
//
//   offset  size  field
//   0       4     magic "CFSR" (43 46 53 52)
//   4       1     version = 1
//   5       1     suite = 1: AES-256-GCM, 12-byte nonce, 16-byte tag (SP 800-38D)
//   6       1     kind: 1 = store record, 2 = store key check
//   7       12    nonce
//   19      4     n = ciphertext length, ≤ SEALED_RECORD_BYTES_MAX
//   23      n     ciphertext
//   23 + n  16    GCM tag
//
//   AAD = bytes [0, 23) ‖ store id (16 bytes) ‖ u16 len ‖ namespace UTF-8 ‖ u16 len ‖ id UTF-8
//
// The envelope is exactly 23 + n + 16 bytes: trailing bytes are refused, not ignored.

import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { SEALED_NAMESPACE_BYTES_MAX, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX } from './limits.js';

/** "CFSR": Coffer sealed record. */
export const SEALED_RECORD_MAGIC: readonly number[] = [0x43, 0x46, 0x53, 0x52];
export const SEALED_RECORD_VERSION = 1;
/** Suite 1: AES-256-GCM with a 96-bit nonce (SP 800-38D §8.2.2, random construction) and a 128-bit tag. */
export const SUITE_AES_256_GCM = 1;
export const SEALED_RECORD_NONCE_BYTES = 12;
export const SEALED_RECORD_TAG_BYTES = 16;
export const SEALED_RECORD_HEADER_BYTES = 23;
export const SEALED_RECORD_OVERHEAD_BYTES = SEALED_RECORD_HEADER_BYTES + SEALED_RECORD_TAG_BYTES;
/** A store id is 16 random bytes chosen when the store is created. */
export const STORE_ID_BYTES = 16;
export const STORAGE_KEY_BYTES = 32;

/** What a sealed envelope holds: a record of the store, or the store's key-check value. Distinct
 * kinds keep the key check from ever being accepted as a record (and the reverse). */
export const RecordKind = { record: 1, keyCheck: 2 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** Where a record belongs. All of it is authenticated (as AAD), none of it is stored in the envelope. */
export interface RecordBinding {
  readonly kind: RecordKind;
  readonly storeId: Uint8Array;
  readonly ns: string;
  readonly id: string;
}

/** The parsed, not yet authenticated, header of an envelope (`nonce` is a view into it). */
export interface SealedRecordHeader {
  readonly version: number;
  readonly suite: number;
  readonly kind: RecordKind;
  readonly nonce: Uint8Array;
  readonly ciphertextBytes: number;
}

const FORMAT = 'sealed record';
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Seals `plaintext` for `binding` under `key` (AES-256) with the given 12-byte `nonce`, which the
 * caller draws fresh from a CSPRNG for every write; tests pass a fixed one for golden vectors. */
export function sealRecord(key: KeyObject, binding: RecordBinding, plaintext: Uint8Array, nonce: Uint8Array): Uint8Array {
  checkKey(key);
  assert(nonce.length === SEALED_RECORD_NONCE_BYTES, 'sealed record nonce is 12 bytes');
  if (plaintext.length > SEALED_RECORD_BYTES_MAX) {
    fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field: 'plaintext', limit: 'SEALED_RECORD_BYTES_MAX' });
  }
  const n = plaintext.length;
  const out = new Uint8Array(SEALED_RECORD_OVERHEAD_BYTES + n);
  const view = new DataView(out.buffer);
  out.set(SEALED_RECORD_MAGIC, 0);
  view.setUint8(4, SEALED_RECORD_VERSION);
  view.setUint8(5, SUITE_AES_256_GCM);
  view.setUint8(6, binding.kind);
  out.set(nonce, 7);
  view.setUint32(19, n);
  const header = out.subarray(0, SEALED_RECORD_HEADER_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: SEALED_RECORD_TAG_BYTES });
  cipher.setAAD(additionalData(header, binding));
  const body = cipher.update(plaintext);
  const last = cipher.final();
  assert(body.length + last.length === n, 'GCM ciphertext has the plaintext length');
  out.set(body, SEALED_RECORD_HEADER_BYTES);
  out.set(last, SEALED_RECORD_HEADER_BYTES + body.length);
  out.set(cipher.getAuthTag(), SEALED_RECORD_HEADER_BYTES + n);
  return out;
}

/**
 * Checks and parses the header of `envelope` without any crypto: magic, then version, then suite,
 * kind and lengths, each before anything that depends on it is read (CONTRIBUTING.md rule 4).
 */
export function decodeHeader(envelope: Uint8Array): SealedRecordHeader {
  const view = new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  if (envelope.length < SEALED_RECORD_MAGIC.length) fail('COFFER_FORMAT_TRUNCATED', { format: FORMAT, field: 'magic' });
  if (!SEALED_RECORD_MAGIC.every((b, i) => envelope[i] === b)) fail('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT });
  if (envelope.length < 5) fail('COFFER_FORMAT_TRUNCATED', { format: FORMAT, field: 'version' });
  const version = view.getUint8(4);
  if (version !== SEALED_RECORD_VERSION) {
    // Written by a newer (or unknown) build: say which version was found and which this build reads.
    fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: FORMAT, version, supported: String(SEALED_RECORD_VERSION) });
  }
  if (envelope.length < SEALED_RECORD_HEADER_BYTES) fail('COFFER_FORMAT_TRUNCATED', { format: FORMAT, field: 'header' });
  const suite = view.getUint8(5);
  if (suite !== SUITE_AES_256_GCM) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'suite', suite });
  const kind = view.getUint8(6);
  if (kind !== RecordKind.record && kind !== RecordKind.keyCheck) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'kind' });
  const ciphertextBytes = view.getUint32(19);
  if (ciphertextBytes > SEALED_RECORD_BYTES_MAX) {
    fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field: 'ciphertext', limit: 'SEALED_RECORD_BYTES_MAX' });
  }
  const total = SEALED_RECORD_OVERHEAD_BYTES + ciphertextBytes;
  if (envelope.length < total) fail('COFFER_FORMAT_TRUNCATED', { format: FORMAT, field: 'ciphertext' });
  if (envelope.length > total) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'trailing bytes' });
  const nonce = envelope.subarray(7, 7 + SEALED_RECORD_NONCE_BYTES);
  return { version, suite, kind, nonce, ciphertextBytes };
}

/**
 * Authenticates and decrypts `envelope` for `binding`. Format errors are COFFER_FORMAT_*; a
 * failed tag (altered bytes, wrong key, wrong binding) is COFFER_CRYPTO_DECRYPT_FAILED. The
 * plaintext is a fresh buffer; nothing of it is returned unless the tag verified.
 */
export function openRecord(key: KeyObject, binding: RecordBinding, envelope: Uint8Array): Uint8Array {
  checkKey(key);
  const h = decodeHeader(envelope);
  if (h.kind !== binding.kind) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'kind' });
  const header = envelope.subarray(0, SEALED_RECORD_HEADER_BYTES);
  const tagAt = SEALED_RECORD_HEADER_BYTES + h.ciphertextBytes;
  const decipher = createDecipheriv('aes-256-gcm', key, h.nonce, { authTagLength: SEALED_RECORD_TAG_BYTES });
  decipher.setAAD(additionalData(header, binding));
  decipher.setAuthTag(envelope.subarray(tagAt, tagAt + SEALED_RECORD_TAG_BYTES));
  const plaintext = new Uint8Array(h.ciphertextBytes);
  const body = decipher.update(envelope.subarray(SEALED_RECORD_HEADER_BYTES, tagAt));
  try {
    plaintext.set(body, 0);
    const last = decipher.final();
    plaintext.set(last, body.length);
    return plaintext;
  } catch (e) {
    plaintext.fill(0);
    return fail('COFFER_CRYPTO_DECRYPT_FAILED', { format: FORMAT }, e);
  } finally {
    body.fill(0);
  }
}

/** AAD = header ‖ store id ‖ u16 len ‖ namespace ‖ u16 len ‖ id (lengths make the encoding injective). */
function additionalData(header: Uint8Array, binding: RecordBinding): Uint8Array {
  assert(binding.storeId.length === STORE_ID_BYTES, 'store id is 16 bytes');
  const nsBytes = utf8Length(binding.ns, 'namespace', SEALED_NAMESPACE_BYTES_MAX, 'SEALED_NAMESPACE_BYTES_MAX');
  const idBytes = utf8Length(binding.id, 'id', SEALED_RECORD_ID_BYTES_MAX, 'SEALED_RECORD_ID_BYTES_MAX');
  const aad = Buffer.alloc(header.length + STORE_ID_BYTES + 2 + nsBytes + 2 + idBytes);
  let at = 0;
  aad.set(header, at);
  at += header.length;
  aad.set(binding.storeId, at);
  at = aad.writeUInt16BE(nsBytes, at + STORE_ID_BYTES);
  at += aad.write(binding.ns, at, 'utf8');
  at = aad.writeUInt16BE(idBytes, at);
  at += aad.write(binding.id, at, 'utf8');
  assert(at === aad.length, 'AAD filled exactly');
  return aad;
}

/** UTF-8 length of a namespace or id, refused when over its limit or not well-formed Unicode (a
 * lone surrogate would become U+FFFD, giving two distinct ids one encoding). */
function utf8Length(s: string, field: string, bytesMax: number, limit: string): number {
  // UTF-8 never has fewer bytes than UTF-16 code units: a cheap refusal before measuring.
  if (s.length > bytesMax) fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field, limit });
  if (LONE_SURROGATE.test(s)) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field });
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes > bytesMax) fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field, limit });
  return bytes;
}

function checkKey(key: KeyObject): void {
  assert(key.type === 'secret' && key.symmetricKeySize === STORAGE_KEY_BYTES, 'sealed records use a 256-bit secret key');
}
