// The API server with raw HTTP requests signed by the AWS SDK's own signer (@smithy/signature-v4):
// the three resource-policy operations (newer than SDK 3.332), and every kind of bad request —
// unsigned, forged, expired, wrongly scoped, unknown key, not allowed, unknown operation, malformed
// JSON, wrong types, unknown members, bad ids, oversize and slow bodies — each answered with its
// exact AWS error while the operation is never called.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { API_BODY_BYTES_MAX } from '../../../src/service/api/server.js';
import { ACCOUNT, ADMIN, BACKUP, POLICY, READER, REGION, rawRequest, signedRequest, startTestApi, type RawResponse, type TestApi } from './api_support.js';

let api: TestApi;
before(async () => {
  api = await startTestApi();
});
after(async () => {
  await api.server.close();
});

const T = (op: string): string => `BaldrApiService.${op}`;

/** Polls a condition until it holds, failing after a generous bound (never a timing assertion). */
async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting: ${what}`);
}

function isAwsError(res: RawResponse, status: number, type: string, message?: string | RegExp): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers['content-type'], 'application/x-amz-json-1.1');
  assert.match(String(res.headers['x-amzn-requestid']), /^[0-9a-f-]{36}$/);
  assert.deepEqual(Object.keys(res.json ?? {}).sort(), ['Message', '__type']);
  assert.equal(res.json?.__type, type, res.text);
  if (typeof message === 'string') assert.equal(res.json?.Message, message);
  else if (message !== undefined) assert.match(String(res.json?.Message), message);
}

test('the resource-policy operations with requests signed by the SDK signer', async () => {
  api.ops.calls.length = 0;
  const put = await signedRequest(api.server.url, { target: T('PutResourcePolicy'), body: JSON.stringify({ ResourceArn: BACKUP.BackupArn, Policy: POLICY }) });
  assert.equal(put.status, 200, put.text);
  assert.deepEqual(put.json, { ResourceArn: BACKUP.BackupArn, Policy: POLICY });
  const get = await signedRequest(api.server.url, { target: T('GetResourcePolicy'), body: JSON.stringify({ ResourceArn: BACKUP.BackupArn }) });
  assert.deepEqual(get.json, { Policy: POLICY });
  const del = await signedRequest(api.server.url, { target: T('DeleteResourcePolicy'), body: JSON.stringify({ ResourceArn: BACKUP.BackupArn }) });
  assert.deepEqual(del.json, { ResourceArn: BACKUP.BackupArn, Policy: POLICY });
  assert.deepEqual(api.ops.calls.map((c) => [c.operation, c.input, c.caller.accountId]), [
    ['PutResourcePolicy', { ResourceArn: BACKUP.BackupArn, Policy: POLICY }, ACCOUNT],
    ['GetResourcePolicy', { ResourceArn: BACKUP.BackupArn }, ACCOUNT],
    ['DeleteResourcePolicy', { ResourceArn: BACKUP.BackupArn }, ACCOUNT],
  ]);
  // The newer model's other operations and members, which the SDK lacks, reach the handler too.
  const create = await signedRequest(api.server.url, {
    target: T('CreateCluster'), body: JSON.stringify({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0123abcd'], Mode: 'NON_FIPS', NetworkType: 'DUALSTACK', SourceBackupId: BACKUP.BackupArn }),
  });
  assert.equal(create.status, 200);
  assert.equal((create.json?.Cluster as Record<string, unknown>).Mode, 'FIPS');
  assert.equal((create.json?.Cluster as Record<string, unknown>).CreateTimestamp, Date.UTC(2026, 0, 2, 3, 4, 5, 250) / 1000);
  // An empty body is an empty request.
  const empty = await signedRequest(api.server.url, { target: T('DescribeClusters'), body: '' });
  assert.equal(empty.status, 200);
});

test('refused before the operation: each bad request gets its exact AWS error', async () => {
  api.ops.calls.length = 0;
  const url = api.server.url;
  const describe = { target: T('DescribeClusters'), body: '{}' };
  const cases: [string, Promise<RawResponse>, number, string, (string | RegExp)?][] = [
    ['unsigned', rawRequest(url, { headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': T('DescribeClusters') }, body: '{}' }), 403, 'MissingAuthenticationTokenException', 'Missing Authentication Token'],
    ['body altered after signing', signedRequest(url, { ...describe, tamper: (h) => ({ headers: h, body: Buffer.from('{"MaxResults":1}') }) }), 403, 'InvalidSignatureException', "The provided 'x-amz-content-sha256' header does not match the body."],
    ['body and its hash header altered', signedRequest(url, {
      ...describe, tamper: (h) => ({ headers: { ...h, 'x-amz-content-sha256': createHash('sha256').update('{"MaxResults":1}').digest('hex') }, body: Buffer.from('{"MaxResults":1}') }),
    }), 403, 'InvalidSignatureException', /does not match the signature you provided/],
    ['target altered after signing', signedRequest(url, { target: T('DeleteCluster'), body: '{"ClusterId":"cluster-abcdefgh2345"}', tamper: (h, b) => ({ headers: { ...h, 'x-amz-target': T('ModifyCluster') }, body: b }) }), 403, 'InvalidSignatureException'],
    ['target not signed', signedRequest(url, { body: '{}', tamper: (h, b) => ({ headers: { ...h, 'x-amz-target': T('DescribeClusters') }, body: b }) }), 403, 'IncompleteSignatureException', "'x-amz-target' must be a signed header"],
    ['wrong secret', signedRequest(url, { ...describe, key: { ...ADMIN, secretAccessKey: `${ADMIN.secretAccessKey}x` } }), 403, 'InvalidSignatureException'],
    ['expired', signedRequest(url, { ...describe, signingDate: new Date(api.clockMs - 6 * 60_000) }), 403, 'InvalidSignatureException', /^Signature expired/],
    ['from the future', signedRequest(url, { ...describe, signingDate: new Date(api.clockMs + 6 * 60_000) }), 403, 'InvalidSignatureException', /^Signature not yet current/],
    ['other region', signedRequest(url, { ...describe, region: 'us-east-1' }), 403, 'InvalidSignatureException', `Credential should be scoped to a valid region: '${REGION}'.`],
    ['other service', signedRequest(url, { ...describe, service: 'cloudhsmv2' }), 403, 'InvalidSignatureException', "Credential should be scoped to correct service: 'cloudhsm'."],
    ['unknown key', signedRequest(url, { ...describe, key: { ...ADMIN, accessKeyId: 'AKIAUNKNOWNEXAMPLE01' } }), 403, 'UnrecognizedClientException'],
    ['session token', signedRequest(url, { ...describe, headers: { 'x-amz-security-token': 'FwoGZXIvYXdzEXAMPLE' } }), 403, 'UnrecognizedClientException'],
    ['not allowed', signedRequest(url, { target: T('PutResourcePolicy'), key: READER, body: JSON.stringify({ Policy: POLICY }) }), 403, 'AccessDeniedException', 'The access key is not authorized to perform: cloudhsm:PutResourcePolicy'],
    ['unknown operation', signedRequest(url, { target: T('DeleteEverything') }), 400, 'UnknownOperationException'],
    ['other service prefix', signedRequest(url, { target: 'TrentService.DescribeClusters' }), 400, 'UnknownOperationException'],
    ['GET', signedRequest(url, { ...describe, method: 'GET', body: '' }), 400, 'UnknownOperationException'],
    ['other path', signedRequest(url, { ...describe, path: '/clusters' }), 400, 'UnknownOperationException'],
    ['wrong content type', signedRequest(url, { ...describe, headers: { 'content-type': 'application/json' } }), 400, 'SerializationException', 'Content-Type must be application/x-amz-json-1.1'],
    ['malformed JSON', signedRequest(url, { target: T('DeleteCluster'), body: '{"ClusterId":' }), 400, 'SerializationException', 'Request body is not valid JSON'],
    ['not UTF-8', signedRequest(url, { target: T('DeleteCluster'), body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]) }), 400, 'SerializationException', 'Request body is not UTF-8'],
    ['a JSON list', signedRequest(url, { target: T('DescribeClusters'), body: '[]' }), 400, 'SerializationException'],
    ['wrong type', signedRequest(url, { target: T('DescribeClusters'), body: '{"MaxResults":"5"}' }), 400, 'SerializationException', "Value at 'MaxResults' must be an integer, not string"],
    ['unknown member', signedRequest(url, { target: T('DeleteCluster'), body: '{"ClusterId":"cluster-abcdefgh2345","Force":true}' }), 400, 'ValidationException', "1 validation error detected: Member 'Force' is not a member of DeleteClusterRequest"],
    ['bad cluster id', signedRequest(url, { target: T('DeleteCluster'), body: '{"ClusterId":"cluster-0000000000000"}' }), 400, 'ValidationException', "1 validation error detected: Value at 'ClusterId' failed to satisfy constraint: Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"],
    ['bad ARN', signedRequest(url, { target: T('GetResourcePolicy'), body: '{"ResourceArn":"arn:aws:cloudhsm:eu-west-2:111122223333:key/key-abcdefgh2345"}' }), 400, 'ValidationException', /ResourceArn/],
    ['missing member', signedRequest(url, { target: T('CreateHsm'), body: '{"ClusterId":"cluster-abcdefgh2345"}' }), 400, 'ValidationException', /AvailabilityZone.*must not be null/],
    ['oversize body', signedRequest(url, { target: T('DescribeClusters'), body: `{"NextToken":"${'a'.repeat(API_BODY_BYTES_MAX)}"}` }), 413, 'RequestEntityTooLargeException'],
  ];
  for (const [name, response, status, type, message] of cases) {
    await test(name, async () => isAwsError(await response, status, type, message));
  }
  assert.deepEqual(api.ops.calls, [], 'no operation was called');
  // The clock is the service's: moving it on makes a fresh signature stale.
  api.clockMs += 10 * 60_000;
  isAwsError(await signedRequest(url, { ...describe }), 403, 'InvalidSignatureException', /^Signature expired/);
  api.clockMs -= 10 * 60_000;
  const res = await signedRequest(url, describe);
  assert.equal(res.status, 200);
});

test('the log of all the above: a line per request, no secret, signature, session token or body', () => {
  const calls = api.log.calls();
  assert.ok(calls.length >= 30);
  assert.ok(calls.some((l) => l.outcome === 'MissingAuthenticationTokenException' && l.account === undefined));
  assert.ok(calls.some((l) => l.outcome === 'RequestEntityTooLargeException' && l.status === 413));
  const all = api.log.text.join('');
  for (const secret of [ADMIN.secretAccessKey, READER.secretAccessKey, 'AWS4-HMAC-SHA256', 'Signature=', 'FwoGZXIvYXdzEXAMPLE', POLICY, 'cluster-0000000000000', 'NON_FIPS']) {
    assert.ok(!all.includes(secret), `log holds ${secret}`);
  }
});

test('a body that does not arrive in time: RequestTimeoutException, connection closed', async () => {
  const slow = await startTestApi({ bodyTimeoutMs: 200 });
  try {
    const socket = connect(slow.server.port, '127.0.0.1');
    socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{"');
    const answer = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /\{"__type":"RequestTimeoutException","Message":"Request body was not received in time"\}$/);
    assert.deepEqual(slow.ops.calls, []);
  } finally {
    await slow.server.close();
  }
});

test('clients that leave mid-body or mid-call do not disturb the service', async () => {
  const partial = connect(api.server.port, '127.0.0.1');
  await new Promise<void>((resolve) => partial.on('connect', () => resolve()));
  partial.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"Cl');
  partial.destroy();
  // An operation still running when its client leaves: its answer has nowhere to go.
  let release = (): void => undefined;
  const started = new Promise<void>((resolveStarted) => {
    api.ops.behaviour.set('DescribeBackups', () => new Promise((resolve) => {
      release = () => resolve({ Backups: [] });
      resolveStarted();
    }));
  });
  const abort = new AbortController();
  const leaving = signedRequest(api.server.url, { target: T('DescribeBackups'), signal: abort.signal }).catch((e: unknown) => e);
  await started;
  abort.abort();
  assert.ok((await leaving) instanceof Error);
  release();
  api.ops.behaviour.delete('DescribeBackups');
  const res = await signedRequest(api.server.url, { target: T('DescribeBackups') });
  assert.equal(res.status, 200);
});

test('connections beyond the limit are closed at once; the service goes on', async () => {
  const small = await startTestApi({ connectionsMax: 2 });
  const connections = (): Promise<number> => new Promise((resolve) => small.server.server.getConnections((_e, n) => resolve(n)));
  const open = (): Promise<Socket> => new Promise((resolve, reject) => {
    const s = connect(small.server.port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
  try {
    const held = [await open(), await open()];
    // Node counts a connection once it has accepted it: wait until both are counted.
    await waitFor(async () => (await connections()) === 2, 'both connections counted');
    const third = connect(small.server.port, '127.0.0.1');
    const closed = await new Promise<string>((resolve) => {
      let data = '';
      third.on('data', (c: Buffer) => (data += c.toString('utf8')));
      third.on('error', () => resolve(data));
      third.on('close', () => resolve(data));
      third.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    });
    assert.equal(closed, '', 'closed without an answer');
    for (const s of held) s.destroy();
    await waitFor(async () => (await connections()) === 0, 'connections closed');
    const res = await signedRequest(small.server.url, { target: T('DescribeClusters') });
    assert.equal(res.status, 200);
  } finally {
    await small.server.close();
  }
});
