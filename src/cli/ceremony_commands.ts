// `coffer factory …`, `coffer operator …` and `coffer kcv`: the offline ceremony tools of the
// manufacturer and the operator (docs/architecture.md §1, §2, §3) over src/factory/ceremony.ts. Each command
// prints one JSON object on stdout. Bad input throws a CofferError (COFFER_CLI_INPUT,
// COFFER_CLI_USAGE, …) for main.ts to report with a non-zero exit code; no command prints a key,
// only key check values and key ids.

import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fail } from '../errors.js';
import { kcvAes } from '../crypto/kcv.js';
import { SecretBytes } from '../crypto/secret_bytes.js';
import { FACTORY_FILES, OPERATOR_FILES, createManufacturer, createOperator, generateAkbkComponents, issueDeviceCertificate, issueOperatorCertificate, loadManufacturer, loadOperator, readBytes, readText, saveManufacturer, saveOperator, signFirmware, writeNewFile } from '../factory/ceremony.js';
import { hex, keyId } from '../crypto/backup_keys.js';
import { encodeFirmwareManifest } from '../hsm/identity/firmware.js';
import { fingerprintSha256, pemOf, subjectField } from '../formats/x509.js';

/** Where command output goes; tests pass their own. */
export interface CeremonyIo {
  readonly out: (text: string) => void;
}

const defaultIo: CeremonyIo = { out: (text) => void process.stdout.write(text) };
const PRODUCT = 'coffer';

/** Adds `factory`, `operator` and `kcv` to the `coffer` program. */
export function registerCeremonyCommands(program: Command, io: CeremonyIo = defaultIo): void {
  const print = (v: unknown): void => io.out(JSON.stringify(v, null, 2) + '\n');
  registerFactory(program, print);
  registerOperator(program, print);
  program
    .command('kcv')
    .description('print the key check value (and, for a 256-bit key, the key id) of a raw AES key file')
    .requiredOption('--file <keyfile>', 'raw key file: 16, 24 or 32 bytes')
    .action((opts: { file: string }) => {
      const key = SecretBytes.adopt(readBytes(opts.file)); // kcvAes takes key bytes only from an owner
      try {
        if (key.length !== 16 && key.length !== 24 && key.length !== 32) fail('COFFER_CLI_INPUT', { reason: 'key-file-size', bytes: key.length });
        print({ kcv: hex(kcvAes(key)), ...(key.length === 32 ? { keyId: hex(key.use(keyId)) } : {}) });
      } finally {
        key.destroy();
      }
    });
}

type Print = (v: unknown) => void;

function registerFactory(program: Command, print: Print): void {
  const factory = program.command('factory').description('manufacturer ceremony: root CA, firmware signing key, MKBK, device certificates');
  factory
    .command('init')
    .description('generate a Manufacturer Root CA, a firmware signing key pair and the MKBK into a new directory')
    .requiredOption('--out <dir>', 'directory to create (key files are written with mode 0600)')
    .option('--development', 'development keys: "(DEVELOPMENT KEY)" is written into every certificate subject')
    .option('--name <organisation>', 'organisation name in certificate subjects')
    .action(async (opts: { out: string; development?: true; name?: string }) => {
      const m = await createManufacturer({ development: opts.development === true, ...(opts.name === undefined ? {} : { name: opts.name }) });
      try {
        const info = saveManufacturer(m, opts.out);
        print({ directory: resolve(opts.out), ...info, files: Object.values(FACTORY_FILES) });
      } finally {
        m.mkbk.destroy();
      }
    });
  factory
    .command('sign-firmware')
    .description('hash a code directory (its .js files) and sign the firmware manifest')
    .requiredOption('--factory <dir>', 'factory directory')
    .requiredOption('--code <dir>', 'code directory, e.g. dist/src')
    .requiredOption('--out <file>', 'manifest file to create')
    .option('--firmware-version <version>', 'version to record (default: the nearest package.json above --code)')
    .action(async (opts: { factory: string; code: string; out: string; firmwareVersion?: string }) => {
      if (!existsSync(opts.code)) fail('COFFER_CLI_INPUT', { reason: 'missing-code-directory' });
      const version = opts.firmwareVersion ?? packageVersionAbove(opts.code);
      const m = await loadManufacturer(opts.factory);
      try {
        const manifest = signFirmware(m, opts.code, { product: PRODUCT, version });
        writeNewFile(opts.out, encodeFirmwareManifest(manifest), false);
        print({ manifest: resolve(opts.out), product: manifest.product, version: manifest.version, digest: manifest.digest });
      } finally {
        m.mkbk.destroy();
      }
    });
  factory
    .command('issue-device-cert')
    .description("issue a device certificate for the identity key in a device's CSR")
    .requiredOption('--factory <dir>', 'factory directory')
    .requiredOption('--csr <file>', 'PKCS#10 request the device produced (PEM or DER)')
    .requiredOption('--out <file>', 'certificate file to create (PEM)')
    .action(async (opts: { factory: string; csr: string; out: string }) => {
      const csr = readBytes(opts.csr);
      const m = await loadManufacturer(opts.factory);
      try {
        const cert = await issueDeviceCertificate(m, pemOrDer(csr));
        writeNewFile(opts.out, pemOf(cert), false);
        print({ certificate: resolve(opts.out), serial: subjectField(cert, 'CN'), subject: cert.subject, fingerprintSha256: fingerprintSha256(cert) });
      } finally {
        m.mkbk.destroy();
      }
    });
}

function registerOperator(program: Command, print: Print): void {
  const operator = program.command('operator').description('operator ceremony: root CA, AKBK components, operator certificates');
  operator
    .command('init')
    .description('generate an Operator Root CA and the AKBK as N custodian components (the whole AKBK is never written)')
    .requiredOption('--out <dir>', 'directory to create (component files are written with mode 0600)')
    .requiredOption('--components <n>', 'number of AKBK components, one per custodian (at least 2)')
    .option('--development', 'development keys: "(DEVELOPMENT KEY)" is written into every certificate subject')
    .option('--name <organisation>', 'organisation name in certificate subjects')
    .action(async (opts: { out: string; components: string; development?: true; name?: string }) => {
      if (!/^\d{1,3}$/.test(opts.components)) fail('COFFER_CLI_USAGE', { option: 'components' });
      const akbk = generateAkbkComponents(Number(opts.components));
      try {
        const o = await createOperator({ development: opts.development === true, ...(opts.name === undefined ? {} : { name: opts.name }) });
        const info = saveOperator(o, akbk, opts.out);
        print({ directory: resolve(opts.out), ...info, files: [OPERATOR_FILES.rootCertificate, OPERATOR_FILES.rootKey, OPERATOR_FILES.info, ...info.components.map((c) => c.file)] });
      } finally {
        for (const c of akbk.components) c.destroy();
      }
    });
  operator
    .command('issue-operator-cert')
    .description("issue an operator certificate for the identity key in a device's certificate")
    .requiredOption('--operator <dir>', 'operator directory')
    .requiredOption('--device-cert <file>', 'device certificate (PEM or DER)')
    .requiredOption('--out <file>', 'certificate file to create (PEM)')
    .option('--manufacturer-root <file>', 'if given, the device certificate must chain to this Manufacturer Root CA')
    .action(async (opts: { operator: string; deviceCert: string; out: string; manufacturerRoot?: string }) => {
      const deviceCert = pemOrDer(readBytes(opts.deviceCert));
      const manufacturerRoot = opts.manufacturerRoot === undefined ? undefined : readText(opts.manufacturerRoot);
      const o = await loadOperator(opts.operator);
      const cert = await issueOperatorCertificate(o, deviceCert, manufacturerRoot === undefined ? {} : { manufacturerRoot });
      writeNewFile(opts.out, pemOf(cert), false);
      print({ certificate: resolve(opts.out), serial: subjectField(cert, 'CN'), subject: cert.subject, fingerprintSha256: fingerprintSha256(cert) });
    });
}

/** PEM files become text; anything else is passed on as DER bytes. */
function pemOrDer(bytes: Uint8Array): string | Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  return text.includes('-----BEGIN ') ? text : bytes;
}

/** The `version` of the nearest package.json in `dir` or above it. */
function packageVersionAbove(dir: string): string {
  let d = resolve(dir);
  for (;;) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try {
        const v = (JSON.parse(readFileSync(p, 'utf8')) as { version?: unknown }).version;
        if (typeof v === 'string') return v;
      } catch {
        // an unreadable package.json says nothing about the version: keep looking upwards.
      }
    }
    const up = dirname(d);
    if (up === d) return fail('COFFER_CLI_USAGE', { option: 'firmware-version' });
    d = up;
  }
}
