// OpenSSH on the cluster through the bridge (docs/pkcs11.md "Tested with"), as a user keeps SSH keys
// in an HSM: `ssh-keygen -D p11-kit-client.so` lists the public keys of an EC P-256 and an RSA-2048
// pair the SDK made, equal to the SDK's own exports in OpenSSH's format; `ssh-agent` with the bridge
// added by `ssh-add -s` holds both, and `ssh-keygen -Y sign` signs a file with each through the agent
// (so through C_Sign on the cluster), which `ssh-keygen -Y verify` accepts (and refuses once the
// file changed). The PIN reaches OpenSSH through SSH_ASKPASS. Skipped, with the reason, where
// OpenSSH's client tools or p11-kit-client.so are missing — except under COFFER_REQUIRE_PKCS11=1,
// where that fails.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Key } from '../../src/client/index.js';
import { P11_KIT_CLIENT, clientsMissing } from './real_client.js';
import { run, startBridge, type Bridge } from './bridge_support.js';

const TOOLS = ['/usr/bin/ssh-keygen', '/usr/bin/ssh-agent', '/usr/bin/ssh-add'];
const missing = clientsMissing(TOOLS, 'openssh-client');
if (missing !== undefined) console.log(`OpenSSH tests skipped: ${missing}`);

let bridge: Bridge | undefined;
let env: NodeJS.ProcessEnv = {};
const f = (name: string): string => join(bridge?.dir ?? '', name);
/** Each pair's public key as one OpenSSH line (type and base64), converted from the SDK's PEM by ssh-keygen. */
const sshPublic = new Map<string, string>();

async function ok(file: string, args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(file, args, { ...env, ...extra }, '');
  assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

before(async () => {
  if (missing !== undefined) return;
  bridge = await startBridge('openssh');
  writeFileSync(f('pin'), bridge.pin);
  writeFileSync(f('askpass'), `#!/bin/sh\ncat '${f('pin')}'\n`);
  chmodSync(f('askpass'), 0o700);
  // SSH_ASKPASS_REQUIRE=force: OpenSSH asks the program for the PIN though it has no terminal.
  env = { P11_KIT_SERVER_ADDRESS: bridge.address, SSH_ASKPASS: f('askpass'), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
  const pairs: [string, Key][] = [
    ['ec', (await bridge.sdk.generateKeyPair({ curve: 'P-256', label: 'ssh-ec', id: Uint8Array.of(0x51) })).publicKey],
    ['rsa', (await bridge.sdk.generateKeyPair({ keyType: 'RSA', bits: 2048, label: 'ssh-rsa', id: Uint8Array.of(0x52) })).publicKey],
  ];
  for (const [kind, key] of pairs) {
    writeFileSync(f(`${kind}.pem`), await key.exportPublicPem());
    const line = (await ok('/usr/bin/ssh-keygen', ['-i', '-m', 'PKCS8', '-f', f(`${kind}.pem`)])).trim().split(' ').slice(0, 2).join(' ');
    sshPublic.set(kind, line);
    writeFileSync(f(`${kind}.pub`), `${line}\n`);
  }
  writeFileSync(f('data'), 'signed with a cluster key through ssh-agent');
});
after(async () => {
  await bridge?.close();
});

test('OpenSSH: ssh-keygen -D lists the cluster\'s public keys, as the SDK exports them', { skip: missing }, async () => {
  const lines = (await ok('/usr/bin/ssh-keygen', ['-D', P11_KIT_CLIENT])).split('\n').map((l) => l.trim().split(' ').slice(0, 2).join(' '));
  for (const [kind, line] of sshPublic) assert.ok(lines.includes(line), `the ${kind} key is listed`);
});

test('OpenSSH: ssh-agent holds the cluster\'s keys (ssh-add -s), and ssh-keygen -Y signs a file with each; ssh-keygen -Y verify accepts the signatures, not for a changed file', { skip: missing, timeout: 300_000 }, async () => {
  const agent = f('agent.sock');
  // -P: the agent loads only the providers it is told to (by default those under /usr/lib), here the
  // client under test wherever it is (COFFER_P11_KIT_CLIENT).
  const started = await ok('/usr/bin/ssh-agent', ['-a', agent, '-P', P11_KIT_CLIENT]);
  const pid = /SSH_AGENT_PID=(\d+)/.exec(started)?.[1];
  assert.ok(pid !== undefined, started);
  const withAgent = { SSH_AUTH_SOCK: agent };
  try {
    await ok('/usr/bin/ssh-add', ['-s', P11_KIT_CLIENT], withAgent);
    const held = await ok('/usr/bin/ssh-add', ['-L'], withAgent);
    for (const [kind, line] of sshPublic) {
      assert.ok(held.includes(line), `the agent holds the ${kind} key`);
      await ok('/usr/bin/ssh-keygen', ['-Y', 'sign', '-f', f(`${kind}.pub`), '-n', 'file', f('data')], withAgent);
      writeFileSync(f('allowed'), `signer ${line}\n`);
      const verify = ['-Y', 'verify', '-f', f('allowed'), '-I', 'signer', '-n', 'file', '-s', f('data.sig')];
      const good = await run('/usr/bin/ssh-keygen', verify, env, 'signed with a cluster key through ssh-agent');
      assert.equal(good.code, 0, `${kind}: ${good.stdout}${good.stderr}`);
      assert.match(good.stdout + good.stderr, /Good "file" signature for signer/);
      const changed = await run('/usr/bin/ssh-keygen', verify, env, 'signed with a cluster key through ssh-agent!');
      assert.notEqual(changed.code, 0, `${kind}: a changed file is refused`);
      await ok('/bin/rm', [f('data.sig')]);
    }
  } finally {
    process.kill(Number(pid), 'SIGTERM');
  }
});
