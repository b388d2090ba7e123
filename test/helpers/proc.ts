import { spawn, type SpawnOptions } from 'node:child_process';

/** How a finished process ended and what it printed. */
export interface RunResult {
  /** Exit status, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions extends Pick<SpawnOptions, 'cwd' | 'env'> {
  /** Written to stdin, which is then closed. Without it stdin is empty (as in CI). */
  input?: string | Buffer;
  /** SIGKILL after this long (default 60 s); the result then has `signal: 'SIGKILL'`. */
  timeoutMs?: number;
}

/**
 * Runs a command to completion and collects its output; never throws on a non-zero
 * exit (tests assert on `code`). Output is text from small commands: a test that needs
 * a large body streams it instead.
 */
export function run(cmd: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child that exits without reading stdin makes this write fail with EPIPE; that is fine.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Like {@link run}, but throws (with the command and its stderr) unless it exits 0. */
export async function runOk(cmd: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    const how = result.signal ? `signal ${result.signal}` : `status ${result.code}`;
    throw new Error(`${cmd} ${args.join(' ')} failed with ${how}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result;
}
