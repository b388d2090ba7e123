import { createCipheriv, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { gitFsck, run } from '../helpers';
import { byteEntropy, packWhole } from '../../src/format/body-writer';
import { PART_SIZE } from '../../src/format/types';
import type { Archive } from '../../src/format/archive';
import type { BodyLocation, ByteRange } from '../../src/format/types';
import { compressible, readBack, sha256, storeBody, tempArchive } from './storage-helpers';

/** These tests are about the objects in git: they read past the body cache (body-cache.unit.test.ts). */
const readGit = (a: Archive, loc: BodyLocation, range?: ByteRange): Promise<Buffer> => readBack(a, loc, range, { fromGit: true });

describe('body storage', () => {
  test('random bytes are stored raw, text is stored zstd, and both read back identical', async () => {
    const a = await tempArchive();
    const random = randomBytes(300_000);
    const text = compressible(300_000);
    const r = await storeBody(a, random);
    const t = await storeBody(a, text);
    expect(r).toMatchObject({ sha256: sha256(random), size: random.length, storage: 'raw', parts: 1 });
    expect(t).toMatchObject({ sha256: sha256(text), size: text.length, storage: 'zstd', parts: 1 });
    const names = async (tree: string) => (await run('git', ['--git-dir', a.dir, 'ls-tree', '--name-only', tree])).stdout.trim();
    expect(await names(r.treeOid)).toBe('00000000');
    expect(await names(t.treeOid)).toBe('00000000.zst');
    expect(sha256(await readGit(a, await a.locateBody(r)))).toBe(sha256(random));
    expect(sha256(await readGit(a, await a.locateBody(t)))).toBe(sha256(text));
    await gitFsck(a.dir);
  });

  test('a small body whose first 4 KiB look random is kept raw without zstd; repeats or text still go to zstd', () => {
    // Fixed random-looking bytes (AES-CTR of zeros), so the byte counts are the same every run.
    const randomish = (n: number, seed: number): Buffer => createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n));
    const random = randomish(40_000, 1);
    expect(byteEntropy(random.subarray(0, 4096))).toBeGreaterThanOrEqual(7.93);
    expect(packWhole(random)).toEqual({ zstd: false, bytes: random });
    // Random bytes that repeat: their byte counts are uneven enough that zstd is asked, and it shrinks them.
    const block = randomish(1024, 2);
    const repeated = Buffer.concat(Array.from({ length: 40 }, () => block));
    expect(byteEntropy(repeated.subarray(0, 4096))).toBeLessThan(7.93);
    const packed = packWhole(repeated);
    expect(packed.zstd).toBe(true);
    expect(zstdDecompressSync(packed.bytes).equals(repeated)).toBe(true);
    // Text is compressed whole at once; what is stored still reads back as the body.
    const text = compressible(40_000);
    expect(byteEntropy(text.subarray(0, 4096))).toBeLessThan(7);
    const packedText = packWhole(text);
    expect(packedText.zstd).toBe(true);
    expect(zstdDecompressSync(packedText.bytes).equals(text)).toBe(true);
    expect(byteEntropy(Buffer.alloc(4096, 7))).toBe(0);
    expect(byteEntropy(Buffer.from([0, 1, 2, 3]))).toBe(2);
  });

  test('small bodies stored together go into one pack through fast-import, with no loose object and no ref', async () => {
    const a = await tempArchive();
    const bodies = [randomBytes(20_000), compressible(30_000), Buffer.alloc(0), randomBytes(1)];
    const stored = await Promise.all(bodies.map((b) => storeBody(a, b)));
    const git = async (...args: string[]) => (await run('git', ['--git-dir', a.dir, ...args])).stdout.trim();
    for (const [i, s] of stored.entries()) {
      expect(s).toMatchObject({ sha256: sha256(bodies[i]), size: bodies[i].length, parts: 1 });
      // The tree id the writer computed is the tree git has, naming the part git has.
      const loc = await a.locateBody(s);
      expect(await git('ls-tree', s.treeOid)).toBe(`100644 blob ${loc.parts[0].oid}\t${s.storage === 'zstd' ? '00000000.zst' : '00000000'}`);
      expect(sha256(await readGit(a, loc))).toBe(sha256(bodies[i]));
    }
    expect(stored[1].storage).toBe('zstd');
    expect(await git('count-objects', '-v')).toMatch(/^count: 0$/m);
    expect((await readdir(join(a.dir, 'objects', 'pack'))).filter((f) => f.endsWith('.pack'))).toHaveLength(1);
    expect(await git('for-each-ref')).toBe('');
    // Once fast-import has ended, its packs lose their .keep (gc may pack and prune them).
    await a.close();
    expect((await readdir(join(a.dir, 'objects', 'pack'))).filter((f) => !/^pack-[0-9a-f]+\.(pack|idx)$/.test(f))).toEqual([]);
    await gitFsck(a.dir);
  });

  test('when fast-import dies, the bodies waiting for its checkpoint fail, and the next body starts a new one', async () => {
    const a = await tempArchive();
    await a.git.storeSmallBody(Buffer.from('first'), '00000000');
    // This archive's fast-import, by its command line.
    const cmdline = (pid: string): string => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    };
    const fastImport = (): string | undefined => readdirSync('/proc').find((d) => /^\d+$/.test(d) && cmdline(d).includes(`${a.dir}\0`) && cmdline(d).includes('\0fast-import\0'));
    const pid = Number(fastImport());
    // Stopped, it cannot answer the next checkpoint; killed, it fails the body waiting for it.
    process.kill(pid, 'SIGSTOP');
    const waiting = a.git.storeSmallBody(Buffer.from('waiting'), '00000000');
    process.kill(pid, 'SIGKILL');
    await expect(waiting).rejects.toMatchObject({ code: 'GIT', message: expect.stringContaining('git fast-import failed') });
    const next = await a.git.storeSmallBody(Buffer.from('next'), '00000000');
    expect((await run('git', ['--git-dir', a.dir, 'cat-file', 'blob', next.oid])).stdout).toBe('next');
  });

  test('a body over PART_SIZE is split in exact parts, each chosen raw or zstd', async () => {
    const a = await tempArchive();
    const data = Buffer.concat([randomBytes(PART_SIZE), compressible(PART_SIZE), randomBytes(12345)]);
    const stored = await storeBody(a, data, 1000_003); // chunks that straddle part boundaries
    expect(stored).toMatchObject({ size: data.length, parts: 3, storage: 'mixed', sha256: sha256(data) });
    const loc = await a.locateBody(stored);
    expect(loc.parts.map((p) => p.zstd)).toEqual([false, true, false]);
    expect(loc.parts[0].storedSize).toBe(PART_SIZE);
    expect(loc.parts[1].storedSize).toBeLessThan(PART_SIZE / 10);
    expect(sha256(await readGit(a, loc))).toBe(sha256(data));

    const ranges = [
      [0, 0],
      [PART_SIZE - 10, PART_SIZE + 10], // across the raw/zstd boundary
      [PART_SIZE + 5, PART_SIZE + 100], // inside the zstd part only
      [2 * PART_SIZE - 1, 2 * PART_SIZE], // last byte of part 1, first of part 2
      [data.length - 1, data.length - 1],
      [100, data.length - 1],
    ];
    for (const [start, end] of ranges) {
      const got = await readGit(a, loc, { start, end });
      expect(got.equals(data.subarray(start, end + 1))).toBe(true);
    }
    await gitFsck(a.dir);
  });

  test('a body of exactly PART_SIZE is one part; an empty body is one empty part', async () => {
    const a = await tempArchive();
    const exact = randomBytes(PART_SIZE);
    expect(await storeBody(a, exact)).toMatchObject({ parts: 1, size: PART_SIZE });
    const empty = await storeBody(a, Buffer.alloc(0));
    expect(empty).toMatchObject({ parts: 1, size: 0, sha256: sha256(Buffer.alloc(0)), storage: 'raw' });
    const loc = await a.locateBody(empty);
    expect(loc.parts).toHaveLength(1);
    expect((await readGit(a, loc)).length).toBe(0);
    await gitFsck(a.dir);
  });

  test('destroying a writer half way removes its temp files and rejects done', async () => {
    const a = await tempArchive();
    const w = a.createBodyWriter();
    const ended = finished(w);
    // Destroyed once the writer has taken the chunk: a part stored, the next one begun.
    await new Promise<void>((resolve) => w.write(randomBytes(PART_SIZE + 4096), () => resolve()));
    w.destroy(new Error('client went away'));
    await expect(w.done).rejects.toThrow('client went away');
    await expect(ended).rejects.toThrow('client went away');
    expect(await readdir(join(a.stateDir, 'tmp'))).toEqual([]);
    await gitFsck(a.dir);
  });

  test('an aborted signal stops the writer', async () => {
    const a = await tempArchive();
    const ac = new AbortController();
    const w = a.createBodyWriter({ signal: ac.signal });
    const p = pipeline(Readable.from([randomBytes(1000)], { objectMode: false }), w);
    ac.abort();
    await expect(p).rejects.toThrow();
    await expect(w.done).rejects.toThrow('aborted');
    expect(await readdir(join(a.stateDir, 'tmp'))).toEqual([]);
  });

  test('a part whose object was swapped for other bytes fails the SHA-256 check', async () => {
    const a = await tempArchive();
    const good = randomBytes(5000);
    const stored = await storeBody(a, good);
    const other = await storeBody(a, randomBytes(5000));
    const loc = await a.locateBody(stored);
    loc.parts[0] = (await a.locateBody(other)).parts[0];
    await expect(readGit(a, loc)).rejects.toMatchObject({ code: 'BODY_CORRUPT' });
    // A range cannot be checked against the digest, but still reads.
    expect((await readGit(a, loc, { start: 0, end: 9 })).length).toBe(10);
    loc.parts[0] = { oid: '1'.repeat(40), storedSize: 5000, zstd: false };
    await expect(readGit(a, loc)).rejects.toMatchObject({ code: 'BODY_MISSING' });
  });

  test('large parts stream in turn from one git process; a missing one fails only where it is needed', async () => {
    const a = await tempArchive();
    const data = randomBytes(PART_SIZE + 2 * 1024 * 1024);
    const loc = await a.locateBody(await storeBody(a, data));
    expect(loc.parts.map((p) => p.storedSize)).toEqual([PART_SIZE, 2 * 1024 * 1024]);
    expect(sha256(await readGit(a, loc, { start: 10, end: data.length - 1 }))).toBe(sha256(data.subarray(10)));
    loc.parts[1] = { ...loc.parts[1], oid: '2'.repeat(40) };
    await expect(readGit(a, loc)).rejects.toMatchObject({ code: 'BODY_MISSING' });
    expect((await readGit(a, loc, { start: 0, end: PART_SIZE - 1 })).equals(data.subarray(0, PART_SIZE))).toBe(true);
  });
});
