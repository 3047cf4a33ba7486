// The device-certificate chain rule (docs/architecture.md §1, §3; docs/backup-format.md "Trust"):
// one synchronous function that says whether a device's certificates make an authentic, commissioned
// device, used by everyone who asks — the device at manufacture, commissioning and restore, the
// factory's operator ceremony, `verifyBackup` (control plane, customer, CLI) and the management client.
// It lives in formats/ so that each of them can import it (crypto ← formats ← hsm ← node).
//
// The rule, each refusal a COFFER_CERT_INVALID whose detail names the `certificate` (its role) and a
// fixed, non-secret `reason`:
//   roots (manufacturer, operator): a P-384 key, basicConstraints cA, keyCertSign when a keyUsage is
//     present, self-issued (names, key identifiers) and self-signed, valid at the given time;
//   leaves (device ← manufacturer root, operator ← operator root): a P-384 key, issued by the root
//     (issuer name, key identifiers), signed by the root's key, valid at the given time, not a CA;
//   both leaves certify one key; each names in its CN the serial derived from that key
//   (deviceSerialOf); and where the caller names an expected serial or key, it is that one.
//
// Synchronous on purpose: restore runs inside one synchronous device call. node:crypto's
// X509Certificate checks issuer, key identifiers and signatures synchronously; @peculiar/x509 parses
// names and extensions synchronously (only its verify() is async, and it is not used here).

import { X509Certificate as NodeCertificate, createHash, type KeyObject } from 'node:crypto';
import { assert } from '../assert.js';
import { CofferError, isCofferError } from '../errors.js';
import { p384PublicKey, parseCertificate, sameSpki, spkiOf, subjectField, x509 } from './x509.js';

/** Every device serial starts with this ("Coffer Root of trust"). */
export const DEVICE_SERIAL_PREFIX = 'CFR-';
/** Bytes of SHA-256(SPKI) a serial shows: 64 bits, so two devices never share one by chance. */
const DEVICE_SERIAL_HASH_BYTES = 8;

/**
 * The serial of the device whose identity key has this SPKI: "CFR-" + upper-case hex of the first 8
 * bytes of SHA-256(SPKI DER). It is derived from the key, so a certificate cannot name another
 * device's serial for its key without the rule noticing.
 */
export function deviceSerialOf(spki: Uint8Array): string {
  return DEVICE_SERIAL_PREFIX + createHash('sha256').update(spki).digest().subarray(0, DEVICE_SERIAL_HASH_BYTES).toString('hex').toUpperCase();
}

/** A certificate as PEM text, DER bytes, or already parsed. */
export type CertificateInput = string | Uint8Array | x509.X509Certificate;

/** Which certificate of the chain a refusal is about. */
export type ChainRole = 'manufacturer-root' | 'operator-root' | 'device' | 'operator';

/** Every reason the rule refuses with (`detail.reason`); docs/backup-format.md "Trust" lists them. */
export const CHAIN_REFUSALS = [
  'certificate-too-large', 'unparsable-certificate', 'key-not-p384',
  'root-not-ca', 'root-cannot-sign-certificates', 'root-not-self-issued',
  'issuer-mismatch', 'bad-signature', 'not-yet-valid', 'expired', 'leaf-is-ca',
  'chain-key-mismatch', 'serial-mismatch', 'unexpected-serial', 'not-this-device',
] as const;
export type ChainRefusal = (typeof CHAIN_REFUSALS)[number];

function refuse(certificate: ChainRole, reason: ChainRefusal): never {
  throw new CofferError('COFFER_CERT_INVALID', { reason, certificate });
}

/**
 * A parsed certificate: both libraries' views of the same DER, and every field the rule reads.
 * @peculiar/x509 decodes the key, names and extensions lazily, and a malformed one throws the
 * library's own error when first read: they are all read here, so that any of them is
 * 'unparsable-certificate' rather than an untyped error in the middle of a check.
 */
interface Parsed {
  readonly role: ChainRole;
  readonly cert: x509.X509Certificate;
  readonly native: NodeCertificate;
  readonly spki: Uint8Array;
  readonly subject: string;
  readonly issuer: string;
  readonly cn: string | undefined;
  /** basicConstraints cA. */
  readonly ca: boolean;
  /** The keyUsage bits, or null without a keyUsage extension. */
  readonly keyUsage: number | null;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

function parse(input: CertificateInput, role: ChainRole): Parsed {
  let cert: x509.X509Certificate;
  try {
    cert = input instanceof x509.X509Certificate ? input : parseCertificate(input);
  } catch (e) {
    return refuse(role, isCofferError(e, 'COFFER_FORMAT_LIMIT') ? 'certificate-too-large' : 'unparsable-certificate');
  }
  try {
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    return {
      role, cert, native: new NodeCertificate(Buffer.from(cert.rawData)), spki: spkiOf(cert), subject: cert.subject, issuer: cert.issuer,
      cn: subjectField(cert, 'CN'), ca: bc !== null && bc.ca, keyUsage: cert.getExtension(x509.KeyUsagesExtension)?.usages ?? null,
      notBeforeMs: cert.notBefore.getTime(), notAfterMs: cert.notAfter.getTime(),
    };
  } catch {
    return refuse(role, 'unparsable-certificate');
  }
}

function keyOf(c: Parsed): KeyObject {
  try {
    return p384PublicKey(c.spki);
  } catch {
    return refuse(c.role, 'key-not-p384');
  }
}

/** True when `subject`'s signature verifies under `issuer`'s key (OpenSSL's X509_verify). */
function signedBy(subject: Parsed, issuer: Parsed): boolean {
  try {
    return subject.native.verify(issuer.native.publicKey);
  } catch {
    return false;
  }
}

/** notBefore ≤ atMs ≤ notAfter (RFC 5280 §4.1.2.5: both ends inclusive). */
function checkValidity(c: Parsed, atMs: number): void {
  if (atMs < c.notBeforeMs) refuse(c.role, 'not-yet-valid');
  if (atMs > c.notAfterMs) refuse(c.role, 'expired');
}

/** The root half of the rule: a P-384 self-issued, self-signed CA valid at `atMs` (RFC 5280 §4.2.1.9, §4.2.1.3). */
function checkRoot(root: Parsed, atMs: number): void {
  keyOf(root);
  if (!root.ca) refuse(root.role, 'root-not-ca');
  if (root.keyUsage !== null && (root.keyUsage & x509.KeyUsageFlags.keyCertSign) === 0) refuse(root.role, 'root-cannot-sign-certificates');
  // checkIssued compares the names and, when present, the authority and subject key identifiers.
  if (root.issuer !== root.subject || !root.native.checkIssued(root.native)) refuse(root.role, 'root-not-self-issued');
  if (!signedBy(root, root)) refuse(root.role, 'bad-signature');
  checkValidity(root, atMs);
}

/** The leaf half: a P-384 end-entity certificate issued and signed by `root`, valid at `atMs`. */
function checkLeaf(leaf: Parsed, root: Parsed, atMs: number): void {
  keyOf(leaf);
  if (leaf.issuer !== root.subject || !leaf.native.checkIssued(root.native)) refuse(leaf.role, 'issuer-mismatch');
  if (!signedBy(leaf, root)) refuse(leaf.role, 'bad-signature');
  checkValidity(leaf, atMs);
  if (leaf.ca) refuse(leaf.role, 'leaf-is-ca');
}

/** Checks that `root` is a root CA fit to anchor a device chain at `atMs` (the root half of the rule). */
export function checkRootCa(root: CertificateInput, atMs: number, role: 'manufacturer-root' | 'operator-root' = 'manufacturer-root'): void {
  checkRoot(parse(root, role), atMs);
}

/** Checks that `leaf` was issued by `root` and is valid at `atMs` (the leaf half; the root is not checked here). */
export function checkIssuedBy(leaf: CertificateInput, root: CertificateInput, atMs: number, role: 'device' | 'operator' = 'device'): void {
  checkLeaf(parse(leaf, role), parse(root, role === 'device' ? 'manufacturer-root' : 'operator-root'), atMs);
}

/** The serial `cert` certifies: derived from its key, and its CN must say the same. */
export function certifiedSerial(cert: CertificateInput, role: 'device' | 'operator' = 'device'): string {
  const c = parse(cert, role);
  const serial = deviceSerialOf(c.spki);
  if (c.cn !== serial) refuse(role, 'serial-mismatch');
  return serial;
}

export interface DeviceChainInput {
  /** The manufacturer root the caller trusts (never one a peer sent). */
  readonly manufacturerRoot: CertificateInput;
  readonly deviceCertificate: CertificateInput;
  /** The operator root the caller trusts, and the operator certificate: both or neither (a device
   * that is only manufactured has no operator half yet). */
  readonly operatorRoot?: CertificateInput;
  readonly operatorCertificate?: CertificateInput;
  /** Validity is judged at this time (ms since the Unix epoch). */
  readonly atMs: number;
  /** The serial the caller expects (a backup's source HSM id, a management peer's serial). */
  readonly expectedSerial?: string;
  /** The key the caller expects, SPKI DER (a device installing certificates for itself). */
  readonly expectedSpki?: Uint8Array;
}

/** What a chain that passes the rule establishes. */
export interface DeviceChain {
  /** The device serial, derived from the key. */
  readonly serial: string;
  readonly spki: Uint8Array;
  /** The device identity key (P-384), for checking what the device signed. */
  readonly publicKey: KeyObject;
  readonly deviceCertificate: x509.X509Certificate;
  readonly manufacturerRoot: x509.X509Certificate;
  readonly operatorCertificate?: x509.X509Certificate;
  readonly operatorRoot?: x509.X509Certificate;
}

/** One refusal of a chain: the role and reason of its COFFER_CERT_INVALID. */
export interface ChainFailure {
  readonly certificate: ChainRole;
  readonly reason: ChainRefusal;
}

/** Every refusal of a chain, and what could still be read (a verifier's report). */
export interface DeviceChainReport {
  readonly failures: readonly ChainFailure[];
  /** The serial derived from the device certificate's key, when that certificate parses. */
  readonly serial?: string;
  /** The device certificate's key, when it is a P-384 key (whether or not the chain holds). */
  readonly publicKey?: KeyObject;
}

/**
 * The rule itself: throws the first refusal (COFFER_CERT_INVALID with `reason` and `certificate`),
 * or returns what the chain establishes. Callers map the refusal to their own code (restore:
 * COFFER_BACKUP_UNTRUSTED; the management client: COFFER_NODE_UNTRUSTED).
 */
export function checkDeviceChain(input: DeviceChainInput): DeviceChain {
  const found = runRule(input, (e) => {
    throw e;
  });
  assert(found.device !== undefined && found.manufacturerRoot !== undefined && found.publicKey !== undefined, 'a chain that passed the rule is complete');
  return {
    serial: deviceSerialOf(found.device.spki), spki: found.device.spki.slice(), publicKey: found.publicKey,
    deviceCertificate: found.device.cert, manufacturerRoot: found.manufacturerRoot.cert,
    ...(found.operator === undefined ? {} : { operatorCertificate: found.operator.cert }),
    ...(found.operatorRoot === undefined ? {} : { operatorRoot: found.operatorRoot.cert }),
  };
}

/** The same rule, reporting every refusal instead of the first (verifyBackup lists them all). */
export function deviceChainFailures(input: DeviceChainInput): DeviceChainReport {
  const failures: ChainFailure[] = [];
  const found = runRule(input, (e) => failures.push({ certificate: e.detail['certificate'] as ChainRole, reason: e.detail['reason'] as ChainRefusal }));
  return {
    failures,
    ...(found.device === undefined ? {} : { serial: deviceSerialOf(found.device.spki) }),
    ...(found.publicKey === undefined ? {} : { publicKey: found.publicKey }),
  };
}

interface Found {
  readonly manufacturerRoot: Parsed | undefined;
  readonly device: Parsed | undefined;
  readonly operatorRoot: Parsed | undefined;
  readonly operator: Parsed | undefined;
  readonly publicKey: KeyObject | undefined;
}

/**
 * Runs every check in order and hands each refusal to `report`, which throws (the rule) or collects
 * (the report). A check that needs a certificate that did not parse is skipped.
 */
function runRule(input: DeviceChainInput, report: (e: CofferError) => void): Found {
  assert((input.operatorRoot === undefined) === (input.operatorCertificate === undefined), 'the operator half is both certificates or neither');
  const attempt = <T>(check: () => T): T | undefined => {
    try {
      return check();
    } catch (e) {
      if (!isCofferError(e, 'COFFER_CERT_INVALID')) throw e;
      report(e);
      return undefined;
    }
  };
  const { atMs, operatorRoot: oRoot, operatorCertificate: oCert } = input;
  const manufacturerRoot = attempt(() => parse(input.manufacturerRoot, 'manufacturer-root'));
  const device = attempt(() => parse(input.deviceCertificate, 'device'));
  if (manufacturerRoot !== undefined) attempt(() => checkRoot(manufacturerRoot, atMs));
  if (device !== undefined && manufacturerRoot !== undefined) attempt(() => checkLeaf(device, manufacturerRoot, atMs));
  const operatorRoot = oRoot === undefined ? undefined : attempt(() => parse(oRoot, 'operator-root'));
  const operator = oCert === undefined ? undefined : attempt(() => parse(oCert, 'operator'));
  if (operatorRoot !== undefined) attempt(() => checkRoot(operatorRoot, atMs));
  if (operator !== undefined && operatorRoot !== undefined) attempt(() => checkLeaf(operator, operatorRoot, atMs));
  if (device !== undefined) for (const check of deviceChecks(device, operator, input)) attempt(check);
  const publicKey = device === undefined ? undefined : attempt(() => keyOf(device));
  return { manufacturerRoot, device, operatorRoot, operator, publicKey };
}

/** Both leaves certify one key, each names the serial derived from it, and it is the one expected. */
function deviceChecks(device: Parsed, operator: Parsed | undefined, input: DeviceChainInput): Array<() => void> {
  const serial = deviceSerialOf(device.spki);
  const named = (c: Parsed): void => {
    if (c.cn !== serial) refuse(c.role, 'serial-mismatch');
  };
  return [
    () => named(device),
    () => {
      if (operator === undefined) return;
      if (!sameSpki(device.spki, operator.spki)) refuse('operator', 'chain-key-mismatch');
      named(operator);
    },
    () => {
      if (input.expectedSerial !== undefined && input.expectedSerial !== serial) refuse('device', 'unexpected-serial');
    },
    () => {
      if (input.expectedSpki !== undefined && !sameSpki(device.spki, input.expectedSpki)) refuse('device', 'not-this-device');
    },
  ];
}
