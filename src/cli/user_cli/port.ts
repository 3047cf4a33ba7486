// What the user CLI needs from a cluster, in its own terms. sdk.ts implements it over the client SDK
// (src/client/cluster.ts); the commands see only this, so the SDK's shape is adapted in one place.

import type { MechanismParams } from '../../formats/mechanism_params.js';
import type { CurveName, KeyFilter, SettableName, Template } from './args.js';
import type { ClusterTarget, LoginRole } from './config.js';
import type { KeyDescription, TokenDescription, UserDescription } from './output.js';

export type KeyPairSpec =
  | { readonly keyType: 'RSA'; readonly bits: number; readonly publicExponent?: number }
  | { readonly keyType: 'EC'; readonly curve: Exclude<CurveName, 'Ed25519'> }
  | { readonly keyType: 'EC_EDWARDS'; readonly curve: 'Ed25519' };

export type UnwrapTemplate = Template & {
  readonly class: 'SECRET_KEY' | 'PRIVATE_KEY';
  readonly keyType: 'AES' | 'GENERIC_SECRET' | 'RSA' | 'EC' | 'EC_EDWARDS';
  readonly curve?: CurveName;
};

export type QuorumService = 'user' | 'quorum' | 'key-management' | 'key-usage';

export interface QuorumToken {
  readonly id: string;
  readonly bytes: Uint8Array;
  readonly service: QuorumService;
  readonly expiresAtMs: number;
  readonly handle?: number | undefined;
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
  readonly role: LoginRole;
}

/** Which HSMs hold a state change (docs/sdk.md "Acknowledgements"), as the CLI prints it. */
export interface Acknowledged {
  /** The HSMs that hold it, as host:port, the one that made it first. */
  readonly nodes: readonly string[];
  /** How many were asked for (1 on a solo cluster: k does not apply). */
  readonly required: number;
  /** The journal position of the entry that made it, when it made one on a relayed cluster. */
  readonly seq?: string;
}

export interface UserCluster {
  /** The acknowledgements the next state changes ask for (undefined: the SDK's default). */
  setAcks(k: number | undefined): void;
  /** Who acknowledged the last state change since the previous call, if any was made. */
  takeAcknowledgement(): Acknowledged | undefined;
  generateKeyPair(spec: KeyPairSpec, publicTemplate: Template, privateTemplate: Template): Promise<{ publicHandle: number; privateHandle: number }>;
  generateKey(spec: { keyType: 'AES' | 'GENERIC_SECRET'; bits: number }, template: Template): Promise<number>;
  /** Every key the user may see that matches the node-expressible part of `filter`, described;
   * `onProgress` reports how many of how many keys are described so far. */
  findKeys(filter: KeyFilter, onProgress?: (done: number, total: number) => void): Promise<KeyDescription[]>;
  describe(handle: number): Promise<KeyDescription>;
  setAttribute(handle: number, name: SettableName, value: boolean | string | Uint8Array): Promise<void>;
  share(handle: number, user: string): Promise<void>;
  unshare(handle: number, user: string): Promise<void>;
  destroy(handle: number): Promise<void>;
  exportPublicPem(handle: number): Promise<string>;
  importPem(pem: string, kind: 'public' | 'private', template: Template): Promise<number>;
  sign(handle: number, params: MechanismParams, data: Uint8Array): Promise<Uint8Array>;
  verify(handle: number, params: MechanismParams, data: Uint8Array, signature: Uint8Array): Promise<boolean>;
  encrypt(handle: number, params: MechanismParams, data: Uint8Array): Promise<Uint8Array>;
  decrypt(handle: number, params: MechanismParams, data: Uint8Array): Promise<Uint8Array>;
  wrap(wrappingHandle: number, targetHandle: number, params: MechanismParams): Promise<Uint8Array>;
  unwrap(unwrappingHandle: number, wrapped: Uint8Array, params: MechanismParams, template: UnwrapTemplate): Promise<number>;
  createUser(name: string, password: string, role: LoginRole): Promise<void>;
  listUsers(): Promise<readonly UserDescription[]>;
  deleteUser(name: string): Promise<void>;
  changePassword(name: string, password: string): Promise<void>;
  changeOwnPassword(current: string, next: string): Promise<void>;
  unlockUser(name: string): Promise<void>;
  registerQuorumKey(spkiDer: Uint8Array): Promise<void>;
  setQuorumValue(service: 'user' | 'quorum', m: number): Promise<void>;
  quorumValues(): Promise<Record<string, number>>;
  generateQuorumToken(service: QuorumService, handle?: number): Promise<QuorumToken>;
  approveQuorumToken(token: Uint8Array, approver: string, signature: Uint8Array): Promise<number>;
  listQuorumTokens(): Promise<readonly TokenDescription[]>;
  close(): Promise<void>;
}

/** How the CLI reaches clusters: connect-and-login, and the one step before any login exists. */
export interface ClusterFactory {
  connect(target: ClusterTarget, credentials: Credentials): Promise<UserCluster>;
  /** Per endpoint, whether its HSM is activated (STATUS, no login); undefined when it cannot be asked. */
  activationStates(target: ClusterTarget): Promise<readonly (boolean | undefined)[]>;
  activate(target: ClusterTarget, preCoPassword: string, newAdminPassword: string): Promise<void>;
}
