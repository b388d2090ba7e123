/**
 * Once `verify --repair` has repaired (its lock released), the check it runs again only reads:
 * Ctrl-C there ends it at once, as it would a plain verify, rather than being taken by a signal
 * handler that nothing checks any more (the check then ran to its end and exited 0). A pull
 * killed outright (kill -9, or `timeout -s KILL`, which kills btrfly's process group, not git's
 * own) takes its git transfer with it: git's group no longer goes on waiting on the remote, or
 * fetching into the archive, unseen.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, pausePoints, registerCleanup, runCli, spawnCli, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

test('SIGINT after the repair, during the check that follows, ends verify --repair at once', async () => {
  const archive = copyFixtureArchive();
  damagePackEntry(archive, git(archive, 'rev-parse', 'example/small:manifest.json').trim());
  expect((await runCli(['remote', 'add', 'origin', copyFixtureArchive(), '--archive', archive])).code).toBe(0);
  const pause = pausePoints();
  const repair = spawnCli(['verify', '--repair', '--archive', archive], { env: pause.env('repair-verify') });
  await pause.reached('repair-verify');
  repair.child.kill('SIGINT');
  // Let go: a process that took the signal without ending goes on with the check.
  pause.release('repair-verify');
  const r = await repair.exited;
  expect(r.stderr).toMatch(/^repair: fetched example\/small again from origin/m);
  expect(r.stdout).not.toMatch(/^ok: /m);
  expect(r.signal).toBe('SIGINT');
  expect(existsSync(join(archive, 'btrfly', 'gc.lock'))).toBe(false);
}, 120_000);

test('a pull killed with SIGKILL while git waits on the remote: git and its helper go with it', async () => {
  // A remote that takes the connection and says nothing; each connection is handed to the test.
  const connections: Socket[] = [];
  let arrived: (() => void) | undefined;
  const silent = createServer((socket) => {
    // Read (and drop) what comes, so that the end of the connection is seen.
    socket.on('error', () => undefined).resume();
    connections.push(socket);
    arrived?.();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  registerCleanup(() => {
    for (const c of connections) c.destroy();
    silent.close();
  });
  const archive = join(tmpDir('btrfly-killed-'), 'archive');
  expect((await runCli(['remote', 'add', 'silent', `http://127.0.0.1:${(silent.address() as AddressInfo).port}/archive.git`, '--archive', archive])).code).toBe(0);
  // No bound: only the end of the pull would end the wait.
  git(archive, 'config', 'btrfly.transferTimeout', '0');
  const came = new Promise<void>((resolve) => (arrived = resolve));
  const pull = spawnCli(['pull', 'silent', '--archive', archive]);
  await came;
  const transfer = connections[connections.length - 1];
  const closed = new Promise<void>((resolve) => transfer.once('close', () => resolve()));
  pull.child.kill('SIGKILL');
  expect((await pull.exited).signal).toBe('SIGKILL');
  // The connection closes when git's helper ends; left running, it would wait for ever.
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([closed.then(() => 'closed'), new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still open after 20 s'), 20_000)))]);
  clearTimeout(timer);
  expect(outcome).toBe('closed');
}, 60_000);
