// The user CLI driven as a user drives it: `node main.js key …` child processes against a development
// cluster of real node processes (one cluster for the file), credentials from COFFER_PIN or stdin,
// JSON and text output checked, signatures checked again with node:crypto.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, constants, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { Cluster } from '../../src/client/cluster.js';
import { loadClusterConfig } from '../../src/client/discovery.js';
import { CRYPTO_CIPHERTEXT_BYTES_MAX, CRYPTO_INPUT_BYTES_MAX } from '../../src/formats/limits.js';
import { throwsCode } from '../helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const T = { timeout: 60_000 };

let cluster: DevelopmentCluster;
let dir: string;
let clusterFile: string;
let adminPin: string;
let cuPin: string;
const ALICE = { name: 'alice', password: 'alice-Passw0rd' };
const CAROL = { name: 'carol', password: 'carol-Passw0rd' };

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  /** stdout as bytes (a decrypted plaintext is printed as it is). */
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** Runs `coffer …` with the cluster config in the environment; `input` is piped to stdin. */
function cli(args: readonly string[], opts: { pin?: string; role?: string; input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], COFFER_CLUSTER_CONFIG: clusterFile, ...opts.env };
  if (opts.pin !== undefined) env['COFFER_PIN'] = opts.pin;
  if (opts.role !== undefined) env['COFFER_ROLE'] = opts.role;
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(opts.input ?? '');
  return new Promise((ok) => child.once('close', (code) => {
    const stdoutBytes = Buffer.concat(out);
    ok({ code, stdout: stdoutBytes.toString(), stdoutBytes, stderr });
  }));
}

/** The `data` of a successful JSON run (fails the test with the run's output otherwise). */
function data<T = Record<string, unknown>>(r: Run): T {
  assert.equal(r.code, 0, `exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const env = JSON.parse(r.stdout) as { error_code: number; data: T };
  assert.equal(env.error_code, 0);
  return env.data;
}

function failure(r: Run, code: string, exit = 1): void {
  assert.equal(r.code, exit, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const env = JSON.parse(r.stdout) as { error_code: number; error: { code: string } };
  assert.equal(env.error_code, 1);
  assert.equal(env.error.code, code);
}

type KeyOut = { 'key-reference': string; attributes: Record<string, unknown>; 'key-info'?: { 'shared-users': { username: string }[] } };
const asCu = (args: readonly string[], input?: string): Promise<Run> => cli(args, { pin: cuPin, ...(input === undefined ? {} : { input }) });
const asAlice = (args: readonly string[]): Promise<Run> => cli(args, { pin: `${ALICE.name}:${ALICE.password}` });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-user-cli-'));
  cluster = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1, mainJs: MAIN });
  clusterFile = join(cluster.dir, 'cluster.json');
  adminPin = `${cluster.admin.name}:${cluster.admin.password}`;
  cuPin = `${cluster.cryptoUser.name}:${cluster.cryptoUser.password}`;
  // alice and carol: created through the CLI by the admin, their passwords answering the prompt.
  const created = await session({ ...cluster.admin, role: 'admin' }, [ALICE, CAROL].map((u) => [`user create --username ${u.name} --role crypto-user`, u.password] as const));
  created.forEach((e) => ok(e));
});

after(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Envelope = { error_code: number; data?: unknown; error?: { code: string } };
type Line = string | readonly [command: string, secret: string];

/**
 * Runs one `coffer interactive` session: logs in as `user` (password on the next line, as a user
 * types it at the prompt), runs `lines` (a [command, secret] pair answers that command's password
 * prompt), quits, and returns one envelope per line. One process and one login for many commands.
 */
async function session(user: { name: string; password: string; role?: string } | undefined, lines: readonly Line[]): Promise<Envelope[]> {
  const script: string[] = user === undefined ? [] : [`login --username ${user.name} --role ${user.role ?? 'crypto-user'}`, user.password];
  for (const l of lines) script.push(...(typeof l === 'string' ? [l] : l));
  const r = await cli(['interactive'], { input: script.join('\n') + '\nquit\n' });
  assert.equal(r.code, 0, r.stderr);
  const out = splitEnvelopes(r.stdout);
  if (user !== undefined) assert.equal(out.shift()?.error_code, 0, `login failed: ${r.stdout}`);
  assert.equal(out.length, lines.length, `one envelope per command\n${r.stdout}\n${r.stderr}`);
  return out;
}
const ok = <T = Record<string, unknown>>(e: Envelope | undefined): T => {
  assert.equal(e?.error_code, 0, JSON.stringify(e));
  return e?.data as T;
};
const err = (e: Envelope | undefined, code: string): void => {
  assert.equal(e?.error_code, 1, JSON.stringify(e));
  assert.equal(e?.error?.code, code);
};
const admin = (): { name: string; password: string; role: string } => ({ ...cluster.admin, role: 'admin' });
const cu = (): { name: string; password: string } => cluster.cryptoUser;

test('admin: user create, list (JSON and text), delete', T, async () => {
  // One-shot, with the login password and then the new user's password on stdin.
  data(await cli(['user', 'create', '--login-username', 'admin', '--login-role', 'admin', '--username', 'dave', '--role', 'crypto-user'], { input: `${cluster.admin.password}\ndave-Passw0rd\n` }));
  const text = await cli(['user', 'list', '--output', 'text'], { pin: adminPin, role: 'admin' });
  assert.match(text.stdout, /^username\s+role\s+locked/m);
  assert.match(text.stdout, /^dave\s+crypto-user\s+false/m);
  const [list, del, after, again] = await session(admin(), ['user list', 'user delete --username dave', 'user list', 'user delete --username dave']);
  const users = ok<{ users: { username: string; role: string; locked: boolean }[] }>(list).users;
  assert.deepEqual(users.filter((u) => ['alice', 'carol', 'dave'].includes(u.username)).map((u) => [u.username, u.role, u.locked]), [
    ['alice', 'crypto-user', false], ['carol', 'crypto-user', false], ['dave', 'crypto-user', false],
  ]);
  ok(del);
  assert.equal(ok<{ users: { username: string }[] }>(after).users.some((u) => u.username === 'dave'), false);
  err(again, 'COFFER_USER_NOT_FOUND');
  const [denied] = await session(cu(), [['user create --username eve --role crypto-user', 'eve-Passw0rd']]);
  err(denied, 'COFFER_PERMISSION_DENIED');
});

test('EC key pair, one-shot: sign, verify, export the public PEM, verify again with node:crypto', T, async () => {
  const pair = data<{ public_key: KeyOut; private_key: KeyOut }>(await asCu(['key', 'generate-asymmetric-pair', 'ec', '--curve', 'secp256r1', '--public-label', 'ec-pub', '--private-label', 'ec-priv']));
  assert.equal(pair.private_key.attributes['class'], 'private-key');
  assert.equal(pair.private_key.attributes['ec-curve'], 'P-256');
  const message = 'pay 100 to bob';
  const { signature } = data<{ signature: string }>(await asCu(['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=ec-priv', '--hash-function', 'sha256', '--data', message]));
  data(await asCu(['crypto', 'verify', 'ecdsa', '--key-filter', `key-reference=${pair.public_key['key-reference']}`, '--data', message, '--signature', signature]));
  failure(await asCu(['crypto', 'verify', 'ecdsa', '--key-filter', 'attr.label=ec-pub', '--data', message + '!', '--signature', signature]), 'COFFER_SIGNATURE_INVALID');
  const pemPath = join(dir, 'ec-pub.pem');
  data(await asCu(['key', 'generate-file', '--encoding', 'pem', '--path', pemPath, '--filter', 'attr.label=ec-pub']));
  const pub = createPublicKey(readFileSync(pemPath, 'utf8'));
  assert.equal(nodeVerify('sha256', Buffer.from(message), { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64')), true);
  const text = await asCu(['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=ec-priv', '--data', message, '--output', 'text']);
  assert.equal(nodeVerify('sha256', Buffer.from(message), { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(text.stdout.trim(), 'base64')), true);
});

test('RSA: PSS signatures and OAEP decryption agree with node:crypto', T, async () => {
  const ct = (pem: string): string => publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from('wrapped secret')).toString('base64');
  const [gen, file, sig] = await session(cu(), [
    'key generate-asymmetric-pair rsa --modulus-size-bits 2048 --public-label rsa-pub --private-label rsa-priv --private-attributes decrypt=true --public-attributes encrypt=true',
    'key generate-file --encoding pem --filter attr.label=rsa-pub',
    'crypto sign rsa-pkcs-pss --key-filter attr.label=rsa-priv --hash-function sha384 --data-hex 00ff10',
  ]);
  ok(gen);
  const pem = ok<{ pem: string }>(file).pem;
  const signature = Buffer.from(ok<{ signature: string }>(sig).signature, 'base64');
  assert.equal(nodeVerify('sha384', Buffer.from([0, 0xff, 0x10]), { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, signature), true);
  const [dec] = await session(cu(), [`crypto decrypt rsa-oaep --key-filter attr.label=rsa-priv --data-base64 ${ct(pem)}`]);
  assert.equal(Buffer.from(ok<{ data: string }>(dec).data, 'base64').toString(), 'wrapped secret');
});

test('AES: GCM and CBC round trips through files; HMAC generate and verify', T, async () => {
  const p = (n: string): string => join(dir, n);
  writeFileSync(p('plain.bin'), Buffer.from([...Array(1000).keys()].map((i) => i & 0xff)));
  const out = await session(cu(), [
    'key generate-symmetric aes --label aes-1 --key-length-bytes 32',
    `crypto encrypt aes-gcm --key-filter attr.label=aes-1 --data-path ${p('plain.bin')} --output-path ${p('cipher.bin')}`,
    `crypto decrypt aes-gcm --key-filter attr.label=aes-1 --data-path ${p('cipher.bin')} --output-path ${p('back.bin')}`,
    'crypto encrypt aes-cbc --key-filter attr.label=aes-1 --data "sixteen+ bytes of text"',
    'key generate-symmetric generic-secret --label mac-1 --key-length-bytes 32',
    `crypto mac generate hmac --key-filter attr.label=mac-1 --hash-function sha256 --data abc --output-path ${p('mac.bin')}`,
    `crypto mac verify hmac --key-filter attr.label=mac-1 --data abc --mac-path ${p('mac.bin')}`,
    `crypto mac verify hmac --key-filter attr.label=mac-1 --data abd --mac-path ${p('mac.bin')}`,
  ]);
  out.slice(0, 7).forEach((e) => ok(e));
  err(out[7], 'COFFER_SIGNATURE_INVALID');
  assert.equal(readFileSync(p('cipher.bin')).length, 12 + 1000 + 16); // iv ‖ ciphertext ‖ tag
  assert.deepEqual(readFileSync(p('back.bin')), readFileSync(p('plain.bin')));
  assert.equal(readFileSync(p('mac.bin')).length, 32);
  // aes-cbc without --iv prints iv ‖ ciphertext, which decrypt takes back as it is (no --iv).
  const cbc = ok<{ data: string }>(out[3]);
  const bad = Buffer.from(readFileSync(p('cipher.bin')));
  bad[20] = (bad[20] ?? 0) ^ 1;
  const [dec, tampered] = await session(cu(), [
    `crypto decrypt aes-cbc --key-filter attr.label=aes-1 --data-base64 ${cbc.data}`,
    `crypto decrypt aes-gcm --key-filter attr.label=aes-1 --data-base64 ${bad.toString('base64')}`,
  ]);
  assert.equal(Buffer.from(ok<{ data: string }>(dec).data, 'base64').toString(), 'sixteen+ bytes of text');
  err(tampered, 'COFFER_ENCRYPTED_DATA_INVALID');
});

test('key list: filters, --verbose, text table, set-attribute, delete', T, async () => {
  const out = await session(ALICE, [
    'key generate-asymmetric-pair ed25519 --public-label list-pub --private-label list-priv',
    'key generate-symmetric aes --label list-aes --key-length-bytes 16',
    'key list',
    'key list --filter attr.class=private-key attr.label=list-priv --verbose',
    'key list --filter attr.key-type=aes attr.label=list-priv',
  ]);
  const all = ok<{ matched_keys: KeyOut[]; total_key_count: number }>(out[2]);
  const labels = all.matched_keys.map((k) => k.attributes['label']);
  for (const l of ['list-pub', 'list-priv', 'list-aes']) assert.ok(labels.includes(l), l);
  assert.equal(all.total_key_count, all.matched_keys.length);
  const priv = ok<{ matched_keys: KeyOut[] }>(out[3]).matched_keys;
  assert.equal(priv.length, 1);
  assert.equal(priv[0]?.attributes['key-type'], 'ed25519');
  assert.equal(priv[0]?.attributes['sign'], true);
  const ref = priv[0]?.['key-reference'] ?? '';
  assert.match(ref, /^0x[0-9a-f]{16}$/);
  assert.equal(ok<{ matched_keys: KeyOut[] }>(out[4]).matched_keys.length, 0);

  const text = await asAlice(['key', 'list', '--output', 'text', '--filter', 'attr.label=list-aes']);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^key-reference\s+class\s+type\s+size\s+label\s+owner/);
  assert.match(text.stdout, /^0x[0-9a-f]{16}\s+secret-key\s+aes\s+128\s+list-aes\s+alice\s*$/m);
  failure(await asAlice(['key', 'delete', '--filter', 'attr.label=list-pub', 'attr.label=list-priv']), 'COFFER_CLI_USAGE', 2);

  const more = await session(ALICE, [
    `key list --filter key-reference=${ref}`,
    'key set-attribute --filter attr.label=list-aes --name label --value list-aes-renamed',
    'key set-attribute --filter attr.label=list-aes-renamed --name encrypt --value false',
    'key list --verbose --filter attr.label=list-aes-renamed',
    'crypto encrypt aes-gcm --key-filter attr.label=list-aes-renamed --data x',
    'key delete --filter attr.label=no-such-key',
    'key delete --filter attr.key-type=ed25519',
    'key delete --filter attr.label=list-aes-renamed',
    'key list --filter attr.label=list-aes-renamed',
  ]);
  assert.deepEqual(ok<{ matched_keys: KeyOut[] }>(more[0]).matched_keys.map((k) => k['key-reference']), [ref]);
  ok(more[1]);
  ok(more[2]);
  assert.equal(ok<{ matched_keys: KeyOut[] }>(more[3]).matched_keys[0]?.attributes['encrypt'], false);
  err(more[4], 'COFFER_KEY_FUNCTION_NOT_PERMITTED');
  err(more[5], 'COFFER_OBJECT_NOT_FOUND');
  err(more[6], 'COFFER_CLI_FILTER_AMBIGUOUS'); // two keys match: delete refuses to guess
  ok(more[7]);
  assert.equal(ok<{ matched_keys: KeyOut[] }>(more[8]).matched_keys.length, 0);
});

test('share and unshare between two crypto users', T, async () => {
  const sig = join(dir, 'carol.sig');
  const carolSigns = `crypto sign ecdsa --key-filter attr.label=shared-priv --hash-function sha384 --data "carol signs"`;
  const [gen] = await session(ALICE, ['key generate-asymmetric-pair ec --curve secp384r1 --public-label shared-pub --private-label shared-priv']);
  ok(gen);
  const [before] = await session(CAROL, [carolSigns]);
  err(before, 'COFFER_OBJECT_NOT_FOUND');
  const [share, listed] = await session(ALICE, [
    `key share --filter attr.label=shared-priv --username ${CAROL.name} --role crypto-user`,
    'key list --verbose --filter attr.label=shared-priv',
  ]);
  ok(share);
  assert.deepEqual(ok<{ matched_keys: KeyOut[] }>(listed).matched_keys[0]?.['key-info']?.['shared-users'], [{ username: CAROL.name }]);
  const [signed, del] = await session(CAROL, [`${carolSigns} --output-path ${sig}`, 'key delete --filter attr.label=shared-priv']);
  ok(signed);
  err(del, 'COFFER_PERMISSION_DENIED');
  const [verified, unshare] = await session(ALICE, [
    `crypto verify ecdsa --key-filter attr.label=shared-pub --hash-function sha384 --data "carol signs" --signature-path ${sig}`,
    `key unshare --filter attr.label=shared-priv --username ${CAROL.name}`,
  ]);
  ok(verified);
  ok(unshare);
  const [after] = await session(CAROL, [carolSigns]);
  err(after, 'COFFER_OBJECT_NOT_FOUND');
});

test('wrap and unwrap an AES key; the unwrapped key decrypts what the original encrypted', T, async () => {
  const w = join(dir, 'payload.wrapped');
  const c = join(dir, 'payload.ct');
  const out = await session(cu(), [
    'key generate-symmetric aes --label kek --key-length-bytes 32 --attributes wrap=true unwrap=true',
    'key generate-symmetric aes --label payload --key-length-bytes 16 --attributes extractable=true',
    `key wrap aes-key-wrap-pad --payload-filter attr.label=payload --wrapping-filter attr.label=kek --path ${w}`,
    `key unwrap aes-key-wrap-pad --filter attr.label=kek --key-type-class aes --label payload-copy --data-path ${w}`,
    `crypto encrypt aes-gcm --key-filter attr.label=payload --data "same key?" --output-path ${c}`,
    `crypto decrypt aes-gcm --key-filter attr.label=payload-copy --data-path ${c}`,
    'key generate-symmetric aes --label stuck --key-length-bytes 16',
    'key wrap aes-key-wrap-pad --payload-filter attr.label=stuck --wrapping-filter attr.label=kek',
  ]);
  out.slice(0, 7).forEach((e) => ok(e));
  assert.equal(readFileSync(w).length, 24);
  assert.equal(ok<{ key: KeyOut }>(out[3]).key.attributes['label'], 'payload-copy');
  assert.equal(Buffer.from(ok<{ data: string }>(out[5]).data, 'base64').toString(), 'same key?');
  err(out[7], 'COFFER_KEY_UNEXTRACTABLE');
});

test('import pem: a public key verifies node:crypto signatures; a private key signs for node:crypto', T, async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pubPath = join(dir, 'import-pub.pem');
  const privPath = join(dir, 'import-priv.pem');
  writeFileSync(pubPath, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(privPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const sig = nodeSign('sha256', Buffer.from('from outside'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const out = await session(cu(), [
    `key import pem --path ${pubPath} --label imported-pub --key-type-class ec-public`,
    `crypto verify ecdsa --key-filter attr.label=imported-pub --data "from outside" --signature ${sig.toString('base64')}`,
    `key import pem --path ${privPath} --label imported-priv --attributes sign=true`,
    'crypto sign ecdsa --key-filter attr.label=imported-priv --data "from inside"',
    `key import pem --path ${pubPath} --label x --key-type-class rsa-public`,
  ]);
  assert.equal(ok<{ key: KeyOut }>(out[0]).key.attributes['class'], 'public-key');
  ok(out[1]);
  ok(out[2]);
  const signature = Buffer.from(ok<{ signature: string }>(out[3]).signature, 'base64');
  assert.equal(nodeVerify('sha256', Buffer.from('from inside'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), true);
  err(out[4], 'COFFER_CLI_INPUT');
});

test('a file of records is signed line by line', T, async () => {
  const records = Array.from({ length: 150 }, (_, i) => `record ${i}`);
  const path = join(dir, 'records.txt');
  writeFileSync(path, records.join('\n') + '\n');
  const [gen, signed, file] = await session(cu(), [
    'key generate-asymmetric-pair ed25519 --public-label batch-pub --private-label batch-priv',
    `crypto sign ed25519 --key-filter attr.label=batch-priv --records-path ${path}`,
    'key generate-file --encoding pem --filter attr.label=batch-pub',
  ]);
  ok(gen);
  const { signatures } = ok<{ signatures: string[] }>(signed);
  assert.equal(signatures.length, 150);
  const pem = ok<{ pem: string }>(file).pem;
  for (const i of [0, 77, 149]) assert.equal(nodeVerify(null, Buffer.from(records[i] ?? ''), pem, Buffer.from(signatures[i] ?? '', 'base64')), true, `record ${i}`);
});

test('quorum: register a key, generate a token, approve it with the private key, list', T, async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pubPath = join(dir, 'quorum-pub.pem');
  const privPath = join(dir, 'quorum-priv.pem');
  const tokenPath = join(dir, 'token.bin');
  writeFileSync(pubPath, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(privPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // Tokens live in the node's memory: one session generates and approves.
  const out = await session(admin(), [
    `user change-quorum token-sign register --public-key ${pubPath}`,
    'user list',
    `quorum token-sign generate --service user --token ${tokenPath}`,
    `quorum token-sign approve --token ${tokenPath} --approver admin --private-key ${privPath}`,
    'quorum token-sign list',
    'quorum token-sign list-quorum-values',
  ]);
  ok(out[0]);
  assert.equal(ok<{ users: { username: string; quorum: unknown[] }[] }>(out[1]).users.find((u) => u.username === 'admin')?.quorum.length, 1);
  ok(out[2]);
  assert.equal(ok<{ approvals: number }>(out[3]).approvals, 1);
  assert.deepEqual(ok<{ tokens: { service: string; approvals: number }[] }>(out[4]).tokens.map((t) => [t.service, t.approvals]), [['user', 1]]);
  assert.deepEqual(ok(out[5]), { user: 1, quorum: 1 });
});

/** The JSON envelopes of an interactive session's stdout, in order. */
function splitEnvelopes(stdout: string): { error_code: number; data?: unknown; error?: { code: string } }[] {
  return stdout.split(/\n(?=\{)/).filter((s) => s.trim() !== '').map((s) => JSON.parse(s) as { error_code: number });
}

test('interactive: one login serves several commands; errors print and the prompt goes on', T, async () => {
  const session = [
    'key list', // not logged in yet
    `login --username ${ALICE.name}`, ALICE.password,
    'key generate-symmetric aes --label "inter active" --key-length-bytes 32',
    `crypto encrypt aes-gcm --key-filter attr.label="inter active" --data hello`,
    'key list --filter attr.label="inter active"',
    'key lst',
    'logout',
    'key list',
    'exit',
    'key list', // after exit: never run
  ].join('\n') + '\n';
  const r = await cli(['interactive'], { input: session });
  assert.equal(r.code, 0, r.stderr);
  const out = splitEnvelopes(r.stdout);
  // Every command line gets its envelope, the mistyped one (commander's usage error) too.
  assert.deepEqual(out.map((e) => e.error_code), [1, 0, 0, 0, 0, 1, 0, 1]);
  assert.equal(out[0]?.error?.code, 'COFFER_NOT_LOGGED_IN');
  assert.equal((out[4]?.data as { matched_keys: unknown[] }).matched_keys.length, 1);
  assert.equal(out[5]?.error?.code, 'COFFER_CLI_USAGE');
  assert.equal(out[7]?.error?.code, 'COFFER_NOT_LOGGED_IN');
  assert.match(r.stderr, /unknown command 'lst'/);
  assert.ok(!r.stdout.includes(ALICE.password) && !r.stderr.includes(ALICE.password), 'the password is never printed');
});

test('wrong password: exit 1, COFFER_AUTH_FAILED, and the password appears nowhere', T, async () => {
  const wrong = 'Wr0ng-Password-xyz';
  for (const r of [
    await cli(['key', 'list'], { pin: `${ALICE.name}:${wrong}` }),
    await cli(['key', 'list', '--login-username', ALICE.name], { input: `${wrong}\n` }),
  ]) {
    failure(r, 'COFFER_AUTH_FAILED');
    assert.match(r.stderr, /COFFER_AUTH_FAILED/);
    assert.ok(!r.stdout.includes(wrong) && !r.stderr.includes(wrong));
  }
  const r = await cli(['interactive', '--output', 'text'], { input: `login --username ${ALICE.name}\n${wrong}\nquit\n` });
  assert.equal(r.code, 0);
  assert.match(r.stderr, /COFFER_AUTH_FAILED/);
  assert.ok(!r.stdout.includes(wrong) && !r.stderr.includes(wrong));
});

test('bad usage exits 2: unknown option, missing option, bad filter, bad data; no credentials exits 2', T, async () => {
  for (const args of [
    ['key', 'list', '--no-such-option'],
    ['key', 'generate-symmetric', 'aes', '--label', 'x'],
    ['key', 'list', '--filter', 'attr.colour=blue'],
    ['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=ec-priv', '--data', 'a', '--data-hex', '00'],
    ['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=ec-priv', '--data-hex', 'zz'],
    // commander's own usage errors: unknown subcommand, missing subcommand, bad choice, extra word
    ['key', 'lst'],
    ['key'],
    ['key', 'list', '--output', 'xml'],
    ['key', 'list', 'extra'],
  ]) {
    const r = await asCu(args);
    assert.equal(r.code, 2, `${args.join(' ')}\n${r.stdout}${r.stderr}`);
    // The same envelope as every other failure, and one stderr line with the one prefix.
    failure(r, 'COFFER_CLI_USAGE', 2);
    const errorLines = r.stderr.split('\n').filter((l) => /^(coffer|error)\b/.test(l));
    assert.deepEqual(errorLines.map((l) => l.slice(0, 'coffer: COFFER_CLI_USAGE: '.length)), ['coffer: COFFER_CLI_USAGE: '], `${args.join(' ')}\n${r.stderr}`);
  }
  const r = await cli(['key', 'list']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /COFFER_PIN/);
  // In text mode a usage error is the stderr line alone.
  const text = await asCu(['key', 'lst', '--output', 'text']);
  assert.equal(text.code, 2);
  assert.equal(text.stdout, '');
  assert.match(text.stderr, /^coffer: COFFER_CLI_USAGE: Invalid command line \{"reason":"unknown command 'lst'/);
});

test('coffer --version prints the package version', T, async () => {
  const { version } = JSON.parse(readFileSync(resolve(dirname(MAIN), '../../../package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await cli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  }
});

test('aes-cbc: what encrypt prints in text mode, decrypt takes back and prints as the plaintext', T, async () => {
  data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'cbc-text', '--key-length-bytes', '32']));
  const plain = Buffer.from([0x00, 0xff, 0x0a, 0x41, 0x80, 0x0d, 0x0a, 0x7f, 0x20, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a]);
  const k = ['--key-filter', 'attr.label=cbc-text'];
  const enc = await asCu(['crypto', 'encrypt', 'aes-cbc', ...k, '--data-hex', plain.toString('hex'), '--output', 'text']);
  assert.equal(enc.code, 0, enc.stderr);
  const word = enc.stdout.trim();
  assert.match(enc.stdout, /^[A-Za-z0-9+/]+=*\n$/, 'one base64 word');
  assert.equal(Buffer.from(word, 'base64').length, 16 + 32, 'iv ‖ ciphertext (19 bytes pad to 32)');
  const dec = await asCu(['crypto', 'decrypt', 'aes-cbc', ...k, '--data-base64', word, '--output', 'text']);
  assert.equal(dec.code, 0, dec.stderr);
  assert.deepEqual(dec.stdoutBytes, plain, 'the plaintext, byte for byte, nothing added');
  // JSON and files carry the same layout, so each goes back in as it is.
  const json = data<{ data: string }>(await asCu(['crypto', 'encrypt', 'aes-cbc', ...k, '--data', 'via json']));
  assert.equal(Buffer.from(data<{ data: string }>(await asCu(['crypto', 'decrypt', 'aes-cbc', ...k, '--data-base64', json.data])).data, 'base64').toString(), 'via json');
  const file = join(dir, 'cbc-text.bin');
  data(await asCu(['crypto', 'encrypt', 'aes-cbc', ...k, '--data', 'via file', '--output-path', file]));
  assert.equal(readFileSync(file).length, 32);
  const back = await asCu(['crypto', 'decrypt', 'aes-cbc', ...k, '--data-path', file, '--output', 'text']);
  assert.equal(back.stdout, 'via file');
  // With --iv the data is the ciphertext alone, both ways.
  const iv = '000102030405060708090a0b0c0d0e0f';
  const own = await asCu(['crypto', 'encrypt', 'aes-cbc', ...k, '--iv', iv, '--data', 'own iv', '--output', 'text']);
  assert.equal(Buffer.from(own.stdout.trim(), 'base64').length, 16);
  assert.equal((await asCu(['crypto', 'decrypt', 'aes-cbc', ...k, '--iv', iv, '--data-base64', own.stdout.trim(), '--output', 'text'])).stdout, 'own iv');
  // Too short or not whole blocks: refused before connecting, with the layout in the reason.
  for (const hex of ['00'.repeat(16), '00'.repeat(33)]) failure(await asCu(['crypto', 'decrypt', 'aes-cbc', ...k, '--data-hex', hex]), 'COFFER_CLI_USAGE', 2);
  failure(await asCu(['crypto', 'encrypt', 'aes-cbc', ...k, '--iv', '0011', '--data', 'x']), 'COFFER_CLI_USAGE', 2);
});

test('decrypt in text mode prints the plaintext for aes-gcm and rsa-oaep too; the prompt gets its newline', T, async () => {
  data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'gcm-text', '--key-length-bytes', '16']));
  const enc = await asCu(['crypto', 'encrypt', 'aes-gcm', '--key-filter', 'attr.label=gcm-text', '--data', 'gcm plain', '--output', 'text']);
  const dec = await asCu(['crypto', 'decrypt', 'aes-gcm', '--key-filter', 'attr.label=gcm-text', '--data-base64', enc.stdout.trim(), '--output', 'text']);
  assert.equal(dec.stdout, 'gcm plain');
  const pair = data<{ public_key: KeyOut }>(await asCu(['key', 'generate-asymmetric-pair', 'rsa', '--modulus-size-bits', '2048', '--public-label', 'oaep-pub', '--private-label', 'oaep-priv', '--private-attributes', 'decrypt=true', '--public-attributes', 'encrypt=true']));
  const pem = data<{ pem: string }>(await asCu(['key', 'generate-file', '--encoding', 'pem', '--filter', `key-reference=${pair.public_key['key-reference']}`])).pem;
  const ct = publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from('oaep plain')).toString('base64');
  assert.equal((await asCu(['crypto', 'decrypt', 'rsa-oaep', '--key-filter', 'attr.label=oaep-priv', '--data-base64', ct, '--output', 'text'])).stdout, 'oaep plain');
  const r = await cli(['interactive', '--output', 'text'], { input: [`login --username ${cu().name}`, cu().password, `crypto decrypt aes-gcm --key-filter attr.label=gcm-text --data-base64 ${enc.stdout.trim()}`, 'quit'].join('\n') + '\n' });
  assert.ok(r.stdout.endsWith('\ngcm plain\n'), r.stdout); // the plaintext, then the newline the prompt needs
});

test('decrypt takes back what encrypt made from the largest input: the CLI bound is input + IV + tag or padding', T, async () => {
  // Against a port where nothing listens: the CLI's own checks run before it connects, so the
  // outcome says which side refused. Exactly CRYPTO_CIPHERTEXT_BYTES_MAX passes the CLI (and fails
  // to connect); one byte more is refused by the CLI, naming the bound.
  const caPath = join(cluster.dir, 'customer-ca.pem');
  const nowhere = ['--endpoint', '127.0.0.1:1', '--ca', caPath];
  const gcmMax = join(dir, 'gcm-max.bin');
  const tooBig = join(dir, 'too-big.bin');
  writeFileSync(gcmMax, Buffer.alloc(CRYPTO_INPUT_BYTES_MAX + 12 + 16));
  writeFileSync(tooBig, Buffer.alloc(CRYPTO_CIPHERTEXT_BYTES_MAX + 1));
  try {
    const passes = await cli(['crypto', 'decrypt', 'aes-gcm', '--key-filter', 'key-reference=1', '--data-path', gcmMax, ...nowhere], { pin: cuPin, env: { COFFER_CLUSTER_CONFIG: '' } });
    failure(passes, 'COFFER_CLUSTER_UNAVAILABLE');
    const refused = await cli(['crypto', 'decrypt', 'aes-gcm', '--key-filter', 'key-reference=1', '--data-path', tooBig, ...nowhere], { pin: cuPin, env: { COFFER_CLUSTER_CONFIG: '' } });
    failure(refused, 'COFFER_CLI_INPUT');
    assert.match(refused.stdout, new RegExp(`larger than ${CRYPTO_CIPHERTEXT_BYTES_MAX} bytes`));
    // Encryption keeps the device's input bound.
    const plainTooBig = await cli(['crypto', 'encrypt', 'aes-gcm', '--key-filter', 'key-reference=1', '--data-path', gcmMax, ...nowhere], { pin: cuPin, env: { COFFER_CLUSTER_CONFIG: '' } });
    failure(plainTooBig, 'COFFER_CLI_INPUT');
  } finally {
    rmSync(gcmMax, { force: true });
    rmSync(tooBig, { force: true });
  }
});

test('a 16 MiB file encrypted with aes-gcm decrypts back through the CLI', T, async () => {
  const plain = join(dir, 'sixteen.bin');
  const sealed = join(dir, 'sixteen.gcm');
  const back = join(dir, 'sixteen.back');
  writeFileSync(plain, randomBytes(CRYPTO_INPUT_BYTES_MAX));
  try {
    data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'big-gcm', '--key-length-bytes', '32']));
    data(await asCu(['crypto', 'encrypt', 'aes-gcm', '--key-filter', 'attr.label=big-gcm', '--data-path', plain, '--output-path', sealed]));
    assert.equal(readFileSync(sealed).length, 16_777_244);
    data(await asCu(['crypto', 'decrypt', 'aes-gcm', '--key-filter', 'attr.label=big-gcm', '--data-path', sealed, '--output-path', back]));
    assert.ok(readFileSync(back).equals(readFileSync(plain)));
  } finally {
    for (const f of [plain, sealed, back]) rmSync(f, { force: true });
  }
});

test('ecdsa --data-type digest: the digest must have its hash\'s length; signatures are r ‖ s', T, async () => {
  data(await asCu(['key', 'generate-asymmetric-pair', 'ec', '--curve', 'secp256r1', '--public-label', 'dg-pub', '--private-label', 'dg-priv']));
  const pem = data<{ pem: string }>(await asCu(['key', 'generate-file', '--encoding', 'pem', '--filter', 'attr.label=dg-pub'])).pem;
  const message = Buffer.from('digest me');
  const k = ['--key-filter', 'attr.label=dg-priv', '--data-type', 'digest'];
  for (const [hash, bytes] of [['sha256', 32], ['sha384', 48]] as const) {
    const digest = createHash(hash).update(message).digest('hex');
    const { signature } = data<{ signature: string }>(await asCu(['crypto', 'sign', 'ecdsa', ...k, '--hash-function', hash, '--data-hex', digest]));
    const sig = Buffer.from(signature, 'base64');
    assert.equal(sig.length, 64, 'r ‖ s, 32 bytes each on P-256');
    assert.equal(nodeVerify(hash, message, { key: pem, dsaEncoding: 'ieee-p1363' }, sig), true);
    data(await asCu(['crypto', 'verify', 'ecdsa', '--key-filter', 'attr.label=dg-pub', '--data-type', 'digest', '--hash-function', hash, '--data-hex', digest, '--signature', signature]));
    // Any other length is not a digest of that hash: refused before connecting.
    for (const wrong of [1, bytes - 1, bytes + 1]) {
      const r = await asCu(['crypto', 'sign', 'ecdsa', ...k, '--hash-function', hash, '--data-hex', '00'.repeat(wrong)]);
      failure(r, 'COFFER_CLI_USAGE', 2);
      assert.match(r.stdout, new RegExp(`is ${bytes} bytes`));
    }
  }
  failure(await asCu(['crypto', 'sign', 'ecdsa', ...k, '--data-hex', '00']), 'COFFER_CLI_USAGE', 2); // default sha256: 32 bytes
  failure(await asCu(['crypto', 'verify', 'ecdsa', '--key-filter', 'attr.label=dg-pub', '--data-type', 'digest', '--data-hex', '00', '--signature', 'AAAA']), 'COFFER_CLI_USAGE', 2);
  failure(await asCu(['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=dg-priv', '--data-type', 'hashed', '--data', 'x']), 'COFFER_CLI_USAGE', 2);
  const help = await cli(['crypto', 'sign', 'ecdsa', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /r ‖ s/);
  assert.doesNotMatch(help.stdout, /\(DER signature\)/);
});

test('cluster activate on an active cluster says so, before asking for any password', T, async () => {
  // Nothing on stdin: had the command asked for the PreCO password, it would fail COFFER_CLI_INPUT_ENDED.
  const r = await cli(['cluster', 'activate']);
  failure(r, 'COFFER_CLUSTER_ALREADY_ACTIVE');
  assert.match(r.stderr, /^coffer: COFFER_CLUSTER_ALREADY_ACTIVE: Cluster is already active/m);
  assert.doesNotMatch(r.stderr, /Login failed/);
  // The admin's failed-login count is untouched: no ACTIVATE was sent.
  const users = ok<{ users: { username: string; 'failed-logins': number }[] }>((await session(admin(), ['user list']))[0]).users;
  assert.equal(users.find((u) => u.username === cluster.admin.name)?.['failed-logins'], 0);
});

test('each input failure has its own code: an existing output file, an ambiguous filter, an unreadable config', T, async () => {
  data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'twin', '--key-length-bytes', '16']));
  data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'twin', '--key-length-bytes', '16']));
  data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'single', '--key-length-bytes', '16']));
  const existing = join(dir, 'exists.bin');
  writeFileSync(existing, 'keep me');
  const exists = await asCu(['crypto', 'encrypt', 'aes-gcm', '--key-filter', 'attr.label=single', '--data', 'x', '--output-path', existing]);
  failure(exists, 'COFFER_CLI_OUTPUT_EXISTS');
  assert.equal(readFileSync(existing, 'utf8'), 'keep me', 'never overwritten');
  failure(await asCu(['crypto', 'encrypt', 'aes-gcm', '--key-filter', 'attr.label=single', '--data', 'x', '--output-path', join(dir, 'no-such-dir', 'out.bin')]), 'COFFER_CLI_OUTPUT_UNWRITABLE');
  const twins = await asCu(['crypto', 'encrypt', 'aes-gcm', '--key-filter', 'attr.label=twin', '--data', 'x']);
  failure(twins, 'COFFER_CLI_FILTER_AMBIGUOUS');
  assert.match(twins.stdout, /"matched": 2/);
  const missing = await cli(['key', 'list'], { pin: cuPin, env: { COFFER_CLUSTER_CONFIG: join(dir, 'no-such-cluster.json') } });
  failure(missing, 'COFFER_CLIENT_CONFIG_UNREADABLE');
  const messages = new Set([exists, twins, missing].map((r) => (JSON.parse(r.stdout) as { error: { message: string } }).error.message));
  assert.equal(messages.size, 3, 'three different messages');
  // Piped passwords that end too soon have their own code as well.
  failure(await cli(['key', 'list', '--login-username', ALICE.name]), 'COFFER_CLI_INPUT_ENDED');
});

test('key list --verbose changes the text output; an empty COFFER_ROLE means crypto-user', T, async () => {
  data(await asCu(['key', 'generate-symmetric', 'aes', '--label', 'verbose-text', '--key-length-bytes', '24', '--attributes', 'encrypt=true']));
  const plain = await cli(['key', 'list', '--output', 'text', '--filter', 'attr.label=verbose-text'], { pin: cuPin, role: '' });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^0x[0-9a-f]{16}\s+secret-key\s+aes\s+192\s+verbose-text/m);
  const verbose = await asCu(['key', 'list', '--output', 'text', '--verbose', '--filter', 'attr.label=verbose-text']);
  assert.notEqual(verbose.stdout, plain.stdout);
  assert.match(verbose.stdout, /^0x[0-9a-f]{16}\n/);
  for (const line of ['label: verbose-text', 'class: secret-key', 'encrypt: true', 'extractable: false', 'value-len: 24', `owner: ${cluster.cryptoUser.name}`, 'use-key-quorum-value: 0']) {
    assert.ok(verbose.stdout.includes(`\n  ${line}\n`), line);
  }
});

test("the SDK reads the development cluster's cluster.json too (one loader) and checks key handles", T, async () => {
  const cfg = loadClusterConfig(clusterFile);
  const sdk = await Cluster.connect({ ...cfg, credentials: { username: cluster.cryptoUser.name, password: cluster.cryptoUser.password } });
  try {
    const key = await sdk.generateKey({ type: 'AES', bits: 128, label: 'sdk-from-cluster-json' });
    assert.equal((await sdk.key(BigInt(key.handle)).attributes()).label, 'sdk-from-cluster-json');
    throwsCode(() => sdk.key(2n ** 53n), 'COFFER_HANDLE_OUT_OF_RANGE');
  } finally {
    await sdk.close();
  }
});

