import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as https from 'node:https';
import express from 'express';
import { BtrflyError, isBtrflyError, oneLine } from '../../errors';
import { parseTagSpec } from '../../format/names';
import { archiveApi } from './archive-api';
import { API_BODY_LIMIT, jsonErrorHandler } from './json-answer';
import { ServiceMetrics } from './metrics';
import { startServing, untilShutdown, type ServingOptions } from '../session/serving';
import type { Runtime, SessionResult } from '../session/runtime';
import { normalizeAddress, type SessionInfo } from '../proxy/session';
import { parseSessionRequest } from '../session/session-request';
import { serviceDenyList } from '../proxy/upstream-policy';
import { authorizeSession, mayRead, TokenStore, type TokenRecord } from './tokens';
import { webUi } from './web-ui';
import type { Logger } from '../base/log';
import { limitConnections, type ConnectionLimits } from '../base/connection-limit';
import { listen } from '../base/listen';
import { systemResolvers } from '../dns/system-resolvers';

export interface ServiceOptions extends Omit<ServingOptions, 'onResponse'> {
  /** Where the HTTPS API (and `/metrics`) listens; default the DNS/proxy address. */
  apiAddress?: string;
  apiPort: number;
  /** PEM files of the API's certificate and key; default a leaf from btrfly's CA. */
  apiCert?: string;
  apiKey?: string;
  tokenStore: string;
  /** Called once everything listens, with the API's URL and the ports bound (useful with port 0). */
  onReady?: (info: ReadyInfo) => void;
  /** How often live sessions' tokens are checked against the store (ms); default {@link SWEEP_MS}. */
  sweepMs?: number;
}

/** Every 5 s (and at every API call) a session whose token was revoked is ended. */
export const SWEEP_MS = 5_000;

/** The API's deadlines (ms): TLS handshake, request head, whole request (bodies are at most 64 KiB). */
const API_TIMEOUTS = { handshake: 30_000, headers: 30_000, request: 60_000 };
/** A build host makes a call or two at a time; a web UI a few. */
export const API_CONNECTIONS: ConnectionLimits = { perAddress: 64, total: 2048 };
/** A build opens many downloads at once, but not a thousand; one host may not hold the process's descriptors. */
export const PROXY_CONNECTIONS: ConnectionLimits = { perAddress: 1024, total: 8192 };

export interface ReadyInfo {
  /** The API's (and the web UI's) URL, e.g. `https://10.0.0.5:8443`. */
  api: string;
  address: string;
  dnsPort: number;
  httpPort?: number;
  httpsPort?: number;
  proxyPort?: number;
}

/** What `POST /v1/sessions` answers: the session, and what the host must point at and trust. */
export interface RegisteredSession {
  session: SessionInfo;
  dns: string;
  caPem: string;
}

/**
 * `btrfly serve`: DNS, the proxy and an HTTPS API with `/metrics` in one process, for many
 * build hosts. A host registers a session over the API with a bearer token; its source
 * address becomes the session's client, so DNS answers it with the proxy and the proxy
 * serves it. Runs until SIGTERM/SIGINT, then seals open recordings.
 */
export async function runService(opts: ServiceOptions): Promise<void> {
  checkServiceAddress(opts.address, opts.apiAddress);
  const tokens = new TokenStore(opts.tokenStore);
  // Assigned once the runtime exists; the response callback handed to startServing reads it later.
  // eslint-disable-next-line prefer-const
  let metrics: ServiceMetrics | undefined;
  // A session's host makes the service fetch what it asks for: never its metadata, loopback or itself.
  const upstream = { ...opts.upstream, deny: [...serviceDenyList([opts.address, opts.apiAddress]), ...(opts.upstream.deny ?? [])] };
  // Hosts in no session (a revoked one still pointed here, one left over) get real answers: from
  // --upstream-dns, else from the resolvers this machine uses. Record keeps resolving as the machine does.
  const forward = opts.upstreamDns.length ? opts.upstreamDns : await systemResolvers([opts.address]);
  if (forward.length === 0) opts.logger.warn('no upstream resolver (no --upstream-dns, none in /etc/resolv.conf): hosts in no session get SERVFAIL');
  const serving = await startServing({ ...opts, upstreamDns: forward, upstream, connectionLimits: PROXY_CONNECTIONS, onResponse: (e) => metrics?.onResponse(e) });
  opts.logger.info({ deny: upstream.deny, allow: upstream.allow ?? [] }, 'upstream addresses record refuses');
  const { runtime } = serving;
  metrics = new ServiceMetrics(() => runtime.status());
  let api: https.Server | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let revokedEnding: (() => Promise<void>) | undefined;
  try {
    // The id of the token that opened each live session.
    const owners = new Map<string, string>();
    // How a session opened over the API ends, whether its host ends it or its token was revoked.
    const endSession = async (info: SessionInfo, discard: boolean, message: string, data: Record<string, unknown> = {}): Promise<SessionResult> => {
      owners.delete(info.id);
      const result = await runtime.closeSession(info.id, { discard });
      metrics!.sessionClosed(result.info);
      opts.logger.info({ id: info.id, tag: info.tag, mode: info.mode, ...data, commit: result.commit, misses: result.misses.length }, message);
      return result;
    };
    const revoked = new RevokedSessions(runtime, tokens, owners, opts.logger, (info, token) =>
      endSession(info, false, 'session ended: its token was revoked', { token }),
    );
    revokedEnding = () => revoked.settled();
    sweeper = setInterval(() => void revoked.sweep(), opts.sweepMs ?? SWEEP_MS);
    sweeper.unref();
    const app = express();
    app.disable('x-powered-by');
    app.use(webUi());
    // Every call, /metrics included, carries a token; the request waits for its check, and for
    // sessions of revoked tokens to leave the table (their sealing goes on behind). One read
    // of the token store serves both.
    app.use((req, res, next) => {
      // What follows answers with a team's data: no browser or proxy cache may keep it.
      res.setHeader('Cache-Control', 'no-store');
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      revoked
        .check()
        .then((records) => tokens.verify(m?.[1], records))
        .then((t) => ((res.locals.token = t), next()), next);
    });
    // Bodies are parsed only for a caller whose token checked out.
    app.use(express.json({ limit: API_BODY_LIMIT }));
    const tokenOf = (res: express.Response) => res.locals.token as TokenRecord;
    app.get('/metrics', (_req, res, next) => {
      metrics!.text().then((text) => res.type(metrics!.contentType).send(text), next);
    });
    app.get('/v1/ca', (_req, res) => res.json({ caPem: runtime.ca.certPem }));
    app.get('/v1/status', (_req, res) => {
      const t = tokenOf(res);
      const visible = runtime.status().filter((s) => mayRead(t, s.tag));
      res.json({ sessions: visible, token: { id: t.id, scopes: t.scopes, tags: t.tags } });
    });
    app.post('/v1/sessions', (req, res, next) => {
      const client = normalizeAddress(req.socket.remoteAddress ?? '');
      (async (): Promise<RegisteredSession> => {
        const body = parseSessionRequest(req.body);
        authorizeSession(tokenOf(res), body, parseTagSpec(body.tag).tag);
        const opened = await runtime.openSession({ ...body, clients: [client] }).catch((e: unknown) => {
          // Hosts of two teams may share an address (NAT, a shared build machine): the session in
          // the way is named only to a token that may read its tag.
          const other = runtime.status().find((s) => s.clients.some((c) => normalizeAddress(c) === client));
          if (isBtrflyError(e) && e.code === 'SESSION' && other && !mayRead(tokenOf(res), other.tag)) {
            throw new BtrflyError('SESSION', `client ${client} is already in a session of a tag this token does not cover: it must end first ("btrfly stop" on the host that started it)`, {
              httpStatus: 409,
            });
          }
          throw e;
        });
        owners.set(opened.info.id, tokenOf(res).id);
        opts.logger.info({ id: opened.info.id, tag: opened.info.tag, mode: opened.info.mode, client, token: tokenOf(res).id }, 'session opened');
        return { session: opened.info, dns: opts.address, caPem: runtime.ca.certPem };
      })().then((r) => res.status(201).json(r), next);
    });
    app.delete('/v1/sessions/:id', (req, res, next) => {
      (async () => {
        const s = runtime.sessions.get(req.params.id);
        const t = tokenOf(res);
        if (!s) throw new BtrflyError('NOT_FOUND', `no session ${req.params.id} on the service: it ended already ("btrfly status")`);
        const discard = req.query.discard === '1';
        if (owners.get(s.info.id) !== t.id && !t.scopes.includes('admin')) {
          authorizeSession(t, s.info, s.info.tag);
          // Ending seals what was recorded; throwing it away is for the token that opened the session, or an admin.
          if (discard) throw new BtrflyError('FORBIDDEN', `token ${t.id} may not discard session ${s.info.id}: only the token that opened it or an admin may; end it without ?discard=1 to keep what it recorded`);
        }
        return endSession(s.info, discard, 'session closed');
      })().then((r) => res.json(r), next);
    });
    app.use(archiveApi(serving.archive));
    app.use((_req, _res, next) => next(new BtrflyError('NOT_FOUND', 'no such API endpoint')));
    app.use(
      jsonErrorHandler((e, req) => {
        if (e.httpStatus >= 500 || e.code === 'FORBIDDEN') opts.logger.warn({ method: req.method, path: req.path, error: e.message }, 'API request refused or failed');
      }),
    );

    const apiAddress = opts.apiAddress ?? opts.address;
    const readPem = (file: string, what: string) =>
      readFile(file, 'utf8').catch((e: unknown) => {
        throw new BtrflyError('CONFIG', `cannot read the API's ${what} ${file}: ${oneLine(e)}: give a PEM file, or leave out --api-cert and --api-key for a certificate from btrfly's CA`);
      });
    const tlsOptions =
      opts.apiCert && opts.apiKey ? { cert: await readPem(opts.apiCert, 'certificate'), key: await readPem(opts.apiKey, 'key') } : await runtime.ca.serverOptions(apiAddress);
    let server: https.Server;
    try {
      server = https.createServer({ ...tlsOptions, handshakeTimeout: API_TIMEOUTS.handshake }, app);
    } catch (e) {
      throw new BtrflyError('CONFIG', `--api-cert ${opts.apiCert} and --api-key ${opts.apiKey} are not a PEM certificate and its private key (${oneLine(e)}): give the pair in PEM, or leave both out for a certificate from btrfly's CA`);
    }
    api = server;
    // API calls are small and quick: a connection silent for long, or one too many, is an attack on every host.
    server.headersTimeout = API_TIMEOUTS.headers;
    server.requestTimeout = API_TIMEOUTS.request;
    limitConnections(server, API_CONNECTIONS, opts.logger, 'API');
    const port = await listen(server, apiAddress, opts.apiPort).catch((e: unknown) => {
      throw new BtrflyError('NETWORK', `cannot listen for the API on ${apiAddress}:${opts.apiPort}: ${oneLine(e)}`);
    });
    const url = `https://${apiAddress.includes(':') ? `[${apiAddress}]` : apiAddress}:${port}`;
    const { httpPort, httpsPort, proxyPort } = runtime.proxy;
    const ready: ReadyInfo = { api: url, address: opts.address, dnsPort: serving.dns.udpPort, httpPort, httpsPort, proxyPort };
    opts.logger.info({ ...ready }, 'service ready');
    opts.onReady?.(ready);
    await untilShutdown(opts.signal);
    opts.logger.info('service stopping: sealing open recordings');
  } finally {
    clearInterval(sweeper);
    api?.close();
    api?.closeAllConnections();
    // A recording being sealed after its token's revocation finishes before the archive closes.
    await revokedEnding?.();
    await serving.close();
  }
}

/**
 * Refuses, in one line, a `--address` that hosts in a session cannot be told (a name, a wildcard:
 * DNS answers it for every name, and 0.0.0.0 would send each host to itself) and an address no
 * interface of this host has (Node would only say EADDRNOTAVAIL, from whichever listener came first).
 */
function checkServiceAddress(address: string, apiAddress: string | undefined): void {
  if (!net.isIP(address) || address === '0.0.0.0' || address === '::') {
    throw new BtrflyError('USAGE', `--address ${address} is not an address build hosts can be told: DNS answers it for every name, so give this host's IP address on their network (e.g. --address 10.0.0.5); --api-address may be 0.0.0.0`);
  }
  const local = Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  for (const [flag, a] of [['--address', address], ['--api-address', apiAddress]] as const) {
    if (a && a !== '0.0.0.0' && a !== '::' && net.isIP(a) && !local.includes(a)) {
      throw new BtrflyError('USAGE', `${flag} ${a} is not an address of this host (it has ${local.join(', ')}): give one of them`);
    }
  }
}

/**
 * Ends the sessions whose token was revoked, as `DELETE /v1/sessions/:id` without `?discard=1`
 * does: a recording is sealed (what was recorded before the revocation was recorded with a valid
 * token, so it is kept), a playback reports its misses. The session leaves the table at once, so
 * its host gets real DNS answers and the proxy refuses it; the sealing goes on behind.
 */
class RevokedSessions {
  private sweeping: Promise<void> | undefined;
  /** Checks and endings under way; none of them rejects. */
  private readonly underway = new Set<Promise<unknown>>();

  constructor(
    private readonly runtime: Runtime,
    private readonly tokens: TokenStore,
    private readonly owners: Map<string, string>,
    private readonly log: Logger,
    /** Ends a session; it must leave the table before it returns (`Runtime.closeSession` does). */
    private readonly end: (info: SessionInfo, token: string) => Promise<unknown>,
  ) {}

  /** The periodic check: one at a time; a sweep during a check waits for that one. Never rejects. */
  sweep(): Promise<void> {
    this.sweeping ??= this.check()
      .then(() => undefined)
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /**
   * One check against the store as it is now, read only while sessions are live. Resolves with
   * the tokens read (undefined when it read none, or the read failed), for an API call to verify
   * its caller's token against the same read. Never rejects.
   */
  check(): Promise<TokenRecord[] | undefined> {
    return this.track(
      this.endRevoked().catch((e) => {
        this.log.warn({ error: oneLine(e) }, 'checking the tokens of live sessions failed');
        return undefined;
      }),
    );
  }

  /** Resolves once every check and ending started so far, and any they started, has finished. */
  async settled(): Promise<void> {
    while (this.underway.size) await Promise.all([...this.underway]);
  }

  private async endRevoked(): Promise<TokenRecord[] | undefined> {
    // Only sessions live before the store is read: a session opened meanwhile may have a token newer than the read.
    const live = this.runtime.status().flatMap((info) => {
      const token = this.owners.get(info.id);
      return token ? [{ info, token }] : [];
    });
    for (const id of this.owners.keys()) if (!this.runtime.sessions.get(id)) this.owners.delete(id);
    if (live.length === 0) return undefined;
    const records = await this.tokens.list();
    const known = new Set(records.map((t) => t.id));
    // A concurrent check may have ended one already: closeSession takes it out of the table at once.
    for (const { info, token } of live) {
      if (known.has(token) || !this.runtime.sessions.get(info.id)) continue;
      this.track(
        this.end(info, token).catch((e) =>
          this.log.error({ id: info.id, tag: info.tag, token, error: oneLine(e) }, 'ending a session of a revoked token failed'),
        ),
      );
    }
    return records;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.underway.add(p);
    void p.finally(() => this.underway.delete(p));
    return p;
  }
}
