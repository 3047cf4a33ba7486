// Commander's own usage errors (unknown command or option, missing option or argument, a value outside
// its choices, a missing subcommand) reported as every other failure of `coffer` is (docs/cli.md,
// docs/cli-users.md "Output"): one `coffer: COFFER_CLI_USAGE: …` line on stderr, exit 2, and for the
// user CLI's commands in JSON mode the failure envelope on stdout, so a script that parses stdout
// sees a usage error like any other.

import type { Command, CommanderError, OutputConfiguration } from 'commander';
import type { CliContext } from './context.js';
import { commanderUsageError, errorLine, failureJson, type OutputMode } from './output.js';

/** Commander's output: its error messages become our one stderr line; `writeErr`/`writeOut` as given. */
export function usageOutput(io: Partial<Pick<OutputConfiguration, 'writeErr' | 'writeOut'>> = {}): OutputConfiguration {
  return { ...io, outputError: (message, write) => write(errorLine(commanderUsageError(message))) };
}

/**
 * How commander exits: help and --version (exit code 0) and usage errors go on to the caller as
 * CommanderErrors (main.ts maps them to exit codes). A missing subcommand prints the help but no
 * error through outputError, so its line is written here.
 */
export function exitOnUsage(writeErr: (text: string) => void): (err: CommanderError) => never {
  return (err) => {
    if (err.code === 'commander.help' && err.exitCode !== 0) writeErr(errorLine(commanderUsageError(err.message)));
    throw err;
  };
}

/** Gives `cmd` and every command under it the envelope for commander's usage errors (JSON mode). */
export function envelopeUsageErrors(cmd: Command, ctx: CliContext): void {
  const exit = exitOnUsage(ctx.io.err);
  cmd.exitOverride((err) => {
    if (err.exitCode !== 0 && modeOf(cmd, ctx) === 'json') ctx.io.out(failureJson(commanderUsageError(err.message)));
    return exit(err);
  });
  for (const sub of cmd.commands) envelopeUsageErrors(sub, ctx);
}

/** The output mode of a command whose parse failed: its parsed --output, else one among the words it
 * did not parse (`key lst --output text`), else the context's default. */
function modeOf(cmd: Command, ctx: CliContext): OutputMode {
  const parsed: unknown = cmd.opts()['output'];
  const words = cmd.args;
  const at = words.indexOf('--output');
  const given = parsed ?? (at >= 0 ? words[at + 1] : words.find((w) => w.startsWith('--output='))?.slice('--output='.length));
  return given === 'json' || given === 'text' ? given : ctx.defaultOutput;
}
