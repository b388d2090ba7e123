/**
 * `btrfly run` with the temp and config variables of a CI runner or a container: a TMPDIR that
 * is missing or not a directory is said in one line with what to set, before any archive is
 * made; a relative XDG_CONFIG_HOME is ignored (the XDG spec calls it invalid), so btrfly's CA
 * key never lands in the directory the build runs in. Real curl, an origin on loopback.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerCleanup, runCli, startOrigin, tmpDir } from '../helpers';

describe('btrfly run with the temp and config directories of another environment', () => {
  it('a TMPDIR that is missing or a file: one line that names it and what to set, and no archive made', async () => {
    const dir = tmpDir('btrfly-run-tmpdir-');
    writeFileSync(join(dir, 'a-file'), '');
    for (const [tmp, why] of [
      [join(dir, 'missing'), 'it does not exist (ENOENT)'],
      [join(dir, 'a-file'), 'it is not a directory (ENOTDIR)'],
    ]) {
      const r = await runCli(['run', '--record', '--tag=t', '--', 'true'], { cwd: dir, env: { TMPDIR: tmp } });
      expect(r.stderr).toBe(`btrfly: cannot make the run's work directory in TMPDIR ${tmp}: ${why}: set TMPDIR to a directory you can write\n`);
      expect(r.code).toBe(1);
      expect(existsSync(join(dir, '.btrfly'))).toBe(false);
    }
  });

  it('a relative XDG_CONFIG_HOME is ignored: the CA goes to HOME/.config/btrfly, nothing into the build directory, and the download is recorded', async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    const home = tmpDir('btrfly-run-home-');
    const build = tmpDir('btrfly-run-build-');
    mkdirSync(join(build, 'src'));
    const env = { HOME: home, XDG_CONFIG_HOME: 'config', BTRFLY_CONFIG_DIR: undefined };
    const url = origin.urlFor('/gen/2000?seed=xdg', 'origin.test');
    const r = await runCli(['run', '--record', '--tag=t', '--archive', join(home, 'archive'), '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-sSf', '-o', '/dev/null', url], { cwd: build, env });
    expect(r.stderr).toContain('recorded tag "t" (recording');
    expect(r.stderr).toContain('1 requests, 1 entries');
    expect(r.code).toBe(0);
    expect(readdirSync(build)).toEqual(['src']);
    expect(readdirSync(join(home, '.config', 'btrfly'))).toEqual(expect.arrayContaining(['ca-key.pem', 'redact.key']));
  });
});
