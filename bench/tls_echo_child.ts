// The transport floor of the node bench (bench/node_bench.ts): a TLS 1.3 server process that sends
// back every byte it receives, one write per chunk read, with the same socket settings as the node
// (TCP_NODELAY). Reads {"keyPem","certificatePem"} as one JSON line on stdin (a throw-away P-256
// key made by the bench; never on the command line), listens on 127.0.0.1 on any free port and
// prints {"port":…} on stdout. Exits when stdin closes.

import { createServer } from 'node:tls';
import { createInterface } from 'node:readline';

const lines = createInterface({ input: process.stdin });
const first = await new Promise<string>((resolve) => lines.once('line', resolve));
const { keyPem, certificatePem } = JSON.parse(first) as { keyPem: string; certificatePem: string };
const server = createServer({ key: keyPem, cert: certificatePem, minVersion: 'TLSv1.3' }, (socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => socket.write(chunk));
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }) + '\n');
});
lines.on('close', () => server.close());
process.stdin.on('end', () => process.exit(0));
