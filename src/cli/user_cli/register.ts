// Entry point of the user CLI (docs/cli-users.md): CloudHSM CLI's commands on a cluster, through the
// client SDK. main.ts calls registerUserCli(program) once; `coffer interactive` builds its own
// command tree per line (session_commands.ts).

import type { Command } from 'commander';
import { CliContext, type CliIo } from './context.js';
import { LineSource } from './line_source.js';
import type { ClusterFactory } from './port.js';
import { registerInteractive, registerUserCliCommands } from './session_commands.js';

/** stdin, stdout and stderr of this process. stdin is opened as lines only when first needed. */
export function processIo(): CliIo {
  let lines: LineSource | undefined;
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    env: process.env,
    lines: () => (lines ??= new LineSource(process.stdin, process.stderr)),
    progressEnabled: process.stderr.isTTY,
  };
}

/** The SDK is loaded on first use, so that other commands do not pay for it. */
async function sdkFactory(): Promise<ClusterFactory> {
  return (await import('./sdk.js')).SDK_CLUSTER_FACTORY;
}

const lazyFactory: ClusterFactory = {
  connect: async (target, credentials) => (await sdkFactory()).connect(target, credentials),
  activationStates: async (target) => (await sdkFactory()).activationStates(target),
  activate: async (target, preCo, password) => (await sdkFactory()).activate(target, preCo, password),
};

/** Adds cluster activate, key, crypto, user, quorum and interactive to `program`. */
export function registerUserCli(program: Command, io: CliIo = processIo(), factory: ClusterFactory = lazyFactory): void {
  registerUserCliCommands(program, new CliContext(io, factory));
  registerInteractive(program, io, () => Promise.resolve(factory));
}
