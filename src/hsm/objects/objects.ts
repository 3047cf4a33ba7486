// The device's object table (docs/architecture.md §4): every key the HSM holds, who owns it, who it is
// shared with, what it may do, and the checks that stand between a caller and a key. PKCS#11
// v2.40 §4 is the object model; AWS CloudHSM's rules decide roles, sharing and quorum.
//
// Token objects are records in the store (namespace 'object', codec formats/object_record.ts);
// session objects are volatile records (namespace 'session-object'). The table keeps a compact index
// of both in memory (object_index.ts: columns for what the checks read, an arena for labels, ids,
// KCVs and key material) and keeps KeyObjects for the keys used most recently (key_cache.ts,
// OBJECT_KEY_CACHE_MAX), so a crypto call (`use`, `sign`, …) is a map lookup or two and a few
// attribute checks: O(1), no store access. Any other key is rebuilt from its bytes when used. The
// index is filled when the table opens, each token record read in place into its slot, or — after a
// restore — taken whole from the one the restore built as it staged the records (StagedObjects).
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
import { fail, isCofferError } from '../../errors.js';
import { assert } from '../../assert.js';
import { SecretBytes, constantTimeEqual } from '../../crypto/secret_bytes.js';
import { kcvAes, kcvOfSpki, kcvPublicKey, kcvSecret } from '../../crypto/kcv.js';
import type { ChangeKind, ChangeSet, RecordOp } from '../../formats/change_set.js';
import {
  BOOLEAN_ATTRIBUTE_NAMES, OBJECT_CONFIG_NAMESPACE, OBJECT_NAMESPACE, encodeObjectRecord, encodeSessionObjectRecord, readObjectRecordLayout, readSessionObjectEnvelope,
  type ObjectRecord, type ObjectRecordLayout,
} from '../../formats/object_record.js';
import {
  CRYPTO_CIPHERTEXT_BYTES_MAX, CRYPTO_INPUT_BYTES_MAX, OBJECTS_MAX, OBJECT_KEY_CACHE_MAX, SESSION_OBJECTS_MAX, SHAREES_MAX, WRAPPED_KEY_BYTES_MAX,
} from '../../formats/limits.js';
import * as mech from '../mechanisms/mechanisms.js';
import { certificateFields } from '../../formats/certificate_fields.js';
import {
  applyAttributeChange, resolveCertificateTemplate, resolveCopyTemplate, resolveTemplate, type CertificateTemplate, type CopyTemplate, type ObjectTemplate, type Origin, type ResolvedTemplate,
  type SettableAttribute,
} from './attributes.js';
import { KeyCache } from './key_cache.js';
import { ATTRIBUTE_BIT, ObjectIndex, labelQuery, type LabelQuery } from './object_index.js';
import { SESSION_OBJECT_NAMESPACE, type DeviceState, type StateView } from '../state/device_state.js';
import type { Actor, BooleanAttributes, Curve, Handle, KeyFunction, KeyRef, KeyType, MechanismParams, Mode, ObjectClass } from '../types.js';

export type { CertificateTemplate, ObjectTemplate } from './attributes.js';
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
  /** How many built keys to keep (default OBJECT_KEY_CACHE_MAX). */
  readonly keyCacheMax?: number;
  /** The empty index to fill (default: a new one). Tests hold it to check what close() zeroises. */
  readonly index?: ObjectIndex;
  /** The token objects of a restore that just committed, indexed while it staged them: the table
   * takes their index instead of reading the store back. */
  readonly restored?: StagedObjects;
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

/** The session and application scope a session object belongs to. */
interface SessionOf {
  readonly sessionId: string;
  readonly scope: string | undefined;
}

/** A certificate a creating operation hands to the change builder: its DER and what was read from it. */
interface NewCertificate {
  readonly der: Uint8Array;
  /** The subject public key's type, size and curve (formats/object_record.ts, version 2). */
  readonly keyType: KeyType;
  readonly bits: number;
  readonly curve: Curve | undefined;
  readonly resolved: ResolvedTemplate & { readonly category: number };
}

/** A key a creating operation hands over as the bytes its record stores (a generated EC pair's). */
interface NewEncodedKey {
  readonly encoded: mech.EncodedKey;
  readonly resolved: ResolvedTemplate;
}

/** What a creating operation hands to the change builder: the key and its resolved template, a key
 * as its stored bytes, or a certificate. */
type NewObject = readonly [mech.KeyMaterial, ResolvedTemplate] | NewEncodedKey | NewCertificate;

/** What a change makes of an existing object (the rest of its record stays). */
interface Patch {
  readonly attributes?: Readonly<BooleanAttributes>;
  readonly label?: string;
  readonly id?: Uint8Array;
  readonly sharees?: readonly string[];
}

const GENERATED: Origin = { kind: 'generated' };
const IMPORTED: Origin = { kind: 'imported' };
const FILTER_KEYS = new Set(['handle', 'label', 'id', 'class', 'keyType', 'token', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive', 'trusted', 'wrapWithTrusted', 'local', 'neverExtractable', 'alwaysSensitive', 'modifiable', 'destroyable']);

/** Digits of a record id: every handle (< 2^53) fits, zero-padded. */
const RECORD_ID_DIGITS = 16;

function recordId(handle: Handle): string {
  return handle.toString().padStart(RECORD_ID_DIGITS, '0'); // ascending id order = handle order
}

/** Is `id` recordId(handle)? Read digit by digit: a load checks every record, and building each
 * id to compare would cost a string per record (and, measured, makes V8's young generation grow). */
function isRecordIdOf(id: string, handle: Handle): boolean {
  if (id.length !== RECORD_ID_DIGITS) return false;
  let n = 0;
  for (let i = 0; i < RECORD_ID_DIGITS; i++) {
    const digit = id.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return false;
    n = n * 10 + digit; // inexact only past 2^53, where it cannot equal a handle
  }
  return n === handle;
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
  /** Token and session objects (told apart by their token attribute). */
  readonly #index: ObjectIndex;
  readonly #sessionOf = new Map<Handle, SessionOf>();
  readonly #keys: KeyCache;
  readonly #unwatch: () => void;
  #nextTokenHandle = 1;
  #nextSessionHandle = SESSION_HANDLE_BASE;

  constructor(options: ObjectTableOptions) {
    this.#state = options.state;
    this.#mode = options.mode;
    this.#isCryptoUser = options.isCryptoUser;
    this.#quorumGate = options.quorumGate;
    this.#keys = new KeyCache(options.keyCacheMax ?? OBJECT_KEY_CACHE_MAX);
    const restored = options.restored?.take();
    assert(restored === undefined || options.index === undefined, 'one index to start from');
    this.#index = restored?.index ?? options.index ?? new ObjectIndex();
    if (restored === undefined) this.#load();
    else this.#nextTokenHandle = restored.nextTokenHandle;
    this.#unwatch = this.#state.watch(this);
  }

  /** Reads every token object from the store into the index, in place: a slot and an arena region each. */
  #load(): void {
    assert(this.#index.size === 0, 'a table loads into an empty index');
    try {
      const load = new TokenLoad(this.#index, this.#state.count(OBJECT_NAMESPACE));
      for (const [id, bytes] of this.#state.list(OBJECT_NAMESPACE)) {
        try {
          load.record(id, bytes);
        } finally {
          bytes.fill(0);
        }
      }
      const counter = this.#state.get(CONFIG_NS, COUNTER_ID);
      if (counter !== undefined) load.counter(counter);
      this.#nextTokenHandle = load.finish();
    } catch (e) {
      this.#forgetAll();
      throw e;
    }
  }

  /** Stops following the state and zeroises every key this table holds (restore, zeroise, close):
   * the keys of a replaced state are destroyed, not left to the garbage collector. */
  close(): void {
    this.#unwatch();
    this.#forgetAll();
  }

  #forgetAll(): void {
    this.#index.close();
    this.#sessionOf.clear();
    this.#keys.clear();
  }

  // ── the index follows apply (StateView) ──────────────────────────────────────────────────────

  /** @internal Called by DeviceState.apply once a change committed. */
  applied(op: RecordOp): void {
    if (op.ns === CONFIG_NS) {
      if (op.id === COUNTER_ID) this.#nextTokenHandle = op.op === 'put' ? decodeCounter(op.value) : 1;
      return;
    }
    const tokens = op.ns === OBJECT_NAMESPACE;
    const handle = Number(op.id);
    assert(Number.isSafeInteger(handle) && recordId(handle) === op.id, 'object record ids are padded handles');
    const slot = this.#index.slotOf(handle);
    assert(slot < 0 || this.#index.isToken(slot) === tokens, 'a record sits under its own namespace');
    if (slot >= 0) this.#keys.delete(slot); // a new record, or none: its key is built again if used
    if (op.op === 'delete') {
      this.#index.remove(handle);
      this.#sessionOf.delete(handle);
      return;
    }
    const session = tokens ? undefined : readSessionObjectEnvelope(op.value);
    const bytes = session === undefined ? op.value : session.record;
    const layout = readObjectRecordLayout(bytes);
    assert(layout.handle === handle && isTokenLayout(layout) === tokens, 'a record sits under its own handle and namespace');
    this.#index.put(layout, bytes);
    if (session !== undefined) this.#sessionOf.set(handle, { sessionId: session.sessionId, scope: session.scope });
  }

  // ── access checks ──────────────────────────────────────────────────────────────────────────
  // An object is named inside the table by its slot in the index (object_index.ts).

  #requireCryptoUser(actor: Actor): void {
    if (actor.role !== 'crypto-user') fail('COFFER_PERMISSION_DENIED');
  }

  /** May `actor` (a crypto user) see and use this object? Owner or sharee; any crypto user for a
   * token public key; a session object only inside the scope that made it. */
  #canSee(actor: Actor, slot: number): boolean {
    const index = this.#index;
    if (!index.isToken(slot)) {
      const session = this.#sessionOf.get(index.handle(slot));
      assert(session !== undefined, 'a session object has its session');
      return index.owner(slot) === actor.userId && (session.scope === undefined || session.scope === actor.scope);
    }
    return index.owner(slot) === actor.userId || index.isPublicKey(slot) || index.isCertificate(slot) || index.isSharee(slot, actor.userId);
  }

  /** The slot `ref` names if `actor` (a crypto user) may see it, else NOT_FOUND; an identity that
   * is not this object's is COFFER_OBJECT_MISMATCH. */
  #visible(actor: Actor, ref: KeyRef): number {
    this.#requireCryptoUser(actor);
    const slot = this.#index.slotOf(handleOf(ref));
    if (slot < 0 || !this.#canSee(actor, slot)) return fail('COFFER_OBJECT_NOT_FOUND');
    this.#checkIdentity(slot, ref);
    return slot;
  }

  #checkIdentity(slot: number, ref: KeyRef): void {
    if (typeof ref === 'number') return;
    if (!constantTimeEqual(this.#index.identity(slot), ref.identity)) fail('COFFER_OBJECT_MISMATCH', { handle: ref.handle });
  }

  /** The slot if `actor` owns it; a sharee (or any crypto user, for a public key) learns it exists
   * but may not manage it. */
  #owned(actor: Actor, ref: KeyRef): number {
    const slot = this.#visible(actor, ref);
    if (this.#index.owner(slot) !== actor.userId) fail('COFFER_PERMISSION_DENIED');
    return slot;
  }

  /** The slot `ref` names if `actor` may read its metadata: an admin any token object's, a crypto
   * user what it may see (#visible); the one-object form of #readable. */
  #readableSlot(actor: Actor, ref: KeyRef): number {
    return actor.role === 'admin' ? this.#token(ref) : this.#visible(actor, ref);
  }

  /** A token object's slot, whoever may see it (an admin's view), else NOT_FOUND. */
  #token(ref: KeyRef): number {
    const slot = this.#index.slotOf(handleOf(ref));
    if (slot < 0 || !this.#index.isToken(slot)) return fail('COFFER_OBJECT_NOT_FOUND');
    this.#checkIdentity(slot, ref);
    return slot;
  }

  /** An admin names any token object; a crypto user what it owns. */
  #managed(actor: Actor, ref: KeyRef): number {
    return actor.role === 'admin' ? this.#token(ref) : this.#owned(actor, ref);
  }

  /** Slots whose metadata `actor` may read: a crypto user's visible ones, every token object for an admin. */
  *#readable(actor: Actor): Generator<number> {
    if (actor.role === 'admin') {
      yield* this.#tokenSlots();
      return;
    }
    this.#requireCryptoUser(actor);
    const index = this.#index;
    for (let slot = 0; slot < index.slotLimit; slot++) if (index.live(slot) && this.#canSee(actor, slot)) yield slot;
  }

  #gate(actor: Actor, service: KeyQuorumService, slot: number): void {
    const m = service === 'key-management' ? this.#index.manageKeyQuorum(slot) : this.#index.useKeyQuorum(slot);
    if (m < 2) return;
    if (this.#quorumGate === undefined) fail('COFFER_QUORUM_REQUIRED');
    this.#quorumGate(actor, service, m, this.#index.handle(slot));
  }

  /** The object's KeyObject: kept for the keys used lately (key_cache.ts), else built from its bytes. */
  #material(slot: number): mech.KeyMaterial {
    const kept = this.#keys.get(slot);
    if (kept !== undefined) return kept;
    const index = this.#index;
    const cls = index.cls(slot);
    const keyType = index.keyType(slot);
    const curve = index.curve(slot);
    const material = index.withMaterial(slot, (bytes) => mech.materialFromBytes(cls, keyType, bytes, curve));
    this.#keys.set(slot, material);
    return material;
  }

  /** Every check for using key `ref` for `fn` with `params`, except the quorum gate: the key's slot.
   * Its key is then `#material(slot)`, a cache hit (the slot is returned alone, not with the key in
   * an object: that allocation is measurable on a 2 µs HMAC). */
  #usable(actor: Actor, ref: KeyRef, fn: KeyFunction, params: MechanismParams, derived?: mech.DeriveTemplate): number {
    const slot = this.#visible(actor, ref);
    if (!this.#index.has(slot, fn)) fail('COFFER_KEY_FUNCTION_NOT_PERMITTED', { function: fn });
    mech.checkMechanism(this.#mode, params, fn, this.#material(slot), derived);
    return slot;
  }

  // ── use ────────────────────────────────────────────────────────────────────────────────────

  /** The key after every check: role, ownership or share, function attribute, mechanism and FIPS, quorum. */
  use(actor: Actor, ref: KeyRef, fn: KeyFunction, params: MechanismParams): mech.KeyMaterial {
    const slot = this.#usable(actor, ref, fn, params);
    this.#gate(actor, 'key-usage', slot);
    return this.#material(slot);
  }

  sign(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array): Uint8Array {
    return this.#withSigningKey(actor, ref, params, data, (key, stored) => mech.sign(params, key, data, stored));
  }

  /** As sign, asynchronously: on libuv's thread pool where node offers it; raw ECDSA, which has no
   * thread-pool form, at the end of this turn with the other raw ECDSA signatures of the turn (one
   * shared inversion, mechanisms.ts signAsync). */
  async signAsync(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array): Promise<Uint8Array> {
    return this.#withSigningKey(actor, ref, params, data, (key, stored) => mech.signAsync(params, key, data, stored));
  }

  /** Checks the input and the key for signing, then signs with its material; raw ECDSA also gets the
   * key's stored PKCS#8, since it does its own arithmetic on d: read from those bytes, not exported
   * from the KeyObject. */
  #withSigningKey<T>(actor: Actor, ref: KeyRef, params: MechanismParams, data: Uint8Array, sign: (key: mech.KeyMaterial, stored?: Uint8Array) => T): T {
    checkInput(data);
    const slot = this.#usable(actor, ref, 'sign', params);
    this.#gate(actor, 'key-usage', slot);
    const key = this.#material(slot);
    if (params.mechanism !== 'CKM_ECDSA') return sign(key);
    return this.#index.withMaterial(slot, (stored) => sign(key, stored));
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
      if (spec.keyType === 'EC') {
        const encoded = mech.generateEcKeyPairEncoded(spec.curve);
        return [{ encoded: encoded.publicKey, resolved: pub }, { encoded: encoded.privateKey, resolved: priv }];
      }
      const pair = mech.generateKeyPair(spec);
      return [[pair.publicKey, pub], [pair.privateKey, priv]];
    }).then(pairOf);
  }

  /**
   * As generateKeyPair, with an RSA generation on libuv's thread pool (RSA-4096 takes seconds); the
   * checks run before, and again when the pair is decided, since the table may change meanwhile. An
   * EC or Ed25519 pair (tens of µs) is generated in its decision, as generateKeyPair does: a pair
   * made on the pool would reach the writer alone, as its generation ends, and start an entry of its
   * own instead of joining the batch of the calls queued with it (docs/device.md "Batches").
   */
  async generateKeyPairAsync(actor: Actor, spec: mech.KeyPairSpec, publicTemplate: ObjectTemplate = {}, privateTemplate: ObjectTemplate = {}): Promise<KeyPairHandles> {
    if (spec.keyType !== 'RSA') return this.generateKeyPair(actor, spec, publicTemplate, privateTemplate);
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

  /**
   * Stores an X.509 certificate (DER) as a certificate object (PKCS#11 v2.40 §4.6, CKC_X_509): a public
   * object every crypto user sees, managed by its owner, replicated and backed up like a key. The
   * certificate is parsed whole; a template's subject, issuer or serial number must equal the
   * certificate's own DER fields (COFFER_CERT_TEMPLATE_MISMATCH), and a certificate that is not
   * DER X.509 with an RSA, EC or Ed25519 subject key is COFFER_CERT_VALUE_INVALID. Certificates are
   * not checked against any chain or clock: a token stores certificates, it does not trust them.
   */
  importCertificate(actor: Actor, der: Uint8Array, template: CertificateTemplate = {}): Promise<Handle> {
    return this.#create('certificate.import', actor, () => {
      this.#requireCryptoUser(actor);
      const resolved = resolveCertificateTemplate(template);
      const fields = certificateFields(der);
      for (const name of ['subject', 'issuer', 'serialNumber'] as const) {
        const expected = template[name];
        if (expected !== undefined && !Buffer.from(expected).equals(fields[name])) fail('COFFER_CERT_TEMPLATE_MISMATCH', { attribute: name });
      }
      let key: mech.KeyMaterial;
      try {
        key = mech.materialFromKeyObject('PUBLIC_KEY', keyTypeOf(fields.publicKey), fields.publicKey);
      } catch (e) {
        if (isCofferError(e)) fail('COFFER_CERT_VALUE_INVALID', { reason: 'unsupported-public-key', code: e.code });
        throw e;
      }
      this.#checkCapacity([resolved]);
      return [{ der: der.slice(), keyType: key.keyType, bits: key.bits, curve: key.curve, resolved }];
    }).then(one);
  }

  /**
   * Copies an object `actor` owns into a new one it owns (PKCS#11 C_CopyObject; docs/device.md
   * "Copies"): the same key, class, attributes and quorum values, not shared, not trusted; the
   * template may set where it lives, its label and id, and narrow modifiable / destroyable. A private
   * or secret key is copied only from a session object — a key made for a session and then kept, as
   * Java's KeyStore keeps the pairs keytool makes — so a key the cluster keeps has one object; a
   * token one is COFFER_OBJECT_NOT_COPYABLE, as is a certificate (store it again). Copying is
   * managing the source: its management quorum applies.
   */
  copyObject(actor: Actor, ref: KeyRef, template: CopyTemplate = {}): Promise<Handle> {
    return this.#create('key.copy', actor, () => {
      const slot = this.#owned(actor, ref);
      const index = this.#index;
      const cls = index.cls(slot);
      if (cls === 'CERTIFICATE' || (cls !== 'PUBLIC_KEY' && index.isToken(slot))) fail('COFFER_OBJECT_NOT_COPYABLE', { class: cls });
      const resolved = resolveCopyTemplate({
        attributes: index.attributes(slot), label: index.label(slot), id: index.id(slot), manageKeyQuorum: index.manageKeyQuorum(slot), useKeyQuorum: index.useKeyQuorum(slot),
      }, template);
      this.#checkCapacity([resolved]);
      this.#gate(actor, 'key-management', slot);
      return [[this.#material(slot), resolved]];
    }).then(one);
  }

  #checkCapacity(resolved: readonly ResolvedTemplate[]): void {
    const token = resolved.filter((r) => r.attributes.token).length;
    if (this.tokenObjectCount + token > OBJECTS_MAX) fail('COFFER_STORE_FULL', { max: OBJECTS_MAX });
    if (this.sessionObjectCount + resolved.length - token > SESSION_OBJECTS_MAX) fail('COFFER_STORE_FULL', { max: SESSION_OBJECTS_MAX });
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
      // Session handles come from memory: taken only once the decision took effect (it may be
      // decided again when its journal entry loses the race to another HSM's).
      let nextSession = this.#nextSessionHandle;
      const token: RecordOp[] = [];
      const session: RecordOp[] = [];
      const handles: Handle[] = [];
      try {
        for (const item of items) {
          const resolved = 'der' in item || 'encoded' in item ? item.resolved : item[1];
          const isToken = resolved.attributes.token;
          const handle = isToken ? nextToken++ : nextSession++;
          const record = 'der' in item ? certificateRecord(handle, actor.userId, item) : 'encoded' in item ? encodedRecord(handle, actor.userId, item) : newRecord(handle, actor.userId, item[0], item[1]);
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
        for (const item of items) if ('encoded' in item) item.encoded.encoded.fill(0); // those not made into records yet
        throw e;
      }
      if (token.length > 0) token.push({ op: 'put', ns: CONFIG_NS, id: COUNTER_ID, value: u64(nextToken) });
      this.#state.afterDecision({ committed: () => void (this.#nextSessionHandle = Math.max(this.#nextSessionHandle, nextSession)) });
      // Token objects only: the decision reads the index and counter, which apply tells (batches, device.md "The journal").
      return { changes: changeSets(kind, token, session), result: handles, batchable: session.length === 0 };
    });
  }

  /** Submits a change to existing objects: `decide` returns what becomes of some (same handle and
   * material, the rest of the record patched) and the slots to delete. */
  #change(kind: ChangeKind, decide: () => { readonly puts?: readonly (readonly [number, Patch])[]; readonly deletes?: readonly number[] }): Promise<void> {
    return this.#state.submit(() => {
      const { puts = [], deletes = [] } = decide();
      const token: RecordOp[] = [];
      const session: RecordOp[] = [];
      for (const [slot, patch] of puts) {
        const handle = this.#index.handle(slot);
        const record = this.#index.record(slot);
        try {
          const next: ObjectRecord = { ...record, ...patch };
          const s = this.#sessionOf.get(handle);
          if (this.#index.isToken(slot)) token.push({ op: 'put', ns: OBJECT_NAMESPACE, id: recordId(handle), value: encodeObjectRecord(next) });
          else session.push(sessionPut(next, s?.sessionId, s?.scope));
        } finally {
          record.material.destroy();
        }
      }
      for (const slot of deletes) {
        const isToken = this.#index.isToken(slot);
        (isToken ? token : session).push({ op: 'delete', ns: isToken ? OBJECT_NAMESPACE : SESSION_OBJECT_NAMESPACE, id: recordId(this.#index.handle(slot)) });
      }
      return { changes: changeSets(kind, token, session), result: undefined, batchable: session.length === 0 };
    });
  }

  // ── wrap, unwrap, derive ───────────────────────────────────────────────────────────────────

  /**
   * Wraps `target` (owned by `actor`) under `wrapping` (owned, shared or public, wrap=true).
   * Refused: public keys and wrap-with-trusted keys under an untrusted key (KEY_NOT_WRAPPABLE),
   * non-extractable keys (KEY_UNEXTRACTABLE). Quorum: the target's management, the wrapping key's usage.
   */
  wrapKey(actor: Actor, wrapping: KeyRef, target: KeyRef, params: MechanismParams): Uint8Array {
    const wrappingSlot = this.#usable(actor, wrapping, 'wrap', params);
    const wrappingKey = this.#material(wrappingSlot);
    const targetSlot = this.#owned(actor, target);
    if (this.#index.isPublicKey(targetSlot)) fail('COFFER_KEY_NOT_WRAPPABLE', { reason: 'public key' });
    if (!this.#index.has(targetSlot, 'extractable')) fail('COFFER_KEY_UNEXTRACTABLE');
    // PKCS#11 v2.40 §4.9/4.10 CKA_WRAP_WITH_TRUSTED: only a wrapping key with CKA_TRUSTED may wrap it.
    if (this.#index.has(targetSlot, 'wrapWithTrusted') && !this.#index.has(wrappingSlot, 'trusted')) fail('COFFER_KEY_NOT_WRAPPABLE', { reason: 'wrap with trusted' });
    const targetKey = this.#material(targetSlot);
    this.#gate(actor, 'key-management', targetSlot);
    this.#gate(actor, 'key-usage', wrappingSlot);
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
      const slot = this.#usable(actor, unwrapping, 'unwrap', params);
      const key = this.#material(slot);
      this.#checkCapacity([resolved]);
      this.#gate(actor, 'key-usage', slot);
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
      const slot = this.#usable(actor, base, 'derive', params, { keyType, bits });
      const key = this.#material(slot);
      const resolved = resolveTemplate('SECRET_KEY', keyType, attrs, { kind: 'derived', base: this.#index.attributes(slot) });
      this.#checkCapacity([resolved]);
      this.#gate(actor, 'key-usage', slot);
      return [[mech.deriveKey(params, key, { keyType, bits }), resolved]];
    }).then(one);
  }

  // ── management ─────────────────────────────────────────────────────────────────────────────

  /** Metadata of the objects `actor` may see that match `filter`, by ascending handle. */
  find(actor: Actor, filter: ObjectFilter = {}): ObjectInfo[] {
    for (const key of Object.keys(filter)) if (!FILTER_KEYS.has(key)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: key });
    const match = this.#matcher(filter);
    const out: ObjectInfo[] = [];
    for (const slot of this.#readable(actor)) if (match(slot)) out.push(this.#info(slot));
    return out.sort((a, b) => a.handle - b.handle);
  }

  /** The test of `filter`, prepared once: the label's bytes and hash, the attribute bits wanted. */
  #matcher(f: ObjectFilter): (slot: number) => boolean {
    const index = this.#index;
    const label: LabelQuery | undefined = f.label === undefined ? undefined : labelQuery(f.label);
    let mask = 0;
    let want = 0;
    for (const name of BOOLEAN_ATTRIBUTE_NAMES) {
      const value = f[name];
      if (typeof value !== 'boolean') continue;
      mask |= ATTRIBUTE_BIT[name];
      if (value) want |= ATTRIBUTE_BIT[name];
    }
    return (slot) =>
      (index.attributeBits(slot) & mask) === want
      && (f.handle === undefined || f.handle === index.handle(slot))
      && (f.class === undefined || f.class === index.cls(slot))
      && (f.keyType === undefined || f.keyType === index.keyType(slot))
      && (label === undefined || index.labelIs(slot, label))
      && (f.id === undefined || index.idEquals(slot, f.id));
  }

  getAttributes(actor: Actor, ref: KeyRef): ObjectInfo {
    return this.#info(this.#readableSlot(actor, ref));
  }

  /** The identity of the object `ref` names, under getAttributes' rules, without building the rest
   * of its attributes: what a creating call answers with its handle. */
  identityOf(actor: Actor, ref: KeyRef): Uint8Array {
    return this.#index.identity(this.#readableSlot(actor, ref)).slice();
  }

  /**
   * Changes one attribute (attributes.ts has the rules). The owner changes anything settable but
   * `trusted`; an admin changes `trusted` only, on any token object (CloudHSM's rule).
   */
  setAttribute(actor: Actor, ref: KeyRef, name: SettableAttribute, value: boolean | string | Uint8Array): Promise<void> {
    return this.#change('key.attribute', () => {
      const slot = this.#managed(actor, ref);
      const index = this.#index;
      const now = { attributes: index.attributes(slot), label: index.label(slot), id: index.id(slot) };
      const next = applyAttributeChange(index.cls(slot), index.keyType(slot), now, name, value, actor.role === 'admin' ? 'admin' : 'owner');
      this.#gate(actor, 'key-management', slot);
      return { puts: [[slot, { attributes: next.attributes, label: next.label, id: next.id }]] };
    });
  }

  /** Shares a token object with another crypto user (owner only; at most SHAREES_MAX). Idempotent. */
  share(actor: Actor, ref: KeyRef, userName: string): Promise<void> {
    return this.#change('key.share', () => {
      const slot = this.#owned(actor, ref);
      const user = userName.toLowerCase();
      const sharees = this.#index.sharees(slot);
      if (!this.#index.isToken(slot)) fail('COFFER_SESSION_OBJECT_NOT_SHAREABLE');
      if (user === this.#index.owner(slot)) fail('COFFER_ATTRIBUTE_INVALID', { attribute: 'sharee', reason: 'owner' });
      if (!this.#isCryptoUser(user)) fail('COFFER_USER_NOT_FOUND', { reason: 'not a crypto user' });
      if (sharees.includes(user)) return {};
      if (sharees.length >= SHAREES_MAX) fail('COFFER_SHARE_LIMIT', { max: SHAREES_MAX });
      this.#gate(actor, 'key-management', slot);
      return { puts: [[slot, { sharees: [...sharees, user] }]] };
    });
  }

  /** Stops sharing with `userName` (owner only). Idempotent. */
  unshare(actor: Actor, ref: KeyRef, userName: string): Promise<void> {
    return this.#change('key.unshare', () => {
      const slot = this.#owned(actor, ref);
      const user = userName.toLowerCase();
      const sharees = this.#index.sharees(slot);
      if (!sharees.includes(user)) return {};
      this.#gate(actor, 'key-management', slot);
      return { puts: [[slot, { sharees: sharees.filter((s) => s !== user) }]] };
    });
  }

  /** Destroys an object (owner only; destroyable=true). */
  destroy(actor: Actor, ref: KeyRef): Promise<void> {
    return this.#change('key.destroy', () => {
      const slot = this.#owned(actor, ref);
      if (!this.#index.has(slot, 'destroyable')) fail('COFFER_OBJECT_NOT_DESTROYABLE');
      this.#gate(actor, 'key-management', slot);
      return { deletes: [slot] };
    });
  }

  /** SPKI PEM of a public key, or of the public half of a private key. */
  exportPublic(actor: Actor, ref: KeyRef): string {
    const slot = this.#visible(actor, ref);
    const cls = this.#index.cls(slot);
    if (cls === 'SECRET_KEY' || cls === 'CERTIFICATE') fail('COFFER_KEY_TYPE_INCONSISTENT', { class: cls });
    const key = this.#material(slot);
    const pub = cls === 'PUBLIC_KEY' ? key : mech.publicFromPrivate(key);
    return pub.key.export({ type: 'spki', format: 'pem' }).toString();
  }

  /** A certificate object's DER and category: public, for whoever may see it (an admin: any token certificate). */
  certificate(actor: Actor, ref: KeyRef): { readonly der: Uint8Array; readonly category: number } {
    const slot = this.#readableSlot(actor, ref);
    const index = this.#index;
    if (!index.isCertificate(slot)) fail('COFFER_KEY_TYPE_INCONSISTENT', { class: index.cls(slot) });
    return { der: index.withMaterial(slot, (m) => m.slice()), category: index.category(slot) };
  }

  /**
   * The plaintext value of a secret or private key (raw bytes, or PKCS#8 DER): PKCS#11's
   * CKA_VALUE. Owner only; refused for sensitive or non-extractable keys (ATTRIBUTE_SENSITIVE)
   * and always in FIPS mode. The caller destroys the result.
   */
  exportPlaintext(actor: Actor, ref: KeyRef): SecretBytes {
    const slot = this.#owned(actor, ref);
    if (this.#mode === 'FIPS') fail('COFFER_FIPS_REFUSED', { operation: 'plaintext key export' });
    if (this.#index.isPublicKey(slot)) fail('COFFER_KEY_TYPE_INCONSISTENT', { class: 'PUBLIC_KEY' });
    if (this.#index.has(slot, 'sensitive') || !this.#index.has(slot, 'extractable')) fail('COFFER_ATTRIBUTE_SENSITIVE');
    this.#gate(actor, 'key-management', slot);
    return this.#index.withMaterial(slot, (bytes) => SecretBytes.copyOf(bytes));
  }

  /**
   * Drops every session object of `sessionId` (on logout or session close); returns how many. A
   * local change of volatile records only, so it is applied at once rather than queued: it touches
   * nothing a queued decision relies on, and a closed session's objects must be gone when close returns.
   */
  dropSessionObjects(sessionId: string): number {
    const gone = [...this.#sessionOf].filter(([, s]) => s.sessionId === sessionId).map(([handle]) => handle);
    if (gone.length > 0) {
      this.#state.apply({ scope: 'local', kind: 'session.objects', ops: gone.map((handle) => ({ op: 'delete', ns: SESSION_OBJECT_NAMESPACE, id: recordId(handle) })) });
    }
    return gone.length;
  }

  /** Token objects owned by `userId` (a user who owns any cannot be deleted). */
  countOwnedBy(userId: string): number {
    return this.#countTokens((slot) => this.#index.owner(slot) === userId);
  }

  /** Token objects shared with `userId`. */
  countSharedWith(userId: string): number {
    return this.#countTokens((slot) => this.#index.isSharee(slot, userId));
  }

  #countTokens(test: (slot: number) => boolean): number {
    let n = 0;
    for (const slot of this.#tokenSlots()) if (test(slot)) n++;
    return n;
  }

  *#tokenSlots(): Generator<number> {
    const index = this.#index;
    for (let slot = 0; slot < index.slotLimit; slot++) if (index.live(slot) && index.isToken(slot)) yield slot;
  }

  get tokenObjectCount(): number {
    return this.#index.tokenCount;
  }

  get sessionObjectCount(): number {
    return this.#index.size - this.#index.tokenCount;
  }

  /** How many built keys the table keeps now (at most OBJECT_KEY_CACHE_MAX, or the option). */
  get cachedKeyCount(): number {
    return this.#keys.size;
  }

  /** What the index's buffers hold, in bytes (columns, handle table and arena; the bench reports it). */
  get indexBytes(): number {
    return this.#index.heldBytes;
  }

  /** What anyone allowed to see the object may read about it: never key material. */
  #info(slot: number): ObjectInfo {
    const index = this.#index;
    const base = {
      handle: index.handle(slot), identity: index.identity(slot).slice(), class: index.cls(slot), keyType: index.keyType(slot), bits: index.bits(slot),
      label: index.label(slot), id: index.id(slot), attributes: Object.freeze(index.attributes(slot)), kcv: index.kcv(slot), owner: index.owner(slot),
      sharees: index.sharees(slot), manageKeyQuorum: index.manageKeyQuorum(slot), useKeyQuorum: index.useKeyQuorum(slot),
    };
    const curve = index.curve(slot);
    return curve === undefined ? base : { ...base, curve };
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
    const index = this.#index;
    for (const slot of [...this.#tokenSlots()].sort((a, b) => index.handle(a) - index.handle(b))) {
      const record = index.record(slot);
      let bytes: Uint8Array;
      try {
        bytes = encodeObjectRecord(record);
      } finally {
        record.material.destroy();
      }
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, bytes.length);
      h.update(length);
      h.update(bytes);
      bytes.fill(0);
    }
    return new Uint8Array(h.digest());
  }
}

// ── loading ──────────────────────────────────────────────────────────────────────────────────

/** Token object records read into an index, with the checks every load makes: each record under
 * its own handle's id, a token object, below the session range; the counter above every handle. */
class TokenLoad {
  readonly index: ObjectIndex;
  #highest = 0;
  #next = 1; // no counter record: nothing was ever created (0 is CK_INVALID_HANDLE)

  constructor(index: ObjectIndex, expected: number) {
    this.index = index;
    index.reserve(expected);
  }

  record(id: string, bytes: Uint8Array): void {
    const layout = readObjectRecordLayout(bytes);
    if (!isRecordIdOf(id, layout.handle) || !isTokenLayout(layout) || layout.handle >= SESSION_HANDLE_BASE) fail('COFFER_FORMAT_MALFORMED', { field: 'object record id' });
    this.index.put(layout, bytes);
    this.#highest = Math.max(this.#highest, layout.handle);
  }

  counter(bytes: Uint8Array): void {
    this.#next = decodeCounter(bytes);
  }

  /** The next token handle, once every record is in. */
  finish(): number {
    if (this.#next <= this.#highest) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
    return this.#next;
  }
}

/**
 * The token objects of a state being restored, indexed as the restore stages their records (pass 2
 * of hsm/backup/backup.ts), so that the table over the restored state need not read 100k records
 * back from the store and decrypt them again. It becomes a table's index only once the restore has
 * committed (the device's reload hands it to the new table): the index stays a view of committed
 * state. A failed restore discards it (zeroised). A record the load would refuse does not fail the
 * staging: the index is dropped and the new table reads the store as it always did, and refuses there.
 */
export class StagedObjects {
  #load: TokenLoad | undefined;

  /** `objects`: how many object records the backup says it holds (the index is sized for them). */
  constructor(objects: number) {
    this.#load = new TokenLoad(new ObjectIndex(), objects);
  }

  /** One staged record, any namespace (only token objects and the handle counter are kept). */
  put(ns: string, id: string, value: Uint8Array): void {
    const load = this.#load;
    if (load === undefined) return;
    try {
      if (ns === OBJECT_NAMESPACE) load.record(id, value);
      else if (ns === CONFIG_NS && id === COUNTER_ID) load.counter(value);
    } catch (e) {
      if (!isCofferError(e)) throw e;
      this.discard();
    }
  }

  /** Zeroises and drops what was built (a restore that did not commit). Idempotent; a no-op once taken. */
  discard(): void {
    this.#load?.index.close();
    this.#load = undefined;
  }

  /** @internal The table's constructor: the index and the next token handle, once (undefined if
   * discarded or refused: the table then reads the store). */
  take(): { readonly index: ObjectIndex; readonly nextTokenHandle: number } | undefined {
    const load = this.#load;
    this.#load = undefined;
    if (load === undefined) return undefined;
    try {
      return { index: load.index, nextTokenHandle: load.finish() };
    } catch (e) {
      load.index.close();
      if (!isCofferError(e)) throw e;
      return undefined;
    }
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

function decodeCounter(bytes: Uint8Array): number {
  if (bytes.length !== 8) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
  const next = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
  if (next < 1n || next > BigInt(SESSION_HANDLE_BASE)) fail('COFFER_FORMAT_MALFORMED', { field: 'handle counter' });
  return Number(next);
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
  return keyRecord(handle, owner, material, mech.materialToBytes(material), kcvOf(material), resolved);
}

/** The record of a key handed over as its bytes; they are wiped once copied. */
function encodedRecord(handle: Handle, owner: string, { encoded: key, resolved }: NewEncodedKey): ObjectRecord {
  return keyRecord(handle, owner, key, key.encoded, kcvOfSpki(key.spki), resolved);
}

/** A key's record from its stored bytes (raw / PKCS#8 / SPKI), which it takes over: copied into the
 * record's SecretBytes, then wiped. */
function keyRecord(handle: Handle, owner: string, key: Pick<mech.KeyMaterial, 'class' | 'keyType' | 'bits' | 'curve'>, bytes: Uint8Array, kcv: Uint8Array, resolved: ResolvedTemplate): ObjectRecord {
  let secret: SecretBytes;
  try {
    secret = SecretBytes.copyOf(bytes);
  } finally {
    bytes.fill(0);
  }
  const base = {
    handle, class: key.class, keyType: key.keyType, bits: key.bits,
    attributes: resolved.attributes, manageKeyQuorum: resolved.manageKeyQuorum, useKeyQuorum: resolved.useKeyQuorum,
    owner, sharees: [], label: resolved.label, id: resolved.id, kcv, material: secret,
  };
  return key.curve === undefined ? base : { ...base, curve: key.curve };
}

function certificateRecord(handle: Handle, owner: string, c: NewCertificate): ObjectRecord {
  const r = c.resolved;
  const base = {
    handle, class: 'CERTIFICATE' as const, keyType: c.keyType, bits: c.bits, attributes: r.attributes, manageKeyQuorum: 0, useKeyQuorum: 0,
    owner, sharees: [], label: r.label, id: r.id, kcv: new Uint8Array(0), material: SecretBytes.copyOf(c.der), category: r.category,
  };
  return c.curve === undefined ? base : { ...base, curve: c.curve };
}

/** CloudHSM's KCV conventions (crypto/kcv.ts): AES-ECB of a zero block, SHA-1 of the SPKI, PKCS#11 for generic secrets. */
function kcvOf(material: mech.KeyMaterial): Uint8Array {
  if (material.keyType === 'AES') return kcvAes(material.key);
  if (material.keyType === 'GENERIC_SECRET') return kcvSecret(material.key);
  return material.spki === undefined ? kcvPublicKey(material.key) : kcvOfSpki(material.spki);
}

/** Is the record a token object's (its token attribute)? */
function isTokenLayout(layout: ObjectRecordLayout): boolean {
  return (layout.attributeBits & ATTRIBUTE_BIT.token) !== 0;
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
