// Pagination and filters of the list operations (DescribeClusters, DescribeBackups, ListTags), as
// helpers for the operations (docs/api.md "Pagination", "Filters").
//
// NextToken is opaque to clients: `v1.` + base64url(JSON [operation, binding, after]), where
// `after` is the control plane's cursor (the last key of the page before) and `binding` a digest
// of the caller's account and the query (filters, flags), so a token is refused when replayed
// against another operation, another account or other filters. It is not a secret and not a
// capability: a cursor altered by hand only moves where a listing of the caller's own resources
// starts. A token that is not one of these is CloudHsmInvalidRequestException.
//
// Filters are CloudHSM's documented keys (CloudHSM API Reference, DescribeClusters and
// DescribeBackups "Filters"); an unknown key, a value of the wrong form or too many values is
// CloudHsmInvalidRequestException.

import { createHash } from 'node:crypto';
import { assert } from '../../assert.js';
import { apiFail, type ApiInput, type OperationName } from './operations.js';
import { CLOUDHSMV2_MODEL } from './model.js';
import { wholePattern } from './validate.js';

/** The model's NextToken limit (shape NextToken, max 256). */
export const NEXT_TOKEN_CHARS_MAX = 256;
/** Longest cursor a token can carry: leaves room for the version, operation and binding within
 * NEXT_TOKEN_CHARS_MAX after base64url. */
export const CURSOR_CHARS_MAX = 96;
/** Values one filter key may list: the ids of a large account; bounds the work of one query. */
export const FILTER_VALUES_MAX = 100;

/** Page sizes when MaxResults is absent: the model's maximum for each list operation. */
export const MAX_RESULTS_DEFAULT = { DescribeClusters: 25, DescribeBackups: 50, ListTags: 100 } as const;
export type ListOperation = keyof typeof MAX_RESULTS_DEFAULT;

/** The page size of a (validated) list request. */
export function pageSize(operation: ListOperation, input: ApiInput): number {
  const requested = input.MaxResults;
  assert(requested === undefined || typeof requested === 'number', 'MaxResults is validated');
  return requested ?? MAX_RESULTS_DEFAULT[operation];
}

/** What a token is bound to. `query` is any JSON value describing the request's filters and flags. */
export interface TokenBinding {
  readonly operation: ListOperation;
  readonly accountId: string;
  readonly query: unknown;
}

/** JSON with object keys sorted, so equal queries give equal digests. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function bindingDigest(binding: TokenBinding): string {
  return createHash('sha256').update(canonicalJson([binding.accountId, binding.query])).digest('base64url').slice(0, 22);
}

export function encodeNextToken(binding: TokenBinding, after: string): string {
  assert(after.length > 0 && after.length <= CURSOR_CHARS_MAX, 'cursor fits a NextToken');
  const token = `v1.${Buffer.from(JSON.stringify([binding.operation, bindingDigest(binding), after]), 'utf8').toString('base64url')}`;
  assert(token.length <= NEXT_TOKEN_CHARS_MAX, 'NextToken within the model limit');
  return token;
}

/** The cursor of a token the caller sent back with the same binding. */
export function decodeNextToken(binding: TokenBinding, token: string): string {
  const invalid = (): never => apiFail('CloudHsmInvalidRequestException', 'The NextToken is not valid for this request');
  if (!token.startsWith('v1.') || token.length > NEXT_TOKEN_CHARS_MAX || !/^[A-Za-z0-9_-]+$/.test(token.slice(3))) return invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token.slice(3), 'base64url').toString('utf8'));
  } catch {
    return invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) return invalid();
  const [operation, digest, after] = parsed as unknown[];
  if (operation !== binding.operation || digest !== bindingDigest(binding)) return invalid();
  if (typeof after !== 'string' || after.length === 0 || after.length > CURSOR_CHARS_MAX) return invalid();
  return after;
}

// ── filters ───────────────────────────────────────────────────────────────────────────────────

function enumOf(shape: string): readonly string[] {
  const s = CLOUDHSMV2_MODEL.shapes[shape];
  assert(s?.type === 'string' && s.enum !== undefined, `${shape} is an enum`);
  return s.enum;
}

function patternOf(shape: string): RegExp {
  const s = CLOUDHSMV2_MODEL.shapes[shape];
  assert(s?.type === 'string' && s.pattern !== undefined, `${shape} has a pattern`);
  return wholePattern(s.pattern);
}

/** VPC ids: the model's VpcId pattern (`vpc-[0-9a-fA-F]`) only states a prefix; real ids carry 8 or
 * 17 hex digits, written here as the SubnetId and SecurityGroup shapes write theirs. */
const VPC_ID = /^vpc-[0-9a-fA-F]{8,17}$/;

interface FilterRule {
  readonly test: (value: string) => boolean;
  /** At most one value (neverExpires is true or false). */
  readonly single?: boolean;
}

const CLUSTER_FILTERS: Readonly<Record<string, FilterRule>> = {
  clusterIds: { test: (v) => patternOf('ClusterId').test(v) },
  states: { test: (v) => enumOf('ClusterState').includes(v) },
  vpcIds: { test: (v) => VPC_ID.test(v) },
};

const BACKUP_FILTERS: Readonly<Record<string, FilterRule>> = {
  backupIds: { test: (v) => patternOf('BackupId').test(v) },
  sourceBackupIds: { test: (v) => patternOf('BackupId').test(v) },
  clusterIds: { test: (v) => patternOf('ClusterId').test(v) },
  states: { test: (v) => enumOf('BackupState').includes(v) },
  neverExpires: { test: (v) => v === 'true' || v === 'false', single: true },
};

export interface ClusterFilters {
  readonly clusterIds?: readonly string[];
  readonly states?: readonly string[];
  readonly vpcIds?: readonly string[];
}

export interface BackupFilters {
  readonly backupIds?: readonly string[];
  readonly sourceBackupIds?: readonly string[];
  readonly clusterIds?: readonly string[];
  readonly states?: readonly string[];
  readonly neverExpires?: boolean;
}

function parseFilters(rules: Readonly<Record<string, FilterRule>>, filters: unknown): Record<string, readonly string[]> {
  if (filters === undefined) return {};
  assert(typeof filters === 'object' && filters !== null, 'Filters is validated as a map');
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(filters)) {
    const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
    if (rule === undefined) apiFail('CloudHsmInvalidRequestException', `Unknown filter; the filters are ${Object.keys(rules).join(', ')}`);
    assert(Array.isArray(values), 'filter values are validated as a list');
    if (values.length > FILTER_VALUES_MAX || (rule.single === true && values.length > 1)) {
      apiFail('CloudHsmInvalidRequestException', `Filter ${key} has more values than allowed (${rule.single === true ? 1 : FILTER_VALUES_MAX})`);
    }
    for (const value of values) {
      assert(typeof value === 'string', 'filter values are validated as strings');
      if (!rule.test(value)) apiFail('CloudHsmInvalidRequestException', `Filter ${key} has an invalid value`);
    }
    out[key] = [...new Set(values as string[])];
  }
  return out;
}

/** DescribeClusters filters (clusterIds, states, vpcIds); an absent key does not filter. */
export function parseClusterFilters(input: ApiInput): ClusterFilters {
  return parseFilters(CLUSTER_FILTERS, input.Filters);
}

/** DescribeBackups filters (backupIds, sourceBackupIds, clusterIds, states, neverExpires). */
export function parseBackupFilters(input: ApiInput): BackupFilters {
  const { neverExpires, ...rest } = parseFilters(BACKUP_FILTERS, input.Filters);
  const first = neverExpires?.[0];
  return first === undefined ? rest : { ...rest, neverExpires: first === 'true' };
}

/** The operations pagination applies to, from the paginators of the model vector. */
export const LIST_OPERATIONS: readonly OperationName[] = Object.keys(MAX_RESULTS_DEFAULT) as ListOperation[];
