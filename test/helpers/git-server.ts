import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { stopChild, type Netns } from './netns';
import { runOk } from './proc';
import { askChild, readReadyLine, stderrTail } from './server-process';
import { testCa } from './test-ca';
import { tmpDir } from './tmp';

/** A git smart-HTTP server running the real `git http-backend` (see its header). */
export const GIT_SERVER_SCRIPT = join(__dirname, '..', 'fixtures', 'git-http-server.js');

/** What the git server counted since it started: requests answered (each with its bytes), and those refused for want of credentials. */
export interface GitServerStats {
  total: number;
  unauthorized: number;
  requests: { method: string; url: string; requestBytes: number; responseBytes: number }[];
}

/** Options of {@link startGitServer}. */
export interface GitServerOptions {
  /** HTTP basic auth credentials every request must carry (401 without them). */
  auth?: { user: string; password: string };
  /** The names in the server's certificate; default the test names and loopback. */
  certNames?: readonly string[];
}

/** A git smart-HTTP server (test/fixtures/git-http-server.js) over HTTPS as a process inside `ns` (without one: on this host, stopped at the end of the test file). */
export async function startGitServer(
  ns: Netns | undefined,
  host: string,
  root: string,
  options: GitServerOptions = {},
): Promise<{ port: number; child: ChildProcess; stats(): Promise<GitServerStats> }> {
  const cert = testCa().issue(options.certNames);
  const auth = options.auth ? ['--user', options.auth.user, '--password', options.auth.password] : [];
  const args = [GIT_SERVER_SCRIPT, '--host', host, '--root', root, '--cert', cert.certPath, '--key', cert.keyPath, ...auth];
  const stdio: ['ignore', 'pipe', 'pipe', 'ipc'] = ['ignore', 'pipe', 'pipe', 'ipc'];
  const child = ns ? ns.spawn(process.execPath, args, { stdio }) : spawn(process.execPath, args, { stdio });
  if (!ns) {
    const unregister = registerCleanup(() => stopChild(child));
    child.once('exit', unregister);
  }
  const { port } = await readReadyLine<{ port: number }>(child, stderrTail(child), 'git server');
  const ask = askChild<{ stats: GitServerStats }>(child);
  return { port, child, stats: async () => (await ask('stats')).stats };
}

/** A bare repository `<root>/proj.git` with a few commits, one of them a 3 MiB file; returns its HEAD. */
export async function makeGitRepo(root: string): Promise<string> {
  const work = tmpDir();
  const git = (...a: string[]) => runOk('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a]);
  await git('init', '-q', '-b', 'main');
  for (let i = 0; i < 3; i++) {
    writeFileSync(join(work, `file${i}.txt`), `revision ${i}\n`.repeat(1000 * (i + 1)));
    await git('add', '.');
    await git('commit', '-q', '-m', `commit ${i}`);
  }
  await runOk('sh', ['-c', `head -c 3145728 /dev/urandom > "${work}/blob.bin"`]);
  await git('add', '.');
  await git('commit', '-q', '-m', 'a binary');
  await runOk('git', ['clone', '-q', '--bare', work, join(root, 'proj.git')]);
  return (await git('rev-parse', 'HEAD')).stdout.trim();
}
