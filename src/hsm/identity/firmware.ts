// Firmware digest and signed manifest (docs/architecture.md §4: "Firmware" = the node's code, hashed into a
// manifest that the manufacturer signs; a node enters FIPS mode only if its manifest verifies).
//
// Digest v1 (all integers big-endian):
//   SHA-256( "coffer firmware digest v1" 0x00
//            u32 file count
//            for each file, in ascending byte order of its path:
//              u32 path length ‖ path (UTF-8, relative to the root, "/" separators)
//              u64 content length ‖ content )
// The files are every regular file under the root whose name ends in ".js" (by default the built
// dist/src tree: the code a node runs; .d.ts and .map files are not code). Lengths prefix every
// field, so no two different trees encode to the same input. A symbolic link anywhere below the
// root is refused: it could make the node load code that the digest never saw.
//
// Manifest v1 is JSON: { formatVersion: 1, product, version, digest (hex), algorithm, signature
// (base64) }. The signature is ECDSA P-384 over SHA-384 in IEEE P1363 form (r ‖ s, FIPS 186-5
// §6.4) over "coffer firmware manifest v1" 0x00 ‖ u32 len ‖ product ‖ u32 len ‖ version ‖ digest.

import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../../errors.js';
import { FIRMWARE_FILE_BYTES_MAX, FIRMWARE_FILES_MAX, MANIFEST_JSON_BYTES_MAX } from '../../formats/limits.js';
import { p384PublicKey } from '../../formats/x509.js';

export const FIRMWARE_MANIFEST_VERSION = 1;
export const FIRMWARE_SIGNATURE_ALGORITHM = 'ECDSA-P384-SHA384';
const DIGEST_DOMAIN = 'coffer firmware digest v1\0';
const MANIFEST_DOMAIN = 'coffer firmware manifest v1\0';
const DIGEST_BYTES = 32;
const P384_SIGNATURE_BYTES = 96;
const TEXT_CHARS_MAX = 128;

export interface FirmwareManifest {
  readonly formatVersion: number;
  readonly product: string;
  readonly version: string;
  /** SHA-256 firmware digest, lower-case hex. */
  readonly digest: string;
  readonly algorithm: string;
  /** Base64 of the 96-byte P1363 signature. */
  readonly signature: string;
}

export type FirmwareCheck =
  | { readonly verified: true }
  | { readonly verified: false; readonly reason: 'UNKNOWN_FORMAT_VERSION' | 'UNKNOWN_ALGORITHM' | 'BAD_SIGNATURE' | 'DIGEST_MISMATCH' };

/** The code this process runs: dist/src, two folders above this module. */
export function defaultFirmwareRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../..');
}

/** Digest v1 of the code under `rootDir` (see the header). Deterministic across hosts. */
export function computeFirmwareDigest(rootDir: string = defaultFirmwareRoot()): Uint8Array {
  const paths = listCodeFiles(rootDir);
  const h = createHash('sha256');
  h.update(DIGEST_DOMAIN, 'utf8');
  h.update(u32(paths.length));
  for (const rel of paths) {
    const content = readFileSync(join(rootDir, ...rel.split('/')));
    const pathBytes = Buffer.from(rel, 'utf8');
    h.update(u32(pathBytes.length)).update(pathBytes);
    h.update(u64(content.length)).update(content);
  }
  return new Uint8Array(h.digest());
}

/** Relative "/"-separated paths of the .js files under root, sorted by UTF-8 bytes. */
function listCodeFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir)) {
      const st = lstatSync(join(dir, name));
      const rel = prefix === '' ? name : `${prefix}/${name}`;
      if (st.isSymbolicLink()) fail('COFFER_FIRMWARE_UNVERIFIED', { reason: 'symbolic-link-in-code' });
      if (st.isDirectory()) walk(join(dir, name), rel);
      else if (st.isFile() && name.endsWith('.js')) {
        if (st.size > FIRMWARE_FILE_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'FIRMWARE_FILE_BYTES_MAX' });
        found.push(rel);
      }
      if (found.length > FIRMWARE_FILES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'FIRMWARE_FILES_MAX' });
    }
  };
  walk(root, '');
  return found.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

/** Signs a manifest for `digest` with the manufacturer's firmware signing key (P-384). */
export function signFirmwareManifest(
  signingKey: KeyObject,
  fields: { readonly product: string; readonly version: string; readonly digest: Uint8Array },
): FirmwareManifest {
  checkText(fields.product);
  checkText(fields.version);
  if (fields.digest.length !== DIGEST_BYTES) fail('COFFER_CRYPTO_INPUT_LENGTH', { expected: DIGEST_BYTES });
  const signature = sign('sha384', signedBytes(fields.product, fields.version, fields.digest), { key: signingKey, dsaEncoding: 'ieee-p1363' });
  return {
    formatVersion: FIRMWARE_MANIFEST_VERSION,
    product: fields.product,
    version: fields.version,
    digest: Buffer.from(fields.digest).toString('hex'),
    algorithm: FIRMWARE_SIGNATURE_ALGORITHM,
    signature: signature.toString('base64'),
  };
}

/**
 * Verifies `manifest` under the firmware signing public key (SPKI DER) and compares its digest
 * with the digest of the code actually present. Never throws for a bad manifest: it reports why.
 */
export function verifyFirmware(manifest: FirmwareManifest, signingPublicKeySpki: Uint8Array, actualDigest: Uint8Array): FirmwareCheck {
  if (manifest.formatVersion !== FIRMWARE_MANIFEST_VERSION) return { verified: false, reason: 'UNKNOWN_FORMAT_VERSION' };
  if (manifest.algorithm !== FIRMWARE_SIGNATURE_ALGORITHM) return { verified: false, reason: 'UNKNOWN_ALGORITHM' };
  const digest = Buffer.from(manifest.digest, 'hex');
  const signature = Buffer.from(manifest.signature, 'base64');
  const wellFormed =
    digest.length === DIGEST_BYTES && digest.toString('hex') === manifest.digest &&
    signature.length === P384_SIGNATURE_BYTES && signature.toString('base64') === manifest.signature;
  const key = p384PublicKey(signingPublicKeySpki);
  const ok = wellFormed && verify('sha384', signedBytes(manifest.product, manifest.version, digest), { key, dsaEncoding: 'ieee-p1363' }, signature);
  if (!ok) return { verified: false, reason: 'BAD_SIGNATURE' };
  if (actualDigest.length !== DIGEST_BYTES || Buffer.compare(digest, actualDigest) !== 0) return { verified: false, reason: 'DIGEST_MISMATCH' };
  return { verified: true };
}

/** The manifest as the JSON text written to disk. */
export function encodeFirmwareManifest(manifest: FirmwareManifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}

/** Parses manifest JSON, checking shape and limits; the signature is checked by verifyFirmware. */
export function parseFirmwareManifest(text: string): FirmwareManifest {
  if (text.length > MANIFEST_JSON_BYTES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'MANIFEST_JSON_BYTES_MAX' });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return fail('COFFER_FORMAT_MALFORMED', { what: 'firmware-manifest' }, e);
  }
  if (typeof v !== 'object' || v === null) fail('COFFER_FORMAT_MALFORMED', { what: 'firmware-manifest' });
  const o = v as Record<string, unknown>;
  if (o['formatVersion'] !== FIRMWARE_MANIFEST_VERSION) fail('COFFER_FORMAT_UNKNOWN_VERSION', { what: 'firmware-manifest', supported: FIRMWARE_MANIFEST_VERSION });
  const s = (k: string): string => {
    const x = o[k];
    if (typeof x !== 'string' || x.length > TEXT_CHARS_MAX * 2) return fail('COFFER_FORMAT_MALFORMED', { what: 'firmware-manifest', field: k });
    return x;
  };
  return { formatVersion: FIRMWARE_MANIFEST_VERSION, product: s('product'), version: s('version'), digest: s('digest'), algorithm: s('algorithm'), signature: s('signature') };
}

function signedBytes(product: string, version: string, digest: Uint8Array): Buffer {
  const p = Buffer.from(product, 'utf8');
  const v = Buffer.from(version, 'utf8');
  return Buffer.concat([Buffer.from(MANIFEST_DOMAIN, 'utf8'), u32(p.length), p, u32(v.length), v, digest]);
}

function checkText(s: string): void {
  if (s.length === 0 || s.length > TEXT_CHARS_MAX) fail('COFFER_FORMAT_MALFORMED', { what: 'firmware-manifest-text' });
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
