import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { BtrflyError, isBtrflyError } from '../../errors';
import { UpstreamPolicy } from './upstream-policy';

/** How record reaches the real servers (docs/contract.md, "Upstream"). */
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
  /** Addresses (CIDRs) record never connects to; `btrfly serve` passes its defaults here. */
  deny?: string[];
  /** Addresses (CIDRs) let through even if `deny` matches them. */
  allow?: string[];
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
  private readonly policy?: UpstreamPolicy;
  /** Local ports of our own upstream sockets, so the proxy can tell a loop (see isOwnSocket). */
  private readonly ownPorts = new Set<number>();
  /** Our sockets whose 'connect' has not been seen yet: the proxy may accept one before it is. */
  private readonly connecting = new Set<net.Socket>();

  constructor(opts: UpstreamOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    if (opts.deny?.length) this.policy = new UpstreamPolicy(opts.deny, opts.allow);
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
    const common = { keepAlive: true, maxSockets: 64, timeout: this.timeoutMs };
    if (opts.proxy) {
      // The lookup finds the admin's proxy, which is allowed; the proxy resolves and connects to
      // the target itself, so only IP-literal targets can be checked here (see request).
      const lookup = ((h: string, o: dns.LookupOptions, cb: LookupCallback) => this.lookup(h, o, cb, false)) as unknown as net.LookupFunction;
      this.httpAgent = new HttpProxyAgent(opts.proxy, { ...common, lookup }) as unknown as http.Agent;
      this.httpsAgent = new HttpsProxyAgent(opts.proxy, { ...common, lookup, secureContext }) as unknown as https.Agent;
    } else {
      // Node connects to exactly the addresses this lookup answers, so checking them here holds
      // against DNS rebinding (the name is not resolved again for the connection).
      const lookup = ((h: string, o: dns.LookupOptions, cb: LookupCallback) => this.lookup(h, o, cb, true)) as unknown as net.LookupFunction;
      this.httpAgent = new http.Agent({ ...common, lookup });
      this.httpsAgent = new https.Agent({ ...common, lookup, secureContext, ALPNProtocols: ['http/1.1'] } as https.AgentOptions);
    }
    for (const agent of [this.httpAgent, this.httpsAgent]) this.trackSockets(agent);
  }

  /** True when `socket` is a connection this process opened upstream (a loop back into the proxy). */
  isOwnSocket(socket: net.Socket): boolean {
    const addr = socket.remoteAddress ?? '';
    if (!(addr.startsWith('127.') || addr === '::1' || addr === '::ffff:127.0.0.1')) return false;
    const port = socket.remotePort ?? -1;
    if (this.ownPorts.has(port)) return true;
    // On loopback the server side's 'connection' can run before the client side's 'connect':
    // the kernel bound the client's port at connect(2), so it can be read already.
    for (const s of this.connecting) if (s.localPort === port) return true;
    return false;
  }

  /** Sends a request upstream; resolves with the response head, its body unread. */
  request(url: URL, method: string, headers: http.OutgoingHttpHeaders, signal?: AbortSignal): { req: http.ClientRequest; response: Promise<http.IncomingMessage> } {
    const isHttps = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // Node does not call the lookup for an IP literal: check it before anything is sent.
    if (net.isIP(host)) this.policy?.check(url.host, host);
    const req = (isHttps ? https : http).request({
      protocol: url.protocol,
      host,
      port: url.port || (isHttps ? 443 : 80),
      path: url.pathname + url.search,
      method,
      headers,
      agent: isHttps ? this.httpsAgent : this.httpAgent,
      servername: net.isIP(host) ? undefined : url.hostname,
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

  /** Resolves an upstream name; with `checked`, answers only addresses the policy allows. */
  private lookup(hostname: string, options: dns.LookupOptions, cb: LookupCallback, checked: boolean): void {
    const host = hostname.toLowerCase();
    const pinned = this.pinned.get(host);
    const policy = checked ? this.policy : undefined;
    const answer = (found: string[]) => {
      const allowed = policy ? found.filter((a) => !policy.deniedBy(a)) : found;
      if (allowed.length === 0) {
        if (policy && found.length > 0) policy.check(hostname, found[0]); // throws: every answer is denied
        return cb(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
      }
      if (options.all) return cb(null, allowed.map((address) => ({ address, family: net.isIP(address) })));
      cb(null, allowed[0], net.isIP(allowed[0]));
    };
    const settle = (found: () => string[]) => {
      try {
        answer(found());
      } catch (e) {
        cb(e as NodeJS.ErrnoException, '');
      }
    };
    if (pinned) return settle(() => [pinned]);
    if (net.isIP(host)) return settle(() => [host]);
    if (!this.resolver) {
      dns.lookup(hostname, { ...options, all: true }, (e, addrs) => (e ? cb(e, '') : settle(() => addrs.map((a) => a.address))));
      return;
    }
    const r = this.resolver;
    r.resolve4(host)
      .catch(() => r.resolve6(host))
      .then((addrs) => settle(() => addrs))
      .catch((e: NodeJS.ErrnoException) => cb(e, ''));
  }

  private trackSockets(agent: http.Agent): void {
    const create = (agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection;
    if (typeof create !== 'function') return;
    (agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection = (...args: unknown[]) => {
      const socket = create.apply(agent, args);
      this.connecting.add(socket);
      const remember = () => {
        this.connecting.delete(socket);
        const port = socket.localPort;
        if (port === undefined) return;
        this.ownPorts.add(port);
        socket.once('close', () => this.ownPorts.delete(port));
      };
      socket.once('close', () => this.connecting.delete(socket));
      socket.once('connect', remember);
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
  if (isBtrflyError(e)) return e; // already said in the client's terms (a denied address)
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
