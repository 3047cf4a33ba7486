// Test support (not a test file): a region whose service relays cluster journals, for the tests of
// the journal's control-plane side. The real service (startService) with the real AWS SDK as its API
// client, an SQLite metadata store and a directory archive, and in-process nodes in relayed mode on
// real sockets. The orchestrator is ticked by the test (`step`); the relay runs on its own timers, so
// waits on it go through `until` with a generous bound.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import {
  CloudHSMV2Client, CreateClusterCommand, type CreateClusterCommandInput, CreateHsmCommand, DescribeBackupsCommand, DescribeClustersCommand, InitializeClusterCommand,
  type Cluster as ApiCluster,
} from '@aws-sdk/client-cloudhsm-v2';
import { Cluster } from '../../src/client/cluster.js';
import type { NodeHealth } from '../../src/management/client.js';
import { ManualClock } from '../../src/hsm/ports.js';
import type { FleetDevice } from '../../src/service/fleet/fleet_port.js';
import { startService, type RunningService } from '../../src/service/service.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import type { Archive } from '../../src/storage/archive_port.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { InProcessFleet } from './fleet/in_process_fleet.js';
import { fleetEnvironment, freePort, type FleetEnvironment } from './fleet/fleet_support.js';

const REGION = 'us-east-1';
/** Generous bound on a wait that ends on an event (the relay runs on its own timers). */
export const RELAY_WAIT_MS = 300_000;

export interface RegionOptions {
  readonly archive?: (archive: Archive) => Archive;
  readonly missingEntryWaitMs?: number;
}

interface RegionParts {
  readonly env: FleetEnvironment;
  readonly metadata: SqliteMetadataStore;
  readonly archive: Archive;
  readonly fleet: InProcessFleet;
  readonly service: RunningService;
  readonly api: CloudHSMV2Client;
  readonly clock: ManualClock;
}

export class RelayedRegion implements RegionParts {
  readonly env: FleetEnvironment;
  readonly metadata: SqliteMetadataStore;
  readonly archive: Archive;
  readonly fleet: InProcessFleet;
  readonly service: RunningService;
  readonly api: CloudHSMV2Client;
  readonly clock: ManualClock;
  readonly adminPassword = `admin-${randomBytes(9).toString('hex')}`;
  readonly #clients: Cluster[] = [];

  private constructor(o: RegionParts) {
    this.env = o.env;
    this.metadata = o.metadata;
    this.archive = o.archive;
    this.fleet = o.fleet;
    this.service = o.service;
    this.api = o.api;
    this.clock = o.clock;
  }

  /** A region named `name` (its temporary directory), with data-plane addresses for `hsms` HSMs;
   * the service logs to `logger` (default: nowhere). `options.archive` wraps the archive the service
   * uses (a test's hostile or failing archive); `options.missingEntryWaitMs`: the devices' wait for
   * a missing journal entry. */
  static async open(name: string, hsms: number, logger: Logger = pino({ level: 'silent' }), options: RegionOptions = {}): Promise<RelayedRegion> {
    const key = { accessKeyId: 'AKIDRELAYEDREGION000', secretAccessKey: randomBytes(30).toString('base64'), accountId: '111122223333', actions: ['*'] };
    const env = await fleetEnvironment(name);
    const metadata = SqliteMetadataStore.open({ path: join(env.dir, 'metadata.sqlite') });
    const fsArchive = await openFsArchive({ directory: join(env.dir, 'archive') });
    const archive = options.archive?.(fsArchive) ?? fsArchive;
    const fleet = await InProcessFleet.open({
      dir: join(env.dir, 'fleet'), authoritiesDir: env.authoritiesDir, ...env.credentials, journal: 'relayed',
      ...(options.missingEntryWaitMs === undefined ? {} : { journalMissingEntryWaitMs: options.missingEntryWaitMs }),
    });
    const clock = new ManualClock(Date.now());
    const addresses = Array.from({ length: hsms }, (_, i) => `127.0.0.${i + 2}`);
    const service = await startService({
      region: REGION, host: '127.0.0.1', port: 0, metadata, archive, fleet, accessKeys: [key], workDir: env.dir, logger,
      clock, orchestrate: false, relayJournal: true, dataPlanePort: await freePort(addresses),
      roots: { manufacturerRoot: env.credentials.manufacturerRootPem, operatorRoot: env.credentials.operatorRootPem },
    });
    const api = new CloudHSMV2Client({ endpoint: service.endpoint, region: REGION, credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey } });
    return new RelayedRegion({ env, metadata, archive, fleet, service, api, clock });
  }

  async close(): Promise<void> {
    for (const c of this.#clients) await c.close().catch(() => undefined);
    this.api.destroy();
    await this.service.close();
    await this.metadata.close();
    await this.fleet.close({ stopDevices: true });
    await this.archive.close();
    rmSync(this.env.dir, { recursive: true, force: true });
  }

  /** One orchestrator tick, its tasks finished. */
  async step(): Promise<void> {
    assert.equal(await this.service.orchestrator.tick(), true, 'this service holds the orchestrator lease');
    await this.service.orchestrator.settled();
  }

  async describe(clusterId: string): Promise<ApiCluster> {
    const out = await this.api.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
    return out.Clusters?.[0] ?? assert.fail(`cluster ${clusterId} not listed`);
  }

  async until(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + RELAY_WAIT_MS;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`${what}: not in time`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The device the HSM `hsmId` holds now. */
  async device(hsmId: string): Promise<FleetDevice> {
    return (await this.service.repository.hsm(hsmId))?.doc.device ?? assert.fail(`no device recorded for ${hsmId}`);
  }

  async health(hsmId: string): Promise<NodeHealth> {
    return this.fleet.management(await this.device(hsmId)).health();
  }

  /** Every HSM's health, by the order of `cluster.Hsms`. */
  async healths(cluster: ApiCluster): Promise<NodeHealth[]> {
    return Promise.all((cluster.Hsms ?? []).map((h) => this.health(h.HsmId as string)));
  }

  /** A data-plane client of HSM `index` of `cluster` only, as `who` (default: the admin). */
  async connect(cluster: ApiCluster, index: number, who?: { readonly username: string; readonly password: string }): Promise<Cluster> {
    const hsm = cluster.Hsms?.[index] ?? assert.fail(`HSM ${index}`);
    const credentials = who ?? { username: 'admin', password: this.adminPassword, role: 'admin' as const };
    const c = await Cluster.connect({ endpoints: [{ host: hsm.EniIp as string, port: this.service.config.dataPlanePort }], ca: this.env.customerCa.certificatePem, credentials });
    this.#clients.push(c);
    return c;
  }

  async admin(cluster: ApiCluster, index: number): Promise<Cluster> {
    return this.connect(cluster, index);
  }

  /** An activated cluster of `hsms` HSMs (NON_FIPS), and the backup taken on its activation. */
  async activeCluster(hsms: number): Promise<{ clusterId: string; backupId: string }> {
    const created = await this.api.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60001'], Mode: 'NON_FIPS' } as CreateClusterCommandInput));
    const clusterId = created.Cluster?.ClusterId as string;
    await this.step();
    await this.api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' }));
    await this.step();
    const csr = (await this.describe(clusterId)).Certificates?.ClusterCsr as string;
    await this.api.send(new InitializeClusterCommand({ ClusterId: clusterId, SignedCert: await this.env.customerCa.signClusterCsr(csr), TrustAnchor: this.env.customerCa.certificatePem }));
    await this.step();
    const initialised = await this.describe(clusterId);
    await this.step(); // the relay now serves the initialised cluster: activation is a journal entry
    const endpoints = [{ host: initialised.Hsms?.[0]?.EniIp as string, port: this.service.config.dataPlanePort }];
    await Cluster.activate({ endpoints, ca: this.env.customerCa.certificatePem, preCoPassword: initialised.PreCoPassword as string, newAdminPassword: this.adminPassword });
    await this.step();
    assert.equal((await this.describe(clusterId)).State, 'ACTIVE');
    const backups = (await this.api.send(new DescribeBackupsCommand({ Filters: { clusterIds: [clusterId] } }))).Backups ?? [];
    const backupId = backups.find((b) => b.BackupState === 'READY')?.BackupId ?? assert.fail('a backup on activation');
    for (let i = 1; i < hsms; i++) {
      await this.api.send(new CreateHsmCommand({ ClusterId: clusterId, AvailabilityZone: 'us-east-1a' }));
      await this.step();
    }
    await this.step(); // the relay serves every HSM once it is ACTIVE
    assert.deepEqual((await this.describe(clusterId)).Hsms?.map((h) => h.State), Array.from({ length: hsms }, () => 'ACTIVE'));
    return { clusterId, backupId };
  }
}
