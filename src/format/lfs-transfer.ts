/**
 * Push and pull of an LFS archive's bodies through the real `git-lfs` client: its objects go
 * before the refs on a push (a remote never has a tag whose bodies it lacks), and come after
 * the refs on a pull, into the local LFS store, before btrfly reads every new body back
 * against its SHA-256 and only then moves the tag (src/format/remote.ts). git-lfs finds the LFS
 * server from the remote's URL (`<url>/info/lfs` for https, the remote repository's own
 * `lfs/objects` for a path), and takes credentials from git's credential helpers.
 */
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { storageFailure } from './disk-space';
import { lastGitMessage } from './git-process';
import { checkGitLfs, LFS_POINTER_NAME } from './lfs-store';
import { isNoSpace } from './lifecycle';
import { isStall, stalled, transferBound } from './transfer-bound';

/**
 * Uploads the LFS objects of every recording `refs` reach that the remote lacks (git-lfs asks
 * the server which ones it has, by the batch API).
 * @throws BtrflyError NETWORK naming the remote and what git-lfs said
 */
export async function lfsPush(archive: Archive, remote: string, refs: string[], opts: LfsTransferOptions = {}): Promise<void> {
  await checkGitLfs(archive.git);
  const bound = await transferBound(archive);
  try {
    await archive.git.transfer(['lfs', 'push', remote, ...refs], { ...opts, env: bound.env });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    if (bound.seconds && isStall(lfsOutput(e))) throw stalled(archive, remote, 'push of the bodies (Git LFS objects) to', bound.seconds, lfsOutput(e), e);
    // git-lfs refuses to push an object this archive lacks or holds damaged (it says so on stdout).
    const bad = /\((missing|corrupt)\) \S+ \(([0-9a-f]{64})\)/.exec(lfsOutput(e));
    if (bad) {
      throw new BtrflyError(
        bad[1] === 'missing' ? 'BODY_MISSING' : 'BODY_CORRUPT',
        `push to remote ${remote} refused, no tag was pushed: body ${bad[2]} is ${bad[1] === 'missing' ? 'missing from' : 'damaged in'} this archive's LFS store: ` +
          'run "btrfly verify --repair" to fetch it again from another remote, or re-record the tags that hold it',
        { cause: e, data: { sha256: bad[2] } },
      );
    }
    throw lfsFailed(`push of the bodies (Git LFS objects) to remote ${remote} failed`, e);
  } finally {
    // What git-lfs linked before it failed too: each side keeps a file of its own.
    if (opts.localRemote) await unshareObjects(archive);
    await archive.lfs.dropLogs();
  }
}

/**
 * Downloads the LFS objects of every recording the fetched `refs` reach into the local store
 * (git-lfs checks each object's SHA-256 as it arrives and keeps none that fails).
 * @returns what git-lfs said when it could not fetch every object (a refused or damaged object),
 * else undefined: the caller's verification then names the bodies that are missing
 */
export async function lfsFetch(archive: Archive, remote: string, refs: string[], opts: LfsTransferOptions = {}): Promise<string | undefined> {
  if (refs.length === 0) return undefined;
  await checkGitLfs(archive.git);
  const bound = await transferBound(archive);
  try {
    await archive.git.transfer(['lfs', 'fetch', '--all', remote, ...refs], { ...opts, env: bound.env });
    return undefined;
  } catch (e) {
    const output = lfsOutput(e);
    if (!output || opts.signal?.aborted) throw e;
    if (bound.seconds && isStall(output)) throw stalled(archive, remote, 'fetch of the bodies (Git LFS objects) from', bound.seconds, output, e);
    // A full disk is not a refused object: say so, with the mount point and what to free.
    const noSpace = /no space left on device|disk quota exceeded/i.test(output);
    const said = new BtrflyError('STORAGE', `git-lfs fetch failed: ${lfsMessage(output)}`, { cause: e, data: { noSpace } });
    if (isNoSpace(said)) throw await storageFailure(archive.dir, said);
    return lfsMessage(output);
  } finally {
    // What git-lfs brought before it failed is kept too: a file of its own either way.
    if (opts.localRemote) await unshareObjects(archive);
    await archive.lfs.dropLogs();
  }
}

/** Options of {@link lfsPush} and {@link lfsFetch}. */
export interface LfsTransferOptions {
  progress?: NodeJS.WritableStream;
  interactive?: boolean;
  /** The remote is a path (or `file://`): git-lfs hard-links objects to and from it on one file system. */
  localRemote?: boolean;
  /** Stops git-lfs when it aborts. */
  signal?: AbortSignal;
}

/** {@link LfsStore.unshare}, a failure told as storage's (a full disk: where and what to free). */
async function unshareObjects(archive: Archive): Promise<void> {
  try {
    await archive.lfs.unshare();
  } catch (e) {
    const said = new BtrflyError('STORAGE', `could not give the Git LFS objects shared with the remote (hard links) a copy of their own: ${(e as Error).message}`, {
      cause: e,
      data: { noSpace: (e as NodeJS.ErrnoException).code === 'ENOSPC' },
    });
    throw isNoSpace(said) ? await storageFailure(archive.dir, said) : said;
  }
}

/**
 * Whether git-lfs must move bodies for these refs: always in an LFS archive. A git mode archive
 * holds LFS bodies only when it pulled a tag from an LFS archive (whose bodies then stay LFS
 * objects while new recordings go into git), and they are then in its LFS store: a push asks
 * git-lfs only when that store holds an object, without listing every object the tags reach
 * (`rev-list --objects` of a whole tag cost a git mode push 0.5 s per 40,000 objects, every
 * time). A pull (`newOnly`) looks for LFS pointers in the recordings no tag here holds yet.
 */
export async function needsLfs(archive: Archive, refs: string[], opts: { newOnly?: boolean } = {}): Promise<boolean> {
  if (archive.lfsMode) return true;
  if (refs.length === 0) return false;
  if (!opts.newOnly) return archive.lfs.holdsObjects();
  const { stdout } = await archive.git.run(['rev-list', '--objects', ...refs, '--not', '--branches']);
  return new RegExp(`^[0-9a-f]+ bodies/[0-9a-f]{2}/[0-9a-f]{64}/(?:${LFS_POINTER_NAME}|lfs-[0-9a-f]{64}\\.zst)$`, 'm').test(stdout);
}

/** What a failed git-lfs run wrote: stderr, then stdout (where it puts some of its refusals). */
function lfsOutput(e: unknown): string {
  const data = (e as BtrflyError).data;
  return [data?.stderr, data?.stdout].filter((s) => typeof s === 'string' && s.trim()).join('\n');
}

/**
 * git-lfs's own line about what failed: a hash that did not match, a missing object, a refusal.
 * A password written into the remote's URL is not shown (git-lfs prints some URLs whole).
 */
function lfsMessage(output: string): string {
  const lines = output.split(/[\r\n]+/).map((l) => l.trim()).filter(Boolean);
  const telling = lines.find((l) => /invalid hash|failed checks|expected OID|does not exist|not found|denied|unauthori[sz]ed|forbidden/i.test(l));
  return (telling ?? lastGitMessage(output)).replace(/^(fatal|error): /, '').replace(/\b([a-z][a-z0-9+.-]*:\/\/[^/@:\s'"]+):[^/@\s'"]*@/gi, '$1:***@');
}

function lfsFailed(what: string, e: unknown): BtrflyError {
  const output = lfsOutput(e);
  if (!output) return e as BtrflyError;
  return new BtrflyError('NETWORK', `${what}: ${lfsMessage(output)}: check the remote's URL ("btrfly remote list"), that its host serves Git LFS, and your git credentials`, {
    cause: e,
    data: { stderr: output },
  });
}
