/**
 * Per-part checks (src/format/body-checks.ts): every part is checked before a byte of it is
 * read out, a range checks only the parts it touches, a damaged cached part is replaced by
 * git's, and a damaged git part ends the read before its bytes.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Archive } from '../../src/format/archive';
import { BodyChecks, CHECK_PART } from '../../src/format/body-checks';
import { lendsBuffers } from '../../src/format/checked-cache-reader';
import { PART_SIZE, type BodyLocation, type ByteRange } from '../../src/format/types';
import { tmpDir } from '../helpers';
import { readBack, sha256, storeBody, tempArchive } from './storage-helpers';

const SIZE = 3 * CHECK_PART + 777;
const FLIP = 2 * CHECK_PART + 5; // in part 2

const cachePart = (a: Archive, sha: string): string => join(a.stateDir, 'cache', sha.slice(0, 2), sha, '00000000');
const checksFile = (a: Archive, sha: string): string => join(a.stateDir, 'checks', sha.slice(0, 2), sha);

function flipped(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] ^= 1;
  return copy;
}

/** What a read gave before it failed, and how it failed. */
async function readUntilError(a: Archive, loc: BodyLocation, range?: ByteRange): Promise<{ bytes: Buffer; error?: { code?: string } }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of a.openBody(loc, range)) chunks.push(c as Buffer);
    return { bytes: Buffer.concat(chunks) };
  } catch (e) {
    return { bytes: Buffer.concat(chunks), error: e as { code?: string } };
  }
}

describe('per-part checks', () => {
  test('tags do not depend on how the bytes were chunked, and catch one flipped bit', async () => {
    const checks = await BodyChecks.open(tmpDir('btrfly-checks-'));
    const data = randomBytes(SIZE);
    const tagger = checks.tagger();
    for (let i = 0; i < data.length; i += 65_539) tagger.update(data.subarray(i, i + 65_539));
    await checks.write(sha256(data), data.length, tagger);
    const tags = (await checks.read(sha256(data), data.length))!;
    expect(tags.tags).toHaveLength(4);
    const part = (i: number, d: Buffer = data): Buffer => d.subarray(i * CHECK_PART, Math.min(d.length, (i + 1) * CHECK_PART));
    for (let i = 0; i < 4; i++) expect(tags.verify(i, part(i))).toBe(true);
    expect(tags.verify(2, part(2, flipped(data, FLIP)))).toBe(false);
    expect(tags.verify(1, part(2))).toBe(false); // a good part in the wrong place
    expect(tags.verify(3, part(3).subarray(1))).toBe(false);
    // Another size for the same digest: the file is not believed.
    expect(await checks.read(sha256(data), data.length + 1)).toBeUndefined();
    // gc keeps the checks of the bodies a ref reaches, and only those.
    const other = randomBytes(10);
    const t2 = checks.tagger();
    t2.update(other);
    await checks.write(sha256(other), other.length, t2);
    await checks.prune(new Set([sha256(other)]));
    expect(await checks.read(sha256(data), data.length)).toBeUndefined();
    expect(await checks.read(sha256(other), other.length)).toBeDefined();
  });

  test('a body stored through the writer gets tags of every byte, its first part\'s probe included, whatever the chunks', async () => {
    const a = await tempArchive();
    const data = randomBytes(SIZE);
    // Chunks that are not a divisor of the probe (256 KiB) or of CHECK_PART, so one crosses each.
    const loc = await a.locateBody(await storeBody(a, data, 100_003));
    const tags = (await a.checks.read(loc.sha256, loc.size))!;
    expect(tags.tags).toHaveLength(4);
    for (let i = 0; i < 4; i++) expect(tags.verify(i, data.subarray(i * CHECK_PART, (i + 1) * CHECK_PART))).toBe(true);
    // A body held whole (at most the probe) is small: no checks file, read and checked by its SHA-256.
    const small = randomBytes(200_000);
    const smallLoc = await a.locateBody(await storeBody(a, small, 30_000));
    expect(await a.checks.read(smallLoc.sha256, smallLoc.size)).toBeUndefined();
    expect((await readBack(a, smallLoc)).equals(small)).toBe(true);
  });

  test('a checks file that is itself damaged is dropped; the body is then checked by its SHA-256 and gets a new one', async () => {
    const a = await tempArchive();
    const data = randomBytes(SIZE);
    const loc = await a.locateBody(await storeBody(a, data));
    const file = await readFile(checksFile(a, loc.sha256));
    await writeFile(checksFile(a, loc.sha256), flipped(file, 70));
    expect(await a.checks.read(loc.sha256, loc.size)).toBeUndefined();
    expect((await readBack(a, loc)).equals(data)).toBe(true);
    expect(await a.checks.read(loc.sha256, loc.size)).toBeDefined();
    // A verifying read of git's copy (`btrfly verify`, `pull`) makes them too.
    await rm(checksFile(a, loc.sha256));
    expect((await readBack(a, loc, undefined, { fromGit: true })).equals(data)).toBe(true);
    expect(await a.checks.read(loc.sha256, loc.size)).toBeDefined();
  });

  test('a damaged cached part: a range that does not touch it reads from the cache; one that does is healed from git', async () => {
    const a = await tempArchive();
    const data = randomBytes(SIZE);
    const loc = await a.locateBody(await storeBody(a, data));
    await writeFile(cachePart(a, loc.sha256), flipped(data, FLIP));
    const early = { start: 10, end: CHECK_PART + 10 };
    expect((await readBack(a, loc, early)).equals(data.subarray(early.start, early.end + 1))).toBe(true);
    expect(a.cache!.has(loc)).toBe(true); // only parts 0 and 1 were read and checked
    const across = { start: CHECK_PART + 3, end: SIZE - 2 };
    expect((await readBack(a, loc, across)).equals(data.subarray(across.start, across.end + 1))).toBe(true);
    expect(a.cache!.has(loc)).toBe(false);
    expect((await readBack(a, loc)).equals(data)).toBe(true); // and a whole read from git fills it again
    expect(a.cache!.has(loc)).toBe(true);
  });

  test('a damaged git part ends the read before any of its bytes; ranges of intact parts still read', async () => {
    const a = await tempArchive();
    const data = randomBytes(SIZE);
    const loc = await a.locateBody(await storeBody(a, data));
    // git's copy of the body, damaged: the objects of the same bytes with one flipped.
    const damaged = await a.locateBody(await storeBody(a, flipped(data, FLIP)));
    const bad: BodyLocation = { ...loc, parts: damaged.parts };
    await a.cache!.evict(loc.sha256);
    const whole = await readUntilError(a, bad);
    expect(whole.error?.code).toBe('BODY_CORRUPT');
    expect(whole.bytes.equals(data.subarray(0, whole.bytes.length))).toBe(true);
    expect(whole.bytes.length).toBeLessThanOrEqual(2 * CHECK_PART);
    expect(a.cache!.has(loc)).toBe(false); // nothing damaged is cached
    const tail = { start: 3 * CHECK_PART, end: SIZE - 1 };
    expect((await readBack(a, bad, tail)).equals(data.subarray(tail.start))).toBe(true);
    const hit = await readUntilError(a, bad, { start: FLIP - 1, end: FLIP + 1 });
    expect(hit).toMatchObject({ bytes: Buffer.alloc(0), error: { code: 'BODY_CORRUPT' } });
  });

  test('without a checks file, a whole read holds back its last part until the SHA-256 matches', async () => {
    const a = await tempArchive();
    const data = randomBytes(SIZE);
    const loc = await a.locateBody(await storeBody(a, data));
    await rm(checksFile(a, loc.sha256));
    const damaged = await a.locateBody(await storeBody(a, flipped(data, FLIP)));
    await rm(checksFile(a, damaged.sha256));
    await a.cache!.evict(loc.sha256);
    const got = await readUntilError(a, { ...loc, parts: damaged.parts });
    expect(got.error?.code).toBe('BODY_CORRUPT');
    expect(got.bytes.length).toBe(3 * CHECK_PART); // the last part (777 bytes) never left
    expect(await a.checks.read(loc.sha256, loc.size)).toBeUndefined();
  });

  test('a read that lends its buffers reuses the ones handed back, and still heals a damaged cached part from git', async () => {
    const a = await tempArchive();
    const data = randomBytes(2 * PART_SIZE + 3 * CHECK_PART + 99); // three part files, 20 check parts
    const loc = await a.locateBody(await storeBody(a, data));
    // Part 13 of the cached copy (in the second part file) damaged: the read goes on from git there.
    const second = join(a.stateDir, 'cache', loc.sha256.slice(0, 2), loc.sha256, '00000001');
    const damaged = await readFile(second);
    damaged[5 * CHECK_PART + 1] ^= 1;
    await writeFile(second, damaged);
    const body = a.openBody(loc);
    if (!lendsBuffers(body)) throw new Error('a cached body with checks should be read by the lending reader');
    const giveBack = body.lend();
    const got: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    // 'data' events, one chunk each (an async iterator joins what is buffered into new memory).
    await new Promise<void>((resolve, reject) => {
      body.on('data', (chunk: Buffer) => {
        got.push(Buffer.from(chunk)); // a copy: the reader reads into the chunk's memory again
        if (got.length <= 13) memory.add(chunk.buffer);
        giveBack(chunk);
      });
      body.once('end', resolve).once('error', reject);
    });
    expect(Buffer.concat(got).equals(data)).toBe(true);
    expect(a.cache!.has(loc)).toBe(false); // the damaged entry was dropped
    // The 13 parts before the damaged one came from the cache through at most 8 buffers.
    expect(got.length).toBeGreaterThan(13);
    expect(memory.size).toBeLessThanOrEqual(8);
  });
});
