// `coffer hsm serve`: runs one HSM node (data plane and, with --management-port, its management
// interface) from a data directory. Today it serves development devices only: a new data directory
// is provisioned with development authorities, throw-away ones or those of --authorities
// (docs/node.md). It writes the node's start-time TLS certificate and the device's attestation of it
// into the data directory, prints ONE JSON line `{"event":"ready",…}` (the dev cluster and tests
// read it), and serves until SIGINT or SIGTERM, then closes its servers and the store. A bug (an
// untyped exception) in a request stops it at once with exit status 70 and a line on stderr that
// names it a bug (crashOnBug, serveNode's default): an HSM must not run on in an unknown state.

import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { serveNode } from '../node/serve.js';
import { LOG_LEVELS, LOG_LEVEL_DEFAULT, createLogger, isLogLevel } from '../node/log.js';

interface ServeFlags {
  readonly data: string;
  readonly host: string;
  readonly port: string;
  readonly managementPort?: string;
  readonly authorities?: string;
  readonly clientCa: readonly string[];
  readonly development?: true;
  readonly mode: string;
  readonly journal: string;
  readonly logLevel: string;
  readonly metrics: string;
  readonly audit: string;
}

function portOf(value: string, flag: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) fail('COFFER_CLI_USAGE', { reason: `${flag} must be 0-65535` });
  return port;
}

function collect(value: string, previous: readonly string[]): string[] {
  return [...previous, value];
}

/** Resolves when the process is asked to stop. */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function serve(opts: ServeFlags): Promise<void> {
  if (opts.development !== true) fail('COFFER_CLI_USAGE', { reason: 'only development nodes can be served yet: pass --development' });
  const port = portOf(opts.port, '--port');
  const managementPort = opts.managementPort === undefined ? undefined : portOf(opts.managementPort, '--management-port');
  if (!isLogLevel(opts.logLevel)) fail('COFFER_CLI_USAGE', { reason: `--log-level must be one of ${LOG_LEVELS.join(', ')}` });
  if (opts.mode !== 'FIPS' && opts.mode !== 'NON_FIPS') fail('COFFER_CLI_USAGE', { reason: '--mode must be FIPS or NON_FIPS' });
  if (opts.journal !== 'relayed' && opts.journal !== 'solo') fail('COFFER_CLI_USAGE', { reason: '--journal must be relayed or solo' });
  if (opts.metrics !== 'on' && opts.metrics !== 'off') fail('COFFER_CLI_USAGE', { reason: '--metrics must be on or off' });
  if (opts.audit !== 'on' && opts.audit !== 'off') fail('COFFER_CLI_USAGE', { reason: '--audit must be on or off' });
  const log = createLogger({ level: opts.logLevel });
  const clientTrustAnchors = opts.clientCa.map((f) => readFileSync(f, 'utf8'));
  const stopping = stopSignal(); // listen before the (slow) start, so an early SIGTERM still stops cleanly
  const node = await serveNode({
    dataDir: opts.data, development: true, host: opts.host, port, log, mode: opts.mode, journal: opts.journal, metrics: opts.metrics, audit: opts.audit,
    ...(opts.authorities === undefined ? {} : { authoritiesDir: opts.authorities }),
    ...(managementPort === undefined ? {} : { managementPort }),
    ...(clientTrustAnchors.length === 0 ? {} : { clientTrustAnchors }),
  });
  const certificatePath = join(opts.data, 'tls-certificate.pem');
  writeFileSync(certificatePath, node.dataPlane.tls.certificatePem, { mode: 0o644 });
  writeFileSync(join(opts.data, 'tls-attestation.bin'), node.dataPlane.tls.attestation, { mode: 0o644 });
  const status = node.hsm.status();
  const ready = {
    event: 'ready', host: opts.host, port: node.dataPlane.port, managementPort: node.management?.port ?? null,
    serial: status.serial, mode: status.mode, journal: node.hsm.journal.mode(), pid: process.pid, tlsCertificate: certificatePath,
  };
  process.stdout.write(JSON.stringify(ready) + '\n');
  const signal = await stopping;
  log.info({ event: 'stopping', signal }, 'stopping');
  await node.close();
}

export function registerHsmCommands(program: Command): void {
  const hsm = program.command('hsm').description('run an HSM node');
  hsm
    .command('serve')
    .description('serve one HSM node: data plane (TLS 1.3) and, with --management-port, its management interface (mutual TLS)')
    .requiredOption('--data <dir>', 'data directory: device secret and sealed store (created 0700/0600)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'data-plane TCP port (0: any free port)', '0')
    .option('--management-port <port>', 'management interface TCP port (0: any free port); absent: not served')
    .option('--authorities <dir>', 'development authorities to provision a new device with (saved by `coffer dev cluster`)')
    .option('--client-ca <file>', 'a PEM CA whose client certificates the data plane accepts (repeatable)', collect, [])
    .option('--development', 'provision a new directory with development keys (required today)')
    .option('--mode <mode>', 'the mode a new device is commissioned in: FIPS | NON_FIPS (an existing device keeps its own)', 'NON_FIPS')
    .option('--journal <mode>', 'cluster journal: relayed (a control plane orders and relays the entries; fleets start nodes so) | solo (the node orders its own)', 'solo')
    .option('--metrics <on|off>', 'Prometheus metrics at GET /metrics on the management interface (docs/metrics.md); off measures nothing', 'on')
    .option('--audit <on|off>', 'the device\'s audit log in the data directory, served at GET /v1/audit (docs/audit.md); off keeps none', 'on')
    .option('--log-level <level>', `structured log on stderr (JSON lines): ${LOG_LEVELS.join(' | ')}`, LOG_LEVEL_DEFAULT)
    .action(serve);
}
