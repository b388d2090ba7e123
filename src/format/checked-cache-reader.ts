/**
 * The fast path of playback: a cached body whose checks file is in place, read from its part files
 * with several 1 MiB reads in flight, each part checked against its tag before it is pushed.
 *
 * The general checked read (body-reader.ts, `checkedRead`) stacks async generators over a file
 * stream, one read in flight, with a fresh 1 MiB buffer per part: the btrfly process needed
 * ~1.0 s of CPU per GiB played back, a third of it the kernel mapping and freeing those buffers.
 * Here several reads are in flight straight from `fs.read`, and a consumer that hands the buffers
 * back (src/engine/proxy/respond.ts) cycles through a few: ~0.74 s (docs/decisions.md, "Integrity of
 * played-back bodies").
 *
 * Integrity is the same as `checkedRead`'s: a part is pushed only once its tag matched. A part
 * that fails (wrong bytes, a part file gone or of the wrong length) drops the cache entry, and the
 * rest of the range, from that part on, comes from `rest` (git, checked the same way).
 */
import { close, fstat, open, read } from 'node:fs';
import { Readable } from 'node:stream';
import { CHECK_PART, type PartTags } from './body-checks';
import { PART_SIZE, type BodyLocation } from './types';

/** Check parts being read at once, ahead of the one the socket takes next. */
export const AHEAD = 4;

/** Buffers a lending reader has out at most (in flight, ready, pushed, being written), 1 MiB each. */
const LENT_MAX = 8;

/**
 * A body stream that can lend its buffers: after `lend()`, the consumer hands every chunk back
 * with the function it returned once the chunk's bytes are no longer needed (written to the
 * socket), and the stream reads into that memory again. A 1 GiB playback otherwise allocates
 * 1,024 fresh 1 MiB buffers, which the kernel maps and frees, and V8 counts as external memory:
 * this reader without lending ran 32 full mark-compacts per GiB (docs/decisions.md), so a consumer
 * that does not call `lend()` before its first read gets the general read instead. Chunks not
 * handed back are simply not reused.
 */
export interface LendsBuffers {
  lend(): (chunk: Buffer) => void;
}

export function lendsBuffers(s: Readable): s is Readable & LendsBuffers {
  return typeof (s as Partial<LendsBuffers>).lend === 'function';
}

const PARTS_PER_FILE = PART_SIZE / CHECK_PART;

interface FileHandle {
  fd: Promise<number>;
  /** Reads issued on it not yet called back: it is closed only at 0. */
  busy: number;
  /** The read of its last wanted part was issued: it closes once `busy` is 0. */
  issuedAll: boolean;
}

export interface CheckedCacheSource {
  /** Where storage part `index` of the body is in the cache. */
  partPath(index: number): string;
  /** Drops the body's cache entry (a part failed). */
  evict(): Promise<void>;
  /** The checked bytes `from..end` read elsewhere (git), once the cache failed at `from`. */
  rest(from: number): Readable;
  /**
   * The whole range read the general way (body-reader.ts): for a body without (good) checks, and
   * for a consumer that does not lend the buffers back.
   */
  general(): Readable;
}

/**
 * Bytes `start..end` (inclusive) of a cached body, each {@link CHECK_PART} checked against its tag
 * (`loadTags`) before any of its bytes is pushed.
 */
export class CheckedCacheReader extends Readable implements LendsBuffers {
  private readonly first: number;
  private readonly last: number;
  /** Next check part to issue a read for, and next one to push. */
  private nextRead: number;
  private nextPush: number;
  private inFlight = 0;
  private readonly done = new Map<number, Buffer | Error>();
  private readonly files = new Map<number, FileHandle>();
  private wanted = false;
  /** Set once the cache failed: the rest of the range streams from here. */
  private fallback?: Readable;
  private failing = false;
  private idle?: () => void;
  /** Lending (see {@link LendsBuffers}): the buffers out, by their memory, and the ones back to read into. */
  private lending = false;
  private readonly out = new Set<ArrayBufferLike>();
  private readonly pool: Buffer[] = [];

  constructor(
    private readonly loc: BodyLocation,
    private readonly start: number,
    private readonly end: number,
    private readonly loadTags: Promise<PartTags | undefined>,
    private readonly source: CheckedCacheSource,
  ) {
    // One part buffered: the read-ahead is the reads in flight, and a follower adds little.
    super({ highWaterMark: CHECK_PART });
    this.first = Math.floor(start / CHECK_PART);
    this.last = Math.floor(end / CHECK_PART);
    this.nextRead = this.first;
    this.nextPush = this.first;
  }

  private tags!: PartTags;

  /** Without a checks file, the whole read is `source.general()`'s (checked by the body's SHA-256). */
  override _construct(cb: (e?: Error | null) => void): void {
    this.loadTags.then(
      (tags) => {
        if (tags) this.tags = tags;
        else this.follow(this.source.general());
        cb();
      },
      (e: Error) => cb(e),
    );
  }

  lend(): (chunk: Buffer) => void {
    this.lending = true;
    return (chunk) => {
      if (!this.out.delete(chunk.buffer)) return; // not one of ours (from git), or already back
      this.pool.push(Buffer.from(chunk.buffer, 0, CHECK_PART));
      if (!this.destroyed && !this.fallback) this.pump();
    };
  }

  /** Memory for one part: lent ones come back to the pool. */
  private partBuffer(): Buffer {
    const buf = this.pool.pop() ?? Buffer.allocUnsafeSlow(CHECK_PART);
    this.out.add(buf.buffer);
    return buf;
  }

  private started = false;

  override _read(): void {
    if (!this.started) {
      this.started = true;
      // Fresh 1 MiB buffers with few other allocations are freed only by V8's full mark-compacts
      // (32 per GiB, RSS up by ~55 MiB for a 3 GiB read): a consumer that does not lend gets the
      // general read, whose garbage the young generation takes.
      if (!this.lending && !this.fallback) this.follow(this.source.general());
    }
    this.wanted = true;
    if (this.fallback) this.fallback.resume();
    else this.pump();
  }

  /** Issues reads up to {@link AHEAD} in flight or ready. */
  private pump(): void {
    while (this.wanted && !this.failing && this.nextRead <= this.last && this.inFlight + this.done.size < AHEAD && this.out.size < LENT_MAX) this.issue(this.nextRead++);
  }

  private issue(i: number): void {
    const file = Math.floor(i / PARTS_PER_FILE);
    const handle = this.handle(file);
    handle.busy++;
    this.inFlight++;
    const offset = i * CHECK_PART;
    const length = Math.min(CHECK_PART, this.loc.size - offset);
    const buf = this.partBuffer();
    if (i === this.lastOfFile(file)) handle.issuedAll = true;
    const settle = (r: Buffer | Error): void => {
      handle.busy--;
      this.inFlight--;
      if (handle.busy === 0 && (handle.issuedAll || this.failing || this.destroyed)) this.closeFile(file);
      // Failing or destroyed: reads still in flight are only counted down; the last one moves on.
      if (this.destroyed || this.failing) {
        if (this.inFlight === 0) this.idle?.();
        return;
      }
      this.done.set(i, r);
      this.deliver();
    };
    handle.fd.then(
      (fd) =>
        read(fd, buf, 0, length, offset - file * PART_SIZE, (e, n) => {
          if (e) settle(e);
          else settle(n === length ? buf.subarray(0, length) : new Error(`part ${i} is short`));
        }),
      (e: Error) => settle(e),
    );
  }

  private lastOfFile(file: number): number {
    return Math.min(this.last, (file + 1) * PARTS_PER_FILE - 1);
  }

  /** Pushes the parts that are ready, in order, each once its tag matched. */
  private deliver(): void {
    while (!this.failing && this.done.has(this.nextPush)) {
      const i = this.nextPush;
      const r = this.done.get(i)!;
      this.done.delete(i);
      // Buffer.isBuffer, not instanceof Error: fs errors may come from another realm (jest's vm).
      if (!Buffer.isBuffer(r) || !this.tags.verify(i, r)) return this.fail(i);
      this.nextPush++;
      const base = i * CHECK_PART;
      const piece = base >= this.start && base + r.length - 1 <= this.end ? r : r.subarray(Math.max(0, this.start - base), Math.min(r.length, this.end - base + 1));
      this.wanted = this.push(piece);
      if (i === this.last) {
        this.push(null);
        return;
      }
    }
    this.pump();
  }

  /** The cached part `i` failed: drop the entry once no read is in flight, then stream the rest from `source.rest`. */
  private fail(i: number): void {
    this.failing = true;
    this.done.clear();
    const from = Math.max(this.start, i * CHECK_PART);
    this.idle = () => {
      this.idle = undefined;
      for (const f of [...this.files.keys()]) this.closeFile(f);
      this.source.evict().then(
        () => {
          if (!this.destroyed) this.follow(this.source.rest(from));
        },
        (e: Error) => this.destroy(e),
      );
    };
    if (this.inFlight === 0) this.idle();
  }

  /** From now on the bytes come from `other`, with its backpressure. */
  private follow(other: Readable): void {
    this.fallback = other;
    other.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) other.pause();
    });
    other.once('end', () => this.push(null));
    other.once('error', (e) => this.destroy(e));
  }

  private handle(file: number): FileHandle {
    let h = this.files.get(file);
    if (!h) {
      const expected = Math.min(PART_SIZE, this.loc.size - file * PART_SIZE);
      const fd = new Promise<number>((resolve, reject) =>
        open(this.source.partPath(file), 'r', (e, fd) => {
          if (e) return reject(e);
          fstat(fd, (e2, st) => {
            if (!e2 && st.size === expected) return resolve(fd);
            close(fd, () => reject(e2 ?? new Error(`part file ${file} holds ${st.size} bytes, not ${expected}`)));
          });
        }),
      );
      fd.catch(() => undefined); // handled by the read that awaits it
      h = { fd, busy: 0, issuedAll: false };
      this.files.set(file, h);
    }
    return h;
  }

  private closeFile(file: number): void {
    const h = this.files.get(file);
    if (!h) return;
    this.files.delete(file);
    h.fd.then(
      (fd) => close(fd, () => undefined),
      () => undefined,
    );
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.fallback?.destroy();
    const finish = (): void => {
      for (const f of [...this.files.keys()]) this.closeFile(f);
      cb(err);
    };
    // A read in flight still writes into its buffer and uses its fd: close the files after it.
    if (this.inFlight === 0) finish();
    else this.idle = finish;
  }
}
