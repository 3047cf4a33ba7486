// The state a user-CLI command runs in, and the one function every command's action goes through.
//
// One-shot (`coffer key list …`): each command resolves the cluster and the credentials from its
// options and the environment, connects and logs in, runs, prints, closes.
// Interactive (`coffer interactive`): one connection and one login live across commands; `login`
// and `logout` change them; a command without a login fails COFFER_NOT_LOGGED_IN.
//
// Failures: JSON mode prints the failure envelope on stdout; the error goes on to whoever prints its
// one stderr line (main.ts in one-shot mode, exit 1, or 2 for COFFER_CLI_USAGE; the interactive loop
// otherwise). Commander's own usage errors get the same envelope (usage.ts).

import { CofferError, isCofferError } from '../../errors.js';
import { resolveTarget, parsePin, parseRole, type ClusterTarget, type ConnectionOptions, type LoginRole } from './config.js';
import type { LineSource } from './line_source.js';
import { failureJson, parseOutputMode, render, type OutputMode, type Result } from './output.js';
import type { ClusterFactory, Credentials, UserCluster } from './port.js';
import { startProgress, type Progress } from './progress.js';

export interface CliIo {
  /** stdout: text, or bytes written as they are (a plaintext in text mode). */
  readonly out: (text: string | Uint8Array) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** stdin as lines: secrets and the interactive prompt read from it. */
  readonly lines: () => LineSource;
  readonly progressEnabled: boolean;
}

/** Options every user-CLI command takes (connection ones only in one-shot mode). */
export interface CommonOptions extends ConnectionOptions {
  output?: string;
  /** `--acks K`: acknowledgements a state change waits for (docs/cli-users.md "Acknowledgements"). */
  acks?: string;
  loginUsername?: string;
  loginRole?: string;
  loginPassword?: string;
  passwordStdin?: true;
}

/** What a command does once connected and logged in. */
export type Plan = (cluster: UserCluster) => Promise<Result>;

/** The login of an interactive session. */
interface SessionLogin {
  readonly cluster: UserCluster;
  readonly username: string;
  readonly role: LoginRole;
}

export class CliContext {
  readonly io: CliIo;
  readonly factory: ClusterFactory;
  /** Set in interactive mode: where `login` connects to. */
  readonly interactiveTarget: ClusterTarget | undefined;
  readonly defaultOutput: OutputMode;
  #login: SessionLogin | undefined;
  /** Errors whose envelope is printed, so the interactive loop does not print it twice. */
  readonly reported = new WeakSet<object>();

  constructor(io: CliIo, factory: ClusterFactory, interactiveTarget?: ClusterTarget, defaultOutput: OutputMode = 'json') {
    this.io = io;
    this.factory = factory;
    this.interactiveTarget = interactiveTarget;
    this.defaultOutput = defaultOutput;
  }

  get interactive(): boolean {
    return this.interactiveTarget !== undefined;
  }
  get login(): { username: string; role: LoginRole } | undefined {
    return this.#login === undefined ? undefined : { username: this.#login.username, role: this.#login.role };
  }

  outputMode(o: CommonOptions): OutputMode {
    return o.output === undefined ? this.defaultOutput : parseOutputMode(o.output);
  }

  progress(label: string, total: number): Progress {
    return startProgress(label, total, this.io.progressEnabled);
  }

  /** Reads a secret from the terminal (not echoed) or the next line of piped stdin. */
  readSecret(prompt: string): Promise<string> {
    return this.io.lines().readSecret(prompt);
  }

  /** Interactive `login`: connects and logs in, replacing any earlier login. */
  async startSession(credentials: Credentials): Promise<void> {
    if (this.interactiveTarget === undefined) throw new CofferError('COFFER_CLI_USAGE', { reason: 'login and logout are interactive-mode commands; one-shot commands log in with COFFER_PIN or --login-username' });
    await this.endSession();
    const cluster = await this.factory.connect(this.interactiveTarget, credentials);
    this.#login = { cluster, username: credentials.username, role: credentials.role };
  }

  async endSession(): Promise<boolean> {
    const l = this.#login;
    this.#login = undefined;
    if (l === undefined) return false;
    await l.cluster.close();
    return true;
  }

  /** One-shot credentials: --login-username (password prompted or --password), else COFFER_PIN. */
  async credentials(o: CommonOptions): Promise<Credentials> {
    // An empty COFFER_ROLE is unset, as an empty COFFER_CLUSTER_CONFIG is: the default applies.
    const envRole = this.io.env['COFFER_ROLE'];
    const role = parseRole(o.loginRole ?? (envRole === undefined || envRole === '' ? 'crypto-user' : envRole));
    if (o.loginUsername !== undefined) {
      const password = o.loginPassword ?? (await this.readSecret(`Password for ${o.loginUsername}: `));
      return { username: o.loginUsername, password, role };
    }
    const pin = this.io.env['COFFER_PIN'];
    if (pin === undefined || pin === '') throw new CofferError('COFFER_CLI_USAGE', { reason: 'no credentials: set COFFER_PIN=user:password (and COFFER_ROLE) or give --login-username' });
    return { ...parsePin(pin), role };
  }

  /**
   * Runs a command that needs a logged-in cluster and prints its result (see the header for
   * failures). `plan` parses and checks the options first, so bad usage fails before any
   * connection or login; it returns what to do with the cluster.
   */
  async run(o: CommonOptions, plan: () => Plan | Promise<Plan>): Promise<void> {
    await this.runWithout(o, async () => {
      const acks = parseAcks(o.acks);
      const fn = await plan();
      if (this.#login !== undefined) return withAcknowledgement(this.#login.cluster, acks, fn);
      if (this.interactive) throw new CofferError('COFFER_NOT_LOGGED_IN');
      const target = await resolveTarget(o, this.io.env);
      const cluster = await this.factory.connect(target, await this.credentials(o));
      try {
        return await withAcknowledgement(cluster, acks, fn);
      } finally {
        await cluster.close();
      }
    });
  }

  /** Runs `fn` (which needs no login) and prints its result. */
  async runWithout(o: CommonOptions, fn: () => Promise<Result>): Promise<void> {
    let mode: OutputMode = this.defaultOutput;
    try {
      mode = this.outputMode(o);
      const result = await fn();
      if (mode === 'text' && result.raw !== undefined) this.#outRaw(result.raw());
      else this.io.out(render(mode, result));
    } catch (e) {
      throw this.#report(mode, e);
    }
  }

  /** Bytes exactly as they are (`> file` gets the plaintext); at the interactive prompt a newline is
   * added when they lack one, so the next prompt starts on its own line. */
  #outRaw(bytes: Uint8Array): void {
    this.io.out(bytes);
    if (this.interactive && bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) this.io.out('\n');
  }

  /** Prints the envelope of an expected failure (JSON mode); the stderr line is the caller's. */
  #report(mode: OutputMode, e: unknown): unknown {
    if (!isCofferError(e)) return e; // a bug: main.ts prints the stack and exits 70
    if (mode === 'json') this.io.out(failureJson(e));
    this.reported.add(e);
    return e;
  }
}

/** `--acks K`: a positive integer (the SDK checks it against the cluster's size). */
function parseAcks(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,2}$/.test(v)) throw new CofferError('COFFER_CLI_USAGE', { reason: '--acks must be a positive integer' });
  return Number(v);
}

/**
 * Runs `fn` with the acknowledgements asked for, and adds to its result which HSMs acknowledged the
 * state change it made (JSON `acknowledged_by`, `acks_required`, `journal_seq`; a text line), when it made one.
 */
async function withAcknowledgement(cluster: UserCluster, acks: number | undefined, fn: Plan): Promise<Result> {
  cluster.setAcks(acks);
  cluster.takeAcknowledgement();
  const result = await fn(cluster);
  const ack = cluster.takeAcknowledgement();
  if (ack === undefined) return result;
  const fields = { acknowledged_by: ack.nodes, acks_required: ack.required, ...(ack.seq === undefined ? {} : { journal_seq: ack.seq }) };
  const data = result.data === undefined || result.data === null ? fields
    : typeof result.data === 'object' && !Array.isArray(result.data) ? { ...result.data, ...fields } : result.data;
  const line = `acknowledged by ${ack.nodes.length} HSM${ack.nodes.length === 1 ? '' : 's'} (${ack.required} required): ${ack.nodes.join(', ')}\n`;
  const text = result.text;
  return { ...result, data, ...(text === undefined ? {} : { text: () => text() + line }) };
}
