/**
 * SHA-256 of a long body on a worker thread, so the main thread does not spend 0.6 s a GiB on it
 * (one core's SHA-NI speed here, 1.8 GB/s) while it also feeds the socket, the per-part checks
 * and the file writes: an LFS write was bound by its main thread (docs/decisions.md, "Git LFS mode").
 *
 * One worker per process, started on first use and shared by every body (it hashes each in its
 * own context); it does not keep the process alive while no body is being hashed. A body's
 * bytes are copied, as they come, into buffers of {@link BATCH} bytes of its own; a full buffer
 * is handed to the worker (transferred, not copied again) and comes back once hashed. A body has
 * at most {@link BUFFERS} of them: {@link BackgroundSha256.room} says when the writer may go on,
 * so memory stays flat whatever the body's size. (A SharedArrayBuffer ring was tried first: V8
 * copies into shared memory a byte at a time, 3× slower than into the worker's own buffers.)
 */
import { Worker } from 'node:worker_threads';
import { BtrflyError } from '../errors';

/** Bytes handed to the worker at once: one message a MiB, not one a socket read. */
const BATCH = 1024 * 1024;

/** Buffers of a body: what it may have waiting for the worker is BUFFERS × BATCH bytes. */
const BUFFERS = 8;

/** Plain CommonJS, so it runs the same from dist/ and under the tests' TypeScript loader. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.open) return void hashes.set(m.id, createHash('sha256'));
  const hash = hashes.get(m.id);
  if (m.drop) return void hashes.delete(m.id);
  if (m.bytes) {
    hash?.update(m.bytes.subarray(0, m.length));
    parentPort.postMessage({ id: m.id, bytes: m.bytes }, [m.bytes.buffer]);
  }
  if (m.end && hash) {
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, digest: hash.digest('hex') });
  }
});
`;

type Reply = { id: number; bytes: Uint8Array<ArrayBuffer>; digest?: undefined } | { id: number; digest: string };

/** The process's hashing thread and the bodies it is hashing. */
class HashThread {
  private readonly worker = new Worker(WORKER_SOURCE, { eval: true, name: 'btrfly-sha256' });
  private readonly bodies = new Map<number, BackgroundSha256>();
  private lastId = 0;
  /** Promises of the bodies' that wait on the worker: while any does, the worker keeps the process alive. */
  private awaited = 0;

  constructor() {
    this.worker.unref();
    this.worker.on('message', (m: Reply) => this.bodies.get(m.id)?.reply(m));
    const fail = (e: Error): void => {
      if (thread === this) thread = undefined;
      const err = new BtrflyError('STORAGE', `the SHA-256 thread stopped: ${e.message}`, { cause: e });
      for (const body of this.bodies.values()) body.fail(err);
      this.bodies.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  }

  open(body: BackgroundSha256): number {
    const id = ++this.lastId;
    this.bodies.set(id, body);
    this.worker.postMessage({ id, open: true });
    return id;
  }

  post(message: { id: number; end?: boolean; drop?: boolean }): void {
    this.worker.postMessage(message);
  }

  /** Hands `bytes` (the first `length` of them) over to be hashed; the caller loses them until they come back. */
  hand(id: number, bytes: Uint8Array<ArrayBuffer>, length: number): void {
    this.worker.postMessage({ id, bytes, length }, [bytes.buffer]);
  }

  close(id: number): void {
    this.bodies.delete(id);
  }

  /**
   * Counts a promise that waits on the worker (+1 when made, -1 when settled): the process does
   * not end with a digest pending, and a writer left unfinished does not keep it alive.
   */
  awaiting(change: 1 | -1): void {
    this.awaited += change;
    if (this.awaited === 1 && change === 1) this.worker.ref();
    if (this.awaited === 0) this.worker.unref();
  }
}

let thread: HashThread | undefined;

function hashThread(): HashThread {
  thread ??= new HashThread();
  return thread;
}

/** The SHA-256 of one body, hashed on the process's hashing thread: `update` as bytes come, then `digest`. */
export class BackgroundSha256 {
  private readonly thread = hashThread();
  private readonly id: number;
  /** Buffers back from the worker, and how many were made. */
  private readonly free: Array<Uint8Array<ArrayBuffer>> = [];
  private made = 0;
  /** The buffer being filled, and its bytes so far. */
  private filling?: Uint8Array<ArrayBuffer>;
  private filled = 0;
  /** What `update` was given while every buffer was at the worker: copied as they come back. */
  private waiting: Uint8Array[] = [];
  private ended = false;
  private error?: Error;
  private wake?: { resolve: () => void; reject: (e: Error) => void; promise?: Promise<void> };
  private result?: { resolve: (hex: string) => void; reject: (e: Error) => void };

  constructor() {
    this.id = this.thread.open(this);
  }

  /**
   * Takes the next bytes: copied now as far as a buffer is free, the rest kept (not copied: the
   * chunk must not change until {@link room} resolves) until the worker gives one back.
   */
  update(chunk: Uint8Array): void {
    // A failure shows in `room()` and `digest()`; this is called where a throw would escape the stream.
    if (this.error) return;
    if (this.waiting.length) this.waiting.push(chunk);
    else this.copyIn(chunk);
  }

  /** Undefined when the next `update` may come at once, else a promise of when it may (a buffer is free again). */
  room(): Promise<void> | undefined {
    if (this.error) return Promise.reject(this.error);
    if (!this.full()) return undefined;
    if (!this.wake) {
      const promise = this.awaitWorker<void>((resolve, reject) => (this.wake = { resolve, reject }));
      this.wake!.promise = promise;
    }
    return this.wake!.promise;
  }

  /** The hex digest of all bytes given, once the worker has hashed them. */
  digest(): Promise<string> {
    if (this.error) return Promise.reject(this.error);
    const digest = this.awaitWorker<string>((resolve, reject) => (this.result = { resolve, reject }));
    this.endOnceIn();
    return digest;
  }

  /** Forgets the body (its write failed or was cancelled); the worker drops what it hashed. */
  cancel(): void {
    if (this.error) return;
    this.fail(new BtrflyError('STORAGE', 'the body write was cancelled'));
    this.thread.post({ id: this.id, drop: true });
    this.thread.close(this.id);
  }

  /** From the hashing thread: a buffer hashed and given back, or the digest. */
  reply(m: Reply): void {
    if (m.digest !== undefined) {
      this.thread.close(this.id);
      return this.result?.resolve(m.digest);
    }
    this.free.push(m.bytes);
    const waiting = this.waiting;
    this.waiting = [];
    for (const chunk of waiting) {
      if (this.waiting.length) this.waiting.push(chunk);
      else this.copyIn(chunk);
    }
    if (this.result) return this.endOnceIn();
    if (this.wake && !this.full()) {
      const { resolve } = this.wake;
      this.wake = undefined;
      resolve();
    }
  }

  fail(e: Error): void {
    this.error = e;
    this.wake?.reject(e);
    this.result?.reject(e);
    this.wake = this.result = undefined;
  }

  /** A promise settled from the worker's replies, counted while it waits ({@link HashThread.awaiting}). */
  private awaitWorker<T>(executor: (resolve: (v: T) => void, reject: (e: Error) => void) => void): Promise<T> {
    const thread = this.thread;
    thread.awaiting(1);
    return new Promise<T>(executor).finally(() => thread.awaiting(-1));
  }

  /** Whether every buffer is at the worker (or bytes wait for one). */
  private full(): boolean {
    return this.waiting.length > 0 || (!this.filling && !this.free.length && this.made === BUFFERS);
  }

  private copyIn(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.filling) {
        const next = this.free.pop() ?? (this.made < BUFFERS ? (this.made++, new Uint8Array(BATCH)) : undefined);
        if (!next) {
          this.waiting.push(chunk.subarray(offset));
          return;
        }
        this.filling = next;
        this.filled = 0;
      }
      const n = Math.min(chunk.length - offset, BATCH - this.filled);
      this.filling.set(chunk.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === BATCH) this.hand();
    }
  }

  /** Hands the buffer being filled to the worker. */
  private hand(): void {
    if (!this.filling || this.filled === 0) return;
    this.thread.hand(this.id, this.filling, this.filled);
    this.filling = undefined;
  }

  /** After `digest()`: once every byte is in a buffer, hands the last one over, and the end. */
  private endOnceIn(): void {
    if (this.ended || this.waiting.length) return;
    this.hand();
    this.thread.post({ id: this.id, end: true });
    this.ended = true;
  }
}
