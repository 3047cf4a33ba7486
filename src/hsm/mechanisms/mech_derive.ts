// Key derivation mechanisms of the device (docs/architecture.md §4): CKM_ECDH1_DERIVE with the null KDF,
// CKM_HKDF_DERIVE (RFC 5869) and CKM_SP800_108_COUNTER_KDF (SP 800-108r1 §4.1, PRF HMAC-SHA-256).
// Every derivation makes a SECRET_KEY of the template's type and length (AES 128/192/256, or a
// generic secret of whole bytes). Decisions (copied into docs/):
//   - ECDH null KDF (PKCS#11 CKD_NULL): the key value is Z, the shared x coordinate. A template
//     shorter than Z keeps Z's trailing bytes, as SoftHSM2 does (SoftHSM.cpp deriveECDH: "remove from
//     the leading end"); a template longer than Z is COFFER_KEY_SIZE_RANGE. SP 800-56A r3 §5.8 wants
//     Z to pass through a KDF: derive a generic secret with ECDH and feed it to HKDF or SP 800-108
//     on the device. FIPS mode allows the null KDF only for that: a GENERIC_SECRET result.
//   - HKDF: extract-then-expand with the given hash (SHA-1 or SHA-2; SP 800-56C r2 §5 allows any
//     approved hash), `salt` absent = HashLen zeros (RFC 5869 §2.2), `info` up to 1024 bytes (the
//     limit of node's hkdfSync). Base key: GENERIC_SECRET or AES.
//   - SP 800-108: counter before the fixed input, r = 32, fixed input = Label || 0x00 || Context ||
//     [L]_32 (SP 800-108r1 §5), by crypto/kdf_sp800_108.ts. The label must not contain 0x00 (it would
//     make the split between label and context ambiguous). Base key: GENERIC_SECRET or AES.

import { hkdfSync } from 'node:crypto';
import { fail } from '../../errors.js';
import { SecretBytes, deriveKeyCounterHmacSha256, secretKeyObject } from '../../crypto/index.js';
import { GENERIC_SECRET_BITS_MAX, GENERIC_SECRET_BITS_MIN, MECHANISM_PARAM_BYTES_MAX } from '../../formats/limits.js';
import { ecdhSharedSecret, ecCurveOf, checkPeerPointShape } from './mech_ec.js';
import { HASH_BYTES, NODE_HASH, isHashName } from './mech_hash.js';
import type { KeyMaterial } from './mech_keys.js';
import type { KeyType, MechanismParams } from '../types.js';

type DeriveParams = Extract<MechanismParams, { mechanism: 'CKM_ECDH1_DERIVE' | 'CKM_HKDF_DERIVE' | 'CKM_SP800_108_COUNTER_KDF' }>;

export interface DeriveTemplate {
  readonly keyType: KeyType;
  readonly bits: number;
}

/** node's hkdfSync refuses longer info (OpenSSL's HKDF info buffer). */
export const HKDF_INFO_BYTES_MAX = 1024;
/** Derived generic secrets stop at GENERIC_SECRET_BITS_MAX = 1024 bytes, within SP 800-108's KDF_OUTPUT_BYTES_MAX. */
const AES_DERIVED_BITS: readonly number[] = [128, 192, 256];

/** The derived key's template: a secret key type and a length that type allows. */
export function checkDeriveTemplate(template: DeriveTemplate): void {
  const { keyType, bits } = template;
  if (keyType === 'AES') {
    if (!AES_DERIVED_BITS.includes(bits)) fail('COFFER_KEY_SIZE_RANGE', { keyType, bits });
  } else if (keyType === 'GENERIC_SECRET') {
    if (!Number.isInteger(bits) || bits % 8 !== 0 || bits < GENERIC_SECRET_BITS_MIN || bits > GENERIC_SECRET_BITS_MAX) fail('COFFER_KEY_SIZE_RANGE', { keyType, bits });
  } else {
    fail('COFFER_TEMPLATE_INCONSISTENT', { attribute: 'keyType' });
  }
}

/** Mode-independent checks of derivation parameters against the base key and the template. */
export function checkDeriveParams(p: DeriveParams, baseKey: KeyMaterial, template?: DeriveTemplate): void {
  switch (p.mechanism) {
    case 'CKM_ECDH1_DERIVE': {
      const curve = ecCurveOf(baseKey);
      checkPeerPointShape(curve, p.publicKey);
      const zBits = Math.ceil(baseKey.bits / 8) * 8;
      if (template !== undefined && template.bits > zBits) fail('COFFER_KEY_SIZE_RANGE', { bits: template.bits });
      return;
    }
    case 'CKM_HKDF_DERIVE':
      if (!isHashName(p.hash)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'hash' });
      if (p.salt !== undefined && p.salt.length > MECHANISM_PARAM_BYTES_MAX) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'salt' });
      if (p.info !== undefined && p.info.length > HKDF_INFO_BYTES_MAX) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'info' });
      if (template !== undefined && template.bits > 255 * 8 * HASH_BYTES[p.hash]) fail('COFFER_KEY_SIZE_RANGE', { bits: template.bits });
      return;
    case 'CKM_SP800_108_COUNTER_KDF':
      if (p.label.length > MECHANISM_PARAM_BYTES_MAX || p.label.includes(0)) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'label' });
      if (p.context.length > MECHANISM_PARAM_BYTES_MAX) fail('COFFER_MECHANISM_PARAM_INVALID', { param: 'context' });
      return;
  }
}

/** The derived key. Intermediate bytes (Z, OKM) travel as SecretBytes and are zeroised before returning. */
export function derive(p: DeriveParams, baseKey: KeyMaterial, template: DeriveTemplate): KeyMaterial {
  checkDeriveTemplate(template);
  checkDeriveParams(p, baseKey, template);
  const bytes = deriveBytes(p, baseKey, template.bits / 8);
  try {
    const keyType = template.keyType === 'AES' ? 'AES' : 'GENERIC_SECRET';
    return { class: 'SECRET_KEY', keyType, key: secretKeyObject(bytes), bits: template.bits };
  } finally {
    bytes.destroy();
  }
}

function deriveBytes(p: DeriveParams, baseKey: KeyMaterial, lengthBytes: number): SecretBytes {
  switch (p.mechanism) {
    case 'CKM_ECDH1_DERIVE': {
      const z = ecdhSharedSecret(baseKey, p.publicKey);
      try {
        return SecretBytes.copyOf(z.subarray(z.length - lengthBytes)); // keep the trailing bytes
      } finally {
        z.fill(0);
      }
    }
    case 'CKM_HKDF_DERIVE': {
      const salt = p.salt ?? new Uint8Array(0); // empty salt = HashLen zeros (RFC 5869 §2.2)
      // hkdfSync returns a fresh ArrayBuffer nobody else holds: adopt it rather than copy it.
      return SecretBytes.adopt(new Uint8Array(hkdfSync(NODE_HASH[p.hash], baseKey.key, salt, p.info ?? new Uint8Array(0), lengthBytes)));
    }
    case 'CKM_SP800_108_COUNTER_KDF':
      return deriveKeyCounterHmacSha256(baseKey.key, p.label, p.context, lengthBytes);
  }
}
