/**
 * Sharing tags through git remotes (docs/contract.md, "Sharing and review"). The git executable does every transfer
 * (`git push` / `git fetch` with explicit refspecs), so memory stays flat whatever the size of
 * a tag, and the user's own git setup (ssh keys and agent, credential helpers) applies: btrfly
 * stores no credential.
 *
 * A pull never moves a tag straight from the network: the remote's branches are fetched into
 * `refs/btrfly/incoming/p<pid>/<remote>/<tag>` (src/format/incoming-refs.ts), every body of every recording that is new here is read
 * back against its SHA-256, and only then is `refs/heads/<tag>` moved, by compare-and-swap.
 */
import { isAbsolute, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { BtrflyError } from '../errors';
import { pauseAt } from '../test-pause';
import type { Archive } from './archive';
import { gitTempFiles, removeGitTempsSince, verifyCommits, type VerifyProblem } from './archive-maintenance';
import { storageFailure } from './disk-space';
import type { GitResult } from './git';
import { lastGitMessage, localTransportPrograms } from './git-process';
import { dropOwnIncoming, dropStaleIncoming, incomingPrefix } from './incoming-refs';
import { lfsFetch, lfsPush, needsLfs } from './lfs-transfer';
import { isNoSpace } from './lifecycle';
import { lockHolder } from './lock';
import { dropLocalStaging, pushUnderLimit, setMaxPush, type PushSplit, type RemoteRef } from './push-split';
import { compareStrings } from './manifest';
import { tagNameProblem, validateTagName } from './names';
import { handshakeStalls, isStall, stalled, transferBound } from './transfer-bound';

/** A configured remote. */
export interface RemoteInfo {
  name: string;
  url: string;
  /** The most one push may carry, in bytes, when set or learned (see push-split.ts). */
  maxPush?: number;
}

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
 * Checks a remote name: what `git remote add` accepts and a ref path component allows.
 * @throws BtrflyError USAGE
 */
export function validateRemoteName(name: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name) || name.endsWith('.lock') || name.includes('..')) {
    throw new BtrflyError('USAGE', `"${name}" is not a usable remote name: use letters, digits, ".", "_" and "-", e.g. "origin"`);
  }
  return name;
}

/**
 * A URL as git will use it later from any working directory: a local path is made absolute;
 * `https://`, `ssh://`, `file://` and scp-like `host:path` are kept as given.
 */
export function normalizeRemoteUrl(url: string, cwd = process.cwd()): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return url;
  // scp-like syntax: a colon before the first slash (`git@host:repo.git`), as git reads it.
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  if (colon > 0 && (slash < 0 || colon < slash)) return url;
  return isAbsolute(url) ? url : resolve(cwd, url);
}

/** `scheme://userinfo@` at the start of a URL; the last `@` before the path ends the userinfo, as git reads it. */
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i;

/** The forms of access token GitHub and GitLab issue, which git hosts take as a user name with no password. */
const TOKEN_USER = /^(gh[pousr]_|github_pat_|glpat-)/;

/** A credential written into a remote's URL, and the same URL without it. */
export interface UrlCredential {
  kind: 'password' | 'token';
  /** The URL to use instead: the user name kept when it is not itself the token. */
  without: string;
}

/**
 * The credential a URL carries in its userinfo: a password (`https://user:password@host/…`),
 * or an access token given as the user name (`https://ghp_…@github.com/…`). btrfly stores
 * neither in the archive (docs/notes/remotes.md, "Credentials").
 */
export function urlCredential(url: string): UrlCredential | undefined {
  const m = USERINFO.exec(url);
  if (!m) return undefined;
  const colon = m[2].indexOf(':');
  const user = colon < 0 ? m[2] : m[2].slice(0, colon);
  const rest = url.slice(m[0].length);
  if (TOKEN_USER.test(user)) return { kind: 'token', without: m[1] + rest };
  if (colon >= 0 && colon < m[2].length - 1) return { kind: 'password', without: `${m[1]}${user ? `${user}@` : ''}${rest}` };
  return undefined;
}

/** Where a credential goes instead of the URL: one clause, for the messages below. */
const CREDENTIAL_ADVICE = 'give it to git\'s credential helper instead (see "git help gitcredentials")';

/**
 * The warning for a remote whose URL, stored in the archive's config by an older btrfly,
 * carries a credential; undefined when it carries none.
 */
export function storedCredentialWarning(archive: Archive, remote: RemoteInfo): string | undefined {
  const found = urlCredential(remote.url);
  if (!found) return undefined;
  return (
    `the URL of remote ${remote.name} holds ${found.kind === 'password' ? 'a password' : 'an access token'}, written into archive ${archive.name}'s git config: ` +
    `${CREDENTIAL_ADVICE}, then run "btrfly remote remove ${remote.name}" and "btrfly remote add ${remote.name} ${displayUrl(found.without)}"`
  );
}

/** A URL for display: a password written into it is not shown. */
export function displayUrl(url: string): string {
  const m = USERINFO.exec(url);
  if (!m) return url;
  const colon = m[2].indexOf(':');
  const user = colon < 0 ? m[2] : m[2].slice(0, colon);
  const shown = TOKEN_USER.test(user) ? '***' : colon < 0 ? user : `${user}:***`;
  return `${m[1]}${shown}@${url.slice(m[0].length)}`;
}

/** Every configured remote, by name. */
export async function listRemotes(archive: Archive): Promise<RemoteInfo[]> {
  // One read for the URLs and the push limits (git prints variable names lower-cased).
  const r = await archive.git.run(['config', '--get-regexp', '^remote\\..*\\.(url|btrflymaxpush)$'], { ok: [0, 1] });
  const byName = new Map<string, RemoteInfo>();
  const limits = new Map<string, number>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const sp = line.indexOf(' ');
    const key = line.slice(0, sp);
    const value = line.slice(sp + 1);
    const dot = key.lastIndexOf('.');
    const name = key.slice('remote.'.length, dot);
    if (key.slice(dot + 1) === 'url') byName.set(name, { name, url: value });
    else if (Number.isSafeInteger(Number(value)) && Number(value) > 0) limits.set(name, Number(value));
  }
  for (const [name, limit] of limits) {
    const remote = byName.get(name);
    if (remote) remote.maxPush = limit;
  }
  return [...byName.values()].sort((a, b) => compareStrings(a.name, b.name));
}

async function remoteUrl(archive: Archive, name: string, onWarning?: (line: string) => void): Promise<string> {
  validateRemoteName(name);
  const found = (await listRemotes(archive)).find((r) => r.name === name);
  if (!found) {
    throw new BtrflyError('NOT_FOUND', `no remote "${name}" in archive ${archive.name}: add it with "btrfly remote add ${name} URL"`, { data: { remote: name } });
  }
  const warning = onWarning && storedCredentialWarning(archive, found);
  if (warning) onWarning(warning);
  return found.url;
}

/**
 * Adds a remote. Only the URL is stored (in the archive's git config); git's own
 * configuration supplies credentials when it talks to it.
 * @throws BtrflyError USAGE for a bad name, TAG_EXISTS-like CONFIG when the name is taken
 */
export async function addRemote(archive: Archive, name: string, url: string, opts: { maxPush?: number } = {}): Promise<RemoteInfo & { updated?: boolean }> {
  validateRemoteName(name);
  if (!url.trim()) throw new BtrflyError('USAGE', 'the remote URL is empty: give a path, an https:// or an ssh:// URL');
  const credential = urlCredential(url);
  if (credential) {
    throw new BtrflyError(
      'USAGE',
      `the URL of remote "${name}" holds ${credential.kind === 'password' ? 'a password' : 'an access token'}, and btrfly writes no credential into the archive: ` +
        `add ${displayUrl(credential.without)} and ${CREDENTIAL_ADVICE}`,
      { data: { remote: name } },
    );
  }
  const existing = (await listRemotes(archive)).find((r) => r.name === name);
  // The same remote again with a push limit: the limit is set (how a learned one is changed).
  if (existing && opts.maxPush !== undefined && existing.url === normalizeRemoteUrl(url)) {
    await setMaxPush(archive, name, opts.maxPush);
    return { ...existing, maxPush: opts.maxPush, updated: true };
  }
  if (existing) {
    throw new BtrflyError('CONFIG', `remote "${name}" already exists in archive ${archive.name}: remove it first with "btrfly remote remove ${name}"`, {
      data: { remote: name },
    });
  }
  const normalized = normalizeRemoteUrl(url);
  // No fetch refspec of git's own: a plain `git fetch` must not bring tags in unverified.
  await archive.git.run(['config', `remote.${name}.url`, normalized]);
  if (opts.maxPush !== undefined) await setMaxPush(archive, name, opts.maxPush);
  return { name, url: normalized, ...(opts.maxPush !== undefined && { maxPush: opts.maxPush }) };
}

/**
 * Removes a remote, the settings git-lfs keeps for its URL (`[lfs "<url>/info/lfs"]`, which
 * names the URL whole, with a password an older btrfly stored in it) and the refs of pulls that
 * were killed.
 */
export async function removeRemote(archive: Archive, name: string): Promise<void> {
  const url = await remoteUrl(archive, name);
  await archive.git.run(['config', '--remove-section', `remote.${name}`]);
  const lfs = await archive.git.run(['config', '--name-only', '--get-regexp', '^lfs\\..+\\.'], { ok: [0, 1] });
  const base = url.replace(/\.git\/?$/, '');
  const sections = new Set(lfs.stdout.split('\n').map((key) => key.slice(0, key.lastIndexOf('.'))));
  for (const section of sections) {
    if (section.startsWith('lfs.') && section.slice('lfs.'.length).startsWith(base)) await archive.git.run(['config', '--remove-section', section]);
  }
  await dropStaleIncoming(archive);
}

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
      message: `pull of tag "${tag}" from remote ${remote} refused, the tag here is unchanged: recording ${p.commit.slice(0, 12)}: ${p.message}`,
      problems,
    };
  }
  if (!(await git.updateRef(`refs/heads/${tag}`, commit, local))) {
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

/**
 * git's progress as it comes (segments end in \r or \n, so a progress line updates in place),
 * less fetch's ref-update lines, which name the quarantine refs and not what the user asked for:
 * the summary per tag comes after verification.
 */
function withoutRefLines(out: NodeJS.WritableStream): NodeJS.WritableStream {
  let partial = '';
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, cb) {
      const segments = (partial + chunk.toString()).split(/(?<=[\r\n])/);
      partial = /[\r\n]$/.test(segments[segments.length - 1]) ? '' : segments.pop()!;
      const keep = segments.filter((seg) => !/^From |^ [*+ !=t-] .* -> refs\/btrfly\/incoming\//.test(seg)).join('');
      if (keep) out.write(keep);
      cb();
    },
  });
}

/**
 * git's transfer, its failure told with the remote's name and what to check. Fetches and pushes
 * are given `--progress` whether or not it is shown: the pack's bytes moving are what tells
 * btrfly's watchdog (`idleSeconds`) that the transfer is alive.
 */
async function transferTo(
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
    throw new BtrflyError(
      'NETWORK',
      `${what} remote ${remote} failed: ${lastGitMessage(stderr)}: check its URL ("btrfly remote list") and your git credentials (ssh key or agent, credential helper)`,
      { cause: e, data: { remote, stderr } },
    );
  }
}

async function isAncestor(archive: Archive, ancestor: string, of: string): Promise<boolean> {
  const r = await archive.git.run(['merge-base', '--is-ancestor', ancestor, of], { ok: [0, 1] });
  return r.code === 0;
}

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

/** A fetch that failed because the remote has no such tag, told as such. */
function tagMissingOnRemote(e: unknown, remote: string): BtrflyError | undefined {
  const missing = /couldn't find remote ref refs\/heads\/(\S+)/.exec(String((e as BtrflyError).data?.stderr ?? ''));
  if (!missing) return undefined;
  return new BtrflyError('TAG_NOT_FOUND', `tag "${missing[1]}" not found on remote ${remote}: run "git ls-remote ${remote}" in the archive to see its branches`, {
    data: { remote, tag: missing[1] },
  });
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

/**
 * Fetches the Git LFS objects of `tags` that the local store lacks from `remote`.
 * @throws BtrflyError NETWORK when git-lfs could not fetch every one, with what it said
 */
export async function refetchLfs(archive: Archive, remote: string, tags: string[], opts: TransferOptions = {}): Promise<void> {
  const local = localTransportPrograms(await remoteUrl(archive, remote)) !== undefined;
  const trouble = await lfsFetch(archive, remote, tags.map((t) => `refs/heads/${validateTagName(t)}`), { progress: opts.progress, interactive: opts.interactive, signal: opts.signal, localRemote: local });
  if (trouble) throw new BtrflyError('NETWORK', `git-lfs could not fetch every body from remote ${remote}: ${trouble}`, { data: { remote } });
}
