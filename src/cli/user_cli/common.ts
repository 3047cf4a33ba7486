// Shared pieces of the user CLI's commands: the common options, picking exactly one key with a
// filter, and writing output files.

import { Option, type Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { fail } from '../../errors.js';
import { matchesFilter, parseFilter, type KeyFilter } from './args.js';
import type { CliContext, CommonOptions } from './context.js';
import type { KeyDescription } from './output.js';
import type { UserCluster } from './port.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** Adds `--output`, and in one-shot mode the connection and login options, to a leaf command. */
export function withCommon(cmd: Command, ctx: CliContext): Command {
  cmd.addOption(new Option('--output <format>', 'json (default, CloudHSM-style envelope) or text').choices(['json', 'text']));
  if (ctx.interactive) return cmd;
  return cmd
    .option('--cluster-config <file>', 'cluster config JSON { endpoints: [{host, port}], ca: "path" } (env COFFER_CLUSTER_CONFIG)')
    .option('--endpoint <host:port>', 'an HSM of the cluster (repeatable; needs --ca)', collect)
    .option('--ca <file>', 'the customer CA certificate (PEM) the HSMs chain to')
    .option('--cluster-id <id>', 'find the cluster\'s HSMs from the control plane (DescribeClusters; needs --ca, AWS credentials, a region and AWS_ENDPOINT_URL) (env COFFER_CLUSTER_ID)')
    .option('--login-username <name>', 'log in as this user; the password is prompted (or read from stdin). Default: COFFER_PIN')
    .option('--login-role <role>', 'admin or crypto-user (default: COFFER_ROLE, else crypto-user)')
    .option('--password-stdin', 'read passwords from stdin lines (the default when stdin is not a terminal)')
    .addOption(new Option('--login-password <password>', 'the login password (visible to other users of this machine: prefer the prompt)').hideHelp());
}

/** Adds `--acks K` to a state-changing command (docs/cli-users.md "Acknowledgements"). */
export function withAcks(cmd: Command): Command {
  return cmd.option('--acks <k>', 'return once k HSMs hold the change (relayed clusters; default 2 with two or more HSMs, else 1)');
}

/** A command's action with typed options: commander passes (options, command). */
export function act<O extends CommonOptions>(cmd: Command, fn: (o: O) => Promise<void>): Command {
  return cmd.action(async (o: O) => fn(o));
}

/** Parses a filter that must select one key (checked before connecting). */
export function keySelector(terms: readonly string[] | undefined, option = '--filter'): KeySelector {
  if (terms === undefined || terms.length === 0) fail('COFFER_CLI_USAGE', { reason: `${option} is required` });
  return { filter: parseFilter(terms), option };
}

export interface KeySelector {
  readonly filter: KeyFilter;
  readonly option: string;
}

/** The one key a selector matches; none → COFFER_OBJECT_NOT_FOUND, several → COFFER_CLI_FILTER_AMBIGUOUS. */
export async function oneKey(cluster: UserCluster, { filter, option }: KeySelector): Promise<KeyDescription> {
  const onlyHandle = filter.handle !== undefined && Object.keys(filter).every((k) => k === 'handle' || k === 'booleans') && Object.keys(filter.booleans).length === 0;
  const candidates = onlyHandle && filter.handle !== undefined ? [await cluster.describe(filter.handle)] : await cluster.findKeys(filter);
  const matched = candidates.filter((k) => matchesFilter(k, filter));
  if (matched.length === 0) fail('COFFER_OBJECT_NOT_FOUND', { reason: `${option} matched no key` });
  if (matched.length > 1) fail('COFFER_CLI_FILTER_AMBIGUOUS', { option, matched: matched.length });
  return matched[0] as KeyDescription;
}

/** Writes raw bytes or text to a new file (never over an existing one: outputs are often keys). */
export function writeOutputFile(path: string, content: Uint8Array | string): void {
  try {
    writeFileSync(path, content, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    const errno = e instanceof Error && 'code' in e ? String(e.code) : 'unknown';
    if (errno === 'EEXIST') fail('COFFER_CLI_OUTPUT_EXISTS');
    fail('COFFER_CLI_OUTPUT_UNWRITABLE', { errno });
  }
}
