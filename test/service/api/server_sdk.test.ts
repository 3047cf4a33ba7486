// The real AWS SDK (@aws-sdk/client-cloudhsm-v2 3.332.0, 15 operations) against the API server:
// every operation round-trips through the SDK's serializer, SigV4 signer and deserializer; every
// service-model exception reaches the SDK as its class with its message; an operation's unexpected
// failure becomes CloudHsmInternalFailureException with a generic message; pagination works with the
// API's NextTokens; one log line per call, without secrets or bodies.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CloudHSMV2Client, CloudHSMV2ServiceException, CloudHsmAccessDeniedException, CloudHsmInternalFailureException, CloudHsmInvalidRequestException,
  CloudHsmResourceNotFoundException, CloudHsmServiceException, CloudHsmTagException,
  CopyBackupToRegionCommand, CreateClusterCommand, CreateHsmCommand, DeleteBackupCommand, DeleteClusterCommand, DeleteHsmCommand,
  DescribeBackupsCommand, DescribeClustersCommand, InitializeClusterCommand, ListTagsCommand, ModifyBackupAttributesCommand,
  ModifyClusterCommand, RestoreBackupCommand, TagResourceCommand, UntagResourceCommand, paginateDescribeClusters,
} from '@aws-sdk/client-cloudhsm-v2';
import { ApiError, type ApiExceptionType, type OperationName } from '../../../src/service/api/operations.js';
import { INTERNAL_FAILURE_MESSAGE } from '../../../src/service/api/api_errors.js';
import { decodeNextToken, encodeNextToken, pageSize, parseClusterFilters } from '../../../src/service/api/pagination.js';
import { newId } from '../../../src/service/api/resources.js';
import { ACCOUNT, ADMIN, BACKUP_ID, CANNED, CLUSTER_ID, HSM_ID, READER, REGION, startTestApi, type TestApi } from './api_support.js';

let api: TestApi;
before(async () => {
  api = await startTestApi();
});
after(async () => {
  await api.server.close();
});

function client(key = ADMIN): CloudHSMV2Client {
  return new CloudHSMV2Client({
    region: REGION, endpoint: api.server.url, maxAttempts: 1,
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
  });
}

const TAGS = [{ Key: 'owner', Value: 'request-only-tag-value' }];
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBrequestonlycertificate=\n-----END CERTIFICATE-----\n';

/** Each SDK command with an input using every member the SDK has for it. */
const COMMANDS: [OperationName, (c: CloudHSMV2Client) => Promise<Record<string, unknown>>, Record<string, unknown>][] = [];
function add<I extends object>(operation: OperationName, Command: new (input: I) => unknown, input: I): void {
  COMMANDS.push([operation, (c) => c.send(new Command(input) as never) as unknown as Promise<Record<string, unknown>>, input as Record<string, unknown>]);
}
add('CopyBackupToRegion', CopyBackupToRegionCommand, { DestinationRegion: 'eu-west-1', BackupId: BACKUP_ID, TagList: TAGS });
add('CreateCluster', CreateClusterCommand, {
  BackupRetentionPolicy: { Type: 'DAYS', Value: '30' }, HsmType: 'hsm1.medium', SourceBackupId: BACKUP_ID, SubnetIds: ['subnet-0123abcd', 'subnet-4567abcd'], TagList: TAGS,
});
add('CreateHsm', CreateHsmCommand, { ClusterId: CLUSTER_ID, AvailabilityZone: 'eu-west-2a', IpAddress: '10.0.0.5' });
add('DeleteBackup', DeleteBackupCommand, { BackupId: BACKUP_ID });
add('DeleteCluster', DeleteClusterCommand, { ClusterId: CLUSTER_ID });
add('DeleteHsm', DeleteHsmCommand, { ClusterId: CLUSTER_ID, HsmId: HSM_ID, EniId: 'eni-0123abcd', EniIp: '10.0.0.5' });
add('DescribeBackups', DescribeBackupsCommand, { NextToken: 'v1.x', MaxResults: 10, Filters: { states: ['READY'], neverExpires: ['true'] }, SortAscending: true });
add('DescribeClusters', DescribeClustersCommand, { Filters: { clusterIds: [CLUSTER_ID], states: ['ACTIVE'] }, NextToken: 'v1.x', MaxResults: 5 });
add('InitializeCluster', InitializeClusterCommand, { ClusterId: CLUSTER_ID, SignedCert: CERT, TrustAnchor: CERT });
add('ListTags', ListTagsCommand, { ResourceId: CLUSTER_ID, NextToken: 'v1.x', MaxResults: 100 });
add('ModifyBackupAttributes', ModifyBackupAttributesCommand, { BackupId: BACKUP_ID, NeverExpires: true });
add('ModifyCluster', ModifyClusterCommand, { BackupRetentionPolicy: { Type: 'DAYS', Value: '379' }, ClusterId: CLUSTER_ID });
add('RestoreBackup', RestoreBackupCommand, { BackupId: BACKUP_ID });
add('TagResource', TagResourceCommand, { ResourceId: CLUSTER_ID, TagList: TAGS });
add('UntagResource', UntagResourceCommand, { ResourceId: CLUSTER_ID, TagKeyList: ['owner'] });

/** Members newer than SDK 3.332's model, which its deserializer leaves out of Cluster and Backup. */
const NEWER = ['Mode', 'NetworkType', 'HsmTypeRollbackExpiration', 'BackupArn', 'HsmType'];
function sdkView(output: Record<string, unknown>): Record<string, unknown> {
  const strip = (o: Record<string, unknown>, keepHsmType: boolean): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).filter(([k]) => !NEWER.includes(k) || (keepHsmType && k === 'HsmType')));
  const out: Record<string, unknown> = { ...output };
  if (out.Cluster !== undefined) out.Cluster = strip(out.Cluster as Record<string, unknown>, true);
  if (out.Clusters !== undefined) out.Clusters = (out.Clusters as Record<string, unknown>[]).map((c) => strip(c, true));
  if (out.Backup !== undefined) out.Backup = strip(out.Backup as Record<string, unknown>, false);
  if (out.Backups !== undefined) out.Backups = (out.Backups as Record<string, unknown>[]).map((b) => strip(b, false));
  return out;
}

test('the SDK has the 15 operations of its model; each round-trips with every member', async () => {
  assert.equal(COMMANDS.length, 15);
  const c = client();
  for (const [operation, send, input] of COMMANDS) {
    api.ops.calls.length = 0;
    const { $metadata, ...output } = await send(c) as { $metadata: { requestId?: string; httpStatusCode?: number } };
    assert.equal($metadata.httpStatusCode, 200, operation);
    assert.match($metadata.requestId ?? '', /^[0-9a-f-]{36}$/, `${operation}: x-amzn-RequestId`);
    assert.deepEqual(output, sdkView(CANNED[operation] as Record<string, unknown>), `${operation}: output`);
    assert.equal(api.ops.calls.length, 1, operation);
    const call = api.ops.calls[0];
    assert.ok(call !== undefined);
    assert.equal(call.operation, operation);
    assert.deepEqual(call.input, input, `${operation}: input the handler saw`);
    assert.deepEqual({ ...call.caller, requestId: '' }, { accountId: ACCOUNT, accessKeyId: ADMIN.accessKeyId, region: REGION, requestId: '' });
    assert.equal(call.caller.requestId, $metadata.requestId);
  }
});

test('every service-model exception reaches the SDK as its type with its message', async () => {
  const classes: Record<ApiExceptionType, (new (...args: never[]) => Error) | undefined> = {
    CloudHsmAccessDeniedException, CloudHsmInternalFailureException, CloudHsmInvalidRequestException, CloudHsmResourceNotFoundException,
    CloudHsmServiceException, CloudHsmTagException,
    // Not in SDK 3.332's model: it arrives as the service's base exception with the type as its name.
    CloudHsmResourceLimitExceededException: undefined,
  };
  const c = client();
  for (const [type, cls] of Object.entries(classes) as [ApiExceptionType, (new (...args: never[]) => Error) | undefined][]) {
    api.ops.behaviour.set('DeleteCluster', () => Promise.reject(new ApiError(type, `Refused for a reason (${type})`)));
    await assert.rejects(c.send(new DeleteClusterCommand({ ClusterId: CLUSTER_ID })), (e: unknown) => {
      assert.ok(e instanceof CloudHSMV2ServiceException);
      if (cls !== undefined) assert.ok(e instanceof cls, type);
      assert.equal(e.name, type);
      assert.equal(e.message, `Refused for a reason (${type})`);
      assert.equal(e.$metadata.httpStatusCode, type === 'CloudHsmInternalFailureException' ? 500 : 400);
      return true;
    });
  }
  api.ops.behaviour.delete('DeleteCluster');
});

test('an unexpected failure of an operation is an internal failure with a generic message, logged', async () => {
  api.ops.calls.length = 0;
  api.ops.behaviour.set('DescribeBackups', () => Promise.reject(new Error('database password hunter2 at 10.1.2.3 refused')));
  await assert.rejects(client().send(new DescribeBackupsCommand({})), (e: unknown) => {
    assert.ok(e instanceof CloudHsmInternalFailureException);
    assert.equal(e.message, INTERNAL_FAILURE_MESSAGE);
    assert.ok(!JSON.stringify(e).includes('hunter2'));
    return true;
  });
  // An operation returning a member its output shape lacks is a bug, not a leak.
  api.ops.behaviour.set('DescribeBackups', () => Promise.resolve({ Backups: [], InternalCursor: 'x' }));
  await assert.rejects(client().send(new DescribeBackupsCommand({})), CloudHsmInternalFailureException);
  api.ops.behaviour.delete('DescribeBackups');
  // The SDK retries a 500 (CloudHSM documents the failure as retryable): one log line per call
  // that reached the operation.
  const failures = api.log.lines.filter((l) => l.message === 'internal failure');
  assert.ok(failures.length >= 2);
  assert.equal(failures.length, api.ops.calls.length);
  assert.ok(failures.every((f) => f.operation === 'DescribeBackups'));
});

test('pagination: the SDK paginator walks NextTokens the API helpers make; a foreign token is refused', async () => {
  const ids = Array.from({ length: 5 }, () => newId('cluster')).sort();
  api.ops.behaviour.set('DescribeClusters', (input, caller) => {
    const binding = { operation: 'DescribeClusters' as const, accountId: caller.accountId, query: parseClusterFilters(input) };
    const afterId = typeof input.NextToken === 'string' ? decodeNextToken(binding, input.NextToken) : '';
    const rest = ids.filter((id) => id > afterId);
    const page = rest.slice(0, pageSize('DescribeClusters', input));
    const last = page[page.length - 1];
    return Promise.resolve({
      Clusters: page.map((ClusterId) => ({ ClusterId })),
      ...(rest.length > page.length && last !== undefined ? { NextToken: encodeNextToken(binding, last) } : {}),
    });
  });
  const seen: string[] = [];
  let pages = 0;
  for await (const page of paginateDescribeClusters({ client: client(), pageSize: 2 }, { Filters: { states: ['ACTIVE'] } })) {
    pages++;
    seen.push(...(page.Clusters ?? []).map((cl) => cl.ClusterId ?? ''));
  }
  assert.equal(pages, 3);
  assert.deepEqual(seen, ids);
  // A token for other filters, or from another account's listing, is refused.
  const first = await client().send(new DescribeClustersCommand({ MaxResults: 2 }));
  assert.ok(first.NextToken !== undefined);
  await assert.rejects(client().send(new DescribeClustersCommand({ MaxResults: 2, NextToken: first.NextToken, Filters: { states: ['DELETED'] } })), CloudHsmInvalidRequestException);
  await assert.rejects(client(READER).send(new DescribeClustersCommand({ NextToken: first.NextToken })), CloudHsmInvalidRequestException);
  await assert.rejects(client().send(new DescribeClustersCommand({ NextToken: 'not-a-token' })), CloudHsmInvalidRequestException);
  api.ops.behaviour.delete('DescribeClusters');
});

test('a key may call only its actions: AccessDeniedException, the handler never called', async () => {
  api.ops.calls.length = 0;
  await client(READER).send(new DescribeClustersCommand({}));
  await assert.rejects(client(READER).send(new DeleteClusterCommand({ ClusterId: CLUSTER_ID })), (e: unknown) => {
    assert.ok(e instanceof CloudHSMV2ServiceException);
    assert.equal(e.name, 'AccessDeniedException');
    assert.equal(e.message, 'The access key is not authorized to perform: cloudhsm:DeleteCluster');
    return true;
  });
  await assert.rejects(client({ ...ADMIN, secretAccessKey: `${ADMIN.secretAccessKey}x` }).send(new DescribeClustersCommand({})), (e: unknown) =>
    e instanceof CloudHSMV2ServiceException && e.name === 'InvalidSignatureException');
  await assert.rejects(client({ ...ADMIN, accessKeyId: 'AKIAUNKNOWNEXAMPLE01' }).send(new DescribeClustersCommand({})), (e: unknown) =>
    e instanceof CloudHSMV2ServiceException && e.name === 'UnrecognizedClientException');
  assert.deepEqual(api.ops.calls.map((c) => c.operation), ['DescribeClusters']);
});

test('the log: one line per call with operation, account, outcome and latency; no secret, signature or body', () => {
  const calls = api.log.calls();
  assert.ok(calls.length >= 15 + 7 + 2);
  for (const line of calls) {
    assert.equal(typeof line.requestId, 'string');
    assert.equal(typeof line.latencyMs, 'number');
    assert.equal(typeof line.outcome, 'string');
  }
  const ok = calls.find((l) => l.operation === 'InitializeCluster' && l.outcome === 'ok');
  assert.ok(ok !== undefined);
  assert.equal(ok.account, ACCOUNT);
  assert.equal(ok.status, 200);
  const denied = calls.find((l) => l.outcome === 'AccessDeniedException');
  assert.equal(denied?.operation, 'DeleteCluster');
  assert.equal(denied.account, READER.accountId);
  const all = api.log.text.join('');
  for (const secret of [ADMIN.secretAccessKey, READER.secretAccessKey, 'AWS4-HMAC-SHA256', 'Signature=', 'request-only-tag-value', 'requestonlycertificate']) {
    assert.ok(!all.includes(secret), `log holds ${secret}`);
  }
});
