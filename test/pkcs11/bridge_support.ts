// A development cluster of real node processes with the PKCS#11 bridge in front of it on a Unix
// socket, for the real-client tests (pkcs11-tool, OpenSSL's pkcs11 engine, Java's SunPKCS11): the
// P11_KIT_SERVER_ADDRESS to give them, the PIN of the cluster's crypto user, and an SDK connection
// as that user to check what they did.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../src/client/cluster.js';
import type { Credentials } from '../../src/client/index.js';
import { startDevelopmentCluster } from '../../src/cli/dev_cluster.js';
import { clusterBackend, type ClusterBackend } from '../../src/pkcs11/cluster_backend.js';
import { startPkcs11Server } from '../../src/pkcs11/server.js';
import type { Mechanism } from '../../src/pkcs11/rpc_codec.js';
import assert from 'node:assert/strict';

export interface Bridge {
  /** A scratch directory, removed by close(). */
  readonly dir: string;
  /** unix:path=… for P11_KIT_SERVER_ADDRESS. */
  readonly address: string;
  /** `username:password` of the cluster's crypto user. */
  readonly pin: string;
  /** `username:password` of the cluster's admin, the token's SO. */
  readonly soPin: string;
  /** The bridge's socket. */
  readonly socketPath: string;
  /** The SDK, logged in as that crypto user. */
  readonly sdk: Cluster;
  /** An SDK connection to the same cluster as another user (the caller closes it). */
  connect(credentials: Credentials): Promise<Cluster>;
  /** A token of its own on the same cluster, to call without the transport. */
  backend(): ClusterBackend;
  /** The mechanisms the clients passed to C_SignInit and C_DecryptInit on the socket, in order. */
  /** Every sign and decrypt init, with the protocol version of its connection. */
  readonly inits: { readonly call: 'C_SignInit' | 'C_DecryptInit'; readonly mechanism: Mechanism | null; readonly version: number }[];
  /** The protocol version of the last session opened on the socket (what the client speaks). */
  lastVersion(): number | undefined;
  close(): Promise<void>;
}

export async function startBridge(name: string): Promise<Bridge> {
  const dir = mkdtempSync(join(tmpdir(), `coffer-${name}-`));
  const dev = await startDevelopmentCluster({ dir: join(dir, 'cluster'), nodes: 1 });
  const endpoints = dev.nodes.map((n) => ({ host: n.host, port: n.port }));
  const token = (): ClusterBackend => clusterBackend({ connect: (credentials) => Cluster.connect({ endpoints, ca: dev.customerCaPem, credentials }), label: name.slice(0, 32), serial: '1' });
  const backend = token();
  const inits: Bridge['inits'][number][] = [];
  const signInit = backend.C_SignInit;
  const decryptInit = backend.C_DecryptInit;
  const openSession = backend.C_OpenSession;
  assert(signInit !== undefined && decryptInit !== undefined && openSession !== undefined, 'the token signs and decrypts');
  let lastVersion: number | undefined;
  const recording: ClusterBackend = {
    ...backend,
    C_SignInit: (req, c) => (inits.push({ call: 'C_SignInit', mechanism: req.mechanism, version: c.version }), signInit(req, c)),
    C_DecryptInit: (req, c) => (inits.push({ call: 'C_DecryptInit', mechanism: req.mechanism, version: c.version }), decryptInit(req, c)),
    C_OpenSession: (req, c) => ((lastVersion = c.version), openSession(req, c)),
  };
  const socketPath = join(dir, 'p11.sock');
  const server = await startPkcs11Server({ socketPath, backend: recording, onBug: (e) => console.error('bridge bug', e) });
  const sdk = await Cluster.connect({ endpoints, ca: dev.customerCaPem, credentials: { username: dev.cryptoUser.name, password: dev.cryptoUser.password } });
  return {
    dir, address: `unix:path=${socketPath}`, pin: `${dev.cryptoUser.name}:${dev.cryptoUser.password}`, soPin: `${dev.admin.name}:${dev.admin.password}`,
    socketPath, sdk, backend: token, inits, lastVersion: () => lastVersion, connect: (credentials) => Cluster.connect({ endpoints, ca: dev.customerCaPem, credentials }),
    close: async () => {
      await sdk.close();
      await server.close();
      await dev.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A real client as a child process, without blocking this process (where the bridge runs); `env` adds to ours. */
export function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<Run> {
  return new Promise((done) => {
    const child = execFile(file, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    // A client that exits before reading its input (ssh-agent forks and its parent returns at once)
    // closes the pipe: the write's EPIPE is its business, not this process's.
    child.stdin?.on('error', () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}
