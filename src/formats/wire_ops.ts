// The data-plane operations and their payload codecs (docs/wire-protocol.md "Operations").
//
// One table keyed by operation name gives each operation its u16 code, its request codec and its
// response codec. The value types mirror the device's vocabulary (hsm/types.ts, hsm/device.ts
// Session) field for field, but are declared here because formats/ sits below hsm/ and may not
// import it; the node layer passes them to the device, so the compiler checks the two stay in step.
// Codes and enumeration orders are part of protocol version 1: append, never renumber.

import { assert } from '../assert.js';
import {
  CRYPTO_CIPHERTEXT_BYTES_MAX, CRYPTO_INPUT_BYTES_MAX, GCM_IV_BYTES_MAX, KCV_BYTES_MAX, KEY_MATERIAL_BYTES_MAX, LABEL_BYTES_MAX, MECHANISM_PARAM_BYTES_MAX,
  OBJECT_ID_BYTES_MAX, OBJECT_UID_BYTES, QUORUM_KEY_BYTES_MAX, QUORUM_SIGNATURE_BYTES_MAX, QUORUM_TOKENS_MAX, RANDOM_BYTES_MAX, SHAREES_MAX, USERS_MAX,
  WIRE_BATCH_ITEMS_MAX, WIRE_ERROR_DETAIL_ENTRIES_MAX, WIRE_FIND_RESULTS_MAX, WIRE_FRAME_BYTES_MAX, WIRE_JOURNAL_WAIT_MS_MAX, WIRE_NAME_BYTES_MAX,
  WIRE_PASSWORD_BYTES_MAX, WIRE_PEM_BYTES_MAX, WIRE_RETRY_AFTER_MS_MAX, WIRE_SIGNATURE_BYTES_MAX, WIRE_TEXT_BYTES_MAX, WRAPPED_KEY_BYTES_MAX,
} from './limits.js';
import { fail } from '../errors.js';
import { CERTIFICATE_OBJECT_BYTES_MAX } from './certificate_fields.js';
import type { MechanismParams } from './mechanism_params.js';
import {
  bool, bytes, enumeration, f64, fixedBytes, list, mapped, opt, secretBytes, string, struct, tagged, trailing, u16, u32, u64, u64big, u8, type Codec, type Infer, type OptCodec, type StructCodec,
} from './wire_codec.js';

// ── vocabulary ──────────────────────────────────────────────────────────────────────────────

const hashName = enumeration(['SHA-1', 'SHA-224', 'SHA-256', 'SHA-384', 'SHA-512'] as const);
const objectClass = enumeration(['SECRET_KEY', 'PRIVATE_KEY', 'PUBLIC_KEY', 'CERTIFICATE'] as const);
const keyType = enumeration(['AES', 'GENERIC_SECRET', 'RSA', 'EC', 'EC_EDWARDS'] as const);
const curve = enumeration(['P-256', 'P-384', 'P-521', 'secp256k1', 'Ed25519'] as const);
const role = enumeration(['admin', 'crypto-user', 'appliance', 'unactivated-admin'] as const);
const managedRole = enumeration(['admin', 'crypto-user'] as const);
const quorumService = enumeration(['user', 'quorum', 'key-management', 'key-usage'] as const);
const adminService = enumeration(['user', 'quorum'] as const);
const provisioningState = enumeration(['NEW', 'IDENTIFIED', 'MANUFACTURED', 'COMMISSIONED'] as const);
const mode = enumeration(['FIPS', 'NON_FIPS'] as const);
const clusterState = enumeration(['UNINITIALISED', 'CSR_ISSUED', 'INITIALISED'] as const);

const session = u32; // a connection-local session number, given by OPEN_SESSION
/** Object handles are u64 (≤ 2^53 − 1): the device numbers session objects from 2^40 (hsm/objects/objects.ts),
 * so a u32 could not name them; the codec refuses a value JS cannot hold exactly. */
const handle = u64;
/** An object's identity (formats/object_record.ts objectIdentity): fixed at creation, the same on every HSM. */
const identity = fixedBytes(OBJECT_UID_BYTES);
/** A state position's lineage (formats/change_set.ts): SHA-256 of the change sets applied. */
const lineage = fixedBytes(32);
/** A position in the cluster journal: a sequence number and the chain hash of the entry there
 * (docs/journal-format.md "The chain"). */
const journalHead = struct({ seq: u64big, hash: fixedBytes(32) });
/** How the node's journal is ordered: 'off' (the cluster has no sync key: no journal), 'solo' (the
 * device orders its own entries), 'relayed' (the control plane orders the cluster's). */
const journalMode = enumeration(['off', 'solo', 'relayed'] as const);
/** The trailing extension of every state-changing answer: the entry that made the change, when it made one. */
const position = trailing(journalHead);
const changed = struct({ position });
const name = string(WIRE_NAME_BYTES_MAX);
const text = string(WIRE_TEXT_BYTES_MAX);
const password = secretBytes(WIRE_PASSWORD_BYTES_MAX);
const data = bytes(CRYPTO_INPUT_BYTES_MAX);
/** DECRYPT's input: what ENCRYPT of the largest `data` can return (IV, tag, padding), so every
 * ciphertext this protocol produced can be sent back; the device checks the mechanism's own bound. */
const ciphertext = bytes(CRYPTO_CIPHERTEXT_BYTES_MAX);
/** Outputs of crypto calls: bounded only by the frame (ciphertext = input + IV, tag or padding). */
const output = bytes(WIRE_FRAME_BYTES_MAX);
const empty = struct({});

// ── mechanism parameters (hsm/types.ts MechanismParams): u16 code, then the variant's fields ──

const paramBytes = bytes(MECHANISM_PARAM_BYTES_MAX);
const iv = bytes(GCM_IV_BYTES_MAX);
const none = {};
/** [code, mechanism, fields]. The code's high byte names the family (docs/wire-protocol.md). */
const MECHANISMS = [
  [0x0101, 'CKM_AES_GCM', { iv: opt(iv), aad: opt(data), tagBytes: opt(u8) }],
  [0x0102, 'CKM_AES_CBC_PAD', { iv }],
  [0x0103, 'CKM_AES_CTR', { iv, counterBits: opt(u8) }],
  [0x0104, 'CKM_AES_CMAC', none],
  [0x0105, 'CKM_AES_KEY_WRAP', none],
  [0x0106, 'CKM_AES_KEY_WRAP_PAD', none],
  [0x0107, 'CKM_AES_CBC', { iv }],
  [0x0108, 'CKM_AES_ECB', none],
  [0x0201, 'CKM_RSA_PKCS', none],
  [0x0202, 'CKM_SHA224_RSA_PKCS', none],
  [0x0203, 'CKM_SHA256_RSA_PKCS', none],
  [0x0204, 'CKM_SHA384_RSA_PKCS', none],
  [0x0205, 'CKM_SHA512_RSA_PKCS', none],
  [0x0206, 'CKM_RSA_PKCS_PSS', { hash: hashName, saltBytes: opt(u16) }],
  [0x0207, 'CKM_SHA224_RSA_PKCS_PSS', { saltBytes: opt(u16) }],
  [0x0208, 'CKM_SHA256_RSA_PKCS_PSS', { saltBytes: opt(u16) }],
  [0x0209, 'CKM_SHA384_RSA_PKCS_PSS', { saltBytes: opt(u16) }],
  [0x020a, 'CKM_SHA512_RSA_PKCS_PSS', { saltBytes: opt(u16) }],
  [0x020b, 'CKM_RSA_PKCS_OAEP', { hash: hashName, label: opt(paramBytes) }],
  [0x0301, 'CKM_ECDSA', none],
  [0x0302, 'CKM_ECDSA_SHA224', none],
  [0x0303, 'CKM_ECDSA_SHA256', none],
  [0x0304, 'CKM_ECDSA_SHA384', none],
  [0x0305, 'CKM_ECDSA_SHA512', none],
  [0x0306, 'CKM_EDDSA', none],
  [0x0401, 'CKM_SHA224_HMAC', none],
  [0x0402, 'CKM_SHA256_HMAC', none],
  [0x0403, 'CKM_SHA384_HMAC', none],
  [0x0404, 'CKM_SHA512_HMAC', none],
  [0x0501, 'CKM_SHA224', none],
  [0x0502, 'CKM_SHA256', none],
  [0x0503, 'CKM_SHA384', none],
  [0x0504, 'CKM_SHA512', none],
  [0x0601, 'CKM_ECDH1_DERIVE', { publicKey: paramBytes }],
  [0x0602, 'CKM_HKDF_DERIVE', { hash: hashName, salt: opt(paramBytes), info: opt(paramBytes) }],
  [0x0603, 'CKM_SP800_108_COUNTER_KDF', { label: paramBytes, context: paramBytes }],
] as const;

/** The device's MechanismParams, one definition for both (formats/mechanism_params.ts). */
export type WireMechanismParams = MechanismParams;

/** Every mechanism name with its wire code (tests and docs iterate it). */
export const MECHANISM_CODES: ReadonlyMap<WireMechanismParams['mechanism'], number> = new Map(MECHANISMS.map(([c, n]) => [n, c]));

function mechanismCodec(): Codec<WireMechanismParams> {
  type Entry = { readonly code: number; readonly mechanism: string; readonly fields: StructCodec<Record<string, unknown>> };
  const byName = new Map<string, Entry>();
  const byCode = new Map<number, Entry>();
  for (const [code, mechanism, fields] of MECHANISMS) {
    const entry: Entry = { code, mechanism, fields: struct(fields as Record<string, Codec<unknown>>) };
    assert(!byCode.has(code) && !byName.has(mechanism), 'mechanism codes and names are unique');
    byName.set(mechanism, entry);
    byCode.set(code, entry);
  }
  return {
    write: (w, v) => {
      const entry = byName.get(v.mechanism);
      if (entry === undefined) fail('COFFER_MECHANISM_INVALID');
      w.u16(entry.code);
      entry.fields.write(w, v);
    },
    read: (r) => {
      const entry = byCode.get(r.u16());
      if (entry === undefined) fail('COFFER_MECHANISM_INVALID');
      const o: Record<string, unknown> = { mechanism: entry.mechanism };
      entry.fields.readInto(r, o);
      return o as unknown as WireMechanismParams;
    },
  };
}
const mechanism = mechanismCodec();

// ── objects ─────────────────────────────────────────────────────────────────────────────────

/** hsm/types.ts BooleanAttributes, in bit order (bit 0 = token): a u32 mask in ObjectInfo. */
export const BOOLEAN_ATTRIBUTES = [
  'token', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive', 'trusted',
  'wrapWithTrusted', 'local', 'neverExtractable', 'alwaysSensitive', 'modifiable', 'destroyable',
] as const;
export type WireBooleanAttributes = { [K in (typeof BOOLEAN_ATTRIBUTES)[number]]: boolean };
const booleanAttributes: Codec<Readonly<WireBooleanAttributes>> = mapped(
  u32,
  (mask) => {
    if (mask >>> BOOLEAN_ATTRIBUTES.length !== 0) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown attribute bits' });
    const o: Record<string, boolean> = {};
    BOOLEAN_ATTRIBUTES.forEach((n, i) => (o[n] = ((mask >>> i) & 1) === 1));
    return o as WireBooleanAttributes;
  },
  (a) => BOOLEAN_ATTRIBUTES.reduce((m, n, i) => (a[n] ? m | (1 << i) : m), 0) >>> 0,
);

/** hsm/objects/attributes.ts ObjectTemplate without sessionId (the node scopes session objects itself). */
const templateFields = {
  label: opt(string(LABEL_BYTES_MAX)), id: opt(bytes(OBJECT_ID_BYTES_MAX)), token: opt(bool), sensitive: opt(bool),
  extractable: opt(bool), encrypt: opt(bool), decrypt: opt(bool), sign: opt(bool), verify: opt(bool), wrap: opt(bool),
  unwrap: opt(bool), derive: opt(bool), trusted: opt(bool), wrapWithTrusted: opt(bool), modifiable: opt(bool),
  destroyable: opt(bool), manageKeyQuorum: opt(u8), useKeyQuorum: opt(u8),
};
const template = struct(templateFields);
const unwrapTemplate = struct({ ...templateFields, class: objectClass, keyType, curve: opt(curve) });
const deriveTemplate = struct({ ...templateFields, keyType: enumeration(['AES', 'GENERIC_SECRET'] as const), bits: u16 });
/** hsm/objects/attributes.ts CopyTemplate without sessionId. */
const copyTemplate = struct({ label: opt(string(LABEL_BYTES_MAX)), id: opt(bytes(OBJECT_ID_BYTES_MAX)), token: opt(bool), modifiable: opt(bool), destroyable: opt(bool) });

/** hsm/objects/attributes.ts CertificateTemplate without sessionId (as `template`). */
const certificateTemplate = struct({
  label: opt(string(LABEL_BYTES_MAX)), id: opt(bytes(OBJECT_ID_BYTES_MAX)), token: opt(bool), modifiable: opt(bool), destroyable: opt(bool),
  category: opt(u8), subject: opt(bytes(CERTIFICATE_OBJECT_BYTES_MAX)), issuer: opt(bytes(CERTIFICATE_OBJECT_BYTES_MAX)),
  serialNumber: opt(bytes(CERTIFICATE_OBJECT_BYTES_MAX)),
});

const objectInfo = struct({
  handle, identity, class: objectClass, keyType, bits: u16, curve: opt(curve), label: string(LABEL_BYTES_MAX), id: bytes(OBJECT_ID_BYTES_MAX),
  attributes: booleanAttributes, kcv: bytes(KCV_BYTES_MAX), owner: name, sharees: list(name, SHAREES_MAX), manageKeyQuorum: u8, useKeyQuorum: u8,
});
const filter = struct({
  handle: opt(handle), label: opt(string(LABEL_BYTES_MAX)), id: opt(bytes(OBJECT_ID_BYTES_MAX)), class: opt(objectClass), keyType: opt(keyType),
  ...Object.fromEntries(BOOLEAN_ATTRIBUTES.map((n) => [n, opt(bool)])) as { [K in (typeof BOOLEAN_ATTRIBUTES)[number]]: OptCodec<boolean> },
});

const keyPairSpec = tagged<
  | { readonly keyType: 'RSA'; readonly bits: number; readonly publicExponent?: number }
  | { readonly keyType: 'EC'; readonly curve: 'P-256' | 'P-384' | 'P-521' | 'secp256k1' }
  | { readonly keyType: 'EC_EDWARDS'; readonly curve: 'Ed25519' }
>([
  { is: (v) => v.keyType === 'RSA', codec: struct({ keyType: enumeration(['RSA'] as const), bits: u16, publicExponent: opt(u32) }) },
  { is: (v) => v.keyType === 'EC', codec: struct({ keyType: enumeration(['EC'] as const), curve: enumeration(['P-256', 'P-384', 'P-521', 'secp256k1'] as const) }) },
  { is: (v) => v.keyType === 'EC_EDWARDS', codec: struct({ keyType: enumeration(['EC_EDWARDS'] as const), curve: enumeration(['Ed25519'] as const) }) },
]);

/** A key to import: DER bytes or PEM text (PEM of a private key is a JS string: not zeroisable). */
function keyInput(der: Codec<Uint8Array>): Codec<Uint8Array | string> {
  return tagged<Uint8Array | string>([
    { is: (v) => v instanceof Uint8Array, codec: der },
    { is: (v) => typeof v === 'string', codec: string(WIRE_PEM_BYTES_MAX) },
  ]);
}
const settable = enumeration([
  'label', 'id', 'sensitive', 'extractable', 'encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive', 'trusted',
  'wrapWithTrusted', 'modifiable', 'destroyable',
] as const);
const attributeValue = tagged<boolean | string | Uint8Array>([
  { is: (v) => typeof v === 'boolean', codec: bool },
  { is: (v) => typeof v === 'string', codec: string(LABEL_BYTES_MAX) },
  { is: (v) => v instanceof Uint8Array, codec: bytes(OBJECT_ID_BYTES_MAX) },
]);

// ── errors and batches ──────────────────────────────────────────────────────────────────────

/** An error reply (kind ERROR) and a failed batch item: the stable code string of errors.ts and
 * its non-secret detail. The message is not sent: the client takes it from its own registry. */
export const errorPayload = struct({
  code: text,
  detail: list(struct({ key: text, value: tagged<string | number | boolean>([
    { is: (v) => typeof v === 'string', codec: text },
    { is: (v) => typeof v === 'number', codec: f64 },
    { is: (v) => typeof v === 'boolean', codec: bool },
  ]) }), WIRE_ERROR_DETAIL_ENTRIES_MAX),
});
export type WireError = Infer<typeof errorPayload>;

/** A BUSY reply: the node is at capacity; retry after the hint (here or on another node). */
export const busyPayload = mapped(
  u32,
  (retryAfterMs) => {
    if (retryAfterMs > WIRE_RETRY_AFTER_MS_MAX) fail('COFFER_FORMAT_LIMIT', { length: retryAfterMs, max: WIRE_RETRY_AFTER_MS_MAX });
    return { retryAfterMs };
  },
  (v: { readonly retryAfterMs: number }) => v.retryAfterMs,
);

type BatchResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: WireError };
function batchResults<T>(value: Codec<T>): Codec<{ readonly results: readonly BatchResult<T>[] }> {
  const result = tagged<BatchResult<T>>([
    { is: (v) => v.ok, codec: mapped(value, (x) => ({ ok: true, value: x }) as const, (v) => (v as { value: T }).value) },
    { is: (v) => !v.ok, codec: mapped(errorPayload, (e) => ({ ok: false, error: e }) as const, (v) => (v as { error: WireError }).error) },
  ]);
  return struct({ results: list(result, WIRE_BATCH_ITEMS_MAX) });
}
const cryptoItem = struct({ handle, params: mechanism, data, identity: opt(identity) });
/** WRAP_KEY's trailing extension: the identities of the wrapping key and of the key wrapped. */
const wrapIdentities = struct({ wrapping: opt(identity), target: opt(identity) });
const dataOut = struct({ data: output });

// ── the operations ──────────────────────────────────────────────────────────────────────────

function op<Q, S>(code: number, request: Codec<Q>, response: Codec<S>): { readonly code: number; readonly request: Codec<Q>; readonly response: Codec<S> } {
  return { code, request, response };
}
const inSession = struct({ session });
/** A request on one object: its handle, and (a trailing extension) the identity the caller means. */
const onObject = struct({ session, handle, identity: trailing(identity) });
const handleOut = struct({ handle, identity, position });
/** JOURNAL_WAIT's wait: at most WIRE_JOURNAL_WAIT_MS_MAX (a longer one is malformed, not shortened). */
const journalWaitMs = mapped(
  u32,
  (waitMs) => {
    if (waitMs > WIRE_JOURNAL_WAIT_MS_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'waitMs', length: waitMs, max: WIRE_JOURNAL_WAIT_MS_MAX });
    return waitMs;
  },
  (waitMs: number) => waitMs,
);

export const OPS = {
  HELLO: op(0x0001, struct({ versionMin: u16, versionMax: u16 }), struct({ version: u16, frameBytesMax: u32, inFlightMax: u16, batchItemsMax: u16, sessionsMax: u16 })),
  STATUS: op(0x0002, empty, struct({
    provisioning: provisioningState, serial: opt(text), mode: opt(mode), usersInitialised: bool, activated: bool, cluster: clusterState, clusterId: opt(text),
    tokenObjects: u32, sessions: u32, inFlight: u32, inFlightMax: u32, connections: u32, capacityOpsPerSecond: u32, loadPermille: u16,
    journalPosition: u64big, stateLineage: lineage, objectLineage: lineage, journal: trailing(struct({ mode: journalMode, head: journalHead })),
  })),
  OPEN_SESSION: op(0x0003, empty, inSession),
  JOURNAL_WAIT: op(0x0005, struct({ seq: u64big, waitMs: journalWaitMs }), struct({
    mode: journalMode, head: journalHead, reached: bool, hashAtSeq: opt(fixedBytes(32)),
  })),
  CLOSE_SESSION: op(0x0004, inSession, empty),
  LOGIN: op(0x0010, struct({ session, name, password, role: opt(role) }), struct({ userId: name, role })),
  LOGOUT: op(0x0011, inSession, empty),
  ACTIVATE: op(0x0012, struct({ preCoPassword: password, newPassword: password }), empty),
  CREATE_USER: op(0x0020, struct({ session, name, password, role: managedRole }), changed),
  DELETE_USER: op(0x0021, struct({ session, name }), changed),
  LIST_USERS: op(0x0022, inSession, struct({ users: list(struct({ name, role, locked: bool, failedLogins: u8, quorumKeyRegistered: bool }), USERS_MAX) })),
  CHANGE_PASSWORD: op(0x0023, struct({ session, name, newPassword: password }), changed),
  CHANGE_OWN_PASSWORD: op(0x0024, struct({ session, currentPassword: password, newPassword: password }), changed),
  UNLOCK_USER: op(0x0025, struct({ session, name }), changed),
  REGISTER_QUORUM_KEY: op(0x0030, struct({ session, spkiDer: bytes(QUORUM_KEY_BYTES_MAX) }), changed),
  SET_QUORUM_VALUE: op(0x0031, struct({ session, service: adminService, m: u8 }), changed),
  QUORUM_VALUES: op(0x0032, inSession, struct({ user: u8, quorum: u8 })),
  GENERATE_QUORUM_TOKEN: op(0x0033, struct({ session, service: quorumService, handle: opt(handle), identity: trailing(identity) }), struct({
    id: text, bytes: bytes(WIRE_TEXT_BYTES_MAX), service: quorumService, requester: name, handle: opt(handle), expiresAtMs: u64,
  })),
  APPROVE_QUORUM_TOKEN: op(0x0034, struct({ session, token: bytes(WIRE_TEXT_BYTES_MAX), approverName: name, signature: bytes(QUORUM_SIGNATURE_BYTES_MAX) }), struct({ approvals: u8 })),
  LIST_QUORUM_TOKENS: op(0x0035, inSession, struct({ tokens: list(struct({
    id: text, service: quorumService, requester: name, handle: opt(handle), expiresAtMs: u64, approvals: u8,
  }), QUORUM_TOKENS_MAX) })),
  GENERATE_KEY: op(0x0040, struct({ session, spec: struct({ keyType: enumeration(['AES', 'GENERIC_SECRET'] as const), bits: u16 }), template }), handleOut),
  GENERATE_KEY_PAIR: op(0x0041, struct({ session, spec: keyPairSpec, publicTemplate: template, privateTemplate: template }), struct({
    publicHandle: handle, privateHandle: handle, publicIdentity: identity, privateIdentity: identity, position,
  })),
  IMPORT_PUBLIC_KEY: op(0x0042, struct({ session, key: keyInput(bytes(KEY_MATERIAL_BYTES_MAX)), template }), handleOut),
  IMPORT_PRIVATE_KEY: op(0x0043, struct({ session, key: keyInput(secretBytes(KEY_MATERIAL_BYTES_MAX)), template }), handleOut),
  FIND: op(0x0044, struct({ session, filter, afterHandle: opt(handle), limit: u16 }), struct({
    objects: list(objectInfo, WIRE_FIND_RESULTS_MAX), more: bool, journalPosition: u64big, objectLineage: lineage,
  })),
  GET_ATTRIBUTES: op(0x0045, onObject, objectInfo),
  SET_ATTRIBUTE: op(0x0046, struct({ session, handle, name: settable, value: attributeValue, identity: trailing(identity) }), changed),
  SHARE: op(0x0047, struct({ session, handle, userName: name, identity: trailing(identity) }), changed),
  UNSHARE: op(0x0048, struct({ session, handle, userName: name, identity: trailing(identity) }), changed),
  DESTROY: op(0x0049, onObject, changed),
  EXPORT_PLAINTEXT: op(0x004a, onObject, struct({ key: secretBytes(KEY_MATERIAL_BYTES_MAX) })),
  EXPORT_PUBLIC: op(0x004b, onObject, struct({ pem: string(WIRE_PEM_BYTES_MAX) })),
  WRAP_KEY: op(0x004c, struct({ session, wrappingHandle: handle, targetHandle: handle, params: mechanism, identities: trailing(wrapIdentities) }), struct({ wrapped: bytes(WRAPPED_KEY_BYTES_MAX) })),
  UNWRAP_KEY: op(0x004d, struct({ session, unwrappingHandle: handle, wrapped: bytes(WRAPPED_KEY_BYTES_MAX), params: mechanism, template: unwrapTemplate, identity: trailing(identity) }), handleOut),
  DERIVE_KEY: op(0x004e, struct({ session, baseHandle: handle, params: mechanism, template: deriveTemplate, identity: trailing(identity) }), handleOut),
  COPY_OBJECT: op(0x004f, struct({ session, handle, template: copyTemplate, identity: trailing(identity) }), handleOut),
  // Certificate objects (docs/device.md "Certificates"): a DER X.509 certificate in, and its DER and
  // CKA_CERTIFICATE_CATEGORY out; everything else (find, attributes, destroy) is the ops above.
  IMPORT_CERTIFICATE: op(0x0070, struct({ session, certificate: bytes(CERTIFICATE_OBJECT_BYTES_MAX), template: certificateTemplate }), handleOut),
  GET_CERTIFICATE: op(0x0071, onObject, struct({ certificate: bytes(CERTIFICATE_OBJECT_BYTES_MAX), category: u8 })),
  SIGN: op(0x0050, struct({ session, handle, params: mechanism, data, identity: trailing(identity) }), struct({ signature: output })),
  VERIFY: op(0x0051, struct({ session, handle, params: mechanism, data, signature: bytes(WIRE_SIGNATURE_BYTES_MAX), identity: trailing(identity) }), struct({ valid: bool })),
  ENCRYPT: op(0x0052, struct({ session, handle, params: mechanism, data, identity: trailing(identity) }), dataOut),
  DECRYPT: op(0x0053, struct({ session, handle, params: mechanism, data: ciphertext, identity: trailing(identity) }), dataOut),
  DIGEST: op(0x0054, struct({ session, params: mechanism, data }), struct({ digest: output })),
  RANDOM: op(0x0055, struct({ session, length: u32 }), struct({ bytes: bytes(RANDOM_BYTES_MAX) })),
  SIGN_BATCH: op(0x0060, struct({ session, items: list(cryptoItem, WIRE_BATCH_ITEMS_MAX) }), batchResults(output)),
  VERIFY_BATCH: op(0x0061, struct({ session, items: list(struct({ handle, params: mechanism, data, signature: bytes(WIRE_SIGNATURE_BYTES_MAX), identity: opt(identity) }), WIRE_BATCH_ITEMS_MAX) }), batchResults(bool)),
  ENCRYPT_BATCH: op(0x0062, struct({ session, items: list(cryptoItem, WIRE_BATCH_ITEMS_MAX) }), batchResults(output)),
  DECRYPT_BATCH: op(0x0063, struct({ session, items: list(cryptoItem, WIRE_BATCH_ITEMS_MAX) }), batchResults(output)),
} as const;

export type OpName = keyof typeof OPS;
export type WireRequest<N extends OpName> = Infer<(typeof OPS)[N]['request']>;
export type WireResponse<N extends OpName> = Infer<(typeof OPS)[N]['response']>;

const OP_BY_CODE = new Map<number, OpName>();
for (const [n, o] of Object.entries(OPS) as [OpName, (typeof OPS)[OpName]][]) {
  assert(!OP_BY_CODE.has(o.code), 'operation codes are unique');
  OP_BY_CODE.set(o.code, n);
}

/** The operation named by a frame's op code; an unknown code is refused (COFFER_FORMAT_MALFORMED). */
export function opName(code: number): OpName {
  const n = OP_BY_CODE.get(code);
  if (n === undefined) fail('COFFER_FORMAT_MALFORMED', { reason: 'unknown operation code', op: code });
  return n;
}
