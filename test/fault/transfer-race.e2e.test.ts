/**
 * Two pushes or two pulls of one tag at once.
 *
 * Two `btrfly pull` of the same tag into one archive at once (two terminals, two CI jobs on one
 * host): both bring the same recording; the one that moves the tag second finds it already where
 * it was taking it, and says the tag is up to date, not that it "changed here". Made exact with
 * the test-only pause point `pull-verified` (the new recordings are checked, the tag not moved).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pausePoints, runCli, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});

/** An archive `archive` whose tag "app" is recorded, with an empty bare git remote "origin". */
async function recordedWithRemote(archive: string, remote: string): Promise<void> {
  execFileSync('git', ['init', '-q', '--bare', remote]);
  const url = origin.urlFor('/gen/3000?seed=5', 'origin.test');
  expect((await runCli(['run', '--record', '--tag=app', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-sf', '-o', '/dev/null', url])).code).toBe(0);
  expect((await runCli(['remote', 'add', 'origin', remote, '--archive', archive])).code).toBe(0);
}

test('two pulls of one tag at once: both succeed, the second says up to date', async () => {
  const dir = tmpDir();
  const source = join(dir, 'source');
  const remote = join(dir, 'remote.git');
  const archive = join(dir, 'archive');
  await recordedWithRemote(source, remote);
  expect((await runCli(['push', 'origin', 'app', '--archive', source])).code).toBe(0);
  expect((await runCli(['init', '--archive', archive])).code).toBe(0);
  expect((await runCli(['remote', 'add', 'origin', remote, '--archive', archive])).code).toBe(0);

  const pause = pausePoints();
  const first = spawnCli(['pull', 'origin', 'app', '--archive', archive], { env: pause.env('pull-verified') });
  await pause.reached('pull-verified');
  const second = await runCli(['pull', 'origin', 'app', '--archive', archive]);
  expect(second.stdout + second.stderr).toMatch(/^app: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(second.code).toBe(0);
  pause.release('pull-verified');
  const late = await first.exited;
  expect(late.stdout + late.stderr).toBe('app: up to date\n');
  expect(late.code).toBe(0);
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
});

test('a push while another push updates the tag on the remote: one line saying so, not git\'s lock error', async () => {
  const dir = tmpDir();
  const archive = join(dir, 'archive');
  const remote = join(dir, 'remote.git');
  await recordedWithRemote(archive, remote);
  // What git on the remote holds while another push updates the branch: its lock file.
  mkdirSync(join(remote, 'refs', 'heads'), { recursive: true });
  writeFileSync(join(remote, 'refs', 'heads', 'app.lock'), '');
  const push = await runCli(['push', 'origin', 'app', '--archive', archive]);
  expect(push.stderr).toMatch(/^btrfly: tag "app" is being updated on remote origin by another push right now: the tag here is unchanged; run "btrfly push origin app" again when it is done \(if no other push runs, a crashed git left its lock on the remote: remove \S+app\.lock there\)\n$/);
  expect(push.code).toBe(1);
});
