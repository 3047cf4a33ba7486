// The filesystem archive (the default adapter of src/storage/archive_port.ts; docs/archive.md).
//
// Layout: one directory; the object under key `a/b/c` is the regular file `a~b~c` in it (`~` is
// not a key character, so the name decodes back to one key and no key reaches another directory).
// Files whose names start with `.` are not objects: `.put-<pid>-<instance>-<random>` are puts in
// progress.
//
// A put writes its body to such a temporary file in the same directory, counting bytes against the
// object bound as it goes, fsyncs it, then publishes it with link(2), which fails with EEXIST if the
// name exists: the check and the publication are one atomic step, so of concurrent puts on one key
// exactly one wins and an existing object is never replaced. The temporary name is then unlinked and
// the directory fsynced (so a published object survives a crash). A crash or a failed stream leaves
// at most a temporary file, never a partial object; list ignores temporary files and open removes
// those no live process owns.
//
// Reads open with O_NOFOLLOW and accept regular files only, so a symbolic link placed in the
// directory cannot make the archive serve or delete anything outside it.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, realpath, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fail, isCofferError } from '../errors.js';
import {
  byKey, checkKey, checkPrefix, errorCode, isArchiveKey, overListBound, resolveBounds, spoolBody,
  type ArchiveBounds, type ArchiveBoundsOptions,
} from './archive_common.js';
import type { Archive, ArchivedObject } from './archive_port.js';

export interface FsArchiveOptions extends ArchiveBoundsOptions {
  /** The archive's directory; created (mode 0700) if missing. */
  readonly directory: string;
}

/** Separator of key segments in a file name: outside the key alphabet (ARCHIVE_KEY_PATTERN). */
const SEGMENT_SEPARATOR = '~';
const TEMP_PREFIX = '.put-';
const TEMP_PATTERN = /^\.put-(\d+)-([0-9a-f]{16})-[0-9a-f]{16}$/;
/** Objects are readable by the service's user alone: they are sealed, but nobody else needs them. */
const OBJECT_MODE = 0o600;
const DIRECTORY_MODE = 0o700;

/** Instances open in this process, so open() never removes a live put's temporary file. */
const liveInstances = new Set<string>();

const fileName = (key: string): string => key.split('/').join(SEGMENT_SEPARATOR);
const keyOf = (name: string): string => name.split(SEGMENT_SEPARATOR).join('/');

function unavailable(e: unknown): never {
  if (isCofferError(e)) throw e;
  return fail('COFFER_ARCHIVE_UNAVAILABLE', { reason: errorCode(e) ?? 'filesystem error' }, e);
}

/** Opens (creating if needed) the archive in `options.directory` and removes stale temporary files. */
export async function openFsArchive(options: FsArchiveOptions): Promise<Archive> {
  const bounds = resolveBounds(options);
  let directory: string;
  try {
    await mkdir(options.directory, { recursive: true, mode: DIRECTORY_MODE });
    directory = await realpath(options.directory);
  } catch (e) {
    return unavailable(e);
  }
  const archive = new FsArchive(directory, bounds, randomBytes(8).toString('hex'));
  await removeStaleTemporaries(directory);
  liveInstances.add(archive.instance);
  return archive;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errorCode(e) === 'EPERM';
  }
}

/** A temporary file is stale when its process is gone, or is this one and its instance is closed
 * (a restarted service often gets the same pid, e.g. 1 in a container). */
async function removeStaleTemporaries(directory: string): Promise<void> {
  try {
    for (const name of await readdir(directory)) {
      const m = TEMP_PATTERN.exec(name);
      if (m === null) continue;
      const pid = Number(m[1]);
      const stale = pid === process.pid ? !liveInstances.has(m[2] ?? '') : !processAlive(pid);
      if (stale) await unlink(join(directory, name)).catch(() => undefined);
    }
  } catch (e) {
    unavailable(e);
  }
}

class FsArchive implements Archive {
  #closed = false;

  constructor(
    private readonly directory: string,
    private readonly bounds: ArchiveBounds,
    readonly instance: string,
  ) {}

  async put(key: string, body: Readable | Uint8Array): Promise<ArchivedObject> {
    this.#open();
    checkKey(key);
    const tempPath = join(this.directory, `${TEMP_PREFIX}${process.pid}-${this.instance}-${randomBytes(8).toString('hex')}`);
    let file: FileHandle | undefined;
    let tempExists = false;
    try {
      file = await open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, OBJECT_MODE).catch(unavailable);
      tempExists = true;
      const { bytes } = await spoolBody(body, file, this.bounds);
      await file.sync().catch(unavailable);
      await file.close().catch(unavailable);
      file = undefined;
      await this.#publish(tempPath, join(this.directory, fileName(key)));
      tempExists = false;
      await this.#syncDirectory();
      return { key, bytes };
    } finally {
      await file?.close().catch(() => undefined);
      if (tempExists) await unlink(tempPath).catch(() => undefined);
    }
  }

  /** link(2) is the write-once step: it never replaces an existing name. */
  async #publish(tempPath: string, objectPath: string): Promise<void> {
    try {
      await link(tempPath, objectPath);
    } catch (e) {
      if (errorCode(e) === 'EEXIST') fail('COFFER_ARCHIVE_EXISTS');
      unavailable(e);
    }
    // The object is published; a temporary name left by a failed unlink is removed at a later open.
    await unlink(tempPath).catch(() => undefined);
  }

  async get(key: string): Promise<Readable> {
    this.#open();
    checkKey(key);
    let file: FileHandle;
    try {
      file = await open(join(this.directory, fileName(key)), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      const code = errorCode(e);
      // ELOOP: the name is a symbolic link, which is never an object of this archive.
      if (code === 'ENOENT' || code === 'ELOOP') fail('COFFER_ARCHIVE_NOT_FOUND');
      return unavailable(e);
    }
    try {
      if (!(await file.stat()).isFile()) fail('COFFER_ARCHIVE_NOT_FOUND');
    } catch (e) {
      await file.close().catch(() => undefined);
      unavailable(e);
    }
    return file.createReadStream();
  }

  async head(key: string): Promise<ArchivedObject | undefined> {
    this.#open();
    checkKey(key);
    const bytes = await this.#size(fileName(key));
    return bytes === undefined ? undefined : { key, bytes };
  }

  /** The size of the regular file `name`, undefined if there is none. */
  async #size(name: string): Promise<number | undefined> {
    try {
      const stat = await lstat(join(this.directory, name));
      return stat.isFile() ? stat.size : undefined;
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return undefined;
      return unavailable(e);
    }
  }

  async delete(key: string): Promise<void> {
    this.#open();
    checkKey(key);
    const name = fileName(key);
    if ((await this.#size(name)) === undefined) fail('COFFER_ARCHIVE_NOT_FOUND');
    try {
      await unlink(join(this.directory, name));
    } catch (e) {
      if (errorCode(e) === 'ENOENT') fail('COFFER_ARCHIVE_NOT_FOUND');
      unavailable(e);
    }
    await this.#syncDirectory();
  }

  async list(prefix: string): Promise<ArchivedObject[]> {
    this.#open();
    checkPrefix(prefix);
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (e) {
      return unavailable(e);
    }
    const found: ArchivedObject[] = [];
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const key = keyOf(name);
      if (!isArchiveKey(key) || !key.startsWith(prefix)) continue;
      const bytes = await this.#size(name);
      if (bytes === undefined) continue; // deleted meanwhile, or not a regular file
      if (found.length === this.bounds.listKeysMax) overListBound(this.bounds);
      found.push({ key, bytes });
    }
    return found.sort(byKey);
  }

  close(): Promise<void> {
    this.#closed = true;
    liveInstances.delete(this.instance);
    return Promise.resolve();
  }

  #open(): void {
    if (this.#closed) fail('COFFER_ARCHIVE_UNAVAILABLE', { reason: 'closed' });
  }

  /** Makes a link or unlink in the directory durable (fsync(2) of the directory). */
  async #syncDirectory(): Promise<void> {
    let dir: FileHandle | undefined;
    try {
      dir = await open(this.directory, constants.O_RDONLY | constants.O_DIRECTORY);
      await dir.sync();
    } catch (e) {
      unavailable(e);
    } finally {
      await dir?.close().catch(() => undefined);
    }
  }
}
