// Closing a TLS server with every socket it accepted (docs/node.md "Stopping"). node:net's close()
// only stops listening and waits for the open sockets; node:https's closeAllConnections() and the
// data plane's list of connections know a socket only once its TLS handshake has finished. A socket
// still handshaking when close() is called finishes afterwards and is then served like any other,
// for as long as its peer keeps it busy (a control plane's long-polling relay does), so close() never
// resolves and the device behind it stays open. Every socket is therefore tracked from its accept,
// and close() destroys them all.

import type { Socket } from 'node:net';
import type { Server } from 'node:tls';

export interface ServerSockets {
  /** Stops listening, destroys every accepted socket (handshaking or not); resolves once none is left. */
  close(): Promise<void>;
}

/** Tracks every socket `server` accepts, from before its handshake, so that `close()` can end them all. */
export function trackSockets(server: Server): ServerSockets {
  const sockets = new Set<Socket>();
  let closing = false;
  server.prependListener('connection', (raw: Socket) => {
    if (closing) {
      raw.destroy();
      return;
    }
    sockets.add(raw);
    raw.once('close', () => sockets.delete(raw));
  });
  return {
    close: () => new Promise<void>((resolve) => {
      closing = true;
      server.close(() => resolve());
      for (const raw of sockets) raw.destroy();
    }),
  };
}
