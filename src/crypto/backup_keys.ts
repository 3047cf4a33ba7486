// Backup-key helpers every party needs (docs/architecture.md §3): the size of the MKBK, the AKBK and
// its components, their non-secret key ids, and the XOR that joins AKBK components. The factory
// makes the keys, the device installs and uses them; both compute ids and check values the same way.

import { createHmac } from 'node:crypto';
import { fail } from '../errors.js';
import { SecretBytes } from './secret_bytes.js';

/** MKBK, AKBK and AKBK components: 256-bit keys (docs/architecture.md §3). */
export const BACKUP_KEY_BYTES = 32;
const KEY_ID_LABEL = 'coffer key id v1';
const KEY_ID_BYTES = 8;

/**
 * Non-secret identifier of a backup key (MKBK, AKBK): the first 8 bytes of
 * HMAC-SHA-256(key, "coffer key id v1"). A device compares a backup's key ids with its own without
 * revealing either key. 64 bits tell keys apart; like a KCV, an id only confirms a guess of the
 * whole 256-bit key, which is out of reach. The label separates it from every other use of the key.
 */
export function keyId(key: Uint8Array): Uint8Array {
  if (key.length !== BACKUP_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expected: BACKUP_KEY_BYTES });
  return new Uint8Array(createHmac('sha256', key).update(KEY_ID_LABEL, 'utf8').digest().subarray(0, KEY_ID_BYTES));
}

/** XOR of equal-length components into a fresh secret (the caller destroys it). */
export function xorComponents(components: readonly SecretBytes[]): SecretBytes {
  const out = SecretBytes.adopt(new Uint8Array(new ArrayBuffer(BACKUP_KEY_BYTES)));
  try {
    out.use((acc) => {
      for (const c of components) {
        c.use((b) => {
          if (b.length !== BACKUP_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expected: BACKUP_KEY_BYTES });
          for (let i = 0; i < BACKUP_KEY_BYTES; i++) acc[i] = (acc[i] ?? 0) ^ (b[i] ?? 0);
        });
      }
    });
    return out;
  } catch (e) {
    out.destroy(); // a partial XOR is still key material
    throw e;
  }
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
