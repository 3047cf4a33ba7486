// Resource policies on backups (PutResourcePolicy; docs/control-plane.md "Sharing backups"): the
// subset of IAM policy grammar CloudHSM accepts for sharing a backup with other accounts — Allow
// statements naming account principals and the actions cloudhsm:CreateCluster and
// cloudhsm:DescribeBackups. Anything else is refused rather than half-understood.

import { apiFail } from './api/operations.js';

const ACTIONS: ReadonlySet<string> = new Set(['cloudhsm:CreateCluster', 'cloudhsm:DescribeBackups']);
const ACCOUNT = /^\d{12}$/;
const ROOT_ARN = /^arn:aws:iam::(\d{12}):root$/;

/**
 * The accounts a policy shares the backup with. A null policy shares with nobody. With `strict`, a
 * policy outside the accepted grammar is refused (PutResourcePolicy); without, it is read as
 * sharing with nobody (a stored policy was checked when it was put).
 */
export function policyPrincipals(policy: string | null, strict = false): Set<string> {
  const accounts = new Set<string>();
  if (policy === null) return accounts;
  const refuse = (why: string): Set<string> => (strict ? apiFail('CloudHsmInvalidRequestException', `Policy is not valid: ${why}.`) : new Set<string>());
  let doc: unknown;
  try {
    doc = JSON.parse(policy);
  } catch {
    return refuse('not JSON');
  }
  const statements = (doc as { Statement?: unknown }).Statement;
  const list = Array.isArray(statements) ? statements : [statements];
  if (statements === undefined || list.length === 0) return refuse('no Statement');
  for (const st of list as Array<Record<string, unknown>>) {
    if (typeof st !== 'object' || st === null || st['Effect'] !== 'Allow') return refuse('every statement must have Effect Allow');
    const actions = ([] as unknown[]).concat(st['Action']);
    if (actions.length === 0 || !actions.every((a) => typeof a === 'string' && ACTIONS.has(a))) return refuse('Action must be cloudhsm:CreateCluster and/or cloudhsm:DescribeBackups');
    const principal = (st['Principal'] as { AWS?: unknown } | undefined)?.AWS;
    const principals = ([] as unknown[]).concat(principal);
    if (principal === undefined || principals.length === 0) return refuse('Principal must name AWS accounts');
    for (const p of principals) {
      const id = typeof p === 'string' ? (ACCOUNT.test(p) ? p : ROOT_ARN.exec(p)?.[1]) : undefined;
      if (id === undefined) return refuse('a principal is not an account id or account root ARN');
      accounts.add(id);
    }
  }
  return accounts;
}
