// `coffer cluster activate` on a node that is initialised but not yet activated (the state a new
// cluster is in after InitializeCluster): the PreCO password and the new admin password are read
// from stdin, and the admin can then log in with the new password. A second activation is refused
// as COFFER_CLUSTER_ALREADY_ACTIVE; a pair with one HSM still unactivated gets that one activated.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagementClient } from '../../src/management/client.js';
import { randomClusterId, randomPassword } from '../../src/cli/dev_cluster.js';
import { spawnNode, stopNode, type DevNode } from '../../src/cli/dev_node_process.js';
import { pemOf } from '../../src/formats/x509.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, saveDevelopmentAuthorities, type DevelopmentAuthorities, type DevelopmentCustomerCa } from '../../src/factory/development.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function cli(args: readonly string[], input: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env['PATH'], ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((ok) => child.once('close', (code) => ok({ code, stdout, stderr })));
}

/** A node process whose cluster is initialised under `customerCa` (the state after InitializeCluster). */
async function initialisedNode(dir: string, name: string, authorities: DevelopmentAuthorities, authoritiesDir: string, customerCa: DevelopmentCustomerCa, preCo: string): Promise<DevNode> {
  const client = await issueManagementClientCertificate(authorities.operator, 'activate test');
  const node = await spawnNode({ mainJs: MAIN, dataDir: join(dir, name), authoritiesDir, host: '127.0.0.1' });
  const management = new ManagementClient({
    host: node.host, port: node.managementPort, ...client,
    manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
  });
  try {
    const certificatePem = await customerCa.signClusterCsr(await management.clusterCsr(randomClusterId()));
    await management.initialiseCluster({ certificatePem, trustAnchorPem: customerCa.certificatePem, preCoPassword: preCo, applianceCredential: randomPassword(32) });
  } finally {
    management.close();
  }
  return node;
}

test('cluster activate sets the admin password of an initialised cluster', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-activate-'));
  const authorities = await createDevelopmentAuthorities();
  const authoritiesDir = join(dir, 'authorities');
  const nodes: DevNode[] = [];
  try {
    saveDevelopmentAuthorities(authorities, authoritiesDir);
    const customerCa = await createDevelopmentCustomerCa();
    const preCo = randomPassword(20);
    const node = await initialisedNode(dir, 'node', authorities, authoritiesDir, customerCa, preCo);
    nodes.push(node);
    const caPath = join(dir, 'customer-ca.pem');
    writeFileSync(caPath, customerCa.certificatePem);
    const where = ['--endpoint', `${node.host}:${node.port}`, '--ca', caPath];
    const newPassword = 'new-Admin-passw0rd';

    const wrong = await cli(['cluster', 'activate', ...where], `not-the-preco\n${newPassword}\n`);
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.equal((JSON.parse(wrong.stdout) as { error: { code: string } }).error.code, 'COFFER_AUTH_FAILED');

    const r = await cli(['cluster', 'activate', ...where], `${preCo}\n${newPassword}\n`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { error_code: 0, data: { message: 'Cluster activated successfully' } });
    for (const secret of [preCo, newPassword]) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret));

    const users = await cli(['user', 'list', '--output', 'text', ...where], '', { COFFER_PIN: `admin:${newPassword}`, COFFER_ROLE: 'admin' });
    assert.equal(users.code, 0, users.stderr);
    assert.match(users.stdout, /^admin\s+admin\s+false/m);
    const again = await cli(['cluster', 'activate', ...where], `${preCo}\n${newPassword}\n`);
    assert.equal(again.code, 1, 'a cluster is activated once');
    // …and the second attempt says why, rather than the device's generic "Login failed".
    assert.equal((JSON.parse(again.stdout) as { error: { code: string } }).error.code, 'COFFER_CLUSTER_ALREADY_ACTIVE');
    assert.match(again.stderr, /^coffer: COFFER_CLUSTER_ALREADY_ACTIVE: /);

    // A second HSM not yet activated (an activation that stopped half-way): activating the pair
    // activates the one that needs it and counts the other.
    const second = await initialisedNode(dir, 'node-2', authorities, authoritiesDir, customerCa, preCo);
    nodes.push(second);
    const both = [...where, '--endpoint', `${second.host}:${second.port}`];
    const rest = await cli(['cluster', 'activate', ...both], `${preCo}\n${newPassword}\n`);
    assert.equal(rest.code, 0, rest.stdout + rest.stderr);
    assert.deepEqual(JSON.parse(rest.stdout), { error_code: 0, data: { message: 'Cluster activated successfully', 'already-active-nodes': 1 } });
    const onSecond = await cli(['user', 'list', '--endpoint', `${second.host}:${second.port}`, '--ca', caPath], '', { COFFER_PIN: `admin:${newPassword}`, COFFER_ROLE: 'admin' });
    assert.equal(onSecond.code, 0, onSecond.stderr);
    const all = await cli(['cluster', 'activate', ...both], '');
    assert.equal((JSON.parse(all.stdout) as { error: { code: string; detail: Record<string, number> } }).error.detail['activeNodes'], 2);
  } finally {
    await Promise.all(nodes.map((n) => stopNode(n, 'SIGTERM')));
    authorities.akbk?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
