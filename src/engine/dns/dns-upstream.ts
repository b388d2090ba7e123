/**
 * Forwarding of DNS queries to the upstream resolvers. The query's bytes are relayed
 * unchanged and the upstream's answer comes back unchanged (same id, flags, EDNS
 * options, DNSSEC records): btrfly never re-encodes what it does not answer itself.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { BtrflyError } from '../../errors';
import { isResponseTo, isTruncated } from './dns-message';
import { exchangeTcp } from './dns-tcp';

/** One upstream resolver. */
export interface Upstream {
  host: string;
  port: number;
}

/**
 * Parses resolver addresses: `1.1.1.1`, `1.1.1.1:5353`, `::1`, `[::1]:5353`.
 * Throws a CONFIG error naming the bad entry.
 */
export function parseUpstreams(list: string[]): Upstream[] {
  return list.map((entry) => {
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    const [host, port] = bracketed
      ? [bracketed[1], bracketed[2]]
      : net.isIPv6(entry)
        ? [entry, undefined]
        : entry.split(':');
    const portNum = port === undefined ? 53 : Number(port);
    if (!net.isIP(host) || !Number.isInteger(portNum) || portNum < 1 || portNum > 65535) {
      throw new BtrflyError(
        'CONFIG',
        `upstream resolver "${entry}" is not an IP address with an optional port: use e.g. 1.1.1.1, 1.1.1.1:53 or [::1]:53`,
      );
    }
    return { host, port: portNum };
  });
}

/** Printable `host:port` of an upstream. */
export function formatUpstream(u: Upstream): string {
  return net.isIPv6(u.host) ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
}

/** Options of {@link forwardQuery}. */
export interface ForwardOptions {
  /** Time allowed to each upstream before the next is tried. */
  timeoutMs: number;
  /**
   * The client asked over TCP, so a truncated UDP answer is useless to it: ask the
   * same upstream again over TCP. A UDP client gets the truncated answer as is and
   * retries over TCP itself, as resolvers do.
   */
  needFullAnswer: boolean;
  signal?: AbortSignal;
}

/**
 * Sends `query` to each upstream in turn until one answers; resolves with the raw
 * answer. Rejects with the last error when none does.
 */
export async function forwardQuery(query: Buffer, upstreams: Upstream[], opts: ForwardOptions): Promise<Buffer> {
  let lastError: Error = new Error('no upstream resolvers configured');
  for (const u of upstreams) {
    if (opts.signal?.aborted) break;
    try {
      const answer = await exchangeUdp(u, query, opts);
      if (!opts.needFullAnswer || !isTruncated(answer)) return answer;
      return await exchangeTcp(u.host, u.port, query, opts);
    } catch (e) {
      lastError = new Error(`${formatUpstream(u)}: ${(e as Error).message}`);
    }
  }
  throw lastError;
}

/**
 * One query over a fresh UDP socket connected to the upstream: the kernel then
 * drops datagrams from anyone else, and the random source port per query is the
 * usual defence against spoofed answers.
 */
function exchangeUdp(u: Upstream, query: Buffer, opts: ForwardOptions): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(u.host) ? 'udp6' : 'udp4');
    let settled = false;
    const done = (err: Error | null, msg?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.close();
      if (err) reject(err);
      else resolve(msg as Buffer);
    };
    const onAbort = (): void => done(new Error('aborted'));
    const timer = setTimeout(() => done(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    opts.signal?.addEventListener('abort', onAbort);
    socket.on('error', (e) => done(e));
    socket.on('message', (msg) => {
      if (isResponseTo(msg, id)) done(null, msg);
    });
    // A connect the kernel refuses (no route, ENETUNREACH; broadcast, EACCES) comes to this
    // callback as its argument, with the socket left unconnected: sending then would throw
    // out of the callback and take the whole server down.
    socket.connect(u.port, u.host, (...args: unknown[]) => {
      if (args[0]) done(args[0] as Error);
      else if (!settled) socket.send(query, (e) => e && done(e));
    });
  });
}
