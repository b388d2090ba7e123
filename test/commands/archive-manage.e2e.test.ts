/**
 * Managing tags as a user does: record a build against a test origin, copy the tag (also a
 * pinned older recording), delete tags, collect the garbage and see what it freed, and
 * verify: "ok" on a sound archive, each problem listed and exit 1 on a damaged one.
 */
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { genBodySha256, gitFsck, run, runCli, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

/** The CLI on the archive, git, and a recorded build of curl downloads, for a describe's origin and archive (read when called). */
function tagTools(ctx: () => { origin: Origin; archive: string; upstream: string[] }) {
  const cli = (...args: string[]) => runCli([...args, '--archive', ctx().archive], { timeoutMs: 120_000 });
  const git = async (dir: string, ...args: string[]) => (await run('git', ['--git-dir', dir, ...args])).stdout.trim();
  const record = async (tag: string, paths: string[]) => {
    const { origin, archive, upstream } = ctx();
    const cmd = paths.map((p) => `curl -sSf -o /dev/null ${origin.urlFor(p, 'origin.test')}`).join(' && ');
    const r = await runCli(['run', '--record', `--tag=${tag}`, '--archive', archive, ...upstream, '--', 'bash', '-c', cmd], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
  };
  return { cli, git, record };
}

describe('btrfly cp, rm, gc, verify', () => {
  let origin: Origin;
  let archive: string;
  let upstream: string[];
  let first: string;
  const { cli, git, record } = tagTools(() => ({ origin, archive, upstream }));

  beforeAll(async () => {
    origin = await startOrigin();
    archive = join(tmpDir(), 'archive');
    upstream = ['--resolve', `origin.test:${origin.host}`];
    await record('build', ['/gen/300000?seed=1', '/files/hello.txt']);
    first = await git(archive, 'rev-parse', 'build');
    await record('build', ['/gen/300000?seed=1', '/gen/1000?seed=2']);
  });

  it('cp: the new tag points at the same recording', async () => {
    const r = await cli('cp', 'build', 'build-copy');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const head = await git(archive, 'rev-parse', 'build');
    expect(r.stdout).toBe(`copied build@${head.slice(0, 7)} to build-copy\n`);
    const tags = JSON.parse((await cli('tags', '--json')).stdout) as Array<{ tag: string; commit: string; recordings: number }>;
    expect(tags.map((t) => [t.tag, t.commit, t.recordings])).toEqual([
      ['build', head, 2],
      ['build-copy', head, 2],
    ]);
    await gitFsck(archive);
  });

  it('cp T@REV copies an older recording; an existing tag needs --force', async () => {
    const pinned = await cli('cp', `build@${first.slice(0, 8)}`, 'pinned');
    expect(pinned.stdout).toBe(`copied build@${first.slice(0, 7)} to pinned\n`);
    expect((await cli('show', 'pinned')).stdout).toContain('/files/hello.txt');

    const again = await cli('cp', 'build', 'pinned');
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('btrfly: tag "pinned" already exists: pick another name or pass --force to replace it\n');
    expect(await git(archive, 'rev-parse', 'pinned')).toBe(first);

    const forced = await cli('cp', 'build', 'pinned', '--force');
    expect(forced.code).toBe(0);
    expect(await git(archive, 'rev-parse', 'pinned')).toBe(await git(archive, 'rev-parse', 'build'));
  });

  it('cp refuses an unknown source and a bad destination name', async () => {
    const unknown = await cli('cp', 'nope', 'x');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^btrfly: tag "nope" not found in archive .*: run "btrfly tags" to list tags\n$/);
    const bad = await cli('cp', 'build', 'a..b');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^btrfly: tag name "a\.\.b" is invalid: it contains "\.\."/);
  });

  it('rm: the tag is gone, its recordings stay until gc; rm of an unknown tag fails', async () => {
    const commit = await git(archive, 'rev-parse', 'build-copy');
    const r = await cli('rm', 'build-copy');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`deleted tag build-copy (was ${commit.slice(0, 7)}); run "btrfly gc" to free its space\n`);
    expect((await cli('tags')).stdout).not.toContain('build-copy');
    expect(await git(archive, 'cat-file', '-t', commit)).toBe('commit');
    const again = await cli('rm', 'build-copy');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^btrfly: tag "build-copy" not found in archive /);
    await gitFsck(archive);
  });

  it('gc frees the bodies only a deleted tag reached, and keeps the rest playable', async () => {
    await record('big', ['/gen/4000000?seed=9']);
    expect((await cli('rm', 'big')).code).toBe(0);
    const r = await cli('gc');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^gc: objects \S+ \S+ in \d+ files before, \S+ \S+ in \d+ files after; freed 3\.\d MiB\n$/);
    const json = JSON.parse((await cli('gc', '--json')).stdout);
    expect(json.freed).toBeLessThan(1024 * 1024); // nothing left to free the second time

    const v = await cli('verify');
    expect(v.stdout).toMatch(/^ok: 2 tags, 2 recordings, 3 bodies/);
    expect(v.code).toBe(0);
    await gitFsck(archive);
    await origin.close();
    const out = join(tmpDir(), 'body');
    const play = await runCli(['run', '--playback', '--tag=build', '--archive', archive, '--', 'curl', '-sSf', '-o', out, origin.urlFor('/gen/300000?seed=1', 'origin.test')]);
    expect(play.code).toBe(0);
    const { stdout } = await run('sha256sum', [out]);
    expect(stdout.split(' ')[0]).toBe(await genBodySha256(300000, '1'));
  });

  it('verify: ok with what it checked; a damaged or missing body is listed and exits 1', async () => {
    const ok = await cli('verify', 'build');
    expect(ok.stdout).toMatch(/^ok: 1 tags, 2 recordings, 3 bodies \(\d+ KiB\) checked\n$/);
    expect(ok.code).toBe(0);

    // A new recording leaves a loose object for a body over 256 KiB (gc packed the others; small
    // bodies go into packs): damage a copy of the archive.
    await origin.close();
    origin = await startOrigin();
    upstream = ['--resolve', `origin.test:${origin.host}`];
    await record('fresh', ['/gen/300000?seed=5']);
    const damaged = join(tmpDir(), 'damaged');
    cpSync(archive, damaged, { recursive: true });
    const sha = await genBodySha256(300000, '5');
    const part = (await git(damaged, 'ls-tree', '-r', 'fresh', 'bodies/')).split('\n').find((l) => l.includes(`/${sha}/`))!;
    const oid = part.split(/\s+/)[2];
    const objectPath = join(damaged, 'objects', oid.slice(0, 2), oid.slice(2));
    // Another blob of the same size in its place: git reads it without complaint, btrfly must not.
    const scratch = tmpDir();
    await run('git', ['init', '-q', '--bare', scratch]);
    const other = join(tmpDir(), 'other');
    writeFileSync(other, Buffer.alloc(300000, 7));
    const otherOid = (await run('git', ['--git-dir', scratch, '-c', 'core.looseCompression=0', 'hash-object', '-w', other])).stdout.trim();
    rmSync(objectPath);
    cpSync(join(scratch, 'objects', otherOid.slice(0, 2), otherOid.slice(2)), objectPath);

    const bad = await runCli(['verify', '--archive', damaged]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`^fresh@[0-9a-f]{7}: body ${sha} is corrupt: it has part 0 \\(object [0-9a-f]{40}\\) whose bytes do not hash to its id: [^\n]+\n$`));
    expect(bad.stderr).toMatch(/^btrfly: verify found 1 problem in 3 tags, 3 recordings, 4 bodies \(\d+ KiB\): run "btrfly verify --repair" to set the damaged copies aside/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    // The other tags do not hold that body.
    expect((await runCli(['verify', 'build', 'pinned', '--archive', damaged])).code).toBe(0);

    rmSync(objectPath);
    const missing = await runCli(['verify', 'fresh', '--archive', damaged, '--json']);
    expect(missing.code).toBe(1);
    const report = JSON.parse(missing.stdout).error;
    expect(report).toMatchObject({ code: 'BODY_CORRUPT', ok: false, tags: 1, recordings: 1, bodies: 1 });
    expect(report.problems).toEqual([expect.objectContaining({ tag: 'fresh', sha256: sha, code: 'BODY_MISSING', message: expect.stringMatching(/is missing from the archive/) })]);
  });
});

describe('btrfly cp and rm while a tag is being recorded', () => {
  let origin: Origin;
  let archive: string;
  let upstream: string[];
  const { cli, git, record } = tagTools(() => ({ origin, archive, upstream }));

  beforeAll(async () => {
    origin = await startOrigin();
    archive = join(tmpDir(), 'archive');
    upstream = ['--resolve', `origin.test:${origin.host}`];
  });

  it('cp --force and rm refuse a tag while it is being recorded; the recording then seals on the history it began from', async () => {
    await record('busy', ['/gen/100?seed=1']);
    await record('other', ['/gen/200?seed=2']);
    const began = await git(archive, 'rev-parse', 'busy');
    const fifo = join(tmpDir(), 'go');
    await run('mkfifo', [fifo]);
    const url = origin.urlFor('/gen/500?seed=5', 'origin.test');
    const rec = spawnCli(['run', '--record', '--tag=busy', '--archive', archive, ...upstream, '--', 'sh', '-c', `curl -sSf -o /dev/null ${url} && echo fetched && cat ${fifo}`]);
    await rec.waitFor('fetched');
    let cp, rm;
    try {
      cp = await cli('cp', 'other', 'busy', '--force');
      rm = await cli('rm', 'busy');
    } finally {
      writeFileSync(fifo, 'done\n'); // the recorded command ends, whatever happened
    }
    const done = await rec.exited;
    const busy = /^btrfly: tag "busy" is being recorded \(session [0-9a-f-]+\): stop it first\n$/;
    expect({ code: cp.code, stderr: cp.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(busy) });
    expect({ code: rm.code, stderr: rm.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(busy) });
    expect(done.code).toBe(0);
    expect(await git(archive, 'rev-parse', 'busy^')).toBe(began);
  });
});
