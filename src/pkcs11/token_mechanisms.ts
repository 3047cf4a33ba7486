// The mechanisms the cluster token offers through PKCS#11 (docs/pkcs11.md "The token"), with what
// C_GetMechanismInfo reports for each, and the translation of a CK_MECHANISM with its parameter into
// the SDK's mechanism parameters. The list is what the HSM's mechanism vocabulary
// (formats/mechanism_params.ts) can serve for the key types the token generates; key sizes are the
// device's (docs/architecture.md §4: RSA 2048–4096, EC P-256/384/521, AES 128–256, generic
// secrets of 8–8192 bits for HMAC).
//
// Refusals follow PKCS#11 v2.40 §5.8 (C_SignInit, C_EncryptInit …): a mechanism not listed here is
// CKR_MECHANISM_INVALID, a parameter of the wrong layout or with values the device cannot honour
// (an MGF that differs from the hash, a label source other than CKZ_DATA_SPECIFIED) is
// CKR_MECHANISM_PARAM_INVALID, a key of another type is CKR_KEY_TYPE_INCONSISTENT.

import type { KeyType } from '../client/index.js';
import { GENERIC_SECRET_BITS_MAX, GENERIC_SECRET_BITS_MIN } from '../formats/limits.js';
import type { HashName, MechanismParams } from '../formats/mechanism_params.js';
import { CKM, CKR } from './constants.js';
import type { Mechanism } from './rpc_codec.js';

/** CK_MECHANISM_INFO flags (PKCS#11 v2.40 §5.10). */
export const CKF_MECH = {
  HW: 0x1n, ENCRYPT: 0x100n, DECRYPT: 0x200n, DIGEST: 0x400n, SIGN: 0x800n, VERIFY: 0x2000n,
  GENERATE: 0x8000n, WRAP: 0x20000n, UNWRAP: 0x40000n, DERIVE: 0x80000n, GENERATE_KEY_PAIR: 0x10000n, EC_F_P: 0x100000n, EC_NAMEDCURVE: 0x800000n, EC_UNCOMPRESS: 0x1000000n,
} as const;

/** What the operation does with a key of which type and class. */
export type Use = 'sign' | 'verify' | 'encrypt' | 'decrypt';

interface MechanismEntry {
  readonly type: number;
  readonly minKeySize: bigint;
  readonly maxKeySize: bigint;
  readonly flags: bigint;
  /** The key type the mechanism works with (undefined: key generation, no key). */
  readonly keyType?: KeyType;
  /** Whether C_*Update may be used: only mechanisms that hash their input (PKCS#11 v2.40 §2.1.6,
   * §2.3.6: CKM_RSA_PKCS and CKM_ECDSA are single-part). */
  readonly multiPart: boolean;
}

const EC_FLAGS = CKF_MECH.EC_F_P | CKF_MECH.EC_NAMEDCURVE | CKF_MECH.EC_UNCOMPRESS;
const SV = CKF_MECH.SIGN | CKF_MECH.VERIFY;
const ED = CKF_MECH.ENCRYPT | CKF_MECH.DECRYPT;

// CKF_HW: performed by the device, here the HSM (§5.10); the digests alone are computed in the bridge.
const rsa = (type: number, flags: bigint, multiPart: boolean): MechanismEntry => ({ type, minKeySize: 2048n, maxKeySize: 4096n, flags: flags | CKF_MECH.HW, keyType: 'RSA', multiPart });
const ec = (type: number, multiPart: boolean): MechanismEntry => ({ type, minKeySize: 256n, maxKeySize: 521n, flags: SV | EC_FLAGS | CKF_MECH.HW, keyType: 'EC', multiPart });
// AES key sizes are in bytes (PKCS#11 v2.40 Current Mechanisms §2.8).
const aes = (type: number, multiPart: boolean): MechanismEntry => ({ type, minKeySize: 16n, maxKeySize: 32n, flags: ED | CKF_MECH.HW, keyType: 'AES', multiPart });

export const TOKEN_MECHANISMS: readonly MechanismEntry[] = [
  { type: CKM.RSA_PKCS_KEY_PAIR_GEN, minKeySize: 2048n, maxKeySize: 4096n, flags: CKF_MECH.GENERATE_KEY_PAIR | CKF_MECH.HW, multiPart: false },
  // CKM_RSA_PKCS wraps (a secret key, under a public key) but neither decrypts nor unwraps: the
  // token offers no PKCS#1 v1.5 decryption, against padding oracles (section "Operations").
  rsa(CKM.RSA_PKCS, SV | CKF_MECH.WRAP, false),
  rsa(CKM.SHA256_RSA_PKCS, SV, true),
  rsa(CKM.SHA384_RSA_PKCS, SV, true),
  rsa(CKM.SHA512_RSA_PKCS, SV, true),
  rsa(CKM.RSA_PKCS_PSS, SV, false),
  rsa(CKM.SHA256_RSA_PKCS_PSS, SV, true),
  rsa(CKM.SHA384_RSA_PKCS_PSS, SV, true),
  rsa(CKM.SHA512_RSA_PKCS_PSS, SV, true),
  rsa(CKM.RSA_PKCS_OAEP, ED | CKF_MECH.WRAP | CKF_MECH.UNWRAP, false),
  { type: CKM.EC_KEY_PAIR_GEN, minKeySize: 256n, maxKeySize: 521n, flags: CKF_MECH.GENERATE_KEY_PAIR | EC_FLAGS | CKF_MECH.HW, multiPart: false },
  ec(CKM.ECDSA, false),
  ec(CKM.ECDSA_SHA256, true),
  ec(CKM.ECDSA_SHA384, true),
  ec(CKM.ECDSA_SHA512, true),
  { type: CKM.ECDH1_DERIVE, minKeySize: 256n, maxKeySize: 521n, flags: CKF_MECH.DERIVE | EC_FLAGS | CKF_MECH.HW, keyType: 'EC', multiPart: false },
  { type: CKM.AES_KEY_GEN, minKeySize: 16n, maxKeySize: 32n, flags: CKF_MECH.GENERATE | CKF_MECH.HW, multiPart: false },
  aes(CKM.AES_GCM, true),
  aes(CKM.AES_CBC_PAD, true),
  aes(CKM.AES_CBC, true),
  aes(CKM.AES_ECB, true),
  aes(CKM.AES_CTR, true),
  { type: CKM.AES_CMAC, minKeySize: 16n, maxKeySize: 32n, flags: SV | CKF_MECH.HW, keyType: 'AES', multiPart: true },
  { type: CKM.AES_KEY_WRAP, minKeySize: 16n, maxKeySize: 32n, flags: CKF_MECH.WRAP | CKF_MECH.UNWRAP | CKF_MECH.HW, keyType: 'AES', multiPart: false },
  { type: CKM.AES_KEY_WRAP_PAD, minKeySize: 16n, maxKeySize: 32n, flags: CKF_MECH.WRAP | CKF_MECH.UNWRAP | CKF_MECH.HW, keyType: 'AES', multiPart: false },
  // Generic secrets and their HMACs; key sizes in bits (PKCS#11 v2.40 Current Mechanisms §2.20, §2.21).
  { type: CKM.GENERIC_SECRET_KEY_GEN, minKeySize: BigInt(GENERIC_SECRET_BITS_MIN), maxKeySize: BigInt(GENERIC_SECRET_BITS_MAX), flags: CKF_MECH.GENERATE | CKF_MECH.HW, multiPart: false },
  ...[CKM.SHA224_HMAC, CKM.SHA256_HMAC, CKM.SHA384_HMAC, CKM.SHA512_HMAC].map((type): MechanismEntry => ({
    type, minKeySize: BigInt(GENERIC_SECRET_BITS_MIN), maxKeySize: BigInt(GENERIC_SECRET_BITS_MAX), flags: SV | CKF_MECH.HW, keyType: 'GENERIC_SECRET', multiPart: true,
  })),
  ...[CKM.SHA224, CKM.SHA256, CKM.SHA384, CKM.SHA512].map((type) => ({ type, minKeySize: 0n, maxKeySize: 0n, flags: CKF_MECH.DIGEST, multiPart: true })),
];

/** The digests (PKCS#11 v2.40 §2.25), computed in the bridge with node:crypto: they use no key. */
export const DIGESTS: ReadonlyMap<number, string> = new Map([[CKM.SHA224, 'sha224'], [CKM.SHA256, 'sha256'], [CKM.SHA384, 'sha384'], [CKM.SHA512, 'sha512']]);

const BY_TYPE = new Map<number, MechanismEntry>(TOKEN_MECHANISMS.map((m) => [m.type, m]));

export function mechanismEntry(type: number | bigint): MechanismEntry | undefined {
  return BY_TYPE.get(Number(type));
}

/** CKM_SHA_* hash types of PSS and OAEP parameters, with the CKG_MGF1_* that matches each (PKCS#11 v2.40 §2.1.7). */
const HASHES = new Map<bigint, { readonly name: HashName; readonly mgf: bigint }>([
  [BigInt(CKM.SHA_1), { name: 'SHA-1', mgf: 1n }],
  [BigInt(CKM.SHA224), { name: 'SHA-224', mgf: 5n }],
  [BigInt(CKM.SHA256), { name: 'SHA-256', mgf: 2n }],
  [BigInt(CKM.SHA384), { name: 'SHA-384', mgf: 3n }],
  [BigInt(CKM.SHA512), { name: 'SHA-512', mgf: 4n }],
]);

/** CKZ_DATA_SPECIFIED, the only OAEP label source (PKCS#11 v2.40 §2.1.8). */
const CKZ_DATA_SPECIFIED = 1n;

/** A refusal with its CK_RV, for the caller to answer. */
export class MechanismRefusal {
  constructor(readonly rv: number) {}
}

const refuse = (rv: number): MechanismRefusal => new MechanismRefusal(rv);

/** The SDK mechanism parameters for `m` used for `use` with a key of `keyType`, or the refusal. */
export function sdkMechanism(m: Mechanism, use: Use, keyType: KeyType | undefined): MechanismParams | MechanismRefusal {
  const entry = mechanismEntry(m.type);
  if (entry === undefined || entry.keyType === undefined) return refuse(CKR.MECHANISM_INVALID);
  const wanted = use === 'sign' || use === 'verify' ? (use === 'sign' ? CKF_MECH.SIGN : CKF_MECH.VERIFY) : use === 'encrypt' ? CKF_MECH.ENCRYPT : CKF_MECH.DECRYPT;
  if ((entry.flags & wanted) === 0n) return refuse(CKR.MECHANISM_INVALID);
  if (keyType !== entry.keyType) return refuse(CKR.KEY_TYPE_INCONSISTENT);
  const p = m.parameter;
  switch (m.type) {
    case CKM.RSA_PKCS_PSS:
    case CKM.SHA256_RSA_PKCS_PSS:
    case CKM.SHA384_RSA_PKCS_PSS:
    case CKM.SHA512_RSA_PKCS_PSS: {
      if (p.kind !== 'rsaPss') return refuse(CKR.MECHANISM_PARAM_INVALID);
      const hash = HASHES.get(p.hashAlg);
      if (hash === undefined || hash.mgf !== p.mgf || p.sLen > 0xffffn) return refuse(CKR.MECHANISM_PARAM_INVALID);
      const saltBytes = Number(p.sLen);
      if (m.type === CKM.RSA_PKCS_PSS) return { mechanism: 'CKM_RSA_PKCS_PSS', hash: hash.name, saltBytes };
      // The hash-and-sign variants fix the hash: the parameter must name the same one (§2.1.15).
      const fixed = m.type === CKM.SHA256_RSA_PKCS_PSS ? 'SHA-256' : m.type === CKM.SHA384_RSA_PKCS_PSS ? 'SHA-384' : 'SHA-512';
      if (hash.name !== fixed) return refuse(CKR.MECHANISM_PARAM_INVALID);
      const name = `CKM_SHA${fixed.slice(4)}_RSA_PKCS_PSS` as 'CKM_SHA256_RSA_PKCS_PSS';
      return { mechanism: name, saltBytes };
    }
    case CKM.RSA_PKCS_OAEP:
      return oaepParams(p);
    case CKM.AES_GCM: {
      // ulIvBits is not read: v2.40 §2.12.3 (CK_GCM_PARAMS) says not to use it for the IV's length,
      // ulIvLen is, and applications leave it 0 (PyKCS11) or set it to ulIvLen × 8 (OpenSC).
      if (p.kind !== 'gcm' || p.iv === null || p.tagBits % 8n !== 0n || p.tagBits > 128n) {
        return refuse(CKR.MECHANISM_PARAM_INVALID);
      }
      return { mechanism: 'CKM_AES_GCM', iv: p.iv, ...(p.aad === null || p.aad.length === 0 ? {} : { aad: p.aad }), tagBytes: Number(p.tagBits / 8n) };
    }
    case CKM.AES_CBC_PAD:
    case CKM.AES_CBC: {
      const iv = p.kind === 'iv' ? p.iv : p.kind === 'bytes' ? p.bytes : undefined;
      if (iv?.length !== 16) return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: m.type === CKM.AES_CBC ? 'CKM_AES_CBC' : 'CKM_AES_CBC_PAD', iv };
    }
    case CKM.AES_ECB:
      // Whole blocks only (§2.8.2): the HSM answers other lengths with CKR_DATA_LEN_RANGE or
      // CKR_ENCRYPTED_DATA_LEN_RANGE at the call that sends the data (C_Encrypt or C_EncryptFinal).
      if (p.kind !== 'none') return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: 'CKM_AES_ECB' };
    case CKM.AES_CTR:
      // CK_AES_CTR_PARAMS (§2.8.5): the low ulCounterBits (1–128) of the 16-byte block cb count; a
      // message that would wrap them is refused by the HSM (CKR_DATA_LEN_RANGE), never a reused block.
      if (p.kind !== 'aesCtr' || p.counterBits < 1n || p.counterBits > 128n) return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: 'CKM_AES_CTR', iv: p.cb, counterBits: Number(p.counterBits) };
    case CKM.AES_CMAC:
      if (p.kind !== 'none') return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: 'CKM_AES_CMAC' };
    default:
      // The parameterless ones (§2.1.6, §2.3.6): a parameter given is not one they take.
      if (p.kind !== 'none') return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: parameterlessName(m.type) };
  }
}

/** CK_RSA_PKCS_OAEP_PARAMS (PKCS#11 v2.40 §2.1.8): the MGF must match the hash; a label is taken. */
function oaepParams(p: Mechanism['parameter']): MechanismParams | MechanismRefusal {
  if (p.kind !== 'rsaOaep') return refuse(CKR.MECHANISM_PARAM_INVALID);
  const hash = HASHES.get(p.hashAlg);
  if (hash === undefined || hash.mgf !== p.mgf) return refuse(CKR.MECHANISM_PARAM_INVALID);
  if (p.source !== 0n && p.source !== CKZ_DATA_SPECIFIED) return refuse(CKR.MECHANISM_PARAM_INVALID);
  const label = p.sourceData !== null && p.sourceData.length > 0 ? { label: p.sourceData } : {};
  return { mechanism: 'CKM_RSA_PKCS_OAEP', hash: hash.name, ...label };
}

/** What a key does in C_WrapKey, C_UnwrapKey and C_DeriveKey. */
export type KeyUse = 'wrap' | 'unwrap' | 'derive';

/** CKD_NULL (PKCS#11 v2.40 §2.3.8): the only KDF of CKM_ECDH1_DERIVE the HSM runs; Z goes through HKDF or SP 800-108 on the HSM afterwards. */
const CKD_NULL = 1n;

/**
 * The SDK mechanism parameters for `m` used to wrap, unwrap or derive with a key of `keyType`, or the
 * refusal: a mechanism not offered for `use` is CKR_MECHANISM_INVALID, a key of another type
 * CKR_KEY_TYPE_INCONSISTENT (the caller names the wrapping / unwrapping variant), a parameter the
 * HSM cannot honour CKR_MECHANISM_PARAM_INVALID.
 */
export function keyMechanism(m: Mechanism, use: KeyUse, keyType: KeyType | undefined): MechanismParams | MechanismRefusal {
  const entry = mechanismEntry(m.type);
  const wanted = use === 'wrap' ? CKF_MECH.WRAP : use === 'unwrap' ? CKF_MECH.UNWRAP : CKF_MECH.DERIVE;
  if (entry === undefined || (entry.flags & wanted) === 0n) return refuse(CKR.MECHANISM_INVALID);
  if (keyType !== entry.keyType) return refuse(CKR.KEY_TYPE_INCONSISTENT);
  const p = m.parameter;
  switch (m.type) {
    case CKM.RSA_PKCS_OAEP:
      return oaepParams(p);
    case CKM.AES_KEY_WRAP:
    case CKM.AES_KEY_WRAP_PAD:
      // §2.14.3: the parameter is an optional IV; the HSM uses the default IV of SP 800-38F (none given).
      if (p.kind !== 'none' && !(p.kind === 'bytes' && p.bytes.length === 0)) return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: m.type === CKM.AES_KEY_WRAP ? 'CKM_AES_KEY_WRAP' : 'CKM_AES_KEY_WRAP_PAD' };
    case CKM.ECDH1_DERIVE: {
      // CK_ECDH1_DERIVE_PARAMS (§2.3.8), carried from p11-kit 0.25.0 (docs/pkcs11.md section 4).
      if (p.kind !== 'ecdh1Derive' || p.kdf !== CKD_NULL || (p.sharedData !== null && p.sharedData.length > 0) || p.publicData === null) {
        return refuse(CKR.MECHANISM_PARAM_INVALID);
      }
      return { mechanism: 'CKM_ECDH1_DERIVE', publicKey: bareEcPoint(p.publicData) };
    }
    default:
      if (p.kind !== 'none') return refuse(CKR.MECHANISM_PARAM_INVALID);
      return { mechanism: 'CKM_RSA_PKCS' };
  }
}

/** The peer's point of ECDH (§2.3.8 pPublicData): the bare point, or the point in a DER OCTET STRING (as CKA_EC_POINT holds it), unwrapped. */
export function bareEcPoint(data: Uint8Array): Uint8Array {
  if (data[0] === 0x04 && data.length >= 2 && data[1] === data.length - 2 && data[2] === 0x04) return data.subarray(2);
  if (data[0] === 0x04 && data[1] === 0x81 && data[2] === data.length - 3 && data[3] === 0x04) return data.subarray(3);
  return data;
}

/** Built once: every C_*Init of a parameterless mechanism looks its name up here. */
const PARAMETERLESS_NAMES: Readonly<Record<number, string>> = {
  [CKM.RSA_PKCS]: 'CKM_RSA_PKCS', [CKM.SHA256_RSA_PKCS]: 'CKM_SHA256_RSA_PKCS', [CKM.SHA384_RSA_PKCS]: 'CKM_SHA384_RSA_PKCS',
  [CKM.SHA512_RSA_PKCS]: 'CKM_SHA512_RSA_PKCS', [CKM.ECDSA]: 'CKM_ECDSA', [CKM.ECDSA_SHA256]: 'CKM_ECDSA_SHA256',
  [CKM.ECDSA_SHA384]: 'CKM_ECDSA_SHA384', [CKM.ECDSA_SHA512]: 'CKM_ECDSA_SHA512',
  [CKM.SHA224_HMAC]: 'CKM_SHA224_HMAC', [CKM.SHA256_HMAC]: 'CKM_SHA256_HMAC', [CKM.SHA384_HMAC]: 'CKM_SHA384_HMAC', [CKM.SHA512_HMAC]: 'CKM_SHA512_HMAC',
};

function parameterlessName(type: number): Extract<MechanismParams, { mechanism: 'CKM_RSA_PKCS' | 'CKM_SHA256_RSA_PKCS' | 'CKM_ECDSA' | 'CKM_ECDSA_SHA256' | 'CKM_SHA256_HMAC' }>['mechanism'] {
  return PARAMETERLESS_NAMES[type] as 'CKM_RSA_PKCS';
}
