// The cluster as a PKCS#11 v2.40 token behind the p11-kit server (docs/pkcs11.md "The token"): one
// slot, one token, on the client SDK. Each p11-kit connection is one application (p11-kit's client
// opens one socket per C_Initialize), so login state and sessions are kept per connection, as
// PKCS#11 v2.40 §5.6 keeps them per application.
//
// - C_Login takes the PIN `username:password` (as CloudHSM's PKCS#11 library does) and connects a
//   Cluster as that user: CKU_USER logs in as a crypto user, CKU_SO as an admin. A refused login is
//   the registry's CKR (COFFER_AUTH_FAILED → CKR_PIN_INCORRECT). The PIN bytes are zeroised after
//   the SDK copied them; neither PIN nor password is logged or kept here.
// - Logout, closing the application's last session (§5.6) and the connection going away close the
//   Cluster. Session objects (CKA_TOKEN false) live in the SDK's node sessions, so they last until
//   logout rather than until their PKCS#11 session closes (docs/pkcs11.md).
// - Object handles are the cluster's handles (integers 1 … 2^53 − 1): the same on every HSM and in the
//   SDK and CLI.
// - An operation (find, sign, verify, encrypt, decrypt) is kept per session and kind; a second Init
//   is CKR_OPERATION_ACTIVE, a call without Init CKR_OPERATION_NOT_INITIALIZED. A length query or
//   CKR_BUFFER_TOO_SMALL leaves it active with its computed output kept for the call that follows
//   (§5.2); any other end, success or failure, ends it — a call that mixes single-part and
//   multi-part (CKR_OPERATION_ACTIVE) too. Multi-part input is buffered up to
//   P11_MULTIPART_BYTES_MAX (then CKR_DATA_LEN_RANGE) and sent at Final in one call, so every
//   mechanism's result is the node's, never a partial computation here.
// - Digests use no key and no login: they are computed here with node:crypto, hashed part by part.
// - Wrap, unwrap and derive check what §5.14 names before the HSM is asked (token_keys.ts); C_CopyObject
//   copies public objects only; C_SetPIN / C_InitPIN change passwords through the SDK, C_InitToken is
//   refused (a cluster is initialised by its ceremony); only the SO changes CKA_TRUSTED.

import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Cluster, Credentials, Key, KeyInfo } from '../client/index.js';
import { CofferError, isCofferError } from '../errors.js';
import { CRYPTO_INPUT_BYTES_MAX, GENERIC_SECRET_BITS_MAX, GENERIC_SECRET_BITS_MIN, RANDOM_BYTES_MAX } from '../formats/limits.js';
import { AES_BLOCK_BYTES, type MechanismParams } from '../formats/mechanism_params.js';
import { fitBytes, fitUlongs, type Answer, type Pkcs11Backend, type Pkcs11Connection } from './backend.js';
import { CKA, CKM, CKR } from './constants.js';
import { mechanismCarried, type Attribute, type ByteArray, type Mechanism, type OutBuffer } from './rpc_codec.js';
import type { RequestOf } from './rpc_messages.js';
import { RandomGroups } from './random_groups.js';
import { DIGESTS, MechanismRefusal, TOKEN_MECHANISMS, mechanismEntry, sdkMechanism, type Use } from './token_mechanisms.js';
import { CERTIFICATE_READ_ONLY, CKO_CERTIFICATE, certificateLookup, readCertificateTemplate } from './token_certificates.js';
import { deriveParams, deriveTemplate, unwrapParams, unwrapTemplate, wrapParams, wrapRefusal } from './token_keys.js';
import { CKK, CKO, TemplateRefusal, copyTemplate, curveOfParams, findFilterOf, lookup, matches, needsPublicParts, publicKeyPem, publicParts, readChanges, readTemplate, type Lookup, type PublicParts, type ReadTemplate } from './token_objects.js';

/** Bytes of multi-part input kept per operation: what one node call takes (CRYPTO_INPUT_BYTES_MAX). */
export const P11_MULTIPART_BYTES_MAX = CRYPTO_INPUT_BYTES_MAX;

export const SLOT_ID = 1n;

/** PKCS#11 v2.40 §5.1 flags and values the token reports. */
const CKF = {
  TOKEN_PRESENT: 0x1n, HW_SLOT: 0x4n, RNG: 0x1n, LOGIN_REQUIRED: 0x4n, USER_PIN_INITIALIZED: 0x8n, TOKEN_INITIALIZED: 0x400n,
  USER_PIN_COUNT_LOW: 0x10000n, SO_PIN_COUNT_LOW: 0x100000n, RW_SESSION: 0x2n, SERIAL_SESSION: 0x4n,
} as const;
const CKU = { SO: 0n, USER: 1n, CONTEXT_SPECIFIC: 2n } as const;
const CKS = { RO_PUBLIC: 0n, RO_USER: 1n, RW_PUBLIC: 2n, RW_USER: 3n, RW_SO: 4n } as const;
const CK_UNAVAILABLE_INFORMATION = 0xffff_ffff_ffff_ffffn;
const VERSION = { major: 2, minor: 40 };
const COFFER_VERSION = { major: 0, minor: 1 };
/** PIN lengths: a username of 1–31 characters, a colon, a password of 8–32 (docs/architecture.md §4). */
const PIN_LEN_MIN = 10n;
const PIN_LEN_MAX = 64n;
/** A password's bytes: 8–32 characters (docs/architecture.md §4) of up to 4 UTF-8 bytes; the HSM checks the characters. */
const PASSWORD_BYTES_MIN = 8;
const PASSWORD_BYTES_MAX = 32 * 4;

export interface ClusterTokenOptions {
  /** Connects and logs in as `credentials` (the command passes Cluster.connect with its target). */
  readonly connect: (credentials: Credentials) => Promise<Cluster>;
  /** Token label and serial number (at most 32 and 16 characters). */
  readonly label: string;
  readonly serial: string;
}

interface Operation {
  readonly use: Use;
  readonly key: Key;
  /** The mechanism; a streamed CBC's IV moves on to the last ciphertext block after each update. */
  params: MechanismParams;
  readonly multiPart: boolean;
  /** The parts not yet sent (a streamed ECB or CBC keeps only its incomplete last block here). */
  parts: Uint8Array[];
  bytes: number;
  updated: boolean;
  /** A single-part call (C_Sign, C_Encrypt, C_Decrypt) left its output waiting: only that call may follow. */
  oneShot?: true;
  /** The output computed for a length query or a too-small buffer, for the input it was computed on. */
  kept?: { readonly input: Uint8Array; readonly output: Uint8Array };
}

/** A digest in progress: hashed as parts arrive, so nothing is buffered. */
interface Digest {
  readonly algorithm: string;
  readonly hash: Hash;
  updated: boolean;
  /** C_Digest left its output waiting: only C_Digest may follow. */
  oneShot?: true;
  kept?: { readonly input: Uint8Array; readonly output: Uint8Array };
}

interface Session {
  readonly flags: bigint;
  find?: { readonly handles: readonly bigint[]; at: number };
  digest?: Digest;
  readonly ops: Map<Use, Operation>;
}

interface Application {
  readonly sessions: Map<bigint, Session>;
  login?: { readonly cluster: Cluster; readonly userType: bigint; readonly username: string };
  /** The SDK's Key per handle used, so that a key is located among the HSMs once, not per call. */
  readonly keys: Map<bigint, Key>;
  /** Each key's description as last read, for the checks of an operation's Init (`described`). */
  readonly described: Map<bigint, { readonly info: KeyInfo; readonly atMs: number }>;
}

/** Keys remembered per application; past this the memory starts over (a cache, never a limit). */
export const P11_KEYS_REMEMBERED_MAX = 4096;
/** How old a key's description an operation's Init may check against (docs/pkcs11.md §7): a sign
 * loop then costs one HSM call per signature, not two. */
export const P11_INIT_DESCRIPTION_FRESH_MS = 1000;

/** An operation's answer: its rv, and the output the two-call rule lets through. */
type Fit = { readonly rv: number; readonly value?: ByteArray };

const bad = (rv: number): { rv: number } => ({ rv });
const ok = <O>(out: O): { rv: typeof CKR.OK; out: O } => ({ rv: CKR.OK, out });

export interface ClusterBackend extends Pkcs11Backend {
  /** Applications (connections) with state now. */
  applications(): number;
}

export function clusterBackend(options: ClusterTokenOptions): ClusterBackend {
  const apps = new Map<string, Application>();
  let nextSession = 1n;
  const randoms = new RandomGroups();
  /** The user types (CKU_USER, CKU_SO) a wrong PIN was given for through this bridge since their last
   * successful login: CKF_USER_PIN_COUNT_LOW and CKF_SO_PIN_COUNT_LOW (§5.5 CK_TOKEN_INFO). */
  const pinCountLow = new Set<bigint>();
  const app = (c: Pkcs11Connection): Application => {
    let a = apps.get(c.id);
    if (a === undefined) apps.set(c.id, (a = { sessions: new Map(), keys: new Map(), described: new Map() }));
    return a;
  };
  const logout = async (a: Application): Promise<void> => {
    const l = a.login;
    delete a.login;
    a.keys.clear();
    a.described.clear();
    for (const s of a.sessions.values()) {
      s.ops.clear();
      delete s.find;
      delete s.digest;
    }
    await l?.cluster.close();
  };
  /** The session, or undefined when the handle names none of this application's. */
  const sessionOf = (c: Pkcs11Connection, handle: bigint): { a: Application; s: Session } | undefined => {
    const a = app(c);
    const s = a.sessions.get(handle);
    return s === undefined ? undefined : { a, s };
  };

  const backend: ClusterBackend = {
    applications: () => apps.size,
    release: async (c) => {
      const a = apps.get(c.id);
      apps.delete(c.id);
      if (a !== undefined) await logout(a);
    },
    C_GetInfo: () => ok({ cryptokiVersion: VERSION, manufacturerId: 'Coffer', flags: 0n, libraryDescription: 'Coffer PKCS#11 bridge', libraryVersion: COFFER_VERSION }),
    C_GetSlotList: (req) => {
      const { rv, value } = fitUlongs(req.slotList, [SLOT_ID]);
      return { rv, out: { slotList: value } };
    },
    C_GetSlotInfo: (req) => req.slotId !== SLOT_ID ? bad(CKR.SLOT_ID_INVALID) : ok({
      slotDescription: `Coffer cluster ${options.label}`.slice(0, 64), manufacturerId: 'Coffer', flags: CKF.TOKEN_PRESENT | CKF.HW_SLOT,
      hardwareVersion: COFFER_VERSION, firmwareVersion: COFFER_VERSION,
    }),
    C_GetTokenInfo: (req, c) => {
      if (req.slotId !== SLOT_ID) return bad(CKR.SLOT_ID_INVALID);
      const sessions = [...app(c).sessions.values()];
      return ok({
        label: options.label.slice(0, 32), manufacturerId: 'Coffer', model: 'cluster', serialNumber: options.serial.slice(0, 16),
        flags: CKF.RNG | CKF.LOGIN_REQUIRED | CKF.USER_PIN_INITIALIZED | CKF.TOKEN_INITIALIZED
          | (pinCountLow.has(CKU.USER) ? CKF.USER_PIN_COUNT_LOW : 0n) | (pinCountLow.has(CKU.SO) ? CKF.SO_PIN_COUNT_LOW : 0n),
        maxSessionCount: 0n, sessionCount: BigInt(sessions.length), maxRwSessionCount: 0n,
        rwSessionCount: BigInt(sessions.filter((s) => (s.flags & CKF.RW_SESSION) !== 0n).length),
        maxPinLen: PIN_LEN_MAX, minPinLen: PIN_LEN_MIN, totalPublicMemory: CK_UNAVAILABLE_INFORMATION, freePublicMemory: CK_UNAVAILABLE_INFORMATION,
        totalPrivateMemory: CK_UNAVAILABLE_INFORMATION, freePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: COFFER_VERSION, firmwareVersion: COFFER_VERSION, utcTime: '',
      });
    },
    C_GetMechanismList: (req, c) => {
      if (req.slotId !== SLOT_ID) return bad(CKR.SLOT_ID_INVALID);
      // What the client's p11-kit can carry (§4): its client would drop the rest from the list it
      // was given, leaving fewer than the length query said (C_GetMechanismInfo still answers all).
      const carried = TOKEN_MECHANISMS.filter((m) => mechanismCarried(m.type, c.version));
      const { rv, value } = fitUlongs(req.mechanismList, carried.map((m) => BigInt(m.type)));
      return { rv, out: { mechanismList: value } };
    },
    C_GetMechanismInfo: (req) => {
      if (req.slotId !== SLOT_ID) return bad(CKR.SLOT_ID_INVALID);
      const m = mechanismEntry(req.type);
      return m === undefined ? bad(CKR.MECHANISM_INVALID) : ok({ minKeySize: m.minKeySize, maxKeySize: m.maxKeySize, flags: m.flags });
    },
    // A cluster's token is initialised by the cluster's own ceremony (activation, docs/architecture.md
    // §6), never through PKCS#11: C_InitToken would erase every key of every user (docs/pkcs11.md §7).
    C_InitToken: (req) => initToken(req.slotId, req.pin),
    C_InitToken2: (req) => initToken(req.slotId, req.pin),
    C_InitPIN: (req, c) => initPin(req, c),
    C_SetPIN: (req, c) => setPin(req, c),
    C_OpenSession: (req, c) => {
      if (req.slotId !== SLOT_ID) return bad(CKR.SLOT_ID_INVALID);
      // §5.6: CKF_SERIAL_SESSION must be set; a read-only session cannot open while the SO is logged in.
      if ((req.flags & CKF.SERIAL_SESSION) === 0n) return bad(CKR.SESSION_PARALLEL_NOT_SUPPORTED);
      const a = app(c);
      if ((req.flags & CKF.RW_SESSION) === 0n && a.login?.userType === CKU.SO) return bad(CKR.SESSION_READ_WRITE_SO_EXISTS);
      const handle = nextSession++;
      a.sessions.set(handle, { flags: req.flags & (CKF.RW_SESSION | CKF.SERIAL_SESSION), ops: new Map() });
      return ok({ session: handle });
    },
    C_CloseSession: async (req, c) => {
      const a = app(c);
      if (!a.sessions.delete(req.session)) return bad(CKR.SESSION_HANDLE_INVALID);
      if (a.sessions.size === 0) await logout(a); // §5.6: closing the last session logs the user out
      return ok({});
    },
    C_CloseAllSessions: async (req, c) => {
      if (req.slotId !== SLOT_ID) return bad(CKR.SLOT_ID_INVALID);
      const a = app(c);
      a.sessions.clear();
      await logout(a);
      return ok({});
    },
    C_GetSessionInfo: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const rw = (found.s.flags & CKF.RW_SESSION) !== 0n;
      const who = found.a.login?.userType;
      const state = who === CKU.SO ? CKS.RW_SO : who === CKU.USER ? (rw ? CKS.RW_USER : CKS.RO_USER) : rw ? CKS.RW_PUBLIC : CKS.RO_PUBLIC;
      return ok({ slotId: SLOT_ID, state, flags: found.s.flags, deviceError: 0n });
    },
    C_Login: (req, c) => login(req, c),
    C_Logout: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      if (found.a.login === undefined) return bad(CKR.USER_NOT_LOGGED_IN);
      await logout(found.a);
      return ok({});
    },
    C_SeedRandom: (req, c) => (sessionOf(c, req.session) === undefined ? bad(CKR.SESSION_HANDLE_INVALID) : bad(CKR.RANDOM_SEED_NOT_SUPPORTED)),
    C_GenerateRandom: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const cluster = found.a.login?.cluster;
      if (cluster === undefined) return bad(CKR.USER_NOT_LOGGED_IN);
      // From protocol 1 (p11-kit 0.25.0) the client tells a NULL buffer (§5.15: CKR_ARGUMENTS_BAD) from
      // an empty one; p11-kit 0.24's sends both as "no buffer", answered below as the empty request.
      if (!req.randomData.present && c.version >= 1) return bad(CKR.ARGUMENTS_BAD);
      const want = req.randomData.present ? req.randomData.length : 0;
      const out = new Uint8Array(want);
      for (let at = 0; at < want; at += RANDOM_BYTES_MAX) out.set(await randoms.take(cluster, Math.min(RANDOM_BYTES_MAX, want - at)), at);
      // §5.15: ulRandomLen is what to generate, not a buffer to size; there is no length query. A
      // zero-length request arrives as "no buffer" from p11-kit's client and still gets its 0 bytes
      // (a length-only answer would read as CKR_BUFFER_TOO_SMALL there; pkcs11-tool --test checks it).
      return ok({ randomData: out });
    },
    C_FindObjectsInit: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      if (found.s.find !== undefined) return bad(CKR.OPERATION_ACTIVE);
      const handles = await findHandles(found.a, req.template);
      found.s.find = { handles, at: 0 };
      return ok({});
    },
    C_FindObjects: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const f = found.s.find;
      if (f === undefined) return bad(CKR.OPERATION_NOT_INITIALIZED);
      if (!req.objects.present) return bad(CKR.ARGUMENTS_BAD);
      const batch = f.handles.slice(f.at, f.at + req.objects.length);
      f.at += batch.length;
      return ok({ objects: batch });
    },
    C_FindObjectsFinal: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      if (found.s.find === undefined) return bad(CKR.OPERATION_NOT_INITIALIZED);
      delete found.s.find;
      return ok({});
    },
    C_GetAttributeValue: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const object = await objectOf(found.a, req.object);
      if (typeof object === 'number') return bad(object);
      return attributeAnswer(object.key, object.info, req.template);
    },
    // Public keys only: private and secret keys enter a cluster wrapped or by the SDK, never as
    // plaintext attributes through a socket (docs/pkcs11.md).
    C_CreateObject: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const cluster = found.a.login?.cluster;
      if (cluster === undefined) return bad(CKR.USER_NOT_LOGGED_IN);
      const cls = templateClass(req.template);
      // §4.2: every object has a class; a template without one is incomplete, whatever else it holds.
      if (!req.template.some((a) => a.type === CKA.CLASS)) {
        wipeValues(req.template);
        return bad(CKR.TEMPLATE_INCOMPLETE);
      }
      if (cls === CKO_CERTIFICATE) return createCertificate(cluster, req.template, (found.s.flags & CKF.RW_SESSION) !== 0n);
      // Private and secret keys and data objects are not made from plaintext attributes (docs/pkcs11.md
      // "Object creation"): refused by their class before any attribute is read, and a key value
      // that came with them is wiped.
      if (cls !== undefined && cls !== CKO.PUBLIC_KEY) {
        wipeValues(req.template);
        return bad(CKR.TEMPLATE_INCONSISTENT);
      }
      const t = readTemplate(req.template, 'import');
      if (t instanceof TemplateRefusal) return bad(t.rv);
      if (t.cls === undefined || t.keyType === undefined) return bad(CKR.TEMPLATE_INCOMPLETE);
      if (t.cls !== 2n) return bad(CKR.TEMPLATE_INCONSISTENT);
      const rule = sessionRule(t, (found.s.flags & CKF.RW_SESSION) !== 0n);
      if (rule !== undefined) return bad(rule);
      const pem = publicKeyPem(t, t.keyType);
      if (pem instanceof TemplateRefusal) return bad(pem.rv);
      const key = await cluster.importPublicKeyPem(pem, { attributes: withToken(t) });
      return ok({ object: BigInt(key.handle) });
    },
    C_SetAttributeValue: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const object = await objectOf(found.a, req.object);
      if (typeof object === 'number') return bad(object);
      if (object.info.attributes.token && (found.s.flags & CKF.RW_SESSION) === 0n) return bad(CKR.SESSION_READ_ONLY);
      if (!object.info.attributes.modifiable) return bad(CKR.ACTION_PROHIBITED); // §4.4 CKA_MODIFIABLE
      if (object.info.class === 'CERTIFICATE' && req.template.some((a) => CERTIFICATE_READ_ONLY.has(a.type))) return bad(CKR.ATTRIBUTE_READ_ONLY);
      // Only the SO sets CKA_TRUSTED (PKCS#11 v2.40 §4.8), and the SO (an admin) changes nothing else.
      const so = found.a.login?.userType === CKU.SO;
      if (req.template.some((a) => (a.type === CKA.TRUSTED) !== so)) return bad(CKR.ATTRIBUTE_READ_ONLY);
      const changes = readChanges(object.info, req.template);
      if (changes instanceof TemplateRefusal) return bad(changes.rv);
      found.a.described.delete(req.object);
      for (const change of changes) await object.key.setAttribute(change.name, change.value);
      return ok({});
    },
    C_CopyObject: (req, c) => copy(req, c),
    // §5.7: the size may be CK_UNAVAILABLE_INFORMATION; the HSM does not report one.
    C_GetObjectSize: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const object = await objectOf(found.a, req.object);
      return typeof object === 'number' ? bad(object) : ok({ size: CK_UNAVAILABLE_INFORMATION });
    },
    C_DestroyObject: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const object = await objectOf(found.a, req.object);
      if (typeof object === 'number') return bad(object);
      if (object.info.attributes.token && (found.s.flags & CKF.RW_SESSION) === 0n) return bad(CKR.SESSION_READ_ONLY);
      if (!object.info.attributes.destroyable) return bad(CKR.ACTION_PROHIBITED);
      found.a.described.delete(req.object);
      await object.key.destroy();
      found.a.keys.delete(req.object);
      return ok({});
    },
    C_GenerateKeyPair: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const cluster = found.a.login?.cluster;
      if (cluster === undefined) return bad(CKR.USER_NOT_LOGGED_IN);
      const spec = keyPairSpec(req.mechanism, req.publicKeyTemplate, req.privateKeyTemplate, (found.s.flags & CKF.RW_SESSION) !== 0n);
      if (typeof spec === 'number') return bad(spec);
      const pair = await cluster.generateKeyPair(spec);
      return ok({ publicKey: BigInt(pair.publicKey.handle), privateKey: BigInt(pair.privateKey.handle) });
    },
    C_GenerateKey: async (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const cluster = found.a.login?.cluster;
      if (cluster === undefined) return bad(CKR.USER_NOT_LOGGED_IN);
      const spec = secretKeySpec(req.mechanism, req.template, (found.s.flags & CKF.RW_SESSION) !== 0n);
      if (typeof spec === 'number') return bad(spec);
      const key = await cluster.generateKey(spec);
      return ok({ key: BigInt(key.handle) });
    },
    C_WrapKey: (req, c) => wrap(req, c),
    C_UnwrapKey: (req, c) => unwrap(req, c),
    C_DeriveKey: async (req, c) => {
      const r = await derive(req, c);
      return typeof r === 'number' ? bad(r) : ok({ key: r });
    },
    // p11-kit 0.25.6 and later: the same, with the mechanism's updated parameter (none for ECDH).
    C_DeriveKey2: async (req, c) => {
      const r = await derive(req, c);
      return typeof r === 'number' ? bad(r) : ok({ mechanismUpdate: { mechanism: req.mechanism?.type ?? 0, present: false }, key: r });
    },
    C_DigestInit: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      if (req.mechanism === null) return bad(CKR.ARGUMENTS_BAD);
      if (found.s.digest !== undefined) return bad(CKR.OPERATION_ACTIVE);
      const algorithm = DIGESTS.get(req.mechanism.type);
      if (algorithm === undefined) return bad(CKR.MECHANISM_INVALID);
      if (req.mechanism.parameter.kind !== 'none') return bad(CKR.MECHANISM_PARAM_INVALID);
      found.s.digest = { algorithm, hash: createHash(algorithm), updated: false };
      return ok({});
    },
    C_Digest: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const d = found.s.digest;
      if (d === undefined) return bad(CKR.OPERATION_NOT_INITIALIZED);
      // §5.12: a C_Digest that fails (here: after an update, which only C_DigestFinal may end) ends
      // the operation; so do C_DigestUpdate and C_DigestFinal after a waiting C_Digest, below.
      if (d.updated) {
        delete found.s.digest;
        return bad(CKR.OPERATION_ACTIVE);
      }
      if (!isBytes(req.data)) {
        delete found.s.digest;
        return bad(CKR.ARGUMENTS_BAD);
      }
      const output = d.kept !== undefined && Buffer.from(d.kept.input).equals(req.data) ? d.kept.output : Uint8Array.from(createHash(d.algorithm).update(req.data).digest());
      const fit = fitBytes(req.digest, output);
      if (req.digest.present && fit.rv === CKR.OK) delete found.s.digest;
      else {
        d.kept = { input: Uint8Array.from(req.data), output };
        d.oneShot = true;
      }
      return { rv: fit.rv, out: { digest: fit.value } };
    },
    C_DigestUpdate: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const d = found.s.digest;
      if (d === undefined) return bad(CKR.OPERATION_NOT_INITIALIZED);
      if (d.oneShot) {
        delete found.s.digest;
        return bad(CKR.OPERATION_ACTIVE);
      }
      if (!isBytes(req.part)) {
        delete found.s.digest;
        return bad(CKR.ARGUMENTS_BAD);
      }
      d.hash.update(req.part);
      d.updated = true;
      delete d.kept;
      return ok({});
    },
    C_DigestFinal: (req, c) => {
      const found = sessionOf(c, req.session);
      if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
      const d = found.s.digest;
      if (d === undefined) return bad(CKR.OPERATION_NOT_INITIALIZED);
      if (d.oneShot) {
        delete found.s.digest;
        return bad(CKR.OPERATION_ACTIVE);
      }
      // digest() ends a Hash, so a length query hashes a copy and leaves the operation running.
      const output = d.kept?.output ?? Uint8Array.from(d.hash.copy().digest());
      const fit = fitBytes(req.digest, output);
      if (req.digest.present && fit.rv === CKR.OK) delete found.s.digest;
      else d.kept = { input: new Uint8Array(0), output };
      return { rv: fit.rv, out: { digest: fit.value } };
    },
    C_SignInit: (req, c) => init(c, req, 'sign'),
    C_VerifyInit: (req, c) => init(c, req, 'verify'),
    C_EncryptInit: (req, c) => init(c, req, 'encrypt'),
    C_DecryptInit: (req, c) => init(c, req, 'decrypt'),
    C_Sign: async (req, c) => {
      const r = await single(c, req.session, 'sign', req.data, req.signature);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { signature: r.value } };
    },
    C_Encrypt: async (req, c) => {
      const r = await single(c, req.session, 'encrypt', req.data, req.encryptedData);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { encryptedData: r.value } };
    },
    C_Decrypt: async (req, c) => {
      const r = await single(c, req.session, 'decrypt', req.encryptedData, req.data);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { data: r.value } };
    },
    C_SignUpdate: (req, c) => {
      const r = update(c, req.session, 'sign', req.part);
      return r === CKR.OK ? ok({}) : bad(r);
    },
    C_VerifyUpdate: (req, c) => {
      const r = update(c, req.session, 'verify', req.part);
      return r === CKR.OK ? ok({}) : bad(r);
    },
    C_EncryptUpdate: async (req, c) => {
      const r = await cipherUpdate(c, req.session, 'encrypt', req.part, req.encryptedPart);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { encryptedPart: r.value } };
    },
    C_DecryptUpdate: async (req, c) => {
      const r = await cipherUpdate(c, req.session, 'decrypt', req.encryptedPart, req.part);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { part: r.value } };
    },
    C_SignFinal: async (req, c) => {
      const r = await final(c, req.session, 'sign', req.signature);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { signature: r.value } };
    },
    C_EncryptFinal: async (req, c) => {
      const r = await final(c, req.session, 'encrypt', req.lastEncryptedPart);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { lastEncryptedPart: r.value } };
    },
    C_DecryptFinal: async (req, c) => {
      const r = await final(c, req.session, 'decrypt', req.lastPart);
      return r.value === undefined ? bad(r.rv) : { rv: r.rv, out: { lastPart: r.value } };
    },
    C_Verify: async (req, c) => {
      const op = operation(c, req.session, 'verify');
      if (typeof op === 'number') return bad(op);
      op.s.ops.delete('verify'); // whatever the answer (§5.11), even after an update
      if (op.o.updated) return bad(CKR.OPERATION_ACTIVE);
      if (!isBytes(req.data) || !isBytes(req.signature)) return bad(CKR.ARGUMENTS_BAD);
      return (await op.o.key.verify(req.data, req.signature, op.o.params)) ? ok({}) : bad(CKR.SIGNATURE_INVALID);
    },
    C_VerifyFinal: async (req, c) => {
      const op = operation(c, req.session, 'verify');
      if (typeof op === 'number') return bad(op);
      op.s.ops.delete('verify');
      if (!isBytes(req.signature)) return bad(CKR.ARGUMENTS_BAD);
      return (await op.o.key.verify(joined(op.o.parts), req.signature, op.o.params)) ? ok({}) : bad(CKR.SIGNATURE_INVALID);
    },
  };

  // ── login ──────────────────────────────────────────────────────────────────────────────────
  async function login(req: RequestOf<'C_Login'>, c: Pkcs11Connection): Promise<{ rv: number; out?: Record<string, never> }> {
    const found = sessionOf(c, req.session);
    if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
    const { a } = found;
    if (req.userType === CKU.CONTEXT_SPECIFIC) return bad(CKR.OPERATION_NOT_INITIALIZED); // no key needs re-authentication
    if (req.userType !== CKU.USER && req.userType !== CKU.SO) return bad(CKR.USER_TYPE_INVALID);
    if (a.login !== undefined) return bad(a.login.userType === req.userType ? CKR.USER_ALREADY_LOGGED_IN : CKR.USER_ANOTHER_ALREADY_LOGGED_IN);
    if (req.userType === CKU.SO && [...a.sessions.values()].some((s) => (s.flags & CKF.RW_SESSION) === 0n)) return bad(CKR.SESSION_READ_ONLY_EXISTS);
    if (!isBytes(req.pin)) return bad(CKR.ARGUMENTS_BAD);
    const pin = Uint8Array.from(req.pin);
    try {
      const colon = pin.indexOf(0x3a);
      if (colon <= 0 || colon === pin.length - 1) {
        pinCountLow.add(req.userType);
        return bad(CKR.PIN_INCORRECT); // not username:password
      }
      const username = new TextDecoder().decode(pin.subarray(0, colon));
      let cluster: Cluster;
      try {
        cluster = await options.connect({ username, password: pin.slice(colon + 1), role: req.userType === CKU.SO ? 'admin' : 'crypto-user' });
      } catch (e) {
        if (isCofferError(e) && e.ckr === 'CKR_PIN_INCORRECT') pinCountLow.add(req.userType);
        throw e;
      }
      pinCountLow.delete(req.userType);
      // The application may have gone (connection closed, C_Finalize) while the login was under way.
      if (apps.get(c.id) !== a) {
        await cluster.close();
        return bad(CKR.CRYPTOKI_NOT_INITIALIZED);
      }
      a.login = { cluster, userType: req.userType, username };
      return ok({});
    } finally {
      pin.fill(0);
      if (req.pin instanceof Uint8Array) req.pin.fill(0);
    }
  }

  // ── PINs and the token (PKCS#11 v2.40 §5.6) ────────────────────────────────────────────────
  function initToken(slotId: bigint, pin: ByteArray): { rv: number } {
    if (pin instanceof Uint8Array) pin.fill(0);
    return bad(slotId === SLOT_ID ? CKR.FUNCTION_NOT_SUPPORTED : CKR.SLOT_ID_INVALID);
  }

  /** C_InitPIN: the SO (an admin) sets a crypto user's password; the PIN is `username:password`. */
  async function initPin(req: RequestOf<'C_InitPIN'>, c: Pkcs11Connection): Promise<{ rv: number; out?: Record<string, never> }> {
    const found = sessionOf(c, req.session);
    if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
    const login = found.a.login;
    // §5.6: only in the "R/W SO Functions" state, else CKR_USER_NOT_LOGGED_IN.
    if (login?.userType !== CKU.SO || !isRw(found.s)) return bad(CKR.USER_NOT_LOGGED_IN);
    if (!isBytes(req.pin)) return bad(CKR.ARGUMENTS_BAD);
    const pin = splitPin(req.pin);
    try {
      if (pin === undefined) return bad(CKR.PIN_INVALID);
      const users = await login.cluster.users.list();
      const user = users.find((u) => u.name.toLowerCase() === pin.username.toLowerCase());
      if (user?.role !== 'crypto-user') return bad(CKR.PIN_INVALID); // the PIN names no crypto user
      await login.cluster.users.changePassword(user.name, pin.password);
      return ok({});
    } finally {
      pin?.password.fill(0);
    }
  }

  /**
   * C_SetPIN: the old PIN is `username:password`, the new PIN the new password alone. Logged in, it
   * changes the logged-in user's password (the old PIN must name that user); not logged in, the
   * crypto user's the old PIN names (§5.6: "the CKU_USER PIN if the session is not logged in").
   */
  async function setPin(req: RequestOf<'C_SetPIN'>, c: Pkcs11Connection): Promise<{ rv: number; out?: Record<string, never> }> {
    const found = sessionOf(c, req.session);
    if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
    if (!isRw(found.s)) return bad(CKR.SESSION_READ_ONLY);
    if (!isBytes(req.oldPin) || !isBytes(req.newPin)) return bad(CKR.ARGUMENTS_BAD);
    const old = splitPin(req.oldPin);
    const next = Uint8Array.from(req.newPin);
    req.newPin.fill(0);
    try {
      if (old === undefined) return bad(CKR.PIN_INCORRECT);
      if (next.length < PASSWORD_BYTES_MIN || next.length > PASSWORD_BYTES_MAX) return bad(CKR.PIN_LEN_RANGE);
      const login = found.a.login;
      if (login !== undefined) {
        if (login.username.toLowerCase() !== old.username.toLowerCase()) return bad(CKR.PIN_INCORRECT);
        await login.cluster.users.changeOwnPassword(old.password, next);
        return ok({});
      }
      const cluster = await options.connect({ username: old.username, password: old.password, role: 'crypto-user' });
      try {
        await cluster.users.changeOwnPassword(old.password, next);
      } finally {
        await cluster.close();
      }
      return ok({});
    } finally {
      old?.password.fill(0);
      next.fill(0);
    }
  }

  /**
   * C_CopyObject (§5.7). A public key or a certificate is made again from its public value (SPKI,
   * DER) with its label, id, token, usage and policy attributes, changed by the template. A private
   * or secret key is copied by the HSM (docs/device.md "Copies") from a session object only — a key
   * made for a session and then kept, as Java's KeyStore keeps the pairs keytool makes — so that a key
   * the cluster keeps has one object and its CKA_LOCAL, CKA_NEVER_EXTRACTABLE and sharing stay true of
   * it; a token one is CKR_ACTION_PROHIBITED.
   */
  async function copy(req: RequestOf<'C_CopyObject'>, c: Pkcs11Connection): Promise<Answer<'C_CopyObject'>> {
    const l = loggedIn(c, req.session);
    if (typeof l === 'number') return bad(l);
    const object = await objectOf(l.a, req.object);
    if (typeof object === 'number') return bad(object);
    const { info, key } = object;
    const t = copyTemplate(info, req.template, CERTIFICATE_READ_ONLY);
    if (t instanceof TemplateRefusal) return bad(t.rv);
    if (t.token === true && !isRw(l.s)) return bad(CKR.SESSION_READ_ONLY);
    if (info.class === 'PRIVATE_KEY' || info.class === 'SECRET_KEY') {
      if (info.attributes.token) return bad(CKR.ACTION_PROHIBITED);
      const made = await l.cluster.copyKey(key, { label: t.label, id: t.id, token: t.token, modifiable: t.modifiable, destroyable: t.destroyable });
      return ok({ newObject: BigInt(made.handle) });
    }
    if (info.class === 'CERTIFICATE') {
      const { certificate, category } = await key.certificate();
      return ok({ newObject: BigInt((await l.cluster.importCertificate(certificate, { ...t, category })).handle) });
    }
    const usage = { encrypt: info.attributes.encrypt, verify: info.attributes.verify, wrap: info.attributes.wrap };
    const made = await l.cluster.importPublicKeyPem(await key.exportPublicPem(), { attributes: { ...usage, ...t } });
    return ok({ newObject: BigInt(made.handle) });
  }

  // ── wrap, unwrap, derive (token_keys.ts) ───────────────────────────────────────────────────
  /** The session of a logged-in application, or the CK_RV. */
  function loggedIn(c: Pkcs11Connection, session: bigint): { a: Application; s: Session; cluster: Cluster } | number {
    const found = sessionOf(c, session);
    if (found === undefined) return CKR.SESSION_HANDLE_INVALID;
    const cluster = found.a.login?.cluster;
    return cluster === undefined ? CKR.USER_NOT_LOGGED_IN : { ...found, cluster };
  }

  /** C_WrapKey, with the two-call rule (§5.2): a length query wraps too, to learn the length. */
  async function wrap(req: RequestOf<'C_WrapKey'>, c: Pkcs11Connection): Promise<Answer<'C_WrapKey'>> {
    const l = loggedIn(c, req.session);
    if (typeof l === 'number') return bad(l);
    if (req.mechanism === null) return bad(CKR.ARGUMENTS_BAD);
    const wrapping = await objectOf(l.a, req.wrappingKey);
    if (typeof wrapping === 'number' || wrapping.info.class === 'CERTIFICATE') return bad(CKR.WRAPPING_KEY_HANDLE_INVALID);
    const params = wrapParams(req.mechanism, wrapping.info);
    if (typeof params === 'number') return bad(params);
    const target = await objectOf(l.a, req.key);
    if (typeof target === 'number') return bad(CKR.KEY_HANDLE_INVALID);
    const refusal = wrapRefusal(params, wrapping.info, target.info);
    if (refusal !== undefined) return bad(refusal);
    const fit = fitBytes(req.wrappedKey, await wrapping.key.wrap(target.key, params));
    return { rv: fit.rv, out: { wrappedKey: fit.value } };
  }

  async function unwrap(req: RequestOf<'C_UnwrapKey'>, c: Pkcs11Connection): Promise<Answer<'C_UnwrapKey'>> {
    const l = loggedIn(c, req.session);
    if (typeof l === 'number') return bad(l);
    if (req.mechanism === null || !isBytes(req.wrappedKey)) return bad(CKR.ARGUMENTS_BAD);
    const unwrapping = await objectOf(l.a, req.unwrappingKey);
    if (typeof unwrapping === 'number' || unwrapping.info.class === 'CERTIFICATE') return bad(CKR.UNWRAPPING_KEY_HANDLE_INVALID);
    const params = unwrapParams(req.mechanism, unwrapping.info, req.wrappedKey);
    if (typeof params === 'number') return bad(params);
    const t = unwrapTemplate(req.template, params);
    if (t instanceof TemplateRefusal) return bad(t.rv);
    if (t.token && !isRw(l.s)) return bad(CKR.SESSION_READ_ONLY);
    if (t.valueLen === undefined) return ok({ key: BigInt((await l.cluster.unwrapKey(unwrapping.key, req.wrappedKey, t.template, params)).handle) });
    // CKA_VALUE_LEN: the length comes from the wrapped value; a key of another length is destroyed
    // again (CKR_TEMPLATE_INCONSISTENT), so it is made destroyable and modifiable until checked.
    const { destroyable, modifiable } = t.template;
    const key = await l.cluster.unwrapKey(unwrapping.key, req.wrappedKey, { ...t.template, destroyable: true, modifiable: true }, params);
    if ((await key.attributes()).bits !== t.valueLen * 8) {
      await key.destroy();
      return bad(CKR.TEMPLATE_INCONSISTENT);
    }
    if (destroyable === false) await key.setAttribute('destroyable', false);
    if (modifiable === false) await key.setAttribute('modifiable', false);
    return ok({ key: BigInt(key.handle) });
  }

  /** C_DeriveKey and C_DeriveKey2: the new key's handle, or the CK_RV. */
  async function derive(req: RequestOf<'C_DeriveKey'>, c: Pkcs11Connection): Promise<bigint | number> {
    const l = loggedIn(c, req.session);
    if (typeof l === 'number') return l;
    if (req.mechanism === null) return CKR.ARGUMENTS_BAD;
    const base = await objectOf(l.a, req.baseKey);
    if (typeof base === 'number') return CKR.KEY_HANDLE_INVALID;
    const params = deriveParams(req.mechanism, base.info);
    if (typeof params === 'number') return params;
    const t = deriveTemplate(req.template, base.info);
    if (t instanceof TemplateRefusal) return t.rv;
    if (t.token && !isRw(l.s)) return CKR.SESSION_READ_ONLY;
    return BigInt((await l.cluster.deriveKey(base.key, params, t.template)).handle);
  }

  // ── operations ─────────────────────────────────────────────────────────────────────────────
  async function init(c: Pkcs11Connection, req: { session: bigint; mechanism: Mechanism | null; key: bigint }, use: Use): Promise<{ rv: number; out?: Record<string, never> }> {
    const found = sessionOf(c, req.session);
    if (found === undefined) return bad(CKR.SESSION_HANDLE_INVALID);
    if (found.a.login === undefined) return bad(CKR.USER_NOT_LOGGED_IN);
    if (req.mechanism === null) return bad(CKR.ARGUMENTS_BAD);
    if (found.s.ops.has(use)) return bad(CKR.OPERATION_ACTIVE);
    const entry = mechanismEntry(req.mechanism.type);
    if (entry === undefined) return bad(CKR.MECHANISM_INVALID);
    const object = await describedOf(found.a, req.key);
    if (typeof object === 'number') return bad(CKR.KEY_HANDLE_INVALID);
    const { key, info } = object;
    if (!INIT_CLASSES[use].includes(info.class)) return bad(CKR.KEY_TYPE_INCONSISTENT);
    const params = sdkMechanism(req.mechanism, use, info.keyType);
    if (params instanceof MechanismRefusal) return bad(params.rv);
    if (!info.attributes[use]) return bad(CKR.KEY_FUNCTION_NOT_PERMITTED);
    found.s.ops.set(use, { use, key, params, multiPart: entry.multiPart, parts: [], bytes: 0, updated: false });
    return ok({});
  }

  function operation(c: Pkcs11Connection, session: bigint, use: Use): { s: Session; o: Operation } | number {
    const found = sessionOf(c, session);
    if (found === undefined) return CKR.SESSION_HANDLE_INVALID;
    const o = found.s.ops.get(use);
    return o === undefined ? CKR.OPERATION_NOT_INITIALIZED : { s: found.s, o };
  }

  function update(c: Pkcs11Connection, session: bigint, use: Use, part: ByteArray): number {
    const op = operation(c, session, use);
    return typeof op === 'number' ? op : buffered(op, part);
  }

  /** An update's part kept for Final, or the refusal that ended the operation. */
  function buffered(op: { s: Session; o: Operation }, part: ByteArray): number {
    const refused = updateRefusal(op.o, part);
    if (refused !== undefined || !isBytes(part)) {
      op.s.ops.delete(op.o.use);
      return refused ?? CKR.ARGUMENTS_BAD;
    }
    op.o.parts.push(Uint8Array.from(part));
    op.o.bytes += part.length;
    op.o.updated = true;
    return CKR.OK;
  }

  /**
   * C_EncryptUpdate / C_DecryptUpdate. AES-ECB and AES-CBC stream: each update sends the whole blocks
   * it completes to the HSM and returns their output (a CBC continues from the last ciphertext block),
   * keeping an incomplete block for the next part; a length query or a buffer too small changes
   * nothing (§5.2). Every other mechanism buffers its parts and answers all at Final.
   */
  async function cipherUpdate(c: Pkcs11Connection, session: bigint, use: 'encrypt' | 'decrypt', part: ByteArray, buffer: OutBuffer): Promise<Fit> {
    const op = operation(c, session, use);
    if (typeof op === 'number') return bad(op);
    const { o } = op;
    if (o.params.mechanism !== 'CKM_AES_ECB' && o.params.mechanism !== 'CKM_AES_CBC') {
      const r = buffered(op, part);
      return r === CKR.OK ? { rv: CKR.OK, value: fitBytes(buffer, new Uint8Array(0)).value } : bad(r);
    }
    const refused = updateRefusal(o, part);
    if (refused !== undefined || !isBytes(part)) {
      op.s.ops.delete(use);
      return bad(refused ?? CKR.ARGUMENTS_BAD);
    }
    const pending = joined([...o.parts, part]);
    const whole = pending.length - (pending.length % AES_BLOCK_BYTES);
    if (!buffer.present || buffer.length < whole) return { rv: buffer.present ? CKR.BUFFER_TOO_SMALL : CKR.OK, value: { lengthOnly: whole } };
    let output: Uint8Array = new Uint8Array(0);
    if (whole > 0) {
      const blocks = pending.subarray(0, whole);
      try {
        output = await (use === 'encrypt' ? o.key.encrypt(blocks, o.params) : o.key.decrypt(blocks, o.params));
      } catch (e) {
        op.s.ops.delete(use);
        throw e;
      }
      if (o.params.mechanism === 'CKM_AES_CBC') {
        const ciphertext = use === 'encrypt' ? output : blocks;
        o.params = { mechanism: 'CKM_AES_CBC', iv: ciphertext.slice(ciphertext.length - AES_BLOCK_BYTES) };
      }
    }
    o.parts = [pending.slice(whole)];
    o.bytes = pending.length - whole;
    o.updated = true;
    return { rv: CKR.OK, value: output };
  }

  async function single(c: Pkcs11Connection, session: bigint, use: Use, input: ByteArray, buffer: OutBuffer): Promise<Fit> {
    const op = operation(c, session, use);
    if (typeof op === 'number') return bad(op);
    // A multi-part operation ends with Final only; this failed call ends it (§5.8: every call but a
    // length query or CKR_BUFFER_TOO_SMALL does).
    if (op.o.updated) {
      op.s.ops.delete(use);
      return bad(CKR.OPERATION_ACTIVE);
    }
    if (!isBytes(input)) {
      op.s.ops.delete(use);
      return bad(CKR.ARGUMENTS_BAD);
    }
    op.o.oneShot = true;
    return finish(op.s, op.o, input, buffer);
  }

  async function final(c: Pkcs11Connection, session: bigint, use: Use, buffer: OutBuffer): Promise<Fit> {
    const op = operation(c, session, use);
    if (typeof op === 'number') return bad(op);
    if (op.o.oneShot) { // a single-part call's output waits
      op.s.ops.delete(use);
      return bad(CKR.OPERATION_ACTIVE);
    }
    return finish(op.s, op.o, joined(op.o.parts), buffer, c.version === 0);
  }

  /** Runs the operation on `input` (or reuses the output kept for it) and applies the two-call rule. */
  return backend;
}

/**
 * Why an update (C_SignUpdate … C_DecryptUpdate) is refused before its part is taken, or undefined;
 * a refusal ends the operation (§5.8). A single-part mechanism (§2.1.6, §2.3.6): the function is not
 * supported for it, as SoftHSM answers and pkcs11-tool --test expects. A single-part call whose output
 * waits (a length query, a buffer too small) made the operation single-part: CKR_OPERATION_ACTIVE.
 */
function updateRefusal(o: Operation, part: ByteArray): number | undefined {
  if (!o.multiPart) return CKR.FUNCTION_NOT_SUPPORTED;
  if (o.oneShot) return CKR.OPERATION_ACTIVE;
  if (!isBytes(part)) return CKR.ARGUMENTS_BAD;
  if (o.bytes + part.length > P11_MULTIPART_BYTES_MAX) return CKR.DATA_LEN_RANGE;
  return undefined;
}

/** The object classes each operation's Init accepts (PKCS#11 v2.40 §5.8, §5.9, §5.11, §5.12). */
const INIT_CLASSES: Readonly<Record<Use, readonly string[]>> = {
  // A secret key signs and verifies with an HMAC mechanism (the mechanism's key type decides which).
  sign: ['PRIVATE_KEY', 'SECRET_KEY'], verify: ['PUBLIC_KEY', 'SECRET_KEY'], encrypt: ['PUBLIC_KEY', 'SECRET_KEY'], decrypt: ['PRIVATE_KEY', 'SECRET_KEY'],
};

// ── objects (below the factory: they need no state of its own) ──────────────────────────────
/** The key and its description, or the CK_RV: no login shows no objects (every object is private). */
async function objectOf(a: Application, handle: bigint): Promise<{ key: Key; info: KeyInfo } | number> {
  const cluster = a.login?.cluster;
  if (cluster === undefined || handle < 1n || handle > BigInt(Number.MAX_SAFE_INTEGER)) return CKR.OBJECT_HANDLE_INVALID;
  let key = a.keys.get(handle);
  if (key === undefined) {
    if (a.keys.size >= P11_KEYS_REMEMBERED_MAX) a.keys.clear();
    key = cluster.key(handle);
    a.keys.set(handle, key);
  }
  try {
    const info = await key.attributes();
    if (a.described.size >= P11_KEYS_REMEMBERED_MAX) a.described.clear();
    a.described.set(handle, { info, atMs: Date.now() });
    return { key, info };
  } catch (e) {
    if (isCofferError(e, 'COFFER_OBJECT_NOT_FOUND') || isCofferError(e, 'COFFER_OBJECT_MISMATCH')) {
      a.keys.delete(handle);
      a.described.delete(handle);
      return CKR.OBJECT_HANDLE_INVALID;
    }
    throw e;
  }
}

/** objectOf for an operation's Init: the description read within P11_INIT_DESCRIPTION_FRESH_MS by
 * this application, if there is one. The HSM checks the key again at the operation itself. */
async function describedOf(a: Application, handle: bigint): Promise<{ key: Key; info: KeyInfo } | number> {
  const key = a.keys.get(handle);
  const described = a.described.get(handle);
  if (key !== undefined && described !== undefined && Date.now() - described.atMs <= P11_INIT_DESCRIPTION_FRESH_MS) return { key, info: described.info };
  return objectOf(a, handle);
}

async function findHandles(a: Application, template: readonly Attribute[]): Promise<bigint[]> {
  const cluster = a.login?.cluster;
  const { filter, rest, none } = findFilterOf(template);
  if (cluster === undefined || none) return [];
  const keys = await cluster.findKeys(filter);
  // Found keys know where they live (docs/sdk.md "Which HSM serves a key"): remember them for the calls that follow.
  if (a.keys.size + keys.length > P11_KEYS_REMEMBERED_MAX) a.keys.clear();
  for (const k of keys.slice(0, P11_KEYS_REMEMBERED_MAX)) a.keys.set(BigInt(k.handle), k);
  if (rest.length === 0) return keys.map((k) => BigInt(k.handle));
  const out: bigint[] = [];
  for (const key of keys) {
    const info = await key.attributes();
    const read = await attributeReader(key, info, rest.map((t) => t.type));
    if (rest.every((t) => matches(read(t.type), t))) out.push(BigInt(key.handle));
  }
  return out;
}

/** The attributes of an object, reading from the node what `types` need: a key's public parts, a certificate's DER. */
async function attributeReader(key: Key, info: KeyInfo, types: readonly number[]): Promise<(type: number) => Lookup> {
  if (info.class === 'CERTIFICATE') {
    const value = await key.certificate();
    return (type) => certificateLookup(info, type, value);
  }
  const parts = types.some((t) => needsPublicParts(t)) ? await partsOf(key, info) : {};
  return (type) => lookup(info, type, parts);
}

/** The CKA_CLASS a template names (its first, as a CK_ULONG), if any. */
function templateClass(template: readonly Attribute[]): bigint | undefined {
  for (const a of template) if (a.type === CKA.CLASS && 'value' in a && a.value.kind === 'ulong') return a.value.value;
  return undefined;
}

/** Zeroes the byte values of a refused template (a plaintext key value among them). */
function wipeValues(template: readonly Attribute[]): void {
  for (const a of template) if ('value' in a && a.value.kind === 'bytes') a.value.value.fill(0);
}

/** C_CreateObject of an X.509 certificate (token_certificates.ts); §5.6: a token object needs a read/write session. */
async function createCertificate(cluster: Cluster, template: readonly Attribute[], rw: boolean): Promise<Answer<'C_CreateObject'>> {
  const t = readCertificateTemplate(template);
  if (t instanceof TemplateRefusal) return bad(t.rv);
  if (t.template.token === true && !rw) return bad(CKR.SESSION_READ_ONLY);
  const cert = await cluster.importCertificate(t.der, t.template);
  return ok({ object: BigInt(cert.handle) });
}

async function partsOf(key: Key, info: KeyInfo): Promise<PublicParts> {
  if (info.class === 'SECRET_KEY') return {};
  try {
    return publicParts(await key.exportPublicPem());
  } catch (e) {
    if (isCofferError(e)) return {};
    throw new CofferError('COFFER_CRYPTO_KEY_INVALID', { reason: 'public key export does not parse' });
  }
}

/** C_GetAttributeValue's template, entry by entry as PKCS#11 v2.40 §5.7 states. */
async function attributeAnswer(key: Key, info: KeyInfo, template: RequestOf<'C_GetAttributeValue'>['template']): Promise<Answer<'C_GetAttributeValue'>> {
  const read = await attributeReader(key, info, template.map((t) => t.type));
  let rv: number = CKR.OK;
  const out: Attribute[] = [];
  for (const t of template) {
    let l = read(t.type);
    if (l === 'invalid' && t.type === CKA.VALUE && info.class === 'SECRET_KEY') l = { kind: 'bytes', value: await key.exportPlaintext() };
    if (l === 'sensitive' || l === 'invalid') {
      out.push({ type: t.type, unavailable: true });
      rv = l === 'sensitive' ? CKR.ATTRIBUTE_SENSITIVE : CKR.ATTRIBUTE_TYPE_INVALID;
      continue;
    }
    const length = l.kind === 'byte' ? 1 : l.kind === 'ulong' ? 8 : l.kind === 'bytes' || l.kind === 'date' ? l.value.length : 0;
    if (t.length === 0) out.push({ type: t.type, lengthOnly: length });
    else if (t.length < length) {
      out.push({ type: t.type, unavailable: true });
      rv = CKR.BUFFER_TOO_SMALL;
    } else out.push({ type: t.type, value: l });
  }
  return { rv, out: { template: out } };
}

// ── key generation ─────────────────────────────────────────────────────────────────────────
function keyPairSpec(m: Mechanism | null, pubT: readonly Attribute[], privT: readonly Attribute[], rw: boolean) {
  if (m === null) return CKR.ARGUMENTS_BAD;
  if (m.type !== CKM.RSA_PKCS_KEY_PAIR_GEN && m.type !== CKM.EC_KEY_PAIR_GEN) return CKR.MECHANISM_INVALID;
  if (m.parameter.kind !== 'none') return CKR.MECHANISM_PARAM_INVALID;
  const pub = readTemplate(pubT, 'public');
  if (pub instanceof TemplateRefusal) return pub.rv;
  const priv = readTemplate(privT, 'private');
  if (priv instanceof TemplateRefusal) return priv.rv;
  const rsa = m.type === CKM.RSA_PKCS_KEY_PAIR_GEN;
  const keyType = rsa ? 0n : 3n;
  if ((pub.cls ?? 2n) !== 2n || (priv.cls ?? 3n) !== 3n || (pub.keyType ?? keyType) !== keyType || (priv.keyType ?? keyType) !== keyType) return CKR.TEMPLATE_INCONSISTENT;
  const common = sessionRule(pub, rw) ?? sessionRule(priv, rw);
  if (common !== undefined) return common;
  const attrs = { publicAttributes: withToken(pub), privateAttributes: withToken(priv) };
  if (rsa) {
    if (pub.modulusBits === undefined) return CKR.TEMPLATE_INCOMPLETE;
    if (pub.modulusBits < 2048n || pub.modulusBits > 4096n) return CKR.KEY_SIZE_RANGE;
    const e = pub.publicExponent;
    if (e !== undefined && (e.length === 0 || e.length > 4)) return CKR.ATTRIBUTE_VALUE_INVALID;
    const publicExponent = e === undefined ? undefined : e.reduce((n, b) => n * 256 + b, 0);
    return { keyType: 'RSA' as const, bits: Number(pub.modulusBits), ...(publicExponent === undefined ? {} : { publicExponent }), ...attrs };
  }
  if (pub.ecParams === undefined) return CKR.TEMPLATE_INCOMPLETE;
  const curve = curveOfParams(pub.ecParams);
  if (curve === undefined) return CKR.CURVE_NOT_SUPPORTED;
  return { curve, ...attrs };
}

/** C_GenerateKey: CKM_AES_KEY_GEN (16, 24 or 32 bytes) or CKM_GENERIC_SECRET_KEY_GEN (1–1024 bytes, for HMAC). */
function secretKeySpec(m: Mechanism | null, template: readonly Attribute[], rw: boolean) {
  if (m === null) return CKR.ARGUMENTS_BAD;
  const keyType = m.type === CKM.AES_KEY_GEN ? CKK.AES : m.type === CKM.GENERIC_SECRET_KEY_GEN ? CKK.GENERIC_SECRET : undefined;
  if (keyType === undefined) return CKR.MECHANISM_INVALID;
  if (m.parameter.kind !== 'none') return CKR.MECHANISM_PARAM_INVALID;
  const t = readTemplate(template, 'secret');
  if (t instanceof TemplateRefusal) return t.rv;
  if ((t.cls ?? 4n) !== 4n || (t.keyType ?? keyType) !== keyType) return CKR.TEMPLATE_INCONSISTENT;
  const rule = sessionRule(t, rw);
  if (rule !== undefined) return rule;
  if (t.valueLen === undefined) return CKR.TEMPLATE_INCOMPLETE;
  if (keyType === CKK.AES) {
    if (t.valueLen !== 16n && t.valueLen !== 24n && t.valueLen !== 32n) return CKR.KEY_SIZE_RANGE;
    return { type: 'AES' as const, bits: Number(t.valueLen) * 8, attributes: withToken(t) };
  }
  if (t.valueLen * 8n < BigInt(GENERIC_SECRET_BITS_MIN) || t.valueLen * 8n > BigInt(GENERIC_SECRET_BITS_MAX)) return CKR.KEY_SIZE_RANGE;
  return { type: 'GENERIC_SECRET' as const, bits: Number(t.valueLen) * 8, attributes: withToken(t) };
}

/** §5.6: a token object needs a read/write session. */
function sessionRule(t: ReadTemplate, rw: boolean): number | undefined {
  return t.template.token === true && !rw ? CKR.SESSION_READ_ONLY : undefined;
}
/** CKA_TOKEN defaults to false (PKCS#11 v2.40 §4.4), where the SDK's default is a token object. */
function withToken(t: ReadTemplate) {
  return { ...t.template, token: t.template.token ?? false };
}

// ── running an operation ───────────────────────────────────────────────────────────────────
/**
 * `emptyCompletes`: p11-kit 0.24 (protocol 0) sends a caller's empty buffer as "no buffer", and reads
 * a length-only answer to a buffer as CKR_BUFFER_TOO_SMALL; a Final whose output is empty (an ECB or
 * CBC stream's, all of it already returned by the updates) is then answered with its empty output
 * and ends, as Java's SunPKCS11 needs at every AES/ECB doFinal. A NULL query that meant to call again
 * finds the operation ended (CKR_OPERATION_NOT_INITIALIZED): loud, where the other way never works.
 */
async function finish(s: Session, o: Operation, input: Uint8Array, buffer: OutBuffer, emptyCompletes = false): Promise<Fit> {
  let output = o.kept !== undefined && Buffer.from(o.kept.input).equals(input) ? o.kept.output : undefined;
  if (output === undefined) {
    try {
      output = await run(o, input);
    } catch (e) {
      s.ops.delete(o.use);
      throw e;
    }
  }
  if (emptyCompletes && !buffer.present && output.length === 0) {
    s.ops.delete(o.use);
    return { rv: CKR.OK, value: output };
  }
  const fit = fitBytes(buffer, output);
  if (buffer.present && fit.rv === CKR.OK) s.ops.delete(o.use);
  else o.kept = { input, output };
  return fit;
}

function run(o: Operation, input: Uint8Array): Promise<Uint8Array> {
  if (o.use === 'sign') return o.key.sign(input, o.params);
  if (o.use === 'encrypt') return o.key.encrypt(input, o.params);
  return o.key.decrypt(input, o.params);
}

function isRw(s: Session): boolean {
  return (s.flags & CKF.RW_SESSION) !== 0n;
}

/** A PIN `username:password` split at the first colon (the password a copy the caller zeroises), or undefined. */
function splitPin(pin: Uint8Array): { readonly username: string; readonly password: Uint8Array } | undefined {
  const colon = pin.indexOf(0x3a);
  const out = colon <= 0 || colon === pin.length - 1 ? undefined : { username: new TextDecoder().decode(pin.subarray(0, colon)), password: pin.slice(colon + 1) };
  pin.fill(0);
  return out;
}

function isBytes(v: ByteArray): v is Uint8Array {
  return v instanceof Uint8Array;
}

function joined(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** A token serial number for a cluster: its id when known, else a random one per bridge run. */
export function tokenSerial(clusterId: string | undefined): string {
  return (clusterId ?? randomUUID().replace(/-/g, '')).replace(/^cluster-/, '').slice(0, 16);
}
