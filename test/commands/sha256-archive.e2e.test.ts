/**
 * An archive that is a SHA-256 git repository (`git init --bare --object-format=sha256`, or a
 * clone of one): small bodies (fast-import packs) and a body of many parts record, verify and
 * play back byte for byte, as in a SHA-1 archive. A new tag's ref was once moved with the
 * SHA-1 zero id as "must not exist", which git refuses in such an archive, so every record
 * failed with "tag changed while the recording was being sealed".
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bodyPartOid, damageObject, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});

test('a SHA-256 archive records small and large bodies, verifies them, and plays them back byte for byte', async () => {
  const archive = join(tmpDir(), 'archive');
  execFileSync('git', ['init', '--quiet', '--bare', '--object-format=sha256', archive]);
  const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
  const paths = ['/gen/0?seed=a', '/gen/5000?seed=b', `/gen/${256 * 1024}?seed=c`, `/gen/${9 * 1024 * 1024}?seed=d`];
  // The client prints each body's SHA-256, so the record and the playback can be compared.
  const script = paths.map((p) => `curl -sf '${origin.urlFor(p, 'origin.test')}' | sha256sum`).join('; ');
  const rec = await runCli(['run', '--record', '--tag=app', ...up, '--', 'sh', '-c', script]);
  expect(rec.stderr).toMatch(/^btrfly: recorded tag "app" \(recording [0-9a-f]{12}\): 4 requests, 4 entries, /m);
  expect(rec.code).toBe(0);
  expect(execFileSync('git', ['--git-dir', archive, 'rev-parse', 'refs/heads/app'], { encoding: 'utf8' }).trim()).toMatch(/^[0-9a-f]{64}$/);
  // The origin runs in this process: fetched without blocking it.
  const fetchDirect = async (p: string) => (await promisify(execFile)('curl', ['-sf', origin.url + p], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;
  const direct = await Promise.all(paths.map(async (p) => createHash('sha256').update(await fetchDirect(p)).digest('hex')));
  expect(rec.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0])).toEqual(direct);

  expect(await runCli(['verify', '--archive', archive])).toMatchObject({ code: 0, stdout: 'ok: 1 tags, 1 recordings, 4 bodies (9.3 MiB) checked\n' });
  await origin.resetStats();
  const play = await runCli(['run', '--playback', '--tag=app', ...up, '--', 'sh', '-c', script]);
  expect(play.code).toBe(0);
  expect(play.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0])).toEqual(direct);
  expect(play.stderr).toMatch(/4 requests, [\d.]+ MiB, 4 hits, 0 misses/);
  expect((await origin.stats()).total).toBe(0);

  // A damaged small body (in a fast-import pack, SHA-256 ids) is set aside by verify --repair, and a re-recording stores it again.
  const small = createHash('sha256').update(await fetchDirect(paths[1])).digest('hex');
  damageObject(archive, bodyPartOid(archive, 'app', small), 100);
  const repair = await runCli(['verify', '--repair', '--archive', archive]);
  expect(repair.stderr).toMatch(/^repair: set aside 1 damaged object \(1 from packs\) in btrfly\/damaged\/\S+$/m);
  expect(repair.code).toBe(1);
  expect((await runCli(['run', '--record', '--tag=app', ...up, '--', 'sh', '-c', script])).code).toBe(0);
  expect(await runCli(['verify', '--archive', archive])).toMatchObject({ code: 0, stdout: 'ok: 1 tags, 2 recordings, 4 bodies (9.3 MiB) checked\n' });
});
