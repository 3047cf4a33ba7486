// A small p11-kit RPC client for the server tests: a real Unix socket, the version byte, frames out
// and answers matched by code, as p11-kit's rpc-transport.c does it. Written against the protocol
// description (docs/pkcs11.md), using the codec only to build and read messages.

import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { StreamDecoder, encodeFrame, P11_RPC_HANDSHAKE, type Frame } from '../../src/pkcs11/rpc_transport.js';
import { decodeResponse, encodeRequest, type DecodedResponse, type RequestOf } from '../../src/pkcs11/rpc_messages.js';
import type { CallName } from '../../src/pkcs11/rpc_calls.js';
import type { ProtocolVersion } from '../../src/pkcs11/rpc_codec.js';

export class RpcClient {
  readonly #decoder = new StreamDecoder(true);
  readonly #waiting = new Map<number, (f: Frame) => void>();
  #code = 0x10;
  #versionByte: ((b: number) => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket, public version: ProtocolVersion) {
    this.closed = once(socket, 'close').then(() => undefined);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      let data: Uint8Array = chunk;
      if (this.#versionByte !== undefined) {
        const resolve = this.#versionByte;
        this.#versionByte = undefined;
        resolve(data[0] ?? -1);
        data = data.subarray(1);
      }
      this.#decoder.push(data);
      for (let item = this.#decoder.next(); item !== undefined; item = this.#decoder.next()) {
        if (item.kind === 'frame') this.#waiting.get(item.frame.code)?.(item.frame);
      }
    });
  }

  /** Connects and offers `offer`; resolves with the version the server answered. */
  static async open(path: string, offer: number): Promise<RpcClient> {
    const socket = connect(path);
    await once(socket, 'connect');
    const c = new RpcClient(socket, 0);
    const answered = new Promise<number>((resolve) => (c.#versionByte = resolve));
    socket.write(Uint8Array.of(offer));
    c.version = (await answered) as ProtocolVersion;
    return c;
  }

  /** Sends a raw body (or raw bytes when `raw`) and waits for the answer with its code. */
  async raw(body: Uint8Array): Promise<Frame> {
    const code = this.#code++;
    const answer = new Promise<Frame>((resolve) => this.#waiting.set(code, resolve));
    this.socket.write(encodeFrame(code, body, new TextEncoder().encode('p11-kit-client')));
    return answer;
  }

  async call<N extends CallName>(name: N, request: RequestOf<N>): Promise<DecodedResponse<N>> {
    const f = await this.raw(encodeRequest(this.version, name, request));
    return decodeResponse(this.version, name, f.body);
  }

  async initialize(): Promise<DecodedResponse<'C_Initialize'>> {
    return this.call('C_Initialize', { handshake: P11_RPC_HANDSHAKE, reservedPresent: 0, reserved: new Uint8Array(1) });
  }

  close(): void {
    this.socket.destroy();
  }
}
