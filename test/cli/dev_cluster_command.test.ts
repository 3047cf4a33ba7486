// `coffer dev cluster` as a user runs it (what `npm start` runs): a foreground process that prints one
// ready line naming cluster.json and the export lines for another shell, reports a node that dies,
// and on SIGTERM stops every node it started.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { alive } from '../helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

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

/** Collects a child's output as text. */
function gather(stream: NodeJS.ReadableStream): () => string {
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return () => text;
}

async function until(cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface ClusterDoc {
  readonly cryptoUser: { readonly name: string; readonly password: string };
  readonly nodes: ReadonlyArray<{ readonly pid: number; readonly running: boolean }>;
}

test('coffer dev cluster: stdout is JSON lines only, stderr has export lines that work; a killed node is reported and marked not running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-dev-cmd-'));
  const child = spawn(process.execPath, [MAIN, 'dev', 'cluster', '--dir', dir, '--nodes', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = gather(child.stdout);
  const stderr = gather(child.stderr);
  const exited = new Promise<number | null>((ok) => child.once('exit', ok));
  try {
    await until(() => stderr().includes('export COFFER_PIN=') || child.exitCode !== null, 'the export lines');
    // At this point stdout holds exactly one line, and it is JSON.
    const lines = stdout().split('\n');
    assert.equal(lines.length, 2, `one line on stdout: ${stdout()}`);
    assert.equal(lines[1], '');
    const ready = JSON.parse(lines[0] ?? '') as { event: string; clusterFile: string; nodes: Array<{ pid: number }> };
    assert.equal(ready.event, 'ready');
    // The export lines, run by a real shell as a user pastes them, point at the cluster and its crypto user.
    const exports = stderr().split('\n').filter((l) => l.startsWith('export '));
    assert.equal(exports.length, 2);
    assert.ok(!stderr().includes((JSON.parse(readFileSync(ready.clusterFile, 'utf8')) as ClusterDoc).cryptoUser.password), 'no password printed');
    const shell = `${exports.join('\n')}\nprintf '%s\\n%s' "$COFFER_CLUSTER_CONFIG" "$COFFER_PIN"`;
    const path = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
    const [config, pin] = execFileSync('/bin/sh', ['-c', shell], { env: { ...process.env, PATH: path }, encoding: 'utf8' }).split('\n');
    const doc = JSON.parse(readFileSync(ready.clusterFile, 'utf8')) as ClusterDoc;
    assert.equal(config, ready.clusterFile);
    assert.equal(pin, `${doc.cryptoUser.name}:${doc.cryptoUser.password}`);

    // A node dies without being asked: cluster.json says so (rewritten whole), and both streams report it.
    const victim = ready.nodes[1]?.pid ?? assert.fail('two nodes');
    process.kill(victim, 'SIGKILL');
    const runningOf = (): boolean[] => (JSON.parse(readFileSync(ready.clusterFile, 'utf8')) as ClusterDoc).nodes.map((n) => n.running);
    await until(() => runningOf()[1] === false, 'cluster.json shows node 2 not running');
    assert.deepEqual(runningOf(), [true, false]);
    assert.equal(statSync(ready.clusterFile).mode & 0o777, 0o600);
    await until(() => stdout().split('\n').length === 3, 'a second JSON line');
    const exit = JSON.parse(stdout().split('\n')[1] ?? '') as { event: string; node: number; pid: number; signal: string; running: number; nodes: number };
    assert.deepEqual([exit.event, exit.node, exit.pid, exit.signal, exit.running, exit.nodes], ['node-exited', 2, victim, 'SIGKILL', 1, 2]);
    await until(() => /node 2 \(CFR-[0-9A-F]+, pid \d+\) exited unexpectedly \(signal SIGKILL\); 1 of 2 nodes still running/.test(stderr()), 'the report on stderr');
    assert.equal(child.exitCode, null, 'the cluster goes on with the node left');

    // The last node dies: the command reports it and ends with status 1.
    process.kill(ready.nodes[0]?.pid ?? 0, 'SIGKILL');
    const stillRunning = new Promise<string>((ok) => setTimeout(() => ok('still running'), 60_000).unref()); // a generous bound, not a timing
    assert.equal(await Promise.race([exited, stillRunning]), 1);
    assert.deepEqual(runningOf(), [false, false]);
    assert.match(stderr(), /no node is running any more/);
    assert.match(stderr(), /COFFER_CLUSTER_UNAVAILABLE/);
    assert.ok(stdout().trim().split('\n').every((l) => typeof (JSON.parse(l) as { event?: unknown }).event === 'string'), 'stdout holds JSON lines only');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
