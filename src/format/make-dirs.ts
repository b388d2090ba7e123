/**
 * `mkdir -p` that always ends. Node's `mkdir(…, { recursive: true })` takes ENOENT to mean "the
 * parent is missing", makes the parent (EEXIST: fine) and tries again, for ever, when the parent
 * exists but cannot hold the new directory: `/proc/x` (procfs answers ENOENT), a path under a
 * dangling symbolic link. Measured on Node 24.21: `fs.promises.mkdir('/proc/x/y', {recursive: true})`
 * never settles, and the sync form spins a core (docs/notes/node-quirks.md). Here an ENOENT once
 * the parent exists is final.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Why a directory could not be made, in words for a one-line message (`path` is where it failed). */
export class MakeDirError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly code: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'MakeDirError';
  }
}

/** Makes `dir` and its missing parents (`mode` for each made); a directory already there is fine. */
export async function makeDirs(dir: string, mode?: number): Promise<void> {
  const attempt = (): Promise<NodeJS.ErrnoException | undefined> => mkdir(dir, { mode }).then(() => undefined, (e: NodeJS.ErrnoException) => e);
  let e = await attempt();
  if (e?.code === 'ENOENT' && dirname(dir) !== dir) {
    await makeDirs(dirname(dir), mode);
    e = await attempt();
  }
  if (!e) return;
  if (e.code === 'EEXIST') return checkDir(dir, await stat(dir).then((s) => s.isDirectory(), () => false));
  throw failed(dir, e);
}

/** {@link makeDirs}, synchronous. */
export function makeDirsSync(dir: string, mode?: number): void {
  const attempt = (): NodeJS.ErrnoException | undefined => {
    try {
      mkdirSync(dir, { mode });
      return undefined;
    } catch (e) {
      return e as NodeJS.ErrnoException;
    }
  };
  const isDir = (): boolean => {
    try {
      return statSync(dir).isDirectory();
    } catch {
      return false;
    }
  };
  let e = attempt();
  if (e?.code === 'ENOENT' && dirname(dir) !== dir) {
    makeDirsSync(dirname(dir), mode);
    e = attempt();
  }
  if (!e) return;
  if (e.code === 'EEXIST') return checkDir(dir, isDir());
  throw failed(dir, e);
}

function checkDir(dir: string, isDir: boolean): void {
  if (!isDir) throw new MakeDirError(dir, 'it exists and is not a directory (a file, or a symbolic link to nothing)', 'ENOTDIR');
}

function failed(dir: string, e: NodeJS.ErrnoException): MakeDirError {
  const code = e.code ?? 'EIO';
  const reason =
    code === 'ENOENT'
      ? `its parent ${dirname(dir)} takes no new directory (ENOENT: a file system such as /proc, or a symbolic link to nothing)`
      : code === 'EACCES' || code === 'EPERM'
        ? `permission denied (${code})`
        : code === 'EROFS'
          ? 'read-only file system (EROFS)'
          : code === 'ENOTDIR'
            ? 'a part of the path is not a directory (ENOTDIR)'
            : `mkdir failed (${code})`;
  return new MakeDirError(dir, reason, code);
}
