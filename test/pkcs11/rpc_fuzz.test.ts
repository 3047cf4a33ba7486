// Seeded fuzz of the p11-kit stream decoder and message decoder (docs/architecture.md §9: bad input on
// every network surface). Inputs: random byte streams, and mutations of valid streams — every call's
// request in every version, plus what Debian's real client sent when it is installed. Each input
// either decodes or is refused with a CofferError; never another exception, never a hang (the run is
// bounded by ITERATIONS), and the decoder never holds more than the input plus one header. Then a
// live server takes mutated streams on real sockets and keeps serving a clean connection.
// P11_FUZZ_SEED replays a run.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { once } from 'node:events';
import { isCofferError } from '../../src/errors.js';
import { CALLS, type CallName } from '../../src/pkcs11/rpc_calls.js';
import type { ProtocolVersion } from '../../src/pkcs11/rpc_codec.js';
import { callInVersion, decodeRequest, encodeRequest } from '../../src/pkcs11/rpc_messages.js';
import { StreamDecoder, encodeFrame, negotiateVersion } from '../../src/pkcs11/rpc_transport.js';
import { startPkcs11Server } from '../../src/pkcs11/server.js';
import { mulberry32 } from '../helpers.js';
import { minimalBackend, SLOT_ID, CKF_SERIAL_SESSION } from './minimal_backend.js';
import { joined, pkcs11Tool, realClientMissing, recordingProxy } from './real_client.js';
import { RpcClient } from './rpc_client.js';
import { sampleFields } from './rpc_samples.js';

const ITERATIONS = 20_000;
const seed = Number(process.env['P11_FUZZ_SEED'] ?? Date.now() % 2 ** 31);
console.log(`p11 fuzz seed ${seed} (P11_FUZZ_SEED=${seed} replays it)`);

function validStreams(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of [0, 1, 2] as const) {
    for (const c of CALLS) {
      if (!callInVersion(c, v)) continue;
      const body = encodeRequest(v, c.name as CallName, sampleFields(c.request, v) as never);
      out.push(Uint8Array.from([v, ...encodeFrame(0x10 + c.id, body, new TextEncoder().encode('client'))]));
    }
  }
  return out;
}

async function capturedStreams(): Promise<Uint8Array[]> {
  if (realClientMissing() !== undefined) return [];
  const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-fuzz-'));
  const server = await startPkcs11Server({ socketPath: join(dir, 'b.sock'), backend: minimalBackend() });
  const proxy = await recordingProxy(join(dir, 'p.sock'), server.socketPath);
  try {
    await pkcs11Tool(proxy.path, ['--list-mechanisms']);
    await pkcs11Tool(proxy.path, ['--generate-random', '16', '-o', join(dir, 'r')]);
    return proxy.streams.map(joined);
  } finally {
    await proxy.close();
    await server.close();
  }
}

function mutate(rand: () => number, src: Uint8Array): Uint8Array {
  const b = Uint8Array.from(src);
  const at = Math.floor(rand() * b.length);
  switch (Math.floor(rand() * 5)) {
    case 0:
      for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      return b;
    case 1: return b.subarray(0, at);
    case 2: return Uint8Array.from([...b.subarray(0, at), Math.floor(rand() * 256), ...b.subarray(at)]);
    case 3: { // damage the body but keep the frame lengths true, so the message decoder sees it
      if (b.length > 14) { const i = 13 + Math.floor(rand() * (b.length - 13)); b[i] = (b[i] ?? 0) ^ (1 << Math.floor(rand() * 8)); }
      return b;
    }
    default: { // a length field set to something large
      if (b.length > 13) new DataView(b.buffer).setUint32(1 + 4 * (1 + Math.floor(rand() * 2)), Math.floor(rand() * 2 ** 32));
      return b;
    }
  }
}

function decodeAll(stream: Uint8Array, rand: () => number): void {
  const d = new StreamDecoder();
  let version: ProtocolVersion = 0;
  let at = 0;
  while (at < stream.length) { // arbitrary chunking
    const n = 1 + Math.floor(rand() * 64);
    d.push(stream.subarray(at, at + n));
    at += n;
    assert.ok(d.bufferedBytes <= stream.length + 12);
    for (let item = d.next(); item !== undefined; item = d.next()) {
      if (item.kind === 'version') version = negotiateVersion(item.offered);
      else {
        try {
          decodeRequest(version, item.frame.body);
        } catch (e) {
          if (!isCofferError(e)) throw e;
        }
      }
    }
  }
}

test('fuzz: random and mutated streams decode or are refused with CofferErrors only', async () => {
  const rand = mulberry32(seed);
  const valid = [...validStreams(), ...(await capturedStreams())];
  let refused = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = rand() < 0.2
      ? Uint8Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256))
      : mutate(rand, valid[Math.floor(rand() * valid.length)] ?? new Uint8Array(0));
    try {
      decodeAll(input, rand);
    } catch (e) {
      if (!isCofferError(e)) assert.fail(`seed ${seed} iteration ${i}: untyped ${e instanceof Error ? e.stack : String(e)}`);
      refused++;
    }
  }
  assert.ok(refused > 0, 'some inputs were refused');
});

test('fuzz: a live server takes mutated streams and keeps serving a clean connection', async () => {
  const rand = mulberry32(seed ^ 0x5a5a);
  const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-fuzz-live-'));
  const server = await startPkcs11Server({ socketPath: join(dir, 'b.sock'), backend: minimalBackend(), handshakeTimeoutMs: 200, partialFrameTimeoutMs: 200, onBug: (e) => assert.fail(String(e)) });
  const clean = await RpcClient.open(server.socketPath, 2);
  try {
    await clean.initialize();
    const valid = validStreams();
    for (let i = 0; i < 60; i++) {
      const s = connect(server.socketPath);
      s.on('error', () => undefined);
      s.resume(); // read the answers, or 'close' would wait for them
      await once(s, 'connect');
      s.write(mutate(rand, valid[Math.floor(rand() * valid.length)] ?? new Uint8Array(0)));
      s.end();
      await once(s, 'close');
    }
    const r = await clean.call('C_OpenSession', { slotId: SLOT_ID, flags: CKF_SERIAL_SESSION });
    assert.ok('response' in r);
  } finally {
    clean.close();
    await server.close();
  }
});
