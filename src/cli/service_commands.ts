// `coffer up` (a whole development region in one command, src/cli/up.ts) and `coffer service`
// (one region's control plane on adapters the operator names: docs/control-plane.md).
//
// Like `coffer dev cluster`, stdout carries JSON lines only (`{"event":"ready",…}` once the service
// answers), so it pipes into jq; stderr carries what a person reads: the `export` lines that point
// the AWS CLI (and, with --cluster, the `coffer` CLI) at what started. Ctrl-C stops the services
// and the HSM processes; starting again on the same data directory brings everything back.
//
// `coffer service` prints one ready line on stdout too (`{"event":"ready","endpoint",…}`) and its
// pino log on stderr; SIGINT or SIGTERM stops it, leaving the fleet's HSM processes running.
// `--fleet remote` runs it on registered remote nodes (docs/fleet.md "Remote fleet").

import type { Command } from 'commander';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { exportLines } from './dev_commands.js';
import { API_PORT_DEFAULT, CONFIG_FILE, CREDENTIALS_FILE, PROFILE, up } from './up.js';
import { ensureDevCluster } from './up_cluster.js';
import { DATA_PLANE_PORT_DEFAULT } from '../service/config.js';
import pino from 'pino';
import { SERVICE_DEFAULTS, serviceConfig, startServiceProcess, type ServiceCommandOptions } from './service_config.js';

/** A development region is one machine's worth of HSMs. */
const UP_CLUSTER_HSMS_MAX = 8;
const REGION = /^[a-z]{2}(-gov)?-(east|west|north|south|central){1,2}-\d$/;

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

function port(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n > 65535) fail('COFFER_CLI_USAGE', { reason: `${name} must be a TCP port (0-65535)` });
  return n;
}

export function registerServiceCommands(program: Command): void {
  program
    .command('up')
    .description('start a development region: the CloudHSMv2 control plane, its archive and a local fleet of HSMs, on one data directory')
    .option('--data-dir <dir>', 'where everything lives; starting again on it brings everything back', 'coffer-data')
    .option('--port <port>', 'the API port (the next regions take the next ports)', String(API_PORT_DEFAULT))
    .option('--regions <list>', 'comma-separated regions, one service each, peered for CopyBackupToRegion', 'us-east-1')
    .option('--data-plane-port <port>', 'the port every HSM listens on at its own 127.0.0.N address', String(DATA_PLANE_PORT_DEFAULT))
    .option('--cluster <n>', `also create an activated cluster of n HSMs (1-${UP_CLUSTER_HSMS_MAX}) with a crypto user, and write cluster.json`)
    .option('--journal <mode>', "relayed (default): the service relays every cluster's journal and the HSMs act as one; solo: each HSM orders its own (docs/control-plane.md)", 'relayed')
    .option('--log-level <level>', 'log level of the service (JSON lines in regions/<region>/service.log) and of the HSM processes it starts (their node.log)', 'info')
    .option('--metrics-port <port>', 'serve each region\'s Prometheus metrics at GET /metrics on this port (the next regions take the next ports), unauthenticated (docs/metrics.md)')
    .option('--metadata <url>', 'keep the metadata in this PostgreSQL database (postgres://…), schema coffer_<region>, instead of an SQLite file per region; a new data directory only (docs/getting-started.md)')
    .action(async (opts: { dataDir: string; port: string; regions: string; dataPlanePort: string; cluster?: string; journal: string; logLevel: string; metricsPort?: string; metadata?: string }) => {
      const regions = opts.regions.split(',').map((r) => r.trim());
      if (regions.length === 0 || !regions.every((r) => REGION.test(r)) || new Set(regions).size !== regions.length) fail('COFFER_CLI_USAGE', { reason: '--regions must list distinct AWS-style regions, e.g. us-east-1,eu-west-1' });
      if (opts.journal !== 'relayed' && opts.journal !== 'solo') fail('COFFER_CLI_USAGE', { reason: '--journal must be relayed or solo' });
      const hsms = opts.cluster === undefined ? 0 : Number(opts.cluster);
      if (opts.cluster !== undefined && (!/^\d+$/.test(opts.cluster) || hsms < 1 || hsms > UP_CLUSTER_HSMS_MAX)) fail('COFFER_CLI_USAGE', { reason: `--cluster must be 1-${UP_CLUSTER_HSMS_MAX}` });
      const stopping = new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      const u = await up({ dataDir: opts.dataDir, port: port(opts.port, '--port'), regions, dataPlanePort: port(opts.dataPlanePort, '--data-plane-port'), journal: opts.journal, logLevel: opts.logLevel,
        ...(opts.metricsPort === undefined ? {} : { metricsPort: port(opts.metricsPort, '--metrics-port') }), ...(opts.metadata === undefined ? {} : { metadata: opts.metadata }) });
      try {
        const clusterFile = hsms > 0 ? await ensureDevCluster(u, hsms) : undefined;
        const endpoints = u.regions.map((r) => ({ region: r.region, endpoint: r.service.endpoint, ...(r.service.metricsPort === undefined ? {} : { metricsPort: r.service.metricsPort }) }));
        process.stdout.write(JSON.stringify({ event: 'ready', dataDir: u.dataDir, regions: endpoints, ...(clusterFile === undefined ? {} : { clusterFile }) }) + '\n');
        const first = endpoints[0] as { endpoint: string };
        const lines = [
          `# Coffer is running (Ctrl-C stops it). API: ${endpoints.map((e) => `${e.region} ${e.endpoint}`).join(', ')}. From another shell:`,
          `export AWS_SHARED_CREDENTIALS_FILE=${shellQuote(join(u.dataDir, CREDENTIALS_FILE))} AWS_CONFIG_FILE=${shellQuote(join(u.dataDir, CONFIG_FILE))} AWS_PROFILE=${PROFILE}`,
          `aws cloudhsmv2 describe-clusters --endpoint-url ${first.endpoint}`,
          ...(clusterFile === undefined ? [] : exportLines(clusterFile)),
        ];
        process.stderr.write(lines.join('\n') + '\n');
        await stopping;
      } finally {
        await u.stop({ stopDevices: true });
      }
    });

  program
    .command('service')
    .description("run one region's control plane on the metadata store, archive and fleet named (several processes may share one PostgreSQL store)")
    .option('--region <region>', 'the region this control plane serves, e.g. us-east-1')
    .option('--host <host>', 'the address the API listens on', '127.0.0.1')
    .option('--port <port>', 'the API port (0: any free port)', String(API_PORT_DEFAULT))
    .option('--metadata <location>', 'the metadata store: an SQLite file path, or a postgres:// URL')
    .option('--schema <name>', 'PostgreSQL only: the schema holding the tables')
    .option('--archive <location>', 'the backup archive: a directory, or s3://bucket[/prefix] (credentials from the AWS environment)')
    .option('--s3-endpoint <url>', 'an S3-compatible endpoint (path-style addressing), e.g. http://127.0.0.1:7480')
    .option('--s3-region <region>', "the bucket's region (default --region)")
    .option('--fleet <kind>', 'local: HSM processes this service starts; remote: nodes registered with `coffer fleet register`', 'local')
    .option('--fleet-dir <dir>', "--fleet local: the fleet's directory, fleet.json and the HSMs' data")
    .option('--authorities <dir>', '--fleet local: the development authorities every HSM is provisioned with')
    .option('--management-cert <file>', "the service's management client certificate (PEM, operator-issued)")
    .option('--management-key <file>', 'its private key (PEM)')
    .option('--manufacturer-root <file>', 'the manufacturer root certificate (PEM)')
    .option('--operator-root <file>', 'the operator root certificate (PEM)')
    .option('--access-keys <file>', 'the access keys the API accepts (JSON: docs/control-plane.md)')
    .option('--peers <file>', 'peer regions for CopyBackupToRegion: endpoints and the keys to sign with (JSON: docs/control-plane.md)')
    .option('--work-dir <dir>', 'where blobs in transit go (default: a fresh temporary directory)')
    .option('--data-plane-port <port>', 'the port every HSM listens on at its own 127.0.0.N address', String(SERVICE_DEFAULTS.dataPlanePort))
    .option('--probe-interval-ms <ms>', "the orchestrator's tick and health-probe interval", String(SERVICE_DEFAULTS.probeIntervalMs))
    .option('--journal <mode>', "relayed (default): this service relays every cluster's journal, so its HSMs act as one (the fleet's devices must be relayed); solo: each HSM orders its own (docs/control-plane.md)", SERVICE_DEFAULTS.journal)
    .option('--log-level <level>', 'log level of the service (JSON lines on stderr) and of the HSM processes a local fleet starts (their node.log)', 'info')
    .option('--metrics-port <port>', 'serve Prometheus metrics at GET /metrics on this port of --host, unauthenticated: ids, states, counts, no secret (docs/metrics.md); 0: any free port')
    .action(async (opts: ServiceCommandOptions) => {
      const config = serviceConfig(opts);
      const stopping = new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      const logger = pino({ level: config.logLevel, base: { region: config.region, pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
      const running = await startServiceProcess(config, logger);
      try {
        process.stdout.write(JSON.stringify({ event: 'ready', endpoint: running.service.endpoint, region: config.region, pid: process.pid, metricsPort: running.service.metricsPort ?? null }) + '\n');
        const signal = await stopping;
        logger.info({ event: 'service.stopping', signal }, 'stopping');
      } finally {
        await running.stop();
      }
    });
}
