// The backup, tag and resource-policy operations of the CloudHSMv2 API (docs/control-plane.md):
// DescribeBackups, DeleteBackup, RestoreBackup, ModifyBackupAttributes, CopyBackupToRegion,
// TagResource, UntagResource, ListTags, Get/Put/DeleteResourcePolicy.
//
// Backups are taken, archived, expired and purged by the orchestrator; these calls change only
// their metadata. DeleteBackup is CloudHSM's soft delete: PENDING_DELETION for 7 days, during which
// RestoreBackup brings the backup back to READY; the purge removes the sealed blob afterwards.

import { apiFail, type ApiInput, type ApiOutput, type Caller } from './api/operations.js';
import { backupShape } from './shapes.js';
import { page } from './paging.js';
import { parseBackupFilters, type BackupFilters } from './api/pagination.js';
import { parseArn, parseBackupReference } from './api/resources.js';
import { backupWrite, clusterWrite, type BackupDoc, type ClusterDoc, type Tag, type Versioned } from './records.js';
import type { Repository } from './repository.js';
import { PENDING_DELETION_MS, type ServiceConfig } from './config.js';
import { checkUniqueTagKeys } from './cluster_operations.js';
import { policyPrincipals } from './resource_policy.js';

/** CloudHSM allows 50 tags per resource. */
export const TAGS_PER_RESOURCE_MAX = 50;

export class BackupOperations {
  readonly #repo: Repository;
  readonly #config: ServiceConfig;
  /** CopyBackupToRegion's transport to a peer region's service; absent: no peers. */
  readonly #copyTo: ((region: string, backup: BackupDoc, tags: readonly Tag[]) => Promise<ApiOutput>) | undefined;

  constructor(repo: Repository, config: ServiceConfig, copyTo?: (region: string, backup: BackupDoc, tags: readonly Tag[]) => Promise<ApiOutput>) {
    this.#repo = repo;
    this.#config = config;
    this.#copyTo = copyTo;
  }

  async describeBackups(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const filters = parseBackupFilters(input);
    const shared = input['Shared'] === true;
    const all = (await this.#repo.backups()).map((b) => b.doc).filter((b) => b.state !== 'DELETED'
      && (shared ? b.accountId !== caller.accountId && policyPrincipals(b.resourcePolicy).has(caller.accountId) : b.accountId === caller.accountId));
    const matches = all.filter((b) => matchesFilters(b, filters));
    const ascending = input['SortAscending'] === true;
    // Pages keyed by creation time then id, so a token stays valid while new backups arrive.
    const keyOf = (b: BackupDoc): string => `${String(ascending ? b.createdMs : Number.MAX_SAFE_INTEGER - b.createdMs).padStart(16, '0')}:${b.backupId}`;
    matches.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    const { items, nextToken } = page(matches, keyOf, 'DescribeBackups', input, caller.accountId);
    return { Backups: items.map((b) => backupShape(b, this.#config.region)), ...(nextToken === undefined ? {} : { NextToken: nextToken }) };
  }

  async deleteBackup(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    return this.#change(input['BackupId'] as string, caller, (b) => {
      if (b.state !== 'READY') apiFail('CloudHsmInvalidRequestException', `Backup ${b.backupId} is ${b.state}; only a READY backup can be deleted.`);
      return { ...b, state: 'PENDING_DELETION', deleteMs: this.#config.clock.nowMs() + PENDING_DELETION_MS };
    });
  }

  async restoreBackup(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    return this.#change(input['BackupId'] as string, caller, (b) => {
      if (b.state !== 'PENDING_DELETION') apiFail('CloudHsmInvalidRequestException', `Backup ${b.backupId} is ${b.state}; only a backup pending deletion can be restored.`);
      return { ...b, state: 'READY', deleteMs: null };
    });
  }

  async modifyBackupAttributes(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    return this.#change(input['BackupId'] as string, caller, (b) => ({ ...b, neverExpires: input['NeverExpires'] === true }));
  }

  async copyBackupToRegion(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const region = input['DestinationRegion'] as string;
    const { doc } = await this.#own(input['BackupId'] as string, caller);
    if (region === this.#config.region) apiFail('CloudHsmInvalidRequestException', 'DestinationRegion is this region.');
    if (doc.state !== 'READY') apiFail('CloudHsmInvalidRequestException', `Backup ${doc.backupId} is ${doc.state}; only a READY backup can be copied.`);
    const tags = (input['TagList'] as Tag[] | undefined) ?? [];
    checkUniqueTagKeys(tags);
    if (this.#copyTo === undefined) apiFail('CloudHsmInvalidRequestException', `Region ${region} is not a peer of this service.`);
    return this.#copyTo(region, doc, tags);
  }

  // ── tags ────────────────────────────────────────────────────────────────────────────────────

  async tagResource(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const add = input['TagList'] as Tag[];
    checkUniqueTagKeys(add);
    await this.#retag(input['ResourceId'] as string, caller, (tags) => {
      const merged = new Map(tags.map((t) => [t.Key, t.Value]));
      for (const t of add) merged.set(t.Key, t.Value);
      if (merged.size > TAGS_PER_RESOURCE_MAX) apiFail('CloudHsmTagException', `A resource may have at most ${TAGS_PER_RESOURCE_MAX} tags.`);
      return [...merged].map(([Key, Value]) => ({ Key, Value }));
    });
    return {};
  }

  async untagResource(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const keys = new Set(input['TagKeyList'] as string[]);
    await this.#retag(input['ResourceId'] as string, caller, (tags) => tags.filter((t) => !keys.has(t.Key)));
    return {};
  }

  async listTags(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const tags = await this.#retag(input['ResourceId'] as string, caller, undefined);
    const { items, nextToken } = page([...tags].sort((a, b) => (a.Key < b.Key ? -1 : 1)), (t) => t.Key, 'ListTags', input, caller.accountId);
    return { TagList: items, ...(nextToken === undefined ? {} : { NextToken: nextToken }) };
  }

  // ── resource policies (backups only, as in CloudHSM) ───────────────────────────────────────

  async getResourcePolicy(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const { doc } = await this.#own(backupIdOfArn(input['ResourceArn'] as string, this.#config.region), caller);
    return doc.resourcePolicy === null ? {} : { Policy: doc.resourcePolicy };
  }

  async putResourcePolicy(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const arn = input['ResourceArn'] as string;
    const policy = input['Policy'] as string;
    policyPrincipals(policy, true);
    await this.#change(backupIdOfArn(arn, this.#config.region), caller, (b) => ({ ...b, resourcePolicy: policy }));
    return { ResourceArn: arn, Policy: policy };
  }

  async deleteResourcePolicy(input: ApiInput, caller: Caller): Promise<ApiOutput> {
    const arn = input['ResourceArn'] as string;
    let old: string | null = null;
    await this.#change(backupIdOfArn(arn, this.#config.region), caller, (b) => {
      old = b.resourcePolicy;
      return { ...b, resourcePolicy: null };
    });
    return { ResourceArn: arn, ...(old === null ? {} : { Policy: old }) };
  }

  // ── helpers ─────────────────────────────────────────────────────────────────────────────────

  async #own(backupId: string, caller: Caller): Promise<Versioned<BackupDoc>> {
    const found = await this.#repo.backup(backupId);
    if (found === undefined || found.doc.accountId !== caller.accountId || found.doc.state === 'DELETED') apiFail('CloudHsmResourceNotFoundException', `Backup ${backupId} was not found.`);
    return found;
  }

  async #change(backupId: string, caller: Caller, edit: (b: BackupDoc) => BackupDoc): Promise<ApiOutput> {
    return this.#repo.retrying(async () => {
      const { doc, version } = await this.#own(backupId, caller);
      const next = edit(doc);
      return { writes: [backupWrite(next, version)], result: { Backup: backupShape(next, this.#config.region) } };
    });
  }

  /** Reads (edit undefined) or rewrites the tags of a cluster or backup the caller owns. */
  async #retag(resourceId: string, caller: Caller, edit: ((tags: readonly Tag[]) => Tag[]) | undefined): Promise<readonly Tag[]> {
    return this.#repo.retrying(async () => {
      if (resourceId.startsWith('backup-')) {
        const { doc, version } = await this.#own(resourceId, caller);
        if (edit === undefined) return { writes: [], result: doc.tags };
        const next: BackupDoc = { ...doc, tags: edit(doc.tags) };
        return { writes: [backupWrite(next, version)], result: next.tags };
      }
      const found = await this.#repo.cluster(resourceId);
      if (found === undefined || found.doc.accountId !== caller.accountId || found.doc.state === 'DELETED') apiFail('CloudHsmResourceNotFoundException', `Resource ${resourceId} was not found.`);
      if (edit === undefined) return { writes: [], result: found.doc.tags };
      const next: ClusterDoc = { ...found.doc, tags: edit(found.doc.tags) };
      return { writes: [clusterWrite(next, found.version)], result: next.tags };
    });
  }
}

function matchesFilters(b: BackupDoc, f: BackupFilters): boolean {
  return (f.backupIds === undefined || f.backupIds.includes(b.backupId))
    && (f.sourceBackupIds === undefined || (b.sourceBackup !== null && f.sourceBackupIds.includes(b.sourceBackup)))
    && (f.clusterIds === undefined || f.clusterIds.includes(b.clusterId))
    && (f.states === undefined || f.states.includes(b.state))
    && (f.neverExpires === undefined || f.neverExpires === b.neverExpires);
}

/** A backup ARN of this region → its id. */
function backupIdOfArn(text: string, region: string): string {
  const arn = parseArn(text);
  if (arn.kind !== 'backup' || arn.region !== region) apiFail('CloudHsmInvalidRequestException', 'ResourceArn must be the ARN of a backup in this region.');
  return arn.id;
}

/**
 * CreateCluster's SourceBackupId: an id of the caller's own backup, or the full ARN of a backup
 * another account shares with the caller by resource policy (CloudHSM's cross-account rule).
 */
export async function resolveSourceBackup(repo: Repository, region: string, source: string, caller: Caller): Promise<BackupDoc> {
  const { backupId, arn } = parseBackupReference(source);
  if (arn !== undefined && arn.region !== region) apiFail('CloudHsmInvalidRequestException', 'SourceBackupId names a backup in another region: copy it here first.');
  const found = await repo.backup(backupId);
  const b = found?.doc;
  const visible = b !== undefined && b.state !== 'DELETED' && (b.accountId === caller.accountId
    || (arn !== undefined && arn.accountId === b.accountId && policyPrincipals(b.resourcePolicy).has(caller.accountId)));
  if (!visible) apiFail('CloudHsmResourceNotFoundException', `Backup ${backupId} was not found.`);
  if (b.state !== 'READY') apiFail('CloudHsmInvalidRequestException', `Backup ${backupId} is ${b.state}; only a READY backup can be restored into a cluster.`);
  return b;
}

