/**
 * The per-body work of a small part off the main thread: its zstd (or the finding that it does
 * not shrink) and, for a body of one part, its body-cache entry (a stage directory, the file,
 * the rename). On the recorder's thread these cost ~1 ms a small file recorded, most of it
 * waiting in `mkdir` and `open` behind ext4's journal while git and the journal fsync: time in
 * which no client was answered (docs/decisions.md, "Small-file record"). One worker thread
 * serves the process; the parts asked for in one turn of the event loop go to it in one
 * message and come back in one, so a thousand files cost far fewer wake-ups than calls.
 *
 * The worker's source is plain JavaScript run with `eval` (no build step between the
 * TypeScript sources and a worker file, so the same code runs under the tests and from dist).
 */
import { Worker } from 'node:worker_threads';

/** How a small part is compressed: the same zstd parameters and choice as a streamed part (body-writer.ts). */
export interface SmallPartPolicy {
  level: number;
  /** Kept zstd only when it is below this fraction of the raw size. */
  keepRatio: number;
  /** Its first this many bytes are compressed first; when they do not shrink, the rest is not tried. */
  probeSize: number;
}

/** Where a body's cache entry goes: one file written at `file`, renamed to `target` once whole. */
export interface SmallCacheEntry {
  file: string;
  target: string;
}

export interface PreparedPart {
  /** The bytes to store: zstd, or the raw bytes themselves. */
  bytes: Buffer;
  zstd: boolean;
  /**
   * Settles once the cache entry asked for is made (true, or it was there already) or was given
   * up (false); false at once when none was asked for. Never rejects.
   */
  cached: Promise<boolean>;
}

interface Job {
  id: number;
  raw: Uint8Array;
  cache?: SmallCacheEntry;
}

/** A part compressed (`packed` when kept zstd) or failed; or, later, its cache entry made or not (`cached`). */
interface Reply {
  id: number;
  packed?: Uint8Array;
  error?: string;
  cached?: boolean;
}

interface Waiting {
  raw: Buffer;
  cached: Promise<boolean>;
  resolve: (p: PreparedPart) => void;
  reject: (e: Error) => void;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { zstdCompressSync, constants: zc } = require('node:zlib');
const { existsSync, mkdirSync, writeFileSync, renameSync, rmSync } = require('node:fs');
const { dirname } = require('node:path');
const { level, keepRatio, probeSize } = workerData;
const zstd = (b) => zstdCompressSync(b, { params: { [zc.ZSTD_c_compressionLevel]: level }, pledgedSrcSize: b.length });
function pack(raw) {
  const worth = raw.length > probeSize ? zstd(raw.subarray(0, probeSize)).length < probeSize * keepRatio : raw.length > 0;
  if (!worth) return undefined;
  const packed = zstd(raw);
  return packed.length < raw.length * keepRatio ? packed : undefined;
}
// Synchronous: the thread pool's hand-offs (an access, an open, a write, a close and a rename,
// each a task and a wake-up) cost more CPU than the calls themselves.
function retryInDir(path, step) {
  try {
    step();
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    mkdirSync(dirname(path), { recursive: true });
    step();
  }
}
function put(c, raw) {
  if (existsSync(c.target)) return true;
  try {
    retryInDir(c.file, () => writeFileSync(c.file, raw));
    retryInDir(c.target, () => renameSync(c.file, c.target));
    return true;
  } catch (e) {
    try { rmSync(c.file, { force: true }); } catch {}
    // An entry already there as a directory (a read made it) holds the same bytes.
    return e.code === 'EISDIR' || e.code === 'ENOTEMPTY' || e.code === 'EEXIST';
  }
}
parentPort.on('message', (jobs) => {
  const replies = [];
  const moved = [];
  const raws = [];
  for (const job of jobs) {
    const raw = Buffer.from(job.raw.buffer, job.raw.byteOffset, job.raw.byteLength);
    raws.push(raw);
    try {
      const packed = pack(raw);
      if (packed) {
        // A copy of its own (zlib's result may not be transferable): moved, not cloned, back.
        const own = new Uint8Array(packed);
        moved.push(own.buffer);
        replies.push({ id: job.id, packed: own });
      } else replies.push({ id: job.id });
    } catch (e) {
      replies.push({ id: job.id, error: String((e && e.message) || e) });
    }
  }
  // The bytes to store go back first; the cache entries are made while git packs them.
  parentPort.postMessage(replies, moved);
  const cached = [];
  jobs.forEach((j, i) => j.cache && cached.push({ id: j.id, cached: put(j.cache, raws[i]) }));
  if (cached.length) parentPort.postMessage(cached);
});
`;

/**
 * Parts are sent to the worker in groups: when this many wait, or this long after the first.
 * Requests from 8 clients seldom end in the same turn of the event loop, and a message a part
 * (a copy, a wake-up of the worker and of this thread for the answer) was 4.5 % of the
 * recorder's main thread; the body waits for git's next checkpoint (up to 100 ms) anyway.
 */
const SEND_JOBS = 32;
const SEND_DELAY_MS = 5;

/** The process's one worker for small parts, started on first use; it does not keep the process alive when idle. */
export class SmallPartWorker {
  private worker?: Worker;
  private nextId = 0;
  /** Parts not yet compressed, by job id. */
  private readonly compressing = new Map<number, Waiting>();
  /** Cache entries under way, by job id. */
  private readonly caching = new Map<number, (ok: boolean) => void>();
  private queued: Job[] = [];
  private timer?: NodeJS.Timeout;

  constructor(private readonly policy: SmallPartPolicy) {}

  /**
   * Compresses a part held whole (or finds it not worth it) and, with `cache`, makes the
   * body's cache entry from its raw bytes meanwhile, best-effort (see {@link PreparedPart.cached}).
   * The entry is made by the worker concurrently with what the caller does next (git's checkpoint).
   */
  prepare(raw: Buffer, cache?: SmallCacheEntry): Promise<PreparedPart> {
    const id = this.nextId++;
    const cached = cache ? new Promise<boolean>((resolve) => this.caching.set(id, resolve)) : Promise.resolve(false);
    return new Promise((resolve, reject) => {
      this.compressing.set(id, { raw, cached, resolve, reject });
      this.queued.push({ id, raw, cache });
      if (this.queued.length >= SEND_JOBS) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), SEND_DELAY_MS);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const jobs = this.queued;
    this.queued = [];
    if (jobs.length === 0) return;
    const worker = this.start();
    worker.ref();
    worker.postMessage(jobs);
  }

  private settled(job: Waiting, r: Reply): void {
    if (r.error !== undefined) return job.reject(new Error(`compressing a small part failed: ${r.error}`));
    const packed = r.packed;
    const bytes = packed ? Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength) : job.raw;
    job.resolve({ bytes, zstd: packed !== undefined, cached: job.cached });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: this.policy });
    this.worker = worker;
    worker.on('message', (replies: Reply[]) => {
      for (const r of replies) {
        if (r.cached !== undefined) {
          this.caching.get(r.id)?.(r.cached);
          this.caching.delete(r.id);
          continue;
        }
        const job = this.compressing.get(r.id);
        if (!job) continue;
        this.compressing.delete(r.id);
        this.settled(job, r);
      }
      if (this.compressing.size === 0 && this.caching.size === 0) worker.unref();
    });
    const fail = (e: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const lost = [...this.compressing.values()];
      const entries = [...this.caching.values()];
      this.compressing.clear();
      this.caching.clear();
      for (const job of lost) job.reject(e);
      for (const cached of entries) cached(false);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the small-part worker exited (${code})`)));
    return worker;
  }
}
