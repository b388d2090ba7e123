/**
 * What the listing commands show about an archive: every tag with its figures (`btrfly
 * tags`), a tag's history (`btrfly log`), one recording resolved from `T[@REV]` (`btrfly
 * show`, `diff`, `export`), a verification with its counts (`btrfly verify`) and the disk
 * use around a garbage collection (`btrfly gc`). Plain data out; the commands print it.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isBtrflyError, withoutAdvice } from '../errors';
import type { Archive, TagInfo } from './archive';
import { tagDiskUsage, type VerifyProblem } from './archive-maintenance';
import { compareStrings } from './manifest';
import { parseTagSpec } from './names';
import { repairAdvice, type Recording } from './types';
import { verifyArchive } from './archive-maintenance';

/** One line of `btrfly tags`. */
export interface TagSummary {
  tag: string;
  commit: string;
  recordings: number;
  /** Entries of the newest recording. */
  entries: number;
  /** Sum of the newest recording's body sizes, as received. */
  size: number;
  /** Bytes on disk of every object the tag reaches (its whole history). */
  storedSize: number;
  /** Commit date of the newest recording, ISO 8601. */
  lastRecorded: string;
}

/** A tag that could not be read, in a listing that goes on without it (the service's). */
export interface UnreadableTag {
  tag: string;
  commit: string;
  lastRecorded: string;
  /** Why, in one line. */
  error: string;
}

/**
 * Every tag of the archive, sorted by name, with its figures; a tag whose newest recording
 * cannot be read (its commit missing or damaged) is listed with what is wrong and what to do.
 */
export async function summarizeTags(archive: Archive): Promise<(TagSummary | UnreadableTag)[]> {
  return summarize(archive, () => true);
}

/**
 * The tags `visible` lets through (chosen by name before anything of them is read), sorted
 * by name; a tag that cannot be read is listed with its error instead of failing the listing.
 */
export async function summarizeVisibleTags(archive: Archive, visible: (tag: string) => boolean): Promise<(TagSummary | UnreadableTag)[]> {
  return summarize(archive, visible);
}

async function summarize(archive: Archive, visible: (tag: string) => boolean): Promise<(TagSummary | UnreadableTag)[]> {
  const out: (TagSummary | UnreadableTag)[] = [];
  for (const t of (await listTagsAsTheyAre(archive)).filter((t) => visible(t.tag))) {
    try {
      // Side by side, but what is said is the first in this order that fails: the newest recording,
      // then the history (an older recording missing), then the disk usage (which fails for either).
      const reads = [archive.readRecording(t.tag, t.commit), archive.history(t.tag), tagDiskUsage(archive, t.commit)] as const;
      for (const r of reads) r.catch(() => undefined);
      const rec = await reads[0];
      const history = await reads[1];
      const storedSize = await reads[2];
      out.push({
        tag: t.tag,
        commit: t.commit,
        recordings: history.length,
        entries: rec.manifest.entries.length,
        size: recordingSize(rec),
        storedSize,
        lastRecorded: t.date,
      });
    } catch (e) {
      out.push({ tag: t.tag, commit: t.commit, lastRecorded: t.date, error: await whyUnreadable(archive, t.tag, t.commit, e) });
    }
  }
  return out.sort((a, b) => compareStrings(a.tag, b.tag));
}

/**
 * Every tag with its commit and date, as {@link Archive.listTags}; when a tag's commit is missing
 * or damaged (which fails git's listing as a whole), the others all the same, that one with no date.
 */
async function listTagsAsTheyAre(archive: Archive): Promise<TagInfo[]> {
  try {
    return await archive.listTags();
  } catch {
    const out: TagInfo[] = [];
    for (const tag of await archive.tagNames()) {
      const commit = (await archive.tagRefTarget(tag)) ?? '';
      const r = await archive.git.run(['log', '-1', '--format=%cI', commit, '--'], { ok: [0, 128] }).catch(() => undefined);
      out.push({ tag, commit, date: r?.code === 0 ? r.stdout.trim() : '' });
    }
    return out;
  }
}

/** Why a tag's newest recording cannot be read, and what to do, in one line. */
async function whyUnreadable(archive: Archive, tag: string, commit: string, e: unknown): Promise<string> {
  const present = commit !== '' && (await archive.git.run(['cat-file', '-e', commit], { ok: [0, 1, 128] })).code === 0;
  if (!present) return `tag "${tag}": its newest recording ${commit.slice(0, 12)} is missing from the archive: ${repairAdvice(tag)}`;
  // An error that already says to repair says it as it is; git's own advice (check git) gives way to the repair.
  if (isBtrflyError(e) && e.advice?.includes('btrfly verify --repair')) return e.message;
  const said = withoutAdvice(e);
  return `tag "${tag}": its newest recording ${commit.slice(0, 12)} cannot be read (${said}): ${repairAdvice(tag)}`;
}

/** The sum of a recording's body sizes as received (a body named twice counts twice). */
export function recordingSize(rec: Recording): number {
  return rec.manifest.entries.reduce((s, e) => s + e.response.content.size, 0);
}

/** One line of `btrfly log`. */
export interface LogItem {
  commit: string;
  date: string;
  parent: string | null;
  entries: number;
  size: number;
  summary: string;
}

/**
 * The recordings of a tag, newest first, with their entry counts.
 * @throws BtrflyError TAG_NOT_FOUND
 */
export async function tagLog(archive: Archive, tag: string): Promise<LogItem[]> {
  const history = await archive.history(tag);
  const out: LogItem[] = [];
  for (const h of history) {
    const rec = await archive.readRecording(tag, h.commit);
    out.push({ ...h, entries: rec.manifest.entries.length, size: recordingSize(rec) });
  }
  return out;
}

/** A recording picked by the user as `T` or `T@REV`, with its commit date. */
export interface ResolvedRecording {
  rec: Recording;
  /** `tag@1a2b3c4`: how messages and diff headers name it. */
  label: string;
  date: Date;
}

/**
 * Loads the recording `spec` names (`T`: the tag's newest; `T@REV`: that one).
 * @throws BtrflyError BAD_TAG_NAME, TAG_NOT_FOUND, REV_NOT_FOUND, REV_AMBIGUOUS
 */
export async function loadRecording(archive: Archive, spec: string): Promise<ResolvedRecording> {
  const { tag, rev } = parseTagSpec(spec);
  const commit = await archive.resolveCommit(tag, rev);
  const rec = await archive.readRecording(tag, commit);
  const { stdout } = await archive.git.run(['show', '-s', '--format=%cI', commit]);
  return { rec, label: `${tag}@${commit.slice(0, 7)}`, date: new Date(stdout.trim()) };
}

/** What `btrfly verify` checked, and what it found. */
export interface VerifyReport {
  tags: number;
  /** Distinct recordings (tags that share history share them). */
  recordings: number;
  /** Distinct bodies named by the recordings checked. */
  bodies: number;
  /** Their bytes, as received. */
  bytes: number;
  problems: VerifyProblem[];
}

/**
 * Verifies `tags` (default: every tag) and counts what was covered.
 * @throws BtrflyError TAG_NOT_FOUND when a tag asked for does not exist (nothing is checked then)
 */
export async function verifyWithReport(archive: Archive, tags?: string[]): Promise<VerifyReport> {
  // A tag whose commit is missing is checked too (and named as such), not "not found".
  for (const tag of tags ?? []) if (!(await archive.tagRefTarget(tag))) await archive.resolveCommit(tag);
  const names = tags ?? (await archive.tagNames());
  // A commit, tree or manifest git cannot read: what to do is the repair, not a check of git.
  const problems = (await verifyArchive(archive, names)).map((p) =>
    p.code === 'GIT' ? { ...p, message: `${p.what ?? p.message}: ${repairAdvice(p.tag)}` } : p,
  );
  const bodies = new Map<string, number>();
  const recordings = new Set<string>();
  for (const tag of names) {
    const history = await archive.history(tag).catch(() => []);
    for (const { commit } of history) {
      if (recordings.has(commit)) continue;
      recordings.add(commit);
      const rec = await archive.readRecording(tag, commit).catch(() => undefined);
      for (const e of rec?.manifest.entries ?? []) bodies.set(e.response.content.sha256, e.response.content.size);
    }
  }
  let bytes = 0;
  for (const size of bodies.values()) bytes += size;
  return { tags: names.length, recordings: recordings.size, bodies: bodies.size, bytes, problems };
}

/** Bytes and files under `<archive>/objects` and in the Git LFS store (unless `lfs: false`): what `gc` can shrink. */
export async function objectsDiskUsage(archive: Archive, opts: { lfs?: boolean } = {}): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, d.name);
      if (d.isDirectory()) await walk(p);
      else if (d.isFile()) {
        bytes += (await stat(p)).size;
        files++;
      }
    }
  };
  await walk(join(archive.dir, 'objects'));
  // Git LFS bodies (and bodies being written) are the archive's objects too: most of its bytes in LFS mode.
  if (opts.lfs !== false) {
    await walk(archive.lfs.objects);
    await walk(archive.lfs.tmp);
  }
  return { bytes, files };
}
