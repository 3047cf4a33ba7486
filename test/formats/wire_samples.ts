// One sample request and response for every wire operation, and one parameter set for every
// mechanism. The mapped types make the compiler refuse a sample table that misses one, so the
// round-trip tests cover each operation and mechanism the protocol defines.

import type { OpName, WireMechanismParams, WireRequest, WireResponse } from '../../src/formats/wire.js';

const b = (...xs: number[]): Uint8Array => new Uint8Array(xs);
const attrs = {
  token: true, sensitive: true, extractable: false, encrypt: true, decrypt: true, sign: false, verify: false, wrap: true, unwrap: true,
  derive: false, trusted: false, wrapWithTrusted: true, local: true, neverExtractable: true, alwaysSensitive: true, modifiable: false, destroyable: true,
};

type MechanismName = WireMechanismParams['mechanism'];
export const MECHANISM_SAMPLES: { [M in MechanismName]: WireMechanismParams & { readonly mechanism: M } } = {
  CKM_AES_GCM: { mechanism: 'CKM_AES_GCM', iv: b(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), aad: b(0xaa), tagBytes: 16 },
  CKM_AES_CBC_PAD: { mechanism: 'CKM_AES_CBC_PAD', iv: new Uint8Array(16).fill(7) },
  CKM_AES_CTR: { mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16).fill(1), counterBits: 32 },
  CKM_AES_CMAC: { mechanism: 'CKM_AES_CMAC' },
  CKM_AES_KEY_WRAP: { mechanism: 'CKM_AES_KEY_WRAP' },
  CKM_AES_KEY_WRAP_PAD: { mechanism: 'CKM_AES_KEY_WRAP_PAD' },
  CKM_AES_CBC: { mechanism: 'CKM_AES_CBC', iv: new Uint8Array(16).fill(9) },
  CKM_AES_ECB: { mechanism: 'CKM_AES_ECB' },
  CKM_RSA_PKCS: { mechanism: 'CKM_RSA_PKCS' },
  CKM_SHA224_RSA_PKCS: { mechanism: 'CKM_SHA224_RSA_PKCS' },
  CKM_SHA256_RSA_PKCS: { mechanism: 'CKM_SHA256_RSA_PKCS' },
  CKM_SHA384_RSA_PKCS: { mechanism: 'CKM_SHA384_RSA_PKCS' },
  CKM_SHA512_RSA_PKCS: { mechanism: 'CKM_SHA512_RSA_PKCS' },
  CKM_RSA_PKCS_PSS: { mechanism: 'CKM_RSA_PKCS_PSS', hash: 'SHA-384', saltBytes: 48 },
  CKM_SHA224_RSA_PKCS_PSS: { mechanism: 'CKM_SHA224_RSA_PKCS_PSS' },
  CKM_SHA256_RSA_PKCS_PSS: { mechanism: 'CKM_SHA256_RSA_PKCS_PSS', saltBytes: 32 },
  CKM_SHA384_RSA_PKCS_PSS: { mechanism: 'CKM_SHA384_RSA_PKCS_PSS', saltBytes: 0 },
  CKM_SHA512_RSA_PKCS_PSS: { mechanism: 'CKM_SHA512_RSA_PKCS_PSS', saltBytes: 64 },
  CKM_RSA_PKCS_OAEP: { mechanism: 'CKM_RSA_PKCS_OAEP', hash: 'SHA-1', label: b(1, 2) },
  CKM_ECDSA: { mechanism: 'CKM_ECDSA' },
  CKM_ECDSA_SHA224: { mechanism: 'CKM_ECDSA_SHA224' },
  CKM_ECDSA_SHA256: { mechanism: 'CKM_ECDSA_SHA256' },
  CKM_ECDSA_SHA384: { mechanism: 'CKM_ECDSA_SHA384' },
  CKM_ECDSA_SHA512: { mechanism: 'CKM_ECDSA_SHA512' },
  CKM_EDDSA: { mechanism: 'CKM_EDDSA' },
  CKM_SHA224_HMAC: { mechanism: 'CKM_SHA224_HMAC' },
  CKM_SHA256_HMAC: { mechanism: 'CKM_SHA256_HMAC' },
  CKM_SHA384_HMAC: { mechanism: 'CKM_SHA384_HMAC' },
  CKM_SHA512_HMAC: { mechanism: 'CKM_SHA512_HMAC' },
  CKM_SHA224: { mechanism: 'CKM_SHA224' },
  CKM_SHA256: { mechanism: 'CKM_SHA256' },
  CKM_SHA384: { mechanism: 'CKM_SHA384' },
  CKM_SHA512: { mechanism: 'CKM_SHA512' },
  CKM_ECDH1_DERIVE: { mechanism: 'CKM_ECDH1_DERIVE', publicKey: new Uint8Array(65).fill(4) },
  CKM_HKDF_DERIVE: { mechanism: 'CKM_HKDF_DERIVE', hash: 'SHA-256', info: b(9, 9) },
  CKM_SP800_108_COUNTER_KDF: { mechanism: 'CKM_SP800_108_COUNTER_KDF', label: b(1), context: new Uint8Array(0) },
};

const id16 = (v: number): Uint8Array => new Uint8Array(16).fill(v);
const lineage = new Uint8Array(32).fill(0x3c);
const info = {
  handle: 2 ** 53 - 1, identity: id16(0xa1), class: 'PRIVATE_KEY', keyType: 'EC', bits: 256, curve: 'P-256', label: 'signing-key é', id: b(1, 2, 3),
  attributes: attrs, kcv: b(0xab, 0xcd, 0xef), owner: 'alice', sharees: ['bob', 'carol'], manageKeyQuorum: 0, useKeyQuorum: 2,
} as const;
const { curve: _curve, ...infoNoCurve } = { ...info, handle: 9, keyType: 'AES', class: 'SECRET_KEY', bits: 128 } as const;
const tokenBytes = new Uint8Array(60).fill(0x5a);

export const OP_SAMPLES: { [N in OpName]: { request: WireRequest<N>; response: WireResponse<N> } } = {
  HELLO: { request: { versionMin: 1, versionMax: 1 }, response: { version: 1, frameBytesMax: 1 << 24, inFlightMax: 256, batchItemsMax: 1024, sessionsMax: 64 } },
  STATUS: {
    request: {},
    response: {
      provisioning: 'COMMISSIONED', serial: 'SN-0001', mode: 'FIPS', usersInitialised: true, activated: true, cluster: 'INITIALISED',
      clusterId: 'cluster-abc234def56', tokenObjects: 12, sessions: 3,
      inFlight: 17, inFlightMax: 4096, connections: 2, capacityOpsPerSecond: 29_000, loadPermille: 512,
      journalPosition: 2n ** 64n - 1n, stateLineage: lineage, objectLineage: new Uint8Array(32).fill(0x5d),
      journal: { mode: 'relayed', head: { seq: 2n ** 64n - 1n, hash: new Uint8Array(32).fill(0x3c) } },
    },
  },
  JOURNAL_WAIT: {
    request: { seq: 41n, waitMs: 5000 },
    response: { mode: 'relayed', head: { seq: 42n, hash: new Uint8Array(32).fill(0x42) }, reached: true, hashAtSeq: new Uint8Array(32).fill(0x41) },
  },
  OPEN_SESSION: { request: {}, response: { session: 7 } },
  CLOSE_SESSION: { request: { session: 7 }, response: {} },
  LOGIN: { request: { session: 1, name: 'Alice', password: new TextEncoder().encode('correct horse'), role: 'crypto-user' }, response: { userId: 'alice', role: 'crypto-user' } },
  LOGOUT: { request: { session: 1 }, response: {} },
  ACTIVATE: { request: { preCoPassword: new TextEncoder().encode('preco-password'), newPassword: new TextEncoder().encode('admin-password') }, response: {} },
  CREATE_USER: { request: { session: 1, name: 'bob', password: b(0x70, 0x61, 0x73, 0x73, 0x77, 0x6f, 0x72, 0x64), role: 'admin' }, response: { position: { seq: 9n, hash: new Uint8Array(32).fill(0x09) } } },
  DELETE_USER: { request: { session: 1, name: 'bob' }, response: {} },
  LIST_USERS: {
    request: { session: 1 },
    response: { users: [{ name: 'admin', role: 'admin', locked: false, failedLogins: 0, quorumKeyRegistered: true }, { name: 'bob', role: 'crypto-user', locked: true, failedLogins: 5, quorumKeyRegistered: false }] },
  },
  CHANGE_PASSWORD: { request: { session: 1, name: 'bob', newPassword: b(1, 2, 3, 4, 5, 6, 7, 8) }, response: {} },
  CHANGE_OWN_PASSWORD: { request: { session: 1, currentPassword: b(1, 2, 3, 4, 5, 6, 7, 8), newPassword: b(8, 7, 6, 5, 4, 3, 2, 1) }, response: {} },
  UNLOCK_USER: { request: { session: 1, name: 'bob' }, response: {} },
  REGISTER_QUORUM_KEY: { request: { session: 1, spkiDer: new Uint8Array(91).fill(0x30) }, response: {} },
  SET_QUORUM_VALUE: { request: { session: 1, service: 'quorum', m: 2 }, response: {} },
  QUORUM_VALUES: { request: { session: 1 }, response: { user: 2, quorum: 0 } },
  GENERATE_QUORUM_TOKEN: {
    request: { session: 1, service: 'key-usage', handle: 42 },
    response: { id: '00112233445566778899aabbccddeeff', bytes: tokenBytes, service: 'key-usage', requester: 'alice', handle: 42, expiresAtMs: 1_764_000_000_123 },
  },
  APPROVE_QUORUM_TOKEN: { request: { session: 1, token: tokenBytes, approverName: 'bob', signature: new Uint8Array(256).fill(3) }, response: { approvals: 1 } },
  LIST_QUORUM_TOKENS: {
    request: { session: 1 },
    response: { tokens: [{ id: 'aa', service: 'user', requester: 'admin', expiresAtMs: 2 ** 53 - 1, approvals: 0 }, { id: 'bb', service: 'key-management', requester: 'alice', handle: 9, expiresAtMs: 0, approvals: 3 }] },
  },
  GENERATE_KEY: { request: { session: 1, spec: { keyType: 'AES', bits: 256 }, template: { label: 'k', token: false, extractable: false, manageKeyQuorum: 2 } }, response: { handle: 1, identity: id16(1), position: { seq: 3n, hash: new Uint8Array(32).fill(0x03) } } },
  GENERATE_KEY_PAIR: {
    request: { session: 1, spec: { keyType: 'RSA', bits: 3072, publicExponent: 65537 }, publicTemplate: { verify: true }, privateTemplate: { sign: true, sensitive: true, id: b(7) } },
    response: { publicHandle: 2, privateHandle: 3, publicIdentity: id16(2), privateIdentity: id16(3) },
  },
  IMPORT_PUBLIC_KEY: { request: { session: 1, key: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n', template: {} }, response: { handle: 4, identity: id16(4) } },
  IMPORT_PRIVATE_KEY: { request: { session: 1, key: new Uint8Array(138).fill(0x42), template: { derive: true } }, response: { handle: 5, identity: id16(5) } },
  FIND: { request: { session: 1, filter: { keyType: 'EC', sign: true, label: 'signing-key é' }, afterHandle: 100, limit: 50 }, response: { objects: [info, infoNoCurve], more: true, journalPosition: 7n, objectLineage: lineage } },
  IMPORT_CERTIFICATE: {
    request: { session: 1, certificate: new Uint8Array(300).fill(0x30), template: { label: 'leaf', id: Uint8Array.of(1, 2), category: 1, subject: Uint8Array.of(0x30, 0) } },
    response: { handle: 9, identity: id16(9) },
  },
  GET_CERTIFICATE: { request: { session: 1, handle: 9, identity: id16(9) }, response: { certificate: new Uint8Array(300).fill(0x30), category: 1 } },
  GET_ATTRIBUTES: { request: { session: 1, handle: 2 ** 40 + 3, identity: id16(0xa1) }, response: info },
  SET_ATTRIBUTE: { request: { session: 1, handle: 5, name: 'label', value: 'renamed', identity: id16(5) }, response: {} },
  SHARE: { request: { session: 1, handle: 5, userName: 'bob' }, response: {} },
  UNSHARE: { request: { session: 1, handle: 5, userName: 'bob' }, response: {} },
  DESTROY: { request: { session: 1, handle: 5 }, response: {} },
  EXPORT_PLAINTEXT: { request: { session: 1, handle: 5 }, response: { key: new Uint8Array(32).fill(0x11) } },
  EXPORT_PUBLIC: { request: { session: 1, handle: 2 }, response: { pem: '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n' } },
  WRAP_KEY: { request: { session: 1, wrappingHandle: 1, targetHandle: 5, params: MECHANISM_SAMPLES.CKM_AES_KEY_WRAP_PAD, identities: { target: id16(5) } }, response: { wrapped: new Uint8Array(40).fill(9) } },
  UNWRAP_KEY: {
    request: { session: 1, unwrappingHandle: 1, wrapped: new Uint8Array(40).fill(9), params: MECHANISM_SAMPLES.CKM_RSA_PKCS_OAEP, template: { class: 'PRIVATE_KEY', keyType: 'EC', curve: 'secp256k1', sign: true } },
    response: { handle: 6, identity: id16(6) },
  },
  DERIVE_KEY: { request: { session: 1, baseHandle: 6, params: MECHANISM_SAMPLES.CKM_ECDH1_DERIVE, template: { keyType: 'AES', bits: 128, encrypt: true }, identity: id16(6) }, response: { handle: 7, identity: id16(7) } },
  COPY_OBJECT: { request: { session: 1, handle: 0x1_0000_0004, template: { token: true, label: 'kept', id: b(1, 2), modifiable: false }, identity: id16(4) }, response: { handle: 8, identity: id16(8) } },
  SIGN: { request: { session: 1, handle: 3, params: MECHANISM_SAMPLES.CKM_ECDSA_SHA256, data: new Uint8Array(32).fill(0xee) }, response: { signature: new Uint8Array(64).fill(0x5c) } },
  VERIFY: { request: { session: 1, handle: 2, params: MECHANISM_SAMPLES.CKM_SHA256_RSA_PKCS_PSS, data: b(1, 2, 3), signature: new Uint8Array(384).fill(1) }, response: { valid: false } },
  ENCRYPT: { request: { session: 1, handle: 1, params: MECHANISM_SAMPLES.CKM_AES_GCM, data: b(1, 2, 3) }, response: { data: new Uint8Array(31).fill(2) } },
  DECRYPT: { request: { session: 1, handle: 1, params: MECHANISM_SAMPLES.CKM_AES_CBC_PAD, data: new Uint8Array(32) }, response: { data: new Uint8Array(0) } },
  DIGEST: { request: { session: 1, params: MECHANISM_SAMPLES.CKM_SHA512, data: b(0x61, 0x62, 0x63) }, response: { digest: new Uint8Array(64).fill(0xdd) } },
  RANDOM: { request: { session: 1, length: 48 }, response: { bytes: new Uint8Array(48).fill(0x77) } },
  SIGN_BATCH: {
    request: { session: 1, items: [{ handle: 3, params: MECHANISM_SAMPLES.CKM_EDDSA, data: b(1), identity: id16(3) }, { handle: 4, params: MECHANISM_SAMPLES.CKM_SHA256_HMAC, data: b(2) }] },
    response: { results: [{ ok: true, value: new Uint8Array(64).fill(1) }, { ok: false, error: { code: 'COFFER_KEY_FUNCTION_NOT_PERMITTED', detail: [{ key: 'handle', value: 4 }] } }] },
  },
  VERIFY_BATCH: {
    request: { session: 1, items: [{ handle: 2, params: MECHANISM_SAMPLES.CKM_ECDSA, data: new Uint8Array(32), signature: new Uint8Array(64) }] },
    response: { results: [{ ok: true, value: true }, { ok: true, value: false }, { ok: false, error: { code: 'COFFER_OBJECT_NOT_FOUND', detail: [{ key: 'retry', value: false }, { key: 'x', value: 'y' }] } }] },
  },
  ENCRYPT_BATCH: { request: { session: 1, items: [{ handle: 1, params: MECHANISM_SAMPLES.CKM_AES_CTR, data: b(5) }] }, response: { results: [{ ok: true, value: b(6) }] } },
  DECRYPT_BATCH: { request: { session: 1, items: [] }, response: { results: [] } },
};
