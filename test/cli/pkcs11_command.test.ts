// `coffer pkcs11` as a user runs it, against a development cluster of real node processes, driven by
// the real client: Debian's pkcs11-tool (OpenSC) loading p11-kit-client.so with the
// P11_KIT_SERVER_ADDRESS the command's ready line gives. Every signature is verified by the OpenSSL
// CLI against the public key pkcs11-tool reads from the token; OAEP decrypts what OpenSSL encrypted.
// The keys made through PKCS#11 are then found through the SDK, as cluster objects like any other.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { Cluster } from '../../src/client/cluster.js';
import { CLUSTER_FILE, startDevelopmentCluster, type DevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { P11_KIT_CLIENT, PKCS11_TOOL, realClientMissing } from '../pkcs11/real_client.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const missing = realClientMissing() ?? (existsSync('/usr/bin/openssl') ? undefined : 'needs the openssl CLI');
if (missing !== undefined) console.log(`coffer pkcs11 tests skipped: ${missing}`);

const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-cmd-'));
let dev: DevelopmentCluster | undefined;
after(async () => {
  await dev?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function tool(address: string, args: readonly string[]): Run {
  try {
    const stdout = execFileSync(PKCS11_TOOL, ['--module', P11_KIT_CLIENT, ...args], {
      env: { ...process.env, P11_KIT_SERVER_ADDRESS: address }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000,
    });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const x = e as { status?: number; stdout?: string; stderr?: string };
    return { code: x.status ?? 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** pkcs11-tool as a separate process, not waiting: several run at once. */
function toolAsync(address: string, args: readonly string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(PKCS11_TOOL, ['--module', P11_KIT_CLIENT, ...args], { env: { ...process.env, P11_KIT_SERVER_ADDRESS: address }, encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

function openssl(args: readonly string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function startBridge(socket: string, env: NodeJS.ProcessEnv, args: readonly string[] = []): Promise<{ child: ChildProcess; ready: Record<string, string>; stderr: () => string }> {
  const child = spawn(process.execPath, [MAIN, 'pkcs11', '--socket', socket, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((ok, ko) => {
    createInterface({ input: child.stdout }).once('line', ok);
    child.once('exit', (code) => ko(new Error(`coffer pkcs11 exited early with ${String(code)}: ${stderr}`)));
  });
  return { child, ready: JSON.parse(line) as Record<string, string>, stderr: () => stderr };
}

test('coffer pkcs11 serves the cluster to pkcs11-tool; signatures verify with OpenSSL; SIGTERM removes the socket', { skip: missing, timeout: 300_000 }, async () => {
  dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1 });
  const pin = `${dev.cryptoUser.name}:${dev.cryptoUser.password}`;
  const socket = join(dir, 'bridge.sock');
  const env = { ...process.env, COFFER_CLUSTER_CONFIG: join(dev.dir, CLUSTER_FILE) };
  const bridge = await startBridge(socket, env);
  const f = (name: string): string => join(dir, name);
  try {
    assert.equal(bridge.ready['event'], 'ready');
    assert.equal(bridge.ready['P11_KIT_SERVER_ADDRESS'], `unix:path=${socket}`);
    const address = bridge.ready['P11_KIT_SERVER_ADDRESS'];
    const run = (args: readonly string[]): Run => tool(address, args);
    const ok = (args: readonly string[]): string => {
      const r = run(args);
      assert.equal(r.code, 0, `pkcs11-tool ${args.filter((a) => a !== pin).join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const login = ['--login', '--pin', pin];
    writeFileSync(f('msg0'), 'digest me');

    assert.match(ok(['--list-slots']), /token flags\s+: login required, rng, token initialized, PIN initialized/);
    const mechs = ok(['--list-mechanisms']);
    // Run by the HSM (hw); the digests, computed in the bridge, are not.
    for (const m of [/RSA-PKCS-KEY-PAIR-GEN, keySize=\{2048,4096\}, hw, generate_key_pair/, /SHA256-RSA-PKCS, keySize=\{2048,4096\}, hw, sign, verify/,
      /RSA-PKCS-PSS, keySize=\{2048,4096\}, hw, sign, verify/, /RSA-PKCS-OAEP, keySize=\{2048,4096\}, hw, encrypt, decrypt/, /ECDSA-KEY-PAIR-GEN/,
      /ECDSA, keySize=\{256,521\}, hw, sign, verify/, /AES-KEY-GEN, keySize=\{16,32\}, hw, generate/, /SHA256, digest/]) assert.match(mechs, m);

    // A wrong PIN: the tool sees CKR_PIN_INCORRECT; the bridge's log never holds a PIN.
    const wrong = run(['--login', '--pin', `${dev.cryptoUser.name}:not-the-password`, '--list-objects']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /CKR_PIN_INCORRECT/);

    // A digest needs no login.
    ok(['--hash', '-m', 'SHA256', '-i', f('msg0'), '-o', f('msg0.sha256')]);
    assert.deepEqual(readFileSync(f('msg0.sha256')), createHash('sha256').update('digest me').digest());

    // Key generation. With no usage flag pkcs11-tool asks for sign and derive (CKA_DERIVE on both halves).
    assert.match(ok([...login, '--keypairgen', '--key-type', 'EC:prime256v1', '--usage-sign', '--label', 'p11-ec', '--id', 'e1']), /EC_PARAMS:\s+06082a8648ce3d030107/);
    assert.match(ok([...login, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'p11-ec-default', '--id', 'e2']), /Usage:\s+sign, derive/);
    assert.match(ok([...login, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'p11-rsa', '--id', 'a1']), /Public Key Object; RSA 2048 bits/);
    assert.match(ok([...login, '--keygen', '--key-type', 'AES:32', '--label', 'p11-aes', '--id', 'c1']), /Secret Key Object; AES length 32/);
    const objects = ok([...login, '--list-objects']);
    for (const label of ['p11-ec', 'p11-rsa', 'p11-aes']) assert.match(objects, new RegExp(`label:\\s+${label}`));
    assert.equal(objects.match(/Private Key Object/g)?.length, 3);

    // Public keys read from the token, as OpenSSL sees them.
    ok([...login, '--read-object', '--type', 'pubkey', '--id', 'e1', '-o', f('ec.der')]);
    ok([...login, '--read-object', '--type', 'pubkey', '--id', 'a1', '-o', f('rsa.der')]);
    openssl(['pkey', '-pubin', '-inform', 'DER', '-in', f('ec.der'), '-out', f('ec.pem')]);
    openssl(['pkey', '-pubin', '-inform', 'DER', '-in', f('rsa.der'), '-out', f('rsa.pem')]);
    assert.match(openssl(['pkey', '-pubin', '-in', f('rsa.pem'), '-noout', '-text']), /Public-Key: \(2048 bit\)/);

    const message = 'a message signed through PKCS#11';
    writeFileSync(f('msg'), message);
    writeFileSync(f('digest'), createHash('sha256').update(message).digest());

    // ECDSA over a digest (p11-kit 0.24 cannot carry ECDSA-SHA256), in OpenSSL's DER form.
    ok([...login, '--sign', '--id', 'e1', '-m', 'ECDSA', '-i', f('digest'), '-o', f('ec.sig'), '--signature-format', 'openssl']);
    assert.match(openssl(['dgst', '-sha256', '-verify', f('ec.pem'), '-signature', f('ec.sig'), f('msg')]), /Verified OK/);

    ok([...login, '--sign', '--id', 'a1', '-m', 'SHA256-RSA-PKCS', '-i', f('msg'), '-o', f('rsa.sig')]);
    assert.match(openssl(['dgst', '-sha256', '-verify', f('rsa.pem'), '-signature', f('rsa.sig'), f('msg')]), /Verified OK/);

    ok([...login, '--sign', '--id', 'a1', '-m', 'RSA-PKCS-PSS', '--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', '32', '-i', f('digest'), '-o', f('pss.sig')]);
    assert.match(openssl(['pkeyutl', '-verify', '-pubin', '-inkey', f('rsa.pem'), '-in', f('digest'), '-sigfile', f('pss.sig'),
      '-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:32', '-pkeyopt', 'digest:sha256']), /Signature Verified Successfully/);

    // Several processes at once, each its own p11-kit connection, login and session.
    const parallel = await Promise.all([0, 1, 2, 3].map((i) => toolAsync(address, [...login, '--sign', '--id', 'a1', '-m', 'SHA256-RSA-PKCS', '-i', f('msg'), '-o', f(`par${i}.sig`)])));
    parallel.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assert.match(openssl(['dgst', '-sha256', '-verify', f('rsa.pem'), '-signature', f(`par${i}.sig`), f('msg')]), /Verified OK/);
    });

    // OAEP: OpenSSL encrypts to the token's public key, the token decrypts.
    writeFileSync(f('plain'), 'the OAEP plaintext');
    openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', f('rsa.pem'), '-in', f('plain'), '-out', f('oaep.ct'),
      '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256']);
    ok([...login, '--decrypt', '--id', 'a1', '-m', 'RSA-PKCS-OAEP', '--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '-i', f('oaep.ct'), '-o', f('oaep.pt')]);
    assert.equal(readFileSync(f('oaep.pt'), 'utf8'), 'the OAEP plaintext');

    // HMAC, which every p11-kit client carries (SHA-256/384/512): a generic secret made by the token,
    // its MAC equal to OpenSSL's under the value pkcs11-tool reads back (the key was made extractable).
    assert.match(ok([...login, '--keygen', '--key-type', 'GENERIC:32', '--label', 'p11-hmac', '--id', 'b1', '--usage-sign', '--extractable']), /Secret Key Object; Generic secret length 32/);
    ok([...login, '--sign', '--id', 'b1', '-m', 'SHA256-HMAC', '-i', f('msg'), '-o', f('hmac')]);
    ok([...login, '--read-object', '--type', 'secrkey', '--id', 'b1', '-o', f('hmac.key')]);
    const hmacKey = readFileSync(f('hmac.key'));
    assert.equal(hmacKey.length, 32);
    assert.match(openssl(['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${hmacKey.toString('hex')}`, f('msg')]), new RegExp(`= ${readFileSync(f('hmac')).toString('hex')}$`, 'm'));

    // AES-ECB, the one AES cipher p11-kit 0.24 carries (no parameter): pkcs11-tool's multi-part
    // encryption of two blocks equals OpenSSL's under the key's value, and decrypts back.
    ok([...login, '--keygen', '--key-type', 'AES:32', '--label', 'p11-ecb', '--id', 'c2', '--extractable']);
    writeFileSync(f('blocks'), Buffer.from('two AES blocks, 32 bytes exactly'));
    ok([...login, '--encrypt', '-m', 'AES-ECB', '--id', 'c2', '-i', f('blocks'), '-o', f('blocks.ecb')]);
    ok([...login, '--read-object', '--type', 'secrkey', '--id', 'c2', '-o', f('ecb.key')]);
    execFileSync('openssl', ['enc', '-aes-256-ecb', '-nopad', '-K', readFileSync(f('ecb.key')).toString('hex'), '-in', f('blocks'), '-out', f('blocks.openssl')]);
    assert.deepEqual(readFileSync(f('blocks.ecb')), readFileSync(f('blocks.openssl')));
    ok([...login, '--decrypt', '-m', 'AES-ECB', '--id', 'c2', '-i', f('blocks.ecb'), '-o', f('blocks.back')]);
    assert.equal(readFileSync(f('blocks.back'), 'utf8'), 'two AES blocks, 32 bytes exactly');

    // What only a client of protocol version 2 (p11-kit 0.25.6 and later) carries: ECDSA-SHA256 over
    // the message, the hashed RSA-PSS mechanisms, AES-CBC-PAD with its IV. p11-kit 0.24's client
    // (Debian 12's) refuses them itself with CKR_MECHANISM_INVALID before anything reaches the bridge.
    // COFFER_P11_KIT_CLIENT runs this file with another client build (docs/pkcs11.md "Clients tested").
    const versions = [...bridge.stderr().matchAll(/"event":"p11\.connection\.opened"[^\n]*"version":(\d)/g)].map((m) => Number(m[1]));
    const version = versions[versions.length - 1] ?? assert.fail('the bridge logs each connection\'s version');
    console.log(`p11-kit client ${P11_KIT_CLIENT}: protocol version ${version}`);
    const v2Only: readonly (readonly string[])[] = [
      [...login, '--sign', '--id', 'e1', '-m', 'ECDSA-SHA256', '-i', f('msg'), '-o', f('ec256.sig'), '--signature-format', 'openssl'],
      [...login, '--sign', '--id', 'a1', '-m', 'SHA384-RSA-PKCS-PSS', '--mgf', 'MGF1-SHA384', '-i', f('msg'), '-o', f('pss384.sig')],
      [...login, '--encrypt', '--id', 'c1', '-m', 'AES-CBC-PAD', '--iv', '000102030405060708090a0b0c0d0e0f', '-i', f('msg'), '-o', f('cbc.ct')],
    ];
    if (version >= 2) {
      for (const args of v2Only) ok(args);
      assert.match(openssl(['dgst', '-sha256', '-verify', f('ec.pem'), '-signature', f('ec256.sig'), f('msg')]), /Verified OK/);
      assert.match(openssl(['dgst', '-sha384', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1', '-verify', f('rsa.pem'), '-signature', f('pss384.sig'), f('msg')]), /Verified OK/);
      ok([...login, '--decrypt', '--id', 'c1', '-m', 'AES-CBC-PAD', '--iv', '000102030405060708090a0b0c0d0e0f', '-i', f('cbc.ct'), '-o', f('cbc.pt')]);
      assert.equal(readFileSync(f('cbc.pt'), 'utf8'), message);
      assert.equal(readFileSync(f('cbc.ct')).length, 48, 'PKCS#7 padding to whole blocks');
    } else {
      for (const args of v2Only) assert.match(run(args).stderr, /CKR_MECHANISM_INVALID/, args.join(' '));
    }

    // OpenSC's own conformance checks on this token: random, digests, RSA signatures (single and
    // multi-part), verification and OAEP decryption with the keys made above.
    assert.match(ok([...login, '--test']), /No errors/);

    // A public key from outside (C_CreateObject), then a signature OpenSSL made verified by the token.
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('outside.key')]);
    openssl(['pkey', '-in', f('outside.key'), '-pubout', '-outform', 'DER', '-out', f('outside.der')]);
    openssl(['dgst', '-sha256', '-sign', f('outside.key'), '-out', f('outside.sig'), f('msg')]);
    ok([...login, '--write-object', f('outside.der'), '--type', 'pubkey', '--id', 'd1', '--label', 'p11-imported']);
    ok([...login, '--read-object', '--type', 'pubkey', '--id', 'd1', '-o', f('outside.back.der')]);
    assert.deepEqual(readFileSync(f('outside.back.der')), readFileSync(f('outside.der')), 'the token shows the key it was given');
    assert.match(ok([...login, '--verify', '--id', 'd1', '-m', 'ECDSA', '-i', f('digest'), '--signature-file', f('outside.sig'), '--signature-format', 'openssl']), /Signature is valid/);
    const forged = readFileSync(f('outside.sig'));
    forged[forged.length - 3] = forged[forged.length - 3]! ^ 1;
    writeFileSync(f('forged.sig'), forged);
    const forgedRun = run([...login, '--verify', '--id', 'd1', '-m', 'ECDSA', '-i', f('digest'), '--signature-file', f('forged.sig'), '--signature-format', 'openssl']);
    assert.match(forgedRun.stdout + forgedRun.stderr, /Invalid signature|CKR_SIGNATURE_INVALID/, JSON.stringify(forgedRun));
    assert.doesNotMatch(forgedRun.stdout, /Signature is valid/);

    // The objects are cluster objects: the SDK finds them under the same handles' labels.
    const sdk = await Cluster.connect({ endpoints: dev.nodes.map((n) => ({ host: n.host, port: n.port })), ca: dev.customerCaPem, credentials: { username: dev.cryptoUser.name, password: dev.cryptoUser.password } });
    try {
      const labels = await Promise.all((await sdk.findKeys({})).map(async (k) => (await k.attributes()).label));
      for (const label of ['p11-ec', 'p11-rsa', 'p11-aes']) assert.ok(labels.includes(label), `the SDK sees ${label}`);
    } finally {
      await sdk.close();
    }

    // Delete through PKCS#11: gone from the listing.
    ok([...login, '--delete-object', '--type', 'secrkey', '--id', 'c1']);
    assert.doesNotMatch(ok([...login, '--list-objects']), /p11-aes/);

    assert.ok(!bridge.stderr().includes(dev.cryptoUser.password), 'no password in the bridge log');
    const code = await new Promise<number | null>((done) => {
      bridge.child.once('exit', done);
      bridge.child.kill('SIGTERM');
    });
    assert.equal(code, 0, bridge.stderr());
    assert.ok(!existsSync(socket), 'the socket is removed');
  } finally {
    bridge.child.kill('SIGKILL');
  }
});

test('coffer pkcs11 with two --cluster-config files: two slots, a login and the keys of each cluster apart', { skip: missing, timeout: 300_000 }, async () => {
  const first = await startDevelopmentCluster({ dir: join(dir, 'slot-1'), nodes: 1 });
  const second = await startDevelopmentCluster({ dir: join(dir, 'slot-2'), nodes: 1 });
  const socket = join(dir, 'slots.sock');
  const env = { ...process.env };
  delete env['COFFER_CLUSTER_CONFIG'];
  const bridge = await startBridge(socket, env, ['--cluster-config', join(first.dir, CLUSTER_FILE), '--cluster-config', join(second.dir, CLUSTER_FILE)]);
  try {
    const address = bridge.ready['P11_KIT_SERVER_ADDRESS'] ?? assert.fail('no address');
    const ok = (args: readonly string[]): string => {
      const r = tool(address, args);
      assert.equal(r.code, 0, `pkcs11-tool ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const slots = ok(['--list-slots']);
    assert.match(slots, /Slot 0 \(0x1\): Coffer cluster coffer-1\n\s+token label\s+: coffer-1/);
    assert.match(slots, /Slot 1 \(0x2\): Coffer cluster coffer-2\n\s+token label\s+: coffer-2/);
    const pinOf = (d: DevelopmentCluster): string => `${d.cryptoUser.name}:${d.cryptoUser.password}`;
    // A key made in slot 2 with the second cluster's user is that cluster's, and not the first's.
    ok(['--slot', '2', '--login', '--pin', pinOf(second), '--keygen', '--key-type', 'AES:32', '--label', 'in-slot-2']);
    assert.match(ok(['--slot', '2', '--login', '--pin', pinOf(second), '--list-objects']), /in-slot-2/);
    assert.doesNotMatch(ok(['--slot', '1', '--login', '--pin', pinOf(first), '--list-objects']), /in-slot-2/);
    const sdk = await Cluster.connect({ endpoints: second.nodes.map((n) => ({ host: n.host, port: n.port })), ca: second.customerCaPem, credentials: { username: second.cryptoUser.name, password: second.cryptoUser.password } });
    try {
      assert.equal((await sdk.findKeys({ label: 'in-slot-2' })).length, 1);
    } finally {
      await sdk.close();
    }
    // Each slot takes its own cluster's users only.
    const crossed = tool(address, ['--slot', '1', '--login', '--pin', pinOf(second), '--list-objects']);
    assert.notEqual(crossed.code, 0);
    assert.match(crossed.stderr, /CKR_PIN_INCORRECT/);
  } finally {
    bridge.child.kill('SIGTERM');
    await first.stop();
    await second.stop();
  }
});

test('coffer pkcs11 refuses bad usage with COFFER_CLI_USAGE', () => {
  const run = (args: readonly string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } => {
    try {
      execFileSync(process.execPath, [MAIN, 'pkcs11', ...args], { env: { PATH: process.env['PATH'], ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { status: 0, stderr: '' };
    } catch (e) {
      const x = e as { status: number | null; stderr: string };
      return { status: x.status, stderr: x.stderr };
    }
  };
  const noSocket = run([]);
  assert.equal(noSocket.status, 2);
  assert.match(noSocket.stderr, /COFFER_CLI_USAGE.*--socket PATH is required/);
  const noCluster = run(['--socket', join(dir, 'never.sock')]);
  assert.equal(noCluster.status, 2);
  assert.match(noCluster.stderr, /COFFER_CLI_USAGE.*no cluster/);
  writeFileSync(join(dir, 'taken'), '');
  const taken = run(['--socket', join(dir, 'taken')]);
  assert.equal(taken.status, 2);
  assert.match(taken.stderr, /COFFER_CLI_USAGE.*exists/);
  assert.ok(!existsSync(join(dir, 'never.sock')));
});
