// The device through its public API (Hsm → Session → ObjectTable → mechanisms), in process, each
// figure beside raw node:crypto doing the same work in the same run. Target: ≥ 0.9 × raw for
// every hashed mechanism. Both sides get the same input sizes and, where the device draws a random
// IV itself (AES-GCM without a caller IV), the raw side draws one too.

import { createCipheriv, createHmac, createPrivateKey, createSecretKey, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { paired, pairedAsync, type Row, type Section } from './harness.js';
import { Hsm, type Session } from '../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice } from '../src/factory/development.js';
import { MemoryRecordStore } from '../src/hsm/store/store_port.js';
import type { Handle } from '../src/hsm/types.js';

const DATA_64 = randomBytes(64);
const DATA_4K = randomBytes(4096);
const DIGEST_32 = randomBytes(32);

async function cryptoUser(): Promise<Session> {
  const hsm = Hsm.open({ store: new MemoryRecordStore(), kdfParams: { log2N: 4, r: 1, p: 1 } });
  await provisionDevelopmentDevice(hsm, await createDevelopmentAuthorities(), { mode: 'NON_FIPS' });
  await hsm.initialiseUsers('bench-preco', 'bench-appliance');
  await hsm.activate('bench-preco', 'bench-admin-pw');
  const admin = hsm.openSession();
  await admin.login('admin', 'bench-admin-pw');
  await admin.createUser('bench', 'bench-password', 'crypto-user');
  const s = hsm.openSession();
  await s.login('bench', 'bench-password');
  return s;
}

/** The very key the device holds (generated extractable and non-sensitive for the bench), for the raw side. */
function rawPrivate(s: Session, handle: Handle): KeyObject {
  const secret = s.exportPlaintext(handle);
  try {
    const isSecret = s.getAttributes(handle).class === 'SECRET_KEY';
    return secret.use((bytes) => (isSecret ? createSecretKey(bytes) : createPrivateKey({ key: Buffer.from(bytes), format: 'der', type: 'pkcs8' })));
  } finally {
    secret.destroy();
  }
}

export async function run(): Promise<Section> {
  const s = await cryptoUser();
  const rows: Row[] = [];
  const push = (name: string, m: { ours: number; raw: number }, target: string, anchorName = 'raw node:crypto'): void => {
    rows.push({ name, value: m.ours, unit: 'ops/s', anchorName, anchorValue: m.raw, target });
  };
  const add = (name: string, ours: () => void, raw: () => void, target = '≥ 0.9 × raw', anchorName?: string): void => push(name, paired(ours, raw), target, anchorName);
  const plain = { extractable: true, sensitive: false } as const;

  const ec = await s.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, {}, plain);
  const ecRaw = rawPrivate(s, ec.privateHandle);
  add('ECDSA P-256 sign (SHA-256, 64 B)', () => s.sign(ec.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, DATA_64), () => nodeSign('sha256', DATA_64, { key: ecRaw, dsaEncoding: 'ieee-p1363' }));
  push(
    'ECDSA P-256 sign, async, 16 in flight',
    await pairedAsync(
      () => s.signAsync(ec.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, DATA_64),
      () => new Promise<Buffer>((resolve, reject) => nodeSign('sha256', DATA_64, { key: ecRaw, dsaEncoding: 'ieee-p1363' }, (e, sig) => (e ? reject(e) : resolve(sig)))),
    ),
    '≥ 0.9 × raw',
  );
  // The object-identity check (docs/device.md "Object identity"): the same sign, the key named by
  // handle and identity, beside the key named by handle alone.
  const ecRef = { handle: ec.privateHandle, identity: s.getAttributes(ec.privateHandle).identity };
  add(
    'ECDSA P-256 sign naming the key\'s identity',
    () => s.sign(ecRef, { mechanism: 'CKM_ECDSA_SHA256' }, DATA_64),
    () => s.sign(ec.privateHandle, { mechanism: 'CKM_ECDSA_SHA256' }, DATA_64),
    'cost of the identity check: ≥ 0.97 × by handle',
    'the same sign, by handle alone',
  );
  add(
    'raw ECDSA P-256 over a 32-byte digest (CKM_ECDSA)',
    () => s.sign(ec.privateHandle, { mechanism: 'CKM_ECDSA' }, DIGEST_32),
    () => nodeSign('sha256', DATA_64, { key: ecRaw, dsaEncoding: 'ieee-p1363' }),
    'informative: node cannot sign a given digest',
    'node:crypto hashed ECDSA sign',
  );

  const rsa = await s.generateKeyPair({ keyType: 'RSA', bits: 2048 }, {}, plain);
  const rsaRaw = rawPrivate(s, rsa.privateHandle);
  add('RSA-2048 sign (PKCS#1 v1.5, SHA-256)', () => s.sign(rsa.privateHandle, { mechanism: 'CKM_SHA256_RSA_PKCS' }, DATA_64), () => nodeSign('sha256', DATA_64, rsaRaw));

  const ed = await s.generateKeyPair({ keyType: 'EC_EDWARDS', curve: 'Ed25519' }, {}, plain);
  const edRaw = rawPrivate(s, ed.privateHandle);
  add('Ed25519 sign (64 B)', () => s.sign(ed.privateHandle, { mechanism: 'CKM_EDDSA' }, DATA_64), () => nodeSign(null, DATA_64, edRaw));

  const aes = await s.generateKey({ keyType: 'AES', bits: 256 }, plain);
  const aesRaw = rawPrivate(s, aes);
  add(
    'AES-256-GCM encrypt 4 KiB (device-drawn IV)',
    () => s.encrypt(aes, { mechanism: 'CKM_AES_GCM' }, DATA_4K),
    () => {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', aesRaw, iv);
      Buffer.concat([iv, c.update(DATA_4K), c.final(), c.getAuthTag()]);
    },
  );

  const hmac = await s.generateKey({ keyType: 'GENERIC_SECRET', bits: 256 }, { ...plain, sign: true, verify: true });
  const hmacRaw = rawPrivate(s, hmac);
  add('HMAC-SHA-256 (64 B)', () => s.sign(hmac, { mechanism: 'CKM_SHA256_HMAC' }, DATA_64), () => createHmac('sha256', hmacRaw).update(DATA_64).digest());
  add('HMAC-SHA-256 (4 KiB)', () => s.sign(hmac, { mechanism: 'CKM_SHA256_HMAC' }, DATA_4K), () => createHmac('sha256', hmacRaw).update(DATA_4K).digest());

  return {
    title: 'HSM device API in process vs raw node:crypto',
    rows,
    notes: [
      'Coffer: Session.sign/encrypt on a commissioned device (role, ownership, attribute and mechanism checks on every call); raw: the same node:crypto call on the same key.',
      'Sync figures use one core; the async row uses libuv’s thread pool (both cores).',
    ],
  };
}
