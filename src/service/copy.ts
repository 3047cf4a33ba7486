// CopyBackupToRegion between peered services (docs/control-plane.md "Copies to other regions"):
// the destination region receives the same sealed blob, checks its provenance before archiving it
// (a copy is never trusted because a peer sent it), and records it as a new backup with
// CopyTimestamp and Source* naming where it came from. The blob is never opened on the way.
//
// Peers here are services in one process (`coffer up --regions a,b`); each side is reached
// through `RegionPeer`.

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

/** What a region offers its peers: where its blobs are, and how to take in a copy. */
export interface RegionPeer {
  readonly region: string;
  readonly archive: Archive;
  readonly repository: Repository;
  readonly backups: BackupFlow;
  readonly clock: Clock;
  readonly workDir: string;
}

/** The CopyToRegion of `source`, reaching the peers it is given by region. */
export function peerCopy(source: RegionPeer, peers: ReadonlyMap<string, RegionPeer>): CopyToRegion {
  return async (region: string, backup: BackupDoc, tags: readonly Tag[]): Promise<ApiOutput> => {
    const target = peers.get(region) ?? apiFail('CloudHsmInvalidRequestException', `Region ${region} is not a peer of this service.`);
    if (backup.archiveKey === null) apiFail('CloudHsmInvalidRequestException', `Backup ${backup.backupId} has no archived blob.`);
    const copy = await receiveCopy(target, source, backup, tags);
    return { DestinationBackup: { CreateTimestamp: new Date(copy.createdMs), SourceRegion: source.region, SourceBackup: backup.backupId, SourceCluster: backup.clusterId } };
  };
}

async function receiveCopy(target: RegionPeer, source: RegionPeer, backup: BackupDoc, tags: readonly Tag[]): Promise<BackupDoc> {
  const dir = mkdtempSync(join(target.workDir, 'copy-'));
  const path = join(dir, 'backup.bin');
  try {
    await pipeline(await source.archive.get(backup.archiveKey as string), createWriteStream(path, { mode: 0o600 }));
    const backupId = newId('backup');
    const archiveKey = `${backup.clusterId}/${backupId}`;
    const checked = await target.backups.checkFile(path).catch((e: unknown) => {
      if (e instanceof UntrustedBackupError) apiFail('CloudHsmInvalidRequestException', 'The backup failed its provenance check in the destination region; nothing was copied.');
      throw e;
    });
    if (backup.bodySha256 !== null && checked.bodySha256 !== backup.bodySha256) apiFail('CloudHsmInvalidRequestException', 'The backup changed on its way to the destination region.');
    const stored = await target.archive.put(archiveKey, createReadStream(path));
    const now = target.clock.nowMs();
    const doc: BackupDoc = {
      ...backup, backupId, state: 'READY', createdMs: now, copyMs: now, neverExpires: false, sourceRegion: source.region, sourceBackup: backup.backupId,
      sourceCluster: backup.clusterId, deleteMs: null, archiveKey, bytes: stored.bytes, bodySha256: checked.bodySha256, resourcePolicy: null, tags: [...tags],
    };
    await target.repository.commit([backupWrite(doc, 0)]);
    return doc;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
