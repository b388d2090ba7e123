/**
 * A full disk is btrfly's failure, not the build's (issue 12.4): the archive lives on a small
 * tmpfs mounted in a private mount namespace (`unshare --mount`; the host's mounts are never
 * touched), and a body bigger than the free space is recorded. The tag stays, `run` exits 1
 * with one line naming the mount point and what to free, and no temp file is left, neither
 * btrfly's nor git's (a `gc` on the full disk included). Needs root; under CI=true a machine
 * that cannot run it fails the suite instead of skipping it.
 */
import { type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, fstatSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { CLI_ENTRY, cliEnv, cliWorkDir, run, smallDisk, startOrigin, tmpDir, type Origin, type RunResult } from '../helpers';

const missing = [process.getuid?.() === 0 ? '' : 'root', ...['unshare', 'nsenter', 'mount', 'curl', 'git'].filter((c) => !onPath(c))].filter(Boolean);
const describeDiskFull = missing.length === 0 || process.env.CI ? describe : describe.skip;

const MIB = 1024 * 1024;

describeDiskFull('record and gc on a full disk', () => {
  let origin: Origin;
  let holder: ChildProcess;
  let mnt: string;
  /** The tmpfs as this process sees it: through the namespace holder's root. */
  let seen: string;

  beforeAll(async () => {
    if (missing.length) throw new Error(`the disk-full tests need ${missing.join(', ')}`);
    origin = await startOrigin();
    ({ holder, mnt, seen } = await smallDisk('16m'));
  });

  /** `btrfly ARGS` inside the namespace. */
  const btrfly = (args: string[]): Promise<RunResult> =>
    run('nsenter', ['--target', String(holder.pid), '--mount', '--', process.execPath, CLI_ENTRY, ...args], { cwd: cliWorkDir(), env: cliEnv() });
  const git = (...args: string[]): Promise<RunResult> => run('nsenter', ['--target', String(holder.pid), '--mount', '--', 'git', '--git-dir', join(mnt, 'archive'), ...args]);
  const ls = (rel: string): string[] => (existsSync(join(seen, rel)) ? readdirSync(join(seen, rel)) : []);
  const gitTemps = (): string[] => [...ls('archive/objects'), ...ls('archive/objects/pack'), ...ls('archive/objects').filter((d) => /^[0-9a-f]{2}$/.test(d)).flatMap((d) => ls(`archive/objects/${d}`))].filter((f) => f.startsWith('tmp_'));
  const noTempFiles = (): void => {
    expect(ls('archive/btrfly/tmp')).toEqual([]);
    expect(ls('archive/btrfly/cache/tmp')).toEqual([]);
    expect(ls('archive/btrfly/pending')).toEqual([]);
    expect(ls('archive/btrfly/locks')).toEqual([]);
    expect(gitTemps()).toEqual([]);
  };

  test('a body bigger than the free space: the tag stays, run exits 1 with one line, nothing is left behind', async () => {
    const archive = join(mnt, 'archive');
    const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
    const curl = (path: string) => ['curl', '-s', '-o', '/dev/null', origin.urlFor(path, 'origin.test')];
    const good = await btrfly(['run', '--record', '--tag=app', ...up, '--', ...curl('/gen/1000?seed=1')]);
    expect(good.code).toBe(0);
    const before = (await git('rev-parse', 'refs/heads/app')).stdout.trim();

    const full = await btrfly(['run', '--record', '--tag=app', ...up, '--', ...curl(`/gen/${40 * MIB}?seed=2`)]);
    expect(full.stderr).toMatch(new RegExp(`^btrfly: no space left on ${mnt}: free \\d+ MiB or move the archive\\n$`));
    expect(full.code).toBe(1);
    expect((await git('rev-parse', 'refs/heads/app')).stdout.trim()).toBe(before);
    noTempFiles();

    // A re-record without --append does not move the tag to a recording that lacks the entry either.
    const again = await btrfly(['run', '--record', '--tag=app', ...up, '--', 'sh', '-c', `${curl('/gen/2000?seed=3').join(' ')} && ${curl(`/gen/${40 * MIB}?seed=2`).join(' ')}`]);
    expect(again.code).toBe(1);
    expect((await git('rev-parse', 'refs/heads/app')).stdout.trim()).toBe(before);
    noTempFiles();
  });

  // Pulls the 40 MiB tag of a remote outside the mount into `name` on the 16 MiB tmpfs.
  const pullTooBig = async (name: string, lfs: boolean): Promise<RunResult> => {
    const src = join(tmpDir(), 'src');
    const hub = join(tmpDir(), 'hub.git');
    const up = ['--archive', src, '--resolve', `origin.test:${origin.host}`];
    if (lfs) expect((await btrfly(['init', '--lfs', '--archive', src])).code).toBe(0);
    expect((await btrfly(['run', '--record', '--tag=big', ...up, '--', 'curl', '-s', '-o', '/dev/null', origin.urlFor(`/gen/${40 * MIB}?seed=5`, 'origin.test')])).code).toBe(0);
    expect((await run('git', ['init', '-q', '--bare', hub])).code).toBe(0);
    await btrfly(['remote', 'add', 'hub', hub, '--archive', src]);
    expect((await btrfly(['push', 'hub', '--archive', src])).code).toBe(0);
    const archive = join(mnt, name);
    expect((await btrfly(['init', ...(lfs ? ['--lfs'] : []), '--archive', archive])).code).toBe(0);
    await btrfly(['remote', 'add', 'hub', hub, '--archive', archive]);
    return btrfly(['pull', 'hub', '--archive', archive]);
  };

  test.each([
    ['git mode', false],
    ['Git LFS mode', true],
  ])('a pull bigger than the free space (%s): one line naming the mount, no tag, no temp file left', async (mode, lfs) => {
    const name = lfs ? 'pull-lfs' : 'pull-git';
    const pull = await pullTooBig(name, lfs as boolean);
    expect(pull.stderr).toMatch(new RegExp(`^btrfly: no space left on ${mnt}: free \\d+ MiB or move the archive\\n$`));
    expect(pull.code).toBe(1);
    const refs = await run('nsenter', ['--target', String(holder.pid), '--mount', '--', 'git', '--git-dir', join(mnt, name), 'for-each-ref']);
    expect(refs.stdout).toBe('');
    const temps = [...ls(`${name}/objects`), ...ls(`${name}/objects/pack`)].filter((f) => f.startsWith('tmp_'));
    expect(temps).toEqual([]);
    expect(ls(`${name}/lfs/tmp`)).toEqual([]);
  });

  test('an LFS archive asks to free what its one copy of the body needs, not two copies', async () => {
    const archive = join(mnt, 'lfs-full');
    expect((await btrfly(['init', '--lfs', '--archive', archive])).code).toBe(0);
    const full = await btrfly(['run', '--record', '--tag=big', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-s', '-o', '/dev/null', origin.urlFor(`/gen/${20 * MIB}?seed=6`, 'origin.test')]);
    expect(full.code).toBe(1);
    const asked = Number(new RegExp(`^btrfly: no space left on ${mnt}: free (\\d+) MiB or move the archive\\n$`).exec(full.stderr)?.[1]);
    // One 20 MiB copy on a disk of 16 MiB: at most 20 MiB to free (two copies asked for 24 or more).
    expect(asked).toBeGreaterThan(0);
    expect(asked).toBeLessThanOrEqual(20);
    rmSync(join(seen, 'lfs-full'), { recursive: true, force: true });
  });

  test('gc on a full disk: exit 1 with one line, no tmp_pack left; with room again, gc, verify and fsck are clean', async () => {
    const archive = join(mnt, 'archive');
    // Something for gc to pack that does not fit in what will be left: 3 MiB that do not compress.
    const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
    const body = await btrfly(['run', '--record', '--tag=data', ...up, '--', 'curl', '-s', '-o', '/dev/null', origin.urlFor(`/gen/${3 * MIB}?seed=4`, 'origin.test')]);
    expect(body.code).toBe(0);
    // Fill the disk, then give back a little: enough for btrfly's own small files, not for a pack.
    const fd = openSync(join(seen, 'filler'), 'w');
    const chunk = Buffer.alloc(MIB, 1);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    ftruncateSync(fd, Math.max(0, fstatSync(fd).size - 256 * 1024));
    const gc = await btrfly(['gc', '--archive', archive]);
    expect(gc.stderr).toMatch(new RegExp(`^btrfly: no space left on ${mnt}: free \\d+ MiB or move the archive\\n$`));
    expect(gc.code).toBe(1);
    expect(gitTemps()).toEqual([]);
    ftruncateSync(fd, 0);
    closeSync(fd);

    expect((await btrfly(['gc', '--archive', archive])).code).toBe(0);
    noTempFiles();
    expect((await btrfly(['verify', '--archive', archive])).code).toBe(0);
    expect((await git('fsck', '--no-progress')).code).toBe(0);
  });
});
