// Attribute rules (src/hsm/objects/attributes.ts): defaults, computed attributes per origin, template
// consistency, and every setAttribute rule, each with the case that must be refused.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  KEY_FUNCTIONS,
  PERMITTED_FUNCTIONS,
  applyAttributeChange,
  resolveTemplate,
  type ResolvedTemplate,
  type ObjectTemplate,
} from '../../../src/hsm/objects/attributes.js';
import type { BooleanAttributes, KeyType, ObjectClass } from '../../../src/hsm/types.js';
import { throwsCode } from '../../helpers.js';

const GEN = { kind: 'generated' } as const;

function aes(template: ObjectTemplate = {}): ResolvedTemplate {
  return resolveTemplate('SECRET_KEY', 'AES', template, GEN);
}

void test('defaults: token, sensitive, extractable, ordinary functions only, local key computed attributes', () => {
  const a = aes().attributes;
  assert.deepEqual(
    { ...a },
    {
      token: true, sensitive: true, extractable: true, encrypt: true, decrypt: true, sign: false, verify: false,
      wrap: false, unwrap: false, derive: false, trusted: false, wrapWithTrusted: false, local: true,
      neverExtractable: false, alwaysSensitive: true, modifiable: true, destroyable: true,
    },
  );
  const pub = resolveTemplate('PUBLIC_KEY', 'RSA', {}, GEN).attributes;
  assert.equal(pub.sensitive, false);
  assert.equal(pub.alwaysSensitive, false);
  assert.equal(pub.verify && pub.encrypt && !pub.wrap, true);
  const priv = resolveTemplate('PRIVATE_KEY', 'EC', {}, GEN).attributes;
  assert.equal(priv.sign && priv.sensitive && !priv.derive && !priv.decrypt, true);
  assert.equal(resolveTemplate('SECRET_KEY', 'GENERIC_SECRET', {}, GEN).attributes.sign, true);
  const r = aes({ label: 'x', id: Uint8Array.of(9), manageKeyQuorum: 2, useKeyQuorum: 8 });
  assert.equal(r.label, 'x');
  assert.deepEqual([...r.id], [9]);
});

void test('never-extractable and always-sensitive follow the origin (PKCS#11 C_GenerateKey, C_UnwrapKey, C_DeriveKey)', () => {
  const gen = aes({ sensitive: false, extractable: false }).attributes;
  assert.equal(gen.alwaysSensitive, false);
  assert.equal(gen.neverExtractable, true);
  for (const kind of ['unwrapped', 'imported'] as const) {
    const a = resolveTemplate('SECRET_KEY', 'AES', { extractable: false }, { kind }).attributes;
    assert.deepEqual([a.local, a.alwaysSensitive, a.neverExtractable], [false, false, false], kind);
  }
  const strongBase = aes({ extractable: false }).attributes;
  const d1 = resolveTemplate('SECRET_KEY', 'AES', { extractable: false }, { kind: 'derived', base: strongBase }).attributes;
  assert.deepEqual([d1.local, d1.alwaysSensitive, d1.neverExtractable], [false, true, true]);
  const d2 = resolveTemplate('SECRET_KEY', 'AES', { extractable: true }, { kind: 'derived', base: strongBase }).attributes;
  assert.equal(d2.neverExtractable, false);
  const weakBase = aes({ sensitive: false }).attributes;
  const d3 = resolveTemplate('SECRET_KEY', 'AES', { extractable: false }, { kind: 'derived', base: weakBase }).attributes;
  assert.deepEqual([d3.alwaysSensitive, d3.neverExtractable], [false, false]);
});

void test('each key kind accepts exactly its permitted functions', () => {
  const kinds: [ObjectClass, KeyType][] = [
    ['SECRET_KEY', 'AES'], ['SECRET_KEY', 'GENERIC_SECRET'], ['PRIVATE_KEY', 'RSA'], ['PUBLIC_KEY', 'RSA'],
    ['PRIVATE_KEY', 'EC'], ['PUBLIC_KEY', 'EC'], ['PRIVATE_KEY', 'EC_EDWARDS'], ['PUBLIC_KEY', 'EC_EDWARDS'],
  ];
  let refused = 0;
  for (const [cls, keyType] of kinds) {
    const permitted = PERMITTED_FUNCTIONS[`${cls}/${keyType}`] ?? [];
    for (const fn of KEY_FUNCTIONS) {
      const t: ObjectTemplate = { [fn]: true };
      if (permitted.includes(fn)) assert.equal(resolveTemplate(cls, keyType, t, GEN).attributes[fn], true);
      else {
        throwsCode(() => resolveTemplate(cls, keyType, t, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
        refused++;
      }
    }
  }
  assert.equal(refused, 8 * 7 - 22); // 22 permitted pairs in the table
  // the examples of the brief, named
  throwsCode(() => resolveTemplate('PRIVATE_KEY', 'RSA', { verify: true }, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => resolveTemplate('SECRET_KEY', 'GENERIC_SECRET', { encrypt: true }, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => resolveTemplate('SECRET_KEY', 'RSA', {}, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => resolveTemplate('PUBLIC_KEY', 'AES', {}, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
});

void test('class rules: public keys are never sensitive or wrap-with-trusted; private keys are never trusted', () => {
  throwsCode(() => resolveTemplate('PUBLIC_KEY', 'EC', { sensitive: true }, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => resolveTemplate('PUBLIC_KEY', 'EC', { wrapWithTrusted: true }, GEN), 'COFFER_TEMPLATE_INCONSISTENT');
  const priv = resolveTemplate('PRIVATE_KEY', 'RSA', {}, GEN);
  throwsCode(() => applyAttributeChange('PRIVATE_KEY', 'RSA', priv, 'trusted', true, 'admin'), 'COFFER_TEMPLATE_INCONSISTENT');
});

void test('template shape: computed attributes read-only, unknown names and wrong types invalid, trusted only false', () => {
  for (const name of ['local', 'neverExtractable', 'alwaysSensitive']) {
    throwsCode(() => aes({ [name]: false }), 'COFFER_ATTRIBUTE_READ_ONLY');
  }
  throwsCode(() => aes({ colour: 'red' } as unknown as ObjectTemplate), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => aes({ encrypt: 'yes' } as unknown as ObjectTemplate), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => aes({ trusted: true }), 'COFFER_ATTRIBUTE_READ_ONLY');
  assert.equal(aes({ trusted: false }).attributes.trusted, false);
});

void test('token and session: a session object needs its session id, a token object must not have one', () => {
  throwsCode(() => aes({ token: false }), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => aes({ sessionId: 's1' }), 'COFFER_TEMPLATE_INCONSISTENT');
  const r = resolveTemplate('SECRET_KEY', 'AES', { token: false, sessionId: 's1' }, GEN);
  assert.equal(r.attributes.token, false);
  assert.equal(r.sessionId, 's1');
});

void test('label, id and quorum values are bounded', () => {
  assert.equal(aes({ label: 'é'.repeat(128) }).label.length, 128); // 256 bytes: at the limit
  throwsCode(() => aes({ label: 'é'.repeat(128) + 'x' }), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => aes({ label: 'a\ud800b' }), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => aes({ id: new Uint8Array(257) }), 'COFFER_ATTRIBUTE_INVALID');
  aes({ id: new Uint8Array(256) });
  for (const q of [1, 9, 2.5, -2]) throwsCode(() => aes({ useKeyQuorum: q }), 'COFFER_QUORUM_VALUE_INVALID');
  for (const q of [0, 2, 8]) assert.equal(aes({ manageKeyQuorum: q }).manageKeyQuorum, q);
});

void test('setAttribute: one-way attributes move only one way', () => {
  const soft = aes({ sensitive: false, extractable: true });
  const hard = applyAttributeChange('SECRET_KEY', 'AES', soft, 'sensitive', true, 'owner');
  assert.equal(hard.attributes.sensitive, true);
  assert.equal(hard.attributes.alwaysSensitive, false, 'always-sensitive stays as it was');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', hard, 'sensitive', false, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  applyAttributeChange('SECRET_KEY', 'AES', hard, 'sensitive', true, 'owner'); // same value: allowed
  const locked = applyAttributeChange('SECRET_KEY', 'AES', soft, 'extractable', false, 'owner');
  assert.equal(locked.attributes.neverExtractable, false, 'never-extractable stays as it was');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', locked, 'extractable', true, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  const wwt = applyAttributeChange('SECRET_KEY', 'AES', soft, 'wrapWithTrusted', true, 'owner');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', wwt, 'wrapWithTrusted', false, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  const nd = applyAttributeChange('SECRET_KEY', 'AES', soft, 'destroyable', false, 'owner');
  assert.equal(applyAttributeChange('SECRET_KEY', 'AES', nd, 'destroyable', true, 'owner').attributes.destroyable, true);
});

void test('setAttribute: modifiable=false freezes everything, including modifiable itself', () => {
  const frozen = applyAttributeChange('SECRET_KEY', 'AES', aes(), 'modifiable', false, 'owner');
  for (const [name, value] of [['label', 'x'], ['id', new Uint8Array(1)], ['encrypt', false], ['modifiable', true], ['sensitive', true]] as const) {
    throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', frozen, name, value, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  }
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', frozen, 'trusted', true, 'admin'), 'COFFER_ATTRIBUTE_READ_ONLY');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', aes({ modifiable: false }), 'label', 'y', 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
});

void test('setAttribute: identity and computed attributes are read-only, unknown names invalid, values typed', () => {
  const s = aes();
  for (const name of ['class', 'keyType', 'bits', 'curve', 'owner', 'kcv', 'token', 'local', 'neverExtractable', 'alwaysSensitive', 'useKeyQuorum']) {
    throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, name, true, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  }
  for (const name of ['colour', 'toString', '__proto__']) throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, name, true, 'owner'), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, 'encrypt', 1, 'owner'), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, 'label', 7, 'owner'), 'COFFER_ATTRIBUTE_INVALID');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, 'id', 'ab', 'owner'), 'COFFER_ATTRIBUTE_INVALID');
  const relabelled = applyAttributeChange('SECRET_KEY', 'AES', s, 'label', 'new', 'owner');
  assert.equal(relabelled.label, 'new');
  assert.equal(s.label, '', 'the input state is not modified');
});

void test('setAttribute: functions can be switched within what the key type permits', () => {
  const s = aes();
  assert.equal(applyAttributeChange('SECRET_KEY', 'AES', s, 'wrap', true, 'owner').attributes.wrap, true);
  assert.equal(applyAttributeChange('SECRET_KEY', 'AES', s, 'encrypt', false, 'owner').attributes.encrypt, false);
  const pub = resolveTemplate('PUBLIC_KEY', 'RSA', {}, GEN);
  throwsCode(() => applyAttributeChange('PUBLIC_KEY', 'RSA', pub, 'sign', true, 'owner'), 'COFFER_TEMPLATE_INCONSISTENT');
  throwsCode(() => applyAttributeChange('PUBLIC_KEY', 'RSA', pub, 'sensitive', true, 'owner'), 'COFFER_TEMPLATE_INCONSISTENT');
});

void test('setAttribute: trusted is the admin\'s alone, and the admin may change nothing else', () => {
  const s = aes();
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, 'trusted', true, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, 'trusted', false, 'owner'), 'COFFER_ATTRIBUTE_READ_ONLY');
  const t = applyAttributeChange('SECRET_KEY', 'AES', s, 'trusted', true, 'admin');
  assert.equal(t.attributes.trusted, true);
  assert.equal(applyAttributeChange('SECRET_KEY', 'AES', t, 'trusted', false, 'admin').attributes.trusted, false);
  for (const [name, value] of [['label', 'x'], ['encrypt', false], ['sensitive', true]] as const) {
    throwsCode(() => applyAttributeChange('SECRET_KEY', 'AES', s, name, value, 'admin'), 'COFFER_PERMISSION_DENIED');
  }
  const pub = resolveTemplate('PUBLIC_KEY', 'RSA', {}, GEN);
  assert.equal(applyAttributeChange('PUBLIC_KEY', 'RSA', pub, 'trusted', true, 'admin').attributes.trusted, true);
});

// Type-level check that the resolved attributes are the full BooleanAttributes set.
const _full: BooleanAttributes = aes().attributes;
void _full;
