import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { Archive } from '../../src/format/archive';
import { HEADER } from '../../src/format/body-segments';
import { PART_SIZE, type BodyLocation } from '../../src/format/types';
import { registerCleanup, run, tmpDir } from '../helpers';
import { compressible, entryFor, readBack, storeBody, tempArchive } from './storage-helpers';
import { beginRecording } from '../../src/format/recording-writer';
import { gcArchive, verifyArchive } from '../../src/format/archive-maintenance';

const entryDir = (a: Archive, sha: string): string => join(a.stateDir, 'cache', sha.slice(0, 2), sha);
const listOrEmpty = (dir: string): Promise<string[]> => readdir(dir).catch(() => []);
const segmentsDir = (a: Archive): string => join(a.stateDir, 'cache', 'segments');

/** Another instance on the same archive, as another process would open it (its own index and segment). */
async function reopen(a: Archive): Promise<Archive> {
  const b = await Archive.open(a.dir);
  registerCleanup(() => b.close());
  return b;
}

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
    for (let i = 0; i < 50 && !a.cache!.holds(smallLoc); i++) await new Promise((r) => setTimeout(r, 20));
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
    await writeFile(segmentsDir(a), 'not a directory'); // and every segment
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
    const keptBig = await recordOne(a, 'kept-big', randomBytes(PART_SIZE + 10));
    const goneBig = await recordOne(a, 'gone-big', randomBytes(PART_SIZE + 10));
    await a.deleteTag('gone');
    await a.deleteTag('gone-big');
    await a.close(); // gc runs in a process of its own: the recorder's segment is then a dead writer's
    const b = await reopen(a);
    await gcArchive(b);
    expect(b.cache!.has(keptBig)).toBe(true);
    expect(b.cache!.has(goneBig)).toBe(false);
    const c = await reopen(a);
    expect(c.cache!.holds(kept)).toBe(true);
    expect(c.cache!.holds(gone)).toBe(false);
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
      const small = randomBytes(3000);
      const smallLoc = await a.locateBody(await storeBody(a, small));
      expect((await a.readSmallBody(smallLoc))!.equals(small)).toBe(true);
      expect((await readBack(a, smallLoc)).equals(small)).toBe(true);
      expect(await listOrEmpty(join(a.stateDir, 'cache'))).toEqual([]);
      expect(await listOrEmpty(join(a.stateDir, 'tmp'))).toEqual([]);
    } finally {
      await a.close();
    }
  });
});

/** Where a body's record is: its segment file and the offset of its bytes (after the header). */
async function recordOf(a: Archive, sha: string): Promise<{ path: string; at: number }> {
  for (const name of await listOrEmpty(segmentsDir(a))) {
    const path = join(segmentsDir(a), name);
    const i = (await readFile(path)).indexOf(Buffer.from(sha, 'hex'));
    if (i >= 0) return { path, at: i - 8 + HEADER };
  }
  throw new Error(`no record of ${sha}`);
}

async function flipAt(path: string, at: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[at] ^= 0xff;
  await writeFile(path, bytes);
}

describe('small bodies in segment files', () => {
  test('a recorded small body is a record in a segment, no directory, and plays back from there byte for byte', async () => {
    const a = await tempArchive();
    const bodies = [randomBytes(1024), compressible(40_000), randomBytes(64 * 1024)];
    const locs = [];
    for (const [i, body] of bodies.entries()) locs.push(await recordOne(a, `small-${i}`, body));
    expect((await listOrEmpty(join(a.stateDir, 'cache'))).sort()).toEqual(['segments']);
    const segments = await listOrEmpty(segmentsDir(a));
    expect(segments).toEqual([expect.stringMatching(new RegExp(`^p${process.pid}-.*\\.seg$`))]);
    // Another process's view (an index scanned from the segment), without git's objects: the cache alone.
    const b = await reopen(a);
    for (const [i, body] of bodies.entries()) {
      expect((await b.readSmallBody(withoutGitObjects(locs[i])))!.equals(body)).toBe(true);
      expect((await readBack(b, withoutGitObjects(locs[i]))).equals(body)).toBe(true);
    }
    // Read from git again (verify), it is not appended a second time.
    expect(await verifyArchive(b)).toEqual([]);
    const size = (await stat(join(segmentsDir(a), segments[0]))).size;
    expect(size).toBe(bodies.reduce((n, body) => n + HEADER + body.length, 0));
    expect(await listOrEmpty(segmentsDir(a))).toEqual(segments);
  });

  test('a byte flipped in a record: playback gives the recorded bytes from git, verify reports and drops the record', async () => {
    const a = await tempArchive();
    const body = randomBytes(30_000);
    const loc = await recordOne(a, 'flipped', body);
    const rec = await recordOf(a, loc.sha256);
    await flipAt(rec.path, rec.at + 777);
    const b = await reopen(a);
    expect((await b.readSmallBody(loc))!.equals(body)).toBe(true);
    // The bad record was dropped (its magic overwritten), and the bytes git gave were cached again.
    expect((await readFile(rec.path)).toString('latin1', rec.at - HEADER, rec.at - HEADER + 4)).toBe('BtSx');
    expect((await (await reopen(a)).readSmallBody(withoutGitObjects(loc)))!.equals(body)).toBe(true);

    const other = randomBytes(20_000);
    const otherLoc = await recordOne(a, 'verified', other);
    const rec2 = await recordOf(a, otherLoc.sha256);
    await flipAt(rec2.path, rec2.at + 5);
    const c = await reopen(a);
    expect(await verifyArchive(c)).toEqual([
      expect.objectContaining({ tag: 'verified', code: 'BODY_CORRUPT', sha256: otherLoc.sha256, message: expect.stringContaining('did not match its SHA-256 and was removed') }),
    ]);
    expect(await verifyArchive(await reopen(a))).toEqual([]);
    expect((await (await reopen(a)).readSmallBody(otherLoc))!.equals(other)).toBe(true);
  });

  test('a segment cut in the middle of a record (a crash): the records before it are read, the torn one is ignored, gc drops it', async () => {
    const a = await tempArchive();
    const first = randomBytes(10_000);
    const second = randomBytes(20_000);
    const firstLoc = await recordOne(a, 'first', first);
    const secondLoc = await recordOne(a, 'second', second);
    const rec = await recordOf(a, secondLoc.sha256);
    await a.close();
    await truncate(rec.path, rec.at + 5000);
    const b = await reopen(a);
    expect((await b.readSmallBody(withoutGitObjects(firstLoc)))!.equals(first)).toBe(true);
    await expect(b.readSmallBody(withoutGitObjects(secondLoc))).rejects.toMatchObject({ code: 'BODY_MISSING' });
    expect((await b.readSmallBody(secondLoc))!.equals(second)).toBe(true); // from git, and cached again in b's segment
    await b.close();
    const c = await reopen(a);
    await gcArchive(c);
    // One segment left, of whole records only.
    const after = await listOrEmpty(segmentsDir(a));
    expect(after).toHaveLength(1);
    expect((await stat(join(segmentsDir(a), after[0]))).size).toBe(2 * HEADER + first.length + second.length);
    const d = await reopen(a);
    expect((await d.readSmallBody(withoutGitObjects(firstLoc)))!.equals(first)).toBe(true);
    expect((await d.readSmallBody(withoutGitObjects(secondLoc)))!.equals(second)).toBe(true);
  });

  test('two writers at once append to two segments; a reader finds the bodies of both', async () => {
    const a = await tempArchive();
    const b = await reopen(a);
    const bodies = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 97));
    const stored = await Promise.all(bodies.map((body, i) => storeBody(i % 2 ? a : b, body)));
    expect(await listOrEmpty(segmentsDir(a))).toHaveLength(2);
    const c = await reopen(a);
    for (const [i, body] of bodies.entries()) {
      expect((await c.readSmallBody(withoutGitObjects(await c.locateBody(stored[i]))))!.equals(body)).toBe(true);
    }
  });

  test('a small body cached by an older version (a directory entry) is still read, and verify checks it', async () => {
    const a = await tempArchive();
    const body = randomBytes(5000);
    const loc = await recordOne(a, 'old', body);
    await a.close();
    await rm(segmentsDir(a), { recursive: true });
    const part = join(entryDir(a, loc.sha256), '00000000');
    await mkdir(entryDir(a, loc.sha256), { recursive: true });
    await writeFile(part, body);
    const b = await reopen(a);
    expect((await b.readSmallBody(withoutGitObjects(loc)))!.equals(body)).toBe(true);
    expect((await readBack(b, withoutGitObjects(loc))).equals(body)).toBe(true);
    expect(await verifyArchive(b)).toEqual([]);
    expect(await listOrEmpty(segmentsDir(a))).toEqual([]); // held already: not cached twice
    await flipAt(part, 100);
    expect(await verifyArchive(b)).toEqual([expect.objectContaining({ tag: 'old', code: 'BODY_CORRUPT' })]);
    expect(b.cache!.holds(loc)).toBe(false);
  });
});
