// Parsing of the user CLI's option values (docs/cli-users.md): key references, CloudHSM-style key
// filters (`attr.label=x attr.class=private-key key-reference=0x…`), attribute lists, curve and hash
// names, and the data inputs (`--data`, `--data-hex`, `--data-base64`, `--data-path`).
//
// Everything here is pure: bad input throws CofferError COFFER_CLI_USAGE with a `reason` naming the
// option (never echoing a value that could be a secret), which the command layer turns into exit 2.

import { readFileSync, statSync } from 'node:fs';
import { fail } from '../../errors.js';
import { CRYPTO_INPUT_BYTES_MAX, LABEL_BYTES_MAX, OBJECT_ID_BYTES_MAX } from '../../formats/limits.js';
import type { HashName } from '../../formats/mechanism_params.js';
import { BOOLEAN_ATTRIBUTES, type WireBooleanAttributes } from '../../formats/wire_ops.js';

export type BooleanAttributeName = keyof WireBooleanAttributes;
export type KeyClass = 'SECRET_KEY' | 'PRIVATE_KEY' | 'PUBLIC_KEY' | 'CERTIFICATE';
export type KeyTypeName = 'AES' | 'GENERIC_SECRET' | 'RSA' | 'EC' | 'EC_EDWARDS';
export type CurveName = 'P-256' | 'P-384' | 'P-521' | 'secp256k1' | 'Ed25519';

function usage(reason: string): never {
  fail('COFFER_CLI_USAGE', { reason });
}

/** CloudHSM's attribute names are kebab-case (`wrap-with-trusted`); ours are camelCase. */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}
export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const BOOLEAN_BY_KEBAB: ReadonlyMap<string, BooleanAttributeName> = new Map(BOOLEAN_ATTRIBUTES.map((n) => [kebab(n), n]));

export const CLASS_NAMES: Readonly<Record<string, KeyClass>> = { 'secret-key': 'SECRET_KEY', 'private-key': 'PRIVATE_KEY', 'public-key': 'PUBLIC_KEY', certificate: 'CERTIFICATE' };
export const KEY_TYPE_NAMES: Readonly<Record<string, KeyTypeName>> = {
  aes: 'AES', 'generic-secret': 'GENERIC_SECRET', rsa: 'RSA', ec: 'EC', ed25519: 'EC_EDWARDS', 'ec-edwards': 'EC_EDWARDS',
};
/** CloudHSM CLI spells curves the OpenSSL way; the JOSE names are accepted too. */
const CURVES: Readonly<Record<string, CurveName>> = {
  secp256r1: 'P-256', prime256v1: 'P-256', 'p-256': 'P-256', secp384r1: 'P-384', 'p-384': 'P-384',
  secp521r1: 'P-521', 'p-521': 'P-521', secp256k1: 'secp256k1', ed25519: 'Ed25519',
};
const HASHES: Readonly<Record<string, HashName>> = {
  sha1: 'SHA-1', sha224: 'SHA-224', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512',
};

export function className(c: KeyClass): string {
  return c.toLowerCase().replace('_', '-');
}
export function keyTypeName(t: KeyTypeName): string {
  return t === 'EC_EDWARDS' ? 'ed25519' : t.toLowerCase().replace('_', '-');
}

export function parseCurve(value: string): CurveName {
  return CURVES[value.toLowerCase()] ?? usage(`--curve must be one of ${Object.keys(CURVES).join(', ')}`);
}

export function parseHash(value: string): HashName {
  return HASHES[value.toLowerCase().replace('-', '')] ?? usage(`--hash-function must be one of ${Object.keys(HASHES).join(', ')}`);
}

/** A key reference: `0x…` hex or decimal, 1 to 2^53-1 (handles are u64 on the wire, session
 * objects numbered from 2^40; the wire refuses values above 2^53-1). */
export function parseKeyReference(value: string): number {
  const n = /^0x[0-9a-f]{1,16}$/i.test(value) ? Number.parseInt(value.slice(2), 16) : /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) usage('key-reference must be a handle: 0x… hex or decimal, 1 to 2^53-1');
  return n;
}

/** CloudHSM prints key references as 0x and 16 hex digits. */
export function formatKeyReference(handle: number): string {
  return '0x' + handle.toString(16).padStart(16, '0');
}

export function parseBool(value: string, what: string): boolean {
  const v = value.toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  return usage(`${what} must be true or false`);
}

/** `0x…` (hex bytes) or plain text (UTF-8), as CloudHSM's `id` attribute is given. */
export function parseIdValue(value: string): Uint8Array {
  const bytes = /^0x([0-9a-f]{2})*$/i.test(value) ? Buffer.from(value.slice(2), 'hex') : Buffer.from(value, 'utf8');
  if (bytes.length > OBJECT_ID_BYTES_MAX) usage(`id is longer than ${OBJECT_ID_BYTES_MAX} bytes`);
  return new Uint8Array(bytes);
}

export function parseLabel(value: string): string {
  if (Buffer.byteLength(value, 'utf8') > LABEL_BYTES_MAX) usage(`label is longer than ${LABEL_BYTES_MAX} bytes`);
  return value;
}

/** What a `--filter` selects. Every term must hold (AND), as in CloudHSM. */
export interface KeyFilter {
  handle?: number;
  label?: string;
  id?: Uint8Array;
  class?: KeyClass;
  keyType?: KeyTypeName;
  curve?: CurveName;
  owner?: string;
  booleans: Partial<Record<BooleanAttributeName, boolean>>;
}

function splitTerm(term: string): [string, string] {
  const eq = term.indexOf('=');
  if (eq <= 0) usage(`filter term must be attr.NAME=VALUE or key-reference=0x…`);
  return [term.slice(0, eq).toLowerCase(), term.slice(eq + 1)];
}

/** Parses `key-reference=0x…` and `attr.NAME=VALUE` terms (CloudHSM CLI's key filter syntax). */
export function parseFilter(terms: readonly string[]): KeyFilter {
  const f: KeyFilter = { booleans: {} };
  const seen = new Set<string>();
  for (const term of terms) {
    const [name, value] = splitTerm(term);
    // Two values for one attribute can never both hold: refuse rather than let one silently win.
    if (seen.has(name)) usage(`${name} is given twice in the filter`);
    seen.add(name);
    if (name === 'key-reference') f.handle = parseKeyReference(value);
    else if (!name.startsWith('attr.')) usage(`unknown filter term ${name}: use attr.NAME=VALUE or key-reference=0x…`);
    else applyAttributeTerm(f, name.slice('attr.'.length), value);
  }
  return f;
}

function applyAttributeTerm(f: KeyFilter, attr: string, value: string): void {
  const bool = BOOLEAN_BY_KEBAB.get(attr);
  if (bool !== undefined) f.booleans[bool] = parseBool(value, `attr.${attr}`);
  else if (attr === 'label') f.label = parseLabel(value);
  else if (attr === 'id') f.id = parseIdValue(value);
  else if (attr === 'class') f.class = CLASS_NAMES[value.toLowerCase()] ?? usage(`attr.class must be one of ${Object.keys(CLASS_NAMES).join(', ')}`);
  else if (attr === 'key-type') f.keyType = KEY_TYPE_NAMES[value.toLowerCase()] ?? usage(`attr.key-type must be one of ${Object.keys(KEY_TYPE_NAMES).join(', ')}`);
  else if (attr === 'curve' || attr === 'ec-curve') f.curve = parseCurve(value);
  else if (attr === 'owner') f.owner = value.toLowerCase();
  else usage(`unknown filter attribute attr.${attr}`);
}

/** The facts of a key a filter is checked against (a subset of the node's object description). */
export interface FilterableKey {
  readonly handle: number;
  readonly class: KeyClass;
  readonly keyType: KeyTypeName;
  readonly curve?: CurveName | undefined;
  readonly label: string;
  readonly id: Uint8Array;
  readonly owner: string;
  readonly attributes: Readonly<WireBooleanAttributes>;
}

/** True when `k` satisfies every term of `f`. Used on what the node returned, so that terms the
 * node's FIND cannot express (curve, owner) still hold. */
export function matchesFilter(k: FilterableKey, f: KeyFilter): boolean {
  if (f.handle !== undefined && k.handle !== f.handle) return false;
  if (f.label !== undefined && k.label !== f.label) return false;
  if (f.id !== undefined && Buffer.compare(Buffer.from(k.id), Buffer.from(f.id)) !== 0) return false;
  if (f.class !== undefined && k.class !== f.class) return false;
  if (f.keyType !== undefined && k.keyType !== f.keyType) return false;
  if (f.curve !== undefined && k.curve !== f.curve) return false;
  if (f.owner !== undefined && k.owner.toLowerCase() !== f.owner) return false;
  for (const [name, want] of Object.entries(f.booleans) as [BooleanAttributeName, boolean][]) {
    if (k.attributes[name] !== want) return false;
  }
  return true;
}

/** Settable attributes of `key set-attribute` (wire `settable`), by CloudHSM name. */
export const SETTABLE = [
  'label', 'id', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive', 'trusted',
  'wrapWithTrusted', 'modifiable', 'destroyable',
] as const;
export type SettableName = (typeof SETTABLE)[number];

export function parseSetAttribute(name: string, value: string): { name: SettableName; value: boolean | string | Uint8Array } {
  const n = camel(name.toLowerCase()) as SettableName;
  if (!SETTABLE.includes(n)) usage(`--name must be one of ${SETTABLE.map(kebab).join(', ')}`);
  if (n === 'label') return { name: n, value: parseLabel(value) };
  if (n === 'id') return { name: n, value: parseIdValue(value) };
  return { name: n, value: parseBool(value, '--value') };
}

/** A creation template from `--attributes NAME=VALUE …` (plus label), as the wire's template. */
export type Template = Partial<Record<Exclude<SettableName, 'label' | 'id'> | 'token', boolean>> & { label?: string; id?: Uint8Array };

export function parseTemplate(terms: readonly string[] | undefined, label?: string): Template {
  const t: Template = {};
  if (label !== undefined) t.label = parseLabel(label);
  for (const term of terms ?? []) {
    const [name, value] = splitTerm(term);
    const a = name.startsWith('attr.') ? name.slice('attr.'.length) : name;
    if (a === 'token') t.token = parseBool(value, 'token');
    else {
      const s = parseSetAttribute(a, value);
      (t as Record<string, unknown>)[s.name] = s.value;
    }
  }
  return t;
}

/** The data options every crypto command takes; exactly one must be given. */
export interface DataOptions {
  data?: string;
  dataHex?: string;
  dataBase64?: string;
  dataPath?: string;
}

export function readBoundedFile(path: string, what: string, maxBytes = CRYPTO_INPUT_BYTES_MAX): Uint8Array {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return fail('COFFER_CLI_INPUT', { reason: `${what}: cannot read the file` });
  }
  if (size > maxBytes) fail('COFFER_CLI_INPUT', { reason: `${what}: file is larger than ${maxBytes} bytes` });
  return new Uint8Array(readFileSync(path));
}

export function parseHex(value: string, what: string): Uint8Array {
  const v = value.startsWith('0x') ? value.slice(2) : value;
  if (!/^([0-9a-fA-F]{2})*$/.test(v)) usage(`${what} must be hex`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

export function parseBase64(value: string, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(value) || value.length % 4 === 1) usage(`${what} must be base64`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** The bytes named by exactly one of `--data`, `--data-hex`, `--data-base64`, `--data-path`, at most
 * `maxBytes` (decryption takes CRYPTO_CIPHERTEXT_BYTES_MAX: what encrypting the largest input made). */
export function readData(o: DataOptions, what = 'data', maxBytes = CRYPTO_INPUT_BYTES_MAX): Uint8Array {
  const given = [o.data, o.dataHex, o.dataBase64, o.dataPath].filter((v) => v !== undefined).length;
  if (given !== 1) usage(`give exactly one of --${what}, --${what}-hex, --${what}-base64, --${what}-path`);
  let bytes: Uint8Array;
  if (o.data !== undefined) bytes = new Uint8Array(Buffer.from(o.data, 'utf8'));
  else if (o.dataHex !== undefined) bytes = parseHex(o.dataHex, `--${what}-hex`);
  else if (o.dataBase64 !== undefined) bytes = parseBase64(o.dataBase64, `--${what}-base64`);
  else bytes = readBoundedFile(o.dataPath ?? '', `--${what}-path`, maxBytes);
  if (bytes.length > maxBytes) usage(`${what} is longer than ${maxBytes} bytes`);
  return bytes;
}

/** A signature or MAC: `--signature` (base64) or `--signature-path` (raw bytes). */
export function readSignature(base64: string | undefined, path: string | undefined, what: string): Uint8Array {
  if ((base64 === undefined) === (path === undefined)) usage(`give exactly one of --${what} (base64) and --${what}-path`);
  return base64 !== undefined ? parseBase64(base64, `--${what}`) : readBoundedFile(path ?? '', `--${what}-path`, 64 * 1024);
}
