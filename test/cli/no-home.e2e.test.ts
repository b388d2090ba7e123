/**
 * A uid with no passwd entry and no HOME (a container run with --user and an empty environment,
 * a CI step started with `env -i`): os.homedir() throws there, and oclif's load called it
 * (clean-stack), so every command died with a stack trace. Now the commands that need no config
 * directory work, `run` says in one line what to set (and makes no archive), and with BTRFLY_CONFIG_DIR set it records
 * while the command sees HOME unset, as its user left it. A HOME the uid cannot read (a container
 * run with --user and HOME=/root) gave an EACCES warning on every command (oclif looked for user
 * plugins there; btrfly has none). Real setpriv, real curl, an origin on loopback.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NO_PASSWD_UID, registerCleanup, runCli, startOrigin, tmpDir, userDir } from '../helpers';

const USER = NO_PASSWD_UID;

describe('btrfly as a uid with no passwd entry and HOME unset', () => {
  it('creates and lists an archive, refuses run in one line without a config directory, and records with BTRFLY_CONFIG_DIR while the command sees no HOME', async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    const dir = userDir('btrfly-no-home-');
    const archive = join(dir, '.btrfly');
    const bare = { HOME: undefined, SHELL: undefined, XDG_CONFIG_HOME: undefined, XDG_DATA_HOME: undefined, XDG_CACHE_HOME: undefined, BTRFLY_CONFIG_DIR: undefined };

    const init = await runCli(['init', '--archive', archive], { uid: USER, cwd: dir, env: bare });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const tags = await runCli(['tags', '--archive', archive], { uid: USER, cwd: dir, env: bare });
    expect(tags.stderr).toBe(`no tags in archive ${archive}: record one with "btrfly run --record --tag=T -- CMD"\n`);
    expect(tags.code).toBe(0);

    const url = origin.urlFor('/gen/4000?seed=no-home', 'origin.test');
    const command = ['sh', '-c', `curl -sSf -o body "${url}" && echo "\${HOME-unset} \${SHELL-unset}" > seen`];
    const resolve = ['--resolve', `origin.test:${origin.host}`];
    const refused = await runCli(['run', '--record', '--tag=t', '--archive', archive, ...resolve, '--', ...command], { uid: USER, cwd: dir, env: bare });
    expect(refused.stderr).toBe(`btrfly: no home directory for btrfly's config: HOME is unset and uid ${USER} has no passwd entry: set HOME, XDG_CONFIG_HOME or BTRFLY_CONFIG_DIR\n`);
    expect(refused.code).toBe(1);
    const elsewhere = join(dir, 'new', '.btrfly');
    expect((await runCli(['run', '--record', '--tag=t', '--archive', elsewhere, '--', 'true'], { uid: USER, cwd: dir, env: bare })).code).toBe(1);
    expect(existsSync(join(dir, 'new'))).toBe(false);

    const env = { ...bare, BTRFLY_CONFIG_DIR: join(dir, 'config') };
    const rec = await runCli(['run', '--record', '--tag=t', '--archive', archive, ...resolve, '--', ...command], { uid: USER, cwd: dir, env });
    expect(rec.stderr).toContain('recorded tag "t"');
    expect(rec.code).toBe(0);
    expect(readFileSync(join(dir, 'seen'), 'utf8')).toBe('unset unset\n');
    const recorded = readFileSync(join(dir, 'body'));
    expect(recorded.length).toBe(4000);

    await origin.close();
    const play = await runCli(['run', '--playback', '--tag=t', '--archive', archive, ...resolve, '--', ...command], { uid: USER, cwd: dir, env });
    expect(play.stderr).toContain('1 hits, 0 misses');
    expect(play.code).toBe(0);
    expect(readFileSync(join(dir, 'body')).equals(recorded)).toBe(true);
    const verify = await runCli(['verify', '--archive', archive], { uid: USER, cwd: dir, env: bare });
    expect(verify.stdout).toContain('ok: 1 tags');
    expect(verify.code).toBe(0);
  }, 180_000);

  it("with HOME another user's unreadable directory, a command prints no warning about it", async () => {
    const home = tmpDir('btrfly-root-home-');
    mkdirSync(join(home, '.local', 'share', 'btrfly'), { recursive: true });
    writeFileSync(join(home, '.local', 'share', 'btrfly', 'package.json'), '{}');
    chmodSync(home, 0o700);
    const dir = tmpDir('btrfly-other-home-');
    chownSync(dir, USER, USER);
    const env = { HOME: home, XDG_CONFIG_HOME: undefined, XDG_DATA_HOME: undefined, XDG_CACHE_HOME: undefined, BTRFLY_CONFIG_DIR: join(dir, 'config') };
    const init = await runCli(['init', '--archive', join(dir, '.btrfly')], { uid: USER, cwd: dir, env });
    expect(init.stderr).toBe('');
    expect(init.stdout).toContain('created archive');
    expect(init.code).toBe(0);
  });
});
