/**
 * The proxy's Prometheus metrics name a played-back answer that was broken off because its body
 * failed its check `corrupt`, not `error` (issue 12.1's integrity check, counted as the service's
 * `/metrics` counts it). A real runtime records a 3 MiB body and a small one with curl; one byte
 * of the big body's third MiB is flipped in its git object (the cache removed, so no intact copy
 * heals it); playback with curl: the big answer is cut after its head, the small one is a hit.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceMetrics } from '../../src/engine/service/metrics';
import { Runtime } from '../../src/engine/session/runtime';
import { Archive } from '../../src/format/archive';
import { bodyPartOid, damageLooseObject, genBodySha256, run, startOrigin, tmpDir, type Origin } from '../helpers';

const BIG = 3 * 1024 * 1024 + 12_345;
const FLIP_AT = 2 * 1024 * 1024 + 4321;

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});
afterAll(() => origin.close());

/** A runtime on the archive at `dir` whose responses are counted by `metrics`, as `btrfly serve` counts them. */
async function runtimeWithMetrics(dir: string, configDir: string): Promise<{ runtime: Runtime; metrics: ServiceMetrics; archive: Archive }> {
  const archive = await Archive.open(dir, { create: true });
  // Assigned once the runtime exists; the metrics' status callback, made before it, reads it later.
  // eslint-disable-next-line prefer-const
  let runtime: Runtime | undefined;
  const metrics = new ServiceMetrics(() => runtime?.status() ?? []);
  runtime = await Runtime.start({ archive, configDir, upstream: { resolve: [`metrics.test:${origin.host}`] }, onResponse: metrics.onResponse });
  return { runtime, metrics, archive };
}


test('a body that fails its check mid-answer is counted as corrupt, not error', async () => {
  const dir = join(tmpDir('btrfly-metrics-'), 'archive');
  const configDir = tmpDir('btrfly-metrics-config-');
  const rec = await runtimeWithMetrics(dir, configDir);
  const opened = await rec.runtime.openSession({ tag: 'm', mode: 'record' });
  for (const path of [`/gen/${BIG}?seed=m`, '/gen/5000?seed=s']) {
    const r = await run('curl', ['-sSf', '-o', '/dev/null', '-x', opened.proxyUrl!, origin.urlFor(path, 'metrics.test')]);
    expect(r.code).toBe(0);
  }
  await rec.runtime.closeSession(opened.info.id);
  await rec.runtime.close();
  await rec.archive.close();

  const bigSha = await genBodySha256(BIG, 'm');
  rmSync(join(dir, 'btrfly', 'cache'), { recursive: true, force: true });
  damageLooseObject(dir, bodyPartOid(dir, 'm', bigSha), FLIP_AT);

  const play = await runtimeWithMetrics(dir, configDir);
  try {
    const session = await play.runtime.openSession({ tag: 'm', mode: 'playback' });
    const big = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '-x', session.proxyUrl!, origin.urlFor(`/gen/${BIG}?seed=m`, 'metrics.test')]);
    // The head went out (200), then the transfer was broken off before its end.
    expect(big.code).not.toBe(0);
    const [status, got] = big.stdout.split(' ').map(Number);
    expect(status).toBe(200);
    expect(got).toBeLessThan(BIG);
    const small = await run('curl', ['-sSf', '-x', session.proxyUrl!, origin.urlFor('/gen/5000?seed=s', 'metrics.test')]);
    expect(small.code).toBe(0);
    const result = await play.runtime.closeSession(session.info.id);
    expect(result.damaged).toEqual([expect.objectContaining({ sha256: bigSha, code: 'BODY_CORRUPT' })]);

    const text = await play.metrics.text();
    expect(text).toContain('btrfly_requests_total{mode="playback",outcome="corrupt"} 1\n');
    expect(text).toContain('btrfly_requests_total{mode="playback",outcome="hit"} 1\n');
    expect(text).not.toMatch(/outcome="error"/);
  } finally {
    await play.runtime.close();
    await play.archive.close();
  }
}, 120_000);
