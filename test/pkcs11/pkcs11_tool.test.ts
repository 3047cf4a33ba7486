// The real client: Debian's pkcs11-tool (OpenSC) loading p11-kit's client module, which speaks the
// RPC to the bridge on a temporary socket (docs/pkcs11.md "Tested with"). The bridge runs the test
// backend (module info, one slot and token, a mechanism list, sessions, random bytes). What the
// tool prints is checked against what the backend holds, and the frames the client sent, recorded
// by a proxy, are decoded and checked against the protocol description.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startPkcs11Server } from '../../src/pkcs11/server.js';
import { StreamDecoder } from '../../src/pkcs11/rpc_transport.js';
import { decodeRequest } from '../../src/pkcs11/rpc_messages.js';
import type { ProtocolVersion } from '../../src/pkcs11/rpc_codec.js';
import { minimalBackend } from './minimal_backend.js';
import { joined, pkcs11Tool, realClientMissing, recordingProxy } from './real_client.js';

const missing = realClientMissing();
if (missing !== undefined) console.log(`pkcs11-tool tests skipped: ${missing}`);

test('pkcs11-tool through p11-kit-client.so: info, slots, mechanisms, random', { skip: missing }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-tool-'));
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const server = await startPkcs11Server({ socketPath: join(dir, 'bridge.sock'), backend: minimalBackend(), logger, onBug: (e) => assert.fail(String(e)) });
  const proxy = await recordingProxy(join(dir, 'proxy.sock'), server.socketPath);
  try {
    const info = await pkcs11Tool(proxy.path, ['--show-info']);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /Cryptoki version 2\.40/);
    assert.match(info.stdout, /Manufacturer\s+Coffer/);
    assert.match(info.stdout, /Library\s+Coffer test backend \(ver 0\.1\)/);

    const slots = await pkcs11Tool(proxy.path, ['--list-slots']);
    assert.equal(slots.code, 0, slots.stderr);
    assert.match(slots.stdout, /Slot 0 \(0x1\): Coffer test slot/);
    assert.match(slots.stdout, /token label\s+: coffer-test-token/);
    assert.match(slots.stdout, /token manufacturer\s+: Coffer/);
    assert.match(slots.stdout, /token model\s+: p11 bridge/);
    assert.match(slots.stdout, /token flags\s+: rng, token initialized/);
    assert.match(slots.stdout, /firmware version\s+: 1\.2/);
    assert.match(slots.stdout, /serial num\s+: 00c0ffee/);
    assert.match(slots.stdout, /pin min\/max\s+: 8\/64/);

    const mechs = await pkcs11Tool(proxy.path, ['--list-mechanisms']);
    assert.equal(mechs.code, 0, mechs.stderr);
    for (const line of [
      /RSA-PKCS-KEY-PAIR-GEN, keySize=\{2048,4096\}, generate_key_pair/, /SHA256-RSA-PKCS, keySize=\{2048,4096\}, sign, verify/,
      /RSA-PKCS-PSS, keySize=\{2048,4096\}, sign, verify/, /ECDSA-KEY-PAIR-GEN, keySize=\{256,521\}, generate_key_pair/,
      /ECDSA, keySize=\{256,521\}, sign, verify/, /AES-KEY-GEN, keySize=\{16,32\}, generate/, /SHA256, digest/,
    ]) assert.match(mechs.stdout, line);

    const out1 = join(dir, 'r1');
    const out2 = join(dir, 'r2');
    assert.equal((await pkcs11Tool(proxy.path, ['--generate-random', '32', '-o', out1])).code, 0);
    assert.equal((await pkcs11Tool(proxy.path, ['--generate-random', '32', '-o', out2])).code, 0);
    const r1 = readFileSync(out1);
    assert.equal(r1.length, 32);
    assert.notDeepEqual(r1, readFileSync(out2));

    // What the real client offered, and what it could carry. p11-kit's client drops from the
    // mechanism list every mechanism it cannot encode: 0.24 (version 0) cannot carry ECDSA-SHA256
    // or AES-GCM, 0.25.0 and later can (rpc-message.c mechanism_has_no_parameters, serializers).
    const offered = logs.filter((l) => l['event'] === 'p11.connection.opened').map((l) => l['offered']);
    assert.ok(offered.length >= 5);
    const version = offered[0] as ProtocolVersion;
    if (version === 0) {
      assert.doesNotMatch(mechs.stdout, /ECDSA-SHA256/);
      assert.doesNotMatch(mechs.stdout, /AES-GCM/);
    } else {
      assert.match(mechs.stdout, /ECDSA-SHA256/);
      assert.match(mechs.stdout, /AES-GCM/);
    }

    // The recorded streams: a version byte, then frames that decode as the calls pkcs11-tool makes.
    const names = new Set<string>();
    for (const stream of proxy.streams) {
      const d = new StreamDecoder();
      d.push(joined(stream));
      for (let item = d.next(); item !== undefined; item = d.next()) {
        if (item.kind === 'version') assert.equal(item.offered, version);
        else names.add(decodeRequest(version, item.frame.body).name);
      }
    }
    for (const n of ['C_Initialize', 'C_GetInfo', 'C_GetSlotList', 'C_GetSlotInfo', 'C_GetTokenInfo', 'C_GetMechanismList', 'C_GetMechanismInfo', 'C_OpenSession', 'C_GenerateRandom', 'C_Finalize']) {
      assert.ok(names.has(n), `the real client sent ${n}`);
    }
  } finally {
    await proxy.close();
    await server.close();
  }
});
