// The device through its public API (Hsm → Session → ObjectTable → mechanisms), in process, each
// figure beside raw node:crypto doing the same work in the same run. Target: ≥ 0.9 × raw for
// every hashed mechanism. Both sides get the same input sizes and, where the device draws a random
// IV itself (AES-GCM without a caller IV), the raw side draws one too.
//
// Then the object index at scale (docs/device.md "Objects"): an ObjectTable over 100k token objects
// of the backup bench's mix — loading it from records already in memory, its buffers per object,
// find by label beside the floor of any label scan — and the cost of a key outside the KeyObject
// cache (rebuilt from its bytes on every use) beside the same call on a kept key.

import { createCipheriv, createHmac, createPrivateKey, createSecretKey, generateKeyPairSync, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { median, paired, pairedAsync, type Row, type Section } from './harness.js';
import { SecretBytes } from '../src/crypto/secret_bytes.js';
import { BOOLEAN_ATTRIBUTE_NAMES, encodeObjectRecord, type BooleanAttributeName, type ObjectRecord } from '../src/formats/object_record.js';
import { Hsm, type Session } from '../src/hsm/device.js';
import { createDevelopmentAuthorities, provisionDevelopmentDevice } from '../src/factory/development.js';
import { ObjectTable } from '../src/hsm/objects/objects.js';
import { DeviceState } from '../src/hsm/state/device_state.js';
import { MemoryRecordStore } from '../src/hsm/store/store_port.js';
import type { Actor, Handle } from '../src/hsm/types.js';

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

  rows.push(...objectIndexRows(), ...keyRebuildRows());
  return {
    title: 'HSM device API in process vs raw node:crypto',
    rows,
    notes: [
      'Coffer: Session.sign/encrypt on a commissioned device (role, ownership, attribute and mechanism checks on every call); raw: the same node:crypto call on the same key.',
      'Sync figures use one core; the async row uses libuv’s thread pool (both cores).',
      `Object index rows: an ObjectTable over ${INDEX_OBJECTS.toLocaleString('en-US')} token object records in a memory store (no sealing: the index alone), per 10 objects 6 AES-256, 2 generic secrets, 1 EC P-256 pair, labels key-N; find as their owner, one match.`,
      'Rebuilt-key rows: a table keeping one built key, two keys used in turn, so each call rebuilds its KeyObject from the stored bytes.',
    ],
  };
}

// ── the object index at scale ────────────────────────────────────────────────────────────────

const INDEX_OBJECTS = 100_000;
const OWNER: Actor = { userId: 'bench', role: 'crypto-user' };
const INDEX_ROUNDS = 5;

function attributes(on: readonly BooleanAttributeName[]): Record<BooleanAttributeName, boolean> {
  return Object.fromEntries(BOOLEAN_ATTRIBUTE_NAMES.map((n) => [n, n === 'token' || on.includes(n)])) as Record<BooleanAttributeName, boolean>;
}

/** The backup bench's mix, as records: slots 0-5 AES-256, 6-7 generic secrets, 8-9 an EC P-256 pair. */
function mixRecord(handle: number, ec: { priv: Uint8Array; pub: Uint8Array }): ObjectRecord {
  const slot = (handle - 1) % 10;
  const base = { handle, manageKeyQuorum: 0, useKeyQuorum: 0, owner: OWNER.userId, sharees: [], id: new Uint8Array(0), kcv: randomBytes(3), label: `key-${handle}`, bits: 256 };
  if (slot < 6) return { ...base, class: 'SECRET_KEY', keyType: 'AES', attributes: attributes(['sensitive', 'encrypt', 'decrypt']), material: SecretBytes.copyOf(randomBytes(32)) };
  if (slot < 8) return { ...base, class: 'SECRET_KEY', keyType: 'GENERIC_SECRET', attributes: attributes(['sensitive', 'sign', 'verify']), material: SecretBytes.copyOf(randomBytes(32)) };
  if (slot === 8) return { ...base, class: 'PUBLIC_KEY', keyType: 'EC', curve: 'P-256', attributes: attributes(['verify']), material: SecretBytes.copyOf(ec.pub) };
  return { ...base, class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-256', attributes: attributes(['sensitive', 'sign']), material: SecretBytes.copyOf(ec.priv) };
}

/** A memory store holding `count` object records and their handle counter. */
function storeOf(count: number): MemoryRecordStore {
  const pairs = Array.from({ length: 16 }, () => {
    const p = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return { priv: new Uint8Array(p.privateKey.export({ type: 'pkcs8', format: 'der' })), pub: new Uint8Array(p.publicKey.export({ type: 'spki', format: 'der' })) };
  });
  const store = new MemoryRecordStore();
  store.transaction((tx) => {
    for (let handle = 1; handle <= count; handle++) {
      const r = mixRecord(handle, pairs[handle % pairs.length] ?? { priv: new Uint8Array(0), pub: new Uint8Array(0) });
      tx.put('object', String(handle).padStart(16, '0'), encodeObjectRecord(r));
      r.material.destroy();
    }
    const counter = new Uint8Array(8);
    new DataView(counter.buffer).setBigUint64(0, BigInt(count + 1));
    tx.put('config', 'objects.next-handle', counter);
  });
  return store;
}

const seconds = (fn: () => void): number => {
  const start = performance.now();
  fn();
  return (performance.now() - start) / 1000;
};

function objectIndexRows(): Row[] {
  const store = storeOf(INDEX_OBJECTS);
  const state = new DeviceState(store);
  const open = (): ObjectTable => new ObjectTable({ state, mode: 'NON_FIPS', isCryptoUser: () => true });
  const loads: number[] = [];
  const reads: number[] = [];
  for (let round = 0; round < INDEX_ROUNDS; round++) {
    reads.push(seconds(() => {
      for (const [, value] of store.list('object')) value.fill(0);
    }));
    let t: ObjectTable | undefined;
    loads.push(seconds(() => (t = open())));
    t?.close();
  }
  const table = open();
  const labels = table.find(OWNER).map((o) => o.label);
  const wanted = `key-${Math.floor(INDEX_OBJECTS * 0.7)}`;
  const found = table.find(OWNER, { label: wanted });
  if (found.length !== 1) throw new Error('find by label must find the one object');
  const m = paired(() => table.find(OWNER, { label: wanted }), () => labels.indexOf(wanted), 150, 5);
  const perObject = table.indexBytes / INDEX_OBJECTS;
  table.close();
  const n = INDEX_OBJECTS.toLocaleString('en-US');
  return [
    { name: `object index: load ${n} objects from records in memory`, value: median(loads), unit: 's', anchorName: 'reading the same records from the store (the floor)', anchorValue: median(reads) },
    { name: `object index: buffers per object at ${n} (columns, handle table, arena)`, value: perObject, unit: 'B' },
    { name: `ObjectTable.find by label, ${n} objects (one match)`, value: m.ours, unit: 'ops/s', anchorName: 'Array.indexOf over the same labels (the floor of any scan)', anchorValue: m.raw, target: 'informative: before/after in docs/device.md' },
  ];
}

/** A sign with a key the table must rebuild on every call, beside the same sign with a kept key. */
function keyRebuildRows(): Row[] {
  const state = new DeviceState(storeOf(20));
  const rebuilding = new ObjectTable({ state, mode: 'NON_FIPS', isCryptoUser: () => true, keyCacheMax: 1 });
  const keeping = new ObjectTable({ state: new DeviceState(storeOf(20)), mode: 'NON_FIPS', isCryptoUser: () => true });
  const rows: Row[] = [];
  for (const [what, first, second, params] of [
    ['ECDSA P-256 sign (SHA-256, 64 B)', 10, 20, { mechanism: 'CKM_ECDSA_SHA256' }],
    ['HMAC-SHA-256 (64 B)', 7, 17, { mechanism: 'CKM_SHA256_HMAC' }],
  ] as const) {
    let turn = 0;
    const m = paired(
      () => rebuilding.sign(OWNER, turn++ % 2 === 0 ? first : second, params, DATA_64),
      () => keeping.sign(OWNER, first, params, DATA_64),
    );
    rows.push({ name: `${what}, the key rebuilt from its bytes on every use`, value: m.ours, unit: 'ops/s', anchorName: 'the same sign, key kept built', anchorValue: m.raw, target: 'informative: the cost of a key outside the cache' });
  }
  rebuilding.close();
  keeping.close();
  return rows;
}
