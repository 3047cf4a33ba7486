// X.509 certificate objects through the PKCS#11 bridge (docs/pkcs11.md "The token"), against a
// development cluster of real node processes: Debian's pkcs11-tool writes a certificate OpenSSL made
// (`--write-object … --type cert`), lists it and reads it back byte for byte, and deletes it; the SDK
// sees it as a cluster object. Then the token's return values without the transport: attributes
// compared with what OpenSSL prints, find by class, id, label and subject, and every refusal.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterBackend } from '../../src/pkcs11/cluster_backend.js';
import type { Pkcs11Connection } from '../../src/pkcs11/backend.js';
import { CKA, CKR } from '../../src/pkcs11/constants.js';
import { ckrOf } from '../../src/pkcs11/server.js';
import { isCofferError } from '../../src/errors.js';
import type { Attribute } from '../../src/pkcs11/rpc_codec.js';
import { P11_KIT_CLIENT, PKCS11_TOOL, realClientMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';
import { derInteger, selfSigned } from '../certificate_support.js';

// PKCS#11 v2.40 values written from the specification (§4.1, §4.6), not from the code under test.
const CKO_CERTIFICATE = 1n;
const CKC_X_509 = 0n;
const CKA_SUBJECT = 0x101;
const CKA_ISSUER = 0x81;
const CKA_SERIAL_NUMBER = 0x82;
const CKA_CHECK_VALUE = 0x90;
const CKF_RW_SERIAL = 0x6n;
const CKF_SERIAL = 0x4n;
const CKU_USER = 1n;

const missing = realClientMissing();
if (missing !== undefined) console.log(`pkcs11-tool certificate test skipped: ${missing}`);

const EC = selfSigned('ec', 'p11 ec cert');
const RSA = selfSigned('rsa', 'p11 rsa cert');
let bridge: Bridge;
before(async () => {
  bridge = await startBridge('p11-certs');
});
after(async () => {
  await bridge.close();
});

/** pkcs11-tool as a child process, not blocking: the bridge answers it from this process. */
async function tool(args: readonly string[]): Promise<string> {
  const r = await run(PKCS11_TOOL, ['--module', P11_KIT_CLIENT, ...args], { P11_KIT_SERVER_ADDRESS: bridge.address });
  assert.equal(r.code, 0, `pkcs11-tool ${args.filter((a) => a !== bridge.pin).join(' ')}: ${r.stderr}`);
  return r.stdout;
}


test('pkcs11-tool writes a certificate, lists it, reads it back byte for byte and deletes it', { skip: missing, timeout: 300_000 }, async () => {
  const login = ['--login', '--pin', bridge.pin];
  const file = join(bridge.dir, 'cert.der');
  writeFileSync(file, EC.der);
  await tool([...login, '--write-object', file, '--type', 'cert', '--id', '0a0b', '--label', 'tool cert']);
  const listed = await tool([...login, '--list-objects', '--type', 'cert']);
  assert.match(listed, /Certificate Object; type = X\.509 cert/);
  assert.match(listed, /label:\s+tool cert/);
  assert.match(listed, /subject:\s+DN: CN\s*=\s*p11 ec cert, O\s*=\s*Coffer test/);
  assert.match(listed, /ID:\s+0a0b/);
  const out = join(bridge.dir, 'back.der');
  await tool([...login, '--read-object', '--type', 'cert', '--id', '0a0b', '-o', out]);
  assert.deepEqual(readFileSync(out), Buffer.from(EC.der));
  // A cluster object like any other: the SDK finds it and reads the same DER.
  const [cert] = await bridge.sdk.findCertificates({ label: 'tool cert' });
  assert.ok(cert !== undefined);
  assert.deepEqual(Buffer.from((await cert.certificate()).certificate), Buffer.from(EC.der));
  assert.equal((await cert.attributes()).attributes.token, true);
  await tool([...login, '--delete-object', '--type', 'cert', '--id', '0a0b']);
  assert.deepEqual(await bridge.sdk.findCertificates({ label: 'tool cert' }), []);
});

// ── the token's return values, without the transport ─────────────────────────────────────────

const bytes = (type: number, value: Uint8Array): Attribute => ({ type, value: { kind: 'bytes', value } });
const ulong = (type: number, value: bigint): Attribute => ({ type, value: { kind: 'ulong', value } });
const bool = (type: number, value: boolean): Attribute => ({ type, value: { kind: 'byte', value: value ? 1 : 0 } });
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function call<K extends keyof ClusterBackend>(b: ClusterBackend, name: K, req: Parameters<NonNullable<ClusterBackend[K]>>[0], c: Pkcs11Connection) {
  const h = b[name] as ((r: typeof req, c: Pkcs11Connection) => unknown) | undefined;
  assert.ok(h !== undefined, `${String(name)} is implemented`);
  return (await h(req, c)) as { rv: number; out?: Record<string, unknown> };
}

let connections = 0;
async function loggedIn(flags = CKF_RW_SERIAL): Promise<{ b: ClusterBackend; c: Pkcs11Connection; s: bigint }> {
  const b = bridge.backend();
  const c: Pkcs11Connection = { id: `cert${++connections}`, version: 0 };
  const s = (await call(b, 'C_OpenSession', { slotId: 1n, flags }, c)).out?.['session'] as bigint;
  assert.equal((await call(b, 'C_Login', { session: s, userType: CKU_USER, pin: text(bridge.pin) }, c)).rv, CKR.OK);
  return { b, c, s };
}

function certTemplate(der: Uint8Array, extra: readonly Attribute[] = []): Attribute[] {
  return [ulong(CKA.CLASS, CKO_CERTIFICATE), ulong(CKA.CERTIFICATE_TYPE, CKC_X_509), bool(CKA.TOKEN, true), bytes(CKA.VALUE, der), ...extra];
}

/** The attributes' values as C_GetAttributeValue gives them (after a length query, as callers do). */
async function values(b: ClusterBackend, c: Pkcs11Connection, s: bigint, object: bigint, types: readonly number[]): Promise<Map<number, unknown>> {
  const sizes = await call(b, 'C_GetAttributeValue', { session: s, object, template: types.map((type) => ({ type, length: 0 })) }, c);
  assert.equal(sizes.rv, CKR.OK);
  const lengths = (sizes.out?.['template'] as { type: number; lengthOnly: number }[]).map((a) => ({ type: a.type, length: Math.max(a.lengthOnly, 1) }));
  const r = await call(b, 'C_GetAttributeValue', { session: s, object, template: lengths }, c);
  assert.equal(r.rv, CKR.OK);
  return new Map((r.out?.['template'] as { type: number; value: { value: unknown } }[]).map((a) => [a.type, a.value.value]));
}

async function find(b: ClusterBackend, c: Pkcs11Connection, s: bigint, template: readonly Attribute[]): Promise<bigint[]> {
  assert.equal((await call(b, 'C_FindObjectsInit', { session: s, template }, c)).rv, CKR.OK);
  const r = await call(b, 'C_FindObjects', { session: s, objects: { present: true, length: 100 } }, c);
  assert.equal((await call(b, 'C_FindObjectsFinal', { session: s }, c)).rv, CKR.OK);
  return r.out?.['objects'] as bigint[];
}

test('a created certificate shows its attributes, the DER fields OpenSSL reports, and is found by class, id, label and subject', async () => {
  const { b, c, s } = await loggedIn();
  const created = await call(b, 'C_CreateObject', { session: s, template: certTemplate(RSA.der, [bytes(CKA.LABEL, text('rsa cert')), bytes(CKA.ID, Uint8Array.of(0x5a)), ulong(CKA.CERTIFICATE_CATEGORY, 1n)]) }, c);
  assert.equal(created.rv, CKR.OK);
  const handle = created.out?.['object'] as bigint;
  const v = await values(b, c, s, handle, [CKA.CLASS, CKA.CERTIFICATE_TYPE, CKA.TOKEN, CKA.TRUSTED, CKA.CERTIFICATE_CATEGORY, CKA.LABEL, CKA.ID, CKA.VALUE, CKA_SERIAL_NUMBER, CKA_SUBJECT, CKA_ISSUER, CKA_CHECK_VALUE]);
  assert.equal(v.get(CKA.CLASS), CKO_CERTIFICATE);
  assert.equal(v.get(CKA.CERTIFICATE_TYPE), CKC_X_509);
  assert.equal(v.get(CKA.TOKEN), 1);
  assert.equal(v.get(CKA.TRUSTED), 0);
  assert.equal(v.get(CKA.CERTIFICATE_CATEGORY), 1n);
  assert.deepEqual(Buffer.from(v.get(CKA.LABEL) as Uint8Array).toString(), 'rsa cert');
  assert.deepEqual(Buffer.from(v.get(CKA.VALUE) as Uint8Array), Buffer.from(RSA.der));
  assert.deepEqual(Buffer.from(v.get(CKA_SERIAL_NUMBER) as Uint8Array), Buffer.from(derInteger(RSA.serialHex)));
  // Self-signed: subject and issuer are the same Name, and the Name is inside the DER.
  const subject = Buffer.from(v.get(CKA_SUBJECT) as Uint8Array);
  assert.deepEqual(Buffer.from(v.get(CKA_ISSUER) as Uint8Array), subject);
  assert.ok(Buffer.from(RSA.der).includes(subject) && subject[0] === 0x30);
  assert.match(subject.toString('latin1'), /p11 rsa cert/);
  const sha1 = execFileSync('openssl', ['dgst', '-sha1', '-binary'], { input: RSA.der });
  assert.deepEqual(Buffer.from(v.get(CKA_CHECK_VALUE) as Uint8Array), sha1.subarray(0, 3));
  // Key attributes are not a certificate's.
  const keyAttr = await call(b, 'C_GetAttributeValue', { session: s, object: handle, template: [{ type: CKA.KEY_TYPE, length: 8 }, { type: CKA.SIGN, length: 1 }] }, c);
  assert.equal(keyAttr.rv, CKR.ATTRIBUTE_TYPE_INVALID);

  assert.deepEqual(await find(b, c, s, [ulong(CKA.CLASS, CKO_CERTIFICATE), bytes(CKA.ID, Uint8Array.of(0x5a))]), [handle]);
  assert.deepEqual(await find(b, c, s, [bytes(CKA.LABEL, text('rsa cert'))]), [handle]);
  assert.deepEqual(await find(b, c, s, [ulong(CKA.CLASS, CKO_CERTIFICATE), bytes(CKA_SUBJECT, subject)]), [handle]);
  assert.deepEqual(await find(b, c, s, [ulong(CKA.CLASS, CKO_CERTIFICATE), bytes(CKA_SUBJECT, subject.subarray(0, subject.length - 1))]), []);
  assert.deepEqual(await find(b, c, s, [ulong(CKA.CLASS, 3n), bytes(CKA.ID, Uint8Array.of(0x5a))]), []);

  // Label and id change; the certificate's own fields do not.
  assert.equal((await call(b, 'C_SetAttributeValue', { session: s, object: handle, template: [bytes(CKA.LABEL, text('renamed'))] }, c)).rv, CKR.OK);
  assert.equal((await call(b, 'C_SetAttributeValue', { session: s, object: handle, template: [bytes(CKA_SUBJECT, subject)] }, c)).rv, CKR.ATTRIBUTE_READ_ONLY);
  assert.equal((await call(b, 'C_SetAttributeValue', { session: s, object: handle, template: [bytes(CKA.VALUE, EC.der)] }, c)).rv, CKR.ATTRIBUTE_READ_ONLY);
  assert.deepEqual(await find(b, c, s, [bytes(CKA.LABEL, text('renamed'))]), [handle]);
  assert.equal((await call(b, 'C_DestroyObject', { session: s, object: handle }, c)).rv, CKR.OK);
  assert.deepEqual(await find(b, c, s, [ulong(CKA.CLASS, CKO_CERTIFICATE), bytes(CKA.ID, Uint8Array.of(0x5a))]), []);
});

test('certificate templates: missing, inconsistent and bad values are refused with their CK_RV; nothing is stored', async () => {
  const { b, c, s } = await loggedIn();
  const before = (await bridge.sdk.findCertificates()).length;
  const create = async (template: readonly Attribute[], session = s): Promise<number> => {
    try {
      return (await call(b, 'C_CreateObject', { session, template }, c)).rv;
    } catch (e) {
      // What the server answers for a typed error the SDK raised (the HSM's refusal).
      if (isCofferError(e)) return ckrOf(e);
      throw e;
    }
  };
  assert.equal(await create([ulong(CKA.CLASS, CKO_CERTIFICATE), bytes(CKA.VALUE, EC.der)]), CKR.TEMPLATE_INCOMPLETE); // no CKA_CERTIFICATE_TYPE
  assert.equal(await create([ulong(CKA.CLASS, CKO_CERTIFICATE), ulong(CKA.CERTIFICATE_TYPE, CKC_X_509)]), CKR.TEMPLATE_INCOMPLETE); // no CKA_VALUE
  assert.equal(await create([ulong(CKA.CLASS, CKO_CERTIFICATE), ulong(CKA.CERTIFICATE_TYPE, 1n), bytes(CKA.VALUE, EC.der)]), CKR.ATTRIBUTE_VALUE_INVALID); // WTLS
  assert.equal(await create(certTemplate(EC.der, [bool(CKA.TRUSTED, true)])), CKR.ATTRIBUTE_READ_ONLY);
  assert.equal(await create(certTemplate(EC.der, [bool(CKA.SIGN, true)])), CKR.ATTRIBUTE_TYPE_INVALID);
  assert.equal(await create(certTemplate(EC.der, [ulong(CKA.CERTIFICATE_CATEGORY, 4n)])), CKR.ATTRIBUTE_VALUE_INVALID);
  assert.equal(await create(certTemplate(EC.der.subarray(0, 100))), CKR.ATTRIBUTE_VALUE_INVALID);
  assert.equal(await create(certTemplate(text('not a certificate'))), CKR.ATTRIBUTE_VALUE_INVALID);
  assert.equal(await create(certTemplate(EC.der, [bytes(CKA_SERIAL_NUMBER, derInteger('01'))])), CKR.TEMPLATE_INCONSISTENT);
  assert.equal(await create(certTemplate(EC.der, [bytes(CKA_ISSUER, Uint8Array.of(0x30, 0))])), CKR.TEMPLATE_INCONSISTENT);
  const ro = (await call(b, 'C_OpenSession', { slotId: 1n, flags: CKF_SERIAL }, c)).out?.['session'] as bigint;
  assert.equal(await create(certTemplate(EC.der), ro), CKR.SESSION_READ_ONLY);
  assert.equal((await bridge.sdk.findCertificates()).length, before);
  // The right serial and issuer are accepted.
  assert.equal(await create(certTemplate(EC.der, [bytes(CKA_SERIAL_NUMBER, derInteger(EC.serialHex)), bytes(CKA.LABEL, text('with serial'))])), CKR.OK);
  assert.equal((await bridge.sdk.findCertificates({ label: 'with serial' })).length, 1);
  // Java's SunPKCS11 sends the serial number's contents without the INTEGER's tag and length: taken
  // as that INTEGER when it is the certificate's serial, refused as any other value otherwise.
  assert.equal(await create(certTemplate(EC.der, [bytes(CKA_SERIAL_NUMBER, Buffer.from(EC.serialHex, 'hex')), bytes(CKA.LABEL, text('java serial'))])), CKR.OK);
  assert.equal((await bridge.sdk.findCertificates({ label: 'java serial' })).length, 1);
  assert.equal(await create(certTemplate(EC.der, [bytes(CKA_SERIAL_NUMBER, Uint8Array.of(1))])), CKR.TEMPLATE_INCONSISTENT);
});
