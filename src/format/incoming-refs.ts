/**
 * The quarantine refs of a pull (src/format/remote.ts): `refs/btrfly/incoming/p<pid>/<remote>/<tag>`,
 * one namespace per pulling process, so that two pulls at once never clear each other's, and
 * the refs a pull killed with -9 left behind (its process is gone) are known for leftovers and
 * removed by the next pull or `gc`, which would otherwise keep every object they reach.
 * Tags are `refs/heads/*` only, so `tags`, `status` and playback never see these refs.
 */
import type { Archive } from './archive';
import { processAlive } from '../process-alive';

const INCOMING_ROOT = 'refs/btrfly/incoming/';

/** This process's quarantine namespace for a pull from `remote`. */
export function incomingPrefix(remote: string): string {
  return `${INCOMING_ROOT}p${process.pid}/${remote}/`;
}

/**
 * Deletes the quarantine refs of processes that are gone (a pull killed before it cleared its
 * own), and those of the layout before the per-process namespace (`incoming/<remote>/…`).
 * @returns how many refs were deleted
 */
export async function dropStaleIncoming(archive: Archive): Promise<number> {
  const { stdout } = await archive.git.run(['for-each-ref', '--format=%(refname) %(objectname)', INCOMING_ROOT]);
  const stale = stdout
    .split('\n')
    .filter(Boolean)
    .filter((line) => {
      const pid = /^p(\d+)$/.exec(line.slice(INCOMING_ROOT.length).split('/')[0])?.[1];
      return pid === undefined || !processAlive(Number(pid));
    });
  await deleteRefs(archive, stale);
  return stale.length;
}

/** Deletes this process's quarantine refs of a pull from `remote`. */
export async function dropOwnIncoming(archive: Archive, remote: string): Promise<void> {
  const { stdout } = await archive.git.run(['for-each-ref', '--format=%(refname) %(objectname)', incomingPrefix(remote)]);
  await deleteRefs(archive, stdout.split('\n').filter(Boolean));
}

/** `update-ref --stdin` of "delete REF OLD" lines, from lines of "REF OLD". */
async function deleteRefs(archive: Archive, refs: string[]): Promise<void> {
  if (refs.length) await archive.git.run(['update-ref', '--stdin'], { input: refs.map((r) => `delete ${r}\n`).join('') });
}
