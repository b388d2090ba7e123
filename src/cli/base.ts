import { Command, Flags, Interfaces } from '@oclif/core';
import { BtrflyError, EXIT, isBtrflyError, oneLine } from '../errors';
import { ownArgs } from './command-argv';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BtrflyCommand)['baseFlags'] & T['flags']>;

/**
 * The base of every btrfly command: the shared flags (`--archive`, `--json`,
 * `--debug`), one place that turns errors into an exit status and a one-line message,
 * and teardown of whatever the command started (`this.onTeardown`), also on error.
 */
export abstract class BtrflyCommand extends Command {
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

  /** Registers cleanup that runs when the command ends, in reverse order, whatever happens. */
  protected onTeardown(fn: () => Promise<void> | void): void {
    this.teardowns.push(fn);
  }

  protected printJson(value: unknown): void {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
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
    const debug = ownArgs(this.argv).includes('--debug') || process.env.BTRFLY_DEBUG === '1';
    // oclif's own parse errors (unknown flag, missing arg) are usage errors: exit 2.
    // this.exit(n) throws oclif's ExitError: an exit status chosen on purpose, not a failure.
    if ((err as { code?: string }).code === 'EEXIT') throw err;
    const oclifExit = err.oclif?.exit;
    if (oclifExit !== undefined && !isBtrflyError(err)) {
      if (oclifExit === 0) throw err; // --help, --version
      const msg = oneLine(err).replace(/^Error: /, '');
      process.stderr.write(`btrfly: ${msg}: run "btrfly ${this.id ?? ''} --help" for usage\n`);
      if (debug && err.stack) process.stderr.write(err.stack + '\n');
      return this.exit(EXIT.usage) as never;
    }
    const code = isBtrflyError(err) ? err.exitCode : EXIT.failure;
    if (ownArgs(this.argv).includes('--json') && isBtrflyError(err)) {
      process.stdout.write(JSON.stringify(err.toJSON(), null, 2) + '\n');
    }
    process.stderr.write(`btrfly: ${oneLine(err)}\n`);
    if (debug && err.stack) process.stderr.write(err.stack + '\n');
    return this.exit(code) as never;
  }
}

export { BtrflyError };
