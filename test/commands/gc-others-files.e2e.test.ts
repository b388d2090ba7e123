/**
 * `sudo btrfly run` into a user's archive leaves root's loose objects in root's directories: the
 * user's `btrfly gc` packed them but could not remove them (git warns and exits 0), and said
 * "freed 0 B" while the objects took twice their size. Now gc says which files, whose, and the
 * chown that gives them back; after it, gc frees the space. Real git, real curl, real setpriv.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NO_PASSWD_UID, registerCleanup, run, runCli, startOrigin, userDir } from '../helpers';

/** The archive's owner. */
const USER = NO_PASSWD_UID;

describe('btrfly gc in an archive where another user (root, through sudo) recorded', () => {
  it("names the files it may not remove, their owner and the chown, exits 1; after the chown it frees them", async () => {
    const origin = await startOrigin();
    registerCleanup(() => origin.close());
    const dir = userDir('btrfly-gc-others-');
    const archive = join(dir, '.btrfly');
    const env = { HOME: dir, XDG_CONFIG_HOME: undefined, XDG_DATA_HOME: undefined, XDG_CACHE_HOME: undefined, BTRFLY_CONFIG_DIR: join(dir, 'config') };
    expect((await runCli(['init', '--archive', archive], { uid: USER, cwd: dir, env })).code).toBe(0);
    // Root (this test) records into the user's archive, as `sudo btrfly run` would.
    const url = origin.urlFor('/gen/3000000?seed=sudo', 'origin.test');
    const rec = await runCli(['run', '--record', '--tag=t', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-sSf', '-o', '/dev/null', url], { cwd: dir });
    expect(rec.code).toBe(0);
    const rootOwned = readdirSync(join(archive, 'objects')).filter((d) => /^[0-9a-f]{2}$/.test(d) && statSync(join(archive, 'objects', d)).uid === 0);
    expect(rootOwned.length).toBeGreaterThan(0);

    const gc = await runCli(['gc', '--archive', archive], { uid: USER, cwd: dir, env });
    expect(gc.stderr).toMatch(
      new RegExp(
        `^btrfly: gc could not remove \\d+ files? of archive ${archive} that uid 0 owns \\(${archive}/objects/[0-9a-f]{2}/[0-9a-f]{38}(, …)?; a "sudo btrfly" run into the archive makes such files\\): give them back with "sudo chown -R ${USER}:${USER} ${archive}", then run gc again\\n$`,
      ),
    );
    expect(gc.code).toBe(1);

    await run('chown', ['-R', `${USER}:${USER}`, archive]);
    const again = await runCli(['gc', '--archive', archive, '--json'], { uid: USER, cwd: dir, env });
    expect(again.code).toBe(0);
    const { freed } = JSON.parse(again.stdout) as { freed: number };
    expect(freed).toBeGreaterThan(2_000_000);
    const verify = await runCli(['verify', '--archive', archive], { uid: USER, cwd: dir, env });
    expect(verify.stdout).toContain('ok: 1 tags');
    expect(verify.code).toBe(0);
  }, 60_000);
});
