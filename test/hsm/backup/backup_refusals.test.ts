// Restore refusals (docs/backup-format.md "Restore rules", docs/architecture.md §3 and §9): another
// manufacturer or operator, other backup keys, the other mode, an unknown version, not a backup,
// unsigned and foreign-signed blobs, altered, truncated, extended and reordered bytes, a store
// that fails half-way through the replacement, and a source that changes between the two passes.
// Every refusal leaves the target's state digest unchanged and its sessions working.
// (Every byte region, exhaustively: backup_tamper.test.ts.)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { BACKUP_TRAILER_BYTES, bufferSource, decodeBackupHeader, peekBackupHeaderLength, type BackupSource } from '../../../src/formats/backup.js';
import type { BackupSigner } from '../../../src/hsm/backup/backup.js';
import { Hsm } from '../../../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice, type DevelopmentAuthorities } from '../../../src/factory/development.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { CLUSTER, FAST_KDF, activeDevice, backupOf, commissionedDevice, firmwareEvidence, hex, rejects, type ActiveDevice } from './backup_support.js';
import type { FirmwareEvidence } from '../../../src/hsm/identity/provisioning.js';
import { FailingStore } from '../store/failing_store.js';
import { rejectsCode } from '../../helpers.js';

let A: DevelopmentAuthorities;
let B: DevelopmentAuthorities;
let fips: FirmwareEvidence;
let source: ActiveDevice;
let blob: Uint8Array;
let cleanup = (): void => {};
after(() => cleanup());

before(async () => {
  [A, B] = [await createDevelopmentAuthorities(), await createDevelopmentAuthorities()];
  const fw = firmwareEvidence(A);
  fips = fw.evidence;
  cleanup = fw.cleanup;
  source = await activeDevice(A);
  for (let i = 0; i < 20; i++) await source.alice.generateKey({ keyType: 'AES', bits: 256 }, { label: `k${i}` });
  await source.alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
  blob = backupOf(source.hsm, { segmentBytes: 256 }); // several segments, to reorder
});

/** A target with a state of its own (and a live session) that a refusal must leave alone. */
async function target(authorities: DevelopmentAuthorities = A, firmware?: FirmwareEvidence): Promise<ActiveDevice> {
  const t = await activeDevice(authorities, firmware === undefined ? {} : { mode: 'FIPS', firmware });
  await t.alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'target only' });
  return t;
}

async function refuses(t: ActiveDevice, from: BackupSource | Uint8Array, code: ErrorCode, what: string): Promise<void> {
  const digest = hex(t.hsm.stateDigest());
  const objects = t.hsm.status().tokenObjects;
  await rejectsCode(() => t.hsm.restoreBackup(from instanceof Uint8Array ? bufferSource(from) : from), code, what);
  assert.equal(hex(t.hsm.stateDigest()), digest, `${what}: state unchanged`);
  assert.equal(t.hsm.status().tokenObjects, objects, `${what}: object index unchanged`);
  assert.equal(t.alice.find({ label: 'target only' }).length, 1, `${what}: sessions still work`);
}

function patched(bytes: Uint8Array, offset: number, fn: (b: number) => number): Uint8Array {
  const out = bytes.slice();
  out[offset] = fn(out[offset] ?? 0) & 0xff;
  return out;
}

const headerBytes = (b: Uint8Array): number => peekBackupHeaderLength(b.subarray(0, 12));

test('a control: the same target restores the genuine blob', async () => {
  const t = await target();
  await t.hsm.restoreBackup(bufferSource(blob));
  assert.equal(hex(t.hsm.stateDigest()), hex(source.hsm.stateDigest()));
});

test('another manufacturer or another operator: COFFER_BACKUP_UNTRUSTED', async () => {
  await refuses(await target(B), blob, 'COFFER_BACKUP_UNTRUSTED', 'other manufacturer and operator');
  await refuses(await target({ manufacturer: B.manufacturer, operator: A.operator, ...(A.akbk === undefined ? {} : { akbk: A.akbk }) }), blob, 'COFFER_BACKUP_UNTRUSTED', 'other manufacturer');
  await refuses(await target({ manufacturer: A.manufacturer, operator: B.operator, ...(A.akbk === undefined ? {} : { akbk: A.akbk }) }), blob, 'COFFER_BACKUP_UNTRUSTED', 'other operator');
});

test('UNTRUSTED says which part of the device-chain rule failed (role and reason), and judges validity on the device clock', async () => {
  const untrusted = async (t: Hsm, from: Uint8Array): Promise<Record<string, unknown>> => {
    try {
      await t.restoreBackup(bufferSource(from));
    } catch (e) {
      assert.ok(isCofferError(e, 'COFFER_BACKUP_UNTRUSTED'), String(e));
      return { ...e.detail };
    }
    return assert.fail('restored');
  };
  const otherOperator = await target({ manufacturer: A.manufacturer, operator: B.operator, ...(A.akbk === undefined ? {} : { akbk: A.akbk }) });
  assert.deepEqual(await untrusted((await target(B)).hsm, blob), { reason: 'issuer-mismatch', certificate: 'device' });
  assert.deepEqual(await untrusted(otherOperator.hsm, blob), { reason: 'issuer-mismatch', certificate: 'operator' });
  assert.deepEqual(await untrusted((await target()).hsm, patched(blob, blob.length - 1, (b) => b ^ 1)), { reason: 'bad-signature' });
  // A device whose clock is 21 years on: the backup's device certificate (20 years) has expired,
  // though the roots (25 years) and the target's own certificates (issued then) are still valid.
  const clock = new ManualClock(Date.now() + 21 * 365 * 86_400_000);
  const late = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF, clock });
  await provisionDevelopmentDevice(late, A, { mode: 'NON_FIPS', clock });
  assert.deepEqual(await untrusted(late, blob), { reason: 'expired', certificate: 'device' });
  late.close();
});

test('same roots but another MKBK or AKBK: COFFER_BACKUP_WRONG_KEYS', async () => {
  await refuses(await target({ ...A, akbk: SecretBytes.random(32) }), blob, 'COFFER_BACKUP_WRONG_KEYS', 'other AKBK');
  await refuses(await target({ ...A, manufacturer: { ...A.manufacturer, mkbk: SecretBytes.random(32) } }), blob, 'COFFER_BACKUP_WRONG_KEYS', 'other MKBK');
});

test('the other mode, both ways: COFFER_BACKUP_MODE_MISMATCH', async () => {
  const fipsDevice = await target(A, fips);
  assert.equal(fipsDevice.hsm.status().mode, 'FIPS');
  const fipsBlob = backupOf(fipsDevice.hsm);
  assert.equal(decodeBackupHeader(fipsBlob.subarray(0, headerBytes(fipsBlob))).firmwareVersion, '1.2.3');
  await refuses(fipsDevice, blob, 'COFFER_BACKUP_MODE_MISMATCH', 'NON_FIPS into FIPS');
  await refuses(await target(), fipsBlob, 'COFFER_BACKUP_MODE_MISMATCH', 'FIPS into NON_FIPS');
  // … while a FIPS device restores a FIPS backup.
  const other = await commissionedDevice(A, { mode: 'FIPS', firmware: fips });
  await other.restoreBackup(bufferSource(fipsBlob));
  assert.equal(hex(other.stateDigest()), hex(fipsDevice.hsm.stateDigest()));
});

test('an unknown version or suite is refused naming it; what is not a backup is BAD_MAGIC', async () => {
  const t = await target();
  for (const [offset, field] of [[5, 'version'], [7, 'suite']] as const) {
    const b = patched(blob, offset, () => 2);
    let seen: unknown;
    await refuses(t, { length: b.length, read: (at, n) => b.slice(at, at + n) }, 'COFFER_FORMAT_UNKNOWN_VERSION', field);
    try {
      await t.hsm.restoreBackup(bufferSource(b));
    } catch (e) {
      seen = e;
    }
    assert.ok(isCofferError(seen) && seen.detail[field] === 2, `the detail names the ${field}`);
  }
  await refuses(t, patched(blob, 0, (b) => b ^ 1), 'COFFER_FORMAT_BAD_MAGIC', 'magic');
  await refuses(t, new Uint8Array(0), 'COFFER_FORMAT_BAD_MAGIC', 'empty');
  await refuses(t, new TextEncoder().encode('{"not":"a backup"}'), 'COFFER_FORMAT_BAD_MAGIC', 'json');
});

/** A signer over another P-384 key, as a forger would have. */
function strangerSigner(): BackupSigner {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const s = createSign('sha384');
  return { update: (c) => void s.update(c), sign: () => new Uint8Array(s.sign({ key: privateKey, dsaEncoding: 'ieee-p1363' })) };
}

test('unsigned and foreign-signed blobs: COFFER_BACKUP_UNTRUSTED', async () => {
  const t = await target();
  const unsigned = blob.slice();
  unsigned.fill(0, unsigned.length - (BACKUP_TRAILER_BYTES - 2));
  await refuses(t, unsigned, 'COFFER_BACKUP_UNTRUSTED', 'zero signature');
  await refuses(t, patched(blob, blob.length - 1, (b) => b ^ 1), 'COFFER_BACKUP_UNTRUSTED', 'signature bit');
  // Signed by another device of the same manufacturer and operator, whose own chain is trusted.
  const peer = await commissionedDevice(A);
  await refuses(t, backupOf(source.hsm, { signer: peer.provisioning.identity().streamSigner() }), 'COFFER_BACKUP_UNTRUSTED', 'a peer signed it');
  await refuses(t, backupOf(source.hsm, { signer: strangerSigner() }), 'COFFER_BACKUP_UNTRUSTED', 'a stranger signed it');
});

test('a mode or key id is claimed only for a signed backup: an altered one is UNTRUSTED', async () => {
  const t = await target();
  await refuses(t, patched(blob, 12, () => 0x01), 'COFFER_BACKUP_UNTRUSTED', 'mode byte set to FIPS');
  await refuses(t, patched(blob, 29, (b) => b ^ 0x80), 'COFFER_BACKUP_UNTRUSTED', 'MKBK id');
  await refuses(t, patched(blob, 44, (b) => b ^ 0x01), 'COFFER_BACKUP_UNTRUSTED', 'AKBK id');
});

test('altered, truncated, extended and reordered bytes: COFFER_BACKUP_TAMPERED', async () => {
  const t = await target();
  const h = headerBytes(blob);
  const body = decodeBackupHeader(blob.subarray(0, h)).bodyBytes;
  const segment = 256 + 16;
  assert.ok(Number(body) > 3 * segment, 'several segments');
  const swapped = blob.slice();
  swapped.set(blob.subarray(h + segment, h + 2 * segment), h);
  swapped.set(blob.subarray(h, h + segment), h + segment);
  const cases: [string, Uint8Array][] = [
    ['first body byte', patched(blob, h, (b) => b ^ 1)],
    ['last body byte (a tag)', patched(blob, h + Number(body) - 1, (b) => b ^ 1)],
    ['wrapped BEK', patched(blob, 77 + 5, (b) => b ^ 1)],
    ['cluster id (header, authenticated by every segment)', patched(blob, 77 + 40 + 2 + 18 + 2, (b) => b ^ 1)],
    ['creation time', patched(blob, 20, (b) => b ^ 1)],
    ['record count', patched(blob, 48, (b) => b ^ 1)],
    ['body length', patched(blob, 64, (b) => b + 16)],
    ['segments swapped', swapped],
    ['truncated by one byte', blob.subarray(0, blob.length - 1)],
    ['trailer missing', blob.subarray(0, blob.length - BACKUP_TRAILER_BYTES)],
    ['last segment missing', Uint8Array.from([...blob.subarray(0, h + Number(body) - segment), ...blob.subarray(h + Number(body))])],
    ['extended by one byte', Uint8Array.from([...blob, 0])],
    ['signature length field', patched(blob, blob.length - BACKUP_TRAILER_BYTES + 1, (b) => b ^ 1)],
    ['header only', blob.subarray(0, h)],
  ];
  for (const [what, bytes] of cases) await refuses(t, bytes, 'COFFER_BACKUP_TAMPERED', what);
});

test('a restore is refused before commissioning', async () => {
  const fresh = Hsm.open({ store: new MemoryRecordStore(), kdfParams: FAST_KDF });
  await rejectsCode(() => fresh.restoreBackup(bufferSource(blob)), 'COFFER_DEVICE_NOT_COMMISSIONED');
});


test('a store failure half-way through the replacement rolls everything back', async () => {
  const store = new FailingStore();
  const f = await activeDevice(A, { store });
  await f.alice.generateKey({ keyType: 'AES', bits: 128 }, { label: 'target only' });
  const digest = hex(f.hsm.stateDigest());
  store.failAtPut = 10;
  await assert.rejects(async () => { await f.hsm.restoreBackup(bufferSource(blob)); }, /simulated disk full/);
  store.failAtPut = 0;
  assert.equal(hex(f.hsm.stateDigest()), digest, 'state unchanged');
  assert.equal(f.alice.find({ label: 'target only' }).length, 1, 'sessions still work');
  assert.equal((await f.hsm.restoreBackup(bufferSource(blob))).objects, source.hsm.status().tokenObjects);
  assert.equal(hex(f.hsm.stateDigest()), hex(source.hsm.stateDigest()));
});

test('a source that changes between the checking pass and the writing pass is caught, and nothing lands', async () => {
  const t = await target();
  const h = headerBytes(blob);
  const seen = new Map<number, number>();
  const target3 = h + 3 * (256 + 16); // the fourth segment
  const sneaky: BackupSource = {
    length: blob.length,
    read(at, n) {
      const out = blob.slice(at, at + n);
      const times = (seen.get(at) ?? 0) + 1;
      seen.set(at, times);
      if (at === target3 && times === 2) out[0] = (out[0] ?? 0) ^ 1; // honest in pass 1, altered in pass 2
      return out;
    },
  };
  await refuses(t, sneaky, 'COFFER_BACKUP_TAMPERED', 'altered in pass 2');
  assert.equal(seen.get(target3), 2, 'the segment was read by both passes');
});

test('clusterId and backupId that the format cannot hold are refused before anything is written', () => {
  const written: number[] = [];
  rejects(() => source.hsm.createBackup({ write: (c) => void written.push(c.length) }, { clusterId: 'x'.repeat(257) }), 'COFFER_FORMAT_LIMIT');
  rejects(() => source.hsm.createBackup({ write: (c) => void written.push(c.length) }, { clusterId: CLUSTER, backupId: '\uD800' }), 'COFFER_FORMAT_MALFORMED');
  assert.deepEqual(written, []);
});

test('records the target could not load are refused before anything is written', async () => {
  const t = await target();
  const store = new MemoryRecordStore();
  const odd = await activeDevice(A, { store });
  await odd.alice.generateKey({ keyType: 'AES', bits: 256 });
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
  store.transaction((tx) => tx.put('user', 'ghost', bytes('not a user record')));
  await refuses(t, backupOf(odd.hsm), 'COFFER_BACKUP_TAMPERED', 'a user record that does not decode');
  store.transaction((tx) => tx.delete('user', 'ghost'));
  const [[id, value]] = [...store.list('object')] as [[string, Uint8Array]];
  value[5] = 9; // object record version 9, from some future firmware
  store.transaction((tx) => tx.put('object', id, value));
  let seen: unknown;
  await refuses(t, backupOf(odd.hsm), 'COFFER_FORMAT_UNKNOWN_VERSION', 'a newer object record');
  try {
    await t.hsm.restoreBackup(bufferSource(backupOf(odd.hsm)));
  } catch (e) {
    seen = e;
  }
  assert.ok(isCofferError(seen) && seen.detail['version'] === 9, 'the detail names the version');
  // Records of namespaces without a codec of their own travel as they are.
  store.transaction((tx) => {
    tx.delete('object', id);
    tx.put('policy', 'future', bytes('anything'));
  });
  await t.hsm.restoreBackup(bufferSource(backupOf(odd.hsm)));
  assert.equal(new TextDecoder().decode(store.get('policy', 'future')), 'anything');
  assert.equal(hex(t.hsm.stateDigest()), hex(odd.hsm.stateDigest()));
});
