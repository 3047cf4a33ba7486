// CopyBackupToRegion's receiving side, and the in-process transport (docs/control-plane.md "Copies
// to other regions"): the destination region receives the same sealed blob, checks its provenance
// before archiving it (a copy is never trusted because a peer sent it), and records it as a new
// backup with CopyTimestamp and Source* naming where it came from. The blob is never opened.
//
// `receiveCopy` is the one receiving path. It is reached two ways: from another `coffer service`
// process over HTTP (copy_http.ts: the blob arrives in a file under the destination's work
// directory), and from a service in the same process (`peerCopy`, for `coffer up --regions a,b`:
// the blob is copied from the source's archive into such a file). Either way the destination
// decides alone what it archives and records.
//
// Nothing is left behind on failure: the provenance check comes before the archive's put, and a
// put whose record cannot be committed is deleted again.

import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Archive } from '../storage/archive_port.js';
import { apiFail, type ApiOutput } from './api/operations.js';
import { UntrustedBackupError, type BackupFlow } from './backup_flow.js';
import type { Clock } from './clock.js';
import type { CopyToRegion } from './control_plane.js';
import { newId } from './api/resources.js';
import { backupWrite, type BackupDoc, type Tag } from './records.js';
import type { Repository } from './repository.js';

/** What a region needs to take in a copy: where it archives, records and checks, and a directory of its own. */
export interface RegionPeer {
  readonly region: string;
  readonly archive: Archive;
  readonly repository: Repository;
  readonly backups: BackupFlow;
  readonly clock: Clock;
  readonly workDir: string;
}

/** What travels with a copy besides the blob: whose backup it is and where it comes from. */
export interface CopyMetadata {
  readonly accountId: string;
  readonly hsmType: string;
  readonly sourceRegion: string;
  readonly sourceBackup: string;
  readonly sourceCluster: string;
  /** The body digest the source recorded when it archived the backup (null: none recorded). */
  readonly bodySha256: string | null;
  readonly tags: readonly Tag[];
}

/** What the source knows of a backup it copies. */
export function copyMetadata(sourceRegion: string, backup: BackupDoc, tags: readonly Tag[]): CopyMetadata {
  return {
    accountId: backup.accountId, hsmType: backup.hsmType, sourceRegion, sourceBackup: backup.backupId, sourceCluster: backup.clusterId,
    bodySha256: backup.bodySha256, tags,
  };
}

/** CopyBackupToRegion's answer: the model's DestinationBackup. */
export function destinationBackup(copy: Pick<BackupDoc, 'createdMs' | 'sourceRegion' | 'sourceBackup' | 'sourceCluster'>): ApiOutput {
  return { DestinationBackup: { CreateTimestamp: new Date(copy.createdMs), SourceRegion: copy.sourceRegion, SourceBackup: copy.sourceBackup, SourceCluster: copy.sourceCluster } };
}

/**
 * Takes in the sealed blob in `path` as a copy in `target`'s region: checks its provenance and that
 * its body is the one the source recorded, archives it under `<sourceCluster>/<new backup id>`, and
 * records it READY with CopyTimestamp and Source*. `path` stays the caller's.
 */
export async function receiveCopy(target: RegionPeer, path: string, meta: CopyMetadata): Promise<BackupDoc> {
  const checked = await target.backups.checkFile(path).catch((e: unknown) => {
    if (e instanceof UntrustedBackupError) apiFail('CloudHsmInvalidRequestException', 'The backup failed its provenance check in the destination region; nothing was copied.');
    throw e;
  });
  if (meta.bodySha256 !== null && checked.bodySha256 !== meta.bodySha256) apiFail('CloudHsmInvalidRequestException', 'The backup changed on its way to the destination region.');
  const backupId = newId('backup');
  const archiveKey = `${meta.sourceCluster}/${backupId}`;
  const stored = await target.archive.put(archiveKey, createReadStream(path));
  const now = target.clock.nowMs();
  const doc: BackupDoc = {
    v: 1, backupId, clusterId: meta.sourceCluster, accountId: meta.accountId, state: 'READY', hsmType: meta.hsmType, mode: checked.mode,
    createdMs: now, copyMs: now, neverExpires: false, sourceRegion: meta.sourceRegion, sourceBackup: meta.sourceBackup, sourceCluster: meta.sourceCluster,
    deleteMs: null, archiveKey, bytes: stored.bytes, bodySha256: checked.bodySha256, sourceSerial: checked.deviceSerial, resourcePolicy: null, tags: [...meta.tags],
  };
  try {
    await target.repository.commit([backupWrite(doc, 0)]);
  } catch (e) {
    // An archived blob no record names would never be listed, expired or purged: take it back.
    await target.archive.delete(archiveKey).catch(() => undefined);
    throw e;
  }
  return doc;
}

/** The CopyToRegion of `source`, reaching peers in the same process by region. */
export function peerCopy(source: RegionPeer, peers: ReadonlyMap<string, RegionPeer>): CopyToRegion {
  return async (region: string, backup: BackupDoc, tags: readonly Tag[]): Promise<ApiOutput> => {
    const target = peers.get(region) ?? apiFail('CloudHsmInvalidRequestException', `Region ${region} is not a peer of this service.`);
    if (backup.archiveKey === null) apiFail('CloudHsmInvalidRequestException', `Backup ${backup.backupId} has no archived blob.`);
    const dir = mkdtempSync(join(target.workDir, 'copy-'));
    try {
      const path = join(dir, 'backup.bin');
      await pipeline(await source.archive.get(backup.archiveKey), createWriteStream(path, { mode: 0o600 }));
      return destinationBackup(await receiveCopy(target, path, copyMetadata(source.region, backup, tags)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
