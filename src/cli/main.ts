#!/usr/bin/env node
// The `coffer` command. Today: the offline ceremony tools (factory, operator, kcv), backup
// inspection, `hsm serve` (one node's data plane), the development cluster, the control plane
// (`up`, `service`) and its remote fleet's registry (`fleet`), the user CLI (CloudHSM
// CLI's commands, user_cli/), a demo of the device in one process, and the generator of
// docs/errors.md. Exit codes (docs/cli.md):
//   0 success · 1 an expected failure (a CofferError, its code on stderr) · 2 bad usage · 70 a bug.
// Every failure prints one stderr line, `coffer: CODE: message {detail}` (user_cli/output.ts
// errorLine), whether a command or commander's parser noticed it (user_cli/usage.ts).

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isCofferError, renderErrorsDoc } from '../errors.js';
import { registerAuditCommands } from './audit_commands.js';
import { registerBackupCommands } from './backup_commands.js';
import { registerCeremonyCommands } from './ceremony_commands.js';
import { registerHsmCommands } from './hsm_commands.js';
import { registerDevCommands } from './dev_commands.js';
import { registerFleetCommands } from './fleet_commands.js';
import { registerPkcs11Command } from './pkcs11_command.js';
import { registerServiceCommands } from './service_commands.js';
import { errorLine } from './user_cli/output.js';
import { registerUserCli } from './user_cli/register.js';
import { exitOnUsage, usageOutput } from './user_cli/usage.js';
import { runDemo } from './demo.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_BUG = 70;

/** The package's version: package.json sits three levels above dist/src/cli/main.js, in the checkout
 * and in an installed package alike. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  // Output and exit handling first: the commands registered below inherit them.
  const program = new Command('coffer')
    .description('Coffer: a clustered software HSM with sealed backup and restore')
    .version(packageVersion(), '-V, --version', 'print the version of coffer')
    .configureOutput(usageOutput())
    .showHelpAfterError()
    .exitOverride(exitOnUsage((text) => void process.stderr.write(text)));
  registerCeremonyCommands(program);
  registerBackupCommands(program);
  registerAuditCommands(program);
  registerHsmCommands(program);
  registerDevCommands(program);
  registerServiceCommands(program);
  registerFleetCommands(program);
  registerUserCli(program);
  registerPkcs11Command(program);
  program
    .command('demo')
    .description('provision a development device in a temporary directory, then log in, make keys and sign')
    .action(async () => {
      await runDemo((line) => void process.stdout.write(line + '\n'));
    });
  program
    .command('errors-doc')
    .description('print docs/errors.md, generated from the error registry')
    .action(() => void process.stdout.write(renderErrorsDoc()));
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    // `coffer` alone on a terminal opens the interactive prompt, as CloudHSM CLI does.
    await buildProgram().parseAsync(argv.length === 0 && process.stdin.isTTY ? ['interactive'] : argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    // Commander has printed its help, version or usage error line already (user_cli/usage.ts).
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    if (isCofferError(e)) {
      process.stderr.write(errorLine(e));
      // Bad usage exits 2 whichever layer noticed it (commander or a command's own checks).
      return e.code === 'COFFER_CLI_USAGE' ? EXIT_USAGE : EXIT_FAILURE;
    }
    process.stderr.write(`coffer: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT_BUG;
  }
}

process.exitCode = await main(process.argv.slice(2));
