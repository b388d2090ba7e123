import { randomBytes } from 'node:crypto';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Archive } from '../../src/format/archive';
import { gitFsck, run, tmpDir } from '../helpers';
import { compressible, entryFor, readBack, sha256, storeBody, tempArchive } from './storage-helpers';
import { beginRecording, sealPending } from '../../src/format/recording-writer';
import { gcArchive, storageStats, verifyArchive } from '../../src/format/archive-maintenance';

const git = (a: Archive, ...args: string[]) => run('git', ['--git-dir', a.dir, ...args]);
const diskUsage = async (a: Archive) => Number((await run('du', ['-sb', join(a.dir, 'objects')])).stdout.split('\t')[0]);

async function recordTag(a: Archive, tag: string, bodies: Buffer[], opts: { append?: boolean; prefix?: string } = {}): Promise<string> {
  const w = await beginRecording(a, tag, { append: opts.append, session: `test-${tag}` });
  for (const [i, b] of bodies.entries()) {
    const stored = await storeBody(a, b);
    await w.addEntry(entryFor(`https://example.test/${opts.prefix ?? 'f'}${i}`, stored), [{ name: 'Date', value: `day ${i}`, index: 1 }], stored);
  }
  return (await w.seal()).commit;
}

describe('archive', () => {
  test('opening a missing archive says how to get one; a non-git directory is refused', async () => {
    const dir = tmpDir();
    await expect(Archive.open(join(dir, 'none'))).rejects.toMatchObject({
      code: 'ARCHIVE_NOT_FOUND',
      message: `no archive at ${join(dir, 'none')}: record a tag first or pass --archive`,
    });
    await writeFile(join(dir, 'file'), 'x');
    await expect(Archive.open(dir)).rejects.toMatchObject({ code: 'ARCHIVE_INVALID' });
  });

  test('a sealed recording is a commit on the tag; a re-recording is its child', async () => {
    const a = await tempArchive();
    const bodies = [randomBytes(1000), compressible(50_000)];
    const first = await recordTag(a, 'build', bodies);
    const rec = await a.readRecording('build', first);
    expect(rec.manifest.entries.map((e) => e.request.url)).toEqual(['https://example.test/f0', 'https://example.test/f1']);
    expect(rec.volatile.entries['GET https://example.test/f0 #0']).toEqual([{ name: 'Date', value: 'day 0', index: 1 }]);
    for (const b of bodies) expect((await readBack(a, rec.bodies.get(sha256(b))!)).equals(b)).toBe(true);
    expect((await git(a, 'ls-tree', '--name-only', first)).stdout.split('\n').filter(Boolean)).toEqual(['.gitattributes', 'bodies', 'manifest.json', 'packages.lock', 'volatile.json']);

    const second = await recordTag(a, 'build', [randomBytes(10)]);
    const log = await a.history('build');
    expect(log.map((h) => h.commit)).toEqual([second, first]);
    expect(log[0].parent).toBe(first);
    expect(log[0].summary).toBe('record build: 1 entries');
    expect(await a.resolveCommit('build', first.slice(0, 7))).toBe(first);
    expect((await a.listTags()).map((t) => [t.tag, t.commit])).toEqual([['build', second]]);
    await expect(a.resolveCommit('nope')).rejects.toMatchObject({
      code: 'TAG_NOT_FOUND',
      message: `tag "nope" not found in archive ${a.dir}: run "btrfly tags" to list tags`,
    });
    await expect(a.resolveCommit('build', 'abcdef1')).rejects.toMatchObject({ code: 'REV_NOT_FOUND' });
    await gitFsck(a.dir);
  });

  test('append keeps the previous entries and rules, adds new ones', async () => {
    const a = await tempArchive();
    const w = await beginRecording(a, 't');
    const b0 = await storeBody(a, Buffer.from('zero'));
    await w.addEntry(entryFor('https://example.test/0', b0), [], b0);
    await w.setRules([{ host: 'example.test', ignoreQuery: ['_'] }]);
    await w.seal();
    const w2 = await beginRecording(a, 't', { append: true });
    expect(w2.rules()).toEqual([{ host: 'example.test', ignoreQuery: ['_'] }]);
    const b1 = await storeBody(a, Buffer.from('one'));
    await w2.addEntry(entryFor('https://example.test/1', b1), [], b1);
    const { commit } = await w2.seal();
    const rec = await a.readRecording('t', commit);
    expect(rec.manifest.entries.map((e) => e.request.url)).toEqual(['https://example.test/0', 'https://example.test/1']);
    expect(rec.manifest.rules).toEqual([{ host: 'example.test', ignoreQuery: ['_'] }]);
    expect((await readBack(a, rec.bodies.get(b0.sha256)!)).toString()).toBe('zero');
    await gitFsck(a.dir);
  });

  test('the same bodies under a second tag grow the archive by almost nothing', async () => {
    const a = await tempArchive();
    const bodies = [randomBytes(3 << 20), randomBytes(200_000), compressible(1 << 20)];
    await recordTag(a, 'one', bodies);
    const before = await diskUsage(a);
    await recordTag(a, 'two', bodies);
    const growth = (await diskUsage(a)) - before;
    expect(before).toBeGreaterThan(3 << 20);
    expect(growth).toBeLessThan(16 * 1024); // a manifest, a volatile file, trees and a commit
    const stats = await storageStats(a);
    expect(stats.get('one')).toBeGreaterThan(3 << 20);
    await gitFsck(a.dir);
  });

  test('a second recorder of a tag is refused, in this process and in another; abandon leaves the tag', async () => {
    const a = await tempArchive();
    const base = await recordTag(a, 'busy', [Buffer.from('x')]);
    const w = await beginRecording(a, 'busy', { session: 'sess-1' });
    await expect(beginRecording(a, 'busy', { session: 'sess-2' })).rejects.toMatchObject({
      code: 'TAG_BUSY',
      message: expect.stringMatching(/^tag "busy" is already being recorded \(session sess-1, pid \d+ on .*\): stop it first or pick another tag$/),
    });
    // Another process: a plain node child that opens the same archive.
    const script = `require(${JSON.stringify(join(__dirname, 'storage-ts-register.js'))});
      const { Archive } = require(${JSON.stringify(join(__dirname, '../../src/format/archive.ts'))});
      const { beginRecording } = require(${JSON.stringify(join(__dirname, '../../src/format/recording-writer.ts'))});
      Archive.open(process.argv[1]).then((a) => beginRecording(a, 'busy')).then(() => process.exit(0), (e) => { console.error(e.code + ': ' + e.message); process.exit(1); });`;
    const other = await run(process.execPath, ['-e', script, a.dir]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('TAG_BUSY: tag "busy" is already being recorded (session sess-1');
    const stored = await storeBody(a, Buffer.from('y'));
    await w.addEntry(entryFor('https://example.test/y', stored), [], stored);
    await w.abandon();
    expect(await a.resolveCommit('busy')).toBe(base);
    expect(await a.pendingRecordings()).toEqual([]);
    await (await beginRecording(a, 'busy')).abandon(); // free again
    await gitFsck(a.dir);
  });

  test('verify finds a body whose stored bytes were damaged', async () => {
    const a = await tempArchive();
    // Larger than a small body, so that it is a loose object (small bodies go into packs).
    const good = randomBytes(300 * 1024);
    await recordTag(a, 'v', [good, Buffer.from('fine')]);
    expect(await verifyArchive(a)).toEqual([]);
    const loc = (await a.readRecording('v', await a.resolveCommit('v'))).bodies.get(sha256(good))!;
    const oid = loc.parts[0].oid;
    // Disk damage: the loose object's file now holds another blob of the same size.
    const other = await storeBody(a, randomBytes(300 * 1024));
    const otherOid = (await a.locateBody(other)).parts[0].oid;
    const path = (o: string) => join(a.dir, 'objects', o.slice(0, 2), o.slice(2));
    await run('chmod', ['u+w', path(oid)]);
    await copyFile(path(otherOid), path(oid));
    const problems = await verifyArchive(a);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ tag: 'v', code: 'BODY_CORRUPT', sha256: sha256(good) });
    await expect(gitFsck(a.dir)).rejects.toThrow(/not clean/);
  });

  test('gc keeps what tags and pending recordings reach and drops the rest', async () => {
    const a = await tempArchive();
    const kept = randomBytes(5000);
    await recordTag(a, 'keep', [kept]);
    const w = await beginRecording(a, 'crashed', { session: 's' });
    const pendingBody = await storeBody(a, randomBytes(6000));
    await w.addEntry(entryFor('https://example.test/p', pendingBody), [], pendingBody);
    // Keep the journal as a crashed writer would leave it, then let the writer go.
    await copyFile(a.journalPath(w.id), a.journalPath('crash-1'));
    await w.abandon();
    const garbage = await a.locateBody(await storeBody(a, randomBytes(7000)));
    await gcArchive(a);
    expect((await git(a, 'cat-file', '-e', garbage.parts[0].oid)).code).not.toBe(0);
    expect(await verifyArchive(a)).toEqual([]);
    expect((await git(a, 'cat-file', '-e', (await a.locateBody(pendingBody)).parts[0].oid)).code).toBe(0);
    expect((await a.pendingRecordings()).map((p) => [p.id, p.tag, p.entries])).toEqual([['crash-1', 'crashed', 1]]);
    const commit = await sealPending(a, 'crash-1');
    const rec = await a.readRecording('crashed', commit);
    expect(rec.manifest.entries).toHaveLength(1);
    expect(await verifyArchive(a)).toEqual([]);
    expect(await a.pendingRecordings()).toEqual([]);
    await gitFsck(a.dir);
  });
});
