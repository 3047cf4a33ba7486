// `coffer hsm serve` as a user runs it: a child process on a fresh data directory, reached over
// TLS 1.3 with the certificate it wrote, stopped with SIGTERM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Connection } from '../../src/client/connection.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

test('coffer hsm serve provisions a development node, serves TLS 1.3, and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-'));
  const child = spawn(process.execPath, [MAIN, 'hsm', 'serve', '--data', join(dir, 'node'), '--development'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const line = await new Promise<string>((ok, ko) => {
      createInterface({ input: child.stdout }).once('line', ok);
      child.once('exit', (code) => ko(new Error(`serve exited early with ${String(code)}`)));
    });
    const started = JSON.parse(line) as { serial: string; port: number; tlsCertificate: string };
    assert.match(started.serial, /^CFR-[0-9A-F]{16}$/);
    assert.equal(statSync(join(dir, 'node', 'device.secret')).mode & 0o777, 0o600);
    const conn = await Connection.connect({ host: '127.0.0.1', port: started.port, ca: readFileSync(started.tlsCertificate, 'utf8'), servername: 'localhost' });
    const status = await conn.status();
    assert.ok(status !== undefined);
    conn.close();
    const code = await new Promise<number | null>((ok) => {
      child.once('exit', ok);
      child.kill('SIGTERM');
    });
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('coffer hsm serve refuses to run without --development (production provisioning is not built yet)', async () => {
  const child = spawn(process.execPath, [MAIN, 'hsm', 'serve', '--data', join(tmpdir(), 'coffer-never-created')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((ok) => child.once('exit', ok));
  assert.equal(code, 1);
  assert.match(stderr, /COFFER_CLI_USAGE/);
});
