/** Shared by the storage tests: temp archives, writing bodies from buffers or generators, reading them back. */
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Archive } from '../../src/format/archive';
import type { BodyLocation, ByteRange, Entry, StoredBody } from '../../src/format/types';
import { registerCleanup, tmpDir } from '../helpers';
import { entry as textEntry } from './format-test-data';

/** A new archive in a temp dir, closed at the end of the test file. */
export async function tempArchive(): Promise<Archive> {
  const a = await Archive.open(`${tmpDir('btrfly-storage-')}/archive`, { create: true });
  registerCleanup(() => a.close());
  return a;
}

/** Writes `data` as a body in chunks of `chunk` bytes (like a socket would deliver it). */
export async function storeBody(a: Archive, data: Buffer | Readable, chunk = 64 * 1024): Promise<StoredBody> {
  const w = a.createBodyWriter();
  const src = Buffer.isBuffer(data) ? Readable.from(chunks(data, chunk), { objectMode: false }) : data;
  await pipeline(src, w);
  return w.done;
}

function* chunks(b: Buffer, n: number): Generator<Buffer> {
  if (b.length === 0) return;
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}

/**
 * Reads a body (or range) back into memory, as playback does (from the body cache when it holds
 * the body); `fromGit` reads the archive's objects. Test bodies are small.
 */
export async function readBack(a: Archive, loc: BodyLocation, range?: ByteRange, opts: { fromGit?: boolean } = {}): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(a.openBody(loc, range, opts), new Writable({ write: (c: Buffer, _e, cb) => (parts.push(c), cb()) }));
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Bytes that zstd shrinks a lot (JSON-like text). */
export function compressible(size: number): Buffer {
  const line = Buffer.from('{"name":"left-pad","version":"1.3.0","dist":{"tarball":"https://registry.example/left-pad"}}\n');
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += line.length) line.copy(b, i);
  return b;
}

/** A manifest entry for a stored body. */
export function entryFor(url: string, body: StoredBody, ordinal = 0): Entry {
  const e = textEntry(url, '', { ordinal });
  e.response.content = { size: body.size, mimeType: 'application/octet-stream', sha256: body.sha256, storage: body.storage, parts: body.parts };
  return e;
}
