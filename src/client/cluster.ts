// A cluster of HSMs as one (docs/architecture.md §7, docs/sdk.md): connect to every node trusting only the
// customer CA, log in on each, balance calls by capacity and in-flight count, retry idempotent calls
// on another node, send state changes to one primary once, re-probe dead nodes.
//
// Login: the first node that answers TLS gets the login first; only when it succeeds are the others
// logged in (in parallel). A refused login fails connect and is never repeated: every refusal counts
// toward the user's lockout. A later node that refuses (a diverged node) is left out, not retried.

import { CofferError } from '../errors.js';
import {
  CLIENT_ACK_TIMEOUT_MS, CLIENT_CONNECT_TIMEOUT_MS, CLIENT_CONNECTIONS_PER_NODE_MAX, CLIENT_FIND_PAGE_OBJECTS, CLIENT_REQUEST_TIMEOUT_MS, CLIENT_RETRIES_DEFAULT, CLIENT_RETRIES_MAX,
} from '../formats/limits.js';
import type { WireMechanismParams, WireRequest, WireResponse } from '../formats/wire.js';
import { JournalView, acknowledge, checkAcks, watchHeads, type Acknowledgement } from './acks.js';
import { Connection } from './connection.js';
import { checkEndpoints } from './discovery.js';
import { Key, type CertificateTemplate, type Curve, type KeyInfo, type KeyType, type ObjectClass, type Placement, type Template } from './keys.js';
import { NodeLink, connectError, isLoginRefusal, type Endpoint, type JournalPosition, type NodeSnapshot } from './node_link.js';
import { Router, type ChangeOptions, type Route } from './router.js';
import { Quorum, Users, withPasswords } from './users.js';

export interface Credentials {
  readonly username: string;
  readonly password: string | Uint8Array;
  /** Default 'crypto-user' (CloudHSM's CU); 'admin' for user and quorum management. */
  readonly role?: 'crypto-user' | 'admin';
}

export interface ClusterOptions {
  readonly endpoints: readonly Endpoint[];
  /** The customer CA (PEM): the only trust anchor (docs/architecture.md §7). */
  readonly ca: string | readonly string[];
  readonly credentials: Credentials;
  /** Client certificate and key (PEM) for nodes that require mTLS. */
  readonly cert?: string;
  readonly key?: string;
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Extra attempts of an idempotent call (default CLIENT_RETRIES_DEFAULT, at most CLIENT_RETRIES_MAX). */
  readonly retries?: number;
  /** Connections (each its own logged-in session) per node; default 1 (docs/sdk.md "Measured"). */
  readonly connectionsPerNode?: number;
  /** Coalesce concurrent single sign calls into SIGN_BATCH frames (default false; docs/sdk.md). */
  readonly autoBatch?: boolean;
  /** HSMs that must hold a state change before it returns, on a relayed cluster (docs/sdk.md
   * "Acknowledgements"): 1 … the number of endpoints; default 2 with two or more endpoints, else 1. */
  readonly acks?: number;
  /** How long a state change waits for its acknowledgements (default CLIENT_ACK_TIMEOUT_MS). */
  readonly ackTimeoutMs?: number;
}

export interface KeyOptions {
  readonly label?: string;
  readonly id?: Uint8Array;
  /** Default false: the key never leaves the HSM in the clear or wrapped. */
  readonly extractable?: boolean;
  /** Default true: a token (persistent) object; false = a session object, gone with the session. */
  readonly token?: boolean;
  /** HSMs that must hold the new key before the call returns (default: the client's `acks`). */
  readonly acks?: number;
}
export type KeyPairSpec = (
  | { readonly curve: 'P-256' | 'P-384' | 'P-521' | 'secp256k1' | 'Ed25519' }
  | { readonly keyType: 'RSA'; readonly bits: number; readonly publicExponent?: number }
) & KeyOptions & { readonly publicAttributes?: Template; readonly privateAttributes?: Template };
export type SecretKeySpec = { readonly type: 'AES' | 'GENERIC_SECRET'; readonly bits: number; readonly attributes?: Template } & KeyOptions;
export interface KeyPair {
  readonly publicKey: Key;
  readonly privateKey: Key;
}
export type FindFilter = Omit<WireRequest<'FIND'>['filter'], 'handle'>;
export type NodeStatus = { readonly endpoint: Endpoint } & ({ readonly status: WireResponse<'STATUS'> } | { readonly error: CofferError });
export type DigestName = 'SHA-224' | 'SHA-256' | 'SHA-384' | 'SHA-512';

const bad = (reason: string): CofferError => new CofferError('COFFER_CLIENT_CONFIG_INVALID', { reason });

function boundedInt(v: number | undefined, dflt: number, min: number, max: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) throw bad(`${what} must be an integer ${min}-${max}`);
  return v;
}

export class Cluster {
  readonly router: Router;
  readonly users: Users;
  readonly quorum: Quorum;
  readonly #links: readonly NodeLink[];
  /** What the client knows of the cluster journal, for the fork check (acks.ts). */
  readonly #view = new JournalView();

  private constructor(links: readonly NodeLink[], retries: number, acks: number, ackTimeoutMs: number) {
    this.#links = links;
    this.router = new Router(links, retries);
    this.router.acknowledge = (origin, position, k) => acknowledge(this.#view, links, origin, position, k ?? acks, ackTimeoutMs);
    this.router.watch = (origin, k) => watchHeads(links, origin, k ?? acks, ackTimeoutMs);
    for (const l of links) l.onPosition = (link, seq, hash) => this.#view.observe(link, seq, hash);
    // On a relayed cluster a password change is a journal entry that reaches every HSM, so every link
    // logs in again with the new password; on a solo cluster only the HSM that made it holds it.
    this.users = new Users(this.router, (node, pw) => {
      const origin = links[node] as NodeLink;
      const all = origin.journalMode === 'relayed' ? links.filter((l) => l.journalMode === 'relayed') : [origin];
      all.forEach((l, i) => l.replacePassword(i === all.length - 1 ? pw : Uint8Array.from(pw)));
    });
    this.quorum = new Quorum(this.router);
  }

  /** Connects to every endpoint, logs in, and resolves once at least one node is up. */
  static async connect(options: ClusterOptions): Promise<Cluster> {
    const endpoints = checkEndpoints(options.endpoints);
    const retries = boundedInt(options.retries, CLIENT_RETRIES_DEFAULT, 0, CLIENT_RETRIES_MAX, 'retries');
    const connections = boundedInt(options.connectionsPerNode, 1, 1, CLIENT_CONNECTIONS_PER_NODE_MAX, 'connectionsPerNode');
    const connectTimeoutMs = boundedInt(options.connectTimeoutMs, CLIENT_CONNECT_TIMEOUT_MS, 1, 3_600_000, 'connectTimeoutMs');
    const requestTimeoutMs = boundedInt(options.requestTimeoutMs, CLIENT_REQUEST_TIMEOUT_MS, 1, 3_600_000, 'requestTimeoutMs');
    const acks = checkAcks(options.acks ?? Math.min(2, endpoints.length), endpoints.length);
    const ackTimeoutMs = boundedInt(options.ackTimeoutMs, CLIENT_ACK_TIMEOUT_MS, 1, 3_600_000, 'ackTimeoutMs');
    const cred = options.credentials;
    if (typeof cred?.username !== 'string' || cred.username.length === 0) throw bad('credentials need a username');
    const password = typeof cred.password === 'string' ? new TextEncoder().encode(cred.password) : cred.password;
    const holder: { cluster?: Cluster } = {};
    const links = endpoints.map((endpoint, i) => new NodeLink(i, {
      endpoint, ca: options.ca, username: cred.username, password: Uint8Array.from(password), role: cred.role ?? 'crypto-user',
      connections, autoBatch: options.autoBatch ?? false, connectTimeoutMs, requestTimeoutMs, onUp: () => holder.cluster?.router.wake(),
      ...(options.cert === undefined ? {} : { cert: options.cert }), ...(options.key === undefined ? {} : { key: options.key }),
    }));
    if (typeof cred.password === 'string') password.fill(0);
    const cluster = new Cluster(links, retries, acks, ackTimeoutMs);
    holder.cluster = cluster;
    try {
      await cluster.#logInEverywhere();
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  async #logInEverywhere(): Promise<void> {
    const links = this.#links;
    const transports = await Promise.allSettled(links.map((l) => l.connectTransport()));
    const errors: CofferError[] = [];
    let first: NodeLink | undefined;
    for (const [i, t] of transports.entries()) {
      const link = links[i] as NodeLink;
      if (t.status === 'rejected') {
        errors.push(connectError(t.reason, link.endpoint));
        link.startProbing(errors[errors.length - 1] as CofferError);
        continue;
      }
      if (first !== undefined) continue;
      try {
        await link.login();
        first = link;
      } catch (e) {
        if (isLoginRefusal(e)) throw e; // never try the password on another node
        errors.push(connectError(e, link.endpoint));
        link.startProbing(errors[errors.length - 1] as CofferError);
      }
    }
    if (first === undefined) {
      const untrusted = errors.find((e) => e.code === 'COFFER_NODE_UNTRUSTED');
      if (untrusted !== undefined && errors.every((e) => e.code === 'COFFER_NODE_UNTRUSTED')) throw untrusted;
      throw new CofferError('COFFER_CLUSTER_UNAVAILABLE', { nodes: links.length, down: links.length }, { cause: errors[0] });
    }
    const rest = links.filter((l, i) => l !== first && transports[i]?.status === 'fulfilled' && l.state !== 'up');
    await Promise.all(rest.map(async (l) => {
      try {
        await l.login();
      } catch (e) {
        l.startProbing(connectError(e, l.endpoint)); // a refusal stops there (node_link: no re-login)
      }
    }));
  }

  /** A snapshot of every node: state, this client's in-flight count, capacity, last error. */
  get nodes(): readonly NodeSnapshot[] {
    return this.#links.map((l) => l.snapshot());
  }

  /** Each node's STATUS (down nodes: their last error). */
  async status(): Promise<NodeStatus[]> {
    return Promise.all(this.#links.map(async (l): Promise<NodeStatus> => {
      if (l.state !== 'up') return { endpoint: l.endpoint, error: l.lastError ?? new CofferError('COFFER_CONNECTION_LOST') };
      try {
        return { endpoint: l.endpoint, status: await l.callPlain('STATUS') };
      } catch (e) {
        return { endpoint: l.endpoint, error: e instanceof CofferError ? e : new CofferError('COFFER_CONNECTION_LOST') };
      }
    }));
  }

  async generateKeyPair(spec: KeyPairSpec): Promise<KeyPair> {
    const wireSpec: WireRequest<'GENERATE_KEY_PAIR'>['spec'] = 'curve' in spec
      ? (spec.curve === 'Ed25519' ? { keyType: 'EC_EDWARDS', curve: 'Ed25519' } : { keyType: 'EC', curve: spec.curve })
      : { keyType: 'RSA', bits: spec.bits, ...(spec.publicExponent === undefined ? {} : { publicExponent: spec.publicExponent }) };
    const base = templateOf(spec);
    const { response, node, acknowledgement } = await this.router.change('GENERATE_KEY_PAIR', {
      spec: wireSpec,
      publicTemplate: { ...withoutExtractable(base), ...spec.publicAttributes },
      privateTemplate: { ...base, ...spec.privateAttributes },
    }, undefined, acksOf(spec));
    const keyType: KeyType = wireSpec.keyType;
    const curve = 'curve' in wireSpec ? wireSpec.curve : undefined;
    return {
      publicKey: this.#made({ handle: response.publicHandle, identity: response.publicIdentity }, node, acknowledgement, { class: 'PUBLIC_KEY', keyType, curve }),
      privateKey: this.#made({ handle: response.privateHandle, identity: response.privateIdentity }, node, acknowledgement, { class: 'PRIVATE_KEY', keyType, curve }),
    };
  }

  async generateKey(spec: SecretKeySpec): Promise<Key> {
    const { response, node, acknowledgement } = await this.router.change('GENERATE_KEY', { spec: { keyType: spec.type, bits: spec.bits }, template: { ...templateOf(spec), ...spec.attributes } }, undefined, acksOf(spec));
    return this.#made(response, node, acknowledgement, { class: 'SECRET_KEY', keyType: spec.type });
  }

  async importPublicKeyPem(pem: string, options: KeyOptions & { readonly attributes?: Template } = {}): Promise<Key> {
    const { response, node, acknowledgement } = await this.router.change('IMPORT_PUBLIC_KEY', { key: pem, template: { ...withoutExtractable(templateOf(options)), ...options.attributes } }, undefined, acksOf(options));
    return this.#made(response, node, acknowledgement, { class: 'PUBLIC_KEY' });
  }

  /** Imports a private key given as PEM text (a JS string: the SDK cannot zeroise it) or PKCS#8 DER bytes. */
  async importPrivateKeyPem(pem: string | Uint8Array, options: KeyOptions & { readonly attributes?: Template } = {}): Promise<Key> {
    const { response, node, acknowledgement } = await this.router.change('IMPORT_PRIVATE_KEY', { key: pem, template: { ...templateOf(options), ...options.attributes } }, undefined, acksOf(options));
    return this.#made(response, node, acknowledgement, { class: 'PRIVATE_KEY' });
  }

  /**
   * Stores an X.509 certificate (DER) as a certificate object: public, seen by every crypto user,
   * managed by its owner. A template's subject, issuer or serial number (DER) must be the
   * certificate's own (COFFER_CERT_TEMPLATE_MISMATCH); anything but a DER certificate is
   * COFFER_CERT_VALUE_INVALID. Destroy it as any object (`Key.destroy`). Acknowledged like any
   * state change (`options.acks`).
   */
  async importCertificate(der: Uint8Array, template: CertificateTemplate = {}, options: ChangeOptions = {}): Promise<Key> {
    const { response, node, acknowledgement } = await this.router.change('IMPORT_CERTIFICATE', { certificate: der, template }, undefined, options);
    return this.#made(response, node, acknowledgement, { class: 'CERTIFICATE' });
  }

  /** The certificate objects the user can see that match (findKeys with class CERTIFICATE). */
  async findCertificates(filter: Omit<FindFilter, 'class'> = {}): Promise<Key[]> {
    return this.findKeys({ ...filter, class: 'CERTIFICATE' });
  }

  /** Unwraps `wrapped` with `unwrappingKey` into a new key (default mechanism: see Key.wrap). */
  async unwrapKey(unwrappingKey: Key, wrapped: Uint8Array, template: WireRequest<'UNWRAP_KEY'>['template'], params?: WireMechanismParams, options: ChangeOptions = {}): Promise<Key> {
    const p = params ?? (unwrappingKey.keyType === 'RSA' ? { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' } as const : { mechanism: 'CKM_AES_KEY_WRAP_PAD' } as const);
    const { route, identity } = await keyRoute(unwrappingKey);
    const { response, node, acknowledgement } = await this.router.change('UNWRAP_KEY', { unwrappingHandle: unwrappingKey.handle, wrapped, params: p, template, ...identity }, route, options);
    return this.#made(response, node, acknowledgement, { class: template.class, keyType: template.keyType, curve: template.curve });
  }

  async deriveKey(baseKey: Key, params: WireMechanismParams, template: WireRequest<'DERIVE_KEY'>['template'], options: ChangeOptions = {}): Promise<Key> {
    const { route, identity } = await keyRoute(baseKey);
    const { response, node, acknowledgement } = await this.router.change('DERIVE_KEY', { baseHandle: baseKey.handle, params, template, ...identity }, route, options);
    return this.#made(response, node, acknowledgement, { class: 'SECRET_KEY', keyType: template.keyType });
  }

  /**
   * Copies `key` into a new object the user owns (docs/device.md "Copies"): the same key and
   * attributes; the template may set where it lives (`token`), its label and id, and turn modifiable
   * or destroyable off. A private or secret key is copied only from a session object (a key made for
   * a session, then kept); a token one is COFFER_OBJECT_NOT_COPYABLE. A token copy is acknowledged
   * like any state change (`options.acks`).
   */
  async copyKey(key: Key, template: WireRequest<'COPY_OBJECT'>['template'] = {}, options: ChangeOptions = {}): Promise<Key> {
    const { route, identity } = await keyRoute(key);
    const { response, node, acknowledgement } = await this.router.change('COPY_OBJECT', { handle: key.handle, template, ...identity }, route, options);
    const known = { ...(key.class === undefined ? {} : { class: key.class }), ...(key.keyType === undefined ? {} : { keyType: key.keyType }), curve: key.curve };
    return this.#made(response, node, acknowledgement, known);
  }

  /**
   * Every key the user can see that matches, all pages, read on one node (the primary first). Each
   * key goes only to that node and to the nodes known to hold the same state (docs/sdk.md "Which
   * HSM serves a key"), and names its object's identity in every request.
   */
  async findKeys(filter: FindFilter = {}): Promise<Key[]> {
    const { infos, where } = await this.#find(filter, CLIENT_FIND_PAGE_OBJECTS, true);
    return infos.map((i) => new Key(this, i.handle, { identity: i.identity, ...where }, { class: i.class, keyType: i.keyType, curve: i.curve }));
  }

  /**
   * A Key for a known handle. In a cluster of several nodes it is found (its identity and the nodes
   * holding it) on first use; its type is fetched when a default mechanism needs it. Handles are u64
   * on the wire, so a bigint is taken too; anything but an integer from 1 to 2^53-1 (0 is PKCS#11's
   * invalid handle; larger ones JS numbers cannot hold exactly) fails COFFER_HANDLE_OUT_OF_RANGE here,
   * rather than as a wire-format error at the first call.
   */
  key(handle: number | bigint, known: { readonly class?: ObjectClass; readonly keyType?: KeyType; readonly curve?: Curve } = {}): Key {
    const n = typeof handle === 'bigint' && handle >= 1n && handle <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(handle) : handle;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new CofferError('COFFER_HANDLE_OUT_OF_RANGE', { type: typeof handle });
    return new Key(this, n, this.#links.length === 1 ? {} : undefined, { ...known });
  }

  /** @internal Finds the object `handle` names for a Key made by key() (KeyHost). */
  async locate(handle: number): Promise<{ placement: Placement; info: KeyInfo }> {
    const { infos, where } = await this.#find({}, 1, false, handle);
    const info = infos[0];
    if (info === undefined) throw new CofferError('COFFER_OBJECT_NOT_FOUND', { handle });
    return { placement: { identity: info.identity, ...where }, info };
  }

  /**
   * FIND on one node, every page (or the first only), and where the keys it found may be served: on
   * a relayed cluster every node at or past the journal position of the answer (its first page: a
   * later page was read at or past it); on a solo cluster the nodes known to hold the state it
   * answered from, and pages read at different state positions leave the answering node alone.
   */
  async #find(filter: FindFilter, limit: number, allPages: boolean, handle?: number): Promise<{ infos: KeyInfo[]; where: { fromSeq: bigint } | { nodes: number } }> {
    return this.router.onOneNode(async (link) => {
      const found: KeyInfo[] = [];
      let afterHandle: number | undefined;
      let lineage: Uint8Array | undefined;
      let fromSeq: bigint | undefined;
      let steady = true;
      for (;;) {
        const page = await link.call('FIND', { filter: handle === undefined ? filter : { ...filter, handle }, limit, ...(afterHandle === undefined ? {} : { afterHandle }) });
        steady &&= lineage === undefined || Buffer.compare(lineage, page.objectLineage) === 0;
        lineage ??= page.objectLineage;
        fromSeq ??= page.journalPosition;
        found.push(...page.objects);
        const last = page.objects[page.objects.length - 1];
        if (!allPages || !page.more || last === undefined) break;
        afterHandle = last.handle;
      }
      if (fromSeq !== undefined && link.journalMode === 'relayed') {
        if (fromSeq > link.headSeq) link.headSeq = fromSeq;
        return { infos: found, where: { fromSeq } };
      }
      const nodes = lineage !== undefined && steady ? await this.#nodesAt(link, lineage) : 1 << link.index;
      return { infos: found, where: { nodes } };
    });
  }

  /**
   * The node `origin` and every up node known to have held the state `lineage` names: a node that
   * ever reported that lineage applied the same change sets from the same backup, so a handle read
   * there names the same object on it, or nothing if it was destroyed since (handles are never
   * reused). A node whose lineage is not known yet is asked (STATUS) first.
   */
  async #nodesAt(origin: NodeLink, lineage: Uint8Array): Promise<number> {
    if (this.#links.length === 1) return 1 << origin.index;
    origin.sawLineage(lineage);
    const wanted = origin.lineage;
    let nodes = 1 << origin.index;
    await Promise.all(this.#links.map(async (l) => {
      if (l === origin || l.state !== 'up') return;
      if (l.lineage === '') {
        try {
          l.sawLineage((await l.callPlain('STATUS')).objectLineage);
        } catch {
          return; // a node that cannot answer now is left out of this key's nodes
        }
      }
      if (l.lineage === wanted) nodes |= 1 << l.index;
    }));
    return nodes;
  }

  async random(length: number): Promise<Uint8Array> {
    return (await this.router.idempotent('RANDOM', { length })).bytes;
  }

  async digest(algorithm: DigestName, data: Uint8Array): Promise<Uint8Array> {
    const mechanism = `CKM_${algorithm.replace('-', '')}` as 'CKM_SHA224' | 'CKM_SHA256' | 'CKM_SHA384' | 'CKM_SHA512';
    return (await this.router.idempotent('DIGEST', { params: { mechanism }, data })).digest;
  }

  /** CloudHSM `cluster activate`: ACTIVATE on every node (each must answer; the first failure is thrown). */
  static async activate(options: { readonly endpoints: readonly Endpoint[]; readonly ca: string | readonly string[]; readonly preCoPassword: string; readonly newAdminPassword: string; readonly connectTimeoutMs?: number }): Promise<void> {
    const endpoints = checkEndpoints(options.endpoints);
    const results = await Promise.allSettled(endpoints.map(async (e) => {
      let c: Connection;
      try {
        c = await Connection.connect({ host: e.host, port: e.port, ca: options.ca, connectTimeoutMs: options.connectTimeoutMs ?? CLIENT_CONNECT_TIMEOUT_MS, ...(e.servername === undefined ? {} : { servername: e.servername }) });
      } catch (err) {
        throw connectError(err, e);
      }
      try {
        await withPasswords([options.preCoPassword, options.newAdminPassword], ([pre, pw]) => c.call('ACTIVATE', { preCoPassword: pre as Uint8Array, newPassword: pw as Uint8Array }));
      } finally {
        c.close();
      }
    }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** Closes every connection and stops probing; stored passwords are zeroised. */
  async close(): Promise<void> {
    for (const l of this.#links) l.close();
    return Promise.resolve();
  }

  #made(made: { readonly handle: number; readonly identity: Uint8Array }, node: number, acknowledgement: Acknowledgement, known: { class?: ObjectClass; keyType?: KeyType; curve?: Curve | undefined }): Key {
    return new Key(this, made.handle, this.#placementOfNew(made.identity, node, acknowledgement.position), known, acknowledgement);
  }

  /** Where a key this client made lives (docs/sdk.md "Which HSM serves a key"): on a relayed cluster
   * every node at or past the entry that made it; else (solo) the node that made it alone. */
  #placementOfNew(identity: Uint8Array, node: number, position: JournalPosition | undefined): Placement {
    if (position !== undefined && this.#links[node]?.journalMode === 'relayed') return { identity, fromSeq: position.seq };
    return this.#links.length > 1 ? { identity, nodes: 1 << node } : { identity };
  }
}

/** Where a call that makes a key from `key` must go (where `key` lives), and its identity field. */
async function keyRoute(key: Key): Promise<{ route: Route; identity: { identity?: Uint8Array } }> {
  const { route, ref } = await key.where();
  return { route, identity: ref.identity === undefined ? {} : { identity: ref.identity } };
}

function acksOf(o: { readonly acks?: number }): ChangeOptions {
  return o.acks === undefined ? {} : { acks: o.acks };
}

function templateOf(o: KeyOptions): Template {
  return {
    token: o.token ?? true, extractable: o.extractable ?? false,
    ...(o.label === undefined ? {} : { label: o.label }), ...(o.id === undefined ? {} : { id: o.id }),
  };
}
function withoutExtractable(t: Template): Template {
  const { extractable: _e, ...rest } = t;
  return rest;
}
