/**
 * Creating an archive: `git init --bare` and the settings that suit a store of large,
 * already-hashed, often incompressible objects. Figures behind each one: docs/decisions.md.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Git } from './git';
import { STORAGE_KEY, STORAGE_LFS } from './lfs-store';

/** Repository settings written at creation. */
export const ARCHIVE_SETTINGS: ReadonlyArray<[key: string, value: string]> = [
  // Parts (8 MiB) stay below this, so hash-object writes them as loose objects at
  // core.looseCompression; above it git streams each one into a pack of its own at
  // pack.compression (one pack per part). Measured: docs/decisions.md.
  ['core.bigFileThreshold', '16m'],
  // Parts are zstd or incompressible already: zlib over them costs 4x the time and saves
  // nothing. The same holds in packs: gc of 1 GiB takes 7 s at level 0 and 26 s at level 1
  // for the same size. Manifests still shrink in packs by delta against their parents.
  ['core.looseCompression', '0'],
  ['pack.compression', '0'],
  // Packing is explicit (`btrfly gc`), never minutes of surprise inside a record or a push.
  ['gc.auto', '0'],
  // A pushed or fetched pack is kept as it is, not exploded into loose objects.
  ['receive.unpackLimit', '1'],
  ['fetch.unpackLimit', '1'],
  // Reflogs would keep deleted recordings alive past `btrfly gc`.
  ['core.logAllRefUpdates', 'false'],
];

/**
 * Makes `git.gitDir` a bare repository with {@link ARCHIVE_SETTINGS}.
 * @param opts.lfs keep bodies as Git LFS objects (src/format/lfs-store.ts)
 */
async function initArchive(git: Git, opts: { lfs?: boolean } = {}): Promise<void> {
  await git.run(['init', '--bare', '--quiet', git.gitDir]);
  for (const [key, value] of ARCHIVE_SETTINGS) await git.run(['config', key, value]);
  if (opts.lfs) await git.run(['config', STORAGE_KEY, STORAGE_LFS]);
  // Parts never delta against each other (random or compressed bytes): keep them out of
  // pack-objects' delta search, which would otherwise load every 8 MiB part into its window.
  await writeFile(join(git.gitDir, 'info', 'attributes'), '/bodies/** -delta\n');
}

/**
 * Makes the archive at `path` (missing, an empty directory or a link to one) in one step, as far as others can
 * see: the repository is made in a sibling temp directory and renamed into place. Two commands
 * that find no archive at once (two `btrfly run --record` starting a fresh archive) would
 * otherwise both run `git init` in it, and the second, finding a half-made repository, said it
 * was not an archive. The loser of the rename finds the winner's archive and removes its own.
 * Where the parent directory cannot be written (an empty directory given as it is), the
 * repository is made in place, as before.
 * @returns false when another process made the archive first
 */
export async function createArchive(path: string, opts: { lfs?: boolean } = {}): Promise<boolean> {
  // A symbolic link to an empty directory (`.btrfly -> /mnt/big/archive`): the repository is made
  // beside the directory it names, on its file system; renamed onto the link itself, the rename
  // failed (ENOTDIR), and beside the link it could be on another file system (EXDEV).
  const dir = await realpath(path).catch(() => path);
  const temp = join(dirname(dir), `.${basename(dir)}.init-${process.pid}-${randomUUID()}`);
  const madeTemp = await mkdir(temp).then(
    () => true,
    () => false,
  );
  if (!madeTemp) {
    await initArchive(new Git(dir), opts);
    return true;
  }
  try {
    const git = new Git(temp);
    await initArchive(git, opts);
    await git.close();
    // Replaces `dir` only while it is missing or an empty directory (rename(2)).
    return await rename(temp, dir).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOTEMPTY' || e.code === 'EEXIST') return false;
        throw e;
      },
    );
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
