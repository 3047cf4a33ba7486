// Validation against the service model: each kind of constraint accepted at its limit and refused
// one past it, with the exact error type and message; responses serialised by the model only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serializeOutput, validateInput, validationMessage, VALIDATION_ERRORS_LISTED_MAX } from '../../../src/service/api/validate.js';
import { ProtocolError } from '../../../src/service/api/api_errors.js';
import { AssertionFailure } from '../../../src/assert.js';
import type { OperationName } from '../../../src/service/api/operations.js';

const CLUSTER = 'cluster-abcdefghijk';

function refused(operation: OperationName, body: unknown, type: string, message?: string | RegExp): void {
  assert.throws(() => validateInput(operation, body), (e: unknown) => {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.equal(e.type, type);
    if (typeof message === 'string') assert.equal(e.message, message);
    else if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

test('a valid request comes back as the operation input, nulls dropped', () => {
  assert.deepEqual(validateInput('DescribeClusters', {}), {});
  assert.deepEqual(validateInput('DeleteCluster', { ClusterId: CLUSTER }), { ClusterId: CLUSTER });
  assert.deepEqual(validateInput('DescribeBackups', { MaxResults: 50, Filters: { states: ['READY'] }, Shared: null, SortAscending: true }),
    { MaxResults: 50, Filters: { states: ['READY'] }, SortAscending: true });
  assert.deepEqual(validateInput('TagResource', { ResourceId: CLUSTER, TagList: [{ Key: 'é名 a', Value: '' }] }), { ResourceId: CLUSTER, TagList: [{ Key: 'é名 a', Value: '' }] });
});

test('required members, unknown members', () => {
  refused('DeleteCluster', {}, 'ValidationException', "1 validation error detected: Value at 'ClusterId' failed to satisfy constraint: Member must not be null");
  refused('DeleteCluster', { ClusterId: null }, 'ValidationException', /ClusterId.*must not be null/);
  refused('DeleteCluster', { ClusterId: CLUSTER, Force: true }, 'ValidationException', "1 validation error detected: Member 'Force' is not a member of DeleteClusterRequest");
  refused('TagResource', { ResourceId: CLUSTER, TagList: [{ Key: 'k' }] }, 'ValidationException', /'TagList\.1\.Value'.*must not be null/);
  refused('InitializeCluster', {}, 'ValidationException', /^3 validation errors detected: /);
  // An unknown member whose name is not of model form is not repeated.
  refused('DescribeClusters', { 'bad name\n': 1 }, 'ValidationException', "1 validation error detected: Member '(unprintable name)' is not a member of DescribeClustersRequest");
});

test('patterns are matched against the whole value', () => {
  for (const id of ['cluster-abcdefghijk', 'cluster-ABCDEFGH234567zz']) validateInput('DeleteCluster', { ClusterId: id });
  for (const id of ['cluster-abcdefghij', 'cluster-abcdefghijklmnopq', 'xcluster-abcdefghijk', 'cluster-abcdefghijk ', 'cluster-abcdefghij1', 'cluster-abcdefghij\u0431']) {
    refused('DeleteCluster', { ClusterId: id }, 'ValidationException', "1 validation error detected: Value at 'ClusterId' failed to satisfy constraint: Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}");
  }
  validateInput('CreateCluster', { HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0123abcd'], SourceBackupId: 'arn:aws:cloudhsm:us-east-1:111122223333:backup/backup-abcdefghijk' });
  refused('CreateCluster', { HsmType: 'hsm1.medium', SubnetIds: ['subnet-0123abcd'], SourceBackupId: 'arn:aws:cloudhsm:us-east-1:111122223333:backup/backup-abcdefghijk/x' }, 'ValidationException', /SourceBackupId/);
  refused('CreateHsm', { ClusterId: CLUSTER, AvailabilityZone: 'us-east-1a', IpAddress: '10.0.0.1.5' }, 'ValidationException', /IpAddress/);
  refused('TagResource', { ResourceId: CLUSTER, TagList: [{ Key: 'a*b', Value: 'v' }] }, 'ValidationException', /TagList\.1\.Key/);
  refused('ListTags', { ResourceId: 'hsm-abcdefghijk' }, 'ValidationException', /ResourceId/);
});

test('enums, lengths, list and map sizes, integer ranges', () => {
  refused('CreateCluster', { HsmType: 'hsm1.medium', SubnetIds: ['subnet-0123abcd'], Mode: 'fips' }, 'ValidationException', /Member must satisfy enum value set: \[FIPS, NON_FIPS\]/);
  refused('CreateCluster', { HsmType: 'hsm1.medium', SubnetIds: [] }, 'ValidationException', /'SubnetIds' failed to satisfy constraint: Member must have length greater than or equal to 1/);
  const eleven = Array.from({ length: 11 }, (_, i) => `subnet-0123abc${i.toString(16)}`);
  validateInput('CreateCluster', { HsmType: 'hsm1.medium', SubnetIds: eleven.slice(0, 10) });
  refused('CreateCluster', { HsmType: 'hsm1.medium', SubnetIds: eleven }, 'ValidationException', /Member must have length less than or equal to 10/);
  refused('CreateCluster', { HsmType: `hsm1.${'a'.repeat(28)}`, SubnetIds: ['subnet-0123abcd'] }, 'ValidationException', /HsmType.*length less than or equal to 32/);
  validateInput('CreateCluster', { HsmType: `hsm1.${'a'.repeat(27)}`, SubnetIds: ['subnet-0123abcd'] });
  // Lengths count code points: 128 astral letters are 256 UTF-16 units but a valid TagKey.
  validateInput('TagResource', { ResourceId: CLUSTER, TagList: [{ Key: '\u{1D400}'.repeat(128), Value: 'v' }] });
  refused('TagResource', { ResourceId: CLUSTER, TagList: [{ Key: '\u{1D400}'.repeat(129), Value: 'v' }] }, 'ValidationException', /length less than or equal to 128/);
  refused('TagResource', { ResourceId: CLUSTER, TagList: [{ Key: '', Value: 'v' }] }, 'ValidationException', /length greater than or equal to 1/);
  const filters = Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`k${i}`, []]));
  refused('DescribeClusters', { Filters: filters }, 'ValidationException', /'Filters' failed to satisfy constraint: Member must have length less than or equal to 30/);
  refused('DescribeClusters', { Filters: { 'a.b': [] } }, 'ValidationException', /Filters\.key/);
  validateInput('DescribeClusters', { MaxResults: 1 });
  validateInput('DescribeClusters', { MaxResults: 25 });
  refused('DescribeClusters', { MaxResults: 0 }, 'ValidationException', /Member must have value greater than or equal to 1/);
  refused('DescribeClusters', { MaxResults: 26 }, 'ValidationException', /Member must have value less than or equal to 25/);
  refused('ListTags', { ResourceId: CLUSTER, MaxResults: 101 }, 'ValidationException', /less than or equal to 100/);
  refused('ModifyCluster', { ClusterId: CLUSTER, BackupRetentionPolicy: { Type: 'DAYS', Value: '1000' } }, 'ValidationException', /BackupRetentionPolicy\.Value/);
  refused('PutResourcePolicy', { Policy: '' }, 'ValidationException', /Policy/);
  refused('InitializeCluster', { ClusterId: CLUSTER, SignedCert: 'A'.repeat(20001), TrustAnchor: 'A' }, 'ValidationException', /SignedCert.*20000/);
});

test('JSON types: each wrong type is a SerializationException', () => {
  const cases: [OperationName, unknown, RegExp][] = [
    ['DescribeClusters', [], /structure/],
    ['DescribeClusters', 'x', /structure/],
    ['DescribeClusters', null, /structure/],
    ['DeleteCluster', { ClusterId: 5 }, /'ClusterId' must be a string, not number/],
    ['DescribeClusters', { MaxResults: '5' }, /'MaxResults' must be an integer/],
    ['DescribeClusters', { MaxResults: 1.5 }, /'MaxResults' must be an integer/],
    ['DescribeClusters', { MaxResults: 2 ** 31 }, /'MaxResults' must be an integer/],
    ['DescribeClusters', { Filters: [] }, /'Filters' must be a map, not array/],
    ['DescribeClusters', { Filters: { states: 'ACTIVE' } }, /'Filters\.states' must be a list, not string/],
    ['DescribeClusters', { Filters: { states: [1] } }, /'Filters\.states\.1' must be a string/],
    ['DescribeBackups', { SortAscending: 'true' }, /must be a boolean/],
    ['ModifyCluster', { ClusterId: CLUSTER, BackupRetentionPolicy: [] }, /structure/],
    ['TagResource', { ResourceId: CLUSTER, TagList: [null] }, /structure, not null/],
  ];
  for (const [op, body, message] of cases) refused(op, body, 'SerializationException', message);
});

test('a ValidationException lists at most the named number of violations', () => {
  const many = Array.from({ length: 25 }, (_, i) => `v${i}`);
  const message = validationMessage(many);
  assert.match(message, /^25 validation errors detected: v0; v1;/);
  assert.ok(message.includes(`v${VALIDATION_ERRORS_LISTED_MAX - 1}`) && !message.includes(`v${VALIDATION_ERRORS_LISTED_MAX};`));
});

test('responses: model members only, timestamps as epoch seconds', () => {
  const created = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
  assert.deepEqual(serializeOutput('DescribeClusters', { Clusters: [{ ClusterId: CLUSTER, CreateTimestamp: created, Hsms: [{ HsmId: 'hsm-abcdefghijk' }], SubnetMapping: { 'us-east-1a': 'subnet-0123abcd' } }], NextToken: undefined }),
    { Clusters: [{ ClusterId: CLUSTER, CreateTimestamp: created.getTime() / 1000, Hsms: [{ HsmId: 'hsm-abcdefghijk' }], SubnetMapping: { 'us-east-1a': 'subnet-0123abcd' } }] });
  assert.deepEqual(serializeOutput('TagResource', {}), {});
  // An internal field, a wrong type, a non-Date timestamp: bugs of the operation, never sent.
  assert.throws(() => serializeOutput('DescribeClusters', { Clusters: [{ ClusterId: CLUSTER, sealedKey: 'x' }] }), AssertionFailure);
  assert.throws(() => serializeOutput('DeleteHsm', { HsmId: 5 }), AssertionFailure);
  assert.throws(() => serializeOutput('DescribeClusters', { Clusters: [{ CreateTimestamp: 5 }] }), AssertionFailure);
  assert.throws(() => serializeOutput('DescribeClusters', { Secret: 'x' }), AssertionFailure);
});
