import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult, BtrflyError } from '../../cli/base';
import { Archive } from '../../format/archive';

/** `btrfly pending drop ID`: deletes a recording kept aside; its tag stays as it is. */
export default class PendingDrop extends BtrflyCommand {
  static override summary = 'Drop a pending recording (its tag is unchanged; "btrfly gc" frees its bodies)';
  static override examples = ['<%= config.bin %> pending drop 20261206T181500123Z-1a2b3c4d'];
  static override args = { id: Args.string({ description: 'the pending recording (see "btrfly pending list")', required: true }) };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(PendingDrop);
    const archive = await Archive.open(flags.archive, { writes: 'btrfly pending drop' });
    this.onTeardown(() => archive.close());
    const p = (await archive.pendingRecordings()).find((x) => x.id === args.id);
    if (p?.activeHolder) {
      throw new BtrflyError('TAG_BUSY', `recording ${args.id} of tag "${p.tag}" is still being written (pid ${p.activeHolder.pid}): stop it first`);
    }
    await archive.discardPending(args.id);
    if (this.jsonEnabled()) return { id: args.id, tag: p?.tag, dropped: true };
    process.stderr.write(`btrfly: dropped pending recording ${args.id}${p ? ` of tag "${p.tag}" (the tag is unchanged)` : ''}\n`);
  }
}
