/**
 * `npm run bench [-- SECTION... [--runs N] [--work-dir DIR] [--no-write] [--name value...]]`:
 * runs the named sections (all when none is named) and rewrites each one's block of
 * BENCHMARKS.md, between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, leaving the
 * other sections' blocks as they are. A new section is a {@link BenchSection} added to
 * SECTIONS below.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveSection } from './archive';
import { largeSection } from './large';
import { smallSection } from './small';
import { dnsSection } from './dns';
import { startupSection } from './startup';
import { isolateSection } from './isolate';
import { mitmSection } from './mitm';
import { npmSection } from './npm';
import { memorySection } from './memory';
import { transferSection } from './transfer';
import { lfsSection } from './lfs';
import { connectionsSection } from './connections';
import { hostSection } from './host';
import type { BenchSection } from './section';

const SECTIONS: readonly BenchSection[] = [archiveSection, largeSection, smallSection, connectionsSection, mitmSection, memorySection, transferSection, lfsSection, dnsSection, startupSection, isolateSection, npmSection, hostSection];

const BENCHMARKS_MD = join(__dirname, '..', '..', 'BENCHMARKS.md');

const HEADER = `# Benchmarks

Written by \`npm run bench\` (src/bench/). Each section below is rewritten by its own run
(\`npm run bench -- <section>\`) and says the machine, the load and the command behind each row.
Every section prints the load average before and after it: the machine has 2 cores and may be shared, so a
ratio (btrfly and its reference measured in the same run, alternating) is steadier than a raw figure.
`;

/** Replaces (or appends) the block of section `name` in the Markdown text. */
export function replaceBlock(md: string, name: string, body: string): string {
  const open = `<!-- bench:${name} -->`;
  const close = `<!-- /bench:${name} -->`;
  const block = `${open}\n${body.trim()}\n${close}`;
  const a = md.indexOf(open);
  const b = md.indexOf(close);
  if (a >= 0 && b > a) return md.slice(0, a) + block + md.slice(b + close.length);
  return `${md.trimEnd()}\n\n${block}\n`;
}

function parseArgs(argv: string[]): { names: string[]; flags: Map<string, string> } {
  const names: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--no-')) flags.set(a.slice(5), 'false');
    else if (a.startsWith('--')) flags.set(a.slice(2), argv[++i] ?? '');
    else names.push(a);
  }
  return { names, flags };
}

async function main(): Promise<void> {
  const { names, flags } = parseArgs(process.argv.slice(2));
  const unknown = names.filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown section ${unknown.join(', ')}: sections are ${SECTIONS.map((s) => s.name).join(', ')}`);
  const chosen = names.length ? SECTIONS.filter((s) => names.includes(s.name)) : SECTIONS;
  const runs = Number(flags.get('runs') ?? 3);
  const base = flags.get('work-dir') ?? tmpdir();
  const workDir = await mkdtemp(join(base, 'btrfly-bench-'));
  try {
    for (const section of chosen) {
      const t0 = Date.now();
      const md = await section.run({ runs, workDir: join(workDir, section.name), flags });
      process.stdout.write(`${md}\n\n(section ${section.name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
      if (flags.get('write') !== 'false') {
        const current = await readFile(BENCHMARKS_MD, 'utf8').catch(() => HEADER);
        await writeFile(BENCHMARKS_MD, replaceBlock(current, section.name, md));
      }
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
