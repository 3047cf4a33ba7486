// Seeded randomised scenario for the cluster journal (docs/device.md "The journal"): three HSMs
// cloned from one backup, a relay appending with compare-and-append to a real metadata store
// (SQLite) and delivering to all, and concurrent workers on every HSM generating, importing,
// renaming and destroying keys, creating and deleting users and failing logins. Every change is
// decided on one HSM and reaches all through the journal, lost append races decided again. At the
// end every HSM has the same head and state digest, every acknowledged change is there on every
// HSM under the same handle, and each failed login was counted exactly once. The seed is printed;
// COFFER_JOURNAL_SEED=<seed> replays the workers' choices.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../../src/factory/development.js';
import { isCofferError } from '../../../src/errors.js';
import type { Hsm, Session } from '../../../src/hsm/device.js';
import { hex } from '../backup/backup_support.js';
import { TestRelay, activateCluster, clonedCluster, loggedIn, prng, seedFrom } from './journal_support.js';

const DEVICES = 3;
const WORKERS_PER_DEVICE = 2;
const OPS_PER_WORKER = 15;

let authorities: DevelopmentAuthorities;
let ca: DevelopmentCustomerCa;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  ca = await createDevelopmentCustomerCa();
});

/** What the workers were told succeeded: what must be on every HSM at the end. */
interface Acknowledged {
  /** handle → its label, or null once destroyed. */
  readonly keys: Map<number, string | null>;
  /** user name → true while it exists. */
  readonly users: Map<string, boolean>;
  /** Failed logins of bob that were counted (COFFER_AUTH_FAILED). */
  bobFailures: number;
}

interface Worker {
  readonly name: string;
  readonly hsm: Hsm;
  readonly alice: Session;
  readonly admin: Session;
  readonly rand: () => number;
  /** This worker's keys and users (only it changes them, so their end state is known). */
  readonly keys: number[];
  readonly users: string[];
}

async function step(w: Worker, i: number, ack: Acknowledged): Promise<void> {
  const pick = w.rand();
  const label = `${w.name}-${i}`;
  if (pick < 0.25) {
    const handle = await w.alice.generateKey({ keyType: 'AES', bits: 256 }, { label });
    ack.keys.set(handle, label);
    w.keys.push(handle);
  } else if (pick < 0.35) {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const handle = await w.alice.importPublicKey(pem, { label });
    ack.keys.set(handle, label);
    w.keys.push(handle);
  } else if (pick < 0.5 && w.keys.length > 0) {
    const handle = w.keys[Math.floor(w.rand() * w.keys.length)] as number;
    await w.alice.setAttribute(handle, 'label', `${label}-renamed`);
    ack.keys.set(handle, `${label}-renamed`);
  } else if (pick < 0.6 && w.keys.length > 0) {
    const handle = w.keys.splice(Math.floor(w.rand() * w.keys.length), 1)[0] as number;
    await w.alice.destroy(handle);
    ack.keys.set(handle, null);
  } else if (pick < 0.72) {
    await w.admin.createUser(label, `${label}-password`, 'crypto-user');
    ack.users.set(label, true);
    w.users.push(label);
  } else if (pick < 0.8 && w.users.length > 0) {
    const name = w.users.splice(Math.floor(w.rand() * w.users.length), 1)[0] as string;
    await w.admin.deleteUser(name);
    ack.users.set(name, false);
  } else {
    const session = w.hsm.openSession();
    try {
      await session.login('bob', `not-bobs-password-${i}`);
      assert.fail('a wrong password logged in');
    } catch (e) {
      if (isCofferError(e, 'COFFER_AUTH_FAILED')) ack.bobFailures++;
      else if (!isCofferError(e, 'COFFER_USER_LOCKED')) throw e;
    } finally {
      session.close();
    }
  }
}

test('concurrent changes through three HSMs converge through the journal: one head, one digest, every acknowledged change on every HSM under one handle', { timeout: 600_000 }, async () => {
  const seed = seedFrom('COFFER_JOURNAL_SEED', 'journal cluster');
  const { devices } = await clonedCluster(authorities, ca, DEVICES);
  const relay = TestRelay.open(devices, undefined, prng(seed));
  relay.start();
  try {
    await activateCluster(devices[0] as Hsm);
    const workers: Worker[] = [];
    for (const [d, hsm] of devices.entries()) {
      for (let k = 0; k < WORKERS_PER_DEVICE; k++) {
        const index = d * WORKERS_PER_DEVICE + k;
        workers.push({
          name: `w${index}`, hsm, alice: await loggedIn(hsm, 'alice'), admin: await loggedIn(hsm, 'admin'),
          rand: prng(seed * 31 + index), keys: [], users: [],
        });
      }
    }
    const ack: Acknowledged = { keys: new Map(), users: new Map(), bobFailures: 0 };
    await Promise.all(workers.map(async (w) => {
      for (let i = 0; i < OPS_PER_WORKER; i++) {
        try {
          await step(w, i, ack);
        } catch (e) {
          assert.fail(`seed ${seed}: ${w.name} step ${i} failed: ${String(e)}`);
        }
      }
    }));
    await relay.stop();
    await relay.deliverAll();

    const [first] = devices as [Hsm];
    const head = first.journal.head();
    console.log(`journal cluster: ${head.seq} entries, ${relay.conflicts} lost appends decided again`);
    assert.equal(BigInt(relay.appended), head.seq, 'every entry appended once');
    assert.equal(await relay.store.journalHead('cluster-abcdefghijk'), Number(head.seq));
    for (const hsm of devices) {
      assert.equal(hsm.journal.fault(), undefined, `seed ${seed}`);
      assert.equal(hsm.journal.head().seq, head.seq, `seed ${seed}: one head`);
      assert.equal(hex(hsm.journal.head().hash), hex(head.hash), `seed ${seed}: one chain`);
      assert.equal(hex(hsm.stateDigest()), hex(first.stateDigest()), `seed ${seed}: one state`);
      assert.equal(hex(hsm.statePosition().objectLineage), hex(first.statePosition().objectLineage));
    }
    for (const w of workers.filter((_, i) => i % WORKERS_PER_DEVICE === 0)) {
      // Every acknowledged key under its handle, on every HSM; destroyed ones gone.
      for (const [handle, label] of ack.keys) {
        if (label === null) assert.throws(() => w.admin.getAttributes(handle), (e: unknown) => isCofferError(e, 'COFFER_OBJECT_NOT_FOUND'), `seed ${seed}: ${handle} destroyed`);
        else assert.equal(w.admin.getAttributes(handle).label, label, `seed ${seed}: handle ${handle} on ${w.name}`);
      }
      const users = new Map(w.admin.listUsers().map((u) => [u.name, u]));
      for (const [name, exists] of ack.users) assert.equal(users.has(name), exists, `seed ${seed}: user ${name}`);
      assert.equal(users.get('bob')?.failedLogins, ack.bobFailures, `seed ${seed}: each failed login counted once`);
    }
  } finally {
    await relay.close();
    for (const hsm of devices) hsm.close();
  }
});
