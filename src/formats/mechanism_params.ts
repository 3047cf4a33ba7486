// Mechanism parameters (PKCS#11 CKM_* names), in formats/ because both the device (hsm/) and the
// wire codecs (formats/wire_ops.ts) speak them: one definition, so the two cannot drift apart.

export type HashName = 'SHA-1' | 'SHA-224' | 'SHA-256' | 'SHA-384' | 'SHA-512';

/** AES's block (FIPS 197): the CBC and CTR IV, and the unit of ECB and CBC input (SP 800-38A). */
export const AES_BLOCK_BYTES = 16;

/** Mechanism parameters: one variant per mechanism family (PKCS#11 CKM_* names). */
export type MechanismParams =
  | { readonly mechanism: 'CKM_AES_GCM'; readonly iv?: Uint8Array; readonly aad?: Uint8Array; readonly tagBytes?: number }
  | { readonly mechanism: 'CKM_AES_CBC_PAD'; readonly iv: Uint8Array }
  | { readonly mechanism: 'CKM_AES_CBC'; readonly iv: Uint8Array }
  | { readonly mechanism: 'CKM_AES_ECB' }
  | { readonly mechanism: 'CKM_AES_CTR'; readonly iv: Uint8Array; readonly counterBits?: number }
  | { readonly mechanism: 'CKM_AES_CMAC' }
  | { readonly mechanism: 'CKM_AES_KEY_WRAP' }
  | { readonly mechanism: 'CKM_AES_KEY_WRAP_PAD' }
  | { readonly mechanism: 'CKM_RSA_PKCS' }
  | { readonly mechanism: 'CKM_SHA224_RSA_PKCS' | 'CKM_SHA256_RSA_PKCS' | 'CKM_SHA384_RSA_PKCS' | 'CKM_SHA512_RSA_PKCS' }
  | { readonly mechanism: 'CKM_RSA_PKCS_PSS'; readonly hash: HashName; readonly saltBytes?: number }
  | {
      readonly mechanism: 'CKM_SHA224_RSA_PKCS_PSS' | 'CKM_SHA256_RSA_PKCS_PSS' | 'CKM_SHA384_RSA_PKCS_PSS' | 'CKM_SHA512_RSA_PKCS_PSS';
      readonly saltBytes?: number;
    }
  | { readonly mechanism: 'CKM_RSA_PKCS_OAEP'; readonly hash: HashName; readonly label?: Uint8Array }
  | { readonly mechanism: 'CKM_ECDSA' }
  | { readonly mechanism: 'CKM_ECDSA_SHA224' | 'CKM_ECDSA_SHA256' | 'CKM_ECDSA_SHA384' | 'CKM_ECDSA_SHA512' }
  | { readonly mechanism: 'CKM_EDDSA' }
  | { readonly mechanism: 'CKM_SHA224_HMAC' | 'CKM_SHA256_HMAC' | 'CKM_SHA384_HMAC' | 'CKM_SHA512_HMAC' }
  | { readonly mechanism: 'CKM_SHA224' | 'CKM_SHA256' | 'CKM_SHA384' | 'CKM_SHA512' }
  | { readonly mechanism: 'CKM_ECDH1_DERIVE'; readonly publicKey: Uint8Array }
  | { readonly mechanism: 'CKM_HKDF_DERIVE'; readonly hash: HashName; readonly salt?: Uint8Array; readonly info?: Uint8Array }
  | { readonly mechanism: 'CKM_SP800_108_COUNTER_KDF'; readonly label: Uint8Array; readonly context: Uint8Array };

export type MechanismName = MechanismParams['mechanism'];
