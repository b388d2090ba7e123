import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { Archive } from '../../format/archive';
import { removeRemote } from '../../format/remote-config';

/** `btrfly remote remove NAME`. */
export default class RemoteRemove extends BtrflyCommand {
  static override summary = 'Remove a remote';
  static override description = 'Forgets the remote; the tags pulled from it stay.';
  static override examples = ['<%= config.bin %> remote remove backup'];
  static override args = { name: Args.string({ description: 'the remote to forget', required: true }) };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(RemoteRemove);
    const archive = await Archive.open(flags.archive, { writes: 'btrfly remote remove' });
    this.onTeardown(() => archive.close());
    await removeRemote(archive, args.name);
    if (this.jsonEnabled()) return { removed: args.name };
    process.stderr.write(`removed remote ${args.name}\n`);
  }
}
