/**
 * What a reviewer sees: a build recorded, then recorded again after one of its dependencies
 * was bumped. Plain `git diff` between the two recordings shows a handful of lines of
 * `manifest.json` naming the old and the new dependency, and nothing about the dependencies
 * that did not change.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gitFsck, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const DEPS = ['alpha-1.0.0', 'beta-2.3.1', 'gamma-0.9.0', 'delta-4.1.2', 'epsilon-1.1.0', 'zeta-3.0.0'];

function git(archive: string, ...args: string[]): string {
  return execFileSync('git', ['-C', archive, ...args], { encoding: 'utf8' });
}

describe('re-recording with one bumped dependency, reviewed with git diff', () => {
  let origin: Origin;
  let archive: string;
  let upstream: string[];

  beforeAll(async () => {
    const files = tmpDir();
    mkdirSync(join(files, 'pkg'));
    for (const dep of [...DEPS, 'gamma-0.9.1']) writeFileSync(join(files, 'pkg', `${dep}.tgz`), `the tarball of ${dep}\n`.repeat(200));
    origin = await startOrigin({ https: true, dir: files });
    archive = join(tmpDir(), 'archive');
    upstream = ['--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`];
  });

  afterAll(async () => {
    await origin.close();
  });

  async function record(deps: string[]): Promise<string> {
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const script = join(tmpDir(), 'build.sh');
    writeFileSync(script, ['set -eu', ...deps.map((d) => `curl -sSf -o /dev/null "${base}/files/pkg/${d}.tgz"`), ''].join('\n'));
    const r = await runCli(['run', '--record', '--tag=team/app', '--archive', archive, ...upstream, '--', 'bash', script], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    const id = /recorded tag "team\/app" \(recording ([0-9a-f]{12})\)/.exec(r.stderr)?.[1];
    expect(id).toBeDefined();
    return id!;
  }

  it('shows the bumped dependency in a few lines of manifest.json and nothing else of the manifest', async () => {
    const first = await record(DEPS);
    const second = await record(DEPS.map((d) => (d === 'gamma-0.9.0' ? 'gamma-0.9.1' : d)));

    const changed = git(archive, 'diff', '--numstat', first, second, '--', 'manifest.json').trim().split('\n');
    expect(changed).toHaveLength(1);
    const [added, removed] = changed[0].split('\t').map(Number);
    expect(added + removed).toBeLessThanOrEqual(12);

    const patch = git(archive, 'diff', first, second, '--', 'manifest.json');
    const lines = patch.split('\n').filter((l) => /^[+-][^+-]/.test(l));
    expect(lines.some((l) => l.startsWith('-') && l.includes('gamma-0.9.0.tgz'))).toBe(true);
    expect(lines.some((l) => l.startsWith('+') && l.includes('gamma-0.9.1.tgz'))).toBe(true);
    for (const same of DEPS.filter((d) => !d.startsWith('gamma'))) expect(lines.join('\n')).not.toContain(same);

    // The other files of the recording: the bodies that did not change are the same objects.
    const paths = git(archive, 'diff', '--name-only', first, second).trim().split('\n');
    expect(paths.filter((p) => p.startsWith('bodies/'))).toHaveLength(2); // the old tarball's part out, the new one's in
    await gitFsck(archive);
  });
});
