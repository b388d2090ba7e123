/**
 * A large body's SHA-256 and part tags made on the hash worker (src/format/hash-worker.ts): the
 * digest names exactly the bytes written, the tags check on playback, more bodies than rings are
 * all hashed, and a worker that dies fails the body it was hashing (nothing stored, nothing tagged).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { Archive } from '../../src/format/archive';
import { CHECK_PART } from '../../src/format/body-checks';
import { OFFLOAD_AT } from '../../src/format/body-hash';
import { RINGS, runningHashWorker } from '../../src/format/hash-worker';
import type { BodyWriter } from '../../src/format/types';
import { registerCleanup, tmpDir } from '../helpers';
import { readBack, sha256, storeBody } from './storage-helpers';

const MODES = [
  ['git', false],
  ['lfs', true],
] as const;

async function archive(lfs: boolean): Promise<Archive> {
  const a = await Archive.create(`${tmpDir('btrfly-hash-worker-')}/archive`, { lfs });
  registerCleanup(() => a.close());
  return a;
}

/** Every file under `dir`, recursively (relative names). */
function files(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => join(d.parentPath, d.name).slice(dir.length + 1));
  } catch {
    return [];
  }
}

/** Writes `data` in chunks of `chunk` bytes, waiting for 'drain' as a socket's pipe would. */
async function feed(w: BodyWriter, data: Buffer, chunk: number): Promise<void> {
  for (let i = 0; i < data.length; i += chunk) {
    if (!w.write(data.subarray(i, i + chunk))) await once(w, 'drain');
  }
}

/** Each part of a stored body checks against the tags its writer made. */
async function expectTagsCheck(a: Archive, data: Buffer): Promise<void> {
  const tags = await a.checks.read(sha256(data), data.length);
  expect(tags).toBeDefined();
  expect(tags!.tags).toHaveLength(Math.ceil(data.length / CHECK_PART));
  for (let i = 0; i * CHECK_PART < data.length; i++) expect(tags!.verify(i, data.subarray(i * CHECK_PART, (i + 1) * CHECK_PART))).toBe(true);
}

describe.each(MODES)('hash worker, %s mode', (_mode, lfs) => {
  test('a large body is hashed off the main thread: its digest names exactly its bytes and its parts check on playback', async () => {
    const a = await archive(lfs);
    // Odd chunk sizes, so ring wrap-arounds and part boundaries fall inside chunks.
    const data = randomBytes(13 * 1024 * 1024 + 4321);
    const stored = await storeBody(a, data, 100_003);
    expect(runningHashWorker()).toBeDefined();
    expect(stored.sha256).toBe(sha256(data));
    expect(stored.size).toBe(data.length);
    await expectTagsCheck(a, data);
    expect((await readBack(a, await a.locateBody(stored))).equals(data)).toBe(true);
  });

  test('more large bodies at once than the worker has rings: each is named by its own bytes', async () => {
    const a = await archive(lfs);
    const bodies = Array.from({ length: RINGS + 2 }, (_, i) => randomBytes(OFFLOAD_AT * 3 + i * 77_777));
    const stored = await Promise.all(bodies.map((b, i) => storeBody(a, b, 65_536 + i)));
    for (const [i, b] of bodies.entries()) {
      expect(stored[i].sha256).toBe(sha256(b));
      await expectTagsCheck(a, b);
    }
  });

  test('the hashing thread dies in the middle of a body: the body fails, nothing is stored or tagged, the next body is hashed again', async () => {
    const a = await archive(lfs);
    const data = randomBytes(12 * 1024 * 1024);
    const w = a.createBodyWriter();
    w.on('error', () => undefined);
    await feed(w, data.subarray(0, 4 * 1024 * 1024), 256 * 1024);
    const worker = runningHashWorker();
    expect(worker).toBeDefined();
    await worker!.terminate();
    await feed(w, data.subarray(4 * 1024 * 1024), 256 * 1024).catch(() => undefined);
    w.end();
    await expect(w.done).rejects.toThrow(/hashing thread/);
    // `done` rejects as the writer starts to undo its work; 'close' is once its files are gone.
    if (!w.closed) await new Promise((closed) => w.once('close', closed));
    // No checks file (only the archive's key), no LFS object, no temp file left behind.
    expect(files(join(a.stateDir, 'checks'))).toEqual(['key']);
    expect(files(join(a.dir, 'lfs', 'objects'))).toEqual([]);
    expect(files(join(a.stateDir, 'tmp'))).toEqual([]);
    expect(files(join(a.dir, 'lfs', 'tmp'))).toEqual([]);
    // A new worker takes the next body.
    const next = randomBytes(3 * 1024 * 1024);
    expect((await storeBody(a, next)).sha256).toBe(sha256(next));
    expect(runningHashWorker()).not.toBe(worker);
    await expectTagsCheck(a, next);
  });
});
