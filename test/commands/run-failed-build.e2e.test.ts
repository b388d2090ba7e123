/**
 * A failed build keeps its tag (docs/contract.md, "Atomic tags"): `btrfly run --record` moves the
 * tag only when the command exits 0. Otherwise run exits with the command's status, says in one
 * line that the recording was kept aside and how to seal or drop it, and `btrfly pending`
 * does either; `--seal-on-failure` seals at once.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { runCli, startOrigin, tmpDir, type Origin } from '../helpers';

let origin: Origin;
let at: (path: string) => string;
beforeAll(async () => {
  origin = await startOrigin();
  at = (p) => origin.urlFor(p, 'origin.test');
});
/** The origin is named origin.test (loopback addresses bypass the proxy); btrfly resolves the name. */
const up = (): string[] => ['--resolve', `origin.test:${origin.host}`];

const tagCommit = (archive: string, tag: string): string => execFileSync('git', ['--git-dir', archive, 'rev-parse', `refs/heads/${tag}`], { encoding: 'utf8' }).trim();

test('a build that exits non-zero leaves the tag; its recording waits aside to be sealed or dropped', async () => {
  const archive = join(tmpDir(), 'archive');
  const good = await runCli(['run', '--record', '--tag=good', '--archive', archive, ...up(), '--', 'curl', '-sf', '-o', '/dev/null', `${at('/gen/1000?seed=1')}`]);
  expect(good.code).toBe(0);
  const before = tagCommit(archive, 'good');

  const failed = await runCli(['run', '--record', '--tag=good', '--archive', archive, ...up(), '--', 'sh', '-c', `curl -sf -o /dev/null ${at('/gen/2000?seed=2')}; exit 7`]);
  expect(failed.code).toBe(7);
  expect(tagCommit(archive, 'good')).toBe(before);
  const lines = failed.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  const m = /^btrfly: the command failed \(exit 7\): tag "good" is unchanged; its recording \(1 entry\) is kept aside as (\S+): "btrfly pending seal \1" makes it the tag, "btrfly pending drop \1" drops it/.exec(lines[0]);
  expect(m).not.toBeNull();
  const id = m![1];

  const listed = await runCli(['pending', 'list', '--archive', archive, '--json']);
  expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ id, tag: 'good', entries: 1, exitCode: 7 })]);
  const status = await runCli(['status', '--archive', archive]);
  expect(status.stdout).toContain(`recording ${id} of tag "good" (1 entry`);
  expect(status.stdout).toContain('the recorded command failed (exit 7)');

  const sealed = await runCli(['pending', 'seal', id, '--archive', archive]);
  expect(sealed.code).toBe(0);
  const after = tagCommit(archive, 'good');
  expect(after).not.toBe(before);
  const show = await runCli(['show', 'good', '--archive', archive, '--json']);
  expect(show.stdout).toContain('/gen/2000?seed=2');
  expect((await runCli(['pending', 'list', '--archive', archive, '--json'])).stdout.trim()).toBe('[]');

  // Dropping another failed build's recording leaves the tag where it is.
  const again = await runCli(['run', '--record', '--tag=good', '--archive', archive, ...up(), '--', 'sh', '-c', `curl -sf -o /dev/null ${at('/gen/3000?seed=3')}; exit 1`]);
  expect(again.code).toBe(1);
  const id2 = /kept aside as (\S+):/.exec(again.stderr)![1];
  expect((await runCli(['pending', 'drop', id2, '--archive', archive])).code).toBe(0);
  expect(tagCommit(archive, 'good')).toBe(after);
  expect((await runCli(['pending', 'list', '--archive', archive, '--json'])).stdout.trim()).toBe('[]');
});

test('a command that is not found records nothing and leaves the tag', async () => {
  const archive = join(tmpDir(), 'archive');
  expect((await runCli(['run', '--record', '--tag=good', '--archive', archive, '--', 'true'])).code).toBe(0);
  const before = tagCommit(archive, 'good');
  const r = await runCli(['run', '--record', '--tag=good', '--archive', archive, '--', 'nosuchcmd-btrfly']);
  expect(r.code).toBe(127);
  expect(r.stderr).toContain('btrfly: command not found: nosuchcmd-btrfly: check the command after "--"');
  expect(r.stderr).toContain('btrfly: nothing was recorded: tag "good" is unchanged');
  expect(tagCommit(archive, 'good')).toBe(before);
  // On a new tag, nothing is created at all.
  const fresh = await runCli(['run', '--record', '--tag=fresh', '--archive', archive, '--', 'nosuchcmd-btrfly']);
  expect(fresh.code).toBe(127);
  expect((await runCli(['tags', '--archive', archive, '--json'])).stdout).not.toContain('fresh');
});

test('--seal-on-failure makes a failed build\'s recording the tag and still exits with its status', async () => {
  const archive = join(tmpDir(), 'archive');
  const r = await runCli(['run', '--record', '--seal-on-failure', '--tag=anyway', '--archive', archive, ...up(), '--', 'sh', '-c', `curl -sf -o /dev/null ${at('/gen/1000?seed=4')}; exit 3`]);
  expect(r.code).toBe(3);
  expect(r.stderr).toMatch(/recorded tag "anyway" \(recording [0-9a-f]{12}\): \d+ requests, 1 entries/);
  expect(tagCommit(archive, 'anyway')).toMatch(/^[0-9a-f]{40}$/);
});
