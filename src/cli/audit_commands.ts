// `coffer audit verify FILE|DIR --manufacturer-root F --operator-root F`: checks a collected audit log
// offline (docs/audit.md "Verification", src/formats/audit_verify.ts) — the chain, the checkpoint
// signatures against the certified device key, gaps — and names the first bad record. FILE is an
// audit bundle (an archived chunk, the management route's page) or a JSON-lines export of the
// control plane's audit endpoint; DIR holds such files (an HSM's folder of the archive), read in
// the order of their first record. Prints a summary, or the report as JSON with --json. A log that
// does not verify fails with COFFER_AUDIT_UNVERIFIED (exit 1) after its report is printed.

import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { fail, isCofferError } from '../errors.js';
import { AUDIT_BUNDLE_MAGIC, decodeAuditBundle, decodeAuditRecord, type AuditBundle } from '../formats/audit_record.js';
import { parseAuditJsonLines } from '../formats/audit_json.js';
import { verifyAuditBundles, type AuditReport } from '../formats/audit_verify.js';
import { certifiedSerial } from '../formats/device_chain.js';
import { readBytes } from '../factory/ceremony.js';

/** Where command output goes; tests pass their own. */
export interface AuditIo {
  readonly out: (text: string) => void;
}

const defaultIo: AuditIo = { out: (text) => void process.stdout.write(text) };

/** Files in a directory the command reads: an HSM's folder holds one chunk per collection. */
const AUDIT_DIR_FILES_MAX = 100_000;

interface VerifyOptions {
  readonly manufacturerRoot: string;
  readonly operatorRoot: string;
  readonly serial?: string;
  readonly json?: true;
}

export function registerAuditCommands(program: Command, io: AuditIo = defaultIo): void {
  const audit = program.command('audit').description('HSM audit logs: verify offline');
  audit
    .command('verify')
    .description('verify a collected audit log (a bundle, a JSON-lines export, or a folder of them): chain, signatures, gaps')
    .argument('<path>', 'audit bundle, JSON-lines export, or a folder of them')
    .requiredOption('--manufacturer-root <file>', 'Manufacturer Root CA certificate you trust (PEM or DER)')
    .requiredOption('--operator-root <file>', 'Operator Root CA certificate you trust (PEM or DER)')
    .option('--serial <serial>', 'the HSM serial the log must belong to')
    .option('--json', 'print the report as one JSON object')
    .action((path: string, opts: VerifyOptions) => {
      verifyCommand(path, opts, io);
    });
}

function verifyCommand(path: string, opts: VerifyOptions, io: AuditIo): void {
  const bundles = readAuditPath(path, opts.serial);
  const report = verifyAuditBundles({
    bundles, manufacturerRoot: readRoot(opts.manufacturerRoot), operatorRoot: readRoot(opts.operatorRoot), atMs: Date.now(),
    ...(opts.serial === undefined ? {} : { expectedSerial: opts.serial }),
  });
  io.out(opts.json === true ? JSON.stringify(jsonOf(report), null, 2) + '\n' : textOf(report));
  if (!report.ok) fail('COFFER_AUDIT_UNVERIFIED', { reason: report.failure?.reason ?? 'unknown', seq: report.failure?.seq?.toString() ?? 'none' });
}

/**
 * The bundles in a file or a folder, the folder's in the order of their first record. In a folder,
 * files that are not audit logs (no bundle magic, not `.jsonl`) are passed over, and with `serial`
 * only that device's bundles are kept: the filesystem archive keeps every HSM's chunks and the
 * backups in one directory.
 */
export function readAuditPath(path: string, serial?: string): AuditBundle[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    return fail('COFFER_CLI_INPUT', { reason: 'unreadable-file', file: basename(path) }, e);
  }
  if (!isDir) return readAuditFile(path);
  const names = readdirSync(path).filter((n) => statSync(join(path, n)).isFile()).sort();
  if (names.length > AUDIT_DIR_FILES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'files', max: AUDIT_DIR_FILES_MAX });
  const bundles = names.filter((n) => isAuditFile(join(path, n))).flatMap((n) => readAuditFile(join(path, n))).filter((b) => serial === undefined || serialOf(b) !== undefined && serialOf(b) === serial);
  return bundles.map((b, i) => ({ b, i, first: firstSeq(b) })).sort((x, y) => (x.first === y.first ? x.i - y.i : x.first < y.first ? -1 : 1)).map((x) => x.b);
}

function isAuditFile(path: string): boolean {
  if (path.endsWith('.jsonl')) return true;
  const head = Buffer.alloc(AUDIT_BUNDLE_MAGIC.length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return AUDIT_BUNDLE_MAGIC.every((m, i) => head[i] === m);
}

/** The serial the bundle's device certificate names (undefined when it cannot be read: the verifier reports it). */
function serialOf(b: AuditBundle): string | undefined {
  try {
    return certifiedSerial(b.deviceCertificateDer);
  } catch {
    return undefined;
  }
}

function readAuditFile(path: string): AuditBundle[] {
  const bytes = readBytes(path);
  try {
    if (AUDIT_BUNDLE_MAGIC.every((m, i) => bytes[i] === m)) return [decodeAuditBundle(bytes)];
    return parseAuditJsonLines(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    if (isCofferError(e)) throw e;
    return fail('COFFER_CLI_INPUT', { reason: 'not-an-audit-log', file: basename(path) }, e);
  }
}

/** Where a bundle starts (a bundle whose first record does not decode sorts first: it is reported). */
function firstSeq(b: AuditBundle): bigint {
  const first = b.records[0];
  if (first === undefined) return -1n;
  try {
    return decodeAuditRecord(first).seq;
  } catch {
    return -1n;
  }
}

function readRoot(path: string): string | Uint8Array {
  const bytes = readBytes(path);
  const text = Buffer.from(bytes).toString('latin1');
  return text.trimStart().startsWith('-----BEGIN') ? text : bytes;
}

function jsonOf(r: AuditReport): Record<string, unknown> {
  const f = r.failure;
  return {
    ok: r.ok, serial: r.serial ?? null, firstSeq: r.firstSeq?.toString() ?? null, lastSeq: r.lastSeq?.toString() ?? null, records: r.records, checkpoints: r.checkpoints,
    failure: f === undefined ? null : { reason: f.reason, seq: f.seq?.toString() ?? null, bundle: f.bundle, index: f.index, detail: f.detail ?? null },
  };
}

function textOf(r: AuditReport): string {
  const lines = [
    `device:      ${r.serial ?? '(unknown)'}`,
    `records:     ${r.records} (seq ${r.firstSeq?.toString() ?? '-'} to ${r.lastSeq?.toString() ?? '-'}), ${r.checkpoints} signed checkpoints`,
  ];
  if (r.firstSeq !== undefined && r.firstSeq > 0n) lines.push(`note:        the log starts at seq ${r.firstSeq}: older records were dropped after collection, or are missing`);
  const f = r.failure;
  if (f === undefined) lines.push('verdict:     verified (chain, signatures and sequence hold)');
  else {
    const where = f.seq === null ? `bundle ${f.bundle}, record ${f.index}` : `seq ${f.seq} (bundle ${f.bundle}, record ${f.index})`;
    lines.push(`verdict:     NOT VERIFIED: first bad record at ${where}: ${f.reason}${f.detail === undefined ? '' : ` (${f.detail})`}`);
  }
  return lines.join('\n') + '\n';
}
