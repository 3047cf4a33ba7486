// The cluster and HSM operations of the CloudHSMv2 API (docs/control-plane.md): CreateCluster,
// DescribeClusters, ModifyCluster, DeleteCluster, CreateHsm, DeleteHsm, InitializeCluster.
//
// An API call only decides and records: it checks the request against the current documents and
// commits the new state (compare-and-set). Everything slow — provisioning a device, restoring a
// backup into it, initialising it, zeroising it — is the orchestrator's (src/service/orchestrator.ts),
// which moves the *_IN_PROGRESS states on, as CloudHSM's asynchronous operations do.

import { apiFail, type ApiInput, type ApiOutput, type Caller } from './api/operations.js';
import { clusterShape, hsmShape } from './shapes.js';
import { newHexId } from './ids.js';
import { isCofferError } from '../errors.js';
import { LOOPBACK_FIRST, LOOPBACK_LAST, allocateLoopback } from './fleet/local_fleet.js';
import { readRegistry } from './fleet/remote_registry.js';
import { newId } from './api/resources.js';
import { parseClusterFilters } from './api/pagination.js';
import { checkInitialisation } from './initialisation.js';
import { page } from './paging.js';
import { clusterWrite, hsmWrite, type ClusterDoc, type ClusterMode, type HsmDoc, type Tag, type Versioned } from './records.js';
import type { Repository } from './repository.js';
import { CLUSTERS_PER_ACCOUNT_MAX, HSMS_PER_CLUSTER_MAX, HSM_TYPES, RETENTION_DAYS_DEFAULT, RETENTION_DAYS_MAX, RETENTION_DAYS_MIN, type ServiceConfig } from './config.js';
import { resolveSourceBackup } from './backup_operations.js';

/** States in which a cluster takes new HSMs (an uninitialised one takes only its first). */
const HSM_STATES_OK: ReadonlySet<string> = new Set(['UNINITIALIZED', 'INITIALIZED', 'ACTIVE', 'DEGRADED']);

export class ClusterOperations {
  readonly #repo: Repository;
  readonly #config: ServiceConfig;

  constructor(repo: Repository, config: ServiceConfig) {
    this.#repo = repo;
    this.#config = config;
  }

  async createCluster(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const hsmType = input['HsmType'] as string;
    if (!(HSM_TYPES as readonly string[]).includes(hsmType)) apiFail('CloudHsmInvalidRequestException', `HsmType must be one of ${HSM_TYPES.join(', ')}.`);
    const subnetMapping = this.#placeSubnets(input['SubnetIds'] as string[]);
    const retention = retentionDays(input['BackupRetentionPolicy']);
    const tags = (input['TagList'] as Tag[] | undefined) ?? [];
    checkUniqueTagKeys(tags);
    // CloudHSM's default mode is FIPS; hsm1.medium has no other.
    let mode: ClusterMode = (input['Mode'] as ClusterMode | undefined) ?? 'FIPS';
    if (hsmType === 'hsm1.medium' && mode !== 'FIPS') apiFail('CloudHsmInvalidRequestException', 'hsm1.medium clusters are FIPS mode only.');
    let sourceBackupId: string | null = null;
    const source = input['SourceBackupId'] as string | undefined;
    if (source !== undefined) {
      const backup = await resolveSourceBackup(this.#repo, this.#config.region, source, caller);
      if (input['Mode'] !== undefined && backup.mode !== mode) apiFail('CloudHsmInvalidRequestException', `The backup was made in ${backup.mode} mode; a cluster restored from it must be in the same mode.`);
      mode = backup.mode;
      sourceBackupId = backup.backupId;
    }
    const owned = (await this.#repo.clusters()).filter((c) => c.doc.accountId === caller.accountId && c.doc.state !== 'DELETED');
    if (owned.length >= CLUSTERS_PER_ACCOUNT_MAX) apiFail('CloudHsmResourceLimitExceededException', `An account may have at most ${CLUSTERS_PER_ACCOUNT_MAX} clusters.`);
    const doc: ClusterDoc = {
      v: 1, clusterId: newId('cluster'), accountId: caller.accountId, state: 'CREATE_IN_PROGRESS', stateMessage: null, hsmType, mode,
      networkType: (input['NetworkType'] as 'IPV4' | 'DUALSTACK' | undefined) ?? 'IPV4', subnetMapping, vpcId: newHexId('vpc'),
      securityGroup: newHexId('sg'), backupRetentionDays: retention ?? RETENTION_DAYS_DEFAULT, createdMs: this.#config.clock.nowMs(),
      sourceBackupId, certificates: {}, dataPlanePort: this.#config.dataPlanePort, csrHsmId: null, preCoPassword: null, pendingInit: null,
      lastBackupMs: null, tags,
    };
    await this.#repo.commit([clusterWrite(doc, 0)]);
    return { Cluster: clusterShape(doc, []) };
  }

  async describeClusters(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const filters = parseClusterFilters(input);
    const matches = (await this.#repo.clusters()).filter(({ doc }) => doc.accountId === caller.accountId
      && (filters.clusterIds === undefined || filters.clusterIds.includes(doc.clusterId))
      && (filters.vpcIds === undefined || filters.vpcIds.includes(doc.vpcId))
      && (filters.states === undefined || filters.states.includes(doc.state)));
    const { items, nextToken } = page(matches.map((m) => m.doc), (c) => c.clusterId, 'DescribeClusters', input, caller.accountId);
    const clusters: ApiOutput[] = [];
    for (const c of items) clusters.push(clusterShape(c, (await this.#repo.hsmsOf(c.clusterId)).map((h) => h.doc)));
    return { Clusters: clusters, ...(nextToken === undefined ? {} : { NextToken: nextToken }) };
  }

  async modifyCluster(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const days = retentionDays(input['BackupRetentionPolicy']);
    return this.#repo.retrying(async () => {
      const { doc, version } = await this.ownCluster(input['ClusterId'] as string, caller);
      if (doc.state === 'DELETED' || doc.state === 'DELETE_IN_PROGRESS') apiFail('CloudHsmInvalidRequestException', `Cluster ${doc.clusterId} is ${doc.state}.`);
      const hsmType = input['HsmType'] as string | undefined;
      if (hsmType !== undefined && hsmType !== doc.hsmType) apiFail('CloudHsmInvalidRequestException', 'Changing the HSM type of a cluster is not supported.');
      const next: ClusterDoc = { ...doc, backupRetentionDays: days ?? doc.backupRetentionDays };
      const hsms = (await this.#repo.hsmsOf(doc.clusterId)).map((h) => h.doc);
      return { writes: [clusterWrite(next, version)], result: { Cluster: clusterShape(next, hsms) } };
    });
  }

  async deleteCluster(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    return this.#repo.retrying(async () => {
      const { doc, version } = await this.ownCluster(input['ClusterId'] as string, caller);
      if (doc.state === 'DELETED' || doc.state === 'DELETE_IN_PROGRESS') apiFail('CloudHsmInvalidRequestException', `Cluster ${doc.clusterId} is already ${doc.state}.`);
      const hsms = await this.#repo.hsmsOf(doc.clusterId);
      if (hsms.some((h) => h.doc.state !== 'DELETED')) apiFail('CloudHsmInvalidRequestException', 'Delete every HSM of the cluster before deleting the cluster.');
      const next: ClusterDoc = { ...doc, state: 'DELETE_IN_PROGRESS', stateMessage: null, preCoPassword: null, pendingInit: null };
      return { writes: [clusterWrite(next, version)], result: { Cluster: clusterShape(next, []) } };
    });
  }

  async createHsm(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const zone = input['AvailabilityZone'] as string;
    const wantedIp = input['IpAddress'] as string | undefined;
    return this.#repo.retrying(async () => {
      const { doc, version } = await this.ownCluster(input['ClusterId'] as string, caller);
      if (!HSM_STATES_OK.has(doc.state)) apiFail('CloudHsmInvalidRequestException', `Cluster ${doc.clusterId} is ${doc.state}: HSMs can be added to UNINITIALIZED, INITIALIZED, ACTIVE or DEGRADED clusters.`);
      const subnetId = doc.subnetMapping[zone] ?? apiFail('CloudHsmInvalidRequestException', `The cluster has no subnet in ${zone}.`);
      const live = (await this.#repo.hsmsOf(doc.clusterId)).filter((h) => h.doc.state !== 'DELETED');
      if (doc.state === 'UNINITIALIZED' && doc.sourceBackupId === null && live.length > 0) apiFail('CloudHsmInvalidRequestException', 'An uninitialized cluster has one HSM: initialize the cluster before adding more.');
      if (live.length >= HSMS_PER_CLUSTER_MAX) apiFail('CloudHsmResourceLimitExceededException', `A cluster may have at most ${HSMS_PER_CLUSTER_MAX} HSMs.`);
      const hsm: HsmDoc = {
        v: 1, hsmId: newId('hsm'), clusterId: doc.clusterId, availabilityZone: zone, subnetId, eniId: newHexId('eni'),
        eniIp: await this.#eniIp(wantedIp, doc.dataPlanePort, doc.mode), state: 'CREATE_IN_PROGRESS', stateMessage: null, hsmType: doc.hsmType,
        createdMs: this.#config.clock.nowMs(), device: null, failedProbes: 0, replacements: 0,
      };
      // The cluster's version is part of the commit: two CreateHsm calls on an uninitialised cluster cannot both pass.
      return { writes: [clusterWrite(doc, version), hsmWrite(hsm, 0)], result: { Hsm: hsmShape(hsm) } };
    });
  }

  async deleteHsm(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const byId = input['HsmId'] as string | undefined;
    const byEni = input['EniId'] as string | undefined;
    const byIp = input['EniIp'] as string | undefined;
    if ([byId, byEni, byIp].filter((x) => x !== undefined).length !== 1) apiFail('CloudHsmInvalidRequestException', 'Name the HSM by exactly one of HsmId, EniId or EniIp.');
    return this.#repo.retrying(async () => {
      const { doc: cluster } = await this.ownCluster(input['ClusterId'] as string, caller);
      const hsm = (await this.#repo.hsmsOf(cluster.clusterId)).find(({ doc }) => doc.state !== 'DELETED'
        && (doc.hsmId === byId || doc.eniId === byEni || doc.eniIp === byIp));
      if (hsm === undefined) apiFail('CloudHsmResourceNotFoundException', 'The cluster has no such HSM.');
      if (hsm.doc.state === 'DELETE_IN_PROGRESS') return { writes: [], result: { HsmId: hsm.doc.hsmId } };
      const next: HsmDoc = { ...hsm.doc, state: 'DELETE_IN_PROGRESS', stateMessage: null };
      return { writes: [hsmWrite(next, hsm.version)], result: { HsmId: hsm.doc.hsmId } };
    });
  }

  async initializeCluster(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    return this.#repo.retrying(async () => {
      const { doc, version } = await this.ownCluster(input['ClusterId'] as string, caller);
      if (doc.state !== 'UNINITIALIZED') apiFail('CloudHsmInvalidRequestException', `Cluster ${doc.clusterId} is ${doc.state}; only an UNINITIALIZED cluster can be initialized.`);
      const csr = doc.certificates.ClusterCsr ?? apiFail('CloudHsmInvalidRequestException', 'The cluster has no CSR yet: create its first HSM and wait until it is ACTIVE.');
      const signedCert = input['SignedCert'] as string;
      const trustAnchor = input['TrustAnchor'] as string;
      await checkInitialisation(csr, signedCert, trustAnchor, this.#config.clock.nowMs());
      const next: ClusterDoc = { ...doc, state: 'INITIALIZE_IN_PROGRESS', stateMessage: null, pendingInit: { signedCert, trustAnchor } };
      return { writes: [clusterWrite(next, version)], result: { State: next.state } };
    });
  }

  /** The caller's cluster, or CloudHsmResourceNotFoundException (another account's cluster is not found either). */
  async ownCluster(clusterId: string, caller: Caller): Promise<Versioned<ClusterDoc>> {
    const found = await this.#repo.cluster(clusterId);
    if (found === undefined || found.doc.accountId !== caller.accountId) apiFail('CloudHsmResourceNotFoundException', `Cluster ${clusterId} was not found.`);
    return found;
  }

  /** Subnets go to the region's zones in the order given: CloudHSM takes one subnet per zone. */
  #placeSubnets(subnetIds: readonly string[]): Record<string, string> {
    if (new Set(subnetIds).size !== subnetIds.length) apiFail('CloudHsmInvalidRequestException', 'SubnetIds names a subnet twice.');
    const zones = this.#config.availabilityZones;
    if (subnetIds.length > zones.length) apiFail('CloudHsmInvalidRequestException', `The region has ${zones.length} availability zones; give at most one subnet per zone.`);
    const mapping: Record<string, string> = {};
    subnetIds.forEach((s, i) => {
      mapping[zones[i] as string] = s;
    });
    return mapping;
  }

  /** A free address for a new HSM, unique in the region: a loopback address by the local fleet's
   * own rule (allocateLoopback: a local fleet binds it), or a registered remote node's; refusals in
   * the API's words. */
  async #eniIp(wanted: string | undefined, dataPlanePort: number, mode: ClusterDoc['mode']): Promise<string> {
    const used = new Set<string>();
    for (const c of await this.#repo.clusters()) {
      for (const h of await this.#repo.hsmsOf(c.doc.clusterId)) if (h.doc.state !== 'DELETED') used.add(h.doc.eniIp);
    }
    if (this.#config.hsmAddresses === 'registered-nodes') return this.#registeredNodeIp(wanted, used, dataPlanePort, mode);
    try {
      return allocateLoopback(wanted, used);
    } catch (e) {
      if (!isCofferError(e)) throw e;
      if (e.code === 'COFFER_FLEET_EXHAUSTED') apiFail('CloudHsmResourceLimitExceededException', 'No address is free in the region\'s subnet.');
      if (e.detail['reason'] === 'in-use') apiFail('CloudHsmInvalidRequestException', `IpAddress ${String(wanted)} is in use.`);
      return apiFail('CloudHsmInvalidRequestException', `IpAddress must be in the subnet: 127.0.0.${LOOPBACK_FIRST} to 127.0.0.${LOOPBACK_LAST}.`);
    }
  }

  /** The data-plane address of a free registered node on the cluster's port that no HSM of the
   * region holds (the one asked for, or the first such in the registry). The orchestrator then
   * provisions that very node (docs/fleet.md "Addresses and ports"). */
  async #registeredNodeIp(wanted: string | undefined, used: ReadonlySet<string>, dataPlanePort: number, mode: ClusterDoc['mode']): Promise<string> {
    const nodes = (await readRegistry(this.#repo.store)).records.filter((r) => (dataPlanePort === 0 || r.port === dataPlanePort) && r.mode === mode);
    if (wanted !== undefined) {
      if (!nodes.some((r) => r.host === wanted)) apiFail('CloudHsmInvalidRequestException', 'IpAddress must be the data-plane address of a node registered with the fleet.');
      if (used.has(wanted) || !nodes.some((r) => r.host === wanted && r.state === 'free')) apiFail('CloudHsmInvalidRequestException', `IpAddress ${wanted} is in use.`);
      return wanted;
    }
    const free = nodes.find((r) => r.state === 'free' && !used.has(r.host));
    return free?.host ?? apiFail('CloudHsmResourceLimitExceededException', `No registered ${mode} node is free: register one with the fleet (coffer fleet register).`);
  }
}

/** BackupRetentionPolicy → days (7–379), or undefined when absent. */
function retentionDays(policy: unknown): number | undefined {
  if (policy === undefined) return undefined;
  const p = policy as { Type?: string; Value?: string };
  if (p.Type !== 'DAYS' || p.Value === undefined) apiFail('CloudHsmInvalidRequestException', 'BackupRetentionPolicy needs Type DAYS and a Value.');
  const days = Number(p.Value);
  if (!Number.isInteger(days) || days < RETENTION_DAYS_MIN || days > RETENTION_DAYS_MAX) apiFail('CloudHsmInvalidRequestException', `Backup retention must be ${RETENTION_DAYS_MIN} to ${RETENTION_DAYS_MAX} days.`);
  return days;
}

export function checkUniqueTagKeys(tags: readonly Tag[]): void {
  if (new Set(tags.map((t) => t.Key)).size !== tags.length) apiFail('CloudHsmTagException', 'TagList names a key twice.');
}

