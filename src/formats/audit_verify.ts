// Offline verification of a collected audit log (docs/audit.md "Verification"): `coffer audit
// verify` and the control plane's audit endpoint run this one function over bundles in log order.
//
// What it checks, stopping at the first bad record and naming it (seq, bundle, index, reason):
//   - each bundle's device certificate chains to the manufacturer root the caller trusts (and the
//     operator certificate to the operator root, when one is given), and every bundle is of one device;
//   - every record decodes; seq 0 carries the device's genesis hash; every later record carries the
//     chain hash of the one before and the next seq (a gap, a reordering or a record from another
//     log or position breaks this);
//   - every checkpoint names the device and its signature verifies with the certified identity key;
//   - the log ends with a checkpoint, so no record escapes a signature (an unsigned tail is refused).
// Bundles may overlap (a page collected twice): a record equal to the one already seen at its seq is
// skipped; a different one at a seen seq is a fork, refused as out of order.
// A log that starts after seq 0 (older records dropped once collected) is accepted from its first
// record on, and the report says where it starts.

import { verify, type KeyObject } from 'node:crypto';
import { assert } from '../assert.js';
import { isCofferError } from '../errors.js';
import { auditChainHash, auditCheckpointMessage, auditGenesisHash, decodeAuditRecord, type AuditBundle, type AuditRecord } from './audit_record.js';
import { checkDeviceChain, type CertificateInput } from './device_chain.js';

export type AuditFailureReason =
  | 'untrusted-chain' | 'other-device' | 'malformed' | 'genesis-mismatch' | 'gap' | 'out-of-order' | 'chain-broken'
  | 'foreign-checkpoint' | 'bad-signature' | 'unsigned-tail' | 'empty';

/** How far a record is vouched for: covered by a verified checkpoint, not yet, the first bad one,
 * or after it (not checked). */
export type AuditRecordStatus = 'signed' | 'unsigned' | 'bad' | 'unchecked';

export interface AuditFailure {
  readonly reason: AuditFailureReason;
  /** The bad record's seq, when it decoded (null for a chain or framing failure). */
  readonly seq: bigint | null;
  readonly bundle: number;
  readonly index: number;
  /** A non-secret fact: the seq expected, the certificate refusal. */
  readonly detail?: string;
}

export interface AuditEntry {
  readonly record: AuditRecord | undefined;
  readonly bundle: number;
  readonly index: number;
  status: AuditRecordStatus;
}

export interface AuditReport {
  readonly ok: boolean;
  readonly serial: string | undefined;
  readonly firstSeq: bigint | undefined;
  readonly lastSeq: bigint | undefined;
  readonly records: number;
  readonly checkpoints: number;
  readonly failure: AuditFailure | undefined;
  readonly entries: readonly AuditEntry[];
}

export interface AuditVerifyInput {
  readonly bundles: readonly AuditBundle[];
  readonly manufacturerRoot: CertificateInput;
  readonly operatorRoot?: CertificateInput;
  /** The device the caller expects, if it knows. */
  readonly expectedSerial?: string;
  /** Certificate validity is judged at this time. */
  readonly atMs: number;
}

class Stop extends Error {
  constructor(readonly failure: AuditFailure) {
    super(failure.reason);
  }
}

/** One record to check, where it sits in the input. */
interface Item {
  readonly bytes: Uint8Array;
  readonly bundle: number;
  readonly index: number;
}

export function verifyAuditBundles(input: AuditVerifyInput): AuditReport {
  const entries: AuditEntry[] = [];
  const seen = new Map<bigint, Uint8Array>();
  let prev: { seq: bigint; hash: Uint8Array; entry: AuditEntry; signed: boolean } | undefined;
  let lastSigned = -1;
  let checkpoints = 0;
  let failure: AuditFailure | undefined;
  let serial: string | undefined;
  try {
    const { items, device, chainFailure } = itemsOf(input);
    serial = device?.serial;
    for (const [n, item] of items.entries()) {
      assert(device !== undefined, 'items come from a bundle whose chain held');
      const record = decoded(item, entries);
      const known = seen.get(record.seq);
      if (known !== undefined && equal(known, item.bytes)) continue;
      const entry: AuditEntry = { record, bundle: item.bundle, index: item.index, status: 'unsigned' };
      entries.push(entry);
      const bad = (reason: AuditFailureReason, detail?: string): Stop => new Stop({ reason, seq: record.seq, bundle: item.bundle, index: item.index, ...(detail === undefined ? {} : { detail }) });
      const signatureOk = record.type !== 'checkpoint' || (record.serial === device.serial && signatureHolds(device.key, record));
      if (prev === undefined) {
        if (record.seq === 0n && !equal(record.prevHash, auditGenesisHash(device.serial))) throw bad('genesis-mismatch');
      } else {
        if (record.seq <= prev.seq) throw bad('out-of-order', `expected seq ${prev.seq + 1n}`);
        if (record.seq > prev.seq + 1n) throw bad('gap', `expected seq ${prev.seq + 1n}`);
        if (!equal(record.prevHash, prev.hash)) throw brokenLink(prev, record, item.bytes, signatureOk, items[n + 1], bad);
      }
      if (record.type === 'checkpoint') {
        if (record.serial !== device.serial) throw bad('foreign-checkpoint');
        if (!signatureOk) throw bad('bad-signature');
        checkpoints++;
        lastSigned = entries.length - 1;
      }
      seen.set(record.seq, item.bytes);
      prev = { seq: record.seq, hash: auditChainHash(item.bytes), entry, signed: record.type === 'checkpoint' };
    }
    if (chainFailure !== undefined) throw new Stop(chainFailure);
    if (entries.length === 0) throw new Stop({ reason: 'empty', seq: null, bundle: 0, index: 0 });
    const firstUnsigned = entries[lastSigned + 1];
    if (firstUnsigned !== undefined) {
      throw new Stop({ reason: 'unsigned-tail', seq: firstUnsigned.record?.seq ?? null, bundle: firstUnsigned.bundle, index: firstUnsigned.index });
    }
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    failure = e.failure;
  }
  return report(entries, lastSigned, checkpoints, serial, failure);
}

/** The records of every bundle up to the first whose certificates do not hold (that refusal is
 * reported once the records before it are checked), and the device they certify. */
function itemsOf(input: AuditVerifyInput): { items: Item[]; device: { serial: string; key: KeyObject } | undefined; chainFailure: AuditFailure | undefined } {
  const items: Item[] = [];
  let device: { serial: string; key: KeyObject } | undefined;
  for (const [b, bundle] of input.bundles.entries()) {
    let chain;
    try {
      chain = chainOf(input, bundle, b);
    } catch (e) {
      if (e instanceof Stop) return { items, device, chainFailure: e.failure };
      throw e;
    }
    if (device !== undefined && chain.serial !== device.serial) return { items, device, chainFailure: { reason: 'other-device', seq: null, bundle: b, index: 0, detail: chain.serial } };
    device = chain;
    for (const [index, bytes] of bundle.records.entries()) items.push({ bytes, bundle: b, index });
  }
  return { items, device, chainFailure: undefined };
}

/**
 * The link from the record before to this one does not hold: one of the two was altered, dropped
 * in or moved. This one is named when it does not vouch for itself either — a checkpoint whose
 * signature fails, or an event the next record does not chain to (a record put in, or one whose
 * link was altered); otherwise the record before is (an event altered in place: the records on
 * both sides still agree with each other, not with it). A signed checkpoint before is authentic,
 * so then this one is named.
 */
function brokenLink(prev: { seq: bigint; entry: AuditEntry; signed: boolean }, record: AuditRecord, bytes: Uint8Array, signatureOk: boolean, next: Item | undefined, bad: (reason: AuditFailureReason, detail?: string) => Stop): Stop {
  const thisOneBad = prev.signed || (record.type === 'checkpoint' ? !signatureOk : !nextChainsTo(next, bytes));
  if (thisOneBad) return bad('chain-broken', `does not chain to seq ${prev.seq}`);
  prev.entry.status = 'bad';
  return new Stop({ reason: 'chain-broken', seq: prev.seq, bundle: prev.entry.bundle, index: prev.entry.index, detail: `seq ${record.seq} does not chain to it` });
}

function nextChainsTo(next: Item | undefined, bytes: Uint8Array): boolean {
  if (next === undefined) return false;
  try {
    return equal(decodeAuditRecord(next.bytes).prevHash, auditChainHash(bytes));
  } catch {
    return false;
  }
}

function report(entries: AuditEntry[], lastSigned: number, checkpoints: number, serial: string | undefined, failure: AuditFailure | undefined): AuditReport {
  let afterBad = false;
  for (const [n, e] of entries.entries()) {
    if (afterBad) e.status = 'unchecked';
    else if (failure !== undefined && failure.reason !== 'unsigned-tail' && e.bundle === failure.bundle && e.index === failure.index) {
      e.status = 'bad';
      afterBad = true;
    } else e.status = n <= lastSigned ? 'signed' : 'unsigned';
  }
  const decodedRecords = entries.filter((e) => e.record !== undefined);
  return {
    ok: failure === undefined, serial, records: entries.length, checkpoints, failure, entries,
    firstSeq: decodedRecords[0]?.record?.seq, lastSeq: decodedRecords.at(-1)?.record?.seq,
  };
}

/** The bundle's certified device: its serial and identity key, or a Stop naming the refusal. */
function chainOf(input: AuditVerifyInput, bundle: AuditBundle, b: number): { serial: string; key: KeyObject } {
  const refused = (detail: string): Stop => new Stop({ reason: 'untrusted-chain', seq: null, bundle: b, index: 0, detail });
  if (input.operatorRoot !== undefined && bundle.operatorCertificateDer.length === 0) throw refused('no operator certificate');
  try {
    const chain = checkDeviceChain({
      manufacturerRoot: input.manufacturerRoot, deviceCertificate: bundle.deviceCertificateDer, atMs: input.atMs,
      ...(input.operatorRoot === undefined ? {} : { operatorRoot: input.operatorRoot, operatorCertificate: bundle.operatorCertificateDer }),
      ...(input.expectedSerial === undefined ? {} : { expectedSerial: input.expectedSerial }),
    });
    return { serial: chain.serial, key: chain.publicKey };
  } catch (e) {
    if (isCofferError(e, 'COFFER_CERT_INVALID')) throw refused(`${String(e.detail['certificate'])}: ${String(e.detail['reason'])}`);
    throw e;
  }
}

function decoded(item: Item, entries: AuditEntry[]): AuditRecord {
  try {
    return decodeAuditRecord(item.bytes);
  } catch (e) {
    if (!isCofferError(e)) throw e;
    entries.push({ record: undefined, bundle: item.bundle, index: item.index, status: 'bad' });
    throw new Stop({ reason: 'malformed', seq: null, bundle: item.bundle, index: item.index, detail: e.code });
  }
}

/** A checkpoint's signature (ECDSA P-384, SHA-384, P1363) with the certified identity key. */
function signatureHolds(key: KeyObject, record: Extract<AuditRecord, { type: 'checkpoint' }>): boolean {
  const message = auditCheckpointMessage(record.serial, record.seq, record.timeMs, record.prevHash);
  try {
    return verify('sha384', message, { key, dsaEncoding: 'ieee-p1363' }, record.signature);
  } catch {
    return false;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
