// The user CLI's pure parts: filters, key references, templates, data inputs, the word splitter of
// the interactive prompt, cluster configs, and the output envelopes and tables.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CofferError } from '../../src/errors.js';
import { formatKeyReference, matchesFilter, parseFilter, parseKeyReference, parseSetAttribute, parseTemplate, readData, type FilterableKey } from '../../src/cli/user_cli/args.js';
import { loadClusterConfig } from '../../src/client/discovery.js';
import { parseEndpoint, parsePin, parseRole, resolveTarget } from '../../src/cli/user_cli/config.js';
import { splitWords } from '../../src/cli/user_cli/line_source.js';
import { commanderUsageError, errorLine, failureJson, keyListResult, render, table, type KeyDescription } from '../../src/cli/user_cli/output.js';
import { rejectsCode, throwsCode } from '../helpers.js';

const ATTRS = {
  token: true, sensitive: true, extractable: false, encrypt: false, decrypt: false, sign: true, verify: false, wrap: false, unwrap: false,
  derive: false, trusted: false, wrapWithTrusted: false, local: true, neverExtractable: true, alwaysSensitive: true, modifiable: true, destroyable: true,
};
const KEY: KeyDescription = {
  handle: 0x2a, class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-256', label: 'signer', id: new Uint8Array([1, 2]), owner: 'alice',
  attributes: ATTRS, bits: 256, kcv: new Uint8Array([0xab, 0xcd, 0xef]), sharees: ['bob'], manageKeyQuorum: 0, useKeyQuorum: 0,
};

test('filters parse CloudHSM terms and match on every term', () => {
  const f = parseFilter(['attr.label=signer', 'attr.class=private-key', 'key-reference=0x2a', 'attr.sign=true', 'attr.ec-curve=secp256r1', 'attr.id=0x0102']);
  assert.equal(f.handle, 0x2a);
  assert.equal(f.class, 'PRIVATE_KEY');
  assert.deepEqual(f.booleans, { sign: true });
  assert.equal(matchesFilter(KEY, f), true);
  const mismatches: Record<string, FilterableKey> = {
    label: { ...KEY, label: 'other' }, class: { ...KEY, class: 'PUBLIC_KEY' }, handle: { ...KEY, handle: 1 }, sign: { ...KEY, attributes: { ...ATTRS, sign: false } },
    curve: { ...KEY, curve: 'P-384' }, id: { ...KEY, id: new Uint8Array([1, 3]) },
  };
  for (const [what, k] of Object.entries(mismatches)) assert.equal(matchesFilter(k, f), false, what);
  assert.equal(matchesFilter(KEY, parseFilter(['attr.wrap-with-trusted=false', 'attr.owner=ALICE'])), true);
});

test('bad filters, references and attribute values are usage errors', () => {
  for (const terms of [['label=x'], ['attr.nope=1'], ['attr.sign=maybe'], ['attr.class=cert'], ['key-reference=0xZZ'], ['key-reference=0'], ['noequals'], ['attr.label=a', 'attr.label=b']]) {
    throwsCode(() => parseFilter(terms), 'COFFER_CLI_USAGE', terms.join(' '));
  }
  throwsCode(() => parseKeyReference('0x20000000000000'), 'COFFER_CLI_USAGE');
  assert.equal(parseKeyReference('0x10000000000'), 2 ** 40);
  throwsCode(() => parseSetAttribute('local', 'true'), 'COFFER_CLI_USAGE'); // not settable
  throwsCode(() => parseFilter([`attr.label=${'x'.repeat(257)}`]), 'COFFER_CLI_USAGE');
});

test('key references print as CloudHSM does and parse back', () => {
  assert.equal(formatKeyReference(0x1c0686), '0x00000000001c0686');
  assert.equal(parseKeyReference('0x00000000001c0686'), 0x1c0686);
  assert.equal(parseKeyReference('42'), 42);
});

test('templates and set-attribute take kebab-case names', () => {
  assert.deepEqual(parseTemplate(['sign=true', 'wrap-with-trusted=false', 'token=false', 'id=0x01ff'], 'lbl'), {
    label: 'lbl', sign: true, wrapWithTrusted: false, token: false, id: new Uint8Array([1, 0xff]),
  });
  assert.deepEqual(parseSetAttribute('label', 'new'), { name: 'label', value: 'new' });
  assert.deepEqual(parseSetAttribute('decrypt', 'false'), { name: 'decrypt', value: false });
});

test('data comes from exactly one of --data, --data-hex, --data-base64, --data-path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-cli-'));
  try {
    writeFileSync(join(dir, 'in.bin'), Buffer.from([0, 1, 255]));
    assert.deepEqual(readData({ data: 'hé' }), new Uint8Array(Buffer.from('hé', 'utf8')));
    assert.deepEqual(readData({ dataHex: '00ff' }), new Uint8Array([0, 255]));
    assert.deepEqual(readData({ dataBase64: 'AAH/' }), new Uint8Array([0, 1, 255]));
    assert.deepEqual(readData({ dataPath: join(dir, 'in.bin') }), new Uint8Array([0, 1, 255]));
    throwsCode(() => readData({}), 'COFFER_CLI_USAGE');
    throwsCode(() => readData({ data: 'a', dataHex: '00' }), 'COFFER_CLI_USAGE');
    throwsCode(() => readData({ dataHex: 'abc' }), 'COFFER_CLI_USAGE');
    throwsCode(() => readData({ dataBase64: 'a*b=' }), 'COFFER_CLI_USAGE');
    throwsCode(() => readData({ dataPath: join(dir, 'missing') }), 'COFFER_CLI_INPUT');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the interactive prompt splits words like a shell', () => {
  assert.deepEqual(splitWords(`key list --filter attr.label="my key" 'a b'  c\\ d`), ['key', 'list', '--filter', 'attr.label=my key', 'a b', 'c d']);
  assert.deepEqual(splitWords(`x "" '' "a\\"b"`), ['x', '', '', 'a"b']);
  assert.deepEqual(splitWords('   '), []);
  throwsCode(() => splitWords('crypto sign --data "open'), 'COFFER_CLI_USAGE');
});

test('cluster configs: endpoints + ca, the development cluster.json shape, and the options', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-cli-'));
  const CA = '-----BEGIN CERTIFICATE-----\nCA PEM\n-----END CERTIFICATE-----\n';
  try {
    writeFileSync(join(dir, 'ca.pem'), CA);
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ endpoints: [{ host: 'h', port: 1 }], ca: 'ca.pem' }));
    writeFileSync(join(dir, 'dev.json'), JSON.stringify({ nodes: [{ host: 'h', port: 2, running: true }], customerCa: join(dir, 'ca.pem') }));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ endpoints: [{ host: 'h', port: 70000 }], ca: 'ca.pem' }));
    // One loader (the SDK's) for the CLI and the SDK: its errors are the SDK's config codes.
    assert.deepEqual(loadClusterConfig(join(dir, 'a.json')), { endpoints: [{ host: 'h', port: 1 }], ca: CA });
    assert.deepEqual(loadClusterConfig(join(dir, 'dev.json')).endpoints, [{ host: 'h', port: 2 }]);
    throwsCode(() => loadClusterConfig(join(dir, 'bad.json')), 'COFFER_CLIENT_CONFIG_INVALID');
    throwsCode(() => loadClusterConfig(join(dir, 'absent.json')), 'COFFER_CLIENT_CONFIG_UNREADABLE');
    await rejectsCode(() => resolveTarget({ endpoint: ['h:1'], ca: join(dir, 'absent.pem') }, {}), 'COFFER_CLIENT_CONFIG_UNREADABLE');
    assert.deepEqual((await resolveTarget({}, { COFFER_CLUSTER_CONFIG: join(dir, 'a.json') })).endpoints, [{ host: 'h', port: 1 }]);
    assert.deepEqual((await resolveTarget({ endpoint: ['[::1]:5', 'n1:6'], ca: join(dir, 'ca.pem') }, {})).endpoints, [{ host: '::1', port: 5 }, { host: 'n1', port: 6 }]);
    await rejectsCode(() => resolveTarget({ endpoint: ['h:1'] }, {}), 'COFFER_CLI_USAGE');
    await rejectsCode(() => resolveTarget({}, {}), 'COFFER_CLI_USAGE');
    // --cluster-id asks the control plane: it needs --ca, the endpoint and the region.
    await rejectsCode(() => resolveTarget({ clusterId: 'cluster-abcdefghijk' }, {}), 'COFFER_CLI_USAGE');
    await rejectsCode(() => resolveTarget({ clusterId: 'cluster-abcdefghijk', ca: join(dir, 'ca.pem') }, { AWS_REGION: 'us-east-1' }), 'COFFER_CLI_USAGE');
    await rejectsCode(() => resolveTarget({ clusterId: 'cluster-abcdefghijk', ca: join(dir, 'ca.pem') }, { AWS_ENDPOINT_URL: 'http://127.0.0.1:1' }), 'COFFER_CLI_USAGE');
    await rejectsCode(() => resolveTarget({ clusterId: 'cluster-abcdefghijk', ca: join(dir, 'ca.pem') }, { AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIDX', AWS_SECRET_ACCESS_KEY: 'x' }), 'COFFER_CLUSTER_UNAVAILABLE');
    throwsCode(() => parseEndpoint('h'), 'COFFER_CLI_USAGE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('COFFER_PIN splits at the first colon; roles accept CloudHSM abbreviations', () => {
  assert.deepEqual(parsePin('alice:pa:ss'), { username: 'alice', password: 'pa:ss' });
  throwsCode(() => parsePin('alice'), 'COFFER_CLI_USAGE');
  throwsCode(() => parsePin(':pw'), 'COFFER_CLI_USAGE');
  assert.equal(parseRole('CU'), 'crypto-user');
  assert.equal(parseRole('admin'), 'admin');
  throwsCode(() => parseRole('appliance'), 'COFFER_CLI_USAGE');
});

test('output: the JSON envelopes and the text table', () => {
  const list = keyListResult([KEY], false);
  assert.deepEqual(JSON.parse(render('json', list)), { error_code: 0, data: { matched_keys: [{ 'key-reference': '0x000000000000002a', attributes: { label: 'signer' } }], total_key_count: 1 } });
  const verbose = JSON.parse(render('json', keyListResult([KEY], true))) as { data: { matched_keys: [{ attributes: Record<string, unknown>; 'key-info': { 'shared-users': unknown } }] } };
  const k = verbose.data.matched_keys[0];
  assert.equal(k.attributes['class'], 'private-key');
  assert.equal(k.attributes['wrap-with-trusted'], false);
  assert.equal(k.attributes['check-value'], '0xabcdef');
  assert.deepEqual(k['key-info']['shared-users'], [{ username: 'bob' }]);
  const text = render('text', list).split('\n');
  assert.match(text[0] ?? '', /^key-reference\s+class\s+type\s+size\s+label\s+owner\s+shared-with$/);
  assert.match(text[2] ?? '', /^0x000000000000002a\s+private-key\s+ec\s+P-256\s+signer\s+alice\s+bob$/);
  assert.deepEqual(JSON.parse(failureJson(new CofferError('COFFER_OBJECT_NOT_FOUND', { reason: 'r' }))), {
    error_code: 1, error: { code: 'COFFER_OBJECT_NOT_FOUND', message: 'Object handle is not valid for this user', detail: { reason: 'r' } },
  });
  assert.deepEqual(JSON.parse(failureJson(new Error('secret stuff'))), { error_code: 1, error: { code: 'INTERNAL', message: 'internal error' } });
  assert.equal(table(['a', 'bb'], [['xyz', '1']]), 'a    bb\n---  --\nxyz  1\n');
});

test('one stderr line for every failure; commander messages become COFFER_CLI_USAGE; --verbose text lists every attribute', () => {
  assert.equal(errorLine(new CofferError('COFFER_OBJECT_NOT_FOUND', { reason: 'r' })), 'coffer: COFFER_OBJECT_NOT_FOUND: Object handle is not valid for this user {"reason":"r"}\n');
  assert.equal(errorLine(new Error('secret stuff')), 'coffer: internal error\n');
  const u = commanderUsageError("error: unknown command 'lst'\n(Did you mean list?)");
  assert.equal(u.code, 'COFFER_CLI_USAGE');
  assert.deepEqual(u.detail, { reason: "unknown command 'lst' (Did you mean list?)" });
  assert.deepEqual(commanderUsageError('(outputHelp)').detail, { reason: 'a subcommand is required' });
  const verbose = render('text', keyListResult([KEY], true));
  assert.notEqual(verbose, render('text', keyListResult([KEY], false)));
  assert.equal(verbose.split('\n')[0], '0x000000000000002a');
  for (const line of ['class: private-key', 'ec-curve: P-256', 'check-value: 0xabcdef', 'sign: true', 'owner: alice', 'shared-with: bob']) assert.ok(verbose.includes(`\n  ${line}\n`), line);
});
