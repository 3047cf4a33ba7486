// What both archive adapters (archive_fs.ts, archive_s3.ts) share: the checks of keys and prefixes
// against the port's pattern, the per-adapter bounds, and the bounded copy of a put's body into a
// file. A body is always written to a file before it is published: the filesystem adapter then
// links that file under its key, the S3 adapter sends it as one PutObject of known length. That is
// how the object bound is enforced while streaming, before anything can be visible under the key.

import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { assert } from '../assert.js';
import { fail, isCofferError } from '../errors.js';
import { ARCHIVE_KEY_CHARS_MAX, ARCHIVE_KEY_PATTERN, ARCHIVE_OBJECT_BYTES_MAX } from './archive_port.js';

/**
 * A list is returned whole (the port has no pages): this bounds its memory to some tens of MiB.
 * A cluster keeps a backup a day for at most 379 days, so one cluster's prefix stays far below it.
 */
export const ARCHIVE_LIST_KEYS_MAX = 100_000;

/** Bounds an adapter applies; tests lower them to reach them cheaply. */
export interface ArchiveBounds {
  /** At most ARCHIVE_OBJECT_BYTES_MAX. */
  readonly objectBytesMax: number;
  /** At most ARCHIVE_LIST_KEYS_MAX. */
  readonly listKeysMax: number;
}

export interface ArchiveBoundsOptions {
  readonly objectBytesMax?: number;
  readonly listKeysMax?: number;
}

export function resolveBounds(options: ArchiveBoundsOptions): ArchiveBounds {
  const objectBytesMax = options.objectBytesMax ?? ARCHIVE_OBJECT_BYTES_MAX;
  const listKeysMax = options.listKeysMax ?? ARCHIVE_LIST_KEYS_MAX;
  assert(Number.isSafeInteger(objectBytesMax) && objectBytesMax >= 0 && objectBytesMax <= ARCHIVE_OBJECT_BYTES_MAX, 'objectBytesMax within the port bound');
  assert(Number.isSafeInteger(listKeysMax) && listKeysMax >= 1 && listKeysMax <= ARCHIVE_LIST_KEYS_MAX, 'listKeysMax within its bound');
  return { objectBytesMax, listKeysMax };
}

/** Refuses a key outside the port's pattern or length: no `..`, no leading `/`, no empty segment. */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length > ARCHIVE_KEY_CHARS_MAX || !ARCHIVE_KEY_PATTERN.test(key)) {
    fail('COFFER_ARCHIVE_LIMIT', { reason: 'key', keyCharsMax: ARCHIVE_KEY_CHARS_MAX });
  }
}

/** Whether `key` is one this archive could have stored (used to skip foreign names when listing). */
export function isArchiveKey(key: string): boolean {
  return key.length <= ARCHIVE_KEY_CHARS_MAX && ARCHIVE_KEY_PATTERN.test(key);
}

/** Refuses a list prefix that no key can begin with (`../`, `a b`, a leading `-`, ...). */
export function checkPrefix(prefix: string): void {
  const begins = typeof prefix === 'string' && (prefix === '' || isArchiveKey(prefix) || isArchiveKey(`${prefix}x`));
  if (!begins) {
    fail('COFFER_ARCHIVE_LIMIT', { reason: 'prefix', keyCharsMax: ARCHIVE_KEY_CHARS_MAX });
  }
}

/** Keys compare by their bytes (all ASCII), which is S3's listing order too. */
export function byKey(a: { readonly key: string }, b: { readonly key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export function overObjectBound(bounds: ArchiveBounds): never {
  return fail('COFFER_ARCHIVE_LIMIT', { reason: 'object size', objectBytesMax: bounds.objectBytesMax });
}

export function overListBound(bounds: ArchiveBounds): never {
  return fail('COFFER_ARCHIVE_LIMIT', { reason: 'list size', listKeysMax: bounds.listKeysMax });
}

export interface SpooledBody {
  readonly bytes: number;
  /** MD5 of the body: S3's Content-MD5 and the ETag of a single-part object (RFC 1864). */
  readonly md5: Buffer;
}

/**
 * Writes `body` into `file` from its start, refusing it with COFFER_ARCHIVE_LIMIT as soon as it
 * passes `bounds.objectBytesMax` (the source is destroyed then). An error of the source stream is
 * passed on as it is: it is the caller's failure, not the archive's. The caller removes the file
 * on any failure.
 */
export async function spoolBody(body: Readable | Uint8Array, file: FileHandle, bounds: ArchiveBounds): Promise<SpooledBody> {
  const md5 = createHash('md5');
  let bytes = 0;
  const write = async (chunk: Uint8Array): Promise<void> => {
    bytes += chunk.byteLength;
    if (bytes > bounds.objectBytesMax) overObjectBound(bounds);
    md5.update(chunk);
    let done = 0;
    while (done < chunk.byteLength) {
      const { bytesWritten } = await file.write(chunk, done, chunk.byteLength - done, null);
      done += bytesWritten;
    }
  };
  if (body instanceof Uint8Array) {
    await write(body);
  } else {
    try {
      for await (const chunk of body) {
        assert(chunk instanceof Uint8Array, 'an archive body stream yields bytes');
        await write(chunk);
      }
    } catch (e) {
      // Leaving the loop early destroys the source; make sure of it for a refusal too.
      if (isCofferError(e) && !body.destroyed) body.destroy();
      throw e;
    }
  }
  return { bytes, md5: md5.digest() };
}

/** The errno-style code of a system or network error, if it has one. */
export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
