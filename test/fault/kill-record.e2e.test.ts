/**
 * kill -9 of `btrfly run --record` at three points: before the first body, in the middle of a
 * body (its first 8 MiB part in git, the rest in temp files), and during seal (the commit made,
 * the tag not yet moved). Each time the tag stays on its last good recording; `btrfly status`
 * and the next record of the tag name the interrupted recording and what to do; after recovery
 * (`btrfly pending seal|drop`) `git fsck` and `btrfly verify` are clean, and after `btrfly gc`
 * nothing of the killed processes is left: no temp file, cache stage, lock or journal.
 * The points are reached with the test-only pause hook (src/test-pause.ts), not with sleeps.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pausePoints, runCli, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

const BIG = 12 * 1024 * 1024;
let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });
const ls = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

test('a recording killed before its first body, mid-body or during seal never becomes the tag, and leaves nothing after recovery and gc', async () => {
  const archive = join(tmpDir(), 'archive');
  const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
  const curl = (path: string) => ['curl', '-s', '-o', '/dev/null', origin.urlFor(path, 'origin.test')];
  expect((await runCli(['run', '--record', '--tag=app', ...up, '--', ...curl('/gen/1000?seed=1')])).code).toBe(0);
  const good = git(archive, 'rev-parse', 'refs/heads/app').trim();

  const pause = pausePoints();
  const killed: Record<string, number> = {};
  for (const point of ['run-child', 'body-part', 'seal-ref']) {
    const rec = spawnCli(['run', '--record', '--tag=app', ...up, '--', ...curl(`/gen/${BIG}?seed=2`)], { env: pause.env(point) });
    killed[point] = await pause.reached(point);
    if (point === 'body-part') {
      // What a killed recorder leaves: a temp file of the body's second part, and its first part staged for the cache.
      expect(ls(join(archive, 'btrfly', 'tmp')).length).toBeGreaterThan(0);
      expect(ls(join(archive, 'btrfly', 'cache', 'tmp')).length).toBeGreaterThan(0);
    }
    const end = await rec.stop('SIGKILL');
    expect(end.signal).toBe('SIGKILL');
    expect(git(archive, 'rev-parse', 'refs/heads/app').trim()).toBe(good);
  }

  // status names each interrupted recording, its dead process, and what to do.
  const status = await runCli(['status', '--archive', archive]);
  const named = [...status.stdout.matchAll(/^recording (\S+) of tag "app" \((\d+) entr(?:y|ies), started [^)]+\) is not the tag: it was interrupted \(process (\d+) stopped without sealing it\); "btrfly pending seal \1" makes it the tag, "btrfly pending drop \1" drops it$/gm)];
  expect(named.map((m) => Number(m[3])).sort()).toEqual(Object.values(killed).sort());
  const byPid = new Map(named.map((m) => [Number(m[3]), { id: m[1], entries: Number(m[2]) }]));
  expect(byPid.get(killed['run-child'])!.entries).toBe(0);
  expect(byPid.get(killed['seal-ref'])!.entries).toBe(1);

  // The next record of the tag names them too, then records as usual.
  const next = await runCli(['run', '--record', '--tag=app', ...up, '--', ...curl('/gen/2000?seed=3')]);
  expect(next.code).toBe(0);
  for (const { id } of byPid.values()) expect(next.stderr).toContain(`btrfly: note: recording ${id} of tag "app"`);
  expect(next.stderr).toMatch(/recorded tag "app"/);

  // Recovery: the one killed during seal had its whole body; the others are dropped.
  const sealed = await runCli(['pending', 'seal', byPid.get(killed['seal-ref'])!.id, '--archive', archive]);
  expect(sealed.code).toBe(0);
  for (const point of ['run-child', 'body-part']) expect((await runCli(['pending', 'drop', byPid.get(killed[point])!.id, '--archive', archive])).code).toBe(0);
  const show = await runCli(['show', 'app', '--archive', archive, '--json']);
  expect(show.stdout).toContain(`/gen/${BIG}?seed=2`);
  expect(execFileSync('git', ['--git-dir', archive, 'fsck', '--no-progress'], { encoding: 'utf8' })).not.toMatch(/error|missing|broken/i);
  const verify = await runCli(['verify', '--archive', archive]);
  expect(verify.code).toBe(0);

  const gc = await runCli(['gc', '--archive', archive]);
  expect(gc.code).toBe(0);
  expect(ls(join(archive, 'btrfly', 'tmp'))).toEqual([]);
  expect(ls(join(archive, 'btrfly', 'cache', 'tmp'))).toEqual([]);
  expect(ls(join(archive, 'btrfly', 'locks'))).toEqual([]);
  expect(ls(join(archive, 'btrfly', 'pending'))).toEqual([]);
  expect([...ls(join(archive, 'objects')), ...ls(join(archive, 'objects', 'pack'))].filter((f) => f.startsWith('tmp_'))).toEqual([]);
  expect(git(archive, 'count-objects', '-v')).toMatch(/^garbage: 0$/m);
  expect((await runCli(['status', '--archive', archive])).stdout).not.toContain('is not the tag');
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
});
