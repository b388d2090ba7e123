/**
 * Files the user names (`btrfly export -o FILE`, `btrfly sbom -o FILE`) are written under a
 * temporary name beside the target and renamed over it at the end, so a failed or
 * interrupted write never leaves a truncated file under the name asked for. What is at the
 * name stays what it was: a symlink is followed (its target is replaced, the link stays), an
 * existing file keeps its mode and owner, and a device, FIFO or socket (`-o /dev/null`,
 * `-o /dev/stdout`, a named pipe) is written to as it is, since it cannot be replaced.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, chown, readlink, realpath, rename, stat, unlink, lstat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { BtrflyError, oneLine } from '../errors';
import { pipeline } from 'node:stream/promises';

type Source = Readable | Iterable<string | Buffer> | AsyncIterable<string | Buffer>;

/**
 * Streams `source` into `file` atomically: a new temp file in the same directory (same file
 * system, so the rename is atomic), renamed over `file` once complete; removed on failure.
 * @throws the write's or the source's error
 */
export async function writeFileAtomically(file: string, source: Source): Promise<void> {
  const target = await followLinks(file);
  const existing = await stat(target).catch(() => undefined);
  // Said before anything is written: the whole output would otherwise go to a temp file first, to fail at the rename.
  if (existing?.isDirectory()) throw new BtrflyError('USAGE', `cannot write ${file}: it is a directory: give the name of a file (in it, say: ${join(file, 'NAME')})`);
  if (existing && !existing.isFile() && !existing.isDirectory()) {
    await pipeline(source, createWriteStream(target, { flags: 'w' }));
    return;
  }
  const tmp = join(dirname(target), `.${basename(target)}.${randomUUID().slice(0, 8)}.tmp`);
  try {
    await pipeline(source, createWriteStream(tmp, { flags: 'wx', ...(existing && { mode: existing.mode & 0o7777 }) }));
    if (existing) {
      await chmod(tmp, existing.mode & 0o7777);
      await chown(tmp, existing.uid, existing.gid).catch(() => undefined);
    }
    await rename(tmp, target);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw (e as NodeJS.ErrnoException).path === tmp ? cannotWrite(file, e as NodeJS.ErrnoException) : e;
  }
}

/** A failure to make the temp file, said of the file the user named (the temp's name means nothing to them). */
function cannotWrite(file: string, e: NodeJS.ErrnoException): BtrflyError {
  const dir = dirname(resolve(file));
  const why =
    e.code === 'ENOENT' || e.code === 'ENOTDIR' ? `the directory ${dir} does not exist: create it, or give a path in an existing directory` :
    e.code === 'EACCES' || e.code === 'EPERM' ? `permission denied in ${dir}: give a path you may write to` :
    e.code === 'EROFS' ? `${dir} is on a read-only file system: give a path you may write to` :
    oneLine(Object.assign(e, { path: file }));
  return new BtrflyError('STORAGE', `cannot write ${file}: ${why}`, { cause: e });
}

/** The path a name finally refers to: a symlink's target, also when that does not exist yet. */
async function followLinks(file: string): Promise<string> {
  const real = await realpath(file).catch(() => undefined);
  if (real) return real;
  // A dangling link: write where it points.
  for (let hops = 0, at = file; hops < 40; hops++) {
    const st = await lstat(at).catch(() => undefined);
    if (!st?.isSymbolicLink()) return at;
    at = resolve(dirname(at), await readlink(at));
  }
  return file;
}
