/**
 * Tags shared over the network, as users do it. Two hosts (network namespaces linked by a
 * veth pair): host A records a build and pushes it over HTTPS with basic auth to a real
 * `git http-backend` (credentials from the user's git credential helper, trust from git's own
 * http.sslCAInfo: btrfly stores neither); host B pulls it and plays it back with the origin
 * gone. The bytes a push puts on the wire are counted by the server: after one dependency is
 * re-recorded, the second push sends that one body and little else. Then ssh, against a real
 * sshd on loopback with a key the test makes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import {
  CLI_ENTRY,
  cliEnv,
  copyFixtureArchive,
  createNetns,
  hasNetns,
  linkNetns,
  registerCleanup,
  runCli,
  runOk,
  startGitServer,
  startOrigin,
  stopChild,
  testCa,
  tmpDir,
  type GitServerStats,
  type Netns,
  type Origin,
  type RunResult,
  type VethLink,
} from '../helpers';
import { describeWhen } from '../helpers/when';

const describeNetns = describeWhen(hasNetns() ? undefined : 'network namespaces (root and iproute2)');
const DEPS = ['alpha-1.0.0', 'beta-2.3.1', 'gamma-0.9.0', 'delta-4.1.2', 'epsilon-1.1.0', 'zeta-3.0.0'];
const DEP_SIZE = 256 * 1024;

/** `btrfly ARGS` run inside `ns`, as a user on that host would. */
function btrflyIn(ns: Netns, cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return ns.exec(process.execPath, [CLI_ENTRY, ...args], { cwd, env: cliEnv(env), timeoutMs: 90_000 });
}

/** Bytes the client sent in the pack-carrying requests (`POST .../git-receive-pack`) since `from`. */
function pushedBytes(s: GitServerStats, from: number): number {
  return s.requests.slice(from).filter((r) => r.method === 'POST' && r.url.endsWith('/git-receive-pack')).reduce((n, r) => n + r.requestBytes, 0);
}

/**
 * A user's git setup: a credential helper holding the password, and the CA of the git host,
 * as the environment for btrfly (GIT_SSL_CAINFO, which this machine sets, would override the file).
 */
function gitUser(url: string, user: string, password: string): NodeJS.ProcessEnv {
  const dir = tmpDir('btrfly-gituser-');
  const creds = join(dir, 'credentials');
  const u = new URL(url);
  writeFileSync(creds, `https://${user}:${password}@${u.host}\n`, { mode: 0o600 });
  const config = join(dir, 'gitconfig');
  writeFileSync(config, `[credential]\n\thelper = store --file=${creds}\n[http]\n\tsslCAInfo = ${testCa().caPath}\n`);
  return { GIT_CONFIG_GLOBAL: config, GIT_SSL_CAINFO: undefined };
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describeNetns('sharing over HTTPS between two hosts', () => {
  let hostA: Netns;
  let hostB: Netns;
  let link: VethLink;
  let origin: Origin;
  let files: string;
  let server: Awaited<ReturnType<typeof startGitServer>>;
  let hubUrl: string;
  const cwdA = tmpDir('btrfly-host-a-');
  const cwdB = tmpDir('btrfly-host-b-');

  beforeAll(async () => {
    hostA = await createNetns();
    hostB = await createNetns();
    link = await linkNetns(hostA, hostB);
    files = tmpDir();
    mkdirSync(join(files, 'pkg'));
    for (const dep of [...DEPS, 'gamma-0.9.1']) writeFileSync(join(files, 'pkg', `${dep}.tgz`), randomBytes(DEP_SIZE));
    // The origin lives on host A's loopback only: host B can never reach it.
    origin = await startOrigin({ https: true, dir: files, netns: hostA, host: '127.0.0.1' });
    const root = tmpDir('btrfly-git-root-');
    await runOk('git', ['init', '-q', '--bare', join(root, 'deps.git')]);
    server = await startGitServer(hostA, link.a.address, root, { auth: { user: 'builder', password: 's3cret' }, certNames: [link.a.address] });
    hubUrl = `https://${link.a.address}:${server.port}/deps.git`;
  });

  afterAll(async () => {
    await origin?.close();
  });

  async function recordOnA(deps: string[]): Promise<void> {
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const script = join(tmpDir(), 'build.sh');
    writeFileSync(script, ['set -eu', ...deps.map((d) => `curl -sSf -o /dev/null "${base}/files/pkg/${d}.tgz"`), ''].join('\n'));
    const r = await btrflyIn(hostA, cwdA, ['run', '--record', '--tag=team/app', '--upstream-ca', origin.caPath!, '--resolve', `origin.test:127.0.0.1`, '--', 'bash', script]);
    expect(r.stderr).toContain('recorded tag "team/app"');
  }

  it('records on A, pushes, re-records one dependency and pushes only that; B pulls and plays back with the origin gone', async () => {
    const userA = gitUser(hubUrl, 'builder', 's3cret');
    await recordOnA(DEPS);
    expect((await btrflyIn(hostA, cwdA, ['remote', 'add', 'hub', hubUrl])).code).toBe(0);
    let seen = (await server.stats()).requests.length;
    const first = await btrflyIn(hostA, cwdA, ['push', 'hub'], userA);
    expect(first.stderr).toMatch(/^team\/app: pushed, new tag at/m);
    expect(first.code).toBe(0);
    let stats = await server.stats();
    const firstBytes = pushedBytes(stats, seen);
    expect(firstBytes).toBeGreaterThan(DEPS.length * DEP_SIZE);

    await recordOnA(DEPS.map((d) => (d === 'gamma-0.9.0' ? 'gamma-0.9.1' : d)));
    seen = stats.requests.length;
    const second = await btrflyIn(hostA, cwdA, ['push', 'hub', 'team/app'], userA);
    expect(second.stderr).toMatch(/^team\/app: pushed, [0-9a-f]{12}\.\.[0-9a-f]{12}$/m);
    stats = await server.stats();
    const secondBytes = pushedBytes(stats, seen);
    // One new body (256 KiB, incompressible) plus a manifest, trees and a commit.
    expect(secondBytes).toBeGreaterThan(DEP_SIZE);
    expect(secondBytes).toBeLessThan(DEP_SIZE + 32 * 1024);
    process.stderr.write(`remote-transports: first push ${firstBytes} B, push after one re-recorded dependency ${secondBytes} B\n`);

    // btrfly stored no credential: the archive's config names the remote's URL only.
    expect((await runOk('git', ['--git-dir', join(cwdA, '.btrfly'), 'config', '--list'])).stdout).not.toContain('s3cret');

    await origin.close();
    const userB = gitUser(hubUrl, 'builder', 's3cret');
    expect((await btrflyIn(hostB, cwdB, ['remote', 'add', 'hub', hubUrl])).code).toBe(0);
    const pull = await btrflyIn(hostB, cwdB, ['pull', 'hub'], userB);
    expect(pull.stderr).toMatch(/^team\/app: pulled, new tag at/m);
    expect(pull.code).toBe(0);

    const out = tmpDir();
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const deps = DEPS.map((d) => (d === 'gamma-0.9.0' ? 'gamma-0.9.1' : d));
    const script = join(tmpDir(), 'build.sh');
    writeFileSync(script, ['set -eu', ...deps.map((d) => `curl -sSf -o "${out}/${d}.tgz" "${base}/files/pkg/${d}.tgz"`), ''].join('\n'));
    const play = await btrflyIn(hostB, cwdB, ['run', '--playback', '--tag=team/app', '--', 'bash', script]);
    expect(play.code).toBe(0);
    for (const d of deps) expect(sha256(join(out, `${d}.tgz`))).toBe(sha256(join(files, 'pkg', `${d}.tgz`)));
  });

  it('fails in one line when the credential helper holds a wrong password', async () => {
    const wrong = gitUser(hubUrl, 'builder', 'wrong');
    const cwd = tmpDir('btrfly-host-b2-');
    expect((await btrflyIn(hostB, cwd, ['remote', 'add', 'hub', hubUrl])).code).toBe(0);
    const pull = await btrflyIn(hostB, cwd, ['pull', 'hub'], wrong);
    expect(pull.code).toBe(1);
    expect(pull.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^btrfly: fetch from remote hub failed: Authentication failed for '.*': check its URL .* and your git credentials/),
    ]);
    expect((await server.stats()).unauthorized).toBeGreaterThan(0);
  });
});

/** A free TCP port on loopback (bound and released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A real sshd on 127.0.0.1 with its own config, host key and authorized key; the host's ssh setup untouched. */
async function startSshd(): Promise<{ port: number; sshCommand: string; otherKeyCommand: string }> {
  const dir = tmpDir('btrfly-sshd-');
  for (const k of ['host_key', 'user_key', 'other_key']) await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, k)]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no', // the test's temp dirs are not the layout sshd insists on for homes
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege separation directory
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (log += s));
  registerCleanup(() => stopChild(child));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start: ${log}`)), 10_000);
    const check = (): void => {
      if (/Server listening/.test(log)) {
        clearTimeout(timer);
        resolve();
      } else if (child.exitCode !== null) {
        clearTimeout(timer);
        reject(new Error(`sshd exited: ${log}`));
      } else setTimeout(check, 50);
    };
    check();
  });
  const hostPub = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`);
  const ssh = (key: string): string =>
    `ssh -i ${join(dir, key)} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${join(dir, 'known_hosts')} -o StrictHostKeyChecking=yes`;
  return { port, sshCommand: ssh('user_key'), otherKeyCommand: ssh('other_key') };
}

describe('sharing over ssh', () => {
  it('pushes and pulls the example tags through a real sshd with the user key, and refuses a key sshd does not know', async () => {
    const sshd = await startSshd();
    const hub = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', hub]);
    const url = `ssh://${userInfo().username}@127.0.0.1:${sshd.port}${hub}`;
    const a = copyFixtureArchive();
    const b = join(tmpDir(), 'b');
    const env = { GIT_SSH_COMMAND: sshd.sshCommand };

    expect((await runCli(['remote', 'add', 'hub', url, '--archive', a])).code).toBe(0);
    const push = await runCli(['push', 'hub', '--archive', a], { env });
    expect(push.code).toBe(0);
    expect(push.stderr).toMatch(/^example\/large: pushed, new tag at/m);

    expect((await runCli(['remote', 'add', 'hub', url, '--archive', b])).code).toBe(0);
    const denied = await runCli(['pull', 'hub', '--archive', b], { env: { GIT_SSH_COMMAND: sshd.otherKeyCommand } });
    expect(denied.code).toBe(1);
    expect(denied.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^btrfly: fetch from remote hub failed: .*Permission denied \(publickey\): check its URL/)]);

    const pull = await runCli(['pull', 'hub', '--archive', b], { env });
    expect(pull.code).toBe(0);
    const tags = (dir: string) => runOk('git', ['--git-dir', dir, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads/']).then((r) => r.stdout);
    expect(await tags(b)).toBe(await tags(a));
    const verify = await runCli(['verify', '--archive', b]);
    expect(verify.stdout).toMatch(/^ok: 3 tags, 4 recordings/);
  });
});
