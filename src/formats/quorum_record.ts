// The stored form of a quorum value (docs/architecture.md §4, hsm/users/quorum.ts): namespace 'quorum',
// id = the admin service ('user' or 'quorum'), value = version ‖ M. Absent means 1: quorum off.
//   0  1  version = 1
//   1  1  M: 1 (off) or QUORUM_MIN..QUORUM_MAX
//   end

import { fail } from '../errors.js';
import { QUORUM_MAX } from './limits.js';

const VERSION = 1;
export const QUORUM_OFF = 1;

export function encodeQuorumValue(m: number): Uint8Array {
  if (!Number.isInteger(m) || m < QUORUM_OFF || m > QUORUM_MAX) fail('COFFER_FORMAT_MALFORMED', { record: 'quorum value' });
  return Uint8Array.of(VERSION, m);
}

export function decodeQuorumValue(bytes: Uint8Array): number {
  if (bytes.length >= 1 && bytes[0] !== VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { record: 'quorum value', version: bytes[0] ?? 0, supported: String(VERSION) });
  const m = bytes[1] ?? 0;
  if (bytes.length !== 2 || m < QUORUM_OFF || m > QUORUM_MAX) fail('COFFER_FORMAT_MALFORMED', { record: 'quorum value' });
  return m;
}
