// The cluster identity inside a device (docs/architecture.md §6, §7; docs/cluster-identity.md): the cluster
// key pair (ECDSA P-384), its CSR, the cluster certificate the customer's CA signed, and the
// customer's trust anchor. The first HSM of a cluster makes the key and the CSR; InitializeCluster
// hands back the signed certificate and the anchor; from then on the device issues short-lived TLS
// leaf certificates under the cluster key, so a client that trusts only the customer CA can tell a
// genuine HSM of the cluster from anything else.
//
//   UNINITIALISED ──createCsr──▶ CSR_ISSUED ──initialise──▶ INITIALISED
//         ▲                                                     │
//         └──────────────────────── Hsm.zeroise ◀───────────────┘
//
// Records (namespace 'cluster', sealed by the store like every other record, carried by backups so
// that HSMs cloned by restore share the identity, docs/architecture.md §3): 'key' (PKCS#8 DER of the private
// key), 'csr' (DER; its CN is the cluster id), 'certificate' and 'trust-anchor' (DER). The private
// key is held in memory as a KeyObject (never as text) and, for signing certificates, as a
// non-extractable WebCrypto key made from it on first use.
//
// The cluster sync key (record 'sync-key', formats/sync_key_record.ts; docs/journal-format.md) is
// made here, from the device's Random, in the same change set as the certificate: every HSM of the
// cluster gets it only by restoring a backup of one that holds it, and it never leaves a device in
// any other form — no accessor returns it; what goes out is sealed journal entries and its
// non-secret key id. It is held in memory as a KeyObject once first used. A cluster initialised by
// a version without sync keys has none: its HSMs refuse to seal or open entries
// (COFFER_JOURNAL_NO_SYNC_KEY) and work as before (docs/journal-format.md "Clusters initialised
// before sync keys").

import { createPublicKey, createSecretKey, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { inspect } from 'node:util';
import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import { CLUSTER_ID_CHARS_MAX, TLS_LEAF_HOSTS_MAX, TLS_LEAF_SPKI_BYTES_MAX, TLS_LEAF_VALIDITY_MS_MAX } from '../../formats/limits.js';
import { issueLeaf } from '../../formats/x509.js';
import type { PasswordInput } from '../users/password.js';
import type { Clock, Random } from '../ports.js';
import { SecretBytes } from '../../crypto/secret_bytes.js';
import { JOURNAL_SALT_BYTES, openJournalEntry, sealJournalEntry, syncKeyIdOf, type OpenedJournalEntry, type SealedJournalEntry } from '../../formats/journal_entry.js';
import { SYNC_KEY_BYTES, SYNC_KEY_ID, decodeSyncKeyRecord, encodeSyncKeyRecord } from '../../formats/sync_key_record.js';
import { JOURNAL_CLUSTER_ID, decodeJournalClusterRecord, encodeJournalClusterRecord } from '../../formats/journal_cluster_record.js';
import type { ChangeSet, RecordOp } from '../../formats/change_set.js';
import { ANCHOR_ID, CERT_ID, CLUSTER_NS, CSR_ID, KEY_ID, loadClusterIdentity, type LoadedClusterIdentity as Loaded } from '../../formats/cluster_record.js';
import type { DeviceState, StateView } from '../state/device_state.js';
import { ECDSA_SHA384, EC_P384, derOf, parseCertificate, pemOf, spkiOf, x509 } from '../../formats/x509.js';
import { checkClusterCertificate, checkTrustAnchor } from '../../formats/cluster_certificate.js';

const DAY_MS = 86_400_000;
/** Default validity of a TLS leaf: a week, re-issued by the node long before it ends. */
export const TLS_LEAF_VALIDITY_MS_DEFAULT = 7 * DAY_MS;
/** Shortest leaf validity accepted: less would expire during a slow handshake's clock skew. */
const TLS_LEAF_VALIDITY_MS_MIN = 60_000;
/** A cluster id: letters, digits, '.', '_' and '-' (CloudHSM's `cluster-[2-7a-zA-Z]{11,16}` fits). */
const CLUSTER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** A DNS name for a SAN dNSName (RFC 1123 labels, no wildcard: each node has its own leaf). */
const DNS_LABEL_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const DNS_NAME_CHARS_MAX = 253;

export type ClusterState = 'UNINITIALISED' | 'CSR_ISSUED' | 'INITIALISED';

export interface ClusterInitialisation {
  /** The cluster certificate the customer CA signed (for the CSR's key). */
  readonly certificatePem: string;
  /** The customer CA certificate (self-signed root or an intermediate the customer trusts). */
  readonly trustAnchorPem: string;
  /** Becomes the unactivated admin's password (as Hsm.initialiseUsers). */
  readonly preCoPassword: PasswordInput;
  /** The appliance user's credential (as Hsm.initialiseUsers). */
  readonly applianceCredential: PasswordInput;
}

export interface TlsLeafOptions {
  readonly hosts: readonly string[];
  readonly validityMs?: number;
}

export interface TlsLeaf {
  readonly leafPem: string;
  /** [leafPem, clusterCertificatePem]: what a TLS server presents. */
  readonly chainPem: readonly string[];
}

/** What the device hands its cluster identity (Hsm wires it). */
export interface ClusterIdentityOptions {
  readonly state: DeviceState;
  readonly clock: Clock;
  /** Draws the cluster sync key at initialisation and every journal entry's salt. */
  readonly random: Random;
  /** This device's serial: the originator named in the journal entries it seals. */
  readonly serial: () => string;
  /** Throws unless the device may hold a cluster: commissioned (its mode fixed), firmware verified. */
  readonly requireCommissioned: () => void;
  /** The users' initialisation with its verifiers derived: decides the user writes that go into
   * initialise's change set. */
  readonly prepareUsers: (preCoPassword: PasswordInput, applianceCredential: PasswordInput) => Promise<() => RecordOp[]>;
  /** True when the state is a restored backup's and no cluster-wide change was applied since (the
   * device remembers its last restore in memory). Asked inside the decision of startCloneJournal. */
  readonly freshlyRestored: () => boolean;
}

export { CLUSTER_NS } from '../../formats/cluster_record.js';

export class ClusterIdentity implements StateView {
  readonly namespaces = [CLUSTER_NS] as const;
  readonly #options: ClusterIdentityOptions;
  readonly #unwatch: () => void;
  #loaded: Loaded | undefined;
  /** A committed change to the records is not read in yet. */
  #stale = false;
  /** The signing key for certificate generation, made once per loaded key. */
  #signingKey: Promise<webcrypto.CryptoKey> | undefined;
  /** The sync key as a KeyObject, read from its record on first use; null: the state holds none. */
  #syncKey: { readonly key: KeyObject; readonly id: Uint8Array } | null | undefined;
  /** The cluster a clone's journal is bound to (record 'journal-cluster'); null: the CSR's CN. */
  #journalClusterId: string | null | undefined;

  /** @internal The device makes it (Hsm.cluster). */
  constructor(options: ClusterIdentityOptions) {
    this.#options = options;
    this.reload();
    this.#unwatch = options.state.watch(this);
  }

  /** @internal Re-reads the records (after a restore or a zeroise replaced them). */
  reload(): void {
    this.#loaded = loadClusterIdentity(this.#options.state);
    this.#stale = false;
    this.#signingKey = undefined;
    this.#syncKey = undefined;
    this.#journalClusterId = undefined;
  }

  /** @internal A change to namespace 'cluster' committed (DeviceState.apply): the identity is read
   * again when next asked for, not inside apply (parsing certificates is not apply's work). */
  applied(): void {
    this.#stale = true;
  }

  #current(): Loaded | undefined {
    if (this.#stale) this.reload();
    return this.#loaded;
  }

  /** Stops following the state (the device replaced this module). */
  close(): void {
    this.#unwatch();
  }

  state(): ClusterState {
    const loaded = this.#current();
    if (loaded === undefined) return 'UNINITIALISED';
    return loaded.certificate === undefined ? 'CSR_ISSUED' : 'INITIALISED';
  }

  /** The cluster this device belongs to: the one its journal entries, backups and health name. The
   * CSR's CN, unless a clone's journal was started for another cluster (startCloneJournal). */
  clusterId(): string | null {
    const loaded = this.#current();
    if (loaded === undefined) return null;
    if (this.#journalClusterId === undefined) {
      const record = this.#options.state.get(CLUSTER_NS, JOURNAL_CLUSTER_ID);
      this.#journalClusterId = record === undefined ? null : decodeJournalClusterRecord(record);
    }
    return this.#journalClusterId ?? loaded.clusterId;
  }

  /** The CN of the cluster CSR and certificate: the cluster the key pair was made for. */
  certificateClusterId(): string | null {
    return this.#current()?.clusterId ?? null;
  }

  csrPem(): string | null {
    const loaded = this.#current();
    return loaded === undefined ? null : pemOf(loaded.csr);
  }

  certificatePem(): string | null {
    const cert = this.#current()?.certificate;
    return cert === undefined ? null : pemOf(cert);
  }

  trustAnchorPem(): string | null {
    const anchor = this.#current()?.trustAnchor;
    return anchor === undefined ? null : pemOf(anchor);
  }

  /**
   * PEM CSR for the cluster key (ECDSA P-384, SHA-384), subject CN = clusterId. The first call
   * generates the key; later calls with the same id return the same CSR. A different id, or any
   * call once INITIALISED, is COFFER_CLUSTER_ALREADY_INITIALISED.
   */
  async createCsr(clusterId: string): Promise<string> {
    checkClusterId(clusterId);
    this.#options.requireCommissioned();
    const existing = this.#existingCsr(clusterId);
    if (existing !== undefined) return existing;
    const keys = await webcrypto.subtle.generateKey(EC_P384, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: [clusterId] }],
      keys,
      signingAlgorithm: ECDSA_SHA384,
      // What the cluster certificate must allow (docs/cluster-identity.md): a CA for the TLS leaves only.
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true)],
    });
    const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    try {
      // Another createCsr (or a restore) may have stored a key while this one generated: the first wins.
      const state = this.#options.state;
      const stored = await state.submit(() => {
        if (state.get(CLUSTER_NS, KEY_ID) !== undefined) return { changes: [], result: false };
        const cs: ChangeSet = { scope: 'cluster', kind: 'cluster.csr', ops: [put(KEY_ID, pkcs8.slice()), put(CSR_ID, derOf(csr))] };
        return { changes: [cs], result: true };
      });
      if (stored) return pemOf(csr);
      const winner = this.#existingCsr(clusterId);
      assert(winner !== undefined, 'a stored cluster key has a CSR');
      return winner;
    } finally {
      pkcs8.fill(0);
    }
  }

  /** The stored CSR if it is for `clusterId`; undefined when there is no key yet. */
  #existingCsr(clusterId: string): string | undefined {
    const loaded = this.#current();
    if (loaded === undefined) return undefined;
    if (loaded.certificate !== undefined || loaded.clusterId !== clusterId) fail('COFFER_CLUSTER_ALREADY_INITIALISED');
    return pemOf(loaded.csr);
  }

  /**
   * Checks the signed cluster certificate and the trust anchor (docs/cluster-identity.md "What
   * initialise checks"), then stores both and creates the built-in users in ONE transaction. Any
   * failure leaves the device as it was.
   */
  async initialise(init: ClusterInitialisation): Promise<void> {
    this.#options.requireCommissioned();
    const loaded = this.#current();
    if (loaded === undefined) fail('COFFER_CLUSTER_NO_CSR');
    if (loaded.certificate !== undefined) fail('COFFER_CLUSTER_ALREADY_INITIALISED');
    const nowMs = this.#options.clock.nowMs();
    const anchor = parseCertificate(init.trustAnchorPem);
    const certificate = parseCertificate(init.certificatePem);
    checkTrustAnchor(anchor, nowMs);
    await checkClusterCertificate(certificate, anchor, spkiOf(loaded.csr), nowMs);
    const decideUsers = await this.#options.prepareUsers(init.preCoPassword, init.applianceCredential);
    const state = this.#options.state;
    const syncKey = SecretBytes.adopt(this.#options.random.bytes(SYNC_KEY_BYTES));
    try {
      await state.submit(() => {
        // The checks and the verifiers took time: a restore or a zeroise may have moved the state.
        const csrNow = state.get(CLUSTER_NS, CSR_ID);
        if (csrNow === undefined) fail('COFFER_CLUSTER_NO_CSR');
        if (Buffer.compare(csrNow, loaded.csrDer) !== 0) fail('COFFER_CLUSTER_CERT_MISMATCH', { reason: 'cluster-key-replaced' });
        if (state.get(CLUSTER_NS, CERT_ID) !== undefined) fail('COFFER_CLUSTER_ALREADY_INITIALISED');
        // The sync key is born with the cluster: decided here, so apply only writes it (and every
        // HSM replaying this change set holds the same key).
        const ops = [put(CERT_ID, derOf(certificate)), put(ANCHOR_ID, derOf(anchor)), put(SYNC_KEY_ID, encodeSyncKeyRecord(syncKey)), ...decideUsers()];
        return { changes: [{ scope: 'cluster', kind: 'cluster.initialise', ops }], result: undefined };
      });
    } finally {
      syncKey.destroy();
    }
  }

  // ── the cluster sync key and the journal entries sealed under it ────────────────────────────

  /**
   * Makes this device the first HSM of `clusterId`, a cluster created from a backup of another
   * (docs/journal-format.md "A cluster created from a backup"): a fresh sync key, the journal bound
   * to `clusterId`, and the journal head back to (0, genesis(clusterId)) — in one change set through
   * the state's one door, applied directly (it is what the new journal is sealed under). No entry of
   * the source cluster opens here afterwards (another key), and no entry of the clone opens on the
   * source's HSMs. Refused (COFFER_JOURNAL_GENESIS_REFUSED, nothing changed) unless the state is a
   * restored backup with no change since (`not-freshly-restored`), or when the device already
   * follows `clusterId`'s journal (`same-cluster`); COFFER_JOURNAL_NO_SYNC_KEY before initialisation.
   */
  async startCloneJournal(clusterId: string): Promise<void> {
    this.#options.requireCommissioned();
    checkClusterId(clusterId);
    const state = this.#options.state;
    const syncKey = SecretBytes.adopt(this.#options.random.bytes(SYNC_KEY_BYTES));
    try {
      await state.submit(() => {
        if (this.state() !== 'INITIALISED' || this.#currentSyncKey() === null) fail('COFFER_JOURNAL_NO_SYNC_KEY');
        if (this.clusterId() === clusterId) fail('COFFER_JOURNAL_GENESIS_REFUSED', { reason: 'same-cluster' });
        if (!this.#options.freshlyRestored()) fail('COFFER_JOURNAL_GENESIS_REFUSED', { reason: 'not-freshly-restored' });
        const ops = [put(SYNC_KEY_ID, encodeSyncKeyRecord(syncKey)), put(JOURNAL_CLUSTER_ID, encodeJournalClusterRecord(clusterId))];
        return { changes: [{ scope: 'cluster', kind: 'cluster.clone-journal', ops }], result: undefined, startsJournal: true };
      });
    } finally {
      syncKey.destroy();
    }
  }

  /** The sync key's non-secret id (every entry header carries it), or null when the state holds no
   * sync key: before initialisation, or a cluster initialised by a version without sync keys. */
  syncKeyId(): Uint8Array | null {
    return this.#currentSyncKey()?.id.slice() ?? null;
  }

  /**
   * @internal Seals a cluster-wide change set as journal entry `seq` after `predecessor`, with this
   * device as the originator and a fresh salt from the device's Random (formats/journal_entry.ts).
   * The change set's values stay the caller's.
   */
  sealJournalEntry(changeSet: ChangeSet, position: { readonly seq: bigint; readonly predecessor: Uint8Array }): SealedJournalEntry {
    const { clusterId, key } = this.#journalKey();
    return sealJournalEntry({
      syncKey: key, clusterId, originator: this.#options.serial(), seq: position.seq, predecessor: position.predecessor,
      salt: this.#options.random.bytes(JOURNAL_SALT_BYTES), changeSet,
    });
  }

  /** @internal Opens journal entry `seq`, which must follow `predecessor` in this cluster, or refuses
   * it with the format's typed error (docs/journal-format.md "Opening"). */
  openJournalEntry(entry: Uint8Array, position: { readonly seq: bigint; readonly predecessor: Uint8Array }): OpenedJournalEntry {
    const { clusterId, key } = this.#journalKey();
    return openJournalEntry(entry, { syncKey: key, clusterId, seq: position.seq, predecessor: position.predecessor });
  }

  #journalKey(): { clusterId: string; key: KeyObject } {
    const loaded = this.#current();
    const syncKey = this.#currentSyncKey();
    const clusterId = this.clusterId();
    if (loaded?.certificate === undefined || syncKey === null || clusterId === null) return fail('COFFER_JOURNAL_NO_SYNC_KEY');
    return { clusterId, key: syncKey.key };
  }

  #currentSyncKey(): { readonly key: KeyObject; readonly id: Uint8Array } | null {
    this.#current(); // re-reads after a committed change
    if (this.#syncKey === undefined) this.#syncKey = loadSyncKey(this.#options.state);
    return this.#syncKey;
  }

  /**
   * A TLS server (and client) leaf for this node under the cluster key (profile in
   * docs/cluster-identity.md). Before INITIALISED: COFFER_CLUSTER_NOT_INITIALISED.
   */
  async issueTlsCertificate(leafSpkiDer: Uint8Array, options: TlsLeafOptions): Promise<TlsLeaf> {
    const loaded = this.#current();
    const issuer = loaded?.certificate;
    if (loaded === undefined || issuer === undefined) return fail('COFFER_CLUSTER_NOT_INITIALISED');
    const publicKey = tlsLeafPublicKey(leafSpkiDer);
    const sans = subjectAltNames(options.hosts);
    const validityMs = leafValidityMs(options.validityMs ?? TLS_LEAF_VALIDITY_MS_DEFAULT, issuer, this.#options.clock.nowMs());
    const signingKey = await this.#signingKeyFor(loaded);
    const leaf = await issueLeaf(issuer, signingKey, publicKey, [{ CN: [loaded.clusterId] }], validityMs, this.#options.clock, [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(sans, false),
    ]);
    const leafPem = pemOf(leaf);
    return { leafPem, chainPem: [leafPem, pemOf(issuer)] };
  }

  /** A non-extractable WebCrypto copy of the cluster key (@peculiar/x509 signs through WebCrypto). */
  #signingKeyFor(loaded: Loaded): Promise<webcrypto.CryptoKey> {
    if (this.#signingKey === undefined) {
      const der = loaded.privateKey.export({ format: 'der', type: 'pkcs8' });
      this.#signingKey = webcrypto.subtle.importKey('pkcs8', der, EC_P384, false, ['sign']).finally(() => der.fill(0));
    }
    return this.#signingKey;
  }

  toJSON(): { state: ClusterState; clusterId: string | null } {
    return { state: this.state(), clusterId: this.clusterId() };
  }

  toString(): string {
    return `ClusterIdentity { state: ${this.state()}, clusterId: ${this.clusterId() ?? 'none'} }`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

// ── what initialise checks ──────────────────────────────────────────────────────────────────

function checkClusterId(clusterId: string): void {
  if (typeof clusterId !== 'string' || clusterId.length === 0 || clusterId.length > CLUSTER_ID_CHARS_MAX || !CLUSTER_ID_PATTERN.test(clusterId)) {
    fail('COFFER_DATA_INVALID', { reason: 'cluster-id', max: CLUSTER_ID_CHARS_MAX });
  }
}

// ── the TLS leaf ────────────────────────────────────────────────────────────────────────────

/** The leaf's key: EC P-256/384/521 or RSA ≥ 2048 bits, as TLS 1.3 servers use. */
function tlsLeafPublicKey(spki: Uint8Array): x509.PublicKey {
  if (!(spki instanceof Uint8Array) || spki.length > TLS_LEAF_SPKI_BYTES_MAX) fail('COFFER_CRYPTO_KEY_INVALID', { reason: 'tls-leaf-key' });
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    return fail('COFFER_CRYPTO_KEY_INVALID', { reason: 'tls-leaf-key' }, e);
  }
  const d = key.asymmetricKeyDetails;
  const ok = key.asymmetricKeyType === 'ec'
    ? ['prime256v1', 'secp384r1', 'secp521r1'].includes(d?.namedCurve ?? '')
    : key.asymmetricKeyType === 'rsa' && (d?.modulusLength ?? 0) >= 2048;
  if (!ok) fail('COFFER_CRYPTO_KEY_INVALID', { reason: 'tls-leaf-key-type' });
  return new x509.PublicKey(spki.slice());
}

/** SAN entries: IP addresses as iPAddress, names as dNSName (RFC 5280 §4.2.1.6). */
function subjectAltNames(hosts: readonly string[]): x509.JsonGeneralNames {
  if (!Array.isArray(hosts) || hosts.length === 0 || hosts.length > TLS_LEAF_HOSTS_MAX) fail('COFFER_DATA_INVALID', { reason: 'tls-hosts', max: TLS_LEAF_HOSTS_MAX });
  return hosts.map((host) => {
    if (typeof host === 'string' && isIP(host) !== 0) return { type: 'ip' as const, value: host };
    if (!isDnsName(host)) fail('COFFER_DATA_INVALID', { reason: 'tls-host' });
    return { type: 'dns' as const, value: host.toLowerCase() };
  });
}

function isDnsName(host: unknown): host is string {
  if (typeof host !== 'string' || host.length === 0 || host.length > DNS_NAME_CHARS_MAX) return false;
  return host.split('.').every((label) => DNS_LABEL_PATTERN.test(label));
}

/** The requested validity, refused outside [1 min, TLS_LEAF_VALIDITY_MS_MAX] and cut to end with the
 * cluster certificate (a leaf outliving its issuer would only fail later, at a client). */
function leafValidityMs(requestedMs: number, issuer: x509.X509Certificate, nowMs: number): number {
  if (!Number.isSafeInteger(requestedMs) || requestedMs < TLS_LEAF_VALIDITY_MS_MIN || requestedMs > TLS_LEAF_VALIDITY_MS_MAX) {
    fail('COFFER_DATA_INVALID', { reason: 'tls-validity', max: TLS_LEAF_VALIDITY_MS_MAX });
  }
  const issuerLeftMs = issuer.notAfter.getTime() - nowMs;
  if (issuerLeftMs < TLS_LEAF_VALIDITY_MS_MIN) fail('COFFER_CLUSTER_CERT_MISMATCH', { reason: 'cluster-certificate-expired' });
  return Math.min(requestedMs, issuerLeftMs);
}

/** The sync key record as a KeyObject and its id, or null when there is none. */
function loadSyncKey(state: DeviceState): { key: KeyObject; id: Uint8Array } | null {
  const record = state.get(CLUSTER_NS, SYNC_KEY_ID);
  if (record === undefined) return null;
  let secret: SecretBytes | undefined;
  try {
    secret = decodeSyncKeyRecord(record);
    const key = secret.use((b) => createSecretKey(b));
    return { key, id: syncKeyIdOf(key) };
  } finally {
    secret?.destroy();
    record.fill(0);
  }
}

function put(id: string, value: Uint8Array): RecordOp {
  return { op: 'put', ns: CLUSTER_NS, id, value };
}
