// The object table's in-memory index (docs/device.md "Objects"): every token and session object the
// table knows, compact enough that a device of 100k keys holds its index in about 14 MB rather than
// the ~120 MB a decoded record per object cost.
//
// Each object has a slot. What the checks of every call read — handle, class, key type, curve,
// size, the attribute bits, the two quorum values, the owner, the sharees, a hash of the label, the
// identity once computed — sits in columns (typed arrays indexed by slot); owner and sharee names
// are interned (one string per user, however many objects it owns). The label, id, KCV and key
// material sit in the arena (secret_arena.ts), one region per object, read only when a call needs
// them: find by label compares the hash column first. A handle finds its slot through one Map.
//
// Objects come in as record bytes, read in place (formats/object_record.ts readObjectRecordLayout):
// no record object, no per-field buffer. What goes out for a change or a digest is rebuilt as an
// ObjectRecord whose material the caller destroys. close() zeroises the arena and the identity
// column (restore and zeroise rely on it: the keys of a replaced state are destroyed, not left to
// the garbage collector).

import { assert } from '../../assert.js';
import { SecretBytes } from '../../crypto/secret_bytes.js';
import { BOOLEAN_ATTRIBUTE_NAMES, attributesFromBits, objectIdentityOf, type BooleanAttributeName, type ObjectRecord, type ObjectRecordLayout } from '../../formats/object_record.js';
import { OBJECT_UID_BYTES } from '../../formats/limits.js';
import type { BooleanAttributes, Curve, Handle, KeyType, ObjectClass } from '../types.js';
import { HandleMap } from './handle_map.js';
import { SecretArena, payloadAt, type ArenaRef } from './secret_arena.js';

const CLASSES: readonly ObjectClass[] = ['SECRET_KEY', 'PRIVATE_KEY', 'PUBLIC_KEY', 'CERTIFICATE'];
const KEY_TYPES: readonly KeyType[] = ['AES', 'GENERIC_SECRET', 'RSA', 'EC', 'EC_EDWARDS'];
const CURVES: readonly (Curve | undefined)[] = [undefined, 'P-256', 'P-384', 'P-521', 'secp256k1', 'Ed25519'];
/** Each boolean attribute's bit in the attribute field (formats/object_record.ts attributeBits). */
export const ATTRIBUTE_BIT = Object.fromEntries(BOOLEAN_ATTRIBUTE_NAMES.map((name, i) => [name, 1 << i])) as Readonly<Record<BooleanAttributeName, number>>;
const TOKEN_BIT = ATTRIBUTE_BIT.token;
const PUBLIC_KEY = CLASSES.indexOf('PUBLIC_KEY');
const CERTIFICATE = CLASSES.indexOf('CERTIFICATE');
/** Slot flags. */
const LIVE = 1;
const IDENTITY_KNOWN = 2;
/** Slots the columns start with; they grow by half again when full. */
const INITIAL_SLOTS = 64;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // arena labels were checked on the way in

/** FNV-1a over a label's UTF-8 bytes (`length` of them from `at`): find by label compares this first. */
export function labelHash(bytes: Uint8Array, at = 0, length = bytes.length): number {
  let h = 0x811c9dc5;
  for (let i = at; i < at + length; i++) h = Math.imul(h ^ (bytes[i] ?? 0), 0x01000193);
  return h >>> 0;
}

/** A label as find() looks for it: its UTF-8 bytes and their hash, computed once per search. */
export interface LabelQuery {
  readonly bytes: Uint8Array;
  readonly hash: number;
}

export function labelQuery(label: string): LabelQuery {
  const bytes = utf8.encode(label);
  return { bytes, hash: labelHash(bytes) };
}

/** The per-slot columns; replaced by larger ones as the index grows. */
interface Columns {
  readonly handle: Float64Array;
  readonly cls: Uint8Array;
  readonly keyType: Uint8Array;
  readonly curve: Uint8Array;
  readonly flags: Uint8Array;
  readonly bits: Uint32Array;
  readonly attributes: Uint32Array;
  /** Two per slot: key-management, then key-usage. */
  readonly quorum: Uint8Array;
  /** CKA_CERTIFICATE_CATEGORY of a certificate (0 for keys). */
  readonly category: Uint8Array;
  readonly owner: Uint32Array;
  readonly labelHash: Uint32Array;
  readonly cold: Float64Array;
  /** OBJECT_UID_BYTES per slot, valid once IDENTITY_KNOWN is set. */
  readonly identity: Uint8Array;
}

function columns(slots: number): Columns {
  return {
    handle: new Float64Array(slots), cls: new Uint8Array(slots), keyType: new Uint8Array(slots), curve: new Uint8Array(slots),
    flags: new Uint8Array(slots), bits: new Uint32Array(slots), attributes: new Uint32Array(slots), quorum: new Uint8Array(2 * slots), category: new Uint8Array(slots),
    owner: new Uint32Array(slots), labelHash: new Uint32Array(slots), cold: new Float64Array(slots), identity: new Uint8Array(OBJECT_UID_BYTES * slots),
  };
}

/** User names, one string each, counted by the objects that name them. */
class NameTable {
  readonly #ids = new Map<string, number>();
  readonly #names: (string | undefined)[] = [];
  readonly #refs: number[] = [];
  readonly #spare: number[] = [];

  acquire(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) {
      id = this.#spare.pop() ?? this.#names.length;
      this.#ids.set(name, id);
      this.#names[id] = name;
      this.#refs[id] = 0;
    }
    this.#refs[id] = (this.#refs[id] ?? 0) + 1;
    return id;
  }

  release(id: number): void {
    const refs = (this.#refs[id] ?? 0) - 1;
    const name = this.#names[id];
    assert(refs >= 0 && name !== undefined, 'a released name was acquired');
    this.#refs[id] = refs;
    if (refs > 0) return;
    this.#ids.delete(name);
    this.#names[id] = undefined;
    this.#spare.push(id);
  }

  name(id: number): string {
    const name = this.#names[id];
    assert(name !== undefined, 'an interned name');
    return name;
  }

  idOf(name: string): number | undefined {
    return this.#ids.get(name);
  }

  clear(): void {
    this.#ids.clear();
    this.#names.length = 0;
    this.#refs.length = 0;
    this.#spare.length = 0;
  }
}

export class ObjectIndex {
  #c: Columns;
  /** Slots below this have been used; slots in #spare are free again. */
  #top = 0;
  readonly #spare: number[] = [];
  readonly #slotOf: HandleMap;
  /** Sharee name ids of the few objects that have sharees. */
  readonly #sharees = new Map<number, readonly number[]>();
  readonly #names = new NameTable();
  readonly #arena = new SecretArena((slot, ref) => void (this.#c.cold[slot] = ref));
  #tokens = 0;

  constructor() {
    this.#c = columns(INITIAL_SLOTS);
    this.#slotOf = new HandleMap(this.#c.handle);
  }

  /** Makes room for `objects` objects in all, at once (a load that knows its count). */
  reserve(objects: number): void {
    if (objects > this.#c.handle.length) this.#resize(objects);
    this.#slotOf.reserve(objects);
  }

  get size(): number {
    return this.#slotOf.size;
  }

  get tokenCount(): number {
    return this.#tokens;
  }

  /** The slot of `handle`, or -1. */
  slotOf(handle: Handle): number {
    return this.#slotOf.get(handle);
  }

  /** One past the highest slot in use: iterate slots below it and skip those not `live`. */
  get slotLimit(): number {
    return this.#top;
  }

  live(slot: number): boolean {
    return ((this.#c.flags[slot] ?? 0) & LIVE) !== 0;
  }

  // ── in and out ─────────────────────────────────────────────────────────────────────────────

  /** Adds the object `bytes` hold (read as `layout`), replacing any object under its handle. */
  put(layout: ObjectRecordLayout, bytes: Uint8Array): number {
    const existing = this.#slotOf.get(layout.handle);
    if (existing >= 0) this.#release(existing);
    const slot = existing >= 0 ? existing : this.#newSlot();
    const c = this.#c;
    c.handle[slot] = layout.handle;
    c.cls[slot] = code(CLASSES, layout.class);
    c.keyType[slot] = code(KEY_TYPES, layout.keyType);
    c.curve[slot] = code(CURVES, layout.curve);
    c.flags[slot] = LIVE;
    c.bits[slot] = layout.bits;
    c.attributes[slot] = layout.attributeBits;
    c.quorum[2 * slot] = layout.manageKeyQuorum;
    c.quorum[2 * slot + 1] = layout.useKeyQuorum;
    c.category[slot] = layout.category ?? 0;
    c.owner[slot] = this.#names.acquire(layout.owner);
    if (layout.sharees.length > 0) this.#sharees.set(slot, layout.sharees.map((s) => this.#names.acquire(s)));
    c.labelHash[slot] = labelHash(bytes, layout.labelAt, layout.labelBytes);
    c.cold[slot] = this.#storeCold(slot, layout, bytes);
    if (existing < 0) this.#slotOf.set(layout.handle, slot);
    if (this.isToken(slot)) this.#tokens++;
    return slot;
  }

  /** Removes `handle`'s object, zeroising its bytes. */
  remove(handle: Handle): void {
    const slot = this.#slotOf.get(handle);
    if (slot < 0) return;
    this.#slotOf.delete(handle); // while the slot still holds the handle
    this.#release(slot);
    this.#spare.push(slot);
  }

  /** The object as a record; its material is a copy the caller destroys. */
  record(slot: number): ObjectRecord {
    const base = {
      handle: this.handle(slot), class: this.cls(slot), keyType: this.keyType(slot), bits: this.bits(slot), attributes: this.attributes(slot),
      manageKeyQuorum: this.manageKeyQuorum(slot), useKeyQuorum: this.useKeyQuorum(slot), owner: this.owner(slot), sharees: this.sharees(slot),
      label: this.label(slot), id: this.id(slot), kcv: this.kcv(slot), material: this.withMaterial(slot, (m) => SecretBytes.copyOf(m)),
    };
    const curve = this.curve(slot);
    const withCurve = curve === undefined ? base : { ...base, curve };
    return this.isCertificate(slot) ? { ...withCurve, category: this.category(slot) } : withCurve;
  }

  /** Zeroises every byte of key material and identity the index holds and forgets every object. */
  close(): void {
    this.#arena.close();
    this.#c.identity.fill(0);
    this.#c = columns(INITIAL_SLOTS);
    this.#slotOf.clear();
    this.#slotOf.useHandles(this.#c.handle);
    this.#sharees.clear();
    this.#names.clear();
    this.#spare.length = 0;
    this.#top = 0;
    this.#tokens = 0;
  }

  /** Bytes of the index's buffers: columns, handle table and arena (not the few JS objects around them). */
  get heldBytes(): number {
    const columnBytes = (Object.values(this.#c) as ArrayBufferView[]).reduce((n, a) => n + a.byteLength, 0);
    return columnBytes + this.#slotOf.heldBytes + this.#arena.heldBytes;
  }

  /** @internal Tests: views of the buffers that hold key material or identities, to check close(). */
  secretBuffersForTest(): Uint8Array[] {
    return [...this.#arena.buffersForTest(), this.#c.identity];
  }

  // ── what the checks read ───────────────────────────────────────────────────────────────────

  handle(slot: number): Handle {
    return this.#c.handle[slot] ?? 0;
  }

  cls(slot: number): ObjectClass {
    return decode(CLASSES, this.#c.cls[slot]);
  }

  isPublicKey(slot: number): boolean {
    return this.#c.cls[slot] === PUBLIC_KEY;
  }

  isCertificate(slot: number): boolean {
    return this.#c.cls[slot] === CERTIFICATE;
  }

  /** CKA_CERTIFICATE_CATEGORY of a certificate. */
  category(slot: number): number {
    return this.#c.category[slot] ?? 0;
  }

  keyType(slot: number): KeyType {
    return decode(KEY_TYPES, this.#c.keyType[slot]);
  }

  curve(slot: number): Curve | undefined {
    return CURVES[this.#c.curve[slot] ?? 0];
  }

  bits(slot: number): number {
    return this.#c.bits[slot] ?? 0;
  }

  /** The attribute bits (formats/object_record.ts attributeBits). */
  attributeBits(slot: number): number {
    return this.#c.attributes[slot] ?? 0;
  }

  attributes(slot: number): BooleanAttributes {
    return attributesFromBits(this.attributeBits(slot));
  }

  /** Is boolean attribute `name` set? */
  has(slot: number, name: BooleanAttributeName): boolean {
    return (this.attributeBits(slot) & ATTRIBUTE_BIT[name]) !== 0;
  }

  isToken(slot: number): boolean {
    return (this.attributeBits(slot) & TOKEN_BIT) !== 0;
  }

  manageKeyQuorum(slot: number): number {
    return this.#c.quorum[2 * slot] ?? 0;
  }

  useKeyQuorum(slot: number): number {
    return this.#c.quorum[2 * slot + 1] ?? 0;
  }

  owner(slot: number): string {
    return this.#names.name(this.#c.owner[slot] ?? 0);
  }

  sharees(slot: number): string[] {
    return (this.#sharees.get(slot) ?? []).map((id) => this.#names.name(id));
  }

  isSharee(slot: number, userId: string): boolean {
    const ids = this.#sharees.get(slot);
    if (ids === undefined) return false;
    const id = this.#names.idOf(userId);
    return id !== undefined && ids.includes(id);
  }

  /** Does the object's label equal the query's? The hash column decides most objects. */
  labelIs(slot: number, query: LabelQuery): boolean {
    return this.#c.labelHash[slot] === query.hash && equalBytes(this.#cold(slot).label, query.bytes);
  }

  label(slot: number): string {
    return utf8Decoder.decode(this.#cold(slot).label);
  }

  idEquals(slot: number, id: Uint8Array): boolean {
    return equalBytes(this.#cold(slot).id, id);
  }

  id(slot: number): Uint8Array {
    return this.#cold(slot).id.slice();
  }

  kcv(slot: number): Uint8Array {
    return this.#cold(slot).kcv.slice();
  }

  /** Runs `fn` with a view of the key material; the view must not escape `fn`. */
  withMaterial<T>(slot: number, fn: (material: Uint8Array) => T): T {
    return fn(this.#cold(slot).material);
  }

  /** The object's identity (objectIdentity), computed once: a view the caller copies to keep. */
  identity(slot: number): Uint8Array {
    const c = this.#c;
    const at = slot * OBJECT_UID_BYTES;
    if (((c.flags[slot] ?? 0) & IDENTITY_KNOWN) === 0) {
      c.identity.set(this.withMaterial(slot, (m) => objectIdentityOf(this.cls(slot), this.keyType(slot), m)), at);
      c.flags[slot] = (c.flags[slot] ?? 0) | IDENTITY_KNOWN;
    }
    return c.identity.subarray(at, at + OBJECT_UID_BYTES);
  }

  // ── slots and the arena ────────────────────────────────────────────────────────────────────

  #newSlot(): number {
    const spare = this.#spare.pop();
    if (spare !== undefined) return spare;
    if (this.#top === this.#c.handle.length) this.#grow();
    return this.#top++;
  }

  #grow(): void {
    this.#resize(Math.ceil(this.#c.handle.length * 1.5));
  }

  #resize(slots: number): void {
    const old = this.#c;
    const next = columns(slots);
    for (const name of Object.keys(old) as (keyof Columns)[]) next[name].set(old[name]);
    old.identity.fill(0);
    this.#c = next;
    this.#slotOf.useHandles(next.handle);
  }

  /** Forgets what a slot holds (its arena region zeroised, its names released); the slot stays mapped. */
  #release(slot: number): void {
    const c = this.#c;
    if (this.isToken(slot)) this.#tokens--;
    this.#arena.free(c.cold[slot] ?? 0);
    this.#names.release(c.owner[slot] ?? 0);
    for (const id of this.#sharees.get(slot) ?? []) this.#names.release(id);
    this.#sharees.delete(slot);
    c.identity.fill(0, slot * OBJECT_UID_BYTES, (slot + 1) * OBJECT_UID_BYTES);
    c.flags[slot] = 0;
  }

  /** The label, id, KCV and material, each behind its length (2, 2, 1, 2 bytes), in one region.
   * Byte by byte: the fields are short, and a view per field would cost more than the copy. */
  #storeCold(slot: number, l: ObjectRecordLayout, bytes: Uint8Array): ArenaRef {
    const ref = this.#arena.alloc(7 + l.labelBytes + l.idBytes + l.kcvBytes + l.materialBytes, slot);
    const chunk = this.#arena.chunkOf(ref);
    let to = copyField(bytes, l.labelAt, l.labelBytes, 2, chunk, payloadAt(ref));
    to = copyField(bytes, l.idAt, l.idBytes, 2, chunk, to);
    to = copyField(bytes, l.kcvAt, l.kcvBytes, 1, chunk, to);
    copyField(bytes, l.materialAt, l.materialBytes, 2, chunk, to);
    return ref;
  }

  /** Views of a slot's label, id, KCV and material in the arena. */
  #cold(slot: number): { label: Uint8Array; id: Uint8Array; kcv: Uint8Array; material: Uint8Array } {
    assert(this.live(slot), 'a live slot');
    const b = this.#arena.bytes(this.#c.cold[slot] ?? 0);
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const labelAt = 2;
    const idAt = labelAt + view.getUint16(0) + 2;
    const kcvAt = idAt + view.getUint16(idAt - 2) + 1;
    const materialAt = kcvAt + view.getUint8(kcvAt - 1) + 2;
    return {
      label: b.subarray(labelAt, idAt - 2), id: b.subarray(idAt, kcvAt - 1), kcv: b.subarray(kcvAt, materialAt - 2),
      material: b.subarray(materialAt, materialAt + view.getUint16(materialAt - 2)),
    };
  }
}

/** Writes `length` (big-endian, in `lengthBytes`) and then `from`'s bytes at `at` in `to`; returns
 * where the next field goes. */
function copyField(from: Uint8Array, fromAt: number, length: number, lengthBytes: 1 | 2, to: Uint8Array, at: number): number {
  if (lengthBytes === 2) to[at++] = length >>> 8;
  to[at++] = length & 0xff;
  for (let i = 0; i < length; i++) to[at + i] = from[fromAt + i] ?? 0;
  return at + length;
}

function code<T>(values: readonly T[], value: T): number {
  const i = values.indexOf(value);
  assert(i >= 0, 'a value the index can hold');
  return i;
}

function decode<T>(values: readonly T[], i: number | undefined): T {
  const value = values[i ?? -1];
  assert(value !== undefined, 'a code the index wrote');
  return value;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
