// Shared by the data-plane tests: a commissioned, activated development device with one crypto
// user (alice, password 'alice-password'), on an in-memory store with fast password hashing, and
// no session left open.

import type { Hsm } from '../../src/hsm/device.js';
import { createDevelopmentAuthorities } from '../../src/factory/development.js';
import { activeDevice } from '../hsm/backup/backup_support.js';

export async function activatedDeviceWithAlice(): Promise<Hsm> {
  const { hsm, admin, alice } = await activeDevice(await createDevelopmentAuthorities());
  admin.close();
  alice.close();
  return hsm;
}
