// The secret owner: zeroised after destroy, never printed, compared in constant time.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { createSecretKey, generateKeyPairSync } from 'node:crypto';
import { SecretBytes, constantTimeEqual, withSecret, secretKeyObject, secretKeyLength, type SecretKeyInput } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError } from '../../src/errors.js';

const MARK = 'deadbeefcafef00d';
const markBytes = (): Uint8Array => new Uint8Array(Buffer.from(MARK.repeat(2), 'hex'));

void test('destroy zeroises the owned buffer and later use is refused', () => {
  const source = markBytes();
  const s = SecretBytes.adopt(source);
  assert.equal(s.length, 16);
  s.destroy();
  assert.ok(s.destroyed);
  assert.ok(source.every((b) => b === 0), 'adopted buffer wiped');
  assert.throws(() => s.use((b) => b.length), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_SECRET_DESTROYED'));
  assert.throws(() => s.length, (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_SECRET_DESTROYED'));
  s.destroy(); // idempotent
});

void test('copyOf owns its own memory (not the caller’s buffer, not a pool slice)', () => {
  const source = markBytes();
  let view: Uint8Array | undefined;
  const s = SecretBytes.copyOf(source);
  s.use((b) => {
    view = b;
    assert.equal(b.byteOffset, 0);
    assert.equal(b.buffer.byteLength, b.length, 'a buffer of its own, not a slice of a shared pool');
  });
  source.fill(0);
  assert.equal(s.use((b) => Buffer.from(b).toString('hex')), MARK.repeat(2));
  s.destroy();
  assert.ok(view?.every((b) => b === 0), 'the owned copy is wiped on destroy');
});

void test('withSecret destroys even when the callback throws', () => {
  const s = SecretBytes.copyOf(markBytes());
  assert.throws(() => withSecret(s, () => {
    throw new Error('boom');
  }), /boom/);
  assert.ok(s.destroyed);
  const t = SecretBytes.random(32);
  assert.equal(withSecret(t, (b) => b.length), 32);
  assert.ok(t.destroyed);
});

void test('redacted in JSON.stringify, util.inspect, String, template literals and console-style formatting', () => {
  const s = SecretBytes.copyOf(markBytes());
  const renderings = [
    JSON.stringify(s),
    JSON.stringify({ key: s }),
    inspect(s),
    inspect({ nested: { key: s } }, { depth: 5 }),
    String(s),
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the point of the test
    `${s}`,
    s.toString(),
    '' + (s as unknown as string),
  ];
  for (const text of renderings) {
    assert.ok(!text.toLowerCase().includes('deadbeef'), text);
    assert.ok(!/222,\s*173/.test(text), text); // the bytes as decimal
    assert.match(text, /redacted/);
  }
  // Enumerating the object finds nothing either.
  assert.deepEqual(Object.keys(s), []);
});

void test('constantTimeEqual and equals compare contents', () => {
  assert.ok(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])));
  assert.ok(!constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])));
  assert.ok(!constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2])));
  assert.ok(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)));
  const a = SecretBytes.copyOf(markBytes());
  const b = SecretBytes.copyOf(markBytes());
  const c = SecretBytes.random(16);
  assert.ok(a.equals(b));
  assert.ok(!a.equals(c));
});

void test('secretKeyObject and secretKeyLength accept SecretBytes and secret KeyObjects only', () => {
  const raw = markBytes();
  for (const form of [SecretBytes.copyOf(raw), createSecretKey(raw)]) {
    const k = secretKeyObject(form);
    assert.equal(k.type, 'secret');
    assert.equal(secretKeyLength(form), 16);
    assert.equal(k.export().toString('hex'), MARK.repeat(2));
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.throws(() => secretKeyObject(privateKey), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_KEY_SIZE'));
  assert.equal(secretKeyLength(privateKey), 0);
});

void test('a plain Uint8Array is no SecretKeyInput: the compiler refuses it, and so does the code at run time', () => {
  const raw = markBytes();
  // The directive makes the build fail if a Uint8Array ever type-checks as a key again.
  // @ts-expect-error -- key bytes must have an owner that zeroises them (SecretBytes) or live in OpenSSL (KeyObject)
  const refused: SecretKeyInput = raw;
  // A caller that gets around the type (JavaScript, a cast) is a programmer bug: it crashes, and
  // the assertion's message says nothing about the bytes.
  for (const call of [() => secretKeyObject(refused), () => secretKeyLength(refused)]) {
    assert.throws(call, (e: unknown) => e instanceof AssertionFailure && !e.message.toLowerCase().includes('deadbeef'));
  }
});

void test('concat joins owned parts into a fresh owner and leaves the parts alone', () => {
  const a = SecretBytes.copyOf(new Uint8Array([1, 2, 3]));
  const b = SecretBytes.copyOf(new Uint8Array([4, 5]));
  const joined = SecretBytes.concat([a, b]);
  assert.deepEqual(joined.use((x) => Array.from(x)), [1, 2, 3, 4, 5]);
  joined.use((x) => assert.equal(x.buffer.byteLength, 5, 'a buffer of its own'));
  joined.destroy();
  assert.deepEqual(a.use((x) => Array.from(x)), [1, 2, 3]);
  assert.deepEqual(b.use((x) => Array.from(x)), [4, 5]);
  assert.equal(SecretBytes.concat([]).length, 0);
  a.destroy();
  assert.throws(() => SecretBytes.concat([a, b]), (e: unknown) => isCofferError(e, 'COFFER_CRYPTO_SECRET_DESTROYED'));
});
