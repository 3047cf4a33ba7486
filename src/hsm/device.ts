// The HSM device: one facade over provisioning, users, quorum and objects (docs/architecture.md §4).
//
// A device is opened over a RecordStore (the sealed store in production, a memory store in tests).
// Work happens in sessions, as in PKCS#11 and CloudHSM: a session logs in as one user and every
// call it makes runs as that user's Actor; the modules underneath enforce the role rules
// themselves, so the facade only routes, wires quorum into user and key management, and refuses
// key work before the device is commissioned (its mode is fixed then) and the cluster activated.
//
// Backup and restore (docs/backup-format.md, backup.ts): createBackup seals the whole state;
// restoreBackup replaces it atomically, then rebuilds the in-memory modules over the restored
// records and closes every open session (docs/device.md "Backup and restore").
//
// The cluster identity (cluster.ts, docs/cluster-identity.md) lives in namespace 'cluster' and
// travels with backups; zeroise() erases everything but the device's own identity and
// commissioning (namespace 'device').
//
// Start-up rule for FIPS mode: a commissioned FIPS device opens only if its firmware manifest
// verifies against the manufacturer's firmware signing key (Provisioning.checkFirmwareForMode).

import { randomBytes, randomUUID } from 'node:crypto';
import { fail } from '../errors.js';
import type { SecretBytes } from '../crypto/secret_bytes.js';
import type { BackupSource } from '../formats/backup.js';
import { RANDOM_BYTES_MAX } from '../formats/limits.js';
import * as backup from './backup/backup.js';
import { ClusterIdentity, type ClusterState } from './identity/cluster.js';
import { DEVICE_NS } from './identity/identity.js';
import * as mech from './mechanisms/mechanisms.js';
import { ObjectTable, type DeriveTemplate, type KeyQuorumService, type ObjectFilter, type ObjectInfo, type ObjectTemplate, type UnwrapTemplate } from './objects/objects.js';
import type { SettableAttribute } from './objects/attributes.js';
import type { PasswordInput, ScryptParams } from './users/password.js';
import { systemClock, systemRandom, type Clock, type Random } from './ports.js';
import { Provisioning, type FirmwareEvidence } from './identity/provisioning.js';
import { Quorum, type AdminService, type QuorumService, type QuorumToken, type TokenSummary } from './users/quorum.js';
import type { RecordStore } from './store/store_port.js';
import type { Actor, Handle, MechanismParams, Mode, Role } from './types.js';
import { Users, type ManagedRole, type UserInfo } from './users/users.js';

export interface HsmOptions {
  readonly store: RecordStore;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Evidence of the code this device runs; required to open a commissioned FIPS-mode device. */
  readonly firmware?: FirmwareEvidence;
  /** Password-verifier parameters (tests lower them for speed; production keeps the default). */
  readonly kdfParams?: ScryptParams;
}

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
  /** The last cluster journal entry applied (docs/architecture.md §5), a u64. */
  readonly journalPosition: bigint;
}

export class Hsm {
  readonly provisioning: Provisioning;
  /** The cluster key, its certificate and the customer's trust anchor; reloaded after a restore. */
  readonly cluster: ClusterIdentity;
  readonly #store: RecordStore;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #kdfParams: ScryptParams | undefined;
  /** Rebuilt after a restore (their in-memory parts describe the state that was replaced). */
  #users: Users;
  #quorum: Quorum;
  readonly #firmware: FirmwareEvidence | undefined;
  readonly #sessions = new Map<string, Session>();
  #objects: ObjectTable | undefined;

  private constructor(options: HsmOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#kdfParams = options.kdfParams;
    this.#store = options.store;
    this.#firmware = options.firmware;
    this.provisioning = new Provisioning(options.store, this.#clock);
    [this.#users, this.#quorum] = this.#userModules();
    this.cluster = new ClusterIdentity({
      store: options.store,
      clock: this.#clock,
      requireCommissioned: () => void this.objects(),
      prepareUsers: (preCo, appliance) => this.#users.prepareInitialise(preCo, appliance),
    });
  }

  /** The user table and the quorum engine over it, as loaded from the store. */
  #userModules(): [Users, Quorum] {
    const users = new Users(this.#store, {
      random: this.#random,
      ...(this.#kdfParams === undefined ? {} : { kdfParams: this.#kdfParams }),
      ownsObjects: (userId) => this.#objects !== undefined && (this.#objects.countOwnedBy(userId) > 0 || this.#objects.countSharedWith(userId) > 0),
    });
    return [users, new Quorum(this.#store, users, { clock: this.#clock, random: this.#random })];
  }

  /** Opens a device over `store`. A commissioned FIPS device must bring verified firmware evidence. */
  static open(options: HsmOptions): Hsm {
    const hsm = new Hsm(options);
    if (hsm.provisioning.state() === 'COMMISSIONED') hsm.#startObjects();
    return hsm;
  }

  /** Called once commissioning has fixed the mode (and at open for a commissioned device). */
  #startObjects(): ObjectTable {
    if (this.#objects !== undefined) return this.#objects;
    this.provisioning.checkFirmwareForMode(this.#firmware);
    this.#objects = new ObjectTable({
      store: this.#store,
      mode: this.provisioning.mode(),
      isCryptoUser: (userId) => this.#users.roleOf(userId) === 'crypto-user',
      quorumGate: (actor, service, m, handle) => this.#keyQuorum(actor, service, m, handle),
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
    await this.#users.initialise(preCoPassword, applianceCredential);
  }

  /** CloudHSM CLI's `cluster activate`: sets the admin's password. */
  async activate(preCoPassword: PasswordInput, newAdminPassword: PasswordInput): Promise<void> {
    await this.#users.activate(preCoPassword, newAdminPassword);
  }

  openSession(): Session {
    const session = new Session(this, randomUUID(), this.#users, this.#quorum);
    this.#sessions.set(session.id, session);
    return session;
  }

  /** @internal Called by Session.close. */
  forgetSession(id: string): void {
    this.#sessions.delete(id);
    this.#objects?.dropSessionObjects(id);
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
      cluster: this.cluster.state(),
      clusterId: this.cluster.clusterId(),
      journalPosition: 0n, // no cluster journal yet: the state machine that applies entries will supply it
    };
  }

  // ── backup and restore ────────────────────────────────────────────────────────────────────

  /**
   * Writes a sealed backup of the whole state (users, quorum, token objects, configuration; never
   * the 'device' namespace) to `sink`. Synchronous, bounded memory. Commissioned devices only.
   */
  createBackup(sink: backup.BackupSink, options: backup.CreateBackupOptions): backup.BackupSummary {
    this.objects(); // commissioned, and a FIPS device's firmware verified
    return backup.createBackup(this.#backupDevice(), sink, options);
  }

  /**
   * Replaces the whole state with a backup's, atomically, or refuses with the spec's typed error
   * and changes nothing. On success every open session is closed (its session objects dropped),
   * quorum tokens are dropped, and users and objects are reloaded from the restored records.
   */
  restoreBackup(source: BackupSource, options: backup.RestoreBackupOptions = {}): backup.BackupSummary {
    this.objects();
    const summary = backup.restoreBackup(this.#backupDevice(), source, options);
    this.#reloadState();
    return summary;
  }

  /**
   * Erases every customer secret and all state but the device's own identity and commissioning
   * (namespace 'device'): users, objects, quorum, the cluster identity, configuration — in one
   * store transaction. Closes every open session. The device stays COMMISSIONED (same serial,
   * mode, MKBK and AKBK) and can initialise or join a cluster again, or restore a backup. The
   * store is then scrubbed, so the erased records do not survive in its files either.
   */
  zeroise(): void {
    this.#store.transaction((tx) => {
      for (const ns of this.#store.namespaces()) if (ns !== DEVICE_NS) tx.clear(ns);
    });
    this.#reloadState();
    this.#store.scrub?.(); // after the commit: the erased records must not survive in freed space
  }

  /** SHA-256 over every record outside 'device' (backup.ts stateDigestOf): equal on two devices
   * with the same state; unchanged by any refused operation. Like a KCV: not for publication. */
  stateDigest(): Uint8Array {
    return backup.stateDigestOf(this.#store);
  }

  #backupDevice(): backup.BackupDevice {
    return { store: this.#store, provisioning: this.provisioning, clock: this.#clock, random: this.#random };
  }

  /** After a restore or a zeroise replaced the records: closes every session and rebuilds the
   * in-memory modules from the store. */
  #reloadState(): void {
    for (const s of [...this.#sessions.values()]) s.close(); // drops their session objects from the old table
    // The old table's key material is left to the garbage collector: ObjectTable has no zeroising close yet.
    this.#objects = undefined;
    [this.#users, this.#quorum] = this.#userModules();
    if (this.provisioning.state() === 'COMMISSIONED') this.#startObjects();
    this.cluster.reload();
  }

  close(): void {
    for (const s of [...this.#sessions.values()]) s.close();
    this.#store.close();
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
  #actor: Actor | undefined;
  #closed = false;

  /** @internal Sessions come from Hsm.openSession. */
  constructor(hsm: Hsm, id: string, users: Users, quorum: Quorum) {
    this.#hsm = hsm;
    this.id = id;
    this.#users = users;
    this.#quorum = quorum;
  }

  get user(): Actor | undefined {
    return this.#actor;
  }

  async login(name: string, password: PasswordInput, role?: Role): Promise<Actor> {
    this.#open();
    if (this.#actor !== undefined) fail('COFFER_ALREADY_LOGGED_IN');
    const actor = await this.#users.login(name, password, role);
    if (this.#actor !== undefined) fail('COFFER_ALREADY_LOGGED_IN'); // another login won the race
    this.#actor = actor;
    return actor;
  }

  logout(): void {
    this.#as();
    this.#actor = undefined;
    this.#hsm.objects().dropSessionObjects(this.id);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#actor = undefined;
    this.#hsm.forgetSession(this.id);
  }

  // ── users ─────────────────────────────────────────────────────────────────────────────────

  createUser(name: string, password: PasswordInput, role: ManagedRole): Promise<void> {
    return this.#users.createUser(this.#as(), name, password, role);
  }
  deleteUser(name: string): void {
    this.#users.deleteUser(this.#as(), name);
  }
  listUsers(): UserInfo[] {
    return this.#users.listUsers(this.#as());
  }
  /** An admin sets another user's password (and so unlocks it). */
  changePassword(name: string, newPassword: PasswordInput): Promise<void> {
    return this.#users.changePassword(this.#as(), name, newPassword);
  }
  changeOwnPassword(currentPassword: PasswordInput, newPassword: PasswordInput): Promise<void> {
    return this.#users.changeOwnPassword(this.#as(), currentPassword, newPassword);
  }
  unlockUser(name: string): void {
    this.#users.unlock(this.#as(), name);
  }

  // ── quorum ────────────────────────────────────────────────────────────────────────────────

  registerQuorumKey(spkiDer: Uint8Array): void {
    this.#users.registerQuorumKey(this.#as(), spkiDer);
  }
  setQuorumValue(service: AdminService, m: number): void {
    this.#quorum.setQuorumValue(this.#as(), service, m);
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
    return this.#quorum.approve(tokenBytes, approverName, signature);
  }
  listQuorumTokens(): TokenSummary[] {
    return this.#quorum.listTokens(this.#as());
  }

  // ── keys ──────────────────────────────────────────────────────────────────────────────────

  generateKey(spec: mech.SecretKeySpec, template: ObjectTemplate = {}): Handle {
    return this.#hsm.objects().generateKey(this.#as(), spec, this.#scoped(template));
  }
  generateKeyPair(spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): { publicHandle: Handle; privateHandle: Handle } {
    return this.#hsm.objects().generateKeyPair(this.#as(), spec, this.#scoped(publicTemplate), this.#scoped(privateTemplate));
  }
  importPublicKey(key: Uint8Array | string, template: ObjectTemplate = {}): Handle {
    return this.#hsm.objects().importPublicKey(this.#as(), key, this.#scoped(template));
  }
  importPrivateKey(key: Uint8Array | string, template: ObjectTemplate = {}): Handle {
    return this.#hsm.objects().importPrivateKey(this.#as(), key, this.#scoped(template));
  }
  find(filter: ObjectFilter = {}): ObjectInfo[] {
    return this.#hsm.objects().find(this.#as(), filter);
  }
  getAttributes(handle: Handle): ObjectInfo {
    return this.#hsm.objects().getAttributes(this.#as(), handle);
  }
  setAttribute(handle: Handle, name: SettableAttribute, value: boolean | string | Uint8Array): void {
    this.#hsm.objects().setAttribute(this.#as(), handle, name, value);
  }
  share(handle: Handle, userName: string): void {
    this.#hsm.objects().share(this.#as(), handle, userName);
  }
  unshare(handle: Handle, userName: string): void {
    this.#hsm.objects().unshare(this.#as(), handle, userName);
  }
  destroy(handle: Handle): void {
    this.#hsm.objects().destroy(this.#as(), handle);
  }
  /** PKCS#11 CKA_VALUE of a non-sensitive, extractable key (never in FIPS mode). Destroy the result. */
  exportPlaintext(handle: Handle): SecretBytes {
    return this.#hsm.objects().exportPlaintext(this.#as(), handle);
  }
  exportPublic(handle: Handle): string {
    return this.#hsm.objects().exportPublic(this.#as(), handle);
  }
  wrapKey(wrappingHandle: Handle, targetHandle: Handle, params: MechanismParams): Uint8Array {
    return this.#hsm.objects().wrapKey(this.#as(), wrappingHandle, targetHandle, params);
  }
  unwrapKey(unwrappingHandle: Handle, wrapped: Uint8Array, params: MechanismParams, template: UnwrapTemplate): Handle {
    return this.#hsm.objects().unwrapKey(this.#as(), unwrappingHandle, wrapped, params, this.#scoped(template));
  }
  deriveKey(baseHandle: Handle, params: MechanismParams, template: DeriveTemplate): Handle {
    return this.#hsm.objects().deriveKey(this.#as(), baseHandle, params, this.#scoped(template));
  }

  // ── crypto ────────────────────────────────────────────────────────────────────────────────

  sign(handle: Handle, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#hsm.objects().sign(this.#as(), handle, params, data);
  }
  /** Like sign, on libuv's thread pool where node:crypto offers it (asymmetric mechanisms). */
  signAsync(handle: Handle, params: MechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return this.#hsm.objects().signAsync(this.#as(), handle, params, data);
  }
  verify(handle: Handle, params: MechanismParams, data: Uint8Array, signature: Uint8Array): boolean {
    return this.#hsm.objects().verify(this.#as(), handle, params, data, signature);
  }
  verifyAsync(handle: Handle, params: MechanismParams, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return this.#hsm.objects().verifyAsync(this.#as(), handle, params, data, signature);
  }
  encrypt(handle: Handle, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#hsm.objects().encrypt(this.#as(), handle, params, data);
  }
  decrypt(handle: Handle, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#hsm.objects().decrypt(this.#as(), handle, params, data);
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

  #as(): Actor {
    this.#open();
    return this.#actor ?? fail('COFFER_NOT_LOGGED_IN');
  }

  /** Session objects (token: false) belong to this session. */
  #scoped<T extends ObjectTemplate>(template: T): T {
    return template.token === false ? { ...template, sessionId: this.id } : template;
  }
}
