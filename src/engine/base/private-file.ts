import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { BtrflyError } from '../../errors';

/**
 * Refuses a secret file that group or others can read (the CA key, the token store): whoever
 * reads it can intercept TLS or learn which tokens exist. One line, telling to chmod 600.
 * @param what how the user knows the file, e.g. `CA key`
 * @throws BtrflyError PERMISSION
 */
export function checkPrivateMode(file: string, stat: Stats, what: string): Stats {
  const mode = stat.mode & 0o777;
  if (process.platform !== 'win32' && mode & 0o077) {
    throw new BtrflyError('PERMISSION', `${what} ${file} is readable by group or others (mode ${mode.toString(8).padStart(4, '0')}): run "chmod 600 ${file}"`, {
      data: { file, mode: mode.toString(8) },
    });
  }
  return stat;
}

/** {@link checkPrivateMode} on an open file (the one about to be read, not a name that may change). */
export async function checkPrivateHandle(handle: FileHandle, file: string, what: string): Promise<Stats> {
  return checkPrivateMode(file, await handle.stat(), what);
}

/**
 * Replaces `file` with `text` atomically and privately: a new file (0600, created exclusively
 * under a random name beside it, so no one else's file or symlink is written through), flushed
 * to disk, then renamed over `file`. A failure removes the temp file and is thrown.
 */
export async function writePrivateFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    await rename(tmp, file);
  } catch (e) {
    await handle.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
