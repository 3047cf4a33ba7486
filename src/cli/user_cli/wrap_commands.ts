// `coffer key wrap <mechanism>` and `coffer key unwrap <mechanism>`: export a key encrypted under a
// wrapping key, and import one. Mechanisms: aes-key-wrap (RFC 3394, SP 800-38F KW), aes-key-wrap-pad
// (RFC 5649, KWP) and rsa-oaep. The wrapped bytes are base64 in JSON, or raw in --path.

import type { Command } from 'commander';
import { fail } from '../../errors.js';
import type { MechanismParams } from '../../formats/mechanism_params.js';
import { parseCurve, parseHash, parseTemplate, readData, type CurveName } from './args.js';
import { act, keySelector, oneKey, withAcks, withCommon, writeOutputFile } from './common.js';
import type { CliContext, CommonOptions } from './context.js';
import { dataOptions } from './crypto_commands.js';
import { b64, keyJson, plain } from './output.js';
import type { UnwrapTemplate } from './port.js';

const MECHANISMS: Readonly<Record<string, (hash: string | undefined) => MechanismParams>> = {
  'aes-key-wrap': () => ({ mechanism: 'CKM_AES_KEY_WRAP' }),
  'aes-key-wrap-pad': () => ({ mechanism: 'CKM_AES_KEY_WRAP_PAD' }),
  'rsa-oaep': (hash) => ({ mechanism: 'CKM_RSA_PKCS_OAEP', hash: hash === undefined ? 'SHA-256' : parseHash(hash) }),
};

/** `--key-type-class` of unwrap → the class and type of the key it makes. */
const UNWRAP_KINDS: Readonly<Record<string, Pick<UnwrapTemplate, 'class' | 'keyType'>>> = {
  aes: { class: 'SECRET_KEY', keyType: 'AES' },
  'generic-secret': { class: 'SECRET_KEY', keyType: 'GENERIC_SECRET' },
  'rsa-private': { class: 'PRIVATE_KEY', keyType: 'RSA' },
  'ec-private': { class: 'PRIVATE_KEY', keyType: 'EC' },
  'ed25519-private': { class: 'PRIVATE_KEY', keyType: 'EC_EDWARDS' },
};

type WrapOptions = CommonOptions & { payloadFilter?: string[]; wrappingFilter?: string[]; hashFunction?: string; path?: string };
type UnwrapOptions = CommonOptions & {
  filter?: string[]; keyTypeClass: string; label: string; curve?: string; attributes?: string[]; hashFunction?: string;
  data?: string; dataHex?: string; dataBase64?: string; dataPath?: string;
};

function unwrapTemplate(o: UnwrapOptions): UnwrapTemplate {
  const kind = UNWRAP_KINDS[o.keyTypeClass] ?? fail('COFFER_CLI_USAGE', { reason: `--key-type-class must be one of ${Object.keys(UNWRAP_KINDS).join(', ')}` });
  const curve: CurveName | undefined = kind.keyType === 'EC_EDWARDS' ? 'Ed25519' : o.curve === undefined ? undefined : parseCurve(o.curve);
  return { token: true, ...parseTemplate(o.attributes, o.label), ...kind, ...(curve === undefined ? {} : { curve }) };
}

export function registerWrapCommands(key: Command, ctx: CliContext): void {
  const wrap = key.command('wrap').description('export a key encrypted under a wrapping key');
  const unwrap = key.command('unwrap').description('import a wrapped key with an unwrapping key');
  for (const [name, params] of Object.entries(MECHANISMS)) {
    act<WrapOptions>(
      withCommon(wrap.command(name).description(`wrap with ${name}`), ctx)
        .option('--payload-filter <term...>', 'selects the key to wrap')
        .option('--wrapping-filter <term...>', 'selects the wrapping key')
        .option('--hash-function <hash>', 'rsa-oaep hash (default sha256)')
        .option('--path <file>', 'write the raw wrapped key here'),
      (o) => ctx.run(o, () => {
        const p = params(o.hashFunction);
        const payloadSelector = keySelector(o.payloadFilter, '--payload-filter');
        const wrappingSelector = keySelector(o.wrappingFilter, '--wrapping-filter');
        return async (c) => {
          const payload = await oneKey(c, payloadSelector);
          const wrapped = await c.wrap((await oneKey(c, wrappingSelector)).handle, payload.handle, p);
          if (o.path !== undefined) writeOutputFile(o.path, wrapped);
          const data = o.path === undefined ? { wrapped_key_data: b64(wrapped) } : { path: o.path, bytes: wrapped.length };
          return { data, text: () => `${o.path ?? b64(wrapped)}\n` };
        };
      }),
    );
    act<UnwrapOptions>(
      dataOptions(withAcks(withCommon(unwrap.command(name).description(`unwrap with ${name}`), ctx)))
        .option('--filter <term...>', 'selects the unwrapping key')
        .requiredOption('--key-type-class <kind>', Object.keys(UNWRAP_KINDS).join(' | '))
        .requiredOption('--label <label>', 'label of the new key')
        .option('--curve <curve>', 'curve of an ec-private key')
        .option('--attributes <attr=value...>', 'attributes of the new key')
        .option('--hash-function <hash>', 'rsa-oaep hash (default sha256)'),
      (o) => ctx.run(o, () => {
        const p = params(o.hashFunction);
        const template = unwrapTemplate(o);
        const wrapped = readData(o);
        const selector = keySelector(o.filter);
        return async (c) => {
          const handle = await c.unwrap((await oneKey(c, selector)).handle, wrapped, p, template);
          const k = await c.describe(handle);
          return { data: { key: keyJson(k, true) }, text: () => plain(keyJson(k, false)['key-reference']) };
        };
      }),
    );
  }
}
