/**
 * The example archive `.btrfly/` at the project root is the promise that every later
 * btrfly plays back every earlier format (docs/archive-format.md, "Versions"). This test copies it, verifies
 * it, and plays back every entry of every recording of every tag with curl, with nothing
 * listening upstream, comparing each body with the digest its manifest names. It also
 * checks that the archive survives being committed: a fresh clone drops empty directories
 * and keeps only tracked files.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Entry } from '../src/format/types';
import { copyFixtureArchive, FIXTURE_ARCHIVE, gitFsck, PROJECT_ROOT, run, runCli, tmpDir } from './helpers';

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), new Writable({ write: (c, _e, cb) => (h.update(c), cb()) }));
  return h.digest('hex');
}

const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A bash script that asks for every entry, in manifest order (so a repeated request's
 * answers come in ordinal order), with the recorded method and selecting headers, and
 * without --compressed: the body is saved as it was received, Content-Encoding and all.
 */
function playbackScript(entries: Entry[], outDir: string): string {
  const lines = ['set -u'];
  entries.forEach((e, i) => {
    if (e.request.bodySha256) {
      throw new Error(`${e.request.method} ${e.request.url} has a request body: teach this test to send it (the example archive grew)`);
    }
    const args = ['curl', '-sS', '--max-time', '60', '-o', sq(join(outDir, String(i))), '-w', sq(`${i} %{http_code}\\n`)];
    if (e.request.method === 'HEAD') args.push('--head');
    else if (e.request.method !== 'GET') args.push('-X', sq(e.request.method));
    const names = new Set(e.request.headers.map((h) => h.name.toLowerCase()));
    for (const h of e.request.headers) args.push('-H', sq(`${h.name}: ${h.value}`));
    // A recorded encoding is served as is only to a client that accepts it.
    if (e.response.content.encoding && !names.has('accept-encoding')) args.push('-H', sq(`Accept-Encoding: ${e.response.content.encoding}`));
    args.push(sq(e.request.url));
    lines.push(args.join(' '));
  });
  return lines.join('\n') + '\n';
}

describe('the example archive .btrfly/', () => {
  let archive: string;

  beforeAll(() => {
    archive = copyFixtureArchive();
  });

  it('is committed as what a fresh clone needs: tracked files alone make a valid archive', async () => {
    const tracked = await run('git', ['-C', PROJECT_ROOT, 'ls-files', '-z', '--', '.btrfly']);
    expect(tracked.code).toBe(0);
    const files = tracked.stdout.split('\0').filter(Boolean);
    expect(files).toEqual(expect.arrayContaining(['.btrfly/HEAD', '.btrfly/config', '.btrfly/info/attributes']));
    // Nothing a clone would carry that btrfly or git only use at run time.
    for (const f of files) expect(f).not.toMatch(/^\.btrfly\/(hooks|logs|btrfly)\/|\.lock$|\.jsonl$/);
    const clone = join(tmpDir(), 'clone', '.btrfly');
    for (const f of files) {
      const target = join(dirname(clone), f);
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(join(PROJECT_ROOT, f), target);
    }
    await gitFsck(clone);
    const v = await runCli(['verify', '--archive', clone]);
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
  });

  it('verifies: every body present and matching its digest', async () => {
    const v = await runCli(['verify', '--archive', archive], { timeoutMs: 120_000 });
    expect(v.stderr).toBe('');
    expect(v.stdout).toMatch(/^ok: \d+ tags, \d+ recordings, \d+ bodies/);
    expect(v.code).toBe(0);
  });

  it('example/packages: a build with pip, npm, apt and go; its packages.lock, and a diff from a recording without one', async () => {
    const lock = (await run('git', ['--git-dir', archive, 'show', 'example/packages:packages.lock'])).stdout;
    const lines = lock.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines.map((l) => l.split(' ').slice(0, 3).join(' '))).toEqual([
      'deb btrfly-hello 1.0',
      'deb btrfly-tools 2.0',
      'golang example.test/greet v1.1.0',
      'golang example.test/greet v1.1.0',
      'npm btrfly-demo-leaf 1.0.0',
      'npm btrfly-demo-mid 1.0.0',
      'npm btrfly-demo-top 1.0.0',
      'pypi btrfly-demo-app 1.0.0',
      'pypi btrfly-demo-util 1.1.0',
    ]);
    // example/small was recorded before packages.lock existed: it diffs all the same.
    const d = await runCli(['diff', 'example/small', 'example/packages', '--archive', archive]);
    expect(d.code).toBe(0);
    const out = d.stdout.split('\n');
    expect(out.filter((l) => l.startsWith('added '))).toHaveLength(8);
    expect(out).toContain('added      example.test/greet v1.1.0 (golang)');
    expect(out).toContain('added      btrfly-hello 1.0 (deb)');
    // Every metadata document of example/packages is new (example/small fetched none): counted as new, not refreshed.
    expect(out).toContain('metadata: 0 refreshed, 11 new, 0 gone');
  });

  it('plays back every entry of every recording of every tag, byte for byte, with no misses', async () => {
    expect(existsSync(FIXTURE_ARCHIVE)).toBe(true);
    // 2 tags, 3 recordings, 22 entries when the archive was first made, 41 with
    // example/packages (issue 15); it only grows.
    expect(await playEverything(archive)).toBeGreaterThanOrEqual(41);
    await gitFsck(archive);
  });

  it('moved to Git LFS with "btrfly migrate --lfs", still verifies and plays back every entry', async () => {
    const lfs = copyFixtureArchive();
    const m = await runCli(['migrate', '--lfs', '--archive', lfs], { timeoutMs: 120_000 });
    expect(m.stdout).toMatch(/migrated archive .* to Git LFS: \d+ bodies .* copied; 3 tags now have new commit ids: push them with --force/);
    expect(m.code).toBe(0);
    expect((await run('git', ['--git-dir', lfs, 'ls-tree', '-r', '--name-only', 'example/large', 'bodies/'])).stdout).toMatch(/\/lfs$/m);
    expect((await runCli(['gc', '--archive', lfs])).code).toBe(0);
    const v = await runCli(['verify', '--archive', lfs], { timeoutMs: 120_000 });
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
    expect(await playEverything(lfs)).toBeGreaterThanOrEqual(41);
    await gitFsck(lfs);
  });
});

/** Plays back every entry of every recording of every tag of `archive` and checks each status and body; returns how many bodies were compared. */
async function playEverything(archive: string): Promise<number> {
  const tags = JSON.parse((await runCli(['tags', '--json', '--archive', archive])).stdout) as Array<{ tag: string }>;
  expect(tags.map((t) => t.tag)).toEqual(expect.arrayContaining(['example/small', 'example/large']));
  let played = 0;
  for (const { tag } of tags) {
    const log = JSON.parse((await runCli(['log', tag, '--json', '--archive', archive])).stdout) as Array<{ commit: string }>;
    expect(log.length).toBeGreaterThan(0);
    for (const { commit } of log) {
      const spec = `${tag}@${commit.slice(0, 12)}`;
      const shown = await runCli(['show', spec, '--json', '--archive', archive]);
      expect(shown.code).toBe(0);
      const { entries } = JSON.parse(shown.stdout) as { entries: Entry[] };
      const out = tmpDir();
      const script = join(tmpDir(), 'play.sh');
      writeFileSync(script, playbackScript(entries, out));
      const play = await runCli(['run', '--playback', `--tag=${spec}`, '--archive', archive, '--', 'bash', script], { timeoutMs: 300_000 });
      expect({ spec, code: play.code, stderr: play.stderr }).toEqual({ spec, code: 0, stderr: expect.stringMatching(/0 misses/) });
      const statuses = new Map(play.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
      for (const [i, e] of entries.entries()) {
        const what = `${spec} ${e.request.method} ${e.request.url} #${e.ordinal}`;
        expect(`${what} ${statuses.get(String(i))}`).toBe(`${what} ${e.response.status}`);
        if (e.request.method === 'HEAD') continue;
        expect(`${what} ${await sha256File(join(out, String(i)))}`).toBe(`${what} ${e.response.content.sha256}`);
        played++;
      }
    }
  }
  return played;
}
