// Lines from the terminal or a pipe, for the interactive prompt and for secrets (passwords).
//
// One LineSource per process reads stdin, so an interactive session and a password prompt inside it
// take their lines from the same queue: piped input `login …⏎password⏎key list⏎` works line by
// line. On a terminal, a secret prompt turns echo off (the output stream is muted while the user
// types); on a pipe, prompts are not printed at all and a secret is simply the next line.

import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';
import { fail } from '../../errors.js';

interface Waiter {
  readonly resolve: (line: string | undefined) => void;
}

/** A writable that forwards to `target` unless muted: readline echoes typed characters through it. */
class MutableOutput extends Writable {
  muted = false;
  constructor(private readonly target: NodeJS.WritableStream) {
    super();
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (!this.muted) this.target.write(chunk);
    done();
  }
}

export class LineSource {
  readonly #rl: Interface;
  readonly #out: MutableOutput;
  readonly #queue: string[] = [];
  readonly #waiters: Waiter[] = [];
  readonly terminal: boolean;
  #closed = false;

  constructor(input: NodeJS.ReadableStream & { isTTY?: boolean }, promptOutput: NodeJS.WritableStream) {
    this.terminal = input.isTTY === true;
    this.#out = new MutableOutput(promptOutput);
    this.#rl = createInterface({ input, output: this.#out, terminal: this.terminal, crlfDelay: Infinity });
    this.#rl.on('line', (line) => {
      const w = this.#waiters.shift();
      if (w !== undefined) w.resolve(line);
      else this.#queue.push(line);
    });
    this.#rl.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w.resolve(undefined);
    });
    // A queue with no reader would hold a whole pipe in memory; readline pauses only on a TTY.
    this.#rl.pause();
  }

  /** The next line, or undefined at the end of input. `prompt` is shown on a terminal only. */
  async read(prompt = ''): Promise<string | undefined> {
    if (this.terminal && prompt !== '') this.#out.write(prompt);
    const queued = this.#queue.shift();
    if (queued !== undefined) return queued;
    if (this.#closed) return undefined;
    this.#rl.resume();
    try {
      return await new Promise<string | undefined>((resolve) => this.#waiters.push({ resolve }));
    } finally {
      if (this.#waiters.length === 0) this.#rl.pause();
    }
  }

  /** A secret: not echoed on a terminal; fails COFFER_CLI_INPUT_ENDED at the end of input. */
  async readSecret(prompt: string): Promise<string> {
    if (this.terminal) this.#out.write(prompt);
    this.#out.muted = this.terminal;
    try {
      const line = await this.read();
      if (line === undefined) fail('COFFER_CLI_INPUT_ENDED');
      return line;
    } finally {
      this.#out.muted = false;
      if (this.terminal) this.#out.write('\n');
    }
  }

  close(): void {
    this.#rl.close();
  }
}

/**
 * Splits a command line into words as a POSIX shell would for the simple cases users type: blanks
 * separate words, '…' is literal, "…" allows \" and \\, a backslash outside quotes escapes the next
 * character. An unterminated quote is a usage error rather than a guess.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) word += line.charAt(++i);
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line.charAt(++i);
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== undefined) fail('COFFER_CLI_USAGE', { reason: 'unterminated quote' });
  if (inWord) words.push(word);
  return words;
}
