// Change set format v1: the outcome of one device operation as exact record writes and deletes
// (docs/architecture.md §5, docs/device.md "State changes"). The device decides an operation against
// its current state and records everything it decided — handles, generated key material, password
// verifiers, counters, timestamps — as the records to write; `apply` (src/hsm/state/) then commits
// them without deciding anything. A change set is what a cluster journal entry carries: HSMs replay
// outcomes, never requests, because key generation is random and handles must agree.
//
// Encoding v1 (integers big-endian; every length checked against its limit before it is read):
//   0  4  magic 'CFCS'
//   4  2  version = 1
//   6  1  scope: 1 cluster-wide, 2 local
//   7  2  kind (CHANGE_KINDS: what operation decided it; for logs and journal readers)
//   9  4  op count (1..CHANGE_SET_OPS_MAX)
//  13  …  ops, each:
//         1  type: 1 put, 2 delete
//         1  namespace length (1..SEALED_NAMESPACE_BYTES_MAX), then the namespace (UTF-8)
//         2  id length (1..SEALED_RECORD_ID_BYTES_MAX), then the id (UTF-8)
//         put only: 4  value length (0..SEALED_RECORD_BYTES_MAX), then the value
//   end   nothing may follow; the whole encoding is at most CHANGE_SET_BYTES_MAX
//
// The state position record (namespace 'state', id 'position') that apply advances for every
// cluster-wide change set is here too. Version 2 (written since the device applies journal
// entries): u16 version = 2 ‖ u64 position ‖ 32-byte lineage ‖ 32-byte object lineage ‖ u64 journal
// head seq ‖ 32-byte journal head hash (114 bytes). Version 1 (still read: older stores and backups)
// is the first 74 bytes with version 1, and means journal head seq 0. lineage' = SHA-256("coffer
// state lineage v1\0" ‖ lineage ‖ SHA-256(encoded change set)) for every cluster-wide change set,
// and the object lineage advances the same way (domain "coffer object lineage v1\0") only for
// change sets that touch the key objects. The journal head is (seq, chain hash) of the last journal
// entry applied (docs/journal-format.md "The chain"); at seq 0 the hash field is zero and stands for
// the cluster's genesis value, which the journal computes from the cluster id.
// Values may hold key material: an encoded change set is secret and is wiped by whoever holds it.

import { createHash } from 'node:crypto';
import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { ByteReader } from './byte_reader.js';
import { CHANGE_SET_BYTES_MAX, CHANGE_SET_OPS_MAX, SEALED_NAMESPACE_BYTES_MAX, SEALED_RECORD_BYTES_MAX, SEALED_RECORD_ID_BYTES_MAX } from './limits.js';

export const CHANGE_SET_MAGIC: Uint8Array = new TextEncoder().encode('CFCS');
export const CHANGE_SET_VERSION = 1;
const HEADER_BYTES = 13;

/** Cluster-wide changes travel to every HSM of the cluster (the journal); local ones never leave
 * the device (its provisioning, session objects). docs/device.md "State changes" lists which is which. */
export type ChangeScope = 'cluster' | 'local';
const SCOPE_CODES: Readonly<Record<ChangeScope, number>> = { cluster: 1, local: 2 };

/** What decided a change set. Codes are stable: journal readers and logs name changes by them. */
export const CHANGE_KINDS = {
  'key.generate': 0x0001,
  'key.generate-pair': 0x0002,
  'key.import': 0x0003,
  'key.unwrap': 0x0004,
  'key.derive': 0x0005,
  'key.destroy': 0x0006,
  'key.attribute': 0x0007,
  'key.share': 0x0008,
  'key.unshare': 0x0009,
  'certificate.import': 0x000a,
  'key.copy': 0x000b,
  'user.create': 0x0010,
  'user.delete': 0x0011,
  'user.password': 0x0012,
  'user.login': 0x0013,
  'user.unlock': 0x0014,
  'user.quorum-key': 0x0015,
  'user.activate': 0x0016,
  'quorum.value': 0x0020,
  'cluster.csr': 0x0030,
  'cluster.initialise': 0x0031,
  'cluster.clone-journal': 0x0032,
  'device.identity': 0x0040,
  'device.manufacture': 0x0041,
  'device.commission': 0x0042,
  'session.objects': 0x0050,
} as const;
export type ChangeKind = keyof typeof CHANGE_KINDS;
const KINDS_BY_CODE = new Map<number, ChangeKind>(Object.entries(CHANGE_KINDS).map(([k, c]) => [c, k as ChangeKind]));

export type RecordOp =
  | { readonly op: 'put'; readonly ns: string; readonly id: string; readonly value: Uint8Array }
  | { readonly op: 'delete'; readonly ns: string; readonly id: string };

export interface ChangeSet {
  readonly scope: ChangeScope;
  readonly kind: ChangeKind;
  readonly ops: readonly RecordOp[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function keyBytes(s: string, max: number, field: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length === 0 || b.length > max) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field, max });
  if (utf8.decode(b) !== s) fail('COFFER_FORMAT_MALFORMED', { format: 'change set', field });
  return b;
}

/** One op's bytes in the encoding: its code, the namespace and id with their lengths, a put's value with its length. */
function opBytes(nsBytes: number, idBytes: number, op: RecordOp): number {
  return 1 + 1 + nsBytes + 2 + idBytes + (op.op === 'put' ? 4 + op.value.length : 0);
}

/** The bytes `ops` take encoded as one change set (what encodeChangeSet checks against
 * CHANGE_SET_BYTES_MAX), without encoding them: for whoever gathers ops into one change set. */
export function changeSetBytes(ops: readonly RecordOp[]): number {
  return ops.reduce((n, op) => n + opBytes(Buffer.byteLength(op.ns, 'utf8'), Buffer.byteLength(op.id, 'utf8'), op), HEADER_BYTES);
}

/** Encodes a change set; refuses (typed) what the decoder would refuse. The output holds the values:
 * the caller wipes it. */
export function encodeChangeSet(cs: ChangeSet): Uint8Array {
  if (cs.ops.length === 0 || cs.ops.length > CHANGE_SET_OPS_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field: 'ops', max: CHANGE_SET_OPS_MAX });
  const parts = cs.ops.map((op) => {
    const ns = keyBytes(op.ns, SEALED_NAMESPACE_BYTES_MAX, 'namespace');
    const id = keyBytes(op.id, SEALED_RECORD_ID_BYTES_MAX, 'id');
    if (op.op === 'put' && op.value.length > SEALED_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field: 'value', max: SEALED_RECORD_BYTES_MAX });
    return { op, ns, id };
  });
  const size = parts.reduce((n, p) => n + opBytes(p.ns.length, p.id.length, p.op), HEADER_BYTES);
  if (size > CHANGE_SET_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field: 'bytes', max: CHANGE_SET_BYTES_MAX });
  const out = new Uint8Array(new ArrayBuffer(size));
  const v = new DataView(out.buffer);
  out.set(CHANGE_SET_MAGIC, 0);
  v.setUint16(4, CHANGE_SET_VERSION);
  v.setUint8(6, SCOPE_CODES[cs.scope]);
  v.setUint16(7, CHANGE_KINDS[cs.kind]);
  v.setUint32(9, cs.ops.length);
  let at = HEADER_BYTES;
  for (const { op, ns, id } of parts) {
    v.setUint8(at++, op.op === 'put' ? 1 : 2);
    v.setUint8(at++, ns.length);
    out.set(ns, at);
    at += ns.length;
    v.setUint16(at, id.length);
    out.set(id, at + 2);
    at += 2 + id.length;
    if (op.op === 'put') {
      v.setUint32(at, op.value.length);
      out.set(op.value, at + 4);
      at += 4 + op.value.length;
    }
  }
  assert(at === size, 'change set fields fill the encoding exactly');
  return out;
}

/** UTF-8 text of `n` bytes (1..max), the length checked before the bytes are read. */
function readText(r: ByteReader, n: number, max: number, field: string): string {
  if (n === 0 || n > max) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field, max });
  const bytes = r.view(n);
  try {
    return utf8.decode(bytes);
  } catch (e) {
    return fail('COFFER_FORMAT_MALFORMED', { format: 'change set', field }, e);
  }
}

/** Decodes exactly one change set. Magic and version first (an unknown version is named), then every
 * length against its limit before the bytes behind it are read. Values are fresh copies. */
export function decodeChangeSet(bytes: Uint8Array): ChangeSet {
  if (bytes.length > CHANGE_SET_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field: 'bytes', max: CHANGE_SET_BYTES_MAX });
  if (bytes.length < CHANGE_SET_MAGIC.length || CHANGE_SET_MAGIC.some((m, i) => bytes[i] !== m)) fail('COFFER_FORMAT_BAD_MAGIC', { expected: 'coffer change set' });
  const r = new ByteReader(bytes, CHANGE_SET_MAGIC.length);
  const version = r.u16();
  if (version !== CHANGE_SET_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'change set', version, supported: CHANGE_SET_VERSION });
  const scopeCode = r.u8();
  const scope: ChangeScope = scopeCode === 1 ? 'cluster' : scopeCode === 2 ? 'local' : fail('COFFER_FORMAT_MALFORMED', { format: 'change set', field: 'scope' });
  const kind = KINDS_BY_CODE.get(r.u16()) ?? fail('COFFER_FORMAT_MALFORMED', { format: 'change set', field: 'kind' });
  const count = r.u32();
  if (count === 0 || count > CHANGE_SET_OPS_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field: 'ops', max: CHANGE_SET_OPS_MAX });
  const ops: RecordOp[] = [];
  for (let i = 0; i < count; i++) {
    const type = r.u8();
    if (type !== 1 && type !== 2) fail('COFFER_FORMAT_MALFORMED', { format: 'change set', field: 'op' });
    const ns = readText(r, r.u8(), SEALED_NAMESPACE_BYTES_MAX, 'namespace');
    const id = readText(r, r.u16(), SEALED_RECORD_ID_BYTES_MAX, 'id');
    if (type === 2) {
      ops.push({ op: 'delete', ns, id });
      continue;
    }
    const n = r.u32();
    if (n > SEALED_RECORD_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'change set', field: 'value', max: SEALED_RECORD_BYTES_MAX });
    ops.push({ op: 'put', ns, id, value: r.copy(n) });
  }
  if (r.at !== bytes.length) fail('COFFER_FORMAT_MALFORMED', { format: 'change set', field: 'trailing bytes' });
  return { scope, kind, ops };
}

/** Zeroises every value of a change set (they may hold key material or verifiers). */
export function wipeChangeSet(cs: ChangeSet): void {
  for (const op of cs.ops) if (op.op === 'put') op.value.fill(0);
}

// ── state position ────────────────────────────────────────────────────────────────────────────

export const STATE_NAMESPACE = 'state';
export const STATE_POSITION_ID = 'position';
/** Version 2 adds the journal head; version 1 is still read. */
const POSITION_VERSION = 2;
const POSITION_V1_BYTES = 2 + 8 + 32 + 32;
const POSITION_BYTES = POSITION_V1_BYTES + 8 + 32;
const LINEAGE_DOMAIN = 'coffer state lineage v1\0';
const OBJECT_LINEAGE_DOMAIN = 'coffer object lineage v1\0';
const U64_MAX = (1n << 64n) - 1n;

/** The last journal entry applied: its sequence number and chain hash (zero bytes at seq 0, where
 * the journal's genesis value for the cluster stands in). */
export interface JournalHead {
  readonly seq: bigint;
  readonly hash: Uint8Array;
}

/** How many cluster-wide change sets the state has applied, and a hash of which ones, in order:
 * two devices with the same position and lineage applied the same change sets from the same start.
 * The object lineage hashes only the change sets that touched key objects: two devices with the same
 * object lineage hold the same objects under the same handles, whatever else (a failed login, a new
 * user) differs between them. `journal` is the journal head: which journal entries the state holds
 * (journal entries are cluster-wide change sets too, so they advance the position and lineages as
 * well; the change sets of cluster initialisation, decided before the journal exists, do not move
 * the head). */
export interface StatePosition {
  readonly position: bigint;
  readonly lineage: Uint8Array;
  readonly objectLineage: Uint8Array;
  readonly journal: JournalHead;
}

/** Where a device that never applied a cluster-wide change set stands. */
export const INITIAL_STATE_POSITION: StatePosition = Object.freeze({
  position: 0n, lineage: new Uint8Array(32), objectLineage: new Uint8Array(32), journal: Object.freeze({ seq: 0n, hash: new Uint8Array(32) }),
});

export function encodeStatePosition(p: StatePosition): Uint8Array {
  assert(p.position >= 0n && p.position <= U64_MAX && p.lineage.length === 32 && p.objectLineage.length === 32, 'state position fields');
  assert(p.journal.seq >= 0n && p.journal.seq <= U64_MAX && p.journal.hash.length === 32, 'journal head fields');
  assert(p.journal.seq > 0n || p.journal.hash.every((b) => b === 0), 'the head at seq 0 is the genesis, stored as zeros');
  const out = new Uint8Array(POSITION_BYTES);
  const v = new DataView(out.buffer);
  v.setUint16(0, POSITION_VERSION);
  v.setBigUint64(2, p.position);
  out.set(p.lineage, 10);
  out.set(p.objectLineage, 42);
  v.setBigUint64(74, p.journal.seq);
  out.set(p.journal.hash, 82);
  return out;
}

/** Reads version 2, and version 1 (journal head seq 0). */
export function decodeStatePosition(bytes: Uint8Array): StatePosition {
  if (bytes.length < 2) fail('COFFER_FORMAT_TRUNCATED', { format: 'state position' });
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint16(0);
  if (version !== 1 && version !== POSITION_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: 'state position', version, supported: POSITION_VERSION });
  if (bytes.length !== (version === 1 ? POSITION_V1_BYTES : POSITION_BYTES)) fail('COFFER_FORMAT_MALFORMED', { format: 'state position' });
  const journal = version === 1 ? { seq: 0n, hash: new Uint8Array(32) } : { seq: v.getBigUint64(74), hash: bytes.slice(82, 114) };
  if (journal.seq === 0n && journal.hash.some((b) => b !== 0)) fail('COFFER_FORMAT_MALFORMED', { format: 'state position', field: 'journal head' });
  return { position: v.getBigUint64(2), lineage: bytes.slice(10, 42), objectLineage: bytes.slice(42, 74), journal };
}

/** The position after applying the change set whose encoding is `encoded` (`touchesObjects`: it
 * writes or deletes key objects or their handle counter; `head`: the journal entry it came in, if
 * it came in one — the journal head moves to it). */
export function nextStatePosition(p: StatePosition, encoded: Uint8Array, touchesObjects: boolean, head?: JournalHead): StatePosition {
  if (p.position >= U64_MAX) fail('COFFER_FORMAT_LIMIT', { format: 'state position', field: 'position' });
  assert(head === undefined || head.seq === p.journal.seq + 1n, 'the journal head moves one entry at a time');
  const entry = createHash('sha256').update(encoded).digest();
  const chain = (domain: string, previous: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(domain).update(previous).update(entry).digest());
  return {
    position: p.position + 1n,
    lineage: chain(LINEAGE_DOMAIN, p.lineage),
    objectLineage: touchesObjects ? chain(OBJECT_LINEAGE_DOMAIN, p.objectLineage) : p.objectLineage.slice(),
    journal: head === undefined ? { seq: p.journal.seq, hash: p.journal.hash.slice() } : { seq: head.seq, hash: head.hash.slice() },
  };
}
