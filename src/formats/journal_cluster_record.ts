// The journal's cluster binding (docs/journal-format.md "A cluster created from a backup"): record
// 'journal-cluster' of namespace 'cluster', written when the first HSM of a cluster created from a
// backup starts that cluster's own journal. It names the cluster whose journal the device's sync key
// seals for — the cluster id every entry header carries, the genesis value's input, the cluster id
// of its backups and its health. Without the record (every cluster initialised in place) that id is
// the CN of the cluster CSR, as before. The cluster certificate and the cluster key are unchanged by
// it: a clone keeps its source's certificate, as a CloudHSM cluster created from a backup does.
//
// Version 1 (integers big-endian):
//   0  4  magic 'CFJC'
//   4  2  version = 1
//   6  1  cluster id length c (1..CLUSTER_ID_CHARS_MAX)
//   7  c  cluster id, printable ASCII (0x21..0x7E)
//   end   nothing may follow
//
// Not secret: the value is a name the control plane chose.

import { fail } from '../errors.js';
import { CLUSTER_ID_CHARS_MAX } from './limits.js';

/** The record's id in namespace 'cluster' (formats/cluster_record.ts CLUSTER_NS). */
export const JOURNAL_CLUSTER_ID = 'journal-cluster';
const MAGIC = [0x43, 0x46, 0x4a, 0x43]; // 'CFJC'
const VERSION = 1;
const HEADER_BYTES = 7;
const FORMAT = 'journal cluster record';

const printable = (s: string): boolean => [...s].every((ch) => ch.charCodeAt(0) >= 0x21 && ch.charCodeAt(0) <= 0x7e);

/** The record naming `clusterId` (1..CLUSTER_ID_CHARS_MAX printable ASCII, else COFFER_FORMAT_LIMIT). */
export function encodeJournalClusterRecord(clusterId: string): Uint8Array {
  if (clusterId.length === 0 || clusterId.length > CLUSTER_ID_CHARS_MAX || !printable(clusterId)) {
    fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field: 'clusterId', max: CLUSTER_ID_CHARS_MAX });
  }
  const out = new Uint8Array(HEADER_BYTES + clusterId.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint16(4, VERSION);
  out[6] = clusterId.length;
  out.set(new TextEncoder().encode(clusterId), HEADER_BYTES);
  return out;
}

/** The cluster id of a record: magic, then version (a newer one is named), then its exact length. */
export function decodeJournalClusterRecord(bytes: Uint8Array): string {
  if (bytes.length < MAGIC.length || MAGIC.some((m, i) => bytes[i] !== m)) fail('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT });
  if (bytes.length < HEADER_BYTES) fail('COFFER_FORMAT_TRUNCATED', { format: FORMAT });
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(4);
  if (version !== VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: FORMAT, version, supported: VERSION });
  const length = bytes[6] as number;
  if (length === 0 || length > CLUSTER_ID_CHARS_MAX || bytes.length !== HEADER_BYTES + length) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'length' });
  const clusterId = new TextDecoder().decode(bytes.subarray(HEADER_BYTES));
  if (!printable(clusterId) || clusterId.length !== length) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'clusterId' });
  return clusterId;
}
