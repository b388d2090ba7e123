/**
 * Reads a body kept as a Git LFS object (src/format/lfs-store.ts) straight from its file in the
 * LFS store: the file is the body, so a range is a seek. Integrity is kept as in git mode
 * (docs/decisions.md, "Integrity of played-back bodies"): a playback checks every 1 MiB part
 * against its tag before sending it (the tags are made by the writer, or from the first read
 * that verified the SHA-256), and a whole read that verifies (`verify`, `pull`) hashes every
 * byte. An object that fails is moved out of the store into `btrfly/damaged/` (kept as evidence),
 * so nothing serves it and the next pull or `verify --repair` fetches it again.
 * A body kept zstd (its object named by the zstd bytes' own oid) is decompressed on the way, from
 * the object's start for a range too, and checked on its raw bytes in the same way.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { addAbortSignal, Readable } from 'node:stream';
import { createZstdDecompress, zstdDecompressSync } from 'node:zlib';
import { BtrflyError } from '../errors';
import { CHECK_PART, type BodyChecks } from './body-checks';
import { isSmallBody } from './git';
import { lfsObjectOid, type LfsStore } from './lfs-store';
import { repairAdvice, type BodyLocation, type ByteRange } from './types';

const IO_CHUNK = 1024 * 1024;

/**
 * Opens an LFS body, or an inclusive range of it.
 * @param opts.verify hash every byte of a whole read (`verify`, `pull`) instead of trusting the per-part checks
 * @param opts.checks per-part checks; without them (and without `verify`) bytes are sent as read
 */
export function openLfsBody(store: LfsStore, loc: BodyLocation, range?: ByteRange, opts: { signal?: AbortSignal; checks?: BodyChecks; verify?: boolean } = {}): Readable {
  const start = range?.start ?? 0;
  const end = range?.end ?? loc.size - 1;
  if (start < 0 || end >= loc.size || start > end) {
    throw new BtrflyError('STORAGE', `byte range ${start}-${end} is outside body ${loc.sha256} of ${loc.size} bytes: ask for a range within the body`);
  }
  const whole = start === 0 && end === loc.size - 1;
  let gen: AsyncGenerator<Buffer>;
  if (whole && (opts.verify || isSmallBody(loc) || !opts.checks)) gen = verifiedWhole(store, loc, opts.checks);
  else gen = checkedRange(store, loc, start, end, opts.checks);
  const out = Readable.from(gen, { objectMode: false, highWaterMark: IO_CHUNK });
  return opts.signal ? addAbortSignal(opts.signal, out) : out;
}

/** What a body whose object path holds a directory is said to be: damaged, and set aside as such. */
const IS_A_DIRECTORY = 'is a directory where its object file should be';

/** A whole small LFS body in one buffer, SHA-256 checked (the reader's fast path for small files). */
export async function readSmallLfsBody(store: LfsStore, loc: BodyLocation): Promise<Buffer> {
  let body: Buffer;
  try {
    body = readFileSync(store.path(lfsObjectOid(loc)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw await corrupt(store, loc, IS_A_DIRECTORY);
    throw missing(loc);
  }
  if (loc.lfsOid) {
    try {
      // One byte more than the body may hold: a longer one is not the body its name says.
      body = zstdDecompressSync(body, { maxOutputLength: loc.size + 1 });
    } catch (e) {
      throw await corrupt(store, loc, `does not decompress: ${(e as Error).message}`);
    }
  }
  const actual = createHash('sha256').update(body).digest('hex');
  if (body.length !== loc.size || actual !== loc.sha256) {
    throw await corrupt(store, loc, body.length !== loc.size ? `holds ${body.length} bytes, not ${loc.size}` : `reads back with SHA-256 ${actual}`);
  }
  return body;
}

/**
 * Every byte hashed; the last chunk is held back until the digest matches, so a damaged object
 * never completes a response. With `checks`, the body's per-part tags are made on the way.
 */
async function* verifiedWhole(store: LfsStore, loc: BodyLocation, checks?: BodyChecks): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  const tagger = checks && !isSmallBody(loc) ? checks.tagger() : undefined;
  let held: Buffer | undefined;
  let size = 0;
  // One byte past the end too: an object with bytes appended is not the object its name says.
  for await (const chunk of open(store, loc, 0, loc.size)) {
    hash.update(chunk);
    tagger?.update(chunk);
    size += chunk.length;
    if (size > loc.size) break;
    if (held) yield held;
    held = chunk;
  }
  const actual = hash.digest('hex');
  if (size !== loc.size || actual !== loc.sha256) {
    throw await corrupt(store, loc, size !== loc.size ? `holds ${size > loc.size ? `more than ${loc.size} bytes` : `${size} bytes, not ${loc.size}`}` : `reads back with SHA-256 ${actual}`);
  }
  if (tagger) await checks!.write(loc.sha256, loc.size, tagger);
  if (held) yield held;
}

/** `start..end`, read in whole check parts, each checked against its tag before any of it is yielded. */
async function* checkedRange(store: LfsStore, loc: BodyLocation, start: number, end: number, checks?: BodyChecks): AsyncGenerator<Buffer> {
  if (!checks) {
    yield* open(store, loc, start, end);
    return;
  }
  if (isSmallBody(loc)) {
    // A small body has no checks file (its whole reads are SHA-256 checked in one buffer): a range is a slice of that.
    yield (await readSmallLfsBody(store, loc)).subarray(start, end + 1);
    return;
  }
  let tags = await checks.read(loc.sha256, loc.size);
  if (!tags) {
    for await (const _ of verifiedWhole(store, loc, checks)); // verifies, then writes the checks file
    tags = await checks.read(loc.sha256, loc.size);
    if (!tags) throw new BtrflyError('STORAGE', `cannot write the checks of body ${loc.sha256} under ${checks.dir}: check free space and permissions there`);
  }
  const first = Math.floor(start / CHECK_PART);
  const stop = Math.min(loc.size, (Math.floor(end / CHECK_PART) + 1) * CHECK_PART) - 1;
  let i = first;
  let pending: Buffer[] = [];
  let have = 0;
  const emit = async function* (part: Buffer): AsyncGenerator<Buffer> {
    if (!tags!.verify(i, part)) {
      throw await corrupt(store, loc, `has part ${i} (bytes ${i * CHECK_PART}-${i * CHECK_PART + part.length - 1}) that does not match its check`);
    }
    const base = i * CHECK_PART;
    i++;
    yield base >= start && base + part.length - 1 <= end ? part : part.subarray(Math.max(0, start - base), Math.min(part.length, end - base + 1));
  };
  for await (const data of open(store, loc, first * CHECK_PART, stop)) {
    let chunk = data;
    while (chunk.length > 0) {
      const want = Math.min(CHECK_PART, stop + 1 - i * CHECK_PART);
      const take = chunk.subarray(0, want - have);
      chunk = chunk.subarray(take.length);
      pending.push(take);
      have += take.length;
      if (have === want) {
        const part = pending.length === 1 ? pending[0] : Buffer.concat(pending, have);
        pending = [];
        have = 0;
        yield* emit(part);
      }
    }
  }
  if (i * CHECK_PART <= stop) {
    throw await corrupt(store, loc, `ends before byte ${stop + 1}`);
  }
}

/**
 * The body's bytes `start..end` from its object file (decompressed from the object's start when
 * it is kept zstd); BODY_MISSING when the store does not hold it.
 */
async function* open(store: LfsStore, loc: BodyLocation, start: number, end: number): AsyncGenerator<Buffer> {
  const zstd = loc.lfsOid !== undefined;
  const file = createReadStream(store.path(lfsObjectOid(loc)), zstd ? { highWaterMark: IO_CHUNK } : { start, end, highWaterMark: IO_CHUNK });
  const source = zstd ? file.pipe(createZstdDecompress({ chunkSize: IO_CHUNK })) : file;
  if (zstd) file.once('error', (e) => source.destroy(e));
  try {
    if (!zstd) {
      for await (const chunk of source as AsyncIterable<Buffer>) yield chunk;
      return;
    }
    let at = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const from = at;
      at += chunk.length;
      if (at <= start) continue;
      yield chunk.subarray(Math.max(0, start - from), Math.min(chunk.length, end + 1 - from));
      if (at > end) return;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missing(loc);
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw await corrupt(store, loc, IS_A_DIRECTORY);
    if (zstd) {
      throw await corrupt(store, loc, `does not decompress: ${(e as Error).message}`);
    }
    throw new BtrflyError('STORAGE', `reading body ${loc.sha256} from the LFS store failed: ${(e as Error).message}`, { cause: e });
  } finally {
    file.destroy();
    source.destroy();
  }
}

function missing(loc: BodyLocation): BtrflyError {
  return new BtrflyError(
    'BODY_MISSING',
    `body ${loc.sha256} (a Git LFS object) is missing from the archive's LFS store`,
    { data: { sha256: loc.sha256, part: 0, oid: loc.parts[0]?.oid }, advice: repairAdvice() },
  );
}

/**
 * The error for an object found damaged, once it is set aside (LfsStore.setAside). An archive
 * this user may only read (a shared cache) keeps it where it is: the damage is still what is said.
 */
async function corrupt(store: LfsStore, loc: BodyLocation, what: string): Promise<BtrflyError> {
  const aside = await store.setAside(lfsObjectOid(loc)).catch((e: NodeJS.ErrnoException) => e);
  const where =
    typeof aside === 'string'
      ? `it was moved out of the LFS store to ${aside}`
      : aside
        ? `it could not be moved out of the LFS store (${aside.code ?? aside.message}), where every read refuses it`
        : 'it is no longer in the LFS store';
  return new BtrflyError('BODY_CORRUPT', `body ${loc.sha256} is corrupt: it ${what}: ${where}`, {
    advice: repairAdvice(),
    data: { sha256: loc.sha256, ...(typeof aside === 'string' && { aside }) },
  });
}
