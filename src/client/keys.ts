// A key object on the cluster (docs/sdk.md "Keys"): its handle, the identity of the object it names,
// the nodes that may serve it, and what the SDK knows of its type, for the default mechanisms.
// Crypto calls and reads are idempotent (balanced over those nodes, retried elsewhere among them);
// attribute changes, sharing and destroying go to the first of them that is up, once.
//
// On a relayed cluster (one journal, docs/architecture.md §5) a handle names one object on every HSM
// that has applied the entry that made it: a key goes to every node whose journal head is at or past
// the position where the client learned of it. On a solo cluster HSMs that made different changes hold
// different objects under one handle, so a key goes only to the nodes known to hold the state it was
// found in (same object lineage: docs/sdk.md "Which HSM serves a key"). Every request also carries the
// object's identity, and a node whose object there is another refuses (COFFER_OBJECT_MISMATCH).
// A key named only by its handle (Cluster.key) is found on first use, as findKeys would.

import { CofferError } from '../errors.js';
import { fromWireError, type WireError, type WireMechanismParams, type WireRequest, type WireResponse } from '../formats/wire.js';
import type { Acknowledgement } from './acks.js';
import type { ChangeOptions, Router, Route } from './router.js';

export type ObjectClass = WireResponse<'GET_ATTRIBUTES'>['class'];
export type KeyType = WireResponse<'GET_ATTRIBUTES'>['keyType'];
export type Curve = NonNullable<WireResponse<'GET_ATTRIBUTES'>['curve']>;
export type KeyInfo = WireResponse<'GET_ATTRIBUTES'>;
export type SettableAttribute = WireRequest<'SET_ATTRIBUTE'>['name'];
export type Template = WireRequest<'GENERATE_KEY'>['template'];
/** What a certificate is stored with (docs/sdk.md "Certificates"). */
export type CertificateTemplate = WireRequest<'IMPORT_CERTIFICATE'>['template'];
/** A certificate object's DER and CKA_CERTIFICATE_CATEGORY. */
export type CertificateValue = WireResponse<'GET_CERTIFICATE'>;

/** One item of a batch call: its value, or its own typed error (items fail independently). */
export type BatchResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: CofferError };

/** Where a key lives: the identity of its object and the nodes that may serve it — a bit mask of node
 * indexes (a solo cluster's lineage rules), or, on a relayed cluster, `fromSeq`: every node whose
 * journal head is at or past that position; neither: any node. */
export interface Placement {
  readonly identity?: Uint8Array;
  readonly nodes?: number;
  readonly fromSeq?: bigint;
}

/** What a Key needs from its cluster. */
export interface KeyHost {
  readonly router: Router;
  /** Finds the key a handle names (identity, type, the nodes holding it). */
  locate(handle: number): Promise<{ readonly placement: Placement; readonly info: KeyInfo }>;
}

type Known = { class?: ObjectClass; keyType?: KeyType; curve?: Curve | undefined };

export class Key {
  readonly handle: number;
  readonly #host: KeyHost;
  #placement: Placement | undefined;
  #located: Promise<Placement> | undefined;
  #known: Known;
  #typeFetch: Promise<KeyInfo> | undefined;
  /** For a key this client made: which HSMs acknowledged the change that made it (docs/sdk.md "Acknowledgements"). */
  readonly acknowledgement: Acknowledgement | undefined;

  /** `placement` undefined: the key is found (Cluster.locate) on first use. */
  constructor(host: KeyHost, handle: number, placement: Placement | undefined, known: Known = {}, acknowledgement?: Acknowledgement) {
    this.#host = host;
    this.handle = handle;
    this.#placement = placement;
    this.#known = known;
    this.acknowledgement = acknowledgement;
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
  /** The identity of the object this key names, once known. */
  get identity(): Uint8Array | undefined {
    return this.#placement?.identity?.slice();
  }
  /** The indexes of the nodes that may serve this key now, once known (undefined: any node). */
  get nodes(): readonly number[] | undefined {
    const mask = this.#mask(this.#placement);
    if (mask === undefined) return undefined;
    return this.#host.router.links.map((l) => l.index).filter((i) => (mask & (1 << i)) !== 0);
  }

  async sign(data: Uint8Array, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultSign());
    const { route, ref } = await this.where();
    return (await this.#host.router.idempotent('SIGN', { ...ref, params: p, data }, route)).signature;
  }
  async verify(data: Uint8Array, signature: Uint8Array, params?: WireMechanismParams): Promise<boolean> {
    const p = params ?? (await this.#defaultSign());
    const { route, ref } = await this.where();
    return (await this.#host.router.idempotent('VERIFY', { ...ref, params: p, data, signature }, route)).valid;
  }
  async encrypt(data: Uint8Array, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultEncrypt());
    const { route, ref } = await this.where();
    return (await this.#host.router.idempotent('ENCRYPT', { ...ref, params: p, data }, route)).data;
  }
  async decrypt(data: Uint8Array, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultEncrypt());
    const { route, ref } = await this.where();
    return (await this.#host.router.idempotent('DECRYPT', { ...ref, params: p, data }, route)).data;
  }

  async signMany(items: readonly Uint8Array[], params?: WireMechanismParams): Promise<BatchResult<Uint8Array>[]> {
    const p = params ?? (await this.#defaultSign());
    const { ref } = await this.where();
    return this.#batch('SIGN_BATCH', items.map((data) => ({ ...ref, params: p, data })));
  }
  async verifyMany(items: readonly { readonly data: Uint8Array; readonly signature: Uint8Array }[], params?: WireMechanismParams): Promise<BatchResult<boolean>[]> {
    const p = params ?? (await this.#defaultSign());
    const { ref } = await this.where();
    return this.#batch('VERIFY_BATCH', items.map((i) => ({ ...ref, params: p, data: i.data, signature: i.signature })));
  }
  async encryptMany(items: readonly Uint8Array[], params?: WireMechanismParams): Promise<BatchResult<Uint8Array>[]> {
    const p = params ?? (await this.#defaultEncrypt());
    const { ref } = await this.where();
    return this.#batch('ENCRYPT_BATCH', items.map((data) => ({ ...ref, params: p, data })));
  }
  async decryptMany(items: readonly Uint8Array[], params?: WireMechanismParams): Promise<BatchResult<Uint8Array>[]> {
    const p = params ?? (await this.#defaultEncrypt());
    const { ref } = await this.where();
    return this.#batch('DECRYPT_BATCH', items.map((data) => ({ ...ref, params: p, data })));
  }

  /** Everything the node says about the key (class, type, label, id, attributes, owner, sharees). */
  async attributes(): Promise<KeyInfo> {
    const { route, ref } = await this.where();
    const info = await this.#host.router.idempotent('GET_ATTRIBUTES', ref, route);
    this.#known = { class: info.class, keyType: info.keyType, curve: info.curve };
    return info;
  }
  /** The certificate a certificate object holds (DER) and its category; any other object is COFFER_KEY_TYPE_INCONSISTENT. */
  async certificate(): Promise<CertificateValue> {
    const { route, ref } = await this.where();
    return this.#host.router.idempotent('GET_CERTIFICATE', ref, route);
  }
  async exportPublicPem(): Promise<string> {
    const { route, ref } = await this.where();
    return (await this.#host.router.idempotent('EXPORT_PUBLIC', ref, route)).pem;
  }
  /** The key's bytes in the clear (only an extractable, non-sensitive key). The caller owns and zeroises them. */
  async exportPlaintext(): Promise<Uint8Array> {
    const { route, ref } = await this.where();
    return (await this.#host.router.idempotent('EXPORT_PLAINTEXT', ref, route)).key;
  }

  async setAttribute(name: SettableAttribute, value: boolean | string | Uint8Array, options: ChangeOptions = {}): Promise<Acknowledgement> {
    const { route, ref } = await this.where();
    return (await this.#host.router.change('SET_ATTRIBUTE', { ...ref, name, value }, route, options)).acknowledgement;
  }
  async share(userName: string, options: ChangeOptions = {}): Promise<Acknowledgement> {
    const { route, ref } = await this.where();
    return (await this.#host.router.change('SHARE', { ...ref, userName }, route, options)).acknowledgement;
  }
  async unshare(userName: string, options: ChangeOptions = {}): Promise<Acknowledgement> {
    const { route, ref } = await this.where();
    return (await this.#host.router.change('UNSHARE', { ...ref, userName }, route, options)).acknowledgement;
  }
  async destroy(options: ChangeOptions = {}): Promise<Acknowledgement> {
    const { route, ref } = await this.where();
    return (await this.#host.router.change('DESTROY', ref, route, options)).acknowledgement;
  }

  /** Wraps `target` under this key (default: AES key wrap with padding, RFC 5649; RSA-OAEP SHA-256). */
  async wrap(target: Key, params?: WireMechanismParams): Promise<Uint8Array> {
    const p = params ?? (await this.#defaultWrap());
    const [mine, theirs] = await Promise.all([this.where(), target.placement()]);
    // Only a node that holds both keys: the intersection of where each may go.
    const nodes = (mine.route.nodes ?? -1) & (this.#mask(theirs) ?? -1);
    const route = nodes === -1 ? { handle: this.handle } : { handle: this.handle, nodes };
    const identities = { ...(mine.ref.identity === undefined ? {} : { wrapping: mine.ref.identity }), ...(theirs.identity === undefined ? {} : { target: theirs.identity }) };
    return (await this.#host.router.idempotent('WRAP_KEY', { wrappingHandle: this.handle, targetHandle: target.handle, params: p, identities }, route)).wrapped;
  }

  /** Where this key lives, found first if it was named only by its handle. */
  async placement(): Promise<Placement> {
    if (this.#placement !== undefined) return this.#placement;
    this.#located ??= this.#host.locate(this.handle).then(({ placement, info }) => {
      this.#placement = placement;
      this.#known = { class: info.class, keyType: info.keyType, curve: info.curve };
      return placement;
    }).finally(() => (this.#located = undefined));
    return this.#located;
  }

  /** The nodes a placement allows now (a bit mask; undefined: any node). */
  #mask(placement: Placement | undefined): number | undefined {
    if (placement?.fromSeq !== undefined) return this.#host.router.nodesAtOrPast(placement.fromSeq);
    return placement?.nodes;
  }

  /** @internal The route of a call on this key and its reference (Cluster: keys made from this one). */
  async where(): Promise<{ route: Route; ref: { handle: number; identity?: Uint8Array } }> {
    const placement = await this.placement();
    const nodes = this.#mask(placement);
    const route: Route = nodes === undefined ? { handle: this.handle } : { handle: this.handle, nodes };
    const ref = placement.identity === undefined ? { handle: this.handle } : { handle: this.handle, identity: placement.identity };
    return { route, ref };
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
    const { route } = await this.where();
    const replies = await Promise.all(chunks.map((chunk) => this.#host.router.idempotent(name, { items: chunk } as never, route)));
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
