import { once } from 'node:events';
import type { AddressInfo, Server } from 'node:net';

/**
 * Listens on `address:port` (0: any free port) and resolves with the port bound; rejects with
 * the server's 'error' (EADDRINUSE, EACCES) instead.
 */
export async function listen(server: Server, address: string, port: number): Promise<number> {
  server.listen(port, address);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}
