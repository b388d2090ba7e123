import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import * as path from 'node:path';
import express from 'express';
import { BtrflyError, isBtrflyError, oneLine } from '../errors';
import { Archive } from '../format/archive';
import { startDnsServer, type DnsServer } from './dns-server';
import { Runtime, type OpenSessionOptions } from './runtime';
import type { UpstreamOptions } from './upstream';

export interface DaemonOptions {
  archiveDir: string;
  /** The dedicated loopback address DNS and the proxy listen on (default 127.77.0.1). */
  address: string;
  dnsPort: number;
  httpPort: number;
  httpsPort: number;
  proxyPort: number;
  /** Resolvers the DNS server forwards to for clients in no session, and record resolves with. */
  upstreamDns: string[];
  upstream: UpstreamOptions;
  stateDir: string;
  configDir?: string;
  log: (msg: string, data?: Record<string, unknown>) => void;
}

/** What a running daemon publishes in its state dir for the CLI to find it. */
export interface DaemonInfo {
  pid: number;
  address: string;
  socket: string;
  archive: string;
  dnsPort: number;
  httpPort: number;
  httpsPort: number;
  proxyPort: number;
  startedAt: string;
}

export const DAEMON_FILE = 'daemon.json';
export const DAEMON_SOCKET = 'daemon.sock';

/**
 * The host-mode daemon: DNS, the proxy (transparent 80/443 and an explicit port) and a
 * control API on a unix socket (0600, root's) through which `btrfly start/stop/status`
 * open and close sessions. Runs until SIGTERM/SIGINT, then seals open recordings.
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  const archive = await Archive.open(opts.archiveDir, { create: true });
  const upstream = { ...opts.upstream, dns: opts.upstream.dns?.length ? opts.upstream.dns : opts.upstreamDns };
  const runtime = await Runtime.start({
    archive,
    address: opts.address,
    proxyPort: opts.proxyPort,
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    upstream,
    configDir: opts.configDir,
    log: opts.log,
  });
  let dns: DnsServer | undefined;
  let control: Server | undefined;
  const socket = path.join(opts.stateDir, DAEMON_SOCKET);
  try {
    dns = await startDnsServer({
      address: opts.address,
      port: opts.dnsPort,
      answerFor: (client) => (runtime.sessions.bySourceAddress(client) ? { ipv4: opts.address } : null),
      upstream: opts.upstreamDns,
      log: (e) => e.level !== 'debug' && opts.log(e.msg, e as Record<string, unknown>),
    });
    await rm(socket, { force: true });
    control = await listenControl(controlApp(runtime, opts.log), socket);
    await chmod(socket, 0o600);
    const info: DaemonInfo = {
      pid: process.pid,
      address: opts.address,
      socket,
      archive: path.resolve(opts.archiveDir),
      dnsPort: dns.udpPort,
      httpPort: runtime.proxy.httpPort ?? 0,
      httpsPort: runtime.proxy.httpsPort ?? 0,
      proxyPort: runtime.proxy.proxyPort ?? 0,
      startedAt: new Date().toISOString(),
    };
    await writeFile(path.join(opts.stateDir, DAEMON_FILE), JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    opts.log('daemon ready', { ...info });
    await new Promise<void>((resolve) => {
      for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, () => resolve());
      process.once('btrfly-shutdown' as never, () => resolve());
    });
    opts.log('daemon stopping: sealing open recordings');
  } finally {
    control?.close();
    await dns?.close().catch(() => {});
    const results = await runtime.close().catch((e) => (opts.log('closing sessions failed', { error: oneLine(e) }), []));
    for (const r of results) opts.log('session closed at shutdown', { tag: r.info.tag, mode: r.info.mode, commit: r.commit });
    await archive.close();
    await rm(path.join(opts.stateDir, DAEMON_FILE), { force: true });
    await rm(socket, { force: true });
  }
}

function controlApp(runtime: Runtime, log: DaemonOptions['log']): express.Express {
  const app = express();
  app.use(express.json({ limit: '64kb' }));
  app.get('/status', (_req, res) => {
    res.json({ pid: process.pid, sessions: runtime.status() });
  });
  app.post('/sessions', (req, res, next) => {
    const body = req.body as OpenSessionOptions;
    runtime.openSession(body).then((opened) => res.status(201).json(opened), next);
  });
  app.delete('/sessions/:id', (req, res, next) => {
    const discard = req.query.discard === '1';
    runtime.closeSession(req.params.id, { discard }).then((result) => res.json(result), next);
  });
  app.post('/shutdown', (_req, res) => {
    res.json({ ok: true });
    setImmediate(() => process.emit('btrfly-shutdown' as never));
  });
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    log('control request failed', { error: oneLine(err) });
    const e = isBtrflyError(err) ? err : new BtrflyError('STORAGE', oneLine(err));
    res.status(e.httpStatus).json(e.toJSON());
  });
  return app;
}

function listenControl(app: express.Express, socket: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(socket, () => resolve(server));
    server.once('error', reject);
  });
}
