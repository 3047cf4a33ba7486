// The persistent backup key (src/hsm/backup/pbk.ts against docs/backup-format.md "Key hierarchy"):
// the SP 800-108 derivation recomputed from its definition, every input mattering, and the label
// naming the format version. (The known-answer vector's PBK is checked in test/formats/backup_vectors.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { SecretBytes } from '../../../src/crypto/index.js';
import { BACKUP_PBK_LABEL, derivePbk } from '../../../src/hsm/backup/pbk.js';
import { throwsCode } from '../../helpers.js';

const concat = (...parts: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

test('PBK: SP 800-108 counter mode recomputed from its definition; every input matters', () => {
  const mkbk = new Uint8Array(32).map((_, i) => i);
  const akbk = new Uint8Array(32).map((_, i) => 0xa0 + i);
  const mkbkId = new Uint8Array([1, 1, 1, 1, 1, 1, 1, 1]);
  const akbkId = new Uint8Array([2, 2, 2, 2, 2, 2, 2, 2]);
  const pbk = (m: Uint8Array, a: Uint8Array, mode: 'FIPS' | 'NON_FIPS', mi = mkbkId, ai = akbkId): string =>
    derivePbk(SecretBytes.copyOf(m), SecretBytes.copyOf(a), mode, mi, ai).use((b) => Buffer.from(b).toString('hex'));
  // K(1) = HMAC-SHA-256(MKBK ‖ AKBK, [1]₃₂ ‖ "coffer backup v1 pbk" ‖ 0x00 ‖ mode ‖ ids ‖ [256]₃₂)
  const expected = createHmac('sha256', concat(mkbk, akbk))
    .update(concat(new Uint8Array([0, 0, 0, 1]), new TextEncoder().encode('coffer backup v1 pbk'), new Uint8Array([0, 0x02]), mkbkId, akbkId, new Uint8Array([0, 0, 1, 0])))
    .digest('hex');
  assert.equal(pbk(mkbk, akbk, 'NON_FIPS'), expected);
  const others = [
    pbk(mkbk, akbk, 'FIPS'), pbk(akbk, mkbk, 'NON_FIPS'), pbk(mkbk, mkbk, 'NON_FIPS'), pbk(mkbk, akbk, 'NON_FIPS', akbkId, mkbkId),
    pbk(mkbk, akbk.map((b, i) => (i === 31 ? b ^ 1 : b)), 'NON_FIPS'),
  ];
  assert.equal(new Set([expected, ...others]).size, 1 + others.length);
  throwsCode(() => derivePbk(SecretBytes.copyOf(new Uint8Array(16)), SecretBytes.copyOf(akbk), 'FIPS', mkbkId, akbkId), 'COFFER_CRYPTO_KEY_SIZE');
  assert.equal(Buffer.from(BACKUP_PBK_LABEL).toString('latin1'), 'coffer backup v1 pbk');
});
