// Request validation and response serialisation driven by the service model (model.ts), so that
// an operation only ever sees input the model allows and a client only ever sees members the model
// names (docs/api.md "Validation").
//
// Requests, in AWS JSON 1.1 terms:
//   - the body is one JSON object (an empty body is `{}`); a JSON value of the wrong type anywhere
//     (a number where a string goes, an object where a list goes, 1.5 for an integer, a timestamp
//     that is not a number of epoch seconds) is a SerializationException, as AWS's deserialiser
//     reports it;
//   - constraint violations are one ValidationException listing them all (up to
//     VALIDATION_ERRORS_LISTED_MAX), in AWS's "N validation errors detected" form: a required
//     member missing (JSON null counts as missing), a member the shape does not have, a pattern,
//     an enum, a length (strings count Unicode code points), a list or map size, an integer range;
//   - a model pattern is matched against the whole value (`^(?:pattern)$`, Unicode mode), so
//     `cluster-[2-7a-zA-Z]{11,16}` refuses `xcluster-…` and a 17th character; every input pattern of
//     the model is written to be read this way.
//
// Responses: members are written as the model names them, timestamps as epoch seconds; a member
// the output shape does not have, or a value of the wrong JSON type, is a bug of the operation
// (assert), so internal fields can never leak into a response.

import { assert } from '../../assert.js';
import { CLOUDHSMV2_MODEL, type Shape, type StringShape } from './model.js';
import type { ApiInput, ApiOutput, OperationName } from './operations.js';
import { protocolFail } from './api_errors.js';

/** At most this many violations are listed in one ValidationException (AWS lists several; a
 * hostile request could otherwise make a message as long as its body). */
export const VALIDATION_ERRORS_LISTED_MAX = 10;

/** Integers are Java ints in AWS's models: anything outside is a SerializationException. */
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

const patternCache = new Map<string, RegExp>();

/** The compiled whole-value form of a model pattern. */
export function wholePattern(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (re === undefined) {
    re = new RegExp(`^(?:${pattern})$`, 'u');
    patternCache.set(pattern, re);
  }
  return re;
}

export function shapeOf(name: string): Shape {
  const shape = CLOUDHSMV2_MODEL.shapes[name];
  assert(shape !== undefined, `model has shape ${name}`);
  return shape;
}

export function inputShapeName(operation: OperationName): string {
  const op = CLOUDHSMV2_MODEL.operations[operation];
  assert(op !== undefined, `model has operation ${operation}`);
  return op.input.shape;
}

export function outputShapeName(operation: OperationName): string {
  const op = CLOUDHSMV2_MODEL.operations[operation];
  assert(op !== undefined, `model has operation ${operation}`);
  return op.output.shape;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function typeMismatch(path: string, expected: string, value: unknown): never {
  protocolFail('SerializationException', `Value at '${path}' must be ${expected}, not ${describeType(value)}`);
}

/** A caller's member name or map key as it may appear in a message: names of model form only. */
function safeName(name: string): string {
  return /^[A-Za-z0-9_-]{1,64}$/.test(name) ? name : '(unprintable name)';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Walker {
  readonly violations: string[] = [];

  violate(path: string, constraint: string): void {
    this.violations.push(`Value at '${path}' failed to satisfy constraint: ${constraint}`);
  }

  value(shapeName: string, value: unknown, path: string): unknown {
    const shape = shapeOf(shapeName);
    switch (shape.type) {
      case 'structure': return this.structure(shapeName, value, path);
      case 'list': {
        if (!Array.isArray(value)) typeMismatch(path, 'a list', value);
        this.size(path, value.length, shape.min, shape.max);
        return value.map((item, i) => this.value(shape.member.shape, item, `${path}.${i + 1}`));
      }
      case 'map': {
        if (!isPlainObject(value)) typeMismatch(path, 'a map', value);
        const entries = Object.entries(value);
        this.size(path, entries.length, shape.min, shape.max);
        return Object.fromEntries(entries.map(([k, v]) => {
          this.string(shapeOf(shape.key.shape) as StringShape, k, `${path}.key`);
          return [k, this.value(shape.value.shape, v, `${path}.${safeName(k)}`)];
        }));
      }
      case 'string': {
        if (typeof value !== 'string') typeMismatch(path, 'a string', value);
        this.string(shape, value, path);
        return value;
      }
      case 'integer': {
        if (typeof value !== 'number' || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) typeMismatch(path, 'an integer', value);
        if (shape.min !== undefined && value < shape.min) this.violate(path, `Member must have value greater than or equal to ${shape.min}`);
        if (shape.max !== undefined && value > shape.max) this.violate(path, `Member must have value less than or equal to ${shape.max}`);
        return value;
      }
      case 'boolean': {
        if (typeof value !== 'boolean') typeMismatch(path, 'a boolean', value);
        return value;
      }
      case 'timestamp': {
        // JSON 1.1 sends timestamps as epoch seconds (a number, fractions allowed).
        if (typeof value !== 'number' || !Number.isFinite(value)) typeMismatch(path, 'a timestamp in epoch seconds', value);
        const date = new Date(value * 1000);
        if (Number.isNaN(date.getTime())) typeMismatch(path, 'a timestamp in epoch seconds', value);
        return date;
      }
    }
  }

  structure(shapeName: string, value: unknown, path: string): Record<string, unknown> {
    const shape = shapeOf(shapeName);
    assert(shape.type === 'structure', `${shapeName} is a structure`);
    if (!isPlainObject(value)) typeMismatch(path || shapeName, 'a structure', value);
    const out: Record<string, unknown> = {};
    for (const [name, member] of Object.entries(value)) {
      const memberPath = path === '' ? safeName(name) : `${path}.${safeName(name)}`;
      if (!Object.hasOwn(shape.members, name)) {
        this.violations.push(`Member '${memberPath}' is not a member of ${shapeName}`);
        continue;
      }
      const ref = shape.members[name];
      assert(ref !== undefined, 'member exists');
      if (member === null) continue; // null is absent, as AWS's deserialiser reads it
      out[name] = this.value(ref.shape, member, memberPath);
    }
    for (const name of shape.required ?? []) {
      if (!Object.hasOwn(out, name)) this.violate(path === '' ? name : `${path}.${name}`, 'Member must not be null');
    }
    return out;
  }

  string(shape: StringShape, value: string, path: string): void {
    const length = [...value].length;
    if (shape.min !== undefined && length < shape.min) this.violate(path, `Member must have length greater than or equal to ${shape.min}`);
    if (shape.max !== undefined && length > shape.max) this.violate(path, `Member must have length less than or equal to ${shape.max}`);
    if (shape.enum !== undefined && !shape.enum.includes(value)) this.violate(path, `Member must satisfy enum value set: [${shape.enum.join(', ')}]`);
    if (shape.pattern !== undefined && !wholePattern(shape.pattern).test(value)) this.violate(path, `Member must satisfy regular expression pattern: ${shape.pattern}`);
  }

  size(path: string, count: number, min: number | undefined, max: number | undefined): void {
    if (min !== undefined && count < min) this.violate(path, `Member must have length greater than or equal to ${min}`);
    if (max !== undefined && count > max) this.violate(path, `Member must have length less than or equal to ${max}`);
  }
}

/** The AWS-style message of a list of violations. */
export function validationMessage(violations: readonly string[]): string {
  const n = violations.length;
  const listed = violations.slice(0, VALIDATION_ERRORS_LISTED_MAX).join('; ');
  return `${n} validation error${n === 1 ? '' : 's'} detected: ${listed}${n > VALIDATION_ERRORS_LISTED_MAX ? '; …' : ''}`;
}

/** Checks a parsed request body against the operation's input shape; returns the input an
 * operation receives (timestamps as Date, JSON nulls dropped). */
export function validateInput(operation: OperationName, body: unknown): ApiInput {
  const walker = new Walker();
  const input = walker.structure(inputShapeName(operation), body, '');
  if (walker.violations.length > 0) protocolFail('ValidationException', validationMessage(walker.violations));
  return input;
}

/** An operation's output as JSON 1.1 sends it: model members only, timestamps as epoch seconds. */
export function serializeOutput(operation: OperationName, output: ApiOutput): Record<string, unknown> {
  return serializeStructure(outputShapeName(operation), output, outputShapeName(operation));
}

function serializeStructure(shapeName: string, value: unknown, path: string): Record<string, unknown> {
  const shape = shapeOf(shapeName);
  assert(shape.type === 'structure' && isPlainObject(value), `${path} is a ${shapeName} structure`);
  const out: Record<string, unknown> = {};
  for (const [name, member] of Object.entries(value)) {
    if (member === undefined) continue;
    const ref = Object.hasOwn(shape.members, name) ? shape.members[name] : undefined;
    assert(ref !== undefined, `${path}.${name} is a member of ${shapeName}`);
    out[name] = serializeValue(ref.shape, member, `${path}.${name}`);
  }
  return out;
}

function serializeValue(shapeName: string, value: unknown, path: string): unknown {
  const shape = shapeOf(shapeName);
  switch (shape.type) {
    case 'structure': return serializeStructure(shapeName, value, path);
    case 'list':
      assert(Array.isArray(value), `${path} is a list`);
      return value.map((item, i) => serializeValue(shape.member.shape, item, `${path}[${i}]`));
    case 'map':
      assert(isPlainObject(value), `${path} is a map`);
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, serializeValue(shape.value.shape, v, `${path}.${k}`)]));
    case 'string':
      assert(typeof value === 'string', `${path} is a string`);
      return value;
    case 'integer':
      assert(typeof value === 'number' && Number.isInteger(value), `${path} is an integer`);
      return value;
    case 'boolean':
      assert(typeof value === 'boolean', `${path} is a boolean`);
      return value;
    case 'timestamp':
      assert(value instanceof Date && !Number.isNaN(value.getTime()), `${path} is a Date`);
      return value.getTime() / 1000;
  }
}
