// `coffer hsm serve`: runs one HSM node (its data plane) from a data directory. Today it serves
// development devices only: a new data directory is provisioned with throw-away development
// authorities (docs/node.md). It writes the node's TLS certificate (what clients pin) and the
// device's attestation of it into the data directory, prints one JSON line, and serves until
// SIGINT or SIGTERM.

import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { serveNode } from '../node/serve.js';

export function registerHsmCommands(program: Command): void {
  const hsm = program.command('hsm').description('run an HSM node');
  hsm
    .command('serve')
    .description('serve one HSM node’s data plane (TLS 1.3) from a data directory')
    .requiredOption('--data <dir>', 'data directory: device secret and sealed store (created 0700/0600)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'TCP port (0: any free port)', '0')
    .option('--development', 'provision a new directory with development keys (required today)')
    .action(async (opts: { data: string; host: string; port: string; development?: true }) => {
      if (opts.development !== true) fail('COFFER_CLI_USAGE', { reason: 'only development nodes can be served yet: pass --development' });
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) fail('COFFER_CLI_USAGE', { reason: 'port must be 0-65535' });
      const node = await serveNode({ dataDir: opts.data, development: true, host: opts.host, port });
      const certificatePath = join(opts.data, 'tls-certificate.pem');
      writeFileSync(certificatePath, node.dataPlane.tls.certificatePem, { mode: 0o644 });
      writeFileSync(join(opts.data, 'tls-attestation.bin'), node.dataPlane.tls.attestation, { mode: 0o644 });
      const status = node.hsm.status();
      process.stdout.write(JSON.stringify({ serial: status.serial, mode: status.mode, host: opts.host, port: node.dataPlane.port, tlsCertificate: certificatePath }) + '\n');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await node.close();
    });
}
