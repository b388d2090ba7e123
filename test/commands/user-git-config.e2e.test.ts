/**
 * A user's own git setup must not change what btrfly's git does to the archive: a global config
 * (GIT_CONFIG_GLOBAL, as ~/.gitconfig) with a core.hooksPath whose hooks fail, log output in
 * UTF-16, signed pushes and commits, and a build started from inside a git hook (GIT_DIR,
 * GIT_WORK_TREE, GIT_INDEX_FILE, a pre-receive hook's quarantine GIT_OBJECT_DIRECTORY and
 * GIT_QUARANTINE_PATH of the user's repository, and a `git -c` in GIT_CONFIG_PARAMETERS). Record, play back, list, gc, push to a file remote, pull into a
 * second archive and play back there: every byte as recorded, and the user's command still sees
 * its GIT_* variables. A shared remote that another user owns: git's refusal (safe.directory)
 * is told as such, with the command that lifts it, and that command works. Real git and curl, a
 * real origin on loopback. The build's own git, with an `http.proxy` in the user's config, still
 * goes through btrfly (git prefers that setting to the proxy variables).
 */

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NO_PASSWD_UID, registerCleanup, runCli, startOrigin, tmpDir } from '../helpers';

const USER = NO_PASSWD_UID;

describe("a user's git configuration does not reach btrfly's git", () => {
  it('records, plays back, lists, collects, pushes and pulls with failing hooks, UTF-16 logs and signing on, from inside a git hook', async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    const dir = tmpDir('btrfly-user-git-');
    const hooks = join(dir, 'hooks');
    mkdirSync(hooks);
    for (const hook of ['reference-transaction', 'pre-push', 'pre-auto-gc', 'post-update']) {
      writeFileSync(join(hooks, hook), `#!/bin/sh\necho "user hook ${hook} ran" >&2\nexit 1\n`);
      chmodSync(join(hooks, hook), 0o755);
    }
    const global = join(dir, 'gitconfig');
    writeFileSync(
      global,
      ['[core]', `\thooksPath = ${hooks}`, '[i18n]', '\tlogOutputEncoding = UTF-16', '[push]', '\tgpgSign = true', '[commit]', '\tgpgSign = true', '[gpg]', '\tprogram = false', ''].join('\n'),
    );
    // The user's repository a hook would run in: its variables must reach the command, not btrfly's git.
    const user = join(dir, 'user-repo');
    execFileSync('git', ['init', '-q', user], { env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
    const env = {
      GIT_CONFIG_GLOBAL: global,
      GIT_CONFIG_SYSTEM: '/dev/null',
      GIT_DIR: join(user, '.git'),
      GIT_WORK_TREE: user,
      GIT_INDEX_FILE: join(user, '.git', 'index'),
      // As in a pre-receive hook: the pushed objects in quarantine, ref updates forbidden there.
      GIT_OBJECT_DIRECTORY: join(user, '.git', 'objects', 'incoming-1'),
      GIT_ALTERNATE_OBJECT_DIRECTORIES: join(user, '.git', 'objects'),
      GIT_QUARANTINE_PATH: join(user, '.git', 'objects', 'incoming-1'),
      GIT_CONFIG_PARAMETERS: `'core.hooksPath'='${hooks}'`,
    };
    // The remote's own config (its admin's) has no hooks, so a refusal could only be the archive's side.
    const hub = join(dir, 'hub.git');
    execFileSync('git', ['init', '-q', '--bare', hub], { env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
    execFileSync('git', ['--git-dir', hub, 'config', 'core.hooksPath', '/dev/null']);

    const a = join(dir, 'a', '.btrfly');
    const b = join(dir, 'b', '.btrfly');
    const resolve = ['--resolve', `origin.test:${origin.host}`];
    const url = origin.urlFor('/gen/6000?seed=git-config', 'origin.test');
    const fetch = (out: string): string => `curl -sSf -o "${out}" "${url}" && printf '%s' "$GIT_DIR" > "${out}.gitdir"`;
    const cli = (args: string[]): ReturnType<typeof runCli> => runCli(args, { env, cwd: dir });

    const rec = await cli(['run', '--record', '--tag=t', '--archive', a, ...resolve, '--', 'sh', '-c', fetch(join(dir, 'recorded'))]);
    expect(rec.stderr).toContain('recorded tag "t"');
    expect(rec.code).toBe(0);
    expect(readFileSync(join(dir, 'recorded.gitdir'), 'utf8')).toBe(join(user, '.git'));
    const recorded = readFileSync(join(dir, 'recorded'));
    expect(recorded.length).toBe(6000);

    const play = await cli(['run', '--playback', '--tag=t', '--archive', a, ...resolve, '--', 'sh', '-c', fetch(join(dir, 'played'))]);
    expect(play.stderr).toContain('1 hits, 0 misses');
    expect(play.code).toBe(0);
    expect(readFileSync(join(dir, 'played')).equals(recorded)).toBe(true);

    const tags = await cli(['tags', '--archive', a]);
    expect(tags.stderr).toBe('');
    expect(tags.stdout).toMatch(/^t +1 +1 /m);
    expect(tags.code).toBe(0);
    const gc = await cli(['gc', '--archive', a]);
    expect(gc.stderr).toBe('');
    expect(gc.code).toBe(0);

    expect((await cli(['remote', 'add', 'hub', hub, '--archive', a])).code).toBe(0);
    const push = await cli(['push', 'hub', '--archive', a]);
    expect(push.stderr).not.toContain('user hook');
    expect(push.code).toBe(0);
    expect((await cli(['init', '--archive', b])).code).toBe(0);
    expect((await cli(['remote', 'add', 'hub', hub, '--archive', b])).code).toBe(0);
    const pull = await cli(['pull', 'hub', '--archive', b]);
    expect(pull.stderr).not.toContain('user hook');
    expect(pull.code).toBe(0);
    await origin.close();
    const again = await cli(['run', '--playback', '--tag=t', '--archive', b, ...resolve, '--', 'sh', '-c', fetch(join(dir, 'pulled'))]);
    expect(again.stderr).toContain('1 hits, 0 misses');
    expect(again.code).toBe(0);
    expect(readFileSync(join(dir, 'pulled')).equals(recorded)).toBe(true);
    // Nothing of btrfly's landed in the user's repository.
    expect(execFileSync('git', ['--git-dir', join(user, '.git'), 'for-each-ref'], { encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } })).toBe('');
  }, 60_000);

  it('a remote owned by another user: the refusal names safe.directory and the command to trust it, which then works', async () => {
    const dir = tmpDir('btrfly-foreign-remote-');
    chownSync(dir, USER, USER);
    // A team's shared directory: made by root, writable by all.
    const hub = join(dir, 'hub.git');
    execFileSync('git', ['init', '-q', '--bare', '--shared=0777', hub], { env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
    const global = join(dir, 'gitconfig');
    writeFileSync(global, '');
    chownSync(global, USER, USER);
    const env = { HOME: dir, XDG_CONFIG_HOME: undefined, XDG_DATA_HOME: undefined, XDG_CACHE_HOME: undefined, GIT_CONFIG_GLOBAL: global, GIT_CONFIG_SYSTEM: '/dev/null', BTRFLY_CONFIG_DIR: join(dir, 'config') };
    const cli = (args: string[]): ReturnType<typeof runCli> => runCli([...args, '--archive', join(dir, '.btrfly')], { uid: USER, cwd: dir, env });
    expect((await cli(['run', '--record', '--tag=t', '--', 'true'])).code).toBe(0);
    expect((await cli(['remote', 'add', 'hub', hub])).code).toBe(0);
    const refused = await cli(['push', 'hub']);
    const advice = `git config --global --add safe.directory ${hub}`;
    expect(refused.stderr).toBe(`btrfly: push to remote hub failed: the repository at ${hub} belongs to another user, and git refuses to use it: if you trust it, run "${advice}" and try again\n`);
    expect(refused.code).toBe(1);
    execFileSync('setpriv', [`--reuid=${USER}`, `--regid=${USER}`, '--clear-groups', 'sh', '-c', advice], { env: { ...process.env, ...env } });
    const push = await cli(['push', 'hub']);
    expect(push.stderr).toMatch(/^t: pushed, new tag at [0-9a-f]{12}\n$/);
    expect(push.code).toBe(0);
  }, 30_000);

  it("the build's git goes through btrfly despite the user's http.proxy: recorded, then answered in playback", async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    const dir = tmpDir('btrfly-user-git-proxy-');
    const global = join(dir, 'gitconfig');
    // A proxy nobody answers on: a git that obeys it fails to connect and nothing is recorded.
    writeFileSync(global, '[http]\n\tproxy = http://127.0.0.1:9\n');
    const env = { GIT_CONFIG_GLOBAL: global, GIT_CONFIG_SYSTEM: '/dev/null', GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'user.name', GIT_CONFIG_VALUE_0: 'kept' };
    const archive = join(dir, '.btrfly');
    // The origin is no git server: git asks for info/refs once and gets a 404, recorded and played back the same.
    const command = ['sh', '-c', `git ls-remote "${origin.urlFor('/files/repo.git', 'origin.test')}" 2> err; git config user.name > name`];
    const resolve = ['--resolve', `origin.test:${origin.host}`];
    const rec = await runCli(['run', '--record', '--tag=g', '--archive', archive, ...resolve, '--', ...command], { env, cwd: dir });
    expect(rec.stderr).toContain('1 requests, 1 entries');
    expect(rec.code).toBe(0);
    const recorded = readFileSync(join(dir, 'err'), 'utf8');
    expect(recorded).toMatch(/repository '.*' not found/);
    expect(readFileSync(join(dir, 'name'), 'utf8')).toBe('kept\n');
    await origin.close();
    const play = await runCli(['run', '--playback', '--tag=g', '--archive', archive, ...resolve, '--', ...command], { env, cwd: dir });
    expect(play.stderr).toContain('1 hits, 0 misses');
    expect(play.code).toBe(0);
    expect(readFileSync(join(dir, 'err'), 'utf8')).toBe(recorded);
  });
});
