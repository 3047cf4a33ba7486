// Typed reads and writes of the control plane's documents (src/service/records.ts) over the
// metadata port. Every change is a read-modify-write with compare-and-set on the versions read, so
// that API calls on several service processes and the one orchestrator never overwrite each
// other's changes; a lost race is retried from a fresh read a bounded number of times.

import { isCofferError } from '../errors.js';
import { LIST_LIMIT_MAX, type DocumentWrite, type MetadataStore } from '../storage/metadata_port.js';
import { apiFail } from './api/operations.js';
import { COLLECTION, decodeDoc, type BackupDoc, type ClusterDoc, type HsmDoc, type Versioned } from './records.js';

/** A read-modify-write that keeps losing its compare-and-set this many times gives up: something
 * is changing the same document continuously, and the caller may retry later. */
export const CAS_ATTEMPTS_MAX = 8;

export class Repository {
  readonly store: MetadataStore;

  constructor(store: MetadataStore) {
    this.store = store;
  }

  async cluster(clusterId: string): Promise<Versioned<ClusterDoc> | undefined> {
    const stored = await this.store.get(COLLECTION.cluster, clusterId);
    return stored === undefined ? undefined : decodeDoc<ClusterDoc>(stored);
  }

  async hsm(hsmId: string): Promise<Versioned<HsmDoc> | undefined> {
    const stored = await this.store.get(COLLECTION.hsm, hsmId);
    return stored === undefined ? undefined : decodeDoc<HsmDoc>(stored);
  }

  async backup(backupId: string): Promise<Versioned<BackupDoc> | undefined> {
    const stored = await this.store.get(COLLECTION.backup, backupId);
    return stored === undefined ? undefined : decodeDoc<BackupDoc>(stored);
  }

  async clusters(): Promise<Versioned<ClusterDoc>[]> {
    return this.#all<ClusterDoc>(COLLECTION.cluster);
  }

  async hsmsOf(clusterId: string): Promise<Versioned<HsmDoc>[]> {
    return this.#all<HsmDoc>(COLLECTION.hsm, clusterId);
  }

  async backups(): Promise<Versioned<BackupDoc>[]> {
    return this.#all<BackupDoc>(COLLECTION.backup);
  }

  async backupsOf(clusterId: string): Promise<Versioned<BackupDoc>[]> {
    return this.#all<BackupDoc>(COLLECTION.backup, clusterId);
  }

  async commit(writes: readonly DocumentWrite[]): Promise<void> {
    await this.store.commit(writes);
  }

  /**
   * Runs `plan` on fresh reads until its writes commit (compare-and-set on what it read).
   * `plan` returns the writes and a result, or throws an ApiError to refuse.
   */
  async retrying<T>(plan: () => Promise<{ readonly writes: readonly DocumentWrite[]; readonly result: T }>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { writes, result } = await plan();
      try {
        if (writes.length > 0) await this.store.commit(writes);
        return result;
      } catch (e) {
        if (!isCofferError(e) || e.code !== 'COFFER_METADATA_CONFLICT') throw e;
        if (attempt >= CAS_ATTEMPTS_MAX) apiFail('CloudHsmServiceException', 'The resource is being changed by another request; try again.');
      }
    }
  }

  async #all<T extends { readonly v: number }>(collection: (typeof COLLECTION)[keyof typeof COLLECTION], parent?: string): Promise<Versioned<T>[]> {
    const out: Versioned<T>[] = [];
    let afterId: string | undefined;
    for (;;) {
      const page = await this.store.list(collection, { limit: LIST_LIMIT_MAX, ...(parent === undefined ? {} : { parent }), ...(afterId === undefined ? {} : { afterId }) });
      for (const stored of page) out.push(decodeDoc<T>(stored));
      if (page.length < LIST_LIMIT_MAX) return out;
      afterId = page[page.length - 1]?.id;
    }
  }
}
