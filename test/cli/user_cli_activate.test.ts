// `coffer cluster activate` on a node that is initialised but not yet activated (the state a new
// cluster is in after InitializeCluster): the PreCO password and the new admin password are read
// from stdin, and the admin can then log in with the new password.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagementClient } from '../../src/management/client.js';
import { randomClusterId, randomPassword } from '../../src/cli/dev_cluster.js';
import { spawnNode, stopNode } from '../../src/cli/dev_node_process.js';
import { pemOf } from '../../src/formats/x509.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../../src/factory/development.js';

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

test('cluster activate sets the admin password of an initialised cluster', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-activate-'));
  const authorities = await createDevelopmentAuthorities();
  const authoritiesDir = join(dir, 'authorities');
  let node;
  try {
    saveDevelopmentAuthorities(authorities, authoritiesDir);
    const client = await issueManagementClientCertificate(authorities.operator, 'activate test');
    node = await spawnNode({ mainJs: MAIN, dataDir: join(dir, 'node'), authoritiesDir, host: '127.0.0.1' });
    const customerCa = await createDevelopmentCustomerCa();
    const preCo = randomPassword(20);
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
  } finally {
    if (node !== undefined) await stopNode(node, 'SIGTERM');
    authorities.akbk?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
