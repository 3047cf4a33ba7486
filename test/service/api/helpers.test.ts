// The helpers operations use: NextToken, page sizes, filters, ARNs, ids, and the access-key
// configuration.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../../src/service/api/operations.js';
import {
  CURSOR_CHARS_MAX, FILTER_VALUES_MAX, NEXT_TOKEN_CHARS_MAX, decodeNextToken, encodeNextToken, pageSize, parseBackupFilters, parseClusterFilters,
  type TokenBinding,
} from '../../../src/service/api/pagination.js';
import { buildArn, isId, newId, parseArn, parseBackupReference, ID_CHARS_MAX } from '../../../src/service/api/resources.js';
import { parseAccessKeys, readAccessKeysFile } from '../../../src/service/api/access_keys.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateInput, wholePattern } from '../../../src/service/api/validate.js';
import { CLOUDHSMV2_MODEL } from '../../../src/service/api/model.js';
import { AssertionFailure } from '../../../src/assert.js';
import { throwsCode } from '../../helpers.js';

function invalidRequest(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof ApiError && e.type === 'CloudHsmInvalidRequestException');
}

const BINDING: TokenBinding = { operation: 'DescribeClusters', accountId: '111122223333', query: { states: ['ACTIVE'], vpcIds: [] } };

test('NextToken: round trip, bound to operation, account and query; damaged tokens refused', () => {
  const after = 'cluster-abcdefghijk';
  const token = encodeNextToken(BINDING, after);
  // The model's own NextToken shape accepts it.
  validateInput('DescribeClusters', { NextToken: token });
  assert.equal(decodeNextToken(BINDING, token), after);
  // Key order of the query does not matter.
  assert.equal(decodeNextToken({ ...BINDING, query: { vpcIds: [], states: ['ACTIVE'] } }, token), after);
  invalidRequest(() => decodeNextToken({ ...BINDING, operation: 'DescribeBackups' }, token));
  invalidRequest(() => decodeNextToken({ ...BINDING, accountId: '444455556666' }, token));
  invalidRequest(() => decodeNextToken({ ...BINDING, query: { states: ['DELETED'] } }, token));
  for (let i = 0; i < token.length; i++) {
    const flipped = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
    try {
      // A flip inside the cursor may still decode to another cursor (tokens are not secret); any
      // other flip is refused.
      const other = decodeNextToken(BINDING, flipped);
      assert.notEqual(other, after);
    } catch (e) {
      assert.ok(e instanceof ApiError && e.type === 'CloudHsmInvalidRequestException');
    }
  }
  for (const bad of ['', 'v1.', 'v2.' + token.slice(3), token + '!', token.slice(0, -2), 'v1.' + 'A'.repeat(300), 'v1.' + Buffer.from('[1,2,3]').toString('base64url')]) {
    invalidRequest(() => decodeNextToken(BINDING, bad));
  }
  // The longest cursor still fits the model's 256 characters; a longer one is a bug of the caller.
  assert.ok(encodeNextToken(BINDING, 'x'.repeat(CURSOR_CHARS_MAX)).length <= NEXT_TOKEN_CHARS_MAX);
  assert.throws(() => encodeNextToken(BINDING, 'x'.repeat(CURSOR_CHARS_MAX + 1)), AssertionFailure);
});

test('MaxResults: the request value, else the model maximum', () => {
  assert.equal(pageSize('DescribeClusters', {}), 25);
  assert.equal(pageSize('DescribeBackups', {}), 50);
  assert.equal(pageSize('ListTags', {}), 100);
  assert.equal(pageSize('DescribeBackups', { MaxResults: 3 }), 3);
  for (const [shape, max] of [['ClustersMaxSize', 25], ['BackupsMaxSize', 50], ['MaxSize', 100]] as const) {
    const s = CLOUDHSMV2_MODEL.shapes[shape];
    assert.ok(s?.type === 'integer' && s.max === max, shape);
  }
});

test('filters: the documented keys, values checked', () => {
  assert.deepEqual(parseClusterFilters({}), {});
  assert.deepEqual(parseClusterFilters({ Filters: { clusterIds: ['cluster-abcdefghijk', 'cluster-abcdefghijk'], states: ['ACTIVE', 'DEGRADED'], vpcIds: ['vpc-0123abcd'] } }),
    { clusterIds: ['cluster-abcdefghijk'], states: ['ACTIVE', 'DEGRADED'], vpcIds: ['vpc-0123abcd'] });
  assert.deepEqual(parseBackupFilters({ Filters: { backupIds: ['backup-abcdefghijk'], sourceBackupIds: [], clusterIds: ['cluster-abcdefghijk'], states: ['PENDING_DELETION'], neverExpires: ['true'] } }),
    { backupIds: ['backup-abcdefghijk'], sourceBackupIds: [], clusterIds: ['cluster-abcdefghijk'], states: ['PENDING_DELETION'], neverExpires: true });
  assert.deepEqual(parseBackupFilters({ Filters: { neverExpires: ['false'] } }), { neverExpires: false });
  for (const filters of [
    { clusterId: ['cluster-abcdefghijk'] }, { backupIds: ['backup-abcdefghijk'] }, { states: ['READY'] }, { vpcIds: ['vpc-0'] }, { clusterIds: ['hsm-abcdefghijk'] },
    { states: Array.from({ length: FILTER_VALUES_MAX + 1 }, () => 'ACTIVE') }, JSON.parse('{"__proto__":["x"]}') as Record<string, string[]>,
  ]) invalidRequest(() => parseClusterFilters({ Filters: filters }));
  for (const filters of [{ neverExpires: ['yes'] }, { neverExpires: ['true', 'false'] }, { states: ['ACTIVE'] }, { vpcIds: ['vpc-0123abcd'] }]) {
    invalidRequest(() => parseBackupFilters({ Filters: filters }));
  }
});

test('ids: prefix and 11 characters of [a-z2-7] from the random source, in the model shape', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    for (const kind of ['cluster', 'hsm', 'backup'] as const) {
      const id = newId(kind);
      assert.match(id, new RegExp(`^${kind}-[a-z2-7]{11}$`));
      assert.ok(isId(kind, id));
      seen.add(id);
    }
  }
  assert.equal(seen.size, 600);
  // Every byte value maps into the alphabet: 0..255 through a fixed source.
  const all = newId('backup', ID_CHARS_MAX, (n) => Uint8Array.from({ length: n }, (_, i) => 255 - i));
  assert.equal(all, 'backup-765432zyxwvutsrq');
  assert.throws(() => newId('hsm', 10), AssertionFailure);
  assert.throws(() => newId('hsm', 17), AssertionFailure);
  assert.ok(!isId('cluster', 'hsm-abcdefghijk'));
});

test('ARNs: built in the model shape, parsed back, anything else refused', () => {
  const arn = buildArn({ region: 'eu-central-1', accountId: '111122223333', kind: 'backup', id: 'backup-abcdefghijk' });
  assert.equal(arn, 'arn:aws:cloudhsm:eu-central-1:111122223333:backup/backup-abcdefghijk');
  const pattern = CLOUDHSMV2_MODEL.shapes.CloudHsmArn;
  assert.ok(pattern?.type === 'string' && wholePattern(pattern.pattern ?? '').test(arn));
  assert.deepEqual(parseArn(arn), { partition: 'aws', region: 'eu-central-1', accountId: '111122223333', kind: 'backup', id: 'backup-abcdefghijk' });
  assert.equal(parseArn('arn:aws-us-gov:cloudhsm:us-gov-west-1:111122223333:cluster/cluster-abcdefghijk').kind, 'cluster');
  for (const bad of [
    'arn:aws:cloudhsm:eu-central-1:111122223333:backup/cluster-abcdefghijk', 'arn:aws:kms:eu-central-1:111122223333:backup/backup-abcdefghijk',
    'arn:aws:cloudhsm:eu-central-1:11112222333:backup/backup-abcdefghijk', 'arn:aws:cloudhsm:moon-1:111122223333:backup/backup-abcdefghijk',
    'arn:aws:cloudhsm:eu-central-1:111122223333:backup/backup-abcdefghijk/x', 'backup-abcdefghijk',
  ]) invalidRequest(() => parseArn(bad));
  assert.deepEqual(parseBackupReference('backup-abcdefghijk'), { backupId: 'backup-abcdefghijk' });
  assert.equal(parseBackupReference(arn).arn?.accountId, '111122223333');
  invalidRequest(() => parseBackupReference('arn:aws:cloudhsm:eu-central-1:111122223333:cluster/cluster-abcdefghijk'));
  assert.throws(() => buildArn({ region: 'eu-central-1', accountId: '1', kind: 'hsm', id: 'hsm-abcdefghijk' }), AssertionFailure);
});

test('access keys: a valid configuration, and each malformed field refused without its secret', () => {
  const good = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', accountId: '111122223333', actions: ['cloudhsm:DescribeClusters'] };
  const [key] = parseAccessKeys({ accessKeys: [good, { ...good, accessKeyId: 'AKIAIOSFODNN7EXAMPL2', actions: ['*'] }] });
  assert.equal(key?.accountId, '111122223333');
  // A peer region's service is granted Coffer's own action for sending backup copies.
  assert.deepEqual(parseAccessKeys({ accessKeys: [{ ...good, actions: ['coffer:ReceiveBackupCopy'] }] })[0]?.actions, ['coffer:ReceiveBackupCopy']);
  const bad: unknown[] = [
    {}, { accessKeys: {} }, { accessKeys: [good, good] }, { accessKeys: [{ ...good, accessKeyId: 'akia' }] },
    { accessKeys: [{ ...good, secretAccessKey: 'short' }] }, { accessKeys: [{ ...good, accountId: '1234' }] },
    { accessKeys: [{ ...good, actions: [] }] }, { accessKeys: [{ ...good, actions: ['cloudhsm:Nope'] }] }, { accessKeys: [{ ...good, actions: ['kms:*'] }] },
    { accessKeys: [{ ...good, actions: ['coffer:*'] }] }, { accessKeys: [{ ...good, actions: ['cloudhsm:ReceiveBackupCopy'] }] },
    { accessKeys: [{ ...good, extra: 1 }] }, { accessKeys: [{ accessKeyId: good.accessKeyId }] }, { accessKeys: [null] },
  ];
  for (const config of bad) {
    throwsCode(() => parseAccessKeys(config), 'COFFER_API_CONFIG_INVALID');
    try {
      parseAccessKeys(config);
    } catch (e) {
      assert.ok(!JSON.stringify(e).includes(good.secretAccessKey) && !String(e).includes(good.secretAccessKey));
    }
  }
});

test('access keys from a file: read and checked; unreadable, non-JSON and oversize files refused without their content', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-api-keys-'));
  try {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const good = join(dir, 'keys.json');
    writeFileSync(good, JSON.stringify({ accessKeys: [{ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: secret, accountId: '111122223333', actions: ['*'] }] }));
    assert.equal(readAccessKeysFile(good)[0]?.secretAccessKey, secret);
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, `{"secretAccessKey": "${secret}"`);
    const big = join(dir, 'big.json');
    writeFileSync(big, ' '.repeat(1024 * 1024 + 1));
    for (const path of [notJson, big, join(dir, 'absent.json')]) {
      throwsCode(() => readAccessKeysFile(path), 'COFFER_API_CONFIG_INVALID');
      try {
        readAccessKeysFile(path);
      } catch (e) {
        assert.ok(!JSON.stringify(e).includes(secret) && !String(e).includes(secret));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
