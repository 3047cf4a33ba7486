// The control plane's operations (docs/control-plane.md): the 18 CloudHSMv2 operations over one
// repository of documents, for the API layer to serve (src/service/api/). Each handler decides and
// records; the orchestrator (src/service/orchestrator.ts) does the slow work.

import type { Operations } from './api/operations.js';
import { BackupOperations } from './backup_operations.js';
import { ClusterOperations } from './cluster_operations.js';
import type { ServiceConfig } from './config.js';
import type { Repository } from './repository.js';
import type { BackupDoc, Tag } from './records.js';
import type { ApiOutput } from './api/operations.js';

export type CopyToRegion = (region: string, backup: BackupDoc, tags: readonly Tag[]) => Promise<ApiOutput>;

export function controlPlaneOperations(repo: Repository, config: ServiceConfig, copyTo?: CopyToRegion): Operations {
  const clusters = new ClusterOperations(repo, config);
  const backups = new BackupOperations(repo, config, copyTo);
  return {
    CreateCluster: (i, c) => clusters.createCluster(i, c),
    DescribeClusters: (i, c) => clusters.describeClusters(i, c),
    ModifyCluster: (i, c) => clusters.modifyCluster(i, c),
    DeleteCluster: (i, c) => clusters.deleteCluster(i, c),
    InitializeCluster: (i, c) => clusters.initializeCluster(i, c),
    CreateHsm: (i, c) => clusters.createHsm(i, c),
    DeleteHsm: (i, c) => clusters.deleteHsm(i, c),
    DescribeBackups: (i, c) => backups.describeBackups(i, c),
    DeleteBackup: (i, c) => backups.deleteBackup(i, c),
    RestoreBackup: (i, c) => backups.restoreBackup(i, c),
    ModifyBackupAttributes: (i, c) => backups.modifyBackupAttributes(i, c),
    CopyBackupToRegion: (i, c) => backups.copyBackupToRegion(i, c),
    TagResource: (i, c) => backups.tagResource(i, c),
    UntagResource: (i, c) => backups.untagResource(i, c),
    ListTags: (i, c) => backups.listTags(i, c),
    GetResourcePolicy: (i, c) => backups.getResourcePolicy(i, c),
    PutResourcePolicy: (i, c) => backups.putResourcePolicy(i, c),
    DeleteResourcePolicy: (i, c) => backups.deleteResourcePolicy(i, c),
  };
}
