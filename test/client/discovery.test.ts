// Discovery input (docs/sdk.md "Discovery"): CloudHSMv2 DescribeClusters output and the config file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_CONFIG_BYTES_MAX, endpointsFromDescribeClusters, loadClusterConfig, parseClusterConfig } from '../../src/client/discovery.js';
import { throwsCode } from '../helpers.js';

const describe = {
  Clusters: [
    { ClusterId: 'cluster-aaaaaaaaaaa', Hsms: [
      { HsmId: 'hsm-1', EniIp: '10.0.0.1', State: 'ACTIVE' },
      { HsmId: 'hsm-2', EniIp: '10.0.0.2', State: 'CREATE_IN_PROGRESS' },
      { HsmId: 'hsm-3', EniIp: '10.0.0.3', State: 'ACTIVE' },
    ] },
    { ClusterId: 'cluster-bbbbbbbbbbb', Hsms: [{ HsmId: 'hsm-4', EniIp: '10.0.1.1', State: 'ACTIVE' }] },
    { ClusterId: 'cluster-ccccccccccc' },
  ],
};

test('DescribeClusters: ACTIVE HSMs only, optionally of one cluster, on the given port', () => {
  assert.deepEqual(endpointsFromDescribeClusters(JSON.stringify(describe), { port: 2223 }).map((e) => e.host), ['10.0.0.1', '10.0.0.3', '10.0.1.1']);
  assert.deepEqual(endpointsFromDescribeClusters(describe, { port: 2223, clusterId: 'cluster-bbbbbbbbbbb' }), [{ host: '10.0.1.1', port: 2223 }]);
});

test('DescribeClusters: bad JSON, wrong shapes, no ACTIVE HSM and a bad port are COFFER_CLIENT_CONFIG_INVALID', () => {
  const bad = ['{', '[]', '{"Clusters": 5}', '{"Clusters": [{"Hsms": 3}]}', '{"Clusters": [{"Hsms": [{"State": "ACTIVE"}]}]}', '{"Clusters": [{"Hsms": [{"State": "DEGRADED", "EniIp": "1.2.3.4"}]}]}', 'null'];
  for (const b of bad) throwsCode(() => endpointsFromDescribeClusters(b, { port: 2223 }), 'COFFER_CLIENT_CONFIG_INVALID', b);
  throwsCode(() => endpointsFromDescribeClusters(describe, { port: 0 }), 'COFFER_CLIENT_CONFIG_INVALID');
  throwsCode(() => endpointsFromDescribeClusters(describe, { port: 2223, clusterId: 'cluster-none' }), 'COFFER_CLIENT_CONFIG_INVALID');
});

test('config file: endpoints as objects or host:port, ca relative to the file; bad files are typed errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-sdk-config-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    writeFileSync(join(dir, 'cluster.json'), JSON.stringify({ endpoints: [{ host: 'a.example', port: 4001, servername: 'hsm-a' }, '127.0.0.1:4002', '[::1]:4003'], ca: 'ca.pem' }));
    const c = loadClusterConfig(join(dir, 'cluster.json'));
    assert.deepEqual(c.endpoints, [{ host: 'a.example', port: 4001, servername: 'hsm-a' }, { host: '127.0.0.1', port: 4002 }, { host: '::1', port: 4003 }]);
    assert.ok(c.ca.startsWith('-----BEGIN CERTIFICATE-----'));
    writeFileSync(join(dir, 'not-pem.txt'), 'hello');
    const bad: unknown[] = ['{', {}, { endpoints: [] , ca: 'ca.pem' }, { endpoints: ['nohost'], ca: 'ca.pem' }, { endpoints: [{ host: 'x', port: 70000 }], ca: 'ca.pem' },
      { endpoints: ['x:1'] }, { endpoints: ['x:1'], ca: 'not-pem.txt' }, { endpoints: Array(33).fill('x:1'), ca: 'ca.pem' },
      { endpoints: ['x:1'], nodes: ['y:2'], ca: 'ca.pem' }, { endpoints: ['x:1'], ca: 'ca.pem', customerCa: 'ca.pem' }, [], 'null'];
    for (const b of bad) throwsCode(() => parseClusterConfig(typeof b === 'string' ? b : JSON.stringify(b), dir), 'COFFER_CLIENT_CONFIG_INVALID', JSON.stringify(b));
    // A file that cannot be read has its own code (the config itself, or the CA file it names).
    throwsCode(() => parseClusterConfig(JSON.stringify({ endpoints: ['x:1'], ca: 'missing.pem' }), dir), 'COFFER_CLIENT_CONFIG_UNREADABLE');
    throwsCode(() => loadClusterConfig(join(dir, 'absent.json')), 'COFFER_CLIENT_CONFIG_UNREADABLE');
    throwsCode(() => loadClusterConfig(dir), 'COFFER_CLIENT_CONFIG_UNREADABLE'); // a directory
    writeFileSync(join(dir, 'huge.json'), Buffer.alloc(CLUSTER_CONFIG_BYTES_MAX + 1, 0x20));
    throwsCode(() => loadClusterConfig(join(dir, 'huge.json')), 'COFFER_CLIENT_CONFIG_INVALID');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the development cluster's cluster.json loads as it is (one loader for the SDK and the CLI)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-sdk-config-'));
  try {
    const ca = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'customer-ca.pem'), ca);
    // The shape src/cli/dev_cluster.ts writes: nodes with more fields than an endpoint, an absolute customerCa.
    writeFileSync(join(dir, 'cluster.json'), JSON.stringify({
      clusterId: 'cluster-abcdefghijk', customerCa: join(dir, 'customer-ca.pem'), admin: { name: 'admin', password: 'x' },
      nodes: [{ host: '127.0.0.1', port: 4001, managementPort: 4101, pid: 1, serial: 'S1', dataDir: '/d', running: true },
        { host: '127.0.0.1', port: 4002, managementPort: 4102, pid: 2, serial: 'S2', dataDir: '/e', running: true }],
    }));
    assert.deepEqual(loadClusterConfig(join(dir, 'cluster.json')), { endpoints: [{ host: '127.0.0.1', port: 4001 }, { host: '127.0.0.1', port: 4002 }], ca });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
