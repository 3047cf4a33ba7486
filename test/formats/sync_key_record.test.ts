// The cluster sync key record (src/formats/sync_key_record.ts): 'CFSK' ‖ version 1 ‖ 32 ‖ key, laid
// out as docs/journal-format.md says; a newer version named; every other damage refused; restore's
// per-record check (checkClusterRecord) uses the same codec.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { checkClusterRecord } from '../../src/formats/cluster_record.js';
import { SYNC_KEY_ID, decodeSyncKeyRecord, encodeSyncKeyRecord } from '../../src/formats/sync_key_record.js';
import { flip, throwsCode } from '../helpers.js';

const KEY = new Uint8Array(randomBytes(32));

test('a key round-trips as the 39 bytes the spec lays out', () => {
  const record = encodeSyncKeyRecord(SecretBytes.copyOf(KEY));
  assert.equal(Buffer.from(record).toString('hex'), '4346534b' + '0001' + '20' + Buffer.from(KEY).toString('hex'));
  const decoded = decodeSyncKeyRecord(record);
  assert.ok(decoded.equals(SecretBytes.copyOf(KEY)));
  assert.equal(String(decoded), '[redacted]');
  checkClusterRecord(SYNC_KEY_ID, record);
});

test('refused: another magic, a newer version, another key length, cut or extended records', () => {
  const record = encodeSyncKeyRecord(SecretBytes.copyOf(KEY));
  for (let i = 0; i < 4; i++) throwsCode(() => decodeSyncKeyRecord(flip(record, i)), 'COFFER_FORMAT_BAD_MAGIC');
  for (const i of [4, 5]) throwsCode(() => decodeSyncKeyRecord(flip(record, i)), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => decodeSyncKeyRecord(flip(record, 6)), 'COFFER_FORMAT_MALFORMED');
  for (let n = 0; n < record.length; n++) throwsCode(() => decodeSyncKeyRecord(record.subarray(0, n)), n < 4 ? 'COFFER_FORMAT_BAD_MAGIC' : n < 6 ? 'COFFER_FORMAT_TRUNCATED' : 'COFFER_FORMAT_MALFORMED', `cut at ${n}`);
  throwsCode(() => decodeSyncKeyRecord(Buffer.concat([record, Uint8Array.of(0)])), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => checkClusterRecord(SYNC_KEY_ID, flip(record, 5)), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => checkClusterRecord(SYNC_KEY_ID, record.subarray(0, 20)), 'COFFER_FORMAT_MALFORMED');
});
