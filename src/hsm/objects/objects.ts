// The device's object table (docs/architecture.md §4): every key the HSM holds, who owns it, who it is
// shared with, what it may do, and the checks that stand between a caller and a key. PKCS#11
// v2.40 §4 is the object model; AWS CloudHSM's rules decide roles, sharing and quorum.
//
// Token objects are records in the store (namespace 'object', codec formats/object_record.ts);
// session objects are volatile records (namespace 'session-object'). The table keeps an index of
// both in memory and builds each KeyObject the first time the key is used, so a crypto call (`use`,
// `sign`, …) is a map lookup and a few attribute checks: O(1), no store access.
//
// State changes go through the device's one door (src/hsm/state/): an operation decides against the
// index — checks, handles, generated key material — and submits the change sets; `apply` commits
// them and tells this table (a StateView) what changed, and only then does the index move. A
// failing operation changes nothing. Token objects change in cluster-wide change sets, session
// objects in local ones; a key pair with one half of each gives one of each.
//
// Handles are cluster-wide. Token-object handles come from a counter persisted with the objects
// (namespace 'config'): every HSM of a cluster applies the same change sets in the same order, so
// the same handle names the same object everywhere, and a handle is never reused. Session objects
// (token=false) belong to one session and one application scope (a data-plane connection), get
// handles from a disjoint range (≥ SESSION_HANDLE_BASE) and go when their session does.
//
// Every object has an identity fixed at creation (objectIdentity): a request that names a handle
// and an identity is refused with COFFER_OBJECT_MISMATCH by a table whose object there is another.
//
// Decisions (docs/device.md): admins list and read the metadata of every token object and may
// change `trusted` on any key, nothing else (CloudHSM); every crypto user sees and may use every
// token public key (CloudHSM's `key list` shows "all public keys in the cluster"), while only its
// owner manages it; session objects are seen only by their owner inside their scope and cannot be
// shared; plaintext private-key import and plaintext export of a non-sensitive, extractable key are
// allowed outside FIPS mode only; a key with a quorum value ≥ 2 is refused when no quorum gate is
// wired (fail closed).

import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { fail } from '../../errors.js';
import { assert } from '../../assert.js';
import { SecretBytes, constantTimeEqual } from '../../crypto/secret_bytes.js';
import { kcvAes, kcvPublicKey, kcvSecret } from '../../crypto/kcv.js';
import type { ChangeKind, ChangeSet, RecordOp } from '../../formats/change_set.js';
import {
  OBJECT_CONFIG_NAMESPACE, OBJECT_NAMESPACE, decodeObjectRecord, decodeSessionObjectRecord, encodeObjectRecord, encodeSessionObjectRecord, objectIdentity, type ObjectRecord,
} from '../../formats/object_record.js';
import { CRYPTO_CIPHERTEXT_BYTES_MAX, CRYPTO_INPUT_BYTES_MAX, OBJECTS_MAX, SESSION_OBJECTS_MAX, SHAREES_MAX, WRAPPED_KEY_BYTES_MAX } from '../../formats/limits.js';
import * as mech from '../mechanisms/mechanisms.js';
import { applyAttributeChange, resolveTemplate, type ObjectTemplate, type Origin, type ResolvedTemplate, type SettableAttribute } from './attributes.js';
import { SESSION_OBJECT_NAMESPACE, type DeviceState, type StateView } from '../state/device_state.js';
import type { Actor, BooleanAttributes, Curve, Handle, KeyFunction, KeyRef, KeyType, MechanismParams, Mode, ObjectClass } from '../types.js';

export type { ObjectTemplate } from './attributes.js';
export type KeyMaterial = mech.KeyMaterial;

/** First session-object handle; token handles stay below it (2^40 ≈ 10^12 objects ever created). */
export const SESSION_HANDLE_BASE = 2 ** 40;
export { OBJECT_NAMESPACE } from '../../formats/object_record.js';
const CONFIG_NS = OBJECT_CONFIG_NAMESPACE;
const COUNTER_ID = 'objects.next-handle';

export type KeyQuorumService = 'key-management' | 'key-usage';
/** Throws (COFFER_QUORUM_REQUIRED or a token error) unless `actor` holds an approval of `m`. */
export type KeyQuorumGate = (actor: Actor, service: KeyQuorumService, m: number, handle: Handle) => void;

export interface ObjectTableOptions {
  readonly state: DeviceState;
  readonly mode: Mode;
  /** Is this (lower-case) user id a crypto user? Supplied by the facade; used to check sharees. */
  readonly isCryptoUser: (userId: string) => boolean;
  /** Called before management or use of a key whose quorum value is ≥ 2. Absent: such keys are refused. */
  readonly quorumGate?: KeyQuorumGate;
}

/** What anyone allowed to see an object may read about it: never key material. */
export interface ObjectInfo {
  readonly handle: Handle;
  /** The object's identity (objectIdentity): names this very object on every HSM. */
  readonly identity: Uint8Array;
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

/** One object in the index. `record` is replaced on change; `material` and `identity` are built on
 * first use. Session objects carry their session and scope. */
interface Entry {
  readonly record: ObjectRecord;
  readonly sessionId?: string;
  readonly scope?: string;
  material?: mech.KeyMaterial;
  identity?: Uint8Array;
}

/** What a creating operation hands to the change builder: the key and its resolved template. */
type NewObject = readonly [mech.KeyMaterial, ResolvedTemplate];

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

function handleOf(ref: KeyRef): Handle {
  return typeof ref === 'number' ? ref : ref.handle;
}

export class ObjectTable implements StateView {
  readonly namespaces = [OBJECT_NAMESPACE, CONFIG_NS, SESSION_OBJECT_NAMESPACE] as const;
  readonly #state: DeviceState;
  readonly #mode: Mode;
  readonly #isCryptoUser: (userId: string) => boolean;
  readonly #quorumGate: KeyQuorumGate | undefined;
  readonly #tokens = new Map<Handle, Entry>();
  readonly #sessions = new Map<Handle, Entry>();
  readonly #unwatch: () => void;
  #nextTokenHandle = 1;
  #nextSessionHandle = SESSION_HANDLE_BASE;

  constructor(options: ObjectTableOptions) {
    this.#state = options.state;
    this.#mode = options.mode;
    this.#isCryptoUser = options.isCryptoUser;
    this.#quorumGate = options.quorumGate;
    this.#load();
    this.#unwatch = this.#state.watch(this);
  }

  #load(): void {
    let highest = 0;
    try {
      for (const [id, bytes] of this.#state.list(OBJECT_NAMESPACE)) {
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
      this.#forgetAll();
      throw e;
    }
  }

  #loadCounter(): number {
    const counter = this.#state.get(CONFIG_NS, COUNTER_ID);
    return counter === undefined ? 1 : decodeCounter(counter); // 0 is CK_INVALID_HANDLE
  }

  /** Stops following the state and zeroises every key this table holds (restore, zeroise, close):
   * the keys of a replaced state are destroyed, not left to the garbage collector. */
  close(): void {
    this.#unwatch();
    this.#forgetAll();
  }

  #forgetAll(): void {
    for (const map of [this.#tokens, this.#sessions]) {
      for (const e of map.values()) forget(e);
      map.clear();
    }
  }

  // ── the index follows apply (StateView) ──────────────────────────────────────────────────────

  /** @internal Called by DeviceState.apply once a change committed. */
  applied(op: RecordOp): void {
    if (op.ns === CONFIG_NS) {
      if (op.id === COUNTER_ID) this.#nextTokenHandle = op.op === 'put' ? decodeCounter(op.value) : 1;
      return;
    }
    const tokens = op.ns === OBJECT_NAMESPACE;
    const map = tokens ? this.#tokens : this.#sessions;
    const handle = Number(op.id);
    assert(Number.isSafeInteger(handle) && recordId(handle) === op.id, 'object record ids are padded handles');
    const old = map.get(handle);
    if (old !== undefined) forget(old);
    if (op.op === 'delete') {
      map.delete(handle);
      return;
    }
    const entry: Entry = tokens ? { record: decodeObjectRecord(op.value) } : sessionEntry(op.value);
    assert(entry.record.handle === handle && entry.record.attributes.token === tokens, 'a record sits under its own handle and namespace');
    map.set(handle, entry);
  }

  // ── access checks ──────────────────────────────────────────────────────────────────────────

  #requireCryptoUser(actor: Actor): void {
    if (actor.role !== 'crypto-user') fail('COFFER_PERMISSION_DENIED');
  }

  /** May `actor` (a crypto user) see and use this entry? Owner or sharee; any crypto user for a
   * token public key; a session object only inside the scope that made it. */
  #canSee(actor: Actor, e: Entry): boolean {
    const r = e.record;
    if (e.sessionId !== undefined) return r.owner === actor.userId && (e.scope === undefined || e.scope === actor.scope);
    return r.owner === actor.userId || r.sharees.includes(actor.userId) || r.class === 'PUBLIC_KEY';
  }

  /** The entry `ref` names if `actor` (a crypto user) may see it, else NOT_FOUND; an identity that
   * is not this object's is COFFER_OBJECT_MISMATCH. */
  #visible(actor: Actor, ref: KeyRef): Entry {
    this.#requireCryptoUser(actor);
    const handle = handleOf(ref);
    const e = this.#tokens.get(handle) ?? this.#sessions.get(handle);
    if (e === undefined || !this.#canSee(actor, e)) return fail('COFFER_OBJECT_NOT_FOUND');
    this.#checkIdentity(e, ref);
    return e;
  }

  #checkIdentity(e: Entry, ref: KeyRef): void {
    if (typeof ref === 'number') return;
    if (!constantTimeEqual(identityOf(e), ref.identity)) fail('COFFER_OBJECT_MISMATCH', { handle: e.record.handle });
  }

  /** The entry if `actor` owns it; a sharee (or any crypto user, for a public key) learns it exists
   * but may not manage it. */
  #owned(actor: Actor, ref: KeyRef): Entry {
    const e = this.#visible(actor, ref);
    if (e.record.owner !== actor.userId) fail('COFFER_PERMISSION_DENIED');
    return e;
  }

  /** An admin names any token object; a crypto user what it owns. */
  #managed(actor: Actor, ref: KeyRef): Entry {
    if (actor.role !== 'admin') return this.#owned(actor, ref);
    const e = this.#tokens.get(handleOf(ref)) ?? fail('COFFER_OBJECT_NOT_FOUND');
    this.#checkIdentity(e, ref);
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
      for (const e of map.values()) if (this.#canSee(actor, e)) yield e;
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

  /** Every check for using key `ref` for `fn` with `params`, except the quorum gate. */
  #usable(actor: Actor, ref: KeyRef, fn: KeyFunction, params: MechanismParams, derived?: mech.DeriveTemplate): { entry: Entry; key: mech.KeyMaterial } {
    const entry = this.#visible(actor, ref);
    if (!entry.record.attributes[fn]) fail('COFFER_KEY_FUNCTION_NOT_PERMITTED', { function: fn });
    const key = this.#material(entry);
    mech.checkMechanism(this.#mode, params, fn, key, derived);
    return { entry, key };
  }

  // ── use ────────────────────────────────────────────────────────────────────────────────────

  /** The key after every check: role, ownership or share, function attribute, mechanism and FIPS, quorum. */
  use(actor: Actor, ref: KeyRef, fn: KeyFunction, params: MechanismParams): mech.KeyMaterial {
    const { entry, key } = this.#usable(actor, ref, fn, params);
    this.#gate(actor, 'key-usage', entry);
    return key;
  }

  sign(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    checkInput(data);
    return mech.sign(params, this.use(actor, ref, 'sign', params), data);
  }

  async signAsync(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array): Promise<Uint8Array> {
    checkInput(data);
    return mech.signAsync(params, this.use(actor, ref, 'sign', params), data);
  }

  verify(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array, signature: Uint8Array): boolean {
    checkInput(data);
    checkInput(signature);
    return mech.verify(params, this.use(actor, ref, 'verify', params), data, signature);
  }

  async verifyAsync(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    checkInput(data);
    checkInput(signature);
    return mech.verifyAsync(params, this.use(actor, ref, 'verify', params), data, signature);
  }

  encrypt(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    checkInput(data);
    return mech.encrypt(params, this.use(actor, ref, 'encrypt', params), data);
  }

  decrypt(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    checkInput(data, CRYPTO_CIPHERTEXT_BYTES_MAX); // what encrypt of the largest input gives back
    return mech.decrypt(params, this.use(actor, ref, 'decrypt', params), data);
  }

  // ── creation ───────────────────────────────────────────────────────────────────────────────

  /** Generates a secret key on the device (local=true). */
  generateKey(actor: Actor, spec: mech.SecretKeySpec, template: ObjectTemplate = {}): Promise<Handle> {
    return this.#create('key.generate', actor, () => {
      this.#requireCryptoUser(actor);
      const resolved = resolveTemplate('SECRET_KEY', spec.keyType, template, GENERATED);
      mech.checkKeyGen(this.#mode, spec);
      this.#checkCapacity([resolved]);
      return [[mech.generateSecretKey(spec), resolved]];
    }).then(one);
  }

  /** Generates a key pair on the device; both objects are decided together (public first). */
  generateKeyPair(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): Promise<KeyPairHandles> {
    return this.#create('key.generate-pair', actor, () => {
      const [pub, priv] = this.#checkKeyPair(actor, spec, publicTemplate, privateTemplate);
      const pair = mech.generateKeyPair(spec);
      return [[pair.publicKey, pub], [pair.privateKey, priv]];
    }).then(pairOf);
  }

  /**
   * As generateKeyPair, with the generation on libuv's thread pool (RSA-4096 takes seconds). The
   * checks run before, and again when the pair is decided, since the table may change meanwhile.
   */
  async generateKeyPairAsync(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): Promise<KeyPairHandles> {
    this.#checkKeyPair(actor, spec, publicTemplate, privateTemplate);
    const pair = await mech.generateKeyPairAsync(spec);
    return this.#create('key.generate-pair', actor, () => {
      const [pub, priv] = this.#checkKeyPair(actor, spec, publicTemplate, privateTemplate);
      return [[pair.publicKey, pub], [pair.privateKey, priv]];
    }).then(pairOf);
  }

  #checkKeyPair(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate, privateTemplate: ObjectTemplate): [ResolvedTemplate, ResolvedTemplate] {
    this.#requireCryptoUser(actor);
    const pub = resolveTemplate('PUBLIC_KEY', spec.keyType, publicTemplate, GENERATED);
    const priv = resolveTemplate('PRIVATE_KEY', spec.keyType, privateTemplate, GENERATED);
    mech.checkKeyGen(this.#mode, spec);
    this.#checkCapacity([pub, priv]);
    return [pub, priv];
  }

  /** Imports a public key from SPKI DER or a PEM "PUBLIC KEY" block. */
  importPublicKey(actor: Actor, key: Uint8Array | string, template: ObjectTemplate = {}): Promise<Handle> {
    return this.#create('key.import', actor, () => {
      this.#requireCryptoUser(actor);
      const der = typeof key === 'string' ? pemBody(key, 'PUBLIC KEY') : key;
      const parsed = parseKey(() => createPublicKey({ key: bufferView(der), format: 'der', type: 'spki' }));
      return [this.#imported('PUBLIC_KEY', parsed, der, template)];
    }).then(one);
  }

  /**
   * Imports a private key in plaintext from unencrypted PKCS#8 DER or a PEM "PRIVATE KEY" block
   * (CloudHSM CLI `key import pem`). Refused in FIPS mode: a FIPS module takes keys only wrapped.
   * The key gets local, always-sensitive and never-extractable false.
   */
  importPrivateKey(actor: Actor, key: Uint8Array | string, template: ObjectTemplate = {}): Promise<Handle> {
    return this.#create('key.import', actor, () => {
      this.#requireCryptoUser(actor);
      if (this.#mode === 'FIPS') fail('COFFER_FIPS_REFUSED', { operation: 'plaintext key import' });
      const der = typeof key === 'string' ? pemBody(key, 'PRIVATE KEY') : key;
      try {
        const parsed = parseKey(() => createPrivateKey({ key: bufferView(der), format: 'der', type: 'pkcs8' }));
        return [this.#imported('PRIVATE_KEY', parsed, der, template)];
      } finally {
        if (typeof key === 'string') der.fill(0);
      }
    }).then(one);
  }

  #imported(cls: 'PUBLIC_KEY' | 'PRIVATE_KEY', parsed: KeyObject, der: Uint8Array, template: ObjectTemplate): NewObject {
    const keyType = keyTypeOf(parsed);
    const resolved = resolveTemplate(cls, keyType, template, IMPORTED);
    const material = mech.materialFromBytes(cls, keyType, der);
    mech.checkKeyMaterial(this.#mode, material); // FIPS: the imported key's size and curve
    this.#checkCapacity([resolved]);
    return [material, resolved];
  }

  #checkCapacity(resolved: readonly ResolvedTemplate[]): void {
    const token = resolved.filter((r) => r.attributes.token).length;
    if (this.#tokens.size + token > OBJECTS_MAX) fail('COFFER_STORE_FULL', { max: OBJECTS_MAX });
    if (this.#sessions.size + resolved.length - token > SESSION_OBJECTS_MAX) fail('COFFER_STORE_FULL', { max: SESSION_OBJECTS_MAX });
    if (this.#nextTokenHandle + token > SESSION_HANDLE_BASE) fail('COFFER_STORE_FULL', { reason: 'handle space' });
  }

  /**
   * Submits a creation: `decide` runs in the device's writer queue against the current index and
   * returns the new keys; they get handles (token ones from the persisted counter, session ones
   * from the in-memory range) and records owned by `actor`, and are applied as one cluster-wide
   * change set for the token objects and one local change set for the session objects.
   */
  #create(kind: ChangeKind, actor: Actor, decide: () => readonly NewObject[]): Promise<Handle[]> {
    return this.#state.submit(() => {
      const items = decide();
      let nextToken = this.#nextTokenHandle;
      const token: RecordOp[] = [];
      const session: RecordOp[] = [];
      const handles: Handle[] = [];
      try {
        for (const [material, resolved] of items) {
          const isToken = resolved.attributes.token;
          const handle = isToken ? nextToken++ : this.#nextSessionHandle++;
          const record = newRecord(handle, actor.userId, material, resolved);
          try {
            if (isToken) token.push({ op: 'put', ns: OBJECT_NAMESPACE, id: recordId(handle), value: encodeObjectRecord(record) });
            else session.push(sessionPut(record, resolved.sessionId, actor.scope));
          } finally {
            record.material.destroy();
          }
          handles.push(handle);
        }
      } catch (e) {
        for (const op of [...token, ...session]) if (op.op === 'put') op.value.fill(0);
        throw e;
      }
      if (token.length > 0) token.push({ op: 'put', ns: CONFIG_NS, id: COUNTER_ID, value: u64(nextToken) });
      return { changes: changeSets(kind, token, session), result: handles };
    });
  }

  /** Submits a change to existing entries: `decide` returns the entries' next records (same handle
   * and material) and the entries to delete. */
  #change(kind: ChangeKind, decide: () => { readonly puts?: readonly ObjectRecord[]; readonly deletes?: readonly Entry[] }): Promise<void> {
    return this.#state.submit(() => {
      const { puts = [], deletes = [] } = decide();
      const token: RecordOp[] = [];
      const session: RecordOp[] = [];
      for (const r of puts) {
        const e = this.#tokens.get(r.handle) ?? this.#sessions.get(r.handle);
        assert(e !== undefined, 'changes name existing objects');
        if (r.attributes.token) token.push({ op: 'put', ns: OBJECT_NAMESPACE, id: recordId(r.handle), value: encodeObjectRecord(r) });
        else session.push(sessionPut(r, e.sessionId, e.scope));
      }
      for (const e of deletes) (e.record.attributes.token ? token : session).push({ op: 'delete', ns: e.record.attributes.token ? OBJECT_NAMESPACE : SESSION_OBJECT_NAMESPACE, id: recordId(e.record.handle) });
      return { changes: changeSets(kind, token, session), result: undefined };
    });
  }

  // ── wrap, unwrap, derive ───────────────────────────────────────────────────────────────────

  /**
   * Wraps `target` (owned by `actor`) under `wrapping` (owned, shared or public, wrap=true).
   * Refused: public keys and wrap-with-trusted keys under an untrusted key (KEY_NOT_WRAPPABLE),
   * non-extractable keys (KEY_UNEXTRACTABLE). Quorum: the target's management, the wrapping key's usage.
   */
  wrapKey(actor: Actor, wrapping: KeyRef, target: KeyRef, params: MechanismParams): Uint8Array {
    const { entry: wrappingEntry, key: wrappingKey } = this.#usable(actor, wrapping, 'wrap', params);
    const targetEntry = this.#owned(actor, target);
    if (targetEntry.record.class === 'PUBLIC_KEY') fail('COFFER_KEY_NOT_WRAPPABLE', { reason: 'public key' });
    if (!targetEntry.record.attributes.extractable) fail('COFFER_KEY_UNEXTRACTABLE');
    // PKCS#11 v2.40 §4.9/4.10 CKA_WRAP_WITH_TRUSTED: only a wrapping key with CKA_TRUSTED may wrap it.
    if (targetEntry.record.attributes.wrapWithTrusted && !wrappingEntry.record.attributes.trusted) fail('COFFER_KEY_NOT_WRAPPABLE', { reason: 'wrap with trusted' });
    const targetKey = this.#material(targetEntry);
    this.#gate(actor, 'key-management', targetEntry);
    this.#gate(actor, 'key-usage', wrappingEntry);
    return mech.wrapKey(params, wrappingKey, targetKey);
  }

  /** Unwraps `wrapped` with `unwrapping` into a new object of `template` (local=false). */
  unwrapKey(actor: Actor, unwrapping: KeyRef, wrapped: Uint8Array, params: MechanismParams, template: UnwrapTemplate): Promise<Handle> {
    return this.#create('key.unwrap', actor, () => {
      this.#requireCryptoUser(actor);
      if (wrapped.length > WRAPPED_KEY_BYTES_MAX) fail('COFFER_DATA_LEN_RANGE', { max: WRAPPED_KEY_BYTES_MAX });
      const { class: cls, keyType, curve, ...attrs } = template;
      if (cls === 'PUBLIC_KEY') fail('COFFER_TEMPLATE_INCONSISTENT', { class: cls });
      const resolved = resolveTemplate(cls, keyType, attrs, { kind: 'unwrapped' });
      const { entry, key } = this.#usable(actor, unwrapping, 'unwrap', params);
      this.#checkCapacity([resolved]);
      this.#gate(actor, 'key-usage', entry);
      const material = mech.unwrapKey(params, key, wrapped, curve === undefined ? { class: cls, keyType } : { class: cls, keyType, curve });
      mech.checkKeyMaterial(this.#mode, material); // FIPS: the unwrapped key's size and curve
      return [[material, resolved]];
    }).then(one);
  }

  /** Derives a secret key from `base` (derive=true); always-sensitive and never-extractable inherit. */
  deriveKey(actor: Actor, base: KeyRef, params: MechanismParams, template: DeriveTemplate): Promise<Handle> {
    return this.#create('key.derive', actor, () => {
      this.#requireCryptoUser(actor);
      const { keyType, bits, ...attrs } = template;
      const { entry, key } = this.#usable(actor, base, 'derive', params, { keyType, bits });
      const resolved = resolveTemplate('SECRET_KEY', keyType, attrs, { kind: 'derived', base: entry.record.attributes });
      this.#checkCapacity([resolved]);
      this.#gate(actor, 'key-usage', entry);
      return [[mech.deriveKey(params, key, { keyType, bits }), resolved]];
    }).then(one);
  }

  // ── management ─────────────────────────────────────────────────────────────────────────────

  /** Metadata of the objects `actor` may see that match `filter`, by ascending handle. */
  find(actor: Actor, filter: ObjectFilter = {}): ObjectInfo[] {
    for (const key of Object.keys(filter)) if (!FILTER_KEYS.has(key)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
    const out: ObjectInfo[] = [];
    for (const e of this.#readable(actor)) if (matches(e.record, filter)) out.push(info(e));
    return out.sort((a, b) => a.handle - b.handle);
  }

  getAttributes(actor: Actor, ref: KeyRef): ObjectInfo {
    if (actor.role !== 'admin') return info(this.#visible(actor, ref));
    const e = this.#tokens.get(handleOf(ref)) ?? fail('COFFER_OBJECT_NOT_FOUND');
    this.#checkIdentity(e, ref);
    return info(e);
  }

  /**
   * Changes one attribute (attributes.ts has the rules). The owner changes anything settable but
   * `trusted`; an admin changes `trusted` only, on any token object (CloudHSM's rule).
   */
  setAttribute(actor: Actor, ref: KeyRef, name: SettableAttribute, value: boolean | string | Uint8Array): Promise<void> {
    return this.#change('key.attribute', () => {
      const e = this.#managed(actor, ref);
      const r = e.record;
      const next = applyAttributeChange(r.class, r.keyType, r, name, value, actor.role === 'admin' ? 'admin' : 'owner');
      this.#gate(actor, 'key-management', e);
      return { puts: [{ ...r, attributes: next.attributes, label: next.label, id: next.id }] };
    });
  }

  /** Shares a token object with another crypto user (owner only; at most SHAREES_MAX). Idempotent. */
  share(actor: Actor, ref: KeyRef, userName: string): Promise<void> {
    return this.#change('key.share', () => {
      const e = this.#owned(actor, ref);
      const user = userName.toLowerCase();
      if (!e.record.attributes.token) fail('COFFER_SESSION_OBJECT_NOT_SHAREABLE');
      if (user === e.record.owner) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'sharee', reason: 'owner' });
      if (!this.#isCryptoUser(user)) fail('COFFER_USER_NOT_FOUND', { reason: 'not a crypto user' });
      if (e.record.sharees.includes(user)) return {};
      if (e.record.sharees.length >= SHAREES_MAX) fail('COFFER_SHARE_LIMIT', { max: SHAREES_MAX });
      this.#gate(actor, 'key-management', e);
      return { puts: [{ ...e.record, sharees: [...e.record.sharees, user] }] };
    });
  }

  /** Stops sharing with `userName` (owner only). Idempotent. */
  unshare(actor: Actor, ref: KeyRef, userName: string): Promise<void> {
    return this.#change('key.unshare', () => {
      const e = this.#owned(actor, ref);
      const user = userName.toLowerCase();
      if (!e.record.sharees.includes(user)) return {};
      this.#gate(actor, 'key-management', e);
      return { puts: [{ ...e.record, sharees: e.record.sharees.filter((s) => s !== user) }] };
    });
  }

  /** Destroys an object (owner only; destroyable=true). */
  destroy(actor: Actor, ref: KeyRef): Promise<void> {
    return this.#change('key.destroy', () => {
      const e = this.#owned(actor, ref);
      if (!e.record.attributes.destroyable) fail('COFFER_OBJECT_NOT_DESTROYABLE');
      this.#gate(actor, 'key-management', e);
      return { deletes: [e] };
    });
  }

  /** SPKI PEM of a public key, or of the public half of a private key. */
  exportPublic(actor: Actor, ref: KeyRef): string {
    const e = this.#visible(actor, ref);
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
  exportPlaintext(actor: Actor, ref: KeyRef): SecretBytes {
    const e = this.#owned(actor, ref);
    if (this.#mode === 'FIPS') fail('COFFER_FIPS_REFUSED', { operation: 'plaintext key export' });
    if (e.record.class === 'PUBLIC_KEY') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: e.record.class });
    if (e.record.attributes.sensitive || !e.record.attributes.extractable) fail('COFFER_ATTRIBUTE_SENSITIVE');
    this.#gate(actor, 'key-management', e);
    return e.record.material.use((bytes) => SecretBytes.copyOf(bytes));
  }

  /**
   * Drops every session object of `sessionId` (on logout or session close); returns how many. A
   * local change of volatile records only, so it is applied at once rather than queued: it touches
   * nothing a queued decision relies on, and a closed session's objects must be gone when close returns.
   */
  dropSessionObjects(sessionId: string): number {
    const gone = [...this.#sessions.values()].filter((e) => e.sessionId === sessionId);
    if (gone.length > 0) {
      this.#state.apply({ scope: 'local', kind: 'session.objects', ops: gone.map((e) => ({ op: 'delete', ns: SESSION_OBJECT_NAMESPACE, id: recordId(e.record.handle) })) });
    }
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

// ── change sets ──────────────────────────────────────────────────────────────────────────────

function changeSets(kind: ChangeKind, token: RecordOp[], session: RecordOp[]): ChangeSet[] {
  const out: ChangeSet[] = [];
  if (token.length > 0) out.push({ scope: 'cluster', kind, ops: token });
  if (session.length > 0) out.push({ scope: 'local', kind: 'session.objects', ops: session });
  return out;
}

function sessionPut(record: ObjectRecord, sessionId: string | undefined, scope: string | undefined): RecordOp {
  assert(sessionId !== undefined, 'a session object has its session');
  return { op: 'put', ns: SESSION_OBJECT_NAMESPACE, id: recordId(record.handle), value: encodeSessionObjectRecord({ sessionId, scope, record }) };
}

function sessionEntry(value: Uint8Array): Entry {
  const s = decodeSessionObjectRecord(value);
  return s.scope === undefined ? { record: s.record, sessionId: s.sessionId } : { record: s.record, sessionId: s.sessionId, scope: s.scope };
}

function decodeCounter(bytes: Uint8Array): number {
  if (bytes.length !== 8) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
  const next = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
  if (next < 1n || next > BigInt(SESSION_HANDLE_BASE)) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
  return Number(next);
}

/** Zeroises what an entry holds (its record's key bytes; the KeyObject goes with the entry). */
function forget(e: Entry): void {
  e.record.material.destroy();
  delete e.material;
}

function identityOf(e: Entry): Uint8Array {
  e.identity ??= objectIdentity(e.record);
  return e.identity;
}

function one(handles: Handle[]): Handle {
  const [handle] = handles;
  assert(handle !== undefined && handles.length === 1, 'one object created');
  return handle;
}

function pairOf(handles: Handle[]): KeyPairHandles {
  const [publicHandle, privateHandle] = handles;
  assert(publicHandle !== undefined && privateHandle !== undefined && handles.length === 2, 'two objects created');
  return { publicHandle, privateHandle };
}

// ── helpers ──────────────────────────────────────────────────────────────────────────────────

function checkInput(data: Uint8Array, max = CRYPTO_INPUT_BYTES_MAX): void {
  if (data.length > max) fail('COFFER_DATA_LEN_RANGE', { max });
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

function info(e: Entry): ObjectInfo {
  const r = e.record;
  const base = {
    handle: r.handle, identity: identityOf(e).slice(), class: r.class, keyType: r.keyType, bits: r.bits, label: r.label, id: r.id.slice(),
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
