// Every limit in one place (STYLE.md rule 5). Each is a named constant with the reason it exists.
// A length read from input is checked against one of these before it is used.

/** CloudHSM's own limits on user names; longer names are refused, comparison is case-insensitive. */
export const USER_NAME_CHARS_MAX = 31;
/** CloudHSM's password length rules (PIN length range). */
export const PASSWORD_CHARS_MIN = 8;
export const PASSWORD_CHARS_MAX = 32;
/** Failed logins before a user is locked; an admin unlocks. */
export const LOGIN_FAILURES_MAX = 5;
/** Users per HSM (CloudHSM allows 1024 users per cluster). */
export const USERS_MAX = 1024;
/** Quorum M of N: at least 2 approvers (1 would be no quorum), at most 8 (CloudHSM's limit). */
export const QUORUM_MIN = 2;
export const QUORUM_MAX = 8;
/** Quorum tokens expire after 10 minutes, as CloudHSM's do. */
export const QUORUM_TOKEN_TTL_MS = 10 * 60 * 1000;
/** Outstanding quorum tokens per HSM: bounded so a client cannot grow state without end. */
export const QUORUM_TOKENS_MAX = 1024;
/** An object may be shared with at most 7 users besides its owner (DESIGN.md §4). */
export const SHAREES_MAX = 7;
/** Token objects per HSM. CloudHSM hsm2m holds 16,666 keys; a software HSM can hold more, bounded
 * so a backup of a full device still fits the backup format's limits. */
export const OBJECTS_MAX = 250_000;
/** Labels and ids, as bytes: room for any realistic PKCS#11 label, small enough to index. */
export const LABEL_BYTES_MAX = 256;
export const OBJECT_ID_BYTES_MAX = 256;
/** One sealed record's plaintext: the largest object (an RSA-4096 private key with attributes) is
 * a few KiB; a MiB leaves room for certificates and policies while bounding memory per read. */
export const SEALED_RECORD_BYTES_MAX = 1024 * 1024;
/** Data given to a single-part crypto call. */
export const CRYPTO_INPUT_BYTES_MAX = 16 * 1024 * 1024;
