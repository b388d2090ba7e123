/**
 * `npm run bench` in miniature: every section runs once with tiny sizes and `--no-write`
 * (BENCHMARKS.md and the chart are left alone), against the same real references as the
 * full run (nginx, curl, mitmdump, dnsperf from .ci/packages.txt), and prints its table.
 * The figures themselves are not checked: at these sizes they measure start-up, not speed.
 */
import { PROJECT_ROOT, run, tmpDir } from './helpers';
import { join } from 'node:path';

const SECTIONS: Array<[name: string, heading: string]> = [
  ['archive', '## Archive'],
  ['large', '## Large body'],
  ['small', '## Small files'],
  ['mitmproxy', '## mitmproxy'],
  ['memory', '## Memory'],
  ['transfer', '## Push and pull'],
  ['dns', '## DNS'],
  ['startup', '## Startup'],
  ['isolate', '## Isolated runs'],
];

test('every bench section runs with tiny sizes and prints a table of figures', async () => {
  const tiny = ['--size-mib', '2', '--files', '40', '--sizes-mib', '1', '--seconds', '1', '--entries', '50'];
  const res = await run(process.execPath, [join(PROJECT_ROOT, 'dist', 'bench', 'main.js'), ...SECTIONS.map(([n]) => n), '--runs', '1', '--no-write', '--work-dir', tmpDir('btrfly-bench-smoke-'), ...tiny], {
    // 58 s for seven sections on a quiet machine; the headroom is for a shared one.
    timeoutMs: 240_000,
  });
  expect(res.stderr).not.toMatch(/failed|Error/);
  expect(res.code).toBe(0);
  for (const [name, heading] of SECTIONS) {
    const block = res.stdout.slice(res.stdout.indexOf(heading));
    expect({ name, found: block.startsWith(heading) }).toEqual({ name, found: true });
    // A table: header, separator, at least one row of figures.
    expect(block).toMatch(/\n\| [^\n]+\|\n\| --- [^\n]+\n\| [^\n]*\d[^\n]*\|\n/);
    expect(res.stdout).toContain(`(section ${name}: `);
  }
  expect(res.stdout).toContain('load average');
}, 250_000);
