import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import * as path from 'node:path';
import express from 'express';
import { API_BODY_LIMIT, jsonErrorHandler } from '../service/json-answer';
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
 * open and close sessions. Runs until SIGTERM/SIGINT, then seals open recordings.
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
    control = await listenControl(controlApp(runtime, opts.logger, shutdown), socket);
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
    opts.logger.info('daemon stopping: sealing open recordings');
  } finally {
    control?.close();
    await serving.close();
    await rm(path.join(opts.stateDir, DAEMON_FILE), { force: true });
    await rm(socket, { force: true });
  }
}

function controlApp(runtime: Runtime, log: DaemonOptions['logger'], shutdown: AbortController): express.Express {
  const app = express();
  app.use(express.json({ limit: API_BODY_LIMIT }));
  app.get('/status', (_req, res) => {
    res.json({ pid: process.pid, sessions: runtime.status() });
  });
  app.post('/sessions', (req, res, next) => {
    // The socket is root's, but a bad name would still be sealed into the tag's manifest.
    Promise.resolve()
      .then(() => runtime.openSession(parseDaemonSessionRequest(req.body)))
      .then((opened) => res.status(201).json(opened), next);
  });
  app.delete('/sessions/:id', (req, res, next) => {
    const discard = req.query.discard === '1';
    runtime.closeSession(req.params.id, { discard }).then((result) => res.json(result), next);
  });
  app.post('/shutdown', (_req, res) => {
    res.json({ ok: true });
    setImmediate(() => shutdown.abort());
  });
  app.use(jsonErrorHandler((e) => log.warn({ error: e.message }, 'control request failed')));
  return app;
}

function listenControl(app: express.Express, socket: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(socket, () => resolve(server));
    server.once('error', reject);
  });
}
