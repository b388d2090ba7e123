/**
 * Several commands that find no archive at once (parallel builds recording into a fresh
 * `--archive`): each one either makes it or opens the one another made, never a half-made
 * repository ("is not a btrfly archive"), and no temp directory of the making is left behind.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

const PARALLEL = 8;

describe('a fresh archive made by parallel commands', () => {
  it.each([1, 2, 3])('round %i: every recorder of a new archive records its tag', async () => {
    const parent = tmpDir();
    const archive = join(parent, 'archive');
    const tags = Array.from({ length: PARALLEL }, (_, i) => `t${i}`);
    const runs = await Promise.all(tags.map((t) => runCli(['run', '--record', `--tag=${t}`, '--archive', archive, '--', 'true'], { timeoutMs: 120_000 })));
    for (const r of runs) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.stringMatching(/^btrfly: recorded tag "t\d"/) });
    const listed = await runCli(['tags', '--archive', archive]);
    expect(listed.code).toBe(0);
    for (const t of tags) expect(listed.stdout).toMatch(new RegExp(`^${t}\\b`, 'm'));
    expect(readdirSync(parent)).toEqual(['archive']);
  });
});
