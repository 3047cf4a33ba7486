// Seeded fuzz of the API's request parser: request bodies generated from the service model and then
// damaged (wrong types, nulls, unknown members, out-of-range values, odd Unicode, deep nesting,
// byte flips, truncation), sent to the live server correctly signed so that they reach JSON and
// validation, and to the validator in process. Nothing may crash, hang or answer in a shape other
// than AWS's; whatever reaches an operation must be valid input. Prints its seed; API_FUZZ_SEED
// replays one.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../../helpers.js';
import { CLOUDHSMV2_MODEL, type Shape } from '../../../src/service/api/model.js';
import { OPERATION_NAMES, type OperationName } from '../../../src/service/api/operations.js';
import { validateInput } from '../../../src/service/api/validate.js';
import { ProtocolError, PROTOCOL_ERROR_STATUS } from '../../../src/service/api/api_errors.js';
import { signedRequest, startTestApi, type TestApi } from './api_support.js';

const SEED = process.env.API_FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(process.env.API_FUZZ_SEED);
/** Requests sent to the server, and bodies checked in process: bounded so the test's work is fixed. */
const HTTP_CASES = 300;
const IN_PROCESS_CASES = 3000;

console.log(`API_FUZZ_SEED=${SEED}`);
const rand = mulberry32(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;

const ODD_STRINGS = ['', ' ', '\u0000', '\uD800', '\u{1F600}', 'é', '"', '\\', '\n', '%00', '__proto__', 'constructor', 'a'.repeat(300), 'cluster-', 'cluster-abcdefghijk\n'];

function shape(name: string): Shape {
  const s = CLOUDHSMV2_MODEL.shapes[name];
  assert.ok(s !== undefined);
  return s;
}

function validString(s: Extract<Shape, { type: 'string' }>): string {
  if (s.enum !== undefined) return pick(s.enum);
  const samples: Record<string, string> = {
    'cluster-[2-7a-zA-Z]{11,16}': 'cluster-abcdefgh2345', 'hsm-[2-7a-zA-Z]{11,16}': 'hsm-abcdefgh2345', 'backup-[2-7a-zA-Z]{11,16}': 'backup-abcdefgh2345',
  };
  if (s.pattern !== undefined && samples[s.pattern] !== undefined) return samples[s.pattern] ?? '';
  return pick(['x', 'hsm1.medium', 'eu-west-2a', '10.0.0.1', 'subnet-0123abcd', 'arn:aws:cloudhsm:eu-west-2:111122223333:backup/backup-abcdefgh2345', '90', 'v1.x']);
}

/** A value for a shape: usually plausible, sometimes of another type or damaged. */
function value(name: string, depth: number): unknown {
  if (rand() < 0.06 || depth > 6) return pick<unknown>([null, 0, -1, 2 ** 31, 1.5, true, 'x', [], {}, pick(ODD_STRINGS), deep(int(2000))]);
  const s = shape(name);
  switch (s.type) {
    case 'structure': {
      const out: Record<string, unknown> = {};
      for (const [m, ref] of Object.entries(s.members)) if (rand() < 0.7) out[m] = value(ref.shape, depth + 1);
      if (rand() < 0.05) out[pick(ODD_STRINGS)] = 1;
      return out;
    }
    case 'list': return Array.from({ length: int(rand() < 0.05 ? 60 : 4) }, () => value(s.member.shape, depth + 1));
    case 'map': return Object.fromEntries(Array.from({ length: int(rand() < 0.05 ? 40 : 4) }, () => [rand() < 0.8 ? pick(['clusterIds', 'states', 'vpcIds', 'backupIds', 'neverExpires']) : pick(ODD_STRINGS), value(s.value.shape, depth + 1)]));
    case 'string': return rand() < 0.8 ? validString(s) : pick(ODD_STRINGS);
    case 'integer': return pick([s.min ?? 0, s.max ?? 100, (s.max ?? 100) + 1, 0, int(200)]);
    case 'boolean': return rand() < 0.9 ? rand() < 0.5 : 'true';
    case 'timestamp': return rand() < 0.9 ? 1_700_000_000 : 'now';
  }
}

function deep(n: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = rand() < 0.5 ? [v] : { a: v };
  return v;
}

/** A request body: JSON of a generated input, sometimes damaged at the byte level. */
function body(operation: OperationName): Buffer {
  const input = CLOUDHSMV2_MODEL.operations[operation]?.input.shape ?? '';
  let bytes = Buffer.from(JSON.stringify(value(input, 0)) ?? 'null', 'utf8');
  const damage = rand();
  if (damage < 0.1 && bytes.length > 0) bytes = bytes.subarray(0, int(bytes.length));
  else if (damage < 0.2 && bytes.length > 0) {
    bytes = Buffer.from(bytes);
    bytes[int(bytes.length)] = int(256);
  } else if (damage < 0.23) bytes = Buffer.from(`[${'['.repeat(int(50_000))}`);
  return bytes;
}

const KNOWN_TYPES = new Set<string>([...Object.keys(PROTOCOL_ERROR_STATUS), ...Object.keys(CLOUDHSMV2_MODEL.shapes).filter((s) => s.startsWith('CloudHsm') && s.endsWith('Exception'))]);

test(`validator fuzz (seed ${SEED}): returns or throws a ProtocolError, nothing else`, () => {
  for (let i = 0; i < IN_PROCESS_CASES; i++) {
    const operation = pick(OPERATION_NAMES);
    const bytes = body(operation);
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      continue;
    }
    try {
      const input = validateInput(operation, parsed);
      // What passed is stable: validating it again gives the same input.
      assert.deepEqual(validateInput(operation, JSON.parse(JSON.stringify(input))), input);
    } catch (e) {
      assert.ok(e instanceof ProtocolError && (e.type === 'ValidationException' || e.type === 'SerializationException'), `case ${i}: ${String(e)}`);
      assert.ok(e.message.length < 4096, 'messages stay bounded');
    }
  }
});

let api: TestApi;
before(async () => {
  api = await startTestApi();
});
after(async () => {
  await api.server.close();
});

test(`server fuzz (seed ${SEED}): every answer is AWS-shaped, every operation input valid`, async () => {
  const statuses = new Map<number, number>();
  for (let i = 0; i < HTTP_CASES; i++) {
    const operation = pick(OPERATION_NAMES);
    const target = rand() < 0.9 ? `BaldrApiService.${operation}` : pick(['BaldrApiService.', 'BaldrApiService', `baldrapiservice.${operation}`, `BaldrApiService.${operation}x`, '']);
    const contentType = rand() < 0.95 ? 'application/x-amz-json-1.1' : pick(['application/json', 'text/plain', '']);
    const res = await signedRequest(api.server.url, { target, body: body(operation), headers: { 'content-type': contentType } });
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    assert.match(String(res.headers['x-amzn-requestid']), /^[0-9a-f-]{36}$/, `case ${i}`);
    assert.ok(res.json !== undefined && typeof res.json === 'object' && !Array.isArray(res.json), `case ${i}: JSON object`);
    if (res.status === 200) continue;
    assert.deepEqual(Object.keys(res.json).sort(), ['Message', '__type'], `case ${i}: ${res.text}`);
    assert.ok(KNOWN_TYPES.has(String(res.json.__type)), `case ${i}: ${res.text}`);
    assert.notEqual(res.json.__type, 'CloudHsmInternalFailureException', `case ${i}: no request makes the API fail internally`);
  }
  for (const call of api.ops.calls) assert.deepEqual(validateInput(call.operation, call.input), call.input);
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, `both outcomes seen: ${JSON.stringify([...statuses])}`);
  // Still serving.
  const alive = await signedRequest(api.server.url, { target: 'BaldrApiService.DescribeClusters', body: '{}' });
  assert.equal(alive.status, 200);
});
