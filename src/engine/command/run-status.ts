/**
 * What `btrfly status` shows of a `btrfly run`: while its command runs, the run answers
 * `GET /status` (its sessions, with their live counters) on a unix socket in its work dir,
 * and names that socket in `<config dir>/runs/<pid>.json`, removed when the run ends.
 */
import * as http from 'node:http';
import { readJsonAnswer } from '../service/json-answer';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { configDir } from '../base/config-dir';
import type { SessionInfo } from '../proxy/session';
import { processAlive } from '../../process-alive';

/** One running `btrfly run` as `btrfly status` shows it. */
export interface RunStatus {
  pid: number;
  archive: string;
  sessions: SessionInfo[];
}

const runsDir = (): string => path.join(configDir(), 'runs');

/**
 * Publishes the run's status until the returned function is called. Best effort: a config
 * dir that cannot be written costs `btrfly status` this run, never the run itself.
 */
export async function publishRunStatus(workDir: string, archive: string, sessions: () => SessionInfo[]): Promise<() => Promise<void>> {
  const socket = path.join(workDir, 'status.sock');
  const file = path.join(runsDir(), `${process.pid}.json`);
  const server = http.createServer((_req, res) => {
    const text = JSON.stringify({ pid: process.pid, archive, sessions: sessions() } satisfies RunStatus);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, resolve);
    });
    await mkdir(runsDir(), { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify({ pid: process.pid, socket }) + '\n', { mode: 0o600 });
  } catch {
    server.close();
    return async () => {};
  }
  return async () => {
    await rm(file, { force: true });
    server.close();
  };
}

/** The runs of this user (config dir) whose command is running now; a file left by a dead run is removed, also when its pid was taken by another process. */
export async function runStatuses(): Promise<RunStatus[]> {
  const names = await readdir(runsDir()).catch(() => [] as string[]);
  const found: RunStatus[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const file = path.join(runsDir(), name);
    const entry = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { pid: number; socket: string }, () => undefined);
    if (!entry || !processAlive(entry.pid)) {
      await rm(file, { force: true });
      continue;
    }
    const status = await askRun(entry.socket).catch(async (e: NodeJS.ErrnoException) => {
      // Nothing listens on its socket: the run is gone and its pid now names another process.
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') await rm(file, { force: true });
      return undefined;
    });
    if (status) found.push(status);
  }
  return found;
}

function askRun(socket: string): Promise<RunStatus> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: socket, path: '/status', timeout: 5000 }, (res) => resolve(readJsonAnswer<RunStatus>(res, 'the run', 'SESSION')));
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
  });
}
