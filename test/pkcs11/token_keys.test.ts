// C_WrapKey, C_UnwrapKey, C_DeriveKey(2), C_CopyObject and CKA_TRUSTED through the bridge's socket,
// with the repository's p11-kit RPC client (test/pkcs11/rpc_client.ts) against a development cluster:
// the return values PKCS#11 v2.40 §5.14 and §5.7 name, the two-call rule of C_WrapKey, and every
// result checked outside the bridge — wrapped bytes unwrapped by node:crypto's id-aes256-wrap(-pad)
// and RSA-OAEP with keys the test holds, keys unwrapped from bytes node:crypto wrapped, and ECDH
// against node:crypto's own shared secret. AES key wrap is sent here as p11-kit's encoding of an
// unlisted mechanism (a byte array), which no p11-kit client sends (docs/pkcs11.md section 4).

import { test, before, after } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, privateDecrypt, constants, randomBytes, createPrivateKey } from 'node:crypto';
import { CKA, CKM, CKR } from '../../src/pkcs11/constants.js';
import type { Attribute, Mechanism, ProtocolVersion } from '../../src/pkcs11/rpc_codec.js';
import type { CallName } from '../../src/pkcs11/rpc_calls.js';
import type { DecodedResponse, RequestOf, ResponseOf } from '../../src/pkcs11/rpc_messages.js';
import { decodeResponse, encodeRequest } from '../../src/pkcs11/rpc_messages.js';
import { RpcClient } from './rpc_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';

// PKCS#11 v2.40 values written from the specification, not from the code under test.
const CKF_RW_SERIAL = 0x6n;
const CKF_SERIAL = 0x4n;
const CKU_SO = 0n;
const CKU_USER = 1n;
const CKO_PUBLIC_KEY = 2n;
const CKO_PRIVATE_KEY = 3n;
const CKO_SECRET_KEY = 4n;
const CKK_RSA = 0n;
const CKO_CERTIFICATE = 1n;
const CKC_X_509 = 0n;
const CKK_GENERIC_SECRET = 0x10n;
const CKK_AES = 0x1fn;
const CKD_NULL = 1n;
const CKD_SHA256_KDF = 6n;
const CKG_MGF1_SHA256 = 2n;
const CKM_SHA256 = 0x250n;
const CKM_AES_KEY_WRAP = 0x2109;
const CKM_AES_KEY_WRAP_PAD = 0x210a;
const P256_PARAMS = Uint8Array.from(Buffer.from('06082a8648ce3d030107', 'hex'));
/** SP 800-38F / RFC 3394 §2.2.3.1 and RFC 5649 §3 initial values, as node:crypto takes them. */
const KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const KWP_IV = Buffer.from('a65959a6', 'hex');

let bridge: Bridge;
before(async () => {
  bridge = await startBridge('p11-keys');
});
after(async () => {
  await bridge.close();
});

const bool = (type: number, value: boolean): Attribute => ({ type, value: { kind: 'byte', value: value ? 1 : 0 } });
const ulong = (type: number, value: bigint): Attribute => ({ type, value: { kind: 'ulong', value } });
const bytes = (type: number, value: Uint8Array): Attribute => ({ type, value: { kind: 'bytes', value } });
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const mech = (type: number, parameter: Mechanism['parameter'] = { kind: 'none' }): Mechanism => ({ type, parameter });
const oaep: Mechanism = mech(CKM.RSA_PKCS_OAEP, { kind: 'rsaOaep', hashAlg: CKM_SHA256, mgf: CKG_MGF1_SHA256, source: 1n, sourceData: null });

/** The rv of an answer: an ERROR message's, or CKR_OK. */
function rvOf<N extends CallName>(r: DecodedResponse<N>): number {
  return 'rv' in r ? r.rv : CKR.OK;
}
function answer<N extends CallName>(r: DecodedResponse<N>): ResponseOf<N> {
  assert.ok('response' in r, `expected an answer, got rv 0x${'rv' in r ? r.rv.toString(16) : ''}`);
  return r.response;
}

/** An application on the socket: initialised, one session, logged in with `pin` as `userType`. */
async function application(version: ProtocolVersion, pin: string, userType = CKU_USER, flags = CKF_RW_SERIAL): Promise<{ client: RpcClient; s: bigint }> {
  const client = await RpcClient.open(bridge.socketPath, version);
  assert.equal(client.version, version);
  assert.equal(rvOf(await client.initialize()), CKR.OK);
  const s = answer(await client.call('C_OpenSession', { slotId: 1n, flags })).session;
  assert.equal(rvOf(await client.call('C_Login', { session: s, userType, pin: utf8(pin) })), CKR.OK);
  return { client, s };
}

async function aesKey(client: RpcClient, s: bigint, attrs: readonly Attribute[], valueLen = 32n): Promise<bigint> {
  return answer(await client.call('C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, valueLen), ...attrs] })).key;
}
/** An AES key whose value the test may read: extractable, not sensitive. */
const readable = [bool(CKA.SENSITIVE, false), bool(CKA.EXTRACTABLE, true)];

async function valueOf(client: RpcClient, s: bigint, object: bigint): Promise<Buffer> {
  const a = answer(await client.call('C_GetAttributeValue', { session: s, object, template: [{ type: CKA.VALUE, length: 1024 }] })).template[0];
  assert.ok(a !== undefined && 'value' in a && a.value.kind === 'bytes', 'CKA_VALUE is readable');
  return Buffer.from(a.value.value);
}

function wrapReq(s: bigint, m: Mechanism, wrappingKey: bigint, key: bigint, length: number | undefined): RequestOf<'C_WrapKey'> {
  return { session: s, mechanism: m, wrappingKey, key, wrappedKey: length === undefined ? { present: false, length: 0 } : { present: true, length } };
}

async function objectCount(client: RpcClient, s: bigint): Promise<number> {
  assert.equal(rvOf(await client.call('C_FindObjectsInit', { session: s, template: [] })), CKR.OK);
  const found = answer(await client.call('C_FindObjects', { session: s, objects: { present: true, length: 10_000 } })).objects;
  assert.equal(rvOf(await client.call('C_FindObjectsFinal', { session: s })), CKR.OK);
  assert.ok(Array.isArray(found));
  return found.length;
}

test('C_WrapKey with AES key wrap: the two-call rule, and bytes node:crypto unwraps to the key value', async () => {
  const { client, s } = await application(0, bridge.pin);
  try {
    const kek = await aesKey(client, s, [...readable, bool(CKA.WRAP, true), bool(CKA.UNWRAP, true)]);
    const target = await aesKey(client, s, readable, 16n);
    const kekValue = await valueOf(client, s, kek);
    const targetValue = await valueOf(client, s, target);
    // §5.2: no buffer → the length only; a buffer too small → the length only (the client derives
    // CKR_BUFFER_TOO_SMALL from that answer); a buffer big enough → the bytes.
    assert.deepEqual(answer(await client.call('C_WrapKey', wrapReq(s, mech(CKM_AES_KEY_WRAP_PAD), kek, target, undefined))).wrappedKey, { lengthOnly: 24 });
    assert.deepEqual(answer(await client.call('C_WrapKey', wrapReq(s, mech(CKM_AES_KEY_WRAP_PAD), kek, target, 23))).wrappedKey, { lengthOnly: 24 });
    const kwp = answer(await client.call('C_WrapKey', wrapReq(s, mech(CKM_AES_KEY_WRAP_PAD), kek, target, 64))).wrappedKey;
    assert.ok(kwp instanceof Uint8Array && kwp.length === 24);
    const d = createDecipheriv('id-aes256-wrap-pad', kekValue, KWP_IV);
    assert.deepEqual(Buffer.concat([d.update(kwp), d.final()]), targetValue);
    const kw = answer(await client.call('C_WrapKey', wrapReq(s, mech(CKM_AES_KEY_WRAP), kek, target, 64))).wrappedKey;
    assert.ok(kw instanceof Uint8Array && kw.length === 24);
    const d2 = createDecipheriv('id-aes256-wrap', kekValue, KW_IV);
    assert.deepEqual(Buffer.concat([d2.update(kw), d2.final()]), targetValue);

    // C_UnwrapKey of what node:crypto wrapped: the new key holds that value.
    const known = randomBytes(32);
    const c = createCipheriv('id-aes256-wrap', kekValue, KW_IV);
    const wrapped = Buffer.concat([c.update(known), c.final()]);
    const template = [ulong(CKA.CLASS, CKO_SECRET_KEY), ulong(CKA.KEY_TYPE, CKK_AES), ...readable];
    const unwrapped = answer(await client.call('C_UnwrapKey', { session: s, mechanism: mech(CKM_AES_KEY_WRAP), unwrappingKey: kek, wrappedKey: wrapped, template })).key;
    assert.deepEqual(await valueOf(client, s, unwrapped), known);
    // CKA_VALUE_LEN is held to what was unwrapped; a mismatch leaves no object behind.
    const withLen = answer(await client.call('C_UnwrapKey', { session: s, mechanism: mech(CKM_AES_KEY_WRAP), unwrappingKey: kek, wrappedKey: wrapped, template: [...template, ulong(CKA.VALUE_LEN, 32n)] })).key;
    assert.deepEqual(await valueOf(client, s, withLen), known);
    const before = await objectCount(client, s);
    assert.equal(rvOf(await client.call('C_UnwrapKey', { session: s, mechanism: mech(CKM_AES_KEY_WRAP), unwrappingKey: kek, wrappedKey: wrapped, template: [...template, ulong(CKA.VALUE_LEN, 16n), bytes(CKA_DESTROYABLE, Uint8Array.of(0))] })), CKR.TEMPLATE_INCONSISTENT);
    assert.equal(await objectCount(client, s), before);
  } finally {
    client.close();
  }
});

/** CKA_DESTROYABLE (PKCS#11 v2.40 §4.4), which p11-kit 0.24 carries as a byte array of one byte. */
const CKA_DESTROYABLE = 0x172;

test('C_UnwrapKey refusals: damaged bytes, lengths, handles, templates, key functions', async () => {
  const { client, s } = await application(0, bridge.pin);
  try {
    const kek = await aesKey(client, s, [...readable, bool(CKA.WRAP, true), bool(CKA.UNWRAP, true)]);
    const kekValue = await valueOf(client, s, kek);
    const c = createCipheriv('id-aes256-wrap', kekValue, KW_IV);
    const wrapped = Buffer.concat([c.update(randomBytes(16)), c.final()]);
    const template = [ulong(CKA.CLASS, CKO_SECRET_KEY), ulong(CKA.KEY_TYPE, CKK_AES)];
    const unwrap = async (w: Uint8Array, t: readonly Attribute[] = template, key = kek, m = mech(CKM_AES_KEY_WRAP)): Promise<number> =>
      rvOf(await client.call('C_UnwrapKey', { session: s, mechanism: m, unwrappingKey: key, wrappedKey: w, template: t }));
    for (const i of [0, 8, wrapped.length - 1]) {
      const damaged = Buffer.from(wrapped);
      damaged[i] = (damaged[i] ?? 0) ^ 1;
      assert.equal(await unwrap(damaged), CKR.WRAPPED_KEY_INVALID, `byte ${i} flipped`);
    }
    assert.equal(await unwrap(wrapped.subarray(0, 23)), CKR.WRAPPED_KEY_LEN_RANGE);
    assert.equal(await unwrap(wrapped.subarray(0, 16)), CKR.WRAPPED_KEY_LEN_RANGE); // KW: at least three blocks
    assert.equal(await unwrap(wrapped, template, 999_999n), CKR.UNWRAPPING_KEY_HANDLE_INVALID);
    assert.equal(await unwrap(wrapped, [ulong(CKA.CLASS, CKO_SECRET_KEY)]), CKR.TEMPLATE_INCOMPLETE);
    assert.equal(await unwrap(wrapped, [ulong(CKA.CLASS, CKO_PUBLIC_KEY), ulong(CKA.KEY_TYPE, CKK_RSA)]), CKR.TEMPLATE_INCONSISTENT);
    assert.equal(await unwrap(wrapped, [...template, { type: CKA.START_DATE, value: { kind: 'date', value: utf8('20260101') } }]), CKR.ATTRIBUTE_TYPE_INVALID); // not kept by the token
    assert.equal(await unwrap(wrapped, [...template, bool(CKA.TRUSTED, true)]), CKR.ATTRIBUTE_READ_ONLY);
    assert.equal(await unwrap(wrapped, template, kek, mech(CKM.AES_GCM, { kind: 'bytes', bytes: new Uint8Array(12) })), CKR.MECHANISM_INVALID);
    assert.equal(await unwrap(wrapped, template, kek, mech(CKM_AES_KEY_WRAP, { kind: 'bytes', bytes: new Uint8Array(8).fill(1) })), CKR.MECHANISM_PARAM_INVALID);
    const noUnwrap = await aesKey(client, s, [bool(CKA.WRAP, true)]);
    assert.equal(await unwrap(wrapped, template, noUnwrap), CKR.KEY_FUNCTION_NOT_PERMITTED);
    // A read-only session makes no token object (§5.6).
    const ro = answer(await client.call('C_OpenSession', { slotId: 1n, flags: CKF_SERIAL })).session;
    assert.equal(rvOf(await client.call('C_UnwrapKey', { session: ro, mechanism: mech(CKM_AES_KEY_WRAP), unwrappingKey: kek, wrappedKey: wrapped, template: [...template, bool(CKA.TOKEN, true)] })), CKR.SESSION_READ_ONLY);
  } finally {
    client.close();
  }
});

test('C_WrapKey refusals: handles, key functions, unextractable, public keys, CKA_WRAP_WITH_TRUSTED until the SO sets CKA_TRUSTED', async () => {
  const { client, s } = await application(0, bridge.pin);
  const so = await application(0, bridge.soPin, CKU_SO);
  try {
    const wrapReqOf = (wrapping: bigint, key: bigint, m = mech(CKM_AES_KEY_WRAP_PAD)): RequestOf<'C_WrapKey'> => wrapReq(s, m, wrapping, key, 4096);
    const wrap = async (wrapping: bigint, key: bigint, m?: Mechanism): Promise<number> => rvOf(await client.call('C_WrapKey', wrapReqOf(wrapping, key, m)));
    // A token object, so that the SO sees it (an admin sees every token object, never session objects).
    const kek = await aesKey(client, s, [bool(CKA.WRAP, true), bool(CKA.TOKEN, true)]);
    const plain = await aesKey(client, s, []);
    assert.equal(await wrap(999_999n, plain), CKR.WRAPPING_KEY_HANDLE_INVALID);
    assert.equal(await wrap(kek, 999_999n), CKR.KEY_HANDLE_INVALID);
    assert.equal(await wrap(plain, kek), CKR.KEY_FUNCTION_NOT_PERMITTED); // `plain` has no CKA_WRAP
    assert.equal(await wrap(kek, plain, mech(CKM.AES_GCM, { kind: 'bytes', bytes: new Uint8Array(12) })), CKR.MECHANISM_INVALID);
    assert.equal(await wrap(kek, plain, mech(CKM.RSA_PKCS)), CKR.WRAPPING_KEY_TYPE_INCONSISTENT);
    const locked = await aesKey(client, s, [bool(CKA.EXTRACTABLE, false)]);
    assert.equal(await wrap(kek, locked), CKR.KEY_UNEXTRACTABLE);
    const pair = answer(await client.call('C_GenerateKeyPair', {
      session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN), publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS)], privateKeyTemplate: [bool(CKA.SIGN, true)],
    }));
    assert.equal(await wrap(kek, pair.publicKey), CKR.KEY_NOT_WRAPPABLE);
    assert.equal(await wrap(pair.privateKey, plain), CKR.WRAPPING_KEY_TYPE_INCONSISTENT);

    const guarded = await aesKey(client, s, [bool(CKA.WRAP_WITH_TRUSTED, true), bool(CKA.EXTRACTABLE, true)]);
    assert.equal(await wrap(kek, guarded), CKR.KEY_NOT_WRAPPABLE);
    // The user cannot make the wrapping key trusted; the SO can, and changes nothing else.
    assert.equal(rvOf(await client.call('C_SetAttributeValue', { session: s, object: kek, template: [bool(CKA.TRUSTED, true)] })), CKR.ATTRIBUTE_READ_ONLY);
    assert.equal(rvOf(await so.client.call('C_SetAttributeValue', { session: so.s, object: kek, template: [bytes(CKA.LABEL, utf8('renamed'))] })), CKR.ATTRIBUTE_READ_ONLY);
    assert.equal(rvOf(await so.client.call('C_SetAttributeValue', { session: so.s, object: kek, template: [bool(CKA.TRUSTED, true)] })), CKR.OK);
    const shown = answer(await client.call('C_GetAttributeValue', { session: s, object: kek, template: [{ type: CKA.TRUSTED, length: 1 }] })).template[0];
    assert.deepEqual(shown, { type: CKA.TRUSTED, value: { kind: 'byte', value: 1 } });
    const wrapped = answer(await client.call('C_WrapKey', wrapReqOf(kek, guarded))).wrappedKey;
    assert.ok(wrapped instanceof Uint8Array && wrapped.length === 40);
    // A key made with CKA_TRUSTED true by a user: only the SO sets it.
    assert.equal(rvOf(await client.call('C_GenerateKey', { session: s, mechanism: mech(CKM.AES_KEY_GEN), template: [ulong(CKA.VALUE_LEN, 32n), bool(CKA.TRUSTED, true)] })), CKR.ATTRIBUTE_READ_ONLY);
  } finally {
    client.close();
    so.client.close();
  }
});

test('RSA wrap and unwrap: OAEP and PKCS#1 v1.5 under a public key the test holds the private half of; OAEP round trip in the cluster', async () => {
  const { client, s } = await application(0, bridge.pin);
  try {
    const target = await aesKey(client, s, readable);
    const targetValue = await valueOf(client, s, target);
    // A public key made by node:crypto, imported with CKA_WRAP: its private half stays with the test.
    const outside = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = outside.publicKey.export({ format: 'jwk' });
    const b = (x: string | undefined): Uint8Array => Uint8Array.from(Buffer.from(x ?? '', 'base64url'));
    const imported = answer(await client.call('C_CreateObject', { session: s, template: [
      ulong(CKA.CLASS, CKO_PUBLIC_KEY), ulong(CKA.KEY_TYPE, CKK_RSA), bytes(CKA.MODULUS, b(jwk.n)), bytes(CKA.PUBLIC_EXPONENT, b(jwk.e)), bool(CKA.WRAP, true),
    ] })).object;
    const viaOaep = answer(await client.call('C_WrapKey', wrapReq(s, oaep, imported, target, 256))).wrappedKey;
    assert.ok(viaOaep instanceof Uint8Array && viaOaep.length === 256);
    assert.deepEqual(privateDecrypt({ key: outside.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, viaOaep), targetValue);
    const viaPkcs1 = answer(await client.call('C_WrapKey', wrapReq(s, mech(CKM.RSA_PKCS), imported, target, 256))).wrappedKey;
    assert.ok(viaPkcs1 instanceof Uint8Array && viaPkcs1.length === 256);
    // PKCS#1 v1.5 decryption checked by hand (node 20 refuses it in privateDecrypt): m = c^d mod n, EB = 00 02 PS 00 D.
    const d = BigInt(`0x${Buffer.from(b(outside.privateKey.export({ format: 'jwk' }).d)).toString('hex')}`);
    const n = BigInt(`0x${Buffer.from(b(jwk.n)).toString('hex')}`);
    const eb = Buffer.from(modPow(BigInt(`0x${Buffer.from(viaPkcs1).toString('hex')}`), d, n).toString(16).padStart(512, '0'), 'hex');
    assert.equal(eb[0], 0);
    assert.equal(eb[1], 2);
    assert.deepEqual(eb.subarray(eb.indexOf(0, 2) + 1), targetValue);

    // A pair of the cluster: wrap under the public key, unwrap with the private one into a new key.
    const pair = answer(await client.call('C_GenerateKeyPair', {
      session: s, mechanism: mech(CKM.RSA_PKCS_KEY_PAIR_GEN),
      publicKeyTemplate: [ulong(CKA.MODULUS_BITS, 2048n), bool(CKA.WRAP, true)], privateKeyTemplate: [bool(CKA.UNWRAP, true), bool(CKA.EXTRACTABLE, true)],
    }));
    const wrapped = answer(await client.call('C_WrapKey', wrapReq(s, oaep, pair.publicKey, target, 512))).wrappedKey;
    assert.ok(wrapped instanceof Uint8Array);
    const template = [ulong(CKA.CLASS, CKO_SECRET_KEY), ulong(CKA.KEY_TYPE, CKK_AES), ...readable];
    const back = answer(await client.call('C_UnwrapKey', { session: s, mechanism: oaep, unwrappingKey: pair.privateKey, wrappedKey: wrapped, template })).key;
    assert.deepEqual(await valueOf(client, s, back), targetValue);
    // No PKCS#1 v1.5 unwrap (no PKCS#1 v1.5 decryption), OAEP carries secret keys only, exact lengths.
    const unwrapRv = async (m: Mechanism, w: Uint8Array, t: readonly Attribute[] = template): Promise<number> =>
      rvOf(await client.call('C_UnwrapKey', { session: s, mechanism: m, unwrappingKey: pair.privateKey, wrappedKey: w, template: t }));
    assert.equal(await unwrapRv(mech(CKM.RSA_PKCS), wrapped), CKR.MECHANISM_INVALID);
    assert.equal(await unwrapRv(oaep, wrapped, [ulong(CKA.CLASS, CKO_PRIVATE_KEY), ulong(CKA.KEY_TYPE, CKK_RSA)]), CKR.TEMPLATE_INCONSISTENT);
    assert.equal(await unwrapRv(oaep, wrapped.subarray(1)), CKR.WRAPPED_KEY_LEN_RANGE);
    const flipped = Uint8Array.from(wrapped);
    flipped[100] = (flipped[100] ?? 0) ^ 0x40;
    assert.equal(await unwrapRv(oaep, flipped), CKR.WRAPPED_KEY_INVALID);
    // RSA wraps secret keys only (§2.1.8): an extractable private key is not wrappable under it.
    assert.equal(rvOf(await client.call('C_WrapKey', wrapReq(s, oaep, pair.publicKey, pair.privateKey, 512))), CKR.KEY_NOT_WRAPPABLE);
  } finally {
    client.close();
  }
});

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let x = base % mod;
  for (let e = exp; e > 0n; e >>= 1n) {
    if ((e & 1n) === 1n) r = (r * x) % mod;
    x = (x * x) % mod;
  }
  return r;
}

/** An EC P-256 pair of the cluster whose private key derives, and its public point (CKA_EC_POINT). */
async function ecdhPair(client: RpcClient, s: bigint): Promise<{ priv: bigint; point: Uint8Array }> {
  const pair = answer(await client.call('C_GenerateKeyPair', {
    session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN), publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS)], privateKeyTemplate: [bool(CKA.DERIVE, true), bool(CKA.SIGN, false)],
  }));
  const a = answer(await client.call('C_GetAttributeValue', { session: s, object: pair.publicKey, template: [{ type: CKA.EC_POINT, length: 256 }] })).template[0];
  assert.ok(a !== undefined && 'value' in a && a.value.kind === 'bytes');
  return { priv: pair.privateKey, point: a.value.value.subarray(2) }; // the point inside its DER OCTET STRING
}

function peer(): { publicPoint: Uint8Array; secretWith: (point: Uint8Array) => Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  const publicPoint = Uint8Array.from(Buffer.concat([Uint8Array.of(4), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]));
  const secretWith = (point: Uint8Array): Buffer => {
    const x = Buffer.from(point.subarray(1, 33)).toString('base64url');
    const y = Buffer.from(point.subarray(33)).toString('base64url');
    return diffieHellman({ privateKey: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })), publicKey: createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' }) });
  };
  return { publicPoint, secretWith };
}

test('C_DeriveKey2 (protocol 2) and C_DeriveKey (protocol 1): ECDH with the null KDF gives node:crypto\'s shared secret; protocol 0 cannot carry it', async () => {
  const ecdh = (publicData: Uint8Array | null, kdf = CKD_NULL): Mechanism => mech(CKM.ECDH1_DERIVE, { kind: 'ecdh1Derive', kdf, sharedData: null, publicData });
  const generic = [ulong(CKA.CLASS, CKO_SECRET_KEY), ulong(CKA.KEY_TYPE, CKK_GENERIC_SECRET), ...readable];
  for (const version of [2, 1] as const) {
    const { client, s } = await application(version, bridge.pin);
    try {
      const mine = await ecdhPair(client, s);
      const other = peer();
      const call = version === 2 ? 'C_DeriveKey2' : 'C_DeriveKey';
      const derive = async (m: Mechanism, template: readonly Attribute[], baseKey = mine.priv): Promise<{ rv: number; key?: bigint }> => {
        // C_DeriveKey2's answer is read with its request's mechanism (the P field).
        const f = await client.raw(encodeRequest(version, call, { session: s, mechanism: m, baseKey, template }));
        const r = decodeResponse(version, call, f.body, m.type);
        return 'rv' in r ? { rv: r.rv } : { rv: Number(r.response.rv ?? 0n), key: r.response.key };
      };
      const made = await derive(ecdh(other.publicPoint), generic);
      assert.equal(made.rv, CKR.OK);
      assert.ok(made.key !== undefined);
      assert.deepEqual(await valueOf(client, s, made.key), other.secretWith(mine.point));
      // The peer's point in a DER OCTET STRING (as CKA_EC_POINT holds it) is the same point.
      const wrappedPoint = Uint8Array.from([0x04, other.publicPoint.length, ...other.publicPoint]);
      const again = await derive(ecdh(wrappedPoint), [...generic, ulong(CKA.VALUE_LEN, 16n)]);
      assert.ok(again.key !== undefined);
      assert.deepEqual(await valueOf(client, s, again.key), other.secretWith(mine.point).subarray(16)); // Z's trailing bytes
      assert.equal((await derive(ecdh(other.publicPoint, CKD_SHA256_KDF), generic)).rv, CKR.MECHANISM_PARAM_INVALID);
      assert.equal((await derive(ecdh(null), generic)).rv, CKR.MECHANISM_PARAM_INVALID);
      assert.equal((await derive(ecdh(other.publicPoint), [ulong(CKA.CLASS, CKO_SECRET_KEY)])).rv, CKR.TEMPLATE_INCOMPLETE);
      assert.equal((await derive(ecdh(other.publicPoint), [ulong(CKA.KEY_TYPE, CKK_AES)])).rv, CKR.TEMPLATE_INCOMPLETE); // AES needs CKA_VALUE_LEN
      assert.equal((await derive(ecdh(other.publicPoint), [ulong(CKA.CLASS, CKO_PRIVATE_KEY), ulong(CKA.KEY_TYPE, CKK_AES)])).rv, CKR.TEMPLATE_INCONSISTENT);
      assert.equal((await derive(ecdh(other.publicPoint), generic, 999_999n)).rv, CKR.KEY_HANDLE_INVALID);
      const signer = answer(await client.call('C_GenerateKeyPair', {
        session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN), publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS)], privateKeyTemplate: [bool(CKA.SIGN, true)],
      }));
      assert.equal((await derive(ecdh(other.publicPoint), generic, signer.privateKey)).rv, CKR.KEY_FUNCTION_NOT_PERMITTED);
    } finally {
      client.close();
    }
  }
  // Protocol 0 (p11-kit 0.24) has no layout for CK_ECDH1_DERIVE_PARAMS: the parameter arrives as bytes.
  const { client, s } = await application(0, bridge.pin);
  try {
    const mine = await ecdhPair(client, s);
    const r = await client.call('C_DeriveKey', { session: s, mechanism: mech(CKM.ECDH1_DERIVE, { kind: 'bytes', bytes: peer().publicPoint }), baseKey: mine.priv, template: generic });
    assert.equal(rvOf(r), CKR.MECHANISM_PARAM_INVALID);
  } finally {
    client.close();
  }
});

test('C_CopyObject: a public key and a certificate copied with a new label; a session private or secret key kept as a token object (as Java\'s KeyStore does); a token private or secret key is CKR_ACTION_PROHIBITED', async () => {
  const { client, s } = await application(0, bridge.pin);
  try {
    const pair = answer(await client.call('C_GenerateKeyPair', {
      session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN), publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS), bytes(CKA.LABEL, utf8('original'))], privateKeyTemplate: [bool(CKA.SIGN, true)],
    }));
    const copy = answer(await client.call('C_CopyObject', { session: s, object: pair.publicKey, template: [bytes(CKA.LABEL, utf8('copy')), bytes(CKA.ID, Uint8Array.of(7)), bool(CKA.VERIFY, false)] })).newObject;
    assert.notEqual(copy, pair.publicKey);
    const read = async (object: bigint): Promise<readonly Attribute[]> => answer(await client.call('C_GetAttributeValue', { session: s, object, template: [
      { type: CKA.LABEL, length: 64 }, { type: CKA.ID, length: 64 }, { type: CKA.VERIFY, length: 1 }, { type: CKA.EC_POINT, length: 256 },
    ] })).template;
    const [label, id, verify, point] = await read(copy);
    const original = await read(pair.publicKey);
    assert.deepEqual(label, { type: CKA.LABEL, value: { kind: 'bytes', value: utf8('copy') } });
    assert.deepEqual(id, { type: CKA.ID, value: { kind: 'bytes', value: Uint8Array.of(7) } });
    assert.deepEqual(verify, { type: CKA.VERIFY, value: { kind: 'byte', value: 0 } });
    assert.deepEqual(point, original[3]);
    assert.deepEqual(original[0], { type: CKA.LABEL, value: { kind: 'bytes', value: utf8('original') } });
    // The pair is made of session objects (no CKA_TOKEN): its private key is kept as a token object,
    // the same key (its CKA_EC_POINT), CKA_LOCAL still true; a copy of that token key is refused.
    const kept = answer(await client.call('C_CopyObject', { session: s, object: pair.privateKey, template: [bool(CKA.TOKEN, true), bytes(CKA.ID, Uint8Array.of(0x4b))] })).newObject;
    const keptAttrs = answer(await client.call('C_GetAttributeValue', { session: s, object: kept, template: [
      { type: CKA.TOKEN, length: 1 }, { type: CKA.LOCAL, length: 1 }, { type: CKA.ID, length: 8 }, { type: CKA.EC_POINT, length: 256 },
    ] })).template;
    assert.deepEqual(keptAttrs.slice(0, 3), [
      { type: CKA.TOKEN, value: { kind: 'byte', value: 1 } }, { type: CKA.LOCAL, value: { kind: 'byte', value: 1 } }, { type: CKA.ID, value: { kind: 'bytes', value: Uint8Array.of(0x4b) } },
    ]);
    assert.deepEqual(keptAttrs[3], original[3]);
    assert.ok((await bridge.sdk.findKeys({ class: 'PRIVATE_KEY', id: Uint8Array.of(0x4b) })).length === 1, 'a token object the SDK sees');
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: kept, template: [] })), CKR.ACTION_PROHIBITED);
    const secret = await aesKey(client, s, []);
    const keptSecret = answer(await client.call('C_CopyObject', { session: s, object: secret, template: [bool(CKA.TOKEN, true)] })).newObject;
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: keptSecret, template: [] })), CKR.ACTION_PROHIBITED);
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: secret, template: [bool(CKA.SIGN, true)] })), CKR.ATTRIBUTE_READ_ONLY, 'a usage flag of a secret key is the source\'s');
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: pair.publicKey, template: [ulong(CKA.CLASS, CKO_PRIVATE_KEY)] })), CKR.ATTRIBUTE_READ_ONLY);
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: pair.publicKey, template: [bytes(CKA.EC_POINT, new Uint8Array(67))] })), CKR.ATTRIBUTE_READ_ONLY);
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: 999_999n, template: [] })), CKR.OBJECT_HANDLE_INVALID);

    // A certificate OpenSSL made: the copy holds the same DER under its new label.
    const key = join(bridge.dir, 'copy-cert.key');
    const cert = join(bridge.dir, 'copy-cert.der');
    const made = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=copied', '-days', '2', '-keyout', key, '-outform', 'DER', '-out', cert]);
    assert.equal(made.code, 0, made.stderr);
    const der = Uint8Array.from(readFileSync(cert));
    const certObject = answer(await client.call('C_CreateObject', { session: s, template: [
      ulong(CKA.CLASS, CKO_CERTIFICATE), ulong(CKA.CERTIFICATE_TYPE, CKC_X_509), bytes(CKA.VALUE, der), bytes(CKA.LABEL, utf8('cert')),
    ] })).object;
    const certCopy = answer(await client.call('C_CopyObject', { session: s, object: certObject, template: [bytes(CKA.LABEL, utf8('cert-copy'))] })).newObject;
    const readCert = answer(await client.call('C_GetAttributeValue', { session: s, object: certCopy, template: [{ type: CKA.VALUE, length: 4096 }, { type: CKA.LABEL, length: 64 }] })).template;
    assert.deepEqual(readCert, [{ type: CKA.VALUE, value: { kind: 'bytes', value: der } }, { type: CKA.LABEL, value: { kind: 'bytes', value: utf8('cert-copy') } }]);
    assert.equal(rvOf(await client.call('C_CopyObject', { session: s, object: certObject, template: [ulong(CKA.KEY_TYPE, CKK_RSA)] })), CKR.ATTRIBUTE_TYPE_INVALID);
  } finally {
    client.close();
  }
});

test('C_SetPIN, C_InitPIN and C_InitToken: the return values of §5.6 over the socket', async () => {
  const { client, s } = await application(1, bridge.pin);
  const so = await application(1, bridge.soPin, CKU_SO);
  try {
    const setPin = async (session: bigint, oldPin: string, newPin: string): Promise<number> => rvOf(await client.call('C_SetPIN', { session, oldPin: utf8(oldPin), newPin: utf8(newPin) }));
    const ro = answer(await client.call('C_OpenSession', { slotId: 1n, flags: CKF_SERIAL })).session;
    assert.equal(await setPin(ro, bridge.pin, 'a-new-password'), CKR.SESSION_READ_ONLY);
    assert.equal(await setPin(999_999n, bridge.pin, 'a-new-password'), CKR.SESSION_HANDLE_INVALID);
    // Logged in, the old PIN must name the logged-in user; without a colon it names nobody.
    assert.equal(await setPin(s, `someone-else:${bridge.pin.slice(bridge.pin.indexOf(':') + 1)}`, 'a-new-password'), CKR.PIN_INCORRECT);
    assert.equal(await setPin(s, 'no-colon-here', 'a-new-password'), CKR.PIN_INCORRECT);
    assert.equal(await setPin(s, bridge.pin, 'short'), CKR.PIN_LEN_RANGE);
    assert.equal(await setPin(s, bridge.pin, 'x'.repeat(129)), CKR.PIN_LEN_RANGE);

    // C_InitPIN only in the R/W SO Functions state.
    assert.equal(rvOf(await client.call('C_InitPIN', { session: s, pin: utf8(`${bridge.pin}-changed`) })), CKR.USER_NOT_LOGGED_IN);
    assert.equal(rvOf(await so.client.call('C_InitPIN', { session: so.s, pin: utf8('no-colon-here') })), CKR.PIN_INVALID);
    assert.equal(rvOf(await so.client.call('C_InitPIN', { session: so.s, pin: utf8('nobody-here:a-new-password') })), CKR.PIN_INVALID);

    // A cluster's token is initialised by its activation, never by C_InitToken (C_InitToken2 from protocol 1).
    assert.equal(rvOf(await client.call('C_InitToken2', { slotId: 1n, pin: utf8(bridge.soPin), label: 'relabelled' })), CKR.FUNCTION_NOT_SUPPORTED);
    assert.equal(rvOf(await client.call('C_InitToken2', { slotId: 9n, pin: utf8(bridge.soPin), label: 'relabelled' })), CKR.SLOT_ID_INVALID);
    // The user's login still works: nothing above changed a password.
    assert.equal(rvOf(await client.call('C_Logout', { session: s })), CKR.OK);
    assert.equal(rvOf(await client.call('C_Login', { session: s, userType: CKU_USER, pin: utf8(bridge.pin) })), CKR.OK);
  } finally {
    client.close();
    so.client.close();
  }
  const old = await RpcClient.open(bridge.socketPath, 0);
  try {
    assert.equal(rvOf(await old.initialize()), CKR.OK);
    assert.equal(rvOf(await old.call('C_InitToken', { slotId: 1n, pin: utf8(bridge.soPin), label: utf8('relabelled') })), CKR.FUNCTION_NOT_SUPPORTED);
  } finally {
    old.close();
  }
});
