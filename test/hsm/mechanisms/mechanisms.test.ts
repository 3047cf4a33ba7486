// Symmetric mechanisms and KDFs through src/hsm/mechanisms/mechanisms.ts, against published vectors:
// AES-GCM (McGrew–Viega 13–18), CBC-PAD, CBC, ECB and CTR (SP 800-38A F.1, F.2, F.5.5/F.5.6), CMAC
// (RFC 4493, SP 800-38B D.3), HMAC-SHA-2 (RFC 4231), SHA-2 (FIPS 180-2), Ed25519 (RFC 8032 §7.1),
// HKDF (RFC 5869 A.1), SP 800-108 (one CAVP record). Tampering and malformed input must fail.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac, createSecretKey, verify as nodeVerify } from 'node:crypto';
import * as mech from '../../../src/hsm/mechanisms/mechanisms.js';
import { pkcs7PadBytes } from '../../../src/hsm/mechanisms/mech_aes.js';
import { kdfCounterHmacSha256 } from '../../../src/crypto/kdf_sp800_108.js';
import { CofferError } from '../../../src/errors.js';
import type { HashName, MechanismParams } from '../../../src/hsm/types.js';
import { throwsCode, flip } from '../../helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const vectors = <T>(name: string): T => JSON.parse(readFileSync(resolve(ROOT, 'test/vectors/mechanisms', name), 'utf8')) as T;
const aesKey = (k: string): mech.KeyMaterial => mech.materialFromBytes('SECRET_KEY', 'AES', hex(k));
const secretKey = (k: string): mech.KeyMaterial => mech.materialFromBytes('SECRET_KEY', 'GENERIC_SECRET', hex(k));

// ── GCM ─────────────────────────────────────────────────────────────────────────────────────

interface GcmCase {
  tc: number;
  key: string;
  iv: string;
  aad: string;
  pt: string;
  ct: string;
  tag: string;
}
const GCM = vectors<{ cases: GcmCase[] }>('aes_gcm.json').cases;

test('GCM vectors: McGrew–Viega test cases 13 to 18 are all present', () => {
  assert.deepEqual(
    GCM.map((c) => c.tc),
    [13, 14, 15, 16, 17, 18],
  );
});

for (const c of GCM) {
  const params: MechanismParams = { mechanism: 'CKM_AES_GCM', iv: hex(c.iv), aad: hex(c.aad) };
  test(`GCM test case ${c.tc}: encrypt gives ct || tag, decrypt gives the plaintext`, () => {
    const key = aesKey(c.key);
    assert.equal(toHex(mech.encrypt(params, key, hex(c.pt))), c.ct + c.tag);
    assert.equal(toHex(mech.decrypt(params, key, hex(c.ct + c.tag))), c.pt);
  });

  test(`GCM test case ${c.tc}: a changed tag, ciphertext, AAD or IV fails authentication`, () => {
    const key = aesKey(c.key);
    const sealed = hex(c.ct + c.tag);
    for (let i = 0; i < sealed.length; i++) {
      throwsCode(() => mech.decrypt(params, key, flip(sealed, i)), 'COFFER_ENCRYPTED_DATA_INVALID');
    }
    throwsCode(() => mech.decrypt({ ...params, aad: new Uint8Array([...hex(c.aad), 0]) }, key, sealed), 'COFFER_ENCRYPTED_DATA_INVALID');
    throwsCode(() => mech.decrypt({ ...params, iv: flip(hex(c.iv), 0) }, key, sealed), 'COFFER_ENCRYPTED_DATA_INVALID');
    throwsCode(() => mech.decrypt(params, key, sealed.subarray(0, sealed.length - 1)), 'COFFER_ENCRYPTED_DATA_INVALID');
  });
}

test('GCM truncated tags (12..16 bytes) are the leading bytes of the full tag (SP 800-38D §7.1 MSB_t)', () => {
  const c = GCM.find((x) => x.tc === 16);
  assert.ok(c !== undefined);
  const key = aesKey(c.key);
  for (const tagBytes of [12, 13, 14, 15]) {
    const params: MechanismParams = { mechanism: 'CKM_AES_GCM', iv: hex(c.iv), aad: hex(c.aad), tagBytes };
    const out = mech.encrypt(params, key, hex(c.pt));
    assert.equal(toHex(out), c.ct + c.tag.slice(0, tagBytes * 2));
    assert.equal(toHex(mech.decrypt(params, key, out)), c.pt);
  }
});

test('GCM with a device IV: output is iv || ct || tag, a fresh IV each time, and decrypts without an iv parameter', () => {
  const key = mech.generateSecretKey({ keyType: 'AES', bits: 256 });
  const params: MechanismParams = { mechanism: 'CKM_AES_GCM', aad: hex('feedface') };
  const data = hex('00112233445566778899');
  const a = mech.encrypt(params, key, data);
  const b = mech.encrypt(params, key, data);
  assert.equal(a.length, 12 + data.length + 16);
  assert.notEqual(toHex(a.subarray(0, 12)), toHex(b.subarray(0, 12)));
  assert.deepEqual(mech.decrypt(params, key, a), Buffer.from(data));
  throwsCode(() => mech.decrypt(params, key, flip(a, 3)), 'COFFER_ENCRYPTED_DATA_INVALID'); // IV byte
  throwsCode(() => mech.decrypt(params, key, a.subarray(0, 27)), 'COFFER_ENCRYPTED_DATA_INVALID'); // shorter than iv + tag
});

// ── CBC-PAD and CTR ─────────────────────────────────────────────────────────────────────────

interface BlockCase {
  section: string;
  key: string;
  iv: string;
  pt: string;
  ct: string;
}
const SP800_38A = vectors<{ cbc: BlockCase; ctr: BlockCase }>('aes_cbc_ctr.json');

test('CBC-PAD: SP 800-38A F.2.5 ciphertext, then one block of PKCS#7 padding; F.2.6 decrypts back', () => {
  const { key, iv, pt, ct } = SP800_38A.cbc;
  const params: MechanismParams = { mechanism: 'CKM_AES_CBC_PAD', iv: hex(iv) };
  const out = mech.encrypt(params, aesKey(key), hex(pt));
  assert.equal(out.length, 64 + 16);
  assert.equal(toHex(out.subarray(0, 64)), ct);
  assert.equal(toHex(mech.decrypt(params, aesKey(key), out)), pt);
});

test('CBC-PAD: bad padding, bad length and empty input give one identical error (no padding oracle)', () => {
  const { key, iv, ct } = SP800_38A.cbc;
  const params: MechanismParams = { mechanism: 'CKM_AES_CBC_PAD', iv: hex(iv) };
  const k = aesKey(key);
  const failures: CofferError[] = [];
  const collect = (input: Uint8Array): void => {
    try {
      mech.decrypt(params, k, input);
      assert.fail('decryption should fail');
    } catch (e) {
      assert.ok(e instanceof CofferError);
      failures.push(e);
    }
  };
  collect(hex(ct)); // F.2.5's last plaintext block ends in 0x10 but is not 16 × 0x10: bad padding
  collect(hex(ct).subarray(0, 63)); // not a multiple of the block
  collect(hex(ct).subarray(0, 8));
  collect(new Uint8Array(0));
  const good = mech.encrypt(params, k, hex('00'));
  collect(flip(good, 15)); // flips the padding byte's mask
  assert.equal(failures.length, 5);
  for (const f of failures) {
    assert.equal(f.code, 'COFFER_ENCRYPTED_DATA_INVALID');
    assert.equal(f.message, failures[0]?.message);
    assert.deepEqual(f.detail, {});
  }
});

test('PKCS#7 unpadding accepts 1..16 equal bytes and rejects everything else', () => {
  for (let pad = 1; pad <= 16; pad++) {
    const block = new Uint8Array(32).fill(0xaa);
    block.fill(pad, 32 - pad);
    assert.equal(pkcs7PadBytes(block), pad);
    if (pad > 1) {
      const broken = block.slice();
      broken[32 - pad] = (pad + 1) & 0xff;
      assert.equal(pkcs7PadBytes(broken), 0, `pad ${pad} with a wrong first padding byte`);
    }
  }
  const zero = new Uint8Array(16);
  assert.equal(pkcs7PadBytes(zero), 0);
  assert.equal(pkcs7PadBytes(new Uint8Array(16).fill(17)), 0);
  assert.equal(pkcs7PadBytes(new Uint8Array(16).fill(0xff)), 0);
});

// ── CBC and ECB without padding ─────────────────────────────────────────────────────────────

const BLOCKS = vectors<{ ecb: BlockCase[]; cbc: BlockCase[] }>('aes_ecb_cbc.json');

test('ECB and CBC without padding: SP 800-38A F.1.1–F.1.6 and F.2.1–F.2.6, AES-128 and AES-256, block for block', () => {
  assert.deepEqual([BLOCKS.ecb.length, BLOCKS.cbc.length], [2, 2]);
  const cases: [MechanismParams, BlockCase][] = [
    ...BLOCKS.ecb.map((v): [MechanismParams, BlockCase] => [{ mechanism: 'CKM_AES_ECB' }, v]),
    ...BLOCKS.cbc.map((v): [MechanismParams, BlockCase] => [{ mechanism: 'CKM_AES_CBC', iv: hex(v.iv) }, v]),
  ];
  for (const [params, { section, key, pt, ct }] of cases) {
    assert.equal(toHex(mech.encrypt(params, aesKey(key), hex(pt))), ct, section);
    assert.equal(toHex(mech.decrypt(params, aesKey(key), hex(ct))), pt, section);
    mech.checkMechanism('FIPS', params, 'encrypt', aesKey(key)); // SP 800-38A modes: approved
  }
  // ECB encrypts each block alone: the second block of F.1.5 alone gives the second ciphertext block.
  const [, ecb256] = BLOCKS.ecb;
  assert.equal(toHex(mech.encrypt({ mechanism: 'CKM_AES_ECB' }, aesKey(ecb256!.key), hex(ecb256!.pt.slice(32, 64)))), ecb256!.ct.slice(32, 64));
});

test('ECB and CBC without padding take whole blocks only: CKR_DATA_LEN_RANGE in, CKR_ENCRYPTED_DATA_LEN_RANGE back; an IV is 16 bytes', () => {
  const k = aesKey(BLOCKS.cbc[0]!.key);
  for (const params of [{ mechanism: 'CKM_AES_ECB' }, { mechanism: 'CKM_AES_CBC', iv: new Uint8Array(16) }] as MechanismParams[]) {
    assert.equal(mech.encrypt(params, k, new Uint8Array(0)).length, 0);
    for (const n of [1, 15, 17, 33]) {
      throwsCode(() => mech.encrypt(params, k, new Uint8Array(n)), 'COFFER_DATA_LEN_RANGE');
      throwsCode(() => mech.decrypt(params, k, new Uint8Array(n)), 'COFFER_ENCRYPTED_DATA_LEN_RANGE');
    }
  }
  for (const n of [0, 8, 15, 17]) {
    throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_CBC', iv: new Uint8Array(n) }, k, new Uint8Array(16)), 'COFFER_MECHANISM_PARAM_INVALID');
    throwsCode(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_AES_CBC', iv: new Uint8Array(n) }, 'decrypt', k), 'COFFER_MECHANISM_PARAM_INVALID');
  }
  // Neither signs, wraps or takes another key type.
  throwsCode(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_AES_ECB' }, 'wrap', k), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_ECB' }, secretKey('00112233445566778899aabbccddeeff'), new Uint8Array(16)), 'COFFER_KEY_TYPE_INCONSISTENT');
});

test('CTR: SP 800-38A F.5.5 encrypts and F.5.6 decrypts', () => {
  const { key, iv, pt, ct } = SP800_38A.ctr;
  const params: MechanismParams = { mechanism: 'CKM_AES_CTR', iv: hex(iv) };
  assert.equal(toHex(mech.encrypt(params, aesKey(key), hex(pt))), ct);
  assert.equal(toHex(mech.decrypt(params, aesKey(key), hex(ct))), pt);
});

test('CTR: a message that would wrap a counterBits-bit counter is refused; one that fits is not', () => {
  const { key, iv, pt, ct } = SP800_38A.ctr; // initial counter block ends in 0xff
  const k = aesKey(key);
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_CTR', iv: hex(iv), counterBits: 8 }, k, hex(pt)), 'COFFER_DATA_LEN_RANGE');
  // One block uses counter value 0xff only: no wrap.
  assert.equal(toHex(mech.encrypt({ mechanism: 'CKM_AES_CTR', iv: hex(iv), counterBits: 8 }, k, hex(pt).subarray(0, 16))), ct.slice(0, 32));
  // 16 counter bits hold 0xfeff → 0xff02 easily.
  assert.equal(toHex(mech.encrypt({ mechanism: 'CKM_AES_CTR', iv: hex(iv), counterBits: 16 }, k, hex(pt))), ct);
  const top = new Uint8Array(16).fill(0xff);
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_CTR', iv: top }, k, new Uint8Array(17)), 'COFFER_DATA_LEN_RANGE');
});

// ── MACs and digests ────────────────────────────────────────────────────────────────────────

interface CmacCase {
  source: string;
  key: string;
  msg: string;
  mac: string;
}

test('CKM_AES_CMAC: RFC 4493 and SP 800-38B D.3 examples sign and verify; truncated or altered MACs fail', () => {
  const cases = vectors<{ cases: CmacCase[] }>('aes_cmac.json').cases;
  assert.equal(cases.length, 8);
  const params: MechanismParams = { mechanism: 'CKM_AES_CMAC' };
  for (const c of cases) {
    const key = aesKey(c.key);
    assert.equal(toHex(mech.sign(params, key, hex(c.msg))), c.mac, c.source);
    assert.equal(mech.verify(params, key, hex(c.msg), hex(c.mac)), true);
    assert.equal(mech.verify(params, key, hex(c.msg), hex(c.mac).subarray(0, 12)), false);
    assert.equal(mech.verify(params, key, hex(c.msg), flip(hex(c.mac), 15)), false);
  }
});

interface HmacCase {
  tc: number;
  key: string;
  data: string;
  truncatedBytes?: number;
  sha224: string;
  sha256: string;
  sha384: string;
  sha512: string;
}

test('HMAC-SHA-2: RFC 4231 test cases 1–7 for all four hashes; case 5 (truncated) does not verify short', () => {
  const cases = vectors<{ cases: HmacCase[] }>('hmac_rfc4231.json').cases;
  assert.equal(cases.length, 7);
  const mechs = [
    ['CKM_SHA224_HMAC', 'sha224'],
    ['CKM_SHA256_HMAC', 'sha256'],
    ['CKM_SHA384_HMAC', 'sha384'],
    ['CKM_SHA512_HMAC', 'sha512'],
  ] as const;
  for (const c of cases) {
    const key = secretKey(c.key);
    for (const [mechanism, field] of mechs) {
      const expected = c[field];
      const mac = mech.sign({ mechanism }, key, hex(c.data));
      if (c.truncatedBytes === undefined) {
        assert.equal(toHex(mac), expected, `TC${c.tc} ${mechanism}`);
        assert.equal(mech.verify({ mechanism }, key, hex(c.data), hex(expected)), true);
        assert.equal(mech.verify({ mechanism }, key, hex(c.data), flip(hex(expected), 0)), false);
      } else {
        assert.equal(toHex(mac.subarray(0, c.truncatedBytes)), expected, `TC${c.tc} ${mechanism}`);
        assert.equal(mech.verify({ mechanism }, key, hex(c.data), hex(expected)), false, 'full-length tag required');
        assert.equal(mech.verify({ mechanism }, key, hex(c.data), mac), true);
      }
    }
  }
});

test('SHA-2 digests: FIPS 180-2 "abc" examples', () => {
  const v = vectors<Record<string, string>>('sha2_fips180.json');
  const msg = hex(v['message'] ?? '');
  const names = [
    ['CKM_SHA224', 'SHA-224'],
    ['CKM_SHA256', 'SHA-256'],
    ['CKM_SHA384', 'SHA-384'],
    ['CKM_SHA512', 'SHA-512'],
  ] as const;
  for (const [mechanism, field] of names) assert.equal(toHex(mech.digest({ mechanism }, msg)), v[field], mechanism);
  throwsCode(() => mech.digest({ mechanism: 'CKM_SHA256_HMAC' }, msg), 'COFFER_MECHANISM_INVALID');
});

// ── Ed25519 ─────────────────────────────────────────────────────────────────────────────────

interface EdCase {
  test: number;
  secret: string;
  public: string;
  msg: string;
  sig: string;
}
/** RFC 8410 §7 encodings: PKCS#8 and SPKI prefixes for id-Ed25519 (1.3.101.112). */
const ED_PKCS8_PREFIX = '302e020100300506032b657004220420';
const ED_SPKI_PREFIX = '302a300506032b6570032100';

test('CKM_EDDSA: RFC 8032 §7.1 tests 1–3 sign exactly and verify; a bad signature fails', () => {
  const cases = vectors<{ cases: EdCase[] }>('ed25519_rfc8032.json').cases;
  assert.equal(cases.length, 3);
  const params: MechanismParams = { mechanism: 'CKM_EDDSA' };
  for (const c of cases) {
    const priv = mech.materialFromBytes('PRIVATE_KEY', 'EC_EDWARDS', hex(ED_PKCS8_PREFIX + c.secret), 'Ed25519');
    const pub = mech.materialFromBytes('PUBLIC_KEY', 'EC_EDWARDS', hex(ED_SPKI_PREFIX + c.public), 'Ed25519');
    assert.equal(toHex(mech.materialToBytes(mech.publicFromPrivate(priv))), ED_SPKI_PREFIX + c.public);
    assert.equal(toHex(mech.sign(params, priv, hex(c.msg))), c.sig, `TEST ${c.test}`);
    assert.equal(mech.verify(params, pub, hex(c.msg), hex(c.sig)), true);
    assert.equal(mech.verify(params, pub, hex(c.msg), flip(hex(c.sig), 40)), false);
    assert.equal(mech.verify(params, pub, new Uint8Array([...hex(c.msg), 1]), hex(c.sig)), false);
    assert.equal(mech.verify(params, pub, hex(c.msg), hex(c.sig).subarray(0, 63)), false);
  }
});

// ── KDFs ────────────────────────────────────────────────────────────────────────────────────

test('CKM_HKDF_DERIVE: RFC 5869 A.1 through the mechanism', () => {
  const v = vectors<{ hash: HashName; ikm: string; salt: string; info: string; lengthBytes: number; okm: string }>('hkdf_rfc5869_a1.json');
  const base = secretKey(v.ikm);
  const params: MechanismParams = { mechanism: 'CKM_HKDF_DERIVE', hash: v.hash, salt: hex(v.salt), info: hex(v.info) };
  mech.checkMechanism('FIPS', params, 'derive', base, { keyType: 'GENERIC_SECRET', bits: v.lengthBytes * 8 });
  const derived = mech.deriveKey(params, base, { keyType: 'GENERIC_SECRET', bits: v.lengthBytes * 8 });
  assert.equal(derived.class, 'SECRET_KEY');
  assert.equal(derived.bits, 336);
  assert.equal(toHex(mech.materialToBytes(derived)), v.okm);
  const other = mech.deriveKey({ ...params, info: hex('f0') }, base, { keyType: 'GENERIC_SECRET', bits: 336 });
  assert.notEqual(toHex(mech.materialToBytes(other)), v.okm);
  throwsCode(() => mech.deriveKey({ ...params, info: new Uint8Array(1025) }, base, { keyType: 'AES', bits: 128 }), 'COFFER_MECHANISM_PARAM_INVALID');
});

test('CKM_SP800_108_COUNTER_KDF: the CAVP record through the counter-mode core the mechanism runs on', () => {
  const v = vectors<{ lengthBits: number; ki: string; fixedInputData: string; ko: string }>('sp800_108_cavp_record.json');
  const out = kdfCounterHmacSha256(createSecretKey(hex(v.ki)), { counterBits: 32, before: new Uint8Array(0), after: hex(v.fixedInputData), lengthBits: v.lengthBits });
  assert.equal(toHex(out), v.ko);
});

test('CKM_SP800_108_COUNTER_KDF: [i]_32 || Label || 0x00 || Context || [L]_32, recomputed with plain HMAC-SHA-256', () => {
  const v = vectors<{ ki: string }>('sp800_108_cavp_record.json');
  const label = Buffer.from('coffer test label');
  const context = hex('000102030405');
  const base = secretKey(v.ki);
  const params: MechanismParams = { mechanism: 'CKM_SP800_108_COUNTER_KDF', label, context };
  const bits = 384; // two PRF blocks
  const expected = Buffer.concat(
    [1, 2].map((i) => {
      const fixed = Buffer.concat([Buffer.from([0, 0, 0, i]), label, Buffer.from([0]), context, Buffer.from([0, 0, bits >> 8, bits & 0xff])]);
      return createHmac('sha256', hex(v.ki)).update(fixed).digest();
    }),
  ).subarray(0, bits / 8);
  assert.equal(toHex(mech.materialToBytes(mech.deriveKey(params, base, { keyType: 'GENERIC_SECRET', bits }))), expected.toString('hex'));
  const aes = mech.deriveKey(params, mech.materialFromBytes('SECRET_KEY', 'AES', hex(v.ki)), { keyType: 'AES', bits: 256 });
  assert.equal(aes.keyType, 'AES');
  assert.equal(aes.bits, 256);
  throwsCode(() => mech.deriveKey({ ...params, label: hex('6100') }, base, { keyType: 'AES', bits: 128 }), 'COFFER_MECHANISM_PARAM_INVALID');
  throwsCode(() => mech.deriveKey(params, base, { keyType: 'AES', bits: 100 }), 'COFFER_KEY_SIZE_RANGE');
  throwsCode(() => mech.deriveKey(params, base, { keyType: 'RSA', bits: 2048 }), 'COFFER_TEMPLATE_INCONSISTENT');
});

// ── random ──────────────────────────────────────────────────────────────────────────────────

test('randomBytes gives the requested length within its limit and refuses beyond it', () => {
  assert.equal(mech.randomBytes(0).length, 0);
  assert.equal(mech.randomBytes(32).length, 32);
  assert.notEqual(toHex(mech.randomBytes(16)), toHex(mech.randomBytes(16)));
  throwsCode(() => mech.randomBytes(64 * 1024 + 1), 'COFFER_DATA_LEN_RANGE');
  throwsCode(() => mech.randomBytes(-1), 'COFFER_DATA_LEN_RANGE');
  throwsCode(() => mech.randomBytes(1.5), 'COFFER_DATA_LEN_RANGE');
});

test('an Ed25519 signature made here verifies with node directly', () => {
  const { publicKey, privateKey } = mech.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' });
  const sig = mech.sign({ mechanism: 'CKM_EDDSA' }, privateKey, hex('abcdef'));
  assert.equal(nodeVerify(null, hex('abcdef'), publicKey.key, sig), true);
});
