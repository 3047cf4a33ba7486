// The device's object table (docs/architecture.md §4): every key the HSM holds, who owns it, who it is
// shared with, what it may do, and the checks that stand between a caller and a key. PKCS#11
// v2.40 §4 is the object model; AWS CloudHSM's rules decide roles, sharing and quorum.
//
// Token objects are records in the store (namespace 'object', codec formats/object_record.ts);
// the table keeps an index of them in memory, loaded when it is opened, and builds each KeyObject
// the first time the key is used. A crypto call (`use`, `sign`, …) is a map lookup and a few
// attribute checks: O(1), no store access. Every state change is one store transaction, applied
// to the index only after the transaction committed, so a failing call changes nothing.
//
// Handles are cluster-wide. Token-object handles come from a counter persisted with the objects
// (namespace 'config'): every HSM of a cluster applies the same changes in the same order, so the
// same counter hands out the same handle everywhere, and a handle is never reused. Session objects
// (token=false) live in memory only, belong to one session, get handles from a disjoint range
// (≥ SESSION_HANDLE_BASE) and go when their session does (dropSessionObjects).
//
// Decisions (for docs/): admins list and read the metadata of every token object and may change
// `trusted` on any key, nothing else (CloudHSM); session objects are seen only by their owner and
// cannot be shared; plaintext private-key import and plaintext export of a non-sensitive,
// extractable key are allowed outside FIPS mode only; a key with a quorum value ≥ 2 is refused
// when no quorum gate is wired (fail closed).

import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { fail } from '../../errors.js';
import { assert } from '../../assert.js';
import { SecretBytes } from '../../crypto/secret_bytes.js';
import { kcvAes, kcvPublicKey, kcvSecret } from '../../crypto/kcv.js';
import { decodeObjectRecord, encodeObjectRecord, type ObjectRecord } from '../../formats/object_record.js';
import { CRYPTO_INPUT_BYTES_MAX, OBJECTS_MAX, SESSION_OBJECTS_MAX, SHAREES_MAX, WRAPPED_KEY_BYTES_MAX } from '../../formats/limits.js';
import * as mech from '../mechanisms/mechanisms.js';
import { applyAttributeChange, resolveTemplate, type ObjectTemplate, type Origin, type ResolvedTemplate, type SettableAttribute } from './attributes.js';
import type { RecordStore } from '../store/store_port.js';
import type { Actor, BooleanAttributes, Curve, Handle, KeyFunction, KeyType, MechanismParams, Mode, ObjectClass } from '../types.js';

export type { ObjectTemplate } from './attributes.js';
export type KeyMaterial = mech.KeyMaterial;

/** First session-object handle; token handles stay below it (2^40 ≈ 10^12 objects ever created). */
export const SESSION_HANDLE_BASE = 2 ** 40;
const OBJECT_NS = 'object';
const CONFIG_NS = 'config';
const COUNTER_ID = 'objects.next-handle';

export type KeyQuorumService = 'key-management' | 'key-usage';
/** Throws (COFFER_QUORUM_REQUIRED or a token error) unless `actor` holds an approval of `m`. */
export type KeyQuorumGate = (actor: Actor, service: KeyQuorumService, m: number, handle: Handle) => void;

export interface ObjectTableOptions {
  readonly store: RecordStore;
  readonly mode: Mode;
  /** Is this (lower-case) user id a crypto user? Supplied by the facade; used to check sharees. */
  readonly isCryptoUser: (userId: string) => boolean;
  /** Called before management or use of a key whose quorum value is ≥ 2. Absent: such keys are refused. */
  readonly quorumGate?: KeyQuorumGate;
}

/** What anyone allowed to see an object may read about it: never key material. */
export interface ObjectInfo {
  readonly handle: Handle;
  readonly class: ObjectClass;
  readonly keyType: KeyType;
  readonly bits: number;
  readonly curve?: Curve;
  readonly label: string;
  readonly id: Uint8Array;
  readonly attributes: Readonly<BooleanAttributes>;
  readonly kcv: Uint8Array;
  readonly owner: string;
  readonly sharees: readonly string[];
  readonly manageKeyQuorum: number;
  readonly useKeyQuorum: number;
}

/** find() filter: every given field must match. */
export interface ObjectFilter extends Partial<BooleanAttributes> {
  readonly handle?: Handle;
  readonly label?: string;
  readonly id?: Uint8Array;
  readonly class?: ObjectClass;
  readonly keyType?: KeyType;
}

export interface KeyPairHandles {
  readonly publicHandle: Handle;
  readonly privateHandle: Handle;
}

export type UnwrapTemplate = ObjectTemplate & { readonly class: ObjectClass; readonly keyType: KeyType; readonly curve?: Curve };
export type DeriveTemplate = ObjectTemplate & { readonly keyType: 'AES' | 'GENERIC_SECRET'; readonly bits: number };

/** One object in the index. `record` is replaced on change; `material` is built on first use. */
interface Entry {
  record: ObjectRecord;
  readonly sessionId?: string;
  material?: mech.KeyMaterial;
}

const GENERATED: Origin = { kind: 'generated' };
const IMPORTED: Origin = { kind: 'imported' };
const FILTER_KEYS = new Set(['handle', 'label', 'id', 'class', 'keyType', 'token', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive', 'trusted', 'wrapWithTrusted', 'local', 'neverExtractable', 'alwaysSensitive', 'modifiable', 'destroyable']);

function recordId(handle: Handle): string {
  return handle.toString().padStart(16, '0'); // ascending id order = handle order
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export class ObjectTable {
  readonly #store: RecordStore;
  readonly #mode: Mode;
  readonly #isCryptoUser: (userId: string) => boolean;
  readonly #quorumGate: KeyQuorumGate | undefined;
  readonly #tokens = new Map<Handle, Entry>();
  readonly #sessions = new Map<Handle, Entry>();
  #nextTokenHandle = 1;
  #nextSessionHandle = SESSION_HANDLE_BASE;

  constructor(options: ObjectTableOptions) {
    this.#store = options.store;
    this.#mode = options.mode;
    this.#isCryptoUser = options.isCryptoUser;
    this.#quorumGate = options.quorumGate;
    this.#load();
  }

  #load(): void {
    let highest = 0;
    try {
      for (const [id, bytes] of this.#store.list(OBJECT_NS)) {
        let record: ObjectRecord;
        try {
          record = decodeObjectRecord(bytes);
        } finally {
          bytes.fill(0);
        }
        this.#tokens.set(record.handle, { record });
        if (recordId(record.handle) !== id || !record.attributes.token || record.handle >= SESSION_HANDLE_BASE) fail('COFFER_FORMAT_MALFORMED', { field: 'object record id' });
        highest = Math.max(highest, record.handle);
      }
      this.#nextTokenHandle = this.#loadCounter();
      if (this.#nextTokenHandle <= highest) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
    } catch (e) {
      for (const entry of this.#tokens.values()) entry.record.material.destroy();
      this.#tokens.clear();
      throw e;
    }
  }

  #loadCounter(): number {
    const counter = this.#store.get(CONFIG_NS, COUNTER_ID);
    if (counter === undefined) return 1; // 0 is CK_INVALID_HANDLE
    if (counter.length !== 8) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
    const next = new DataView(counter.buffer, counter.byteOffset, 8).getBigUint64(0);
    if (next < 1n || next > BigInt(SESSION_HANDLE_BASE)) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
    return Number(next);
  }

  // ── access checks ──────────────────────────────────────────────────────────────────────────

  #requireCryptoUser(actor: Actor): void {
    if (actor.role !== 'crypto-user') fail('COFFER_PERMISSION_DENIED');
  }

  /** The entry if `actor` (a crypto user) owns it or it is shared with them; else NOT_FOUND. */
  #visible(actor: Actor, handle: Handle): Entry {
    this.#requireCryptoUser(actor);
    const e = this.#tokens.get(handle) ?? this.#sessions.get(handle);
    if (e !== undefined && (e.record.owner === actor.userId || e.record.sharees.includes(actor.userId))) return e;
    return fail('COFFER_OBJECT_NOT_FOUND');
  }

  /** The entry if `actor` owns it; a sharee learns it exists but may not manage it. */
  #owned(actor: Actor, handle: Handle): Entry {
    const e = this.#visible(actor, handle);
    if (e.record.owner !== actor.userId) fail('COFFER_PERMISSION_DENIED');
    return e;
  }

  /** Entries whose metadata `actor` may read: a crypto user's visible ones, every token object for an admin. */
  *#readable(actor: Actor): Generator<Entry> {
    if (actor.role === 'admin') {
      yield* this.#tokens.values();
      return;
    }
    this.#requireCryptoUser(actor);
    for (const map of [this.#tokens, this.#sessions]) {
      for (const e of map.values()) if (e.record.owner === actor.userId || e.record.sharees.includes(actor.userId)) yield e;
    }
  }

  #gate(actor: Actor, service: KeyQuorumService, e: Entry): void {
    const m = service === 'key-management' ? e.record.manageKeyQuorum : e.record.useKeyQuorum;
    if (m < 2) return;
    if (this.#quorumGate === undefined) fail('COFFER_QUORUM_REQUIRED');
    this.#quorumGate(actor, service, m, e.record.handle);
  }

  #material(e: Entry): mech.KeyMaterial {
    if (e.material === undefined) {
      const r = e.record;
      e.material = r.material.use((bytes) => mech.materialFromBytes(r.class, r.keyType, bytes, r.curve));
    }
    return e.material;
  }

  /** Every check for using key `handle` for `fn` with `params`, except the quorum gate. */
  #usable(actor: Actor, handle: Handle, fn: KeyFunction, params: MechanismParams, derived?: mech.DeriveTemplate): { entry: Entry; key: mech.KeyMaterial } {
    const entry = this.#visible(actor, handle);
    if (!entry.record.attributes[fn]) fail('COFFER_KEY_FUNCTION_NOT_PERMITTED', { function: fn });
    const key = this.#material(entry);
    mech.checkMechanism(this.#mode, params, fn, key, derived);
    return { entry, key };
  }

  // ── use ────────────────────────────────────────────────────────────────────────────────────

  /** The key after every check: role, ownership or share, function attribute, mechanism and FIPS, quorum. */
  use(actor: Actor, handle: Handle, fn: KeyFunction, params: MechanismParams): mech.KeyMaterial {
    const { entry, key } = this.#usable(actor, handle, fn, params);
    this.#gate(actor, 'key-usage', entry);
    return key;
  }

  sign(actor: Actor, handle: Handle, params: MechanismParams, data: Uint8Array): Uint8Array {
    checkInput(data);
    return mech.sign(params, this.use(actor, handle, 'sign', params), data);
  }

  async signAsync(actor: Actor, handle: Handle, params: MechanismParams, data: Uint8Array): Promise<Uint8Array> {
    checkInput(data);
    return mech.signAsync(params, this.use(actor, handle, 'sign', params), data);
  }

  verify(actor: Actor, handle: Handle, params: MechanismParams, data: Uint8Array, signature: Uint8Array): boolean {
    checkInput(data);
    checkInput(signature);
    return mech.verify(params, this.use(actor, handle, 'verify', params), data, signature);
  }

  async verifyAsync(actor: Actor, handle: Handle, params: MechanismParams, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    checkInput(data);
    checkInput(signature);
    return mech.verifyAsync(params, this.use(actor, handle, 'verify', params), data, signature);
  }

  encrypt(actor: Actor, handle: Handle, params: MechanismParams, data: Uint8Array): Uint8Array {
    checkInput(data);
    return mech.encrypt(params, this.use(actor, handle, 'encrypt', params), data);
  }

  decrypt(actor: Actor, handle: Handle, params: MechanismParams, data: Uint8Array): Uint8Array {
    checkInput(data);
    return mech.decrypt(params, this.use(actor, handle, 'decrypt', params), data);
  }

  // ── creation ───────────────────────────────────────────────────────────────────────────────

  /** Generates a secret key on the device (local=true). */
  generateKey(actor: Actor, spec: mech.SecretKeySpec, template: ObjectTemplate = {}): Handle {
    this.#requireCryptoUser(actor);
    const resolved = resolveTemplate('SECRET_KEY', spec.keyType, template, GENERATED);
    mech.checkKeyGen(this.#mode, spec);
    this.#checkCapacity([resolved]);
    const [handle] = this.#insert(actor, [[mech.generateSecretKey(spec), resolved]]);
    assert(handle !== undefined, 'one object inserted');
    return handle;
  }

  /** Generates a key pair on the device; both objects land in one transaction (public first). */
  generateKeyPair(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): KeyPairHandles {
    const templates = this.#checkKeyPair(actor, spec, publicTemplate, privateTemplate);
    return this.#insertPair(actor, mech.generateKeyPair(spec), templates);
  }

  /**
   * As generateKeyPair, with the generation on libuv's thread pool (RSA-4096 takes seconds). The
   * checks run before and the capacity check again after, since the table may change meanwhile.
   */
  async generateKeyPairAsync(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): Promise<KeyPairHandles> {
    const templates = this.#checkKeyPair(actor, spec, publicTemplate, privateTemplate);
    const pair = await mech.generateKeyPairAsync(spec);
    this.#checkCapacity(templates);
    return this.#insertPair(actor, pair, templates);
  }

  #checkKeyPair(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate, privateTemplate: ObjectTemplate): [ResolvedTemplate, ResolvedTemplate] {
    this.#requireCryptoUser(actor);
    const pub = resolveTemplate('PUBLIC_KEY', spec.keyType, publicTemplate, GENERATED);
    const priv = resolveTemplate('PRIVATE_KEY', spec.keyType, privateTemplate, GENERATED);
    mech.checkKeyGen(this.#mode, spec);
    this.#checkCapacity([pub, priv]);
    return [pub, priv];
  }

  #insertPair(actor: Actor, pair: { publicKey: mech.KeyMaterial; privateKey: mech.KeyMaterial }, [pub, priv]: [ResolvedTemplate, ResolvedTemplate]): KeyPairHandles {
    const [publicHandle, privateHandle] = this.#insert(actor, [[pair.publicKey, pub], [pair.privateKey, priv]]);
    assert(publicHandle !== undefined && privateHandle !== undefined, 'two objects inserted');
    return { publicHandle, privateHandle };
  }

  /** Imports a public key from SPKI DER or a PEM "PUBLIC KEY" block. */
  importPublicKey(actor: Actor, key: Uint8Array | string, template: ObjectTemplate = {}): Handle {
    this.#requireCryptoUser(actor);
    const der = typeof key === 'string' ? pemBody(key, 'PUBLIC KEY') : key;
    const parsed = parseKey(() => createPublicKey({ key: bufferView(der), format: 'der', type: 'spki' }));
    return this.#import(actor, 'PUBLIC_KEY', parsed, der, template);
  }

  /**
   * Imports a private key in plaintext from unencrypted PKCS#8 DER or a PEM "PRIVATE KEY" block
   * (CloudHSM CLI `key import pem`). Refused in FIPS mode: a FIPS module takes keys only wrapped.
   * The key gets local, always-sensitive and never-extractable false.
   */
  importPrivateKey(actor: Actor, key: Uint8Array | string, template: ObjectTemplate = {}): Handle {
    this.#requireCryptoUser(actor);
    if (this.#mode === 'FIPS') fail('COFFER_FIPS_REFUSED', { operation: 'plaintext key import' });
    const der = typeof key === 'string' ? pemBody(key, 'PRIVATE KEY') : key;
    try {
      const parsed = parseKey(() => createPrivateKey({ key: bufferView(der), format: 'der', type: 'pkcs8' }));
      return this.#import(actor, 'PRIVATE_KEY', parsed, der, template);
    } finally {
      if (typeof key === 'string') der.fill(0);
    }
  }

  #import(actor: Actor, cls: 'PUBLIC_KEY' | 'PRIVATE_KEY', parsed: KeyObject, der: Uint8Array, template: ObjectTemplate): Handle {
    const keyType = keyTypeOf(parsed);
    const resolved = resolveTemplate(cls, keyType, template, IMPORTED);
    const material = mech.materialFromBytes(cls, keyType, der);
    mech.checkKeyMaterial(this.#mode, material); // FIPS: the imported key's size and curve
    this.#checkCapacity([resolved]);
    const [handle] = this.#insert(actor, [[material, resolved]]);
    assert(handle !== undefined, 'one object inserted');
    return handle;
  }

  #checkCapacity(resolved: readonly ResolvedTemplate[]): void {
    const token = resolved.filter((r) => r.attributes.token).length;
    if (this.#tokens.size + token > OBJECTS_MAX) fail('COFFER_STORE_FULL', { max: OBJECTS_MAX });
    if (this.#sessions.size + resolved.length - token > SESSION_OBJECTS_MAX) fail('COFFER_STORE_FULL', { max: SESSION_OBJECTS_MAX });
    if (this.#nextTokenHandle + token > SESSION_HANDLE_BASE) fail('COFFER_STORE_FULL', { reason: 'handle space' });
  }

  /** Creates records for new keys owned by `actor`, allocates handles and commits them together. */
  #insert(actor: Actor, items: readonly (readonly [mech.KeyMaterial, ResolvedTemplate])[]): Handle[] {
    let nextToken = this.#nextTokenHandle;
    let nextSession = this.#nextSessionHandle;
    const entries: Entry[] = [];
    try {
      for (const [material, resolved] of items) {
        const handle = resolved.attributes.token ? nextToken++ : nextSession++;
        const record = newRecord(handle, actor.userId, material, resolved);
        const base = { record, material };
        entries.push(resolved.sessionId === undefined ? base : { ...base, sessionId: resolved.sessionId });
      }
      this.#commit(entries, [], nextToken);
    } catch (e) {
      for (const entry of entries) entry.record.material.destroy();
      throw e;
    }
    this.#nextSessionHandle = nextSession;
    return entries.map((e) => e.record.handle);
  }

  /**
   * The one place state changes: writes token records (and the handle counter) in one store
   * transaction, then, only once it committed, updates the index. Session entries touch memory only.
   */
  #commit(puts: readonly Entry[], deletes: readonly Entry[], nextTokenHandle: number): void {
    const tokenPuts = puts.filter((e) => e.record.attributes.token);
    const tokenDeletes = deletes.filter((e) => e.record.attributes.token);
    const counterMoved = nextTokenHandle !== this.#nextTokenHandle;
    if (tokenPuts.length + tokenDeletes.length > 0 || counterMoved) {
      const encoded = tokenPuts.map((e) => [recordId(e.record.handle), encodeObjectRecord(e.record)] as const);
      try {
        this.#store.transaction((tx) => {
          for (const [id, bytes] of encoded) tx.put(OBJECT_NS, id, bytes);
          for (const e of tokenDeletes) tx.delete(OBJECT_NS, recordId(e.record.handle));
          if (counterMoved) tx.put(CONFIG_NS, COUNTER_ID, u64(nextTokenHandle));
        });
      } finally {
        for (const [, bytes] of encoded) bytes.fill(0);
      }
    }
    for (const e of puts) (e.record.attributes.token ? this.#tokens : this.#sessions).set(e.record.handle, e);
    for (const e of deletes) {
      (e.record.attributes.token ? this.#tokens : this.#sessions).delete(e.record.handle);
      e.record.material.destroy();
      delete e.material;
    }
    this.#nextTokenHandle = nextTokenHandle;
  }

  /** Replaces an entry's record (same handle, same material) through #commit. */
  #update(e: Entry, change: Partial<Pick<ObjectRecord, 'attributes' | 'label' | 'id' | 'sharees'>>): void {
    const next: Entry = { ...e, record: { ...e.record, ...change } };
    this.#commit([next], [], this.#nextTokenHandle);
  }

  // ── wrap, unwrap, derive ───────────────────────────────────────────────────────────────────

  /**
   * Wraps `targetHandle` (owned by `actor`) under `wrappingHandle` (owned or shared, wrap=true).
   * Refused: public keys and wrap-with-trusted keys under an untrusted key (KEY_NOT_WRAPPABLE),
   * non-extractable keys (KEY_UNEXTRACTABLE). Quorum: the target's management, the wrapping key's usage.
   */
  wrapKey(actor: Actor, wrappingHandle: Handle, targetHandle: Handle, params: MechanismParams): Uint8Array {
    const { entry: wrapping, key: wrappingKey } = this.#usable(actor, wrappingHandle, 'wrap', params);
    const target = this.#owned(actor, targetHandle);
    if (target.record.class === 'PUBLIC_KEY') fail('COFFER_KEY_NOT_WRAPPABLE', { reason: 'public key' });
    if (!target.record.attributes.extractable) fail('COFFER_KEY_UNEXTRACTABLE');
    // PKCS#11 v2.40 §4.9/4.10 CKA_WRAP_WITH_TRUSTED: only a wrapping key with CKA_TRUSTED may wrap it.
    if (target.record.attributes.wrapWithTrusted && !wrapping.record.attributes.trusted) fail('COFFER_KEY_NOT_WRAPPABLE', { reason: 'wrap with trusted' });
    const targetKey = this.#material(target);
    this.#gate(actor, 'key-management', target);
    this.#gate(actor, 'key-usage', wrapping);
    return mech.wrapKey(params, wrappingKey, targetKey);
  }

  /** Unwraps `wrapped` with `unwrappingHandle` into a new object of `template` (local=false). */
  unwrapKey(actor: Actor, unwrappingHandle: Handle, wrapped: Uint8Array, params: MechanismParams, template: UnwrapTemplate): Handle {
    this.#requireCryptoUser(actor);
    if (wrapped.length > WRAPPED_KEY_BYTES_MAX) fail('COFFER_DATA_LEN_RANGE', { max: WRAPPED_KEY_BYTES_MAX });
    const { class: cls, keyType, curve, ...attrs } = template;
    if (cls === 'PUBLIC_KEY') fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls });
    const resolved = resolveTemplate(cls, keyType, attrs, { kind: 'unwrapped' });
    const { entry, key } = this.#usable(actor, unwrappingHandle, 'unwrap', params);
    this.#checkCapacity([resolved]);
    this.#gate(actor, 'key-usage', entry);
    const material = mech.unwrapKey(params, key, wrapped, curve === undefined ? { class: cls, keyType } : { class: cls, keyType, curve });
    mech.checkKeyMaterial(this.#mode, material); // FIPS: the unwrapped key's size and curve
    const [handle] = this.#insert(actor, [[material, resolved]]);
    assert(handle !== undefined, 'one object inserted');
    return handle;
  }

  /** Derives a secret key from `baseHandle` (derive=true); always-sensitive and never-extractable inherit. */
  deriveKey(actor: Actor, baseHandle: Handle, params: MechanismParams, template: DeriveTemplate): Handle {
    this.#requireCryptoUser(actor);
    const { keyType, bits, ...attrs } = template;
    const { entry, key } = this.#usable(actor, baseHandle, 'derive', params, { keyType, bits });
    const resolved = resolveTemplate('SECRET_KEY', keyType, attrs, { kind: 'derived', base: entry.record.attributes });
    this.#checkCapacity([resolved]);
    this.#gate(actor, 'key-usage', entry);
    const [handle] = this.#insert(actor, [[mech.deriveKey(params, key, { keyType, bits }), resolved]]);
    assert(handle !== undefined, 'one object inserted');
    return handle;
  }

  // ── management ─────────────────────────────────────────────────────────────────────────────

  /** Metadata of the objects `actor` may see that match `filter`, by ascending handle. */
  find(actor: Actor, filter: ObjectFilter = {}): ObjectInfo[] {
    for (const key of Object.keys(filter)) if (!FILTER_KEYS.has(key)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
    const out: ObjectInfo[] = [];
    for (const e of this.#readable(actor)) if (matches(e.record, filter)) out.push(info(e.record));
    return out.sort((a, b) => a.handle - b.handle);
  }

  getAttributes(actor: Actor, handle: Handle): ObjectInfo {
    const e = actor.role === 'admin' ? this.#tokens.get(handle) : this.#visible(actor, handle);
    return info(e?.record ?? fail('COFFER_OBJECT_NOT_FOUND'));
  }

  /**
   * Changes one attribute (attributes.ts has the rules). The owner changes anything settable but
   * `trusted`; an admin changes `trusted` only, on any token object (CloudHSM's rule).
   */
  setAttribute(actor: Actor, handle: Handle, name: SettableAttribute, value: boolean | string | Uint8Array): void {
    let e: Entry;
    if (actor.role === 'admin') e = this.#tokens.get(handle) ?? fail('COFFER_OBJECT_NOT_FOUND');
    else e = this.#owned(actor, handle);
    const r = e.record;
    const next = applyAttributeChange(r.class, r.keyType, r, name, value, actor.role === 'admin' ? 'admin' : 'owner');
    this.#gate(actor, 'key-management', e);
    this.#update(e, { attributes: next.attributes, label: next.label, id: next.id });
  }

  /** Shares a token object with another crypto user (owner only; at most SHAREES_MAX). Idempotent. */
  share(actor: Actor, handle: Handle, userName: string): void {
    const e = this.#owned(actor, handle);
    const user = userName.toLowerCase();
    if (!e.record.attributes.token) fail('COFFER_SESSION_OBJECT_NOT_SHAREABLE');
    if (user === e.record.owner) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'sharee', reason: 'owner' });
    if (!this.#isCryptoUser(user)) fail('COFFER_USER_NOT_FOUND', { reason: 'not a crypto user' });
    if (e.record.sharees.includes(user)) return;
    if (e.record.sharees.length >= SHAREES_MAX) fail('COFFER_SHARE_LIMIT', { max: SHAREES_MAX });
    this.#gate(actor, 'key-management', e);
    this.#update(e, { sharees: [...e.record.sharees, user] });
  }

  /** Stops sharing with `userName` (owner only). Idempotent. */
  unshare(actor: Actor, handle: Handle, userName: string): void {
    const e = this.#owned(actor, handle);
    const user = userName.toLowerCase();
    if (!e.record.sharees.includes(user)) return;
    this.#gate(actor, 'key-management', e);
    this.#update(e, { sharees: e.record.sharees.filter((s) => s !== user) });
  }

  /** Destroys an object (owner only; destroyable=true). */
  destroy(actor: Actor, handle: Handle): void {
    const e = this.#owned(actor, handle);
    if (!e.record.attributes.destroyable) fail('COFFER_OBJECT_NOT_DESTROYABLE');
    this.#gate(actor, 'key-management', e);
    this.#commit([], [e], this.#nextTokenHandle);
  }

  /** SPKI PEM of a public key, or of the public half of a private key. */
  exportPublic(actor: Actor, handle: Handle): string {
    const e = this.#visible(actor, handle);
    if (e.record.class === 'SECRET_KEY') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: e.record.class });
    const key = this.#material(e);
    const pub = e.record.class === 'PUBLIC_KEY' ? key : mech.publicFromPrivate(key);
    return pub.key.export({ type: 'spki', format: 'pem' }).toString();
  }

  /**
   * The plaintext value of a secret or private key (raw bytes, or PKCS#8 DER): PKCS#11's
   * CKA_VALUE. Owner only; refused for sensitive or non-extractable keys (ATTRIBUTE_SENSITIVE)
   * and always in FIPS mode. The caller destroys the result.
   */
  exportPlaintext(actor: Actor, handle: Handle): SecretBytes {
    const e = this.#owned(actor, handle);
    if (this.#mode === 'FIPS') fail('COFFER_FIPS_REFUSED', { operation: 'plaintext key export' });
    if (e.record.class === 'PUBLIC_KEY') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: e.record.class });
    if (e.record.attributes.sensitive || !e.record.attributes.extractable) fail('COFFER_ATTRIBUTE_SENSITIVE');
    this.#gate(actor, 'key-management', e);
    return e.record.material.use((bytes) => SecretBytes.copyOf(bytes));
  }

  /** Drops every session object of `sessionId` (on logout or session close); returns how many. */
  dropSessionObjects(sessionId: string): number {
    const gone = [...this.#sessions.values()].filter((e) => e.sessionId === sessionId);
    this.#commit([], gone, this.#nextTokenHandle);
    return gone.length;
  }

  /** Token objects owned by `userId` (a user who owns any cannot be deleted). */
  countOwnedBy(userId: string): number {
    let n = 0;
    for (const e of this.#tokens.values()) if (e.record.owner === userId) n++;
    return n;
  }

  /** Token objects shared with `userId`. */
  countSharedWith(userId: string): number {
    let n = 0;
    for (const e of this.#tokens.values()) if (e.record.sharees.includes(userId)) n++;
    return n;
  }

  get tokenObjectCount(): number {
    return this.#tokens.size;
  }

  get sessionObjectCount(): number {
    return this.#sessions.size;
  }

  /**
   * SHA-256 over a canonical serialisation of every token object and the handle counter: two
   * tables that applied the same changes agree, and any change to any object changes it. The
   * records include key material, so this digest is a fingerprint of secrets — SHA-256 keeps them
   * out of reach, but treat it like a KCV, not like public data.
   */
  stateDigest(): Uint8Array {
    const h = createHash('sha256');
    h.update('coffer object table v1\0');
    h.update(u64(this.#nextTokenHandle));
    for (const handle of [...this.#tokens.keys()].sort((a, b) => a - b)) {
      const e = this.#tokens.get(handle);
      assert(e !== undefined, 'handle from the map');
      const bytes = encodeObjectRecord(e.record);
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, bytes.length);
      h.update(length);
      h.update(bytes);
      bytes.fill(0);
    }
    return new Uint8Array(h.digest());
  }
}

// ── helpers ──────────────────────────────────────────────────────────────────────────────────

function checkInput(data: Uint8Array): void {
  if (data.length > CRYPTO_INPUT_BYTES_MAX) fail('COFFER_DATA_LEN_RANGE', { max: CRYPTO_INPUT_BYTES_MAX });
}

function newRecord(handle: Handle, owner: string, material: mech.KeyMaterial, resolved: ResolvedTemplate): ObjectRecord {
  const bytes = mech.materialToBytes(material);
  let secret: SecretBytes;
  try {
    secret = SecretBytes.copyOf(bytes);
  } finally {
    bytes.fill(0);
  }
  const base = {
    handle, class: material.class, keyType: material.keyType, bits: material.bits,
    attributes: resolved.attributes, manageKeyQuorum: resolved.manageKeyQuorum, useKeyQuorum: resolved.useKeyQuorum,
    owner, sharees: [], label: resolved.label, id: resolved.id, kcv: kcvOf(material), material: secret,
  };
  return material.curve === undefined ? base : { ...base, curve: material.curve };
}

/** CloudHSM's KCV conventions (crypto/kcv.ts): AES-ECB of a zero block, SHA-1 of the SPKI, PKCS#11 for generic secrets. */
function kcvOf(material: mech.KeyMaterial): Uint8Array {
  if (material.keyType === 'AES') return kcvAes(material.key);
  if (material.keyType === 'GENERIC_SECRET') return kcvSecret(material.key);
  return kcvPublicKey(material.key);
}

function info(r: ObjectRecord): ObjectInfo {
  const base = {
    handle: r.handle, class: r.class, keyType: r.keyType, bits: r.bits, label: r.label, id: r.id.slice(),
    attributes: Object.freeze({ ...r.attributes }), kcv: r.kcv.slice(), owner: r.owner, sharees: [...r.sharees],
    manageKeyQuorum: r.manageKeyQuorum, useKeyQuorum: r.useKeyQuorum,
  };
  return r.curve === undefined ? base : { ...base, curve: r.curve };
}

function matches(r: ObjectRecord, f: ObjectFilter): boolean {
  if (f.handle !== undefined && f.handle !== r.handle) return false;
  if (f.label !== undefined && f.label !== r.label) return false;
  if (f.id !== undefined && Buffer.compare(f.id, r.id) !== 0) return false;
  if (f.class !== undefined && f.class !== r.class) return false;
  if (f.keyType !== undefined && f.keyType !== r.keyType) return false;
  for (const [name, value] of Object.entries(f)) {
    if (typeof value === 'boolean' && r.attributes[name as keyof BooleanAttributes] !== value) return false;
  }
  return true;
}

/** The body of the first PEM block of `label`, as DER. Anything else is DATA_INVALID. */
function pemBody(pem: string, label: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (m?.[1] === undefined) fail('COFFER_DATA_INVALID', { expected: `PEM ${label}` });
  const decoded = Buffer.from(m[1].replace(/\s+/g, ''), 'base64'); // may sit in Node's shared pool
  const der = new Uint8Array(new ArrayBuffer(decoded.length));
  der.set(decoded);
  decoded.fill(0);
  return der;
}

/** A Buffer over the same bytes (no copy, so no stray copy of a private key in Node's pool). */
function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parseKey(parse: () => KeyObject): KeyObject {
  try {
    return parse();
  } catch {
    return fail('COFFER_DATA_INVALID', { expected: 'a DER key' });
  }
}

/** The key type of a parsed SPKI or PKCS#8 key; materialFromBytes then checks size and curve. */
function keyTypeOf(key: KeyObject): KeyType {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RSA';
    case 'ec':
      return 'EC';
    case 'ed25519':
      return 'EC_EDWARDS';
    default:
      return fail('COFFER_DATA_INVALID', { expected: 'an RSA, EC or Ed25519 key' });
  }
}
