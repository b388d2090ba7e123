/**
 * Two recorders of one tag that start together after a recorder of it was killed (kill -9: its
 * lock stays, held by a dead pid). Both find the lock dead and take it over; only one may get
 * it, the other is refused with one line naming it. The race is made exact with the test-only
 * pause point `lock-takeover` (src/test-pause.ts): the first stops after it found the holder
 * dead, the second takes the lock over meanwhile, then the first goes on.
 */
import { join } from 'node:path';
import { pausePoints, runCli, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});

test('after a recorder is killed, two recorders of its tag at once: one records, the other is refused', async () => {
  const archive = join(tmpDir(), 'archive');
  const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
  const curl = (seed: number) => ['curl', '-sf', '-o', '/dev/null', origin.urlFor(`/gen/3000?seed=${seed}`, 'origin.test')];

  // A recorder of "app" killed while it holds the tag's lock.
  const killedPause = pausePoints();
  const killed = spawnCli(['run', '--record', '--tag=app', ...up, '--', ...curl(1)], { env: killedPause.env('run-child') });
  process.kill(await killedPause.reached('run-child'), 'SIGKILL');
  await killed.exited;

  // The first new recorder has found the lock dead, and stops before it takes it over.
  const firstPause = pausePoints();
  const first = spawnCli(['run', '--record', '--tag=app', ...up, '--', ...curl(2)], { env: firstPause.env('lock-takeover') });
  await firstPause.reached('lock-takeover');
  // The second takes it over and is recording.
  const secondPause = pausePoints();
  const second = spawnCli(['run', '--record', '--tag=app', ...up, '--', ...curl(3)], { env: secondPause.env('run-child') });
  const secondPid = await secondPause.reached('run-child');

  firstPause.release('lock-takeover');
  const refused = await first.exited;
  expect(refused.stderr).toMatch(new RegExp(`^btrfly: tag "app" is already being recorded \\(session [0-9a-f-]+, pid ${secondPid} on .+, since .+\\): stop it first or pick another tag\\n$`, 'm'));
  expect(refused.code).toBe(1);

  secondPause.release('run-child');
  const recorded = await second.exited;
  expect(recorded.stderr).toMatch(/recorded tag "app" \(recording [0-9a-f]{12}\): 1 requests, 1 entries, 2.9 KiB/);
  expect(recorded.code).toBe(0);
  const log = await runCli(['log', 'app', '--archive', archive]);
  expect(log.stdout.trim().split('\n')).toHaveLength(1);
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
});
