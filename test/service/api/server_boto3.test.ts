// boto3 (Debian's python3-boto3 1.26 on its own botocore 1.29, not the AWS CLI's bundled copy)
// against the API server: a Python program a user would write — a client with an endpoint URL and
// keys, calls with filters, a paginator that follows the API's NextTokens, tags, and errors caught as
// botocore's ClientError with the service model's codes — signs, sends and parses as against AWS.
// Skipped with the reason printed where python3 or boto3 is missing, except with
// COFFER_REQUIRE_BOTO3=1, which .ci/run sets after installing it: there a missing boto3 fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { ADMIN, BACKUP, CANNED, CLUSTER_ID, READER, REGION, startTestApi, type TestApi } from './api_support.js';
import type { AccessKey } from '../../../src/service/api/sigv4.js';
import { ApiError } from '../../../src/service/api/operations.js';

function boto3Missing(): string | undefined {
  try {
    execFileSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'needs python3 with boto3 (Debian: python3-boto3)';
  }
}
const missing = boto3Missing();
if (missing !== undefined) {
  if (process.env.COFFER_REQUIRE_BOTO3 === '1') throw new Error(`COFFER_REQUIRE_BOTO3=1 but ${missing}`);
  console.log(`boto3 tests skipped: ${missing}`);
}

let api: TestApi;
before(async () => {
  api = await startTestApi();
});
after(async () => {
  await api.server.close();
});

/** Runs `body` (Python, with `c` a cloudhsmv2 client and `ClientError` imported) and returns what it printed as JSON. */
function boto3(body: string, key: AccessKey = ADMIN): Promise<unknown> {
  const program = [
    'import json, sys, boto3',
    'from botocore.config import Config',
    'from botocore.exceptions import ClientError',
    'c = boto3.client("cloudhsmv2", endpoint_url=sys.argv[1], region_name=sys.argv[2], aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4],',
    '                 config=Config(retries={"max_attempts": 1, "mode": "standard"}))',
    'out = {}',
    body,
    'print(json.dumps(out, default=str))',
  ].join('\n');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true' };
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', program, api.server.url, REGION, key.accessKeyId, key.secretAccessKey], { env, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`python3 failed: ${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

test('describe_clusters with filters: the operation gets them, boto3 parses the answer and its timestamps', { skip: missing }, async () => {
  api.ops.calls.length = 0;
  const out = await boto3([
    'r = c.describe_clusters(Filters={"states": ["ACTIVE", "INITIALIZED"]}, MaxResults=5)',
    'cl = r["Clusters"][0]',
    'out["id"] = cl["ClusterId"]; out["ip"] = cl["Hsms"][0]["EniIp"]; out["created"] = cl["CreateTimestamp"].isoformat(); out["status"] = r["ResponseMetadata"]["HTTPStatusCode"]',
  ].join('\n')) as Record<string, unknown>;
  assert.deepEqual(out, { id: CLUSTER_ID, ip: '127.0.0.2', created: '2026-01-02T03:04:05.250000+00:00', status: 200 });
  assert.deepEqual(api.ops.calls.map((c) => [c.operation, c.input]), [['DescribeClusters', { Filters: { states: ['ACTIVE', 'INITIALIZED'] }, MaxResults: 5 }]]);
});

test('a describe_backups paginator follows the NextTokens the API gives', { skip: missing }, async () => {
  api.ops.calls.length = 0;
  const pages: Record<string, { Backups: unknown[]; NextToken?: string }> = {
    first: { Backups: [{ ...BACKUP, BackupId: 'backup-aaaaaaaaaaa' }], NextToken: 'v1.page-two' },
    'v1.page-two': { Backups: [{ ...BACKUP, BackupId: 'backup-bbbbbbbbbbb' }], NextToken: 'v1.page-three' },
    'v1.page-three': { Backups: [{ ...BACKUP, BackupId: 'backup-ccccccccccc' }] },
  };
  api.ops.behaviour.set('DescribeBackups', (input) => Promise.resolve(pages[(input as { NextToken?: string }).NextToken ?? 'first'] ?? { Backups: [] }));
  try {
    const out = await boto3([
      'ids = []',
      'for page in c.get_paginator("describe_backups").paginate(Filters={"clusterIds": ["' + CLUSTER_ID + '"]}, SortAscending=True, PaginationConfig={"PageSize": 1}):',
      '    ids += [b["BackupId"] for b in page["Backups"]]',
      'out["ids"] = ids',
    ].join('\n')) as { ids: string[] };
    assert.deepEqual(out.ids, ['backup-aaaaaaaaaaa', 'backup-bbbbbbbbbbb', 'backup-ccccccccccc']);
    assert.deepEqual(api.ops.calls.map((c) => (c.input as { NextToken?: string }).NextToken ?? null), [null, 'v1.page-two', 'v1.page-three']);
    assert.ok(api.ops.calls.every((c) => JSON.stringify(c.input).includes('"MaxResults":1') && JSON.stringify(c.input).includes('"SortAscending":true')));
  } finally {
    api.ops.behaviour.delete('DescribeBackups');
  }
});

test('tag_resource and list_tags carry their members', { skip: missing }, async () => {
  api.ops.calls.length = 0;
  const out = await boto3([
    `c.tag_resource(ResourceId="${CLUSTER_ID}", TagList=[{"Key": "team", "Value": "hsm"}])`,
    `out["tags"] = c.list_tags(ResourceId="${CLUSTER_ID}")["TagList"]`,
  ].join('\n')) as { tags: unknown };
  assert.deepEqual(out.tags, CANNED.ListTags.TagList);
  assert.deepEqual(api.ops.calls.map((c) => [c.operation, c.input]), [
    ['TagResource', { ResourceId: CLUSTER_ID, TagList: [{ Key: 'team', Value: 'hsm' }] }],
    ['ListTags', { ResourceId: CLUSTER_ID }],
  ]);
});

test('errors reach boto3 as ClientError with the code and message: validation, access denied, not found, a wrong secret', { skip: missing }, async () => {
  api.ops.calls.length = 0;
  const errors = (body: string) => [
    'try:',
    `    ${body}`,
    '    out["result"] = "no error"',
    'except ClientError as e:',
    '    out["code"] = e.response["Error"]["Code"]; out["message"] = e.response["Error"]["Message"]; out["status"] = e.response["ResponseMetadata"]["HTTPStatusCode"]',
  ].join('\n');
  const invalid = await boto3(errors('c.delete_cluster(ClusterId="cluster-0000")')) as Record<string, unknown>;
  assert.equal(invalid.code, 'ValidationException');
  assert.match(String(invalid.message), /Value at 'ClusterId' failed to satisfy constraint/);
  assert.equal(invalid.status, 400);
  const denied = await boto3(errors(`c.delete_cluster(ClusterId="${CLUSTER_ID}")`), READER) as Record<string, unknown>;
  assert.equal(denied.code, 'AccessDeniedException');
  assert.match(String(denied.message), /not authorized to perform: cloudhsm:DeleteCluster/);
  const wrongSecret = await boto3(errors('c.describe_clusters()'), { ...ADMIN, secretAccessKey: 'not/the/secret/of/this/access/key/00000000' }) as Record<string, unknown>;
  assert.equal(wrongSecret.code, 'InvalidSignatureException');
  assert.deepEqual(api.ops.calls, [], 'no refused call reached an operation');
  api.ops.behaviour.set('DeleteBackup', () => Promise.reject(new ApiError('CloudHsmResourceNotFoundException', 'Backup backup-zzzzzzzzzzz was not found.')));
  try {
    const notFound = await boto3(errors('c.delete_backup(BackupId="backup-zzzzzzzzzzz")')) as Record<string, unknown>;
    assert.deepEqual(notFound, { code: 'CloudHsmResourceNotFoundException', message: 'Backup backup-zzzzzzzzzzz was not found.', status: 400 });
  } finally {
    api.ops.behaviour.delete('DeleteBackup');
  }
});
