// How the user CLI prints (docs/cli-users.md "Output"). JSON by default, in CloudHSM CLI's envelope:
// `{"error_code":0,"data":…}` on success, `{"error_code":1,"error":{"code","message","detail"}}` on
// failure. `--output text` prints tables for lists and plain values otherwise; a decrypted plaintext
// is printed as its own bytes. Bytes (signatures, ciphertexts, MACs, wrapped keys) are base64 in JSON.
// Every failure also gets one line on stderr, `coffer: CODE: message {detail}` (errorLine), whichever
// layer noticed it: a command, commander's parser, or main.ts. Nothing here ever receives a password.

import { CofferError, isCofferError } from '../../errors.js';
import { className, formatKeyReference, kebab, keyTypeName, type FilterableKey } from './args.js';
import { BOOLEAN_ATTRIBUTES } from '../../formats/wire_ops.js';

export type OutputMode = 'json' | 'text';

export function parseOutputMode(value: string): OutputMode {
  if (value !== 'json' && value !== 'text') throw new CofferError('COFFER_CLI_USAGE', { reason: '--output must be json or text' });
  return value;
}

/** A command's result: the JSON `data` and, for `--output text`, how to print it for people; `raw`
 * instead of `text` when the text output is bytes printed exactly as they are (a plaintext). */
export interface Result {
  readonly data: unknown;
  readonly text?: () => string;
  readonly raw?: () => Uint8Array;
}

export function successJson(data: unknown): string {
  return JSON.stringify({ error_code: 0, data }, null, 2) + '\n';
}

/** The failure envelope. Only CofferErrors carry their code; anything else is reported as a bug
 * without its message (it could hold anything). */
export function failureJson(e: unknown): string {
  const error = isCofferError(e)
    ? { code: e.code, message: e.message, ...(Object.keys(e.detail).length > 0 ? { detail: e.detail } : {}) }
    : { code: 'INTERNAL', message: 'internal error' };
  return JSON.stringify({ error_code: 1, error }, null, 2) + '\n';
}

/** The one stderr line of a failure, for every command of `coffer` (docs/cli.md "Exit codes"). */
export function errorLine(e: unknown): string {
  if (!isCofferError(e)) return 'coffer: internal error\n';
  const detail = Object.keys(e.detail).length > 0 ? ` ${JSON.stringify(e.detail)}` : '';
  return `coffer: ${e.code}: ${e.message}${detail}\n`;
}

/** Commander's own usage errors ("error: unknown option '--x'" …) as the CofferError every other
 * usage error is, so they print and exit like one. */
export function commanderUsageError(message: string): CofferError {
  const reason = message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim();
  return new CofferError('COFFER_CLI_USAGE', { reason: reason === '(outputHelp)' ? 'a subcommand is required' : reason });
}

export function render(mode: OutputMode, r: Result): string {
  if (mode === 'json') return successJson(r.data);
  if (r.text !== undefined) return r.text();
  return plain(r.data);
}

/** Text for a value without its own renderer: scalars as they are, objects as `key: value` lines. */
export function plain(data: unknown): string {
  if (data === undefined || data === null) return 'ok\n';
  if (typeof data === 'string' || typeof data === 'number' || typeof data === 'boolean') return `${data}\n`;
  if (typeof data !== 'object') return 'ok\n';
  return Object.entries(data as Record<string, unknown>)
    .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}

/** A plain-text table: a header row, a rule, one row per item; columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
export const hex0x = (bytes: Uint8Array): string => '0x' + Buffer.from(bytes).toString('hex');

/** A key as the node describes it (wire objectInfo). */
export interface KeyDescription extends FilterableKey {
  readonly bits: number;
  readonly kcv: Uint8Array;
  readonly sharees: readonly string[];
  readonly manageKeyQuorum: number;
  readonly useKeyQuorum: number;
}

/** CloudHSM CLI's shape of one matched key: key-reference, key-info, attributes (kebab-case). */
export function keyJson(k: KeyDescription, verbose: boolean): Record<string, unknown> {
  if (!verbose) return { 'key-reference': formatKeyReference(k.handle), attributes: { label: k.label } };
  const attributes: Record<string, unknown> = {
    'key-type': keyTypeName(k.keyType), label: k.label, id: hex0x(k.id), 'check-value': hex0x(k.kcv), class: className(k.class),
  };
  for (const n of BOOLEAN_ATTRIBUTES) attributes[kebab(n)] = k.attributes[n];
  if (k.curve !== undefined) attributes['ec-curve'] = k.curve;
  if (k.keyType === 'RSA') attributes['modulus-size-bits'] = k.bits;
  else if (k.keyType === 'AES' || k.keyType === 'GENERIC_SECRET') attributes['value-len'] = k.bits / 8;
  return {
    'key-reference': formatKeyReference(k.handle),
    'key-info': {
      'key-owners': [{ username: k.owner }],
      'shared-users': k.sharees.map((username) => ({ username })),
      'key-quorum-values': { 'manage-key-quorum-value': k.manageKeyQuorum, 'use-key-quorum-value': k.useKeyQuorum },
    },
    attributes,
  };
}

export function keyListResult(keys: readonly KeyDescription[], verbose: boolean): Result {
  return {
    data: { matched_keys: keys.map((k) => keyJson(k, verbose)), total_key_count: keys.length },
    text: () => (verbose ? keyDetails(keys) : keyTable(keys)),
  };
}

/** `key list --verbose --output text`: per key, its reference, then every attribute and the owner,
 * sharees and quorum values as indented `name: value` lines; a blank line between keys. */
export function keyDetails(keys: readonly KeyDescription[]): string {
  return keys.map((k) => {
    const attributes = keyJson(k, true)['attributes'] as Record<string, unknown>;
    const lines = [
      ...Object.entries(attributes).map(([n, v]) => `${n}: ${String(v)}`),
      `owner: ${k.owner}`, `shared-with: ${k.sharees.join(',') || '-'}`,
      `manage-key-quorum-value: ${k.manageKeyQuorum}`, `use-key-quorum-value: ${k.useKeyQuorum}`,
    ];
    return `${formatKeyReference(k.handle)}\n${lines.map((l) => `  ${l}\n`).join('')}`;
  }).join('\n');
}

function sizeOf(k: KeyDescription): string {
  return k.curve ?? `${k.bits}`;
}

export function keyTable(keys: readonly KeyDescription[]): string {
  return table(
    ['key-reference', 'class', 'type', 'size', 'label', 'owner', 'shared-with'],
    keys.map((k) => [formatKeyReference(k.handle), className(k.class), keyTypeName(k.keyType), sizeOf(k), k.label, k.owner, k.sharees.join(',')]),
  );
}

export interface UserDescription {
  readonly name: string;
  readonly role: string;
  readonly locked: boolean;
  readonly failedLogins: number;
  readonly quorumKeyRegistered: boolean;
}

export function userListResult(users: readonly UserDescription[]): Result {
  return {
    data: {
      users: users.map((u) => ({
        username: u.name, role: u.role, locked: u.locked, 'failed-logins': u.failedLogins,
        quorum: u.quorumKeyRegistered ? [{ strategy: 'token-sign', status: 'enabled' }] : [],
      })),
    },
    text: () => table(['username', 'role', 'locked', 'failed-logins', 'quorum-key'], users.map((u) => [u.name, u.role, String(u.locked), String(u.failedLogins), u.quorumKeyRegistered ? 'registered' : '-'])),
  };
}

export interface TokenDescription {
  readonly id: string;
  readonly service: string;
  readonly requester: string;
  readonly handle?: number | undefined;
  readonly expiresAtMs: number;
  readonly approvals: number;
}

export function tokenListResult(tokens: readonly TokenDescription[]): Result {
  const json = tokens.map((t) => ({
    id: t.id, service: t.service, requester: t.requester, ...(t.handle === undefined ? {} : { 'key-reference': formatKeyReference(t.handle) }),
    'expires-at': new Date(t.expiresAtMs).toISOString(), approvals: t.approvals,
  }));
  return {
    data: { tokens: json },
    text: () => table(['id', 'service', 'requester', 'key-reference', 'expires-at', 'approvals'],
      json.map((t) => [t.id, t.service, t.requester, t['key-reference'] ?? '-', t['expires-at'], String(t.approvals)])),
  };
}
