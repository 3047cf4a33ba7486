// Test support for the SDK (not a test file): a cluster of in-process nodes on real TLS sockets.
// Node 0 is a device whose cluster is initialised under a development customer CA and activated,
// with crypto user `alice`; `setup` runs on it (as alice) before nodes 1.. are cloned from it by
// sealed backup and restore, so every node holds what setup made (docs/architecture.md §3: no journal yet).

import { createDevelopmentAuthorities, createDevelopmentCustomerCa } from '../../src/factory/development.js';
import type { Session } from '../../src/hsm/device.js';
import type { Hsm } from '../../src/hsm/device.js';
import { bufferSource } from '../../src/formats/backup.js';
import { startDataPlane, type DataPlane, type DataPlaneOptions } from '../../src/node/data_plane.js';
import type { RecordStore } from '../../src/hsm/store/store_port.js';
import { ADMIN_PW, PRECO, backupOf, commissionedDevice } from '../hsm/backup/backup_support.js';
import { initialisedDevice } from '../hsm/identity/cluster_support.js';
import type { Endpoint } from '../../src/client/node_link.js';

export const ALICE = { username: 'alice', password: 'alice-password' } as const;

export interface TestNode {
  readonly hsm: Hsm;
  plane: DataPlane;
  readonly endpoint: Endpoint;
  readonly options: Omit<DataPlaneOptions, 'hsm'>;
}

export interface TestCluster<T> {
  readonly ca: string;
  readonly nodes: TestNode[];
  readonly endpoints: Endpoint[];
  readonly made: T;
  /** Closes node i's data plane (its connections are destroyed). */
  stop(i: number): Promise<void>;
  /** Starts node i's data plane again on the same port. */
  restart(i: number): Promise<void>;
  close(): Promise<void>;
}

export interface TestClusterOptions<T> {
  readonly nodes: number;
  readonly setup?: (alice: Session) => T | Promise<T>;
  /** Data-plane options per node index. */
  readonly plane?: (i: number) => Omit<DataPlaneOptions, 'hsm'>;
  readonly store0?: RecordStore;
}

export async function startTestCluster<T = undefined>(o: TestClusterOptions<T>): Promise<TestCluster<T>> {
  const authorities = await createDevelopmentAuthorities();
  const customerCa = await createDevelopmentCustomerCa();
  const source = await initialisedDevice(authorities, customerCa, o.store0 === undefined ? {} : { store: o.store0 });
  await source.activate(PRECO, ADMIN_PW);
  const admin = source.openSession();
  await admin.login('admin', ADMIN_PW);
  await admin.createUser(ALICE.username, ALICE.password, 'crypto-user');
  admin.close();
  const alice = source.openSession();
  await alice.login(ALICE.username, ALICE.password, 'crypto-user');
  const made = (o.setup === undefined ? undefined : await o.setup(alice)) as T;
  alice.close();
  const devices: Hsm[] = [source];
  for (let i = 1; i < o.nodes; i++) {
    const clone = await commissionedDevice(authorities);
    await clone.restoreBackup(bufferSource(backupOf(source)));
    devices.push(clone);
  }
  const nodes: TestNode[] = [];
  for (const [i, hsm] of devices.entries()) {
    const options = o.plane?.(i) ?? {};
    const plane = await startDataPlane({ hsm, ...options });
    nodes.push({ hsm, plane, options, endpoint: { host: '127.0.0.1', port: plane.port } });
  }
  return {
    ca: customerCa.certificatePem, nodes, endpoints: nodes.map((n) => n.endpoint), made,
    stop: (i) => (nodes[i] as TestNode).plane.close(),
    restart: async (i) => {
      const n = nodes[i] as TestNode;
      n.plane = await startDataPlane({ hsm: n.hsm, ...n.options, port: n.endpoint.port });
    },
    close: async () => {
      await Promise.all(nodes.map((n) => n.plane.close().catch(() => undefined)));
    },
  };
}

export async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
