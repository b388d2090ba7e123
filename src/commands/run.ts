import { Flags } from '@oclif/core';
import { runCommand, summarizeLeaks } from '../engine/command/run-command';
import { summarize } from '../engine/command/summary';
import { BtrflyCommand, BtrflyError } from '../cli/base';
import { argsAfterDashDash } from '../cli/command-argv';
import { sessionFlags, sessionOptions } from '../cli/session-flags';

export default class Run extends BtrflyCommand {
  static override summary = 'Run a command with its HTTP(S) traffic recorded or played back (command mode, no root).';
  static override description =
    'Starts btrfly on loopback, runs CMD with HTTP_PROXY/HTTPS_PROXY and a CA bundle set, then seals the recording (--record) or reports misses (--playback). A command that fails (or is not found) leaves the tag as it was and its recording aside ("btrfly pending"), unless --seal-on-failure. With --isolate, connections btrfly cannot carry (leaks) also keep the recording aside, unless --allow-leaks. Exits with the command\'s status, 1 when it exited 0 but leaked, or 3 when the playback missed.';
  static override examples = [
    '<%= config.bin %> run --record --tag=example1 -- ./build.sh',
    '<%= config.bin %> run --playback --tag=example1 -- ./build.sh',
    '<%= config.bin %> run --playback --tag=example1@1a2b3c4 --unused -- make',
  ];
  static override usage = '<%= command.id %> --record|--playback --tag=T -- CMD [ARGS...]';
  static override strict = false;
  static override runsCommand = true;
  static override flags = {
    record: Flags.boolean({ description: 'record every response under --tag', exactlyOne: ['record', 'playback'] }),
    playback: Flags.boolean({ description: 'answer every request from --tag, never from the network', exactlyOne: ['record', 'playback'] }),
    'seal-on-failure': Flags.boolean({ description: 'record: make the recording the tag even when the command fails (default: keep it aside, the tag unchanged); not a recording with leaks (--isolate): --allow-leaks accepts those', default: false }),
    unused: Flags.boolean({ description: 'playback: also list the recorded entries nothing asked for', default: false }),
    isolate: Flags.boolean({ description: 'run CMD in its own network namespace (no root) whose only way out is btrfly; what btrfly cannot carry is refused and listed', default: false }),
    'allow-leaks': Flags.boolean({ description: 'with --isolate: what btrfly cannot carry is listed but does not fail the run', default: false, dependsOn: ['isolate'] }),
    ...sessionFlags,
  };

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(Run);
    // oclif takes --isolate's default as given, so its dependsOn lets this through alone.
    if (flags['allow-leaks'] && !flags.isolate) throw new BtrflyError('USAGE', '--allow-leaks accepts what an isolated run cannot carry: add --isolate, or leave --allow-leaks out');
    const command = argsAfterDashDash(this.argv) ?? (argv as string[]);
    const { exitCode, result, leaks } = await runCommand({
      archiveDir: flags.archive,
      mode: flags.record ? 'record' : 'playback',
      ...sessionOptions(flags),
      command,
      sealOnFailure: flags['seal-on-failure'],
      isolate: flags.isolate,
      allowLeaks: flags['allow-leaks'],
      report: (l) => process.stderr.write(l + '\n'),
    });
    if (flags.json) this.printJson(result);
    for (const line of summarize(flags.record ? 'record' : 'playback', result, flags.unused)) process.stderr.write(line + '\n');
    for (const line of summarizeLeaks(leaks ?? [], flags['allow-leaks'], flags.record || flags.append)) process.stderr.write(line + '\n');
    if (exitCode !== 0) this.exit(exitCode);
  }
}
