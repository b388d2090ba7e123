/**
 * Where a command's output goes and where it runs from, as a CI step may leave them: stdout to
 * a full disk (`btrfly tags > file`, here /dev/full) ended in a stack trace from oclif's stdout
 * listener; a working directory removed under the shell read as "not a btrfly archive" for an
 * archive named by its absolute path. Each is now one line and a non-zero exit.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ENTRY, cliEnv, run, runCli, tmpDir } from '../helpers';
import { testWhen } from '../helpers/when';

const archive = join(tmpDir('btrfly-stdout-cwd-'), '.btrfly');

/** `btrfly ARGS` through sh, with `redirect` applied (`> /dev/full`) and `before` run first. */
const throughShell = (args: string[], redirect: string, before = ''): ReturnType<typeof run> =>
  run('sh', ['-c', `${before} exec "$@" ${redirect}`, 'sh', process.execPath, CLI_ENTRY, ...args], { cwd: tmpDir('btrfly-cwd-'), env: cliEnv() });

describe('stdout and the working directory of a CI step', () => {
  beforeAll(async () => {
    expect((await runCli(['run', '--record', '--tag=t', '--archive', archive, '--', 'true'])).code).toBe(0);
  });

  testWhen(existsSync('/dev/full') ? undefined : '/dev/full')('stdout on a full disk: one line and exit 1, with and without --json', async () => {
    for (const args of [['tags'], ['tags', '--json']]) {
      const r = await throughShell([...args, '--archive', archive], '> /dev/full');
      expect(r.stderr).toBe('btrfly: the output could not be written to stdout: no space left on device (ENOSPC): free space where it goes, or send it elsewhere\n');
      expect(r.code).toBe(1);
    }
  });

  it('a working directory removed under the shell: one line that says so, exit 2', async () => {
    const r = await throughShell(['tags', '--archive', archive], '', 'mkdir gone && cd gone && rmdir ../gone &&');
    expect(r.stderr).toMatch(/^(WARNING: current directory does not exist\n)?btrfly: the current directory no longer exists \(it was removed while the shell was in it\): cd to a directory that exists and run btrfly again\n$/);
    expect(r.code).toBe(2);
  });
});
