/**
 * Fetching again what a repair set aside (src/format/body-repair.ts): every object a tag
 * reaches, or its Git LFS objects, from one of the archive's remotes. The tags here do not move.
 */
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { localTransportPrograms } from './git-process';
import { dropOwnIncoming, incomingPrefix } from './incoming-refs';
import { lfsFetch } from './lfs-transfer';
import { tagNameProblem, validateTagName } from './names';
import { remoteUrl } from './remote-config';
import { tagMissingOnRemote, transferTo, withoutRefLines, type TransferOptions } from './remote-transfer';

/**
 * Fetches every object `tags` reach from `remote` again, as a fresh clone would (`git fetch
 * --refetch`): a plain fetch does not ask for what local refs reach, so it could not bring
 * back an object that a repair set aside (src/format/body-repair.ts). `'all'`: every tag the
 * remote has. The refs it fetches into are dropped afterwards; the tags here do not move.
 * @throws BtrflyError TAG_NOT_FOUND (on the remote), NETWORK
 */
export async function refetchObjects(archive: Archive, remote: string, tags: string[] | 'all', opts: TransferOptions = {}): Promise<void> {
  const onHost = localTransportPrograms(await remoteUrl(archive, remote));
  if (tags === 'all') {
    // Named one by one: a --refetch that wants nothing (a glob matching no ref) waits forever (git 2.39).
    const ls = await transferTo(archive, remote, 'list', ['ls-remote', '--heads', ...(onHost ? [`--upload-pack=${onHost.uploadPack}`] : []), remote], { interactive: opts.interactive, signal: opts.signal });
    const names = ls.stdout
      .split('\n')
      .map((l) => l.split('\t')[1]?.slice('refs/heads/'.length))
      .filter((t): t is string => Boolean(t) && !tagNameProblem(t));
    if (names.length) await refetchObjects(archive, remote, names, opts);
    return;
  }
  // A pull's quarantine namespace: the next pull or gc drops what a repair killed with -9 left there.
  const into = incomingPrefix(remote);
  const fetch = ['fetch', '--refetch', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules'];
  try {
    await transferTo(
      archive,
      remote,
      'fetch from',
      // No automatic gc afterwards: the repair's caller verifies first, and gc would wait on its lock.
      // Always index-pack (never unpack-objects, which skips an object it holds): it refuses an
      // object whose id is here with other bytes, so damage the repair missed is said, not kept.
      ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false', '-c', 'fetch.unpackLimit=1', ...fetch, '--progress', ...(onHost ? [`--upload-pack=${onHost.uploadPack}`] : []), remote, ...tags.map((t) => `+refs/heads/${validateTagName(t)}:${into}${t}`)],
      { progress: opts.progress && withoutRefLines(opts.progress), interactive: opts.interactive, signal: opts.signal },
    );
  } catch (e) {
    throw tagMissingOnRemote(e, remote) ?? e;
  } finally {
    await dropOwnIncoming(archive, remote);
  }
}

/**
 * Fetches the Git LFS objects of `tags` that the local store lacks from `remote`.
 * @throws BtrflyError NETWORK when git-lfs could not fetch every one, with what it said
 */
export async function refetchLfs(archive: Archive, remote: string, tags: string[], opts: TransferOptions = {}): Promise<void> {
  const local = localTransportPrograms(await remoteUrl(archive, remote)) !== undefined;
  const trouble = await lfsFetch(archive, remote, tags.map((t) => `refs/heads/${validateTagName(t)}`), { progress: opts.progress, interactive: opts.interactive, signal: opts.signal, localRemote: local });
  if (trouble) throw new BtrflyError('NETWORK', `git-lfs could not fetch every body from remote ${remote}: ${trouble}`, { data: { remote } });
}

