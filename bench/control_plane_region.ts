// A region of the control plane assembled for bench/control_plane_bench.ts the way `coffer up`
// assembles one (src/cli/up.ts): startService on SQLite metadata and a filesystem archive, a local
// fleet of real `coffer hsm serve` processes with development authorities, an AWS SDK client
// (@aws-sdk/client-cloudhsm-v2 over HTTP with SigV4), and a cluster made and activated the way a
// customer makes one (src/cli/up_cluster.ts). Unlike `coffer up` the probe interval is the bench's
// to choose, and the orchestrator may be left off (it is then ticked by hand).

import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import {
  CloudHSMV2Client, CreateClusterCommand, type CreateClusterCommandInput, CreateHsmCommand, DescribeClustersCommand, InitializeClusterCommand, type Cluster as ApiCluster,
} from '@aws-sdk/client-cloudhsm-v2';
import { Cluster } from '../src/client/cluster.js';
import { createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../src/factory/development.js';
import { pemOf } from '../src/formats/x509.js';
import { LocalFleet } from '../src/service/fleet/local_fleet.js';
import type { FleetCredentials } from '../src/service/fleet/verify.js';
import { startService, type RunningService } from '../src/service/service.js';
import { openFsArchive } from '../src/storage/archive_fs.js';
import type { Archive } from '../src/storage/archive_port.js';
import { SqliteMetadataStore } from '../src/storage/metadata_sqlite.js';

export const REGION = 'us-east-1';
const MAIN_JS = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** How long set-up waits for a cluster state before giving up (a loaded machine is slow). */
const WAIT_MS = 10 * 60_000;
/** DescribeClusters polling while waiting for a state: fine enough for the timed waits. */
export const POLL_MS = 20;

export interface Environment {
  readonly dir: string;
  readonly authoritiesDir: string;
  readonly credentials: FleetCredentials;
  readonly fleet: LocalFleet;
  readonly dataPlanePort: number;
}

/** Development authorities, the management client, and a local fleet under `dir`. */
export async function environment(dir: string): Promise<Environment> {
  const authorities = await createDevelopmentAuthorities();
  const authoritiesDir = join(dir, 'authorities');
  try {
    saveDevelopmentAuthorities(authorities, authoritiesDir);
    const client = await issueManagementClientCertificate(authorities.operator, 'coffer control plane bench');
    const credentials: FleetCredentials = { ...client, manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate) };
    const fleet = await LocalFleet.open({ dir: join(dir, 'fleet'), authoritiesDir, mainJs: MAIN_JS, ...credentials });
    // The local fleet hands out 127.0.0.2 upwards; the cluster's one data-plane port must be free on them.
    const dataPlanePort = await freePort(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']);
    return { dir, authoritiesDir, credentials, fleet, dataPlanePort };
  } finally {
    authorities.akbk?.destroy();
  }
}

export interface Region {
  readonly service: RunningService;
  readonly metadata: SqliteMetadataStore;
  readonly archive: Archive;
  readonly api: CloudHSMV2Client;
  readonly accessKey: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** The service's log (pino JSON lines). */
  readonly logPath: string;
  close(): Promise<void>;
}

/** One region's service in `env.dir/<name>`, its log at info level to a file (as `coffer up`'s). */
export async function startRegion(env: Environment, name: string, o: { readonly probeIntervalMs: number; readonly orchestrate: boolean }): Promise<Region> {
  const dir = join(env.dir, name);
  const workDir = join(dir, 'work');
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const accessKey = { accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64').slice(0, 40), accountId: '111122223333', actions: ['*'] };
  const metadata = SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const archive = await openFsArchive({ directory: join(dir, 'archive') });
  const logPath = join(dir, 'service.log');
  const logger = pino({ level: 'info', base: { region: REGION } }, createWriteStream(logPath, { flags: 'a', mode: 0o600 }));
  const service = await startService({
    region: REGION, host: '127.0.0.1', port: 0, metadata, archive, fleet: env.fleet, accessKeys: [accessKey], workDir, logger,
    dataPlanePort: env.dataPlanePort, probeIntervalMs: o.probeIntervalMs, orchestrate: o.orchestrate,
    roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
  });
  const api = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: accessKey.accessKeyId, secretAccessKey: accessKey.secretAccessKey } });
  return {
    service, metadata, archive, api, accessKey, logPath,
    close: async () => {
      api.destroy();
      await service.close();
      await archive.close();
      await metadata.close();
    },
  };
}

/** CreateCluster through the API (NON_FIPS: this SDK version predates `Mode`; its serialiser sends the member as given). */
export async function createCluster(api: CloudHSMV2Client): Promise<string> {
  const input = { HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002', 'subnet-0a1b2c3d4e5f60003'], Mode: 'NON_FIPS' };
  const created = await api.send(new CreateClusterCommand(input as CreateClusterCommandInput));
  return created.Cluster?.ClusterId ?? fail('CreateCluster returned no cluster id');
}

export async function describe(api: CloudHSMV2Client, clusterId: string): Promise<ApiCluster> {
  const out = await api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
  return out.Clusters?.[0] ?? fail(`cluster ${clusterId} not listed`);
}

/** DescribeClusters every POLL_MS until `done` holds; `tick` drives an orchestrator that does not run on its own. */
export async function waitFor(region: Region, clusterId: string, done: (c: ApiCluster) => boolean, tick = false): Promise<ApiCluster> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const c = await describe(region.api, clusterId);
    if (done(c)) return c;
    if (Date.now() > deadline) fail(`cluster ${clusterId} did not reach the state awaited (now ${c.State ?? '?'})`);
    if (tick) {
      await region.service.orchestrator.tick();
      await region.service.orchestrator.settled();
    }
    await sleep(POLL_MS);
  }
}

export interface ActiveCluster {
  readonly clusterId: string;
  readonly hsmId: string;
  readonly caPem: string;
  readonly cryptoUser: { readonly username: string; readonly password: string };
}

/** A cluster of one HSM, initialised with a development customer CA, activated, with a crypto user. */
export async function activeCluster(region: Region): Promise<ActiveCluster> {
  const { api } = region;
  const clusterId = await createCluster(api);
  await waitFor(region, clusterId, (c) => c.State === 'UNINITIALIZED');
  await api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: `${REGION}a` }));
  const withCsr = await waitFor(region, clusterId, (c) => typeof c.Certificates?.ClusterCsr === 'string');
  const ca = await createDevelopmentCustomerCa();
  const signed = await ca.signClusterCsr(withCsr.Certificates?.ClusterCsr ?? '');
  await api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: signed, TrustAnchor: ca.certificatePem }));
  const initialised = await waitFor(region, clusterId, (c) => c.State === 'INITIALIZED');
  const hsm = initialised.Hsms?.[0] ?? fail('no HSM');
  const endpoints = [{ host: hsm.EniIp ?? '', port: region.service.config.dataPlanePort }];
  const adminPassword = randomBytes(12).toString('base64url');
  await Cluster.activate({ endpoints, ca: ca.certificatePem, preCoPassword: initialised.PreCoPassword ?? '', newAdminPassword: adminPassword });
  await waitFor(region, clusterId, (c) => c.State === 'ACTIVE');
  const cryptoUser = { username: 'bench', password: randomBytes(12).toString('base64url') };
  const admin = await Cluster.connect({ endpoints, ca: ca.certificatePem, credentials: { username: 'admin', password: adminPassword, role: 'admin' } });
  try {
    await admin.users.create(cryptoUser.username, cryptoUser.password, 'crypto-user');
  } finally {
    await admin.close();
  }
  return { clusterId, hsmId: hsm.HsmId ?? '', caPem: ca.certificatePem, cryptoUser };
}

/** The SDK connected to the given HSMs of the cluster. */
export function connect(region: Region, cluster: ActiveCluster, hsms: ApiCluster['Hsms']): Promise<Cluster> {
  const endpoints = (hsms ?? []).map((h) => ({ host: h.EniIp ?? '', port: region.service.config.dataPlanePort }));
  return Cluster.connect({ endpoints, ca: cluster.caPem, credentials: cluster.cryptoUser });
}

/** A TCP port free on every one of `hosts` right now. */
export async function freePort(hosts: readonly string[]): Promise<number> {
  for (;;) {
    const port = await listenOnce(hosts[0] ?? '127.0.0.1', 0);
    let free = true;
    for (const h of hosts.slice(1)) free = free && (await listenOnce(h, port).then(() => true, () => false));
    if (free) return port;
  }
}

function listenOnce(host: string, port: number): Promise<number> {
  return new Promise((ok, no) => {
    const s = createServer();
    s.once('error', no);
    s.listen(port, host, () => {
      const got = (s.address() as { port: number }).port;
      s.close(() => ok(got));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function fail(message: string): never {
  throw new Error(`control plane bench: ${message}`);
}
