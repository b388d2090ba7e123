/**
 * `btrfly.transferTimeout` holds whatever carries the transfer, not only where the transport has
 * a timeout btrfly can set: btrfly stops a git transfer that shows no sign of life (no progress,
 * no packet, no output) for the bound and says so in one line naming the remote. Two cases the
 * transports' own timeouts missed: an ssh command that is a wrapper script (which may not take
 * `-o`, so it got no ConnectTimeout) in front of a server that takes the connection and says
 * nothing, and an https server that completes btrfly's own TLS handshake and then stalls git's
 * (curl waited its 300 s connect timeout). A remote that is busy longer than that but says so
 * (git's keep-alives, while a hook runs) is not cut; the packet trace the watchdog reads is not
 * shown with git's progress.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { copyFixtureArchive, registerCleanup, runCli, testCa, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

/**
 * A TCP server on loopback that takes every connection and says nothing, but hands the first
 * `answered` connections to `answer`. Counts the connections it took.
 */
async function silentServer(answered = 0, answer?: (socket: Socket) => void): Promise<{ port: number; connections: () => number }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => undefined).on('close', () => sockets.delete(socket));
    if (count <= answered) answer!(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registerCleanup(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, connections: () => count };
}

/** An archive with the remote `silent` at `url` and a bound of 2 s. */
async function archiveWithRemote(url: string): Promise<string> {
  const archive = join(tmpDir('btrfly-stall-any-'), 'archive');
  expect((await runCli(['remote', 'add', 'silent', url, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', '2');
  return archive;
}

const stalledLine = (what: string): RegExp =>
  new RegExp(
    `^btrfly: ${what} remote silent stalled: no answer for 2 s \\(git \\S+: nothing came through its transport\\): ` +
      'check that the remote is up and reachable and run the command again, or give it longer with "git --git-dir .* config btrfly\\.transferTimeout SECONDS" \\(0: wait for ever\\)\\n$',
  );

/** A wrapper around OpenSSH, as users write them (a key, a config of their own): it passes git's arguments on. */
function sshWrapper(): string {
  const script = join(tmpDir('btrfly-ssh-wrapper-'), 'my-ssh');
  writeFileSync(script, '#!/bin/sh\nexec ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "$@"\n');
  chmodSync(script, 0o755);
  return script;
}

test.each([['GIT_SSH_COMMAND'], ['core.sshCommand']])('a pull through an ssh wrapper (%s) from a server that never answers gives up after the bound', async (where) => {
  const server = await silentServer();
  const archive = await archiveWithRemote(`ssh://git@127.0.0.1:${server.port}/archive.git`);
  const wrapper = sshWrapper();
  if (where === 'core.sshCommand') git(archive, 'config', 'core.sshCommand', wrapper);
  const r = await runCli(['pull', 'silent', '--archive', archive], { env: where === 'GIT_SSH_COMMAND' ? { GIT_SSH_COMMAND: wrapper } : {}, timeoutMs: 60_000 });
  expect(r.stderr).toMatch(stalledLine('fetch from'));
  expect(r.code).toBe(1);
  expect(server.connections()).toBe(1);
}, 90_000);

test("a pull from an https server that completes btrfly's handshake and stalls git's gives up after the bound", async () => {
  const cert = testCa().issue();
  const tls = createTlsServer({ key: cert.keyPem, cert: cert.certPem });
  tls.on('secureConnection', (socket) => socket.on('error', () => undefined));
  tls.on('tlsClientError', () => undefined);
  // The first connection is btrfly's own check: answered. git's, the next, meets silence.
  const server = await silentServer(1, (socket) => tls.emit('connection', socket));
  const archive = await archiveWithRemote(`https://127.0.0.1:${server.port}/archive.git`);
  const r = await runCli(['pull', 'silent', '--archive', archive], { timeoutMs: 60_000 });
  // Said as git's stall: btrfly's handshake went through (else: "no TLS handshake with …").
  expect(r.stderr).toMatch(stalledLine('fetch from'));
  expect(r.code).toBe(1);
  expect(server.connections()).toBe(2);
}, 90_000);

test('a push to a remote whose hook runs longer than the bound, with keep-alives, is not cut', async () => {
  const archive = copyFixtureArchive();
  const hub = join(tmpDir('btrfly-busy-'), 'hub.git');
  execFileSync('git', ['init', '-q', '--bare', hub]);
  // A slow server, not a wait of the test's: 6 s of hook, silent but for git's keep-alive each second.
  writeFileSync(join(hub, 'hooks', 'pre-receive'), '#!/bin/sh\ncat >/dev/null\nsleep 6\n');
  chmodSync(join(hub, 'hooks', 'pre-receive'), 0o755);
  git(hub, 'config', 'receive.keepAlive', '1');
  expect((await runCli(['remote', 'add', 'hub', hub, '--archive', archive])).code).toBe(0);
  git(archive, 'config', 'btrfly.transferTimeout', '2');
  const r = await runCli(['push', 'hub', 'example/small', '--archive', archive], { timeoutMs: 60_000 });
  expect(r.stderr).toMatch(/^example\/small: pushed, new tag at [0-9a-f]{12}\n$/);
  expect(r.code).toBe(0);
}, 90_000);

test("git's progress is shown without the packet trace the watchdog reads", async () => {
  const archive = join(tmpDir('btrfly-progress-'), 'archive');
  expect((await runCli(['remote', 'add', 'origin', copyFixtureArchive(), '--archive', archive])).code).toBe(0);
  const r = await runCli(['pull', 'origin', 'example/small', '--progress', '--archive', archive]);
  expect(r.stderr).toMatch(/(Receiving|Unpacking) objects: 100% /);
  expect(r.stderr).not.toMatch(/packet:/);
  expect(r.stderr).toMatch(/\nexample\/small: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(r.code).toBe(0);
}, 60_000);
