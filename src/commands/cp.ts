import { Args, Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { parseTagSpec } from '../format/names';

/** `btrfly cp SRC DST`: points a tag at another tag's recording. */
export default class Cp extends BtrflyCommand {
  static override summary = 'Copy a tag';
  static override description =
    'DST points at the recording SRC names (T: its newest, T@REV: that one). Nothing is copied on disk: bodies are shared. ' +
    'DST\'s history is then SRC\'s. An existing DST is kept unless --force.';
  static override examples = ['<%= config.bin %> cp example1 example1-backup', '<%= config.bin %> cp example1@1a2b3c4 example1 --force'];
  static override args = {
    src: Args.string({ description: 'T or T@REV to copy', required: true }),
    dst: Args.string({ description: 'the new tag', required: true }),
  };
  static override flags = { force: Flags.boolean({ description: 'replace DST if it exists', default: false }) };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Cp);
    const archive = await Archive.open(flags.archive, { writes: 'btrfly cp' });
    this.onTeardown(() => archive.close());
    const { tag, rev } = parseTagSpec(args.src);
    const commit = await archive.copyTag(tag, args.dst, { force: flags.force, rev });
    if (this.jsonEnabled()) return { from: tag, to: args.dst, commit };
    this.log(`copied ${tag}@${commit.slice(0, 7)} to ${args.dst}`);
  }
}
