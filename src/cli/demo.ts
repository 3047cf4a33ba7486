// `coffer demo` (and `npm start` until the node exists): the device in one process, honestly.
// It makes development authorities, provisions a device whose sealed store lives in a temporary
// directory, activates the cluster admin, creates a crypto user, generates keys, signs, verifies
// the signature with node:crypto (outside the device), encrypts and decrypts, restarts the device
// from its sealed store, and removes the directory. Every line it prints is something it did.

import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SecretBytes } from '../crypto/secret_bytes.js';
import { Hsm } from '../hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice } from '../factory/development.js';
import { verifyCeremonyTranscript } from '../hsm/identity/provisioning.js';
import { SealedStore, deriveStorageKey } from '../hsm/store/sealed_store.js';

export async function runDemo(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-demo-'));
  const deviceSecret = SecretBytes.random(32);
  const storageKey = deriveStorageKey(deviceSecret);
  const path = join(dir, 'device.db');
  const t0 = performance.now();
  const ms = (): string => `${(performance.now() - t0).toFixed(0)} ms`;
  try {
    say('Coffer device demo (development keys: never use them for real keys)');
    const authorities = await createDevelopmentAuthorities();
    say(`[${ms()}] manufacturer and operator root CAs made; MKBK and AKBK components generated`);
    const hsm = Hsm.open({ store: SealedStore.create({ path, storageKey }) });
    const transcript = await provisionDevelopmentDevice(hsm, authorities, { mode: 'NON_FIPS' });
    say(`[${ms()}] device ${hsm.status().serial ?? '?'} manufactured and commissioned (NON_FIPS); sealed store at ${path}`);
    const checked = verifyCeremonyTranscript(transcript, hsm.provisioning.deviceCertificate());
    say(`[${ms()}] AKBK (KCV ${checked.akbkKcv}) installed from components entered by ${checked.custodians.map((c) => c.name).join(' and ')}; ceremony transcript signed by the device, signature verified`);

    const preCo = 'demo-preco-pw';
    await hsm.initialiseUsers(preCo, 'demo-appliance-credential');
    await hsm.activate(preCo, 'demo-admin-pw');
    const admin = hsm.openSession();
    await admin.login('admin', 'demo-admin-pw');
    await admin.createUser('alice', 'demo-alice-pw', 'crypto-user');
    say(`[${ms()}] cluster activated; admin created crypto user "alice"`);

    const alice = hsm.openSession();
    await alice.login('alice', 'demo-alice-pw');
    const pair = await alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { label: 'demo-ec' }, { label: 'demo-ec' });
    const message = new TextEncoder().encode('signed inside Coffer');
    const signature = alice.sign(pair.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message);
    const verified = nodeVerify('sha256', message, { key: createPublicKey(alice.exportPublic(pair.publicHandle)), dsaEncoding: 'ieee-p1363' }, signature);
    say(`[${ms()}] alice: EC P-256 key pair (handles ${pair.publicHandle}/${pair.privateHandle}); ECDSA-SHA256 signature verified by node:crypto: ${verified}`);

    const aes = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'demo-aes' });
    const plaintext = new TextEncoder().encode('a secret message');
    const sealed = alice.encrypt(aes, { mechanism: 'CKM_AES_GCM' }, plaintext);
    const opened = alice.decrypt(aes, { mechanism: 'CKM_AES_GCM' }, sealed);
    say(`[${ms()}] alice: AES-256 key (handle ${aes}, KCV ${Buffer.from(alice.getAttributes(aes).kcv).toString('hex')}); GCM round trip ok: ${Buffer.from(opened).equals(Buffer.from(plaintext))}`);
    hsm.close();

    const again = Hsm.open({ store: SealedStore.open({ path, storageKey }) });
    const s = again.openSession();
    await s.login('alice', 'demo-alice-pw');
    const stillVerifies = s.verify(pair.publicHandle, { mechanism: 'CKM_ECDSA_SHA256' }, message, signature);
    say(`[${ms()}] device restarted from its sealed store: ${s.find().length} objects, the signature still verifies: ${stillVerifies}`);
    again.close();
    say('Next: `coffer hsm serve --development` serves a node over TLS 1.3. `coffer dev cluster` runs several nodes with the client SDK and the `coffer` CLI; the cluster journal and the control plane are not built yet (see README status).');
  } finally {
    storageKey.destroy();
    deviceSecret.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
