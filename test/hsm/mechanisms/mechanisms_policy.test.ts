// Policy of src/hsm/mechanisms/mechanisms.ts: every FIPS-mode refusal (refused with COFFER_FIPS_REFUSED in FIPS
// mode, allowed outside it), wrong key types and classes, wrong functions, wrong parameters, key
// sizes and material parsing, and the MECHANISMS table itself.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as mech from '../../../src/hsm/mechanisms/mechanisms.js';
import type { KeyFunction, MechanismName, MechanismParams, Mode } from '../../../src/hsm/types.js';
import { throwsCode } from '../../helpers.js';


const AES128 = mech.generateSecretKey({ keyType: 'AES', bits: 128 });
const AES256 = mech.generateSecretKey({ keyType: 'AES', bits: 256 });
const HMAC256 = mech.generateSecretKey({ keyType: 'GENERIC_SECRET', bits: 256 });
const HMAC80 = mech.generateSecretKey({ keyType: 'GENERIC_SECRET', bits: 80 });
const HMAC112 = mech.generateSecretKey({ keyType: 'GENERIC_SECRET', bits: 112 });
const P256 = mech.generateKeyPair({ keyType: 'EC', curve: 'P-256' });
const K1 = mech.generateKeyPair({ keyType: 'EC', curve: 'secp256k1' });
const ED = mech.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' });
const RSA2048 = mech.generateKeyPair({ keyType: 'RSA', bits: 2048 });
const RSA1024 = ((): { publicKey: mech.KeyMaterial; privateKey: mech.KeyMaterial } => {
  const raw = generateKeyPairSync('rsa', { modulusLength: 1024 }); // legacy size: import only
  return {
    privateKey: mech.materialFromBytes('PRIVATE_KEY', 'RSA', raw.privateKey.export({ format: 'der', type: 'pkcs8' })),
    publicKey: mech.materialFromBytes('PUBLIC_KEY', 'RSA', raw.publicKey.export({ format: 'der', type: 'spki' })),
  };
})();

/** Refused in FIPS mode with COFFER_FIPS_REFUSED, and accepted in NON_FIPS mode. */
function fipsOnlyRefuses(check: (mode: Mode) => void, what: string): void {
  throwsCode(() => check('FIPS'), 'COFFER_FIPS_REFUSED', `FIPS refuses ${what}`);
  assert.doesNotThrow(() => check('NON_FIPS'), `NON_FIPS allows ${what}`);
}

/** Accepted in both modes. */
function allowedInBoth(check: (mode: Mode) => void, what: string): void {
  for (const mode of ['FIPS', 'NON_FIPS'] as const) assert.doesNotThrow(() => check(mode), `${mode} allows ${what}`);
}

// ── FIPS refusals ───────────────────────────────────────────────────────────────────────────

test('FIPS refuses secp256k1: key generation, key material and every mechanism on it', () => {
  fipsOnlyRefuses((mode) => mech.checkKeyGen(mode, { keyType: 'EC', curve: 'secp256k1' }), 'secp256k1 keygen');
  fipsOnlyRefuses((mode) => mech.checkKeyMaterial(mode, K1.privateKey), 'a secp256k1 key');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_ECDSA_SHA256' }, 'sign', K1.privateKey), 'ECDSA on secp256k1');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_ECDSA' }, 'verify', K1.publicKey), 'raw ECDSA on secp256k1');
  const pt = new Uint8Array([4, ...new Uint8Array(64)]);
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_ECDH1_DERIVE', publicKey: pt }, 'derive', K1.privateKey), 'ECDH on secp256k1');
  allowedInBoth((mode) => mech.checkKeyGen(mode, { keyType: 'EC', curve: 'P-256' }), 'P-256');
});

test('FIPS refuses SHA-1 in signatures (PSS over a SHA-1 digest)', () => {
  const params: MechanismParams = { mechanism: 'CKM_RSA_PKCS_PSS', hash: 'SHA-1' };
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, params, 'sign', RSA2048.privateKey), 'PSS with SHA-1');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, params, 'verify', RSA2048.publicKey), 'PSS verify with SHA-1');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS_PSS', hash: 'SHA-256' }, 'sign', RSA2048.privateKey), 'PSS with SHA-256');
  // SHA-1 outside signatures stays allowed (SP 800-131A r2 §9).
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-1' }, 'encrypt', RSA2048.publicKey), 'OAEP with SHA-1');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-1' }, 'derive', HMAC256), 'HKDF with SHA-1');
});

test('FIPS refuses RSA keys under 2048 bits; generation refuses them in both modes', () => {
  fipsOnlyRefuses((mode) => mech.checkKeyMaterial(mode, RSA1024.privateKey), 'an RSA-1024 key');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_SHA256_RSA_PKCS' }, 'verify', RSA1024.publicKey), 'RSA-1024 verify');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' }, 'decrypt', RSA1024.privateKey), 'RSA-1024 decrypt');
  for (const mode of ['FIPS', 'NON_FIPS'] as const) throwsCode(() => mech.checkKeyGen(mode, { keyType: 'RSA', bits: 1024 }), 'COFFER_KEY_SIZE_RANGE');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_SHA256_RSA_PKCS' }, 'sign', RSA2048.privateKey), 'RSA-2048');
});

test('FIPS refuses public exponents below 65537', () => {
  fipsOnlyRefuses((mode) => mech.checkKeyGen(mode, { keyType: 'RSA', bits: 2048, publicExponent: 3 }), 'e = 3');
  allowedInBoth((mode) => mech.checkKeyGen(mode, { keyType: 'RSA', bits: 2048, publicExponent: 65537 }), 'e = 65537');
  for (const e of [1, 2, 65536, 1.5]) throwsCode(() => mech.checkKeyGen('NON_FIPS', { keyType: 'RSA', bits: 2048, publicExponent: e }), 'COFFER_ATTRIBUTE_INVALID');
});

test('FIPS refuses CKM_RSA_PKCS encryption and wrapping, not its signatures', () => {
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS' }, 'encrypt', RSA2048.publicKey), 'PKCS#1 v1.5 encryption');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS' }, 'wrap', RSA2048.publicKey), 'PKCS#1 v1.5 wrapping');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS' }, 'sign', RSA2048.privateKey), 'PKCS#1 v1.5 signing');
  for (const mode of ['FIPS', 'NON_FIPS'] as const) {
    throwsCode(() => mech.checkMechanism(mode, { mechanism: 'CKM_RSA_PKCS' }, 'decrypt', RSA2048.privateKey), 'COFFER_MECHANISM_INVALID');
  }
});

test('FIPS refuses HMAC keys and generic secrets under 112 bits (generation, use, derivation)', () => {
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_SHA256_HMAC' }, 'sign', HMAC80), 'an 80-bit HMAC key');
  fipsOnlyRefuses((mode) => mech.checkKeyGen(mode, { keyType: 'GENERIC_SECRET', bits: 104 }), 'a 104-bit generic secret');
  fipsOnlyRefuses((mode) => mech.checkKeyMaterial(mode, HMAC80), 'an 80-bit generic secret');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-256' }, 'derive', HMAC80), 'an 80-bit KDF base key');
  const hkdf: MechanismParams = { mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-256' };
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, hkdf, 'derive', HMAC256, { keyType: 'GENERIC_SECRET', bits: 64 }), 'deriving a 64-bit secret');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_SHA256_HMAC' }, 'sign', HMAC112), 'a 112-bit HMAC key');
  allowedInBoth((mode) => mech.checkKeyGen(mode, { keyType: 'GENERIC_SECRET', bits: 112 }), 'a 112-bit generic secret');
});

test('FIPS refuses a caller-supplied GCM IV for encryption and wrapping, not for decryption', () => {
  const withIv: MechanismParams = { mechanism: 'CKM_AES_GCM', iv: new Uint8Array(12) };
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, withIv, 'encrypt', AES256), 'a caller GCM IV for encryption');
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, withIv, 'wrap', AES256), 'a caller GCM IV for wrapping');
  allowedInBoth((mode) => mech.checkMechanism(mode, withIv, 'decrypt', AES256), 'a GCM IV for decryption');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_AES_GCM' }, 'encrypt', AES256), 'a device GCM IV');
});

test('FIPS refuses an ECDH null-KDF result other than a generic secret (Z must go through a KDF)', () => {
  // The point is the SPKI's last 65 bytes (04 || x || y). Not read from a JWK: node 20 can deadlock
  // exporting a JWK of a freshly generated key (src/crypto/ecdsa_raw.ts).
  const spki = mech.generateKeyPair({ keyType: 'EC', curve: 'P-256' }).publicKey.key.export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 65));
  assert.equal(publicKey[0], 4);
  const params: MechanismParams = { mechanism: 'CKM_ECDH1_DERIVE', publicKey };
  fipsOnlyRefuses((mode) => mech.checkMechanism(mode, params, 'derive', P256.privateKey, { keyType: 'AES', bits: 256 }), 'ECDH straight to AES');
  allowedInBoth((mode) => mech.checkMechanism(mode, params, 'derive', P256.privateKey, { keyType: 'GENERIC_SECRET', bits: 256 }), 'ECDH to a generic secret');
});

test('ECDH takes only a private key as its base: an EC public key (whose CKA_DERIVE a template may set) is refused', () => {
  const spki = mech.generateKeyPair({ keyType: 'EC', curve: 'P-256' }).publicKey.key.export({ format: 'der', type: 'spki' });
  const params: MechanismParams = { mechanism: 'CKM_ECDH1_DERIVE', publicKey: new Uint8Array(spki.subarray(spki.length - 65)) };
  for (const mode of ['FIPS', 'NON_FIPS'] as const) {
    throwsCode(() => mech.checkMechanism(mode, params, 'derive', P256.publicKey, { keyType: 'GENERIC_SECRET', bits: 256 }), 'COFFER_KEY_TYPE_INCONSISTENT');
  }
});

test('FIPS allows Ed25519 (FIPS 186-5), KW/KWP with AES-128, CMAC and every SHA-2 mechanism', () => {
  allowedInBoth((mode) => mech.checkKeyGen(mode, { keyType: 'EC_EDWARDS', curve: 'Ed25519' }), 'Ed25519 keygen');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_EDDSA' }, 'sign', ED.privateKey), 'EdDSA');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_AES_KEY_WRAP' }, 'wrap', AES128), 'KW with AES-128');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_AES_KEY_WRAP_PAD' }, 'unwrap', AES128), 'KWP with AES-128');
  allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: 'CKM_AES_CMAC' }, 'sign', AES128), 'CMAC');
  for (const m of ['CKM_SHA224_HMAC', 'CKM_SHA384_HMAC', 'CKM_SHA512_HMAC'] as const) {
    allowedInBoth((mode) => mech.checkMechanism(mode, { mechanism: m }, 'verify', HMAC256), m);
  }
});

// ── key types, classes and functions ────────────────────────────────────────────────────────

test('a key of the wrong type for the mechanism is COFFER_KEY_TYPE_INCONSISTENT, in checks and in operations', () => {
  const wrong: [MechanismParams, KeyFunction, mech.KeyMaterial][] = [
    [{ mechanism: 'CKM_ECDSA_SHA256' }, 'sign', RSA2048.privateKey],
    [{ mechanism: 'CKM_SHA256_RSA_PKCS' }, 'sign', P256.privateKey],
    [{ mechanism: 'CKM_EDDSA' }, 'sign', P256.privateKey],
    [{ mechanism: 'CKM_ECDSA' }, 'sign', ED.privateKey],
    [{ mechanism: 'CKM_SHA256_HMAC' }, 'sign', AES256],
    [{ mechanism: 'CKM_AES_CMAC' }, 'sign', HMAC256],
    [{ mechanism: 'CKM_AES_GCM' }, 'encrypt', HMAC256],
    [{ mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' }, 'encrypt', AES256],
    // The right type, the wrong half of the pair.
    [{ mechanism: 'CKM_ECDSA_SHA256' }, 'sign', P256.publicKey],
    [{ mechanism: 'CKM_ECDSA_SHA256' }, 'verify', P256.privateKey],
    [{ mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-256' }, 'decrypt', RSA2048.publicKey],
  ];
  for (const [params, fn, key] of wrong) {
    throwsCode(() => mech.checkMechanism('NON_FIPS', params, fn, key), 'COFFER_KEY_TYPE_INCONSISTENT', `${params.mechanism} ${fn} ${key.class}/${key.keyType}`);
  }
  const data = new Uint8Array(32);
  throwsCode(() => mech.sign({ mechanism: 'CKM_ECDSA_SHA256' }, RSA2048.privateKey, data), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.sign({ mechanism: 'CKM_SHA256_HMAC' }, AES256, data), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.verify({ mechanism: 'CKM_EDDSA' }, P256.publicKey, data, new Uint8Array(64)), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_GCM' }, HMAC256, data), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.decrypt({ mechanism: 'CKM_AES_CBC_PAD', iv: new Uint8Array(16) }, P256.privateKey, data), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.deriveKey({ mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-256' }, P256.privateKey, { keyType: 'AES', bits: 128 }), 'COFFER_KEY_TYPE_INCONSISTENT');
});

test('a mechanism used for a function it lacks, or an unknown mechanism, is COFFER_MECHANISM_INVALID', () => {
  throwsCode(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_AES_CMAC' }, 'encrypt', AES256), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16) }, 'wrap', AES256), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_SHA256' }, 'sign', HMAC256), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_EDDSA' }, 'derive', ED.privateKey), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_CMAC' }, AES256, new Uint8Array(16)), 'COFFER_MECHANISM_INVALID');
  const unknown = { mechanism: 'CKM_DES3_CBC' } as unknown as MechanismParams;
  throwsCode(() => mech.checkMechanism('NON_FIPS', unknown, 'encrypt', AES256), 'COFFER_MECHANISM_INVALID');
  throwsCode(() => mech.sign(unknown, AES256, new Uint8Array(1)), 'COFFER_MECHANISM_INVALID');
  const proto = { mechanism: 'toString' } as unknown as MechanismParams;
  throwsCode(() => mech.digest(proto, new Uint8Array(1)), 'COFFER_MECHANISM_INVALID');
});

// ── parameters ──────────────────────────────────────────────────────────────────────────────

test('bad parameters are COFFER_MECHANISM_PARAM_INVALID, in checks and in operations', () => {
  const bad: [MechanismParams, KeyFunction, mech.KeyMaterial][] = [
    [{ mechanism: 'CKM_AES_GCM', tagBytes: 3 }, 'encrypt', AES256],
    [{ mechanism: 'CKM_AES_GCM', tagBytes: 11 }, 'encrypt', AES256],
    [{ mechanism: 'CKM_AES_GCM', tagBytes: 17 }, 'decrypt', AES256],
    [{ mechanism: 'CKM_AES_GCM', tagBytes: 12.5 }, 'decrypt', AES256],
    [{ mechanism: 'CKM_AES_GCM', iv: new Uint8Array(0) }, 'decrypt', AES256],
    [{ mechanism: 'CKM_AES_GCM', iv: new Uint8Array(129) }, 'decrypt', AES256],
    [{ mechanism: 'CKM_AES_CBC_PAD', iv: new Uint8Array(8) }, 'encrypt', AES256],
    [{ mechanism: 'CKM_AES_CBC_PAD', iv: new Uint8Array(17) }, 'decrypt', AES256],
    [{ mechanism: 'CKM_AES_CTR', iv: new Uint8Array(12) }, 'encrypt', AES256],
    [{ mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16), counterBits: 0 }, 'encrypt', AES256],
    [{ mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16), counterBits: 129 }, 'encrypt', AES256],
    [{ mechanism: 'CKM_SHA256_RSA_PKCS_PSS', saltBytes: 256 - 32 - 1 }, 'sign', RSA2048.privateKey],
    [{ mechanism: 'CKM_RSA_PKCS_PSS', hash: 'SHA-256', saltBytes: -1 }, 'sign', RSA2048.privateKey],
    [{ mechanism: 'CKM_RSA_PKCS_PSS', hash: 'MD5' } as unknown as MechanismParams, 'sign', RSA2048.privateKey],
    [{ mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA3-256' } as unknown as MechanismParams, 'encrypt', RSA2048.publicKey],
    [{ mechanism: 'CKM_ECDH1_DERIVE', publicKey: new Uint8Array(64) }, 'derive', P256.privateKey],
    [{ mechanism: 'CKM_ECDH1_DERIVE', publicKey: new Uint8Array([4, ...new Uint8Array(96)]) }, 'derive', P256.privateKey],
    [{ mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-2' } as unknown as MechanismParams, 'derive', HMAC256],
    [{ mechanism: 'CKM_SP800_108_COUNTER_KDF', label: new Uint8Array([0x61, 0]), context: new Uint8Array(0) }, 'derive', HMAC256],
  ];
  for (const [params, fn, key] of bad) {
    throwsCode(() => mech.checkMechanism('NON_FIPS', params, fn, key), 'COFFER_MECHANISM_PARAM_INVALID', JSON.stringify(params));
  }
  // The largest PSS salt that fits a 2048-bit key passes (RFC 8017 §9.1.1: emLen ≥ hLen + sLen + 2).
  assert.doesNotThrow(() => mech.checkMechanism('NON_FIPS', { mechanism: 'CKM_SHA256_RSA_PKCS_PSS', saltBytes: 256 - 32 - 2 }, 'sign', RSA2048.privateKey));
  const data = new Uint8Array(16);
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_GCM', tagBytes: 3 }, AES256, data), 'COFFER_MECHANISM_PARAM_INVALID');
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_CBC_PAD', iv: new Uint8Array(8) }, AES256, data), 'COFFER_MECHANISM_PARAM_INVALID');
  throwsCode(() => mech.decrypt({ mechanism: 'CKM_AES_CBC_PAD', iv: new Uint8Array(8) }, AES256, data), 'COFFER_MECHANISM_PARAM_INVALID');
  throwsCode(() => mech.sign({ mechanism: 'CKM_SHA256_RSA_PKCS_PSS', saltBytes: 300 }, RSA2048.privateKey, data), 'COFFER_MECHANISM_PARAM_INVALID');
});

// ── key sizes and material ──────────────────────────────────────────────────────────────────

test('key generation refuses sizes and curves outside the supported ranges', () => {
  for (const bits of [0, 64, 100, 127, 512]) throwsCode(() => mech.checkKeyGen('NON_FIPS', { keyType: 'AES', bits }), 'COFFER_KEY_SIZE_RANGE');
  for (const bits of [2047, 2100, 4352, 8192]) throwsCode(() => mech.checkKeyGen('NON_FIPS', { keyType: 'RSA', bits }), 'COFFER_KEY_SIZE_RANGE');
  for (const bits of [0, 4, 12, 8200]) throwsCode(() => mech.checkKeyGen('NON_FIPS', { keyType: 'GENERIC_SECRET', bits }), 'COFFER_KEY_SIZE_RANGE');
  for (const bits of [2048, 2304, 3072, 4096]) assert.doesNotThrow(() => mech.checkKeyGen('FIPS', { keyType: 'RSA', bits }));
  throwsCode(() => mech.checkKeyGen('NON_FIPS', { keyType: 'EC', curve: 'P-192' } as unknown as mech.KeyPairSpec), 'COFFER_CRYPTO_UNSUPPORTED_CURVE');
  throwsCode(() => mech.checkKeyGen('NON_FIPS', { keyType: 'EC_EDWARDS', curve: 'Ed448' } as unknown as mech.KeyPairSpec), 'COFFER_CRYPTO_UNSUPPORTED_CURVE');
  throwsCode(() => mech.generateSecretKey({ keyType: 'AES', bits: 100 }), 'COFFER_KEY_SIZE_RANGE');
});

test('material from bytes: round trips, and refuses bad sizes, garbage and keys of another type or curve', () => {
  for (const key of [AES128, HMAC80, P256.privateKey, P256.publicKey, ED.privateKey, RSA2048.privateKey, RSA2048.publicKey, K1.privateKey]) {
    const bytes = mech.materialToBytes(key);
    const back = mech.materialFromBytes(key.class, key.keyType, bytes, key.curve);
    assert.equal(back.bits, key.bits);
    assert.equal(back.curve, key.curve);
    assert.deepEqual(mech.materialToBytes(back), bytes);
  }
  throwsCode(() => mech.materialFromBytes('SECRET_KEY', 'AES', new Uint8Array(20)), 'COFFER_KEY_SIZE_RANGE');
  throwsCode(() => mech.materialFromBytes('SECRET_KEY', 'AES', new Uint8Array(0)), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => mech.materialFromBytes('SECRET_KEY', 'GENERIC_SECRET', new Uint8Array(1025)), 'COFFER_KEY_SIZE_RANGE');
  throwsCode(() => mech.materialFromBytes('SECRET_KEY', 'RSA', new Uint8Array(32)), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.materialFromBytes('PRIVATE_KEY', 'EC', new Uint8Array(100).fill(0x30)), 'COFFER_ATTRIBUTE_INVALID');
  const ecDer = mech.materialToBytes(P256.privateKey);
  throwsCode(() => mech.materialFromBytes('PRIVATE_KEY', 'RSA', ecDer), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.materialFromBytes('PRIVATE_KEY', 'EC', ecDer, 'P-384'), 'COFFER_KEY_TYPE_INCONSISTENT');
  throwsCode(() => mech.materialFromBytes('PUBLIC_KEY', 'EC', ecDer), 'COFFER_ATTRIBUTE_INVALID');
  const small = generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey.export({ format: 'der', type: 'pkcs8' });
  throwsCode(() => mech.materialFromBytes('PRIVATE_KEY', 'RSA', small), 'COFFER_KEY_SIZE_RANGE');
  throwsCode(() => mech.publicFromPrivate(P256.publicKey), 'COFFER_KEY_TYPE_INCONSISTENT');
  const pub = mech.publicFromPrivate(RSA2048.privateKey);
  assert.deepEqual(mech.materialToBytes(pub), mech.materialToBytes(RSA2048.publicKey));
});

test('input beyond CRYPTO_INPUT_BYTES_MAX is refused before any crypto runs', () => {
  const huge = new Uint8Array(16 * 1024 * 1024 + 1);
  throwsCode(() => mech.sign({ mechanism: 'CKM_SHA256_HMAC' }, HMAC256, huge), 'COFFER_DATA_LEN_RANGE');
  throwsCode(() => mech.encrypt({ mechanism: 'CKM_AES_GCM' }, AES256, huge), 'COFFER_DATA_LEN_RANGE');
  throwsCode(() => mech.digest({ mechanism: 'CKM_SHA256' }, huge), 'COFFER_DATA_LEN_RANGE');
});

// ── the table ───────────────────────────────────────────────────────────────────────────────

test('MECHANISMS: PKCS#11 values are distinct, hashed mechanisms name their hash, functions are consistent', () => {
  const entries = Object.entries(mech.MECHANISMS) as [MechanismName, mech.MechanismInfo][];
  assert.equal(entries.length, 36);
  const ckms = entries.flatMap(([, i]) => [i.ckm, ...i.ckmAliases]);
  assert.equal(new Set(ckms).size, ckms.length);
  assert.equal(mech.MECHANISMS.CKM_SHA256_RSA_PKCS.ckm, 0x40);
  assert.equal(mech.MECHANISMS.CKM_ECDSA.ckm, 0x1041);
  assert.equal(mech.MECHANISMS.CKM_AES_GCM.ckm, 0x1087);
  // PKCS#11 v2.40 Current Mechanisms §2.8: CKM_AES_ECB 0x1081, CKM_AES_CBC 0x1082.
  assert.deepEqual([mech.MECHANISMS.CKM_AES_ECB.ckm, mech.MECHANISMS.CKM_AES_CBC.ckm], [0x1081, 0x1082]);
  for (const [name, info] of entries) {
    if (/SHA\d+/.test(name)) assert.ok(info.hash !== undefined, `${name} names its hash`);
    assert.ok(info.minKeyBits <= info.maxKeyBits);
    for (const fn of info.fipsRefusedFunctions) assert.ok((info.functions as readonly string[]).includes(fn));
    if ((info.functions as readonly string[]).includes('digest')) assert.deepEqual(info.keyTypes, []);
  }
  assert.ok(Object.isFrozen(mech.MECHANISMS) && Object.isFrozen(mech.MECHANISMS.CKM_AES_GCM));
});
