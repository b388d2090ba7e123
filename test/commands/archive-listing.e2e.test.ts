/**
 * The listing commands as a user reads them: `tags`, `show`, `log` and `diff` on a copy of
 * the example archive, whose recordings are pinned by commit id (it only grows), and the
 * one-line errors for a tag, a recording or an archive that is not there.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { copyFixtureArchive, runCli, tmpDir } from '../helpers';

// The example archive's recordings (scripts/make-example-archive.sh).
const SMALL_1 = 'example/small@8ad2ce9';
const SMALL_2 = 'example/small@2e8eeff';
const LARGE = 'example/large@0e9df99';

describe('btrfly tags, show, log, diff', () => {
  let archive: string;
  let cwd: string;
  const cli = (...args: string[]) => runCli([...args, '--archive', archive]);

  beforeAll(() => {
    archive = copyFixtureArchive();
    cwd = join(archive, '..');
  });

  it('tags: one line a tag with recordings, entries, size, stored size and date', async () => {
    const r = await cli('tags');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TAG\s+RECORDINGS\s+ENTRIES\s+SIZE\s+STORED\s+LAST RECORDED$/);
    expect(lines).toContainEqual(expect.stringMatching(/^example\/large\s+1\s+2\s+27 MiB\s+16 MiB\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/));
    expect(lines).toContainEqual(expect.stringMatching(/^example\/small\s+2\s+10\s+6\.0 KiB\s+14\d KiB\s+\d{4}-/));
  });

  it('tags --json: the same figures as numbers', async () => {
    const r = await cli('tags', '--json');
    expect(r.code).toBe(0);
    const tags = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    const large = tags.find((t) => t.tag === 'example/large')!;
    expect(large).toMatchObject({ recordings: 1, entries: 2, size: 16781312 + 12000000 });
    // The raw parts are on disk whole; the 12 MB of text shrinks to almost nothing in zstd.
    expect(large.storedSize).toBeGreaterThan(16781312);
    expect(large.storedSize).toBeLessThan(16781312 + 1024 * 1024);
    expect(new Date(large.lastRecorded as string).getTime()).not.toBeNaN();
  });

  it('show T@REV: method, status, size, short digest and URL of every entry', async () => {
    const r = await cli('show', LARGE);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^example\/large@0e9df99 {2}\S+Z {2}2 entries, 27 MiB$/);
    expect(lines.slice(1)).toEqual([
      'METHOD  STATUS    SIZE  SHA256        URL',
      'GET     200     16 MiB  d1c4c2924dd5  https://origin.test:48443/gen/16781312?seed=42',
      'GET     200     11 MiB  d98a29045476  https://origin.test:48443/gz/12000000',
    ]);
  });

  it('show marks the n-th answer to a repeated request with #n', async () => {
    const r = await cli('show', SMALL_2);
    expect(r.stdout).toMatch(/^GET +200 +8 B +7b2cf384b585 +https:\/\/origin\.test:48443\/counter$/m);
    expect(r.stdout).toMatch(/^GET +200 +8 B +840728a4396f +https:\/\/origin\.test:48443\/counter #1$/m);
    expect(r.stdout).toMatch(/^GET +302 .*\/redirect\?to=https:\/\/cdn\.test:48443\/files\/hello\.txt&status=302$/m);
  });

  it('show --json: the full manifest entries', async () => {
    const r = await cli('show', LARGE, '--json');
    const shown = JSON.parse(r.stdout);
    expect(shown).toMatchObject({ tag: 'example/large', commit: expect.stringMatching(/^0e9df99[0-9a-f]{33}$/) });
    expect(shown.entries.map((e: { response: { content: unknown } }) => e.response.content)).toEqual([
      { size: 16781312, mimeType: 'application/octet-stream', sha256: expect.stringMatching(/^d1c4c2924dd5/), storage: 'raw', parts: 3 },
      { size: 12000000, mimeType: 'text/plain; charset=utf-8', sha256: expect.stringMatching(/^d98a29045476/), storage: 'zstd', parts: 2 },
    ]);
    expect(shown.entries[0].request).toEqual({ method: 'GET', url: 'https://origin.test:48443/gen/16781312?seed=42', headers: [{ name: 'accept', value: '*/*' }] });
  });

  it('show T: the newest recording', async () => {
    const r = await cli('show', 'example/small');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^example\/small@[0-9a-f]{7} /);
  });

  it('log: one line a recording, newest first', async () => {
    const r = await cli('log', 'example/small');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.slice(-2)).toEqual([
      expect.stringMatching(/^2e8eeff {2}\S+ {2}10 entries, 6\.0 KiB {2}record example\/small: bash build-small\.sh 2$/),
      expect.stringMatching(/^8ad2ce9 {2}\S+ {2}10 entries, 132 KiB {2}record example\/small: bash build-small\.sh 1$/),
    ]);
    const json = JSON.parse((await cli('log', 'example/small', '--json')).stdout);
    expect(json.at(-1)).toMatchObject({ commit: expect.stringMatching(/^8ad2ce9/), parent: null, entries: 10 });
    expect(json.at(-2).parent).toBe(json.at(-1).commit);
  });

  it('T@~N names the recording N lines down btrfly log, as git does; past the first, one line', async () => {
    const commits = (await cli('log', 'example/small')).stdout.trimEnd().split('\n').map((l) => l.slice(0, 7));
    expect(commits.length).toBeGreaterThan(1);
    for (const [i, spec] of [[0, 'example/small@~0'], [1, 'example/small@~'], [1, 'example/small@~1'], [commits.length - 1, `example/small@~${commits.length - 1}`]] as const) {
      const r = await cli('show', spec);
      expect([r.code, r.stdout.split('\n')[0].split(' ')[0]]).toEqual([0, `example/small@${commits[i]}`]);
    }
    const d = await cli('diff', 'example/small@~1', 'example/small');
    expect([d.code, d.stdout.split('\n').slice(0, 2)]).toEqual([0, [`--- example/small@${commits[1]}`, `+++ example/small@${commits[0]}`]]);
    const past = await cli('show', `example/small@~${commits.length}`);
    expect([past.code, past.stderr]).toEqual([1, `btrfly: tag "example/small" has ${commits.length} recordings, so "example/small@~${commits.length}" names none: run "btrfly log example/small" to list them\n`]);
  });

  it('diff A B: removed, added and changed URLs, then a summary', async () => {
    const r = await cli('diff', SMALL_1, SMALL_2);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `--- ${SMALL_1}`,
        `+++ ${SMALL_2}`,
        '- GET https://origin.test:48443/files/data.bin  200 128 KiB c17afb5739cb',
        '+ GET https://origin.test:48443/gen/2048?seed=2  200 2.0 KiB 0617790301c2',
        '~ GET https://origin.test:48443/counter  200 8 B daf7f42b62b2 -> 200 8 B 7b2cf384b585',
        '~ GET https://origin.test:48443/counter #1  200 8 B 4a2610b7312c -> 200 8 B 840728a4396f',
        '1 added, 1 removed, 2 changed, 7 unchanged (-126 KiB)',
        '',
      ].join('\n'),
    );
  });

  it('diff of a recording with itself shows nothing changed', async () => {
    const r = await cli('diff', SMALL_2, 'example/small@2e8eeff');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('0 added, 0 removed, 0 changed, 10 unchanged (±0 B)');
  });

  it('diff --format markdown: a pull-request comment with a table', async () => {
    const r = await cli('diff', SMALL_1, SMALL_2, '--format', 'markdown');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`**btrfly diff** \`${SMALL_1}\` → \`${SMALL_2}\`: 1 added, 1 removed, 2 changed`);
    expect(r.stdout).toContain('| | Request | Status | Size | SHA-256 |');
    expect(r.stdout).toContain('| removed | GET `https://origin.test:48443/files/data.bin` | 200 | 128 KiB | `c17afb5739cb` |');
  });

  it('diff --format json (and --json): the diff as data', async () => {
    for (const flag of [['--format', 'json'], ['--json']]) {
      const d = JSON.parse((await cli('diff', SMALL_1, SMALL_2, ...flag)).stdout);
      expect(d).toMatchObject({ from: SMALL_1, to: SMALL_2, unchanged: 7 });
      expect(d.added.map((e: { url: string }) => e.url)).toEqual(['https://origin.test:48443/gen/2048?seed=2']);
      expect(d.removed).toHaveLength(1);
      expect(d.changed.map((c: { ordinal: number }) => c.ordinal)).toEqual([0, 1]);
    }
  });

  it('an unknown tag: one line saying how to list tags, exit 1', async () => {
    for (const args of [['show', 'nope'], ['log', 'nope'], ['diff', 'nope', SMALL_1], ['verify', 'nope']]) {
      const r = await runCli([...args, '--archive', '.btrfly'], { cwd });
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({
        args,
        code: 1,
        stderr: 'btrfly: tag "nope" not found in archive .btrfly: run "btrfly tags" to list tags\n',
      });
    }
  });

  it('an unknown recording, a bad tag name, a bad format: one line each', async () => {
    const rev = await cli('show', 'example/small@ffff');
    expect(rev.code).toBe(1);
    expect(rev.stderr).toBe('btrfly: recording "ffff" is not in the history of tag "example/small": run "btrfly log example/small" to list its recordings\n');
    const bad = await cli('show', 'bad..name');
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const fmt = await cli('diff', SMALL_1, SMALL_2, '--format', 'xml');
    expect(fmt.code).toBe(2);
    expect(fmt.stderr).toBe('btrfly: --format must be text, markdown or json, not "xml"; usage: btrfly diff FROM TO\n');
  });

  it('no archive: one clear line, exit 1, and nothing created', async () => {
    const empty = tmpDir();
    for (const args of [['tags'], ['show', 'x'], ['log', 'x'], ['verify'], ['gc']]) {
      const r = await runCli(args, { cwd: empty });
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 1, stderr: 'btrfly: no archive at .btrfly: record a tag first or pass --archive\n' });
    }
    expect(existsSync(join(empty, '.btrfly'))).toBe(false);
    const missing = await runCli(['tags', '--archive', join(empty, 'nowhere')]);
    expect(missing.stderr).toMatch(/^btrfly: no archive at .*nowhere: /);
  });

  it('a directory that is not an archive is named as such', async () => {
    const r = await runCli(['tags', '--archive', join(__dirname)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a btrfly archive \(a bare git repository\)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
