/**
 * The body cache: each body's raw bytes as plain files beside the archive's git objects (never
 * in them). A body of several parts, or of one larger than its writer holds in memory, is a
 * directory `<archive>/btrfly/cache/<2 hex>/<sha256>/<part>`, one file per 8 MiB part. Playback
 * streams a cached body from these files in 1 MiB reads, which Node serves faster than
 * single-worker nginx here; through `git cat-file` it reached 0.37× (docs/decisions.md, "Body
 * cache"). A small body (one part of at most 1 MiB, `isSmallBody`) recorded or read from git is
 * a record appended to a segment file of its writer (src/format/body-segments.ts), without an
 * inode of its own; directory entries of small bodies made by older versions are still read.
 * git stays the archive: it is what is pushed, pulled, verified and garbage-collected; the cache
 * is derived from it and can be deleted at any time.
 *
 * An entry is only ever made whole, from bytes whose SHA-256 was checked: a recording's parts
 * as the writer hashed them, or a whole read from git that verified. Its parts are gathered in
 * a stage directory and renamed into place in one step, so an entry is complete or absent; a
 * segment record cut short by a crash is ignored. Reads check each part's length, and a small
 * body's SHA-256 on every read; `btrfly verify` re-hashes cached entries and records and removes
 * bad ones, `gc` compacts the segments of writers that are gone. Off with
 * `git -C ARCHIVE config btrfly.bodyCache false`.
 *
 * The cache of an archive btrfly may not write (a read-only mount) is read as it is, `readOnly`:
 * nothing is added to it, and an entry found damaged is only forgotten for the process, so the
 * body is read from git again (each part still checked).
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BtrflyError } from '../errors';
import { processAlive } from '../process-alive';
import { BodySegments, readRegularFile } from './body-segments';
import { ownedTempName, tempOwner } from './lifecycle';
import { PART_SIZE, partName, type BodyLocation } from './types';

const IO_CHUNK = 1024 * 1024;
/** The directory of segment files, beside the `<2 hex>` directories of entries. */
const SEGMENTS = 'segments';

/** `gc` removes a stage directory older than this (its writer died), and spares entries younger than this while a recorder runs. */
const RECENT_MS = 60 * 60 * 1000;

function partLength(loc: BodyLocation, index: number): number {
  return Math.min(PART_SIZE, loc.size - index * PART_SIZE);
}

export class BodyCache {
  private readonly stageRoot: string;
  /** Small bodies, appended to segment files. */
  readonly segments: BodySegments;

  /** Entries found damaged in a {@link readOnly} cache, which cannot remove them: absent for this process. */
  private readonly dropped = new Set<string>();

  /**
   * @param dir `<archive>/btrfly/cache`
   * @param readOnly read it only: no fills, and {@link evict} forgets an entry instead of removing it
   */
  constructor(
    readonly dir: string,
    readonly readOnly = false,
  ) {
    this.stageRoot = join(dir, 'tmp');
    this.segments = new BodySegments(join(dir, SEGMENTS));
  }

  private entryDir(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  /** The file of storage part `index` of a cached body (raw bytes). */
  partPath(sha256: string, index: number): string {
    return join(this.entryDir(sha256), partName(index, false));
  }

  /**
   * Whether a whole directory entry for the body is in place (one `stat`: entries appear whole,
   * by rename), which {@link open} streams from. A small body in a segment is not one: see {@link holds}.
   */
  has(loc: BodyLocation): boolean {
    return !this.dropped.has(loc.sha256) && existsSync(this.entryDir(loc.sha256));
  }

  /** Whether the cache holds the body in either form. */
  holds(loc: BodyLocation): boolean {
    return this.has(loc) || this.segments.has(loc.sha256);
  }

  /**
   * The bytes `start..end` (inclusive) of a cached body, read from its part files in 1 MiB chunks.
   * A part missing (the entry removed under the read: `gc`, or damage found by another read) or
   * of the wrong length ends the cached read there: a damaged entry is removed, and the rest of
   * the range comes from `rest` (git), or, without it, the stream fails with BODY_CORRUPT.
   */
  open(loc: BodyLocation, start: number, end: number, rest?: (from: number) => Readable): Readable {
    const gen = async function* (this: BodyCache): AsyncGenerator<Buffer> {
      if (loc.size === 0) return;
      const first = Math.floor(start / PART_SIZE);
      const last = Math.floor(end / PART_SIZE);
      for (let i = first; i <= last; i++) {
        const base = i * PART_SIZE;
        const path = join(this.entryDir(loc.sha256), partName(i, false));
        const size = await stat(path).then((s) => s.size, () => -1);
        if (size !== partLength(loc, i)) {
          await this.evict(loc.sha256);
          if (!rest) throw cacheCorrupt(loc, size < 0 ? `part ${i} is missing` : `part ${i} holds ${size} bytes, not ${partLength(loc, i)}`);
          yield* rest(Math.max(start, base));
          return;
        }
        yield* createReadStream(path, { start: Math.max(start, base) - base, end: Math.min(end, base + size - 1) - base, highWaterMark: IO_CHUNK });
      }
    }.call(this);
    return Readable.from(gen, { objectMode: false, highWaterMark: IO_CHUNK });
  }

  /**
   * A whole small body (one part) from the cache, checked against its SHA-256 (cheap at this
   * size), or undefined when it is not cached or does not check out (then it is removed).
   */
  async readSmall(loc: BodyLocation): Promise<Buffer | undefined> {
    if (this.dropped.has(loc.sha256)) return undefined;
    const fromSegment = this.segments.read(loc.sha256, loc.size);
    if (fromSegment) return fromSegment;
    // An entry made by an older version (or a writer that streamed the body), read in one
    // synchronous call: a small file in the page cache takes microseconds, where `readFile` makes four trips through the thread pool (open, stat, read, close), which
    // thousands of small answers a second pay in latency (docs/decisions.md, "Body cache").
    // Never more than the body's size (+1), and only from a regular file: a FIFO blocked the
    // process in this synchronous read for ever, deaf to SIGTERM.
    const body = readRegularFile(join(this.entryDir(loc.sha256), partName(0, false)), loc.size);
    if (!body) return undefined;
    if (body.length === loc.size && createHash('sha256').update(body).digest('hex') === loc.sha256) return body;
    await this.evict(loc.sha256);
    return undefined;
  }

  /**
   * Re-hashes a cached entry: 'absent', 'ok', or 'removed' when its bytes did not match the body's
   * SHA-256 and size (the entry is deleted, so playback reads the body from git again).
   */
  async check(loc: BodyLocation): Promise<'absent' | 'ok' | 'removed'> {
    const record = this.segments.check(loc.sha256, loc.size);
    const entry = await this.checkEntry(loc);
    if (record === 'removed' || entry === 'removed') return 'removed';
    return record === 'ok' || entry === 'ok' ? 'ok' : 'absent';
  }

  private async checkEntry(loc: BodyLocation): Promise<'absent' | 'ok' | 'removed'> {
    if (!this.has(loc)) return 'absent';
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of this.open(loc, 0, Math.max(0, loc.size - 1)) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
    } catch {
      return 'removed'; // open() evicts an entry whose parts have the wrong length
    }
    if (size === loc.size && hash.digest('hex') === loc.sha256) return 'ok';
    await this.evict(loc.sha256);
    return 'removed';
  }

  /**
   * Puts a whole body held in memory (a small one, just checked) in place, best-effort: a record
   * in this process's segment, unless the cache holds it already.
   */
  async put(sha256: string, body: Buffer): Promise<void> {
    if (this.readOnly) return;
    try {
      this.putSmall(sha256, body);
    } catch {
      // The segment failed (a full disk): the body is in git either way.
    }
  }

  /** A new entry in the making; nothing is visible to readers before {@link CacheStage.commit}. */
  stage(): CacheStage {
    return new CacheStage(join(this.stageRoot, ownedTempName(process.pid, randomUUID())), (sha) => this.entryDir(sha), (sha, bytes) => this.putSmall(sha, bytes));
  }

  /** A small body as a segment record, unless it is cached in either form already; throws when the write fails. */
  private putSmall(sha256: string, bytes: Buffer): void {
    if (!existsSync(this.entryDir(sha256))) this.segments.append(sha256, bytes);
  }

  /** Removes a body's entry and its segment record (after it was found damaged). */
  async evict(sha256: string): Promise<void> {
    this.segments.evict(sha256);
    if (this.readOnly) {
      this.dropped.add(sha256);
      return;
    }
    // Renamed away first, so a reader never sees half an entry while it is deleted.
    const doomed = join(this.stageRoot, ownedTempName(process.pid, `evict-${randomUUID()}`));
    await mkdir(this.stageRoot, { recursive: true });
    if (await rename(this.entryDir(sha256), doomed).then(() => true, () => false)) await rm(doomed, { recursive: true, force: true });
  }

  /**
   * Removes every entry whose body is not in `keep`, and the stage directories of processes
   * that died (by the pid in their name; a stage without one when older than an hour), and
   * compacts the segments of writers that are gone (their records of bodies in `keep` that still
   * check out; see BodySegments.compact). Returns how many entries and records went.
   * @param opts.spareRecent keep entries made in the last hour too (a recorder is running: its
   * newest bodies are in no journal yet, and it may be answering from them)
   */
  async prune(keep: ReadonlySet<string>, opts: { spareRecent?: boolean } = {}): Promise<number> {
    let removed = 0;
    const now = Date.now();
    for (const prefix of await readdir(this.dir).catch(() => [] as string[])) {
      if (prefix === 'tmp' || prefix === SEGMENTS) continue;
      for (const sha of await readdir(join(this.dir, prefix)).catch(() => [] as string[])) {
        if (keep.has(sha)) continue;
        if (opts.spareRecent && (await stat(join(this.dir, prefix, sha)).then((s) => now - s.mtimeMs < RECENT_MS, () => false))) continue;
        await this.evict(sha);
        removed++;
      }
    }
    for (const name of await readdir(this.stageRoot).catch(() => [] as string[])) {
      const path = join(this.stageRoot, name);
      const owner = tempOwner(name);
      const dead = owner !== undefined ? !processAlive(owner) : await stat(path).then((s) => now - s.mtimeMs > RECENT_MS, () => false);
      if (dead) await rm(path, { recursive: true, force: true });
    }
    return removed + this.segments.compact(keep, opts);
  }
}

/** The part files of one entry, gathered before the entry is renamed into place. */
export class CacheStage {
  private made?: Promise<void>;

  constructor(
    private readonly dir: string,
    private readonly entryDir: (sha256: string) => string,
    private readonly appendSmall: (sha256: string, bytes: Buffer) => void,
  ) {}

  private partPath(index: number): string {
    return join(this.dir, partName(index, false));
  }

  private ready(): Promise<void> {
    this.made ??= mkdir(this.dir, { recursive: true }).then(() => undefined);
    return this.made;
  }

  /** Moves a finished raw part file (on the same file system) into the stage. */
  async addFile(index: number, path: string): Promise<void> {
    await this.ready();
    await rename(path, this.partPath(index));
  }

  /** Writes a part held in memory (a small body) into the stage. */
  async addBytes(index: number, bytes: Buffer): Promise<void> {
    await this.ready();
    await writeFile(this.partPath(index), bytes);
  }

  /** A file stream for part `index`, for bytes that arrive in chunks (a body read from git). */
  async partWriter(index: number): Promise<WriteStream> {
    await this.ready();
    const out = createWriteStream(this.partPath(index), { highWaterMark: IO_CHUNK });
    await once(out, 'open');
    return out;
  }

  /** Puts the entry in place for `sha256`; when another writer got there first, this copy is dropped. */
  async commit(sha256: string): Promise<void> {
    await this.ready();
    const target = this.entryDir(sha256);
    try {
      // The prefix directory exists for all but the first body under it: make it only then
      // (one mkdir less per small file recorded).
      await rename(this.dir, target).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        await mkdir(join(target, '..'), { recursive: true });
        await rename(this.dir, target);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      await this.discard();
    }
  }

  /**
   * Caches a body of one small part (a file recorded) at once: a record appended to this
   * process's segment (src/format/body-segments.ts) with one synchronous write, no inode. A
   * directory and a file per body cost 0.67–1.43 ms of CPU each on this disk, a quarter of the
   * recorder's main thread (docs/notes/small-files.md). A body the cache holds already is kept.
   */
  putSmallSync(sha256: string, bytes: Buffer): void {
    this.appendSmall(sha256, bytes);
  }

  /** Removes the stage and whatever is in it. */
  async discard(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Fills a stage part by part from a read of the body, best-effort: a failure (a full disk, a
 * stage removed under it) drops the fill, never the read it rides along with.
 */
export class CacheFill {
  private file?: WriteStream;
  private failed = false;

  constructor(private readonly stage: CacheStage) {}

  async startPart(index: number): Promise<void> {
    if (this.failed) return;
    try {
      const file = await this.stage.partWriter(index);
      file.on('error', () => this.fail());
      this.file = file;
    } catch {
      this.fail();
    }
  }

  /** Writes with backpressure; a stream that fails while we wait ends the wait (its 'close'). */
  async write(bytes: Buffer): Promise<void> {
    const file = this.file;
    if (!file || file.write(bytes)) return;
    await new Promise<void>((resolve) => {
      file.once('drain', resolve);
      file.once('close', resolve);
    });
  }

  async endPart(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (!file || this.failed) return;
    file.end();
    if (!file.closed) await once(file, 'close');
  }

  /** Puts the entry in place when every part was written; otherwise removes the stage. */
  async commit(sha256: string): Promise<void> {
    if (!this.failed) await this.stage.commit(sha256).catch(() => this.fail());
    if (this.failed) await this.abandon();
  }

  async abandon(): Promise<void> {
    this.file?.destroy();
    this.file = undefined;
    await this.stage.discard().catch(() => undefined);
  }

  private fail(): void {
    this.failed = true;
    this.file?.destroy();
    this.file = undefined;
  }
}

function cacheCorrupt(loc: BodyLocation, what: string): BtrflyError {
  return new BtrflyError('BODY_CORRUPT', `the cached copy of body ${loc.sha256} was damaged (${what}) and has been removed: retry, and the body is read from git`, {
    data: { sha256: loc.sha256 },
  });
}
