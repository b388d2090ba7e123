/**
 * The body cache of small bodies as users' processes make it: two `btrfly run --record` at once
 * on one archive, each appending the small bodies it records to a segment file of its own
 * (src/format/body-segments.ts), no lock between them and no directory per body; playback of
 * both with the origin stopped, byte for byte; `btrfly verify` and `btrfly gc` over the segments.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startOrigin, tmpDir, type Origin } from '../helpers';

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
    for (const [me, other] of [['a', 'b'], ['b', 'a']]) {
      const urls = Array.from({ length: FILES }, (_, i) => origin.urlFor(`/gen/${1000 + i * 2500}?seed=${me}${i}`, 'origin.test'));
      scripts[me] = join(tmpDir(), `build-${me}.sh`);
      // After its first download each build says so, and goes on only once the other one has
      // too: both recorders are then writing at the same time.
      writeFileSync(
        scripts[me],
        [
          'set -eu',
          'OUT="$1"',
          `curl -sSf -o "$OUT/0" "${urls[0]}"`,
          `touch "${meet}/${me}"`,
          `for i in $(seq 600); do [ -e "${meet}/${other}" ] && break; sleep 0.05; done`,
          `[ -e "${meet}/${other}" ]`,
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
        return runCli(['run', '--record', `--tag=${t}`, '--archive', archive, ...upstream, '--', 'bash', scripts[t], outs[t]], { timeoutMs: 120_000 });
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
});
