import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as tls from 'node:tls';
import { BtrflyError, isBtrflyError, oneLine } from '../../errors';
import { silentLogger, type Logger } from '../base/log';
import { listen } from '../base/listen';
import { limitConnections, type ConnectionLimits } from '../base/connection-limit';
import type { Outcome } from './outcome';
import { proxyCredential, type LiveSession, type SessionTable } from './session';
import { selectHttp1 } from '../tls/ca';
import { MAX_HEADER_BYTES } from './upstream';

/** What the proxy hands a request to: a live session, as far as the proxy uses it. */
export type ProxySession = Pick<LiveSession, 'info' | 'handle' | 'loggedUrl'>;

/** Mints the TLS context for a host name (or IP literal) the client asked for. */
export interface ContextSource {
  secureContextFor(name: string): Promise<tls.SecureContext>;
  sniCallback(name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void;
  /** Server options whose default certificate (for clients that send no SNI) names `defaultName`. */
  serverOptions(defaultName: string): Promise<tls.TlsOptions>;
}

export interface ProxyServerOptions {
  /** Address every listener binds to. */
  address: string;
  /** Explicit proxy port (CONNECT and absolute-form); 0 picks a free one. */
  proxyPort?: number;
  /** Transparent listeners (host mode: 80 and 443); omitted: not started. */
  httpPort?: number;
  httpsPort?: number;
  contexts: ContextSource;
  sessions: SessionTable<ProxySession>;
  /**
   * True (or a promise of it, once known) for a connection the runtime itself opened upstream:
   * refused, so the proxy cannot loop.
   */
  isOwnSocket?: (socket: net.Socket) => boolean | Promise<boolean>;
  /** Caps on open connections per client address and in all, on every listener; default none. */
  connectionLimits?: ConnectionLimits;
  logger?: Logger;
  /** Called when each response ends (or a client is refused): for metrics. */
  onResponse?: (e: ResponseEvent) => void;
  /** How long clients may take; default {@link proxyTimeouts} (the environment, else the defaults). */
  timeouts?: ProxyTimeouts;
}

/**
 * How long the proxy waits for a client, in milliseconds, on its listeners and inside CONNECT
 * tunnels alike. A client that takes longer is closed: it holds a socket and memory, and an
 * idle tunnel was never closed before. Uploads and downloads themselves have no limit.
 */
export interface ProxyTimeouts {
  /** From a connection (a tunnel's first byte, a finished TLS handshake) to a complete request head; then 408. */
  headers: number;
  /** From a TLS connection or a CONNECT's 200 to the end of the client's TLS handshake (or its first byte). */
  handshake: number;
  /** Between two requests on a kept-alive connection. */
  keepAlive: number;
}

const DEFAULT_TIMEOUTS: ProxyTimeouts = { headers: 70_000, handshake: 30_000, keepAlive: 65_000 };
const TIMEOUT_ENV: Record<keyof ProxyTimeouts, string> = {
  headers: 'BTRFLY_HEADERS_TIMEOUT_MS',
  handshake: 'BTRFLY_HANDSHAKE_TIMEOUT_MS',
  keepAlive: 'BTRFLY_KEEPALIVE_TIMEOUT_MS',
};

/**
 * The proxy's timeouts: each from its environment variable (`BTRFLY_HEADERS_TIMEOUT_MS`,
 * `BTRFLY_HANDSHAKE_TIMEOUT_MS`, `BTRFLY_KEEPALIVE_TIMEOUT_MS`) when set, else 70 s, 30 s and
 * 65 s (keep-alive below the headers timeout, as Node's own defaults are).
 * @throws BtrflyError USAGE when a variable is not a whole number of milliseconds
 */
export function proxyTimeouts(env: NodeJS.ProcessEnv = process.env): ProxyTimeouts {
  const t = { ...DEFAULT_TIMEOUTS };
  for (const key of Object.keys(TIMEOUT_ENV) as Array<keyof ProxyTimeouts>) {
    const raw = env[TIMEOUT_ENV[key]];
    if (raw === undefined || raw === '') continue;
    if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new BtrflyError('USAGE', `${TIMEOUT_ENV[key]}="${raw}" is not a number of milliseconds: set it like ${TIMEOUT_ENV[key]}=${DEFAULT_TIMEOUTS[key]}, or unset it`);
    t[key] = Number(raw);
  }
  return t;
}

/** One answered request, as metrics count it. */
export interface ResponseEvent {
  /** The session's mode; `none` for a client in no session. */
  mode: 'record' | 'playback' | 'none';
  /** What the session's `handle()` returned; `error` when it threw, or when the client did not get the whole answer. */
  outcome: Outcome;
  seconds: number;
}

export interface ProxyServer {
  address: string;
  proxyPort?: number;
  httpPort?: number;
  httpsPort?: number;
  /**
   * Serves a connection accepted elsewhere (an isolated command's namespace, `run --isolate`):
   * as on the proxy port, or transparently for `sessionId` with the destination it was sent to.
   */
  adopt(socket: net.Socket, target: { kind: 'proxy' } | { kind: 'transparent'; authority: string; sessionId: string }): void;
  close(): Promise<void>;
}

/** Where a connection's requests go: its session, and the target a tunnel named. */
interface Route {
  session: ProxySession;
  scheme: 'http' | 'https';
  /** host[:port] from CONNECT, used when a request carries no Host header. */
  authority?: string;
}

const CHUNK = 1024 * 1024; // 1 MiB buffers: measured to double Node's HTTPS throughput (519 → 1,254 MiB/s, docs/decisions.md "Measured before the first line")

/**
 * The proxy's listeners: an explicit proxy port (HTTP CONNECT, terminated with a certificate
 * for the requested name, and absolute-form requests) and, in host mode, transparent ports 80
 * and 443 (target from Host and SNI). Every request is handed to the client's session; a client
 * in no session is refused (btrfly is not an open proxy).
 */
export async function startProxy(opts: ProxyServerOptions): Promise<ProxyServer> {
  const log = opts.logger ?? silentLogger;
  const timeouts = opts.timeouts ?? proxyTimeouts();
  const routes = new WeakMap<net.Socket, Route>();
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  // adopt is defined below, with the tunnel it hands sockets to.
  const result: ProxyServer = { address: opts.address, adopt: (socket, target) => adopt(socket, target), close: async () => {} };
  /** A client in no (live) session: counted as refused, whichever way it is answered. */
  const countRefused = (): void => opts.onResponse?.({ mode: 'none', outcome: 'refused', seconds: 0 });

  const onRequest = (scheme: 'http' | 'https', transparent: boolean) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    const tunnelled = routes.get(req.socket);
    if (tunnelled && opts.sessions.get(tunnelled.session.info.id) !== tunnelled.session) {
      // The tunnel's session ended: a kept-alive tunnel must not outlive it (nor serve a later session).
      countRefused();
      res.shouldKeepAlive = false;
      res.once('finish', () => req.socket.destroy());
      return refuse(req, res, false, `btrfly: the session of this tunnel (${tunnelled.session.info.id}) has ended: connect again through a session\n`);
    }
    const route = tunnelled ?? (transparent ? transparentRoute(req.socket, scheme) : explicitRoute(req));
    if (!route) {
      countRefused();
      return refuse(req, res, transparent);
    }
    const start = process.hrtime.bigint();
    const outcome = serveRoute(req, res, route);
    if (opts.onResponse) observe(res, route.session.info.mode, start, outcome, opts.onResponse);
  };

  /** Hands a routed request to its session; resolves with the outcome (never rejects). */
  const serveRoute = async (req: http.IncomingMessage, res: http.ServerResponse, route: Route): Promise<Outcome> => {
    const url = targetUrl(req, route);
    if (!url) {
      res.setHeader('X-Btrfly', 'error');
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('btrfly: the request names no host: send a Host header or an absolute URL\n');
      return 'error';
    }
    if (isSelf(url)) {
      // Forwarded, it would come back to this proxy as a client in no session (a 407 recorded as
      // the answer) or, through a tunnel, forever: 508 Loop Detected (RFC 5842, section 7.2).
      log.warn({ url: route.session.loggedUrl(url) }, 'refused a request addressed to the proxy itself (loop)');
      const body = `btrfly: ${url.host} is btrfly's own proxy, so this request would loop: send it to the real server, or exclude it from the proxy with NO_PROXY\n`;
      res.setHeader('X-Btrfly', 'loop');
      res.writeHead(508, 'Loop Detected', { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return 'loop';
    }
    try {
      return await route.session.handle(req, res, url);
    } catch (e) {
      log.warn({ url: route.session.loggedUrl(url), error: oneLine(e) }, 'request failed');
      if (res.headersSent) {
        res.destroy();
        return 'error';
      }
      const status = isBtrflyError(e) ? e.httpStatus : 500;
      const body = `btrfly: ${oneLine(e)}\n`;
      res.setHeader('X-Btrfly', 'error');
      // The reason phrase too: a recorded answer's writeHead that failed half-way left its own ("500 OK").
      res.writeHead(status, http.STATUS_CODES[status] ?? 'Error', { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return 'error';
    }
  };

  const self = selfHosts(opts.address);
  /** True when `url` names one of this proxy's own listeners: forwarding it would loop. */
  const isSelf = (url: URL): boolean => {
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    if (![result.proxyPort, result.httpPort, result.httpsPort].includes(port)) return false;
    return self.has(url.hostname.replace(/^\[|\]$/g, '').toLowerCase());
  };

  const explicitRoute = (req: http.IncomingMessage): Route | undefined => {
    const session = opts.sessions.byProxyCredential(proxyCredential(req.headers['proxy-authorization'])) ?? opts.sessions.bySourceAddress(req.socket.remoteAddress);
    if (!session) return undefined;
    return { session, scheme: (req.url ?? '').startsWith('https:') ? 'https' : 'http' };
  };
  const transparentRoute = (socket: net.Socket, scheme: 'http' | 'https'): Route | undefined => {
    const session = opts.sessions.bySourceAddress(socket.remoteAddress);
    return session ? { session, scheme } : undefined;
  };

  // Tunnelled connections are handed to this same server, so that its headers and keep-alive
  // timeouts hold inside tunnels too: Node checks them only on a server that listens.
  const front = configure(httpServer(timeouts), onRequest('http', false), timeouts);
  front.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    if (routes.has(socket)) {
      // A CONNECT inside a tunnel: nothing a client needs, and a way to nest tunnels without end.
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const session = opts.sessions.byProxyCredential(proxyCredential(req.headers['proxy-authorization'])) ?? opts.sessions.bySourceAddress(socket.remoteAddress);
    if (!session) {
      countRefused();
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="btrfly"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const authority = req.url ?? '';
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    tunnel(socket, authority, session).catch((e) => {
      log.warn({ authority, error: oneLine(e) }, 'tunnel failed');
      socket.destroy();
    });
  });

  /**
   * A tunnel's client has `timeouts.handshake` from the 200 to finish its TLS handshake (or, for
   * plain HTTP, to send a first byte); then the request head has `timeouts.headers`, as on a
   * listener. Silence, half a ClientHello or half a request head ends in a closed socket.
   */
  const tunnel = async (socket: net.Socket, authority: string, session: ProxySession) => {
    const deadline = setTimeout(() => {
      log.info({ authority, ms: timeouts.handshake }, 'tunnel closed: no TLS handshake or request in time');
      socket.destroy();
    }, timeouts.handshake);
    socket.once('close', () => clearTimeout(deadline));
    const first = await firstByte(socket);
    if (first === undefined) return void socket.destroy();
    if (first !== 0x16) {
      clearTimeout(deadline);
      routes.set(socket, { session, scheme: 'http', authority });
      front.emit('connection', socket);
      return;
    }
    const host = hostOf(authority);
    const context = await opts.contexts.secureContextFor(host);
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: context,
      ALPNCallback: selectHttp1,
      SNICallback: opts.contexts.sniCallback,
    });
    secure.on('error', (e) => log.warn({ authority, error: oneLine(e) }, 'client TLS failed'));
    routes.set(secure, { session, scheme: 'https', authority });
    // Handed over once the handshake is done, as an HTTPS listener does: the headers clock starts then.
    secure.once('secure', () => {
      clearTimeout(deadline);
      front.emit('connection', secure);
    });
  };

  const track = (server: net.Server) => {
    servers.push(server);
    if (opts.connectionLimits) limitConnections(server, opts.connectionLimits, log, 'proxy');
    server.on('connection', (socket: net.Socket) => {
      const refuseLoop = () => {
        log.warn({ port: socket.remotePort }, 'refused a connection from the proxy itself (loop)');
        socket.destroy();
      };
      const own = opts.isOwnSocket?.(socket);
      if (own === true) return refuseLoop();
      if (own) void own.then((yes) => {
        if (yes) refuseLoop();
      });
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  };

  track(front);
  const adopt: ProxyServer['adopt'] = (socket, target) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (target.kind === 'proxy') return void front.emit('connection', socket);
    const session = opts.sessions.get(target.sessionId);
    if (!session) {
      countRefused();
      return void socket.destroy();
    }
    tunnel(socket, target.authority, session).catch((e) => {
      log.warn({ authority: target.authority, error: oneLine(e) }, 'tunnel failed');
      socket.destroy();
    });
  };
  result.proxyPort = await listen(front, opts.address, opts.proxyPort ?? 0);
  if (opts.httpPort !== undefined) {
    const plain = configure(httpServer(timeouts), onRequest('http', true), timeouts);
    track(plain);
    result.httpPort = await listen(plain, opts.address, opts.httpPort);
  }
  if (opts.httpsPort !== undefined) {
    const tlsOptions = await opts.contexts.serverOptions(opts.address);
    const secure = configure(
      https.createServer({ ...tlsOptions, highWaterMark: CHUNK, maxHeaderSize: MAX_HEADER_BYTES, handshakeTimeout: timeouts.handshake, connectionsCheckingInterval: checkEvery(timeouts) } as https.ServerOptions),
      onRequest('https', true),
      timeouts,
    );
    track(secure);
    result.httpsPort = await listen(secure, opts.address, opts.httpsPort);
  }
  result.close = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  };
  return result;
}

function httpServer(t: ProxyTimeouts): http.Server {
  return http.createServer({ highWaterMark: CHUNK, maxHeaderSize: MAX_HEADER_BYTES, connectionsCheckingInterval: checkEvery(t) });
}

/** How often Node checks the headers timeout: a quarter of it (Node's default is 30 s for 60 s). */
function checkEvery(t: ProxyTimeouts): number {
  return Math.max(50, Math.min(30_000, Math.floor(t.headers / 4)));
}

function configure<S extends http.Server>(server: S, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void, t: ProxyTimeouts): S {
  server.on('request', handler);
  // Without this listener Node writes `100 Continue` as soon as it parses the request. A response
  // queued behind an unfinished one on a kept-alive connection buffers that 100, and Node later
  // puts the response's head in front of the buffer, so the 100 lands inside the body (seen
  // after a slow download on the same connection). Write it once this response owns the socket,
  // and not at all once its head is out.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const sendContinue = (): void => {
      if (!res.headersSent) res.writeContinue();
    };
    if (res.socket) sendContinue();
    else res.once('socket', sendContinue);
    handler(req, res);
  });
  server.keepAliveTimeout = t.keepAlive;
  server.headersTimeout = t.headers;
  server.requestTimeout = 0; // uploads and downloads of GiBs take as long as they take
  server.on('clientError', (e: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!socket.writable) return void socket.destroy();
    // Node's headers timeout arrives here as a client error; it is a 408, not a bad request.
    if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') return void socket.end('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    const { status, body } = unreadableRequest(e);
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Btrfly: error\r\nConnection: close\r\n\r\n${body}`);
  });
  return server;
}

/** The answer to a request Node's HTTP parser refused, with one line that says why and what to do. */
function unreadableRequest(e: NodeJS.ErrnoException & { reason?: string }): { status: string; body: string } {
  if (e.code === 'HPE_HEADER_OVERFLOW') {
    return { status: '431 Request Header Fields Too Large', body: `btrfly: the request's headers are larger than ${MAX_HEADER_BYTES / 1024} KiB: send smaller ones\n` };
  }
  // llhttp refuses a raw byte above 0x7f in a URL (curl sends `café` so through a proxy).
  const hint = e.code === 'HPE_INVALID_URL' ? ': percent-encode characters outside ASCII in the URL (é is %C3%A9)' : '';
  return { status: '400 Bad Request', body: `btrfly: the request is not valid HTTP/1.1 (${e.reason ?? e.code ?? 'unreadable'})${hint}\n` };
}

/**
 * Tells `onResponse` how a request ended once both are known: the outcome its session returned,
 * and the response's close (the latency is up to that close; a recorder's handle may go on storing).
 * A hit or a recording whose client did not get the whole answer counts as `error`.
 */
function observe(res: http.ServerResponse, mode: 'record' | 'playback', start: bigint, outcome: Promise<Outcome>, onResponse: (e: ResponseEvent) => void): void {
  const closed = new Promise<number>((resolve) => res.once('close', () => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
  void Promise.all([outcome, closed]).then(([o, seconds]) => {
    const cut = (o === 'hit' || o === 'recorded') && !res.writableFinished;
    onResponse({ mode, outcome: cut ? 'error' : o, seconds });
  });
}

function refuse(req: http.IncomingMessage, res: http.ServerResponse, transparent: boolean, why?: string): void {
  if (why) {
    res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(why), 'X-Btrfly': 'refused', Connection: 'close' });
    res.end(why);
    return;
  }
  if (!transparent && !req.headers['proxy-authorization']) {
    res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="btrfly"', 'Content-Type': 'text/plain', 'X-Btrfly': 'refused' });
    res.end('btrfly: this proxy serves only clients in a session: use the proxy URL "btrfly run" or "btrfly start" gave you\n');
    return;
  }
  res.writeHead(403, { 'Content-Type': 'text/plain', 'X-Btrfly': 'refused' });
  res.end(`btrfly: client ${req.socket.remoteAddress} is in no session: start one with "btrfly start record|playback --tag=T"\n`);
}

/** The absolute URL of a request: absolute-form as is, otherwise scheme + Host (or the tunnel's authority) + path. */
export function targetUrl(req: http.IncomingMessage, route: Route): URL | undefined {
  const raw = req.url ?? '/';
  try {
    if (/^https?:\/\//i.test(raw)) return new URL(raw);
    const host = req.headers.host ?? route.authority;
    if (!host) return undefined;
    const url = new URL(`${route.scheme}://${host}${raw.startsWith('/') ? raw : '/' + raw}`);
    return url;
  } catch {
    return undefined;
  }
}

/**
 * The names and addresses under which a client reaches a listener bound to `address`: the
 * address itself, `localhost` for a loopback one, and every local address for a wildcard one.
 */
function selfHosts(address: string): Set<string> {
  const hosts = new Set([address.toLowerCase()]);
  const wildcard = address === '0.0.0.0' || address === '::';
  if (wildcard || address === '127.0.0.1' || address === '::1') hosts.add('localhost');
  if (wildcard) {
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) hosts.add(a.address.toLowerCase());
  }
  return hosts;
}

function hostOf(authority: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(authority);
  if (m) return m[1];
  const i = authority.lastIndexOf(':');
  return i > 0 ? authority.slice(0, i) : authority;
}

function firstByte(socket: net.Socket): Promise<number | undefined> {
  return new Promise((resolve) => {
    const onReadable = () => {
      const chunk: Buffer | null = socket.read();
      if (chunk === null) return;
      cleanup();
      socket.unshift(chunk);
      resolve(chunk[0]);
    };
    const onEnd = () => {
      cleanup();
      resolve(undefined);
    };
    const cleanup = () => {
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
