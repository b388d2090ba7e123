/**
 * How btrfly starts git: the environment and argv every git process gets (pack windows, no
 * location variables), the one-line errors a failed git becomes, and the long-lived processes
 * that answer requests in order (`cat-file --batch`, `hash-object --stdin-paths`, `mktree --batch`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { setPriority } from 'node:os';
import type { Readable } from 'node:stream';
import { BtrflyError } from '../errors';
import { repairAdvice } from './types';

// Variables that would point git at another repository or index than the one we name.
// GIT_QUARANTINE_PATH: a build run from a pre-receive hook has it, and git then refuses every
// ref update ("ref updates forbidden inside quarantine environment"): each recording failed as
// "tag changed while the recording was being sealed".
const GIT_LOCATION_VARS = [
  'GIT_DIR',
  'GIT_QUARANTINE_PATH',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
];

/**
 * @returns the environment of every git btrfly starts. `GIT_NO_REPLACE_OBJECTS`: a
 * `refs/replace/` ref would make git read another object wherever it meets the replaced one, so
 * a recording's commit id (what `log`, a pin `T@REV` and a review see) would stand for bytes it
 * does not hold, with `git fsck` and `verify` clean; btrfly reads only what the ids name.
 */
export function gitEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', GIT_NO_REPLACE_OBJECTS: '1' };
  for (const v of GIT_LOCATION_VARS) delete env[v];
  return { ...env, ...extra };
}

/**
 * `GIT_CONFIG_COUNT`-style variables for `config`, after those already in the environment (the
 * user's own stay): unlike `git -c`, they reach git-lfs and the transport helpers as well.
 */
export function configEnv(config: Array<[string, string]>): NodeJS.ProcessEnv {
  const had = Number(process.env.GIT_CONFIG_COUNT ?? 0) || 0;
  const env: NodeJS.ProcessEnv = { GIT_CONFIG_COUNT: String(had + config.length) };
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${had + i}`] = key;
    env[`GIT_CONFIG_VALUE_${had + i}`] = value;
  });
  return env;
}

/** What a failed git command's message ends with. */
const GIT_ADVICE = 'check that git ≥ 2.38 is installed and the archive is intact (btrfly verify)';

export function gitError(args: readonly string[], detail: string, cause?: unknown): BtrflyError {
  // A full disk is not a broken git: say so (the command maps it to the mount point and what to free).
  if (/No space left on device|Disk quota exceeded|Out of diskspace/i.test(detail)) {
    return new BtrflyError('STORAGE', `git ${args[0]} failed: no space left on device`, { cause, data: { args: [...args], noSpace: true } });
  }
  const first = detail.split('\n').find((l) => l.trim()) ?? 'failed';
  return new BtrflyError('GIT', `git ${args[0]} failed: ${first.trim()}`, {
    advice: GIT_ADVICE,
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

/**
 * The user's own git settings (~/.gitconfig, GIT_CONFIG_GLOBAL, /etc/gitconfig, a `git -c` in
 * GIT_CONFIG_PARAMETERS, which a build started from a git hook inherits) that made git act on
 * the archive other than btrfly means, set back for every git btrfly starts (the command line's
 * `-c` wins over them all; docs/notes/user-environment.md): a `core.hooksPath` ran the user's
 * hooks on the archive (a failing reference-transaction hook failed every recording and gc, a
 * pre-push hook every push), `i18n.logOutputEncoding=UTF-16` made every recording unreadable
 * (with advice to repair it), `push.gpgSign` failed every push to a remote that takes no signed
 * push; `commit.gpgSign` would sign the commits `commit-tree` makes, or fail them without a key.
 * Transport settings (ssh, credentials, `http.*`, `url.*.insteadOf`) stay the user's.
 */
const OWN_SETTINGS = ['-c', 'core.hooksPath=/dev/null', '-c', 'i18n.logOutputEncoding=UTF-8', '-c', 'push.gpgSign=false', '-c', 'commit.gpgSign=false'];

/** git's argv for a command on the archive at `gitDir`, with its pack windows and {@link OWN_SETTINGS}. */
export function gitArgv(gitDir: string, args: readonly string[]): string[] {
  return ['--git-dir', gitDir, ...PACK_WINDOWS, ...OWN_SETTINGS, ...args];
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

export function transferError(args: readonly string[], stderr: string, stdout = ''): BtrflyError {
  // stdout's tail too: git-lfs writes some refusals there (a push of missing or corrupt objects).
  return new BtrflyError('NETWORK', `git ${args[0]} failed: ${lastGitMessage(stderr)}`, { data: { args: [...args], stderr, stdout: stdout.slice(-16384) } });
}

export function spawnFailed(args: readonly string[], e: NodeJS.ErrnoException): BtrflyError {
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
export class LineProcess extends BatchProcess<string> {
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
export class CatFileBatch extends BatchProcess<Buffer | null> {
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
      else this.pending.shift()?.reject(new BtrflyError('GIT', `git object ${oid} is damaged: its bytes hash to ${actual}`, { data: { oid }, advice: repairAdvice() }));
    }
  }
}
