// RSA mechanisms of the device (docs/architecture.md §4) on node:crypto: PKCS#1 v1.5 and PSS signatures (hashed
// and over a caller's digest), OAEP and PKCS#1 v1.5 encryption. Decisions (copied into docs/):
//   - CKM_RSA_PKCS sign signs the caller's bytes as they are (normally a DER DigestInfo, RFC 8017
//     §9.2), up to k − 11 bytes: RSASSA-PKCS1-v1_5 with the encoding done by the caller, as PKCS#11
//     specifies. Verification recovers the bytes and compares them in constant time.
//   - CKM_RSA_PKCS encryption (RSAES-PKCS1-v1_5) is not approved for key transport after 2023
//     (SP 800-131A r2 §6): FIPS mode refuses it. CKM_RSA_PKCS *decryption* is not offered at all:
//     Node 20 refuses RSA_PKCS1_PADDING private decryption (CVE-2023-46809, the Marvin timing attack)
//     unless the process runs with --security-revert, and OpenSSL 3.0 has no implicit rejection.
//     Decrypting with our own unpadding would reopen that oracle, so the device encrypts only.
//   - CKM_RSA_PKCS_PSS signs a caller's digest (its length must be the hash's): EMSA-PSS
//     (RFC 8017 §9.1) is encoded here and the RSA operation is OpenSSL's raw private operation.
//     The salt length defaults to the hash length. FIPS mode refuses SHA-1 in signatures.
//   - OAEP uses one hash for the label hash and MGF1 (node sets both from oaepHash).

import {
  constants,
  createHash,
  privateDecrypt,
  privateEncrypt,
  publicDecrypt,
  publicEncrypt,
  randomBytes,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import { fail } from '../../errors.js';
import { constantTimeEqual } from '../../crypto/secret_bytes.js';
import { HASH_BYTES, NODE_HASH } from './mech_hash.js';
import type { KeyMaterial } from './mech_keys.js';
import type { HashName } from '../types.js';

/** RFC 8017 §7.2.1 / §8.2.1: PKCS#1 v1.5 padding takes at least 11 bytes. */
const PKCS1_OVERHEAD_BYTES = 11;
/** node's padding constant for RSASSA-PSS, for callers that build sign options themselves. */
export const PSS_PADDING = constants.RSA_PKCS1_PSS_PADDING;
/** RFC 8017 §9.1.1 step 12: the trailer field. */
const PSS_TRAILER = 0xbc;

export function modulusBytes(key: KeyMaterial): number {
  return Math.ceil(key.bits / 8);
}

// ── PKCS#1 v1.5 signatures ──────────────────────────────────────────────────────────────────

/** CKM_RSA_PKCS sign: the caller's (DigestInfo) bytes, type-1 padded and raised to d. */
export function pkcs1SignRaw(key: KeyMaterial, data: Uint8Array): Uint8Array {
  if (data.length > modulusBytes(key) - PKCS1_OVERHEAD_BYTES) fail('COFFER_DATA_LEN_RANGE');
  return privateEncrypt({ key: key.key, padding: constants.RSA_PKCS1_PADDING }, data);
}

export function pkcs1VerifyRaw(key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== modulusBytes(key)) return false;
  let recovered: Uint8Array;
  try {
    recovered = publicDecrypt({ key: key.key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
  return constantTimeEqual(recovered, data);
}

export function pkcs1Sign(hash: HashName, key: KeyMaterial, data: Uint8Array): Uint8Array {
  return nodeSign(NODE_HASH[hash], data, key.key);
}

export function pkcs1Verify(hash: HashName, key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  return nodeVerify(NODE_HASH[hash], data, key.key, signature);
}

// ── PSS ─────────────────────────────────────────────────────────────────────────────────────

/** RFC 8017 §9.1.1 step 3: emLen ≥ hLen + sLen + 2, with emBits = modBits − 1. */
export function pssSaltFits(key: KeyMaterial, hash: HashName, saltBytes: number): boolean {
  const emLen = Math.ceil((key.bits - 1) / 8);
  return Number.isInteger(saltBytes) && saltBytes >= 0 && emLen >= HASH_BYTES[hash] + saltBytes + 2;
}

export function pssSign(hash: HashName, saltBytes: number, key: KeyMaterial, data: Uint8Array): Uint8Array {
  return nodeSign(NODE_HASH[hash], data, { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltBytes });
}

export function pssVerify(hash: HashName, saltBytes: number, key: KeyMaterial, data: Uint8Array, signature: Uint8Array): boolean {
  return nodeVerify(NODE_HASH[hash], data, { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltBytes }, signature);
}

/** CKM_RSA_PKCS_PSS sign over a caller's digest: EMSA-PSS-ENCODE (RFC 8017 §9.1.1), then RSASP1. */
export function pssSignDigest(hash: HashName, saltBytes: number, key: KeyMaterial, mHash: Uint8Array): Uint8Array {
  const hLen = HASH_BYTES[hash];
  if (mHash.length !== hLen) fail('COFFER_DATA_LEN_RANGE', { reason: 'digest length' });
  const k = modulusBytes(key);
  const emBits = key.bits - 1;
  const emLen = Math.ceil(emBits / 8);
  const salt = randomBytes(saltBytes);
  const h = pssHash(hash, mHash, salt);
  const db = new Uint8Array(emLen - hLen - 1); // PS || 0x01 || salt
  db[db.length - saltBytes - 1] = 0x01;
  db.set(salt, db.length - saltBytes);
  xorInPlace(db, mgf1(hash, h, db.length));
  db[0] = (db[0] ?? 0) & (0xff >>> (8 * emLen - emBits));
  const em = new Uint8Array(k); // a leading zero byte when emLen < k
  em.set(db, k - emLen);
  em.set(h, k - emLen + db.length);
  em[k - 1] = PSS_TRAILER;
  return privateEncrypt({ key: key.key, padding: constants.RSA_NO_PADDING }, em);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with a known salt length. */
export function pssVerifyDigest(hash: HashName, saltBytes: number, key: KeyMaterial, mHash: Uint8Array, signature: Uint8Array): boolean {
  const hLen = HASH_BYTES[hash];
  const k = modulusBytes(key);
  if (mHash.length !== hLen || signature.length !== k) return false;
  let m: Uint8Array;
  try {
    m = publicDecrypt({ key: key.key, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false;
  }
  const emBits = key.bits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (m.length !== k || (k > emLen && m[0] !== 0)) return false;
  const em = m.subarray(k - emLen);
  const topMask = 0xff >>> (8 * emLen - emBits);
  if (em[emLen - 1] !== PSS_TRAILER || ((em[0] ?? 0) & ~topMask) !== 0) return false;
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const db = mgf1(hash, h, emLen - hLen - 1);
  xorInPlace(db, em.subarray(0, emLen - hLen - 1));
  db[0] = (db[0] ?? 0) & topMask;
  const separator = db.length - saltBytes - 1;
  if (separator < 0 || db[separator] !== 0x01) return false;
  for (let i = 0; i < separator; i++) if (db[i] !== 0) return false;
  return constantTimeEqual(h, pssHash(hash, mHash, db.subarray(separator + 1)));
}

/** H = Hash(0x00 × 8 || mHash || salt) (RFC 8017 §9.1.1 steps 5–6). */
function pssHash(hash: HashName, mHash: Uint8Array, salt: Uint8Array): Uint8Array {
  return createHash(NODE_HASH[hash]).update(new Uint8Array(8)).update(mHash).update(salt).digest();
}

/** MGF1 (RFC 8017 §B.2.1). */
function mgf1(hash: HashName, seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const counter = new Uint8Array(4);
  for (let offset = 0, i = 0; offset < length; i++) {
    new DataView(counter.buffer).setUint32(0, i);
    const block = createHash(NODE_HASH[hash]).update(seed).update(counter).digest();
    out.set(block.subarray(0, Math.min(block.length, length - offset)), offset);
    offset += block.length;
  }
  return out;
}

function xorInPlace(target: Uint8Array, other: Uint8Array): void {
  for (let i = 0; i < target.length; i++) target[i] = (target[i] ?? 0) ^ (other[i] ?? 0);
}

// ── Encryption ──────────────────────────────────────────────────────────────────────────────

export function oaepMaxBytes(key: KeyMaterial, hash: HashName): number {
  return modulusBytes(key) - 2 * HASH_BYTES[hash] - 2; // RFC 8017 §7.1.1 step 1b
}

export function oaepEncrypt(hash: HashName, label: Uint8Array | undefined, key: KeyMaterial, data: Uint8Array): Uint8Array {
  if (data.length > oaepMaxBytes(key, hash)) fail('COFFER_DATA_LEN_RANGE');
  const options = { key: key.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: NODE_HASH[hash] };
  return publicEncrypt(label === undefined ? options : { ...options, oaepLabel: label }, data);
}

/** Every failure is the same error, with no cause attached (RFC 8017 §7.1.2 note: no oracle). */
export function oaepDecrypt(hash: HashName, label: Uint8Array | undefined, key: KeyMaterial, input: Uint8Array): Uint8Array {
  if (input.length !== modulusBytes(key)) fail('COFFER_ENCRYPTED_DATA_INVALID');
  const options = { key: key.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: NODE_HASH[hash] };
  try {
    return privateDecrypt(label === undefined ? options : { ...options, oaepLabel: label }, input);
  } catch {
    return fail('COFFER_ENCRYPTED_DATA_INVALID');
  }
}

export function pkcs1Encrypt(key: KeyMaterial, data: Uint8Array): Uint8Array {
  if (data.length > modulusBytes(key) - PKCS1_OVERHEAD_BYTES) fail('COFFER_DATA_LEN_RANGE');
  return publicEncrypt({ key: key.key, padding: constants.RSA_PKCS1_PADDING }, data);
}
