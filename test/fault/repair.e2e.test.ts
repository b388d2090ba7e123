/**
 * `btrfly verify --repair` against damage other than one body part in a tag it was asked about
 * (issue 12). The example archive is pushed to a bare remote on this machine, then packed with
 * `git gc --aggressive` into one pack, where the manifests of the tags are deltas of one
 * another: the manifest of example/packages is the base of the others'. The damage is one byte
 * flipped inside a packed object; every test ends with a clean `btrfly verify` of every tag,
 * a clean `git fsck --full`, and no object of the old pack lost but the damaged ones.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, damagePackEntry, pausePoints, runCli, spawnCli, tmpDir } from '../helpers';

const git = (archive: string, ...args: string[]): string => execFileSync('git', ['--git-dir', archive, ...args], { encoding: 'utf8' });

let pristine: string;

beforeAll(async () => {
  pristine = copyFixtureArchive();
  const remote = join(tmpDir('btrfly-repair-remote-'), 'good.git');
  execFileSync('git', ['init', '-q', '--bare', remote]);
  expect((await runCli(['remote', 'add', 'good', remote, '--archive', pristine])).code).toBe(0);
  expect((await runCli(['push', 'good', 'example/large', 'example/packages', 'example/small', '--archive', pristine])).code).toBe(0);
  git(pristine, 'gc', '--aggressive', '--prune=now', '--quiet');
}, 120_000);

function copyArchive(): string {
  const dir = join(tmpDir('btrfly-repair-'), 'archive');
  cpSync(pristine, dir, { recursive: true });
  return dir;
}

/** A copy whose manifest of example/packages, the base of the other manifests' deltas, is damaged. */
function withDamagedManifest(opts: { remote?: boolean } = {}): { archive: string; before: Set<string>; manifest: string } {
  const archive = copyArchive();
  if (opts.remote === false) execFileSync('git', ['--git-dir', archive, 'remote', 'remove', 'good']);
  const before = allObjects(archive);
  const manifest = git(archive, 'rev-parse', 'example/packages:manifest.json').trim();
  damagePackEntry(archive, manifest);
  return { archive, before, manifest };
}

/** The repair ended clean, with what it checked afterwards. */
function expectRepairedOk(r: { stdout: string; code: number | null }, checked = '3 tags, 4 recordings'): void {
  expect(r.stdout).toMatch(new RegExp(`^ok: ${checked}, \\d+ bodies .* checked, after the repair$`, 'm'));
  expect(r.code).toBe(0);
}

/** Every object of the archive's packs and loose objects. */
function allObjects(archive: string): Set<string> {
  return new Set(git(archive, 'cat-file', '--batch-all-objects', '--batch-check=%(objectname)').split('\n').filter(Boolean));
}

/** Every tag verifies, git finds nothing wrong, and every object that was there is there again. */
async function expectWhole(archive: string, before: Set<string>): Promise<void> {
  const v = await runCli(['verify', '--archive', archive]);
  expect(v.stdout).toMatch(/^ok: 3 tags, 4 recordings, \d+ bodies .* checked$/m);
  expect(v.code).toBe(0);
  expect(execFileSync('git', ['--git-dir', archive, 'fsck', '--full', '--no-dangling', '--no-progress'], { encoding: 'utf8', stdio: 'pipe' })).toBe('');
  const after = allObjects(archive);
  expect([...before].filter((oid) => !after.has(oid))).toEqual([]);
  expect(readdirSync(join(archive, 'objects', 'pack')).filter((f) => f.startsWith('tmp_'))).toEqual([]);
}

test('a damaged manifest that the other manifests are deltas of is set aside with them and fetched again', async () => {
  const { archive, before } = withDamagedManifest();
  const v = await runCli(['verify', '--archive', archive]);
  // Each line says what to do (it once said to check the git version and run "btrfly verify").
  expect(v.stdout).toMatch(/^example\/packages@[0-9a-f]{7}: git cat-file failed: .*: run "btrfly verify --repair example\/packages" to set it aside and fetch it again from the archive's remotes .*\)$/m);
  expect(v.code).toBe(1);
  const r = await runCli(['verify', '--repair', '--archive', archive]);
  expect(r.stderr).toMatch(/^repair: set aside \d+ damaged objects \(\d+ from packs\) in btrfly\/damaged\/\S+$/m);
  expectRepairedOk(r);
  await expectWhole(archive, before);
  // The old pack is kept aside, whole.
  const [aside] = readdirSync(join(archive, 'btrfly', 'damaged'));
  expect(readdirSync(join(archive, 'btrfly', 'damaged', aside))).toEqual(expect.arrayContaining([expect.stringMatching(/^pack-.*\.pack$/)]));
}, 120_000);

test('verify --repair of one tag also brings back what the pack written again left out of the other tags', async () => {
  // The base manifest (example/packages) is damaged, and only example/large, a delta of it, is repaired.
  const { archive, before } = withDamagedManifest();
  const r = await runCli(['verify', '--repair', 'example/large', '--archive', archive]);
  expectRepairedOk(r, '1 tags, 1 recordings');
  await expectWhole(archive, before);
}, 120_000);

test('another damaged object in the same pack, of a tag verify was not asked about, does not stop the repair', async () => {
  const archive = copyArchive();
  const before = allObjects(archive);
  const body = (tag: string): string => git(archive, 'ls-tree', '-r', tag, 'bodies/').split('\n')[0].split(/\s+/)[2];
  damagePackEntry(archive, body('example/small'));
  damagePackEntry(archive, body('example/packages'));
  const r = await runCli(['verify', '--repair', 'example/small', '--archive', archive]);
  expect(r.stderr).toMatch(/^repair: set aside 2 damaged objects \(2 from packs\) in btrfly\/damaged\/\S+$/m);
  expectRepairedOk(r, '1 tags, 2 recordings');
  await expectWhole(archive, before);
}, 120_000);

test('a damaged commit at the tip of a tag is listed by verify, set aside and fetched again', async () => {
  const archive = copyArchive();
  const before = allObjects(archive);
  damagePackEntry(archive, git(archive, 'rev-parse', 'example/small').trim());
  // verify names the tag (it once failed whole: listing the tags read every tip commit).
  const v = await runCli(['verify', '--archive', archive]);
  expect(v.stdout).toMatch(/^example\/small: git rev-parse failed: /m);
  expect(v.stderr).toMatch(/^btrfly: verify found \d+ problems? in 3 tags, .*: run "btrfly verify --repair"/m);
  expect(v.code).toBe(1);
  const r = await runCli(['verify', '--repair', '--archive', archive]);
  expect(r.stderr).toMatch(/^repair: set aside \d+ damaged objects? \(\d+ from packs\) in btrfly\/damaged\/\S+$/m);
  expectRepairedOk(r);
  await expectWhole(archive, before);
}, 120_000);

test('--from alone, or naming a remote the archive does not have, is one line that says what to do, and nothing is touched', async () => {
  const { archive } = withDamagedManifest();
  const before = readdirSync(join(archive, 'objects', 'pack'));
  const alone = await runCli(['verify', '--from', 'good', '--archive', archive]);
  expect(alone.stderr).toBe('btrfly: --from names the remote a repair fetches from: add --repair ("btrfly verify --repair --from good")\n');
  expect(alone.code).toBe(2);
  const unknown = await runCli(['verify', '--repair', '--from', 'nosuch', '--json', '--archive', archive]);
  expect(JSON.parse(unknown.stdout).error.message).toBe(`no remote "nosuch" in archive ${archive}: run "btrfly remote list"`);
  expect(unknown.code).not.toBe(0);
  expect(readdirSync(join(archive, 'objects', 'pack'))).toEqual(before);
});

test('gc while a repair runs is refused with one line naming the repair', async () => {
  const { archive, before } = withDamagedManifest();
  const pause = pausePoints();
  const repair = spawnCli(['verify', '--repair', '--archive', archive], { env: pause.env('repair-fetch') });
  const pid = await pause.reached('repair-fetch');
  const gc = await runCli(['gc', '--archive', archive]);
  // It once said "btrfly gc is already running": the user looked for a gc that was not there.
  expect(gc.stderr).toMatch(new RegExp(`^btrfly: btrfly verify --repair is already running on this archive \\(pid ${pid} on .+, since .+\\): wait for it to finish\n$`));
  expect(gc.code).toBe(1);
  pause.release('repair-fetch');
  const done = await repair.exited;
  expectRepairedOk(done);
  await expectWhole(archive, before);
}, 120_000);

test.each(['repair-pack', 'repair-fetch'] as const)('a repair killed (SIGKILL) at %s loses nothing: the next one ends clean', async (point) => {
  const { archive, before } = withDamagedManifest();
  const pause = pausePoints();
  const repair = spawnCli(['verify', '--repair', '--archive', archive], { env: pause.env(point) });
  await pause.reached(point);
  expect((await repair.stop('SIGKILL')).signal).toBe('SIGKILL');
  const again = await runCli(['verify', '--repair', '--archive', archive]);
  expectRepairedOk(again);
  await expectWhole(archive, before);
}, 120_000);

test('a tip commit that no remote brings back: verify says to fetch it or record the tag again, and "btrfly rm" deletes it', async () => {
  const archive = copyArchive();
  execFileSync('git', ['--git-dir', archive, 'remote', 'remove', 'good']);
  const tip = git(archive, 'rev-parse', 'example/small').trim();
  damagePackEntry(archive, tip);
  const r = await runCli(['verify', '--repair', '--archive', archive]);
  expect(r.stderr).toMatch(/^repair: \d+ objects? (is|are) absent and the archive has no remote to fetch (it|them) from$/m);
  expect(r.code).toBe(1);
  const v = await runCli(['verify', 'example/small', '--archive', archive]);
  // It once said: tag "example/small" not found in archive …: run "btrfly tags" (and rm said the same).
  expect(v.stdout).toBe(
    `example/small: tag "example/small" points at recording ${tip.slice(0, 12)}, which is missing from the archive: run "btrfly verify --repair example/small" to fetch it again from the archive's remotes, or record the tag again without --append (its history then starts anew)\n`,
  );
  const rm = await runCli(['rm', 'example/small', '--archive', archive]);
  expect(rm.stdout).toBe(`deleted tag example/small (was ${tip.slice(0, 7)}); run "btrfly gc" to free its space\n`);
  expect(rm.code).toBe(0);
}, 120_000);

test('the first remote failing, the next one that has the tag brings it back; each says so on its line', async () => {
  const { archive, before } = withDamagedManifest();
  const gone = join(tmpDir('btrfly-repair-gone-'), 'gone.git');
  const empty = join(tmpDir('btrfly-repair-empty-'), 'empty.git');
  execFileSync('git', ['init', '-q', '--bare', empty]);
  for (const [name, url] of [['gone', gone], ['empty', empty]]) expect((await runCli(['remote', 'add', name, url, '--archive', archive])).code).toBe(0);
  const r = await runCli(['verify', '--repair', 'example/packages', '--from', 'gone', '--from', 'empty', '--from', 'good', '--archive', archive]);
  expect(r.stderr).toMatch(/^repair: could not fetch example\/packages again from gone: fetch from remote gone failed: .*$/m);
  expect(r.stderr).toMatch(/^repair: could not fetch example\/packages again from empty: tag "example\/packages" not found on remote empty: run "git ls-remote empty" in the archive to see its branches$/m);
  expect(r.stderr).toMatch(/^repair: fetched example\/packages again from good: \d+ of the absent objects came back$/m);
  expect(r.code).toBe(0);
  await expectWhole(archive, before);
}, 120_000);

test('a manifest that no remote brings back is named as missing, not as "not written by btrfly"', async () => {
  const { archive, manifest } = withDamagedManifest({ remote: false });
  const r = await runCli(['verify', '--repair', 'example/packages', '--archive', archive]);
  expect(r.stdout).toMatch(
    new RegExp(`^example/packages@[0-9a-f]{7}: tag "example/packages" at [0-9a-f]{7}: its manifest.json \\(object ${manifest}\\) is missing from the archive: run "btrfly verify --repair example/packages"`, 'm'),
  );
  expect(r.code).toBe(1);
}, 120_000);

test('gc on a damaged archive says to run the repair; after it, gc runs', async () => {
  const { archive, before } = withDamagedManifest();
  const gc = await runCli(['gc', '--archive', archive]);
  // It once said to check git's version and run "btrfly verify".
  expect(gc.stderr).toMatch(/^btrfly: git gc failed: .*: the archive holds a damaged object; run "btrfly verify --repair", then gc again\n$/);
  expect(gc.code).toBe(1);
  expectRepairedOk(await runCli(['verify', '--repair', '--archive', archive]));
  expect((await runCli(['gc', '--archive', archive])).code).toBe(0);
  await expectWhole(archive, before);
}, 120_000);
