// `coffer factory …`, `coffer operator …`, `coffer kcv` (src/cli/ceremony_commands.ts), driven
// through a commander program built here, and once as a child process for the exit code.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { kcvAes } from '../../src/crypto/kcv.js';
import { registerCeremonyCommands } from '../../src/cli/ceremony_commands.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { MemoryRecordStore } from '../../src/hsm/store/store_port.js';
import { DeviceState } from '../../src/hsm/state/device_state.js';
import { Provisioning, verifyCeremonyTranscript } from '../../src/hsm/identity/provisioning.js';
import { keyId, xorComponents } from '../../src/crypto/backup_keys.js';
import { computeFirmwareDigest, parseFirmwareManifest, verifyFirmware } from '../../src/hsm/identity/firmware.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Runs one command line and returns its parsed JSON output. */
async function run(args: string[]): Promise<Record<string, unknown>> {
  let out = '';
  const program = new Command().exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  registerCeremonyCommands(program, { out: (s) => void (out += s) });
  await program.parseAsync(args, { from: 'user' });
  return JSON.parse(out) as Record<string, unknown>;
}

async function runFails(args: string[], code: ErrorCode | 'commander'): Promise<void> {
  await assert.rejects(run(args), (e) => (code === 'commander' ? (e as { code?: string }).code?.startsWith('commander.') === true : isCofferError(e, code)));
}

const work = mkdtempSync(join(tmpdir(), 'coffer-cli-'));
test.after(() => rmSync(work, { recursive: true }));
const at = (...p: string[]): string => join(work, ...p);

void test('factory → device → operator → commission, end to end through the command line', async () => {
  const f = await run(['factory', 'init', '--out', at('factory'), '--development']);
  assert.equal(f['development'], true);
  assert.match(String(f['name']), /\(DEVELOPMENT KEY\)$/);
  const mkbk = readFileSync(at('factory', 'mkbk.bin'));
  assert.equal(mkbk.length, 32);
  assert.equal(f['mkbkKcv'], hex(kcvAes(SecretBytes.copyOf(mkbk))));
  assert.equal(f['mkbkKeyId'], hex(keyId(mkbk)));
  for (const k of ['manufacturer-root.key.pem', 'firmware-signing.key.pem', 'mkbk.bin']) assert.equal(statSync(at('factory', k)).mode & 0o777, 0o600, k);

  // Firmware: a small code tree with a package.json above it gives the version.
  mkdirSync(at('pkg', 'dist'), { recursive: true });
  writeFileSync(at('pkg', 'package.json'), JSON.stringify({ version: '3.1.4' }));
  writeFileSync(at('pkg', 'dist', 'main.js'), 'export {};\n');
  const fw = await run(['factory', 'sign-firmware', '--factory', at('factory'), '--code', at('pkg', 'dist'), '--out', at('manifest.json')]);
  assert.equal(fw['version'], '3.1.4');
  const manifest = parseFirmwareManifest(readFileSync(at('manifest.json'), 'utf8'));
  const fwKey = readFileSync(at('factory', 'firmware-signing.pub.pem'), 'utf8');
  const fwSpki = new Uint8Array(createPublicKey(fwKey).export({ format: 'der', type: 'spki' }));
  assert.deepEqual(verifyFirmware(manifest, fwSpki, computeFirmwareDigest(at('pkg', 'dist'))), { verified: true });

  // The device makes its identity; the factory certifies it from the CSR file.
  const store = new MemoryRecordStore();
  const p = new Provisioning(new DeviceState(store));
  const id = await p.generateIdentity();
  writeFileSync(at('device.csr'), id.csrPem());
  const dc = await run(['factory', 'issue-device-cert', '--factory', at('factory'), '--csr', at('device.csr'), '--out', at('device.pem')]);
  assert.equal(dc['serial'], id.serial);
  await p.manufacture({
    deviceCertificate: readFileSync(at('device.pem'), 'utf8'),
    manufacturerRoot: readFileSync(at('factory', 'manufacturer-root.pem'), 'utf8'),
    firmwareSigningPublicKey: fwKey,
    mkbk: SecretBytes.copyOf(mkbk),
    mkbkKcv: Buffer.from(String(f['mkbkKcv']), 'hex'),
  });

  const o = await run(['operator', 'init', '--out', at('operator'), '--components', '3', '--development']);
  const comps = o['components'] as Array<{ file: string; kcv: string }>;
  assert.equal(comps.length, 3);
  assert.equal(existsSync(at('operator', 'akbk.bin')), false);
  const parts = comps.map((c) => {
    assert.equal(statSync(at('operator', c.file)).mode & 0o777, 0o600);
    return readFileSync(at('operator', c.file));
  });
  assert.equal(hex(kcvAes(xorComponents(parts.map((b) => SecretBytes.copyOf(b))))), o['akbkKcv']);
  const kcvOut = await run(['kcv', '--file', at('operator', 'akbk-component-2.bin')]);
  assert.equal(kcvOut['kcv'], comps[1]?.kcv);

  await run(['operator', 'issue-operator-cert', '--operator', at('operator'), '--device-cert', at('device.pem'), '--out', at('operator-cert.pem'), '--manufacturer-root', at('factory', 'manufacturer-root.pem')]);
  const install = await p.beginAkbkInstall({
    operatorCertificate: readFileSync(at('operator-cert.pem'), 'utf8'),
    operatorRoot: readFileSync(at('operator', 'operator-root.pem'), 'utf8'),
    mode: 'FIPS',
    firmware: { manifest: parseFirmwareManifest(readFileSync(at('manifest.json'), 'utf8')), actualDigest: computeFirmwareDigest(at('pkg', 'dist')) },
    akbkKcv: Buffer.from(String(o['akbkKcv']), 'hex'),
    componentCount: 3,
  });
  parts.forEach((b, i) => install.enterComponent(`custodian-${i}`, b, Buffer.from(comps[i]?.kcv ?? '', 'hex')));
  const transcript = verifyCeremonyTranscript(await install.finish(), readFileSync(at('device.pem')));
  assert.equal(transcript.akbkKeyId, o['akbkKeyId']);
  assert.equal(p.mode(), 'FIPS');
});

void test('bad input: clear typed errors', async () => {
  await runFails(['factory', 'init', '--out', at('factory'), '--development'], 'COFFER_CLI_INPUT'); // never overwrite keys
  await runFails(['factory', 'init'], 'commander');
  await runFails(['operator', 'init', '--out', at('op1'), '--components', '1'], 'COFFER_AKBK_COMPONENTS');
  await runFails(['operator', 'init', '--out', at('op2'), '--components', 'two'], 'COFFER_CLI_USAGE');
  await runFails(['factory', 'issue-device-cert', '--factory', at('nope'), '--csr', at('device.csr'), '--out', at('x.pem')], 'COFFER_CLI_INPUT');
  writeFileSync(at('junk.csr'), 'not a request');
  await runFails(['factory', 'issue-device-cert', '--factory', at('factory'), '--csr', at('junk.csr'), '--out', at('x.pem')], 'COFFER_CERT_INVALID');
  await runFails(['factory', 'sign-firmware', '--factory', at('factory'), '--code', at('missing'), '--out', at('m.json')], 'COFFER_CLI_INPUT');
  writeFileSync(at('short.key'), Buffer.alloc(20));
  await runFails(['kcv', '--file', at('short.key')], 'COFFER_CLI_INPUT');
  await runFails(['kcv', '--file', at('absent.key')], 'COFFER_CLI_INPUT');
  assert.equal(existsSync(at('x.pem')), false);
});

void test('as a process: a failing command exits non-zero and prints no key', () => {
  const mod = pathToFileURL(resolve(HERE, '../../src/cli/ceremony_commands.js')).href;
  const script = [
    `import { Command } from 'commander';`,
    `import { registerCeremonyCommands } from ${JSON.stringify(mod)};`,
    `const program = new Command();`,
    `registerCeremonyCommands(program);`,
    `await program.parseAsync(process.argv.slice(1), { from: 'user' });`,
  ].join('\n');
  const cwd = resolve(HERE, '../../..');
  const ok = execFileSync(process.execPath, ['--input-type=module', '-e', script, 'kcv', '--file', at('factory', 'mkbk.bin')], { cwd, encoding: 'utf8' });
  assert.match(ok, /"kcv": "[0-9a-f]{6}"/);
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', script, 'kcv', '--file', at('short.key')], { cwd, encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /COFFER_CLI_INPUT/);
  assert.equal(bad.stdout, '');
  const mkbkHex = readFileSync(at('factory', 'mkbk.bin')).toString('hex');
  assert.ok(!ok.includes(mkbkHex) && !bad.stderr.includes(mkbkHex));
});
