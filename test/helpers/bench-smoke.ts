import { join } from 'node:path';
import { PROJECT_ROOT } from './cli';
import { run } from './proc';
import { tmpDir } from './tmp';

/** Sizes small enough that a section measures start-up, not speed. */
const TINY = ['--size-mib', '2', '--files', '40', '--sizes-mib', '1', '--seconds', '1', '--entries', '50', '--packages', '30', '--fetches', '2', '--tag-mib', '2'];

/**
 * Runs the named bench sections once with tiny sizes and `--no-write`, and checks each printed
 * its heading and a table with figures. The sections are split over two test files
 * (bench-smoke*.e2e) so CI's workers run them side by side.
 */
export async function benchSmoke(sections: ReadonlyArray<[name: string, heading: string]>, timeoutMs: number): Promise<void> {
  const res = await run(process.execPath, [join(PROJECT_ROOT, 'dist', 'bench', 'main.js'), ...sections.map(([n]) => n), '--runs', '1', '--no-write', '--work-dir', tmpDir('btrfly-bench-smoke-'), ...TINY], { timeoutMs });
  expect(res.stderr).not.toMatch(/failed|Error/);
  expect(res.code).toBe(0);
  for (const [name, heading] of sections) {
    const block = res.stdout.slice(res.stdout.indexOf(heading));
    expect({ name, found: block.startsWith(heading) }).toEqual({ name, found: true });
    // A table: header, separator, at least one row of figures.
    expect(block).toMatch(/\n\| [^\n]+\|\n\| --- [^\n]+\n\| [^\n]*\d[^\n]*\|\n/);
    expect(res.stdout).toContain(`(section ${name}: `);
  }
  expect(res.stdout).toContain('load average');
}
