/**
 * Writes one body into the archive as it arrives: SHA-256 over every byte, cut into parts of
 * exactly PART_SIZE raw bytes, each part kept zstd when that saves space and raw otherwise
 * (docs/archive-format.md). Memory stays flat: every byte goes straight to two temp files on the
 * archive's disk, with backpressure, and git reads the chosen file from there.
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createZstdCompress, zstdCompressSync, type ZstdCompress } from 'node:zlib';
import { BtrflyError } from '../errors';
import { pauseAt } from '../test-pause';
import type { CacheStage } from './body-cache';
import type { BodyChecks, PartTagger } from './body-checks';
import { isSmallBody, type Git, type TreeEntry } from './git';
import { ownedTempName } from './lifecycle';
import { StoringBodyWriter } from './storing-body-writer';
import { PART_SIZE, partName, type BodyWriter, type StoredBody } from './types';

/** zstd level 3: zstd's own default, ~450 MiB/s on random input and a good ratio on text. */
export const ZSTD_LEVEL = 3;

/** The zstd parameters of every stored part, streamed or compressed in one call. */
const ZSTD_PARAMS = { params: { [zc.ZSTD_c_compressionLevel]: ZSTD_LEVEL } };

/**
 * zstd of bytes held whole in memory, told their size: zstd then sizes its window and tables to
 * the input instead of level 3's 2 MiB window, which made each call on a small body cost 0.2 ms
 * (random) to 0.5 ms (JSON), most of it setting up the context (docs/decisions.md, "Small-file record").
 */
function zstdWhole(bytes: Buffer): Buffer {
  return zstdCompressSync(bytes, { ...ZSTD_PARAMS, pledgedSrcSize: bytes.length });
}

/** A part is stored zstd only when that saves at least 5%; below that, decompression is not worth it. */
export const ZSTD_KEEP_RATIO = 0.95;

const IO_CHUNK = 1024 * 1024;
/**
 * Each part starts with a probe: its first PROBE_SIZE bytes are compressed alone, and a part
 * whose probe does not save ZSTD_KEEP_RATIO is written raw without running zstd over it at all.
 * Measured on 1 GiB of random bytes: 7% less wall time and 13% less CPU than compressing every
 * part whole (docs/decisions.md, "Archive storage"); git's own hashing is the rest.
 */
export const PROBE_SIZE = 256 * 1024;

/** The probe of a part held whole in memory (a small body): its first bytes, compressed alone. */
const SMALL_PROBE_SIZE = 4 * 1024;

/**
 * Order-0 entropy (bits a byte) at or above which a {@link SMALL_PROBE_SIZE} probe is taken for
 * random bytes (encrypted or already compressed) without running zstd over it. 100,000 random
 * probes measured 7.932–7.970; of 20,000 probes whose second 2 KiB repeat their first (7.872–7.935)
 * 0.2 % reach it and are kept raw, the rest go to zstd as before.
 */
const RANDOM_ENTROPY = 7.93;

/**
 * At or below this, zstd's Huffman coding of the literals alone saves over 12 %: the body is
 * compressed whole without compressing its probe first (text, JSON, HTML measure 4.5–6).
 */
const TEXT_ENTROPY = 7;

const byteCounts = new Uint32Array(256);
/** n·log2(n) for every count a probe can hold. */
const NLOGN = Float64Array.from({ length: SMALL_PROBE_SIZE + 1 }, (_, n) => (n === 0 ? 0 : n * Math.log2(n)));

/** The order-0 entropy of up to {@link SMALL_PROBE_SIZE} bytes, in bits a byte (0 to 8): ~10 µs for 4 KiB. */
export function byteEntropy(bytes: Buffer): number {
  if (bytes.length === 0 || bytes.length > SMALL_PROBE_SIZE) throw new RangeError(`byteEntropy takes 1 to ${SMALL_PROBE_SIZE} bytes`);
  byteCounts.fill(0);
  for (let i = 0; i < bytes.length; i++) byteCounts[bytes[i]]++;
  let sum = 0;
  for (let i = 0; i < 256; i++) sum += NLOGN[byteCounts[i]];
  return Math.log2(bytes.length) - sum / bytes.length;
}

/**
 * Whether a body held whole is worth compressing, from its first 4 KiB: their byte counts
 * answer for random bytes (no) and text (yes), ~10 µs; zstd over them answers the rest, ~40 µs
 * and more (docs/decisions.md, "Small-file record"). A random-looking probe with a few short
 * repeats that zstd would have shrunk by just over 5 % is kept raw: it costs space, never
 * correctness (the stored bytes are the body's either way).
 */
function probeSaysWorth(probe: Buffer): boolean {
  const entropy = byteEntropy(probe);
  if (entropy >= RANDOM_ENTROPY) return false;
  return entropy <= TEXT_ENTROPY || keepsZstd(zstdWhole(probe).length, probe.length);
}

/** Whether `zstdSize` stored bytes save enough over `rawSize` raw ones to be kept zstd. */
export function keepsZstd(zstdSize: number, rawSize: number): boolean {
  return zstdSize < rawSize * ZSTD_KEEP_RATIO;
}

/**
 * The choice for bytes held whole in memory (a small body, or the tail of a large one): zstd
 * when that saves enough, with the bytes to store. Its first 4 KiB say whether zstd is worth
 * running over it all: an archive (a .tgz, a wheel) does not shrink, and compressing it whole
 * only to throw the result away was 0.3 ms a file. Git mode stores parts with it, LFS mode bodies.
 */
export function packWhole(head: Buffer): { zstd: boolean; bytes: Buffer } {
  const worth = head.length > SMALL_PROBE_SIZE ? probeSaysWorth(head.subarray(0, SMALL_PROBE_SIZE)) : head.length > 0;
  const packed = worth ? zstdWhole(head) : head;
  const zstd = worth && keepsZstd(packed.length, head.length);
  return { zstd, bytes: zstd ? packed : head };
}

/**
 * Whether a streamed part (or LFS body) is worth compressing, from its first {@link PROBE_SIZE}
 * bytes compressed alone; one that says no is stored raw without zstd running over the rest.
 */
export function probeSaysZstd(head: Buffer): boolean {
  return keepsZstd(zstdWhole(head).length, head.length);
}

/** The streaming compressor of a part (or LFS body) that {@link probeSaysZstd} found worth compressing. */
export function createStoreCompressor(): ZstdCompress {
  return createZstdCompress({ chunkSize: IO_CHUNK, ...ZSTD_PARAMS });
}

/**
 * How many full parts may wait for git at once (2 GiB of temp files). git's SHA-1 is the
 * slowest step of a record (~160 MiB/s); with this much room a download of up to this size
 * reaches the client at the pace of the network and the disk, and git catches up behind it
 * (the recording is sealed only once every part is in git). Beyond it, the writer slows its
 * source to git's pace, as the style asks: on disk, never in memory.
 */
const MAX_PARTS_WAITING = 256;

interface OpenPart {
  index: number;
  written: number;
  rawPath: string;
  /** Opened when the probe decides: a part that ends within its probe is written in one call, without streams. */
  raw?: WriteStream;
  /** The first bytes, held until the probe decides (at most PROBE_SIZE). */
  probe?: Buffer[];
  /** Set when the probe found the part worth compressing. */
  zst?: ZstdSink;
}

interface ZstdSink {
  path: string;
  file: WriteStream;
  compressor: ZstdCompress;
  compressed: Promise<void>;
}

interface DonePart {
  oid: string;
  zstd: boolean;
  storedSize: number;
}

/**
 * Creates a writer for one body. Write the bytes, call `end()`, then await `done` for the
 * {@link StoredBody}. Destroying the writer or aborting `signal` removes its temp files;
 * parts already stored stay as unreferenced loose objects, which git tolerates and `gc` removes.
 * @param tmpDir a directory on the archive's file system (`<archive>/btrfly/tmp`).
 * @param opts.cache where the body's raw part files go once git has them (the body cache),
 * instead of being deleted
 */
export function createBodyWriter(git: Git, tmpDir: string, opts: { signal?: AbortSignal; cache?: CacheStage; checks?: BodyChecks } = {}): BodyWriter {
  return new GitBodyWriter(git, tmpDir, opts.signal, opts.cache, opts.checks);
}

class GitBodyWriter extends StoringBodyWriter {
  private readonly hash = createHash('sha256');
  /**
   * Per-part tags of the same bytes the SHA-256 covers (src/format/body-checks.ts). Made when
   * the first part outgrows its probe: a body held whole is small (isSmallBody) and gets no
   * checks file, and a GMAC context and nonce per small file recorded showed in the profile.
   */
  private tagger?: PartTagger;
  /** Names the temp files; carries the pid so `gc` can reclaim those of a process that died. */
  private readonly id = ownedTempName(process.pid, randomUUID());
  private size = 0;
  private nextIndex = 0;
  private current?: OpenPart;
  // Full parts go to git one after another, behind the writer (MAX_PARTS_WAITING).
  private storing: Promise<void> = Promise.resolve();
  private readonly queued: Array<Promise<void>> = [];
  private storeFailed?: Error;
  private cacheFailed = false;
  private readonly parts: DonePart[] = [];
  private readonly tempFiles = new Set<string>();
  /** A body of one small part: its tree, written with its blob, and its raw bytes for the cache (storeSmallBody). */
  private small?: { tree: string; raw: Buffer };

  constructor(
    private readonly git: Git,
    private readonly tmpDir: string,
    signal?: AbortSignal,
    private readonly cache?: CacheStage,
    private readonly checks?: BodyChecks,
  ) {
    super(IO_CHUNK, signal);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (e?: Error | null) => void): void {
    (async () => {
      for (const { chunk } of chunks) await this.writeChunk(chunk);
    })().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    const part = this.current;
    this.current = undefined;
    if (part) {
      part.raw?.destroy();
      part.zst?.compressor.destroy();
      part.zst?.file.destroy();
    }
    // A writer that stored its body is destroyed too (autoDestroy): nothing of it is left to
    // remove, and an `rm -r` of its moved stage per small file recorded showed in the profile.
    if (!this.failed(err)) return cb(null);
    // Files are removed once any in-flight store has let go of them.
    const removeTemps = async (): Promise<void> => {
      await this.storing.catch(() => undefined);
      await Promise.all([...this.tempFiles].map((f) => unlink(f).catch(() => undefined)));
      await this.cache?.discard().catch(() => undefined);
    };
    removeTemps().then(() => cb(err), () => cb(err));
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    this.hash.update(chunk);
    this.size += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.current && this.current.written === PART_SIZE) await this.rotate();
      const part = this.current ?? (this.current = this.openPart());
      const n = Math.min(chunk.length - offset, PART_SIZE - part.written);
      const slice = offset === 0 && n === chunk.length ? chunk : chunk.subarray(offset, offset + n);
      part.written += n;
      offset += n;
      // The first part's probe is tagged once it decides (or never, for a body held whole).
      if (!part.probe || part.index > 0) this.tagger?.update(slice);
      if (part.probe) {
        part.probe.push(slice);
        if (part.written >= PROBE_SIZE || part.written === PART_SIZE) await this.decide(part);
      } else {
        await this.writeOut(part, slice);
      }
    }
  }

  /** Compresses the probe alone; a part that does not get smaller is written raw from here on. */
  private async decide(part: OpenPart): Promise<void> {
    const head = Buffer.concat(part.probe!);
    part.probe = undefined;
    if (part.index === 0 && this.checks) {
      this.tagger = this.checks.tagger();
      this.tagger.update(head);
    }
    part.raw = createWriteStream(part.rawPath, { highWaterMark: IO_CHUNK });
    if (probeSaysZstd(head)) part.zst = this.openZstd(part);
    await this.writeOut(part, head);
  }

  /**
   * A part that ended within its probe (a small body, or the tail of a large one): compressed
   * once, in one call, and written in one call. Streaming it as a large part is (a zstd
   * stream with its 1 MiB output buffer and its native context, two write streams, the bytes
   * compressed twice) cost the small-file record most of its memory and time
   * (docs/notes/small-files.md).
   */
  private async storeSmallPart(part: OpenPart): Promise<void> {
    const head = Buffer.concat(part.probe!);
    part.probe = undefined;
    const { zstd, bytes } = packWhole(head);
    if (part.index === 0) return this.storeSmallBody(part, head, bytes, zstd);
    await writeFile(part.rawPath, bytes);
    // The raw bytes go to the cache stage while git reads the zstd file: one step less between
    // an answered small file and its journal line.
    const cached = zstd ? this.toCache((c) => c.addBytes(part.index, head)) : undefined;
    const oid = await this.git.hashFile(part.rawPath).finally(() => cached);
    this.parts[part.index] = { oid, zstd, storedSize: bytes.length };
    await this.release(part.rawPath, !zstd ? part.index : undefined);
  }

  /**
   * A body of one small part: its bytes go to git's pack writer from memory (no temp file, no
   * `hash-object`, no `mktree`), and its raw bytes to the cache stage meanwhile.
   */
  private async storeSmallBody(part: OpenPart, raw: Buffer, bytes: Buffer, zstd: boolean): Promise<void> {
    this.tempFiles.delete(part.rawPath);
    const { oid, treeOid } = await this.git.storeSmallBody(bytes, partName(0, zstd));
    this.parts[0] = { oid, zstd, storedSize: bytes.length };
    this.small = { tree: treeOid, raw };
  }

  /** The cache entry of a body of one small part, made at once (best-effort, as {@link toCache}). */
  private cacheSmall(sha256: string, raw: Buffer): void {
    if (!this.cache || this.cacheFailed) return;
    try {
      this.cache.putSmallSync(sha256, raw);
    } catch {
      this.cacheFailed = true;
    }
  }

  /** A temp file git has read: into the cache stage as part `cacheIndex` when given, else deleted. */
  private async release(path: string, cacheIndex?: number): Promise<void> {
    const cached = cacheIndex !== undefined && (await this.toCache((c) => c.addFile(cacheIndex, path)));
    if (!cached) await unlink(path);
    this.tempFiles.delete(path);
  }

  /**
   * One step of the body's cache entry, best-effort: the body is in git either way, so a failure
   * (a full disk, the stage removed by `gc` under a very slow recording) drops the entry, not
   * the recording. Returns whether the step was done.
   */
  private async toCache(step: (c: CacheStage) => Promise<void>): Promise<boolean> {
    if (!this.cache || this.cacheFailed) return false;
    try {
      await step(this.cache);
      return true;
    } catch {
      this.cacheFailed = true;
      return false;
    }
  }

  /** Writes to the raw file and the compressor, waiting for both so a slow disk slows the writer instead of filling memory. */
  private async writeOut(part: OpenPart, bytes: Buffer): Promise<void> {
    const raw = part.raw!;
    const rawOk = raw.write(bytes);
    const zstOk = part.zst ? part.zst.compressor.write(bytes) : true;
    await Promise.all([rawOk || once(raw, 'drain'), zstOk || once(part.zst!.compressor, 'drain')]);
  }

  private openPart(): OpenPart {
    const index = this.nextIndex++;
    const rawPath = join(this.tmpDir, `${this.id}-${index}.raw`);
    this.tempFiles.add(rawPath);
    return { index, written: 0, rawPath, probe: [] };
  }

  private openZstd(part: OpenPart): ZstdSink {
    const path = join(this.tmpDir, `${this.id}-${part.index}.zst`);
    this.tempFiles.add(path);
    const file = createWriteStream(path, { highWaterMark: IO_CHUNK });
    const compressor = createStoreCompressor();
    const compressed = pipeline(compressor, file);
    compressed.catch(() => undefined);
    return { path, file, compressor, compressed };
  }

  /**
   * Queues the full part for git and lets the next one start filling; waits only when
   * MAX_PARTS_WAITING parts are queued (parts are stored in order, so once the oldest of the
   * window is stored, every earlier one is too).
   */
  private async rotate(): Promise<void> {
    // Thrown while the part is still `current`, so destroying the writer closes its files.
    if (this.storeFailed) throw this.storeFailed;
    const full = this.current!;
    this.current = undefined;
    // The part's files are closed now (a queued part holds no stream, buffer or zstd context),
    // and only the git step waits in the queue.
    const closed = full.probe ? undefined : await this.closePart(full);
    this.storing = this.storing.then(() => {
      // A part queued before the writer was destroyed is not stored.
      if (this.destroyed) throw new BtrflyError('STORAGE', 'body write was cancelled before it ended');
      return closed ? this.storePart(full, closed) : this.storeSmallPart(full);
    });
    // A failure stops the writer at its next part (not 2 GiB later) and is reported by whoever
    // awaits `storing`; it must not go unhandled meanwhile.
    this.storing.catch((e: Error) => (this.storeFailed ??= e));
    this.queued.push(this.storing);
    if (this.queued.length > MAX_PARTS_WAITING) await this.queued.shift();
  }

  /** Ends a streamed part's files and decides which one git stores. */
  private async closePart(part: OpenPart): Promise<{ zstd: boolean; storedSize: number }> {
    const raw = part.raw!;
    raw.end();
    part.zst?.compressor.end();
    await Promise.all([once(raw, 'finish'), part.zst?.compressed]);
    if (!raw.closed) await once(raw, 'close');
    const zstd = part.zst !== undefined && keepsZstd(part.zst.file.bytesWritten, part.written);
    return { zstd, storedSize: zstd ? part.zst!.file.bytesWritten : part.written };
  }

  private async storePart(part: OpenPart, { zstd, storedSize }: { zstd: boolean; storedSize: number }): Promise<void> {
    const oid = await this.git.hashFile(zstd ? part.zst!.path : part.rawPath);
    this.parts[part.index] = { oid, zstd, storedSize };
    await this.release(part.rawPath, part.index);
    if (part.zst) await this.release(part.zst.path);
    if (part.index === 0) await pauseAt('body-part');
  }

  protected async finish(): Promise<StoredBody> {
    // An empty body is one part of zero bytes, so every body has a tree and a first part.
    if (this.nextIndex === 0) this.current = this.openPart();
    if (this.current) await this.rotate();
    await this.storing;
    this.queued.length = 0;
    const entries: TreeEntry[] = this.parts.map((p, i) => ({ mode: '100644', type: 'blob', oid: p.oid, name: partName(i, p.zstd) }));
    const zstdCount = this.parts.filter((p) => p.zstd).length;
    const storage = zstdCount === this.parts.length ? 'zstd' : zstdCount === 0 ? 'raw' : 'mixed';
    const sha256 = this.hash.digest('hex');
    this.location = { sha256, size: this.size, parts: this.parts.map((p) => ({ oid: p.oid, storedSize: p.storedSize, zstd: p.zstd })) };
    // The tree, the checks and the cache entry need only the parts and the digest: made at once.
    const sidecars = async (): Promise<void> => {
      // A body of one small part is read whole and checked by its SHA-256 (isSmallBody):
      // its checks file would be one more mkdir, write and rename per small file recorded, and a
      // range read of it makes one on first use.
      if (this.tagger && !isSmallBody({ size: this.size, parts: this.parts })) await this.checks!.write(sha256, this.size, this.tagger);
      if (!(await this.toCache((c) => c.commit(sha256)))) await this.cache?.discard().catch(() => undefined);
    };
    if (this.small) {
      this.cacheSmall(sha256, this.small.raw);
      return { sha256, size: this.size, treeOid: this.small.tree, storage, parts: 1 };
    }
    const [treeOid] = await Promise.all([this.git.mktree(entries), sidecars()]);
    return { sha256, size: this.size, treeOid, storage, parts: this.parts.length };
  }
}
