import { mkdtempSync, rmSync } from 'node:fs';
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
