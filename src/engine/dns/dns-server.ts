/**
 * btrfly's DNS server (docs/contract.md, "The parts": DNS): a client in a session gets the proxy's address for
 * every name; every other allowed client gets the upstream resolvers' answer, relayed
 * byte for byte. Listens on UDP and TCP.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { BtrflyError, oneLine } from '../../errors';
import { listen } from '../base/listen';
import { isPrivateAddress, unmapAddress } from './dns-clients';
import { createQueryHandler, DnsLogEvent, QueryResult } from './dns-query-handler';
import { ProxyAddresses } from './dns-session';
import { frame, readFramedMessages } from './dns-tcp';
import { formatUpstream, parseUpstreams, Upstream } from './dns-upstream';

export type { DnsLogEvent } from './dns-query-handler';
export type { ProxyAddresses } from './dns-session';

/** Options of {@link startDnsServer}. */
export interface DnsServerOptions {
  /** Address to listen on, e.g. `127.0.0.1`, `127.77.0.1`, `0.0.0.0` or `::`. */
  address: string;
  /** 53 in host mode; 0 picks a free port (UDP and TCP may then differ). */
  port: number;
  /**
   * For a client in a session: the proxy's addresses. null: not in a session, so
   * forward upstream. Session clients never cause an upstream query.
   */
  answerFor(clientAddress: string): ProxyAddresses | null;
  /** Upstream resolvers, `ip` or `ip:port` (`[v6]:port`). */
  upstream: string[];
  /** TTL of session answers in seconds; small so a host leaving a session soon gets real answers. Default 5. */
  ttl?: number;
  /**
   * Clients (not in a session) the server forwards for; others get REFUSED.
   * Default: loopback and private ranges ({@link isPrivateAddress}).
   */
  allowClient?(clientAddress: string): boolean;
  /** Time each upstream gets before the next is tried. Default 2000 ms. */
  upstreamTimeoutMs?: number;
  /** Forwarded queries allowed in flight at once; beyond that SERVFAIL. Default 1024. */
  maxForwards?: number;
  log?(event: DnsLogEvent): void;
  /** Called for every query answered for a session client (for stats). */
  onQuery?(q: { client: string; name: string; type: string; local: boolean }): void;
}

/** A running DNS server. */
export interface DnsServer {
  udpPort: number;
  tcpPort: number;
  address: string;
  close(): Promise<void>;
}

/** A TCP client silent this long is disconnected (RFC 7766 §6.2.3 suggests seconds). */
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS = 512;

/**
 * Starts the DNS server on UDP and TCP. Rejects with a BtrflyError when it cannot
 * listen or when an upstream resolver is the server itself (which would loop).
 */
export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const upstreams = parseUpstreams(opts.upstream);
  const log = opts.log ?? ((): void => undefined);
  const stop = new AbortController();
  const handle = createQueryHandler({
    answerFor: opts.answerFor,
    allowClient: opts.allowClient ?? isPrivateAddress,
    upstreams,
    ttl: opts.ttl ?? 5,
    upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 2000,
    maxForwards: opts.maxForwards ?? 1024,
    log,
    onQuery: opts.onQuery,
    signal: stop.signal,
  });
  // A throwing callback or an encoder bug costs one message, never the server.
  const safeHandle = (raw: Buffer, client: string, tcp: boolean): QueryResult => {
    try {
      return handle(raw, unmapAddress(client), tcp);
    } catch (e) {
      log({ level: 'warn', msg: `dns: dropped a message: ${oneLine(e)}`, client });
      return null;
    }
  };

  const udp = dgram.createSocket({ type: net.isIPv6(opts.address) ? 'udp6' : 'udp4' });
  udp.on('error', (e) => log({ level: 'warn', msg: `dns: UDP socket error: ${oneLine(e)}` }));
  udp.on('message', (msg, rinfo) => {
    const reply = (out: Buffer | null): void => {
      if (out && !stop.signal.aborted) udp.send(out, rinfo.port, rinfo.address);
    };
    const result = safeHandle(msg, rinfo.address, false);
    if (result instanceof Promise) void result.then(reply);
    else reply(result);
  });

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    const client = socket.remoteAddress ?? '';
    readFramedMessages(socket, (msg) => {
      const reply = (out: Buffer | null): void => {
        if (out && socket.writable) socket.write(frame(out));
      };
      const result = safeHandle(msg, client, true);
      if (result instanceof Promise) void result.then(reply);
      else reply(result);
    });
  });
  tcp.maxConnections = MAX_TCP_CONNECTIONS;
  tcp.on('error', (e) => log({ level: 'warn', msg: `dns: TCP server error: ${oneLine(e)}` }));

  const close = async (): Promise<void> => {
    stop.abort();
    for (const s of sockets) s.destroy();
    await Promise.all([
      new Promise<void>((resolve) => udp.close(() => resolve())).catch(() => undefined),
      new Promise<void>((resolve) => tcp.close(() => resolve())),
    ]);
  };

  let udpPort: number;
  let tcpPort: number;
  try {
    udpPort = await bindUdp(udp, opts.address, opts.port);
    tcpPort = await listen(tcp, opts.address, opts.port === 0 ? udpPort : opts.port).catch((e: NodeJS.ErrnoException) =>
      // With port 0 the free UDP port may be taken on TCP; any free TCP port will do then.
      opts.port === 0 && e.code === 'EADDRINUSE' ? listen(tcp, opts.address, 0) : Promise.reject(e),
    );
  } catch (e) {
    await close().catch(() => undefined);
    throw new BtrflyError('NETWORK', `cannot listen for DNS on ${opts.address}:${opts.port}: ${oneLine(e)}`, { cause: e });
  }

  const loop = upstreams.find((u) => isOwnAddress(u, opts.address, [udpPort, tcpPort]));
  if (loop) {
    await close();
    throw new BtrflyError(
      'CONFIG',
      `upstream resolver ${formatUpstream(loop)} is btrfly's own DNS server, which would forward to itself: set the upstream DNS to the resolvers the host used before btrfly (e.g. --upstream-dns 1.1.1.1)`,
    );
  }

  log({ level: 'info', msg: `dns: listening on ${opts.address} udp/${udpPort} tcp/${tcpPort}`, upstream: opts.upstream });
  return { udpPort, tcpPort, address: opts.address, close };
}

function bindUdp(socket: dgram.Socket, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
}

/** True when `u` would reach this server: same port, and its own address or, on a wildcard, any local one. */
function isOwnAddress(u: Upstream, listen: string, ports: number[]): boolean {
  if (!ports.includes(u.port)) return false;
  if (u.host === listen) return true;
  const wildcard = listen === '0.0.0.0' || listen === '::';
  if (!wildcard) return false;
  if (u.host.startsWith('127.') || u.host === '::1') return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === u.host));
}
