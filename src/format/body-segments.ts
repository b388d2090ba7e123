/**
 * The small bodies of the body cache (src/format/body-cache.ts), appended to segment files
 * instead of a directory and a file each: `<archive>/btrfly/cache/segments/p<pid>-<uuid>.seg`.
 * A new inode per body was a quarter of the recorder's main thread on 5,000 small files (a
 * directory and a file 0.67–1.43 ms of CPU on this disk, an append 0.03–0.04 ms;
 * docs/notes/small-files.md).
 *
 * Each process that writes appends to a segment of its own (named by its pid, so concurrent
 * recorders need no lock between them, and `gc` knows when its writer is gone). A record
 * describes itself: a header of {@link HEADER} bytes (magic, length, the body's SHA-256, a CRC-32
 * of the length and digest), then the raw bytes. Nothing is synced: after a crash a segment may
 * end in half a record, which a scan stops before, or hold records whose bytes never reached the
 * disk, which the SHA-256 check of every read finds. A record found bad is dropped by
 * overwriting its magic in place ({@link DEAD}); `gc` compacts the segments of dead writers
 * ({@link BodySegments.compact}).
 *
 * Readers find a body by an index in memory, built by scanning the records' headers (one
 * positional read per record) the first time it is needed, and rescanned, from where each segment's
 * scan stopped, at most once a second when a body is not found. Every read is checked against
 * the body's SHA-256 before its bytes are returned.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { processAlive } from '../process-alive';
import { ownedTempName, tempOwner } from './lifecycle';

/** A live record. */
const MAGIC = Buffer.from('BtS1');
/** A record dropped (its bytes did not match); skipped by scans, not copied by `gc`. */
const DEAD = Buffer.from('BtSx');
/** Magic (4), length (u32, big-endian), SHA-256 (32), CRC-32 of length and SHA-256 (4). */
export const HEADER = 44;
/** The largest body a record holds (a small body, src/format/git.ts). */
const MAX_RECORD = 1024 * 1024;
/** A writer starts a new segment past this size. */
const SEGMENT_LIMIT = 64 * 1024 * 1024;
/** How often a reader that misses may look for new records. */
const RESCAN_MS = 1000;
const RECENT_MS = 60 * 60 * 1000;
/**
 * Read descriptors kept open at most (the least recently used is closed past this). One per
 * segment for the life of the process ran out of descriptors: 2,000 segments (no `gc`) under a
 * limit of 1,024 left the proxy none for its connections.
 */
const OPEN_LIMIT = 64;
const SUFFIX = '.seg';

interface RecordAt {
  segment: string;
  /** Where its header begins. */
  offset: number;
  length: number;
}

interface Header {
  live: boolean;
  length: number;
  sha256: string;
}

function header(sha256: string, length: number): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeUInt32BE(length, 4);
  h.write(sha256, 8, 32, 'hex');
  h.writeUInt32BE(crc32(h.subarray(4, 40)), 40);
  return h;
}

function parseHeader(h: Buffer): Header | undefined {
  const live = h.compare(MAGIC, 0, 4, 0, 4) === 0;
  if (!live && h.compare(DEAD, 0, 4, 0, 4) !== 0) return undefined;
  const length = h.readUInt32BE(4);
  if (length > MAX_RECORD || h.readUInt32BE(40) !== crc32(h.subarray(4, 40))) return undefined;
  return { live, length, sha256: h.toString('hex', 8, 40) };
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * Opens a segment file for reading (or writing a dropped record's magic), or undefined when it
 * is no regular file of its own: a FIFO would block the open (and the process) for ever, a
 * directory fails every read, a symbolic link would have a drop write outside the archive.
 */
function openSegment(path: string, write = false): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, (write ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(fd).isFile()) return fd;
  } catch {
    // not statable: not a segment to use
  }
  closeSync(fd);
  return undefined;
}

/**
 * The bytes of a regular file of the cache (no FIFO, directory or link), at most `max` + 1 of them
 * (a longer file is wrong either way), or undefined when there is none or it cannot be read.
 */
export function readRegularFile(path: string, max: number): Buffer | undefined {
  const fd = openSegment(path);
  if (fd === undefined) return undefined;
  try {
    const buf = Buffer.allocUnsafe(Math.min(fstatSync(fd).size, max + 1));
    return buf.subarray(0, readFully(fd, buf, 0));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * The records of one segment from `from`: calls `found` for each whole record with a good header.
 * A damaged header is skipped by searching for the next magic. Returns where the scan stopped: the
 * end, the start of a record not (yet) whole, or the last {@link HEADER} bytes after damage.
 */
function scanRecords(fd: number, from: number, found: (h: Header, offset: number) => void): number {
  const size = fstatSync(fd).size;
  // Headers are read a window at a time: the records of small bodies lie a few KiB apart, and a
  // read per header was most of a first scan's CPU (200,000 records: 550 ms).
  const window = Buffer.allocUnsafe(SCAN_WINDOW);
  let windowAt = 0;
  let windowEnd = 0;
  let pos = from;
  while (pos + HEADER <= size) {
    if (pos < windowAt || pos + HEADER > windowEnd) {
      windowAt = pos;
      windowEnd = pos + readFully(fd, window.subarray(0, Math.min(SCAN_WINDOW, size - pos)), pos);
      if (windowEnd < pos + HEADER) break; // the file shrank under the scan
    }
    const parsed = parseHeader(window.subarray(pos - windowAt, pos - windowAt + HEADER));
    if (parsed) {
      if (pos + HEADER + parsed.length > size) break; // a torn tail, or a record being written
      found(parsed, pos);
      pos += HEADER + parsed.length;
      continue;
    }
    const next = nextMagic(fd, pos + 1, size);
    if (next < 0) {
      // Nothing before the last HEADER bytes can still become a record (appends go after them):
      // the next scan starts there, and does not read the damaged bytes again on every miss.
      pos = Math.max(pos, size - HEADER);
      break;
    }
    pos = next;
  }
  return pos;
}

/** How much of a segment a scan reads at a time for its headers. */
const SCAN_WINDOW = 64 * 1024;
/** How much of a segment {@link nextMagic} reads at a time. */
const SEARCH_CHUNK = 64 * 1024;

/**
 * The offset of the next possible record header at or after `from`, or -1. Linear in the bytes
 * searched, however many magics they hold (a body may be made of them).
 */
function nextMagic(fd: number, from: number, size: number): number {
  const chunk = Buffer.allocUnsafe(SEARCH_CHUNK);
  const h = Buffer.alloc(HEADER);
  for (let pos = from; pos < size; pos += chunk.length - 3) {
    const n = readFully(fd, chunk, pos);
    const view = chunk.subarray(0, n);
    let live = view.indexOf(MAGIC);
    let dead = view.indexOf(DEAD);
    while (live >= 0 || dead >= 0) {
      const hit = live < 0 ? dead : dead < 0 ? live : Math.min(live, dead);
      if (pos + hit + HEADER > size) return -1;
      const candidate = hit + HEADER <= n ? view.subarray(hit, hit + HEADER) : h.subarray(0, readFully(fd, h, pos + hit));
      if (candidate.length === HEADER && parseHeader(candidate)) return pos + hit;
      if (hit === live) live = view.indexOf(MAGIC, hit + 1);
      if (hit === dead) dead = view.indexOf(DEAD, hit + 1);
    }
    if (n < chunk.length) break;
  }
  return -1;
}

const sha256Of = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export class BodySegments {
  private readonly index = new Map<string, RecordAt>();
  /** Where the scan of each segment stopped. */
  private readonly scanned = new Map<string, number>();
  /** Read descriptors of segments, least recently used first (at most {@link OPEN_LIMIT}). */
  private readonly open = new Map<string, number>();
  private loaded = false;
  private lastScan = 0;
  /** This process's segment, appended to. */
  private own?: { name: string; fd: number; size: number };

  /** @param dir `<archive>/btrfly/cache/segments` */
  constructor(readonly dir: string) {}

  /** Whether a record of the body is indexed (scans the segments the first time). */
  has(sha256: string): boolean {
    this.load();
    return this.index.has(sha256);
  }

  /**
   * The body's bytes from its record, checked against its SHA-256 and size, or undefined when no
   * record holds it or the record is bad (then it is dropped). A miss rescans, at most once a second;
   * so does a record whose segment is gone (`gc` compacted it, after this index was built).
   */
  read(sha256: string, size: number): Buffer | undefined {
    const got = this.lookup(sha256, size);
    return typeof got === 'string' ? undefined : got;
  }

  /** Re-hashes the body's record: 'absent' (also when its segment is gone), 'ok', or 'removed' when it did not match (it is dropped). */
  check(sha256: string, size: number): 'absent' | 'ok' | 'removed' {
    if (!this.has(sha256)) return 'absent';
    const got = this.lookup(sha256, size);
    return got === 'bad' ? 'removed' : got === 'missing' ? 'absent' : 'ok';
  }

  private lookup(sha256: string, size: number): Buffer | 'missing' | 'bad' {
    this.load();
    for (let tries = 0; tries < 2; tries++) {
      let rec = this.index.get(sha256);
      if (!rec && Date.now() - this.lastScan >= RESCAN_MS) {
        this.scan();
        rec = this.index.get(sha256);
      }
      if (!rec) break;
      const got = this.readRecord(rec, sha256, size);
      if (got === 'gone') {
        this.index.delete(sha256);
        continue;
      }
      if (got === 'bad') this.drop(sha256, rec);
      return got;
    }
    return 'missing';
  }

  /** A record's bytes when they check out; 'gone' when its segment cannot be opened any more. */
  private readRecord(rec: RecordAt, sha256: string, size: number): Buffer | 'gone' | 'bad' {
    const fd = this.fdOf(rec.segment);
    if (fd === undefined) return 'gone';
    if (rec.length !== size) return 'bad';
    const body = Buffer.allocUnsafe(size);
    try {
      if (readFully(fd, body, rec.offset + HEADER) !== size) return 'bad';
    } catch {
      return 'bad';
    }
    return sha256Of(body) === sha256 ? body : 'bad';
  }

  /**
   * Appends a record of checked bytes to this process's segment, unless one is indexed already.
   * Throws when the file system fails (a full disk); the record cut short is then cut off again,
   * or, when that fails too, the segment is given up (a later append starts another), so a
   * record cut short can only be the last of its segment. A failed append leaves no file and no
   * descriptor behind: on a full disk every small body fails, and each would leak one.
   */
  append(sha256: string, bytes: Buffer): void {
    if (bytes.length > MAX_RECORD || this.has(sha256)) return;
    if (this.own && this.own.size >= SEGMENT_LIMIT) this.leaveOwn();
    if (!this.own) {
      mkdirSync(this.dir, { recursive: true });
      const name = ownedTempName(process.pid, randomUUID()) + SUFFIX;
      const fd = openSync(join(this.dir, name), 'wx+');
      this.own = { name, fd, size: 0 };
    }
    const own = this.own;
    const offset = own.size;
    let written = 0;
    let failure: unknown;
    try {
      written = writevSync(own.fd, [header(sha256, bytes.length), bytes], offset);
    } catch (e) {
      failure = e;
    }
    if (failure !== undefined || written !== HEADER + bytes.length) {
      this.cutBack(offset);
      throw failure ?? new Error(`wrote ${written} of ${HEADER + bytes.length} bytes to ${own.name}`);
    }
    own.size += written;
    this.index.set(sha256, { segment: own.name, offset, length: bytes.length });
  }

  /** Cuts this process's segment back to `size` after a failed append, or gives it up (and deletes it when it is empty). */
  private cutBack(size: number): void {
    const own = this.own!;
    try {
      ftruncateSync(own.fd, size);
      return;
    } catch {
      own.size = size;
      this.leaveOwn();
    }
    if (size === 0) unlinkSafe(join(this.dir, own.name));
  }

  /** Stops appending to this process's segment; its records stay readable like any other segment's. */
  private leaveOwn(): void {
    const own = this.own!;
    this.own = undefined;
    this.scanned.set(own.name, own.size);
    closeSync(own.fd);
  }

  /** A read descriptor of a segment, from the ones kept open or opened now (closing the least recently used past the limit). */
  private fdOf(name: string): number | undefined {
    if (name === this.own?.name) return this.own.fd;
    let fd = this.open.get(name);
    if (fd !== undefined) {
      this.open.delete(name);
    } else {
      fd = openSegment(join(this.dir, name));
      if (fd === undefined) return undefined;
      for (const [oldest, oldFd] of this.open) {
        if (this.open.size < OPEN_LIMIT) break;
        this.open.delete(oldest);
        closeSync(oldFd);
      }
    }
    this.open.set(name, fd);
    return fd;
  }

  /** Closes the segment files; a later call scans again. */
  close(): void {
    for (const fd of [...this.open.values(), ...(this.own ? [this.own.fd] : [])]) {
      try {
        closeSync(fd);
      } catch {
        // closed already
      }
    }
    this.open.clear();
    this.scanned.clear();
    this.index.clear();
    this.own = undefined;
    this.loaded = false;
  }

  /** Drops the body's record, if any (it was found damaged, or the body is to be read from git). */
  evict(sha256: string): void {
    this.load();
    const rec = this.index.get(sha256);
    if (rec) this.drop(sha256, rec);
  }

  private drop(sha256: string, rec: RecordAt): void {
    this.index.delete(sha256);
    // The segment may be gone (gc copied its good records elsewhere): nothing left to drop then.
    const fd = openSegment(join(this.dir, rec.segment), true);
    if (fd === undefined) return;
    try {
      writeSync(fd, DEAD, 0, DEAD.length, rec.offset);
    } catch {
      // not writable: the record stays, and every read of it checks its bytes again
    } finally {
      closeSync(fd);
    }
  }

  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    this.scan();
  }

  /** Indexes the records added since the last scan, and the segments that are new. */
  private scan(): void {
    this.lastScan = Date.now();
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith(SUFFIX));
    } catch {
      return;
    }
    for (const name of names) {
      if (name === this.own?.name) continue;
      const from = this.scanned.get(name) ?? 0;
      try {
        // Opened only when it grew since: a rescan does not reopen every segment.
        if (lstatSync(join(this.dir, name)).size <= from && this.scanned.has(name)) continue;
      } catch {
        continue;
      }
      const fd = this.fdOf(name);
      if (fd === undefined) continue;
      let reached = from;
      try {
        reached = scanRecords(fd, from, (h, offset) => {
          reached = offset + HEADER + h.length;
          if (h.live && !this.index.has(h.sha256)) this.index.set(h.sha256, { segment: name, offset, length: h.length });
        });
      } catch {
        // A read failed (a damaged disk): the records found so far are used, the rest from git.
      }
      this.scanned.set(name, reached);
    }
  }

  /**
   * Compacts the segments whose writers are gone. A segment that holds only good-looking records
   * of bodies in `keep`, none repeated, and is at least half a writer's segment, is left as it is
   * (reads check every record anyway; `verify` re-hashes them), as is one whole smaller segment
   * with nothing to merge with: gc used to rewrite the whole cache whenever anything was to be
   * dropped. A segment with no record to keep is deleted without a
   * write. The rest are copied, each record checked by its SHA-256 again, into new segments of up
   * to {@link SEGMENT_LIMIT}, and each old one is deleted once a finished new one holds its
   * records: gc needs one new segment of free space, not a copy of the cache (on a full disk the
   * deletions come first). Leftovers of a compaction that died are removed. Returns how many
   * bodies went.
   * @param opts.spareRecent leave segments changed in the last hour as they are (a recorder runs)
   */
  compact(keep: ReadonlySet<string>, opts: { spareRecent?: boolean } = {}): number {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return 0;
    }
    const now = Date.now();
    const done = (name: string): boolean => {
      const owner = tempOwner(name);
      if (name === this.own?.name || (owner !== undefined && owner !== process.pid && processAlive(owner))) return false;
      if (!opts.spareRecent) return true;
      try {
        return now - statSync(join(this.dir, name)).mtimeMs > RECENT_MS;
      } catch {
        return false;
      }
    };
    for (const name of names.filter((n) => !n.endsWith(SUFFIX) && done(n))) unlinkSafe(join(this.dir, name));
    const surveys = names.filter((n) => n.endsWith(SUFFIX) && done(n)).map((n) => this.survey(n, keep));
    const gone = new Set<string>();
    for (const s of surveys) for (const sha of s.unkept) gone.add(sha);
    // Kept as they are: whole segments, the larger first, none holding a body an earlier one holds.
    const placed = new Set<string>();
    const rewrite: SegmentSurvey[] = [];
    for (const s of [...surveys].sort((a, b) => b.size - a.size)) {
      if (s.whole && s.size >= SEGMENT_LIMIT / 2 && !s.kept.some((sha) => placed.has(sha))) for (const sha of s.kept) placed.add(sha);
      else if (s.kept.every((sha) => placed.has(sha))) unlinkSafe(join(this.dir, s.name));
      else rewrite.push(s);
    }
    // One whole small segment has nothing to be merged with: copying it would only churn.
    if (rewrite.length === 1 && rewrite[0].whole) rewrite.pop();
    let out: { fd: number; temp: string; name: string; size: number; from: string[] } | undefined;
    const finish = (): void => {
      if (!out) return;
      closeSync(out.fd);
      if (out.size > 0) renameSync(out.temp, join(this.dir, out.name));
      else unlinkSafe(out.temp);
      for (const n of out.from) unlinkSafe(join(this.dir, n));
      out = undefined;
    };
    try {
      for (const s of rewrite) {
        if (out && out.size >= SEGMENT_LIMIT) finish();
        if (!out) {
          const name = ownedTempName(process.pid, randomUUID()) + SUFFIX;
          const temp = join(this.dir, `${name}.tmp`);
          out = { fd: openSync(temp, 'wx'), temp, name, size: 0, from: [] };
        }
        const target = out;
        this.visit(s.name, (fd, h, offset) => {
          if (!h.live || !keep.has(h.sha256) || placed.has(h.sha256)) return;
          const body = Buffer.allocUnsafe(h.length);
          if (readFully(fd, body, offset + HEADER) !== h.length || sha256Of(body) !== h.sha256) return;
          let written: number;
          try {
            written = writevSync(target.fd, [header(h.sha256, h.length), body], target.size);
          } catch (e) {
            throw new SegmentWriteError(e);
          }
          if (written !== HEADER + h.length) throw new SegmentWriteError(new Error(`wrote ${written} of ${HEADER + h.length} bytes to ${target.temp}`));
          target.size += written;
          placed.add(h.sha256);
        });
        target.from.push(s.name);
      }
      finish();
    } catch (e) {
      // The old segments of the unfinished new one stay: nothing is lost, the next gc goes on.
      if (out) {
        closeSync(out.fd);
        unlinkSafe(out.temp);
      }
      throw e instanceof SegmentWriteError ? e.cause : e;
    }
    for (const sha of gone) this.index.delete(sha);
    return gone.size;
  }

  /** What a segment holds, from its headers alone: see {@link SegmentSurvey}. */
  private survey(name: string, keep: ReadonlySet<string>): SegmentSurvey {
    const s: SegmentSurvey = { name, size: 0, whole: true, kept: [], unkept: [] };
    const seen = new Set<string>();
    let expected = 0;
    s.whole = this.visit(name, (_fd, h, offset) => {
      if (offset !== expected) s.whole = false; // damaged bytes skipped before this record
      expected = offset + HEADER + h.length;
      if (!h.live) s.whole = false;
      else if (!keep.has(h.sha256)) {
        s.whole = false;
        s.unkept.push(h.sha256);
      } else if (seen.has(h.sha256)) s.whole = false;
      else {
        seen.add(h.sha256);
        s.kept.push(h.sha256);
      }
    }, (size) => (s.size = size)) && s.whole;
    return s;
  }

  /**
   * Calls `each` for every record of a segment; false when the segment could not be read to its
   * end (gone, unreadable past some record, or ending in bytes that are no record).
   */
  private visit(name: string, each: (fd: number, h: Header, offset: number) => void, sized?: (size: number) => void): boolean {
    const fd = openSegment(join(this.dir, name));
    if (fd === undefined) return false;
    try {
      const size = fstatSync(fd).size;
      sized?.(size);
      return scanRecords(fd, 0, (h, offset) => each(fd, h, offset)) === size;
    } catch (e) {
      if (e instanceof SegmentWriteError) throw e;
      return false;
    } finally {
      closeSync(fd);
    }
  }
}

/** A write of gc's new segment failed: it ends the compaction (a failed read ends only that segment's copy). */
class SegmentWriteError extends Error {
  constructor(cause: unknown) {
    super('segment write failed', { cause });
  }
}

/**
 * One segment as gc sees it. `whole`: read to its end, every record live, of a kept body, and not
 * repeated within it, with no damaged bytes between records. `kept`: the kept bodies it holds;
 * `unkept`: those no tag reaches any more.
 */
interface SegmentSurvey {
  name: string;
  size: number;
  whole: boolean;
  kept: string[];
  unkept: string[];
}

function unlinkSafe(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
