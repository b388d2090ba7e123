/**
 * SIGINT, SIGTERM or SIGHUP during a push stops it at a safe point, as a pull does: git and its
 * transport are stopped, the push's local staging refs are dropped, the remote's tag is as it
 * was (never half pushed), one line says so and what to do, and the exit status is 128 + the
 * signal's number. The next push goes through and drops the staging ref the stopped one left on
 * the remote. The remote is a real bare repository reached through an "ssh" of the test's own
 * that runs git's command on this machine; the tag's own push (after one push of bodies under
 * the remote's size limit) waits on a FIFO until the signal ends it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixtureArchive, runCli, spawnCli, tmpDir } from '../helpers';

const git = (dir: string, ...args: string[]): string => execFileSync('git', ['--git-dir', dir, ...args], { encoding: 'utf8' });
const refs = (dir: string, prefix: string): string[] => git(dir, 'for-each-ref', '--format=%(refname)', prefix).split('\n').filter(Boolean);

/**
 * An ssh command that runs the command it is given on this machine. Its `wait`-th receive-pack
 * first writes to the FIFO `arrived` and then waits to read the FIFO `go`.
 */
function localSsh(dir: string, wait: number): string {
  execFileSync('mkfifo', [join(dir, 'arrived'), join(dir, 'go')]);
  const script = join(dir, 'ssh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      // git asks "-G" to learn whether this is OpenSSH: it is not, so git gives it only the host and the command.
      'for a; do [ "$a" = -G ] && exit 1; done',
      'for last; do :; done',
      'case "$last" in git-receive-pack*)',
      `  n=$(( $(cat '${dir}/count' 2>/dev/null || echo 0) + 1 )); echo $n > '${dir}/count'`,
      `  if [ "$n" = ${wait} ]; then echo waiting > '${dir}/arrived'; read _ < '${dir}/go'; fi;;`,
      'esac',
      'exec sh -c "$last"',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  return script;
}

test.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const)('%s during a push in parts: exit %d, no staging ref left here, the remote tag as it was; the next push completes', async (sig, code) => {
  const archive = copyFixtureArchive();
  const dir = tmpDir('btrfly-push-stop-');
  const hub = join(dir, 'hub.git');
  execFileSync('git', ['init', '-q', '--bare', hub]);
  // The second receive-pack is the tag's own push: the first carried one of example/large's two 8 MiB parts.
  const env = { GIT_SSH_COMMAND: localSsh(dir, 2) };
  expect((await runCli(['remote', 'add', 'hub', `ssh://here${hub}`, '--max-push', '10m', '--archive', archive])).code).toBe(0);
  // No bound: only the signal ends the wait.
  git(archive, 'config', 'btrfly.transferTimeout', '0');

  const push = spawnCli(['push', 'hub', 'example/large', '--archive', archive], { env });
  await readFile(join(dir, 'arrived'));
  expect(refs(hub, 'refs/btrfly/staging/')).toHaveLength(1);
  expect(refs(archive, 'refs/btrfly/pushing/')).toHaveLength(1);
  push.child.kill(sig);
  const r = await push.exited;
  expect(r.stderr).toBe(`btrfly: interrupted by ${sig}: each tag on remote hub is as it was or wholly pushed, none half; run "btrfly push hub example/large" again\n`);
  expect(r.code).toBe(code);
  expect(refs(archive, 'refs/btrfly/')).toEqual([]);
  expect(refs(hub, 'refs/heads/')).toEqual([]);

  const again = await runCli(['push', 'hub', 'example/large', '--archive', archive], { env, timeoutMs: 120_000 });
  // The part the stopped push left on the remote is not sent again: what is left fits one push.
  expect(again.stderr).toBe(`example/large: pushed, new tag at ${git(archive, 'rev-parse', 'example/large').slice(0, 12)}\n`);
  expect(again.code).toBe(0);
  expect(git(hub, 'rev-parse', 'example/large')).toBe(git(archive, 'rev-parse', 'example/large'));
  expect(refs(hub, 'refs/btrfly/')).toEqual([]);
  expect(refs(archive, 'refs/btrfly/')).toEqual([]);
}, 180_000);
