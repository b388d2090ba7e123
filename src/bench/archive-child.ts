/**
 * One timed archive operation in a process of its own, so each figure has its own peak RSS
 * and no garbage from the run before it. Prints one JSON line.
 *   node archive-child.js write ARCHIVE SOURCE_FILE         → {seconds, cpuSeconds, rssMiB, stored}   (fed as the recorder's tee feeds a body)
 *   node archive-child.js tag ARCHIVE SOURCE_FILE           → the same, and the body sealed as tag "big" (one GET entry)
 *   node archive-child.js read ARCHIVE STORED_JSON          → {seconds, rssMiB, bytes}   (as playback: the body cache)
 *   node archive-child.js read-git ARCHIVE STORED_JSON      → {seconds, rssMiB, bytes}   (as verify: git, SHA-256 checked)
 *   write-lfs, tag-lfs: write and tag into a new archive in Git LFS mode (`btrfly init --lfs`); read and read-git read LFS bodies as playback and verify do
 *   node archive-child.js sha256 - SOURCE_FILE         → {seconds, cpuSeconds, rssMiB, sha256}   (the file fed as write feeds it, into SHA-256 alone: LFS mode's floor)
 * BTRFLY_BENCH_DIST names another build's dist/ to measure (an older commit, side by side).
 * The process runs with the memory settings of btrfly's own streaming processes (bin/run.js's
 * mmap threshold, set by the parent; src/engine/proxy/memory.ts), so its peak is the one playback has.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { enterLongStream, keepMemoryFlat, LONG_STREAM, noteStreamed } from '../engine/proxy/memory';
import type { Archive as ArchiveClass } from '../format/archive';
import type { StoredBody } from '../format/types';
import { beginRecording } from '../format/recording-writer';

const MiB = 1024 * 1024;

function loadArchive(): typeof ArchiveClass {
  const dist = process.env.BTRFLY_BENCH_DIST;
  // A bench child loads the archive from the dist/ it is told to measure, chosen at run time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = dist ? (require(join(dist, 'format', 'archive.js')) as { Archive: typeof ArchiveClass }) : (require('../format/archive') as { Archive: typeof ArchiveClass });
  return mod.Archive;
}

/**
 * Passes a body's chunks on as the recorder's tee does (src/engine/proxy/tee.ts): a minor GC
 * every few MiB streamed, and the long-stream marking triggers from 64 MiB on. Without them a
 * 1 GiB write here ran 16 full mark-compacts that a recording does not.
 */
async function* asRecorded(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let copied = 0;
  let leave: (() => void) | undefined;
  try {
    for await (const chunk of source) {
      noteStreamed(chunk.length);
      copied += chunk.length;
      if (copied >= LONG_STREAM) leave ??= enterLongStream();
      yield chunk;
    }
  } finally {
    leave?.();
  }
}

/** CPU seconds of this process's children that have ended (`cutime` + `cstime` of /proc/self/stat). */
function childrenCpu(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return 0;
  }
}

/** The source file as the recorder feeds a body: 1 MiB reads through {@link asRecorded}, into `sink`. */
function feed(source: string, sink: Writable): Promise<void> {
  return pipeline(createReadStream(source, { highWaterMark: MiB }), asRecorded, sink);
}

/** SHA-256 alone of the file, fed as a write feeds it: what an LFS write cannot do without (its oid is the body's SHA-256). */
async function hashOnly(source: string): Promise<Record<string, unknown>> {
  const hash = createHash('sha256');
  const sink = new Writable({
    highWaterMark: MiB,
    write(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      cb();
    },
  });
  await feed(source, sink);
  return { sha256: hash.digest('hex') };
}

async function archiveOp(archive: ArchiveClass, op: string, arg: string): Promise<Record<string, unknown>> {
  if (op === 'write' || op === 'tag') {
    const recording = op === 'tag' ? await beginRecording(archive, 'big', { session: 'bench' }) : undefined;
    const w = archive.createBodyWriter();
    await feed(arg, w);
    const stored = await w.done;
    if (recording) {
      const { size, sha256, storage, parts } = stored;
      const response = { status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', headers: [], content: { size, mimeType: 'application/octet-stream', sha256, storage, parts } };
      await recording.addEntry({ request: { method: 'GET', url: 'https://bench.test/body.bin', headers: [] }, ordinal: 0, response }, [], stored);
      await recording.seal();
    }
    return { stored };
  }
  if (op === 'read' || op === 'read-git') {
    const stored = JSON.parse(arg) as StoredBody;
    const loc = await archive.locateBody(stored);
    let bytes = 0;
    // The whole body, as playback reads it (the body cache), or as verify does (git, SHA-256 checked at the end).
    const sink = new Writable({
      highWaterMark: MiB,
      write(chunk: Buffer, _e, cb) {
        bytes += chunk.length;
        noteStreamed(chunk.length);
        cb();
      },
    });
    await pipeline(archive.openBody(loc, undefined, { fromGit: op === 'read-git' }), sink);
    return { bytes };
  }
  throw new Error(`unknown operation ${op}`);
}

async function main(): Promise<void> {
  const [opName, dir, arg] = process.argv.slice(2);
  const lfs = opName.endsWith('-lfs');
  const op = lfs ? opName.slice(0, -'-lfs'.length) : opName;
  const Archive = loadArchive();
  const rss = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
  keepMemoryFlat();
  const archive = op === 'sha256' ? undefined : await Archive.open(dir, { create: op === 'write' || op === 'tag', ...(lfs ? { lfs } : {}) });
  const t0 = process.hrtime.bigint();
  // The whole process's CPU (the main thread, the thread pool's reads and writes, V8's helpers)
  // and its children's once reaped (git mode's git processes, which end with the archive), from t0.
  const cpu0 = process.cpuUsage();
  const children0 = childrenCpu();
  const result = archive ? await archiveOp(archive, op, arg) : await hashOnly(arg);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await archive?.close();
  const { user, system } = process.cpuUsage(cpu0);
  const cpuSeconds = (user + system) / 1e6 + childrenCpu() - children0;
  process.stdout.write(JSON.stringify({ ...result, seconds, cpuSeconds, rssMiB: rss() }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
