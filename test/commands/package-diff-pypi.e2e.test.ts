/**
 * A PyPI dependency bump reviewed as packages (issue 15): real pip installs from the Python
 * index of test/fixtures/package-index.js on `pypi.test`, recorded, then re-recorded with
 * btrfly-demo-util 1.0.0 bumped to 1.1.0. `diff` names exactly that bump, `sbom` lists the new
 * wheel and not the old, and `git diff` of `packages.lock` changes only its lines. (npm:
 * package-diff.e2e; apt and Go: build-tools.e2e.)
 */
import { join } from 'node:path';
import { CLI_ENTRY, buildToolEnv, cliEnv, cliWorkDir, pipTool, run, runOk, startOrigin, tmpDir, type Origin, type RunResult } from '../helpers';
import { describeWhen } from '../helpers/when';

const describePip = describeWhen(pipTool.missing());
const TAG = 'py-app';

describePip('a re-recorded pip install reviewed as packages', () => {
  let origin: Origin;
  let archive: string;
  const btrfly = (args: readonly string[]): Promise<RunResult> =>
    run(process.execPath, [CLI_ENTRY, ...args], { cwd: cliWorkDir(), env: buildToolEnv(cliEnv()), timeoutMs: 120_000 });

  beforeAll(async () => {
    origin = await startOrigin({ https: true, kind: 'pypi', names: [pipTool.host] });
    archive = join(tmpDir(), 'archive');
  });
  afterAll(() => origin?.close());

  async function record(bumped: boolean): Promise<string> {
    const dir = tmpDir();
    pipTool.writeProject(dir, bumped);
    const base = origin.urlFor('/', pipTool.host).replace(/\/$/, '');
    const rec = await btrfly(['run', '--record', `--tag=${TAG}`, '--archive', archive, '--resolve', `${pipTool.host}:${origin.host}`, '--upstream-ca', origin.caPath!, '--', 'bash', '-c', pipTool.command(dir, base)]);
    expect(`${rec.stderr}exit ${rec.code}`).toMatch(/recorded tag "py-app"[\s\S]*exit 0$/);
    return (await runOk('git', ['--git-dir', archive, 'rev-parse', TAG])).stdout.trim();
  }

  it('diff, sbom and the packages.lock diff name exactly btrfly-demo-util 1.0.0 → 1.1.0', async () => {
    const first = await record(false);
    const second = await record(true);

    const diff = await btrfly(['diff', `${TAG}@${first}`, TAG, '--archive', archive]);
    expect(diff.code).toBe(0);
    expect(diff.stdout.split('\n').filter((l) => /^(upgraded|downgraded|added|removed|changed|source) /.test(l))).toEqual(['upgraded   btrfly-demo-util 1.0.0 → 1.1.0 (pypi)']);
    const json = JSON.parse((await btrfly(['diff', `${TAG}@${first}`, TAG, '--format', 'json', '--archive', archive])).stdout) as { packages: unknown[] };
    expect(json.packages).toEqual([expect.objectContaining({ change: 'upgraded', ecosystem: 'pypi', name: 'btrfly-demo-util', from: '1.0.0', to: '1.1.0' })]);

    const sbom = JSON.parse((await btrfly(['sbom', TAG, '--format', 'spdx', '--archive', archive])).stdout) as {
      packages: Array<{ versionInfo?: string; name: string; externalRefs?: Array<{ referenceLocator: string }> }>;
    };
    const purls = sbom.packages.flatMap((p) => (p.externalRefs ?? []).map((r) => r.referenceLocator)).filter((l) => l.startsWith('pkg:pypi/'));
    expect(purls).toContainEqual(expect.stringMatching(/^pkg:pypi\/btrfly-demo-util@1\.1\.0\?/));
    expect(purls).toContainEqual(expect.stringMatching(/^pkg:pypi\/btrfly-demo-app@1\.0\.0\?/));
    expect(purls.filter((p) => p.includes('btrfly-demo-util@1.0.0'))).toEqual([]);

    const lock = await runOk('git', ['--git-dir', archive, 'diff', first, second, '--', 'packages.lock']);
    const changed = lock.stdout.split('\n').filter((l) => /^[-+](?![-+])/.test(l));
    expect(changed.length).toBeGreaterThanOrEqual(2);
    for (const l of changed) expect(l).toMatch(/^-pypi btrfly-demo-util 1\.0\.0 |^\+pypi btrfly-demo-util 1\.1\.0 /);
  }, 240_000);
});
