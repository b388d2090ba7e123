/**
 * Where damaged copies are kept: `<archive>/btrfly/damaged/<time>/`, git objects by their id
 * (and whole packs) as `btrfly verify --repair` sets them aside (src/format/body-repair.ts), LFS
 * objects under `lfs/<oid>` as a read that found them bad moves them there
 * (src/format/lfs-store.ts). Nothing reads them again: they are the evidence, for the user to
 * look at and delete once verify is clean.
 */
import { join } from 'node:path';

/** A new folder name for what is set aside now. */
export function damagedDir(stateDir: string): string {
  return join(stateDir, 'damaged', new Date().toISOString().replace(/[:.]/g, '-'));
}
