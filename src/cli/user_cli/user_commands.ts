// `coffer user …` (create, list, delete, change-password, unlock, change-quorum token-sign
// register) and `coffer quorum token-sign …` (generate, list, approve, set-quorum-value,
// list-quorum-values). New passwords come from a prompt (asked twice on a terminal) or the next
// line of stdin; `--password` (the new password) exists for CloudHSM compatibility but puts the password in the
// process list and shell history.

import type { Command } from 'commander';
import { createPrivateKey, createPublicKey, sign as signWith } from 'node:crypto';
import { fail } from '../../errors.js';
import { QUORUM_KEY_BYTES_MAX, WIRE_PEM_BYTES_MAX, WIRE_TEXT_BYTES_MAX } from '../../formats/limits.js';
import { formatKeyReference, readBoundedFile, readSignature } from './args.js';
import { act, keySelector, oneKey, withAcks, withCommon, writeOutputFile } from './common.js';
import { parseRole } from './config.js';
import type { CliContext, CommonOptions } from './context.js';
import { b64, plain, tokenListResult, userListResult } from './output.js';
import type { QuorumService } from './port.js';

type UserOptions = CommonOptions & { username: string; role?: string; password?: string };

/** A new password: --password, else prompted twice on a terminal (they must match), else a line. */
async function newPassword(ctx: CliContext, given: string | undefined, prompt: string): Promise<string> {
  if (given !== undefined) return given;
  const first = await ctx.readSecret(prompt);
  if (ctx.io.lines().terminal && (await ctx.readSecret('Confirm password: ')) !== first) fail('COFFER_CLI_PASSWORD_MISMATCH');
  return first;
}

function userCommand(user: Command, ctx: CliContext, name: string, description: string): Command {
  return withAcks(withCommon(user.command(name).description(description), ctx)).requiredOption('--username <name>', 'the user');
}

function registerUserManagement(user: Command, ctx: CliContext): void {
  act<UserOptions>(
    userCommand(user, ctx, 'create', 'create a user (admins only)')
      .requiredOption('--role <role>', 'admin or crypto-user')
      .option('--password <password>', 'the new user’s password (visible in the process list and shell history: prefer the prompt)'),
    (o) => ctx.run(o, () => {
      const role = parseRole(o.role ?? '');
      return async (c) => {
        await c.createUser(o.username, await newPassword(ctx, o.password, `Password for new user ${o.username}: `), role);
        return { data: { username: o.username, role } };
      };
    }),
  );
  act<CommonOptions>(withCommon(user.command('list').description('list the users of the cluster'), ctx), (o) => ctx.run(o, () => async (c) => userListResult(await c.listUsers())));
  act<UserOptions>(
    userCommand(user, ctx, 'delete', 'delete a user (admins only; the user must own no keys)').option('--role <role>', 'accepted for CloudHSM compatibility'),
    (o) => ctx.run(o, () => async (c) => {
      await c.deleteUser(o.username);
      return { data: { username: o.username, message: 'User deleted successfully' } };
    }),
  );
  act<UserOptions>(
    userCommand(user, ctx, 'unlock', 'unlock a user locked out by failed logins (admins only)').option('--role <role>', 'accepted for CloudHSM compatibility'),
    (o) => ctx.run(o, () => async (c) => {
      await c.unlockUser(o.username);
      return { data: { username: o.username, message: 'User unlocked successfully' } };
    }),
  );
}

function registerChangePassword(user: Command, ctx: CliContext): void {
  act<CommonOptions & { username?: string; role?: string; password?: string }>(
    withAcks(withCommon(user.command('change-password').description('change your own password, or (admins) another user’s'), ctx))
      .option('--username <name>', 'the user (default: yourself)')
      .option('--role <role>', 'accepted for CloudHSM compatibility')
      .option('--password <password>', 'the new password (visible in the process list and shell history: prefer the prompt)'),
    (o) => ctx.run(o, () => async (c) => {
      const self = ctx.login?.username ?? (o.loginUsername ?? (ctx.io.env['COFFER_PIN'] ?? '').split(':')[0] ?? '');
      if (o.username === undefined || o.username.toLowerCase() === self.toLowerCase()) {
        const current = await ctx.readSecret('Current password: ');
        await c.changeOwnPassword(current, await newPassword(ctx, o.password, 'New password: '));
        return { data: { username: self, message: 'Password changed successfully' } };
      }
      await c.changePassword(o.username, await newPassword(ctx, o.password, `New password for ${o.username}: `));
      return { data: { username: o.username, message: 'Password changed successfully' } };
    }),
  );
}

function registerChangeQuorum(user: Command, ctx: CliContext): void {
  const tokenSign = user.command('change-quorum').description('quorum authentication of your user').command('token-sign').description('token-sign quorum');
  act<CommonOptions & { publicKey: string }>(
    withAcks(withCommon(tokenSign.command('register').description('register your quorum public key (RSA 2048+ or EC P-256/P-384, PEM)'), ctx))
      .requiredOption('--public-key <file>', 'PEM public key whose private half signs quorum tokens'),
    (o) => ctx.run(o, () => {
      const spki = spkiOf(o.publicKey);
      return async (c) => {
        await c.registerQuorumKey(spki);
        return { data: { message: 'Quorum public key registered successfully' } };
      };
    }),
  );
}

/** SubjectPublicKeyInfo DER of a PEM public key file. */
function spkiOf(path: string): Uint8Array {
  const pem = Buffer.from(readBoundedFile(path, '--public-key', WIRE_PEM_BYTES_MAX)).toString('utf8');
  let spki: Uint8Array;
  try {
    spki = new Uint8Array(createPublicKey(pem).export({ type: 'spki', format: 'der' }));
  } catch {
    return fail('COFFER_CLI_INPUT', { reason: '--public-key is not a PEM public key' });
  }
  if (spki.length > QUORUM_KEY_BYTES_MAX) fail('COFFER_QUORUM_KEY_INVALID');
  return spki;
}

const SERVICES: readonly QuorumService[] = ['user', 'quorum', 'key-management', 'key-usage'];
function parseService(value: string): QuorumService {
  if (!(SERVICES as readonly string[]).includes(value)) fail('COFFER_CLI_USAGE', { reason: `--service must be one of ${SERVICES.join(', ')}` });
  return value as QuorumService;
}

function registerQuorumTokens(tokenSign: Command, ctx: CliContext): void {
  act<CommonOptions & { service: string; filter?: string[]; token?: string }>(
    withCommon(tokenSign.command('generate').description('get a quorum token for a service; approvers sign its bytes'), ctx)
      .requiredOption('--service <service>', SERVICES.join(' | '))
      .option('--filter <term...>', 'the key, for key-management and key-usage')
      .option('--token <file>', 'write the token bytes here (what approvers sign)'),
    (o) => ctx.run(o, () => {
      const service = parseService(o.service);
      const selector = o.filter === undefined ? undefined : keySelector(o.filter);
      return async (c) => {
        const handle = selector === undefined ? undefined : (await oneKey(c, selector)).handle;
        const t = await c.generateQuorumToken(service, handle);
        if (o.token !== undefined) writeOutputFile(o.token, t.bytes);
        const data = {
          id: t.id, service: t.service, 'expires-at': new Date(t.expiresAtMs).toISOString(),
          ...(t.handle === undefined ? {} : { 'key-reference': formatKeyReference(t.handle) }),
          ...(o.token === undefined ? { token: b64(t.bytes) } : { path: o.token }),
        };
        return { data };
      };
    }),
  );
  act<CommonOptions>(withCommon(tokenSign.command('list').description('list outstanding quorum tokens'), ctx), (o) => ctx.run(o, () => async (c) => tokenListResult(await c.listQuorumTokens())));
}

function registerQuorumApproval(tokenSign: Command, ctx: CliContext): void {
  act<CommonOptions & { token: string; approver: string; signature?: string; signaturePath?: string; privateKey?: string }>(
    withCommon(tokenSign.command('approve').description('submit an approver’s signature over a token'), ctx)
      .requiredOption('--token <file>', 'the token bytes (from generate --token)')
      .requiredOption('--approver <name>', 'the approving user')
      .option('--signature <base64>', 'the approver’s signature over the token, base64')
      .option('--signature-path <file>', 'the signature, raw DER bytes')
      .option('--private-key <file>', 'or: sign here with the approver’s PEM private key (it never leaves this process)'),
    (o) => ctx.run(o, () => {
      const token = readBoundedFile(o.token, '--token', WIRE_TEXT_BYTES_MAX);
      const signature = o.privateKey !== undefined ? approvalSignature(o.privateKey, token) : readSignature(o.signature, o.signaturePath, 'signature');
      return async (c) => ({ data: { approvals: await c.approveQuorumToken(token, o.approver, signature) } });
    }),
  );
  act<CommonOptions & { service: string; value: string }>(
    withAcks(withCommon(tokenSign.command('set-quorum-value').description('set M for an admin service (admins only)'), ctx))
      .requiredOption('--service <service>', 'user | quorum')
      .requiredOption('--value <m>', '1 (off) or 2-8'),
    (o) => ctx.run(o, () => {
      const service = o.service;
      if (service !== 'user' && service !== 'quorum') fail('COFFER_CLI_USAGE', { reason: '--service must be user or quorum' });
      const m = /^[0-9]$/.test(o.value) ? Number(o.value) : NaN;
      if (!(m >= 1 && m <= 8)) fail('COFFER_CLI_USAGE', { reason: '--value must be 1-8' });
      return async (c) => {
        await c.setQuorumValue(service, m);
        return { data: { service, value: m } };
      };
    }),
  );
  act<CommonOptions>(withCommon(tokenSign.command('list-quorum-values').description('the quorum value (M) of each admin service'), ctx), (o) => ctx.run(o, () => async (c) => {
    const v = await c.quorumValues();
    return { data: v, text: () => plain(v) };
  }));
}

/** Signs token bytes as the device checks them (hsm/users/quorum.ts): SHA-384 for P-384, else SHA-256. */
export function approvalSignature(privateKeyPath: string, token: Uint8Array): Uint8Array {
  let key;
  try {
    key = createPrivateKey(Buffer.from(readBoundedFile(privateKeyPath, '--private-key', WIRE_PEM_BYTES_MAX)).toString('utf8'));
  } catch {
    return fail('COFFER_CLI_INPUT', { reason: '--private-key is not a PEM private key' });
  }
  const hash = key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  return new Uint8Array(signWith(hash, token, key));
}

export function registerUserCommands(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('manage users (admins) and your own password and quorum key');
  registerUserManagement(user, ctx);
  registerChangePassword(user, ctx);
  registerChangeQuorum(user, ctx);
  const tokenSign = program.command('quorum').description('quorum (M of N) authentication').command('token-sign').description('token-sign quorum');
  registerQuorumTokens(tokenSign, ctx);
  registerQuorumApproval(tokenSign, ctx);
}
