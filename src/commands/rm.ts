import { Args } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { validateTagName } from '../format/names';

/** `btrfly rm T...`: deletes tags. */
export default class Rm extends BtrflyCommand {
  static override summary = 'Delete tags';
  static override description =
    'Removes each tag (its branch). Its recordings and bodies stay on disk until "btrfly gc", so a mistake can still be undone ' +
    'from the id printed here: btrfly cp is not enough for that, but git update-ref refs/heads/T ID is.';
  static override examples = ['<%= config.bin %> rm example1', '<%= config.bin %> rm old1 old2'];
  static override strict = false;
  static override args = { tag: Args.string({ description: 'tag to delete (several may be given)', required: true }) };

  async run(): Promise<JsonResult> {
    const { argv, flags } = await this.parse(Rm);
    const tags = (argv as string[]).map(validateTagName);
    const archive = await Archive.open(flags.archive, { writes: 'btrfly rm' });
    this.onTeardown(() => archive.close());
    const deleted: Array<{ tag: string; commit: string }> = [];
    for (const tag of tags) {
      const commit = (await archive.tagRefTarget(tag)) ?? (await archive.resolveCommit(tag));
      await archive.deleteTag(tag);
      deleted.push({ tag, commit });
      if (!this.jsonEnabled()) this.log(`deleted tag ${tag} (was ${commit.slice(0, 7)}); run "btrfly gc" to free its space`);
    }
    return deleted;
  }
}
