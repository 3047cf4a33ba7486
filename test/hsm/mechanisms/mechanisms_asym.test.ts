// Asymmetric mechanisms through src/hsm/mechanisms/mechanisms.ts, each checked by an independent party:
// node:crypto verifies every signature made here (with the hash and encoding PKCS#11 implies) and
// decrypts OAEP; raw RSA opens PKCS#1 v1.5 encryption; node's diffieHellman checks ECDH. Also wrap
// and unwrap round trips and the async forms. RSA keys are generated once per size (4096 once).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  constants,
  createHash,
  createPublicKey,
  diffieHellman,
  ECDH,
  generateKeyPairSync,
  privateDecrypt,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import * as mech from '../../../src/hsm/mechanisms/mechanisms.js';
import { isCofferError } from '../../../src/errors.js';
import type { HashName, MechanismParams } from '../../../src/hsm/types.js';
import { throwsCode, flip } from '../../helpers.js';

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const MSG = Buffer.from('Coffer signs this message');
const NODE: Record<HashName, string> = { 'SHA-1': 'sha1', 'SHA-224': 'sha224', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };
const HLEN: Record<HashName, number> = { 'SHA-1': 20, 'SHA-224': 28, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };
type Pair = { publicKey: mech.KeyMaterial; privateKey: mech.KeyMaterial };

// Generated once, in parallel on the thread pool: keygen dominates this file's time.
const [RSA2048, RSA3072, RSA4096] = await Promise.all([2048, 3072, 4096].map((bits) => mech.generateKeyPairAsync({ keyType: 'RSA', bits })));
assert.ok(RSA2048 !== undefined && RSA3072 !== undefined && RSA4096 !== undefined);
const RSA_PAIRS: readonly (readonly [number, Pair])[] = [
  [2048, RSA2048],
  [3072, RSA3072],
  [4096, RSA4096],
];

// ── RSA signatures ──────────────────────────────────────────────────────────────────────────

const PKCS1_HASHED = [
  ['CKM_SHA224_RSA_PKCS', 'SHA-224'],
  ['CKM_SHA256_RSA_PKCS', 'SHA-256'],
  ['CKM_SHA384_RSA_PKCS', 'SHA-384'],
  ['CKM_SHA512_RSA_PKCS', 'SHA-512'],
] as const;
const PSS_HASHED = [
  ['CKM_SHA224_RSA_PKCS_PSS', 'SHA-224'],
  ['CKM_SHA256_RSA_PKCS_PSS', 'SHA-256'],
  ['CKM_SHA384_RSA_PKCS_PSS', 'SHA-384'],
  ['CKM_SHA512_RSA_PKCS_PSS', 'SHA-512'],
] as const;

for (const [bits, pair] of RSA_PAIRS) {
  test(`RSA-${bits}: hashed PKCS#1 v1.5 signatures verify with node and fail when altered`, () => {
    for (const [mechanism, hash] of PKCS1_HASHED) {
      const sig = mech.sign({ mechanism }, pair.privateKey, MSG);
      assert.equal(sig.length, bits / 8);
      assert.equal(nodeVerify(NODE[hash], MSG, pair.publicKey.key, sig), true, mechanism);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, sig), true);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, flip(sig, 10)), false);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, Buffer.from('other'), sig), false);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, sig.subarray(1)), false);
    }
  });

  test(`RSA-${bits}: hashed PSS signatures verify with node at the default and chosen salt lengths`, () => {
    for (const [mechanism, hash] of PSS_HASHED) {
      for (const saltBytes of [undefined, 0, 20]) {
        const params: MechanismParams = saltBytes === undefined ? { mechanism } : { mechanism, saltBytes };
        const sig = mech.sign(params, pair.privateKey, MSG);
        const saltLength = saltBytes ?? HLEN[hash];
        assert.equal(nodeVerify(NODE[hash], MSG, { key: pair.publicKey.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig), true, `${mechanism} salt ${saltLength}`);
        assert.equal(mech.verify(params, pair.publicKey, MSG, sig), true);
        assert.equal(mech.verify(params, pair.publicKey, MSG, flip(sig, 5)), false);
      }
    }
  });
}

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Partial<Record<HashName, string>> = {
  'SHA-256': '3031300d060960864801650304020105000420',
  'SHA-512': '3051300d060960864801650304020305000440',
};

test('CKM_RSA_PKCS signs a caller DigestInfo that node verifies as SHA-256/SHA-512 PKCS#1 v1.5', () => {
  for (const [bits, pair] of RSA_PAIRS.slice(0, 2)) {
    for (const hash of ['SHA-256', 'SHA-512'] as const) {
      const digestInfo = Buffer.concat([Buffer.from(DIGEST_INFO[hash] ?? '', 'hex'), createHash(NODE[hash]).update(MSG).digest()]);
      const sig = mech.sign({ mechanism: 'CKM_RSA_PKCS' }, pair.privateKey, digestInfo);
      assert.equal(nodeVerify(NODE[hash], MSG, pair.publicKey.key, sig), true, `RSA-${bits} ${hash}`);
      assert.equal(mech.verify({ mechanism: 'CKM_RSA_PKCS' }, pair.publicKey, digestInfo, sig), true);
      assert.equal(mech.verify({ mechanism: 'CKM_RSA_PKCS' }, pair.publicKey, flip(digestInfo, 30), sig), false);
    }
  }
  throwsCode(() => mech.sign({ mechanism: 'CKM_RSA_PKCS' }, RSA2048.privateKey, new Uint8Array(256 - 10)), 'COFFER_DATA_LEN_RANGE');
});

test('CKM_RSA_PKCS_PSS signs a caller digest: node verifies it over the message, and it verifies node\'s', () => {
  // Odd modulus sizes exercise emLen < k (bits ≡ 1 mod 8) and a partial top byte.
  const pairs: Pair[] = [RSA2048, RSA3072];
  for (const bits of [1025, 1031]) {
    const raw = generateKeyPairSync('rsa', { modulusLength: bits });
    pairs.push({
      privateKey: mech.materialFromBytes('PRIVATE_KEY', 'RSA', raw.privateKey.export({ format: 'der', type: 'pkcs8' })),
      publicKey: mech.materialFromBytes('PUBLIC_KEY', 'RSA', raw.publicKey.export({ format: 'der', type: 'spki' })),
    });
  }
  for (const pair of pairs) {
    for (const hash of ['SHA-1', 'SHA-256', 'SHA-384'] as const) {
      const saltBytes = HLEN[hash];
      const params: MechanismParams = { mechanism: 'CKM_RSA_PKCS_PSS', hash, saltBytes };
      const mHash = createHash(NODE[hash]).update(MSG).digest();
      const sig = mech.sign(params, pair.privateKey, mHash);
      const pss = { key: pair.publicKey.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltBytes };
      assert.equal(nodeVerify(NODE[hash], MSG, pss, sig), true, `RSA-${pair.privateKey.bits} ${hash}`);
      assert.equal(mech.verify(params, pair.publicKey, mHash, sig), true);
      assert.equal(mech.verify(params, pair.publicKey, flip(mHash, 0), sig), false);
      assert.equal(mech.verify(params, pair.publicKey, mHash, flip(sig, 7)), false);
      const theirs = nodeSign(NODE[hash], MSG, { key: pair.privateKey.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltBytes });
      assert.equal(mech.verify(params, pair.publicKey, mHash, theirs), true);
      throwsCode(() => mech.sign(params, pair.privateKey, mHash.subarray(1)), 'COFFER_DATA_LEN_RANGE');
    }
  }
});

// ── RSA encryption ──────────────────────────────────────────────────────────────────────────

test('OAEP round trips with a label; node decrypts it independently; a wrong label or altered ciphertext fails', () => {
  const label = Buffer.from('coffer label');
  for (const [bits, pair] of RSA_PAIRS.slice(0, 2)) {
    for (const hash of ['SHA-1', 'SHA-256', 'SHA-512'] as const) {
      const params: MechanismParams = { mechanism: 'CKM_RSA_PKCS_OAEP', hash, label };
      const data = Buffer.from(`secret for RSA-${bits} ${hash}`);
      const ct = mech.encrypt(params, pair.publicKey, data);
      assert.equal(ct.length, bits / 8);
      assert.deepEqual(Buffer.from(mech.decrypt(params, pair.privateKey, ct)), data);
      const byNode = privateDecrypt({ key: pair.privateKey.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: NODE[hash], oaepLabel: label }, ct);
      assert.deepEqual(byNode, data);
      throwsCode(() => mech.decrypt({ ...params, label: Buffer.from('other') }, pair.privateKey, ct), 'COFFER_ENCRYPTED_DATA_INVALID');
      throwsCode(() => mech.decrypt(params, pair.privateKey, flip(ct, 100)), 'COFFER_ENCRYPTED_DATA_INVALID');
      throwsCode(() => mech.decrypt(params, pair.privateKey, ct.subarray(1)), 'COFFER_ENCRYPTED_DATA_INVALID');
    }
  }
  const noLabel: MechanismParams = { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' };
  assert.deepEqual(Buffer.from(mech.decrypt(noLabel, RSA2048.privateKey, mech.encrypt(noLabel, RSA2048.publicKey, MSG))), MSG);
  throwsCode(() => mech.encrypt(noLabel, RSA2048.publicKey, new Uint8Array(256 - 2 * 32 - 1)), 'COFFER_DATA_LEN_RANGE');
});

test('CKM_RSA_PKCS encrypts (outside FIPS) with a type-2 block that raw RSA opens; it never decrypts', () => {
  const ct = mech.encrypt({ mechanism: 'CKM_RSA_PKCS' }, RSA2048.publicKey, MSG);
  const block = privateDecrypt({ key: RSA2048.privateKey.key, padding: constants.RSA_NO_PADDING }, ct);
  assert.equal(block[0], 0x00);
  assert.equal(block[1], 0x02);
  const sep = block.indexOf(0, 2);
  assert.ok(sep >= 10, 'at least 8 bytes of nonzero padding (RFC 8017 §7.2.1)');
  assert.deepEqual(block.subarray(sep + 1), MSG);
  throwsCode(() => mech.decrypt({ mechanism: 'CKM_RSA_PKCS' }, RSA2048.privateKey, ct), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_RSA_PKCS' }, RSA2048.publicKey, new Uint8Array(246)), 'COFFER_DATA_LEN_RANGE');
});

// ── ECDSA and ECDH ──────────────────────────────────────────────────────────────────────────

const CURVES = [
  ['P-256', 64],
  ['P-384', 96],
  ['P-521', 132],
  ['secp256k1', 64],
] as const;
const ECDSA_HASHED = [
  ['CKM_ECDSA_SHA224', 'SHA-224'],
  ['CKM_ECDSA_SHA256', 'SHA-256'],
  ['CKM_ECDSA_SHA384', 'SHA-384'],
  ['CKM_ECDSA_SHA512', 'SHA-512'],
] as const;

for (const [curve, sigBytes] of CURVES) {
  test(`ECDSA ${curve}: hashed signatures are r || s and verify with node under the mechanism's hash`, () => {
    const pair = mech.generateKeyPair({ keyType: 'EC', curve });
    assert.equal(pair.privateKey.curve, curve);
    for (const [mechanism, hash] of ECDSA_HASHED) {
      const sig = mech.sign({ mechanism }, pair.privateKey, MSG);
      assert.equal(sig.length, sigBytes);
      assert.equal(nodeVerify(NODE[hash], MSG, { key: pair.publicKey.key, dsaEncoding: 'ieee-p1363' }, sig), true, mechanism);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, sig), true);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, flip(sig, 3)), false);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, sig.subarray(2)), false);
      assert.equal(mech.verify({ mechanism }, pair.publicKey, MSG, new Uint8Array(0)), false);
    }
  });

  test(`CKM_ECDSA ${curve}: raw signatures over a digest verify with node over the message`, () => {
    const pair = mech.generateKeyPair({ keyType: 'EC', curve });
    for (const hash of ['SHA-256', 'SHA-384', 'SHA-512'] as const) {
      const digest = createHash(NODE[hash]).update(MSG).digest();
      const sig = mech.sign({ mechanism: 'CKM_ECDSA' }, pair.privateKey, digest);
      assert.equal(sig.length, sigBytes);
      assert.equal(nodeVerify(NODE[hash], MSG, { key: pair.publicKey.key, dsaEncoding: 'ieee-p1363' }, sig), true, hash);
      assert.equal(mech.verify({ mechanism: 'CKM_ECDSA' }, pair.publicKey, digest, sig), true);
      assert.equal(mech.verify({ mechanism: 'CKM_ECDSA' }, pair.publicKey, flip(digest, 0), sig), false);
      const theirs = nodeSign(NODE[hash], MSG, { key: pair.privateKey.key, dsaEncoding: 'ieee-p1363' });
      assert.equal(mech.verify({ mechanism: 'CKM_ECDSA' }, pair.publicKey, digest, theirs), true);
    }
    throwsCode(() => mech.sign({ mechanism: 'CKM_ECDSA' }, pair.privateKey, new Uint8Array(65)), 'COFFER_DATA_LEN_RANGE');
    throwsCode(() => mech.sign({ mechanism: 'CKM_ECDSA' }, pair.privateKey, new Uint8Array(0)), 'COFFER_DATA_LEN_RANGE');
  });

  test(`EC ${curve}: a pair generated as its stored bytes (PKCS#8, SPKI) is one key pair, read back as the mechanisms' material`, () => {
    const pair = mech.generateEcKeyPairEncoded(curve);
    assert.deepEqual([pair.privateKey.class, pair.publicKey.class, pair.privateKey.curve, pair.publicKey.curve], ['PRIVATE_KEY', 'PUBLIC_KEY', curve, curve]);
    assert.deepEqual(pair.publicKey.encoded, pair.publicKey.spki);
    const privateKey = mech.materialFromBytes('PRIVATE_KEY', 'EC', pair.privateKey.encoded, curve);
    const publicKey = mech.materialFromBytes('PUBLIC_KEY', 'EC', pair.publicKey.encoded, curve);
    assert.equal(privateKey.bits, pair.privateKey.bits);
    assert.equal(toHex(createPublicKey(privateKey.key).export({ format: 'der', type: 'spki' })), toHex(pair.publicKey.spki), 'the public key is the private key\'s');
    const sig = mech.sign({ mechanism: 'CKM_ECDSA_SHA256' }, privateKey, MSG);
    assert.equal(mech.verify({ mechanism: 'CKM_ECDSA_SHA256' }, publicKey, MSG, sig), true);
    assert.notDeepEqual(mech.generateEcKeyPairEncoded(curve).privateKey.encoded, pair.privateKey.encoded, 'a new key each time');
  });

  test(`ECDH ${curve}: both sides derive the same key, equal to the tail of node's shared secret`, () => {
    const a = mech.generateKeyPair({ keyType: 'EC', curve });
    const b = mech.generateKeyPair({ keyType: 'EC', curve });
    const z = diffieHellman({ privateKey: a.privateKey.key, publicKey: b.publicKey.key });
    const ab = mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: point(b.publicKey.key) }, a.privateKey, { keyType: 'AES', bits: 256 });
    const ba = mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: point(a.publicKey.key) }, b.privateKey, { keyType: 'AES', bits: 256 });
    assert.equal(toHex(mech.materialToBytes(ab)), toHex(mech.materialToBytes(ba)));
    assert.equal(toHex(mech.materialToBytes(ab)), toHex(z.subarray(z.length - 32)));
    const whole = mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: point(b.publicKey.key) }, a.privateKey, { keyType: 'GENERIC_SECRET', bits: z.length * 8 });
    assert.equal(toHex(mech.materialToBytes(whole)), toHex(z));
    const compressed = ECDH.convertKey(point(b.publicKey.key), opensslName(curve), undefined, undefined, 'compressed') as Buffer;
    const viaCompressed = mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: compressed }, a.privateKey, { keyType: 'AES', bits: 128 });
    assert.equal(toHex(mech.materialToBytes(viaCompressed)), toHex(z.subarray(z.length - 16)));
    throwsCode(
      () => mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: point(b.publicKey.key) }, a.privateKey, { keyType: 'GENERIC_SECRET', bits: z.length * 8 + 8 }),
      'COFFER_KEY_SIZE_RANGE',
    );
    const offCurve = point(b.publicKey.key);
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 1;
    throwsCode(() => mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: offCurve }, a.privateKey, { keyType: 'AES', bits: 128 }), 'COFFER_MECHANISM_PARAM_INVALID');
    throwsCode(() => mech.deriveKey({ mechanism: 'CKM_ECDH1_DERIVE', publicKey: offCurve.subarray(1) }, a.privateKey, { keyType: 'AES', bits: 128 }), 'COFFER_MECHANISM_PARAM_INVALID');
  });
}

function opensslName(curve: string): string {
  return ({ 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1', secp256k1: 'secp256k1' } as Record<string, string>)[curve] ?? curve;
}

/**
 * The SEC 1 uncompressed point 04 || x || y of an EC public key: the contents of its SPKI's BIT
 * STRING after the unused-bits byte. Not read from a JWK: node 20 can deadlock exporting a JWK of
 * a freshly generated key (src/crypto/ecdsa_raw.ts).
 */
function point(key: KeyObject): Uint8Array {
  const spki = key.export({ format: 'der', type: 'spki' });
  const at = spki[1] === 0x81 ? 3 : 2; // past the outer SEQUENCE header (long form for P-521)
  const bits = at + 2 + (spki[at + 1] ?? 0); // past the AlgorithmIdentifier: the BIT STRING
  const lengthBytes = spki[bits + 1] === 0x81 ? 2 : 1;
  const out = new Uint8Array(spki.subarray(bits + 1 + lengthBytes + 1));
  assert.equal(out[0], 4);
  return out;
}

// ── wrap / unwrap ───────────────────────────────────────────────────────────────────────────

const same = (a: mech.KeyMaterial, b: mech.KeyMaterial): void => {
  assert.equal(a.class, b.class);
  assert.equal(a.keyType, b.keyType);
  assert.equal(a.bits, b.bits);
  assert.equal(a.curve, b.curve);
  assert.equal(toHex(mech.materialToBytes(a)), toHex(mech.materialToBytes(b)));
};

test('EC pairs generated in turn across curves: each public key verifies its own private key\'s signature, and no pair repeats', () => {
  // One generator per curve is reused (mech_keys.ts): a point or scalar left over from an earlier
  // generation, or from another curve's, would pair keys that do not belong together.
  const seen = new Set<string>();
  for (let round = 0; round < 3; round++) {
    for (const [curve] of CURVES) {
      const pair = mech.generateEcKeyPairEncoded(curve);
      const privateKey = mech.materialFromBytes('PRIVATE_KEY', 'EC', pair.privateKey.encoded, curve);
      const publicKey = mech.materialFromBytes('PUBLIC_KEY', 'EC', pair.publicKey.encoded, curve);
      // A signature checks the scalar against the point (the PKCS#8 carries the point too, so
      // comparing exports alone would take a stale point for the key's own).
      const sig = mech.sign({ mechanism: 'CKM_ECDSA_SHA256' }, privateKey, MSG);
      assert.equal(mech.verify({ mechanism: 'CKM_ECDSA_SHA256' }, publicKey, MSG, sig), true, `${curve}, round ${round}`);
      const d = toHex(pair.privateKey.encoded);
      assert.ok(!seen.has(d), `${curve}, round ${round}: a new key`);
      seen.add(d);
    }
  }
});

test('AES keys round-trip under KW, KWP and GCM; tampering is COFFER_WRAPPED_KEY_INVALID', () => {
  const kek = mech.generateSecretKey({ keyType: 'AES', bits: 256 });
  const mechanisms: MechanismParams[] = [{ mechanism: 'CKM_AES_KEY_WRAP' }, { mechanism: 'CKM_AES_KEY_WRAP_PAD' }, { mechanism: 'CKM_AES_GCM' }];
  for (const params of mechanisms) {
    for (const bits of [128, 192, 256]) {
      const target = mech.generateSecretKey({ keyType: 'AES', bits });
      const wrapped = mech.wrapKey(params, kek, target);
      same(mech.unwrapKey(params, kek, wrapped, { class: 'SECRET_KEY', keyType: 'AES' }), target);
      throwsCode(() => mech.unwrapKey(params, kek, flip(wrapped, 4), { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_WRAPPED_KEY_INVALID');
      throwsCode(() => mech.unwrapKey(params, kek, wrapped.subarray(0, wrapped.length - 8), { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_WRAPPED_KEY_INVALID');
    }
  }
  throwsCode(() => mech.unwrapKey({ mechanism: 'CKM_AES_KEY_WRAP' }, kek, new Uint8Array(16 * 1024 + 8), { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_WRAPPED_KEY_INVALID');
});

test('KWP wraps generic secrets of any byte length and EC and RSA private keys (PKCS#8); unwrap checks the template', () => {
  const kek = mech.generateSecretKey({ keyType: 'AES', bits: 128 });
  const kwp: MechanismParams = { mechanism: 'CKM_AES_KEY_WRAP_PAD' };
  const generic = mech.generateSecretKey({ keyType: 'GENERIC_SECRET', bits: 8 * 21 });
  same(mech.unwrapKey(kwp, kek, mech.wrapKey(kwp, kek, generic), { class: 'SECRET_KEY', keyType: 'GENERIC_SECRET' }), generic);
  const ecPair = mech.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
  const wrappedEc = mech.wrapKey(kwp, kek, ecPair.privateKey);
  same(mech.unwrapKey(kwp, kek, wrappedEc, { class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-256' }), ecPair.privateKey);
  same(mech.unwrapKey(kwp, kek, wrappedEc, { class: 'PRIVATE_KEY', keyType: 'EC' }), ecPair.privateKey);
  throwsCode(() => mech.unwrapKey(kwp, kek, wrappedEc, { class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-384' }), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => mech.unwrapKey(kwp, kek, wrappedEc, { class: 'PRIVATE_KEY', keyType: 'RSA' }), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => mech.unwrapKey(kwp, kek, wrappedEc, { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_KEY_SIZE_RANGE');
  throwsCode(() => mech.unwrapKey(kwp, kek, wrappedEc, { class: 'PUBLIC_KEY', keyType: 'EC' }), 'COFFER_TEMPLATE_INCONSISTENT');
  const wrappedRsa = mech.wrapKey(kwp, kek, RSA2048.privateKey);
  same(mech.unwrapKey(kwp, kek, wrappedRsa, { class: 'PRIVATE_KEY', keyType: 'RSA' }), RSA2048.privateKey);
  const edPair = mech.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' });
  same(mech.unwrapKey(kwp, kek, mech.wrapKey(kwp, kek, edPair.privateKey), { class: 'PRIVATE_KEY', keyType: 'EC_EDWARDS' }), edPair.privateKey);
  // KW needs a multiple of 8 bytes: a 21-byte secret cannot be KW-wrapped.
  throwsCode(() => mech.wrapKey({ mechanism: 'CKM_AES_KEY_WRAP' }, kek, generic), 'COFFER_KEY_NOT_WRAPPABLE');
  throwsCode(() => mech.wrapKey(kwp, kek, ecPair.publicKey), 'COFFER_KEY_NOT_WRAPPABLE');
});

test('an AES key round-trips under RSA-OAEP; private and public keys are not wrappable with RSA', () => {
  const params: MechanismParams = { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' };
  const target = mech.generateSecretKey({ keyType: 'AES', bits: 256 });
  const wrapped = mech.wrapKey(params, RSA3072.publicKey, target);
  same(mech.unwrapKey(params, RSA3072.privateKey, wrapped, { class: 'SECRET_KEY', keyType: 'AES' }), target);
  throwsCode(() => mech.unwrapKey(params, RSA3072.privateKey, flip(wrapped, 9), { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_WRAPPED_KEY_INVALID');
  throwsCode(() => mech.unwrapKey(params, RSA3072.privateKey, wrapped, { class: 'PRIVATE_KEY', keyType: 'EC' }), 'COFFER_TEMPLATE_INCONSISTENT');
  const ec = mech.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
  throwsCode(() => mech.wrapKey(params, RSA3072.publicKey, ec.privateKey), 'COFFER_KEY_NOT_WRAPPABLE');
  throwsCode(() => mech.wrapKey(params, RSA3072.publicKey, ec.publicKey), 'COFFER_KEY_NOT_WRAPPABLE');
  // The wrapping key must be the public half, the unwrapping key the private half.
  throwsCode(() => mech.wrapKey(params, RSA3072.privateKey, target), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.unwrapKey({ mechanism: 'CKM_RSA_PKCS' }, RSA3072.privateKey, wrapped, { class: 'SECRET_KEY', keyType: 'AES' }), 'COFFER_MECHANISM_INVALID');
});

// ── async forms ─────────────────────────────────────────────────────────────────────────────

test('signAsync and verifyAsync agree with node for pool-backed and synchronous mechanisms', async () => {
  const ec = mech.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
  const ed = mech.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' });
  const hmac = mech.generateSecretKey({ keyType: 'GENERIC_SECRET', bits: 256 });
  const sigs = await Promise.all(Array.from({ length: 16 }, () => mech.signAsync({ mechanism: 'CKM_ECDSA_SHA256' }, ec.privateKey, MSG)));
  for (const sig of sigs) assert.equal(nodeVerify('sha256', MSG, { key: ec.publicKey.key, dsaEncoding: 'ieee-p1363' }, sig), true);
  assert.equal(await mech.verifyAsync({ mechanism: 'CKM_ECDSA_SHA256' }, ec.publicKey, MSG, sigs[0] ?? new Uint8Array(0)), true);
  assert.equal(await mech.verifyAsync({ mechanism: 'CKM_ECDSA_SHA256' }, ec.publicKey, MSG, flip(sigs[0] ?? new Uint8Array(64), 1)), false);
  const pss = await mech.signAsync({ mechanism: 'CKM_SHA256_RSA_PKCS_PSS' }, RSA2048.privateKey, MSG);
  assert.equal(nodeVerify('sha256', MSG, { key: RSA2048.publicKey.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss), true);
  const edSig = await mech.signAsync({ mechanism: 'CKM_EDDSA' }, ed.privateKey, MSG);
  assert.equal(await mech.verifyAsync({ mechanism: 'CKM_EDDSA' }, ed.publicKey, MSG, edSig), true);
  const mac = await mech.signAsync({ mechanism: 'CKM_SHA256_HMAC' }, hmac, MSG);
  assert.deepEqual(mac, mech.sign({ mechanism: 'CKM_SHA256_HMAC' }, hmac, MSG));
  assert.equal(await mech.verifyAsync({ mechanism: 'CKM_SHA256_HMAC' }, hmac, MSG, mac), true);
  await assert.rejects(mech.signAsync({ mechanism: 'CKM_ECDSA_SHA256' }, RSA2048.privateKey, MSG), (e) => isCofferError(e, 'COFFER_KEY_TYPE_INCONSISTENT'));
  await assert.rejects(mech.signAsync({ mechanism: 'CKM_ECDSA' }, ec.privateKey, new Uint8Array(0)), (e) => isCofferError(e, 'COFFER_DATA_LEN_RANGE'));
});
