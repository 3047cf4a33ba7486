// Keeps src/errors.ts, docs/errors.md and the mappings in step (CONTRIBUTING.md rule 2; fastify's
// test/internals/errors.test.js is the model).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { ERRORS, CofferError, renderErrorsDoc, type ErrorCode } from '../../src/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

test('docs/errors.md is generated from the registry', () => {
  const doc = readFileSync(resolve(ROOT, 'docs/errors.md'), 'utf8');
  assert.equal(doc, renderErrorsDoc(), 'run `npm run docs:errors` and commit docs/errors.md');
});

test('every code is well-formed and mapped', () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    assert.match(code, /^COFFER_[A-Z0-9_]+$/);
    assert.match(spec.ckr, /^CKR_[A-Z_]+$/, code);
    assert.ok(spec.http >= 400 && spec.http < 600, code);
    assert.ok(spec.message.length > 0 && !spec.message.includes('${'), code);
  }
});

test('authentication failures say one generic thing', () => {
  assert.equal(ERRORS.COFFER_AUTH_FAILED.message, ERRORS.COFFER_USER_LOCKED.message);
});

test('CofferError carries its code, mapping and detail, and serialises without a stack', () => {
  const code: ErrorCode = 'COFFER_FORMAT_UNKNOWN_VERSION';
  const e = new CofferError(code, { version: 9 });
  assert.equal(e.code, code);
  assert.equal(e.message, ERRORS[code].message);
  assert.equal(e.ckr, 'CKR_DATA_INVALID');
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { code, message: ERRORS[code].message, detail: { version: 9 } });
  assert.ok(Object.isFrozen(e.detail));
  assert.match(inspect(e), /COFFER_FORMAT_UNKNOWN_VERSION|Format version/);
});
