/**
 * Creating an archive: `git init --bare` and the settings that suit a store of large,
 * already-hashed, often incompressible objects. Figures behind each one: docs/decisions.md.
 */
import type { Git } from './git';

/** Repository settings written at creation. */
export const ARCHIVE_SETTINGS: ReadonlyArray<[key: string, value: string]> = [
  // Body parts (8 MiB, random or zstd already) never delta against each other: keep them
  // out of delta search and stream them whole in pack-objects and cat-file.
  ['core.bigFileThreshold', '1m'],
  // Parts are zstd or incompressible already; zlib over them costs CPU and saves nothing.
  // Manifests are small and get compressed (and deltified) when gc packs them.
  ['core.looseCompression', '0'],
  ['pack.compression', '1'],
  // Packing is explicit (`btrfly gc`), never minutes of surprise inside a record or a push.
  ['gc.auto', '0'],
  // A pushed or fetched pack is kept as it is, not exploded into loose objects.
  ['receive.unpackLimit', '1'],
  ['fetch.unpackLimit', '1'],
  // Reflogs would keep deleted recordings alive past `btrfly gc`.
  ['core.logAllRefUpdates', 'false'],
];

/** Makes `git.gitDir` a bare repository with {@link ARCHIVE_SETTINGS}. */
export async function initArchive(git: Git): Promise<void> {
  await git.run(['init', '--bare', '--quiet', git.gitDir]);
  for (const [key, value] of ARCHIVE_SETTINGS) await git.run(['config', key, value]);
}
