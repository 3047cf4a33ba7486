// HKDF with SHA-256 (RFC 5869), for the PKCS#11 HKDF mechanisms and for protocol keys that want an
// extract step. `hkdfSha256` is node's one-shot hkdfSync (extract then expand, §2.2–§2.3);
// `hkdfExtractSha256` and `hkdfExpandSha256` expose the two steps for callers that keep a PRK, and
// let the RFC's PRK values be checked on their own.

import { createHmac, hkdfSync } from 'node:crypto';
import { fail } from '../errors.js';
import { SecretBytes, secretKeyObject, type SecretKeyInput } from './secret_bytes.js';

const HASH_BYTES = 32;
/** RFC 5869 §2.3: L ≤ 255·HashLen. */
export const HKDF_SHA256_OUTPUT_BYTES_MAX = 255 * HASH_BYTES;

function checkLength(lengthBytes: number): void {
  if (!Number.isInteger(lengthBytes) || lengthBytes <= 0 || lengthBytes > HKDF_SHA256_OUTPUT_BYTES_MAX) fail('COFFER_CRYPTO_INPUT_LENGTH');
}

/** HKDF-SHA-256(IKM, salt, info) → OKM of `lengthBytes` (RFC 5869 §2). An empty salt means HashLen zeros (§2.2). */
export function hkdfSha256(ikm: SecretKeyInput, salt: Uint8Array, info: Uint8Array, lengthBytes: number): SecretBytes {
  checkLength(lengthBytes);
  // hkdfSync returns a fresh ArrayBuffer: adopt it rather than copy it.
  return SecretBytes.adopt(new Uint8Array(hkdfSync('sha256', secretKeyObject(ikm), salt, info, lengthBytes)));
}

/** HKDF-Extract (§2.2): PRK = HMAC-SHA-256(salt, IKM). */
export function hkdfExtractSha256(salt: Uint8Array, ikm: SecretKeyInput): SecretBytes {
  // §2.2: "if not provided, [salt] is set to a string of HashLen zeros"; HMAC pads an empty key to
  // the same block of zeros, so both give the same PRK.
  const mac = createHmac('sha256', salt);
  if (ikm instanceof SecretBytes) ikm.use((b) => mac.update(b));
  else {
    const exported = secretKeyObject(ikm).export();
    mac.update(exported);
    exported.fill(0);
  }
  return ownedDigest(mac.digest());
}

/** HKDF-Expand (§2.3): T(i) = HMAC(PRK, T(i−1) || info || i), output the first `lengthBytes`. */
export function hkdfExpandSha256(prk: SecretKeyInput, info: Uint8Array, lengthBytes: number): SecretBytes {
  checkLength(lengthBytes);
  const key = secretKeyObject(prk);
  const out = new Uint8Array(new ArrayBuffer(lengthBytes));
  let previous: Buffer = Buffer.alloc(0);
  for (let i = 1, at = 0; at < lengthBytes; i++) {
    const t = createHmac('sha256', key).update(previous).update(info).update(new Uint8Array([i])).digest();
    previous.fill(0);
    out.set(t.subarray(0, Math.min(HASH_BYTES, lengthBytes - at)), at);
    at += HASH_BYTES;
    previous = t;
  }
  previous.fill(0);
  return SecretBytes.adopt(out);
}

function ownedDigest(digest: Buffer): SecretBytes {
  const s = SecretBytes.copyOf(digest);
  digest.fill(0);
  return s;
}
