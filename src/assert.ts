// Programmer-bug checks (CONTRIBUTING.md rule 2): kept on in production, they crash rather than carry on
// with a broken invariant. Expected failures use CofferError instead (src/errors.ts).

export class AssertionFailure extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionFailure';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}

export function unreachable(value: never): never {
  throw new AssertionFailure(`unreachable: ${String(value)}`);
}
