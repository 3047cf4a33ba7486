// Coffer's fleet operations on the API port (src/service/api/coffer_operations.ts, server.ts): they
// answer only under their own X-Amz-Target prefix and only on a service given them, each needs its
// own `coffer:` action, and the CloudHSMv2 path is unchanged beside them (a fleet name under
// BaldrApiService, or an unknown name under CofferFleetService, is an unknown operation). Requests
// are signed by the AWS SDK's own signer (api_support.ts). The fleet here is a stand-in: the
// subject is the routing; the real operations run in test/e2e/remote_fleet.test.ts.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CofferError } from '../../../src/errors.js';
import { parseAccessKeys } from '../../../src/service/api/access_keys.js';
import type { FleetOperations, MonitoringOperations } from '../../../src/service/api/coffer_operations.js';
import { startApiServer } from '../../../src/service/api/server.js';
import type { AccessKey } from '../../../src/service/api/sigv4.js';
import { ADMIN, MemoryLog, READER, RecordingOperations, REGION, signedRequest, startTestApi } from './api_support.js';

const LISTER: AccessKey = { ...READER, accessKeyId: 'AKIALISTEREXAMPLE001', actions: ['coffer:ListNodes'] };
const seen: string[] = [];
const fleet: FleetOperations = {
  RegisterNode: (input) => {
    seen.push(`RegisterNode ${JSON.stringify(input)}`);
    return Promise.reject(new CofferError('COFFER_FLEET_UNTRUSTED', { reason: 'attestation' }));
  },
  ListNodes: () => {
    seen.push('ListNodes');
    return Promise.resolve({ Nodes: [] });
  },
  DeregisterNode: () => Promise.reject(new Error('a bug')),
};
const log = new MemoryLog();
const withFleet = await startApiServer({
  host: '127.0.0.1', port: 0, operations: new RecordingOperations().operations, accessKeys: [ADMIN, READER, LISTER], region: REGION,
  clock: { nowMs: () => Date.now() }, logger: log.logger, fleet,
});
const without = await startTestApi();

after(async () => {
  await withFleet.close();
  await without.server.close();
});

test('fleet operations: answered under CofferFleetService with their own actions; refusals carry the Coffer code', async () => {
  const listed = await signedRequest(withFleet.url, { target: 'CofferFleetService.ListNodes', key: LISTER });
  assert.deepEqual([listed.status, listed.json], [200, { Nodes: [] }]);
  const denied = await signedRequest(withFleet.url, { target: 'CofferFleetService.RegisterNode', key: LISTER, body: '{}' });
  assert.deepEqual([denied.status, denied.json?.['__type']], [403, 'AccessDeniedException']);
  assert.match(String(denied.json?.['Message']), /coffer:RegisterNode/);
  const readerDenied = await signedRequest(withFleet.url, { target: 'CofferFleetService.ListNodes', key: READER });
  assert.equal(readerDenied.json?.['__type'], 'AccessDeniedException', 'cloudhsm: actions do not grant coffer: ones');
  const refused = await signedRequest(withFleet.url, { target: 'CofferFleetService.RegisterNode', body: '{"ManagementHost":"h","ManagementPort":1}' });
  assert.deepEqual([refused.status, refused.json], [403, { __type: 'COFFER_FLEET_UNTRUSTED', Message: 'Node failed attestation against the manufacturer and operator roots', Detail: { reason: 'attestation' } }]);
  const bug = await signedRequest(withFleet.url, { target: 'CofferFleetService.DeregisterNode' });
  assert.deepEqual([bug.status, bug.json?.['__type']], [500, 'CloudHsmInternalFailureException'], 'anything but a CofferError stays an internal failure');
  const notJson = await signedRequest(withFleet.url, { target: 'CofferFleetService.ListNodes', body: '{' });
  assert.equal(notJson.json?.['__type'], 'SerializationException');
  assert.deepEqual(seen, ['ListNodes', 'RegisterNode {"ManagementHost":"h","ManagementPort":1}']);
  assert.ok(log.calls().some((l) => l['operation'] === 'CofferFleetService.RegisterNode' && l['outcome'] === 'COFFER_FLEET_UNTRUSTED'), 'logged with its code');
});

test('fleet operations: unknown names, the CloudHSMv2 prefix and a service without a fleet answer UnknownOperationException as before', async () => {
  for (const [url, target] of [
    [withFleet.url, 'CofferFleetService.DeleteEverything'],
    [withFleet.url, 'BaldrApiService.RegisterNode'],
    [withFleet.url, 'CofferFleetService'],
    [without.server.url, 'CofferFleetService.ListNodes'],
  ] as const) {
    const res = await signedRequest(url, { target });
    assert.deepEqual([res.status, res.json?.['__type']], [400, 'UnknownOperationException'], target);
  }
  const describe = await signedRequest(withFleet.url, { target: 'BaldrApiService.DescribeClusters' });
  assert.equal(describe.status, 200, 'the CloudHSMv2 operations beside them');
});

test('access keys: coffer: actions are accepted, unknown ones refused', () => {
  const entry = { accessKeyId: 'AKIAFLEETOPERATOR001', secretAccessKey: 'x'.repeat(40), accountId: '111122223333' };
  assert.deepEqual(parseAccessKeys({ accessKeys: [{ ...entry, actions: ['coffer:RegisterNode', 'coffer:ListNodes', 'coffer:DeregisterNode'] }] })[0]?.actions.length, 3);
  assert.throws(() => parseAccessKeys({ accessKeys: [{ ...entry, actions: ['coffer:ZeroiseNode'] }] }), (e) => e instanceof CofferError && e.code === 'COFFER_API_CONFIG_INVALID');
});

test('monitoring operations: answered under CofferMonitoringService with their own action; unknown names refused', async () => {
  const asked: unknown[] = [];
  const monitoring: MonitoringOperations = {
    DescribeHsmFigures: (input) => {
      asked.push(input);
      return Promise.resolve({ Hsms: [] });
    },
  };
  const watcher: AccessKey = { ...READER, accessKeyId: 'AKIAWATCHEREXAMPLE01', actions: ['coffer:DescribeHsmFigures'] };
  const server = await startApiServer({
    host: '127.0.0.1', port: 0, operations: new RecordingOperations().operations, accessKeys: [ADMIN, READER, watcher], region: REGION,
    clock: { nowMs: () => Date.now() }, logger: new MemoryLog().logger, monitoring,
  });
  try {
    const ok = await signedRequest(server.url, { target: 'CofferMonitoringService.DescribeHsmFigures', key: watcher, body: '{"ClusterId":"cluster-abcdefghijk"}' });
    assert.deepEqual([ok.status, ok.json], [200, { Hsms: [] }]);
    const denied = await signedRequest(server.url, { target: 'CofferMonitoringService.DescribeHsmFigures', key: READER, body: '{}' });
    assert.deepEqual([denied.status, denied.json?.['__type']], [403, 'AccessDeniedException'], 'cloudhsm: actions do not grant it');
    for (const target of ['CofferMonitoringService.DescribeEverything', 'BaldrApiService.DescribeHsmFigures', 'CofferFleetService.DescribeHsmFigures']) {
      const res = await signedRequest(server.url, { target });
      assert.deepEqual([res.status, res.json?.['__type']], [400, 'UnknownOperationException'], target);
    }
    assert.deepEqual(asked, [{ ClusterId: 'cluster-abcdefghijk' }]);
  } finally {
    await server.close();
  }
});
