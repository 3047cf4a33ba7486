// Development provisioning: runs the manufacturer's and the operator's ceremonies in one process
// with development keys (marked "(DEVELOPMENT KEY)" in every certificate subject), so that the
// demo, the tests and the bench get a commissioned device in one call. Production ceremonies run
// offline with `coffer factory …` and `coffer operator …` (docs/ceremonies.md); nothing here is
// for real keys.
//
// Also for development only (docs/cluster-identity.md "Development helpers"): the authorities saved
// to a directory and read back by other processes (several nodes sharing one AKBK restore each
// other's backups), a development customer CA that signs cluster CSRs, and management client
// certificates signed by the operator root.

import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../assert.js';
import { fail, isCofferError } from '../errors.js';
import { EC_P384, EC_P384_SHA384, ECDSA_SHA384, p384PublicKey, parseCsr, pemOf, randomSerialHex, spkiOf, x509 } from '../formats/x509.js';
import { OPERATOR_FILES, createManufacturer, createOperator, generateAkbkComponents, issueDeviceCertificate, issueOperatorCertificate, loadManufacturer, loadOperator, readKeyFile, readText, saveManufacturer, saveOperator, type AkbkComponents, type Manufacturer, type Operator } from './ceremony.js';
import { BACKUP_KEY_BYTES, hex, keyId, xorComponents } from '../crypto/backup_keys.js';
import { DEVELOPMENT_MARK, issueLeaf } from '../formats/x509.js';
import { systemClock } from '../hsm/ports.js';
import { kcvAes } from '../crypto/kcv.js';
import { SecretBytes, constantTimeEqual } from '../crypto/secret_bytes.js';
import type { FirmwareEvidence, SignedTranscript } from '../hsm/identity/provisioning.js';
import type { Hsm } from '../hsm/device.js';
import type { Clock } from '../hsm/ports.js';
import type { Mode } from '../hsm/types.js';

/** A development manufacturer and operator, made once and reused for several devices. */
export interface DevelopmentAuthorities {
  readonly manufacturer: Manufacturer;
  readonly operator: Operator;
  /**
   * The operator's AKBK, one per operator (docs/architecture.md §3), so that every device these authorities
   * commission restores the others' backups. A development shortcut: a production operator never
   * holds the AKBK whole, only its custodians' components. Absent, each device gets its own AKBK.
   */
  readonly akbk?: SecretBytes;
}

export async function createDevelopmentAuthorities(clock?: Clock): Promise<DevelopmentAuthorities> {
  const opts = { development: true, ...(clock === undefined ? {} : { clock }) };
  return { manufacturer: await createManufacturer(opts), operator: await createOperator(opts), akbk: SecretBytes.random(BACKUP_KEY_BYTES) };
}

/** Splits the operator's AKBK into `count` fresh XOR components (count − 1 random, the last one
 * completing the XOR), or makes a fresh AKBK when the authorities hold none. */
function akbkComponentsFor(akbk: SecretBytes | undefined, count: number): AkbkComponents {
  if (akbk === undefined || !Number.isInteger(count) || count < 2) return generateAkbkComponents(count); // which also refuses bad counts
  const random = Array.from({ length: count - 1 }, () => SecretBytes.random(BACKUP_KEY_BYTES));
  const components = [...random, xorComponents([akbk, ...random])];
  return { components, componentKcvs: components.map((c) => kcvAes(c)), akbkKcv: kcvAes(akbk), akbkKeyId: akbk.use(keyId) };
}

export interface CommissionOptions {
  readonly mode: Mode;
  /** Required for FIPS mode. */
  readonly firmware?: FirmwareEvidence;
  readonly custodians?: readonly string[];
  readonly clock?: Clock;
}

/**
 * Takes a NEW device through identity, manufacture and commissioning (two-person AKBK install with
 * one component per custodian). Returns the device's signed ceremony transcript.
 */
export async function provisionDevelopmentDevice(hsm: Hsm, authorities: DevelopmentAuthorities, options: CommissionOptions): Promise<SignedTranscript> {
  const { manufacturer, operator } = authorities;
  const clockOpt = options.clock === undefined ? {} : { clock: options.clock };
  const identity = await hsm.provisioning.generateIdentity();
  const deviceCert = await issueDeviceCertificate(manufacturer, identity.csrPem(), options.clock);
  await hsm.provisioning.manufacture({
    deviceCertificate: pemOf(deviceCert),
    manufacturerRoot: pemOf(manufacturer.rootCertificate),
    firmwareSigningPublicKey: manufacturer.firmwareSigningPublicKeySpki,
    mkbk: manufacturer.mkbk,
    mkbkKcv: kcvAes(manufacturer.mkbk),
  });
  const operatorCert = await issueOperatorCertificate(operator, pemOf(deviceCert), { manufacturerRoot: pemOf(manufacturer.rootCertificate), ...clockOpt });
  const custodians = options.custodians ?? ['custodian-1', 'custodian-2'];
  const akbk = akbkComponentsFor(authorities.akbk, custodians.length);
  try {
    const install = await hsm.provisioning.beginAkbkInstall({
      operatorCertificate: pemOf(operatorCert),
      operatorRoot: pemOf(operator.rootCertificate),
      mode: options.mode,
      ...(options.firmware === undefined ? {} : { firmware: options.firmware }),
      akbkKcv: akbk.akbkKcv,
      componentCount: custodians.length,
    });
    custodians.forEach((name, i) => {
      const component = akbk.components[i];
      const kcv = akbk.componentKcvs[i];
      assert(component !== undefined && kcv !== undefined, 'one component per custodian');
      component.use((bytes) => install.enterComponent(name, bytes, kcv));
    });
    return install.finish();
  } finally {
    for (const c of akbk.components) c.destroy();
  }
}

// ── authorities shared between processes ────────────────────────────────────────────────────

/** Sub-directories of a saved authorities directory: the same layouts as `coffer factory init` and
 * `coffer operator init` write, so the CLI's ceremony commands read them too. */
export const DEVELOPMENT_AUTHORITY_DIRS = { manufacturer: 'factory', operator: 'operator' } as const;
/** The AKBK is saved as this many XOR components (operator.json lists them with their KCVs). */
const SAVED_AKBK_COMPONENTS = 2;

/**
 * Writes development authorities to `dir` (created 0700 if new; every file 0600): the manufacturer
 * (root CA key, firmware signing key, MKBK) under `factory/`, the operator root and the AKBK as two
 * XOR components under `operator/`. Development keys only: production keys never sit whole on one
 * disk. Refuses (COFFER_CLI_INPUT) production authorities, authorities without an AKBK, and a
 * directory that already holds any of the files.
 */
export function saveDevelopmentAuthorities(authorities: DevelopmentAuthorities, dir: string): void {
  const { manufacturer, operator, akbk } = authorities;
  if (!manufacturer.development || !operator.development) fail('COFFER_CLI_INPUT', { reason: 'not-development-keys' });
  if (akbk === undefined) fail('COFFER_CLI_INPUT', { reason: 'no-akbk' });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const factoryDir = join(dir, DEVELOPMENT_AUTHORITY_DIRS.manufacturer);
  const operatorDir = join(dir, DEVELOPMENT_AUTHORITY_DIRS.operator);
  saveManufacturer(manufacturer, factoryDir);
  const components = akbkComponentsFor(akbk, SAVED_AKBK_COMPONENTS);
  try {
    saveOperator(operator, components, operatorDir);
  } finally {
    for (const c of components.components) c.destroy();
  }
  // Certificates and info files are public, but the whole directory is one development secret.
  for (const sub of [factoryDir, operatorDir]) {
    chmodSync(sub, 0o700);
    for (const f of readdirSync(sub)) chmodSync(join(sub, f), 0o600);
  }
}

/** Reads authorities written by saveDevelopmentAuthorities; the AKBK is the XOR of the saved
 * components and must match operator.json's KCV and key id. Production directories are refused. */
export async function loadDevelopmentAuthorities(dir: string): Promise<DevelopmentAuthorities> {
  const operatorDir = join(dir, DEVELOPMENT_AUTHORITY_DIRS.operator);
  const manufacturer = await loadManufacturer(join(dir, DEVELOPMENT_AUTHORITY_DIRS.manufacturer));
  const operator = await loadOperator(operatorDir);
  if (!manufacturer.development || !operator.development) fail('COFFER_CLI_INPUT', { reason: 'not-development-keys' });
  const info = savedAkbkInfo(readText(join(operatorDir, OPERATOR_FILES.info)));
  const components = info.files.map((f) => readKeyFile(join(operatorDir, f)));
  try {
    const akbk = xorComponents(components);
    const matches = constantTimeEqual(kcvAes(akbk), Buffer.from(info.akbkKcv, 'hex')) && akbk.use((b) => hex(keyId(b))) === info.akbkKeyId;
    if (!matches) {
      akbk.destroy();
      fail('COFFER_AKBK_KCV');
    }
    return { manufacturer, operator, akbk };
  } finally {
    for (const c of components) c.destroy();
  }
}

/** The component files and AKBK check values of an operator.json (saveOperator's format). */
function savedAkbkInfo(text: string): { files: string[]; akbkKcv: string; akbkKeyId: string } {
  try {
    const v = JSON.parse(text) as { components?: unknown; akbkKcv?: unknown; akbkKeyId?: unknown };
    const files = Array.isArray(v.components) ? v.components.map((c: { file?: unknown }) => c.file) : [];
    const fileOk = (f: unknown): f is string => typeof f === 'string' && /^akbk-component-[0-9]+\.bin$/.test(f);
    if (files.length >= 2 && files.every(fileOk) && typeof v.akbkKcv === 'string' && typeof v.akbkKeyId === 'string') {
      return { files, akbkKcv: v.akbkKcv, akbkKeyId: v.akbkKeyId };
    }
  } catch (e) {
    if (isCofferError(e)) throw e;
  }
  return fail('COFFER_CLI_INPUT', { reason: 'malformed-info-file', file: OPERATOR_FILES.info });
}

// ── management client certificates ──────────────────────────────────────────────────────────

const MANAGEMENT_CLIENT_VALIDITY_MS = 365 * 86_400_000;
const CERT_NAME_CHARS_MAX = 64;

/**
 * A client certificate for a node's management interface (mutual TLS against the operator root):
 * a fresh ECDSA P-256 key, EKU clientAuth, subject CN = `name`, O = the operator's name (which
 * carries "(DEVELOPMENT KEY)"), valid one year, signed by the operator root CA. Development
 * operators only. The key is returned as PKCS#8 PEM: write it 0600.
 */
export async function issueManagementClientCertificate(operator: Operator, name: string): Promise<{ readonly certificatePem: string; readonly keyPem: string }> {
  if (!operator.development || !operator.name.includes(DEVELOPMENT_MARK)) fail('COFFER_CLI_INPUT', { reason: 'not-development-keys' });
  checkPrintableName(name);
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(keys.publicKey.export({ format: 'der', type: 'spki' }));
  const cert = await issueLeaf(operator.rootCertificate, operator.rootPrivateKey, new x509.PublicKey(spki), [{ CN: [name] }, { O: [operator.name] }], MANAGEMENT_CLIENT_VALIDITY_MS, systemClock, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
  ]);
  return { certificatePem: pemOf(cert), keyPem: keys.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string };
}

function checkPrintableName(name: string): void {
  // Printable ASCII: the name goes into a certificate subject and into logs.
  if (typeof name !== 'string' || name.length === 0 || name.length > CERT_NAME_CHARS_MAX || !/^[ -~]+$/.test(name)) fail('COFFER_CLI_INPUT', { reason: 'certificate-name' });
}

// ── development customer CA ─────────────────────────────────────────────────────────────────

const CUSTOMER_CA_VALIDITY_MS = 10 * 365 * 86_400_000;
const CLUSTER_CERT_VALIDITY_MS = 5 * 365 * 86_400_000;
/** Back-dated like the ceremony's certificates, for devices whose clock runs a little behind. */
const CUSTOMER_BACKDATE_MS = 5 * 60_000;

/** A development customer CA (self-signed, CA:true, ECDSA P-384) and its signing of cluster CSRs. */
export interface DevelopmentCustomerCa {
  readonly certificatePem: string;
  /**
   * Signs a cluster CSR (after checking its self-signature and P-384 key): the cluster certificate
   * PEM, subject = the CSR's, CA:true with pathLenConstraint 0 (the cluster key issues TLS leaves,
   * nothing below them), keyCertSign, valid 5 years. `validityMs` and `clock` exist for tests
   * (an expired certificate).
   */
  signClusterCsr(csrPem: string, options?: { readonly validityMs?: number; readonly clock?: Clock }): Promise<string>;
}

/** A fresh development customer CA; its CN carries a random suffix so two of them never share a name. */
export async function createDevelopmentCustomerCa(clock: Clock = systemClock): Promise<DevelopmentCustomerCa> {
  const keys = await webcrypto.subtle.generateKey(EC_P384, true, ['sign', 'verify']);
  const nowMs = clock.nowMs();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [`Coffer Development Customer CA ${randomSerialHex().slice(0, 8)}`] }, { O: [`Coffer Development Customer ${DEVELOPMENT_MARK}`] }],
    notBefore: new Date(nowMs - CUSTOMER_BACKDATE_MS),
    notAfter: new Date(nowMs + CUSTOMER_CA_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P384_SHA384,
    extensions: [
      // No pathLenConstraint: the cluster certificate below it is itself a CA (RFC 5280 §4.2.1.9).
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certificatePem: pemOf(ca),
    signClusterCsr: (csrPem, options = {}) => signClusterCsr(ca, keys.privateKey, csrPem, options.validityMs ?? CLUSTER_CERT_VALIDITY_MS, options.clock ?? clock),
  };
}

async function signClusterCsr(ca: x509.X509Certificate, caKey: webcrypto.CryptoKey, csrPem: string, validityMs: number, clock: Clock): Promise<string> {
  const csr = parseCsr(csrPem);
  p384PublicKey(spkiOf(csr));
  if (!(await csr.verify().catch(() => false))) fail('COFFER_CERT_INVALID', { reason: 'csr-signature' });
  const nowMs = clock.nowMs();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: csr.subjectName,
    issuer: ca.subjectName,
    notBefore: new Date(nowMs - CUSTOMER_BACKDATE_MS),
    notAfter: new Date(nowMs + validityMs),
    publicKey: csr.publicKey,
    signingKey: caKey,
    signingAlgorithm: ECDSA_SHA384,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign, true),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
    ],
  });
  return pemOf(cert);
}
