import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { Archive } from '../../src/format/archive';
import { PART_SIZE, type BodyLocation } from '../../src/format/types';
import { run, tmpDir } from '../helpers';
import { compressible, entryFor, readBack, storeBody, tempArchive } from './storage-helpers';
import { beginRecording } from '../../src/format/recording-writer';
import { gcArchive, verifyArchive } from '../../src/format/archive-maintenance';

const entryDir = (a: Archive, sha: string): string => join(a.stateDir, 'cache', sha.slice(0, 2), sha);
const listOrEmpty = (dir: string): Promise<string[]> => readdir(dir).catch(() => []);

/** The same location with every part pointing at an object git does not have. */
function withoutGitObjects(loc: BodyLocation): BodyLocation {
  return { ...loc, parts: loc.parts.map((p, i) => ({ ...p, oid: String(i + 1).repeat(40).slice(0, 40) })) };
}

async function recordOne(a: Archive, tag: string, body: Buffer): Promise<BodyLocation> {
  const w = await beginRecording(a, tag, { session: `test-${tag}` });
  const stored = await storeBody(a, body);
  await w.addEntry(entryFor(`https://example.test/${tag}`, stored), [], stored);
  await w.seal();
  return a.locateBody(stored);
}

describe('body cache', () => {
  test('a recorded body is cached as its raw parts, and reads come from there, whole and in ranges', async () => {
    const a = await tempArchive();
    const data = Buffer.concat([randomBytes(PART_SIZE), compressible(PART_SIZE), randomBytes(12345)]);
    const loc = await a.locateBody(await storeBody(a, data, 1000_003));
    expect(loc.parts.map((p) => p.zstd)).toEqual([false, true, false]);
    const files = await readdir(entryDir(a, loc.sha256));
    expect(files).toEqual(['00000000', '00000001', '00000002']);
    // Raw bytes, also for the part git keeps as zstd.
    expect((await readFile(join(entryDir(a, loc.sha256), '00000001'))).equals(data.subarray(PART_SIZE, 2 * PART_SIZE))).toBe(true);
    // Without any of its objects in git, the body still reads: it comes from the cache.
    const cachedOnly = withoutGitObjects(loc);
    expect((await readBack(a, cachedOnly)).equals(data)).toBe(true);
    for (const [start, end] of [[0, 0], [PART_SIZE - 10, PART_SIZE + 10], [2 * PART_SIZE - 1, data.length - 1], [5, 5 + 2 * PART_SIZE]]) {
      expect((await readBack(a, cachedOnly, { start, end })).equals(data.subarray(start, end + 1))).toBe(true);
    }
    // Verification reads git, not the cache.
    await expect(readBack(a, cachedOnly, undefined, { fromGit: true })).rejects.toMatchObject({ code: 'BODY_MISSING' });
    const small = compressible(40_000);
    const smallLoc = await a.locateBody(await storeBody(a, small));
    expect((await a.readSmallBody(withoutGitObjects(smallLoc)))!.equals(small)).toBe(true);
    expect(await listOrEmpty(join(a.stateDir, 'cache', 'tmp'))).toEqual([]);
  });

  test('a whole read from git fills the cache; a range read does not', async () => {
    const a = await tempArchive();
    const data = randomBytes(PART_SIZE + 5000);
    const loc = await a.locateBody(await storeBody(a, data));
    await a.cache!.evict(loc.sha256);
    expect(a.cache!.has(loc)).toBe(false);
    expect((await readBack(a, loc, { start: 3, end: PART_SIZE + 3 })).equals(data.subarray(3, PART_SIZE + 4))).toBe(true);
    expect(a.cache!.has(loc)).toBe(false);
    expect((await readBack(a, loc)).equals(data)).toBe(true);
    expect(a.cache!.has(loc)).toBe(true);
    expect((await readBack(a, withoutGitObjects(loc))).equals(data)).toBe(true);

    const small = randomBytes(3000);
    const smallLoc = await a.locateBody(await storeBody(a, small));
    await a.cache!.evict(smallLoc.sha256);
    expect((await a.readSmallBody(smallLoc))!.equals(small)).toBe(true);
    // The small body is put in the cache behind the answer.
    for (let i = 0; i < 50 && !a.cache!.has(smallLoc); i++) await new Promise((r) => setTimeout(r, 20));
    expect((await a.readSmallBody(withoutGitObjects(smallLoc)))!.equals(small)).toBe(true);
  });

  test('a damaged cached copy is not sent: a part of the wrong length is removed and read from git, a wrong byte is found by verify', async () => {
    const a = await tempArchive();
    const data = randomBytes(PART_SIZE + 7000);
    const loc = await recordOne(a, 'damaged', data);
    await truncate(join(entryDir(a, loc.sha256), '00000001'), 100);
    expect((await readBack(a, loc)).equals(data)).toBe(true);
    expect(a.cache!.has(loc)).toBe(false);
    // The next whole read goes to git, and fills the cache again.
    expect((await readBack(a, loc)).equals(data)).toBe(true);
    expect(a.cache!.has(loc)).toBe(true);

    const part0 = join(entryDir(a, loc.sha256), '00000000');
    const flipped = await readFile(part0);
    flipped[12345] ^= 0xff;
    await writeFile(part0, flipped);
    const problems = await verifyArchive(a);
    expect(problems).toEqual([
      expect.objectContaining({ tag: 'damaged', code: 'BODY_CORRUPT', sha256: loc.sha256, message: expect.stringContaining('did not match its SHA-256 and was removed') }),
    ]);
    expect(a.cache!.has(loc)).toBe(false);
    expect(await verifyArchive(a)).toEqual([]);
    expect((await readBack(a, loc)).equals(data)).toBe(true);
  });

  test('an entry removed while it is being read: the rest of the body comes from git', async () => {
    const a = await tempArchive();
    const data = randomBytes(2 * PART_SIZE + 7000);
    const loc = await recordOne(a, 'evicted', data);
    const got: Buffer[] = [];
    let evicted = false;
    for await (const chunk of a.openBody(loc) as AsyncIterable<Buffer>) {
      got.push(chunk);
      if (!evicted) {
        evicted = true;
        await a.cache!.evict(loc.sha256);
      }
    }
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });

  test('a cache that cannot be written costs nothing but the cache: recording and reading go on', async () => {
    const a = await tempArchive();
    const stageRoot = join(a.stateDir, 'cache', 'tmp');
    await rm(stageRoot, { recursive: true, force: true });
    await mkdir(join(a.stateDir, 'cache'), { recursive: true });
    await writeFile(stageRoot, 'not a directory'); // every stage fails with ENOTDIR
    const data = randomBytes(PART_SIZE + 3000);
    const loc = await a.locateBody(await storeBody(a, data));
    expect(a.cache!.has(loc)).toBe(false);
    expect((await readBack(a, loc)).equals(data)).toBe(true);
    expect((await readBack(a, loc)).equals(data)).toBe(true);
    const small = randomBytes(2000);
    const smallLoc = await a.locateBody(await storeBody(a, small));
    expect((await a.readSmallBody(smallLoc))!.equals(small)).toBe(true);
    expect(await readdir(join(a.stateDir, 'tmp'))).toEqual([]);
  });

  test('gc removes the cached bodies no tag reaches any more', async () => {
    const a = await tempArchive();
    const kept = await recordOne(a, 'kept', randomBytes(20_000));
    const gone = await recordOne(a, 'gone', randomBytes(20_000));
    await a.deleteTag('gone');
    await gcArchive(a);
    expect(a.cache!.has(kept)).toBe(true);
    expect(a.cache!.has(gone)).toBe(false);
  });

  test('a cancelled writer leaves nothing in the cache', async () => {
    const a = await tempArchive();
    const w = a.createBodyWriter();
    const ended = finished(w);
    await new Promise<void>((resolve) => w.write(randomBytes(2 * PART_SIZE + 4096), () => resolve()));
    w.destroy(new Error('client went away'));
    await expect(ended).rejects.toThrow('client went away');
    expect(await listOrEmpty(join(a.stateDir, 'cache', 'tmp'))).toEqual([]);
    expect((await listOrEmpty(join(a.stateDir, 'cache'))).filter((d) => d !== 'tmp')).toEqual([]);
    expect(await readdir(join(a.stateDir, 'tmp'))).toEqual([]);
  });

  test('with btrfly.bodyCache false nothing is cached and bodies read from git', async () => {
    const dir = `${tmpDir('btrfly-nocache-')}/archive`;
    await (await Archive.open(dir, { create: true })).close();
    await run('git', ['--git-dir', dir, 'config', 'btrfly.bodyCache', 'false']);
    const a = await Archive.open(dir);
    try {
      expect(a.cache).toBeUndefined();
      const data = randomBytes(PART_SIZE + 100);
      const loc = await a.locateBody(await storeBody(a, data));
      expect((await readBack(a, loc)).equals(data)).toBe(true);
      expect(await listOrEmpty(join(a.stateDir, 'cache'))).toEqual([]);
      expect(await listOrEmpty(join(a.stateDir, 'tmp'))).toEqual([]);
    } finally {
      await a.close();
    }
  });
});
