// `coffer up --cluster N`: one development cluster of N HSMs made through the control plane the way
// a customer makes one (docs/getting-started.md walks the same steps with the AWS CLI):
// CreateCluster, CreateHsm, the CSR signed by a development customer CA, InitializeCluster,
// activation over the data plane with the PreCo password (the admin password set), a crypto user,
// then N − 1 more HSMs cloned by the orchestrator. Its cluster.json is what `--cluster-config`
// (CLI) and `loadClusterConfig` (SDK) read, plus the cluster id and the service endpoint.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../client/cluster.js';
import { fail } from '../errors.js';
import { createDevelopmentCustomerCa } from '../factory/development.js';
import type { ApiOutput, Caller } from '../service/api/operations.js';
import type { RunningService } from '../service/service.js';
import { CREDENTIALS_FILE, PROFILE, writeAtomically, type Up } from './up.js';

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
  /** The control plane: the SDK and CLI ask it for the cluster's HSMs (client/control_plane.ts). */
  readonly service: string;
  /** The data-plane port of every HSM, and the AWS credentials to ask the service with. */
  readonly port: number;
  readonly awsCredentials: string;
  readonly awsProfile: string;
  readonly customerCa: string;
  readonly admin: { readonly name: string; readonly password: string };
  readonly cryptoUser: { readonly name: string; readonly password: string };
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
}

/** The cluster in `<dataDir>/cluster.json` if there is one, else a new one of `hsms` HSMs. */
export async function ensureDevCluster(u: Up, hsms: number): Promise<string> {
  const path = join(u.dataDir, CLUSTER_FILE);
  const region = u.regions[0] ?? fail('COFFER_CLI_USAGE', { reason: 'no region' });
  const service = region.service;
  if (existsSync(path)) {
    // The service may listen on another port than last time: the file follows it.
    const file = JSON.parse(readFileSync(path, 'utf8')) as DevClusterFile;
    if (file.service !== service.endpoint) writeClusterFile(path, { ...file, service: service.endpoint });
    return path;
  }
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
    clusterId, region: region.region, service: service.endpoint, port: service.config.dataPlanePort, awsCredentials: join(u.dataDir, CREDENTIALS_FILE),
    awsProfile: PROFILE, customerCa: join(u.dataDir, CUSTOMER_CA_FILE), admin, cryptoUser,
    nodes: (ready['Hsms'] as Array<{ EniIp: string }>).map((h) => ({ host: h.EniIp, port: service.config.dataPlanePort })),
  };
  writeClusterFile(path, file);
  return path;
}

/** cluster.json, mode 0600 (it holds development passwords), replaced atomically. */
function writeClusterFile(path: string, file: DevClusterFile): void {
  writeAtomically(path, JSON.stringify(file, null, 2) + '\n', 0o600);
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

/** The customer's part, through the SDK, trusting the customer CA alone: activation with the PreCo
 * password (which sets the admin password), then a crypto user made by the admin. */
async function activate(host: string, port: number, ca: string, preCoPassword: string, admin: DevClusterFile['admin'], cryptoUser: DevClusterFile['cryptoUser']): Promise<void> {
  const endpoints = [{ host, port }];
  await Cluster.activate({ endpoints, ca, preCoPassword, newAdminPassword: admin.password });
  const session = await Cluster.connect({ endpoints, ca, credentials: { username: admin.name, password: admin.password, role: 'admin' } });
  try {
    await session.users.create(cryptoUser.name, cryptoUser.password, 'crypto-user');
  } finally {
    await session.close();
  }
}

/** A random development password (CloudHSM's 8–32 characters). */
function password(): string {
  return randomBytes(24).toString('base64url').slice(0, 24);
}
