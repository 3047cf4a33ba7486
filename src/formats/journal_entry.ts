// Journal entry format v1: one cluster-wide change set (formats/change_set.ts), sealed under the
// cluster sync key that only the cluster's HSMs hold, numbered, chained by hash to the entry before
// it, tagged with the HSM that prepared it and bound to its cluster (docs/journal-format.md,
// docs/architecture.md §5). The control plane orders and relays entries; it sees the header (cluster
// id, sequence number, originator, sizes) and never the change set, and cannot alter, forge,
// reorder or replay an entry without the HSM that opens it refusing it.
//
// Layout (integers big-endian; every length checked against its limit before it is used):
//    0   4  magic 'CFJE'
//    4   2  version = 1
//    6   2  suite = 1: HKDF-SHA-256 per-entry key, AES-256-GCM STREAM body, SHA-256 chain
//    8   2  header length H (98 ≤ H ≤ JOURNAL_HEADER_BYTES_MAX)
//   10   8  sequence number (≥ 1)
//   18  32  predecessor: the chain hash of entry seq − 1 (entry 1: the cluster's genesis value)
//   50   8  sync key id: first 8 bytes of HMAC-SHA-256(sync key, "coffer key id v1")
//   58  32  salt: fresh random bytes for every entry sealed
//   90   4  body length B (16 ≤ B ≤ JOURNAL_BODY_BYTES_MAX)
//   94   …  cluster id, then originator (the sealing HSM's serial): each u8 length (1..64) ‖ ASCII
//    H   B  body: STREAM(AES-256-GCM) of the encoded change set, 64 KiB segments
//   The entry is exactly H + B bytes.
//
// Per-entry key K_e = HKDF-SHA-256(IKM = sync key, salt = salt, info = "coffer journal v1 entry
// key" ‖ 0x00 ‖ SHA-256(header)), 32 bytes (RFC 5869). The body is sealed under K_e with the
// segmented stream of crypto/aead_stream.ts, nonce prefix 0^7 (each K_e seals one stream only) and
// the whole header as every segment's AAD. Several HSMs seal under one sync key with no shared
// counter, and an HSM restored from an old backup would repeat any counter it kept, so the nonce
// cannot be a counter; a 256-bit random salt makes every entry's key its own (docs/journal-format.md
// "Keys and nonces").
//
// Chain hash of an entry = SHA-256("coffer journal v1 chain" ‖ 0x00 ‖ the whole entry); genesis =
// SHA-256("coffer journal v1 genesis" ‖ 0x00 ‖ cluster id). Anyone can compute both: the control
// plane checks the linkage of what it stores without any key.
//
// Opening checks, in order: magic (COFFER_FORMAT_BAD_MAGIC); version and suite
// (COFFER_FORMAT_UNKNOWN_VERSION); header fields and exact length (COFFER_JOURNAL_TAMPERED); sync key
// id (COFFER_JOURNAL_WRONG_KEY — informative: the id is authenticated only by the key it names); the
// AEAD over header and body (COFFER_JOURNAL_TAMPERED); then, on authenticated fields only, cluster
// (COFFER_JOURNAL_WRONG_CLUSTER), sequence number (COFFER_JOURNAL_OUT_OF_ORDER) and predecessor
// (COFFER_JOURNAL_FORK); last the change set, which must decode and be cluster-wide.

import { createHash, createHmac } from 'node:crypto';
import { assert } from '../assert.js';
import { hkdfSha256 } from '../crypto/hkdf.js';
import { AEAD_TAG_BYTES, openStream, sealStream, sealedStreamLength } from '../crypto/aead_stream.js';
import { secretKeyObject, type SecretBytes, type SecretKeyInput } from '../crypto/secret_bytes.js';
import { CofferError, fail, isCofferError } from '../errors.js';
import { ByteReader } from './byte_reader.js';
import { decodeChangeSet, encodeChangeSet, wipeChangeSet, type ChangeSet } from './change_set.js';
import { JOURNAL_BODY_BYTES_MAX, JOURNAL_HEADER_BYTES_MAX, JOURNAL_SEGMENT_BYTES, JOURNAL_STRING_BYTES_MAX } from './limits.js';

export const JOURNAL_ENTRY_MAGIC: readonly number[] = [0x43, 0x46, 0x4a, 0x45]; // 'CFJE'
export const JOURNAL_ENTRY_VERSION = 1;
/** Suite 1: HKDF-SHA-256 per-entry key, AES-256-GCM STREAM body in 64 KiB segments, SHA-256 chain. */
export const JOURNAL_SUITE = 1;
export const JOURNAL_HASH_BYTES = 32;
export const JOURNAL_SALT_BYTES = 32;
export const JOURNAL_KEY_ID_BYTES = 8;
/** Bytes before the two strings. */
const FIXED_BYTES = 94;
/** The shortest header: both strings one character long. */
const HEADER_BYTES_MIN = FIXED_BYTES + 2 + 2;
const U64_MAX = (1n << 64n) - 1n;
const FORMAT = 'journal entry';
const KEY_ID_LABEL = 'coffer key id v1';
const ENTRY_KEY_INFO = 'coffer journal v1 entry key\0';
const CHAIN_DOMAIN = 'coffer journal v1 chain\0';
const GENESIS_DOMAIN = 'coffer journal v1 genesis\0';
const ENTRY_KEY_BYTES = 32;
/** Every K_e seals exactly one stream, so the stream's nonce prefix may be constant. */
const STREAM_PREFIX = new Uint8Array(7);
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

/** What a header says. Nothing in it is secret; nothing in it is authenticated until the entry opens. */
export interface JournalEntryHeader {
  readonly seq: bigint;
  readonly predecessor: Uint8Array;
  readonly syncKeyId: Uint8Array;
  readonly salt: Uint8Array;
  readonly bodyBytes: number;
  readonly clusterId: string;
  readonly originator: string;
}

export interface SealJournalEntryInput {
  readonly syncKey: SecretKeyInput;
  readonly clusterId: string;
  /** The serial of the HSM that prepares the entry. */
  readonly originator: string;
  readonly seq: bigint;
  readonly predecessor: Uint8Array;
  /** JOURNAL_SALT_BYTES fresh from a CSPRNG for every entry sealed (fixed only for known-answer vectors). */
  readonly salt: Uint8Array;
  /** Cluster-wide; its values stay the caller's (sealing copies them into the encoding and wipes that). */
  readonly changeSet: ChangeSet;
}

export interface SealedJournalEntry {
  readonly entry: Uint8Array;
  /** The entry's chain hash: the predecessor of the entry that follows it. */
  readonly hash: Uint8Array;
}

/** What an HSM expects of the next entry: its key and cluster, and the head it stands at. */
export interface JournalExpectation {
  readonly syncKey: SecretKeyInput;
  readonly clusterId: string;
  readonly seq: bigint;
  readonly predecessor: Uint8Array;
}

export interface OpenedJournalEntry {
  readonly header: JournalEntryHeader;
  /** Fresh copies of the values (key material among them): the caller wipes them, or apply does. */
  readonly changeSet: ChangeSet;
  readonly hash: Uint8Array;
}

// ── hashes and ids: no secret needed ───────────────────────────────────────────────────────────

/** The chain hash of a whole sealed entry. */
export function journalEntryHash(entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(CHAIN_DOMAIN).update(entry).digest());
}

/** The predecessor of a cluster's entry 1. */
export function journalGenesis(clusterId: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(GENESIS_DOMAIN).update(asciiBytes(clusterId, 'cluster-id')).digest());
}

/** The non-secret id of a sync key, as entry headers carry it: the key id of crypto/backup_keys.ts. */
export function syncKeyIdOf(syncKey: SecretKeyInput): Uint8Array {
  return new Uint8Array(createHmac('sha256', secretKeyObject(syncKey)).update(KEY_ID_LABEL, 'utf8').digest().subarray(0, JOURNAL_KEY_ID_BYTES));
}

// ── sealing ─────────────────────────────────────────────────────────────────────────────────────

/** Seals one cluster-wide change set as entry `seq`. Refuses (typed) what the decoder would refuse. */
export function sealJournalEntry(input: SealJournalEntryInput): SealedJournalEntry {
  assert(input.changeSet.scope === 'cluster', 'only cluster-wide change sets are journaled');
  assert(input.salt.length === JOURNAL_SALT_BYTES && input.predecessor.length === JOURNAL_HASH_BYTES, 'journal salt and predecessor are 32 bytes');
  const plaintext = encodeChangeSet(input.changeSet);
  try {
    const bodyBytes = sealedStreamLength(plaintext.length, JOURNAL_SEGMENT_BYTES);
    assert(bodyBytes <= JOURNAL_BODY_BYTES_MAX, 'a change set within its limit fits an entry body');
    const header = encodeHeader({
      seq: input.seq, predecessor: input.predecessor, syncKeyId: syncKeyIdOf(input.syncKey), salt: input.salt, bodyBytes,
      clusterId: input.clusterId, originator: input.originator,
    });
    const entryKey = deriveEntryKey(input.syncKey, input.salt, header);
    let body: Uint8Array;
    try {
      body = sealStream(entryKey, STREAM_PREFIX, header, plaintext, JOURNAL_SEGMENT_BYTES);
    } finally {
      entryKey.destroy();
    }
    assert(body.length === bodyBytes, 'the sealed body has the length its header states');
    const entry = new Uint8Array(header.length + body.length);
    entry.set(header, 0);
    entry.set(body, header.length);
    return { entry, hash: journalEntryHash(entry) };
  } finally {
    plaintext.fill(0);
  }
}

function encodeHeader(h: JournalEntryHeader): Uint8Array {
  if (h.seq < 1n || h.seq > U64_MAX) fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field: 'seq' });
  const cluster = asciiBytes(h.clusterId, 'cluster-id');
  const originator = asciiBytes(h.originator, 'originator');
  const size = FIXED_BYTES + 1 + cluster.length + 1 + originator.length;
  assert(size <= JOURNAL_HEADER_BYTES_MAX, 'two bounded strings fit the header limit');
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  out.set(JOURNAL_ENTRY_MAGIC, 0);
  v.setUint16(4, JOURNAL_ENTRY_VERSION);
  v.setUint16(6, JOURNAL_SUITE);
  v.setUint16(8, size);
  v.setBigUint64(10, h.seq);
  out.set(h.predecessor, 18);
  out.set(h.syncKeyId, 50);
  out.set(h.salt, 58);
  v.setUint32(90, h.bodyBytes);
  out[FIXED_BYTES] = cluster.length;
  out.set(cluster, FIXED_BYTES + 1);
  out[FIXED_BYTES + 1 + cluster.length] = originator.length;
  out.set(originator, FIXED_BYTES + 2 + cluster.length);
  return out;
}

/** A cluster id or serial: 1..JOURNAL_STRING_BYTES_MAX printable ASCII characters. */
function asciiBytes(s: string, field: string): Uint8Array {
  if (s.length === 0 || s.length > JOURNAL_STRING_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { format: FORMAT, field, max: JOURNAL_STRING_BYTES_MAX });
  if (!PRINTABLE_ASCII.test(s)) fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field });
  return new TextEncoder().encode(s);
}

/** K_e = HKDF-SHA-256(sync key, salt, info ‖ SHA-256(header)): the salt makes it fresh, the header
 * binds it to this entry's position, cluster and originator as well. */
function deriveEntryKey(syncKey: SecretKeyInput, salt: Uint8Array, header: Uint8Array): SecretBytes {
  const info = Buffer.concat([Buffer.from(ENTRY_KEY_INFO, 'utf8'), createHash('sha256').update(header).digest()]);
  return hkdfSha256(syncKey, salt, info, ENTRY_KEY_BYTES);
}

// ── reading ─────────────────────────────────────────────────────────────────────────────────────

function tampered(reason: string): never {
  return fail('COFFER_JOURNAL_TAMPERED', { reason });
}

/**
 * Reads and checks an entry's header without any key: magic, version and suite first, then every
 * field against its limit, then the entry's exact length. What the control plane may look at; the
 * values are not authenticated until the entry is opened.
 */
export function decodeJournalEntryHeader(entry: Uint8Array): JournalEntryHeader {
  return readHeader(entry).header;
}

function readHeader(entry: Uint8Array): { header: JournalEntryHeader; headerBytes: Uint8Array } {
  if (entry.length < JOURNAL_ENTRY_MAGIC.length || JOURNAL_ENTRY_MAGIC.some((m, i) => entry[i] !== m)) fail('COFFER_FORMAT_BAD_MAGIC', { format: FORMAT });
  if (entry.length < 10) tampered('truncated');
  const view = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
  const version = view.getUint16(4);
  if (version !== JOURNAL_ENTRY_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: FORMAT, version, supported: JOURNAL_ENTRY_VERSION });
  const suite = view.getUint16(6);
  if (suite !== JOURNAL_SUITE) fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: FORMAT, suite, supported: JOURNAL_SUITE });
  const headerLength = view.getUint16(8);
  if (headerLength < HEADER_BYTES_MIN || headerLength > JOURNAL_HEADER_BYTES_MAX) tampered('header-length');
  if (entry.length < headerLength) tampered('truncated');
  const headerBytes = entry.subarray(0, headerLength);
  const r = new ByteReader(headerBytes, 10, () => tampered('header-length'));
  const seq = r.u64();
  if (seq === 0n) tampered('seq');
  const predecessor = r.copy(JOURNAL_HASH_BYTES);
  const syncKeyId = r.copy(JOURNAL_KEY_ID_BYTES);
  const salt = r.copy(JOURNAL_SALT_BYTES);
  const bodyBytes = r.u32();
  if (bodyBytes < AEAD_TAG_BYTES || bodyBytes > JOURNAL_BODY_BYTES_MAX) tampered('body-length');
  const clusterId = readAscii(r, 'cluster-id');
  const originator = readAscii(r, 'originator');
  if (r.at !== headerLength) tampered('header-length');
  if (entry.length !== headerLength + bodyBytes) tampered(entry.length < headerLength + bodyBytes ? 'truncated' : 'extended');
  return { header: { seq, predecessor, syncKeyId, salt, bodyBytes, clusterId, originator }, headerBytes };
}

function readAscii(r: ByteReader, field: string): string {
  const n = r.u8();
  if (n === 0 || n > JOURNAL_STRING_BYTES_MAX) tampered(field);
  const s = String.fromCharCode(...r.view(n));
  if (!PRINTABLE_ASCII.test(s)) tampered(field);
  return s;
}

// ── opening ─────────────────────────────────────────────────────────────────────────────────────

/**
 * Authenticates `entry` and returns its change set, if it is exactly the entry `expect` says comes
 * next: sealed under this sync key, for this cluster, at this sequence number, after this
 * predecessor. Every refusal is typed (module header); nothing of the change set is returned
 * unless every check passed.
 */
export function openJournalEntry(entry: Uint8Array, expect: JournalExpectation): OpenedJournalEntry {
  const { header, headerBytes } = readHeader(entry);
  if (Buffer.compare(header.syncKeyId, syncKeyIdOf(expect.syncKey)) !== 0) fail('COFFER_JOURNAL_WRONG_KEY', { seq: String(header.seq) });
  const plaintext = openBody(entry, header, headerBytes, expect.syncKey);
  try {
    if (header.clusterId !== expect.clusterId) fail('COFFER_JOURNAL_WRONG_CLUSTER', { expected: expect.clusterId, found: header.clusterId });
    if (header.seq !== expect.seq) {
      const reason = header.seq < expect.seq ? 'already-applied' : 'skips-entries';
      fail('COFFER_JOURNAL_OUT_OF_ORDER', { expected: String(expect.seq), found: String(header.seq), reason });
    }
    if (Buffer.compare(header.predecessor, expect.predecessor) !== 0) fail('COFFER_JOURNAL_FORK', { seq: String(header.seq) });
    return { header, changeSet: decodeCarried(plaintext), hash: journalEntryHash(entry) };
  } finally {
    plaintext.fill(0);
  }
}

function openBody(entry: Uint8Array, header: JournalEntryHeader, headerBytes: Uint8Array, syncKey: SecretKeyInput): Uint8Array {
  const entryKey = deriveEntryKey(syncKey, header.salt, headerBytes);
  try {
    return openStream(entryKey, STREAM_PREFIX, headerBytes, entry.subarray(headerBytes.length), JOURNAL_SEGMENT_BYTES);
  } catch (e) {
    if (isCofferError(e, 'COFFER_CRYPTO_AEAD_TAMPERED')) throw new CofferError('COFFER_JOURNAL_TAMPERED', { reason: 'authentication' }, { cause: e });
    throw e;
  } finally {
    entryKey.destroy();
  }
}

/** The authenticated plaintext as a cluster-wide change set. A newer change-set version is said as
 * such; anything else that does not decode was sealed by a faulty HSM of the cluster. */
function decodeCarried(plaintext: Uint8Array): ChangeSet {
  let cs: ChangeSet;
  try {
    cs = decodeChangeSet(plaintext);
  } catch (e) {
    if (isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') || !isCofferError(e)) throw e;
    return fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'change set' }, e);
  }
  if (cs.scope !== 'cluster') {
    wipeChangeSet(cs);
    fail('COFFER_FORMAT_MALFORMED', { format: FORMAT, field: 'scope' });
  }
  return cs;
}
