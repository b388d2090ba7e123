/**
 * Once `verify --repair` has repaired (its lock released), the check it runs again only reads:
 * Ctrl-C there ends it at once, as it would a plain verify, rather than being taken by a signal
 * handler that nothing checks any more (the check then ran to its end and exited 0).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, pausePoints, runCli, spawnCli } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

test('SIGINT after the repair, during the check that follows, ends verify --repair at once', async () => {
  const archive = copyFixtureArchive();
  damagePackEntry(archive, git(archive, 'rev-parse', 'example/small:manifest.json').trim());
  expect((await runCli(['remote', 'add', 'origin', copyFixtureArchive(), '--archive', archive])).code).toBe(0);
  const pause = pausePoints();
  const repair = spawnCli(['verify', '--repair', '--archive', archive], { env: pause.env('repair-verify') });
  await pause.reached('repair-verify');
  repair.child.kill('SIGINT');
  // Let go: a process that took the signal without ending goes on with the check.
  pause.release('repair-verify');
  const r = await repair.exited;
  expect(r.stderr).toMatch(/^repair: fetched example\/small again from origin/m);
  expect(r.stdout).not.toMatch(/^ok: /m);
  expect(r.signal).toBe('SIGINT');
  expect(existsSync(join(archive, 'btrfly', 'gc.lock'))).toBe(false);
}, 120_000);
