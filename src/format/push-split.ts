/**
 * Pushes under a remote's size limit. Git hosts refuse a push whose pack is over a limit
 * (GitHub's 2 GiB; real git's `receive.maxInputSize`), and a tag's first push carries every
 * body it reaches. So when a remote refuses a pack for its size, the bodies go first, in
 * several pushes each under the limit: every push sends one staging tree that names a batch of
 * blobs, to `refs/btrfly/staging/<run>/<n>`. The remote then has those objects and
 * advertises them, so the next push (and the tag's own, last) sends only what is still missing;
 * the last push also deletes this run's staging refs. The refs point at trees, not commits:
 * git leaves out of a pack what a tree the remote advertises holds, while the trees of
 * unrelated commits it does not look into. Staging refs are outside `refs/heads/`, so a pull
 * never sees them as tags.
 *
 * The limit is the one configured for the remote (`btrfly remote add --max-push`, kept as
 * `remote.<name>.btrflyMaxPush`), or the one the remote names in its refusal, or, when it
 * names none, learned by halving until a push goes through; a learned limit is kept.
 */
import { randomBytes } from 'node:crypto';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import type { GitResult } from './git';
import { lastGitMessage } from './git-process';
import { formatSize } from './size';

export const STAGING_PREFIX = 'refs/btrfly/staging/';

/** What a pack carries besides its objects' bytes (headers, deltas that did not apply): batches aim below the limit by this share. */
const PACK_MARGIN = 0.85;
/** A pack of one object is that object and a few headers: one alone may come this close to the limit. */
const ONE_OBJECT_OVERHEAD = 64 * 1024;

/** A ref the remote has, as `git ls-remote` lists it. */
export interface RemoteRef {
  oid: string;
  ref: string;
}
/** No limit is learned below this: a remote that refuses 1 MiB is refusing for another reason. */
const SMALLEST_LIMIT = 1024 * 1024;

/** How a push went around a size limit. */
export interface PushSplit {
  /** Pushes made in all, the tag's own included. */
  pushes: number;
  /** The limit the batches kept under, in bytes. */
  limit: number;
  /** Where the limit came from. */
  source: 'configured' | 'remote' | 'learned';
}

/**
 * Whether git's output says the remote refused the pack for its size, and the limit when the
 * remote names it ("pack exceeds maximum allowed size (2.00 GiB)").
 */
export function sizeRefusal(stderr: string): { limit: number | null } | null {
  const m = /pack exceeds maximum allowed size(?:\s*\(([\d.]+)\s*([KMGT]?i?B)\))?/i.exec(stderr);
  if (!m) return null;
  return { limit: m[1] ? Math.floor(Number(m[1]) * unitBytes(m[2])) : null };
}

/**
 * Reads a size as git writes one (`48m`, `2g`) or people do (`48MiB`, `2 GB`): binary units.
 * @throws BtrflyError USAGE
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  const bytes = m ? Math.floor(Number(m[1]) * unitBytes(m[2] || 'b')) : NaN;
  if (!Number.isFinite(bytes) || bytes < SMALLEST_LIMIT) {
    throw new BtrflyError('USAGE', `"${text}" is not a usable push size: give at least 1 MiB, e.g. "2g", "500m" or "48MiB"`);
  }
  return bytes;
}

function unitBytes(unit: string): number {
  const i = 'bkmgt'.indexOf(unit.charAt(0).toLowerCase());
  return 1024 ** Math.max(0, i);
}

const configKey = (remote: string): string => `remote.${remote}.btrflyMaxPush`;

/** The push limit kept for `remote`, or null. */
export async function maxPushOf(archive: Archive, remote: string): Promise<number | null> {
  const r = await archive.git.run(['config', '--get', configKey(remote)], { ok: [0, 1] });
  const n = Number(r.stdout.trim());
  return r.code === 0 && Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** Keeps a push limit for `remote`. */
export async function setMaxPush(archive: Archive, remote: string, bytes: number): Promise<void> {
  await archive.git.run(['config', configKey(remote), String(bytes)]);
}

/** One push made by {@link pushUnderLimit}: `refspecs` to send; the result as git gave it. */
export type PushOnce = (refspecs: string[]) => Promise<GitResult>;

/**
 * Pushes `refspecs` (the tags) with `push`, going around a size limit as the module comment
 * says. `remoteHas` lists the commits the remote holds (its refs, as `git ls-remote` shows).
 * Returns the result of the tag's own push, and how it was split (undefined when one push did).
 * @throws BtrflyError NETWORK when one object alone is over the limit
 */
export async function pushUnderLimit(
  archive: Archive,
  remote: string,
  refspecs: string[],
  tips: string[],
  push: PushOnce,
  remoteRefs: () => Promise<RemoteRef[]>,
): Promise<{ result: GitResult; split?: PushSplit }> {
  // Staging refs of a push that was interrupted (killed, network gone) are dropped by the
  // next one that looks at the remote's refs, so their bodies do not stay there for good.
  const stale = new Set<string>();
  const remoteHas = async (): Promise<string[]> => {
    const refs = await remoteRefs();
    for (const r of refs) if (r.ref.startsWith(STAGING_PREFIX) && !r.ref.startsWith(`${STAGING_PREFIX}${run}/`)) stale.add(r.ref);
    return refs.map((r) => r.oid);
  };
  const run = randomBytes(6).toString('hex');
  const configured = await maxPushOf(archive, remote);
  let limit = configured;
  let source: PushSplit['source'] = 'configured';
  const staged: string[] = [];
  let pushes = 0;
  const finish = async (): Promise<GitResult> => {
    pushes++;
    return push([...refspecs, ...[...staged, ...stale].map((ref) => `:${ref}`)]);
  };
  for (;;) {
    if (limit !== null) {
      pushes += await stage(archive, remote, tips, limit, run, staged, push, remoteHas, (refused) => {
        limit = nextLimit(refused, limit!);
        source = refused.limit !== null ? 'remote' : 'learned';
        return limit;
      });
      // Kept as soon as a part went through: an interrupted push still teaches the next one.
      if (staged.length && source !== 'configured') await setMaxPush(archive, remote, limit);
    }
    const result = await finish();
    const refused = result.code !== 0 ? sizeRefusal(result.stderr) : null;
    if (!refused) {
      if (limit !== null && source !== 'configured') await setMaxPush(archive, remote, limit);
      return { result, split: staged.length ? { pushes, limit: limit!, source } : undefined };
    }
    // The tag's own push was too big: with no limit yet, start from what the remote names or
    // half of what was to be sent; with one, the remote's real limit is lower than it.
    const estimate = limit ?? (await pendingBytes(archive, tips, await remoteHas())).total;
    limit = nextLimit(refused, estimate);
    source = refused.limit !== null ? 'remote' : 'learned';
  }
}

/** The next limit to try after a refusal: the remote's own, or half the last try. */
function nextLimit(refused: { limit: number | null }, tried: number): number {
  const next = refused.limit !== null && refused.limit < tried ? refused.limit : Math.floor(tried / 2);
  return next;
}

/**
 * Sends what `tips` reach and the remote lacks, in staging pushes of at most `limit` (times
 * the margin) each, until what is left fits one push. A staging push refused for its size
 * asks `lower` for a smaller limit and batches again. Returns the pushes made.
 */
async function stage(
  archive: Archive,
  remote: string,
  tips: string[],
  limit: number,
  run: string,
  staged: string[],
  push: PushOnce,
  remoteHas: () => Promise<string[]>,
  lower: (refused: { limit: number | null }) => number,
): Promise<number> {
  let pushes = 0;
  let before = Infinity;
  for (;;) {
    const budget = Math.floor(limit * PACK_MARGIN);
    const pending = await pendingBytes(archive, tips, await remoteHas());
    if (pending.total <= budget) return pushes;
    // A part the remote took must shrink what is left; if it did not, stop rather than loop.
    if (pending.total >= before) throw new BtrflyError('NETWORK', `push to remote ${remote}: the remote took a part but still lacks as much as before: push again`);
    const biggest = pending.blobs.reduce((a, b) => (b.size > a.size ? b : a), { oid: '', size: 0 });
    if (biggest.size + ONE_OBJECT_OVERHEAD > limit || limit < SMALLEST_LIMIT) {
      throw new BtrflyError(
        'NETWORK',
        `push to remote ${remote} cannot go under its size limit of ${formatSize(limit)}: one object alone is ${formatSize(biggest.size)}; ` +
          `raise the remote's limit (or set a larger one with "btrfly remote add ${remote} URL --max-push SIZE")`,
        { data: { remote, limit, object: biggest.oid } },
      );
    }
    const batch: string[] = [];
    let size = 0;
    for (const blob of pending.blobs) {
      // The first object may use the whole limit but for a pack's headers; the rest the budget.
      if (batch.length ? size + blob.size > budget : blob.size + ONE_OBJECT_OVERHEAD > limit) break;
      batch.push(blob.oid);
      size += blob.size;
    }
    const tree = await archive.git.mktree(batch.map((oid) => ({ mode: '100644', type: 'blob', oid, name: oid })));
    const ref = `${STAGING_PREFIX}${run}/${staged.length + 1}`;
    await archive.git.run(['update-ref', localStagingRef(ref), tree]);
    pushes++;
    const r = await push([`${tree}:${ref}`]);
    if (r.code === 0) {
      staged.push(ref);
      before = pending.total;
      continue;
    }
    const refused = sizeRefusal(r.stderr);
    if (!refused) {
      throw new BtrflyError('NETWORK', `push to remote ${remote} failed while sending bodies in parts under its size limit: ${lastGitMessage(r.stderr)}`, {
        data: { remote, stderr: r.stderr },
      });
    }
    limit = lower(refused);
  }
}

/** Staging trees are kept under a local ref while a push runs, so `btrfly gc` leaves them alone. */
const localStagingRef = (ref: string): string => ref.replace(STAGING_PREFIX, 'refs/btrfly/pushing/');

/** Removes the local records of a finished push's staging commits. */
export async function dropLocalStaging(archive: Archive): Promise<void> {
  const { stdout } = await archive.git.run(['for-each-ref', '--format=delete %(refname) %(objectname)', 'refs/btrfly/pushing/']);
  if (stdout.trim()) await archive.git.run(['update-ref', '--stdin'], { input: stdout });
}

/** The objects `tips` reach that `has` does not, with their size on disk: the blobs, biggest last-written first as git lists them, and the total. */
async function pendingBytes(archive: Archive, tips: string[], has: string[]): Promise<{ total: number; blobs: Array<{ oid: string; size: number }> }> {
  const known = await existing(archive, has);
  const list = await archive.git.run(['rev-list', '--objects', '--no-object-names', ...tips, ...(known.length ? ['--not', ...known] : [])]);
  if (!list.stdout.trim()) return { total: 0, blobs: [] };
  const check = await archive.git.run(['cat-file', '--batch-check=%(objectname) %(objecttype) %(objectsize:disk)'], { input: list.stdout });
  let total = 0;
  const blobs: Array<{ oid: string; size: number }> = [];
  for (const line of check.stdout.split('\n')) {
    const [oid, type, size] = line.split(' ');
    if (!oid) continue;
    total += Number(size);
    if (type === 'blob') blobs.push({ oid, size: Number(size) });
  }
  return { total, blobs };
}

/** The commits and trees of `oids` this archive holds (the remote may hold objects that are not here). */
async function existing(archive: Archive, oids: string[]): Promise<string[]> {
  if (!oids.length) return [];
  const r = await archive.git.run(['cat-file', '--batch-check=%(objectname) %(objecttype)'], { input: oids.join('\n') + '\n' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([, type]) => type === 'commit' || type === 'tree')
    .map(([oid]) => oid);
}

/** One line for the user: how many pushes it took, under what limit, and where the limit came from. */
export function describeSplit(remote: string, split: PushSplit): string {
  const from =
    split.source === 'configured'
      ? 'the limit set for it'
      : `${split.source === 'remote' ? 'the limit it named' : 'a limit learned by trying'}, kept for next time (change it with "btrfly remote add ${remote} URL --max-push SIZE")`;
  return `remote ${remote} takes pushes of at most ${formatSize(split.limit)}: sent in ${split.pushes} pushes under ${from}`;
}
