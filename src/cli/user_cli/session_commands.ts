// `coffer cluster activate`, `login`, `logout` and `coffer interactive`: the commands about who is
// logged in rather than about keys. The interactive loop keeps one connection and one login across
// commands; each line is parsed by a fresh command tree (commander keeps parse state per tree).

import { Command, CommanderError, Option } from 'commander';
import { CofferError, fail, isCofferError } from '../../errors.js';
import { resolveTarget, parseRole, type ClusterTarget, type ConnectionOptions } from './config.js';
import { act, withCommon } from './common.js';
import { CliContext, type CliIo, type CommonOptions } from './context.js';
import { registerCryptoCommands } from './crypto_commands.js';
import { registerKeyCommands } from './key_commands.js';
import { splitWords } from './line_source.js';
import { errorLine, failureJson, parseOutputMode, type OutputMode } from './output.js';
import type { ClusterFactory } from './port.js';
import { envelopeUsageErrors, usageOutput } from './usage.js';
import { registerUserCommands } from './user_commands.js';
import { registerWrapCommands } from './wrap_commands.js';

function registerActivate(program: Command, ctx: CliContext): void {
  const cluster = program.commands.find((c) => c.name() === 'cluster') ?? program.command('cluster').description('cluster-wide steps');
  act<CommonOptions & { password?: string }>(
    withCommon(cluster.command('activate').description('activate a new cluster: set the admin password (prompts for the PreCoPassword first)'), ctx)
      .addOption(new Option('--password <password>', 'the new admin password (visible in the process list: prefer the prompt)').hideHelp()),
    (o) => ctx.runWithout(o, async () => {
      const target = ctx.interactiveTarget ?? (await resolveTarget(o, ctx.io.env));
      const pending = await notYetActive(ctx, target);
      const preCo = await ctx.readSecret('PreCoPassword: ');
      let password = o.password;
      if (password === undefined) {
        password = await ctx.readSecret('New admin password: ');
        if (ctx.io.lines().terminal && (await ctx.readSecret('Confirm password: ')) !== password) fail('COFFER_CLI_PASSWORD_MISMATCH');
      }
      try {
        await ctx.factory.activate(pending, preCo, password);
      } catch (e) {
        throw await alreadyActiveOr(ctx, pending, e);
      }
      const already = target.endpoints.length - pending.endpoints.length;
      return { data: { message: 'Cluster activated successfully', ...(already > 0 ? { 'already-active-nodes': already } : {}) } };
    }),
  );
}

/**
 * The nodes still to activate, asked (STATUS `activated`, public) before any password is read or
 * tried: on an active cluster the device answers ACTIVATE with the generic COFFER_AUTH_FAILED, which
 * would tell the user nothing. A node that cannot be asked stays in, so activate reports its error.
 */
async function notYetActive(ctx: CliContext, target: ClusterTarget): Promise<ClusterTarget> {
  const states = await ctx.factory.activationStates(target);
  const active = states.filter((s) => s === true).length;
  if (active > 0 && !states.includes(false)) fail('COFFER_CLUSTER_ALREADY_ACTIVE', { activeNodes: active, unreachableNodes: states.length - active });
  return { ...target, endpoints: target.endpoints.filter((_, i) => states[i] !== true) };
}

/** After a refused ACTIVATE: if every node is active by now (another activation won the race), say
 * so; otherwise the refusal stands (a wrong PreCO password). */
async function alreadyActiveOr(ctx: CliContext, pending: ClusterTarget, e: unknown): Promise<unknown> {
  if (!isCofferError(e, 'COFFER_AUTH_FAILED')) return e;
  const states = await ctx.factory.activationStates(pending);
  return states.every((s) => s === true) ? new CofferError('COFFER_CLUSTER_ALREADY_ACTIVE', { activeNodes: states.length, unreachableNodes: 0 }) : e;
}

function registerLogin(program: Command, ctx: CliContext): void {
  act<CommonOptions & { username: string; role: string; password?: string }>(
    withCommon(program.command('login').description('log in (interactive mode): the password is prompted'), ctx)
      .requiredOption('--username <name>', 'user name')
      .option('--role <role>', 'admin or crypto-user', 'crypto-user')
      .addOption(new Option('--password <password>', 'the password (visible in shell history: prefer the prompt)').hideHelp()),
    (o) => ctx.runWithout(o, async () => {
      const role = parseRole(o.role);
      if (!ctx.interactive) fail('COFFER_CLI_USAGE', { reason: 'login is an interactive-mode command; one-shot commands log in with COFFER_PIN or --login-username' });
      const password = o.password ?? (await ctx.readSecret(`Password for ${o.username}: `));
      await ctx.startSession({ username: o.username, password, role });
      return { data: { username: o.username, role } };
    }),
  );
  act<CommonOptions>(withCommon(program.command('logout').description('log out (interactive mode)'), ctx), (o) => ctx.runWithout(o, async () => {
    if (!(await ctx.endSession())) fail('COFFER_NOT_LOGGED_IN');
    return { data: { message: 'Logout successful' } };
  }));
}

/** Adds every user-CLI command to `program` for the given context (one-shot or interactive); their
 * usage errors get the failure envelope like every other failure (usage.ts). */
export function registerUserCliCommands(program: Command, ctx: CliContext): void {
  const before = new Set(program.commands);
  registerActivate(program, ctx);
  if (ctx.interactive) registerLogin(program, ctx);
  const key = registerKeyCommands(program, ctx);
  registerWrapCommands(key, ctx);
  registerCryptoCommands(program, ctx);
  registerUserCommands(program, ctx);
  for (const c of program.commands) if (!before.has(c)) envelopeUsageErrors(c, ctx);
}

/** The command tree of one interactive line: every command in it is a user-CLI command, so an
 * unknown one (`key lst`, `lst`) gets the envelope too. */
function interactiveProgram(ctx: CliContext): Command {
  const program = new Command('coffer').configureOutput(usageOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) }));
  envelopeUsageErrors(program, ctx);
  registerUserCliCommands(program, ctx);
  return program;
}

/** One line of the interactive loop; returns false when the session should end. */
async function runLine(ctx: CliContext, line: string, mode: OutputMode): Promise<boolean> {
  try {
    const words = splitWords(line);
    if (words.length === 0) return true;
    if (words.length === 1 && (words[0] === 'quit' || words[0] === 'exit')) return false;
    await interactiveProgram(ctx).parseAsync(words, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return true; // help, or a usage error commander has reported (usage.ts)
    if (mode === 'json' && !ctx.reported.has(e as object)) ctx.io.out(failureJson(e));
    ctx.io.err(errorLine(e));
    if (!isCofferError(e)) ctx.io.err(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  }
  return true;
}

/** Runs the prompt until quit, exit or the end of input; logs out at the end. */
export async function runInteractive(io: CliIo, factory: ClusterFactory, target: ClusterTarget, mode: OutputMode): Promise<void> {
  const ctx = new CliContext(io, factory, target, mode);
  const lines = io.lines();
  try {
    for (;;) {
      const line = await lines.read('coffer > ');
      if (line === undefined || !(await runLine(ctx, line, mode))) break;
    }
  } finally {
    await ctx.endSession();
  }
}

/** `coffer interactive`: the cluster comes from the same options as one-shot commands. */
export function registerInteractive(program: Command, io: CliIo, factory: () => Promise<ClusterFactory>): void {
  program
    .command('interactive')
    .description('a prompt that keeps one connection and login across commands (login, logout, quit)')
    .option('--cluster-config <file>', 'cluster config JSON (env COFFER_CLUSTER_CONFIG)')
    .option('--endpoint <host:port>', 'an HSM of the cluster (repeatable; needs --ca)', (v: string, p: string[] | undefined) => [...(p ?? []), v])
    .option('--ca <file>', 'the customer CA certificate (PEM)')
    .addOption(new Option('--output <format>', 'default output of every command: json or text').choices(['json', 'text']).default('json'))
    .action(async (o: ConnectionOptions & { output: string }) => {
      const target = await resolveTarget(o, io.env);
      await runInteractive(io, await factory(), target, parseOutputMode(o.output));
    });
}
