/**
 * Git LFS mode (`btrfly init --lfs`, docs/decisions.md "Git LFS mode"): each body is one Git LFS
 * object, its raw bytes as a file named by their SHA-256 in git-lfs's own local store,
 * `<archive>/lfs/objects/<2 hex>/<next 2 hex>/<sha256>`, and the recording's tree holds a
 * pointer file for it (`bodies/<2 hex>/<sha256>/lfs`). The LFS oid is then btrfly's own content
 * address, the object file is what playback streams (no second copy in git or in the body
 * cache), and the real `git-lfs` client moves the objects to and from any LFS server.
 */
import { randomUUID } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { BtrflyError } from '../errors';
import { processAlive } from '../process-alive';
import { damagedDir } from './damaged-dir';
import type { Git } from './git';
import { ownedTempName, tempOwner } from './lifecycle';

/** The name of a body's pointer file inside `bodies/<2 hex>/<sha256>/` in LFS mode. */
export const LFS_POINTER_NAME = 'lfs';

/**
 * The name of the pointer file of a body kept zstd: the pointer names the zstd object (its own
 * SHA-256), and the name carries that oid too, so a reader and `gc` find the object from
 * `ls-tree` alone, without reading the pointer.
 */
export function lfsZstdPointerName(oid: string): string {
  return `lfs-${oid}.zst`;
}

/** The LFS oid in a pointer file's name ({@link lfsZstdPointerName}), or undefined for another name. */
export function lfsOidOfPointerName(name: string): string | undefined {
  return /^lfs-([0-9a-f]{64})\.zst$/.exec(name)?.[1];
}

/** The LFS oid of a body's object: its own SHA-256 when stored raw, the zstd bytes' when stored zstd. */
export function lfsObjectOid(loc: { sha256: string; lfsOid?: string }): string {
  return loc.lfsOid ?? loc.sha256;
}

/** The git config key that marks an archive as LFS mode, and its value. */
export const STORAGE_KEY = 'btrfly.storage';
export const STORAGE_LFS = 'lfs';

/** The `.gitattributes` line that tells git, git-lfs and git hosts that bodies are LFS objects. */
export const LFS_ATTRIBUTES = 'bodies/** filter=lfs diff=lfs merge=lfs -text\n';

/** A pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md): keys sorted, version first. */
export function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

/** Checks that the real `git-lfs` client is installed: LFS mode needs it to push and pull. */
export async function checkGitLfs(git: Git): Promise<void> {
  const r = await git.run(['lfs', 'version'], { ok: [0, 1, 128, 127] }).catch(() => undefined);
  if (!r || r.code !== 0 || !/git-lfs\//.test(r.stdout)) {
    throw new BtrflyError('CONFIG', 'git-lfs is not installed: install it (Debian: apt-get install git-lfs), then run the command again');
  }
}

/** git-lfs's local object store of one archive. */
export class LfsStore {
  /** `<archive>/lfs/objects` */
  readonly objects: string;
  /** `<archive>/lfs/tmp`: git-lfs's own temp dir, on the same file system as the objects. */
  readonly tmp: string;

  constructor(readonly gitDir: string) {
    this.objects = join(gitDir, 'lfs', 'objects');
    this.tmp = join(gitDir, 'lfs', 'tmp');
  }

  /** Where the object of `sha256` is (or would be). */
  path(sha256: string): string {
    return join(this.objects, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.path(sha256));
  }

  /** A temp file name for a body being written, carrying the pid so `gc` can reclaim it. */
  tempPath(): string {
    return join(this.tmp, ownedTempName(process.pid, `btrfly-${randomUUID()}`));
  }

  async ready(): Promise<void> {
    await mkdir(this.tmp, { recursive: true });
  }

  /**
   * Puts a written temp file in place as the object `sha256` (its bytes were hashed while
   * written). When the object is already there, the temp file is dropped: stored once.
   */
  async commit(temp: string, sha256: string): Promise<void> {
    const target = this.path(sha256);
    if (existsSync(target)) {
      await rm(temp, { force: true });
      return;
    }
    await mkdir(join(target, '..'), { recursive: true });
    await rename(temp, target);
  }

  /**
   * Removes git-lfs's error logs (`<archive>/lfs/logs`): git-lfs writes one on a failed transfer
   * with its command line and the process's GIT_* variables, where a token handed to git as
   * `-c http.extraHeader=…` (GIT_CONFIG_PARAMETERS) would be kept in the archive.
   */
  async dropLogs(): Promise<void> {
    await rm(join(this.gitDir, 'lfs', 'logs'), { recursive: true, force: true });
  }

  /**
   * Moves an object (by LFS oid) found damaged out of the store, into
   * `btrfly/damaged/<time>/lfs/<oid>` (src/format/damaged-dir.ts), so that nothing serves it and
   * the next pull or `verify --repair` fetches it again (git-lfs skips objects it has), while the
   * damaged bytes are kept for the user to look at. Returns where it went, relative to the
   * archive, or undefined when another reader had already moved it.
   */
  async setAside(oid: string): Promise<string | undefined> {
    const dir = join(damagedDir(join(this.gitDir, 'btrfly')), 'lfs');
    await mkdir(dir, { recursive: true });
    const moved = await rename(this.path(oid), join(dir, oid)).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw e;
      },
    );
    if (!moved) await rmdir(dir).then(() => rmdir(join(dir, '..')), () => undefined).catch(() => undefined);
    return moved ? relative(this.gitDir, join(dir, oid)) : undefined;
  }

  /**
   * Gives each object that shares its file with another path a file of its own: git-lfs's file
   * agent hard-links objects to and from a remote on the same file system (it has no setting
   * against it), so an edit of the remote's copy in place was an edit of this one, and the
   * damaged body could then be fetched again only from that same file. The copy is a reflink
   * where the file system has them (a write to either side then leaves the other as it was),
   * made under a temp name and renamed over the object, so a reader never sees half of it.
   * @returns how many objects were copied
   */
  async unshare(): Promise<number> {
    let copied = 0;
    for (const a of await readdir(this.objects).catch(() => [] as string[])) {
      for (const b of await readdir(join(this.objects, a)).catch(() => [] as string[])) {
        for (const oid of await readdir(join(this.objects, a, b)).catch(() => [] as string[])) {
          const path = join(this.objects, a, b, oid);
          if (((await stat(path).catch(() => undefined))?.nlink ?? 1) < 2) continue;
          await this.ready();
          const temp = this.tempPath();
          try {
            await copyFile(path, temp, constants.COPYFILE_FICLONE);
            await rename(temp, path);
          } catch (e) {
            await rm(temp, { force: true });
            throw e;
          }
          copied++;
        }
      }
    }
    return copied;
  }

  /** Whether the store holds any object (stops at the first one found). */
  async holdsObjects(): Promise<boolean> {
    for (const a of await readdir(this.objects).catch(() => [] as string[])) {
      for (const b of await readdir(join(this.objects, a)).catch(() => [] as string[])) {
        if ((await readdir(join(this.objects, a, b)).catch(() => [] as string[])).length) return true;
      }
    }
    return false;
  }

  /** Bytes of the objects of `oids` (LFS oids, {@link lfsObjectOid}) that are here. */
  async diskUsage(oids: Iterable<string>): Promise<number> {
    let total = 0;
    for (const sha of oids) total += await stat(this.path(sha)).then((s) => s.blocks * 512, () => 0);
    return total;
  }

  /**
   * Removes every object not in `keep`, and the temp files of processes that died.
   * @param opts.spareRecent keep objects younger than an hour (a recorder runs: its newest bodies are in no journal yet)
   */
  async prune(keep: ReadonlySet<string>, opts: { spareRecent?: boolean } = {}): Promise<number> {
    let removed = 0;
    const now = Date.now();
    const recent = (p: string): Promise<boolean> => stat(p).then((s) => now - s.mtimeMs < 60 * 60 * 1000, () => false);
    for (const a of await readdir(this.objects).catch(() => [] as string[])) {
      for (const b of await readdir(join(this.objects, a)).catch(() => [] as string[])) {
        for (const oid of await readdir(join(this.objects, a, b)).catch(() => [] as string[])) {
          const p = join(this.objects, a, b, oid);
          if (keep.has(oid) || (opts.spareRecent && (await recent(p)))) continue;
          await rm(p, { force: true });
          removed++;
        }
      }
    }
    await this.dropLogs();
    for (const name of await readdir(this.tmp).catch(() => [] as string[])) {
      const owner = tempOwner(name);
      if (owner !== undefined && !processAlive(owner)) await rm(join(this.tmp, name), { recursive: true, force: true });
    }
    return removed;
  }
}
