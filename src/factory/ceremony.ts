// Offline key ceremonies of the manufacturer and the operator (docs/architecture.md §1, §3), as a library:
// `coffer factory …` and `coffer operator …` call it, and `coffer up` calls it with development
// keys. The key hierarchy follows the whitepaper "Security of AWS CloudHSM Backups":
//
//   Manufacturer: Root CA (ECDSA P-384, self-signed), firmware signing key ("production key",
//                 ECDSA P-384 — the same curve as every other Coffer signature, so one algorithm
//                 to review and one to validate), the 256-bit MKBK.
//   Operator:     Root CA (ECDSA P-384), the 256-bit AKBK as N ≥ 2 XOR components, each with its KCV.
//                 The whole AKBK exists only for the instant its KCV and key id are computed.
//
// Development keys carry "(DEVELOPMENT KEY)" in the organisation of every certificate subject
// they make, so a development chain can never be mistaken for a production one.
//
// Certificates are back-dated by CERT_BACKDATE_MS so that a device whose clock runs a little
// behind the factory's still accepts them.

import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fail, isCofferError } from '../errors.js';
import { AKBK_COMPONENTS_MAX, AKBK_COMPONENTS_MIN } from '../formats/limits.js';
import { SecretBytes } from '../crypto/secret_bytes.js';
import { kcvAes } from '../crypto/kcv.js';
import { BACKUP_KEY_BYTES, hex, keyId, xorComponents } from '../crypto/backup_keys.js';
import { systemClock, type Clock } from '../hsm/ports.js';
import { computeFirmwareDigest, signFirmwareManifest, type FirmwareManifest } from '../hsm/identity/firmware.js';
import { DEVICE_OU } from '../hsm/identity/identity.js';
import { certifiedSerial, checkDeviceChain, deviceSerialOf } from '../formats/device_chain.js';
import {
  EC_P384, EC_P384_SHA384, fingerprintSha256, p384PublicKey,
  parseCertificate, parseCsr, pemOf, randomSerialHex, spkiOf, subjectField, x509, CERT_BACKDATE_MS, DEVELOPMENT_MARK, issueLeaf,
} from '../formats/x509.js';

const DAY_MS = 86_400_000;
const ROOT_VALIDITY_MS = 25 * 365 * DAY_MS;
const DEVICE_CERT_VALIDITY_MS = 20 * 365 * DAY_MS;
const OPERATOR_CERT_VALIDITY_MS = 10 * 365 * DAY_MS;
const ORG_NAME_CHARS_MAX = 64;

// ── manufacturer ────────────────────────────────────────────────────────────────────────────

export interface Manufacturer {
  /** Organisation name in every certificate subject it makes (with the development mark if any). */
  readonly name: string;
  readonly development: boolean;
  readonly rootCertificate: x509.X509Certificate;
  readonly rootPrivateKey: webcrypto.CryptoKey;
  readonly firmwareSigningKey: KeyObject;
  readonly firmwareSigningPublicKeySpki: Uint8Array;
  readonly mkbk: SecretBytes;
}

export interface CeremonyOptions {
  readonly development: boolean;
  /** Organisation name; defaults to "Coffer [Development ]Manufacturer" / "… Operator". */
  readonly name?: string;
  readonly clock?: Clock;
}

/** Generates a manufacturer: root CA, firmware signing key pair, MKBK. */
export async function createManufacturer(opts: CeremonyOptions): Promise<Manufacturer> {
  const name = orgName(opts, 'Manufacturer');
  const { certificate, privateKey } = await createRootCa(`${name} Root CA`, name, opts.clock ?? systemClock);
  const fw = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return {
    name,
    development: opts.development,
    rootCertificate: certificate,
    rootPrivateKey: privateKey,
    firmwareSigningKey: fw.privateKey,
    firmwareSigningPublicKeySpki: new Uint8Array(fw.publicKey.export({ format: 'der', type: 'spki' })),
    mkbk: SecretBytes.random(BACKUP_KEY_BYTES),
  };
}

/**
 * Issues the device certificate for the key in a device's CSR (RFC 2986). The CSR must carry a valid
 * self-signature (proof of possession), a P-384 key and the serial derived from that key.
 */
export async function issueDeviceCertificate(m: Manufacturer, csrInput: string | Uint8Array, clock: Clock = systemClock): Promise<x509.X509Certificate> {
  const csr = parseCsr(csrInput);
  p384PublicKey(spkiOf(csr));
  if (!(await csr.verify().catch(() => false))) fail('COFFER_CERT_INVALID', { reason: 'csr-signature' });
  const serial = deviceSerialOf(spkiOf(csr));
  if (subjectField(csr, 'CN') !== serial) fail('COFFER_CERT_INVALID', { reason: 'csr-serial-mismatch' });
  return issueLeaf(m.rootCertificate, m.rootPrivateKey, csr.publicKey, [{ CN: [serial] }, { OU: [DEVICE_OU] }, { O: [m.name] }], DEVICE_CERT_VALIDITY_MS, clock);
}

/** Hashes the code under `codeDir` and signs its manifest with the firmware signing key. */
export function signFirmware(m: Manufacturer, codeDir: string, fields: { readonly product: string; readonly version: string }): FirmwareManifest {
  return signFirmwareManifest(m.firmwareSigningKey, { ...fields, digest: computeFirmwareDigest(codeDir) });
}

// ── operator ────────────────────────────────────────────────────────────────────────────────

export interface Operator {
  readonly name: string;
  readonly development: boolean;
  readonly rootCertificate: x509.X509Certificate;
  readonly rootPrivateKey: webcrypto.CryptoKey;
}

/** The AKBK as custodian components. Each component goes to one custodian; destroy after use. */
export interface AkbkComponents {
  readonly components: readonly SecretBytes[];
  readonly componentKcvs: readonly Uint8Array[];
  readonly akbkKcv: Uint8Array;
  readonly akbkKeyId: Uint8Array;
}

/** Generates an operator root CA. */
export async function createOperator(opts: CeremonyOptions): Promise<Operator> {
  const name = orgName(opts, 'Operator');
  const { certificate, privateKey } = await createRootCa(`${name} Root CA`, name, opts.clock ?? systemClock);
  return { name, development: opts.development, rootCertificate: certificate, rootPrivateKey: privateKey };
}

/**
 * Generates a fresh AKBK as `count` random XOR components (docs/architecture.md §3: N ≥ 2). Any N−1 of them
 * are uniformly random and say nothing about the AKBK.
 */
export function generateAkbkComponents(count: number): AkbkComponents {
  if (!Number.isInteger(count) || count < AKBK_COMPONENTS_MIN || count > AKBK_COMPONENTS_MAX) fail('COFFER_AKBK_COMPONENTS', { min: AKBK_COMPONENTS_MIN, max: AKBK_COMPONENTS_MAX });
  const components = Array.from({ length: count }, () => SecretBytes.random(BACKUP_KEY_BYTES));
  const akbk = xorComponents(components);
  try {
    return {
      components,
      componentKcvs: components.map((c) => kcvAes(c)),
      akbkKcv: kcvAes(akbk),
      akbkKeyId: akbk.use(keyId),
    };
  } finally {
    akbk.destroy();
  }
}

/**
 * Issues the operator certificate for a device's identity key, taken from its device certificate,
 * which must name the serial its key gives. With `manufacturerRoot`, the device certificate must
 * first pass the device half of the chain rule (the operator only commissions genuine devices).
 */
export async function issueOperatorCertificate(
  o: Operator,
  deviceCertInput: string | Uint8Array,
  opts: { readonly manufacturerRoot?: string | Uint8Array; readonly clock?: Clock } = {},
): Promise<x509.X509Certificate> {
  const clock = opts.clock ?? systemClock;
  const deviceCert = parseCertificate(deviceCertInput);
  if (opts.manufacturerRoot !== undefined) checkDeviceChain({ manufacturerRoot: opts.manufacturerRoot, deviceCertificate: deviceCert, atMs: clock.nowMs() });
  const serial = certifiedSerial(deviceCert);
  return await issueLeaf(o.rootCertificate, o.rootPrivateKey, deviceCert.publicKey, [{ CN: [serial] }, { OU: [DEVICE_OU] }, { O: [o.name] }], OPERATOR_CERT_VALIDITY_MS, clock);
}

// ── certificates ────────────────────────────────────────────────────────────────────────────

function orgName(opts: CeremonyOptions, role: 'Manufacturer' | 'Operator'): string {
  const base = opts.name ?? (opts.development ? `Coffer Development ${role}` : `Coffer ${role}`);
  // Printable ASCII only: the name goes into certificate subjects and terminal output.
  if (base.length === 0 || base.length > ORG_NAME_CHARS_MAX || !/^[ -~]+$/.test(base)) fail('COFFER_CLI_INPUT', { reason: 'organisation-name' });
  // Production names must not carry the development mark, or the mark would mean nothing.
  if (!opts.development && base.includes(DEVELOPMENT_MARK)) fail('COFFER_CLI_INPUT', { reason: 'organisation-name' });
  return opts.development && !base.includes(DEVELOPMENT_MARK) ? `${base} ${DEVELOPMENT_MARK}` : base;
}

async function createRootCa(cn: string, org: string, clock: Clock): Promise<{ certificate: x509.X509Certificate; privateKey: webcrypto.CryptoKey }> {
  const keys = await webcrypto.subtle.generateKey(EC_P384, true, ['sign', 'verify']);
  const nowMs = clock.nowMs();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [cn] }, { O: [org] }],
    notBefore: new Date(nowMs - CERT_BACKDATE_MS),
    notAfter: new Date(nowMs + ROOT_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P384_SHA384,
    extensions: [
      // A root that signs only end-entity certificates: pathLenConstraint 0 (RFC 5280 §4.2.1.9).
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate, privateKey: keys.privateKey };
}

// ── files ───────────────────────────────────────────────────────────────────────────────────

/** File names inside a factory directory (`coffer factory init --out DIR`). */
export const FACTORY_FILES = {
  rootCertificate: 'manufacturer-root.pem',
  rootKey: 'manufacturer-root.key.pem',
  firmwareKey: 'firmware-signing.key.pem',
  firmwarePublicKey: 'firmware-signing.pub.pem',
  mkbk: 'mkbk.bin',
  info: 'factory.json',
} as const;

/** File names inside an operator directory (`coffer operator init --out DIR`). */
export const OPERATOR_FILES = {
  rootCertificate: 'operator-root.pem',
  rootKey: 'operator-root.key.pem',
  info: 'operator.json',
  component: (i: number): string => `akbk-component-${i}.bin`,
} as const;

/** Public facts of a factory directory, written to factory.json and printed by the CLI. */
export interface FactoryInfo {
  readonly name: string;
  readonly development: boolean;
  readonly rootFingerprintSha256: string;
  readonly mkbkKcv: string;
  readonly mkbkKeyId: string;
}

export function factoryInfo(m: Manufacturer): FactoryInfo {
  return {
    name: m.name,
    development: m.development,
    rootFingerprintSha256: fingerprintSha256(m.rootCertificate),
    mkbkKcv: hex(kcvAes(m.mkbk)),
    mkbkKeyId: hex(m.mkbk.use(keyId)),
  };
}

/** Writes a new factory directory. Key files are 0600; existing files are never overwritten. */
export function saveManufacturer(m: Manufacturer, dir: string): FactoryInfo {
  prepareDirectory(dir, [FACTORY_FILES.rootKey, FACTORY_FILES.firmwareKey, FACTORY_FILES.mkbk, FACTORY_FILES.rootCertificate, FACTORY_FILES.firmwarePublicKey, FACTORY_FILES.info]);
  const info = factoryInfo(m);
  const rootKeyPem = privateKeyPem(m.rootPrivateKey);
  writeNewFile(join(dir, FACTORY_FILES.rootKey), rootKeyPem, true);
  writeNewFile(join(dir, FACTORY_FILES.firmwareKey), m.firmwareSigningKey.export({ format: 'pem', type: 'pkcs8' }), true);
  m.mkbk.use((b) => writeNewFile(join(dir, FACTORY_FILES.mkbk), b, true));
  writeNewFile(join(dir, FACTORY_FILES.rootCertificate), pemOf(m.rootCertificate), false);
  writeNewFile(join(dir, FACTORY_FILES.firmwarePublicKey), spkiPem(m.firmwareSigningPublicKeySpki), false);
  writeNewFile(join(dir, FACTORY_FILES.info), JSON.stringify(info, null, 2) + '\n', false);
  return info;
}

/** Reads a factory directory written by saveManufacturer. */
export async function loadManufacturer(dir: string): Promise<Manufacturer> {
  const info = readInfo(join(dir, FACTORY_FILES.info));
  const rootCertificate = parseCertificate(readText(join(dir, FACTORY_FILES.rootCertificate)));
  const rootPrivateKey = await importSigningKey(readText(join(dir, FACTORY_FILES.rootKey)));
  const firmwareSigningKey = readPrivateKey(readText(join(dir, FACTORY_FILES.firmwareKey)));
  const firmwareSigningPublicKeySpki = new Uint8Array(createPublicKey(firmwareSigningKey).export({ format: 'der', type: 'spki' }));
  const mkbk = readKeyFile(join(dir, FACTORY_FILES.mkbk));
  return { name: info.name, development: info.development, rootCertificate, rootPrivateKey, firmwareSigningKey, firmwareSigningPublicKeySpki, mkbk };
}

/** Public facts of an operator directory, written to operator.json and printed by the CLI. */
export interface OperatorInfo {
  readonly name: string;
  readonly development: boolean;
  readonly rootFingerprintSha256: string;
  readonly components: ReadonlyArray<{ readonly file: string; readonly kcv: string }>;
  readonly akbkKcv: string;
  readonly akbkKeyId: string;
}

/** Writes a new operator directory: root CA, one 0600 file per AKBK component, operator.json. */
export function saveOperator(o: Operator, akbk: AkbkComponents, dir: string): OperatorInfo {
  const componentFiles = akbk.components.map((_, i) => OPERATOR_FILES.component(i + 1));
  prepareDirectory(dir, [OPERATOR_FILES.rootKey, OPERATOR_FILES.rootCertificate, OPERATOR_FILES.info, ...componentFiles]);
  const info: OperatorInfo = {
    name: o.name,
    development: o.development,
    rootFingerprintSha256: fingerprintSha256(o.rootCertificate),
    components: akbk.componentKcvs.map((kcv, i) => ({ file: OPERATOR_FILES.component(i + 1), kcv: hex(kcv) })),
    akbkKcv: hex(akbk.akbkKcv),
    akbkKeyId: hex(akbk.akbkKeyId),
  };
  writeNewFile(join(dir, OPERATOR_FILES.rootKey), privateKeyPem(o.rootPrivateKey), true);
  akbk.components.forEach((c, i) => c.use((b) => writeNewFile(join(dir, OPERATOR_FILES.component(i + 1)), b, true)));
  writeNewFile(join(dir, OPERATOR_FILES.rootCertificate), pemOf(o.rootCertificate), false);
  writeNewFile(join(dir, OPERATOR_FILES.info), JSON.stringify(info, null, 2) + '\n', false);
  return info;
}

/** Reads the operator root CA of an operator directory (the components stay with custodians). */
export async function loadOperator(dir: string): Promise<Operator> {
  const info = readInfo(join(dir, OPERATOR_FILES.info));
  const rootCertificate = parseCertificate(readText(join(dir, OPERATOR_FILES.rootCertificate)));
  const rootPrivateKey = await importSigningKey(readText(join(dir, OPERATOR_FILES.rootKey)));
  return { name: info.name, development: info.development, rootCertificate, rootPrivateKey };
}

/** Reads a raw 32-byte key file (MKBK, AKBK component) into an owned secret. */
export function readKeyFile(path: string): SecretBytes {
  const b = readBytes(path);
  try {
    if (b.length !== BACKUP_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expected: BACKUP_KEY_BYTES, file: basename(path) });
    return SecretBytes.copyOf(b);
  } finally {
    b.fill(0);
  }
}

/**
 * Reads a file into a buffer of its own; a missing or unreadable one is COFFER_CLI_INPUT naming
 * only the file's base name. readFileSync may place small files in Node's shared Buffer pool, so
 * the bytes are copied out and the pooled copy is zeroised (key files pass through here).
 */
export function readBytes(path: string): Uint8Array {
  let pooled: Buffer;
  try {
    pooled = readFileSync(path);
  } catch (e) {
    return fail('COFFER_CLI_INPUT', { reason: 'unreadable-file', file: basename(path) }, e);
  }
  const owned = new Uint8Array(new ArrayBuffer(pooled.length));
  owned.set(pooled);
  pooled.fill(0);
  return owned;
}

/** A file as UTF-8 text (PEM keys pass through here: the byte copy is zeroised once decoded). */
export function readText(path: string): string {
  const b = readBytes(path);
  try {
    return Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
  } finally {
    b.fill(0);
  }
}

/** Creates `dir` (0700) and refuses, before writing anything, if any of `files` already exists. */
function prepareDirectory(dir: string, files: readonly string[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const f of files) if (existsSync(join(dir, f))) fail('COFFER_CLI_INPUT', { reason: 'file-exists', file: f });
}

/** Creates `path` (never overwrites); secret files get mode 0600, others 0644. */
export function writeNewFile(path: string, data: string | Uint8Array, secret: boolean): void {
  const mode = secret ? 0o600 : 0o644;
  try {
    writeFileSync(path, data, { flag: 'wx', mode });
    chmodSync(path, mode); // the umask may have cleared bits; never widen a key file's mode.
  } catch (e) {
    if (isCofferError(e)) throw e;
    fail('COFFER_CLI_INPUT', { reason: 'cannot-create-file', file: basename(path) }, e);
  }
}

function readInfo(path: string): { name: string; development: boolean } {
  try {
    const v = JSON.parse(readText(path)) as { name?: unknown; development?: unknown };
    if (typeof v.name === 'string' && typeof v.development === 'boolean') return { name: v.name, development: v.development };
  } catch (e) {
    if (isCofferError(e)) throw e;
  }
  return fail('COFFER_CLI_INPUT', { reason: 'malformed-info-file', file: basename(path) });
}

function privateKeyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ format: 'pem', type: 'pkcs8' }) as string;
}

function readPrivateKey(pem: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') fail('COFFER_CRYPTO_UNSUPPORTED_CURVE', { expected: 'P-384' });
    return key;
  } catch (e) {
    if (isCofferError(e)) throw e;
    return fail('COFFER_CLI_INPUT', { reason: 'malformed-private-key' }, e);
  }
}

/** Imports a PKCS#8 PEM P-384 key as a non-extractable WebCrypto signing key for the CA. */
async function importSigningKey(pem: string): Promise<webcrypto.CryptoKey> {
  const der = readPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  try {
    return await webcrypto.subtle.importKey('pkcs8', der, EC_P384, false, ['sign']);
  } finally {
    der.fill(0);
  }
}

function spkiPem(spki: Uint8Array): string {
  const b64 = Buffer.from(spki).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`;
}
