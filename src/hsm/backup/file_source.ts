// A backup source over a file (the BackupSource of src/formats/backup.ts): what the node restores a
// spooled upload from, and what the CLI reads a backup file with. It knows nothing of who asked, so
// a file it cannot use is a plain FileSourceError with a reason; each caller maps it to its own
// code (the CLI: COFFER_CLI_INPUT; for the node, its own spool file failing is an internal error).

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import type { BackupSource } from '../../formats/backup.js';

/** Why a path cannot serve as a source: it cannot be opened, or it is not a regular file. */
export type FileSourceProblem = 'unreadable-file' | 'not-a-file';

/** A file that cannot serve as a source. Deliberately not a CofferError: the caller names the failure. */
export class FileSourceError extends Error {
  readonly reason: FileSourceProblem;

  constructor(reason: FileSourceProblem, options?: { readonly cause?: unknown }) {
    super(`backup source: ${reason}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FileSourceError';
    this.reason = reason;
  }
}

/** A file source: close it when done (idempotent). */
export interface FileSource extends BackupSource {
  close(): void;
}

/**
 * Opens `path` for positioned reads. Only a regular file will do: a source needs a fixed length
 * (O_NONBLOCK, so that a FIFO is refused rather than waited on). A file that shrinks while it is
 * read ends early: COFFER_FORMAT_TRUNCATED, as a cut blob would.
 */
export function fileSource(path: string): FileSource {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new FileSourceError('unreadable-file', { cause: e });
  }
  let length: number;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileSourceError('not-a-file');
    length = st.size;
  } catch (e) {
    closeSync(fd);
    throw e instanceof FileSourceError ? e : new FileSourceError('unreadable-file', { cause: e });
  }
  return openedSource(fd, length);
}

function openedSource(opened: number, length: number): FileSource {
  let fd: number | undefined = opened;
  return {
    length,
    read(offset, n) {
      assert(fd !== undefined, 'read before close');
      assert(Number.isSafeInteger(offset) && Number.isSafeInteger(n) && offset >= 0 && n >= 0 && offset + n <= length, 'reads stay inside the source');
      const out = new Uint8Array(n);
      for (let done = 0; done < n; ) {
        const got = readSync(fd, out, done, n - done, offset + done);
        if (got === 0) fail('COFFER_FORMAT_TRUNCATED', { field: 'file' }); // the file shrank
        done += got;
      }
      return out;
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
