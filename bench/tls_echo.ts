// The round-trip anchor of the node bench: a 32-byte message to a TLS 1.3 echo server in another
// process (bench/tls_echo_child.ts) and back, with the writes of one tick coalesced into one
// socket.write exactly as Connection does (TickWriter). A RANDOM of 16 bytes is a 19-byte request
// frame and a 31-byte reply, so this is what the same traffic costs with no protocol decoding,
// dispatch or device behind it: the transport's floor on this machine.

import { spawn } from 'node:child_process';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { createInterface } from 'node:readline';
import { connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { TickWriter } from '../src/formats/wire.js';
import { pemOf, randomSerialHex, x509 } from '../src/formats/x509.js';

export const ECHO_MESSAGE_BYTES = 32;
const CHILD = fileURLToPath(new URL('./tls_echo_child.js', import.meta.url));
const CERT_VALIDITY_MS = 24 * 3600 * 1000;

export interface EchoServer {
  readonly port: number;
  readonly pid: number;
  readonly certificatePem: string;
  stop(): Promise<void>;
}

/** A throw-away self-signed P-256 certificate for 127.0.0.1. */
async function throwAwayIdentity(): Promise<{ keyPem: string; certificatePem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(), name: 'CN=coffer bench echo', notBefore: new Date(now - 60_000), notAfter: new Date(now + CERT_VALIDITY_MS), keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  return { keyPem, certificatePem: pemOf(cert) };
}

export async function startEchoServer(): Promise<EchoServer> {
  const identity = await throwAwayIdentity();
  const child = spawn(process.execPath, [CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin.write(JSON.stringify(identity) + '\n');
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`echo server exited with ${String(code)}`)));
  });
  const { port } = JSON.parse(line) as { port: number };
  return {
    port, pid: child.pid ?? 0, certificatePem: identity.certificatePem,
    stop: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

/** Echo replies come back in order, so a FIFO of waiters matches them to calls. */
export class EchoClient {
  readonly #socket: TLSSocket;
  readonly #out: TickWriter;
  readonly #waiting: (() => void)[] = [];
  #head = 0;
  #buffered = 0;
  readonly #message = new Uint8Array(ECHO_MESSAGE_BYTES).fill(0x5a);

  private constructor(socket: TLSSocket) {
    this.#socket = socket;
    this.#out = new TickWriter((bytes) => socket.write(bytes));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk.length));
  }

  static async connect(server: EchoServer): Promise<EchoClient> {
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.certificatePem, minVersion: 'TLSv1.3' });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return new EchoClient(socket);
  }

  call(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiting.push(resolve);
      this.#out.push(this.#message);
    });
  }

  #onData(bytes: number): void {
    this.#buffered += bytes;
    while (this.#buffered >= ECHO_MESSAGE_BYTES) {
      this.#buffered -= ECHO_MESSAGE_BYTES;
      const done = this.#waiting[this.#head++];
      if (done === undefined) throw new Error('bench: echo server sent more than was asked');
      done();
    }
    if (this.#head > 1024) {
      this.#waiting.splice(0, this.#head); // keep the queue from growing without bound
      this.#head = 0;
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}
