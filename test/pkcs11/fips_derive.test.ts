// ECDH through the cluster token on a cluster in FIPS mode (docs/pkcs11.md, C_DeriveKey): Z may
// only become a generic secret, to go through a KDF on the HSM; straight to an AES key the HSM
// refuses it (COFFER_FIPS_REFUSED, CKR_MECHANISM_INVALID). FIPS mode exports no key in plaintext,
// so the generic secret is checked by what it does: its HMAC-SHA-256 (through the SDK, by the
// handle the token gave) equals node:crypto's HMAC under the Z that node:crypto's ECDH of the same
// two keys gives. A development cluster of a real node process.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../src/client/cluster.js';
import { startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { clusterBackend, type ClusterBackend } from '../../src/pkcs11/cluster_backend.js';
import type { Pkcs11Connection } from '../../src/pkcs11/backend.js';
import { CKA, CKM, CKR } from '../../src/pkcs11/constants.js';
import type { Attribute, Mechanism } from '../../src/pkcs11/rpc_codec.js';

// PKCS#11 v2.40 values written from the specification (§4.1, §4.8, §5.1, §2.3.8).
const CKF_RW_SERIAL = 0x6n;
const CKU_USER = 1n;
const CKO_SECRET_KEY = 4n;
const CKK_GENERIC_SECRET = 0x10n;
const CKK_AES = 0x1fn;
const CKD_NULL = 1n;
const P256_PARAMS = Uint8Array.from(Buffer.from('06082a8648ce3d030107', 'hex'));

const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-fips-'));
let dev: DevelopmentCluster;
before(async () => {
  dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1, mode: 'FIPS' });
});
after(async () => {
  await dev.stop();
  rmSync(dir, { recursive: true, force: true });
});

const mech = (type: number, parameter: Mechanism['parameter'] = { kind: 'none' }): Mechanism => ({ type, parameter });
const bool = (type: number, value: boolean): Attribute => ({ type, value: { kind: 'byte', value: value ? 1 : 0 } });
const ulong = (type: number, value: bigint): Attribute => ({ type, value: { kind: 'ulong', value } });
const bytes = (type: number, value: Uint8Array): Attribute => ({ type, value: { kind: 'bytes', value } });

async function call<K extends keyof ClusterBackend>(b: ClusterBackend, name: K, req: Parameters<NonNullable<ClusterBackend[K]>>[0], c: Pkcs11Connection): Promise<{ rv: number; out?: Record<string, unknown> }> {
  const h = b[name] as ((r: typeof req, c: Pkcs11Connection) => unknown) | undefined;
  assert.ok(h !== undefined, `${String(name)} is implemented`);
  return (await h(req, c)) as { rv: number; out?: Record<string, unknown> };
}

test('FIPS mode: ECDH through the token gives a generic secret equal to node:crypto’s Z, and is refused straight to AES', { timeout: 300_000 }, async () => {
  const b = clusterBackend({
    connect: (credentials) => Cluster.connect({ endpoints: dev.nodes.map((n) => ({ host: n.host, port: n.port })), ca: dev.customerCaPem, credentials }),
    label: 'fips', serial: '1',
  });
  // Protocol 1 carries CK_ECDH1_DERIVE_PARAMS (docs/pkcs11.md, section 4).
  const c: Pkcs11Connection = { id: 'fips', version: 1 };
  try {
    const s = (await call(b, 'C_OpenSession', { slotId: 1n, flags: CKF_RW_SERIAL }, c)).out?.['session'] as bigint;
    const pin = new TextEncoder().encode(`${dev.cryptoUser.name}:${dev.cryptoUser.password}`);
    assert.equal((await call(b, 'C_Login', { session: s, userType: CKU_USER, pin }, c)).rv, CKR.OK);
    const pair = await call(b, 'C_GenerateKeyPair', {
      session: s, mechanism: mech(CKM.EC_KEY_PAIR_GEN),
      publicKeyTemplate: [bytes(CKA.EC_PARAMS, P256_PARAMS)],
      privateKeyTemplate: [bool(CKA.DERIVE, true)],
    }, c);
    assert.equal(pair.rv, CKR.OK);
    const base = pair.out?.['privateKey'] as bigint;
    const read = await call(b, 'C_GetAttributeValue', { session: s, object: pair.out?.['publicKey'] as bigint, template: [{ type: CKA.EC_POINT, length: 67 }] }, c);
    const ecPoint = (read.out?.['template'] as { value: { value: Uint8Array } }[])[0]!.value.value;
    const ours = ecPoint.subarray(2); // the DER OCTET STRING's contents: the uncompressed point

    const peer = createECDH('prime256v1');
    peer.generateKeys();
    const ecdh = mech(CKM.ECDH1_DERIVE, { kind: 'ecdh1Derive', kdf: CKD_NULL, sharedData: null, publicData: peer.getPublicKey() });
    const derive = (template: Attribute[]) => call(b, 'C_DeriveKey', { session: s, mechanism: ecdh, baseKey: base, template }, c);

    await assert.rejects(derive([ulong(CKA.CLASS, CKO_SECRET_KEY), ulong(CKA.KEY_TYPE, CKK_AES), ulong(CKA.VALUE_LEN, 32n)]), { ckr: 'CKR_MECHANISM_INVALID' }, 'Z straight to an AES key');

    const secret = await derive([ulong(CKA.CLASS, CKO_SECRET_KEY), ulong(CKA.KEY_TYPE, CKK_GENERIC_SECRET), bool(CKA.SIGN, true), bool(CKA.TOKEN, true)]);
    assert.equal(secret.rv, CKR.OK);
    const sdk = await Cluster.connect({ endpoints: dev.nodes.map((n) => ({ host: n.host, port: n.port })), ca: dev.customerCaPem, credentials: { username: dev.cryptoUser.name, password: dev.cryptoUser.password } });
    try {
      const data = Buffer.from('what Z keys, checked from outside');
      const mac = await sdk.key(Number(secret.out?.['key'])).sign(data, { mechanism: 'CKM_SHA256_HMAC' });
      const z = peer.computeSecret(Buffer.from(ours));
      assert.deepEqual(Buffer.from(mac), createHmac('sha256', z).update(data).digest(), 'the derived secret is Z as node:crypto computes it from the other side');
    } finally {
      await sdk.close();
    }
  } finally {
    await b.release?.(c);
  }
});
