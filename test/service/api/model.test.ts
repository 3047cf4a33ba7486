// The service model the API runs on (src/service/api/model.ts) is the committed botocore vector
// without documentation, and it covers the older model Debian's awscli ships (15 operations): every
// operation, member and limit an older client may use is handled.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLOUDHSMV2_MODEL } from '../../../src/service/api/model.js';
import { OPERATION_NAMES } from '../../../src/service/api/operations.js';
import { validateInput, wholePattern } from '../../../src/service/api/validate.js';
import { ProtocolError } from '../../../src/service/api/api_errors.js';
import { SIGNING_NAME } from '../../../src/service/api/sigv4.js';
import { API_CONTENT_TYPE, TARGET_PREFIX } from '../../../src/service/api/server.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const VECTOR = resolve(ROOT, 'test/vectors/cloudhsmv2-model/service-2.json');
/** Debian 12's awscli package (CI installs it). */
const DEBIAN_MODEL = '/usr/lib/python3/dist-packages/awscli/botocore/data/cloudhsmv2/2017-04-28/service-2.json';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface RawShape {
  type: string; members?: Record<string, { shape: string }>; required?: string[]; member?: { shape: string };
  key?: { shape: string }; value?: { shape: string }; pattern?: string; enum?: string[]; min?: number; max?: number;
}
interface RawModel { operations: Record<string, { input?: { shape: string }; output?: { shape: string } }>; shapes: Record<string, RawShape> }

function stripDocs(value: Json): Json {
  if (Array.isArray(value)) return value.map(stripDocs);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'documentation').map(([k, v]) => [k, stripDocs(v)]));
  }
  return value;
}

test('the runtime model is the vector model without documentation', () => {
  const vector = stripDocs(JSON.parse(readFileSync(VECTOR, 'utf8')) as Json);
  assert.deepEqual(JSON.parse(JSON.stringify(CLOUDHSMV2_MODEL)), vector);
});

test('the server speaks the model: signing name and target prefix', () => {
  assert.equal(CLOUDHSMV2_MODEL.metadata.signingName, SIGNING_NAME);
  assert.equal(CLOUDHSMV2_MODEL.metadata.targetPrefix, TARGET_PREFIX);
  assert.equal(CLOUDHSMV2_MODEL.metadata.jsonVersion, '1.1');
  assert.equal(API_CONTENT_TYPE, `application/x-amz-json-${String(CLOUDHSMV2_MODEL.metadata.jsonVersion)}`);
  for (const op of Object.values(CLOUDHSMV2_MODEL.operations)) assert.deepEqual(op.http, { method: 'POST', requestUri: '/' });
});

test('the operation contract names exactly the model operations', () => {
  assert.deepEqual([...OPERATION_NAMES].sort(), Object.keys(CLOUDHSMV2_MODEL.operations).sort());
  assert.equal(OPERATION_NAMES.length, 18);
});

test('every model pattern compiles in its whole-value Unicode form', () => {
  for (const [name, shape] of Object.entries(CLOUDHSMV2_MODEL.shapes)) {
    if (shape.type === 'string' && shape.pattern !== undefined) assert.doesNotThrow(() => wholePattern(shape.pattern ?? ''), name);
  }
});

// Where the newer model changed a shape an older client uses, the change must accept everything the
// older one allowed. Patterns cannot be compared in general: each changed pattern is listed with
// values of the older pattern, which the API must accept.
const CHANGED_PATTERNS: Readonly<Record<string, { readonly operation: string; readonly input: Record<string, unknown> }[]>> = {
  // (hsm1\.medium) → ((p|)hsm[0-9][a-z.]*\.[a-zA-Z]+), max 32
  HsmType: [{ operation: 'CreateCluster', input: { HsmType: 'hsm1.medium', SubnetIds: ['subnet-0123abcd'] } }],
};

test('Debian awscli model: every operation, member and limit it has is handled', () => {
  // Fails when the package is missing: CI installs awscli (docs/api.md "Tests").
  const debian = JSON.parse(readFileSync(DEBIAN_MODEL, 'utf8')) as RawModel;
  const ours = JSON.parse(JSON.stringify(CLOUDHSMV2_MODEL)) as RawModel;
  assert.equal(Object.keys(debian.operations).length, 15);
  const seen = new Set<string>();
  const compare = (oldName: string, newName: string, input: boolean, path: string): void => {
    const key = `${oldName}>${newName}>${input}`;
    if (seen.has(key)) return;
    seen.add(key);
    const o = debian.shapes[oldName];
    const n = ours.shapes[newName];
    assert.ok(o !== undefined && n !== undefined, `${path}: shapes ${oldName}, ${newName}`);
    assert.equal(n.type, o.type, `${path}: type`);
    if (o.members !== undefined) {
      for (const [m, ref] of Object.entries(o.members)) {
        const nref = n.members?.[m];
        assert.ok(nref !== undefined, `${path}.${m} is handled`);
        compare(ref.shape, nref.shape, input, `${path}.${m}`);
      }
      // A request valid for the older model never misses a member the newer one requires.
      if (input) for (const r of n.required ?? []) assert.ok((o.required ?? []).includes(r), `${path}: ${r} newly required`);
    }
    for (const part of ['member', 'key', 'value'] as const) {
      const oref = o[part];
      const nref = n[part];
      if (oref !== undefined) {
        assert.ok(nref !== undefined, `${path}: ${part}`);
        compare(oref.shape, nref.shape, input, `${path}.${part}`);
      }
    }
    if (!input) return;
    // Limits: the newer model allows at least what the older one did.
    if (o.max !== undefined) assert.ok(n.max === undefined || n.max >= o.max, `${path}: max ${o.max} → ${n.max}`);
    else if (n.max !== undefined) {
      // Filters gained max 30 (the older model lists 3 (clusters) or 5 (backups) filter keys);
      // HsmType gained max 32 with its new pattern (the older one allows hsm1.medium only).
      assert.ok(newName === 'Filters' || newName === 'HsmType', `${path}: a maximum was added`);
    }
    if (o.min !== undefined) assert.ok(n.min === undefined || n.min <= o.min, `${path}: min`);
    else assert.equal(n.min, undefined, `${path}: a minimum was added`);
    for (const e of o.enum ?? []) assert.ok(n.enum?.includes(e), `${path}: enum value ${e}`);
    if (o.pattern !== n.pattern && o.pattern !== undefined) {
      if (oldName === 'BackupId' && newName === 'BackupArn') {
        // SourceBackupId widened from an id to an id or ARN: every id still matches.
        assert.ok(wholePattern(n.pattern ?? '').test('backup-abcdefghijk'));
        return;
      }
      const samples = CHANGED_PATTERNS[newName];
      assert.ok(samples !== undefined, `${path}: pattern changed (${o.pattern} → ${n.pattern}) without samples`);
      for (const s of samples) {
        assert.ok(wholePattern(o.pattern).test(String(Object.values(s.input)[0])), 'sample fits the old pattern');
        assert.doesNotThrow(() => validateInput(s.operation as 'CreateCluster', s.input));
      }
    }
  };
  for (const [name, op] of Object.entries(debian.operations)) {
    const mine = ours.operations[name];
    assert.ok(mine !== undefined, `operation ${name} is handled`);
    assert.ok(op.input !== undefined && op.output !== undefined && mine.input !== undefined && mine.output !== undefined);
    compare(op.input.shape, mine.input.shape, true, name);
    compare(op.output.shape, mine.output.shape, false, `${name} output`);
  }
  // A request the older model's ModifyCluster requires (BackupRetentionPolicy) is still accepted.
  assert.doesNotThrow(() => validateInput('ModifyCluster', { ClusterId: 'cluster-abcdefghijk', BackupRetentionPolicy: { Type: 'DAYS', Value: '90' } }));
  assert.throws(() => validateInput('ModifyCluster', {}), ProtocolError);
});
