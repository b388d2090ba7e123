/**
 * A push the remote refuses for its own reasons (a hook that declines it, a quota) says so in
 * git's and the remote's words, not "pull it first", which is right only when the remote holds
 * recordings this archive lacks.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

function git(gitDir: string, args: string[]): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], { encoding: 'utf8' }).trim();
}

describe('btrfly push refused by the remote', () => {
  const archive = join(tmpDir(), 'archive');
  const hub = join(tmpDir(), 'hub.git');

  beforeAll(async () => {
    execFileSync('git', ['init', '-q', '--bare', hub]);
    expect((await runCli(['run', '--record', '--tag=app', '--archive', archive, '--', 'true'])).code).toBe(0);
    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', archive])).code).toBe(0);
  });

  it("passes on the remote's own reason when a hook declines the push", async () => {
    const hook = join(hub, 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\necho "quota exceeded: this hub holds at most 1 GiB" >&2\nexit 1\n');
    chmodSync(hook, 0o755);
    const r = await runCli(['push', 'hub', 'app', '--archive', archive]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'btrfly: push of tag "app" to remote hub was refused by the remote: pre-receive hook declined; the remote said: quota exceeded: this hub holds at most 1 GiB: the tag here is unchanged; fix the cause on the remote\'s side, then push again\n',
    );
    expect(git(hub, ['for-each-ref'])).toBe('');
  });

  it('still says "pull it first" when the remote has recordings this archive lacks', async () => {
    execFileSync('rm', ['-f', join(hub, 'hooks', 'pre-receive')]);
    expect((await runCli(['push', 'hub', 'app', '--archive', archive])).code).toBe(0);
    // Another archive re-records the tag and pushes it: the hub moves on without us.
    const other = join(tmpDir(), 'other');
    expect((await runCli(['remote', 'add', 'hub', hub, '--archive', other])).code).toBe(0);
    expect((await runCli(['run', '--record', '--tag=app', '--archive', other, '--', 'true'])).code).toBe(0);
    expect((await runCli(['push', 'hub', 'app', '--force', '--archive', other])).code).toBe(0);
    expect((await runCli(['run', '--record', '--tag=app', '--archive', archive, '--', 'true'])).code).toBe(0);
    const r = await runCli(['push', 'hub', 'app', '--archive', archive]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('btrfly: tag "app" has recordings on remote hub that are not here: pull it first ("btrfly pull hub app"), or pass --force to replace it there\n');
  });
});
