// Sealed backups between HSMs and the archive (docs/control-plane.md "Backups"): the whitepaper's
// lifecycle — created inside an HSM, archived in the region's object store, restored only inside an
// authentic HSM. The service never opens a backup; before archiving one and before restoring one it
// checks its provenance (the device's signature over the whole blob, and the device's certificate
// chain to the manufacturer and operator roots: src/formats/backup.ts `verifyBackup`), so a blob
// that was altered in the archive, or that no genuine device made, never reaches an HSM.

import { closeSync, createReadStream, createWriteStream, fstatSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { verifyBackup, type BackupRoots, type BackupSource } from '../formats/backup.js';
import type { ManagementClient } from '../management/client.js';
import type { Archive } from '../storage/archive_port.js';
import type { Clock } from './clock.js';
import type { ServiceMetrics } from './metrics.js';

/** What an archived backup is: where it rests and what the device's signature covered. */
export interface ArchivedBackup {
  readonly backupId: string;
  readonly archiveKey: string;
  readonly bytes: number;
  readonly bodySha256: string;
  readonly sourceSerial: string;
  readonly mode: 'FIPS' | 'NON_FIPS';
  readonly createdMs: number;
  /** The journal position its header names (the last journal entry it holds), a u64. */
  readonly journalPosition: bigint;
}

/** A backup that fails its provenance check. The problems are fixed words (a header holds no secret). */
export class UntrustedBackupError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`backup failed its provenance check: ${problems.join(', ')}`);
    this.name = 'UntrustedBackupError';
    this.problems = problems;
  }
}

export interface BackupFlowOptions {
  readonly archive: Archive;
  readonly roots: BackupRoots;
  readonly clock: Clock;
  /** Where blobs pass through on their way (a directory of the service's own). */
  readonly workDir: string;
  /** Times every restore (metrics.ts). */
  readonly metrics?: ServiceMetrics;
}

export class BackupFlow {
  readonly #options: BackupFlowOptions;

  constructor(options: BackupFlowOptions) {
    this.#options = options;
  }

  /** The roots every backup's device chain must end in. */
  get roots(): BackupRoots {
    return this.#options.roots;
  }

  /** Removes a purged backup's blob (already gone is fine: a purge may be retried). */
  async purge(archiveKey: string): Promise<void> {
    if ((await this.#options.archive.head(archiveKey)) !== undefined) await this.#options.archive.delete(archiveKey);
  }

  /** A fresh sealed backup of the HSM behind `management`, verified and archived under `<clusterId>/<backupId>`. */
  async take(management: ManagementClient, clusterId: string): Promise<ArchivedBackup> {
    return this.#withTemp(async (path) => {
      const { backupId } = await management.backupToFile(path, clusterId);
      const verdict = await this.#verify(path);
      const archiveKey = `${clusterId}/${backupId}`;
      const stored = await this.#options.archive.put(archiveKey, createReadStream(path));
      return {
        backupId, archiveKey, bytes: stored.bytes, bodySha256: verdict.bodySha256, sourceSerial: verdict.deviceSerial,
        mode: verdict.header.mode, createdMs: this.#options.clock.nowMs(), journalPosition: verdict.header.journalPosition,
      };
    });
  }

  /** Restores an archived backup into the HSM behind `management`, after checking it again;
   * `cloneClusterId`: as the first HSM of that cluster, created from the backup (its own journal). */
  async restore(management: ManagementClient, archiveKey: string, expectedBodySha256: string | null, options: { readonly cloneClusterId?: string } = {}): Promise<void> {
    const metrics = this.#options.metrics;
    if (metrics !== undefined) return metrics.timed('restore', () => this.#restore(management, archiveKey, expectedBodySha256, options));
    return this.#restore(management, archiveKey, expectedBodySha256, options);
  }

  async #restore(management: ManagementClient, archiveKey: string, expectedBodySha256: string | null, options: { readonly cloneClusterId?: string }): Promise<void> {
    await this.#withTemp(async (path) => {
      await pipeline(await this.#options.archive.get(archiveKey), createWriteStream(path, { mode: 0o600 }));
      const verdict = await this.#verify(path);
      if (expectedBodySha256 !== null && verdict.bodySha256 !== expectedBodySha256) throw new UntrustedBackupError(['body differs from the archived backup']);
      await management.restoreFromFile(path, options);
    });
  }

  /** The provenance check of a blob in a local file (a copy arriving from another region). */
  async checkFile(path: string): Promise<{ readonly bodySha256: string; readonly mode: 'FIPS' | 'NON_FIPS'; readonly deviceSerial: string }> {
    const verdict = await this.#verify(path);
    return { bodySha256: verdict.bodySha256, mode: verdict.header.mode, deviceSerial: verdict.deviceSerial };
  }

  async #verify(path: string): Promise<Awaited<ReturnType<typeof verifyBackup>>> {
    const fd = openSync(path, 'r');
    try {
      const verdict = await verifyBackup(fileSource(fd), this.#options.roots, this.#options.clock.nowMs());
      if (!verdict.verified) throw new UntrustedBackupError(verdict.problems);
      return verdict;
    } finally {
      closeSync(fd);
    }
  }

  async #withTemp<T>(work: (path: string) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(this.#options.workDir, 'blob-'));
    try {
      return await work(join(dir, 'backup.bin'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** A backup file read at offsets (verifyBackup reads the header, then scans the body once). */
function fileSource(fd: number): BackupSource {
  const length = fstatSync(fd).size;
  return {
    length,
    read(offset: number, bytes: number): Uint8Array {
      const out = new Uint8Array(bytes);
      let done = 0;
      while (done < bytes) {
        const n = readSync(fd, out, done, bytes - done, offset + done);
        if (n === 0) throw new UntrustedBackupError(['file shorter than it claims']);
        done += n;
      }
      return out;
    },
  };
}
