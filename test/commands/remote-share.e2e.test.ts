/**
 * Sharing tags through a git remote on a path: record a build, push it, pull it into another
 * archive and play it back there with the origin gone; a tag moved on both sides; a body
 * edited in the remote refused at pull; git's progress on request, quiet otherwise.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ENTRY, cliEnv, cliWorkDir, gitFsck, run, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const DEPS = ['alpha-1.0.0', 'beta-2.3.1', 'gamma-0.9.0'];

function git(gitDir: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], { encoding: 'utf8', env: { ...process.env, ...env } }).trim();
}

describe('btrfly push / pull through a remote on a path', () => {
  let origin: Origin;
  let files: string;
  let upstream: string[];
  let hub: string;
  const a = join(tmpDir(), 'host-a', '.btrfly');
  const b = join(tmpDir(), 'host-b', '.btrfly');

  beforeAll(async () => {
    files = tmpDir();
    mkdirSync(join(files, 'pkg'));
    // Random bytes: each body is stored raw, one part, so an edit below is a plain byte flip.
    for (const dep of [...DEPS, 'gamma-0.9.1', 'delta-1.0.0']) writeFileSync(join(files, 'pkg', `${dep}.tgz`), randomBytes(96 * 1024));
    origin = await startOrigin({ https: true, dir: files });
    upstream = ['--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`];
    hub = join(tmpDir(), 'hub.git');
    execFileSync('git', ['init', '-q', '--bare', hub]);
  });

  afterAll(async () => {
    await origin.close();
  });

  function script(deps: string[], out?: string): string {
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const path = join(tmpDir(), 'build.sh');
    const lines = deps.map((d) => `curl -sSf -o ${out ? `"${out}/${d}.tgz"` : '/dev/null'} "${base}/files/pkg/${d}.tgz"`);
    writeFileSync(path, ['set -eu', ...lines, ''].join('\n'));
    return path;
  }

  async function record(archive: string, deps: string[]): Promise<void> {
    const r = await runCli(['run', '--record', '--tag=team/app', '--archive', archive, ...upstream, '--', 'bash', script(deps)], { timeoutMs: 60_000 });
    expect(r.stderr).toContain('recorded tag "team/app"');
    expect(r.code).toBe(0);
  }

  it('manages remotes: add (a relative path made absolute), list, refuse a duplicate, remove', async () => {
    const archive = join(tmpDir(), 'remotes', '.btrfly');
    const cwd = join(archive, '..');
    mkdirSync(cwd, { recursive: true });
    expect((await runCli(['remote', 'add', 'hub', '../hub.git'], { cwd })).code).toBe(0);
    const list = await runCli(['remote', 'list', '--json'], { cwd });
    expect(JSON.parse(list.stdout)).toEqual([{ name: 'hub', url: join(cwd, '..', 'hub.git') }]);
    const dup = await runCli(['remote', 'add', 'hub', '/elsewhere'], { cwd });
    expect(dup.code).toBe(1);
    expect(dup.stderr.trim().split('\n')).toEqual(['btrfly: remote "hub" already exists in archive .btrfly: remove it first with "btrfly remote remove hub"']);
    expect((await runCli(['remote', 'add', 'https', 'https://u@git.test/x.git'], { cwd })).code).toBe(0);
    expect((await runCli(['remote', 'list'], { cwd })).stdout).toContain('https://u@git.test/x.git');
    expect((await runCli(['remote', 'remove', 'hub'], { cwd })).code).toBe(0);
    const gone = await runCli(['push', 'hub'], { cwd });
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe('btrfly: no remote "hub" in archive .btrfly: add it with "btrfly remote add hub URL"');
  });

  it('pushes a recorded tag, pulls it into another archive, and plays it back there with the origin gone', async () => {
    await record(a, DEPS);
    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', a])).code).toBe(0);
    const push = await runCli(['push', 'hub', '--archive', a]);
    expect(push.stderr).toMatch(/^team\/app: pushed, new tag at [0-9a-f]{12}$/m);
    expect(push.code).toBe(0);
    // Not a terminal and no --progress: nothing but the summary.
    expect(push.stderr.trim().split('\n')).toHaveLength(1);

    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', b])).code).toBe(0);
    const pull = await runCli(['pull', 'hub', 'team/app', '--archive', b, '--progress']);
    expect(pull.code).toBe(0);
    expect(pull.stderr).toMatch(/Receiving objects: 100%/); // git's own progress, passed through
    expect(pull.stderr).toMatch(/^team\/app: pulled, new tag at [0-9a-f]{12}$/m);
    expect(git(b, ['rev-parse', 'team/app'])).toBe(git(a, ['rev-parse', 'team/app']));
    expect(git(b, ['for-each-ref', 'refs/btrfly/'])).toBe(''); // quarantine refs are gone
    await gitFsck(b);

    const again = await runCli(['pull', 'hub', '--archive', b]);
    expect(again.stderr.trim()).toBe('team/app: up to date');

    await origin.close();
    const out = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=team/app', '--archive', b, '--', 'bash', script(DEPS, out)], { timeoutMs: 60_000 });
    expect(play.code).toBe(0);
    for (const d of DEPS) {
      const want = createHash('sha256').update(readFileSync(join(files, 'pkg', `${d}.tgz`))).digest('hex');
      expect(createHash('sha256').update(readFileSync(join(out, `${d}.tgz`))).digest('hex')).toBe(want);
    }
    origin = await startOrigin({ https: true, dir: files });
    upstream = ['--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`];
  });

  it('refuses a tag re-recorded on both sides, in one line, unless --force', async () => {
    await record(a, [...DEPS, 'delta-1.0.0']);
    expect((await runCli(['push', 'hub', 'team/app', '--archive', a])).code).toBe(0);
    await record(b, DEPS.map((d) => (d === 'gamma-0.9.0' ? 'gamma-0.9.1' : d)));
    const mine = git(b, ['rev-parse', 'team/app']);

    const pull = await runCli(['pull', 'hub', '--archive', b]);
    expect(pull.code).toBe(1);
    expect(pull.stderr.trim().split('\n')).toHaveLength(1);
    expect(pull.stderr).toMatch(/^btrfly: tag "team\/app" has new recordings both here and on remote hub: pass --force/);
    expect(git(b, ['rev-parse', 'team/app'])).toBe(mine);

    const push = await runCli(['push', 'hub', '--archive', b]);
    expect(push.code).toBe(1);
    expect(push.stderr.trim()).toBe(
      'btrfly: tag "team/app" has recordings on remote hub that are not here: pull it first ("btrfly pull hub team/app"), or pass --force to replace it there',
    );

    const forced = await runCli(['pull', 'hub', '--force', '--archive', b]);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(/^team\/app: pulled, replaced [0-9a-f]{12} with [0-9a-f]{12} \(forced\)$/m);
    expect(git(b, ['rev-parse', 'team/app'])).toBe(git(a, ['rev-parse', 'team/app']));
  });

  it('carries a review: a branch from the tag re-recorded, pushed, diffed on the host, merged, pulled', async () => {
    expect((await runCli(['cp', 'team/app', 'review/bump', '--archive', b])).code).toBe(0);
    const r = await runCli(['run', '--record', '--tag=review/bump', '--archive', b, ...upstream, '--', 'bash', script([...DEPS.map((d) => (d === 'gamma-0.9.0' ? 'gamma-0.9.1' : d)), 'delta-1.0.0'])], {
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(0);
    // On a terminal (script(1) gives it one), git's own progress shows: objects, bytes, rate.
    const cli = [process.execPath, CLI_ENTRY, 'push', 'hub', 'review/bump', '--archive', b].map((w) => `'${w}'`).join(' ');
    const tty = await run('script', ['-qec', cli, '/dev/null'], { cwd: cliWorkDir(), env: cliEnv() });
    expect(tty.code).toBe(0);
    expect(tty.stdout).toMatch(/Writing objects: 100% \(\d+\/\d+\), [\d.]+ KiB \| [\d.]+ [KMG]iB\/s, done\./);
    expect(tty.stdout).toMatch(/^review\/bump: pushed, new tag at [0-9a-f]{12}\r?$/m);

    // What the git host's pull request shows: the bumped dependency in manifest.json.
    const patch = git(hub, ['diff', 'team/app', 'review/bump', '--', 'manifest.json']);
    expect(patch).toMatch(/^-.*gamma-0\.9\.0\.tgz/m);
    expect(patch).toMatch(/^\+.*gamma-0\.9\.1\.tgz/m);
    const comment = await runCli(['diff', 'team/app', 'review/bump', '--format', 'markdown', '--archive', b]);
    expect(comment.stdout).toMatch(/^\| added \| GET `https:\/\/origin\.test:\d+\/files\/pkg\/gamma-0\.9\.1\.tgz` \| 200 \|/m);
    expect(comment.stdout).toMatch(/^\| removed \| GET `https:\/\/origin\.test:\d+\/files\/pkg\/gamma-0\.9\.0\.tgz` \| 200 \|/m);

    // The host merges by fast-forward; host A takes the reviewed recording.
    const reviewed = git(hub, ['rev-parse', 'review/bump']);
    git(hub, ['update-ref', 'refs/heads/team/app', reviewed, git(hub, ['rev-parse', 'team/app'])]);
    const pull = await runCli(['pull', 'hub', 'team/app', '--archive', a]);
    expect(pull.stderr).toMatch(/^team\/app: pulled, [0-9a-f]{12}\.\.[0-9a-f]{12}$/m);
    expect(git(a, ['rev-parse', 'team/app'])).toBe(reviewed);
  });

  it('refuses at pull a body edited in the remote, leaving the tag as it was', async () => {
    const before = git(b, ['rev-parse', 'team/app']);
    // An edit on the remote: one byte of one body part flipped, committed as a new recording.
    const head = git(hub, ['rev-parse', 'team/app']);
    const part = git(hub, ['ls-tree', '-r', '--name-only', head, 'bodies/']).split('\n')[0];
    const bytes = execFileSync('git', ['--git-dir', hub, 'cat-file', 'blob', `${head}:${part}`]);
    bytes[100] ^= 0xff;
    const evil = execFileSync('git', ['--git-dir', hub, 'hash-object', '-w', '--stdin'], { input: bytes, encoding: 'utf8' }).trim();
    const index = { GIT_INDEX_FILE: join(tmpDir(), 'index') };
    git(hub, ['read-tree', head], index);
    git(hub, ['update-index', '--cacheinfo', `100644,${evil},${part}`], index);
    const tree = git(hub, ['write-tree'], index);
    const edited = git(hub, ['commit-tree', tree, '-p', head, '-m', 'nothing to see'], { ...index, GIT_AUTHOR_NAME: 'x', GIT_AUTHOR_EMAIL: 'x@x', GIT_COMMITTER_NAME: 'x', GIT_COMMITTER_EMAIL: 'x@x' });
    git(hub, ['update-ref', 'refs/heads/team/app', edited, head]);

    const pull = await runCli(['pull', 'hub', 'team/app', '--archive', b]);
    expect(pull.code).toBe(1);
    const sha = part.split('/')[2];
    expect(pull.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^btrfly: pull of tag "team/app" from remote hub refused, the tag here is unchanged: recording ${edited.slice(0, 12)}: body ${sha} is corrupt: it reads back with SHA-256 [0-9a-f]{64}`)),
    ]);
    expect(git(b, ['rev-parse', 'team/app'])).toBe(before);
    expect(git(b, ['for-each-ref', 'refs/btrfly/'])).toBe('');
    expect((await runCli(['verify', '--archive', b])).code).toBe(0);
  });
});
