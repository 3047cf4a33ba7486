// Discovery input (docs/sdk.md "Discovery"): CloudHSMv2 DescribeClusters output and the config file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endpointsFromDescribeClusters, loadClusterConfig, parseClusterConfig } from '../../src/client/discovery.js';
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
      { endpoints: ['x:1'] }, { endpoints: ['x:1'], ca: 'missing.pem' }, { endpoints: ['x:1'], ca: 'not-pem.txt' }, { endpoints: Array(33).fill('x:1'), ca: 'ca.pem' }];
    for (const b of bad) throwsCode(() => parseClusterConfig(typeof b === 'string' ? b : JSON.stringify(b), dir), 'COFFER_CLIENT_CONFIG_INVALID', JSON.stringify(b));
    throwsCode(() => loadClusterConfig(join(dir, 'absent.json')), 'COFFER_CLIENT_CONFIG_INVALID');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
