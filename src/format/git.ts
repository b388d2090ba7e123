/**
 * The git executable as btrfly's object store: one-shot commands, and the long-lived
 * processes that keep per-object cost low (`cat-file --batch`, `hash-object --stdin-paths`,
 * `mktree --batch`, `fast-import` for small bodies). Never isomorphic-git: it holds whole objects in memory and cannot read
 * packs over 2 GiB (docs/decisions.md, the libraries: isomorphic-git). Every failure becomes a one-line BtrflyError('GIT').
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { BtrflyError } from '../errors';
import { CatFileBatch, gitArgv, gitEnv, gitError, LineProcess, spawnFailed, transferError } from './git-process';
import { SmallBodyPacker, type SmallBodyObjects } from './small-body-packer';

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

/**
 * What makes git show a sign of life while a transfer is under way but no byte of a pack moves:
 * every pkt-line it (or a local server, or git-remote-https) reads or writes is traced on stderr,
 * so a remote's keep-alives while it prepares a pack or runs its hooks count; the pack's own
 * bytes show as progress (`--progress`). The traced lines ({@link TRACED_PACKET}) are left out of
 * what git says ({@link withoutTracedPackets}). Not GIT_TRACE_BARE, which would change the user's
 * own GIT_TRACE lines too.
 */
const IDLE_ENV: NodeJS.ProcessEnv = { GIT_TRACE_PACKET: '2' };

/** A line of git's packet trace: `11:24:47.368366 pkt-line.c:80    packet:  upload-pack> version 2`. */
const TRACED_PACKET = /^\d\d:\d\d:\d\d\.\d+ \S+:\d+ +packet: /;

/**
 * A writer that passes git's output on to `out` as it comes, segment by segment (segments end in
 * \r or \n, so a progress line updates in place), less the segments `drop` matches; `end` passes
 * on what is left of a last, unterminated segment.
 */
export function segmentFilter(drop: RegExp, out: (s: string) => void): { write(s: string): void; end(): void } {
  let partial = '';
  return {
    write(s) {
      const segments = (partial + s).split(/(?<=[\r\n])/);
      partial = /[\r\n]$/.test(segments[segments.length - 1]) ? '' : segments.pop()!;
      const keep = segments.filter((seg) => !drop.test(seg)).join('');
      if (keep) out(keep);
    },
    end() {
      if (partial && !drop.test(partial)) out(partial);
      partial = '';
    },
  };
}

/** git's stderr less the lines of its packet trace. */
const withoutTracedPackets = (out: (s: string) => void): ReturnType<typeof segmentFilter> => segmentFilter(TRACED_PACKET, out);

/**
 * One archive's git: `--git-dir` fixed, the long-lived helpers started on first use and
 * ended by {@link Git.close}.
 */
/** The blobs of one {@link Git.streamBlobs}, each opened once, in order; `close` ends the read (git is stopped). */
export interface BlobStreams {
  open(i: number): Readable;
  close(): void;
}

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
   * @param opts.idleSeconds stops git when neither it nor its transport shows a sign of life for this long (see {@link IDLE_ENV}):
   *   the transfer then rejects with a NETWORK error whose `data.idle` is the seconds. Not when it may ask on the terminal.
   */
  transfer(
    args: string[],
    opts: { progress?: NodeJS.WritableStream; interactive?: boolean; ok?: number[]; env?: NodeJS.ProcessEnv; signal?: AbortSignal; idleSeconds?: number } = {},
  ): Promise<GitResult> {
    const idle = opts.interactive ? 0 : (opts.idleSeconds ?? 0);
    const env = { ...opts.env, ...(opts.interactive ? { GIT_TERMINAL_PROMPT: '1' } : {}), ...(idle ? IDLE_ENV : {}) };
    return this.collect(args, { ok: opts.ok, env, signal: opts.signal, transfer: { progress: opts.progress, interactive: opts.interactive, idle } });
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
      transfer?: { progress?: NodeJS.WritableStream; interactive?: boolean; idle?: number };
    },
  ): Promise<GitResult> {
    const ok = opts.ok ?? [0];
    const transfer = opts.transfer;
    const signal = opts.signal;
    const idle = transfer?.idle ?? 0;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    // A transfer that can be stopped runs in a process group of its own, so that stopping it stops
    // its transport too (git-remote-https, ssh, git-lfs): killed alone, git leaves a helper that
    // still waits on the remote and holds the pipes open. Not when it may ask on the terminal: a
    // process group in the background may not read from it (and Ctrl-C there reaches them all).
    const group = (signal !== undefined || idle > 0) && transfer !== undefined && !transfer.interactive;
    return new Promise((resolve, reject) => {
      const child = spawn('git', gitArgv(this.gitDir, args), {
        env: gitEnv(opts.env),
        // stdin stays the terminal's when asking is allowed, so ssh and credential prompts work.
        stdio: [transfer ? (transfer.interactive ? 'inherit' : 'ignore') : 'pipe', 'pipe', 'pipe'],
        detached: group,
      });
      let stdout = '';
      let stderr = '';
      // Any byte from git or its transport (progress, a traced packet, output) is a sign of life.
      let idled = false;
      let idleTimer: NodeJS.Timeout | undefined;
      const told = (s: string): void => {
        transfer?.progress?.write(s);
        // A transfer's progress lines repeat with \r thousands of times: keep only the tail for messages.
        stderr = transfer ? (stderr + s).slice(-16384) : stderr + s;
      };
      const untraced = idle > 0 ? withoutTracedPackets(told) : undefined;
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        idleTimer?.refresh();
        stdout += s;
      });
      child.stderr!.setEncoding('utf8').on('data', (s: string) => {
        idleTimer?.refresh();
        if (untraced) untraced.write(s);
        else told(s);
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
      if (idle > 0) {
        idleTimer = setTimeout(() => {
          idled = true;
          stop();
        }, idle * 1000);
      }
      // The group outlives btrfly however btrfly ends (kill -9; `timeout -s KILL`, which kills
      // btrfly's group, not this one): a watchdog outside both groups stops it once btrfly's end
      // of the watchdog's stdin closes, rather than leave git fetching into the archive unseen.
      const watchdog =
        group && child.pid
          ? spawn('sh', ['-c', `read _ || kill -TERM -${child.pid} 2>/dev/null`], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
          : undefined;
      watchdog?.on('error', () => undefined);
      watchdog?.stdin!.on('error', () => undefined);
      const idleError = (): BtrflyError => {
        untraced?.end();
        return new BtrflyError('NETWORK', `git ${args[0]}: nothing came through its transport`, {
          data: { args: [...args], stderr, stdout: stdout.slice(-16384), idle },
        });
      };
      // Stopped: done when git is, whatever a helper of its still holds open.
      child.on('exit', () => {
        clearTimeout(idleTimer);
        if (!signal?.aborted && !idled) return;
        child.stdout!.destroy();
        child.stderr!.destroy();
        reject(signal?.aborted ? (signal.reason as Error) : idleError());
      });
      child.on('error', (e) => reject(spawnFailed(args, e)));
      child.on('close', (code, killedBy) => {
        clearTimeout(idleTimer);
        untraced?.end();
        signal?.removeEventListener('abort', stop);
        // Ended first, so that it never signals a group whose number another took since.
        watchdog?.kill('SIGKILL');
        if (signal?.aborted) reject(signal.reason as Error);
        else if (idled) reject(idleError());
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
  streamBlobs(oids: readonly string[]): BlobStreams {
    const args = ['cat-file', '--batch'];
    const bad = oids.find((o) => !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(o));
    if (bad !== undefined) throw gitError(args, `not an object id: ${JSON.stringify(bad)}`);
    const child = this.spawn(args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout = child.stdout!;
    // A blob's stream is made when first wanted (by its reader, or by git's bytes arriving first)
    // and forgotten once closed: a body of thousands of parts holds two or three streams, not one
    // a part (3,072 streams were 15 MiB of a 3 GiB read's peak).
    const outs = new Map<number, PassThrough>();
    const missing = new Map<number, Error>(); // told by git before their reader opened them
    let failure: { from: number; error: Error } | undefined; // git failed: this blob and every later one
    let opened = -1; // the last blob its reader opened: one not in `outs` up to here was closed by it
    let index = 0; // the blob whose header or bytes come next
    let left = -1; // bytes of blob `index` still to come, its trailing newline included; -1: its header
    let header = '';
    let stderr = '';
    const make = (i: number): PassThrough => {
      const out = new PassThrough({ highWaterMark: 1024 * 1024 });
      // A later blob can fail (missing) before its reader gets to it: the reader meets the
      // error then (`stream.errored`), so it must not be thrown as an unhandled 'error' now.
      out.on('error', () => undefined);
      out.on('drain', () => stdout.resume());
      out.on('close', () => {
        outs.delete(i);
        stdout.resume();
      });
      outs.set(i, out);
      return out;
    };
    const failed = (e: Error): PassThrough => {
      const out = new PassThrough();
      out.on('error', () => undefined);
      return out.destroy(e);
    };
    const failRest = (e: Error): void => {
      failure ??= { from: index, error: e };
      for (const [i, out] of outs) if (i >= index) out.destroy(e);
    };
    stdout.on('data', (b: Buffer) => {
      let at = 0;
      while (at < b.length && index < oids.length) {
        if (left < 0) {
          const nl = b.indexOf(10, at);
          header += b.toString('latin1', at, nl < 0 ? b.length : nl);
          if (nl < 0) return;
          at = nl + 1;
          const [oid, type, size] = header.split(' ');
          header = '';
          if (oid !== oids[index] || type !== 'blob' || !/^\d+$/.test(size ?? '')) {
            const e = type === 'missing' ? new BtrflyError('BODY_MISSING', `object ${oids[index]} is missing`) : gitError(args, `${oids[index]} is not a blob`);
            const out = outs.get(index);
            if (out) out.destroy(e);
            else if (index > opened) missing.set(index, e);
            index++;
            continue;
          }
          left = Number(size) + 1;
          continue;
        }
        const take = Math.min(left, b.length - at);
        const content = Math.min(take, left - 1);
        // Closed by its reader: its bytes are read past.
        const out = outs.get(index) ?? (index > opened ? make(index) : undefined);
        if (content > 0 && out && !out.destroyed && !out.write(b.subarray(at, at + content))) stdout.pause();
        at += take;
        left -= take;
        if (left === 0) {
          out?.end();
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
    return {
      open(i) {
        opened = Math.max(opened, i);
        const told = missing.get(i);
        if (told) {
          missing.delete(i);
          return failed(told);
        }
        const out = outs.get(i);
        if (out) return out;
        if (failure && i >= failure.from) return failed(failure.error);
        if (i < index) return failed(gitError(args, `${oids[i]} was opened twice`));
        return make(i);
      },
      close() {
        for (const out of outs.values()) out.destroy();
        if (child.exitCode === null && child.signalCode === null) child.kill();
      },
    };
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
    return (await this.smallBodyPacker()).store(bytes, name);
  }

  /**
   * Starts the small-body `git fast-import` before the first body needs it: its spawn held the
   * proxy's one thread 20–110 ms, every client waiting (a failure is left for that body to tell).
   */
  prepareSmallBodies(): void {
    this.smallBodyPacker().then((p) => p.start(), () => undefined);
  }

  private smallBodyPacker(): Promise<SmallBodyPacker> {
    this.packer ??= this.run(['rev-parse', '--show-object-format']).then(({ stdout }) => new SmallBodyPacker(this.gitDir, stdout.trim() === 'sha256' ? 'sha256' : 'sha1'));
    return this.packer.catch((e: unknown) => {
      this.packer = undefined;
      throw e;
    });
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
