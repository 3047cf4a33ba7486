// SP 800-108r1 counter-mode KDF with HMAC-SHA-256 against all 480 [PRF=HMAC_SHA256] records of
// the NIST CAVP KDFCTR file (BEFORE/AFTER/MIDDLE_FIXED × r = 8/16/24/32), including NIST's
// intermediate PRF inputs, and Coffer's own layout (Label || 0x00 || Context || [L]_32, 32-bit
// counter first), which is the BEFORE_FIXED / RLEN=32_BITS group.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac, createSecretKey } from 'node:crypto';
import {
  counterModePrfInput,
  deriveKeyCounterHmacSha256,
  kdfCounterHmacSha256,
  type CounterBits,
  type CounterModeInput,
} from '../../src/crypto/kdf_sp800_108.js';
import { SecretBytes } from '../../src/crypto/secret_bytes.js';
import { AssertionFailure } from '../../src/assert.js';
import { isCofferError } from '../../src/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FILE = resolve(ROOT, 'test/vectors/nist-sp800-108-kdf/KBKDF-CTR-HMAC_SHA256.txt');
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

type Location = 'BEFORE_FIXED' | 'AFTER_FIXED' | 'MIDDLE_FIXED';

interface KdfRecord {
  readonly location: Location;
  readonly counterBits: CounterBits;
  readonly count: number;
  readonly fields: ReadonlyMap<string, string>;
  /** NIST's intermediate PRF inputs ("instring"), one per iteration. */
  readonly instrings: readonly string[];
}

function parse(): KdfRecord[] {
  const out: KdfRecord[] = [];
  let prf = '';
  let location: Location = 'BEFORE_FIXED';
  let counterBits: CounterBits = 8;
  let cur: { count: number; fields: Map<string, string>; instrings: string[] } | undefined;
  const flush = (): void => {
    if (cur !== undefined) out.push({ location, counterBits, ...cur });
    cur = undefined;
  };
  for (const raw of readFileSync(FILE, 'utf8').split(/\r?\n/)) {
    const line = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = /^\[PRF=(\w+)\]$/.exec(line))) {
      flush();
      prf = m[1] ?? '';
    } else if ((m = /^\[CTRLOCATION=(\w+)\]$/.exec(line))) location = m[1] as Location;
    else if ((m = /^\[RLEN=(\d+)_BITS\]$/.exec(line))) counterBits = Number(m[1]) as CounterBits;
    else if ((m = /^COUNT=(\d+)$/.exec(line))) {
      flush();
      assert.equal(prf, 'HMAC_SHA256', 'the extract holds only HMAC-SHA-256 sections');
      cur = { count: Number(m[1]), fields: new Map(), instrings: [] };
    } else if ((m = /^instring = ([0-9a-f]+)$/.exec(line)) && cur !== undefined) cur.instrings.push(m[1] ?? '');
    else if ((m = /^(\w+) = ([0-9a-f]*)$/.exec(line)) && cur !== undefined) cur.fields.set(m[1] ?? '', m[2] ?? '');
  }
  flush();
  return out;
}

function field(r: KdfRecord, name: string): string {
  const v = r.fields.get(name);
  assert.ok(v !== undefined, `${r.location} r=${r.counterBits} COUNT ${r.count} has ${name}`);
  return v;
}

/** Maps a CAVP record onto the general core: where the fixed data sits relative to the counter. */
function inputOf(r: KdfRecord): CounterModeInput {
  const lengthBits = Number(field(r, 'L'));
  const empty = new Uint8Array(0);
  switch (r.location) {
    case 'BEFORE_FIXED':
      return { counterBits: r.counterBits, before: empty, after: hex(field(r, 'FixedInputData')), lengthBits };
    case 'AFTER_FIXED':
      return { counterBits: r.counterBits, before: hex(field(r, 'FixedInputData')), after: empty, lengthBits };
    case 'MIDDLE_FIXED': {
      // MIDDLE_FIXED splits the fixed data: DataBeforeCtrData || [i]_r || DataAfterCtrData.
      const before = hex(field(r, 'DataBeforeCtrData'));
      const after = hex(field(r, 'DataAfterCtrData'));
      assert.equal(before.length, Number(field(r, 'DataBeforeCtrLen')));
      assert.equal(after.length, Number(field(r, 'DataAfterCtrLen')));
      return { counterBits: r.counterBits, before, after, lengthBits };
    }
  }
}

const records = parse();

void test('the extract holds 480 records: 40 per location × counter width', () => {
  assert.equal(records.length, 480);
  for (const location of ['BEFORE_FIXED', 'AFTER_FIXED', 'MIDDLE_FIXED'] as const) {
    for (const bits of [8, 16, 24, 32]) {
      assert.equal(records.filter((r) => r.location === location && r.counterBits === bits).length, 40, `${location} r=${bits}`);
    }
  }
});

void test('all 480 HMAC-SHA-256 records through the general core, PRF inputs included', () => {
  for (const r of records) {
    const input = inputOf(r);
    const where = `${r.location} r=${r.counterBits} COUNT ${r.count}`;
    assert.equal(toHex(kdfCounterHmacSha256(SecretBytes.copyOf(hex(field(r, 'KI'))), input)), field(r, 'KO'), where);
    // NIST's "instring" lines are the PRF input of each iteration i = 1..n.
    assert.equal(r.instrings.length, Math.ceil(input.lengthBits / 256), where);
    r.instrings.forEach((s, i) => assert.equal(toHex(counterModePrfInput(i + 1, input)), s, `${where} i=${i + 1}`));
  }
});

void test('a corrupted vector fails: flipped expected output, key, fixed data or counter width', () => {
  const r = records.find((x) => x.location === 'MIDDLE_FIXED' && x.counterBits === 16);
  assert.ok(r !== undefined);
  const input = inputOf(r);
  const ko = field(r, 'KO');
  const got = toHex(kdfCounterHmacSha256(SecretBytes.copyOf(hex(field(r, 'KI'))), input));
  assert.equal(got, ko);
  const mutated = (ko.slice(0, 3) + ((parseInt(ko[3] ?? '0', 16) ^ 1).toString(16)) + ko.slice(4));
  assert.notEqual(got, mutated);
  const key = hex(field(r, 'KI'));
  key[0] = (key[0] ?? 0) ^ 0x80;
  assert.notEqual(toHex(kdfCounterHmacSha256(SecretBytes.copyOf(key), input)), ko);
  const after = Uint8Array.from(input.after);
  after[0] = (after[0] ?? 0) ^ 1;
  assert.notEqual(toHex(kdfCounterHmacSha256(SecretBytes.copyOf(hex(field(r, 'KI'))), { ...input, after })), ko);
  assert.notEqual(toHex(kdfCounterHmacSha256(SecretBytes.copyOf(hex(field(r, 'KI'))), { ...input, counterBits: 24 })), ko);
});

void test("Coffer's layout is the CAVP BEFORE_FIXED / RLEN=32_BITS case with Label || 0x00 || Context || [L]_32", () => {
  const raw = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const key = SecretBytes.copyOf(raw);
  const label = new TextEncoder().encode('coffer pbk v1');
  const context = new TextEncoder().encode('FIPS|mkbk-1|akbk-2');
  for (const lengthBytes of [16, 32, 33, 64, 100]) {
    const fixed = Buffer.concat([label, Buffer.of(0), context, Buffer.from([0, 0, (lengthBytes * 8) >> 8, (lengthBytes * 8) & 0xff])]);
    // Independent computation straight from §4.1 with node's HMAC.
    const blocks: Buffer[] = [];
    for (let i = 1; blocks.length * 32 < lengthBytes; i++) {
      blocks.push(createHmac('sha256', raw).update(Buffer.from([0, 0, 0, i])).update(fixed).digest());
    }
    const expected = Buffer.concat(blocks).subarray(0, lengthBytes).toString('hex');
    const derived = deriveKeyCounterHmacSha256(key, label, context, lengthBytes);
    assert.ok(derived instanceof SecretBytes);
    assert.equal(derived.use(toHex), expected, `L=${lengthBytes}`);
    // Same through the general core with the CAVP BEFORE_FIXED / r = 32 mapping.
    assert.equal(toHex(kdfCounterHmacSha256(key, { counterBits: 32, before: new Uint8Array(0), after: fixed, lengthBits: lengthBytes * 8 })), expected);
  }
  // Label, context and length each change the key.
  const base = deriveKeyCounterHmacSha256(key, label, context, 32).use(toHex);
  assert.notEqual(deriveKeyCounterHmacSha256(key, label, new TextEncoder().encode('NON_FIPS|mkbk-1|akbk-2'), 32).use(toHex), base);
  assert.notEqual(deriveKeyCounterHmacSha256(key, new TextEncoder().encode('coffer pbk v2'), context, 32).use(toHex), base);
  assert.notEqual(deriveKeyCounterHmacSha256(key, label, context, 33).use((b) => toHex(b.subarray(0, 32))), base);
  // Key forms agree; plain bytes are refused.
  assert.equal(deriveKeyCounterHmacSha256(createSecretKey(raw), label, context, 32).use(toHex), base);
  assert.equal(deriveKeyCounterHmacSha256(SecretBytes.copyOf(raw), label, context, 32).use(toHex), base);
  // @ts-expect-error -- a plain Uint8Array is not a SecretKeyInput (the build fails if it ever is)
  assert.throws(() => deriveKeyCounterHmacSha256(raw, label, context, 32), AssertionFailure);
});

void test('lengths outside the limits are refused', () => {
  const key = SecretBytes.copyOf(new Uint8Array(32));
  const e = new Uint8Array(0);
  for (const lengthBits of [0, -8, 7, 12.5, 1025 * 8]) {
    assert.throws(() => kdfCounterHmacSha256(key, { counterBits: 8, before: e, after: e, lengthBits }), (x: unknown) => isCofferError(x, 'COFFER_CRYPTO_INPUT_LENGTH'));
  }
  assert.equal(kdfCounterHmacSha256(key, { counterBits: 8, before: e, after: e, lengthBits: 1024 * 8 }).length, 1024);
  for (const n of [0, 1025, 1.5]) {
    assert.throws(() => deriveKeyCounterHmacSha256(key, new Uint8Array([1]), e, n), (x: unknown) => isCofferError(x, 'COFFER_CRYPTO_INPUT_LENGTH'));
  }
  // A 0x00 inside the label would make Label || 0x00 || Context ambiguous.
  assert.throws(() => deriveKeyCounterHmacSha256(key, new Uint8Array([1, 0, 2]), e, 32), (x: unknown) => isCofferError(x, 'COFFER_MECHANISM_PARAM_INVALID'));
});
