// Makes the known-answer vectors of journal entry format v1 (README.txt). Kept to show how the
// bytes were made; it refuses to overwrite a vector (vectors are never regenerated).
//
//   npx tsc -p tsconfig.json && node dist/test/vectors/journal-v1/make_vector.js --write test/vectors/journal-v1

import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import { encodeChangeSet } from '../../../src/formats/change_set.js';
import { journalGenesis, sealJournalEntry } from '../../../src/formats/journal_entry.js';
import { changeSetOf, labelledBytes, specEntry, specGenesis, type Vector, type VectorInputs } from '../../formats/journal_fixture.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const CLUSTER = 'cluster-abcdefghijk';
const SYNC_KEY = hex(labelledBytes('coffer journal-v1 vector sync key', 32));

/** Vector 1: entry 1 of a cluster, a key generation (two writes) in one segment. Vector 2: entry 2,
 * after vector 1, an attribute change whose 70,000-byte value needs two segments, and a delete. */
function inputs(): VectorInputs[] {
  const first: VectorInputs = {
    syncKey: SYNC_KEY,
    salt: hex(labelledBytes('coffer journal-v1 vector salt 1', 32)),
    clusterId: CLUSTER,
    originator: 'CFR-0123456789ABCDEF',
    seq: '1',
    predecessor: hex(journalGenesis(CLUSTER)),
    changeSet: {
      scope: 'cluster', kind: 'key.generate', ops: [
        { op: 'put', ns: 'config', id: 'objects.next-handle', value: '0000000000000002' },
        { op: 'put', ns: 'object', id: '0000000000000001', value: hex(labelledBytes('coffer journal-v1 vector object 1', 48)) },
      ],
    },
  };
  return [first, {
    syncKey: SYNC_KEY,
    salt: hex(labelledBytes('coffer journal-v1 vector salt 2', 32)),
    clusterId: CLUSTER,
    originator: 'CFR-FEDCBA9876543210',
    seq: '2',
    predecessor: '', // the chain hash of vector 1, filled in below
    changeSet: {
      scope: 'cluster', kind: 'key.attribute', ops: [
        { op: 'put', ns: 'object', id: '0000000000000001', valueLabel: 'coffer journal-v1 vector object 1 large', valueBytes: 70_000 },
        { op: 'delete', ns: 'object', id: '0000000000000002' },
      ],
    },
  }];
}

function make(dir: string): void {
  for (const f of ['vector-1.bin', 'vector-1.json', 'vector-2.bin', 'vector-2.json']) if (existsSync(join(dir, f))) throw new Error(`${f} exists: vectors are never regenerated`);
  let predecessor = '';
  for (const [i, raw] of inputs().entries()) {
    const n = i + 1;
    const v: VectorInputs = raw.predecessor === '' ? { ...raw, predecessor } : raw;
    if (n === 1 && v.predecessor !== hex(specGenesis(CLUSTER))) throw new Error('genesis differs between the codec and the spec');
    const plaintext = encodeChangeSet(changeSetOf(v));
    const spec = specEntry(v, plaintext);
    const key = SecretBytes.copyOf(Buffer.from(v.syncKey, 'hex'));
    const sealed = sealJournalEntry({
      syncKey: key, clusterId: v.clusterId, originator: v.originator, seq: BigInt(v.seq), predecessor: Buffer.from(v.predecessor, 'hex'),
      salt: Buffer.from(v.salt, 'hex'), changeSet: changeSetOf(v),
    });
    key.destroy();
    if (hex(sealed.entry) !== hex(spec.entry) || hex(sealed.hash) !== hex(spec.chainHash)) throw new Error(`vector ${n}: the codec and the spec disagree`);
    const vector: Vector = {
      description: `Coffer journal entry format v1, known-answer vector ${n} (test/vectors/journal-v1/README.txt)`,
      inputs: v,
      expected: {
        syncKeyId: hex(spec.syncKeyId), headerBytes: spec.header.length, header: hex(spec.header), entryKey: hex(spec.entryKey),
        plaintextBytes: plaintext.length, plaintextSha256: createHash('sha256').update(plaintext).digest('hex'), segments: spec.segments,
        bodyBytes: spec.entry.length - spec.header.length, entryBytes: spec.entry.length, entrySha256: createHash('sha256').update(spec.entry).digest('hex'),
        chainHash: hex(spec.chainHash),
      },
    };
    writeFileSync(join(dir, `vector-${n}.json`), JSON.stringify(vector, null, 2) + '\n', { flag: 'wx' });
    writeFileSync(join(dir, `vector-${n}.bin`), spec.entry, { flag: 'wx' });
    predecessor = hex(spec.chainHash);
  }
}

const at = process.argv.indexOf('--write');
const out = at === -1 ? undefined : process.argv[at + 1];
if (out !== undefined) make(out);
