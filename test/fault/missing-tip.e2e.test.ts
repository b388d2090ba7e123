/**
 * A tag whose newest recording (its tip commit) is damaged, or missing (what a repair that no
 * remote could help leaves: the damaged copy set aside). `btrfly tags` lists every other tag
 * with its figures, marks that one with what is wrong and what to do, and exits 1; `log` and
 * `show` say the same instead of "not found"; a plain re-recording works and starts the tag's
 * history anew, as the repair advice promises; `--append` is refused with what to do.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, damageLooseObject, damagePackEntry, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(() => origin.close());

/** The example archive, example/small's tip commit set aside by a repair with no remote: its ref names a missing commit. */
async function withMissingTip(): Promise<{ archive: string; tip: string }> {
  const archive = copyFixtureArchive();
  const tip = git(archive, 'rev-parse', 'example/small').trim();
  damagePackEntry(archive, tip);
  const repair = await runCli(['verify', '--repair', '--archive', archive]);
  expect(repair.code).toBe(1);
  expect(() => execFileSync('git', ['--git-dir', archive, 'cat-file', '-e', tip], { stdio: 'ignore' })).toThrow();
  return { archive, tip };
}

const advice = (tag: string): string => `run "btrfly verify --repair ${tag}" to set it aside and fetch it again from the archive's remotes (or, with no remote that has it, re-record the tag after the repair)`;
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

test('tags lists every other tag when one tip commit is missing or damaged, marks it with what to do, and exits 1', async () => {
  const { archive, tip } = await withMissingTip();
  // Another tag whose tip is a loose commit, damaged.
  const tree = git(archive, 'rev-parse', 'example/packages^{tree}').trim();
  const loose = execFileSync('git', ['--git-dir', archive, 'commit-tree', tree, '-m', 'damaged'], { encoding: 'utf8' }).trim();
  git(archive, 'update-ref', 'refs/heads/zz/damaged', loose);
  damageLooseObject(archive, loose, 3);

  const r = await runCli(['tags', '--archive', archive]);
  const rows = r.stdout.split('\n').filter(Boolean);
  expect(rows[0]).toMatch(/^TAG +RECORDINGS +ENTRIES +SIZE +STORED +LAST RECORDED$/);
  expect(rows.find((l) => l.startsWith('example/large '))).toMatch(/^example\/large +1 +2 +27 MiB +\S+ MiB +2026-11-24T18:06:41\+00:00$/);
  expect(rows.find((l) => l.startsWith('example/packages '))).toMatch(/^example\/packages +1 +19 /);
  expect(rows.find((l) => l.startsWith('example/small '))).toMatch(/^example\/small +\? +\? +\? +\? +UNREADABLE \(see below\)$/);
  expect(rows.find((l) => l.startsWith('zz/damaged '))).toMatch(/UNREADABLE \(see below\)$/);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toEqual([
    `btrfly: tag "example/small": its newest recording ${tip.slice(0, 12)} is missing from the archive: ${advice('example/small')}`,
    expect.stringMatching(new RegExp(`^btrfly: tag "zz/damaged": its newest recording ${loose.slice(0, 12)} cannot be read \\(.+\\): ${escape(advice('zz/damaged'))}$`)),
  ]);
  expect(r.code).toBe(1);

  const json = await runCli(['tags', '--archive', archive, '--json']);
  const listed = (JSON.parse(json.stdout) as { error: { tags: Array<{ tag: string; error?: string; entries?: number }> } }).error.tags;
  expect(listed.map((t) => [t.tag, t.entries ?? t.error?.slice(0, 25)])).toEqual([
    ['example/large', 2],
    ['example/packages', 19],
    ['example/small', 'tag "example/small": its '],
    ['zz/damaged', 'tag "zz/damaged": its new'],
  ]);
  expect(json.code).toBe(1);
}, 120_000);

test('log and show of a tag whose tip commit is missing say so and what to do, not "not found"', async () => {
  const { archive, tip } = await withMissingTip();
  for (const cmd of ['log', 'show']) {
    const r = await runCli([cmd, 'example/small', '--archive', archive]);
    expect(r.stderr).toBe(
      `btrfly: tag "example/small" points at recording ${tip.slice(0, 12)}, which is missing from the archive: run "btrfly verify --repair example/small" to fetch it again from the archive's remotes, or record the tag again without --append (its history then starts anew)\n`,
    );
    expect(r.code).toBe(1);
  }
}, 120_000);

test('re-recording a tag whose tip commit is missing starts its history anew; --append is refused with what to do', async () => {
  const { archive, tip } = await withMissingTip();
  const out = tmpDir('btrfly-missing-tip-');
  const url = origin.urlFor('/gen/4096?seed=again', 'again.test');
  const script = join(out, 'build.sh');
  writeFileSync(script, `curl -sSf -o "${join(out, 'got')}" "${url}"\n`);
  const record = (append: boolean) =>
    runCli(['run', '--record', '--tag=example/small', ...(append ? ['--append'] : []), '--archive', archive, '--resolve', `again.test:${origin.host}`, '--', 'sh', script], { timeoutMs: 60_000 });

  const appended = await record(true);
  expect(appended.stderr).toMatch(/^btrfly: tag "example\/small" points at recording [0-9a-f]{12}, which is missing from the archive: run "btrfly verify --repair example\/small" .* or record the tag again without --append \(its history then starts anew\)$/m);
  expect(appended.code).toBe(1);
  expect(git(archive, 'rev-parse', 'refs/heads/example/small').trim()).toBe(tip);

  const again = await record(false);
  expect(again.stderr).toMatch(/tag "example\/small" points at recording [0-9a-f]{12}, which is missing from the archive: this recording starts the tag's history anew/);
  expect(again.code).toBe(0);
  const head = git(archive, 'rev-parse', 'refs/heads/example/small').trim();
  expect(head).not.toBe(tip);
  expect(git(archive, 'rev-list', '--count', head).trim()).toBe('1');
  const log = await runCli(['log', 'example/small', '--archive', archive]);
  expect(log.code).toBe(0);
  const tags = await runCli(['tags', '--archive', archive]);
  expect(tags.stdout).toMatch(/^example\/small +1 +1 +4\.0 KiB /m);
  expect(tags.code).toBe(0);
  expect((await runCli(['run', '--playback', '--tag=example/small', '--archive', archive, '--', 'sh', script])).code).toBe(0);
}, 120_000);
