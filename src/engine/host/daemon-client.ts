import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as path from 'node:path';
import { BtrflyError } from '../../errors';
import { processAlive } from '../../process-alive';
import { readJsonAnswer } from '../service/json-answer';

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

// Here, not in daemon.ts, so that start/stop/status do not load the daemon's server modules.
export const DAEMON_FILE = 'daemon.json';
export const DAEMON_SOCKET = 'daemon.sock';

/** How to reach the daemon of a state dir, or learn that none runs. */
export async function findDaemon(stateDir: string): Promise<DaemonInfo | undefined> {
  let info: DaemonInfo;
  try {
    info = JSON.parse(await readFile(path.join(stateDir, DAEMON_FILE), 'utf8')) as DaemonInfo;
  } catch {
    return undefined;
  }
  if (!processAlive(info.pid)) return undefined;
  try {
    await controlRequest(info.socket, 'GET', '/status');
    return info;
  } catch {
    return undefined;
  }
}

/** The daemon's `--upstream-proxy`, passed in its environment rather than on its command line. */
export const DAEMON_UPSTREAM_PROXY_ENV = 'BTRFLY_DAEMON_UPSTREAM_PROXY';

/**
 * Starts the daemon detached (it outlives this command) unless one runs for this state dir,
 * and waits until its control socket answers. The daemon's log goes to `daemon.log` there.
 * @param opts.env added to the daemon's environment: settings that must not show on its command line
 */
export async function ensureDaemon(stateDir: string, args: string[], opts: { archiveDir: string; timeoutMs?: number; env?: Record<string, string> }): Promise<DaemonInfo> {
  const running = await findDaemon(stateDir);
  if (running) {
    if (running.archive !== path.resolve(opts.archiveDir)) {
      throw new BtrflyError('SESSION', `the btrfly daemon (pid ${running.pid}) already runs with archive ${running.archive}: run "btrfly status" to see its sessions and "btrfly stop" to end them, or use that archive`);
    }
    return running;
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const logFile = path.join(stateDir, 'daemon.log');
  const fd = openSync(logFile, 'a', 0o600);
  // Not `bin/run.js daemon`: oclif's start-up was a fifth of a second of every `btrfly start`.
  const entry = path.resolve(__dirname, '..', '..', 'cli', 'daemon-entry.js');
  const child = spawn(process.execPath, [entry, ...args], { detached: true, stdio: ['ignore', fd, fd], env: { ...daemonEnv(process.env), ...opts.env } });
  closeSync(fd);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  child.unref();
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  while (Date.now() < deadline) {
    if (exited !== undefined) break;
    const info = await findDaemon(stateDir);
    if (info) return info;
    // Until it is ready only a missing daemon.json is read: cheap enough to look often, so that
    // `btrfly start` goes on within a few ms of the daemon answering.
    await new Promise((r) => setTimeout(r, 20));
  }
  const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-1)[0] ?? '';
  throw new BtrflyError('SESSION', `the btrfly daemon did not start${tail ? `: ${tail.slice(0, 300)}` : ''}: see ${logFile}`);
}

/**
 * The daemon's environment: glibc's mmap threshold fixed at 4 MiB, as bin/run.js gives every
 * streaming command by re-executing itself (docs/decisions.md, "Memory of long streams"), here
 * set at the spawn; the daemon removes it again (`BTRFLY_MALLOC_TUNED`) so no child inherits it.
 */
function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (process.platform !== 'linux' || env.MALLOC_MMAP_THRESHOLD_) return env;
  return { ...env, MALLOC_MMAP_THRESHOLD_: '4194304', BTRFLY_MALLOC_TUNED: 'added' };
}

/**
 * Asks the daemon to shut down (it seals what it still records) and waits until its process
 * is gone, so that its ports and its state file are free when this returns.
 */
export async function shutdownDaemon(info: Pick<DaemonInfo, 'pid' | 'socket'>, timeoutMs = 120_000): Promise<void> {
  await controlRequest(info.socket, 'POST', '/shutdown').catch(() => {});
  const deadline = Date.now() + timeoutMs;
  while (processAlive(info.pid)) {
    if (Date.now() > deadline) throw new BtrflyError('SESSION', `the btrfly daemon (pid ${info.pid}) did not stop within ${timeoutMs / 1000} s: see daemon.log in the state directory, then kill it`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One JSON request to the daemon's control API over its unix socket. */
export function controlRequest<T = unknown>(socket: string, method: string, urlPath: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      { socketPath: socket, method, path: urlPath, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}, timeout: 600_000 },
      (res) => readJsonAnswer<T>(res, 'the btrfly daemon (see its log)', 'SESSION').then(resolve, reject),
    );
    req.once('error', reject);
    req.end(payload);
  });
}
