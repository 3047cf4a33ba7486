// One region's control plane, assembled (docs/control-plane.md): the CloudHSMv2 API on HTTP over
// the metadata store, the archive and the fleet it is given, and the orchestrator. The `coffer
// service` and `coffer up` commands (src/cli/) choose the adapters; tests pass their own. Started on
// existing data, it reattaches the HSMs' devices through the fleet before the orchestrator runs.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BackupRoots } from '../formats/backup.js';
import type { Archive } from '../storage/archive_port.js';
import type { MetadataStore } from '../storage/metadata_port.js';
import type { Operations } from './api/operations.js';
import { createApiHandler } from './api/server.js';
import type { AccessKey } from './api/sigv4.js';
import { BackupFlow } from './backup_flow.js';
import { systemClock, type Clock } from './clock.js';
import { BACKUP_INTERVAL_MS_DEFAULT, DATA_PLANE_PORT_DEFAULT, PROBE_INTERVAL_MS_DEFAULT, defaultZones, type ServiceConfig } from './config.js';
import { controlPlaneOperations, type CopyToRegion } from './control_plane.js';
import { withConsole } from './console_http.js';
import { AuditCollector } from './audit_collector.js';
import { withAuditLog } from './audit_http.js';
import { backupCopyRoute, httpCopy } from './copy_http.js';
import type { Fleet } from './fleet/fleet_port.js';
import { RemoteFleet } from './fleet/remote_fleet.js';
import { fleetOperations } from './fleet_operations.js';
import { Orchestrator } from './orchestrator.js';
import type { PeerEndpoint } from './peer_config.js';
import { Repository } from './repository.js';
import { HsmFigures, monitoringOperations } from './figures.js';
import { ServiceMetrics, startMetricsServer, type MetricsServer } from './metrics.js';

export interface ServiceOptions {
  readonly region: string;
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  readonly metadata: MetadataStore;
  readonly archive: Archive;
  readonly fleet: Fleet;
  /** The manufacturer and operator roots every backup's device chain must end in. */
  readonly roots: BackupRoots;
  readonly accessKeys: readonly AccessKey[];
  /** A directory of the service's own for blobs in transit. */
  readonly workDir: string;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly availabilityZones?: readonly string[];
  readonly dataPlanePort?: number;
  readonly backupIntervalMs?: number;
  readonly probeIntervalMs?: number;
  /** False: the orchestrator does not tick on its own (tests call `orchestrator.tick()`). */
  readonly orchestrate?: boolean;
  /** CopyBackupToRegion's transport to peer regions in this process (`coffer up`). */
  readonly copyTo?: CopyToRegion;
  /** Relay every cluster's journal (the fleet must start its devices relayed); default false here,
   * true in `coffer service` and `coffer up` (--journal). */
  readonly relayJournal?: boolean;
  /** Peer regions' services, reached over HTTP (copy_http.ts) when `copyTo` is not given. */
  readonly peers?: readonly PeerEndpoint[];
  /** Serve Prometheus metrics at GET /metrics on this port of `host` (0: any free port), without
   * authentication (docs/metrics.md "Service"); absent: not served (they are still counted). */
  readonly metricsPort?: number;
}

export interface RunningService {
  readonly endpoint: string;
  readonly port: number;
  readonly config: ServiceConfig;
  readonly operations: Operations;
  readonly orchestrator: Orchestrator;
  readonly repository: Repository;
  readonly backups: BackupFlow;
  readonly metrics: ServiceMetrics;
  /** The metrics port, when `metricsPort` was given. */
  readonly metricsPort: number | undefined;
  /** Stops the API and the orchestrator; the store, archive and fleet stay the caller's to close. */
  close(): Promise<void>;
}

export async function startService(o: ServiceOptions): Promise<RunningService> {
  const config: ServiceConfig = {
    region: o.region,
    availabilityZones: o.availabilityZones ?? defaultZones(o.region),
    dataPlanePort: o.dataPlanePort ?? DATA_PLANE_PORT_DEFAULT,
    backupIntervalMs: o.backupIntervalMs ?? BACKUP_INTERVAL_MS_DEFAULT,
    probeIntervalMs: o.probeIntervalMs ?? PROBE_INTERVAL_MS_DEFAULT,
    clock: o.clock ?? systemClock,
    // A remote fleet's HSMs live at its registered nodes' addresses, and its registry is offered
    // on the API (fleet_operations.ts); a local or test fleet chooses loopback addresses.
    hsmAddresses: o.fleet instanceof RemoteFleet ? 'registered-nodes' : 'loopback',
    relayJournal: o.relayJournal ?? false,
  };
  const repository = new Repository(o.metadata);
  const metrics = new ServiceMetrics();
  metrics.attach({ repository, store: o.metadata, clock: config.clock, relayJournal: config.relayJournal === true });
  const backups = new BackupFlow({ archive: o.archive, roots: o.roots, clock: config.clock, workDir: o.workDir, metrics });
  const audit = new AuditCollector({ archive: o.archive, roots: o.roots, clock: config.clock, log: o.logger.child({ part: 'audit' }) });
  const copyTo = o.copyTo ?? (o.peers === undefined ? undefined : httpCopy({ region: o.region, archive: o.archive, workDir: o.workDir, logger: o.logger.child({ part: 'copy' }) }, o.peers));
  const operations = controlPlaneOperations(repository, config, copyTo);
  const figures = new HsmFigures();
  const orchestrator = new Orchestrator({
    repo: repository, fleet: o.fleet, backups, config, log: o.logger.child({ part: 'orchestrator' }), metrics, figures, holder: `${hostname()}:${process.pid}:${randomUUID()}`, audit,
  });
  // SigV4's clock-skew check compares with the client's wall clock: always the system's, whatever
  // clock drives the orchestrator (a test moves that one by days).
  // Copies from peer regions arrive on the API's port; the access keys decide who may send them.
  const receive = backupCopyRoute({ region: o.region, archive: o.archive, repository, backups, clock: config.clock, workDir: o.workDir });
  const handler = createApiHandler({
    operations, accessKeys: o.accessKeys, region: o.region, clock: systemClock, logger: o.logger.child({ part: 'api' }), streamedRoutes: [receive],
    onCall: (operation, outcome, seconds) => metrics.apiCall(operation, outcome, seconds),
    monitoring: monitoringOperations({ repo: repository, figures, nowMs: () => config.clock.nowMs(), probeIntervalMs: config.probeIntervalMs, relayJournal: config.relayJournal === true }),
    ...(o.fleet instanceof RemoteFleet ? { fleet: fleetOperations(o.fleet, o.logger.child({ part: 'fleet' })) } : {}),
  });
  // The web console's static files share the API's port (console_http.ts); it calls the API like any client.
  // The audit endpoint shares the API's port and its access keys (audit_http.ts).
  const server = createServer(withAuditLog(withConsole(handler), {
    collector: audit, accessKeys: o.accessKeys, region: o.region, roots: o.roots, clock: config.clock, logger: o.logger.child({ part: 'audit' }),
    devicesOf: async (accountId) => {
      const clusters = (await repository.clusters()).filter((c) => c.doc.accountId === accountId);
      const hsms = (await Promise.all(clusters.map((c) => repository.hsmsOf(c.doc.clusterId)))).flat();
      return hsms.flatMap((h) => (h.doc.device === null ? [] : [{ serial: h.doc.device.serial, hsmId: h.doc.hsmId, clusterId: h.doc.clusterId }]));
    },
  }));
  await listen(server, o.host, o.port);
  const port = (server.address() as AddressInfo).port;
  let metricsServer: MetricsServer | undefined;
  // A service started on existing data finds its HSMs' devices again before it orchestrates them.
  try {
    if (o.metricsPort !== undefined) metricsServer = await startMetricsServer(metrics, o.host, o.metricsPort, o.logger.child({ part: 'metrics' }));
    await orchestrator.reattach();
  } catch (e) {
    await metricsServer?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw e;
  }
  if (o.orchestrate !== false) orchestrator.start();
  o.logger.info({ event: 'service.listening', region: o.region, host: o.host, port, metricsPort: metricsServer?.port ?? null }, 'control plane listening');
  return {
    endpoint: `http://${o.host}:${port}`, port, config, operations, orchestrator, repository, backups, metrics, metricsPort: metricsServer?.port,
    close: async () => {
      await metricsServer?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await orchestrator.stop();
      o.logger.info({ event: 'service.stopped', region: o.region }, 'control plane stopped');
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
