// `coffer hsm serve` as a user runs it: a child process on a fresh data directory, reached over
// TLS 1.3 with the certificate it wrote (and over its management interface), stopped with a signal.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Connection } from '../../src/client/connection.js';
import { ManagementClient } from '../../src/management/client.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../../src/factory/development.js';
import { pemOf } from '../../src/formats/x509.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');


/** The node's stderr as log lines: every line must be one JSON object (the node writes nothing else). */
function logLines(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').filter((l) => l !== '').map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return assert.fail(`not a JSON log line: ${l}`);
    }
  });
}

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
  assert.equal(code, 2);
  assert.match(stderr, /COFFER_CLI_USAGE/);
});

test('coffer hsm serve --management-port --authorities prints one ready line, serves management, logs nothing, stops on SIGINT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-'));
  const authorities = await createDevelopmentAuthorities();
  saveDevelopmentAuthorities(authorities, join(dir, 'authorities'));
  const credential = await issueManagementClientCertificate(authorities.operator, 'cli test');
  const customerCa = await createDevelopmentCustomerCa();
  writeFileSync(join(dir, 'client-ca.pem'), customerCa.certificatePem);
  const args = [MAIN, 'hsm', 'serve', '--data', join(dir, 'node'), '--development', '--authorities', join(dir, 'authorities'), '--port', '0', '--management-port', '0', '--client-ca', join(dir, 'client-ca.pem')];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const line = await new Promise<string>((ok, ko) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('\n')) ok(stdout.slice(0, stdout.indexOf('\n')));
      });
      child.once('exit', (code) => ko(new Error(`serve exited early with ${String(code)}: ${stderr}`)));
    });
    const ready = JSON.parse(line) as { event: string; host: string; port: number; managementPort: number; serial: string; pid: number };
    assert.equal(ready.event, 'ready');
    assert.equal(ready.host, '127.0.0.1');
    assert.equal(ready.pid, child.pid);
    assert.ok(ready.port > 0 && ready.managementPort > 0 && ready.port !== ready.managementPort);
    const client = new ManagementClient({
      host: '127.0.0.1', port: ready.managementPort, ...credential,
      manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
    });
    const health = await client.health();
    assert.equal(health.serial, ready.serial);
    client.close();
    const code = await new Promise<number | null>((ok) => {
      child.once('exit', ok);
      child.kill('SIGINT');
    });
    assert.equal(code, 0);
    assert.equal(stdout.trim().split('\n').length, 1, 'exactly one line on stdout');
    // stderr carries the node's log only: JSON lines, the start and the stop, nothing above info.
    const lines = logLines(stderr);
    assert.deepEqual(lines.filter((l) => !['info', 'debug'].includes(String(l['level']))), [], 'nothing but info');
    assert.ok(lines.some((l) => l['event'] === 'started' && l['message'] === 'listening'));
    assert.ok(lines.some((l) => l['event'] === 'stopped'));
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('coffer hsm serve refuses a bad management port', async () => {
  const child = spawn(process.execPath, [MAIN, 'hsm', 'serve', '--data', join(tmpdir(), 'coffer-never-created'), '--development', '--management-port', 'x'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((ok) => child.once('exit', ok));
  assert.equal(code, 2);
  assert.match(stderr, /COFFER_CLI_USAGE/);
});

/** `coffer hsm serve` with a management port, and a management client for it; stdout and stderr gathered. */
async function servedWithManagement(dir: string): Promise<{
  child: ReturnType<typeof spawn>; client: ManagementClient; credential: { certificatePem: string; keyPem: string }; port: number; managementPort: number;
  stderr: () => string; exited: Promise<number | null>;
}> {
  const authorities = await createDevelopmentAuthorities();
  saveDevelopmentAuthorities(authorities, join(dir, 'authorities'));
  const credential = await issueManagementClientCertificate(authorities.operator, 'cli test');
  const args = [MAIN, 'hsm', 'serve', '--data', join(dir, 'node'), '--development', '--authorities', join(dir, 'authorities'), '--port', '0', '--management-port', '0'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', ok));
  const line = await new Promise<string>((ok, ko) => {
    createInterface({ input: child.stdout }).once('line', ok);
    void exited.then((code) => ko(new Error(`serve exited early with ${String(code)}: ${stderr}`)));
  });
  const ready = JSON.parse(line) as { port: number; managementPort: number };
  const client = new ManagementClient({
    host: '127.0.0.1', port: ready.managementPort, ...credential,
    manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
  });
  return { child, client, credential, port: ready.port, managementPort: ready.managementPort, stderr: () => stderr, exited };
}

test('a bug in a coffer hsm serve process stops it: exit status 70 and one line on stderr that names it a bug', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-'));
  const node = await servedWithManagement(dir);
  try {
    assert.equal((await node.client.health()).provisioning, 'COMMISSIONED');
    // The node's spool directory is replaced under it by a file: sealing a backup into it now fails
    // with an error the node has no meaning for (ENOTDIR): its state is not what it knows.
    const spool = join(dir, 'node', 'management-tmp');
    rmSync(spool, { recursive: true, force: true });
    writeFileSync(spool, 'not a directory');
    await assert.rejects(node.client.backupToFile(join(dir, 'backup.bin')));
    const stopped = new Promise<string>((ok) => setTimeout(() => ok('still running'), 60_000).unref()); // a generous bound, not a timing
    assert.equal(await Promise.race([node.exited, stopped]), 70, node.stderr());
    const bug = logLines(node.stderr()).filter((l) => l['level'] === 'fatal');
    assert.equal(bug.length, 1, node.stderr());
    assert.equal(bug[0]?.['event'], 'bug');
    assert.match(String(bug[0]?.['message']), /^bug: the node stops \(an HSM must not run on in an unknown state\)/);
    assert.match(String(bug[0]?.['error']), /ENOTDIR/);
  } finally {
    node.client.close();
    node.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a management client that hangs up in the middle of an upload does not stop coffer hsm serve', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-'));
  const node = await servedWithManagement(dir);
  try {
    await new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1', port: node.managementPort, method: 'PUT', path: '/v1/restore', rejectUnauthorized: false, agent: false, minVersion: 'TLSv1.3',
        cert: node.credential.certificatePem, key: node.credential.keyPem, headers: { 'content-length': 1_000_000 },
      });
      req.once('error', () => resolve());
      req.once('close', () => resolve());
      req.write(Buffer.alloc(64 * 1024), () => req.destroy()); // part of the body, then gone
    });
    assert.equal((await node.client.health()).provisioning, 'COMMISSIONED', 'the node still serves');
    assert.equal(node.child.exitCode, null);
    assert.deepEqual(logLines(node.stderr()).filter((l) => l['level'] !== 'info'), [], 'nothing reported but the ordinary info lines');
  } finally {
    node.client.close();
    node.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
