// Test support for backup and restore on whole devices (not a test file): commissioned devices
// from development authorities (NON_FIPS, or FIPS with firmware evidence signed by the
// manufacturer over a temporary code folder), activated clusters with users, and blobs.

import type { AuditLog } from '../../../src/hsm/audit/audit_log.js';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { signFirmware } from '../../../src/factory/ceremony.js';
import { Hsm, type HsmEvent, type Session } from '../../../src/hsm/device.js';
import { provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import { computeFirmwareDigest } from '../../../src/hsm/identity/firmware.js';
import { bufferSink, type CreateBackupOptions } from '../../../src/hsm/backup/backup.js';
import type { FirmwareEvidence } from '../../../src/hsm/identity/provisioning.js';
import type { ScryptParams } from '../../../src/hsm/users/password.js';
import { MemoryRecordStore, type RecordStore } from '../../../src/hsm/store/store_port.js';
import type { Clock, Random } from '../../../src/hsm/ports.js';
import type { JournalOptions } from '../../../src/hsm/state/journal.js';
import type { Mode } from '../../../src/hsm/types.js';

export const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 }; // tests only: logins in microseconds
export const PRECO = 'preco-password';
export const ADMIN_PW = 'admin-password-1';
export const APPLIANCE_PW = 'appliance-credential-0123456789';
export const CLUSTER = 'cluster-abcdefghijk';

export interface DeviceOptions {
  readonly mode?: Mode;
  readonly store?: RecordStore;
  readonly firmware?: FirmwareEvidence;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly onEvent?: (event: HsmEvent) => void;
  readonly journal?: JournalOptions;
  readonly audit?: AuditLog;
}

/** A commissioned device, no users yet. FIPS mode needs `firmware` (see firmwareEvidence). */
export async function commissionedDevice(authorities: DevelopmentAuthorities, o: DeviceOptions = {}): Promise<Hsm> {
  const hsm = Hsm.open({
    store: o.store ?? new MemoryRecordStore(),
    kdfParams: FAST_KDF,
    ...(o.firmware === undefined ? {} : { firmware: o.firmware }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
    ...(o.random === undefined ? {} : { random: o.random }),
    ...(o.onEvent === undefined ? {} : { onEvent: o.onEvent }),
    ...(o.journal === undefined ? {} : { journal: o.journal }),
    ...(o.audit === undefined ? {} : { audit: o.audit }),
  });
  const mode = o.mode ?? 'NON_FIPS';
  await provisionDevelopmentDevice(hsm, authorities, { mode, ...(o.firmware === undefined ? {} : { firmware: o.firmware }) });
  return hsm;
}

export interface ActiveDevice {
  readonly hsm: Hsm;
  readonly admin: Session;
  readonly alice: Session;
}

/** A commissioned, activated device with one crypto user `alice` (both sessions logged in). */
export async function activeDevice(authorities: DevelopmentAuthorities, o: DeviceOptions = {}): Promise<ActiveDevice> {
  const hsm = await commissionedDevice(authorities, o);
  await hsm.initialiseUsers(PRECO, APPLIANCE_PW);
  return { hsm, ...(await activateWithAlice(hsm)) };
}

/** Activates a device whose users are initialised (PreCO password PRECO), then creates the crypto
 * user `alice`; returns both sessions, logged in. */
export async function activateWithAlice(hsm: Hsm): Promise<{ admin: Session; alice: Session }> {
  await hsm.activate(PRECO, ADMIN_PW);
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser('alice', 'alice-password', 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('alice', 'alice-password', 'crypto-user');
  return { admin, alice };
}

/** Firmware evidence the manufacturer signed, over a temporary folder of code files. */
export function firmwareEvidence(authorities: DevelopmentAuthorities, version = '1.2.3'): { evidence: FirmwareEvidence; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-backup-code-'));
  mkdirSync(join(dir, 'hsm'));
  writeFileSync(join(dir, 'main.js'), 'export const main = 1;\n');
  writeFileSync(join(dir, 'hsm', 'backup.js'), 'export const backup = 2;\n');
  const evidence = { manifest: signFirmware(authorities.manufacturer, dir, { product: 'coffer', version }), actualDigest: computeFirmwareDigest(dir) };
  return { evidence, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A whole blob in memory. */
export function backupOf(hsm: Hsm, options: Partial<CreateBackupOptions> = {}): Uint8Array {
  const sink = bufferSink();
  hsm.createBackup(sink, { clusterId: CLUSTER, ...options });
  return sink.bytes();
}

export function rejects(fn: () => unknown, code: ErrorCode, what: string = code): void {
  assert.throws(fn, (e) => isCofferError(e, code) || assert.fail(`${what}: expected ${code}, got ${String(e)}`));
}

export async function rejectsAsync(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
