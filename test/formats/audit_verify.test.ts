// Offline verification of a collected audit log (src/formats/audit_verify.ts, docs/audit.md
// "Verification"), over the log of a real device: the intact log verifies; a record altered in
// place, altered and re-chained, dropped, reordered, spliced in from another device or from another
// position of the same log, a forged or foreign checkpoint, an unsigned tail, a bundle of another
// device and untrusted certificates are each refused, naming the first bad record.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditChainHash, auditCheckpointMessage, decodeAuditRecord, encodeAuditRecord, type AuditRecord } from '../../src/formats/audit_record.js';
import { verifyAuditBundles, type AuditReport } from '../../src/formats/audit_verify.js';
import { createDevelopmentAuthorities } from '../../src/factory/development.js';
import type { Hsm } from '../../src/hsm/device.js';
import { ADMIN_PW } from '../hsm/backup/backup_support.js';
import { auditedDevice, bundleOf, roots } from '../hsm/audit/audit_support.js';

const authorities = await createDevelopmentAuthorities();
const ROOTS = roots(authorities);

/** A device with a few dozen records and a checkpoint every 5. */
async function loggedDevice(): Promise<{ hsm: Hsm; records: Uint8Array[] }> {
  const { hsm, log } = await auditedDevice(authorities, { checkpointRecords: 5 });
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('alice', 'alice-password-1', 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('alice', 'alice-password-1');
  for (let i = 0; i < 6; i++) {
    const h = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `k${i}` });
    await alice.destroy(h);
  }
  await assert.rejects(hsm.openSession().login('alice', 'wrong-password-1'));
  return { hsm, records: log.collect(0n, 4096) };
}

const device = await loggedDevice();
const other = await loggedDevice();
const verify = (records: readonly Uint8Array[], hsm: Hsm = device.hsm): AuditReport =>
  verifyAuditBundles({ bundles: [bundleOf(hsm, records)], ...ROOTS, atMs: Date.now() });
const decoded = (records: readonly Uint8Array[]): AuditRecord[] => records.map((r) => decodeAuditRecord(r));

/** An event whose neighbours on both sides are events: where the tampering goes. */
function eventInTheMiddle(records: readonly Uint8Array[]): number {
  const types = decoded(records).map((r) => r.type);
  const k = types.findIndex((t, i) => i > 3 && t === 'event' && types[i - 1] === 'event' && types[i + 1] === 'event' && types[i + 2] === 'event');
  assert.ok(k > 0);
  return k;
}

function failureOf(report: AuditReport): { reason: string; seq: bigint | null } {
  assert.equal(report.ok, false);
  assert.ok(report.failure !== undefined);
  return { reason: report.failure.reason, seq: report.failure.seq };
}

function withEvent(bytes: Uint8Array, change: (r: Extract<AuditRecord, { type: 'event' }>) => AuditRecord): Uint8Array {
  const r = decodeAuditRecord(bytes);
  assert.equal(r.type, 'event');
  return encodeAuditRecord(change(r));
}

test('audit verify: the intact log verifies, every record signed, from seq 0', () => {
  const report = verify(device.records);
  assert.equal(report.ok, true, JSON.stringify(report.failure));
  assert.equal(report.serial, device.hsm.provisioning.identity().serial);
  assert.equal(report.firstSeq, 0n);
  assert.equal(report.lastSeq, BigInt(device.records.length - 1));
  assert.equal(report.checkpoints, decoded(device.records).filter((r) => r.type === 'checkpoint').length);
  assert.ok(report.checkpoints >= 3);
  assert.ok(report.entries.every((e) => e.status === 'signed'));
});

test('audit verify: a record altered in place is named', () => {
  const k = eventInTheMiddle(device.records);
  const records = [...device.records];
  records[k] = withEvent(records[k] as Uint8Array, (r) => ({ ...r, event: { ...r.event, user: 'mallory' } }));
  assert.deepEqual(failureOf(verify(records)), { reason: 'chain-broken', seq: BigInt(k) });
  const report = verify(records);
  assert.equal(report.entries[k]?.status, 'bad');
  assert.equal(report.entries[k + 1]?.status, 'unchecked');
});

test('audit verify: an altered record re-chained up to the next checkpoint fails at that checkpoint\'s signature', () => {
  const k = eventInTheMiddle(device.records);
  const records = [...device.records];
  records[k] = withEvent(records[k] as Uint8Array, (r) => ({ ...r, event: { ...r.event, outcome: r.event.outcome === 'ok' ? 'failed' : 'ok' } }));
  let i = k + 1;
  for (; ; i++) {
    const r = decodeAuditRecord(records[i] as Uint8Array);
    records[i] = encodeAuditRecord({ ...r, prevHash: auditChainHash(records[i - 1] as Uint8Array) });
    if (r.type === 'checkpoint') break;
  }
  assert.deepEqual(failureOf(verify(records)), { reason: 'bad-signature', seq: BigInt(i) });
});

test('audit verify: a dropped record is a gap at the record after it', () => {
  const k = eventInTheMiddle(device.records);
  const records = device.records.filter((_, i) => i !== k);
  assert.deepEqual(failureOf(verify(records)), { reason: 'gap', seq: BigInt(k + 1) });
  // the last record (a checkpoint) dropped: the records after the one before it are signed by nothing
  const all = decoded(device.records);
  const lastButOne = all.findLastIndex((r, i) => r.type === 'checkpoint' && i < all.length - 1);
  assert.deepEqual(failureOf(verify(device.records.slice(0, -1))), { reason: 'unsigned-tail', seq: BigInt(lastButOne + 1) });
  const headless = verify(device.records.slice(1));
  assert.equal(headless.ok, true, 'a log may start after seq 0 (older records dropped once collected): the report says where');
  assert.equal(headless.firstSeq, 1n);
});

test('audit verify: reordered records are named, renumbered or not', () => {
  const k = eventInTheMiddle(device.records);
  const swapped = [...device.records];
  [swapped[k], swapped[k + 1]] = [swapped[k + 1] as Uint8Array, swapped[k] as Uint8Array];
  assert.deepEqual(failureOf(verify(swapped)), { reason: 'gap', seq: BigInt(k + 1) });
  const renumbered = [...swapped];
  renumbered[k] = withEvent(swapped[k], (r) => ({ ...r, seq: BigInt(k) }));
  renumbered[k + 1] = withEvent(swapped[k + 1] as Uint8Array, (r) => ({ ...r, seq: BigInt(k + 1) }));
  assert.deepEqual(failureOf(verify(renumbered)), { reason: 'chain-broken', seq: BigInt(k) });
});

test('audit verify: a record spliced in from another device or from another position is named', () => {
  const k = eventInTheMiddle(device.records);
  const foreign = [...device.records];
  foreign[k] = other.records[k] as Uint8Array;
  assert.equal(decodeAuditRecord(foreign[k]).seq, BigInt(k), 'the other device\'s record at the same seq');
  assert.deepEqual(failureOf(verify(foreign)), { reason: 'chain-broken', seq: BigInt(k) });
  const moved = [...device.records];
  moved[k] = device.records[2] as Uint8Array;
  // An exact copy of a record already read is read once (pages may overlap): the record it replaced is missing.
  assert.deepEqual(failureOf(verify(moved)), { reason: 'gap', seq: BigInt(k + 1) });
  moved[k] = withEvent(device.records[2] as Uint8Array, (r) => ({ ...r, seq: BigInt(k) }));
  assert.deepEqual(failureOf(verify(moved)), { reason: 'chain-broken', seq: BigInt(k) });
  const inserted = [...device.records.slice(0, k), other.records[k] as Uint8Array, ...device.records.slice(k)];
  assert.equal(verify(inserted).ok, false);
});

test('audit verify: a checkpoint signed by another device, or naming another, is refused', () => {
  const types = decoded(device.records);
  const c = types.findIndex((r) => r.type === 'checkpoint');
  const cp = types[c] as Extract<AuditRecord, { type: 'checkpoint' }>;
  const otherIdentity = other.hsm.provisioning.identity();
  const forged = [...device.records];
  forged[c] = encodeAuditRecord({ ...cp, signature: otherIdentity.sign(auditCheckpointMessage(cp.serial, cp.seq, cp.timeMs, cp.prevHash)) });
  assert.deepEqual(failureOf(verify(forged)), { reason: 'bad-signature', seq: BigInt(c) });
  const named = [...device.records];
  named[c] = encodeAuditRecord({ ...cp, serial: otherIdentity.serial, signature: otherIdentity.sign(auditCheckpointMessage(otherIdentity.serial, cp.seq, cp.timeMs, cp.prevHash)) });
  assert.deepEqual(failureOf(verify(named)), { reason: 'foreign-checkpoint', seq: BigInt(c) });
});

test('audit verify: pages verify together; a missing page is a gap; another device\'s page and untrusted roots are refused', async () => {
  const cut = decoded(device.records).findIndex((r, i) => r.type === 'checkpoint' && i > 10) + 1;
  const pages = [device.records.slice(0, cut), device.records.slice(cut)];
  const ok = verifyAuditBundles({ bundles: pages.map((p) => bundleOf(device.hsm, p)), ...ROOTS, atMs: Date.now() });
  assert.equal(ok.ok, true, JSON.stringify(ok.failure));
  const overlapping = verifyAuditBundles({ bundles: [bundleOf(device.hsm, device.records), bundleOf(device.hsm, pages[1] as Uint8Array[])], ...ROOTS, atMs: Date.now() });
  assert.equal(overlapping.ok, true, 'a page collected twice is read once');
  const third = decoded(device.records).findIndex((r, i) => r.type === 'checkpoint' && i > cut) + 1;
  const missing = verifyAuditBundles({ bundles: [bundleOf(device.hsm, device.records.slice(0, cut)), bundleOf(device.hsm, device.records.slice(third))], ...ROOTS, atMs: Date.now() });
  assert.deepEqual(failureOf(missing), { reason: 'gap', seq: BigInt(third) });
  const mixed = verifyAuditBundles({ bundles: [bundleOf(device.hsm, device.records), bundleOf(other.hsm, other.records)], ...ROOTS, atMs: Date.now() });
  assert.equal(failureOf(mixed).reason, 'other-device');
  const strangers = roots(await createDevelopmentAuthorities());
  assert.equal(failureOf(verifyAuditBundles({ bundles: [bundleOf(device.hsm, device.records)], ...strangers, atMs: Date.now() })).reason, 'untrusted-chain');
  const expected = verifyAuditBundles({ bundles: [bundleOf(device.hsm, device.records)], ...ROOTS, atMs: Date.now(), expectedSerial: other.hsm.provisioning.identity().serial });
  assert.equal(failureOf(expected).reason, 'untrusted-chain');
});

test('audit verify: malformed bytes and an empty log are refused', () => {
  const k = eventInTheMiddle(device.records);
  const records = [...device.records];
  records[k] = (records[k] as Uint8Array).subarray(0, 20);
  const report = verify(records);
  assert.equal(failureOf(report).reason, 'malformed');
  assert.equal(report.failure?.index, k);
  assert.equal(failureOf(verify([])).reason, 'empty');
});
