// A development cluster of real node processes (docs/development-cluster.md): what tests, the bench
// and users start to get a running, initialised and activated cluster in one call.
//
//   1. development authorities (saved to <dir>/authorities), a management client certificate
//      signed by their operator root, and a development customer CA;
//   2. node 1 (`coffer hsm serve --authorities …`); over its management interface: the cluster CSR
//      for a fresh cluster id, signed by the customer CA, then cluster initialisation with a random
//      PreCo password and appliance credential;
//   3. over its data plane, trusting the customer CA alone: ACTIVATE (random admin password), LOGIN
//      as admin, CREATE_USER of a crypto user (random password);
//   4. each further node: a new process, cloned from a running node by sealed backup → restore
//      over the management interface.
//
// <dir>/cluster.json (0600) lists endpoints, file paths and the development credentials; it is
// rewritten (atomically: a temporary file renamed over it) whenever a node is added or exits, so
// `running` stays true to the processes. A node that exits without being asked to is reported to
// `onNodeExit` (the `coffer dev cluster` command prints it).

import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '../client/connection.js';
import { ManagementClient, type ManagementClientOptions } from '../management/client.js';
import { fail } from '../errors.js';
import { pemOf } from '../formats/x509.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, saveDevelopmentAuthorities, type DevelopmentCustomerCa } from '../factory/development.js';
import { NODE_LOG_FILE, isRunning, spawnNode, stopNode, type NodeProcess as DevNode } from '../service/fleet/node_process.js';

export type { NodeProcess as DevNode } from '../service/fleet/node_process.js';

export const ADMIN_NAME = 'admin';
export const CRYPTO_USER_NAME = 'crypto_user';
/** CloudHSM's cluster id shape: `cluster-` + 11 of [2-7a-z] (docs/architecture.md §6). */
const CLUSTER_ID_CHARS = '234567abcdefghijklmnopqrstuvwxyz';
const CLUSTER_ID_LENGTH = 11;
export const CLUSTER_FILE = 'cluster.json';
const CUSTOMER_CA_FILE = 'customer-ca.pem';

export interface Credentials {
  readonly name: string;
  readonly password: string;
}

export interface DevelopmentCluster {
  readonly dir: string;
  readonly clusterId: string;
  readonly customerCaPem: string;
  readonly admin: Credentials;
  readonly cryptoUser: Credentials;
  readonly nodes: readonly DevNode[];
  /** A new node process, cloned from the first running node by sealed backup → restore. */
  addNode(): Promise<DevNode>;
  /** Hard kill (SIGKILL by default), for failover tests; the node stays in `nodes`, not running. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Stops every node (SIGTERM, then SIGKILL after a timeout). */
  stop(): Promise<void>;
}

export interface DevelopmentClusterOptions {
  readonly dir: string;
  /** Default 1. */
  readonly nodes?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** The nodes' Prometheus metrics (`coffer hsm serve --metrics`); default 'on'. */
  readonly nodeMetrics?: 'on' | 'off';
  /** The nodes' audit logs (`coffer hsm serve --audit`); default 'on'. */
  readonly nodeAudit?: 'on' | 'off';
  /** The mode the nodes' devices are commissioned in (`coffer hsm serve --mode`); default NON_FIPS. */
  readonly mode?: 'FIPS' | 'NON_FIPS';
  /** The CLI's main.js; default: the one beside this file. */
  readonly mainJs?: string;
  /** Each node process in a session (and process group) of its own, as `coffer up`'s fleet starts
   * its HSMs; default false: the nodes share the caller's, so a terminal's Ctrl-C reaches them too.
   * The bench uses it so that the scheduler treats a node as the separate service it is
   * (docs/bench.md). */
  readonly detached?: boolean;
  /** Called when a node process exits without `kill` or `stop` having asked it to, after
   * cluster.json was rewritten with `running: false` for it. */
  readonly onNodeExit?: (exit: NodeExit) => void;
}

/** A node process that exited unexpectedly. */
export interface NodeExit {
  /** 1-based, as the node's directory `nodes/node-<n>`. */
  readonly node: number;
  readonly serial: string;
  readonly pid: number;
  /** Exit status, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The node's stderr (docs/development-cluster.md): where a crashed node says why. */
  readonly log: string;
  /** Nodes of the cluster still running, and all its nodes. */
  readonly running: number;
  readonly nodes: number;
  readonly clusterFile: string;
}

/** Everything the steps share. The customer CA's key stays in this process's memory only. */
interface Setup {
  readonly dir: string;
  readonly host: string;
  readonly mainJs: string;
  readonly authoritiesDir: string;
  readonly customerCa: DevelopmentCustomerCa;
  readonly managementClient: Omit<ManagementClientOptions, 'host' | 'port'>;
  readonly nodeMetrics: 'on' | 'off';
  readonly nodeAudit: 'on' | 'off';
  readonly mode: 'FIPS' | 'NON_FIPS';
  readonly detached: boolean;
}

/** A random password of `chars` base64url characters (CloudHSM's 8–32 rule holds for 8 ≤ chars ≤ 32). */
export function randomPassword(chars = 24): string {
  return randomBytes(chars).toString('base64url').slice(0, chars);
}

export function randomClusterId(): string {
  let id = 'cluster-';
  for (let i = 0; i < CLUSTER_ID_LENGTH; i++) id += CLUSTER_ID_CHARS[randomInt(CLUSTER_ID_CHARS.length)];
  return id;
}

export async function startDevelopmentCluster(options: DevelopmentClusterOptions): Promise<DevelopmentCluster> {
  const count = options.nodes ?? 1;
  if (!Number.isInteger(count) || count < 1) fail('COFFER_CLI_USAGE', { reason: 'nodes must be a positive integer' });
  const setup = await prepare(options);
  const nodes: DevNode[] = [];
  const cleanup = (): void => {
    for (const n of nodes) if (isRunning(n)) n.process.kill('SIGKILL');
  };
  process.once('exit', cleanup); // a crashing parent must not leave node processes behind
  try {
    const clusterId = randomClusterId();
    const preCoPassword = randomPassword(20);
    const admin = { name: ADMIN_NAME, password: randomPassword() };
    const cryptoUser = { name: CRYPTO_USER_NAME, password: randomPassword() };
    const first = await spawnNode(nodeOptions(setup, 1));
    nodes.push(first);
    await initialiseCluster(setup, first, clusterId, preCoPassword);
    await activate(setup, first, preCoPassword, admin, cryptoUser);
    const cluster = makeCluster(setup, nodes, { clusterId, admin, cryptoUser }, options.onNodeExit, () => {
      cleanup();
      process.off('exit', cleanup);
    });
    for (let i = 1; i < count; i++) await cluster.addNode();
    writeClusterFile(setup, cluster);
    return cluster;
  } catch (e) {
    cleanup();
    process.off('exit', cleanup);
    throw e;
  }
}

async function prepare(options: DevelopmentClusterOptions): Promise<Setup> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const authoritiesDir = join(dir, 'authorities');
  const authorities = await createDevelopmentAuthorities();
  try {
    saveDevelopmentAuthorities(authorities, authoritiesDir);
    const client = await issueManagementClientCertificate(authorities.operator, 'coffer dev cluster');
    writeFileSync(join(dir, 'management-client.pem'), client.certificatePem, { mode: 0o644 });
    writeFileSync(join(dir, 'management-client.key'), client.keyPem, { mode: 0o600 });
    const customerCa = await createDevelopmentCustomerCa();
    writeFileSync(join(dir, CUSTOMER_CA_FILE), customerCa.certificatePem, { mode: 0o644 });
    return {
      dir, authoritiesDir, customerCa,
      host: options.host ?? '127.0.0.1',
      nodeMetrics: options.nodeMetrics ?? 'on',
      detached: options.detached ?? false,
      nodeAudit: options.nodeAudit ?? 'on',
      mode: options.mode ?? 'NON_FIPS',
      mainJs: options.mainJs ?? join(dirname(fileURLToPath(import.meta.url)), 'main.js'),
      managementClient: { ...client, manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate) },
    };
  } finally {
    authorities.akbk?.destroy();
  }
}

function nodeOptions(setup: Setup, index: number): Parameters<typeof spawnNode>[0] {
  return { mainJs: setup.mainJs, dataDir: join(setup.dir, 'nodes', `node-${index}`), authoritiesDir: setup.authoritiesDir, host: setup.host, detached: setup.detached, metrics: setup.nodeMetrics, audit: setup.nodeAudit, mode: setup.mode };
}

/** Runs `fn` with a management client of `node`, closed afterwards. */
async function withManagement<T>(setup: Setup, node: DevNode, fn: (client: ManagementClient) => Promise<T>): Promise<T> {
  const client = new ManagementClient({ host: node.host, port: node.managementPort, ...setup.managementClient });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** CSR → customer CA → initialise, over the management interface (the control plane's part). */
async function initialiseCluster(setup: Setup, node: DevNode, clusterId: string, preCoPassword: string): Promise<void> {
  await withManagement(setup, node, async (client) => {
    const certificatePem = await setup.customerCa.signClusterCsr(await client.clusterCsr(clusterId));
    await client.initialiseCluster({ certificatePem, trustAnchorPem: setup.customerCa.certificatePem, preCoPassword, applianceCredential: randomPassword(32) });
  });
}

/** The customer's part, over the data plane with the customer CA as the only trust. */
async function activate(setup: Setup, node: DevNode, preCoPassword: string, admin: Credentials, cryptoUser: Credentials): Promise<void> {
  const conn = await Connection.connect({ host: node.host, port: node.port, ca: setup.customerCa.certificatePem });
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
  try {
    await conn.call('ACTIVATE', { preCoPassword: bytes(preCoPassword), newPassword: bytes(admin.password) });
    const session = await conn.openSession();
    await conn.login(session, admin.name, admin.password);
    await conn.call('CREATE_USER', { session, name: cryptoUser.name, password: bytes(cryptoUser.password), role: 'crypto-user' });
    await conn.closeSession(session);
  } finally {
    conn.close();
  }
}

/** Clones the first running node into `target` by sealed backup → restore. */
async function cloneInto(setup: Setup, source: DevNode, target: DevNode): Promise<void> {
  const backupsDir = join(setup.dir, 'backups');
  mkdirSync(backupsDir, { recursive: true, mode: 0o700 });
  const file = join(backupsDir, `clone-${target.serial}.backup`);
  rmSync(file, { force: true });
  try {
    await withManagement(setup, source, (client) => client.backupToFile(file));
    await withManagement(setup, target, (client) => client.restoreFromFile(file));
  } finally {
    rmSync(file, { force: true });
  }
}

function makeCluster(
  setup: Setup, nodes: DevNode[], facts: { clusterId: string; admin: Credentials; cryptoUser: Credentials },
  onNodeExit: ((exit: NodeExit) => void) | undefined, release: () => void,
): DevelopmentCluster {
  /** Nodes asked to stop (kill, stop): their exit is expected and not reported. */
  const asked = new Set<DevNode>();
  const watch = (node: DevNode): void => {
    node.process.once('exit', (code, signal) => {
      const clusterFile = rewriteClusterFile(setup, cluster);
      if (asked.has(node)) return;
      const running = nodes.filter(isRunning).length;
      onNodeExit?.({ node: nodes.indexOf(node) + 1, serial: node.serial, pid: node.pid, code, signal, log: join(node.dataDir, NODE_LOG_FILE), running, nodes: nodes.length, clusterFile });
    });
  };
  const cluster: DevelopmentCluster = {
    dir: setup.dir,
    ...facts,
    customerCaPem: setup.customerCa.certificatePem,
    nodes,
    addNode: async () => {
      const source = nodes.find(isRunning) ?? fail('COFFER_CLUSTER_UNAVAILABLE');
      const node = await spawnNode(nodeOptions(setup, nodes.length + 1));
      try {
        await cloneInto(setup, source, node);
      } catch (e) {
        await stopNode(node, 'SIGKILL'); // a node that is not a clone is not part of the cluster
        throw e;
      }
      nodes.push(node);
      watch(node);
      writeClusterFile(setup, cluster);
      return node;
    },
    kill: async (index, signal = 'SIGKILL') => {
      const node = nodes[index] ?? fail('COFFER_CLI_USAGE', { reason: 'no such node' });
      asked.add(node);
      await stopNode(node, signal);
    },
    stop: async () => {
      for (const n of nodes) asked.add(n);
      await Promise.all(nodes.map((n) => stopNode(n, 'SIGTERM')));
      release();
    },
  };
  for (const n of nodes) watch(n);
  return cluster;
}

/** writeClusterFile, except when the cluster's directory was removed under it (a caller that
 * deleted it before stopping): then there is no file to keep in step. */
function rewriteClusterFile(setup: Setup, cluster: DevelopmentCluster): string {
  try {
    return writeClusterFile(setup, cluster);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
    return join(setup.dir, CLUSTER_FILE);
  }
}

/** <dir>/cluster.json, mode 0600: it holds the development cluster's passwords. Written to a fresh
 * temporary file (0600 from its creation) that is then renamed over the old one, so a reader sees
 * the old file or the new one, never a part. */
export function writeClusterFile(setup: { readonly dir: string }, cluster: DevelopmentCluster): string {
  const path = join(setup.dir, CLUSTER_FILE);
  const doc = {
    clusterId: cluster.clusterId,
    customerCa: join(setup.dir, CUSTOMER_CA_FILE),
    authorities: join(setup.dir, 'authorities'),
    managementClient: { certificate: join(setup.dir, 'management-client.pem'), key: join(setup.dir, 'management-client.key') },
    admin: cluster.admin,
    cryptoUser: cluster.cryptoUser,
    nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port, managementPort: n.managementPort, pid: n.pid, serial: n.serial, dataDir: n.dataDir, running: isRunning(n) })),
  };
  const temporary = `${path}.${process.pid}.tmp`;
  rmSync(temporary, { force: true }); // so that the mode below applies to a fresh file
  writeFileSync(temporary, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  renameSync(temporary, path);
  return path;
}
