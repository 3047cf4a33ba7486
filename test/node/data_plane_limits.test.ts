// The data plane's limits against hostile and idle peers, over real sockets (docs/node.md "Limits"):
// a partly sent frame, an idle connection, a request in flight that outlasts the idle limit, the
// connection caps (total and per address), a second HELLO, and the SDK riding out idle closes.
// Timeouts are short here; every wait is for an event (a close, a counter), never a duration.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, open as fsOpen, openSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hsm } from '../../src/hsm/device.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import { Connection } from '../../src/client/connection.js';
import { Cluster } from '../../src/client/cluster.js';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameKind, OPS, encodeRequest, fromWireError, type Frame } from '../../src/formats/wire.js';
import { WIRE_FRAME_BYTES_MAX } from '../../src/formats/limits.js';
import { errorPayload } from '../../src/formats/wire_ops.js';
import { decodeWith } from '../../src/formats/wire_codec.js';
import { isCofferError } from '../../src/errors.js';
import type { Session } from '../../src/hsm/device.js';
import { activatedDeviceWithAlice } from './node_support.js';
import { ALICE, startTestCluster } from '../client/support.js';

const ECDSA_SHA256 = { mechanism: 'CKM_ECDSA_SHA256' } as const;
let hsm: Hsm;

before(async () => {
  hsm = await activatedDeviceWithAlice();
});

async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** `p`, or a failure naming `what` after a generous bound (the event never came). */
async function within<T>(p: Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting: ${what}`)), timeoutMs)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw TLS socket that collects frames and tells when the node closed it. */
async function rawSocket(plane: DataPlane): Promise<{ socket: TLSSocket; frames: Frame[]; closed: Promise<void>; isClosed: () => boolean }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem, minVersion: 'TLSv1.3' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const frames: Frame[] = [];
  const decoder = new FrameDecoder();
  socket.on('data', (chunk: Buffer) => frames.push(...decoder.push(new Uint8Array(chunk))));
  socket.on('error', () => undefined);
  let isClosed = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    isClosed = true;
    resolve();
  }));
  return { socket, frames, closed, isClosed: () => isClosed };
}

/** A raw socket that has said HELLO and got its answer. */
async function helloSocket(plane: DataPlane): ReturnType<typeof rawSocket> {
  const raw = await rawSocket(plane);
  raw.socket.write(encodeRequest(1, 'HELLO', { versionMin: 1, versionMax: 1 }));
  await until(() => raw.frames.length === 1, 'HELLO answered');
  return raw;
}

/** A TCP connection (no TLS) that resolves once connected; `closed` settles when the node drops it. */
function tcp(port: number, localAddress = '127.0.0.1'): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = netConnect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

test('peers that declare a maximal frame and send a few bytes hold a few bytes each, and are closed after the partial-frame timeout', async () => {
  const plane = await startDataPlane({ hsm, partialFrameTimeoutMs: 300 });
  try {
    const peers = 24;
    const length = WIRE_FRAME_BYTES_MAX - 4; // the largest frame the node accepts
    const start = new Uint8Array(FRAME_HEADER_BYTES + 10); // length, kind, request id, op, 10 bytes of payload
    new DataView(start.buffer).setUint32(0, length);
    start[4] = FrameKind.REQUEST;
    new DataView(start.buffer).setUint16(9, OPS.ENCRYPT.code);
    const raws = await Promise.all(Array.from({ length: peers }, () => helloSocket(plane)));
    const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
    for (const r of raws) r.socket.write(start);
    await until(() => plane.bytesHeld() === peers * start.length, 'every peer\'s bytes arrived');
    const grewBytes = process.memoryUsage().arrayBuffers - arrayBuffersBefore;
    console.log(`${peers} peers declaring ${length + 4}-byte frames: the node holds ${plane.bytesHeld()} bytes; array buffers grew ${grewBytes} bytes`);
    assert.ok(grewBytes < 8 * 1024 * 1024, `${peers} stalled maximal frames made the node allocate ${grewBytes} bytes`);
    await within(Promise.all(raws.map((r) => r.closed)), 'the partial-frame timeout closes each of them');
    assert.equal(plane.stats().closedPartialFrameTimeout, peers);
    assert.equal(plane.stats().closedIdleTimeout, 0);
    await until(() => plane.bytesHeld() === 0 && plane.load().connections === 0, 'nothing held once they are gone');
    const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
    assert.equal((await c.status()).provisioning, 'COMMISSIONED'); // others are still served
    c.close();
  } finally {
    await plane.close();
  }
});

test('a frame sent in pieces within the partial-frame timeout is served', async () => {
  const plane = await startDataPlane({ hsm, partialFrameTimeoutMs: 60_000 });
  try {
    const raw = await helloSocket(plane);
    const status = encodeRequest(2, 'STATUS', {});
    for (const b of status) raw.socket.write(new Uint8Array([b])); // byte by byte, one write each
    await until(() => raw.frames.length === 2, 'STATUS answered');
    assert.equal(raw.frames[1]?.kind, FrameKind.RESPONSE);
    raw.socket.destroy();
  } finally {
    await plane.close();
  }
});

test('an idle connection is closed after the idle timeout, raw or through the client; its sessions close with it', async () => {
  const plane = await startDataPlane({ hsm, idleTimeoutMs: 200 });
  try {
    const sessionsBefore = hsm.status().sessions;
    const raw = await helloSocket(plane);
    const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
    const s = await c.openSession();
    await c.login(s, 'alice', 'alice-password', 'crypto-user');
    assert.equal(hsm.status().sessions, sessionsBefore + 1);
    await within(raw.closed, 'the idle raw connection is closed');
    await until(() => c.isLost, 'the client connection was closed');
    assert.equal(plane.stats().closedIdleTimeout, 2);
    await until(() => hsm.status().sessions === sessionsBefore, 'the idle connection\'s session was closed');
    assert.ok(isCofferError(await c.status().catch((e: unknown) => e), 'COFFER_CONNECTION_LOST'));
  } finally {
    await plane.close();
  }
});

/**
 * Occupies every libuv thread-pool thread of this process (node's asynchronous signing runs there)
 * with an open() of a FIFO that blocks until a writer comes: a request that signs stays in flight,
 * deterministically, until `release()`.
 */
/** Makes the FIFO first (a child process: slow on a busy machine); `hold()` then takes every
 * thread of the pool at once, with nothing slow between it and the request that must wait. */
function threadPoolHold(): { hold: () => { release: () => Promise<void> }; discard: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-fifo-'));
  const fifo = join(dir, 'hold');
  execFileSync('mkfifo', [fifo]);
  return { hold: () => holdThreadPool(dir, fifo), discard: () => rmSync(dir, { recursive: true, force: true }) };
}

function holdThreadPool(dir: string, fifo: string): { release: () => Promise<void> } {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const opened = Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => fsOpen(fifo, 'r', (e, fd) => (e === null ? resolve(fd) : reject(e)))));
  return {
    release: async () => {
      const writer = openSync(fifo, 'w'); // unblocks every reader waiting in open()
      for (const fd of await Promise.all(opened)) closeSync(fd);
      closeSync(writer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a connection with a request in flight is not idle, however long the request takes; idle afterwards, it is closed', async () => {
  // Long enough that the client's own steps between two requests never look idle on a busy machine.
  const idleTimeoutMs = 1_000;
  const plane = await startDataPlane({ hsm, idleTimeoutMs });
  const hold = threadPoolHold();
  let pool: { release: () => Promise<void> } | undefined;
  try {
    const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
    const s = await c.openSession();
    await c.login(s, 'alice', 'alice-password', 'crypto-user');
    const { privateHandle } = await c.generateKeyPair(s, { keyType: 'EC', curve: 'P-256' });
    pool = hold.hold();
    const signing = c.sign(s, privateHandle, ECDSA_SHA256, new Uint8Array([1, 2, 3]));
    await until(() => plane.load().inFlight === 1, 'the SIGN reached the node');
    // Several idle limits pass (timers fire in deadline order, so the node's would have fired first).
    await sleep(idleTimeoutMs * 3);
    assert.equal(c.isLost, false, 'a connection with a request in flight was closed as idle');
    assert.equal(plane.stats().closedIdleTimeout, 0);
    await pool.release();
    pool = undefined;
    assert.equal((await signing).length, 64);
    await until(() => c.isLost, 'closed once idle');
    assert.equal(plane.stats().closedIdleTimeout, 1);
  } finally {
    await pool?.release();
    hold.discard();
    await plane.close();
  }
});

test('over the total connection cap a new TCP connection is closed at accept and counted; a freed slot serves again', async () => {
  const plane = await startDataPlane({ hsm, connectionsMax: 3 });
  const held: Array<{ socket: Socket }> = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await tcp(plane.port));
    await until(() => plane.stats().connectionsOpen === 3, 'three connections held');
    const over = await tcp(plane.port).catch(() => undefined); // the kernel may accept before the node closes it
    await within(over?.closed ?? Promise.resolve(), 'the connection over the cap is closed');
    await until(() => plane.stats().refusedConnectionsMax === 1, 'the fourth was refused');
    await assert.rejects(Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem })); // closed before TLS
    assert.equal(plane.stats().refusedConnectionsMax, 2);
    assert.equal(plane.stats().connectionsOpen, 3);
    held[0]?.socket.destroy();
    await until(() => plane.stats().connectionsOpen === 2, 'a slot is free');
    const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
    assert.equal((await c.status()).provisioning, 'COMMISSIONED');
    c.close();
  } finally {
    for (const h of held) h.socket.destroy();
    await plane.close();
  }
});

test('over the per-address cap a connection from that address is closed at accept; other addresses are still served', async () => {
  const plane = await startDataPlane({ hsm, connectionsPerAddressMax: 2, connectionsMax: 10 });
  const held: Array<{ socket: Socket }> = [];
  try {
    for (let i = 0; i < 2; i++) held.push(await tcp(plane.port));
    await until(() => plane.stats().connectionsOpen === 2, 'two connections from 127.0.0.1');
    const over = await tcp(plane.port).catch(() => undefined);
    await within(over?.closed ?? Promise.resolve(), 'the connection over the per-address cap is closed');
    assert.equal(plane.stats().refusedPerAddressMax, 1);
    await assert.rejects(Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem })); // closed before TLS
    assert.equal(plane.stats().refusedPerAddressMax, 2);
    held.push(await tcp(plane.port, '127.0.0.2')); // another address on the loopback network
    await until(() => plane.stats().connectionsOpen === 3, 'the connection from 127.0.0.2 is held');
    assert.equal(plane.stats().refusedPerAddressMax, 2);
    held[0]?.socket.destroy();
    await until(() => plane.stats().connectionsOpen === 2, 'a slot of 127.0.0.1 is free');
    const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
    assert.equal((await c.status()).provisioning, 'COMMISSIONED');
    c.close();
  } finally {
    for (const h of held) h.socket.destroy();
    await plane.close();
  }
});

test('a second HELLO on a connection is answered COFFER_HELLO_REPEATED and the connection goes on', async () => {
  const plane = await startDataPlane({ hsm });
  try {
    const raw = await helloSocket(plane);
    raw.socket.write(encodeRequest(2, 'HELLO', { versionMin: 1, versionMax: 1 }));
    raw.socket.write(encodeRequest(3, 'STATUS', {}));
    await until(() => raw.frames.length === 3, 'two more replies');
    const [, again, status] = raw.frames;
    assert.equal(again?.kind, FrameKind.ERROR);
    assert.equal(again?.requestId, 2);
    assert.equal(fromWireError(decodeWith(errorPayload, again?.payload ?? new Uint8Array())).code, 'COFFER_HELLO_REPEATED');
    assert.equal(status?.kind, FrameKind.RESPONSE);
    raw.socket.destroy();
    const c = await Connection.connect({ host: '127.0.0.1', port: plane.port, ca: plane.tls.certificatePem });
    await assert.rejects(c.call('HELLO', { versionMin: 1, versionMax: 1 }), (e) => isCofferError(e, 'COFFER_HELLO_REPEATED'));
    assert.equal((await c.status()).provisioning, 'COMMISSIONED');
    c.close();
  } finally {
    await plane.close();
  }
});

test('an SDK cluster rides out idle closes by its node and keeps working, one and several connections per node', async () => {
  const ecKey = (alice: Session): ReturnType<Session['generateKeyPair']> => alice.generateKeyPair({ keyType: 'EC', curve: 'P-256' }, { token: true }, { token: true });
  // Shorter than the SDK's STATUS poll period, so connections do go idle between polls.
  const tc = await startTestCluster({ nodes: 1, setup: ecKey, plane: () => ({ idleTimeoutMs: 150 }) });
  try {
    for (const connectionsPerNode of [1, 3]) {
      const cluster = await Cluster.connect({ endpoints: tc.endpoints, ca: tc.ca, credentials: ALICE, connectionsPerNode });
      try {
        const key = cluster.key(tc.made.privateHandle);
        for (let round = 0; round < 3; round++) {
          const closed = tc.nodes[0]?.plane.stats().closedIdleTimeout ?? 0;
          await until(() => (tc.nodes[0]?.plane.stats().closedIdleTimeout ?? 0) > closed, 'the node closed an idle connection of the SDK');
          const signatures = await Promise.all(Array.from({ length: 8 }, (_, i) => key.sign(new Uint8Array([round, i]))));
          assert.ok(signatures.every((sig) => sig.length === 64));
          assert.equal((await cluster.random(8)).length, 8);
          assert.equal(cluster.nodes[0]?.state, 'up', 'the idle close never took the node out of the cluster');
        }
      } finally {
        await cluster.close();
      }
    }
  } finally {
    await tc.close();
  }
});

after(() => {
  hsm.close();
});
