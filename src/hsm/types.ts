// The device's domain vocabulary, shared by users, quorum, objects and mechanisms (docs/architecture.md §4).
// Names follow PKCS#11 (CKO_/CKK_/CKM_/CKA_) where one exists, so that the PKCS#11 bridge and the
// CloudHSM-style CLI map onto them without translation tables of their own.

/** Roles of docs/architecture.md §4. `unactivated-admin` is the admin of a new cluster before activation. */
export type Role = 'admin' | 'crypto-user' | 'appliance' | 'unactivated-admin';

/** Who is asking. `userId` is the user name normalised to lower case (names are case-insensitive). */
export interface Actor {
  readonly userId: string;
  readonly role: Role;
  /** The application the request comes from (a data-plane connection, a PKCS#11 client): session
   * objects are visible only inside the scope that made them. Absent: any session of the owner. */
  readonly scope?: string;
}

export type Mode = 'FIPS' | 'NON_FIPS';

export type ObjectClass = 'SECRET_KEY' | 'PRIVATE_KEY' | 'PUBLIC_KEY' | 'CERTIFICATE';
export type KeyType = 'AES' | 'GENERIC_SECRET' | 'RSA' | 'EC' | 'EC_EDWARDS';
export type Curve = 'P-256' | 'P-384' | 'P-521' | 'secp256k1' | 'Ed25519';
export type { HashName } from '../formats/mechanism_params.js';

/** Cluster-wide object handle: the same object has the same handle on every HSM of a cluster. */
export type Handle = number;

/** A key as a request names it: its handle, or its handle and the identity of the object the caller
 * means (formats/object_record.ts objectIdentity). With an identity, an HSM whose object at that
 * handle is another one refuses with COFFER_OBJECT_MISMATCH rather than use it. */
export type KeyRef = Handle | { readonly handle: Handle; readonly identity: Uint8Array };

/** The boolean attributes of docs/architecture.md §4 (CKA_*), lower camel case. */
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

export type { MechanismParams, MechanismName } from '../formats/mechanism_params.js';
