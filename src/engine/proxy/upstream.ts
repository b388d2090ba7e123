import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
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

/**
 * The most bytes of response head record reads from an origin. Node's default (16 KiB) refused
 * heads that curl and browsers read (large `Set-Cookie`, `Link` or CSP headers): curl takes
 * 100 KiB and more, so record takes what a client it stands in for would.
 */
export const MAX_HEADER_BYTES = 256 * 1024;

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * Builds the agents and the name lookup record uses for upstream requests. The lookup never
 * goes through btrfly's own DNS: in host mode the system resolver points at btrfly, so the
 * daemon passes the resolvers the host had before (`--upstream-dns`), and `--resolve` pins names.
 */
export class Upstream {
  readonly httpAgent: http.Agent;
  private https?: https.Agent;
  private readonly makeHttpsAgent: () => https.Agent;
  private readonly pinned = new Map<string, string>();
  private readonly resolver?: dns.promises.Resolver;
  private readonly timeoutMs: number;
  private readonly policy?: UpstreamPolicy;
  /** The secure context for the origin's TLS inside an `--upstream-proxy` tunnel. */
  private tunnelContext?: tls.SecureContext;
  /** Our live upstream sockets, so the proxy can tell a loop (see isOwnSocket). */
  private readonly own = new Set<net.Socket>();

  constructor(opts: UpstreamOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    if (opts.deny?.length) this.policy = new UpstreamPolicy(opts.deny, opts.allow);
    for (const r of opts.resolve ?? []) {
      const { host, addr } = parseResolve(r);
      this.pinned.set(host, addr);
    }
    if (opts.dns && opts.dns.length > 0) {
      this.resolver = new dns.promises.Resolver({ timeout: 3000, tries: 2 });
      setResolvers(this.resolver, opts.dns);
    }
    if (opts.proxy) proxyUrl(opts.proxy);
    // An unreadable --upstream-ca is a usage error at start, not at the first HTTPS request.
    const extraCas = (opts.caFiles ?? []).map(readCaFile);
    const common = { keepAlive: true, maxSockets: 64, timeout: this.timeoutMs };
    if (opts.proxy) {
      // The lookup finds the admin's proxy, which is allowed; the proxy resolves and connects to
      // the target itself, so only IP-literal targets can be checked here (see request).
      const lookup = ((h: string, o: dns.LookupOptions, cb: LookupCallback) => this.lookup(h, o, cb, false)) as unknown as net.LookupFunction;
      this.httpAgent = new HttpProxyAgent(opts.proxy, { ...common, lookup }) as unknown as http.Agent;
      // https-proxy-agent makes the origin's TLS socket in the tunnel from the request's options
      // only (its own options reach the proxy's socket): the secure context goes with each request.
      this.makeHttpsAgent = () => {
        this.tunnelContext = upstreamSecureContext(extraCas);
        return new HttpsProxyAgent(opts.proxy!, { ...common, lookup, secureContext: this.tunnelContext }) as unknown as https.Agent;
      };
    } else {
      // Node connects to exactly the addresses this lookup answers, so checking them here holds
      // against DNS rebinding (the name is not resolved again for the connection).
      const lookup = ((h: string, o: dns.LookupOptions, cb: LookupCallback) => this.lookup(h, o, cb, true)) as unknown as net.LookupFunction;
      this.httpAgent = new http.Agent({ ...common, lookup });
      this.makeHttpsAgent = () => new https.Agent({ ...common, lookup, secureContext: upstreamSecureContext(extraCas), ALPNProtocols: ['http/1.1'] } as https.AgentOptions);
    }
    this.trackSockets(this.httpAgent);
  }

  /**
   * The agent of HTTPS upstreams, made on first use: its secure context holds every system CA,
   * which takes a noticeable part of a second to build (the host-mode daemon answers "ready"
   * without it; a playback never needs it).
   */
  get httpsAgent(): https.Agent {
    if (!this.https) {
      this.https = this.makeHttpsAgent();
      this.trackSockets(this.https);
    }
    return this.https;
  }

  /**
   * Builds the HTTPS agent now, while a recording's command is still starting, rather than on
   * its first HTTPS request (66 ms of one thread here, every client of the session waiting).
   * A context that cannot be built is left for that request to report.
   */
  prepareHttps(): void {
    try {
      void this.httpsAgent;
    } catch {
      // reported by the request that needs it
    }
  }

  /**
   * Whether `socket`, just accepted by the proxy, is a connection this process opened upstream (a
   * loop back into the proxy): one of our sockets has, as its local end, the incoming socket's
   * remote end, address and port, and as its remote end the incoming socket's local end. A port
   * alone is not enough: a client from another address (127.0.0.1 while our socket is on ::1 or on
   * the host's own address) may use the same port number, and Linux hands the same local address
   * and port to several connections to different destinations. Nor is an address on loopback
   * needed: a proxy that listens on the host's address (`btrfly serve --address`) is reached from
   * that address.
   *
   * A promise when one of our sockets with that local end has not seen its 'connect' yet (on
   * loopback the proxy may accept first): Node reads its peer only once connected. Nothing can
   * arrive on the incoming socket before then, since our side sends its request only once connected.
   */
  isOwnSocket(socket: net.Socket): boolean | Promise<boolean> {
    const port = socket.remotePort;
    if (port === undefined) return false;
    const from = endpoint(socket.remoteAddress, port);
    const to = endpoint(socket.localAddress, socket.localPort);
    const isPeer = (s: net.Socket) => !s.connecting && endpoint(s.remoteAddress, s.remotePort) === to;
    const connecting: net.Socket[] = [];
    for (const s of this.own) {
      if (s.localPort !== port || endpoint(s.localAddress, port) !== from) continue;
      if (isPeer(s)) return true;
      if (s.connecting) connecting.push(s);
    }
    if (connecting.length === 0) return false;
    const settled = (s: net.Socket) =>
      new Promise<boolean>((resolve) => {
        const done = () => {
          s.off('connect', done).off('close', done);
          resolve(isPeer(s));
        };
        s.once('connect', done).once('close', done);
      });
    return Promise.all(connecting.map(settled)).then((found) => found.includes(true));
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
      ...(isHttps && this.tunnelContext ? { secureContext: this.tunnelContext } : {}),
      signal,
      timeout: this.timeoutMs,
      maxHeaderSize: MAX_HEADER_BYTES,
    });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', (res: http.IncomingMessage) => {
        // A body that ends with the connection (no length, not chunked) cut by a reset: Node
        // reports the reset on the request only, then ends the body as if complete. It is not.
        req.on('error', (e) => {
          if (!res.complete) res.destroy(e);
        });
        resolve(res);
      });
      req.once('error', (e) => reject(upstreamError(url, e)));
      req.once('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    });
    return { req, response };
  }

  close(): void {
    this.httpAgent.destroy();
    this.https?.destroy();
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
      this.own.add(socket);
      socket.once('close', () => this.own.delete(socket));
      return socket;
    };
  }
}

/** `address:port`, an IPv4-mapped IPv6 address (a dual-stack listener's view) as plain IPv4. */
function endpoint(address: string | undefined, port: number | undefined): string {
  const a = (address ?? '').toLowerCase();
  return `${a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a}:${port ?? ''}`;
}

/**
 * Checks the upstream settings a user typed (`--resolve`, `--upstream-dns`, `--upstream-proxy`,
 * `--upstream-ca`) before anything is made, so a typo is one line naming the flag (USAGE).
 */
export function checkUpstreamOptions(opts: UpstreamOptions): void {
  for (const r of opts.resolve ?? []) parseResolve(r);
  if (opts.dns?.length) setResolvers(new dns.promises.Resolver(), opts.dns);
  if (opts.proxy) proxyUrl(opts.proxy);
  for (const f of opts.caFiles ?? []) readCaFile(f);
}

/** `HOST:ADDR`; an IPv6 ADDR contains colons, so it splits on the first colon after the host. */
function parseResolve(r: string): { host: string; addr: string } {
  const j = r.indexOf(':');
  if (j <= 0 || j === r.length - 1) throw new BtrflyError('USAGE', `--resolve "${r}" is not HOST:ADDR: write it like registry.example:10.0.0.5`);
  const addr = r.slice(j + 1).replace(/^\[|\]$/g, '');
  if (!net.isIP(addr)) throw new BtrflyError('USAGE', `--resolve "${r}": "${addr}" is not an IP address: write it like registry.example:10.0.0.5`);
  return { host: r.slice(0, j).toLowerCase(), addr };
}

function setResolvers(resolver: dns.promises.Resolver, servers: string[]): void {
  for (const d of servers) {
    try {
      resolver.setServers([d]);
    } catch {
      throw new BtrflyError('USAGE', `--upstream-dns "${d}" is not IP or IP:PORT: write it like 10.0.0.2 or 10.0.0.2:5353`);
    }
  }
  resolver.setServers(servers);
}

function proxyUrl(proxy: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(proxy);
  } catch {
    // not a URL: said below
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new BtrflyError('USAGE', `--upstream-proxy "${proxy.replace(/\/\/[^/@]*@/, '//…@')}" is not an http:// or https:// URL: write it like http://proxy.example:3128`);
  }
  return url;
}

/** The PEM text of an `--upstream-ca` file, each certificate in it checked: Node's TLS skips what it cannot parse, silently. */
function readCaFile(f: string): string {
  let pem: string;
  try {
    pem = readFileSync(f, 'utf8');
  } catch (e) {
    throw new BtrflyError('USAGE', `cannot read --upstream-ca ${f}: ${(e as Error).message}: pass a PEM file`);
  }
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? [];
  try {
    for (const c of certs) new X509Certificate(c);
  } catch (e) {
    throw new BtrflyError('USAGE', `--upstream-ca ${f} holds a certificate that cannot be read (${(e as Error).message}): pass the CA's certificate in PEM`);
  }
  if (certs.length === 0) throw new BtrflyError('USAGE', `--upstream-ca ${f} holds no PEM certificate (-----BEGIN CERTIFICATE-----): pass the CA's certificate in PEM`);
  return pem;
}

function safeSystemCAs(): string[] {
  try {
    return tls.getCACertificates('system');
  } catch {
    return [];
  }
}

/**
 * One secure context for every upstream connection: Node's and the system's CAs and `extra`.
 * Passing `ca` itself would make Node build a context per connection and put the whole bundle
 * (~200 KB of PEM) into the agent's pool key on every request (https.Agent#getName): measured
 * as most of record's CPU time on many small bodies (BENCHMARKS.md, small files).
 */
function upstreamSecureContext(extra: readonly string[]): tls.SecureContext {
  return tls.createSecureContext({ ca: [...tls.getCACertificates('default'), ...safeSystemCAs(), ...extra] });
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
