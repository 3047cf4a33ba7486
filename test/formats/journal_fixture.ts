// Test support for the journal entry format (not a test file): the known-answer vectors' inputs as
// committed in test/vectors/journal-v1/, and an independent build of an entry from
// docs/journal-format.md with node:crypto's raw primitives — hkdfSync, AES-256-GCM per segment,
// SHA-256, HMAC — and none of src/formats/journal_entry.ts or src/crypto/, so that the codec and the
// vectors are each checked against a second reading of the spec.

import { createCipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChangeKind, ChangeSet, RecordOp } from '../../src/formats/change_set.js';

/** test/vectors/journal-v1 in the source tree (this file runs from dist/test/formats/). */
export const VECTOR_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/vectors/journal-v1');

export interface VectorOp {
  readonly op: 'put' | 'delete';
  readonly ns: string;
  readonly id: string;
  /** put only: the value, hex; or, for a long value, `valueLabel` and `valueBytes` (see labelledBytes). */
  readonly value?: string;
  readonly valueLabel?: string;
  readonly valueBytes?: number;
}

export interface VectorInputs {
  readonly syncKey: string;
  readonly salt: string;
  readonly clusterId: string;
  readonly originator: string;
  readonly seq: string;
  readonly predecessor: string;
  readonly changeSet: { readonly scope: 'cluster'; readonly kind: ChangeKind; readonly ops: readonly VectorOp[] };
}

export interface VectorExpected {
  readonly syncKeyId: string;
  readonly headerBytes: number;
  readonly header: string;
  readonly entryKey: string;
  readonly plaintextBytes: number;
  readonly plaintextSha256: string;
  readonly segments: number;
  readonly bodyBytes: number;
  readonly entryBytes: number;
  readonly entrySha256: string;
  readonly chainHash: string;
}

export interface Vector {
  readonly description: string;
  readonly inputs: VectorInputs;
  readonly expected: VectorExpected;
}

/** `n` bytes of SHA-256(label ‖ " " ‖ block) blocks: fixed, reproducible and visibly not secret. */
export function labelledBytes(label: string, n: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < n; i++) blocks.push(createHash('sha256').update(`${label} ${i}`).digest());
  return Buffer.concat(blocks).subarray(0, n);
}

export function changeSetOf(inputs: VectorInputs): ChangeSet {
  const ops = inputs.changeSet.ops.map((o): RecordOp => {
    if (o.op === 'delete') return { op: 'delete', ns: o.ns, id: o.id };
    const value = o.value !== undefined ? Buffer.from(o.value, 'hex') : labelledBytes(o.valueLabel ?? '', o.valueBytes ?? 0);
    return { op: 'put', ns: o.ns, id: o.id, value: new Uint8Array(value) };
  });
  return { scope: inputs.changeSet.scope, kind: inputs.changeSet.kind, ops };
}

export function readVector(n: number): { vector: Vector; entry: Uint8Array } {
  const vector = JSON.parse(readFileSync(join(VECTOR_DIR, `vector-${n}.json`), 'utf8')) as Vector;
  return { vector, entry: new Uint8Array(readFileSync(join(VECTOR_DIR, `vector-${n}.bin`))) };
}

const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };
const str = (s: string): Buffer => Buffer.concat([Buffer.of(s.length), Buffer.from(s, 'ascii')]);

/** docs/journal-format.md "Genesis", read independently. */
export function specGenesis(clusterId: string): Buffer {
  return createHash('sha256').update(Buffer.concat([Buffer.from('coffer journal v1 genesis'), Buffer.of(0), Buffer.from(clusterId, 'ascii')])).digest();
}

export interface SpecEntry {
  readonly syncKeyId: Buffer;
  readonly header: Buffer;
  readonly entryKey: Buffer;
  readonly segments: number;
  readonly entry: Buffer;
  readonly chainHash: Buffer;
}

/** Builds an entry from the spec: header, HKDF entry key, STREAM body, chain hash. `plaintext` is
 * the encoded change set (the change-set codec is tested on its own). */
export function specEntry(inputs: VectorInputs, plaintext: Uint8Array): SpecEntry {
  const syncKey = Buffer.from(inputs.syncKey, 'hex');
  const salt = Buffer.from(inputs.salt, 'hex');
  const syncKeyId = createHmac('sha256', syncKey).update('coffer key id v1').digest().subarray(0, 8);
  const segmentBytes = 65_536;
  const segments = Math.max(1, Math.ceil(plaintext.length / segmentBytes));
  const bodyBytes = plaintext.length + 16 * segments;
  const strings = Buffer.concat([str(inputs.clusterId), str(inputs.originator)]);
  const headerLength = 94 + strings.length;
  const header = Buffer.concat([
    Buffer.from('CFJE', 'ascii'), u16(1), u16(1), u16(headerLength), u64(BigInt(inputs.seq)),
    Buffer.from(inputs.predecessor, 'hex'), syncKeyId, salt, u32(bodyBytes), strings,
  ]);
  const info = Buffer.concat([Buffer.from('coffer journal v1 entry key'), Buffer.of(0), createHash('sha256').update(header).digest()]);
  const entryKey = Buffer.from(hkdfSync('sha256', syncKey, salt, info, 32));
  const body: Buffer[] = [];
  for (let i = 0; i < segments; i++) {
    const nonce = Buffer.concat([Buffer.alloc(7), u32(i), Buffer.of(i === segments - 1 ? 1 : 0)]);
    const gcm = createCipheriv('aes-256-gcm', entryKey, nonce);
    gcm.setAAD(header);
    body.push(gcm.update(plaintext.subarray(i * segmentBytes, (i + 1) * segmentBytes)), gcm.final(), gcm.getAuthTag());
  }
  const entry = Buffer.concat([header, ...body]);
  const chainHash = createHash('sha256').update(Buffer.concat([Buffer.from('coffer journal v1 chain'), Buffer.of(0), entry])).digest();
  return { syncKeyId, header, entryKey, segments, entry, chainHash };
}
