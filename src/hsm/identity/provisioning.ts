// The device's provisioning state machine (docs/architecture.md §1, §3, §4):
//
//   NEW ──generateIdentity──▶ IDENTIFIED ──manufacture──▶ MANUFACTURED ──AKBK install──▶ COMMISSIONED
//
// - IDENTIFIED: the identity key pair exists inside the device (identity.ts); its CSR goes to the factory.
// - MANUFACTURED: the device holds a device certificate that chains to the Manufacturer Root CA and
//   certifies its own identity key, that root, the firmware signing public key, and the MKBK.
// - COMMISSIONED: it holds an operator certificate for its identity key that chains to the Operator
//   Root CA, that root, the AKBK, and its mode (FIPS or NON_FIPS, fixed for life; FIPS only if the
//   firmware manifest verifies).
//
// Every step validates all its inputs before it writes anything and then persists as one local
// change set (src/hsm/state/: one store transaction), so a refused or interrupted step leaves the
// state as it was. The AKBK is installed
// under two-person control: custodians enter their components separately, each checked against its
// KCV; pending components live only in memory (SecretBytes) and are zeroised on finish or abort;
// the AKBK is accepted only if the XOR of the components matches the AKBK's KCV. The device then
// signs a ceremony transcript with its identity key that anyone can verify with its certificate.
//
// Records (namespace 'device'): identity.key, identity.csr (identity.ts), manufacture (JSON),
// mkbk (32 raw bytes), commission (JSON, with the signed transcript), akbk (32 raw bytes).

import { createPublicKey } from 'node:crypto';
import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import { kcvAes } from '../../crypto/kcv.js';
import { AKBK_COMPONENTS_MAX, AKBK_COMPONENTS_MIN, CERTIFICATE_BYTES_MAX, CUSTODIAN_NAME_CHARS_MAX, MANIFEST_JSON_BYTES_MAX } from '../../formats/limits.js';
import { SecretBytes, constantTimeEqual } from '../../crypto/secret_bytes.js';
import { systemClock, type Clock } from '../ports.js';
import type { ChangeKind, RecordOp } from '../../formats/change_set.js';
import type { DeviceState } from '../state/device_state.js';
import type { Mode } from '../types.js';
import { BACKUP_KEY_BYTES, hex, keyId, xorComponents } from '../../crypto/backup_keys.js';
import { DEVELOPMENT_MARK } from '../../formats/x509.js';
import { checkDeviceChain, deviceSerialOf } from '../../formats/device_chain.js';
import { verifyFirmware, type FirmwareCheck, type FirmwareManifest } from './firmware.js';
import { DEVICE_NS, DeviceIdentity, verifyIdentitySignature } from './identity.js';
import { derOf, fingerprintSha256, p384PublicKey, parseCertificate, pemOf, spkiOf, subjectField, type x509 } from '../../formats/x509.js';

export type ProvisioningState = 'NEW' | 'IDENTIFIED' | 'MANUFACTURED' | 'COMMISSIONED';

const MANUFACTURE_ID = 'manufacture';
const MKBK_ID = 'mkbk';
const COMMISSION_ID = 'commission';
const AKBK_ID = 'akbk';
const RECORD_VERSION = 1;
const KCV_BYTES = 3;
const TRANSCRIPT_DOMAIN = 'coffer akbk ceremony transcript v1\0';
export const TRANSCRIPT_FORMAT = 'coffer-akbk-ceremony';
export const TRANSCRIPT_SIGNATURE_ALGORITHM = 'ECDSA-P384-SHA384';

export interface ManufactureInput {
  readonly deviceCertificate: string | Uint8Array;
  readonly manufacturerRoot: string | Uint8Array;
  /** SubjectPublicKeyInfo of the firmware signing key, PEM or DER. */
  readonly firmwareSigningPublicKey: string | Uint8Array;
  /** The caller keeps ownership of its copy (and destroys it). */
  readonly mkbk: SecretBytes;
  /** If given, the MKBK must match it (catches a corrupted transfer). */
  readonly mkbkKcv?: Uint8Array;
}

export interface FirmwareEvidence {
  readonly manifest: FirmwareManifest;
  /** computeFirmwareDigest() of the code this device runs. */
  readonly actualDigest: Uint8Array;
}

export interface CommissionInput {
  readonly operatorCertificate: string | Uint8Array;
  readonly operatorRoot: string | Uint8Array;
  readonly mode: Mode;
  /** Required for FIPS mode; recorded (its version) for NON_FIPS when it verifies. */
  readonly firmware?: FirmwareEvidence;
  readonly akbkKcv: Uint8Array;
  readonly componentCount: number;
}

/** What the device attests after installing the AKBK. Every field is public. */
export interface CeremonyTranscript {
  readonly format: typeof TRANSCRIPT_FORMAT;
  readonly formatVersion: 1;
  readonly deviceSerial: string;
  readonly deviceCertificateSha256: string;
  readonly operatorCertificateSha256: string;
  readonly custodians: ReadonlyArray<{ readonly name: string; readonly componentKcv: string }>;
  readonly akbkKcv: string;
  readonly akbkKeyId: string;
  readonly mode: Mode;
  readonly firmwareVersion: string | null;
  /** ISO 8601 time from the device's clock. */
  readonly time: string;
}

/** The transcript JSON text exactly as signed, and the device's signature over it (base64, P1363). */
export interface SignedTranscript {
  readonly transcript: string;
  readonly signature: string;
  readonly algorithm: typeof TRANSCRIPT_SIGNATURE_ALGORITHM;
}

export interface CertificateEntry {
  readonly pem: string;
  readonly der: Uint8Array;
}

export interface CertificateChain {
  readonly deviceCertificate: CertificateEntry;
  readonly manufacturerRoot: CertificateEntry;
  /** Present once commissioned. */
  readonly operatorCertificate?: CertificateEntry;
  readonly operatorRoot?: CertificateEntry;
}

interface ManufactureRecord {
  readonly v: number;
  readonly deviceCertificate: string;
  readonly manufacturerRoot: string;
  readonly firmwareSigningPublicKey: string;
  readonly mkbkId: string;
  readonly atMs: number;
}

interface CommissionRecord {
  readonly v: number;
  readonly operatorCertificate: string;
  readonly operatorRoot: string;
  readonly mode: Mode;
  readonly akbkId: string;
  readonly firmwareVersion: string | null;
  readonly transcript: SignedTranscript;
  readonly atMs: number;
}

/** Inputs checked by beginAkbkInstall and carried to finish. */
interface ValidatedCommission {
  readonly operatorCertificate: x509.X509Certificate;
  readonly operatorRoot: x509.X509Certificate;
  readonly mode: Mode;
  readonly firmwareVersion: string | null;
  readonly akbkKcv: Uint8Array;
  readonly componentCount: number;
}

export class Provisioning {
  readonly #state: DeviceState;
  readonly #clock: Clock;
  #identity: DeviceIdentity | undefined;
  #install: AkbkInstall | undefined;

  constructor(state: DeviceState, clock: Clock = systemClock) {
    this.#state = state;
    this.#clock = clock;
    this.#identity = DeviceIdentity.load(state);
  }

  state(): ProvisioningState {
    if (this.#state.get(DEVICE_NS, COMMISSION_ID) !== undefined) return 'COMMISSIONED';
    if (this.#state.get(DEVICE_NS, MANUFACTURE_ID) !== undefined) return 'MANUFACTURED';
    return this.#identity === undefined ? 'NEW' : 'IDENTIFIED';
  }

  // ── NEW → IDENTIFIED ──────────────────────────────────────────────────────────────────────

  /** Generates the identity key pair inside the device; returns it (its CSR goes to the factory). */
  async generateIdentity(): Promise<DeviceIdentity> {
    if (this.#identity !== undefined) fail('COFFER_DEVICE_IDENTITY_EXISTS');
    this.#identity = await DeviceIdentity.generate(this.#state);
    return this.#identity;
  }

  identity(): DeviceIdentity {
    return this.#identity ?? fail('COFFER_DEVICE_NO_IDENTITY');
  }

  /** The identity key, or undefined before the device has one (state NEW): no store read, so fit
   * for what asks on every operation (the audit log's signer). */
  identityIfAny(): DeviceIdentity | undefined {
    return this.#identity;
  }

  // ── IDENTIFIED → MANUFACTURED ─────────────────────────────────────────────────────────────

  /** Installs the factory's outputs. Every input is checked before anything is written. */
  async manufacture(input: ManufactureInput): Promise<void> {
    // Every check runs before anything is written (they are synchronous: a refusal writes nothing).
    const identity = this.identity();
    if (this.state() !== 'IDENTIFIED') fail('COFFER_DEVICE_ALREADY_MANUFACTURED');
    const nowMs = this.#clock.nowMs();
    // The device half of the chain rule, for this device's own key.
    const chain = checkDeviceChain({
      manufacturerRoot: input.manufacturerRoot, deviceCertificate: input.deviceCertificate, atMs: nowMs, expectedSpki: identity.publicKeySpki(),
    });
    const [cert, root] = [chain.deviceCertificate, chain.manufacturerRoot];
    const fwSpki = spkiFromInput(input.firmwareSigningPublicKey);
    if (input.mkbk.length !== BACKUP_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expected: BACKUP_KEY_BYTES });
    if (input.mkbkKcv !== undefined && !constantTimeEqual(kcvAes(input.mkbk), input.mkbkKcv)) fail('COFFER_CRYPTO_KCV_MISMATCH');
    const record: ManufactureRecord = {
      v: RECORD_VERSION,
      deviceCertificate: b64(derOf(cert)),
      manufacturerRoot: b64(derOf(root)),
      firmwareSigningPublicKey: b64(fwSpki),
      mkbkId: hex(input.mkbk.use(keyId)),
      atMs: nowMs,
    };
    await this.#write('device.manufacture', () => {
      if (this.#state.get(DEVICE_NS, MANUFACTURE_ID) !== undefined) fail('COFFER_DEVICE_ALREADY_MANUFACTURED');
      return [devicePut(MKBK_ID, input.mkbk.use((b) => b.slice())), devicePut(MANUFACTURE_ID, json(record))];
    });
  }

  // ── MANUFACTURED → COMMISSIONED ───────────────────────────────────────────────────────────

  /**
   * Checks the operator's certificates, the mode and the firmware, and opens a two-person AKBK
   * installation. A new call abandons (and zeroises) any installation still open.
   */
  beginAkbkInstall(input: CommissionInput): Promise<AkbkInstall> {
    return asPromise(() => this.#beginAkbkInstall(input));
  }

  #beginAkbkInstall(input: CommissionInput): AkbkInstall {
    const identity = this.identity();
    this.#requireState('MANUFACTURED');
    const nowMs = this.#clock.nowMs();
    const m = this.#manufactureRecord();
    // The whole chain rule: the installed device half together with the operator's half.
    const chain = checkDeviceChain({
      manufacturerRoot: unb64(m.manufacturerRoot), deviceCertificate: unb64(m.deviceCertificate),
      operatorRoot: input.operatorRoot, operatorCertificate: input.operatorCertificate, atMs: nowMs, expectedSpki: identity.publicKeySpki(),
    });
    const { operatorCertificate, operatorRoot } = chain;
    assert(operatorCertificate !== undefined && operatorRoot !== undefined, 'the rule returns the operator half it checked');
    if (input.mode !== 'FIPS' && input.mode !== 'NON_FIPS') fail('COFFER_ATTRIBUTE_INVALID', { field: 'mode' });
    const firmware = input.firmware === undefined ? undefined : this.#checkFirmware(input.firmware);
    if (input.mode === 'FIPS' && firmware?.verified !== true) fail('COFFER_FIRMWARE_UNVERIFIED', { reason: firmware?.verified === false ? firmware.reason : 'NO_MANIFEST' });
    if (input.akbkKcv.length !== KCV_BYTES) fail('COFFER_CRYPTO_INPUT_LENGTH', { expected: KCV_BYTES });
    const n = input.componentCount;
    if (!Number.isInteger(n) || n < AKBK_COMPONENTS_MIN || n > AKBK_COMPONENTS_MAX) fail('COFFER_AKBK_COMPONENTS', { min: AKBK_COMPONENTS_MIN, max: AKBK_COMPONENTS_MAX });
    this.#install?.abort();
    const validated: ValidatedCommission = {
      operatorCertificate,
      operatorRoot,
      mode: input.mode,
      firmwareVersion: firmware?.verified === true && input.firmware !== undefined ? input.firmware.manifest.version : null,
      akbkKcv: input.akbkKcv.slice(),
      componentCount: n,
    };
    this.#install = new AkbkInstallSession(validated, (components) => this.#commit(validated, components));
    return this.#install;
  }

  /** Persists the commissioning; called by AkbkInstall.finish with the checked components. */
  async #commit(v: ValidatedCommission, components: readonly PendingComponent[]): Promise<SignedTranscript> {
    const identity = this.identity();
    const m = this.#manufactureRecord();
    const akbk = xorComponents(components.map((c) => c.secret));
    try {
      if (!constantTimeEqual(kcvAes(akbk), v.akbkKcv)) fail('COFFER_AKBK_KCV');
      const akbkId = hex(akbk.use(keyId));
      const nowMs = this.#clock.nowMs();
      const transcript: CeremonyTranscript = {
        format: TRANSCRIPT_FORMAT,
        formatVersion: 1,
        deviceSerial: identity.serial,
        deviceCertificateSha256: fingerprintSha256(parseCertificate(unb64(m.deviceCertificate))),
        operatorCertificateSha256: fingerprintSha256(v.operatorCertificate),
        custodians: components.map((c) => ({ name: c.custodian, componentKcv: hex(c.kcv) })),
        akbkKcv: hex(v.akbkKcv),
        akbkKeyId: akbkId,
        mode: v.mode,
        firmwareVersion: v.firmwareVersion,
        time: new Date(nowMs).toISOString(),
      };
      const signed = signTranscript(identity, transcript);
      const record: CommissionRecord = {
        v: RECORD_VERSION,
        operatorCertificate: b64(derOf(v.operatorCertificate)),
        operatorRoot: b64(derOf(v.operatorRoot)),
        mode: v.mode,
        akbkId,
        firmwareVersion: v.firmwareVersion,
        transcript: signed,
        atMs: nowMs,
      };
      await this.#write('device.commission', () => {
        if (this.#state.get(DEVICE_NS, COMMISSION_ID) !== undefined) fail('COFFER_DEVICE_ALREADY_COMMISSIONED');
        return [devicePut(AKBK_ID, akbk.use((b) => b.slice())), devicePut(COMMISSION_ID, json(record))];
      });
      return signed;
    } finally {
      akbk.destroy();
    }
  }

  // ── firmware and mode ─────────────────────────────────────────────────────────────────────

  /**
   * Checks the running firmware against the manufacturer's signing key. A FIPS-mode device calls
   * this at every start and must refuse to serve (COFFER_FIRMWARE_UNVERIFIED) when it fails.
   */
  checkFirmwareForMode(firmware: FirmwareEvidence | undefined): FirmwareCheck {
    const check: FirmwareCheck = firmware === undefined ? { verified: false, reason: 'BAD_SIGNATURE' } : this.#checkFirmware(firmware);
    if (this.mode() === 'FIPS' && !check.verified) fail('COFFER_FIRMWARE_UNVERIFIED', { reason: firmware === undefined ? 'NO_MANIFEST' : check.reason });
    return check;
  }

  #checkFirmware(firmware: FirmwareEvidence): FirmwareCheck {
    return verifyFirmware(firmware.manifest, this.firmwareSigningPublicKey(), firmware.actualDigest);
  }

  // ── accessors ─────────────────────────────────────────────────────────────────────────────

  /** A copy of the MKBK for the backup code. Internal use only: destroy it after use, never log it. */
  mkbk(): SecretBytes {
    return this.#secret(MKBK_ID, 'COFFER_DEVICE_NOT_MANUFACTURED');
  }

  /** A copy of the AKBK for the backup code. Internal use only: destroy it after use, never log it. */
  akbk(): SecretBytes {
    return this.#secret(AKBK_ID, 'COFFER_DEVICE_NOT_COMMISSIONED');
  }

  mkbkId(): Uint8Array {
    return new Uint8Array(Buffer.from(this.#manufactureRecord().mkbkId, 'hex'));
  }

  akbkId(): Uint8Array {
    return new Uint8Array(Buffer.from(this.#commissionRecord().akbkId, 'hex'));
  }

  mode(): Mode {
    return this.#commissionRecord().mode;
  }

  /** Version of the firmware whose manifest verified at commissioning, or null. */
  firmwareVersion(): string | null {
    return this.#commissionRecord().firmwareVersion;
  }

  firmwareSigningPublicKey(): Uint8Array {
    return unb64(this.#manufactureRecord().firmwareSigningPublicKey);
  }

  deviceCertificate(): string {
    return pemOf(parseCertificate(unb64(this.#manufactureRecord().deviceCertificate)));
  }

  /** The device's certificates: device and manufacturer root; operator ones once commissioned. */
  chain(): CertificateChain {
    const m = this.#manufactureRecord();
    const base = { deviceCertificate: entry(m.deviceCertificate), manufacturerRoot: entry(m.manufacturerRoot) };
    const raw = this.#state.get(DEVICE_NS, COMMISSION_ID);
    if (raw === undefined) return base;
    const c = parseRecord<CommissionRecord>(raw);
    return { ...base, operatorCertificate: entry(c.operatorCertificate), operatorRoot: entry(c.operatorRoot) };
  }

  /** The signed AKBK ceremony transcript. */
  transcript(): SignedTranscript {
    return this.#commissionRecord().transcript;
  }

  /** True if any certificate the device holds was made with development keys. */
  isDevelopment(): boolean {
    const c = this.chain();
    return [c.deviceCertificate, c.manufacturerRoot, c.operatorCertificate, c.operatorRoot].some(
      (e) => e !== undefined && (subjectField(parseCertificate(e.der), 'O') ?? '').includes(DEVELOPMENT_MARK),
    );
  }

  /**
   * Checks another device's certificates against this device's own roots (for restoring its
   * backups) with the device-chain rule (src/formats/device_chain.ts), at this device's time; a
   * named `serial` must be that device's. COFFER_CERT_INVALID with the rule's reason, or that
   * device's key, SPKI DER.
   */
  verifyPeerChain(peer: { readonly deviceCertificate: string | Uint8Array; readonly operatorCertificate: string | Uint8Array; readonly serial?: string }): Uint8Array {
    const own = this.chain();
    if (own.operatorRoot === undefined) return fail('COFFER_DEVICE_NOT_COMMISSIONED');
    return checkDeviceChain({
      manufacturerRoot: own.manufacturerRoot.der, deviceCertificate: peer.deviceCertificate,
      operatorRoot: own.operatorRoot.der, operatorCertificate: peer.operatorCertificate,
      atMs: this.#clock.nowMs(), ...(peer.serial === undefined ? {} : { expectedSerial: peer.serial }),
    }).spki;
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  /** Submits a local change of the device's own records, decided by `decide`. */
  #write(kind: ChangeKind, decide: () => RecordOp[]): Promise<void> {
    return this.#state.submit(() => ({ changes: [{ scope: 'local', kind, ops: decide() }], result: undefined }));
  }

  #requireState(wanted: 'MANUFACTURED'): void {
    const s = this.state();
    if (s === 'COMMISSIONED') fail('COFFER_DEVICE_ALREADY_COMMISSIONED');
    if (s !== wanted) fail('COFFER_DEVICE_NOT_MANUFACTURED');
  }

  #manufactureRecord(): ManufactureRecord {
    const raw = this.#state.get(DEVICE_NS, MANUFACTURE_ID);
    return raw === undefined ? fail('COFFER_DEVICE_NOT_MANUFACTURED') : parseRecord<ManufactureRecord>(raw);
  }

  #commissionRecord(): CommissionRecord {
    const raw = this.#state.get(DEVICE_NS, COMMISSION_ID);
    return raw === undefined ? fail('COFFER_DEVICE_NOT_COMMISSIONED') : parseRecord<CommissionRecord>(raw);
  }

  #secret(id: string, missing: 'COFFER_DEVICE_NOT_MANUFACTURED' | 'COFFER_DEVICE_NOT_COMMISSIONED'): SecretBytes {
    const raw = this.#state.get(DEVICE_NS, id);
    if (raw === undefined) return fail(missing);
    try {
      return SecretBytes.copyOf(raw);
    } finally {
      raw.fill(0);
    }
  }
}

// ── the two-person AKBK installation ──────────────────────────────────────────────────────────

interface PendingComponent {
  readonly custodian: string;
  readonly custodianKey: string;
  readonly secret: SecretBytes;
  readonly kcv: Uint8Array;
}

/** One open AKBK installation (Provisioning.beginAkbkInstall). */
export interface AkbkInstall {
  /** Components the installation needs. */
  readonly expected: number;
  /** Components accepted so far. */
  readonly entered: number;
  /** False once finished or abandoned. */
  readonly active: boolean;
  enterComponent(custodianName: string, component: Uint8Array, componentKcv: Uint8Array): void;
  /**
   * Combines the components. If their XOR does not match the AKBK KCV the installation is
   * abandoned (COFFER_AKBK_KCV) and nothing is persisted; otherwise the AKBK is persisted and the
   * signed transcript returned. Either way every component is zeroised.
   */
  finish(): Promise<SignedTranscript>;
  /** Abandons the installation and zeroises every pending component. Idempotent. */
  abort(): void;
}

/** Components are held in memory only and zeroised on finish or abort. */
class AkbkInstallSession implements AkbkInstall {
  readonly #v: ValidatedCommission;
  readonly #commit: (components: readonly PendingComponent[]) => Promise<SignedTranscript>;
  readonly #pending: PendingComponent[] = [];
  #active = true;

  constructor(v: ValidatedCommission, commit: (components: readonly PendingComponent[]) => Promise<SignedTranscript>) {
    this.#v = v;
    this.#commit = commit;
  }

  get expected(): number {
    return this.#v.componentCount;
  }

  get entered(): number {
    return this.#pending.length;
  }

  get active(): boolean {
    return this.#active;
  }

  enterComponent(custodianName: string, component: Uint8Array, componentKcv: Uint8Array): void {
    if (!this.#active) fail('COFFER_AKBK_INSTALL_INACTIVE');
    const custodian = custodianName.trim().normalize('NFC');
    const custodianKey = custodian.toLowerCase();
    if (custodian.length === 0 || custodian.length > CUSTODIAN_NAME_CHARS_MAX || /\p{Cc}/u.test(custodian)) fail('COFFER_AKBK_CUSTODIAN', { reason: 'name' });
    if (this.#pending.some((p) => p.custodianKey === custodianKey)) fail('COFFER_AKBK_CUSTODIAN', { reason: 'duplicate' });
    if (this.#pending.length >= this.#v.componentCount) fail('COFFER_AKBK_COMPONENTS', { expected: this.#v.componentCount });
    if (component.length !== BACKUP_KEY_BYTES) fail('COFFER_CRYPTO_KEY_SIZE', { expected: BACKUP_KEY_BYTES });
    const secret = SecretBytes.copyOf(component);
    if (componentKcv.length !== KCV_BYTES || !constantTimeEqual(kcvAes(secret), componentKcv)) {
      secret.destroy();
      fail('COFFER_AKBK_COMPONENT_KCV', { custodian: this.#pending.length + 1 });
    }
    this.#pending.push({ custodian, custodianKey, secret, kcv: componentKcv.slice() });
  }

  async finish(): Promise<SignedTranscript> {
    if (!this.#active) fail('COFFER_AKBK_INSTALL_INACTIVE');
    if (this.#pending.length !== this.#v.componentCount) fail('COFFER_AKBK_COMPONENTS', { expected: this.#v.componentCount, entered: this.#pending.length });
    this.#active = false; // no component may be entered while the commissioning is decided
    try {
      return await this.#commit(this.#pending);
    } finally {
      this.abort();
    }
  }

  abort(): void {
    for (const p of this.#pending) p.secret.destroy();
    this.#pending.length = 0;
    this.#active = false;
  }

  toJSON(): { expected: number; entered: number; active: boolean } {
    return { expected: this.expected, entered: this.entered, active: this.active };
  }
}

// ── transcripts ───────────────────────────────────────────────────────────────────────────────

function signTranscript(identity: DeviceIdentity, t: CeremonyTranscript): SignedTranscript {
  const text = JSON.stringify(t);
  const signature = identity.sign(transcriptSignedBytes(text));
  return { transcript: text, signature: b64(signature), algorithm: TRANSCRIPT_SIGNATURE_ALGORITHM };
}

function transcriptSignedBytes(text: string): Uint8Array {
  return Buffer.concat([Buffer.from(TRANSCRIPT_DOMAIN, 'utf8'), Buffer.from(text, 'utf8')]);
}

/**
 * Verifies a ceremony transcript with the device certificate (PEM or DER) and returns its content.
 * Throws COFFER_CRYPTO_SIGNATURE_INVALID if any byte of the transcript or signature changed, and
 * COFFER_CERT_INVALID if the transcript names another device. Whether the certificate itself is
 * genuine is a separate check (the device-chain rule, src/formats/device_chain.ts).
 */
export function verifyCeremonyTranscript(signed: SignedTranscript, deviceCertificate: string | Uint8Array): CeremonyTranscript {
  const cert = parseCertificate(deviceCertificate);
  if (signed.algorithm !== TRANSCRIPT_SIGNATURE_ALGORITHM || typeof signed.transcript !== 'string' || typeof signed.signature !== 'string') {
    fail('COFFER_CRYPTO_SIGNATURE_INVALID');
  }
  if (signed.transcript.length > MANIFEST_JSON_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'MANIFEST_JSON_BYTES_MAX' });
  const signature = Buffer.from(signed.signature, 'base64');
  const canonical = signature.toString('base64') === signed.signature;
  if (!canonical || !verifyIdentitySignature(spkiOf(cert), transcriptSignedBytes(signed.transcript), signature)) fail('COFFER_CRYPTO_SIGNATURE_INVALID');
  let t: CeremonyTranscript;
  try {
    t = JSON.parse(signed.transcript) as CeremonyTranscript;
  } catch (e) {
    return fail('COFFER_FORMAT_MALFORMED', { what: 'ceremony-transcript' }, e);
  }
  if (t.format !== TRANSCRIPT_FORMAT || t.formatVersion !== 1) fail('COFFER_FORMAT_UNKNOWN_VERSION', { what: 'ceremony-transcript' });
  if (t.deviceSerial !== deviceSerialOf(spkiOf(cert)) || t.deviceCertificateSha256 !== fingerprintSha256(cert)) {
    fail('COFFER_CERT_INVALID', { reason: 'transcript-for-another-device' });
  }
  return t;
}

// ── helpers ───────────────────────────────────────────────────────────────────────────────────

/** A synchronous step as a promise: the provisioning steps stay awaitable for their callers, while
 * their checks (the device-chain rule) are synchronous. A throw becomes a rejection. */
function asPromise<T>(step: () => T): Promise<T> {
  return new Promise((resolve) => resolve(step()));
}

function spkiFromInput(input: string | Uint8Array): Uint8Array {
  if (input.length > CERTIFICATE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'CERTIFICATE_BYTES_MAX' });
  let spki: Uint8Array;
  try {
    spki = typeof input === 'string' ? new Uint8Array(createPublicKey(input).export({ format: 'der', type: 'spki' })) : input.slice();
  } catch (e) {
    return fail('COFFER_CERT_INVALID', { reason: 'unparsable-public-key' }, e);
  }
  p384PublicKey(spki);
  return spki;
}

function entry(derB64: string): CertificateEntry {
  const der = unb64(derB64);
  return { der, pem: pemOf(parseCertificate(der)) };
}

function json(v: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

function parseRecord<T extends { readonly v: number }>(raw: Uint8Array): T {
  const r = JSON.parse(Buffer.from(raw).toString('utf8')) as T;
  if (r.v !== RECORD_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { what: 'provisioning-record' });
  return r;
}

function b64(b: Uint8Array): string {
  return Buffer.from(b).toString('base64');
}

function unb64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64'));
}

function devicePut(id: string, value: Uint8Array): RecordOp {
  return { op: 'put', ns: DEVICE_NS, id, value };
}
