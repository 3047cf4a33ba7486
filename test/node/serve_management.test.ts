// serveNode with shared development authorities and a management port: both servers start and stop
// with the node, nodes of one authorities directory trust the same roots, and spool files left by
// a crash are removed at the next start.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagementClient } from '../../src/management/client.js';
import { createDevelopmentAuthorities, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../../src/factory/development.js';
import { pemOf } from '../../src/formats/x509.js';
import { MANAGEMENT_TMP_DIR, spoolFiles } from '../../src/node/management.js';
import { serveNode } from '../../src/node/serve.js';
import { createLogger } from '../../src/node/log.js';

const log = createLogger({ level: 'silent' }); // the log's own tests are test/node/log.test.ts

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

test('serveNode with --authorities and a management port: shared roots, both servers, clean close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-mgmt-'));
  try {
    const authorities = await createDevelopmentAuthorities();
    saveDevelopmentAuthorities(authorities, join(dir, 'authorities'));
    const credential = await issueManagementClientCertificate(authorities.operator, 'serve test');
    const roots = { manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate) };
    const nodes = await Promise.all([1, 2].map((i) => serveNode({ dataDir: join(dir, `node-${i}`), development: true, log, authoritiesDir: join(dir, 'authorities'), managementPort: 0 })));
    const ports: number[] = [];
    for (const node of nodes) {
      assert.ok(node.management !== undefined);
      assert.equal(node.hsm.provisioning.chain().operatorRoot?.pem, roots.operatorRootPem);
      const client = new ManagementClient({ host: '127.0.0.1', port: node.management.port, ...credential, ...roots });
      assert.equal((await client.health()).serial, node.hsm.status().serial);
      client.close();
      ports.push(node.management.port, node.dataPlane.port);
    }
    assert.notEqual(nodes[0]?.hsm.status().serial, nodes[1]?.hsm.status().serial);
    for (const node of nodes) await node.close();
    for (const port of ports) assert.ok(await refused(port), `port ${port} closed`);

    // A crash may leave spool files behind; the next start removes them.
    const dataDir = join(dir, 'node-1');
    mkdirSync(join(dataDir, MANAGEMENT_TMP_DIR), { recursive: true });
    writeFileSync(join(dataDir, MANAGEMENT_TMP_DIR, 'backup-1-1.tmp'), 'stale');
    const again = await serveNode({ dataDir, development: true, log, managementPort: 0 });
    assert.deepEqual(spoolFiles(dataDir), []);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serveNode without a management port serves no management interface', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-mgmt-'));
  try {
    const node = await serveNode({ dataDir: dir, development: true, log });
    assert.equal(node.management, undefined);
    await node.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
