/**
 * `btrfly run` with the temp and config variables of a CI runner or a container: a TMPDIR that
 * is missing or not a directory is said in one line with what to set, before any archive is
 * made; a relative XDG_CONFIG_HOME is ignored (the XDG spec calls it invalid), so btrfly's CA
 * key never lands in the directory the build runs in; the user's own proxy variable, which the
 * command no longer sees and btrfly does not use, is said in a note with the flag that uses it.
 * Real curl, an origin on loopback.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
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

  it("the user's HTTPS_PROXY: a note says the command's proxy is btrfly's and names --upstream-proxy; none with that flag or in playback", async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    const dir = tmpDir('btrfly-run-user-proxy-');
    const archive = join(dir, '.btrfly');
    // A proxy nobody answers on: the recording goes to the origin directly, as before.
    const env = { HTTPS_PROXY: 'http://user:secret@127.0.0.1:9', https_proxy: undefined, HTTP_PROXY: undefined, http_proxy: undefined, ALL_PROXY: undefined, all_proxy: undefined };
    const url = origin.urlFor('/gen/1000?seed=proxy', 'origin.test');
    const command = ['sh', '-c', `curl -sSf -o body "${url}" && printf '%s' "$HTTPS_PROXY" > proxy`];
    const resolve = ['--resolve', `origin.test:${origin.host}`];
    const note =
      "btrfly: note: HTTPS_PROXY is set: the command's proxy is btrfly for this run, and btrfly goes to the network directly; to go through your proxy, pass --upstream-proxy with its URL\n";
    const rec = await runCli(['run', '--record', '--tag=t', '--archive', archive, ...resolve, '--', ...command], { cwd: dir, env });
    expect(rec.stderr.startsWith(note)).toBe(true);
    expect(rec.stderr).toContain('1 requests, 1 entries');
    expect(rec.stderr).not.toContain('secret');
    expect(rec.code).toBe(0);
    expect(readFileSync(join(dir, 'proxy'), 'utf8')).toMatch(/^http:\/\/btrfly:[^@]+@127\.0\.0\.1:\d+$/);
    const play = await runCli(['run', '--playback', '--tag=t', '--archive', archive, ...resolve, '--', ...command], { cwd: dir, env });
    expect(play.stderr).not.toContain('note:');
    expect(play.code).toBe(0);
    const flagged = await runCli(['run', '--record', '--tag=u', '--archive', archive, '--upstream-proxy', 'http://127.0.0.1:9', '--', 'true'], { cwd: dir, env });
    expect(flagged.stderr).not.toContain('note:');
    expect(flagged.code).toBe(0);
  });
});
