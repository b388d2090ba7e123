/**
 * Repair of damaged bodies (`btrfly verify --repair`). git keeps an object it already holds,
 * damaged or not: a fetch does not ask for what local refs reach, and `hash-object` or
 * `fast-import` skip an object the store has, so neither a pull nor a re-recording would
 * replace a damaged copy. A repair therefore first sets every damaged object aside, out of the
 * object store, into `btrfly/damaged/<time>/` (a loose one moved whole; a packed one by writing
 * its pack again without it, and without any delta that needs it, the old pack moved aside),
 * then fetches the tags that hold it again from the archive's remotes as a fresh clone would
 * (`git fetch --refetch`; an LFS body through `git lfs fetch`). What no remote brings back stays
 * missing, and a re-recording of the tag stores it again. The caller verifies afterwards.
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { BtrflyError, isBtrflyError, oneLine } from '../errors';
import type { Archive } from './archive';
import { gitTempFiles, removeGitTempsSince, type VerifyProblem } from './archive-maintenance';
import { damagedDir } from './damaged-dir';
import { storageFailure } from './disk-space';
import { lockForGc } from './gc-lock';
import { liveRecorders, type LockHolder } from './lock';
import { transferBound } from './transfer-bound';
import { isNoSpace } from './lifecycle';
import { pauseAt } from '../test-pause';
import { lfsObjectOid } from './lfs-store';
import { listRemotes } from './remote-config';
import { refetchLfs, refetchObjects } from './remote-refetch';
import type { TransferOptions } from './remote-transfer';

/** What a repair did. */
export interface RepairResult {
  /** Tags that hold a damaged or missing body. */
  tags: string[];
  /** Objects set aside: loose ones, and those taken out of packs (with deltas that could not be kept without a damaged base). */
  setAside: { loose: number; packed: number };
  /** Where the damaged copies were moved, relative to the archive; absent when nothing was. */
  asideDir?: string;
  /** git objects and LFS bodies that are absent now: set aside, or missing before. */
  absent: number;
  /** Each remote asked, with how many of the absent objects it brought back, or why it failed. */
  fetched: Array<{ remote: string; restored: number; error?: string }>;
}

/**
 * Sets the damaged objects behind `problems` aside and fetches them again from `remotes`
 * (default: every remote of the archive), in order, until none is absent. Holds the gc lock
 * throughout: recorders and gc wait; refused while a recording that began earlier runs. A transfer that stalls is given up after the archive's bound
 * (src/format/transfer-bound.ts); `opts.transfer.signal` (SIGINT, SIGTERM) stops the repair between
 * steps, the lock released and the quarantine refs dropped.
 * @throws BtrflyError NOT_FOUND for a remote the archive does not have; TAG_BUSY while a tag is being recorded; LOCKED while gc or another repair runs
 */
export async function repairBodies(archive: Archive, problems: readonly VerifyProblem[], opts: { remotes?: readonly string[]; transfer?: TransferOptions } = {}): Promise<RepairResult> {
  const known = (await listRemotes(archive)).map((r) => r.name);
  for (const name of opts.remotes ?? []) {
    if (!known.includes(name)) throw new BtrflyError('NOT_FOUND', `no remote "${name}" in archive ${archive.name}: run "btrfly remote list"`, { data: { remote: name } });
  }
  const remotes = opts.remotes ?? known;
  // A bound set wrong is said before anything is set aside, not once per remote after.
  await transferBound(archive);
  const tags = [...new Set(problems.map((p) => p.tag))].sort();
  const signal = opts.transfer?.signal;
  const release = await lockForGc(archive.stateDir, 'btrfly verify --repair');
  try {
    signal?.throwIfAborted();
    // With the gc lock held, a recording that begins now waits; one that began earlier may be
    // writing or reusing the very objects set aside here (git skips an object it holds), so its
    // seal could name one that is gone: the repair waits for no recording, it is refused.
    const busy = await liveRecorders(archive.locksDir);
    if (busy.length) throw recordingRuns(busy);
    const found = await findDamage(archive, problems);
    const result: RepairResult = { tags, setAside: { loose: 0, packed: 0 }, absent: 0, fetched: [] };
    const absent = new Set(found.missing);
    if (found.damaged.size) {
      const dir = damagedDir(archive.stateDir);
      const moved = await setAside(archive, found.damaged, dir);
      result.setAside = { loose: moved.loose, packed: moved.packed.size };
      result.asideDir = relative(archive.dir, dir) || '.';
      for (const oid of [...found.damaged, ...moved.packed]) absent.add(oid);
    }
    const lfsAbsent = new Set([...found.lfs].filter((sha) => !archive.lfs.has(sha)));
    result.absent = absent.size + lfsAbsent.size;
    const unread = found.unread;
    const left = (): number => absent.size + lfsAbsent.size;
    await pauseAt('repair-fetch');
    signal?.throwIfAborted();
    const settle = async (): Promise<void> => {
      for (const oid of absent) if (await hasObject(archive, oid)) absent.delete(oid);
      for (const sha of lfsAbsent) if (archive.lfs.has(sha)) lfsAbsent.delete(sha);
    };
    for (const remote of remotes) {
      if (left() === 0 && unread.size === 0) break;
      const before = left();
      const errors: string[] = [];
      let reached = true;
      // Tag by tag: one the remote lacks does not keep the others from coming.
      for (const tag of tags) {
        signal?.throwIfAborted();
        try {
          if (absent.size || unread.has(tag)) await refetchObjects(archive, remote, [tag], opts.transfer);
          if (lfsAbsent.size) await refetchLfs(archive, remote, [tag], opts.transfer);
          unread.delete(tag);
        } catch (e) {
          if (signal?.aborted) throw e;
          errors.push(oneLine(e));
          if (!isBtrflyError(e) || e.code !== 'TAG_NOT_FOUND') reached = false;
          // A remote that stalled once would stall for every tag, each for the whole bound.
          if (isBtrflyError(e) && e.data.stalled) break;
        }
        await settle();
        if (left() === 0 && unread.size === 0) break;
      }
      // An object set aside that the tags asked about do not reach (a delta of another tag's
      // body on a damaged base, another damaged object of a pack written again): every tag
      // the remote has brings it.
      if (absent.size && reached) {
        try {
          await refetchObjects(archive, remote, 'all', opts.transfer);
        } catch (e) {
          if (signal?.aborted) throw e;
          errors.push(oneLine(e));
        }
        await settle();
      }
      result.fetched.push({ remote, restored: before - left(), ...(errors.length && { error: errors.join('; ') }) });
    }
    // A loose copy of an object that now came in a pack is never read again (git looks in packs
    // first): dropped, as `git gc` would, so that a damaged one no longer fails `git fsck`.
    if (result.fetched.length) await archive.git.run(['prune-packed', '--quiet']);
    return result;
  } finally {
    // Long-lived git processes still list the packs and loose objects from before.
    await archive.git.close();
    await release();
  }
}

/** The refusal of a repair while tags are being recorded. */
function recordingRuns(busy: LockHolder[]): BtrflyError {
  const [first] = busy;
  const more = busy.length > 1 ? ` (and ${busy.length - 1} more: ${busy.slice(1).map((h) => h.tag).join(', ')})` : '';
  return new BtrflyError(
    'TAG_BUSY',
    `tag "${first.tag}" is being recorded (session ${first.session}, pid ${first.pid} on ${first.host}, since ${first.since})${more}, and a repair moves aside objects a recording may be using: ` +
      'let the recording end ("btrfly stop record", or the end of "btrfly run"), then run "btrfly verify --repair" again; nothing was changed',
    { data: { recording: busy } },
  );
}

interface Damage {
  /** git objects of body parts that are there but do not read back as their id. */
  damaged: Set<string>;
  /** git objects of body parts that are not there at all. */
  missing: Set<string>;
  /** LFS oids (lfsObjectOid: the body's SHA-256, or its zstd object's) of LFS bodies with a problem (a damaged one was already taken out of the store when it was read). */
  lfs: Set<string>;
  /**
   * Tags with a problem that names no body part (a recording, tree or manifest that cannot be
   * read): fetched again all the same, since git reads a packed copy before a loose one and
   * skips a pack whose copy fails to inflate for another that holds the object.
   */
  unread: Set<string>;
}

/**
 * Reads every part of every body named in `problems` back against its object id; for a
 * recording that cannot be read at all (or a history that cannot be listed), its commits,
 * trees and other files instead.
 */
async function findDamage(archive: Archive, problems: readonly VerifyProblem[]): Promise<Damage> {
  const damage: Damage = { damaged: new Set(), missing: new Set(), lfs: new Set(), unread: new Set() };
  const checked = new Set<string>();
  for (const p of problems) {
    const loc = p.commit ? await archive.readRecording(p.tag, p.commit).then((r) => r.bodies.get(p.sha256 ?? ''), () => undefined) : undefined;
    if (!loc) {
      // A recording that cannot be read (a damaged commit, tree or manifest) or that names no such
      // body: what the walk finds is set aside, the tag fetched again, and the verify that follows
      // reads the bodies it names.
      const start = p.commit || (await archive.tagRefTarget(p.tag));
      if (start) await findStructureDamage(archive, start, !p.commit, damage, checked);
      damage.unread.add(p.tag);
      continue;
    }
    if (loc.lfs) {
      damage.lfs.add(lfsObjectOid(loc));
      continue;
    }
    for (const { oid } of loc.parts) {
      if (checked.has(oid)) continue;
      checked.add(oid);
      const state = await objectState(archive, oid);
      if (state === 'damaged' || state === 'missing') damage[state].add(oid);
    }
  }
  return damage;
}

/**
 * Checks the commit `start` (and, with `parents`, the commits before it), its trees and the
 * files beside the bodies against their ids; body parts are left to verify, which reads them
 * once the recording reads.
 */
async function findStructureDamage(archive: Archive, start: string, parents: boolean, damage: Damage, checked: Set<string>): Promise<void> {
  const todo: Array<{ oid: string; type: 'commit' | 'tree' | 'blob'; path: string }> = [{ oid: start, type: 'commit', path: '' }];
  for (let next = todo.pop(); next; next = todo.pop()) {
    const { oid, type, path } = next;
    if (checked.has(oid)) continue;
    checked.add(oid);
    const state = await objectState(archive, oid, type);
    // Another kind of object than its ref or tree entry says (a ref edited to name a blob): the
    // object is intact and may be another recording's; what names it is wrong, and the refetch fixes that.
    if (state === 'other') continue;
    if (state !== 'intact') {
      damage[state].add(oid);
      continue;
    }
    if (type === 'commit') {
      const { stdout } = await archive.git.run(['cat-file', 'commit', oid]);
      for (const line of stdout.slice(0, stdout.indexOf('\n\n')).split('\n')) {
        const [key, id] = line.split(' ');
        if (key === 'tree') todo.push({ oid: id, type: 'tree', path: '' });
        if (key === 'parent' && parents) todo.push({ oid: id, type: 'commit', path: '' });
      }
    } else if (type === 'tree') {
      const { stdout } = await archive.git.run(['ls-tree', '-z', oid]);
      for (const entry of stdout.split('\0').filter(Boolean)) {
        const [meta, name] = [entry.slice(0, entry.indexOf('\t')), entry.slice(entry.indexOf('\t') + 1)];
        const [, kind, id] = meta.split(' ');
        const sub = `${path}${name}`;
        if (kind === 'tree') todo.push({ oid: id, type: 'tree', path: `${sub}/` });
        else if (kind === 'blob' && !sub.startsWith('bodies/')) todo.push({ oid: id, type: 'blob', path: sub });
      }
    }
  }
}

async function hasObject(archive: Archive, oid: string): Promise<boolean> {
  return (await archive.git.run(['cat-file', '-e', oid], { ok: [0, 1, 128] })).code === 0;
}

/**
 * Whether the object reads back with its own id: `git cat-file` streams it into `git
 * hash-object`, so a part of any size costs no memory here. `other`: an object of another type
 * than `type` (its header reads, so it is no damage of its own).
 */
async function objectState(archive: Archive, oid: string, type: 'commit' | 'tree' | 'blob' = 'blob'): Promise<'intact' | 'damaged' | 'missing' | 'other'> {
  if (!(await hasObject(archive, oid))) return 'missing';
  const kind = await archive.git.run(['cat-file', '-t', oid], { ok: [0, 128] });
  if (kind.code === 0 && ['commit', 'tree', 'blob', 'tag'].includes(kind.stdout.trim()) && kind.stdout.trim() !== type) return 'other';
  const reader = archive.git.spawn(['cat-file', type, oid], { stdio: ['ignore', 'pipe', 'ignore'] });
  // --literally: a commit or tree is checked against its id, not for how git would write it now.
  const hasher = archive.git.spawn(['hash-object', '-t', type, '--literally', '--stdin'], { stdio: ['pipe', 'pipe', 'ignore'] });
  reader.stdout!.pipe(hasher.stdin!);
  hasher.stdin!.on('error', () => undefined);
  let id = '';
  hasher.stdout!.setEncoding('utf8').on('data', (s: string) => (id += s));
  const [[readCode], [hashCode]] = await Promise.all([once(reader, 'close'), once(hasher, 'close')]);
  return readCode === 0 && hashCode === 0 && id.trim() === oid ? 'intact' : 'damaged';
}

/**
 * Moves every copy of the `damaged` objects into `dir`: loose objects whole; for each pack
 * that holds one, a new pack of everything else it holds is written first (deltas whose chain
 * passes through a damaged object cannot be rebuilt: they are left out too, and returned).
 */
async function setAside(archive: Archive, damaged: ReadonlySet<string>, dir: string): Promise<{ loose: number; packed: Set<string> }> {
  await mkdir(dir, { recursive: true });
  await archive.git.close();
  let loose = 0;
  for (const oid of damaged) {
    const path = join(archive.dir, 'objects', oid.slice(0, 2), oid.slice(2));
    if (!(await stat(path).catch(() => null))) continue;
    await rename(path, join(dir, oid));
    loose++;
  }
  const corrupt = new Set(damaged);
  let lost = await withDependentDeltas(archive, corrupt);
  const packed = new Set<string>();
  const packDir = join(archive.dir, 'objects', 'pack');
  for (const idx of (await readdir(packDir).catch(() => [] as string[])).filter((n) => n.endsWith('.idx'))) {
    const held = await packObjects(archive, join(packDir, idx));
    if (!held.some((oid) => lost.has(oid))) continue;
    // Another object of the pack that git finds corrupt while copying it (verify was not asked
    // about its tag) cannot be kept either: it is set aside too, and the pack written again.
    for (;;) {
      const keep = held.filter((oid) => !lost.has(oid));
      const found = keep.length ? await writePack(archive, packDir, keep) : [];
      if (found.length === 0) break;
      for (const oid of found) corrupt.add(oid);
      lost = await withDependentDeltas(archive, corrupt);
    }
    for (const oid of held) if (lost.has(oid)) packed.add(oid);
    await pauseAt('repair-pack');
    const base = idx.slice(0, -'.idx'.length);
    for (const name of await readdir(packDir)) {
      if (name.startsWith(`${base}.`)) await rename(join(packDir, name), join(dir, name));
    }
  }
  // A multi-pack index names the old packs; git reads the packs themselves without one.
  await rm(join(packDir, 'multi-pack-index'), { force: true });
  return { loose, packed };
}

/**
 * Writes `keep` into a new pack of `packDir`, reusing the deltas it has and making none (a
 * body's path, which keeps git from making deltas of bodies, is not known here). Returns the
 * objects of `keep` that git found corrupt, with nothing written; throws on any other failure.
 */
async function writePack(archive: Archive, packDir: string, keep: readonly string[]): Promise<string[]> {
  const temps = await gitTempFiles(archive.dir);
  const r = await archive.git
    .run(['pack-objects', '--quiet', '--delta-base-offset', '--window=0', join(packDir, 'pack')], { input: keep.join('\n') + '\n', ok: [0, 128] })
    .catch((e: unknown) => e as Error);
  if (!(r instanceof Error) && r.code === 0) return [];
  // A pack-objects that failed (a full disk) leaves its temp pack, as big as what it wrote.
  await removeGitTempsSince(archive.dir, temps);
  const stderr = r instanceof Error ? oneLine(r) : r.stderr;
  if (isNoSpace(r) || isNoSpace({ message: stderr })) throw await storageFailure(archive.dir, new BtrflyError('STORAGE', stderr, { data: { noSpace: true } }));
  if (r instanceof Error) throw r;
  const named = new Set(keep);
  const found = [...new Set(stderr.match(/\b[0-9a-f]{40}(?:[0-9a-f]{24})?\b/g) ?? [])].filter((oid) => named.has(oid));
  if (found.length) return found;
  throw new BtrflyError('GIT', `git pack-objects failed: ${oneLine(stderr.trim() || 'exited with 128')}: the pack stays as it was; run "git fsck --full" in the archive to see what is wrong with it`);
}

/** `damaged` and every object stored as a delta whose chain of bases reaches one of them. */
async function withDependentDeltas(archive: Archive, damaged: ReadonlySet<string>): Promise<Set<string>> {
  const { stdout } = await archive.git.run(['cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(deltabase)']);
  const children = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const [oid, base] = line.split(' ');
    if (!base || /^0+$/.test(base)) continue;
    children.set(base, [...(children.get(base) ?? []), oid]);
  }
  const lost = new Set(damaged);
  const queue = [...damaged];
  while (queue.length) {
    for (const child of children.get(queue.pop()!) ?? []) {
      if (lost.has(child)) continue;
      lost.add(child);
      queue.push(child);
    }
  }
  return lost;
}

/** The object ids a pack's index lists (`git show-index`, fed the index file). */
async function packObjects(archive: Archive, idxPath: string): Promise<string[]> {
  const child = archive.git.spawn(['show-index'], { stdio: ['pipe', 'pipe', 'pipe'] });
  createReadStream(idxPath).pipe(child.stdin!);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const [code] = await once(child, 'close');
  if (code !== 0) throw new BtrflyError('GIT', `git show-index of ${idxPath} failed: ${err.trim()}: check that git ≥ 2.38 is installed`);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[1]);
}
