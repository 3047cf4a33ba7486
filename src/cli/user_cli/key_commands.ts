// `coffer key …`: CloudHSM CLI's key commands (generate-asymmetric-pair, generate-symmetric, list,
// share, unshare, set-attribute, delete, generate-file, import pem). Wrapping is in wrap_commands.ts.

import type { Command } from 'commander';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { fail } from '../../errors.js';
import { WIRE_PEM_BYTES_MAX } from '../../formats/limits.js';
import { matchesFilter, parseCurve, parseFilter, parseSetAttribute, parseTemplate, readBoundedFile, type Template } from './args.js';
import { act, keySelector, oneKey, withAcks, withCommon, writeOutputFile } from './common.js';
import type { CliContext, CommonOptions, Plan } from './context.js';
import { keyJson, keyListResult, plain, type Result } from './output.js';
import type { KeyPairSpec, UserCluster } from './port.js';
import type { Progress } from './progress.js';

interface PairOptions extends CommonOptions {
  publicLabel: string;
  privateLabel: string;
  publicAttributes?: string[];
  privateAttributes?: string[];
}

/** Keys are token (persistent) objects unless the template says otherwise, as in CloudHSM CLI. */
function tokenTemplate(terms: readonly string[] | undefined, label: string): Template {
  return { token: true, ...parseTemplate(terms, label) };
}

function pairPlan(spec: KeyPairSpec, o: PairOptions): Plan {
  const publicTemplate = tokenTemplate(o.publicAttributes, o.publicLabel);
  const privateTemplate = tokenTemplate(o.privateAttributes, o.privateLabel);
  return (cluster) => generatePair(cluster, spec, publicTemplate, privateTemplate);
}

async function generatePair(cluster: UserCluster, spec: KeyPairSpec, publicTemplate: Template, privateTemplate: Template): Promise<Result> {
  const { publicHandle, privateHandle } = await cluster.generateKeyPair(spec, publicTemplate, privateTemplate);
  const [pub, priv] = await Promise.all([cluster.describe(publicHandle), cluster.describe(privateHandle)]);
  return {
    data: { public_key: keyJson(pub, true), private_key: keyJson(priv, true) },
    text: () => plain({ 'public-key': keyJson(pub, false)['key-reference'], 'private-key': keyJson(priv, false)['key-reference'] }),
  };
}

function pairCommand(parent: Command, ctx: CliContext, name: string, description: string): Command {
  return withAcks(withCommon(parent.command(name).description(description), ctx))
    .requiredOption('--public-label <label>', 'label of the public key')
    .requiredOption('--private-label <label>', 'label of the private key')
    .option('--public-attributes <attr=value...>', 'public key attributes, e.g. verify=true token=true')
    .option('--private-attributes <attr=value...>', 'private key attributes, e.g. sign=true extractable=false');
}

function registerGeneratePair(key: Command, ctx: CliContext): void {
  const pair = key.command('generate-asymmetric-pair').description('generate an asymmetric key pair');
  act<PairOptions & { modulusSizeBits: string; publicExponent: string }>(
    pairCommand(pair, ctx, 'rsa', 'RSA key pair (2048-4096 bits)')
      .requiredOption('--modulus-size-bits <bits>', 'modulus size: 2048, 3072 or 4096')
      .option('--public-exponent <e>', 'public exponent', '65537'),
    (o) => ctx.run(o, () => {
      const spec: KeyPairSpec = { keyType: 'RSA', bits: positiveInt(o.modulusSizeBits, '--modulus-size-bits'), publicExponent: positiveInt(o.publicExponent, '--public-exponent') };
      return pairPlan(spec, o);
    }),
  );
  act<PairOptions & { curve: string }>(
    pairCommand(pair, ctx, 'ec', 'EC key pair: secp256r1 (P-256), secp384r1, secp521r1, secp256k1 (or ed25519)')
      .requiredOption('--curve <curve>', 'secp256r1 | secp384r1 | secp521r1 | secp256k1 | ed25519'),
    (o) => ctx.run(o, () => {
      const curve = parseCurve(o.curve);
      return pairPlan(curve === 'Ed25519' ? { keyType: 'EC_EDWARDS', curve } : { keyType: 'EC', curve }, o);
    }),
  );
  act<PairOptions>(pairCommand(pair, ctx, 'ed25519', 'Ed25519 key pair'), (o) => ctx.run(o, () => pairPlan({ keyType: 'EC_EDWARDS', curve: 'Ed25519' }, o)));
}

export function positiveInt(value: string, what: string): number {
  const n = /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) fail('COFFER_CLI_USAGE', { reason: `${what} must be a positive integer` });
  return n;
}

interface SymmetricOptions extends CommonOptions {
  label: string;
  keyLengthBytes: string;
  attributes?: string[];
}

function registerGenerateSymmetric(key: Command, ctx: CliContext): void {
  const sym = key.command('generate-symmetric').description('generate a symmetric key');
  for (const [name, keyType, what] of [['aes', 'AES', '16, 24 or 32'], ['generic-secret', 'GENERIC_SECRET', '1 or more (e.g. 32 for HMAC-SHA-256)']] as const) {
    act<SymmetricOptions>(
      withAcks(withCommon(sym.command(name).description(`${keyType === 'AES' ? 'AES' : 'generic secret (HMAC)'} key`), ctx))
        .requiredOption('--label <label>', 'key label')
        .requiredOption('--key-length-bytes <n>', `key length in bytes: ${what}`)
        .option('--attributes <attr=value...>', 'key attributes, e.g. encrypt=true extractable=false'),
      (o) => ctx.run(o, () => {
        const spec = { keyType, bits: positiveInt(o.keyLengthBytes, '--key-length-bytes') * 8 };
        const template = tokenTemplate(o.attributes, o.label);
        return async (c) => {
          const handle = await c.generateKey(spec, template);
          const k = await c.describe(handle);
          return { data: { key: keyJson(k, true) }, text: () => plain(keyJson(k, false)['key-reference']) };
        };
      }),
    );
  }
}

function registerList(key: Command, ctx: CliContext): void {
  act<CommonOptions & { filter?: string[]; verbose?: true; maxItems?: string }>(
    withCommon(key.command('list').description('list the keys you own or share, and every public key'), ctx)
      .option('--filter <term...>', 'key-reference=0x… and/or attr.NAME=VALUE terms, all of which must hold')
      .option('-v, --verbose', 'every attribute and the owner, sharees and quorum values of each key')
      .option('--max-items <n>', 'print at most this many keys'),
    (o) => ctx.run(o, () => {
      const filter = parseFilter(o.filter ?? []);
      const max = o.maxItems === undefined ? Infinity : positiveInt(o.maxItems, '--max-items');
      return async (c) => {
        let bar: Progress | undefined; // started once the number of keys is known
        let keys;
        try {
          keys = await c.findKeys(filter, (done, total) => (bar ??= ctx.progress('key list', total)).update(done));
        } finally {
          bar?.stop();
        }
        return keyListResult(keys.filter((k) => matchesFilter(k, filter)).slice(0, max), o.verbose === true);
      };
    }),
  );
}

type FilterOptions = CommonOptions & { filter?: string[] };
const filterOption = (cmd: Command): Command => cmd.option('--filter <term...>', 'selects exactly one key: key-reference=0x… and/or attr.NAME=VALUE');

function registerShareAndAttributes(key: Command, ctx: CliContext): void {
  for (const verb of ['share', 'unshare'] as const) {
    act<FilterOptions & { username: string; role: string }>(
      filterOption(withAcks(withCommon(key.command(verb).description(`${verb} a key you own ${verb === 'share' ? 'with' : 'from'} another crypto user`), ctx)))
        .requiredOption('--username <name>', 'the crypto user')
        .option('--role <role>', 'must be crypto-user (CloudHSM compatibility)', 'crypto-user'),
      (o) => ctx.run(o, () => {
        if (o.role !== 'crypto-user') fail('COFFER_CLI_USAGE', { reason: 'keys are shared with crypto users only: --role crypto-user' });
        const selector = keySelector(o.filter);
        return async (c) => {
          const k = await oneKey(c, selector);
          await (verb === 'share' ? c.share(k.handle, o.username) : c.unshare(k.handle, o.username));
          return { data: { message: `Key ${verb}d successfully`, 'key-reference': keyJson(k, false)['key-reference'] } };
        };
      }),
    );
  }
  act<FilterOptions & { name: string; value: string }>(
    filterOption(withAcks(withCommon(key.command('set-attribute').description('change one attribute of a key'), ctx)))
      .requiredOption('--name <attribute>', 'label, id, sensitive, extractable, encrypt, decrypt, sign, verify, wrap, unwrap, derive, trusted, wrap-with-trusted, modifiable, destroyable')
      .requiredOption('--value <value>', 'true/false, or the label / id (0x… hex or text)'),
    (o) => ctx.run(o, () => {
      const a = parseSetAttribute(o.name, o.value);
      const selector = keySelector(o.filter);
      return async (c) => {
        const k = await oneKey(c, selector);
        await c.setAttribute(k.handle, a.name, a.value);
        return { data: { message: 'Attribute set successfully', 'key-reference': keyJson(k, false)['key-reference'] } };
      };
    }),
  );
  act<FilterOptions>(
    filterOption(withAcks(withCommon(key.command('delete').description('delete (destroy) a key'), ctx))),
    (o) => ctx.run(o, () => {
      const selector = keySelector(o.filter);
      return async (c) => {
        const k = await oneKey(c, selector);
        await c.destroy(k.handle);
        return { data: { message: 'Key deleted successfully', 'key-reference': keyJson(k, false)['key-reference'] } };
      };
    }),
  );
}

function registerFiles(key: Command, ctx: CliContext): void {
  act<FilterOptions & { encoding: string; path?: string }>(
    filterOption(withCommon(key.command('generate-file').description('export the public key of a key pair as PEM'), ctx))
      .option('--encoding <encoding>', 'pem (the only encoding)', 'pem')
      .option('--path <file>', 'write the PEM here (a new file); without it the PEM is printed'),
    (o) => ctx.run(o, () => {
      if (o.encoding !== 'pem') fail('COFFER_CLI_USAGE', { reason: '--encoding must be pem' });
      const selector = keySelector(o.filter);
      return async (c) => {
        const k = await oneKey(c, selector);
        const pem = await c.exportPublicPem(k.handle);
        if (o.path !== undefined) writeOutputFile(o.path, pem);
        return { data: { 'key-reference': keyJson(k, false)['key-reference'], ...(o.path === undefined ? { pem } : { path: o.path }) }, text: () => o.path === undefined ? pem : `${o.path}\n` };
      };
    }),
  );
  const imp = key.command('import').description('import a key');
  act<CommonOptions & { path: string; label: string; keyTypeClass?: string; attributes?: string[] }>(
    withAcks(withCommon(imp.command('pem').description('import a PEM public key, or a PEM private key'), ctx))
      .requiredOption('--path <file>', 'PEM file (SPKI public key, or PKCS#8 / SEC1 / PKCS#1 private key)')
      .requiredOption('--label <label>', 'key label')
      .option('--key-type-class <kind>', 'rsa-public | ec-public | ed25519-public | rsa-private | ec-private | ed25519-private (checked against the file)')
      .option('--attributes <attr=value...>', 'key attributes'),
    (o) => ctx.run(o, () => {
      const pem = Buffer.from(readBoundedFile(o.path, '--path', WIRE_PEM_BYTES_MAX)).toString('utf8');
      const kind = pemKind(pem, o.keyTypeClass);
      const template = tokenTemplate(o.attributes, o.label);
      return async (c) => {
        const handle = await c.importPem(pem, kind, template);
        const k = await c.describe(handle);
        return { data: { key: keyJson(k, true) }, text: () => plain(keyJson(k, false)['key-reference']) };
      };
    }),
  );
}

/** Whether a PEM holds a public or a private key, checked locally so a wrong file fails early. */
export function pemKind(pem: string, keyTypeClass: string | undefined): 'public' | 'private' {
  let kind: 'public' | 'private';
  let type: string | undefined;
  try {
    if (/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
      kind = 'private';
      type = createPrivateKey(pem).asymmetricKeyType;
    } else {
      kind = 'public';
      type = createPublicKey(pem).asymmetricKeyType;
    }
  } catch {
    return fail('COFFER_CLI_INPUT', { reason: '--path is not a PEM public or private key' });
  }
  if (keyTypeClass !== undefined && keyTypeClass !== `${type === 'ed25519' ? 'ed25519' : type}-${kind}`) {
    fail('COFFER_CLI_INPUT', { reason: `--key-type-class ${keyTypeClass} does not match the file (${String(type)}-${kind})` });
  }
  return kind;
}

export function registerKeyCommands(program: Command, ctx: CliContext): Command {
  const key = program.command('key').description('generate, find, share, change, export, import and delete keys');
  registerGeneratePair(key, ctx);
  registerGenerateSymmetric(key, ctx);
  registerList(key, ctx);
  registerShareAndAttributes(key, ctx);
  registerFiles(key, ctx);
  return key;
}
