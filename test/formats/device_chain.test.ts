// The device-certificate chain rule (src/formats/device_chain.ts): a genuine chain passes and says
// who the device is; then one test per refusal, each on a chain that is genuine but for the one
// thing under test, checking the COFFER_CERT_INVALID's certificate role and reason; and the
// collecting form that verifyBackup uses.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import {
  CHAIN_REFUSALS, certifiedSerial, checkDeviceChain, deviceChainFailures, deviceSerialOf, type ChainRefusal, type ChainRole, type DeviceChainInput,
} from '../../src/formats/device_chain.js';
import { CERTIFICATE_BYTES_MAX } from '../../src/formats/limits.js';
import { ECDSA_SHA384, EC_P384_SHA384, derOf, randomSerialHex, spkiOf, x509, type JsonName } from '../../src/formats/x509.js';
import { createManufacturer, createOperator, issueDeviceCertificate, issueOperatorCertificate, type Manufacturer, type Operator } from '../../src/factory/ceremony.js';
import { DeviceIdentity } from '../../src/hsm/identity/identity.js';
import { ManualClock } from '../../src/hsm/ports.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { DeviceState } from '../../src/hsm/state/device_state.js';

const DAY_MS = 86_400_000;
const YEAR_MS = 365 * DAY_MS;
/** The authorities are made at T0, the device certificates a month later (so "not yet valid" has room). */
const T0 = Date.UTC(2026, 0, 1);
const T1 = T0 + 30 * DAY_MS;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface World {
  readonly m: Manufacturer;
  readonly o: Operator;
  readonly identity: DeviceIdentity;
  readonly other: DeviceIdentity;
  readonly device: x509.X509Certificate;
  readonly operator: x509.X509Certificate;
  /** A good input, validity judged a day after the device certificates were made. */
  readonly good: DeviceChainInput;
}

let w: World;
before(async () => {
  const clock = new ManualClock(T0);
  const m = await createManufacturer({ development: true, clock });
  const o = await createOperator({ development: true, clock });
  clock.advance(T1 - T0);
  const identity = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const other = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const device = await issueDeviceCertificate(m, identity.csrPem(), clock);
  const operator = await issueOperatorCertificate(o, derOf(device), { clock });
  w = {
    m, o, identity, other, device, operator,
    good: { manufacturerRoot: m.rootCertificate, deviceCertificate: device, operatorRoot: o.rootCertificate, operatorCertificate: operator, atMs: T1 + DAY_MS },
  };
});

/** The rule refuses `input` with exactly this role and reason. */
function refuses(input: DeviceChainInput, certificate: ChainRole, reason: ChainRefusal): void {
  assert.throws(() => checkDeviceChain(input), (e) => {
    assert.ok(isCofferError(e, 'COFFER_CERT_INVALID'), String(e));
    assert.deepEqual({ ...e.detail }, { reason, certificate });
    return true;
  });
}

/** A certificate made to order: `key` certified under `issuer` (name) and signed by `signer`. */
async function made(opts: {
  readonly subject: JsonName | string;
  readonly issuer: string;
  readonly publicKey: webcrypto.CryptoKey;
  readonly signer: webcrypto.CryptoKey;
  readonly extensions?: x509.Extension[];
  readonly notBefore?: number;
  readonly notAfter?: number;
  readonly algorithm?: { readonly name: string; readonly hash: string };
}): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: opts.subject,
    issuer: opts.issuer,
    notBefore: new Date(opts.notBefore ?? T0 - DAY_MS),
    notAfter: new Date(opts.notAfter ?? T0 + 10 * YEAR_MS),
    publicKey: opts.publicKey,
    signingKey: opts.signer,
    signingAlgorithm: opts.algorithm ?? ECDSA_SHA384,
    extensions: opts.extensions ?? [],
  });
}

const caExtensions = async (key: webcrypto.CryptoKey, usages = x509.KeyUsageFlags.keyCertSign): Promise<x509.Extension[]> => [
  new x509.BasicConstraintsExtension(true, 0, true),
  new x509.KeyUsagesExtension(usages, true),
  await x509.SubjectKeyIdentifierExtension.create(key),
];

const keyPair = (params: typeof EC_P384_SHA384 | typeof EC_P256 = EC_P384_SHA384): Promise<webcrypto.CryptoKeyPair> =>
  webcrypto.subtle.generateKey(params, true, ['sign', 'verify']);

/** The device's own public key as a CryptoKey (to certify it under made-up names and issuers). */
async function deviceKey(identity: DeviceIdentity): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('spki', identity.publicKeySpki(), EC_P384_SHA384, true, ['verify']);
}

/** The last byte of the DER is the last byte of the signature: flipping it breaks only the signature. */
function flipSignature(cert: x509.X509Certificate): Uint8Array {
  const der = derOf(cert).slice();
  der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
  return der;
}

// ── a chain that holds ──────────────────────────────────────────────────────────────────────

test('a genuine chain passes and names the device by its key', () => {
  const chain = checkDeviceChain(w.good);
  assert.equal(chain.serial, w.identity.serial);
  assert.equal(chain.serial, deviceSerialOf(w.identity.publicKeySpki()));
  assert.match(chain.serial, /^CFR-[0-9A-F]{16}$/);
  assert.deepEqual(chain.spki, w.identity.publicKeySpki());
  assert.equal(chain.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
  assert.deepEqual(derOf(chain.deviceCertificate), derOf(w.device));
  assert.ok(chain.operatorCertificate !== undefined && chain.operatorRoot !== undefined);
  // PEM, DER or parsed; the device half alone (a device not yet commissioned); the expected serial and key.
  const pem = { manufacturerRoot: w.m.rootCertificate.toString('pem'), deviceCertificate: derOf(w.device), atMs: w.good.atMs };
  assert.equal(checkDeviceChain(pem).operatorCertificate, undefined);
  checkDeviceChain({ ...w.good, expectedSerial: w.identity.serial, expectedSpki: w.identity.publicKeySpki() });
  assert.equal(certifiedSerial(w.operator, 'operator'), w.identity.serial);
  // Validity is inclusive at both ends (the operator certificate lives 10 years, the device's 20).
  checkDeviceChain({ ...w.good, atMs: w.device.notBefore.getTime() });
  checkDeviceChain({ ...w.good, atMs: w.operator.notAfter.getTime() });
  checkDeviceChain({ ...pem, atMs: w.device.notAfter.getTime() });
});

test('the operator half is both certificates or neither (a caller bug otherwise)', () => {
  assert.throws(() => checkDeviceChain({ ...w.good, operatorCertificate: undefined } as unknown as DeviceChainInput), /assertion failed/);
});

// ── one test per refusal ────────────────────────────────────────────────────────────────────

test('certificate-too-large: an input over CERTIFICATE_BYTES_MAX is refused before it is parsed', () => {
  refuses({ ...w.good, deviceCertificate: new Uint8Array(CERTIFICATE_BYTES_MAX + 1) }, 'device', 'certificate-too-large');
  refuses({ ...w.good, operatorRoot: 'x'.repeat(CERTIFICATE_BYTES_MAX + 1) }, 'operator-root', 'certificate-too-large');
});

test('unparsable-certificate: text or bytes that are not a certificate', () => {
  refuses({ ...w.good, manufacturerRoot: 'not a certificate' }, 'manufacturer-root', 'unparsable-certificate');
  refuses({ ...w.good, deviceCertificate: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]) }, 'device', 'unparsable-certificate');
  refuses({ ...w.good, operatorCertificate: derOf(w.operator).subarray(0, 200) }, 'operator', 'unparsable-certificate');
});

test('key-not-p384: a root or a leaf with a P-256 key', async () => {
  const p256 = await keyPair(EC_P256);
  const root = await made({ subject: 'CN=P-256 root', issuer: 'CN=P-256 root', publicKey: p256.publicKey, signer: p256.privateKey, extensions: await caExtensions(p256.publicKey), algorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  refuses({ ...w.good, manufacturerRoot: root }, 'manufacturer-root', 'key-not-p384');
  const leaf = await made({ subject: [{ CN: ['CFR-0000000000000000'] }], issuer: w.m.rootCertificate.subject, publicKey: p256.publicKey, signer: w.m.rootPrivateKey });
  refuses({ manufacturerRoot: w.m.rootCertificate, deviceCertificate: leaf, atMs: w.good.atMs }, 'device', 'key-not-p384');
});

test('root-not-ca: a self-signed root without basicConstraints cA', async () => {
  const k = await keyPair();
  const root = await made({ subject: 'CN=not a CA', issuer: 'CN=not a CA', publicKey: k.publicKey, signer: k.privateKey, extensions: [new x509.BasicConstraintsExtension(false, undefined, true)] });
  refuses({ ...w.good, manufacturerRoot: root }, 'manufacturer-root', 'root-not-ca');
  const bare = await made({ subject: 'CN=no extensions', issuer: 'CN=no extensions', publicKey: k.publicKey, signer: k.privateKey });
  refuses({ ...w.good, operatorRoot: bare }, 'operator-root', 'root-not-ca');
  // A leaf in the root's place is no CA either.
  refuses({ ...w.good, operatorRoot: w.operator }, 'operator-root', 'root-not-ca');
});

test('root-cannot-sign-certificates: a CA whose keyUsage lacks keyCertSign', async () => {
  const k = await keyPair();
  const root = await made({ subject: 'CN=signs only data', issuer: 'CN=signs only data', publicKey: k.publicKey, signer: k.privateKey, extensions: await caExtensions(k.publicKey, x509.KeyUsageFlags.digitalSignature) });
  refuses({ ...w.good, manufacturerRoot: root }, 'manufacturer-root', 'root-cannot-sign-certificates');
});

test('root-not-self-issued: a CA issued by someone else stands in for a root', async () => {
  const k = await keyPair();
  const intermediate = await made({
    subject: 'CN=an intermediate', issuer: w.m.rootCertificate.subject, publicKey: k.publicKey, signer: w.m.rootPrivateKey, extensions: await caExtensions(k.publicKey),
  });
  refuses({ ...w.good, manufacturerRoot: intermediate }, 'manufacturer-root', 'root-not-self-issued');
});

test('bad-signature: a root whose self-signature, or a leaf whose signature, does not verify', async () => {
  refuses({ ...w.good, manufacturerRoot: flipSignature(w.m.rootCertificate) }, 'manufacturer-root', 'bad-signature');
  refuses({ ...w.good, deviceCertificate: flipSignature(w.device) }, 'device', 'bad-signature');
  refuses({ ...w.good, operatorCertificate: flipSignature(w.operator) }, 'operator', 'bad-signature');
  // Self-issued names, signed by another key.
  const [k, signer] = [await keyPair(), await keyPair()];
  const forged = await made({ subject: 'CN=forged root', issuer: 'CN=forged root', publicKey: k.publicKey, signer: signer.privateKey, extensions: await caExtensions(k.publicKey) });
  refuses({ ...w.good, operatorRoot: forged }, 'operator-root', 'bad-signature');
});

test('issuer-mismatch: a leaf of another manufacturer (another name, or the same name and another key)', async () => {
  const clock = new ManualClock(T0);
  const namedElse = await createManufacturer({ development: true, name: 'Another Maker', clock });
  const sameName = await createManufacturer({ development: true, clock });
  assert.equal(sameName.rootCertificate.subject, w.m.rootCertificate.subject);
  for (const other of [namedElse, sameName]) {
    const cert = await issueDeviceCertificate(other, w.identity.csrPem(), clock);
    refuses({ ...w.good, deviceCertificate: cert }, 'device', 'issuer-mismatch'); // same name: the key identifiers differ
  }
  refuses({ ...w.good, operatorRoot: w.m.rootCertificate }, 'operator', 'issuer-mismatch');
});

test('not-yet-valid and expired: validity judged at the given time, roots first', () => {
  refuses({ ...w.good, atMs: T1 - DAY_MS }, 'device', 'not-yet-valid'); // the roots are already valid
  refuses({ ...w.good, atMs: T0 - DAY_MS }, 'manufacturer-root', 'not-yet-valid');
  refuses({ ...w.good, atMs: w.device.notAfter.getTime() + 1 }, 'device', 'expired'); // 20 years; the roots live 25
  refuses({ ...w.good, atMs: w.m.rootCertificate.notAfter.getTime() + 1 }, 'manufacturer-root', 'expired');
});

test('leaf-is-ca: a device certificate that is itself a CA', async () => {
  const key = await deviceKey(w.identity);
  const ca = await made({
    subject: [{ CN: [w.identity.serial] }], issuer: w.m.rootCertificate.subject, publicKey: key, signer: w.m.rootPrivateKey,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  refuses({ ...w.good, deviceCertificate: ca }, 'device', 'leaf-is-ca');
});

test('chain-key-mismatch: an operator certificate for another device', async () => {
  const otherDevice = await issueDeviceCertificate(w.m, w.other.csrPem(), new ManualClock(T1));
  const otherOperator = await issueOperatorCertificate(w.o, derOf(otherDevice), { clock: new ManualClock(T1) });
  refuses({ ...w.good, operatorCertificate: otherOperator }, 'operator', 'chain-key-mismatch');
});

test('serial-mismatch: a device or operator certificate whose CN is not the serial its key gives', async () => {
  const key = await deviceKey(w.identity);
  const wrongCn = [{ CN: ['CFR-0000000000000000'] }];
  const device = await made({ subject: wrongCn, issuer: w.m.rootCertificate.subject, publicKey: key, signer: w.m.rootPrivateKey });
  refuses({ ...w.good, deviceCertificate: device }, 'device', 'serial-mismatch');
  const operator = await made({ subject: wrongCn, issuer: w.o.rootCertificate.subject, publicKey: key, signer: w.o.rootPrivateKey });
  refuses({ ...w.good, operatorCertificate: operator }, 'operator', 'serial-mismatch');
  assert.throws(() => certifiedSerial(device), (e) => isCofferError(e, 'COFFER_CERT_INVALID') && e.detail['reason'] === 'serial-mismatch');
});

test('unexpected-serial: a genuine device, but not the one the caller names', () => {
  refuses({ ...w.good, expectedSerial: w.other.serial }, 'device', 'unexpected-serial');
  refuses({ ...w.good, expectedSerial: '' }, 'device', 'unexpected-serial');
});

test('not-this-device: a genuine device, but not the key the caller expects', () => {
  refuses({ ...w.good, expectedSpki: w.other.publicKeySpki() }, 'device', 'not-this-device');
});

test('every refusal the rule can make is covered above', () => {
  const covered: readonly ChainRefusal[] = [
    'certificate-too-large', 'unparsable-certificate', 'key-not-p384', 'root-not-ca', 'root-cannot-sign-certificates', 'root-not-self-issued',
    'issuer-mismatch', 'bad-signature', 'not-yet-valid', 'expired', 'leaf-is-ca', 'chain-key-mismatch', 'serial-mismatch', 'unexpected-serial', 'not-this-device',
  ];
  assert.deepEqual([...covered].sort(), [...CHAIN_REFUSALS].sort());
});

test('any byte of a certificate flipped: refused with COFFER_CERT_INVALID and a known reason, never an untyped error', () => {
  let refused = 0;
  for (const [name, der] of [['deviceCertificate', derOf(w.device)], ['manufacturerRoot', derOf(w.m.rootCertificate)]] as const) {
    for (let i = 0; i < der.length; i++) {
      const bad = der.slice();
      bad[i] = (bad[i] ?? 0) ^ (i % 2 === 0 ? 0x01 : 0x80); // a low bit, or a length's long-form bit
      try {
        checkDeviceChain({ manufacturerRoot: w.m.rootCertificate, deviceCertificate: w.device, atMs: w.good.atMs, [name]: bad }); // the device half: fewer signatures to check
      } catch (e) {
        assert.ok(isCofferError(e, 'COFFER_CERT_INVALID'), `${name} byte ${i}: ${String(e)}`);
        assert.ok((CHAIN_REFUSALS as readonly unknown[]).includes(e.detail['reason']), `${name} byte ${i}: ${String(e.detail['reason'])}`);
        refused++;
      }
    }
  }
  assert.ok(refused > 0);
});

// ── the collecting form ─────────────────────────────────────────────────────────────────────

test('deviceChainFailures lists every refusal and still reads the device key and serial', () => {
  assert.deepEqual(deviceChainFailures(w.good), { failures: [], serial: w.identity.serial, publicKey: checkDeviceChain(w.good).publicKey });
  // The roots swapped: neither leaf chains to the root in its place, and the rest still holds.
  const swapped = deviceChainFailures({ ...w.good, manufacturerRoot: w.o.rootCertificate, operatorRoot: w.m.rootCertificate, expectedSerial: w.other.serial });
  assert.deepEqual(swapped.failures, [
    { certificate: 'device', reason: 'issuer-mismatch' },
    { certificate: 'operator', reason: 'issuer-mismatch' },
    { certificate: 'device', reason: 'unexpected-serial' },
  ]);
  assert.equal(swapped.serial, w.identity.serial);
  assert.deepEqual(spkiOf(w.device), w.identity.publicKeySpki());
  assert.ok(swapped.publicKey !== undefined);
  // An unreadable device certificate: no serial, no key, and the leaf checks that need it are skipped.
  const unreadable = deviceChainFailures({ ...w.good, deviceCertificate: 'garbage' });
  assert.deepEqual(unreadable.failures, [{ certificate: 'device', reason: 'unparsable-certificate' }]);
  assert.equal(unreadable.serial, undefined);
  assert.equal(unreadable.publicKey, undefined);
});
