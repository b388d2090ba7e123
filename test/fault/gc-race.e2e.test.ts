/**
 * `btrfly gc` against a recorder (issue 12.5): gc and recorders exclude each other through the
 * gc lock. A recording that starts while gc runs waits for it (and says so); gc that runs while
 * a recording is live keeps what the recording has written. Either way the recording seals,
 * `btrfly verify` and `git fsck` are clean. The race is made exact with the test-only pause
 * hook (src/test-pause.ts): a process stops at a named point until the test lets it go.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pausePoints, runCli, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

const BIG = 12 * 1024 * 1024;
let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});

const fsck = (archive: string): string => execFileSync('git', ['--git-dir', archive, 'fsck', '--no-progress', '--full'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

async function archiveWithGarbage(): Promise<{ archive: string; up: string[]; curl: (path: string) => string[] }> {
  const archive = join(tmpDir(), 'archive');
  const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
  const curl = (path: string) => ['curl', '-sf', '-o', '/dev/null', origin.urlFor(path, 'origin.test')];
  // Something for gc to remove: a tag recorded, then deleted.
  expect((await runCli(['run', '--record', '--tag=old', ...up, '--', ...curl('/gen/3000?seed=9')])).code).toBe(0);
  expect((await runCli(['rm', 'old', '--archive', archive])).code).toBe(0);
  return { archive, up, curl };
}

test('a recording that starts while gc runs waits for it, then seals whole', async () => {
  const { archive, up, curl } = await archiveWithGarbage();
  const pause = pausePoints();
  const gc = spawnCli(['gc', '--archive', archive], { env: pause.env('gc-locked') });
  const gcPid = await pause.reached('gc-locked');
  const rec = spawnCli(['run', '--record', '--tag=app', ...up, '--', ...curl(`/gen/${BIG}?seed=1`)]);
  await rec.waitFor(`btrfly: btrfly gc (pid ${gcPid}) is running on the archive: the recording of tag "app" starts when it ends`);
  pause.release('gc-locked');
  expect((await gc.exited).code).toBe(0);
  const done = await rec.exited;
  expect(done.stderr).toMatch(/recorded tag "app" \(recording [0-9a-f]{12}\): 1 requests, 1 entries, 12 MiB/);
  expect(done.code).toBe(0);
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
  expect(() => fsck(archive)).not.toThrow();
});

test('gc while a recording is live keeps what it has written; the recording seals and verifies', async () => {
  const { archive, up, curl } = await archiveWithGarbage();
  const pause = pausePoints();
  // The recorder stops with the first 8 MiB of its body in git, in no journal yet.
  const rec = spawnCli(['run', '--record', '--tag=app', ...up, '--', ...curl(`/gen/${BIG}?seed=2`)], { env: pause.env('body-part') });
  await pause.reached('body-part');
  const gc = await runCli(['gc', '--archive', archive]);
  expect(gc.code).toBe(0);
  pause.release('body-part');
  const done = await rec.exited;
  expect(done.stderr).toMatch(/recorded tag "app" \(recording [0-9a-f]{12}\): 1 requests, 1 entries, 12 MiB/);
  expect(done.code).toBe(0);
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
  expect(() => fsck(archive)).not.toThrow();
  // And once it is over, gc removes the deleted tag's body but keeps the new one.
  expect((await runCli(['gc', '--archive', archive])).code).toBe(0);
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
  expect(() => fsck(archive)).not.toThrow();
});

test('two gc at once: the second says one line and exits 1', async () => {
  const { archive } = await archiveWithGarbage();
  const pause = pausePoints();
  const first = spawnCli(['gc', '--archive', archive], { env: pause.env('gc-locked') });
  const pid = await pause.reached('gc-locked');
  const second = await runCli(['gc', '--archive', archive]);
  expect(second.code).toBe(1);
  expect(second.stderr).toMatch(new RegExp(`^btrfly: btrfly gc is already running on this archive \\(pid ${pid} on .+, since .+\\): wait for it to finish\\n$`));
  pause.release('gc-locked');
  expect((await first.exited).code).toBe(0);
});

test('a tag deleted and collected while it is played back: the run names the tag as gone, not a repair', async () => {
  const archive = join(tmpDir(), 'archive');
  const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
  const url = origin.urlFor('/gen/1048576?seed=5', 'origin.test');
  expect((await runCli(['run', '--record', '--tag=app', ...up, '--', 'curl', '-sf', '-o', '/dev/null', url])).code).toBe(0);
  // The build starts, then waits on a pipe until the tag is gone: rm, then gc removes its bodies.
  const go = join(tmpDir(), 'go');
  execFileSync('mkfifo', [go]);
  const play = spawnCli(['run', '--playback', '--tag=app', '--archive', archive, '--', 'sh', '-c', `echo started; read x < ${go}; curl -sS -o /dev/null ${url}`]);
  await play.waitFor('started');
  expect((await runCli(['rm', 'app', '--archive', archive])).code).toBe(0);
  expect((await runCli(['gc', '--archive', archive])).code).toBe(0);
  writeFileSync(go, 'go\n');
  const done = await play.exited;
  expect(done.code).not.toBe(0);
  const said = done.stderr.split('\n').filter((l) => l.startsWith('btrfly: the body of'));
  expect(said).toEqual([
    expect.stringMatching(
      new RegExp(`^btrfly: the body of GET ${url.replace(/[.?]/g, '\\$&')} \\(sha256 [0-9a-f]{64}\\) is gone from the archive, so its transfer was broken off: tag "app" was deleted while its recording [0-9a-f]{12} was played back, and btrfly gc has removed its bodies since: run "btrfly tags" to list the tags, or get the tag again \\("btrfly pull REMOTE app"\\)$`),
    ),
  ]);
  expect(done.stderr).not.toContain('verify --repair');
});
