// How the device records an audited call (docs/audit.md "What is recorded"): refused before it runs
// when the log is full (AuditLog.room), then recorded with its outcome — the error code when it
// failed, the handles it touched and made when it succeeded. Works for synchronous calls (export,
// wrap) and asynchronous ones (everything that changes state) alike.
//
// Every text put in a record comes from here and is made safe first: names go through
// auditName() (only the characters a user name may have), words through auditWord(); a value that
// does not fit is replaced by a fixed marker, never recorded as typed (a password typed into a name
// field never reaches the log).

import { isCofferError } from '../../errors.js';
import type { AuditKind } from '../../formats/audit_record.js';
import { AUDIT_HANDLES_MAX, USER_NAME_CHARS_MAX } from '../../formats/limits.js';
import type { Handle, KeyRef } from '../types.js';
import type { AuditLog } from './audit_log.js';

export interface AuditedCall {
  readonly kind: AuditKind;
  readonly user: string;
  readonly session: string;
  readonly detail?: string;
  readonly refs?: readonly KeyRef[];
  /** Never refused when the log is full (backup, restore, zeroise: the operator's means to recover
   * and to erase must not wait for a collection); recorded past the bound instead. */
  readonly always?: boolean;
}

/** Runs `call` as an audited call; `made` names the handles a successful call created. */
export function audited<T>(audit: AuditLog | undefined, c: AuditedCall, call: () => T, made?: (result: Awaited<T>) => readonly Handle[]): T {
  if (audit === undefined) return call();
  if (c.always !== true) audit.room();
  const done = (outcome: 'ok' | 'failed', code: string, extra: readonly Handle[]): void => {
    const handles = [...(c.refs ?? []).map(handleOf), ...extra].filter((h) => Number.isSafeInteger(h) && h >= 0).slice(0, AUDIT_HANDLES_MAX);
    audit.record({ kind: c.kind, outcome, user: c.user, session: c.session, code, detail: c.detail ?? '', handles });
  };
  const failed = (e: unknown): never => {
    done('failed', isCofferError(e) ? e.code : 'internal-error', []);
    throw e;
  };
  let result: T;
  try {
    result = call();
  } catch (e) {
    return failed(e);
  }
  if (result instanceof Promise) {
    return result.then((r: Awaited<T>) => {
      done('ok', '', made?.(r) ?? []);
      return r;
    }, failed) as T;
  }
  done('ok', '', made?.(result as Awaited<T>) ?? []);
  return result;
}

function handleOf(ref: KeyRef): Handle {
  return typeof ref === 'number' ? ref : typeof ref === 'object' && ref !== null ? ref.handle : -1;
}

/** A user name fit for the log: only the characters a name may have, at most its length, lower case. */
export function auditName(name: unknown): string {
  if (typeof name !== 'string') return '(invalid name)';
  return name.length <= USER_NAME_CHARS_MAX && /^[A-Za-z0-9_-]+$/.test(name) ? name.toLowerCase() : '(invalid name)';
}

/** A short word fit for the log (an attribute name, a key type, a backup id). */
export function auditWord(word: unknown): string {
  return typeof word === 'string' && /^[A-Za-z0-9_.:-]{1,48}$/.test(word) ? word : '(invalid)';
}
