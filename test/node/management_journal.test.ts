// The journal endpoints of the management interface (docs/node.md "Journal endpoints"): two real
// management servers whose devices are clones of one cluster in relayed mode; the test plays the
// relay over ManagementClient — takes an entry offered by one, delivers it to both — and checks the
// heads in health, that health answers while an offer long-poll is open, and the bounds.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagementClient } from '../../src/management/client.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { pemOf } from '../../src/formats/x509.js';
import { isCofferError } from '../../src/errors.js';
import { JOURNAL_MISSING_ENTRY_WAIT_MS, MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX } from '../../src/formats/limits.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { MANAGEMENT_ROUTES } from '../../src/formats/management.js';
import { codeOf, issueClientCredential, raw, startTestNode, type ClientCredential, type TestNode } from './management_support.js';

const CLUSTER_ID = 'cluster-journalab234';
/** Generous: a wait that only ends early on an event. */
const WAIT_MS = 30_000;
let authorities: DevelopmentAuthorities;
let credential: ClientCredential;
let a: TestNode;
let b: TestNode;
/** b's clock: its wait for a missing entry is measured on it. */
const bClock = new ManualClock();
const dirs: string[] = [];

before(async () => {
  authorities = await createDevelopmentAuthorities();
  credential = await issueClientCredential(authorities.operator);
  const relayed = { mode: 'relayed' as const, decideTimeoutMs: WAIT_MS };
  [a, b] = await Promise.all([startTestNode(authorities, {}, undefined, relayed), startTestNode(authorities, {}, undefined, { ...relayed, clock: bClock })]);
});
after(async () => {
  for (const n of [a, b]) {
    await n.close();
    rmSync(n.dataDir, { recursive: true, force: true });
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function client(node: TestNode): ManagementClient {
  return new ManagementClient({
    host: '127.0.0.1', port: node.management.port, ...credential,
    manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
  });
}

test('offer, delivery and heads over the management interface; health answers during a long-poll', { timeout: 300_000 }, async () => {
  const ca = await createDevelopmentCustomerCa();
  const [ca1, cb] = [client(a), client(b)];
  const csrPem = await ca1.clusterCsr(CLUSTER_ID);
  await ca1.initialiseCluster({ certificatePem: await ca.signClusterCsr(csrPem), trustAnchorPem: ca.certificatePem, preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789' });
  const dir = mkdtempSync(join(tmpdir(), 'coffer-journal-'));
  dirs.push(dir);
  await ca1.backupToFile(join(dir, 'b.bin'));
  await cb.restoreFromFile(join(dir, 'b.bin'));
  const [ha, hb] = [await ca1.health({ digest: true }), await cb.health({ digest: true })];
  assert.equal(ha.journalMode, 'relayed');
  assert.equal(ha.journalPosition, 0n);
  assert.equal(ha.journalHeadHash, hb.journalHeadHash, 'clones start at one genesis');
  assert.equal(ha.journalFault, null);

  // An open long-poll does not hold health up.
  let offerDone = false;
  const idle = ca1.takeJournalOffer(2_000).finally(() => (offerDone = true));
  const during = await ca1.health({ digest: true });
  assert.equal(offerDone, false, 'health answered while the offer long-poll was open');
  assert.equal(during.journalPosition, 0n);
  assert.equal(await idle, undefined, 'nothing offered: 204');

  // Activation on a is journaled: offered, then delivered to both (a applies its own entry).
  const activation = a.hsm.activate('preco-password', 'admin-password-1');
  const offer = await ca1.takeJournalOffer(WAIT_MS);
  assert.ok(offer !== undefined);
  assert.equal(offer.seq, 1n);
  const onB = await cb.deliverJournal([offer]);
  assert.equal(onB.applied, 1);
  assert.equal(onB.headSeq, 1n);
  const onA = await ca1.deliverJournal([offer]);
  assert.equal(onA.applied, 1);
  await activation;
  assert.equal(onA.headHash, onB.headHash);
  const again = await cb.deliverJournal([offer]);
  assert.deepEqual([again.applied, again.ignored, again.fault], [0, 1, null], 'a re-delivery is ignored');
  const [ha2, hb2] = [await ca1.health({ digest: true }), await cb.health({ digest: true })];
  assert.equal(ha2.journalPosition, 1n);
  assert.equal(ha2.journalHeadHash, hb2.journalHeadHash);
  assert.equal(ha2.stateDigest, hb2.stateDigest);
  assert.equal(hb2.activated, true);

  // An entry ahead of the head waits; past the bound on b's clock the entry below it is reported
  // missing, in health and in the delivery's answer; an altered one halts b's journal, reported in health.
  const ahead = await cb.deliverJournal([{ seq: 3n, entry: offer.entry }]);
  assert.equal(ahead.waitingFor, 2n);
  assert.equal(ahead.missing, null);
  assert.equal((await cb.health({ digest: true })).journalMissing, null, 'not before the bound');
  bClock.advance(JOURNAL_MISSING_ENTRY_WAIT_MS);
  assert.deepEqual((await cb.health({ digest: true })).journalMissing, { seq: 2n, waitedMs: JOURNAL_MISSING_ENTRY_WAIT_MS });
  assert.equal((await ca1.health({ digest: true })).journalMissing, null, 'a has no gap');
  const stillAhead = await cb.deliverJournal([{ seq: 3n, entry: offer.entry }]);
  assert.deepEqual([stillAhead.waitingFor, stillAhead.missing?.seq, stillAhead.fault], [2n, 2n, null]);
  const altered = offer.entry.slice();
  altered[altered.length - 1]! ^= 1;
  const bad = await cb.deliverJournal([{ seq: 2n, entry: altered }]);
  assert.equal(bad.fault?.seq, 2n);
  assert.equal((await cb.health({ digest: true })).journalFault?.seq, 2n);
  assert.equal((await cb.health({ digest: true })).journalMissing, null, 'a halted journal reports its fault instead');
  for (const c of [ca1, cb]) c.close();
});

test('journal endpoints are bounded: wait, body and frames', async () => {
  const c = client(a);
  await assert.rejects(c.takeJournalOffer(MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX + 1), (e) => isCofferError(e, 'COFFER_FORMAT_LIMIT'));
  c.close();
  const node = await c.identity();
  assert.ok(node.serial.length > 0);
  const { method, path } = MANAGEMENT_ROUTES.journalEntries;
  const garbage = await raw(a.management.port, credential, method, path, Buffer.from('not frames at all'));
  assert.equal(garbage.status, 400);
  assert.equal(codeOf(garbage), 'COFFER_FORMAT_BAD_MAGIC');
  const huge = await raw(a.management.port, credential, method, path, undefined, { 'content-length': 1024 ** 3 });
  assert.equal(huge.status, 413);
  const badWait = await raw(a.management.port, credential, 'GET', `${MANAGEMENT_ROUTES.journalOffer.path}?waitMs=-1`);
  assert.equal(badWait.status, 400);
});
