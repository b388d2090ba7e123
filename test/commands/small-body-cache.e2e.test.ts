/**
 * The body cache of small bodies as users' processes make it: two `btrfly run --record` at once
 * on one archive, each appending the small bodies it records to a segment file of its own
 * (src/format/body-segments.ts), no lock between them and no directory per body; playback of
 * both with the origin stopped, byte for byte; `btrfly verify` and `btrfly gc` over the segments.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const FILES = 25;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('small bodies cached in segment files', () => {
  let origin: Origin;
  let archive: string;
  let upstream: string[];
  const outs: Record<string, string> = {};
  const scripts: Record<string, string> = {};

  beforeAll(async () => {
    origin = await startOrigin({ https: true });
    archive = join(tmpDir(), 'archive');
    upstream = ['--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`];
    const meet = tmpDir();
    for (const t of ['a', 'b']) await run('mkfifo', [join(meet, t)]);
    for (const [me, other] of [['a', 'b'], ['b', 'a']]) {
      const urls = Array.from({ length: FILES }, (_, i) => origin.urlFor(`/gen/${1000 + i * 2500}?seed=${me}${i}`, 'origin.test'));
      scripts[me] = join(tmpDir(), `build-${me}.sh`);
      // Recorded with "meet": after its first download each build says so down the other's pipe,
      // and goes on only once the other has said so down its own (opening a FIFO waits for the
      // other end), so both recorders are writing at the same time. The bound only turns a failed
      // peer into a failure. Played back one at a time, without "meet".
      writeFileSync(
        scripts[me],
        [
          'set -eu',
          'OUT="$1"',
          `curl -sSf -o "$OUT/0" "${urls[0]}"`,
          'if [ "${2-}" = meet ]; then',
          `  timeout 100 sh -c 'echo ${me} > "$1"' sh "${meet}/${other}" &`,
          `  timeout 100 head -n 1 "${meet}/${me}" >/dev/null`,
          '  wait $!',
          'fi',
          ...urls.slice(1).map((u, i) => `curl -sSf -o "$OUT/${i + 1}" "${u}"`),
          '',
        ].join('\n'),
      );
    }
  });

  afterAll(() => origin?.close());

  it('two recordings at once append to a segment each, and play back byte for byte', async () => {
    const runs = await Promise.all(
      ['a', 'b'].map((t) => {
        outs[t] = tmpDir();
        return runCli(['run', '--record', `--tag=${t}`, '--archive', archive, ...upstream, '--', 'bash', scripts[t], outs[t], 'meet'], { timeoutMs: 120_000 });
      }),
    );
    for (const r of runs) {
      expect(r.stderr).toMatch(/recorded tag/);
      expect(r.code).toBe(0);
    }
    const cache = join(archive, 'btrfly', 'cache');
    // No directory per body: only the segments (and the stage root of larger bodies, if made).
    expect(readdirSync(cache).filter((n) => n !== 'tmp')).toEqual(['segments']);
    const segments = readdirSync(join(cache, 'segments'));
    expect(segments).toHaveLength(2);
    expect(new Set(segments.map((n) => /^p(\d+)-/.exec(n)![1])).size).toBe(2);

    await origin.close();
    for (const t of ['a', 'b']) {
      const again = tmpDir();
      const play = await runCli(['run', '--playback', `--tag=${t}`, '--archive', archive, '--', 'bash', scripts[t], again], { timeoutMs: 120_000 });
      expect(play.stderr).toMatch(new RegExp(` ${FILES} hits, 0 misses`));
      expect(play.code).toBe(0);
      for (let i = 0; i < FILES; i++) expect(sha256(readFileSync(join(again, String(i))))).toBe(sha256(readFileSync(join(outs[t], String(i)))));
    }
    // Playback found every body in the segments: nothing was read from git and cached again.
    expect(readdirSync(join(cache, 'segments')).sort()).toEqual([...segments].sort());
  }, 240_000);

  it('verify re-hashes the records, gc compacts the two segments into one', async () => {
    const v = await runCli(['verify', '--archive', archive]);
    expect(v.code).toBe(0);
    const g = await runCli(['gc', '--archive', archive]);
    expect(g.code).toBe(0);
    const dir = join(archive, 'btrfly', 'cache', 'segments');
    expect(existsSync(dir) && readdirSync(dir)).toHaveLength(1);
    const v2 = await runCli(['verify', '--archive', archive]);
    expect(v2.code).toBe(0);
  }, 120_000);

  it('entries named like segments that are no regular file (a FIFO, a directory) are passed over: playback, verify and gc neither hang nor fail', async () => {
    const dir = join(archive, 'btrfly', 'cache', 'segments');
    expect((await run('mkfifo', [join(dir, 'p1-fifo.seg')])).code).toBe(0);
    mkdirSync(join(dir, 'p1-dir.seg'));
    const again = tmpDir();
    // A FIFO blocked the process in its open for ever; a directory failed every read with EISDIR.
    const play = await runCli(['run', '--playback', '--tag=a', '--archive', archive, '--', 'bash', scripts.a, again], { timeoutMs: 60_000 });
    expect(play.stderr).toMatch(new RegExp(` ${FILES} hits, 0 misses`));
    expect(play.code).toBe(0);
    for (let i = 0; i < FILES; i++) expect(sha256(readFileSync(join(again, String(i))))).toBe(sha256(readFileSync(join(outs.a, String(i)))));
    for (const args of [['verify'], ['gc'], ['verify']]) {
      const r = await runCli([...args, '--archive', archive], { timeoutMs: 60_000 });
      expect(r.stderr).not.toMatch(/EISDIR|read failed/);
      expect(r.code).toBe(0);
    }
  }, 240_000);

  it('a FIFO in place of a small body\'s file in a directory entry (the older form) does not hang playback', async () => {
    rmSync(join(archive, 'btrfly', 'cache', 'segments'), { recursive: true, force: true });
    const body = sha256(readFileSync(join(outs.b, '0')));
    const entry = join(archive, 'btrfly', 'cache', body.slice(0, 2), body);
    mkdirSync(entry, { recursive: true });
    expect((await run('mkfifo', [join(entry, '00000000')])).code).toBe(0);
    const again = tmpDir();
    // The synchronous read of the FIFO blocked the process for ever, deaf to SIGTERM.
    const play = await runCli(['run', '--playback', '--tag=b', '--archive', archive, '--', 'bash', scripts.b, again], { timeoutMs: 60_000 });
    expect(play.stderr).toMatch(new RegExp(` ${FILES} hits, 0 misses`));
    expect(play.code).toBe(0);
    for (let i = 0; i < FILES; i++) expect(sha256(readFileSync(join(again, String(i))))).toBe(sha256(readFileSync(join(outs.b, String(i)))));
  }, 120_000);
});
