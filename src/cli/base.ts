import { Command, Flags, Interfaces } from '@oclif/core';
import { stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { BtrflyError, EXIT, isBtrflyError, oneLine } from '../errors';
import { ownArgs } from './command-argv';
import { describeUsageError, type CommandShape } from './usage-errors';

// Props of oclif's own parse: the output's flags and args are keyed by name.
type ParseOutput = Record<string, unknown>;

/**
 * Set once a reader of btrfly's stdout has gone away (`btrfly export T -o - | head -1`).
 * oclif's own listener ignores that EPIPE for `this.log`; a stream piped to stdout fails
 * with it instead, and {@link BtrflyCommand.catch} then ends quietly, as a Unix filter does.
 */
let stdoutGone = false;
/**
 * Any other failure to write stdout (`btrfly tags > file` on a full disk: ENOSPC; EIO): oclif's
 * own listener threw it from the stream's error event, a stack trace. It is replaced: the output
 * is lost, so the command's status becomes 1 and one line says why, once, as the process ends.
 */
let stdoutFailed: NodeJS.ErrnoException | undefined;
process.stdout.removeAllListeners('error');
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') stdoutGone = true;
  else stdoutFailed ??= e;
});
process.on('exit', (code) => {
  if (!stdoutFailed) return;
  const reason = stdoutFailed.code === 'ENOSPC' ? 'no space left on device (ENOSPC)' : `${stdoutFailed.code ?? stdoutFailed.message}`;
  process.stderr.write(`btrfly: the output could not be written to stdout: ${reason}: free space where it goes, or send it elsewhere\n`);
  if (code === 0) process.exitCode = EXIT.failure;
});

/** What a command's `run()` returns: printed as JSON under `--json` (oclif's `enableJsonFlag`), else ignored. */
export type JsonResult = object | void;

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BtrflyCommand)['baseFlags'] & T['flags']>;

/**
 * The base of every btrfly command: the shared flags (`--archive`, `--json`,
 * `--debug`), one place that turns errors into an exit status and a one-line message
 * (usage errors too: each names the flag or argument and shows what to do), and teardown
 * of whatever the command started (`this.onTeardown`), also on error.
 */
export abstract class BtrflyCommand extends Command {
  /**
   * oclif prints what `run()` returns as JSON when `--json` is given (after teardown), and
   * `this.log` prints nothing then. btrfly's own `--json` flag (in {@link baseFlags}) keeps its
   * description; an error under `--json` is printed as JSON by {@link BtrflyCommand.catch}.
   */
  static override enableJsonFlag = true;

  /** The command runs another one given after `--`: an unknown flag after its first word is the child's. */
  static runsCommand = false;

  static override baseFlags = {
    archive: Flags.string({
      description: 'archive directory (a bare git repository)',
      env: 'BTRFLY_ARCHIVE',
      default: '.btrfly',
      helpGroup: 'GLOBAL',
    }),
    json: Flags.boolean({ description: 'print machine-readable JSON', default: false, helpGroup: 'GLOBAL' }),
    debug: Flags.boolean({ description: 'print stack traces and debug logs', default: false, helpGroup: 'GLOBAL' }),
  };

  private teardowns: Array<() => Promise<void> | void> = [];

  /**
   * Takes back what bin/run.js lends oclif's load when it is unset and the passwd database has no
   * entry for the uid (SHELL, HOME), before anything runs: no command btrfly starts sees a
   * variable its user did not set.
   */
  override async init(): Promise<void> {
    // A working directory removed under the shell (a CI step after a cleanup): git then warns and
    // fails, which read as "not a btrfly archive" for an archive named by its absolute path.
    try {
      process.cwd();
    } catch {
      throw new BtrflyError('USAGE', 'the current directory no longer exists (it was removed while the shell was in it): cd to a directory that exists and run btrfly again');
    }
    const lent = process.env.BTRFLY_LENT_ENV;
    if (lent !== undefined) {
      for (const name of lent.split(',')) if (name === 'SHELL' || name === 'HOME') delete process.env[name];
      delete process.env.BTRFLY_LENT_ENV;
    }
    await super.init();
  }

  /**
   * A signal that aborts on the first SIGINT, SIGTERM or SIGHUP, with an INTERRUPTED error (exit
   * 128 + the signal's number, as a shell reports it) saying `advice`: the command stops at its
   * next safe point and its teardown runs (locks released, temporary refs dropped) instead of the
   * process dying where it stands. A second signal ends the process at once.
   */
  protected stopOnSignals(advice: string): AbortSignal {
    const controller = new AbortController();
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
      const handler = (): void => {
        for (const [s, h] of handlers) process.removeListener(s, h);
        controller.abort(new BtrflyError('INTERRUPTED', `interrupted by ${sig}: ${advice}`, { exitCode: 128 + constants.signals[sig] }));
      };
      process.on(sig, handler);
      return [sig, handler] as const;
    });
    this.signalsTaken = () => {
      for (const [s, h] of handlers) process.removeListener(s, h);
    };
    this.onTeardown(() => this.stopTakingSignals());
    return controller.signal;
  }

  private signalsTaken?: () => void;

  /**
   * Gives SIGINT, SIGTERM and SIGHUP back to their default (the process ends at once) once the
   * work {@link stopOnSignals} guarded is over: a signal then is not swallowed by a signal
   * nothing checks any more.
   */
  protected stopTakingSignals(): void {
    this.signalsTaken?.();
    this.signalsTaken = undefined;
  }

  /** Registers cleanup that runs when the command ends, in reverse order, whatever happens. */
  protected onTeardown(fn: () => Promise<void> | void): void {
    this.teardowns.push(fn);
  }

  /**
   * Prints JSON as oclif does for a returned result. Only for commands that must print it and
   * then exit with a status of their own (`run`, `stop`): the others return their result.
   */
  protected printJson(value: unknown): void {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  }

  /** oclif's parse, then a check of `--archive` that every command shares. */
  protected override async parse<F extends ParseOutput, B extends ParseOutput, A extends ParseOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const out = await super.parse(options, argv);
    const archive: unknown = out.flags.archive;
    if (typeof archive === 'string') await checkArchiveDir(archive);
    return out;
  }

  protected override async finally(err: Error | undefined): Promise<void> {
    for (const fn of this.teardowns.reverse()) {
      try {
        await fn();
      } catch (e) {
        if (!err) process.stderr.write(`btrfly: cleanup failed: ${oneLine(e)}\n`);
      }
    }
    return super.finally(err);
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<never> {
    // this.exit(n) throws oclif's ExitError: an exit status chosen on purpose, not a failure.
    if ((err as { code?: string }).code === 'EEXIT') throw err;
    if (stdoutGone && isStreamGone(err)) return this.exit(EXIT.ok) as never;
    const own = ownArgs(this.argv);
    const debug = own.includes('--debug') || process.env.BTRFLY_DEBUG === '1';
    const typed = this.asTyped(err);
    if (own.includes('--json') && typed) process.stdout.write(JSON.stringify(typed.toJSON(), null, 2) + '\n');
    process.stderr.write(`btrfly: ${oneLine(typed ?? err)}\n`);
    if (debug && err.stack) process.stderr.write(err.stack + '\n');
    return this.exit(typed?.exitCode ?? EXIT.failure) as never;
  }

  /** btrfly's typed error for `err`: itself, or for oclif's parse errors (unknown flag, missing argument...) a usage error, exit 2. */
  private asTyped(err: Error & { oclif?: { exit?: number } }): BtrflyError | undefined {
    if (isBtrflyError(err)) return err;
    const oclifExit = err.oclif?.exit;
    if (oclifExit === undefined) return undefined;
    if (oclifExit === 0) throw err; // --help, --version
    return new BtrflyError('USAGE', describeUsageError(err, this.shape(), this.config.bin, this.argv), { cause: err });
  }

  /** This command as the usage messages see it. */
  private shape(): CommandShape {
    const ctor = this.ctor as typeof BtrflyCommand;
    return {
      id: this.id ?? '',
      usage: ctor.usage,
      args: ctor.args,
      flags: { ...ctor.baseFlags, ...ctor.flags },
      strict: ctor.strict,
      runsCommand: ctor.runsCommand,
    };
  }
}

/** The error of a write to a stdout whose reader has gone (EPIPE), or of a stream torn down with it. */
function isStreamGone(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * An empty `--archive`, or one naming a file, would fail later as `mkdir ... EEXIST` or "no
 * archive" (or, empty, name nothing): say what it is at once. (A directory that is not an archive is refused by `Archive.open`.)
 */
async function checkArchiveDir(dir: string): Promise<void> {
  // Resolved, '' is the current directory: a record would make it an archive, or fail naming nothing.
  if (dir === '') throw new BtrflyError('USAGE', "--archive is empty: give the archive's directory (default .btrfly, or set BTRFLY_ARCHIVE)");
  const s = await stat(dir).catch(() => undefined);
  if (s && !s.isDirectory()) {
    throw new BtrflyError('USAGE', `--archive ${dir} is a file, not an archive directory: give the archive's directory (default .btrfly), or move the file away`, {
      data: { dir },
    });
  }
}

export { BtrflyError };
