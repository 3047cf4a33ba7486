// The p11-kit RPC message codec against what p11-kit's sources say (docs/pkcs11.md): the call table
// against the signatures p11-kit/rpc-message.h writes out, known-answer bytes derived by hand from
// rpc-message.c for each encoding (and for the two mechanism encodings of protocol versions 0/1 and
// 2), a round trip of every call in every version that defines it, and the inputs that must fail.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { CKA, CKM, CKR } from '../../src/pkcs11/constants.js';
import { CALLS, signatureOf, type CallName } from '../../src/pkcs11/rpc_calls.js';
import { codecContext, readMechanism, reader, writeMechanism, type Mechanism, type ProtocolVersion } from '../../src/pkcs11/rpc_codec.js';
import { callInVersion, decodeRequest, decodeResponse, encodeErrorFrame, encodeErrorResponse, encodeRequest, encodeResponse, encodeResponseFrame } from '../../src/pkcs11/rpc_messages.js';
import { Writer } from '../../src/formats/wire_codec.js';
import { sampleFields } from './rpc_samples.js';

/** p11_rpc_calls[] of p11-kit 0.26.4's p11-kit/rpc-message.h: name, request and response signatures, by id. */
const P11_KIT_SIGNATURES: readonly (readonly [string, string | null, string])[] = [
  ['ERROR', null, 'u'],
  ['C_Initialize', 'ayyay', ''],
  ['C_Finalize', '', ''],
  ['C_GetInfo', '', 'vsusv'],
  ['C_GetSlotList', 'yfu', 'au'],
  ['C_GetSlotInfo', 'u', 'ssuvv'],
  ['C_GetTokenInfo', 'u', 'ssssuuuuuuuuuuuvvs'],
  ['C_GetMechanismList', 'ufu', 'au'],
  ['C_GetMechanismInfo', 'uu', 'uuu'],
  ['C_InitToken', 'uayz', ''],
  ['C_OpenSession', 'uu', 'u'],
  ['C_CloseSession', 'u', ''],
  ['C_CloseAllSessions', 'u', ''],
  ['C_GetSessionInfo', 'u', 'uuuu'],
  ['C_InitPIN', 'uay', ''],
  ['C_SetPIN', 'uayay', ''],
  ['C_GetOperationState', 'ufy', 'ay'],
  ['C_SetOperationState', 'uayuu', ''],
  ['C_Login', 'uuay', ''],
  ['C_Logout', 'u', ''],
  ['C_CreateObject', 'uaA', 'u'],
  ['C_CopyObject', 'uuaA', 'u'],
  ['C_DestroyObject', 'uu', ''],
  ['C_GetObjectSize', 'uu', 'u'],
  ['C_GetAttributeValue', 'uufA', 'aAu'],
  ['C_SetAttributeValue', 'uuaA', ''],
  ['C_FindObjectsInit', 'uaA', ''],
  ['C_FindObjects', 'ufu', 'au'],
  ['C_FindObjectsFinal', 'u', ''],
  ['C_EncryptInit', 'uMu', ''],
  ['C_Encrypt', 'uayfy', 'ay'],
  ['C_EncryptUpdate', 'uayfy', 'ay'],
  ['C_EncryptFinal', 'ufy', 'ay'],
  ['C_DecryptInit', 'uMu', ''],
  ['C_Decrypt', 'uayfy', 'ay'],
  ['C_DecryptUpdate', 'uayfy', 'ay'],
  ['C_DecryptFinal', 'ufy', 'ay'],
  ['C_DigestInit', 'uM', ''],
  ['C_Digest', 'uayfy', 'ay'],
  ['C_DigestUpdate', 'uay', ''],
  ['C_DigestKey', 'uu', ''],
  ['C_DigestFinal', 'ufy', 'ay'],
  ['C_SignInit', 'uMu', ''],
  ['C_Sign', 'uayfy', 'ay'],
  ['C_SignUpdate', 'uay', ''],
  ['C_SignFinal', 'ufy', 'ay'],
  ['C_SignRecoverInit', 'uMu', ''],
  ['C_SignRecover', 'uayfy', 'ay'],
  ['C_VerifyInit', 'uMu', ''],
  ['C_Verify', 'uayay', ''],
  ['C_VerifyUpdate', 'uay', ''],
  ['C_VerifyFinal', 'uay', ''],
  ['C_VerifyRecoverInit', 'uMu', ''],
  ['C_VerifyRecover', 'uayfy', 'ay'],
  ['C_DigestEncryptUpdate', 'uayfy', 'ay'],
  ['C_DecryptDigestUpdate', 'uayfy', 'ay'],
  ['C_SignEncryptUpdate', 'uayfy', 'ay'],
  ['C_DecryptVerifyUpdate', 'uayfy', 'ay'],
  ['C_GenerateKey', 'uMaA', 'u'],
  ['C_GenerateKeyPair', 'uMaAaA', 'uu'],
  ['C_WrapKey', 'uMuufy', 'ay'],
  ['C_UnwrapKey', 'uMuayaA', 'u'],
  ['C_DeriveKey', 'uMuaA', 'u'],
  ['C_SeedRandom', 'uay', ''],
  ['C_GenerateRandom', 'ufy', 'ay'],
  ['C_WaitForSlotEvent', 'u', 'u'],
  ['C_LoginUser', 'uuayay', ''],
  ['C_SessionCancel', 'uu', ''],
  ['C_MessageEncryptInit', 'uMu', ''],
  ['C_EncryptMessage', 'uayayayfy', 'ay'],
  ['C_EncryptMessageBegin', 'uayay', ''],
  ['C_EncryptMessageNext', 'uayayfyu', 'ay'],
  ['C_MessageEncryptFinal', 'u', ''],
  ['C_MessageDecryptInit', 'uMu', ''],
  ['C_DecryptMessage', 'uayayayfy', 'ay'],
  ['C_DecryptMessageBegin', 'uayay', ''],
  ['C_DecryptMessageNext', 'uayayfyu', 'ay'],
  ['C_MessageDecryptFinal', 'u', ''],
  ['C_MessageSignInit', 'uMu', ''],
  ['C_SignMessage', 'uayayfy', 'ay'],
  ['C_SignMessageBegin', 'uay', ''],
  ['C_SignMessageNext', 'uayayyfy', 'ay'],
  ['C_MessageSignFinal', 'u', ''],
  ['C_MessageVerifyInit', 'uMu', ''],
  ['C_VerifyMessage', 'uayayay', ''],
  ['C_VerifyMessageBegin', 'uay', ''],
  ['C_VerifyMessageNext', 'uayayay', ''],
  ['C_MessageVerifyFinal', 'u', ''],
  ['C_InitToken2', 'uays', ''],
  ['C_DeriveKey2', 'uMuaA', 'uPu'],
];

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/[\s|]/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const VERSIONS: readonly ProtocolVersion[] = [0, 1, 2];

function throwsP11(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => isCofferError(e, code), `expected ${code}`);
}

test('the call table has p11-kit\'s ids and signatures, call for call', () => {
  assert.equal(CALLS.length, P11_KIT_SIGNATURES.length);
  CALLS.forEach((c, i) => {
    const [name, request, response] = P11_KIT_SIGNATURES[i] ?? [];
    assert.equal(c.id, i);
    assert.equal(c.name, name);
    if (request !== null) assert.equal(signatureOf(c.request), request, `${c.name} request`);
    assert.equal(signatureOf(c.response), response, `${c.name} response`);
  });
});

test('calls exist from the version that introduced them (0.24: 1-65, 0.25.0: 66-88, 0.25.6: 89)', () => {
  const ids = (v: ProtocolVersion) => CALLS.filter((c) => callInVersion(c, v)).map((c) => c.id);
  assert.deepEqual(ids(0), Array.from({ length: 65 }, (_, i) => i + 1));
  assert.deepEqual(ids(1), Array.from({ length: 88 }, (_, i) => i + 1));
  assert.deepEqual(ids(2), Array.from({ length: 89 }, (_, i) => i + 1));
});

test('known answers: the server\'s framed answers are the transport header (code, options length 0, body length) and the same body', () => {
  // C_GenerateRandom's answer under code 0x11: 12-byte header, then the 17-byte body of the test below.
  assert.equal(toHex(encodeResponseFrame(0x11, 0, 'C_GenerateRandom', { randomData: Uint8Array.of(0xaa, 0xbb) })),
    toHex(hex('00000011 00000000 00000011 00000040 00000002 6179 01 00000002 aabb')));
  assert.equal(toHex(encodeErrorFrame(0x12345678, CKR.FUNCTION_NOT_SUPPORTED)), toHex(hex('12345678 00000000 00000011 00000000 00000001 75 0000000000000054')));
  // Consecutive answers come from one scratch buffer: each is its own bytes, not a view the next overwrites.
  const big = new Uint8Array(100_000).fill(7); // grows the scratch past its first size
  const first = encodeResponseFrame(0x10, 2, 'C_GenerateRandom', { randomData: Uint8Array.of(1, 2, 3) });
  const large = encodeResponseFrame(0x11, 2, 'C_GenerateRandom', { randomData: big });
  const third = encodeResponseFrame(0x12, 2, 'C_GenerateRandom', { randomData: Uint8Array.of(9) });
  assert.equal(toHex(first), toHex(hex('00000010 00000000 00000012 00000040 00000002 6179 01 00000003 010203')));
  assert.equal(large.length, 12 + 4 + 6 + 1 + 4 + big.length);
  assert.ok(large.subarray(27).every((b) => b === 7));
  assert.equal(toHex(third), toHex(hex('00000012 00000000 00000010 00000040 00000002 6179 01 00000001 09')));
  // every response of the sample table frames as encodeResponse does
  for (const call of CALLS) {
    if (call.id === 0 || call.response.length === 0) continue;
    const sample = sampleFields(call.response, 2);
    const body = encodeResponse(2, call.name, sample as never);
    const framed = encodeResponseFrame(0x77, 2, call.name, sample as never);
    assert.equal(toHex(framed.subarray(12)), toHex(body), call.name);
    assert.equal(toHex(framed.subarray(0, 12)), toHex(hex(`00000077 00000000 ${body.length.toString(16).padStart(8, '0')}`)), call.name);
  }
});

test('known answers: whole messages as p11-kit writes them', () => {
  // C_GetInfo: call id 3, signature "" (u32 length 0), no fields.
  assert.equal(toHex(encodeRequest(0, 'C_GetInfo', {})), '0000000300000000');
  // C_GenerateRandom(session 5, a 32-byte buffer): id 64, "ufy", u64 session, u32 buffer size.
  assert.equal(toHex(encodeRequest(0, 'C_GenerateRandom', { session: 5n, randomData: { present: true, length: 32 } })),
    toHex(hex('00000040 00000003 756679 0000000000000005 00000020')));
  // a length query (NULL buffer) sends 0; a non-NULL buffer of size 0 sends 0xffffffff (rpc-client.c IN_BYTE_BUFFER)
  assert.equal(toHex(encodeRequest(0, 'C_GenerateRandom', { session: 5n, randomData: { present: false, length: 0 } })).slice(-8), '00000000');
  assert.equal(toHex(encodeRequest(0, 'C_GenerateRandom', { session: 5n, randomData: { present: true, length: 0 } })).slice(-8), 'ffffffff');
  // its answer: id 64, "ay", present byte 1, byte array
  assert.equal(toHex(encodeResponse(0, 'C_GenerateRandom', { randomData: Uint8Array.of(0xaa, 0xbb) })), toHex(hex('00000040 00000002 6179 01 00000002 aabb')));
  // CKR_BUFFER_TOO_SMALL / length answer: present byte 0, then the length only
  assert.equal(toHex(encodeResponse(0, 'C_GenerateRandom', { randomData: { lengthOnly: 32 } })), toHex(hex('00000040 00000002 6179 00 00000020')));
  // C_GetSlotList answer "au": present byte, u32 count, u64 items
  assert.equal(toHex(encodeResponse(0, 'C_GetSlotList', { slotList: [1n] })), toHex(hex('00000004 00000002 6175 01 00000001 0000000000000001')));
  // the ERROR answer: id 0, "u", the CK_RV as u64
  assert.equal(toHex(encodeErrorResponse(CKR.FUNCTION_NOT_SUPPORTED)), toHex(hex('00000000 00000001 75 0000000000000054')));
  // C_Login(session 1, CKU_USER, "pin1"): "uuay"
  assert.equal(toHex(encodeRequest(0, 'C_Login', { session: 1n, userType: 1n, pin: new TextEncoder().encode('pin1') })),
    toHex(hex('00000012 00000004 75756179 0000000000000001 0000000000000001 01 00000004 70696e31')));
});

test('known answers: CK_INFO, space-padded strings and versions', () => {
  const body = encodeResponse(0, 'C_GetInfo', { cryptokiVersion: { major: 2, minor: 40 }, manufacturerId: 'Co', flags: 0n, libraryDescription: 'L', libraryVersion: { major: 0, minor: 1 } });
  const sp = (s: string, n: number) => toHex(Buffer.from(s.padEnd(n, ' ')));
  assert.equal(toHex(body), '00000003' + '00000005' + toHex(Buffer.from('vsusv')) + '0228' + '00000020' + sp('Co', 32) + '0000000000000000' + '00000020' + sp('L', 32) + '0001');
  throwsP11(() => encodeResponse(0, 'C_GetInfo', { cryptokiVersion: { major: 2, minor: 40 }, manufacturerId: 'x'.repeat(33), flags: 0n, libraryDescription: '', libraryVersion: { major: 0, minor: 1 } }), 'COFFER_P11_LIMIT');
});

test('known answers: attribute values by type (ulong, bool, bytes, date, nested template, NULL, unavailable)', () => {
  const msg = encodeRequest(0, 'C_CreateObject', {
    session: 1n,
    template: [
      { type: CKA.CLASS, value: { kind: 'ulong', value: 3n } },
      { type: CKA.TOKEN, value: { kind: 'byte', value: 1 } },
      { type: CKA.LABEL, value: { kind: 'bytes', value: Uint8Array.of(0x6b) } },
      { type: CKA.END_DATE, value: { kind: 'date', value: new TextEncoder().encode('20301231') } },
      { type: CKA.UNWRAP_TEMPLATE, value: { kind: 'attributes', value: [{ type: CKA.SENSITIVE, value: { kind: 'byte', value: 1 } }] } },
      { type: CKA.ID, lengthOnly: 4 },
      { type: CKA.VALUE, unavailable: true },
    ],
  });
  assert.equal(toHex(msg), toHex(hex(`00000014 00000003 756141 0000000000000001 00000007
    00000000 01 00000008 0000000000000003
    00000001 01 00000001 01
    00000003 01 00000001 00000001 6b
    00000111 01 00000008 00000008 3230333031323331
    40000212 01 00000018 00000001 00000103 01 00000001 01
    00000102 01 00000004 ffffffff
    00000011 00`)));
  const back = decodeRequest(0, msg);
  assert.equal(back.name, 'C_CreateObject');
});

function mech(version: ProtocolVersion, m: Mechanism | null): string {
  const w = new Writer(64);
  writeMechanism(w, version, m);
  return toHex(w.buf.slice(0, w.pos));
}

test('known answers: mechanisms in both encodings (versions 0/1 vs 2, p11-kit 0.25.6)', () => {
  const sha256Rsa: Mechanism = { type: CKM.SHA256_RSA_PKCS, parameter: { kind: 'none' } };
  // 0.24 and 0.25.0-0.25.5: the type, then a NULL byte array; 0.25.6+: the type alone
  assert.equal(mech(0, sha256Rsa), '00000040ffffffff');
  assert.equal(mech(1, sha256Rsa), '00000040ffffffff');
  assert.equal(mech(2, sha256Rsa), '00000040');
  const pss: Mechanism = { type: CKM.RSA_PKCS_PSS, parameter: { kind: 'rsaPss', hashAlg: BigInt(CKM.SHA256), mgf: 2n, sLen: 32n } };
  assert.equal(mech(0, pss), '0000000d' + '0000000000000250' + '0000000000000002' + '0000000000000020');
  assert.equal(mech(2, pss), '0000000d' + '01' + '0000000000000250' + '0000000000000002' + '0000000000000020');
  const oaep: Mechanism = { type: CKM.RSA_PKCS_OAEP, parameter: { kind: 'rsaOaep', hashAlg: BigInt(CKM.SHA256), mgf: 2n, source: 1n, sourceData: null } };
  assert.equal(mech(0, oaep), '00000009' + '0000000000000250' + '0000000000000002' + '0000000000000001' + 'ffffffff');
  const gcm: Mechanism = { type: CKM.AES_GCM, parameter: { kind: 'gcm', iv: new Uint8Array(12), ivBits: 96n, aad: Uint8Array.of(0xaa), tagBits: 128n } };
  assert.equal(mech(2, gcm), '00001087' + '01' + '0000000c' + '00'.repeat(12) + '0000000000000060' + '00000001aa' + '0000000000000080');
  // 0.24 has no GCM layout: a GCM parameter there is an opaque byte array (its client never sends one)
  assert.throws(() => mech(0, gcm));
  // version 2, a mechanism with a parameter slot but none given: has-parameter byte 0
  assert.equal(mech(2, { type: CKM.AES_CBC_PAD, parameter: { kind: 'none' } }), '0000108500');
  // the NULL mechanism (cancel an operation)
  assert.equal(mech(2, null), 'ffffffff');
  for (const v of VERSIONS) {
    for (const m of [sha256Rsa, pss, oaep, null]) {
      const w = new Writer(64);
      writeMechanism(w, v, m);
      const r = reader(w.buf.slice(0, w.pos));
      assert.deepEqual(readMechanism(r, v), m);
    }
  }
});

test('a 0.25.6 mechanism read as 0.24 (and the reverse) does not decode to the same thing', () => {
  const w = new Writer(64);
  writeMechanism(w, 2, { type: CKM.SHA256_RSA_PKCS, parameter: { kind: 'none' } });
  throwsP11(() => readMechanism(reader(w.buf.slice(0, w.pos)), 0), 'COFFER_P11_MESSAGE_MALFORMED');
  const w0 = new Writer(64);
  writeMechanism(w0, 0, { type: CKM.AES_KEY_GEN, parameter: { kind: 'none' } });
  const r = reader(w0.buf.slice(0, w0.pos));
  readMechanism(r, 2);
  assert.notEqual(r.at, w0.pos, 'version 2 stops after the type, leaving the NULL byte array unread');
});

test('every call round-trips, request and response, in every version that defines it', () => {
  for (const v of VERSIONS) {
    for (const c of CALLS) {
      if (!callInVersion(c, v)) continue;
      const name = c.name as CallName;
      const req = sampleFields(c.request, v);
      const reqBytes = encodeRequest(v, name, req as never);
      const back = decodeRequest(v, reqBytes);
      assert.equal(back.name, name);
      assert.deepEqual(back.request, req, `${name} request v${v}`);
      const res = sampleFields(c.response, v);
      const resBytes = encodeResponse(v, name, res as never);
      const dec = decodeResponse(v, name, resBytes, CKM.ECDH1_DERIVE);
      assert.ok('response' in dec);
      assert.deepEqual(dec.response, res, `${name} response v${v}`);
    }
  }
});

test('refused: damaged and truncated messages give typed errors only', () => {
  const good = encodeRequest(2, 'C_CreateObject', sampleFields(CALLS[20].request, 2) as never);
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => decodeRequest(2, good.subarray(0, n)), (e: unknown) => isCofferError(e), `truncated at ${n}`);
  }
  throwsP11(() => decodeRequest(2, Uint8Array.from([...good, 0])), 'COFFER_P11_MESSAGE_MALFORMED');
  for (let i = 0; i < good.length; i++) {
    const b = Uint8Array.from(good);
    b[i] = (b[i] ?? 0) ^ 0x80;
    try {
      decodeRequest(2, b);
    } catch (e) {
      assert.ok(isCofferError(e), `byte ${i}: ${String(e)}`);
    }
  }
});

test('refused: unknown call ids, wrong signatures, calls from a later version', () => {
  throwsP11(() => decodeRequest(0, hex('00000000 00000001 75 0000000000000000')), 'COFFER_P11_CALL_UNKNOWN'); // ERROR is no request
  throwsP11(() => decodeRequest(2, hex('0000005a 00000000')), 'COFFER_P11_CALL_UNKNOWN'); // id 90
  throwsP11(() => decodeRequest(0, hex('00000003 00000001 75')), 'COFFER_P11_CALL_UNKNOWN'); // C_GetInfo signed "u"
  throwsP11(() => decodeRequest(0, hex('00000003 ffffffff')), 'COFFER_P11_CALL_UNKNOWN'); // NULL signature
  const loginUser = encodeRequest(1, 'C_LoginUser', sampleFields(CALLS[66].request, 1) as never);
  throwsP11(() => decodeRequest(0, loginUser), 'COFFER_P11_CALL_UNKNOWN');
  const derive2 = encodeRequest(2, 'C_DeriveKey2', sampleFields(CALLS[89].request, 2) as never);
  throwsP11(() => decodeRequest(1, derive2), 'COFFER_P11_CALL_UNKNOWN');
  throwsP11(() => decodeRequest(0, hex('00')), 'COFFER_P11_CALL_UNKNOWN');
});

test('refused: vendor mechanisms and attributes, counts over limits, nesting too deep, bad flags', () => {
  const vendorMech = hex('0000001d 00000003 754d75 0000000000000001 80000001 00 0000000000000002'); // C_EncryptInit, vendor mechanism
  throwsP11(() => decodeRequest(2, vendorMech), 'COFFER_P11_MECHANISM_UNCARRIED');
  const vendorAttr = hex('00000014 00000003 756141 0000000000000001 00000001 80000010 01 00000001 01');
  throwsP11(() => decodeRequest(2, vendorAttr), 'COFFER_P11_ATTRIBUTE_UNCARRIED');
  const manyAttrs = hex('00000014 00000003 756141 0000000000000001 00100000');
  throwsP11(() => decodeRequest(2, manyAttrs), 'COFFER_P11_LIMIT');
  // CKA_WRAP_TEMPLATE nested nine deep
  let nested = '';
  for (let i = 0; i < 9; i++) nested += '00000001 40000211 01 00000018 ';
  throwsP11(() => decodeRequest(2, hex(`00000014 00000003 756141 0000000000000001 ${nested} 00000000`)), 'COFFER_P11_LIMIT');
  // "ay" presence byte that is neither 0 nor 1
  throwsP11(() => decodeRequest(0, hex('00000012 00000004 75756179 0000000000000001 0000000000000001 02 00000000')), 'COFFER_P11_MESSAGE_MALFORMED');
  // au count over its limit
  throwsP11(() => decodeResponse(0, 'C_GetSlotList', hex('00000004 00000002 6175 01 00100001')), 'COFFER_P11_LIMIT');
  // a date that is neither 0 nor 8 bytes
  throwsP11(() => decodeRequest(0, hex('00000014 00000003 756141 0000000000000001 00000001 00000110 01 00000003 00000003 323032')), 'COFFER_P11_MESSAGE_MALFORMED');
});

test('fA: template buffers nest under version 2, are flat under 0, and are refused under 1 (0.25.0-0.25.5 differ)', () => {
  const flat = hex('00000018 00000004 75756641 0000000000000001 0000000000000002 00000001 40000211 00000030');
  assert.deepEqual(decodeRequest(0, flat).request, { session: 1n, object: 2n, template: [{ type: CKA.WRAP_TEMPLATE, length: 48 }] });
  throwsP11(() => decodeRequest(1, flat), 'COFFER_P11_ATTRIBUTE_UNCARRIED');
  const nested = hex('00000018 00000004 75756641 0000000000000001 0000000000000002 00000001 40000211 00000030 00000001 00000000 00000008');
  assert.deepEqual(decodeRequest(2, nested).request, {
    session: 1n, object: 2n, template: [{ type: CKA.WRAP_TEMPLATE, length: 48, template: [{ type: CKA.CLASS, length: 8 }] }],
  });
});

test('CKA_DERIVE_TEMPLATE is a byte array for 0.24 clients and a template from 0.25.0', () => {
  const asBytes = hex('00000014 00000003 756141 0000000000000001 00000001 40000213 01 00000002 00000002 0102');
  const v0 = decodeRequest(0, asBytes).request as { template: unknown };
  assert.deepEqual(v0.template, [{ type: CKA.DERIVE_TEMPLATE, value: { kind: 'bytes', value: Uint8Array.of(1, 2) } }]);
  const asTemplate = hex('00000014 00000003 756141 0000000000000001 00000001 40000213 01 00000018 00000001 00000001 01 00000001 01');
  const v1 = decodeRequest(1, asTemplate).request as { template: unknown };
  assert.deepEqual(v1.template, [{ type: CKA.DERIVE_TEMPLATE, value: { kind: 'attributes', value: [{ type: CKA.TOKEN, value: { kind: 'byte', value: 1 } }] } }]);
});

test('the codec context budget counts nested attributes too', () => {
  const ctx = codecContext(2);
  assert.ok(ctx.attributesLeft > 0);
});
