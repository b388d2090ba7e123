/**
 * The archive's git remotes: names, URLs (never with a credential in them) and push limits, kept
 * in the archive's git config (docs/contract.md, "Sharing and review"). The transfers are in
 * remote.ts.
 */
import { isAbsolute, resolve } from 'node:path';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { dropStaleIncoming } from './incoming-refs';
import { compareStrings } from './manifest';
import { setMaxPush } from './push-split';

/** A configured remote. */
export interface RemoteInfo {
  name: string;
  url: string;
  /** The most one push may carry, in bytes, when set or learned (see push-split.ts). */
  maxPush?: number;
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

/** The URL of remote `name`, warning through `onWarning` when it holds a credential. @throws BtrflyError NOT_FOUND */
export async function remoteUrl(archive: Archive, name: string, onWarning?: (line: string) => void): Promise<string> {
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

