/**
 * One git transfer with a remote (`git push`, `git fetch`, `git ls-remote`): bounded by the
 * archive's watchdog (transfer-bound.ts), its failure told with the remote's name and what to
 * check, and what it leaves behind on a full disk removed.
 */
import { Writable } from 'node:stream';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { gitTempFiles, removeGitTempsSince } from './archive-maintenance';
import { storageFailure } from './disk-space';
import { segmentFilter, type GitResult } from './git';
import { lastGitMessage } from './git-process';
import { isNoSpace } from './lifecycle';
import type { PushSplit } from './push-split';
import { handshakeStalls, isStall, stalled, transferBound } from './transfer-bound';

/** Options of {@link pushTags} and {@link pullTags}. */
export interface TransferOptions {
  /** Replace a tag that moved on the other side. */
  force?: boolean;
  /** Where git's progress goes (a terminal); nothing is shown when unset. */
  progress?: NodeJS.WritableStream;
  /** Let git ask for passwords and passphrases on the terminal. */
  interactive?: boolean;
  /** Called with the size of each chunk of body read back while verifying a pull. */
  onVerifyRead?: (bytes: number) => void;
  /** Called after a push with how it went around the remote's size limit (undefined: one push did). */
  onSplit?: (split: PushSplit | undefined) => void;
  /** Called once with what the user should fix but need not stop for (a credential stored in the remote's URL). */
  onWarning?: (line: string) => void;
  /** Stops the transfer (git is sent SIGTERM) and the work after it at the next safe point; what was begun is undone. */
  signal?: AbortSignal;
}

/** What happened to one tag in a push or a pull. */
export interface TagTransfer {
  tag: string;
  /**
   * new: created on the receiving side; updated: fast-forward; forced: replaced; same: nothing to do; ahead: the receiving side has more;
   * restored (a pull): the tag's newest recording was missing here, and was brought back and checked.
   */
  status: 'new' | 'updated' | 'forced' | 'same' | 'ahead' | 'restored';
  from: string | null;
  to: string;
}

/**
 * git's progress as it comes (segments end in \r or \n, so a progress line updates in place),
 * less fetch's ref-update lines, which name the quarantine refs and not what the user asked for:
 * the summary per tag comes after verification.
 */
export function withoutRefLines(out: NodeJS.WritableStream): NodeJS.WritableStream {
  const filter = segmentFilter(/^From |^ [*+ !=t-] .* -> refs\/btrfly\/incoming\//, (s) => out.write(s));
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, cb) {
      filter.write(chunk.toString());
      cb();
    },
  });
}

/**
 * git's transfer, its failure told with the remote's name and what to check. Fetches and pushes
 * are given `--progress` whether or not it is shown: the pack's bytes moving are what tells
 * btrfly's watchdog (`idleSeconds`) that the transfer is alive.
 */
export async function transferTo(
  archive: Archive,
  remote: string,
  what: string,
  args: string[],
  opts: Parameters<Archive['git']['transfer']>[1],
): Promise<GitResult> {
  opts?.signal?.throwIfAborted();
  const temps = await gitTempFiles(archive.dir);
  const bound = await transferBound(archive);
  // The URL git will reach: url.<base>.insteadOf and pushInsteadOf applied, the push URL for a push.
  const { stdout: url } = await archive.git.run(['remote', 'get-url', ...(args[0] === 'push' ? ['--push'] : []), remote], { ok: [0, 2, 128] });
  const handshake = await handshakeStalls(remote, url.trim(), bound, opts?.signal);
  if (handshake) throw stalled(archive, remote, what, bound.seconds, handshake);
  try {
    return await archive.git.transfer(args, { ...opts, env: { ...opts?.env, ...bound.env }, idleSeconds: bound.idleSeconds });
  } catch (e) {
    // A fetch that failed (a full disk) can leave its pack's temp file, as big as what came:
    // on a full disk even gc could not run any more to remove it.
    await removeGitTempsSince(archive.dir, temps);
    if (isNoSpace(e)) throw await storageFailure(archive.dir, e);
    // btrfly's own watchdog stopped it: a transport with no bound of its own (a wrapper ssh command) or one still connecting (curl's TLS handshake).
    if ((e as BtrflyError).data?.idle) throw stalled(archive, remote, what, bound.seconds, (e as Error).message, e);
    const stderr = String((e as BtrflyError).data?.stderr ?? '');
    if (!stderr) throw e;
    if (bound.seconds && isStall(stderr)) throw stalled(archive, remote, what, bound.seconds, stderr, e);
    const foreign = notSafeDirectory(stderr);
    if (foreign) throw new BtrflyError('NETWORK', `${what} remote ${remote} failed: ${foreign}`, { cause: e, data: { remote, stderr } });
    throw new BtrflyError(
      'NETWORK',
      `${what} remote ${remote} failed: ${lastGitMessage(stderr)}: check its URL ("btrfly remote list") and your git credentials (ssh key or agent, credential helper)`,
      { cause: e, data: { remote, stderr } },
    );
  }
}

/**
 * git's refusal of a repository on this machine that another user owns (a team's shared
 * directory, one made by root), told as such: the URL and the credentials are not the cause.
 * btrfly does not lift the check itself; the user says which repositories they trust.
 */
function notSafeDirectory(stderr: string): string | undefined {
  const at = /detected dubious ownership in repository at '([^'\n]+)'/.exec(stderr)?.[1];
  if (at === undefined) return undefined;
  return `the repository at ${at} belongs to another user, and git refuses to use it: if you trust it, run "git config --global --add safe.directory ${at}" and try again`;
}

/** A fetch that failed because the remote has no such tag, told as such. */
export function tagMissingOnRemote(e: unknown, remote: string): BtrflyError | undefined {
  const missing = /couldn't find remote ref refs\/heads\/(\S+)/.exec(String((e as BtrflyError).data?.stderr ?? ''));
  if (!missing) return undefined;
  return new BtrflyError('TAG_NOT_FOUND', `tag "${missing[1]}" not found on remote ${remote}: run "git ls-remote ${remote}" in the archive to see its branches`, {
    data: { remote, tag: missing[1] },
  });
}

