import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { BtrflyError } from '../errors';

/** How record reaches the real servers (SPEC section 5, "Upstream"). */
export interface UpstreamOptions {
  /** Resolvers for upstream names, `ip` or `ip:port`; default: the host's own (system) resolver. */
  dns?: string[];
  /** Fixed answers, `HOST:ADDR` (like curl's --resolve without the port). */
  resolve?: string[];
  /** Extra PEM files trusted for upstream TLS, on top of the system's CAs. */
  caFiles?: string[];
  /** Send upstream traffic through this HTTP proxy. */
  proxy?: string;
  /** Milliseconds to wait for a connection or a response head. */
  timeoutMs?: number;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * Builds the agents and the name lookup record uses for upstream requests. The lookup never
 * goes through btrfly's own DNS: in host mode the system resolver points at btrfly, so the
 * daemon passes the resolvers the host had before (`--upstream-dns`), and `--resolve` pins names.
 */
export class Upstream {
  readonly httpAgent: http.Agent;
  readonly httpsAgent: https.Agent;
  private readonly pinned = new Map<string, string>();
  private readonly resolver?: dns.promises.Resolver;
  private readonly timeoutMs: number;
  /** Local ports of our own upstream sockets, so the proxy can tell a loop (see isOwnSocket). */
  private readonly ownPorts = new Set<number>();

  constructor(opts: UpstreamOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    for (const r of opts.resolve ?? []) {
      const i = r.lastIndexOf(':');
      // HOST:ADDR; an IPv6 ADDR contains colons, so split on the first colon after the host.
      const j = r.indexOf(':');
      if (j <= 0 || i === r.length - 1) throw new BtrflyError('USAGE', `--resolve "${r}" is not HOST:ADDR: write it like registry.example:10.0.0.5`);
      const host = r.slice(0, j).toLowerCase();
      const addr = r.slice(j + 1).replace(/^\[|\]$/g, '');
      if (!net.isIP(addr)) throw new BtrflyError('USAGE', `--resolve "${r}": "${addr}" is not an IP address: write it like registry.example:10.0.0.5`);
      this.pinned.set(host, addr);
    }
    if (opts.dns && opts.dns.length > 0) {
      this.resolver = new dns.promises.Resolver({ timeout: 3000, tries: 2 });
      this.resolver.setServers(opts.dns);
    }
    const ca = [...tls.getCACertificates('default'), ...safeSystemCAs()];
    for (const f of opts.caFiles ?? []) {
      try {
        ca.push(readFileSync(f, 'utf8'));
      } catch (e) {
        throw new BtrflyError('USAGE', `cannot read --upstream-ca ${f}: ${(e as Error).message}: pass a PEM file`);
      }
    }
    // One secure context for every upstream connection. Passing `ca` itself would make Node
    // build a context per connection and put the whole bundle (~200 KB of PEM) into the agent's
    // pool key on every request (https.Agent#getName): measured as most of record's CPU time
    // on many small bodies (BENCHMARKS.md, small files).
    const secureContext = tls.createSecureContext({ ca });
    const lookup = this.lookup.bind(this) as unknown as net.LookupFunction;
    const common = { keepAlive: true, maxSockets: 64, timeout: this.timeoutMs, lookup };
    if (opts.proxy) {
      this.httpAgent = new HttpProxyAgent(opts.proxy, { ...common }) as unknown as http.Agent;
      this.httpsAgent = new HttpsProxyAgent(opts.proxy, { ...common, secureContext }) as unknown as https.Agent;
    } else {
      this.httpAgent = new http.Agent(common);
      this.httpsAgent = new https.Agent({ ...common, secureContext, ALPNProtocols: ['http/1.1'] } as https.AgentOptions);
    }
    for (const agent of [this.httpAgent, this.httpsAgent]) this.trackSockets(agent);
  }

  /** True when `socket` is a connection this process opened upstream (a loop back into the proxy). */
  isOwnSocket(socket: net.Socket): boolean {
    const addr = socket.remoteAddress ?? '';
    return (addr.startsWith('127.') || addr === '::1' || addr === '::ffff:127.0.0.1') && this.ownPorts.has(socket.remotePort ?? -1);
  }

  /** Sends a request upstream; resolves with the response head, its body unread. */
  request(url: URL, method: string, headers: http.OutgoingHttpHeaders, signal?: AbortSignal): { req: http.ClientRequest; response: Promise<http.IncomingMessage> } {
    const isHttps = url.protocol === 'https:';
    const req = (isHttps ? https : http).request({
      protocol: url.protocol,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (isHttps ? 443 : 80),
      path: url.pathname + url.search,
      method,
      headers,
      agent: isHttps ? this.httpsAgent : this.httpAgent,
      servername: net.isIP(url.hostname.replace(/^\[|\]$/g, '')) ? undefined : url.hostname,
      signal,
      timeout: this.timeoutMs,
    });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (e) => reject(upstreamError(url, e)));
      req.once('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    });
    return { req, response };
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private lookup(hostname: string, options: dns.LookupOptions, cb: LookupCallback): void {
    const host = hostname.toLowerCase();
    const pinned = this.pinned.get(host);
    const answer = (addr: string) =>
      options.all ? cb(null, [{ address: addr, family: net.isIP(addr) }]) : cb(null, addr, net.isIP(addr));
    if (pinned) return answer(pinned);
    if (net.isIP(host)) return answer(host);
    if (!this.resolver) return void dns.lookup(hostname, options, cb as never);
    const r = this.resolver;
    r.resolve4(host)
      .catch(() => r.resolve6(host))
      .then((addrs) => answer(addrs[0]))
      .catch((e: NodeJS.ErrnoException) => cb(e, ''));
  }

  private trackSockets(agent: http.Agent): void {
    const create = (agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection;
    if (typeof create !== 'function') return;
    (agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection = (...args: unknown[]) => {
      const socket = create.apply(agent, args);
      const remember = () => {
        const port = socket.localPort;
        if (port === undefined) return;
        this.ownPorts.add(port);
        socket.once('close', () => this.ownPorts.delete(port));
      };
      if (socket.localPort !== undefined) remember();
      else socket.once('connect', remember);
      return socket;
    };
  }
}

function safeSystemCAs(): string[] {
  try {
    return tls.getCACertificates('system');
  } catch {
    return [];
  }
}

/** An upstream failure as the client should see it: refused, TLS, timeout, name. */
export function upstreamError(url: URL, e: unknown): BtrflyError {
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? 'ERROR';
  const kind =
    code === 'ECONNREFUSED' ? 'connection refused' :
    code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA' ? 'name not resolved' :
    code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT' ? 'timed out' :
    code === 'ECONNRESET' ? 'connection reset' :
    /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code) ? 'TLS failure' : 'error';
  return new BtrflyError('NETWORK', `upstream ${url.host}: ${kind} (${code}: ${err.message})`, {
    httpStatus: code === 'ETIMEDOUT' ? 504 : 502,
    data: { upstreamCode: code, kind },
  });
}
