import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';

/**
 * Creates a fresh empty directory under the system temp dir and returns its path. It is
 * removed at the end of the test file (set `BTRFLY_KEEP_TMP=1` to keep it for a post-mortem).
 * @param prefix a readable prefix for the directory name
 */
export function tmpDir(prefix = 'btrfly-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (!process.env.BTRFLY_KEEP_TMP) {
    registerCleanup(() => rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}

/**
 * A uid with no passwd entry, as a container started with `--user 4242` runs: not 65534, the
 * overflow uid an unmapped owner shows as. Tests run btrfly as it with `runCli(..., { uid })`.
 */
export const NO_PASSWD_UID = 4242;

/** A fresh temp directory ({@link tmpDir}) owned by {@link NO_PASSWD_UID}. */
export function userDir(prefix?: string): string {
  const dir = tmpDir(prefix);
  chownSync(dir, NO_PASSWD_UID, NO_PASSWD_UID);
  return dir;
}
