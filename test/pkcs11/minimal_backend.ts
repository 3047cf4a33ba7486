// A minimal Pkcs11Backend for the protocol tests: module info, one slot with a token, a mechanism list,
// sessions opened and closed per connection, and C_GenerateRandom. It proves the bridge's transport
// and codec end to end with real clients; the token semantics on the SDK are the next slice. The
// PKCS#11 values here are written from PKCS#11 v2.40 (§5.1 flags, §5.7 mechanism types), not from
// the code under test.

import { randomBytes } from 'node:crypto';
import { fitBytes, fitUlongs, type Pkcs11Backend, type Pkcs11Connection } from '../../src/pkcs11/backend.js';
import { CKM, CKR } from '../../src/pkcs11/constants.js';

/** PKCS#11 v2.40 flags and values the backend reports. */
export const CKF_TOKEN_PRESENT = 0x1n;
export const CKF_RNG = 0x1n;
export const CKF_TOKEN_INITIALIZED = 0x400n;
export const CKF_RW_SESSION = 0x2n;
export const CKF_SERIAL_SESSION = 0x4n;
export const CKF_SIGN = 0x800n;
export const CKF_VERIFY = 0x2000n;
export const CKF_GENERATE = 0x8000n;
export const CKF_GENERATE_KEY_PAIR = 0x10000n;
export const CKF_ENCRYPT = 0x100n;
export const CKF_DECRYPT = 0x200n;
export const CKF_DIGEST = 0x400n;
export const CK_UNAVAILABLE_INFORMATION = 0xffff_ffff_ffff_ffffn;
export const CKS_RO_PUBLIC_SESSION = 0n;
export const CKS_RW_PUBLIC_SESSION = 2n;

export const SLOT_ID = 1n;

/** The mechanisms the token lists, with (min, max, flags). ECDSA-SHA256 and AES-GCM are there on
 * purpose: p11-kit 0.24's client cannot carry them and drops them from the list it returns. */
export const MECHANISMS: readonly (readonly [number, bigint, bigint, bigint])[] = [
  [CKM.RSA_PKCS_KEY_PAIR_GEN, 2048n, 4096n, CKF_GENERATE_KEY_PAIR],
  [CKM.SHA256_RSA_PKCS, 2048n, 4096n, CKF_SIGN | CKF_VERIFY],
  [CKM.RSA_PKCS_PSS, 2048n, 4096n, CKF_SIGN | CKF_VERIFY],
  [CKM.EC_KEY_PAIR_GEN, 256n, 521n, CKF_GENERATE_KEY_PAIR],
  [CKM.ECDSA, 256n, 521n, CKF_SIGN | CKF_VERIFY],
  [CKM.ECDSA_SHA256, 256n, 521n, CKF_SIGN | CKF_VERIFY],
  [CKM.AES_KEY_GEN, 16n, 32n, CKF_GENERATE],
  [CKM.AES_GCM, 16n, 32n, CKF_ENCRYPT | CKF_DECRYPT],
  [CKM.SHA256, 0n, 0n, CKF_DIGEST],
];

interface Session {
  readonly flags: bigint;
}

export interface MinimalBackend extends Pkcs11Backend {
  /** Sessions open now, over all connections. */
  sessionsOpen(): number;
  /** Connections released so far (C_Finalize or gone). */
  released(): number;
}

export function minimalBackend(): MinimalBackend {
  const sessions = new Map<string, Map<bigint, Session>>();
  let nextHandle = 1n;
  let releasedCount = 0;
  const of = (c: Pkcs11Connection): Map<bigint, Session> => {
    let m = sessions.get(c.id);
    if (m === undefined) sessions.set(c.id, (m = new Map<bigint, Session>()));
    return m;
  };
  const version = { major: 2, minor: 40 };
  return {
    sessionsOpen: () => [...sessions.values()].reduce((n, m) => n + m.size, 0),
    released: () => releasedCount,
    release: (c) => {
      sessions.delete(c.id);
      releasedCount++;
    },
    C_GetInfo: () => ({
      rv: CKR.OK,
      out: { cryptokiVersion: version, manufacturerId: 'Coffer', flags: 0n, libraryDescription: 'Coffer test backend', libraryVersion: { major: 0, minor: 1 } },
    }),
    C_GetSlotList: (req) => {
      const { rv, value } = fitUlongs(req.slotList, [SLOT_ID]);
      return { rv, out: { slotList: value } };
    },
    C_GetSlotInfo: (req) => req.slotId !== SLOT_ID ? { rv: CKR.SLOT_ID_INVALID } : {
      rv: CKR.OK,
      out: { slotDescription: 'Coffer test slot', manufacturerId: 'Coffer', flags: CKF_TOKEN_PRESENT, hardwareVersion: { major: 1, minor: 0 }, firmwareVersion: { major: 1, minor: 2 } },
    },
    C_GetTokenInfo: (req) => req.slotId !== SLOT_ID ? { rv: CKR.SLOT_ID_INVALID } : {
      rv: CKR.OK,
      out: {
        label: 'coffer-test-token', manufacturerId: 'Coffer', model: 'p11 bridge', serialNumber: '00c0ffee', flags: CKF_RNG | CKF_TOKEN_INITIALIZED,
        maxSessionCount: 0n, sessionCount: CK_UNAVAILABLE_INFORMATION, maxRwSessionCount: 0n, rwSessionCount: CK_UNAVAILABLE_INFORMATION,
        maxPinLen: 64n, minPinLen: 8n, totalPublicMemory: CK_UNAVAILABLE_INFORMATION, freePublicMemory: CK_UNAVAILABLE_INFORMATION,
        totalPrivateMemory: CK_UNAVAILABLE_INFORMATION, freePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: { major: 1, minor: 0 }, firmwareVersion: { major: 1, minor: 2 }, utcTime: '',
      },
    },
    C_GetMechanismList: (req) => {
      if (req.slotId !== SLOT_ID) return { rv: CKR.SLOT_ID_INVALID };
      const { rv, value } = fitUlongs(req.mechanismList, MECHANISMS.map((m) => BigInt(m[0])));
      return { rv, out: { mechanismList: value } };
    },
    C_GetMechanismInfo: (req) => {
      const m = MECHANISMS.find((x) => BigInt(x[0]) === req.type);
      if (req.slotId !== SLOT_ID) return { rv: CKR.SLOT_ID_INVALID };
      if (m === undefined) return { rv: CKR.MECHANISM_INVALID };
      return { rv: CKR.OK, out: { minKeySize: m[1], maxKeySize: m[2], flags: m[3] } };
    },
    C_OpenSession: (req, c) => {
      if (req.slotId !== SLOT_ID) return { rv: CKR.SLOT_ID_INVALID };
      if ((req.flags & CKF_SERIAL_SESSION) === 0n) return { rv: CKR.SESSION_PARALLEL_NOT_SUPPORTED };
      const handle = nextHandle++;
      of(c).set(handle, { flags: req.flags });
      return { rv: CKR.OK, out: { session: handle } };
    },
    C_CloseSession: (req, c) => ({ rv: of(c).delete(req.session) ? CKR.OK : CKR.SESSION_HANDLE_INVALID, out: {} }),
    C_CloseAllSessions: (req, c) => {
      if (req.slotId !== SLOT_ID) return { rv: CKR.SLOT_ID_INVALID };
      of(c).clear();
      return { rv: CKR.OK, out: {} };
    },
    C_GetSessionInfo: (req, c) => {
      const s = of(c).get(req.session);
      if (s === undefined) return { rv: CKR.SESSION_HANDLE_INVALID };
      const rw = (s.flags & CKF_RW_SESSION) !== 0n;
      return { rv: CKR.OK, out: { slotId: SLOT_ID, state: rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION, flags: s.flags, deviceError: 0n } };
    },
    C_GenerateRandom: (req, c) => {
      if (!of(c).has(req.session)) return { rv: CKR.SESSION_HANDLE_INVALID };
      const { rv, value } = fitBytes(req.randomData, randomBytes(req.randomData.length));
      return { rv, out: { randomData: value } };
    },
  };
}
