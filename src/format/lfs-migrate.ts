/**
 * `btrfly migrate --lfs`: moves a git mode archive to Git LFS mode (src/format/lfs-store.ts).
 * Every body is read back from git (its SHA-256 checked on the way) into the LFS store, and
 * every recording of every tag is written again, oldest first, as a new commit whose tree holds
 * pointer files instead of the body parts, and the same manifest but for each body's `storage`
 * (`lfs`) and `parts` (1): same author, dates and message
 * (plus a line naming the commit it replaces), so the history reads as before, with new commit
 * ids. The old objects stay until `btrfly gc`. A body that is already an LFS object is kept as
 * it is, so a migration that stopped half way is finished by running it again.
 */
import { readdir } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { BtrflyError } from '../errors';
import type { Archive } from './archive';
import { lockForGc } from './gc-lock';
import type { TreeEntry } from './git';
import { checkGitLfs, LFS_ATTRIBUTES, STORAGE_KEY, STORAGE_LFS } from './lfs-store';
import { lockHolder, lockTag } from './lock';
import { serializeManifest } from './manifest';
import { REVIEW_ATTRIBUTES } from './review-attributes';
import type { BodyLocation } from './types';

/** What a migration did. */
export interface MigrateResult {
  tags: Array<{ tag: string; from: string; to: string; recordings: number }>;
  /** Bodies copied into the LFS store. */
  bodies: number;
  /** Their raw bytes. */
  bytes: number;
  /** Tags being recorded meanwhile that the migration could not take: their recorder writes git bodies; a second run migrates them. */
  recording: string[];
}

/**
 * Migrates every tag of the archive to LFS mode and marks the archive so.
 * @param opts.onBody told of each body as it is copied (for progress)
 * @throws BtrflyError CONFIG (git-lfs missing), TAG_BUSY (a tag is being recorded), BODY_CORRUPT / BODY_MISSING (a body does not read back: nothing of that tag is changed)
 */
export async function migrateToLfs(archive: Archive, opts: { onBody?: (sha256: string, size: number) => void } = {}): Promise<MigrateResult> {
  await checkGitLfs(archive.git);
  // No gc meanwhile, and recordings wait until the migration ends (they wait for the gc lock).
  const release = await lockForGc(archive.stateDir, 'btrfly migrate --lfs');
  try {
    // A tag whose newest recording is missing cannot be migrated (nor listed with its commit date): said before anything changes.
    for (const tag of await archive.tagNames()) {
      if (await archive.tagCommit(tag)) continue;
      const missing = await archive.tagNotReadable(tag);
      throw new BtrflyError(missing.code, `${missing.message}; nothing was migrated`, { data: missing.data });
    }
    // From here on, new bodies are LFS objects and push/pull run git-lfs.
    await archive.git.run(['config', STORAGE_KEY, STORAGE_LFS]);
    archive.lfsMode = true;
    const migrated = new Map<string, string>(); // old body tree → new body tree
    const commits = new Map<string, string>(); // old commit → new commit
    const attributes = await archive.git.hashBytes(REVIEW_ATTRIBUTES + LFS_ATTRIBUTES);
    const result: MigrateResult = { tags: [], bodies: 0, bytes: 0, recording: [] };
    for (const { tag, commit: tip } of await archive.listTags()) {
      const lock = await lockTag(archive.locksDir, tag, `migrate-${process.pid}`);
      try {
        const { stdout } = await archive.git.run(['rev-list', '--reverse', '--topo-order', '--parents', tip]);
        let recordings = 0;
        for (const line of stdout.split('\n').filter(Boolean)) {
          const [commit, ...parents] = line.split(' ');
          if (commits.has(commit)) continue;
          const rec = await archive.readRecording(tag, commit);
          const bodyTrees = await bodyTreesOf(archive, commit);
          let changed = false;
          for (const [sha, loc] of rec.bodies) {
            const old = bodyTrees.get(sha)!;
            // Already LFS; the empty body (a git blob in LFS mode too: copying it changes nothing, and a
            // rewrite would give a second run new commit ids); or a body no entry names (left as it is).
            if (loc.lfs || loc.size <= 0) continue;
            let next = migrated.get(old);
            if (!next) {
              next = await copyToLfs(archive, loc);
              migrated.set(old, next);
              result.bodies++;
              result.bytes += loc.size;
              opts.onBody?.(sha, loc.size);
            }
            bodyTrees.set(sha, next);
            changed = true;
          }
          const newParents = parents.map((p) => commits.get(p) ?? p);
          if (!changed && newParents.every((p, i) => p === parents[i])) {
            commits.set(commit, commit);
            continue;
          }
          // The manifest says how each body is stored now: one LFS object.
          for (const e of rec.manifest.entries) {
            if (rec.bodies.get(e.response.content.sha256) && e.response.content.size > 0) Object.assign(e.response.content, { storage: 'lfs', parts: 1 });
          }
          const manifest = await archive.git.hashBytes(serializeManifest(rec.manifest));
          commits.set(commit, await rewriteCommit(archive, commit, newParents, { bodyTrees, attributes, manifest }));
          recordings++;
        }
        const to = commits.get(tip)!;
        if (to !== tip && !(await archive.git.updateRef(`refs/heads/${tag}`, to, tip))) {
          throw new BtrflyError('TAG_MOVED', `tag "${tag}" changed while it was being migrated: run "btrfly migrate --lfs" again`, { data: { tag } });
        }
        result.tags.push({ tag, from: tip, to, recordings });
      } finally {
        await lock.release();
      }
    }
    // A recording that began before the migration (of a new tag) goes on writing its bodies into git.
    result.recording = await tagsBeingRecorded(archive, new Set(result.tags.map((t) => t.tag)));
    return result;
  } finally {
    await release();
  }
}

async function tagsBeingRecorded(archive: Archive, migrated: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for (const f of await readdir(archive.locksDir).catch(() => [] as string[])) {
    if (!f.endsWith('.lock')) continue;
    // The holder names the tag (a long tag's lock is named by its digest).
    const holder = await lockHolder(archive.locksDir, decodeURIComponent(f.slice(0, -'.lock'.length)));
    if (holder && !migrated.has(holder.tag)) out.push(holder.tag);
  }
  return out.sort();
}

/** Reads a body from git (verified by its SHA-256 as it streams) into an LFS writer; the new body tree. */
async function copyToLfs(archive: Archive, loc: BodyLocation): Promise<string> {
  const writer = archive.createBodyWriter();
  await pipeline(archive.openBody(loc, undefined, { fromGit: true }), writer);
  const stored = await writer.done;
  if (stored.sha256 !== loc.sha256) throw new BtrflyError('BODY_CORRUPT', `body ${loc.sha256} read back as ${stored.sha256} while migrating: run "btrfly verify"`);
  // Its plain copy in the body cache is not needed any more: the LFS object is what playback reads.
  await archive.cache?.evict(loc.sha256);
  return stored.treeOid;
}

/** `bodies/<2 hex>/<sha256>` → tree id, for one recording. */
async function bodyTreesOf(archive: Archive, commit: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const { stdout } = await archive.git.run(['ls-tree', '-r', '-d', '-z', commit, 'bodies/']);
  for (const rec of stdout.split('\0')) {
    const m = /^040000 tree ([0-9a-f]+)\tbodies\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(rec);
    if (m) out.set(m[2], m[1]);
  }
  return out;
}

/** The recording `commit` again with the given body trees, parents and LFS attributes; same author, dates and message. */
async function rewriteCommit(
  archive: Archive,
  commit: string,
  parents: string[],
  { bodyTrees, attributes, manifest }: { bodyTrees: Map<string, string>; attributes: string; manifest: string },
): Promise<string> {
  const git = archive.git;
  const { stdout } = await git.run(['ls-tree', '-z', commit]);
  const root: TreeEntry[] = [];
  for (const rec of stdout.split('\0').filter(Boolean)) {
    const tab = rec.indexOf('\t');
    const [mode, type, oid] = rec.slice(0, tab).split(' ');
    const name = rec.slice(tab + 1);
    if (name === 'bodies' || name === '.gitattributes') continue;
    root.push({ mode: mode as TreeEntry['mode'], type: type as TreeEntry['type'], oid: name === 'manifest.json' ? manifest : oid, name });
  }
  // Written also into recordings made before issue 15 had none: a clone then sees the pointers as LFS files.
  root.push({ mode: '100644', type: 'blob', oid: attributes, name: '.gitattributes' });
  const fanout = new Map<string, TreeEntry[]>();
  for (const [sha, oid] of [...bodyTrees].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const dir = sha.slice(0, 2);
    if (!fanout.has(dir)) fanout.set(dir, []);
    fanout.get(dir)!.push({ mode: '040000', type: 'tree', oid, name: sha });
  }
  const dirs: TreeEntry[] = [];
  for (const [dir, entries] of [...fanout].sort(([a], [b]) => (a < b ? -1 : 1))) dirs.push({ mode: '040000', type: 'tree', oid: await git.mktree(entries), name: dir });
  if (dirs.length) root.push({ mode: '040000', type: 'tree', oid: await git.mktree(dirs), name: 'bodies' });
  root.sort((a, b) => (a.name < b.name ? -1 : 1));
  const tree = await git.mktree(root);
  const meta = await git.run(['log', '-1', '--format=%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B', commit]);
  const [an, ae, ad, cn, ce, cd, ...body] = meta.stdout.split('\0');
  const message = `${body.join('\0').replace(/\s+$/, '')}\n\nbtrfly-migrated-to-lfs-from: ${commit}\n`;
  return git.commitTree(tree, parents, message, {
    GIT_AUTHOR_NAME: an,
    GIT_AUTHOR_EMAIL: ae,
    GIT_AUTHOR_DATE: ad,
    GIT_COMMITTER_NAME: cn,
    GIT_COMMITTER_EMAIL: ce,
    GIT_COMMITTER_DATE: cd,
  });
}
