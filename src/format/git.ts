/**
 * The git executable as btrfly's object store: one-shot commands, and the long-lived
 * processes that keep per-object cost low (`cat-file --batch`, `hash-object --stdin-paths`,
 * `mktree --batch`, `fast-import` for small bodies). Never isomorphic-git: it holds whole objects in memory and cannot read
 * packs over 2 GiB (docs/decisions.md, the libraries: isomorphic-git). Every failure becomes a one-line BtrflyError('GIT').
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { setPriority } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { BtrflyError } from '../errors';
import { repairAdvice } from './types';

/** Objects up to this size are read whole through `cat-file --batch`; larger ones are streamed. */
export const SMALL_OBJECT_LIMIT = 1024 * 1024;

/**
 * A small body: one part of at most {@link SMALL_OBJECT_LIMIT} bytes, raw and as stored. It is
 * read whole in one `cat-file` and checked by its SHA-256 (body-reader.ts), so its writer makes
 * no per-part checks file for it (body-writer.ts).
 */
export function isSmallBody(body: { size: number; parts: ReadonlyArray<{ storedSize: number }> }): boolean {
  return body.parts.length === 1 && body.size <= SMALL_OBJECT_LIMIT && body.parts[0].storedSize <= SMALL_OBJECT_LIMIT;
}

/** The niceness of the long-lived `hash-object` (0 is normal, 19 the lowest priority). */
const HASHER_NICE = 10;

/** A tree entry for {@link Git.mktree}. */
export interface TreeEntry {
  mode: '100644' | '040000';
  type: 'blob' | 'tree';
  oid: string;
  name: string;
}

/** The result of a one-shot git command. */
export interface GitResult {
  stdout: string;
  stderr: string;
  code: number;
}

// Variables that would point git at another repository or index than the one we name.
const GIT_LOCATION_VARS = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
];

function gitEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' };
  for (const v of GIT_LOCATION_VARS) delete env[v];
  return { ...env, ...extra };
}

/** What a failed git command's message ends with. */
const GIT_ADVICE = 'check that git ≥ 2.38 is installed and the archive is intact (btrfly verify)';

/** A git failure's message without {@link GIT_ADVICE}, for a caller that knows better what to do (a damaged archive: the repair). */
export function withoutGitAdvice(message: string): string {
  return message.endsWith(`: ${GIT_ADVICE}`) ? message.slice(0, -(GIT_ADVICE.length + 2)) : message;
}

function gitError(args: readonly string[], detail: string, cause?: unknown): BtrflyError {
  // A full disk is not a broken git: say so (the command maps it to the mount point and what to free).
  if (/No space left on device|Disk quota exceeded|Out of diskspace/i.test(detail)) {
    return new BtrflyError('STORAGE', `git ${args[0]} failed: no space left on device`, { cause, data: { args: [...args], noSpace: true } });
  }
  const first = detail.split('\n').find((l) => l.trim()) ?? 'failed';
  return new BtrflyError('GIT', `git ${args[0]} failed: ${first.trim()}: ${GIT_ADVICE}`, {
    cause,
    data: { args: [...args] },
  });
}

/**
 * Pack windows for every git process btrfly starts, also handed to the local `upload-pack` /
 * `receive-pack` of a file remote. git maps packs in windows of 1 GiB up to 8 GiB by default,
 * and every page it touched stays resident (file pages, but counted all the same): a
 * pack-objects sending a 3 GiB pack showed 3 GiB, and one `cat-file --batch` streaming the
 * parts of a pulled 512 MiB body showed 508 MiB. Small windows keep both flat
 * (docs/notes/remotes.md).
 */
const PACK_WINDOWS = ['-c', 'core.packedGitWindowSize=16m', '-c', 'core.packedGitLimit=64m'];

/** git's argv for a command on the archive at `gitDir`, with its pack windows. */
function gitArgv(gitDir: string, args: readonly string[]): string[] {
  return ['--git-dir', gitDir, ...PACK_WINDOWS, ...args];
}

/**
 * For a remote on this machine (a path or file:// URL), the `--upload-pack` / `--receive-pack`
 * programs to run with settings that keep them flat and fast whatever the remote repository's
 * own config: git drops GIT_CONFIG_PARAMETERS for the local side of a file transport, so `-c`
 * alone does not reach them. Measured on a plain `git init --bare` remote and a 512 MiB body
 * (docs/notes/remotes.md): receive-pack exploded the 70-object pack into zlib-6 loose objects,
 * and upload-pack then searched deltas among 8 MiB parts (482 MiB RSS, 162 s). Kept whole, and
 * with parts above bigFileThreshold (never delta-searched), the same pull is flat.
 * A server on another host runs its own git with its own settings (see docs/notes/remotes.md).
 */
export function localTransportPrograms(url: string): { uploadPack: string; receivePack: string } | undefined {
  if (!url.startsWith('/') && !/^file:\/\//i.test(url)) return undefined;
  const common = [...PACK_WINDOWS, '-c', 'core.bigFileThreshold=1m', '-c', 'pack.compression=0'];
  return {
    uploadPack: `git ${common.join(' ')} upload-pack`,
    receivePack: `git ${[...common, '-c', 'receive.unpackLimit=1'].join(' ')} receive-pack`,
  };
}

/**
 * The line of git's stderr that says what went wrong: the first `fatal:`/`error:` line or the
 * ssh or http complaint before it (`Permission denied (publickey)`), not progress noise.
 */
export function lastGitMessage(stderr: string): string {
  const lines = stderr
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter((l) => l && !/^(remote: )?(Counting|Compressing|Writing|Receiving|Resolving|Enumerating|Total|Unpacking|Delta compression)/.test(l));
  const telling = lines.find((l) => /denied|refused|timed out|could not resolve|unable to access|authentication failed|not found|does not appear/i.test(l));
  const found = telling ?? lines.find((l) => /^(fatal|error):/.test(l)) ?? lines[lines.length - 1] ?? 'failed';
  return found.replace(/^(fatal|error): /, '').replace(/\.$/, '');
}

function transferError(args: readonly string[], stderr: string, stdout = ''): BtrflyError {
  // stdout's tail too: git-lfs writes some refusals there (a push of missing or corrupt objects).
  return new BtrflyError('NETWORK', `git ${args[0]} failed: ${lastGitMessage(stderr)}`, { data: { args: [...args], stderr, stdout: stdout.slice(-16384) } });
}

function spawnFailed(args: readonly string[], e: NodeJS.ErrnoException): BtrflyError {
  if (e.code === 'ENOENT') {
    return new BtrflyError('GIT', 'git is not installed or not on PATH: install git ≥ 2.38', { cause: e });
  }
  return gitError(args, e.message, e);
}

/**
 * A long-lived git process that answers requests in order: starts on first use, and a failure
 * (it would not start, or it exited with requests pending) rejects every pending request and
 * lets the next request start a fresh process. A subclass reads the answers from stdout.
 */
abstract class BatchProcess<T> {
  private child?: ChildProcess;
  protected pending: Array<{ resolve: (answer: T) => void; reject: (e: Error) => void }> = [];
  private stderr = '';

  /** @param nice a lower CPU priority for the process (`setpriority`), for work that may fall behind */
  constructor(
    private readonly gitDir: string,
    protected readonly args: string[],
    private readonly nice?: number,
  ) {}

  /** Sends `input` (which must end with the terminator the command expects) and resolves with its answer. */
  request(input: string): Promise<T> {
    const child = this.ensure();
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      child.stdin!.write(input);
    });
  }

  /** Starts reading a fresh process's answers from its stdout. */
  protected abstract listen(stdout: Readable): void;

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn('git', gitArgv(this.gitDir, this.args), { env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    if (this.nice !== undefined && child.pid !== undefined) {
      try {
        setPriority(child.pid, this.nice);
      } catch {
        // Not allowed here (lowering one's own child's priority normally is): run at normal priority.
      }
    }
    this.stderr = '';
    this.listen(child.stdout!);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (this.stderr += s));
    // EPIPE on a dead process surfaces as the exit below; do not crash on it.
    child.stdin!.on('error', () => undefined);
    const fail = (e: Error): void => {
      if (this.child === child) this.child = undefined;
      for (const p of this.pending.splice(0)) p.reject(e);
    };
    child.on('error', (e) => fail(spawnFailed(this.args, e)));
    child.on('exit', (code, signal) => {
      if (this.pending.length) fail(gitError(this.args, this.stderr || `exited with ${code ?? signal}`));
      else if (this.child === child) this.child = undefined;
    });
    return child;
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
    });
  }
}

/**
 * A line-oriented long-lived git process: one request line in, one answer line out, in order.
 * Used for `hash-object --stdin-paths` (path → oid) and `mktree --batch` (tree → oid).
 */
class LineProcess extends BatchProcess<string> {
  private partial = '';

  protected listen(stdout: Readable): void {
    this.partial = '';
    stdout.setEncoding('utf8');
    stdout.on('data', (s: string) => {
      const lines = (this.partial + s).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) this.pending.shift()?.resolve(line);
    });
  }
}

/**
 * `git cat-file --batch`, kept running: small objects (manifests, small body parts) are read
 * whole into a Buffer with no process start per object. Large blobs go through {@link Git.streamBlobs}.
 */
class CatFileBatch extends BatchProcess<Buffer | null> {
  private buf: Buffer = Buffer.alloc(0);
  private want = -1; // bytes of content (plus its newline) still expected for the head request; -1: reading a header
  private chunks: Buffer[] = [];
  /** The head request's object as cat-file named it: its id and its header for the hash. */
  private head = { oid: '', header: '' };

  constructor(gitDir: string) {
    super(gitDir, ['cat-file', '--batch']);
  }

  /** The object's content, or null when it does not exist. */
  read(name: string): Promise<Buffer | null> {
    if (name.includes('\n')) return Promise.reject(gitError(['cat-file'], `object name with a newline: ${JSON.stringify(name)}`));
    return this.request(name + '\n');
  }

  protected listen(stdout: Readable): void {
    this.buf = Buffer.alloc(0);
    this.want = -1;
    this.chunks = [];
    stdout.on('data', (b: Buffer) => this.onData(b));
  }

  private onData(b: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
    for (;;) {
      if (this.want < 0) {
        const nl = this.buf.indexOf(10);
        if (nl < 0) return;
        const header = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
          this.pending.shift()?.resolve(null);
          continue;
        }
        const [oid, type, size] = header.split(' ');
        this.head = { oid, header: `${type} ${size}\0` };
        this.want = Number(size) + 1;
        this.chunks = [];
      }
      const take = Math.min(this.want, this.buf.length);
      if (take > 0) this.chunks.push(this.buf.subarray(0, take));
      this.buf = this.buf.subarray(take);
      this.want -= take;
      if (this.want > 0) return;
      this.want = -1;
      const whole = Buffer.concat(this.chunks);
      this.chunks = [];
      const content = whole.subarray(0, whole.length - 1);
      // git does not check a loose object against its id when it reads one: a flipped byte in a
      // manifest would be taken as recorded (a header value, a status). Checked here, for every object read whole.
      const { oid, header } = this.head;
      const actual = createHash(oid.length === 64 ? 'sha256' : 'sha1').update(header).update(content).digest('hex');
      if (actual === oid) this.pending.shift()?.resolve(content);
      else this.pending.shift()?.reject(new BtrflyError('GIT', `git object ${oid} is damaged: its bytes hash to ${actual}: ${repairAdvice()}`, { data: { oid } }));
    }
  }
}

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
class SmallBodyPacker {
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

/**
 * One archive's git: `--git-dir` fixed, the long-lived helpers started on first use and
 * ended by {@link Git.close}.
 */
export class Git {
  private catFile?: CatFileBatch;
  private hasher?: LineProcess;
  private treeMaker?: LineProcess;
  private packer?: Promise<SmallBodyPacker>;

  constructor(readonly gitDir: string) {}

  /**
   * Runs one git command to completion.
   * @param opts.ok exit statuses that are not failures (default `[0]`); others throw BtrflyError('GIT').
   */
  run(args: string[], opts: { input?: string | Buffer; ok?: number[]; env?: NodeJS.ProcessEnv } = {}): Promise<GitResult> {
    return this.collect(args, opts);
  }

  /** Spawns git with the archive's `--git-dir`, for callers that stream its output. */
  spawn(args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('git', gitArgv(this.gitDir, args), { ...opts, env: gitEnv(opts.env) });
  }

  /**
   * Runs a transport command (`push`, `fetch`) that talks to a remote. git does the transfer
   * itself, so btrfly's memory stays flat whatever the size. Its stderr (progress, errors) is
   * passed to `opts.progress` as it comes when set, and the tail is kept for the error message.
   * The user's own git setup applies: ssh keys and agent, credential helpers, `http.*` config.
   * @param opts.interactive let git ask for a password on the terminal (otherwise it fails at once)
   * @param opts.ok exit statuses that are not failures (default `[0]`); others throw BtrflyError('NETWORK')
   * @param opts.signal stops git (SIGTERM) when it aborts; the transfer then rejects with the signal's reason
   */
  transfer(
    args: string[],
    opts: { progress?: NodeJS.WritableStream; interactive?: boolean; ok?: number[]; env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {},
  ): Promise<GitResult> {
    const env = { ...opts.env, ...(opts.interactive ? { GIT_TERMINAL_PROMPT: '1' } : {}) };
    return this.collect(args, { ok: opts.ok, env, signal: opts.signal, transfer: { progress: opts.progress, interactive: opts.interactive } });
  }

  /**
   * Runs git to completion and collects its output: {@link Git.run}, or with `opts.transfer`
   * {@link Git.transfer}, whose stdin is the terminal's or none, whose stderr is progress (only
   * its tail is kept) and whose failure is a NETWORK error.
   */
  private collect(
    args: string[],
    opts: {
      input?: string | Buffer;
      ok?: number[];
      env?: NodeJS.ProcessEnv;
      signal?: AbortSignal;
      transfer?: { progress?: NodeJS.WritableStream; interactive?: boolean };
    },
  ): Promise<GitResult> {
    const ok = opts.ok ?? [0];
    const transfer = opts.transfer;
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    // A transfer that can be stopped runs in a process group of its own, so that stopping it stops
    // its transport too (git-remote-https, ssh, git-lfs): killed alone, git leaves a helper that
    // still waits on the remote and holds the pipes open. Not when it may ask on the terminal: a
    // process group in the background may not read from it (and Ctrl-C there reaches them all).
    const group = signal !== undefined && transfer !== undefined && !transfer.interactive;
    return new Promise((resolve, reject) => {
      const child = spawn('git', gitArgv(this.gitDir, args), {
        env: gitEnv(opts.env),
        // stdin stays the terminal's when asking is allowed, so ssh and credential prompts work.
        stdio: [transfer ? (transfer.interactive ? 'inherit' : 'ignore') : 'pipe', 'pipe', 'pipe'],
        detached: group,
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr!.setEncoding('utf8').on('data', (s: string) => {
        transfer?.progress?.write(s);
        // A transfer's progress lines repeat with \r thousands of times: keep only the tail for messages.
        stderr = transfer ? (stderr + s).slice(-16384) : stderr + s;
      });
      const stop = (): void => {
        if (group && child.pid) {
          try {
            process.kill(-child.pid, 'SIGTERM');
            return;
          } catch {
            // The group is gone already.
          }
        }
        child.kill('SIGTERM');
      };
      signal?.addEventListener('abort', stop, { once: true });
      // Stopped: done when git is, whatever a helper of its still holds open.
      child.on('exit', () => {
        if (!signal?.aborted) return;
        child.stdout!.destroy();
        child.stderr!.destroy();
        reject(signal.reason as Error);
      });
      child.on('error', (e) => reject(spawnFailed(args, e)));
      child.on('close', (code, killedBy) => {
        signal?.removeEventListener('abort', stop);
        if (signal?.aborted) reject(signal.reason as Error);
        else if (code !== null && ok.includes(code)) resolve({ stdout, stderr, code });
        else if (transfer) reject(transferError(args, stderr || `exited with ${code ?? killedBy}`, stdout));
        else reject(gitError(args, stderr || `exited with ${code ?? killedBy}`));
      });
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(opts.input);
    });
  }

  /** A whole object through the long-lived `cat-file --batch`; null when missing. Only for small objects. */
  readObject(name: string): Promise<Buffer | null> {
    this.catFile ??= new CatFileBatch(this.gitDir);
    return this.catFile.read(name);
  }

  /**
   * Streams blobs one after another from one `git cat-file --batch` process of their own: the
   * large parts of one body cost one process start, not one a part (each `spawn` blocks the main
   * thread for ~5 ms; 128 of them were 13 % of a 1 GiB playback's main thread,
   * docs/decisions.md "Archive storage"). A slow consumer holds up only its own pipe
   * (backpressure reaches git) and never the shared batch reader. A blob whose stream was
   * destroyed is read past; git is stopped once every stream is closed. A stream fails with
   * BtrflyError BODY_MISSING when its object is missing, GIT when git fails.
   */
  streamBlobs(oids: readonly string[]): Readable[] {
    const args = ['cat-file', '--batch'];
    const bad = oids.find((o) => !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(o));
    if (bad !== undefined) throw gitError(args, `not an object id: ${JSON.stringify(bad)}`);
    const child = this.spawn(args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const outs = oids.map(() => new PassThrough({ highWaterMark: 1024 * 1024 }));
    const stdout = child.stdout!;
    let index = 0; // the blob whose header or bytes come next
    let left = -1; // bytes of blob `index` still to come, its trailing newline included; -1: its header
    let header = '';
    let stderr = '';
    let closed = 0;
    const failRest = (e: Error): void => {
      for (const out of outs.slice(index)) out.destroy(e);
    };
    for (const out of outs) {
      // A later blob can fail (missing) before its reader gets to it: the reader meets the
      // error then (`stream.errored`), so it must not be thrown as an unhandled 'error' now.
      out.on('error', () => undefined);
      out.on('drain', () => stdout.resume());
      out.on('close', () => {
        stdout.resume();
        if (++closed === outs.length && child.exitCode === null && child.signalCode === null) child.kill();
      });
    }
    stdout.on('data', (b: Buffer) => {
      let at = 0;
      while (at < b.length && index < outs.length) {
        if (left < 0) {
          const nl = b.indexOf(10, at);
          header += b.toString('latin1', at, nl < 0 ? b.length : nl);
          if (nl < 0) return;
          at = nl + 1;
          const [oid, type, size] = header.split(' ');
          header = '';
          if (oid !== oids[index] || type !== 'blob' || !/^\d+$/.test(size ?? '')) {
            const e = type === 'missing' ? new BtrflyError('BODY_MISSING', `object ${oids[index]} is missing`) : gitError(args, `${oids[index]} is not a blob`);
            outs[index++].destroy(e);
            continue;
          }
          left = Number(size) + 1;
          continue;
        }
        const take = Math.min(left, b.length - at);
        const content = Math.min(take, left - 1);
        const out = outs[index];
        if (content > 0 && !out.destroyed && !out.write(b.subarray(at, at + content))) stdout.pause();
        at += take;
        left -= take;
        if (left === 0) {
          out.end();
          index++;
          left = -1;
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(oids.map((o) => `${o}\n`).join(''));
    child.on('error', (e) => failRest(spawnFailed(args, e)));
    child.on('close', (code, signal) => failRest(gitError(args, stderr || `exited with ${code ?? signal} before the end of its objects`)));
    return outs;
  }

  /**
   * Stores a file's bytes as a loose blob through a long-lived `hash-object -w --no-filters --stdin-paths`
   * (the parts of large bodies; small bodies go through {@link Git.storeSmallBody}).
   */
  async hashFile(path: string): Promise<string> {
    if (path.includes('\n')) throw gitError(['hash-object'], `path with a newline: ${JSON.stringify(path)}`);
    const args = ['hash-object', '-w', '--no-filters', '--stdin-paths'];
    // Niced: while a download streams through the proxy, the client's bytes come first and git
    // catches up with the parts queued on disk (body-writer.ts, MAX_PARTS_WAITING).
    this.hasher ??= new LineProcess(this.gitDir, args, HASHER_NICE);
    return this.checkOid(await this.hasher.request(path + '\n'), 'hash-object');
  }

  /**
   * Stores a small body held whole in memory (one part, named `name` in its tree) through the
   * long-lived `git fast-import` ({@link SmallBodyPacker}); resolves once its blob and tree are
   * in a pack on disk. In place of a temp file, a `hash-object` and a `mktree` per body: those
   * were most of what a small file recorded cost (docs/decisions.md, "Small-file record").
   */
  async storeSmallBody(bytes: Buffer, name: string): Promise<SmallBodyObjects> {
    if (/[\n\t/]/.test(name) || !name) throw gitError(['fast-import'], `bad tree entry name ${JSON.stringify(name)}`);
    this.packer ??= this.run(['rev-parse', '--show-object-format']).then(({ stdout }) => new SmallBodyPacker(this.gitDir, stdout.trim() === 'sha256' ? 'sha256' : 'sha1'));
    const packer = await this.packer.catch((e: unknown) => {
      this.packer = undefined;
      throw e;
    });
    return packer.store(bytes, name);
  }

  /** Stores small in-memory content (a manifest) as a blob. */
  async hashBytes(content: string | Buffer): Promise<string> {
    const { stdout } = await this.run(['hash-object', '-w', '--no-filters', '--stdin'], { input: content });
    return this.checkOid(stdout.trim(), 'hash-object');
  }

  /** Writes one tree through the long-lived `mktree --batch`; every entry's object must exist. */
  async mktree(entries: readonly TreeEntry[]): Promise<string> {
    for (const e of entries) {
      if (/[\n\t/]/.test(e.name) || !e.name) throw gitError(['mktree'], `bad tree entry name ${JSON.stringify(e.name)}`);
    }
    const text = entries.map((e) => `${e.mode} ${e.type} ${e.oid}\t${e.name}\n`).join('');
    // An empty line ends one tree in --batch mode; an empty tree is just the empty line.
    const attempt = (): Promise<string> => {
      this.treeMaker ??= new LineProcess(this.gitDir, ['mktree', '--batch']);
      return this.treeMaker.request(text + '\n');
    };
    try {
      return this.checkOid(await attempt(), 'mktree');
    } catch {
      // A long-lived mktree does not see packs written after it started (another process's
      // gc moved loose objects into one): one retry in a fresh process.
      await this.treeMaker?.close();
      this.treeMaker = undefined;
      return this.checkOid(await attempt(), 'mktree');
    }
  }

  /** Writes a commit object; the ref is moved separately by {@link Git.updateRef}. */
  async commitTree(tree: string, parents: readonly string[], message: string, env?: NodeJS.ProcessEnv): Promise<string> {
    const args = ['commit-tree', tree, ...parents.flatMap((p) => ['-p', p])];
    const { stdout } = await this.run(args, { input: message, env });
    return this.checkOid(stdout.trim(), 'commit-tree');
  }

  /**
   * Moves `ref` to `next` only if it is still at `prev` (null: must not exist), in one atomic
   * compare-and-swap (git takes `<ref>.lock`). Returns false when the ref had moved.
   */
  async updateRef(ref: string, next: string, prev: string | null): Promise<boolean> {
    // "Must not exist" is the zero id of the archive's hash: 40 zeros are not a SHA-256 id, and git
    // refuses them with 128, which would read as "the ref had moved".
    const r = await this.run(['update-ref', ref, next, prev ?? '0'.repeat(next.length)], { ok: [0, 1, 128] });
    return r.code === 0;
  }

  /** Deletes `ref` only if it is still at `prev`. Returns false when it had moved. */
  async deleteRef(ref: string, prev: string): Promise<boolean> {
    const r = await this.run(['update-ref', '-d', ref, prev], { ok: [0, 1, 128] });
    return r.code === 0;
  }

  /** The commit a ref points at, or null when the ref does not exist. */
  async refCommit(ref: string): Promise<string | null> {
    const r = await this.run(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { ok: [0, 1] });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  private checkOid(line: string, cmd: string): string {
    if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(line)) throw gitError([cmd], line || 'no object id in its answer');
    return line;
  }

  /** Ends the long-lived processes; later calls start them again. */
  async close(): Promise<void> {
    const packer = this.packer;
    this.packer = undefined;
    const all = [this.catFile?.close(), this.hasher?.close(), this.treeMaker?.close(), packer?.then((p) => p.close(), () => undefined)];
    this.catFile = this.hasher = this.treeMaker = undefined;
    await Promise.all(all);
  }
}
