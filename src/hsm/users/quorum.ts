// Quorum authentication, M of N, "token-sign" as in CloudHSM CLI (docs/architecture.md §4):
//
// 1. The requester gets a token from `generateToken`: bytes naming the service, the requester,
//    a key handle for the key services, and an expiry QUORUM_TOKEN_TTL_MS later.
// 2. Approvers sign those bytes OUTSIDE the HSM with the private key whose public half they
//    registered (Users.registerQuorumKey): RSA PKCS#1 v1.5 with SHA-256, ECDSA P-256 with SHA-256,
//    or ECDSA P-384 with SHA-384 (DER signatures). CloudHSM's own tooling uses RSA-2048/SHA-256.
// 3. Anyone submits the signatures (`approve`): the signature is the approver's authentication,
//    so no login is needed. One approval per approver; a second one replaces the first.
// 4. The guarded operation calls `requireApproval`, which succeeds only with at least M approvals
//    that still verify against the approvers' current keys, from approvers the caller allows, on
//    an unexpired token of that requester, service and handle, and then consumes the token.
//
// As in CloudHSM, the requester may approve its own token (its approval counts toward M), so M
// may be as large as the number of eligible users with a registered key, the requester included.
// Services: 'user' and 'quorum' (admin services: approvers are admins; values stored here) and
// 'key-management' and 'key-usage' (approvers are crypto users: the key's owner and sharees,
// which the caller passes; values stored on the key objects). As in CloudHSM, a user holds at most
// one token per admin service (a new one replaces the old) and any number per key service.
//
// Tokens live in memory, per HSM, as CloudHSM's do: a restart or a restore drops them, and they
// are never backed up or journalled. At most QUORUM_TOKENS_MAX; expired ones are pruned first.
// Quorum values for 'user' and 'quorum' are persisted (namespace 'quorum'); 1 means off.

import { verify, type KeyObject } from 'node:crypto';
import { fail } from '../../errors.js';
import { assert } from '../../assert.js';
import {
  QUORUM_MAX,
  QUORUM_MIN,
  QUORUM_SIGNATURE_BYTES_MAX,
  QUORUM_TOKEN_TTL_MS,
  QUORUM_TOKENS_MAX,
  USER_NAME_CHARS_MAX,
} from '../../formats/limits.js';
import { systemClock, systemRandom, type Clock, type Random } from '../ports.js';
import { QUORUM_OFF, decodeQuorumValue, encodeQuorumValue } from '../../formats/quorum_record.js';
import type { DeviceState } from '../state/device_state.js';
import type { Actor, Handle, Role } from '../types.js';
import { normaliseUserName, type UserQuorumHook, type Users } from './users.js';

export type QuorumService = 'user' | 'quorum' | 'key-management' | 'key-usage';
/** The admin services, whose quorum values this module stores. */
export type AdminService = 'user' | 'quorum';

/** A token as handed to the requester: `bytes` is what approvers sign. */
export interface QuorumToken {
  readonly id: string;
  readonly bytes: Uint8Array;
  readonly service: QuorumService;
  readonly requester: string;
  readonly handle?: Handle;
  readonly expiresAtMs: number;
}

/** What `listTokens` shows: no signatures. */
export interface TokenSummary {
  readonly id: string;
  readonly service: QuorumService;
  readonly requester: string;
  readonly handle?: Handle;
  readonly expiresAtMs: number;
  readonly approvals: number;
}

export interface QuorumOptions {
  readonly clock?: Clock;
  readonly random?: Random;
}

const NS = 'quorum';

// ── token codec ───────────────────────────────────────────────────────────────────────────────
//
// Version 1 (integers big-endian). The magic also separates these signatures from any other use
// an approver makes of the same key.
//   0  4  magic 'CQTK'         4  1  version = 1         5  1  service: 1 user, 2 quorum,
//   6 16  token id (random)                                    3 key-management, 4 key-usage
//  22  8  issued at, ms since the Unix epoch
//  30  8  expires at, ms
//  38  8  key handle (0 = none; PKCS#11's CK_INVALID_HANDLE)
//  46  1  requester length (1..USER_NAME_CHARS_MAX), then the requester's user id
//  end

const TOKEN_MAGIC = [0x43, 0x51, 0x54, 0x4b]; // 'CQTK'
const TOKEN_VERSION = 1;
const TOKEN_ID_BYTES = 16;
const TOKEN_FIXED_BYTES = 47;
const SERVICE_CODES: Readonly<Record<QuorumService, number>> = { user: 1, quorum: 2, 'key-management': 3, 'key-usage': 4 };

interface TokenState extends QuorumToken {
  /** approver id → signature over `bytes`. */
  readonly approvals: Map<string, Uint8Array>;
}

function encodeToken(t: Omit<QuorumToken, 'bytes' | 'id'>, id: Uint8Array, issuedAtMs: number): Uint8Array {
  const requester = new TextEncoder().encode(t.requester);
  assert(id.length === TOKEN_ID_BYTES && requester.length >= 1 && requester.length <= USER_NAME_CHARS_MAX, 'token fields');
  const out = new Uint8Array(TOKEN_FIXED_BYTES + requester.length);
  const view = new DataView(out.buffer);
  out.set(TOKEN_MAGIC, 0);
  out[4] = TOKEN_VERSION;
  out[5] = SERVICE_CODES[t.service];
  out.set(id, 6);
  view.setBigUint64(22, BigInt(issuedAtMs));
  view.setBigUint64(30, BigInt(t.expiresAtMs));
  view.setBigUint64(38, BigInt(t.handle ?? 0));
  out[46] = requester.length;
  out.set(requester, TOKEN_FIXED_BYTES);
  return out;
}

/** The id inside token bytes, or undefined when the bytes cannot be a token of this version. */
function tokenIdOf(bytes: Uint8Array): string | undefined {
  if (bytes.length < TOKEN_FIXED_BYTES || bytes.length > TOKEN_FIXED_BYTES + USER_NAME_CHARS_MAX) return undefined;
  if (TOKEN_MAGIC.some((m, i) => bytes[i] !== m) || bytes[4] !== TOKEN_VERSION) return undefined;
  return Buffer.from(bytes.subarray(6, 6 + TOKEN_ID_BYTES)).toString('hex');
}

/** Verifies one approval signature; any malformed signature is simply not valid. */
function signatureValid(key: KeyObject, bytes: Uint8Array, signature: Uint8Array): boolean {
  const hash = key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  try {
    return verify(hash, bytes, key, signature);
  } catch {
    return false;
  }
}

function isAdminService(service: QuorumService): service is AdminService {
  return service === 'user' || service === 'quorum';
}

/** Who may request, and who may approve, tokens of a service. */
function roleFor(service: QuorumService): Role {
  return isAdminService(service) ? 'admin' : 'crypto-user';
}

// ── the quorum engine ─────────────────────────────────────────────────────────────────────────

export class Quorum implements UserQuorumHook {
  readonly #state: DeviceState;
  readonly #users: Users;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #tokens = new Map<string, TokenState>();
  /** Tokens a decision in flight holds (#consume). */
  readonly #reserved = new Set<string>();

  /** Builds the engine over `users` and attaches it there, so user management obeys the 'user'
   * service's quorum value. */
  constructor(state: DeviceState, users: Users, options: QuorumOptions = {}) {
    this.#state = state;
    this.#users = users;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    users.attachQuorum(this);
  }

  /** The stored quorum value M of an admin service; 1 (the default) means quorum is off. */
  quorumValue(service: AdminService): number {
    const bytes = this.#state.get(NS, service);
    return bytes === undefined ? QUORUM_OFF : decodeQuorumValue(bytes);
  }

  /** Both admin-service values (admins and crypto users may read them). */
  listQuorumValues(actor: Actor): Readonly<Record<AdminService, number>> {
    this.#requireRole(actor, ['admin', 'crypto-user']);
    return { user: this.quorumValue('user'), quorum: this.quorumValue('quorum') };
  }

  /**
   * An admin sets M for an admin service: 1 (off) or QUORUM_MIN..QUORUM_MAX, at most the number of
   * admins with a registered quorum key, and the 'user' value never above the 'quorum' value
   * (otherwise fewer approvers could lower the 'user' value than it protects). While the 'quorum'
   * service's own value is at least 2, the change itself needs that quorum.
   */
  setQuorumValue(actor: Actor, service: AdminService, m: number): Promise<void> {
    return this.#state.submit(() => {
      this.#requireRole(actor, ['admin']);
      assert(isAdminService(service), 'quorum values are stored only for admin services');
      const inRange = Number.isInteger(m) && (m === QUORUM_OFF || (m >= QUORUM_MIN && m <= QUORUM_MAX));
      if (!inRange) fail('COFFER_QUORUM_VALUE_INVALID', { min: QUORUM_MIN, max: QUORUM_MAX });
      const approvers = this.#users.quorumApprovers('admin').length;
      if (m > QUORUM_OFF && m > approvers) fail('COFFER_QUORUM_VALUE_INVALID', { approvers });
      const next = { user: this.quorumValue('user'), quorum: this.quorumValue('quorum'), [service]: m };
      if (next.user > next.quorum) fail('COFFER_QUORUM_VALUE_INVALID', { user: next.user, quorum: next.quorum });
      const guard = this.quorumValue('quorum');
      if (guard >= QUORUM_MIN) this.requireApproval(actor, 'quorum', guard);
      return { changes: [{ scope: 'cluster', kind: 'quorum.value', ops: [{ op: 'put', ns: NS, id: service, value: encodeQuorumValue(m) }] }], result: undefined };
    });
  }

  /**
   * Issues a token for `actor` (an admin for 'user'/'quorum', a crypto user for the key services,
   * which must name a handle). A new admin-service token replaces the requester's previous one.
   */
  generateToken(actor: Actor, service: QuorumService, handle?: Handle): QuorumToken {
    this.#requireRole(actor, [roleFor(service)]);
    const wantsHandle = !isAdminService(service);
    if (wantsHandle !== (handle !== undefined)) fail('COFFER_DATA_INVALID');
    if (handle !== undefined && !(Number.isSafeInteger(handle) && handle > 0)) fail('COFFER_OBJECT_NOT_FOUND');
    const nowMs = this.#clock.nowMs();
    this.#prune(nowMs);
    if (isAdminService(service)) {
      for (const t of this.#matching(actor.userId, service, undefined)) this.#tokens.delete(t.id);
    }
    if (this.#tokens.size >= QUORUM_TOKENS_MAX) fail('COFFER_QUORUM_TOKEN_LIMIT', { max: QUORUM_TOKENS_MAX });
    const idBytes = this.#random.bytes(TOKEN_ID_BYTES);
    const id = Buffer.from(idBytes).toString('hex');
    assert(!this.#tokens.has(id), 'token id collision');
    const fields = { service, requester: actor.userId, expiresAtMs: nowMs + QUORUM_TOKEN_TTL_MS, ...(handle === undefined ? {} : { handle }) };
    const bytes = encodeToken(fields, idBytes, nowMs);
    this.#tokens.set(id, { ...fields, id, bytes, approvals: new Map() });
    return { ...fields, id, bytes: bytes.slice() };
  }

  /**
   * Records `approverName`'s signature over `tokenBytes`. The approver must hold the role the
   * service calls for and a registered quorum key that verifies the signature
   * (COFFER_QUORUM_APPROVAL_INVALID otherwise, saying no more). Returns the approvals recorded.
   */
  approve(tokenBytes: Uint8Array, approverName: string, signature: Uint8Array): number {
    const token = this.#live(tokenBytes);
    let approver: string;
    try {
      approver = normaliseUserName(approverName);
    } catch {
      return fail('COFFER_QUORUM_APPROVAL_INVALID');
    }
    if (signature.length < 1 || signature.length > QUORUM_SIGNATURE_BYTES_MAX) fail('COFFER_QUORUM_APPROVAL_INVALID');
    if (!this.#approvalValid(token, approver, signature)) fail('COFFER_QUORUM_APPROVAL_INVALID');
    token.approvals.set(approver, signature.slice());
    return token.approvals.size;
  }

  /**
   * Succeeds when `actor` holds an unexpired token for `service` (and `handle`, for the key
   * services) with at least `m` valid approvals, and consumes that token. `m` below QUORUM_MIN
   * means quorum is off: nothing is checked or consumed. For the key services the caller passes
   * `approvers` (the key's owner and sharees); for the admin services they are the admins.
   * COFFER_QUORUM_TOKEN_INVALID when there is no such token (never issued, used or expired),
   * COFFER_QUORUM_REQUIRED when there is one but with too few approvals.
   */
  requireApproval(actor: Actor, service: QuorumService, m: number, handle?: Handle, approvers?: ReadonlySet<string>): void {
    assert(Number.isInteger(m) && m >= 0 && m <= QUORUM_MAX, 'quorum value out of range');
    if (m < QUORUM_MIN) return;
    this.#requireRole(actor, [roleFor(service)]);
    assert(isAdminService(service) === (handle === undefined), 'a handle goes with the key services only');
    assert(isAdminService(service) || approvers !== undefined, 'key services need the allowed approvers');
    const allowed = approvers ?? new Set(this.#users.quorumApprovers('admin'));
    this.#prune(this.#clock.nowMs());
    const candidates = this.#matching(actor.userId, service, handle).filter((t) => !this.#reserved.has(t.id));
    if (candidates.length === 0) fail('COFFER_QUORUM_TOKEN_INVALID');
    let best = 0;
    for (const token of candidates) {
      let valid = 0;
      for (const [approver, signature] of token.approvals) {
        if (allowed.has(approver) && this.#approvalValid(token, approver, signature)) valid++;
      }
      if (valid >= m) {
        this.#consume(token.id);
        return;
      }
      best = Math.max(best, valid);
    }
    fail('COFFER_QUORUM_REQUIRED', { approvals: best, required: m });
  }

  /** Every live token, as CloudHSM lists them: any admin or crypto user sees all, without signatures. */
  listTokens(actor: Actor): TokenSummary[] {
    this.#requireRole(actor, ['admin', 'crypto-user']);
    this.#prune(this.#clock.nowMs());
    return [...this.#tokens.values()].map((t) => ({
      id: t.id,
      service: t.service,
      requester: t.requester,
      ...(t.handle === undefined ? {} : { handle: t.handle }),
      expiresAtMs: t.expiresAtMs,
      approvals: t.approvals.size,
    }));
  }

  // ── UserQuorumHook ────────────────────────────────────────────────────────────────────────

  requireUserService(actor: Actor): void {
    this.requireApproval(actor, 'user', this.quorumValue('user'));
  }

  approversNeeded(): number {
    const m = Math.max(this.quorumValue('user'), this.quorumValue('quorum'));
    return m >= QUORUM_MIN ? m : 0;
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  /** The stored token `bytes` stand for, unexpired; COFFER_QUORUM_TOKEN_INVALID otherwise. */
  #live(bytes: Uint8Array): TokenState {
    this.#prune(this.#clock.nowMs());
    const id = tokenIdOf(bytes);
    const token = id === undefined ? undefined : this.#tokens.get(id);
    if (token === undefined || !Buffer.from(token.bytes).equals(bytes)) return fail('COFFER_QUORUM_TOKEN_INVALID');
    return token;
  }

  /** The approver holds the service's role and its current key verifies the signature. */
  #approvalValid(token: TokenState, approver: string, signature: Uint8Array): boolean {
    if (this.#users.roleOf(approver) !== roleFor(token.service)) return false;
    const key = this.#users.quorumKeyOf(approver);
    return key !== undefined && signatureValid(key, token.bytes, signature);
  }

  /**
   * Spends a token. Inside a decision (a guarded state change) it is only reserved — no other
   * operation can use it — until the decision's outcome is known: spent once the change took effect
   * or may have ('unknown'), usable again when the decision is refused or decided again (its journal
   * entry lost the race: the new decision reserves it again).
   */
  #consume(id: string): void {
    if (!this.#state.deciding) {
      this.#tokens.delete(id);
      return;
    }
    this.#reserved.add(id);
    this.#state.afterDecision({
      committed: () => {
        this.#reserved.delete(id);
        this.#tokens.delete(id);
      },
      abandoned: (reason) => {
        this.#reserved.delete(id);
        if (reason === 'unknown') this.#tokens.delete(id);
      },
    });
  }

  #matching(requester: string, service: QuorumService, handle: Handle | undefined): TokenState[] {
    return [...this.#tokens.values()].filter((t) => t.requester === requester && t.service === service && t.handle === handle);
  }

  /** Drops expired tokens. A token issued at t is valid while now < t + QUORUM_TOKEN_TTL_MS. */
  #prune(nowMs: number): void {
    for (const [id, t] of this.#tokens) if (nowMs >= t.expiresAtMs) this.#tokens.delete(id);
  }

  #requireRole(actor: Actor, roles: readonly Role[]): void {
    if (this.#users.roleOf(actor.userId) !== actor.role) fail('COFFER_NOT_LOGGED_IN');
    if (!roles.includes(actor.role)) fail('COFFER_PERMISSION_DENIED');
  }
}
