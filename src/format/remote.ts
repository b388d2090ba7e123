/**
 * Sharing tags through git remotes (docs/contract.md, "Sharing and review"). The git executable does every transfer
 * (`git push` / `git fetch` with explicit refspecs), so memory stays flat whatever the size of
 * a tag, and the user's own git setup (ssh keys and agent, credential helpers) applies: btrfly
 * stores no credential.
 *
 * A pull never moves a tag straight from the network: the remote's branches are fetched into
 * `refs/btrfly/incoming/p<pid>/<remote>/<tag>` (src/format/incoming-refs.ts), every body of every recording that is new here is read
 * back against its SHA-256, and only then is `refs/heads/<tag>` moved, by compare-and-swap.
 *
 * The remotes themselves are in remote-config.ts, one git transfer in remote-transfer.ts, and
 * the refetch of what a repair set aside in remote-refetch.ts.
 */
import { BtrflyError } from '../errors';
import { pauseAt } from '../test-pause';
import type { Archive } from './archive';
import { verifyCommits, type VerifyProblem } from './archive-maintenance';
import type { GitResult } from './git';
import { lastGitMessage, localTransportPrograms } from './git-process';
import { dropOwnIncoming, dropStaleIncoming, incomingPrefix } from './incoming-refs';
import { lfsFetch, lfsPush, needsLfs } from './lfs-transfer';
import { lockHolder } from './lock';
import { dropLocalStaging, pushUnderLimit, type RemoteRef } from './push-split';
import { validateTagName } from './names';
import { remoteUrl } from './remote-config';
import { tagMissingOnRemote, transferTo, withoutRefLines, type TagTransfer, type TransferOptions } from './remote-transfer';

/**
 * Pushes tags (default: every tag) and every object they reach to `remote`. A tag that has
 * recordings on the remote that are not here is refused unless `force`.
 * @throws BtrflyError TAG_NOT_FOUND, NOT_FOUND (remote), TAG_MOVED, NETWORK
 */
export async function pushTags(archive: Archive, remote: string, tags: string[], opts: TransferOptions = {}): Promise<TagTransfer[]> {
  const onHost = localTransportPrograms(await remoteUrl(archive, remote, opts.onWarning));
  // From the refs alone: a tag whose commit is missing does not keep the others from being pushed.
  const heads = await archive.git.run(['for-each-ref', '--format=%(refname:lstrip=2)%00%(objectname)', 'refs/heads/']);
  const local = new Map(heads.stdout.split('\n').filter(Boolean).map((l) => l.split('\0') as [string, string]));
  const names = tags.length ? tags.map(validateTagName) : [...local.keys()];
  for (const t of names) {
    if (!local.has(t)) throw new BtrflyError('TAG_NOT_FOUND', `tag "${t}" not found in archive ${archive.name}: run "btrfly tags" to list tags`, { data: { tag: t } });
    if (!(await archive.tagCommit(t))) {
      const missing = await archive.tagNotReadable(t);
      throw new BtrflyError(missing.code, `${missing.message}; nothing was pushed${tags.length ? '' : ' (name the other tags to push them now)'}`, { data: missing.data });
    }
  }
  if (names.length === 0) throw new BtrflyError('TAG_NOT_FOUND', `no tags in archive ${archive.name} to push: record one first`);
  const specs = names.map((t) => `${opts.force ? '+' : ''}refs/heads/${t}:refs/heads/${t}`);
  const pushOnce = (refspecs: string[]): Promise<GitResult> =>
    transferTo(archive, remote, 'push to', ['push', '--porcelain', '--progress', ...(onHost ? [`--receive-pack=${onHost.receivePack}`] : []), remote, ...refspecs], {
      progress: opts.progress,
      interactive: opts.interactive,
      signal: opts.signal,
      ok: [0, 1],
    });
  const remoteHas = async (): Promise<RemoteRef[]> => {
    const ls = await transferTo(archive, remote, 'list', ['ls-remote', ...(onHost ? [`--upload-pack=${onHost.uploadPack}`] : []), remote], { interactive: opts.interactive, signal: opts.signal });
    return ls.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter(([oid, ref]) => /^[0-9a-f]{40,64}$/.test(oid) && ref)
      .map(([oid, ref]) => ({ oid, ref }));
  };
  // An LFS archive's bodies first: the remote never gets a tag whose bodies it lacks.
  const refs = names.map((t) => `refs/heads/${t}`);
  if (await needsLfs(archive, refs)) await lfsPush(archive, remote, refs, { progress: opts.progress, interactive: opts.interactive, signal: opts.signal, localRemote: onHost !== undefined });
  const { result: r, split } = await pushUnderLimit(archive, remote, specs, names.map((t) => local.get(t)!), pushOnce, remoteHas).finally(() => dropLocalStaging(archive));
  opts.onSplit?.(split);
  // --porcelain: "<flag>\t<from>:<to>\t<summary>" per ref; "!" is a rejection.
  const results: TagTransfer[] = [];
  const rejected: Array<{ tag: string; summary: string }> = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^([ +\-*!=])\t([^:]*):refs\/heads\/(.+)\t(.*)$/.exec(line);
    if (!m) continue;
    const [, flag, , tag, summary] = m;
    if (flag === '!') {
      rejected.push({ tag, summary });
      continue;
    }
    const to = local.get(tag)!;
    const range = /^\+?([0-9a-f]+)(\.\.\.?)([0-9a-f]+)/.exec(summary);
    const status = flag === '*' ? 'new' : flag === '=' ? 'same' : flag === '+' ? 'forced' : 'updated';
    // git abbreviates the remote's old commit; we have it (it is an ancestor, or it was forced over).
    const from = range ? ((await archive.git.refCommit(range[1]).catch(() => null)) ?? range[1]) : null;
    results.push({ tag, status, from, to });
  }
  if (rejected.length) throw pushRejected(remote, rejected, r.stderr, results);
  if (r.code !== 0) throw new BtrflyError('NETWORK', `push to remote ${remote} failed: ${lastGitMessage(r.stderr)}`);
  return results;
}

/**
 * Why the remote refused a push, in git's words. Only "fetch first" and "non-fast-forward"
 * mean the remote holds recordings this archive lacks; any other reason (a hook that
 * declined, objects the remote found missing, a protected branch) is passed on as git and
 * the remote gave it, with what the remote printed, rather than "pull it first".
 */
function pushRejected(remote: string, rejected: Array<{ tag: string; summary: string }>, stderr: string, pushed: TagTransfer[]): BtrflyError {
  const names = rejected.map((x) => x.tag);
  const { tag, summary } = rejected[0];
  const more = rejected.length > 1 ? ` (and ${rejected.length - 1} more: ${names.slice(1).join(', ')})` : '';
  const data = { remote, rejected: names, pushed };
  // "[rejected] (fetch first)", "[remote rejected] (pre-receive hook declined)", "[rejected] (stale info)"
  const reason = /\(([^)]*)\)\s*$/.exec(summary)?.[1] ?? summary.replace(/^\[[^\]]*\]\s*/, '');
  if (/^\[rejected\]/.test(summary) && /fetch first|non-fast-forward/.test(reason)) {
    return new BtrflyError(
      'TAG_MOVED',
      `tag "${tag}"${more} has recordings on remote ${remote} that are not here: pull it first ("btrfly pull ${remote} ${tag}"), or pass --force to replace it there`,
      { data },
    );
  }
  const said = stderr
    .split(/[\r\n]+/)
    .map((l) => (/^remote:\s*(.*?)\s*$/.exec(l)?.[1] ?? '').replace(/^(fatal|error):\s*/, ''))
    .filter((l) => l && !/^(Counting|Compressing|Writing|Receiving|Resolving|Enumerating|Total|Unpacking|Delta compression)/i.test(l));
  const told = said.length ? `; the remote said: ${said.slice(-3).join(' / ').slice(0, 300)}` : '';
  // git on the remote holds the branch's lock: another push (a second terminal, a parallel CI job) updates it now.
  if (said.some((l) => /cannot lock ref|Unable to create '.*\.lock'/.test(l))) {
    const lockFile = /'([^']+\.lock)'/.exec(said.join(' '))?.[1] ?? 'the ".lock" file of the branch';
    return new BtrflyError(
      'TAG_BUSY',
      `tag "${tag}"${more} is being updated on remote ${remote} by another push right now: the tag here is unchanged; run "btrfly push ${remote} ${names.join(' ')}" again when it is done (if no other push runs, a crashed git left its lock on the remote: remove ${lockFile} there)`,
      { data: { ...data, reason } },
    );
  }
  return new BtrflyError(
    'NETWORK',
    `push of tag "${tag}"${more} to remote ${remote} was refused by the remote: ${reason}${told}: the tag here is unchanged; fix the cause on the remote's side, then push again`,
    { data: { ...data, reason } },
  );
}

/** One tag a pull refused, and why. */
export interface PullRefusal {
  tag: string;
  code: 'TAG_MOVED' | 'TAG_BUSY' | 'BODY_CORRUPT' | 'BAD_TAG_NAME';
  message: string;
  problems?: VerifyProblem[];
}

/**
 * Fetches tags (default: every tag of the remote) into a quarantine namespace, verifies every
 * body of every recording that is new here, then moves each tag by compare-and-swap. A tag
 * that moved both here and on the remote is refused unless `force`. Tags that pass are taken
 * even when another is refused; the refusals are then thrown as one error.
 * @throws BtrflyError NOT_FOUND (remote), TAG_NOT_FOUND (on the remote), BODY_CORRUPT, TAG_MOVED, NETWORK
 */
export async function pullTags(archive: Archive, remote: string, tags: string[], opts: TransferOptions = {}): Promise<TagTransfer[]> {
  const onHost = localTransportPrograms(await remoteUrl(archive, remote, opts.onWarning));
  const names = tags.map(validateTagName);
  const incoming = incomingPrefix(remote);
  // What a pull killed earlier (from any remote) left: its process is gone.
  await dropStaleIncoming(archive);
  // Known before the fetch, which may bring such a recording back: the tag then reads again, and is checked as new.
  const missing = await missingTips(archive);
  const specs = names.length ? names.map((t) => `+refs/heads/${t}:${incoming}${t}`) : [`+refs/heads/*:${incoming}*`];
  try {
    await transferTo(
      archive,
      remote,
      'fetch from',
      ['fetch', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', '--progress', ...(onHost ? [`--upload-pack=${onHost.uploadPack}`] : []), remote, ...specs],
      { progress: opts.progress && withoutRefLines(opts.progress), interactive: opts.interactive, signal: opts.signal },
    );
  } catch (e) {
    // A fetch stopped part way (a signal, the bound) may have written some of its refs.
    await dropOwnIncoming(archive, remote);
    throw tagMissingOnRemote(e, remote) ?? (await localTagUnreadable(archive, e, remote, names)) ?? e;
  }
  try {
    await pauseAt('pull-fetched');
    opts.signal?.throwIfAborted();
    const { stdout } = await archive.git.run(['for-each-ref', '--format=%(refname)%00%(objectname)', incoming]);
    const fetched = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [ref, commit] = l.split('\0');
        return { tag: ref.slice(incoming.length), commit };
      });
    const results: TagTransfer[] = [];
    const refused: PullRefusal[] = [];
    const checked = new Map<string, VerifyProblem | null>();
    // An LFS archive's bodies come through git-lfs; what it could not bring, verification finds missing.
    const incomingRefs = fetched.map((f) => incoming + f.tag);
    const lfsTrouble = (await needsLfs(archive, incomingRefs, { newOnly: true }))
      ? await lfsFetch(archive, remote, incomingRefs, { progress: opts.progress, interactive: opts.interactive, signal: opts.signal, localRemote: onHost !== undefined })
      : undefined;
    for (const { tag, commit } of fetched) {
      opts.signal?.throwIfAborted();
      const outcome = await takeTag(archive, remote, tag, commit, checked, opts, missing.get(tag));
      if ('code' in outcome) refused.push(lfsTrouble && outcome.code === 'BODY_CORRUPT' ? { ...outcome, message: `${outcome.message} (git-lfs said: ${lfsTrouble})` } : outcome);
      else results.push(outcome);
    }
    if (refused.length) {
      const first = refused[0];
      const more = refused.length > 1 ? ` (${refused.length - 1} more tag${refused.length > 2 ? 's' : ''} refused: ${refused.slice(1).map((r) => r.tag).join(', ')})` : '';
      throw new BtrflyError(first.code, first.message + more, { data: { remote, refused, pulled: results } });
    }
    return results;
  } finally {
    await dropOwnIncoming(archive, remote);
  }
}

async function takeTag(
  archive: Archive,
  remote: string,
  tag: string,
  commit: string,
  checked: Map<string, VerifyProblem | null>,
  opts: TransferOptions,
  wasMissing?: string,
): Promise<TagTransfer | PullRefusal> {
  try {
    validateTagName(tag);
  } catch (e) {
    return { tag, code: 'BAD_TAG_NAME', message: `branch "${tag}" of remote ${remote} is not a usable tag name, skipped: ${(e as Error).message}` };
  }
  const git = archive.git;
  const local = await archive.tagCommit(tag);
  // The tag's newest recording was missing here and the fetch brought it back: checked like a new one, not "up to date".
  const restoring = wasMissing !== undefined && local === wasMissing;
  if (local === commit && !restoring) return { tag, status: 'same', from: local, to: commit };
  if (local && local !== commit && (await isAncestor(archive, commit, local))) return { tag, status: 'ahead', from: local, to: local };
  const fastForward = local === null || (await isAncestor(archive, local, commit));
  if (!fastForward && !opts.force) {
    return {
      tag,
      code: 'TAG_MOVED',
      message:
        `tag "${tag}" has new recordings both here and on remote ${remote}: ` +
        `pass --force to take the remote's (yours stay reachable as ${local!.slice(0, 12)} until "btrfly gc"), or "btrfly push --force ${remote} ${tag}" to keep yours`,
    };
  }
  const holder = await lockHolder(archive.locksDir, tag);
  if (holder) return { tag, code: 'TAG_BUSY', message: `tag "${tag}" is being recorded here (session ${holder.session}): stop the recording, then pull again` };
  // Every recording the tag would bring that no tag here already holds (and so was checked
  // when it was recorded or pulled): its manifest parses, and each body reads back whole.
  // A tag whose recording was missing: its own ref does not vouch for what it now reaches.
  const { stdout } = await git.run(['rev-list', commit, '--not', ...(restoring ? [`--exclude=${tag}`] : []), '--branches']);
  const commits = stdout.split('\n').filter(Boolean);
  const problems = await verifyCommits(archive, tag, commits, checked, opts.onVerifyRead, opts.signal);
  // Interrupted: the tag does not move on a check that did not finish.
  opts.signal?.throwIfAborted();
  if (problems.length) {
    const p = problems[0];
    return {
      tag,
      code: 'BODY_CORRUPT',
      message:
        `pull of tag "${tag}" from remote ${remote} refused, the tag here is unchanged: recording ${p.commit.slice(0, 12)}: ${p.what ?? p.message}: ` +
        `the copy on remote ${remote} is damaged or missing: pull the tag from another remote, or push it to ${remote} again from an archive where "btrfly verify ${tag}" is clean ` +
        `(a Git LFS object damaged on ${remote} must be deleted from its LFS store first: git-lfs does not send an object the remote already has)`,
      problems,
    };
  }
  await pauseAt('pull-verified');
  if (!(await git.updateRef(`refs/heads/${tag}`, commit, local))) {
    // Another pull (a second terminal, a parallel CI job) moved it to this same recording first.
    if ((await archive.tagCommit(tag)) === commit) return { tag, status: 'same', from: commit, to: commit };
    return { tag, code: 'TAG_MOVED', message: `tag "${tag}" changed here while btrfly was pulling it: run the pull again` };
  }
  if (restoring && local === commit) return { tag, status: 'restored', from: local, to: commit };
  return { tag, status: local === null ? 'new' : fastForward ? 'updated' : 'forced', from: local, to: commit };
}

/** The tags whose ref names a commit the archive lacks (what a repair no remote could help leaves), with that commit. */
async function missingTips(archive: Archive): Promise<Map<string, string>> {
  const { stdout } = await archive.git.run(['for-each-ref', '--format=%(objectname) %(refname:lstrip=2)', 'refs/heads/']);
  const refs = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)] as const);
  if (!refs.length) return new Map();
  const check = await archive.git.run(['cat-file', '--batch-check=%(objectname)'], { input: refs.map(([oid]) => oid).join('\n') + '\n' });
  const answers = check.stdout.split('\n');
  return new Map(refs.filter((_, i) => answers[i]?.endsWith(' missing')).map(([oid, tag]) => [tag, oid]));
}

async function isAncestor(archive: Archive, ancestor: string, of: string): Promise<boolean> {
  const r = await archive.git.run(['merge-base', '--is-ancestor', ancestor, of], { ok: [0, 1] });
  return r.code === 0;
}

/**
 * git's fetch checks what it brought against every ref of the archive, and fails ("bad object
 * refs/heads/T") while a tag names a commit the archive lacks or cannot read, whatever the pull
 * asked for: said as that tag's trouble, with what to do, not as the remote's.
 */
async function localTagUnreadable(archive: Archive, e: unknown, remote: string, names: string[]): Promise<BtrflyError | undefined> {
  const bad = /bad object refs\/heads\/(\S+)/.exec(String((e as BtrflyError).data?.stderr ?? ''));
  if (!bad) return undefined;
  const tag = bad[1];
  const target = (await archive.tagRefTarget(tag)) ?? '';
  const again = `btrfly pull ${remote}${names.map((t) => ` ${t}`).join('')}`;
  return new BtrflyError(
    'BODY_MISSING',
    `tag "${tag}" points at recording ${target.slice(0, 12)}, which is missing from the archive, and git fetches nothing from remote ${remote} while it is so: ` +
      `run "btrfly verify --repair ${tag}" to fetch it again from the archive's remotes (or "btrfly rm ${tag}"), then "${again}"`,
    { cause: e, data: { tag, commit: target, remote } },
  );
}

