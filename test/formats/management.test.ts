// The management interface's shared shapes (src/formats/management.ts): every answer survives
// encode → JSON text → decode, the journal position travels as a u64 decimal string over its whole
// range, and each decoder refuses a missing, mistyped or oversized field naming it. (That the node's
// real answers parse with these decoders: test/node/management.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import {
  MANAGEMENT_ROUTES, PEM_CHARS_MAX, checkClusterId, decodeClusterCsrRequest, decodeClusterCsrResponse, decodeClusterInitialisation, decodeEmptyAnswer,
  decodeErrorAnswer, decodeNodeHealth, decodeNodeIdentity, decodeRestoreSummary, encodeNodeHealth, encodeNodeIdentity, encodeU64, type NodeHealth,
  type NodeIdentity, decodeJournalDelivery, encodeJournalDelivery,
} from '../../src/formats/management.js';

const U64_MAX = (1n << 64n) - 1n;
const overJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

function refuses(fn: () => unknown, code: ErrorCode, detail: Record<string, unknown>): void {
  assert.throws(fn, (e) => {
    assert.ok(isCofferError(e, code), `expected ${code}, got ${String(e)}`);
    for (const [k, v] of Object.entries(detail)) assert.equal(e.detail[k], v, k);
    return true;
  });
}

const HEALTH: NodeHealth = {
  provisioning: 'COMMISSIONED', serial: 'CFR-0123456789ABCDEF', mode: 'NON_FIPS', cluster: 'INITIALISED', clusterId: 'cluster-abcdefgh234',
  usersInitialised: true, activated: true, tokenObjects: 2, sessions: 1, inFlight: 0, inFlightMax: 4096, connections: 1,
  capacityOpsPerSecond: 0, loadPermille: 0, journalPosition: 0n, stateDigest: 'ab'.repeat(32),
  journalHeadHash: 'cd'.repeat(32), journalFault: { code: 'COFFER_JOURNAL_TAMPERED', seq: 7n, reason: 'authentication' }, journalMode: 'relayed',
  journalMissing: { seq: (1n << 60n) + 1n, waitedMs: 30_001 },
  restoring: true, backingUp: false, dataPlaneHost: '127.0.0.7', dataPlanePort: 2223,
  figures: { operations: 12, busy: 1, latencyBoundsS: [0.001, 0.01], latencyCounts: [9, 2, 0] },
};

const IDENTITY: NodeIdentity = {
  deviceCertificatePem: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n', manufacturerRootPem: 'm', operatorCertificatePem: 'o',
  operatorRootPem: null, attestation: new Uint8Array(96).fill(7),
};

test('every route has one method and one path', () => {
  const paths = Object.values(MANAGEMENT_ROUTES).map((r) => r.path);
  assert.equal(new Set(paths).size, paths.length);
  assert.deepEqual(MANAGEMENT_ROUTES.health, { method: 'GET', path: '/v1/health' });
  assert.deepEqual(MANAGEMENT_ROUTES.restore, { method: 'PUT', path: '/v1/restore' });
});

test('health: the journal position is a u64 decimal string on the wire, exact over the whole range', () => {
  for (const journalPosition of [0n, 1n, (1n << 53n) + 1n, U64_MAX]) {
    const json = overJson(encodeNodeHealth({ ...HEALTH, journalPosition })) as Record<string, unknown>;
    assert.equal(json['journalPosition'], journalPosition.toString());
    assert.deepEqual(decodeNodeHealth(json), { ...HEALTH, journalPosition });
  }
  assert.equal(encodeU64(U64_MAX), '18446744073709551615');
  assert.throws(() => encodeU64(U64_MAX + 1n), /assertion failed/);
  assert.throws(() => encodeU64(-1n), /assertion failed/);
  const json = overJson(encodeNodeHealth(HEALTH)) as Record<string, unknown>;
  for (const bad of [0, 1, '-1', '01', '1.0', ' 1', '1e3', '0x10', '18446744073709551616', '123456789012345678901', '', null, true]) {
    refuses(() => decodeNodeHealth({ ...json, journalPosition: bad }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'journalPosition' });
  }
  const { journalPosition: _omitted, ...without } = json;
  refuses(() => decodeNodeHealth(without), 'COFFER_MANAGEMENT_REQUEST', { reason: 'missing-field', field: 'journalPosition' });
});

test('health: counts, flags, names and the digest are checked', () => {
  const json = overJson(encodeNodeHealth(HEALTH)) as Record<string, unknown>;
  assert.deepEqual(decodeNodeHealth({ ...json, serial: null, mode: null, clusterId: null }), { ...HEALTH, serial: null, mode: null, clusterId: null });
  for (const [field, bad] of [['tokenObjects', -1], ['sessions', 1.5], ['inFlight', '3'], ['activated', 'yes'], ['stateDigest', 'AB'.repeat(32)], ['stateDigest', 'ab'], ['cluster', null], ['provisioning', '']] as const) {
    refuses(() => decodeNodeHealth({ ...json, [field]: bad }), 'COFFER_MANAGEMENT_REQUEST', { field });
  }
  refuses(() => decodeNodeHealth({ ...json, serial: 's'.repeat(257) }), 'COFFER_FORMAT_LIMIT', { field: 'serial' });
  refuses(() => decodeNodeHealth([json]), 'COFFER_MANAGEMENT_REQUEST', { reason: 'body-not-object' });
  refuses(() => decodeNodeHealth(null), 'COFFER_MANAGEMENT_REQUEST', { reason: 'body-not-object' });
});

test('health: the fields added after the first version are optional on the wire (null: the node does not say)', () => {
  const json = overJson(encodeNodeHealth(HEALTH)) as Record<string, unknown>;
  assert.deepEqual([json['restoring'], json['backingUp'], json['dataPlaneHost'], json['dataPlanePort']], [true, false, '127.0.0.7', 2223]);
  const { restoring: _r, backingUp: _b, dataPlaneHost: _h, dataPlanePort: _p, ...older } = json;
  assert.deepEqual(decodeNodeHealth(older), { ...HEALTH, restoring: null, backingUp: null, dataPlaneHost: null, dataPlanePort: null });
  assert.deepEqual(decodeNodeHealth({ ...json, restoring: null, dataPlanePort: null }), { ...HEALTH, restoring: null, dataPlanePort: null });
  for (const [field, bad] of [['restoring', 'yes'], ['backingUp', 0], ['dataPlanePort', 0], ['dataPlanePort', 65536], ['dataPlanePort', 2223.5], ['dataPlanePort', '2223'], ['dataPlaneHost', 7]] as const) {
    refuses(() => decodeNodeHealth({ ...json, [field]: bad }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field });
  }
  refuses(() => decodeNodeHealth({ ...json, dataPlaneHost: 'h'.repeat(257) }), 'COFFER_FORMAT_LIMIT', { field: 'dataPlaneHost' });
});

test('health: the data-plane figures are optional, and their counts and buckets are checked', () => {
  const json = overJson(encodeNodeHealth(HEALTH)) as Record<string, unknown>;
  const { figures: _f, ...older } = json;
  assert.deepEqual(decodeNodeHealth(older), { ...HEALTH, figures: null });
  assert.deepEqual(decodeNodeHealth({ ...json, figures: null }), { ...HEALTH, figures: null });
  const figures = json['figures'] as Record<string, unknown>;
  for (const bad of [
    { ...figures, operations: -1 }, { ...figures, busy: '1' }, { ...figures, latencyCounts: [9, 2] }, { ...figures, latencyCounts: [9, 2, 0.5] },
    { ...figures, latencyBoundsS: [0.01, 0.001] }, { ...figures, latencyBoundsS: [0, 0.01] }, { ...figures, latencyBoundsS: 'x' }, 7,
  ]) {
    refuses(() => decodeNodeHealth({ ...json, figures: bad }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'figures' });
  }
});

test('identity: the attestation travels as canonical base64 of exactly 96 bytes', () => {
  const json = overJson(encodeNodeIdentity(IDENTITY)) as Record<string, unknown>;
  assert.equal(json['attestation'], Buffer.from(IDENTITY.attestation).toString('base64'));
  assert.deepEqual(decodeNodeIdentity(json), IDENTITY);
  for (const bad of [Buffer.alloc(95).toString('base64'), 'not base64!', `${String(json['attestation']).slice(0, -4)}AAA=`, 7]) {
    refuses(() => decodeNodeIdentity({ ...json, attestation: bad }), 'COFFER_MANAGEMENT_REQUEST', { field: 'attestation' });
  }
  for (const long of [Buffer.alloc(97).toString('base64'), `${String(json['attestation'])}\n`]) {
    refuses(() => decodeNodeIdentity({ ...json, attestation: long }), 'COFFER_FORMAT_LIMIT', { field: 'attestation' });
  }
  refuses(() => decodeNodeIdentity({ ...json, deviceCertificatePem: 'x'.repeat(PEM_CHARS_MAX + 1) }), 'COFFER_FORMAT_LIMIT', { field: 'deviceCertificatePem' });
  refuses(() => decodeNodeIdentity({ ...json, manufacturerRootPem: undefined }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'missing-field', field: 'manufacturerRootPem' });
});

test('requests: the cluster id and the initialisation fields the node accepts', () => {
  assert.deepEqual(decodeClusterCsrRequest({ clusterId: 'cluster-abcdefgh234' }), { clusterId: 'cluster-abcdefgh234' });
  refuses(() => decodeClusterCsrRequest({ clusterId: 'cluster-abc' }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-cluster-id' });
  refuses(() => decodeClusterCsrRequest({}), 'COFFER_MANAGEMENT_REQUEST', { reason: 'missing-field', field: 'clusterId' });
  refuses(() => checkClusterId(null), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-cluster-id' });
  const init = { certificatePem: 'c', trustAnchorPem: 't', preCoPassword: 'preco-password', applianceCredential: 'appliance' };
  assert.deepEqual(decodeClusterInitialisation(overJson(init)), init);
  refuses(() => decodeClusterInitialisation({ ...init, preCoPassword: 'p'.repeat(33) }), 'COFFER_FORMAT_LIMIT', { field: 'preCoPassword' });
  refuses(() => decodeClusterInitialisation({ ...init, applianceCredential: 42 }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'applianceCredential' });
});

test('answers: the restore summary, the CSR, the empty answer and errors', () => {
  const summary = { backupId: 'backup-abcdefghijk', bytes: 1234, records: 6, users: 2, objects: 2 };
  assert.deepEqual(decodeRestoreSummary(overJson(summary)), summary);
  refuses(() => decodeRestoreSummary({ ...summary, bytes: -1 }), 'COFFER_MANAGEMENT_REQUEST', { field: 'bytes' });
  assert.deepEqual(decodeClusterCsrResponse({ csrPem: 'pem' }), { csrPem: 'pem' });
  refuses(() => decodeClusterCsrResponse({}), 'COFFER_MANAGEMENT_REQUEST', { field: 'csrPem' });
  assert.deepEqual(decodeEmptyAnswer({}), {});
  refuses(() => decodeEmptyAnswer('ok'), 'COFFER_MANAGEMENT_REQUEST', { reason: 'body-not-object' });
  assert.deepEqual(decodeErrorAnswer({ code: 'COFFER_NODE_BUSY', message: 'm', detail: { retryAfterMs: 1000, nested: { no: 1 } } }), { code: 'COFFER_NODE_BUSY', message: 'm', detail: { retryAfterMs: 1000 } });
  assert.deepEqual(decodeErrorAnswer('garbage'), { code: null, message: '', detail: {} });
});

test('journal delivery: u64 positions as decimal strings, the fault, waitingFor and missing optional', () => {
  const delivery = {
    headSeq: (1n << 53n) + 3n, headHash: 'ef'.repeat(32), applied: 2, ignored: 1, waitingFor: 9n,
    fault: { code: 'COFFER_JOURNAL_FORK', seq: 4n, reason: 'another-entry-at-applied-position' }, missing: { seq: 9n, waitedMs: 30_000 },
  };
  const json = overJson(encodeJournalDelivery(delivery)) as Record<string, unknown>;
  assert.equal(json['headSeq'], ((1n << 53n) + 3n).toString());
  assert.deepEqual(json['missing'], { seq: '9', waitedMs: 30_000 });
  assert.deepEqual(decodeJournalDelivery(json), delivery);
  assert.deepEqual(decodeJournalDelivery({ ...json, waitingFor: null, fault: null, missing: null }), { ...delivery, waitingFor: null, fault: null, missing: null });
  const { missing: _m, ...older } = json;
  assert.deepEqual(decodeJournalDelivery(older), { ...delivery, missing: null }, 'an older node says nothing of a missing entry');
  refuses(() => decodeJournalDelivery({ ...json, missing: { seq: 9 } }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'missing' });
  refuses(() => decodeJournalDelivery({ ...json, headHash: 'xy' }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'headHash' });
  refuses(() => decodeJournalDelivery({ ...json, fault: { code: 'C', seq: 4 } }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'fault' });
});

test('health: the journal head hash, fault, missing entry and mode round-trip, and an older node that sends none decodes as null', () => {
  const json = overJson(encodeNodeHealth(HEALTH)) as Record<string, unknown>;
  assert.deepEqual((json['journalFault'] as Record<string, unknown>)['seq'], '7');
  assert.deepEqual(json['journalMissing'], { seq: ((1n << 60n) + 1n).toString(), waitedMs: 30_001 });
  assert.deepEqual(decodeNodeHealth(json), HEALTH);
  const { journalHeadHash: _h, journalFault: _f, journalMode: _m, journalMissing: _g, ...older } = json;
  assert.deepEqual(decodeNodeHealth(older), { ...HEALTH, journalHeadHash: null, journalFault: null, journalMode: null, journalMissing: null });
  refuses(() => decodeNodeHealth({ ...json, journalMissing: { seq: '1', waitedMs: -1 } }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'journalMissing' });
  refuses(() => decodeNodeHealth({ ...json, journalMode: 'other' }), 'COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'journalMode' });
});
