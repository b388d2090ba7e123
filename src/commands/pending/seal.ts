import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../../cli/base';
import { Archive } from '../../format/archive';
import { sealPending } from '../../format/recording-writer';

/** `btrfly pending seal ID`: makes a recording kept aside the newest recording of its tag. */
export default class PendingSeal extends BtrflyCommand {
  static override summary = 'Make a pending recording the newest recording of its tag';
  static override examples = ['<%= config.bin %> pending seal 20261206T181500123Z-1a2b3c4d'];
  static override args = { id: Args.string({ description: 'the pending recording (see "btrfly pending list")', required: true }) };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(PendingSeal);
    const archive = await Archive.open(flags.archive, { writes: 'btrfly pending seal' });
    this.onTeardown(() => archive.close());
    const p = (await archive.pendingRecordings()).find((x) => x.id === args.id);
    const commit = await sealPending(archive, args.id, p ? { message: `record ${p.tag}: ${p.entries} entries, sealed from pending recording ${args.id}\n` } : {});
    if (this.jsonEnabled()) return { id: args.id, tag: p?.tag, commit };
    process.stderr.write(`btrfly: sealed pending recording ${args.id} as recording ${commit.slice(0, 12)} of tag "${p?.tag}"\n`);
  }
}
