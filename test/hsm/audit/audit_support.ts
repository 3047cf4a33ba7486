// Shared by the audit tests: a commissioned development device with an audit log in memory, the
// roots that verify it, and helpers to take its log as a bundle and re-sign altered records.

import { ManualClock } from '../../../src/hsm/ports.js';
import { AuditLog } from '../../../src/hsm/audit/audit_log.js';
import { MemoryAuditStore } from '../../../src/hsm/audit/audit_store.js';
import { encodeAuditBundle, type AuditBundle } from '../../../src/formats/audit_record.js';
import { createDevelopmentAuthorities, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import type { Hsm } from '../../../src/hsm/device.js';
import { ADMIN_PW, APPLIANCE_PW, PRECO, commissionedDevice } from '../backup/backup_support.js';

export interface AuditedDevice {
  readonly hsm: Hsm;
  readonly log: AuditLog;
  readonly store: MemoryAuditStore;
  readonly clock: ManualClock;
  readonly authorities: DevelopmentAuthorities;
}

/** A commissioned, activated device whose audit log is in memory. */
export async function auditedDevice(authorities?: DevelopmentAuthorities, options: { readonly checkpointRecords?: number; readonly bytesMax?: number } = {}): Promise<AuditedDevice> {
  const a = authorities ?? (await createDevelopmentAuthorities());
  const clock = new ManualClock(Date.now());
  const store = new MemoryAuditStore();
  // The device is provisioned inside commissionedDevice: until it returns, nothing is signed or recorded.
  const opened: { hsm?: Hsm } = {};
  const log = new AuditLog({
    store, clock, signer: () => (opened.hsm === undefined || opened.hsm.provisioning.state() === 'NEW' ? undefined : opened.hsm.provisioning.identity()), ...options,
  });
  const hsm = await commissionedDevice(a, { audit: log, clock });
  opened.hsm = hsm;
  await hsm.initialiseUsers(PRECO, APPLIANCE_PW);
  await hsm.activate(PRECO, ADMIN_PW);
  return { hsm, log, store, clock, authorities: a };
}

/** The device's certificates around `records`, as the management route sends them. */
export function bundleOf(hsm: Hsm, records: readonly Uint8Array[]): AuditBundle {
  const chain = hsm.provisioning.chain();
  return { deviceCertificateDer: chain.deviceCertificate.der, operatorCertificateDer: chain.operatorCertificate?.der ?? new Uint8Array(0), records };
}

export function bundleBytes(hsm: Hsm, records: readonly Uint8Array[]): Uint8Array {
  return encodeAuditBundle(bundleOf(hsm, records));
}

export function roots(a: DevelopmentAuthorities): { manufacturerRoot: string; operatorRoot: string } {
  return { manufacturerRoot: a.manufacturer.rootCertificate.toString('pem'), operatorRoot: a.operator.rootCertificate.toString('pem') };
}
