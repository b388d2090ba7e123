/**
 * Real builds under `btrfly run --isolate` (issue 14): `git clone` over HTTPS from a real
 * `git http-backend` origin on a non-standard port, with every proxy variable removed so the
 * namespace's transparent path carries it; pip (proxy variables removed too) and npm (through the
 * proxy variables btrfly sets, so through the proxy port handed out of the namespace) against the
 * package origins of test/fixtures/package-index.js. Each is recorded under --isolate from an
 * origin on loopback, the origin is stopped, and the build plays back under --isolate with the same
 * commit and tree ids, or the same installed files byte for byte, exit 0 and no miss.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_TOOLS, WITHOUT_NPM_SETTINGS, gitFsck, makeGitRepo, runCli, snapshot, startGitServer, startOrigin, stopChild, testCa, tmpDir, type RunResult } from '../helpers';
import { testWhen } from '../helpers/when';

/** Proxy variables a client that ignores them would never see: `env -u` each. */
const NO_PROXY_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy'].map((v) => `-u ${v}`).join(' ');

function isolated(mode: 'record' | 'playback', tag: string, archive: string, flags: string[], script: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runCli(['run', '--isolate', `--${mode}`, `--tag=${tag}`, '--archive', archive, ...flags, '--', 'sh', '-c', script], {
    env: { ...WITHOUT_NPM_SETTINGS, ...env },
    timeoutMs: 150_000,
  });
}

describe('btrfly run --isolate: real builds', () => {
  let archive: string;

  beforeAll(() => {
    archive = join(tmpDir('btrfly-isolate-builds-'), '.btrfly');
  });

  it('git clone over HTTPS, told of no proxy, is recorded through the namespace and played back with the origin stopped: same commit and tree', async () => {
    const repos = tmpDir();
    const head = await makeGitRepo(repos);
    const git = await startGitServer(undefined, '127.0.0.1', repos);
    // No proxy for git, by variable or by config: only the transparent path can carry the clone.
    const clone = (out: string) =>
      [
        'set -e',
        `env ${NO_PROXY_VARS} GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null git clone -q "https://git.test:${git.port}/proj.git" "${out}/clone"`,
        `git -C "${out}/clone" rev-parse HEAD "HEAD^{tree}" > "${out}/ids"`,
        `(cd "${out}/clone" && sha256sum blob.bin file*.txt) > "${out}/sums"`,
      ].join('\n');
    const recorded = tmpDir();
    const rec = await isolated('record', 'git', archive, ['--upstream-ca', testCa().caPath, '--resolve', 'git.test:127.0.0.1'], clone(recorded));
    expect(rec.stderr).toMatch(/recorded tag "git"/);
    expect(rec.code).toBe(0);
    const ids = readFileSync(join(recorded, 'ids'), 'utf8').trim().split('\n');
    expect(ids[0]).toBe(head);
    expect((await git.stats()).total).toBeGreaterThanOrEqual(2);
    await stopChild(git.child);

    const played = tmpDir();
    const play = await isolated('playback', 'git', archive, [], clone(played));
    expect(play.stderr).toMatch(/ 0 misses/);
    expect(play.code).toBe(0);
    expect(readFileSync(join(played, 'ids'), 'utf8').trim().split('\n')).toEqual(ids);
    expect(readFileSync(join(played, 'sums'), 'utf8')).toBe(readFileSync(join(recorded, 'sums'), 'utf8'));
    await gitFsck(archive);
  });

  describe.each(BUILD_TOOLS.map((tool) => [tool.name, tool] as const))('%s', (name, tool) => {
    const maybe = testWhen(tool.missing());
    // npm through the proxy variables btrfly sets; pip as a client that ignores them.
    const prefix = name === 'npm' ? '' : `env ${NO_PROXY_VARS} `;

    maybe('is recorded under --isolate, then played back offline with the same installed files', async () => {
      const origin = await startOrigin({ https: true, kind: tool.kind, names: [tool.host], spawn: true });
      const base = origin.urlFor('/', tool.host).replace(/\/$/, '');
      const tag = `${name}-isolated`;
      const build = (dir: string) => {
        tool.writeProject(dir);
        return `${prefix}sh -c ${JSON.stringify(tool.command(dir, base))}`;
      };
      const recordedDir = tmpDir();
      const rec = await isolated('record', tag, archive, ['--upstream-ca', origin.caPath!, '--resolve', `${tool.host}:127.0.0.1`], build(recordedDir));
      expect(rec.stderr).toMatch(new RegExp(`recorded tag "${tag}"`));
      expect(rec.code).toBe(0);
      expect((await origin.stats()).total).toBeGreaterThan(2);
      const recorded = await snapshot(tool.resultDir(recordedDir));
      expect(Object.keys(recorded).length).toBeGreaterThan(3);
      await origin.close();

      const playedDir = tmpDir();
      const play = await isolated('playback', tag, archive, [], build(playedDir));
      expect(play.stderr).toMatch(/ 0 misses/);
      expect(play.code).toBe(0);
      expect(await snapshot(tool.resultDir(playedDir))).toEqual(recorded);
    });
  });
});
