// `coffer up --cluster N`: one development cluster of N HSMs made through the control plane the way
// a customer makes one (docs/getting-started.md walks the same steps with the AWS CLI):
// CreateCluster, CreateHsm, the CSR signed by a development customer CA, InitializeCluster,
// activation over the data plane with the PreCo password (the admin password set), a crypto user,
// then N − 1 more HSMs cloned by the orchestrator. Its cluster.json is what `--cluster-config`
// (CLI) and `loadClusterConfig` (SDK) read, plus the cluster id and the service endpoint.

import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '../client/connection.js';
import { fail } from '../errors.js';
import { createDevelopmentCustomerCa } from '../factory/development.js';
import type { ApiOutput, Caller } from '../service/api/operations.js';
import type { RunningService } from '../service/service.js';
import type { Up } from './up.js';

export const CLUSTER_FILE = 'cluster.json';
export const CUSTOMER_CA_FILE = 'customer-ca.pem';
export const ADMIN_NAME = 'admin';
export const CRYPTO_USER_NAME = 'crypto_user';
/** Creating a cluster of a few HSMs takes seconds; on a loaded machine much longer. */
const CLUSTER_READY_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 200;

export interface DevClusterFile {
  readonly clusterId: string;
  readonly region: string;
  readonly service: string;
  readonly customerCa: string;
  readonly admin: { readonly name: string; readonly password: string };
  readonly cryptoUser: { readonly name: string; readonly password: string };
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
}

/** The cluster in `<dataDir>/cluster.json` if there is one, else a new one of `hsms` HSMs. */
export async function ensureDevCluster(u: Up, hsms: number): Promise<string> {
  const path = join(u.dataDir, CLUSTER_FILE);
  if (existsSync(path)) return path;
  const region = u.regions[0] ?? fail('COFFER_CLI_USAGE', { reason: 'no region' });
  const service = region.service;
  const caller: Caller = { accountId: u.accessKey.accountId, accessKeyId: u.accessKey.accessKeyId, region: region.region, requestId: 'coffer-up' };
  const zones = service.config.availabilityZones;
  const created = await service.operations.CreateCluster({
    HsmType: 'hsm2m.medium', Mode: 'NON_FIPS', SubnetIds: zones.map(() => `subnet-${randomBytes(9).toString('hex').slice(0, 17)}`),
  }, caller);
  const clusterId = (created['Cluster'] as { ClusterId: string }).ClusterId;
  await waitFor(service, caller, clusterId, (c) => c['State'] === 'UNINITIALIZED');
  await service.operations.CreateHsm({ ClusterId: clusterId, AvailabilityZone: zones[0] }, caller);
  const withCsr = await waitFor(service, caller, clusterId, (c) => typeof (c['Certificates'] as Record<string, unknown>)['ClusterCsr'] === 'string');
  const customerCa = await createDevelopmentCustomerCa();
  writeFileSync(join(u.dataDir, CUSTOMER_CA_FILE), customerCa.certificatePem, { mode: 0o644 });
  const signedCert = await customerCa.signClusterCsr((withCsr['Certificates'] as { ClusterCsr: string }).ClusterCsr);
  await service.operations.InitializeCluster({ ClusterId: clusterId, SignedCert: signedCert, TrustAnchor: customerCa.certificatePem }, caller);
  const initialised = await waitFor(service, caller, clusterId, (c) => c['State'] === 'INITIALIZED');
  const first = (initialised['Hsms'] as Array<{ EniIp: string }>)[0] ?? fail('COFFER_CLUSTER_UNAVAILABLE');
  const admin = { name: ADMIN_NAME, password: password() };
  const cryptoUser = { name: CRYPTO_USER_NAME, password: password() };
  await activate(first.EniIp, service.config.dataPlanePort, customerCa.certificatePem, initialised['PreCoPassword'] as string, admin, cryptoUser);
  await waitFor(service, caller, clusterId, (c) => c['State'] === 'ACTIVE');
  for (let i = 1; i < hsms; i++) await service.operations.CreateHsm({ ClusterId: clusterId, AvailabilityZone: zones[i % zones.length] }, caller);
  const ready = await waitFor(service, caller, clusterId, (c) => c['State'] === 'ACTIVE' && (c['Hsms'] as unknown[]).length === hsms
    && (c['Hsms'] as Array<{ State: string }>).every((h) => h.State === 'ACTIVE'));
  const file: DevClusterFile = {
    clusterId, region: region.region, service: service.endpoint, customerCa: join(u.dataDir, CUSTOMER_CA_FILE), admin, cryptoUser,
    nodes: (ready['Hsms'] as Array<{ EniIp: string }>).map((h) => ({ host: h.EniIp, port: service.config.dataPlanePort })),
  };
  const temporary = `${path}.${process.pid}.tmp`;
  rmSync(temporary, { force: true });
  writeFileSync(temporary, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  renameSync(temporary, path);
  return path;
}

/** DescribeClusters for one cluster until `done` holds (the orchestrator ticks in the meantime). */
async function waitFor(service: RunningService, caller: Caller, clusterId: string, done: (c: ApiOutput) => boolean): Promise<ApiOutput> {
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  for (;;) {
    const out = await service.operations.DescribeClusters({ Filters: { clusterIds: [clusterId] } }, caller);
    const cluster = (out['Clusters'] as ApiOutput[])[0];
    if (cluster !== undefined && done(cluster)) return cluster;
    if (Date.now() > deadline) fail('COFFER_CLUSTER_UNAVAILABLE', { reason: 'cluster-not-ready' });
    await service.orchestrator.tick();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The customer's part, over the data plane with the customer CA as the only trust. */
async function activate(host: string, port: number, ca: string, preCoPassword: string, admin: DevClusterFile['admin'], cryptoUser: DevClusterFile['cryptoUser']): Promise<void> {
  const conn = await Connection.connect({ host, port, ca });
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

/** A random development password (CloudHSM's 8–32 characters). */
function password(): string {
  return randomBytes(24).toString('base64url').slice(0, 24);
}
