// Benchmarks of the crypto layer (src/crypto), each beside its raw node:crypto anchor from the
// same run: the raw-ECDSA-over-digest candidates (the reason ecdsa_raw.ts is built as it is),
// AES key wrap of a 32-byte key, and the segmented AEAD stream against one-shot AES-256-GCM.

import { createCipheriv, createHash, createHmac, createSecretKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { opsPerSecond, opsPerSecondAsync, type Row, type Section } from './harness.js';
import { signDigest, signDigestBatched, verifyDigest } from '../src/crypto/ecdsa_raw.js';
import { kwWrap } from '../src/crypto/aes_kw.js';
import { openStream, sealStream, AEAD_SEGMENT_BYTES_DEFAULT } from '../src/crypto/aead_stream.js';
import { deriveKeyCounterHmacSha256 } from '../src/crypto/kdf_sp800_108.js';
import { SecretBytes } from '../src/crypto/secret_bytes.js';

const MIB = 1024 * 1024;

async function ecdsaRows(): Promise<Row[]> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const message = randomBytes(64);
  const digest = createHash('sha256').update(message).digest();
  // d from the SEC 1 DER (30 77 02 01 01 04 20 d …), not a JWK: node 20 can deadlock exporting a
  // JWK of a generateKeyPairSync key (see src/crypto/ecdsa_raw.ts).
  const sec1 = privateKey.export({ format: 'der', type: 'sec1' });
  if (sec1.subarray(0, 7).toString('hex') !== '30770201010420') throw new Error('unexpected SEC 1 layout for P-256');
  const d = sec1.subarray(7, 39);
  const secretD = SecretBytes.copyOf(d);
  const q = p256.getPublicKey(d, false);
  const anchorName = 'node crypto.sign(sha256) P-256';
  const anchorValue = opsPerSecond(() => sign('sha256', message, privateKey));
  const sig = signDigest('P-256', privateKey, digest);
  const nodeVerify = opsPerSecond(() => verify('sha256', message, publicKey, sig));
  const nobleSig = p256.sign(digest, d, { prehash: false, lowS: false, format: 'der' });
  return [
    { name: 'raw ECDSA P-256 sign, OpenSSL keygen k·G + BigInt s (chosen)', value: opsPerSecond(() => signDigest('P-256', privateKey, digest)), unit: 'ops/s', anchorName, anchorValue },
    {
      name: 'raw ECDSA P-256 sign, rejection-sampled k, OpenSSL k·G + BigInt s',
      value: opsPerSecond(() => signDigest('P-256', privateKey, digest, { nonceSource: 'rejection-sampling' })),
      unit: 'ops/s',
      anchorName,
      anchorValue,
    },
    {
      name: 'raw ECDSA P-256 sign, scalar in SecretBytes (no KeyObject export)',
      value: opsPerSecond(() => signDigest('P-256', secretD, digest)),
      unit: 'ops/s',
      anchorName,
      anchorValue,
    },
    {
      // The node's path: the raw ECDSA SIGNs of one turn share one inversion; three at a time is
      // what the node receives per socket read through the PKCS#11 bridge at 8 sessions.
      name: 'raw ECDSA P-256 sign, scalar in SecretBytes, 3 per turn (signDigestBatched, one shared inversion)',
      value: await opsPerSecondAsync(() => signDigestBatched('P-256', secretD, digest), 3),
      unit: 'ops/s',
      anchorName,
      anchorValue,
    },
    {
      name: 'raw ECDSA P-256 sign, @noble/curves prehash:false (pure JS)',
      value: opsPerSecond(() => p256.sign(digest, d, { prehash: false, lowS: false, format: 'der' })),
      unit: 'ops/s',
      anchorName,
      anchorValue,
    },
    {
      name: 'raw ECDSA P-256 verify, OpenSSL t·G and u2·P + BigInt (chosen)',
      value: opsPerSecond(() => verifyDigest('P-256', publicKey, digest, sig)),
      unit: 'ops/s',
      anchorName: 'node crypto.verify(sha256) P-256',
      anchorValue: nodeVerify,
    },
    {
      name: 'raw ECDSA P-256 verify, @noble/curves prehash:false (pure JS)',
      value: opsPerSecond(() => p256.verify(nobleSig, digest, q, { prehash: false, lowS: false, format: 'der' })),
      unit: 'ops/s',
      anchorName: 'node crypto.verify(sha256) P-256',
      anchorValue: nodeVerify,
    },
  ];
}

function wrapRows(): Row[] {
  const kek = createSecretKey(randomBytes(32));
  const key = randomBytes(32);
  const iv = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
  const raw = opsPerSecond(() => {
    const c = createCipheriv('id-aes256-wrap', kek, iv);
    Buffer.concat([c.update(key), c.final()]);
  });
  const pbkBytes = randomBytes(32);
  const pbk = SecretBytes.copyOf(pbkBytes); // imported into OpenSSL on each call, as the anchor's key is
  const label = new TextEncoder().encode('coffer pbk v1');
  const context = randomBytes(40);
  return [
    { name: 'AES-KW wrap of a 32-byte key (AES-256 KEK)', value: opsPerSecond(() => kwWrap(kek, key)), unit: 'ops/s', anchorName: 'node id-aes256-wrap', anchorValue: raw },
    {
      name: 'SP 800-108 KDF, 32-byte key (HMAC-SHA-256)',
      value: opsPerSecond(() => deriveKeyCounterHmacSha256(pbk, label, context, 32).destroy()),
      unit: 'ops/s',
      anchorName: 'one node HMAC-SHA-256 call, same key',
      anchorValue: opsPerSecond(() => createHmac('sha256', pbkBytes).update(label).update(context).digest()),
    },
  ];
}

function streamRows(): Row[] {
  const key = randomBytes(32);
  const secret = SecretBytes.copyOf(key); // imported into OpenSSL on each call, as the anchor's key is
  const prefix = randomBytes(7);
  const aad = randomBytes(32);
  const data = randomBytes(MIB);
  const iv = randomBytes(12);
  const gcm = (): void => {
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(aad);
    c.update(data);
    c.final();
    c.getAuthTag();
  };
  const rawMib = opsPerSecond(gcm);
  const sealed = sealStream(secret, prefix, aad, data);
  return [
    {
      name: `AEAD stream seal, ${AEAD_SEGMENT_BYTES_DEFAULT / 1024} KiB segments (1 MiB buffers)`,
      value: opsPerSecond(() => sealStream(secret, prefix, aad, data)),
      unit: 'MiB/s',
      anchorName: 'one-shot AES-256-GCM, same bytes',
      anchorValue: rawMib,
    },
    {
      name: `AEAD stream open, ${AEAD_SEGMENT_BYTES_DEFAULT / 1024} KiB segments (1 MiB buffers)`,
      value: opsPerSecond(() => openStream(secret, prefix, aad, sealed)),
      unit: 'MiB/s',
      anchorName: 'one-shot AES-256-GCM, same bytes',
      anchorValue: rawMib,
    },
  ];
}

export async function run(): Promise<Section> {
  return {
    title: 'Crypto layer (src/crypto)',
    rows: [...(await ecdsaRows()), ...wrapRows(), ...streamRows()],
    notes: [
      'Raw ECDSA over a digest: node:crypto always hashes, so ecdsa_raw.ts gets k and k·G from OpenSSL (ECDH.generateKeys) and computes s = k⁻¹(e + r·d) mod n in BigInt with a blinded inversion; verification gets t·G and x(u2·(Q + t·G)) from OpenSSL with one BigInt point addition. The rows show why: both paths beat @noble/curves (pure JS) by a wide margin on this machine.',
      'The KeyObject rows read d from the key’s SEC 1 DER on every signature and keep nothing (docs/threat-model.md); the SecretBytes row skips that export, so the gap between them is its cost.',
      'The 3-per-turn row keeps three signatures outstanding: each turn signs them together with one inversion of the product of their blinded nonces (Montgomery’s trick), as the node does with the raw ECDSA SIGNs of one socket read.',
      'Stream throughput counts plaintext MiB per second; 1 MiB per call.',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const section = await run();
  for (const r of section.rows) {
    const ratio = r.anchorValue !== undefined ? ` (${(r.value / r.anchorValue).toFixed(2)} × ${r.anchorName ?? ''} ${Math.round(r.anchorValue)})` : '';
    console.log(`${r.name}: ${Math.round(r.value)} ${r.unit}${ratio}`);
  }
}
