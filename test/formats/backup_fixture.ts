// Test support for the backup codec (not a test file): a development manufacturer, operator and
// device identity, and blobs assembled from the codec's pieces exactly as docs/backup-format.md
// describes them (encode header, seal the encoded records with the header digest as AAD, sign
// prefix ‖ header ‖ body). `openBlob` does the reverse with the keys, so tests can show that a blob
// made from the pieces opens to the records it was made from.

import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { DeviceState } from '../../src/hsm/state/device_state.js';
import { DeviceIdentity } from '../../src/hsm/identity/identity.js';
import { createManufacturer, createOperator, issueDeviceCertificate, issueOperatorCertificate, type Manufacturer, type Operator } from '../../src/factory/ceremony.js';
import { keyId } from '../../src/crypto/backup_keys.js';
import { derOf, pemOf } from '../../src/formats/x509.js';
import { SecretBytes, kwUnwrap, kwWrap, openStream, sealStream } from '../../src/crypto/index.js';
import {
  BackupRecordReader, backupHeaderDigest, bodyBytesFor, decodeBackupHeader, encodeBackupHeader, encodeBackupRecord,
  encodeBackupTrailer, signedMessagePrefix, type BackupHeader, type BackupHeaderFields, type BackupMode, type BackupRecord, type BackupRoots,
} from '../../src/formats/backup.js';
import { derivePbk } from '../../src/hsm/backup/pbk.js';

export interface BackupFixture {
  readonly manufacturer: Manufacturer;
  readonly operator: Operator;
  readonly identity: DeviceIdentity;
  readonly deviceCert: Uint8Array;
  readonly operatorCert: Uint8Array;
  readonly mkbk: SecretBytes;
  readonly akbk: SecretBytes;
  readonly roots: BackupRoots;
}

/** A device identity certified by a fresh development manufacturer and operator. */
export async function createFixture(): Promise<BackupFixture> {
  const manufacturer = await createManufacturer({ development: true });
  const operator = await createOperator({ development: true });
  const identity = await DeviceIdentity.generate(new DeviceState(new MemoryRecordStore()));
  const device = await issueDeviceCertificate(manufacturer, identity.csrPem());
  const op = await issueOperatorCertificate(operator, pemOf(device));
  return {
    manufacturer, operator, identity,
    deviceCert: derOf(device), operatorCert: derOf(op),
    mkbk: manufacturer.mkbk, akbk: SecretBytes.random(32),
    roots: { manufacturerRoot: pemOf(manufacturer.rootCertificate), operatorRoot: derOf(operator.rootCertificate) },
  };
}

export const SAMPLE_RECORDS: readonly BackupRecord[] = [
  { ns: 'config', id: 'policy', value: new TextEncoder().encode('{"fips":false}') },
  { ns: 'object', id: '00000001', value: new Uint8Array([1, 2, 3, 4, 5]) },
  { ns: 'object', id: '00000002', value: new Uint8Array(0) },
  { ns: 'quorum', id: 'user-management', value: new Uint8Array([2]) },
  { ns: 'user', id: 'admin', value: new Uint8Array(40).fill(7) },
  { ns: 'user', id: 'alice', value: new Uint8Array(33).fill(9) },
];

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface Assembled {
  readonly blob: Uint8Array;
  readonly header: Uint8Array;
  readonly body: Uint8Array;
  readonly fields: BackupHeaderFields;
}

export interface AssembleOptions {
  readonly mode?: BackupMode;
  readonly segmentBytes?: number;
  readonly overrides?: Partial<BackupHeaderFields>;
  /** Signs with this instead of the fixture's identity (a foreign device). */
  readonly signer?: DeviceIdentity;
}

/** A complete v1 blob of `records` (sorted as given), sealed and signed as the spec says. */
export function assembleBackup(fx: BackupFixture, records: readonly BackupRecord[] = SAMPLE_RECORDS, opts: AssembleOptions = {}): Assembled {
  const mode = opts.mode ?? 'NON_FIPS';
  const segmentBytes = opts.segmentBytes ?? 64;
  const plaintext = concat(...records.map(encodeBackupRecord));
  const mkbkId = fx.mkbk.use(keyId);
  const akbkId = fx.akbk.use(keyId);
  const bek = SecretBytes.random(32);
  const pbk = derivePbk(fx.mkbk, fx.akbk, mode, mkbkId, akbkId);
  try {
    const fields: BackupHeaderFields = {
      mode, createdMs: 1_750_000_000_123, journalPosition: 42n, mkbkId, akbkId,
      recordCount: records.length,
      userCount: records.filter((r) => r.ns === 'user').length,
      objectCount: records.filter((r) => r.ns === 'object').length,
      bodyBytes: bodyBytesFor(plaintext.length, segmentBytes), segmentBytes,
      noncePrefix: new Uint8Array([1, 2, 3, 4, 5, 6, 7]),
      wrappedBek: bek.use((b) => kwWrap(pbk, b)),
      backupId: 'backup-abcdefghijk', clusterId: 'cluster-234567abcde', sourceHsmId: fx.identity.serial, firmwareVersion: '0.1.0',
      certificates: { device: fx.deviceCert, manufacturerRoot: derOf(fx.manufacturer.rootCertificate), operator: fx.operatorCert, operatorRoot: derOf(fx.operator.rootCertificate) },
      ...opts.overrides,
    };
    const header = encodeBackupHeader(fields);
    const body = sealStream(bek, fields.noncePrefix, backupHeaderDigest(header), plaintext, segmentBytes);
    const signature = (opts.signer ?? fx.identity).sign(concat(signedMessagePrefix(), header, body));
    return { blob: concat(header, body, encodeBackupTrailer(signature)), header, body, fields };
  } finally {
    bek.destroy();
    pbk.destroy();
    plaintext.fill(0);
  }
}

/** Opens a blob with the keys: unwrap the BEK under the PBK, open the stream, parse the records. */
export function openBlob(fx: BackupFixture, blob: Uint8Array): { header: BackupHeader; records: BackupRecord[] } {
  const size = new DataView(blob.buffer, blob.byteOffset).getUint32(8);
  const header = decodeBackupHeader(blob.subarray(0, size));
  const pbk = derivePbk(fx.mkbk, fx.akbk, header.mode, header.mkbkId, header.akbkId);
  const bek = SecretBytes.adopt(kwUnwrap(pbk, header.wrappedBek));
  try {
    const body = blob.subarray(size, size + Number(header.bodyBytes));
    const plain = openStream(bek, header.noncePrefix, backupHeaderDigest(blob.subarray(0, size)), body, header.segmentBytes);
    const reader = new BackupRecordReader({ records: header.recordCount, users: header.userCount, objects: header.objectCount });
    const records = reader.push(plain);
    reader.finish();
    return { header, records };
  } finally {
    bek.destroy();
    pbk.destroy();
  }
}
