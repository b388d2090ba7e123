/**
 * `btrfly run --isolate` started by a user other than root runs the command as that user, not
 * as the namespace's root: `id` inside gives their uid and gid, a file the command writes into
 * their tree is theirs outside, their own files are theirs inside (git's safe.directory and
 * npm's ownership checks compare the two), and the command cannot change the namespace's network;
 * its HTTP still reaches btrfly and is recorded. Started by root, the command is root as before.
 * Real unshare, as an unprivileged uid (setpriv): the machine must allow unprivileged user
 * namespaces, as --isolate itself requires. A user's PATH without the sbin directories (where
 * `ip` and `nft` are) still sets the namespace up.
 */
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NO_PASSWD_UID, WITHOUT_NPM_SETTINGS, npmTool, registerCleanup, runCli, startOrigin, tmpDir, userDir } from '../helpers';
import { testWhen } from '../helpers/when';

const USER = NO_PASSWD_UID;

/**
 * A directory owned by USER, with its HOME and btrfly's config inside. SHELL is unset, as for a
 * container run with --user and no passwd entry: oclif then asks the passwd database for the
 * login shell, and btrfly must not let that throw.
 */
function userHome(): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = userDir('btrfly-isolate-user-');
  const env = { SHELL: undefined, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data'), XDG_CACHE_HOME: join(dir, 'cache'), BTRFLY_CONFIG_DIR: join(dir, 'config', 'btrfly') };
  return { dir, env };
}

describe('btrfly run --isolate runs the command as the user who started btrfly', () => {
  it('as a user: uid and gid inside are theirs, files it writes are theirs inside and out, the namespace network is out of its reach, and its HTTP is recorded', async () => {
    const plain = await startOrigin();
    registerCleanup(() => plain.close());
    const { dir, env } = userHome();
    const out = join(dir, 'out');
    mkdirSync(out);
    chownSync(out, USER, USER);
    const script = [
      'set -e',
      'id -u > out/uid',
      'id -g > out/gid',
      'echo built > out/file',
      'stat -c "%u %g" out/file . > out/owners',
      'echo "${SHELL-unset}" > out/shell',
      // As the namespace's root it could flush btrfly's rules (and the leak sets read at the end).
      'nft flush ruleset 2>/dev/null && echo flushed > out/nft || echo refused > out/nft',
      `curl -sSf --noproxy '*' -o out/body http://plain.test:${plain.port}/gen/3000?seed=user`,
    ].join('\n');
    const rec = await runCli(['run', '--isolate', '--record', '--tag=user', '--archive', join(dir, '.btrfly'), '--resolve', `plain.test:${plain.host}`, '--', 'sh', '-c', script], { uid: USER, cwd: dir, env });
    expect(rec.stderr).toMatch(/1 requests, 1 entries/);
    expect(rec.code).toBe(0);
    expect(readFileSync(join(out, 'uid'), 'utf8')).toBe(`${USER}\n`);
    expect(readFileSync(join(out, 'gid'), 'utf8')).toBe(`${USER}\n`);
    expect(readFileSync(join(out, 'owners'), 'utf8')).toBe(`${USER} ${USER}\n${USER} ${USER}\n`);
    expect(readFileSync(join(out, 'nft'), 'utf8')).toBe('refused\n');
    expect(readFileSync(join(out, 'shell'), 'utf8')).toBe('unset\n');
    expect(readFileSync(join(out, 'body')).length).toBe(3000);
    const st = statSync(join(out, 'file'));
    expect([st.uid, st.gid]).toEqual([USER, USER]);
  });

  it("as a user whose PATH has no sbin directory (Debian's default for a user): the namespace is set up, and the command keeps that PATH", async () => {
    const plain = await startOrigin();
    registerCleanup(() => plain.close());
    const { dir, env } = userHome();
    const userPath = '/usr/local/bin:/usr/bin:/bin';
    const script = `curl -sSf --noproxy '*' -o body http://plain.test:${plain.port}/gen/1000?seed=path && printf '%s' "$PATH" > path`;
    const rec = await runCli(['run', '--isolate', '--record', '--tag=path', '--archive', join(dir, '.btrfly'), '--resolve', `plain.test:${plain.host}`, '--', 'sh', '-c', script], {
      uid: USER,
      cwd: dir,
      env: { ...env, PATH: userPath },
    });
    expect(rec.stderr).toMatch(/1 requests, 1 entries/);
    expect(rec.code).toBe(0);
    expect(readFileSync(join(dir, 'path'), 'utf8')).toBe(userPath);
    expect(readFileSync(join(dir, 'body')).length).toBe(1000);
  });

  it('as a user: a command that is not on the PATH gets the same line as without --isolate', async () => {
    const { dir, env } = userHome();
    const run = await runCli(['run', '--isolate', '--record', '--tag=missing', '--archive', join(dir, '.btrfly'), '--', 'no-such-command-3017'], { uid: USER, cwd: dir, env });
    expect(run.stderr).toContain('btrfly: command not found: no-such-command-3017: check the command after "--"');
    expect(run.code).toBe(127);
  });

  testWhen(npmTool.missing())('as a user: npm install through the proxy btrfly sets is recorded, and everything it wrote is theirs', async () => {
    const origin = await startOrigin({ https: true, kind: npmTool.kind, names: [npmTool.host], spawn: true });
    registerCleanup(() => origin.close());
    const { dir, env } = userHome();
    const ca = join(dir, 'origin-ca.pem'); // the test CA's own directory is root's
    copyFileSync(origin.caPath!, ca);
    npmTool.writeProject(dir);
    const build = npmTool.command(dir, origin.urlFor('/', npmTool.host).replace(/\/$/, ''));
    const chownAll = (path: string): void => {
      chownSync(path, USER, USER);
      if (statSync(path).isDirectory()) for (const f of readdirSync(path)) chownAll(join(path, f));
    };
    chownAll(dir);
    const rec = await runCli(['run', '--isolate', '--record', '--tag=npm', '--archive', join(dir, '.btrfly'), '--upstream-ca', ca, '--resolve', `${npmTool.host}:127.0.0.1`, '--', 'sh', '-c', build], { uid: USER, cwd: dir, env: { ...WITHOUT_NPM_SETTINGS, ...env }, timeoutMs: 150_000 });
    expect(rec.stderr).toMatch(/recorded tag "npm"/);
    expect(rec.code).toBe(0);
    const owners = new Set<string>();
    const walk = (path: string): void => {
      const st = statSync(path);
      owners.add(`${st.uid}:${st.gid}`);
      if (st.isDirectory()) for (const f of readdirSync(path)) walk(join(path, f));
    };
    walk(join(dir, 'out', 'node_modules'));
    expect([...owners]).toEqual([`${USER}:${USER}`]);
    expect(readdirSync(join(dir, 'out', 'node_modules')).length).toBeGreaterThan(2);
  });

  it('as a user, with an unshare that has no --map-user (util-linux before 2.38): the command runs as root inside, and a line says why and what to install', async () => {
    const { dir, env } = userHome();
    // The real unshare, whose help no longer offers --map-user, as 2.37's does not.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'unshare'), `#!/bin/sh\nif [ "$1" = --help ]; then /usr/bin/unshare --help | grep -v -- --map-user; else exec /usr/bin/unshare "$@"; fi\n`);
    chmodSync(join(bin, 'unshare'), 0o755);
    chmodSync(bin, 0o755);
    const run = await runCli(['run', '--isolate', '--record', '--tag=old', '--archive', join(dir, '.btrfly'), '--', 'id', '-u'], { uid: USER, cwd: dir, env: { ...env, PATH: `${bin}:${process.env.PATH}` } });
    expect(run.stdout).toBe('0\n');
    expect(run.stderr).toContain('btrfly: this unshare has no --map-user (util-linux before 2.38), so the isolated command runs as root inside its namespace: install util-linux 2.38 or later to run it as yourself');
    expect(run.code).toBe(0);
  });

  it('as root: the command is root inside', async () => {
    const out = tmpDir('btrfly-isolate-root-');
    const run = await runCli(['run', '--isolate', '--record', '--tag=root', '--archive', join(out, '.btrfly'), '--', 'sh', '-c', 'id -u; id -g; echo x > "$OUT/file"'], { env: { OUT: out } });
    expect(run.stdout).toBe('0\n0\n');
    expect(run.code).toBe(0);
    expect(statSync(join(out, 'file')).uid).toBe(0);
  });
});
