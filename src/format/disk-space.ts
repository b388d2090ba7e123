/**
 * A full disk under the archive, told as the user needs it: which mount point and how much to
 * free (`no space left on /mnt/ci: free 25 MiB or move the archive`).
 */
import { readFile, statfs } from 'node:fs/promises';
import { BtrflyError, oneLine } from '../errors';
import { isNoSpace, mibToFree, mountPointOf, noSpaceError } from './lifecycle';

/**
 * The error for a storage failure under `dir`: NO_SPACE naming the mount point and the MiB to
 * free when the disk is full (`needed`: the bytes the failed write wanted, when known), else
 * STORAGE with the cause's one line. Either way the tag was left as it was.
 */
export async function storageFailure(dir: string, cause: unknown, needed = 0): Promise<BtrflyError> {
  if (!isNoSpace(cause)) {
    if (cause instanceof BtrflyError && (cause.code === 'STORAGE' || cause.code === 'NO_SPACE')) return cause;
    return new BtrflyError('STORAGE', `storing a response failed: ${oneLine(cause)}: the tag is unchanged; check the archive's disk and run "btrfly verify"`, { cause });
  }
  if (cause instanceof BtrflyError && cause.code === 'NO_SPACE') return cause;
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const mount = mountPointOf(dir, mountinfo);
  const available = await statfs(dir).then((s) => s.bavail * s.bsize, () => 0);
  return noSpaceError(mount, mibToFree(needed, available), cause);
}
