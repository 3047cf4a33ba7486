// What the control plane keeps about clusters, HSMs and backups (docs/control-plane.md): the
// documents it files in the metadata store (src/storage/metadata_port.ts), one JSON document each.
//
// A document holds what DescribeClusters and DescribeBackups show, plus the references the
// orchestrator needs (a device's fleet id, a backup's archive key and digest) — never a key, a
// user's password or anything sealed. The one credential a cluster document can hold is the
// PreCo password between InitializeCluster and activation, as CloudHSM shows it in
// DescribeClusters; it is removed when the cluster becomes ACTIVE (docs/threat-model.md).
//
// Decoding is strict: a document that does not have the shape below is a broken invariant of the
// store (only this module writes them), so it fails an assert rather than being half-read.

import { assert } from '../assert.js';
import type { Collection, DocumentWrite, StoredDocument } from '../storage/metadata_port.js';
import type { FleetDevice } from './fleet/fleet_port.js';

/** Record layout version inside every document; a newer one is refused on read. */
export const RECORD_VERSION = 1;

export type ClusterState =
  | 'CREATE_IN_PROGRESS' | 'UNINITIALIZED' | 'INITIALIZE_IN_PROGRESS' | 'INITIALIZED' | 'ACTIVE'
  | 'UPDATE_IN_PROGRESS' | 'MODIFY_IN_PROGRESS' | 'ROLLBACK_IN_PROGRESS' | 'DELETE_IN_PROGRESS' | 'DELETED' | 'DEGRADED';
export type HsmState = 'CREATE_IN_PROGRESS' | 'ACTIVE' | 'DEGRADED' | 'DELETE_IN_PROGRESS' | 'DELETED';
export type BackupState = 'CREATE_IN_PROGRESS' | 'READY' | 'DELETED' | 'PENDING_DELETION';
export type ClusterMode = 'FIPS' | 'NON_FIPS';

export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

export interface ClusterCertificates {
  readonly ClusterCsr?: string;
  readonly HsmCertificate?: string;
  readonly AwsHardwareCertificate?: string;
  readonly ManufacturerHardwareCertificate?: string;
  readonly ClusterCertificate?: string;
}

export interface ClusterDoc {
  readonly v: number;
  readonly clusterId: string;
  readonly accountId: string;
  readonly state: ClusterState;
  readonly stateMessage: string | null;
  readonly hsmType: string;
  readonly mode: ClusterMode;
  readonly networkType: 'IPV4' | 'DUALSTACK';
  /** Availability zone → subnet id. */
  readonly subnetMapping: Readonly<Record<string, string>>;
  readonly vpcId: string;
  readonly securityGroup: string;
  readonly backupRetentionDays: number;
  readonly createdMs: number;
  readonly sourceBackupId: string | null;
  readonly certificates: ClusterCertificates;
  /** The data-plane port every HSM of the cluster listens on (each on its own EniIp). */
  readonly dataPlanePort: number;
  /** The HSM whose device made the cluster CSR (it is the one initialised). */
  readonly csrHsmId: string | null;
  /** Shown by DescribeClusters between InitializeCluster and activation, then removed. */
  readonly preCoPassword: string | null;
  /** Initialisation input waiting for the orchestrator (INITIALIZE_IN_PROGRESS). */
  readonly pendingInit: { readonly signedCert: string; readonly trustAnchor: string } | null;
  readonly lastBackupMs: number | null;
  readonly tags: readonly Tag[];
}

export interface HsmDoc {
  readonly v: number;
  readonly hsmId: string;
  readonly clusterId: string;
  readonly availabilityZone: string;
  readonly subnetId: string;
  readonly eniId: string;
  readonly eniIp: string;
  readonly state: HsmState;
  readonly stateMessage: string | null;
  readonly hsmType: string;
  readonly createdMs: number;
  /** The device serving this HSM, once provisioned. */
  readonly device: FleetDevice | null;
  /** Consecutive failed health probes (reset by a good one). */
  readonly failedProbes: number;
  /** How many times the HSM's device was replaced. */
  readonly replacements: number;
}

export interface BackupDoc {
  readonly v: number;
  readonly backupId: string;
  readonly clusterId: string;
  readonly accountId: string;
  readonly state: BackupState;
  readonly hsmType: string;
  readonly mode: ClusterMode;
  readonly createdMs: number;
  readonly copyMs: number | null;
  readonly neverExpires: boolean;
  readonly sourceRegion: string | null;
  readonly sourceBackup: string | null;
  readonly sourceCluster: string | null;
  readonly deleteMs: number | null;
  /** Where the sealed blob rests, its size and the SHA-256 of its body (names the contents without opening them). */
  readonly archiveKey: string | null;
  readonly bytes: number;
  readonly bodySha256: string | null;
  /** The device that sealed it (its serial). */
  readonly sourceSerial: string | null;
  /** The journal position its header names, a u64 in decimal (absent from backups recorded before
   * the journal relay, and from copies: compaction then treats the backup as needing the whole journal). */
  readonly journalPosition?: string;
  readonly resourcePolicy: string | null;
  readonly tags: readonly Tag[];
}

export const COLLECTION = { cluster: 'clusters', hsm: 'hsms', backup: 'backups' } as const satisfies Record<string, Collection>;

/** A document read with the version a later write must name. */
export interface Versioned<T> {
  readonly doc: T;
  readonly version: number;
}

export function decodeDoc<T extends { readonly v: number }>(stored: StoredDocument): Versioned<T> {
  const parsed = JSON.parse(stored.body) as T;
  assert(typeof parsed === 'object' && parsed !== null && parsed.v === RECORD_VERSION, `unknown record version in ${stored.collection}/${stored.id}`);
  return { doc: parsed, version: stored.version };
}

export function clusterWrite(doc: ClusterDoc, expectedVersion: number): DocumentWrite {
  return { collection: COLLECTION.cluster, id: doc.clusterId, parent: doc.accountId, expectedVersion, body: JSON.stringify(doc) };
}

export function hsmWrite(doc: HsmDoc, expectedVersion: number): DocumentWrite {
  return { collection: COLLECTION.hsm, id: doc.hsmId, parent: doc.clusterId, expectedVersion, body: JSON.stringify(doc) };
}

export function backupWrite(doc: BackupDoc, expectedVersion: number): DocumentWrite {
  return { collection: COLLECTION.backup, id: doc.backupId, parent: doc.clusterId, expectedVersion, body: JSON.stringify(doc) };
}

export function deleteWrite(collection: Collection, id: string, parent: string | null, expectedVersion: number): DocumentWrite {
  return { collection, id, parent, expectedVersion, body: null };
}
