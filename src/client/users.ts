// User and quorum management through the cluster (docs/sdk.md "Users and quorum"). Every change
// goes to the primary once (router.primary); lists are read from the primary first. Passwords are
// encoded to bytes the SDK owns and zeroised once the call is settled (never logged, never in errors).

import type { WireRequest, WireResponse } from '../formats/wire.js';
import type { Acknowledgement } from './acks.js';
import type { ChangeOptions, Router } from './router.js';

export type ManagedRole = WireRequest<'CREATE_USER'>['role'];
export type UserInfo = WireResponse<'LIST_USERS'>['users'][number];
export type QuorumService = WireRequest<'GENERATE_QUORUM_TOKEN'>['service'];
export type AdminService = WireRequest<'SET_QUORUM_VALUE'>['service'];
export type QuorumToken = WireResponse<'GENERATE_QUORUM_TOKEN'>;
export type QuorumTokenInfo = WireResponse<'LIST_QUORUM_TOKENS'>['tokens'][number];

/** Runs `fn` with UTF-8 copies of the passwords, zeroised afterwards whatever happens. */
export async function withPasswords<T>(passwords: readonly (string | Uint8Array)[], fn: (bytes: Uint8Array[]) => Promise<T>): Promise<T> {
  const bytes = passwords.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : Uint8Array.from(p)));
  try {
    return await fn(bytes);
  } finally {
    for (const b of bytes) b.fill(0);
  }
}

export class Users {
  readonly #router: Router;
  /** Told which node's stored login password changed (CHANGE_OWN_PASSWORD). */
  readonly #onOwnPassword: (node: number, password: Uint8Array) => void;

  constructor(router: Router, onOwnPassword: (node: number, password: Uint8Array) => void) {
    this.#router = router;
    this.#onOwnPassword = onOwnPassword;
  }

  async create(name: string, password: string | Uint8Array, role: ManagedRole, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return withPasswords([password], async ([pw]) => (await this.#router.change('CREATE_USER', { name, password: pw as Uint8Array, role }, undefined, options)).acknowledgement);
  }
  async list(): Promise<readonly UserInfo[]> {
    return (await this.#router.onOneNode((l) => l.call('LIST_USERS', {}))).users;
  }
  async delete(name: string, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return (await this.#router.change('DELETE_USER', { name }, undefined, options)).acknowledgement;
  }
  async changePassword(name: string, newPassword: string | Uint8Array, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return withPasswords([newPassword], async ([pw]) => (await this.#router.change('CHANGE_PASSWORD', { name, newPassword: pw as Uint8Array }, undefined, options)).acknowledgement);
  }
  /** Changes the logged-in user's password; the SDK then logs in with the new one on that node, and on
   * a relayed cluster on every node (the change reaches each through the journal). */
  async changeOwnPassword(currentPassword: string | Uint8Array, newPassword: string | Uint8Array, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return withPasswords([currentPassword, newPassword], async ([cur, pw]) => {
      const { node, acknowledgement } = await this.#router.change('CHANGE_OWN_PASSWORD', { currentPassword: cur as Uint8Array, newPassword: pw as Uint8Array }, undefined, options);
      this.#onOwnPassword(node, Uint8Array.from(pw as Uint8Array));
      return acknowledgement;
    });
  }
  async unlock(name: string, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return (await this.#router.change('UNLOCK_USER', { name }, undefined, options)).acknowledgement;
  }
}

export class Quorum {
  readonly #router: Router;

  constructor(router: Router) {
    this.#router = router;
  }

  /** Registers the logged-in user's quorum public key (SubjectPublicKeyInfo DER). */
  async registerKey(spkiDer: Uint8Array, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return (await this.#router.change('REGISTER_QUORUM_KEY', { spkiDer }, undefined, options)).acknowledgement;
  }
  async setValue(service: AdminService, m: number, options: ChangeOptions = {}): Promise<Acknowledgement> {
    return (await this.#router.change('SET_QUORUM_VALUE', { service, m }, undefined, options)).acknowledgement;
  }
  async values(): Promise<WireResponse<'QUORUM_VALUES'>> {
    return this.#router.onOneNode((l) => l.call('QUORUM_VALUES', {}));
  }
  /** A token lives on the node that made it (the primary): approve it there too. */
  async generateToken(service: QuorumService, handle?: number): Promise<QuorumToken> {
    return (await this.#router.primary('GENERATE_QUORUM_TOKEN', { service, ...(handle === undefined ? {} : { handle }) })).response;
  }
  async approve(token: Uint8Array, approverName: string, signature: Uint8Array): Promise<number> {
    return (await this.#router.primary('APPROVE_QUORUM_TOKEN', { token, approverName, signature })).response.approvals;
  }
  async listTokens(): Promise<readonly QuorumTokenInfo[]> {
    return (await this.#router.onOneNode((l) => l.call('LIST_QUORUM_TOKENS', {}))).tokens;
  }
}
