/**
 * A tag bigger than what a remote takes in one push still gets there (issue 18.1). Real git
 * refuses a pack over `receive.maxInputSize` ("pack exceeds maximum allowed size (48.00 MiB)"),
 * on a file remote and behind `git http-backend` over HTTPS; btrfly sends the bodies first in
 * pushes under that limit, then the tag, and leaves no staging ref behind. A second archive
 * pulls the tag and plays it back with the origin gone. (A remote that names no size is
 * covered by the unit test of the limit's arithmetic.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ENTRY, cliEnv, createNetns, hasNetns, runCli, runOk, startGitServer, startOrigin, testCa, tmpDir, type Netns, type RunResult } from '../helpers';
import { describeWhen } from '../helpers/when';

const MIB = 1024 * 1024;
const describeNetns = describeWhen(hasNetns() ? undefined : 'network namespaces (root and iproute2)');

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** `count` random files of `mib` MiB each under `<dir>/pkg/`. */
function makeFiles(count: number, mib: number): { dir: string; names: string[] } {
  const dir = tmpDir();
  mkdirSync(join(dir, 'pkg'));
  const names = Array.from({ length: count }, (_, i) => `part-${i}.bin`);
  for (const n of names) writeFileSync(join(dir, 'pkg', n), randomBytes(mib * MIB));
  return { dir, names };
}

/** A build that downloads every file (into `out` when given). */
function buildScript(base: string, names: string[], out?: string): string {
  const script = join(tmpDir(), 'build.sh');
  writeFileSync(script, ['set -eu', ...names.map((n) => `curl -sSf -o "${out ? join(out, n) : '/dev/null'}" "${base}/files/pkg/${n}"`), ''].join('\n'));
  return script;
}

const staging = (gitDir: string) => runOk('git', ['--git-dir', gitDir, 'for-each-ref', 'refs/btrfly/']).then((r) => r.stdout.trim());

describe('push to a file remote that takes at most 48 MiB a push', () => {
  it('sends a tag of 120 MiB of bodies in parts, learns the limit, and the pulled tag plays back offline', async () => {
    const { dir, names } = makeFiles(3, 40);
    const origin = await startOrigin({ dir });
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const a = join(tmpDir(), 'a');
    const b = join(tmpDir(), 'b');
    const hub = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', hub]);
    await runOk('git', ['--git-dir', hub, 'config', 'receive.maxInputSize', '48m']);

    const rec = await runCli(['run', '--record', '--tag=big', '--archive', a, '--resolve', `origin.test:${origin.host}`, '--', 'bash', buildScript(base, names)], { timeoutMs: 300_000 });
    expect(rec.stderr).toContain('recorded tag "big"');
    await origin.close();

    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', a])).code).toBe(0);
    const push = await runCli(['push', 'hub', '--archive', a], { timeoutMs: 300_000 });
    expect(push.stderr).toMatch(/^big: pushed, new tag/m);
    expect(push.stderr).toMatch(/^remote hub takes pushes of at most \d+ MiB: sent in \d+ pushes under (the limit it named|a limit learned by trying), kept for next time/m);
    expect(push.code).toBe(0);
    const learned = Number((await runOk('git', ['--git-dir', a, 'config', 'remote.hub.btrflyMaxPush'])).stdout.trim());
    expect(learned).toBeLessThanOrEqual(48 * MIB);
    expect(learned).toBeGreaterThanOrEqual(8 * MIB);
    expect(await staging(hub)).toBe('');
    expect(await staging(a)).toBe('');
    expect((await runOk('git', ['--git-dir', hub, 'rev-parse', 'big'])).stdout).toBe((await runOk('git', ['--git-dir', a, 'rev-parse', 'big'])).stdout);

    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', b])).code).toBe(0);
    const pull = await runCli(['pull', 'hub', '--archive', b], { timeoutMs: 300_000 });
    expect(pull.stderr).toMatch(/^big: pulled, new tag/m);
    const out = tmpDir();
    const play = await runCli(['run', '--playback', '--tag=big', '--archive', b, '--resolve', `origin.test:${origin.host}`, '--', 'bash', buildScript(base, names, out)], { timeoutMs: 300_000 });
    expect(play.code).toBe(0);
    for (const n of names) expect(sha256(join(out, n))).toBe(sha256(join(dir, 'pkg', n)));
  }, 600_000);

  it('says in one line when one object alone is over the limit set for a remote', async () => {
    const { dir, names } = makeFiles(1, 12);
    const origin = await startOrigin({ dir });
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const a = join(tmpDir(), 'a');
    const hub = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', hub]);
    await runOk('git', ['--git-dir', hub, 'config', 'receive.maxInputSize', '4m']);
    await runCli(['run', '--record', '--tag=one', '--archive', a, '--resolve', `origin.test:${origin.host}`, '--', 'bash', buildScript(base, names)]);
    await origin.close();
    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', a, '--max-push', '1x'])).stderr).toBe(
      'btrfly: "1x" is not a usable push size: give at least 1 MiB, e.g. "2g", "500m" or "48MiB"\n',
    );
    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', a, '--max-push', '4m'])).stderr).toBe(`added remote hub: ${hub}, pushes of at most 4m\n`);
    const push = await runCli(['push', 'hub', '--archive', a]);
    expect(push.code).toBe(1);
    expect(push.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^btrfly: push to remote hub cannot go under its size limit of 4\.0 MiB: one object alone is \d\.\d MiB; raise the remote's limit/),
    ]);
    expect(await staging(hub)).toBe('');
    expect((await runOk('git', ['--git-dir', hub, 'for-each-ref'])).stdout.trim()).toBe('');
  }, 300_000);
});

/** `btrfly ARGS` run inside `ns`. */
function btrflyIn(ns: Netns, cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return ns.exec(process.execPath, [CLI_ENTRY, ...args], { cwd, env: cliEnv(env), timeoutMs: 300_000 });
}

describeNetns('push over HTTPS to git http-backend that takes at most 20 MiB a push', () => {
  it('sends the tag in parts under the learned limit', async () => {
    const ns = await createNetns();
    const { dir, names } = makeFiles(3, 12);
    const origin = await startOrigin({ dir, netns: ns, host: '127.0.0.1' });
    const root = tmpDir('btrfly-git-root-');
    const hubDir = join(root, 'deps.git');
    await runOk('git', ['init', '-q', '--bare', hubDir]);
    await runOk('git', ['--git-dir', hubDir, 'config', 'receive.maxInputSize', '20m']);
    await runOk('git', ['--git-dir', hubDir, 'config', 'http.receivepack', 'true']);
    const server = await startGitServer(ns, '127.0.0.1', root);
    const hubUrl = `https://127.0.0.1:${server.port}/deps.git`;
    const cwd = tmpDir('btrfly-host-');
    const git = { GIT_SSL_CAINFO: testCa().caPath };
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    const rec = await btrflyIn(ns, cwd, ['run', '--record', '--tag=mid', '--resolve', 'origin.test:127.0.0.1', '--', 'bash', buildScript(base, names)]);
    expect(rec.stderr).toContain('recorded tag "mid"');
    await origin.close();

    expect((await btrflyIn(ns, cwd, ['remote', 'add', 'hub', hubUrl])).code).toBe(0);
    const push = await btrflyIn(ns, cwd, ['push', 'hub'], git);
    expect(push.stderr).toMatch(/^mid: pushed, new tag/m);
    expect(push.stderr).toMatch(/^remote hub takes pushes of at most \d+ MiB: sent in \d+ pushes/m);
    expect(push.code).toBe(0);
    expect(await staging(hubDir)).toBe('');
    expect((await runOk('git', ['--git-dir', hubDir, 'rev-parse', 'mid'])).stdout).toBe((await runOk('git', ['--git-dir', join(cwd, '.btrfly'), 'rev-parse', 'mid'])).stdout);
    const fsck = await runOk('git', ['--git-dir', hubDir, 'fsck', '--connectivity-only', 'mid']);
    expect(fsck.stderr).not.toMatch(/missing/);
  }, 600_000);
});
