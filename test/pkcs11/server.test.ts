// The p11-kit RPC server over a real Unix socket, with a small client of the protocol
// (rpc_client.ts): version negotiation, C_Initialize's handshake string, the two-call buffer
// convention, CKR_FUNCTION_NOT_SUPPORTED, and the refusals — an answered error for bad arguments, a
// closed connection (with its reason logged) for bad frames, unknown calls and slow peers — none of
// which disturbs another connection. Nothing here waits on a clock it asserts: timeouts are set
// short and the test waits for the close event.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { startPkcs11Server, type Pkcs11Server } from '../../src/pkcs11/server.js';
import { CKM, CKR } from '../../src/pkcs11/constants.js';
import { encodeFrame } from '../../src/pkcs11/rpc_transport.js';
import { encodeRequest } from '../../src/pkcs11/rpc_messages.js';
import { RpcClient } from './rpc_client.js';
import { CKF_SERIAL_SESSION, SLOT_ID, minimalBackend, type MinimalBackend } from './minimal_backend.js';

interface Running {
  readonly server: Pkcs11Server;
  readonly backend: MinimalBackend;
  readonly logs: Record<string, unknown>[];
  readonly path: string;
}

async function start(options: { partialFrameTimeoutMs?: number; handshakeTimeoutMs?: number } = {}): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-p11-'));
  const path = join(dir, 'p11.sock');
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const backend = minimalBackend();
  const server = await startPkcs11Server({ socketPath: path, backend, logger, onBug: (e) => assert.fail(`bug: ${String(e)}`), ...options });
  return { server, backend, logs, path };
}

async function session(c: RpcClient): Promise<bigint> {
  const r = await c.call('C_OpenSession', { slotId: SLOT_ID, flags: CKF_SERIAL_SESSION });
  assert.ok('response' in r);
  return r.response.session;
}

test('the handshake settles on the highest version both speak; the socket is owner-only', async () => {
  const { server, path } = await start();
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    for (const [offer, expected] of [[0, 0], [1, 1], [2, 2], [7, 2], [255, 2]] as const) {
      const c = await RpcClient.open(path, offer);
      assert.equal(c.version, expected, `offer ${offer}`);
      c.close();
    }
  } finally {
    await server.close();
  }
  assert.equal(existsSync(path), false, 'the socket file is removed on close');
});

test('C_Initialize must come first and carry p11-kit\'s handshake string', async () => {
  const { server, path, logs } = await start();
  const c = await RpcClient.open(path, 2);
  try {
    assert.deepEqual(await c.call('C_GetInfo', {}), { rv: CKR.CRYPTOKI_NOT_INITIALIZED });
    const bad = await c.call('C_Initialize', { handshake: new TextEncoder().encode('HELLO'), reservedPresent: 0, reserved: new Uint8Array(1) });
    assert.deepEqual(bad, { rv: CKR.GENERAL_ERROR });
    assert.ok(logs.some((l) => l['code'] === 'COFFER_P11_HANDSHAKE_INVALID'));
    assert.deepEqual(await c.initialize(), { response: {} });
    assert.deepEqual(await c.initialize(), { rv: CKR.CRYPTOKI_ALREADY_INITIALIZED });
    const info = await c.call('C_GetInfo', {});
    assert.ok('response' in info);
    assert.equal(info.response.manufacturerId, 'Coffer'.padEnd(32, ' '));
    assert.deepEqual(info.response.cryptokiVersion, { major: 2, minor: 40 });
    assert.deepEqual(await c.call('C_Finalize', {}), { response: {} });
    assert.deepEqual(await c.call('C_GetInfo', {}), { rv: CKR.CRYPTOKI_NOT_INITIALIZED });
  } finally {
    c.close();
    await server.close();
  }
});

test('a function the backend lacks answers CKR_FUNCTION_NOT_SUPPORTED', async () => {
  const { server, path } = await start();
  const c = await RpcClient.open(path, 0);
  try {
    await c.initialize();
    const s = await session(c);
    assert.deepEqual(await c.call('C_Login', { session: s, userType: 1n, pin: new TextEncoder().encode('alice:password1') }), { rv: CKR.FUNCTION_NOT_SUPPORTED });
    assert.deepEqual(await c.call('C_SignInit', { session: s, mechanism: { type: CKM.ECDSA, parameter: { kind: 'none' } }, key: 1n }), { rv: CKR.FUNCTION_NOT_SUPPORTED });
  } finally {
    c.close();
    await server.close();
  }
});

test('the two-call convention: length query, buffer too small (length only), then the data', async () => {
  const { server, path } = await start();
  const c = await RpcClient.open(path, 2);
  try {
    await c.initialize();
    const slots = await c.call('C_GetSlotList', { tokenPresent: 1, slotList: { present: false, length: 0 } });
    assert.deepEqual(slots, { response: { slotList: { lengthOnly: 1 } } });
    assert.deepEqual(await c.call('C_GetSlotList', { tokenPresent: 1, slotList: { present: true, length: 1 } }), { response: { slotList: [SLOT_ID] } });
    const s = await session(c);
    assert.deepEqual(await c.call('C_GenerateRandom', { session: s, randomData: { present: false, length: 0 } }), { response: { randomData: { lengthOnly: 0 } } });
    const small = await c.call('C_GenerateRandom', { session: s, randomData: { present: true, length: 0 } });
    assert.deepEqual(small, { response: { randomData: new Uint8Array(0) } });
    const r = await c.call('C_GenerateRandom', { session: s, randomData: { present: true, length: 32 } });
    assert.ok('response' in r && r.response.randomData instanceof Uint8Array);
    assert.equal(r.response.randomData.length, 32);
    assert.deepEqual(await c.call('C_GetSlotInfo', { slotId: 9n }), { rv: CKR.SLOT_ID_INVALID });
  } finally {
    c.close();
    await server.close();
  }
});

test('bad arguments are answered with an error and the connection goes on', async () => {
  const { server, path, logs } = await start();
  const c = await RpcClient.open(path, 2);
  try {
    await c.initialize();
    const s = await session(c);
    // C_EncryptInit with a vendor mechanism: its parameter layout is unknown
    const vendor = await c.raw(Uint8Array.from(Buffer.from(`0000001d00000003754d75${s.toString(16).padStart(16, '0')}800000010000000000000002`, 'hex')));
    assert.deepEqual(Buffer.from(vendor.body).toString('hex'), `000000000000000175${CKR.MECHANISM_INVALID.toString(16).padStart(16, '0')}`);
    // C_GetSessionInfo cut short: malformed, answered CKR_DEVICE_ERROR as p11-kit answers its parse errors
    const cut = await c.raw(encodeRequest(2, 'C_GetSessionInfo', { session: s }).subarray(0, 12));
    assert.equal(Buffer.from(cut.body).toString('hex'), `000000000000000175${CKR.DEVICE_ERROR.toString(16).padStart(16, '0')}`);
    assert.ok(logs.some((l) => l['event'] === 'p11.call.refused' && l['code'] === 'COFFER_P11_MECHANISM_UNCARRIED'));
    const info = await c.call('C_GetSessionInfo', { session: s });
    assert.ok('response' in info);
  } finally {
    c.close();
    await server.close();
  }
});

test('pipelined requests are answered, each with its own code', async () => {
  const { server, path } = await start();
  const c = await RpcClient.open(path, 1);
  try {
    await c.initialize();
    const [a, b] = await Promise.all([c.call('C_GetInfo', {}), c.call('C_GetSlotList', { tokenPresent: 0, slotList: { present: true, length: 4 } })]);
    assert.ok('response' in a && 'response' in b);
    assert.deepEqual(b.response.slotList, [SLOT_ID]);
  } finally {
    c.close();
    await server.close();
  }
});

test('an oversize frame or an unknown call closes that connection, logged, and no other', async () => {
  const { server, path, logs, backend } = await start();
  const other = await RpcClient.open(path, 2);
  try {
    await other.initialize();
    const s = await session(other);
    const big = await RpcClient.open(path, 2);
    const header = new Uint8Array(12);
    new DataView(header.buffer).setUint32(0, 0x10);
    new DataView(header.buffer).setUint32(8, 0xffff_fff0);
    big.socket.write(header);
    await big.closed;
    assert.ok(logs.some((l) => l['reason'] === 'framing error' && l['code'] === 'COFFER_P11_FRAME_INVALID' && (l['detail'] as { reason?: string }).reason === 'body too long'));
    const unknown = await RpcClient.open(path, 0);
    unknown.socket.write(encodeFrame(0x10, Uint8Array.from(Buffer.from('0000004200000000', 'hex'))));
    await unknown.closed;
    assert.ok(logs.some((l) => l['reason'] === 'not a p11-kit call' && l['code'] === 'COFFER_P11_CALL_UNKNOWN'));
    const zero = await RpcClient.open(path, 0);
    zero.socket.write(encodeFrame(1, encodeRequest(0, 'C_GetInfo', {})).map((b, i) => (i < 4 ? 0 : b)));
    await zero.closed;
    const info = await other.call('C_GetSessionInfo', { session: s });
    assert.ok('response' in info, 'the other connection is untouched');
    assert.equal(backend.sessionsOpen(), 1);
  } finally {
    other.close();
    await server.close();
  }
});

test('a peer that stalls in its version byte or mid-frame is closed; closing releases its sessions', async () => {
  const { server, path, logs, backend } = await start({ handshakeTimeoutMs: 100, partialFrameTimeoutMs: 100 });
  try {
    const silent = connect(path);
    await once(silent, 'connect');
    await once(silent, 'close');
    assert.ok(logs.some((l) => l['reason'] === 'no version byte in time'));
    const early = await RpcClient.open(path, 2); // a frame begun right after the version byte
    early.socket.write(encodeFrame(0x10, encodeRequest(2, 'C_GetInfo', {})).subarray(0, 5));
    await early.closed;
    const c = await RpcClient.open(path, 2);
    await c.initialize();
    await session(c);
    assert.equal(backend.sessionsOpen(), 1);
    c.socket.write(encodeFrame(0x77, encodeRequest(2, 'C_GetInfo', {})).subarray(0, 7));
    await c.closed;
    assert.ok(logs.some((l) => l['reason'] === 'frame not whole in time' && l['code'] === 'COFFER_P11_TIMEOUT'));
    while (backend.released() < 1) await new Promise((r) => setImmediate(r));
    assert.equal(backend.sessionsOpen(), 0);
    assert.equal(server.connections(), 0);
  } finally {
    await server.close();
  }
});
