import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packWhole, smallParts } from '../../src/format/body-writer';
import { tmpDir } from '../helpers';
import { compressible } from './storage-helpers';

describe('small-part worker', () => {
  test('makes the same choice and the same bytes as packWhole: zstd when it saves 5 %, raw when the first 4 KiB do not shrink', async () => {
    const bodies = {
      empty: Buffer.alloc(0),
      tiny: compressible(100),
      textUnderProbe: compressible(3000),
      json: compressible(40_000),
      random: randomBytes(30_000),
      randomHead: Buffer.concat([randomBytes(4096), compressible(60_000)]),
      textHeadRandomTail: Buffer.concat([compressible(4096), randomBytes(60_000)]),
    };
    for (const [name, body] of Object.entries(bodies)) {
      const want = packWhole(body);
      const got = await smallParts.prepare(body);
      expect({ name, zstd: got.zstd }).toEqual({ name, zstd: want.zstd });
      expect(got.bytes.equals(want.bytes)).toBe(true);
      expect(await got.cached).toBe(false);
    }
    expect((await smallParts.prepare(bodies.json)).zstd).toBe(true);
    expect((await smallParts.prepare(bodies.randomHead)).zstd).toBe(false);
  });

  test('makes a cache entry as one file renamed into place; one it cannot make is reported and leaves nothing behind', async () => {
    const dir = tmpDir('btrfly-small-part-');
    const body = randomBytes(20_000);
    const made = await smallParts.prepare(body, { file: join(dir, 'tmp', 'p1-stage'), target: join(dir, 'ab', 'abcd') });
    expect(await made.cached).toBe(true);
    expect((await readFile(join(dir, 'ab', 'abcd'))).equals(body)).toBe(true);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);

    await mkdir(join(dir, 'blocked'));
    await writeFile(join(dir, 'blocked', 'cd'), 'a file where the prefix directory should be');
    const refused = await smallParts.prepare(body, { file: join(dir, 'tmp', 'p1-other'), target: join(dir, 'blocked', 'cd', 'cdef') });
    expect(await refused.cached).toBe(false);
    expect(existsSync(join(dir, 'tmp', 'p1-other'))).toBe(false);
  });
});
