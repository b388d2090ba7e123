import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { Archive } from '../../src/format/archive';
import { migrateToLfs } from '../../src/format/lfs-migrate';
import { gitFsck, registerCleanup, run, tmpDir } from '../helpers';
import { compressible, entryFor, readBack, sha256, storeBody, tempArchive } from './storage-helpers';
import { gcArchive, verifyArchive } from '../../src/format/archive-maintenance';
import { beginRecording } from '../../src/format/recording-writer';

const git = (a: Archive, ...args: string[]) => run('git', ['--git-dir', a.dir, ...args]);
const du = async (dir: string) => Number((await run('du', ['-sb', dir])).stdout.split('\t')[0]);
const objectPath = (a: Archive, sha: string) => join(a.dir, 'lfs', 'objects', sha.slice(0, 2), sha.slice(2, 4), sha);

async function lfsArchive(): Promise<Archive> {
  const a = await Archive.create(`${tmpDir('btrfly-lfs-')}/archive`, { lfs: true });
  registerCleanup(() => a.close());
  return a;
}

async function recordTag(a: Archive, tag: string, bodies: Buffer[]): Promise<string> {
  const w = await beginRecording(a, tag, { session: `test-${tag}` });
  for (const [i, b] of bodies.entries()) {
    const stored = await storeBody(a, b);
    await w.addEntry(entryFor(`https://example.test/f${i}`, stored), [], stored);
  }
  return (await w.seal()).commit;
}

/** Replaces an object's file with other bytes of the same size (a new inode: git-lfs hard-links objects). */
function tamper(path: string): void {
  const bytes = readFileSync(path);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(`${path}.new`, bytes);
  renameSync(`${path}.new`, path);
}

describe('archive in Git LFS mode', () => {
  test('bodies are LFS objects named by their SHA-256; git holds pointers; playback and ranges read the object', async () => {
    const a = await lfsArchive();
    expect(a.lfsMode).toBe(true);
    const large = randomBytes(20 * 1024 * 1024 + 123);
    const bodies = [randomBytes(3000), compressible(300_000), large, Buffer.alloc(0)];
    const commit = await recordTag(a, 'build', bodies);
    const rec = await a.readRecording('build', commit);
    for (const b of bodies) {
      const loc = rec.bodies.get(sha256(b))!;
      expect((await readBack(a, loc)).equals(b)).toBe(true);
      if (b.length === 0 || b === bodies[1]) continue;
      // Stored once, raw, as git-lfs names it.
      expect(readFileSync(objectPath(a, sha256(b))).equals(b)).toBe(true);
      const pointer = await git(a, 'cat-file', 'blob', `${commit}:bodies/${sha256(b).slice(0, 2)}/${sha256(b)}/lfs`);
      expect(pointer.stdout).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(b)}\nsize ${b.length}\n`);
    }
    // The compressible body is kept zstd: the object and the pointer name the zstd bytes' own SHA-256.
    const text = bodies[1];
    const [textPointer] = (await git(a, 'ls-tree', '--name-only', `${commit}:bodies/${sha256(text).slice(0, 2)}/${sha256(text)}`)).stdout.split('\n');
    const oid = /^lfs-([0-9a-f]{64})\.zst$/.exec(textPointer)![1];
    const zst = readFileSync(objectPath(a, oid));
    expect(sha256(zst)).toBe(oid);
    expect(zst.length).toBeLessThan(text.length / 10);
    expect(existsSync(objectPath(a, sha256(text)))).toBe(false);
    const textPointerBlob = await git(a, 'cat-file', 'blob', `${commit}:bodies/${sha256(text).slice(0, 2)}/${sha256(text)}/${textPointer}`);
    expect(textPointerBlob.stdout).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${zst.length}\n`);
    expect((await a.readSmallBody(rec.bodies.get(sha256(text))!))!.equals(text)).toBe(true);
    const entries = rec.manifest.entries.map((e) => e.response.content);
    expect(entries.filter((c) => c.size > 0).every((c) => c.storage === 'lfs' && c.parts === 1)).toBe(true);
    // Ranges across 1 MiB check parts, and the small-body path.
    const loc = rec.bodies.get(sha256(large))!;
    for (const [s, e] of [[0, 9], [1024 * 1024 - 5, 3 * 1024 * 1024 + 7], [large.length - 100, large.length - 1]]) {
      expect((await readBack(a, loc, { start: s, end: e })).equals(large.subarray(s, e + 1))).toBe(true);
    }
    expect((await a.readSmallBody(rec.bodies.get(sha256(bodies[0]))!))!.equals(bodies[0])).toBe(true);
    // git's objects stay tiny: a few KiB for 20 MiB of bodies.
    expect(await du(join(a.dir, 'objects'))).toBeLessThan(200 * 1024);
    const attributes = await git(a, 'cat-file', 'blob', `${commit}:.gitattributes`);
    expect(attributes.stdout).toContain('bodies/** filter=lfs diff=lfs merge=lfs -text');
    expect(await verifyArchive(a)).toEqual([]);
    await gitFsck(a.dir);
  });

  test('a compressible body is kept zstd as git mode decides it: streamed, read back whole and in ranges, kept by gc, refused when damaged', async () => {
    const a = await lfsArchive();
    const text = compressible(12 * 1024 * 1024 + 77);
    // The probe (first 256 KiB) compresses, the rest does not, and zstd saves 3%: git mode would keep such a part raw, and so does LFS mode.
    const mixed = Buffer.concat([compressible(256 * 1024), randomBytes(8 * 1024 * 1024)]);
    const commit = await recordTag(a, 'idx', [text, mixed]);
    const rec = await a.readRecording('idx', commit);
    const loc = rec.bodies.get(sha256(text))!;
    expect(loc.lfsOid).toMatch(/^[0-9a-f]{64}$/);
    const zst = objectPath(a, loc.lfsOid!);
    expect(readFileSync(zst).length).toBeLessThan(text.length / 10);
    expect((await readBack(a, loc)).equals(text)).toBe(true);
    for (const [s, e] of [[0, 0], [5 * 1024 * 1024 - 3, 7 * 1024 * 1024 + 2], [text.length - 10, text.length - 1]]) {
      expect((await readBack(a, loc, { start: s, end: e })).equals(text.subarray(s, e + 1))).toBe(true);
    }
    const mixedLoc = rec.bodies.get(sha256(mixed))!;
    expect(mixedLoc.lfsOid).toBeUndefined();
    expect(readFileSync(objectPath(a, sha256(mixed))).equals(mixed)).toBe(true);
    expect(await verifyArchive(a)).toEqual([]);
    // gc keeps the zstd object (named by its own oid, not the body's) and drops one no tag reaches.
    const garbage = await storeBody(a, compressible(100_000));
    await gcArchive(a);
    expect(existsSync(zst)).toBe(true);
    expect(readdirSync(join(a.dir, 'lfs', 'objects'), { recursive: true }).filter((f) => String(f).length > 10)).toHaveLength(2);
    expect(garbage.sha256).toBe(sha256(compressible(100_000)));
    expect(await verifyArchive(a)).toEqual([]);
    // Damaged: the decompressed bytes no longer match the body's SHA-256 (or do not decompress).
    tamper(zst);
    await expect(readBack(a, loc)).rejects.toMatchObject({ code: 'BODY_CORRUPT' });
    expect(existsSync(zst)).toBe(false);
    // A well-formed zstd object of other bytes: it decompresses, and is refused by the body's SHA-256.
    const small = compressible(200_000);
    const smallCommit = await recordTag(a, 'small', [small]);
    const smallLoc = (await a.readRecording('small', smallCommit)).bodies.get(sha256(small))!;
    const other = Buffer.from(small);
    other[1000] ^= 1;
    writeFileSync(objectPath(a, smallLoc.lfsOid!), zstdCompressSync(other));
    await expect(a.readSmallBody(smallLoc)).rejects.toMatchObject({ code: 'BODY_CORRUPT', message: expect.stringMatching(/reads back with SHA-256/) });
    expect(existsSync(objectPath(a, smallLoc.lfsOid!))).toBe(false);
  });

  test('a damaged LFS object is caught by verify and by playback, and removed so a pull can fetch it again', async () => {
    const a = await lfsArchive();
    const big = randomBytes(5 * 1024 * 1024);
    const small = randomBytes(5000);
    const commit = await recordTag(a, 'v', [big, small]);
    const rec = await a.readRecording('v', commit);
    tamper(objectPath(a, sha256(big)));
    // Playback checks each 1 MiB part before sending it: the stream fails, no damaged byte completes it.
    await expect(readBack(a, rec.bodies.get(sha256(big))!)).rejects.toMatchObject({ code: 'BODY_CORRUPT' });
    expect(existsSync(objectPath(a, sha256(big)))).toBe(false);
    tamper(objectPath(a, sha256(small)));
    await expect(a.readSmallBody(rec.bodies.get(sha256(small))!)).rejects.toMatchObject({ code: 'BODY_CORRUPT' });
    const problems = await verifyArchive(a);
    expect(problems.map((p) => [p.code, p.sha256])).toEqual([
      ['BODY_MISSING', sha256(big)],
      ['BODY_MISSING', sha256(small)],
    ]);
    expect(problems[0].message).toMatch(/is missing from the archive's LFS store: run "btrfly verify --repair"/);
  });

  test('a damaged LFS object that cannot be moved aside (an archive this user may only read) is still said to be corrupt', async () => {
    const a = await lfsArchive();
    const small = randomBytes(5000);
    const commit = await recordTag(a, 'v', [small]);
    const loc = (await a.readRecording('v', commit)).bodies.get(sha256(small))!;
    tamper(objectPath(a, sha256(small)));
    // No folder can be made for what is set aside: a file stands where it would go.
    writeFileSync(join(a.dir, 'btrfly', 'damaged'), '');
    await expect(a.readSmallBody(loc)).rejects.toMatchObject({
      code: 'BODY_CORRUPT',
      message: expect.stringMatching(/^body [0-9a-f]{64} is corrupt: it reads back with SHA-256 [0-9a-f]{64}: it could not be moved out of the LFS store \(E[A-Z]+\), where every read refuses it: run /),
    });
    const problems = await verifyArchive(a);
    expect(problems.map((p) => [p.code, p.sha256])).toEqual([['BODY_CORRUPT', sha256(small)]]);
    expect(existsSync(objectPath(a, sha256(small)))).toBe(true);
  });

  test('verify hashes the whole object: a damaged object is found even without playback', async () => {
    const a = await lfsArchive();
    const body = randomBytes(3 * 1024 * 1024);
    await recordTag(a, 'v', [body]);
    tamper(objectPath(a, sha256(body)));
    const problems = await verifyArchive(a);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ code: 'BODY_CORRUPT', sha256: sha256(body) });
  });

  test('gc removes the LFS objects no tag reaches and keeps the rest', async () => {
    const a = await lfsArchive();
    const kept = randomBytes(5000);
    await recordTag(a, 'keep', [kept]);
    const garbage = await storeBody(a, randomBytes(7000));
    expect(existsSync(objectPath(a, garbage.sha256))).toBe(true);
    await gcArchive(a);
    expect(existsSync(objectPath(a, garbage.sha256))).toBe(false);
    expect(existsSync(objectPath(a, sha256(kept)))).toBe(true);
    expect(await verifyArchive(a)).toEqual([]);
  });

  test('migrate --lfs writes every recording again with pointers: same history, manifests and dates; bodies read back; gc frees git', async () => {
    const a = await tempArchive();
    const shared = randomBytes(9 * 1024 * 1024 + 5); // two parts in git mode
    const text = compressible(200_000); // zstd in git mode
    const first = await recordTag(a, 'app', [shared, text]);
    const second = await recordTag(a, 'app', [shared, randomBytes(100)]);
    await a.copyTag('app', 'copy', { rev: first });
    const before = await a.history('app');
    const manifests = await Promise.all(before.map((h) => git(a, 'show', `${h.commit}:manifest.json`)));
    const r = await migrateToLfs(a);
    expect(a.lfsMode).toBe(true);
    expect(r.bodies).toBe(3);
    expect(r.tags.map((t) => [t.tag, t.from, t.recordings])).toEqual([
      ['app', second, 2],
      ['copy', first, 0],
    ]);
    const after = await a.history('app');
    expect(after.map((h) => [h.date, h.summary])).toEqual(before.map((h) => [h.date, h.summary]));
    expect(after[0].parent).toBe(after[1].commit);
    expect(after[1].commit).not.toBe(first);
    // The copy of the first recording points at the same rewritten commit.
    expect(await a.resolveCommit('copy')).toBe(after[1].commit);
    // The same manifests, but for how each body is stored.
    for (const [i, h] of after.entries()) {
      const now = (await git(a, 'show', `${h.commit}:manifest.json`)).stdout;
      expect(now).toMatch(/"storage": "lfs",\n\s*"parts": 1\n/);
      expect(now.replace(/"storage": "lfs",\n(\s*)"parts": 1\n/g, '')).toBe(manifests[i].stdout.replace(/"storage": "\w+",\n(\s*)"parts": \d+\n/g, ''));
    }
    const rec = await a.readRecording('app', after[1].commit);
    for (const b of [shared, text]) {
      const loc = rec.bodies.get(sha256(b))!;
      expect(loc.lfs).toBe(true);
      expect((await readBack(a, loc)).equals(b)).toBe(true);
    }
    expect(existsSync(objectPath(a, sha256(shared)))).toBe(true);
    expect(await verifyArchive(a)).toEqual([]);
    // Again: nothing left to do.
    expect((await migrateToLfs(a)).tags.map((t) => t.recordings)).toEqual([0, 0]);
    await gcArchive(a);
    expect(await du(join(a.dir, 'objects'))).toBeLessThan(256 * 1024);
    expect(await verifyArchive(a)).toEqual([]);
    await gitFsck(a.dir);
    // New recordings of the migrated archive are LFS too.
    const third = await recordTag(a, 'app', [randomBytes(2000)]);
    expect((await git(a, 'ls-tree', '-r', '--name-only', third, 'bodies/')).stdout).toMatch(/\/lfs$/m);
  });

  test('a write that fails past the probe leaves no temp file, and the next body is stored', async () => {
    const a = await lfsArchive();
    const w = a.createBodyWriter();
    await new Promise<void>((resolve) => w.write(randomBytes(12 * 1024 * 1024), () => resolve()));
    const closed = new Promise((resolve) => w.once('close', resolve));
    w.on('error', () => undefined);
    w.destroy(new Error('client went away'));
    await expect(w.done).rejects.toThrow('client went away');
    await closed;
    expect(readdirSync(join(a.dir, 'lfs', 'tmp'))).toEqual([]);
    const next = randomBytes(3 * 1024 * 1024);
    const stored = await storeBody(a, next);
    expect(stored.sha256).toBe(sha256(next));
    expect(readFileSync(objectPath(a, sha256(next))).equals(next)).toBe(true);
  });

  test('init refuses a directory that holds an archive', async () => {
    const a = await lfsArchive();
    await expect(Archive.create(a.dir, { lfs: true })).rejects.toMatchObject({ code: 'CONFIG', message: expect.stringMatching(/is an archive \(Git LFS mode\) already/) });
  });
});
