/**
 * A remote that takes the connection and never answers (a TCP server on loopback that accepts
 * and says nothing) must not hold `btrfly verify --repair` or `btrfly pull` for ever, with the
 * gc lock held: the transfer is given up after the archive's bound (`btrfly.transferTimeout`,
 * set short here), with one line naming the remote, over http, https and ssh. SIGINT or SIGTERM
 * during a repair or a pull stops it with the lock released and no quarantine ref left.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, pausePoints, runCli, spawnCli, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });
const incoming = (archive: string): string[] => git(archive, 'for-each-ref', '--format=%(refname)', 'refs/btrfly/incoming/').split('\n').filter(Boolean);
const gcLockHeld = (archive: string): boolean => existsSync(join(archive, 'btrfly', 'gc.lock')) || existsSync(join(archive, 'btrfly', 'gc.json'));

let silent: Server;
let port: number;
const sockets = new Set<Socket>();
/** Resolvers waiting for the next connection to the silent server. */
let onConnection: Array<() => void> = [];

beforeAll(async () => {
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined).on('close', () => sockets.delete(socket));
    for (const r of onConnection) r();
    onConnection = [];
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  port = (silent.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

const connected = (): Promise<void> => new Promise((resolve) => onConnection.push(resolve));

/** The example archive with example/small's manifest damaged, and a remote `silent` at `url`. */
async function damagedWithRemote(url: string, timeout?: number): Promise<string> {
  const archive = copyFixtureArchive();
  damagePackEntry(archive, git(archive, 'rev-parse', 'example/small:manifest.json').trim());
  expect((await runCli(['remote', 'add', 'silent', url, '--archive', archive])).code).toBe(0);
  if (timeout !== undefined) git(archive, 'config', 'btrfly.transferTimeout', String(timeout));
  return archive;
}

test.each([
  ['http', () => `http://127.0.0.1:${port}/archive.git`],
  // Never answers the TLS handshake: curl's low-speed check has not begun, its own connect timeout is 300 s.
  ['https', () => `https://127.0.0.1:${port}/archive.git`],
  ['ssh', () => `ssh://git@127.0.0.1:${port}/archive.git`],
])('verify --repair from a %s remote that never answers gives up after the bound, naming the remote, with the gc lock released', async (_kind, url) => {
  const archive = await damagedWithRemote(url(), 2);
  const r = await runCli(['verify', '--repair', '--archive', archive], { timeoutMs: 60_000 });
  expect(r.stderr).toMatch(/^repair: could not fetch example\/small again from silent: fetch from remote silent stalled: no answer for 2 s \(.+\): check that the remote is up .* config btrfly\.transferTimeout SECONDS" \(0: wait for ever\)$/m);
  expect(r.stderr).toMatch(/^btrfly: verify --repair left \d+ problems? /m);
  expect(r.code).toBe(1);
  expect(gcLockHeld(archive)).toBe(false);
  expect(incoming(archive)).toEqual([]);
}, 90_000);

test('pull from a remote that never answers gives up after the bound with one line naming it', async () => {
  const archive = join(tmpDir('btrfly-stall-'), 'archive');
  expect((await runCli(['remote', 'add', 'silent', `http://127.0.0.1:${port}/archive.git`, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', '2');
  const r = await runCli(['pull', 'silent', '--archive', archive], { timeoutMs: 60_000 });
  expect(r.stderr).toMatch(/^btrfly: fetch from remote silent stalled: no answer for 2 s \(.*Operation too slow.*\): check that the remote is up and reachable and run the command again, or give it longer with "git --git-dir .* config btrfly\.transferTimeout SECONDS" \(0: wait for ever\)\n$/);
  expect(r.code).toBe(1);
}, 90_000);

test('SIGINT during a repair that waits on a remote stops it at once: exit 130, the gc lock released for the next repair', async () => {
  // No bound: only the signal ends the wait.
  const archive = await damagedWithRemote(`http://127.0.0.1:${port}/archive.git`, 0);
  const came = connected();
  const repair = spawnCli(['verify', '--repair', '--archive', archive]);
  await came;
  expect(gcLockHeld(archive)).toBe(true);
  const r = await repair.stop('SIGINT');
  expect(r.stderr).toMatch(/^btrfly: interrupted by SIGINT: the repair stopped, its lock released: run "btrfly verify --repair" again to finish it .*\n$/m);
  expect(r.code).toBe(130);
  expect(gcLockHeld(archive)).toBe(false);
  expect(incoming(archive)).toEqual([]);
  // Another repair takes the lock at once and gets as far as the remote.
  git(archive, 'config', 'btrfly.transferTimeout', '1');
  const again = await runCli(['verify', '--repair', '--archive', archive], { timeoutMs: 60_000 });
  expect(again.stderr).not.toMatch(/already running/);
  expect(again.stderr).toMatch(/^repair: could not fetch example\/small again from silent: fetch from remote silent stalled: no answer for 1 s/m);
}, 90_000);

test('SIGTERM during a pull whose fetch is in the quarantine refs: exit 143, no tag moved, no quarantine ref left', async () => {
  const remote = copyFixtureArchive();
  const archive = join(tmpDir('btrfly-stall-'), 'archive');
  expect((await runCli(['remote', 'add', 'origin', remote, '--archive', archive])).code).toBe(0);
  const pause = pausePoints();
  const pull = spawnCli(['pull', 'origin', '--archive', archive], { env: pause.env('pull-fetched') });
  await pause.reached('pull-fetched');
  expect(incoming(archive).length).toBeGreaterThan(0);
  // The signal is taken at once (the process is idle at the pause); let go, the pull stops at its next safe point.
  pull.child.kill('SIGTERM');
  pause.release('pull-fetched');
  const r = await pull.exited;
  expect(r.stderr).toMatch(/^btrfly: interrupted by SIGTERM: the tags not yet verified stay as they were; run "btrfly pull origin" again\n$/);
  expect(r.code).toBe(143);
  expect(incoming(archive)).toEqual([]);
  expect(git(archive, 'for-each-ref', 'refs/heads/')).toBe('');
}, 90_000);
