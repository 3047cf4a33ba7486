// `coffer audit verify FILE|DIR --manufacturer-root F --operator-root F`: checks a collected audit log
// offline (docs/audit.md "Verification", src/formats/audit_verify.ts) — the chain, the checkpoint
// signatures against the certified device key, gaps — and names the first bad record. FILE is an
// audit bundle (an archived chunk, the management route's page) or a JSON-lines export of the
// control plane's audit endpoint; DIR holds such files (an HSM's folder of the archive), read in
// the order of their first record. Prints a summary, or the report as JSON with --json. A log that
// does not verify fails with COFFER_AUDIT_UNVERIFIED (exit 1) after its report is printed.
//
// `coffer audit export SERIAL --endpoint-url URL [--region R] [--from N] [--out FILE]`: fetches an
// HSM's archived log from the control plane's audit endpoint (GET /audit/<serial>, SigV4 with the
// AWS credentials found as the AWS CLI finds them), page after page, and writes the JSON lines as
// they came; `coffer audit verify` then checks the file offline, trusting nothing the service said.

import { closeSync, openSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { fail, isCofferError } from '../errors.js';
import { AUDIT_BUNDLE_MAGIC, decodeAuditBundle, decodeAuditRecord, type AuditBundle } from '../formats/audit_record.js';
import { parseAuditJsonLines } from '../formats/audit_json.js';
import { verifyAuditBundles, type AuditReport } from '../formats/audit_verify.js';
import { certifiedSerial } from '../formats/device_chain.js';
import { readBytes } from '../factory/ceremony.js';
import { awsCredentials } from '../client/control_plane.js';
import { amzDate, authorization } from '../formats/sigv4.js';

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
  audit
    .command('export')
    .description('fetch an HSM\'s archived audit log from the control plane as JSON lines (docs/audit.md "Endpoint")')
    .argument('<serial>', 'the HSM serial (CFR-…)')
    .requiredOption('--endpoint-url <url>', 'the service\'s API endpoint, e.g. http://127.0.0.1:8443')
    .option('--region <region>', 'the service\'s region (default: AWS_REGION)')
    .option('--from <seq>', 'the first sequence number wanted', '0')
    .option('--out <file>', 'write the lines to this file (default: stdout)')
    .action(async (serial: string, opts: ExportOptions) => {
      await exportCommand(serial, opts, io);
    });
}

interface ExportOptions {
  readonly endpointUrl: string;
  readonly region?: string;
  readonly from: string;
  readonly out?: string;
}

/** One answer of the endpoint: AUDIT_EXPORT_CHUNKS_MAX chunks of at most 4096 records, well under this. */
const EXPORT_ANSWER_BYTES_MAX = 256 * 1024 * 1024;
/** Answers fetched in one export: about 64 million records; a service that never ends is cut off. */
const EXPORT_PAGES_MAX = 1024;
const EXPORT_CALL_TIMEOUT_MS = 120_000;

async function exportCommand(serial: string, opts: ExportOptions, io: AuditIo): Promise<void> {
  if (!/^CFR-[0-9A-F]{16}$/.test(serial)) fail('COFFER_CLI_USAGE', { reason: 'the serial must be CFR- and 16 hex digits' });
  if (!/^(0|[1-9][0-9]{0,19})$/.test(opts.from)) fail('COFFER_CLI_USAGE', { reason: '--from must be a sequence number' });
  let url: URL;
  try {
    url = new URL(opts.endpointUrl);
  } catch {
    return fail('COFFER_CLI_USAGE', { reason: '--endpoint-url must be an http(s) URL' });
  }
  const region = opts.region ?? (process.env['AWS_REGION'] || process.env['AWS_DEFAULT_REGION'] || '');
  if (!/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(region)) fail('COFFER_CLI_USAGE', { reason: '--region is required (or AWS_REGION), e.g. us-east-1' });
  const lines: string[] = [];
  let from = BigInt(opts.from);
  for (let page = 0; page < EXPORT_PAGES_MAX; page++) {
    const answer = await fetchAuditPage(url, region, serial, from);
    if (answer === undefined) break;
    lines.push(...answer.lines);
    if (answer.lastSeq === null) break;
    from = BigInt(answer.lastSeq) + 1n;
  }
  if (lines.length === 0) fail('COFFER_SERVICE_REFUSED', { type: 'CloudHsmResourceNotFoundException', reason: 'no audit records archived for this HSM from there' });
  const text = lines.map((l) => l + '\n').join('');
  if (opts.out === undefined) io.out(text);
  else writeFileSync(opts.out, text, { mode: 0o644 });
}

/** One signed GET; its lines and last seq, or undefined when nothing is archived from `from`. */
async function fetchAuditPage(url: URL, region: string, serial: string, from: bigint): Promise<{ lines: string[]; lastSeq: string | null } | undefined> {
  const path = `/audit/${serial}`;
  const query = `from=${from.toString(10)}`;
  const date = amzDate(Date.now());
  const headers: [string, string][] = [['host', url.host], ['x-amz-date', date]];
  const auth = authorization({ method: 'GET', target: `${path}?${query}`, headers, body: new Uint8Array(0) }, headers.map(([n]) => n), awsCredentials(process.env), region, 'cloudhsm', date);
  let res: Response;
  try {
    res = await fetch(new URL(`${path}?${query}`, url), { method: 'GET', headers: { 'x-amz-date': date, authorization: auth }, signal: AbortSignal.timeout(EXPORT_CALL_TIMEOUT_MS) });
  } catch (e) {
    return fail('COFFER_SERVICE_UNREACHABLE', { reason: e instanceof Error && e.name === 'TimeoutError' ? 'timeout' : 'connection failed' });
  }
  if (Number(res.headers.get('content-length') ?? '0') > EXPORT_ANSWER_BYTES_MAX) fail('COFFER_SERVICE_REFUSED', { reason: 'answer too large', status: res.status });
  const text = await res.text();
  if (res.status !== 200) {
    const type = (() => {
      try {
        const t = (JSON.parse(text) as { __type?: unknown }).__type;
        return typeof t === 'string' ? t.slice(0, 64) : String(res.status);
      } catch {
        return String(res.status);
      }
    })();
    if (type === 'CloudHsmResourceNotFoundException') return undefined;
    return fail('COFFER_SERVICE_REFUSED', { type, status: res.status });
  }
  const lines = text.split('\n').filter((l) => l !== '');
  const last = lines.at(-1);
  let lastSeq: string | null = null;
  try {
    const v = JSON.parse(last ?? '{}') as { type?: unknown; lastSeq?: unknown };
    if (v.type === 'verification' && typeof v.lastSeq === 'string' && /^[0-9]{1,20}$/.test(v.lastSeq)) lastSeq = v.lastSeq;
  } catch {
    return fail('COFFER_SERVICE_REFUSED', { reason: 'answer is not JSON lines', status: res.status });
  }
  return { lines, lastSeq };
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
