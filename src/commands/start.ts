import { Args } from '@oclif/core';
import { startHostSession } from '../engine/host/host-session';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { sessionFlags, sessionOptions } from '../cli/session-flags';

export default class Start extends BtrflyCommand {
  static override summary = 'Point this host at btrfly and start recording or playing back a tag (host mode, needs root).';
  static override description =
    'Starts the btrfly daemon on a dedicated loopback address (DNS, proxy on 80/443), opens a session for this host, points /etc/resolv.conf at btrfly and adds btrfly\'s CA to the system trust store. "btrfly stop" undoes all of it.';
  static override examples = ['<%= config.bin %> start record --tag=example1', '<%= config.bin %> start playback --tag=example1'];
  static override args = {
    mode: Args.string({ description: 'record or playback', required: true, options: ['record', 'playback'] }),
  };
  static override flags = {
    ...sessionFlags,
  };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Start);
    const mode = args.mode as 'record' | 'playback';
    const { session, daemonAddress, notes } = await startHostSession({
      mode,
      ...sessionOptions(flags),
      archiveDir: flags.archive,
    });
    if (this.jsonEnabled()) return { session: session.info, dns: daemonAddress, notes };
    for (const note of notes) process.stderr.write(`btrfly: note: ${note}\n`);
    process.stderr.write(`btrfly: ${mode === 'record' ? 'recording' : 'playing back'} tag "${session.info.tag}" for this host (DNS and proxy on ${daemonAddress}); run "btrfly stop ${mode}" when the build is done\n`);
  }
}
