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
 * overwriting its magic in place ({@link DEAD}); `gc` copies the good records of the segments
 * of dead writers into one new segment and deletes the old ones.
 *
 * Readers find a body by an index in memory, built by scanning the records' headers (one
 * positional read per record) the first time it is needed, and rescanned, from where each segment's
 * scan stopped, at most once a second when a body is not found. Every read is checked against
 * the body's SHA-256 before its bytes are returned.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync, writevSync } from 'node:fs';
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
 * The records of one segment from `from`: calls `found` for each whole record with a good header.
 * A damaged header is skipped by searching for the next magic. Returns where the scan stopped: the
 * end, or the start of a record not (yet) whole.
 */
function scanRecords(fd: number, from: number, found: (h: Header, offset: number) => void): number {
  const size = fstatSync(fd).size;
  const h = Buffer.alloc(HEADER);
  let pos = from;
  while (pos + HEADER <= size) {
    readFully(fd, h, pos);
    const parsed = parseHeader(h);
    if (parsed) {
      if (pos + HEADER + parsed.length > size) break; // a torn tail, or a record being written
      found(parsed, pos);
      pos += HEADER + parsed.length;
      continue;
    }
    const next = nextMagic(fd, pos + 1, size);
    if (next < 0) break;
    pos = next;
  }
  return pos;
}

/** The offset of the next possible record header at or after `from`, or -1. */
function nextMagic(fd: number, from: number, size: number): number {
  const chunk = Buffer.alloc(MAX_RECORD);
  for (let pos = from; pos < size; pos += chunk.length - 3) {
    const n = readFully(fd, chunk, pos);
    const view = chunk.subarray(0, n);
    for (let at = 0; at < n; ) {
      const live = view.indexOf(MAGIC, at);
      const dead = view.indexOf(DEAD, at);
      const hit = live < 0 ? dead : dead < 0 ? live : Math.min(live, dead);
      if (hit < 0) break;
      if (pos + hit + HEADER > size) return -1;
      const h = Buffer.alloc(HEADER);
      readFully(fd, h, pos + hit);
      if (parseHeader(h)) return pos + hit;
      at = hit + 1;
    }
    if (n < chunk.length) break;
  }
  return -1;
}

const sha256Of = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export class BodySegments {
  private readonly index = new Map<string, RecordAt>();
  /** Read descriptors of the segments scanned, and where each scan stopped. */
  private readonly segments = new Map<string, { fd: number; scanned: number }>();
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
   * record holds it or the record is bad (then it is dropped). A miss rescans, at most once a second.
   */
  read(sha256: string, size: number): Buffer | undefined {
    this.load();
    let rec = this.index.get(sha256);
    if (!rec && Date.now() - this.lastScan >= RESCAN_MS) {
      this.scan();
      rec = this.index.get(sha256);
    }
    if (!rec) return undefined;
    const seg = this.segments.get(rec.segment);
    let body: Buffer | undefined;
    if (seg && rec.length === size) {
      body = Buffer.allocUnsafe(size);
      try {
        if (readFully(seg.fd, body, rec.offset + HEADER) !== size) body = undefined;
      } catch {
        body = undefined;
      }
    }
    if (body && sha256Of(body) === sha256) return body;
    this.drop(sha256, rec);
    return undefined;
  }

  /** Re-hashes the body's record: 'absent', 'ok', or 'removed' when it did not match (it is dropped). */
  check(sha256: string, size: number): 'absent' | 'ok' | 'removed' {
    if (!this.has(sha256)) return 'absent';
    return this.read(sha256, size) ? 'ok' : 'removed';
  }

  /**
   * Appends a record of checked bytes to this process's segment, unless one is indexed already.
   * Throws when the file system fails; the segment is then given up (a later append starts another),
   * so a record cut short can only be the last of its segment.
   */
  append(sha256: string, bytes: Buffer): void {
    if (bytes.length > MAX_RECORD || this.has(sha256)) return;
    if (this.own && this.own.size >= SEGMENT_LIMIT) this.own = undefined;
    if (!this.own) {
      mkdirSync(this.dir, { recursive: true });
      const name = ownedTempName(process.pid, randomUUID()) + SUFFIX;
      const fd = openSync(join(this.dir, name), 'wx+');
      this.own = { name, fd, size: 0 };
      this.segments.set(name, { fd, scanned: 0 });
    }
    const own = this.own;
    const offset = own.size;
    let written: number;
    try {
      written = writevSync(own.fd, [header(sha256, bytes.length), bytes], offset);
    } catch (e) {
      this.own = undefined;
      throw e;
    }
    if (written !== HEADER + bytes.length) {
      this.own = undefined;
      throw new Error(`wrote ${written} of ${HEADER + bytes.length} bytes to ${own.name}`);
    }
    own.size += written;
    this.segments.get(own.name)!.scanned = own.size;
    this.index.set(sha256, { segment: own.name, offset, length: bytes.length });
  }

  /** Closes the segment files; a later call scans again. */
  close(): void {
    for (const seg of this.segments.values()) {
      try {
        closeSync(seg.fd);
      } catch {
        // closed already
      }
    }
    this.segments.clear();
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
    try {
      const fd = openSync(join(this.dir, rec.segment), 'r+');
      try {
        writeSync(fd, DEAD, 0, DEAD.length, rec.offset);
      } finally {
        closeSync(fd);
      }
    } catch {
      // The segment is gone (gc copied its good records elsewhere): nothing left to drop.
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
      let seg = this.segments.get(name);
      if (!seg) {
        try {
          seg = { fd: openSync(join(this.dir, name), 'r'), scanned: 0 };
        } catch {
          continue;
        }
        this.segments.set(name, seg);
      }
      if (name === this.own?.name) continue;
      seg.scanned = scanRecords(seg.fd, seg.scanned, (h, offset) => {
        if (h.live && !this.index.has(h.sha256)) this.index.set(h.sha256, { segment: name, offset, length: h.length });
      });
    }
  }

  /**
   * Compacts the segments whose writers are gone: the good records of bodies in `keep` are copied
   * into one new segment (each checked by its SHA-256 again, once per body), the old segments are
   * deleted. Leftovers of a compaction that died are removed. Returns how many bodies went.
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
    const old = names.filter((n) => n.endsWith(SUFFIX) && done(n));
    if (old.length === 0) return 0;
    // Whether anything would change: a record dropped, damaged, unkept or repeated, or more than one segment.
    const copied = new Set<string>();
    const gone = new Set<string>();
    let waste = old.length > 1;
    const visit = (each: (fd: number, h: Header, offset: number) => void): void => {
      for (const name of old) {
        let fd: number;
        try {
          fd = openSync(join(this.dir, name), 'r');
        } catch {
          continue;
        }
        try {
          const end = scanRecords(fd, 0, (h, offset) => each(fd, h, offset));
          if (end !== fstatSync(fd).size) waste = true;
        } finally {
          closeSync(fd);
        }
      }
    };
    const good = (fd: number, h: Header, offset: number): Buffer | undefined => {
      const body = Buffer.allocUnsafe(h.length);
      return readFully(fd, body, offset + HEADER) === h.length && sha256Of(body) === h.sha256 ? body : undefined;
    };
    visit((fd, h, offset) => {
      if (!h.live || !keep.has(h.sha256) || copied.has(h.sha256) || !good(fd, h, offset)) {
        waste = true;
        if (h.live && !keep.has(h.sha256)) gone.add(h.sha256);
        return;
      }
      copied.add(h.sha256);
    });
    if (!waste) return 0;
    copied.clear();
    const name = ownedTempName(process.pid, randomUUID()) + SUFFIX;
    const temp = join(this.dir, `${name}.tmp`);
    const out = openSync(temp, 'wx');
    let size = 0;
    try {
      visit((fd, h, offset) => {
        if (!h.live || !keep.has(h.sha256) || copied.has(h.sha256)) return;
        const body = good(fd, h, offset);
        if (!body) return;
        const written = writevSync(out, [header(h.sha256, h.length), body], size);
        if (written !== HEADER + h.length) throw new Error(`wrote ${written} of ${HEADER + h.length} bytes to ${temp}`);
        size += written;
        copied.add(h.sha256);
      });
    } catch (e) {
      closeSync(out);
      unlinkSafe(temp);
      throw e;
    }
    closeSync(out);
    if (size > 0) renameSync(temp, join(this.dir, name));
    else unlinkSafe(temp);
    for (const n of old) unlinkSafe(join(this.dir, n));
    for (const sha of gone) this.index.delete(sha);
    return gone.size;
  }
}

function unlinkSafe(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
