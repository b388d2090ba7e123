import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './cli';
import { run } from './proc';
import { tmpDir } from './tmp';

/** The example archive at the project root: the fixture of format compatibility. */
export const FIXTURE_ARCHIVE = join(PROJECT_ROOT, '.btrfly');

/**
 * Copies the example archive `.btrfly/` into a fresh temp dir and returns the copy's
 * path (`<tmp>/.btrfly`), so a test may write to it freely. Removed at the end of the file.
 */
export function copyFixtureArchive(source = FIXTURE_ARCHIVE): string {
  if (!existsSync(source)) {
    throw new Error(`no example archive at ${source}: record one first (see README, "example archive")`);
  }
  const target = join(tmpDir('btrfly-archive-'), '.btrfly');
  cpSync(source, target, { recursive: true, preserveTimestamps: true });
  return target;
}

/**
 * Runs `git fsck --strict` on a (bare) repository and throws with its output unless it
 * is clean: exit 0 and no error or warning line. Dangling objects are allowed (an
 * interrupted recording may leave some); missing, broken or malformed ones are not.
 * Returns fsck's output.
 */
export async function gitFsck(gitDir: string): Promise<string> {
  const result = await run('git', ['--git-dir', gitDir, 'fsck', '--strict', '--full', '--no-dangling', '--no-progress'], {
    timeoutMs: 300_000,
  });
  const output = `${result.stdout}${result.stderr}`;
  const problems = output.split('\n').filter((line) => /^(error|warning|missing|broken|bad)/i.test(line.trim()));
  if (result.code !== 0 || problems.length > 0) {
    throw new Error(`git fsck --strict of ${gitDir} is not clean (status ${result.code}):\n${output.trim()}`);
  }
  return output;
}
