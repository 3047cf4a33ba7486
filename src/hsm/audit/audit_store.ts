// Where a device's audit log rests (docs/audit.md "On the node"): a port with two adapters, a file in
// the node's data directory and memory for tests, held to one conformance suite
// (test/hsm/audit/audit_store_conformance.ts).
//
// The audit log is not device state: it is not in the record store, not in backups, not
// cluster-wide, and survives zeroise (which it records). The file is append-only: each record is one
// frame, u16 length + the encoded record; sync() makes every frame appended so far durable (fsync),
// and the log calls it in batches (at checkpoints and before a page is collected), not per record.
// A frame torn by a crash at the end of the file is cut off when the file is opened; anything else
// that does not frame is refused (COFFER_AUDIT_DAMAGED), never skipped. Dropping the oldest records
// rewrites the file (temporary file, fsync, rename), so a crash leaves the old or the new one.

import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, ftruncateSync } from 'node:fs';
import { fail } from '../../errors.js';
import { AUDIT_LOG_BYTES_MAX, AUDIT_RECORD_BYTES_MAX } from '../../formats/limits.js';

export interface AuditStore {
  /** Every record stored, oldest first. */
  load(): Uint8Array[];
  /** Appends one encoded record (durable after the next sync). */
  append(record: Uint8Array): void;
  /** Makes every record appended so far durable. */
  sync(): void;
  /** Replaces the stored records by `records` (the newest ones kept), atomically and durably. */
  rewrite(records: readonly Uint8Array[]): void;
  close(): void;
}

export class MemoryAuditStore implements AuditStore {
  #records: Uint8Array[] = [];
  /** Records made durable (a test can drop the rest, as a crash would). */
  synced = 0;
  load(): Uint8Array[] {
    return this.#records.map((r) => r.slice());
  }
  append(record: Uint8Array): void {
    this.#records.push(record.slice());
  }
  sync(): void {
    this.synced = this.#records.length;
  }
  rewrite(records: readonly Uint8Array[]): void {
    this.#records = records.map((r) => r.slice());
    this.synced = this.#records.length;
  }
  close(): void {}
}

const FRAME_HEADER_BYTES = 2;

export class FileAuditStore implements AuditStore {
  readonly #path: string;
  #fd: number;

  constructor(path: string) {
    this.#path = path;
    if (!existsSync(path)) writeDurably(path, new Uint8Array(0));
    this.#fd = openSync(path, 'a+', 0o600);
  }

  load(): Uint8Array[] {
    const bytes = readFileSync(this.#path);
    if (bytes.length > AUDIT_LOG_BYTES_MAX + AUDIT_LOG_BYTES_MAX / 8) fail('COFFER_AUDIT_DAMAGED', { reason: 'too-large' });
    const records: Uint8Array[] = [];
    let at = 0;
    while (at + FRAME_HEADER_BYTES <= bytes.length) {
      const n = bytes.readUInt16BE(at);
      if (n === 0 || n > AUDIT_RECORD_BYTES_MAX) fail('COFFER_AUDIT_DAMAGED', { reason: 'frame', offset: at });
      if (at + FRAME_HEADER_BYTES + n > bytes.length) break; // torn by a crash while appending
      records.push(new Uint8Array(bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + n)));
      at += FRAME_HEADER_BYTES + n;
    }
    if (at !== bytes.length) {
      ftruncateSync(this.#fd, at);
      fsyncSync(this.#fd);
    }
    return records;
  }

  append(record: Uint8Array): void {
    const frame = new Uint8Array(FRAME_HEADER_BYTES + record.length);
    new DataView(frame.buffer).setUint16(0, record.length);
    frame.set(record, FRAME_HEADER_BYTES);
    writeSync(this.#fd, frame, 0, frame.length, null);
  }

  sync(): void {
    fsyncSync(this.#fd);
  }

  rewrite(records: readonly Uint8Array[]): void {
    const frames = new Uint8Array(records.reduce((n, r) => n + FRAME_HEADER_BYTES + r.length, 0));
    let at = 0;
    for (const r of records) {
      new DataView(frames.buffer).setUint16(at, r.length);
      frames.set(r, at + FRAME_HEADER_BYTES);
      at += FRAME_HEADER_BYTES + r.length;
    }
    const tmp = `${this.#path}.tmp`;
    writeDurably(tmp, frames);
    renameSync(tmp, this.#path);
    closeSync(this.#fd);
    this.#fd = openSync(this.#path, 'a+', 0o600);
  }

  close(): void {
    closeSync(this.#fd);
  }
}

function writeDurably(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
