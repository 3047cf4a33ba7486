// The stored form of one HSM user (docs/architecture.md §4, hsm/users/users.ts): namespace 'user', id =
// the normalised name, value = this codec. A backup carries these records; the cluster journal will
// carry them in change sets. Holds a password verifier (never a password) and the user's quorum
// public key; lock state is the consecutive failed-login count.
//
// Version 1 (integers big-endian):
//   0  4  magic 'CUSR'       4  2  version = 1
//   6  1  name length (1..USER_NAME_CHARS_MAX), then the name (ASCII, lower case)
//   .. 1  role: 1 admin, 2 crypto-user, 3 appliance, 4 unactivated-admin
//   .. 1  consecutive failed logins (0..LOGIN_FAILURES_MAX)
//   .. 2  verifier length (1..255), then the verifier (password.ts)
//   .. 2  quorum key length (0 = none, ≤ QUORUM_KEY_BYTES_MAX), then its SPKI DER
//   end   nothing may follow

import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { LOGIN_FAILURES_MAX, QUORUM_KEY_BYTES_MAX, USER_NAME_CHARS_MAX } from './limits.js';

/** The roles a user record holds (hsm/types.ts Role, the same strings). */
export type RecordRole = 'admin' | 'crypto-user' | 'appliance' | 'unactivated-admin';

export interface UserRecord {
  readonly name: string;
  readonly role: RecordRole;
  readonly failedLogins: number;
  readonly verifier: Uint8Array;
  readonly quorumKey: Uint8Array | undefined;
}

/** The record-store namespace of users. */
export const USER_NAMESPACE = 'user';

const MAGIC = [0x43, 0x55, 0x53, 0x52]; // 'CUSR'
const RECORD_VERSION = 1;
const ROLE_CODES: Readonly<Record<RecordRole, number>> = { admin: 1, 'crypto-user': 2, appliance: 3, 'unactivated-admin': 4 };
const ROLES_BY_CODE = new Map<number, RecordRole>(Object.entries(ROLE_CODES).map(([r, c]) => [c, r as RecordRole]));

export function encodeUserRecord(r: UserRecord): Uint8Array {
  const name = new TextEncoder().encode(r.name);
  const key = r.quorumKey ?? new Uint8Array(0);
  assert(name.length >= 1 && name.length <= USER_NAME_CHARS_MAX, 'user name length');
  assert(r.verifier.length >= 1 && r.verifier.length <= 0xff && key.length <= QUORUM_KEY_BYTES_MAX, 'user record field lengths');
  const out = new Uint8Array(6 + 1 + name.length + 2 + 2 + r.verifier.length + 2 + key.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint16(4, RECORD_VERSION);
  let at = 6;
  out[at++] = name.length;
  out.set(name, at);
  at += name.length;
  out[at++] = ROLE_CODES[r.role];
  out[at++] = Math.min(r.failedLogins, LOGIN_FAILURES_MAX);
  view.setUint16(at, r.verifier.length);
  out.set(r.verifier, at + 2);
  at += 2 + r.verifier.length;
  view.setUint16(at, key.length);
  out.set(key, at + 2);
  return out;
}

export function decodeUserRecord(bytes: Uint8Array): UserRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number): number => {
    if (at + n > bytes.length) fail('COFFER_FORMAT_TRUNCATED', { record: 'user' });
    const start = at;
    at += n;
    return start;
  };
  need(6);
  if (MAGIC.some((m, i) => bytes[i] !== m)) fail('COFFER_FORMAT_BAD_MAGIC', { record: 'user' });
  const version = view.getUint16(4);
  if (version !== RECORD_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { record: 'user', version, supported: String(RECORD_VERSION) });
  const nameBytes = view.getUint8(need(1));
  if (nameBytes < 1 || nameBytes > USER_NAME_CHARS_MAX) fail('COFFER_FORMAT_LIMIT', { record: 'user', field: 'name' });
  const name = new TextDecoder().decode(bytes.subarray(need(nameBytes), at));
  const role = ROLES_BY_CODE.get(view.getUint8(need(1))) ?? fail('COFFER_FORMAT_MALFORMED', { record: 'user', field: 'role' });
  const failedLogins = view.getUint8(need(1));
  if (failedLogins > LOGIN_FAILURES_MAX) fail('COFFER_FORMAT_MALFORMED', { record: 'user', field: 'failedLogins' });
  const verifierBytes = view.getUint16(need(2));
  if (verifierBytes < 1 || verifierBytes > 0xff) fail('COFFER_FORMAT_LIMIT', { record: 'user', field: 'verifier' });
  const verifier = bytes.slice(need(verifierBytes), at);
  const keyBytes = view.getUint16(need(2));
  if (keyBytes > QUORUM_KEY_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { record: 'user', field: 'quorumKey' });
  const quorumKey = keyBytes === 0 ? undefined : bytes.slice(need(keyBytes), at);
  if (at !== bytes.length) fail('COFFER_FORMAT_MALFORMED', { record: 'user', field: 'trailing bytes' });
  if (normaliseUserName(name) !== name) fail('COFFER_FORMAT_MALFORMED', { record: 'user', field: 'name' });
  return { name, role, failedLogins, verifier, quorumKey };
}


// ── names ─────────────────────────────────────────────────────────────────────────────────────

const NAME_CHARS = /^[A-Za-z0-9_-]+$/;

/** Applies the name rules and returns the user id (lower case). Throws COFFER_USER_NAME_INVALID. */
export function normaliseUserName(name: string): string {
  if (typeof name !== 'string' || name.length < 1 || name.length > USER_NAME_CHARS_MAX || !NAME_CHARS.test(name)) {
    fail('COFFER_USER_NAME_INVALID');
  }
  return name.toLowerCase();
}

