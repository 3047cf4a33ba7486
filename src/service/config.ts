// The control plane's settings (docs/control-plane.md): one region per service process, the
// availability zones it offers, the data-plane port its HSMs listen on, and the times that drive
// backups, retention and health. Every duration is a named default with the reason for its value.

import type { Clock } from './clock.js';

/** CloudHSM's backup retention bounds (BackupRetentionPolicy, DAYS): 7 to 379, default 90. */
export const RETENTION_DAYS_MIN = 7;
export const RETENTION_DAYS_MAX = 379;
export const RETENTION_DAYS_DEFAULT = 90;
/** CloudHSM backs a cluster up at least once every 24 hours. */
export const BACKUP_INTERVAL_MS_DEFAULT = 24 * 3600_000;
/** A deleted backup stays restorable (RestoreBackup) for 7 days, then is purged. */
export const PENDING_DELETION_MS = 7 * 24 * 3600_000;
/** How often the orchestrator probes every HSM and runs its schedule. */
export const PROBE_INTERVAL_MS_DEFAULT = 2_000;
/** Consecutive failed probes after which an HSM is replaced: one lost answer is not a dead HSM. */
export const FAILED_PROBES_MAX = 3;
/** CloudHSM's client port; every HSM of a cluster listens on it at its own EniIp. */
export const DATA_PLANE_PORT_DEFAULT = 2223;
/** HSM types CloudHSM offers; both are served by the same software device here. */
export const HSM_TYPES = ['hsm1.medium', 'hsm2m.medium'] as const;
/** HSMs per cluster (CloudHSM's default quota is 28). */
export const HSMS_PER_CLUSTER_MAX = 28;
/** Clusters per account (CloudHSM's default quota is 4; a development service allows more). */
export const CLUSTERS_PER_ACCOUNT_MAX = 200;

export interface ServiceConfig {
  readonly region: string;
  /** Zones of the region, in the order subnets are placed in them (e.g. us-east-1a, -1b, -1c). */
  readonly availabilityZones: readonly string[];
  readonly dataPlanePort: number;
  readonly backupIntervalMs: number;
  readonly probeIntervalMs: number;
  readonly clock: Clock;
  /** Where a new HSM's address (EniIp) comes from: the local fleet's loopback range (the default),
   * or the data-plane addresses of the nodes a remote fleet has registered (docs/fleet.md). */
  readonly hsmAddresses?: 'loopback' | 'registered-nodes';
  /** True: the orchestrator relays every cluster's journal (journal_relay.ts), and the fleet starts
   * its devices relayed (what `coffer service` and `coffer up` run by default). False or absent: each
   * HSM orders its own journal ('solo'); docs/control-plane.md "The journal relay" says when to. */
  readonly relayJournal?: boolean;
}

export function defaultZones(region: string): string[] {
  return ['a', 'b', 'c'].map((z) => `${region}${z}`);
}
