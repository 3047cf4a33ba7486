// Shared by the data-plane tests: a commissioned, activated development device with one crypto
// user (alice), on an in-memory store with fast password hashing.

import { Hsm } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice } from '../../src/hsm/development.js';
import { MemoryRecordStore } from '../../src/hsm/store_port.js';
import type { ScryptParams } from '../../src/hsm/password.js';

/** Password hashing cheap enough for tests (the device's default costs ~50 ms a login). */
export const FAST_KDF: ScryptParams = { log2N: 4, r: 1, p: 1 };

export async function activatedDeviceWithAlice(): Promise<Hsm> {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  await provisionDevelopmentDevice(hsm, await createDevelopmentAuthorities(), { mode: 'NON_FIPS' });
  await hsm.initialiseUsers('preco-password', 'appliance-credential-0123456789');
  await hsm.activate('preco-password', 'admin-password-1');
  const admin = hsm.openSession();
  await admin.login('admin', 'admin-password-1');
  await admin.createUser('alice', 'alice-password', 'crypto-user');
  admin.close();
  return hsm;
}
