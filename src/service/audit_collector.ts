// Collection of the HSMs' audit logs into the archive (docs/audit.md "Collection"): the control
// plane asks each HSM over the management interface for the pages of its log it does not hold yet
// (GET /v1/audit from the next seq) and puts each page, exactly as the HSM sent it (an audit bundle:
// records and the device's certificates), into the archive beside the backups, write-once, under
//
//   audit/<serial>/<first seq>-<last seq>      (seqs as 20 decimal digits, so names sort in log order)
//
// Where to go on is read back from the archive (the last chunk's last seq), so a restarted or another
// control-plane process continues without a gap and never rewrites a chunk. Each page is checked
// before it is archived (formats/audit_verify.ts: certified by the roots, of the expected device,
// chained and signed): the service cannot alter a record without the verifier noticing, and it
// keeps nothing it would have to take on trust. A page that does not verify is not archived; the
// failure is logged with its reason, and asked for again at the next collection.

import type { Logger } from 'pino';
import { isCofferError } from '../errors.js';
import { decodeAuditBundle, decodeAuditRecord, type AuditBundle } from '../formats/audit_record.js';
import { verifyAuditBundles } from '../formats/audit_verify.js';
import type { BackupRoots } from '../formats/backup.js';
import { AUDIT_BUNDLE_RECORDS_MAX } from '../formats/limits.js';
import type { ManagementClient } from '../management/client.js';
import type { Archive } from '../storage/archive_port.js';

/** Archive prefix of every HSM's audit chunks. */
export const AUDIT_ARCHIVE_PREFIX = 'audit/';
/** Pages taken from one HSM in one collection: bounds the work of a tick; the rest waits for the next. */
export const AUDIT_PAGES_PER_COLLECTION_MAX = 16;
const SEQ_DIGITS = 20;
const CHUNK_NAME = /^([0-9]{20})-([0-9]{20})$/;

export interface AuditCollectorOptions {
  readonly archive: Archive;
  readonly roots: BackupRoots;
  readonly clock: { nowMs(): number };
  readonly log: Logger;
}

export interface CollectionResult {
  readonly pages: number;
  readonly records: number;
  /** The seq the next collection starts from. */
  readonly nextSeq: bigint;
}

export class AuditCollector {
  readonly #o: AuditCollectorOptions;

  constructor(options: AuditCollectorOptions) {
    this.#o = options;
  }

  /** Takes the pages of `serial`'s log the archive does not hold yet, through `management`. */
  async collect(serial: string, management: Pick<ManagementClient, 'auditPage'>): Promise<CollectionResult> {
    let next = await this.nextSeq(serial);
    let pages = 0;
    let records = 0;
    while (pages < AUDIT_PAGES_PER_COLLECTION_MAX) {
      const bytes = await management.auditPage(next, AUDIT_BUNDLE_RECORDS_MAX);
      const bundle = decodeAuditBundle(bytes);
      const first = bundle.records[0];
      const last = bundle.records.at(-1);
      if (first === undefined || last === undefined) break;
      this.#check(serial, bundle);
      const [from, to] = [decodeAuditRecord(first).seq, decodeAuditRecord(last).seq];
      await this.#put(`${AUDIT_ARCHIVE_PREFIX}${serial}/${pad(from)}-${pad(to)}`, bytes);
      pages++;
      records += bundle.records.length;
      next = to + 1n;
      if (bundle.records.length < AUDIT_BUNDLE_RECORDS_MAX / 2) break; // the log's end (a full page may be cut at its last checkpoint)
    }
    return { pages, records, nextSeq: next };
  }

  /** The seq after the last archived record of `serial` (0 when none is archived). */
  async nextSeq(serial: string): Promise<bigint> {
    const chunks = await this.chunks(serial);
    const last = chunks.at(-1);
    return last === undefined ? 0n : last.to + 1n;
  }

  /** The archived chunks of `serial`, in log order. */
  async chunks(serial: string): Promise<Array<{ key: string; from: bigint; to: bigint }>> {
    const prefix = `${AUDIT_ARCHIVE_PREFIX}${serial}/`;
    const found = [];
    for (const o of await this.#o.archive.list(prefix)) {
      const m = CHUNK_NAME.exec(o.key.slice(prefix.length));
      if (m !== null) found.push({ key: o.key, from: BigInt(m[1] ?? '0'), to: BigInt(m[2] ?? '0') });
    }
    return found.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  }

  /** The serials with archived audit chunks. */
  async serials(): Promise<string[]> {
    const serials = new Set<string>();
    for (const o of await this.#o.archive.list(AUDIT_ARCHIVE_PREFIX)) {
      const serial = o.key.slice(AUDIT_ARCHIVE_PREFIX.length).split('/')[0];
      if (serial !== undefined && serial !== '') serials.add(serial);
    }
    return [...serials].sort();
  }

  /** The archived chunks of `serial` from the one holding `fromSeq` on, as bundles (at most `chunksMax`). */
  async read(serial: string, fromSeq: bigint, chunksMax: number): Promise<AuditBundle[]> {
    const wanted = (await this.chunks(serial)).filter((c) => c.to >= fromSeq).slice(0, chunksMax);
    const bundles: AuditBundle[] = [];
    for (const c of wanted) {
      const chunks: Buffer[] = [];
      for await (const piece of await this.#o.archive.get(c.key)) chunks.push(piece as Buffer);
      bundles.push(decodeAuditBundle(new Uint8Array(Buffer.concat(chunks))));
    }
    return bundles;
  }

  /** A page is archived only when it verifies on its own and is the expected device's. */
  #check(serial: string, bundle: AuditBundle): void {
    const report = verifyAuditBundles({ bundles: [bundle], ...this.#o.roots, expectedSerial: serial, atMs: this.#o.clock.nowMs() });
    if (report.ok) return;
    const f = report.failure;
    this.#o.log.error({ event: 'audit.page.refused', serial, reason: f?.reason ?? 'unknown', seq: f?.seq?.toString() ?? null }, 'an HSM audit page did not verify; not archived');
    throw new AuditPageRefused(f?.reason ?? 'unknown');
  }

  async #put(key: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.#o.archive.put(key, bytes);
    } catch (e) {
      // Another process archived the same page first: the same records, kept as they are.
      if (!isCofferError(e, 'COFFER_ARCHIVE_EXISTS')) throw e;
    }
  }
}

/** A page that did not verify (logged with its reason; never archived). */
export class AuditPageRefused extends Error {
  constructor(readonly reason: string) {
    super(`audit page refused: ${reason}`);
    this.name = 'AuditPageRefused';
  }
}

function pad(seq: bigint): string {
  return seq.toString(10).padStart(SEQ_DIGITS, '0');
}
