/**
 * Streams a stored body, or an inclusive byte range of it, reading only the parts the range
 * touches. Whole-body reads are verified against the body's SHA-256 at the end.
 */
import { createHash } from 'node:crypto';
import { addAbortSignal, Readable } from 'node:stream';
import { createZstdDecompress, zstdDecompressSync } from 'node:zlib';
import { BtrflyError, isBtrflyError } from '../errors';
import { CacheFill, type BodyCache } from './body-cache';
import { CHECK_PART, type BodyChecks, type PartTagger, type PartTags } from './body-checks';
import { CheckedCacheReader } from './checked-cache-reader';
import { SMALL_OBJECT_LIMIT, isSmallBody, type Git } from './git';
import { PART_SIZE, repairAdvice, type BodyLocation, type ByteRange, type PartLocation } from './types';

const IO_CHUNK = 1024 * 1024;

/** Where the bytes of one part come from, as raw (decompressed) bytes. */
type PartSource = Readable;

/** Where a read may use the body cache (src/format/body-cache.ts). */
export interface CacheUse {
  cache: BodyCache;
  /** Read from git even when the body is cached (`verify`); a whole read still fills the cache. */
  fromGit?: boolean;
}

/**
 * Opens a body for reading: from the body cache when it holds the body, else from git, and a
 * whole read from git that verifies fills the cache for the next time.
 * @param range inclusive at both ends; checked against `loc.size` (callers answer 416 before this).
 * @param opts.checks per-part checks (src/format/body-checks.ts): with them, no byte leaves the
 * stream before the part that holds it checked out, a damaged cached copy is replaced by git's
 * mid-stream, and a damaged git copy fails the stream before the bad part
 * @returns a stream of the bytes; it fails with BtrflyError BODY_MISSING when a part is not in
 * the archive, and BODY_CORRUPT when a part's length or the whole body's SHA-256 is wrong.
 */
export function openBody(git: Git, loc: BodyLocation, range?: ByteRange, opts: { signal?: AbortSignal; cache?: CacheUse; checks?: BodyChecks } = {}): Readable {
  const start = range?.start ?? 0;
  const end = range?.end ?? loc.size - 1;
  if (start < 0 || end >= loc.size || (start > end && !(loc.size === 0 && range === undefined))) {
    throw new BtrflyError('STORAGE', `byte range ${start}-${end} is outside body ${loc.sha256} of ${loc.size} bytes: ask for a range within the body`);
  }
  const expectedParts = Math.max(1, Math.ceil(loc.size / PART_SIZE));
  if (loc.parts.length !== expectedParts) {
    throw corrupt(loc, `has ${loc.parts.length} parts where ${loc.size} bytes need ${expectedParts}`);
  }
  const whole = start === 0 && end === loc.size - 1;
  const cached = opts.cache?.cache.has(loc) ?? false;
  // Filled by a whole read from git, when the cache does not hold the body yet.
  const fill = whole && !cached && !opts.cache?.cache.readOnly ? opts.cache?.cache : undefined;
  let out: Readable;
  if (opts.checks && !opts.cache?.fromGit && loc.size > 0 && !(whole && isSmallBody(loc))) {
    const checks = opts.checks;
    const cache = opts.cache?.cache;
    const general = (from: number): Readable => Readable.from(checkedRead(git, loc, from, end, checks, cache), { objectMode: false, highWaterMark: IO_CHUNK });
    // The common case, a cached body with its checks, sent by respond.ts: parts read ahead, each
    // checked before it goes, in buffers the response hands back.
    out = cached
      ? new CheckedCacheReader(loc, start, end, checks.read(loc.sha256, loc.size), {
          partPath: (i) => cache!.partPath(loc.sha256, i),
          evict: () => cache!.evict(loc.sha256),
          rest: general,
          general: () => general(start),
        })
      : general(start);
  } else if (cached && !opts.cache!.fromGit) {
    const restFromGit = (from: number): Readable => Readable.from(readParts(git, loc, from, end, false), { objectMode: false, highWaterMark: IO_CHUNK });
    out = opts.cache!.cache.open(loc, start, end, restFromGit);
  }
  else if (whole && isSmallBody(loc)) out = smallWholeBody(git, loc, opts.cache?.fromGit ? undefined : opts.cache?.cache, fill);
  else {
    // A whole read from git (`verify`, `pull`) also makes the body's checks, from the bytes it verifies.
    const tagged = whole && opts.checks ? { checks: opts.checks, tagger: opts.checks.tagger() } : undefined;
    out = Readable.from(readParts(git, loc, start, end, whole, fill && new CacheFill(fill.stage()), tagged), { objectMode: false, highWaterMark: IO_CHUNK });
  }
  return opts.signal ? addAbortSignal(opts.signal, out) : out;
}

/**
 * A read of `start..end` in which every byte is checked before it is yielded: each
 * {@link CHECK_PART} it touches is read whole (from the cache when it holds the body, else from
 * git) and checked against its tag. A cached part that fails (wrong bytes, wrong length, gone)
 * drops the cache entry, and the read goes on from git at that part: healed. A part from git that
 * fails ends the stream with BODY_CORRUPT before any of its bytes. A body with no (good) checks
 * file is checked by its SHA-256 (a cached copy whole, first: {@link checkCachedCopy}): a whole read holds back its last part until the digest
 * matches, and then writes the checks file; a range first reads the whole body that way.
 */
async function* checkedRead(git: Git, loc: BodyLocation, start: number, end: number, checks: BodyChecks, cache?: BodyCache): AsyncGenerator<Buffer> {
  const whole = start === 0 && end === loc.size - 1;
  let tags = await checks.read(loc.sha256, loc.size);
  // A cached copy without checks is checked whole first: one that fails is dropped before any of
  // it is sent, and git's copy answers (checked by its SHA-256 as it goes), so it heals too.
  if (!tags && cache?.has(loc)) tags = await checkCachedCopy(loc, checks, cache);
  if (!tags && !whole) {
    for await (const _ of checkedRead(git, loc, 0, loc.size - 1, checks, cache)); // verifies, then writes the checks file
    tags = await checks.read(loc.sha256, loc.size);
    if (!tags) throw new BtrflyError('STORAGE', `cannot write the checks of body ${loc.sha256} under ${checks.dir}: check free space and permissions there`);
  }
  const first = Math.floor(start / CHECK_PART);
  const last = Math.floor(end / CHECK_PART);
  const stop = Math.min(loc.size, (last + 1) * CHECK_PART) - 1;
  let fromCache = cache?.has(loc) ?? false;
  // A whole read from git fills the cache with the checked bytes; committed only at the end.
  const fill = whole && !fromCache && cache && !cache.readOnly ? new CacheFill(cache.stage()) : undefined;
  const byDigest = tags ? undefined : { hash: createHash('sha256'), tagger: checks.tagger() };
  let held: Buffer | undefined; // checked by digest: the part before the one being read
  let filled = false;
  let i = first;
  try {
    while (i <= last) {
      const source = fromCache ? cache!.open(loc, i * CHECK_PART, stop) : Readable.from(readParts(git, loc, i * CHECK_PART, stop, false), { objectMode: false });
      try {
        for await (const part of exactParts(loc, source, i * CHECK_PART, stop)) {
          if (tags && !tags.verify(i, part)) throw corrupt(loc, `has part ${i} (bytes ${i * CHECK_PART}-${i * CHECK_PART + part.length - 1}) that does not match its check`);
          byDigest?.hash.update(part);
          byDigest?.tagger.update(part);
          if (fill) await fillPart(fill, i, part, loc.size);
          const base = i * CHECK_PART;
          const piece = base >= start && base + part.length - 1 <= end ? part : part.subarray(Math.max(0, start - base), Math.min(part.length, end - base + 1));
          i++;
          if (tags) yield piece;
          else {
            if (held) yield held;
            held = piece;
          }
        }
      } catch (e) {
        if (!fromCache || !isBtrflyError(e) || e.code !== 'BODY_CORRUPT') throw e;
        // The cached copy is damaged: drop it and go on with git's, checked the same way.
        await cache!.evict(loc.sha256);
        fromCache = false;
      } finally {
        source.destroy();
      }
    }
    if (byDigest) {
      const actual = byDigest.hash.digest('hex');
      if (actual !== loc.sha256) {
        if (cache?.has(loc)) await cache.evict(loc.sha256);
        throw corrupt(loc, `reads back with SHA-256 ${actual}`);
      }
      await checks.write(loc.sha256, loc.size, byDigest.tagger);
    }
    if (fill) {
      await fill.commit(loc.sha256);
      filled = true;
    }
    if (held) yield held;
  } finally {
    if (fill && !filled) await fill.abandon();
  }
}

/**
 * Reads a cached body whole, checking its SHA-256 and making its checks: the checks when it is
 * the recorded body, else undefined once the entry is dropped.
 */
async function checkCachedCopy(loc: BodyLocation, checks: BodyChecks, cache: BodyCache): Promise<PartTags | undefined> {
  const hash = createHash('sha256');
  const tagger = checks.tagger();
  const source = cache.open(loc, 0, loc.size - 1);
  try {
    for await (const part of exactParts(loc, source, 0, loc.size - 1)) {
      hash.update(part);
      tagger.update(part);
    }
  } catch (e) {
    if (!isBtrflyError(e) || e.code !== 'BODY_CORRUPT') throw e;
  } finally {
    source.destroy();
  }
  if (hash.digest('hex') !== loc.sha256) {
    await cache.evict(loc.sha256);
    return undefined;
  }
  await checks.write(loc.sha256, loc.size, tagger);
  return checks.read(loc.sha256, loc.size);
}

/** Writes check part `i` into the cache fill, opening and closing its storage part files. */
async function fillPart(fill: CacheFill, i: number, part: Buffer, size: number): Promise<void> {
  const offset = i * CHECK_PART;
  if (offset % PART_SIZE === 0) await fill.startPart(offset / PART_SIZE);
  await fill.write(part);
  const next = offset + part.length;
  if (next % PART_SIZE === 0 || next === size) await fill.endPart();
}

/**
 * Regroups a stream of `from..to` (from at a check part's start) into whole check parts, the last
 * one ending at `to`; a chunk that is already one part passes without a copy.
 */
async function* exactParts(loc: BodyLocation, source: AsyncIterable<Buffer>, from: number, to: number): AsyncGenerator<Buffer> {
  let pos = from; // where the part being gathered starts
  let pending: Buffer[] = [];
  let have = 0;
  for await (const data of source) {
    let chunk = data;
    while (chunk.length > 0) {
      const want = Math.min(CHECK_PART, to + 1 - pos);
      if (want <= 0) throw corrupt(loc, `holds more than ${to + 1} bytes`);
      if (have === 0 && chunk.length === want) {
        pos += want;
        yield chunk;
        break;
      }
      const take = chunk.subarray(0, want - have);
      pending.push(take);
      have += take.length;
      chunk = chunk.subarray(take.length);
      if (have === want) {
        const part = pending.length === 1 ? pending[0] : Buffer.concat(pending, have);
        pending = [];
        have = 0;
        pos += want;
        yield part;
      }
    }
  }
  if (pos !== to + 1) throw corrupt(loc, `ends at byte ${pos + have}, not ${to + 1}`);
}

/**
 * @param fill receives every part as it is read (whole reads only); committed once the SHA-256
 * checks out, discarded otherwise.
 * @param tagged tags every byte (whole verified reads only); the checks file is written once the
 * SHA-256 checks out.
 */
async function* readParts(
  git: Git,
  loc: BodyLocation,
  start: number,
  end: number,
  verify: boolean,
  fill?: CacheFill,
  tagged?: { checks: BodyChecks; tagger: PartTagger },
): AsyncGenerator<Buffer> {
  const hash = verify ? createHash('sha256') : undefined;
  const first = Math.floor(start / PART_SIZE);
  const last = loc.size === 0 ? 0 : Math.floor(end / PART_SIZE);
  // The next part is opened while the current one streams (a large part's bytes follow in the
  // same git process), so part boundaries do not stall on object lookup.
  const stored = storedParts(git, loc.parts.slice(first, last + 1));
  let next: PartSource | undefined = openPart(loc.parts[first], stored.open(0));
  let current: PartSource | undefined;
  let filled = false;
  try {
    for (let i = first; i <= last; i++) {
      current = next!;
      await fill?.startPart(i);
      next = i < last ? openPart(loc.parts[i + 1], stored.open(i + 1 - first)) : undefined;
      const partStart = i * PART_SIZE;
      const partLength = Math.min(PART_SIZE, loc.size - partStart);
      const from = Math.max(start, partStart) - partStart; // first wanted byte within the part
      const to = Math.min(end, partStart + partLength - 1) - partStart; // last wanted byte within the part
      let pos = 0;
      try {
        for await (const chunk of current as AsyncIterable<Buffer>) {
          const chunkEnd = pos + chunk.length;
          if (chunkEnd > partLength) throw corrupt(loc, `part ${i} holds more than its ${partLength} bytes`);
          if (chunkEnd > from && pos <= to) {
            const piece = pos >= from && chunkEnd - 1 <= to ? chunk : chunk.subarray(Math.max(0, from - pos), to - pos + 1);
            hash?.update(piece);
            tagged?.tagger.update(piece);
            await fill?.write(piece);
            yield piece;
          }
          pos = chunkEnd;
          // A range that ends inside this part needs nothing more from it.
          if (!verify && pos > to) break;
        }
      } catch (e) {
        throw partError(loc, i, e);
      }
      if (pos !== partLength && (verify || pos <= to)) throw corrupt(loc, `part ${i} holds ${pos} bytes, not ${partLength}`);
      current.destroy();
      current = undefined;
      await fill?.endPart();
    }
    if (hash) {
      const actual = hash.digest('hex');
      if (actual !== loc.sha256) throw corrupt(loc, `reads back with SHA-256 ${actual}`);
      if (tagged) await tagged.checks.write(loc.sha256, loc.size, tagged.tagger);
    }
    if (fill) {
      await fill.commit(loc.sha256);
      filled = true;
    }
  } finally {
    current?.destroy();
    next?.destroy();
    stored.close();
    if (fill && !filled) await fill.abandon();
  }
}

/**
 * The stored bytes of each part: a small part from the shared batch reader, opened when asked
 * for; the large ones in turn from one `git cat-file --batch` of the body's own, started at once
 * (so the next part is already on its way while one streams). `close` ends what is left.
 */
function storedParts(git: Git, parts: readonly PartLocation[]): { open(i: number): Readable; close(): void } {
  const isLarge = (p: PartLocation): boolean => p.storedSize > SMALL_OBJECT_LIMIT;
  const large = parts.filter(isLarge);
  const streams = large.length ? git.streamBlobs(large.map((p) => p.oid)) : undefined;
  // Part i's place among the large parts, counted once rather than on every open.
  let seen = 0;
  const largeIndex = parts.map((p) => (isLarge(p) ? seen++ : -1));
  // Streams opened and not closed yet (one or two): a closed one is not held until the end.
  const open = new Set<Readable>();
  return {
    open(i) {
      const part = parts[i];
      const s = isLarge(part) ? streams!.open(largeIndex[i]) : smallBlob(git, part.oid);
      open.add(s);
      s.once('close', () => open.delete(s));
      return s;
    },
    close() {
      for (const s of open) s.destroy();
      streams?.close();
    },
  };
}

function openPart(part: PartLocation, stored: Readable): PartSource {
  if (!part.zstd) return stored;
  const decompress = createZstdDecompress({ chunkSize: IO_CHUNK });
  stored.on('error', (e) => decompress.destroy(e));
  decompress.on('close', () => stored.destroy());
  return stored.pipe(decompress);
}

/**
 * A whole small body in one buffer, SHA-256 checked, or undefined when the body is not small
 * (one part of at most 1 MiB): then stream it with {@link openBody}. A playback of thousands
 * of small files answers each with one `res.end(buffer)`, without a stream per body.
 */
export function readSmallBody(git: Git, loc: BodyLocation, cache?: BodyCache): Promise<Buffer> | undefined {
  if (!isSmallBody(loc)) return undefined;
  return (async () => (await cache?.readSmall(loc)) ?? (await loadSmallBody(git, loc, cache)))().catch((e: unknown) => {
    throw partError(loc, 0, e);
  });
}

/**
 * A whole body of one small part (most bodies of a package index): one object read, one
 * decompression in a single call and the SHA-256 check, pushed as one chunk. The general path
 * costs two async-iterator streams and a zstd stream with a 1 MiB buffer per body, which
 * dominated a playback of thousands of small files (BENCHMARKS.md, small files).
 * @param cached read from first (a small body's segment record is no directory entry that `has` finds)
 * @param fill filled with the body read from git
 */
function smallWholeBody(git: Git, loc: BodyLocation, cached?: BodyCache, fill?: BodyCache): Readable {
  let started = false;
  return new Readable({
    read() {
      if (started) return;
      started = true;
      (async () => (await cached?.readSmall(loc)) ?? (await loadSmallBody(git, loc, fill)))().then(
        (body) => {
          this.push(body);
          this.push(null);
        },
        (e: unknown) => this.destroy(partError(loc, 0, e)),
      );
    },
  });
}

/** @param cache filled with the body once it checks out, in the background. */
async function loadSmallBody(git: Git, loc: BodyLocation, cache?: BodyCache): Promise<Buffer> {
  const part = loc.parts[0];
  const stored = await git.readObject(part.oid);
  if (!stored) throw new BtrflyError('BODY_MISSING', `object ${part.oid} is missing`);
  const body = part.zstd ? zstdDecompressSync(stored, { maxOutputLength: loc.size + 1 }) : stored;
  if (body.length !== loc.size) throw corrupt(loc, `part 0 holds ${body.length} bytes, not ${loc.size}`);
  const actual = createHash('sha256').update(body).digest('hex');
  if (actual !== loc.sha256) throw corrupt(loc, `reads back with SHA-256 ${actual}`);
  if (cache) void cache.put(loc.sha256, body);
  return body;
}

/** A small blob from the shared batch reader, as a one-chunk stream. */
function smallBlob(git: Git, oid: string): Readable {
  return Readable.from(
    (async function* () {
      const buf = await git.readObject(oid);
      if (!buf) throw new BtrflyError('BODY_MISSING', `object ${oid} is missing`);
      yield buf;
    })(),
    { objectMode: false },
  );
}

function corrupt(loc: BodyLocation, what: string): BtrflyError {
  return new BtrflyError(
    'BODY_CORRUPT',
    `body ${loc.sha256} is corrupt: it ${what}`,
    { data: { sha256: loc.sha256 }, advice: repairAdvice() },
  );
}

function partError(loc: BodyLocation, index: number, e: unknown): BtrflyError {
  if (isBtrflyError(e) && e.code === 'BODY_CORRUPT') return e;
  const oid = loc.parts[index].oid;
  // git read the object, and its bytes are not the ones its id names (src/format/git.ts).
  if (isBtrflyError(e) && e.code === 'GIT' && e.data?.oid === oid) return corrupt(loc, `has part ${index} (object ${oid}) whose bytes do not hash to its id`);
  if (isBtrflyError(e) && (e.code === 'GIT' || e.code === 'BODY_MISSING')) {
    return new BtrflyError(
      'BODY_MISSING',
      // git fails alike on an object that is absent and on one whose pack is damaged (a bad CRC): only a null read is surely missing.
      `body ${loc.sha256} part ${index} (object ${oid}) ${e.code === 'GIT' ? 'cannot be read from the archive (missing or damaged)' : 'is missing from the archive'}`,
      { cause: e, data: { sha256: loc.sha256, part: index, oid }, advice: repairAdvice() },
    );
  }
  // zstd that does not decode is damage too, not a missing object.
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && code.startsWith('ZSTD_')) return corrupt(loc, `has part ${index} that does not decompress (${code})`);
  return isBtrflyError(e) ? e : new BtrflyError('STORAGE', `reading body ${loc.sha256} part ${index} failed: ${(e as Error).message}`, { cause: e });
}
