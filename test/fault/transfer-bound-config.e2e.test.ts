/**
 * `btrfly.transferTimeout` set to something that is not a whole number of seconds ("abc", -1,
 * 1e9, git's "1m") is refused in one line saying how to set it, before anything changed (a pull
 * fetches nothing, a repair sets nothing aside), rather than silently replaced by the default. A
 * bound longer than a Node timer can wait (24.8 days) is a long bound, not none: an https pull
 * works (a longer timer would fire at once, and btrfly's own TLS handshake would "stall"). A
 * remote git reaches through a proxy of its own (`remote.<name>.proxy`) gets no handshake of
 * btrfly's straight to its host, which may not be reachable but through the proxy; nor does one
 * whose URL git rewrites (`url.<base>.insteadOf`) or pushes to elsewhere (`remote.<name>.pushurl`):
 * the handshake is with the host git reaches. A plain http remote whose host drops connection
 * attempts (a firewall; here a listener whose queue is full) is given up after the bound too.
 */
import { cpSync, existsSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, FIXTURE_ARCHIVE, registerCleanup, runCli, startGitServer, testCa, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });
/** The git host's CA, as the user's git has it. */
const env = (): NodeJS.ProcessEnv => ({ GIT_SSL_CAINFO: testCa().caPath });

let url: string;
let gitPort: number;
let root: string;
const servers: Server[] = [];
const sockets = new Set<Socket>();
const listen = async (server: Server): Promise<number> => {
  servers.push(server);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => undefined).on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

beforeAll(async () => {
  root = tmpDir('btrfly-git-host-');
  execFileSync('git', ['init', '-q', '--bare', join(root, 'pushed.git')]);
  // Anonymous pushes: git http-backend takes them only so.
  execFileSync('git', ['--git-dir', join(root, 'pushed.git'), 'config', 'http.receivepack', 'true']);
  cpSync(FIXTURE_ARCHIVE, join(root, 'archive.git'), { recursive: true });
  const server = await startGitServer(undefined, '127.0.0.1', root);
  gitPort = server.port;
  url = `https://127.0.0.1:${server.port}/archive.git`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function archiveWithBound(value: string, archive = join(tmpDir('btrfly-bound-'), 'archive')): Promise<string> {
  expect((await runCli(['remote', 'add', 'origin', url, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', value);
  return archive;
}

const refused = (archive: string, value: string): string =>
  `btrfly: btrfly.transferTimeout is "${value}" in the archive's git config, not a whole number of seconds: ` +
  `set it with "git --git-dir ${archive} config btrfly.transferTimeout SECONDS" (0: wait for ever), or drop it for the default 60 s\n`;

test.each(['abc', '-1', '1e9', '1m'])('pull with btrfly.transferTimeout "%s" is refused in one line, nothing fetched', async (value) => {
  const archive = await archiveWithBound(value);
  const r = await runCli(['pull', 'origin', '--archive', archive], { env: env() });
  expect(r.stderr).toBe(refused(archive, value));
  expect(r.code).toBe(1);
  expect(git(archive, 'for-each-ref')).toBe('');
}, 60_000);

test("the archive's own bound wins over a wrong one in the user's global git config, as in git", async () => {
  const archive = await archiveWithBound('5');
  const global = join(tmpDir('btrfly-gitconfig-'), 'gitconfig');
  execFileSync('git', ['config', '--file', global, 'btrfly.transferTimeout', 'abc']);
  const r = await runCli(['pull', 'origin', 'example/small', '--archive', archive], { env: { ...env(), GIT_CONFIG_GLOBAL: global } });
  expect(r.stderr).toMatch(/^example\/small: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(r.code).toBe(0);
}, 60_000);

test('verify --repair with a bound set wrong is refused before anything is set aside', async () => {
  const archive = copyFixtureArchive();
  damagePackEntry(archive, git(archive, 'rev-parse', 'example/small:manifest.json').trim());
  await archiveWithBound('abc', archive);
  const r = await runCli(['verify', '--repair', '--archive', archive], { env: env() });
  expect(r.stderr.split('\n').filter((l) => l.startsWith('btrfly: ') || l.startsWith('repair: '))).toEqual([refused(archive, 'abc').trimEnd()]);
  expect(r.code).toBe(1);
  expect(existsSync(join(archive, 'btrfly', 'damaged'))).toBe(false);
}, 60_000);

test('a bound longer than a Node timer can wait is a long bound: an https pull works', async () => {
  const archive = await archiveWithBound('3000000');
  const r = await runCli(['pull', 'origin', 'example/small', '--archive', archive], { env: env() });
  expect(r.stderr).toMatch(/^example\/small: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(r.code).toBe(0);
}, 60_000);

test('a remote reached through remote.<name>.proxy is not given up for a host that never answers straight', async () => {
  // The remote's host takes connections and never answers (as one a firewall lets through only from the proxy);
  // the proxy's tunnels all reach the git host.
  const silent = await listen(createServer());
  const proxy = createHttpServer().on('connect', (_req, client: Socket, head: Buffer) => {
    const up = connect(gitPort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      up.write(head);
      up.pipe(client).pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  const proxyPort = await listen(proxy);
  const archive = join(tmpDir('btrfly-bound-'), 'archive');
  expect((await runCli(['remote', 'add', 'origin', `https://127.0.0.1:${silent}/archive.git`, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', '2');
  git(archive, 'config', 'remote.origin.proxy', `http://127.0.0.1:${proxyPort}`);
  const r = await runCli(['pull', 'origin', 'example/small', '--archive', archive], { env: env(), timeoutMs: 60_000 });
  expect(r.stderr).toMatch(/^example\/small: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(r.code).toBe(0);
}, 90_000);

test('the handshake is with the host git reaches: url.<base>.insteadOf for a pull, remote.<name>.pushurl for a push', async () => {
  // The URL as configured names a host that takes connections and never answers.
  const silent = await listen(createServer());
  const archive = join(tmpDir('btrfly-bound-'), 'archive');
  expect((await runCli(['remote', 'add', 'origin', `https://127.0.0.1:${silent}/archive.git`, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', '2');
  git(archive, 'config', `url.https://127.0.0.1:${gitPort}/.insteadOf`, `https://127.0.0.1:${silent}/`);
  const pulled = await runCli(['pull', 'origin', 'example/small', '--archive', archive], { env: env(), timeoutMs: 60_000 });
  expect(pulled.stderr).toMatch(/^example\/small: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(pulled.code).toBe(0);

  expect((await runCli(['remote', 'add', 'mirror', `https://127.0.0.1:${silent}/mirror.git`, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'remote.mirror.pushurl', `https://127.0.0.1:${gitPort}/pushed.git`);
  const pushed = await runCli(['push', 'mirror', 'example/small', '--archive', archive], { env: env(), timeoutMs: 60_000 });
  expect(pushed.stderr).toMatch(/^example\/small: pushed, new tag at [0-9a-f]{12}\n$/);
  expect(pushed.code).toBe(0);
  expect(git(join(root, 'pushed.git'), 'rev-parse', 'example/small')).toBe(git(archive, 'rev-parse', 'example/small'));
}, 90_000);

/** A listener that never accepts, its queue filled: the kernel drops further connection attempts (SYNs), as a firewall does. */
const DROPPING = `
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
held = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    held.append(c)
print(port, flush=True)
sys.stdin.read()
`;

test('pull from a plain http remote whose host drops connection attempts gives up after the bound (curl would wait 300 s)', async () => {
  const child = spawn('python3', ['-c', DROPPING], { stdio: ['pipe', 'pipe', 'inherit'] });
  registerCleanup(() => void child.kill());
  const dropping = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  const archive = join(tmpDir('btrfly-bound-'), 'archive');
  expect((await runCli(['remote', 'add', 'dropped', `http://127.0.0.1:${dropping}/archive.git`, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', '2');
  const r = await runCli(['pull', 'dropped', '--archive', archive], { timeoutMs: 30_000 });
  expect(r.stderr).toMatch(new RegExp(`^btrfly: fetch from remote dropped stalled: no answer for 2 s \\(no connection to 127\\.0\\.0\\.1:${dropping} within 2 s\\): check that the remote is up`));
  expect(r.code).toBe(1);
}, 60_000);
