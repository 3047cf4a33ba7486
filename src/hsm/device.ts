// The HSM device: one facade over provisioning, users, quorum and objects (docs/architecture.md §4).
//
// A device is opened over a RecordStore (the sealed store in production, a memory store in tests).
// Work happens in sessions, as in PKCS#11 and CloudHSM: a session logs in as one user and every
// call it makes runs as that user's Actor; the modules underneath enforce the role rules
// themselves, so the facade only routes, wires quorum into user and key management, and refuses
// key work before the device is commissioned (its mode is fixed then) and the cluster activated.
//
// Every change of state goes through one door, the DeviceState (state/device_state.ts): the modules
// decide change sets against the current state, and its one apply commits them, one writer at a
// time. So every state-changing call here is asynchronous: it waits its turn in the writer queue.
// Once the cluster is initialised, cluster-wide changes take effect through the cluster journal
// (`hsm.journal`, state/journal.ts): a change is sealed as an entry and applied when the journal
// delivers it, on this HSM as on every other.
//
// Backup and restore (docs/backup-format.md, backup/backup.ts): createBackup seals the whole state;
// restoreBackup replaces it atomically, then rebuilds the in-memory modules over the restored
// records (zeroising the keys of the replaced state) and closes every open session (docs/device.md
// "Backup and restore").
//
// The cluster identity (cluster.ts, docs/cluster-identity.md) lives in namespace 'cluster' and
// travels with backups; zeroise() erases everything but the device's own identity and
// commissioning (namespace 'device').
//
// Start-up rule for FIPS mode: a commissioned FIPS device opens only if its firmware manifest
// verifies against the manufacturer's firmware signing key (Provisioning.checkFirmwareForMode).

import { randomBytes, randomUUID } from 'node:crypto';
import type { ChangeSet, StatePosition } from '../formats/change_set.js';
import { assert } from '../assert.js';
import { fail, isCofferError } from '../errors.js';
import type { SecretBytes } from '../crypto/secret_bytes.js';
import type { BackupSource } from '../formats/backup.js';
import { RANDOM_BYTES_MAX } from '../formats/limits.js';
import * as backup from './backup/backup.js';
import { ClusterIdentity, type ClusterState } from './identity/cluster.js';
import { DEVICE_NS } from './identity/identity.js';
import * as mech from './mechanisms/mechanisms.js';
import { ObjectTable, StagedObjects, type CertificateTemplate, type DeriveTemplate, type KeyQuorumService, type ObjectFilter, type ObjectInfo, type ObjectTemplate, type UnwrapTemplate } from './objects/objects.js';
import type { CopyTemplate, SettableAttribute } from './objects/attributes.js';
import type { PasswordInput, ScryptParams } from './users/password.js';
import { systemClock, systemRandom, type Clock, type Random } from './ports.js';
import { Provisioning, type FirmwareEvidence } from './identity/provisioning.js';
import { Quorum, type AdminService, type QuorumService, type QuorumToken, type TokenSummary } from './users/quorum.js';
import { DeviceState, SESSION_OBJECT_NAMESPACE, type ChangeSummary } from './state/device_state.js';
import { Journal, type JournalCluster, type JournalOptions } from './state/journal.js';
import { OBJECT_NAMESPACE } from '../formats/object_record.js';
import { USER_NAMESPACE } from '../formats/user_record.js';
import { CountingStore, type RecordStore } from './store/store_port.js';
import type { Actor, Handle, KeyRef, MechanismParams, Mode, Role } from './types.js';
import { Users, type ManagedRole, type UserInfo } from './users/users.js';
import type { AuditLog } from './audit/audit_log.js';
import { audited, auditName, auditWord, type AuditedCall } from './audit/audited.js';

export interface HsmOptions {
  readonly store: RecordStore;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Evidence of the code this device runs; required to open a commissioned FIPS-mode device. */
  readonly firmware?: FirmwareEvidence;
  /** Password-verifier parameters (tests lower them for speed; production keeps the default). */
  readonly kdfParams?: ScryptParams;
  /** Hears what happens on the device, for the node's log (HsmEvent: never a secret). */
  readonly onEvent?: (event: HsmEvent) => void;
  /** How the cluster journal is ordered: relayed by the control plane, or solo (the default). */
  readonly journal?: JournalOptions;
  /** The device's audit log (audit/audit_log.ts, docs/audit.md); none: nothing is audited. */
  readonly audit?: AuditLog;
}

/**
 * What a security officer asks about, as it happens: logins and their outcome, lockouts, every
 * committed state change by kind with the handles and user names it touched, backups, restores and
 * zeroise. Names, handles, ids, counts and error codes only: never a password, a key or a verifier.
 */
export type HsmEvent =
  | { readonly event: 'login'; readonly user: string; readonly outcome: 'ok' | 'failed'; readonly code?: string; readonly role?: Role }
  | { readonly event: 'lockout'; readonly user: string }
  | { readonly event: 'state-change'; readonly kind: string; readonly scope: 'cluster' | 'local'; readonly handles: readonly number[]; readonly users: readonly string[]; readonly position: string }
  | { readonly event: 'backup'; readonly backupId: string; readonly records: number }
  | { readonly event: 'restore'; readonly backupId: string; readonly records: number }
  | { readonly event: 'zeroise' };

/** What `status()` reports: no secret, nothing about keys beyond counts. */
export interface HsmStatus {
  readonly provisioning: ReturnType<Provisioning['state']>;
  readonly serial: string | null;
  readonly mode: Mode | null;
  readonly usersInitialised: boolean;
  readonly activated: boolean;
  readonly tokenObjects: number;
  readonly sessions: number;
  readonly cluster: ClusterState;
  readonly clusterId: string | null;
  /** The journal head's seq: the last cluster journal entry applied (0 before the first). */
  readonly journalPosition: bigint;
  /** The hash chain of the cluster-wide change sets applied (docs/device.md "State position"). */
  readonly stateLineage: Uint8Array;
  /** The hash chain of the change sets that touched key objects (docs/device.md "State position"). */
  readonly objectLineage: Uint8Array;
}

/** How a session is opened. */
export interface SessionOptions {
  /** The application the session belongs to (a data-plane connection, a PKCS#11 client): session
   * objects are visible only to sessions of the same scope. Default: one scope for the device. */
  readonly scope?: string;
}

export class Hsm {
  readonly provisioning: Provisioning;
  /** The cluster journal on this device: its head, outbox and delivery (state/journal.ts). */
  readonly journal: Journal;
  /** The audit log, when the device keeps one (docs/audit.md). */
  readonly audit: AuditLog | undefined;
  /** The cluster key, its certificate and the customer's trust anchor; rebuilt after a restore. */
  #cluster: ClusterIdentity;
  readonly #store: CountingStore;
  /** The last state digest and the store's write count it was computed at (stateDigest). */
  #digest: { readonly writes: number; readonly value: Uint8Array } | undefined;
  readonly #state: DeviceState;
  readonly #onEvent: ((event: HsmEvent) => void) | undefined;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #kdfParams: ScryptParams | undefined;
  /** Rebuilt after a restore (their in-memory parts describe the state that was replaced). */
  #users: Users;
  #quorum: Quorum;
  readonly #firmware: FirmwareEvidence | undefined;
  readonly #sessions = new Map<string, Session>();
  #objects: ObjectTable | undefined;
  /** The object index a restore is building as it stages its records (taken by the reload after it commits). */
  #staged: StagedObjects | undefined;
  /** The state position right after the last restore (none after a zeroise or before any restore):
   * the state is still that backup's while the position has not moved (ClusterIdentity.startCloneJournal). */
  #restoredAt: bigint | undefined;

  private constructor(options: HsmOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#kdfParams = options.kdfParams;
    this.#store = new CountingStore(options.store);
    this.#onEvent = options.onEvent;
    this.audit = options.audit;
    const hear = options.onEvent !== undefined || options.audit !== undefined;
    this.#state = new DeviceState(this.#store, hear ? (summary) => this.#changed(summary) : undefined);
    this.#firmware = options.firmware;
    this.provisioning = new Provisioning(this.#state, this.#clock);
    [this.#users, this.#quorum] = this.#userModules();
    this.#cluster = this.#clusterModule();
    this.journal = new Journal(this.#state, () => this.#journalCluster(), { clock: this.#clock, ...options.journal });
  }

  /** What the journal needs of the cluster identity as it now is (it is rebuilt after a restore). */
  #journalCluster(): JournalCluster {
    const cluster = this.#cluster;
    return {
      clusterId: () => cluster.clusterId(),
      hasSyncKey: () => cluster.state() === 'INITIALISED' && cluster.syncKeyId() !== null,
      serial: () => this.provisioning.identity().serial,
      seal: (cs, position) => cluster.sealJournalEntry(cs, position),
      open: (entry, position) => cluster.openJournalEntry(entry, position),
    };
  }

  /** The cluster key, its certificate and the customer's trust anchor. */
  get cluster(): ClusterIdentity {
    return this.#cluster;
  }

  #clusterModule(): ClusterIdentity {
    return new ClusterIdentity({
      state: this.#state,
      clock: this.#clock,
      random: this.#random,
      serial: () => this.provisioning.identity().serial,
      requireCommissioned: () => void this.objects(),
      prepareUsers: (preCo, appliance) => this.#users.prepareInitialise(preCo, appliance),
      freshlyRestored: () => this.#restoredAt !== undefined && this.#state.position().position === this.#restoredAt,
    });
  }

  /** The user table and the quorum engine over it, as loaded from the store. */
  #userModules(): [Users, Quorum] {
    const users = new Users(this.#state, {
      random: this.#random,
      ...(this.#kdfParams === undefined ? {} : { kdfParams: this.#kdfParams }),
      ownsObjects: (userId) => this.#objects !== undefined && (this.#objects.countOwnedBy(userId) > 0 || this.#objects.countSharedWith(userId) > 0),
      onLockout: (user) => {
        this.audit?.record({ kind: 'lockout', outcome: 'ok', user: auditName(user), session: '', code: '', detail: '', handles: [] });
        this.#onEvent?.({ event: 'lockout', user });
      },
    });
    return [users, new Quorum(this.#state, users, { clock: this.#clock, random: this.#random })];
  }

  /** Opens a device over `store`. A commissioned FIPS device must bring verified firmware evidence. */
  static open(options: HsmOptions): Hsm {
    const hsm = new Hsm(options);
    if (hsm.provisioning.state() === 'COMMISSIONED') hsm.#startObjects();
    return hsm;
  }

  /** Called once commissioning has fixed the mode (and at open for a commissioned device); after a
   * restore, with the index built while its records were staged. */
  #startObjects(restored?: StagedObjects): ObjectTable {
    if (this.#objects !== undefined) return this.#objects;
    this.provisioning.checkFirmwareForMode(this.#firmware);
    this.#objects = new ObjectTable({
      state: this.#state,
      mode: this.provisioning.mode(),
      isCryptoUser: (userId) => this.#users.roleOf(userId) === 'crypto-user',
      quorumGate: (actor, service, m, handle) => this.#keyQuorum(actor, service, m, handle),
      ...(restored === undefined ? {} : { restored }),
    });
    return this.#objects;
  }

  #keyQuorum(actor: Actor, service: KeyQuorumService, m: number, handle: Handle): void {
    const info = this.objects().getAttributes(actor, handle);
    this.#quorum.requireApproval(actor, service, m, handle, new Set([info.owner, ...info.sharees]));
  }

  /** The object table; COFFER_DEVICE_NOT_COMMISSIONED before commissioning. */
  objects(): ObjectTable {
    if (this.#objects !== undefined) return this.#objects;
    if (this.provisioning.state() !== 'COMMISSIONED') fail('COFFER_DEVICE_NOT_COMMISSIONED');
    return this.#startObjects();
  }

  /** Cluster initialisation on this device: creates the unactivated admin and the appliance user. */
  async initialiseUsers(preCoPassword: PasswordInput, applianceCredential: PasswordInput): Promise<void> {
    this.objects(); // users of a device that cannot hold keys would be pointless
    await audited(this.audit, this.#deviceCall('cluster.initialise-users'), () => this.#users.initialise(preCoPassword, applianceCredential));
  }

  /** CloudHSM CLI's `cluster activate`: sets the admin's password. */
  async activate(preCoPassword: PasswordInput, newAdminPassword: PasswordInput): Promise<void> {
    await audited(this.audit, this.#deviceCall('cluster.activate'), () => this.#users.activate(preCoPassword, newAdminPassword));
  }

  openSession(options: SessionOptions = {}): Session {
    const session = new Session(this, randomUUID(), this.#users, this.#quorum, options.scope);
    this.#sessions.set(session.id, session);
    return session;
  }

  /** @internal Called by Session.close. */
  forgetSession(id: string): void {
    this.#sessions.delete(id);
    this.#objects?.dropSessionObjects(id);
  }

  /** How many users the device holds, the appliance user included (no names: the node's metrics). */
  userCount(): number {
    return this.#users.count;
  }

  status(): HsmStatus {
    const state = this.provisioning.state();
    const commissioned = state === 'COMMISSIONED';
    return {
      provisioning: state,
      serial: state === 'NEW' ? null : this.provisioning.identity().serial,
      mode: commissioned ? this.provisioning.mode() : null,
      usersInitialised: this.#users.initialised,
      activated: this.#users.activated,
      tokenObjects: this.#objects?.tokenObjectCount ?? 0,
      sessions: this.#sessions.size,
      cluster: this.#cluster.state(),
      clusterId: this.#cluster.clusterId(),
      ...this.#positionFields(),
    };
  }

  #positionFields(): { journalPosition: bigint; stateLineage: Uint8Array; objectLineage: Uint8Array } {
    const p = this.#state.position();
    return { journalPosition: p.journal.seq, stateLineage: p.lineage, objectLineage: p.objectLineage };
  }

  /**
   * @internal Applies a change set decided on another device (a replica of its outcome), in this
   * device's writer queue, through the same apply as its own — for the change sets decided before a
   * cluster's journal begins (its CSR and initialisation) and for tests. The caller vouches for it.
   * Once the journal is on, every cluster-wide change arrives by `journal.deliver` instead.
   */
  applyChangeSet(cs: ChangeSet): Promise<void> {
    assert(cs.scope === 'local' || !this.journal.journaled(), 'a journaled cluster takes cluster-wide changes only from its journal');
    return this.#state.submit(() => ({ changes: [cs], result: undefined }));
  }

  /** Hears the encoding of every cluster-wide change set this device applies (DeviceState.observe). */
  observeChanges(observer: (encoded: Uint8Array) => void): () => void {
    return this.#state.observe(observer);
  }

  /** The cluster-wide change sets this device's state has applied (count and hash chain). */
  statePosition(): StatePosition {
    return this.#state.position();
  }

  // ── backup and restore ────────────────────────────────────────────────────────────────────

  /**
   * Writes a sealed backup of the whole state (users, quorum, token objects, configuration; never
   * the 'device' namespace) to `sink`. Synchronous, bounded memory. Commissioned devices only.
   */
  createBackup(sink: backup.BackupSink, options: backup.CreateBackupOptions): backup.BackupSummary {
    this.objects(); // commissioned, and a FIPS device's firmware verified
    const summary = audited(this.audit, this.#deviceCall('backup'), () => backup.createBackup(this.#backupDevice(), sink, { journalPosition: this.#state.journalHead().seq, ...options }));
    this.#onEvent?.({ event: 'backup', backupId: summary.backupId, records: summary.records });
    return summary;
  }

  /**
   * Replaces the whole state with a backup's, atomically, or refuses with the spec's typed error
   * and changes nothing. On success every open session is closed (its session objects dropped),
   * quorum tokens are dropped, and users and objects are reloaded from the restored records.
   */
  async restoreBackup(source: BackupSource, options: backup.RestoreBackupOptions = {}): Promise<backup.BackupSummary> {
    this.objects();
    const summary = await audited(this.audit, this.#deviceCall('restore'), () => backup.restoreBackup(this.#backupDevice(), source, options));
    this.#onEvent?.({ event: 'restore', backupId: summary.backupId, records: summary.records });
    return summary;
  }

  /**
   * Erases every customer secret and all state but the device's own identity and commissioning
   * (namespace 'device'): users, objects, quorum, the cluster identity, configuration — in one
   * store transaction. Closes every open session. The device stays COMMISSIONED (same serial,
   * mode, MKBK and AKBK) and can initialise or join a cluster again, or restore a backup. The
   * store is then scrubbed, so the erased records do not survive in its files either.
   */
  async zeroise(): Promise<void> {
    await audited(this.audit, this.#deviceCall('zeroise'), () => this.#state.replace((tx) => {
      for (const ns of this.#store.namespaces()) if (ns !== DEVICE_NS) tx.clear(ns);
    }, () => {
      this.#reloadState();
      this.#restoredAt = undefined;
    }));
    this.#store.scrub?.(); // after the commit: the erased records must not survive in freed space
    this.#onEvent?.({ event: 'zeroise' });
  }

  /** @internal Reports a login's outcome (Session.login). */
  loginEvent(user: string, outcome: 'ok' | 'failed', detail: { readonly code?: string; readonly role?: Role } = {}, session = ''): void {
    // The audit log keeps failed names only when they are users': a password typed as the name
    // would otherwise be archived for good (docs/audit.md "What is recorded").
    const known = this.#users.roleOf(user) !== undefined;
    this.audit?.record({ kind: 'login', outcome, user: known ? auditName(user) : '(unknown user)', session, code: detail.code ?? '', detail: detail.role ?? '', handles: [] });
    // The same for the device's events (the node's log): a name that is no user's is not repeated.
    this.#onEvent?.({ event: 'login', user: known ? user : '(unknown user)', outcome, ...detail });
  }

  /** An audited call made to the device itself (the management interface, a ceremony): no user, no session. */
  #deviceCall(kind: AuditedCall['kind']): AuditedCall {
    return { kind, user: '', session: '', always: true };
  }

  /** A committed change set, as an event: its kind and the handles and user names it touched. */
  #changed(summary: ChangeSummary): void {
    const handles = summary.ops.filter((op) => op.ns === OBJECT_NAMESPACE || op.ns === SESSION_OBJECT_NAMESPACE).map((op) => Number(op.id));
    const users = summary.ops.filter((op) => op.ns === USER_NAMESPACE).map((op) => op.id);
    const position = summary.scope === 'cluster' ? String(this.#state.position().position) : '';
    // Provisioning and cluster identity changes are made by no session: recorded here, by kind.
    if (summary.kind.startsWith('device.') || summary.kind.startsWith('cluster.')) {
      this.audit?.record({ kind: 'device.change', outcome: 'ok', user: '', session: '', code: '', detail: auditWord(summary.kind), handles: [] });
    }
    this.#onEvent?.({ event: 'state-change', kind: summary.kind, scope: summary.scope, handles, users, position });
  }

  /** SHA-256 over every record outside 'device' and 'state' (backup.ts stateDigestOf): equal on two devices
   * with the same state; unchanged by any refused operation. Like a KCV: not for publication. */
  stateDigest(): Uint8Array {
    // A full decrypting scan: kept until the next write, so that health probes of a large, quiet
    // device do not scan it again and again.
    const writes = this.#store.writes;
    if (this.#digest?.writes !== writes) this.#digest = { writes, value: backup.stateDigestOf(this.#store) };
    return this.#digest.value.slice();
  }

  #backupDevice(): backup.BackupDevice {
    return {
      state: this.#state, provisioning: this.provisioning, clock: this.#clock, random: this.#random,
      reload: () => {
        this.#reloadState();
        this.#restoredAt = this.#state.position().position;
      },
      stageIndexes: (objectCount) => (this.#staged = new StagedObjects(objectCount)),
    };
  }

  /** After a restore or a zeroise replaced the records: closes every session and rebuilds the
   * in-memory modules from the store (the object index from the records a restore staged, if it built one). */
  #reloadState(): void {
    const staged = this.#staged;
    this.#staged = undefined;
    for (const s of [...this.#sessions.values()]) s.close(); // drops their session objects from the old table
    this.#objects?.close(); // the replaced state's keys are zeroised, not left to the garbage collector
    this.#objects = undefined;
    this.#cluster.close();
    [this.#users, this.#quorum] = this.#userModules();
    if (this.provisioning.state() === 'COMMISSIONED') this.#startObjects(staged);
    this.#cluster = this.#clusterModule();
  }

  close(): void {
    for (const s of [...this.#sessions.values()]) s.close();
    this.#objects?.close();
    this.#store.close();
    this.audit?.close();
  }
}

/**
 * One user's conversation with the device. Every method runs as the logged-in user; the modules
 * below decide what that user may do.
 */
export class Session {
  readonly id: string;
  readonly #hsm: Hsm;
  readonly #users: Users;
  readonly #quorum: Quorum;
  readonly #scope: string | undefined;
  #actor: Actor | undefined;
  #closed = false;

  /** @internal Sessions come from Hsm.openSession. */
  constructor(hsm: Hsm, id: string, users: Users, quorum: Quorum, scope: string | undefined) {
    this.#hsm = hsm;
    this.id = id;
    this.#users = users;
    this.#quorum = quorum;
    this.#scope = scope;
  }

  get user(): Actor | undefined {
    return this.#actor;
  }

  async login(name: string, password: PasswordInput, role?: Role): Promise<Actor> {
    this.#open();
    if (this.#actor !== undefined) fail('COFFER_ALREADY_LOGGED_IN');
    this.#hsm.audit?.room();
    let actor: Actor;
    try {
      actor = await this.#users.login(name, password, role);
    } catch (e) {
      // The name as typed, cut to the longest a name may be: a mistyped password never lands here.
      if (isCofferError(e)) this.#hsm.loginEvent(auditName(name), 'failed', { code: e.code }, this.id);
      throw e;
    }
    this.#hsm.loginEvent(actor.userId, 'ok', { role: actor.role }, this.id);
    if (this.#actor !== undefined) fail('COFFER_ALREADY_LOGGED_IN'); // another login won the race
    this.#actor = this.#scope === undefined ? actor : { ...actor, scope: this.#scope };
    return actor;
  }

  logout(): void {
    this.#audited('logout', {}, () => {
      this.#as();
      this.#actor = undefined;
      this.#hsm.objects().dropSessionObjects(this.id);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#actor = undefined;
    this.#hsm.forgetSession(this.id);
  }

  // ── users ─────────────────────────────────────────────────────────────────────────────────

  createUser(name: string, password: PasswordInput, role: ManagedRole): Promise<void> {
    return this.#audited('user.create', { detail: auditName(name) }, () => this.#users.createUser(this.#as(), name, password, role));
  }
  deleteUser(name: string): Promise<void> {
    return this.#audited('user.delete', { detail: auditName(name) }, () => this.#users.deleteUser(this.#as(), name));
  }
  listUsers(): UserInfo[] {
    return this.#users.listUsers(this.#as());
  }
  /** An admin sets another user's password (and so unlocks it). */
  changePassword(name: string, newPassword: PasswordInput): Promise<void> {
    return this.#audited('user.password', { detail: auditName(name) }, () => this.#users.changePassword(this.#as(), name, newPassword));
  }
  changeOwnPassword(currentPassword: PasswordInput, newPassword: PasswordInput): Promise<void> {
    return this.#audited('user.password', { detail: auditName(this.#actor?.userId) }, () => this.#users.changeOwnPassword(this.#as(), currentPassword, newPassword));
  }
  unlockUser(name: string): Promise<void> {
    return this.#audited('user.unlock', { detail: auditName(name) }, () => this.#users.unlock(this.#as(), name));
  }

  // ── quorum ────────────────────────────────────────────────────────────────────────────────

  registerQuorumKey(spkiDer: Uint8Array): Promise<void> {
    return this.#audited('quorum.register-key', {}, () => this.#users.registerQuorumKey(this.#as(), spkiDer));
  }
  setQuorumValue(service: AdminService, m: number): Promise<void> {
    return this.#audited('quorum.value', { detail: auditWord(service) }, () => this.#quorum.setQuorumValue(this.#as(), service, m));
  }
  quorumValues(): Readonly<Record<AdminService, number>> {
    return this.#quorum.listQuorumValues(this.#as());
  }
  generateQuorumToken(service: QuorumService, handle?: Handle): QuorumToken {
    return this.#quorum.generateToken(this.#as(), service, handle);
  }
  /** Approvals authenticate by signature: no login needed, but the session must be open. */
  approveQuorumToken(tokenBytes: Uint8Array, approverName: string, signature: Uint8Array): number {
    this.#open();
    return this.#audited('quorum.approve', { detail: auditName(approverName) }, () => this.#quorum.approve(tokenBytes, approverName, signature));
  }
  listQuorumTokens(): TokenSummary[] {
    return this.#quorum.listTokens(this.#as());
  }

  // ── keys ──────────────────────────────────────────────────────────────────────────────────
  // A key is named by a KeyRef: its handle, or its handle and identity (COFFER_OBJECT_MISMATCH when
  // the object there is another one).

  generateKey(spec: mech.SecretKeySpec, template: ObjectTemplate = {}): Promise<Handle> {
    return this.#audited('key.generate', { detail: auditWord(spec.keyType) }, () => this.#hsm.objects().generateKey(this.#as(), spec, this.#scoped(template)), (h) => [h]);
  }
  generateKeyPair(spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): Promise<{ publicHandle: Handle; privateHandle: Handle }> {
    return this.#audited('key.generate', { detail: auditWord(spec.keyType) }, () => this.#hsm.objects().generateKeyPair(this.#as(), spec, this.#scoped(publicTemplate), this.#scoped(privateTemplate)), (p) => [p.publicHandle, p.privateHandle]);
  }
  /** As generateKeyPair, the generation itself on libuv's thread pool (RSA takes long). */
  generateKeyPairAsync(spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): Promise<{ publicHandle: Handle; privateHandle: Handle }> {
    return this.#audited('key.generate', { detail: auditWord(spec.keyType) }, () => this.#hsm.objects().generateKeyPairAsync(this.#as(), spec, this.#scoped(publicTemplate), this.#scoped(privateTemplate)), (p) => [p.publicHandle, p.privateHandle]);
  }
  importPublicKey(key: Uint8Array | string, template: ObjectTemplate = {}): Promise<Handle> {
    return this.#audited('key.import', { detail: 'public' }, () => this.#hsm.objects().importPublicKey(this.#as(), key, this.#scoped(template)), (h) => [h]);
  }
  importPrivateKey(key: Uint8Array | string, template: ObjectTemplate = {}): Promise<Handle> {
    return this.#audited('key.import', { detail: 'private' }, () => this.#hsm.objects().importPrivateKey(this.#as(), key, this.#scoped(template)), (h) => [h]);
  }
  /** Stores an X.509 certificate (DER) as a certificate object (docs/device.md "Certificates"). */
  importCertificate(der: Uint8Array, template: CertificateTemplate = {}): Promise<Handle> {
    return this.#audited('key.import', { detail: 'certificate' }, () => this.#hsm.objects().importCertificate(this.#as(), der, this.#scoped(template)), (h) => [h]);
  }
  /** A certificate object's DER and CKA_CERTIFICATE_CATEGORY. */
  certificate(ref: KeyRef): { readonly der: Uint8Array; readonly category: number } {
    return this.#hsm.objects().certificate(this.#as(), ref);
  }
  find(filter: ObjectFilter = {}): ObjectInfo[] {
    return this.#hsm.objects().find(this.#as(), filter);
  }
  getAttributes(key: KeyRef): ObjectInfo {
    return this.#hsm.objects().getAttributes(this.#as(), key);
  }
  /** The object's identity (getAttributes(key).identity, without the other attributes). */
  identityOf(key: KeyRef): Uint8Array {
    return this.#hsm.objects().identityOf(this.#as(), key);
  }
  setAttribute(key: KeyRef, name: SettableAttribute, value: boolean | string | Uint8Array): Promise<void> {
    return this.#audited('key.attribute', { refs: [key], detail: auditWord(name) }, () => this.#hsm.objects().setAttribute(this.#as(), key, name, value));
  }
  share(key: KeyRef, userName: string): Promise<void> {
    return this.#audited('key.share', { refs: [key], detail: auditName(userName) }, () => this.#hsm.objects().share(this.#as(), key, userName));
  }
  unshare(key: KeyRef, userName: string): Promise<void> {
    return this.#audited('key.unshare', { refs: [key], detail: auditName(userName) }, () => this.#hsm.objects().unshare(this.#as(), key, userName));
  }
  destroy(key: KeyRef): Promise<void> {
    return this.#audited('key.destroy', { refs: [key] }, () => this.#hsm.objects().destroy(this.#as(), key));
  }
  /** PKCS#11 CKA_VALUE of a non-sensitive, extractable key (never in FIPS mode). Destroy the result. */
  exportPlaintext(key: KeyRef): SecretBytes {
    return this.#audited('key.export', { refs: [key], detail: 'plaintext' }, () => this.#hsm.objects().exportPlaintext(this.#as(), key));
  }
  exportPublic(key: KeyRef): string {
    return this.#audited('key.export', { refs: [key], detail: 'public' }, () => this.#hsm.objects().exportPublic(this.#as(), key));
  }
  wrapKey(wrapping: KeyRef, target: KeyRef, params: MechanismParams): Uint8Array {
    return this.#audited('key.wrap', { refs: [wrapping, target] }, () => this.#hsm.objects().wrapKey(this.#as(), wrapping, target, params));
  }
  unwrapKey(unwrapping: KeyRef, wrapped: Uint8Array, params: MechanismParams, template: UnwrapTemplate): Promise<Handle> {
    return this.#audited('key.unwrap', { refs: [unwrapping] }, () => this.#hsm.objects().unwrapKey(this.#as(), unwrapping, wrapped, params, this.#scoped(template)), (h) => [h]);
  }
  deriveKey(base: KeyRef, params: MechanismParams, template: DeriveTemplate): Promise<Handle> {
    return this.#audited('key.derive', { refs: [base] }, () => this.#hsm.objects().deriveKey(this.#as(), base, params, this.#scoped(template)), (h) => [h]);
  }
  /** Copies an object the user owns (docs/device.md "Copies"): a public key, or a session object of a private or secret key. */
  copyObject(key: KeyRef, template: CopyTemplate = {}): Promise<Handle> {
    return this.#audited('key.copy', { refs: [key] }, () => this.#hsm.objects().copyObject(this.#as(), key, this.#scoped(template)), (h) => [h]);
  }

  // ── crypto ────────────────────────────────────────────────────────────────────────────────

  sign(key: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#hsm.objects().sign(this.#as(), key, params, data);
  }
  /** Like sign, on libuv's thread pool where node:crypto offers it (asymmetric mechanisms). */
  signAsync(key: KeyRef, params: MechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return this.#hsm.objects().signAsync(this.#as(), key, params, data);
  }
  verify(key: KeyRef, params: MechanismParams, data: Uint8Array, signature: Uint8Array): boolean {
    return this.#hsm.objects().verify(this.#as(), key, params, data, signature);
  }
  verifyAsync(key: KeyRef, params: MechanismParams, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return this.#hsm.objects().verifyAsync(this.#as(), key, params, data, signature);
  }
  encrypt(key: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#hsm.objects().encrypt(this.#as(), key, params, data);
  }
  decrypt(key: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#hsm.objects().decrypt(this.#as(), key, params, data);
  }
  /** Digests need no key, but only logged-in users may use the device. */
  digest(params: MechanismParams, data: Uint8Array): Uint8Array {
    this.#as();
    return mech.digest(params, data);
  }
  /** Random bytes from the device (any logged-in user), at most RANDOM_BYTES_MAX per call. */
  random(length: number): Uint8Array {
    this.#as();
    if (!Number.isInteger(length) || length < 1 || length > RANDOM_BYTES_MAX) fail('COFFER_DATA_LEN_RANGE', { max: RANDOM_BYTES_MAX });
    return new Uint8Array(randomBytes(length));
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  #open(): void {
    if (this.#closed) fail('COFFER_SESSION_CLOSED');
  }

  /** Runs a call the audit log records (docs/audit.md "What is recorded"), as this session's user. */
  #audited<T>(kind: AuditedCall['kind'], c: Omit<AuditedCall, 'kind' | 'user' | 'session'>, call: () => T, made?: (result: Awaited<T>) => readonly Handle[]): T {
    return audited(this.#hsm.audit, { ...c, kind, user: this.#actor?.userId ?? '', session: this.id }, call, made);
  }

  #as(): Actor {
    this.#open();
    return this.#actor ?? fail('COFFER_NOT_LOGGED_IN');
  }

  /** Session objects (token: false) belong to this session. */
  #scoped<T extends { readonly token?: boolean; readonly sessionId?: string }>(template: T): T {
    return template.token === false ? { ...template, sessionId: this.id } : template;
  }
}

