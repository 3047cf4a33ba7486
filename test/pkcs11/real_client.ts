// Helpers to drive Debian's real p11-kit client against the bridge: pkcs11-tool (OpenSC) loading
// p11-kit-client.so with P11_KIT_SERVER_ADDRESS, and a recording proxy between them that keeps the
// bytes the real client sends (each connection's stream), for known frames and fuzz seeds.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';

/** Debian's p11-kit client module; COFFER_P11_KIT_CLIENT runs every real-client test against another
 * build of it instead (docs/pkcs11.md "Clients tested": a p11-kit 0.25.6+ client speaks protocol
 * version 2). */
export const P11_KIT_CLIENT = process.env['COFFER_P11_KIT_CLIENT'] ?? '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';
export const PKCS11_TOOL = '/usr/bin/pkcs11-tool';

/** Why the real-client tests cannot run here, or undefined when they can. With
 * COFFER_REQUIRE_PKCS11=1 (what .ci/run sets, having installed them) a missing client is an error,
 * never a skip. */
export function realClientMissing(): string | undefined {
  const missing = [P11_KIT_CLIENT, PKCS11_TOOL].filter((p) => !existsSync(p));
  if (missing.length === 0) return undefined;
  const why = `needs ${missing.join(' and ')} (Debian packages p11-kit-modules and opensc)`;
  if (process.env['COFFER_REQUIRE_PKCS11'] === '1') throw new Error(`${why}; COFFER_REQUIRE_PKCS11=1 makes this a failure`);
  return why;
}

/** Why a test of real clients beyond pkcs11-tool cannot run here: `realClientMissing`, or the first
 * of `paths` that is missing (from Debian's `packages`); undefined when all are there. Under
 * COFFER_REQUIRE_PKCS11=1 a missing client throws instead. */
export function clientsMissing(paths: readonly string[], packages: string): string | undefined {
  const clients = realClientMissing();
  if (clients !== undefined) return clients;
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) return undefined;
  const why = `needs ${missing.join(' and ')} (Debian packages ${packages})`;
  if (process.env['COFFER_REQUIRE_PKCS11'] === '1') throw new Error(`${why}; COFFER_REQUIRE_PKCS11=1 makes this a failure`);
  return why;
}

export interface ToolRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function pkcs11Tool(socketPath: string, args: readonly string[]): Promise<ToolRun> {
  return new Promise((resolve) => {
    execFile(PKCS11_TOOL, ['--module', P11_KIT_CLIENT, ...args], {
      env: { ...process.env, P11_KIT_SERVER_ADDRESS: `unix:path=${socketPath}` }, timeout: 120_000, encoding: 'utf8',
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RecordingProxy {
  readonly path: string;
  /** What each client connection sent, in order (version byte, then frames). */
  readonly streams: Uint8Array[][];
  close(): Promise<void>;
}

/** A Unix-socket proxy to `target` that records the client-to-server bytes. */
export async function recordingProxy(path: string, target: string): Promise<RecordingProxy> {
  const streams: Uint8Array[][] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const chunks: Uint8Array[] = [];
    streams.push(chunks);
    const upstream = connect(target);
    sockets.add(client).add(upstream);
    client.on('data', (d: Buffer) => {
      chunks.push(Uint8Array.from(d));
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    streams,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Concatenates chunks. */
export function joined(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
