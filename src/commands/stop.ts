import { Args, Flags } from '@oclif/core';
import { stopHostSession } from '../engine/host/host-session';
import { summarize } from '../engine/command/summary';
import { BtrflyCommand } from '../cli/base';

export default class Stop extends BtrflyCommand {
  static override summary = 'End the host-mode session: seal the recording or report the playback, and restore DNS and trust.';
  static override examples = ['<%= config.bin %> stop record', '<%= config.bin %> stop playback --unused'];
  static override args = {
    mode: Args.string({ description: 'record or playback', required: true, options: ['record', 'playback'] }),
  };
  static override flags = {
    unused: Flags.boolean({ description: 'playback: also list the recorded entries nothing asked for', default: false }),
    'seal-partial': Flags.boolean({ description: 'after a crash: make the interrupted recording\'s completed entries the tag', exclusive: ['discard'] }),
    discard: Flags.boolean({ description: 'record: drop the recording instead of sealing it', exclusive: ['seal-partial'] }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Stop);
    const mode = args.mode as 'record' | 'playback';
    const out = await stopHostSession({ mode, archiveDir: flags.archive, sealPartial: flags['seal-partial'], discard: flags.discard });
    if (flags.json) this.printJson(out);
    else {
      if (out.result) for (const line of summarize(mode, out.result, flags.unused)) process.stderr.write(line + '\n');
      if (out.partial) process.stderr.write(`btrfly: ${out.partial.split('\n').join('\nbtrfly: ')}\n`);
      if (out.idleDaemonStopped) process.stderr.write(`btrfly: stopped the btrfly daemon ${out.idleDaemonStopped.pid} (archive ${out.idleDaemonStopped.archive}), which held no session\n`);
      process.stderr.write(`btrfly: restored ${out.restored.length ? out.restored.join(', ') : 'nothing (nothing was changed)'}\n`);
    }
    if (out.exitCode !== 0) this.exit(out.exitCode);
  }
}
