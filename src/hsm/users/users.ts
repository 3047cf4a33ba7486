// HSM users, login and lockout (docs/architecture.md §4), behaving like AWS CloudHSM's users:
//
// - Roles: admin (user and quorum management), crypto-user (keys), appliance (the built-in
//   `app_user` the service uses for health and sync; never a key), and the built-in `admin` of a
//   new cluster in role unactivated-admin until `activate` (CloudHSM CLI's `cluster activate`).
// - Names: 1..31 of [A-Za-z0-9_-], case-insensitive, stored lower case ("Alice" is "alice").
// - Passwords: rules and verifiers in password.ts; never stored, logged or kept after a call.
// - Login: one error (COFFER_AUTH_FAILED, "Login failed") whether the name is unknown, the password
//   wrong or the role wrong, after the same work (an unknown name is checked against a dummy
//   verifier). Admins and crypto users lock after LOGIN_FAILURES_MAX consecutive failures; an
//   attempt is counted *before* the password is checked (as a smart card decrements its PIN retry
//   counter first), so parallel or interrupted attempts cannot exceed the limit; an attempt that
//   finds the count at the limit only because others are still running waits for them rather
//   than failing, so parallel correct logins never lock a user. A locked user gets
//   COFFER_USER_LOCKED (same message, CKR_PIN_LOCKED, as CloudHSM tells users they are locked);
//   unknown names lock the same way in memory, so the lock does not reveal that a user exists.
//   Lock state persists in the store; an admin unlocks (`unlock`, or by setting the password).
// - app_user and the unactivated admin never lock: the first's credential is a random
//   32-character secret the device sets at initialisation (locking it would only let anyone stop
//   the service's health checks); the second's PreCo password is shown by the control plane's
//   DescribeClusters anyway, and locking it would leave a new cluster with no admin to unlock it.
//
// Records: namespace 'user', id = normalised name, value = formats/user_record.ts. Every change is a
// change set submitted to the device's one writer (src/hsm/state/). Quorum keys live on
// the user record (a backup carries users "with their quorum keys", docs/architecture.md §3).

import { createPublicKey, type KeyObject } from 'node:crypto';
import { fail, isCofferError } from '../../errors.js';
import { assert } from '../../assert.js';
import type { SecretBytes } from '../../crypto/secret_bytes.js';
import type { ChangeKind, RecordOp } from '../../formats/change_set.js';
import {
  LOGIN_FAILURES_MAX,
  LOGIN_UNKNOWN_NAMES_MAX,
  QUORUM_KEY_BYTES_MAX,
  QUORUM_RSA_BITS_MAX,
  QUORUM_RSA_BITS_MIN,
  USERS_MAX,
} from '../../formats/limits.js';
import { USER_NAMESPACE, decodeUserRecord, encodeUserRecord, normaliseUserName, type UserRecord } from '../../formats/user_record.js';
import {
  DEFAULT_SCRYPT_PARAMS,
  dummyVerifier,
  makeVerifierBytes,
  passwordBytes,
  verifierNeedsUpgrade,
  verifyPasswordBytes,
  type PasswordInput,
  type ScryptParams,
} from './password.js';
import { systemRandom, type Random } from '../ports.js';
import type { DeviceState, StateReader } from '../state/device_state.js';
import type { Actor, Role } from '../types.js';

export { normaliseUserName } from '../../formats/user_record.js';

export const ADMIN_NAME = 'admin';
export const APPLIANCE_NAME = 'app_user';
const NS = USER_NAMESPACE;

/** Roles an admin may give a new user. */
export type ManagedRole = 'admin' | 'crypto-user';

/** What `listUsers` shows: never a verifier or a key. */
export interface UserInfo {
  readonly name: string;
  readonly role: Role;
  readonly locked: boolean;
  readonly failedLogins: number;
  readonly quorumKeyRegistered: boolean;
}

/** What user management needs from quorum (quorum.ts implements it and attaches itself, so that
 * this module does not import quorum.ts). */
export interface UserQuorumHook {
  /** Throws unless the 'user' service's quorum is met for `actor` (consuming the token); does
   * nothing while that quorum is off. */
  requireUserService(actor: Actor): void;
  /** The fewest admins with a registered quorum key that the configured values need. */
  approversNeeded(): number;
}

export interface UsersOptions {
  readonly random?: Random;
  /** Parameters for new verifiers. Production uses the default; tests may lower them for speed. */
  readonly kdfParams?: ScryptParams;
  /** True while `userId` owns or shares objects: such a crypto user cannot be deleted (the device
   * facade passes the object table's answer; without a hook nothing is refused on that ground). */
  readonly ownsObjects?: (userId: string) => boolean;
  /** Told when a failed login locks a user (for the node's log: a name, never a password). */
  readonly onLockout?: (userId: string) => void;
}

// ── names, keys, credentials ──────────────────────────────────────────────────────────────────

/** Parses and checks a quorum public key: RSA 2048..8192 bits or EC P-256/P-384, SPKI DER. */
export function parseQuorumKey(spkiDer: Uint8Array): KeyObject {
  if (spkiDer.length < 1 || spkiDer.length > QUORUM_KEY_BYTES_MAX) fail('COFFER_QUORUM_KEY_INVALID');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch {
    return fail('COFFER_QUORUM_KEY_INVALID');
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < QUORUM_RSA_BITS_MIN || bits > QUORUM_RSA_BITS_MAX) fail('COFFER_QUORUM_KEY_INVALID');
  } else if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1' && details.namedCurve !== 'secp384r1') fail('COFFER_QUORUM_KEY_INVALID');
  } else {
    fail('COFFER_QUORUM_KEY_INVALID');
  }
  return key;
}

/** A fresh credential for app_user: 24 random bytes as 32 base64url characters (192 bits, the
 * most the 32-character password limit holds in this alphabet). */
export function generateApplianceCredential(random: Random = systemRandom): string {
  return Buffer.from(random.bytes(24)).toString('base64url');
}

/** One login attempt once counted: the user (if any), whether the name was locked already, and
 * whether the attempt was counted (and so holds a place among the running attempts). */
interface Attempt {
  readonly record: UserRecord | undefined;
  readonly locked: boolean;
  readonly counted: boolean;
}

interface InFlight {
  running: number;
  readonly waiting: Array<() => void>;
}

function lockable(role: Role): boolean {
  return role === 'admin' || role === 'crypto-user';
}

function isLocked(r: UserRecord): boolean {
  return lockable(r.role) && r.failedLogins >= LOGIN_FAILURES_MAX;
}

// ── the user table ────────────────────────────────────────────────────────────────────────────

export class Users {
  readonly #state: DeviceState;
  readonly #random: Random;
  readonly #kdfParams: ScryptParams;
  readonly #ownsObjects: ((userId: string) => boolean) | undefined;
  readonly #onLockout: ((userId: string) => void) | undefined;
  /** Checked when the name is unknown, so that every login derives once with current parameters. */
  readonly #dummyVerifier: Uint8Array;
  /** Failed logins of names that are not users (insertion order = least recently failed first). */
  readonly #unknownFailures = new Map<string, number>();
  /** Counted login attempts still deriving, per name, and the attempts waiting for them. */
  readonly #inFlight = new Map<string, InFlight>();
  #quorum: UserQuorumHook | undefined;

  constructor(state: DeviceState, options: UsersOptions = {}) {
    this.#state = state;
    this.#random = options.random ?? systemRandom;
    this.#kdfParams = options.kdfParams ?? DEFAULT_SCRYPT_PARAMS;
    this.#ownsObjects = options.ownsObjects;
    this.#onLockout = options.onLockout;
    this.#dummyVerifier = dummyVerifier(this.#random, this.#kdfParams);
  }

  /** Called once by the Quorum built over this table. */
  attachQuorum(hook: UserQuorumHook): void {
    assert(this.#quorum === undefined, 'quorum attached twice');
    this.#quorum = hook;
  }

  /** How many users the device holds (the appliance user included): a count, for the node's metrics. */
  get count(): number {
    return this.#state.count(NS);
  }

  /** True once `initialise` has run on this store. */
  get initialised(): boolean {
    return this.#state.count(NS) > 0;
  }

  /** True once the cluster's admin has been activated. */
  get activated(): boolean {
    const admin = this.#get(ADMIN_NAME);
    return this.initialised && admin?.role !== 'unactivated-admin';
  }

  /**
   * Creates the built-in users of a new device: `admin` (unactivated, password = the PreCo
   * password) and `app_user` (appliance, password = `applianceCredential`, see
   * generateApplianceCredential). Refused with COFFER_USER_EXISTS once any user exists.
   */
  async initialise(preCoPassword: PasswordInput, applianceCredential: PasswordInput): Promise<void> {
    const decide = await this.prepareInitialise(preCoPassword, applianceCredential);
    await this.#state.submit(() => ({ changes: [{ scope: 'cluster', kind: 'user.create', ops: decide() }], result: undefined }));
  }

  /**
   * The slow half of `initialise` (the verifiers), returning the decision of the writes for the caller
   * to put in its own change set: cluster initialisation stores its certificates and the users at once.
   */
  async prepareInitialise(preCoPassword: PasswordInput, applianceCredential: PasswordInput): Promise<() => RecordOp[]> {
    if (this.initialised) fail('COFFER_USER_EXISTS');
    const admin = await this.#verifierFor(preCoPassword);
    const appliance = await this.#verifierFor(applianceCredential);
    return () => {
      if (this.#get(ADMIN_NAME) !== undefined || this.#get(APPLIANCE_NAME) !== undefined) fail('COFFER_USER_EXISTS');
      return [
        userPut({ name: ADMIN_NAME, role: 'unactivated-admin', failedLogins: 0, verifier: admin, quorumKey: undefined }),
        userPut({ name: APPLIANCE_NAME, role: 'appliance', failedLogins: 0, verifier: appliance, quorumKey: undefined }),
      ];
    };
  }

  /**
   * Turns the unactivated `admin` into an active admin with a new password (CloudHSM CLI's
   * `cluster activate`). No login needed: the PreCo password is the credential. A wrong PreCo
   * password, or a cluster already activated, gives COFFER_AUTH_FAILED after the same work.
   */
  async activate(preCoPassword: PasswordInput, newAdminPassword: PasswordInput): Promise<Actor> {
    const verifier = await this.#verifierFor(newAdminPassword);
    const before = this.#get(ADMIN_NAME);
    const unactivated = before?.role === 'unactivated-admin' ? before : undefined;
    const ok = await this.#check(unactivated?.verifier, preCoPassword);
    if (!ok || unactivated === undefined) fail('COFFER_AUTH_FAILED');
    await this.#write('user.activate', () => {
      const now = this.#get(ADMIN_NAME);
      // Refuse if another activation won the race while this one derived.
      if (now?.role !== 'unactivated-admin' || !sameBytes(now.verifier, unactivated.verifier)) fail('COFFER_AUTH_FAILED');
      return [userPut({ ...now, role: 'admin', failedLogins: 0, verifier })];
    });
    return { userId: ADMIN_NAME, role: 'admin' };
  }

  /**
   * Logs `name` in. `role`, when given, must be the user's role. Any failure is COFFER_AUTH_FAILED
   * (or COFFER_USER_LOCKED for a locked name), never saying which check failed.
   */
  async login(name: string, password: PasswordInput, role?: Role): Promise<Actor> {
    let userId: string;
    let secret: SecretBytes;
    try {
      // The rules for names and passwords are public: breaking them reveals nothing about a user.
      userId = normaliseUserName(name);
      secret = passwordBytes(password);
    } catch (e) {
      if (isCofferError(e, 'COFFER_USER_NAME_INVALID') || isCofferError(e, 'COFFER_PASSWORD_INVALID')) fail('COFFER_AUTH_FAILED');
      throw e;
    }
    try {
      const record = await this.#authenticate(userId, secret, role);
      return { userId, role: record.role };
    } finally {
      secret.destroy();
    }
  }

  /** Creates a user (admins only; quorum for the 'user' service applies). */
  async createUser(actor: Actor, name: string, password: PasswordInput, role: ManagedRole): Promise<void> {
    this.#requireRole(actor, ['admin']);
    const userId = normaliseUserName(name);
    if (role !== 'admin' && role !== 'crypto-user') fail('COFFER_PERMISSION_DENIED');
    this.#checkCreatable(userId);
    const verifier = await this.#verifierFor(password);
    // The table may have changed while the verifier was derived: check again as the change is decided.
    await this.#write('user.create', () => {
      this.#requireRole(actor, ['admin']);
      this.#checkCreatable(userId);
      this.#quorum?.requireUserService(actor);
      return [userPut({ name: userId, role, failedLogins: 0, verifier, quorumKey: undefined })];
    });
  }

  /**
   * Deletes a user (admins only; quorum for 'user' applies). Never the last admin, never the
   * caller, never a built-in appliance or unactivated admin, never a user that owns or shares
   * objects (the `ownsObjects` hook), never an admin whose quorum key the quorum values still need.
   */
  deleteUser(actor: Actor, name: string): Promise<void> {
    return this.#write('user.delete', () => this.#decideDelete(actor, name));
  }

  #decideDelete(actor: Actor, name: string): RecordOp[] {
    this.#requireRole(actor, ['admin']);
    const userId = normaliseUserName(name);
    const target = this.#get(userId) ?? fail('COFFER_USER_NOT_FOUND');
    if (target.role === 'appliance' || target.role === 'unactivated-admin') fail('COFFER_PERMISSION_DENIED');
    if (target.role === 'admin' && this.#usersWith('admin').length <= 1) fail('COFFER_USER_IN_USE');
    if (userId === actor.userId) fail('COFFER_PERMISSION_DENIED');
    if (target.role === 'admin' && target.quorumKey !== undefined) {
      const remaining = this.quorumApprovers('admin').length - 1;
      if (remaining < (this.#quorum?.approversNeeded() ?? 0)) fail('COFFER_QUORUM_VALUE_INVALID');
    }
    if (this.#ownsObjects?.(userId) === true) fail('COFFER_USER_IN_USE');
    this.#quorum?.requireUserService(actor);
    return [{ op: 'delete', ns: NS, id: userId }];
  }

  /** Every user, without verifiers or keys. Admins and crypto users may list (as in CloudHSM). */
  listUsers(actor: Actor): UserInfo[] {
    this.#requireRole(actor, ['admin', 'crypto-user']);
    const out: UserInfo[] = [];
    for (const [, bytes] of this.#state.list(NS)) {
      const r = decodeUserRecord(bytes);
      out.push({ name: r.name, role: r.role, locked: isLocked(r), failedLogins: r.failedLogins, quorumKeyRegistered: r.quorumKey !== undefined });
    }
    return out;
  }

  /**
   * An admin sets the password of an admin or crypto user (quorum for 'user' applies). This also
   * unlocks the user, as an admin resetting a password does in CloudHSM. app_user's credential is
   * the service's and only app_user changes it (changeOwnPassword).
   */
  async changePassword(actor: Actor, name: string, newPassword: PasswordInput): Promise<void> {
    this.#requireRole(actor, ['admin']);
    const userId = normaliseUserName(name);
    this.#requireManaged(userId);
    const verifier = await this.#verifierFor(newPassword);
    await this.#update('user.password', userId, (r) => {
      this.#requireRole(actor, ['admin']);
      this.#requireManaged(userId);
      this.#quorum?.requireUserService(actor);
      return { ...r, failedLogins: 0, verifier };
    });
  }

  /**
   * A logged-in user changes their own password, proving the current one (so that a hijacked
   * session alone cannot take the account over). A wrong current password counts as a failed
   * login and fails with COFFER_AUTH_FAILED.
   */
  async changeOwnPassword(actor: Actor, currentPassword: PasswordInput, newPassword: PasswordInput): Promise<void> {
    this.#requireRole(actor, ['admin', 'crypto-user', 'appliance']);
    const verifier = await this.#verifierFor(newPassword);
    let secret: SecretBytes;
    try {
      secret = passwordBytes(currentPassword);
    } catch {
      return fail('COFFER_AUTH_FAILED');
    }
    try {
      await this.#authenticate(actor.userId, secret, actor.role);
    } finally {
      secret.destroy();
    }
    await this.#update('user.password', actor.userId, (r) => ({ ...r, failedLogins: 0, verifier }));
  }

  /** An admin clears a user's failed-login count (quorum for 'user' applies). */
  unlock(actor: Actor, name: string): Promise<void> {
    const userId = normaliseUserName(name);
    return this.#update('user.unlock', userId, (r) => {
      this.#requireRole(actor, ['admin']);
      this.#requireManaged(userId);
      this.#quorum?.requireUserService(actor);
      return { ...r, failedLogins: 0 };
    });
  }

  /** The caller registers (or replaces) their own quorum public key, SPKI DER (parseQuorumKey). */
  async registerQuorumKey(actor: Actor, spkiDer: Uint8Array): Promise<void> {
    this.#requireRole(actor, ['admin', 'crypto-user']);
    const key = parseQuorumKey(spkiDer);
    // Store the canonical re-encoding, not the caller's bytes.
    const canonical = new Uint8Array(key.export({ type: 'spki', format: 'der' }));
    await this.#update('user.quorum-key', actor.userId, (r) => {
      this.#requireRole(actor, ['admin', 'crypto-user']);
      return { ...r, quorumKey: canonical };
    });
  }

  // ── queries for the device's own modules (quorum, objects); no session calls these directly ──

  /** The role of `userId`, or undefined for no such user. */
  roleOf(userId: string): Role | undefined {
    return this.#get(userId)?.role;
  }

  /** The registered quorum key of `userId`, if any. */
  quorumKeyOf(userId: string): KeyObject | undefined {
    const spki = this.#get(userId)?.quorumKey;
    return spki === undefined ? undefined : parseQuorumKey(spki);
  }

  /** Ids of the users of `role` that have registered a quorum key. */
  quorumApprovers(role: Role): string[] {
    return this.#usersWith(role).filter((r) => r.quorumKey !== undefined).map((r) => r.name);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  /**
   * Counts the attempt, checks the password (or the dummy verifier for an unknown name) and the
   * role, and on success resets the count. The derivation runs whatever the outcome, so that every
   * path costs the same.
   */
  async #authenticate(userId: string, secret: SecretBytes, role: Role | undefined): Promise<UserRecord> {
    const attempt = await this.#beginAttempt(userId);
    try {
      const ok = await verifyPasswordBytes(attempt.record?.verifier ?? this.#dummyVerifier, secret);
      if (attempt.locked) fail('COFFER_USER_LOCKED');
      const record = attempt.record;
      if (!ok || record === undefined || (role !== undefined && role !== record.role)) {
        // This failure was the last one allowed: the user is locked from now on.
        if (record !== undefined && attempt.counted && record.failedLogins + 1 >= LOGIN_FAILURES_MAX) this.#onLockout?.(userId);
        fail('COFFER_AUTH_FAILED');
      }
      await this.#succeeded(record, secret);
      return record;
    } finally {
      if (attempt.counted) this.#endAttempt(userId);
    }
  }

  /**
   * Counts one more consecutive failure before the password is checked (a success resets it).
   * When the count is at the limit only because attempts are still running, waits for one of them
   * to finish: parallel logins then neither exceed the limit nor lock a user spuriously.
   */
  async #beginAttempt(userId: string): Promise<Attempt> {
    for (;;) {
      // Decided in the writer queue: the count, the running-attempt tally and (when busy) the wait
      // are taken together, so no other attempt can slip between them. The decision may be made
      // again (its journal entry lost the race to another HSM's): the tally, the wait and the
      // in-memory count of an unknown name change only once it took effect.
      let counted = false;
      let wait: Promise<void> | undefined;
      let attempt: Attempt | undefined;
      try {
        attempt = await this.#state.submit(() => {
          const decided = this.#tryCount(userId);
          if (decided === 'busy') {
            this.#state.afterDecision({ committed: () => void (wait = new Promise<void>((resolve) => this.#slot(userId).waiting.push(resolve))) });
            return { changes: [], result: undefined };
          }
          this.#state.afterDecision({
            committed: () => {
              if (decided.unknownFailures !== undefined) this.#noteUnknownFailures(userId, decided.unknownFailures);
              if (!decided.attempt.counted) return;
              this.#slot(userId).running++;
              counted = true;
            },
          });
          return { changes: decided.write === undefined ? [] : [{ scope: 'cluster', kind: 'user.login', ops: [decided.write] }], result: decided.attempt };
        });
      } catch (e) {
        if (counted) this.#endAttempt(userId);
        throw e;
      }
      if (attempt !== undefined) return attempt;
      await wait;
    }
  }

  /** Decides one attempt's count: the attempt, and the user record write that counts it (none for
   * an unknown name, counted in memory — `unknownFailures`, the count to keep once decided — or for a
   * user that never locks). Changes nothing itself. */
  #tryCount(userId: string): { readonly attempt: Attempt; readonly write?: RecordOp; readonly unknownFailures?: number } | 'busy' {
    const record = this.#get(userId);
    if (record !== undefined && !lockable(record.role)) return { attempt: { record, locked: false, counted: false } };
    const failures = record?.failedLogins ?? this.#unknownFailures.get(userId) ?? 0;
    if (failures >= LOGIN_FAILURES_MAX) {
      return (this.#inFlight.get(userId)?.running ?? 0) > 0 ? 'busy' : { attempt: { record, locked: true, counted: false } };
    }
    const attempt = { record, locked: false, counted: true };
    if (record !== undefined) return { attempt, write: userPut({ ...record, failedLogins: failures + 1 }) };
    return { attempt, unknownFailures: failures + 1 };
  }

  /** Failures of a name that is not a user, kept in a bounded table (oldest forgotten first). */
  #noteUnknownFailures(userId: string, failures: number): void {
    this.#unknownFailures.delete(userId);
    this.#unknownFailures.set(userId, failures);
    if (this.#unknownFailures.size > LOGIN_UNKNOWN_NAMES_MAX) {
      const oldest = this.#unknownFailures.keys().next();
      if (oldest.done !== true) this.#unknownFailures.delete(oldest.value);
    }
  }

  #slot(userId: string): InFlight {
    let slot = this.#inFlight.get(userId);
    if (slot === undefined) this.#inFlight.set(userId, (slot = { running: 0, waiting: [] }));
    return slot;
  }

  #endAttempt(userId: string): void {
    const slot = this.#inFlight.get(userId);
    assert(slot !== undefined && slot.running > 0, 'attempt ended twice');
    slot.running--;
    const waiting = slot.waiting.splice(0);
    if (slot.running === 0) this.#inFlight.delete(userId);
    for (const wake of waiting) wake();
  }

  /** Resets the failure count and, when the verifier's parameters are outdated, re-derives it. */
  async #succeeded(record: UserRecord, secret: SecretBytes): Promise<void> {
    const upgrade = verifierNeedsUpgrade(record.verifier, this.#kdfParams)
      ? await makeVerifierBytes(secret, this.#random, this.#kdfParams)
      : undefined;
    await this.#write('user.login', () => {
      const now = this.#get(record.name);
      if (now?.role !== record.role) fail('COFFER_AUTH_FAILED'); // deleted while logging in
      const verifier = upgrade !== undefined && sameBytes(now.verifier, record.verifier) ? upgrade : now.verifier;
      return now.failedLogins !== 0 || verifier !== now.verifier ? [userPut({ ...now, failedLogins: 0, verifier })] : [];
    });
  }

  /** Verifies a password as given against `verifier` (the dummy one when undefined). */
  async #check(verifier: Uint8Array | undefined, password: PasswordInput): Promise<boolean> {
    let secret: SecretBytes;
    try {
      secret = passwordBytes(password);
    } catch {
      return false;
    }
    try {
      return await verifyPasswordBytes(verifier ?? this.#dummyVerifier, secret);
    } finally {
      secret.destroy();
    }
  }

  async #verifierFor(password: PasswordInput): Promise<Uint8Array> {
    const secret = passwordBytes(password);
    try {
      return await makeVerifierBytes(secret, this.#random, this.#kdfParams);
    } finally {
      secret.destroy();
    }
  }

  /** The actor's user must still exist with the role it logged in with, and hold one of `roles`. */
  #requireRole(actor: Actor, roles: readonly Role[]): void {
    const record = this.#get(actor.userId);
    if (record === undefined || record.role !== actor.role) fail('COFFER_NOT_LOGGED_IN');
    if (!roles.includes(actor.role)) fail('COFFER_PERMISSION_DENIED');
  }

  /** The target of an admin's password change or unlock: an admin or crypto user. */
  #requireManaged(userId: string): void {
    const target = this.#get(userId) ?? fail('COFFER_USER_NOT_FOUND');
    if (!lockable(target.role)) fail('COFFER_PERMISSION_DENIED');
  }

  #checkCreatable(userId: string): void {
    if (this.#get(userId) !== undefined) fail('COFFER_USER_EXISTS');
    if (this.#state.count(NS) >= USERS_MAX) fail('COFFER_USER_LIMIT', { max: USERS_MAX });
  }

  /** Submits a change decided by `decide` (the record writes; none: nothing changes). */
  #write(kind: ChangeKind, decide: () => RecordOp[]): Promise<void> {
    return this.#state.submit(() => {
      const ops = decide();
      return { changes: ops.length === 0 ? [] : [{ scope: 'cluster', kind, ops }], result: undefined };
    });
  }

  /** Submits a change of one user's record, decided against the record as it then is. */
  #update(kind: ChangeKind, userId: string, change: (r: UserRecord) => UserRecord): Promise<void> {
    return this.#write(kind, () => [userPut(change(this.#get(userId) ?? fail('COFFER_USER_NOT_FOUND')))]);
  }

  #get(userId: string): UserRecord | undefined {
    return readUser(this.#state, userId);
  }

  #usersWith(role: Role): UserRecord[] {
    const out: UserRecord[] = [];
    for (const [, bytes] of this.#state.list(NS)) {
      const r = decodeUserRecord(bytes);
      if (r.role === role) out.push(r);
    }
    return out;
  }
}

function readUser(state: StateReader, userId: string): UserRecord | undefined {
  const bytes = state.get(NS, userId);
  return bytes === undefined ? undefined : decodeUserRecord(bytes);
}

function userPut(r: UserRecord): RecordOp {
  return { op: 'put', ns: NS, id: r.name, value: encodeUserRecord(r) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
