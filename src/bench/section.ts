/**
 * What a benchmark section is, and the small helpers every section shares: figures as
 * median with min–max, the machine they were taken on and the closing line that says so,
 * child processes timed to the ms, progress lines on stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, freemem, loadavg, totalmem } from 'node:os';

/** Options from the command line, shared by every section. */
export interface BenchOptions {
  /** Repetitions of each measurement (the table shows the median, with min and max). */
  runs: number;
  /** Scratch directory for the section's files, on the disk being measured. */
  workDir: string;
  /** `--name value` options the section understands (`--body random`, `--size-mib 64`). */
  flags: Map<string, string>;
}

/** One part of `npm run bench`, writing its own block of BENCHMARKS.md. */
export interface BenchSection {
  /** The name on the command line and in BENCHMARKS.md's markers. */
  name: string;
  /** Runs the measurements; resolves with the Markdown for BENCHMARKS.md (heading included). */
  run(opts: BenchOptions): Promise<string>;
}

/** Median, min and max of a few figures. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1] };
}

/** `1.23 (1.20–1.31)`. */
export function fmtSpread(s: Spread, digits = 2): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** One line naming the machine: cores, memory, node, load average (others may be running too). */
export function machineLine(): string {
  const c = cpus();
  const gib = (n: number): string => (n / 1024 ** 3).toFixed(1);
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return `${c.length} cores (${c[0]?.model.trim() ?? 'unknown'}), ${gib(totalmem())} GiB memory (${gib(freemem())} free), node ${process.version}, ${process.platform}/${process.arch}, load average ${load}`;
}

/** `YYYY-MM-DD HH:MM UTC`. */
function nowUtc(): string {
  return `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * The last line of every section: when, on the machine as {@link machineLine} saw it before
 * the section ran (`before`), and the load average now that it has.
 */
export function takenLine(before: string): string {
  return `Taken ${nowUtc()} on ${before}; load average after: ${machineLine().replace(/.*load average /, '')}.`;
}

/** Collapses repeated blank lines of a section's Markdown. */
export function joinLines(lines: string[]): string {
  return lines.filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n');
}

/** A progress line on stderr (stdout carries the Markdown). */
export function log(line: string): void {
  process.stderr.write(line + '\n');
}

/**
 * Runs a command to completion; resolves with wall seconds and stdout, rejects on a non-zero exit.
 * @param onSpawn called with the process once it is started (to sample its memory, say)
 */
export function timed(cmd: string, args: string[], env?: NodeJS.ProcessEnv, onSpawn?: (child: ChildProcess) => void): Promise<{ seconds: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code === 0) resolve({ seconds, stdout });
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}): ${stderr.trim()}`));
    });
  });
}
