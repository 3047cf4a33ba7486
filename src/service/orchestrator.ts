// The orchestrator (docs/control-plane.md "Orchestration"): what moves clusters, HSMs and backups
// through their states after an API call recorded the request, and what keeps clusters healthy.
//
// One `tick()` looks at every cluster: finishes creations and deletions, provisions new HSMs (the
// first makes the cluster CSR; later ones are cloned from a fresh backup of a healthy HSM, or from
// the cluster's newest archived backup when none is healthy), initialises, notices activation,
// backs up on schedule, expires and purges backups, and probes every HSM, replacing one that stops
// answering and checking its journal head against the stored journal (a missing entry, a fork).
// Slow steps (a provision, a restore, a zeroise) run as tasks beside the tick, one per HSM or
// cluster at a time; `settled()` waits for them (tests, shutdown).
//
// Only the holder of the `orchestrator` lease acts, so with several service processes on one
// database exactly one orchestrates; another takes over when the lease expires. Time comes from the
// injected clock: tests move it by hand and call tick().

import { isCofferError, type CofferError } from '../errors.js';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ManagementClient, NodeHealth } from '../management/client.js';
import { UntrustedBackupError, type BackupFlow } from './backup_flow.js';
import { FAILED_PROBES_MAX, PENDING_DELETION_MS, type ServiceConfig } from './config.js';
import type { Fleet, FleetDevice } from './fleet/fleet_port.js';
import type { JournalFaultReport } from '../formats/management.js';
import { JournalRelay, compactionFloor, storedChainHash, type RelayTarget } from './journal_relay.js';
import { backupWrite, clusterWrite, deleteWrite, hsmWrite, COLLECTION, type BackupDoc, type ClusterDoc, type HsmDoc, type Versioned } from './records.js';
import type { Repository } from './repository.js';
import type { HsmFigures } from './figures.js';
import type { ServiceMetrics } from './metrics.js';
import type { AuditCollector } from './audit_collector.js';

const DAY_MS = 24 * 3600_000;
/** The lease outlives a few ticks, so one slow tick does not hand orchestration to another process. */
const LEASE_TICKS = 5;
/** PreCo passwords: CloudHSM's are 7–32 characters. */
const PRECO_PASSWORD_CHARS = 24;
/** The appliance credential: as long as a password may be (32 characters, CloudHSM's maximum). */
const APPLIANCE_CREDENTIAL_CHARS = 32;

export interface OrchestratorOptions {
  readonly repo: Repository;
  readonly fleet: Fleet;
  readonly backups: BackupFlow;
  readonly config: ServiceConfig;
  readonly log: Logger;
  /** Hears HSM journal heads and replacement durations (metrics.ts). */
  readonly metrics?: ServiceMetrics;
  /** Keeps what each health probe reported, for the console's live figures (figures.ts). */
  readonly figures?: HsmFigures;
  /** This process's name in the lease. */
  readonly holder: string;
  /** Collects the HSMs' audit logs into the archive (audit_collector.ts); absent: not collected. */
  readonly audit?: AuditCollector;
}

/** How often each HSM's audit log is collected (docs/audit.md "Collection"), on the probe after it is due. */
export const AUDIT_COLLECT_INTERVAL_MS = 60_000;

export class Orchestrator {
  readonly #o: OrchestratorOptions;
  /** Running tasks by the resource they work on: one at a time per HSM or cluster. */
  readonly #tasks = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  /** The cluster journal's relay (journal_relay.ts): runs only while this process holds the lease. */
  readonly #relay: JournalRelay;
  /** When each HSM's audit log was last collected (config clock), by HSM id. */
  readonly #auditCollectedMs = new Map<string, number>();

  constructor(options: OrchestratorOptions) {
    this.#o = options;
    this.#relay = new JournalRelay({
      store: options.repo.store, fleet: options.fleet, log: options.log,
      onFault: (target, fault) => this.#task(`fault:${target.hsmId}`, () => this.#journalFault(target.hsmId, target.device.serial, fault)),
    });
  }

  /** Ticks every probe interval until stop(). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (this.#ticking !== undefined) return;
      this.#ticking = this.tick().then(() => undefined, (e: unknown) => this.#o.log.error({ event: 'orchestrator.tick.failed', err: errorWords(e) }, 'orchestrator tick failed')).finally(() => {
        this.#ticking = undefined;
      });
    }, this.#o.config.probeIntervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
    await this.#relay.stop();
    await this.settled();
    await this.#o.repo.store.releaseLease('orchestrator', this.#o.holder);
  }

  /**
   * After a restart: every HSM's device is found again through the fleet (still running, or
   * restarted from its data). One that cannot be found fails its probes and is replaced.
   */
  async reattach(): Promise<void> {
    for (const c of await this.#o.repo.clusters()) {
      for (const h of await this.#o.repo.hsmsOf(c.doc.clusterId)) {
        const device = h.doc.device;
        if (device === null) continue;
        try {
          const found = await this.#o.fleet.reattach(device);
          if (JSON.stringify(found) !== JSON.stringify(device)) await this.#setHsm(h.doc.hsmId, { device: found });
        } catch (e) {
          this.#o.log.warn({ event: 'hsm.reattach.failed', hsmId: h.doc.hsmId, err: errorWords(e) }, 'HSM device not found after restart');
        }
      }
    }
  }

  /** Resolves when no task is running. */
  async settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks.values()]);
  }

  /** True when this process holds the orchestrator lease after the call. */
  async tick(): Promise<boolean> {
    const { config, repo, holder } = this.#o;
    const lease = await repo.store.acquireLease('orchestrator', holder, config.probeIntervalMs * LEASE_TICKS, config.clock.nowMs());
    if (lease.holder !== holder) {
      this.#relay.sync([]);
      return false;
    }
    const clusters = await repo.clusters();
    for (const cluster of clusters) await this.#reconcile(cluster);
    this.#relay.sync(config.relayJournal === true ? await this.#relayTargets() : []);
    return true;
  }

  /** A new or restored HSM brought to the journal head before it is ACTIVE (when journals are relayed). */
  async #catchUp(clusterId: string, device: FleetDevice): Promise<void> {
    if (this.#o.config.relayJournal === true) await this.#relay.catchUp(clusterId, device);
  }

  /** The HSMs whose journal this process relays: those in service (ACTIVE or DEGRADED, with a device,
   * no creation or replacement under way) of clusters that hold a journal. */
  async #relayTargets(): Promise<RelayTarget[]> {
    const targets: RelayTarget[] = [];
    for (const c of await this.#o.repo.clusters()) {
      if (!['INITIALIZED', 'ACTIVE', 'DEGRADED'].includes(c.doc.state)) continue;
      for (const h of await this.#o.repo.hsmsOf(c.doc.clusterId)) {
        const { state, device, hsmId } = h.doc;
        if ((state === 'ACTIVE' || state === 'DEGRADED') && device !== null && !this.#tasks.has(hsmId)) targets.push({ clusterId: c.doc.clusterId, hsmId, device });
      }
    }
    return targets;
  }

  /**
   * An HSM refused a journal entry: it and its cluster are DEGRADED, with a message naming the
   * refusal and the position, and the HSM is replaced like a failed one (a new device restored from a
   * fresh backup of a healthy peer, caught up, ACTIVE only when caught up) as soon as another HSM of
   * the cluster, itself without a fault, has applied the journal past that position: the journal
   * there is sound and the fault is this HSM's. While no peer has (a lone HSM, or every HSM refusing
   * one stored entry: a bad journal, which a replacement would refuse too) it stays DEGRADED.
   */
  async #journalFault(hsmId: string, serial: string, fault: JournalFaultReport): Promise<void> {
    const h = await this.#o.repo.hsm(hsmId);
    if (h === undefined || h.doc.device?.serial !== serial) return; // the device was replaced meanwhile
    const stateMessage = faultMessage(fault);
    if (h.doc.state !== 'DEGRADED' || h.doc.stateMessage !== stateMessage) {
      await this.#setHsm(hsmId, { state: 'DEGRADED', stateMessage });
      this.#o.log.warn({ event: 'hsm.journal.fault', clusterId: h.doc.clusterId, hsmId, code: fault.code, seq: String(fault.seq), reason: fault.reason }, 'HSM refused a journal entry');
      await this.#health(h.doc.clusterId);
    }
    if (await this.#peerPassed(h.doc.clusterId, hsmId, fault.seq)) {
      this.#o.log.warn({ event: 'hsm.journal.replace', clusterId: h.doc.clusterId, hsmId, seq: String(fault.seq) }, 'replacing the HSM that refused a journal entry its peers applied');
      this.#task(hsmId, () => this.#replace(hsmId));
    }
  }

  /** True when an ACTIVE HSM of the cluster other than `hsmId` reports no journal fault and a head at or past `seq`. */
  async #peerPassed(clusterId: string, hsmId: string, seq: bigint): Promise<boolean> {
    for (const p of await this.#o.repo.hsmsOf(clusterId)) {
      if (p.doc.hsmId === hsmId || p.doc.state !== 'ACTIVE' || p.doc.device === null) continue;
      const health = await this.#mgmt(p.doc.device).health().catch(() => undefined);
      if (health !== undefined && health.journalFault === null && health.journalPosition >= seq) return true;
    }
    return false;
  }

  /**
   * What a health report shows of an HSM's journal that the HSM cannot judge alone
   * (docs/control-plane.md "Heads and gaps"), checked against the stored journal:
   *
   * - **a missing entry**: the HSM reports one (it was delivered a later entry and has waited its
   *   bound), or the store lacks the entry after the HSM's head below its own head (a damaged store:
   *   the relay cannot deliver past it). DEGRADED, naming the position, until the HSM's head passes
   *   it: then ACTIVE again — nothing was applied out of order, so nothing needs replacing.
   * - **a fork**: the HSM's head hash is not the stored entry's chain hash at its position (it applied
   *   another entry there). DEGRADED, naming the position; not replaced by this alone — the next
   *   entry delivered to it is refused as a FORK fault, and the fault rule above applies. Not checked
   *   at position 0, nor when the entry at the HSM's position is no longer stored (compacted).
   */
  async #journalHead(hsmId: string, serial: string, health: NodeHealth): Promise<void> {
    const h = await this.#o.repo.hsm(hsmId);
    if (h === undefined || h.doc.device?.serial !== serial) return;
    // A DEGRADED HSM for another reason (a fault, a replacement that could not catch up) keeps its message.
    const ours = [MISSING_MESSAGE_PREFIX, FORK_MESSAGE_PREFIX].some((p) => h.doc.stateMessage?.startsWith(p) === true);
    if (h.doc.state !== 'ACTIVE' && !(h.doc.state === 'DEGRADED' && ours)) return;
    const { clusterId } = h.doc;
    const finding = (await this.#missing(clusterId, health)) ?? (await this.#fork(clusterId, health));
    if (finding !== undefined) {
      if (h.doc.state === 'DEGRADED' && h.doc.stateMessage === finding.message) return;
      await this.#setHsm(hsmId, { state: 'DEGRADED', stateMessage: finding.message });
      this.#o.log.warn({ event: finding.event, clusterId, hsmId, seq: finding.seq.toString() }, finding.message);
      await this.#health(clusterId);
      return;
    }
    // The missing entry arrived and was applied: the HSM is itself again (a fault or a fork is not cleared so).
    if (h.doc.state === 'DEGRADED' && h.doc.stateMessage?.startsWith(MISSING_MESSAGE_PREFIX) === true) {
      await this.#setHsm(hsmId, { state: 'ACTIVE', stateMessage: null });
      this.#o.log.info({ event: 'hsm.journal.resumed', clusterId, hsmId, seq: String(health.journalPosition) }, 'HSM received the journal entry it was missing');
      await this.#health(clusterId);
    }
  }

  /** The entry an HSM misses, with its state message; undefined when it misses none. */
  async #missing(clusterId: string, health: NodeHealth): Promise<HeadFinding | undefined> {
    const store = this.#o.repo.store;
    const storeHead = BigInt(await store.journalHead(clusterId));
    const reported = health.journalMissing?.seq;
    const seq = reported ?? health.journalPosition + 1n;
    if (reported === undefined && seq > storeHead) return undefined;
    const stored = seq <= storeHead ? await storedChainHash(store, clusterId, seq, clusterId) : undefined;
    if (reported === undefined && stored !== undefined) return undefined; // behind, and the relay has it to deliver
    const [first] = await store.readJournal(clusterId, 1, 1);
    const where = stored !== undefined ? 'the metadata store holds it, but deliveries to the HSM do not bring it'
      : seq > storeHead ? 'the metadata store does not hold it either'
        : first !== undefined && BigInt(first.seq) > seq ? 'the metadata store no longer holds it (compacted)'
          : 'the metadata store holds entries before and after it but not this one: the store is damaged';
    const message = `${MISSING_MESSAGE_PREFIX} ${seq.toString()}: ${reported === undefined ? 'the journal goes on past it' : 'later entries reached the HSM, this one has not'}; ${where}.`;
    return { event: 'hsm.journal.missing', seq, message };
  }

  /** The position where an HSM's head is not the stored journal's entry, with its state message; undefined when it is. */
  async #fork(clusterId: string, health: NodeHealth): Promise<HeadFinding | undefined> {
    const seq = health.journalPosition;
    if (seq === 0n || health.journalHeadHash === null) return undefined;
    const stored = await storedChainHash(this.#o.repo.store, clusterId, seq, clusterId);
    if (stored === undefined || Buffer.from(stored).toString('hex') === health.journalHeadHash) return undefined;
    const message = `${FORK_MESSAGE_PREFIX} ${seq.toString()}: its head there is not the cluster journal's entry (COFFER_JOURNAL_FORK). Replace the HSM, or check the metadata store if every HSM reports it.`;
    return { event: 'hsm.journal.fork', seq, message };
  }

  // ── per cluster ────────────────────────────────────────────────────────────────────────────

  async #reconcile(c: Versioned<ClusterDoc>): Promise<void> {
    const { doc } = c;
    if (doc.state === 'DELETED') return;
    const hsms = await this.#o.repo.hsmsOf(doc.clusterId);
    if (doc.state === 'CREATE_IN_PROGRESS') return this.#setCluster(c, { state: 'UNINITIALIZED' });
    if (doc.state === 'DELETE_IN_PROGRESS') {
      if (hsms.length === 0) await this.#setCluster(c, { state: 'DELETED' });
      return;
    }
    for (const h of hsms) {
      if (h.doc.state === 'CREATE_IN_PROGRESS') this.#task(h.doc.hsmId, () => this.#createHsm(h.doc.hsmId));
      else if (h.doc.state === 'DELETE_IN_PROGRESS') this.#task(h.doc.hsmId, () => this.#deleteHsm(h.doc.hsmId));
      else if (!this.#tasks.has(h.doc.hsmId)) await this.#probe(h);
    }
    if (doc.state === 'INITIALIZE_IN_PROGRESS') this.#task(doc.clusterId, () => this.#initialise(doc.clusterId));
    if (doc.state === 'INITIALIZED') await this.#noticeActivation(c, hsms);
    if (doc.state === 'ACTIVE' || doc.state === 'DEGRADED') await this.#health(doc.clusterId);
    await this.#retention(doc.clusterId);
  }

  /** ACTIVE when every HSM is, DEGRADED otherwise; a backup when the schedule says so. */
  async #health(clusterId: string): Promise<void> {
    const c = await this.#o.repo.cluster(clusterId);
    if (c === undefined || (c.doc.state !== 'ACTIVE' && c.doc.state !== 'DEGRADED')) return;
    const hsms = (await this.#o.repo.hsmsOf(clusterId)).map((h) => h.doc);
    const state = hsms.every((h) => h.state === 'ACTIVE') ? 'ACTIVE' : 'DEGRADED';
    // A journal fault, a missing entry or a fork names itself; any other DEGRADED HSM is being created or replaced.
    const faulted = hsms.find((h) => h.state === 'DEGRADED' && JOURNAL_MESSAGE_PREFIXES.some((p) => h.stateMessage?.startsWith(p) === true));
    const stateMessage = state === 'ACTIVE' ? null : faulted !== undefined ? `${faulted.hsmId}: ${faulted.stateMessage ?? ''}` : 'An HSM of the cluster is being created or replaced.';
    if (state !== c.doc.state || stateMessage !== c.doc.stateMessage) await this.#setCluster(c, { state, stateMessage });
    const due = c.doc.lastBackupMs === null || this.#o.config.clock.nowMs() - c.doc.lastBackupMs >= this.#o.config.backupIntervalMs;
    if (due) this.#task(`backup:${clusterId}`, () => this.#scheduledBackup(clusterId, 'schedule'));
  }

  async #noticeActivation(c: Versioned<ClusterDoc>, hsms: readonly Versioned<HsmDoc>[]): Promise<void> {
    const device = hsms.find((h) => h.doc.state === 'ACTIVE' && h.doc.device !== null)?.doc.device;
    if (device === undefined || device === null) return;
    const health = await this.#mgmt(device).health().catch(() => undefined);
    if (health?.activated !== true) return;
    // Activation replaced the PreCo password inside the HSM: the service forgets it.
    await this.#setCluster(c, { state: 'ACTIVE', stateMessage: null, preCoPassword: null });
    this.#o.log.info({ event: 'cluster.activated', clusterId: c.doc.clusterId }, 'cluster activated');
    this.#task(`backup:${c.doc.clusterId}`, () => this.#scheduledBackup(c.doc.clusterId, 'activation'));
  }

  // ── HSM creation, deletion, replacement ────────────────────────────────────────────────────

  async #createHsm(hsmId: string): Promise<void> {
    const h = await this.#o.repo.hsm(hsmId);
    const c = h === undefined ? undefined : await this.#o.repo.cluster(h.doc.clusterId);
    if (h === undefined || c === undefined || h.doc.state !== 'CREATE_IN_PROGRESS') return;
    const withDevice = await this.#provision(h);
    try {
      await this.#bringUp(c.doc, withDevice.doc);
      await this.#catchUp(c.doc.clusterId, withDevice.doc.device as FleetDevice);
    } catch (e) {
      this.#o.log.warn({ event: 'hsm.create.retry', hsmId, err: errorWords(e) }, 'HSM creation step failed; retried next tick');
      return;
    }
    await this.#setHsm(hsmId, { state: 'ACTIVE', stateMessage: null, failedProbes: 0 });
    this.#o.log.info({ event: 'hsm.active', clusterId: c.doc.clusterId, hsmId }, 'HSM active');
    const after = await this.#o.repo.cluster(c.doc.clusterId);
    if (after !== undefined && after.doc.state === 'UNINITIALIZED' && after.doc.sourceBackupId !== null) {
      const health = await this.#mgmt(withDevice.doc.device as FleetDevice).health();
      await this.#setCluster(after, { state: health.activated ? 'ACTIVE' : 'INITIALIZED' });
    }
    if (after !== undefined && (after.doc.state === 'ACTIVE' || after.doc.state === 'DEGRADED')) {
      this.#task(`backup:${c.doc.clusterId}`, () => this.#scheduledBackup(c.doc.clusterId, 'hsm-created'));
    }
  }

  /** A device for the HSM (kept in its document at once, so a crash cannot lose track of it). */
  async #provision(h: Versioned<HsmDoc>, options: { readonly anyAddress?: boolean } = {}): Promise<Versioned<HsmDoc>> {
    if (h.doc.device !== null) return h;
    const c = await this.#o.repo.cluster(h.doc.clusterId);
    const device = await this.#o.fleet.provision({
      clusterId: h.doc.clusterId, hsmId: h.doc.hsmId, ...(options.anyAddress === true ? {} : { eniIp: h.doc.eniIp }), dataPlanePort: c?.doc.dataPlanePort ?? 0,
      mode: c?.doc.mode ?? 'NON_FIPS',
    });
    const next: HsmDoc = { ...h.doc, device, eniIp: device.host };
    await this.#o.repo.commit([hsmWrite(next, h.version)]);
    return { doc: next, version: h.version + 1 };
  }

  /** The first HSM of a new cluster makes its CSR; any other is restored from a backup. */
  async #bringUp(cluster: ClusterDoc, hsm: HsmDoc): Promise<void> {
    const mgmt = this.#mgmt(hsm.device as FleetDevice);
    if (cluster.state === 'UNINITIALIZED' && cluster.sourceBackupId === null) {
      const csr = await mgmt.clusterCsr(cluster.clusterId);
      const identity = await mgmt.identity();
      await this.#o.repo.retrying(async () => {
        const c = await this.#o.repo.cluster(cluster.clusterId);
        if (c === undefined) return { writes: [], result: undefined };
        const certificates = {
          ClusterCsr: csr, HsmCertificate: identity.deviceCertificatePem, AwsHardwareCertificate: identity.operatorCertificatePem,
          ManufacturerHardwareCertificate: this.#o.backups.roots.manufacturerRoot as string,
        };
        return { writes: [clusterWrite({ ...c.doc, certificates, csrHsmId: hsm.hsmId }, c.version)], result: undefined };
      });
      return;
    }
    const seed = cluster.sourceBackupId !== null && cluster.state === 'UNINITIALIZED' ? (await this.#o.repo.backup(cluster.sourceBackupId))?.doc : undefined;
    const sources = seed !== undefined ? [seed] : await this.#freshOrNewestBackups(cluster.clusterId, hsm.hsmId);
    if (sources.length === 0) throw new Error('no backup to restore the HSM from');
    // Newest first; an archived backup that fails its provenance check (altered in the archive) is
    // passed over for the next one, so one bad blob cannot keep a cluster from healing.
    for (const [i, source] of sources.entries()) {
      try {
        // A cluster created from a backup starts a journal of its own on its first HSM: a fresh sync
        // key and genesis, so no entry of the source cluster replays into it, nor the reverse.
        await this.#o.backups.restore(mgmt, source.archiveKey as string, source.bodySha256, seed === undefined ? {} : { cloneClusterId: cluster.clusterId });
        return;
      } catch (e) {
        if (!(e instanceof UntrustedBackupError) || i === sources.length - 1) throw e;
        this.#o.log.warn({ event: 'backup.untrusted', clusterId: cluster.clusterId, backupId: source.backupId, err: errorWords(e) }, 'archived backup refused; trying an older one');
      }
    }
  }

  /** A fresh backup from a healthy HSM of the cluster; else its archived READY backups, newest first. */
  async #freshOrNewestBackups(clusterId: string, exceptHsmId: string): Promise<BackupDoc[]> {
    const fresh = await this.#freshPeerBackup(clusterId, exceptHsmId);
    if (fresh !== undefined) return [fresh];
    const ready = (await this.#o.repo.backupsOf(clusterId)).map((b) => b.doc).filter((b) => b.state === 'READY' && b.archiveKey !== null);
    return ready.sort((a, b) => b.createdMs - a.createdMs);
  }

  /** A fresh backup, archived, of the first ACTIVE HSM of the cluster other than `exceptHsmId` that
   * gives one; undefined when none does. */
  async #freshPeerBackup(clusterId: string, exceptHsmId: string): Promise<BackupDoc | undefined> {
    for (const h of await this.#o.repo.hsmsOf(clusterId)) {
      if (h.doc.hsmId === exceptHsmId || h.doc.state !== 'ACTIVE' || h.doc.device === null) continue;
      try {
        return await this.#backupFrom(clusterId, h.doc.device, 'clone');
      } catch (e) {
        this.#o.log.warn({ event: 'backup.failed', clusterId, hsmId: h.doc.hsmId, err: errorWords(e) }, 'backup from a peer failed');
      }
    }
    return undefined;
  }

  async #deleteHsm(hsmId: string): Promise<void> {
    const h = await this.#o.repo.hsm(hsmId);
    if (h === undefined || h.doc.state !== 'DELETE_IN_PROGRESS') return;
    const c = await this.#o.repo.cluster(h.doc.clusterId);
    const device = h.doc.device;
    if (device !== null && c !== undefined && ['ACTIVE', 'DEGRADED', 'INITIALIZED'].includes(c.doc.state)) {
      // CloudHSM backs a cluster up before an HSM is removed.
      await this.#backupFrom(c.doc.clusterId, device, 'hsm-deleted').catch((e: unknown) => {
        this.#o.log.warn({ event: 'backup.failed', hsmId, err: errorWords(e) }, 'backup before deletion failed; the newest archived backup stands');
      });
    }
    if (device !== null) {
      // The device's audit log goes with it: its last records are archived first (docs/audit.md "Collection").
      await this.#o.audit?.collect(device.serial, this.#mgmt(device)).catch((e: unknown) => {
        this.#o.log.warn({ event: 'audit.collect.failed', hsmId, err: errorWords(e) }, 'audit collection before deletion failed');
      });
      await this.#o.fleet.release(device);
    }
    const writes = [deleteWrite(COLLECTION.hsm, hsmId, h.doc.clusterId, h.version)];
    if (c !== undefined && c.doc.csrHsmId === hsmId && c.doc.state === 'UNINITIALIZED') {
      writes.push(clusterWrite({ ...c.doc, certificates: {}, csrHsmId: null }, c.version));
    }
    await this.#o.repo.commit(writes);
    this.#o.figures?.forget(hsmId);
    this.#o.log.info({ event: 'hsm.deleted', clusterId: h.doc.clusterId, hsmId }, 'HSM deleted');
  }

  /** One health probe; after FAILED_PROBES_MAX failures in a row the HSM's device is replaced. */
  async #probe(h: Versioned<HsmDoc>): Promise<void> {
    const { doc } = h;
    if ((doc.state !== 'ACTIVE' && doc.state !== 'DEGRADED') || doc.device === null) return;
    let healthy: boolean;
    try {
      const health = await this.#mgmt(doc.device).health();
      this.#o.metrics?.hsmHead(doc.hsmId, health.journalPosition);
      this.#o.figures?.observe(doc.hsmId, doc.clusterId, this.#o.config.clock.nowMs(), health);
      if (health.journalFault !== null) this.#task(`fault:${doc.hsmId}`, () => this.#journalFault(doc.hsmId, doc.device?.serial ?? '', health.journalFault as JournalFaultReport));
      else if (this.#o.config.relayJournal === true) this.#task(`journal:${doc.hsmId}`, () => this.#journalHead(doc.hsmId, doc.device?.serial ?? '', health));
      const c = await this.#o.repo.cluster(doc.clusterId);
      // A device that lost its cluster (zeroised, or replaced by another) is as bad as a dead one.
      healthy = health.restoring === true || c?.doc.state === 'UNINITIALIZED' || health.clusterId === doc.clusterId;
    } catch {
      healthy = false;
    }
    if (healthy) {
      if (doc.failedProbes !== 0) await this.#setHsm(doc.hsmId, { failedProbes: 0 });
      this.#collectAudit(doc);
      return;
    }
    const failed = doc.failedProbes + 1;
    this.#o.log.warn({ event: 'hsm.probe.failed', hsmId: doc.hsmId, failedProbes: failed }, 'HSM did not answer its health probe');
    if (failed < FAILED_PROBES_MAX) return this.#setHsm(doc.hsmId, { failedProbes: failed });
    await this.#setHsm(doc.hsmId, { state: 'DEGRADED', stateMessage: 'The HSM failed and is being replaced.', failedProbes: failed });
    this.#task(doc.hsmId, () => this.#replace(doc.hsmId));
  }

  /** Collects the HSM's audit log when due, as a task beside the tick (a failure is logged and retried when next due). */
  #collectAudit(doc: HsmDoc): void {
    const audit = this.#o.audit;
    const device = doc.device;
    const now = this.#o.config.clock.nowMs();
    if (audit === undefined || device === null || now - (this.#auditCollectedMs.get(doc.hsmId) ?? -Infinity) < AUDIT_COLLECT_INTERVAL_MS) return;
    this.#auditCollectedMs.set(doc.hsmId, now);
    this.#task(`audit:${doc.hsmId}`, async () => {
      try {
        const r = await audit.collect(device.serial, this.#mgmt(device));
        if (r.records > 0) this.#o.log.info({ event: 'audit.collected', hsmId: doc.hsmId, serial: device.serial, records: r.records, nextSeq: r.nextSeq.toString() }, 'audit records archived');
      } catch (e) {
        this.#o.log.warn({ event: 'audit.collect.failed', hsmId: doc.hsmId, err: errorWords(e) }, 'audit collection failed');
      }
    });
  }

  /** CloudHSM's replacement: a new device for the same HSM (same id, zone and, on a local fleet,
   * address), restored. */
  async #replace(hsmId: string): Promise<void> {
    const h = await this.#o.repo.hsm(hsmId);
    if (h === undefined || h.doc.state !== 'DEGRADED' || h.doc.device === null) return;
    const startedMs = performance.now();
    const old = h.doc.device;
    await this.#o.fleet.release(old).catch((e: unknown) => this.#o.log.warn({ event: 'fleet.release.failed', hsmId, err: errorWords(e) }, 'failed device not released cleanly'));
    await this.#o.repo.commit([hsmWrite({ ...h.doc, device: null }, h.version)]);
    // A local fleet binds the HSM's address to the new device; on a remote fleet an address is a
    // node's, so the replacement is any free node of the cluster's mode and the EniIp follows it.
    const anyAddress = this.#o.config.hsmAddresses === 'registered-nodes';
    const fresh = await this.#provision({ doc: { ...h.doc, device: null }, version: h.version + 1 }, { anyAddress });
    const c = await this.#o.repo.cluster(h.doc.clusterId);
    if (c === undefined) return;
    await this.#bringUp(c.doc, fresh.doc);
    try {
      await this.#catchUp(c.doc.clusterId, fresh.doc.device as FleetDevice);
    } catch (e) {
      if (!isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP')) throw e;
      await this.#catchUpFromPeer(c.doc.clusterId, hsmId, fresh.doc.device as FleetDevice, e);
    }
    await this.#setHsm(hsmId, { state: 'ACTIVE', stateMessage: null, failedProbes: 0, replacements: h.doc.replacements + 1 });
    this.#o.metrics?.replacementDone((performance.now() - startedMs) / 1000);
    this.#o.log.info({ event: 'hsm.replaced', clusterId: h.doc.clusterId, hsmId, serial: fresh.doc.device?.serial }, 'failed HSM replaced');
    await this.#health(h.doc.clusterId);
  }

  /**
   * A replacement that could not catch up from the backup it restored — an archived backup older than
   * the compaction point (no peer could be backed up when it was brought up), or one whose head is
   * not the journal's — is restored once more, from a fresh backup of a healthy ACTIVE peer, and
   * caught up again. Without such a peer, or when that fails too, the refusal is said where the API
   * shows it, not only in the log (docs/journal-format.md "Test coverage"), and the step fails.
   */
  async #catchUpFromPeer(clusterId: string, hsmId: string, device: FleetDevice, first: CofferError): Promise<void> {
    this.#o.log.warn({ event: 'hsm.replace.catch-up.failed', clusterId, hsmId, err: errorWords(first) }, 'the replacement could not catch up; restoring it from a fresh backup of a healthy peer');
    let refusal = first;
    const peerBackup = await this.#freshPeerBackup(clusterId, hsmId);
    if (peerBackup !== undefined) {
      try {
        await this.#o.backups.restore(this.#mgmt(device), peerBackup.archiveKey as string, peerBackup.bodySha256);
        await this.#catchUp(clusterId, device);
        this.#o.log.info({ event: 'hsm.replace.caught-up', clusterId, hsmId, backupId: peerBackup.backupId }, 'the replacement caught up from a fresh backup of a healthy peer');
        return;
      } catch (e) {
        if (!isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP')) throw e;
        refusal = e;
      }
    }
    const why = String(refusal.detail['reason'] ?? 'refused');
    const at = refusal.detail['seq'] === undefined ? '' : ` at entry ${String(refusal.detail['seq'])}`;
    const tried = peerBackup === undefined ? 'no healthy peer could give a fresh backup' : 'nor from a fresh backup of a healthy peer';
    await this.#setHsm(hsmId, { stateMessage: `The replacement could not catch up with the cluster journal (${why}${at}); ${tried}; it needs a newer backup or a healthy peer.` });
    throw refusal;
  }

  // ── initialisation ─────────────────────────────────────────────────────────────────────────

  async #initialise(clusterId: string): Promise<void> {
    const c = await this.#o.repo.cluster(clusterId);
    if (c === undefined || c.doc.state !== 'INITIALIZE_IN_PROGRESS' || c.doc.pendingInit === null) return;
    const hsm = c.doc.csrHsmId === null ? undefined : (await this.#o.repo.hsm(c.doc.csrHsmId))?.doc;
    if (hsm?.device === null || hsm === undefined) {
      await this.#setCluster(c, { state: 'UNINITIALIZED', stateMessage: 'The HSM that made the cluster CSR is gone.', pendingInit: null });
      return;
    }
    const preCoPassword = randomBytes(PRECO_PASSWORD_CHARS).toString('base64url').slice(0, PRECO_PASSWORD_CHARS);
    // The appliance credential is never needed by the service afterwards: made, handed over, forgotten.
    const applianceCredential = randomBytes(APPLIANCE_CREDENTIAL_CHARS).toString('base64url').slice(0, APPLIANCE_CREDENTIAL_CHARS);
    try {
      await this.#mgmt(hsm.device).initialiseCluster({ certificatePem: c.doc.pendingInit.signedCert, trustAnchorPem: c.doc.pendingInit.trustAnchor, preCoPassword, applianceCredential });
    } catch (e) {
      this.#o.log.warn({ event: 'cluster.initialise.failed', clusterId, err: errorWords(e) }, 'cluster initialisation refused by the HSM');
      await this.#setCluster(c, { state: 'UNINITIALIZED', stateMessage: 'The HSM refused the cluster certificate.', pendingInit: null });
      return;
    }
    const certificates = { ...c.doc.certificates, ClusterCertificate: c.doc.pendingInit.signedCert };
    await this.#setCluster(c, { state: 'INITIALIZED', stateMessage: null, pendingInit: null, preCoPassword, certificates });
    this.#o.log.info({ event: 'cluster.initialised', clusterId }, 'cluster initialised');
  }

  // ── backups ────────────────────────────────────────────────────────────────────────────────

  async #scheduledBackup(clusterId: string, reason: string): Promise<void> {
    for (const h of await this.#o.repo.hsmsOf(clusterId)) {
      if (h.doc.state !== 'ACTIVE' || h.doc.device === null) continue;
      await this.#backupFrom(clusterId, h.doc.device, reason);
      return;
    }
  }

  /** Takes, verifies and archives a backup of `device`, and records it READY. */
  async #backupFrom(clusterId: string, device: FleetDevice, reason: string): Promise<BackupDoc> {
    const taken = await this.#o.backups.take(this.#mgmt(device), clusterId);
    const c = await this.#o.repo.cluster(clusterId);
    const cluster = c?.doc;
    const doc: BackupDoc = {
      v: 1, backupId: taken.backupId, clusterId, accountId: cluster?.accountId ?? '', state: 'READY', hsmType: cluster?.hsmType ?? 'hsm2m.medium',
      mode: taken.mode, createdMs: taken.createdMs, copyMs: null, neverExpires: false, sourceRegion: null, sourceBackup: null, sourceCluster: null,
      deleteMs: null, archiveKey: taken.archiveKey, bytes: taken.bytes, bodySha256: taken.bodySha256, sourceSerial: taken.sourceSerial,
      journalPosition: taken.journalPosition.toString(10), resourcePolicy: null, tags: [],
    };
    await this.#o.repo.retrying(async () => {
      const now = await this.#o.repo.cluster(clusterId);
      const writes = [backupWrite(doc, 0)];
      if (now !== undefined) writes.push(clusterWrite({ ...now.doc, lastBackupMs: taken.createdMs }, now.version));
      return { writes, result: undefined };
    });
    this.#o.log.info({ event: 'backup.archived', clusterId, backupId: doc.backupId, reason, bytes: doc.bytes }, 'backup archived');
    await this.#compact(clusterId).catch((e: unknown) => this.#o.log.warn({ event: 'journal.compact.failed', clusterId, err: errorWords(e) }, 'journal compaction skipped'));
    return doc;
  }

  /**
   * Drops journal entries no HSM and no restorable backup needs (docs/control-plane.md "Compaction"):
   * those below the minimum of every HSM's head and of the journal position of every backup that can
   * still be restored (READY, or PENDING_DELETION and so restorable by RestoreBackup). The entry at
   * the minimum itself is kept: the relay checks the next entry's predecessor against it. An HSM
   * that does not answer, or a backup without a recorded position, stops compaction.
   */
  async #compact(clusterId: string): Promise<void> {
    const heads: bigint[] = [];
    for (const h of await this.#o.repo.hsmsOf(clusterId)) {
      if (h.doc.device === null) return;
      heads.push((await this.#mgmt(h.doc.device).health()).journalPosition);
    }
    const floor = compactionFloor(heads, (await this.#o.repo.backupsOf(clusterId)).map((b) => b.doc));
    if (floor === undefined) return;
    await this.#o.repo.store.compactJournal(clusterId, Number(floor));
    this.#o.log.info({ event: 'journal.compacted', clusterId, before: Number(floor) }, 'journal compacted');
  }

  /** Expired backups go to PENDING_DELETION (never the cluster's newest); those past their 7 days are purged. */
  async #retention(clusterId: string): Promise<void> {
    const c = await this.#o.repo.cluster(clusterId);
    const now = this.#o.config.clock.nowMs();
    const backups = await this.#o.repo.backupsOf(clusterId);
    const newest = backups.filter((b) => b.doc.state === 'READY').sort((a, b) => b.doc.createdMs - a.doc.createdMs)[0]?.doc.backupId;
    for (const b of backups) {
      const expired = c !== undefined && b.doc.createdMs + c.doc.backupRetentionDays * DAY_MS <= now;
      if (b.doc.state === 'READY' && !b.doc.neverExpires && expired && b.doc.backupId !== newest) {
        await this.#o.repo.commit([backupWrite({ ...b.doc, state: 'PENDING_DELETION', deleteMs: now + PENDING_DELETION_MS }, b.version)]);
        this.#o.log.info({ event: 'backup.expired', clusterId, backupId: b.doc.backupId }, 'backup past its retention');
      } else if (b.doc.state === 'PENDING_DELETION' && b.doc.deleteMs !== null && b.doc.deleteMs <= now) {
        if (b.doc.archiveKey !== null) await this.#o.backups.purge(b.doc.archiveKey);
        await this.#o.repo.commit([backupWrite({ ...b.doc, state: 'DELETED', archiveKey: null }, b.version)]);
        this.#o.log.info({ event: 'backup.purged', clusterId, backupId: b.doc.backupId }, 'backup purged');
      }
    }
  }

  // ── helpers ────────────────────────────────────────────────────────────────────────────────

  #mgmt(device: FleetDevice): ManagementClient {
    return this.#o.fleet.management(device);
  }

  /** Starts `work` unless a task on `key` is running; a failure is logged and retried by a later tick. */
  #task(key: string, work: () => Promise<void>): void {
    if (this.#tasks.has(key)) return;
    const run = work().catch((e: unknown) => {
      this.#o.log.warn({ event: 'task.failed', task: key, err: errorWords(e) }, 'orchestration step failed; retried next tick');
    }).finally(() => this.#tasks.delete(key));
    this.#tasks.set(key, run);
  }

  async #setCluster(c: Versioned<ClusterDoc>, change: Partial<ClusterDoc>): Promise<void> {
    await this.#o.repo.retrying(async () => {
      const now = (await this.#o.repo.cluster(c.doc.clusterId)) ?? c;
      return { writes: [clusterWrite({ ...now.doc, ...change }, now.version)], result: undefined };
    });
  }

  async #setHsm(hsmId: string, change: Partial<HsmDoc>): Promise<void> {
    await this.#o.repo.retrying(async () => {
      const now = await this.#o.repo.hsm(hsmId);
      return { writes: now === undefined ? [] : [hsmWrite({ ...now.doc, ...change }, now.version)], result: undefined };
    });
  }
}

/** What a health report's journal head shows against the stored journal (Orchestrator.#journalHead). */
interface HeadFinding {
  readonly event: 'hsm.journal.missing' | 'hsm.journal.fork';
  readonly seq: bigint;
  readonly message: string;
}

/** Every journal-fault state message starts so (the cluster's message quotes the HSM's). */
const FAULT_MESSAGE_PREFIX = 'The HSM refused cluster journal entry';
/** The state message of an HSM that misses an entry starts so; it clears when the entry is applied. */
const MISSING_MESSAGE_PREFIX = 'The HSM is missing cluster journal entry';
/** The state message of an HSM whose head is not the journal's entry at its position starts so. */
const FORK_MESSAGE_PREFIX = "The HSM's cluster journal forked at entry";
/** The messages the cluster's own message quotes, naming the HSM. */
const JOURNAL_MESSAGE_PREFIXES = [FAULT_MESSAGE_PREFIX, MISSING_MESSAGE_PREFIX, FORK_MESSAGE_PREFIX];

/** The state message of an HSM whose journal halted: the refusal's code, position and reason. */
function faultMessage(fault: JournalFaultReport): string {
  return `${FAULT_MESSAGE_PREFIX} ${fault.seq.toString()}: ${fault.code} (${fault.reason}). Replace the HSM, or check the metadata store if every HSM refused it.`;
}

/** An error as log words: its code or name and message, never its detail objects. */
function errorWords(e: unknown): string {
  if (isCofferError(e)) return `${e.code}: ${e.message}${typeof e.detail['reason'] === 'string' ? ` (${e.detail['reason']})` : ''}`;
  if (e instanceof Error) return `${(e as { code?: string }).code ?? e.name}: ${e.message}`;
  return String(e);
}
