// Provisioning state machine (src/hsm/identity/provisioning.ts): NEW → IDENTIFIED → MANUFACTURED →
// COMMISSIONED, the two-person AKBK install, the signed transcript, FIPS gating on firmware, and
// the rule that a refused step changes nothing and no error carries key bytes.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { kcvAes } from '../../../src/crypto/kcv.js';
import type { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { ManualClock } from '../../../src/hsm/ports.js';
import { MemoryRecordStore } from '../../../src/hsm/store/store_port.js';
import { DeviceState } from '../../../src/hsm/state/device_state.js';
import { DEVICE_NS } from '../../../src/hsm/identity/identity.js';
import { createManufacturer, createOperator, generateAkbkComponents, issueDeviceCertificate, issueOperatorCertificate, signFirmware, type AkbkComponents, type Manufacturer, type Operator } from '../../../src/factory/ceremony.js';
import { DEVELOPMENT_MARK } from '../../../src/formats/x509.js';
import { keyId, xorComponents } from '../../../src/crypto/backup_keys.js';
import { computeFirmwareDigest } from '../../../src/hsm/identity/firmware.js';
import { Provisioning, verifyCeremonyTranscript, type CommissionInput, type FirmwareEvidence, type SignedTranscript } from '../../../src/hsm/identity/provisioning.js';
import { ECDSA_SHA384, parseCertificate, pemOf, x509 } from '../../../src/formats/x509.js';
import { checkIssuedBy } from '../../../src/formats/device_chain.js';

const clock = new ManualClock();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Every secret the scenarios create, as hex, and every error they provoke. */
const secretsHex: string[] = [];
const errorsSeen: unknown[] = [];
const remember = (s: SecretBytes): void => s.use((b) => void secretsHex.push(hex(b)));

/** Runs `fn`, expecting a CofferError with `code`; records it for the no-secrets check. */
async function refuses(fn: () => unknown, code: ErrorCode): Promise<void> {
  try {
    await fn();
  } catch (e) {
    errorsSeen.push(e);
    assert.ok(isCofferError(e, code), `expected ${code}, got ${inspect(e)}`);
    return;
  }
  assert.fail(`expected ${code}, nothing thrown`);
}

const codeDir = mkdtempSync(join(tmpdir(), 'coffer-code-'));
mkdirSync(join(codeDir, 'hsm'));
writeFileSync(join(codeDir, 'main.js'), 'export const main = 1;\n');
writeFileSync(join(codeDir, 'hsm', 'device.js'), 'export const device = 2;\n');

interface World {
  readonly m: Manufacturer;
  readonly o: Operator;
  readonly akbk: AkbkComponents;
}

async function world(): Promise<World> {
  const m = await createManufacturer({ development: true, clock });
  const o = await createOperator({ development: true, clock });
  const akbk = generateAkbkComponents(3);
  remember(m.mkbk);
  akbk.components.forEach(remember);
  return { m, o, akbk };
}

/** A device taken to MANUFACTURED by `m`, with its operator certificate from `o` ready. */
async function manufactured(w: World, store = new MemoryRecordStore()): Promise<{ p: Provisioning; store: MemoryRecordStore; operatorCert: string }> {
  const p = new Provisioning(new DeviceState(store), clock);
  const id = await p.generateIdentity();
  const deviceCert = await issueDeviceCertificate(w.m, id.csrPem(), clock);
  await p.manufacture({
    deviceCertificate: pemOf(deviceCert),
    manufacturerRoot: pemOf(w.m.rootCertificate),
    firmwareSigningPublicKey: w.m.firmwareSigningPublicKeySpki,
    mkbk: w.m.mkbk,
    mkbkKcv: kcvAes(w.m.mkbk),
  });
  const operatorCert = pemOf(await issueOperatorCertificate(w.o, pemOf(deviceCert), { manufacturerRoot: pemOf(w.m.rootCertificate), clock }));
  return { p, store, operatorCert };
}

/** A certificate from the genuine root that names this device's serial but certifies another key. */
async function forgedSerialCert(m: Manufacturer, serial: string, spki: Uint8Array): Promise<string> {
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [serial] }, { O: [m.name] }],
    issuer: m.rootCertificate.subjectName,
    notBefore: new Date(clock.nowMs() - 60_000),
    notAfter: new Date(clock.nowMs() + 86_400_000),
    publicKey: new x509.PublicKey(spki),
    signingKey: m.rootPrivateKey,
    signingAlgorithm: ECDSA_SHA384,
  });
  return pemOf(cert);
}

function firmware(w: World): FirmwareEvidence {
  return { manifest: signFirmware(w.m, codeDir, { product: 'coffer', version: '9.9.9' }), actualDigest: computeFirmwareDigest(codeDir) };
}

function commissionInput(w: World, operatorCert: string, akbk: AkbkComponents, extra: Partial<CommissionInput> = {}): CommissionInput {
  return {
    operatorCertificate: operatorCert,
    operatorRoot: pemOf(w.o.rootCertificate),
    mode: 'NON_FIPS',
    akbkKcv: akbk.akbkKcv,
    componentCount: akbk.components.length,
    ...extra,
  };
}

function enterAll(install: { enterComponent(n: string, c: Uint8Array, k: Uint8Array): void }, akbk: AkbkComponents): void {
  akbk.components.forEach((c, i) => c.use((b) => install.enterComponent(`custodian ${i + 1}`, b, akbk.componentKcvs[i] ?? new Uint8Array())));
}

/** Snapshot of every record of the device namespace, to prove a refusal changed nothing. */
function snapshot(store: MemoryRecordStore): string {
  return JSON.stringify([...store.list(DEVICE_NS)].map(([k, v]) => [k, hex(v)]));
}

void test('happy path: factory → identity → device cert → manufacture → operator → commission (2 and 3 components)', async () => {
  const w = await world();
  for (const n of [2, 3]) {
    const akbk = n === 3 ? w.akbk : generateAkbkComponents(2);
    akbk.components.forEach(remember);
    const store = new MemoryRecordStore();
    assert.equal(new Provisioning(new DeviceState(store), clock).state(), 'NEW');
    const { p, operatorCert } = await manufactured(w, store);
    assert.equal(p.state(), 'MANUFACTURED');
    assert.ok(p.mkbk().equals(w.m.mkbk));
    assert.deepEqual(p.mkbkId(), w.m.mkbk.use(keyId));

    const install = await p.beginAkbkInstall(commissionInput(w, operatorCert, akbk, { mode: 'FIPS', firmware: firmware(w) }));
    enterAll(install, akbk);
    assert.equal(install.entered, n);
    const signed = await install.finish();
    assert.equal(install.active, false);
    assert.equal(p.state(), 'COMMISSIONED');
    assert.equal(p.mode(), 'FIPS');
    assert.equal(p.firmwareVersion(), '9.9.9');
    const akbkSecret = xorComponents(akbk.components);
    assert.ok(p.akbk().equals(akbkSecret));
    assert.deepEqual(p.akbkId(), akbk.akbkKeyId);

    const t = verifyCeremonyTranscript(signed, p.deviceCertificate());
    assert.equal(t.deviceSerial, p.identity().serial);
    assert.deepEqual(t.custodians.map((c) => c.name), Array.from({ length: n }, (_, i) => `custodian ${i + 1}`));
    assert.deepEqual(t.custodians.map((c) => c.componentKcv), akbk.componentKcvs.map(hex));
    assert.equal(t.akbkKcv, hex(akbk.akbkKcv));
    assert.equal(t.akbkKeyId, hex(akbk.akbkKeyId));
    assert.equal(t.mode, 'FIPS');
    assert.equal(t.time, new Date(clock.nowMs()).toISOString());
    assert.deepEqual(p.transcript(), signed);

    // The chain is complete and persisted: a fresh Provisioning over the same store sees it all.
    const again = new Provisioning(new DeviceState(store), clock);
    assert.equal(again.state(), 'COMMISSIONED');
    const chain = again.chain();
    assert.ok(chain.operatorCertificate !== undefined && chain.operatorRoot !== undefined);
    checkIssuedBy(parseCertificate(chain.deviceCertificate.der), parseCertificate(chain.manufacturerRoot.pem), clock.nowMs());
    checkIssuedBy(parseCertificate(chain.operatorCertificate.der), parseCertificate(chain.operatorRoot.pem), clock.nowMs());
    assert.ok(again.akbk().equals(akbkSecret));
    akbkSecret.destroy();
  }
});

void test('wrong component KCV is refused and does not count; same custodian twice is refused', async () => {
  const w = await world();
  const { p, operatorCert } = await manufactured(w);
  const install = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk));
  const [c1, c2, c3] = w.akbk.components;
  const [k1, k2, k3] = w.akbk.componentKcvs;
  assert.ok(c1 && c2 && c3 && k1 && k2 && k3);
  await refuses(() => c1.use((b) => install.enterComponent('alice', b, k2)), 'COFFER_AKBK_COMPONENT_KCV');
  await refuses(() => c1.use((b) => install.enterComponent('alice', b.subarray(1), k1)), 'COFFER_CRYPTO_KEY_SIZE');
  assert.equal(install.entered, 0);
  c1.use((b) => install.enterComponent('alice', b, k1));
  await refuses(() => c2.use((b) => install.enterComponent('Alice ', b, k2)), 'COFFER_AKBK_CUSTODIAN');
  await refuses(() => c2.use((b) => install.enterComponent('  ', b, k2)), 'COFFER_AKBK_CUSTODIAN');
  assert.equal(install.entered, 1);
  await refuses(() => install.finish(), 'COFFER_AKBK_COMPONENTS');
  c2.use((b) => install.enterComponent('bob', b, k2));
  c3.use((b) => install.enterComponent('carol', b, k3));
  await refuses(() => c3.use((b) => install.enterComponent('dave', b, k3)), 'COFFER_AKBK_COMPONENTS');
  await install.finish();
  assert.equal(p.state(), 'COMMISSIONED');
  await refuses(() => install.finish(), 'COFFER_AKBK_INSTALL_INACTIVE');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk)), 'COFFER_DEVICE_ALREADY_COMMISSIONED');
});

void test('components that do not combine to the AKBK KCV: refused, install abandoned, state unchanged', async () => {
  const w = await world();
  const { p, store, operatorCert } = await manufactured(w);
  const before = snapshot(store);
  const stranger = generateAkbkComponents(2);
  stranger.components.forEach(remember);
  // Each component matches its own KCV, but together they are not the AKBK whose KCV was announced.
  const install = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { componentCount: 2 }));
  enterAll(install, stranger);
  await refuses(() => install.finish(), 'COFFER_AKBK_KCV');
  assert.equal(install.active, false);
  await refuses(() => stranger.components[0]?.use((b) => install.enterComponent('x', b, stranger.componentKcvs[0] ?? new Uint8Array())), 'COFFER_AKBK_INSTALL_INACTIVE');
  assert.equal(p.state(), 'MANUFACTURED');
  assert.equal(snapshot(store), before);
  await refuses(() => p.akbk(), 'COFFER_DEVICE_NOT_COMMISSIONED');
  await refuses(() => p.mode(), 'COFFER_DEVICE_NOT_COMMISSIONED');
});

void test('fewer than two components, bad KCV length, unknown mode: refused at begin', async () => {
  const w = await world();
  const { p, store, operatorCert } = await manufactured(w);
  const before = snapshot(store);
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { componentCount: 1 })), 'COFFER_AKBK_COMPONENTS');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { componentCount: 0 })), 'COFFER_AKBK_COMPONENTS');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { componentCount: 17 })), 'COFFER_AKBK_COMPONENTS');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { akbkKcv: new Uint8Array(4) })), 'COFFER_CRYPTO_INPUT_LENGTH');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { mode: 'fips' as 'FIPS' })), 'COFFER_ATTRIBUTE_INVALID');
  assert.equal(snapshot(store), before);
  // A newer install abandons an older one.
  const first = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk));
  const second = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk));
  assert.equal(first.active, false);
  assert.equal(second.active, true);
});

void test('manufacture refuses a device certificate from another manufacturer or for another key', async () => {
  const w = await world();
  const other = await createManufacturer({ development: true, clock });
  remember(other.mkbk);
  const store = new MemoryRecordStore();
  const p = new Provisioning(new DeviceState(store), clock);
  await refuses(() => p.manufacture({ deviceCertificate: '', manufacturerRoot: '', firmwareSigningPublicKey: '', mkbk: w.m.mkbk }), 'COFFER_DEVICE_NO_IDENTITY');
  const id = await p.generateIdentity();
  await refuses(() => p.generateIdentity(), 'COFFER_DEVICE_IDENTITY_EXISTS');
  const stranger = await new Provisioning(new DeviceState(new MemoryRecordStore()), clock).generateIdentity();
  const good = {
    deviceCertificate: pemOf(await issueDeviceCertificate(w.m, id.csrPem(), clock)),
    manufacturerRoot: pemOf(w.m.rootCertificate),
    firmwareSigningPublicKey: w.m.firmwareSigningPublicKeySpki,
    mkbk: w.m.mkbk,
  };
  const before = snapshot(store);
  const bad: Array<[Partial<typeof good> & { mkbkKcv?: Uint8Array }, ErrorCode]> = [
    [{ deviceCertificate: pemOf(await issueDeviceCertificate(other, id.csrPem(), clock)) }, 'COFFER_CERT_INVALID'],
    [{ manufacturerRoot: pemOf(other.rootCertificate) }, 'COFFER_CERT_INVALID'],
    [{ deviceCertificate: pemOf(await issueDeviceCertificate(w.m, stranger.csrPem(), clock)) }, 'COFFER_CERT_INVALID'],
    [{ deviceCertificate: await forgedSerialCert(w.m, id.serial, stranger.publicKeySpki()) }, 'COFFER_CERT_INVALID'],
    [{ manufacturerRoot: good.deviceCertificate }, 'COFFER_CERT_INVALID'],
    [{ deviceCertificate: 'garbage' }, 'COFFER_CERT_INVALID'],
    [{ firmwareSigningPublicKey: new Uint8Array(10) }, 'COFFER_CERT_INVALID'],
    [{ mkbk: other.mkbk, mkbkKcv: kcvAes(w.m.mkbk) }, 'COFFER_CRYPTO_KCV_MISMATCH'],
  ];
  for (const [change, code] of bad) await refuses(() => p.manufacture({ ...good, ...change }), code);
  assert.equal(p.state(), 'IDENTIFIED');
  assert.equal(snapshot(store), before);
  await refuses(() => p.mkbk(), 'COFFER_DEVICE_NOT_MANUFACTURED');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, '', w.akbk)), 'COFFER_DEVICE_NOT_MANUFACTURED');
  await p.manufacture(good);
  await refuses(() => p.manufacture(good), 'COFFER_DEVICE_ALREADY_MANUFACTURED');
});

void test('commissioning refuses an operator certificate for another device or from another operator', async () => {
  const w = await world();
  const { p, store, operatorCert } = await manufactured(w);
  const { operatorCert: otherDevicesCert } = await manufactured(w);
  const otherOperator = await createOperator({ development: true, clock });
  const before = snapshot(store);
  await refuses(() => p.beginAkbkInstall(commissionInput(w, otherDevicesCert, w.akbk)), 'COFFER_CERT_INVALID');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { operatorRoot: pemOf(otherOperator.rootCertificate) })), 'COFFER_CERT_INVALID');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { operatorRoot: operatorCert })), 'COFFER_CERT_INVALID');
  const chain = p.chain();
  const sneaky = pemOf(await issueOperatorCertificate(otherOperator, chain.deviceCertificate.pem, { clock }));
  await refuses(() => p.beginAkbkInstall(commissionInput(w, sneaky, w.akbk)), 'COFFER_CERT_INVALID');
  assert.equal(p.state(), 'MANUFACTURED');
  assert.equal(snapshot(store), before);
});

void test('FIPS needs a verifying firmware manifest; tampered code refuses FIPS, NON_FIPS still allowed', async (t) => {
  const w = await world();
  const tampered = mkdtempSync(join(tmpdir(), 'coffer-code-'));
  t.after(() => rmSync(tampered, { recursive: true }));
  mkdirSync(join(tampered, 'hsm'));
  writeFileSync(join(tampered, 'main.js'), 'export const main = 1;\n');
  writeFileSync(join(tampered, 'hsm', 'device.js'), 'export const device = 3;\n'); // one byte changed
  const manifest = signFirmware(w.m, codeDir, { product: 'coffer', version: '9.9.9' });
  const tamperedEvidence = { manifest, actualDigest: computeFirmwareDigest(tampered) };

  const { p, store, operatorCert } = await manufactured(w);
  const before = snapshot(store);
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { mode: 'FIPS', firmware: tamperedEvidence })), 'COFFER_FIRMWARE_UNVERIFIED');
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { mode: 'FIPS' })), 'COFFER_FIRMWARE_UNVERIFIED');
  // A manifest signed by another manufacturer's firmware key does not count either.
  const other = await createManufacturer({ development: true, clock });
  remember(other.mkbk);
  const foreign = { manifest: signFirmware(other, codeDir, { product: 'coffer', version: '9.9.9' }), actualDigest: computeFirmwareDigest(codeDir) };
  await refuses(() => p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { mode: 'FIPS', firmware: foreign })), 'COFFER_FIRMWARE_UNVERIFIED');
  assert.equal(snapshot(store), before);

  const install = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk, { mode: 'NON_FIPS', firmware: tamperedEvidence }));
  enterAll(install, w.akbk);
  await install.finish();
  assert.equal(p.mode(), 'NON_FIPS');
  assert.equal(p.firmwareVersion(), null);
  assert.deepEqual(p.checkFirmwareForMode(tamperedEvidence), { verified: false, reason: 'DIGEST_MISMATCH' });

  // A FIPS device whose code is later tampered with refuses to start in FIPS mode.
  const fips = await manufactured(w);
  const fi = await fips.p.beginAkbkInstall(commissionInput(w, fips.operatorCert, w.akbk, { mode: 'FIPS', firmware: firmware(w) }));
  enterAll(fi, w.akbk);
  await fi.finish();
  assert.deepEqual(fips.p.checkFirmwareForMode(firmware(w)), { verified: true });
  await refuses(() => fips.p.checkFirmwareForMode(tamperedEvidence), 'COFFER_FIRMWARE_UNVERIFIED');
  await refuses(() => fips.p.checkFirmwareForMode(undefined), 'COFFER_FIRMWARE_UNVERIFIED');
});

void test('the transcript fails to verify after any change, and with another device certificate', async () => {
  const w = await world();
  const { p, operatorCert } = await manufactured(w);
  const { p: other } = await manufactured(w);
  const install = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk));
  enterAll(install, w.akbk);
  const signed = await install.finish();
  const cert = p.deviceCertificate();
  verifyCeremonyTranscript(signed, cert);
  const mutants: SignedTranscript[] = [];
  for (let i = 0; i < signed.transcript.length; i++) {
    const ch = signed.transcript.charCodeAt(i);
    mutants.push({ ...signed, transcript: signed.transcript.slice(0, i) + String.fromCharCode(ch ^ 1) + signed.transcript.slice(i + 1) });
  }
  mutants.push({ ...signed, transcript: signed.transcript + ' ' }, { ...signed, transcript: signed.transcript.slice(0, -1) });
  const sig = Buffer.from(signed.signature, 'base64');
  for (let i = 0; i < sig.length; i++) {
    const s = Buffer.from(sig);
    s[i] = (s[i] ?? 0) ^ 0x80;
    mutants.push({ ...signed, signature: s.toString('base64') });
  }
  mutants.push({ ...signed, signature: sig.subarray(1).toString('base64') }, { ...signed, algorithm: 'ECDSA-P256-SHA256' as 'ECDSA-P384-SHA384' });
  for (const m of mutants) assert.throws(() => verifyCeremonyTranscript(m, cert), (e) => isCofferError(e, 'COFFER_CRYPTO_SIGNATURE_INVALID'));
  assert.ok(mutants.length > 500);
  assert.throws(() => verifyCeremonyTranscript(signed, other.deviceCertificate()), (e) => isCofferError(e, 'COFFER_CRYPTO_SIGNATURE_INVALID'));
});

void test('development keys are marked in every certificate subject of the chain', async () => {
  const w = await world();
  const { p, operatorCert } = await manufactured(w);
  const install = await p.beginAkbkInstall(commissionInput(w, operatorCert, w.akbk));
  enterAll(install, w.akbk);
  await install.finish();
  const c = p.chain();
  for (const e of [c.deviceCertificate, c.manufacturerRoot, c.operatorCertificate, c.operatorRoot]) {
    assert.ok(e !== undefined);
    assert.ok(parseCertificate(e.pem).subject.includes(DEVELOPMENT_MARK), parseCertificate(e.pem).subject);
  }
  assert.equal(p.isDevelopment(), true);
});

void test('a peer chain verifies against this device’s roots; a foreign operator chain does not', async () => {
  const w = await world();
  const commission = async (o: Operator): Promise<Provisioning> => {
    const { p } = await manufactured(w);
    const opCert = pemOf(await issueOperatorCertificate(o, p.deviceCertificate(), { clock }));
    const install = await p.beginAkbkInstall({ ...commissionInput(w, opCert, w.akbk), operatorRoot: pemOf(o.rootCertificate) });
    enterAll(install, w.akbk);
    await install.finish();
    return p;
  };
  const a = await commission(w.o);
  const b = await commission(w.o);
  const foreign = await commission(await createOperator({ development: true, clock }));
  const peer = (p: Provisioning): { deviceCertificate: string; operatorCertificate: string } => ({
    deviceCertificate: p.chain().deviceCertificate.pem,
    operatorCertificate: p.chain().operatorCertificate?.pem ?? '',
  });
  assert.deepEqual(a.verifyPeerChain(peer(b)), b.identity().publicKeySpki());
  await refuses(() => a.verifyPeerChain(peer(foreign)), 'COFFER_CERT_INVALID');
  await refuses(() => a.verifyPeerChain({ deviceCertificate: peer(b).deviceCertificate, operatorCertificate: peer(a).operatorCertificate }), 'COFFER_CERT_INVALID');
  // The one chain rule, with its reasons: a named peer must be that peer.
  assert.deepEqual(a.verifyPeerChain({ ...peer(b), serial: b.identity().serial }), b.identity().publicKeySpki());
  const reasonOf = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (e) {
      errorsSeen.push(e);
      return isCofferError(e, 'COFFER_CERT_INVALID') ? e.detail['reason'] : e;
    }
    return undefined;
  };
  assert.equal(reasonOf(() => a.verifyPeerChain({ ...peer(b), serial: a.identity().serial })), 'unexpected-serial');
  assert.equal(reasonOf(() => a.verifyPeerChain(peer(foreign))), 'issuer-mismatch');
  assert.equal(reasonOf(() => a.verifyPeerChain({ deviceCertificate: peer(b).deviceCertificate, operatorCertificate: peer(a).operatorCertificate })), 'chain-key-mismatch');
});

void test('no error raised in these scenarios carries key bytes', () => {
  assert.ok(errorsSeen.length >= 30, `only ${errorsSeen.length} errors collected`);
  assert.ok(secretsHex.length >= 10);
  for (const e of errorsSeen) {
    const texts = [String((e as Error).message), JSON.stringify(e), inspect(e, { depth: 6 })];
    for (const text of texts) {
      for (const s of secretsHex) {
        assert.ok(!text.toLowerCase().includes(s), 'an error carries key bytes (hex)');
        assert.ok(!text.includes(Buffer.from(s, 'hex').toString('base64').slice(0, 24)), 'an error carries key bytes (base64)');
      }
    }
  }
});

test.after(() => rmSync(codeDir, { recursive: true }));
