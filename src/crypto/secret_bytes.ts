// The owner of secret key bytes (CONTRIBUTING.md rule 3). A SecretBytes holds its own ArrayBuffer (never a
// slice of Node's shared Buffer pool), hands out views only inside `use`, zeroises on `destroy`, and
// prints `[redacted]` from toJSON, toString and util.inspect so a secret cannot reach a log by accident.

import { inspect } from 'node:util';
import { createSecretKey, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
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
 * OpenSSL memory, out of the JS heap), a SecretBytes owner, or plain bytes the caller owns.
 */
export type SecretKeyInput = KeyObject | SecretBytes | Uint8Array;

/**
 * The key as a secret KeyObject. Bytes are copied into OpenSSL memory by createSecretKey; the
 * caller's buffer is neither kept nor wiped. A KeyObject that is not secret is a programmer bug
 * of the caller's type juggling, reported as a key-size error so no detail of it leaks.
 */
export function secretKeyObject(key: SecretKeyInput): KeyObject {
  if (key instanceof SecretBytes) return key.use((b) => createSecretKey(b));
  if (key instanceof Uint8Array) return createSecretKey(key);
  if (key.type !== 'secret') fail('COFFER_CRYPTO_KEY_SIZE');
  return key;
}

/** Length in bytes of a secret key input, without copying it. */
export function secretKeyLength(key: SecretKeyInput): number {
  if (key instanceof SecretBytes || key instanceof Uint8Array) return key.length;
  return key.symmetricKeySize ?? 0;
}
