import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import type { Agent as UndiciAgentType, Dispatcher } from 'undici';
import { BtrflyError, isBtrflyError } from '../../errors';
import type { BodySource } from './tee';
import { UpstreamPolicy } from './upstream-policy';

/**
 * undici's connection pool alone: `require('undici')` loads fetch, WebSocket, the cache and the
 * mocks too, ~16 MiB more resident memory for nothing record uses.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const UndiciAgent: typeof UndiciAgentType = require('undici/lib/dispatcher/agent');

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
  /** undici's HTTP/1.1 client for exchanges without `--upstream-proxy` (see {@link exchange}). */
  private readonly direct?: UndiciAgentType;
  /** TLS sessions to resume, by host, port and name (as https.Agent keeps them). */
  private readonly sessions = new Map<string, Buffer>();

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
      this.direct = new UndiciAgent({
        connections: 64,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        connect: (o, cb) => this.connect(o, lookup, secureContext, cb),
      });
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

  /**
   * Sends a request upstream with `body` (or none) and resolves with the response's head, its
   * body not yet read. Headers are `[name, value, …]` as the client sent them, hop-by-hop removed.
   * Through undici's client where it sends what the client sent; through http.request otherwise
   * (an upstream proxy, `Expect`, a repeated Host or Content-Length).
   */
  exchange(url: URL, method: string, headers: string[], body: Readable | null): Promise<UpstreamResponse> {
    if (!this.direct || !undiciCarries(headers)) return this.viaRequest(url, method, headers, body);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host)) this.policy?.check(url.host, host);
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const handler = new UndiciExchange(url, resolve, reject);
      this.direct!.dispatch({ origin: url.origin, path: url.pathname + url.search, method, headers, body, reset: false }, handler);
    });
  }

  private async viaRequest(url: URL, method: string, headers: string[], body: Readable | null): Promise<UpstreamResponse> {
    const { req, response } = this.request(url, method, headers as never);
    if (body) pipeline(body, req).catch(() => {});
    else req.end();
    const res = await response;
    return { status: res.statusCode ?? 502, statusText: res.statusMessage ?? '', httpVersion: res.httpVersion, rawHeaders: res.rawHeaders, body: res };
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.direct?.destroy().catch(() => {});
  }

  /** undici's connector: the same lookup, policy, CAs and loop tracking as the agents. */
  private connect(o: { hostname: string; protocol: string; port: string; servername?: string }, lookup: net.LookupFunction, secureContext: tls.SecureContext, cb: (...a: [null, net.Socket] | [Error, null]) => void): void {
    const isHttps = o.protocol === 'https:';
    const host = o.hostname.replace(/^\[|\]$/g, '');
    const port = Number(o.port) || (isHttps ? 443 : 80);
    let socket: net.Socket;
    if (isHttps) {
      const servername = net.isIP(host) ? undefined : o.hostname;
      const key = `${host}:${port}:${servername ?? ''}`;
      const t = tls.connect({ host, port, lookup, servername, secureContext, ALPNProtocols: ['http/1.1'], session: this.sessions.get(key) });
      t.on('session', (s: Buffer) => this.sessions.set(key, s));
      socket = t;
    } else {
      socket = net.connect({ host, port, lookup });
    }
    socket.setNoDelay(true);
    this.track(socket);
    let settled = false;
    const done = (e: Error | null) => {
      if (settled) return;
      settled = true;
      socket.setTimeout(0);
      if (e) {
        socket.destroy();
        cb(e, null);
      } else cb(null, socket);
    };
    socket.setTimeout(this.timeoutMs, () => done(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    socket.once(isHttps ? 'secureConnect' : 'connect', () => done(null));
    socket.once('error', done);
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
    (agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection = (...args: unknown[]) => this.track(create.apply(agent, args));
  }

  /** Remembers `socket`'s local port while it is open, for {@link isOwnSocket}. */
  private track(socket: net.Socket): net.Socket {
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
  }
}

/** An upstream response's head as received, its body not yet read. */
export interface UpstreamResponse {
  status: number;
  statusText: string;
  /** `1.1` or `1.0`; undici does not tell the version, its exchanges say `1.1`. */
  httpVersion: string;
  /** `[name, value, …]` in received order, names as received, repeats kept. */
  rawHeaders: string[];
  body: BodySource;
}

/**
 * Whether undici sends these request headers as given. It refuses `Expect` and a second Host or
 * Content-Length; it writes Host first and Content-Length last, names in lower case.
 */
function undiciCarries(headers: string[]): boolean {
  let host = 0;
  let length = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i].length;
    if (n !== 4 && n !== 6 && n !== 14) continue;
    const name = headers[i].toLowerCase();
    if (name === 'host') host++;
    else if (name === 'content-length') length++;
    else if (name === 'expect') return false;
  }
  return host <= 1 && length <= 1;
}

/**
 * One exchange through undici's dispatch API: the head resolves the promise, the body is handed
 * to the consumer chunk by chunk with no stream in between, and a consumer that pauses pauses the
 * upstream socket. Chunks that arrive before the consumer listens are kept (undici delivers a
 * HEAD's end, and what follows the head in the same read, at once).
 */
class UndiciExchange implements Dispatcher.DispatchHandler, BodySource {
  private head = false;
  private abortFn?: (e?: Error) => void;
  private resumeFn?: () => void;
  private dataFn?: (chunk: Buffer) => void;
  private endFn?: () => void;
  private failFn?: (e: Error) => void;
  private queue: Buffer[] = [];
  private paused = true;
  private ended = false;
  private failed?: Error;
  private finished = false;

  constructor(
    private readonly url: URL,
    private readonly resolve: (r: UpstreamResponse) => void,
    private readonly reject: (e: unknown) => void,
  ) {}

  onConnect(abort: (e?: Error) => void): void {
    this.abortFn = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true; // 1xx: the final answer follows
    this.head = true;
    this.resumeFn = resume;
    const rawHeaders = new Array<string>(raw.length);
    for (let i = 0; i < raw.length; i++) rawHeaders[i] = raw[i].toString('latin1');
    this.resolve({ status, statusText, httpVersion: '1.1', rawHeaders, body: this });
    return false; // until the consumer listens
  }

  onData(chunk: Buffer): boolean {
    if (this.paused || this.queue.length > 0 || !this.dataFn) {
      this.queue.push(chunk);
      return false;
    }
    this.dataFn(chunk);
    return !this.paused;
  }

  onComplete(): void {
    this.ended = true;
    if (!this.paused && this.queue.length === 0) this.finish();
  }

  onError(e: Error): void {
    if (!this.head) return this.reject(upstreamError(this.url, e));
    this.failed = e;
    if (this.failFn && !this.finished) {
      this.finished = true;
      this.failFn(e);
    }
  }

  // BodySource, for the tee.
  on(event: 'data', fn: (chunk: Buffer) => void): this {
    if (event === 'data') {
      this.dataFn = fn;
      queueMicrotask(() => this.resume());
    }
    return this;
  }

  once(event: string, fn: ((e: Error) => void) | (() => void)): this {
    if (event === 'end') this.endFn = fn as () => void;
    else if (event === 'error') {
      this.failFn = fn;
      if (this.failed && !this.finished) queueMicrotask(() => this.onError(this.failed!));
    }
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused || this.finished) return this;
    this.paused = false;
    while (!this.paused && this.queue.length > 0) this.dataFn?.(this.queue.shift()!);
    if (this.paused) return this;
    if (this.ended) this.finish();
    else this.resumeFn?.();
    return this;
  }

  destroy(): this {
    if (!this.finished && !this.ended) this.abortFn?.(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    this.finished = true;
    return this;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.endFn?.();
  }
}

function safeSystemCAs(): string[] {
  try {
    return tls.getCACertificates('system');
  } catch {
    return [];
  }
}

/** undici's error codes in the terms of Node's sockets. */
const UNDICI_CODES: Record<string, string> = {
  UND_ERR_CONNECT_TIMEOUT: 'ETIMEDOUT',
  UND_ERR_HEADERS_TIMEOUT: 'ETIMEDOUT',
  UND_ERR_BODY_TIMEOUT: 'ETIMEDOUT',
  UND_ERR_SOCKET: 'ECONNRESET',
  UND_ERR_CLOSED: 'ECONNRESET',
};

/** An upstream failure as the client should see it: refused, TLS, timeout, name. */
export function upstreamError(url: URL, e: unknown): BtrflyError {
  if (isBtrflyError(e)) return e; // already said in the client's terms (a denied address)
  const err = e as NodeJS.ErrnoException;
  const code = UNDICI_CODES[err.code ?? ''] ?? err.code ?? 'ERROR';
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
