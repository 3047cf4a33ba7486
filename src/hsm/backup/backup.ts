// The device side of sealed backup and restore (docs/architecture.md §3; every byte in docs/backup-format.md,
// the codec in src/formats/backup.ts). Only a device holds the MKBK and the AKBK, so only a device
// derives the PBK (pbk.ts), wraps or unwraps a BEK, and seals or opens a body. Whom a backup may come
// from is the device-chain rule (src/formats/device_chain.ts); the signature input is the codec's.
//
// createBackup streams in one pass over the records: the body's counts and plaintext length (in the
// header, which every segment authenticates) come from the store's namespace summaries, so no record
// is read to size it; then each record is read once, encoded, sealed segment by segment and written
// to the sink while SHA-384 runs over prefix ‖ header ‖ body for the signature. What is read is
// counted against the summaries: a store whose summaries disagree with its records is
// COFFER_STORE_TAMPERED, never a blob the header misdescribes. Memory holds one segment and one
// record, whatever the device's size.
//
// restoreBackup refuses with the spec's typed errors ("Restore rules") and changes nothing when it
// refuses. Order of the checks, each claim made only when the facts behind it are established:
//   1. framing: magic and version (COFFER_FORMAT_BAD_MAGIC / _UNKNOWN_VERSION), then header, exact
//      length and trailer (COFFER_BACKUP_TAMPERED);
//   2. the header's device and operator certificates pass the device-chain rule against THIS
//      device's roots, with the header's source HSM id as the expected serial
//      (COFFER_BACKUP_UNTRUSTED, the rule's reason in the detail);
//   3. mode and MKBK/AKBK ids equal this device's (COFFER_BACKUP_MODE_MISMATCH / _WRONG_KEYS) — a
//      mismatch is reported only for a backup whose signature holds, otherwise UNTRUSTED;
//   4. PBK → BEK unwrap, then pass 1 opens every segment and parses every record (and checks user
//      and object records with their own codecs) without writing (COFFER_BACKUP_TAMPERED), while
//      the same bytes feed the signature check (COFFER_BACKUP_UNTRUSTED);
//   5. pass 2 (DeviceState.replaceStaged): the records, opened and authenticated again, are written
//      into the store's staging area — bounded transactions that no read sees — then ONE short
//      transaction clears every namespace but 'device' and adopts them. Any failure before that
//      commit throws, drops the staging and leaves the state as it was.
// PBK and BEK are zeroised in `finally`; record values are wiped once written.

import { createHash, type KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { assert } from '../../assert.js';
import { CofferError, fail, isCofferError } from '../../errors.js';
import { SecretBytes, StreamOpener, StreamSealer, constantTimeEqual, kwUnwrap, kwWrap, AEAD_STREAM_PREFIX_BYTES, AEAD_TAG_BYTES } from '../../crypto/index.js';
import {
  BACKUP_EXCLUDED_NAMESPACE, BACKUP_OBJECT_NAMESPACE, BACKUP_SEGMENT_BYTES, BACKUP_TRAILER_BYTES, BACKUP_USER_NAMESPACE, BackupRecordReader, BackupSignatureVerifier,
  backupBlobBytes, backupHeaderDigest, backupRecordBytes, beginSignedMessage, bodyBytesFor, checkBackupLength, compareBackupRecordKeys, decodeBackupHeader,
  decodeBackupTrailer, encodeBackupHeader, encodeBackupRecord, encodeBackupTrailer, readBackupHeader, verifyBackupSignature,
  type BackupHeader, type BackupRecord, type BackupSource,
} from '../../formats/backup.js';
import { checkDeviceChain } from '../../formats/device_chain.js';
import { readObjectRecordLayout } from '../../formats/object_record.js';
import { CLUSTER_NS, checkClusterRecord } from '../../formats/cluster_record.js';
import type { StreamSigner } from '../identity/identity.js';
import type { Clock, Random } from '../ports.js';
import type { Provisioning } from '../identity/provisioning.js';
import { STATE_NAMESPACE, STATE_POSITION_ID, decodeStatePosition } from '../../formats/change_set.js';
import type { DeviceState } from '../state/device_state.js';
import type { RecordStore } from '../store/store_port.js';
import { decodeUserRecord } from '../../formats/user_record.js';
import { derivePbk } from './pbk.js';

const BEK_BYTES = 32;
/** CloudHSM's backup id shape: `backup-` + 11 of [2-7a-zA-Z] (docs/architecture.md §6). */
const BACKUP_ID_PREFIX = 'backup-';
const BACKUP_ID_CHARS = '234567abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const BACKUP_ID_LENGTH = 11;
const STATE_DIGEST_DOMAIN = 'coffer state digest v1\0';

// ── sinks ───────────────────────────────────────────────────────────────────────────────────

/** Where createBackup writes the blob, in order, chunk by chunk. */
export interface BackupSink {
  write(chunk: Uint8Array): void;
}

/** A sink that keeps the blob in memory (tests, small devices). */
export function bufferSink(): BackupSink & { bytes(): Uint8Array } {
  const chunks: Uint8Array[] = [];
  return {
    write: (chunk) => void chunks.push(chunk.slice()),
    bytes: () => new Uint8Array(Buffer.concat(chunks)),
  };
}

/**
 * A sink that writes a new file (mode 0600, refused if it exists). close() fsyncs and closes it;
 * call it in `finally`. A createBackup that fails leaves a partial file, which every restore
 * refuses; delete it.
 */
export function fileSink(path: string): BackupSink & { close(): void } {
  let fd: number | undefined = openSync(path, 'wx', 0o600);
  return {
    write(chunk) {
      assert(fd !== undefined, 'write after close');
      for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done, chunk.length - done);
    },
    close() {
      if (fd === undefined) return;
      const open = fd;
      fd = undefined;
      try {
        fsyncSync(open);
      } finally {
        closeSync(open);
      }
    },
  };
}

// ── options and results ─────────────────────────────────────────────────────────────────────

/** Signs prefix ‖ header ‖ body as it streams past (the device identity's StreamSigner). */
export type BackupSigner = StreamSigner;

export interface CreateBackupOptions {
  readonly clusterId: string;
  /** Default: `backup-` + 11 random characters of [2-7a-zA-Z], from the device's Random. */
  readonly backupId?: string;
  /** The last cluster journal entry applied (docs/architecture.md §5); default 0. */
  readonly journalPosition?: bigint;
  /** Plaintext bytes per segment; default BACKUP_SEGMENT_BYTES. */
  readonly segmentBytes?: number;
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Known-answer vectors and tests only: replaces the device identity's signer. A blob signed by
   * any key but the identity's is refused by every restore (COFFER_BACKUP_UNTRUSTED). */
  readonly signer?: BackupSigner;
}

export interface RestoreBackupOptions {
  /** Body bytes opened so far over both passes, of 2 × B. */
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface BackupSummary {
  readonly backupId: string;
  /** Bytes of the whole blob. */
  readonly bytes: number;
  readonly records: number;
  readonly users: number;
  readonly objects: number;
}

/** What the backup code needs of a device; Hsm hands over its own. */
export interface BackupDevice {
  /** The device's state: read wholesale for a backup, replaced through its writer for a restore. */
  readonly state: DeviceState;
  /** Rebuilds the device's in-memory modules once a restore replaced the records. */
  readonly reload: () => void;
  /** Optional: hears every record a restore stages (pass 2), so the device can build its indexes
   * as they go by rather than read the store back in `reload`; discarded if the restore fails. */
  readonly stageIndexes?: (objectCount: number) => StagedRecordsObserver;
  readonly provisioning: Provisioning;
  readonly clock: Clock;
  readonly random: Random;
}

/** What the device builds from the records a restore stages (BackupDevice.stageIndexes). */
export interface StagedRecordsObserver {
  put(ns: string, id: string, value: Uint8Array): void;
  /** The restore did not commit: drop (and zeroise) what was built. A no-op once `reload` used it. */
  discard(): void;
}

// ── state digest ────────────────────────────────────────────────────────────────────────────

/**
 * SHA-256 over every record outside 'device' and 'state' (the state position: history, not
 * content) — namespace, id and value, framed as in a backup body — in the store's order. Two
 * devices with the same state agree; any change changes it. The values include key material: treat
 * the digest like a KCV, not like public data.
 */
export function stateDigestOf(store: RecordStore): Uint8Array {
  const h = createHash('sha256').update(STATE_DIGEST_DOMAIN);
  for (const ns of store.namespaces()) {
    // The state position says how the state came to be, not what it is: left out.
    if (ns === BACKUP_EXCLUDED_NAMESPACE || ns === STATE_NAMESPACE) continue;
    for (const [id, value] of store.list(ns)) {
      const encoded = encodeBackupRecord({ ns, id, value });
      h.update(encoded);
      encoded.fill(0);
      value.fill(0);
    }
  }
  return new Uint8Array(h.digest());
}

// ── create ──────────────────────────────────────────────────────────────────────────────────

/** A namespace as the body will hold it, with what its summary says it holds; `ordered` is false
 * when the store's order (UTF-16) may not be the format's (UTF-8 bytes): only ids with characters
 * beyond U+FFFF can make them differ. */
interface PlannedNamespace {
  readonly ns: string;
  readonly ordered: boolean;
  readonly records: number;
  readonly plaintextBytes: number;
}

interface BodyPlan {
  readonly namespaces: readonly PlannedNamespace[];
  readonly records: number;
  readonly users: number;
  readonly objects: number;
  readonly plaintextBytes: number;
}

const utf8Order = (a: string, b: string): number => compareBackupRecordKeys({ ns: a, id: '' }, { ns: b, id: '' });

/** Counts, plaintext length and order of the body from the namespace summaries: no record is read.
 * Refuses, before anything is written, names the format cannot hold. */
function planBody(store: RecordStore): BodyPlan {
  const namespaces: PlannedNamespace[] = [];
  let records = 0, users = 0, objects = 0, plaintextBytes = 0;
  for (const ns of store.namespaces().sort(utf8Order)) {
    if (ns === BACKUP_EXCLUDED_NAMESPACE) continue;
    encodeBackupRecord({ ns, id: '0', value: new Uint8Array(0) }); // a namespace name the format refuses
    // Both adapters refuse the ids the format cannot hold, but for one: the empty id (sorted first).
    if (store.get(ns, '') !== undefined) fail('COFFER_FORMAT_MALFORMED', { field: 'record' });
    const s = store.summary(ns);
    const bytes = s.records * backupRecordBytes(ns, '', 0) + s.idBytes + s.valueBytes;
    namespaces.push({ ns, ordered: s.astralIds === 0, records: s.records, plaintextBytes: bytes });
    plaintextBytes += bytes;
    records += s.records;
    if (ns === BACKUP_USER_NAMESPACE) users += s.records;
    if (ns === BACKUP_OBJECT_NAMESPACE) objects += s.records;
  }
  return { namespaces, records, users, objects, plaintextBytes };
}

/** A namespace's records in the format's order, each read once. Values are the caller's to wipe. */
function* recordsInBodyOrder(store: RecordStore, planned: PlannedNamespace): Generator<BackupRecord> {
  const { ns } = planned;
  if (planned.ordered) {
    for (const [id, value] of store.list(ns)) yield { ns, id, value };
    return;
  }
  // Rare: sort the ids (not the values) by UTF-8 bytes, then read each record.
  const ids = [...store.sizes(ns)].map(([id]) => id);
  ids.sort((a, b) => compareBackupRecordKeys({ ns, id: a }, { ns, id: b }));
  for (const id of ids) {
    const value = store.get(ns, id);
    assert(value !== undefined, 'records do not change during a backup');
    yield { ns, id, value };
  }
}

/** Encodes a namespace's records into `writer`, counted against its summary (module header). */
function writeNamespace(store: RecordStore, planned: PlannedNamespace, writer: SegmentWriter): void {
  let records = 0, bytes = 0;
  const disagree = (): never => fail('COFFER_STORE_TAMPERED', { part: 'stats', ns: planned.ns });
  for (const record of recordsInBodyOrder(store, planned)) {
    const encoded = encodeBackupRecord(record);
    record.value.fill(0);
    try {
      records++;
      bytes += encoded.length;
      if (records > planned.records || bytes > planned.plaintextBytes) disagree();
      writer.push(encoded);
    } finally {
      encoded.fill(0);
    }
  }
  if (records !== planned.records || bytes !== planned.plaintextBytes) disagree();
}

/**
 * Cuts the body plaintext into segments of exactly S bytes (the last one 0..S, as planned), seals
 * each with the BEK and hands it on. Holds one segment of plaintext, wiped at the end.
 */
class SegmentWriter {
  readonly #sealer: StreamSealer;
  readonly #buffer: Uint8Array;
  readonly #emit: (sealed: Uint8Array) => void;
  /** Plaintext bytes not yet sealed, the buffered ones included. */
  #remaining: number;
  #fill = 0;

  constructor(sealer: StreamSealer, plaintextBytes: number, emit: (sealed: Uint8Array) => void) {
    this.#sealer = sealer;
    this.#buffer = new Uint8Array(new ArrayBuffer(sealer.segmentBytes));
    this.#remaining = plaintextBytes;
    this.#emit = emit;
  }

  push(bytes: Uint8Array): void {
    const size = this.#buffer.length;
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(size - this.#fill, bytes.length - at);
      assert(n > 0 && this.#fill + n <= this.#remaining, 'the body is exactly as long as planned');
      this.#buffer.set(bytes.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      // A full segment is the last one only if nothing follows it (the final one may be full).
      if (this.#fill === size && this.#remaining > size) {
        this.#emit(this.#sealer.seal(this.#buffer, false));
        this.#remaining -= size;
        this.#fill = 0;
      }
    }
  }

  finish(): void {
    assert(this.#fill === this.#remaining, 'the body is exactly as long as planned');
    try {
      this.#emit(this.#sealer.seal(this.#buffer.subarray(0, this.#fill), true));
    } finally {
      this.#buffer.fill(0);
    }
  }
}

/** `backup-` + 11 characters of [2-7a-zA-Z], unbiased (rejection sampling over bytes < 232). */
function newBackupId(random: Random): string {
  let id = BACKUP_ID_PREFIX;
  const limit = 256 - (256 % BACKUP_ID_CHARS.length);
  while (id.length < BACKUP_ID_PREFIX.length + BACKUP_ID_LENGTH) {
    for (const b of random.bytes(BACKUP_ID_LENGTH)) {
      if (b < limit && id.length < BACKUP_ID_PREFIX.length + BACKUP_ID_LENGTH) id += BACKUP_ID_CHARS[b % BACKUP_ID_CHARS.length] ?? '';
    }
  }
  return id;
}

/** A fresh secret from the device's Random, in an owned buffer (the Random's array is wiped). */
function randomSecret(random: Random, length: number): SecretBytes {
  const bytes = random.bytes(length);
  assert(bytes.length === length, 'Random returned the bytes asked for');
  try {
    return SecretBytes.copyOf(bytes);
  } finally {
    bytes.fill(0);
  }
}

/** The header of a new backup: the plan's counts, a fresh BEK wrapped under the PBK. */
function newHeader(device: BackupDevice, plan: BodyPlan, options: CreateBackupOptions, bek: SecretBytes): Uint8Array {
  const p = device.provisioning;
  const segmentBytes = options.segmentBytes ?? BACKUP_SEGMENT_BYTES;
  const mode = p.mode();
  const mkbkId = p.mkbkId();
  const akbkId = p.akbkId();
  const chain = p.chain();
  assert(chain.operatorCertificate !== undefined && chain.operatorRoot !== undefined, 'a commissioned device holds its operator certificates');
  const pbk = withBackupKeys(p, (mkbk, akbk) => derivePbk(mkbk, akbk, mode, mkbkId, akbkId));
  let wrappedBek: Uint8Array;
  try {
    wrappedBek = bek.use((b) => kwWrap(pbk, b));
  } finally {
    pbk.destroy();
  }
  return encodeBackupHeader({
    mode, createdMs: device.clock.nowMs(), journalPosition: options.journalPosition ?? 0n, mkbkId, akbkId,
    recordCount: plan.records, userCount: plan.users, objectCount: plan.objects,
    bodyBytes: bodyBytesFor(plan.plaintextBytes, segmentBytes), segmentBytes,
    noncePrefix: device.random.bytes(AEAD_STREAM_PREFIX_BYTES), wrappedBek,
    backupId: options.backupId ?? newBackupId(device.random), clusterId: options.clusterId,
    sourceHsmId: p.identity().serial, firmwareVersion: p.firmwareVersion() ?? '',
    certificates: { device: chain.deviceCertificate.der, manufacturerRoot: chain.manufacturerRoot.der, operator: chain.operatorCertificate.der, operatorRoot: chain.operatorRoot.der },
  });
}

/** Runs `fn` with copies of the MKBK and the AKBK, zeroised afterwards whatever happens. */
function withBackupKeys<T>(p: Provisioning, fn: (mkbk: SecretBytes, akbk: SecretBytes) => T): T {
  const mkbk = p.mkbk();
  try {
    const akbk = p.akbk();
    try {
      return fn(mkbk, akbk);
    } finally {
      akbk.destroy();
    }
  } finally {
    mkbk.destroy();
  }
}

/**
 * Writes a sealed backup of the device's whole state (every namespace but 'device') to `sink`:
 * synchronous, bounded memory. Refuses before commissioning (COFFER_DEVICE_NOT_COMMISSIONED).
 */
export function createBackup(device: BackupDevice, sink: BackupSink, options: CreateBackupOptions): BackupSummary {
  if (device.provisioning.state() !== 'COMMISSIONED') fail('COFFER_DEVICE_NOT_COMMISSIONED');
  const plan = planBody(device.state.store);
  const bek = randomSecret(device.random, BEK_BYTES);
  try {
    const headerBytes = newHeader(device, plan, options, bek);
    const header = decodeBackupHeader(headerBytes);
    const totalBytes = backupBlobBytes(header);
    const signer = options.signer ?? device.provisioning.identity().streamSigner();
    let doneBytes = 0;
    const emit = (chunk: Uint8Array): void => {
      sink.write(chunk);
      doneBytes += chunk.length;
      options.onProgress?.(doneBytes, totalBytes);
    };
    beginSignedMessage(signer, headerBytes);
    emit(headerBytes);
    const sealer = new StreamSealer(bek, header.noncePrefix, backupHeaderDigest(headerBytes), header.segmentBytes);
    const writer = new SegmentWriter(sealer, plan.plaintextBytes, (sealed) => {
      signer.update(sealed);
      emit(sealed);
    });
    for (const planned of plan.namespaces) writeNamespace(device.state.store, planned, writer);
    writer.finish();
    emit(encodeBackupTrailer(signer.sign()));
    assert(doneBytes === totalBytes, 'the blob is exactly as long as its header says');
    return { backupId: header.backupId, bytes: totalBytes, records: plan.records, users: plan.users, objects: plan.objects };
  } finally {
    bek.destroy();
  }
}

// ── restore ─────────────────────────────────────────────────────────────────────────────────

/** A format error of a blob that is a v1 backup but is damaged: the spec calls all of it tampering. */
function asTampered(e: unknown): unknown {
  if (isCofferError(e, 'COFFER_FORMAT_BAD_MAGIC') || isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION')) return e;
  if (isCofferError(e) && (e.code.startsWith('COFFER_FORMAT_') || e.code === 'COFFER_CRYPTO_AEAD_TAMPERED' || e.code === 'COFFER_CRYPTO_UNWRAP_FAILED')) {
    return new CofferError('COFFER_BACKUP_TAMPERED', {}, { cause: e });
  }
  return e;
}

interface Framed {
  readonly header: BackupHeader;
  readonly headerBytes: Uint8Array;
  readonly signature: Uint8Array;
}

/** Step 1: magic, version, header, exact length, trailer. */
function readFramed(source: BackupSource): Framed {
  try {
    const header = readBackupHeader(source);
    checkBackupLength(source, header);
    const signature = decodeBackupTrailer(source.read(backupBlobBytes(header) - BACKUP_TRAILER_BYTES, BACKUP_TRAILER_BYTES));
    return { header, headerBytes: source.read(0, header.headerBytes), signature };
  } catch (e) {
    throw asTampered(e);
  }
}

/**
 * Step 2: the header's device and operator certificates pass the device-chain rule against this
 * device's own manufacturer and operator roots at `atMs`, and name the header's source HSM id.
 * Returns the signing key the rule established. Any refusal is COFFER_BACKUP_UNTRUSTED with the
 * rule's non-secret reason and certificate role.
 */
function trustedSigningKey(header: BackupHeader, p: Provisioning, atMs: number): KeyObject {
  const own = p.chain();
  assert(own.operatorRoot !== undefined, 'a commissioned device holds its operator root');
  try {
    return checkDeviceChain({
      manufacturerRoot: own.manufacturerRoot.der, deviceCertificate: header.certificates.device,
      operatorRoot: own.operatorRoot.der, operatorCertificate: header.certificates.operator,
      atMs, expectedSerial: header.sourceHsmId,
    }).publicKey;
  } catch (e) {
    if (!isCofferError(e, 'COFFER_CERT_INVALID')) throw e;
    return fail('COFFER_BACKUP_UNTRUSTED', { reason: String(e.detail['reason']), certificate: String(e.detail['certificate']) }, e);
  }
}

/** Step 3. A mismatch names a property of the backup: claimed only when its signature holds. */
function checkDestination(source: BackupSource, header: BackupHeader, p: Provisioning, signingKey: KeyObject): void {
  const modeOk = header.mode === p.mode();
  const keysOk = constantTimeEqual(header.mkbkId, p.mkbkId()) && constantTimeEqual(header.akbkId, p.akbkId());
  if (modeOk && keysOk) return;
  if (!verifyBackupSignature(source, header, signingKey)) fail('COFFER_BACKUP_UNTRUSTED', { reason: 'bad-signature' });
  fail(modeOk ? 'COFFER_BACKUP_WRONG_KEYS' : 'COFFER_BACKUP_MODE_MISMATCH');
}

/** Step 4a: PBK from this device's keys and the header's (equal) mode and ids; BEK unwrapped. */
function unwrapBek(header: BackupHeader, p: Provisioning): SecretBytes {
  const pbk = withBackupKeys(p, (mkbk, akbk) => derivePbk(mkbk, akbk, header.mode, header.mkbkId, header.akbkId));
  try {
    const bek = kwUnwrap(pbk, header.wrappedBek);
    try {
      if (bek.length !== BEK_BYTES) fail('COFFER_BACKUP_TAMPERED');
      return SecretBytes.copyOf(bek);
    } finally {
      bek.fill(0);
    }
  } catch (e) {
    throw asTampered(e);
  } finally {
    pbk.destroy();
  }
}

/** Records must also decode with the codec of their namespace, or the device could not load them. */
const RECORD_CHECKS: Readonly<Record<string, (value: Uint8Array, id: string) => void>> = {
  [BACKUP_OBJECT_NAMESPACE]: (value) => void readObjectRecordLayout(value), // decodeObjectRecord's checks, without its copies
  [BACKUP_USER_NAMESPACE]: (value) => void decodeUserRecord(value),
  [CLUSTER_NS]: (value, id) => checkClusterRecord(id, value),
  // The state position and journal head (version 1 or 2): a newer version is named, not taken.
  [STATE_NAMESPACE]: (value, id) => void (id === STATE_POSITION_ID ? decodeStatePosition(value) : undefined),
};

function checkRecord(r: BackupRecord): void {
  const check = RECORD_CHECKS[r.ns];
  if (check === undefined) return;
  try {
    check(r.value, r.id);
  } catch (e) {
    // A newer record version is not tampering: say so (the detail names it), state unchanged.
    if (isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION') || !isCofferError(e)) throw e;
    throw new CofferError('COFFER_BACKUP_TAMPERED', {}, { cause: e });
  }
}

interface BodyPass {
  readonly bek: SecretBytes;
  readonly aad: Uint8Array;
  /** Every sealed segment, in order, before it is opened. */
  readonly onSealed?: (sealed: Uint8Array) => void;
  /** Every record; its value is wiped when this returns. */
  readonly onRecord: (record: BackupRecord) => void;
  readonly onBytes: (n: number) => void;
}

/** Opens the body segment by segment and parses its records; counts and end checked. */
function openBody(source: BackupSource, header: BackupHeader, pass: BodyPass): void {
  const opener = new StreamOpener(pass.bek, header.noncePrefix, pass.aad, header.segmentBytes);
  const reader = new BackupRecordReader({ records: header.recordCount, users: header.userCount, objects: header.objectCount });
  const bodyBytes = Number(header.bodyBytes);
  const sealedSegment = header.segmentBytes + AEAD_TAG_BYTES;
  const segments = Math.max(1, Math.ceil(bodyBytes / sealedSegment));
  for (let i = 0; i < segments; i++) {
    const start = i * sealedSegment;
    const sealed = readOrTampered(() => source.read(header.headerBytes + start, Math.min(sealedSegment, bodyBytes - start)));
    pass.onSealed?.(sealed);
    const plain = readOrTampered(() => opener.open(sealed, i === segments - 1));
    try {
      for (const record of readOrTampered(() => reader.push(plain))) {
        try {
          pass.onRecord(record);
        } finally {
          record.value.fill(0);
        }
      }
    } finally {
      plain.fill(0);
    }
    pass.onBytes(sealed.length);
  }
  readOrTampered(() => {
    opener.finish();
    reader.finish();
  });
}

function readOrTampered<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw asTampered(e);
  }
}

/**
 * Replaces the device's state (every namespace but 'device') with a backup's, or refuses with a
 * typed error and changes nothing (see the module header for the order of the checks). The caller
 * (Hsm) reloads its in-memory modules afterwards.
 */
export async function restoreBackup(device: BackupDevice, source: BackupSource, options: RestoreBackupOptions = {}): Promise<BackupSummary> {
  const p = device.provisioning;
  if (p.state() !== 'COMMISSIONED') fail('COFFER_DEVICE_NOT_COMMISSIONED');
  const { header, headerBytes, signature } = readFramed(source);
  const signingKey = trustedSigningKey(header, p, device.clock.nowMs());
  checkDestination(source, header, p, signingKey);
  const bek = unwrapBek(header, p);
  try {
    const aad = backupHeaderDigest(headerBytes);
    const totalBytes = 2 * Number(header.bodyBytes);
    let doneBytes = 0;
    const onBytes = (n: number): void => {
      doneBytes += n;
      options.onProgress?.(doneBytes, totalBytes);
    };
    // Pass 1: authenticate and parse everything, write nothing; the same bytes feed the signature.
    const verifier = new BackupSignatureVerifier(headerBytes);
    openBody(source, header, { bek, aad, onSealed: (sealed) => verifier.update(sealed), onRecord: checkRecord, onBytes });
    if (!verifier.holds(signingKey, signature)) fail('COFFER_BACKUP_UNTRUSTED', { reason: 'bad-signature' });
    // Pass 2: the state's one replacement, in its writer queue: the records, opened (and
    // authenticated) again, are staged; one transaction clears the old state and adopts them; the
    // device then rebuilds its modules.
    const store = device.state.store;
    let observer: StagedRecordsObserver | undefined;
    try {
      await device.state.replaceStaged(
        (staging) => {
          observer = device.stageIndexes?.(header.objectCount);
          const onRecord = (r: BackupRecord): void => {
            staging.put(r.ns, r.id, r.value);
            observer?.put(r.ns, r.id, r.value);
          };
          openBody(source, header, { bek, aad, onRecord, onBytes });
        },
        (tx) => {
          for (const ns of store.namespaces()) if (ns !== BACKUP_EXCLUDED_NAMESPACE) tx.clear(ns);
        },
        device.reload,
      );
    } finally {
      observer?.discard();
    }
    return { backupId: header.backupId, bytes: source.length, records: header.recordCount, users: header.userCount, objects: header.objectCount };
  } finally {
    bek.destroy();
  }
}
