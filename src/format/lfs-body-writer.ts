/**
 * Writes one body in LFS mode (src/format/lfs-store.ts): every byte goes once to a temp file in
 * git-lfs's store while SHA-256 runs over it, and the file is renamed into place as the object
 * named by that digest; git gets only the pointer file (~130 bytes) and a one-entry tree.
 * A body whose first bytes compress (git mode's probe, body-writer.ts) is also compressed into
 * a second temp file, and kept zstd when that saves what git mode asks of a part: the object is
 * then the zstd bytes, named by their own SHA-256 (the LFS oid), and the pointer's name carries
 * that oid (`lfs-<oid>.zst`). See docs/decisions.md, "Git LFS mode".
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ZstdCompress } from 'node:zlib';
import type { BodyChecks, PartTagger } from './body-checks';
import { createStoreCompressor, keepsZstd, packWhole, PROBE_SIZE, probeSaysZstd } from './body-writer';
import { isSmallBody, type Git } from './git';
import { LFS_POINTER_NAME, lfsPointer, lfsZstdPointerName, type LfsStore } from './lfs-store';
import { ownedTempName } from './lifecycle';
import { StoringBodyWriter } from './storing-body-writer';
import { EMPTY_SHA256, type BodyWriter, type StoredBody } from './types';

const IO_CHUNK = 1024 * 1024;

/**
 * What the temp file may hold unwritten: a few chunks, so the SHA-256 of the next chunk runs on
 * the main thread while the last one is written on the thread pool, rather than one after the
 * other (1 MiB, one chunk, made every write wait for the one before). Measured on a loaded
 * machine, 1 GiB, alternating: 4 or 8 MiB faster in 6 of 8 pairs, medians within the noise.
 */
const FILE_BUFFER = 4 * IO_CHUNK;

/** The empty body's one part, as git mode names part 0 of a raw body (body-writer.ts). */
const EMPTY_PART_NAME = '00000000';

/**
 * A writer for one body of an LFS archive; the same contract as the git writer
 * ({@link BodyWriter}): write, `end()`, await `done`.
 * @param tmpDir `<archive>/btrfly/tmp`, for the pointer file git reads
 */
export function createLfsBodyWriter(git: Git, store: LfsStore, tmpDir: string, opts: { signal?: AbortSignal; checks?: BodyChecks } = {}): BodyWriter {
  return new LfsBodyWriter(git, store, tmpDir, opts.signal, opts.checks);
}

interface ZstdObject {
  temp: string;
  file: WriteStream;
  compressor: ZstdCompress;
  /** SHA-256 of the compressed bytes: the LFS oid of a body kept zstd. */
  hash: Hash;
  compressed: Promise<void>;
}

class LfsBodyWriter extends StoringBodyWriter {
  private readonly hash = createHash('sha256');
  private readonly tagger?: PartTagger;
  private readonly temp: string;
  private file?: WriteStream;
  private size = 0;
  /** The first bytes, held until the probe decides (at most PROBE_SIZE). */
  private probe?: Buffer[] = [];
  /** Set when the probe found the body worth compressing. */
  private zst?: ZstdObject;

  constructor(
    private readonly git: Git,
    private readonly store: LfsStore,
    private readonly tmpDir: string,
    signal?: AbortSignal,
    private readonly checks?: BodyChecks,
  ) {
    super(IO_CHUNK, signal);
    this.tagger = checks?.tagger();
    this.temp = store.tempPath();
  }

  override _construct(cb: (e?: Error | null) => void): void {
    this.store.ready().then(() => {
      this.file = createWriteStream(this.temp, { highWaterMark: FILE_BUFFER });
      this.file.once('open', () => cb());
      this.file.once('error', (e) => cb(e));
    }, cb);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.take(chunk);
    this.whenDrained(cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (e?: Error | null) => void): void {
    for (const { chunk } of chunks) this.take(chunk);
    this.whenDrained(cb);
  }

  /** Hashes a chunk and passes it on to the temp file (and the compressor, once the probe said so). */
  private take(chunk: Buffer): void {
    this.hash.update(chunk);
    this.tagger?.update(chunk);
    this.size += chunk.length;
    if (!this.probe) return this.out(chunk);
    this.probe.push(chunk);
    if (this.size < PROBE_SIZE) return;
    const head = Buffer.concat(this.probe);
    this.probe = undefined;
    if (probeSaysZstd(head)) this.zst = this.openZstd();
    this.out(head);
  }

  private out(bytes: Buffer): void {
    this.file!.write(bytes);
    this.zst?.compressor.write(bytes);
  }

  /**
   * Calls `cb` once the temp file and the compressor have room again, so a slow disk slows the
   * writer instead of filling memory; at once when they have (most chunks: no promise made for
   * each of a recording's 16–64 KiB socket reads).
   */
  private whenDrained(cb: (e?: Error | null) => void): void {
    const file = this.file!;
    const compressor = this.zst?.compressor;
    if (!file.writableNeedDrain && !compressor?.writableNeedDrain) return cb();
    Promise.all([file.writableNeedDrain && waitDrain(file), compressor?.writableNeedDrain && once(compressor, 'drain')]).then(() => cb(), cb);
  }

  private openZstd(): ZstdObject {
    const temp = this.store.tempPath();
    const file = createWriteStream(temp, { highWaterMark: FILE_BUFFER });
    const compressor = createStoreCompressor();
    const hash = createHash('sha256');
    compressor.on('data', (c: Buffer) => hash.update(c));
    const compressed = pipeline(compressor, file);
    compressed.catch(() => undefined);
    return { temp, file, compressor, hash, compressed };
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.failed(err)) return cb(null);
    this.file?.destroy();
    this.zst?.compressor.destroy();
    this.zst?.file.destroy();
    const temps = [this.temp, ...(this.zst ? [this.zst.temp] : [])];
    Promise.all(temps.map((t) => rm(t, { force: true }))).then(() => cb(err), () => cb(err));
  }

  /**
   * Closes the temp files and puts the stored one in place: the zstd bytes when they save
   * enough ({@link keepsZstd}), else the raw ones. Returns the LFS oid and size of the object.
   */
  private async putObject(sha256: string): Promise<{ oid: string; storedSize: number; zstd: boolean }> {
    const file = this.file!;
    if (this.probe) {
      // A body that ended within its probe: decided and compressed whole, as git mode does a small part.
      const head = Buffer.concat(this.probe);
      this.probe = undefined;
      const { zstd, bytes } = packWhole(head);
      if (zstd) {
        file.destroy();
        await rm(this.temp, { force: true });
        const oid = createHash('sha256').update(bytes).digest('hex');
        const temp = this.store.tempPath();
        await writeFile(temp, bytes);
        await this.store.commit(temp, oid);
        return { oid, storedSize: bytes.length, zstd: true };
      }
      file.write(head);
    }
    file.end();
    this.zst?.compressor.end();
    await this.zst?.compressed;
    if (!file.closed) await once(file, 'close');
    const zst = this.zst;
    if (zst && keepsZstd(zst.file.bytesWritten, this.size)) {
      const oid = zst.hash.digest('hex');
      await rm(this.temp, { force: true });
      await this.store.commit(zst.temp, oid);
      return { oid, storedSize: zst.file.bytesWritten, zstd: true };
    }
    if (zst) await rm(zst.temp, { force: true });
    await this.store.commit(this.temp, sha256);
    return { oid: sha256, storedSize: this.size, zstd: false };
  }

  protected async finish(): Promise<StoredBody> {
    const sha256 = this.hash.digest('hex');
    // An empty body stays a git blob, as in git mode: an empty file is its own LFS pointer.
    if (sha256 === EMPTY_SHA256) {
      this.file!.destroy();
      await rm(this.temp, { force: true });
      const oid = await this.git.hashBytes('');
      this.location = { sha256, size: 0, parts: [{ oid, storedSize: 0, zstd: false }] };
      const treeOid = await this.git.mktree([{ mode: '100644', type: 'blob', oid, name: EMPTY_PART_NAME }]);
      return { sha256, size: 0, treeOid, storage: 'raw', parts: 1 };
    }
    const object = await this.putObject(sha256);
    const pointerPath = join(this.tmpDir, ownedTempName(process.pid, `${randomUUID()}.lfs`));
    await writeFile(pointerPath, lfsPointer(object.oid, object.storedSize));
    const oid = await this.git.hashFile(pointerPath).finally(() => rm(pointerPath, { force: true }));
    this.location = { sha256, size: this.size, parts: [{ oid, storedSize: this.size, zstd: object.zstd }], lfs: true, ...(object.zstd ? { lfsOid: object.oid } : {}) };
    const sidecars = async (): Promise<void> => {
      if (this.tagger && !isSmallBody(this.location!)) await this.checks!.write(sha256, this.size, this.tagger);
    };
    const name = object.zstd ? lfsZstdPointerName(object.oid) : LFS_POINTER_NAME;
    const [treeOid] = await Promise.all([this.git.mktree([{ mode: '100644', type: 'blob', oid, name }]), sidecars()]);
    return { sha256, size: this.size, treeOid, storage: 'lfs', parts: 1 };
  }
}

function waitDrain(file: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (e?: Error): void => {
      file.off('drain', done);
      file.off('error', done);
      if (e) reject(e);
      else resolve();
    };
    file.once('drain', done);
    file.once('error', done);
  });
}
