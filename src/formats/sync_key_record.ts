// The stored form of the cluster sync key (docs/journal-format.md "The cluster sync key"): the
// AES-256 key under which the cluster's HSMs seal journal entries (formats/journal_entry.ts). It is
// made inside the device when the cluster is initialised, kept as record 'sync-key' of namespace
// 'cluster' (sealed by the store like every record, cluster-wide, carried by backups so that HSMs
// cloned by restore hold it) and never leaves a device in any other form.
//
// Version 1 (integers big-endian):
//   0  4  magic 'CFSK'
//   4  2  version = 1
//   6  1  key length = 32
//   7  32 the key
//   end   nothing may follow (39 bytes in all)
//
// The value is key material: an encoded record is wiped by whoever holds it, a decoded key is a
// SecretBytes its holder destroys.

import { assert } from '../assert.js';
import { SecretBytes } from '../crypto/secret_bytes.js';
import { fail } from '../errors.js';

/** The record's id in namespace 'cluster' (formats/cluster_record.ts CLUSTER_NS). */
export const SYNC_KEY_ID = 'sync-key';
/** AES-256: the key is HKDF input for a per-entry AES-256-GCM key (docs/journal-format.md). */
export const SYNC_KEY_BYTES = 32;
const MAGIC = [0x43, 0x46, 0x53, 0x4b]; // 'CFSK'
const VERSION = 1;
const RECORD_BYTES = 4 + 2 + 1 + SYNC_KEY_BYTES;
const FORMAT = 'sync key record';

/** The record for `key` (32 bytes). The output holds the key: the caller wipes it (or hands it to a
 * change set, which apply wipes). */
export function encodeSyncKeyRecord(key: SecretBytes): Uint8Array {
  assert(key.length === SYNC_KEY_BYTES, 'a cluster sync key is 32 bytes');
  const out = new Uint8Array(new ArrayBuffer(RECORD_BYTES));
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint16(4, VERSION);
  out[6] = SYNC_KEY_BYTES;
  key.use((b) => out.set(b, 7));
  return out;
}

/** The key of a record: magic, then version (a newer one is named), then the exact length. The
 * record itself is left as it is (the caller wipes its copy). */
export function decodeSyncKeyRecord(bytes: Uint8Array): SecretBytes {
  if (bytes.length < MAGIC.length || MAGIC.some((m, i) => bytes[i] !== m)) fail('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT });
  if (bytes.length < 6) fail('COFFER_FORMAT_TRUNCATED', { format: FORMAT });
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(4);
  if (version !== VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: FORMAT, version, supported: VERSION });
  if (bytes.length !== RECORD_BYTES || bytes[6] !== SYNC_KEY_BYTES) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT });
  return SecretBytes.copyOf(bytes.subarray(7));
}
