/**
 * Small bodies into packs through one long-lived `git fast-import` (see {@link SmallBodyPacker}).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gitArgv, gitEnv, gitError, spawnFailed } from './git-process';

/** A small body as stored by {@link Git.storeSmallBody}: its one blob and the tree that names it. */
export interface SmallBodyObjects {
  oid: string;
  treeOid: string;
}

/**
 * How long a small body may wait in `git fast-import` for the next checkpoint, and how many
 * bodies or bytes make one at once. Each checkpoint ends one pack (and its index), so this
 * trades the number of packs for waiting: the client already has its answer, and the recorder
 * keeps at most 256 exchanges answered but not stored (src/engine/session/recorder.ts).
 */
const SMALL_PACK_DELAY_MS = 100;
const SMALL_PACK_MAX_BODIES = 128;
const SMALL_PACK_MAX_BYTES = 32 * 1024 * 1024;
/** Blobs are written to fast-import in groups of about this many bytes, not one write a body. */
const SMALL_PACK_WRITE_BYTES = 1024 * 1024;
const NEWLINE = Buffer.from('\n');

/** The branch of fast-import's scratch commits; never written (see {@link SmallBodyPacker}). */
const SCRATCH_REF = 'refs/btrfly/small-bodies';

/** git's id of an object: the hash of `<type> <size>\0` and the content. */
function objectId(algorithm: 'sha1' | 'sha256', type: 'blob' | 'tree', content: Buffer): string {
  return createHash(algorithm).update(`${type} ${content.length}\0`).update(content).digest('hex');
}

interface PackBatch {
  files: string[];
  bytes: number;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

function packBatch(): PackBatch {
  let settle!: Pick<PackBatch, 'resolve' | 'reject'>;
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  // Every body of the batch awaits it; a failure must not also go unhandled here.
  done.catch(() => undefined);
  return { files: [], bytes: 0, done, ...settle };
}

/**
 * One long-lived `git fast-import` writing small bodies into packs: each body's blob goes down
 * one pipe, with no temp file, no process and no loose object per body, and a `checkpoint`
 * ends the pack of a batch of them ({@link SMALL_PACK_DELAY_MS}). A body's promise resolves
 * only once the pack that holds its blob and tree is on disk (git's `progress` line after the
 * checkpoint), so the journal never names an object that is not there (docs/decisions.md,
 * "Small-file record").
 *
 * fast-import makes trees only for commits: a batch's bodies go into one scratch commit on
 * {@link SCRATCH_REF}, and a `reset` without `from` before the checkpoint leaves that ref
 * unwritten, so the commit is garbage for `gc` and the trees are in the pack. The ids are
 * computed here, as git computes them, so nothing but the progress line is read back. While
 * fast-import runs, each of its packs has a `.keep`, so a `gc` meanwhile leaves them alone.
 */
export class SmallBodyPacker {
  private child?: ChildProcess;
  private stderr = '';
  private open = packBatch();
  /** Checkpoints sent and not yet answered, by their progress number. */
  private readonly checkpoints = new Map<number, PackBatch>();
  private sent = 0;
  private timer?: NodeJS.Timeout;
  /** Blobs not yet written to git's stdin (up to SMALL_PACK_WRITE_BYTES, or the next checkpoint). */
  private unsent: Buffer[] = [];
  private unsentBytes = 0;
  private partial = '';

  constructor(
    private readonly gitDir: string,
    private readonly algorithm: 'sha1' | 'sha256',
  ) {}

  async store(bytes: Buffer, name: string): Promise<SmallBodyObjects> {
    const oid = objectId(this.algorithm, 'blob', bytes);
    const treeOid = objectId(this.algorithm, 'tree', Buffer.concat([Buffer.from(`100644 ${name}\0`), Buffer.from(oid, 'hex')]));
    this.ensure();
    const batch = this.open;
    this.unsent.push(Buffer.from(`blob\ndata ${bytes.length}\n`), bytes, NEWLINE);
    this.unsentBytes += bytes.length;
    if (this.unsentBytes >= SMALL_PACK_WRITE_BYTES) this.send();
    batch.files.push(`M 100644 ${oid} ${treeOid}/${name}\n`);
    batch.bytes += bytes.length;
    if (batch.files.length >= SMALL_PACK_MAX_BODIES || batch.bytes >= SMALL_PACK_MAX_BYTES) this.checkpoint();
    else this.timer ??= setTimeout(() => this.checkpoint(), SMALL_PACK_DELAY_MS);
    await batch.done;
    return { oid, treeOid };
  }

  /** Writes the blobs held back to git in one go (one wake-up of git for many small bodies). */
  private send(): void {
    const stdin = this.child?.stdin;
    if (!stdin) return;
    stdin.cork();
    for (const b of this.unsent) stdin.write(b);
    stdin.uncork();
    this.unsent = [];
    this.unsentBytes = 0;
  }

  /** Ends the pack of the bodies sent so far. */
  private checkpoint(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.open;
    if (!batch.files.length || !this.child) return;
    this.send();
    this.open = packBatch();
    const n = ++this.sent;
    this.checkpoints.set(n, batch);
    const commit = `commit ${SCRATCH_REF}\ncommitter btrfly <btrfly@localhost> 0 +0000\ndata 0\n${batch.files.join('')}\n`;
    this.child.stdin!.write(`${commit}reset ${SCRATCH_REF}\n\ncheckpoint\n\nprogress ${n}\n`);
  }

  /** Starts `git fast-import` now rather than at the first body (its spawn holds the thread). */
  start(): void {
    this.ensure();
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    // fastimport.unpackLimit=0: a checkpoint of a few objects stays a pack, instead of git
    // running unpack-objects to make them loose (its default below 100 objects). No deflate
    // and no delta: a small body is zstd or was found not to shrink (body-writer.ts), and
    // fast-import would deflate it again and try it as a delta of the one before.
    const args = ['-c', 'fastimport.unpackLimit=0', '-c', 'pack.compression=0', '-c', 'pack.depth=0', 'fast-import', '--quiet'];
    const child = spawn('git', gitArgv(this.gitDir, args), { env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.stderr = '';
    this.partial = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      const lines = (this.partial + s).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) {
        const n = Number(/^progress (\d+)$/.exec(line)?.[1]);
        this.checkpoints.get(n)?.resolve();
        this.checkpoints.delete(n);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr = (this.stderr + s).slice(-16384)));
    // EPIPE on a dead process surfaces as the exit below.
    child.stdin!.on('error', () => undefined);
    const fail = (e: Error): void => {
      if (this.child !== child) return;
      this.child = undefined;
      clearTimeout(this.timer);
      this.timer = undefined;
      const lost = [...this.checkpoints.values(), this.open];
      this.checkpoints.clear();
      this.open = packBatch();
      this.unsent = [];
      this.unsentBytes = 0;
      for (const b of lost) b.reject(e);
    };
    child.on('error', (e) => fail(spawnFailed(['fast-import'], e)));
    child.on('exit', (code, signal) => fail(gitError(['fast-import'], this.stderr || `exited with ${code ?? signal}`)));
    return child;
  }

  /** Stores the bodies sent so far, then ends the process. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.checkpoint();
    await Promise.allSettled([...this.checkpoints.values()].map((b) => b.done));
    if (this.child !== child) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
    });
  }
}
