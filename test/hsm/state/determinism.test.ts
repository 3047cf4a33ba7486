// apply is deterministic (src/hsm/state/device_state.ts, docs/device.md "State changes"): device A
// goes through every kind of cluster-wide change; device B, restored from a backup A took before
// any of them, applies A's change sets — the two decided before the cluster's journal exists (its
// CSR and initialisation) as change sets, every later one as the sealed journal entries A's relay
// appended to a metadata store, through B's journal delivery — and ends with the same records, the
// same state position, lineages and journal head, and indexes that answer alike. While B applies,
// every source of randomness and time the process has — node:crypto's random functions,
// WebCrypto's, Math.random, Date, performance.now and the device's own Random and Clock ports — is
// watched: apply (and opening an entry) may use none of them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { generateKeyPairSync } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { CHANGE_KINDS, decodeChangeSet, type ChangeKind, type ChangeSet } from '../../../src/formats/change_set.js';
import { bufferSource } from '../../../src/formats/backup.js';
import { journalGenesis } from '../../../src/formats/journal_entry.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa } from '../../../src/factory/development.js';
import { systemClock, systemRandom, type Clock, type Random } from '../../../src/hsm/ports.js';
import { ADMIN_PW, APPLIANCE_PW, CLUSTER, PRECO, backupOf, commissionedDevice, hex } from '../backup/backup_support.js';
import { TestRelay } from './journal_support.js';
import { selfSigned } from '../../certificate_support.js';

/** Counts uses of every source of randomness and time while armed. */
class Watch {
  armed = false;
  readonly uses: string[] = [];
  note(what: string): void {
    if (this.armed) this.uses.push(what);
  }
}

/** Wraps the process's random and time functions so that a use while `watch` is armed is recorded. */
function watchProcess(watch: Watch): () => void {
  const restore: (() => void)[] = [];
  const wrap = <T extends object>(owner: T, name: keyof T & string, label: string): void => {
    const original = owner[name] as unknown as (...args: unknown[]) => unknown;
    (owner as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]) {
      watch.note(label);
      return original.apply(this, args);
    };
    restore.push(() => void ((owner as Record<string, unknown>)[name] = original));
  };
  // (crypto.getRandomValues is a getter onto WebCrypto's, wrapped below.)
  for (const name of ['randomBytes', 'randomFillSync', 'randomFill', 'randomUUID', 'randomInt'] as const) wrap(crypto, name, `crypto.${name}`);
  wrap(crypto.webcrypto, 'getRandomValues', 'webcrypto.getRandomValues');
  wrap(Math, 'random', 'Math.random');
  wrap(Date, 'now', 'Date.now');
  wrap(performance, 'now', 'performance.now');
  syncBuiltinESMExports(); // named imports of node:crypto see the wrappers too
  const RealDate = Date;
  // `new Date()` without arguments reads the clock as well.
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args: unknown[]) {
      if (args.length === 0) watch.note('new Date()');
      return Reflect.construct(target, args) as object;
    },
  });
  return () => {
    globalThis.Date = RealDate;
    for (const r of restore) r();
    syncBuiltinESMExports();
  };
}

test('every kind of change set, applied in order on a device restored from the same backup, gives the same state; apply reads no clock and draws no randomness', async () => {
  const authorities = await createDevelopmentAuthorities();
  const ca = await createDevelopmentCustomerCa();
  const watch = new Watch();
  const random: Random = { bytes: (n) => (watch.note('Random port'), systemRandom.bytes(n)) };
  const clock: Clock = { nowMs: () => (watch.note('Clock port'), systemClock.nowMs()) };
  const a = await commissionedDevice(authorities, { journal: { mode: 'relayed' } });
  const b = await commissionedDevice(authorities, { random, clock, journal: { mode: 'relayed' } });
  await b.restoreBackup(bufferSource(backupOf(a))); // both start from one backup: no cluster state yet

  const log: Uint8Array[] = [];
  a.observeChanges((encoded) => log.push(encoded));
  const relay = TestRelay.open([a]); // A's journal: B is not relayed to until the replay below
  relay.start();

  // ── every kind of cluster-wide change, on A ───────────────────────────────────────────────
  const csr = await a.cluster.createCsr(CLUSTER); // cluster.csr
  await a.cluster.initialise({ certificatePem: await ca.signClusterCsr(csr), trustAnchorPem: ca.certificatePem, preCoPassword: PRECO, applianceCredential: APPLIANCE_PW }); // cluster.initialise
  await a.activate(PRECO, ADMIN_PW); // user.activate
  const admin = a.openSession();
  await admin.login('admin', ADMIN_PW); // user.login
  for (const name of ['alice', 'bob', 'carol']) await admin.createUser(name, `${name}-password`, 'crypto-user'); // user.create
  await admin.createUser('admin2', 'admin2-password', 'admin');
  await admin.changePassword('carol', 'carol-password-2'); // user.password
  await admin.deleteUser('carol'); // user.delete
  const bad = a.openSession();
  for (let i = 0; i < 5; i++) await assert.rejects(bad.login('bob', 'not-bobs-password')); // user.login: failed logins, then locked
  await assert.rejects(bad.login('bob', 'bob-password'), (e: unknown) => (e as { code?: string }).code === 'COFFER_USER_LOCKED');
  await admin.unlockUser('bob'); // user.unlock
  const quorumKey = (): Uint8Array => new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }));
  await admin.registerQuorumKey(quorumKey()); // user.quorum-key
  const admin2 = a.openSession();
  await admin2.login('admin2', 'admin2-password');
  await admin2.registerQuorumKey(quorumKey());
  await admin.setQuorumValue('quorum', 2); // quorum.value
  const alice = a.openSession();
  await alice.login('alice', 'alice-password');
  await alice.changeOwnPassword('alice-password', 'alice-password-2');
  const aes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'kek', wrap: true, unwrap: true, extractable: true, sensitive: false }); // key.generate
  const pair = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: 'pub' }, { label: 'priv', derive: true }); // key.generate-pair
  const peer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await alice.importPublicKey(peer.publicKey.export({ type: 'spki', format: 'pem' }).toString(), { label: 'peer' }); // key.import
  await alice.importCertificate(selfSigned('ec', 'determinism').der, { label: 'cert', id: Uint8Array.of(9) }); // certificate.import
  const sessionPair = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { token: false }, { token: false });
  await alice.copyObject(sessionPair.privateHandle, { token: true, label: 'kept' }); // key.copy
  for (const h of [sessionPair.publicHandle, sessionPair.privateHandle]) await alice.destroy(h); // session objects: local, no entry
  const hmac = await alice.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { label: 'hmac', extractable: true });
  const wrapped = alice.wrapKey(aes, hmac, { mechanism: 'CKM_AES_KEY_WRAP_PAD' });
  await alice.unwrapKey(aes, wrapped, { mechanism: 'CKM_AES_KEY_WRAP_PAD' }, { class: 'SECRET_KEY', keyType: 'GENERIC_SECRET', label: 'unwrapped', sign: true }); // key.unwrap
  // The P-256 SPKI ends with the uncompressed point 04 || x || y. Not read from a JWK: node 20
  // can deadlock exporting a JWK of a freshly generated key (src/crypto/ecdsa_raw.ts).
  const peerPoint = new Uint8Array(peer.publicKey.export({ format: 'der', type: 'spki' }).subarray(-65));
  assert.equal(peerPoint[0], 4);
  await alice.deriveKey(pair.privateHandle, { mechanism: 'CKM_ECDH1_DERIVE', publicKey: peerPoint }, { keyType: 'AES', bits: 128, label: 'derived' }); // key.derive
  await alice.setAttribute(aes, 'label', 'renamed'); // key.attribute
  await alice.share(pair.privateHandle, 'bob'); // key.share
  await alice.unshare(pair.privateHandle, 'bob'); // key.unshare
  await alice.destroy(hmac); // key.destroy
  const message = new TextEncoder().encode('signed on A');
  const signature = alice.sign(pair.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message);

  await relay.stop();
  const entries = await relay.entries(1n);

  // ── replay on B, watched ─────────────────────────────────────────────────────────────────
  const seen = new Set<ChangeKind>();
  b.observeChanges((encoded) => {
    seen.add(decodeChangeSet(encoded).kind);
    encoded.fill(0);
  });
  const beforeJournal = log.slice(0, 2).map((encoded) => decodeChangeSet(encoded));
  assert.deepEqual(beforeJournal.map((cs) => cs.kind), ['cluster.csr', 'cluster.initialise'], 'the journal begins after initialisation');
  assert.equal(BigInt(entries.length), BigInt(log.length - 2), 'every later cluster-wide change set is a journal entry');
  const unwatch = watchProcess(watch);
  try {
    for (const cs of beforeJournal) {
      watch.armed = true;
      try {
        await b.applyChangeSet(cs);
      } finally {
        watch.armed = false;
      }
    }
    // Reading the cluster identity in (parsing its certificates, whose ASN.1 library makes default
    // Dates) is a read of the state, not apply: done here, before the entries are applied, watched.
    assert.equal(b.journal.journaled(), true, 'initialisation gave B the sync key: its journal is on');
    watch.armed = true;
    let result;
    try {
      result = await b.journal.deliver(entries);
    } finally {
      watch.armed = false;
    }
    assert.equal(result.applied, entries.length);
    assert.equal(result.fault, undefined);
  } finally {
    unwatch();
  }
  assert.deepEqual(watch.uses, [], 'apply used no randomness and read no clock');
  // From here both HSMs are one cluster: logins on B are journaled too.
  const both = TestRelay.open([a, b], relay.store);
  both.start();
  // The relay's pumps must stop whatever an assertion below finds, or the test never ends.
  try {
    // cluster.clone-journal starts a new cluster's journal on one HSM and reaches the others only in
    // its backups, never as a change set replayed (journal_clone.test.ts).
    const cluster = (Object.keys(CHANGE_KINDS) as ChangeKind[]).filter((k) => !k.startsWith('device.') && k !== 'session.objects' && k !== 'cluster.clone-journal');
    assert.deepEqual(cluster.filter((k) => !seen.has(k)), [], 'every kind of cluster-wide change set was replayed');

    // ── same records, same position, indexes that answer alike ─────────────────────────────────
    assert.equal(hex(b.stateDigest()), hex(a.stateDigest()));
    const [pa, pb] = [a.statePosition(), b.statePosition()];
    assert.equal(pb.position, pa.position);
    assert.equal(BigInt(log.length), pa.position, 'one position per cluster-wide change set');
    assert.equal(hex(pb.lineage), hex(pa.lineage));
    assert.equal(hex(pb.objectLineage), hex(pa.objectLineage));
    assert.equal(pa.journal.seq, BigInt(entries.length));
    assert.equal(pb.journal.seq, pa.journal.seq, 'the same journal head');
    assert.equal(hex(pb.journal.hash), hex(pa.journal.hash));
    assert.equal(hex(b.journal.head().hash), hex(a.journal.head().hash));
    assert.equal(b.status().journalPosition, BigInt(entries.length));
    assert.equal(b.cluster.certificatePem(), a.cluster.certificatePem());
    // The cluster sync key came in cluster.initialise's change set: an entry sealed on one opens on the other.
    const position = { seq: 1n, predecessor: journalGenesis(CLUSTER) };
    const carried: ChangeSet = { scope: 'cluster', kind: 'key.generate', ops: [{ op: 'put', ns: 'object', id: '0000000000000042', value: Uint8Array.of(42) }] };
    assert.deepEqual(b.cluster.openJournalEntry(a.cluster.sealJournalEntry(carried, position).entry, position).changeSet, carried);
    assert.deepEqual(a.cluster.openJournalEntry(b.cluster.sealJournalEntry(carried, position).entry, position).changeSet, carried);
    const onB = b.openSession();
    await onB.login('alice', 'alice-password-2');
    assert.deepEqual(onB.find().map((o) => [o.handle, o.label, hex(o.identity)]), alice.find().map((o) => [o.handle, o.label, hex(o.identity)]));
    assert.equal(onB.verify(pair.publicHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message, signature), true);
    const fromB = onB.sign(pair.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message);
    assert.equal(alice.verify(pair.publicHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message, fromB), true, 'the same key on both');
    const bobOnB = b.openSession();
    await bobOnB.login('bob', 'bob-password'); // unlocked on B too
    const adminOnB = b.openSession();
    await adminOnB.login('admin', ADMIN_PW);
    assert.deepEqual(adminOnB.listUsers(), admin.listUsers());
    assert.deepEqual(adminOnB.quorumValues(), admin.quorumValues());
  } finally {
    await both.close();
  }
  assert.equal(hex(b.journal.head().hash), hex(a.journal.head().hash), 'still one journal');
});
