/**
 * A tag whose newest recording is missing (what a repair that no remote could help leaves) does
 * not keep the other tags from being pushed; a push of every tag is refused in one line naming
 * it, with what to do, nothing pushed. A pull, which git refuses whatever it asks for while one
 * ref names a missing commit ("bad object"), says that tag's trouble and what to do, not the
 * remote's URL and credentials; after the repair the pull works. gc, which git refuses then too,
 * says the same, having removed nothing; `migrate --lfs` refuses before it marks the archive.
 * An older recording missing (the newest reads) is said as that, not as the newest unreadable,
 * with advice that helps (a re-recording would add to the same broken history). A pull of the
 * tag itself from a remote that has that recording brings it back, checked, and says so (it said
 * "up to date"); the tag then plays back.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, runCli, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

/** The example archive, example/small's tip commit set aside by a repair with no remote. */
async function withMissingTip(): Promise<{ archive: string; tip: string }> {
  const archive = copyFixtureArchive();
  const tip = git(archive, 'rev-parse', 'example/small').trim();
  damagePackEntry(archive, tip);
  expect((await runCli(['verify', '--repair', '--archive', archive])).code).toBe(1);
  expect(() => execFileSync('git', ['--git-dir', archive, 'cat-file', '-e', tip], { stdio: 'ignore' })).toThrow();
  return { archive, tip };
}

test('push: the other tags go; every tag is refused in one line naming the missing one, nothing pushed', async () => {
  const { archive, tip } = await withMissingTip();
  const dest = join(tmpDir('btrfly-dest-'), 'dest.git');
  execFileSync('git', ['init', '-q', '--bare', dest]);
  expect((await runCli(['remote', 'add', 'dest', dest, '--archive', archive])).code).toBe(0);

  const all = await runCli(['push', 'dest', '--archive', archive]);
  expect(all.stderr).toBe(
    `btrfly: tag "example/small" points at recording ${tip.slice(0, 12)}, which is missing from the archive: run "btrfly verify --repair example/small" to fetch it again from the archive's remotes, ` +
      'or record the tag again without --append (its history then starts anew); nothing was pushed (name the other tags to push them now)\n',
  );
  expect(all.code).toBe(1);
  expect(git(dest, 'for-each-ref')).toBe('');

  const one = await runCli(['push', 'dest', 'example/large', '--archive', archive]);
  expect(one.stderr).toMatch(/^example\/large: pushed, new tag at [0-9a-f]{12}\n$/);
  expect(one.code).toBe(0);
  expect(git(dest, 'rev-parse', 'example/large')).toBe(git(archive, 'rev-parse', 'example/large'));
}, 120_000);

test('pull of another tag says the missing tip and what to do; after the repair it works', async () => {
  const { archive, tip } = await withMissingTip();
  expect((await runCli(['remote', 'add', 'origin', copyFixtureArchive(), '--archive', archive])).code).toBe(0);
  git(archive, 'update-ref', '-d', 'refs/heads/example/large');

  const refused = await runCli(['pull', 'origin', 'example/large', '--archive', archive]);
  expect(refused.stderr).toBe(
    `btrfly: tag "example/small" points at recording ${tip.slice(0, 12)}, which is missing from the archive, and git fetches nothing from remote origin while it is so: ` +
      'run "btrfly verify --repair example/small" to fetch it again from the archive\'s remotes (or "btrfly rm example/small"), then "btrfly pull origin example/large"\n',
  );
  expect(refused.code).toBe(1);
  expect(git(archive, 'for-each-ref', 'refs/btrfly/incoming/')).toBe('');

  expect((await runCli(['verify', '--repair', 'example/small', '--archive', archive])).code).toBe(0);
  const pulled = await runCli(['pull', 'origin', 'example/large', '--archive', archive]);
  expect(pulled.stderr).toMatch(/^example\/large: pulled, new tag at [0-9a-f]{12}\n$/);
  expect(pulled.code).toBe(0);
}, 120_000);

test('gc says which tag names a missing recording and what to do, having removed nothing', async () => {
  const { archive, tip } = await withMissingTip();
  const objects = git(archive, 'count-objects', '-v');
  const r = await runCli(['gc', '--archive', archive]);
  expect(r.stderr).toBe(
    `btrfly: gc removed nothing: tag "example/small" points at recording ${tip.slice(0, 12)}, which is missing from the archive: run "btrfly verify --repair example/small" to fetch it again from the archive's remotes, ` +
      'or record the tag again without --append (its history then starts anew); then gc again\n',
  );
  expect(r.code).toBe(1);
  expect(git(archive, 'count-objects', '-v')).toBe(objects);
}, 120_000);

test('migrate --lfs is refused, naming the tag, before the archive is marked for LFS', async () => {
  const { archive, tip } = await withMissingTip();
  const r = await runCli(['migrate', '--lfs', '--archive', archive]);
  expect(r.stderr).toBe(
    `btrfly: tag "example/small" points at recording ${tip.slice(0, 12)}, which is missing from the archive: run "btrfly verify --repair example/small" to fetch it again from the archive's remotes, ` +
      'or record the tag again without --append (its history then starts anew); nothing was migrated\n',
  );
  expect(r.code).toBe(1);
  expect(() => git(archive, 'config', 'btrfly.storage')).toThrow();
}, 120_000);

test('an older recording missing: tags and log say so, not that the newest cannot be read, and what helps', async () => {
  const archive = copyFixtureArchive();
  const tip = git(archive, 'rev-parse', 'example/small').trim();
  const older = git(archive, 'rev-parse', 'example/small^').trim();
  damagePackEntry(archive, older);
  expect((await runCli(['verify', '--repair', '--archive', archive])).code).toBe(1);
  const said = new RegExp(
    `^btrfly: tag "example/small": a recording older than its newest \\(${tip.slice(0, 12)}\\) is missing or damaged \\(.*${older}.*\\): ` +
      `run "btrfly verify --repair example/small" to fetch it again from the archive's remotes; with no remote that has it, "btrfly rm example/small" and record the tag again \\(a re-recording alone would add to the same history\\)$`,
  );
  const tags = await runCli(['tags', '--archive', archive]);
  expect(tags.stderr.trimEnd()).toMatch(said);
  expect(tags.stdout).toMatch(/^example\/large +1 +2 /m);
  expect(tags.code).toBe(1);
  const log = await runCli(['log', 'example/small', '--archive', archive]);
  expect(log.stderr.trimEnd()).toMatch(said);
  expect(log.code).toBe(1);
}, 120_000);

test('pull of the tag whose newest recording is missing restores it, says so, and the tag plays back', async () => {
  const { archive, tip } = await withMissingTip();
  expect((await runCli(['remote', 'add', 'origin', copyFixtureArchive(), '--archive', archive])).code).toBe(0);

  const pulled = await runCli(['pull', 'origin', 'example/small', '--archive', archive]);
  expect(pulled.stderr).toBe(`example/small: pulled, its newest recording ${tip.slice(0, 12)}, which was missing here, restored and checked\n`);
  expect(pulled.code).toBe(0);
  const json = await runCli(['pull', 'origin', 'example/small', '--archive', archive, '--json']);
  expect(JSON.parse(json.stdout)).toEqual({ remote: 'origin', tags: [{ tag: 'example/small', status: 'same', from: tip, to: tip }] });

  // The recorded body, offline, byte for byte.
  const out = join(tmpDir('btrfly-restored-'), 'got');
  const manifest = JSON.parse(git(archive, 'show', `${tip}:manifest.json`)) as { entries: Array<{ request: { url: string }; response: { content: { sha256: string } } }> };
  const entry = manifest.entries.find((e) => e.request.url.startsWith('http://'))!;
  const play = await runCli(['run', '--playback', '--tag=example/small', '--archive', archive, '--', 'curl', '-sSf', '-o', out, entry.request.url]);
  expect(play.code).toBe(0);
  expect(createHash('sha256').update(readFileSync(out)).digest('hex')).toBe(entry.response.content.sha256);
}, 120_000);
