// The device's audit log (docs/audit.md): a hash-chained sequence of audit records
// (formats/audit_record.ts), periodically closed by a checkpoint the device identity key signs,
// kept in an AuditStore (audit_store.ts) beside the device's state, never in it.
//
// - record() appends one event with the next seq, the clock's time and the chain hash of the record
//   before it, and writes a checkpoint after AUDIT_CHECKPOINT_RECORDS records or once the oldest
//   unsigned one is AUDIT_CHECKPOINT_INTERVAL_MS old. Records reach the disk in batches: sync() runs
//   at each checkpoint and before a page is collected, not per record.
// - collect(from, max) first closes the log with a checkpoint (so a collected page always ends on a
//   signature), syncs, and returns the records from `from`, cut after the last checkpoint in the
//   page. Asking from `from` says the collector holds everything before it: those records become
//   droppable.
// - Bounded (bytesMax): when the log is full the oldest collected records are dropped; when every
//   record left is uncollected, room() refuses with COFFER_AUDIT_FULL and the device refuses the
//   audited operation before doing it, so nothing happens that the log cannot hold. A checkpoint
//   is always written (it carries no event), and the records of operations already under way are
//   still written, so the file may pass the bound by that little.
// - A device with no identity yet (before the factory) has nothing to audit and no key to sign
//   with: events before it are not recorded.

import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import {
  auditChainHash, auditCheckpointMessage, auditGenesisHash, decodeAuditRecord, encodeAuditRecord, type AuditEvent,
} from '../../formats/audit_record.js';
import { AUDIT_BUNDLE_RECORDS_MAX, AUDIT_CHECKPOINT_INTERVAL_MS, AUDIT_CHECKPOINT_RECORDS, AUDIT_LOG_BYTES_MAX, AUDIT_RECORD_BYTES_MAX } from '../../formats/limits.js';
import type { Clock } from '../ports.js';
import type { AuditStore } from './audit_store.js';

/** What the log needs of the device identity: its serial and its signature (identity.ts). */
export interface AuditSigner {
  readonly serial: string;
  sign(message: Uint8Array): Uint8Array;
}

export interface AuditLogOptions {
  readonly store: AuditStore;
  readonly clock: Clock;
  /** The device identity, or undefined while the device has none. */
  readonly signer: () => AuditSigner | undefined;
  readonly bytesMax?: number;
  readonly checkpointRecords?: number;
  readonly checkpointIntervalMs?: number;
  /** Hears every record written (the node's metrics count them). */
  readonly onRecord?: () => void;
}

/** Refused when fewer bytes than this are left: room for the records of operations under way. */
const HEADROOM_BYTES = 64 * AUDIT_RECORD_BYTES_MAX;

export class AuditLog {
  readonly #o: AuditLogOptions;
  readonly #bytesMax: number;
  /** The records held, oldest first; #firstSeq is the seq of #records[0]. */
  #records: Uint8Array[];
  #firstSeq = 0n;
  #bytes = 0;
  /** Records below this seq have been collected (droppable when the log is full). */
  #collectedBelow = 0n;
  /** The seq of the first record after the last checkpoint, and its time. */
  #unsignedSince: { seq: bigint; timeMs: number } | undefined;
  #lastHash: Uint8Array | undefined;

  constructor(options: AuditLogOptions) {
    this.#o = options;
    this.#bytesMax = options.bytesMax ?? AUDIT_LOG_BYTES_MAX;
    this.#records = options.store.load();
    this.#bytes = this.#records.reduce((n, r) => n + r.length + 2, 0);
    const last = this.#records.at(-1);
    const first = this.#records[0];
    if (first !== undefined && last !== undefined) {
      this.#firstSeq = decodeAuditRecord(first).seq;
      const tail = decodeAuditRecord(last);
      assert(tail.seq === this.#firstSeq + BigInt(this.#records.length - 1), 'the stored log is contiguous');
      this.#lastHash = auditChainHash(last);
      // The tail may be unsigned (the node stopped between checkpoints): the next record or
      // collection signs it.
      if (tail.type === 'event') this.#unsignedSince = { seq: tail.seq, timeMs: tail.timeMs };
    }
  }

  /** The seq the next record will take. */
  get nextSeq(): bigint {
    return this.#firstSeq + BigInt(this.#records.length);
  }

  /** The seq of the oldest record held. */
  get firstSeq(): bigint {
    return this.#firstSeq;
  }

  /** Refuses (COFFER_AUDIT_FULL) when the log cannot take the record of another operation. */
  room(): void {
    if (this.#bytes + HEADROOM_BYTES <= this.#bytesMax) return;
    this.#dropCollected();
    if (this.#bytes + HEADROOM_BYTES > this.#bytesMax) fail('COFFER_AUDIT_FULL', { bytesMax: this.#bytesMax });
  }

  /** Appends one event (and a checkpoint when one is due). */
  record(event: AuditEvent): void {
    const signer = this.#o.signer();
    if (signer === undefined) return;
    const nowMs = this.#o.clock.nowMs();
    const seq = this.nextSeq;
    this.#append(encodeAuditRecord({ type: 'event', seq, timeMs: nowMs, prevHash: this.#prevHash(signer), event }));
    this.#unsignedSince ??= { seq, timeMs: nowMs };
    const due = this.nextSeq - this.#unsignedSince.seq >= BigInt(this.#o.checkpointRecords ?? AUDIT_CHECKPOINT_RECORDS)
      || nowMs - this.#unsignedSince.timeMs >= (this.#o.checkpointIntervalMs ?? AUDIT_CHECKPOINT_INTERVAL_MS);
    if (due) this.checkpoint();
  }

  /** Closes the records so far with a signed checkpoint (nothing when the last record is one). */
  checkpoint(): void {
    const signer = this.#o.signer();
    if (signer === undefined || this.#unsignedSince === undefined) return;
    const seq = this.nextSeq;
    const timeMs = this.#o.clock.nowMs();
    const prevHash = this.#prevHash(signer);
    const signature = signer.sign(auditCheckpointMessage(signer.serial, seq, timeMs, prevHash));
    this.#append(encodeAuditRecord({ type: 'checkpoint', seq, timeMs, prevHash, serial: signer.serial, signature }));
    this.#unsignedSince = undefined;
    this.#o.store.sync();
  }

  /**
   * A page for the collector: the records from `fromSeq`, at most `recordsMax`, ending on a
   * checkpoint. `fromSeq` below the oldest record held starts at the oldest (what was dropped is
   * gone; the verifier sees where the page starts); past the end is refused.
   */
  collect(fromSeq: bigint, recordsMax: number): Uint8Array[] {
    assert(Number.isInteger(recordsMax) && recordsMax > 0 && recordsMax <= AUDIT_BUNDLE_RECORDS_MAX, 'a bounded page');
    this.checkpoint();
    this.#o.store.sync();
    if (fromSeq > this.nextSeq) fail('COFFER_AUDIT_POSITION', { nextSeq: this.nextSeq.toString() });
    if (fromSeq > this.#collectedBelow) this.#collectedBelow = fromSeq;
    const start = Number((fromSeq > this.#firstSeq ? fromSeq : this.#firstSeq) - this.#firstSeq);
    const page = this.#records.slice(start, start + recordsMax);
    // End on the last checkpoint in the page (one falls within every AUDIT_CHECKPOINT_RECORDS + 1).
    let end = page.length;
    while (end > 0 && decodeAuditRecord(page[end - 1] as Uint8Array).type !== 'checkpoint') end--;
    return page.slice(0, end);
  }

  /** Every record held (tests, and the node's own export). */
  records(): Uint8Array[] {
    return this.#records.map((r) => r.slice());
  }

  close(): void {
    this.#o.store.sync();
    this.#o.store.close();
  }

  #prevHash(signer: AuditSigner): Uint8Array {
    return this.#lastHash ?? auditGenesisHash(signer.serial);
  }

  #append(bytes: Uint8Array): void {
    this.#o.store.append(bytes);
    this.#records.push(bytes);
    this.#bytes += bytes.length + 2;
    this.#lastHash = auditChainHash(bytes);
    this.#o.onRecord?.();
  }

  /** Drops the oldest collected records until the log is under its bound again (or none is left). */
  #dropCollected(): void {
    const droppable = Number(this.#collectedBelow - this.#firstSeq);
    if (droppable <= 0) return;
    let drop = 0;
    let bytes = this.#bytes;
    while (drop < droppable && bytes + HEADROOM_BYTES > this.#bytesMax / 2) {
      bytes -= (this.#records[drop] as Uint8Array).length + 2;
      drop++;
    }
    if (drop === 0) return;
    this.#o.store.rewrite(this.#records.slice(drop));
    this.#records = this.#records.slice(drop);
    this.#firstSeq += BigInt(drop);
    this.#bytes = bytes;
  }
}
