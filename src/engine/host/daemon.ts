import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as path from 'node:path';
import { BtrflyError } from '../../errors';
import { apiError, readJsonBody } from '../service/json-answer';
import type { Runtime } from '../session/runtime';
import { parseDaemonSessionRequest } from '../session/session-request';
import { DAEMON_FILE, DAEMON_SOCKET, type DaemonInfo } from './daemon-client';
import { startServing, untilShutdown, type ServingOptions } from '../session/serving';

/** The daemon's settings: what it serves (its address is a dedicated loopback one, default 127.77.0.1) and where it publishes itself. */
export interface DaemonOptions extends Omit<ServingOptions, 'onResponse'> {
  stateDir: string;
}



/**
 * The host-mode daemon: DNS, the proxy (transparent 80/443 and an explicit port) and a
 * control API on a unix socket (0600, root's) through which `btrfly start/stop/status`
 * open and close sessions. Runs until SIGTERM/SIGINT (a reboot, a kill), then leaves open
 * recordings pending as a crash does: the build was interrupted, so the tag does not move, and
 * the next `btrfly stop record` seals or discards what was completed (docs/contract.md, "Atomic tags").
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  const serving = await startServing(opts);
  const { runtime, dns } = serving;
  let control: Server | undefined;
  const socket = path.join(opts.stateDir, DAEMON_SOCKET);
  try {
    await rm(socket, { force: true });
    // POST /shutdown aborts this, as SIGTERM would.
    const shutdown = new AbortController();
    const stopping = untilShutdown(opts.signal, shutdown.signal);
    control = await listenControl(controlServer(runtime, opts.logger, shutdown), socket);
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
    opts.logger.info({ ...info }, 'daemon ready');
    await stopping;
    opts.logger.info('daemon stopping: open recordings are left pending for "btrfly stop record"');
  } finally {
    control?.close();
    await serving.close({ interrupted: true });
    await rm(path.join(opts.stateDir, DAEMON_FILE), { force: true });
    await rm(socket, { force: true });
  }
}

/**
 * The control API, on plain node:http (express alone took a fifth of the daemon's start-up):
 * `GET /status`, `POST /sessions`, `DELETE /sessions/ID[?discard=1]`, `POST /shutdown`; a
 * failure is answered `{error: {code, message}}` with its status, as the service's API does.
 */
function controlServer(runtime: Runtime, log: DaemonOptions['logger'], shutdown: AbortController): Server {
  const handle = async (req: IncomingMessage): Promise<{ status: number; body: unknown }> => {
    const url = new URL(req.url ?? '/', 'http://btrfly');
    const session = /^\/sessions\/([^/]+)$/.exec(url.pathname)?.[1];
    if (req.method === 'GET' && url.pathname === '/status') return { status: 200, body: { pid: process.pid, sessions: runtime.status() } };
    // The socket is root's, but a bad name would still be sealed into the tag's manifest.
    if (req.method === 'POST' && url.pathname === '/sessions') return { status: 201, body: await runtime.openSession(parseDaemonSessionRequest(await readJsonBody(req))) };
    if (req.method === 'DELETE' && session) return { status: 200, body: await runtime.closeSession(decodeURIComponent(session), { discard: url.searchParams.get('discard') === '1' }) };
    if (req.method === 'POST' && url.pathname === '/shutdown') {
      setImmediate(() => shutdown.abort());
      return { status: 200, body: { ok: true } };
    }
    throw new BtrflyError('NOT_FOUND', `the daemon's control API has no ${req.method} ${url.pathname}`, { httpStatus: 404 });
  };
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
  };
  return createServer((req, res) => {
    handle(req).then(
      (answer) => send(res, answer.status, answer.body),
      (err: unknown) => {
        const e = apiError(err);
        log.warn({ error: e.message }, 'control request failed');
        send(res, e.httpStatus, e.toJSON());
      },
    );
  });
}

function listenControl(server: Server, socket: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve(server));
  });
}
