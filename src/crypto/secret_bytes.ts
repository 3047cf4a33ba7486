// The owner of secret key bytes (CONTRIBUTING.md rule 3). A SecretBytes holds its own ArrayBuffer (never a
// slice of Node's shared Buffer pool), hands out views only inside `use`, zeroises on `destroy`, and
// prints `[redacted]` from toJSON, toString and util.inspect so a secret cannot reach a log by accident.

import { inspect } from 'node:util';
import { createSecretKey, KeyObject, randomFillSync, timingSafeEqual } from 'node:crypto';
import { assert } from '../assert.js';
import { fail } from '../errors.js';

export class SecretBytes {
  #bytes: Uint8Array | undefined;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** Copies `source` into a fresh owned buffer. The caller keeps (and should wipe) its own copy. */
  static copyOf(source: Uint8Array): SecretBytes {
    const owned = new Uint8Array(new ArrayBuffer(source.length));
    owned.set(source);
    return new SecretBytes(owned);
  }

  /** Takes ownership of `source` and wipes it on destroy. Only for buffers nobody else holds. */
  static adopt(source: Uint8Array): SecretBytes {
    return new SecretBytes(source);
  }

  /** The parts one after another in a fresh owned buffer (e.g. K_IN = MKBK ‖ AKBK); the parts are left as they are. */
  static concat(parts: readonly SecretBytes[]): SecretBytes {
    const out = new SecretBytes(new Uint8Array(new ArrayBuffer(parts.reduce((n, p) => n + p.length, 0))));
    let at = 0;
    for (const p of parts) {
      p.use((b) => out.use((o) => o.set(b, at)));
      at += p.length;
    }
    return out;
  }

  /** Fresh random bytes from the system CSPRNG. */
  static random(length: number): SecretBytes {
    const owned = new Uint8Array(new ArrayBuffer(length));
    randomFillSync(owned);
    return new SecretBytes(owned);
  }

  get length(): number {
    return this.#live().length;
  }

  get destroyed(): boolean {
    return this.#bytes === undefined;
  }

  /** Runs `fn` with a view of the bytes. The view must not escape `fn`. */
  use<T>(fn: (bytes: Uint8Array) => T): T {
    return fn(this.#live());
  }

  /** Constant-time equality with another secret. */
  equals(other: SecretBytes): boolean {
    return other.use((b) => constantTimeEqual(this.#live(), b));
  }

  /** Zeroises the bytes. Idempotent. */
  destroy(): void {
    if (this.#bytes !== undefined) {
      this.#bytes.fill(0);
      this.#bytes = undefined;
    }
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'SecretBytes [redacted]';
  }

  #live(): Uint8Array {
    return this.#bytes ?? fail('COFFER_CRYPTO_SECRET_DESTROYED');
  }
}

/**
 * Constant-time comparison of two byte strings. Lengths are not secret (they leak through
 * timing of everything else anyway), so unequal lengths return false at once.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.length === 0) return true;
  return timingSafeEqual(a, b);
}

/** Runs `fn` with `secret`, then zeroises it whatever happens. */
export function withSecret<T>(secret: SecretBytes, fn: (bytes: Uint8Array) => T): T {
  try {
    return secret.use(fn);
  } finally {
    secret.destroy();
  }
}

/**
 * A symmetric key as the crypto layer accepts it: a node KeyObject (preferred: its bytes live in
 * OpenSSL memory, out of the JS heap) or a SecretBytes owner (which the caller destroys). Plain
 * bytes are refused by the type on purpose: a bare Uint8Array has no owner that zeroises it, so a
 * key passed that way tends to outlive its use (CONTRIBUTING.md rule 3). Wrap bytes with
 * `SecretBytes.copyOf` (and wipe the source) or `SecretBytes.adopt`.
 */
export type SecretKeyInput = KeyObject | SecretBytes;

/**
 * The key as a secret KeyObject. Bytes are copied into OpenSSL memory by createSecretKey; the
 * SecretBytes is neither kept nor destroyed. A KeyObject that is not secret is a programmer bug
 * of the caller's type juggling, reported as a key-size error so no detail of it leaks.
 */
export function secretKeyObject(key: SecretKeyInput): KeyObject {
  checkForm(key);
  if (key instanceof SecretBytes) return key.use((b) => createSecretKey(b));
  if (key.type !== 'secret') fail('COFFER_CRYPTO_KEY_SIZE');
  return key;
}

/** Length in bytes of a secret key input, without copying it. */
export function secretKeyLength(key: SecretKeyInput): number {
  checkForm(key);
  if (key instanceof SecretBytes) return key.length;
  return key.symmetricKeySize ?? 0;
}

/**
 * The type already refuses plain bytes; this catches a caller that got around it (JavaScript, a
 * cast). That is a programmer bug, so it crashes rather than quietly wrap unowned key bytes.
 */
function checkForm(key: SecretKeyInput): void {
  assert(key instanceof SecretBytes || key instanceof KeyObject, 'a key is a KeyObject or SecretBytes, never plain bytes');
}
