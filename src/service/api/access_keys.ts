// The API's access-key configuration (docs/api.md "Access keys"): which keys may sign requests,
// the account each belongs to, and the actions each may call. It is read once at start, from JSON:
//
//   { "accessKeys": [ { "accessKeyId": "AKIA…", "secretAccessKey": "…", "accountId": "111122223333",
//                       "actions": ["cloudhsm:DescribeClusters", "cloudhsm:DescribeBackups"] } ] }
//
// `actions` lists `cloudhsm:<Operation>` names, Coffer's own actions (COFFER_ACTIONS:
// `coffer:ReceiveBackupCopy`, which a peer region's service needs to send copies here, and the
// remote fleet's `coffer:<Operation>` names in coffer_operations.ts) or `*` (every operation and
// action). Anything else — an unknown
// operation, a malformed id, a duplicate key, a short secret — is refused whole with
// COFFER_API_CONFIG_INVALID, whose detail names the entry and field but never a secret.

import { readFileSync } from 'node:fs';
import { fail, isCofferError } from '../../errors.js';
import { FLEET_OPERATION_NAMES, MONITORING_OPERATION_NAMES, fleetActionOf } from './coffer_operations.js';
import { OPERATION_NAMES } from './operations.js';
import { actionOf, type AccessKey } from './sigv4.js';

/** Access key ids as AWS makes them: 16 to 128 upper-case letters and digits. */
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
/** A secret shorter than this is too easy to guess (AWS secrets are 40 characters). */
export const SECRET_ACCESS_KEY_CHARS_MIN = 20;
/** Bounds the configuration a service reads. */
export const ACCESS_KEYS_MAX = 1000;
const SECRET_ACCESS_KEY_CHARS_MAX = 128;
const ACCOUNT_ID = /^[0-9]{12}$/;
/** Taking in a backup copy a peer region's service sends (docs/control-plane.md "Copies to other
 * regions"): not a CloudHSMv2 operation, so it has a name of Coffer's own. */
export const RECEIVE_BACKUP_COPY_ACTION = 'coffer:ReceiveBackupCopy';
/** Reading the archived audit logs (src/service/audit_http.ts, docs/audit.md "Endpoint"). */
export const GET_AUDIT_LOG_ACTION = 'coffer:GetAuditLog';
/** The actions beyond the CloudHSMv2 operations that a key may be granted. */
export const COFFER_ACTIONS: readonly string[] = [RECEIVE_BACKUP_COPY_ACTION, GET_AUDIT_LOG_ACTION, ...FLEET_OPERATION_NAMES.map(fleetActionOf), ...MONITORING_OPERATION_NAMES.map(fleetActionOf)];
const ACTIONS: ReadonlySet<string> = new Set(['*', ...OPERATION_NAMES.map(actionOf), ...COFFER_ACTIONS]);

function field(entry: Record<string, unknown>, name: string, index: number): unknown {
  if (!Object.hasOwn(entry, name)) fail('COFFER_API_CONFIG_INVALID', { index, field: name, reason: 'missing' });
  return entry[name];
}

/** Bounds the configuration file read (1,000 keys of a few hundred bytes each). */
export const ACCESS_KEYS_FILE_BYTES_MAX = 1024 * 1024;

/** Reads and checks a configuration file. Its content never appears in an error: it holds secrets. */
export function readAccessKeysFile(path: string): AccessKey[] {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > ACCESS_KEYS_FILE_BYTES_MAX) fail('COFFER_API_CONFIG_INVALID', { reason: 'file too large', limit: ACCESS_KEYS_FILE_BYTES_MAX });
    text = bytes.toString('utf8');
  } catch (e) {
    if (isCofferError(e)) throw e;
    return fail('COFFER_API_CONFIG_INVALID', { reason: 'file cannot be read' });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return fail('COFFER_API_CONFIG_INVALID', { reason: 'file is not JSON' });
  }
  return parseAccessKeys(config);
}

/** Parses and checks the configuration; returns its keys. */
export function parseAccessKeys(config: unknown): AccessKey[] {
  const list = typeof config === 'object' && config !== null && !Array.isArray(config) ? (config as Record<string, unknown>).accessKeys : undefined;
  if (!Array.isArray(list)) fail('COFFER_API_CONFIG_INVALID', { field: 'accessKeys', reason: 'not a list' });
  if (list.length > ACCESS_KEYS_MAX) fail('COFFER_API_CONFIG_INVALID', { field: 'accessKeys', limit: ACCESS_KEYS_MAX });
  const seen = new Set<string>();
  return list.map((raw: unknown, index): AccessKey => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('COFFER_API_CONFIG_INVALID', { index, reason: 'not an object' });
    const entry = raw as Record<string, unknown>;
    for (const name of Object.keys(entry)) {
      if (!['accessKeyId', 'secretAccessKey', 'accountId', 'actions'].includes(name)) fail('COFFER_API_CONFIG_INVALID', { index, reason: 'unknown field' });
    }
    const accessKeyId = field(entry, 'accessKeyId', index);
    if (typeof accessKeyId !== 'string' || !ACCESS_KEY_ID.test(accessKeyId)) fail('COFFER_API_CONFIG_INVALID', { index, field: 'accessKeyId', reason: 'not 16-128 of [A-Z0-9]' });
    if (seen.has(accessKeyId)) fail('COFFER_API_CONFIG_INVALID', { index, field: 'accessKeyId', reason: 'duplicate' });
    seen.add(accessKeyId);
    const secretAccessKey = field(entry, 'secretAccessKey', index);
    if (typeof secretAccessKey !== 'string' || secretAccessKey.length < SECRET_ACCESS_KEY_CHARS_MIN || secretAccessKey.length > SECRET_ACCESS_KEY_CHARS_MAX) {
      fail('COFFER_API_CONFIG_INVALID', { index, field: 'secretAccessKey', reason: `not a string of ${SECRET_ACCESS_KEY_CHARS_MIN}-${SECRET_ACCESS_KEY_CHARS_MAX} characters` });
    }
    const accountId = field(entry, 'accountId', index);
    if (typeof accountId !== 'string' || !ACCOUNT_ID.test(accountId)) fail('COFFER_API_CONFIG_INVALID', { index, field: 'accountId', reason: 'not 12 digits' });
    const actions = field(entry, 'actions', index);
    if (!Array.isArray(actions) || actions.length === 0 || !actions.every((a): a is string => typeof a === 'string' && ACTIONS.has(a))) {
      fail('COFFER_API_CONFIG_INVALID', { index, field: 'actions', reason: 'not a non-empty list of cloudhsm:<Operation>, coffer:<Operation> or *' });
    }
    return Object.freeze({ accessKeyId, secretAccessKey, accountId, actions: Object.freeze([...actions]) });
  });
}
