// `coffer backup inspect` (src/cli/backup_commands.ts) on blobs assembled from the codec's pieces
// (test/formats/backup_fixture.ts): the table and the JSON, trust against given roots versus the
// embedded ones, refusals of input that is not a backup, and once as a process through main.ts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { openBackupFile, registerBackupCommands } from '../../src/cli/backup_commands.js';
import { createManufacturer } from '../../src/factory/ceremony.js';
import { keyId } from '../../src/crypto/backup_keys.js';
import { derOf, fingerprintSha256, pemOf } from '../../src/formats/x509.js';
import { SAMPLE_RECORDS, assembleBackup, createFixture, type BackupFixture } from '../formats/backup_fixture.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

let fx: BackupFixture;
let work: string;
const at = (...p: string[]): string => join(work, ...p);
before(async () => {
  fx = await createFixture();
  work = mkdtempSync(join(tmpdir(), 'coffer-inspect-'));
  writeFileSync(at('good.cfbk'), assembleBackup(fx).blob);
  writeFileSync(at('m-root.pem'), pemOf(fx.manufacturer.rootCertificate));
  writeFileSync(at('o-root.der'), derOf(fx.operator.rootCertificate));
  writeFileSync(at('other-root.pem'), pemOf((await createManufacturer({ development: true })).rootCertificate));
  // Input that is not a (whole) backup.
  writeFileSync(at('text.txt'), 'this is a text file, not a backup\n');
  writeFileSync(at('empty'), '');
  const blob = readFileSync(at('good.cfbk'));
  writeFileSync(at('cut-header.cfbk'), blob.subarray(0, 50));
  writeFileSync(at('cut-body.cfbk'), blob.subarray(0, blob.length - 10));
  const future = Buffer.from(blob);
  future.writeUInt16BE(2, 4);
  writeFileSync(at('future.cfbk'), future);
});
after(() => rmSync(work, { recursive: true }));

/** Runs one command line; returns what it printed, or the error it threw with what it printed first. */
async function run(args: string[]): Promise<{ out: string; error?: unknown }> {
  let out = '';
  const program = new Command().exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  registerBackupCommands(program, { out: (s) => void (out += s) });
  try {
    await program.parseAsync(args, { from: 'user' });
    return { out };
  } catch (error) {
    return { out, error };
  }
}

async function runJson(args: string[]): Promise<{ report: Record<string, Record<string, unknown>>; error?: unknown }> {
  const r = await run([...args, '--json']);
  return { report: JSON.parse(r.out) as Record<string, Record<string, unknown>>, error: r.error };
}

function assertCode(error: unknown, code: ErrorCode, detail: Record<string, unknown> = {}): void {
  assert.ok(isCofferError(error, code), `expected ${code}, got ${String(error)}`);
  for (const [k, v] of Object.entries(detail)) assert.equal(error.detail[k], v, k);
}

test('inspect --json: the header, the certificates and provenance; embedded roots prove only consistency', async () => {
  const { report, error } = await runJson(['backup', 'inspect', at('good.cfbk')]);
  assert.equal(error, undefined);
  const h = report['header'] ?? {};
  assert.equal(h['backupId'], 'backup-abcdefghijk');
  assert.equal(h['clusterId'], 'cluster-234567abcde');
  assert.equal(h['sourceHsmId'], fx.identity.serial);
  assert.equal(h['mode'], 'NON_FIPS');
  assert.equal(h['created'], new Date(1_750_000_000_123).toISOString());
  assert.equal(h['journalPosition'], '42');
  assert.equal(h['firmwareVersion'], '0.1.0');
  assert.deepEqual([h['records'], h['users'], h['objects']], [SAMPLE_RECORDS.length, 2, 2]);
  assert.equal(h['mkbkId'], hex(fx.mkbk.use(keyId)));
  assert.equal(h['akbkId'], hex(fx.akbk.use(keyId)));
  assert.equal(h['totalBytes'], readFileSync(at('good.cfbk')).length);
  const certs = report['certificates'] as unknown as Array<Record<string, unknown>>;
  assert.deepEqual(certs.map((c) => c['role']), ['device', 'manufacturer root', 'operator', 'operator root']);
  assert.equal(certs[1]?.['fingerprintSha256'], fingerprintSha256(fx.manufacturer.rootCertificate));
  assert.equal(certs[3]?.['fingerprintSha256'], fingerprintSha256(fx.operator.rootCertificate));
  assert.ok(certs.every((c) => c['development'] === true));
  assert.deepEqual(report['provenance'], {
    deviceSerial: fx.identity.serial, manufacturer: fx.manufacturer.name, operator: fx.operator.name, development: true,
  });
  const v = report['verdict'] ?? {};
  assert.equal(v['verified'], true);
  assert.equal(v['trust'], 'embedded-roots');
  assert.match(String(v['note']), /internal consistency, not that the backup comes from a device you trust/);
});

test('inspect with roots: verified against given roots (PEM and DER); other roots → described, then UNTRUSTED', async () => {
  const good = await runJson(['backup', 'inspect', at('good.cfbk'), '--manufacturer-root', at('m-root.pem'), '--operator-root', at('o-root.der')]);
  assert.equal(good.error, undefined);
  assert.equal(good.report['verdict']?.['trust'], 'given-roots');
  assert.equal(good.report['verdict']?.['verified'], true);
  assert.deepEqual(good.report['verdict']?.['roots'], {
    manufacturerSha256: fingerprintSha256(fx.manufacturer.rootCertificate), operatorSha256: fingerprintSha256(fx.operator.rootCertificate), sameAsEmbedded: true,
  });

  const bad = await runJson(['backup', 'inspect', at('good.cfbk'), '--manufacturer-root', at('other-root.pem'), '--operator-root', at('o-root.der')]);
  assertCode(bad.error, 'COFFER_BACKUP_UNTRUSTED');
  assert.equal(bad.report['verdict']?.['verified'], false);
  assert.match(JSON.stringify(bad.report['verdict']?.['problems']), /device certificate does not chain to the manufacturer root/);

  // A flipped body byte: the chain holds, the signature does not.
  const blob = readFileSync(at('good.cfbk'));
  blob.writeUInt8(blob.readUInt8(blob.length - 120) ^ 0x10, blob.length - 120);
  writeFileSync(at('flipped.cfbk'), blob);
  const flipped = await runJson(['backup', 'inspect', at('flipped.cfbk'), '--manufacturer-root', at('m-root.pem'), '--operator-root', at('o-root.der')]);
  assertCode(flipped.error, 'COFFER_BACKUP_UNTRUSTED');
  assert.deepEqual(flipped.report['verdict']?.['problems'], ['signature does not verify under the device certificate key']);

  assertCode((await run(['backup', 'inspect', at('good.cfbk'), '--manufacturer-root', at('m-root.pem')])).error, 'COFFER_CLI_USAGE');
  assertCode((await run(['backup', 'inspect', at('good.cfbk'), '--manufacturer-root', at('absent.pem'), '--operator-root', at('o-root.der')])).error, 'COFFER_CLI_INPUT');
});

test('inspect: the table names every field, says what the check proves, and escapes control characters', async () => {
  const { out, error } = await run(['backup', 'inspect', at('good.cfbk')]);
  assert.equal(error, undefined);
  for (const s of ['backup-abcdefghijk', 'cluster-234567abcde', fx.identity.serial, 'NON_FIPS', new Date(1_750_000_000_123).toISOString(),
    fingerprintSha256(fx.manufacturer.rootCertificate), fingerprintSha256(fx.operator.rootCertificate), 'internal consistency',
    'VERIFIED: chain and signature hold', 'DEVELOPMENT KEY', '6 (2 users, 2 objects)']) {
    assert.ok(out.includes(s), s);
  }
  const given = await run(['backup', 'inspect', at('good.cfbk'), '--manufacturer-root', at('m-root.pem'), '--operator-root', at('o-root.der')]);
  assert.match(given.out, /given on the command line/);
  assert.doesNotMatch(given.out, /internal consistency/);

  writeFileSync(at('evil.cfbk'), assembleBackup(fx, SAMPLE_RECORDS, { overrides: { clusterId: 'evil\u001b[2J\u202e' } }).blob);
  const evil = await run(['backup', 'inspect', at('evil.cfbk')]);
  assert.equal(evil.error, undefined);
  assert.ok(!evil.out.includes('\u001b') && !evil.out.includes('\u202e'));
  assert.ok(evil.out.includes('evil\\u001b[2J\\u202e'));
});

test('inspect: input that is not a backup fails with the format\'s error', async () => {
  assertCode((await run(['backup', 'inspect', at('text.txt')])).error, 'COFFER_FORMAT_BAD_MAGIC');
  assertCode((await run(['backup', 'inspect', at('empty')])).error, 'COFFER_FORMAT_BAD_MAGIC');
  assertCode((await run(['backup', 'inspect', at('cut-header.cfbk')])).error, 'COFFER_FORMAT_TRUNCATED');
  assertCode((await run(['backup', 'inspect', at('cut-body.cfbk')])).error, 'COFFER_FORMAT_TRUNCATED');
  assertCode((await run(['backup', 'inspect', at('future.cfbk')])).error, 'COFFER_FORMAT_UNKNOWN_VERSION', { version: 2 });
  assertCode((await run(['backup', 'inspect', at('absent.cfbk')])).error, 'COFFER_CLI_INPUT');
  for (const f of ['text.txt', 'empty', 'cut-header.cfbk', 'future.cfbk']) assert.equal((await run(['backup', 'inspect', at(f)])).out, '', f);
});

test('inspect: a file that cannot be opened, or is not a regular file, is COFFER_CLI_INPUT saying which', async () => {
  assert.throws(() => openBackupFile(at('absent')), (e) => isCofferError(e, 'COFFER_CLI_INPUT') && e.detail['reason'] === 'unreadable-file' && e.detail['file'] === 'absent');
  mkdirSync(at('a-directory'));
  assert.throws(() => openBackupFile(at('a-directory')), (e) => isCofferError(e, 'COFFER_CLI_INPUT') && e.detail['reason'] === 'not-a-file');
  assertCode((await run(['backup', 'inspect', at('absent')])).error, 'COFFER_CLI_INPUT', { reason: 'unreadable-file' });
  assertCode((await run(['backup', 'inspect', at('a-directory')])).error, 'COFFER_CLI_INPUT', { reason: 'not-a-file' });
  // A FIFO with no writer: refused at once (a blocking open would hang the command).
  assert.equal(spawnSync('mkfifo', [at('a-fifo')]).status, 0);
  assertCode((await run(['backup', 'inspect', at('a-fifo')])).error, 'COFFER_CLI_INPUT', { reason: 'not-a-file' });
  // The file source keeps working for a real file, and close is idempotent.
  const source = openBackupFile(at('good.cfbk'));
  assert.equal(source.length, readFileSync(at('good.cfbk')).length);
  source.close();
  source.close();
});

// main.ts registers the command (the lead's change); until it does, this test says so and is skipped.
const MAIN = resolve(HERE, '../../src/cli/main.js');
const wired = existsSync(MAIN) && readFileSync(MAIN, 'utf8').includes('registerBackupCommands');
test('as a process: coffer backup inspect prints the verdict; a future version exits 1 naming it', { skip: wired ? false : 'src/cli/main.ts does not register the backup commands yet' }, () => {
  const ok = spawnSync(process.execPath, [MAIN, 'backup', 'inspect', at('good.cfbk')], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /VERIFIED/);
  const future = spawnSync(process.execPath, [MAIN, 'backup', 'inspect', at('future.cfbk')], { encoding: 'utf8' });
  assert.equal(future.status, 1);
  assert.match(future.stderr, /^coffer: COFFER_FORMAT_UNKNOWN_VERSION: .*"version":2/);
  const text = spawnSync(process.execPath, [MAIN, 'backup', 'inspect', at('text.txt')], { encoding: 'utf8' });
  assert.equal(text.status, 1);
  assert.match(text.stderr, /^coffer: COFFER_FORMAT_BAD_MAGIC: /);
  assert.equal(text.stdout, '');
  const directory = spawnSync(process.execPath, [MAIN, 'backup', 'inspect', work], { encoding: 'utf8' });
  assert.equal(directory.status, 1);
  assert.match(directory.stderr, /^coffer: COFFER_CLI_INPUT: .*"reason":"not-a-file"/);
});
