// C_WrapKey, C_UnwrapKey and C_DeriveKey of the cluster token (docs/pkcs11.md "Wrapping and
// derivation"): the checks PKCS#11 v2.40 §5.14 puts before the operation, and the templates read into
// the SDK's terms. The HSM checks everything again at the operation itself (CKA_WRAP, CKA_EXTRACTABLE,
// CKA_WRAP_WITH_TRUSTED, ownership, FIPS mode); checking here first gives each refusal the return
// value the specification names for it, before anything is sent.
//
// - Wrapping keys: an AES secret key (CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD) or an RSA public key
//   (CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS). Unwrapping keys: an AES secret key, or an RSA private key with
//   CKM_RSA_PKCS_OAEP (the token offers no PKCS#1 v1.5 decryption, so no CKM_RSA_PKCS unwrap).
// - Wrapped: secret keys (their value) and, under AES, private keys (PKCS#8 DER). RSA wraps secret
//   keys only (§2.1.6, §2.1.8); a public key is never wrapped (CKR_KEY_NOT_WRAPPABLE).
// - Derivation: CKM_ECDH1_DERIVE with CKD_NULL from an EC private key, into an AES or generic secret.

import type { Cluster, KeyInfo, KeyType } from '../client/index.js';
import type { MechanismParams } from '../formats/mechanism_params.js';
import { WRAPPED_KEY_BYTES_MAX } from '../formats/limits.js';
import { CKA, CKR } from './constants.js';
import type { Attribute, Mechanism } from './rpc_codec.js';
import { MechanismRefusal, keyMechanism } from './token_mechanisms.js';
import { CKO, TemplateRefusal, curveOfParams, keyTypeOfCkk, readTemplate } from './token_objects.js';

export type UnwrapTemplate = Parameters<Cluster['unwrapKey']>[2];
export type DeriveTemplate = Parameters<Cluster['deriveKey']>[2];

/** The parameters of a wrap with `wrapping` (§5.14 C_WrapKey), or the CK_RV that refuses it. */
export function wrapParams(m: Mechanism, wrapping: KeyInfo): MechanismParams | number {
  const wraps = (wrapping.class === 'SECRET_KEY' && wrapping.keyType === 'AES') || (wrapping.class === 'PUBLIC_KEY' && wrapping.keyType === 'RSA');
  const params = keyMechanism(m, 'wrap', wrapping.keyType);
  if (params instanceof MechanismRefusal) return params.rv === CKR.KEY_TYPE_INCONSISTENT ? CKR.WRAPPING_KEY_TYPE_INCONSISTENT : params.rv;
  if (!wraps) return CKR.WRAPPING_KEY_TYPE_INCONSISTENT;
  if (!wrapping.attributes.wrap) return CKR.KEY_FUNCTION_NOT_PERMITTED;
  return params;
}

/**
 * Whether `target` may be wrapped under `wrapping` with `params` (§4.9, §4.10): a public key is not
 * wrappable, an unextractable key is CKR_KEY_UNEXTRACTABLE, a CKA_WRAP_WITH_TRUSTED key needs a
 * wrapping key with CKA_TRUSTED, and RSA wraps secret keys only.
 */
export function wrapRefusal(params: MechanismParams, wrapping: KeyInfo, target: KeyInfo): number | undefined {
  if (target.class === 'CERTIFICATE') return CKR.KEY_HANDLE_INVALID;
  if (target.class === 'PUBLIC_KEY') return CKR.KEY_NOT_WRAPPABLE;
  if (!target.attributes.extractable) return CKR.KEY_UNEXTRACTABLE;
  if (target.attributes.wrapWithTrusted && !wrapping.attributes.trusted) return CKR.KEY_NOT_WRAPPABLE;
  const rsa = params.mechanism === 'CKM_RSA_PKCS_OAEP' || params.mechanism === 'CKM_RSA_PKCS';
  if (rsa && target.class !== 'SECRET_KEY') return CKR.KEY_NOT_WRAPPABLE;
  return undefined;
}

/** The parameters of an unwrap with `unwrapping` of `wrapped` (§5.14 C_UnwrapKey), or the CK_RV. */
export function unwrapParams(m: Mechanism, unwrapping: KeyInfo, wrapped: Uint8Array): MechanismParams | number {
  const unwraps = (unwrapping.class === 'SECRET_KEY' && unwrapping.keyType === 'AES') || (unwrapping.class === 'PRIVATE_KEY' && unwrapping.keyType === 'RSA');
  const params = keyMechanism(m, 'unwrap', unwrapping.keyType);
  if (params instanceof MechanismRefusal) return params.rv === CKR.KEY_TYPE_INCONSISTENT ? CKR.UNWRAPPING_KEY_TYPE_INCONSISTENT : params.rv;
  if (!unwraps) return CKR.UNWRAPPING_KEY_TYPE_INCONSISTENT;
  if (!unwrapping.attributes.unwrap) return CKR.KEY_FUNCTION_NOT_PERMITTED;
  if (!wrappedLengthFits(params, unwrapping, wrapped.length)) return CKR.WRAPPED_KEY_LEN_RANGE;
  return params;
}

/** SP 800-38F §6.2/§6.3: KW and KWP output whole 64-bit blocks, at least two (KW: three); RSA-OAEP
 * outputs exactly the modulus length (RFC 8017 §7.1.2). */
function wrappedLengthFits(params: MechanismParams, unwrapping: KeyInfo, length: number): boolean {
  if (length > WRAPPED_KEY_BYTES_MAX) return false;
  if (params.mechanism === 'CKM_AES_KEY_WRAP') return length % 8 === 0 && length >= 24;
  if (params.mechanism === 'CKM_AES_KEY_WRAP_PAD') return length % 8 === 0 && length >= 16;
  return length === Math.ceil(unwrapping.bits / 8);
}

/** C_UnwrapKey's template: class and key type required (§5.14), secret or private keys only, and
 * CKA_VALUE_LEN (to check against what was unwrapped) and CKA_EC_PARAMS read out. */
export function unwrapTemplate(template: readonly Attribute[], params: MechanismParams): { template: UnwrapTemplate; valueLen?: number; token: boolean } | TemplateRefusal {
  const t = readTemplate(template, 'unwrap');
  if (t instanceof TemplateRefusal) return t;
  if (t.cls === undefined || t.keyType === undefined) return new TemplateRefusal(CKR.TEMPLATE_INCOMPLETE);
  const keyType = keyTypeOfCkk(t.keyType);
  const secret = t.cls === CKO.SECRET_KEY && (keyType === 'AES' || keyType === 'GENERIC_SECRET');
  const priv = t.cls === CKO.PRIVATE_KEY && (keyType === 'RSA' || keyType === 'EC' || keyType === 'EC_EDWARDS');
  if (keyType === undefined || (!secret && !priv)) return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.KEY_TYPE);
  // RSA carries a secret key's value only (§2.1.8); a private key's PKCS#8 does not fit in one block.
  if (priv && params.mechanism === 'CKM_RSA_PKCS_OAEP') return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.CLASS);
  if (t.valueLen !== undefined && !secret) return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.VALUE_LEN);
  if (t.valueLen !== undefined && (t.valueLen < 1n || t.valueLen > BigInt(WRAPPED_KEY_BYTES_MAX))) return new TemplateRefusal(CKR.ATTRIBUTE_VALUE_INVALID, CKA.VALUE_LEN);
  let curve: ReturnType<typeof curveOfParams>;
  if (t.ecParams !== undefined) {
    if (keyType !== 'EC') return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.EC_PARAMS);
    curve = curveOfParams(t.ecParams);
    if (curve === undefined) return new TemplateRefusal(CKR.CURVE_NOT_SUPPORTED, CKA.EC_PARAMS);
  }
  const token = t.template.token ?? false; // §4.4: CKA_TOKEN defaults to false
  const out: UnwrapTemplate = { ...t.template, token, class: secret ? 'SECRET_KEY' : 'PRIVATE_KEY', keyType, ...(curve === undefined ? {} : { curve }) };
  return { template: out, token, ...(t.valueLen === undefined ? {} : { valueLen: Number(t.valueLen) }) };
}

/** The parameters of a derivation from `base` (§5.14 C_DeriveKey), or the CK_RV. */
export function deriveParams(m: Mechanism, base: KeyInfo): MechanismParams | number {
  const params = keyMechanism(m, 'derive', base.keyType);
  if (params instanceof MechanismRefusal) return params.rv;
  if (base.class !== 'PRIVATE_KEY') return CKR.KEY_TYPE_INCONSISTENT;
  if (!base.attributes.derive) return CKR.KEY_FUNCTION_NOT_PERMITTED;
  return params;
}

/**
 * C_DeriveKey's template for CKM_ECDH1_DERIVE (§2.3.8): a secret key (CKA_CLASS may be left out),
 * CKA_KEY_TYPE required, AES or generic secret; CKA_VALUE_LEN required for AES, and for a generic
 * secret defaulting to the length of Z (the curve's field size).
 */
export function deriveTemplate(template: readonly Attribute[], base: KeyInfo): { template: DeriveTemplate; token: boolean } | TemplateRefusal {
  const t = readTemplate(template, 'derive');
  if (t instanceof TemplateRefusal) return t;
  if ((t.cls ?? CKO.SECRET_KEY) !== CKO.SECRET_KEY) return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.CLASS);
  if (t.keyType === undefined) return new TemplateRefusal(CKR.TEMPLATE_INCOMPLETE, CKA.KEY_TYPE);
  const keyType: KeyType | undefined = keyTypeOfCkk(t.keyType);
  if (keyType !== 'AES' && keyType !== 'GENERIC_SECRET') return new TemplateRefusal(CKR.TEMPLATE_INCONSISTENT, CKA.KEY_TYPE);
  if (t.valueLen === undefined && keyType === 'AES') return new TemplateRefusal(CKR.TEMPLATE_INCOMPLETE, CKA.VALUE_LEN);
  const bytes = t.valueLen ?? BigInt(Math.ceil(base.bits / 8));
  if (bytes < 1n || bytes > 1024n) return new TemplateRefusal(CKR.KEY_SIZE_RANGE, CKA.VALUE_LEN);
  const token = t.template.token ?? false;
  return { template: { ...t.template, token, keyType, bits: Number(bytes) * 8 }, token };
}

