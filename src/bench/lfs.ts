/**
 * Bench section "lfs": Git LFS mode (`btrfly init --lfs`) beside git mode, in the same runs.
 * 1. A large body of random bytes written into a fresh archive in each mode (its own Node process,
 *    as the archive section does) against `cp` of the same file, the disk the archive then uses
 *    (`du` of the whole archive directory: git objects, body cache, LFS store), and the body read
 *    back as playback reads it.
 * 2. `btrfly push` and `btrfly pull` of a tag holding one large body, in each mode, to a remote on
 *    a local path and to a git + LFS server over HTTP on loopback (test/fixtures/git-http-server.js,
 *    which speaks git's smart HTTP through `git http-backend` and the LFS batch API), with the
 *    peak RSS of the whole process tree (btrfly, git, git-lfs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { archiveChild, makeSource } from './archive';
import { BTRFLY_BIN, fmtRatio, MiB } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

const GIT_HTTP_SERVER = join(__dirname, '..', '..', 'test', 'fixtures', 'git-http-server.js');

/** docs/notes/remotes.md: what a self-hosted git server of btrfly archives should set. */
const SERVER_SETTINGS: ReadonlyArray<[string, string]> = [
  ['receive.unpackLimit', '1'],
  ['core.bigFileThreshold', '1m'],
  ['pack.compression', '0'],
  ['core.packedGitLimit', '256m'],
];

type Mode = 'git' | 'lfs';
const MODES: readonly Mode[] = ['git', 'lfs'];

/**
 * Samples the summed VmRSS of a process and all its descendants every `everyMs`; `stop` gives
 * the peak sum in MiB (the figure for "memory stays flat": git and git-lfs included).
 */
export function sampleTreePeakRss(root: number | undefined, everyMs: number): { stop(): number } {
  let peakKiB = 0;
  const sample = (): void => {
    const children = new Map<number, number[]>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (!children.has(ppid)) children.set(ppid, []);
        children.get(ppid)!.push(Number(name));
      } catch {
        // gone between readdir and read
      }
    }
    let total = 0;
    const stack = root ? [root] : [];
    while (stack.length) {
      const pid = stack.pop()!;
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (m) total += Number(m[1]);
      } catch {
        // exited
      }
      stack.push(...(children.get(pid) ?? []));
    }
    peakKiB = Math.max(peakKiB, total);
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.round(peakKiB / 1024);
    },
  };
}

/**
 * `timed`, with the command's CPU (user + system) from bash's `times` after it: its second line is
 * the children's, "0m0.000s 0m0.371s". bash adds a few ms to the wall time.
 */
async function timedCpu(cmd: string, args: string[]): Promise<{ seconds: number; cpuSeconds: number }> {
  const { seconds, stdout } = await timed('bash', ['-c', '"$@"; times', 'bash', cmd, ...args]);
  const [user, system] = stdout.trim().split('\n').pop()!.split(/\s+/).map((t) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  });
  return { seconds, cpuSeconds: user + system };
}

/** Bytes of disk a directory uses (allocated blocks, as `du` counts them). */
async function diskBytes(dir: string): Promise<number> {
  const { stdout } = await timed('du', ['-s', '--block-size=1', dir]);
  return Number(stdout.split('\t')[0]);
}

interface WriteRow {
  seconds: number[];
  /** CPU seconds of the write's process per GiB (all threads). */
  cpu: number[];
  cp: number[];
  /** cp's CPU seconds per GiB (user + system), the same runs. */
  cpCpu: number[];
  disk: number[];
  read: number[];
  rss: number[];
}

/** The writes in each mode, and the reference LFS mode cannot go below: SHA-256 alone of the same file, fed the same way. */
type Step = Mode | 'sha256';
const STEPS: readonly Step[] = ['sha256', ...MODES];

async function measureWrites(sizeMiB: number, opts: BenchOptions): Promise<Record<Step, WriteRow>> {
  const dir = join(opts.workDir, 'write');
  await mkdir(dir, { recursive: true });
  const src = join(dir, 'source');
  await makeSource(src, 'random', sizeMiB * MiB);
  const rows = Object.fromEntries(STEPS.map((m) => [m, { seconds: [], cpu: [], cp: [], cpCpu: [], disk: [], read: [], rss: [] }])) as unknown as Record<Step, WriteRow>;
  const gib = (sizeMiB * MiB) / (1024 * MiB);
  for (let i = 0; i < opts.runs; i++) {
    // cp, then SHA-256 alone and the two modes, in turn first, so all see the same load.
    const order = i % 2 === 0 ? STEPS : [...STEPS].reverse();
    const copy = join(dir, 'copy');
    // Each timed step starts with nothing dirty in the page cache: otherwise the step after git
    // mode's 2 GiB of writes is throttled by the kernel's writeback while cp, timed first, is not.
    await timed('sync', []);
    const cp = await timedCpu('cp', [src, copy]);
    await rm(copy, { force: true });
    const line: string[] = [`cp ${cp.seconds.toFixed(2)} s (CPU ${cp.cpuSeconds.toFixed(2)} s)`];
    for (const step of order) {
      const row = rows[step];
      row.cp.push(cp.seconds);
      row.cpCpu.push(cp.cpuSeconds / gib);
      const archive = join(dir, `archive-${step}`);
      await rm(archive, { recursive: true, force: true });
      await timed('sync', []);
      if (step === 'sha256') {
        const h = await archiveChild(['sha256', '-', src]);
        row.seconds.push(h.seconds);
        row.cpu.push((h.cpuSeconds ?? NaN) / gib);
        row.rss.push(h.rssMiB);
        line.push(`SHA-256 alone ${h.seconds.toFixed(2)} s (CPU ${(h.cpuSeconds ?? NaN).toFixed(2)} s)`);
        continue;
      }
      const w = await archiveChild([step === 'lfs' ? 'write-lfs' : 'write', archive, src]);
      const disk = await diskBytes(archive);
      const r = await archiveChild(['read', archive, JSON.stringify(w.stored)]);
      row.seconds.push(w.seconds);
      row.cpu.push((w.cpuSeconds ?? NaN) / gib);
      row.disk.push(disk);
      row.read.push(r.seconds);
      row.rss.push(Math.max(w.rssMiB, r.rssMiB));
      line.push(`${step} write ${w.seconds.toFixed(2)} s (CPU ${(w.cpuSeconds ?? NaN).toFixed(2)} s), ${(disk / (sizeMiB * MiB)).toFixed(2)}× disk, read ${r.seconds.toFixed(2)} s`);
      await rm(archive, { recursive: true, force: true });
    }
    log(`lfs write run ${i + 1}: ${line.join('; ')}`);
  }
  await rm(dir, { recursive: true, force: true });
  return rows;
}

/** The git + LFS HTTP server of the tests, on loopback, serving the bare repositories under `root`. */
async function startHttpServer(root: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [GIT_HTTP_SERVER, '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`git-http-server.js exited with ${code} before it was ready`)));
  });
  return { port: (JSON.parse(line) as { port: number }).port, child };
}

interface TransferCell {
  push: number[];
  pull: number[];
  pushRss: number[];
  pullRss: number[];
}

async function measureTransfers(sizeMiB: number, runs: number, opts: BenchOptions): Promise<Map<string, TransferCell>> {
  const dir = join(opts.workDir, 'transfer');
  await mkdir(dir, { recursive: true });
  const env = { ...process.env, BTRFLY_CONFIG_DIR: join(dir, 'config') };
  const btrfly = async (...args: string[]): Promise<{ seconds: number; rssMiB: number }> => {
    let peak: ReturnType<typeof sampleTreePeakRss> | undefined;
    const { seconds } = await timed(process.execPath, [BTRFLY_BIN, ...args], env, (c) => (peak = sampleTreePeakRss(c.pid, 50)));
    return { seconds, rssMiB: peak!.stop() };
  };
  const body = join(dir, 'body.bin');
  await makeSource(body, 'random', sizeMiB * MiB);
  const archives: Record<Mode, string> = { git: join(dir, 'archive-git'), lfs: join(dir, 'archive-lfs') };
  await archiveChild(['tag', archives.git, body]);
  await archiveChild(['tag-lfs', archives.lfs, body]);
  await rm(body, { force: true });
  const httpRoot = join(dir, 'http');
  await mkdir(httpRoot, { recursive: true });
  const server = await startHttpServer(httpRoot);
  const cells = new Map<string, TransferCell>();
  try {
    for (let i = 0; i < runs; i++) {
      for (const mode of i % 2 === 0 ? MODES : [...MODES].reverse()) {
        for (const where of ['path', 'http'] as const) {
          const key = `${mode} ${where}`;
          if (!cells.has(key)) cells.set(key, { push: [], pull: [], pushRss: [], pullRss: [] });
          const cell = cells.get(key)!;
          const name = `remote-${mode}-${i}.git`;
          const remoteDir = where === 'path' ? join(dir, name) : join(httpRoot, name);
          await timed('git', ['init', '-q', '--bare', remoteDir]);
          // git http-backend takes a push without an authenticated user only when told to; and the
          // server side gets the settings docs/notes/remotes.md gives for a self-hosted git server
          // (as it is, git mode's 64 MiB pull took 28 s here: a pushed pack exploded into zlib loose objects).
          if (where === 'http') {
            for (const [k, v] of [['http.receivepack', 'true'], ...SERVER_SETTINGS]) await timed('git', ['--git-dir', remoteDir, 'config', k, v]);
          }
          const url = where === 'path' ? remoteDir : `http://127.0.0.1:${server.port}/${name}`;
          await btrfly('remote', 'add', 'r', url, '--archive', archives[mode]);
          const push = await btrfly('push', 'r', 'big', '--archive', archives[mode]);
          const pulled = join(dir, `pulled-${mode}`);
          if (mode === 'lfs') await btrfly('init', '--lfs', '--archive', pulled);
          await btrfly('remote', 'add', 'r', url, '--archive', pulled);
          const pull = await btrfly('pull', 'r', 'big', '--archive', pulled);
          await btrfly('remote', 'remove', 'r', '--archive', archives[mode]);
          cell.push.push(push.seconds);
          cell.pull.push(pull.seconds);
          cell.pushRss.push(push.rssMiB);
          cell.pullRss.push(pull.rssMiB);
          log(`lfs transfer run ${i + 1}, ${key}: push ${push.seconds.toFixed(1)} s (${push.rssMiB} MiB), pull ${pull.seconds.toFixed(1)} s (${pull.rssMiB} MiB)`);
          for (const d of [remoteDir, pulled]) await rm(d, { recursive: true, force: true });
        }
      }
    }
  } finally {
    server.child.kill();
    await rm(dir, { recursive: true, force: true });
  }
  return cells;
}

export const lfsSection: BenchSection = {
  name: 'lfs',
  async run(opts: BenchOptions): Promise<string> {
    const sizeMiB = Number(opts.flags.get('size-mib') ?? 1024);
    const tagMiB = Number(opts.flags.get('tag-mib') ?? 3072);
    const runs = Number(opts.flags.get('transfer-runs') ?? Math.min(opts.runs, 2));
    if (!existsSync(GIT_HTTP_SERVER)) throw new Error(`the lfs section needs ${GIT_HTTP_SERVER} (run it from a checkout of btrfly)`);
    const before = machineLine();
    const writes = await measureWrites(sizeMiB, opts);
    const transfers = tagMiB > 0 ? await measureTransfers(tagMiB, runs, opts) : new Map<string, TransferCell>();
    const mibs = (n: number, sec: number): string => (n / sec).toFixed(0);
    const writeRow = (step: Step): string => {
      const r = writes[step];
      const s = spread(r.seconds);
      const label = step === 'sha256' ? 'reference: SHA-256 alone' : step;
      const diskAndRead = (): string => {
        if (step === 'sha256') return '– | –';
        const read = spread(r.read);
        return `${fmtSpread(spread(r.disk.map((d) => d / (sizeMiB * MiB))))} | ${fmtSpread(read)} (${mibs(sizeMiB, read.median)} MiB/s)`;
      };
      return `| ${label} | ${fmtSpread(s)} | ${mibs(sizeMiB, s.median)} | ${fmtSpread(spread(r.cpu))} | ${fmtSpread(spread(r.cp))} | ${fmtSpread(spread(r.cpCpu))} | ${fmtRatio(r.seconds.map((x, k) => r.cp[k] / x))} | ${diskAndRead()} | ${Math.max(...r.rss)} |`;
    };
    /** Median (min–max) over the runs of one step's time over another's, per run: `1.23× (1.20–1.31)`. */
    const perRun = (num: Step | 'cp', den: Step): string => {
      const over = spread(writes[den].seconds.map((x, k) => (num === 'cp' ? writes[den].cp[k] : writes[num].seconds[k]) / x));
      return `${over.median.toFixed(2)}× (${over.min.toFixed(2)}–${over.max.toFixed(2)})`;
    };
    const transferRow = (key: string, c: TransferCell): string => {
      const p = spread(c.push);
      const q = spread(c.pull);
      return `| ${key} | ${fmtSpread(p, 1)} | ${mibs(tagMiB, p.median)} | ${Math.max(...c.pushRss)} | ${fmtSpread(q, 1)} | ${mibs(tagMiB, q.median)} | ${Math.max(...c.pullRss)} |`;
    };
    return joinLines([
      '## Git LFS mode',
      '',
      `A ${sizeMiB} MiB body of random bytes written into a fresh archive in each mode (\`createBodyWriter\` from a file,`,
      'fed as the recorder feeds it, in its own Node process, until stored: git mode through `git hash-object` with its',
      'body cache, LFS mode as one file in the LFS store), against `cp` of the same file in the same run, each step after a',
      '`sync`; CPU is user + system of all the process\'s threads (cp: its own); the disk the archive then uses (`du` of the',
      'whole archive directory, over the body\'s size); and the body read back as playback reads it (checked per 1 MiB).',
      'The reference row is SHA-256 alone of the same file, fed the same way in a process of the same kind (Node crypto, on',
      'the main thread): an LFS write cannot do less, its oid being the body\'s SHA-256.',
      `Median of ${opts.runs} runs (min–max), the steps in turn first; the ratio is cp's time over the step's, per run.`,
      '',
      '| mode | write s | write MiB/s | write CPU s/GiB | cp s (same runs) | cp CPU s/GiB | ratio | disk used / body size | playback read s | peak RSS MiB |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      writeRow('git'),
      writeRow('lfs'),
      writeRow('sha256'),
      '',
      `The ceiling for LFS mode, cp over SHA-256 alone, was ${perRun('cp', 'sha256')} in these runs; the LFS write took`,
      `${perRun('lfs', 'sha256')} the time of SHA-256 alone (median per run, min–max).`,
      '',
      ...(tagMiB > 0
        ? [
            `\`btrfly push\` and \`btrfly pull\` of a tag holding one ${tagMiB} MiB body of random bytes, in each mode, to a new`,
            'bare repository on a local path (git-lfs hard-links LFS objects between repositories on one file system, and',
            'btrfly then gives each side a copy of its own, docs/notes/remotes.md; the pull reads the body back and checks its SHA-256) and to the',
            "tests' git + LFS server over HTTP on loopback (`git http-backend` for git, its repository set up as",
            'docs/notes/remotes.md advises for a self-hosted server; Node for the LFS batch API and transfers: every byte',
            `hashed and written on the server). Median of ${runs} runs (min–max), the modes in turn first. Peak RSS is the whole`,
            'process tree: btrfly, git and git-lfs (VmRSS summed, sampled every 50 ms).',
            '',
            '| mode, remote | push s | push MiB/s | push peak RSS MiB | pull s | pull MiB/s | pull peak RSS MiB |',
            '| --- | --- | --- | --- | --- | --- | --- |',
            ...[...transfers].map(([k, c]) => transferRow(k, c)),
            '',
          ]
        : []),
      `All rows: \`npm run bench -- lfs --size-mib ${sizeMiB} --tag-mib ${tagMiB} --runs ${opts.runs} --transfer-runs ${runs}\`.`,
      '',
      'What limits it: an LFS write is one pass over the bytes and a rename: SHA-256 (about 0.6 CPU-s a GiB here, one core\'s',
      'SHA-NI speed) and the per-part checks on the main thread, the writes to the page cache on the thread pool. SHA-256',
      'alone of the same file (the reference row) is what no LFS write can go under, so cp over it is the ceiling of the',
      'ratio. `cp` copies once, in the kernel, and hashes nothing. Git mode adds `git hash-object` (SHA-1 with collision',
      'detection and a level-0 deflate) and keeps a second copy as the body cache. docs/decisions.md, "Git LFS mode", has',
      'the figures and the trade-offs.',
      '',
      takenLine(before),
    ]);
  },
};
