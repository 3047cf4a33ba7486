// The journal's cluster binding record (src/formats/journal_cluster_record.ts): 'CFJC' ‖ version 1 ‖
// length ‖ cluster id, laid out as docs/journal-format.md says; a newer version named; every other
// damage refused; restore's per-record check (checkClusterRecord) uses the same codec.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkClusterRecord } from '../../src/formats/cluster_record.js';
import { JOURNAL_CLUSTER_ID, decodeJournalClusterRecord, encodeJournalClusterRecord } from '../../src/formats/journal_cluster_record.js';
import { flip, throwsCode } from '../helpers.js';

const ID = 'cluster-clonedbackup2';

test('a cluster id round-trips as the bytes the spec lays out', () => {
  const record = encodeJournalClusterRecord(ID);
  assert.equal(Buffer.from(record).toString('hex'), '43464a43' + '0001' + ID.length.toString(16).padStart(2, '0') + Buffer.from(ID, 'ascii').toString('hex'));
  assert.equal(decodeJournalClusterRecord(record), ID);
  checkClusterRecord(JOURNAL_CLUSTER_ID, record);
  assert.equal(decodeJournalClusterRecord(encodeJournalClusterRecord('x'.repeat(64))), 'x'.repeat(64));
});

test('refused: empty, too long or unprintable ids; another magic, a newer version, a wrong length, cut or extended records', () => {
  for (const bad of ['', 'x'.repeat(65), 'with space', 'tab\there', 'é']) throwsCode(() => encodeJournalClusterRecord(bad), 'COFFER_FORMAT_LIMIT', JSON.stringify(bad));
  const record = encodeJournalClusterRecord(ID);
  for (let i = 0; i < 4; i++) throwsCode(() => decodeJournalClusterRecord(flip(record, i)), 'COFFER_FORMAT_BAD_MAGIC');
  for (const i of [4, 5]) throwsCode(() => decodeJournalClusterRecord(flip(record, i)), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => decodeJournalClusterRecord(flip(record, 6)), 'COFFER_FORMAT_MALFORMED');
  for (let n = 0; n < record.length; n++) throwsCode(() => decodeJournalClusterRecord(record.subarray(0, n)), n < 4 ? 'COFFER_FORMAT_BAD_MAGIC' : n < 7 ? 'COFFER_FORMAT_TRUNCATED' : 'COFFER_FORMAT_MALFORMED', `cut at ${n}`);
  throwsCode(() => decodeJournalClusterRecord(Buffer.concat([record, Uint8Array.of(0x41)])), 'COFFER_FORMAT_MALFORMED');
  const unprintable = record.slice();
  unprintable[10] = 0x20;
  throwsCode(() => decodeJournalClusterRecord(unprintable), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => checkClusterRecord(JOURNAL_CLUSTER_ID, flip(record, 5)), 'COFFER_FORMAT_UNKNOWN_VERSION');
});
