// The data plane over real TLS sockets on 127.0.0.1: a development device behind startDataPlane,
// the client Connection and a raw TLS socket for hostile input (docs/node.md, wire-protocol.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import type { Hsm } from '../../src/hsm/device.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import { verifyTlsAttestation } from '../../src/node/tls_identity.js';
import { activatedDeviceWithAlice } from './node_support.js';
import { Connection, NodeBusyError } from '../../src/client/connection.js';
import {
  FrameDecoder, FrameKind, OPS, decodeReply, encodeFrame, encodeRequest, fromWireError, type Frame, type OpName, type WireRequest, type WireResponse,
} from '../../src/formats/wire.js';
import { WIRE_FRAME_BYTES_MAX } from '../../src/formats/limits.js';
import { errorPayload } from '../../src/formats/wire_ops.js';
import { decodeWith } from '../../src/formats/wire_codec.js';
import { isCofferError, type ErrorCode } from '../../src/errors.js';

const ECDSA_SHA256 = { mechanism: 'CKM_ECDSA_SHA256' } as const;
let hsm: Hsm;
let dp: DataPlane;

before(async () => {
  hsm = await activatedDeviceWithAlice();
  dp = await startDataPlane({ hsm });
});
after(async () => {
  await dp.close();
});

function connect(plane: DataPlane = dp): Promise<Connection> {
  return Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
}
async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isCofferError(e, code), `expected ${code}`);
}
async function aliceSession(c: Connection): Promise<number> {
  const s = await c.openSession();
  await c.login(s, 'alice', 'alice-password', 'crypto-user');
  return s;
}

/** A raw TLS socket that collects frames and reports when the server closes it. */
async function rawSocket(plane: DataPlane = dp): Promise<{ socket: TLSSocket; frames: Frame[]; closed: Promise<void> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem, minVersion: 'TLSv1.3' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const frames: Frame[] = [];
  const decoder = new FrameDecoder();
  socket.on('data', (chunk: Buffer) => frames.push(...decoder.push(new Uint8Array(chunk))));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, frames, closed };
}
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}
const hello = (): Uint8Array => encodeRequest(1, 'HELLO', { versionMin: 1, versionMax: 1 });

test('login, EC P-256 key pair, SIGN over the wire verifies with node:crypto; VERIFY agrees', async () => {
  const c = await connect();
  assert.equal(c.hello.version, 1);
  const s = await aliceSession(c);
  const { publicHandle, privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' }, {}, { label: 'wire' });
  const data = new TextEncoder().encode('sign me over TLS');
  const sig = await c.sign(s, privateHandle, ECDSA_SHA256, data);
  const pub = createPublicKey(await c.exportPublic(s, publicHandle));
  assert.ok(nodeVerify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  assert.ok(!nodeVerify('sha256', new TextEncoder().encode('other'), { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  assert.equal(await c.verify(s, publicHandle, ECDSA_SHA256, data, sig), true);
  assert.equal(await c.verify(s, publicHandle, ECDSA_SHA256, new Uint8Array([1]), sig), false);
  assert.equal((await c.getAttributes(s, privateHandle)).label, 'wire');
  assert.equal((await c.random(s, 16)).length, 16);
  const aes = await c.generateKey(s, { keyType: 'AES', bits: 256 });
  const gcm = { mechanism: 'CKM_AES_GCM' } as const;
  const ct = await c.encrypt(s, aes, gcm, data);
  assert.deepEqual(new Uint8Array(await c.decrypt(s, aes, gcm, ct)), data);
  await c.destroy(s, aes);
  await rejectsWith(c.getAttributes(s, aes), 'COFFER_OBJECT_NOT_FOUND');
  const st = await c.status();
  assert.equal(st.provisioning, 'COMMISSIONED');
  assert.equal(st.connections, 1);
  c.close();
});

test('the TLS leaf is attested by the device identity key; another leaf is not', () => {
  assert.ok(verifyTlsAttestation(dp.tls.deviceCertificatePem, dp.tls.certificatePem, dp.tls.attestation));
  const bad = dp.tls.attestation.slice();
  bad[10] = (bad[10] ?? 0) ^ 1;
  assert.ok(!verifyTlsAttestation(dp.tls.deviceCertificatePem, dp.tls.certificatePem, bad));
});

test('64 requests in flight on one connection are all answered and matched by id', async () => {
  const c = await connect();
  const s = await aliceSession(c);
  const { publicHandle, privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' });
  const pub = createPublicKey(await c.exportPublic(s, publicHandle));
  const messages = Array.from({ length: 64 }, (_, i) => new TextEncoder().encode(`message ${i}`));
  const calls = messages.map((m, i) => (i % 2 === 0 ? c.sign(s, privateHandle, ECDSA_SHA256, m) : c.random(s, i)));
  assert.equal(c.inFlight, 64);
  const results = await Promise.all(calls);
  results.forEach((r, i) => {
    if (i % 2 === 0) assert.ok(nodeVerify('sha256', messages[i] ?? new Uint8Array(), { key: pub, dsaEncoding: 'ieee-p1363' }, r), `signature ${i}`);
    else assert.equal(r.length, i, `random ${i}`);
  });
  c.close();
});

test('a wrong password is COFFER_AUTH_FAILED; unauthorised and unopened things are typed errors', async () => {
  const c = await connect();
  const s = await c.openSession();
  await rejectsWith(c.login(s, 'alice', 'wrong-password', 'crypto-user'), 'COFFER_AUTH_FAILED');
  await rejectsWith(c.call('CREATE_USER', { session: s, name: 'bob', password: new TextEncoder().encode('bob-password'), role: 'crypto-user' }), 'COFFER_NOT_LOGGED_IN');
  await rejectsWith(c.random(999, 16), 'COFFER_SESSION_CLOSED');
  await rejectsWith(c.random(s, 16), 'COFFER_NOT_LOGGED_IN');
  c.close();
});

test('garbage, an oversize length or a truncated frame close that connection; the node keeps serving', async () => {
  const inputs: Array<[string, Uint8Array, boolean]> = [
    ['garbage after HELLO', new Uint8Array([0, 0, 0, 9, 0x77, 1, 2, 3, 4, 5, 6, 7, 8]), false],
    ['oversize length', new Uint8Array([0xff, 0xff, 0xff, 0xff]), false],
    ['truncated frame, then end', encodeRequest(2, 'STATUS', {}).subarray(0, 6), true],
    ['a frame shorter than its header', new Uint8Array([0, 0, 0, 3, 1, 0, 0]), false],
  ];
  for (const [what, bytes, endAfter] of inputs) {
    const raw = await rawSocket();
    raw.socket.write(hello());
    await until(() => raw.frames.length === 1, `${what}: HELLO answered`);
    raw.socket.write(bytes);
    if (endAfter) raw.socket.end();
    await raw.closed;
  }
  const first = await rawSocket();
  first.socket.write(encodeRequest(1, 'STATUS', {})); // not HELLO first
  await first.closed;
  assert.equal(first.frames.length, 0);
  await until(() => dp.load().connections === 0, 'every refused connection was dropped');
  const c = await connect();
  assert.equal((await c.status()).provisioning, 'COMMISSIONED');
  c.close();
});

test('an unknown op code gets an ERROR reply and the connection stays usable', async () => {
  const raw = await rawSocket();
  raw.socket.write(hello());
  raw.socket.write(encodeFrame(FrameKind.REQUEST, 7, 0x7777, new Uint8Array([1, 2, 3])));
  raw.socket.write(encodeRequest(8, 'STATUS', {}));
  await until(() => raw.frames.length === 3, 'three replies');
  const [, unknown, status] = raw.frames;
  assert.equal(unknown?.kind, FrameKind.ERROR);
  assert.equal(unknown?.requestId, 7);
  assert.equal(fromWireError(decodeWith(errorPayload, unknown?.payload ?? new Uint8Array())).code, 'COFFER_FORMAT_MALFORMED');
  assert.equal(status?.kind, FrameKind.RESPONSE);
  assert.equal(status?.op, OPS.STATUS.code);
  raw.socket.destroy();
});

test('a HELLO with no common version is answered COFFER_FORMAT_UNKNOWN_VERSION and closed', async () => {
  const raw = await rawSocket();
  raw.socket.write(encodeRequest(1, 'HELLO', { versionMin: 7, versionMax: 9 }));
  await raw.closed;
  assert.equal(raw.frames[0]?.kind, FrameKind.ERROR);
  assert.equal(fromWireError(decodeWith(errorPayload, raw.frames[0]?.payload ?? new Uint8Array())).code, 'COFFER_FORMAT_UNKNOWN_VERSION');
});

test('over the in-flight limit the node answers BUSY with a retry hint instead of queueing', async () => {
  const small = await startDataPlane({ hsm, inFlightMax: 2, retryAfterMs: 33 });
  try {
    const c = await connect(small);
    assert.equal(c.hello.inFlightMax, 2);
    const s = await aliceSession(c);
    const { privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' });
    const results = await Promise.allSettled(Array.from({ length: 16 }, () => c.sign(s, privateHandle, ECDSA_SHA256, new Uint8Array([1]))));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const busy = results.filter((r) => r.status === 'rejected' && r.reason instanceof NodeBusyError && r.reason.retryAfterMs === 33 && r.reason.code === 'COFFER_NODE_BUSY');
    assert.equal(ok, 2);
    assert.equal(busy.length, 14);
    c.close();
  } finally {
    await small.close();
  }
});

test('closing a connection closes its sessions', async () => {
  const before = hsm.status().sessions;
  const c = await connect();
  const s = await aliceSession(c);
  await c.openSession();
  assert.equal(hsm.status().sessions, before + 2);
  const sessionKey = await c.generateKey(s, { keyType: 'AES', bits: 128 }, { token: false });
  assert.ok(sessionKey >= 2 ** 40, 'a session object handle travels as u64');
  assert.equal(hsm.objects().sessionObjectCount, 1);
  c.close();
  await until(() => hsm.objects().sessionObjectCount === 0, 'session objects die with the connection');
  await until(() => hsm.status().sessions === before, 'sessions closed with the connection');
  const again = await connect();
  const s2 = await aliceSession(again);
  const found = await again.call('FIND', { session: s2, filter: { label: 'wire' }, limit: 100 });
  assert.equal(found.objects.length, 1);
  assert.equal(found.more, false);
  again.close();
});

test('TLS below 1.3 is refused', async () => {
  const socket = tlsConnect({ host: '127.0.0.1', port: dp.port, ca: dp.tls.certificatePem, maxVersion: 'TLSv1.2' });
  await assert.rejects(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)));
  socket.destroy();
});

test('a lost connection rejects every pending call with COFFER_CONNECTION_LOST', async () => {
  const plane = await startDataPlane({ hsm });
  const c = await connect(plane);
  const pending = Array.from({ length: 8 }, () => c.status());
  const closing = plane.close();
  for (const p of pending) await rejectsWith(p, 'COFFER_CONNECTION_LOST');
  await closing;
  await rejectsWith(c.status(), 'COFFER_CONNECTION_LOST');
});

test('a peer that never completes the TLS handshake or never sends HELLO is dropped after the timeout', async () => {
  const quick = await startDataPlane({ hsm, handshakeTimeoutMs: 200 });
  try {
    const raw = await rawSocket(quick);
    const t0 = Date.now();
    await raw.closed; // TLS done, no HELLO
    assert.ok(Date.now() - t0 >= 150, 'not before the timeout');
    const tcp = netConnect({ host: '127.0.0.1', port: quick.port }); // no TLS at all
    tcp.on('error', () => undefined);
    await new Promise<void>((resolve) => tcp.once('close', () => resolve()));
    const c = await connect(quick); // a connection that said HELLO outlives the timeout
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await c.status()).provisioning, 'COMMISSIONED');
    c.close();
  } finally {
    await quick.close();
  }
});

test('a slow client that never reads its replies: the node stops reading it at the byte budget, others are served', async () => {
  const budget = WIRE_FRAME_BYTES_MAX; // the smallest budget allowed: one maximal frame
  const plane = await startDataPlane({ hsm, connectionBytesMax: budget });
  try {
    const raw = await rawSocket(plane);
    const ask = async <N extends OpName>(id: number, name: N, request: WireRequest<N>): Promise<WireResponse<N>> => {
      const seen = raw.frames.length;
      raw.socket.write(encodeRequest(id, name, request));
      await until(() => raw.frames.length > seen, `${name} answered`);
      const reply = decodeReply(name, raw.frames[seen] as Frame);
      return reply.kind === 'response' ? reply.response : assert.fail(`${name}: ${reply.kind}`);
    };
    await ask(1, 'HELLO', { versionMin: 1, versionMax: 1 });
    const { session } = await ask(2, 'OPEN_SESSION', {});
    await ask(3, 'LOGIN', { session, name: 'alice', password: new TextEncoder().encode('alice-password'), role: 'crypto-user' });
    const { handle } = await ask(4, 'GENERATE_KEY', { session, spec: { keyType: 'AES', bits: 256 }, template: {} });
    const answered = raw.frames.length;
    raw.socket.pause(); // from here on the client reads nothing
    const count = 48;
    const data = new Uint8Array(1024 * 1024).fill(7); // 48 MiB of requests, 48 MiB of replies
    const ctr = { mechanism: 'CKM_AES_CTR', iv: new Uint8Array(16) } as const;
    for (let i = 0; i < count; i++) raw.socket.write(encodeRequest(100 + i, 'ENCRYPT', { session, handle, params: ctr, data }));
    let heldMax = 0;
    for (let i = 0; i < 40; i++) { // 2 s of watching: the node must settle, not keep reading
      heldMax = Math.max(heldMax, plane.bytesHeld());
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`slow client: the node held at most ${heldMax} bytes for it (budget ${budget})`);
    assert.ok(heldMax <= budget + 4 * 1024 * 1024, `held ${heldMax} bytes: bounded by the budget plus about one read`);
    assert.ok(raw.socket.writableLength > 0, 'the node stopped reading, so the client could not send everything');
    const other = await connect(plane); // everyone else is still served
    assert.equal((await other.status()).provisioning, 'COMMISSIONED');
    other.close();
    raw.socket.resume(); // once the client reads, the node reads again and every request is answered
    await until(() => raw.frames.length === answered + count, 'every reply arrived');
    assert.ok(raw.frames.slice(answered).every((f) => f.kind === FrameKind.RESPONSE && f.payload.length === 4 + data.length));
    raw.socket.destroy();
  } finally {
    await plane.close();
  }
});
