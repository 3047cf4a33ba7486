// The device's audit log (src/hsm/audit/audit_log.ts): checkpoints by count and by time (an injected
// clock), pages that end on a checkpoint, the bound (collected records dropped first, uncollected
// ones never: the device refuses instead), restart and a torn tail on the file store; and on a device, the calls a security officer asks about recorded with
// user, session, handles and outcome, and no secret anywhere in the log's bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAuditRecord, type AuditRecord } from '../../../src/formats/audit_record.js';
import { verifyAuditBundles } from '../../../src/formats/audit_verify.js';
import { AUDIT_RECORD_BYTES_MAX } from '../../../src/formats/limits.js';
import { createDevelopmentAuthorities } from '../../../src/factory/development.js';
import { bufferSource } from '../../../src/formats/backup.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { AuditLog } from '../../../src/hsm/audit/audit_log.js';
import { FileAuditStore, MemoryAuditStore, type AuditStore } from '../../../src/hsm/audit/audit_store.js';
import { rejectsCode, throwsCode } from '../../helpers.js';
import { ADMIN_PW, backupOf } from '../backup/backup_support.js';
import { auditedDevice, bundleOf, roots } from './audit_support.js';

const authorities = await createDevelopmentAuthorities();
const ROOTS = roots(authorities);
/** The device whose identity signs the stand-alone logs below, and whose certificates verify them. */
const owner = await auditedDevice(authorities);
const identity = owner.hsm.provisioning.identity();
const EVENT = { kind: 'key.generate', outcome: 'ok', user: 'alice', session: 's-1', code: '', detail: '', handles: [1] } as const;

function logOver(store: AuditStore, clock = new ManualClock(), options: { checkpointRecords?: number; checkpointIntervalMs?: number; bytesMax?: number } = {}): AuditLog {
  return new AuditLog({ store, clock, signer: () => identity, ...options });
}
const types = (records: readonly Uint8Array[]): string[] => records.map((r) => decodeAuditRecord(r).type);

test('audit log: a checkpoint after N records and after T ms; pages end on one; a position past the end is refused', () => {
  const clock = new ManualClock();
  const store = new MemoryAuditStore();
  const log = logOver(store, clock, { checkpointRecords: 3, checkpointIntervalMs: 60_000 });
  for (let i = 0; i < 7; i++) log.record(EVENT);
  assert.deepEqual(types(log.records()), ['event', 'event', 'event', 'checkpoint', 'event', 'event', 'event', 'checkpoint', 'event']);
  assert.equal(store.synced, 8, 'synced at each checkpoint, not after each record');
  clock.advance(60_000);
  log.record(EVENT);
  assert.equal(types(log.records()).at(-1), 'checkpoint', 'the unsigned records got old: signed');
  log.record(EVENT);
  const page = log.collect(0n, 4096);
  assert.equal(types(page).at(-1), 'checkpoint', 'collection signs the tail first');
  assert.equal(store.synced, log.records().length);
  assert.equal(log.collect(log.nextSeq, 10).length, 0);
  throwsCode(() => log.collect(log.nextSeq + 1n, 10), 'COFFER_AUDIT_POSITION');
  const short = log.collect(0n, 6);
  assert.deepEqual(types(short), ['event', 'event', 'event', 'checkpoint'], 'a short page ends on its last checkpoint');
  const report = verifyAuditBundles({ bundles: [bundleOf(owner.hsm, page)], ...ROOTS, atMs: Date.now() });
  assert.equal(report.ok, true, JSON.stringify(report.failure));
});

test('audit log: full of uncollected records it refuses; collected records are dropped first, and what is left verifies', () => {
  const bytesMax = 80 * AUDIT_RECORD_BYTES_MAX;
  const log = logOver(new MemoryAuditStore(), new ManualClock(), { bytesMax });
  let written = 0;
  for (; ; written++) {
    try {
      log.room();
    } catch (e) {
      assert.ok(e instanceof Error && (e as { code?: string }).code === 'COFFER_AUDIT_FULL');
      break;
    }
    log.record(EVENT);
  }
  assert.ok(written > 100, `${written} records fit`);
  assert.equal(log.firstSeq, 0n, 'nothing uncollected was dropped');
  const page = log.collect(0n, 4096);
  const next = log.nextSeq;
  log.collect(next, 1); // the collector holds everything before `next`
  log.room();
  assert.ok(log.firstSeq > 0n, 'the oldest collected records were dropped');
  log.record(EVENT);
  const rest = log.collect(next, 4096);
  const report = verifyAuditBundles({ bundles: [bundleOf(owner.hsm, page), bundleOf(owner.hsm, rest)], ...ROOTS, atMs: Date.now() });
  assert.equal(report.ok, true, JSON.stringify(report.failure));
  const alone = verifyAuditBundles({ bundles: [bundleOf(owner.hsm, log.collect(0n, 4096))], ...ROOTS, atMs: Date.now() });
  assert.equal(alone.ok, true, 'the log left after dropping verifies from where it starts');
  assert.ok(alone.firstSeq !== undefined && alone.firstSeq > 0n);
});

test('audit log on a file: a restart continues the chain; a torn last frame is cut; a damaged frame is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-audit-'));
  const path = join(dir, 'audit.log');
  try {
    const first = logOver(new FileAuditStore(path));
    for (let i = 0; i < 5; i++) first.record(EVENT);
    first.close();
    const sizeBefore = statSync(path).size;
    appendFileSync(path, Uint8Array.of(0, 40, 1, 2, 3)); // a frame torn by a crash
    const second = logOver(new FileAuditStore(path));
    assert.equal(statSync(path).size, sizeBefore, 'the torn frame was cut');
    assert.equal(second.nextSeq, 5n);
    second.record(EVENT);
    const report = verifyAuditBundles({ bundles: [bundleOf(owner.hsm, second.collect(0n, 4096))], ...ROOTS, atMs: Date.now() });
    assert.equal(report.ok, true, JSON.stringify(report.failure));
    second.close();
    appendFileSync(path, Uint8Array.of(0, 0, 0, 0));
    assert.throws(() => new FileAuditStore(path).load(), (e: unknown) => (e as { code?: string }).code === 'COFFER_AUDIT_DAMAGED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('audited device: logins, lockout, user and key changes, export, backup, restore, zeroise recorded with user, session, handles and outcome; no secret in the log', async () => {
  const { hsm, log } = await auditedDevice(authorities);
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  const ALICE_PW = 'alice-secret-pw-42';
  await admin.createUser('alice', ALICE_PW, 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('Alice', ALICE_PW);
  const aes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'k', extractable: true, sensitive: false });
  const keyBytes = alice.exportPlaintext(aes).use((b) => Buffer.from(b));
  await alice.destroy(aes);
  await rejectsCode(() => alice.destroy(aes), 'COFFER_OBJECT_NOT_FOUND');
  const WRONG = 'not-alices-pw-99';
  for (let i = 0; i < 5; i++) await assert.rejects(hsm.openSession().login('alice', WRONG));
  await assert.rejects(hsm.openSession().login(ALICE_PW, WRONG), 'a password typed as the name');
  const blob = backupOf(hsm);
  await hsm.restoreBackup(bufferSource(blob));
  await hsm.zeroise();

  const records = log.collect(0n, 4096);
  const events = records.map((r) => decodeAuditRecord(r)).filter((r): r is Extract<AuditRecord, { type: 'event' }> => r.type === 'event').map((r) => r.event);
  const has = (p: (e: (typeof events)[number]) => boolean, what: string): void => assert.ok(events.some(p), what);
  has((e) => e.kind === 'login' && e.user === 'alice' && e.outcome === 'ok' && e.session === alice.id, 'alice logged in, in her session');
  assert.equal(events.filter((e) => e.kind === 'login' && e.user === 'alice' && e.outcome === 'failed' && e.code === 'COFFER_AUTH_FAILED').length, 5);
  has((e) => e.kind === 'login' && e.outcome === 'failed' && e.user === '(unknown user)' && e.code === 'COFFER_AUTH_FAILED', 'a name that is no user\'s is not recorded as typed');
  has((e) => e.kind === 'lockout' && e.user === 'alice', 'the lockout');
  has((e) => e.kind === 'user.create' && e.user === 'admin' && e.detail === 'alice' && e.session === admin.id && e.outcome === 'ok', 'admin created alice');
  has((e) => e.kind === 'key.generate' && e.user === 'alice' && e.handles.includes(aes) && e.detail === 'AES', 'alice generated the key');
  has((e) => e.kind === 'key.export' && e.user === 'alice' && e.handles.includes(aes) && e.detail === 'plaintext', 'the plaintext export');
  has((e) => e.kind === 'key.destroy' && e.handles.includes(aes) && e.outcome === 'ok', 'the destroy');
  has((e) => e.kind === 'key.destroy' && e.handles.includes(aes) && e.outcome === 'failed' && e.code === 'COFFER_OBJECT_NOT_FOUND', 'the refused destroy');
  for (const kind of ['backup', 'restore', 'zeroise'] as const) has((e) => e.kind === kind && e.outcome === 'ok', kind);
  const report = verifyAuditBundles({ bundles: [bundleOf(hsm, records)], ...ROOTS, atMs: Date.now() });
  assert.equal(report.ok, true, JSON.stringify(report.failure));

  const bytes = Buffer.concat(records);
  for (const secret of [ADMIN_PW, ALICE_PW, WRONG, 'preco-password']) assert.equal(bytes.indexOf(secret), -1, 'no password in the log');
  assert.equal(bytes.indexOf(keyBytes), -1, 'no key bytes in the log');
  assert.equal(bytes.indexOf(keyBytes.toString('hex')), -1);
});

test('audited device with a full log: audited calls are refused before they act, logins too; a backup is not; a collection frees room', async () => {
  const { hsm, log } = await auditedDevice(authorities, { bytesMax: 80 * AUDIT_RECORD_BYTES_MAX });
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('erin', 'erin-password-1', 'crypto-user');
  const erin = hsm.openSession();
  await erin.login('erin', 'erin-password-1');
  let refused = false;
  for (let i = 0; i < 1000 && !refused; i++) {
    try {
      await erin.generateKey({ keyType: 'AES', bits: 128 }, { label: `fill-${i}` });
    } catch (e) {
      assert.ok(e instanceof Error && (e as { code?: string }).code === 'COFFER_AUDIT_FULL', String(e));
      refused = true;
    }
  }
  assert.ok(refused, 'the log filled up');
  const keys = erin.find({}).length;
  const digest = Buffer.from(hsm.stateDigest()).toString('hex');
  await rejectsCode(() => erin.generateKey({ keyType: 'AES', bits: 128 }, { label: 'one more' }), 'COFFER_AUDIT_FULL');
  await rejectsCode(() => hsm.openSession().login('erin', 'erin-password-1'), 'COFFER_AUDIT_FULL');
  assert.equal(erin.find({}).length, keys, 'a refused call made nothing');
  assert.equal(Buffer.from(hsm.stateDigest()).toString('hex'), digest);
  assert.equal(log.firstSeq, 0n, 'no uncollected record was dropped');
  backupOf(hsm); // never refused: recorded past the bound
  const records = log.records().map((r) => decodeAuditRecord(r));
  assert.ok(records.some((r) => r.type === 'event' && r.event.kind === 'backup' && r.event.outcome === 'ok'));
  log.collect(log.nextSeq, 1); // the control plane holds everything so far
  await erin.generateKey({ keyType: 'AES', bits: 128 }, { label: 'after collection' });
  assert.ok(log.firstSeq > 0n, 'collected records were dropped to make room');
});
