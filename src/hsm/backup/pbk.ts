// The persistent backup key (docs/backup-format.md "Key hierarchy", docs/architecture.md §3): derived
// inside the device from the MKBK and the AKBK together, so neither the manufacturer nor the
// operator alone can open a backup. Only a device holds both keys, so the derivation lives with the
// device's backup code (src/hsm/backup/backup.ts), not with the codec (src/formats/backup.ts).

import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import { SecretBytes, deriveKeyCounterHmacSha256 } from '../../crypto/index.js';
import { BACKUP_KEY_ID_BYTES, backupModeByte, type BackupMode } from '../../formats/backup.js';

/** PBK label ("Key hierarchy"): names the format version; 20 bytes. */
export const BACKUP_PBK_LABEL: Uint8Array = new TextEncoder().encode('coffer backup v1 pbk');
/** MKBK, AKBK and PBK are AES-256 keys. */
const PBK_KEY_BYTES = 32;

/**
 * PBK = SP 800-108r1 counter-mode KDF, PRF HMAC-SHA-256, K_IN = MKBK ‖ AKBK, Label "coffer backup
 * v1 pbk", Context = mode ‖ MKBK id ‖ AKBK id, L = 256 ("Key hierarchy"). The caller destroys it.
 */
export function derivePbk(mkbk: SecretBytes, akbk: SecretBytes, mode: BackupMode, mkbkId: Uint8Array, akbkId: Uint8Array): SecretBytes {
  if (mkbk.length !== PBK_KEY_BYTES || akbk.length !== PBK_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expected: PBK_KEY_BYTES });
  assert(mkbkId.length === BACKUP_KEY_ID_BYTES && akbkId.length === BACKUP_KEY_ID_BYTES, 'key ids are 8 bytes');
  const context = new Uint8Array(1 + 2 * BACKUP_KEY_ID_BYTES);
  context[0] = backupModeByte(mode);
  context.set(mkbkId, 1);
  context.set(akbkId, 1 + BACKUP_KEY_ID_BYTES);
  const keyIn = SecretBytes.concat([mkbk, akbk]);
  try {
    return deriveKeyCounterHmacSha256(keyIn, BACKUP_PBK_LABEL, context, PBK_KEY_BYTES);
  } finally {
    keyIn.destroy();
  }
}
