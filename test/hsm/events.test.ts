// The device's events (HsmEvent, src/hsm/device.ts): what the node logs. A scenario with logins, a
// lockout, key and user changes, a backup, a restore and a zeroise is heard in full, and no event
// holds any of the secrets the scenario used (passwords, key bytes, verifiers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bufferSource } from '../../src/formats/backup.js';
import { createDevelopmentAuthorities } from '../../src/factory/development.js';
import type { HsmEvent } from '../../src/hsm/device.js';
import { ADMIN_PW, APPLIANCE_PW, PRECO, backupOf, commissionedDevice } from './backup/backup_support.js';

test('events: logins with their outcome, lockouts, every state change with its handles and users, backup, restore, zeroise; never a secret', async () => {
  const authorities = await createDevelopmentAuthorities();
  const events: HsmEvent[] = [];
  const hsm = await commissionedDevice(authorities, { onEvent: (e) => events.push(e) });
  await hsm.initialiseUsers(PRECO, APPLIANCE_PW);
  await hsm.activate(PRECO, ADMIN_PW);
  const admin = hsm.openSession();
  await admin.login('admin', ADMIN_PW);
  const ALICE_PW = 'alice-secret-pw-42';
  await admin.createUser('alice', ALICE_PW, 'crypto-user');
  const alice = hsm.openSession();
  await alice.login('Alice', ALICE_PW);
  const aes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'k', extractable: true, sensitive: false });
  const keyBytes = alice.exportPlaintext(aes).use((b) => Buffer.from(b).toString('hex'));
  await alice.destroy(aes);
  const WRONG = 'not-alices-pw-99';
  for (let i = 0; i < 5; i++) await assert.rejects(hsm.openSession().login('alice', WRONG));
  await assert.rejects(hsm.openSession().login('a password?', WRONG));
  await assert.rejects(hsm.openSession().login('Secret-Password-42', WRONG)); // a password typed as the name
  const blob = backupOf(hsm);
  await hsm.restoreBackup(bufferSource(blob));
  await hsm.zeroise();

  const logins = events.filter((e) => e.event === 'login');
  assert.ok(logins.some((e) => e.user === 'alice' && e.outcome === 'ok' && e.role === 'crypto-user'), 'alice logged in (name normalised)');
  assert.equal(logins.filter((e) => e.user === 'alice' && e.outcome === 'failed' && e.code === 'COFFER_AUTH_FAILED').length, 5);
  assert.equal(logins.filter((e) => e.outcome === 'failed' && e.user === '(unknown user)').length, 2, 'a name that is no user\'s is not logged as typed');
  assert.ok(!JSON.stringify(events).toLowerCase().includes('secret-password-42'), 'not even one that looks like a user name');
  assert.deepEqual(events.filter((e) => e.event === 'lockout'), [{ event: 'lockout', user: 'alice' }]);
  const changes = events.filter((e): e is Extract<HsmEvent, { event: 'state-change' }> => e.event === 'state-change');
  assert.ok(changes.some((e) => e.kind === 'key.generate' && e.handles.includes(aes) && e.scope === 'cluster' && e.position !== ''));
  assert.ok(changes.some((e) => e.kind === 'key.destroy' && e.handles.includes(aes)));
  assert.ok(changes.some((e) => e.kind === 'user.create' && e.users.includes('alice')));
  assert.ok(changes.some((e) => e.kind === 'device.commission' && e.scope === 'local'));
  assert.equal(events.filter((e) => e.event === 'backup').length, 1);
  assert.equal(events.filter((e) => e.event === 'restore').length, 1);
  assert.equal(events.filter((e) => e.event === 'zeroise').length, 1);

  const text = JSON.stringify(events);
  for (const secret of [ADMIN_PW, PRECO, APPLIANCE_PW, ALICE_PW, WRONG, keyBytes]) assert.ok(!text.includes(secret), 'no secret in any event');
});
