// The backup archive (docs/architecture.md §6): where sealed backups rest, in the same region as
// the service. A port with two adapters, a filesystem directory (the default) and an S3-compatible
// bucket through @aws-sdk/client-s3, both held to one conformance suite
// (test/storage/archive_conformance.ts).
//
// Objects are written once: a key that exists is never overwritten (S3: `If-None-Match: *`), so a
// service bug or a replayed request cannot replace an archived backup by another. What is stored is
// the sealed backup exactly as the HSM produced it; the archive can neither read nor alter it
// without the restoring HSM noticing, and nothing else is put here.

import type { Readable } from 'node:stream';

/** Keys are `<clusterId>/<backupId>` or similar: short, printable, no `..`. */
export const ARCHIVE_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*){0,3}$/;
/** A filesystem file name is at most 255 bytes (NAME_MAX on ext4, XFS, btrfs) and the filesystem
 * adapter stores a key as one file name; keys are ASCII, so characters and bytes agree. */
export const ARCHIVE_KEY_CHARS_MAX = 255;
/** A sealed backup of a full device (100k objects) is tens of MiB; this bounds one object. */
export const ARCHIVE_OBJECT_BYTES_MAX = 4 * 1024 * 1024 * 1024;

export interface ArchivedObject {
  readonly key: string;
  readonly bytes: number;
}

/**
 * Failures are typed errors:
 *   COFFER_ARCHIVE_EXISTS       put on a key that exists (the existing object is untouched)
 *   COFFER_ARCHIVE_NOT_FOUND    get or delete of a key that does not exist
 *   COFFER_ARCHIVE_LIMIT        a bad key or an object over its bound (nothing stored)
 *   COFFER_ARCHIVE_UNAVAILABLE  the directory or bucket cannot be reached
 */
export interface Archive {
  /**
   * Stores `body` under `key`, write-once. The object becomes visible only complete: a failed or
   * interrupted put leaves nothing under `key`.
   */
  put(key: string, body: Readable | Uint8Array): Promise<ArchivedObject>;
  /** The object's bytes as a stream. */
  get(key: string): Promise<Readable>;
  head(key: string): Promise<ArchivedObject | undefined>;
  delete(key: string): Promise<void>;
  /** Keys under `prefix`, ascending. */
  list(prefix: string): Promise<ArchivedObject[]>;
  close(): Promise<void>;
}
