// The node's structured log (src/node/log.ts): JSON lines with a level name, an ISO time and the
// node's base fields; device events at their levels; the level option; fields named like a
// credential blanked even if something passed one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, isLogLevel, logHsmEvent } from '../../src/node/log.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c.toString()), done()) });
  return { stream, lines: () => chunks.join('').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('device events become JSON lines at their level, with the base fields; the level option filters', () => {
  const out = capture();
  const log = createLogger({ level: 'info', destination: out.stream, base: { serial: 'CFR-0123' } });
  logHsmEvent(log, { event: 'login', user: 'alice', outcome: 'ok', role: 'crypto-user' });
  logHsmEvent(log, { event: 'login', user: 'alice', outcome: 'failed', code: 'COFFER_AUTH_FAILED' });
  logHsmEvent(log, { event: 'lockout', user: 'alice' });
  logHsmEvent(log, { event: 'state-change', kind: 'key.generate', scope: 'cluster', handles: [7], users: [], position: '12' });
  logHsmEvent(log, { event: 'state-change', kind: 'session.objects', scope: 'local', handles: [2 ** 40], users: [], position: '' });
  logHsmEvent(log, { event: 'zeroise' });
  const lines = out.lines();
  assert.deepEqual(lines.map((l) => [l['level'], l['message'], l['event']]), [
    ['info', 'login', 'login'],
    ['warn', 'login failed', 'login'],
    ['warn', 'user locked', 'lockout'],
    ['info', 'state change', 'state-change'],
    ['info', 'zeroise', 'zeroise'],
  ], 'the session-object change is debug, below info');
  for (const l of lines) {
    assert.equal(l['service'], 'coffer-node');
    assert.equal(l['serial'], 'CFR-0123');
    assert.match(String(l['time']), /^\d{4}-\d\d-\d\dT/);
  }
  assert.deepEqual(lines[3]?.['handles'], [7]);
});

test('fields named like a credential are blanked wherever they appear', () => {
  const out = capture();
  const log = createLogger({ level: 'debug', destination: out.stream });
  log.info({ password: 'hunter2-hunter2', request: { newPassword: 'p4ssw0rd-new', key: 'AAAA' } }, 'should never happen');
  const text = JSON.stringify(out.lines());
  for (const secret of ['hunter2-hunter2', 'p4ssw0rd-new', 'AAAA']) assert.ok(!text.includes(secret), secret);
  assert.ok(text.includes('[redacted]'));
});

test('log levels: the names pino knows, and nothing else', () => {
  assert.ok(isLogLevel('debug') && isLogLevel('silent'));
  assert.ok(!isLogLevel('verbose') && !isLogLevel(''));
});
