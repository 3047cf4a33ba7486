// The p11-kit RPC call table (docs/pkcs11.md "Calls"): every call id p11-kit defines, with the
// argument and return signatures its server checks, as p11-kit/rpc-message.h declares them
// (p11_rpc_calls[]; the ids are the P11_RPC_CALL_* enumeration order, which is the protocol).
//
// Each call's fields are written here with names, so that the TypeScript types of a request and of
// a response follow from this one table (rpc_messages.ts); the signature string p11-kit sends and
// checks is the concatenation of the field codes, and a test holds it to the strings p11-kit's
// header writes out. Codes: y byte, u CK_ULONG, v CK_VERSION, s space-padded string of a fixed
// length, z NUL-less string, ay byte array, au ulong array, aA attribute array, fy / fu / fA the
// size of an output buffer the caller offers (bytes, ulongs, attributes), M a mechanism, P the
// mechanism-parameter update that C_DeriveKey2 returns.
//
// Which calls exist depends on the protocol version the handshake settled on (rpc_transport.ts):
// p11-kit 0.24 (version 0) knows ids 1–65, 0.25.0–0.25.5 (version 1) add the PKCS#11 3.0 calls and
// C_InitToken2 (66–88), 0.25.6 and later (version 2) add C_DeriveKey2 (89).

export type FieldCode = 'y' | 'u' | 'v' | 's' | 'z' | 'ay' | 'au' | 'aA' | 'fy' | 'fu' | 'fA' | 'M' | 'P';

/** A named field: [name, code] or, for a space-padded string, [name, 's', its fixed length]. */
export type FieldSpec = readonly [string, FieldCode] | readonly [string, 's', number];

export interface CallSpec {
  readonly id: number;
  readonly name: string;
  /** Protocol version that introduced the call. */
  readonly since: 0 | 1 | 2;
  readonly request: readonly FieldSpec[];
  readonly response: readonly FieldSpec[];
}

const sess = ['session', 'u'] as const; // most calls start with a session handle
const init = <N extends string, I extends number, V extends 0 | 1 = 0>(name: N, id: I, since?: V) =>
  ({ id, name, since: (since ?? 0) as V, request: [sess, ['mechanism', 'M'], ['key', 'u']], response: [] }) as const;
const final = <N extends string, I extends number, O extends string>(name: N, id: I, out: O) =>
  ({ id, name, since: 0, request: [sess, [out, 'fy']], response: [[out, 'ay']] }) as const;
const oneShot = <N extends string, I extends number, In extends string, O extends string>(name: N, id: I, input: In, out: O) =>
  ({ id, name, since: 0, request: [sess, [input, 'ay'], [out, 'fy']], response: [[out, 'ay']] }) as const;
const update = <N extends string, I extends number, In extends string = 'part'>(name: N, id: I, input?: In) =>
  ({ id, name, since: 0, request: [sess, [(input ?? 'part') as In, 'ay']], response: [] }) as const;
const sessionOnly = <N extends string, I extends number, V extends 0 | 1 = 0>(name: N, id: I, since?: V) =>
  ({ id, name, since: (since ?? 0) as V, request: [sess], response: [] }) as const;

export const CALLS = [
  { id: 0, name: 'ERROR', since: 0, request: [], response: [['rv', 'u']] },
  { id: 1, name: 'C_Initialize', since: 0, request: [['handshake', 'ay'], ['reservedPresent', 'y'], ['reserved', 'ay']], response: [] },
  { id: 2, name: 'C_Finalize', since: 0, request: [], response: [] },
  {
    id: 3, name: 'C_GetInfo', since: 0, request: [],
    response: [['cryptokiVersion', 'v'], ['manufacturerId', 's', 32], ['flags', 'u'], ['libraryDescription', 's', 32], ['libraryVersion', 'v']],
  },
  { id: 4, name: 'C_GetSlotList', since: 0, request: [['tokenPresent', 'y'], ['slotList', 'fu']], response: [['slotList', 'au']] },
  {
    id: 5, name: 'C_GetSlotInfo', since: 0, request: [['slotId', 'u']],
    response: [['slotDescription', 's', 64], ['manufacturerId', 's', 32], ['flags', 'u'], ['hardwareVersion', 'v'], ['firmwareVersion', 'v']],
  },
  {
    id: 6, name: 'C_GetTokenInfo', since: 0, request: [['slotId', 'u']],
    response: [
      ['label', 's', 32], ['manufacturerId', 's', 32], ['model', 's', 16], ['serialNumber', 's', 16], ['flags', 'u'],
      ['maxSessionCount', 'u'], ['sessionCount', 'u'], ['maxRwSessionCount', 'u'], ['rwSessionCount', 'u'], ['maxPinLen', 'u'],
      ['minPinLen', 'u'], ['totalPublicMemory', 'u'], ['freePublicMemory', 'u'], ['totalPrivateMemory', 'u'], ['freePrivateMemory', 'u'],
      ['hardwareVersion', 'v'], ['firmwareVersion', 'v'], ['utcTime', 's', 16],
    ],
  },
  { id: 7, name: 'C_GetMechanismList', since: 0, request: [['slotId', 'u'], ['mechanismList', 'fu']], response: [['mechanismList', 'au']] },
  { id: 8, name: 'C_GetMechanismInfo', since: 0, request: [['slotId', 'u'], ['type', 'u']], response: [['minKeySize', 'u'], ['maxKeySize', 'u'], ['flags', 'u']] },
  { id: 9, name: 'C_InitToken', since: 0, request: [['slotId', 'u'], ['pin', 'ay'], ['label', 'z']], response: [] },
  { id: 10, name: 'C_OpenSession', since: 0, request: [['slotId', 'u'], ['flags', 'u']], response: [['session', 'u']] },
  sessionOnly('C_CloseSession', 11),
  { id: 12, name: 'C_CloseAllSessions', since: 0, request: [['slotId', 'u']], response: [] },
  { id: 13, name: 'C_GetSessionInfo', since: 0, request: [sess], response: [['slotId', 'u'], ['state', 'u'], ['flags', 'u'], ['deviceError', 'u']] },
  { id: 14, name: 'C_InitPIN', since: 0, request: [sess, ['pin', 'ay']], response: [] },
  { id: 15, name: 'C_SetPIN', since: 0, request: [sess, ['oldPin', 'ay'], ['newPin', 'ay']], response: [] },
  final('C_GetOperationState', 16, 'operationState'),
  {
    id: 17, name: 'C_SetOperationState', since: 0,
    request: [sess, ['operationState', 'ay'], ['encryptionKey', 'u'], ['authenticationKey', 'u']], response: [],
  },
  { id: 18, name: 'C_Login', since: 0, request: [sess, ['userType', 'u'], ['pin', 'ay']], response: [] },
  sessionOnly('C_Logout', 19),
  { id: 20, name: 'C_CreateObject', since: 0, request: [sess, ['template', 'aA']], response: [['object', 'u']] },
  { id: 21, name: 'C_CopyObject', since: 0, request: [sess, ['object', 'u'], ['template', 'aA']], response: [['newObject', 'u']] },
  { id: 22, name: 'C_DestroyObject', since: 0, request: [sess, ['object', 'u']], response: [] },
  { id: 23, name: 'C_GetObjectSize', since: 0, request: [sess, ['object', 'u']], response: [['size', 'u']] },
  { id: 24, name: 'C_GetAttributeValue', since: 0, request: [sess, ['object', 'u'], ['template', 'fA']], response: [['template', 'aA'], ['rv', 'u']] },
  { id: 25, name: 'C_SetAttributeValue', since: 0, request: [sess, ['object', 'u'], ['template', 'aA']], response: [] },
  { id: 26, name: 'C_FindObjectsInit', since: 0, request: [sess, ['template', 'aA']], response: [] },
  { id: 27, name: 'C_FindObjects', since: 0, request: [sess, ['objects', 'fu']], response: [['objects', 'au']] },
  sessionOnly('C_FindObjectsFinal', 28),
  init('C_EncryptInit', 29),
  oneShot('C_Encrypt', 30, 'data', 'encryptedData'),
  oneShot('C_EncryptUpdate', 31, 'part', 'encryptedPart'),
  final('C_EncryptFinal', 32, 'lastEncryptedPart'),
  init('C_DecryptInit', 33),
  oneShot('C_Decrypt', 34, 'encryptedData', 'data'),
  oneShot('C_DecryptUpdate', 35, 'encryptedPart', 'part'),
  final('C_DecryptFinal', 36, 'lastPart'),
  { id: 37, name: 'C_DigestInit', since: 0, request: [sess, ['mechanism', 'M']], response: [] },
  oneShot('C_Digest', 38, 'data', 'digest'),
  update('C_DigestUpdate', 39, 'part'),
  { id: 40, name: 'C_DigestKey', since: 0, request: [sess, ['key', 'u']], response: [] },
  final('C_DigestFinal', 41, 'digest'),
  init('C_SignInit', 42),
  oneShot('C_Sign', 43, 'data', 'signature'),
  update('C_SignUpdate', 44, 'part'),
  final('C_SignFinal', 45, 'signature'),
  init('C_SignRecoverInit', 46),
  oneShot('C_SignRecover', 47, 'data', 'signature'),
  init('C_VerifyInit', 48),
  { id: 49, name: 'C_Verify', since: 0, request: [sess, ['data', 'ay'], ['signature', 'ay']], response: [] },
  update('C_VerifyUpdate', 50, 'part'),
  update('C_VerifyFinal', 51, 'signature'),
  init('C_VerifyRecoverInit', 52),
  oneShot('C_VerifyRecover', 53, 'signature', 'data'),
  oneShot('C_DigestEncryptUpdate', 54, 'part', 'encryptedPart'),
  oneShot('C_DecryptDigestUpdate', 55, 'encryptedPart', 'part'),
  oneShot('C_SignEncryptUpdate', 56, 'part', 'encryptedPart'),
  oneShot('C_DecryptVerifyUpdate', 57, 'encryptedPart', 'part'),
  { id: 58, name: 'C_GenerateKey', since: 0, request: [sess, ['mechanism', 'M'], ['template', 'aA']], response: [['key', 'u']] },
  {
    id: 59, name: 'C_GenerateKeyPair', since: 0,
    request: [sess, ['mechanism', 'M'], ['publicKeyTemplate', 'aA'], ['privateKeyTemplate', 'aA']],
    response: [['publicKey', 'u'], ['privateKey', 'u']],
  },
  {
    id: 60, name: 'C_WrapKey', since: 0,
    request: [sess, ['mechanism', 'M'], ['wrappingKey', 'u'], ['key', 'u'], ['wrappedKey', 'fy']], response: [['wrappedKey', 'ay']],
  },
  {
    id: 61, name: 'C_UnwrapKey', since: 0,
    request: [sess, ['mechanism', 'M'], ['unwrappingKey', 'u'], ['wrappedKey', 'ay'], ['template', 'aA']], response: [['key', 'u']],
  },
  { id: 62, name: 'C_DeriveKey', since: 0, request: [sess, ['mechanism', 'M'], ['baseKey', 'u'], ['template', 'aA']], response: [['key', 'u']] },
  { id: 63, name: 'C_SeedRandom', since: 0, request: [sess, ['seed', 'ay']], response: [] },
  { id: 64, name: 'C_GenerateRandom', since: 0, request: [sess, ['randomData', 'fy']], response: [['randomData', 'ay']] },
  { id: 65, name: 'C_WaitForSlotEvent', since: 0, request: [['flags', 'u']], response: [['slotId', 'u']] },
  // PKCS #11 3.0 (p11-kit 0.25.0, protocol version 1)
  { id: 66, name: 'C_LoginUser', since: 1, request: [sess, ['userType', 'u'], ['pin', 'ay'], ['username', 'ay']], response: [] },
  { id: 67, name: 'C_SessionCancel', since: 1, request: [sess, ['flags', 'u']], response: [] },
  init('C_MessageEncryptInit', 68, 1),
  {
    id: 69, name: 'C_EncryptMessage', since: 1,
    request: [sess, ['parameter', 'ay'], ['associatedData', 'ay'], ['plaintext', 'ay'], ['ciphertext', 'fy']], response: [['ciphertext', 'ay']],
  },
  { id: 70, name: 'C_EncryptMessageBegin', since: 1, request: [sess, ['parameter', 'ay'], ['associatedData', 'ay']], response: [] },
  {
    id: 71, name: 'C_EncryptMessageNext', since: 1,
    request: [sess, ['parameter', 'ay'], ['plaintextPart', 'ay'], ['ciphertextPart', 'fy'], ['flags', 'u']], response: [['ciphertextPart', 'ay']],
  },
  sessionOnly('C_MessageEncryptFinal', 72, 1),
  init('C_MessageDecryptInit', 73, 1),
  {
    id: 74, name: 'C_DecryptMessage', since: 1,
    request: [sess, ['parameter', 'ay'], ['associatedData', 'ay'], ['ciphertext', 'ay'], ['plaintext', 'fy']], response: [['plaintext', 'ay']],
  },
  { id: 75, name: 'C_DecryptMessageBegin', since: 1, request: [sess, ['parameter', 'ay'], ['associatedData', 'ay']], response: [] },
  {
    id: 76, name: 'C_DecryptMessageNext', since: 1,
    request: [sess, ['parameter', 'ay'], ['ciphertextPart', 'ay'], ['plaintextPart', 'fy'], ['flags', 'u']], response: [['plaintextPart', 'ay']],
  },
  sessionOnly('C_MessageDecryptFinal', 77, 1),
  init('C_MessageSignInit', 78, 1),
  { id: 79, name: 'C_SignMessage', since: 1, request: [sess, ['parameter', 'ay'], ['data', 'ay'], ['signature', 'fy']], response: [['signature', 'ay']] },
  { id: 80, name: 'C_SignMessageBegin', since: 1, request: [sess, ['parameter', 'ay']], response: [] },
  {
    id: 81, name: 'C_SignMessageNext', since: 1,
    request: [sess, ['parameter', 'ay'], ['data', 'ay'], ['wantSignature', 'y'], ['signature', 'fy']], response: [['signature', 'ay']],
  },
  sessionOnly('C_MessageSignFinal', 82, 1),
  init('C_MessageVerifyInit', 83, 1),
  { id: 84, name: 'C_VerifyMessage', since: 1, request: [sess, ['parameter', 'ay'], ['data', 'ay'], ['signature', 'ay']], response: [] },
  { id: 85, name: 'C_VerifyMessageBegin', since: 1, request: [sess, ['parameter', 'ay']], response: [] },
  { id: 86, name: 'C_VerifyMessageNext', since: 1, request: [sess, ['parameter', 'ay'], ['data', 'ay'], ['signature', 'ay']], response: [] },
  sessionOnly('C_MessageVerifyFinal', 87, 1),
  // C_InitToken with a space-padded label (p11-kit 0.25.0, version 1; rpc-client.c uses it unless version 0)
  { id: 88, name: 'C_InitToken2', since: 1, request: [['slotId', 'u'], ['pin', 'ay'], ['label', 's', 32]], response: [] },
  // C_DeriveKey that returns the mechanism's updated parameter (p11-kit 0.25.6, version 2)
  {
    id: 89, name: 'C_DeriveKey2', since: 2,
    request: [sess, ['mechanism', 'M'], ['baseKey', 'u'], ['template', 'aA']], response: [['rv', 'u'], ['mechanismUpdate', 'P'], ['key', 'u']],
  },
] as const satisfies readonly CallSpec[];

export type CallsTable = typeof CALLS;
export type AnyCall = CallsTable[number];
export type CallName = Exclude<AnyCall['name'], 'ERROR'>;
export type CallOf<N extends CallName> = Extract<AnyCall, { readonly name: N }>;

/** The call with this id, or undefined. */
export function callById(id: number): AnyCall | undefined {
  const c: AnyCall | undefined = CALLS[id];
  return c !== undefined && c.id === id ? c : undefined;
}

const BY_NAME = new Map<string, AnyCall>(CALLS.map((c) => [c.name, c]));

export function callByName<N extends CallName>(name: N): CallOf<N> {
  return BY_NAME.get(name) as CallOf<N>;
}

/** The signature string p11-kit sends and checks for these fields ("uayfy"). */
export function signatureOf(fields: readonly FieldSpec[]): string {
  return fields.map((f) => f[1]).join('');
}

/** The highest call id each protocol version defines (p11-kit's P11_RPC_CALL_MAX − 1 in that release). */
export const LAST_CALL_ID: Readonly<Record<0 | 1 | 2, number>> = { 0: 65, 1: 88, 2: 89 };
