// `coffer dev cluster` as a user runs it: a foreground process that prints one ready line naming
// cluster.json, and on SIGTERM stops every node it started.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('coffer dev cluster --nodes 2 runs in the foreground and stops its nodes on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-dev-cmd-'));
  const child = spawn(process.execPath, [MAIN, 'dev', 'cluster', '--dir', dir, '--nodes', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const line = await new Promise<string>((ok, ko) => {
      createInterface({ input: child.stdout }).once('line', ok);
      child.once('exit', (code) => ko(new Error(`dev cluster exited early with ${String(code)}: ${stderr}`)));
    });
    const ready = JSON.parse(line) as { event: string; clusterId: string; clusterFile: string; nodes: Array<{ pid: number }> };
    assert.equal(ready.event, 'ready');
    assert.doesNotMatch(line, /password/i, 'the ready line carries no credential');
    const doc = JSON.parse(readFileSync(ready.clusterFile, 'utf8')) as { clusterId: string; nodes: Array<{ pid: number; running: boolean }> };
    assert.equal(doc.clusterId, ready.clusterId);
    assert.equal(doc.nodes.length, 2);
    const pids = ready.nodes.map((n) => n.pid);
    assert.ok(pids.every(alive));
    const code = await new Promise<number | null>((ok) => {
      child.once('exit', ok);
      child.kill('SIGTERM');
    });
    assert.equal(code, 0, stderr);
    assert.ok(!pids.some(alive), 'every node process stopped');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('coffer dev cluster refuses a bad node count', async () => {
  const child = spawn(process.execPath, [MAIN, 'dev', 'cluster', '--dir', join(tmpdir(), 'coffer-never-created'), '--nodes', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((ok) => child.once('exit', ok));
  assert.equal(code, 2);
  assert.match(stderr, /COFFER_CLI_USAGE/);
});
