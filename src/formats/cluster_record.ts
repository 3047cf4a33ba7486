// The stored form of a cluster's identity inside a device (docs/cluster-identity.md, hsm/identity/
// cluster.ts): namespace 'cluster', four records, each standard DER — 'key' (PKCS#8 of the ECDSA
// P-384 cluster key), 'csr' (PKCS#10; its CN is the cluster id), 'certificate' and 'trust-anchor'
// (X.509). This module reads and checks them as one identity; a backup checks each record with
// checkClusterRecord before a restore writes anything. The namespace also holds the cluster sync key
// ('sync-key', its own codec: formats/sync_key_record.ts), made when the cluster is initialised,
// and, in a cluster created from a backup, 'journal-cluster' (formats/journal_cluster_record.ts).

import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { fail } from '../errors.js';
import { parseCertificate, parseCsr, sameSpki, spkiOf, subjectField, type x509 } from './x509.js';
import { SYNC_KEY_ID, decodeSyncKeyRecord } from './sync_key_record.js';
import { JOURNAL_CLUSTER_ID, decodeJournalClusterRecord } from './journal_cluster_record.js';

/** Record-store namespace of the cluster identity (backed up, cleared by zeroise). */
export const CLUSTER_NS = 'cluster';
export const KEY_ID = 'key';
export const CSR_ID = 'csr';
export const CERT_ID = 'certificate';
export const ANCHOR_ID = 'trust-anchor';

/** The identity as loaded from a device's records. */
export interface LoadedClusterIdentity {
  readonly clusterId: string;
  readonly privateKey: KeyObject;
  readonly csr: x509.Pkcs10CertificateRequest;
  readonly csrDer: Uint8Array;
  readonly certificate: x509.X509Certificate | undefined;
  readonly trustAnchor: x509.X509Certificate | undefined;
}

/** The identity in `store` (a device's state), or undefined before a CSR. Records that do not fit together (only a
 * trusted device's backup could bring such) are COFFER_FORMAT_MALFORMED, never silently dropped. */
export function loadClusterIdentity(store: { get(ns: string, id: string): Uint8Array | undefined }): LoadedClusterIdentity | undefined {
  const pkcs8 = store.get(CLUSTER_NS, KEY_ID);
  const csrDer = store.get(CLUSTER_NS, CSR_ID);
  const certDer = store.get(CLUSTER_NS, CERT_ID);
  const anchorDer = store.get(CLUSTER_NS, ANCHOR_ID);
  if (pkcs8 === undefined && csrDer === undefined && certDer === undefined && anchorDer === undefined) return undefined;
  try {
    if (pkcs8 === undefined || csrDer === undefined || (certDer === undefined) !== (anchorDer === undefined)) malformed('incomplete');
    const privateKey = clusterPrivateKey(pkcs8);
    const csr = parseCsr(csrDer);
    const spki = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
    if (!sameSpki(spki, spkiOf(csr))) malformed('csr-key');
    const certificate = certDer === undefined ? undefined : parseCertificate(certDer);
    if (certificate !== undefined && !sameSpki(spki, spkiOf(certificate))) malformed('certificate-key');
    const clusterId = subjectField(csr, 'CN');
    if (clusterId === undefined) return malformed('cluster-id');
    return { clusterId, privateKey, csr, csrDer, certificate, trustAnchor: anchorDer === undefined ? undefined : parseCertificate(anchorDer) };
  } finally {
    pkcs8?.fill(0);
  }
}

function malformed(reason: string): never {
  return fail('COFFER_FORMAT_MALFORMED', { record: CLUSTER_NS, reason });
}

function clusterPrivateKey(pkcs8: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    // A view over the record's bytes, not a copy: the caller's fill(0) wipes the only copy.
    key = createPrivateKey({ key: Buffer.from(pkcs8.buffer, pkcs8.byteOffset, pkcs8.byteLength), format: 'der', type: 'pkcs8' });
  } catch (e) {
    return fail('COFFER_FORMAT_MALFORMED', { record: CLUSTER_NS, reason: 'key' }, e);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') malformed('key-curve');
  return key;
}

/**
 * The backup's per-record check for namespace 'cluster' (hsm/backup/backup.ts RECORD_CHECKS): each record
 * must decode as what its id says. An id this build does not know comes from a newer one:
 * COFFER_FORMAT_UNKNOWN_VERSION, which a restore reports as such rather than as tampering.
 */
export function checkClusterRecord(id: string, value: Uint8Array): void {
  switch (id) {
    case KEY_ID:
      clusterPrivateKey(value); // parsed and curve checked; the KeyObject is dropped
      return;
    case CSR_ID:
      parseCsr(value);
      return;
    case CERT_ID:
    case ANCHOR_ID:
      parseCertificate(value);
      return;
    case SYNC_KEY_ID:
      decodeSyncKeyRecord(value).destroy(); // decoded and checked; the copy of the key is wiped
      return;
    case JOURNAL_CLUSTER_ID:
      decodeJournalClusterRecord(value);
      return;
    default:
      fail('COFFER_FORMAT_UNKNOWN_VERSION', { record: CLUSTER_NS, id });
  }
}

