/**
 * Bench section "archive": a large body written into and read back from a fresh archive
 * through the Archive API (each in a child process of its own), against `cp` of the same
 * bytes on the same disk, interleaved run by run so that both see the same machine load.
 * Ratios are cp's time over the archive's (1.0 = as fast as cp), the median of the per-run
 * ratios.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseManifest, serializeManifest } from '../format/manifest';
import type { Entry } from '../format/types';
import { fmtRatio, MiB } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

const CHILD = join(__dirname, 'archive-child.js');

type BodyKind = 'random' | 'compressible';
const KINDS: readonly BodyKind[] = ['random', 'compressible'];

/** Random bytes: the AES-128-CTR keystream of a fixed key, generated at GB/s. */
export function randomSource(size: number): Readable {
  const cipher = createCipheriv('aes-128-ctr', createHash('sha256').update('btrfly-bench').digest().subarray(0, 16), Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, MiB);
      left -= n;
      this.push(cipher.update(n === MiB ? zeros : zeros.subarray(0, n)));
    },
  });
}

/**
 * Compressible bytes like a package index: JSON lines that vary (names, versions, digests).
 * A 64 MiB block of distinct lines is repeated; 64 MiB is far beyond zstd's window at level 3,
 * so the repetition does not make it compress better than real text would.
 */
function compressibleSource(size: number): Readable {
  const blockSize = Math.min(size, 64 * MiB);
  let block: Buffer | undefined;
  const makeBlock = (): Buffer => {
    const lines: string[] = [];
    let length = 0;
    let x = 12345;
    for (let i = 0; length < blockSize; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const digest = createHash('sha1').update(String(i)).digest('base64');
      const line = `{"name":"pkg-${(x % 50000).toString(36)}","version":"${x % 9}.${(x >>> 8) % 40}.${(x >>> 16) % 20}","integrity":"sha512-${digest}","deps":${(x >>> 4) % 12}}\n`;
      lines.push(line);
      length += line.length;
    }
    return Buffer.from(lines.join('')).subarray(0, blockSize);
  };
  let left = size;
  let offset = 0;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      block ??= makeBlock();
      const n = Math.min(left, MiB, block.length - offset);
      this.push(block.subarray(offset, offset + n));
      left -= n;
      offset = (offset + n) % block.length;
    },
  });
}

export async function makeSource(path: string, kind: BodyKind, size: number): Promise<void> {
  const existing = await stat(path).catch(() => undefined);
  if (existing?.size === size) return;
  await pipeline(kind === 'random' ? randomSource(size) : compressibleSource(size), createWriteStream(path, { highWaterMark: MiB }));
}

export interface ChildResult {
  seconds: number;
  /** CPU of the whole child process (user + system, all threads) over the timed operation. */
  cpuSeconds?: number;
  rssMiB: number;
  stored?: { storage: string; size: number };
}

/** Runs one operation of archive-child.ts in its own process, with btrfly's streaming memory settings. */
export async function archiveChild(args: string[], dist?: string): Promise<ChildResult> {
  // bin/run.js's glibc setting for streaming commands (the child is not started through it).
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '4194304', ...(dist ? { BTRFLY_BENCH_DIST: dist } : {}) };
  const { stdout } = await timed(process.execPath, [CHILD, ...args], env);
  return JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult;
}

interface Row {
  kind: BodyKind;
  op: 'write' | 'read' | 'read-git';
  seconds: number[];
  cpSeconds: number[];
  ratios: number[];
  rssMiB: number[];
  storage: string;
}

async function measureKind(kind: BodyKind, sizeMiB: number, opts: BenchOptions, dist: string | undefined): Promise<Row[]> {
  const size = sizeMiB * MiB;
  const src = join(opts.workDir, `source-${kind}-${sizeMiB}m`);
  await makeSource(src, kind, size);
  const write: Row = { kind, op: 'write', seconds: [], cpSeconds: [], ratios: [], rssMiB: [], storage: '' };
  const read: Row = { ...write, op: 'read', seconds: [], cpSeconds: [], ratios: [], rssMiB: [] };
  const readGit: Row = { ...write, op: 'read-git', seconds: [], cpSeconds: [], ratios: [], rssMiB: [] };
  for (let i = 0; i < opts.runs; i++) {
    const archive = join(opts.workDir, `archive-${kind}`);
    const copy = join(opts.workDir, `copy-${kind}`);
    await rm(archive, { recursive: true, force: true });
    await rm(copy, { force: true });
    // cp first, the archive write right after, the read last: each pair side by side.
    const cp = await timed('cp', [src, copy]);
    await rm(copy, { force: true });
    const w = await archiveChild(['write', archive, src], dist);
    const r = await archiveChild(['read', archive, JSON.stringify(w.stored)], dist);
    const g = await archiveChild(['read-git', archive, JSON.stringify(w.stored)], dist);
    for (const [row, res] of [
      [write, w],
      [read, r],
      [readGit, g],
    ] as const) {
      row.seconds.push(res.seconds);
      row.cpSeconds.push(cp.seconds);
      row.ratios.push(cp.seconds / res.seconds);
      row.rssMiB.push(res.rssMiB);
    }
    write.storage = read.storage = readGit.storage = w.stored!.storage;
    log(`archive ${kind} run ${i + 1}: cp ${cp.seconds.toFixed(2)} s, write ${w.seconds.toFixed(2)} s, read ${r.seconds.toFixed(2)} s, from git ${g.seconds.toFixed(2)} s`);
    await rm(archive, { recursive: true, force: true });
  }
  return [write, read, readGit];
}

const OP_LABEL: Record<Row['op'], string> = { write: 'write', read: 'read (body cache)', 'read-git': 'read from git' };

/** Milliseconds to parse and validate a manifest of `n` entries shaped like a package index's tarballs, median of `runs`. */
function manifestLoad(n: number, runs: number): number[] {
  const entries: Entry[] = Array.from({ length: n }, (_, i) => ({
    request: { method: 'GET', url: `https://registry.example/pkg-${i}/-/pkg-${i}-1.0.${i}.tgz`, headers: [{ name: 'accept', value: 'application/octet-stream' }] },
    ordinal: 0,
    response: {
      status: 200,
      statusText: 'OK',
      httpVersion: 'HTTP/1.1',
      headers: [
        { name: 'Content-Type', value: 'application/octet-stream' },
        { name: 'ETag', value: `"${i}"` },
      ],
      content: { size: 1000 + i, mimeType: 'application/octet-stream', sha256: createHash('sha256').update(String(i)).digest('hex'), storage: 'raw', parts: 1 },
    },
  }));
  const text = serializeManifest({ btrflyFormat: 1, rules: [], redact: { headers: [], query: [] }, entries });
  parseManifest(text, 'warm-up');
  return Array.from({ length: runs }, () => {
    const t0 = performance.now();
    parseManifest(text, 'bench');
    return performance.now() - t0;
  });
}

function table(rows: Row[], sizeMiB: number, runs: number): string {
  const lines = [
    '| body | operation | archive s | archive MiB/s | cp s (same runs) | cp MiB/s | ratio (cp time / archive time) | peak RSS MiB | reproduce |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const s = spread(r.seconds);
    const cp = spread(r.cpSeconds);
    const mibs = (sec: number): string => (sizeMiB / sec).toFixed(0);
    const cmd = `\`npm run bench -- archive --body ${r.kind} --size-mib ${sizeMiB} --runs ${runs}\``;
    lines.push(
      `| ${r.kind} (${r.storage}) | ${OP_LABEL[r.op]} | ${fmtSpread(s)} | ${mibs(s.median)} | ${fmtSpread(cp)} | ${mibs(cp.median)} | ${fmtRatio(r.ratios)} | ${Math.max(...r.rssMiB)} | ${cmd} |`,
    );
  }
  return lines.join('\n');
}

export const archiveSection: BenchSection = {
  name: 'archive',
  async run(opts: BenchOptions): Promise<string> {
    const sizeMiB = Number(opts.flags.get('size-mib') ?? 1024);
    const body = opts.flags.get('body');
    const kinds = body ? KINDS.filter((k) => k === body) : KINDS;
    if (!kinds.length) throw new Error(`--body must be one of ${KINDS.join(', ')}`);
    const dist = opts.flags.get('dist');
    const dir = join(opts.workDir, 'archive');
    await mkdir(dir, { recursive: true });
    const before = machineLine();
    const rows: Row[] = [];
    for (const kind of kinds) rows.push(...(await measureKind(kind, sizeMiB, { ...opts, workDir: dir }, dist)));
    await rm(dir, { recursive: true, force: true });
    const load = spread(manifestLoad(10_000, Math.max(opts.runs, 5)));
    return joinLines([
      '## Archive',
      '',
      `A ${sizeMiB} MiB body written (\`createBodyWriter\`, from a file, until every part is in git) into a fresh archive`,
      'and read back whole into a sink that drops the bytes: as playback reads it (`openBody`, from the body cache, each',
      "part's length checked) and as `verify` does (from git, SHA-256 checked), each in its own Node process, against",
      '`cp` of the same file on the same disk in the same run (page cache warm, no fsync on either side).',
      "Each process runs with the memory settings of btrfly's streaming commands (bin/run.js, src/engine/proxy/memory.ts).",
      `Median of ${opts.runs} runs, (min–max); the ratio is cp's time over the archive's, per run, so ≥ 1 is faster than cp.`,
      '',
      table(rows, sizeMiB, opts.runs),
      '',
      `Loading a manifest of 10,000 entries (parse and validate, in the bench process): ${fmtSpread(load, 0)} ms.`,
      '',
      'What limits it: a write sends every byte through `git hash-object -w` (SHA-1 with collision detection, then a',
      'level-0 deflate into a loose object; 3.6 s per GiB for the hash alone here) and keeps its raw parts as the body',
      'cache; a read from git brings every byte back through `git cat-file` and a SHA-256 (~1.5 GiB/s). A read from the',
      'body cache is plain file reads. `cp` on this VM swings between 0.3 s and 3.3 s for the same warm file, so read the',
      'archive columns as well as the ratio. docs/decisions.md ("Archive storage", "Body cache") says where the time goes.',
      '',
      takenLine(before),
      dist ? `Build measured: ${dist}.` : '',
    ]);
  },
};
