// The node's structured log (docs/node.md "Logs"): JSON lines, one event a line, to stderr by
// default, through pino. What is logged: start, stop and listening addresses; logins and failed
// logins (user name and outcome, never a password); lockouts; every state change by kind with the
// handles and user names it touched; backups, restores, zeroise; requests refused, with their
// error code; bugs. Never a secret: the device's events carry none (HsmEvent), request payloads are
// never logged, and pino's redaction blanks any field named like a credential as a second guard.

import pino, { type DestinationStream, type Logger } from 'pino';
import type { HsmEvent } from '../hsm/device.js';

export type { Logger } from 'pino';

/** The levels a node logs at, most to least severe; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_LEVEL_DEFAULT: LogLevel = 'info';

/** Field names that could hold a credential or key: blanked wherever they appear (a second guard:
 * nothing that logs passes such fields). */
const REDACTED = ['password', 'newPassword', 'preCoPassword', 'currentPassword', 'pin', 'key', 'keyPem', 'secret', 'pkcs8', 'material', 'signature', 'data', 'wrapped']
  .flatMap((f) => [f, `*.${f}`]);

export interface LogOptions {
  readonly level?: LogLevel;
  /** Where the lines go; default stderr (file descriptor 2), written synchronously so that a line
   * logged just before a crash is not lost. */
  readonly destination?: DestinationStream;
  /** Fields on every line (the node's serial, say). */
  readonly base?: Record<string, string | number>;
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export function createLogger(options: LogOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
  return pino({
    level: options.level ?? LOG_LEVEL_DEFAULT,
    base: { service: 'coffer-node', ...options.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    messageKey: 'message',
    redact: { paths: REDACTED, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  }, destination);
}

/** Writes one device event (a login, a lockout, a state change, a backup…) at its level. */
export function logHsmEvent(log: Logger, event: HsmEvent): void {
  switch (event.event) {
    case 'login':
      if (event.outcome === 'ok') log.info(event, 'login');
      else log.warn(event, 'login failed');
      return;
    case 'lockout':
      log.warn(event, 'user locked');
      return;
    case 'state-change':
      // Session objects come and go with every session: below the default level.
      if (event.scope === 'local' && event.kind === 'session.objects') log.debug(event, 'state change');
      else log.info(event, 'state change');
      return;
    case 'backup':
    case 'restore':
    case 'zeroise':
      log.info(event, event.event);
      return;
  }
}
