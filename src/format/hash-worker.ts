/**
 * SHA-256 and the per-part GMAC tags of a large body on a thread of their own, so that on the
 * recorder's thread they no longer queue behind (or in front of) the client's TLS and the file
 * writes: SHA-256 runs at ~2 GiB/s here and was the largest item of a 1 GiB record's main thread
 * (docs/decisions.md, "Hashing off the main thread").
 *
 * One worker serves the process, started on first use and not holding the process open while
 * idle. It owns a fixed SharedArrayBuffer: {@link RINGS} rings of {@link RING_SIZE} bytes, one a
 * body, so memory is the same whatever the sizes and number of bodies (a body that finds every
 * ring taken is hashed on the main thread). The main thread copies each chunk into its ring and
 * rings a doorbell; the worker hashes what is there and moves the ring's tail on; a full ring
 * makes the writer wait until the worker says it has freed half of it, so a slow hasher slows
 * the writer as a slow disk does. The digest and tags come back in one message once the body has ended.
 *
 * A worker that fails or exits fails every body it was hashing: their digests never come, so
 * nothing is stored or tagged under a digest of bytes only partly seen.
 *
 * The worker's source is plain JavaScript run with `eval` (no build step between the
 * TypeScript sources and a worker file, so the same code runs under the tests and from dist).
 */
import { Worker } from 'node:worker_threads';
import { BtrflyError } from '../errors';
import { CHECK_PART, type BodyTags } from './body-checks';

/** Rings, so bodies hashed at once off the main thread: the machine has 2 cores, one worker. */
export const RINGS = 2;
/** Bytes a ring holds: a few of the tee's 256 KiB writes and the writers' 1 MiB reads, so the worker is rarely starved or the writer held. */
export const RING_SIZE = 4 * 1024 * 1024;
/** The worker hashes at most this much before it moves the tail on, so the writer gets room back as it goes. */
const SLICE = 256 * 1024;

// The shared memory: a control page of Int32 slots, the rings' keys, then the rings' bytes.
const CONTROL = 4096;
/** Int32 slot of the doorbell: the main thread adds one whenever any ring changes (and notifies, when the worker sleeps). */
const BELL = 0;
/** Int32 slot the worker sets while it waits on the doorbell. */
const SLEEPING = 1;
/**
 * A sleeping worker is woken once this much waits in a ring (or the body ends): a wake-up a
 * chunk (the tee's are often tens of KiB) cost the main thread ~0.6 s a GiB of futex calls and
 * preemptions on 2 cores.
 */
const WAKE_AT = 256 * 1024;
/** Int32 slots of ring r from `8 * (r + 1)`: state, generation (one a body), head, tail (bytes, mod 2^32). */
const STATE = 0;
const GEN = 1;
const HEAD = 2;
const TAIL = 3;
const TAGGED = 4;
/**
 * Set by the main thread while it waits for room in the ring, with the tail it waits for (half
 * the ring freed): the worker then posts a message once it gets there. (An `Atomics.notify` of
 * the main thread's `Atomics.waitAsync` held the worker ~0.5 ms each: 0.25–0.4 s a GiB.)
 */
const WANTS_ROOM = 5;
const WANTED_TAIL = 6;
const KEYS = 1024;
const ACTIVE = 1;
const ENDED = 2;
const ABORTED = 3;

const slot = (ring: number, field: number): number => 8 * (ring + 1) + field;


const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { createHash, createCipheriv, createSecretKey } = require('node:crypto');
const { sab, rings, ringSize, slice, control, keys, checkPart } = workerData;
const ctrl = new Int32Array(sab, 0, control / 4);
const bytes = Buffer.from(sab);
const slot = (r, f) => 8 * (r + 1) + f;
const local = new Array(rings).fill(undefined);
function open(r, gen) {
  const s = { gen, tail: Atomics.load(ctrl, slot(r, ${TAIL})) >>> 0, size: 0, hash: createHash('sha256'), done: false };
  if (Atomics.load(ctrl, slot(r, ${TAGGED})) === 1) {
    const k = bytes.subarray(keys + r * 32, keys + r * 32 + 24);
    s.key = createSecretKey(Buffer.from(k.subarray(0, 16)));
    s.nonce = Buffer.from(k.subarray(16, 24));
    s.tags = [];
    s.filled = 0;
  }
  return s;
}
function gmac(s) {
  const iv = Buffer.alloc(12);
  s.nonce.copy(iv, 0);
  iv.writeUInt32BE(s.tags.length, 8);
  return createCipheriv('aes-128-gcm', s.key, iv);
}
function closePart(s) {
  s.current.final();
  s.tags.push(s.current.getAuthTag());
  s.current = undefined;
  s.filled = 0;
}
function tag(s, view) {
  let off = 0;
  while (off < view.length) {
    if (!s.current) s.current = gmac(s);
    const n = Math.min(view.length - off, checkPart - s.filled);
    s.current.setAAD(view.subarray(off, off + n));
    s.filled += n;
    off += n;
    if (s.filled === checkPart) closePart(s);
  }
}
function step(r) {
  const state = Atomics.load(ctrl, slot(r, ${STATE}));
  if (state === 0) return false;
  const gen = Atomics.load(ctrl, slot(r, ${GEN}));
  let s = local[r];
  if (!s || s.gen !== gen) s = local[r] = open(r, gen);
  if (s.done) return false;
  if (state === ${ABORTED}) {
    s.done = true;
    parentPort.postMessage({ ring: r, gen, aborted: true });
    return false;
  }
  const head = Atomics.load(ctrl, slot(r, ${HEAD})) >>> 0;
  if (head !== s.tail) {
    const at = s.tail & (ringSize - 1);
    const n = Math.min((head - s.tail) >>> 0, slice, ringSize - at);
    const view = bytes.subarray(control + r * ringSize + at, control + r * ringSize + at + n);
    s.hash.update(view);
    if (s.tags) tag(s, view);
    s.size += n;
    s.tail = (s.tail + n) >>> 0;
    Atomics.store(ctrl, slot(r, ${TAIL}), s.tail | 0);
    if (Atomics.load(ctrl, slot(r, ${WANTS_ROOM})) === 1 && ((s.tail - Atomics.load(ctrl, slot(r, ${WANTED_TAIL}))) | 0) >= 0 && Atomics.exchange(ctrl, slot(r, ${WANTS_ROOM}), 0) === 1) {
      parentPort.postMessage({ ring: r, gen, room: true });
    }
    return true;
  }
  if (state !== ${ENDED}) return false;
  s.done = true;
  let tags;
  if (s.tags) {
    if (s.current) closePart(s);
    tags = Buffer.concat(s.tags);
  }
  parentPort.postMessage({ ring: r, gen, sha256: s.hash.digest('hex'), size: s.size, tags });
  return false;
}
for (;;) {
  const bell = Atomics.load(ctrl, ${BELL});
  let busy = false;
  for (let r = 0; r < rings; r++) busy = step(r) || busy;
  if (busy) continue;
  // Said before the wait: a main thread that rings after this notifies; one that rang before
  // it changed the bell, and the wait returns at once.
  Atomics.store(ctrl, ${SLEEPING}, 1);
  Atomics.wait(ctrl, ${BELL}, bell);
  Atomics.store(ctrl, ${SLEEPING}, 0);
}
`;

/** What the worker hands back for a body: its SHA-256, its size as the worker counted it, its tags when asked for. */
export interface WorkerDigest {
  sha256: string;
  size: number;
  tags?: BodyTags;
}

interface Reply {
  ring: number;
  gen: number;
  sha256?: string;
  size?: number;
  tags?: Uint8Array;
  aborted?: boolean;
  /** The ring has room again (the body goes on). */
  room?: boolean;
}

/** One body's ring: the main thread's side of it. */
export class RingSession {
  private head: number;
  /** Bytes not yet in the ring (it was full): at most what one write of the writer brought. */
  private queued: Buffer[] = [];
  private failure?: Error;
  private settled = false;
  /** Resolves the wait of {@link drained} (the worker freed room, or failed). */
  private wake?: () => void;
  private readonly result: Promise<WorkerDigest>;
  private settle!: { resolve: (d: WorkerDigest) => void; reject: (e: Error) => void };

  constructor(
    private readonly pool: HashWorker,
    readonly ring: number,
    readonly gen: number,
    private readonly nonce?: Buffer,
  ) {
    this.head = pool.load(slot(ring, TAIL));
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => undefined);
  }

  /** Copies `chunk` into the ring, as much as fits; the rest waits for {@link drained}. */
  update(chunk: Buffer): void {
    if (this.failure) return;
    if (this.queued.length > 0) this.queued.push(chunk);
    else {
      const rest = this.copy(chunk);
      if (rest) this.queued.push(rest);
    }
    if (((this.head - this.pool.load(slot(this.ring, TAIL))) >>> 0) >= WAKE_AT) this.pool.ring();
    else this.pool.nudge();
  }

  /** Whether bytes wait for room in the ring. */
  get waiting(): boolean {
    return this.queued.length > 0;
  }

  /** Resolves once every byte given is in the ring; rejects when the worker failed. */
  async drained(): Promise<void> {
    const ctrl = this.pool.ctrl;
    while (this.queued.length > 0) {
      if (this.failure) throw this.failure;
      this.flushQueued();
      if (this.queued.length === 0) break;
      this.pool.ring();
      const before = this.pool.load(slot(this.ring, TAIL));
      const wanted = (before + Math.min(RING_SIZE / 2, (this.head - before) >>> 0)) >>> 0;
      const woken = new Promise<void>((resolve) => (this.wake = resolve));
      Atomics.store(ctrl, slot(this.ring, WANTED_TAIL), wanted | 0);
      Atomics.store(ctrl, slot(this.ring, WANTS_ROOM), 1);
      // Read after asking: the worker, which moves the tail and then reads the ask, either saw
      // it (and posts) or had moved the tail before this read (which sees it).
      if (((this.pool.load(slot(this.ring, TAIL)) - wanted) | 0) >= 0) {
        Atomics.store(ctrl, slot(this.ring, WANTS_ROOM), 0);
        continue;
      }
      await woken;
    }
    if (this.failure) throw this.failure;
  }

  /** Ends the body: resolves with its digest once the worker has hashed every byte. */
  async digest(): Promise<WorkerDigest> {
    await this.drained();
    this.pool.setState(this.ring, ENDED);
    return this.result;
  }

  /** Gives the ring back without a digest (the body failed or was cancelled). */
  abort(): void {
    if (this.settled) return;
    this.queued = [];
    this.fail(new BtrflyError('STORAGE', 'body write was cancelled before it ended'));
    this.pool.setState(this.ring, ABORTED);
  }

  /** @internal the worker's answer for this body (its digest, or room in the ring), or its failure. */
  answer(reply: Reply | Error): void {
    if (!(reply instanceof Error) && reply.room) return this.wake?.();
    if (this.settled) return;
    if (reply instanceof Error) return this.fail(reply);
    this.settled = true;
    if (reply.aborted || reply.sha256 === undefined) return this.settle.reject(this.failure ?? new BtrflyError('STORAGE', 'body write was cancelled before it ended'));
    const raw = reply.tags ? Buffer.from(reply.tags.buffer, reply.tags.byteOffset, reply.tags.byteLength) : undefined;
    const tags: Buffer[] = [];
    if (raw) for (let i = 0; i < raw.length; i += 16) tags.push(raw.subarray(i, i + 16));
    const nonce = this.nonce;
    this.settle.resolve({ sha256: reply.sha256, size: reply.size ?? 0, ...(nonce && raw ? { tags: { nonce, finish: () => tags } } : {}) });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.settled = true;
    this.settle.reject(this.failure);
    this.wake?.();
  }

  private flushQueued(): void {
    while (this.queued.length > 0) {
      const rest = this.copy(this.queued[0]);
      if (rest) {
        this.queued[0] = rest;
        return;
      }
      this.queued.shift();
    }
  }

  /** Copies what fits of `chunk` at the head; returns what did not fit. */
  private copy(chunk: Buffer): Buffer | undefined {
    let offset = 0;
    const base = CONTROL + this.ring * RING_SIZE;
    while (offset < chunk.length) {
      const tail = this.pool.load(slot(this.ring, TAIL));
      const free = RING_SIZE - ((this.head - tail) >>> 0);
      if (free === 0) break;
      const at = this.head & (RING_SIZE - 1);
      const n = Math.min(free, chunk.length - offset, RING_SIZE - at);
      this.pool.bytes.set(chunk.subarray(offset, offset + n), base + at);
      offset += n;
      this.head = (this.head + n) >>> 0;
      Atomics.store(this.pool.ctrl, slot(this.ring, HEAD), this.head | 0);
    }
    return offset === chunk.length ? undefined : chunk.subarray(offset);
  }
}

/** The process's hash worker and its rings. */
export class HashWorker {
  readonly ctrl: Int32Array;
  readonly bytes: Buffer;
  private readonly worker: Worker;
  private readonly sessions: Array<RingSession | undefined> = new Array(RINGS).fill(undefined);
  private gen = 0;
  private dead?: Error;

  constructor(private readonly onDead: (w: HashWorker) => void) {
    const sab = new SharedArrayBuffer(CONTROL + RINGS * RING_SIZE);
    this.ctrl = new Int32Array(sab, 0, CONTROL / 4);
    this.bytes = Buffer.from(sab);
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sab, rings: RINGS, ringSize: RING_SIZE, slice: SLICE, control: CONTROL, keys: KEYS, checkPart: CHECK_PART },
      // The worker holds nothing but hashes: a small heap.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 16 },
    });
    this.worker.unref();
    this.worker.on('message', (r: Reply) => {
      const s = this.sessions[r.ring];
      if (!s || s.gen !== r.gen) return;
      if (r.room) return s.answer(r);
      this.sessions[r.ring] = undefined;
      this.updateRef();
      s.answer(r);
    });
    this.worker.on('error', (e: Error) => this.die(new BtrflyError('STORAGE', `the hashing thread failed: ${e.message}`)));
    this.worker.on('exit', (code) => this.die(new BtrflyError('STORAGE', `the hashing thread exited (code ${code}) before a body's digest was made`)));
  }

  /**
   * A ring for one body, or undefined when every ring is taken (or the worker is dead): that
   * body is then hashed on the calling thread.
   * @param secret the tagger's key and nonce, when the body's parts are to be tagged too
   */
  open(secret?: { key: Buffer; nonce: Buffer }): RingSession | undefined {
    if (this.dead) return undefined;
    const ring = this.sessions.findIndex((s) => s === undefined);
    if (ring < 0) return undefined;
    const gen = (this.gen = (this.gen + 1) | 0);
    if (secret) {
      secret.key.copy(this.bytes, KEYS + ring * 32);
      secret.nonce.copy(this.bytes, KEYS + ring * 32 + 16);
    }
    Atomics.store(this.ctrl, slot(ring, TAGGED), secret ? 1 : 0);
    const session = new RingSession(this, ring, gen, secret?.nonce);
    Atomics.store(this.ctrl, slot(ring, HEAD), this.load(slot(ring, TAIL)) | 0);
    Atomics.store(this.ctrl, slot(ring, GEN), gen);
    Atomics.store(this.ctrl, slot(ring, STATE), ACTIVE);
    this.sessions[ring] = session;
    this.updateRef();
    this.ring();
    return session;
  }

  /** Ends the worker (the tests, to see a body whose hashing thread died fail). */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  load(index: number): number {
    return Atomics.load(this.ctrl, index) >>> 0;
  }

  setState(ring: number, state: number): void {
    Atomics.store(this.ctrl, slot(ring, STATE), state);
    this.ring();
  }

  /** Tells the worker a ring changed, waking it if it sleeps. */
  ring(): void {
    Atomics.add(this.ctrl, BELL, 1);
    if (Atomics.load(this.ctrl, SLEEPING) === 1) Atomics.notify(this.ctrl, BELL, 1);
  }

  /** Tells a worker that is awake (it will look again before it sleeps) without waking one that sleeps. */
  nudge(): void {
    Atomics.add(this.ctrl, BELL, 1);
  }

  /** The worker keeps the process alive only while a body is being hashed. */
  private updateRef(): void {
    if (this.sessions.some((s) => s !== undefined)) this.worker.ref();
    else this.worker.unref();
  }

  private die(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    this.onDead(this);
    for (let r = 0; r < RINGS; r++) {
      const s = this.sessions[r];
      this.sessions[r] = undefined;
      s?.answer(e);
    }
  }
}

let current: HashWorker | undefined;

/** The process's hash worker, started on first use (again after one died). */
export function hashWorker(): HashWorker {
  current ??= new HashWorker((dead) => {
    if (current === dead) current = undefined;
  });
  return current;
}

/** The running hash worker, if any (the tests end it to see a body fail). */
export function runningHashWorker(): HashWorker | undefined {
  return current;
}
