/**
 * An HTTP/1.0 client over HTTPS (`curl --http1.0`, which offers only `http/1.0` in ALPN) is
 * recorded and played back like any other: btrfly's TLS front selects `http/1.0` instead of
 * ending the handshake with a `no_application_protocol` alert, which curl reported as
 * "tlsv1 alert no application protocol" (exit 35) in record and playback alike.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startOrigin, testCa, tmpDir } from '../helpers';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('curl --http1.0 over HTTPS records and plays back the same bytes', async () => {
  const origin = await startOrigin({ https: true });
  const dir = tmpDir();
  const archive = join(dir, 'archive');
  const url = origin.urlFor('/gen/70000?seed=10', 'origin.test');
  const fetch = (out: string) => ['--', 'curl', '-sS', '--http1.0', '-o', join(dir, out), url];
  const upstream = ['--resolve', 'origin.test:127.0.0.1', '--upstream-ca', testCa().caPath];

  const rec = await runCli(['run', '--record', '--tag=h10', '--archive', archive, ...upstream, ...fetch('rec.bin')]);
  expect(rec.stderr).not.toMatch(/no application protocol/);
  expect(rec.code).toBe(0);
  await origin.close();

  const play = await runCli(['run', '--playback', '--tag=h10', '--archive', archive, ...fetch('play.bin')]);
  expect(play.stderr).toMatch(/1 hits, 0 misses/);
  expect(play.code).toBe(0);
  const recorded = readFileSync(join(dir, 'rec.bin'));
  expect(recorded.length).toBe(70000);
  expect(sha256(readFileSync(join(dir, 'play.bin')))).toBe(sha256(recorded));
});
