// SigV4 against the AWS Signature Version 4 Test Suite (test/vectors/aws-sig-v4-test-suite/): every
// case's canonical request, string to sign and signature recomputed, every signed request
// verified, and the requests that must fail (a signed header, the body, the date or the secret
// altered) refused with InvalidSignatureException.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  canonicalRequest, credentialScope, parseAuthorization, sha256Hex, signatureHex, signingKey, stringToSign, verifySigV4,
  type AccessKey, type RawRequest, parseAmzDate, authorize,
} from '../../../src/service/api/sigv4.js';
import { ProtocolError } from '../../../src/service/api/api_errors.js';
import { authorization } from '../../../src/formats/sigv4.js';

const SUITE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../test/vectors/aws-sig-v4-test-suite');
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const KEY: AccessKey = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET, accountId: '111122223333', actions: ['*'] };
const NOW_MS = Date.UTC(2015, 7, 30, 12, 36, 0);

/** Parses a suite .req/.sreq file: request line, `Name:value` lines (a line starting with
 * whitespace continues the header above it as another value, which the suite's multiline case
 * joins with commas), a blank line, the body. */
function parseRequest(text: string): RawRequest {
  const [head = '', ...bodyParts] = text.split('\n\n');
  const lines = head.split('\n');
  const requestLine = lines.shift() ?? '';
  const method = requestLine.slice(0, requestLine.indexOf(' '));
  const target = requestLine.slice(method.length + 1, requestLine.lastIndexOf(' HTTP/'));
  const headers: [string, string][] = [];
  for (const line of lines) {
    if (/^\s/.test(line)) {
      const last = headers[headers.length - 1];
      assert.ok(last !== undefined);
      headers.push([last[0], line.trim()]);
    } else {
      const colon = line.indexOf(':');
      headers.push([line.slice(0, colon), line.slice(colon + 1)]);
    }
  }
  return { method, target, headers, body: Buffer.from(bodyParts.join('\n\n'), 'utf8') };
}

function cases(): { name: string; dir: string }[] {
  const found: { name: string; dir: string }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const sub = join(dir, entry.name);
      if (existsSync(join(sub, `${entry.name}.req`))) found.push({ name: entry.name, dir: sub });
      else walk(sub);
    }
  };
  walk(SUITE);
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

const read = (dir: string, name: string, ext: string): string => readFileSync(join(dir, `${name}.${ext}`), 'utf8');

function verifyOptions(overrides: Partial<{ region: string; service: string; nowMs: number; secret: string }> = {}) {
  const key = overrides.secret === undefined ? KEY : { ...KEY, secretAccessKey: overrides.secret };
  return {
    region: overrides.region ?? 'us-east-1', service: overrides.service ?? 'service', nowMs: overrides.nowMs ?? NOW_MS,
    keys: new Map([[KEY.accessKeyId, key]]), requiredSignedHeaders: ['host', 'x-amz-date'],
  };
}

function refusedWith(fn: () => unknown, type: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ProtocolError && e.type === type, `expected ${type}`);
}

test('the suite has all 31 cases, with the two 2015 form-urlencoded ones', () => {
  const names = cases().map((c) => c.name);
  assert.equal(names.length, 31);
  assert.ok(names.includes('post-x-www-form-urlencoded') && names.includes('post-x-www-form-urlencoded-parameters'));
});

for (const { name, dir } of cases()) {
  test(`suite case ${name}: canonical request, string to sign, signature`, () => {
    const request = parseRequest(read(dir, name, 'req'));
    const authz = read(dir, name, 'authz');
    const auth = parseAuthorization(authz);
    const creq = canonicalRequest(request, auth.signedHeaders, sha256Hex(request.body));
    assert.equal(creq, read(dir, name, 'creq'));
    const sts = stringToSign('20150830T123600Z', credentialScope(auth.date, auth.region, auth.service), creq);
    assert.equal(sts, read(dir, name, 'sts'));
    const signature = signatureHex(signingKey(SECRET, auth.date, auth.region, auth.service), sts);
    assert.equal(`AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${auth.date}/${auth.region}/${auth.service}/aws4_request, SignedHeaders=${auth.signedHeaders.join(';')}, Signature=${signature}`, authz);
    // The signer the SDK's discovery uses (src/formats/sigv4.ts) writes the same header.
    assert.equal(authorization(request, auth.signedHeaders, { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET }, auth.region, auth.service, '20150830T123600Z'), authz);
  });

  test(`suite case ${name}: the signed request verifies, altered ones are refused`, () => {
    const signed = parseRequest(read(dir, name, 'sreq'));
    if (signed.headers.some(([n]) => n.toLowerCase() === 'x-amz-security-token')) {
      // Temporary credentials are not accepted (docs/api.md): refused whether signed or not.
      refusedWith(() => verifySigV4(signed, verifyOptions()), 'UnrecognizedClientException');
      return;
    }
    assert.equal(verifySigV4(signed, verifyOptions()).accountId, KEY.accountId);
    const auth = parseAuthorization(signed.headers.find(([n]) => n === 'Authorization')?.[1].trim() ?? '');
    // Every signed header altered (its value gains a character) breaks the signature.
    for (const header of auth.signedHeaders.filter((h) => h !== 'x-amz-date')) {
      const altered = { ...signed, headers: signed.headers.map(([n, v]): [string, string] => [n, n.toLowerCase() === header ? `${v}x` : v]) };
      refusedWith(() => verifySigV4(altered, verifyOptions()), 'InvalidSignatureException');
    }
    refusedWith(() => verifySigV4({ ...signed, body: Buffer.concat([signed.body, Buffer.from('x')]) }, verifyOptions()), 'InvalidSignatureException');
    const later = signed.headers.map(([n, v]): [string, string] => [n, n.toLowerCase() === 'x-amz-date' ? '20150830T123601Z' : v]);
    refusedWith(() => verifySigV4({ ...signed, headers: later }, verifyOptions()), 'InvalidSignatureException');
    refusedWith(() => verifySigV4(signed, verifyOptions({ secret: `${SECRET}x` })), 'InvalidSignatureException');
    refusedWith(() => verifySigV4({ ...signed, method: signed.method === 'GET' ? 'POST' : 'GET' }, verifyOptions()), 'InvalidSignatureException');
  });
}

test('scope, clock and key: wrong region, service, expired, future, unknown key, missing and incomplete headers', () => {
  const signed = parseRequest(read(join(SUITE, 'post-vanilla'), 'post-vanilla', 'sreq'));
  refusedWith(() => verifySigV4(signed, verifyOptions({ region: 'eu-west-1' })), 'InvalidSignatureException');
  refusedWith(() => verifySigV4(signed, verifyOptions({ service: 'cloudhsm' })), 'InvalidSignatureException');
  // Exactly at the skew limit either way is accepted; one second beyond is refused.
  verifySigV4(signed, verifyOptions({ nowMs: NOW_MS + 5 * 60_000 }));
  verifySigV4(signed, verifyOptions({ nowMs: NOW_MS - 5 * 60_000 }));
  refusedWith(() => verifySigV4(signed, verifyOptions({ nowMs: NOW_MS + 5 * 60_000 + 1000 })), 'InvalidSignatureException');
  refusedWith(() => verifySigV4(signed, verifyOptions({ nowMs: NOW_MS - 5 * 60_000 - 1000 })), 'InvalidSignatureException');
  refusedWith(() => verifySigV4(signed, { ...verifyOptions(), keys: new Map() }), 'UnrecognizedClientException');
  const without = (name: string): RawRequest => ({ ...signed, headers: signed.headers.filter(([n]) => n.toLowerCase() !== name) });
  refusedWith(() => verifySigV4(without('authorization'), verifyOptions()), 'MissingAuthenticationTokenException');
  refusedWith(() => verifySigV4(without('x-amz-date'), verifyOptions()), 'IncompleteSignatureException');
  refusedWith(() => verifySigV4(without('host'), verifyOptions()), 'IncompleteSignatureException');
  // The API also requires x-amz-target to be signed (this suite request has none).
  const { requiredSignedHeaders: _suiteOnly, ...apiOptions } = verifyOptions();
  refusedWith(() => verifySigV4(signed, apiOptions), 'IncompleteSignatureException');
  const withAuth = (value: string): RawRequest => ({ ...without('authorization'), headers: [...without('authorization').headers, ['Authorization', value]] });
  for (const bad of [
    'AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00',
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date',
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, Signature=00',
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=x-amz-date;host, Signature=00',
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=Host;x-amz-date, Signature=00',
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-absent;x-amz-date, Signature=00',
    `AWS4-HMAC-SHA256 ${'x'.repeat(5000)}`,
  ]) refusedWith(() => verifySigV4(withAuth(bad), verifyOptions()), 'IncompleteSignatureException');
  // A scope date other than X-Amz-Date's day, and a wrong terminator.
  refusedWith(() => verifySigV4(withAuth('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00'), verifyOptions()), 'InvalidSignatureException');
  refusedWith(() => verifySigV4(withAuth('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, SignedHeaders=host;x-amz-date, Signature=00'), verifyOptions()), 'InvalidSignatureException');
  // A payload hash header that disagrees with the body.
  refusedWith(() => verifySigV4({ ...signed, headers: [...signed.headers, ['x-amz-content-sha256', sha256Hex('other')]] }, verifyOptions()), 'InvalidSignatureException');
});

test('X-Amz-Date: only real instants of the basic ISO 8601 form', () => {
  assert.equal(parseAmzDate('20150830T123600Z'), NOW_MS);
  for (const bad of ['20150231T000000Z', '20150830T246000Z', '2015-08-30T12:36:00Z', '20150830T123600', ' 20150830T123600Z']) assert.equal(parseAmzDate(bad), undefined, bad);
});

test('authorisation: a key calls only the actions it lists', () => {
  authorize({ ...KEY, actions: ['cloudhsm:DescribeClusters'] }, 'DescribeClusters');
  authorize(KEY, 'DeleteCluster');
  refusedWith(() => authorize({ ...KEY, actions: ['cloudhsm:DescribeClusters'] }, 'DeleteCluster'), 'AccessDeniedException');
  refusedWith(() => authorize({ ...KEY, actions: ['cloudhsm:describeclusters'] }, 'DescribeClusters'), 'AccessDeniedException');
  refusedWith(() => authorize({ ...KEY, actions: [] }, 'DescribeClusters'), 'AccessDeniedException');
});
