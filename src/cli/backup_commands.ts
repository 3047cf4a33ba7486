// `coffer backup inspect FILE`: what a sealed backup says about itself, and whether its signature
// and certificate chain hold (docs/backup-format.md, "verifyBackup"), without any key. Prints a
// table, or one JSON object with --json. With --manufacturer-root and --operator-root it verifies
// against roots the user trusts; without them it can only check the chain against the roots the
// backup carries, which proves internal consistency, not provenance — the output says so.
// A backup that fails verification is still described, then the command fails with
// COFFER_BACKUP_UNTRUSTED (exit 1); input that is not a backup fails with the format's error; a
// file that cannot be read, or is not a regular file, is COFFER_CLI_INPUT.

import { basename } from 'node:path';
import type { Command } from 'commander';
import { fail, isCofferError } from '../errors.js';
import { AEAD_TAG_BYTES } from '../crypto/index.js';
import { BACKUP_TRAILER_BYTES, backupBlobBytes, readBackupHeader, verifyBackup, type BackupHeader, type BackupRoots, type BackupVerdict } from '../formats/backup.js';
import { FileSourceError, fileSource, type FileSource } from '../hsm/backup/file_source.js';
import { fingerprintSha256, parseCertificate, subjectField } from '../formats/x509.js';
import { readBytes } from '../factory/ceremony.js';
import { DEVELOPMENT_MARK } from '../formats/x509.js';
import { hex } from '../crypto/backup_keys.js';

/** Where command output goes; tests pass their own. */
export interface BackupIo {
  readonly out: (text: string) => void;
}

const defaultIo: BackupIo = { out: (text) => void process.stdout.write(text) };

interface InspectOptions {
  readonly json?: true;
  readonly manufacturerRoot?: string;
  readonly operatorRoot?: string;
}

/** Adds `backup inspect` to the `coffer` program. */
export function registerBackupCommands(program: Command, io: BackupIo = defaultIo): void {
  const backup = program.command('backup').description('sealed backups: inspect and verify without keys');
  backup
    .command('inspect')
    .description('print a backup\'s header, certificates and provenance, and verify its chain and signature')
    .argument('<file>', 'backup file')
    .option('--json', 'print one JSON object instead of a table')
    .option('--manufacturer-root <file>', 'Manufacturer Root CA certificate you trust (PEM or DER)')
    .option('--operator-root <file>', 'Operator Root CA certificate you trust (PEM or DER)')
    .action(async (file: string, opts: InspectOptions) => {
      await inspect(file, opts, io);
    });
}

async function inspect(file: string, opts: InspectOptions, io: BackupIo): Promise<void> {
  if ((opts.manufacturerRoot === undefined) !== (opts.operatorRoot === undefined)) fail('COFFER_CLI_USAGE', { reason: 'give both --manufacturer-root and --operator-root, or neither' });
  const source = openBackupFile(file);
  try {
    const header = readBackupHeader(source);
    const given = opts.manufacturerRoot !== undefined && opts.operatorRoot !== undefined
      ? { manufacturerRoot: readRoot(opts.manufacturerRoot), operatorRoot: readRoot(opts.operatorRoot) }
      : undefined;
    const verdict = await verifyBackup(source, given ?? { manufacturerRoot: header.certificates.manufacturerRoot, operatorRoot: header.certificates.operatorRoot });
    const report = buildReport(file, verdict, given);
    io.out(opts.json === true ? JSON.stringify(report, null, 2) + '\n' : renderText(report));
    if (!verdict.verified) fail('COFFER_BACKUP_UNTRUSTED', { problems: verdict.problems.length });
  } finally {
    source.close();
  }
}

/**
 * The file as a backup source, its failures in the CLI's words: COFFER_CLI_INPUT with the file
 * source's reason (unreadable-file, not-a-file) and the file's name. Typed errors (a file that
 * shrinks while it is read: COFFER_FORMAT_TRUNCATED) pass unchanged.
 */
export function openBackupFile(path: string): FileSource {
  const asCliInput = (e: unknown): never => {
    if (isCofferError(e)) throw e;
    const reason = e instanceof FileSourceError ? e.reason : 'unreadable-file';
    return fail('COFFER_CLI_INPUT', { reason, file: basename(path) }, e);
  };
  let source: FileSource;
  try {
    source = fileSource(path);
  } catch (e) {
    return asCliInput(e);
  }
  return {
    length: source.length,
    read: (offset, length) => {
      try {
        return source.read(offset, length);
      } catch (e) {
        return asCliInput(e);
      }
    },
    close: () => source.close(),
  };
}

/** A root file as the verifier wants it: PEM text, or DER bytes. */
function readRoot(path: string): string | Uint8Array {
  const bytes = readBytes(path);
  const text = Buffer.from(bytes).toString('latin1');
  return text.trimStart().startsWith('-----BEGIN') ? text : bytes;
}

// ── the report ──────────────────────────────────────────────────────────────────────────────

interface CertificateInfo {
  readonly role: string;
  readonly subject?: string;
  readonly issuer?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly fingerprintSha256: string;
  readonly development?: boolean;
  readonly unreadable?: true;
}

interface Report {
  readonly file: string;
  readonly header: ReturnType<typeof headerFacts>;
  readonly certificates: readonly CertificateInfo[];
  readonly provenance: { readonly deviceSerial: string; readonly manufacturer: string | null; readonly operator: string | null; readonly development: boolean };
  readonly verdict: {
    readonly verified: boolean;
    readonly trust: 'given-roots' | 'embedded-roots';
    readonly note: string;
    readonly roots: { readonly manufacturerSha256: string; readonly operatorSha256: string; readonly sameAsEmbedded: boolean };
    readonly problems: readonly string[];
  };
}

const EMBEDDED_NOTE = 'checked only against the roots carried inside the backup: this proves internal consistency, not that the backup comes from a device you trust (give --manufacturer-root and --operator-root)';
const GIVEN_NOTE = 'checked against the manufacturer and operator roots given on the command line';

function headerFacts(h: BackupHeader, verdict: BackupVerdict) {
  const segments = Math.max(1, Math.ceil(Number(h.bodyBytes) / (h.segmentBytes + AEAD_TAG_BYTES)));
  return {
    version: h.version, suite: h.suite, backupId: h.backupId, clusterId: h.clusterId, sourceHsmId: h.sourceHsmId, mode: h.mode,
    created: new Date(h.createdMs).toISOString(), createdMs: h.createdMs, journalPosition: h.journalPosition.toString(), firmwareVersion: h.firmwareVersion,
    records: h.recordCount, users: h.userCount, objects: h.objectCount,
    headerBytes: h.headerBytes, bodyBytes: Number(h.bodyBytes), segmentBytes: h.segmentBytes, segments, totalBytes: backupBlobBytes(h),
    mkbkId: hex(h.mkbkId), akbkId: hex(h.akbkId), bodySha256: verdict.bodySha256,
  };
}

function certificateInfo(role: string, der: Uint8Array): CertificateInfo {
  try {
    const c = parseCertificate(der);
    return {
      role, subject: c.subject, issuer: c.issuer, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(),
      fingerprintSha256: fingerprintSha256(c), development: (subjectField(c, 'O') ?? '').includes(DEVELOPMENT_MARK),
    };
  } catch {
    return { role, fingerprintSha256: fingerprintOf(der), unreadable: true };
  }
}

function fingerprintOf(input: string | Uint8Array): string {
  try {
    return fingerprintSha256(parseCertificate(input));
  } catch {
    return '(unreadable)';
  }
}

/** The organisation that issued a certificate (its issuer's O), or null. */
function issuerOrg(der: Uint8Array): string | null {
  try {
    return parseCertificate(der).issuerName.getField('O')[0] ?? null;
  } catch {
    return null;
  }
}

function buildReport(file: string, verdict: BackupVerdict, given: BackupRoots | undefined): Report {
  const h = verdict.header;
  const c = h.certificates;
  const certificates = [
    certificateInfo('device', c.device), certificateInfo('manufacturer root', c.manufacturerRoot),
    certificateInfo('operator', c.operator), certificateInfo('operator root', c.operatorRoot),
  ];
  const roots = given ?? { manufacturerRoot: c.manufacturerRoot, operatorRoot: c.operatorRoot };
  const manufacturerSha256 = fingerprintOf(roots.manufacturerRoot);
  const operatorSha256 = fingerprintOf(roots.operatorRoot);
  return {
    file,
    header: headerFacts(h, verdict),
    certificates,
    provenance: {
      deviceSerial: verdict.deviceSerial, manufacturer: issuerOrg(c.device), operator: issuerOrg(c.operator),
      development: certificates.some((i) => i.development === true),
    },
    verdict: {
      verified: verdict.verified,
      trust: given === undefined ? 'embedded-roots' : 'given-roots',
      note: given === undefined ? EMBEDDED_NOTE : GIVEN_NOTE,
      roots: {
        manufacturerSha256, operatorSha256,
        sameAsEmbedded: manufacturerSha256 === certificates[1]?.fingerprintSha256 && operatorSha256 === certificates[3]?.fingerprintSha256,
      },
      problems: verdict.problems,
    },
  };
}

// ── text ────────────────────────────────────────────────────────────────────────────────────

/** Strings from a backup go to a terminal: control and bidi characters are shown escaped. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const row = (label: string, value: string | number): string => `  ${label.padEnd(20)} ${typeof value === 'string' ? printable(value) : String(value)}\n`;

function renderText(r: Report): string {
  const h = r.header;
  let out = `Backup ${printable(r.file)}\n`;
  out += row('format', `version ${h.version}, suite ${h.suite}`);
  out += row('backup id', h.backupId) + row('cluster id', h.clusterId) + row('source HSM', h.sourceHsmId) + row('mode', h.mode);
  out += row('created', h.created) + row('journal position', h.journalPosition);
  out += row('firmware version', h.firmwareVersion === '' ? '(none)' : h.firmwareVersion);
  out += row('records', `${h.records} (${h.users} users, ${h.objects} objects)`);
  out += row('size', `${h.totalBytes} bytes: header ${h.headerBytes}, body ${h.bodyBytes} in ${h.segments} segment(s) of ${h.segmentBytes}, trailer ${BACKUP_TRAILER_BYTES}`);
  out += row('MKBK key id', h.mkbkId) + row('AKBK key id', h.akbkId) + row('body SHA-256', h.bodySha256);
  out += 'Certificates\n';
  for (const c of r.certificates) {
    if (c.unreadable === true) {
      out += row(c.role, '(unreadable)') + row('', `SHA-256 ${c.fingerprintSha256}`);
      continue;
    }
    out += row(c.role, c.subject ?? '') + row('', `issuer ${c.issuer ?? ''}`) + row('', `valid ${c.notBefore ?? ''} to ${c.notAfter ?? ''}`) + row('', `SHA-256 ${c.fingerprintSha256}`);
  }
  const p = r.provenance;
  out += 'Provenance\n' + row('device serial', p.deviceSerial === '' ? '(unreadable)' : p.deviceSerial);
  out += row('manufacturer', p.manufacturer ?? '(unknown)') + row('operator', p.operator ?? '(unknown)');
  out += row('development keys', p.development ? 'YES: certificates marked "(DEVELOPMENT KEY)"; not for production' : 'no');
  const v = r.verdict;
  out += 'Verdict\n' + row('trust', v.note);
  out += row('roots', `manufacturer SHA-256 ${v.roots.manufacturerSha256}`) + row('', `operator SHA-256 ${v.roots.operatorSha256}`);
  if (v.trust === 'given-roots') out += row('', v.roots.sameAsEmbedded ? 'the backup carries the same roots' : 'the backup carries other roots (informative only)');
  out += row('result', v.verified ? 'VERIFIED: chain and signature hold' : 'NOT VERIFIED');
  for (const problem of v.problems) out += row('problem', problem);
  return out;
}
