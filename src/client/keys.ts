// A key object on the cluster (docs/sdk.md "Keys"): its handle plus what the SDK knows of its type,
// for the default mechanisms. Crypto calls and reads are idempotent (balanced, retried elsewhere);
// attribute changes, sharing, destroying and wrapping-with-state go to the primary once.
//
// A key made by this client while the cluster has more than one node is pinned to the node that made
// it ("home"): without the cluster journal (docs/architecture.md §5) no other node holds it, and a handle number
// on another node could name a different object. Keys from Cluster.key() and findKeys() are not
// pinned: a node that answers "no such object" is remembered and skipped for that handle.

import { CofferError } from '../errors.js';
import { fromWireError, type WireError, type WireMechanismParams, type WireRequest, type WireResponse } from '../formats/wire.js';
import type { Router, Route } from './router.js';

export type ObjectClass = WireResponse<'GET_ATTRIBUTES'>['class'];
export type KeyType = WireResponse<'GET_ATTRIBUTES'>['keyType'];
export type Curve = NonNullable<WireResponse<'GET_ATTRIBUTES'>['curve']>;
export type KeyInfo = WireResponse<'GET_ATTRIBUTES'>;
export type SettableAttribute = WireRequest<'SET_ATTRIBUTE'>['name'];
export type Template = WireRequest<'GENERATE_KEY'>['template'];

/** One item of a batch call: its value, or its own typed error (items fail independently). */
export type BatchResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: CofferError };

/** What a Key needs from its cluster. */
export interface KeyHost {
  readonly router: Router;
}

type Known = { class?: ObjectClass; keyType?: KeyType; curve?: Curve | undefined };

export class Key {
  readonly handle: number;
  readonly #host: KeyHost;
  readonly #route: Route;
  #known: Known;
  #typeFetch: Promise<KeyInfo> | undefined;

  constructor(host: KeyHost, handle: number, home: number | undefined, known: Known = {}) {
    this.#host = host;
    this.handle = handle;
    this.#route = home === undefined ? { handle } : { handle, home };
    this.#known = known;
  }

  get class(): ObjectClass | undefined {
    return this.#known.class;
  }
  get keyType(): KeyType | undefined {
    return this.#known.keyType;
  }
  get curve(): Curve | undefined {
    return this.#known.curve;
  }
  /** The node index this key lives on alone (made by this client, no journal yet), if any. */
  get home(): number | undefined {
    return this.#route.home;
  }

  async sign(data: Uint8Array, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultSign());
    return (await this.#host.router.idempotent('SIGN', { handle: this.handle, params: p, data }, this.#route)).signature;
  }
  async verify(data: Uint8Array, signature: Uint8Array, params?: WireMechanismParams): Promise<boolean> {
    const p = params ?? (await this.#defaultSign());
    return (await this.#host.router.idempotent('VERIFY', { handle: this.handle, params: p, data, signature }, this.#route)).valid;
  }
  async encrypt(data: Uint8Array, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultEncrypt());
    return (await this.#host.router.idempotent('ENCRYPT', { handle: this.handle, params: p, data }, this.#route)).data;
  }
  async decrypt(data: Uint8Array, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultEncrypt());
    return (await this.#host.router.idempotent('DECRYPT', { handle: this.handle, params: p, data }, this.#route)).data;
  }

  async signMany(items: readonly Uint8Array[], params?: WireMechanismParams): Promise<BatchResult<Uint8Array>[]> {
    const p = params ?? (await this.#defaultSign());
    return this.#batch('SIGN_BATCH', items.map((data) => ({ handle: this.handle, params: p, data })));
  }
  async verifyMany(items: readonly { readonly data: Uint8Array; readonly signature: Uint8Array }[], params?: WireMechanismParams): Promise<BatchResult<boolean>[]> {
    const p = params ?? (await this.#defaultSign());
    return this.#batch('VERIFY_BATCH', items.map((i) => ({ handle: this.handle, params: p, data: i.data, signature: i.signature })));
  }
  async encryptMany(items: readonly Uint8Array[], params?: WireMechanismParams): Promise<BatchResult<Uint8Array>[]> {
    const p = params ?? (await this.#defaultEncrypt());
    return this.#batch('ENCRYPT_BATCH', items.map((data) => ({ handle: this.handle, params: p, data })));
  }
  async decryptMany(items: readonly Uint8Array[], params?: WireMechanismParams): Promise<BatchResult<Uint8Array>[]> {
    const p = params ?? (await this.#defaultEncrypt());
    return this.#batch('DECRYPT_BATCH', items.map((data) => ({ handle: this.handle, params: p, data })));
  }

  /** Everything the node says about the key (class, type, label, id, attributes, owner, sharees). */
  async attributes(): Promise<KeyInfo> {
    const info = await this.#host.router.idempotent('GET_ATTRIBUTES', { handle: this.handle }, this.#route);
    this.#known = { class: info.class, keyType: info.keyType, curve: info.curve };
    return info;
  }
  async exportPublicPem(): Promise<string> {
    return (await this.#host.router.idempotent('EXPORT_PUBLIC', { handle: this.handle }, this.#route)).pem;
  }
  /** The key's bytes in the clear (only an extractable, non-sensitive key). The caller owns and zeroises them. */
  async exportPlaintext(): Promise<Uint8Array> {
    return (await this.#host.router.idempotent('EXPORT_PLAINTEXT', { handle: this.handle }, this.#route)).key;
  }

  async setAttribute(name: SettableAttribute, value: boolean | string | Uint8Array): Promise<void> {
    await this.#host.router.primary('SET_ATTRIBUTE', { handle: this.handle, name, value });
  }
  async share(userName: string): Promise<void> {
    await this.#host.router.primary('SHARE', { handle: this.handle, userName });
  }
  async unshare(userName: string): Promise<void> {
    await this.#host.router.primary('UNSHARE', { handle: this.handle, userName });
  }
  async destroy(): Promise<void> {
    await this.#host.router.primary('DESTROY', { handle: this.handle });
  }

  /** Wraps `target` under this key (default: AES key wrap with padding, RFC 5649; RSA-OAEP SHA-256). */
  async wrap(target: Key, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultWrap());
    const route = this.#route.home !== undefined ? this.#route : (target.home === undefined ? { handle: this.handle } : { handle: this.handle, home: target.home });
    return (await this.#host.router.idempotent('WRAP_KEY', { wrappingHandle: this.handle, targetHandle: target.handle, params: p }, route)).wrapped;
  }

  toJSON(): { handle: number; class?: ObjectClass; keyType?: KeyType } {
    return { handle: this.handle, ...(this.class === undefined ? {} : { class: this.class }), ...(this.keyType === undefined ? {} : { keyType: this.keyType }) };
  }

  async #type(): Promise<Known> {
    if (this.#known.keyType !== undefined) return this.#known;
    // Concurrent first calls share one GET_ATTRIBUTES.
    this.#typeFetch ??= this.attributes().finally(() => (this.#typeFetch = undefined));
    await this.#typeFetch;
    return this.#known;
  }

  async #defaultSign(): Promise<WireMechanismParams> {
    const k = await this.#type();
    return defaultSignMechanism(k.keyType, k.curve);
  }
  async #defaultEncrypt(): Promise<WireMechanismParams> {
    const k = await this.#type();
    if (k.keyType === 'AES') return { mechanism: 'CKM_AES_GCM' };
    if (k.keyType === 'RSA') return { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' };
    throw new CofferError('COFFER_KEY_TYPE_INCONSISTENT', { keyType: k.keyType ?? 'unknown', use: 'encrypt' });
  }
  async #defaultWrap(): Promise<WireMechanismParams> {
    const k = await this.#type();
    if (k.keyType === 'AES') return { mechanism: 'CKM_AES_KEY_WRAP_PAD' };
    if (k.keyType === 'RSA') return { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' };
    throw new CofferError('COFFER_KEY_TYPE_INCONSISTENT', { keyType: k.keyType ?? 'unknown', use: 'wrap' });
  }

  /** Splits into batches the nodes accept, sends them concurrently (each balanced and retried). */
  async #batch<N extends 'SIGN_BATCH' | 'VERIFY_BATCH' | 'ENCRYPT_BATCH' | 'DECRYPT_BATCH'>(
    name: N, items: WireRequest<N>['items'],
  ): Promise<BatchResult<N extends 'VERIFY_BATCH' ? boolean : Uint8Array>[]> {
    const per = Math.max(1, Math.min(...this.#host.router.links.map((l) => l.batchItemsMax)));
    const chunks: WireRequest<N>['items'][] = [];
    for (let i = 0; i < items.length; i += per) chunks.push(items.slice(i, i + per));
    const replies = await Promise.all(chunks.map((chunk) => this.#host.router.idempotent(name, { items: chunk } as never, this.#route)));
    type R = BatchResult<N extends 'VERIFY_BATCH' ? boolean : Uint8Array>;
    return replies.flatMap((r) => (r as { results: readonly ({ ok: true; value: unknown } | { ok: false; error: WireError })[] }).results.map(
      (x) => (x.ok ? { ok: true, value: x.value } : { ok: false, error: fromWireError(x.error) }) as R,
    ));
  }
}

/** The mechanism a key signs and verifies with when none is given (docs/sdk.md "Defaults"). */
export function defaultSignMechanism(keyType: KeyType | undefined, curve: Curve | undefined): WireMechanismParams {
  switch (keyType) {
    case 'EC':
      return { mechanism: curve === 'P-384' ? 'CKM_ECDSA_SHA384' : curve === 'P-521' ? 'CKM_ECDSA_SHA512' : 'CKM_ECDSA_SHA256' };
    case 'EC_EDWARDS':
      return { mechanism: 'CKM_EDDSA' };
    case 'RSA':
      return { mechanism: 'CKM_SHA256_RSA_PKCS' };
    case 'GENERIC_SECRET':
      return { mechanism: 'CKM_SHA256_HMAC' };
    case 'AES':
      return { mechanism: 'CKM_AES_CMAC' };
    default:
      throw new CofferError('COFFER_KEY_TYPE_INCONSISTENT', { keyType: 'unknown', use: 'sign' });
  }
}
