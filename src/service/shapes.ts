// The control plane's documents as the CloudHSMv2 API shows them (service model shapes Cluster,
// Hsm, Backup; docs/api-coverage.md). Timestamps are Date values: the API layer sends them as epoch
// seconds. Absent values are left out, as CloudHSM leaves them out.

import type { ApiOutput } from './api/operations.js';
import type { BackupDoc, ClusterDoc, HsmDoc } from './records.js';
import { buildArn } from './api/resources.js';


export function hsmShape(h: HsmDoc): ApiOutput {
  return {
    AvailabilityZone: h.availabilityZone,
    ClusterId: h.clusterId,
    SubnetId: h.subnetId,
    EniId: h.eniId,
    EniIp: h.eniIp,
    HsmType: h.hsmType,
    HsmId: h.hsmId,
    State: h.state,
    ...(h.stateMessage === null ? {} : { StateMessage: h.stateMessage }),
  };
}

export function clusterShape(c: ClusterDoc, hsms: readonly HsmDoc[]): ApiOutput {
  return {
    BackupPolicy: 'DEFAULT',
    BackupRetentionPolicy: { Type: 'DAYS', Value: String(c.backupRetentionDays) },
    ClusterId: c.clusterId,
    CreateTimestamp: new Date(c.createdMs),
    Hsms: hsms.filter((h) => h.state !== 'DELETED').map(hsmShape),
    HsmType: c.hsmType,
    ...(c.preCoPassword === null ? {} : { PreCoPassword: c.preCoPassword }),
    SecurityGroup: c.securityGroup,
    ...(c.sourceBackupId === null ? {} : { SourceBackupId: c.sourceBackupId }),
    State: c.state,
    ...(c.stateMessage === null ? {} : { StateMessage: c.stateMessage }),
    SubnetMapping: { ...c.subnetMapping },
    VpcId: c.vpcId,
    NetworkType: c.networkType,
    Certificates: { ...c.certificates },
    Mode: c.mode,
    ...(c.tags.length === 0 ? {} : { TagList: c.tags.map((t) => ({ ...t })) }),
  };
}

export function backupShape(b: BackupDoc, region: string): ApiOutput {
  return {
    BackupId: b.backupId,
    BackupArn: buildArn({ region, accountId: b.accountId, kind: 'backup', id: b.backupId }),
    BackupState: b.state,
    ClusterId: b.clusterId,
    CreateTimestamp: new Date(b.createdMs),
    ...(b.copyMs === null ? {} : { CopyTimestamp: new Date(b.copyMs) }),
    NeverExpires: b.neverExpires,
    ...(b.sourceRegion === null ? {} : { SourceRegion: b.sourceRegion }),
    ...(b.sourceBackup === null ? {} : { SourceBackup: b.sourceBackup }),
    ...(b.sourceCluster === null ? {} : { SourceCluster: b.sourceCluster }),
    ...(b.deleteMs === null ? {} : { DeleteTimestamp: new Date(b.deleteMs) }),
    HsmType: b.hsmType,
    Mode: b.mode,
    ...(b.tags.length === 0 ? {} : { TagList: b.tags.map((t) => ({ ...t })) }),
  };
}
