// The device's domain vocabulary, shared by users, quorum, objects and mechanisms (DESIGN.md §4).
// Names follow PKCS#11 (CKO_/CKK_/CKM_/CKA_) where one exists, so that the PKCS#11 bridge and the
// CloudHSM-style CLI map onto them without translation tables of their own.

/** Roles of DESIGN.md §4. `unactivated-admin` is the admin of a new cluster before activation. */
export type Role = 'admin' | 'crypto-user' | 'appliance' | 'unactivated-admin';

/** Who is asking. `userId` is the user name normalised to lower case (names are case-insensitive). */
export interface Actor {
  readonly userId: string;
  readonly role: Role;
}

export type Mode = 'FIPS' | 'NON_FIPS';

export type ObjectClass = 'SECRET_KEY' | 'PRIVATE_KEY' | 'PUBLIC_KEY';
export type KeyType = 'AES' | 'GENERIC_SECRET' | 'RSA' | 'EC' | 'EC_EDWARDS';
export type Curve = 'P-256' | 'P-384' | 'P-521' | 'secp256k1' | 'Ed25519';
export type HashName = 'SHA-1' | 'SHA-224' | 'SHA-256' | 'SHA-384' | 'SHA-512';

/** Cluster-wide object handle: the same object has the same handle on every HSM of a cluster. */
export type Handle = number;

/** The boolean attributes of DESIGN.md §4 (CKA_*), lower camel case. */
export interface BooleanAttributes {
  token: boolean;
  sensitive: boolean;
  extractable: boolean;
  encrypt: boolean;
  decrypt: boolean;
  sign: boolean;
  verify: boolean;
  wrap: boolean;
  unwrap: boolean;
  derive: boolean;
  trusted: boolean;
  wrapWithTrusted: boolean;
  local: boolean;
  neverExtractable: boolean;
  alwaysSensitive: boolean;
  modifiable: boolean;
  destroyable: boolean;
}

/** What a mechanism is used for; matches the key attribute that must permit it. */
export type KeyFunction = 'encrypt' | 'decrypt' | 'sign' | 'verify' | 'wrap' | 'unwrap' | 'derive';

/** Mechanism parameters: one variant per mechanism family (PKCS#11 CKM_* names). */
export type MechanismParams =
  | { readonly mechanism: 'CKM_AES_GCM'; readonly iv?: Uint8Array; readonly aad?: Uint8Array; readonly tagBytes?: number }
  | { readonly mechanism: 'CKM_AES_CBC_PAD'; readonly iv: Uint8Array }
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
