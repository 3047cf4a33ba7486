// Every limit in one place (CONTRIBUTING.md rule 5). Each is a named constant with the reason it exists.
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
/** An object may be shared with at most 7 users besides its owner (docs/architecture.md §4). */
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
/** What single-part encryption of CRYPTO_INPUT_BYTES_MAX adds at most: AES-GCM with a device-drawn IV
 * returns iv (12) ‖ ciphertext ‖ tag (16), +28; AES-CBC-PAD adds up to one 16-byte block of padding,
 * and the CLI writes its 16-byte IV in front (docs/cli-users.md "Crypto"), +32. RSA-OAEP output is a
 * modulus long, far below. */
export const CRYPTO_CIPHERTEXT_OVERHEAD_BYTES_MAX = 32;
/** Ciphertext given to a single-part decryption: whatever encrypting CRYPTO_INPUT_BYTES_MAX of data
 * produced must be taken back, so decryption is bounded by the input limit plus that overhead. */
export const CRYPTO_CIPHERTEXT_BYTES_MAX = CRYPTO_INPUT_BYTES_MAX + CRYPTO_CIPHERTEXT_OVERHEAD_BYTES_MAX;
/** Key material inside one object record (raw secret, PKCS#8 or SPKI DER): an RSA-4096 PKCS#8 key
 * is about 2.4 KiB; 8 KiB leaves room for RSA-8192 while bounding what a record decoder allocates. */
export const KEY_MATERIAL_BYTES_MAX = 8 * 1024;
/** A wrapped key given to unwrap: the material limit plus room for any wrapping overhead (KWP
 * padding, an RSA-OAEP block, a GCM IV and tag). Refused before any crypto runs. */
export const WRAPPED_KEY_BYTES_MAX = 16 * 1024;
/** A key check value: CloudHSM shows 3 bytes; 32 bytes holds a whole SHA-256 if a format needs it. */
export const KCV_BYTES_MAX = 32;
/** Session objects per HSM (in memory only, never backed up): bounded so clients cannot exhaust
 * memory by creating throwaway keys. */
export const SESSION_OBJECTS_MAX = 16_384;
/** Keys the object index keeps built as KeyObjects, the most recently used ones
 * (src/hsm/objects/key_cache.ts); any other key is rebuilt from its stored bytes when used. A built
 * key holds a few KB of native memory (an EC P-256 private key about 3.8 KB), so this bounds them
 * to tens of MB however many keys the device holds, while a working set of thousands of keys never
 * pays the rebuild (docs/device.md "Objects"). */
export const OBJECT_KEY_CACHE_MAX = 4096;
/** One buffer of the object index's arena (src/hsm/objects/secret_arena.ts), which holds every
 * object's label, id, KCV and key material packed together: it holds the largest object
 * (KEY_MATERIAL_BYTES_MAX plus label and id) several times over, and is small enough that moving
 * the live half of one out, to free it, is a short pause. */
export const OBJECT_ARENA_CHUNK_BYTES = 64 * 1024;
/** Sealed store namespaces (the device's record kinds: "objects", "users", "meta"…): short fixed
 * names; bounded because every record's AAD carries its namespace (formats/sealed_record.ts). */
export const SEALED_NAMESPACE_BYTES_MAX = 64;
/** Sealed store record ids, as UTF-8 bytes: room for a hex handle, a user name or an object id
 * (OBJECT_ID_BYTES_MAX) with a prefix; ids are stored in clear as the index key, so they stay short. */
export const SEALED_RECORD_ID_BYTES_MAX = 512;
/** Records fetched from SQLite per page while list() streams a namespace: bounds memory per step
 * (about 20 KiB for ~300-byte key objects) without a query per record. */
export const SEALED_LIST_PAGE_RECORDS = 64;
/** Records per transaction while a restore stages its records aside (RecordStore.stage): a commit per
 * record would pay a journal round per record; one transaction for a whole device would keep a rollback
 * journal as large as the staging. 4096 records (~1.5 MiB of sealed ~350-byte key objects) make the
 * commits unmeasurable beside the sealing, and bound what one batch holds uncommitted. */
export const SEALED_STAGE_BATCH_RECORDS = 4096;
/** Code files hashed into a firmware digest: the built node is a few hundred files; the bound stops
 * a wrong --code directory (a home folder, /) from being walked without end. */
export const FIRMWARE_FILES_MAX = 20_000;
/** One code file hashed into a firmware digest: compiled modules are KiB; a bundle stays far below. */
export const FIRMWARE_FILE_BYTES_MAX = 64 * 1024 * 1024;
/** A firmware manifest or a signed ceremony transcript as JSON text: a few hundred bytes each. */
export const MANIFEST_JSON_BYTES_MAX = 64 * 1024;
/** A certificate or CSR given to the device or a ceremony tool, PEM or DER: ours are under 1 KiB;
 * 16 KiB admits any ordinary certificate while bounding what the ASN.1 parser sees. */
export const CERTIFICATE_BYTES_MAX = 16 * 1024;
/** AKBK custodian components (docs/architecture.md §3): at least 2 (two-person control), at most 16 so a
 * ceremony stays something people can run and a transcript stays small. */
export const AKBK_COMPONENTS_MIN = 2;
export const AKBK_COMPONENTS_MAX = 16;
/** A custodian's name in a ceremony transcript: a person's name or role, not a document. */
export const CUSTODIAN_NAME_CHARS_MAX = 64;
/** C_GenerateRandom per call: enough for any key, nonce or seed a client asks for; larger requests
 * loop on the client side so one call cannot hold the device's CSPRNG and memory. */
export const RANDOM_BYTES_MAX = 64 * 1024;
/** Generic secret (HMAC/KDF) keys, in bits: PKCS#11 allows any byte length; at least one byte, at most
 * 1 KiB (CloudHSM's limit is 800 bytes; HMAC hashes longer keys first, so more adds nothing). */
export const GENERIC_SECRET_BITS_MIN = 8;
export const GENERIC_SECRET_BITS_MAX = 8192;
/** RSA key generation, in bits: 2048 to 4096 in steps of 256, as CloudHSM (docs/architecture.md §4). */
export const RSA_KEYGEN_BITS_MIN = 2048;
export const RSA_KEYGEN_BITS_MAX = 4096;
export const RSA_KEYGEN_BITS_STEP = 256;
/** RSA keys imported or unwrapped, in bits: outside FIPS mode legacy 1024-bit keys may still verify or
 * decrypt old data (SP 800-131A r2 §2 legacy use); FIPS mode raises the floor to 2048. */
export const RSA_KEY_BITS_MIN_LEGACY = 1024;
export const RSA_KEY_BITS_MAX = 4096;
/** A caller-supplied GCM IV (SP 800-38D §5.2.1.1 allows 1 bit to 2^64): 128 bytes covers every real
 * protocol and the published test cases (60 bytes) while bounding the GHASH of the IV. */
export const GCM_IV_BYTES_MAX = 128;
/** Mechanism parameters that are byte strings (OAEP label, HKDF salt and info, SP 800-108 label and
 * context): small in every protocol; bounded so a parameter cannot be a second data channel. */
export const MECHANISM_PARAM_BYTES_MAX = 64 * 1024;
/** Memory a password verifier's scrypt parameters may ask for (128·r·(N + p + 2) bytes, RFC 7914
 * §6): also scrypt's maxmem. Bounds what a stored or restored verifier can make a login allocate;
 * the default parameters (N = 2^14, r = 8) need 16 MiB, so 256 MiB leaves room to raise them. */
export const PASSWORD_KDF_MEMORY_BYTES_MAX = 256 * 1024 * 1024;
/** scrypt parallelism bound (RFC 7914 §2): each unit of p repeats the whole memory-hard pass, so it
 * bounds a verifier's CPU cost as the memory limit bounds its memory. */
export const PASSWORD_KDF_PARALLELISM_MAX = 16;
/** Names that are not users but failed a login, counted in memory so that an unknown name locks
 * after LOGIN_FAILURES_MAX like a real one (the lock does not reveal that a user exists). Bounded
 * so guessing names cannot grow memory; the oldest entry is forgotten first. */
export const LOGIN_UNKNOWN_NAMES_MAX = 4096;
/** A registered quorum public key, SPKI DER: RSA-8192 is about 1.05 KiB; 2 KiB bounds the record. */
export const QUORUM_KEY_BYTES_MAX = 2048;
/** RSA quorum keys: at least 2048 bits (SP 800-57 Pt 1 §5.6.1, CloudHSM's default); at most 8192
 * so that verifying an approval stays cheap (an approval is submitted without logging in). */
export const QUORUM_RSA_BITS_MIN = 2048;
export const QUORUM_RSA_BITS_MAX = 8192;
/** A quorum approval signature: an RSA-8192 signature is 1024 bytes, a DER ECDSA P-384 one ≤ 104. */
export const QUORUM_SIGNATURE_BYTES_MAX = 1024;
/** The crypto layer's limits. They are defined beside the primitives they bound, because crypto/
 * sits below formats/ and may not import this file; they are listed here so that every limit can
 * still be found in one place, and so that decoders (a backup header's segment size) check input
 * against the very constants the primitives enforce. Each has its reason in its own module. */
export { AEAD_SEGMENT_BYTES_DEFAULT, AEAD_SEGMENT_BYTES_MIN, AEAD_SEGMENT_BYTES_MAX, AEAD_SEGMENTS_MAX, AEAD_STREAM_PREFIX_BYTES } from '../crypto/aead_stream.js';
export { KW_DATA_BYTES_MAX } from '../crypto/aes_kw.js';
export { KDF_OUTPUT_BYTES_MAX } from '../crypto/kdf_sp800_108.js';
export { HKDF_SHA256_OUTPUT_BYTES_MAX } from '../crypto/hkdf.js';
export { ECDSA_DIGEST_BYTES_MAX } from '../crypto/ecdsa_raw.js';
/** Backup format v1 (docs/backup-format.md "Limits"). A header holds fixed fields, four short strings
 * and four certificates (ours are under 1 KiB each); 64 KiB admits ordinary certificates while
 * bounding what a reader allocates before the header is authenticated. */
export const BACKUP_HEADER_BYTES_MAX = 64 * 1024;
/** Backup id, cluster id, source HSM id and firmware version in a backup header, as UTF-8 bytes. */
export const BACKUP_STRING_BYTES_MAX = 256;
/** Plaintext per body segment written by this build; readers accept AEAD_SEGMENT_BYTES_MIN..MAX. */
export const BACKUP_SEGMENT_BYTES = 65_536;
/** A backup body: 256 GiB, far above a full device (OBJECTS_MAX objects of a few KiB each). */
export const BACKUP_BODY_BYTES_MAX = 2 ** 38;
/** Records in one backup: OBJECTS_MAX objects + USERS_MAX users + the other namespaces, with room. */
export const BACKUP_RECORDS_MAX = 2 ** 20;
/** Bytes read from a backup source at once while hashing or decrypting it: bounds memory, not size. */
export const BACKUP_READ_CHUNK_BYTES = 1024 * 1024;
/** Data-plane wire protocol (docs/wire-protocol.md "Limits"). One frame carries one request or reply:
 * the largest is a single-part crypto call on CRYPTO_INPUT_BYTES_MAX of data, plus 1 MiB for the
 * mechanism parameters and headers. The length is checked before a byte of the frame is buffered. */
export const WIRE_FRAME_BYTES_MAX = CRYPTO_INPUT_BYTES_MAX + 1024 * 1024;
/** Requests a connection may have in flight; more is a protocol error, not a queue. 64 in flight
 * already saturates a node over one TLS connection (~500k small round trips/s measured); 256 gives
 * clients headroom while bounding what one connection makes a node hold. */
export const WIRE_IN_FLIGHT_MAX = 256;
/** Items in one batch request (SIGN_BATCH …): amortises framing and scheduling over many small
 * operations while keeping one reply well inside WIRE_FRAME_BYTES_MAX for ordinary signatures. */
export const WIRE_BATCH_ITEMS_MAX = 1024;
/** Device sessions one connection may open (each holds a login and session objects). */
export const WIRE_SESSIONS_PER_CONNECTION_MAX = 64;
/** A user name on the wire, as UTF-8 bytes: USER_NAME_CHARS_MAX characters of at most 4 bytes each;
 * the device checks the characters themselves. */
export const WIRE_NAME_BYTES_MAX = USER_NAME_CHARS_MAX * 4;
/** A password on the wire, as UTF-8 bytes: PASSWORD_CHARS_MAX characters of at most 4 bytes each. */
export const WIRE_PASSWORD_BYTES_MAX = PASSWORD_CHARS_MAX * 4;
/** A key as PEM text (import, export of a public key): PEM of KEY_MATERIAL_BYTES_MAX of DER is
 * about 4/3 of it plus armour lines; 16 KiB covers it. */
export const WIRE_PEM_BYTES_MAX = 16 * 1024;
/** Short identifiers and free text in replies (error codes, detail keys and values, token ids,
 * serials): all fixed vocabulary or ids, never documents. */
export const WIRE_TEXT_BYTES_MAX = 1024;
/** Detail entries in an error reply: errors carry a handful of non-secret facts. */
export const WIRE_ERROR_DETAIL_ENTRIES_MAX = 16;
/** Objects in one FIND reply; more are fetched with the next page (after the last handle): 4096
 * object descriptions of a few hundred bytes stay around 1 MiB per frame. */
export const WIRE_FIND_RESULTS_MAX = 4096;
/** A BUSY reply's retry hint: at most a minute, so a confused node cannot park clients for hours. */
export const WIRE_RETRY_AFTER_MS_MAX = 60_000;
/** A signature given to VERIFY: an RSA-8192 signature is 1024 bytes, every other mechanism's less. */
export const WIRE_SIGNATURE_BYTES_MAX = 1024;
/** Node-wide requests in flight (all connections) before the node answers BUSY: 64 in flight already
 * saturate two cores (docs/wire-protocol.md §8); 4096 keeps latency bounded while many clients share it. */
export const NODE_IN_FLIGHT_MAX = 4096;
/** Bytes a node holds for one connection (request frames being served + replies not yet taken by the
 * socket): one maximal frame plus 1 MiB, so a client that sends fast or never reads cannot grow memory. */
export const NODE_CONNECTION_BYTES_MAX = WIRE_FRAME_BYTES_MAX + 1024 * 1024;
/** TLS handshake and the HELLO that must follow it: a peer that stalls longer holds a socket for nothing. */
export const NODE_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A frame begun must be whole within this, or the connection is closed: a maximal frame
 * (WIRE_FRAME_BYTES_MAX, 17 MiB) needs under 5 Mbit/s to make it, far below any link an HSM client
 * uses, while a peer that trickles a frame byte by byte to hold a socket and its buffer is dropped.
 * The clock runs while the node has stopped reading a client that does not read its replies. */
export const NODE_PARTIAL_FRAME_TIMEOUT_MS = 30_000;
/** A connection with no request in flight that sends nothing for this long is closed (its sessions
 * with it). The SDK polls STATUS on each of its connections every few seconds, so only abandoned or
 * dead peers reach it; two minutes frees their socket and TLS state while outlasting any pause of a
 * live client. A request in flight, however slow, keeps its connection. */
export const NODE_IDLE_TIMEOUT_MS = 120_000;
/** TCP connections the data plane holds at once, TLS handshakes included; more are closed at
 * accept, before any TLS work. With NODE_CONNECTION_BYTES_MAX per connection this bounds the node's
 * memory and file descriptors; 1024 serves hundreds of application hosts (the SDK opens 1 to
 * CLIENT_CONNECTIONS_PER_NODE_MAX per process). */
export const NODE_CONNECTIONS_MAX = 1024;
/** TCP connections from one remote address: a busy application host (32 processes of 8 SDK
 * connections) fits, while one peer can take at most a quarter of NODE_CONNECTIONS_MAX and cannot
 * lock every other client out. */
export const NODE_CONNECTIONS_PER_ADDRESS_MAX = 256;
/** The retry hint of a BUSY reply: a few signature times, well under WIRE_RETRY_AFTER_MS_MAX. */
export const NODE_BUSY_RETRY_AFTER_MS = 20;
/** Client-certificate trust anchors on the data plane: the current CA and its successor, so a CA can
 * be rotated without a gap; more would only widen who may connect. */
export const NODE_CLIENT_TRUST_ANCHORS_MAX = 2;
/** Management interface (docs/node.md "Management interface"). A JSON request body: the largest is
 * cluster initialisation with two certificates (CERTIFICATE_BYTES_MAX each) and two short
 * credentials; 64 KiB holds that with room while bounding what a request makes the node buffer. */
export const MANAGEMENT_JSON_BODY_BYTES_MAX = 64 * 1024;
/** A sealed backup uploaded for restore is spooled to disk before the device reads it: 16 GiB is far
 * above a full device (OBJECTS_MAX objects of a few KiB) and stops an upload from filling the disk. */
export const MANAGEMENT_RESTORE_BYTES_MAX = 16 * 1024 ** 3;
/** Management requests served at once: the control plane probes health and moves backups, a few at a
 * time; more would only queue behind the device's synchronous backup and restore. */
export const MANAGEMENT_REQUESTS_MAX = 8;
/** The TLS handshake, and then the headers of each management request, must finish within this (a
 * peer that stalls holds a socket for nothing). */
export const MANAGEMENT_HEADERS_TIMEOUT_MS = 10_000;
/** A whole management request, upload included: a multi-GiB restore over a slow link needs minutes. */
export const MANAGEMENT_REQUEST_TIMEOUT_MS = 30 * 60 * 1000;
/** A JSON response the management client buffers (identity with four certificates, health): far
 * below this; the bound stops a hostile node from growing the client's memory. */
export const MANAGEMENT_RESPONSE_JSON_BYTES_MAX = 256 * 1024;
/** Cluster identity (docs/cluster-identity.md). A cluster id is the CN of the cluster CSR and of
 * every TLS leaf: RFC 5280's ub-common-name is 64 characters. */
export const CLUSTER_ID_CHARS_MAX = 64;
/** Subject alternative names in one TLS leaf: a node has a few addresses and names; 32 covers
 * dual-stack hosts with aliases and stops a request from making a certificate of any size. */
export const TLS_LEAF_HOSTS_MAX = 32;
/** Longest validity of a TLS leaf the cluster key issues: leaves are re-issued on start and are
 * short-lived by design (default 7 days); 90 days bounds how long a stolen leaf key stays useful. */
export const TLS_LEAF_VALIDITY_MS_MAX = 90 * 24 * 60 * 60 * 1000;
/** SubjectPublicKeyInfo of a TLS leaf key: an RSA-8192 SPKI is about 1.1 KiB, an EC one ~120 bytes. */
export const TLS_LEAF_SPKI_BYTES_MAX = 2048;
/** A management client gives up on a request when the connection is silent this long: a node seals
 * or restores a large backup synchronously before it answers, so this is generous. */
export const MANAGEMENT_CLIENT_IDLE_TIMEOUT_MS = 5 * 60 * 1000;
/** Requests the CLI keeps in flight when it signs a file of records: enough to keep a node's cores
 * busy over one connection (docs/node.md measured the knee near 64), well under WIRE_IN_FLIGHT_MAX. */
export const CLI_BATCH_IN_FLIGHT_MAX = 64;

// ── client SDK (src/client/, docs/sdk.md) ────────────────────────────────────────────────────
/** Nodes one Cluster talks to: CloudHSM allows 28 HSMs per cluster; 32 keeps a per-call bit mask of
 * tried nodes in one int32. */
export const CLIENT_ENDPOINTS_MAX = 32;
/** Connection + session + login to one node must finish within this, or the node counts as down. */
export const CLIENT_CONNECT_TIMEOUT_MS = 10_000;
/** A node with requests in flight that answers nothing for this long is declared stuck and dropped
 * (its idempotent calls move on). Generous: RSA-4096 key generation on a loaded 2-core host takes
 * seconds, and one slow answer must not cost a healthy connection. */
export const CLIENT_REQUEST_TIMEOUT_MS = 30_000;
/** Default extra attempts of an idempotent call (another node each time when there is one). */
export const CLIENT_RETRIES_DEFAULT = 3;
/** Most extra attempts a caller may ask for: retries multiply load on a cluster in trouble. */
export const CLIENT_RETRIES_MAX = 16;
/** How often each node's STATUS (capacity, load) is polled; also the stuck-node check period. */
export const CLIENT_STATUS_POLL_MS = 1_000;
/** First re-probe delay of a node that went down; doubles per failure up to the maximum. */
export const CLIENT_PROBE_BACKOFF_MIN_MS = 100;
/** Longest re-probe delay: a node that comes back is used again within this. */
export const CLIENT_PROBE_BACKOFF_MAX_MS = 10_000;
/** Calls that may wait for a free in-flight slot when every node is at its limit; beyond this the
 * call fails COFFER_NODE_BUSY at once rather than grow memory without bound. */
export const CLIENT_QUEUE_MAX = 65_536;
/** Connections (each with its own logged-in session) the SDK may open to one node. */
export const CLIENT_CONNECTIONS_PER_NODE_MAX = 8;
/** Handles remembered per node as "not on this node" (no cluster journal yet: state changes live on
 * one node); past this the set is cleared rather than grown. */
export const CLIENT_MISSING_HANDLES_MAX = 4096;
/** Objects asked for per FIND page. */
export const CLIENT_FIND_PAGE_OBJECTS = 1024;
/** Auto-batching starts when this many calls are in flight on a node: below it a call goes out at once
 * as itself, so latency at low concurrency is unchanged (docs/sdk.md "Auto-batching"). */
export const CLIENT_AUTO_BATCH_IN_FLIGHT_MIN = 16;

// ── device state changes (formats/change_set.ts, src/hsm/state/) ──────────────────────────────

/** Record writes and deletes in one change set. Cluster-wide ones are small (a key pair is three
 * writes); the largest is local: a session closing drops every session object it made at once. */
export const CHANGE_SET_OPS_MAX = SESSION_OBJECTS_MAX + 16;
/** One encoded change set: a journal entry carries it whole, so it is bounded well below memory;
 * eight maximal records fit. */
export const CHANGE_SET_BYTES_MAX = 8 * SEALED_RECORD_BYTES_MAX + 64 * 1024;
/** State changes waiting for the device's one writer: past this a caller gets COFFER_DEVICE_BUSY
 * rather than queue without end. */
export const STATE_QUEUE_MAX = 4096;

// ── the cluster journal on the device (src/hsm/state/journal.ts, docs/device.md "The journal") ──

/** Times one decision may be decided again after its entry lost the journal position to another
 * HSM's. Every loss means another entry was appended, so the cluster progressed; with N HSMs racing
 * fairly a decision loses 64 times in a row with probability ((N-1)/N)^64 (under 1e-11 for N = 3). */
export const JOURNAL_DECIDE_ATTEMPTS_MAX = 64;
/** Decisions one journal entry carries at most (docs/device.md "The journal", batches): enough to
 * order every call a loaded client keeps in flight in one round trip, few enough that a batch that
 * loses its position (every decision in it decided again) or is decided before it leaves (EC and
 * RSA key generations take milliseconds each) holds the writer only briefly. */
export const JOURNAL_BATCH_DECISIONS_MAX = 32;
/** How long a journaled state change waits for the journal to order its entry, by default: long
 * enough for a control plane under load, short enough that a client is not left hanging. */
export const JOURNAL_DECIDE_TIMEOUT_MS_DEFAULT = 10_000;
/** The longest wait a caller may configure or ask for (a decision's entry, an offer, a head). */
export const JOURNAL_WAIT_MS_MAX = 10 * 60_000;
/** How long a device waits for a missing journal entry — one below a later entry it was delivered —
 * before it reports it (docs/journal-format.md "Detecting a bad journal"). The relay delivers from the
 * store in order, so a gap is seen only when a delivery raced a restore (gone at the relay's next
 * delivery, within a second or two) or when something withholds the entry; 30 s is three decide
 * timeouts, long past the first and short enough that an operator learns of the second at once. */
export const JOURNAL_MISSING_ENTRY_WAIT_MS = 30_000;
/** Entries in one delivery: a page of the metadata store's journal read (JOURNAL_READ_LIMIT_MAX). */
export const JOURNAL_DELIVER_ENTRIES_MAX = 1000;
/** Sealed bytes of the delivered entries a device commits in one store transaction (a group): a
 * catching-up HSM pays one durable commit per group instead of one per entry, and holds at most
 * this much opened change-set data at a time. An entry larger than this is a group of its own. */
export const JOURNAL_APPLY_GROUP_BYTES_MAX = 4 * 1024 * 1024;
/** Chain hashes of the entries applied last that a device keeps, to tell a repeated delivery of an
 * applied entry (ignored) from a different entry at an applied position (a fork). */
export const JOURNAL_APPLIED_HASHES_KEPT = 1024;
/** Listeners of the head (clients' acknowledgements waiting on it): bounded like the writer queue. */
export const JOURNAL_HEAD_WAITERS_MAX = 4096;
/** A per-object unique id, fixed at creation: 128 random bits tell objects apart across every HSM. */
export const OBJECT_UID_BYTES = 16;
/** A session's id or an application scope (a data-plane connection) in a session object's record:
 * the device makes them (UUIDs, short names), so they stay short. */
export const SESSION_SCOPE_CHARS_MAX = 64;

// ── the sealed cluster journal (formats/journal_entry.ts, docs/journal-format.md) ───────────────

/** Plaintext per AEAD segment of an entry's body (suite 1). Fixed by the suite, not written in the
 * header: most change sets fit one segment, and the largest (CHANGE_SET_BYTES_MAX) needs 129. */
export const JOURNAL_SEGMENT_BYTES = 65_536;
/** A cluster id or an originating HSM's serial in an entry header, as printable ASCII: cluster ids are
 * at most CLUSTER_ID_CHARS_MAX characters, serials 20 ('CFR-' + 16 hex digits). */
export const JOURNAL_STRING_BYTES_MAX = CLUSTER_ID_CHARS_MAX;
/** An entry header: 94 bytes of fixed fields and two strings of at most JOURNAL_STRING_BYTES_MAX
 * (224 bytes in all), rounded up. Checked before anything the header covers is read. */
export const JOURNAL_HEADER_BYTES_MAX = 256;
/** An entry's sealed body: the largest change set (CHANGE_SET_BYTES_MAX) sealed in
 * JOURNAL_SEGMENT_BYTES segments, each with a 16-byte GCM tag. A larger body cannot hold a change
 * set any HSM would accept, so it is refused before a byte of it is opened. */
export const JOURNAL_BODY_BYTES_MAX = CHANGE_SET_BYTES_MAX + 16 * Math.ceil(CHANGE_SET_BYTES_MAX / JOURNAL_SEGMENT_BYTES);
/** A whole sealed entry (about 8.1 MiB): below the metadata store's 16 MiB bound on what it appends. */
export const JOURNAL_ENTRY_SEALED_BYTES_MAX = JOURNAL_HEADER_BYTES_MAX + JOURNAL_BODY_BYTES_MAX;
/** The journal relay over the management interface (docs/node.md "Journal endpoints"). One
 * delivery's binary body: room for four of the largest entries (JOURNAL_ENTRY_SEALED_BYTES_MAX,
 * about 8.1 MiB each), so a page of ordinary entries (a few KiB each) goes in one request while a
 * node buffers at most this per request (MANAGEMENT_REQUESTS_MAX of them). */
export const MANAGEMENT_JOURNAL_BODY_BYTES_MAX = 4 * JOURNAL_ENTRY_SEALED_BYTES_MAX + 64 * 1024;
/** The longest offer long-poll: well below the client's idle limit (MANAGEMENT_CLIENT_IDLE_TIMEOUT_MS),
 * so an idle poll ends with 204 long before any side takes the connection for dead. */
export const MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX = 60_000;
/** The data plane's JOURNAL_WAIT (docs/wire-protocol.md "Journal positions"): the longest one wait
 * parks on the node. Well under the client's request timeout (CLIENT_REQUEST_TIMEOUT_MS) and the
 * node's idle limits, so a parked wait is never taken for a stuck node; a client that needs longer
 * asks again. */
export const WIRE_JOURNAL_WAIT_MS_MAX = 5_000;
/** Waits parked on one node at once: a quarter of the device's head listeners
 * (JOURNAL_HEAD_WAITERS_MAX), so clients can never crowd out the relay's own waits. A wait beyond it
 * answers at once with the head as it is. */
export const NODE_JOURNAL_WAITS_MAX = 1024;
/** How long a state change waits for its acknowledgements by default (docs/sdk.md "Acknowledgements"):
 * several relay rounds (the relay delivers as the head moves) on a busy machine. */
export const CLIENT_ACK_TIMEOUT_MS = 10_000;

// ── the audit log (formats/audit_record.ts, docs/audit.md) ──────────────────────────────────────

/** A text field of an audit record (user name, session id, error code, detail): user names are at
 * most 31 characters, session ids are UUIDs (36), error codes and details are short fixed words. */
export const AUDIT_TEXT_BYTES_MAX = 64;
/** Handles one audit record names: a key pair's two, a wrap's wrapping key and target. */
export const AUDIT_HANDLES_MAX = 4;
/** One encoded audit record: 58 bytes of header, four texts, four handles and a checkpoint's
 * 96-byte signature fit well inside. Checked before a record's body is read. */
export const AUDIT_RECORD_BYTES_MAX = 1024;
/** Records in one collected bundle (one page of the management route, one archive chunk): a few
 * hundred KiB at most, so a page is read into memory whole on either side. */
export const AUDIT_BUNDLE_RECORDS_MAX = 4096;
/** A checkpoint (a signed record) follows at most this many records, so any page of
 * AUDIT_BUNDLE_RECORDS_MAX records holds one and can end on a signature. */
export const AUDIT_CHECKPOINT_RECORDS = 256;
/** ...and at most this long after the first unsigned record (checked as records are written). */
export const AUDIT_CHECKPOINT_INTERVAL_MS = 60_000;
/** The node's audit log on disk: about 300,000 records. Past it the oldest collected records are
 * dropped; when only uncollected records remain, audited operations are refused (docs/audit.md). */
export const AUDIT_LOG_BYTES_MAX = 64 * 1024 * 1024;
/** One audit bundle: its records at their largest and two certificates. */
export const AUDIT_BUNDLE_BYTES_MAX = 16 + 2 * (2 + CERTIFICATE_BYTES_MAX) + AUDIT_BUNDLE_RECORDS_MAX * (2 + AUDIT_RECORD_BYTES_MAX);
