import { spawn } from 'node:child_process';
import { BtrflyError } from '../../../errors';
import type { CommandResult, CommandRunner } from './types';

/** Runs a command without a shell and collects its output; never rejects on a non-zero exit. */
export const runCommand: CommandRunner = (argv, input) =>
  new Promise<CommandResult>((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: 'pipe' });
    // A command that exits without reading all of its input is not an error of ours.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new BtrflyError('CONFIG', `command "${argv[0]}" was not found on the PATH: install it (for the trust store, or name another with BTRFLY_TRUST_UPDATE)`));
      } else reject(e);
    });
    child.on('close', (code, signal) => {
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });

/** Runs a command and throws a one-line error naming it when it fails. */
export async function runChecked(run: CommandRunner, argv: string[], input?: string): Promise<CommandResult> {
  const result = await run(argv, input);
  if (result.code !== 0) {
    const why = (result.stderr.trim() || result.stdout.trim()).split('\n')[0] || `exit status ${result.code}`;
    throw new BtrflyError('CONFIG', `"${argv.join(' ')}" failed: ${why}: fix the cause and run the btrfly command again`, {
      data: { argv, exitStatus: result.code },
    });
  }
  return result;
}
