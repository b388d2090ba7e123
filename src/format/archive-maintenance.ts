/**
 * Whole-archive jobs: verifying every body against its digest, garbage collection that
 * spares recordings in progress, and per-tag storage figures.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BtrflyError, isBtrflyError, oneLine, withoutAdvice, type ErrorCode } from '../errors';
import type { Archive } from './archive';
import type { TreeEntry } from './git';
import { dropStaleIncoming } from './incoming-refs';
import { readJournal } from './journal';
import { processAlive } from '../process-alive';
import { pauseAt } from '../test-pause';
import { lockForGc } from './gc-lock';
import { tempOwner } from './lifecycle';
import { liveRecorders, reclaimDeadLocks } from './lock';

/** One thing `verify` found wrong. */
export interface VerifyProblem {
  tag: string;
  commit: string;
  code: ErrorCode;
  message: string;
  /** The message without its advice, when it has one: for a caller that advises otherwise (a pull). */
  what?: string;
  sha256?: string;
}

/**
 * Reads every body of every recording of `tags` (default: every tag) back, streaming, and
 * checks its size and SHA-256. Each distinct body is read once however many recordings hold it.
 */
export async function verifyArchive(archive: Archive, tags?: string[]): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = [];
  const names = tags ?? (await archive.tagNames());
  const checked = new Map<string, VerifyProblem | null>();
  for (const tag of names) {
    let history;
    try {
      history = await archive.history(tag);
    } catch (e) {
      // A tag whose newest recording is missing: Archive.tagNotReadable says what to do.
      problems.push({ tag, commit: '', code: isBtrflyError(e) ? e.code : 'GIT', message: oneLine(e), what: withoutAdvice(e) });
      continue;
    }
    problems.push(...(await verifyCommits(archive, tag, history.map((h) => h.commit), checked)));
  }
  return problems;
}

/**
 * Checks every body of the given recordings (commits) of `tag`: each must be in the commit's
 * tree and read back with its size and SHA-256. `checked` carries what was already read, so
 * a body shared by several recordings is read once. `signal`: stops before the next recording
 * once it aborts (what was found so far is returned).
 */
export async function verifyCommits(
  archive: Archive,
  tag: string,
  commits: readonly string[],
  checked: Map<string, VerifyProblem | null> = new Map(),
  onRead?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = [];
  for (const commit of commits) {
    if (signal?.aborted) break;
    let rec;
    try {
      rec = await archive.readRecording(tag, commit);
    } catch (e) {
      problems.push({ tag, commit, code: isBtrflyError(e) ? e.code : 'GIT', message: oneLine(e), what: withoutAdvice(e) });
      continue;
    }
    for (const entry of rec.manifest.entries) {
      const { sha256, size } = entry.response.content;
      const loc = rec.bodies.get(sha256);
      if (!loc) {
        problems.push({ tag, commit, sha256, code: 'BODY_MISSING', message: `body ${sha256} of ${entry.request.method} ${entry.request.url} is missing from the recording` });
        continue;
      }
      const key = `${sha256}:${size}:${loc.parts.map((p) => p.oid).join(',')}`;
      if (!checked.has(key)) checked.set(key, await checkBody(archive, loc, tag, commit, onRead));
      const found = checked.get(key);
      if (found) problems.push({ ...found, tag, commit });
    }
  }
  return problems;
}

async function checkBody(
  archive: Archive,
  loc: Parameters<Archive['openBody']>[0],
  tag: string,
  commit: string,
  onRead?: (bytes: number) => void,
): Promise<VerifyProblem | null> {
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write: (c: Buffer, _e, cb) => {
      onRead?.(c.length);
      cb();
    },
  });
  const wasCached = archive.cache?.holds(loc) ?? false;
  try {
    // The objects in git are what is checked (a whole read that verifies fills the body cache).
    await pipeline(archive.openBody(loc, undefined, { fromGit: true }), sink);
  } catch (e) {
    return { tag, commit, sha256: loc.sha256, code: isBtrflyError(e) ? e.code : 'STORAGE', message: oneLine(e), what: withoutAdvice(e) };
  }
  // A cached copy is what playback sends: it must match too.
  if (wasCached && (await archive.cache!.check(loc)) === 'removed') {
    return {
      tag,
      commit,
      sha256: loc.sha256,
      code: 'BODY_CORRUPT',
      message: `the cached copy of body ${loc.sha256} did not match its SHA-256 and was removed (the copy in git is good; playback reads it from there now)`,
    };
  }
  return null;
}

/**
 * Packs the archive and prunes what no tag reaches. It holds the gc lock throughout, so no
 * recording begins meanwhile (src/format/gc-lock.ts). Bodies named by pending journals are
 * kept by a ref each (`refs/btrfly/pending/<id>`); while a recorder that began earlier runs,
 * loose objects younger than an hour are kept too, since its body in progress is in no journal
 * yet. The temp files, cache stages and locks of processes that died are removed; when git
 * fails (a full disk), the temp files it made on the way are removed too.
 */
export async function gcArchive(archive: Archive): Promise<void> {
  const release = await lockForGc(archive.stateDir);
  try {
    await pauseAt('gc-locked');
    await reclaimDeadLocks(archive.locksDir);
    // A pull killed before it cleared its quarantine refs would keep what it fetched for ever.
    await dropStaleIncoming(archive);
    await keepPendingBodies(archive);
    const active = await anyActiveRecorder(archive);
    const unremovable = await gitGc(archive, active);
    const reachable = await reachableBodies(archive);
    if (archive.cache) await archive.cache.prune(reachable, { spareRecent: active });
    await archive.lfs.prune(reachable, { spareRecent: active });
    await archive.checks.prune(reachable, { spareRecent: active });
    await removeDeadTemps(join(archive.stateDir, 'tmp'));
    if (unremovable.length) throw await othersFiles(archive, unremovable);
  } finally {
    await release();
  }
}

/** A ref per pending recording, so that `git gc` keeps the bodies its journal names. */
async function keepPendingBodies(archive: Archive): Promise<void> {
  const git = archive.git;
  for (const p of await archive.pendingRecordings()) {
    const j = await readJournal(archive.journalPath(p.id));
    const byName = new Map<string, TreeEntry>();
    for (const e of j.entries) byName.set(e.body.sha256, { mode: '040000', type: 'tree', oid: e.body.treeOid, name: e.body.sha256 });
    const tree = await git.mktree([...byName.values()]);
    const commit = await git.commitTree(tree, [], `pending recording ${p.id} of ${p.tag}\n`, {
      GIT_AUTHOR_NAME: 'btrfly',
      GIT_AUTHOR_EMAIL: 'btrfly@localhost',
      GIT_COMMITTER_NAME: 'btrfly',
      GIT_COMMITTER_EMAIL: 'btrfly@localhost',
    });
    await git.run(['update-ref', `refs/btrfly/pending/${p.id}`, commit]);
  }
}

/**
 * `git gc`; on failure, removes the `tmp_*` files that appeared in the object store meanwhile (a 100 MiB `tmp_pack_*` on a full disk).
 * @returns the files git could not remove for want of permission ("unable to unlink"): git
 *   warns and exits 0, and the space stays taken
 */
async function gitGc(archive: Archive, active: boolean): Promise<string[]> {
  // A running `git fast-import` (small bodies, src/format/git.ts) keeps a `.keep` beside each
  // pack it made, and gc leaves kept packs alone: this process's own is ended first, and those
  // of one that died without ending it (no recorder holds a tag) are dropped.
  await archive.git.close();
  if (!active) await removeFastImportKeeps(archive.dir);
  const before = await gitTempFiles(archive.dir);
  try {
    const { stderr } = await archive.git.run(['gc', '--quiet', `--prune=${active ? '1.hour.ago' : 'now'}`]);
    return [...stderr.matchAll(/unable to unlink '([^'\n]+)': (?:Permission denied|Operation not permitted)/g)].map((m) => m[1]);
  } catch (e) {
    await removeGitTempsSince(archive.dir, before);
    // A damaged object stops git gc: the repair is what to do, not a check of git's version.
    const damaged = isBtrflyError(e) && e.code === 'GIT' && /unable to read|corrupt|inflate|bad packed object|CRC/i.test(e.message);
    if (damaged) throw new BtrflyError('BODY_CORRUPT', `${e.what}: the archive holds a damaged object; run "btrfly verify --repair", then gc again`, { cause: e });
    // A tag whose newest recording is missing (a repair no remote could help): git gc removes nothing while it is so.
    const badRef = isBtrflyError(e) ? /refs\/heads\/(\S+) does not point to a valid object/.exec(e.message) : null;
    if (badRef) {
      const missing = await archive.tagNotReadable(badRef[1]);
      throw new BtrflyError(missing.code, `gc removed nothing: ${missing.message}; then gc again`, { cause: e, data: missing.data });
    }
    throw e;
  } finally {
    // Our long-lived git processes still list the packs and loose objects from before.
    await archive.git.close();
  }
}

/**
 * The files of the archive gc was not allowed to remove, told with their owner and the command
 * that gives them back: another user's (root's, when `sudo btrfly` recorded into a user's
 * archive) in a directory of theirs. Before this, gc said "freed 0 B" and the packed copies
 * doubled the objects' size.
 */
async function othersFiles(archive: Archive, files: string[]): Promise<BtrflyError> {
  const first = files[0];
  const owner = await stat(first).then((s) => `uid ${s.uid}`, () => 'another user');
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return new BtrflyError(
    'STORAGE',
    `gc could not remove ${files.length} file${files.length === 1 ? '' : 's'} of archive ${archive.name} that ${owner} owns (${first}${files.length > 1 ? ', …' : ''}; a "sudo btrfly" run into the archive makes such files): give them back with "sudo chown -R ${uid}:${gid} ${archive.name}", then run gc again`,
    { data: { files: files.length, first } },
  );
}

/** Removes the `.keep` files that `git fast-import` writes while it runs (they hold "fast-import"). */
async function removeFastImportKeeps(dir: string): Promise<void> {
  const packs = join(dir, 'objects', 'pack');
  for (const name of await readdir(packs).catch(() => [] as string[])) {
    if (!name.endsWith('.keep')) continue;
    const path = join(packs, name);
    if ((await readFile(path, 'utf8').catch(() => '')).trim() === 'fast-import') await rm(path, { force: true });
  }
}

/**
 * Removes git's temp files that are not in `before` (from {@link gitTempFiles}): what a git
 * that failed on the way (a full disk) left. A concurrent writer's temp file may go too; its
 * git then fails to rename it and that writer reports a storage failure, it stores nothing wrong.
 */
export async function removeGitTempsSince(dir: string, before: readonly string[]): Promise<void> {
  const old = new Set(before);
  for (const f of await gitTempFiles(dir)) if (!old.has(f)) await rm(f, { force: true });
}

/** git's temp files in the object store: `objects/pack/tmp_*`, `objects/tmp_*`, `objects/??/tmp_*`. */
export async function gitTempFiles(dir: string): Promise<string[]> {
  const objects = join(dir, 'objects');
  const out: string[] = [];
  const scan = async (d: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) if (name.startsWith('tmp_')) out.push(join(d, name));
  };
  await scan(objects);
  for (const name of await readdir(objects).catch(() => [] as string[])) if (name === 'pack' || /^[0-9a-f]{2}$/.test(name)) await scan(join(objects, name));
  return out;
}

/** Removes the files in `<archive>/btrfly/tmp` whose process (named in the file) died; unnamed ones when older than an hour. */
async function removeDeadTemps(tmpDir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
    const path = join(tmpDir, name);
    const owner = tempOwner(name);
    const dead = owner !== undefined ? !processAlive(owner) : await stat(path).then((s) => now - s.mtimeMs > 60 * 60 * 1000, () => false);
    if (dead) await rm(path, { recursive: true, force: true });
  }
}

/**
 * The SHA-256 of every body a ref reaches (tags, pending recordings), from the names of their
 * trees: `bodies/<2 hex>/<sha256>` in a recording, `<sha256>` in a pending one. git lists an
 * object once, under the path it met first: a body tree that a pending recording shares with a
 * tag may be listed under either, and so may the files inside it.
 */
async function reachableBodies(archive: Archive): Promise<Set<string>> {
  const { stdout } = await archive.git.run(['rev-list', '--objects', '--all']);
  const out = new Set<string>();
  for (const m of stdout.matchAll(/^[0-9a-f]+ (?:bodies\/[0-9a-f]{2}\/)?([0-9a-f]{64})$/gm)) out.add(m[1]);
  // The zstd objects of LFS mode, named by their own oid (src/format/lfs-store.ts, lfsZstdPointerName).
  for (const m of stdout.matchAll(/^[0-9a-f]+ (?:bodies\/[0-9a-f]{2}\/)?[0-9a-f]{64}\/lfs-([0-9a-f]{64})\.zst$/gm)) out.add(m[1]);
  return out;
}

async function anyActiveRecorder(archive: Archive): Promise<boolean> {
  return (await liveRecorders(archive.locksDir)).length > 0;
}

/** Bytes on disk of every object each tag reaches (`git rev-list --disk-usage`). */
export async function storageStats(archive: Archive): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const { tag, commit } of await archive.listTags()) {
    out.set(tag, await tagDiskUsage(archive, commit));
  }
  return out;
}

/** Bytes on disk of every object `commit` reaches (a tag's whole history). */
export async function tagDiskUsage(archive: Archive, commit: string): Promise<number> {
  const { stdout } = await archive.git.run(['rev-list', '--objects', '--disk-usage', commit]);
  return Number(stdout.trim()) + (await lfsDiskUsage(archive, commit));
}

/** Bytes on disk of the Git LFS objects (src/format/lfs-store.ts) of the bodies `commit` reaches. */
async function lfsDiskUsage(archive: Archive, commit: string): Promise<number> {
  const { stdout } = await archive.git.run(['rev-list', '--objects', commit]);
  const shas = [...stdout.matchAll(/^[0-9a-f]+ bodies\/[0-9a-f]{2}\/([0-9a-f]{64})\/lfs(?:-([0-9a-f]{64})\.zst)?$/gm)].map((m) => m[2] ?? m[1]);
  return shas.length ? archive.lfs.diskUsage(new Set(shas)) : 0;
}
