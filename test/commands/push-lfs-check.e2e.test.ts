/**
 * A git mode push does not list every object of the tag to find LFS pointers (it did, with
 * `git rev-list --objects`, on every push: 0.5 s per 40,000 objects); a git mode archive that
 * pulled a tag from an LFS archive still pushes that tag's LFS objects on to the next remote.
 * What git ran is read from GIT_TRACE, which btrfly's git processes inherit.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { genBodySha256, runCli, runOk, startOrigin, tmpDir, type Origin } from '../helpers';

const lfsObject = (repo: string, oid: string): string => join(repo, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The git commands a btrfly command ran (GIT_TRACE lines), and its result. */
async function traced(args: string[]): Promise<{ code: number | null; stderr: string; gitRuns: string[] }> {
  const trace = join(tmpDir('btrfly-trace-'), 'git.trace');
  const r = await runCli(args, { env: { GIT_TRACE: trace }, timeoutMs: 120_000 });
  const gitRuns = readFileSync(trace, 'utf8')
    .split('\n')
    .filter((l) => / trace: (built-in|exec|run_command): /.test(l));
  return { code: r.code, stderr: r.stderr, gitRuns };
}

describe('push: git-lfs only where there are LFS bodies', () => {
  let origin: Origin;
  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterAll(async () => {
    await origin?.close();
  });

  async function record(archive: string, seed: number): Promise<string> {
    const rec = await runCli(['run', '--record', '--tag=deps', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-sf', '-o', '/dev/null', origin.urlFor(`/gen/300000?seed=${seed}`, 'origin.test')]);
    expect(rec.stderr).toContain('recorded tag "deps"');
    return genBodySha256(300000, seed);
  }

  it('a git mode push lists no objects of the tag', async () => {
    const archive = join(tmpDir(), 'git-mode');
    await record(archive, 1);
    const remote = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', remote]);
    await runCli(['remote', 'add', 'hub', remote, '--archive', archive]);
    const push = await traced(['push', 'hub', '--archive', archive]);
    expect(push.stderr).toMatch(/^deps: pushed, new tag at/);
    expect(push.code).toBe(0);
    expect(push.gitRuns.some((l) => / git push /.test(l))).toBe(true);
    // (The remote's receive-pack checks what it received with a `rev-list --objects --stdin` of its own.)
    expect(push.gitRuns.filter((l) => /rev-list --objects refs\/heads\//.test(l))).toEqual([]);
    expect(push.gitRuns.filter((l) => /git(-| )lfs/.test(l))).toEqual([]);
  });

  it('a git mode archive pushes on the LFS objects of a tag it pulled from an LFS archive', async () => {
    const lfs = join(tmpDir(), 'lfs-mode');
    expect((await runCli(['init', '--lfs', '--archive', lfs])).code).toBe(0);
    const sha = await record(lfs, 2);
    const first = join(tmpDir(), 'first.git');
    const next = join(tmpDir(), 'next.git');
    for (const r of [first, next]) await runOk('git', ['init', '-q', '--bare', r]);
    await runCli(['remote', 'add', 'first', first, '--archive', lfs]);
    expect((await runCli(['push', 'first', '--archive', lfs], { timeoutMs: 120_000 })).code).toBe(0);

    const plain = join(tmpDir(), 'plain');
    await runCli(['remote', 'add', 'first', first, '--archive', plain]);
    await runCli(['remote', 'add', 'next', next, '--archive', plain]);
    expect((await runCli(['pull', 'first', '--archive', plain], { timeoutMs: 120_000 })).code).toBe(0);
    const push = await traced(['push', 'next', '--archive', plain]);
    expect(push.code).toBe(0);
    expect(push.gitRuns.some((l) => /lfs push/.test(l))).toBe(true);
    expect(sha256(lfsObject(next, sha))).toBe(sha);
    const copy = join(tmpDir(), 'copy');
    await runCli(['remote', 'add', 'next', next, '--archive', copy]);
    expect((await runCli(['pull', 'next', '--archive', copy], { timeoutMs: 120_000 })).code).toBe(0);
    expect((await runCli(['verify', '--archive', copy])).code).toBe(0);
  });
});
