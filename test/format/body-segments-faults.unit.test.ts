/**
 * Segment files (src/format/body-segments.ts) under attack and on a failing disk: entries named
 * `*.seg` that are no regular file, a damaged header followed by bytes full of magics, a full
 * disk under the appends. The reader must fall back (the body comes from git), never throw,
 * hang, or leak descriptors and files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, statfsSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { BodySegments, HEADER } from '../../src/format/body-segments';
import { registerCleanup, smallDisk, tmpDir } from '../helpers';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function segmentsWith(bodies: Buffer[]): { dir: string; name: string } {
  const dir = join(tmpDir(), 'segments');
  const w = new BodySegments(dir);
  for (const b of bodies) w.append(sha256(b), b);
  w.close();
  return { dir, name: readdirSync(dir)[0] };
}

describe('segment files that are no regular file, or hostile', () => {
  test('a directory named like a segment: reads, checks and gc go on (they failed with EISDIR)', () => {
    const body = randomBytes(3000);
    const { dir, name } = segmentsWith([body]);
    mkdirSync(join(dir, 'junk-a.seg'));
    mkdirSync(join(dir, 'junk-b.seg'));
    const r = new BodySegments(dir);
    registerCleanup(() => r.close());
    expect(r.read(sha256(body), body.length)!.equals(body)).toBe(true);
    expect(r.check(sha256(randomBytes(8)), 8)).toBe('absent');
    expect(() => r.compact(new Set([sha256(body)]))).not.toThrow();
    expect(readdirSync(dir).filter((n) => !n.startsWith('junk-'))).toHaveLength(1);
    expect(readdirSync(dir)).toContain(name); // a whole segment with nothing to merge with stays
    const again = new BodySegments(dir);
    registerCleanup(() => again.close());
    expect(again.read(sha256(body), body.length)!.equals(body)).toBe(true);
  });

  test('a symbolic link named like a segment is not followed: a bad record behind it is not "dropped" in the file it points to', () => {
    const body = randomBytes(3000);
    const { dir, name } = segmentsWith([body]);
    // The link points outside the archive, at a copy of the segment whose body bytes are wrong.
    const outside = join(tmpDir(), 'not-the-archive');
    const bytes = readFileSync(join(dir, name));
    bytes[HEADER + 10] ^= 0xff;
    writeFileSync(outside, bytes);
    const before = Buffer.from(bytes);
    writeFileSync(join(dir, name), ''); // the real segment is empty now
    symlinkSync(outside, join(dir, 'p3-link.seg'));
    const r = new BodySegments(dir);
    registerCleanup(() => r.close());
    expect(r.read(sha256(body), body.length)).toBeUndefined();
    expect(readFileSync(outside).equals(before)).toBe(true);
  });

  test('a damaged header: the records after it are still found, past magics in its body and across the search\'s chunks', () => {
    const tricky = Buffer.concat([randomBytes(65_530), Buffer.from('BtSxBtS1BtSx'), randomBytes(70_000), Buffer.alloc(4096, 'BtS1')]);
    const after = [randomBytes(100), randomBytes(5000), randomBytes(0)];
    const { dir, name } = segmentsWith([tricky, ...after]);
    const path = join(dir, name);
    const bytes = readFileSync(path);
    bytes[20] ^= 1; // in the first record's SHA-256: its CRC no longer checks out
    writeFileSync(path, bytes);
    const r = new BodySegments(dir);
    registerCleanup(() => r.close());
    expect(r.read(sha256(tricky), tricky.length)).toBeUndefined();
    for (const b of after) expect(r.read(sha256(b), b.length)!.equals(b)).toBe(true);
  });

  test('a damaged header followed by a megabyte of magics: the scan is linear (it was quadratic: minutes for this)', () => {
    const body = randomBytes(2000);
    const { dir } = segmentsWith([body]);
    const h = Buffer.alloc(HEADER);
    h.write('BtS1');
    h.writeUInt32BE(5, 4); // and a CRC that does not match
    writeFileSync(join(dir, 'p4-0.seg'), Buffer.concat([h, Buffer.alloc(512 * 1024, 'BtSx'), Buffer.alloc(512 * 1024, 'BtS1')]));
    const r = new BodySegments(dir);
    registerCleanup(() => r.close());
    const cpu = process.cpuUsage();
    expect(r.read(sha256(body), body.length)!.equals(body)).toBe(true);
    const { user, system } = process.cpuUsage(cpu);
    // Linear takes milliseconds here, quadratic took minutes: a bound far from both.
    expect((user + system) / 1e6).toBeLessThan(5);
  });
});

/** Bytes this process has read by system calls (the kernel's count). */
const bytesRead = (): number => Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);

test('damaged bytes at a segment\'s end are searched once, not again by every rescan of a miss', () => {
  const body = randomBytes(1000);
  const { dir, name } = segmentsWith([body]);
  writeFileSync(join(dir, name), Buffer.concat([readFileSync(join(dir, name)), Buffer.from('BtS1'), Buffer.alloc(16 * 1024 * 1024)]));
  const r = new BodySegments(dir);
  registerCleanup(() => r.close());
  expect(r.read(sha256(body), body.length)!.equals(body)).toBe(true); // the first scan searched the damage
  // A second later (a rescan is allowed once a second), a body the cache does not hold.
  const now = Date.now();
  jest.spyOn(Date, 'now').mockReturnValue(now + 2000);
  const before = bytesRead();
  expect(r.read(sha256(randomBytes(8)), 8)).toBeUndefined();
  const bytes = bytesRead() - before;
  jest.restoreAllMocks();
  expect(bytes).toBeLessThan(1024 * 1024); // it read the 16 MiB again
  // A record appended after the damage is still found.
  const later = randomBytes(300);
  const w = new BodySegments(dir);
  w.append(sha256(later), later);
  w.close();
  jest.spyOn(Date, 'now').mockReturnValue(now + 4000);
  const again = new BodySegments(dir);
  registerCleanup(() => again.close());
  expect(again.read(sha256(later), later.length)!.equals(later)).toBe(true);
  jest.restoreAllMocks();
});

describe('many segments', () => {
  test('a reader of 300 segments (no gc for a while) keeps a bounded number of descriptors open, and reads every body', () => {
    const dir = join(tmpDir(), 'segments');
    const bodies = Array.from({ length: 300 }, () => randomBytes(200));
    for (const b of bodies) {
      const w = new BodySegments(dir); // one process each
      w.append(sha256(b), b);
      w.close();
    }
    expect(readdirSync(dir)).toHaveLength(300);
    const fds = readdirSync('/proc/self/fd').length;
    const r = new BodySegments(dir);
    registerCleanup(() => r.close());
    for (const b of bodies) expect(r.read(sha256(b), b.length)!.equals(b)).toBe(true);
    // One per segment for the life of the process ran out of descriptors (EMFILE for the proxy's connections).
    expect(readdirSync('/proc/self/fd').length - fds).toBeLessThanOrEqual(64);
    for (const b of bodies.slice(0, 10)) expect(r.read(sha256(b), b.length)!.equals(b)).toBe(true);
  });

  test('a segment gc deleted after the index was built is no damage: check does not report the body removed, nor drops its new record', () => {
    const dir = join(tmpDir(), 'segments');
    const bodies = Array.from({ length: 100 }, () => randomBytes(200));
    for (const b of bodies) {
      const w = new BodySegments(dir);
      w.append(sha256(b), b);
      w.close();
    }
    const verify = new BodySegments(dir);
    registerCleanup(() => verify.close());
    expect(verify.has(sha256(bodies[0]))).toBe(true); // indexed; its segment no longer held open (100 > 64)
    const gc = new BodySegments(dir);
    registerCleanup(() => gc.close());
    expect(gc.compact(new Set(bodies.map(sha256)))).toBe(0);
    expect(readdirSync(dir)).toHaveLength(1);
    // Its segment is gone, its bytes are good in the new one: 'removed' made verify report damage.
    expect(verify.check(sha256(bodies[0]), bodies[0].length)).not.toBe('removed');
    const after = new BodySegments(dir);
    registerCleanup(() => after.close());
    for (const b of bodies) expect(after.read(sha256(b), b.length)!.equals(b)).toBe(true);
  });
});

const missing = [process.getuid?.() === 0 ? '' : 'root', ...['unshare', 'mount'].filter((c) => !onPath(c))].filter(Boolean);
const describeDiskFull = missing.length === 0 || process.env.CI ? describe : describe.skip;

describeDiskFull('appends on a full disk', () => {
  /** A 1 MiB tmpfs, as this process sees it. */
  let seen: string;

  beforeAll(async () => {
    if (missing.length) throw new Error(`the disk-full tests need ${missing.join(', ')}`);
    ({ seen } = await smallDisk('1m'));
  });

  test('every failed append leaves no file and no descriptor behind; with room again, appends go on in the same segment', () => {
    const dir = join(seen, 'segments');
    const w = new BodySegments(dir);
    registerCleanup(() => w.close());
    const first = randomBytes(4000);
    w.append(sha256(first), first);
    const fd = openSync(join(seen, 'filler'), 'w');
    try {
      for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 1));
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    const fds = readdirSync('/proc/self/fd').length;
    let failed = 0;
    for (let i = 0; i < 200; i++) {
      const b = randomBytes(8000);
      try {
        w.append(sha256(b), b);
      } catch {
        failed++;
      }
    }
    expect(failed).toBe(200);
    expect(readdirSync(dir)).toHaveLength(1); // it was 201 segment files
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fds); // and 200 descriptors
    ftruncateSync(fd, 0);
    closeSync(fd);
    const later = randomBytes(4000);
    w.append(sha256(later), later);
    expect(readdirSync(dir)).toHaveLength(1);
    const r = new BodySegments(dir);
    registerCleanup(() => r.close());
    expect(r.read(sha256(first), first.length)!.equals(first)).toBe(true);
    expect(r.read(sha256(later), later.length)!.equals(later)).toBe(true);
    expect(existsSync(join(seen, 'filler'))).toBe(true);
  });
});

describe('gc of segments copies only what it must', () => {
  const segmentOf = (dir: string, bodies: Buffer[]): string => {
    const before = new Set(existsSync(dir) ? readdirSync(dir) : []);
    const w = new BodySegments(dir);
    for (const b of bodies) w.append(sha256(b), b);
    w.close();
    return readdirSync(dir).find((n) => !before.has(n))!;
  };
  const readsAll = (dir: string, bodies: Buffer[]): boolean => {
    const r = new BodySegments(dir);
    try {
      return bodies.every((b) => r.read(sha256(b), b.length)?.equals(b) === true);
    } finally {
      r.close();
    }
  };

  test('a large segment of kept bodies is left as it is while a wasteful one beside it is rewritten (gc rewrote the whole cache)', () => {
    const dir = join(tmpDir(), 'segments');
    const large = Array.from({ length: 33 }, () => randomBytes(1024 * 1024));
    const big = segmentOf(dir, large);
    const [kept, unkept] = [randomBytes(5000), randomBytes(5000)];
    const small = segmentOf(dir, [kept, unkept]);
    const before = statSync(join(dir, big));
    const gc = new BodySegments(dir);
    registerCleanup(() => gc.close());
    expect(gc.compact(new Set([...large, kept].map(sha256)))).toBe(1);
    const after = statSync(join(dir, big));
    expect([after.ino, after.mtimeMs, after.size]).toEqual([before.ino, before.mtimeMs, before.size]);
    expect(readdirSync(dir)).not.toContain(small);
    expect(readdirSync(dir)).toHaveLength(2);
    expect(readsAll(dir, [...large, kept])).toBe(true);
    expect(readsAll(dir, [unkept])).toBe(false);
  });

  test('damaged bytes between two records: gc rewrites the segment without them (it kept them for ever)', () => {
    const dir = join(tmpDir(), 'segments');
    const bodies = [randomBytes(3000), randomBytes(3000), randomBytes(3000)];
    const name = segmentOf(dir, bodies);
    const fd = openSync(join(dir, name), 'r+');
    writeSync(fd, Buffer.from('XXXX'), 0, 4, HEADER + 3000); // the second record's magic
    closeSync(fd);
    const gc = new BodySegments(dir);
    registerCleanup(() => gc.close());
    gc.compact(new Set(bodies.map(sha256)));
    const names = readdirSync(dir);
    expect(names).toHaveLength(1);
    expect(names[0]).not.toBe(name);
    expect(statSync(join(dir, names[0])).size).toBe(2 * (HEADER + 3000));
    expect(readsAll(dir, [bodies[0], bodies[2]])).toBe(true);
  });

  describeDiskFull('on a full disk', () => {
    test('a segment with nothing to keep is deleted without a write, so gc frees space (it failed with ENOSPC and freed nothing)', async () => {
      if (missing.length) throw new Error(`the disk-full tests need ${missing.join(', ')}`);
      const { seen } = await smallDisk('2m');
      const dir = join(seen, 'segments');
      const dropped = Array.from({ length: 5 }, () => randomBytes(100_000));
      const gone = segmentOf(dir, dropped);
      const keptBodies = [randomBytes(100_000), randomBytes(100_000)];
      const stays = segmentOf(dir, keptBodies);
      const fd = openSync(join(seen, 'filler'), 'w');
      try {
        for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 1));
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
      const gc = new BodySegments(dir);
      registerCleanup(() => gc.close());
      expect(gc.compact(new Set(keptBodies.map(sha256)))).toBe(5);
      expect(readdirSync(dir)).toEqual([stays]);
      expect(readdirSync(dir)).not.toContain(gone);
      expect(readsAll(dir, keptBodies)).toBe(true);
      expect(statfsSync(seen).bavail).toBeGreaterThan(0);
    });
  });
});
