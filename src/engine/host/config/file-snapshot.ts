import { createHash } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { BtrflyError } from '../../../errors';
import { processAlive } from '../../../process-alive';

/** What a path was before btrfly touched it: plain JSON, kept in the restore journal. */
export type FileSnapshot =
  | { type: 'absent' }
  | { type: 'symlink'; target: string }
  | { type: 'file'; mode: number; uid: number; gid: number; base64: string };

/** Records a path exactly: a symlink as the link itself (not what it points to), a file with its mode and owner. */
export async function captureFile(file: string): Promise<FileSnapshot> {
  let st;
  try {
    st = await fs.lstat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { type: 'absent' };
    throw e;
  }
  if (st.isSymbolicLink()) return { type: 'symlink', target: await fs.readlink(file) };
  const bytes = await fs.readFile(file);
  return { type: 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, base64: bytes.toString('base64') };
}

/** What a path holds, small enough for the journal: a link's target, a file's SHA-256. */
export type FileDigest = { type: 'absent' } | { type: 'symlink'; target: string } | { type: 'file'; sha256: string };

/** The digest of a snapshot. */
export function digestOf(snap: FileSnapshot): FileDigest {
  if (snap.type !== 'file') return snap;
  return { type: 'file', sha256: createHash('sha256').update(Buffer.from(snap.base64, 'base64')).digest('hex') };
}

/** Whether two digests describe the same thing. */
export function sameDigest(a: FileDigest, b: FileDigest): boolean {
  if (a.type === 'symlink' && b.type === 'symlink') return a.target === b.target;
  if (a.type === 'file' && b.type === 'file') return a.sha256 === b.sha256;
  return a.type === b.type;
}

/** Whether `now` is exactly `snap`: same kind, link target, or bytes, mode and owner. */
function sameSnapshot(now: FileSnapshot | undefined, snap: FileSnapshot): boolean {
  if (!now || now.type !== snap.type) return false;
  if (now.type === 'symlink' && snap.type === 'symlink') return now.target === snap.target;
  if (now.type === 'file' && snap.type === 'file') return now.base64 === snap.base64 && now.mode === snap.mode && now.uid === snap.uid && now.gid === snap.gid;
  return true;
}

/**
 * The temporary name used beside `file`, one per process: two btrfly processes whose
 * `/etc/resolv.conf` are different bind mounts (network namespaces made with `ip netns`,
 * containers) still share `/etc`, and a fixed name made one fail with EEXIST when both started
 * at once. A crash's leftover carries a dead process's id, and {@link restoreFile} removes it.
 */
export function tempNameFor(file: string, pid = process.pid): string {
  return path.join(path.dirname(file), `${tempPrefix(file)}${pid}`);
}

function tempPrefix(file: string): string {
  return `.${path.basename(file)}.btrfly-tmp-`;
}

/** Removes the temporary files beside `file` left by this process or by btrfly processes that are gone (killed mid-write). */
export async function removeStaleTemps(file: string): Promise<void> {
  const prefix = tempPrefix(file);
  const names = await fs.readdir(path.dirname(file)).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(name.slice(prefix.length));
    if (!name.startsWith(prefix) || !Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && processAlive(pid))) continue;
    await fs.rm(tempNameFor(file, pid), { force: true });
  }
}

/**
 * Puts a path back as the snapshot says. The new version is built under a temporary
 * name and renamed over, so a crash leaves either the old or the new file, never half
 * of one. Idempotent.
 */
export async function restoreFile(file: string, snap: FileSnapshot): Promise<void> {
  const tmp = tempNameFor(file);
  await removeStaleTemps(file);
  // Already as it was (never changed: a write that failed, a restore run twice): nothing to
  // write, and nothing to fail on a file btrfly cannot write.
  if (sameSnapshot(await captureFile(file).catch(() => undefined), snap)) return;
  if (snap.type === 'absent') {
    await fs.rm(file, { force: true });
    return;
  }
  if (snap.type === 'symlink') {
    await fs.symlink(snap.target, tmp);
    await replace(tmp, file, async () => {
      // A bind-mounted file cannot become a symlink; writing through it is the best left.
      await fs.rm(tmp, { force: true });
      throw new BtrflyError('STORAGE', `cannot restore the symlink ${file} -> ${snap.target} because ${file} is a mount point: unmount it and run "btrfly stop" again`);
    });
    return;
  }
  const bytes = Buffer.from(snap.base64, 'base64');
  await writeFileDurably(tmp, bytes, snap.mode);
  await chownIfRoot(tmp, snap.uid, snap.gid);
  await replace(tmp, file, async () => {
    await fs.rm(tmp, { force: true });
    await writeInPlace(file, bytes);
    await fs.chmod(file, snap.mode);
    await chownIfRoot(file, snap.uid, snap.gid);
  });
}

/** Replaces whatever is at `file` (a symlink included, which is replaced, not followed) with a plain file. */
export async function replaceWithFile(file: string, content: string | Buffer, mode: number): Promise<void> {
  const tmp = tempNameFor(file);
  await fs.rm(tmp, { force: true });
  await writeFileDurably(tmp, content, mode);
  await replace(tmp, file, async () => {
    await fs.rm(tmp, { force: true });
    await writeInPlace(file, content);
  });
}

/**
 * Renames `tmp` over `file`. When `file` is a mount point (Docker and other containers
 * bind-mount /etc/resolv.conf) rename fails with EBUSY and `fallback` runs instead.
 */
async function replace(tmp: string, file: string, fallback: () => Promise<void>): Promise<void> {
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EBUSY' && code !== 'EXDEV') throw e;
    await fallback();
  }
  await syncDir(path.dirname(file));
}

async function writeFileDurably(file: string, content: string | Buffer, mode: number): Promise<void> {
  const fh = await fs.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
  try {
    await fh.writeFile(content);
    await fh.chmod(mode); // the umask trimmed the mode given to open
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeInPlace(file: string, content: string | Buffer): Promise<void> {
  const fh = await fs.open(file, fsc.O_WRONLY | fsc.O_TRUNC);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function chownIfRoot(file: string, uid: number, gid: number): Promise<void> {
  if (process.getuid?.() === 0) await fs.lchown(file, uid, gid);
}

/** Makes a rename durable across power loss (the directory entry must reach the disk too). */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsc.O_RDONLY);
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
  } finally {
    await fh.close();
  }
}
