/**
 * Writing one recording of a tag: entries are journalled as they complete, and `seal` turns
 * them into one commit and moves the tag in one compare-and-swap ref update, under the
 * tag's lock (docs/contract.md, "Atomic tags").
 */
import { randomUUID } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { access, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BtrflyError } from '../errors';
import { validateTagName } from './names';
import { pauseAt } from '../test-pause';
import type { Archive } from './archive';
import type { TreeEntry } from './git';
import { JournalWriter, readJournal, type JournalContent, type JournalEntry } from './journal';
import { waitForGc } from './gc-lock';
import { LFS_ATTRIBUTES } from './lfs-store';
import { lockPending, lockTag, type LockHolder, type TagLock } from './lock';
import { emptyManifest, entryKey, serializeManifest, serializeVolatile } from './manifest';
import { PACKAGES_LOCK, recordingPackages, serializePackagesLock } from './packages';
import { REVIEW_ATTRIBUTES } from './review-attributes';
import { FORMAT_VERSION, type Entry, type Manifest, type MatchRule, type Redactions, type StoredBody, type VolatileFile, type VolatileHeader } from './types';

/**
 * A recording writes into the archive's directory, its objects and its state (locks, journal):
 * a read-only archive is said before anything starts, in one line naming it and what to do.
 */
async function checkWritable(archive: Archive): Promise<void> {
  for (const dir of [archive.dir, join(archive.dir, 'objects'), archive.stateDir, archive.locksDir]) {
    await access(dir, constants.W_OK).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw notWritable(archive, e) ?? e;
    });
  }
}

/** The one-line error for a write refused by the file system (read-only, or not this user's), else undefined. */
export function notWritable(archive: Archive, e: unknown): BtrflyError | undefined {
  const err = e as NodeJS.ErrnoException;
  const where = err.path && err.path !== archive.dir ? ` on ${err.path}` : '';
  const also = 'or record into another archive with --archive DIR (playback reads a read-only archive)';
  if (err.code === 'EROFS') {
    return new BtrflyError('STORAGE', `cannot record into archive ${archive.name}: it is on a read-only file system (EROFS${where}): remount it read-write, ${also}`, { cause: err });
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new BtrflyError('STORAGE', `cannot record into archive ${archive.name}: permission denied (${err.code}${where}): record as the user that owns it, ${also}`, { cause: err });
  }
  return undefined;
}

/** A recording in progress. Obtain with `beginRecording(archive, tag)`. */
export class RecordingWriter {
  private state: 'open' | 'sealing' | 'done' = 'open';
  private entries = 0;

  private constructor(
    private readonly archive: Archive,
    readonly tag: string,
    readonly id: string,
    private readonly lock: TagLock,
    private readonly journal: JournalWriter,
    private readonly base: { commit?: string; rules: MatchRule[]; redact: Redactions },
  ) {}

  /** @internal use `beginRecording`. */
  static async begin(archive: Archive, tag: string, opts: { append: boolean; session: string; onNotice?: (line: string) => void }): Promise<RecordingWriter> {
    await checkWritable(archive);
    const lock = await lockTag(archive.locksDir, tag, opts.session).catch((e: unknown) => {
      throw notWritable(archive, e) ?? e;
    });
    try {
      await waitForGc(archive.stateDir, (pid, command) => opts.onNotice?.(`${command} (pid ${pid}) is running on the archive: the recording of tag "${tag}" starts when it ends`));
      const commit = (await archive.tagCommit(tag)) ?? undefined;
      // A tag whose newest recording is missing (a repair no remote could help set it aside):
      // --append has nothing to add to; a plain record starts the tag's history anew.
      if (!commit && (await archive.tagRefTarget(tag))) {
        const missing = await archive.tagNotReadable(tag);
        if (opts.append) throw missing;
        opts.onNotice?.(`${missing.message.slice(0, missing.message.indexOf(': run'))}: this recording starts the tag's history anew`);
      }
      const prev = opts.append && commit ? (await archive.readRecording(tag, commit)).manifest : undefined;
      const base = { commit, rules: prev?.rules ?? [], redact: prev?.redact ?? { headers: [], query: [] } };
      const id = `${new Date().toISOString().replace(/[-:.]/g, '')}-${randomUUID().slice(0, 8)}`;
      const journal = await JournalWriter.create(archive.journalPath(id), {
        type: 'begin',
        tag,
        session: opts.session,
        append: opts.append,
        started: new Date().toISOString(),
        pid: process.pid,
      });
      return new RecordingWriter(archive, tag, id, lock, journal, base);
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  /** The tag's commit when the recording began (the new recording's parent), or undefined for a new tag. */
  baseCommit(): string | undefined {
    return this.base.commit;
  }

  /** The redactions the recording starts from: the previous recording's on append, else none. */
  redactions(): Redactions {
    return this.base.redact;
  }

  /** The matching rules the recording starts from: the previous recording's on append, else none. */
  rules(): MatchRule[] {
    return this.base.rules;
  }

  /** Entries added so far. */
  get size(): number {
    return this.entries;
  }

  /**
   * Adds one completed entry; resolves once it is in the journal on disk.
   * @param body the stored body whose SHA-256 the entry's content names
   */
  async addEntry(entry: Entry, volatile: VolatileHeader[], body: StoredBody): Promise<void> {
    this.checkOpen();
    if (entry.response.content.sha256 !== body.sha256) {
      throw new BtrflyError('STORAGE', `entry ${entryKey(entry)} names body ${entry.response.content.sha256} but was given ${body.sha256}`);
    }
    await this.journal.append({ type: 'entry', entry, volatile, body });
    this.entries++;
  }

  /** Sets the manifest's matching rules (on append, the previous recording's are kept unless set). */
  async setRules(rules: MatchRule[]): Promise<void> {
    this.checkOpen();
    await this.journal.append({ type: 'rules', rules });
  }

  /** Sets the manifest's redactions (on append, the previous recording's are kept unless set). */
  async setRedactions(redact: Redactions): Promise<void> {
    this.checkOpen();
    await this.journal.append({ type: 'redact', redact });
  }

  /**
   * Writes the recording as a child of the tag's current commit and moves the tag to it.
   * @returns the new commit id
   * @throws BtrflyError TAG_MOVED if the tag changed meanwhile, TAG_BUSY if the lock was lost
   */
  async seal(opts: { message?: string } = {}): Promise<{ commit: string; entries: number }> {
    this.checkOpen();
    this.state = 'sealing';
    try {
      await this.journal.close();
      if (this.lock.compromised) throw lockLost(this.tag);
      const commit = await sealJournal(this.archive, this.archive.journalPath(this.id), opts);
      await this.archive.dropPendingRef(this.id);
      this.state = 'done';
      return { commit, entries: this.entries };
    } catch (e) {
      this.state = 'done'; // the journal stays on disk for sealPending/discardPending
      throw e;
    } finally {
      await this.lock.release();
    }
  }

  /**
   * Keeps the recording aside: the tag stays as it was, the journal stays as a pending
   * recording (for `btrfly pending seal|drop`), the lock is released. For a command that failed,
   * or one whose connections btrfly could not carry (`leaks`).
   * @returns the pending recording's id
   */
  async setAside(exitCode: number, leaks?: number): Promise<string> {
    this.checkOpen();
    this.state = 'done';
    try {
      await this.journal.append({ type: 'aside', exitCode, ...(leaks ? { leaks } : {}) });
      await this.journal.close();
    } finally {
      await this.lock.release();
    }
    return this.id;
  }

  /**
   * Leaves the recording as a process that stopped leaves it: the tag stays as it was, the
   * journal stays as a pending recording (for `btrfly stop record --seal-partial|--discard` and
   * `btrfly pending`), the lock is released.
   * @returns the pending recording's id
   */
  async leave(): Promise<string> {
    this.checkOpen();
    this.state = 'done';
    try {
      await this.journal.close();
    } finally {
      await this.lock.release();
    }
    return this.id;
  }

  /** Drops the recording: the tag stays as it was, the journal is deleted, the lock released. */
  async abandon(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    try {
      await this.journal.close().catch(() => undefined);
      await unlink(this.archive.journalPath(this.id)).catch(() => undefined);
    } finally {
      await this.lock.release();
    }
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new BtrflyError('STORAGE', `the recording of tag "${this.tag}" is already sealed or abandoned: begin a new one`);
  }
}

function lockLost(tag: string): BtrflyError {
  return new BtrflyError('TAG_BUSY', `the lock on tag "${tag}" was taken over by another process while recording: record the tag again`, {
    data: { tag },
  });
}

/**
 * Seals a journal into a commit on its tag and deletes it. Used by `seal` and by
 * `sealPending` for journals of writers that stopped.
 */
export async function sealJournal(archive: Archive, journalPath: string, opts: { message?: string }): Promise<string> {
  const j = await readJournal(journalPath);
  const { tag } = j.begin;
  const ref = `refs/heads/${tag}`;
  const parent = await archive.tagCommit(tag);
  // The ref as it is: also a commit that is missing, which a new history replaces.
  const current = parent ?? (await archive.tagRefTarget(tag));
  if (j.begin.append && !parent && current) throw await archive.tagNotReadable(tag);
  const previous = j.begin.append && parent ? await archive.readRecording(tag, parent) : undefined;
  const { manifest, volatile } = buildManifest(j, previous?.manifest, previous?.volatile);
  const bodyTrees = new Map<string, string>();
  if (previous) {
    const { stdout } = await archive.git.run(['ls-tree', '-r', '-d', '-z', parent!, 'bodies/']);
    for (const rec of stdout.split('\0')) {
      const m = /^040000 tree ([0-9a-f]+)\tbodies\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(rec);
      if (m) bodyTrees.set(m[2], m[1]);
    }
  }
  for (const e of j.entries) bodyTrees.set(e.body.sha256, e.body.treeOid);
  const tree = await buildRootTree(archive, manifest, volatile, bodyTrees);
  const message = opts.message ?? `record ${tag}: ${manifest.entries.length} entries${j.begin.append ? ` (${j.entries.length} added)` : ''}\n\nsession: ${j.begin.session}\n`;
  const commit = await archive.git.commitTree(tree, parent ? [parent] : [], message, await commitIdentity(archive));
  await pauseAt('seal-ref');
  if (!(await archive.git.updateRef(ref, commit, current))) {
    throw new BtrflyError('TAG_MOVED', `tag "${tag}" changed while the recording was being sealed: seal it again (btrfly stop record)`, { data: { tag } });
  }
  await unlink(journalPath);
  return commit;
}

function buildManifest(j: JournalContent, prev?: Manifest, prevVolatile?: VolatileFile): { manifest: Manifest; volatile: VolatileFile } {
  const byKey = new Map<string, Entry>();
  const vol: Record<string, VolatileHeader[]> = {};
  for (const e of prev?.entries ?? []) byKey.set(entryKey(e), e);
  for (const [k, v] of Object.entries(prevVolatile?.entries ?? {})) if (byKey.has(k)) vol[k] = v;
  // A later answer to the same request (same key) replaces an earlier one.
  for (const { entry, volatile } of j.entries as JournalEntry[]) {
    const key = entryKey(entry);
    byKey.set(key, entry);
    if (volatile.length) vol[key] = volatile;
    else delete vol[key];
  }
  const base = emptyManifest(j.rules ?? prev?.rules ?? [], j.redact ?? prev?.redact ?? { headers: [], query: [] });
  return { manifest: { ...base, entries: [...byKey.values()] }, volatile: { btrflyFormat: FORMAT_VERSION, entries: vol } };
}

async function buildRootTree(archive: Archive, manifest: Manifest, volatile: VolatileFile, bodyTrees: Map<string, string>): Promise<string> {
  const git = archive.git;
  const fanout = new Map<string, TreeEntry[]>();
  for (const sha of new Set(manifest.entries.map((e) => e.response.content.sha256))) {
    const oid = bodyTrees.get(sha);
    if (!oid) throw new BtrflyError('BODY_MISSING', `body ${sha} of the recording was never stored: record the tag again`);
    const dir = sha.slice(0, 2);
    if (!fanout.has(dir)) fanout.set(dir, []);
    fanout.get(dir)!.push({ mode: '040000', type: 'tree', oid, name: sha });
  }
  const dirs: TreeEntry[] = [];
  for (const [dir, entries] of fanout) dirs.push({ mode: '040000', type: 'tree', oid: await git.mktree(entries), name: dir });
  const [manifestOid, volatileOid, lockOid, attributesOid] = await Promise.all([
    git.hashBytes(serializeManifest(manifest)),
    git.hashBytes(serializeVolatile(volatile)),
    git.hashBytes(serializePackagesLock(recordingPackages(manifest).artifacts)),
    // In LFS mode the bodies are also marked as LFS files, so a clone and a git host treat them so.
    git.hashBytes(archive.lfsMode ? REVIEW_ATTRIBUTES + LFS_ATTRIBUTES : REVIEW_ATTRIBUTES),
  ]);
  const root: TreeEntry[] = [
    { mode: '100644', type: 'blob', oid: attributesOid, name: '.gitattributes' },
    { mode: '100644', type: 'blob', oid: manifestOid, name: 'manifest.json' },
    { mode: '100644', type: 'blob', oid: lockOid, name: PACKAGES_LOCK },
    { mode: '100644', type: 'blob', oid: volatileOid, name: 'volatile.json' },
  ];
  if (dirs.length) root.push({ mode: '040000', type: 'tree', oid: await git.mktree(dirs), name: 'bodies' });
  return git.mktree(root);
}

/** The user's git identity when configured, else btrfly's own, so sealing never fails on "who are you". */
async function commitIdentity(archive: Archive): Promise<NodeJS.ProcessEnv> {
  const r = await archive.git.run(['var', 'GIT_COMMITTER_IDENT'], { ok: [0, 128] }).catch(() => undefined);
  if (r?.code === 0) return {};
  const id = { name: 'btrfly', email: 'btrfly@localhost' };
  return { GIT_AUTHOR_NAME: id.name, GIT_AUTHOR_EMAIL: id.email, GIT_COMMITTER_NAME: id.name, GIT_COMMITTER_EMAIL: id.email };
}

/**
 * Starts a recording of `tag` in `archive`, holding its lock until sealed or abandoned.
 * @param opts.append keep the previous recording's entries, adding and replacing
 * @param opts.onNotice told what the user should know as the recording begins: that it waits for a `btrfly gc` to end, that it starts the tag's history anew
 * @throws BtrflyError TAG_BUSY when another writer (any process) records the tag; BAD_TAG_NAME
 */
export async function beginRecording(
  archive: Archive,
  tag: string,
  opts: { append?: boolean; session?: string; onNotice?: (line: string) => void } = {},
): Promise<RecordingWriter> {
  validateTagName(tag);
  await archive.checkNoClash(tag);
  return RecordingWriter.begin(archive, tag, { append: opts.append ?? false, session: opts.session ?? `pid-${process.pid}`, onNotice: opts.onNotice });
}

/** Seals what a stopped writer had completed into a new recording of its tag. */
export async function sealPending(archive: Archive, id: string, opts: { message?: string } = {}): Promise<string> {
  const path = archive.journalPath(id);
  const j = await readJournal(path).catch(() => {
    throw new BtrflyError('NOT_FOUND', `no pending recording "${id}": run "btrfly status" to list them`);
  });
  // The tag's lock, so a live writer of the same recording refuses us (TAG_BUSY).
  const lock = await lockTag(archive.locksDir, j.begin.tag, `seal-${id}`).catch((e: unknown) => {
    const holder = e instanceof BtrflyError && e.code === 'TAG_BUSY' ? (e.data as { holder?: LockHolder }).holder : undefined;
    if (holder?.session !== `seal-${id}`) throw e;
    throw new BtrflyError('TAG_BUSY', `pending recording ${id} is being sealed by another btrfly process (pid ${holder.pid} on ${holder.host}): wait for it to finish, then run "btrfly log ${j.begin.tag}"`, { data: { id, holder } });
  });
  try {
    // And the journal's own, so a `pending drop` in another process waits its turn.
    const unlockPending = await lockPending(path, id);
    try {
      // A seal or drop that ran between our read and our locks left nothing to seal.
      if (!existsSync(path)) throw new BtrflyError('NOT_FOUND', `no pending recording "${id}": it was sealed or dropped meanwhile; run "btrfly status" to list them`);
      const commit = await sealJournal(archive, path, opts);
      await archive.dropPendingRef(id);
      return commit;
    } finally {
      await unlockPending();
    }
  } finally {
    await lock.release();
  }
}
