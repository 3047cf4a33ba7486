// Quorum value record (src/formats/quorum_record.ts): version ‖ M; every value from off (1) to
// QUORUM_MAX round-trips; another version, another length or an M out of range is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QUORUM_OFF, decodeQuorumValue, encodeQuorumValue } from '../../src/formats/quorum_record.js';
import { QUORUM_MAX } from '../../src/formats/limits.js';
import { throwsCode } from '../helpers.js';

test('every value from off to the maximum round-trips as version ‖ M', () => {
  for (let m = QUORUM_OFF; m <= QUORUM_MAX; m++) {
    assert.deepEqual([...encodeQuorumValue(m)], [1, m]);
    assert.equal(decodeQuorumValue(encodeQuorumValue(m)), m);
  }
});

test('refused: another version, another length, M out of range (decoding and encoding)', () => {
  throwsCode(() => decodeQuorumValue(Uint8Array.of(2, 2)), 'COFFER_FORMAT_UNKNOWN_VERSION');
  throwsCode(() => decodeQuorumValue(Uint8Array.of(1)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeQuorumValue(Uint8Array.of(1, 2, 0)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeQuorumValue(Uint8Array.of(1, 0)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeQuorumValue(Uint8Array.of(1, QUORUM_MAX + 1)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => decodeQuorumValue(new Uint8Array(0)), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeQuorumValue(0), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeQuorumValue(QUORUM_MAX + 1), 'COFFER_FORMAT_MALFORMED');
  throwsCode(() => encodeQuorumValue(2.5), 'COFFER_FORMAT_MALFORMED');
});
