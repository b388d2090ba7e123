import type * as net from 'node:net';
import type { Logger } from './log';

/** How many connections a server holds at once: from one client address, and in all. */
export interface ConnectionLimits {
  perAddress: number;
  total: number;
}

/**
 * Caps the connections `server` holds. Past `total` Node drops new ones (`maxConnections`); past
 * `perAddress` from one client address a new one is closed at once. Without it one client that
 * opens connections and stays silent holds each until a timeout, and enough of them use up the
 * process's file descriptors: the proxy, DNS and the archive of every other host then fail too.
 * One warning per burst from an address (until its count falls back under the cap).
 */
export function limitConnections(server: net.Server, limits: ConnectionLimits, log: Logger, what: string): void {
  server.maxConnections = limits.total;
  const open = new Map<string, number>();
  const warned = new Set<string>();
  server.on('connection', (socket: net.Socket) => {
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const count = open.get(address) ?? 0;
    if (count >= limits.perAddress) {
      if (!warned.has(address)) log.warn({ client: address, limit: limits.perAddress }, `${what}: refused connections from a client past its limit of open connections`);
      warned.add(address);
      return void socket.destroy();
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
      if (left < limits.perAddress) warned.delete(address);
    });
  });
}
