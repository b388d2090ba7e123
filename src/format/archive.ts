/**
 * The archive: a bare git repository where tag T is the branch `refs/heads/T` and each
 * recording is one commit holding `manifest.json`, `volatile.json` and `bodies/`
 * (docs/archive-format.md). Bodies are read and written through the {@link BodyStore} interface.
 */
import { access, constants, mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { BtrflyError, withoutAdvice } from '../errors';
import { createArchive } from './archive-init';
import { BodyCache } from './body-cache';
import { BodyChecks } from './body-checks';
import { openBody, readSmallBody } from './body-reader';
import { createBodyWriter } from './body-writer';
import { Git, isSmallBody } from './git';
import { openLfsBody, readSmallLfsBody } from './lfs-body-reader';
import { createLfsBodyWriter } from './lfs-body-writer';
import { checkGitLfs, LFS_POINTER_NAME, lfsOidOfPointerName, LfsStore, STORAGE_LFS } from './lfs-store';
import { readJournal } from './journal';
import { makeDirs, MakeDirError } from './make-dirs';
import type { AsideRecording } from './lifecycle';
import { lockHolder, lockPending, type LockHolder } from './lock';
import { parseManifest, parseVolatile } from './manifest';
import { validateTagName } from './names';
import { repairAdvice, type TagLeft, type BodyLocation, type BodyStore, type BodyWriter, type ByteRange, type Recording, type StoredBody } from './types';

/** A tag as listed by `btrfly tags`. */
export interface TagInfo {
  tag: string;
  commit: string;
  /** Commit date of the last recording, ISO 8601. */
  date: string;
}

/** One recording in a tag's history, newest first. */
export interface HistoryItem {
  commit: string;
  date: string;
  parent: string | null;
  summary: string;
}

/** A recording left unsealed by a writer that stopped (crash, kill). */
export interface PendingRecording {
  id: string;
  tag: string;
  session: string;
  entries: number;
  started: string;
  /** Set while a live writer still holds the tag. */
  activeHolder: LockHolder | null;
  /** The process that wrote it. */
  pid: number;
  /** Set when the recording was kept aside on purpose: the command's exit status. */
  exitCode?: number;
  /** Set when connections btrfly could not carry held the recording back (run --isolate). */
  leaks?: number;
}

const TAG_REF = (tag: string): string => `refs/heads/${tag}`;

export class Archive implements BodyStore {
  /** The archive's git; for the format layer's own modules. */
  readonly git: Git;
  /** `<archive>/btrfly`: locks, journals and temp files; never part of any commit. */
  readonly stateDir: string;
  /** Bodies as plain files for fast playback (src/format/body-cache.ts); unset when `btrfly.bodyCache` is false. */
  cache?: BodyCache;
  /** Per-part checks of bodies, so playback verifies each part before sending it (src/format/body-checks.ts). */
  checks!: BodyChecks;
  /** git-lfs's object store of the archive, where LFS bodies are (src/format/lfs-store.ts). */
  readonly lfs: LfsStore;
  /** Set for an archive made with `btrfly init --lfs` (or migrated): new bodies become LFS objects, push and pull run git-lfs. */
  lfsMode = false;
  /**
   * Set when btrfly may not write the archive's state (a read-only mount: EROFS; another user's:
   * EACCES, EPERM): the reason. Then nothing is written to it: new body checks are kept in memory
   * for the run, and the body cache (when there is one) is read but not filled (see {@link readOnlyNote}).
   */
  readOnly?: string;
  /** Of a {@link readOnly} archive: bodies read from git because its body cache does not hold them (slower than from a cache it could fill). */
  uncachedReads = 0;

  /** A body in git mode is written twice (its git objects and the body cache), in LFS mode once. */
  get bodyCopies(): number {
    return this.lfsMode ? 1 : 2;
  }

  /**
   * @param dir absolute path of the archive
   * @param name the archive as the user named it (e.g. `.btrfly`), for messages
   */
  private constructor(
    readonly dir: string,
    readonly name: string = dir,
  ) {
    this.git = new Git(dir);
    this.stateDir = join(dir, 'btrfly');
    this.lfs = new LfsStore(dir);
  }

  /**
   * Opens the archive at `dir`, creating it when `create` is set and nothing is there.
   * @param opts.writes the command that changes the archive (`btrfly rm`): refused in one line when the archive is {@link readOnly}
   * @throws BtrflyError ARCHIVE_NOT_FOUND, ARCHIVE_INVALID; STORAGE for `writes` on a read-only archive
   */
  static async open(dir: string, opts: { create?: boolean; lfs?: boolean; writes?: string } = {}): Promise<Archive> {
    const abs = resolve(dir);
    const a = new Archive(abs, dir);
    const exists = await stat(abs).then((s) => s.isDirectory(), () => false);
    const empty = exists && (await readdir(abs)).length === 0;
    if (!exists || empty) {
      if (!opts.create) {
        throw new BtrflyError('ARCHIVE_NOT_FOUND', `no archive at ${dir}: record a tag first or pass --archive`, { data: { dir } });
      }
      await makeDirs(abs).catch((e: unknown) => {
        if (!(e instanceof MakeDirError)) throw e;
        throw new BtrflyError('ARCHIVE_INVALID', `cannot create archive ${dir}: ${e.path === abs ? e.reason : e.message}: pass --archive a directory that can be made`, { cause: e, data: { dir, code: e.code } });
      });
      // Another command may make it at the same moment: then its archive is opened, as found.
      if (!(await createArchive(abs, { lfs: opts.lfs }))) return Archive.open(dir, { lfs: opts.lfs });
    } else {
      const r = await a.git.run(['rev-parse', '--is-bare-repository'], { ok: [0, 128] }).catch(() => undefined);
      // An archive whose git config was damaged (hand edits, a disk error) is still the archive: say so, not "not an archive".
      const badConfig = r && r.code !== 0 ? /^fatal: (bad config line \d+ in file .*)$/m.exec(r.stderr) : null;
      if (badConfig) {
        throw new BtrflyError('ARCHIVE_INVALID', `the archive ${dir} has a damaged git config (git: ${badConfig[1].trim()}): fix that line or restore the file`, {
          data: { dir },
        });
      }
      if (!r || r.code !== 0 || r.stdout.trim() !== 'true') {
        throw new BtrflyError('ARCHIVE_INVALID', `${dir} is not a btrfly archive (a bare git repository): pass --archive with the right directory`, {
          data: { dir },
        });
      }
    }
    a.readOnly = await unwritable(a.stateDir, abs);
    if (a.readOnly && opts.writes) throw readOnlyRefusal(a, opts.writes);
    if (!a.readOnly) await Promise.all(['locks', 'pending', 'tmp'].map((d) => mkdir(join(a.stateDir, d), { recursive: true })));
    // btrfly's two settings in one git call (one process start less for every command).
    const { stdout } = await a.git.run(['config', '--get-regexp', '^btrfly\\.(bodycache|storage)$'], { ok: [0, 1] });
    const settings = new Map(
      stdout
        .split('\n')
        .filter(Boolean)
        // A key set without a value (`bodyCache` alone in the file) is listed without one: true.
        .map((l) => (l.includes(' ') ? ([l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)] as const) : ([l, 'true'] as const))),
    );
    // git's false values (`--type=bool` reads them so); unset is true.
    const cacheOff = /^(false|no|off|0|)$/i.test(settings.get('btrfly.bodycache') ?? 'true');
    if (!cacheOff) a.cache = new BodyCache(join(a.stateDir, 'cache'), Boolean(a.readOnly));
    a.checks = await (a.readOnly ? BodyChecks.readOnly : BodyChecks.open)(join(a.stateDir, 'checks'));
    a.lfsMode = settings.get('btrfly.storage') === STORAGE_LFS;
    return a;
  }

  /**
   * Creates a new archive at `dir` (`btrfly init`).
   * @param opts.lfs keep bodies as Git LFS objects (needs the git-lfs client)
   * @throws BtrflyError CONFIG when `dir` is not empty, or git-lfs is missing
   */
  static async create(dir: string, opts: { lfs?: boolean } = {}): Promise<Archive> {
    const abs = resolve(dir);
    const used = await readdir(abs).then((f) => f.length > 0, () => false);
    if (used) {
      const what = await Archive.open(dir).then(async (a) => (await a.close(), `an archive (${a.lfsMode ? 'Git LFS' : 'git'} mode)`), () => 'not empty');
      throw new BtrflyError('CONFIG', `${dir} is ${what} already: give another --archive directory${opts.lfs ? ', or move a git mode archive to LFS with "btrfly migrate --lfs"' : ''}`, { data: { dir } });
    }
    if (opts.lfs) await checkGitLfs(new Git(abs));
    return Archive.open(dir, { create: true, lfs: opts.lfs });
  }

  private countUncached(loc: BodyLocation): void {
    if (this.readOnly && !loc.lfs && loc.size > 0 && !this.cache?.holds(loc)) this.uncachedReads++;
  }

  /**
   * What was slower because the archive is {@link readOnly}, in one line (a note, not an error):
   * bodies read from git that a writable archive would have cached; undefined when none were.
   */
  readOnlyNote(): string | undefined {
    if (!this.readOnly || this.uncachedReads === 0) return undefined;
    const n = this.uncachedReads === 1 ? '1 body was' : `${this.uncachedReads} bodies were`;
    return `archive ${this.name} is read-only (${this.readOnly}): ${n} played back from git, not from a body cache (slower for large bodies; each still checked against its SHA-256 before it was sent); nothing was written to it`;
  }

  /** Ends the long-lived git processes and closes the body cache's segment files. */
  close(): Promise<void> {
    this.cache?.segments.close();
    return this.git.close();
  }

  /** Every tag with its newest recording. */
  async listTags(): Promise<TagInfo[]> {
    const { stdout } = await this.git.run(['for-each-ref', '--format=%(refname:lstrip=2)%00%(objectname)%00%(committerdate:iso-strict)', 'refs/heads/']);
    return stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [tag, commit, date] = l.split('\0');
        return { tag, commit, date };
      });
  }

  /**
   * The commit a tag's ref names, read from the ref alone: unlike {@link tagCommit}, also one
   * missing from the store or damaged (a repair that no remote could help set it aside).
   */
  async tagRefTarget(tag: string): Promise<string | null> {
    // Exactly this ref: for-each-ref also lists the refs under it (tag "team" has none, but "team/app" is
    // under its name), and rev-parse guesses (tag "x" absent, it answers refs/heads/refs/heads/x, tag "refs/heads/x").
    const ref = TAG_REF(tag);
    const { stdout } = await this.git.run(['for-each-ref', '--format=%(refname) %(objectname)', ref]);
    const line = stdout.split('\n').find((l) => l.startsWith(`${ref} `));
    return line ? line.slice(ref.length + 1) : null;
  }

  /** The name of every tag, read from the refs alone (a damaged commit does not keep them from being listed). */
  async tagNames(): Promise<string[]> {
    const { stdout } = await this.git.run(['for-each-ref', '--format=%(refname:lstrip=2)', 'refs/heads/']);
    return stdout.split('\n').filter(Boolean);
  }

  /**
   * The commit of `tag`, or of `rev` (a commit id or unambiguous prefix) in the tag's history.
   * @throws BtrflyError TAG_NOT_FOUND, REV_NOT_FOUND, REV_AMBIGUOUS
   */
  async resolveCommit(tag: string, rev?: string): Promise<string> {
    const head = await this.tagCommit(tag);
    if (!head) throw await this.tagNotReadable(tag);
    if (rev === undefined || rev === '') return head;
    const prefix = rev.toLowerCase();
    const history = await this.history(tag);
    if (prefix.startsWith('~')) {
      // `~N`: N recordings back along the tag's first parents, as `btrfly log` lists them.
      const back = prefix.length > 1 ? Number(prefix.slice(1)) : 1;
      if (back < history.length) return history[back].commit;
      const n = history.length;
      throw new BtrflyError('REV_NOT_FOUND', `tag "${tag}" has ${n} recording${n === 1 ? '' : 's'}, so "${tag}@${rev}" names none: run "btrfly log ${tag}" to list them`, {
        data: { tag, rev },
      });
    }
    const hits = /^[0-9a-f]{4,40}$/.test(prefix) ? history.filter((h) => h.commit.startsWith(prefix)) : [];
    if (hits.length === 1) return hits[0].commit;
    if (hits.length === 0) {
      throw new BtrflyError('REV_NOT_FOUND', `recording "${rev}" is not in the history of tag "${tag}": run "btrfly log ${tag}" to list its recordings`, {
        data: { tag, rev },
      });
    }
    throw new BtrflyError('REV_AMBIGUOUS', `"${rev}" matches ${hits.length} recordings of tag "${tag}": give more digits of the commit id`, {
      data: { tag, rev, matches: hits.map((h) => h.commit) },
    });
  }

  /** The tag's current commit, or null when the tag does not exist. */
  /**
   * Why `tag` has no commit: no such tag (TAG_NOT_FOUND), or its ref names a commit the store
   * lacks or cannot read (BODY_MISSING: a damaged copy that a repair no remote could help set aside).
   */
  async tagNotReadable(tag: string): Promise<BtrflyError> {
    const target = await this.tagRefTarget(tag);
    if (!target) return new BtrflyError('TAG_NOT_FOUND', `tag "${tag}" not found in archive ${this.name}: run "btrfly tags" to list tags`, { data: { tag } });
    const kind = await this.git.run(['cat-file', '-t', target], { ok: [0, 128] });
    if (kind.code === 0 && ['tree', 'blob', 'tag'].includes(kind.stdout.trim())) {
      // The object is there and intact: it is the ref that is wrong (edited by hand), not the store.
      return new BtrflyError(
        'BODY_MISSING',
        `tag "${tag}" points at a git ${kind.stdout.trim()} (${target.slice(0, 12)}), not at a recording: its ref was edited`,
        { data: { tag, commit: target }, advice: `run "btrfly verify --repair ${tag}" to fetch the tag again from the archive's remotes, or "btrfly rm ${tag}" and record it again` },
      );
    }
    return new BtrflyError(
      'BODY_MISSING',
      `tag "${tag}" points at recording ${target.slice(0, 12)}, which is missing from the archive`,
      {
        data: { tag, commit: target },
        advice: `run "btrfly verify --repair ${tag}" to fetch it again from the archive's remotes, or record the tag again without --append (its history then starts anew)`,
      },
    );
  }

  /**
   * Whether `tag` still holds recording `commit` (as its newest, or in its history): `deleted`
   * when the tag is gone, `moved` when it names a recording whose history lacks `commit`.
   */
  async tagLeft(tag: string, commit: string): Promise<TagLeft | undefined> {
    const target = await this.tagRefTarget(tag);
    if (target === null) return 'deleted';
    if (target === commit) return undefined;
    const r = await this.git.run(['merge-base', '--is-ancestor', commit, target], { ok: [0, 1, 128] });
    return r.code === 0 ? undefined : 'moved';
  }

  /** The commit of `tag`'s ref, or null when there is no such tag or its commit is not in the store. */
  async tagCommit(tag: string): Promise<string | null> {
    const target = await this.tagRefTarget(tag);
    return target === null ? null : this.git.refCommit(target);
  }

  /** Loads a recording: its manifest, volatile headers and where each body's parts are. */
  async readRecording(tag: string, commit: string): Promise<Recording> {
    const where = `tag "${tag}" at ${commit.slice(0, 7)}`;
    const [manifestBuf, volatileBuf, listing] = await Promise.all([
      this.git.readObject(`${commit}:manifest.json`),
      this.git.readObject(`${commit}:volatile.json`),
      this.git.run(['ls-tree', '-r', '-l', '-z', commit, 'bodies/']),
    ]);
    if (!manifestBuf) {
      // Listed in the tree but not in the store: a damaged copy set aside by a repair no remote could help.
      const listed = (await this.git.run(['ls-tree', commit, 'manifest.json'])).stdout.split(/\s+/)[2];
      if (listed) {
        throw new BtrflyError('BODY_MISSING', `${where}: its manifest.json (object ${listed}) is missing from the archive`, { data: { tag, commit, oid: listed }, advice: repairAdvice(tag) });
      }
      throw new BtrflyError('MANIFEST_INVALID', `${where} has no manifest.json: it was not written by btrfly; re-record the tag`, { data: { tag, commit } });
    }
    const manifest = parseManifest(manifestBuf.toString('utf8'), where);
    const volatile = volatileBuf ? parseVolatile(volatileBuf.toString('utf8'), where) : { btrflyFormat: 1 as const, entries: {} };
    const bodies = parseBodyListing(listing.stdout);
    for (const e of manifest.entries) {
      const loc = bodies.get(e.response.content.sha256);
      if (loc) loc.size = e.response.content.size;
      if (loc?.lfs) loc.parts[0].storedSize = loc.size;
    }
    return { tag, commit, manifest, volatile, bodies };
  }

  /** The recordings of a tag, newest first (first-parent history). */
  async history(tag: string): Promise<HistoryItem[]> {
    const head = await this.tagCommit(tag);
    if (!head) throw await this.tagNotReadable(tag);
    const { stdout } = await this.git.run(['log', '--first-parent', '-z', '--format=%H%x01%cI%x01%P%x01%s', head]).catch((e: unknown) => {
      throw olderRecordingMissing(tag, head, e);
    });
    return stdout
      .split('\0')
      .filter(Boolean)
      .map((rec) => {
        const [commit, date, parents, summary] = rec.split('\x01');
        return { commit, date, parent: parents.split(' ')[0] || null, summary };
      });
  }

  /**
   * Points `dst` at `src`'s current recording, or at the one `opts.rev` names in its history.
   * @throws BtrflyError TAG_NOT_FOUND, REV_NOT_FOUND, TAG_EXISTS (unless `force`), BAD_TAG_NAME, TAG_MOVED, TAG_BUSY while `dst` is being recorded
   */
  async copyTag(src: string, dst: string, opts: { force?: boolean; rev?: string } = {}): Promise<string> {
    validateTagName(dst);
    await this.checkNoClash(dst);
    const commit = await this.resolveCommit(src, opts.rev);
    const old = await this.tagCommit(dst);
    if (old && !opts.force) {
      throw new BtrflyError('TAG_EXISTS', `tag "${dst}" already exists: pick another name or pass --force to replace it`, { data: { tag: dst } });
    }
    // Else the recording's seal would land on the copied history, and drop the one it began from.
    await this.refuseWhileRecorded(dst);
    if (!(await this.git.updateRef(TAG_REF(dst), commit, old))) throw moved(dst);
    return commit;
  }

  /**
   * Deletes a tag (its recordings stay until `gc`).
   * @throws BtrflyError TAG_NOT_FOUND, TAG_BUSY while it is being recorded
   */
  async deleteTag(tag: string): Promise<void> {
    // A tag whose commit is missing can be deleted too (and then recorded again).
    const commit = (await this.tagRefTarget(tag)) ?? (await this.resolveCommit(tag));
    await this.refuseWhileRecorded(tag);
    if (!(await this.git.deleteRef(TAG_REF(tag), commit))) throw moved(tag);
  }

  /** @throws BtrflyError TAG_BUSY while `tag` is being recorded */
  private async refuseWhileRecorded(tag: string): Promise<void> {
    const holder = await lockHolder(this.locksDir, tag);
    if (holder) {
      throw new BtrflyError('TAG_BUSY', `tag "${tag}" is being recorded (session ${holder.session}): stop it first`, { data: { tag } });
    }
  }

  /** {@inheritDoc BodyStore.createBodyWriter} */
  createBodyWriter(opts: { signal?: AbortSignal } = {}): BodyWriter {
    if (this.lfsMode) return createLfsBodyWriter(this.git, this.lfs, join(this.stateDir, 'tmp'), { ...opts, checks: this.checks });
    return createBodyWriter(this.git, join(this.stateDir, 'tmp'), { ...opts, cache: this.cache?.stage(), checks: this.checks });
  }

  /** Where a just-written body's parts are, for reading it back before the recording is sealed. */
  async locateBody(stored: StoredBody): Promise<BodyLocation> {
    const { stdout } = await this.git.run(['ls-tree', '-l', '-z', stored.treeOid]);
    const parts = stdout
      .split('\0')
      .filter(Boolean)
      .map((rec) => {
        const tab = rec.indexOf('\t');
        const [, , oid, size] = rec.slice(0, tab).split(/ +/);
        return { name: rec.slice(tab + 1), part: { oid, storedSize: Number(size), zstd: rec.endsWith('.zst') } };
      })
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const lfsOid = parts.length === 1 ? lfsOidOfPointerName(parts[0].name) : undefined;
    if (parts.length === 1 && (parts[0].name === LFS_POINTER_NAME || lfsOid)) {
      return { sha256: stored.sha256, size: stored.size, parts: [{ ...parts[0].part, storedSize: stored.size }], lfs: true, ...(lfsOid ? { lfsOid } : {}) };
    }
    return { sha256: stored.sha256, size: stored.size, parts: parts.map((p) => p.part) };
  }

  /**
   * {@inheritDoc BodyStore.openBody}
   * @param opts.fromGit read the body's objects even when the body cache holds it (verification)
   */
  openBody(loc: BodyLocation, range?: ByteRange, opts: { signal?: AbortSignal; fromGit?: boolean } = {}): Readable {
    this.countUncached(loc);
    if (loc.lfs) return openLfsBody(this.lfs, loc, range, { signal: opts.signal, checks: this.checks, verify: opts.fromGit });
    return openBody(this.git, loc, range, { signal: opts.signal, cache: this.cache && { cache: this.cache, fromGit: opts.fromGit }, checks: this.checks });
  }

  /** {@inheritDoc BodyStore.readSmallBody} */
  readSmallBody(loc: BodyLocation): Promise<Buffer> | undefined {
    if (loc.lfs) return isSmallBody(loc) ? readSmallLfsBody(this.lfs, loc) : undefined;
    const small = readSmallBody(this.git, loc, this.cache);
    if (small) this.countUncached(loc);
    return small;
  }

  /**
   * Refuses a tag that git could not create beside the existing ones: `team/app` while `team`
   * exists, or `team` while `team/app` does (a ref is a file, so `refs/heads/team` cannot be
   * both a file and a directory). Checked before a recording starts, not found at its seal.
   * @throws BtrflyError TAG_EXISTS naming the tag in the way
   */
  async checkNoClash(tag: string): Promise<void> {
    const parts = tag.split('/');
    const above = parts.slice(0, -1).map((_, i) => TAG_REF(parts.slice(0, i + 1).join('/')));
    // for-each-ref matches a pattern literally or up to a "/": filter the exact refs out of it.
    const { stdout } = await this.git.run(['for-each-ref', '--format=%(refname)', ...above, `${TAG_REF(tag)}/`]);
    const clash = stdout.split('\n').find((ref) => above.includes(ref) || ref.startsWith(`${TAG_REF(tag)}/`));
    if (!clash) return;
    const other = clash.slice(TAG_REF('').length);
    const [parent, child] = other.length < tag.length ? [other, tag] : [tag, other];
    const instead = tag === child ? `another name, like "${tag.replace(/\//g, '-')}"` : 'another name';
    throw new BtrflyError(
      'TAG_EXISTS',
      `tag "${tag}" cannot be created: tag "${other}" exists, and git cannot hold both "${parent}" and "${child}" (a branch name cannot also be a folder of branches): pick ${instead}`,
      { data: { tag, clashesWith: other } },
    );
  }

  /** Journals left by writers that stopped without sealing (or that are still running). */
  async pendingRecordings(): Promise<PendingRecording[]> {
    // A read-only archive may have no state directory (a fresh clone): then nothing is pending.
    const files = (await readdir(this.pendingDir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' && this.readOnly ? [] : Promise.reject(e)))).filter((f) => f.endsWith('.jsonl')).sort();
    const out: PendingRecording[] = [];
    for (const f of files) {
      const j = await readJournal(join(this.pendingDir, f)).catch(() => undefined);
      if (!j) continue;
      const id = f.slice(0, -'.jsonl'.length);
      const holder = await lockHolder(this.locksDir, j.begin.tag);
      const activeHolder = holder && holder.session === j.begin.session ? holder : null;
      out.push({
        id,
        tag: j.begin.tag,
        session: j.begin.session,
        entries: j.entries.length,
        started: j.begin.started,
        activeHolder,
        pid: j.begin.pid,
        ...(j.aside ? { exitCode: j.aside.exitCode, ...(j.aside.leaks ? { leaks: j.aside.leaks } : {}) } : {}),
      });
    }
    return out;
  }

  /**
   * The recordings of `tag` (default: every tag) that are not the tag and that nobody is
   * writing: kept aside by a failed command, or left by a process that stopped.
   */
  async asideRecordings(tag?: string): Promise<AsideRecording[]> {
    return (await this.pendingRecordings())
      .filter((p) => !p.activeHolder && (tag === undefined || p.tag === tag))
      .map((p) => ({ id: p.id, tag: p.tag, entries: p.entries, started: p.started, ...(p.exitCode !== undefined ? { exitCode: p.exitCode, ...(p.leaks ? { leaks: p.leaks } : {}) } : { deadPid: p.pid }) }));
  }

  /** Deletes a stopped writer's journal; its bodies become garbage for `gc`. */
  async discardPending(id: string): Promise<void> {
    const path = this.journalPath(id);
    // Never while a `pending seal` of it runs in another process (it would seal what we report dropped).
    const unlockPending = await lockPending(path, id);
    try {
      await unlink(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') throw new BtrflyError('NOT_FOUND', `no pending recording "${id}": run "btrfly status" to list them`);
        throw e;
      });
      await this.dropPendingRef(id);
    } finally {
      await unlockPending();
    }
  }

  /** @internal the ref `gc` made to keep a pending recording's bodies. */
  async dropPendingRef(id: string): Promise<void> {
    const ref = `refs/btrfly/pending/${id}`;
    const r = await this.git.run(['rev-parse', '--verify', '--quiet', ref], { ok: [0, 1] });
    if (r.code === 0) await this.git.deleteRef(ref, r.stdout.trim());
  }

  /** @internal */
  get locksDir(): string {
    return join(this.stateDir, 'locks');
  }
  /** @internal */
  get pendingDir(): string {
    return join(this.stateDir, 'pending');
  }
  /** @internal */
  journalPath(id: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new BtrflyError('NOT_FOUND', `no pending recording "${id}": run "btrfly status" to list them`);
    return join(this.pendingDir, `${id}.jsonl`);
  }

}

function moved(tag: string): BtrflyError {
  return new BtrflyError('TAG_MOVED', `tag "${tag}" changed while btrfly was updating it: run the command again`, { data: { tag } });
}

/** `ls-tree -r -l -z` of `bodies/` → sha256 → parts (sizes filled from the manifest by the caller). */
function parseBodyListing(out: string): Map<string, BodyLocation> {
  const bodies = new Map<string, BodyLocation>();
  const named: Array<{ sha: string; name: string; oid: string; storedSize: number }> = [];
  for (const rec of out.split('\0')) {
    if (!rec) continue;
    const tab = rec.indexOf('\t');
    const [, type, oid, size] = rec.slice(0, tab).split(/ +/);
    const path = rec.slice(tab + 1).split('/'); // bodies/<2hex>/<sha256>/<part>
    if (type !== 'blob' || path.length !== 4) continue;
    named.push({ sha: path[2], name: path[3], oid, storedSize: Number(size) });
  }
  named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of named) {
    let loc = bodies.get(p.sha);
    if (!loc) bodies.set(p.sha, (loc = { sha256: p.sha, size: -1, parts: [] }));
    loc.parts.push({ oid: p.oid, storedSize: p.storedSize, zstd: p.name.endsWith('.zst') });
    const lfsOid = lfsOidOfPointerName(p.name);
    if (p.name === LFS_POINTER_NAME || lfsOid) loc.lfs = true;
    if (lfsOid) loc.lfsOid = lfsOid;
  }
  // Bodies no entry names keep size -1 unless they are single raw parts, whose size is the blob's.
  for (const loc of bodies.values()) {
    if (loc.parts.length === 1 && !loc.parts[0].zstd && !loc.lfs) loc.size = loc.parts[0].storedSize;
  }
  return bodies;
}

/**
 * A tag whose newest recording reads but whose history does not: an older recording is missing
 * or damaged (a repair no remote could help set it aside). A re-recording would add to the same
 * broken history, so the advice without a remote is to delete the tag and record it again.
 */
function olderRecordingMissing(tag: string, head: string, e: unknown): unknown {
  const said = withoutAdvice(e);
  if (!/could not read|could not parse|bad object|unable to read|inflate|corrupt|missing/i.test(said)) return e;
  return new BtrflyError(
    'BODY_MISSING',
    `tag "${tag}": a recording older than its newest (${head.slice(0, 12)}) is missing or damaged (${said})`,
    {
      cause: e,
      data: { tag, commit: head },
      advice:
        `run "btrfly verify --repair ${tag}" to fetch it again from the archive's remotes; ` +
        `with no remote that has it, "btrfly rm ${tag}" and record the tag again (a re-recording alone would add to the same history)`,
    },
  );
}

/**
 * Why btrfly may not write an archive's state (`btrfly/`, or the archive's directory when there
 * is none yet, as in a fresh clone): EROFS, EACCES or EPERM; undefined when it may.
 */
async function unwritable(stateDir: string, dir: string): Promise<string | undefined> {
  const where = (await stat(stateDir).then((s) => s.isDirectory(), () => false)) ? stateDir : dir;
  return access(where, constants.W_OK).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => (e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM' ? e.code : undefined),
  );
}

/** The one-line refusal of `command` on an archive btrfly may not write, with what to do. */
function readOnlyRefusal(a: Archive, command: string): BtrflyError {
  const why =
    a.readOnly === 'EROFS'
      ? 'is on a read-only file system (EROFS): remount it read-write'
      : `is not this user's to write (${a.readOnly}): run it as the user that owns the archive`;
  return new BtrflyError('STORAGE', `"${command}" changes the archive, and ${a.name} ${why}; playback, tags, show, log, verify, sbom and export read it as it is`, {
    data: { dir: a.dir, code: a.readOnly },
  });
}
