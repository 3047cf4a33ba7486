// Pagination of Describe* and ListTags over the control plane's documents: results in a stable order,
// at most MaxResults of them, and a NextToken (src/service/api/pagination.ts) bound to the operation,
// the caller's account and the request's filters, naming where the next page starts.

import type { ApiInput } from './api/operations.js';
import { decodeNextToken, encodeNextToken, pageSize, type ListOperation } from './api/pagination.js';

/** One page of `items` (sorted ascending by `keyOf`). */
export function page<T>(
  items: readonly T[], keyOf: (item: T) => string, operation: ListOperation, input: ApiInput, accountId: string,
): { readonly items: T[]; readonly nextToken?: string } {
  const binding = { operation, accountId, query: { filters: input['Filters'] ?? null, sort: input['SortAscending'] ?? null, shared: input['Shared'] ?? null, resource: input['ResourceId'] ?? null } };
  const max = pageSize(operation, input);
  const token = input['NextToken'] as string | undefined;
  let start = 0;
  if (token !== undefined) {
    const after = decodeNextToken(binding, token);
    start = items.findIndex((item) => keyOf(item) > after);
    if (start < 0) start = items.length;
  }
  const slice = items.slice(start, start + max);
  const last = slice[slice.length - 1];
  return start + max < items.length && last !== undefined ? { items: slice, nextToken: encodeNextToken(binding, keyOf(last)) } : { items: slice };
}
