/**
 * `btrfly verify --repair` while a recording runs in the same archive. The repair moves damaged
 * objects aside and fetches them again; a recording that began earlier may be reusing one of them
 * (git skips an object it holds) and would seal a recording that names an object gone. A
 * recording that begins during the repair waits on the gc lock; one that runs already makes the
 * repair refuse, with one line naming it and what to do, nothing changed. The recording is held
 * at its start with the test-only pause hook (src/test-pause.ts), not with sleeps.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, pausePoints, runCli, spawnCli, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

test('verify --repair is refused while a recording runs in the archive, and repairs once it has ended', async () => {
  const archive = copyFixtureArchive();
  const remote = join(tmpDir('btrfly-repair-rec-'), 'good.git');
  execFileSync('git', ['init', '-q', '--bare', remote]);
  expect((await runCli(['remote', 'add', 'good', remote, '--archive', archive])).code).toBe(0);
  expect((await runCli(['push', 'good', '--archive', archive])).code).toBe(0);
  damagePackEntry(archive, git(archive, 'rev-parse', 'example/small:manifest.json').trim());
  // The objects and packs; not git's temp files ("garbage"), such as the empty pack the
  // recording's git fast-import holds open from its start.
  const objects = (): string => git(archive, 'count-objects', '-v').split('\n').filter((l) => !/garbage/.test(l)).join('\n');
  const packs = objects();

  const pause = pausePoints();
  const recording = spawnCli(['run', '--record', '--tag=busy', '--archive', archive, '--', 'true'], { env: pause.env('run-child') });
  const pid = await pause.reached('run-child');

  const refused = await runCli(['verify', '--repair', '--archive', archive], { timeoutMs: 60_000 });
  expect(refused.stderr).toMatch(
    new RegExp(
      `^btrfly: tag "busy" is being recorded \\(session \\S+, pid ${pid} on \\S+, since \\S+\\), and a repair moves aside objects a recording may be using: ` +
        'let the recording end \\("btrfly stop record", or the end of "btrfly run"\\), then run "btrfly verify --repair" again; nothing was changed\\n$',
      'm',
    ),
  );
  expect(refused.code).toBe(1);
  // Nothing moved, and the lock is free again.
  expect(existsSync(join(archive, 'btrfly', 'damaged'))).toBe(false);
  expect(objects()).toBe(packs);
  expect(existsSync(join(archive, 'btrfly', 'gc.lock'))).toBe(false);

  pause.release('run-child');
  const recorded = await recording.exited;
  expect(recorded.stderr).toMatch(/recorded tag "busy"/);
  expect(recorded.code).toBe(0);

  const repaired = await runCli(['verify', '--repair', '--archive', archive], { timeoutMs: 120_000 });
  expect(repaired.stdout).toMatch(/^ok: 4 tags, \d+ recordings, \d+ bodies .* checked, after the repair$/m);
  expect(repaired.code).toBe(0);
}, 180_000);
