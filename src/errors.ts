// The one registry of expected failures (CONTRIBUTING.md rule 2). Every code is stable: clients, docs and
// the PKCS#11 and HTTP mappings key on it. A test keeps docs/errors.md in step with this table.
// Messages are fixed text: no secret, no caller input, nothing that says which check of an
// authentication failed. Programmer bugs are asserts (src/assert.ts), not entries here.
//
// This module is below every layer (crypto ← formats ← hsm ← …): anything may import it.

/** How an expected failure is described and mapped. */
export interface ErrorSpec {
  /** Fixed, human-readable text. Never includes secrets or caller-supplied values. */
  readonly message: string;
  /** The PKCS#11 return value a bridge reports for it. */
  readonly ckr: string;
  /** The HTTP status an API reports for it. */
  readonly http: number;
}

export const ERRORS = {
  // ── crypto ──────────────────────────────────────────────────────────────────────────────
  COFFER_CRYPTO_KEY_SIZE: { message: 'Key has an unsupported length for this algorithm', ckr: 'CKR_KEY_SIZE_RANGE', http: 400 },
  COFFER_CRYPTO_INPUT_LENGTH: { message: 'Input has an invalid length for this algorithm', ckr: 'CKR_DATA_LEN_RANGE', http: 400 },
  COFFER_CRYPTO_UNWRAP_FAILED: { message: 'Key unwrap failed its integrity check', ckr: 'CKR_WRAPPED_KEY_INVALID', http: 400 },
  COFFER_CRYPTO_AEAD_TAMPERED: { message: 'Encrypted stream failed authentication: altered, reordered, truncated or extended', ckr: 'CKR_ENCRYPTED_DATA_INVALID', http: 400 },
  COFFER_CRYPTO_DECRYPT_FAILED: { message: 'Decryption failed authentication', ckr: 'CKR_ENCRYPTED_DATA_INVALID', http: 400 },
  COFFER_CRYPTO_SIGNATURE_INVALID: { message: 'Signature did not verify', ckr: 'CKR_SIGNATURE_INVALID', http: 400 },
  COFFER_CRYPTO_UNSUPPORTED_CURVE: { message: 'Curve is not supported', ckr: 'CKR_CURVE_NOT_SUPPORTED', http: 400 },
  COFFER_CRYPTO_DIGEST_LENGTH: { message: 'Digest length does not suit the curve', ckr: 'CKR_DATA_LEN_RANGE', http: 400 },
  COFFER_CRYPTO_KCV_MISMATCH: { message: 'Key check value does not match', ckr: 'CKR_KEY_HANDLE_INVALID', http: 400 },
  COFFER_CRYPTO_SECRET_DESTROYED: { message: 'Secret was already zeroised', ckr: 'CKR_GENERAL_ERROR', http: 500 },
  COFFER_CRYPTO_KEY_INVALID: { message: 'Key is not a valid key of the expected type and curve', ckr: 'CKR_KEY_TYPE_INCONSISTENT', http: 400 },
  // ── formats ─────────────────────────────────────────────────────────────────────────────
  COFFER_FORMAT_BAD_MAGIC: { message: 'Input is not a Coffer record of the expected kind', ckr: 'CKR_DATA_INVALID', http: 400 },
  COFFER_FORMAT_UNKNOWN_VERSION: { message: 'Format version is not supported by this build', ckr: 'CKR_DATA_INVALID', http: 400 },
  COFFER_FORMAT_TRUNCATED: { message: 'Input ends before the record does', ckr: 'CKR_DATA_LEN_RANGE', http: 400 },
  COFFER_FORMAT_LIMIT: { message: 'A length exceeds its limit', ckr: 'CKR_DATA_LEN_RANGE', http: 400 },
  COFFER_FORMAT_MALFORMED: { message: 'Record is malformed', ckr: 'CKR_DATA_INVALID', http: 400 },
  // ── backup ──────────────────────────────────────────────────────────────────────────────
  COFFER_BACKUP_TAMPERED: { message: 'Backup failed authentication: altered, truncated, reordered or extended', ckr: 'CKR_ENCRYPTED_DATA_INVALID', http: 400 },
  COFFER_BACKUP_UNTRUSTED: { message: 'Backup does not come from a device this device trusts', ckr: 'CKR_SIGNATURE_INVALID', http: 400 },
  COFFER_BACKUP_MODE_MISMATCH: { message: 'Backup was made in the other mode (FIPS / non-FIPS)', ckr: 'CKR_FUNCTION_REJECTED', http: 400 },
  COFFER_BACKUP_WRONG_KEYS: { message: 'Backup was sealed under other manufacturer or operator keys', ckr: 'CKR_WRAPPING_KEY_HANDLE_INVALID', http: 400 },
  // ── sealed store ────────────────────────────────────────────────────────────────────────
  COFFER_STORE_TAMPERED: { message: 'Sealed store record failed authentication', ckr: 'CKR_DEVICE_ERROR', http: 500 },
  COFFER_STORE_WRONG_DEVICE: { message: 'Sealed store belongs to another device or the device secret is wrong', ckr: 'CKR_DEVICE_ERROR', http: 500 },
  COFFER_STORE_CLOSED: { message: 'Sealed store is closed', ckr: 'CKR_DEVICE_REMOVED', http: 503 },
  COFFER_STORE_FULL: { message: 'Device object capacity reached', ckr: 'CKR_DEVICE_MEMORY', http: 507 },
  COFFER_STORE_NOT_FOUND: { message: 'No sealed store exists at the given path', ckr: 'CKR_DEVICE_ERROR', http: 500 },
  COFFER_STORE_EXISTS: { message: 'A sealed store already exists at the given path', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_STORE_IN_USE: { message: 'Sealed store is open in another process or connection', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  // ── device identity, manufacture, commissioning ─────────────────────────────────────────
  COFFER_DEVICE_NOT_MANUFACTURED: { message: 'Device has not been manufactured', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_DEVICE_ALREADY_MANUFACTURED: { message: 'Device was already manufactured', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_DEVICE_NOT_COMMISSIONED: { message: 'Device has not been commissioned by an operator', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_DEVICE_ALREADY_COMMISSIONED: { message: 'Device was already commissioned', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_FIRMWARE_UNVERIFIED: { message: 'Firmware manifest does not verify against the manufacturer signing key', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_CERT_INVALID: { message: 'Certificate does not verify against the expected root', ckr: 'CKR_CERTIFICATE_INVALID', http: 400 },
  COFFER_AKBK_COMPONENT_KCV: { message: 'AKBK component does not match its key check value', ckr: 'CKR_KEY_HANDLE_INVALID', http: 400 },
  COFFER_AKBK_KCV: { message: 'Combined AKBK does not match its key check value', ckr: 'CKR_KEY_HANDLE_INVALID', http: 400 },
  COFFER_AKBK_COMPONENTS: { message: 'AKBK needs at least two separately entered components', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_FIPS_REFUSED: { message: 'Mechanism or key size is not approved in FIPS mode', ckr: 'CKR_MECHANISM_INVALID', http: 400 },
  COFFER_DEVICE_NO_IDENTITY: { message: 'Device has not generated its identity key yet', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_DEVICE_IDENTITY_EXISTS: { message: 'Device identity key was already generated', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_AKBK_CUSTODIAN: { message: 'Each AKBK component must be entered by a different, named custodian', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_AKBK_INSTALL_INACTIVE: { message: 'No AKBK installation is in progress', ckr: 'CKR_OPERATION_NOT_INITIALIZED', http: 409 },
  // ── users and sessions ──────────────────────────────────────────────────────────────────
  COFFER_AUTH_FAILED: { message: 'Login failed', ckr: 'CKR_PIN_INCORRECT', http: 401 },
  COFFER_USER_LOCKED: { message: 'Login failed', ckr: 'CKR_PIN_LOCKED', http: 401 },
  COFFER_SESSION_CLOSED: { message: 'Session is closed', ckr: 'CKR_SESSION_HANDLE_INVALID', http: 400 },
  COFFER_NOT_LOGGED_IN: { message: 'Not logged in', ckr: 'CKR_USER_NOT_LOGGED_IN', http: 401 },
  COFFER_ALREADY_LOGGED_IN: { message: 'Already logged in', ckr: 'CKR_USER_ALREADY_LOGGED_IN', http: 409 },
  COFFER_PERMISSION_DENIED: { message: 'Operation not permitted for this user', ckr: 'CKR_USER_TYPE_INVALID', http: 403 },
  COFFER_USER_EXISTS: { message: 'A user with this name already exists', ckr: 'CKR_USER_ALREADY_LOGGED_IN', http: 409 },
  COFFER_USER_NOT_FOUND: { message: 'User not found', ckr: 'CKR_USER_PIN_NOT_INITIALIZED', http: 404 },
  COFFER_USER_NAME_INVALID: { message: 'User name must be 1-31 characters of letters, digits, underscore or hyphen', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_PASSWORD_INVALID: { message: 'Password must be 8-32 characters', ckr: 'CKR_PIN_LEN_RANGE', http: 400 },
  COFFER_USER_LIMIT: { message: 'User capacity reached', ckr: 'CKR_DEVICE_MEMORY', http: 507 },
  COFFER_USER_IN_USE: { message: 'User still owns or shares objects, or is the last admin', ckr: 'CKR_FUNCTION_FAILED', http: 409 },
  // ── quorum ──────────────────────────────────────────────────────────────────────────────
  COFFER_QUORUM_REQUIRED: { message: 'Operation needs quorum approval', ckr: 'CKR_FUNCTION_REJECTED', http: 403 },
  COFFER_QUORUM_TOKEN_INVALID: { message: 'Quorum token is unknown, used or expired', ckr: 'CKR_FUNCTION_REJECTED', http: 403 },
  COFFER_QUORUM_APPROVAL_INVALID: { message: 'Quorum approval does not verify', ckr: 'CKR_SIGNATURE_INVALID', http: 403 },
  COFFER_QUORUM_VALUE_INVALID: { message: 'Quorum value must be between 2 and 8 and not exceed the registered approvers', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_QUORUM_TOKEN_LIMIT: { message: 'Too many outstanding quorum tokens', ckr: 'CKR_DEVICE_MEMORY', http: 503 },
  COFFER_QUORUM_KEY_INVALID: { message: 'Quorum key must be an RSA 2048-8192 bit or EC P-256/P-384 public key', ckr: 'CKR_PUBLIC_KEY_INVALID', http: 400 },
  // ── objects and mechanisms ──────────────────────────────────────────────────────────────
  COFFER_OBJECT_NOT_FOUND: { message: 'Object handle is not valid for this user', ckr: 'CKR_OBJECT_HANDLE_INVALID', http: 404 },
  COFFER_ATTRIBUTE_INVALID: { message: 'Attribute value is invalid', ckr: 'CKR_ATTRIBUTE_VALUE_INVALID', http: 400 },
  COFFER_ATTRIBUTE_READ_ONLY: { message: 'Attribute cannot be changed', ckr: 'CKR_ATTRIBUTE_READ_ONLY', http: 400 },
  COFFER_ATTRIBUTE_SENSITIVE: { message: 'Attribute is sensitive or the key is not extractable', ckr: 'CKR_ATTRIBUTE_SENSITIVE', http: 403 },
  COFFER_TEMPLATE_INCONSISTENT: { message: 'Template attributes are inconsistent', ckr: 'CKR_TEMPLATE_INCONSISTENT', http: 400 },
  COFFER_MECHANISM_INVALID: { message: 'Mechanism is not supported', ckr: 'CKR_MECHANISM_INVALID', http: 400 },
  COFFER_MECHANISM_PARAM_INVALID: { message: 'Mechanism parameters are invalid', ckr: 'CKR_MECHANISM_PARAM_INVALID', http: 400 },
  COFFER_KEY_FUNCTION_NOT_PERMITTED: { message: 'Key attributes do not permit this operation', ckr: 'CKR_KEY_FUNCTION_NOT_PERMITTED', http: 403 },
  COFFER_KEY_TYPE_INCONSISTENT: { message: 'Key type does not suit the mechanism', ckr: 'CKR_KEY_TYPE_INCONSISTENT', http: 400 },
  COFFER_KEY_SIZE_RANGE: { message: 'Key size is outside the supported range', ckr: 'CKR_KEY_SIZE_RANGE', http: 400 },
  COFFER_KEY_NOT_WRAPPABLE: { message: 'Key may not be wrapped with this wrapping key', ckr: 'CKR_KEY_NOT_WRAPPABLE', http: 403 },
  COFFER_KEY_UNEXTRACTABLE: { message: 'Key is not extractable', ckr: 'CKR_KEY_UNEXTRACTABLE', http: 403 },
  COFFER_OBJECT_NOT_DESTROYABLE: { message: 'Object is not destroyable', ckr: 'CKR_ACTION_PROHIBITED', http: 403 },
  COFFER_OBJECT_NOT_COPYABLE: { message: 'Only public keys and session objects of private and secret keys can be copied', ckr: 'CKR_ACTION_PROHIBITED', http: 403 },
  COFFER_SHARE_LIMIT: { message: 'An object can be shared with at most 7 users', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_DATA_INVALID: { message: 'Input data is invalid for this operation', ckr: 'CKR_DATA_INVALID', http: 400 },
  COFFER_DATA_LEN_RANGE: { message: 'Input data length is out of range', ckr: 'CKR_DATA_LEN_RANGE', http: 400 },
  COFFER_ENCRYPTED_DATA_INVALID: { message: 'Ciphertext failed authentication or is malformed', ckr: 'CKR_ENCRYPTED_DATA_INVALID', http: 400 },
  COFFER_ENCRYPTED_DATA_LEN_RANGE: { message: 'Ciphertext length is out of range for this mechanism', ckr: 'CKR_ENCRYPTED_DATA_LEN_RANGE', http: 400 },
  COFFER_SIGNATURE_INVALID: { message: 'Signature did not verify', ckr: 'CKR_SIGNATURE_INVALID', http: 400 },
  COFFER_WRAPPED_KEY_INVALID: { message: 'Wrapped key failed its integrity check or is malformed', ckr: 'CKR_WRAPPED_KEY_INVALID', http: 400 },
  COFFER_SESSION_OBJECT_NOT_SHAREABLE: { message: 'Session objects cannot be shared', ckr: 'CKR_ACTION_PROHIBITED', http: 400 },
  COFFER_OBJECT_MISMATCH: { message: 'The object at this handle is not the one the request names', ckr: 'CKR_OBJECT_HANDLE_INVALID', http: 409 },
  // ── device state (the one writer) ─────────────────────────────────────────────────────────
  COFFER_DEVICE_BUSY: { message: 'Too many state changes are waiting on this device; retry', ckr: 'CKR_DEVICE_MEMORY', http: 503 },
  // ── cluster identity (the cluster key, its certificate and the customer's trust anchor) ──────
  COFFER_CLUSTER_NOT_INITIALISED: { message: 'Cluster is not initialised on this device', ckr: 'CKR_OPERATION_NOT_INITIALIZED', http: 409 },
  COFFER_CLUSTER_ALREADY_INITIALISED: { message: 'Cluster is already initialised on this device', ckr: 'CKR_FUNCTION_REJECTED', http: 409 },
  COFFER_CLUSTER_NO_CSR: { message: 'No cluster key exists yet: ask for the cluster CSR first', ckr: 'CKR_OPERATION_NOT_INITIALIZED', http: 409 },
  COFFER_CLUSTER_CERT_MISMATCH: { message: 'Certificate is not for this cluster key or does not chain to the trust anchor', ckr: 'CKR_CERTIFICATE_INVALID', http: 400 },
  COFFER_CLUSTER_ALREADY_ACTIVE: { message: 'Cluster is already active: log in as an admin instead of activating it again', ckr: 'CKR_FUNCTION_REJECTED', http: 409 },
  // ── node and client (data plane) ──────────────────────────────────────────────────────────
  COFFER_NODE_BUSY: { message: 'Node is at capacity; retry after the hint', ckr: 'CKR_DEVICE_MEMORY', http: 503 },
  COFFER_CONNECTION_LOST: { message: 'Connection to the node was lost', ckr: 'CKR_DEVICE_REMOVED', http: 503 },
  COFFER_OPERATION_UNSUPPORTED: { message: 'Operation is not supported by this node', ckr: 'CKR_FUNCTION_NOT_SUPPORTED', http: 501 },
  COFFER_SESSION_LIMIT: { message: 'Too many sessions on this connection', ckr: 'CKR_SESSION_COUNT', http: 503 },
  COFFER_HELLO_REPEATED: { message: 'HELLO was already negotiated on this connection', ckr: 'CKR_CRYPTOKI_ALREADY_INITIALIZED', http: 409 },
  COFFER_NODE_UNTRUSTED: { message: 'Node did not prove it belongs to the cluster (certificate not trusted)', ckr: 'CKR_DEVICE_ERROR', http: 502 },
  COFFER_CLUSTER_UNAVAILABLE: { message: 'No HSM of the cluster could serve the request', ckr: 'CKR_DEVICE_REMOVED', http: 503 },
  COFFER_KEY_UNAVAILABLE: { message: 'No HSM known to hold this key as it was found is up; retry later or find the key again', ckr: 'CKR_DEVICE_REMOVED', http: 503 },
  COFFER_REQUEST_TIMEOUT: { message: 'Request timed out', ckr: 'CKR_DEVICE_ERROR', http: 504 },
  COFFER_NODE_ZEROISED: { message: 'Node was zeroised and holds no state', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_CLIENT_CONFIG_INVALID: { message: 'Client configuration (endpoints, discovery input or options) is invalid', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_CLIENT_CONFIG_UNREADABLE: { message: 'Cluster config file, or the CA certificate file it names, cannot be read', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_HANDLE_OUT_OF_RANGE: { message: 'Object handle is out of range: handles are integers from 1 to 2^53-1', ckr: 'CKR_OBJECT_HANDLE_INVALID', http: 400 },
  COFFER_MANAGEMENT_REQUEST: { message: 'Management request is not valid', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  // ── control plane: metadata store (src/storage/metadata_*) ────────────────────────────────
  COFFER_METADATA_CONFLICT: { message: 'Metadata changed since it was read: nothing was written', ckr: 'CKR_FUNCTION_FAILED', http: 409 },
  COFFER_METADATA_LIMIT: { message: 'Metadata id, document, page or commit exceeds its limit', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_JOURNAL_CONFLICT: { message: 'Journal sequence number is not the next one: nothing was appended', ckr: 'CKR_FUNCTION_FAILED', http: 409 },
  COFFER_METADATA_UNAVAILABLE: { message: 'Metadata store cannot be reached', ckr: 'CKR_DEVICE_ERROR', http: 503 },
  COFFER_METADATA_INVALID: { message: 'Metadata request is malformed: an id, collection, document text or number is not acceptable', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_METADATA_SCHEMA_UNSUPPORTED: { message: 'Metadata database was written by a newer version of Coffer: upgrade before using it', ckr: 'CKR_DEVICE_ERROR', http: 500 },
  // ── control plane: backup archive (src/storage/archive_*) ────────────────────────────────
  COFFER_ARCHIVE_EXISTS: { message: 'Archive object already exists and is never overwritten', ckr: 'CKR_FUNCTION_FAILED', http: 409 },
  COFFER_ARCHIVE_NOT_FOUND: { message: 'Archive object does not exist', ckr: 'CKR_FUNCTION_FAILED', http: 404 },
  COFFER_ARCHIVE_LIMIT: { message: 'Archive key or object size is not allowed', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_ARCHIVE_UNAVAILABLE: { message: 'Archive cannot be reached', ckr: 'CKR_DEVICE_ERROR', http: 503 },
  // ── control plane: fleet (src/service/fleet/) ─────────────────────────────────────────────
  COFFER_FLEET_EXHAUSTED: { message: 'No device can be provisioned from the fleet', ckr: 'CKR_DEVICE_ERROR', http: 503 },
  COFFER_FLEET_DEVICE_LOST: { message: 'Device can no longer be found or restarted', ckr: 'CKR_DEVICE_REMOVED', http: 503 },
  COFFER_FLEET_MODE_MISMATCH: { message: 'Device was commissioned in the other mode (FIPS / non-FIPS) than the cluster needs', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  COFFER_FLEET_UNTRUSTED: { message: 'Node failed attestation against the manufacturer and operator roots', ckr: 'CKR_DEVICE_ERROR', http: 403 },
  COFFER_FLEET_DEVICE_START: { message: 'Device process did not start: see its log', ckr: 'CKR_DEVICE_ERROR', http: 503 },
  COFFER_FLEET_ADDRESS_UNAVAILABLE: { message: 'Requested device address is not available in this fleet', ckr: 'CKR_ARGUMENTS_BAD', http: 409 },
  COFFER_FLEET_NODE_NOT_BLANK: { message: 'Node holds a cluster: zeroise it before it joins the fleet', ckr: 'CKR_FUNCTION_REJECTED', http: 409 },
  // ── control plane: API (src/service/api/) ─────────────────────────────────────────────────
  COFFER_API_CONFIG_INVALID: { message: 'API access-key configuration is invalid', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  // ── cli ─────────────────────────────────────────────────────────────────────────────────
  COFFER_CLI_USAGE: { message: 'Invalid command line', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_CLI_INPUT: { message: 'Input file is not what the command expects', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_CLI_OUTPUT_EXISTS: { message: 'Output file already exists: remove it or choose another path (outputs are never overwritten)', ckr: 'CKR_ARGUMENTS_BAD', http: 409 },
  COFFER_CLI_OUTPUT_UNWRITABLE: { message: 'Output file cannot be created: check that its directory exists and is writable', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_CLI_FILTER_AMBIGUOUS: { message: 'Key filter matched more than one key: narrow it, e.g. with key-reference=0x…', ckr: 'CKR_ARGUMENTS_BAD', http: 409 },
  COFFER_CLI_PASSWORD_MISMATCH: { message: 'The two passwords entered do not match', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_CLI_INPUT_ENDED: { message: 'Input ended while a password was expected', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  // ── cluster journal: sealed entries and the cluster sync key (formats/journal_entry.ts) ──────
  COFFER_JOURNAL_TAMPERED: { message: 'Journal entry failed authentication: altered, truncated or extended', ckr: 'CKR_ENCRYPTED_DATA_INVALID', http: 400 },
  COFFER_JOURNAL_WRONG_KEY: { message: 'Journal entry was not sealed under this cluster sync key', ckr: 'CKR_KEY_HANDLE_INVALID', http: 400 },
  COFFER_JOURNAL_WRONG_CLUSTER: { message: 'Journal entry belongs to another cluster', ckr: 'CKR_DATA_INVALID', http: 400 },
  COFFER_JOURNAL_OUT_OF_ORDER: { message: 'Journal entry is not the next one: replayed, reordered, or an entry before it is missing', ckr: 'CKR_DATA_INVALID', http: 409 },
  COFFER_JOURNAL_FORK: { message: 'Journal entry does not follow the entry this HSM applied before it: the journal has forked', ckr: 'CKR_DATA_INVALID', http: 409 },
  COFFER_JOURNAL_NO_SYNC_KEY: { message: 'This HSM holds no cluster sync key: the cluster is not initialised, or was initialised by an older version', ckr: 'CKR_OPERATION_NOT_INITIALIZED', http: 409 },
  // ── control plane: peer regions (src/service/peer_config.ts, copy_http.ts) ──────────────────
  COFFER_PEER_CONFIG_INVALID: { message: 'Peer region configuration is invalid', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  // ── remote fleet registry (src/service/fleet/remote_fleet.ts) ─────────────────────────────
  COFFER_FLEET_NODE_UNKNOWN: { message: 'No registered node matches', ckr: 'CKR_ARGUMENTS_BAD', http: 404 },
  // `coffer fleet` (src/cli/fleet_commands.ts): the control plane's answer
  COFFER_SERVICE_REFUSED: { message: 'The control plane refused the request', ckr: 'CKR_FUNCTION_FAILED', http: 502 },
  COFFER_SERVICE_UNREACHABLE: { message: 'The control plane cannot be reached', ckr: 'CKR_DEVICE_REMOVED', http: 503 },
  // ── PKCS#11 bridge: the p11-kit RPC protocol (src/pkcs11/, docs/pkcs11.md) ──────────────────
  COFFER_P11_FRAME_INVALID: { message: 'p11-kit RPC frame is malformed or exceeds its limit: the connection is closed', ckr: 'CKR_DEVICE_ERROR', http: 400 },
  COFFER_P11_CALL_UNKNOWN: { message: 'p11-kit RPC call id or signature is not one this protocol version defines', ckr: 'CKR_DEVICE_ERROR', http: 400 },
  COFFER_P11_MESSAGE_MALFORMED: { message: 'p11-kit RPC message arguments do not match the call signature', ckr: 'CKR_DEVICE_ERROR', http: 400 },
  COFFER_P11_LIMIT: { message: 'A p11-kit RPC count or length exceeds its limit', ckr: 'CKR_DEVICE_MEMORY', http: 400 },
  COFFER_P11_MECHANISM_UNCARRIED: { message: 'Mechanism parameter encoding is not known for this mechanism and protocol version', ckr: 'CKR_MECHANISM_INVALID', http: 400 },
  COFFER_P11_ATTRIBUTE_UNCARRIED: { message: 'Attribute value encoding is not known for this attribute type and protocol version', ckr: 'CKR_ATTRIBUTE_TYPE_INVALID', http: 400 },
  COFFER_P11_HANDSHAKE_INVALID: { message: 'C_Initialize did not carry the p11-kit RPC handshake string', ckr: 'CKR_GENERAL_ERROR', http: 400 },
  COFFER_P11_TIMEOUT: { message: 'p11-kit RPC peer did not finish its version byte or a frame in time: the connection is closed', ckr: 'CKR_DEVICE_ERROR', http: 408 },
  // ── cluster journal on the device: journaled state changes, delivery, faults (hsm/state/journal.ts) ──
  COFFER_JOURNAL_NOT_APPENDED: { message: 'State change was not ordered by the cluster journal in time and was withdrawn: it is not in the journal', ckr: 'CKR_FUNCTION_FAILED', http: 503 },
  COFFER_JOURNAL_OUTCOME_UNKNOWN: { message: 'State change was handed to the cluster journal but not confirmed in time: it is in the journal wholly or not at all', ckr: 'CKR_FUNCTION_FAILED', http: 504 },
  COFFER_JOURNAL_RETRIES_EXHAUSTED: { message: 'State change lost the race for the next journal position too many times; nothing was changed', ckr: 'CKR_FUNCTION_FAILED', http: 503 },
  COFFER_JOURNAL_HALTED: { message: 'This HSM refused a journal entry and applies no more until it is restored or replaced; state changes are refused', ckr: 'CKR_DEVICE_ERROR', http: 503 },
  COFFER_JOURNAL_FORGED: { message: 'Journal entry names this HSM as its originator but this HSM did not prepare it', ckr: 'CKR_DATA_INVALID', http: 409 },
  // ── control plane: the journal relay (src/service/journal_relay.ts) ─────────────────────────────
  COFFER_JOURNAL_NOT_CAUGHT_UP: { message: 'The HSM did not catch up with the cluster journal', ckr: 'CKR_DEVICE_ERROR', http: 503 },
  // ── a cluster created from a backup gets its own journal; nodes' journal modes (hsm/identity/cluster.ts, service/fleet/) ──
  COFFER_JOURNAL_GENESIS_REFUSED: { message: 'A new cluster journal is started only on an HSM freshly restored from a backup of another cluster', ckr: 'CKR_FUNCTION_FAILED', http: 409 },
  COFFER_FLEET_JOURNAL_MODE_MISMATCH: { message: 'The node runs its cluster journal in another mode than this service relays', ckr: 'CKR_DEVICE_ERROR', http: 409 },
  // ── SDK: acknowledgements and the client's fork check (src/client/acks.ts, docs/sdk.md) ─────────
  COFFER_ACKS_NOT_MET: { message: 'State change is in the cluster journal, but fewer HSMs than required acknowledged it in time', ckr: 'CKR_FUNCTION_FAILED', http: 504 },
  COFFER_CLUSTER_FORKED: { message: 'HSMs of this cluster hold different journal entries at one position: the HSMs that disagree with the acknowledged entry are no longer used', ckr: 'CKR_DEVICE_ERROR', http: 502 },
  // ── certificate objects (hsm/objects/certificates.ts, docs/device.md "Certificates") ─────────────
  COFFER_CERT_VALUE_INVALID: { message: 'Certificate value is not a DER X.509 certificate the HSM can store', ckr: 'CKR_ATTRIBUTE_VALUE_INVALID', http: 400 },
  COFFER_CERT_TEMPLATE_MISMATCH: { message: 'Certificate template disagrees with the certificate it carries', ckr: 'CKR_TEMPLATE_INCONSISTENT', http: 400 },
  // ── audit log (src/hsm/audit/, src/formats/audit_*.ts, docs/audit.md) ─────────────────────────────
  COFFER_AUDIT_FULL: { message: 'Audit log is full of records not yet collected: the operation is refused until the control plane collects them', ckr: 'CKR_DEVICE_MEMORY', http: 503 },
  COFFER_AUDIT_POSITION: { message: 'Audit log position is past the end of the log', ckr: 'CKR_ARGUMENTS_BAD', http: 400 },
  COFFER_AUDIT_DAMAGED: { message: 'Audit log file is damaged', ckr: 'CKR_DEVICE_ERROR', http: 500 },
  COFFER_AUDIT_UNVERIFIED: { message: 'Audit log does not verify: a record is altered, missing, out of order, foreign or unsigned', ckr: 'CKR_SIGNATURE_INVALID', http: 400 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Non-secret facts that help an operator: names, counts, versions. Never key bytes or passwords. */
export type ErrorDetail = Readonly<Record<string, string | number | boolean>>;

/** Every expected failure Coffer raises. `code` is stable; `message` is the registry's text. */
export class CofferError extends Error {
  readonly code: ErrorCode;
  readonly detail: ErrorDetail;

  constructor(code: ErrorCode, detail: ErrorDetail = {}, options?: { readonly cause?: unknown }) {
    super(ERRORS[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CofferError';
    this.code = code;
    this.detail = Object.freeze({ ...detail });
  }

  get ckr(): string {
    return ERRORS[this.code].ckr;
  }

  get http(): number {
    return ERRORS[this.code].http;
  }

  toJSON(): { code: ErrorCode; message: string; detail: ErrorDetail } {
    return { code: this.code, message: this.message, detail: this.detail };
  }
}

/** Throws the typed error for `code`. */
export function fail(code: ErrorCode, detail?: ErrorDetail, cause?: unknown): never {
  throw new CofferError(code, detail, cause === undefined ? undefined : { cause });
}

/** True when `e` is a CofferError, optionally of the given code. */
export function isCofferError(e: unknown, code?: ErrorCode): e is CofferError {
  return e instanceof CofferError && (code === undefined || e.code === code);
}

/** The registry rendered as Markdown: the body of docs/errors.md. */
export function renderErrorsDoc(): string {
  const lines = [
    '# Error codes',
    '',
    'Every expected failure in Coffer carries one of these stable codes. This page is generated from',
    '`src/errors.ts` (`npm run docs:errors`); a test fails when the two differ.',
    '',
    '| code | message | PKCS#11 | HTTP |',
    '|---|---|---|---|',
  ];
  for (const [code, spec] of Object.entries(ERRORS)) {
    lines.push(`| \`${code}\` | ${spec.message} | \`${spec.ckr}\` | ${spec.http} |`);
  }
  return lines.join('\n') + '\n';
}
