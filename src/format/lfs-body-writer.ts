/**
 * Writes one body in LFS mode (src/format/lfs-store.ts): every byte goes once to a temp file in
 * git-lfs's store while SHA-256 runs over it, and the file is renamed into place as the object
 * named by that digest; git gets only the pointer file (~130 bytes) and a one-entry tree. No
 * zstd, no parts, no second copy: see docs/decisions.md, "Git LFS mode".
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BodyChecks, PartTagger } from './body-checks';
import { isSmallBody, type Git } from './git';
import { EMPTY_SHA256, LFS_POINTER_NAME, lfsPointer, type LfsStore } from './lfs-store';
import { ownedTempName } from './lifecycle';
import { StoringBodyWriter } from './storing-body-writer';
import type { BodyWriter, StoredBody } from './types';

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

class LfsBodyWriter extends StoringBodyWriter {
  private readonly hash = createHash('sha256');
  private readonly tagger?: PartTagger;
  private readonly temp: string;
  private file?: WriteStream;
  private size = 0;

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
    this.hash.update(chunk);
    this.tagger?.update(chunk);
    this.size += chunk.length;
    if (this.file!.write(chunk)) cb();
    else waitDrain(this.file!).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (e?: Error | null) => void): void {
    let ok = true;
    for (const { chunk } of chunks) {
      this.hash.update(chunk);
      this.tagger?.update(chunk);
      this.size += chunk.length;
      ok = this.file!.write(chunk);
    }
    if (ok) cb();
    else waitDrain(this.file!).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.failed(err)) return cb(null);
    this.file?.destroy();
    rm(this.temp, { force: true }).then(() => cb(err), () => cb(err));
  }

  protected async finish(): Promise<StoredBody> {
    const file = this.file!;
    file.end();
    if (!file.closed) await once(file, 'close');
    const sha256 = this.hash.digest('hex');
    // An empty body stays a git blob, as in git mode: an empty file is its own LFS pointer.
    if (sha256 === EMPTY_SHA256) {
      await rm(this.temp, { force: true });
      const oid = await this.git.hashBytes('');
      this.location = { sha256, size: 0, parts: [{ oid, storedSize: 0, zstd: false }] };
      const treeOid = await this.git.mktree([{ mode: '100644', type: 'blob', oid, name: EMPTY_PART_NAME }]);
      return { sha256, size: 0, treeOid, storage: 'raw', parts: 1 };
    }
    await this.store.commit(this.temp, sha256);
    const pointerPath = join(this.tmpDir, ownedTempName(process.pid, `${randomUUID()}.lfs`));
    await writeFile(pointerPath, lfsPointer(sha256, this.size));
    const oid = await this.git.hashFile(pointerPath).finally(() => rm(pointerPath, { force: true }));
    this.location = { sha256, size: this.size, parts: [{ oid, storedSize: this.size, zstd: false }], lfs: true };
    const sidecars = async (): Promise<void> => {
      if (this.tagger && !isSmallBody(this.location!)) await this.checks!.write(sha256, this.size, this.tagger);
    };
    const [treeOid] = await Promise.all([this.git.mktree([{ mode: '100644', type: 'blob', oid, name: LFS_POINTER_NAME }]), sidecars()]);
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
