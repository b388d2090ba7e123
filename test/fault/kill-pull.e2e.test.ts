/**
 * kill -9 of `btrfly pull` once its fetch is in the quarantine refs (`refs/btrfly/incoming/…`),
 * before any tag moved. `tags` and `status` never show those refs; `gc` removes them (and so
 * what only they reached), and so does the next pull, from any remote; the refs of a pull that
 * is still running are left alone by both, and that pull then completes. The point is reached
 * with the test-only pause hook (src/test-pause.ts), not with sleeps.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { copyFixtureArchive, pausePoints, runCli, runOk, spawnCli, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });
const incoming = (archive: string): string[] => git(archive, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/btrfly/incoming/').split('\n').filter(Boolean);
const has = (archive: string, oid: string): boolean => {
  try {
    git(archive, 'cat-file', '-e', oid);
    return true;
  } catch {
    return false;
  }
};

test('a pull killed with -9 leaves quarantine refs that tags and status never show, and that gc and the next pull remove; a live pull keeps its own', async () => {
  const remote = copyFixtureArchive();
  const tags = git(remote, 'for-each-ref', '--format=%(refname:lstrip=2)', 'refs/heads/').split('\n').filter(Boolean);
  const archive = join(tmpDir(), 'archive');
  expect((await runCli(['remote', 'add', 'origin', remote, '--archive', archive])).code).toBe(0);
  const empty = join(tmpDir(), 'empty.git');
  await runOk('git', ['init', '-q', '--bare', empty]);
  expect((await runCli(['remote', 'add', 'other', empty, '--archive', archive])).code).toBe(0);
  /** A pull stopped with its fetch in the quarantine refs: its pid and those refs. */
  async function pullUntilFetched(): Promise<{ pull: ReturnType<typeof spawnCli>; pid: number; refs: string[]; go: () => void }> {
    const pause = pausePoints();
    const pull = spawnCli(['pull', 'origin', '--archive', archive], { env: pause.env('pull-fetched') });
    const pid = await pause.reached('pull-fetched');
    const refs = incoming(archive);
    expect(refs.map((r) => r.split(' ')[0].replace(/^refs\/btrfly\/incoming\/(p\d+\/)?/, '')).sort()).toEqual(tags.map((t) => `origin/${t}`).sort());
    return { pull, pid, refs, go: () => pause.release('pull-fetched') };
  }

  // Killed: its refs stay, but no listing shows them.
  const first = await pullUntilFetched();
  expect((await first.pull.stop('SIGKILL')).signal).toBe('SIGKILL');
  expect(incoming(archive)).toEqual(first.refs);
  expect(JSON.parse((await runCli(['tags', '--archive', archive, '--json'])).stdout)).toEqual([]);
  const status = await runCli(['status', '--archive', archive]);
  expect(status.stdout + status.stderr).not.toMatch(/incoming|origin/);
  // gc removes them, and with them the objects nothing else reaches; also a ref of the layout
  // before the per-process namespace (`incoming/<remote>/<tag>`), which an older btrfly left.
  const fetchedTip = first.refs[0].split(' ')[1];
  expect(has(archive, fetchedTip)).toBe(true);
  git(archive, 'update-ref', 'refs/btrfly/incoming/origin/older', fetchedTip);
  expect((await runCli(['gc', '--archive', archive])).code).toBe(0);
  expect(incoming(archive)).toEqual([]);
  expect(has(archive, fetchedTip)).toBe(false);

  // Killed again: a pull from another remote removes them.
  const second = await pullUntilFetched();
  await second.pull.stop('SIGKILL');
  expect(incoming(archive)).toHaveLength(tags.length);
  const other = await runCli(['pull', 'other', '--archive', archive]);
  expect(other.stderr).toBe('remote other has no tags\n');
  expect(incoming(archive)).toEqual([]);

  // A pull that is still running keeps its refs through gc, and then completes.
  const live = await pullUntilFetched();
  expect((await runCli(['gc', '--archive', archive])).code).toBe(0);
  expect(incoming(archive)).toEqual(live.refs);
  live.go();
  const done = await live.pull.exited;
  expect(done.stderr).toMatch(new RegExp(`^${tags[0]}: pulled, new tag at`, 'm'));
  expect(done.code).toBe(0);
  expect(incoming(archive)).toEqual([]);
  expect((await runCli(['tags', '--archive', archive, '--json'])).stdout).toContain(tags[0]);
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
});
