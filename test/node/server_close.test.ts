// Closing the node's servers ends every connection, including one whose TLS handshake was still
// under way when close() began (docs/node.md "Stopping"). Such a connection used to finish its
// handshake afterwards and be served on, so that close() never resolved while its peer kept it busy
// (a control plane's relay long-polls the management port). Each test holds a client's second TLS
// flight (and its first request) in a relay until the server has answered its ClientHello (the
// server has accepted and is handshaking), calls close(), then lets it go on: nothing may be served
// on that connection, and close() must resolve.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { MANAGEMENT_ROUTES } from '../../src/formats/management.js';
import { encodeRequest } from '../../src/formats/wire.js';
import { createDevelopmentAuthorities, type DevelopmentAuthorities } from '../../src/factory/development.js';
import { issueClientCredential, startTestNode, type ClientCredential, type TestNode } from './management_support.js';

/** A generous bound on close() once the connection is ended (it takes milliseconds). */
const CLOSE_WAIT_MS = 30_000;
let authorities: DevelopmentAuthorities;
let credential: ClientCredential;

before(async () => {
  authorities = await createDevelopmentAuthorities();
  credential = await issueClientCredential(authorities.operator);
});

/**
 * A TCP relay to `port` that forwards the client's first bytes (its ClientHello) and the server's
 * answer, and holds everything else the client sends until `release()`. `answered` resolves once
 * the server has answered, i.e. accepted the connection and begun the handshake.
 */
async function holdingRelay(port: number): Promise<{ port: number; answered: Promise<void>; release(): void; close(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let answered!: () => void;
  const answeredP = new Promise<void>((resolve) => (answered = resolve));
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    let first = true;
    client.on('data', (chunk: Buffer) => {
      if (first) {
        first = false;
        upstream.write(chunk);
        return;
      }
      client.pause();
      void released.then(() => {
        if (!upstream.destroyed) upstream.write(chunk);
        client.resume();
      });
    });
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      answered();
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as AddressInfo).port,
    answered: answeredP,
    release,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      relay.close(() => resolve());
    }),
  };
}

/**
 * A TLS client through the relay that sends `request` and is released after `close` began: whether
 * the server answered it (`served`), and whether close() resolved while the client still held its
 * end of the connection (`closed`).
 */
async function requestAcrossClose(serverPort: number, options: ConnectionOptions, request: Uint8Array | string, close: () => Promise<void>): Promise<{ served: boolean; closed: boolean }> {
  const relay = await holdingRelay(serverPort);
  const socket = tlsConnect({ host: '127.0.0.1', port: relay.port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3', ...options });
  socket.on('error', () => undefined);
  const outcome = new Promise<boolean>((resolve) => {
    socket.once('data', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  socket.write(request);
  await relay.answered;
  const closing = close();
  relay.release();
  const served = await outcome;
  // close() must resolve while the client still holds its end: a server still serving this socket
  // (the defect) would wait for it. After the bound the socket is dropped so that the test ends.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS)));
  const closed = await Promise.race([closing.then(() => true), late]);
  clearTimeout(timer);
  socket.destroy();
  await closing;
  await relay.close();
  return { served, closed };
}

const SERVERS = [
  {
    name: 'management',
    port: (n: TestNode) => n.management.port,
    options: (): ConnectionOptions => ({ cert: credential.certificatePem, key: credential.keyPem }),
    request: (): Uint8Array | string => `GET ${MANAGEMENT_ROUTES.identity.path} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    close: (n: TestNode) => n.management.close(),
    other: (n: TestNode) => n.dataPlane.close(),
  },
  {
    name: 'data plane',
    port: (n: TestNode) => n.dataPlane.port,
    options: (): ConnectionOptions => ({}),
    request: (): Uint8Array | string => encodeRequest(1, 'HELLO', { versionMin: 1, versionMax: 1 }),
    close: (n: TestNode) => n.dataPlane.close(),
    other: (n: TestNode) => n.management.close(),
  },
];

for (const server of SERVERS) {
  test(`${server.name}: a connection still handshaking when close() begins is ended, not served; close() resolves`, async () => {
    const node = await startTestNode(authorities);
    try {
      const r = await requestAcrossClose(server.port(node), server.options(), server.request(), () => server.close(node));
      assert.equal(r.served, false, 'nothing is served on it after close() began');
      assert.equal(r.closed, true, 'close() resolved without waiting for the client to go');
    } finally {
      await server.other(node);
      node.hsm.close();
      rmSync(node.dataDir, { recursive: true, force: true });
    }
  });
}
