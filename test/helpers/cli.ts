import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { registerCleanup } from './cleanup';
import { stopChild } from './netns';
import { run, type RunResult } from './proc';
import { tmpDir } from './tmp';

/** The project root (where `bin/run.js` and the example archive `.btrfly/` live). */
export const PROJECT_ROOT = resolve(__dirname, '..', '..');

/** `bin/run.js`, which loads the compiled commands from `dist/` (`npm test` builds first). */
export const CLI_ENTRY = join(PROJECT_ROOT, 'bin', 'run.js');

/** Options of {@link runCli} and {@link spawnCli}. */
export interface CliOptions {
  /** Added to (and overriding) the isolated environment described at {@link cliEnv}. */
  env?: NodeJS.ProcessEnv;
  /** Working directory; default this test file's work dir ({@link cliWorkDir}). */
  cwd?: string;
  /** Written to stdin; default an empty, closed stdin, as in CI. */
  input?: string | Buffer;
  /** SIGKILL after this long; default 60 s. */
  timeoutMs?: number;
  /** {@link runCli} only: runs btrfly as this uid and gid, with no other groups (setpriv; the tests run as root). Give a `cwd` it can write. */
  uid?: number;
}

let workDir: string | undefined;
let homeDir: string | undefined;

/**
 * The directory btrfly runs in when a test gives no `cwd`: one per test file, so the
 * default archive `.btrfly` of consecutive commands is the same, and never the project's
 * own example archive.
 */
export function cliWorkDir(): string {
  return (workDir ??= tmpDir('btrfly-cli-work-'));
}

/**
 * The environment btrfly runs with: this process's, without btrfly's own variables, with
 * XDG config/data/cache dirs and `BTRFLY_CONFIG_DIR` in a per-file temp dir (btrfly's CA key and logins go there,
 * never into the user's real config), no colours, and `extra` on top.
 */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  homeDir ??= tmpDir('btrfly-cli-home-');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('BTRFLY_')) delete env[name];
  return {
    ...env,
    XDG_CONFIG_HOME: join(homeDir, 'config'),
    XDG_DATA_HOME: join(homeDir, 'data'),
    XDG_CACHE_HOME: join(homeDir, 'cache'),
    BTRFLY_CONFIG_DIR: join(homeDir, 'config', 'btrfly'),
    NO_COLOR: '1',
    ...extra,
  };
}

/**
 * Runs `btrfly ARGS...` to completion with the project's Node (this process's, which
 * `npm test` makes Node 24) and returns its status and output; never throws on a
 * non-zero status.
 *
 * ```ts
 * const { code, stderr } = await runCli(['show', 'nope', '--archive', archive]);
 * expect(code).toBe(1);
 * ```
 */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<RunResult> {
  const argv = [nodeForCli(), CLI_ENTRY, ...args];
  if (options.uid !== undefined) argv.unshift('setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups');
  return run(argv[0], argv.slice(1), {
    cwd: options.cwd ?? cliWorkDir(),
    env: cliEnv(options.env),
    input: options.input,
    timeoutMs: options.timeoutMs,
  });
}

/** A long-running btrfly process started by {@link spawnCli}. */
export interface CliProcess {
  child: ChildProcess;
  /** Everything printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the output (stdout or stderr) matches `pattern`; rejects if it exits first. */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
  /** Resolves with the outcome when the process ends. */
  readonly exited: Promise<RunResult>;
  /** Sends `signal` (default SIGTERM; SIGKILL after a grace period) and waits for the end. */
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

/**
 * Starts `btrfly ARGS...` and returns at once, for daemons and `run` commands a test
 * interacts with. Killed at the end of the test file if still running.
 */
export function spawnCli(args: readonly string[], options: CliOptions = {}): CliProcess {
  const child = spawn(nodeForCli(), [CLI_ENTRY, ...args], {
    cwd: options.cwd ?? cliWorkDir(),
    env: cliEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  const notify = () => watchers.forEach((w) => w());
  child.stdout!.setEncoding('utf8').on('data', (s: string) => ((stdout += s), notify()));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => ((stderr += s), notify()));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(options.input ?? '');
  const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
  const exited = new Promise<RunResult>((resolveExit, rejectExit) => {
    child.on('error', rejectExit);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      notify();
      resolveExit({ code, signal, stdout, stderr });
    });
  });
  const unregister = registerCleanup(() => stopChild(child));
  const proc: CliProcess = {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolveWait, rejectWait) => {
        const matches = () => {
          const text = stdout + stderr;
          return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
        };
        const done = (err?: Error) => {
          watchers.delete(check);
          clearTimeout(deadline);
          if (err) rejectWait(err);
          else resolveWait();
        };
        const check = () => {
          if (matches()) done();
          else if (child.exitCode !== null || child.signalCode !== null) {
            done(new Error(`btrfly ${args.join(' ')} ended (${child.exitCode ?? child.signalCode}) before printing ${pattern}:\n${stderr}`));
          }
        };
        const deadline = setTimeout(
          () => done(new Error(`btrfly ${args.join(' ')} did not print ${pattern} within ${timeoutMs} ms:\n${stdout}\n${stderr}`)),
          timeoutMs,
        );
        watchers.add(check);
        check();
      }),
    stop: async (signal = 'SIGTERM') => {
      if (signal === 'SIGTERM') await stopChild(child);
      else child.kill(signal);
      unregister();
      return exited;
    },
  };
  return proc;
}

function nodeForCli(): string {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    throw new Error(`tests run under Node ${process.versions.node}; btrfly needs Node >= 22.15: run them with "npm test"`);
  }
  return process.execPath;
}
