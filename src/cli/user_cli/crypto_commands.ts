// `coffer crypto …`: sign, verify, encrypt, decrypt and `mac generate|verify hmac`, with CloudHSM
// CLI's mechanism subcommands (`crypto sign ecdsa --key-filter … --hash-function sha256`).
// Input: --data (UTF-8 text), --data-hex, --data-base64 or --data-path (raw bytes). Output: base64
// in JSON; --output-path writes the raw bytes instead. `crypto sign … --records-path FILE` signs
// each line of a file (a progress bar on a terminal).
//
// What encrypt prints, decrypt takes back as it is (docs/cli-users.md "Crypto"): without --iv the
// output carries its IV in front (aes-gcm: iv ‖ ciphertext ‖ tag from the HSM; aes-cbc: iv ‖
// ciphertext, the IV drawn here), in JSON, in text and in --output-path alike; decryption accepts up
// to CRYPTO_CIPHERTEXT_BYTES_MAX, what encrypting the largest input produces. In text mode decrypt
// prints the plaintext itself.

import type { Command } from 'commander';
import { readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fail } from '../../errors.js';
import { CLI_BATCH_IN_FLIGHT_MAX, CRYPTO_CIPHERTEXT_BYTES_MAX, CRYPTO_INPUT_BYTES_MAX } from '../../formats/limits.js';
import { AES_BLOCK_BYTES, type HashName, type MechanismParams } from '../../formats/mechanism_params.js';
import { parseBase64, parseHash, parseHex, readData, readSignature, type DataOptions } from './args.js';
import { act, keySelector, oneKey, withCommon, writeOutputFile } from './common.js';
import type { CliContext, CommonOptions } from './context.js';
import { b64, type Result } from './output.js';
import type { UserCluster } from './port.js';

type Opts = CommonOptions & DataOptions & { keyFilter?: string[]; hashFunction?: string; outputPath?: string };

const SHA2 = ['SHA-224', 'SHA-256', 'SHA-384', 'SHA-512'] as const;
type Sha2 = (typeof SHA2)[number];
function sha2(o: Opts, fallback: Sha2 = 'SHA-256'): Sha2 {
  const h: HashName = o.hashFunction === undefined ? fallback : parseHash(o.hashFunction);
  if (!(SHA2 as readonly string[]).includes(h)) fail('COFFER_CLI_USAGE', { reason: '--hash-function must be sha224, sha256, sha384 or sha512' });
  return h as Sha2;
}
const bitsOf = (h: Sha2): string => h.slice(4);

/** Bytes of each SHA-2 digest (FIPS 180-4 §1): a "digest" of another length was not made by the hash. */
const DIGEST_BYTES: Readonly<Record<Sha2, number>> = { 'SHA-224': 28, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

/** `--data-type`: raw (the HSM hashes) or digest (you hashed with --hash-function). */
function isDigest(o: { dataType?: string }): boolean {
  if (o.dataType === undefined || o.dataType === 'raw') return false;
  if (o.dataType === 'digest') return true;
  return fail('COFFER_CLI_USAGE', { reason: '--data-type must be raw or digest' });
}

/**
 * The data of a raw-ECDSA call must be a digest of --hash-function: CKM_ECDSA signs whatever bytes
 * it gets (a 1-byte "digest" too), so a wrong length is refused here, before connecting.
 */
export function checkDigest(o: Opts & { dataType?: string }, data: Uint8Array): void {
  if (!isDigest(o)) return;
  const hash = sha2(o);
  if (data.length !== DIGEST_BYTES[hash]) {
    fail('COFFER_CLI_USAGE', { reason: `--data-type digest: a ${hash} digest is ${DIGEST_BYTES[hash]} bytes, the data is ${data.length}`, expectedBytes: DIGEST_BYTES[hash] });
  }
}

/** Signature schemes by CloudHSM CLI subcommand. */
const SIGN_SCHEMES: Readonly<Record<string, { description: string; params: (o: Opts & { dataType?: string; saltLength?: string }) => MechanismParams }>> = {
  ecdsa: {
    description: 'ECDSA; the signature is r ‖ s (IEEE P1363, PKCS#11\'s format), not DER. --data-type digest signs a digest you computed with --hash-function',
    params: (o) => (isDigest(o) ? { mechanism: 'CKM_ECDSA' } : { mechanism: `CKM_ECDSA_SHA${bitsOf(sha2(o))}` as 'CKM_ECDSA_SHA256' }),
  },
  'rsa-pkcs': { description: 'RSA PKCS#1 v1.5', params: (o) => ({ mechanism: `CKM_SHA${bitsOf(sha2(o))}_RSA_PKCS` as 'CKM_SHA256_RSA_PKCS' }) },
  'rsa-pkcs-pss': {
    description: 'RSA-PSS (MGF1 with the same hash)',
    params: (o) => ({
      mechanism: `CKM_SHA${bitsOf(sha2(o))}_RSA_PKCS_PSS` as 'CKM_SHA256_RSA_PKCS_PSS',
      ...(o.saltLength === undefined ? {} : { saltBytes: nonNegativeInt(o.saltLength, '--salt-length') }),
    }),
  },
  ed25519: { description: 'Ed25519 (pure EdDSA; --hash-function is ignored)', params: () => ({ mechanism: 'CKM_EDDSA' }) },
};

function nonNegativeInt(value: string, what: string): number {
  const n = /^[0-9]{1,5}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n)) fail('COFFER_CLI_USAGE', { reason: `${what} must be a non-negative integer` });
  return n;
}

function dataOptions(cmd: Command, what = 'data'): Command {
  return cmd
    .option(`--${what} <text>`, `${what} as UTF-8 text`)
    .option(`--${what}-hex <hex>`, `${what} as hex`)
    .option(`--${what}-base64 <base64>`, `${what} as base64`)
    .option(`--${what}-path <file>`, `${what}: the raw bytes of a file`);
}

function keyCommand(parent: Command, ctx: CliContext, name: string, description: string): Command {
  return dataOptions(withCommon(parent.command(name).description(description), ctx))
    .option('--key-filter <term...>', 'selects the key: key-reference=0x… and/or attr.NAME=VALUE')
    .option('--hash-function <hash>', 'sha224 | sha256 | sha384 | sha512 (default sha256)');
}

/** A byte result: base64 under `field` in JSON, raw bytes to --output-path if given. */
function bytesResult(field: string, bytes: Uint8Array, outputPath: string | undefined): Result {
  if (outputPath !== undefined) writeOutputFile(outputPath, bytes);
  const data = outputPath === undefined ? { [field]: b64(bytes) } : { path: outputPath, bytes: bytes.length };
  return { data, text: () => `${outputPath ?? b64(bytes)}\n` };
}

function registerSign(crypto: Command, ctx: CliContext): void {
  const sign = crypto.command('sign').description('sign data with a private key');
  const verify = crypto.command('verify').description('verify a signature with a public (or private) key');
  for (const [name, scheme] of Object.entries(SIGN_SCHEMES)) {
    const extra = (cmd: Command): Command => {
      if (name === 'ecdsa') cmd.option('--data-type <type>', 'raw (default: hashed by the HSM) or digest (exactly the length of --hash-function\'s digest)');
      if (name === 'rsa-pkcs-pss') cmd.option('--salt-length <bytes>', 'salt length (default: the hash length)');
      return cmd;
    };
    act<Opts & { dataType?: string; saltLength?: string; recordsPath?: string }>(
      extra(keyCommand(sign, ctx, name, scheme.description))
        .option('--records-path <file>', 'sign each line of this file (UTF-8, newline removed); prints a list of signatures')
        .option('--output-path <file>', 'write the raw signature here'),
      (o) => ctx.run(o, () => {
        const params = scheme.params(o);
        const selector = keySelector(o.keyFilter, '--key-filter');
        if (o.recordsPath !== undefined && isDigest(o)) fail('COFFER_CLI_USAGE', { reason: '--records-path signs lines of text: it cannot be used with --data-type digest' });
        const input = o.recordsPath !== undefined ? readRecords(o.recordsPath) : readData(o);
        if (!Array.isArray(input)) checkDigest(o, input);
        return async (c) => {
          const key = await oneKey(c, selector);
          if (Array.isArray(input)) return signRecords(ctx, c, key.handle, params, input);
          return bytesResult('signature', await c.sign(key.handle, params, input), o.outputPath);
        };
      }),
    );
    act<Opts & { dataType?: string; saltLength?: string; signature?: string; signaturePath?: string }>(
      extra(keyCommand(verify, ctx, name, scheme.description))
        .option('--signature <base64>', 'the signature, base64')
        .option('--signature-path <file>', 'the signature, raw bytes'),
      (o) => ctx.run(o, () => {
        const params = scheme.params(o);
        const signature = readSignature(o.signature, o.signaturePath, 'signature');
        const data = readData(o);
        checkDigest(o, data);
        const selector = keySelector(o.keyFilter, '--key-filter');
        return async (c) => {
          const key = await oneKey(c, selector);
          if (!(await c.verify(key.handle, params, data, signature))) fail('COFFER_SIGNATURE_INVALID');
          return { data: { message: 'Signature verified successfully', verified: true } };
        };
      }),
    );
  }
}

/** The lines of a records file (UTF-8; a final newline does not make an empty record). */
function readRecords(path: string): string[] {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return fail('COFFER_CLI_INPUT', { reason: '--records-path: cannot read the file' });
  }
  if (size > CRYPTO_INPUT_BYTES_MAX) fail('COFFER_CLI_INPUT', { reason: `--records-path: file is larger than ${CRYPTO_INPUT_BYTES_MAX} bytes` });
  const records = readFileSync(path, 'utf8').split('\n').map((l) => l.replace(/\r$/, ''));
  if (records.at(-1) === '') records.pop();
  return records;
}

/** Signs every record, CLI_BATCH_IN_FLIGHT_MAX requests at a time; signatures in record order. */
async function signRecords(ctx: CliContext, c: UserCluster, handle: number, params: MechanismParams, records: readonly string[]): Promise<Result> {
  const signatures: string[] = new Array<string>(records.length);
  const bar = ctx.progress('sign', records.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < records.length) {
      const i = next++;
      signatures[i] = b64(await c.sign(handle, params, new Uint8Array(Buffer.from(records[i] ?? '', 'utf8'))));
      bar.update(++done);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(CLI_BATCH_IN_FLIGHT_MAX, records.length) }, worker));
  } finally {
    bar.stop();
  }
  return { data: { signatures }, text: () => signatures.map((s) => s + '\n').join('') };
}

type CipherOpts = Opts & { iv?: string; aad?: string; tagLengthBytes?: string };
type Verb = 'encrypt' | 'decrypt';

/** What one cipher call sends the HSM, and how its answer becomes what the command prints. */
interface CipherPlan {
  readonly params: MechanismParams;
  readonly input: Uint8Array;
  readonly output?: (out: Uint8Array) => Uint8Array;
}


/**
 * AES-CBC-PAD. With --iv the data is the ciphertext alone, both ways. Without it, encrypt draws a
 * random IV and prints iv ‖ ciphertext (as aes-gcm prints the HSM's IV in front), and decrypt takes
 * the IV from the first block of its data: what encrypt printed goes back in unchanged.
 */
function cbcPlan(o: CipherOpts, verb: Verb, data: Uint8Array): CipherPlan {
  if (o.iv !== undefined) {
    const iv = parseHex(o.iv, '--iv');
    if (iv.length !== AES_BLOCK_BYTES) fail('COFFER_CLI_USAGE', { reason: `--iv of aes-cbc is ${AES_BLOCK_BYTES} bytes (${AES_BLOCK_BYTES * 2} hex digits)` });
    return { params: { mechanism: 'CKM_AES_CBC_PAD', iv }, input: data };
  }
  if (verb === 'encrypt') {
    const iv = new Uint8Array(randomBytes(AES_BLOCK_BYTES));
    return { params: { mechanism: 'CKM_AES_CBC_PAD', iv }, input: data, output: (ct) => new Uint8Array(Buffer.concat([iv, ct])) };
  }
  if (data.length < 2 * AES_BLOCK_BYTES || data.length % AES_BLOCK_BYTES !== 0) {
    fail('COFFER_CLI_USAGE', { reason: 'aes-cbc data without --iv is iv ‖ ciphertext: 16 bytes of IV, then whole 16-byte blocks (at least one)', bytes: data.length });
  }
  return { params: { mechanism: 'CKM_AES_CBC_PAD', iv: data.slice(0, AES_BLOCK_BYTES) }, input: data.subarray(AES_BLOCK_BYTES) };
}

/** Cipher mechanisms by subcommand. */
const CIPHERS: Readonly<Record<string, { description: string; plan: (o: CipherOpts, verb: Verb, data: Uint8Array) => CipherPlan }>> = {
  'aes-gcm': {
    description: 'AES-GCM; without --iv the HSM draws the IV and the output is iv ‖ ciphertext ‖ tag, which decrypt takes back as it is',
    plan: (o, _verb, data) => ({
      params: {
        mechanism: 'CKM_AES_GCM',
        ...(o.iv === undefined ? {} : { iv: parseHex(o.iv, '--iv') }),
        ...(o.aad === undefined ? {} : { aad: parseBase64(o.aad, '--aad') }),
        ...(o.tagLengthBytes === undefined ? {} : { tagBytes: nonNegativeInt(o.tagLengthBytes, '--tag-length-bytes') }),
      },
      input: data,
    }),
  },
  'aes-cbc': {
    description: 'AES-CBC with PKCS#7 padding; without --iv a random IV is drawn and the output is iv ‖ ciphertext, which decrypt takes back as it is',
    plan: cbcPlan,
  },
  'rsa-oaep': { description: 'RSA-OAEP (MGF1 with the same hash)', plan: (o, _verb, data) => ({ params: { mechanism: 'CKM_RSA_PKCS_OAEP', hash: sha2(o, 'SHA-256') }, input: data }) },
};

/** Encrypt's result: base64 in JSON and text (one word, so it can be passed to decrypt), raw bytes in
 * --output-path. Decrypt's: the same in JSON, and the plaintext itself in text. */
function cipherResult(verb: Verb, bytes: Uint8Array, outputPath: string | undefined): Result {
  const r = bytesResult('data', bytes, outputPath);
  return verb === 'decrypt' && outputPath === undefined ? { data: r.data, raw: () => bytes } : r;
}

function registerCipher(crypto: Command, ctx: CliContext): void {
  for (const verb of ['encrypt', 'decrypt'] as const) {
    const parent = crypto.command(verb).description(`${verb} data with a key`);
    for (const [name, cipher] of Object.entries(CIPHERS)) {
      act<CipherOpts>(
        keyCommand(parent, ctx, name, cipher.description)
          .option('--iv <hex>', 'initialisation vector, hex (then the data is the ciphertext alone, both ways)')
          .option('--aad <base64>', 'additional authenticated data (aes-gcm), base64')
          .option('--tag-length-bytes <n>', 'GCM tag length, 12-16 (default 16)')
          .option('--output-path <file>', `write the raw ${verb === 'encrypt' ? 'ciphertext' : 'plaintext'} here`),
        (o) => ctx.run(o, () => {
          const plan = cipher.plan(o, verb, readData(o, 'data', verb === 'decrypt' ? CRYPTO_CIPHERTEXT_BYTES_MAX : CRYPTO_INPUT_BYTES_MAX));
          const selector = keySelector(o.keyFilter, '--key-filter');
          return async (c) => {
            const key = await oneKey(c, selector);
            const out = verb === 'encrypt' ? await c.encrypt(key.handle, plan.params, plan.input) : await c.decrypt(key.handle, plan.params, plan.input);
            return cipherResult(verb, plan.output?.(out) ?? out, o.outputPath);
          };
        }),
      );
    }
  }
}

function registerMac(crypto: Command, ctx: CliContext): void {
  const mac = crypto.command('mac').description('message authentication codes');
  const hmacParams = (o: Opts): MechanismParams => ({ mechanism: `CKM_SHA${bitsOf(sha2(o))}_HMAC` as 'CKM_SHA256_HMAC' });
  act<Opts>(
    keyCommand(mac.command('generate').description('compute a MAC'), ctx, 'hmac', 'HMAC with a generic-secret key').option('--output-path <file>', 'write the raw MAC here'),
    (o) => ctx.run(o, () => {
      const params = hmacParams(o);
      const data = readData(o);
      const selector = keySelector(o.keyFilter, '--key-filter');
      return async (c) => bytesResult('mac', await c.sign((await oneKey(c, selector)).handle, params, data), o.outputPath);
    }),
  );
  act<Opts & { mac?: string; macPath?: string }>(
    keyCommand(mac.command('verify').description('verify a MAC'), ctx, 'hmac', 'HMAC with a generic-secret key')
      .option('--mac <base64>', 'the MAC, base64')
      .option('--mac-path <file>', 'the MAC, raw bytes'),
    (o) => ctx.run(o, () => {
      const params = hmacParams(o);
      const tag = readSignature(o.mac, o.macPath, 'mac');
      const data = readData(o);
      const selector = keySelector(o.keyFilter, '--key-filter');
      return async (c) => {
        if (!(await c.verify((await oneKey(c, selector)).handle, params, data, tag))) fail('COFFER_SIGNATURE_INVALID');
        return { data: { message: 'MAC verified successfully', verified: true } };
      };
    }),
  );
}

export function registerCryptoCommands(program: Command, ctx: CliContext): Command {
  const crypto = program.command('crypto').description('sign, verify, encrypt, decrypt and MAC with keys in the cluster');
  registerSign(crypto, ctx);
  registerCipher(crypto, ctx);
  registerMac(crypto, ctx);
  return crypto;
}

export { dataOptions };
