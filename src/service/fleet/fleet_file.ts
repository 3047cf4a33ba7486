// The one file a fleet keeps its devices in (docs/fleet.md "Persistence and reattach"): JSON,
// mode 0600, replaced atomically — written to a fresh temporary file in the same directory,
// fsync'd, renamed over the old one, and the directory fsync'd — so a crash at any instant leaves
// the old file or the new one, never a part, and a rename that returned survives a power cut.
// It holds endpoints, serials, pids and ids: no secret.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fail } from '../../errors.js';

/** A fleet file is a list of devices; a thousand devices take well under this. */
export const FLEET_FILE_BYTES_MAX = 4 * 1024 * 1024;

export interface FleetFile<T> {
  readonly format: string;
  readonly version: number;
  readonly devices: readonly T[];
}

/** Reads `path`: its devices, each checked by `decode`; an absent file is an empty fleet. */
export function readFleetFile<T>(path: string, format: string, version: number, decode: (value: unknown) => T): T[] {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > FLEET_FILE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'fleetFileBytes', bytesMax: FLEET_FILE_BYTES_MAX });
    text = bytes.toString('utf8');
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return [];
    throw e;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return fail('COFFER_FORMAT_BAD_MAGIC', { format });
  }
  const o = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  if (o['format'] !== format) fail('COFFER_FORMAT_BAD_MAGIC', { format });
  if (o['version'] !== version) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format, found: String(o['version']), supported: version });
  const devices = o['devices'];
  if (!Array.isArray(devices)) return fail('COFFER_FORMAT_BAD_MAGIC', { format, field: 'devices' });
  return devices.map(decode);
}

/** Replaces `path` atomically with the fleet's devices (see the header). */
export function writeFleetFile<T>(path: string, format: string, version: number, devices: readonly T[]): void {
  const doc: FleetFile<T> = { format, version, devices };
  const bytes = Buffer.from(JSON.stringify(doc, null, 2) + '\n', 'utf8');
  if (bytes.length > FLEET_FILE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'fleetFileBytes', bytesMax: FLEET_FILE_BYTES_MAX });
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  rmSync(temporary, { force: true }); // a left-over of a crash; the mode below applies to a fresh file
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** Field readers for a decoder: each refuses with COFFER_FORMAT_BAD_MAGIC naming the field (the file is not a fleet file as this build writes it). */
export class RecordFields {
  readonly #o: Record<string, unknown>;
  readonly #format: string;

  constructor(value: unknown, format: string) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('COFFER_FORMAT_BAD_MAGIC', { format, field: 'device' });
    this.#o = value as Record<string, unknown>;
    this.#format = format;
  }

  string(name: string, pattern?: RegExp): string {
    const v = this.#o[name];
    if (typeof v !== 'string' || (pattern !== undefined && !pattern.test(v))) return fail('COFFER_FORMAT_BAD_MAGIC', { format: this.#format, field: name });
    return v;
  }

  integer(name: string, min: number, max: number): number {
    const v = this.#o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return fail('COFFER_FORMAT_BAD_MAGIC', { format: this.#format, field: name });
    return v;
  }

  optionalString(name: string): string | undefined {
    return this.#o[name] === undefined ? undefined : this.string(name);
  }
}
