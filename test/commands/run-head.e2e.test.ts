/**
 * `curl -I` (HEAD) through record and playback: the played-back answer carries the size the
 * origin gave (its Content-Length), not the 0 bytes of a HEAD's empty body. Tools ask HEAD for
 * a file's size before they download it or to check a mirror.
 */
import { join } from 'node:path';
import { runCli, startOrigin, tmpDir, type Origin } from '../helpers';

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin({ https: true });
});

/** The Content-Length of a `curl -sSI` answer. */
function contentLength(stdout: string): string | undefined {
  return /^content-length: *(\d+)\r?$/im.exec(stdout)?.[1];
}

test('HEAD plays back with the recorded Content-Length', async () => {
  const archive = join(tmpDir(), 'archive');
  const url = origin.urlFor('/gen/123456?seed=9', 'origin.test');
  const rec = await runCli(['run', '--record', '--tag=head', '--archive', archive, '--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`, '--', 'curl', '-sSI', url]);
  expect(rec.code).toBe(0);
  expect(contentLength(rec.stdout)).toBe('123456');
  await origin.close();
  const play = await runCli(['run', '--playback', '--tag=head', '--archive', archive, '--', 'curl', '-sSI', url]);
  expect(play.stderr).toMatch(/1 hits, 0 misses/);
  expect(play.code).toBe(0);
  expect(contentLength(play.stdout)).toBe('123456');
});
