/**
 * `npm run bench` in miniature, first half: btrfly's own sections, each run once with tiny
 * sizes and `--no-write` (BENCHMARKS.md and the chart are left alone), against the same real
 * references as the full run (nginx, curl, dnsperf from .ci/packages.txt), each printing its
 * table. The figures themselves are not checked: at these sizes they measure start-up, not
 * speed. The sections with peer tools are in bench-smoke-peers.e2e.
 */
import { benchSmoke } from './helpers/bench-smoke';

test('btrfly\'s own bench sections run with tiny sizes and print a table of figures', async () => {
  await benchSmoke(
    [
      ['archive', '## Archive'],
      ['large', '## Large body'],
      ['small', '## Small files'],
      ['memory', '## Memory'],
      ['transfer', '## Push and pull'],
      ['lfs', '## Git LFS mode'],
      ['dns', '## DNS'],
      ['startup', '## Startup'],
    ],
    // About 60 s on a quiet machine; the headroom is for a shared one.
    240_000,
  );
}, 250_000);
